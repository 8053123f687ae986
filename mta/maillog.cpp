#include "mta/maillog.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace mta::maillog {

void write(std::string_view raw) {
  // Client-supplied text (an AUTH user name, a HELO) must not be able to start
  // a forged log line: control characters become '?', as Postfix does.
  std::string line(raw);
  for (auto& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  // One fwrite per line: stdio locks the stream, so lines from threads do not interleave.
  const auto text = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z tern[{}]: {}\n", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms, getpid(), line);
  std::fwrite(text.data(), 1, text.size(), stderr);
}

}  // namespace mta::maillog
