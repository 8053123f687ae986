// Two kinds of delivery under one dispatcher thread: local deliveries on
// worker threads (Maildir writes block on fsync), remote deliveries as
// coroutines on remote_delivery's event loop, whose callbacks record the
// outcome. The dispatcher leases, starts remote deliveries and sleeps.
#include "delivery/scheduler.hpp"

#include <chrono>
#include <ctime>
#include <future>  // run_sync
#include <memory>
#include <random>

#include <fmt/format.h>

#include "delivery/delay_text.hpp"
#include "delivery/dsn.hpp"
#include "queue/admin.hpp"
#include "smtp/address.hpp"

namespace delivery {
namespace {

bool wants(const std::string& notify, std::string_view what) {
  // No NOTIFY leaves it to us (RFC 3461 §4.1): failures and delays, as Postfix does.
  if (notify.empty()) return what == "FAILURE" || what == "DELAY";
  return notify.find(what) != std::string::npos;
}

double jitter() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

std::string domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(address.substr(at + 1));
}

}  // namespace

scheduler::scheduler(scheduler_config cfg, queue::writer& writer, const mailbox::directory& dir,
                     queue::id_generator& ids, log_fn log)
    : cfg_(std::move(cfg)),
      writer_(writer),
      dir_(dir),
      ids_(ids),
      log_(std::move(log)),
      local_(dir, cfg_.mailbox_root, cfg_.hostname),
      remote_(std::make_unique<remote_delivery>(cfg_.remote, log_)) {}

scheduler::~scheduler() { stop(); }

bool scheduler::run_sync(std::function<void(queue::database&)> f) {
  std::promise<bool> done;
  writer_.submit(queue::writer::job{std::move(f),
                                    [&](queue::store_result r, const std::string& detail) {
                                      if (r != queue::store_result::ok) log_(fmt::format("warning: queue: {}", detail));
                                      done.set_value(r == queue::store_result::ok);
                                    },
                                    0, false});
  return done.get_future().get();
}

void scheduler::start() {
  std::int64_t released = 0;
  run_sync([&](queue::database& db) { released = queue::release_leases(db); });
  if (released) log_(fmt::format("released {} delivery leases left by an earlier run", released));
  std::string domains = "[";
  for (const auto& d : dir_.domains()) domains += (domains.size() > 1 ? "," : "") + fmt::format("\"{}\"", d);
  domains += "]";
  local_pool_.scope = {queue::lease_scope::kind::local, domains};
  remote_pool_.scope = {queue::lease_scope::kind::remote, domains};
  dispatcher_ = std::thread([this] { dispatch_loop(); });
  for (unsigned i = 0; i < std::max(1u, cfg_.concurrency); ++i)
    local_pool_.threads.emplace_back([this] { worker_loop(); });
}

void scheduler::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  dispatch_cv_.notify_one();
}

void scheduler::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !dispatcher_.joinable()) return;
    stopping_ = true;
    // Leased but not started: the next start-up releases the lease.
    for (auto* p : {&local_pool_, &remote_pool_}) {
      p->in_flight -= p->work.size();
      p->work.clear();
    }
  }
  dispatch_cv_.notify_all();
  local_pool_.cv.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();  // starts nothing more
  remote_->stop();  // abandons the deliveries in flight: their callbacks never come
  {
    std::lock_guard lock(mu_);
    remote_pool_.in_flight -= remote_pool_.running_rcpts;
    remote_pool_.running_rcpts = remote_pool_.running_groups = 0;
  }
  for (auto& w : local_pool_.threads)
    if (w.joinable()) w.join();
  local_pool_.threads.clear();
  // Outcomes still on their way through the writer call back into this object.
  std::unique_lock lock(mu_);
  dispatch_cv_.wait(lock, [&] { return local_pool_.in_flight == 0 && remote_pool_.in_flight == 0; });
}

bool scheduler::remote_startable() const {
  return !remote_pool_.work.empty() && remote_pool_.running_groups < std::max(1u, cfg_.concurrency);
}

void scheduler::dispatch_loop() {
  // Enough leased work to keep every delivery of a pool busy while the next lease runs.
  const std::size_t window = 2 * std::max(1u, cfg_.concurrency);
  std::unique_ptr<queue::database> db;  // reads message data for remote deliveries
  while (true) {
    std::size_t room_local = 0, room_remote = 0;
    {
      std::unique_lock lock(mu_);
      dispatch_cv_.wait(lock, [&] {
        return stopping_ || local_pool_.in_flight < window || remote_pool_.in_flight < window || remote_startable();
      });
      if (stopping_) return;
      room_local = window - std::min(window, local_pool_.in_flight);
      room_remote = window - std::min(window, remote_pool_.in_flight);
      woken_ = false;
    }
    start_remote(db);
    std::vector<queue::due_recipient> local, remote;
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    const bool purge = now - last_purge_ >= 3600;
    if (room_local || room_remote || purge) {
      run_sync([&](queue::database& wdb) {  // both leases in one commit
        local.clear();
        remote.clear();
        if (room_local) local = queue::lease_due(wdb, now, cfg_.lease_seconds, room_local, local_pool_.scope);
        if (room_remote) remote = queue::lease_due(wdb, now, cfg_.lease_seconds, room_remote, remote_pool_.scope);
        if (purge) queue::purge_history(wdb, now - cfg_.history_seconds);
      });
    }
    if (purge) last_purge_ = now;
    {
      std::lock_guard lock(mu_);
      for (auto [batch, p] : {std::pair{&local, &local_pool_}, std::pair{&remote, &remote_pool_}}) {
        if (batch->empty()) continue;
        p->in_flight += batch->size();
        for (auto& r : *batch) p->work.push_back(std::move(r));
      }
    }
    if (!local.empty()) local_pool_.cv.notify_all();
    start_remote(db);
    if (!local.empty() || !remote.empty()) continue;
    // Nothing due for the pools that had room: sleep until a commit wakes us,
    // a second has passed, a pool that was full has room again (its work may
    // be waiting in the queue right now), or a remote delivery may start.
    std::unique_lock lock(mu_);
    dispatch_cv_.wait_for(lock, std::chrono::seconds(1), [&] {
      return stopping_ || woken_ || (room_local == 0 && local_pool_.in_flight < window) ||
             (room_remote == 0 && remote_pool_.in_flight < window) || remote_startable();
    });
  }
}

void scheduler::start_remote(std::unique_ptr<queue::database>& db) {
  while (true) {
    std::vector<queue::due_recipient> group;
    {
      std::lock_guard lock(mu_);
      if (stopping_ || !remote_startable()) return;
      auto& work = remote_pool_.work;
      group.push_back(std::move(work.front()));
      work.pop_front();
      const auto& first = group.front();
      const auto domain = smtp::lower(domain_of(first.address));
      for (auto it = work.begin(); it != work.end() && group.size() < 100;) {
        if (it->message_id == first.message_id && smtp::lower(domain_of(it->address)) == domain) {
          group.push_back(std::move(*it));
          it = work.erase(it);
        } else {
          ++it;
        }
      }
      ++remote_pool_.running_groups;
      remote_pool_.running_rcpts += group.size();
    }
    const auto n = group.size();
    // Undoes the accounting of a group that does not reach the remote side.
    const auto give_up = [&] {
      {
        std::lock_guard lock(mu_);
        --remote_pool_.running_groups;
        remote_pool_.running_rcpts -= n;
      }
      for (std::size_t i = 0; i < n; ++i) finished_one(remote_pool_);
    };
    std::shared_ptr<const std::string> data;
    try {
      if (!db) db = std::make_unique<queue::database>(cfg_.db_path, queue::database::open_mode::existing);
      if (auto d = queue::message_data(*db, group.front().message_id)) data = std::make_shared<const std::string>(std::move(*d));
    } catch (const std::exception& e) {
      log_(fmt::format("{}: warning: delivery failed: {}", group.front().message_id, e.what()));
      db.reset();
      give_up();  // the lease expires and they are tried again
      continue;
    }
    if (!data) {  // deleted (tern queue delete) after it was leased
      give_up();
      continue;
    }
    const auto& first = group.front();
    client_message m;
    m.sender = first.sender;
    m.smtputf8 = first.smtputf8;
    m.eight_bit = first.body_type == "8BITMIME";
    m.ret = first.ret;
    m.envid = first.envid;
    for (const auto& r : group) m.rcpts.push_back({r.address, r.notify, r.orcpt});
    auto domain = domain_of(first.address);
    auto id = first.message_id;
    remote_->deliver(std::move(domain), std::move(m), data, std::move(id),
                     [this, group = std::move(group), data](std::vector<outcome> outcomes) {
                       {
                         std::lock_guard lock(mu_);
                         --remote_pool_.running_groups;
                         remote_pool_.running_rcpts -= group.size();
                       }
                       if (outcomes.size() == group.size()) {
                         record(group, std::move(outcomes), *data, remote_pool_);
                       } else {  // failed unexpectedly (logged): the lease expires and they are tried again
                         for (std::size_t i = 0; i < group.size(); ++i) finished_one(remote_pool_);
                       }
                       dispatch_cv_.notify_all();  // room for the next delivery
                     });
  }
}

void scheduler::worker_loop() {
  std::unique_ptr<queue::database> db;
  while (true) {
    queue::due_recipient r;
    {
      std::unique_lock lock(mu_);
      local_pool_.cv.wait(lock, [&] { return stopping_ || !local_pool_.work.empty(); });
      if (local_pool_.work.empty()) return;
      r = std::move(local_pool_.work.front());
      local_pool_.work.pop_front();
    }
    try {
      if (!db) db = std::make_unique<queue::database>(cfg_.db_path, queue::database::open_mode::existing);
      deliver_local(*db, r);
    } catch (const std::exception& e) {
      log_(fmt::format("{}: warning: delivery failed: {}", r.message_id, e.what()));
      db.reset();
      finished_one(local_pool_);
    }
  }
}

void scheduler::finished_one(pool& p) {
  {
    std::lock_guard lock(mu_);
    --p.in_flight;
  }
  dispatch_cv_.notify_all();
}

void scheduler::deliver_local(queue::database& db, const queue::due_recipient& r) {
  const auto data = queue::message_data(db, r.message_id);
  if (!data) {  // deleted (tern queue delete) after it was leased
    finished_one(local_pool_);
    return;
  }
  std::vector<outcome> outcomes;
  outcomes.push_back(local_.deliver(r.address, r.sender, *data));
  record({r}, std::move(outcomes), *data, local_pool_);
}

// The outcomes of one delivery group (one message, one destination) are
// recorded in one transaction, with the messages they cause: forwarded
// copies for aliases pointing elsewhere, and the DSNs for the sender, one per
// kind of report (failed, delayed, delivered) naming every recipient of the
// group it concerns, as Postfix's bounce daemon gathers them.
void scheduler::record(const std::vector<queue::due_recipient>& group, std::vector<outcome> outcomes,
                       const std::string& data, pool& p) {
  const auto& first = group.front();
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const std::int64_t now = now_us / 1000000;

  struct done_info {
    std::string line;
    queue::rcpt_status status;
    double delay;
  };
  // From arrival (the queue ID is its timestamp in microseconds) to now.
  const auto arrived_us = queue::id_generator::decode(first.message_id);
  const double delay = arrived_us ? static_cast<double>(now_us - static_cast<std::int64_t>(*arrived_us)) / 1e6
                                  : static_cast<double>(now - first.received_at);
  auto recs = std::make_shared<std::vector<queue::outcome_record>>();
  auto extra = std::make_shared<std::vector<queue::new_message>>();
  auto done = std::make_shared<std::vector<done_info>>();
  auto notes = std::make_shared<std::vector<std::string>>();  // logged after the commit, in order
  enum report { failed, delayed, success, kinds };
  std::vector<dsn_recipient> reports[kinds];
  bool lost_bounce = false;

  for (std::size_t i = 0; i < group.size(); ++i) {
    const auto& r = group[i];
    auto& o = outcomes[i];
    queue::outcome_record rec{r.message_id, r.idx, r.address, o.status, o.reply.summary(), o.relay, now, 0,
                              r.delay_warned};
    std::string dsn_status = o.reply.status;
    if (o.status == queue::rcpt_status::deferred) {
      if (const auto next = next_attempt(cfg_.retry, r.received_at, static_cast<int>(r.attempts) + 1, now, jitter())) {
        rec.next_attempt = *next;
      } else {
        // RFC 3463 X.4.7: the message outlived max_queue_lifetime.
        rec.status = queue::rcpt_status::failed;
        rec.reply = o.reply.summary() + " (delivery time expired)";
        dsn_status = "4.4.7";
      }
    }
    for (const auto& to : o.forward) {
      queue::new_message m;
      m.id = ids_.next();
      m.received_at = now;
      m.sender = r.sender;
      m.client_ip = "127.0.0.1";
      m.helo = cfg_.hostname;
      m.rcpts.push_back({to, "", ""});
      m.data = data;
      notes->push_back(fmt::format("{}: forwarded as {}", r.message_id, m.id));
      extra->push_back(std::move(m));
    }
    const bool bounce = rec.status == queue::rcpt_status::failed && wants(r.notify, "FAILURE");
    // RFC 3461 §5.2: a success report is ours to send when we delivered, or
    // relayed to a server that could not take NOTIFY on ("relayed").
    const bool success_report =
        rec.status == queue::rcpt_status::delivered && wants(r.notify, "SUCCESS") && !o.dsn_passed_on;
    const bool delay_report = rec.status == queue::rcpt_status::deferred && !r.delay_warned &&
                              cfg_.delay_warning_seconds > 0 && now - r.received_at >= cfg_.delay_warning_seconds &&
                              wants(r.notify, "DELAY");
    if (delay_report) rec.delay_warned = true;
    // Never a DSN to the null sender: that is how bounce loops are prevented (RFC 3464 §3).
    if (!r.sender.empty() && (bounce || success_report || delay_report)) {
      const auto kind = bounce ? failed : delay_report ? delayed : success;
      const auto action = bounce ? "failed" : delay_report ? "delayed" : o.relay != "local" ? "relayed" : "delivered";
      reports[kind].push_back({r.address, r.orcpt, action, dsn_status, rec.reply});
    }
    // A failed bounce is not bounced again: that is where bounce loops would start.
    lost_bounce = lost_bounce || (rec.status == queue::rcpt_status::failed && r.sender.empty());

    const char* status_word = rec.status == queue::rcpt_status::delivered ? "sent"
                              : rec.status == queue::rcpt_status::deferred ? "deferred"
                                                                           : "bounced";
    // Postfix style: a remote reply is quoted whole, a local result as its text.
    const auto detail = o.relay == "local" || o.relay == "none" ? o.reply.lines.front() : o.reply.summary();
    done->push_back({fmt::format("{}: to=<{}>, relay={}, delay={}, dsn={}, status={} ({}{})", r.message_id,
                                 r.address, o.relay, delay_text(delay), dsn_status, status_word, detail,
                                 dsn_status == "4.4.7" ? ", delivery time expired" : ""),
                     rec.status, delay});
    recs->push_back(std::move(rec));
  }

  for (int kind = failed; kind < kinds; ++kind) {
    if (reports[kind].empty()) continue;
    dsn_input in;
    in.reporting_mta = cfg_.hostname;
    in.queue_id = first.message_id;
    in.envid = first.envid;
    in.ret = first.ret;
    in.arrival = first.received_at;
    in.now = now;
    in.original_sender = first.sender;
    in.rcpts = std::move(reports[kind]);
    in.original = data;
    queue::new_message m;
    m.id = ids_.next();
    m.received_at = now;
    m.sender = "";
    m.client_ip = "127.0.0.1";
    m.helo = cfg_.hostname;
    m.rcpts.push_back({first.sender, "NEVER", ""});
    m.data = render_dsn(in);
    notes->push_back(fmt::format("{}: sender {} notification: {}", first.message_id,
                                 kind == failed ? "non-delivery" : kind == delayed ? "delay" : "delivery status", m.id));
    extra->push_back(std::move(m));
  }
  if (lost_bounce) notes->push_back(fmt::format("{}: undeliverable message from <> discarded", first.message_id));

  std::size_t bytes = 0;
  for (const auto& m : *extra) bytes += m.data.size();
  auto removed = std::make_shared<bool>(false);
  writer_.submit(queue::writer::job{
      [recs, extra, removed](queue::database& wdb) {
        for (const auto& m : *extra) queue::insert_message(wdb, m);
        for (const auto& rec : *recs) *removed = queue::record_outcome(wdb, rec) || *removed;
      },
      [this, &p, done, notes, removed, msg_id = first.message_id](queue::store_result res, const std::string& detail) {
        if (res == queue::store_result::ok) {
          for (const auto& d : *done) {
            log_(d.line);
            if (d.status == queue::rcpt_status::delivered) {
              ++counters_.delivered;
              delivery_seconds_.observe(d.delay);
            } else if (d.status == queue::rcpt_status::deferred) {
              ++counters_.deferred;
            } else {
              ++counters_.bounced;
            }
          }
          for (const auto& n : *notes) log_(n);
          if (*removed) log_(fmt::format("{}: removed", msg_id));
        } else {
          // The leases expire and the recipients are tried again: a duplicate
          // is possible, a loss is not.
          log_(fmt::format("{}: warning: cannot record delivery outcome: {}", msg_id, detail));
        }
        for (std::size_t i = 0; i < done->size(); ++i) finished_one(p);
      },
      bytes, !extra->empty()});
}

}  // namespace delivery
