#pragma once
// Running a helper program (ffprobe, ffmpeg) with a deadline, capturing its output. Blocking: call it from
// the library's worker threads, never from an event loop.
//
// The program runs in a process group of its own, and the whole group is killed (SIGKILL) at the deadline,
// when a `process_canceller` is cancelled (shutdown), and after the program exits: a helper that forks
// (a shell script, a filter that starts a child) can leave nothing running behind it.
#include <chrono>
#include <string>
#include <vector>

namespace mediagate::catalog {

struct process_result {
  bool started = false;    // false: the program could not be run (see `error`)
  bool timed_out = false;  // killed at the deadline (or for printing more than `max_output`)
  bool cancelled = false;  // killed because its canceller was cancelled
  int pid = -1;            // of the program, once started (for log lines and tests)
  int exit_code = -1;      // when it exited by itself
  std::string out;         // standard output, at most `max_output` bytes
  std::string err;         // the end of standard error, for log lines
  std::string error;       // why it could not be started
  bool ok() const { return started && !timed_out && !cancelled && exit_code == 0; }
};

// Ends every run that was given it, at once and for good: running ones kill their process group, later
// ones are not started. Thread-safe. An eventfd that stays readable once written, so any number of
// runs can poll it.
class process_canceller {
 public:
  process_canceller();
  ~process_canceller();
  process_canceller(const process_canceller&) = delete;
  process_canceller& operator=(const process_canceller&) = delete;

  void cancel();
  bool cancelled() const;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null and no inherited descriptors beyond 0-2.
process_result run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                           const process_canceller* cancel = nullptr, std::size_t max_output = 1 << 20);

}  // namespace mediagate::catalog
