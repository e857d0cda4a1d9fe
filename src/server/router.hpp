#pragma once
// Dispatch of one request to its handler: media, the library (API, uploads, /v/{id}, the page), health
// and metrics. A function from a request to a response; the connection does the rest.
#include <boost/asio/awaitable.hpp>

#include "server/request.hpp"
#include "server/response.hpp"
#include "server/services.hpp"

namespace mediagate::server {

boost::asio::awaitable<response> handle_request(const request& req, services& svc);

}  // namespace mediagate::server
