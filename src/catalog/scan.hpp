#pragma once
// Reconciling the catalog with a listing of the storage. The plan is a pure function of the listing and
// the catalog's rows, so running a scan twice over unchanged storage plans nothing the second time.
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.hpp"
#include "storage/storage.hpp"

namespace mediagate::catalog {

// Where posters live in the storage; keys under it (and every hidden path) are never catalogued.
inline constexpr std::string_view kPosterPrefix = ".posters/";

// True when a component of the key starts with '.': reserved for posters and upload temporaries.
bool has_hidden_component(std::string_view key);

// True when a storage key is media the library should list: no hidden path component (posters, upload
// temporaries), and a video, audio or image type by its extension.
bool is_catalogued_key(std::string_view key);

struct scan_plan {
  std::vector<object_facts> add;          // keys the catalog lacks
  std::vector<object_facts> update;       // known keys whose ETag changed, or that came back after missing
  std::vector<std::string> mark_missing;  // ids of items whose object vanished
  std::size_t unchanged = 0;
};

scan_plan plan_scan(const std::vector<storage::listed_object>& listing, const std::vector<media_item>& items);

struct scan_report {
  std::size_t added = 0, updated = 0, missing = 0, unchanged = 0;
};

// Applies a plan: upserts added and updated objects, marks vanished items missing.
scan_report apply_scan(catalog& cat, const scan_plan& plan);

}  // namespace mediagate::catalog
