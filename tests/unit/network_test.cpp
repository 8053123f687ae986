// Relay networks: CIDR parsing and matching, IPv4-mapped addresses, and the
// relay policy's decisions (DESIGN.md invariant 4).
#include <catch2/catch.hpp>

#include "mta/network.hpp"
#include "mta/relay_policy.hpp"

TEST_CASE("cidr matching") {
  struct row {
    const char* net;
    const char* ip;
    bool in;
  };
  const row rows[] = {
      {"127.0.0.0/8", "127.0.0.1", true},       {"127.0.0.0/8", "127.255.1.2", true},
      {"127.0.0.0/8", "128.0.0.1", false},      {"192.0.2.0/25", "192.0.2.127", true},
      {"192.0.2.0/25", "192.0.2.128", false},   {"0.0.0.0/0", "203.0.113.9", true},
      {"192.0.2.1", "192.0.2.1", true},         {"192.0.2.1", "192.0.2.2", false},
      {"::1/128", "::1", true},                 {"2001:db8::/32", "2001:db8:ffff::1", true},
      {"2001:db8::/32", "2001:db9::1", false},  {"127.0.0.0/8", "::ffff:127.0.0.1", true},
      {"127.0.0.0/8", "::1", false},            {"::/0", "127.0.0.1", false},
  };
  for (const auto& r : rows) {
    INFO(r.net << " " << r.ip);
    const auto n = mta::parse_cidr(r.net);
    REQUIRE(n);
    CHECK(n->contains(*mta::parse_ip(r.ip)) == r.in);
  }
  CHECK_FALSE(mta::parse_cidr("10.0.0.0/33"));
  CHECK_FALSE(mta::parse_cidr("10.0.0/8"));
  CHECK_FALSE(mta::parse_cidr("10.0.0.0/"));
  CHECK_FALSE(mta::parse_cidr("::1/129"));
}

TEST_CASE("relay policy: local users, unknown users, relaying") {
  const mailbox::directory dir({"example.test"}, {{"alice@example.test", ""}}, {});
  const mta::relay_policy policy(dir, {*mta::parse_cidr("192.0.2.0/24")});
  const auto inside = *mta::parse_ip("192.0.2.9");
  const auto outside = *mta::parse_ip("203.0.113.9");
  const auto local = *smtp::parse_mailbox("alice@example.test");
  const auto unknown = *smtp::parse_mailbox("nobody@example.test");
  const auto remote = *smtp::parse_mailbox("bob@remote.test");

  CHECK_FALSE(policy.check_rcpt(outside, false, local));
  const auto u = policy.check_rcpt(inside, false, unknown);
  REQUIRE(u);
  CHECK(u->code == 550);
  CHECK(u->status == "5.1.1");
  const auto relay = policy.check_rcpt(outside, false, remote);
  REQUIRE(relay);
  CHECK(relay->code == 554);
  CHECK(relay->status == "5.7.1");
  CHECK_FALSE(policy.check_rcpt(inside, false, remote));
  CHECK_FALSE(policy.check_rcpt(outside, true, remote));
}
