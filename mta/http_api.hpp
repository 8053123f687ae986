// The admin HTTP API as a function from request to response: routing, access
// control, JSON. No sockets here (http_server.cpp carries the bytes), so every
// route can be tested directly. Queue reads and writes go through queue/admin,
// the same functions `tern queue` uses.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "mailbox/directory.hpp"
#include "mta/config.hpp"
#include "queue/admin.hpp"
#include "queue/database.hpp"

namespace mta {

struct http_request {
  std::string method;  // "GET", "POST", "DELETE"
  std::string target;  // "/api/v1/queue?status=deferred"
  std::string body;
  std::string client_ip;
  std::string authorization;  // the Authorization header, if any
};

struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // With 405: the methods the resource takes (RFC 9110 §15.5.6). The {} lets
  // the replies that have none leave it out without -Wmissing-field-initializers.
  std::string allow{};
};

class http_api {
 public:
  // `metrics` renders the Prometheus text (counters live with their owners);
  // `token` is the bearer token for non-loopback clients (empty: refuse them).
  using metrics_fn = std::function<std::string(const queue::queue_stats&)>;
  http_api(const config& cfg, const mailbox::directory& dir, std::string token, metrics_fn metrics);
  http_response handle(const http_request& r);

 private:
  http_response route(const http_request& r, const std::string& path, const std::string& query);
  queue::database& db();

  const config& cfg_;
  const mailbox::directory& dir_;
  std::string token_;
  metrics_fn metrics_;
  std::unique_ptr<queue::database> db_;  // opened on first use, used from one thread
};

// "%41b+c" -> "Ab c" (application/x-www-form-urlencoded query values).
std::string url_decode(std::string_view s);

}  // namespace mta
