// Fuzzes the client's reply parser (what a hostile remote server may send) and
// the SASL decoders (what a hostile client may send): no crash, and a parsed
// reply is always well-formed (a code 200-599, at least one line).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "smtp/reply_parser.hpp"
#include "smtp/sasl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  smtp::reply_parser p;
  while (!in.empty()) {
    const auto r = p.feed(in);
    if (r.consumed > in.size()) std::abort();
    in.remove_prefix(r.consumed);
    if (r.st == smtp::reply_parser::status::error) break;
    if (r.st == smtp::reply_parser::status::done) {
      const auto rep = p.take();
      if (rep.code < 200 || rep.code > 599 || rep.lines.empty()) std::abort();
      if (rep.lines.size() > smtp::reply_parser::max_lines) std::abort();
    } else if (r.consumed == 0) {
      break;
    }
  }
  const std::string_view whole(reinterpret_cast<const char*>(data), size);
  if (const auto d = smtp::base64_decode(whole)) {
    if (smtp::base64_encode(*d) != whole) std::abort();  // strict base64 round-trips exactly
    smtp::parse_plain(*d);
  }
  return 0;
}
