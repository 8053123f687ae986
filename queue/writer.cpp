#include "queue/writer.hpp"

#include <algorithm>
#include <chrono>
#include <memory>

namespace queue {
namespace {

// A batch is bounded so that one commit never holds an unbounded amount of data.
constexpr std::size_t max_batch_jobs = 1000;
constexpr std::size_t max_batch_bytes = 64 * 1024 * 1024;

}  // namespace

void insert_message(database& db, const new_message& m) {
  auto& msg = db.cached(
      "INSERT INTO messages(id, received_at, sender, client_ip, helo, size, body_type, smtputf8, dsn_ret, "
      "dsn_envid, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  msg.bind(1, m.id).bind(2, m.received_at).bind(3, m.sender).bind(4, m.client_ip).bind(5, m.helo);
  msg.bind(6, static_cast<std::int64_t>(m.data.size())).bind(7, m.body_type).bind(8, std::int64_t{m.smtputf8});
  msg.bind(9, m.ret).bind(10, m.envid).bind_blob(11, m.data);
  msg.step();
  msg.reset();  // bindings point into `m`; drop them before it goes away
  auto& rcpt = db.cached(
      "INSERT INTO recipients(message_id, idx, address, next_attempt, dsn_notify, dsn_orcpt) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  for (std::size_t i = 0; i < m.rcpts.size(); ++i) {
    rcpt.bind(1, m.id).bind(2, static_cast<std::int64_t>(i)).bind(3, m.rcpts[i].address).bind(4, m.received_at);
    rcpt.bind(5, m.rcpts[i].notify).bind(6, m.rcpts[i].orcpt);
    rcpt.step();
    rcpt.reset();
  }
}

writer::writer(const std::filesystem::path& db_path)
    : db_(db_path, database::open_mode::create), thread_([this] { run(); }) {}

writer::~writer() { stop(); }

void writer::submit(new_message m, done_fn done) {
  auto msg = std::make_shared<new_message>(std::move(m));
  const auto bytes = msg->data.size();
  submit(job{[msg](database& db) { insert_message(db, *msg); }, std::move(done), bytes, true});
}

void writer::submit(job j) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(j));
      cv_.notify_one();
      return;
    }
  }
  j.done(store_result::failed, "queue is shutting down");
}

void writer::on_new_messages(std::function<void()> f) {
  std::lock_guard lock(mu_);
  on_new_messages_ = std::move(f);
}

void writer::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

writer_stats writer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void writer::run() {
  std::vector<job> batch;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything submitted is written
      std::size_t n = 0, bytes = 0;
      while (n < queue_.size() && n < max_batch_jobs && (n == 0 || bytes + queue_[n].bytes <= max_batch_bytes))
        bytes += queue_[n++].bytes;
      std::move(queue_.begin(), queue_.begin() + static_cast<long>(n), std::back_inserter(batch));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
    }
    write_batch(batch);
    batch.clear();
  }
}

void writer::write_batch(std::vector<job>& batch) {
  const auto count_messages = [](const std::vector<job*>& done) {
    return static_cast<std::uint64_t>(std::count_if(done.begin(), done.end(), [](job* j) { return j->adds_messages; }));
  };
  std::vector<job*> committed;
  const auto started = std::chrono::steady_clock::now();
  try {
    transaction_guard tx(db_);
    for (auto& j : batch) j.run(db_);
    tx.commit();
    commit_seconds_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    batch_size_.observe(static_cast<double>(batch.size()));
    for (auto& j : batch) committed.push_back(&j);
  } catch (const db_error&) {
    // Run each job alone, so one bad job (or a disk that filled up half-way)
    // fails only the jobs it must.
    for (auto& j : batch) {
      try {
        transaction_guard tx(db_);
        j.run(db_);
        tx.commit();
        committed.push_back(&j);
      } catch (const db_error& e) {
        j.done(e.disk_full() ? store_result::disk_full : store_result::failed, e.what());
      }
    }
  }
  std::function<void()> observer;
  {
    std::lock_guard lock(mu_);
    stats_.messages += count_messages(committed);
    stats_.batches += committed.empty() ? 0 : 1;
    observer = on_new_messages_;
  }
  for (auto* j : committed) j->done(store_result::ok, {});
  if (observer && count_messages(committed) > 0) observer();
}

}  // namespace queue
