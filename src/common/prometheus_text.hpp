#pragma once
// The Prometheus text exposition format for one unlabelled sample: # HELP, # TYPE and the value.
#include <cstdint>
#include <string>
#include <string_view>

namespace mediagate {

// Appends `name value` with its HELP and TYPE lines; `type` is "counter" or "gauge".
void append_metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
                   std::uint64_t value);

}  // namespace mediagate
