// The back-off schedule as a table: doubling from 5 minutes, capped at 4 hours,
// jitter within ±10 %, nothing past the queue lifetime.
#include <catch2/catch.hpp>

#include "delivery/delay_text.hpp"
#include "delivery/retry_policy.hpp"

TEST_CASE("retry schedule without jitter") {
  const delivery::retry_config cfg;  // 5m doubling to 4h, lifetime 5d
  struct row {
    int attempts;
    std::int64_t delay;
  };
  const row rows[] = {{1, 300}, {2, 600}, {3, 1200}, {4, 2400}, {5, 4800}, {6, 9600}, {7, 14400}, {8, 14400}, {30, 14400}};
  for (const auto& r : rows) {
    INFO("attempts " << r.attempts);
    CHECK(delivery::next_attempt(cfg, 0, r.attempts, 1000, 0.5) == 1000 + r.delay);
  }
}

TEST_CASE("jitter stays within ten percent") {
  const delivery::retry_config cfg;
  CHECK(delivery::next_attempt(cfg, 0, 1, 0, 0.0) == 270);
  CHECK(*delivery::next_attempt(cfg, 0, 1, 0, 0.999) <= 330);
}

TEST_CASE("the queue lifetime ends retries") {
  const delivery::retry_config cfg;
  CHECK_FALSE(delivery::next_attempt(cfg, 0, 40, cfg.lifetime, 0.5));
  // Close to the end, the last try is at the end of the lifetime, not past it.
  CHECK(delivery::next_attempt(cfg, 0, 40, cfg.lifetime - 60, 0.5) == cfg.lifetime);
}

TEST_CASE("delay= in the mail log, with Postfix's precision") {
  CHECK(delivery::delay_text(0) == "0");
  CHECK(delivery::delay_text(0.004) == "0");
  CHECK(delivery::delay_text(0.123) == "0.12");
  CHECK(delivery::delay_text(0.1) == "0.1");
  CHECK(delivery::delay_text(3.456) == "3.46");
  CHECK(delivery::delay_text(12.34) == "12.3");
  CHECK(delivery::delay_text(35.0) == "35");
  CHECK(delivery::delay_text(1234.56) == "1235");
  CHECK(delivery::delay_text(-1.0) == "0");  // the clock stepped back
}
