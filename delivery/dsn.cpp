#include "delivery/dsn.hpp"

#include <fmt/format.h>

#include "smtp/received.hpp"

namespace delivery {

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
  m += fmt::format("To: <{}>\r\n", in.original_sender);
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
  for (const auto& r : in.rcpts) m += fmt::format("<{}>: {}\r\n", r.address, r.diagnostic);
  m += "\r\n";

  m += fmt::format("--{}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n", boundary);
  m += fmt::format("Reporting-MTA: dns; {}\r\n", in.reporting_mta);
  m += fmt::format("X-Tern-Queue-ID: {}\r\n", in.queue_id);
  if (!in.envid.empty()) m += fmt::format("Original-Envelope-Id: {}\r\n", in.envid);
  m += fmt::format("Arrival-Date: {}\r\n", smtp::rfc5322_date(in.arrival));
  for (const auto& r : in.rcpts) {
    m += "\r\n";
    m += fmt::format("Final-Recipient: rfc822; {}\r\n", r.address);
    if (!r.orcpt.empty()) {
      const auto semi = r.orcpt.find(';');
      m += fmt::format("Original-Recipient: {}; {}\r\n", r.orcpt.substr(0, semi), r.orcpt.substr(semi + 1));
    }
    m += fmt::format("Action: {}\r\n", r.action);
    m += fmt::format("Status: {}\r\n", r.status);
    m += fmt::format("Diagnostic-Code: smtp; {}\r\n", r.diagnostic);
    m += fmt::format("Last-Attempt-Date: {}\r\n", smtp::rfc5322_date(in.now));
  }
  m += "\r\n";

  const bool full = in.ret == "FULL" && in.original.size() <= dsn_full_limit;
  if (full) {
    m += fmt::format("--{}\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n", boundary);
    m += in.original;
    if (!in.original.empty() && in.original.substr(in.original.size() - std::min<std::size_t>(2, in.original.size())) != "\r\n")
      m += "\r\n";
  } else {
    m += fmt::format("--{}\r\nContent-Description: Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
    const auto h = header_section(in.original);
    m += h;
    if (h.size() < 2 || h.substr(h.size() - 2) != "\r\n") m += "\r\n";
  }
  m += fmt::format("\r\n--{}--\r\n", boundary);
  return m;
}

}  // namespace delivery
