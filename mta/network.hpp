// IP networks ("192.0.2.0/24", "::1/128") for the relay policy. Client
// addresses that arrive IPv4-mapped on a dual-stack socket ("::ffff:192.0.2.1")
// are matched as the IPv4 addresses they are.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mta {

struct ip_address {
  std::array<std::uint8_t, 16> bytes{};
  bool v4 = false;  // then only bytes[0..3] count
};

std::optional<ip_address> parse_ip(std::string_view s);

struct cidr {
  ip_address net;
  unsigned prefix = 0;
  bool contains(const ip_address& a) const;
};

// "a.b.c.d/n", "x::y/n", or a single address (a /32 or /128).
std::optional<cidr> parse_cidr(std::string_view s);

}  // namespace mta
