#pragma once
// The index page at "/": the media in storage, with a player. (The full library UI replaces it.)
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.hpp"

namespace mediagate::server {

std::string html_escape(std::string_view s);
std::string render_index_page(const std::vector<storage::listed_object>& objects);

}  // namespace mediagate::server
