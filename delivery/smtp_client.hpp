// One SMTP client transaction with one server (RFC 5321 §3.3, §4.5.3.2
// timeouts): EHLO (HELO on 5xx), STARTTLS when offered, then MAIL, RCPT…,
// DATA — pipelined when the server offers PIPELINING — and QUIT. It reports
// what happened (an `attempt`); deciding what that means for each recipient
// is smtp_errors' job, not this file's.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "smtp/reply.hpp"

namespace delivery {

enum class tls_mode { none, may, encrypt };

struct client_config {
  std::string helo_name;
  tls_mode tls = tls_mode::may;
  // RFC 5321 §4.5.3.2 minimums; connect as Postfix's smtp_connect_timeout.
  std::chrono::seconds connect_timeout{30};
  std::chrono::seconds greeting_timeout{300};
  std::chrono::seconds command_timeout{300};
  std::chrono::seconds data_init_timeout{120};
  std::chrono::seconds data_block_timeout{180};
  std::chrono::seconds data_done_timeout{600};
  // Local address of outbound connections by family; unset: the kernel's choice.
  std::optional<boost::asio::ip::address> source_v4, source_v6;
};

struct client_rcpt {
  std::string address;
  std::string notify;
  std::string orcpt;
};

struct client_message {
  std::string sender;
  std::vector<client_rcpt> rcpts;
  std::string_view data;
  bool smtputf8 = false;   // the message needs SMTPUTF8 (RFC 6531)
  bool eight_bit = false;  // BODY=8BITMIME was given on receipt
  std::string ret;
  std::string envid;
};

enum class stage { connect, greeting, ehlo, helo, starttls, mail, rcpt, data, dot, done };
// Postfix-style words for logs: "timeout while sending RCPT TO".
std::string_view describe(stage s);

// What happened on one connection. When `complete` is false, the session
// ended early at `at`: with a reply (`reply`) or without one (`io_error`).
struct attempt {
  bool complete = false;
  stage at = stage::connect;
  bool io_error = false;
  std::string detail;                      // io error text, or a local reason (size, SMTPUTF8, TLS)
  std::optional<smtp::reply> reply;        // the reply that ended the session early
  bool local_refusal = false;              // we stopped: a precondition failed; `reply` says which
  std::vector<std::optional<smtp::reply>> rcpt_replies;  // per recipient, when the server answered
  std::optional<smtp::reply> final_reply;  // the reply to the end of data
  bool tls = false;
  std::string tls_info;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"
  bool reused = false;   // ran on a cached connection
  bool dsn = false;      // the server offers DSN: NOTIFY/ORCPT went with the recipients
  std::vector<std::string> transcript;  // the conversation, for protocol errors in the log
};

struct connection;

// Connections kept open after a transaction, for the next message to the same
// server (bounded: idle time and transactions per connection). Loop thread only.
class connection_cache {
 public:
  connection_cache(std::chrono::seconds idle, unsigned max_transactions);
  ~connection_cache();
  connection_cache(const connection_cache&) = delete;
  connection_cache& operator=(const connection_cache&) = delete;

  std::unique_ptr<connection> take(const boost::asio::ip::tcp::endpoint& ep);
  void put(const boost::asio::ip::tcp::endpoint& ep, std::unique_ptr<connection> c);
  void clear();
  std::size_t size() const;

 private:
  static std::string key(const boost::asio::ip::tcp::endpoint& ep);
  std::chrono::seconds idle_;
  unsigned max_transactions_;
  std::map<std::string, std::vector<std::unique_ptr<connection>>> parked_;
};

// With a cache, a parked connection to `server` is used when there is one,
// and the connection is parked again after a complete transaction.
boost::asio::awaitable<attempt> smtp_transaction(const boost::asio::ip::tcp::endpoint& server,
                                                 const std::string& server_name, const client_config& cfg,
                                                 const client_message& msg, connection_cache* cache = nullptr);

}  // namespace delivery
