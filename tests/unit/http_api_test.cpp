// The admin API as a function (mta::http_api::handle), no sockets: who may
// call it (loopback freely, anyone else with the bearer token), a few routes
// on a fresh queue, and url_decode. The integration test (test_http_api.py)
// can only reach the listener over lo, so the refusal of non-loopback clients
// is checked here for every kind of address.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "mailbox/directory.hpp"
#include "mta/config.hpp"
#include "mta/http_api.hpp"

namespace fs = std::filesystem;

namespace {

struct temp_dir {
  temp_dir() {
    path = fs::temp_directory_path() /
           fs::path("tern-http-api-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  fs::path path;
  static inline int counter = 0;
};

struct fixture {
  explicit fixture(std::string token = "secret") {
    cfg.data_dir = tmp.path / "var";
    fs::create_directories(cfg.data_dir);
    cfg.local.mailbox_root = tmp.path / "mail";
    api = std::make_unique<mta::http_api>(cfg, dir, std::move(token),
                                          [](const queue::queue_stats& s) {
                                            return "tern_queue_messages " + std::to_string(s.messages) + "\n";
                                          });
  }
  mta::http_response call(const std::string& client_ip, const std::string& authorization = "",
                          const std::string& target = "/healthz", const std::string& method = "GET",
                          const std::string& body = "") {
    return api->handle({method, target, body, client_ip, authorization});
  }
  temp_dir tmp;
  mta::config cfg;
  mailbox::directory dir{{"example.test"}, {{"bob@example.test", ""}}, {}};
  std::unique_ptr<mta::http_api> api;
};

}  // namespace

TEST_CASE("a non-loopback client needs the bearer token") {
  fixture f;
  for (const char* ip : {"192.0.2.1", "10.0.0.1", "128.0.0.1", "::ffff:192.0.2.1", "2001:db8::1", "::2", "::",
                         "fe80::1", "0.0.0.0", "", "not an address"}) {
    INFO(ip);
    for (const char* auth : {"", "Bearer", "Bearer ", "Bearer wrong", "Bearer secretx", "Bearer secre", "secret",
                             "Basic secret", "Bearer  secret", " Bearer secret"}) {
      INFO(auth);
      const auto r = f.call(ip, auth);
      CHECK(r.status == 401);
      CHECK(r.content_type == "application/json");
      CHECK(r.body.find("\"error\"") != std::string::npos);
    }
    const auto ok = f.call(ip, "Bearer secret");
    CHECK(ok.status == 200);
    CHECK(ok.body == R"({"status":"ok"})");
    CHECK(f.call(ip, "bearer secret").status == 200);  // the scheme is case-insensitive (RFC 7235 §2.1)
  }
  // Refused before routing: an action on the queue is not even looked at.
  CHECK(f.call("192.0.2.1", "", "/api/v1/messages/X", "DELETE").status == 401);
  CHECK(f.call("192.0.2.1", "", "/metrics").status == 401);
  // The console's own files hold nothing secret: it must load to ask for the token.
  for (const char* file : {"/", "/index.html", "/app.js", "/style.css"}) CHECK(f.call("192.0.2.1", "", file).status == 200);
  CHECK(f.call("192.0.2.1", "", "/favicon.ico").status == 401);
  CHECK(f.call("192.0.2.1", "Bearer secret", "/api/v1/messages/X", "DELETE").status == 404);
}

TEST_CASE("loopback clients need no token") {
  fixture f;
  for (const char* ip : {"127.0.0.1", "127.0.0.5", "127.255.255.254", "::1", "::ffff:127.0.0.1"}) {
    INFO(ip);
    for (const char* auth : {"", "Bearer wrong", "Bearer secret"}) {
      INFO(auth);
      CHECK(f.call(ip, auth).status == 200);
    }
  }
}

TEST_CASE("with loopback_needs_token, loopback clients need the token too") {
  fixture f;
  f.cfg.http_loopback_needs_token = true;
  for (const char* ip : {"127.0.0.1", "::1", "192.0.2.1"}) {
    INFO(ip);
    CHECK(f.call(ip, "").status == 401);
    CHECK(f.call(ip, "Bearer wrong").status == 401);
    CHECK(f.call(ip, "", "/api/v1/queue").status == 401);
    CHECK(f.call(ip, "Bearer secret").status == 200);
    CHECK(f.call(ip, "Bearer secret", "/api/v1/queue").status == 200);
    CHECK(f.call(ip, "", "/app.js").status == 200);
  }
}

TEST_CASE("without a token, no non-loopback client gets in") {
  fixture f("");
  CHECK(f.call("192.0.2.1", "").status == 401);
  CHECK(f.call("192.0.2.1", "Bearer ").status == 401);
  CHECK(f.call("192.0.2.1", "Bearer").status == 401);
  CHECK(f.call("127.0.0.5", "").status == 200);
  CHECK(f.call("::1", "").status == 200);
}

TEST_CASE("routes on an empty queue") {
  fixture f;
  auto r = f.call("127.0.0.1", "", "/readyz");
  CHECK(r.status == 200);
  CHECK(r.body == R"({"status":"ready"})");
  r = f.call("127.0.0.1", "", "/api/v1/queue");
  CHECK(r.status == 200);
  CHECK(r.body == R"({"messages":[],"next_cursor":null})");
  r = f.call("127.0.0.1", "", "/api/v1/stats");
  CHECK(r.status == 200);
  CHECK(r.body ==
        R"({"messages":0,"held":0,"bytes":0,"oldest_received_at":0,"recipients":{},"deferred_by_domain":{}})");
  r = f.call("127.0.0.1", "", "/metrics");
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; version=0.0.4");
  CHECK(r.body == "tern_queue_messages 0\n");
  CHECK(f.call("127.0.0.1", "", "/api/v1/queue?limit=0").status == 400);
  CHECK(f.call("127.0.0.1", "", "/api/v1/queue?limit=1001").status == 400);
  CHECK(f.call("127.0.0.1", "", "/api/v1/queue?limit=1000").status == 200);
  CHECK(f.call("127.0.0.1", "", "/api/v1/queue?status=nope").status == 400);
  CHECK(f.call("127.0.0.1", "", "/api/v1/queue?status=held").status == 200);
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE").status == 404);
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE/raw").status == 404);
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE", "DELETE").status == 404);
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE/hold", "POST").status == 404);
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE/hold", "POST", "not json").status == 400);
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE/hold", "POST", "{}").status == 404);
  CHECK(f.call("127.0.0.1", "", "/api/v1/queue", "POST").status == 405);
  CHECK(f.call("127.0.0.1", "", "/api/v1/queue", "POST").allow == "GET, HEAD");
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE", "PUT").status == 405);
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE", "PUT").allow == "GET, HEAD, DELETE");
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE/raw", "DELETE").allow == "GET, HEAD");
  CHECK(f.call("127.0.0.1", "", "/api/v1/messages/NOPE/hold", "GET").allow == "POST");
  CHECK(f.call("127.0.0.1", "", "/metrics", "POST").status == 405);
  CHECK(f.call("127.0.0.1", "", "/metrics", "POST").allow == "GET, HEAD");
  CHECK(f.call("127.0.0.1", "", "/api/v1/nothing").status == 404);
  CHECK(f.call("127.0.0.1", "", "/api/v1/mailboxes/bob@remote.test").status == 404);
  CHECK(f.call("127.0.0.1", "", "/api/v1/mailboxes/bob@example.test").status == 404);  // no mail yet
  auto page = f.call("127.0.0.1", "", "/");
  CHECK(page.status == 200);
  CHECK(page.content_type == "text/html; charset=utf-8");
}

TEST_CASE("a mailbox listing: newest first, with subjects") {
  fixture f;
  const auto box = f.cfg.local.mailbox_root / "example.test" / "bob";
  for (const char* sub : {"new", "cur", "tmp"}) fs::create_directories(box / sub);
  const auto put = [&](const char* folder, const char* name, const std::string& text, int age) {
    std::ofstream(box / folder / name, std::ios::binary) << text;
    fs::last_write_time(box / folder / name, fs::file_time_type::clock::now() - std::chrono::seconds(age));
  };
  put("new", "1.M1P1Q1.host,S=1", "Subject: old\r\n\r\nx\r\n", 100);
  put("cur", "2.M2P1Q2.host,S=1:2,S", "From: a@b\r\nSUBJECT:   newer\r\n\r\nx\r\n", 50);
  put("new", "3.M3P1Q3.host,S=1", "From: a@b\r\n\r\nSubject: in the body\r\n", 10);
  const auto entry = [&](const char* folder, const char* name, const char* subject) {
    const auto p = box / folder / name;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::file_clock::to_sys(fs::last_write_time(p)).time_since_epoch());
    return std::string(R"({"file":")") + name + R"(","folder":")" + folder + R"(","size":)" +
           std::to_string(fs::file_size(p)) + R"(,"mtime":)" + std::to_string(secs.count()) + R"(,"subject":")" +
           subject + "\"}";
  };
  // Any case and a sub-address name the same mailbox.
  const auto r = f.call("127.0.0.1", "", "/api/v1/mailboxes/Bob%2Bnews@Example.test");
  REQUIRE(r.status == 200);
  CHECK(r.body == R"({"address":"bob@example.test","messages":[)" + entry("new", "3.M3P1Q3.host,S=1", "") + "," +
                      entry("cur", "2.M2P1Q2.host,S=1:2,S", "newer") + "," + entry("new", "1.M1P1Q1.host,S=1", "old") +
                      "]}");
  const auto one = f.call("127.0.0.1", "", "/api/v1/mailboxes/bob@example.test/2.M2P1Q2.host%2CS%3D1%3A2%2CS");
  CHECK(one.status == 200);
  CHECK(one.content_type == "message/rfc822");
  CHECK(one.body == "From: a@b\r\nSUBJECT:   newer\r\n\r\nx\r\n");
  CHECK(f.call("127.0.0.1", "", "/api/v1/mailboxes/bob@example.test/..").status == 400);
  CHECK(f.call("127.0.0.1", "", "/api/v1/mailboxes/bob@example.test/a%2Fb").status == 400);
  CHECK(f.call("127.0.0.1", "", "/api/v1/mailboxes/bob@example.test/nope").status == 404);
}

// Known server bug: subject_of() calls line.substr(line.find_first_not_of(' ', 8))
// and a header "Subject: " with nothing but spaces after the colon makes that
// substr(npos), which throws std::out_of_range out of handle(): the HTTP
// session ends without an answer.
TEST_CASE("a blank Subject: header lists as an empty subject") {
  fixture f;
  const auto box = f.cfg.local.mailbox_root / "example.test" / "bob";
  for (const char* sub : {"new", "cur", "tmp"}) fs::create_directories(box / sub);
  std::ofstream(box / "new" / "1.M1P1Q1.host,S=1", std::ios::binary) << "Subject: \r\n\r\nx\r\n";
  mta::http_response r;
  REQUIRE_NOTHROW(r = f.call("127.0.0.1", "", "/api/v1/mailboxes/bob@example.test"));
  CHECK(r.status == 200);
  CHECK(r.body.find(R"("subject":"")") != std::string::npos);
}

// Known server bug: two files delivered in the same second are ordered by
// file name, descending, but Maildir names carry the microseconds without
// leading zeros ("M95000" sorts above "M120000"), so the older one comes
// first.
TEST_CASE("newest first within one second") {
  fixture f;
  const auto box = f.cfg.local.mailbox_root / "example.test" / "bob";
  for (const char* sub : {"new", "cur", "tmp"}) fs::create_directories(box / sub);
  const auto second = std::chrono::time_point_cast<std::chrono::seconds>(fs::file_time_type::clock::now());
  const auto put = [&](const char* name, const char* subject, std::chrono::microseconds usec) {
    std::ofstream(box / "new" / name, std::ios::binary) << "Subject: " << subject << "\r\n\r\nx\r\n";
    fs::last_write_time(box / "new" / name, second + usec);
  };
  put("1700000000.M95000P1Q1.host,S=1", "older", std::chrono::microseconds(95000));
  put("1700000000.M120000P1Q2.host,S=1", "newer", std::chrono::microseconds(120000));
  const auto r = f.call("127.0.0.1", "", "/api/v1/mailboxes/bob@example.test");
  REQUIRE(r.status == 200);
  CHECK(r.body.find("\"newer\"") < r.body.find("\"older\""));
}

TEST_CASE("url_decode") {
  CHECK(mta::url_decode("") == "");
  CHECK(mta::url_decode("%41b+c") == "Ab c");
  CHECK(mta::url_decode("bob%40example.test") == "bob@example.test");
  CHECK(mta::url_decode("a%2Fb%2fc") == "a/b/c");
  CHECK(mta::url_decode("%e2%82%AC") == "\xe2\x82\xac");
  CHECK(mta::url_decode("%00") == std::string(1, '\0'));
  CHECK(mta::url_decode("%2B") == "+");
  CHECK(mta::url_decode("++") == "  ");
  CHECK(mta::url_decode("100%") == "100%");
  CHECK(mta::url_decode("%4") == "%4");
  CHECK(mta::url_decode("%") == "%");
  CHECK(mta::url_decode("%%41") == "%A");
  CHECK(mta::url_decode("%zz") == "%zz");
  CHECK(mta::url_decode("%4g") == "%4g");
  CHECK(mta::url_decode("%g4") == "%g4");
  CHECK(mta::url_decode("%2541") == "%41");  // one level only
  CHECK(mta::url_decode("a%20b%41") == "a bA");
}

// Known server bug: std::from_chars into an int accepts a minus sign, so "%-1"
// decodes to the octet 0xff instead of staying "%-1".
TEST_CASE("url_decode leaves a signed escape alone") {
  CHECK(mta::url_decode("%-1") == "%-1");
  CHECK(mta::url_decode("%-f") == "%-f");
}
