// Listeners and lifecycle. Shutdown follows the Beast examples: cancel, wait a
// bounded time for sessions to finish, then force the io_context to stop.
// Messages already handed to the queue writer are still committed: the writer
// drains before the process exits.
#include "mta/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <list>
#include <thread>

#include "mta/http_server.hpp"
#include "mta/directory_reloader.hpp"
#include "mta/maillog.hpp"
#include "mta/server_context.hpp"
#include "mta/smtp_connection.hpp"

namespace mta {
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace {

constexpr auto shutdown_grace = std::chrono::seconds(10);

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    maillog::info("error: session ended by an exception: {}", x.what());
  }
}

std::string client_ip(const tcp::socket& s) {
  boost::system::error_code ec;
  auto a = s.remote_endpoint(ec).address();
  if (ec) return "unknown";
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  return a.to_string();
}

// One single-threaded io_context per thread: a connection lives on one of
// them for its whole life, so its handlers never run concurrently and need no
// strand.
class io_pool {
 public:
  explicit io_pool(unsigned n) {
    for (unsigned i = 0; i < n; ++i) contexts_.emplace_back(1);
  }
  net::io_context& next() {
    auto& c = contexts_[next_++ % contexts_.size()];
    return c;
  }
  std::deque<net::io_context>& all() { return contexts_; }

 private:
  std::deque<net::io_context> contexts_;
  std::atomic<std::size_t> next_{0};
};

net::awaitable<void> accept_loop(tcp::acceptor& acc, server_context& ctx, io_pool& pool, role r) {
  while (!ctx.stopping) {
    tcp::socket sock(pool.next());
    auto [ec] = co_await acc.async_accept(sock, net::as_tuple(net::use_awaitable));
    if (ec) {
      if (ctx.stopping || ec == net::error::operation_aborted) break;
      // Out of descriptors or similar: back off briefly instead of spinning.
      maillog::info("warning: accept: {}", ec.message());
      net::steady_timer t(acc.get_executor(), std::chrono::milliseconds(100));
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
      continue;
    }
    auto ip = client_ip(sock);
    ++ctx.counters.connections_total;
    const auto& l = ctx.cfg.limits;
    switch (ctx.connections.admit(ip, l.max_connections, l.max_connections_per_ip)) {
      case connection_table::admission::ok: {
        auto ex = sock.get_executor();
        net::co_spawn(ex, serve_smtp(std::move(sock), ctx, std::move(ip), r), log_exception);
        break;
      }
      case connection_table::admission::too_many:
        ++ctx.counters.connections_rejected;
        maillog::info("warning: too many connections, refusing [{}]", ip);
        net::co_spawn(sock.get_executor(),
                      refuse_smtp(std::move(sock), "421 4.7.0 " + ctx.cfg.hostname + " Error: too many connections\r\n"),
                      net::detached);
        break;
      case connection_table::admission::too_many_from_ip:
        ++ctx.counters.connections_rejected;
        maillog::info("warning: too many connections from [{}]", ip);
        net::co_spawn(sock.get_executor(),
                      refuse_smtp(std::move(sock),
                                  "421 4.7.0 " + ctx.cfg.hostname + " Error: too many connections from your address\r\n"),
                      net::detached);
        break;
    }
  }
}

net::awaitable<void> http_accept_loop(tcp::acceptor& acc, server_context& ctx, http_api& api) {
  while (!ctx.stopping) {
    tcp::socket sock(acc.get_executor());
    auto [ec] = co_await acc.async_accept(sock, net::as_tuple(net::use_awaitable));
    if (ec) {
      if (ctx.stopping || ec == net::error::operation_aborted) break;
      continue;
    }
    auto ip = client_ip(sock);
    net::co_spawn(acc.get_executor(), serve_http(std::move(sock), api, std::move(ip)), log_exception);
  }
}

// Looks at the users and configuration files every 2 s until the timer is
// cancelled (shutdown).
net::awaitable<void> watch_directory_files(net::steady_timer& timer, directory_reloader& files) {
  for (;;) {
    timer.expires_after(std::chrono::seconds(2));
    auto [ec] = co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    if (ec) co_return;
    files.poll();
  }
}

// Waits until every session has ended or the grace period is over.
net::awaitable<void> drain(server_context& ctx, io_pool& pool) {
  net::steady_timer t(pool.all().front());
  const auto deadline = std::chrono::steady_clock::now() + shutdown_grace;
  while (ctx.connections.size() > 0 && std::chrono::steady_clock::now() < deadline) {
    t.expires_after(std::chrono::milliseconds(50));
    co_await t.async_wait(net::as_tuple(net::use_awaitable));
  }
  if (ctx.connections.size() > 0) maillog::info("warning: {} sessions did not end in time", ctx.connections.size());
  for (auto& ioc : pool.all()) ioc.stop();
}

}  // namespace

// Binds every listener of one role; false (after logging) when one cannot be bound.
bool bind_all(std::list<std::pair<tcp::acceptor, role>>& out, net::io_context& ioc, const std::vector<endpoint>& eps,
              role r, std::string_view what) {
  for (const auto& ep : eps) {
    const tcp::endpoint endpoint(net::ip::make_address(ep.host), ep.port);
    auto& [acc, rr] = out.emplace_back(tcp::acceptor(ioc), r);
    boost::system::error_code ec;
    acc.open(endpoint.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && endpoint.address().is_v6()) acc.set_option(net::ip::v6_only(true), ec);
    if (!ec) acc.bind(endpoint, ec);
    if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      maillog::info("fatal: cannot listen on {}: {}", ep.str(), ec.message());
      return false;
    }
    maillog::info("listening for {} on {}", what, ep.str());
  }
  return true;
}

int run_server(const server_deps& deps) {
  const auto& cfg = deps.cfg;
  const unsigned threads = cfg.threads ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());
  io_pool pool(threads);
  auto& ioc = pool.all().front();
  // Idle contexts must not return from run() before work arrives.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> keep_alive;
  for (auto& c : pool.all()) keep_alive.push_back(net::make_work_guard(c));
  server_context ctx{cfg,
                     deps.policy,
                     deps.writer,
                     deps.ids,
                     deps.tls,
                     deps.dir,
                     auth_throttle(static_cast<unsigned>(cfg.limits.max_auth_failures),
                                   std::chrono::duration_cast<std::chrono::milliseconds>(cfg.limits.auth_failure_delay)),
                     {},
                     {},
                     {}};

  std::list<std::pair<tcp::acceptor, role>> acceptors;
  if (!bind_all(acceptors, ioc, cfg.smtp_listen, role::mx, "SMTP") ||
      !bind_all(acceptors, ioc, cfg.submission_listen, role::submission, "submission") ||
      !bind_all(acceptors, ioc, cfg.submissions_listen, role::submissions, "submissions (implicit TLS)"))
    return 1;
  for (auto& [acc, r] : acceptors) net::co_spawn(ioc, accept_loop(acc, ctx, pool, r), log_exception);

  // The admin API: one io_context (the first), so http_api needs no locking.
  std::string token;
  if (!cfg.http_token_file.empty()) {
    std::ifstream f(cfg.http_token_file);
    std::getline(f, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) {
      maillog::info("fatal: no token in http.token_file {}", cfg.http_token_file.string());
      return 1;
    }
  }
  http_api api(cfg, deps.dir, token, [&](const queue::queue_stats& q) {
    return render_metrics({ctx.counters, ctx.connections.size(), deps.writer, deps.scheduler, q, std::time(nullptr)});
  });
  std::list<tcp::acceptor> http_acceptors;
  for (const auto& ep : cfg.http_listen) {
    std::list<std::pair<tcp::acceptor, role>> one;
    if (!bind_all(one, ioc, {ep}, role::mx, "HTTP (admin API)")) return 1;
    http_acceptors.push_back(std::move(one.front().first));
  }
  for (auto& acc : http_acceptors) net::co_spawn(ioc, http_accept_loop(acc, ctx, api), log_exception);

  net::signal_set hup(ioc, SIGHUP);
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  directory_reloader directory_files(deps.dir, cfg.local.users_file, cfg.file);
  net::steady_timer files_timer(ioc);
  net::co_spawn(ioc, watch_directory_files(files_timer, directory_files), net::detached);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    maillog::info("signal {} received, shutting down", sig);
    ctx.stopping = true;
    for (auto& [acc, r] : acceptors) {
      boost::system::error_code ignored;
      acc.close(ignored);
    }
    for (auto& acc : http_acceptors) {
      boost::system::error_code ignored;
      acc.close(ignored);
    }
    ctx.connections.stop_all();
    keep_alive.clear();
    hup.cancel();
    files_timer.cancel();
    net::co_spawn(ioc, drain(ctx, pool), net::detached);
  });
  // SIGHUP reloads the certificate (sessions already in TLS keep theirs), the
  // users file, and the aliases and catch-alls of the configuration.
  std::function<void(boost::system::error_code, int)> on_hup = [&](boost::system::error_code ec, int) {
    if (ec) return;
    directory_files.reload();
    const auto err = ctx.tls.load();
    if (err.empty())
      maillog::info("TLS certificate reloaded from {}", ctx.tls.cert_file().string());
    else
      maillog::info("warning: TLS certificate not reloaded, keeping the old one: {}", err);
    if (!ctx.stopping) hup.async_wait(on_hup);
  };
  hup.async_wait(on_hup);

  maillog::info("tern started: hostname={}, queue={}, threads={}", cfg.hostname, cfg.queue_path().string(), threads);
  std::vector<std::thread> workers;
  for (unsigned i = 1; i < threads; ++i) workers.emplace_back([&pool, i] { pool.all()[i].run(); });
  ioc.run();
  for (auto& t : workers) t.join();
  return 0;
}

}  // namespace mta
