#include "queue/writer.hpp"

#include <algorithm>

namespace queue {
namespace {

// A batch is bounded so that one commit never holds an unbounded amount of data.
constexpr std::size_t max_batch_messages = 1000;
constexpr std::size_t max_batch_bytes = 64 * 1024 * 1024;

}  // namespace

writer::writer(const std::filesystem::path& db_path)
    : db_(db_path, database::open_mode::create),
      msg_insert_(db_,
                  "INSERT INTO messages(id, received_at, sender, client_ip, helo, size, body_type, smtputf8, "
                  "dsn_ret, dsn_envid, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
      rcpt_insert_(db_,
                   "INSERT INTO recipients(message_id, idx, address, next_attempt, dsn_notify, dsn_orcpt) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
      thread_([this] { run(); }) {}

writer::~writer() { stop(); }

void writer::submit(new_message m, done_fn done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back({std::move(m), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(store_result::failed, "queue is shutting down");
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
  std::vector<pending> batch;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything submitted is written
      std::size_t n = 0, bytes = 0;
      while (n < queue_.size() && n < max_batch_messages && (n == 0 || bytes + queue_[n].msg.data.size() <= max_batch_bytes))
        bytes += queue_[n++].msg.data.size();
      std::move(queue_.begin(), queue_.begin() + static_cast<long>(n), std::back_inserter(batch));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
    }
    write_batch(batch);
    batch.clear();
  }
}

void writer::insert(const new_message& m) {
  msg_insert_.reset();
  auto& msg = msg_insert_;
  msg.bind(1, m.id).bind(2, m.received_at).bind(3, m.sender).bind(4, m.client_ip).bind(5, m.helo);
  msg.bind(6, static_cast<std::int64_t>(m.data.size())).bind(7, m.body_type).bind(8, std::int64_t{m.smtputf8});
  msg.bind(9, m.ret).bind(10, m.envid).bind_blob(11, m.data);
  msg.step();
  auto& rcpt = rcpt_insert_;
  for (std::size_t i = 0; i < m.rcpts.size(); ++i) {
    rcpt.reset();
    rcpt.bind(1, m.id).bind(2, static_cast<std::int64_t>(i)).bind(3, m.rcpts[i].address).bind(4, m.received_at);
    rcpt.bind(5, m.rcpts[i].notify).bind(6, m.rcpts[i].orcpt);
    rcpt.step();
  }
  // Bindings point into `m`; drop them before it goes away.
  msg.reset();
  rcpt.reset();
}

void writer::write_batch(std::vector<pending>& batch) {
  try {
    transaction_guard tx(db_);
    for (const auto& p : batch) insert(p.msg);
    tx.commit();
    {
      std::lock_guard lock(mu_);
      stats_.messages += batch.size();
      ++stats_.batches;
    }
    for (auto& p : batch) p.done(store_result::ok, {});
    return;
  } catch (const db_error&) {
    // Fall through: write each message alone, so one bad message (or a
    // disk that filled up half-way) fails only the messages it must.
  }
  for (auto& p : batch) {
    try {
      transaction_guard tx(db_);
      insert(p.msg);
      tx.commit();
      {
        std::lock_guard lock(mu_);
        ++stats_.messages;
        ++stats_.batches;
      }
      p.done(store_result::ok, {});
    } catch (const db_error& e) {
      p.done(e.disk_full() ? store_result::disk_full : store_result::failed, e.what());
    }
  }
}

}  // namespace queue
