// The queue on a real SQLite file: enqueue through the group-commit writer,
// reopen, read back byte for byte, and the management queries.
#include <catch2/catch.hpp>

#include <chrono>

#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include <unistd.h>

#include "queue/admin.hpp"
#include "queue/queue_id.hpp"
#include "queue/writer.hpp"

namespace fs = std::filesystem;

namespace {

struct temp_dir {
  temp_dir() {
    path = fs::temp_directory_path() / fs::path("tern-queue-test-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  fs::path db() const { return path / "queue.db"; }
  fs::path path;
  static inline int counter = 0;
};

queue::new_message make(const std::string& id, std::string data, std::vector<std::string> rcpts = {"b@example.test"}) {
  queue::new_message m;
  m.id = id;
  m.received_at = 1700000000;
  m.sender = "a@example.test";
  m.client_ip = "192.0.2.1";
  m.helo = "client.example";
  m.body_type = "8BITMIME";
  m.ret = "HDRS";
  m.envid = "env1";
  for (auto& r : rcpts) m.rcpts.push_back({r, "FAILURE", "rfc822;" + r});
  m.data = std::move(data);
  return m;
}

queue::store_result store(queue::writer& w, queue::new_message m) {
  std::promise<queue::store_result> p;
  w.submit(std::move(m), [&](queue::store_result r, const std::string&) { p.set_value(r); });
  return p.get_future().get();
}

}  // namespace

TEST_CASE("queue ids are unique, fixed width and sorted by time") {
  queue::id_generator g;
  std::vector<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.push_back(g.next());
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  for (const auto& id : ids) CHECK(id.size() == 12);
  CHECK(queue::id_generator::encode(0) == "000000000000");
  CHECK(queue::id_generator::encode(31) == "00000000000Z");
}

TEST_CASE("a queue id gives back the microsecond it was made at") {
  using namespace std::chrono;
  const auto before = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  queue::id_generator g;
  const auto at = queue::id_generator::decode(g.next());
  const auto after = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  REQUIRE(at);
  CHECK(static_cast<std::int64_t>(*at) >= before);
  CHECK(static_cast<std::int64_t>(*at) <= after);
  CHECK(queue::id_generator::decode(queue::id_generator::encode(123456789)) == 123456789u);
  CHECK_FALSE(queue::id_generator::decode("01K1E05B4Z2"));    // too short
  CHECK_FALSE(queue::id_generator::decode("01K1E05B4Z2U"));   // U is not in the alphabet
  CHECK_FALSE(queue::id_generator::decode("01k1e05b4z2t"));   // lower case is not how we write them
}

TEST_CASE("enqueue, reopen, read back byte for byte") {
  temp_dir dir;
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  binary += std::string("\0\r\n.\r\n", 6);
  {
    queue::writer w(dir.db());
    CHECK(store(w, make("ID1", binary, {"b@example.test", "c@example.test"})) == queue::store_result::ok);
    CHECK(store(w, make("ID2", "")) == queue::store_result::ok);  // a 0-byte message
  }
  // A new connection, as after a restart.
  queue::database db(dir.db(), queue::database::open_mode::existing);
  const auto all = queue::list_messages(db);
  REQUIRE(all.size() == 2);
  CHECK(all[0].id == "ID1");
  CHECK(all[0].sender == "a@example.test");
  CHECK(all[0].size == static_cast<std::int64_t>(binary.size()));
  CHECK(all[0].body_type == "8BITMIME");
  CHECK(all[0].ret == "HDRS");
  CHECK(all[0].envid == "env1");
  REQUIRE(all[0].rcpts.size() == 2);
  CHECK(all[0].rcpts[1].address == "c@example.test");
  CHECK(all[0].rcpts[1].status == "queued");
  CHECK(all[0].rcpts[1].notify == "FAILURE");
  CHECK(all[0].rcpts[1].orcpt == "rfc822;c@example.test");
  CHECK(queue::message_data(db, "ID1") == binary);
  CHECK(queue::message_data(db, "ID2") == std::string());
  CHECK_FALSE(queue::message_data(db, "NOPE"));
}

TEST_CASE("a large message round-trips") {
  temp_dir dir;
  std::string big(8 * 1024 * 1024, 'x');
  for (std::size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>(i & 0xff);
  queue::writer w(dir.db());
  REQUIRE(store(w, make("BIG", big)) == queue::store_result::ok);
  queue::database db(dir.db(), queue::database::open_mode::existing);
  CHECK(queue::message_data(db, "BIG") == big);
}

TEST_CASE("concurrent submitters share commits (group commit)") {
  temp_dir dir;
  queue::writer w(dir.db());
  constexpr int n = 400;
  std::vector<std::promise<queue::store_result>> done(n);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = t; i < n; i += 4)
        w.submit(make("M" + std::to_string(1000 + i), "body"),
                 [&, i](queue::store_result r, const std::string&) { done[static_cast<std::size_t>(i)].set_value(r); });
    });
  for (auto& t : threads) t.join();
  for (auto& d : done) CHECK(d.get_future().get() == queue::store_result::ok);
  const auto st = w.stats();
  CHECK(st.messages == n);
  CHECK(st.batches <= st.messages);
  queue::database db(dir.db(), queue::database::open_mode::existing);
  CHECK(queue::stats(db).messages == n);
}

TEST_CASE("a duplicate id fails alone, the rest of its batch is stored") {
  temp_dir dir;
  queue::writer w(dir.db());
  REQUIRE(store(w, make("DUP", "a")) == queue::store_result::ok);
  std::promise<queue::store_result> p1, p2;
  w.submit(make("DUP", "b"), [&](queue::store_result r, const std::string&) { p1.set_value(r); });
  w.submit(make("FRESH", "c"), [&](queue::store_result r, const std::string&) { p2.set_value(r); });
  CHECK(p1.get_future().get() == queue::store_result::failed);
  CHECK(p2.get_future().get() == queue::store_result::ok);
  queue::database db(dir.db(), queue::database::open_mode::existing);
  CHECK(queue::message_data(db, "DUP") == "a");
}

TEST_CASE("hold, release, retry, delete and stats") {
  temp_dir dir;
  {
    queue::writer w(dir.db());
    REQUIRE(store(w, make("A", "x", {"b@example.test", "c@example.test"})) == queue::store_result::ok);
    REQUIRE(store(w, make("B", "yy")) == queue::store_result::ok);
  }
  queue::database db(dir.db(), queue::database::open_mode::existing);
  CHECK(queue::set_held(db, "A", true));
  CHECK(queue::find_message(db, "A")->held);
  CHECK(queue::set_held(db, "A", false));
  CHECK_FALSE(queue::find_message(db, "A")->held);
  CHECK_FALSE(queue::set_held(db, "NOPE", true));

  CHECK(queue::retry_now(db, std::string("A"), 1800000000) == 2);
  CHECK(queue::find_message(db, "A")->rcpts[0].next_attempt == 1800000000);
  CHECK(queue::retry_now(db, std::nullopt, 1800000001) == 3);
  CHECK_FALSE(queue::retry_now(db, std::string("NOPE"), 0));

  auto s = queue::stats(db);
  CHECK(s.messages == 2);
  CHECK(s.bytes == 3);
  CHECK(s.recipients_by_status["queued"] == 3);
  CHECK(s.oldest_received_at == 1700000000);

  CHECK(queue::delete_message(db, "A"));
  CHECK_FALSE(queue::delete_message(db, "A"));
  CHECK_FALSE(queue::find_message(db, "A"));
  s = queue::stats(db);
  CHECK(s.messages == 1);
  CHECK(s.recipients_by_status["queued"] == 1);
}

TEST_CASE("opening a missing queue for reading is an error, not a new file") {
  temp_dir dir;
  CHECK_THROWS_AS(queue::database(dir.db(), queue::database::open_mode::existing), queue::db_error);
  CHECK_FALSE(fs::exists(dir.db()));
}

TEST_CASE("the schema version is recorded and a newer one is refused") {
  temp_dir dir;
  { queue::database db(dir.db(), queue::database::open_mode::create); }
  {
    queue::database db(dir.db(), queue::database::open_mode::existing);
    queue::statement st(db, "PRAGMA user_version");
    REQUIRE(st.step());
    CHECK(st.column_int(0) == 4);  // one per migration in schema.cpp
    db.exec("PRAGMA user_version=99");
  }
  CHECK_THROWS_AS(queue::database(dir.db(), queue::database::open_mode::existing), queue::db_error);
}
