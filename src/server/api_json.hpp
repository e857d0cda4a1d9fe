#pragma once
// JSON views of catalog items for the API.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string>

#include "catalog/media_item.hpp"

namespace mediagate::server {

boost::json::object item_json(const catalog::media_item& item);

// The API's JSON text: like boost::json::serialize, but numbers with a fraction are printed as plain
// decimals rounded to thousandths ("10.0", "4.967"), never in Boost.JSON's exponent form ("1E1"), which
// is valid JSON but surprises every API user. Non-finite numbers become null.
std::string api_json_text(const boost::json::value& v);

// A double as api_json_text prints it.
std::string plain_decimal(double d);

// "2024-06-01T12:00:00Z"
std::string iso8601_utc(std::int64_t seconds);

}  // namespace mediagate::server
