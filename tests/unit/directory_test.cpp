// The recipient directory: local domains, users, aliases, sub-addressing and
// the users file format.
#include <catch2/catch.hpp>

#include <fstream>

#include <unistd.h>

#include "mailbox/directory.hpp"

namespace {

smtp::address addr(const char* s) { return *smtp::parse_mailbox(s); }

mailbox::directory sample() {
  return mailbox::directory({"Example.TEST", "other.test"}, {{"alice@example.test", ""}, {"bob@other.test", ""}},
                            {{"Postmaster@Example.test", {"alice@example.test"}}});
}

}  // namespace

TEST_CASE("who exists") {
  const auto d = sample();
  struct row {
    const char* address;
    bool exists;
  };
  const row rows[] = {
      {"alice@example.test", true},   {"ALICE@EXAMPLE.TEST", true},  {"alice+news@example.test", true},
      {"bob@other.test", true},       {"bob@example.test", false},    {"postmaster@example.test", true},
      {"carol@example.test", false},  {"alice@remote.test", false},   {"+alice@example.test", false},
  };
  for (const auto& r : rows) {
    INFO(r.address);
    CHECK(d.exists(addr(r.address)) == r.exists);
  }
  CHECK(d.exists(smtp::address{"postmaster", ""}));  // bare <postmaster> means the first local domain
  CHECK(d.is_local_domain("EXAMPLE.test"));
  CHECK_FALSE(d.is_local_domain("remote.test"));
}

TEST_CASE("the users file") {
  const auto path = std::filesystem::temp_directory_path() / ("tern-users-" + std::to_string(::getpid()));
  {
    std::ofstream f(path);
    f << "# comment\n\nalice@example.test\n  Bob@Example.test:{SHA512-CRYPT}$6$salt$hash  \nx#y@example.test\n";
  }
  auto r = mailbox::load_users_file(path);
  REQUIRE(std::holds_alternative<mailbox::users_map>(r));
  CHECK(std::get<mailbox::users_map>(r) == mailbox::users_map{{"alice@example.test", ""},
                                                              {"bob@example.test", "{SHA512-CRYPT}$6$salt$hash"},
                                                              {"x#y@example.test", ""}});
  {
    std::ofstream f(path);
    f << "alice@example.test\nnot an address\n";
  }
  r = mailbox::load_users_file(path);
  REQUIRE(std::holds_alternative<mailbox::users_file_error>(r));
  CHECK(std::get<mailbox::users_file_error>(r).line == 2);
  std::filesystem::remove(path);
  r = mailbox::load_users_file(path);
  REQUIRE(std::holds_alternative<mailbox::users_file_error>(r));
  CHECK(std::get<mailbox::users_file_error>(r).line == 0);
}

TEST_CASE("alias expansion") {
  const mailbox::directory d({"example.test"}, {{"alice@example.test", ""}, {"bob@example.test", ""}, {"carol@example.test", ""}},
                             {{"team@example.test", {"alice@example.test", "staff@example.test"}},
                              {"staff@example.test", {"bob@example.test", "alice@example.test"}},
                              {"keep@example.test", {"keep@example.test", "bob@example.test"}},
                              {"alice@example.test", {"alice@example.test", "alice@remote.test"}},
                              {"a@example.test", {"b@example.test"}},
                              {"b@example.test", {"c@example.test"}},
                              {"c@example.test", {"a@example.test"}},
                              {"dangling@example.test", {"ghost@example.test"}}},
                             {});
  using problem = mailbox::directory::expansion::problem;
  auto e = d.expand(addr("team@example.test"));
  CHECK(e.error == problem::none);
  CHECK(e.local == std::vector<std::string>{"alice@example.test", "bob@example.test"});  // each once
  CHECK(e.remote == std::vector<std::string>{"alice@remote.test"});
  e = d.expand(addr("bob+x@example.test"));
  CHECK(e.local == std::vector<std::string>{"bob@example.test"});
  e = d.expand(addr("a@example.test"));
  CHECK(e.error == problem::loop);
  CHECK(e.local.empty());
  e = d.expand(addr("dangling@example.test"));
  CHECK(e.error == problem::unknown);
  e = d.expand(addr("nobody@example.test"));
  CHECK(e.error == problem::unknown);
  e = d.expand(addr("x@remote.test"));
  CHECK(e.remote == std::vector<std::string>{"x@remote.test"});
}

TEST_CASE("catch-all takes unknown users of its domain") {
  const mailbox::directory d({"example.test", "other.test"}, {{"alice@example.test", ""}}, {},
                             {{"example.test", "alice@example.test"}});
  CHECK(d.exists(addr("anyone@example.test")));
  CHECK_FALSE(d.exists(addr("anyone@other.test")));
  const auto e = d.expand(addr("anyone@example.test"));
  CHECK(e.local == std::vector<std::string>{"alice@example.test"});
}

TEST_CASE("which senders a user owns") {
  const mailbox::directory d({"example.test"}, {{"alice@example.test", ""}, {"bob@example.test", ""}},
                             {{"sales@example.test", {"alice@example.test", "bob@example.test"}},
                              {"boss@example.test", {"bob@example.test"}}},
                             {});
  CHECK(d.owns("alice@example.test", addr("alice@example.test")));
  CHECK(d.owns("ALICE@example.test", addr("alice+x@Example.test")));
  CHECK(d.owns("alice@example.test", addr("sales@example.test")));
  CHECK_FALSE(d.owns("alice@example.test", addr("boss@example.test")));
  CHECK_FALSE(d.owns("alice@example.test", addr("bob@example.test")));
  CHECK_FALSE(d.owns("alice@example.test", smtp::address{}));
}
