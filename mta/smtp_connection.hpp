// One SMTP connection: a coroutine that reads octets, feeds them to an
// smtp::session and carries out what the session asks for.
#pragma once

#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "mta/server_context.hpp"

namespace mta {

using tcp_socket = boost::asio::ip::tcp::socket;

// Runs the conversation to its end. The caller has admitted the connection in
// ctx.connections; this leaves it when done.
boost::asio::awaitable<void> serve_smtp(tcp_socket sock, server_context& ctx, std::string ip, role r);

// Answers a connection that is over a limit with one 421 line and closes it.
boost::asio::awaitable<void> refuse_smtp(tcp_socket sock, std::string reply_line);

}  // namespace mta
