// The users file and the configuration's aliases re-read while the server
// runs: only a settled change is taken, a broken file is refused whole, and a
// lookup that started before a replacement keeps the snapshot it started with.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "mailbox/directory.hpp"
#include "mta/directory_reloader.hpp"

namespace {

smtp::address addr(const char* s) { return *smtp::parse_mailbox(s); }

// As `tern user` writes it: a new file renamed into place.
void write_file(const std::filesystem::path& p, const std::string& text) {
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
  write_file(path, "alice@example.test:{SHA512-CRYPT}$6$a$old\n");
  mailbox::directory dir({"example.test"}, {{"alice@example.test", "{SHA512-CRYPT}$6$a$old"}}, {});
  mta::directory_reloader reloader(dir, path, {});

  CHECK_FALSE(reloader.poll());  // nothing changed
  const auto before = dir.users();

  write_file(path, "alice@example.test:{SHA512-CRYPT}$6$a$new\ncarol@example.test\n");
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

  write_file(path, "alice@example.test\nnot an address\n");
  CHECK_FALSE(reloader.reload());
  CHECK(dir.exists(addr("carol@example.test")));  // the users loaded before stay
  CHECK(dir.user_count() == 2);
  CHECK_FALSE(reloader.poll());  // the refused version is not retried every poll

  write_file(path, "bob@example.test\n");
  CHECK(reloader.reload());  // SIGHUP: at once
  CHECK(dir.exists(addr("bob@example.test")));
  CHECK_FALSE(dir.exists(addr("carol@example.test")));
  CHECK_FALSE(dir.exists(addr("alice@example.test")));

  std::filesystem::remove(path);
  CHECK_FALSE(reloader.poll());
  CHECK_FALSE(reloader.poll());  // settled, but unreadable: refused
  CHECK(dir.exists(addr("bob@example.test")));
}

TEST_CASE("aliases and catch-alls are re-read from the configuration, nothing else of it") {
  const auto dir_path = std::filesystem::temp_directory_path() / ("tern-reload-cfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir_path);
  const auto users = dir_path / "users";
  const auto cfg = dir_path / "tern.toml";
  write_file(users, "alice@example.test\n");
  write_file(cfg, "[local]\ndomains = [\"example.test\"]\naliases = { \"sales@example.test\" = [\"alice@example.test\"] }\n");
  mailbox::directory dir({"example.test"}, {{"alice@example.test", ""}},
                         {{"sales@example.test", {"alice@example.test"}}});
  mta::directory_reloader reloader(dir, users, cfg);
  CHECK_FALSE(reloader.poll());

  write_file(cfg, "[local]\ndomains = [\"example.test\", \"new.test\"]\n"
                  "aliases = { \"Support@Example.test\" = [\"alice@example.test\"] }\n"
                  "catch_all = { \"example.test\" = \"alice@example.test\" }\n");
  CHECK_FALSE(reloader.poll());
  CHECK(reloader.poll());
  CHECK(dir.expand(addr("support@example.test")).local == std::vector<std::string>{"alice@example.test"});
  CHECK(dir.expand(addr("nobody@example.test")).local == std::vector<std::string>{"alice@example.test"});
  CHECK_FALSE(dir.is_local_domain("new.test"));  // domains are read at start only

  write_file(cfg, "[local]\naliases = { \"x@example.test\" = [\"not an address\"] }\n");
  CHECK_FALSE(reloader.poll());
  CHECK_FALSE(reloader.poll());  // settled, and refused
  CHECK(dir.exists(addr("support@example.test")));

  write_file(cfg, "[local]\ndomains = [\"example.test\"]\n");
  CHECK(reloader.reload());
  CHECK_FALSE(dir.exists(addr("support@example.test")));
  CHECK_FALSE(dir.exists(addr("nobody@example.test")));
  CHECK(dir.exists(addr("alice@example.test")));
  std::filesystem::remove_all(dir_path);
}
