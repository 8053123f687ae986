// The delivery side of the queue: lease due recipients, record what happened
// to them, and retire messages whose recipients are all final. Each function
// runs inside the caller's transaction (a writer job), except next_due.
// Knows nothing of how delivery is done.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/database.hpp"

namespace queue {

struct due_recipient {
  std::string message_id;
  std::int64_t idx = 0;
  std::string address;
  std::int64_t attempts = 0;
  std::int64_t received_at = 0;
  std::string sender;
  std::string notify;
  std::string orcpt;
  std::string ret;
  std::string envid;
  bool smtputf8 = false;
  bool delay_warned = false;
  std::string body_type;  // "8BITMIME", "7BIT" or ""
};

enum class rcpt_status { delivered, deferred, failed };
std::string_view to_string(rcpt_status s);

struct outcome_record {
  std::string message_id;
  std::int64_t idx = 0;
  std::string address;
  rcpt_status status = rcpt_status::deferred;
  std::string reply;             // "250 2.0.0 ...", or the local reason
  std::string relay;             // "local", "mx.example[192.0.2.1]:25"
  std::int64_t at = 0;           // when the attempt ended
  std::int64_t next_attempt = 0; // deferred only
  bool delay_warned = false;     // a delay notice has been sent for this recipient
};

struct attempt_row {
  std::int64_t idx = 0;
  std::string address;
  std::int64_t at = 0;
  std::string status;
  std::string relay;
  std::string reply;
};

// Which recipients a lease takes: local and remote deliveries have separate
// workers, so that slow remote servers cannot starve local mailboxes.
struct lease_scope {
  enum class kind { all, local, remote } which = kind::all;
  std::string local_domains_json = "[]";  // JSON array of lower-case local domains
};

// Due recipients of messages not on hold, oldest due first; each is leased
// until now + lease_seconds so that it is not handed out twice.
std::vector<due_recipient> lease_due(database& db, std::int64_t now, std::int64_t lease_seconds, std::size_t limit,
                                     const lease_scope& scope = {});
// Clears every lease: at start-up, leases are what a crash left behind.
std::int64_t release_leases(database& db);
// Updates the recipient, appends to the history, and removes the message once
// no recipient is pending. Returns true when the message was removed.
bool record_outcome(database& db, const outcome_record& o);
std::vector<attempt_row> attempts_of(const database& db, const std::string& message_id);
std::int64_t purge_history(database& db, std::int64_t before);

}  // namespace queue
