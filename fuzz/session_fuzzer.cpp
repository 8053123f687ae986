// Feeds random byte streams to the server state machine through its event
// interface, in fuzzer-chosen pieces, and checks its invariants: every reply
// line is "ddd" + ' ' or '-' and ends in CRLF; no message is enqueued without
// a sender transaction and at least one recipient; nothing happens after close.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/session.hpp"

namespace {

void check_output(const std::string& out) {
  std::size_t pos = 0;
  while (pos < out.size()) {
    const auto eol = out.find("\r\n", pos);
    if (eol == std::string::npos || eol - pos < 4) std::abort();
    for (std::size_t i = pos; i < pos + 3; ++i)
      if (out[i] < '0' || out[i] > '9') std::abort();
    if (out[pos + 3] != ' ' && out[pos + 3] != '-') std::abort();
    if (out.substr(pos, eol - pos).find_first_of("\r\n") != std::string::npos) std::abort();
    pos = eol + 2;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  smtp::session_limits limits;
  limits.max_message_size = 200;
  limits.max_recipients = 3;
  limits.max_errors = 50;
  smtp::session_hooks hooks;
  int n = 0;
  hooks.check_rcpt = [](const smtp::address& a, const std::string&) -> std::optional<smtp::reply> {
    if (a.local == "x") return smtp::make_reply(550, "5.1.1", "no");
    return std::nullopt;
  };
  hooks.next_id = [&] { return "ID" + std::to_string(++n); };
  hooks.now = [] { return std::time_t{0}; };
  smtp::session s({"mx.test", limits}, "192.0.2.1", hooks);
  s.start();
  const std::size_t piece = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string pending;
  while (!in.empty() || !pending.empty()) {
    const auto take = std::min(piece, in.size());
    pending.append(in.substr(0, take));
    in.remove_prefix(take);
    while (true) {
      const auto used = s.consume(pending);
      pending.erase(0, used);
      check_output(s.take_output());
      if (s.next() == smtp::action::enqueue) {
        if (!s.has_txn() || s.txn().rcpts.empty() || s.txn().rcpts.size() > 3) std::abort();
        s.enqueued();
        continue;
      }
      if (s.next() == smtp::action::close) return 0;
      if (used == 0) break;
    }
    if (in.empty()) break;
  }
  return 0;
}
