#include "delivery/route.hpp"

#include <charconv>

namespace delivery {

std::optional<route> parse_route(std::string_view s, std::uint16_t default_port) {
  route r;
  r.port = default_port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    r.host = std::string(s.substr(1, close - 1));
    r.mx_lookup = false;
    s.remove_prefix(close + 1);
    if (s.empty()) return r;
    if (s.front() != ':') return std::nullopt;
    s.remove_prefix(1);
  } else {
    const auto colon = s.rfind(':');
    r.host = std::string(s.substr(0, colon));
    s = colon == std::string_view::npos ? std::string_view{} : s.substr(colon + 1);
    if (r.host.empty()) return std::nullopt;
    if (colon == std::string_view::npos) return r;
  }
  unsigned p = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), p);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || p == 0 || p > 65535) return std::nullopt;
  r.port = static_cast<std::uint16_t>(p);
  return r;
}

}  // namespace delivery
