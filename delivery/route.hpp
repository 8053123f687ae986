// Routes in the transport table ("[host]:port", "host:port"). Pure: the
// configuration checks them at start-up and remote delivery follows them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace delivery {

// A route from the transport table: "[host]:port" means exactly that host (no
// MX lookup), "host:port" means host's MX records, as Postfix's relayhost.
struct route {
  std::string host;
  std::uint16_t port = 25;
  bool mx_lookup = true;
};
std::optional<route> parse_route(std::string_view s, std::uint16_t default_port);

}  // namespace delivery
