// Boost.Asio (and its OpenSSL layer) is compiled once, here
// (BOOST_ASIO_SEPARATE_COMPILATION), rather than in every translation unit
// that includes it.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
