// Maildir naming and delivery into a real temporary directory, and local
// delivery's classification of what can go wrong.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

#include "delivery/local_delivery.hpp"
#include "mailbox/maildir.hpp"

namespace fs = std::filesystem;

namespace {

struct temp_dir {
  temp_dir() : path(fs::temp_directory_path() / ("tern-maildir-" + std::to_string(::getpid()) + "-" + std::to_string(n++))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  fs::path path;
  static inline int n = 0;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<fs::path> files(const fs::path& dir) {
  std::vector<fs::path> out;
  if (fs::exists(dir))
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

}  // namespace

TEST_CASE("maildir file names as Dovecot reads them") {
  CHECK(mailbox::maildir_name(1700000000, 123456, 42, 7, "mx.example.test", 1000) ==
        "1700000000.M123456P42Q7.mx.example.test,S=1000");
  CHECK(mailbox::maildir_name(1, 2, 3, 4, "a/b:c", 5) == "1.M2P3Q4.a\\057b\\072c,S=5");
}

TEST_CASE("mailbox paths never leave the root") {
  const fs::path root = "/var/mail";
  CHECK(mailbox::mailbox_path(root, "alice", "example.test") == "/var/mail/example.test/alice");
  CHECK(mailbox::mailbox_path(root, "..", "example.test").empty());
  CHECK(mailbox::mailbox_path(root, ".hidden", "example.test").empty());
  CHECK(mailbox::mailbox_path(root, "a/b", "example.test").empty());
  CHECK(mailbox::mailbox_path(root, "", "example.test").empty());
  CHECK(mailbox::mailbox_path(root, "alice", "..").empty());
}

TEST_CASE("a delivery lands in new/, complete, with tmp/ left empty") {
  temp_dir d;
  const std::string data = "Subject: x\r\n\r\n8bit \xe9\r\n.leading dot\r\n";
  const auto r = mailbox::deliver_maildir(d.path / "bob", "mx.example.test", "Return-Path: <a@b.c>\r\n", data);
  REQUIRE(std::holds_alternative<fs::path>(r));
  const auto p = std::get<fs::path>(r);
  CHECK(p.parent_path() == d.path / "bob" / "new");
  CHECK(slurp(p) == "Return-Path: <a@b.c>\r\n" + data);
  const auto name = p.filename().string();
  CHECK(name.substr(name.find(",S=") + 3) == std::to_string(fs::file_size(p)));
  CHECK(files(d.path / "bob" / "tmp").empty());
  CHECK(fs::is_directory(d.path / "bob" / "cur"));
  const auto r2 = mailbox::deliver_maildir(d.path / "bob", "mx.example.test", "", data);
  REQUIRE(std::holds_alternative<fs::path>(r2));
  CHECK(std::get<fs::path>(r2) != p);  // unique names
  CHECK(files(d.path / "bob" / "new").size() == 2);
}

TEST_CASE("a maildir that cannot be created reports the OS error") {
  temp_dir d;
  std::ofstream(d.path / "file") << "x";
  const auto r = mailbox::deliver_maildir(d.path / "file" / "bob", "h", "", "x");
  REQUIRE(std::holds_alternative<mailbox::maildir_error>(r));
  CHECK(std::get<mailbox::maildir_error>(r).code == ENOTDIR);
}

TEST_CASE("local delivery outcomes") {
  temp_dir d;
  const mailbox::directory dir({"example.test"}, {{"alice@example.test", ""}, {"bob@example.test", ""}},
                               {{"team@example.test", {"alice@example.test", "bob@example.test"}},
                                {"loop1@example.test", {"loop2@example.test"}},
                                {"loop2@example.test", {"loop1@example.test"}},
                                {"fwd@example.test", {"alice@example.test", "x@remote.test"}}});
  const delivery::local_delivery local(dir, d.path, "mx.example.test");

  auto o = local.deliver("alice+tag@example.test", "s@example.test", "body\r\n");
  CHECK(o.status == queue::rcpt_status::delivered);
  CHECK(o.reply.lines.front() == "delivered to maildir");
  const auto got = files(d.path / "example.test" / "alice" / "new");
  REQUIRE(got.size() == 1);
  CHECK(slurp(got[0]) == "Return-Path: <s@example.test>\r\nDelivered-To: alice@example.test\r\nbody\r\n");

  o = local.deliver("team@example.test", "", "x\r\n");
  CHECK(o.status == queue::rcpt_status::delivered);
  CHECK(files(d.path / "example.test" / "bob" / "new").size() == 1);
  CHECK(slurp(files(d.path / "example.test" / "bob" / "new")[0]).rfind("Return-Path: <>\r\n", 0) == 0);

  o = local.deliver("gone@example.test", "s@example.test", "x");
  CHECK(o.status == queue::rcpt_status::failed);
  CHECK(o.reply.status == "5.1.1");

  o = local.deliver("loop1@example.test", "s@example.test", "x");
  CHECK(o.status == queue::rcpt_status::failed);
  CHECK(o.reply.status == "5.4.6");

  o = local.deliver("fwd@example.test", "s@example.test", "x");
  CHECK(o.status == queue::rcpt_status::delivered);
  CHECK(o.forward == std::vector<std::string>{"x@remote.test"});

  const delivery::local_delivery missing(dir, d.path / "nope", "mx.example.test");
  o = missing.deliver("alice@example.test", "s@example.test", "x");
  CHECK(o.status == queue::rcpt_status::deferred);
  CHECK(o.reply.status == "4.3.0");
  CHECK_FALSE(fs::exists(d.path / "nope"));  // not silently recreated
}
