#include "mta/relay_policy.hpp"

#include <algorithm>

namespace mta {

bool relay_policy::may_relay(const ip_address& client, bool authenticated) const {
  return authenticated ||
         std::any_of(networks_.begin(), networks_.end(), [&](const cidr& n) { return n.contains(client); });
}

std::optional<smtp::reply> relay_policy::check_rcpt(const ip_address& client, bool authenticated,
                                                    const smtp::address& rcpt) const {
  if (rcpt.domain.empty() || dir_.is_local_domain(rcpt.domain)) {
    if (dir_.exists(rcpt)) return std::nullopt;
    // Refused now (RFC 5321 §3.3), so no bounce ever goes to a forged sender.
    return smtp::make_reply(550, "5.1.1", "<" + rcpt.str() + ">: Recipient address rejected: User unknown");
  }
  if (may_relay(client, authenticated)) return std::nullopt;
  return smtp::make_reply(554, "5.7.1", "<" + rcpt.str() + ">: Relay access denied");
}

}  // namespace mta
