// Fuzzes the bounce builder with hostile stored messages and recipients: it
// must not crash, and every line of the report ends in CRLF, whatever line
// ends the original had and whatever a recipient field holds.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "delivery/dsn.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const auto split = in.find('\0');
  delivery::dsn_input d;
  d.reporting_mta = "mx.example.test";
  d.queue_id = "QID";
  d.arrival = 1700000000;
  d.now = 1700000100;
  d.original_sender = "a@example.test";
  d.ret = size % 2 ? "FULL" : "HDRS";
  d.rcpts.push_back({"b@example.test", split == std::string::npos ? "" : "rfc822;" + in.substr(0, split), "failed",
                     "5.1.1", "550 5.1.1 no"});
  d.original = split == std::string::npos ? in : std::string_view(in).substr(split + 1);
  const auto m = delivery::render_dsn(d);
  const auto headers = delivery::header_section(d.original);
  if (headers.size() > d.original.size()) std::abort();
  if (m.size() < 4 || m.substr(m.size() - 4) != "--\r\n") std::abort();
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) std::abort();
    if (m[i] == '\r' && (i + 1 >= m.size() || m[i + 1] != '\n')) std::abort();
  }
  return 0;
}
