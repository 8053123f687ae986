// Keeps a running server's users in step with the users file, so that
// `tern user add|passwd|del` takes effect without a restart: on SIGHUP at
// once, otherwise a few seconds after the file changes.
#pragma once

#include <cstdint>
#include <filesystem>

#include "mailbox/directory.hpp"

namespace mta {

class users_reloader {
 public:
  users_reloader(mailbox::directory& dir, std::filesystem::path file);

  // Re-reads the file now. A file with an error is refused whole and the
  // users loaded before stay; either way the mail log says what happened.
  // Returns true if the users were replaced.
  bool reload();

  // Called every few seconds. Re-reads the file once it differs from what
  // was loaded and has not changed since the previous call, so that an
  // editor writing it in place is not caught halfway. Returns true if the
  // users were replaced.
  bool poll();

 private:
  struct stamp {
    bool exists = false;
    std::filesystem::file_time_type mtime{};
    std::uintmax_t size = 0;
    std::uintmax_t inode = 0;  // `tern user` renames a new file into place
    bool operator==(const stamp&) const = default;
  };
  stamp current() const;

  mailbox::directory& dir_;
  std::filesystem::path file_;
  stamp loaded_;  // the file as last read (or refused)
  stamp seen_;    // the file at the previous poll
};

}  // namespace mta
