// `mediagate ls`: the objects under an S3 location or in a directory, with their sizes.
#include <cstdio>
#include <memory>
#include <vector>

#include "app/commands.hpp"
#include "app/run_sync.hpp"
#include "app/storage_setup.hpp"
#include "storage/local_storage.hpp"
#include "storage/s3_storage.hpp"

namespace mediagate::app {
namespace {

namespace net = boost::asio;
using listing = storage::result<std::vector<storage::listed_object>>;

}  // namespace

int run_ls(const ls_options& o) {
  const auto& location = o.location;
  listing listed = storage::error{};
  if (location.starts_with("s3://")) {
    auto resolved = resolve_s3(o.s3, location);
    if (auto* message = std::get_if<std::string>(&resolved)) {
      std::fprintf(stderr, "mediagate: %s\n", message->c_str());
      return 2;
    }
    auto setup = std::get<s3_setup>(resolved);
    listed = run_sync<listing>([&](net::io_context& io) {
      auto store = std::make_shared<storage::s3_storage>(make_client(io, setup), setup.where, setup.meta_ttl);
      return [](std::shared_ptr<storage::s3_storage> s) -> net::awaitable<listing> {
        co_return co_await s->list("");
      }(store);
    });
  } else {
    try {
      auto store = std::make_shared<storage::local_storage>(location);
      listed = run_sync<listing>([&](net::io_context&) { return store->list(""); });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mediagate: %s\n", e.what());
      return 1;
    }
  }
  if (!listed) {
    std::fprintf(stderr, "mediagate: cannot list %s: %s\n", location.c_str(), listed.err().message.c_str());
    return 1;
  }
  for (const auto& object : *listed)
    std::printf("%12llu  %s\n", static_cast<unsigned long long>(object.size), object.key.c_str());
  return 0;
}

}  // namespace mediagate::app
