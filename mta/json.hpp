// Just enough JSON output for `--json` listings: quoted strings that are
// always valid UTF-8 JSON, whatever octets a client put into an envelope.
#pragma once

#include <string>
#include <string_view>

namespace mta {

std::string json_quote(std::string_view s);

}  // namespace mta
