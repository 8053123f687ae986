// A thin RAII layer over one SQLite connection and its prepared statements.
// Every connection gets the same durability settings (WAL, synchronous=FULL):
// the 250 to DATA depends on them (DESIGN.md invariant 1).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace queue {

// Thrown for SQLite failures; `code` is the primary SQLite result code.
struct db_error : std::runtime_error {
  db_error(int c, const std::string& what) : std::runtime_error(what), code(c) {}
  int code;
  bool disk_full() const { return code == SQLITE_FULL; }
};

class database {
 public:
  enum class open_mode { create, existing };
  // Opens (and for `create`, creates) the queue and brings its schema up to date.
  database(const std::filesystem::path& path, open_mode mode);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;
  database(database&&) = delete;

  sqlite3* handle() const { return db_; }
  void exec(const char* sql);
  // A prepared statement kept for the life of the connection, reset and
  // unbound; for statements run often (inserts, leases).
  class statement& cached(const std::string& sql);
  [[noreturn]] void fail(int rc, std::string_view context) const;

 private:
  sqlite3* db_ = nullptr;
  std::map<std::string, std::unique_ptr<class statement>> cache_;
};

class statement {
 public:
  statement(const database& db, std::string_view sql);
  ~statement();
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int i, std::string_view text);
  statement& bind(int i, std::int64_t v);
  statement& bind_blob(int i, std::string_view bytes);
  bool step();  // true while a row is available
  void reset();
  int changes() const;

  std::int64_t column_int(int i) const;
  bool column_null(int i) const { return sqlite3_column_type(st_, i) == SQLITE_NULL; }
  std::string column_text(int i) const;
  std::string column_blob(int i) const;

 private:
  const database& db_;
  sqlite3_stmt* st_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back if destroyed before commit().
class transaction_guard {
 public:
  explicit transaction_guard(database& db);
  ~transaction_guard();
  void commit();

 private:
  database& db_;
  bool done_ = false;
};

void migrate(database& db);  // schema.cpp

}  // namespace queue
