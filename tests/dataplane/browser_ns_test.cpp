// Integration (root): a real browser plays a live channel from the appliance's web page
// (issue #5).
//
//   [src: ffmpeg] veth 10.51.0.1 ─── veth [head: twincastd, DPDK af_packet "in" 10.51.0.2]
//                                         [head's loopback: the HLS origin and web page, 127.0.0.1:8090]
//
// ffmpeg in src loops h264_aac.ts to a multicast group; twincastd in head has one channel,
// hls: true (no multicast output), and serves the page, hls.min.js and the playlists on
// ott.listen. Once live.m3u8 lists its window (three segments), tests/browser/play_hls.mjs
// runs in head: Debian's Chromium (headless, through playwright-core) opens the page, clicks
// the channel's Play button and samples the <video> for 12 s. It must have played >= 10 s with no hls.js
// fatal error and a picture of the fixture's size (see play_hls.mjs for what it checks).
// A second test stops the source first: the same check must then fail, and say why.
// A third makes the channel signed and AES-128 encrypted (key rotation every 3 segments):
// twincastctl hls-url mints a token through the REST API; Chromium plays the page opened
// with it (>= 10 s, no fatal error); a tampered token and an expired one are refused (403,
// hls.js fatal error, the page shows it), and curl without a token gets 403.
//
// Skipped without root/iproute2/ffmpeg, chromium or node; scripts/setup installs them and
// playwright-core (npm ci in tests/browser), so CI runs it. Namespaces get a random suffix
// and are deleted in TearDown, where every child is stopped too.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "dataplane/ns_appliance.hpp"
#include "tests_common.hpp"

namespace twincast::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kSrcIp = "10.51.0.1";
constexpr const char* kInIp = "10.51.0.2";
constexpr const char* kGroup = "239.1.1.80";
constexpr const char* kPage = "http://127.0.0.1:8090/";

// tests/browser: from TWINCAST_SOURCE_DIR (set by ctest), else next to this source file.
fs::path browser_dir() {
  if (const char* src = std::getenv("TWINCAST_SOURCE_DIR")) return fs::path(src) / "tests" / "browser";
  return fs::path(__FILE__).parent_path().parent_path() / "browser";
}

// The number after `"key":` in one line of JSON (NaN when absent or not a number).
double json_value(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return std::nan("");
  const std::string rest = json.substr(at + key.size() + 3);
  try {
    return std::stod(rest);
  } catch (...) {
    return std::nan("");
  }
}

class BrowserNs : public NsApplianceTest {
 protected:
  void SetUp() override {
    if (const std::string why = netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    if (run("chromium --version").exit_code != 0) GTEST_SKIP() << "chromium missing (scripts/setup installs it)";
    if (run("node --version").exit_code != 0) GTEST_SKIP() << "node missing (scripts/setup installs it)";
    ASSERT_TRUE(fs::exists(browser_dir() / "node_modules" / "playwright-core" / "package.json"))
        << "playwright-core is not installed in " << browser_dir() << ": run scripts/setup (npm ci there)";
    ASSERT_NO_FATAL_FAILURE(create_testbed({.prefix = "tb", .dir_name = "browser_ns", .src_ip = kSrcIp, .in_ip = kInIp}));
  }

  // twincastd in head with one HLS-only channel fed from kGroup; waits until it runs.
  // `protect`: signed URLs and AES-128 (the secret and the API token in dir_).
  pid_t start_appliance(bool protect = false) {
    std::string hls = "true", ott_extra, control;
    if (protect) {
      std::ofstream(dir_ / "hls.secret") << "browser-test-hls-secret-" << sfx_ << "\n";
      std::ofstream(dir_ / "api.token") << "browser-test-api-token-" << sfx_ << "\n";
      hls = "{ signed_urls: true, encrypt: true, key_rotation_segments: 3 }";
      ott_extra = "  secret_file: " + (dir_ / "hls.secret").string() + "\n";
      control = "control:\n  api_listen: 127.0.0.1:8080\n  token_file: " + (dir_ / "api.token").string() + "\n";
    }
    return start_twincastd(control + "channels:\n"
                           "  - id: news\n    name: News\n    hls: " + hls + "\n    inputs:\n"
                           "      - { name: rx, udp: { port: in, group: " + std::string(kGroup) + ", udp_port: 5000 } }\n"
                           "ott:\n  listen: 127.0.0.1:8090\n  segment_seconds: 2\n  window_segments: 3\n" + ott_extra);
  }

  // ffmpeg in src looping the fixture in real time to the channel's group.
  pid_t start_sender() {
    return start_child({"ip", "netns", "exec", src_, "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                        "-i", fixture("h264_aac.ts").string(), "-map", "0", "-c", "copy", "-f", "mpegts",
                        "udp://" + std::string(kGroup) + ":5000?pkt_size=1316&ttl=4&localaddr=" + kSrcIp},
                       "sender");
  }

  // Polls live.m3u8 (curl in head) until it lists `segments` segments; its last text.
  std::string wait_for_segments(std::size_t segments, std::chrono::milliseconds timeout, const std::string& query = "") {
    const auto file = dir_ / "live.m3u8";
    const auto until = std::chrono::steady_clock::now() + timeout;
    std::string text;
    while (std::chrono::steady_clock::now() < until) {
      if (fetch("live.m3u8" + query, file).exit_code == 0) {
        text = read_text(file);
        std::size_t n = 0;
        for (std::size_t at = 0; (at = text.find("#EXTINF:", at)) != std::string::npos; ++at) ++n;
        if (n >= segments) return text;
      }
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "live.m3u8 did not list " << segments << " segments: " << text << appliance_log();
    return text;
  }

  // play_hls.mjs in head against the page, stdout (the JSON summary) and stderr apart; a
  // screenshot of the page in <dir>/<tag>.png (kept when the test fails).
  struct Play {
    int exit_code = -1;
    std::string summary, err;
  };
  Play play(const std::string& channel, const std::string& tag, const std::string& options = "") {
    const auto out = dir_ / (tag + ".out"), err = dir_ / (tag + ".err");
    // In ( ): run() sends the command's stderr to its stdout, after our redirections.
    const std::string script = shell_quote((browser_dir() / "play_hls.mjs").string());
    const std::string png = shell_quote((dir_ / (tag + ".png")).string());
    const RunResult r = run("(ip netns exec " + head_ + " timeout 150 node " + script + " " + kPage + " " + channel +
                            " --screenshot " + png + options + " >" + shell_quote(out.string()) + " 2>" +
                            shell_quote(err.string()) + ")");
    Play p;
    p.exit_code = r.exit_code;
    p.summary = read_text(out);
    p.err = read_text(err);
    return p;
  }
};

TEST_F(BrowserNs, ChromiumPlaysALiveChannelFromTheWebPage) {
  ASSERT_GT(start_appliance(), 0);
  ASSERT_GT(start_sender(), 0);
  // The whole window (3 segments): hls.js starts 3 target durations behind the live edge,
  // so it begins with ~6 s buffered, not the ~2-4 s of a younger playlist.
  (void)wait_for_segments(3, 60s);  // a guard: ~7 s unloaded
  ASSERT_FALSE(HasFailure());

  const auto t0 = std::chrono::steady_clock::now();
  const Play p = play("news", "play");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "play_hls (" << took << " s): " << p.summary;
  ASSERT_EQ(p.exit_code, 0) << p.err << p.summary << read_text(dir_ / "sender.err");
  EXPECT_NE(p.summary.find("\"ok\":true"), std::string::npos) << p.summary;
  EXPECT_GE(json_value(p.summary, "advanced"), 10.0) << p.summary;
  EXPECT_GE(json_value(p.summary, "sampledSeconds"), 12.0) << p.summary;
  // h264_aac.ts is 320x240; hls.js 1.x played it through Media Source Extensions.
  EXPECT_EQ(json_value(p.summary, "videoWidth"), 320.0) << p.summary;
  EXPECT_EQ(json_value(p.summary, "videoHeight"), 240.0) << p.summary;
  EXPECT_GT(json_value(p.summary, "frames"), 100.0) << p.summary;  // 25 fps for >= 10 s
  EXPECT_NE(p.summary.find("\"hlsjs\":\"1."), std::string::npos) << p.summary;
  EXPECT_EQ(p.summary.find("\"fatal\":true"), std::string::npos) << p.summary;
}

// The same page once the source is gone: the live window (3 segments of 2 s) still plays,
// then nothing comes; the browser check must fail and say why.
TEST_F(BrowserNs, AStoppedSourceFailsTheBrowserCheck) {
  ASSERT_GT(start_appliance(), 0);
  const pid_t sender = start_sender();
  ASSERT_GT(sender, 0);
  (void)wait_for_segments(3, 60s);  // a guard: ~7 s unloaded
  ASSERT_FALSE(HasFailure());
  (void)end_child(sender, 5000ms);

  // The window is 12 s, not up to 20 s (the default): the buffer holds ~6 s, so it fails alike.
  const Play p = play("news", "stopped", " --max-seconds 12");
  std::cout << "play_hls, source stopped: " << p.summary << p.err;
  EXPECT_EQ(p.exit_code, 1) << p.err << p.summary;
  EXPECT_NE(p.summary.find("\"ok\":false"), std::string::npos) << p.summary;
  // Either it never started or it ran dry: both name the playback, not a crash of the script.
  const bool says_why = p.err.find("play_hls: FAIL: playback advanced") != std::string::npos ||
                        p.err.find("play_hls: FAIL: the video did not start playing") != std::string::npos;
  EXPECT_TRUE(says_why) << p.err;
  EXPECT_LT(json_value(p.summary, "advanced"), 10.0) << p.summary;
}

// A signed, encrypted channel: a token from twincastctl plays; a wrong and an expired one
// are refused by the origin and the page says so.
TEST_F(BrowserNs, ChromiumPlaysASignedEncryptedChannelAndWrongOrExpiredTokensAreRefused) {
  ASSERT_GT(start_appliance(true), 0);
  ASSERT_GT(start_sender(), 0);
  const std::string ctl = "ip netns exec " + head_ + " " + shell_quote(tool("twincastctl").string()) +
                          " --api 127.0.0.1:8080 --token-file " + shell_quote((dir_ / "api.token").string()) + " ";
  RunResult minted = run(ctl + "--json hls-url news --ttl 600");
  ASSERT_EQ(minted.exit_code, 0) << minted.out << appliance_log();
  const auto field = [](const std::string& json, const std::string& key) {
    const auto at = json.find("\"" + key + "\":\"");
    if (at == std::string::npos) return std::string();
    const auto from = at + key.size() + 4;
    return json.substr(from, json.find('"', from) - from);
  };
  const std::string token = field(minted.out, "token");
  ASSERT_FALSE(token.empty()) << minted.out;
  EXPECT_EQ(field(minted.out, "url"), std::string(kPage) + "hls/news/index.m3u8?token=" + token) << minted.out;
  const RunResult page_url = run(ctl + "hls-url news --ttl 600 --page");
  EXPECT_EQ(page_url.exit_code, 0) << page_url.out;
  EXPECT_EQ(page_url.out.rfind(std::string(kPage) + "?channel=news&token=", 0), 0U) << page_url.out;

  const std::string text = wait_for_segments(3, 60s, "?token=" + token);
  ASSERT_FALSE(HasFailure());
  EXPECT_NE(text.find("#EXT-X-KEY:METHOD=AES-128,URI=\"key-"), std::string::npos) << text;
  EXPECT_NE(text.find(".key?token=" + token + "\""), std::string::npos) << text;
  EXPECT_NE(text.find(".ts?token=" + token + "\n"), std::string::npos) << text;
  const RunResult bare = run("ip netns exec " + head_ + " curl -sS -o /dev/null -w '%{http_code}' " + kPage + "hls/news/live.m3u8");
  EXPECT_EQ(bare.out, "403") << bare.out;

  const Play p = play("news", "signed", " --token " + token);
  std::cout << "play_hls, signed + AES-128: " << p.summary;
  ASSERT_EQ(p.exit_code, 0) << p.err << p.summary << read_text(dir_ / "sender.err");
  EXPECT_GE(json_value(p.summary, "advanced"), 10.0) << p.summary;
  EXPECT_EQ(json_value(p.summary, "videoWidth"), 320.0) << p.summary;
  EXPECT_EQ(p.summary.find("\"fatal\":true"), std::string::npos) << p.summary;

  // A tampered token (its last MAC character changed), then an expired one.
  std::string wrong = token;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  const Play w = play("news", "wrong", " --token " + wrong + " --expect-refused");
  std::cout << "play_hls, wrong token: " << w.summary;
  EXPECT_EQ(w.exit_code, 0) << w.err << w.summary;
  EXPECT_NE(w.summary.find("\"fatal\":true"), std::string::npos) << w.summary;
  EXPECT_NE(w.summary.find("HTTP 403"), std::string::npos) << w.summary;

  minted = run(ctl + "--json hls-url news --ttl 1");
  ASSERT_EQ(minted.exit_code, 0) << minted.out;
  const std::string expired = field(minted.out, "token");
  std::this_thread::sleep_for(2100ms);
  const Play e = play("news", "expired", " --token " + expired + " --expect-refused");
  std::cout << "play_hls, expired token: " << e.summary;
  EXPECT_EQ(e.exit_code, 0) << e.err << e.summary;
  EXPECT_NE(e.summary.find("HTTP 403"), std::string::npos) << e.summary;

  // The refusals by reason reach the channel's API view.
  const RunResult view = run(ctl + "--json channel news");
  EXPECT_NE(view.out.find("\"refused\":{"), std::string::npos) << view.out;
  EXPECT_EQ(view.out.find("\"bad\":0"), std::string::npos) << view.out;
  EXPECT_EQ(view.out.find("\"expired\":0"), std::string::npos) << view.out;
}

}  // namespace
}  // namespace twincast::test
