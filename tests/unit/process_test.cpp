// run_process: output capture, deadlines and cancellation that kill the whole process group, and no
// child left unreaped.
#include "catalog/process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace mediagate::catalog {
namespace {

using namespace std::chrono_literals;

// A process that is gone or a zombie no longer runs. Its zombie, once its parent died, is init's to reap.
bool is_running(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

bool stops_running_within(int pid, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (is_running(pid)) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// After a run, this process has no child at all: the program was reaped.
void expect_no_child_left() {
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(run_process, captures_output_and_exit_code) {
  auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10s);
  EXPECT_TRUE(r.started);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.ok());
  expect_no_child_left();
}

TEST(run_process, a_missing_program_is_not_started) {
  auto r = run_process({"/nonexistent/ffprobe"}, 1s);
  EXPECT_FALSE(r.started);
  EXPECT_NE(r.error.find("/nonexistent/ffprobe"), std::string::npos) << r.error;
  expect_no_child_left();
}

TEST(run_process, runs_in_a_process_group_of_its_own) {
  auto r = run_process({"sh", "-c", "ps -o pgid= -p $$"}, 10s);
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(std::stoi(r.out), r.pid);
  EXPECT_NE(r.pid, ::getpgrp());
}

TEST(run_process, the_deadline_kills_the_program_and_its_group) {
  // The shell starts `sleep 100` in the background, says its pid, and waits for it.
  const auto started = std::chrono::steady_clock::now();
  auto r = run_process({"sh", "-c", "sleep 100 & echo $!; wait"}, 300ms);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.ok());
  EXPECT_LT(took, 5s);
  ASSERT_FALSE(r.out.empty());
  const int grandchild = std::stoi(r.out);
  EXPECT_TRUE(stops_running_within(grandchild, 5s)) << "sleep " << grandchild << " survived the deadline";
  EXPECT_FALSE(is_running(r.pid));
  expect_no_child_left();
}

TEST(run_process, a_program_that_exits_leaves_nothing_running_behind) {
  // The grandchild keeps stdout open: without killing the group, the run would last until the deadline.
  const auto started = std::chrono::steady_clock::now();
  auto r = run_process({"sh", "-c", "sleep 100 & echo $!; exit 0"}, 30s);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_TRUE(r.ok()) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_TRUE(stops_running_within(std::stoi(r.out), 5s));
  expect_no_child_left();
}

TEST(run_process, cancelling_kills_running_programs_at_once) {
  process_canceller cancel;
  process_result r;
  const auto started = std::chrono::steady_clock::now();
  std::thread runner([&] { r = run_process({"sh", "-c", "sleep 100 & echo $!; wait"}, 60s, &cancel); });
  std::this_thread::sleep_for(300ms);
  cancel.cancel();
  runner.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.ok());
  ASSERT_FALSE(r.out.empty());
  EXPECT_TRUE(stops_running_within(std::stoi(r.out), 5s));
  expect_no_child_left();
  // Once cancelled, nothing more is started.
  auto later = run_process({"true"}, 10s, &cancel);
  EXPECT_FALSE(later.started);
  EXPECT_TRUE(later.cancelled);
  EXPECT_TRUE(cancel.cancelled());
}

TEST(run_process, output_beyond_the_limit_ends_the_run) {
  auto r = run_process({"sh", "-c", "yes"}, 30s, nullptr, 100'000);
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.ok());
  expect_no_child_left();
}

}  // namespace
}  // namespace mediagate::catalog
