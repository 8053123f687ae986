// Boost.JSON compiled once, here (header-only use), for http_api's body check.
#include <boost/json/src.hpp>
