#include "queue/schedule.hpp"

namespace queue {

std::string_view to_string(rcpt_status s) {
  switch (s) {
    case rcpt_status::delivered: return "delivered";
    case rcpt_status::deferred: return "deferred";
    case rcpt_status::failed: return "failed";
  }
  return "?";
}

std::vector<due_recipient> lease_due(database& db, std::int64_t now, std::int64_t lease_seconds, std::size_t limit,
                                     const lease_scope& scope) {
  // ?3: 0 all, 1 local only, 2 remote only. A bare "postmaster" (no '@') is local.
  auto& sel = db.cached(
      "SELECT r.message_id, r.idx, r.address, r.attempts, m.received_at, m.sender, r.dsn_notify, r.dsn_orcpt, "
      "m.dsn_ret, m.dsn_envid, m.smtputf8, r.delay_warned, m.body_type FROM recipients r JOIN messages m ON m.id = r.message_id "
      "WHERE r.status IN ('queued', 'deferred') AND r.next_attempt <= ?1 AND r.lease_until <= ?1 AND m.held = 0 "
      "AND (?3 = 0 OR (?3 = 1) = (instr(r.address, '@') = 0 OR lower(substr(r.address, instr(r.address, '@') + 1)) "
      "IN (SELECT value FROM json_each(?4)))) "
      "ORDER BY r.next_attempt, r.message_id, r.idx LIMIT ?2");
  sel.bind(1, now).bind(2, static_cast<std::int64_t>(limit));
  sel.bind(3, static_cast<std::int64_t>(scope.which)).bind(4, scope.local_domains_json);
  std::vector<due_recipient> out;
  while (sel.step())
    out.push_back({sel.column_text(0), sel.column_int(1), sel.column_text(2), sel.column_int(3), sel.column_int(4),
                   sel.column_text(5), sel.column_text(6), sel.column_text(7), sel.column_text(8),
                   sel.column_text(9), sel.column_int(10) != 0, sel.column_int(11) != 0, sel.column_text(12)});
  sel.reset();
  auto& upd = db.cached("UPDATE recipients SET lease_until = ?3 WHERE message_id = ?1 AND idx = ?2");
  for (const auto& r : out) {
    upd.bind(1, r.message_id).bind(2, r.idx).bind(3, now + lease_seconds);
    upd.step();
    upd.reset();
  }
  return out;
}

std::int64_t release_leases(database& db) {
  statement st(db, "UPDATE recipients SET lease_until = 0 WHERE lease_until != 0");
  st.step();
  return st.changes();
}

bool record_outcome(database& db, const outcome_record& o) {
  auto& upd = db.cached(
      "UPDATE recipients SET status = ?3, attempts = attempts + 1, last_attempt = ?4, last_reply = ?5, "
      "next_attempt = ?6, lease_until = 0, delay_warned = ?7 WHERE message_id = ?1 AND idx = ?2");
  upd.bind(1, o.message_id).bind(2, o.idx).bind(3, to_string(o.status)).bind(4, o.at).bind(5, o.reply);
  upd.bind(6, o.status == rcpt_status::deferred ? o.next_attempt : o.at).bind(7, std::int64_t{o.delay_warned});
  upd.step();
  upd.reset();
  auto& hist = db.cached(
      "INSERT INTO attempts(message_id, rcpt_idx, address, at, status, relay, reply) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  hist.bind(1, o.message_id).bind(2, o.idx).bind(3, o.address).bind(4, o.at).bind(5, to_string(o.status));
  hist.bind(6, o.relay).bind(7, o.reply);
  hist.step();
  hist.reset();
  if (o.status == rcpt_status::deferred) return false;
  auto& pending = db.cached(
      "SELECT count(*) FROM recipients WHERE message_id = ?1 AND status IN ('queued', 'deferred')");
  pending.bind(1, o.message_id);
  pending.step();
  const bool done = pending.column_int(0) == 0;
  pending.reset();
  if (!done) return false;
  auto& del_r = db.cached("DELETE FROM recipients WHERE message_id = ?1");
  del_r.bind(1, o.message_id);
  del_r.step();
  del_r.reset();
  auto& del_m = db.cached("DELETE FROM messages WHERE id = ?1");
  del_m.bind(1, o.message_id);
  del_m.step();
  del_m.reset();
  return true;
}

std::vector<attempt_row> attempts_of(const database& db, const std::string& message_id) {
  statement st(db, "SELECT rcpt_idx, address, at, status, relay, reply FROM attempts WHERE message_id = ?1 "
                   "ORDER BY rowid");
  st.bind(1, message_id);
  std::vector<attempt_row> out;
  while (st.step())
    out.push_back({st.column_int(0), st.column_text(1), st.column_int(2), st.column_text(3), st.column_text(4),
                   st.column_text(5)});
  return out;
}

std::int64_t purge_history(database& db, std::int64_t before) {
  statement st(db, "DELETE FROM attempts WHERE at < ?1 AND message_id NOT IN (SELECT id FROM messages)");
  st.bind(1, before);
  st.step();
  return st.changes();
}

}  // namespace queue
