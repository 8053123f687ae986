#include "delivery/retry_policy.hpp"

#include <algorithm>

namespace delivery {

std::optional<std::int64_t> next_attempt(const retry_config& cfg, std::int64_t received_at, int attempts,
                                         std::int64_t now, double jitter) {
  if (now - received_at >= cfg.lifetime) return std::nullopt;
  std::int64_t delay = cfg.initial;
  for (int i = 1; i < attempts && delay < cfg.max; ++i) delay *= 2;
  delay = std::min(delay, cfg.max);
  delay += static_cast<std::int64_t>(static_cast<double>(delay) * (jitter - 0.5) * 0.2);
  const std::int64_t at = now + std::max<std::int64_t>(delay, 1);
  // The last try happens at the end of the lifetime, not a whole back-off past it.
  return std::min(at, received_at + cfg.lifetime);
}

}  // namespace delivery
