// A TCP socket whose reads and writes can be given a deadline: when the timer
// fires first, the socket's pending operations are cancelled and timed_out is
// set. Shared with the timer's handler (held weakly) so that a handler that
// runs late never touches a destroyed socket. Used by the server sessions and
// the SMTP client alike.
#pragma once

#include <chrono>
#include <memory>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace delivery {

struct timed_socket : std::enable_shared_from_this<timed_socket> {
  explicit timed_socket(boost::asio::ip::tcp::socket s) : sock(std::move(s)), timer(sock.get_executor()) {}

  void arm(std::chrono::steady_clock::duration d) {
    timed_out = false;
    timer.expires_after(d);
    timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!ec && self) {
        self->timed_out = true;
        self->sock.cancel();
      }
    });
  }
  void disarm() { timer.cancel(); }
  void close() {
    boost::system::error_code ec;
    sock.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    sock.close(ec);
  }

  boost::asio::ip::tcp::socket sock;
  boost::asio::steady_timer timer;
  bool timed_out = false;
};

}  // namespace delivery
