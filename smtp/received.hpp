// The Received: trace header (RFC 5321 §4.4) that the server prepends to each
// message. Client-supplied text (HELO name) is reduced to safe characters so
// that nothing from the client can break the header's structure.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

namespace smtp {

struct trace_info {
  std::string helo;       // as the client sent it; sanitised here
  std::string client_ip;  // "127.0.0.1" or "::1"
  std::string by_host;    // our hostname
  std::string protocol;   // "ESMTP", "SMTP", "UTF8SMTP" (RFC 3848, RFC 6531 §3.7.3)
  std::string id;         // queue ID
  std::string for_rcpt;   // set only when there is exactly one recipient
  std::string tls;        // "TLSv1.3 TLS_AES_256_GCM_SHA384" when the session was encrypted
  std::time_t when = 0;
};

std::string received_header(const trace_info& t);

// "Sun, 29 Nov 2026 20:11:20 +0000" (RFC 5322 §3.3), always in UTC.
std::string rfc5322_date(std::time_t t);

// Keeps letters, digits and ".-_:[]"; anything else becomes '_'. At most 255 octets.
std::string sanitize_token(std::string_view s);

}  // namespace smtp
