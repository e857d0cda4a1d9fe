#pragma once
// The embedded default storage: a plain local directory. Keys are paths below the root; nothing outside
// the root is ever opened (openat2 RESOLVE_BENEATH, so symlinks cannot lead out either).
#include <filesystem>
#include <memory>

#include "storage/storage.hpp"

namespace mediagate::storage {

class local_storage final : public storage {
 public:
  // Throws std::runtime_error when the root is not a readable directory.
  explicit local_storage(const std::filesystem::path& root);
  ~local_storage() override;
  local_storage(const local_storage&) = delete;
  local_storage& operator=(const local_storage&) = delete;

  boost::asio::awaitable<result<object_meta>> stat(std::string key) override;
  boost::asio::awaitable<result<std::unique_ptr<range_reader>>> open(std::string key, object_meta meta,
                                                                     http::byte_range range) override;
  // stat() and a reader of the hinted range of the very file it examined: one fstat per request, where
  // stat() then open() take two (open() must re-check a file examined at some earlier time).
  boost::asio::awaitable<result<stat_and_reader>> stat_and_open(std::string key, read_hint hint) override;
  boost::asio::awaitable<result<std::vector<listed_object>>> list(std::string prefix) override;
  // Writes to a temporary file beside the target, fsyncs it, then renames it into place (and fsyncs the
  // directory): readers see the old object or the whole new one, and a failed write leaves nothing.
  boost::asio::awaitable<result<object_meta>> write(std::string key, std::string content_type,
                                                    body_source source) override;
  boost::asio::awaitable<result<bool>> remove(std::string key) override;
  std::string describe() const override;

  // Synchronous forms, for the CLI and the asynchronous wrappers above.
  result<object_meta> stat_now(const std::string& key) const;
  // stat() without a coroutine: it never waits.
  result<object_meta> stat_recent(const std::string& key);
  const std::filesystem::path& root() const { return root_; }

 private:
  result<int> open_beneath(const std::string& key) const;  // an O_RDONLY descriptor or an error
  // The directory that holds `key` (created below the root when `create`), and the key's last component.
  result<std::pair<int, std::string>> parent_of(const std::string& key, bool create) const;

  std::filesystem::path root_;
  std::uint64_t id_;  // names this storage in the per-thread table of open files
  int root_fd_ = -1;
};

}  // namespace mediagate::storage
