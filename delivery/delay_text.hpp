// How long a message waited, as the mail log says it: "delay=0.12",
// "delay=3.4", "delay=35" (Postfix's precision: two digits after the point
// below 10 s, one below 100 s, whole seconds above; no trailing zeros).
#pragma once

#include <string>

namespace delivery {

std::string delay_text(double seconds);

}  // namespace delivery
