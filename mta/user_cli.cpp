#include "mta/user_cli.hpp"

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "mailbox/directory.hpp"
#include "mta/passwords.hpp"

namespace mta {
namespace {

// A password from the terminal without echo (asked twice), or one line of stdin.
std::optional<std::string> read_password() {
  std::string pw;
  if (!isatty(STDIN_FILENO)) {
    if (!std::getline(std::cin, pw)) return std::nullopt;
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    return pw;
  }
  termios old{};
  tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  std::string again;
  std::cerr << "Password: " << std::flush;
  std::getline(std::cin, pw);
  std::cerr << "\nAgain: " << std::flush;
  std::getline(std::cin, again);
  std::cerr << "\n";
  tcsetattr(STDIN_FILENO, TCSANOW, &old);
  if (pw != again) {
    std::cerr << "tern: the passwords differ\n";
    return std::nullopt;
  }
  return pw;
}

struct line {
  std::string text;
  std::string address;  // canonical, empty for comments and blank lines
};

std::vector<line> read_lines(const std::filesystem::path& p) {
  std::vector<line> out;
  std::ifstream in(p);
  std::string text;
  while (std::getline(in, text)) {
    line l{text, {}};
    const auto start = text.find_first_not_of(" \t");
    if (start != std::string::npos && text[start] != '#') {
      const auto entry = text.substr(start, text.find(':') - start);
      if (const auto a = smtp::parse_mailbox(entry.substr(0, entry.find_last_not_of(" \t\r") + 1)))
        l.address = mailbox::directory::canonical(*a);
    }
    out.push_back(std::move(l));
  }
  return out;
}

bool write_lines(const std::filesystem::path& p, const std::vector<line>& lines) {
  const auto tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& l : lines) out << l.text << "\n";
    out.flush();
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::permissions(tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                        std::filesystem::perms::group_read, ec);
  std::filesystem::rename(tmp, p, ec);
  return !ec;
}

int usage() {
  fmt::print(stderr,
             "usage: tern user add ADDRESS       (password from stdin, or asked without echo)\n"
             "       tern user passwd ADDRESS\n"
             "       tern user del ADDRESS\n"
             "       tern user list\n");
  return 2;
}

}  // namespace

int user_command(const config& cfg, const std::vector<std::string>& args) {
  if (args.empty()) return usage();
  const auto& file = cfg.local.users_file;
  auto lines = read_lines(file);
  if (args[0] == "list" && args.size() == 1) {
    for (const auto& l : lines)
      if (!l.address.empty())
        fmt::print("{}{}\n", l.address, l.text.find(':') == std::string::npos ? " (no password)" : "");
    return 0;
  }
  if (args.size() != 2) return usage();
  const auto addr = smtp::parse_mailbox(args[1]);
  if (!addr) {
    fmt::print(stderr, "tern: not a valid address: {}\n", args[1]);
    return 1;
  }
  const auto name = mailbox::directory::canonical(*addr);
  const auto domain = name.substr(name.find('@') + 1);
  auto it = std::find_if(lines.begin(), lines.end(), [&](const line& l) { return l.address == name; });
  const auto& cmd = args[0];
  if (cmd == "add" || cmd == "passwd") {
    if (cmd == "add" && it != lines.end()) {
      fmt::print(stderr, "tern: {} already exists (use tern user passwd)\n", name);
      return 1;
    }
    if (cmd == "passwd" && it == lines.end()) {
      fmt::print(stderr, "tern: no user {}\n", name);
      return 1;
    }
    if (std::find(cfg.local.domains.begin(), cfg.local.domains.end(), domain) == cfg.local.domains.end()) {
      fmt::print(stderr, "tern: {} is not a local domain (local.domains in {})\n", domain, cfg.source);
      return 1;
    }
    const auto pw = read_password();
    if (!pw || pw->empty()) {
      fmt::print(stderr, "tern: no password given\n");
      return 1;
    }
    const auto text = name + ":" + hash_password(*pw);
    if (it == lines.end()) lines.push_back({text, name});
    else it->text = text;
  } else if (cmd == "del") {
    if (it == lines.end()) {
      fmt::print(stderr, "tern: no user {}\n", name);
      return 1;
    }
    lines.erase(it);
  } else {
    return usage();
  }
  if (!write_lines(file, lines)) {
    fmt::print(stderr, "tern: cannot write {}\n", file.string());
    return 1;
  }
  fmt::print("{}: {} (a running tern serve reads the users file at start: restart it)\n", name,
             cmd == "add" ? "added" : cmd == "del" ? "deleted" : "password changed");
  return 0;
}

}  // namespace mta
