// TOML loading with toml++. Unknown keys are errors, not warnings: a typo in a
// limit must not silently leave the default in force.
#include "mta/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "delivery/route.hpp"
#include "mta/network.hpp"
#include "smtp/address.hpp"

namespace mta {
namespace {

struct bad_config {
  std::size_t line;
  std::string what;
};

std::size_t line_of(const toml::node& n) { return n.source().begin.line; }

void check_keys(const toml::table& t, std::string_view where, const std::set<std::string_view>& allowed) {
  for (const auto& [k, v] : t) {
    if (!allowed.count(k.str()))
      throw bad_config{line_of(v), fmt::format("unknown key '{}{}'", where.empty() ? "" : std::string(where) + ".", k.str())};
  }
}

const toml::table* sub_table(const toml::table& root, std::string_view name) {
  const auto* n = root.get(name);
  if (!n) return nullptr;
  if (!n->is_table()) throw bad_config{line_of(*n), fmt::format("'{}' must be a table", name)};
  return n->as_table();
}

std::string get_string(const toml::node& n, std::string_view key) {
  if (!n.is_string()) throw bad_config{line_of(n), fmt::format("'{}' must be a string", key)};
  return n.as_string()->get();
}

std::uint64_t get_count(const toml::node& n, std::string_view key) {
  if (!n.is_integer() || n.as_integer()->get() < 0)
    throw bad_config{line_of(n), fmt::format("'{}' must be a non-negative integer", key)};
  return static_cast<std::uint64_t>(n.as_integer()->get());
}

std::vector<std::string> get_strings(const toml::node& n, std::string_view key) {
  if (!n.is_array()) throw bad_config{line_of(n), fmt::format("'{}' must be an array of strings", key)};
  std::vector<std::string> out;
  for (const auto& e : *n.as_array()) out.push_back(get_string(e, key));
  return out;
}

std::chrono::seconds get_duration(const toml::node& n, std::string_view key) {
  const auto s = get_string(n, key);
  const auto d = parse_duration(s);
  if (!d || d->count() == 0)
    throw bad_config{line_of(n), fmt::format("'{}' must be a duration such as \"30s\", \"5m\", \"1h\"", key)};
  return *d;
}

std::vector<endpoint> get_endpoints(const toml::node& n, std::string_view key) {
  get_strings(n, key);  // type check
  std::vector<endpoint> out;
  for (const auto& elem : *n.as_array()) {  // each entry reported at its own line
    const auto& s = elem.as_string()->get();
    const auto e = parse_endpoint(s);
    if (!e) throw bad_config{line_of(elem), fmt::format("'{}': \"{}\" is not address:port (e.g. \"127.0.0.1:25\", \"[::]:25\")", key, s)};
    out.push_back(*e);
  }
  return out;
}

std::vector<endpoint> listen_section(const toml::table& root, std::string_view name, std::vector<endpoint> dflt) {
  const auto* t = sub_table(root, name);
  if (!t) return dflt;
  if (name == "submission")
    check_keys(*t, name, {"listen", "allow_any_sender"});
  else
    check_keys(*t, name, {"listen"});
  if (const auto* n = t->get("listen")) return get_endpoints(*n, std::string(name) + ".listen");
  return dflt;
}

config from_table(const toml::table& root) {
  config c;
  check_keys(root, "", {"hostname", "data_dir", "threads", "smtp", "submission", "submissions", "limits", "local",
                        "delivery", "relay", "tls", "http"});
  if (const auto* n = root.get("hostname")) {
    c.hostname = get_string(*n, "hostname");
    if (!smtp::is_valid_domain(c.hostname) || c.hostname.front() == '[')
      throw bad_config{line_of(*n), fmt::format("'hostname': \"{}\" is not a valid host name", c.hostname)};
  }
  if (const auto* n = root.get("data_dir")) c.data_dir = get_string(*n, "data_dir");
  if (const auto* n = root.get("threads")) c.threads = static_cast<unsigned>(get_count(*n, "threads"));
  c.smtp_listen = listen_section(root, "smtp", c.smtp_listen);
  c.submission_listen = listen_section(root, "submission", c.submission_listen);
  c.submissions_listen = listen_section(root, "submissions", c.submissions_listen);
  if (const auto* t = sub_table(root, "submission"); t && t->get("allow_any_sender")) {
    const auto* n = t->get("allow_any_sender");
    if (!n->is_boolean()) throw bad_config{line_of(*n), "'submission.allow_any_sender' must be true or false"};
    c.submission_allow_any_sender = n->as_boolean()->get();
  }
  if (const auto* t = sub_table(root, "http")) {
    check_keys(*t, "http", {"listen", "token_file", "loopback_needs_token"});
    if (const auto* n = t->get("listen")) {
      // One address ("127.0.0.1:8025") or a list of them; "" or [] turns the API off.
      if (n->is_string() && n->as_string()->get().empty()) {
        c.http_listen.clear();
      } else if (n->is_string()) {
        const auto e = parse_endpoint(n->as_string()->get());
        if (!e) throw bad_config{line_of(*n), "'http.listen' is not address:port (e.g. \"127.0.0.1:8025\")"};
        c.http_listen = {*e};
      } else {
        c.http_listen = get_endpoints(*n, "http.listen");
      }
    }
    if (const auto* n = t->get("token_file")) c.http_token_file = get_string(*n, "http.token_file");
    if (const auto* n = t->get("loopback_needs_token")) {
      if (!n->is_boolean()) throw bad_config{line_of(*n), "'http.loopback_needs_token' must be true or false"};
      c.http_loopback_needs_token = n->as_boolean()->get();
      if (c.http_loopback_needs_token && c.http_token_file.empty())
        throw bad_config{line_of(*n), "'http.loopback_needs_token' needs 'http.token_file'"};
    }
  }
  if (const auto* t = sub_table(root, "tls")) {
    check_keys(*t, "tls", {"cert_file", "key_file"});
    if (const auto* n = t->get("cert_file")) c.tls.cert_file = get_string(*n, "tls.cert_file");
    if (const auto* n = t->get("key_file")) c.tls.key_file = get_string(*n, "tls.key_file");
    if (c.tls.cert_file.empty() != c.tls.key_file.empty())
      throw bad_config{line_of(*t), "'tls.cert_file' and 'tls.key_file' go together (both empty: self-signed)"};
  }

  if (const auto* t = sub_table(root, "limits")) {
    check_keys(*t, "limits", {"max_message_size", "max_recipients", "max_connections", "max_connections_per_ip",
                              "max_errors", "command_timeout", "data_timeout", "max_auth_failures",
                              "auth_failure_delay"});
    auto& l = c.limits;
    if (const auto* n = t->get("max_message_size")) l.max_message_size = get_count(*n, "max_message_size");
    if (const auto* n = t->get("max_recipients")) l.max_recipients = get_count(*n, "max_recipients");
    if (const auto* n = t->get("max_connections")) l.max_connections = get_count(*n, "max_connections");
    if (const auto* n = t->get("max_connections_per_ip")) l.max_connections_per_ip = get_count(*n, "max_connections_per_ip");
    if (const auto* n = t->get("max_errors")) l.max_errors = get_count(*n, "max_errors");
    if (const auto* n = t->get("command_timeout")) l.command_timeout = get_duration(*n, "command_timeout");
    if (const auto* n = t->get("data_timeout")) l.data_timeout = get_duration(*n, "data_timeout");
    if (const auto* n = t->get("max_auth_failures")) l.max_auth_failures = get_count(*n, "max_auth_failures");
    if (const auto* n = t->get("auth_failure_delay")) l.auth_failure_delay = get_duration(*n, "auth_failure_delay");
    for (const auto* key : {"max_recipients", "max_connections", "max_connections_per_ip", "max_errors", "max_auth_failures"})
      if (const auto* n = t->get(key); n && n->as_integer()->get() == 0)
        throw bad_config{line_of(*n), fmt::format("'limits.{}' must be at least 1", key)};
  }

  if (const auto* t = sub_table(root, "local")) {
    check_keys(*t, "local", {"domains", "mailbox_root", "users_file", "aliases", "catch_all"});
    if (const auto* n = t->get("domains")) {
      c.local.domains = get_strings(*n, "local.domains");
      for (const auto& d : c.local.domains)
        if (!smtp::is_valid_domain(d) || d.front() == '[')
          throw bad_config{line_of(*n), fmt::format("'local.domains': \"{}\" is not a valid domain", d)};
    }
    if (const auto* n = t->get("mailbox_root")) c.local.mailbox_root = get_string(*n, "local.mailbox_root");
    if (const auto* n = t->get("users_file")) c.local.users_file = get_string(*n, "local.users_file");
    if (const auto* a = t->get("aliases")) {
      if (!a->is_table()) throw bad_config{line_of(*a), "'local.aliases' must be a table"};
      c.local.aliases.clear();
      for (const auto& [k, v] : *a->as_table()) {
        if (!smtp::parse_mailbox(k.str()))
          throw bad_config{line_of(v), fmt::format("alias \"{}\" is not a valid address", k.str())};
        auto targets = get_strings(v, "local.aliases");
        for (const auto& target : targets)
          if (!smtp::parse_mailbox(target))
            throw bad_config{line_of(v), fmt::format("alias target \"{}\" is not a valid address", target)};
        c.local.aliases[std::string(k.str())] = std::move(targets);
      }
    }
    if (const auto* a = t->get("catch_all")) {
      if (!a->is_table()) throw bad_config{line_of(*a), "'local.catch_all' must be a table of domain = address"};
      for (const auto& [k, v] : *a->as_table()) {
        const auto target = get_string(v, "local.catch_all");
        if (std::find(c.local.domains.begin(), c.local.domains.end(), std::string(k.str())) == c.local.domains.end())
          throw bad_config{line_of(v), fmt::format("catch-all domain \"{}\" is not in local.domains", k.str())};
        if (!smtp::parse_mailbox(target))
          throw bad_config{line_of(v), fmt::format("catch-all target \"{}\" is not a valid address", target)};
        c.local.catch_all[std::string(k.str())] = target;
      }
    }
  }

  if (const auto* t = sub_table(root, "delivery")) {
    check_keys(*t, "delivery",
               {"enabled", "retry_initial", "retry_max", "max_queue_lifetime", "max_concurrency", "history",
                "delay_warning", "smtp_port", "transports", "dns_servers", "tls", "per_destination_concurrency",
                "source_address", "source_address6"});
    auto& d = c.delivery;
    if (const auto* n = t->get("enabled")) {
      if (!n->is_boolean()) throw bad_config{line_of(*n), "'delivery.enabled' must be true or false"};
      d.enabled = n->as_boolean()->get();
    }
    if (const auto* n = t->get("retry_initial")) d.retry_initial = get_duration(*n, "delivery.retry_initial");
    if (const auto* n = t->get("retry_max")) d.retry_max = get_duration(*n, "delivery.retry_max");
    if (const auto* n = t->get("max_queue_lifetime")) d.max_queue_lifetime = get_duration(*n, "delivery.max_queue_lifetime");
    if (const auto* n = t->get("history")) d.history = get_duration(*n, "delivery.history");
    if (const auto* n = t->get("delay_warning")) {
      // "0s" (the default) turns delay notices off.
      const auto v = n->is_string() ? parse_duration(n->as_string()->get()) : std::nullopt;
      if (!v) throw bad_config{line_of(*n), "'delivery.delay_warning' must be a duration such as \"4h\", or \"0s\" for none"};
      d.delay_warning = *v;
    }
    if (const auto* n = t->get("max_concurrency")) {
      d.max_concurrency = static_cast<unsigned>(get_count(*n, "delivery.max_concurrency"));
      if (d.max_concurrency == 0 || d.max_concurrency > 1000)
        throw bad_config{line_of(*n), "'delivery.max_concurrency' must be between 1 and 1000"};
    }
    if (const auto* n = t->get("smtp_port")) {
      const auto p = get_count(*n, "delivery.smtp_port");
      if (p == 0 || p > 65535) throw bad_config{line_of(*n), "'delivery.smtp_port' must be a port number"};
      d.smtp_port = static_cast<std::uint16_t>(p);
    }
    if (const auto* n = t->get("per_destination_concurrency")) {
      d.per_destination_concurrency = static_cast<unsigned>(get_count(*n, "delivery.per_destination_concurrency"));
      if (d.per_destination_concurrency == 0)
        throw bad_config{line_of(*n), "'delivery.per_destination_concurrency' must be at least 1"};
    }
    if (const auto* n = t->get("tls")) {
      d.tls = get_string(*n, "delivery.tls");
      if (d.tls != "none" && d.tls != "may" && d.tls != "encrypt")
        throw bad_config{line_of(*n), "'delivery.tls' must be \"none\", \"may\" or \"encrypt\""};
    }
    for (const auto& [key, v6] : {std::pair{"source_address", false}, std::pair{"source_address6", true}}) {
      const auto* n = t->get(key);
      if (!n) continue;
      auto& out = v6 ? d.source_address6 : d.source_address;
      out = get_string(*n, std::string("delivery.") + key);
      const auto ip = parse_ip(out);
      if (!ip || ip->v4 == v6)
        throw bad_config{line_of(*n), fmt::format("'delivery.{}' must be an {} address", key, v6 ? "IPv6" : "IPv4")};
    }
    if (const auto* n = t->get("dns_servers")) {
      d.dns_servers = get_strings(*n, "delivery.dns_servers");
      for (const auto& elem : *n->as_array())
        if (!parse_endpoint(elem.as_string()->get()))
          throw bad_config{line_of(elem), fmt::format("'delivery.dns_servers': \"{}\" is not address:port",
                                                      elem.as_string()->get())};
    }
    if (const auto* a = t->get("transports")) {
      if (!a->is_table()) throw bad_config{line_of(*a), "'delivery.transports' must be a table of domain = \"[host]:port\""};
      for (const auto& [k, v] : *a->as_table()) {
        const auto target = get_string(v, "delivery.transports");
        if (!delivery::parse_route(target, d.smtp_port))
          throw bad_config{line_of(v), fmt::format("transport \"{}\" is not \"[host]:port\" or \"host:port\"", target)};
        d.transports[smtp::lower(k.str())] = target;
      }
    }
    if (d.retry_max < d.retry_initial)
      throw bad_config{line_of(*t), "'delivery.retry_max' is shorter than 'delivery.retry_initial'"};
  }

  if (const auto* t = sub_table(root, "relay")) {
    check_keys(*t, "relay", {"networks"});
    if (const auto* n = t->get("networks")) {
      c.relay_networks = get_strings(*n, "relay.networks");
      for (const auto& elem : *n->as_array())
        if (!parse_cidr(elem.as_string()->get()))
          throw bad_config{line_of(elem), fmt::format("'relay.networks': \"{}\" is not a network (e.g. \"192.0.2.0/24\")",
                                                      elem.as_string()->get())};
    }
  }
  return c;
}

}  // namespace

std::string endpoint::str() const {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::string config_error::str() const {
  return line ? fmt::format("{}:{}: {}", file, line, what) : fmt::format("{}: {}", file, what);
}

std::optional<std::chrono::seconds> parse_duration(std::string_view s) {
  if (s.size() < 2) return std::nullopt;
  std::int64_t n = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size() - 1, n);
  if (ec != std::errc{} || p != s.data() + s.size() - 1 || n < 0 || n > 100 * 365 * 86400LL) return std::nullopt;
  switch (s.back()) {
    case 's': return std::chrono::seconds(n);
    case 'm': return std::chrono::seconds(n * 60);
    case 'h': return std::chrono::seconds(n * 3600);
    case 'd': return std::chrono::seconds(n * 86400);
    default: return std::nullopt;
  }
}

std::optional<endpoint> parse_endpoint(std::string_view s) {
  std::string host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET6, host.c_str(), buf) != 1) return std::nullopt;
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = std::string(s.substr(0, colon));
    port = s.substr(colon + 1);
    unsigned char buf[4];
    if (inet_pton(AF_INET, host.c_str(), buf) != 1) return std::nullopt;
  }
  unsigned p = 0;
  const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc{} || ptr != port.data() + port.size() || p > 65535 || port.empty()) return std::nullopt;
  return endpoint{host, static_cast<std::uint16_t>(p)};
}

std::variant<config, config_error> load_config_text(std::string_view text, const std::string& name) {
  try {
    auto root = toml::parse(text, name);
    auto c = from_table(root);
    c.source = name;
    return c;
  } catch (const toml::parse_error& e) {
    return config_error{name, e.source().begin.line, std::string(e.description())};
  } catch (const bad_config& e) {
    return config_error{name, e.line, e.what};
  }
}

std::variant<config, config_error> load_config(const std::filesystem::path& path) {
  const std::string file = path.string();
  if (!std::filesystem::exists(path)) return config_error{file, 0, "no such file"};
  std::ifstream in(path, std::ios::binary);
  if (!in) return config_error{file, 0, "cannot read"};
  std::stringstream text;
  text << in.rdbuf();
  auto r = load_config_text(text.str(), file);
  if (auto* c = std::get_if<config>(&r)) c->file = path;
  return r;
}

}  // namespace mta
