// Failed authentications per client address, so that guessing passwords is
// slow: each failure waits longer before its answer, and past the limit the
// session ends. Another address is not affected. Thread-safe; entries are
// forgotten after a quiet period.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace mta {

class auth_throttle {
 public:
  using clock = std::chrono::steady_clock;
  auth_throttle(unsigned max_failures, std::chrono::milliseconds first_delay)
      : max_(max_failures), first_(first_delay) {}

  struct verdict {
    std::chrono::milliseconds delay{0};  // wait this long before answering
    bool disconnect = false;             // past the limit: 421 and close
  };
  verdict failed(const std::string& ip, clock::time_point now = clock::now());
  // Past the limit: no password from this address is even checked until its
  // failures are forgotten (15 quiet minutes), so new connections cannot
  // keep guessing one at a time.
  bool blocked(const std::string& ip, clock::time_point now = clock::now());
  void succeeded(const std::string& ip);

 private:
  struct entry {
    unsigned failures = 0;
    clock::time_point last;
  };
  static constexpr std::chrono::minutes forget_after{15};
  unsigned max_;
  std::chrono::milliseconds first_;
  std::mutex mu_;
  std::map<std::string, entry> by_ip_;
};

}  // namespace mta
