#include "queue/database.hpp"

#include <fmt/format.h>

namespace queue {

database::database(const std::filesystem::path& path, open_mode mode) {
  if (mode == open_mode::existing && !std::filesystem::exists(path))
    throw db_error(SQLITE_CANTOPEN, fmt::format("no queue database at {}", path.string()));
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (mode == open_mode::create ? SQLITE_OPEN_CREATE : 0);
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw db_error(rc, fmt::format("cannot open {}: {}", path.string(), msg));
  }
  sqlite3_extended_result_codes(db_, 0);
  // Another connection (the CLI, a delivery worker) may hold the write lock briefly.
  sqlite3_busy_timeout(db_, 10000);
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec("PRAGMA foreign_keys=ON");
    migrate(*this);
  } catch (...) {
    // The destructor does not run for an object whose constructor threw.
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

database::~database() {
  cache_.clear();  // statements first: a connection with live statements cannot close
  if (db_) sqlite3_close_v2(db_);
}

statement& database::cached(const std::string& sql) {
  auto& slot = cache_[sql];
  if (!slot) slot = std::make_unique<statement>(*this, sql);
  slot->reset();
  return *slot;
}

void database::fail(int rc, std::string_view context) const {
  throw db_error(rc, fmt::format("{}: {}", context, db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
}

void database::exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw db_error(rc, fmt::format("{}: {}", sql, msg));
  }
}

statement::statement(const database& db, std::string_view sql) : db_(db) {
  const int rc = sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                    &st_, nullptr);
  if (rc != SQLITE_OK) db.fail(rc, "prepare");
}

statement::~statement() { sqlite3_finalize(st_); }

statement& statement::bind(int i, std::string_view text) {
  const int rc = sqlite3_bind_text(st_, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
  return *this;
}

statement& statement::bind(int i, std::int64_t v) {
  const int rc = sqlite3_bind_int64(st_, i, v);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
  return *this;
}

statement& statement::bind_blob(int i, std::string_view bytes) {
  // A zero-length blob must still be a blob, not NULL.
  const int rc = bytes.empty() ? sqlite3_bind_zeroblob(st_, i, 0)
                               : sqlite3_bind_blob64(st_, i, bytes.data(), bytes.size(), SQLITE_STATIC);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
  return *this;
}

bool statement::step() {
  const int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.fail(rc, "step");
}

void statement::reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

int statement::changes() const { return sqlite3_changes(db_.handle()); }

std::int64_t statement::column_int(int i) const { return sqlite3_column_int64(st_, i); }

std::string statement::column_text(int i) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, i));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, i))) : std::string();
}

std::string statement::column_blob(int i) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, i));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, i))) : std::string();
}

transaction_guard::transaction_guard(database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

transaction_guard::~transaction_guard() {
  if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void transaction_guard::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace queue
