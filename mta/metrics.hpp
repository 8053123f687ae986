// /metrics in the Prometheus text format (version 0.0.4). The counters live
// with their owners (sessions, queue writer, scheduler); this only renders.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "queue/admin.hpp"
#include "queue/histogram.hpp"
#include "queue/writer.hpp"

namespace delivery {
class scheduler;
}

namespace mta {

struct server_counters {
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> connections_rejected{0};
  std::atomic<std::uint64_t> messages_received{0};
};

struct metrics_sources {
  const server_counters& server;
  std::size_t connections_current = 0;
  const queue::writer& writer;
  const delivery::scheduler* scheduler;  // null when delivery is disabled
  const queue::queue_stats& queue;
  std::int64_t now = 0;
};

std::string render_metrics(const metrics_sources& m);

// One histogram in the exposition format.
std::string render_histogram(const std::string& name, const std::string& help, const queue::histogram& h);

}  // namespace mta
