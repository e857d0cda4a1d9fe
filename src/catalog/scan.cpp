#include "catalog/scan.hpp"

#include <unordered_map>

#include "http/content_type.hpp"

namespace mediagate::catalog {

bool has_hidden_component(std::string_view key) {
  for (std::size_t start = 0; start <= key.size();) {
    const auto end = std::min(key.find('/', start), key.size());
    if (key.substr(start, end - start).starts_with('.')) return true;
    start = end + 1;
  }
  return false;
}

bool is_catalogued_key(std::string_view key) {
  if (key.empty() || key.back() == '/' || has_hidden_component(key)) return false;
  return kind_of_type(http::content_type_for_key(key)) != "other";
}

scan_plan plan_scan(const std::vector<storage::listed_object>& listing,
                    const std::vector<media_item>& items) {
  std::unordered_map<std::string_view, const media_item*> by_key;
  by_key.reserve(items.size());
  for (const auto& item : items) by_key.emplace(item.key, &item);
  scan_plan plan;
  std::unordered_map<std::string_view, bool> listed;
  listed.reserve(listing.size());
  for (const auto& object : listing) {
    listed.emplace(object.key, true);  // uploads of other types stay listed, so they are not "missing"
    if (!is_catalogued_key(object.key)) continue;
    object_facts facts{object.key, std::string(http::content_type_for_key(object.key)), object.size,
                       object.etag};
    auto it = by_key.find(object.key);
    if (it == by_key.end())
      plan.add.push_back(std::move(facts));
    else if (it->second->etag != object.etag || it->second->missing)
      plan.update.push_back(std::move(facts));
    else
      ++plan.unchanged;
  }
  for (const auto& item : items)
    if (!item.missing && !listed.contains(item.key)) plan.mark_missing.push_back(item.id);
  return plan;
}

scan_report apply_scan(catalog& cat, const scan_plan& plan) {
  scan_report report;
  for (const auto& f : plan.add) {
    cat.upsert(f);
    ++report.added;
  }
  for (const auto& f : plan.update) {
    cat.upsert(f);
    ++report.updated;
  }
  for (const auto& id : plan.mark_missing)
    if (cat.set_missing(id, true)) ++report.missing;
  report.unchanged = plan.unchanged;
  return report;
}

}  // namespace mediagate::catalog
