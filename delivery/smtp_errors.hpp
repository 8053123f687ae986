// The one place that decides what an SMTP attempt means for each recipient
// (Postfix keeps this in smtp_trouble.c): a soft error with another server
// left → try it; soft at the last server → deferred; hard → failed (bounce).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "delivery/outcome.hpp"
#include "delivery/smtp_client.hpp"

namespace delivery {

// One entry per recipient of the attempt: the final word for it, or nullopt
// when the next server should be tried.
std::vector<std::optional<outcome>> classify(const attempt& a, std::size_t nrcpt, const std::string& relay,
                                             bool last_server);

// True when the attempt ended on something the RFCs do not allow there (a
// malformed reply, a 3xx where 2xx was due): worth logging the transcript.
bool protocol_error(const attempt& a);

}  // namespace delivery
