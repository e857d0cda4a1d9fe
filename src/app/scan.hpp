#pragma once
// `mediagate scan` runs the server privately until the library has indexed the storage.
#include <thread>

#include "server/api.hpp"
#include "server/server.hpp"

namespace mediagate::app {

// Waits on a thread of its own for the library to finish the scan, prints the report and stops `srv`.
// Sets `exit_code` to 1 when the scan failed; read it only after joining the thread.
std::thread wait_for_scan(server::api_services& api, server::server& srv, int& exit_code);

}  // namespace mediagate::app
