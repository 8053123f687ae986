// Fuzzes the DATA reader with the input split at a fuzzer-chosen point. The
// split must not change the result, the output must never hold a bare CR or
// LF, and "done" must only follow CRLF.CRLF.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/data_decoder.hpp"

namespace {

struct outcome {
  std::string out;
  smtp::data_decoder::status st;
  std::size_t consumed = 0;
};

outcome run(std::string_view a, std::string_view b) {
  outcome o;
  smtp::data_decoder dec(o.out, 1 << 16);
  auto r = dec.feed(a);
  o.consumed = r.consumed;
  o.st = r.st;
  if (r.st == smtp::data_decoder::status::more) {
    r = dec.feed(b);
    o.consumed += r.consumed;
    o.st = r.st;
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t cut = data[0] % (in.size() + 1);
  const auto whole = run(in, {});
  const auto split = run(in.substr(0, cut), in.substr(cut));
  if (whole.st != split.st || whole.out != split.out) std::abort();
  for (std::size_t i = 0; i < whole.out.size(); ++i) {
    const char c = whole.out[i];
    if (c == '\n' && (i == 0 || whole.out[i - 1] != '\r')) std::abort();
    if (c == '\r' && (i + 1 >= whole.out.size() || whole.out[i + 1] != '\n')) std::abort();
  }
  if (whole.st == smtp::data_decoder::status::done) {
    const auto taken = in.substr(0, whole.consumed);
    const bool at_start = taken == ".\r\n";
    if (!at_start && (taken.size() < 5 || taken.substr(taken.size() - 5) != "\r\n.\r\n")) std::abort();
  }
  return 0;
}
