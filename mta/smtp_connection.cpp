// The socket side of an SMTP session: every read and write has a deadline
// (RFC 5321 §4.5.3.2), the read buffer starts small and grows only for bulk
// data (idle connections must stay cheap), and the 250 to a message is sent
// only after the queue writer reports it committed.
#include "mta/smtp_connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <memory>
#include <utility>

#include "delivery/timed_socket.hpp"
#include "mta/passwords.hpp"
#include "mta/maillog.hpp"

namespace mta {
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace {

constexpr std::size_t initial_buffer = 1024;
constexpr std::size_t max_buffer = 64 * 1024;

using connection = delivery::timed_socket;

struct store_outcome {
  queue::store_result result;
  std::string detail;
};

// Hands the message to the group-commit writer and resumes the coroutine on its
// own executor once the commit has returned.
net::awaitable<store_outcome> store(queue::writer& w, queue::new_message m) {
  auto ex = co_await net::this_coro::executor;
  // A named initiation, not a temporary inside the co_await expression: GCC 12
  // destroys such temporaries wrongly.
  auto initiate = [&w, ex](auto handler, queue::new_message msg) {
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    // The work guard keeps io_context::run() from returning while a commit is pending.
    auto guard = std::make_shared<net::executor_work_guard<decltype(ex)>>(ex);
    w.submit(std::move(msg), [h, guard, ex](queue::store_result r, const std::string& detail) {
      net::post(ex, [h, guard, r, detail]() mutable { std::move (*h)(store_outcome{r, detail}); });
    });
  };
  auto outcome = co_await net::async_initiate<decltype(net::use_awaitable), void(store_outcome)>(
      initiate, net::use_awaitable, std::move(m));
  co_return outcome;
}

queue::new_message to_queue(smtp::session& s) {
  auto& t = s.txn();
  queue::new_message m;
  m.id = t.id;
  m.received_at = std::time(nullptr);
  m.sender = t.sender.str();
  m.client_ip = s.client_ip();
  m.helo = s.helo();
  m.body_type = std::string(smtp::to_string(t.params.body));
  m.smtputf8 = t.params.smtputf8;
  m.ret = t.params.ret;
  m.envid = t.params.envid;
  for (const auto& r : t.rcpts) m.rcpts.push_back({r.addr.str(), r.params.notify, r.params.orcpt});
  m.data = std::move(t.message);
  return m;
}

net::awaitable<bool> write_all(connection& c, const std::string& out, std::chrono::seconds timeout) {
  c.arm(timeout);
  auto [ec, n] = co_await net::async_write(c.sock, net::buffer(out), net::as_tuple(net::use_awaitable));
  c.disarm();
  co_return !ec;
}

// The socket, with TLS over it once a handshake succeeded.
struct channel {
  std::shared_ptr<connection> c;
  std::unique_ptr<ssl::stream<tcp_socket&>> tls;

  net::awaitable<bool> write(const std::string& out, std::chrono::seconds timeout) {
    if (!tls) co_return co_await write_all(*c, out, timeout);
    c->arm(timeout);
    auto [ec, n] = co_await net::async_write(*tls, net::buffer(out), net::as_tuple(net::use_awaitable));
    c->disarm();
    co_return !ec;
  }
  net::awaitable<std::tuple<boost::system::error_code, std::size_t>> read(net::mutable_buffer b,
                                                                          std::chrono::seconds timeout) {
    c->arm(timeout);
    boost::system::error_code ec;
    std::size_t n = 0;
    if (tls)
      std::tie(ec, n) = co_await tls->async_read_some(b, net::as_tuple(net::use_awaitable));
    else
      std::tie(ec, n) = co_await c->sock.async_read_some(b, net::as_tuple(net::use_awaitable));
    c->disarm();
    co_return std::make_tuple(ec, n);
  }
  // Returns "TLSv1.3 TLS_AES_256_GCM_SHA384", or empty when the handshake failed.
  net::awaitable<std::string> handshake(ssl::context& ctx, std::chrono::seconds timeout) {
    tls = std::make_unique<ssl::stream<tcp_socket&>>(c->sock, ctx);
    c->arm(timeout);
    auto [ec] = co_await tls->async_handshake(ssl::stream_base::server, net::as_tuple(net::use_awaitable));
    c->disarm();
    if (ec) {
      tls.reset();
      co_return std::string();
    }
    co_return std::string(SSL_get_version(tls->native_handle())) + " " + SSL_get_cipher_name(tls->native_handle());
  }
};

}  // namespace

net::awaitable<void> refuse_smtp(tcp_socket sock, std::string reply_line) {
  auto c = std::make_shared<connection>(std::move(sock));
  co_await write_all(*c, reply_line, std::chrono::seconds(10));
  c->close();
}

smtp::session_config server_context::session_config(role r) const {
  smtp::session_config sc;
  sc.hostname = cfg.hostname;
  sc.limits.max_message_size = cfg.limits.max_message_size;
  sc.limits.max_recipients = cfg.limits.max_recipients;
  sc.limits.max_errors = cfg.limits.max_errors;
  sc.starttls = r != role::submissions && tls.current() != nullptr;
  sc.tls_active = r == role::submissions;
  sc.auth = r != role::mx;
  sc.auth_required = r != role::mx;
  return sc;
}

net::awaitable<void> serve_smtp(tcp_socket sock, server_context& ctx, std::string ip, role r) {
  auto c = std::make_shared<connection>(std::move(sock));
  const auto stopper = ctx.connections.on_stop([c] { net::post(c->sock.get_executor(), [c] { c->sock.cancel(); }); });
  // Leaves the connection table once: before the last reply is written, so a
  // client that reconnects as soon as it reads "221" is not refused because
  // its old connection still counts.
  struct leave_guard {
    server_context& ctx;
    const std::string& ip;
    std::uint64_t id;
    bool left = false;
    void leave() {
      if (!std::exchange(left, true)) ctx.connections.leave(ip, id);
    }
    ~leave_guard() { leave(); }
  } guard{ctx, ip, stopper};

  const auto client = parse_ip(ip);
  smtp::session_hooks hooks;
  hooks.check_rcpt = [&](const smtp::address& a, const std::string& user) {
    return ctx.policy.check_rcpt(*client, !user.empty(), a);
  };
  hooks.authenticate = [&](const std::string& user, const std::string& password) {
    if (ctx.throttle.blocked(ip)) return false;  // not even checked: the guess tells nothing
    const auto addr = smtp::parse_mailbox(user);
    if (!addr) return false;
    const auto hash = ctx.dir.password_hash(mailbox::directory::canonical(*addr));
    return hash && verify_password(*hash, password);
  };
  hooks.check_sender = [&](const smtp::address& sender, const std::string& user) -> std::optional<smtp::reply> {
    if (ctx.cfg.submission_allow_any_sender || ctx.dir.owns(user, sender)) return std::nullopt;
    return smtp::make_reply(553, "5.7.1", "<" + sender.str() + ">: Sender address rejected: not owned by user " + user);
  };
  hooks.next_id = [&] { return ctx.ids.next(); };
  hooks.now = [] { return std::time(nullptr); };
  hooks.log = [](std::string_view line) { maillog::write(line); };
  smtp::session s(ctx.session_config(r), ip, std::move(hooks));
  maillog::info("connect from [{}]", ip);

  boost::system::error_code ec;
  c->sock.set_option(net::ip::tcp::no_delay(true), ec);
  channel ch{c, nullptr};

  std::string buf(initial_buffer, '\0');
  std::size_t len = 0;
  if (r == role::submissions) {  // RFC 8314: TLS from the first byte
    const auto tls_ctx = ctx.tls.current();
    std::string info;  // no conditional around co_await: GCC 12 mishandles its temporaries
    if (tls_ctx) info = co_await ch.handshake(*tls_ctx, ctx.cfg.limits.command_timeout);
    if (info.empty()) {
      maillog::info("warning: TLS handshake failed with [{}]", ip);
      c->close();
      co_return;
    }
    s.tls_started(info);
  }
  s.start();
  while (true) {
    const std::size_t used = len ? s.consume(std::string_view(buf.data(), len)) : 0;
    if (used) {
      std::memmove(buf.data(), buf.data() + used, len - used);
      len -= used;
    }
    if (s.next() == smtp::action::close) guard.leave();
    if (s.take_auth_failure()) {
      // Brute force must be slow: the answer to a wrong password waits,
      // longer each time from the same address; past the limit, 421.
      const auto v = ctx.throttle.failed(ip);
      net::steady_timer pause(c->sock.get_executor(), v.delay);
      co_await pause.async_wait(net::as_tuple(net::use_awaitable));
      if (v.disconnect) {
        s.too_many_auth_failures();
        guard.leave();
      }
    }
    if (!s.output().empty()) {
      const auto out = s.take_output();
      const bool written = co_await ch.write(out, ctx.cfg.limits.command_timeout);
      if (!written) break;
    }
    if (s.next() == smtp::action::close) break;
    if (s.next() == smtp::action::starttls) {
      // RFC 3207 §4.2 (CVE-2011-0411): what the client sent before the
      // handshake — a pipelined command after STARTTLS — is thrown away.
      len = 0;
      const auto tls_ctx = ctx.tls.current();
      const auto info = co_await ch.handshake(*tls_ctx, ctx.cfg.limits.command_timeout);
      if (info.empty()) {
        maillog::info("warning: TLS handshake failed with [{}]", ip);
        s.tls_failed();
        break;
      }
      s.tls_started(info);
      continue;
    }
    if (s.next() == smtp::action::enqueue) {
      auto msg = to_queue(s);
      const auto nrcpt = msg.rcpts.size();
      const auto size = msg.data.size();
      const auto id = msg.id;
      const auto from = msg.sender;
      const auto outcome = co_await store(ctx.writer, std::move(msg));
      if (outcome.result == queue::store_result::ok) {
        maillog::info("{}: from=<{}>, size={}, nrcpt={} (queue active)", id, from, size, nrcpt);
        ++ctx.counters.messages_received;
        s.enqueued();
      } else if (outcome.result == queue::store_result::disk_full) {
        maillog::info("{}: warning: queue file write error: {}", id, outcome.detail);
        s.enqueue_failed(smtp::make_reply(452, "4.3.1", "Insufficient system storage"));
      } else {
        maillog::info("{}: warning: queue file write error: {}", id, outcome.detail);
        s.enqueue_failed(smtp::make_reply(451, "4.3.0", "Error: queue file write error"));
      }
      continue;
    }
    if (used && len) continue;  // more complete input may be waiting behind the output cap
    if (ctx.stopping) {
      s.shutting_down();
      continue;
    }
    if (len == buf.size() && buf.size() < max_buffer) buf.resize(buf.size() * 2);
    const auto timeout = s.in_data() ? ctx.cfg.limits.data_timeout : ctx.cfg.limits.command_timeout;
    const auto space = net::buffer(buf.data() + len, buf.size() - len);
    auto [rec, n] = co_await ch.read(space, timeout);
    if (rec) {
      if (c->timed_out) {
        maillog::info("timeout after {} from [{}]", s.in_data() ? "DATA" : "command", ip);
        s.timed_out();
        continue;
      }
      if (rec == net::error::operation_aborted && ctx.stopping) continue;
      break;  // the client went away
    }
    len += n;
    // Data arrives fast in bulk: grow the buffer so that big messages take fewer reads.
    if (len == buf.size() && buf.size() < max_buffer) buf.resize(buf.size() * 2);
  }
  if (!s.authenticated().empty()) ctx.throttle.succeeded(ip);
  ch.tls.reset();
  c->close();
  maillog::info("disconnect from [{}]", ip);
}

}  // namespace mta
