// The read and management queries behind `tern queue …` (and, later, the HTTP
// API): one implementation, whatever the front end. They run on their own
// connection and are safe while the server writes (WAL readers).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "queue/database.hpp"

namespace queue {

struct recipient_row {
  std::string address;
  std::string status;  // queued | deferred | delivered | failed
  std::int64_t attempts = 0;
  std::int64_t next_attempt = 0;
  std::int64_t last_attempt = 0;
  std::string last_reply;
  std::string notify;
  std::string orcpt;
};

struct message_row {
  std::string id;
  std::int64_t received_at = 0;
  std::string sender;
  std::string client_ip;
  std::string helo;
  std::int64_t size = 0;
  std::string body_type;
  bool smtputf8 = false;
  std::string ret;
  std::string envid;
  bool held = false;
  std::vector<recipient_row> rcpts;
};

struct queue_stats {
  std::int64_t messages = 0;
  std::int64_t held = 0;
  std::int64_t bytes = 0;
  std::int64_t oldest_received_at = 0;  // 0 when empty
  std::map<std::string, std::int64_t> recipients_by_status;
  std::map<std::string, std::int64_t> deferred_by_domain;  // where mail is stuck
};

struct list_filter {
  std::string status;     // a recipient status, or "held"; empty: all
  std::string sender;     // substring of the sender, case-insensitive
  std::string recipient;  // substring of any recipient
  std::size_t limit = SIZE_MAX;
  std::string after;      // paging cursor: IDs after this one
};

// Messages ordered by ID (that is, by arrival), with their recipients.
std::vector<message_row> list_messages(const database& db, const list_filter& filter = {});
std::optional<message_row> find_message(const database& db, const std::string& id);
std::optional<std::string> message_data(const database& db, const std::string& id);

// Each returns false when no message has that ID.
bool delete_message(database& db, const std::string& id);
bool set_held(database& db, const std::string& id, bool held);
// Makes the pending recipients of one message (or of all, with nullopt) due
// now; returns how many recipients that touched, or nullopt for an unknown ID.
std::optional<std::int64_t> retry_now(database& db, const std::optional<std::string>& id, std::int64_t now);

queue_stats stats(const database& db);

}  // namespace queue
