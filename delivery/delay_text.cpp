#include "delivery/delay_text.hpp"

#include <fmt/format.h>

namespace delivery {

std::string delay_text(double seconds) {
  if (!(seconds > 0)) return "0";  // a clock step backwards, or NaN
  const int decimals = seconds < 10 ? 2 : seconds < 100 ? 1 : 0;
  auto s = fmt::format("{:.{}f}", seconds, decimals);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

}  // namespace delivery
