#include "mta/json.hpp"

#include <fmt/format.h>

#include "smtp/address.hpp"

namespace mta {

std::string json_quote(std::string_view s) {
  // Octets that are not valid UTF-8 are shown as the Latin-1 characters they would be.
  const bool utf8 = smtp::is_valid_utf8(s);
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) out += fmt::format("\\u{:04x}", c);
        else out += ch;
    }
  }
  out += '"';
  return out;
}

}  // namespace mta
