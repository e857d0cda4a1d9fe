#include "catalog/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>

extern char** environ;

namespace mediagate::catalog {
namespace {

struct pipe_pair {
  int fds[2] = {-1, -1};
  ~pipe_pair() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  void close_end(int i) {
    if (fds[i] >= 0) ::close(fds[i]);
    fds[i] = -1;
  }
};

struct spawn_actions {
  posix_spawn_file_actions_t fa;
  spawn_actions() { posix_spawn_file_actions_init(&fa); }
  ~spawn_actions() { posix_spawn_file_actions_destroy(&fa); }
};

struct spawn_attributes {
  posix_spawnattr_t attr;
  spawn_attributes() { posix_spawnattr_init(&attr); }
  ~spawn_attributes() { posix_spawnattr_destroy(&attr); }
};

// A started program. Whatever way run_process leaves (exceptions included), its process group is killed
// and the program reaped, so neither a straggler nor a zombie outlives the run.
class child_process {
 public:
  explicit child_process(pid_t pid) : pid_(pid) {
    // Readable when the program exits, so the loop notices an exit even while a grandchild holds the
    // pipes open. Linux 5.3; without it the pipes' end of file stands in.
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  }
  ~child_process() {
    kill_group();
    reap();
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  int pidfd() const { return pidfd_; }

  // Until the program is reaped its pid, and so its process group id, cannot be reused: the signal can
  // only reach the program's own group.
  void kill_group() {
    if (!reaped_) ::kill(-pid_, SIGKILL);
  }

  // Blocks until the program has exited, without reaping it (the group id stays reserved).
  void wait_exited() {
    siginfo_t info{};
    while (!reaped_ && ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR) {
    }
  }

  // Reaps the program; its wait status.
  int reap() {
    if (reaped_) return status_;
    while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status_;
  }

 private:
  pid_t pid_;
  int pidfd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace

process_canceller::process_canceller() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

process_canceller::~process_canceller() { ::close(fd_); }

void process_canceller::cancel() {
  const std::uint64_t one = 1;
  // Never read: the counter stays non-zero and the descriptor readable for every run that polls it.
  [[maybe_unused]] const auto n = ::write(fd_, &one, sizeof one);
}

bool process_canceller::cancelled() const {
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

process_result run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                           const process_canceller* cancel, std::size_t max_output) {
  process_result r;
  if (cancel && cancel->cancelled()) {
    r.cancelled = true;
    r.error = "cancelled (shutting down)";
    return r;
  }
  pipe_pair out, err;
  if (::pipe2(out.fds, O_CLOEXEC) != 0 || ::pipe2(err.fds, O_CLOEXEC) != 0) {
    r.error = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  spawn_actions actions;
  posix_spawn_file_actions_addopen(&actions.fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions.fa, out.fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions.fa, err.fds[1], 2);
  // Sockets of the server are not for the child (Asio does not open them close-on-exec).
  posix_spawn_file_actions_addclosefrom_np(&actions.fa, 3);
  spawn_attributes attrs;
  // A group of its own: the deadline and shutdown kill everything the program started, and a terminal's
  // Ctrl-C aimed at the server's group is the server's business, not the helper's.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  // Ignored signals survive exec: the server ignores SIGPIPE, a helper should die of it.
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setflags(&attrs.attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attrs.attr, 0);
  posix_spawnattr_setsigmask(&attrs.attr, &none);
  posix_spawnattr_setsigdefault(&attrs.attr, &defaults);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions.fa, &attrs.attr, args.data(), environ);
  if (rc != 0) {
    r.error = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return r;
  }
  r.started = true;
  r.pid = pid;
  child_process child(pid);
  out.close_end(1);
  err.close_end(1);

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<char, 65536> buf;
  bool out_open = true, err_open = true;
  const bool watch_exit = child.pidfd() >= 0;
  bool exited = false;
  while (out_open || err_open || (watch_exit && !exited)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd fds[4] = {{out_open ? out.fds[0] : -1, POLLIN, 0},
                     {err_open ? err.fds[0] : -1, POLLIN, 0},
                     {watch_exit && !exited ? child.pidfd() : -1, POLLIN, 0},
                     {cancel ? cancel->fd() : -1, POLLIN, 0}};
    const int n = ::poll(fds, 4, static_cast<int>(std::min<long long>(left.count(), 60'000)));
    if (n < 0 && errno != EINTR) {
      r.timed_out = true;  // it can no longer be watched: end it like one past its deadline
      break;
    }
    if (n <= 0) continue;
    if (fds[3].revents & POLLIN) {
      r.cancelled = true;
      break;
    }
    if (fds[2].revents & POLLIN) {
      // The program is gone; whatever it left running in its group goes too, which also ends the pipes.
      exited = true;
      child.kill_group();
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const auto got = ::read(fds[i].fd, buf.data(), buf.size());
      if (got <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      auto& sink = i == 0 ? r.out : r.err;
      sink.append(buf.data(), static_cast<std::size_t>(got));
      if (i == 0 && sink.size() > max_output) {
        r.timed_out = true;  // a runaway child: treat like a timeout
        out_open = err_open = false;
      }
      if (i == 1 && sink.size() > 8192) sink.erase(0, sink.size() - 4096);  // keep the end for logs
    }
    if (r.timed_out) break;
  }
  if (!r.timed_out && !r.cancelled) child.wait_exited();
  child.kill_group();
  const int status = child.reap();
  if (!r.timed_out && !r.cancelled)
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace mediagate::catalog
