#include "mta/http_api.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <fstream>
#include <sstream>

#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include "mailbox/maildir.hpp"
#include "mta/console.hpp"
#include "mta/json.hpp"
#include "mta/network.hpp"
#include "queue/admin.hpp"
#include "queue/schedule.hpp"

namespace mta {
namespace fs = std::filesystem;
namespace {

http_response json(int status, std::string body) { return {status, "application/json", std::move(body)}; }
http_response error(int status, std::string_view what) {
  return json(status, fmt::format(R"({{"error":{}}})", json_quote(what)));
}
// The web console's own files: nothing secret, served without the token.
bool is_console_file(const std::string& path) {
  return path == "/" || path == "/index.html" || path == "/app.js" || path == "/style.css";
}

http_response not_allowed(std::string allow) {
  auto r = error(405, "method not allowed; use " + allow);
  r.allow = std::move(allow);
  return r;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const auto pair = q.substr(0, amp);
    const auto eq = pair.find('=');
    out[url_decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

std::vector<std::string> split_path(std::string_view p) {
  std::vector<std::string> parts;
  for (std::size_t start = 1; start <= p.size();) {
    const auto slash = p.find('/', start);
    parts.push_back(url_decode(p.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start)));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

bool is_loopback(const std::string& ip) {
  const auto a = parse_ip(ip);
  return a && (a->v4 ? a->bytes[0] == 127 : (std::all_of(a->bytes.begin(), a->bytes.begin() + 15, [](auto b) { return b == 0; }) && a->bytes[15] == 1));
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The header section of a message, for the message view.
std::string headers_of(const std::string& data) {
  const auto end = data.find("\r\n\r\n");
  return data.substr(0, end == std::string::npos ? data.size() : end + 2);
}

std::string subject_of(const fs::path& file) {
  std::ifstream f(file, std::ios::binary);
  std::string line;
  for (int i = 0; i < 200 && std::getline(f, line); ++i) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    if (line.size() >= 8 && smtp::iequals(line.substr(0, 8), "subject:")) {
      const auto start = line.find_first_not_of(" \t", 8);
      return start == std::string::npos ? std::string() : line.substr(start);
    }
  }
  return {};
}

}  // namespace

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      const auto hex = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

http_api::http_api(const config& cfg, const mailbox::directory& dir, std::string token, metrics_fn metrics)
    : cfg_(cfg), dir_(dir), token_(std::move(token)), metrics_(std::move(metrics)) {}

queue::database& http_api::db() {
  if (!db_) db_ = std::make_unique<queue::database>(cfg_.queue_path(), queue::database::open_mode::create);
  return *db_;
}

http_response http_api::handle(const http_request& r) {
  const auto q = r.target.find('?');
  const std::string path = r.target.substr(0, q);
  const std::string query = q == std::string::npos ? "" : r.target.substr(q + 1);
  // Loopback is trusted like the CLI (unless [http] loopback_needs_token);
  // anyone else needs the bearer token. The console's own files hold nothing
  // secret and are served to anyone, so that it can ask for the token.
  if ((cfg_.http_loopback_needs_token || !is_loopback(r.client_ip)) && !is_console_file(path)) {
    // RFC 6750 §2.1: the scheme is case-insensitive; the token is compared
    // in constant time so that its bytes cannot be guessed from timings.
    const auto sp = r.authorization.find(' ');
    const std::string given = sp == std::string::npos ? "" : r.authorization.substr(sp + 1);
    bool ok = !token_.empty() && sp != std::string::npos && smtp::iequals(r.authorization.substr(0, sp), "Bearer") &&
              given.size() == token_.size();
    unsigned char diff = 0;
    for (std::size_t i = 0; ok && i < token_.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ token_[i]);
    if (!ok || diff != 0) return error(401, "a bearer token is required");
  }
  try {
    return route(r, path, query);
  } catch (const queue::db_error& e) {
    db_.reset();  // reopen on the next request
    return error(503, std::string("queue unavailable: ") + e.what());
  }
}

http_response http_api::route(const http_request& r, const std::string& path, const std::string& query) {
  const auto parts = split_path(path);
  const bool get = r.method == "GET" || r.method == "HEAD";
  if (path == "/healthz") return json(200, R"({"status":"ok"})");
  if (path == "/readyz") {
    // Ready when the queue takes a write lock (disk there, database sound).
    try {
      db().exec("BEGIN IMMEDIATE");
      db().exec("ROLLBACK");
      return json(200, R"({"status":"ready"})");
    } catch (const queue::db_error& e) {
      db_.reset();
      return error(503, e.what());
    }
  }
  if (path == "/metrics") {
    if (!get) return not_allowed("GET, HEAD");
    return {200, "text/plain; version=0.0.4", metrics_ ? metrics_(queue::stats(db())) : ""};
  }
  if (is_console_file(path)) {
    const auto file = console_file(path == "/" ? "/index.html" : path);
    if (!file) return error(404, "no such file");
    return {200, std::string(file->content_type), std::string(file->body)};
  }
  if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1") return error(404, "no such endpoint");
  // A request body, where one is allowed, must be JSON (an empty body is fine).
  if (!r.body.empty()) {
    boost::system::error_code ec;
    boost::json::parse(r.body, ec);
    if (ec) return error(400, "the request body is not valid JSON");
  }
  const auto params = parse_query(query);
  const auto param = [&](const char* k) {
    const auto it = params.find(k);
    return it == params.end() ? std::string() : it->second;
  };

  if (parts[2] == "queue" && parts.size() == 3) {
    if (!get) return not_allowed("GET, HEAD");
    queue::list_filter f;
    f.status = param("status");
    f.sender = param("sender");
    f.recipient = param("recipient");
    f.after = param("cursor");
    std::size_t limit = 100;
    if (const auto l = param("limit"); !l.empty()) {
      const auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), limit);
      if (ec != std::errc{} || p != l.data() + l.size() || limit == 0 || limit > 1000)
        return error(400, "limit must be a number from 1 to 1000");
    }
    static const std::vector<std::string> statuses{"", "queued", "deferred", "delivered", "failed", "held"};
    if (std::find(statuses.begin(), statuses.end(), f.status) == statuses.end())
      return error(400, "status must be queued, deferred, delivered, failed or held");
    f.limit = limit + 1;  // one more tells whether there is a next page
    auto msgs = queue::list_messages(db(), f);
    const bool more = msgs.size() > limit;
    if (more) msgs.pop_back();
    std::string items;
    for (const auto& m : msgs) items += (items.empty() ? "" : ",") + message_json(m);
    const auto next = more ? json_quote(msgs.back().id) : std::string("null");
    return json(200, fmt::format(R"({{"messages":[{}],"next_cursor":{}}})", items, next));
  }
  if (parts[2] == "stats" && parts.size() == 3) {
    if (!get) return not_allowed("GET, HEAD");
    return json(200, stats_json(queue::stats(db())));
  }
  if (parts[2] == "messages" && parts.size() >= 4) {
    const auto& id = parts[3];
    if (parts.size() == 4 && r.method == "DELETE") {
      if (!queue::delete_message(db(), id)) return error(404, "no message with ID " + id);
      return json(200, fmt::format(R"({{"id":{},"result":"deleted"}})", json_quote(id)));
    }
    if (parts.size() == 4 && get) {
      const auto m = queue::find_message(db(), id);
      const auto attempts = queue::attempts_of(db(), id);
      if (!m) {
        if (attempts.empty()) return error(404, "no message with ID " + id);
        return json(200, fmt::format(R"({{"id":{},"in_queue":false,"attempts":{}}})", json_quote(id),
                                     attempts_json(attempts)));
      }
      const auto data = queue::message_data(db(), id).value_or("");
      auto body = message_json(*m);
      body.pop_back();
      return json(200, fmt::format(R"({},"in_queue":true,"attempts":{},"headers":{}}})", body, attempts_json(attempts),
                                   json_quote(headers_of(data))));
    }
    if (parts.size() == 5 && parts[4] == "raw" && get) {
      const auto data = queue::message_data(db(), id);
      if (!data) return error(404, "no message with ID " + id);
      return {200, "message/rfc822", *data};
    }
    if (parts.size() == 5 && r.method == "POST") {
      const auto& action = parts[4];
      bool found = false;
      std::string result;
      if (action == "retry") {
        const auto n = queue::retry_now(db(), id, std::time(nullptr));
        found = n.has_value();
        result = fmt::format("{} recipients scheduled", n.value_or(0));
      } else if (action == "hold") {
        found = queue::set_held(db(), id, true);
        result = "held";
      } else if (action == "release") {
        found = queue::set_held(db(), id, false);
        result = "released";
      } else {
        return error(404, "no such action: " + action);
      }
      if (!found) return error(404, "no message with ID " + id);
      return json(200, fmt::format(R"({{"id":{},"result":{}}})", json_quote(id), json_quote(result)));
    }
    if (parts.size() == 4) return not_allowed("GET, HEAD, DELETE");
    if (parts.size() == 5 && parts[4] == "raw") return not_allowed("GET, HEAD");
    return not_allowed("POST");
  }
  if (parts[2] == "mailboxes" && (parts.size() == 4 || parts.size() == 5)) {
    if (!get) return not_allowed("GET, HEAD");
    const auto addr = smtp::parse_mailbox(parts[3]);
    if (!addr || !dir_.is_local_domain(addr->domain)) return error(404, "not a local address: " + parts[3]);
    const auto name = mailbox::directory::canonical(*addr);
    const auto at = name.find('@');
    const auto box = mailbox::mailbox_path(cfg_.local.mailbox_root, name.substr(0, at), name.substr(at + 1));
    if (box.empty() || !fs::is_directory(box)) return error(404, "no mailbox for " + name);
    if (parts.size() == 5) {
      const auto& file = parts[4];
      if (file.empty() || file.front() == '.' || file.find('/') != std::string::npos) return error(400, "bad file name");
      for (const char* folder : {"new", "cur"})
        if (fs::is_regular_file(box / folder / file)) return {200, "message/rfc822", slurp(box / folder / file)};
      return error(404, "no such message in " + name);
    }
    struct entry {
      std::string file, folder, subject;
      std::uintmax_t size;
      std::int64_t mtime;
      fs::file_time_type exact;  // to order messages of the same second
    };
    std::vector<entry> entries;
    for (const char* folder : {"new", "cur"}) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(box / folder, ec)) {
        if (!e.is_regular_file()) continue;
        const auto t = fs::last_write_time(e.path(), ec);
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::file_clock::to_sys(t).time_since_epoch()).count();
        entries.push_back({e.path().filename().string(), folder, subject_of(e.path()), e.file_size(), secs, t});
      }
    }
    std::sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
      return a.exact != b.exact ? a.exact > b.exact : a.file > b.file;  // newest first
    });
    std::string items;
    for (const auto& e : entries)
      items += fmt::format(R"({}{{"file":{},"folder":{},"size":{},"mtime":{},"subject":{}}})", items.empty() ? "" : ",",
                           json_quote(e.file), json_quote(e.folder), e.size, e.mtime, json_quote(e.subject));
    return json(200, fmt::format(R"({{"address":{},"messages":[{}]}})", json_quote(name), items));
  }
  return error(404, "no such endpoint");
}

}  // namespace mta
