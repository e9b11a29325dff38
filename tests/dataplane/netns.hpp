// Shared by the root integration tests that run between network namespaces
// (appliance_ns_test, forwarding_ns_test, transcode_ns_test, abr_ns_test, browser_ns_test):
// entering a namespace, spawning and reaping child processes, the prerequisites check,
// namespace clean-up, and NsTestbed, the fixture that builds src ── head [── stb] and takes it
// down again. Header-only.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
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

// A raw packet socket (every EtherType) bound to `iface` in the calling thread's namespace,
// whose reads time out after `timeout`; -1 when it cannot be opened or bound.
inline int packet_socket(const std::string& iface, std::chrono::microseconds timeout) {
  const int s = ::socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (s < 0) return -1;
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
  timeval tv{static_cast<time_t>(timeout.count() / 1000000), static_cast<suseconds_t>(timeout.count() % 1000000)};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::bind(s, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    ::close(s);
    return -1;
  }
  return s;
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
  // SIGTERM to every one at once, then up to `grace` each to leave before SIGKILL; forgets them.
  void stop_all(std::chrono::milliseconds grace) {
    for (pid_t p : pids_) ::kill(p, SIGTERM);
    for (pid_t p : pids_) {
      int st = 0;
      if (!wait_for(p, grace, &st)) {
        ::kill(p, SIGKILL);
        ::waitpid(p, &st, 0);
      }
    }
    pids_.clear();
  }
  // SIGKILL to each and reap it; forgets them.
  void kill_all() {
    for (pid_t p : pids_) {
      ::kill(p, SIGKILL);
      int st = 0;
      ::waitpid(p, &st, 0);
    }
    pids_.clear();
  }

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

// Polls `done` every 200 ms until it holds or `timeout` passes; its last answer.
inline bool poll_until(std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return done();
}

// What create_testbed builds. `prefix` (two letters) begins every name of this test's
// namespaces and links; the addresses are dotted quads. Without `stb_ip` there is no stb.
struct TestbedSpec {
  std::string prefix;
  std::string dir_name;  // of the temporary directory (temp_dir)
  std::string src_ip, in_ip;
  std::string out_ip = {}, stb_ip = {};
};

// A fixture for the namespace tests:
//
//   [src] veth_src_ src_ip ─── veth_in_ [head] veth_out_ ─── veth_stb_ stb_ip [stb]
//
// src and stb get their address, their loopback up and a route that sends multicast out of
// their veth; head's veths are up without a kernel address (the data plane's in_ip and out_ip
// are its own). Names are <prefix>src|head|stb and <prefix>s|i|o|b with a random suffix.
// TearDown stops every child (SIGTERM, up to 5 s, then SIGKILL), deletes the namespaces and
// the temporary directory (kept when the test failed).
class NsTestbed : public ::testing::Test {
 protected:
  // From SetUp, once the prerequisites are checked: ASSERT_NO_FATAL_FAILURE(create_testbed(...)).
  void create_testbed(const TestbedSpec& spec) {
    spec_ = spec;
    std::random_device rd;
    sfx_ = random_suffix(rd);
    src_ = spec.prefix + "src" + sfx_;
    head_ = spec.prefix + "head" + sfx_;
    veth_src_ = spec.prefix + "s" + sfx_;
    veth_in_ = spec.prefix + "i" + sfx_;
    dir_ = temp_dir(spec.dir_name);
    const std::string s = "ip -n " + src_ + " ", h = "ip -n " + head_ + " ";
    std::vector<std::string> cmds = {
        "ip netns add " + src_, "ip netns add " + head_,
        "ip link add " + veth_src_ + " netns " + src_ + " type veth peer name " + veth_in_ + " netns " + head_,
        s + "addr add " + spec.src_ip + "/24 dev " + veth_src_, s + "link set " + veth_src_ + " up", s + "link set lo up",
        s + "route add 224.0.0.0/4 dev " + veth_src_, h + "link set " + veth_in_ + " up", h + "link set lo up"};
    if (!spec.stb_ip.empty()) {
      stb_ = spec.prefix + "stb" + sfx_;
      veth_out_ = spec.prefix + "o" + sfx_;
      veth_stb_ = spec.prefix + "b" + sfx_;
      const std::string b = "ip -n " + stb_ + " ";
      for (const std::string& c :
           {"ip netns add " + stb_,
            "ip link add " + veth_stb_ + " netns " + stb_ + " type veth peer name " + veth_out_ + " netns " + head_,
            b + "addr add " + spec.stb_ip + "/24 dev " + veth_stb_, b + "link set " + veth_stb_ + " up",
            b + "link set lo up", b + "route add 224.0.0.0/4 dev " + veth_stb_, h + "link set " + veth_out_ + " up"})
        cmds.push_back(c);
    }
    ASSERT_NO_FATAL_FAILURE(run_setup_commands(cmds));
  }

  void TearDown() override {
    children_.stop_all(std::chrono::milliseconds(5000));
    exited_.clear();
    delete_netns({src_, head_, stb_});
    if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_);
  }

  // `args` as a child (stdout/stderr to <dir_>/<tag>.out|.err), stopped in TearDown.
  pid_t start_child(const std::vector<std::string>& args, const std::string& tag) { return children_.start(args, dir_, tag); }
  // SIGTERM (or `sig`), wait up to `grace`, forget; false when it had to be killed. Its wait
  // status in *status; one that alive() saw exit is not signalled again.
  bool end_child(pid_t pid, std::chrono::milliseconds grace, int* status = nullptr, int sig = SIGTERM) {
    if (pid <= 0) return false;
    if (const auto gone = exited_.find(pid); gone != exited_.end()) {  // reaped by alive(): never signal it
      if (status != nullptr) *status = gone->second;
      return true;
    }
    int st = 0;
    const bool ok = terminate_child(pid, grace, sig, &st);
    if (status != nullptr) *status = st;
    children_.forget(pid);
    return ok;
  }
  // False once it exited; it is reaped then, and forgotten as a child (its pid may be reused).
  bool alive(pid_t pid) {
    if (exited_.count(pid) != 0) return false;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == 0) return true;
    exited_[pid] = st;
    children_.forget(pid);
    return false;
  }
  static std::string ns_exec(const std::string& ns) { return "ip netns exec " + ns + " "; }

  TestbedSpec spec_;
  std::string sfx_, src_, head_, stb_, veth_src_, veth_in_, veth_out_, veth_stb_;
  std::filesystem::path dir_;
  Children children_;
  std::map<pid_t, int> exited_;  // children reaped by alive(), with their wait status
};

}  // namespace twincast::test
