// A fixed-bucket histogram for metrics (Prometheus style: cumulative counts
// per upper bound, plus sum and count). Lock-free to update from any thread.
// Lives in queue/ because queue/ is the lowest library that measures
// something (commit latency); delivery/ and mta/ use it too.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace queue {

class histogram {
 public:
  histogram(std::initializer_list<double> bounds) : bounds_(bounds), counts_(bounds_.size() + 1) {}

  void observe(double v) {
    std::size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    // Sum kept in micro-units so that it can be an atomic integer.
    sum_micro_.fetch_add(static_cast<std::int64_t>(v * 1e6), std::memory_order_relaxed);
  }

  struct snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  snapshot read() const {
    snapshot s;
    s.bounds = bounds_;
    std::uint64_t acc = 0;
    for (const auto& c : counts_) {
      acc += c.load(std::memory_order_relaxed);
      s.cumulative.push_back(acc);
    }
    s.count = acc;
    s.sum = static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6;
    return s;
  }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> counts_;
  std::atomic<std::int64_t> sum_micro_{0};
};

}  // namespace queue
