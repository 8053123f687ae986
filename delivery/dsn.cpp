#include "delivery/dsn.hpp"

#include <fmt/format.h>

#include "smtp/received.hpp"

namespace delivery {
namespace {

// A value placed in a header field: control characters (CR, LF above all)
// become spaces, so that no value can end the field or start another one.
std::string field(std::string_view v) {
  std::string out(v);
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return out;
}

// Quoted text with every line end made CRLF: a message that came by BDAT may
// hold bare LFs, and a generated report must not.
std::string crlf(std::string_view v) {
  std::string out;
  out.reserve(v.size() + 16);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\r' || v[i] == '\n') {
      out += "\r\n";
      if (v[i] == '\r' && i + 1 < v.size() && v[i + 1] == '\n') ++i;
    } else {
      out += v[i];
    }
  }
  return out;
}

}  // namespace

std::string_view header_section(std::string_view message) {
  const auto end = message.find("\r\n\r\n");
  if (end != std::string_view::npos) return message.substr(0, end + 4);
  return message;
}

std::string render_dsn(const dsn_input& in) {
  const std::string action = in.rcpts.empty() ? "failed" : in.rcpts.front().action;
  const bool success = action == "delivered" || action == "relayed";
  const bool delayed = action == "delayed";
  const std::string boundary = fmt::format("{}.{}/{}", in.queue_id, in.now, in.reporting_mta);
  std::string m;
  m += fmt::format("From: MAILER-DAEMON@{} (Mail Delivery System)\r\n", in.reporting_mta);
  m += fmt::format("To: <{}>\r\n", field(in.original_sender));
  m += fmt::format("Subject: {}\r\n", success   ? "Successful Mail Delivery Report"
                                     : delayed ? "Delayed Mail (still being retried)"
                                               : "Undelivered Mail Returned to Sender");
  m += fmt::format("Date: {}\r\n", smtp::rfc5322_date(in.now));
  m += fmt::format("Message-ID: <{}.{}.dsn@{}>\r\n", in.queue_id, in.now, in.reporting_mta);
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834: never answer this automatically
  m += "MIME-Version: 1.0\r\n";
  m += fmt::format("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{}\"\r\n", boundary);
  m += "\r\nThis is a MIME-encapsulated message.\r\n\r\n";

  m += fmt::format("--{}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary);
  m += fmt::format("This is the mail system at host {}.\r\n\r\n", in.reporting_mta);
  if (success)
    m += "Your message was successfully delivered to the destination(s) listed below.\r\n\r\n";
  else if (delayed)
    m += "Your message could not be delivered yet. It is still in the queue\r\nand will be tried again; you do not need to resend it.\r\n\r\n";
  else
    m += "I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n\r\n";
  for (const auto& r : in.rcpts) m += fmt::format("<{}>: {}\r\n", field(r.address), field(r.diagnostic));
  m += "\r\n";

  m += fmt::format("--{}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n", boundary);
  m += fmt::format("Reporting-MTA: dns; {}\r\n", in.reporting_mta);
  m += fmt::format("X-Tern-Queue-ID: {}\r\n", in.queue_id);
  if (!in.envid.empty()) m += fmt::format("Original-Envelope-Id: {}\r\n", field(in.envid));
  m += fmt::format("Arrival-Date: {}\r\n", smtp::rfc5322_date(in.arrival));
  for (const auto& r : in.rcpts) {
    m += "\r\n";
    m += fmt::format("Final-Recipient: rfc822; {}\r\n", field(r.address));
    if (!r.orcpt.empty()) {
      const auto semi = r.orcpt.find(';');
      const auto type = semi == std::string::npos ? std::string("rfc822") : r.orcpt.substr(0, semi);
      const auto value = semi == std::string::npos ? r.orcpt : r.orcpt.substr(semi + 1);
      m += fmt::format("Original-Recipient: {}; {}\r\n", field(type), field(value));
    }
    m += fmt::format("Action: {}\r\n", field(r.action));
    m += fmt::format("Status: {}\r\n", field(r.status));
    m += fmt::format("Diagnostic-Code: smtp; {}\r\n", field(r.diagnostic));
    m += fmt::format("Last-Attempt-Date: {}\r\n", smtp::rfc5322_date(in.now));
  }
  m += "\r\n";

  const bool full = in.ret == "FULL" && in.original.size() <= dsn_full_limit;
  if (full) {
    m += fmt::format("--{}\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n", boundary);
    const auto body = crlf(in.original);
    m += body;
    if (body.size() < 2 || body.substr(body.size() - 2) != "\r\n") m += "\r\n";
  } else {
    m += fmt::format("--{}\r\nContent-Description: Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
    const auto h = crlf(header_section(in.original));
    m += h;
    if (h.size() < 2 || h.substr(h.size() - 2) != "\r\n") m += "\r\n";
  }
  m += fmt::format("\r\n--{}--\r\n", boundary);
  return m;
}

}  // namespace delivery
