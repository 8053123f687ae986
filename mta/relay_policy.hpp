// Who may send to whom (DESIGN.md invariant 4, no open relay): a recipient in a
// local domain must exist; any other domain is accepted only from an
// authenticated client or from a configured relay network.
#pragma once

#include <optional>
#include <vector>

#include "mailbox/directory.hpp"
#include "mta/network.hpp"
#include "smtp/address.hpp"
#include "smtp/reply.hpp"

namespace mta {

class relay_policy {
 public:
  relay_policy(const mailbox::directory& dir, std::vector<cidr> networks)
      : dir_(dir), networks_(std::move(networks)) {}

  bool may_relay(const ip_address& client, bool authenticated) const;
  // nullopt accepts the recipient; otherwise the reply that refuses it.
  std::optional<smtp::reply> check_rcpt(const ip_address& client, bool authenticated, const smtp::address& rcpt) const;

 private:
  const mailbox::directory& dir_;
  std::vector<cidr> networks_;
};

}  // namespace mta
