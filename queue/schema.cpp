// The queue schema and its migrations. PRAGMA user_version holds the number of
// migrations applied; each runs in its own transaction, so a crash mid-way
// leaves the database at a whole version. Append new migrations, never edit one.
#include <array>

#include <fmt/format.h>

#include "queue/database.hpp"

namespace queue {
namespace {

// One row per message (stored once), one per recipient (scheduled on its own),
// as OpenSMTPD separates the message from its envelopes.
constexpr std::array migrations{
    R"sql(
CREATE TABLE messages (
  id          TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL,          -- unix seconds
  sender      TEXT NOT NULL,             -- '' for the null reverse path
  client_ip   TEXT NOT NULL,
  helo        TEXT NOT NULL,
  size        INTEGER NOT NULL,          -- octets of data
  body_type   TEXT NOT NULL DEFAULT '',  -- MAIL BODY=, '' when not given
  smtputf8    INTEGER NOT NULL DEFAULT 0,
  dsn_ret     TEXT NOT NULL DEFAULT '',
  dsn_envid   TEXT NOT NULL DEFAULT '',
  held        INTEGER NOT NULL DEFAULT 0,
  data        BLOB NOT NULL              -- last, so listing never reads its overflow pages
);
CREATE TABLE recipients (
  message_id   TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  idx          INTEGER NOT NULL,
  address      TEXT NOT NULL,
  status       TEXT NOT NULL DEFAULT 'queued',  -- queued | deferred | delivered | failed
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL,
  last_attempt INTEGER NOT NULL DEFAULT 0,
  last_reply   TEXT NOT NULL DEFAULT '',
  dsn_notify   TEXT NOT NULL DEFAULT '',
  dsn_orcpt    TEXT NOT NULL DEFAULT '',
  lease_until  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (message_id, idx)
);
CREATE INDEX recipients_due ON recipients(status, next_attempt);
)sql",
    // Delivery history: one row per attempt. It outlives the message (which is
    // removed once every recipient is final) so that `tern queue show` can
    // still tell what happened; purged after the history retention.
    R"sql(
CREATE TABLE attempts (
  message_id TEXT NOT NULL,
  rcpt_idx   INTEGER NOT NULL,
  address    TEXT NOT NULL,
  at         INTEGER NOT NULL,
  status     TEXT NOT NULL,             -- delivered | deferred | failed
  relay      TEXT NOT NULL DEFAULT '',
  reply      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX attempts_message ON attempts(message_id);
CREATE INDEX attempts_at ON attempts(at);
)sql",
    // A delay notice (RFC 3461 NOTIFY=DELAY) goes out once per recipient.
    R"sql(
ALTER TABLE recipients ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0;
)sql",
    // Leasing walks pending recipients in due order; an index in that order
    // over pending rows only spares a sort of the whole backlog per lease.
    R"sql(
DROP INDEX recipients_due;
CREATE INDEX recipients_pending ON recipients(next_attempt, message_id, idx)
  WHERE status IN ('queued', 'deferred');
)sql",
};

int user_version(database& db) {
  statement st(db, "PRAGMA user_version");
  st.step();
  return static_cast<int>(st.column_int(0));
}

}  // namespace

void migrate(database& db) {
  const int have = user_version(db);
  if (have > static_cast<int>(migrations.size()))
    throw db_error(SQLITE_ERROR, fmt::format("queue schema version {} is newer than this tern ({})", have,
                                             migrations.size()));
  for (int v = have; v < static_cast<int>(migrations.size()); ++v) {
    transaction_guard tx(db);
    // Another process may have migrated between our check and our lock.
    if (user_version(db) > v) continue;
    db.exec(migrations[static_cast<std::size_t>(v)]);
    db.exec(fmt::format("PRAGMA user_version={}", v + 1).c_str());
    tx.commit();
  }
}

}  // namespace queue
