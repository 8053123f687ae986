// The SMTP client against a scripted fake server on loopback, run on a real
// io_context: the server fails at every step in turn (hangs up, 4xx, 5xx),
// and each time the outcome must be right and no connection left open.
#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "delivery/smtp_client.hpp"
#include "delivery/smtp_errors.hpp"

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

enum class fault { none, hang_up, transient, permanent };
// Where the server misbehaves: before its greeting, or in answer to EHLO,
// MAIL, the first RCPT, DATA, or the end of data.
enum class step { greeting, ehlo, mail, rcpt, data, dot };

struct script_result {
  std::vector<std::string> commands;  // what the client sent, line by line
  bool client_closed = false;         // the server saw EOF: the client closed its end
};

std::string reply_for(fault f, const char* ok) {
  switch (f) {
    case fault::transient: return "451 4.3.0 try later\r\n";
    case fault::permanent: return "554 5.7.1 go away\r\n";
    default: return ok;
  }
}

net::awaitable<void> fake_server(tcp::acceptor& acc, step at, fault f, bool pipelining, script_result& out) {
  auto [aec, s] = co_await acc.async_accept(net::as_tuple(net::use_awaitable));
  if (aec) co_return;
  // Replies go through a named string: GCC 12 destroys temporaries inside a
  // co_await expression twice (see delivery/smtp_client.cpp).
  std::string reply;
  auto send = [&]() -> net::awaitable<void> {
    co_await net::async_write(s, net::buffer(reply), net::as_tuple(net::use_awaitable));
  };
  auto hang_up_at = [&](step here) { return f == fault::hang_up && at == here; };
  if (hang_up_at(step::greeting)) co_return;  // socket closes as `s` goes out of scope
  reply = reply_for(at == step::greeting ? f : fault::none, "220 fake ESMTP\r\n");
  co_await send();
  std::string buf;
  bool in_data = false;
  int rcpts = 0;
  while (true) {
    auto [ec, n] = co_await net::async_read_until(s, net::dynamic_buffer(buf), "\r\n", net::as_tuple(net::use_awaitable));
    if (ec) {
      out.client_closed = true;
      co_return;
    }
    std::string line = buf.substr(0, n - 2);
    buf.erase(0, n);
    if (in_data) {
      if (line != ".") continue;
      in_data = false;
      if (hang_up_at(step::dot)) co_return;
      out.commands.push_back(".");
      reply = reply_for(at == step::dot ? f : fault::none, "250 2.0.0 Ok: queued as FAKE\r\n");
      co_await send();
      continue;
    }
    out.commands.push_back(line);
    const std::string verb = line.substr(0, 4);
    step here = verb == "EHLO" || verb == "HELO" ? step::ehlo
                : verb == "MAIL"                 ? step::mail
                : verb == "RCPT"                 ? step::rcpt
                : verb == "DATA"                 ? step::data
                                                 : step::greeting;
    if (verb == "QUIT") {
      reply = "221 2.0.0 Bye\r\n";
      co_await send();
      continue;  // wait for the client to close
    }
    // At the RCPT step only the first recipient is refused; the second is fine.
    const bool target = at == here && (here != step::rcpt || rcpts++ == 0);
    if (target && f == fault::hang_up) co_return;
    const fault now = target ? f : fault::none;
    if (verb == "EHLO")
      reply = now != fault::none ? reply_for(now, "")
              : pipelining       ? "250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                                 : "250-fake\r\n250 8BITMIME\r\n";
    else if (verb == "HELO")
      reply = reply_for(now, "250 fake\r\n");
    else if (verb == "DATA")
      reply = reply_for(now, "354 go ahead\r\n");
    else
      reply = reply_for(now, "250 2.0.0 Ok\r\n");
    in_data = verb == "DATA" && reply.rfind("354", 0) == 0;
    co_await send();
  }
}

struct run_result {
  delivery::attempt a;
  script_result server;
};

run_result run(step at, fault f, bool pipelining) {
  net::io_context ioc;
  tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  run_result r;
  net::co_spawn(ioc, fake_server(acc, at, f, pipelining, r.server), net::detached);
  delivery::client_config cfg;
  cfg.helo_name = "client.test";
  cfg.tls = delivery::tls_mode::none;
  cfg.command_timeout = std::chrono::seconds(5);
  cfg.greeting_timeout = std::chrono::seconds(5);
  delivery::client_message m;
  m.sender = "a@example.test";
  m.rcpts = {{"b@remote.test", "", ""}, {"c@remote.test", "", ""}};
  const std::string data = "Subject: t\r\n\r\n.dot line\r\nbody\r\n";
  m.data = data;
  net::co_spawn(
      ioc,
      [&]() -> net::awaitable<void> {
        r.a = co_await delivery::smtp_transaction(acc.local_endpoint(), "fake", cfg, m);
      },
      net::detached);
  ioc.run_for(std::chrono::seconds(20));  // bounded: a hang fails the test instead of blocking it
  return r;
}

using queue::rcpt_status;

}  // namespace

TEST_CASE("a clean transaction, with and without PIPELINING") {
  for (bool pipelining : {true, false}) {
    INFO("pipelining " << pipelining);
    const auto r = run(step::greeting, fault::none, pipelining);
    CHECK(r.a.complete);
    REQUIRE(r.a.final_reply);
    CHECK(r.a.final_reply->code == 250);
    CHECK(r.server.client_closed);
    CHECK(r.server.commands == std::vector<std::string>{"EHLO client.test", "MAIL FROM:<a@example.test>",
                                                        "RCPT TO:<b@remote.test>", "RCPT TO:<c@remote.test>",
                                                        "DATA", ".", "QUIT"});
    const auto v = delivery::classify(r.a, 2, "fake", true);
    for (const auto& o : v) {
      REQUIRE(o);
      CHECK(o->status == rcpt_status::delivered);
    }
  }
}

TEST_CASE("the server fails at every step in turn") {
  struct expect {
    step at;
    fault f;
    rcpt_status last_server;  // what each recipient comes to when no other server is left
    bool try_next;            // with another server left, is it tried?
  };
  const expect table[] = {
      {step::greeting, fault::hang_up, rcpt_status::deferred, true},
      {step::greeting, fault::transient, rcpt_status::deferred, true},
      {step::greeting, fault::permanent, rcpt_status::failed, true},
      {step::ehlo, fault::hang_up, rcpt_status::deferred, true},
      {step::ehlo, fault::transient, rcpt_status::deferred, true},
      {step::ehlo, fault::permanent, rcpt_status::failed, false},  // HELO then fails too
      {step::mail, fault::hang_up, rcpt_status::deferred, true},
      {step::mail, fault::transient, rcpt_status::deferred, true},
      {step::mail, fault::permanent, rcpt_status::failed, false},
      {step::rcpt, fault::hang_up, rcpt_status::deferred, true},
      {step::data, fault::hang_up, rcpt_status::deferred, true},
      {step::data, fault::transient, rcpt_status::deferred, true},
      {step::data, fault::permanent, rcpt_status::failed, false},
      {step::dot, fault::hang_up, rcpt_status::deferred, false},  // the server may have it: no second copy
      {step::dot, fault::transient, rcpt_status::deferred, false},
      {step::dot, fault::permanent, rcpt_status::failed, false},
  };
  for (bool pipelining : {true, false}) {
    for (const auto& e : table) {
      INFO("step " << static_cast<int>(e.at) << " fault " << static_cast<int>(e.f) << " pipelining " << pipelining);
      const auto r = run(e.at, e.f, pipelining);
      const auto last = delivery::classify(r.a, 2, "fake", true);
      REQUIRE(last.size() == 2);
      for (const auto& o : last) {
        REQUIRE(o);
        CHECK(o->status == e.last_server);
      }
      const auto more = delivery::classify(r.a, 2, "fake", false);
      CHECK(!more[0].has_value() == e.try_next);
      // Either side may hang up first; what matters is that the client's end is closed.
      if (e.f != fault::hang_up) CHECK(r.server.client_closed);
    }
  }
}

TEST_CASE("a refused recipient fails alone; the other is delivered") {
  for (bool pipelining : {true, false}) {
    INFO("pipelining " << pipelining);
    const auto r = run(step::rcpt, fault::permanent, pipelining);  // only the first RCPT is refused
    const auto v = delivery::classify(r.a, 2, "fake", false);
    REQUIRE((v[0] && v[1]));
    CHECK(v[0]->status == rcpt_status::failed);
    CHECK(v[0]->reply.status == "5.7.1");
    CHECK(v[1]->status == rcpt_status::delivered);
    const auto t = run(step::rcpt, fault::transient, pipelining);
    const auto w = delivery::classify(t.a, 2, "fake", false);
    REQUIRE((w[0] && w[1]));
    CHECK(w[0]->status == rcpt_status::deferred);
    CHECK(w[1]->status == rcpt_status::delivered);
  }
}

TEST_CASE("nothing listening: a connect failure") {
  net::io_context ioc;
  tcp::endpoint dead;
  {
    tcp::acceptor probe(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    dead = probe.local_endpoint();
  }  // closed again: nobody listens there now
  delivery::attempt a;
  delivery::client_message m;
  m.sender = "a@example.test";
  m.rcpts = {{"b@remote.test", "", ""}};
  const delivery::client_config cfg;
  const std::string name = "dead";  // named: no temporaries inside co_await (GCC 12)
  net::co_spawn(
      ioc, [&]() -> net::awaitable<void> { a = co_await delivery::smtp_transaction(dead, name, cfg, m); },
      net::detached);
  ioc.run_for(std::chrono::seconds(10));
  CHECK(a.io_error);
  CHECK(a.at == delivery::stage::connect);
  const auto v = delivery::classify(a, 1, "dead", true);
  REQUIRE(v[0]);
  CHECK(v[0]->status == rcpt_status::deferred);
  CHECK(v[0]->reply.status == "4.4.1");
}

namespace {

// A server that counts connections and transactions; optionally it hangs up
// (without a word) right after each message, like a server with a short idle timeout.
net::awaitable<void> counting_server(tcp::acceptor& acc, bool hang_up_after_message, int& connections,
                                     int& messages, int& closed_by_client) {
  while (true) {
    auto [aec, s] = co_await acc.async_accept(net::as_tuple(net::use_awaitable));
    if (aec) co_return;
    ++connections;
    std::string reply = "220 fake ESMTP\r\n", buf;
    co_await net::async_write(s, net::buffer(reply), net::as_tuple(net::use_awaitable));
    bool in_data = false, hang_up = false;
    while (!hang_up) {
      auto [ec, n] = co_await net::async_read_until(s, net::dynamic_buffer(buf), "\r\n", net::as_tuple(net::use_awaitable));
      if (ec) {
        ++closed_by_client;
        break;
      }
      const std::string line = buf.substr(0, n - 2);
      buf.erase(0, n);
      if (in_data) {
        if (line != ".") continue;
        in_data = false;
        ++messages;
        reply = "250 2.0.0 Ok\r\n";
        hang_up = hang_up_after_message;
      } else if (line.rfind("EHLO", 0) == 0) {
        reply = "250-fake\r\n250 PIPELINING\r\n";
      } else if (line == "DATA") {
        reply = "354 go\r\n";
        in_data = true;
      } else if (line == "QUIT") {
        reply = "221 bye\r\n";
      } else {
        reply = "250 2.0.0 Ok\r\n";
      }
      co_await net::async_write(s, net::buffer(reply), net::as_tuple(net::use_awaitable));
    }
  }
}

struct reuse_run {
  int connections = 0, messages = 0, closed_by_client = 0;
  std::vector<delivery::attempt> attempts;
};

reuse_run run_reuse(bool hang_up_after_message, int n, std::chrono::seconds idle) {
  net::io_context ioc;
  tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  reuse_run r;
  net::co_spawn(ioc, counting_server(acc, hang_up_after_message, r.connections, r.messages, r.closed_by_client),
                net::detached);
  delivery::client_config cfg;
  cfg.tls = delivery::tls_mode::none;
  cfg.command_timeout = std::chrono::seconds(5);
  delivery::client_message m;
  m.sender = "a@example.test";
  m.rcpts = {{"b@remote.test", "", ""}};
  const std::string data = "Subject: t\r\n\r\nx\r\n", name = "fake";
  m.data = data;
  auto cache = std::make_unique<delivery::connection_cache>(idle, 100);
  const auto ep = acc.local_endpoint();
  net::co_spawn(
      ioc,
      [&]() -> net::awaitable<void> {
        for (int i = 0; i < n; ++i) r.attempts.push_back(co_await delivery::smtp_transaction(ep, name, cfg, m, cache.get()));
        net::steady_timer t(ioc, idle + std::chrono::milliseconds(500));  // past the idle limit
        co_await t.async_wait(net::as_tuple(net::use_awaitable));
        acc.close();
      },
      net::detached);
  ioc.run_for(std::chrono::seconds(20));
  return r;
}

}  // namespace

TEST_CASE("a kept connection carries the next messages, and is closed when idle") {
  const auto r = run_reuse(false, 3, std::chrono::seconds(1));
  CHECK(r.connections == 1);
  CHECK(r.messages == 3);
  REQUIRE(r.attempts.size() == 3);
  CHECK_FALSE(r.attempts[0].reused);
  CHECK(r.attempts[2].reused);
  for (const auto& a : r.attempts) CHECK(a.complete);
  CHECK(r.closed_by_client == 1);  // the idle limit closed it: no connection left open
}

TEST_CASE("a kept connection the server dropped is replaced without failing the message") {
  const auto r = run_reuse(true, 3, std::chrono::seconds(1));
  CHECK(r.messages == 3);
  CHECK(r.connections == 3);
  for (const auto& a : r.attempts) {
    CHECK(a.complete);
    CHECK_FALSE(a.io_error);
  }
}
