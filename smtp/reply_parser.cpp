#include "smtp/reply_parser.hpp"

namespace smtp {
namespace {

bool is_enhanced(std::string_view s) {
  // class "." subject "." detail, class in {2,4,5} (RFC 3463 §2)
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  std::size_t i = 2, dots = 0, digits = 0;
  for (; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (digits == 0 || digits > 3) return false;
      ++dots;
      digits = 0;
    } else if (s[i] >= '0' && s[i] <= '9') {
      ++digits;
    } else {
      return false;
    }
  }
  return dots == 1 && digits >= 1 && digits <= 3;
}

}  // namespace

bool reply_parser::add_line(std::string_view line) {
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' ||
      line[2] > '9' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    error_ = "malformed reply line: " + std::string(line.substr(0, 100));
    return false;
  }
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (!reply_.lines.empty() && code != reply_.code) {
    error_ = "reply code changed within a multi-line reply";
    return false;
  }
  if (reply_.lines.size() >= max_lines) {
    error_ = "reply has too many lines";
    return false;
  }
  reply_.code = code;
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
  // The enhanced code is taken from the first line and removed from every line.
  const auto sp = text.find(' ');
  const auto first = text.substr(0, sp);
  if (is_enhanced(first) && first[0] == line[0]) {
    if (reply_.lines.empty()) reply_.status = std::string(first);
    text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
  }
  reply_.lines.emplace_back(text);
  return true;
}

reply_parser::result reply_parser::feed(std::string_view in) {
  std::size_t used = 0;
  while (used < in.size()) {
    const auto rest = in.substr(used);
    const auto lf = rest.find('\n');
    const auto take = lf == std::string_view::npos ? rest.size() : lf + 1;
    if (partial_.size() + take > max_line) {
      error_ = "reply line too long";
      return {used, status::error};
    }
    partial_.append(rest.substr(0, take));
    used += take;
    if (lf == std::string_view::npos) break;
    std::string_view line(partial_);
    line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool last = line.size() <= 3 || line[3] == ' ';
    if (!add_line(line)) return {used, status::error};
    partial_.clear();
    if (last) return {used, status::done};
  }
  return {used, status::more};
}

reply reply_parser::take() {
  reply r = std::move(reply_);
  reply_ = {};
  return r;
}

}  // namespace smtp
