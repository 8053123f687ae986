// The message as it goes on the wire after DATA (RFC 5321 §4.5.2): a period
// at the start of a line is doubled, every line ends in CRLF — a bare LF or
// bare CR in the stored message becomes CRLF, so that we never emit anything
// a smuggling-prone receiver could read as a line end — and ".\r\n" ends it.
#pragma once

#include <string>
#include <string_view>

namespace smtp {

std::string dot_stuff(std::string_view message);

}  // namespace smtp
