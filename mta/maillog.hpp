// The mail log: one line per event, Postfix style ("ID: from=<…>, size=N"),
// on standard error so that systemd's journal or a pipe collects it.
#pragma once

#include <string_view>

#include <fmt/format.h>

namespace mta::maillog {

void write(std::string_view line);

template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  write(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace mta::maillog
