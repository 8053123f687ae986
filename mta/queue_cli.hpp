// `tern queue …`: the operator's view of the queue, on the same database as a
// running server.
#pragma once

#include <string>
#include <vector>

#include "mta/config.hpp"

namespace mta {

// `args` are the words after "queue". Returns the process exit code.
int queue_command(const config& cfg, const std::vector<std::string>& args);

}  // namespace mta
