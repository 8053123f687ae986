// `tern serve`: listeners, the io_context threads, and graceful shutdown.
#pragma once

#include "mta/config.hpp"
#include "mailbox/directory.hpp"
#include "mta/relay_policy.hpp"
#include "mta/tls.hpp"
#include "queue/queue_id.hpp"
#include "queue/writer.hpp"

namespace delivery {
class scheduler;
}

namespace mta {

// Serves until SIGINT or SIGTERM, then stops accepting, tells every session
// to finish (421), waits a bounded time and returns. Returns an exit code.
struct server_deps {
  const config& cfg;
  const relay_policy& policy;
  queue::writer& writer;
  queue::id_generator& ids;
  tls_config& tls;
  mailbox::directory& dir;  // its users are re-read from the users file (SIGHUP, or when it changes)
  const delivery::scheduler* scheduler;  // for /metrics; null when delivery is off
};
int run_server(const server_deps& deps);

}  // namespace mta
