#pragma once
// The web page's files, compiled into the binary (see embed_files.cmake).
#include <span>
#include <string>
#include <string_view>

namespace mediagate::ui {

struct embedded_file {
  std::string_view name;  // "index.html", "app.js", ...
  std::string_view bytes;
};

// Every embedded file (defined in the generated source).
std::span<const embedded_file> embedded_files();

struct asset {
  std::string_view name;
  std::string_view bytes;
  std::string_view content_type;
  std::string etag;  // strong, from the bytes: changes exactly when the file does
};

// The asset called `name`, or null.
const asset* find_asset(std::string_view name);

}  // namespace mediagate::ui
