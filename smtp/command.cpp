// Command-line parsing for the server session. Replies to syntax errors follow
// RFC 5321 §4.2 and the enhanced codes of RFC 3463: 500 for an unknown verb,
// 501 for bad arguments, 555 for an unknown or unsupported MAIL/RCPT parameter.
#include "smtp/command.hpp"

#include <array>
#include <charconv>

namespace smtp {
namespace {

struct verb_name {
  std::string_view name;
  verb v;
};
constexpr std::array<verb_name, 14> verbs{{
    {"HELO", verb::helo}, {"EHLO", verb::ehlo}, {"MAIL", verb::mail}, {"RCPT", verb::rcpt},
    {"DATA", verb::data}, {"BDAT", verb::bdat}, {"RSET", verb::rset}, {"NOOP", verb::noop},
    {"VRFY", verb::vrfy}, {"EXPN", verb::expn}, {"HELP", verb::help}, {"QUIT", verb::quit},
    {"STARTTLS", verb::starttls}, {"AUTH", verb::auth},
}};

reply syntax(std::string_view text) { return make_reply(501, "5.5.4", text); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  return out;
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Splits "KEY=VALUE KEY2 ..." into parameters; calls on_param(key_upper, value, has_value).
template <typename F>
std::optional<reply> for_each_param(std::string_view rest, F on_param) {
  while (true) {
    rest = trim(rest);
    if (rest.empty()) return std::nullopt;
    const auto sp = rest.find(' ');
    const auto tok = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
    const auto eq = tok.find('=');
    const auto key = tok.substr(0, eq);
    if (key.empty()) return syntax("Syntax error in parameters");
    for (char c : key) {
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return syntax("Syntax error in parameters");
    }
    const bool has_value = eq != std::string_view::npos;
    const auto value = has_value ? tok.substr(eq + 1) : std::string_view{};
    if (has_value && value.empty()) return syntax("Syntax error in parameters");
    if (auto err = on_param(upper(key), value, has_value)) return err;
  }
}

reply unsupported(std::string_view key) {
  return make_reply(555, "5.5.4", std::string("Unsupported option: ") + std::string(key));
}

std::optional<reply> parse_mail_param(mail_params& m, const std::string& key, std::string_view value,
                                      bool has_value) {
  if (key == "SIZE") {
    const auto n = parse_number(value);
    if (!n || m.size) return syntax("Bad SIZE parameter");
    m.size = n;
  } else if (key == "BODY") {
    if (m.body != body_type::unspecified) return syntax("Duplicate BODY parameter");
    const auto v = upper(value);
    if (v == "7BIT") m.body = body_type::seven_bit;
    else if (v == "8BITMIME") m.body = body_type::eight_bit_mime;
    else if (v == "BINARYMIME") return unsupported("BODY=BINARYMIME");
    else return syntax("Bad BODY parameter");
  } else if (key == "SMTPUTF8") {
    if (has_value || m.smtputf8) return syntax("Bad SMTPUTF8 parameter");
    m.smtputf8 = true;
  } else if (key == "RET") {
    const auto v = upper(value);
    if (!m.ret.empty() || (v != "FULL" && v != "HDRS")) return syntax("Bad RET parameter");
    m.ret = v;
  } else if (key == "ENVID") {
    // RFC 3461 §4.4: at most 100 characters of xtext.
    if (!m.envid.empty() || value.size() > 100 || !is_valid_xtext(value)) return syntax("Bad ENVID parameter");
    m.envid = std::string(value);
  } else {
    return unsupported(key);
  }
  return std::nullopt;
}

std::optional<reply> parse_rcpt_param(rcpt_params& r, const std::string& key, std::string_view value, bool) {
  if (key == "NOTIFY") {
    if (!r.notify.empty() || value.empty()) return syntax("Bad NOTIFY parameter");
    const auto v = upper(value);
    bool never = false, other = false;
    std::size_t start = 0;
    while (start <= v.size()) {
      const auto comma = v.find(',', start);
      const auto item = std::string_view(v).substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (item == "NEVER") never = true;
      else if (item == "SUCCESS" || item == "FAILURE" || item == "DELAY") other = true;
      else return syntax("Bad NOTIFY parameter");
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (never && other) return syntax("Bad NOTIFY parameter");  // RFC 3461 §4.1: NEVER stands alone
    r.notify = v;
  } else if (key == "ORCPT") {
    // RFC 3461 §4.2: addr-type ";" xtext, at most 500 characters.
    const auto semi = value.find(';');
    if (!r.orcpt.empty() || semi == std::string_view::npos || semi == 0 || value.size() > 500 ||
        !is_valid_xtext(value.substr(semi + 1)))
      return syntax("Bad ORCPT parameter");
    r.orcpt = std::string(value);
  } else {
    return unsupported(key);
  }
  return std::nullopt;
}

// "FROM:<path> params" / "TO:<path> params"; a space after the colon is tolerated
// as Postfix and Sendmail do, since many clients send it.
parse_result parse_path_command(command cmd, std::string_view args, std::string_view prefix) {
  const bool is_mail = cmd.v == verb::mail;
  const auto usage = is_mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>";
  if (args.size() < prefix.size() || upper(args.substr(0, prefix.size())) != prefix) return syntax(usage);
  args = trim(args.substr(prefix.size()));
  const auto pr = parse_path(args, is_mail, !is_mail);
  if (!pr.addr) {
    if (pr.consumed == 0 && (args.empty() || args.front() != '<')) return syntax(usage);
    if (pr.error == path_error::too_long)
      return make_reply(501, is_mail ? "5.1.7" : "5.1.3", "Address too long");
    return make_reply(501, is_mail ? "5.1.7" : "5.1.3", is_mail ? "Bad sender address syntax" : "Bad recipient address syntax");
  }
  cmd.path = *pr.addr;
  const auto rest = args.substr(pr.consumed);
  if (!rest.empty() && rest.front() != ' ') return syntax(usage);
  std::optional<reply> err;
  if (is_mail)
    err = for_each_param(rest, [&](const std::string& k, std::string_view v, bool hv) {
      return parse_mail_param(cmd.mail, k, v, hv);
    });
  else
    err = for_each_param(rest, [&](const std::string& k, std::string_view v, bool hv) {
      return parse_rcpt_param(cmd.rcpt, k, v, hv);
    });
  if (err) return *err;
  return cmd;
}

}  // namespace

std::string_view to_string(verb v) {
  for (const auto& n : verbs)
    if (n.v == v) return n.name;
  return "UNKNOWN";
}

std::string_view to_string(body_type b) {
  switch (b) {
    case body_type::seven_bit: return "7BIT";
    case body_type::eight_bit_mime: return "8BITMIME";
    case body_type::unspecified: break;
  }
  return "";
}

bool is_valid_xtext(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 2 >= s.size()) return false;
      for (int k = 1; k <= 2; ++k) {
        const char h = s[i + k];
        if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F'))) return false;
      }
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {
      return false;
    }
  }
  return true;
}

parse_result parse_command(std::string_view line) {
  if (line.size() + 2 > max_command_line) return make_reply(500, "5.5.2", "Line too long");
  for (char c : line) {
    if (c == '\r') return make_reply(500, "5.5.2", "Bare CR in command");
    if (c == '\0') return make_reply(500, "5.5.2", "NUL in command");
  }
  const auto sp = line.find(' ');
  const auto name = upper(line.substr(0, sp));
  const auto args = sp == std::string_view::npos ? std::string_view{} : trim(line.substr(sp + 1));
  command cmd;
  for (const auto& n : verbs)
    if (n.name == name) cmd.v = n.v;

  switch (cmd.v) {
    case verb::unknown:
      return make_reply(500, "5.5.2", "Error: command not recognized");
    case verb::helo:
    case verb::ehlo: {
      if (args.empty()) return syntax(cmd.v == verb::ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
      cmd.arg = std::string(args.substr(0, args.find(' ')));
      return cmd;
    }
    case verb::mail: return parse_path_command(std::move(cmd), args, "FROM:");
    case verb::rcpt: return parse_path_command(std::move(cmd), args, "TO:");
    case verb::bdat: {
      const auto s2 = args.find(' ');
      const auto n = parse_number(args.substr(0, s2));
      if (!n) return syntax("Syntax: BDAT chunk-size [LAST]");
      cmd.chunk_size = *n;
      if (s2 != std::string_view::npos) {
        if (upper(trim(args.substr(s2))) != "LAST") return syntax("Syntax: BDAT chunk-size [LAST]");
        cmd.last = true;
      }
      return cmd;
    }
    case verb::data:
    case verb::rset:
    case verb::quit:
    case verb::starttls:
      if (!args.empty()) return syntax(std::string("Syntax: ") + std::string(to_string(cmd.v)));
      return cmd;
    case verb::vrfy:
      if (args.empty()) return syntax("Syntax: VRFY address");
      cmd.arg = std::string(args);
      return cmd;
    case verb::noop:
    case verb::help:
    case verb::expn:
    case verb::auth:
      cmd.arg = std::string(args);
      return cmd;
  }
  return make_reply(500, "5.5.2", "Error: command not recognized");
}

}  // namespace smtp
