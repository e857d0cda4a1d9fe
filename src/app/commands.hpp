#pragma once
// The CLI's subcommands, kept out of main.cpp so that main stays a few lines of wiring.
#include "app/options.hpp"

namespace CLI {
class App;
}

namespace mediagate::app {

// Adds every subcommand to `app`; the one that runs stores the process exit status in `exit_code`, which
// must outlive `app`'s parse.
void register_commands(CLI::App& app, int& exit_code);

// One function per command (serve.cpp, scan.cpp, ls.cpp, put.cpp), each returning the exit status.
int run_serve(const serve_options& o);
int run_scan(serve_options o);
int run_ls(const ls_options& o);
int run_put(const put_options& o);

struct sign_options {
  std::string path, keys_file, ttl = "1h", ip;
  bool prefix = false;
};
void add_sign_options(CLI::App& cmd, sign_options& o);
int run_sign(const sign_options& o);

}  // namespace mediagate::app
