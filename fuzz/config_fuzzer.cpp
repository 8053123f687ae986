// Fuzzes the configuration loader: any text gives a config or an error that
// names a line inside the text — never a crash or an exception.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "mta/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto r = mta::load_config_text(text, "fuzz.toml");
  if (const auto* e = std::get_if<mta::config_error>(&r)) {
    std::size_t lines = 1;
    for (char c : text) lines += c == '\n';
    if (e->line > lines + 1) std::abort();
    if (e->what.empty()) std::abort();
  }
  return 0;
}
