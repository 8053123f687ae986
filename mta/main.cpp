// The `tern` binary: flags and wiring only.
//   tern serve [--config FILE]         run the MTA
//   tern check-config [--config FILE]  validate a configuration and exit
//   tern queue CMD ... [--config FILE] inspect and manage the queue
// Without --config every subcommand uses the built-in development default,
// so the CLI finds the same queue as a server started the same way.
#include <cstdio>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "delivery/scheduler.hpp"
#include "mailbox/directory.hpp"
#include "mta/config.hpp"
#include "mta/maillog.hpp"
#include "mta/queue_cli.hpp"
#include "mta/user_cli.hpp"
#include "mta/relay_policy.hpp"
#include "mta/server.hpp"
#include "queue/writer.hpp"

namespace {

int usage() {
  fmt::print(stderr,
             "usage: tern serve [--config FILE]\n"
             "       tern check-config [--config FILE]\n"
             "       tern queue list|show|delete|hold|release|retry|stats ... [--config FILE]\n"
             "       tern user add|passwd|del|list ... [--config FILE]\n");
  return 2;
}

struct loaded {
  mta::config cfg;
  mailbox::directory dir;
  std::vector<mta::cidr> networks;
};

// Everything that can be wrong with a configuration is found here, before
// anything listens or writes.
std::optional<loaded> load(const std::optional<std::string>& path) {
  loaded l;
  if (path) {
    auto r = mta::load_config(*path);
    if (auto* err = std::get_if<mta::config_error>(&r)) {
      fmt::print(stderr, "tern: {}\n", err->str());
      return std::nullopt;
    }
    l.cfg = std::get<mta::config>(std::move(r));
  }
  auto users = mailbox::load_users_file(l.cfg.local.users_file);
  if (auto* err = std::get_if<mailbox::users_file_error>(&users)) {
    if (err->line)
      fmt::print(stderr, "tern: {}:{}: {}\n", l.cfg.local.users_file.string(), err->line, err->what);
    else
      fmt::print(stderr, "tern: {}: {} (local.users_file in {})\n", l.cfg.local.users_file.string(), err->what, l.cfg.source);
    return std::nullopt;
  }
  l.dir = mailbox::directory(l.cfg.local.domains, std::get<mailbox::users_map>(std::move(users)), l.cfg.local.aliases,
                             l.cfg.local.catch_all);
  for (const auto& n : l.cfg.relay_networks) l.networks.push_back(*mta::parse_cidr(n));
  return l;
}

// The writer outlives the scheduler (which records outcomes through it) and
// the server (whose sessions store through it); both stop before it drains.
int serve(loaded& l) {
  queue::writer writer(l.cfg.queue_path());
  queue::id_generator ids;
  delivery::scheduler_config sc;
  sc.hostname = l.cfg.hostname;
  sc.db_path = l.cfg.queue_path();
  sc.mailbox_root = l.cfg.local.mailbox_root;
  sc.retry = {l.cfg.delivery.retry_initial.count(), l.cfg.delivery.retry_max.count(),
              l.cfg.delivery.max_queue_lifetime.count()};
  sc.concurrency = l.cfg.delivery.max_concurrency;
  sc.history_seconds = l.cfg.delivery.history.count();
  sc.delay_warning_seconds = l.cfg.delivery.delay_warning.count();
  auto& remote = sc.remote;
  remote.hostname = l.cfg.hostname;
  remote.client.helo_name = l.cfg.hostname;
  // Checked by load_config: valid addresses of the right family.
  if (!l.cfg.delivery.source_address.empty())
    remote.client.source_v4 = boost::asio::ip::make_address(l.cfg.delivery.source_address);
  if (!l.cfg.delivery.source_address6.empty())
    remote.client.source_v6 = boost::asio::ip::make_address(l.cfg.delivery.source_address6);
  remote.client.tls = l.cfg.delivery.tls == "none"      ? delivery::tls_mode::none
                  : l.cfg.delivery.tls == "encrypt" ? delivery::tls_mode::encrypt
                                                    : delivery::tls_mode::may;
  remote.port = l.cfg.delivery.smtp_port;
  remote.transports = l.cfg.delivery.transports;
  remote.dns_servers = l.cfg.delivery.dns_servers;
  remote.per_destination_concurrency = l.cfg.delivery.per_destination_concurrency;
  for (const auto& ep : l.cfg.smtp_listen) remote.self.push_back(ep.str());
  delivery::scheduler scheduler(sc, writer, l.dir, ids, [](std::string_view line) { mta::maillog::write(line); });
  if (l.cfg.delivery.enabled) {
    writer.on_new_messages([&scheduler] { scheduler.wake(); });
    scheduler.start();
  } else {
    mta::maillog::info("delivery is disabled ([delivery] enabled = false): mail is only queued");
  }
  mta::relay_policy policy(l.dir, l.networks);
  mta::tls_config tls(l.cfg.tls.cert_file, l.cfg.tls.key_file, l.cfg.data_dir, l.cfg.hostname);
  if (const auto err = tls.load(); !err.empty()) {
    mta::maillog::info("fatal: TLS: {}", err);
    scheduler.stop();
    writer.stop();
    return 1;
  }
  const int rc = mta::run_server(
      {l.cfg, policy, writer, ids, tls, l.dir, l.cfg.delivery.enabled ? &scheduler : nullptr});
  scheduler.stop();
  writer.on_new_messages({});
  writer.stop();
  const auto st = writer.stats();
  mta::maillog::info("tern stopped: {} messages stored in {} commits", st.messages, st.batches);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  std::optional<std::string> config_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" || a == "-c") {
      if (i + 1 >= argc) return usage();
      config_path = argv[++i];
    } else if (a.starts_with("--config=")) {
      config_path = a.substr(9);
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) return usage();
  const std::string cmd = args.front();
  args.erase(args.begin());

  if (cmd == "--version" || cmd == "version") {
    fmt::print("tern 0.1.0\n");
    return 0;
  }
  auto l = load(config_path);
  if (!l) return 1;

  if (cmd == "check-config" && args.empty()) {
    fmt::print("{}: ok ({} local domains, {} users, {} aliases, {} relay networks)\n", l->cfg.source,
               l->cfg.local.domains.size(), l->dir.user_count(), l->cfg.local.aliases.size(), l->networks.size());
    return 0;
  }
  if (cmd == "queue") return mta::queue_command(l->cfg, args);
  if (cmd == "user") return mta::user_command(l->cfg, args);
  if (cmd == "serve" && args.empty()) {
    // Created at start-up; if one vanishes later (an unmounted disk), the
    // deliveries that need it are deferred rather than the directory recreated.
    for (const auto& dir : {l->cfg.data_dir, l->cfg.local.mailbox_root}) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (ec) {
        fmt::print(stderr, "tern: cannot create {}: {}\n", dir.string(), ec.message());
        return 1;
      }
    }
    try {
      return serve(*l);
    } catch (const queue::db_error& e) {
      fmt::print(stderr, "tern: {}\n", e.what());
      return 1;
    }
  }
  return usage();
}
