// The web console's static files (mta/console/), compiled into the binary so
// that the page is served with no files to install.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace mta {

struct console_asset {
  std::string_view path;  // "/index.html"
  std::string_view content_type;
  std::string_view body;
};

std::optional<console_asset> console_file(std::string_view path);

}  // namespace mta
