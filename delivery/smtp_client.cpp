// The conversation is written once, as a template over the stream, and run on
// the plain socket and — after STARTTLS — on the TLS stream over it. Every
// read and write has the deadline RFC 5321 §4.5.3.2 gives its stage.
#include "delivery/smtp_client.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "delivery/timed_socket.hpp"
#include "smtp/dot_stuffer.hpp"
#include "smtp/reply_parser.hpp"

namespace delivery {
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

std::string_view describe(stage s) {
  switch (s) {
    case stage::connect: return "connecting";
    case stage::greeting: return "receiving the initial server greeting";
    case stage::ehlo: return "performing the EHLO handshake";
    case stage::helo: return "performing the HELO handshake";
    case stage::starttls: return "performing the STARTTLS handshake";
    case stage::mail: return "sending MAIL FROM";
    case stage::rcpt: return "sending RCPT TO";
    case stage::data: return "sending message content";
    case stage::dot: return "sending end of data -- message may be sent more than once";
    case stage::done: return "quitting";
  }
  return "?";
}

namespace {

struct extensions {
  bool pipelining = false, eight_bit = false, smtputf8 = false, dsn = false, starttls = false;
  std::uint64_t size = 0;  // 0: no limit announced
};

extensions parse_ehlo(const smtp::reply& r) {
  extensions e;
  for (std::size_t i = 1; i < r.lines.size(); ++i) {
    std::string l = r.lines[i];
    for (auto& c : l) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const auto word = l.substr(0, l.find(' '));
    if (word == "PIPELINING") e.pipelining = true;
    else if (word == "8BITMIME") e.eight_bit = true;
    else if (word == "SMTPUTF8") e.smtputf8 = true;
    else if (word == "DSN") e.dsn = true;
    else if (word == "STARTTLS") e.starttls = true;
    else if (word == "SIZE" && l.size() > 5) e.size = std::strtoull(l.c_str() + 5, nullptr, 10);
  }
  return e;
}

ssl::context& tls_context() {
  // Opportunistic TLS: encrypt, but accept any certificate (RFC 7435); TLS 1.2 at least.
  static ssl::context ctx = [] {
    ssl::context c(ssl::context::tls_client);
    c.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    c.set_verify_mode(ssl::verify_none);
    return c;
  }();
  return ctx;
}

}  // namespace

// An open SMTP session between transactions: the socket, TLS over it once
// STARTTLS succeeded, what the server offers, and input not yet parsed.
struct connection {
  std::shared_ptr<timed_socket> t;
  std::unique_ptr<ssl::stream<tcp::socket&>> tls;
  std::string buf;
  extensions ext;
  std::string tls_info;
  unsigned transactions = 0;
  std::unique_ptr<net::steady_timer> idle;  // while parked in the cache
};

namespace {

class dialog {
 public:
  dialog(connection& c, const client_config& cfg, attempt& a) : c_(c), cfg_(cfg), a_(a) {}

  net::awaitable<std::optional<smtp::reply>> read(std::chrono::seconds timeout, stage st) {
    // The timeout bounds the whole reply, not each read: a server that drips
    // one octet a second must not hold the connection (and a worker) for days.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (!c_.buf.empty()) {
        const auto r = parser_.feed(c_.buf);
        c_.buf.erase(0, r.consumed);
        if (r.st == smtp::reply_parser::status::done) {
          auto rep = parser_.take();
          a_.transcript.push_back("<- " + rep.summary());
          co_return rep;
        }
        if (r.st == smtp::reply_parser::status::error) {
          fail(st, "protocol error: " + parser_.error());
          co_return std::nullopt;
        }
      }
      char tmp[4096];
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) {
        fail(st, fmt::format("timeout while {}", describe(st)));
        co_return std::nullopt;
      }
      c_.t->arm(left);
      boost::system::error_code ec;
      std::size_t n = 0;
      if (c_.tls)
        std::tie(ec, n) = co_await c_.tls->async_read_some(net::buffer(tmp), net::as_tuple(net::use_awaitable));
      else
        std::tie(ec, n) = co_await c_.t->sock.async_read_some(net::buffer(tmp), net::as_tuple(net::use_awaitable));
      c_.t->disarm();
      if (ec) {
        fail(st, fmt::format("{} while {}", c_.t->timed_out ? "timeout" : "lost connection", describe(st)));
        co_return std::nullopt;
      }
      c_.buf.append(tmp, n);
    }
  }

  net::awaitable<bool> write(std::string_view data, std::chrono::seconds timeout, stage st) {
    c_.t->arm(timeout);
    boost::system::error_code ec;
    std::size_t n = 0;
    if (c_.tls)
      std::tie(ec, n) = co_await net::async_write(*c_.tls, net::buffer(data), net::as_tuple(net::use_awaitable));
    else
      std::tie(ec, n) = co_await net::async_write(c_.t->sock, net::buffer(data), net::as_tuple(net::use_awaitable));
    c_.t->disarm();
    if (ec) fail(st, fmt::format("{} while {}", c_.t->timed_out ? "timeout" : "lost connection", describe(st)));
    co_return !ec;
  }

  // One command, one reply. (Arguments are views and strings are built into
  // named locals: GCC 12 mishandles temporaries with destructors inside a
  // co_await expression.)
  net::awaitable<std::optional<smtp::reply>> command(std::string_view line, stage st) {
    std::string out(line);
    a_.transcript.push_back("-> " + out);
    out += "\r\n";
    const bool sent = co_await write(out, cfg_.command_timeout, st);
    if (!sent) co_return std::nullopt;
    auto r = co_await read(cfg_.command_timeout, st);
    co_return r;
  }

  void fail(stage st, std::string detail) {
    a_.at = st;
    a_.io_error = true;
    a_.detail = std::move(detail);
  }

 private:
  connection& c_;
  const client_config& cfg_;
  attempt& a_;
  smtp::reply_parser parser_;
};

bool ended_with(attempt& a, stage st, const std::optional<smtp::reply>& r, bool ok) {
  if (!r) return true;  // io error already recorded
  if (ok) return false;
  a.at = st;
  a.reply = *r;
  return true;
}

net::awaitable<void> ehlo(dialog& d, const client_config& cfg, attempt& a, extensions& ext) {
  const std::string ehlo_line = "EHLO " + cfg.helo_name;
  auto r = co_await d.command(ehlo_line, stage::ehlo);
  if (!r) co_return;
  if (r->code == 250) {
    ext = parse_ehlo(*r);
    a.at = stage::mail;
    co_return;
  }
  if (!r->permanent()) {  // 4xx: not worth a HELO
    ended_with(a, stage::ehlo, r, false);
    co_return;
  }
  ext = {};
  const std::string helo_line = "HELO " + cfg.helo_name;
  r = co_await d.command(helo_line, stage::helo);
  if (ended_with(a, stage::helo, r, r && r->code == 250)) co_return;
  a.at = stage::mail;
}

// MAIL, RCPT…, DATA and the message; pipelined when the server allows it.
net::awaitable<void> transaction(dialog& d, const client_config& cfg, attempt& a, const extensions& ext,
                                 const client_message& m) {
  if (ext.size && m.data.size() > ext.size) {
    a.at = stage::mail;
    a.local_refusal = true;
    a.detail = fmt::format("message size {} exceeds the server's limit of {}", m.data.size(), ext.size);
    a.reply = smtp::make_reply(552, "5.3.4", a.detail);
    co_return;
  }
  if (m.smtputf8 && !ext.smtputf8) {
    // RFC 6531 §3.2: a message that needs SMTPUTF8 cannot be downgraded here.
    a.at = stage::mail;
    a.local_refusal = true;
    a.detail = "the message needs SMTPUTF8, which the server does not support";
    a.reply = smtp::make_reply(553, "5.6.7", a.detail);
    co_return;
  }
  std::string mail = fmt::format("MAIL FROM:<{}>", m.sender);
  if (ext.size) mail += fmt::format(" SIZE={}", m.data.size());
  if (m.eight_bit && ext.eight_bit) mail += " BODY=8BITMIME";
  if (m.smtputf8) mail += " SMTPUTF8";
  if (ext.dsn && !m.ret.empty()) mail += " RET=" + m.ret;
  if (ext.dsn && !m.envid.empty()) mail += " ENVID=" + m.envid;
  std::vector<std::string> rcpts;
  for (const auto& r : m.rcpts) {
    std::string line = fmt::format("RCPT TO:<{}>", r.address);
    if (ext.dsn && !r.notify.empty()) line += " NOTIFY=" + r.notify;
    if (ext.dsn && !r.orcpt.empty()) line += " ORCPT=" + r.orcpt;
    rcpts.push_back(std::move(line));
  }
  a.rcpt_replies.assign(m.rcpts.size(), std::nullopt);
  a.dsn = ext.dsn;

  std::optional<smtp::reply> mail_r, data_r;
  std::size_t accepted = 0;
  if (ext.pipelining) {
    // RFC 2920 §3.1: MAIL, every RCPT and DATA in one write, replies read in order.
    std::string batch = mail + "\r\n";
    for (const auto& l : rcpts) batch += l + "\r\n";
    batch += "DATA\r\n";
    a.transcript.push_back("-> " + mail + " (+" + std::to_string(rcpts.size()) + " RCPT, DATA pipelined)");
    const bool sent = co_await d.write(batch, cfg.command_timeout, stage::mail);
    if (!sent) co_return;
    mail_r = co_await d.read(cfg.command_timeout, stage::mail);
    if (!mail_r) co_return;
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      auto r = co_await d.read(cfg.command_timeout, stage::rcpt);
      if (!r) co_return;
      if (mail_r->positive()) a.rcpt_replies[i] = r;
      if (r->positive() && mail_r->positive()) ++accepted;
    }
    data_r = co_await d.read(cfg.data_init_timeout, stage::data);
    if (!data_r) co_return;
    if (ended_with(a, stage::mail, mail_r, mail_r->positive())) {
      if (data_r->code == 354) co_await d.write(".\r\n", cfg.command_timeout, stage::dot);
      co_return;
    }
  } else {
    mail_r = co_await d.command(mail, stage::mail);
    if (ended_with(a, stage::mail, mail_r, mail_r && mail_r->positive())) co_return;
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      auto r = co_await d.command(rcpts[i], stage::rcpt);
      if (!r) co_return;
      a.rcpt_replies[i] = r;
      if (r->positive()) ++accepted;
    }
    if (accepted == 0) {
      a.complete = true;
      a.at = stage::done;
      co_return;
    }
    data_r = co_await d.command("DATA", stage::data);
    if (!data_r) co_return;
  }
  if (accepted == 0) {
    // Every RCPT refused; a pipelined DATA that still got 354 is ended empty.
    if (data_r->code == 354) {
      const bool sent = co_await d.write(".\r\n", cfg.command_timeout, stage::dot);
      if (!sent) co_return;
      co_await d.read(cfg.data_done_timeout, stage::dot);
    }
    a.complete = true;
    a.at = stage::done;
    co_return;
  }
  if (ended_with(a, stage::data, data_r, data_r->code == 354)) co_return;

  const auto wire = smtp::dot_stuff(m.data);
  constexpr std::size_t block = 64 * 1024;
  for (std::size_t off = 0; off < wire.size(); off += block) {
    const auto piece = std::string_view(wire).substr(off, block);
    const bool last = off + block >= wire.size();
    const bool sent = co_await d.write(piece, cfg.data_block_timeout, last ? stage::dot : stage::data);
    if (!sent) co_return;
  }
  a.transcript.push_back("-> (message, " + std::to_string(m.data.size()) + " octets) .");
  auto fin = co_await d.read(cfg.data_done_timeout, stage::dot);
  if (!fin) co_return;
  a.final_reply = fin;
  a.complete = true;
  a.at = stage::done;
}

// A QUIT that fails (the server already hung up) changes nothing about the outcome.
net::awaitable<void> quit(dialog& d, attempt& a) {
  const attempt before = a;
  co_await d.command("QUIT", stage::done);
  a = before;
}


// Connect, greet, EHLO, STARTTLS (when offered and allowed), EHLO again. On
// success `c` is ready for MAIL; otherwise `a` says why not and `c` is closed.
net::awaitable<void> open(connection& c, const tcp::endpoint& server, const std::string& server_name,
                          const client_config& cfg, attempt& a) {
  auto ex = co_await net::this_coro::executor;
  c.t = std::make_shared<timed_socket>(tcp::socket(ex));
  if (const auto& source = server.address().is_v4() ? cfg.source_v4 : cfg.source_v6) {
    boost::system::error_code bec;
    c.t->sock.open(server.protocol(), bec);
    if (!bec) c.t->sock.bind(tcp::endpoint(*source, 0), bec);
    if (bec) {
      a.at = stage::connect;
      a.io_error = true;
      a.detail = fmt::format("connect to {}[{}]:{}: cannot use source address {}: {}", server_name,
                             server.address().to_string(), server.port(), source->to_string(), bec.message());
      c.t->close();
      co_return;
    }
  }
  c.t->arm(cfg.connect_timeout);
  auto [cec] = co_await c.t->sock.async_connect(server, net::as_tuple(net::use_awaitable));
  c.t->disarm();
  if (cec) {
    a.at = stage::connect;
    a.io_error = true;
    a.detail = fmt::format("connect to {}[{}]:{}: {}", server_name, server.address().to_string(), server.port(),
                           c.t->timed_out ? "timed out" : cec.message());
    c.t->close();
    co_return;
  }
  dialog d(c, cfg, a);
  a.at = stage::greeting;
  auto greeting = co_await d.read(cfg.greeting_timeout, stage::greeting);
  if (ended_with(a, stage::greeting, greeting, greeting && greeting->code == 220)) {
    if (greeting) co_await quit(d, a);
    c.t->close();
    co_return;
  }
  co_await ehlo(d, cfg, a, c.ext);
  if (a.io_error || a.reply) {
    if (!a.io_error) co_await quit(d, a);
    c.t->close();
    co_return;
  }
  if (!c.ext.starttls || cfg.tls == tls_mode::none) {
    if (cfg.tls == tls_mode::encrypt) {
      a.at = stage::starttls;
      a.local_refusal = true;
      a.detail = "TLS is required, but the server does not offer STARTTLS";
      a.reply = smtp::make_reply(451, "4.7.5", a.detail);
      co_await quit(d, a);
      c.t->close();
    }
    co_return;
  }
  auto r = co_await d.command("STARTTLS", stage::starttls);
  if (!r || r->code != 220) {
    if (r) {
      a.at = stage::starttls;
      a.reply = *r;
      co_await quit(d, a);
    }
    c.t->close();
    co_return;
  }
  // RFC 3207 §4.2 (CVE-2011-0411 class): nothing read before TLS may be used after it.
  c.buf.clear();
  c.tls = std::make_unique<ssl::stream<tcp::socket&>>(c.t->sock, tls_context());
  if (!server_name.empty()) SSL_set_tlsext_host_name(c.tls->native_handle(), server_name.c_str());
  c.t->arm(cfg.command_timeout);
  auto [hec] = co_await c.tls->async_handshake(ssl::stream_base::client, net::as_tuple(net::use_awaitable));
  c.t->disarm();
  if (hec) {
    a.at = stage::starttls;
    a.io_error = true;
    a.detail = fmt::format("TLS handshake failed: {}", c.t->timed_out ? "timeout" : hec.message());
    c.t->close();
    co_return;
  }
  c.tls_info = fmt::format("{} {}", SSL_get_version(c.tls->native_handle()), SSL_get_cipher_name(c.tls->native_handle()));
  // RFC 3207 §4.2: everything learned before TLS is forgotten; ask again.
  co_await ehlo(d, cfg, a, c.ext);
  if (a.io_error || a.reply) {
    if (!a.io_error) co_await quit(d, a);
    c.t->close();
  }
}

}  // namespace

connection_cache::connection_cache(std::chrono::seconds idle, unsigned max_transactions)
    : idle_(idle), max_transactions_(max_transactions) {}

connection_cache::~connection_cache() { clear(); }

std::string connection_cache::key(const tcp::endpoint& ep) {
  return fmt::format("{}|{}", ep.address().to_string(), ep.port());
}

std::unique_ptr<connection> connection_cache::take(const tcp::endpoint& ep) {
  auto it = parked_.find(key(ep));
  if (it == parked_.end() || it->second.empty()) return nullptr;
  auto c = std::move(it->second.back());
  it->second.pop_back();
  if (it->second.empty()) parked_.erase(it);
  c->idle->cancel();
  c->idle.reset();
  return c;
}

// RFC 5321 §4.1.1.10: a client ends a session with QUIT, even an idle one.
// Detached: nobody waits for the goodbye, and it is bounded by a short timeout.
static void say_goodbye(std::unique_ptr<connection> c) {
  auto ex = c->t->sock.get_executor();
  net::co_spawn(
      ex,
      [c = std::move(c)]() mutable -> net::awaitable<void> {
        client_config cfg;
        cfg.command_timeout = std::chrono::seconds(5);
        attempt scratch;
        dialog d(*c, cfg, scratch);
        co_await d.command("QUIT", stage::done);
        c->t->close();
      },
      net::detached);
}

void connection_cache::put(const tcp::endpoint& ep, std::unique_ptr<connection> c) {
  if (idle_.count() == 0 || c->transactions >= max_transactions_) {
    say_goodbye(std::move(c));
    return;
  }
  auto* raw = c.get();
  const auto k = key(ep);
  raw->idle = std::make_unique<net::steady_timer>(raw->t->sock.get_executor(), idle_);
  parked_[k].push_back(std::move(c));
  // Idle too long: close it (the server would soon do the same).
  raw->idle->async_wait([this, k, raw](boost::system::error_code ec) {
    if (ec) return;  // taken, or the cache is going away
    auto it = parked_.find(k);
    if (it == parked_.end()) return;
    auto& v = it->second;
    for (auto i = v.begin(); i != v.end(); ++i)
      if (i->get() == raw) {
        auto conn = std::move(*i);
        v.erase(i);
        conn->idle.reset();  // our own timer; Asio allows destroying it inside its handler
        say_goodbye(std::move(conn));
        break;
      }
    if (v.empty()) parked_.erase(it);
  });
}

void connection_cache::clear() {
  for (auto& [k, v] : parked_)
    for (auto& c : v) {
      c->idle->cancel();
      c->t->close();
    }
  parked_.clear();
}

std::size_t connection_cache::size() const {
  std::size_t n = 0;
  for (const auto& [k, v] : parked_) n += v.size();
  return n;
}

net::awaitable<attempt> smtp_transaction(const tcp::endpoint& server, const std::string& server_name,
                                         const client_config& cfg, const client_message& msg,
                                         connection_cache* cache) {
  // A cached connection may have been closed by the server meanwhile; if it
  // fails before any reply to MAIL, the transaction starts over on a new one.
  if (cache) {
    if (auto c = cache->take(server)) {
      attempt a;
      a.reused = true;
      a.tls = static_cast<bool>(c->tls);
      a.tls_info = c->tls_info;
      dialog d(*c, cfg, a);
      // RSET first, as Postfix does (RFC 5321 §4.1.1.5): it ends whatever the
      // last transaction left open (all recipients refused), and it shows
      // whether the server is still there — a 421 or a closed socket here
      // costs nothing but a new connection.
      const auto rset = co_await d.command("RSET", stage::mail);
      if (rset && rset->code == 250) {
        co_await transaction(d, cfg, a, c->ext, msg);
      } else {
        a.at = stage::mail;  // stale: start over below
        a.io_error = true;
      }
      if (!(a.io_error && a.at == stage::mail)) {
        ++c->transactions;
        if (a.complete) {
          cache->put(server, std::move(c));
        } else {
          if (!a.io_error) co_await quit(d, a);
          c->t->close();
        }
        co_return a;
      }
      c->t->close();
    }
  }
  attempt a;
  auto c = std::make_unique<connection>();
  co_await open(*c, server, server_name, cfg, a);
  if (a.io_error || a.reply) co_return a;
  a.tls = static_cast<bool>(c->tls);
  a.tls_info = c->tls_info;
  dialog d(*c, cfg, a);
  co_await transaction(d, cfg, a, c->ext, msg);
  ++c->transactions;
  if (a.complete && cache) {
    cache->put(server, std::move(c));
    co_return a;
  }
  if (!a.io_error) co_await quit(d, a);
  c->t->close();
  co_return a;
}

}  // namespace delivery
