#include "delivery/smtp_errors.hpp"

#include <fmt/format.h>

namespace delivery {
namespace {

outcome with_relay(outcome o, const std::string& relay) {
  o.relay = relay;
  return o;
}

outcome from_reply(const smtp::reply& r, const std::string& relay) {
  const auto status = r.permanent() ? queue::rcpt_status::failed
                      : r.positive() ? queue::rcpt_status::delivered
                                     : queue::rcpt_status::deferred;
  smtp::reply copy = r;
  // A server that gives no enhanced code still gets a DSN status (RFC 3463 §3.1).
  if (copy.status.empty()) copy.status = r.permanent() ? "5.0.0" : r.positive() ? "2.0.0" : "4.0.0";
  return {status, copy, relay, {}, false};
}

}  // namespace

bool protocol_error(const attempt& a) {
  if (a.io_error) return a.detail.rfind("protocol error", 0) == 0;
  return a.reply && !a.local_refusal && a.reply->code < 400 && !(a.at == stage::greeting && a.reply->code == 220);
}

std::vector<std::optional<outcome>> classify(const attempt& a, std::size_t nrcpt, const std::string& relay,
                                             bool last_server) {
  std::vector<std::optional<outcome>> out(nrcpt);
  // Recipients the server answered keep that answer unless it was a 2xx: those
  // depend on how the rest of the transaction went.
  for (std::size_t i = 0; i < nrcpt && i < a.rcpt_replies.size(); ++i)
    if (a.rcpt_replies[i] && !a.rcpt_replies[i]->positive()) out[i] = from_reply(*a.rcpt_replies[i], relay);

  if (a.complete) {
    for (std::size_t i = 0; i < nrcpt; ++i) {
      if (out[i]) continue;
      if (a.final_reply && (a.final_reply->positive() || a.final_reply->code >= 400))
        out[i] = from_reply(*a.final_reply, relay);
      else
        out[i] = with_relay(deferred(451, "4.5.0", "protocol error: unexpected reply to end of data"), relay);
    }
    return out;
  }

  // The session ended early: decide for every recipient not yet decided.
  std::optional<outcome> all;
  const bool soft_or_next = !last_server;
  if (a.io_error) {
    if (a.at == stage::dot) {
      // The server may have the message: another server would duplicate it for certain.
      all = with_relay(deferred(451, "4.4.2", a.detail), relay);
    } else if (!soft_or_next) {
      all = with_relay(a.at == stage::connect ? deferred(451, "4.4.1", a.detail) : deferred(451, "4.4.2", a.detail),
                       relay);
    }
  } else if (a.reply) {
    const auto& r = *a.reply;
    if (protocol_error(a)) {
      if (!soft_or_next)
        all = with_relay(deferred(451, "4.5.0", fmt::format("protocol error while {}: {}", describe(a.at), r.summary())),
                         relay);
    } else if (r.permanent() && a.at != stage::greeting) {
      all = from_reply(r, relay);  // MAIL, DATA, HELO 5xx, or a local hard refusal: the message cannot go
    } else if (!soft_or_next) {
      // 4xx anywhere, or a 5xx greeting (another MX may take it), at the last server.
      all = from_reply(r, relay);
    }
  }
  for (auto& o : out)
    if (!o && all) o = all;
  return out;
}

}  // namespace delivery
