// Delivery status notifications (RFC 3464): the bounce a sender gets for a
// recipient that failed, and the report NOTIFY=SUCCESS asks for. Pure text
// building, so the result can be parsed back and checked in a unit test.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace delivery {

struct dsn_recipient {
  std::string address;
  std::string orcpt;       // "rfc822;..." as the client gave it, or empty
  std::string action;      // "failed", "delivered", "delayed"
  std::string status;      // "5.1.1"
  std::string diagnostic;  // the reply or reason, e.g. "550 5.1.1 ... user unknown"
};

struct dsn_input {
  std::string reporting_mta;  // our hostname
  std::string queue_id;       // of the original message
  std::string envid;          // RFC 3461 ENVID, xtext as received
  std::string ret;            // "FULL" returns the whole message (within a limit), else headers only
  std::time_t arrival = 0;
  std::time_t now = 0;
  std::string original_sender;
  std::vector<dsn_recipient> rcpts;
  std::string_view original;  // the stored message
};

// Whole messages larger than this come back as headers only (Postfix's bounce_size_limit).
inline constexpr std::size_t dsn_full_limit = 50000;

// A complete message (headers and multipart/report body, CRLF line ends).
std::string render_dsn(const dsn_input& in);

// The header section of a message, up to and including the empty line.
std::string_view header_section(std::string_view message);

}  // namespace delivery
