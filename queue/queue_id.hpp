// Queue IDs: 12 characters of Crockford base32 over a microsecond timestamp,
// made strictly increasing within the process. Short, unique and sortable by
// time as text (the alphabet is in ASCII order).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace queue {

class id_generator {
 public:
  std::string next();
  static std::string encode(std::uint64_t v);
  // The microseconds since the epoch an ID was made at (its arrival time),
  // or nullopt for a string that is not an ID.
  static std::optional<std::uint64_t> decode(std::string_view id);

 private:
  std::atomic<std::uint64_t> last_{0};
};

}  // namespace queue
