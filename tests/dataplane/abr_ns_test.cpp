// Integration (root): ABR renditions through the real twincastd, between network namespaces.
//
//   [src: one ffmpeg, two encodes] veth 10.51.0.1 ─── veth [head: twincastd, DPDK af_packet "in" 10.51.0.2]
//
// One ffmpeg in src encodes one live test source twice (640x360 with two audio tracks, eng
// AAC and deu AC-3, on 239.1.1.80; 320x180 with one audio on 239.1.1.81), key frames forced
// every second, so both renditions carry the same timestamps and key frames at the same PTS,
// as an upstream encoder ladder sends them. twincastd receives the first as the channel's
// input and the second as its received rendition "lo" (a hidden data-plane channel
// "news.lo"); its origin serves the master with both variants and the alternate audio;
// ffmpeg plays the master (every variant and the alternate) without an error, and the two
// renditions' segments of the same number start at the same PTS.
//
// The namespaces, twincastd and its origin come from NsApplianceTest (ns_appliance.hpp):
// they get a random suffix and are deleted in TearDown with every child stopped.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/ns_appliance.hpp"
#include "tests_common.hpp"
#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/pes.hpp"

namespace twincast::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSrcIp = "10.51.0.1";
constexpr const char* kInIp = "10.51.0.2";

// Media sequence and segment URIs of a media playlist.
struct Listed {
  std::uint64_t media_sequence = 0;
  std::vector<std::string> uris;
};
Listed parse_media(const std::string& text) {
  Listed l;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#EXT-X-MEDIA-SEQUENCE:", 0) == 0) l.media_sequence = std::stoull(line.substr(22));
    else if (!line.empty() && line[0] != '#') l.uris.push_back(line);
  }
  return l;
}

std::optional<std::uint64_t> first_video_pts(const std::vector<std::uint8_t>& b) {
  for (std::size_t at = 0; at + mpegts::kPacketSize <= b.size(); at += mpegts::kPacketSize) {
    mpegts::TsPacket p;
    std::memcpy(p.bytes.data(), b.data() + at, mpegts::kPacketSize);
    if (!p.payload_unit_start() || p.pid() < 0x20) continue;
    const auto h = mpegts::parse_pes_header(p.payload());
    if (h && h->has_pts && (h->stream_id & 0xF0) == 0xE0) return h->pts;
  }
  return std::nullopt;
}

class AbrNs : public NsApplianceTest {
 protected:
  void SetUp() override {
    if (const std::string why = netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_NO_FATAL_FAILURE(create_testbed({.prefix = "tb", .dir_name = "abr_ns", .src_ip = kSrcIp, .in_ip = kInIp}));
  }
};

TEST_F(AbrNs, ReceivedRenditionAndAlternateAudioPlayThroughTwincastd) {
  const pid_t app = start_twincastd(
      "channels:\n"
      "  - id: news\n    name: News\n    inputs:\n"
      "      - { name: rx, udp: { port: in, group: 239.1.1.80, udp_port: 5000 } }\n"
      "    hls:\n      renditions:\n        - name: lo\n          inputs:\n"
      "            - { name: rx-lo, udp: { port: in, group: 239.1.1.81, udp_port: 5000 } }\n"
      "ott:\n  listen: 127.0.0.1:8090\n  segment_seconds: 2\n  window_segments: 5\n");
  ASSERT_GT(app, 0);
  const std::string x264 = "-c:v libx264 -preset ultrafast -tune zerolatency -g 25 -keyint_min 25 -sc_threshold 0 "
                           "-force_key_frames expr:gte(t,n_forced) -pix_fmt yuv420p";
  auto url = [](const std::string& group) {
    return "udp://" + group + ":5000?pkt_size=1316&ttl=4&localaddr=" + std::string(kSrcIp);
  };
  std::vector<std::string> args = {"ip", "netns", "exec", src_, "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
                                   "-i", "testsrc2=size=640x360:rate=25", "-re", "-f", "lavfi", "-i",
                                   "sine=frequency=440:sample_rate=48000", "-re", "-f", "lavfi", "-i",
                                   "sine=frequency=660:sample_rate=48000", "-filter_complex",
                                   "[0:v]split=2[hi][x];[x]scale=320:180[lo]", "-map", "[hi]", "-map", "1:a", "-map", "2:a"};
  std::istringstream xs(x264);
  std::vector<std::string> x264_args;
  for (std::string a; xs >> a;) x264_args.push_back(a);
  args.insert(args.end(), x264_args.begin(), x264_args.end());
  for (const char* a : {"-b:v", "900k", "-c:a:0", "aac", "-b:a:0", "96k", "-c:a:1", "ac3", "-b:a:1", "128k",
                        "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=deu", "-f", "mpegts"})
    args.emplace_back(a);
  args.push_back(url("239.1.1.80"));
  for (const char* a : {"-map", "[lo]", "-map", "1:a"}) args.emplace_back(a);
  args.insert(args.end(), x264_args.begin(), x264_args.end());
  for (const char* a : {"-b:v", "250k", "-c:a", "aac", "-b:a", "64k", "-metadata:s:a:0", "language=eng", "-f", "mpegts"})
    args.emplace_back(a);
  args.push_back(url("239.1.1.81"));
  const pid_t sender = start_child(args, "sender");
  ASSERT_GT(sender, 0);

  // The master lists both variants and the alternate once each has segments.
  std::string master;
  (void)poll_until(30s, [&] {
    if (fetch("index.m3u8", dir_ / "index.m3u8").exit_code != 0) return false;
    master = read_text(dir_ / "index.m3u8");
    return master.find("live-lo.m3u8") != std::string::npos && master.find("URI=\"audio-") != std::string::npos;
  });
  ASSERT_NE(master.find("live-lo.m3u8"), std::string::npos) << master << appliance_log() << read_text(dir_ / "sender.err");
  EXPECT_NE(master.find("RESOLUTION=320x180"), std::string::npos) << master;
  EXPECT_NE(master.find("RESOLUTION=640x360"), std::string::npos) << master;
  EXPECT_LT(master.find("live-lo.m3u8"), master.find("live.m3u8")) << "lowest bandwidth first: " << master;
  EXPECT_NE(master.find("LANGUAGE=\"deu\""), std::string::npos) << master;
  EXPECT_NE(master.find("AUDIO=\"aud\""), std::string::npos) << master;

  // Wait for a few more segments, then compare the renditions' segments of the same number.
  // At least 6 s, then until both playlists list 3 numbers in common (bounded): the live
  // encoder in src may run behind real time on a loaded machine, and a fixed 6 s then
  // leaves too few segments to compare.
  std::this_thread::sleep_for(6s);
  Listed hi, lo;
  auto in_common = [&] {
    std::size_t n = 0;
    for (std::size_t i = 0; i < hi.uris.size(); ++i) {
      const std::uint64_t seq = hi.media_sequence + i;
      n += seq >= lo.media_sequence && seq < lo.media_sequence + lo.uris.size() ? 1U : 0U;
    }
    return n;
  };
  (void)poll_until(30s, [&] {
    if (fetch("live.m3u8", dir_ / "live.m3u8").exit_code != 0 || fetch("live-lo.m3u8", dir_ / "live-lo.m3u8").exit_code != 0)
      return false;
    hi = parse_media(read_text(dir_ / "live.m3u8"));
    lo = parse_media(read_text(dir_ / "live-lo.m3u8"));
    return in_common() >= 3;
  });
  ASSERT_EQ(fetch("live.m3u8", dir_ / "live.m3u8").exit_code, 0);
  ASSERT_EQ(fetch("live-lo.m3u8", dir_ / "live-lo.m3u8").exit_code, 0);
  std::size_t compared = 0;
  for (std::size_t i = 0; i < hi.uris.size(); ++i) {
    const std::uint64_t seq = hi.media_sequence + i;
    if (seq < lo.media_sequence || seq >= lo.media_sequence + lo.uris.size()) continue;
    const std::string lo_uri = lo.uris[seq - lo.media_sequence];
    EXPECT_EQ(lo_uri, "seg-lo-" + std::to_string(seq) + ".ts");
    ASSERT_EQ(fetch(hi.uris[i], dir_ / hi.uris[i]).exit_code, 0);
    ASSERT_EQ(fetch(lo_uri, dir_ / lo_uri).exit_code, 0);
    const auto a = first_video_pts(read_file(dir_ / hi.uris[i]));
    const auto b = first_video_pts(read_file(dir_ / lo_uri));
    ASSERT_TRUE(a && b) << seq;
    EXPECT_EQ(*a, *b) << "segment " << seq << " starts at different PTS in the two renditions";
    ++compared;
  }
  EXPECT_GE(compared, 3u) << read_text(dir_ / "live.m3u8") << read_text(dir_ / "live-lo.m3u8");

  // The alternate audio's segments hold that one stream.
  const std::size_t uri_at = master.find("URI=\"audio-");
  ASSERT_NE(uri_at, std::string::npos);
  const std::string audio_uri = master.substr(uri_at + 5, master.find('"', uri_at + 5) - uri_at - 5);
  ASSERT_EQ(fetch(audio_uri, dir_ / "audio.m3u8").exit_code, 0);
  const Listed audio = parse_media(read_text(dir_ / "audio.m3u8"));
  ASSERT_FALSE(audio.uris.empty());
  ASSERT_EQ(fetch(audio.uris.back(), dir_ / "audio.ts").exit_code, 0);
  const RunResult probe = run("ffprobe -v error -show_entries format=nb_streams -of default=nw=1 " +
                              shell_quote((dir_ / "audio.ts").string()) + " 2>&1");
  EXPECT_EQ(probe.out, "nb_streams=1\n");

  // A real player follows the live master, every variant and the alternate (-map 0).
  const RunResult play = play_master(60, "-map 0");
  EXPECT_EQ(play.exit_code, 0) << play.out;
  EXPECT_EQ(play.out, "") << play.out;

  // The hidden channel runs in the data plane (status lines) but is not an API channel.
  const std::string log = appliance_log();
  EXPECT_NE(log.find("channel=news.lo "), std::string::npos) << log;
  const RunResult api = run("ip netns exec " + head_ + " " + shell_quote(tool("twincastctl").string()) + " --api 127.0.0.1:8080 --json status");
  EXPECT_NE(api.out.find("\"news\""), std::string::npos) << api.out;
  EXPECT_EQ(api.out.find("news.lo"), std::string::npos) << api.out;
  // Its input is the channel's too, as "lo.rx-lo" (active for its rendition), with its own
  // counts and state: in the API, in /metrics, and in the channel's alarms once it stops.
  const RunResult detail = run("ip netns exec " + head_ + " " + shell_quote(tool("twincastctl").string()) +
                               " --api 127.0.0.1:8080 --json channel news");
  const std::size_t lo_at = detail.out.find("\"id\":\"lo.rx-lo\"");
  ASSERT_NE(lo_at, std::string::npos) << detail.out;
  const std::string lo_input = detail.out.substr(lo_at, detail.out.find('}', lo_at) - lo_at);
  EXPECT_NE(lo_input.find("\"active\":true"), std::string::npos) << lo_input;
  EXPECT_NE(lo_input.find("\"state\":\"ok\""), std::string::npos) << lo_input;
  const RunResult metrics = run(ns_exec(head_) + "curl -sS http://127.0.0.1:9100/metrics");
  const std::string series = "twincast_input_packets_total{channel=\"news\",input=\"lo.rx-lo\"} ";
  const std::size_t at = metrics.out.find(series);
  ASSERT_NE(at, std::string::npos) << metrics.out;
  EXPECT_GT(std::stod(metrics.out.substr(at + series.size())), 1000.0) << metrics.out.substr(at, 80);
  ASSERT_EQ(kill(sender, SIGSTOP), 0);  // both feeds pause
  std::string alarms;
  (void)poll_until(10s, [&] {
    alarms = run("ip netns exec " + head_ + " " + shell_quote(tool("twincastctl").string()) +
                 " --api 127.0.0.1:8080 --json channel news").out;
    return alarms.find("input lo.rx-lo (active) down") != std::string::npos;
  });
  EXPECT_NE(alarms.find("input lo.rx-lo (active) down"), std::string::npos) << alarms;
  (void)kill(sender, SIGCONT);

  stop_twincastd(app);
}

}  // namespace
}  // namespace twincast::test
