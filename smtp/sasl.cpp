#include "smtp/sasl.hpp"

#include <array>

namespace smtp {
namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    std::array<int, 4> v{};
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + static_cast<std::size_t>(k)];
      if (c == '=' && last && k >= 2) {
        ++pad;
        v[static_cast<std::size_t>(k)] = 0;
        continue;
      }
      if (pad) return std::nullopt;  // data after padding
      v[static_cast<std::size_t>(k)] = value_of(c);
      if (v[static_cast<std::size_t>(k)] < 0) return std::nullopt;
    }
    const unsigned n = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                       (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
    // RFC 4648 §3.5: the bits that padding leaves unused must be zero, so
    // that every input has exactly one meaning (found by fuzz/reply_fuzzer).
    if ((pad == 1 && (n & 0xff)) || (pad == 2 && (n & 0xffff))) return std::nullopt;
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const auto b0 = static_cast<unsigned char>(in[i]);
    const auto b1 = i + 1 < in.size() ? static_cast<unsigned char>(in[i + 1]) : 0u;
    const auto b2 = i + 2 < in.size() ? static_cast<unsigned char>(in[i + 2]) : 0u;
    const unsigned n = (b0 << 16) | (b1 << 8) | b2;
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? alphabet[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? alphabet[n & 63] : '=';
  }
  return out;
}

std::optional<plain_credentials> parse_plain(std::string_view d) {
  const auto a = d.find('\0');
  if (a == std::string_view::npos) return std::nullopt;
  const auto b = d.find('\0', a + 1);
  if (b == std::string_view::npos || d.find('\0', b + 1) != std::string_view::npos) return std::nullopt;
  plain_credentials c{std::string(d.substr(0, a)), std::string(d.substr(a + 1, b - a - 1)), std::string(d.substr(b + 1))};
  if (c.authcid.empty() || c.password.empty()) return std::nullopt;
  return c;
}

}  // namespace smtp
