// The unit files pass `systemd-analyze verify` (with the service pointed at the built
// binaries, since verify checks that ExecStart names an executable), their restart policy
// ends on a broken map, and twincastd speaks the sd_notify protocol the unit expects (to a
// stand-in for systemd's notification socket; EAL without hugepages, net_null ports).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cctype>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "tests_common.hpp"

namespace fs = std::filesystem;
using twincast::test::run;
using twincast::test::shell_quote;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

fs::path source_dir() {
  const char* s = std::getenv("TWINCAST_SOURCE_DIR");
  return s ? fs::path(s) : fs::path(".");
}

// The value of the last `key=` line of [Service] or [Unit] ("" when absent).
std::string unit_value(const std::string& unit, const std::string& key) {
  std::string value;
  std::istringstream lines(unit);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
  return value;
}

std::uint16_t free_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// A channel map of `n` channels on net_null ports (nothing arrives, nothing needs root).
std::string channel_map(std::size_t n, const std::string& head) {
  std::string y = head + "channels:\n";
  for (std::size_t c = 1; c <= n; ++c) {
    const std::string k = std::to_string(c);
    y += "  - id: ch" + k + "\n    service_id: " + std::to_string(100 + c) + "\n";
    y += "    inputs:\n      - { name: rx, udp: { port: in, group: 239.1.0." + k + ", udp_port: 5000 } }\n";
    y += "    outputs:\n      - { udp: { port: out, group: 239.200.0." + k + ", udp_port: 5000 } }\n";
  }
  return y;
}

// Stands in for systemd's notification socket ($NOTIFY_SOCKET): the datagrams twincastd
// sends with sd_notify, one message each.
class NotifySocket {
 public:
  explicit NotifySocket(const fs::path& path) : fd_(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot bind " + path.string());
  }
  ~NotifySocket() { close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  // Every message until one has the line `line` (that one included), until `timeout`, or
  // until `sender` (when not 0) has exited.
  std::vector<std::string> until(const std::string& line, std::chrono::seconds timeout, pid_t sender = 0) {
    std::vector<std::string> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (std::chrono::steady_clock::now() >= deadline || (sender != 0 && exited(sender))) return out;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      out.emplace_back(buf, static_cast<std::size_t>(n));
      if (("\n" + out.back() + "\n").find("\n" + line + "\n") != std::string::npos) return out;
    }
  }

 private:
  // A zombie (not reaped: wait_exit still sees its status) or gone.
  static bool exited(pid_t pid) {
    const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
    const std::size_t paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z';
  }
  int fd_;
};

// The STATUS= text of the last message in `messages` that has one ("" when none has).
std::string last_status(const std::vector<std::string>& messages) {
  std::string status;
  for (const auto& m : messages) {
    std::istringstream lines(m);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("STATUS=", 0) == 0) status = line.substr(7);
  }
  return status;
}

// twincastd FILE as systemd starts it under Type=notify and WatchdogSec: $NOTIFY_SOCKET and
// $WATCHDOG_USEC set, stdout and stderr to `log`.
// `wrapper` (e.g. setpriv and its options) runs twincastd when not empty.
pid_t start_twincastd(const fs::path& file, const fs::path& notify, const fs::path& log, std::uint64_t watchdog_us,
                      std::vector<std::string> wrapper = {}) {
  std::vector<std::string> args = std::move(wrapper);
  for (std::string a : {twincast::test::tool("twincastd").string(), std::string("--status-interval"), std::string("3600"), file.string()})
    args.push_back(a);
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("NOTIFY_SOCKET", notify.c_str(), 1);
    setenv("WATCHDOG_USEC", std::to_string(watchdog_us).c_str(), 1);
    unsetenv("WATCHDOG_PID");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// A channel map of two channels on net_null ports with the listeners given.
std::string null_map(const std::string& api, const std::string& metrics, const std::string& ott) {
  std::string head = "control:\n  api_listen: " + api + "\n  metrics_listen: " + metrics + "\n";
  head += "ott:\n  listen: " + ott + "\n";
  head += "dataplane:\n  lcores: \"0,1\"\n  memory_mb: 256\n  hugepages: false\n  file_prefix: tcsdnotify" +
          std::to_string(getpid()) + "\n";
  head += "ports:\n  - name: in\n    device: \"net_null0,no-rx=1\"\n    address: 10.50.0.2/16\n";
  head += "  - name: out\n    device: \"net_null1,no-rx=1\"\n    address: 10.60.0.2/16\n";
  return head;
}

// Kills and reaps a twincastd a failed assertion left running.
struct Reaper {
  pid_t pid;
  ~Reaper() {
    if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// The exit status of `pid` (-1: still running after `timeout`, then killed).
int wait_exit(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST(Systemd, UnitFilesVerify) {
  if (run("command -v systemd-analyze").exit_code != 0) GTEST_SKIP() << "systemd-analyze is not installed";
  const fs::path dir = twincast::test::temp_dir("systemd");
  std::string unit = slurp(source_dir() / "systemd/twincastd.service");
  ASSERT_NE(unit.find("Type=notify"), std::string::npos);
  ASSERT_NE(unit.find("WatchdogSec="), std::string::npos);
  ASSERT_NE(unit.find("ExecReload="), std::string::npos);
  const std::string installed = "/usr/local/bin/twincastd";
  const std::string built = twincast::test::tool("twincastd").string();
  for (std::size_t at; (at = unit.find(installed)) != std::string::npos;) unit.replace(at, installed.size(), built);
  std::ofstream(dir / "twincastd.service") << unit;
  fs::copy_file(source_dir() / "systemd/twincast-hugepages.service", dir / "twincast-hugepages.service");
  const auto r = run("cd " + shell_quote(dir.string()) + " && systemd-analyze verify ./twincastd.service ./twincast-hugepages.service");
  // verify also reports on units it loads as dependencies (network-online.target ...):
  // only lines about our two units count.
  std::string ours;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);)
    if (line.find("twincast") != std::string::npos) ours += line + "\n";
  EXPECT_EQ(ours, "") << r.out;
  fs::remove_all(dir);
}

// A broken map must not make systemd restart twincastd every RestartSec for ever (the
// journal filling with the same errors every 2 s). RestartPreventExitStatus= only sees the
// main process's exit status, not an ExecStartPre='s; and the default start limit (5 starts
// in 10 s) is never reached with RestartSec=2. So either the start limit ends the loop, or
// twincastd itself reports the map with an exit status the unit does not restart on.
TEST(Systemd, ABrokenMapIsNotRestartedForEver) {
  const std::string unit = slurp(source_dir() / "systemd/twincastd.service");
  ASSERT_EQ(unit_value(unit, "Restart"), "on-failure");
  const std::string bad = (source_dir() / "tests/config/invalid/multiple_errors.yaml").string();
  const auto r = twincast::test::run(twincast::test::shell_quote(twincast::test::tool("twincastd").string()) + " " +
                                     twincast::test::shell_quote(bad));
  ASSERT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("path=channels[0].lcn msg=\"0 is out of range"), std::string::npos) << r.out;  // a message, not a crash

  std::istringstream prevented_list(unit_value(unit, "RestartPreventExitStatus"));
  bool prevented = false;
  for (std::string code; prevented_list >> code;) prevented = prevented || code == std::to_string(r.exit_code);
  // An ExecStartPre= that fails on the map (without "-") is restarted whatever the above says.
  bool checked_before = false;
  std::istringstream unit_lines(unit);
  for (std::string line; std::getline(unit_lines, line);)
    checked_before = checked_before || (line.rfind("ExecStartPre=", 0) == 0 && line.size() > 13 && line[13] != '-' &&
                                        line.find("--check") != std::string::npos);
  const std::string limit = unit_value(unit, "StartLimitIntervalSec");
  const std::string burst = unit_value(unit, "StartLimitBurst");
  const double interval_s = limit.empty() ? 10 : std::stod(limit);
  const double restart_s = std::stod(unit_value(unit, "RestartSec"));
  const double n_burst = burst.empty() ? 5 : std::stod(burst);
  // The start after `burst` restarts comes at burst * RestartSec (plus each attempt's time).
  const bool limited = n_burst * restart_s < interval_s;
  EXPECT_TRUE(limited || (prevented && !checked_before))
      << "exit status " << r.exit_code << ", RestartPreventExitStatus=" << unit_value(unit, "RestartPreventExitStatus")
      << ", ExecStartPre --check: " << checked_before << ", start limit " << n_burst << " in " << interval_s
      << " s with RestartSec=" << restart_s << " s: systemd restarts a broken map for ever";
}

// What systemd's `systemctl status` shows and its watchdog sees: READY=1 with a STATUS once
// serving, WATCHDOG=1 at half WATCHDOG_USEC, RELOADING=1 then READY=1 around a SIGHUP with
// a STATUS that describes the map now running (it kept the count of the map twincastd
// started with), the same STATUS after POST /api/v1/reload, STOPPING=1 and exit status 0
// on SIGTERM.
TEST(Systemd, NotifiesReadyReloadWatchdogAndStop) {
  const fs::path dir = twincast::test::temp_dir("sdnotify");
  const fs::path file = dir / "channels.yaml";
  const std::string api = "127.0.0.1:" + std::to_string(free_port());
  constexpr const char* kToken = "sd-notify-test-token-0123456789";
  std::ofstream(dir / "token") << kToken << "\n";
  std::string head = null_map(api, "127.0.0.1:" + std::to_string(free_port()), "127.0.0.1:" + std::to_string(free_port()));
  head.insert(head.find("ott:"), "  token_file: " + (dir / "token").string() + "\n");
  std::ofstream(file) << channel_map(2, head);
  NotifySocket notify(dir / "notify");
  const pid_t pid = start_twincastd(file, dir / "notify", dir / "log", 1'000'000);
  ASSERT_GT(pid, 0);
  const Reaper reaper{pid};
  auto log = [&] { return slurp(dir / "log"); };

  auto m = notify.until("READY=1", std::chrono::seconds(60), pid);
  ASSERT_FALSE(m.empty()) << log();
  EXPECT_EQ(last_status(m), "2 channels") << log();
  m = notify.until("WATCHDOG=1", std::chrono::seconds(2));  // every 0.5 s
  EXPECT_FALSE(m.empty()) << "no WATCHDOG=1 within 2 s of WATCHDOG_USEC=1000000\n" << log();

  // A reload that adds a channel: systemctl status says what runs now.
  std::ofstream(file, std::ios::trunc) << channel_map(3, head);
  kill(pid, SIGHUP);
  m = notify.until("READY=1", std::chrono::seconds(30));
  ASSERT_FALSE(m.empty()) << log();
  bool reloading = false;
  for (const auto& msg : m) reloading = reloading || msg.find("RELOADING=1") != std::string::npos;
  EXPECT_TRUE(reloading) << log();
  EXPECT_EQ(last_status(m), "3 channels") << "a stale STATUS after the reload\n" << log();

  // The same through the API (twincastctl reload): STATUS follows within a watchdog period.
  std::ofstream(file, std::ios::trunc) << channel_map(1, head);
  const auto posted = run("curl -s -X POST -H 'Authorization: Bearer " + std::string(kToken) + "' http://" + api +
                          "/api/v1/reload");
  EXPECT_NE(posted.out.find("reloaded"), std::string::npos) << posted.out;
  m = notify.until("STATUS=1 channels", std::chrono::seconds(3));
  EXPECT_EQ(last_status(m), "1 channels") << "a stale STATUS after POST /api/v1/reload\n" << log();

  kill(pid, SIGTERM);
  m = notify.until("STOPPING=1", std::chrono::seconds(30));
  EXPECT_FALSE(m.empty()) << log();
  EXPECT_EQ(wait_exit(pid, std::chrono::seconds(30)), 0) << log();
  fs::remove_all(dir);
}

// The HLS origin on port 80 (or 443) is what players and CDNs expect, and --check accepts it;
// the unit runs twincastd as root but with only its CapabilityBoundingSet, so it must bind
// there too (it failed to start: "listen 127.0.0.1:80: Permission denied"). Run under that
// bounding set with setpriv (needs root).
TEST(Systemd, ServesOnAPrivilegedPortUnderTheUnitsCapabilities) {
  if (geteuid() != 0 || run("command -v setpriv").exit_code != 0) GTEST_SKIP() << "needs root and setpriv";
  std::string bounding = "-all";
  std::istringstream caps(unit_value(slurp(source_dir() / "systemd/twincastd.service"), "CapabilityBoundingSet"));
  for (std::string cap; caps >> cap;) {
    for (auto& ch : cap) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    bounding += ",+" + cap.substr(4);  // "cap_net_raw" -> "net_raw"
  }
  // A free privileged port on the loopback.
  std::uint16_t port = 0;
  for (std::uint16_t p = 1023; p > 900 && port == 0; --p) {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc);
    boost::system::error_code ec;
    a.open(boost::asio::ip::tcp::v4(), ec);
    if (!ec) a.bind({boost::asio::ip::make_address("127.0.0.1"), p}, ec);
    if (!ec) port = p;
  }
  ASSERT_NE(port, 0);
  const fs::path dir = twincast::test::temp_dir("sdcaps");
  const fs::path file = dir / "channels.yaml";
  std::ofstream(file) << channel_map(2, null_map("127.0.0.1:" + std::to_string(free_port()),
                                                 "127.0.0.1:" + std::to_string(free_port()),
                                                 "127.0.0.1:" + std::to_string(port)));
  ASSERT_EQ(run(shell_quote(twincast::test::tool("twincastd").string()) + " --check " + shell_quote(file.string())).exit_code, 0);
  NotifySocket notify(dir / "notify");
  const pid_t pid = start_twincastd(file, dir / "notify", dir / "log", 0,
                                    {"setpriv", "--bounding-set", bounding, "--inh-caps=-all"});
  ASSERT_GT(pid, 0);
  const Reaper reaper{pid};
  const auto m = notify.until("READY=1", std::chrono::seconds(60), pid);
  EXPECT_FALSE(m.empty()) << "bounding set " << bounding << ":\n" << slurp(dir / "log");
  kill(pid, SIGTERM);
  wait_exit(pid, std::chrono::seconds(30));
  fs::remove_all(dir);
}
