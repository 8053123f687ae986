// The SMTP server state machine (RFC 5321 §4.1, §4.3.2 for the command order,
// RFC 2920 PIPELINING, RFC 3030 CHUNKING). Replies and enhanced status codes
// follow Postfix where an RFC leaves the text open, so operators see familiar
// wording.
#include "smtp/session.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "smtp/received.hpp"
#include "smtp/sasl.hpp"

namespace smtp {
namespace {

// Reply text waiting to be written is capped so that a client that pipelines
// without reading cannot make us buffer unbounded output.
constexpr std::size_t max_pending_output = 64 * 1024;

std::string sender_str(const address& a) { return "<" + a.str() + ">"; }

}  // namespace

std::string_view to_string(action a) {
  switch (a) {
    case action::read: return "read";
    case action::enqueue: return "enqueue";
    case action::close: return "close";
    case action::starttls: return "starttls";
  }
  return "?";
}

session::session(session_config cfg, std::string client_ip, session_hooks hooks)
    : cfg_(std::move(cfg)), client_ip_(std::move(client_ip)), hooks_(std::move(hooks)), tls_(cfg_.tls_active) {}

void session::start() { send(reply{220, "", {cfg_.hostname + " ESMTP"}}); }

std::string session::take_output() {
  std::string out;
  out.swap(output_);
  return out;
}

void session::log(std::string_view what) {
  if (hooks_.log) hooks_.log(what);
}

void session::send(const reply& r) { output_ += r.wire(); }

void session::send_error(const reply& r) {
  send(r);
  if (++errors_ >= cfg_.limits.max_errors)
    close_with(make_reply(421, "4.7.0", cfg_.hostname + " Error: too many errors"));
}

void session::close_with(const reply& r) {
  send(r);
  action_ = action::close;
  reset_txn();
}

void session::timed_out() { close_with(make_reply(421, "4.4.2", cfg_.hostname + " Error: timeout exceeded")); }

void session::shutting_down() {
  close_with(make_reply(421, "4.3.2", cfg_.hostname + " Service shutting down, try again later"));
}

std::size_t session::consume(std::string_view in) {
  std::size_t used = 0;
  while (action_ == action::read && used < in.size() && output_.size() < max_pending_output) {
    const auto rest = in.substr(used);
    switch (mode_) {
      case mode::command:
      case mode::auth_plain:
      case mode::auth_login_user:
      case mode::auth_login_password: {
        // A command line may be 512 octets (RFC 5321 §4.5.3.1.4), an AUTH
        // response 12288 (RFC 4954 §4).
        const bool auth = mode_ != mode::command;
        const std::size_t limit = auth ? 12288 : max_command_line;
        const auto lf = rest.find('\n');
        if (lf == std::string_view::npos) {
          if (rest.size() < limit) return used;  // wait for the rest of the line
          // No line end within the limit: refuse, then drop the rest of this line.
          used += rest.size();
          mode_ = mode::skip_line;
          send_error(auth ? make_reply(500, "5.5.6", "Error: authentication response too long")
                          : make_reply(500, "5.5.2", "Error: line too long"));
          break;
        }
        auto line = rest.substr(0, lf);
        used += lf + 1;
        // A line ending in a bare LF (plain nc) is taken as CRLF, as Postfix
        // does; in DATA a bare LF is never a line end (see data_decoder).
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (auth)
          on_auth_response(line);
        else
          handle_line(line);
        break;
      }
      case mode::skip_line: {
        const auto lf = rest.find('\n');
        if (lf == std::string_view::npos) {
          used += rest.size();
        } else {
          used += lf + 1;
          mode_ = mode::command;
        }
        break;
      }
      case mode::data: {
        const auto r = decoder_->feed(rest);
        used += r.consumed;
        if (r.st == data_decoder::status::done) {
          finish_data();
        } else if (r.st == data_decoder::status::bare_lf) {
          log(fmt::format("reject: bare LF in DATA from [{}]", client_ip_));
          close_with(make_reply(521, "5.5.2", "Error: bare LF in message; send CRLF line endings (nc -C)"));
        } else if (r.st == data_decoder::status::bare_cr) {
          log(fmt::format("reject: bare CR in DATA from [{}]", client_ip_));
          close_with(make_reply(521, "5.5.2", "Error: bare CR in message; send CRLF line endings"));
        }
        break;
      }
      case mode::bdat: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(bdat_remaining_, rest.size()));
        if (!bdat_refusal_ && txn_) {
          txn_->body_size += n;
          if (txn_->body_size <= cfg_.limits.max_message_size) txn_->message.append(rest.substr(0, n));
        }
        used += n;
        bdat_remaining_ -= n;
        if (bdat_remaining_ == 0) finish_chunk();
        break;
      }
    }
  }
  return used;
}

void session::handle_line(std::string_view line) {
  auto parsed = parse_command(line);
  if (auto* err = std::get_if<reply>(&parsed)) {
    send_error(*err);
    return;
  }
  const auto& c = std::get<command>(parsed);
  switch (c.v) {
    case verb::helo: on_helo(c, false); break;
    case verb::ehlo: on_helo(c, true); break;
    case verb::mail: on_mail(c); break;
    case verb::rcpt: on_rcpt(c); break;
    case verb::data: on_data(); break;
    case verb::bdat: on_bdat(c); break;
    case verb::rset:
      reset_txn();
      on_junk(make_reply(250, "2.0.0", "Ok"));
      break;
    case verb::noop: on_junk(make_reply(250, "2.0.0", "Ok")); break;
    // VRFY never says whether a user exists (no directory harvesting).
    case verb::vrfy: on_junk(make_reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")); break;
    case verb::help:
      on_junk(reply{214, "2.0.0", {"Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT", "See RFC 5321"}});
      break;
    case verb::quit: close_with(make_reply(221, "2.0.0", "Bye")); break;
    case verb::expn: send_error(make_reply(502, "5.5.1", "Error: EXPN not supported")); break;
    case verb::starttls: on_starttls(); break;
    case verb::auth: on_auth(c); break;
    case verb::unknown: send_error(make_reply(500, "5.5.2", "Error: command not recognized")); break;
  }
}

void session::on_junk(const reply& r) {
  if (++junk_ > cfg_.limits.max_junk_commands) {
    close_with(make_reply(421, "4.7.0", cfg_.hostname + " Error: too many commands without mail"));
    return;
  }
  send(r);
}

void session::on_helo(const command& c, bool esmtp) {
  reset_txn();  // RFC 5321 §4.1.4: EHLO/HELO also reset the transaction
  helo_ = c.arg;
  esmtp_ = esmtp;
  if (!esmtp) {
    send(reply{250, "", {cfg_.hostname}});
    return;
  }
  reply r{250,
          "",
          {cfg_.hostname, "PIPELINING", fmt::format("SIZE {}", cfg_.limits.max_message_size), "8BITMIME",
           "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "DSN", "HELP"}};
  if (cfg_.starttls && !tls_) r.lines.push_back("STARTTLS");
  // RFC 4954 §4 allows AUTH in the clear; we never offer it there (passwords).
  if (cfg_.auth && tls_ && auth_user_.empty()) r.lines.push_back("AUTH PLAIN LOGIN");
  send(r);
}

void session::on_mail(const command& c) {
  if (helo_.empty()) return send_error(make_reply(503, "5.5.1", "Error: send HELO/EHLO first"));
  if (txn_) return send_error(make_reply(503, "5.5.1", "Error: nested MAIL command"));
  if (!esmtp_ && c.mail.any()) return send_error(make_reply(555, "5.5.4", "Error: parameters need EHLO"));
  if (c.mail.size && *c.mail.size > cfg_.limits.max_message_size)
    return send_error(make_reply(552, "5.3.4", "Error: message size exceeds fixed limit"));
  if (!c.path.ascii() && !c.mail.smtputf8)
    return send_error(make_reply(553, "5.6.7", "Error: non-ASCII sender needs SMTPUTF8"));
  if (cfg_.auth_required && auth_user_.empty())
    return send_error(make_reply(530, "5.7.0", "Authentication required"));
  if (!auth_user_.empty() && hooks_.check_sender) {
    if (auto refusal = hooks_.check_sender(c.path, auth_user_)) {
      log(fmt::format("reject: MAIL from [{}]: {}; from=<{}> sasl_username={}", client_ip_, refusal->summary(),
                      c.path.str(), auth_user_));
      return send_error(*refusal);
    }
  }
  txn_.emplace();
  txn_->id = hooks_.next_id();
  txn_->sender = c.path;
  txn_->params = c.mail;
  log(fmt::format("{}: client=[{}]", txn_->id, client_ip_));
  send(make_reply(250, "2.1.0", "Ok"));
}

void session::on_rcpt(const command& c) {
  if (!txn_) return send_error(make_reply(503, "5.5.1", "Error: need MAIL command"));
  ++txn_->rcpt_commands;
  if (!esmtp_ && c.rcpt.any()) return send_error(make_reply(555, "5.5.4", "Error: parameters need EHLO"));
  // RFC 5321 §4.5.3.1.10: too many recipients is a temporary condition (452).
  if (txn_->rcpts.size() >= cfg_.limits.max_recipients)
    return send(make_reply(452, "4.5.3", "Error: too many recipients"));
  if (!c.path.ascii() && !txn_->params.smtputf8)
    return send_error(make_reply(553, "5.6.7", "Error: non-ASCII recipient needs SMTPUTF8"));
  if (auto refusal = hooks_.check_rcpt ? hooks_.check_rcpt(c.path, auth_user_) : std::nullopt) {
    log(fmt::format("{}: reject: RCPT from [{}]: {}; from={} to=<{}>", txn_->id, client_ip_, refusal->summary(),
                    sender_str(txn_->sender), c.path.str()));
    return send_error(*refusal);
  }
  const bool dup = std::any_of(txn_->rcpts.begin(), txn_->rcpts.end(),
                               [&](const recipient& r) { return iequals(r.addr.str(), c.path.str()); });
  if (!dup) txn_->rcpts.push_back({c.path, c.rcpt});
  send(make_reply(250, "2.1.5", "Ok"));
}

void session::start_message() {
  trace_info t;
  t.helo = helo_;
  t.client_ip = client_ip_;
  t.by_host = cfg_.hostname;
  t.protocol = protocol();
  t.tls = tls_info_;
  t.id = txn_->id;
  if (txn_->rcpts.size() == 1) t.for_rcpt = txn_->rcpts.front().addr.str();
  t.when = hooks_.now ? hooks_.now() : 0;
  txn_->message = received_header(t);
  txn_->trace_size = txn_->message.size();
}

namespace {

bool has_header(std::string_view message, std::string_view name) {
  const auto end = message.find("\r\n\r\n");
  const auto headers = message.substr(0, end == std::string_view::npos ? message.size() : end + 2);
  std::size_t pos = 0;
  while (pos < headers.size()) {
    if (headers.size() - pos > name.size() && iequals(headers.substr(pos, name.size()), name) &&
        headers[pos + name.size()] == ':')
      return true;
    const auto eol = headers.find('\n', pos);
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return false;
}

}  // namespace

// RFC 6409 §8.1, §8.3: a submission server may add a missing Date: and Message-ID:.
void session::complete_submission() {
  if (!cfg_.auth_required || !txn_) return;
  const std::string_view body = std::string_view(txn_->message).substr(txn_->trace_size);
  std::string add;
  if (!has_header(body, "Date")) add += "Date: " + rfc5322_date(hooks_.now ? hooks_.now() : 0) + "\r\n";
  if (!has_header(body, "Message-ID")) add += fmt::format("Message-ID: <{}@{}>\r\n", txn_->id, cfg_.hostname);
  txn_->message.insert(txn_->trace_size, add);
}

void session::on_data() {
  if (!txn_) return send_error(make_reply(503, "5.5.1", "Error: need MAIL command"));
  if (txn_->bdat) return send_error(make_reply(503, "5.5.1", "Error: DATA after BDAT"));
  if (txn_->rcpts.empty()) {
    // RFC 2920 §3.1: with pipelining, DATA after only refused RCPTs gets 554.
    if (txn_->rcpt_commands > 0) return send_error(make_reply(554, "5.5.1", "Error: no valid recipients"));
    return send_error(make_reply(503, "5.5.1", "Error: need RCPT command"));
  }
  start_message();
  // The body limit is counted apart from our Received: header.
  decoder_.emplace(txn_->message, cfg_.limits.max_message_size);
  mode_ = mode::data;
  send(reply{354, "", {"End data with <CR><LF>.<CR><LF>"}});
}

void session::finish_data() {
  mode_ = mode::command;
  txn_->body_size = decoder_->size();
  if (decoder_->overflow()) {
    log(fmt::format("{}: reject: message too large ({} octets) from [{}]", txn_->id, txn_->body_size, client_ip_));
    reset_txn();
    return send_error(make_reply(552, "5.3.4", "Error: message size exceeds fixed limit"));
  }
  decoder_.reset();
  complete_submission();
  action_ = action::enqueue;
}

void session::on_bdat(const command& c) {
  bdat_remaining_ = c.chunk_size;
  bdat_last_ = c.last;
  bdat_refusal_.reset();
  if (!txn_) bdat_refusal_ = make_reply(503, "5.5.1", "Error: need MAIL command");
  else if (txn_->rcpts.empty()) bdat_refusal_ = make_reply(503, "5.5.1", "Error: need RCPT command");
  if (!bdat_refusal_ && !txn_->bdat) {
    txn_->bdat = true;
    start_message();
  }
  mode_ = mode::bdat;
  if (bdat_remaining_ == 0) finish_chunk();
}

void session::finish_chunk() {
  mode_ = mode::command;
  if (bdat_refusal_) {
    const auto r = *bdat_refusal_;
    bdat_refusal_.reset();
    return send_error(r);
  }
  if (txn_->body_size > cfg_.limits.max_message_size) {
    // RFC 3030 §2: the transaction is over; later chunks get 503 until a new MAIL.
    log(fmt::format("{}: reject: message too large from [{}]", txn_->id, client_ip_));
    reset_txn();
    return send_error(make_reply(552, "5.3.4", "Error: message size exceeds fixed limit"));
  }
  if (!bdat_last_) return send(make_reply(250, "2.0.0", fmt::format("{} octets received", txn_->body_size)));
  complete_submission();
  action_ = action::enqueue;
}

// RFC 3848 / RFC 6531 §3.7.3: S for TLS, A for AUTH.
std::string session::protocol() const {
  if (!esmtp_) return "SMTP";
  std::string p = txn_ && txn_->params.smtputf8 ? "UTF8SMTP" : "ESMTP";
  if (tls_) p += "S";
  if (!auth_user_.empty()) p += "A";
  return p;
}

void session::on_starttls() {
  if (!cfg_.starttls || tls_) {
    // RFC 3207 §4.2: not offered, or a second STARTTLS inside TLS.
    return send_error(make_reply(tls_ ? 503 : 502, "5.5.1", tls_ ? "Error: TLS already active" : "Error: command not implemented"));
  }
  send(make_reply(220, "2.0.0", "Ready to start TLS"));
  action_ = action::starttls;
}

void session::tls_started(std::string info) {
  // RFC 3207 §4.2: discard all knowledge obtained from the client before TLS.
  tls_ = true;
  tls_info_ = std::move(info);
  helo_.clear();
  esmtp_ = false;
  auth_user_.clear();
  reset_txn();
  mode_ = mode::command;
  action_ = action::read;
}

void session::tls_failed() {
  action_ = action::close;
  reset_txn();
}

void session::too_many_auth_failures() {
  close_with(make_reply(421, "4.7.0", cfg_.hostname + " Error: too many failed authentication attempts"));
}

void session::on_auth(const command& c) {
  if (!cfg_.auth) return send_error(make_reply(503, "5.5.1", "Error: authentication not enabled"));
  if (!tls_) return send_error(make_reply(538, "5.7.11", "Encryption required for requested authentication mechanism"));
  if (helo_.empty()) return send_error(make_reply(503, "5.5.1", "Error: send EHLO first"));
  if (!auth_user_.empty()) return send_error(make_reply(503, "5.5.1", "Error: already authenticated"));
  if (txn_) return send_error(make_reply(503, "5.5.1", "Error: MAIL transaction in progress"));
  const auto sp = c.arg.find(' ');
  std::string mech = c.arg.substr(0, sp);
  for (auto& ch : mech) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::string initial = sp == std::string::npos ? "" : c.arg.substr(sp + 1);
  if (mech == "PLAIN") {
    mode_ = mode::auth_plain;
    if (initial.empty()) return send(reply{334, "", {""}});
    return on_auth_response(initial == "=" ? "" : initial);
  }
  if (mech == "LOGIN") {
    mode_ = mode::auth_login_user;
    if (initial.empty()) return send(reply{334, "", {"VXNlcm5hbWU6"}});  // "Username:"
    return on_auth_response(initial);
  }
  send_error(make_reply(504, "5.5.4", "Error: unsupported authentication mechanism"));
}

void session::on_auth_response(std::string_view line) {
  const auto step = mode_;
  mode_ = mode::command;
  if (line == "*") return send_error(make_reply(501, "5.7.0", "Authentication aborted"));
  const auto decoded = base64_decode(line);
  if (!decoded) return send_error(make_reply(501, "5.5.2", "Error: malformed authentication response"));
  if (step == mode::auth_plain) {
    const auto creds = parse_plain(*decoded);
    // An authorization identity other than the user is not supported.
    if (!creds || (!creds->authzid.empty() && creds->authzid != creds->authcid))
      return finish_auth("", "");
    return finish_auth(creds->authcid, creds->password);
  }
  if (step == mode::auth_login_user) {
    login_user_ = *decoded;
    mode_ = mode::auth_login_password;
    return send(reply{334, "", {"UGFzc3dvcmQ6"}});  // "Password:"
  }
  const std::string user = std::exchange(login_user_, {});
  finish_auth(user, *decoded);
}

void session::finish_auth(const std::string& user, const std::string& password) {
  if (!user.empty() && !password.empty() && hooks_.authenticate && hooks_.authenticate(user, password)) {
    auth_user_ = user;
    log(fmt::format("[{}]: sasl_method=AUTH, sasl_username={}", client_ip_, user));
    return send(make_reply(235, "2.7.0", "Authentication successful"));
  }
  // The user name goes to the log (who is being guessed); the password never does.
  log(fmt::format("warning: [{}]: authentication failed for {}", client_ip_, user.empty() ? "(malformed)" : user));
  auth_failed_ = true;
  send_error(make_reply(535, "5.7.8", "Error: authentication failed"));
}

void session::enqueued() {
  send(make_reply(250, "2.0.0", "Ok: queued as " + txn_->id));
  reset_txn();
  junk_ = 0;
  action_ = action::read;
}

void session::enqueue_failed(const reply& r) {
  send(r);
  reset_txn();
  action_ = action::read;
}

}  // namespace smtp
