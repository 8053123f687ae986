// Configuration loading: the built-in default matches etc/tern.toml, and every
// kind of mistake names the file, the line and the problem.
#include <catch2/catch.hpp>

#include <fstream>

#include <unistd.h>

#include "mta/config.hpp"

namespace {

std::variant<mta::config, mta::config_error> load_text(const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("tern-config-test-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream f(path);
    f << text;
  }
  auto r = mta::load_config(path);
  std::filesystem::remove(path);
  return r;
}

}  // namespace

TEST_CASE("etc/tern.toml is the built-in development default") {
  const auto r = mta::load_config(std::string(TERN_SOURCE_DIR) + "/etc/tern.toml");
  REQUIRE(std::holds_alternative<mta::config>(r));
  const auto& f = std::get<mta::config>(r);
  const mta::config d;
  CHECK(f.hostname == d.hostname);
  CHECK(f.data_dir == d.data_dir);
  CHECK(f.threads == d.threads);
  REQUIRE(f.smtp_listen.size() == d.smtp_listen.size());
  CHECK(f.smtp_listen[0].str() == d.smtp_listen[0].str());
  REQUIRE(f.submission_listen.size() == d.submission_listen.size());
  CHECK(f.submission_listen[0].str() == d.submission_listen[0].str());
  CHECK(f.submissions_listen.size() == d.submissions_listen.size());
  CHECK(f.limits.max_message_size == d.limits.max_message_size);
  CHECK(f.limits.max_recipients == d.limits.max_recipients);
  CHECK(f.limits.max_connections == d.limits.max_connections);
  CHECK(f.limits.max_connections_per_ip == d.limits.max_connections_per_ip);
  CHECK(f.limits.max_errors == d.limits.max_errors);
  CHECK(f.limits.command_timeout == d.limits.command_timeout);
  CHECK(f.limits.data_timeout == d.limits.data_timeout);
  CHECK(f.local.domains == d.local.domains);
  CHECK(f.local.mailbox_root == d.local.mailbox_root);
  CHECK(f.local.users_file == d.local.users_file);
  CHECK(f.local.aliases == d.local.aliases);
  CHECK(f.local.catch_all == d.local.catch_all);
  CHECK(f.delivery.enabled == d.delivery.enabled);
  CHECK(f.delivery.retry_initial == d.delivery.retry_initial);
  CHECK(f.delivery.retry_max == d.delivery.retry_max);
  CHECK(f.delivery.max_queue_lifetime == d.delivery.max_queue_lifetime);
  CHECK(f.delivery.max_concurrency == d.delivery.max_concurrency);
  CHECK(f.delivery.history == d.delivery.history);
  CHECK(f.delivery.delay_warning == d.delivery.delay_warning);
  CHECK(f.delivery.smtp_port == d.delivery.smtp_port);
  CHECK(f.delivery.tls == d.delivery.tls);
  CHECK(f.delivery.per_destination_concurrency == d.delivery.per_destination_concurrency);
  CHECK(f.delivery.dns_servers == d.delivery.dns_servers);
  CHECK(f.delivery.transports == d.delivery.transports);
  CHECK(f.relay_networks == d.relay_networks);
  CHECK(f.submission_allow_any_sender == d.submission_allow_any_sender);
  REQUIRE(f.http_listen.size() == d.http_listen.size());
  CHECK(f.http_listen[0].str() == d.http_listen[0].str());
  CHECK(f.http_token_file == d.http_token_file);
  CHECK(f.tls.cert_file == d.tls.cert_file);
  CHECK(f.tls.key_file == d.tls.key_file);
  CHECK(f.limits.max_auth_failures == d.limits.max_auth_failures);
  CHECK(f.limits.auth_failure_delay == d.limits.auth_failure_delay);
}

TEST_CASE("the production example loads") {
  const auto r = mta::load_config(std::string(TERN_SOURCE_DIR) + "/etc/tern.production.toml");
  REQUIRE(std::holds_alternative<mta::config>(r));
  const auto& c = std::get<mta::config>(r);
  CHECK(c.smtp_listen.size() == 2);
  CHECK(c.smtp_listen[1].str() == "[::]:25");
  CHECK(c.submissions_listen[0].port == 465);
  CHECK(c.relay_networks.empty());
}

TEST_CASE("bad files name the line and the problem") {
  struct row {
    const char* text;
    std::size_t line;
    const char* what;
  };
  const row rows[] = {
      {"hostname = 5\n", 1, "'hostname' must be a string"},
      {"hostname = \"ok.example\"\nhostnme = \"x\"\n", 2, "unknown key 'hostnme'"},
      {"[limits]\nmax_recipient = 3\n", 2, "unknown key 'limits.max_recipient'"},
      {"[limits]\nmax_recipients = \"many\"\n", 2, "must be a non-negative integer"},
      {"[limits]\nmax_recipients = 0\n", 2, "at least 1"},
      {"[limits]\ncommand_timeout = \"5 minutes\"\n", 2, "must be a duration"},
      {"[smtp]\nlisten = [\"localhost:25\"]\n", 2, "is not address:port"},
      {"[smtp]\nlisten = [\"127.0.0.1:99999\"]\n", 2, "is not address:port"},
      {"[smtp]\nlisten = \"127.0.0.1:25\"\n", 2, "must be an array"},
      {"[relay]\nnetworks = [\"10.0.0.0/33\"]\n", 2, "is not a network"},
      {"[local]\ndomains = [\"bad domain\"]\n", 2, "not a valid domain"},
      {"[local.aliases]\n\"not-an-address\" = [\"a@b.c\"]\n", 2, "is not a valid address"},
      {"smtp = 1\n", 1, "'smtp' must be a table"},
      {"[delivery]\nmax_concurrency = 0\n", 2, "between 1 and 1000"},
      {"[delivery]\nretry_initial = \"1h\"\nretry_max = \"5m\"\n", 1, "shorter than"},
      {"[delivery]\nretries = 3\n", 2, "unknown key 'delivery.retries'"},
      {"[tls]\ncert_file = \"/x.crt\"\n", 1, "go together"},
      {"[http]\nlisten = \"localhost:80\"\n", 2, "is not address:port"},
      {"[http]\nport = 80\n", 2, "unknown key 'http.port'"},
      {"[submission]\nallow_any_sender = \"yes\"\n", 2, "must be true or false"},
      {"[smtp]\nallow_any_sender = true\n", 2, "unknown key 'smtp.allow_any_sender'"},
      {"[delivery]\ntls = \"always\"\n", 2, "must be \"none\", \"may\" or \"encrypt\""},
      {"[delivery]\ndns_servers = [\"dns.example:53\"]\n", 2, "is not address:port"},
      {"[delivery]\nsource_address = \"::1\"\n", 2, "must be an IPv4 address"},
      {"[http]\nloopback_needs_token = true\n", 2, "needs 'http.token_file'"},
      {"[http]\nloopback_needs_token = \"yes\"\n", 2, "must be true or false"},
      {"[delivery]\nsource_address6 = \"192.0.2.1\"\n", 2, "must be an IPv6 address"},
      {"[delivery]\nsource_address = \"mx.example\"\n", 2, "must be an IPv4 address"},
      {"[delivery.transports]\n\"a.test\" = \"[relay]:x\"\n", 2, "is not \"[host]:port\""},
      {"[local]\ndomains = [\"a.test\"]\n[local.catch_all]\n\"b.test\" = \"x@a.test\"\n", 4, "not in local.domains"},
      {"[smtp]\nlisten = [\n  \"127.0.0.1:25\",\n  \"nope:25\",\n]\n", 4, "is not address:port"},
      {"[relay]\nnetworks = [\n  \"127.0.0.0/8\",\n  \"x\",\n]\n", 4, "is not a network"},
      {"hostname = \"unterminated\n", 1, ""},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    const auto res = load_text(r.text);
    REQUIRE(std::holds_alternative<mta::config_error>(res));
    const auto& e = std::get<mta::config_error>(res);
    CHECK(e.line == r.line);
    CHECK(e.what.find(r.what) != std::string::npos);
    CHECK(e.str().find(":" + std::to_string(r.line) + ": ") != std::string::npos);
  }
}

TEST_CASE("a missing file is an error") {
  const auto r = mta::load_config("/nonexistent/tern.toml");
  REQUIRE(std::holds_alternative<mta::config_error>(r));
  CHECK(std::get<mta::config_error>(r).what == "no such file");
}

TEST_CASE("durations and endpoints") {
  CHECK(mta::parse_duration("30s") == std::chrono::seconds(30));
  CHECK(mta::parse_duration("5m") == std::chrono::seconds(300));
  CHECK(mta::parse_duration("2h") == std::chrono::seconds(7200));
  CHECK(mta::parse_duration("5d") == std::chrono::seconds(432000));
  CHECK_FALSE(mta::parse_duration("5"));
  CHECK_FALSE(mta::parse_duration("m"));
  CHECK_FALSE(mta::parse_duration("-5m"));
  CHECK_FALSE(mta::parse_duration("5w"));
  CHECK(mta::parse_endpoint("127.0.0.1:2525")->port == 2525);
  CHECK(mta::parse_endpoint("[::1]:25")->host == "::1");
  CHECK_FALSE(mta::parse_endpoint("::1:25"));
  CHECK_FALSE(mta::parse_endpoint("127.0.0.1"));
  CHECK_FALSE(mta::parse_endpoint("127.0.0.1:"));
  CHECK_FALSE(mta::parse_endpoint("host.example:25"));
}
