// SCTE-35 through the whole data plane without root (EAL --no-huge, a net_pcap port whose
// TX goes to a pcap file): a channel with `hls: true` receives h264_aac.ts (ffmpeg) whose
// PMT lists a stream_type 0x86 PID carrying splice_info_sections, as UDP multicast frames
// (Dataplane::process_burst). Checked:
//   * the multicast output in the TX pcap carries every section byte for byte (packet
//     payloads and reassembled sections) and its PMT still lists the PID as 0x86 with the
//     "CUEI" registration;
//   * the channel's OTT feed, segmented as the packager does (hls::Segmenter, the chunk's
//     discontinuity flag passed on), puts each cue on the segment holding its splice
//     point, and media_playlist() renders EXT-X-DATERANGE SCTE35-OUT / -IN with
//     EXT-X-CUE-OUT / -IN before it;
//   * a failover (the main input falls silent, the backup carries the same stream) between
//     a cue and its splice point neither loses nor duplicates the cue, on either side.
#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/eal_harness.hpp"
#include "dataplane/pcap_port.hpp"
#include "dataplane/ts_frames.hpp"
#include "mpegts/scte35_sections.hpp"
#include "tests_common.hpp"
#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/net.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/hls.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/section.hpp"

namespace twincast::dataplane {
namespace {

using mpegts::TsPacket;
using net::ipv4;
using ByteVec = std::vector<std::uint8_t>;
namespace hls = mpegts::hls;
namespace sw = test::scte35_writer;

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kPts1s = 90'000;
constexpr Ipv4 kOurIp = ipv4(10, 9, 3, 2);
constexpr Ipv4 kPeerIp = ipv4(10, 9, 3, 1);
constexpr Ipv4 kGroupMain = ipv4(239, 1, 35, 1);
constexpr Ipv4 kGroupBackup = ipv4(239, 1, 35, 2);
constexpr Ipv4 kGroupOut = ipv4(239, 35, 35, 35);
constexpr std::uint16_t kServiceId = 35;
constexpr Mac kPeerMac = {0x02, 0x74, 0x63, 0x00, 0x35, 0x01};
constexpr std::int64_t kWall0 = 1'795'642'000'000;  // the packager's UTC at the feed's time 0

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new test::EalEnvironment("tcdp_scte_", "dataplane_scte35_dp_test"));

// The fixture with the SCTE-35 PMT and `sections` inserted before the video PES at or after
// each time (seconds from the first video PTS, decode order); `f0` gets that first PTS.
struct Timed {
  double at_s = 0;
  ByteVec section;
};

std::vector<TsPacket> stream_with(const std::vector<Timed>& sections, std::uint64_t& f0) {
  const auto base = sw::with_scte35_pmt(test::read_packets(test::fixture("h264_aac.ts")));
  const auto pes = sw::video_pes(base);
  EXPECT_FALSE(pes.empty());
  if (pes.empty()) return {};
  f0 = std::min_element(pes.begin(), pes.end(), [](auto& a, auto& b) { return a.second < b.second; })->second;
  std::vector<sw::Insertion> ins;
  for (const Timed& t : sections) {
    const std::uint64_t pts = f0 + static_cast<std::uint64_t>(t.at_s * kPts1s);
    std::size_t before = base.size();
    for (const auto& [i, p] : pes)
      if (p >= pts) {
        before = i;
        break;
      }
    ins.push_back({before, t.section});
  }
  return sw::insert_sections(base, ins);
}

struct Chunk {
  std::uint64_t ns = 0;
  bool discontinuity = false;
  std::vector<TsPacket> packets;
};

struct ChannelRun {
  std::vector<Chunk> chunks;      // the OTT feed, as the packager read it
  std::vector<TsPacket> multicast;  // the TS of the datagrams to kGroupOut in the TX pcap
  OttFeedStats feed;
  ChannelStats channel;
  unsigned pool_in_use_before = 0;
  unsigned pool_in_use_after = 0;
};

// One channel (service kServiceId, `hls: true`, pass-through pacing) fed `stream` on its
// main input and, when `backup`, the same stream at the same times on a second input;
// the main input falls silent from `main_stops_ns` on (0: never). The run goes on 500 ms
// past the stream's end so the pacer empties; the packager drains the feed every 10 ms.
ChannelRun run_channel(const std::string& name, const std::vector<TsPacket>& stream, bool backup, std::uint64_t main_stops_ns) {
  ChannelRun r;
  const auto dir = test::temp_dir("dp_scte35_" + name);
  const auto tx_pcap = dir / "tx.pcap";
  ApplianceConfig cfg;
  cfg.ports.push_back(test::pcap_port("net_pcap_" + name, dir, tx_pcap, kOurIp));
  ChannelConfig ch;
  ch.id = "ads";
  ch.name = "Ads";
  ch.service_id = kServiceId;
  ch.hls = true;
  for (const Ipv4 g : {kGroupMain, kGroupBackup}) {
    if (g == kGroupBackup && !backup) break;
    InputConfig in;
    in.name = g == kGroupMain ? "main" : "backup";
    in.port = "p0";
    in.address = g;
    in.udp_port = 5000;
    ch.inputs.push_back(in);
  }
  OutputConfig out;
  out.port = "p0";
  out.address = kGroupOut;
  out.udp_port = 5000;
  out.pacing = PacingMode::kPassthrough;
  ch.outputs.push_back(out);
  cfg.channels = {ch};

  auto dp = std::make_unique<Dataplane>(cfg);
  OttFeed* feed = dp->ott_feed(0);
  EXPECT_NE(feed, nullptr);
  if (feed == nullptr) return r;
  rte_mempool* pool = dp->mempool(0);
  r.pool_in_use_before = rte_mempool_in_use_count(pool);

  const std::vector<std::uint64_t> times = mpegts::file_times(stream).ns;
  const auto drain = [&] {
    feed->read([&](const OttChunk& c) { r.chunks.push_back(Chunk{c.ns, c.discontinuity, {c.packets.begin(), c.packets.end()}}); });
  };
  std::size_t next = 0;
  const std::uint64_t end = times.back() + 500 * kMs;
  for (std::uint64_t now = kMs; now <= end; now += kMs) {
    std::vector<rte_mbuf*> burst;
    while (next < stream.size() && times[next] < now) {
      const std::size_t n = std::min<std::size_t>(7, stream.size() - next);
      const std::span<const TsPacket> dgram(stream.data() + next, n);
      next += n;
      for (const Ipv4 g : {kGroupMain, kGroupBackup}) {
        if (g == kGroupMain && main_stops_ns != 0 && now >= main_stops_ns) continue;
        if (g == kGroupBackup && !backup) continue;
        rte_mbuf* m = test::mbuf_of(pool, test::ts_udp_frame(g, 5000, dgram, kPeerIp, kPeerMac));
        if (m != nullptr) burst.push_back(m);
      }
    }
    if (!burst.empty()) dp->process_burst(0, burst.data(), static_cast<std::uint16_t>(burst.size()), now);
    dp->poll_once(now);
    if (now % (10 * kMs) == 0) drain();
  }
  drain();
  r.feed = feed->stats();
  r.channel = dp->pipeline(0).stats();
  r.pool_in_use_after = rte_mempool_in_use_count(pool);
  dp.reset();  // the pcap is complete
  r.multicast = test::ts_to(test::read_pcap(tx_pcap), kGroupOut, 5000);
  std::filesystem::remove_all(dir);
  return r;
}

// The sections carried on `pid`, reassembled, in order.
std::vector<ByteVec> sections_on(const std::vector<TsPacket>& pkts, std::uint16_t pid) {
  struct Collect final : mpegts::SectionHandler {
    std::vector<ByteVec> sections;
    void on_section(std::uint16_t, std::span<const std::uint8_t> sec, bool) override { sections.emplace_back(sec.begin(), sec.end()); }
  } collect;
  mpegts::SectionAssembler a;
  for (const TsPacket& p : pkts)
    if (p.pid() == pid) a.push(p, collect);
  return collect.sections;
}

std::vector<ByteVec> payloads_on(const std::vector<TsPacket>& pkts, std::uint16_t pid) {
  std::vector<ByteVec> v;
  for (const TsPacket& p : pkts)
    if (p.pid() == pid) v.emplace_back(p.payload().begin(), p.payload().end());
  return v;
}

// The multicast PMT of kServiceId lists kScte35Pid as stream_type 0x86 with "CUEI".
void expect_scte35_in_pmt(const std::vector<TsPacket>& multicast) {
  mpegts::PsiDecoder d;
  for (const TsPacket& p : multicast) d.push(p);
  const mpegts::Service* s = d.model().find_service(kServiceId);
  ASSERT_NE(s, nullptr) << "no PMT of service " << kServiceId << " on the multicast output";
  const auto es = std::find_if(s->streams.begin(), s->streams.end(), [](const auto& e) { return e.pid == sw::kScte35Pid; });
  ASSERT_NE(es, s->streams.end()) << "the multicast PMT lost the SCTE-35 PID";
  EXPECT_EQ(es->stream_type, mpegts::scte35::kStreamType);
  EXPECT_EQ(es->descriptors, std::vector<mpegts::Descriptor>{sw::registration_cuei()});
  EXPECT_NE(std::find(s->program_descriptors.begin(), s->program_descriptors.end(), sw::registration_cuei()),
            s->program_descriptors.end());
}

struct HlsRun {
  std::vector<hls::Segment> segments;
  hls::SegmenterStats stats;
  std::string playlist;
};

// What the packager does with the feed: every chunk into a Segmenter (2 s target) at the
// chunk's wall time, its discontinuity flag passed on; the segments as a playlist.
HlsRun segment_feed(const std::vector<Chunk>& chunks) {
  HlsRun h;
  {
    hls::Segmenter s({}, [&](hls::Segment&& seg) { h.segments.push_back(std::move(seg)); });
    for (const Chunk& c : chunks) s.push(c.packets, kWall0 + static_cast<std::int64_t>(c.ns / kMs), c.discontinuity);
    s.flush();
    h.stats = s.stats();
  }
  h.playlist = hls::media_playlist(sw::playlist_of(h.segments));
  return h;
}

std::string uri_of(const hls::Segment& s) { return "seg" + std::to_string(s.sequence) + ".ts"; }

// The segment whose [first_pts, first_pts + duration) holds `pts` (nullptr when none).
const hls::Segment* segment_holding(const HlsRun& h, std::uint64_t pts) {
  for (const hls::Segment& s : h.segments) {
    if (!s.has_first_pts) continue;
    const std::uint64_t into = mpegts::pts_delta(s.first_pts, pts);
    if (into < static_cast<std::uint64_t>(s.duration_s * kPts1s + 0.5)) return &s;
  }
  return nullptr;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string iso(std::int64_t ms) { return hls::format_date_time(ms); }

TEST(Scte35Dataplane, PassesThroughTheMulticastOutputAndBecomesPlaylistCues) {
  // A Placement Opportunity (time_signal) whose start section spans two packets (a long
  // UPID), out at 1.52 s and in at 2.52 s, mid-GOP; a break (splice_insert) out on the IDR
  // at 3.0 s for 2.5 s, announced 2 s ahead, and its in at 5.5 s.
  std::uint64_t f0 = 0;
  // The splice times need f0, which needs the stream: read it once for f0.
  (void)stream_with({}, f0);
  const ByteVec ppo_out = sw::time_signal_section(
      true, f0 + 136'800, {{.event_id = 500, .has_duration = true, .duration = kPts1s, .upid = ByteVec(150, 0x5A), .type_id = 0x34}});
  const ByteVec ppo_in = sw::time_signal_section(true, f0 + 226'800, {{.event_id = 500, .type_id = 0x35}});
  const ByteVec brk_out = sw::insert_section(
      {.event_id = 7, .out = true, .pts = f0 + 3 * kPts1s, .has_duration = true, .duration = kPts1s * 5 / 2});
  const ByteVec brk_in = sw::insert_section({.event_id = 7, .out = false, .pts = f0 + 11 * kPts1s / 2});
  ASSERT_GT(ppo_out.size(), 183u) << "meant to span two TS packets";
  const std::vector<Timed> sections = {{0.3, ppo_out}, {1.0, brk_out}, {2.0, ppo_in}, {4.5, brk_in}};
  std::uint64_t f0_again = 0;
  const auto stream = stream_with(sections, f0_again);
  ASSERT_EQ(f0_again, f0);
  const auto in_payloads = payloads_on(stream, sw::kScte35Pid);
  ASSERT_EQ(in_payloads.size(), 5u);

  const ChannelRun r = run_channel("scte0", stream, false, 0);
  EXPECT_EQ(r.feed.dropped_chunks, 0u);
  EXPECT_EQ(r.feed.discontinuities, 0u);
  EXPECT_EQ(r.channel.switches, 0u);
  EXPECT_EQ(r.pool_in_use_after, r.pool_in_use_before) << "an mbuf leaked";

  // (a) Multicast: the PID's packets carry the same payloads, the sections are the same
  // bytes in the same order, and the PMT still announces the PID.
  ASSERT_FALSE(r.multicast.empty());
  EXPECT_EQ(payloads_on(r.multicast, sw::kScte35Pid), in_payloads);
  EXPECT_EQ(sections_on(r.multicast, sw::kScte35Pid), (std::vector<ByteVec>{ppo_out, brk_out, ppo_in, brk_in}));
  expect_scte35_in_pmt(r.multicast);
  // The feed is the multicast timeline: the same sections.
  std::vector<TsPacket> fed;
  for (const Chunk& c : r.chunks) fed.insert(fed.end(), c.packets.begin(), c.packets.end());
  EXPECT_EQ(sections_on(fed, sw::kScte35Pid), (std::vector<ByteVec>{ppo_out, brk_out, ppo_in, brk_in}));

  // (b) HLS: four cues, none dropped; the break starts the segment cut on its IDR.
  const HlsRun h = segment_feed(r.chunks);
  EXPECT_EQ(h.stats.scte35_sections, 4u);
  EXPECT_EQ(h.stats.scte35_refused, 0u);
  EXPECT_EQ(h.stats.cues, 4u);
  EXPECT_EQ(h.stats.cues_dropped, 0u);
  EXPECT_EQ(h.stats.splice_cuts, 1u);
  const hls::Segment* s_ppo_out = segment_holding(h, f0 + 136'800);
  const hls::Segment* s_ppo_in = segment_holding(h, f0 + 226'800);
  const hls::Segment* s_brk_out = segment_holding(h, f0 + 3 * kPts1s);
  const hls::Segment* s_brk_in = segment_holding(h, f0 + 11 * kPts1s / 2);
  ASSERT_TRUE(s_ppo_out && s_ppo_in && s_brk_out && s_brk_in) << h.playlist;
  EXPECT_NE(s_ppo_out, s_ppo_in);
  EXPECT_NE(s_brk_out, s_brk_in);
  EXPECT_EQ(s_brk_out->first_pts, f0 + 3 * kPts1s) << "the break's splice point starts a segment";

  ASSERT_EQ(s_brk_out->cues.size(), 1u);
  const hls::Cue& out = s_brk_out->cues[0];
  EXPECT_EQ(out.kind, hls::CueKind::kOut);
  EXPECT_EQ(out.id, sw::cue_id("splice-7", out.wall_ms));
  EXPECT_EQ(out.section, brk_out);
  EXPECT_EQ(out.wall_ms, s_brk_out->program_date_time_ms);
  EXPECT_EQ(sw::tags_before(h.playlist, uri_of(*s_brk_out)),
            (std::vector<std::string>{"#EXT-X-DATERANGE:ID=\"" + out.id + "\",START-DATE=\"" + iso(out.wall_ms) +
                                          "\",PLANNED-DURATION=2.500,SCTE35-OUT=" + sw::to_hex(brk_out),
                                      "#EXT-X-CUE-OUT:DURATION=2.500"}))
      << h.playlist;
  ASSERT_EQ(s_brk_in->cues.size(), 1u);
  const hls::Cue& in = s_brk_in->cues[0];
  EXPECT_EQ(in.kind, hls::CueKind::kIn);
  EXPECT_TRUE(in.has_out);
  EXPECT_EQ(in.wall_ms, s_brk_in->program_date_time_ms +
                            static_cast<std::int64_t>((mpegts::pts_delta(s_brk_in->first_pts, f0 + 11 * kPts1s / 2) + 45) / 90));
  EXPECT_EQ(sw::tags_before(h.playlist, uri_of(*s_brk_in)),
            (std::vector<std::string>{"#EXT-X-DATERANGE:ID=\"" + out.id + "\",START-DATE=\"" + iso(out.wall_ms) + "\",END-DATE=\"" +
                                          iso(in.wall_ms) + "\",DURATION=" + sw::seconds(in.wall_ms - out.wall_ms) +
                                          ",SCTE35-IN=" + sw::to_hex(brk_in),
                                      "#EXT-X-CUE-IN"}))
      << h.playlist;
  // The Placement Opportunity: out and in on their segments, with the two-packet section whole.
  const auto ppo = [](const hls::Segment& s, hls::CueKind k) {
    return std::count_if(s.cues.begin(), s.cues.end(), [&](const hls::Cue& c) { return c.id.starts_with("seg-500-34-") && c.kind == k; });
  };
  EXPECT_EQ(ppo(*s_ppo_out, hls::CueKind::kOut), 1);
  EXPECT_EQ(ppo(*s_ppo_in, hls::CueKind::kIn), 1);
  EXPECT_EQ(count_of(h.playlist, "SCTE35-OUT=" + sw::to_hex(ppo_out)), 1u) << h.playlist;
  EXPECT_EQ(count_of(h.playlist, "#EXT-X-CUE-OUT:DURATION=1.000"), 1u) << h.playlist;
  EXPECT_EQ(count_of(h.playlist, "#EXT-X-CUE-IN"), 2u) << h.playlist;

  // A real peer: ffprobe sees the SCTE-35 stream in the break's segment (its PMT copied).
  const auto dir = test::temp_dir("dp_scte35_seg");
  test::write_file(dir / "brk.ts", s_brk_out->bytes);
  const auto probe = test::run("ffprobe -v error -show_entries stream=codec_name,id -of csv=p=0 " +
                               test::shell_quote((dir / "brk.ts").string()) + " 2>&1");
  EXPECT_EQ(probe.exit_code, 0) << probe.out;
  EXPECT_NE(probe.out.find("scte_35,0x102"), std::string::npos) << probe.out;
  std::filesystem::remove_all(dir);
}

// Redundant inputs carry the same stream (and cues); the main one falls silent at 2.0 s,
// after the break's out was sent (1.0 s) and before its splice point (4.0 s). The channel
// fails over to the backup (500 ms timeout) and resumes on its IDR at 3.0 s. The out was
// sent once, from the main input, and must neither be lost nor repeated; the in (sent at
// 4.5 s, on the backup only) once as well; a PO whose out and in both preceded the switch
// stays as it was.
TEST(Scte35Dataplane, AFailoverBetweenACueAndItsSplicePointNeitherLosesNorRepeatsIt) {
  std::uint64_t f0 = 0;
  (void)stream_with({}, f0);
  const ByteVec ppo_out = sw::time_signal_section(true, f0 + 136'800, {{.event_id = 600, .type_id = 0x34}});
  const ByteVec ppo_in = sw::time_signal_section(true, f0 + 162'000, {{.event_id = 600, .type_id = 0x35}});
  const ByteVec brk_out = sw::insert_section(
      {.event_id = 8, .out = true, .pts = f0 + 4 * kPts1s, .has_duration = true, .duration = kPts1s * 3 / 2});
  const ByteVec brk_in = sw::insert_section({.event_id = 8, .out = false, .pts = f0 + 11 * kPts1s / 2});
  const auto stream = stream_with({{0.3, ppo_out}, {0.8, ppo_in}, {1.0, brk_out}, {4.5, brk_in}}, f0);

  const ChannelRun r = run_channel("scte1", stream, true, 2000 * kMs);
  EXPECT_EQ(r.channel.switches, 1u);
  EXPECT_EQ(r.channel.active_input, 1u);
  EXPECT_EQ(r.feed.discontinuities, 1u);
  EXPECT_EQ(r.feed.dropped_chunks, 0u);
  EXPECT_EQ(r.pool_in_use_after, r.pool_in_use_before) << "an mbuf leaked";

  // Multicast: each section once, whole, in order (the backup's copies of the first three
  // arrived while it was inactive; the main input's copy of the in never came).
  EXPECT_EQ(sections_on(r.multicast, sw::kScte35Pid), (std::vector<ByteVec>{ppo_out, ppo_in, brk_out, brk_in}));
  expect_scte35_in_pmt(r.multicast);

  // HLS: the switch is a discontinuity of the playlist, but the backup's timeline is the
  // main one's, so the break's out still lands on its splice point's segment, once.
  std::size_t marks = 0;
  for (const Chunk& c : r.chunks) marks += c.discontinuity;
  ASSERT_EQ(marks, 1u);
  const HlsRun h = segment_feed(r.chunks);
  EXPECT_EQ(h.stats.flagged_discontinuities, 1u);
  EXPECT_EQ(h.stats.cues_dropped, 0u) << "a cue sent before the switch was dropped at it\n" << h.playlist;
  EXPECT_EQ(h.stats.cues, 4u) << h.playlist;
  EXPECT_EQ(count_of(h.playlist, "SCTE35-OUT=" + sw::to_hex(brk_out)), 1u) << h.playlist;
  EXPECT_EQ(count_of(h.playlist, "#EXT-X-CUE-OUT:DURATION=1.500"), 1u) << h.playlist;
  EXPECT_EQ(count_of(h.playlist, "SCTE35-IN=" + sw::to_hex(brk_in)), 1u) << h.playlist;
  EXPECT_EQ(count_of(h.playlist, "SCTE35-OUT=" + sw::to_hex(ppo_out)), 1u) << h.playlist;
  EXPECT_EQ(count_of(h.playlist, "SCTE35-IN=" + sw::to_hex(ppo_in)), 1u) << h.playlist;
  EXPECT_EQ(count_of(h.playlist, "#EXT-X-DISCONTINUITY\n"), 1u) << h.playlist;
  const hls::Segment* s_brk_out = segment_holding(h, f0 + 4 * kPts1s);
  ASSERT_NE(s_brk_out, nullptr) << h.playlist;
  EXPECT_EQ(s_brk_out->first_pts, f0 + 4 * kPts1s) << "the break's splice point starts a segment\n" << h.playlist;
  // The in (5.5 s) closes the out it saw; the stream ends at 6 s, so the segment from
  // 4.0 s holds both: out, then in.
  const hls::Segment* s_brk_in = segment_holding(h, f0 + 11 * kPts1s / 2);
  ASSERT_EQ(s_brk_in, s_brk_out) << h.playlist;
  ASSERT_EQ(s_brk_out->cues.size(), 2u) << h.playlist;
  const hls::Cue& out = s_brk_out->cues[0];
  const hls::Cue& in = s_brk_out->cues[1];
  EXPECT_EQ(out.wall_ms, s_brk_out->program_date_time_ms);
  EXPECT_TRUE(in.has_out);
  EXPECT_EQ(in.out_wall_ms, out.wall_ms);
  EXPECT_EQ(in.wall_ms, out.wall_ms + 1500);
  EXPECT_EQ(sw::tags_before(h.playlist, uri_of(*s_brk_out)),
            (std::vector<std::string>{"#EXT-X-DATERANGE:ID=\"" + sw::cue_id("splice-8", out.wall_ms) + "\",START-DATE=\"" + iso(out.wall_ms) +
                                          "\",PLANNED-DURATION=1.500,SCTE35-OUT=" + sw::to_hex(brk_out),
                                      "#EXT-X-CUE-OUT:DURATION=1.500",
                                      "#EXT-X-DATERANGE:ID=\"" + sw::cue_id("splice-8", out.wall_ms) + "\",START-DATE=\"" + iso(out.wall_ms) + "\",END-DATE=\"" +
                                          iso(in.wall_ms) + "\",DURATION=1.500,SCTE35-IN=" + sw::to_hex(brk_in),
                                      "#EXT-X-CUE-IN"}))
      << h.playlist;
}

}  // namespace
}  // namespace twincast::dataplane
