// The server side of an SMTP conversation as a plain object (sans I/O): it is
// fed the octets the client sent and produces reply octets and actions for
// its owner to carry out (read more, enqueue the message, close). It never
// touches a socket, a clock or the queue; those arrive through session_hooks,
// so every path can be unit tested and fuzzed.
#pragma once

#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smtp/command.hpp"
#include "smtp/data_decoder.hpp"
#include "smtp/reply.hpp"

namespace smtp {

struct session_limits {
  std::size_t max_message_size = 36700160;  // SIZE, RFC 1870
  std::size_t max_recipients = 100;         // RFC 5321 §4.5.3.1.8 asks for at least 100
  std::size_t max_errors = 20;              // then 421, like Postfix's smtpd_hard_error_limit
  std::size_t max_junk_commands = 100;      // NOOP/RSET/VRFY/HELP without a transaction
};

struct session_config {
  std::string hostname;
  session_limits limits;
  bool starttls = false;       // a certificate is loaded: offer STARTTLS (RFC 3207)
  bool tls_active = false;     // implicit TLS (port 465, RFC 8314): already encrypted
  bool auth = false;           // offer AUTH PLAIN/LOGIN, only ever inside TLS (RFC 4954)
  bool auth_required = false;  // submission (RFC 6409 §4.3): MAIL needs AUTH first
};

struct recipient {
  address addr;
  rcpt_params params;
};

// Created by MAIL, dropped by RSET, HELO/EHLO, an error or a successful enqueue.
struct transaction {
  std::string id;  // queue ID, assigned at MAIL so that every log line can carry it
  address sender;
  mail_params params;
  std::vector<recipient> rcpts;
  std::size_t rcpt_commands = 0;  // RCPT attempts, to tell "need RCPT" from "no valid recipients"
  std::string message;            // Received: header, then the message as the client sent it
  std::size_t body_size = 0;      // octets the client sent, the figure compared with SIZE
  std::size_t trace_size = 0;     // octets of our Received: header at the front of `message`
  bool bdat = false;              // CHUNKING in use; DATA is then refused (RFC 3030 §2)
};

struct session_hooks {
  // Decides on a syntactically valid recipient: nullopt accepts it, a reply
  // refuses it. `authenticated` is the AUTH identity, empty without AUTH.
  std::function<std::optional<reply>(const address& rcpt, const std::string& authenticated)> check_rcpt;
  // Checks a password; only ever called inside TLS.
  std::function<bool(const std::string& user, const std::string& password)> authenticate;
  // May this authenticated user send as this envelope sender? nullopt: yes.
  std::function<std::optional<reply>(const address& sender, const std::string& user)> check_sender;
  std::function<std::string()> next_id;
  std::function<std::time_t()> now;
  std::function<void(std::string_view line)> log;  // mail-log lines; may be empty
};

enum class action { read, enqueue, close, starttls };
std::string_view to_string(action a);

class session {
 public:
  session(session_config cfg, std::string client_ip, session_hooks hooks);

  void start();  // queues the 220 greeting

  // Processes as much of `in` as it can and returns the octets consumed. It
  // stops early when an action other than read is due, or when enough reply
  // text has piled up that the owner should write it out first. Input that is
  // not consumed must be offered again later.
  std::size_t consume(std::string_view in);

  action next() const { return action_; }
  bool in_data() const { return mode_ == mode::data || mode_ == mode::bdat; }
  const std::string& output() const { return output_; }
  std::string take_output();

  // For action::enqueue: the message to store, then one of the two calls below.
  transaction& txn() { return txn_.value(); }
  bool has_txn() const { return txn_.has_value(); }
  const std::string& helo() const { return helo_; }
  const std::string& client_ip() const { return client_ip_; }
  void enqueued();
  void enqueue_failed(const reply& r);

  void timed_out();      // 421 4.4.2, then close
  void shutting_down();  // 421 4.3.2, then close

  // For action::starttls, after the handshake: everything from before is
  // forgotten (RFC 3207 §4.2); the client must say EHLO again. The owner must
  // also drop every octet it read before the handshake.
  void tls_started(std::string info);
  void tls_failed();  // the handshake failed: the connection is closed
  bool in_tls() const { return tls_; }
  const std::string& authenticated() const { return auth_user_; }
  // True once per failed AUTH: the owner may slow the client down before
  // answering (brute force must be slow) or end it with too_many_auth_failures().
  bool take_auth_failure() { return std::exchange(auth_failed_, false); }
  void too_many_auth_failures();

 private:
  enum class mode { command, skip_line, data, bdat, auth_plain, auth_login_user, auth_login_password };

  void handle_line(std::string_view line);
  void on_helo(const command& c, bool esmtp);
  void on_mail(const command& c);
  void on_rcpt(const command& c);
  void on_data();
  void on_bdat(const command& c);
  void on_junk(const reply& r);
  void on_starttls();
  void on_auth(const command& c);
  void on_auth_response(std::string_view line);
  void finish_auth(const std::string& user, const std::string& password);
  std::string protocol() const;
  void finish_data();
  void complete_submission();
  void finish_chunk();
  void start_message();

  void send(const reply& r);
  void send_error(const reply& r);  // counts towards max_errors
  void close_with(const reply& r);
  void reset_txn() { txn_.reset(); decoder_.reset(); }
  void log(std::string_view what);

  session_config cfg_;
  std::string client_ip_;
  session_hooks hooks_;

  action action_ = action::read;
  mode mode_ = mode::command;
  std::string output_;
  std::string helo_;
  bool esmtp_ = false;
  std::size_t errors_ = 0;
  std::size_t junk_ = 0;

  std::optional<transaction> txn_;
  std::optional<data_decoder> decoder_;
  std::uint64_t bdat_remaining_ = 0;
  bool bdat_last_ = false;
  std::optional<reply> bdat_refusal_;  // a refused BDAT still has its chunk read (RFC 3030 §2)

  bool tls_ = false;
  std::string tls_info_;
  std::string auth_user_;
  std::string login_user_;  // AUTH LOGIN: the user name, between its two steps
  bool auth_failed_ = false;
};

}  // namespace smtp
