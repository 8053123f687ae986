#include "mta/network.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace mta {

std::optional<ip_address> parse_ip(std::string_view s) {
  const std::string str(s);
  ip_address a;
  if (inet_pton(AF_INET, str.c_str(), a.bytes.data()) == 1) {
    a.v4 = true;
    return a;
  }
  if (inet_pton(AF_INET6, str.c_str(), a.bytes.data()) != 1) return std::nullopt;
  static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.bytes.data(), mapped, 12) == 0) {
    std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
    std::memset(a.bytes.data() + 4, 0, 12);
    a.v4 = true;
  }
  return a;
}

std::optional<cidr> parse_cidr(std::string_view s) {
  const auto slash = s.find('/');
  const auto ip = parse_ip(s.substr(0, slash));
  if (!ip) return std::nullopt;
  const unsigned max = ip->v4 ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const auto p = s.substr(slash + 1);
    const auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc{} || ptr != p.data() + p.size() || prefix > max) return std::nullopt;
  }
  return cidr{*ip, prefix};
}

bool cidr::contains(const ip_address& a) const {
  if (a.v4 != net.v4) return false;
  unsigned bits = prefix;
  for (std::size_t i = 0; bits > 0; ++i, bits = bits > 8 ? bits - 8 : 0) {
    const std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((a.bytes[i] & mask) != (net.bytes[i] & mask)) return false;
  }
  return true;
}

}  // namespace mta
