// The admin HTTP listener (Boost.Beast): reads requests with bounded size and
// time, hands them to http_api, writes the answers. Nothing else.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "mta/http_api.hpp"

namespace mta {

boost::asio::awaitable<void> serve_http(boost::asio::ip::tcp::socket sock, http_api& api, std::string client_ip);

}  // namespace mta
