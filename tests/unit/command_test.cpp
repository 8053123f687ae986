// parse_command: every verb, every parameter, every syntax error, as a table.
#include <catch2/catch.hpp>

#include "smtp/command.hpp"

using smtp::parse_command;
using smtp::verb;

namespace {

struct ok_case {
  const char* line;
  verb v;
};

struct err_case {
  const char* line;
  int code;
  const char* status;
};

}  // namespace

TEST_CASE("every verb parses, case-insensitively") {
  const ok_case cases[] = {
      {"HELO client.example", verb::helo},
      {"helo client.example", verb::helo},
      {"EHLO client.example", verb::ehlo},
      {"eHlO [192.0.2.1]", verb::ehlo},
      {"MAIL FROM:<a@example.test>", verb::mail},
      {"mail from:<a@example.test>", verb::mail},
      {"MAIL FROM:<>", verb::mail},
      {"MAIL FROM: <a@example.test>", verb::mail},
      {"RCPT TO:<b@example.test>", verb::rcpt},
      {"RCPT TO:<postmaster>", verb::rcpt},
      {"RCPT TO:<Postmaster>", verb::rcpt},
      {"DATA", verb::data},
      {"data", verb::data},
      {"BDAT 10", verb::bdat},
      {"BDAT 0 LAST", verb::bdat},
      {"bdat 5 last", verb::bdat},
      {"RSET", verb::rset},
      {"NOOP", verb::noop},
      {"NOOP anything at all", verb::noop},
      {"VRFY alice", verb::vrfy},
      {"EXPN list", verb::expn},
      {"HELP", verb::help},
      {"HELP MAIL", verb::help},
      {"QUIT", verb::quit},
      {"STARTTLS", verb::starttls},
      {"AUTH PLAIN", verb::auth},
  };
  for (const auto& c : cases) {
    INFO(c.line);
    const auto r = parse_command(c.line);
    REQUIRE(std::holds_alternative<smtp::command>(r));
    CHECK(std::get<smtp::command>(r).v == c.v);
  }
}

TEST_CASE("syntax errors get the right code and enhanced status") {
  const err_case cases[] = {
      {"", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"MAILFROM:<a@b.c>", 500, "5.5.2"},
      {"HELO", 501, "5.5.4"},
      {"EHLO", 501, "5.5.4"},
      {"EHLO   ", 501, "5.5.4"},
      {"MAIL", 501, "5.5.4"},
      {"MAIL TO:<a@b.c>", 501, "5.5.4"},
      {"MAIL FROM:a@b.c", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c", 501, "5.1.7"},
      {"MAIL FROM:<a@@b.c>", 501, "5.1.7"},
      {"MAIL FROM:<a@-b.c>", 501, "5.1.7"},
      {"MAIL FROM:<.a@b.c>", 501, "5.1.7"},
      {"MAIL FROM:<a..b@b.c>", 501, "5.1.7"},
      {"MAIL FROM:<a b@b.c>", 501, "5.1.7"},
      {"MAIL FROM:<postmaster>", 501, "5.1.7"},
      {"MAIL FROM:<a@b.c>x", 501, "5.5.4"},
      {"RCPT TO:<>", 501, "5.1.3"},
      {"RCPT TO:<b@[300.1.1.1]>", 501, "5.1.3"},
      {"RCPT FROM:<b@b.c>", 501, "5.5.4"},
      {"RCPT TO:b@b.c", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> SIZE=abc", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> SIZE=", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> SIZE=1 SIZE=2", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> BODY=9BIT", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> BODY=BINARYMIME", 555, "5.5.4"},
      {"MAIL FROM:<a@b.c> SMTPUTF8=yes", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> RET=ALL", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> ENVID=a=b", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> XFOO=1", 555, "5.5.4"},
      {"MAIL FROM:<a@b.c> =1", 501, "5.5.4"},
      {"MAIL FROM:<a@b.c> AUTH=<>", 555, "5.5.4"},
      {"RCPT TO:<b@b.c> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"},
      {"RCPT TO:<b@b.c> NOTIFY=SOMETIMES", 501, "5.5.4"},
      {"RCPT TO:<b@b.c> NOTIFY=", 501, "5.5.4"},
      {"RCPT TO:<b@b.c> ORCPT=b@b.c", 501, "5.5.4"},
      {"RCPT TO:<b@b.c> ORCPT=rfc822;b+2", 501, "5.5.4"},
      {"RCPT TO:<b@b.c> SIZE=10", 555, "5.5.4"},
      {"BDAT", 501, "5.5.4"},
      {"BDAT x", 501, "5.5.4"},
      {"BDAT -1", 501, "5.5.4"},
      {"BDAT 10 FIRST", 501, "5.5.4"},
      {"BDAT 99999999999999999999999", 501, "5.5.4"},
      {"DATA now", 501, "5.5.4"},
      {"RSET all", 501, "5.5.4"},
      {"QUIT now", 501, "5.5.4"},
      {"VRFY", 501, "5.5.4"},
      {"NOOP\rRSET", 500, "5.5.2"},
  };
  for (const auto& c : cases) {
    INFO(c.line);
    const auto r = parse_command(c.line);
    REQUIRE(std::holds_alternative<smtp::reply>(r));
    CHECK(std::get<smtp::reply>(r).code == c.code);
    CHECK(std::get<smtp::reply>(r).status == c.status);
  }
}

TEST_CASE("MAIL parameters are parsed and stored") {
  const auto r = parse_command("MAIL FROM:<a@example.test> SIZE=1000 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1");
  REQUIRE(std::holds_alternative<smtp::command>(r));
  const auto& c = std::get<smtp::command>(r);
  CHECK(c.path.local == "a");
  CHECK(c.path.domain == "example.test");
  CHECK(c.mail.size == 1000u);
  CHECK(c.mail.body == smtp::body_type::eight_bit_mime);
  CHECK(c.mail.smtputf8);
  CHECK(c.mail.ret == "HDRS");
  CHECK(c.mail.envid == "QQ+2B1");
}

TEST_CASE("RCPT parameters are parsed and stored") {
  const auto r = parse_command("RCPT TO:<b@example.test> NOTIFY=success,delay ORCPT=rfc822;b@example.test");
  REQUIRE(std::holds_alternative<smtp::command>(r));
  const auto& c = std::get<smtp::command>(r);
  CHECK(c.rcpt.notify == "SUCCESS,DELAY");
  CHECK(c.rcpt.orcpt == "rfc822;b@example.test");
  const auto never = parse_command("RCPT TO:<b@example.test> NOTIFY=NEVER");
  CHECK(std::get<smtp::command>(never).rcpt.notify == "NEVER");
}

TEST_CASE("BDAT size and LAST") {
  const auto a = std::get<smtp::command>(parse_command("BDAT 1234"));
  CHECK(a.chunk_size == 1234u);
  CHECK_FALSE(a.last);
  const auto b = std::get<smtp::command>(parse_command("BDAT 0 LAST"));
  CHECK(b.chunk_size == 0u);
  CHECK(b.last);
}

TEST_CASE("the null sender and source routes") {
  const auto null = std::get<smtp::command>(parse_command("MAIL FROM:<>"));
  CHECK(null.path.null());
  const auto routed = std::get<smtp::command>(parse_command("RCPT TO:<@relay.example,@b.example:joe@example.test>"));
  CHECK(routed.path.str() == "joe@example.test");
}

TEST_CASE("command lines are limited to 512 octets including CRLF") {
  const std::string ok = "NOOP " + std::string(510 - 5, 'x');
  CHECK(std::holds_alternative<smtp::command>(parse_command(ok)));
  const std::string too_long = ok + "x";
  const auto r = parse_command(too_long);
  REQUIRE(std::holds_alternative<smtp::reply>(r));
  CHECK(std::get<smtp::reply>(r).code == 500);
}

TEST_CASE("xtext validation (RFC 3461 section 4)") {
  CHECK(smtp::is_valid_xtext("abc+2Bdef"));
  CHECK(smtp::is_valid_xtext(""));
  CHECK_FALSE(smtp::is_valid_xtext("a+2"));
  CHECK_FALSE(smtp::is_valid_xtext("a+zz"));
  CHECK_FALSE(smtp::is_valid_xtext("a=b"));
  CHECK_FALSE(smtp::is_valid_xtext("a b"));
}
