// Rendering replies; multi-line replies use "code-" on all but the last line (RFC 5321 §4.2.1).
#include "smtp/reply.hpp"

#include <fmt/format.h>

namespace smtp {

reply make_reply(int code, std::string_view status, std::string_view text) {
  return reply{code, std::string(status), {std::string(text)}};
}

std::string reply::wire() const {
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const char sep = i + 1 < lines.size() ? '-' : ' ';
    if (status.empty())
      out += fmt::format("{}{}{}\r\n", code, sep, lines[i]);
    else
      out += fmt::format("{}{}{} {}\r\n", code, sep, status, lines[i]);
  }
  if (lines.empty()) out += fmt::format("{} {}\r\n", code, status);
  return out;
}

std::string reply::summary() const {
  std::string out = fmt::format("{}", code);
  if (!status.empty()) out += " " + status;
  for (const auto& l : lines) out += " " + l;
  return out;
}

}  // namespace smtp
