#include "mta/auth_throttle.hpp"

#include <algorithm>

namespace mta {

auth_throttle::verdict auth_throttle::failed(const std::string& ip, clock::time_point now) {
  std::lock_guard lock(mu_);
  // Forget addresses that have been quiet long enough; keeps the map bounded.
  for (auto it = by_ip_.begin(); it != by_ip_.end();)
    it = now - it->second.last > forget_after ? by_ip_.erase(it) : std::next(it);
  auto& e = by_ip_[ip];
  ++e.failures;
  e.last = now;
  verdict v;
  v.disconnect = e.failures > max_;
  // first, 2×first, 4×first … capped at 32×first.
  const unsigned shift = std::min(e.failures - 1, 5u);
  v.delay = first_ * (1u << shift);
  return v;
}

bool auth_throttle::blocked(const std::string& ip, clock::time_point now) {
  std::lock_guard lock(mu_);
  const auto it = by_ip_.find(ip);
  return it != by_ip_.end() && now - it->second.last <= forget_after && it->second.failures >= max_;
}

void auth_throttle::succeeded(const std::string& ip) {
  std::lock_guard lock(mu_);
  by_ip_.erase(ip);
}

}  // namespace mta
