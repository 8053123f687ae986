#include "mta/http_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace mta {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr std::size_t max_body = 64 * 1024;  // the API takes small JSON bodies only
constexpr std::size_t max_header = 16 * 1024;
constexpr auto request_timeout = std::chrono::seconds(30);

}  // namespace

net::awaitable<void> serve_http(net::ip::tcp::socket sock, http_api& api, std::string client_ip) {
  beast::tcp_stream stream(std::move(sock));
  beast::flat_buffer buf;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(max_body);
    parser.header_limit(max_header);
    stream.expires_after(request_timeout);
    auto [ec, n] = co_await http::async_read(stream, buf, parser, net::as_tuple(net::use_awaitable));
    if (ec) {
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        http::response<http::string_body> res{http::status::payload_too_large, 11};
        res.set(http::field::content_type, "application/json");
        res.body() = R"({"error":"request too large"})";
        res.prepare_payload();
        res.keep_alive(false);
        stream.expires_after(request_timeout);
        co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
      }
      break;  // end of stream, timeout, or garbage: close
    }
    const auto& req = parser.get();
    http_request r{std::string(req.method_string()), std::string(req.target()), req.body(), client_ip,
                   std::string(req[http::field::authorization])};
    auto out = api.handle(r);
    http::response<http::string_body> res{static_cast<http::status>(out.status), req.version()};
    res.set(http::field::server, "tern");
    res.set(http::field::content_type, out.content_type);
    res.set(http::field::cache_control, "no-store");
    if (out.status == 401) res.set(http::field::www_authenticate, "Bearer");
    if (!out.allow.empty()) res.set(http::field::allow, out.allow);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(out.body);
    res.prepare_payload();
    // HEAD: the same headers, Content-Length included, and no body (RFC 9110 §9.3.2).
    if (req.method() == http::verb::head) {
      http::response<http::empty_body> head{res.result(), res.version()};
      for (const auto& f : res) head.set(f.name_string(), f.value());
      head.keep_alive(res.keep_alive());
      stream.expires_after(request_timeout);
      http::response_serializer<http::empty_body> sr{head};
      sr.split(true);
      auto [hec, hn] = co_await http::async_write_header(stream, sr, net::as_tuple(net::use_awaitable));
      if (hec || !head.keep_alive()) break;
      continue;
    }
    stream.expires_after(request_timeout);
    auto [wec, wn] = co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
    if (wec || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
}

}  // namespace mta
