#pragma once
// The one table from error codes to client statuses.
#include "common/result.hpp"

namespace mediagate::server {

unsigned status_for(errc e);

}  // namespace mediagate::server
