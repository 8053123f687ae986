#include "mta/console.hpp"

namespace mta {

// Generated from mta/console/ by mta/console/embed.cmake.
extern const console_asset console_assets[];
extern const std::size_t console_asset_count;

std::optional<console_asset> console_file(std::string_view path) {
  for (std::size_t i = 0; i < console_asset_count; ++i)
    if (console_assets[i].path == path) return console_assets[i];
  return std::nullopt;
}

}  // namespace mta
