// JSON output for `--json` listings and the HTTP API: quoted strings that
// are always valid UTF-8 JSON, whatever octets a client put into an envelope.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "queue/admin.hpp"
#include "queue/schedule.hpp"

namespace mta {

std::string json_quote(std::string_view s);

// The queue's objects as JSON, shared by `tern queue --json` and the HTTP API.
std::string recipient_json(const queue::recipient_row& r);
std::string message_json(const queue::message_row& m);
std::string attempts_json(const std::vector<queue::attempt_row>& attempts);
std::string stats_json(const queue::queue_stats& s);

}  // namespace mta
