// Delivery to other mail servers: find the destination (the transport table,
// else the domain's MX records, else its A/AAAA as an implicit MX), then try
// each server in turn until every recipient has a final word or none is left.
// Runs its own io_context thread (c-ares and the SMTP client are Asio code):
// every delivery is a coroutine there, started by the scheduler's dispatcher,
// which learns the outcome through a callback; no thread waits for one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "delivery/outcome.hpp"
#include "delivery/route.hpp"
#include "delivery/smtp_client.hpp"

namespace delivery {

class resolver;

struct remote_config {
  client_config client;
  std::string hostname;                          // ours: an MX with this name is a loop
  std::uint16_t port = 25;                       // where remote servers listen
  std::map<std::string, std::string> transports; // domain (or "*") -> "[host]:port" or "host:port"
  std::vector<std::string> dns_servers;          // "127.0.0.1:5353"; empty: /etc/resolv.conf
  std::vector<std::string> self;                 // our own listening "ip:port": delivering there is a loop
  // Connections at once to one destination (a domain, or its transport), as
  // Postfix's default_destination_concurrency_limit: one slow site must not
  // take every connection, nor should we flood it.
  unsigned per_destination_concurrency = 20;
  // A connection is kept this long after a transaction for the next message
  // to the same server, for at most this many messages (0 s: never kept).
  std::chrono::seconds connection_idle{5};
  unsigned connection_reuse_limit = 100;
};


// Received: headers in the header section; past 50 a message is looping (RFC 5321 §6.3).
std::size_t count_received(std::string_view message);

class remote_delivery {
 public:
  using log_fn = std::function<void(std::string_view)>;
  remote_delivery(remote_config cfg, log_fn log);
  ~remote_delivery();
  remote_delivery(const remote_delivery&) = delete;
  remote_delivery& operator=(const remote_delivery&) = delete;

  // Called on the delivery thread with one outcome per recipient, in order;
  // with none if the delivery ended in an unexpected error (logged), whose
  // recipients are then tried again when their lease expires.
  using done_fn = std::function<void(std::vector<outcome>)>;
  // Starts delivering `msg` (whose data is `data`; all recipients share
  // `domain`) and returns at once. After stop(), `done` is never called for
  // a delivery still in flight: there is no outcome to record, and the next
  // start-up releases the lease so the recipients are tried at once.
  void deliver(std::string domain, client_message msg, std::shared_ptr<const std::string> data, std::string queue_id,
               done_fn done);
  // Abandons deliveries in flight (shutdown must not wait for SMTP timeouts).
  void stop();

 private:
  // Owned by pointer so that the destructor can destroy it (and with it any
  // coroutine left suspended by stop()) while the members those coroutines
  // refer to (busy_, cache_, resolver_) still exist.
  std::unique_ptr<boost::asio::io_context> ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<resolver> resolver_;
  std::unique_ptr<connection_cache> cache_;
  remote_config cfg_;
  log_fn log_;
  std::map<std::string, unsigned> busy_;  // destination -> connections in use; loop thread only
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace delivery
