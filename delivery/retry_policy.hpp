// When to try a deferred recipient again: a pure function of the attempt
// count and the clock, as OpenSMTPD keeps its back-off. Exponential from
// `initial`, capped at `max`, with jitter so that recipients deferred together
// do not all come back in the same second; nothing after `lifetime`.
#pragma once

#include <cstdint>
#include <optional>

namespace delivery {

struct retry_config {
  std::int64_t initial = 5 * 60;        // seconds
  std::int64_t max = 4 * 60 * 60;
  std::int64_t lifetime = 5 * 24 * 3600;
};

// `attempts` counts the attempts made so far (>= 1); `jitter` is in [0, 1) and
// moves the delay by up to -10 %..+10 %. Returns the unix time of the next
// attempt, or nullopt when the recipient has outlived the queue lifetime and
// must fail.
std::optional<std::int64_t> next_attempt(const retry_config& cfg, std::int64_t received_at, int attempts,
                                         std::int64_t now, double jitter);

}  // namespace delivery
