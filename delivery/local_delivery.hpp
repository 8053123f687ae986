// Delivery to local mailboxes: resolve the recipient through the directory
// (aliases, sub-addressing, catch-all), then write each mailbox's Maildir.
// Blocking file I/O with fsync; the scheduler runs it on worker threads.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "delivery/outcome.hpp"
#include "mailbox/directory.hpp"

namespace delivery {

class local_delivery {
 public:
  local_delivery(const mailbox::directory& dir, std::filesystem::path mailbox_root, std::string hostname)
      : dir_(dir), root_(std::move(mailbox_root)), hostname_(std::move(hostname)) {}

  // `sender` is the envelope sender ("" for the null path); `data` the stored message.
  outcome deliver(std::string_view recipient, std::string_view sender, std::string_view data) const;

 private:
  const mailbox::directory& dir_;
  std::filesystem::path root_;
  std::string hostname_;
};

}  // namespace delivery
