// Live connections: counts in total and per client address (DESIGN.md
// invariant 5), and a way to ask every one of them to stop at shutdown.
// Thread-safe; knows nothing about sockets.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace mta {

class connection_table {
 public:
  enum class admission { ok, too_many, too_many_from_ip };

  admission admit(const std::string& ip, std::size_t max_total, std::size_t max_per_ip);
  // Undoes a successful admit(); `stop` (if registered) is forgotten.
  void leave(const std::string& ip, std::uint64_t stopper_id);
  std::uint64_t on_stop(std::function<void()> stop);
  void stop_all();
  std::size_t size() const;

 private:
  mutable std::mutex mu_;
  std::size_t total_ = 0;
  std::unordered_map<std::string, std::size_t> per_ip_;
  std::map<std::uint64_t, std::function<void()>> stoppers_;
  std::uint64_t next_id_ = 1;
};

}  // namespace mta
