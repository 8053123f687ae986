#include "mta/connection_table.hpp"

#include <vector>

namespace mta {

connection_table::admission connection_table::admit(const std::string& ip, std::size_t max_total,
                                                    std::size_t max_per_ip) {
  std::lock_guard lock(mu_);
  if (total_ >= max_total) return admission::too_many;
  auto& n = per_ip_[ip];
  if (n >= max_per_ip) {
    if (n == 0) per_ip_.erase(ip);
    return admission::too_many_from_ip;
  }
  ++n;
  ++total_;
  return admission::ok;
}

void connection_table::leave(const std::string& ip, std::uint64_t stopper_id) {
  std::lock_guard lock(mu_);
  --total_;
  if (auto it = per_ip_.find(ip); it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
  stoppers_.erase(stopper_id);
}

std::uint64_t connection_table::on_stop(std::function<void()> stop) {
  std::lock_guard lock(mu_);
  const auto id = next_id_++;
  stoppers_.emplace(id, std::move(stop));
  return id;
}

void connection_table::stop_all() {
  std::vector<std::function<void()>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, f] : stoppers_) all.push_back(f);
  }
  for (auto& f : all) f();
}

std::size_t connection_table::size() const {
  std::lock_guard lock(mu_);
  return total_;
}

}  // namespace mta
