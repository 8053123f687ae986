#include "mta/metrics.hpp"

#include <fmt/format.h>

#include "delivery/scheduler.hpp"

namespace mta {
namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
}

}  // namespace

std::string render_histogram(const std::string& name, const std::string& help, const queue::histogram& h) {
  const auto s = h.read();
  std::string out = fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  for (std::size_t i = 0; i < s.bounds.size(); ++i)
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, s.bounds[i], s.cumulative[i]);
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, s.cumulative.back(), name, s.sum,
                     name, s.count);
  return out;
}

std::string render_metrics(const metrics_sources& m) {
  std::string out;
  metric(out, "tern_connections_current", "gauge", "SMTP connections open now.", static_cast<double>(m.connections_current));
  metric(out, "tern_connections_total", "counter", "SMTP connections accepted.", static_cast<double>(m.server.connections_total));
  metric(out, "tern_connections_rejected_total", "counter", "SMTP connections refused for being over a limit.",
         static_cast<double>(m.server.connections_rejected));
  metric(out, "tern_messages_received_total", "counter", "Messages accepted from SMTP clients (250 sent).",
         static_cast<double>(m.server.messages_received));
  if (m.scheduler) {
    const auto& c = m.scheduler->outcomes();
    metric(out, "tern_recipients_delivered_total", "counter", "Recipients delivered (locally or relayed).",
           static_cast<double>(c.delivered));
    metric(out, "tern_recipients_deferred_total", "counter", "Delivery attempts deferred.", static_cast<double>(c.deferred));
    metric(out, "tern_recipients_bounced_total", "counter", "Recipients that failed permanently.",
           static_cast<double>(c.bounced));
    out += render_histogram("tern_delivery_seconds", "Time from receipt to delivery.", m.scheduler->delivery_seconds());
  }
  out += "# HELP tern_queue_recipients Recipients in the queue by status.\n# TYPE tern_queue_recipients gauge\n";
  for (const char* status : {"queued", "deferred", "delivered", "failed"}) {
    const auto it = m.queue.recipients_by_status.find(status);
    out += fmt::format("tern_queue_recipients{{status=\"{}\"}} {}\n", status,
                       it == m.queue.recipients_by_status.end() ? 0 : it->second);
  }
  metric(out, "tern_queue_messages", "gauge", "Messages in the queue.", static_cast<double>(m.queue.messages));
  metric(out, "tern_queue_bytes", "gauge", "Octets of queued messages.", static_cast<double>(m.queue.bytes));
  metric(out, "tern_queue_oldest_age_seconds", "gauge", "Age of the oldest queued message (0 when empty).",
         m.queue.oldest_received_at ? static_cast<double>(m.now - m.queue.oldest_received_at) : 0.0);
  const auto ws = m.writer.stats();
  metric(out, "tern_queue_commits_total", "counter", "SQLite commits (each one fsync).", static_cast<double>(ws.batches));
  out += render_histogram("tern_queue_commit_seconds", "Time per SQLite commit, fsync included.", m.writer.commit_seconds());
  out += render_histogram("tern_queue_commit_batch_size", "Jobs (messages, outcomes) per commit.", m.writer.batch_size());
  return out;
}

}  // namespace mta
