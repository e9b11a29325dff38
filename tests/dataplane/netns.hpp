// Shared by the root integration tests that run between network namespaces
// (appliance_ns_test, forwarding_ns_test): entering a namespace, spawning and reaping child
// processes, the prerequisites check and namespace clean-up. Header-only.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests_common.hpp"

extern char** environ;

namespace twincast::test {

// The whole file as text ("" when it cannot be read).
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Moves the calling thread into a named network namespace.
inline bool enter_netns(const std::string& ns) {
  const int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::setns(fd, CLONE_NEWNET) == 0;
  ::close(fd);
  return ok;
}

// Starts `args` (argv[0] looked up in PATH) with stdin from /dev/null and stdout/stderr to
// `out`/`err`; its pid, or -1. The child gets SIGKILL if the test process dies first
// (setpriv --pdeathsig, kept across `ip netns exec`, which execs without forking), so a
// crashed test leaves no twincastd or ffmpeg running behind it.
inline pid_t spawn(const std::vector<std::string>& command, const std::filesystem::path& out,
                   const std::filesystem::path& err) {
  std::vector<std::string> args = {"setpriv", "--pdeathsig", "KILL", "--"};
  args.insert(args.end(), command.begin(), command.end());
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// Waits up to `timeout` for the child; true when it exited (its status in *status).
inline bool wait_for(pid_t pid, std::chrono::milliseconds timeout, int* status) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (::waitpid(pid, status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Sends `sig`, waits up to `grace`, then SIGKILLs and reaps; true when it left in time.
// Its wait status in *status.
inline bool terminate_child(pid_t pid, std::chrono::milliseconds grace, int sig, int* status) {
  ::kill(pid, sig);
  const bool ok = wait_for(pid, grace, status);
  if (!ok) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, status, 0);
  }
  return ok;
}

// The child processes a test started (stdout/stderr to `<dir>/<tag>.out|.err`), so that
// TearDown can stop every one of them even when an assertion fails.
class Children {
 public:
  pid_t start(const std::vector<std::string>& args, const std::filesystem::path& dir, const std::string& tag) {
    const pid_t pid = spawn(args, dir / (tag + ".out"), dir / (tag + ".err"));
    if (pid > 0) pids_.push_back(pid);
    return pid;
  }
  // No longer ours to stop (reaped).
  void forget(pid_t pid) { pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end()); }
  [[nodiscard]] const std::vector<pid_t>& pids() const { return pids_; }
  void clear() { pids_.clear(); }

 private:
  std::vector<pid_t> pids_;
};

// Why a namespace test cannot run here ("" when it can): it needs root, iproute2 and ffmpeg.
inline std::string netns_skip_reason() {
  if (::geteuid() != 0) return "needs root (network namespaces)";
  if (run("ip -V").exit_code != 0) return "iproute2 'ip' missing";
  if (run("ffmpeg -version").exit_code != 0 || run("ffprobe -version").exit_code != 0) return "ffmpeg missing";
  return "";
}

// Five random hex digits, to make namespace and interface names unique to one test run.
inline std::string random_suffix(std::random_device& rd) {
  char sfx[8];
  std::snprintf(sfx, sizeof sfx, "%05x", rd() & 0xFFFFF);
  return sfx;
}

// Runs each set-up command (`ip ...`) in turn; a fatal failure at the first that fails.
// Call as ASSERT_NO_FATAL_FAILURE(run_setup_commands(cmds)).
inline void run_setup_commands(const std::vector<std::string>& cmds) {
  for (const auto& c : cmds) {
    const RunResult r = run(c);
    ASSERT_EQ(r.exit_code, 0) << c << ": " << r.out;
  }
}

// Deletes the named namespaces (the veths in them go with them); empty names are skipped.
inline void delete_netns(std::initializer_list<std::string> names) {
  for (const auto& ns : names) {
    if (!ns.empty()) (void)run("ip netns del " + ns);
  }
}

}  // namespace twincast::test
