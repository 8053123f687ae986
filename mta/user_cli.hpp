// `tern user add|passwd|del|list`: the users file, edited in place (comments
// and order kept, written to a temporary file and renamed over the old one).
#pragma once

#include <string>
#include <vector>

#include "mta/config.hpp"

namespace mta {

int user_command(const config& cfg, const std::vector<std::string>& args);

}  // namespace mta
