#include "mailbox/directory.hpp"

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>

namespace mailbox {

directory::directory() : shared_(std::make_unique<shared_entries>()) {
  shared_->current = std::make_shared<const entries>();
}

directory::directory(std::vector<std::string> domains, users_map users,
                     std::map<std::string, std::vector<std::string>> aliases, std::map<std::string, std::string> catch_all)
    : directory() {
  for (auto& d : domains) domains_.push_back(smtp::lower(d));
  replace_users(std::move(users));
  replace_aliases(aliases, catch_all);
}

std::shared_ptr<const directory::entries> directory::current() const {
  std::lock_guard lock(shared_->m);
  return shared_->current;
}

std::shared_ptr<const users_map> directory::users() const {
  auto e = current();
  return std::shared_ptr<const users_map>(e, &e->users);  // shares ownership of the snapshot
}

void directory::replace_users(users_map users) {
  std::lock_guard lock(shared_->m);
  auto next = std::make_shared<entries>(*shared_->current);
  next->users = std::move(users);
  shared_->current = std::move(next);
}

void directory::replace_aliases(const std::map<std::string, std::vector<std::string>>& aliases,
                                const std::map<std::string, std::string>& catch_all) {
  std::map<std::string, std::vector<std::string>> a;
  for (const auto& [k, v] : aliases) {
    const auto key = smtp::parse_mailbox(k);
    a[key ? canonical(*key) : smtp::lower(k)] = v;
  }
  std::map<std::string, std::string> c;
  for (const auto& [d, target] : catch_all) c[smtp::lower(d)] = target;
  std::lock_guard lock(shared_->m);
  auto next = std::make_shared<entries>(*shared_->current);
  next->aliases = std::move(a);
  next->catch_all = std::move(c);
  shared_->current = std::move(next);
}

std::optional<std::string> directory::password_hash(const std::string& user) const {
  const auto u = users();
  const auto it = u->find(user);
  if (it == u->end()) return std::nullopt;
  return it->second;
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
  const auto e = current();
  return e->users.count(key) > 0 || e->aliases.count(key) > 0 || e->catch_all.count(smtp::lower(full.domain)) > 0;
}

namespace {

// Aliases nest at most this deep; deeper is treated as a loop (Postfix stops at 100).
constexpr int max_alias_depth = 20;

}  // namespace

directory::expansion directory::expand(const smtp::address& a) const {
  expansion out;
  const auto e = current();  // one snapshot for the whole expansion
  std::set<std::string> seen_local, seen_remote;
  std::vector<std::string> path;
  // Returns false to stop (error recorded in `out`).
  std::function<bool(const smtp::address&, int)> visit = [&](const smtp::address& addr, int depth) -> bool {
    smtp::address full = addr;
    if (full.domain.empty() && !domains_.empty()) full.domain = domains_.front();
    if (!is_local_domain(full.domain)) {
      const auto s = full.str();
      if (seen_remote.insert(smtp::lower(s)).second) out.remote.push_back(s);
      return true;
    }
    const auto key = canonical(full);
    if (std::find(path.begin(), path.end(), key) != path.end() || depth > max_alias_depth) {
      out.error = expansion::problem::loop;
      out.detail = "alias loop at " + key;
      return false;
    }
    if (auto it = e->aliases.find(key); it != e->aliases.end()) {
      path.push_back(key);
      for (const auto& target : it->second) {
        const auto t = smtp::parse_mailbox(target);
        if (!t) continue;  // rejected when the configuration was loaded
        if (canonical(*t) == key && e->users.count(key)) {  // "alice: alice, backup" keeps a copy
          if (seen_local.insert(key).second) out.local.push_back(key);
          continue;
        }
        if (!visit(*t, depth + 1)) return false;
      }
      path.pop_back();
      return true;
    }
    if (e->users.count(key)) {
      if (seen_local.insert(key).second) out.local.push_back(key);
      return true;
    }
    if (auto c = e->catch_all.find(smtp::lower(full.domain)); c != e->catch_all.end() && depth == 0) {
      if (const auto t = smtp::parse_mailbox(c->second)) return visit(*t, depth + 1);
    }
    out.error = expansion::problem::unknown;
    out.detail = "no such user: " + key;
    return false;
  };
  if (!visit(a, 0)) {
    out.local.clear();
    out.remote.clear();
  }
  return out;
}

bool directory::owns(const std::string& user, const smtp::address& sender) const {
  const auto u = smtp::parse_mailbox(user);
  if (!u || sender.null()) return false;
  const auto me = canonical(*u);
  if (canonical(sender) == me) return true;
  const auto ex = expand(sender);
  return ex.error == expansion::problem::none && std::find(ex.local.begin(), ex.local.end(), me) != ex.local.end();
}

std::variant<users_map, users_file_error> load_users_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return users_file_error{0, "cannot read " + path.string()};
  users_map users;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;  // '#' may occur in a local part
    std::string_view entry(line);
    entry.remove_prefix(start);
    // The password hash follows the first ':' (Dovecot passwd-file style); an
    // address itself has no ':' outside a quoted local part.
    std::string_view hash;
    if (const auto colon = entry.find(':'); colon != std::string_view::npos) {
      hash = entry.substr(colon + 1);
      entry = entry.substr(0, colon);
      // passwd-file lines may carry more ':'-separated fields after the hash.
      hash = hash.substr(0, hash.find(':'));
    }
    const auto addr = smtp::parse_mailbox(entry);
    if (!addr) return users_file_error{n, "not a valid address: " + std::string(entry)};
    users[directory::canonical(*addr)] = std::string(hash);
  }
  return users;
}

}  // namespace mailbox
