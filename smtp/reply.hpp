// An SMTP reply as a value: code, enhanced status code (RFC 3463) and text.
// Used by the server session and, later, by the client to parse replies.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace smtp {

struct reply {
  int code = 0;
  std::string status;              // "2.0.0"; empty where RFC 2034 does not apply (220, 221 greeting-class)
  std::vector<std::string> lines;  // at least one line of text

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }

  // The reply as sent on the wire, each line ending in CRLF.
  std::string wire() const;
  // One line for logs: "550 5.1.1 text".
  std::string summary() const;
};

reply make_reply(int code, std::string_view status, std::string_view text);

}  // namespace smtp
