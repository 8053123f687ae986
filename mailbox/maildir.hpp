// Maildir delivery (https://cr.yp.to/proto/maildir.html, as Dovecot reads it):
// write to tmp/ under a unique name, fsync, rename into new/, fsync the
// directory. Only after that may the recipient be marked delivered (DESIGN.md
// invariant 2). Messages are stored with the CRLF line ends they arrived with.
#pragma once

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <string>
#include <string_view>
#include <variant>

namespace mailbox {

struct maildir_error {
  int code = 0;  // errno
  std::string what;
};

// "<time>.M<usec>P<pid>Q<n>.<host>,S=<size>"; '/' and ':' in the host are
// escaped as the Maildir convention asks.
std::string maildir_name(std::time_t t, long usec, long pid, std::uint64_t n, std::string_view hostname,
                         std::size_t size);

// The mailbox directory of a local address: <root>/<domain>/<user>. Empty when
// the name could escape the root ("..", '/', a leading dot) or is empty.
std::filesystem::path mailbox_path(const std::filesystem::path& root, std::string_view user, std::string_view domain);

// Creates the Maildir (tmp, new, cur) if needed and delivers `prefix` + `data`
// into new/. Returns the final path.
std::variant<std::filesystem::path, maildir_error> deliver_maildir(const std::filesystem::path& dir,
                                                                   std::string_view hostname, std::string_view prefix,
                                                                   std::string_view data);

}  // namespace mailbox
