// twincast-ts end to end: the built tool on ffmpeg-made streams, its output read back by
// ffprobe and decoded by ffmpeg.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests_common.hpp"

namespace fs = std::filesystem;
namespace json = boost::json;
using twincast::test::fixture;
using twincast::test::run;
using twincast::test::shell_quote;
using twincast::test::tool;

namespace {

std::string ts_tool() { return shell_quote(tool("twincast-ts").string()); }

json::value probe(const fs::path& file) {
  const auto r = run("ffprobe -v error -show_programs -show_streams -show_format -of json " + shell_quote(file.string()));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return json::parse(r.out);
}

// ffmpeg decodes every stream; returns what it complained about (empty = clean).
std::string decode_errors(const fs::path& file) {
  const auto r = run("ffmpeg -nostdin -hide_banner -v error -i " + shell_quote(file.string()) + " -map 0 -f null -");
  return r.exit_code == 0 ? r.out : "exit " + std::to_string(r.exit_code) + ": " + r.out;
}

double duration_s(const json::value& probed) {
  return std::stod(std::string(probed.at("format").at("duration").as_string()));
}

class TsTool : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = twincast::test::temp_dir("ts-tool"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

}  // namespace

TEST_F(TsTool, RemuxSelectsOneServiceThatFfprobeAndFfmpegRead) {
  const fs::path out = dir_ / "bravo.ts";
  const auto r = run(ts_tool() + " remux --service 2 -o " + shell_quote(out.string()) + " " + shell_quote(fixture("mpts3.ts").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto p = probe(out);
  const auto& programs = p.at("programs").as_array();
  ASSERT_EQ(programs.size(), 1u);
  EXPECT_EQ(programs[0].at("program_id").as_int64(), 2);
  EXPECT_EQ(programs[0].at("tags").at("service_name").as_string(), "Bravo");
  const auto& streams = p.at("streams").as_array();
  ASSERT_EQ(streams.size(), 2u);
  EXPECT_EQ(streams[0].at("codec_name").as_string(), "h264");
  EXPECT_EQ(streams[1].at("codec_name").as_string(), "aac");
  EXPECT_NEAR(duration_s(p), duration_s(probe(fixture("mpts3.ts"))), 0.2);
  EXPECT_EQ(decode_errors(out), "");
}

TEST_F(TsTool, RemuxMergesThreeFilesIntoAnMptsWithLcns) {
  const fs::path out = dir_ / "mux.ts";
  const auto r = run(ts_tool() + " remux -o " + shell_quote(out.string()) + " --service-id 10,20,30 --lcn 1,2,3 --name A,B,C " +
                     shell_quote(fixture("h264_aac.ts").string()) + " " + shell_quote(fixture("hevc_aac.ts").string()) + " " +
                     shell_quote(fixture("mpeg2_mp2.ts").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto p = probe(out);
  const auto& programs = p.at("programs").as_array();
  ASSERT_EQ(programs.size(), 3u);
  std::vector<std::string> codecs;
  for (const auto& prog : programs) {
    for (const auto& s : prog.at("streams").as_array()) codecs.emplace_back(s.at("codec_name").as_string());
  }
  EXPECT_EQ(programs[0].at("program_id").as_int64(), 10);
  EXPECT_EQ(programs[1].at("tags").at("service_name").as_string(), "B");
  EXPECT_EQ(programs[2].at("program_id").as_int64(), 30);
  EXPECT_EQ(codecs, (std::vector<std::string>{"h264", "aac", "hevc", "aac", "mpeg2video", "mp2"}));
  EXPECT_NEAR(duration_s(p), 6.0, 0.5);
  EXPECT_EQ(decode_errors(out), "");
}

TEST_F(TsTool, RemuxMovesAndDropsPids) {
  const fs::path out = dir_ / "moved.ts";
  // two_audio.ts: ffmpeg's default PIDs 0x100 video, 0x101 eng AAC, 0x102 deu AC-3.
  const auto r = run(ts_tool() + " remux --map 0x100=0x200 --drop 0x102 -o " + shell_quote(out.string()) + " " +
                     shell_quote(fixture("two_audio.ts").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto p = probe(out);
  const auto& streams = p.at("streams").as_array();
  ASSERT_EQ(streams.size(), 2u);
  EXPECT_EQ(streams[0].at("id").as_string(), "0x200");
  EXPECT_EQ(streams[1].at("codec_name").as_string(), "aac");
  EXPECT_EQ(streams[1].at("tags").at("language").as_string(), "eng");
  EXPECT_EQ(decode_errors(out), "");
}

TEST_F(TsTool, AnalyzeJsonDescribesTheStream) {
  const auto r = run(ts_tool() + " analyze --json " + shell_quote(fixture("mpts3.ts").string()) + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto v = json::parse(r.out);
  const auto& services = v.at("services").as_array();
  ASSERT_EQ(services.size(), 3u);
  const auto& s = services[1].as_object();
  EXPECT_EQ(s.at("service_id").as_int64(), 2);
  EXPECT_EQ(s.at("name").as_string(), "Bravo");
  EXPECT_TRUE(s.at("pmt_pid").is_int64());
  EXPECT_TRUE(s.at("pcr_pid").is_int64());
  const auto& streams = s.at("streams").as_array();
  ASSERT_EQ(streams.size(), 2u);
  EXPECT_EQ(streams[0].at("codec").as_string(), "h264");
  EXPECT_EQ(streams[0].at("stream_type").as_int64(), 0x1B);
  EXPECT_EQ(streams[1].at("codec").as_string(), "aac");
  EXPECT_EQ(v.at("tr101290").at("Continuity_count_error").as_int64(), 0);
  EXPECT_EQ(v.at("tr101290").at("PAT_error_2").as_int64(), 0);
  // ffmpeg was told -muxrate 3000k.
  EXPECT_NEAR(static_cast<double>(v.at("bitrate_bps").to_number<std::int64_t>()), 3'000'000.0, 60'000.0);
}

TEST_F(TsTool, AnalyzeCountsInjectedLoss) {
  auto pkts = twincast::test::read_packets(fixture("h264_aac.ts"));
  std::vector<twincast::mpegts::TsPacket> lossy;
  std::size_t dropped = 0;
  std::size_t seen_video = 0;
  for (const auto& p : pkts) {
    // Drop every 100th payload packet of the video PID (0x100): each one is one CC error.
    // (Adaptation-only packets, which ffmpeg sends for PCRs, do not advance the CC.)
    if (p.pid() == 0x100 && p.has_payload() && ++seen_video % 100 == 0) {
      ++dropped;
      continue;
    }
    lossy.push_back(p);
  }
  const fs::path in = dir_ / "lossy.ts";
  twincast::test::write_packets(in, lossy);
  const auto r = run(ts_tool() + " analyze --json " + shell_quote(in.string()) + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto v = json::parse(r.out);
  EXPECT_GT(dropped, 5u);
  EXPECT_EQ(v.at("tr101290").at("Continuity_count_error").as_int64(), static_cast<std::int64_t>(dropped));
}

// Garbage between packets at three places, each long after the stream regained sync: three
// sync losses, counted where they happen (not once, at the end of the file).
TEST_F(TsTool, AnalyzeCountsEverySyncLoss) {
  const auto bytes = twincast::test::read_file(fixture("h264_aac.ts"));
  std::vector<std::uint8_t> broken;
  const std::size_t n = bytes.size() / 188;
  for (std::size_t i = 0; i < n; ++i) {
    if (i == n / 4 || i == n / 2 || i == 3 * n / 4) broken.insert(broken.end(), 100, 0x00);
    broken.insert(broken.end(), bytes.begin() + static_cast<std::ptrdiff_t>(i * 188),
                  bytes.begin() + static_cast<std::ptrdiff_t>((i + 1) * 188));
  }
  const fs::path in = dir_ / "resync.ts";
  twincast::test::write_file(in, broken);
  const auto r = run(ts_tool() + " analyze --json " + shell_quote(in.string()) + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto v = json::parse(r.out);
  EXPECT_EQ(v.at("packets").as_int64(), static_cast<std::int64_t>(n));
  EXPECT_EQ(v.at("skipped_bytes").as_int64(), 300);
  EXPECT_EQ(v.at("tr101290").at("TS_sync_loss").as_int64(), 3);
}

// One corrupted sync byte (0x46) mid-file: TR 101 290 1.2 Sync_byte_error, not 1.1
// TS_sync_loss (that takes 2 or more in a row), and the packet is still counted.
TEST_F(TsTool, AnalyzeCountsOneCorruptedSyncByteAsASyncByteError) {
  auto bytes = twincast::test::read_file(fixture("h264_aac.ts"));
  const std::size_t n = bytes.size() / 188;
  bytes[(n / 2) * 188] = 0x46;
  const fs::path in = dir_ / "badsync.ts";
  twincast::test::write_file(in, bytes);
  const auto r = run(ts_tool() + " analyze --json " + shell_quote(in.string()) + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto v = json::parse(r.out);
  EXPECT_EQ(v.at("packets").as_int64(), static_cast<std::int64_t>(n));
  EXPECT_EQ(v.at("skipped_bytes").as_int64(), 0);
  EXPECT_EQ(v.at("tr101290").at("Sync_byte_error").as_int64(), 1);
  EXPECT_EQ(v.at("tr101290").at("TS_sync_loss").as_int64(), 0);
}

// A capture starts anywhere, here just after a PCR: the packets before the first PCR are part
// of the file's duration, not extra bits on top of it (ffmpeg was told -muxrate 1500k).
TEST_F(TsTool, AnalyzeBitrateOfACaptureThatStartsAfterAPcr) {
  const auto pkts = twincast::test::read_packets(fixture("h264_aac.ts"));
  std::size_t start = 0;
  for (std::size_t i = 0, seen = 0; i < pkts.size() && start == 0; ++i)
    if (pkts[i].pid() == 0x100 && pkts[i].has_pcr() && ++seen == 100) start = i + 1;
  ASSERT_NE(start, 0u);
  const std::vector<twincast::mpegts::TsPacket> cut(pkts.begin() + static_cast<std::ptrdiff_t>(start),
                                                   pkts.begin() + static_cast<std::ptrdiff_t>(start + 1000));
  const fs::path in = dir_ / "capture.ts";
  twincast::test::write_packets(in, cut);
  const auto r = run(ts_tool() + " analyze --json " + shell_quote(in.string()) + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto v = json::parse(r.out);
  EXPECT_NEAR(static_cast<double>(v.at("timing").at("rate_bps").to_number<std::int64_t>()), 1'500'000.0, 3'000.0);
  // 1000 packets at 1.5 Mbit/s: 1.0027 s from the first packet's start to the last one's.
  EXPECT_NEAR(v.at("duration_s").to_number<double>(), 1.0, 0.005) << r.out;
  EXPECT_NEAR(static_cast<double>(v.at("bitrate_bps").to_number<std::int64_t>()), 1'500'000.0, 3'000.0) << r.out;
}

// The JSON is for scripts and jq: it stays valid UTF-8 when the stream's texts or the file's
// name are not (a service name in Latin-1 behind the UTF-8 selector, a Latin-1 file name).
TEST_F(TsTool, AnalyzeJsonIsValidUtf8ForAnyNames) {
  const fs::path in = dir_ / "caf\xE9.ts";
  const auto g = run(ts_tool() + " remux -o " + shell_quote(in.string()) + " --name " + shell_quote("\xC9t\xE9 Sport") + " " +
                     shell_quote(fixture("h264_aac.ts").string()));
  ASSERT_EQ(g.exit_code, 0) << g.out;
  const auto r = run(ts_tool() + " analyze --json " + shell_quote(in.string()) + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  boost::system::error_code ec;
  const auto v = json::parse(r.out, ec);
  ASSERT_FALSE(ec) << ec.message() << ": " << r.out;
  const auto& services = v.at("services").as_array();
  ASSERT_EQ(services.size(), 1u);
  EXPECT_NE(std::string(services[0].at("name").as_string()).find(" Sport"), std::string::npos) << r.out;
  EXPECT_NE(std::string(v.at("file").as_string()).find("caf"), std::string::npos) << r.out;
}

TEST_F(TsTool, TextReportNamesServicesAndCodecs) {
  const auto r = run(ts_tool() + " analyze " + shell_quote(fixture("two_audio.ts").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("h264"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ac3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("deu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Continuity_count_error"), std::string::npos) << r.out;
}

// A short libx264 file: one IDR, so its only SPS comes right after the PMT (85 packets in all).
TEST_F(TsTool, AnalyzeReadsTheOnlySpsOfAShortFile) {
  const fs::path in = dir_ / "short.ts";
  const auto g = run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=30000/1001 -t 1 -c:v libx264 "
                     "-g 250 -f mpegts " + shell_quote(in.string()));
  ASSERT_EQ(g.exit_code, 0) << g.out;
  const auto r = run(ts_tool() + " analyze --json " + shell_quote(in.string()) + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto v = json::parse(r.out);
  const auto& services = v.at("services").as_array();
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].at("hls_codecs").as_string().subview().substr(0, 5), "avc1.") << r.out;
  const auto& es = services[0].at("streams").as_array().at(0).as_object();
  ASSERT_TRUE(es.contains("width")) << r.out;
  EXPECT_EQ(es.at("width").as_int64(), 320);
  EXPECT_EQ(es.at("height").as_int64(), 240);
}

// NTSC rates are not whole numbers: the text report must not round 29.97 fps to 30.
TEST_F(TsTool, TextReportKeepsFractionalFrameRates) {
  const fs::path in = dir_ / "ntsc.ts";
  const auto g = run("ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=30000/1001 -t 10 -c:v libx264 "
                     "-b:v 800k -g 12 -f mpegts " + shell_quote(in.string()));
  ASSERT_EQ(g.exit_code, 0) << g.out;
  const auto r = run(ts_tool() + " analyze " + shell_quote(in.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("320x240 29.97 fps"), std::string::npos) << r.out;
}

TEST_F(TsTool, ClearErrorsForBadUse) {
  auto r = run(ts_tool() + " analyze /nonexistent/file.ts");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("/nonexistent/file.ts"), std::string::npos) << r.out;
  r = run(ts_tool() + " remux " + shell_quote(fixture("h264_aac.ts").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("-o"), std::string::npos) << r.out;
  r = run(ts_tool() + " remux --service 9 -o " + shell_quote((dir_ / "x.ts").string()) + " " + shell_quote(fixture("mpts3.ts").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no service 9"), std::string::npos) << r.out;
  r = run(ts_tool() + " remux --map 0x100=0x11 -o " + shell_quote((dir_ / "x.ts").string()) + " " + shell_quote(fixture("h264_aac.ts").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("out of range"), std::string::npos) << r.out;
  r = run(ts_tool() + " frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  // Random bytes are not a transport stream: a message, not a crash.
  std::vector<std::uint8_t> junk(100000);
  for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<std::uint8_t>((i * 7919) >> 3);
  twincast::test::write_file(dir_ / "junk.bin", junk);
  r = run(ts_tool() + " remux -o " + shell_quote((dir_ / "y.ts").string()) + " " + shell_quote((dir_ / "junk.bin").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no PAT/PMT"), std::string::npos) << r.out;
  r = run(ts_tool() + " analyze " + shell_quote((dir_ / "junk.bin").string()));
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

namespace {

// 7 packets of `pkts` from `first`, after `head` (an RTP header, or nothing) and before
// `tail` (RTP padding, or nothing): one datagram.
std::vector<std::uint8_t> datagram(const std::vector<twincast::mpegts::TsPacket>& pkts, std::size_t first,
                                   std::vector<std::uint8_t> head = {}, const std::vector<std::uint8_t>& tail = {}) {
  for (std::size_t k = 0; k < 7; ++k) head.insert(head.end(), pkts[first + k].bytes.begin(), pkts[first + k].bytes.end());
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

// An RTP header: V=2, PT=33, sequence `seq`, SSRC 0x01020304; `padding` sets the P bit.
std::vector<std::uint8_t> rtp_header(std::size_t seq, bool padding = false) {
  return {static_cast<std::uint8_t>(padding ? 0xA0 : 0x80), 33, 0, static_cast<std::uint8_t>(seq), 0, 0, 0, 0, 1, 2, 3, 4};
}

struct Recording {
  int status = -1;  // as pclose() returns it
  std::string log;  // what the tool printed
};

// The bytes waiting in the receive queue of the IPv4 UDP socket bound to `port` (any
// address), as /proc/net/udp lists it; -1 when no socket is bound to it.
long udp_rx_queue(int port) {
  std::ifstream f("/proc/net/udp");
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  std::string line;
  std::getline(f, line);  // the header
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state, queues;
    in >> slot >> local >> remote >> state >> queues;  // queues: tx_queue:rx_queue, in hex
    if (local.size() > 5 && local.compare(local.size() - 5, 5, want) == 0) {
      const std::size_t colon = queues.find(':');
      return colon == std::string::npos ? 0 : std::stol(queues.substr(colon + 1), nullptr, 16);
    }
  }
  return -1;
}

bool udp_port_bound(int port) { return udp_rx_queue(port) >= 0; }

// A UDP port from `base` on that nothing is bound to now.
int unbound_udp_port(int base) {
  int port = base;
  while (udp_port_bound(port)) port = port >= 65000 ? 20000 : port + 1;
  return port;
}

// `record_cmd` (a `twincast-ts record ... 127.0.0.1:port FILE`) run while a kernel UDP sender
// on loopback sends it `datagrams`, once the tool has bound the port (it starts its
// --seconds after that): a sleep would not do, the tool's start can take seconds under ASan
// on a loaded machine, and datagrams sent before the bind are lost. Each datagram goes once
// the tool's receive queue is under 64 KiB, so none overflows the socket's buffer however
// slowly the tool reads (pacing them by time made the sending outlast --seconds when the
// machine was loaded).
Recording record(const std::string& record_cmd, int port, const std::vector<std::vector<std::uint8_t>>& datagrams) {
  Recording r;
  FILE* rec = ::popen((record_cmd + " 2>&1").c_str(), "r");
  if (rec == nullptr) return r;
  // A guard only: a tool that never binds fails below, with what it printed.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!udp_port_bound(port) && std::chrono::steady_clock::now() < until) ::usleep(2000);
  const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (const auto& d : datagrams) {
    while (udp_rx_queue(port) > 64 * 1024 && std::chrono::steady_clock::now() < until) ::usleep(1000);
    EXPECT_EQ(::sendto(s, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(d.size()));
  }
  ::close(s);
  char buf[512];
  while (std::fgets(buf, sizeof buf, rec) != nullptr) r.log += buf;
  r.status = ::pclose(rec);
  return r;
}

}  // namespace

TEST_F(TsTool, RecordWritesDatagramsUnchangedAndUnwrapsRtp) {
  // A kernel UDP sender on loopback: plain TS datagrams, then RTP-wrapped ones.
  const auto pkts = twincast::test::read_packets(fixture("h264_aac.ts"));
  const fs::path out = dir_ / "rec.ts";
  const int port = unbound_udp_port(20000 + static_cast<int>(::getpid() % 20000));
  std::vector<std::vector<std::uint8_t>> datagrams;
  for (std::size_t i = 0; i + 7 <= 700; i += 7) datagrams.push_back(datagram(pkts, i, i >= 350 ? rtp_header(i) : std::vector<std::uint8_t>{}));
  const Recording r = record(ts_tool() + " record --seconds 6 127.0.0.1:" + std::to_string(port) + " " + shell_quote(out.string()),
                             port, datagrams);
  EXPECT_EQ(r.status, 0) << r.log;
  EXPECT_NE(r.log.find("100 datagrams (50 RTP"), std::string::npos) << r.log;
  const auto got = twincast::test::read_packets(out);
  ASSERT_EQ(got.size(), 700u);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i].bytes, pkts[i].bytes) << "packet " << i;
}

// RFC 3550 5.1: with the P bit set, the last octet counts padding octets at the end of the
// payload. They are not TS and must not reach the file.
TEST_F(TsTool, RecordDropsRtpPadding) {
  const auto pkts = twincast::test::read_packets(fixture("h264_aac.ts"));
  const fs::path out = dir_ / "padded.ts";
  const int port = unbound_udp_port(20000 + static_cast<int>((::getpid() + 7) % 20000));
  std::vector<std::vector<std::uint8_t>> datagrams;
  for (std::size_t i = 0; i + 7 <= 70; i += 7) datagrams.push_back(datagram(pkts, i, rtp_header(i, true), {0, 0, 0, 4}));  // 4 octets of padding
  const Recording r = record(ts_tool() + " record --seconds 4 127.0.0.1:" + std::to_string(port) + " " + shell_quote(out.string()),
                             port, datagrams);
  EXPECT_EQ(r.status, 0) << r.log;
  EXPECT_NE(r.log.find("10 datagrams (10 RTP, 0 not a multiple of 188 bytes)"), std::string::npos) << r.log;
  const auto bytes = twincast::test::read_file(out);
  ASSERT_EQ(bytes.size(), 70u * 188) << r.log;
  const auto got = twincast::test::read_packets(out);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i].bytes, pkts[i].bytes) << "packet " << i;
}

// A recording that could not be written (disk full) is a failure, not "N datagrams -> file".
TEST_F(TsTool, RecordFailsWhenTheFileCannotBeWritten) {
  const auto pkts = twincast::test::read_packets(fixture("h264_aac.ts"));
  const int port = unbound_udp_port(20000 + static_cast<int>((::getpid() + 13) % 20000));
  std::vector<std::vector<std::uint8_t>> datagrams;
  for (std::size_t i = 0; i + 7 <= 70; i += 7) datagrams.push_back(datagram(pkts, i));
  const Recording r = record(ts_tool() + " record --seconds 2 127.0.0.1:" + std::to_string(port) + " /dev/full", port,
                             datagrams);
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2) << r.status << ": " << r.log;
  EXPECT_NE(r.log.find("/dev/full"), std::string::npos) << r.log;
}
