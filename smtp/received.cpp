#include "smtp/received.hpp"

#include <fmt/format.h>

namespace smtp {

std::string sanitize_token(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 255)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    out += ok ? c : '_';
  }
  return out;
}

std::string rfc5322_date(std::time_t t) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {} {} {} {:02}:{:02}:{:02} +0000", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string received_header(const trace_info& t) {
  const bool v6 = t.client_ip.find(':') != std::string::npos;
  const std::string literal = v6 ? "[IPv6:" + t.client_ip + "]" : "[" + t.client_ip + "]";
  std::string h = fmt::format("Received: from {} ({})\r\n", sanitize_token(t.helo), literal);
  if (!t.tls.empty()) {
    const auto sp = t.tls.find(' ');
    h += fmt::format("\t(using {} with cipher {})\r\n", t.tls.substr(0, sp), sp == std::string::npos ? "" : t.tls.substr(sp + 1));
  }
  h += fmt::format("\tby {} (Tern) with {} id {}", t.by_host, t.protocol, t.id);
  if (!t.for_rcpt.empty()) h += fmt::format("\r\n\tfor <{}>", t.for_rcpt);
  h += fmt::format("; {}\r\n", rfc5322_date(t.when));
  return h;
}

}  // namespace smtp
