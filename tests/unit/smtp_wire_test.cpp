// The client's pure parts: reading replies, dot-stuffing on the way out,
// routes from the transport table, the Received: hop count.
#include <catch2/catch.hpp>

#include "delivery/remote_delivery.hpp"
#include "smtp/dot_stuffer.hpp"
#include "smtp/reply_parser.hpp"
#include "smtp/sasl.hpp"

TEST_CASE("reply parser: single, multi-line, pipelined, split anywhere") {
  const std::string in = "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n550 5.1.1 <x@y>: no such user\r\n";
  for (std::size_t cut = 0; cut <= in.size(); ++cut) {
    INFO("cut " << cut);
    smtp::reply_parser p;
    std::vector<smtp::reply> got;
    for (std::string_view piece : {std::string_view(in).substr(0, cut), std::string_view(in).substr(cut)}) {
      while (!piece.empty()) {
        const auto r = p.feed(piece);
        REQUIRE(r.st != smtp::reply_parser::status::error);
        piece.remove_prefix(r.consumed);
        if (r.st == smtp::reply_parser::status::done) got.push_back(p.take());
      }
    }
    REQUIRE(got.size() == 2);
    CHECK(got[0].code == 250);
    CHECK(got[0].lines == std::vector<std::string>{"mx.example", "PIPELINING", "SIZE 1000"});
    CHECK(got[0].status.empty());
    CHECK(got[1].code == 550);
    CHECK(got[1].status == "5.1.1");
    CHECK(got[1].lines == std::vector<std::string>{"<x@y>: no such user"});
  }
}

TEST_CASE("reply parser refuses malformed replies") {
  for (const char* bad : {"hello\r\n", "25\r\n", "250-a\r\n251 b\r\n", "999 x\r\n", "250xok\r\n"}) {
    INFO(bad);
    smtp::reply_parser p;
    std::string_view in(bad);
    smtp::reply_parser::result r{0, smtp::reply_parser::status::more};
    while (!in.empty() && r.st == smtp::reply_parser::status::more) {
      r = p.feed(in);
      in.remove_prefix(r.consumed);
    }
    CHECK(r.st == smtp::reply_parser::status::error);
  }
  smtp::reply_parser p;
  CHECK(p.feed(std::string(5000, '2')).st == smtp::reply_parser::status::error);  // bounded line
}

TEST_CASE("a bare code and an enhanced code of another class") {
  smtp::reply_parser p;
  REQUIRE(p.feed("354\r\n").st == smtp::reply_parser::status::done);
  CHECK(p.take().code == 354);
  REQUIRE(p.feed("250 5.1.1 odd\r\n").st == smtp::reply_parser::status::done);
  const auto r = p.take();
  CHECK(r.status.empty());  // an enhanced code must match the reply's class
  CHECK(r.lines.front() == "5.1.1 odd");
}

TEST_CASE("dot-stuffing and line ends on the wire") {
  struct row {
    std::string in, out;
  };
  const row rows[] = {
      {"", ".\r\n"},
      {"a\r\n", "a\r\n.\r\n"},
      {".x\r\n", "..x\r\n.\r\n"},
      {"a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
      {"no final newline", "no final newline\r\n.\r\n"},
      {"bare\nlf\n.dot\n", "bare\r\nlf\r\n..dot\r\n.\r\n"},
      {"bare\rcr\r", "bare\r\ncr\r\n.\r\n"},
      {"a\n.\nMAIL FROM:<x@y>\r\n", "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n"},
  };
  for (const auto& r : rows) {
    INFO(r.in);
    CHECK(smtp::dot_stuff(r.in) == r.out);
  }
}

TEST_CASE("transport routes") {
  auto r = delivery::parse_route("[127.0.0.11]:2525", 25);
  REQUIRE(r);
  CHECK((r->host == "127.0.0.11" && r->port == 2525 && !r->mx_lookup));
  r = delivery::parse_route("[smart.example]", 25);
  REQUIRE(r);
  CHECK((r->host == "smart.example" && r->port == 25 && !r->mx_lookup));
  r = delivery::parse_route("relay.example:587", 25);
  REQUIRE(r);
  CHECK((r->host == "relay.example" && r->port == 587 && r->mx_lookup));
  for (const char* bad : {"[]:25", "[a]x", "[a]:0", "[a]:70000", ":25", "a:", "[a]:"}) {
    INFO(bad);
    CHECK_FALSE(delivery::parse_route(bad, 25));
  }
}

TEST_CASE("Received: headers are counted in the header section only") {
  std::string m;
  for (int i = 0; i < 3; ++i) m += "Received: from x\r\n\tby y\r\n";
  m += "received: lower case\r\nSubject: s\r\n\r\nReceived: in the body\r\n";
  CHECK(delivery::count_received(m) == 4);
}

TEST_CASE("base64 and SASL PLAIN") {
  CHECK(smtp::base64_encode("") == "");
  CHECK(smtp::base64_encode("f") == "Zg==");
  CHECK(smtp::base64_encode("fo") == "Zm8=");
  CHECK(smtp::base64_encode("foo") == "Zm9v");
  for (const char* s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) CHECK(smtp::base64_decode(smtp::base64_encode(s)) == std::string(s));
  for (const char* bad : {"Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Zm 9v", "=Zm9", "Zh==", "Zm9=", "AGsNlaAFHNlY1J=="}) {
    INFO(bad);
    CHECK_FALSE(smtp::base64_decode(bad));
  }
  const auto c = smtp::parse_plain(std::string("\0alice\0pw", 9));
  REQUIRE(c);
  CHECK((c->authzid.empty() && c->authcid == "alice" && c->password == "pw"));
  CHECK_FALSE(smtp::parse_plain("alice"));
  CHECK_FALSE(smtp::parse_plain(std::string("\0\0pw", 4)));
  CHECK_FALSE(smtp::parse_plain(std::string("\0a\0b\0c", 6)));
}
