#include "smtp/dot_stuffer.hpp"

namespace smtp {

std::string dot_stuff(std::string_view m) {
  std::string out;
  out.reserve(m.size() + m.size() / 64 + 8);
  bool bol = true;
  for (std::size_t i = 0; i < m.size(); ++i) {
    const char c = m[i];
    if (bol && c == '.') out += '.';
    if (c == '\r') {
      out += "\r\n";
      if (i + 1 < m.size() && m[i + 1] == '\n') ++i;
      bol = true;
    } else if (c == '\n') {
      out += "\r\n";
      bol = true;
    } else {
      out += c;
      bol = false;
    }
  }
  if (!bol) out += "\r\n";  // the end marker must start a line
  out += ".\r\n";
  return out;
}

}  // namespace smtp
