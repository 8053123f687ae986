// What one delivery attempt of one recipient came to: a closed set (delivered,
// deferred, failed), with the reply that explains it. The scheduler turns it
// into a queue update, a log line and, for failures, a bounce.
#pragma once

#include <string>
#include <vector>

#include "queue/schedule.hpp"
#include "smtp/reply.hpp"

namespace delivery {

struct outcome {
  queue::rcpt_status status = queue::rcpt_status::deferred;
  smtp::reply reply;                  // the remote's reply, or one that describes the local result
  std::string relay = "local";        // "local", or "host[ip]:port" for remote delivery
  std::vector<std::string> forward;   // delivered here by re-sending to these addresses (aliases)
  // Relayed to a server that took NOTIFY/ORCPT (RFC 3461 §5.2.1): any success
  // report is now its job, not ours.
  bool dsn_passed_on = false;
};

inline outcome delivered(std::string text, std::string status = "2.0.0") {
  return {queue::rcpt_status::delivered, smtp::make_reply(250, status, text), "local", {}, false};
}
inline outcome deferred(int code, std::string status, std::string text) {
  return {queue::rcpt_status::deferred, smtp::make_reply(code, status, text), "local", {}, false};
}
inline outcome failed(int code, std::string status, std::string text) {
  return {queue::rcpt_status::failed, smtp::make_reply(code, status, text), "local", {}, false};
}

}  // namespace delivery
