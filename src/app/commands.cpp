#include "app/commands.hpp"

#include <CLI/CLI.hpp>
#include <memory>

namespace mediagate::app {

void register_commands(CLI::App& app, int& exit_code) {
  // CLI11 fills the options while parsing and runs the callback after; both keep them alive.
  auto serve_opts = std::make_shared<serve_options>();
  auto* serve = app.add_subcommand("serve", "Serve media over HTTP");
  add_serve_options(*serve, *serve_opts);
  serve->callback([serve_opts, &exit_code] { exit_code = run_serve(*serve_opts); });

  auto scan_opts = std::make_shared<serve_options>();
  auto* scan = app.add_subcommand("scan",
                                  "Index the storage into the catalog: add new objects, mark vanished ones "
                                  "missing, re-probe changed ones; then exit");
  add_scan_options(*scan, *scan_opts);
  scan->callback([scan_opts, &exit_code] { exit_code = run_scan(*scan_opts); });

  auto ls_opts = std::make_shared<ls_options>();
  auto* ls = app.add_subcommand("ls", "List the objects under s3://BUCKET[/PREFIX] or in a directory");
  add_ls_options(*ls, *ls_opts);
  ls->callback([ls_opts, &exit_code] { exit_code = run_ls(*ls_opts); });

  auto put_opts = std::make_shared<put_options>();
  auto* put = app.add_subcommand("put", "Upload FILE to s3://BUCKET/KEY (multipart for large files)");
  add_put_options(*put, *put_opts);
  put->callback([put_opts, &exit_code] { exit_code = run_put(*put_opts); });

  auto sign_opts = std::make_shared<sign_options>();
  auto* sign = app.add_subcommand("sign", "Print a signed, expiring link to private media (path and query)");
  add_sign_options(*sign, *sign_opts);
  sign->callback([sign_opts, &exit_code] { exit_code = run_sign(*sign_opts); });
}

}  // namespace mediagate::app
