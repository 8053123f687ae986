// Fuzzes smtp::parse_command: it must never crash, and whatever it returns must
// be well-formed (an error reply with a 4xx/5xx code, or a command whose
// address fields respect the RFC 5321 length limits).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "smtp/command.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const auto r = smtp::parse_command(line);
  if (const auto* rep = std::get_if<smtp::reply>(&r)) {
    if (rep->code < 400 || rep->code > 599 || rep->lines.empty()) std::abort();
    if (rep->wire().find('\n') != rep->wire().size() - 1) std::abort();  // one line, ends in CRLF
  } else {
    const auto& c = std::get<smtp::command>(r);
    if (c.path.local.size() > 64 || c.path.domain.size() > 255) std::abort();
    if (line.size() + 2 > smtp::max_command_line) std::abort();
  }
  return 0;
}
