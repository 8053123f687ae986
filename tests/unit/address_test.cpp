// Address syntax (RFC 5321 §4.1.2) and its UTF-8 extension (RFC 6531).
#include <catch2/catch.hpp>

#include "smtp/address.hpp"

TEST_CASE("valid paths") {
  const char* good[] = {
      "<a@example.test>", "<first.last@sub.example.test>", "<\"quoted local\"@example.test>",
      "<\"a\\\"b\"@example.test>", "<user+tag@example.test>", "<a@[192.0.2.1]>", "<a@[IPv6:2001:db8::1]>",
      "<!#$%&'*+-/=?^_`{|}~@example.test>", "<j\xc3\xb6rg@b\xc3\xbc""cher.example>", "<a@x-y.example>",
  };
  for (const char* p : good) {
    INFO(p);
    const auto r = smtp::parse_path(p, false, false);
    REQUIRE(r.addr);
    CHECK(r.consumed == std::string_view(p).size());
  }
}

TEST_CASE("invalid paths") {
  const char* bad[] = {
      "a@example.test", "<a@example.test", "<@example.test>", "<a@>", "<a@.example>", "<a@example..test>",
      "<a.@example.test>", "<a@-example.test>", "<a@example-.test>", "<a@[1.2.3]>", "<a@[IPv6:zz]>",
      "<\"unterminated@example.test>", "<a\x01@example.test>", "<a@exa mple.test>", "<j\xc3@example.test>",
      "<a@\xff.example>",
  };
  for (const char* p : bad) {
    INFO(p);
    CHECK_FALSE(smtp::parse_path(p, false, false).addr);
  }
}

TEST_CASE("length limits of RFC 5321 section 4.5.3.1") {
  const std::string local64(64, 'a'), local65(65, 'a');
  CHECK(smtp::parse_path("<" + local64 + "@example.test>", false, false).addr);
  const auto r = smtp::parse_path("<" + local65 + "@example.test>", false, false);
  CHECK_FALSE(r.addr);
  CHECK(r.error == smtp::path_error::too_long);
  std::string label(63, 'd');
  std::string domain = label + "." + label + "." + label + "." + std::string(61, 'd');  // 253
  CHECK(smtp::is_valid_domain(domain));
  CHECK_FALSE(smtp::is_valid_domain(std::string(64, 'd') + ".example"));
}

TEST_CASE("null path and postmaster only where allowed") {
  CHECK(smtp::parse_path("<>", true, false).addr);
  CHECK_FALSE(smtp::parse_path("<>", false, true).addr);
  CHECK(smtp::parse_path("<postmaster>", false, true).addr);
  CHECK_FALSE(smtp::parse_path("<postmaster>", true, false).addr);
}

TEST_CASE("a '>' inside a quoted local part does not end the path") {
  const auto r = smtp::parse_path("<\"a>b\"@example.test> SIZE=1", false, false);
  REQUIRE(r.addr);
  CHECK(r.addr->local == "\"a>b\"");
  CHECK(r.consumed == 20);
}

TEST_CASE("ascii detection and utf-8 validation") {
  CHECK(smtp::address{"a", "b.c"}.ascii());
  CHECK_FALSE(smtp::address{"j\xc3\xb6rg", "b.c"}.ascii());
  CHECK(smtp::is_valid_utf8("plain"));
  CHECK(smtp::is_valid_utf8("\xe2\x82\xac"));
  CHECK_FALSE(smtp::is_valid_utf8("\xc0\xaf"));          // overlong
  CHECK_FALSE(smtp::is_valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(smtp::is_valid_utf8("\xe2\x82"));          // truncated
  CHECK_FALSE(smtp::is_valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
}

TEST_CASE("bare mailboxes as in configuration files") {
  CHECK(smtp::parse_mailbox("alice@example.test"));
  CHECK_FALSE(smtp::parse_mailbox("alice"));
  CHECK_FALSE(smtp::parse_mailbox("<alice@example.test>"));
}
