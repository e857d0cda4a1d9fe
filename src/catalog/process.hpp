#pragma once
// Running a helper program (ffprobe, ffmpeg) with a deadline, capturing its output. Blocking: call it from
// the library's worker thread, never from an event loop.
#include <chrono>
#include <string>
#include <vector>

namespace mediagate::catalog {

struct process_result {
  bool started = false;    // false: the program could not be run (see `error`)
  bool timed_out = false;  // killed at the deadline
  int exit_code = -1;      // when it exited by itself
  std::string out;         // standard output, at most `max_output` bytes
  std::string err;         // the end of standard error, for log lines
  std::string error;       // why it could not be started
  bool ok() const { return started && !timed_out && exit_code == 0; }
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null and no inherited descriptors beyond 0-2.
process_result run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                           std::size_t max_output = 1 << 20);

}  // namespace mediagate::catalog
