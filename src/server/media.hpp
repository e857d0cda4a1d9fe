#pragma once
// The media handler: GET and HEAD of one stored object with every rule of RFC 9110 (DESIGN.md steps 1-4).
#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "server/request.hpp"
#include "server/response.hpp"
#include "server/services.hpp"
#include "server/spliced_reader.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {

// /media/<encoded key>: internal objects (hidden path components: posters, upload temporaries) are 404.
boost::asio::awaitable<response> serve_media(const request& req, services& svc, std::string_view encoded_key);

// The object at `key` (decoded, validated and, when it needs one, its signed link checked), for /media/ and
// the catalog's /v/{id}. `private_link`: the request came through a signed link (Cache-Control: private).
boost::asio::awaitable<response> serve_media_key(const request& req, services& svc, std::string key,
                                                 bool private_link = false);

// A resource generated from a stored object (an HLS playlist, init or media segment): `layout`'s literal
// bytes and runs of the object at version `meta`, planned with every rule the object itself gets (validators,
// 304, ranges, HEAD). `etag` must be strong and change with the object's version and the generator.
struct generated_resource {
  std::string key;
  storage::object_meta meta;
  std::shared_ptr<const spliced_layout> layout;
  std::string etag;
  std::string content_type;
};
boost::asio::awaitable<response> serve_generated(const request& req, services& svc, generated_resource res,
                                                 bool private_link);

// A storage failure as a text response (404, 502, ...), logged when it is the server's side.
response storage_error_response(const request& req, services& svc, std::string_view what, const error& err);

}  // namespace mediagate::server
