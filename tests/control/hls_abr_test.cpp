// ABR in the HLS packager: received renditions, PTS-aligned segment boundaries and numbers,
// the master playlist, alternate audio, and real players (ffmpeg, ffprobe) over HTTP.
//
// One ffmpeg run makes two renditions of the same content (so the same timestamps and key
// frames at the same PTS, every second): "hi" 640x360 with two audio tracks (eng AAC,
// deu AC-3) is the channel's own output, "lo" 320x180 with one audio a received rendition.
// They go through real OttFeeds (the EAL --no-huge) into the packager, interleaved by their
// file times, "lo" joining a few seconds late (as a rendition that starts after the others).
// A restart (a new packager, the clock 1 ms on, the same PTS again) numbers every track
// above the last run, still aligned, and serves none of its segment URLs.
// GCC 12 at -O1 with the sanitizers warns falsely inside <regex> (maybe-uninitialized in
// the std::function moves of its NFA states), as in dashboard_test.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/packager_fixture.hpp"
#include "dataplane/eal_harness.hpp"
#include "tests_common.hpp"
#include "twincast/control/hls_auth.hpp"
#include "twincast/control/hls_origin.hpp"
#include "twincast/control/hls_packager.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/pes.hpp"

namespace twincast::control {
namespace {

namespace fs = std::filesystem;
namespace tt = twincast::test;
using mpegts::TsPacket;
using namespace packager_test;

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new tt::EalEnvironment("tchls_abr_", "control_hls_abr_test"));

struct Ladder {
  fs::path dir = tt::temp_dir("hls_abr");
  std::vector<TsPacket> hi, lo;
  std::vector<std::uint64_t> hi_ms, lo_ms;
  Ladder() {
    // Key frames forced every second in both encodes (and -g 25 without scene cuts).
    const std::string x264 =
        "-c:v libx264 -preset veryfast -g 25 -keyint_min 25 -sc_threshold 0 -force_key_frames 'expr:gte(t,n_forced)' "
        "-pix_fmt yuv420p";
    const std::string cmd =
        "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=25:duration=14 "
        "-f lavfi -i sine=frequency=440:sample_rate=48000:duration=14 "
        "-f lavfi -i sine=frequency=660:sample_rate=48000:duration=14 "
        "-filter_complex '[0:v]split=2[hi][x];[x]scale=320:180[lo]' "
        "-map '[hi]' -map 1:a -map 2:a " + x264 + " -b:v 900k -c:a:0 aac -b:a:0 96k -c:a:1 ac3 -b:a:1 128k "
        "-metadata:s:a:0 language=eng -metadata:s:a:1 language=deu -mpegts_start_pid 0x100 -f mpegts " +
        tt::shell_quote((dir / "hi.ts").string()) + " -map '[lo]' -map 1:a " + x264 +
        " -b:v 250k -c:a aac -b:a 64k -metadata:s:a:0 language=eng -mpegts_start_pid 0x100 -f mpegts " +
        tt::shell_quote((dir / "lo.ts").string()) + " 2>&1";
    const auto r = tt::run(cmd);
    if (r.exit_code != 0) throw std::runtime_error("ffmpeg: " + r.out);
    hi = tt::read_packets(dir / "hi.ts");
    lo = tt::read_packets(dir / "lo.ts");
    for (auto ns : mpegts::file_times(hi).ns) hi_ms.push_back(ns / 1'000'000);
    for (auto ns : mpegts::file_times(lo).ns) lo_ms.push_back(ns / 1'000'000);
  }
};
const Ladder& ladder() {
  static const Ladder l;
  return l;
}

// --- reading what the packager serves ---

struct VariantLine {
  std::map<std::string, std::string> attrs;
  std::string uri;
};

std::map<std::string, std::string> attributes(const std::string& list) {
  std::map<std::string, std::string> out;
  static const std::regex kAttr(R"re(([A-Z0-9-]+)=("[^"]*"|[^,]*))re");
  for (auto it = std::sregex_iterator(list.begin(), list.end(), kAttr); it != std::sregex_iterator(); ++it) {
    std::string v = (*it)[2];
    if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
    out[(*it)[1]] = v;
  }
  return out;
}

struct Master {
  std::vector<VariantLine> variants;
  std::vector<std::map<std::string, std::string>> media;
};

Master parse_master(const std::string& text) {
  Master m;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    if (l.rfind("#EXT-X-STREAM-INF:", 0) == 0) {
      VariantLine v;
      v.attrs = attributes(l.substr(18));
      std::getline(in, v.uri);
      m.variants.push_back(std::move(v));
    } else if (l.rfind("#EXT-X-MEDIA:", 0) == 0) {
      m.media.push_back(attributes(l.substr(13)));
    }
  }
  return m;
}

// PTS of the first video PES of a segment.
std::optional<std::uint64_t> first_video_pts(const std::string& bytes) {
  for (std::size_t at = 0; at + mpegts::kPacketSize <= bytes.size(); at += mpegts::kPacketSize) {
    TsPacket p;
    std::memcpy(p.bytes.data(), bytes.data() + at, mpegts::kPacketSize);
    if (!p.payload_unit_start() || p.pid() < 0x20) continue;
    const auto h = mpegts::parse_pes_header(p.payload());
    if (h && h->has_pts && (h->stream_id & 0xF0) == 0xE0) return h->pts;
  }
  return std::nullopt;
}

class Abr : public PackagerTest {
 protected:
  Abr() : PackagerTest(2047) {}
  void SetUp() override {
    PackagerTest::SetUp();
    config_.segment_seconds = 2;
    config_.window_segments = 10;
    config_.memory_mb = 64;
    hi_feed_ = new_feed();
    lo_feed_ = new_feed();
    start_packager();
  }

  // A packager (a new one: twincastd started again) with the channel "news", "lo" a
  // received rendition.
  void start_packager() {
    packager_ = std::make_unique<HlsPackager>(config_, options());
    packager_->set_channels({PackagedChannel{"news", "News", hi_feed_, {PackagedRendition{"lo", lo_feed_}}}});
  }

  // Both files in time order, "lo" from `lo_from_ms` of file time on (none: kNoLo).
  static constexpr std::uint64_t kNoLo = ~std::uint64_t{0};
  void feed(std::uint64_t lo_from_ms) {
    const Ladder& l = ladder();
    constexpr std::size_t kN = dataplane::OttFeed::kChunkPackets;
    std::size_t hi_at = 0, lo_at = 0, chunks = 0;
    while (lo_at < l.lo.size() && (lo_from_ms == kNoLo || l.lo_ms[lo_at] < lo_from_ms)) ++lo_at;
    while (hi_at < l.hi.size() || lo_at < l.lo.size()) {
      const bool take_hi = lo_at >= l.lo.size() || (hi_at < l.hi.size() && l.hi_ms[hi_at] <= l.lo_ms[lo_at]);
      const auto& pk = take_hi ? l.hi : l.lo;
      const auto& ms = take_hi ? l.hi_ms : l.lo_ms;
      std::size_t& at = take_hi ? hi_at : lo_at;
      const std::size_t n = std::min(kN, pk.size() - at);
      const std::uint64_t ns = ms[at] * 1'000'000;
      mono_ns_ = std::max(mono_ns_, ns);
      (take_hi ? hi_feed_ : lo_feed_)->on_packets(0, std::span<const TsPacket>(pk.data() + at, n), ns);
      at += n;
      if (++chunks % 64 == 0) packager_->poll_once();
    }
    packager_->poll_once();
    ASSERT_EQ(hi_feed_->stats().dropped_chunks, 0u);
    ASSERT_EQ(lo_feed_->stats().dropped_chunks, 0u);
  }

  std::string get(const std::string& name, const std::string& query = "") {
    const auto r = packager_->get("news", name, query);
    if (!r) return {};
    return r->body->str();
  }

  std::uint16_t serve() {
    origin_ = std::make_unique<HlsOrigin>(*packager_);
    origin_->listen("127.0.0.1:0");
    origin_->start();
    return origin_->ports().at(0);
  }

  dataplane::OttConfig config_;
  dataplane::OttFeed* hi_feed_ = nullptr;
  dataplane::OttFeed* lo_feed_ = nullptr;
};

// Average rate of a media playlist's segments: their bytes over their EXTINF.
double measured_bps(Abr* t, const Playlist& m, const std::function<std::string(const std::string&)>& fetch) {
  (void)t;
  double bits = 0, secs = 0;
  for (const auto& s : m.entries) {
    bits += static_cast<double>(fetch(s.uri).size()) * 8;
    secs += s.duration_s;
  }
  return bits / secs;
}

TEST_F(Abr, MasterListsRenditionsWithMeasuredRatesAndAlternateAudio) {
  feed(3'300);
  const std::string text = get("index.m3u8");
  SCOPED_TRACE(text);
  RecordProperty("master", text);  // --gtest_output=xml shows it
  const Master m = parse_master(text);
  ASSERT_EQ(m.variants.size(), 2u);
  // Lowest bandwidth first.
  EXPECT_EQ(m.variants[0].uri, "live-lo.m3u8");
  EXPECT_EQ(m.variants[1].uri, "live.m3u8");
  EXPECT_EQ(m.variants[0].attrs.at("RESOLUTION"), "320x180");
  EXPECT_EQ(m.variants[1].attrs.at("RESOLUTION"), "640x360");
  for (const auto& v : m.variants) {
    EXPECT_EQ(v.attrs.at("FRAME-RATE"), "25.000");
    EXPECT_EQ(v.attrs.at("AUDIO"), "aud");
    const std::string codecs = v.attrs.at("CODECS");
    EXPECT_NE(codecs.find("avc1.64"), std::string::npos) << codecs;  // High profile, from the SPS
    EXPECT_NE(codecs.find("mp4a.40.2"), std::string::npos) << codecs;
    EXPECT_NE(codecs.find("ac-3"), std::string::npos) << codecs;       // the alternate's codec too
    EXPECT_GE(std::stoull(v.attrs.at("BANDWIDTH")), std::stoull(v.attrs.at("AVERAGE-BANDWIDTH")));
  }
  // Alternate audio: the muxed default (no URI) and the second PID with its language.
  ASSERT_EQ(m.media.size(), 2u);
  EXPECT_EQ(m.media[0].at("LANGUAGE"), "eng");
  EXPECT_EQ(m.media[0].at("DEFAULT"), "YES");
  EXPECT_EQ(m.media[0].count("URI"), 0u);
  EXPECT_EQ(m.media[1].at("TYPE"), "AUDIO");
  EXPECT_EQ(m.media[1].at("GROUP-ID"), "aud");
  EXPECT_EQ(m.media[1].at("LANGUAGE"), "deu");
  EXPECT_EQ(m.media[1].at("DEFAULT"), "NO");
  EXPECT_EQ(m.media[1].at("AUTOSELECT"), "YES");
  const std::string audio_uri = m.media[1].at("URI");
  EXPECT_TRUE(std::regex_match(audio_uri, std::regex(R"(audio-[0-9]+\.m3u8)"))) << audio_uri;

  // AVERAGE-BANDWIDTH is measured: the variant's segments (all held: 10-segment window) plus
  // the alternate's, bytes over EXTINF.
  const auto fetch = [this](const std::string& uri) { return get(uri); };
  const Playlist audio = parse_playlist(get(audio_uri));
  ASSERT_GE(audio.entries.size(), 4u);
  // Every track's segments are in memfds, sent with sendfile (the audio ones made from the
  // primary's, the variants' straight from their segmenters).
  for (const std::string& uri : {audio.entries.back().uri, parse_playlist(get(m.variants[0].uri)).entries.back().uri,
                                 parse_playlist(get(m.variants[1].uri)).entries.back().uri}) {
    const auto seg = packager_->get("news", uri, "");
    ASSERT_TRUE(seg) << uri;
    EXPECT_GE(seg->body->fd(), 0) << uri;
  }
  const double audio_bps = measured_bps(this, audio, fetch);
  EXPECT_GT(audio_bps, 100e3);  // AC-3 at 128k plus its TS overhead
  EXPECT_LT(audio_bps, 200e3);
  for (const auto& v : m.variants) {
    const Playlist media = parse_playlist(get(v.uri));
    const double bps = measured_bps(this, media, fetch) + audio_bps;
    const double avg = std::stod(v.attrs.at("AVERAGE-BANDWIDTH"));
    EXPECT_NEAR(avg / bps, 1.0, 0.03) << v.uri << " " << avg << " vs " << bps;
  }
  EXPECT_GT(std::stod(m.variants[1].attrs.at("AVERAGE-BANDWIDTH")),
            2 * std::stod(m.variants[0].attrs.at("AVERAGE-BANDWIDTH")) - audio_bps);

  // Stats per rendition.
  const auto hi = packager_->channel_stats("news");
  const auto lo = packager_->rendition_stats("news", "lo");
  ASSERT_TRUE(hi && lo);
  EXPECT_EQ(hi->state, "serving");
  EXPECT_EQ(lo->state, "serving");
  EXPECT_LT(lo->segments, hi->segments);  // it joined late
  EXPECT_FALSE(packager_->rendition_stats("news", "nope").has_value());
}

TEST_F(Abr, RenditionsShareBoundariesAndSequenceNumbersThoughOneStartedLate) {
  feed(3'300);
  const Playlist hi = parse_playlist(get("live.m3u8"));
  const Playlist lo = parse_playlist(get("live-lo.m3u8"));
  ASSERT_GE(hi.entries.size(), 5u);
  ASSERT_GE(lo.entries.size(), 4u);
  EXPECT_GT(*lo.media_sequence, *hi.media_sequence);  // lo starts later ...
  std::map<std::uint64_t, std::uint64_t> hi_pts;
  for (const auto& s : hi.entries) {
    EXPECT_EQ(s.uri, "seg-" + std::to_string(s.position) + ".ts");
    const auto pts = first_video_pts(get(s.uri));
    ASSERT_TRUE(pts.has_value()) << s.uri;
    hi_pts[s.position] = *pts;
  }
  std::size_t common = 0;
  for (std::size_t i = 0; i < lo.entries.size(); ++i) {
    const auto& s = lo.entries[i];
    EXPECT_EQ(s.uri, "seg-lo-" + std::to_string(s.position) + ".ts");
    const auto pts = first_video_pts(get(s.uri));
    ASSERT_TRUE(pts.has_value()) << s.uri;
    const auto it = hi_pts.find(s.position);
    ASSERT_NE(it, hi_pts.end()) << s.uri;  // ... on a slot hi has too, with hi's number
    EXPECT_EQ(*pts, it->second) << s.uri;   // and the same first PTS
    // Segments after the first cut on the 2 s PTS grid: at the first key frame (1 s GOP)
    // at or after a multiple of 180000.
    if (i > 0) {
      EXPECT_LT(*pts % 180'000, 90'000u) << *pts;
    }
    ++common;
  }
  EXPECT_GE(common, 4u);
}

// The alternate audio track's segment is stored just before the primary's it was cut from;
// a master rendered in between (here while that audio segment's predecessor is written to
// ott.dvr_dir outside the lock) must not drop the alternate: a player that fetched it then
// would offer no second language for as long as it plays.
TEST_F(Abr, TheMasterKeepsTheAlternateAudioWhileASegmentIsStored) {
  const fs::path dir = tt::temp_dir("hls_abr_master");
  config_.dvr_dir = dir.string();
  config_.window_segments = 1;  // every audio segment but the newest goes to disk
  start_packager();
  std::atomic<bool> done{false};
  std::atomic<int> with = 0, without = 0;  // masters served once the alternate was listed
  std::thread reader([&] {
    while (!done.load()) {
      const auto r = packager_->get("news", "index.m3u8", "");
      if (!r) continue;
      const bool alt = r->body->str().find("URI=\"audio-") != std::string::npos;
      if (alt) ++with;
      else if (with > 0) ++without;
    }
  });
  feed(kNoLo);
  done = true;
  reader.join();
  EXPECT_GT(with.load(), 0);
  EXPECT_EQ(without.load(), 0) << "masters without the alternate audio, served between its segment and the primary's";
  packager_.reset();
  fs::remove_all(dir);
}

TEST_F(Abr, AudioOnlySegmentsHoldOneStreamAndPlaylistsPlayInFfmpeg) {
  feed(3'300);
  const Master m = parse_master(get("index.m3u8"));
  ASSERT_EQ(m.media.size(), 2u);
  const std::string audio_uri = m.media[1].at("URI");
  const Playlist audio = parse_playlist(get(audio_uri));
  const Playlist hi = parse_playlist(get("live.m3u8"));
  ASSERT_FALSE(audio.entries.empty());
  // The audio track has the primary's numbers and durations.
  EXPECT_EQ(*audio.media_sequence, *hi.media_sequence);
  ASSERT_EQ(audio.entries.size(), hi.entries.size());
  for (std::size_t i = 0; i < audio.entries.size(); ++i) EXPECT_DOUBLE_EQ(audio.entries[i].duration_s, hi.entries[i].duration_s);

  const fs::path dir = tt::temp_dir("hls_abr_audio");
  const std::string seg = get(audio.entries[1].uri);
  ASSERT_FALSE(seg.empty());
  ASSERT_EQ(seg.size() % 188, 0u);
  tt::write_file(dir / "a.ts", std::vector<std::uint8_t>(seg.begin(), seg.end()));
  const std::string file = tt::shell_quote((dir / "a.ts").string());
  const auto count = tt::run("ffprobe -v error -show_entries format=nb_streams,nb_programs -of default=nw=1 " + file + " 2>&1");
  EXPECT_EQ(count.out, "nb_streams=1\nnb_programs=1\n");
  const auto probe = tt::run("ffprobe -v error -select_streams 0 -show_entries stream=codec_type,codec_name:stream_tags=language "
                             "-of default=nw=1 " + file + " 2>&1");
  EXPECT_EQ(probe.exit_code, 0) << probe.out;
  EXPECT_NE(probe.out.find("codec_name=ac3\ncodec_type=audio\n"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("TAG:language=deu\n"), std::string::npos) << probe.out;

  // Through the real origin: the master with a time range ending before the newest
  // segment is VOD everywhere, so ffmpeg reads every variant and the alternate to the end.
  const std::uint16_t port = serve();
  // End: half a second before the newest primary segment's start, so every playlist of
  // the range is over (VOD).
  const std::int64_t end = hi.entries.back().pdt_ms - 500;
  const std::string query = "end=" + std::to_string(end / 1000) + "." + std::to_string(end % 1000 + 1000).substr(1);
  const std::string ranged = get("index.m3u8", query);
  SCOPED_TRACE(ranged);
  const Master rm = parse_master(ranged);
  ASSERT_EQ(rm.variants.size(), 2u);
  ASSERT_EQ(rm.media.size(), 2u);
  for (const auto& v : rm.variants) {
    const auto q = v.uri.find('?');
    ASSERT_NE(q, std::string::npos) << v.uri;
    const Playlist vm = parse_playlist(get(v.uri.substr(0, q), v.uri.substr(q + 1)));
    EXPECT_TRUE(vm.end_list) << v.uri;
    EXPECT_GE(vm.entries.size(), 2u) << v.uri;
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hls/news/index.m3u8?" + query;
  const auto play = tt::run("timeout 120 ffmpeg -hide_banner -nostdin -v error -i " + tt::shell_quote(url) +
                            " -map 0 -f null - 2>&1");
  EXPECT_EQ(play.exit_code, 0) << play.out;
  EXPECT_EQ(play.out, "") << play.out;
  const auto streams = tt::run("timeout 60 ffprobe -v error -show_entries stream=codec_type,codec_name,height -of csv=p=0 " +
                               tt::shell_quote(url) + " 2>&1");
  EXPECT_EQ(streams.exit_code, 0) << streams.out;
  for (const char* want : {"h264,video,180", "h264,video,360", "aac,audio", "ac3,audio"})
    EXPECT_NE(streams.out.find(want), std::string::npos) << want << "\n" << streams.out;
}

// A rendition may be named anything of [a-z0-9_-]{1,32}, "audio-258" too: the name the
// alternate audio track of PID 258 (the primary's AC-3) goes by. The two are different
// tracks: the received rendition must not be taken for the audio track (which crashed the
// packager thread, the rendition having no regenerated PSI), nor serve the audio's playlists.
TEST_F(Abr, ARenditionNamedLikeAnAudioTrackIsNotTakenForIt) {
  packager_->set_channels({PackagedChannel{"news", "News", hi_feed_, {PackagedRendition{"audio-258", lo_feed_}}}});
  feed(3'300);
  const std::string text = get("index.m3u8");
  SCOPED_TRACE(text);
  const Master m = parse_master(text);
  ASSERT_EQ(m.variants.size(), 2u);
  EXPECT_EQ(m.variants[0].uri, "live-audio-258.m3u8");
  ASSERT_EQ(m.media.size(), 2u);
  EXPECT_EQ(m.media[1].at("URI"), "audio-258.m3u8");
  for (const char* name : {"audio-258.m3u8", "audio-258-event.m3u8"}) {
    const Playlist audio = parse_playlist(get(name));
    ASSERT_FALSE(audio.entries.empty()) << name;
    EXPECT_TRUE(audio.entries.back().uri.starts_with("audio-258-")) << name << " " << audio.entries.back().uri;
  }
  const Playlist video = parse_playlist(get("event-audio-258.m3u8"));
  ASSERT_FALSE(video.entries.empty());
  EXPECT_TRUE(video.entries.back().uri.starts_with("seg-audio-258-")) << video.entries.back().uri;
  // Still numbered by its PTS slots: the audio track's numbers are no floor for its own.
  std::map<std::uint64_t, std::uint64_t> hi_pts;
  for (const auto& s : parse_playlist(get("event.m3u8")).entries) hi_pts[s.position] = *first_video_pts(get(s.uri));
  for (const auto& s : video.entries) {
    const auto it = hi_pts.find(s.position);
    ASSERT_NE(it, hi_pts.end()) << s.uri;
    EXPECT_EQ(first_video_pts(get(s.uri)), std::optional<std::uint64_t>(it->second)) << s.uri;
  }
}

TEST_F(Abr, DvrRangesWorkForEveryRendition) {
  feed(3'300);
  const Playlist lo = parse_playlist(get("live-lo.m3u8"));
  ASSERT_GE(lo.entries.size(), 4u);
  // From the start of the feed to 7 s in: VOD (a held segment starts after the end).
  const std::string q = "start=" + std::to_string(kT0 / 1000) + "&end=" + std::to_string(kT0 / 1000 + 7);
  for (const char* name : {"live.m3u8", "live-lo.m3u8"}) {
    const std::string text = get(name, q);
    ASSERT_FALSE(text.empty()) << name;
    const Playlist m = parse_playlist(text);
    EXPECT_TRUE(m.end_list) << name;
    EXPECT_FALSE(m.entries.empty()) << name;
  }
  const Master rm = parse_master(get("index.m3u8", q));
  EXPECT_EQ(rm.variants.size(), 2u);
  for (const auto& v : rm.variants) EXPECT_NE(v.uri.find("?start="), std::string::npos) << v.uri;
  // Event playlists per rendition.
  EXPECT_FALSE(get("event-lo.m3u8").empty());
  EXPECT_TRUE(get("event-nope.m3u8").empty());
  EXPECT_TRUE(get("seg-nope-1.ts").empty());
}

TEST_F(Abr, TranscodedRungIsAlignedWithTheSourceAndPlays) {
  // The channel fed one rendition, configured with a transcoded rung (libx264 180p).
  packager_->set_channels({PackagedChannel{"news", "News", hi_feed_, {PackagedRendition{"t180", nullptr, 180, 300}}}});
  feed(kNoLo);
  // The transcoder works on its own threads: poll until the rung has segments (a guard only:
  // x264 on a loaded 2-core machine under ASan can take minutes).
  for (const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(180);
       std::chrono::steady_clock::now() < until;) {
    packager_->poll_once();
    const auto st = packager_->rendition_stats("news", "t180");
    ASSERT_TRUE(st);
    if (st->segments >= 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto st = packager_->rendition_stats("news", "t180");
  ASSERT_GE(st->segments, 4u) << packager_->channels_json();
  const std::string text = get("index.m3u8");
  SCOPED_TRACE(text);
  const Master m = parse_master(text);
  ASSERT_EQ(m.variants.size(), 2u);
  EXPECT_EQ(m.variants[0].uri, "live-t180.m3u8");
  EXPECT_EQ(m.variants[0].attrs.at("RESOLUTION"), "320x180");
  EXPECT_NE(m.variants[0].attrs.at("CODECS").find("avc1."), std::string::npos);
  EXPECT_LT(std::stoull(m.variants[0].attrs.at("AVERAGE-BANDWIDTH")), std::stoull(m.variants[1].attrs.at("AVERAGE-BANDWIDTH")));

  const Playlist hi = parse_playlist(get("live.m3u8"));
  const Playlist t = parse_playlist(get("live-t180.m3u8"));
  std::map<std::uint64_t, std::pair<std::uint64_t, std::int64_t>> hi_seg;  // sequence -> first PTS, PDT
  for (const auto& s : hi.entries) hi_seg[s.position] = {*first_video_pts(get(s.uri)), s.pdt_ms};
  std::size_t common = 0;
  for (const auto& s : t.entries) {
    const auto pts = first_video_pts(get(s.uri));
    ASSERT_TRUE(pts.has_value()) << s.uri;
    const auto it = hi_seg.find(s.position);
    ASSERT_NE(it, hi_seg.end()) << s.uri;
    EXPECT_EQ(*pts, it->second.first) << s.uri;   // cut at the same key frame
    EXPECT_EQ(s.pdt_ms, it->second.second) << s.uri;  // the source's wall time, not the encoder's
    ++common;
  }
  EXPECT_GE(common, 4u);
  const std::uint16_t port = serve();
  const std::int64_t end = t.entries.back().pdt_ms - 500;  // t180's newest segment starts after: every playlist is over
  const std::string query = "end=" + std::to_string(end / 1000) + "." + std::to_string(end % 1000 + 1000).substr(1);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hls/news/index.m3u8?" + query;
  const auto play = tt::run("timeout 120 ffmpeg -hide_banner -nostdin -v error -i " + tt::shell_quote(url) + " -map 0 -f null - 2>&1");
  EXPECT_EQ(play.exit_code, 0) << play.out;
  EXPECT_EQ(play.out, "") << play.out;
}

TEST_F(Abr, ReloadOfOneRenditionLeavesTheOthersAlone) {
  feed(3'300);
  const auto hi_before = packager_->get("news", "live.m3u8", "");
  const std::string lo_before = get("live-lo.m3u8");
  ASSERT_TRUE(hi_before && !lo_before.empty());
  // A reload restarts the hidden channel "news.lo" only: its feed is detached, then a new one given.
  packager_->detach({rendition_channel_id("news", "lo")});
  auto* lo2 = new_feed(64);
  packager_->set_channels({PackagedChannel{"news", "News", hi_feed_, {PackagedRendition{"lo", lo2}}}});
  const auto hi_after = packager_->get("news", "live.m3u8", "");
  ASSERT_TRUE(hi_after);
  EXPECT_EQ(hi_after->body, hi_before->body);  // the same rendered text: nothing restarted
  EXPECT_EQ(get("live-lo.m3u8"), lo_before);   // the window stays until new segments come
  EXPECT_EQ(packager_->rendition_stats("news", "lo")->segments, 0u);  // a new segmenter
  EXPECT_EQ(packager_->rendition_stats("news", "lo")->held_segments, parse_playlist(lo_before).entries.size());
  // Dropping the rendition drops its playlists; the master lists the primary alone.
  packager_->set_channels({PackagedChannel{"news", "News", hi_feed_}});
  EXPECT_TRUE(get("live-lo.m3u8").empty());
  EXPECT_EQ(parse_master(get("index.m3u8")).variants.size(), 1u);
  EXPECT_FALSE(get("live.m3u8").empty());
}

TEST_F(Abr, EncryptedRenditionsHaveTheirOwnKeys) {
  PackagedChannel c{"news", "News", hi_feed_, {PackagedRendition{"lo", lo_feed_}}};
  c.encrypt = true;
  packager_->set_channels({c});
  feed(0);
  std::map<std::string, std::string> key_of;  // playlist -> its first key URI
  for (const char* name : {"live.m3u8", "live-lo.m3u8"}) {
    const std::string text = get(name);
    const std::string tag = "#EXT-X-KEY:METHOD=AES-128,URI=\"";
    const auto at = text.find(tag);
    ASSERT_NE(at, std::string::npos) << text;
    const auto from = at + tag.size();
    key_of[name] = text.substr(from, text.find('"', from) - from);
    const Playlist m = parse_playlist(text);
    ASSERT_FALSE(m.entries.empty());
    const auto key = packager_->get("news", key_of[name], "");
    ASSERT_TRUE(key) << key_of[name];
    HlsKey k;
    ASSERT_EQ(key->body->size(), 16u);
    std::memcpy(k.bytes.data(), key->body->data(), 16);
    const auto plain = hls_decrypt(k, m.entries[0].position, get(m.entries[0].uri));
    ASSERT_TRUE(plain.has_value()) << name;
    EXPECT_EQ(static_cast<unsigned char>((*plain)[0]), 0x47u) << name;
    EXPECT_TRUE(first_video_pts(*plain).has_value()) << name;
  }
  EXPECT_NE(key_of["live.m3u8"], key_of["live-lo.m3u8"]);
}

TEST_F(Abr, ARestartNumbersAboveTheLastRunThoughThePtsRepeat) {
  // Each media playlist and every segment it lists: name -> (ETag, bytes); and its numbers.
  struct Run {
    std::map<std::string, std::pair<std::string, std::string>> served;
    std::map<std::string, Playlist> lists;
  };
  const auto snapshot = [this] {
    Run r;
    const Master m = parse_master(get("index.m3u8"));
    std::vector<std::string> names;
    for (const auto& v : m.variants) names.push_back(v.uri);
    for (const auto& a : m.media)
      if (a.count("URI") != 0) names.push_back(a.at("URI"));
    EXPECT_EQ(names.size(), 3u) << "hi, lo and the alternate audio";
    for (const auto& name : names) {
      const auto list = packager_->get("news", name, "");
      EXPECT_TRUE(list) << name;
      if (!list) continue;
      r.served[name] = {list->etag, list->body->str()};
      r.lists[name] = parse_playlist(list->body->str());
      for (const Entry& e : r.lists[name].entries) {
        const auto seg = packager_->get("news", e.uri, "");
        EXPECT_TRUE(seg) << e.uri;
        if (seg) r.served[e.uri] = {seg->etag, seg->body->str()};
      }
    }
    return r;
  };
  feed(3'300);
  const Run run1 = snapshot();
  // The channel's first segment took the clock's ms when the channel was made, not its PTS
  // slot (which the same source gives again after a restart).
  const Playlist ev = parse_playlist(get("event.m3u8"));
  EXPECT_EQ(*ev.media_sequence, static_cast<std::uint64_t>(kT0));
  std::uint64_t last1 = 0;
  for (const auto& [name, list] : run1.lists)
    for (const Entry& e : list.entries) last1 = std::max(last1, e.sequence);

  // twincastd restarts 1 ms later and the source sends the same PTS again.
  packager_.reset();
  mono_ns_ += 1'000'000;
  start_packager();
  feed(3'300);
  const Run run2 = snapshot();
  ASSERT_EQ(run2.lists.size(), 3u);
  for (const auto& [name, list] : run2.lists) {
    ASSERT_FALSE(list.entries.empty()) << name;
    EXPECT_GT(list.entries.front().sequence, last1) << name << ": a number of the last run again";
    for (const Entry& e : list.entries) EXPECT_EQ(e.sequence, e.position) << e.uri;
  }
  for (const auto& [name, got] : run2.served) {
    const auto it = run1.served.find(name);
    if (it == run1.served.end()) continue;
    if (name.ends_with(".m3u8")) {
      if (it->second.first == got.first) {
        EXPECT_EQ(it->second.second, got.second) << name << ": the same ETag for other bytes";
      }
    } else {
      ADD_FAILURE() << name << " served by both runs";
    }
  }
  // Still aligned: lo's numbers are hi's for the same first PTS.
  std::map<std::uint64_t, std::uint64_t> hi_pts;
  for (const Entry& e : run2.lists.at("live.m3u8").entries) hi_pts[e.sequence] = *first_video_pts(get(e.uri));
  std::size_t common = 0;
  for (const Entry& e : run2.lists.at("live-lo.m3u8").entries) {
    const auto it = hi_pts.find(e.sequence);
    ASSERT_NE(it, hi_pts.end()) << e.uri;
    EXPECT_EQ(first_video_pts(get(e.uri)), std::optional<std::uint64_t>(it->second)) << e.uri;
    ++common;
  }
  EXPECT_GE(common, 4u);
}

}  // namespace
}  // namespace twincast::control
