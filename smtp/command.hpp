// SMTP commands as typed values. parse_command() never throws and never
// touches I/O: it turns one command line (without its CRLF) into a command or
// into the reply that explains what is wrong, so it can be fuzzed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "smtp/address.hpp"
#include "smtp/reply.hpp"

namespace smtp {

enum class verb { helo, ehlo, mail, rcpt, data, bdat, rset, noop, vrfy, expn, help, quit, starttls, auth, unknown };
std::string_view to_string(verb v);

enum class body_type { unspecified, seven_bit, eight_bit_mime };
std::string_view to_string(body_type b);

// MAIL FROM parameters: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531),
// RET and ENVID (RFC 3461).
struct mail_params {
  std::optional<std::uint64_t> size;
  body_type body = body_type::unspecified;
  bool smtputf8 = false;
  std::string ret;    // "FULL", "HDRS" or empty
  std::string envid;  // xtext as sent
  bool any() const { return size || body != body_type::unspecified || smtputf8 || !ret.empty() || !envid.empty(); }
};

// RCPT TO parameters: NOTIFY and ORCPT (RFC 3461).
struct rcpt_params {
  std::string notify;  // "NEVER" or a comma list of SUCCESS, FAILURE, DELAY; upper case
  std::string orcpt;   // "rfc822;xtext" as sent
  bool any() const { return !notify.empty() || !orcpt.empty(); }
};

struct command {
  verb v = verb::unknown;
  std::string arg;            // HELO/EHLO domain, VRFY/HELP argument
  address path;               // MAIL/RCPT
  mail_params mail;
  rcpt_params rcpt;
  std::uint64_t chunk_size = 0;  // BDAT (RFC 3030)
  bool last = false;             // BDAT ... LAST
};

using parse_result = std::variant<command, reply>;

// Longest command line accepted, CRLF included (RFC 5321 §4.5.3.1.4).
inline constexpr std::size_t max_command_line = 512;

parse_result parse_command(std::string_view line);

// RFC 3461 §4: xtext is printable ASCII with "+XX" hex escapes for '+', '=' and
// anything outside 33..126.
bool is_valid_xtext(std::string_view s);

}  // namespace smtp
