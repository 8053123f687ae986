// DNS for delivery: MX records (RFC 5321 §5.1) and host addresses, through
// c-ares driven by the Asio event loop (no thread per lookup, no blocking
// call). Answers are cached up to their TTL. Use from one io_context thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

namespace delivery {

enum class dns_status {
  ok,
  nxdomain,   // the name does not exist: permanent
  no_data,    // the name exists but has no record of that type
  null_mx,    // "MX 0 ." (RFC 7505): the domain accepts no mail
  temporary,  // SERVFAIL, timeout, refused: try later
};

struct mx_host {
  std::string name;
  unsigned preference = 0;
};

struct mx_answer {
  dns_status status = dns_status::temporary;
  std::vector<mx_host> hosts;  // sorted by preference, equal preferences shuffled
  std::string detail;
};

struct address_answer {
  dns_status status = dns_status::temporary;
  std::vector<boost::asio::ip::address> addresses;  // IPv4 first, then IPv6
  std::string detail;
};

class resolver {
 public:
  // `servers`: "127.0.0.1:5353"-style entries; empty uses /etc/resolv.conf.
  resolver(boost::asio::io_context& ioc, const std::vector<std::string>& servers);
  ~resolver();
  resolver(const resolver&) = delete;
  resolver& operator=(const resolver&) = delete;

  boost::asio::awaitable<mx_answer> mx(std::string domain);
  boost::asio::awaitable<address_answer> addresses(std::string host);

  struct impl;

 private:
  std::shared_ptr<impl> impl_;  // shared with pending handlers, which hold it weakly
};

}  // namespace delivery
