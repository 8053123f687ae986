// What every connection of a running server shares. Plain data: the Asio
// parts live in server.cpp and smtp_connection.cpp only, to keep compile
// times down.
#pragma once

#include <atomic>

#include "mailbox/directory.hpp"
#include "mta/auth_throttle.hpp"
#include "mta/config.hpp"
#include "mta/connection_table.hpp"
#include "mta/metrics.hpp"
#include "mta/relay_policy.hpp"
#include "mta/tls.hpp"
#include "queue/queue_id.hpp"
#include "queue/writer.hpp"
#include "smtp/session.hpp"

namespace mta {

// The three listener roles (RFC 5321 MX, RFC 6409 submission, RFC 8314
// submission over implicit TLS).
enum class role { mx, submission, submissions };

struct server_context {
  const config& cfg;
  const relay_policy& policy;
  queue::writer& writer;
  queue::id_generator& ids;  // shared with delivery: one source of IDs per process
  tls_config& tls;
  const mailbox::directory& dir;  // users and their password hashes
  auth_throttle throttle;
  connection_table connections;
  server_counters counters;
  std::atomic<bool> stopping{false};

  smtp::session_config session_config(role r) const;
};

}  // namespace mta
