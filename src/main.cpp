// The mediagate command line: serve (and later scan, ls, put).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "app/commands.hpp"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // sendfile(2) on a closed socket must give EPIPE, not kill the server
  CLI::App app{"mediagate: streams media from a directory or S3-compatible storage to browsers"};
  // MEDIAGATE_VERSION comes from project(VERSION) in CMakeLists.txt; help2man reads it for the man page.
  app.set_version_flag("--version", std::string("mediagate ") + MEDIAGATE_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;  // set by the subcommand that ran
  mediagate::app::register_commands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
