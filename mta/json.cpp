#include "mta/json.hpp"

#include <fmt/format.h>

#include "smtp/address.hpp"

namespace mta {

std::string json_quote(std::string_view s) {
  // Octets that are not valid UTF-8 are shown as the Latin-1 characters they would be.
  const bool utf8 = smtp::is_valid_utf8(s);
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) out += fmt::format("\\u{:04x}", c);
        else out += ch;
    }
  }
  out += '"';
  return out;
}

std::string recipient_json(const queue::recipient_row& r) {
  return fmt::format(
      R"({{"address":{},"status":{},"attempts":{},"next_attempt":{},"last_attempt":{},"last_reply":{},"notify":{},"orcpt":{}}})",
      json_quote(r.address), json_quote(r.status), r.attempts, r.next_attempt, r.last_attempt, json_quote(r.last_reply),
      json_quote(r.notify), json_quote(r.orcpt));
}

std::string message_json(const queue::message_row& m) {
  std::string rcpts;
  for (const auto& r : m.rcpts) rcpts += (rcpts.empty() ? "" : ",") + recipient_json(r);
  return fmt::format(
      R"({{"id":{},"received_at":{},"sender":{},"client_ip":{},"helo":{},"size":{},"body_type":{},"smtputf8":{},"ret":{},"envid":{},"held":{},"recipients":[{}]}})",
      json_quote(m.id), m.received_at, json_quote(m.sender), json_quote(m.client_ip), json_quote(m.helo), m.size,
      json_quote(m.body_type), m.smtputf8, json_quote(m.ret), json_quote(m.envid), m.held, rcpts);
}

std::string attempts_json(const std::vector<queue::attempt_row>& attempts) {
  std::string out;
  for (const auto& a : attempts)
    out += fmt::format(R"({}{{"address":{},"at":{},"status":{},"relay":{},"reply":{}}})", out.empty() ? "" : ",",
                       json_quote(a.address), a.at, json_quote(a.status), json_quote(a.relay), json_quote(a.reply));
  return "[" + out + "]";
}

std::string stats_json(const queue::queue_stats& s) {
  std::string by, domains;
  for (const auto& [k, v] : s.recipients_by_status) by += fmt::format("{}{}:{}", by.empty() ? "" : ",", json_quote(k), v);
  for (const auto& [k, v] : s.deferred_by_domain)
    domains += fmt::format("{}{}:{}", domains.empty() ? "" : ",", json_quote(k), v);
  return fmt::format(R"({{"messages":{},"held":{},"bytes":{},"oldest_received_at":{},"recipients":{{{}}},"deferred_by_domain":{{{}}}}})",
                     s.messages, s.held, s.bytes, s.oldest_received_at, by, domains);
}

}  // namespace mta
