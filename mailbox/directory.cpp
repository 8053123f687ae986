#include "mailbox/directory.hpp"

#include <algorithm>
#include <fstream>

namespace mailbox {

directory::directory(std::vector<std::string> domains, std::set<std::string> users,
                     std::map<std::string, std::vector<std::string>> aliases)
    : users_(std::move(users)) {
  for (auto& d : domains) domains_.push_back(smtp::lower(d));
  for (auto& [k, v] : aliases) {
    auto key = smtp::parse_mailbox(k);
    aliases_[key ? canonical(*key) : smtp::lower(k)] = std::move(v);
  }
}

bool directory::is_local_domain(std::string_view domain) const {
  const auto d = smtp::lower(domain);
  return std::find(domains_.begin(), domains_.end(), d) != domains_.end();
}

std::string directory::canonical(const smtp::address& a) {
  std::string local = smtp::lower(a.local);
  // Sub-addressing: the part after the first '+' names a folder, not a mailbox.
  if (const auto plus = local.find('+'); plus != std::string::npos && plus > 0 && local.front() != '"')
    local.resize(plus);
  return local + "@" + smtp::lower(a.domain);
}

bool directory::exists(const smtp::address& a) const {
  smtp::address full = a;
  if (a.domain.empty()) {
    if (domains_.empty()) return false;
    full.domain = domains_.front();
  }
  if (!is_local_domain(full.domain)) return false;
  const auto key = canonical(full);
  return users_.count(key) > 0 || aliases_.count(key) > 0;
}

std::variant<std::set<std::string>, users_file_error> load_users_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return users_file_error{0, "cannot read " + path.string()};
  std::set<std::string> users;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;  // '#' may occur in a local part
    std::string_view entry(line);
    entry.remove_prefix(start);
    // The password hash follows the last ':' (Dovecot passwd-file style); an
    // address itself has no ':' outside a quoted local part.
    if (const auto colon = entry.find(':'); colon != std::string_view::npos) entry = entry.substr(0, colon);
    const auto addr = smtp::parse_mailbox(entry);
    if (!addr) return users_file_error{n, "not a valid address: " + std::string(entry)};
    users.insert(directory::canonical(*addr));
  }
  return users;
}

}  // namespace mailbox
