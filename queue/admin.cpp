#include "queue/admin.hpp"

namespace queue {
namespace {

constexpr const char* message_columns =
    "SELECT id, received_at, sender, client_ip, helo, size, body_type, smtputf8, dsn_ret, dsn_envid, held "
    "FROM messages";

message_row read_message(const statement& st) {
  message_row m;
  m.id = st.column_text(0);
  m.received_at = st.column_int(1);
  m.sender = st.column_text(2);
  m.client_ip = st.column_text(3);
  m.helo = st.column_text(4);
  m.size = st.column_int(5);
  m.body_type = st.column_text(6);
  m.smtputf8 = st.column_int(7) != 0;
  m.ret = st.column_text(8);
  m.envid = st.column_text(9);
  m.held = st.column_int(10) != 0;
  return m;
}

void load_recipients(const database& db, message_row& m) {
  statement st(db,
               "SELECT address, status, attempts, next_attempt, last_attempt, last_reply, dsn_notify, dsn_orcpt "
               "FROM recipients WHERE message_id = ?1 ORDER BY idx");
  st.bind(1, m.id);
  while (st.step())
    m.rcpts.push_back({st.column_text(0), st.column_text(1), st.column_int(2), st.column_int(3), st.column_int(4),
                       st.column_text(5), st.column_text(6), st.column_text(7)});
}

// A consistent snapshot across the two tables while the server keeps writing.
struct read_snapshot {
  explicit read_snapshot(const database& db) : db_(db) { sqlite3_exec(db.handle(), "BEGIN", nullptr, nullptr, nullptr); }
  ~read_snapshot() { sqlite3_exec(db_.handle(), "COMMIT", nullptr, nullptr, nullptr); }
  const database& db_;
};

}  // namespace

std::vector<message_row> list_messages(const database& db, const list_filter& f) {
  read_snapshot snap(db);
  std::vector<message_row> out;
  // Empty filters match everything; one statement serves the CLI and the API.
  statement st(db, std::string(message_columns) +
                       " WHERE id > ?2"
                       " AND (?3 = '' OR (?3 = 'held' AND held = 1) OR EXISTS (SELECT 1 FROM recipients r"
                       "      WHERE r.message_id = id AND r.status = ?3))"
                       " AND (?4 = '' OR instr(lower(sender), lower(?4)) > 0)"
                       " AND (?5 = '' OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = id"
                       "      AND instr(lower(r.address), lower(?5)) > 0))"
                       " ORDER BY id LIMIT ?1");
  st.bind(1, static_cast<std::int64_t>(std::min<std::size_t>(f.limit, INT64_MAX)));
  st.bind(2, f.after).bind(3, f.status).bind(4, f.sender).bind(5, f.recipient);
  while (st.step()) out.push_back(read_message(st));
  for (auto& m : out) load_recipients(db, m);
  return out;
}

std::optional<message_row> find_message(const database& db, const std::string& id) {
  read_snapshot snap(db);
  statement st(db, std::string(message_columns) + " WHERE id = ?1");
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  auto m = read_message(st);
  load_recipients(db, m);
  return m;
}

std::optional<std::string> message_data(const database& db, const std::string& id) {
  statement st(db, "SELECT data FROM messages WHERE id = ?1");
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  return st.column_blob(0);
}

bool delete_message(database& db, const std::string& id) {
  transaction_guard tx(db);
  statement r(db, "DELETE FROM recipients WHERE message_id = ?1");
  r.bind(1, id);
  r.step();
  statement m(db, "DELETE FROM messages WHERE id = ?1");
  m.bind(1, id);
  m.step();
  const bool found = m.changes() > 0;
  tx.commit();
  return found;
}

bool set_held(database& db, const std::string& id, bool held) {
  statement st(db, "UPDATE messages SET held = ?2 WHERE id = ?1");
  st.bind(1, id).bind(2, std::int64_t{held});
  st.step();
  return st.changes() > 0;
}

std::optional<std::int64_t> retry_now(database& db, const std::optional<std::string>& id, std::int64_t now) {
  transaction_guard tx(db);
  if (id) {
    statement exists(db, "SELECT 1 FROM messages WHERE id = ?1");
    exists.bind(1, *id);
    if (!exists.step()) return std::nullopt;
  }
  statement st(db, id ? "UPDATE recipients SET next_attempt = ?1 WHERE status IN ('queued', 'deferred') "
                        "AND message_id = ?2"
                      : "UPDATE recipients SET next_attempt = ?1 WHERE status IN ('queued', 'deferred')");
  st.bind(1, now);
  if (id) st.bind(2, *id);
  st.step();
  const std::int64_t n = st.changes();
  tx.commit();
  return n;
}

queue_stats stats(const database& db) {
  read_snapshot snap(db);
  queue_stats s;
  statement m(db, "SELECT count(*), coalesce(sum(held), 0), coalesce(sum(size), 0), coalesce(min(received_at), 0) "
                  "FROM messages");
  m.step();
  s.messages = m.column_int(0);
  s.held = m.column_int(1);
  s.bytes = m.column_int(2);
  s.oldest_received_at = m.column_int(3);
  statement r(db, "SELECT status, count(*) FROM recipients GROUP BY status ORDER BY status");
  while (r.step()) s.recipients_by_status[r.column_text(0)] = r.column_int(1);
  statement d(db,
              "SELECT lower(substr(address, instr(address, '@') + 1)), count(*) FROM recipients "
              "WHERE status = 'deferred' GROUP BY 1 ORDER BY 2 DESC LIMIT 100");
  while (d.step()) s.deferred_by_domain[d.column_text(0)] = d.column_int(1);
  return s;
}

}  // namespace queue
