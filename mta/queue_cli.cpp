// Output is for people by default (mailq-like) and for programs with --json.
// Every command says clearly when an ID does not exist and exits non-zero.
#include "mta/queue_cli.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <optional>

#include <fmt/format.h>

#include "mta/json.hpp"
#include "queue/admin.hpp"
#include "queue/schedule.hpp"

namespace mta {
namespace {

std::string age(std::int64_t since, std::int64_t now) {
  const auto s = std::max<std::int64_t>(0, now - since);
  if (s < 120) return fmt::format("{}s", s);
  if (s < 7200) return fmt::format("{}m", s / 60);
  if (s < 172800) return fmt::format("{}h", s / 3600);
  return fmt::format("{}d", s / 86400);
}

std::string utc(std::int64_t t) {
  if (t == 0) return "-";
  const std::time_t tt = t;
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

int list(const queue::database& db, bool json) {
  const auto msgs = queue::list_messages(db);
  if (json) {
    std::string out = "[";
    for (std::size_t i = 0; i < msgs.size(); ++i) out += (i ? ",\n" : "\n") + message_json(msgs[i]);
    fmt::print("{}\n]\n", out);
    return 0;
  }
  if (msgs.empty()) {
    fmt::print("Mail queue is empty\n");
    return 0;
  }
  const auto now = std::time(nullptr);
  std::size_t nrcpt = 0;
  fmt::print("{:<13} {:>9} {:>5}  {}\n", "ID", "SIZE", "AGE", "SENDER / RECIPIENTS");
  for (const auto& m : msgs) {
    // A '!' after the ID marks a held message, as in Postfix's mailq.
    fmt::print("{:<13} {:>9} {:>5}  <{}>\n", m.id + (m.held ? "!" : ""), m.size, age(m.received_at, now), m.sender);
    for (const auto& r : m.rcpts) {
      fmt::print("{:31}{:<10} <{}>{}\n", "", r.status, r.address, r.last_reply.empty() ? "" : " (" + r.last_reply + ")");
      ++nrcpt;
    }
  }
  fmt::print("-- {} message{}, {} recipient{}\n", msgs.size(), msgs.size() == 1 ? "" : "s", nrcpt, nrcpt == 1 ? "" : "s");
  return 0;
}

void print_attempts(const std::vector<queue::attempt_row>& attempts) {
  fmt::print("Attempts:\n");
  if (attempts.empty()) fmt::print("  none yet\n");
  for (const auto& a : attempts)
    fmt::print("  {} <{}> {} relay={} ({})\n", utc(a.at), a.address, a.status, a.relay, a.reply);
}

int show(const queue::database& db, const std::string& id, bool body, bool json) {
  const auto m = queue::find_message(db, id);
  const auto data = m ? queue::message_data(db, id) : std::nullopt;
  const auto attempts = queue::attempts_of(db, id);
  if ((!m || !data) && !attempts.empty() && !body) {
    // Finished and removed from the queue; its history is kept for a while.
    if (json) {
      fmt::print(R"({{"id":{},"in_queue":false,"attempts":{}}})" "\n", json_quote(id), attempts_json(attempts));
      return 0;
    }
    fmt::print("ID:          {} (no longer in the queue: every recipient is final)\n", id);
    print_attempts(attempts);
    return 0;
  }
  if (!m || !data) {
    fmt::print(stderr, "tern: no message with ID {}\n", id);
    return 1;
  }
  if (body) {
    std::fwrite(data->data(), 1, data->size(), stdout);
    return 0;
  }
  if (json) {
    auto j = message_json(*m);
    j.pop_back();  // add the history to the object
    fmt::print("{},\"in_queue\":true,\"attempts\":{}}}\n", j, attempts_json(attempts));
    return 0;
  }
  fmt::print("ID:          {}{}\n", m->id, m->held ? " (held)" : "");
  fmt::print("Received:    {} from [{}] (HELO {})\n", utc(m->received_at), m->client_ip, m->helo);
  fmt::print("Sender:      <{}>\n", m->sender);
  fmt::print("Size:        {}\n", m->size);
  if (!m->body_type.empty() || m->smtputf8) fmt::print("Body:        {}{}\n", m->body_type, m->smtputf8 ? " SMTPUTF8" : "");
  if (!m->ret.empty() || !m->envid.empty()) fmt::print("DSN:         RET={} ENVID={}\n", m->ret, m->envid);
  fmt::print("Recipients:\n");
  for (const auto& r : m->rcpts) {
    fmt::print("  <{}> {} attempts={} next={}", r.address, r.status, r.attempts, utc(r.next_attempt));
    if (!r.notify.empty()) fmt::print(" NOTIFY={}", r.notify);
    if (!r.orcpt.empty()) fmt::print(" ORCPT={}", r.orcpt);
    fmt::print("\n");
    if (!r.last_reply.empty()) fmt::print("      last reply: {}\n", r.last_reply);
  }
  print_attempts(attempts);
  // The header section ends at the first empty line (RFC 5322 §2.1).
  auto end = data->find("\r\n\r\n");
  const std::string_view headers(data->data(), end == std::string::npos ? data->size() : end + 2);
  fmt::print("Headers:\n");
  std::size_t pos = 0;
  while (pos < headers.size()) {
    auto eol = headers.find('\n', pos);
    if (eol == std::string_view::npos) eol = headers.size();
    auto line = headers.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fmt::print("  {}\n", line);
    pos = eol + 1;
  }
  return 0;
}

int stats(const queue::database& db, bool json) {
  const auto s = queue::stats(db);
  if (json) {
    fmt::print("{}\n", stats_json(s));
    return 0;
  }
  fmt::print("messages:   {}\nheld:       {}\nbytes:      {}\n", s.messages, s.held, s.bytes);
  fmt::print("oldest:     {}\n", s.oldest_received_at ? age(s.oldest_received_at, std::time(nullptr)) : "-");
  for (const auto& [k, v] : s.recipients_by_status) fmt::print("{:<11} {}\n", k + ":", v);
  return 0;
}

int usage() {
  fmt::print(stderr,
             "usage: tern queue list [--json]\n"
             "       tern queue show ID [--body | --json]\n"
             "       tern queue delete ID...\n"
             "       tern queue hold ID...\n"
             "       tern queue release ID...\n"
             "       tern queue retry ID... | --all\n"
             "       tern queue stats [--json]\n");
  return 2;
}

}  // namespace

int queue_command(const config& cfg, const std::vector<std::string>& args) {
  if (args.empty()) return usage();
  const auto& cmd = args[0];
  std::vector<std::string> ids;
  bool json = false, body = false, all = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--json") json = true;
    else if (args[i] == "--body") body = true;
    else if (args[i] == "--all") all = true;
    else if (args[i].starts_with("--")) return usage();
    else ids.push_back(args[i]);
  }
  try {
    queue::database db(cfg.queue_path(), queue::database::open_mode::existing);
    if (cmd == "list" && ids.empty()) return list(db, json);
    if (cmd == "stats" && ids.empty()) return stats(db, json);
    if (cmd == "show" && ids.size() == 1) return show(db, ids[0], body, json);
    if (cmd == "retry" && (all ? ids.empty() : !ids.empty())) {
      if (all) {
        fmt::print("{} recipients scheduled for immediate delivery\n", *queue::retry_now(db, std::nullopt, std::time(nullptr)));
        return 0;
      }
    }
    int rc = 0;
    if ((cmd == "delete" || cmd == "hold" || cmd == "release" || cmd == "retry") && !ids.empty()) {
      for (const auto& id : ids) {
        bool found = false;
        std::string done;
        if (cmd == "delete") { found = queue::delete_message(db, id); done = "deleted"; }
        else if (cmd == "hold") { found = queue::set_held(db, id, true); done = "held"; }
        else if (cmd == "release") { found = queue::set_held(db, id, false); done = "released"; }
        else {
          const auto n = queue::retry_now(db, id, std::time(nullptr));
          found = n.has_value();
          if (n) done = fmt::format("{} recipients scheduled for immediate delivery", *n);
        }
        if (found) {
          fmt::print("{}: {}\n", id, done);
        } else {
          fmt::print(stderr, "tern: no message with ID {}\n", id);
          rc = 1;
        }
      }
      return rc;
    }
    return usage();
  } catch (const queue::db_error& e) {
    fmt::print(stderr, "tern: {}\n", e.what());
    return 1;
  }
}

}  // namespace mta
