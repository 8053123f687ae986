#include "delivery/remote_delivery.hpp"

#include <algorithm>
#include <charconv>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "delivery/dsn.hpp"
#include "delivery/resolver.hpp"
#include "delivery/smtp_errors.hpp"
#include "smtp/address.hpp"

namespace delivery {
namespace net = boost::asio;
namespace {

constexpr std::size_t max_received = 50;

struct server {
  std::string name;
  net::ip::tcp::endpoint ep;
};

// For every recipient; relay=none: no server was reached (Postfix's wording).
std::vector<outcome> all(std::size_t n, outcome o) {
  o.relay = "none";
  return std::vector<outcome>(n, o);
}

}  // namespace

std::size_t count_received(std::string_view message) {
  const auto headers = header_section(message);
  std::size_t n = 0, pos = 0;
  while (pos < headers.size()) {
    if (headers.size() - pos >= 9 && smtp::iequals(headers.substr(pos, 9), "received:")) ++n;
    const auto eol = headers.find('\n', pos);
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return n;
}

remote_delivery::remote_delivery(remote_config cfg, log_fn log)
    : ioc_(std::make_unique<net::io_context>()),
      work_(net::make_work_guard(*ioc_)),
      resolver_(std::make_unique<resolver>(*ioc_, cfg.dns_servers)),
      cache_(std::make_unique<connection_cache>(cfg.connection_idle, cfg.connection_reuse_limit)),
      cfg_(std::move(cfg)),
      log_(std::move(log)),
      thread_([this] { ioc_->run(); }) {}

remote_delivery::~remote_delivery() {
  // The resolver belongs to the loop's thread: destroy it there, then stop.
  // After stop() the loop is gone and this thread may do it.
  net::post(*ioc_, [this] {
    cache_.reset();
    resolver_.reset();
  });
  work_.reset();
  if (thread_.joinable()) thread_.join();
  cache_.reset();
  resolver_.reset();
  work_.reset();
  ioc_.reset();  // destroys suspended coroutines while busy_ still exists
}

void remote_delivery::stop() {
  stopping_ = true;
  ioc_->stop();
  if (thread_.joinable()) thread_.join();
}

void remote_delivery::deliver(std::string domain, client_message message, std::shared_ptr<const std::string> data,
                              std::string queue_id, done_fn done) {
  if (stopping_) return;
  message.data = *data;
  // The coroutine owns what it uses: after stop() it may outlive everything
  // else, suspended, until the io_context is destroyed.
  auto owned = std::make_shared<std::pair<client_message, std::shared_ptr<const std::string>>>(std::move(message),
                                                                                               std::move(data));
  auto run = [this, domain, owned, queue_id]() -> net::awaitable<std::vector<outcome>> {
    const auto& msg = owned->first;
    const auto n = msg.rcpts.size();
    if (count_received(msg.data) > max_received)
      co_return all(n, failed(554, "5.4.6", fmt::format("too many hops ({} Received: headers): mail loop?",
                                                         count_received(msg.data))));
    // Where to go: the transport table first, then DNS.
    route rt{domain, cfg_.port, true};
    auto t = cfg_.transports.find(smtp::lower(domain));
    if (t == cfg_.transports.end()) t = cfg_.transports.find("*");
    if (t != cfg_.transports.end()) rt = *parse_route(t->second, cfg_.port);  // checked at start-up

    std::vector<mx_host> hosts;
    if (rt.mx_lookup) {
      const auto mx = co_await resolver_->mx(rt.host);
      switch (mx.status) {
        case dns_status::ok: hosts = mx.hosts; break;
        case dns_status::no_data: hosts.push_back({rt.host, 0}); break;  // implicit MX, RFC 5321 §5.1
        case dns_status::null_mx:
          co_return all(n, failed(556, "5.1.10", fmt::format("domain {} accepts no mail (null MX)", rt.host)));
        case dns_status::nxdomain:
          co_return all(n, failed(550, "5.1.2", fmt::format("host or domain name not found: {} ({})", rt.host, mx.detail)));
        case dns_status::temporary:
          co_return all(n, deferred(451, "4.4.3", fmt::format("cannot look up MX of {}: {}", rt.host, mx.detail)));
      }
    } else {
      hosts.push_back({rt.host, 0});
    }

    std::vector<server> servers;
    std::string dns_problem;
    bool any_temporary = false;
    for (const auto& h : hosts) {
      if (smtp::iequals(h.name, cfg_.hostname))
        co_return all(n, failed(554, "5.4.6", fmt::format("mail for {} loops back to myself (MX {})", domain, h.name)));
      boost::system::error_code ec;
      const auto literal = net::ip::make_address(h.name, ec);
      if (!ec) {
        servers.push_back({h.name, {literal, rt.port}});
        continue;
      }
      const auto a = co_await resolver_->addresses(h.name);
      if (a.status != dns_status::ok) {
        any_temporary = any_temporary || a.status == dns_status::temporary;
        dns_problem = fmt::format("cannot find the address of {}: {}", h.name, a.detail);
        continue;
      }
      for (const auto& addr : a.addresses) servers.push_back({h.name, {addr, rt.port}});
    }
    for (const auto& s : servers) {
      const auto self = s.ep.address().is_v6() ? fmt::format("[{}]:{}", s.ep.address().to_string(), s.ep.port())
                                               : fmt::format("{}:{}", s.ep.address().to_string(), s.ep.port());
      if (std::find(cfg_.self.begin(), cfg_.self.end(), self) != cfg_.self.end())
        co_return all(n, failed(554, "5.4.6", fmt::format("mail for {} loops back to myself ({})", domain, self)));
    }
    if (servers.empty()) {
      if (any_temporary || hosts.size() > 1) co_return all(n, deferred(451, "4.4.3", dns_problem));
      co_return all(n, failed(550, "5.1.2", dns_problem));
    }

    // Wait for a free slot at this destination (bounded by the shutdown check
    // in deliver()); released however this coroutine ends.
    const std::string dest = t != cfg_.transports.end() ? t->second : smtp::lower(domain);
    net::steady_timer wait(*ioc_);
    while (busy_[dest] >= std::max(1u, cfg_.per_destination_concurrency)) {
      wait.expires_after(std::chrono::milliseconds(20));
      co_await wait.async_wait(net::as_tuple(net::use_awaitable));
    }
    ++busy_[dest];
    struct slot {
      std::map<std::string, unsigned>& busy;
      const std::string& dest;
      ~slot() {
        if (--busy[dest] == 0) busy.erase(dest);
      }
    } held{busy_, dest};

    std::vector<std::optional<outcome>> result(n);
    std::vector<std::size_t> pending(n);
    for (std::size_t i = 0; i < n; ++i) pending[i] = i;
    std::string last_reason;
    for (std::size_t si = 0; si < servers.size() && !pending.empty(); ++si) {
      const auto& s = servers[si];
      client_message sub = msg;
      sub.rcpts.clear();
      for (auto i : pending) sub.rcpts.push_back(msg.rcpts[i]);
      const auto relay = fmt::format("{}[{}]:{}", s.name, s.ep.address().to_string(), s.ep.port());
      const auto a = co_await smtp_transaction(s.ep, s.name, cfg_.client, sub, cache_.get());
      if (protocol_error(a)) {
        log_(fmt::format("{}: warning: protocol error with {}: {}", queue_id, relay,
                         a.reply ? a.reply->summary() : a.detail));
        for (const auto& line : a.transcript) log_(fmt::format("{}:   {}", queue_id, line));
      } else if (!a.complete) {
        log_(fmt::format("{}: {} ({})", queue_id, a.reply ? a.reply->summary() : a.detail, relay));
      }
      const auto verdicts = classify(a, sub.rcpts.size(), relay, si + 1 == servers.size());
      std::vector<std::size_t> still;
      for (std::size_t k = 0; k < pending.size(); ++k) {
        if (verdicts[k]) {
          result[pending[k]] = *verdicts[k];
          result[pending[k]]->dsn_passed_on = a.dsn;
          if (a.tls) result[pending[k]]->relay += " (" + a.tls_info + ")";
        } else {
          still.push_back(pending[k]);
        }
      }
      pending = std::move(still);
      last_reason = a.reply ? a.reply->summary() : a.detail;
    }
    std::vector<outcome> out;
    for (auto& r : result) out.push_back(r ? *r : deferred(451, "4.4.1", last_reason));
    co_return out;
  };
  net::co_spawn(*ioc_, std::move(run),
                [this, queue_id, done = std::move(done)](std::exception_ptr e, std::vector<outcome> out) {
                  if (e) {
                    try {
                      std::rethrow_exception(e);
                    } catch (const std::exception& ex) {
                      log_(fmt::format("{}: warning: delivery failed: {}", queue_id, ex.what()));
                    } catch (...) {
                      log_(fmt::format("{}: warning: delivery failed", queue_id));
                    }
                    out.clear();
                  }
                  done(std::move(out));
                });
}

}  // namespace delivery
