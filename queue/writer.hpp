// The single writer of the queue. New messages (from sessions), delivery
// outcomes and leases (from the scheduler) are all jobs on one thread: it takes
// everything waiting, runs it in one transaction and commits once (one fsync
// for the batch: group commit), then reports each result. SQLite allows one
// writer at a time anyway; funnelling writes here keeps them from waiting on
// each other's locks.
// A message's submitter must not answer 250 before its callback says `ok`.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "queue/database.hpp"
#include "queue/histogram.hpp"

namespace queue {

struct new_recipient {
  std::string address;
  std::string notify;
  std::string orcpt;
};

struct new_message {
  std::string id;
  std::int64_t received_at = 0;
  std::string sender;
  std::string client_ip;
  std::string helo;
  std::string body_type;
  bool smtputf8 = false;
  std::string ret;
  std::string envid;
  std::vector<new_recipient> rcpts;
  std::string data;
};

enum class store_result { ok, disk_full, failed };

struct writer_stats {
  std::uint64_t messages = 0;
  std::uint64_t batches = 0;
};

// Inserts one message and its recipients; for use inside a transaction.
void insert_message(database& db, const new_message& m);

class writer {
 public:
  using done_fn = std::function<void(store_result, const std::string& detail)>;

  // A unit of work run inside the batch transaction. `run` may be called
  // again after a rollback (when the batch is retried job by job), so it must
  // start from scratch each time. `done` runs on the writer thread after the
  // commit; it must be quick (post elsewhere).
  struct job {
    std::function<void(database&)> run;
    done_fn done;
    std::size_t bytes = 0;       // to bound a batch
    bool adds_messages = false;  // wakes the committed-message observer
  };

  explicit writer(const std::filesystem::path& db_path);
  ~writer();
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  void submit(new_message m, done_fn done);
  void submit(job j);
  // Called (on the writer thread) after a commit that stored new messages.
  void on_new_messages(std::function<void()> f);
  // Finishes what was submitted, then stops the thread. Idempotent.
  void stop();
  writer_stats stats() const;
  // Seconds per commit (fsync included) and jobs per commit.
  const histogram& commit_seconds() const { return commit_seconds_; }
  const histogram& batch_size() const { return batch_size_; }

 private:
  void run();
  void write_batch(std::vector<job>& batch);

  database db_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<job> queue_;
  bool stopping_ = false;
  writer_stats stats_;
  std::function<void()> on_new_messages_;
  histogram commit_seconds_{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
  histogram batch_size_{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
  std::thread thread_;
};

}  // namespace queue
