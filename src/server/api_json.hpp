#pragma once
// JSON views of catalog items for the API.
#include <boost/json/object.hpp>
#include <string>

#include "catalog/media_item.hpp"

namespace mediagate::server {

boost::json::object item_json(const catalog::media_item& item);

// "2024-06-01T12:00:00Z"
std::string iso8601_utc(std::int64_t seconds);

}  // namespace mediagate::server
