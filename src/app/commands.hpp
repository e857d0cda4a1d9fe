#pragma once
// The CLI's subcommands, kept out of main.cpp so that main stays two lines of wiring.
namespace CLI {
class App;
}

namespace mediagate::app {

// Adds every subcommand to `app`; each runs from its callback and records the process exit code.
void register_commands(CLI::App& app);
int exit_code();

}  // namespace mediagate::app
