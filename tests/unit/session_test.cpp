// The server state machine driven through its event interface: every
// out-of-order command, pipelining, CHUNKING, limits and the smuggling rule.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "smtp/sasl.hpp"
#include "smtp/session.hpp"

namespace {

struct harness {
  explicit harness(smtp::session_limits limits = {}) : s(make_cfg(limits), "192.0.2.7", hooks()) { s.start(); }

  static smtp::session_config make_cfg(smtp::session_limits l) { return {"mx.example.test", l}; }

  smtp::session_hooks hooks() {
    smtp::session_hooks h;
    h.check_rcpt = [](const smtp::address& a, const std::string&) -> std::optional<smtp::reply> {
      if (a.domain == "example.test" && a.local == "nobody") return smtp::make_reply(550, "5.1.1", "unknown");
      if (a.domain == "remote.test") return smtp::make_reply(554, "5.7.1", "relay denied");
      return std::nullopt;
    };
    h.next_id = [this] { return fmt::format("ID{}", ++ids); };
    h.now = [] { return std::time_t{1700000000}; };
    return h;
  }

  // Feeds everything (as the socket loop would), completing enqueues at once.
  std::string feed(std::string_view in) {
    std::string out;
    while (true) {
      const auto n = s.consume(in);
      in.remove_prefix(n);
      out += s.take_output();
      if (s.next() == smtp::action::enqueue) {
        stored.push_back(s.txn());
        s.enqueued();
        continue;
      }
      if (s.next() == smtp::action::close || n == 0) break;
    }
    out += s.take_output();
    return out;
  }

  // Reply codes in order, ignoring the continuation lines of multi-line replies.
  static std::vector<int> codes(const std::string& out) {
    std::vector<int> c;
    std::size_t pos = 0;
    while (pos < out.size()) {
      const auto eol = out.find("\r\n", pos);
      if (out[pos + 3] == ' ') c.push_back(std::stoi(out.substr(pos, 3)));
      pos = eol + 2;
    }
    return c;
  }

  std::vector<int> run(std::string_view in) { return codes(feed(in)); }

  int ids = 0;
  smtp::session s;
  std::vector<smtp::transaction> stored;
};

const std::string envelope = "EHLO c.example\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n";

}  // namespace

TEST_CASE("a normal transaction, pipelined in one write") {
  harness h;
  const auto out = h.feed(envelope + "DATA\r\nSubject: t\r\n\r\nhello\r\n.\r\nQUIT\r\n");
  CHECK(out.rfind("220 mx.example.test ESMTP\r\n", 0) == 0);
  CHECK(harness::codes(out) == std::vector<int>{220, 250, 250, 250, 354, 250, 221});
  CHECK(out.find("250 2.0.0 Ok: queued as ID1\r\n") != std::string::npos);
  REQUIRE(h.stored.size() == 1);
  const auto& m = h.stored[0].message;
  CHECK(m.rfind("Received: from c.example ([192.0.2.7])\r\n\tby mx.example.test (Tern) with ESMTP id ID1\r\n"
                "\tfor <b@example.test>; Tue, 14 Nov 2023 22:13:20 +0000\r\n", 0) == 0);
  CHECK(m.substr(m.find("Subject")) == "Subject: t\r\n\r\nhello\r\n");
  CHECK(h.s.next() == smtp::action::close);
}

TEST_CASE("EHLO advertises the extensions") {
  harness h;
  const auto out = h.feed("EHLO c\r\n");
  for (const char* ext : {"PIPELINING", "SIZE 36700160", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "DSN"})
    CHECK(out.find(std::string("250-") + ext + "\r\n") != std::string::npos);
}

TEST_CASE("out-of-order commands get 503 5.5.1") {
  struct row {
    const char* script;
    std::vector<int> codes;
  };
  const row rows[] = {
      {"MAIL FROM:<a@example.test>\r\n", {220, 503}},
      {"EHLO c\r\nRCPT TO:<b@example.test>\r\n", {220, 250, 503}},
      {"EHLO c\r\nDATA\r\n", {220, 250, 503}},
      {"EHLO c\r\nMAIL FROM:<a@example.test>\r\nDATA\r\n", {220, 250, 250, 503}},
      {"EHLO c\r\nMAIL FROM:<a@example.test>\r\nMAIL FROM:<a@example.test>\r\n", {220, 250, 250, 503}},
      {"EHLO c\r\nMAIL FROM:<a@example.test>\r\nRSET\r\nRCPT TO:<b@example.test>\r\n", {220, 250, 250, 250, 503}},
      {"EHLO c\r\nMAIL FROM:<a@example.test>\r\nEHLO c\r\nRCPT TO:<b@example.test>\r\n", {220, 250, 250, 250, 503}},
      {"EHLO c\r\nBDAT 3\r\nabcNOOP\r\n", {220, 250, 503, 250}},
      {"EHLO c\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nBDAT 1\r\nxDATA\r\n", {220, 250, 250, 250, 250, 503}},
  };
  for (const auto& r : rows) {
    INFO(r.script);
    harness h;
    const auto out = h.feed(r.script);
    CHECK(harness::codes(out) == r.codes);
    if (harness::codes(out).back() == 503) CHECK(out.find("503 5.5.1") != std::string::npos);
  }
}

TEST_CASE("DATA after only refused recipients is 554 (RFC 2920)") {
  harness h;
  CHECK(h.run("EHLO c\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n") ==
        std::vector<int>{220, 250, 250, 550, 554});
}

TEST_CASE("recipient policy replies pass through; duplicates are stored once") {
  harness h;
  const auto out = h.feed(envelope + "RCPT TO:<nobody@example.test>\r\nRCPT TO:<x@remote.test>\r\n"
                                     "RCPT TO:<B@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n");
  CHECK(harness::codes(out) == std::vector<int>{220, 250, 250, 250, 550, 554, 250, 250, 354, 250});
  REQUIRE(h.stored.size() == 1);
  CHECK(h.stored[0].rcpts.size() == 1);
}

TEST_CASE("too many recipients get 452 4.5.3") {
  smtp::session_limits l;
  l.max_recipients = 2;
  harness h(l);
  const auto out = h.feed(envelope + "RCPT TO:<c@example.test>\r\nRCPT TO:<d@example.test>\r\nDATA\r\nx\r\n.\r\n");
  CHECK(harness::codes(out) == std::vector<int>{220, 250, 250, 250, 250, 452, 354, 250});
  CHECK(out.find("452 4.5.3") != std::string::npos);
  REQUIRE(h.stored.size() == 1);
  CHECK(h.stored[0].rcpts.size() == 2);
}

TEST_CASE("message size: SIZE= refused at MAIL, oversize body refused at the end") {
  smtp::session_limits l;
  l.max_message_size = 100;
  harness h(l);
  CHECK(h.run("EHLO c\r\nMAIL FROM:<a@example.test> SIZE=101\r\n") == std::vector<int>{220, 250, 552});
  const auto out = h.feed("MAIL FROM:<a@example.test> SIZE=100\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" +
                          std::string(200, 'x') + "\r\n.\r\nNOOP\r\n");
  CHECK(harness::codes(out) == std::vector<int>{250, 250, 354, 552, 250});
  CHECK(out.find("552 5.3.4") != std::string::npos);
  CHECK(h.stored.empty());
}

TEST_CASE("BDAT: chunks, LAST, and an oversize chunk") {
  smtp::session_limits l;
  l.max_message_size = 10;
  harness h(l);
  const auto out = h.feed(envelope + "BDAT 4\r\nabcdBDAT 3 LAST\r\nefg");
  CHECK(harness::codes(out) == std::vector<int>{220, 250, 250, 250, 250, 250});
  CHECK(out.find("250 2.0.0 4 octets received") != std::string::npos);
  REQUIRE(h.stored.size() == 1);
  const auto& m = h.stored[0].message;
  CHECK(m.substr(m.size() - 7) == "abcdefg");

  const auto big = h.feed("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nBDAT 11\r\n01234567890BDAT 1 LAST\r\nx");
  CHECK(harness::codes(big) == std::vector<int>{250, 250, 552, 503});
  CHECK(h.stored.size() == 1);
}

TEST_CASE("bare LF in DATA closes the session with 521 and stores nothing") {
  for (const char* body : {"a\n.\n", "a\r\n.\nMAIL FROM:<x@y.z>\r\n", "a\n.\r\n", "a\r.\r\n"}) {
    INFO(body);
    harness h;
    const auto out = h.feed(envelope + "DATA\r\n" + body);
    CHECK(harness::codes(out).back() == 521);
    CHECK(out.find("521 5.5.2") != std::string::npos);
    CHECK(h.s.next() == smtp::action::close);
    CHECK(h.stored.empty());
  }
}

TEST_CASE("a command ending in bare LF is accepted; bare CR inside is not") {
  harness h;
  CHECK(h.run("EHLO c\nNOOP\n") == std::vector<int>{220, 250, 250});
  CHECK(h.run("NO\rOP\r\n") == std::vector<int>{500});
}

TEST_CASE("an over-long line is refused and the rest of it skipped") {
  harness h;
  const auto out = h.feed(std::string(100 * 1024, 'A') + "\r\nNOOP\r\n");
  CHECK(harness::codes(out) == std::vector<int>{220, 500, 250});
}

TEST_CASE("too many errors end the session with 421") {
  smtp::session_limits l;
  l.max_errors = 3;
  harness h(l);
  CHECK(h.run("X\r\nY\r\nZ\r\nNOOP\r\n") == std::vector<int>{220, 500, 500, 500, 421});
  CHECK(h.s.next() == smtp::action::close);
}

TEST_CASE("junk commands are limited") {
  smtp::session_limits l;
  l.max_junk_commands = 2;
  harness h(l);
  CHECK(h.run("NOOP\r\nRSET\r\nVRFY x\r\n") == std::vector<int>{220, 250, 250, 421});
}

TEST_CASE("VRFY never reveals users; EXPN is refused") {
  harness h;
  const auto out = h.feed("VRFY alice\r\nVRFY nobody\r\nEXPN staff\r\n");
  CHECK(harness::codes(out) == std::vector<int>{220, 252, 252, 502});
}

TEST_CASE("SMTPUTF8 is required for non-ASCII addresses") {
  harness h;
  CHECK(h.run("EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@example.test>\r\n") == std::vector<int>{220, 250, 553});
  const auto out = h.feed("MAIL FROM:<j\xc3\xb6rg@example.test> SMTPUTF8\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n");
  CHECK(harness::codes(out) == std::vector<int>{250, 250, 354, 250});
  REQUIRE(h.stored.size() == 1);
  CHECK(h.stored[0].message.find("with UTF8SMTP id") != std::string::npos);
}

TEST_CASE("parameters need EHLO; HELO sessions say SMTP in Received") {
  harness h;
  CHECK(h.run("HELO c\r\nMAIL FROM:<a@example.test> SIZE=10\r\n") == std::vector<int>{220, 250, 555});
  h.feed("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n");
  REQUIRE(h.stored.size() == 1);
  CHECK(h.stored[0].message.find("with SMTP id") != std::string::npos);
}

TEST_CASE("DSN parameters are kept with the transaction") {
  harness h;
  h.feed("EHLO c\r\nMAIL FROM:<a@example.test> RET=FULL ENVID=abc\r\n"
         "RCPT TO:<b@example.test> NOTIFY=FAILURE ORCPT=rfc822;b@example.test\r\nDATA\r\nx\r\n.\r\n");
  REQUIRE(h.stored.size() == 1);
  CHECK(h.stored[0].params.ret == "FULL");
  CHECK(h.stored[0].params.envid == "abc");
  CHECK(h.stored[0].rcpts[0].params.notify == "FAILURE");
  CHECK(h.stored[0].rcpts[0].params.orcpt == "rfc822;b@example.test");
}

TEST_CASE("the HELO name cannot inject into the Received header") {
  harness h;
  h.feed("EHLO evil)(\"x;\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n");
  REQUIRE(h.stored.size() == 1);
  CHECK(h.stored[0].message.rfind("Received: from evil___x_ ([192.0.2.7])", 0) == 0);
}

TEST_CASE("enqueue failure gives the queue's reply and a fresh state") {
  harness h;
  h.s.consume(envelope + "DATA\r\nx\r\n.\r\n");
  REQUIRE(h.s.next() == smtp::action::enqueue);
  h.s.enqueue_failed(smtp::make_reply(452, "4.3.1", "Insufficient system storage"));
  CHECK(h.s.take_output().find("452 4.3.1") != std::string::npos);
  CHECK(h.run("RCPT TO:<b@example.test>\r\n") == std::vector<int>{503});
}

TEST_CASE("timeouts and shutdown answer 421 and close") {
  harness a;
  a.s.timed_out();
  CHECK(a.s.take_output().find("421 4.4.2") != std::string::npos);
  CHECK(a.s.next() == smtp::action::close);
  harness b;
  b.s.shutting_down();
  CHECK(b.s.take_output().find("421 4.3.2") != std::string::npos);
  CHECK(b.s.next() == smtp::action::close);
}

TEST_CASE("pending output is capped so a client that never reads cannot grow it") {
  harness h;
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "EHLO c\r\n";
  const auto used = h.s.consume(many);
  CHECK(used < many.size());
  CHECK(h.s.output().size() < 70 * 1024);
}

namespace {

// A submission-style session: STARTTLS offered, AUTH inside TLS, AUTH required for MAIL.
struct tls_harness {
  static smtp::session make(bool auth_required, std::vector<std::string>* log) {
    smtp::session_config cfg{"mx.example.test", {}};
    cfg.starttls = true;
    cfg.auth = true;
    cfg.auth_required = auth_required;
    smtp::session_hooks h;
    h.check_rcpt = [](const smtp::address& a, const std::string& user) -> std::optional<smtp::reply> {
      if (a.domain == "remote.test" && user.empty()) return smtp::make_reply(554, "5.7.1", "relay denied");
      return std::nullopt;
    };
    h.authenticate = [](const std::string& u, const std::string& p) { return u == "alice@example.test" && p == "secret"; };
    h.check_sender = [](const smtp::address& s, const std::string& u) -> std::optional<smtp::reply> {
      if (s.str() != u) return smtp::make_reply(553, "5.7.1", "not yours");
      return std::nullopt;
    };
    h.next_id = [] { return std::string("ID"); };
    h.now = [] { return std::time_t{1700000000}; };
    h.log = [log](std::string_view l) {
      if (log) log->emplace_back(l);
    };
    return smtp::session(cfg, "192.0.2.9", h);
  }
};

std::string feed(smtp::session& s, std::string_view in, std::vector<smtp::transaction>* stored = nullptr) {
  std::string out;
  while (true) {
    const auto n = s.consume(in);
    in.remove_prefix(n);
    out += s.take_output();
    if (s.next() == smtp::action::enqueue) {
      if (stored) stored->push_back(s.txn());
      s.enqueued();
      continue;
    }
    if (s.next() != smtp::action::read || n == 0) break;
  }
  return out + s.take_output();
}

const std::string plain_alice = "AUTH PLAIN " + smtp::base64_encode(std::string("\0alice@example.test\0secret", 26)) + "\r\n";

}  // namespace

TEST_CASE("STARTTLS: offered, then everything before it is forgotten") {
  auto s = tls_harness::make(false, nullptr);
  s.start();
  auto out = feed(s, "EHLO c\r\nMAIL FROM:<a@example.test>\r\nSTARTTLS\r\nRSET\r\n");
  CHECK(out.find("250 STARTTLS\r\n") != std::string::npos);
  CHECK(out.find("AUTH") == std::string::npos);  // never in the clear
  CHECK(out.find("220 2.0.0 Ready to start TLS\r\n") != std::string::npos);
  REQUIRE(s.next() == smtp::action::starttls);
  // The owner drops the pipelined "RSET" (it was read before the handshake).
  s.tls_started("TLSv1.3 TLS_AES_256_GCM_SHA384");
  CHECK(harness::codes(feed(s, "MAIL FROM:<a@example.test>\r\n")) == std::vector<int>{503});  // EHLO needed again
  out = feed(s, "EHLO c\r\n");
  CHECK(out.find("STARTTLS") == std::string::npos);
  CHECK(out.find("250 AUTH PLAIN LOGIN\r\n") != std::string::npos);
  CHECK(harness::codes(feed(s, "STARTTLS\r\n")) == std::vector<int>{503});
  std::vector<smtp::transaction> stored;
  feed(s, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n", &stored);
  REQUIRE(stored.size() == 1);
  CHECK(stored[0].message.find("\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n") != std::string::npos);
  CHECK(stored[0].message.find("with ESMTPS id") != std::string::npos);
}

TEST_CASE("AUTH only inside TLS, PLAIN and LOGIN, failures counted") {
  std::vector<std::string> log;
  auto s = tls_harness::make(true, &log);
  s.start();
  auto out = feed(s, "EHLO c\r\n" + plain_alice);
  CHECK(out.find("538 5.7.11") != std::string::npos);
  CHECK(harness::codes(feed(s, "MAIL FROM:<alice@example.test>\r\n")) == std::vector<int>{530});
  s.consume("STARTTLS\r\n");
  s.take_output();
  s.tls_started("TLSv1.3 X");
  feed(s, "EHLO c\r\n");
  const auto bad = "AUTH PLAIN " + smtp::base64_encode(std::string("\0alice@example.test\0wrong", 25)) + "\r\n";
  CHECK(harness::codes(feed(s, bad)) == std::vector<int>{535});
  CHECK(s.take_auth_failure());
  CHECK_FALSE(s.take_auth_failure());
  CHECK(harness::codes(feed(s, "AUTH PLAIN\r\n*\r\n")) == std::vector<int>{334, 501});
  CHECK(harness::codes(feed(s, "AUTH PLAIN\r\nnot base64!\r\n")) == std::vector<int>{334, 501});
  CHECK(harness::codes(feed(s, "AUTH CRAM-MD5\r\n")) == std::vector<int>{504});
  out = feed(s, "AUTH LOGIN\r\n" + smtp::base64_encode("alice@example.test") + "\r\n" + smtp::base64_encode("secret") + "\r\n");
  CHECK(harness::codes(out) == std::vector<int>{334, 334, 235});
  CHECK(out.find("334 VXNlcm5hbWU6\r\n") != std::string::npos);
  CHECK(s.authenticated() == "alice@example.test");
  CHECK(harness::codes(feed(s, plain_alice)) == std::vector<int>{503});  // a second AUTH
  for (const auto& l : log) CHECK(l.find("secret") == std::string::npos);  // passwords never logged
}

TEST_CASE("submission: sender must be the user's; authenticated relay; Date and Message-ID added") {
  auto s = tls_harness::make(true, nullptr);
  s.start();
  s.consume("EHLO c\r\nSTARTTLS\r\n");
  s.take_output();
  s.tls_started("TLSv1.2 X");
  feed(s, "EHLO c\r\n" + plain_alice);
  CHECK(harness::codes(feed(s, "MAIL FROM:<bob@example.test>\r\n")) == std::vector<int>{553});
  std::vector<smtp::transaction> stored;
  const auto out = feed(s, "MAIL FROM:<alice@example.test>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n", &stored);
  CHECK(harness::codes(out) == std::vector<int>{250, 250, 354, 250});
  REQUIRE(stored.size() == 1);
  const auto& m = stored[0].message;
  CHECK(m.find("with ESMTPSA id") != std::string::npos);
  const auto body = m.substr(stored[0].trace_size);
  CHECK(body.rfind("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <ID@mx.example.test>\r\nSubject: s\r\n", 0) == 0);
  stored.clear();
  feed(s, "MAIL FROM:<alice@example.test>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\nDate: x\r\nMessage-Id: <m@x>\r\n\r\nb\r\n.\r\n", &stored);
  REQUIRE(stored.size() == 1);
  CHECK(stored[0].message.substr(stored[0].trace_size).rfind("Date: x\r\n", 0) == 0);  // nothing added
}

TEST_CASE("too many failed authentications end the session") {
  auto s = tls_harness::make(true, nullptr);
  s.too_many_auth_failures();
  CHECK(s.take_output().find("421 4.7.0") != std::string::npos);
  CHECK(s.next() == smtp::action::close);
}
