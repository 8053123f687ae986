// The single writer of new messages. Sessions submit messages from any thread;
// one thread takes everything waiting, writes it in one transaction and
// commits (one fsync for the batch: group commit), then reports each result.
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

class writer {
 public:
  using done_fn = std::function<void(store_result, const std::string& detail)>;

  explicit writer(const std::filesystem::path& db_path);
  ~writer();
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  // `done` runs on the writer thread; it must be quick (post elsewhere).
  void submit(new_message m, done_fn done);
  // Finishes what was submitted, then stops the thread. Idempotent.
  void stop();
  writer_stats stats() const;

 private:
  struct pending {
    new_message msg;
    done_fn done;
  };
  void run();
  void write_batch(std::vector<pending>& batch);
  void insert(const new_message& m);

  database db_;
  statement msg_insert_;   // used by the writer thread only
  statement rcpt_insert_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<pending> queue_;
  bool stopping_ = false;
  writer_stats stats_;
  std::thread thread_;
};

}  // namespace queue
