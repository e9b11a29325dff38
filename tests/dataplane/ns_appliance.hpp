// twincastd in the namespace test bed (NsTestbed): the channel map with its EAL and data-plane
// ports, starting and stopping twincastd in head, and its HLS origin on head's loopback.
// Shared by appliance_ns_test, transcode_ns_test, abr_ns_test and browser_ns_test.
// Header-only.
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "dataplane/netns.hpp"
#include "tests_common.hpp"

namespace twincast::test {

// The number after the first `"key":` in a JSON text (twincast-ts analyze --json, the
// origin's channels.json); all ones when the key is absent.
inline std::uint64_t json_number(const std::string& text, const std::string& key) {
  const std::size_t at = text.find("\"" + key + "\":");
  if (at == std::string::npos) return ~std::uint64_t{0};
  return std::stoull(text.substr(at + key.size() + 3));
}

class NsApplianceTest : public NsTestbed {
 protected:
  // Where the tests' channel maps put the origin (ott.listen), as seen from head.
  static constexpr const char* kOrigin = "http://127.0.0.1:8090/";

  // What twincastd wrote to stderr so far (its status lines among it).
  std::string appliance_log() const { return read_text(dir_ / "twincastd.err"); }

  // Writes <dir_>/channels.yaml: the EAL (lcores 0,1, 512 MB without hugepages, a file prefix
  // of this test's own), the data-plane port "in" on veth_in_ (in_ip) and, with an stb, "out"
  // on veth_out_ (out_ip), then `rest` (channels:, ott:, control: ...). twincastd --check must
  // accept it; then twincastd runs in head with a status line every second. Waits up to 15 s
  // for it to say it runs; -1 and a failure when it does not (or exits first).
  pid_t start_twincastd(const std::string& rest) {
    std::string yaml = "dataplane:\n  lcores: \"0,1\"\n  memory_mb: 512\n  hugepages: false\n  file_prefix: " + spec_.prefix +
                       sfx_ + "\nports:\n"
                       "  - { name: in, device: \"net_af_packet0,iface=" + veth_in_ + "\", address: " + spec_.in_ip + "/24 }\n";
    if (!stb_.empty())
      yaml += "  - { name: out, device: \"net_af_packet1,iface=" + veth_out_ + "\", address: " + spec_.out_ip + "/24 }\n";
    yaml += rest;
    const std::filesystem::path config = dir_ / "channels.yaml";
    std::ofstream(config) << yaml;
    const RunResult check = run(shell_quote(tool("twincastd").string()) + " --check " + shell_quote(config.string()));
    EXPECT_EQ(check.exit_code, 0) << check.out << yaml;
    const pid_t pid =
        start_child({"ip", "netns", "exec", head_, tool("twincastd").string(), "--status-interval", "1", config.string()},
                    "twincastd");
    for (int i = 0; i < 300 && pid > 0; ++i) {
      if (appliance_log().find("twincastd: running") != std::string::npos) return pid;
      if (!alive(pid)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "twincastd did not start: " << appliance_log();
    return -1;
  }

  // SIGTERM; it must leave within 10 s with status 0.
  void stop_twincastd(pid_t pid) {
    int st = -1;
    EXPECT_TRUE(end_child(pid, std::chrono::milliseconds(10000), &st)) << "twincastd did not stop on SIGTERM";
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st << ": " << appliance_log();
  }

  // GET <kOrigin><path> into `to` with curl in head (-f: an HTTP error is a failure; at most 10 s).
  RunResult origin_get(const std::string& path, const std::filesystem::path& to) const {
    return run(ns_exec(head_) + "curl -sS -f --max-time 10 -o " + shell_quote(to.string()) + " " + shell_quote(kOrigin + path) +
               " 2>&1");
  }
  // A playlist or segment of the channel "news" (the one these tests package) into `to`.
  RunResult fetch(const std::string& name, const std::filesystem::path& to) const { return origin_get("hls/news/" + name, to); }

  // A real player in head: ffmpeg reads news's master playlist live for 6 s and decodes it
  // (`options` before the output, such as "-map 0" for every variant); killed after
  // `timeout_s`. A clean play exits 0 and prints nothing.
  RunResult play_master(int timeout_s, const std::string& options = "") const {
    return run(ns_exec(head_) + "timeout " + std::to_string(timeout_s) + " ffmpeg -nostdin -v error -i " + kOrigin +
               "hls/news/index.m3u8 " + (options.empty() ? "" : options + " ") + "-t 6 -f null - 2>&1");
  }
};

}  // namespace twincast::test
