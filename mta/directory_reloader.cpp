#include "mta/directory_reloader.hpp"

#include <sys/stat.h>

#include <variant>

#include "mta/config.hpp"
#include "mta/maillog.hpp"

namespace mta {

directory_reloader::directory_reloader(mailbox::directory& dir, std::filesystem::path users_file,
                                       std::filesystem::path config_file)
    : dir_(dir) {
  users_.file = std::move(users_file);
  users_.loaded = users_.seen = stat_of(users_.file);
  config_.file = std::move(config_file);
  if (!config_.file.empty()) config_.loaded = config_.seen = stat_of(config_.file);
}

directory_reloader::stamp directory_reloader::stat_of(const std::filesystem::path& file) {
  // stat(2) rather than std::filesystem: one call gives all four, and the
  // inode, which std::filesystem does not expose.
  struct ::stat st {};
  if (::stat(file.c_str(), &st) != 0) return {};
  stamp s;
  s.exists = true;
  s.mtime = std::filesystem::file_time_type(std::chrono::seconds(st.st_mtim.tv_sec) +
                                            std::chrono::nanoseconds(st.st_mtim.tv_nsec));
  s.size = static_cast<std::uintmax_t>(st.st_size);
  s.inode = static_cast<std::uintmax_t>(st.st_ino);
  return s;
}

bool directory_reloader::reload_users() {
  users_.loaded = users_.seen = stat_of(users_.file);  // refused or not, this version has been looked at
  auto r = mailbox::load_users_file(users_.file);
  if (const auto* err = std::get_if<mailbox::users_file_error>(&r)) {
    const auto kept = dir_.user_count();
    if (err->line)
      maillog::info("warning: users file {}:{}: {}; keeping the {} users loaded before", users_.file.string(),
                    err->line, err->what, kept);
    else
      maillog::info("warning: users file: {}; keeping the {} users loaded before", err->what, kept);
    return false;
  }
  auto users = std::get<mailbox::users_map>(std::move(r));
  const auto n = users.size();
  dir_.replace_users(std::move(users));
  maillog::info("users reloaded from {}: {} users", users_.file.string(), n);
  return true;
}

bool directory_reloader::reload_aliases() {
  if (config_.file.empty()) return false;
  config_.loaded = config_.seen = stat_of(config_.file);
  auto r = load_config(config_.file);
  if (const auto* err = std::get_if<config_error>(&r)) {
    maillog::info("warning: configuration {}; keeping the aliases loaded before", err->str());
    return false;
  }
  const auto& local = std::get<config>(r).local;
  dir_.replace_aliases(local.aliases, local.catch_all);
  maillog::info("aliases reloaded from {}: {} aliases, {} catch-alls (other settings take effect at restart)",
                config_.file.string(), local.aliases.size(), local.catch_all.size());
  return true;
}

bool directory_reloader::reload() {
  const bool users = reload_users();
  const bool aliases = reload_aliases();
  return users || aliases;
}

template <typename Load>
bool directory_reloader::poll_one(watched& w, Load load) {
  const auto now = stat_of(w.file);
  const bool settled = now == w.seen;
  w.seen = now;
  if (now == w.loaded || !settled) return false;
  return load();
}

bool directory_reloader::poll() {
  const bool users = poll_one(users_, [this] { return reload_users(); });
  const bool aliases = !config_.file.empty() && poll_one(config_, [this] { return reload_aliases(); });
  return users || aliases;
}

}  // namespace mta
