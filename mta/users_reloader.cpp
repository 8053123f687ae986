#include "mta/users_reloader.hpp"

#include <sys/stat.h>

#include <variant>

#include "mta/maillog.hpp"

namespace mta {

users_reloader::users_reloader(mailbox::directory& dir, std::filesystem::path file)
    : dir_(dir), file_(std::move(file)), loaded_(current()), seen_(loaded_) {}

users_reloader::stamp users_reloader::current() const {
  // stat(2) rather than std::filesystem: one call gives all four, and the
  // inode, which std::filesystem does not expose.
  struct ::stat st {};
  if (::stat(file_.c_str(), &st) != 0) return {};
  stamp s;
  s.exists = true;
  s.mtime = std::filesystem::file_time_type(std::chrono::seconds(st.st_mtim.tv_sec) +
                                            std::chrono::nanoseconds(st.st_mtim.tv_nsec));
  s.size = static_cast<std::uintmax_t>(st.st_size);
  s.inode = static_cast<std::uintmax_t>(st.st_ino);
  return s;
}

bool users_reloader::reload() {
  const auto before = current();
  auto r = mailbox::load_users_file(file_);
  loaded_ = seen_ = before;  // refused or not, this version has been looked at
  if (const auto* err = std::get_if<mailbox::users_file_error>(&r)) {
    const auto kept = dir_.user_count();
    if (err->line)
      maillog::info("warning: users file {}:{}: {}; keeping the {} users loaded before", file_.string(), err->line,
                    err->what, kept);
    else
      maillog::info("warning: users file: {}; keeping the {} users loaded before", err->what, kept);
    return false;
  }
  auto users = std::get<mailbox::users_map>(std::move(r));
  const auto n = users.size();
  dir_.replace_users(std::move(users));
  maillog::info("users reloaded from {}: {} users", file_.string(), n);
  return true;
}

bool users_reloader::poll() {
  const auto now = current();
  const bool settled = now == seen_;
  seen_ = now;
  if (now == loaded_ || !settled) return false;
  return reload();
}

}  // namespace mta
