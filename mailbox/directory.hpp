// The recipient directory: which domains are local and which addresses in them
// exist (users and aliases). Addresses are compared case-insensitively, and
// "user+tag@domain" is the same mailbox as "user@domain" (sub-addressing).
// It answers questions; it does not deliver and does not read configuration.
//
// The users (from the users file, with their password hashes), the aliases
// and the catch-alls can be replaced while the server runs (`tern serve`
// re-reads them on SIGHUP and when their file changes): every question takes
// one snapshot, so a lookup never sees half of an old table and half of a new
// one. The local domains stay fixed.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "smtp/address.hpp"

namespace mailbox {

// Canonical address -> password hash ("" when the user has none).
using users_map = std::map<std::string, std::string>;

class directory {
 public:
  directory();
  directory(std::vector<std::string> domains, users_map users,
            std::map<std::string, std::vector<std::string>> aliases,
            std::map<std::string, std::string> catch_all = {});

  // What a recipient resolves to at delivery time: mailboxes here, addresses
  // elsewhere (an alias may forward), or why it cannot be delivered.
  struct expansion {
    enum class problem { none, unknown, loop };
    std::vector<std::string> local;   // canonical "user@domain" with a mailbox
    std::vector<std::string> remote;  // addresses outside the local domains
    problem error = problem::none;
    std::string detail;
  };
  // Follows aliases (to any depth, loops detected), sub-addressing and the
  // domain's catch-all. An alias listing itself keeps a copy in its own mailbox.
  expansion expand(const smtp::address& a) const;

  bool is_local_domain(std::string_view domain) const;
  // True for a known user or alias in a local domain (or any address in a
  // domain with a catch-all), after sub-address removal.
  // A bare "postmaster" (RFC 5321 §4.1.1.3) means postmaster at the first local domain.
  bool exists(const smtp::address& a) const;
  // "user+tag@Domain" -> "user@domain".
  static std::string canonical(const smtp::address& a);

  const std::vector<std::string>& domains() const { return domains_; }
  // May `user` (an authenticated local user) use `sender` as envelope sender:
  // its own address (any sub-address), or an alias that delivers to it.
  bool owns(const std::string& user, const smtp::address& sender) const;
  std::size_t user_count() const { return users()->size(); }
  // The hash of a user's password (canonical address); nullopt for no such user.
  std::optional<std::string> password_hash(const std::string& user) const;

  // What can change while the server runs, as of now.
  struct entries {
    users_map users;
    std::map<std::string, std::vector<std::string>> aliases;  // canonical address -> targets
    std::map<std::string, std::string> catch_all;             // lower-case domain -> address
  };
  std::shared_ptr<const entries> current() const;
  std::shared_ptr<const users_map> users() const;
  // Replacements, safe while other threads ask; each keeps the other part.
  void replace_users(users_map users);
  void replace_aliases(const std::map<std::string, std::vector<std::string>>& aliases,
                       const std::map<std::string, std::string>& catch_all);

 private:
  struct shared_entries {
    mutable std::mutex m;
    std::shared_ptr<const entries> current;
  };
  std::vector<std::string> domains_;       // lower case
  std::unique_ptr<shared_entries> shared_;  // a pointer, so that a directory can move
};

struct users_file_error {
  std::size_t line = 0;  // 0: the file itself could not be read
  std::string what;
};

// One address per line, optionally followed by ":password-hash" (Dovecot's
// passwd-file form, "{SHA512-CRYPT}$6$..."); a line starting with '#' is a
// comment. Returns canonical address -> hash ("" when none), or the first error.
std::variant<users_map, users_file_error> load_users_file(const std::filesystem::path& path);

}  // namespace mailbox
