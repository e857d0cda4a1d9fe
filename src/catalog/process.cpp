#include "catalog/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

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

}  // namespace

process_result run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                           std::size_t max_output) {
  process_result r;
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
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions.fa, nullptr, args.data(), environ);
  if (rc != 0) {
    r.error = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return r;
  }
  r.started = true;
  out.close_end(1);
  err.close_end(1);

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<char, 65536> buf;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out.fds[0] : -1, POLLIN, 0}, {err_open ? err.fds[0] : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
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
  }
  if (r.timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!r.timed_out) r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace mediagate::catalog
