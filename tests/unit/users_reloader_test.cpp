// The users file re-read while the server runs: only a settled change is
// taken, a broken file is refused whole, and a lookup that started before a
// replacement keeps the users it started with.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "mailbox/directory.hpp"
#include "mta/users_reloader.hpp"

namespace {

smtp::address addr(const char* s) { return *smtp::parse_mailbox(s); }

// As `tern user` writes it: a new file renamed into place.
void write_users(const std::filesystem::path& p, const std::string& text) {
  const auto tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
  }
  std::filesystem::rename(tmp, p);
}

}  // namespace

TEST_CASE("the users file is re-read once a change has settled, and a broken one is refused") {
  const auto path = std::filesystem::temp_directory_path() / ("tern-reload-" + std::to_string(::getpid()));
  write_users(path, "alice@example.test:{SHA512-CRYPT}$6$a$old\n");
  mailbox::directory dir({"example.test"}, {{"alice@example.test", "{SHA512-CRYPT}$6$a$old"}}, {});
  mta::users_reloader reloader(dir, path);

  CHECK_FALSE(reloader.poll());  // nothing changed
  const auto before = dir.users();

  write_users(path, "alice@example.test:{SHA512-CRYPT}$6$a$new\ncarol@example.test\n");
  CHECK_FALSE(reloader.poll());  // changed, but not yet seen twice the same
  CHECK_FALSE(dir.exists(addr("carol@example.test")));
  CHECK(reloader.poll());
  CHECK(dir.exists(addr("carol@example.test")));
  CHECK(dir.password_hash("alice@example.test") == "{SHA512-CRYPT}$6$a$new");
  CHECK(dir.password_hash("carol@example.test") == "");
  CHECK_FALSE(dir.password_hash("dave@example.test"));
  // A snapshot taken before the replacement is unchanged.
  CHECK(before->size() == 1);
  CHECK(before->at("alice@example.test") == "{SHA512-CRYPT}$6$a$old");
  CHECK_FALSE(reloader.poll());  // loaded: nothing more to do

  write_users(path, "alice@example.test\nnot an address\n");
  CHECK_FALSE(reloader.reload());
  CHECK(dir.exists(addr("carol@example.test")));  // the users loaded before stay
  CHECK(dir.user_count() == 2);
  CHECK_FALSE(reloader.poll());  // the refused version is not retried every poll

  write_users(path, "bob@example.test\n");
  CHECK(reloader.reload());  // SIGHUP: at once
  CHECK(dir.exists(addr("bob@example.test")));
  CHECK_FALSE(dir.exists(addr("carol@example.test")));
  CHECK_FALSE(dir.exists(addr("alice@example.test")));

  std::filesystem::remove(path);
  CHECK_FALSE(reloader.poll());
  CHECK_FALSE(reloader.poll());  // settled, but unreadable: refused
  CHECK(dir.exists(addr("bob@example.test")));
}
