// Address syntax per RFC 5321 §4.1.2 with the UTF-8 extensions of RFC 6531 §3.3:
// octets >= 0x80 are allowed wherever atext or a label character is, as long
// as they form valid UTF-8. Whether the client may use them (SMTPUTF8) is the
// session's decision, not this parser's.
#include "smtp/address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace smtp {
namespace {

constexpr std::size_t max_local = 64;    // RFC 5321 §4.5.3.1.1
constexpr std::size_t max_domain = 255;  // RFC 5321 §4.5.3.1.2
constexpr std::size_t max_path = 256;    // RFC 5321 §4.5.3.1.3 (including the brackets)

bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_atext(unsigned char c) {
  return is_alpha(c) || is_digit(c) || c >= 0x80 || std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr;
}

bool is_dot_string(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (unsigned char c : s) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (c == 0 || !is_atext(c)) {
      return false;
    }
    prev = static_cast<char>(c);
  }
  return true;
}

bool is_quoted_string(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (i + 2 >= s.size()) return false;
      const auto q = static_cast<unsigned char>(s[++i]);
      if (q < 32 || q > 126) return false;
    } else if (c == '"' || (c < 32 && c != 0) || c == 127 || c == 0) {
      return false;
    }
  }
  return true;
}

bool is_address_literal(std::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  const std::string inner(s.substr(1, s.size() - 2));
  unsigned char buf[16];
  if (inner.rfind("IPv6:", 0) == 0) return inet_pton(AF_INET6, inner.c_str() + 5, buf) == 1;
  if (inet_pton(AF_INET, inner.c_str(), buf) == 1) return true;
  // General-address-literal: Standardized-tag ":" 1*dcontent (RFC 5321 §4.1.3).
  const auto colon = inner.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == inner.size()) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    const auto c = static_cast<unsigned char>(inner[i]);
    if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
  }
  return std::all_of(inner.begin() + static_cast<long>(colon) + 1, inner.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c >= 33 && c <= 126 && c != '[' && c != ']' && c != '\\';
  });
}

// Finds the '@' that separates local part and domain, skipping a quoted local part.
std::size_t find_at(std::string_view s) {
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (quoted && s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && s[i] == '@') {
      return i;
    }
  }
  return std::string_view::npos;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += n + 1;
  }
  return true;
}

bool is_valid_domain(std::string_view d) {
  if (d.empty() || d.size() > max_domain) return false;
  if (d.front() == '[') return is_address_literal(d);
  std::size_t start = 0;
  while (true) {
    const auto dot = d.find('.', start);
    const auto label = d.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (unsigned char c : label)
      if (!is_alpha(c) && !is_digit(c) && c != '-' && c < 0x80) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return is_valid_utf8(d);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x + 32 : x) == (y >= 'A' && y <= 'Z' ? y + 32 : y);
         });
}

bool address::ascii() const {
  auto is_ascii = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  };
  return is_ascii(local) && is_ascii(domain);
}

std::string address::str() const {
  if (domain.empty()) return local;
  return local + "@" + domain;
}

std::optional<address> parse_mailbox(std::string_view in) {
  const auto at = find_at(in);
  if (at == std::string_view::npos) return std::nullopt;
  const auto local = in.substr(0, at);
  const auto domain = in.substr(at + 1);
  if (local.size() > max_local || !(is_dot_string(local) || is_quoted_string(local))) return std::nullopt;
  if (!is_valid_domain(domain) || !is_valid_utf8(local)) return std::nullopt;
  return address{std::string(local), std::string(domain)};
}

path_result parse_path(std::string_view in, bool allow_null, bool allow_postmaster) {
  path_result r;
  if (in.empty() || in.front() != '<') return r;
  // The closing '>' may not sit inside a quoted local part.
  std::size_t end = std::string_view::npos;
  bool quoted = false;
  for (std::size_t i = 1; i < in.size(); ++i) {
    if (quoted && in[i] == '\\') {
      ++i;
    } else if (in[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && in[i] == '>') {
      end = i;
      break;
    }
  }
  if (end == std::string_view::npos) return r;
  r.consumed = end + 1;
  if (r.consumed > max_path) {
    r.error = path_error::too_long;
    return r;
  }
  std::string_view inner = in.substr(1, end - 1);
  if (inner.empty()) {
    if (allow_null) r.addr = address{};
    return r;
  }
  if (inner.front() == '@') {  // source route: "@a,@b:" — syntax-checked, then ignored
    const auto colon = inner.find(':');
    if (colon == std::string_view::npos) return r;
    std::string_view route = inner.substr(0, colon);
    std::size_t start = 0;
    while (start < route.size()) {
      auto comma = route.find(',', start);
      auto hop = route.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      if (hop.size() < 2 || hop.front() != '@' || !is_valid_domain(hop.substr(1))) return r;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    inner = inner.substr(colon + 1);
  }
  if (allow_postmaster && iequals(inner, "postmaster")) {
    r.addr = address{std::string(inner), {}};
    return r;
  }
  const auto at = find_at(inner);
  if (at == std::string_view::npos) return r;
  const auto local = inner.substr(0, at);
  const auto domain = inner.substr(at + 1);
  if (local.size() > max_local || domain.size() > max_domain) {
    r.error = path_error::too_long;
    return r;
  }
  if (!(is_dot_string(local) || is_quoted_string(local)) || !is_valid_domain(domain)) {
    r.error = is_valid_utf8(inner) ? path_error::syntax : path_error::bad_utf8;
    return r;
  }
  if (!is_valid_utf8(local)) {
    r.error = path_error::bad_utf8;
    return r;
  }
  r.addr = address{std::string(local), std::string(domain)};
  return r;
}

}  // namespace smtp
