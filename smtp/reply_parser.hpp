// The client side's reader of server replies (RFC 5321 §4.2): collects the
// lines of one reply ("250-..." continuation lines, then "250 ..."), checks
// that every line carries the same code, and splits off the enhanced status
// code (RFC 2034) when there is one. Incremental and bounded; no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "smtp/reply.hpp"

namespace smtp {

class reply_parser {
 public:
  enum class status { more, done, error };
  struct result {
    std::size_t consumed;
    status st;
  };

  // Consumes input up to the end of one complete reply (stopping there, so
  // that pipelined replies can be taken one at a time).
  result feed(std::string_view in);
  // The reply, after status::done; the parser is then ready for the next one.
  reply take();
  const std::string& error() const { return error_; }

  static constexpr std::size_t max_line = 4096;  // generous: RFC 5321 says 512
  static constexpr std::size_t max_lines = 200;  // an EHLO reply is a few dozen at most

 private:
  bool add_line(std::string_view line);

  std::string partial_;
  reply reply_;
  std::string error_;
};

}  // namespace smtp
