// Transcoder with real peers: ffmpeg makes the sources, the rungs' outputs are read back by
// ffprobe (codec, size, audio, key-frame PTS, frame counts) and decoded by ffmpeg.
#include "twincast/control/transcoder.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <dirent.h>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests_common.hpp"

namespace fs = std::filesystem;
using twincast::control::TranscodeError;
using twincast::control::TranscodedChunk;
using twincast::control::Transcoder;
using twincast::control::TranscoderConfig;
using twincast::control::TranscoderStats;
using twincast::test::fixture;
using twincast::test::run;
using twincast::test::shell_quote;

namespace {

using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::uint8_t>;

std::string q(const fs::path& p) { return shell_quote(p.string()); }

// Makes (once, cached beside the other fixtures) a generated source: `args` are ffmpeg's.
fs::path cached_source(const std::string& name, const std::string& args) {
  const char* dir = std::getenv("TWINCAST_FIXTURE_DIR");
  const fs::path d = dir != nullptr ? fs::path(dir) : fs::path("fixtures");
  fs::create_directories(d);
  const fs::path p = d / name;
  if (fs::exists(p)) return p;
  const fs::path tmp = d / (name + ".tmp" + std::to_string(::getpid()) + ".ts");
  const auto r = run("ffmpeg -nostdin -hide_banner -loglevel error -y " + args + " -f mpegts " + q(tmp));
  if (r.exit_code != 0) throw std::runtime_error("ffmpeg: " + r.out);
  fs::rename(tmp, p);
  return p;
}

// 10 s of 720p25 H.264 (1 s GOP, no scene cuts, B-frames) + AAC, like an upstream encoder.
fs::path source_720p() {
  return cached_source(
      "transcode_720p25.ts",
      "-f lavfi -i testsrc2=size=1280x720:rate=25:duration=10 "
      "-f lavfi -i sine=frequency=440:sample_rate=48000:duration=10 "
      "-c:v libx264 -preset veryfast -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p -b:v 3000k "
      "-c:a aac -b:a 128k");
}

// 3 s of AAC alone (no video stream).
fs::path source_audio_only() {
  return cached_source("transcode_audio_only.ts",
                       "-f lavfi -i sine=frequency=440:sample_rate=48000:duration=3 -c:a aac -b:a 96k");
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) {
    while (!l.empty() && (l.back() == ',' || l.back() == '\r' || l.back() == ' ')) l.pop_back();
    if (!l.empty()) out.push_back(l);
  }
  return out;
}

std::vector<std::int64_t> numbers(const std::string& s) {
  std::vector<std::int64_t> out;
  for (const auto& l : lines(s)) out.push_back(std::stoll(l));
  return out;
}

// The PTS of every key frame the decoder sees (ffprobe -skip_frame nokey).
std::vector<std::int64_t> key_frame_pts(const fs::path& f) {
  const auto r = run("ffprobe -v error -select_streams v:0 -skip_frame nokey -show_entries frame=pts -of csv=p=0 " + q(f));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return numbers(r.out);
}

std::int64_t video_frames(const fs::path& f) {
  const auto r = run("ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 " + q(f));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  const auto n = numbers(r.out);  // the stream, and again under its program
  return n.empty() ? -1 : n[0];
}

std::string video_format(const fs::path& f) {  // "h264,960,540"
  const auto r = run("ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 " + q(f));
  const auto l = lines(r.out);
  return l.empty() ? "" : l[0];
}

// "pts,size" of every packet of the first audio stream.
std::vector<std::string> audio_packets(const fs::path& f) {
  const auto r = run("ffprobe -v error -select_streams a:0 -show_entries packet=pts,size -of csv=p=0 " + q(f));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return lines(r.out);
}

std::string audio_codec(const fs::path& f) {
  const auto r = run("ffprobe -v error -select_streams a:0 -show_entries stream=codec_name -of csv=p=0 " + q(f));
  const auto l = lines(r.out);
  return l.empty() ? "" : l[0];
}

// What ffmpeg complains about while decoding everything (empty = clean).
std::string decode_errors(const fs::path& f) {
  const auto r = run("ffmpeg -nostdin -hide_banner -v error -i " + q(f) + " -map 0 -f null -");
  return r.exit_code == 0 ? r.out : "exit " + std::to_string(r.exit_code) + ": " + r.out;
}

// Each rung's output, split into segments at chunks that carry discontinuity = true.
struct Outputs {
  std::vector<std::vector<Bytes>> rungs;
  std::vector<std::size_t> discontinuities;
  std::size_t chunks = 0;
  bool misaligned = false;  // a chunk that is not whole packets
};

void drain(Transcoder& t, Outputs& o) {
  TranscodedChunk c;
  while (t.pop(c)) {
    if (o.rungs.size() <= c.rung) {
      o.rungs.resize(c.rung + 1);
      o.discontinuities.resize(c.rung + 1);
    }
    auto& segs = o.rungs[c.rung];
    if (c.discontinuity) ++o.discontinuities[c.rung];
    if (segs.empty() || c.discontinuity) segs.emplace_back();
    if (c.ts.size() % 188 != 0 || c.ts.empty() || c.ts[0] != 0x47) o.misaligned = true;
    segs.back().insert(segs.back().end(), c.ts.begin(), c.ts.end());
    ++o.chunks;
  }
}

// Pops until `done` holds (checked on fresh stats) or the time is up.
bool pump_until(Transcoder& t, Outputs& o, const std::function<bool(const TranscoderStats&)>& done,
                std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    drain(t, o);
    if (done(t.stats())) {
      drain(t, o);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  drain(t, o);
  return false;
}

bool all_rungs_finished(const TranscoderStats& s, std::uint64_t streams) {
  for (const auto& r : s.rungs) {
    if (r.streams < streams) return false;
  }
  return true;
}

// Pushes a file in 1316-byte messages (7 packets, as SRT delivers them).
void push_file(Transcoder& t, const Bytes& bytes, bool discontinuity) {
  constexpr std::size_t kMsg = 7 * 188;
  for (std::size_t off = 0; off < bytes.size(); off += kMsg) {
    const std::size_t n = std::min(kMsg, bytes.size() - off);
    t.push(std::span<const std::uint8_t>(bytes.data() + off, n), discontinuity && off == 0);
  }
}

// `bytes` as one stream through `t` (started here, then flushed), popped into `o` until every
// rung has finished it; false when that takes over 120 s.
bool transcode_whole(Transcoder& t, const Bytes& bytes, Outputs& o) {
  t.start();
  push_file(t, bytes, false);
  t.flush();
  return pump_until(t, o, [](const TranscoderStats& s) { return all_rungs_finished(s, 1); }, std::chrono::seconds(120));
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

std::size_t thread_count() {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n;
}

std::uint64_t total_errors(const TranscoderStats& s) {
  std::uint64_t n = 0;
  for (const auto e : s.errors) n += e;
  return n;
}

class TranscoderTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = twincast::test::temp_dir("transcoder"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path write(const std::string& name, const Bytes& b) {
    const fs::path p = dir_ / name;
    twincast::test::write_file(p, b);
    return p;
  }
  fs::path dir_;
};

TranscoderConfig ladder(unsigned threads, const std::string& preset) {
  TranscoderConfig c;
  c.rungs = {{"540p", 540, 1500}, {"360p", 360, 800}};
  c.threads = threads;
  c.preset = preset;
  return c;
}

}  // namespace

TEST(TranscoderConfigTest, RejectsBadConfigsListingEveryProblem) {
  TranscoderConfig none;
  EXPECT_THROW(Transcoder{none}, std::invalid_argument);
  TranscoderConfig bad;
  bad.rungs = {{"odd", 361, 800}, {"zero", 360, 0}};
  bad.threads = 0;
  try {
    Transcoder t(bad);
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("height 361"), std::string::npos) << what;
    EXPECT_NE(what.find("video_kbps 0"), std::string::npos) << what;
    EXPECT_NE(what.find("threads 0"), std::string::npos) << what;
  }
  TranscoderConfig many = ladder(65, "veryfast");
  EXPECT_THROW(Transcoder{many}, std::invalid_argument);
  // libx264 refuses an unknown preset when the constructor opens its test encoder.
  TranscoderConfig preset = ladder(1, "warpspeed");
  EXPECT_THROW(Transcoder{preset}, std::runtime_error);
  EXPECT_NO_THROW(Transcoder{ladder(1, "ultrafast")});
}

// How the budget maps: W = min(B, R) workers, rung r on worker r % W, x264 threads
// max(1, B / R) plus one for the first B % R rungs.
TEST(TranscoderConfigTest, BudgetMapsToWorkersAndX264Threads) {
  {
    TranscoderConfig c = ladder(1, "ultrafast");
    c.rungs.push_back({"240p", 240, 400});
    const auto s = Transcoder(c).stats();
    EXPECT_EQ(s.workers, 1u);
    for (const auto& r : s.rungs) {
      EXPECT_EQ(r.worker, 0u);
      EXPECT_EQ(r.x264_threads, 1u);
    }
  }
  {
    const auto s = Transcoder(ladder(2, "ultrafast")).stats();
    EXPECT_EQ(s.workers, 2u);
    EXPECT_EQ(s.rungs[0].worker, 0u);
    EXPECT_EQ(s.rungs[1].worker, 1u);
    EXPECT_EQ(s.rungs[0].x264_threads, 1u);
    EXPECT_EQ(s.rungs[1].x264_threads, 1u);
  }
  {
    const auto s = Transcoder(ladder(5, "ultrafast")).stats();
    EXPECT_EQ(s.workers, 2u);
    EXPECT_EQ(s.rungs[0].x264_threads, 3u);
    EXPECT_EQ(s.rungs[1].x264_threads, 2u);
  }
}

// The case: a 720p25 channel into 540p and 360p, budget 2.
TEST_F(TranscoderTest, Ladder720pTo540pAnd360pKeepsKeyFramesTimestampsAndAudio) {
  const fs::path src = source_720p();
  const Bytes bytes = twincast::test::read_file(src);
  const auto src_keys = key_frame_pts(src);
  const auto src_frames = video_frames(src);
  ASSERT_GE(src_keys.size(), 10u);
  ASSERT_EQ(src_frames, 250);
  const auto src_audio = audio_packets(src);
  ASSERT_FALSE(src_audio.empty());

  Transcoder t(ladder(2, "veryfast"));
  const std::size_t threads_before = thread_count();
  push_file(t, bytes, false);
  t.flush();
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  t.start();
  Outputs o;
  // While it runs: the decode thread and W = 2 workers; x264 with 1 thread spawns none.
  std::size_t threads_running = 0;
  pump_until(t, o, [&](const TranscoderStats& s) {
    if (threads_running == 0 && s.rungs[1].frames_encoded > 5) threads_running = thread_count();
    return all_rungs_finished(s, 1);
  }, std::chrono::seconds(240));
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  const TranscoderStats s = t.stats();
  ASSERT_TRUE(all_rungs_finished(s, 1)) << "timed out";
  t.stop();
  EXPECT_EQ(threads_running, threads_before + 3);

  std::cout << "[ measure  ] 720p25 10 s -> 540p/1500k + 360p/800k, veryfast, budget 2: wall " << wall
            << " s, real-time factor " << 10.0 / wall << "x, process CPU " << cpu << " s ("
            << cpu / 10.0 << " cores at real time), decode " << s.decode_seconds << " s, encode 540p "
            << s.rungs[0].encode_seconds << " s, 360p " << s.rungs[1].encode_seconds << " s\n";
  RecordProperty("realtime_factor", std::to_string(10.0 / wall));

  EXPECT_EQ(total_errors(s), 0u);
  EXPECT_EQ(s.frames_decoded, 250u);
  EXPECT_EQ(s.frames_skipped, 0u);
  EXPECT_EQ(s.input_bytes_dropped, 0u);
  EXPECT_FALSE(o.misaligned);
  ASSERT_EQ(o.rungs.size(), 2u);
  const char* sizes[] = {"h264,960,540", "h264,640,360"};
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(sizes[i]);
    EXPECT_EQ(o.discontinuities[i], 0u);
    ASSERT_EQ(o.rungs[i].size(), 1u);
    EXPECT_EQ(s.rungs[i].frames_encoded, 250u);
    EXPECT_EQ(s.rungs[i].key_frames, src_keys.size());
    const fs::path out = write("rung" + std::to_string(i) + ".ts", o.rungs[i][0]);
    EXPECT_EQ(video_format(out), sizes[i]);
    EXPECT_EQ(audio_codec(out), "aac");
    EXPECT_EQ(decode_errors(out), "");
    EXPECT_EQ(key_frame_pts(out), src_keys);
    EXPECT_EQ(video_frames(out), src_frames);
    // Audio copied: the source's packets (same PTS, same size) from the first picture on.
    std::vector<std::string> want;
    for (const auto& a : src_audio) {
      if (std::stoll(a.substr(0, a.find(','))) >= src_keys[0]) want.push_back(a);
    }
    EXPECT_EQ(audio_packets(out), want);
  }
}

// An input switch: the same source twice, the second push marked as a discontinuity. Budget 1
// (one worker encodes both rungs).
TEST_F(TranscoderTest, DiscontinuityRestartsEveryRungCleanly) {
  const fs::path src = fixture("h264_aac.ts");  // 320x240, 6 s, 1 s GOP
  const Bytes bytes = twincast::test::read_file(src);
  const auto src_keys = key_frame_pts(src);
  const auto src_frames = video_frames(src);
  TranscoderConfig c;
  c.rungs = {{"180p", 180, 300}, {"120p", 120, 200}};
  c.threads = 1;
  c.preset = "ultrafast";
  Transcoder t(c);
  t.start();
  push_file(t, bytes, false);
  push_file(t, bytes, true);
  t.flush();
  Outputs o;
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return all_rungs_finished(s, 2); },
                         std::chrono::seconds(120)));
  const auto s = t.stats();
  EXPECT_EQ(s.streams, 2u);
  EXPECT_EQ(s.workers, 1u);
  EXPECT_EQ(total_errors(s), 0u);
  EXPECT_FALSE(o.misaligned);
  ASSERT_EQ(o.rungs.size(), 2u);
  const char* sizes[] = {"h264,240,180", "h264,160,120"};
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(sizes[i]);
    EXPECT_EQ(o.discontinuities[i], 1u);
    ASSERT_EQ(o.rungs[i].size(), 2u);
    EXPECT_EQ(s.rungs[i].frames_encoded, 2u * static_cast<std::uint64_t>(src_frames));
    for (std::size_t k = 0; k < 2; ++k) {
      const fs::path out = write("rung" + std::to_string(i) + "_" + std::to_string(k) + ".ts", o.rungs[i][k]);
      EXPECT_EQ(video_format(out), sizes[i]);
      EXPECT_EQ(audio_codec(out), "aac");
      EXPECT_EQ(decode_errors(out), "");
      EXPECT_EQ(key_frame_pts(out), src_keys);
      EXPECT_EQ(video_frames(out), src_frames);
    }
  }
}

// A budget above the rung count: x264 frame threads (3 and 2) reorder nothing that matters:
// every frame, every key frame at the source's PTS.
TEST_F(TranscoderTest, X264FrameThreadsKeepKeyFramesAndFrames) {
  const fs::path src = fixture("h264_aac.ts");
  const auto src_keys = key_frame_pts(src);
  TranscoderConfig c;
  c.rungs = {{"180p", 180, 300}, {"120p", 120, 200}};
  c.threads = 5;
  c.preset = "veryfast";
  Transcoder t(c);
  ASSERT_EQ(t.stats().rungs[0].x264_threads, 3u);
  t.start();
  push_file(t, twincast::test::read_file(src), false);
  t.flush();
  Outputs o;
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return s.idle; }, std::chrono::seconds(120)));
  EXPECT_EQ(total_errors(t.stats()), 0u);
  ASSERT_EQ(o.rungs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(o.rungs[i].size(), 1u);
    const fs::path out = write("rung" + std::to_string(i) + ".ts", o.rungs[i][0]);
    EXPECT_EQ(decode_errors(out), "");
    EXPECT_EQ(key_frame_pts(out), src_keys);
    EXPECT_EQ(video_frames(out), video_frames(src));
  }
}

// Other source codecs the decoder knows: HEVC + AAC, MPEG-2 video + MPEG-1 Layer II audio
// (12-frame GOPs). Output is H.264 with the source's key frames and its audio copied.
TEST_F(TranscoderTest, HevcAndMpeg2SourcesTranscodeWithTheirKeyFrames) {
  for (const auto& [name, acodec] : {std::pair{"hevc_aac.ts", "aac"}, std::pair{"mpeg2_mp2.ts", "mp2"}}) {
    SCOPED_TRACE(name);
    const fs::path src = fixture(name);
    TranscoderConfig c;
    c.rungs = {{"180p", 180, 300}};
    c.threads = 1;
    c.preset = "ultrafast";
    Transcoder t(c);
    t.start();
    push_file(t, twincast::test::read_file(src), false);
    t.flush();
    Outputs o;
    ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return s.idle; }, std::chrono::seconds(120)));
    EXPECT_EQ(total_errors(t.stats()), 0u);
    ASSERT_EQ(o.rungs.size(), 1u);
    ASSERT_EQ(o.rungs[0].size(), 1u);
    const fs::path out = write(std::string(name) + ".out.ts", o.rungs[0][0]);
    EXPECT_EQ(video_format(out), "h264,240,180");
    EXPECT_EQ(audio_codec(out), acodec);
    EXPECT_EQ(decode_errors(out), "");
    EXPECT_EQ(key_frame_pts(out), key_frame_pts(src));
    EXPECT_EQ(video_frames(out), video_frames(src));
  }
}

// Garbage, then a stream without video, then a good stream: the bad ones are counted and
// produce nothing; the good one comes out whole.
TEST_F(TranscoderTest, BadInputIsCountedAndTheNextGoodStreamTranscodes) {
  Bytes garbage(512 * 1024);
  std::mt19937 rng(42);
  for (auto& b : garbage) b = static_cast<std::uint8_t>(rng());
  const Bytes audio_only = twincast::test::read_file(source_audio_only());
  const fs::path good = fixture("h264_aac.ts");
  const Bytes good_bytes = twincast::test::read_file(good);

  TranscoderConfig c;
  c.rungs = {{"180p", 180, 300}};
  c.threads = 1;
  c.preset = "ultrafast";
  Transcoder t(c);
  t.start();
  push_file(t, garbage, false);
  t.flush();
  Outputs o;
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return s.idle; }, std::chrono::seconds(60)));
  EXPECT_GT(total_errors(t.stats()), 0u);
  push_file(t, audio_only, true);
  t.flush();
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return s.idle; }, std::chrono::seconds(60)));
  EXPECT_GT(t.stats().error_count(TranscodeError::kNoVideo), 0u);
  EXPECT_EQ(o.chunks, 0u) << "bad input produced output";
  EXPECT_EQ(t.stats().frames_decoded, 0u);

  push_file(t, good_bytes, true);
  t.flush();
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return all_rungs_finished(s, 1); },
                         std::chrono::seconds(120)));
  const auto s = t.stats();
  for (std::size_t e = 0; e < s.errors.size(); ++e) {
    std::cout << "[ errors   ] " << twincast::control::transcode_error_name(static_cast<TranscodeError>(e)) << " "
              << s.errors[e] << "\n";
  }
  EXPECT_GT(s.error_count(TranscodeError::kNoVideo), 0u);
  EXPECT_EQ(s.rungs[0].encode_errors, 0u);
  ASSERT_EQ(o.rungs.size(), 1u);
  ASSERT_EQ(o.rungs[0].size(), 1u);
  EXPECT_EQ(o.discontinuities[0], 0u);  // nothing came out before it
  const fs::path out = write("good.ts", o.rungs[0][0]);
  EXPECT_EQ(decode_errors(out), "");
  EXPECT_EQ(key_frame_pts(out), key_frame_pts(good));
  EXPECT_EQ(video_frames(out), video_frames(good));
}

// Overload: a small input queue and a producer far faster than real time, in bursts of twice
// the queue. push() never blocks, drops whole chunks and counts them; each burst after a drop
// starts a new stream, whose output is clean, starts on a source key frame and is marked as a
// discontinuity.
TEST_F(TranscoderTest, OverloadDropsInputCountsItAndRestartsCleanly) {
  const fs::path src = fixture("h264_aac.ts");  // 6 s at 1.5 Mb/s
  const Bytes bytes = twincast::test::read_file(src);
  const auto src_keys = key_frame_pts(src);
  TranscoderConfig c;
  c.rungs = {{"180p", 180, 300}};
  c.threads = 1;
  c.preset = "ultrafast";
  c.max_queue_bytes = 384 * 1024;  // ~2 s of the source
  Transcoder t(c);
  t.start();
  Outputs o;
  double push_s = 0;
  constexpr std::size_t kBurst = 768 * 1024;
  std::size_t pushed = 0;
  for (std::size_t off = 0; off < bytes.size(); off += kBurst) {
    const Bytes burst(bytes.begin() + static_cast<std::ptrdiff_t>(off),
                      bytes.begin() + static_cast<std::ptrdiff_t>(std::min(bytes.size(), off + kBurst)));
    const auto t0 = Clock::now();
    push_file(t, burst, false);
    push_s = std::max(push_s, std::chrono::duration<double>(Clock::now() - t0).count());
    pushed += burst.size();
    pump_until(t, o, [](const TranscoderStats& s) { return s.input_bytes_queued == 0; }, std::chrono::seconds(30));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  t.flush();
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return s.idle; }, std::chrono::seconds(120)));
  const auto s = t.stats();
  std::cout << "[ overload ] pushed " << pushed << " bytes, slowest burst " << push_s * 1000 << " ms; dropped "
            << s.input_bytes_dropped << " bytes (" << s.input_chunks_dropped << " pushes), streams " << s.streams
            << ", segments " << (o.rungs.empty() ? 0 : o.rungs[0].size()) << ", decode errors "
            << s.error_count(TranscodeError::kDecode) << "\n";
  EXPECT_LT(push_s, 0.5);
  EXPECT_GT(s.input_bytes_dropped, 0u);
  EXPECT_EQ(s.input_bytes + s.input_bytes_dropped, pushed);
  EXPECT_GE(s.streams, 2u);
  EXPECT_EQ(s.rungs[0].encode_errors, 0u);
  ASSERT_EQ(o.rungs.size(), 1u);
  ASSERT_GE(o.rungs[0].size(), 2u);
  EXPECT_EQ(o.discontinuities[0], o.rungs[0].size() - 1);
  for (std::size_t k = 0; k < o.rungs[0].size(); ++k) {
    const fs::path out = write("seg" + std::to_string(k) + ".ts", o.rungs[0][k]);
    EXPECT_EQ(decode_errors(out), "") << out;
    const auto keys = key_frame_pts(out);
    ASSERT_FALSE(keys.empty()) << out;
    for (const auto k_pts : keys) {  // every key frame at one of the source's key frames
      EXPECT_NE(std::find(src_keys.begin(), src_keys.end(), k_pts), src_keys.end()) << k_pts;
    }
  }
}

TEST_F(TranscoderTest, StopMidStreamReturnsPromptly) {
  const Bytes bytes = twincast::test::read_file(source_720p());
  Transcoder t(ladder(2, "veryfast"));
  push_file(t, bytes, false);
  t.start();
  Outputs o;
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return s.rungs[0].frames_encoded >= 20; },
                         std::chrono::seconds(60)));
  const auto t0 = Clock::now();
  t.stop();
  const double stop_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[ measure  ] stop() mid-stream took " << stop_s * 1000 << " ms\n";
  EXPECT_LT(stop_s, 1.0);
  const auto s = t.stats();
  EXPECT_LT(s.rungs[0].frames_encoded, 250u);
  t.stop();  // idempotent
  drain(t, o);  // what came out before stays poppable
  EXPECT_GT(o.chunks, 0u);
}

namespace {

constexpr std::int64_t kWrap = std::int64_t{1} << 33;

std::int64_t mod33(std::int64_t v) { return ((v % kWrap) + kWrap) % kWrap; }

std::vector<std::int64_t> mod33(std::vector<std::int64_t> v) {
  for (auto& x : v) x = mod33(x);
  return v;
}

// 10 s of 320x240 H.264 (1 s GOP, B-frames) + AAC whose PTS starts `offset_s` seconds in.
fs::path source_small(const std::string& name, double offset_s) {
  return cached_source(
      name,
      "-f lavfi -i testsrc2=size=320x240:rate=25:duration=10 "
      "-f lavfi -i sine=frequency=440:sample_rate=48000:duration=10 "
      "-c:v libx264 -preset ultrafast -bf 2 -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p "
      "-b:v 400k -c:a aac -b:a 64k -output_ts_offset " + std::to_string(offset_s));
}

// Two TS files back to back, continuity counters renumbered so the join is clean at the
// packet level: only the timestamps jump, as when an upstream encoder resets its clock.
Bytes splice(const Bytes& a, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), b.begin(), b.end());
  std::vector<int> next(8192, -1);
  for (std::size_t off = 0; off + 188 <= out.size(); off += 188) {
    std::uint8_t* p = out.data() + off;
    const std::size_t pid = (static_cast<std::size_t>(p[1] & 0x1f) << 8) | p[2];
    const bool payload = (p[3] & 0x10) != 0;
    if (next[pid] < 0) next[pid] = p[3] & 0x0f;
    const int cc = payload ? next[pid] : (next[pid] + 15) & 15;
    p[3] = static_cast<std::uint8_t>((p[3] & 0xf0) | cc);
    if (payload) next[pid] = (cc + 1) & 15;
  }
  return out;
}

TranscoderConfig small_ladder() {
  TranscoderConfig c;
  c.rungs = {{"180p", 180, 300}, {"120p", 120, 200}};
  c.threads = 2;
  c.preset = "ultrafast";
  return c;
}

}  // namespace

// The 33-bit PTS wraps mid-file (starts 5.7 s before 2^33 / 90 kHz): every frame comes out, in
// one stream, the key frames at the source's (modulo 2^33), and the outputs decode cleanly.
TEST_F(TranscoderTest, PtsWrapMidStreamKeepsEveryFrameAndKeyFrame) {
  const fs::path src = source_small("transcode_wrap_240p.ts", 95438.0);
  const Bytes bytes = twincast::test::read_file(src);
  const auto src_keys = mod33(key_frame_pts(src));
  const auto src_frames = video_frames(src);
  ASSERT_EQ(src_frames, 250);
  ASSERT_GE(src_keys.size(), 10u);
  // The fixture really wraps: its key frames' raw PTS go down once.
  std::size_t drops = 0;
  for (std::size_t i = 1; i < src_keys.size(); ++i) drops += src_keys[i] < src_keys[i - 1] ? 1u : 0u;
  ASSERT_EQ(drops, 1u);

  Transcoder t(small_ladder());
  Outputs o;
  ASSERT_TRUE(transcode_whole(t, bytes, o));
  const auto s = t.stats();
  EXPECT_EQ(s.streams, 1u);
  EXPECT_EQ(total_errors(s), 0u);
  EXPECT_EQ(s.frames_decoded, 250u);
  EXPECT_EQ(s.frames_skipped, 0u);
  ASSERT_EQ(o.rungs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(o.discontinuities[i], 0u);
    ASSERT_EQ(o.rungs[i].size(), 1u);
    EXPECT_EQ(s.rungs[i].frames_encoded, 250u);
    const fs::path out = write("wrap" + std::to_string(i) + ".ts", o.rungs[i][0]);
    EXPECT_EQ(decode_errors(out), "");
    EXPECT_EQ(mod33(key_frame_pts(out)), src_keys);
    EXPECT_EQ(video_frames(out), src_frames);
    EXPECT_GE(audio_packets(out).size(), audio_packets(src).size() * 9 / 10);
  }
}

namespace {

// The source's clock jumps without an input switch (an upstream encoder restart: back to a
// small PTS; or a splice far ahead): each rung ends its stream and starts a new one at the
// second part's first key frame (discontinuity = true), and keeps producing every frame.
void expect_restart_on_pts_jump(const fs::path& a, const fs::path& b,
                                const std::function<fs::path(const std::string&, const Bytes&)>& write) {
  const Bytes bytes = splice(twincast::test::read_file(a), twincast::test::read_file(b));
  const auto keys_a = mod33(key_frame_pts(a));
  const auto keys_b = mod33(key_frame_pts(b));
  const auto frames_a = video_frames(a);
  const auto frames_b = video_frames(b);
  Transcoder t(small_ladder());
  t.start();
  push_file(t, bytes, false);
  t.flush();
  Outputs o;
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return all_rungs_finished(s, 2); },
                         std::chrono::seconds(120)))
      << "frames skipped " << t.stats().frames_skipped;
  const auto s = t.stats();
  EXPECT_EQ(s.streams, 2u);
  EXPECT_EQ(total_errors(s), 0u);
  EXPECT_EQ(s.frames_decoded, static_cast<std::uint64_t>(frames_a + frames_b));
  EXPECT_EQ(s.frames_skipped, 0u);
  ASSERT_EQ(o.rungs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(o.discontinuities[i], 1u);
    ASSERT_EQ(o.rungs[i].size(), 2u);
    EXPECT_EQ(s.rungs[i].frames_encoded, static_cast<std::uint64_t>(frames_a + frames_b));
    const std::vector<std::int64_t>* keys[] = {&keys_a, &keys_b};
    const std::int64_t frames[] = {frames_a, frames_b};
    const fs::path srcs[] = {a, b};
    for (std::size_t k = 0; k < 2; ++k) {
      SCOPED_TRACE(k);
      const fs::path out = write("jump" + std::to_string(i) + "_" + std::to_string(k) + ".ts", o.rungs[i][k]);
      EXPECT_EQ(decode_errors(out), "");
      EXPECT_EQ(mod33(key_frame_pts(out)), *keys[k]);
      EXPECT_EQ(video_frames(out), frames[k]);
      EXPECT_GE(audio_packets(out).size(), audio_packets(srcs[k]).size() * 9 / 10);
    }
  }
}

}  // namespace

TEST_F(TranscoderTest, PtsResetMidStreamRestartsEveryRung) {
  // 10 s starting at 1000 s, then the clock restarts at 0 (+ ffmpeg's 1.4 s).
  expect_restart_on_pts_jump(source_small("transcode_at1000_240p.ts", 1000.0),
                             source_small("transcode_at0_240p.ts", 0.0),
                             [this](const std::string& n, const Bytes& b) { return write(n, b); });
}

TEST_F(TranscoderTest, PtsJumpForwardMidStreamRestartsEveryRung) {
  // 10 s from 0, then the clock jumps ~990 s ahead.
  expect_restart_on_pts_jump(source_small("transcode_at0_240p.ts", 0.0),
                             source_small("transcode_at1000_240p.ts", 1000.0),
                             [this](const std::string& n, const Bytes& b) { return write(n, b); });
}

TEST_F(TranscoderTest, PtsWrapThenClockStepsBackRestartsEveryRung) {
  // 10 s wrapping past 2^33, then the clock steps back to 95380 s (68 s before the wrap point):
  // libavformat's one-off correction maps those PTS 2^33 below the rest (as it does to every
  // PTS 26.5 h into a stream), which made every later frame look late before the fix.
  expect_restart_on_pts_jump(source_small("transcode_wrap_240p.ts", 95438.0),
                             source_small("transcode_at95380_240p.ts", 95380.0),
                             [this](const std::string& n, const Bytes& b) { return write(n, b); });
}

namespace {

// The width of every picture of the first video stream, in presentation order.
std::vector<std::int64_t> frame_widths(const fs::path& f) {
  const auto r = run("ffprobe -v error -select_streams v:0 -show_entries frame=width -of csv=p=0 " + q(f));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return numbers(r.out);
}

// 10 s of `size` H.264 (1 s GOP, B-frames) + AAC from `offset_s` on, with `extra` ffmpeg args.
fs::path source_sized(const std::string& name, const std::string& size, double offset_s,
                      const std::string& extra) {
  return cached_source(
      name,
      "-f lavfi -i testsrc2=size=" + size + ":rate=25:duration=10 "
      "-f lavfi -i sine=frequency=440:sample_rate=48000:duration=10 "
      "-c:v libx264 -preset ultrafast -bf 2 -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p "
      "-b:v 400k -c:a aac -b:a 64k " + extra + " -output_ts_offset " + std::to_string(offset_s));
}

// The source's picture format changes at a key frame with its clock running on (a new SPS: an
// HD/SD programme change, or DVB SD switching between 4:3 and 16:9 anamorphic): every rung
// keeps one stream with every frame and key frame, and its width follows the new display
// aspect ratio (height x DAR) from that key frame on, as for a stream that starts with it.
void expect_rungs_follow_aspect_change(const fs::path& a, const fs::path& b, double dar_a, double dar_b,
                                       const std::function<fs::path(const std::string&, const Bytes&)>& write) {
  const Bytes bytes = splice(twincast::test::read_file(a), twincast::test::read_file(b));
  const fs::path src = write("source.ts", bytes);
  const auto src_keys = key_frame_pts(src);
  const auto frames_a = video_frames(a);
  const auto frames_b = video_frames(b);
  TranscoderConfig c = small_ladder();
  c.preset = "veryfast";  // B-frames out: DTS must stay monotonic across the change
  Transcoder t(c);
  t.start();
  push_file(t, bytes, false);
  t.flush();
  Outputs o;
  ASSERT_TRUE(pump_until(t, o, [](const TranscoderStats& s) { return s.idle && all_rungs_finished(s, 1); },
                         std::chrono::seconds(120)));
  const auto s = t.stats();
  EXPECT_EQ(s.streams, 1u);
  EXPECT_EQ(total_errors(s), 0u);
  EXPECT_EQ(s.frames_skipped, 0u);
  ASSERT_EQ(o.rungs.size(), 2u);
  const std::int64_t heights[] = {180, 120};
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(heights[i]);
    EXPECT_EQ(o.discontinuities[i], 0u);
    ASSERT_EQ(o.rungs[i].size(), 1u);
    EXPECT_EQ(s.rungs[i].frames_encoded, static_cast<std::uint64_t>(frames_a + frames_b));
    // Width = height x DAR, rounded to an even number (as in open_rung()).
    const auto even = [&](double dar) {
      return 2 * static_cast<std::int64_t>(std::lround(dar * static_cast<double>(heights[i]) / 2.0));
    };
    EXPECT_EQ(s.rungs[i].width, even(dar_b));
    const fs::path out = write("aspect" + std::to_string(i) + ".ts", o.rungs[i][0]);
    EXPECT_EQ(decode_errors(out), "");
    EXPECT_EQ(key_frame_pts(out), src_keys);
    const auto widths = frame_widths(out);
    ASSERT_EQ(static_cast<std::int64_t>(widths.size()), frames_a + frames_b);
    EXPECT_EQ(widths.front(), even(dar_a));
    EXPECT_EQ(widths.back(), even(dar_b));
    EXPECT_EQ(std::count(widths.begin(), widths.end(), even(dar_b)), frames_b);
  }
}

}  // namespace

// 320x240 (4:3), then 640x360 (16:9) 10.12 s later (three frame times: DTS, PTS and audio go
// on rising across the join, so nothing but the picture format changes).
TEST_F(TranscoderTest, ResolutionChangeMidStreamFollowsTheNewAspectRatio) {
  expect_rungs_follow_aspect_change(source_small("transcode_at0_240p.ts", 0.0),
                                    source_sized("transcode_at10.12_360p.ts", "640x360", 10.12, ""),
                                    4.0 / 3.0, 16.0 / 9.0,
                                    [this](const std::string& n, const Bytes& b) { return write(n, b); });
}

// DVB SD: 320x240 pixels shown at 4:3, then the same pixels anamorphic at 16:9 (SAR 4:3).
TEST_F(TranscoderTest, SampleAspectChangeMidStreamFollowsTheNewAspectRatio) {
  expect_rungs_follow_aspect_change(source_small("transcode_at0_240p.ts", 0.0),
                                    source_sized("transcode_at10.12_240p_169.ts", "320x240", 10.12, "-aspect 16:9"),
                                    4.0 / 3.0, 16.0 / 9.0,
                                    [this](const std::string& n, const Bytes& b) { return write(n, b); });
}

namespace {

// Adds `delta` (90 kHz) to the PTS, not the DTS, of the `nth` video PES (PID 0x100) that
// carries both: one bit-flipped timestamp as a broken satellite or terrestrial link delivers.
// Returns that PES's original PTS, or -1.
std::int64_t corrupt_video_pts(Bytes& ts, std::size_t nth, std::int64_t delta) {
  std::size_t seen = 0;
  for (std::size_t off = 0; off + 188 <= ts.size(); off += 188) {
    std::uint8_t* p = ts.data() + off;
    const unsigned pid = (static_cast<unsigned>(p[1] & 0x1f) << 8) | p[2];
    if (pid != 0x100 || (p[1] & 0x40) == 0) continue;
    std::size_t h = 4;
    if ((p[3] & 0x20) != 0) h += 1 + p[4];
    if (h + 19 > 188) continue;
    std::uint8_t* pes = p + h;
    if (pes[0] != 0 || pes[1] != 0 || pes[2] != 1 || (pes[7] >> 6) != 3) continue;
    if (seen++ != nth) continue;
    std::uint8_t* t = pes + 9;
    const std::int64_t pts = (static_cast<std::int64_t>(t[0] & 0x0e) << 29) | (static_cast<std::int64_t>(t[1]) << 22) |
                             (static_cast<std::int64_t>(t[2] & 0xfe) << 14) | (static_cast<std::int64_t>(t[3]) << 7) |
                             (t[4] >> 1);
    const std::int64_t v = (pts + delta) & ((std::int64_t{1} << 33) - 1);
    t[0] = static_cast<std::uint8_t>((t[0] & 0xf0) | ((v >> 29) & 0x0e) | 1);
    t[1] = static_cast<std::uint8_t>(v >> 22);
    t[2] = static_cast<std::uint8_t>(((v >> 14) & 0xfe) | 1);
    t[3] = static_cast<std::uint8_t>(v >> 7);
    t[4] = static_cast<std::uint8_t>(((v << 1) & 0xfe) | 1);
    return pts;
  }
  return -1;
}

}  // namespace

// One video PES 4 s into the stream carries a PTS an hour ahead (its DTS is right): that one
// picture may be lost (counted as skipped), but the stream goes on: every later frame and key
// frame comes out. Before the fix every later frame looked older than that PTS and was
// skipped: the rungs froze until the next input switch.
TEST_F(TranscoderTest, OneCorruptPtsLosesAtMostThatFrame) {
  const fs::path src = source_small("transcode_at0_240p.ts", 0.0);
  Bytes bytes = twincast::test::read_file(src);
  const auto src_keys = key_frame_pts(src);
  const auto src_frames = video_frames(src);
  ASSERT_GT(corrupt_video_pts(bytes, 110, 3600 * 90'000), 0);

  Transcoder t(small_ladder());
  Outputs o;
  ASSERT_TRUE(transcode_whole(t, bytes, o));
  const auto s = t.stats();
  EXPECT_EQ(s.streams, 1u);
  EXPECT_EQ(s.frames_decoded, static_cast<std::uint64_t>(src_frames));
  EXPECT_LE(s.frames_skipped, 1u);
  ASSERT_EQ(o.rungs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_GE(s.rungs[i].frames_encoded + 1, static_cast<std::uint64_t>(src_frames));
    ASSERT_EQ(o.rungs[i].size(), 1u);
    const fs::path out = write("corrupt_pts" + std::to_string(i) + ".ts", o.rungs[i][0]);
    EXPECT_EQ(key_frame_pts(out), src_keys);
  }
}
