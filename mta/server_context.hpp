// What every connection of a running server shares. Plain data: the Asio
// parts live in server.cpp and smtp_connection.cpp only, to keep compile
// times down.
#pragma once

#include <atomic>

#include "mta/config.hpp"
#include "mta/connection_table.hpp"
#include "mta/relay_policy.hpp"
#include "queue/queue_id.hpp"
#include "queue/writer.hpp"
#include "smtp/session.hpp"

namespace mta {

struct server_context {
  const config& cfg;
  const relay_policy& policy;
  queue::writer& writer;
  smtp::session_config session_cfg;
  queue::id_generator& ids;  // shared with delivery: one source of IDs per process
  connection_table connections;
  std::atomic<bool> stopping{false};
};

}  // namespace mta
