// Stands in for the blocking HTTP client of src/s3/sync_http.cpp, which the credential fetchers call: the
// fuzz target only runs the pure parsers of the same file, so reaching this is a bug in the target.
#include <cstdlib>

#include "s3/sync_http.hpp"

namespace mediagate::s3 {

sync_response sync_request(const std::string&, const std::string&,
                           const std::vector<std::pair<std::string, std::string>>&, const std::string&,
                           std::chrono::milliseconds) {
  std::abort();
}

}  // namespace mediagate::s3
