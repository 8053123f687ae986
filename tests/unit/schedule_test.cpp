// The scheduler's queue operations on a real SQLite file: leasing, outcomes,
// retirement of finished messages, crash leftovers, history.
#include <catch2/catch.hpp>

#include <future>

#include <unistd.h>

#include "queue/admin.hpp"
#include "queue/schedule.hpp"
#include "queue/writer.hpp"

namespace fs = std::filesystem;

namespace {

struct fixture {
  fixture() : path(fs::temp_directory_path() / ("tern-sched-" + std::to_string(::getpid()) + "-" + std::to_string(n++))) {
    fs::remove_all(path);
    fs::create_directories(path);
    db = std::make_unique<queue::database>(path / "queue.db", queue::database::open_mode::create);
    queue::new_message m;
    m.id = "M1";
    m.received_at = 1000;
    m.sender = "a@example.test";
    m.rcpts = {{"b@example.test", "", ""}, {"c@example.test", "NEVER", ""}};
    m.data = "x";
    queue::insert_message(*db, m);
  }
  ~fixture() {
    db.reset();
    fs::remove_all(path);
  }
  queue::outcome_record outcome(std::int64_t idx, queue::rcpt_status s, std::int64_t at, std::int64_t next = 0) {
    return {"M1", idx, idx == 0 ? "b@example.test" : "c@example.test", s, "reply", "local", at, next};
  }
  fs::path path;
  std::unique_ptr<queue::database> db;
  static inline int n = 0;
};

}  // namespace

TEST_CASE("due recipients are leased once") {
  fixture f;
  auto a = queue::lease_due(*f.db, 1000, 60, 10);
  REQUIRE(a.size() == 2);
  CHECK(a[0].address == "b@example.test");
  CHECK(a[1].notify == "NEVER");
  CHECK(a[0].sender == "a@example.test");
  CHECK(queue::lease_due(*f.db, 1001, 60, 10).empty());  // leased
  CHECK(queue::lease_due(*f.db, 1061, 60, 10).size() == 2);  // lease expired
  CHECK(queue::release_leases(*f.db) == 2);
  CHECK(queue::lease_due(*f.db, 1061, 60, 1).size() == 1);  // bounded batch
}

TEST_CASE("not yet due and held messages are not leased") {
  fixture f;
  CHECK(queue::lease_due(*f.db, 999, 60, 10).empty());
  queue::set_held(*f.db, "M1", true);
  CHECK(queue::lease_due(*f.db, 5000, 60, 10).empty());
}

TEST_CASE("a deferred recipient waits, a final one is not leased again, the message goes when all are final") {
  fixture f;
  queue::lease_due(*f.db, 1000, 60, 10);
  CHECK_FALSE(queue::record_outcome(*f.db, f.outcome(0, queue::rcpt_status::deferred, 1001, 1300)));
  CHECK_FALSE(queue::record_outcome(*f.db, f.outcome(1, queue::rcpt_status::delivered, 1001)));
  auto m = queue::find_message(*f.db, "M1");
  REQUIRE(m);
  CHECK(m->rcpts[0].status == "deferred");
  CHECK(m->rcpts[0].attempts == 1);
  CHECK(m->rcpts[0].next_attempt == 1300);
  CHECK(queue::lease_due(*f.db, 1200, 60, 10).empty());
  const auto again = queue::lease_due(*f.db, 1300, 60, 10);
  REQUIRE(again.size() == 1);
  CHECK(again[0].attempts == 1);
  CHECK(queue::record_outcome(*f.db, f.outcome(0, queue::rcpt_status::failed, 1301)));
  CHECK_FALSE(queue::find_message(*f.db, "M1"));
  const auto hist = queue::attempts_of(*f.db, "M1");
  REQUIRE(hist.size() == 3);
  CHECK(hist[0].status == "deferred");
  CHECK(hist[2].status == "failed");
  CHECK(queue::purge_history(*f.db, 1302) == 3);
  CHECK(queue::attempts_of(*f.db, "M1").empty());
}

TEST_CASE("history of a message still queued is not purged") {
  fixture f;
  queue::record_outcome(*f.db, f.outcome(0, queue::rcpt_status::deferred, 1001, 5000));
  CHECK(queue::purge_history(*f.db, 9999) == 0);
}

TEST_CASE("writer jobs run in the batch transaction and report") {
  const auto dir = fs::temp_directory_path() / ("tern-sched-w-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    queue::writer w(dir / "queue.db");
    std::promise<queue::store_result> p;
    int runs = 0;
    w.submit(queue::writer::job{[&](queue::database& db) {
                                  ++runs;
                                  db.exec("CREATE TABLE t(x)");
                                },
                                [&](queue::store_result r, const std::string&) { p.set_value(r); }, 0, false});
    CHECK(p.get_future().get() == queue::store_result::ok);
    CHECK(runs == 1);
    std::promise<queue::store_result> bad;
    w.submit(queue::writer::job{[](queue::database& db) { db.exec("INSERT INTO nope VALUES (1)"); },
                                [&](queue::store_result r, const std::string&) { bad.set_value(r); }, 0, false});
    CHECK(bad.get_future().get() == queue::store_result::failed);
  }
  fs::remove_all(dir);
}

TEST_CASE("the delay notice flag is kept with the recipient") {
  fixture f;
  auto o = f.outcome(0, queue::rcpt_status::deferred, 1001, 1100);
  o.delay_warned = true;
  queue::record_outcome(*f.db, o);
  const auto due = queue::lease_due(*f.db, 1100, 60, 10);
  REQUIRE(due.size() == 2);
  for (const auto& r : due) CHECK(r.delay_warned == (r.idx == 0));
}
