// SASL pieces for SMTP AUTH (RFC 4954): base64 as RFC 4648 §4 defines it
// (strict: no whitespace, correct padding), and the PLAIN mechanism's
// message (RFC 4616). Pure functions; the session drives the exchange.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace smtp {

std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

struct plain_credentials {
  std::string authzid;
  std::string authcid;
  std::string password;
};
// "authzid NUL authcid NUL password"; nullopt when malformed.
std::optional<plain_credentials> parse_plain(std::string_view decoded);

}  // namespace smtp
