// Mailbox addresses and reverse/forward paths (RFC 5321 §4.1.2, RFC 6531 for UTF-8).
// Pure parsing: no DNS, no knowledge of which domains are local.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace smtp {

struct address {
  std::string local;   // as sent, a quoted local part keeps its quotes
  std::string domain;  // as sent; compare with iequals / lower()

  bool null() const { return local.empty() && domain.empty(); }
  bool ascii() const;
  // "local@domain", "" for the null path, "local" for a bare <postmaster>.
  std::string str() const;
};

enum class path_error {
  syntax,     // not a well-formed path
  too_long,   // RFC 5321 §4.5.3.1: local part 64, domain 255, path 256 octets
  bad_utf8,   // malformed UTF-8 in an internationalised address
};

struct path_result {
  std::optional<address> addr;
  path_error error = path_error::syntax;
  std::size_t consumed = 0;  // octets of the input taken by "<...>"
};

// Parses "<path>" at the start of `in`. `allow_null` admits "<>" (reverse path);
// `allow_postmaster` admits "<postmaster>" without a domain (RFC 5321 §4.1.1.3).
// A source route ("<@a,@b:user@c>") is accepted and dropped (RFC 5321 §4.1.2).
path_result parse_path(std::string_view in, bool allow_null, bool allow_postmaster);

// Parses a bare "local@domain" mailbox (no angle brackets), as in configuration files.
std::optional<address> parse_mailbox(std::string_view in);

bool is_valid_domain(std::string_view d);
bool is_valid_utf8(std::string_view s);
std::string lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

}  // namespace smtp
