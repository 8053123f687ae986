// DSN rendering (RFC 3464), parsed back: every required field is there, the
// MIME structure is sound, and RET decides between headers and the whole message.
#include <catch2/catch.hpp>

#include "delivery/dsn.hpp"

namespace {

delivery::dsn_input sample() {
  delivery::dsn_input in;
  in.reporting_mta = "mx.example.test";
  in.queue_id = "QID123";
  in.envid = "ENV+2B1";
  in.arrival = 1700000000;
  in.now = 1700000100;
  in.original_sender = "alice@example.test";
  in.rcpts.push_back({"bob@remote.test", "rfc822;bob@remote.test", "failed", "5.1.1", "550 5.1.1 no such user"});
  in.original = "Subject: hello\r\nFrom: alice@example.test\r\n\r\nthe body\r\n";
  return in;
}

// The text of one MIME part, found by its Content-Type.
std::string part(const std::string& msg, const std::string& type) {
  const auto b0 = msg.find("boundary=\"") + 10;
  const auto boundary = "--" + msg.substr(b0, msg.find('"', b0) - b0);
  std::size_t pos = 0;
  while ((pos = msg.find(boundary, pos)) != std::string::npos) {
    pos += boundary.size();
    const auto end = msg.find(boundary, pos);
    const auto p = msg.substr(pos, end - pos);
    if (p.find("Content-Type: " + type) != std::string::npos) return p.substr(p.find("\r\n\r\n") + 4);
  }
  return {};
}

}  // namespace

TEST_CASE("a failure DSN has every required field") {
  const auto m = delivery::render_dsn(sample());
  CHECK(m.find("To: <alice@example.test>\r\n") != std::string::npos);
  CHECK(m.find("Auto-Submitted: auto-replied\r\n") != std::string::npos);
  CHECK(m.find("Content-Type: multipart/report; report-type=delivery-status;") != std::string::npos);
  const auto status = part(m, "message/delivery-status");
  REQUIRE_FALSE(status.empty());
  for (const char* field : {"Reporting-MTA: dns; mx.example.test\r\n", "Original-Envelope-Id: ENV+2B1\r\n",
                            "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n",
                            "Final-Recipient: rfc822; bob@remote.test\r\n",
                            "Original-Recipient: rfc822; bob@remote.test\r\n", "Action: failed\r\n",
                            "Status: 5.1.1\r\n", "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"})
    CHECK(status.find(field) != std::string::npos);
  // Per-message fields, an empty line, then per-recipient fields (RFC 3464 §2.1).
  CHECK(status.find("\r\n\r\nFinal-Recipient") != std::string::npos);
  const auto headers = part(m, "text/rfc822-headers");
  CHECK(headers.find("Subject: hello\r\n") != std::string::npos);
  CHECK(headers.find("the body") == std::string::npos);
  CHECK(m.find("text/plain") != std::string::npos);
  CHECK(m.substr(m.size() - 4) == "--\r\n");
  for (std::size_t i = 0; i < m.size(); ++i)
    if (m[i] == '\n') REQUIRE((i > 0 && m[i - 1] == '\r'));  // CRLF only
}

TEST_CASE("RET=FULL returns the whole message, within a size limit") {
  auto in = sample();
  in.ret = "FULL";
  auto m = delivery::render_dsn(in);
  CHECK(part(m, "message/rfc822").find("the body\r\n") != std::string::npos);
  const std::string big = "Subject: big\r\n\r\n" + std::string(delivery::dsn_full_limit, 'x');
  in.original = big;
  m = delivery::render_dsn(in);
  CHECK(part(m, "message/rfc822").empty());
  CHECK(part(m, "text/rfc822-headers").find("Subject: big") != std::string::npos);
}

TEST_CASE("a success report says delivered") {
  auto in = sample();
  in.rcpts[0].action = "delivered";
  in.rcpts[0].status = "2.0.0";
  const auto m = delivery::render_dsn(in);
  CHECK(m.find("Subject: Successful Mail Delivery Report") != std::string::npos);
  CHECK(part(m, "message/delivery-status").find("Action: delivered\r\n") != std::string::npos);
}

TEST_CASE("header_section stops at the first empty line") {
  CHECK(delivery::header_section("A: 1\r\nB: 2\r\n\r\nbody") == "A: 1\r\nB: 2\r\n\r\n");
  CHECK(delivery::header_section("A: 1\r\n") == "A: 1\r\n");
}

TEST_CASE("a delay notice says delayed and that the message is still queued") {
  auto in = sample();
  in.rcpts[0].action = "delayed";
  in.rcpts[0].status = "4.4.1";
  const auto m = delivery::render_dsn(in);
  CHECK(m.find("Subject: Delayed Mail (still being retried)") != std::string::npos);
  CHECK(m.find("you do not need to resend it") != std::string::npos);
  CHECK(part(m, "message/delivery-status").find("Action: delayed\r\nStatus: 4.4.1\r\n") != std::string::npos);
}

TEST_CASE("no field value can break the report's structure; quoted text gets CRLF") {
  auto in = sample();
  in.rcpts[0].diagnostic = "550 bad\r\nX-Injected: yes";
  in.rcpts[0].orcpt = "rfc822;b\n@x";
  in.original = "Subject: lf\nX: y\n\nbody\n";
  const auto m = delivery::render_dsn(in);
  CHECK(m.find("\r\nX-Injected") == std::string::npos);
  CHECK(m.find("Subject: lf\r\nX: y\r\n") != std::string::npos);
  for (std::size_t i = 0; i < m.size(); ++i)
    if (m[i] == '\n') REQUIRE((i > 0 && m[i - 1] == '\r'));
}
