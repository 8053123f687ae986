#include "mailbox/maildir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace mailbox {
namespace fs = std::filesystem;
namespace {

std::atomic<std::uint64_t> delivery_counter{0};

maildir_error os_error(std::string_view what, const fs::path& p) {
  const int e = errno;
  return {e, fmt::format("{} {}: {}", what, p.string(), std::strerror(e))};
}

bool write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const auto n = ::write(fd, s.data(), s.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// mkdir -p with errno kept, so that "permission denied" reaches the log as such.
bool make_dirs(const fs::path& p, maildir_error& err) {
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec) {
    err = {ec.value(), fmt::format("cannot create {}: {}", p.string(), ec.message())};
    return false;
  }
  return true;
}

bool safe_component(std::string_view s) {
  return !s.empty() && s.front() != '.' && s.find('/') == std::string_view::npos &&
         s.find('\0') == std::string_view::npos;
}

}  // namespace

std::string maildir_name(std::time_t t, long usec, long pid, std::uint64_t n, std::string_view hostname,
                         std::size_t size) {
  std::string host;
  for (char c : hostname) {
    if (c == '/') host += "\\057";
    else if (c == ':') host += "\\072";
    else host += c;
  }
  return fmt::format("{}.M{}P{}Q{}.{},S={}", t, usec, pid, n, host, size);
}

fs::path mailbox_path(const fs::path& root, std::string_view user, std::string_view domain) {
  if (!safe_component(user) || !safe_component(domain)) return {};
  return root / std::string(domain) / std::string(user);
}

std::variant<fs::path, maildir_error> deliver_maildir(const fs::path& dir, std::string_view hostname,
                                                      std::string_view prefix, std::string_view data) {
  maildir_error err;
  for (const char* sub : {"tmp", "new", "cur"})
    if (!make_dirs(dir / sub, err)) return err;
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  const auto name = maildir_name(tv.tv_sec, static_cast<long>(tv.tv_usec), static_cast<long>(::getpid()),
                                 ++delivery_counter, hostname, prefix.size() + data.size());
  const auto tmp = dir / "tmp" / name;
  const auto final_path = dir / "new" / name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return os_error("cannot create", tmp);
  if (!write_all(fd, prefix) || !write_all(fd, data) || ::fsync(fd) != 0) {
    auto e = os_error("cannot write", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  if (::close(fd) != 0) {
    auto e = os_error("cannot close", tmp);
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    auto e = os_error("cannot rename into", final_path);
    ::unlink(tmp.c_str());
    return e;
  }
  // The rename is durable only once the directory itself is synced.
  if (!fsync_dir(dir / "new")) return os_error("cannot sync", dir / "new");
  return final_path;
}

}  // namespace mailbox
