// The DATA reader (RFC 5321 §4.1.1.4, §4.5.2): removes dot-stuffing and finds
// the end of the message, which is <CRLF>.<CRLF> and nothing else. A bare LF
// or bare CR anywhere in the message is an error, never a line end: treating
// them as line ends is what SMTP smuggling exploits. Incremental, so the
// message can arrive in any number of pieces; bounded by max_size.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace smtp {

class data_decoder {
 public:
  enum class status { more, done, bare_lf, bare_cr };
  struct result {
    std::size_t consumed;  // octets of the input used; input after "done" is not consumed
    status st;
  };

  // Appends the unstuffed message to `out` until it would exceed max_size;
  // past that the rest is still read (to find the end) but dropped.
  data_decoder(std::string& out, std::size_t max_size) : out_(out), max_size_(max_size) {}

  result feed(std::string_view in);

  bool overflow() const { return size_ > max_size_; }
  std::size_t size() const { return size_; }  // message octets seen, stored or not

 private:
  enum class state { bol, bol_dot, bol_dot_cr, mid, cr };
  void emit(std::string_view s);

  std::string& out_;
  std::size_t max_size_;
  std::size_t size_ = 0;
  state state_ = state::bol;
};

std::string_view to_string(data_decoder::status s);

}  // namespace smtp
