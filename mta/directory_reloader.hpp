// Keeps a running server's directory in step with its files, so that
// `tern user add|passwd|del` and an edited alias take effect without a
// restart: on SIGHUP at once, otherwise a few seconds after a file changes.
// From the users file it takes the users; from the configuration file only
// `[local] aliases` and `catch_all` (everything else in it is read at start).
#pragma once

#include <cstdint>
#include <filesystem>

#include "mailbox/directory.hpp"

namespace mta {

class directory_reloader {
 public:
  // config_file empty: the server runs on the built-in configuration, which
  // has no file to re-read.
  directory_reloader(mailbox::directory& dir, std::filesystem::path users_file, std::filesystem::path config_file);

  // Re-reads both files now. A file with an error is refused whole and what
  // was loaded from it before stays; either way the mail log says what
  // happened. Returns true if anything was replaced.
  bool reload();

  // Called every few seconds. Re-reads a file once it differs from what was
  // loaded and has not changed since the previous call, so that an editor
  // writing it in place is not caught halfway. Returns true if anything was
  // replaced.
  bool poll();

 private:
  struct stamp {
    bool exists = false;
    std::filesystem::file_time_type mtime{};
    std::uintmax_t size = 0;
    std::uintmax_t inode = 0;  // `tern user` renames a new file into place
    bool operator==(const stamp&) const = default;
  };
  struct watched {
    std::filesystem::path file;
    stamp loaded;  // the file as last read (or refused)
    stamp seen;    // the file at the previous poll
  };
  static stamp stat_of(const std::filesystem::path& file);
  bool reload_users();
  bool reload_aliases();
  // Re-reads `w` through `load` once a change has settled.
  template <typename Load>
  bool poll_one(watched& w, Load load);

  mailbox::directory& dir_;
  watched users_, config_;
};

}  // namespace mta
