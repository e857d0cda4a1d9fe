#include "app/scan.hpp"

#include <cstdio>

#include "app/commands.hpp"
#include "catalog/library.hpp"

namespace mediagate::app {

int run_scan(serve_options o) {
  // Probes read the media over HTTP, so the scan runs a private server on a free loopback port.
  o.scan_only = true;
  o.listen = "127.0.0.1:0";
  o.config.threads = 1;
  o.config.access_log = "off";
  return run_serve(o);
}

std::thread wait_for_scan(server::api_services& api, server::server& srv, int& exit_code) {
  return std::thread([&api, &srv, &exit_code] {
    auto report = api.lib->wait_idle();
    if (report)
      std::printf("scan: %zu added, %zu changed, %zu missing, %zu unchanged\n", report->added,
                  report->updated, report->missing, report->unchanged);
    else
      exit_code = 1;
    srv.stop();
  });
}

}  // namespace mediagate::app
