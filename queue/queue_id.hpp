// Queue IDs: 12 characters of Crockford base32 over a microsecond timestamp,
// made strictly increasing within the process. Short, unique and sortable by
// time as text (the alphabet is in ASCII order).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace queue {

class id_generator {
 public:
  std::string next();
  static std::string encode(std::uint64_t v);

 private:
  std::atomic<std::uint64_t> last_{0};
};

}  // namespace queue
