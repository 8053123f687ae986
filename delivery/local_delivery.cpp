#include "delivery/local_delivery.hpp"

#include <cerrno>

#include <fmt/format.h>

#include "mailbox/maildir.hpp"

namespace delivery {

outcome local_delivery::deliver(std::string_view recipient, std::string_view sender, std::string_view data) const {
  auto addr = smtp::parse_mailbox(recipient);
  if (!addr) {
    if (!smtp::iequals(recipient, "postmaster")) return failed(550, "5.1.3", "bad recipient address syntax");
    addr = smtp::address{std::string(recipient), {}};
  }
  const auto ex = dir_.expand(*addr);
  if (ex.error == mailbox::directory::expansion::problem::unknown)
    return failed(550, "5.1.1", fmt::format("<{}>: user unknown ({})", recipient, ex.detail));
  if (ex.error == mailbox::directory::expansion::problem::loop)
    return failed(554, "5.4.6", fmt::format("<{}>: {}", recipient, ex.detail));

  // A missing root is an operator's problem (an unmounted disk, a typo), not
  // something to paper over by creating it: defer until it is there.
  std::error_code ec;
  if (!ex.local.empty() && !std::filesystem::is_directory(root_, ec))
    return deferred(451, "4.3.0", fmt::format("mailbox root {} is missing", root_.string()));

  for (const auto& target : ex.local) {
    const auto at = target.rfind('@');
    const auto dir = mailbox::mailbox_path(root_, target.substr(0, at), target.substr(at + 1));
    if (dir.empty()) return failed(550, "5.1.3", fmt::format("<{}>: unsafe mailbox name", target));
    const auto prefix = fmt::format("Return-Path: <{}>\r\nDelivered-To: {}\r\n", sender, target);
    const auto r = mailbox::deliver_maildir(dir, hostname_, prefix, data);
    if (const auto* err = std::get_if<mailbox::maildir_error>(&r)) {
      // Nothing here is the sender's fault: keep the message and try again.
      if (err->code == EACCES || err->code == EPERM || err->code == EROFS)
        return deferred(451, "4.2.0", err->what);
      if (err->code == ENOSPC || err->code == EDQUOT) return deferred(452, "4.3.0", err->what);
      return deferred(451, "4.3.0", err->what);
    }
  }
  outcome o = ex.local.empty() ? delivered("forwarded") : delivered("delivered to maildir");
  o.forward = ex.remote;
  if (!ex.remote.empty() && !ex.local.empty()) o.reply = smtp::make_reply(250, "2.0.0", "delivered to maildir and forwarded");
  return o;
}

}  // namespace delivery
