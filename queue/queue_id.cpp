#include "queue/queue_id.hpp"

#include <chrono>

namespace queue {

std::string id_generator::encode(std::uint64_t v) {
  static constexpr char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  std::string out(12, '0');
  for (int i = 11; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = alphabet[v & 31];
    v >>= 5;
  }
  return out;
}

std::optional<std::uint64_t> id_generator::decode(std::string_view id) {
  static constexpr std::string_view alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  if (id.size() != 12) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : id) {
    const auto d = alphabet.find(c);
    if (d == std::string_view::npos) return std::nullopt;
    v = (v << 5) | d;
  }
  return v;
}

std::string id_generator::next() {
  using namespace std::chrono;
  const auto now = static_cast<std::uint64_t>(
      duration_cast<microseconds>(system_clock::now().time_since_epoch()).count());
  std::uint64_t prev = last_.load(std::memory_order_relaxed);
  std::uint64_t v;
  do {
    v = now > prev ? now : prev + 1;  // never repeat, even if the clock stalls or steps back
  } while (!last_.compare_exchange_weak(prev, v, std::memory_order_relaxed));
  return encode(v);
}

}  // namespace queue
