// The delivery scheduler inside `tern serve`: leases due recipients from the
// queue in bounded batches, delivers them (local ones on worker threads, as
// Maildir delivery is blocking file I/O with fsync; remote ones as coroutines
// on remote_delivery's event loop, started by the dispatcher, so no thread
// waits for a remote server), and records the outcome (with any bounce)
// through the queue writer. Wakes as soon as a
// message is committed, and once a second for what became due or what
// `tern queue retry` changed from another process.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "delivery/local_delivery.hpp"
#include "delivery/remote_delivery.hpp"
#include "delivery/retry_policy.hpp"
#include "mailbox/directory.hpp"
#include "queue/database.hpp"
#include "queue/histogram.hpp"
#include "queue/queue_id.hpp"
#include "queue/schedule.hpp"
#include "queue/writer.hpp"

namespace delivery {

struct scheduler_config {
  std::string hostname;
  std::filesystem::path db_path;
  std::filesystem::path mailbox_root;
  retry_config retry;
  unsigned concurrency = 8;
  std::int64_t lease_seconds = 900;          // a delivery that takes longer may be tried twice
  std::int64_t history_seconds = 7 * 86400;  // attempts of finished messages kept this long
  std::int64_t delay_warning_seconds = 0;    // 0: no delay notices
  remote_config remote;
};

class scheduler {
 public:
  using log_fn = std::function<void(std::string_view)>;

  scheduler(scheduler_config cfg, queue::writer& writer, const mailbox::directory& dir, queue::id_generator& ids,
            log_fn log);
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // Releases leases a crash left behind, then starts the threads.
  void start();
  void wake();
  // Stops leasing, lets the deliveries in flight finish and be recorded.
  void stop();

  struct counters {
    std::atomic<std::uint64_t> delivered{0}, deferred{0}, bounced{0};
  };
  const counters& outcomes() const { return counters_; }
  // Seconds from receipt to delivery, for delivered recipients.
  const queue::histogram& delivery_seconds() const { return delivery_seconds_; }

 private:
  // Local and remote deliveries have their own leases and their own limit:
  // remote servers that are slow (or drip one octet a second) must not keep
  // mail from local mailboxes.
  struct pool {
    std::deque<queue::due_recipient> work;
    std::size_t in_flight = 0;  // leased and not yet recorded
    std::condition_variable cv;
    std::vector<std::thread> threads;  // local only
    queue::lease_scope scope;
    // Remote only: deliveries started and not yet called back, as groups
    // (bounded by the concurrency) and as recipients (what stop() gives up).
    std::size_t running_groups = 0, running_rcpts = 0;
  };

  void dispatch_loop();
  void worker_loop();  // local deliveries
  void deliver_local(queue::database& db, const queue::due_recipient& r);
  // Starts remote deliveries while there is leased work and room; called by
  // the dispatcher only. Recipients of one message that share a domain go
  // in one SMTP transaction.
  void start_remote(std::unique_ptr<queue::database>& db);
  bool remote_startable() const;  // with mu_ held
  void record(const std::vector<queue::due_recipient>& group, std::vector<outcome> outcomes, const std::string& data,
              pool& p);
  bool run_sync(std::function<void(queue::database&)> f);
  void finished_one(pool& p);

  scheduler_config cfg_;
  queue::writer& writer_;
  const mailbox::directory& dir_;
  queue::id_generator& ids_;
  log_fn log_;
  local_delivery local_;
  std::unique_ptr<remote_delivery> remote_;

  std::mutex mu_;
  std::condition_variable dispatch_cv_;
  pool local_pool_, remote_pool_;
  bool woken_ = false;
  bool stopping_ = false;
  std::int64_t last_purge_ = 0;
  counters counters_;
  queue::histogram delivery_seconds_{1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400};
  std::thread dispatcher_;
};

}  // namespace delivery
