// The OTT feed: a channel's remuxed SPTS handed to the packager through an SPSC rte_ring.
//
// Unit level (own pool, small ring): chunking, the discontinuity mark, drops when the ring
// is full or the pool empty, and the pool back to its start afterwards. Through the whole
// data plane without root (EAL --no-huge, a net_pcap port): a channel with `hls: true`
// and two real ffmpeg inputs, switched by an operator's command half-way; what the feed
// carries is the multicast output's TS (one timeline), the switch is marked once, and both
// sides of it decode with ffmpeg, the part after it starting on a key frame.
#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstring>
#include <fstream>

#include "dataplane/eal_harness.hpp"
#include "dataplane/pcap_port.hpp"
#include "dataplane/ts_frames.hpp"
#include "tests_common.hpp"
#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/net.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/file_times.hpp"

namespace twincast::dataplane {
namespace {

using mpegts::TsPacket;
using net::ipv4;
using ByteVec = std::vector<std::uint8_t>;

constexpr std::uint64_t kMs = 1'000'000;
constexpr Ipv4 kOurIp = ipv4(10, 9, 2, 2);
constexpr Ipv4 kPeerIp = ipv4(10, 9, 2, 1);
constexpr Ipv4 kGroupA = ipv4(239, 1, 8, 1);
constexpr Ipv4 kGroupB = ipv4(239, 1, 8, 2);
constexpr Ipv4 kGroupOut = ipv4(239, 8, 8, 8);
constexpr Mac kPeerMac = {0x02, 0x74, 0x63, 0x00, 0x02, 0x01};

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new test::EalEnvironment("tcdp_ott_", "dataplane_ott_feed_test"));

struct Chunk {
  std::uint64_t ns = 0;
  std::uint32_t seq = 0;
  bool discontinuity = false;
  std::vector<TsPacket> packets;
};

std::vector<Chunk> drain(OttFeed& feed) {
  std::vector<Chunk> out;
  feed.read([&](const OttChunk& c) {
    out.push_back(Chunk{c.ns, c.discontinuity_seq, c.discontinuity, {c.packets.begin(), c.packets.end()}});
  });
  return out;
}

std::vector<TsPacket> numbered(std::size_t n, std::uint8_t first) {
  std::vector<TsPacket> v(n, mpegts::make_null_packet());
  for (std::size_t i = 0; i < n; ++i) v[i].bytes[4] = static_cast<std::uint8_t>(first + i);
  return v;
}

class OttFeedUnit : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    pool_ = rte_pktmbuf_pool_create(("tc_ott_unit" + std::to_string(n++)).c_str(), 63, 0, 0,
                                    static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + OttFeed::kChunkBytes),
                                    SOCKET_ID_ANY);
    ASSERT_NE(pool_, nullptr);
  }
  void TearDown() override {
    EXPECT_EQ(rte_mempool_in_use_count(pool_), 0u) << "a chunk's mbuf leaked";
    rte_mempool_free(pool_);
  }
  rte_mempool* pool_ = nullptr;
};

TEST_F(OttFeedUnit, ChunksOfSevenInOrderWithTheDiscontinuityOnTheNextChunkOnly) {
  OttFeed feed("tc_ott_u1", 64, pool_);
  const auto a = numbered(20, 0);
  feed.on_packets(0, a, 1000);
  feed.on_discontinuity(0);
  feed.on_packets(0, numbered(3, 100), 2000);
  feed.on_packets(0, numbered(1, 200), 3000);
  EXPECT_EQ(feed.queued(), 5u);
  const auto chunks = drain(feed);
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_EQ(chunks[0].packets.size(), 7u);
  EXPECT_EQ(chunks[1].packets.size(), 7u);
  EXPECT_EQ(chunks[2].packets.size(), 6u);
  std::size_t k = 0;
  for (std::size_t c = 0; c < 3; ++c) {
    EXPECT_EQ(chunks[c].ns, 1000u);
    EXPECT_FALSE(chunks[c].discontinuity);
    EXPECT_EQ(chunks[c].seq, 0u);
    for (const auto& p : chunks[c].packets) EXPECT_EQ(p.bytes, a[k++].bytes);
  }
  EXPECT_TRUE(chunks[3].discontinuity);
  EXPECT_EQ(chunks[3].seq, 1u);
  EXPECT_EQ(chunks[3].packets.at(0).bytes[4], 100);
  EXPECT_FALSE(chunks[4].discontinuity);
  EXPECT_EQ(chunks[4].seq, 1u);
  EXPECT_EQ(chunks[4].ns, 3000u);
  const OttFeedStats st = feed.stats();
  EXPECT_EQ(st.chunks, 5u);
  EXPECT_EQ(st.packets, 24u);
  EXPECT_EQ(st.dropped_chunks, 0u);
  EXPECT_EQ(st.discontinuities, 1u);
  EXPECT_EQ(feed.queued(), 0u);
}

TEST_F(OttFeedUnit, AFullRingDropsAndCountsAndADroppedMarkIsCarriedToTheNextChunk) {
  OttFeed feed("tc_ott_u2", 8, pool_);  // 7 usable slots
  for (int i = 0; i < 10; ++i) feed.on_packets(0, numbered(7, static_cast<std::uint8_t>(i)), 1);
  feed.on_discontinuity(0);
  feed.on_packets(0, numbered(7, 50), 2);  // dropped: the ring is still full
  OttFeedStats st = feed.stats();
  EXPECT_EQ(st.chunks, 7u);
  EXPECT_EQ(st.dropped_chunks, 4u);
  EXPECT_EQ(st.dropped_packets, 28u);
  // The packager reads some; the next chunk carries the discontinuity that was pending.
  EXPECT_EQ(feed.read([](const OttChunk& c) { EXPECT_FALSE(c.discontinuity); }, 3), 3u);
  feed.on_packets(0, numbered(2, 60), 3);
  auto chunks = drain(feed);
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_TRUE(chunks.back().discontinuity);
  EXPECT_EQ(chunks.back().seq, 1u);
  EXPECT_EQ(chunks.back().packets.at(0).bytes[4], 60);
  for (std::size_t i = 0; i + 1 < chunks.size(); ++i) EXPECT_FALSE(chunks[i].discontinuity);
}

TEST_F(OttFeedUnit, AnEmptyPoolDropsInsteadOfWaiting) {
  std::vector<rte_mbuf*> held;
  while (rte_mbuf* m = rte_pktmbuf_alloc(pool_)) held.push_back(m);
  OttFeed feed("tc_ott_u3", 16, pool_);
  feed.on_packets(0, numbered(7, 0), 1);
  EXPECT_EQ(feed.stats().dropped_chunks, 1u);
  EXPECT_EQ(feed.queued(), 0u);
  rte_pktmbuf_free_bulk(held.data(), static_cast<unsigned>(held.size()));
  feed.on_packets(0, numbered(7, 0), 2);
  EXPECT_EQ(feed.queued(), 1u);  // freed by the destructor
}

// A chunk dropped with no switch pending (the packager fell behind) still leaves a hole in
// the timeline: the next chunk queued is marked, or the packager splices across the hole.
TEST_F(OttFeedUnit, AChunkDroppedOnAFullRingMarksTheNextQueuedChunk) {
  OttFeed feed("tc_ott_u5", 8, pool_);  // 7 usable slots
  for (int i = 0; i < 8; ++i) feed.on_packets(0, numbered(7, static_cast<std::uint8_t>(i)), 1);  // the 8th: dropped
  EXPECT_EQ(feed.stats().dropped_chunks, 1u);
  auto chunks = drain(feed);
  ASSERT_EQ(chunks.size(), 7u);
  for (const auto& c : chunks) EXPECT_FALSE(c.discontinuity);
  feed.on_packets(0, numbered(7, 8), 2);
  feed.on_packets(0, numbered(7, 9), 3);
  chunks = drain(feed);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_TRUE(chunks[0].discontinuity) << "the chunk after the hole";
  EXPECT_FALSE(chunks[1].discontinuity);
  EXPECT_EQ(chunks[0].seq, 0u) << "no input switch";
  EXPECT_EQ(feed.stats().discontinuities, 0u);
}

TEST_F(OttFeedUnit, AChunkDroppedForWantOfAnMbufMarksTheNextQueuedChunk) {
  OttFeed feed("tc_ott_u6", 16, pool_);
  feed.on_packets(0, numbered(7, 0), 1);
  std::vector<rte_mbuf*> held;
  while (rte_mbuf* m = rte_pktmbuf_alloc(pool_)) held.push_back(m);
  feed.on_packets(0, numbered(7, 7), 2);  // dropped: no mbuf
  EXPECT_EQ(feed.stats().dropped_chunks, 1u);
  rte_pktmbuf_free_bulk(held.data(), static_cast<unsigned>(held.size()));
  feed.on_packets(0, numbered(7, 14), 3);
  const auto chunks = drain(feed);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_FALSE(chunks[0].discontinuity);
  EXPECT_TRUE(chunks[1].discontinuity) << "the chunk after the hole";
}

TEST_F(OttFeedUnit, AThrowingConsumerLosesNoMbuf) {
  OttFeed feed("tc_ott_u4", 16, pool_);
  for (int i = 0; i < 5; ++i) feed.on_packets(0, numbered(7, 0), 1);
  EXPECT_THROW(feed.read([](const OttChunk&) { throw std::runtime_error("packager failed"); }), std::runtime_error);
  // TearDown checks the pool.
}

ByteVec udp_frame(Ipv4 dst, std::span<const TsPacket> packets) {
  return test::ts_udp_frame(dst, 5000, packets, kPeerIp, kPeerMac);
}

// ffmpeg decodes `file` without a message; the first video frame's key_frame flag.
void expect_decodes_from_a_key_frame(const std::filesystem::path& file) {
  const auto dec = test::run("ffmpeg -nostdin -hide_banner -v error -i " + file.string() + " -f null - 2>&1");
  EXPECT_EQ(dec.exit_code, 0) << dec.out;
  EXPECT_EQ(dec.out, "") << file;
  const auto probe = test::run("ffprobe -v error -select_streams v:0 -show_entries frame=key_frame -of csv=p=0 " +
                               file.string() + " 2>&1");
  ASSERT_EQ(probe.exit_code, 0) << probe.out;
  EXPECT_EQ(probe.out.substr(0, 1), "1") << "the first decoded frame of " << file << " is not a key frame";
  EXPECT_GT(std::count(probe.out.begin(), probe.out.end(), '\n'), 25) << "less than a second of video in " << file;
}

TEST(OttFeedDataplane, CarriesTheMulticastTimelineAndMarksAnOperatorSwitch) {
  const auto dir = test::temp_dir("dp_ott");
  const auto tx_pcap = dir / "tx.pcap";
  ApplianceConfig cfg;
  cfg.ports.push_back(test::pcap_port("net_pcap_ott0", dir, tx_pcap, kOurIp));
  ChannelConfig ch;
  ch.id = "tv";
  ch.name = "TV";
  ch.service_id = 7;
  ch.hls = true;
  for (const Ipv4 g : {kGroupA, kGroupB}) {
    InputConfig in;
    in.name = g == kGroupA ? "main" : "backup";
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
  ChannelConfig plain = ch;  // a second channel without HLS: no feed
  plain.id = "plain";
  plain.hls = false;
  plain.service_id = 8;
  plain.inputs.resize(1);
  plain.inputs[0].address = ipv4(239, 1, 8, 3);
  plain.outputs[0].address = ipv4(239, 8, 8, 9);
  cfg.channels = {ch, plain};

  auto dp = std::make_unique<Dataplane>(cfg);
  ASSERT_NE(dp->ott_feed(0), nullptr);
  EXPECT_EQ(dp->ott_feed(1), nullptr);
  EXPECT_THROW((void)dp->ott_feed(2), std::out_of_range);
  OttFeed& feed = *dp->ott_feed(0);
  rte_mempool* pool = dp->mempool(0);

  struct Src {
    std::vector<TsPacket> packets;
    std::vector<std::uint64_t> times;
    std::size_t next = 0;
    Ipv4 group;
  };
  std::vector<Src> srcs(2);
  srcs[0].packets = test::read_packets(test::fixture("h264_aac.ts"));
  srcs[1].packets = test::read_packets(test::fixture("h264_aac_vbr.ts"));
  srcs[0].group = kGroupA;
  srcs[1].group = kGroupB;
  for (auto& s : srcs) s.times = mpegts::file_times(s.packets).ns;

  constexpr std::uint64_t kSwitchAt = 2500 * kMs;
  constexpr std::uint64_t kEnd = 5000 * kMs;
  std::vector<Chunk> chunks;
  bool switched = false;
  for (std::uint64_t now = kMs; now <= kEnd; now += kMs) {
    std::vector<rte_mbuf*> burst;
    for (Src& s : srcs) {
      while (s.next < s.packets.size() && s.times[s.next] < now) {
        const std::size_t n = std::min<std::size_t>(7, s.packets.size() - s.next);
        const ByteVec frame = udp_frame(s.group, std::span(s.packets.data() + s.next, n));
        rte_mbuf* m = test::mbuf_of(pool, frame);
        ASSERT_NE(m, nullptr);
        burst.push_back(m);
        s.next += n;
      }
    }
    if (!burst.empty()) dp->process_burst(0, burst.data(), static_cast<std::uint16_t>(burst.size()), now);
    if (!switched && now >= kSwitchAt) {
      ASSERT_TRUE(dp->request_switch(0, 1));
      switched = true;
    }
    dp->poll_once(now);
    if (now % (10 * kMs) == 0) {  // the packager drains every 10 ms
      auto got = drain(feed);
      chunks.insert(chunks.end(), got.begin(), got.end());
    }
  }
  auto rest = drain(feed);
  chunks.insert(chunks.end(), rest.begin(), rest.end());
  const OttFeedStats st = feed.stats();
  const ChannelStats cs = dp->pipeline(0).stats();
  dp.reset();  // the pcap is complete

  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(st.chunks, chunks.size());
  EXPECT_EQ(st.dropped_chunks, 0u);
  EXPECT_EQ(st.discontinuities, 1u);
  EXPECT_EQ(cs.switches, 1u);
  EXPECT_EQ(cs.active_input, 1u);

  // One mark, on the first chunk after the switch; the count steps there.
  std::size_t marks = 0;
  std::size_t mark_at = chunks.size();
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    if (chunks[i].discontinuity) {
      ++marks;
      mark_at = i;
    }
    EXPECT_EQ(chunks[i].seq, mark_at <= i ? 1u : 0u) << "chunk " << i;
    if (i > 0) {
      EXPECT_GE(chunks[i].ns, chunks[i - 1].ns);
    }
  }
  ASSERT_EQ(marks, 1u);
  EXPECT_GE(chunks[mark_at].ns, kSwitchAt);
  EXPECT_LT(chunks[mark_at].ns, kSwitchAt + 1100 * kMs) << "resumed at a key frame within a GOP (1 s)";

  std::vector<TsPacket> before;
  std::vector<TsPacket> after;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    std::vector<TsPacket>& side = i < mark_at ? before : after;
    side.insert(side.end(), chunks[i].packets.begin(), chunks[i].packets.end());
  }
  // The OTT side gets the multicast output's timeline: the datagrams sent are the same
  // packets, in the same order (the pacer may still hold the last few).
  const auto multicast = test::ts_to(test::read_pcap(tx_pcap), kGroupOut, 5000);
  std::vector<TsPacket> all = before;
  all.insert(all.end(), after.begin(), after.end());
  ASSERT_GT(multicast.size(), all.size() * 9 / 10);
  ASSERT_LE(multicast.size(), all.size());
  for (std::size_t i = 0; i < multicast.size(); ++i) ASSERT_EQ(multicast[i].bytes, all[i].bytes) << "packet " << i;

  // The first video packet after the mark starts a PES with a random access point.
  bool checked = false;
  for (const TsPacket& p : after) {
    if (p.pid() == 0 || p.pid() == mpegts::kNullPid || !p.has_payload()) continue;
    if (p.pid() != 0x100) continue;  // the fixtures' video PID (kept by the remux)
    EXPECT_TRUE(p.payload_unit_start());
    checked = true;
    break;
  }
  EXPECT_TRUE(checked);
  // Both sides decode; the part after the switch, given the channel's PSI first (what a
  // segment starts with), starts on a key frame.
  std::vector<TsPacket> psi;
  for (const TsPacket& p : before) {
    const bool wanted = psi.empty() ? p.pid() == 0 : psi.size() == 1 && p.pid() == 0x1000;
    if (wanted && p.payload_unit_start()) psi.push_back(p);
  }
  ASSERT_EQ(psi.size(), 2u) << "PAT and PMT before the switch";
  after.insert(after.begin(), psi.begin(), psi.end());
  // Each side ends inside a video frame (the switch leaves the old input mid-frame; the run
  // ends mid-frame): the decodable part ends at the last video PES start.
  auto trim_partial_frame = [](std::vector<TsPacket>& v) {
    for (std::size_t i = v.size(); i-- > 0;) {
      if (v[i].pid() == 0x100 && v[i].payload_unit_start()) {
        v.resize(i);
        return;
      }
    }
  };
  trim_partial_frame(before);
  trim_partial_frame(after);
  test::write_packets(dir / "before.ts", before);
  test::write_packets(dir / "after.ts", after);
  expect_decodes_from_a_key_frame(dir / "before.ts");
  expect_decodes_from_a_key_frame(dir / "after.ts");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace twincast::dataplane

namespace twincast::dataplane {
namespace {

// QoS: when the worker falls behind (RX bursts come back full poll after poll), the OTT feeds of the
// lowest-priority HLS channels are shed first, then the next tier; the multicast outputs
// of every channel go on. Calm brings the tiers back one by one, each restored feed
// marking a discontinuity for its packager.
TEST(OttFeedQos, OverloadShedsTheLowestPriorityOttFirstAndNeverMulticast) {
  constexpr std::size_t kBurstFrames = 32;  // the worker's RX burst (kBurst): a full one means a backlog
  ApplianceConfig cfg;
  PortConfig port;
  port.name = "p0";
  port.device = "net_null_qos0,no-rx=1";
  port.address = kOurIp;
  port.mbufs = 8191;
  cfg.ports.push_back(port);
  const std::uint8_t priorities[3] = {10, 200, 10};
  const Ipv4 groups[3] = {ipv4(239, 1, 7, 1), ipv4(239, 1, 7, 2), ipv4(239, 1, 7, 3)};
  for (int k = 0; k < 3; ++k) {
    ChannelConfig ch;
    ch.id = "ch" + std::to_string(k);
    ch.hls = k < 2;  // ch2: multicast only
    ch.priority = priorities[k];
    InputConfig in;
    in.port = "p0";
    in.address = groups[k];
    in.udp_port = 5000;
    ch.inputs.push_back(in);
    OutputConfig out;
    out.port = "p0";
    out.address = ipv4(239, 9, 7, static_cast<std::uint8_t>(k + 1));
    out.udp_port = 5000;
    out.pacing = PacingMode::kPassthrough;
    ch.outputs.push_back(out);
    cfg.channels.push_back(ch);
  }
  auto dp = std::make_unique<Dataplane>(cfg);
  EXPECT_EQ(dp->qos_stats().tiers, 2u);
  OttFeed& low = *dp->ott_feed(0);
  OttFeed& high = *dp->ott_feed(1);
  rte_mempool* pool = dp->mempool(0);
  const auto packets = test::read_packets(test::fixture("h264_aac.ts"));
  std::size_t at = 0;
  int low_marks = 0;
  int high_marks = 0;
  std::size_t frame_no = 0;  // round robin over the three channels
  // `frames` datagrams spread over the three channels at `now`, then one poll.
  auto turn = [&](std::size_t frames, std::uint64_t now) {
    std::vector<rte_mbuf*> burst;
    for (std::size_t i = 0; i < frames; ++i) {
      if (at + 7 > packets.size()) at = 0;
      const ByteVec f = udp_frame(groups[frame_no++ % 3], std::span(packets.data() + at, 7));
      at += 7;
      rte_mbuf* m = test::mbuf_of(pool, f);
      ASSERT_NE(m, nullptr);
      burst.push_back(m);
    }
    dp->process_burst(0, burst.data(), static_cast<std::uint16_t>(burst.size()), now);  // 0: drained
    dp->poll_once(now);
    // The packagers keep up; count the discontinuity marks they see.
    (void)low.read([&](const OttChunk& c) { low_marks += c.discontinuity; });
    (void)high.read([&](const OttChunk& c) { high_marks += c.discontinuity; });
  };
  std::uint64_t now = kMs;
  for (; now < 101 * kMs; now += kMs) turn(3, now);  // calm: nothing shed (windows of 100 ms)
  EXPECT_EQ(dp->qos_stats().shed_tiers, 0u);
  EXPECT_FALSE(low.stats().shed);
  // A bursty sender the worker keeps up with (three full bursts at once every 20 ms, as an
  // encoder writing a key frame or ffmpeg -re does, drained in between): no overload. Most
  // non-empty bursts are full here, which the first QoS rule took for an overload.
  for (const std::uint64_t until = now + 400 * kMs; now < until; now += kMs) turn(now % (20 * kMs) == 0 ? 3 * kBurstFrames : 0, now);
  EXPECT_EQ(dp->qos_stats().shed_tiers, 0u) << "a bursty sender is not an overload";
  EXPECT_EQ(dp->qos_stats().overload_windows, 0u);
  for (const std::uint64_t until = now + 101 * kMs; now < until; now += kMs) turn(kBurstFrames, now);  // full bursts: a window of overload
  EXPECT_EQ(dp->qos_stats().shed_tiers, 1u);
  EXPECT_TRUE(low.stats().shed) << "the lowest priority's OTT goes first";
  EXPECT_FALSE(high.stats().shed);
  const std::uint64_t high_before = high.stats().packets;
  for (const std::uint64_t until = now + 100 * kMs; now < until; now += kMs) turn(kBurstFrames, now);  // still behind: the next tier
  EXPECT_EQ(dp->qos_stats().shed_tiers, 2u);
  EXPECT_TRUE(high.stats().shed);
  EXPECT_GT(high.stats().packets, high_before);
  EXPECT_GT(low.stats().shed_packets, 0u);
  // Multicast never stopped, for any channel, and nothing was dropped on the way out.
  for (std::size_t c = 0; c < 3; ++c) {
    const OutputStats o = dp->output_stats(c, 0);
    EXPECT_GT(o.datagrams, 80u) << "channel " << c;
    EXPECT_EQ(o.dropped_datagrams, 0u) << "channel " << c;
  }
  // Calm again: 5 s later the higher tier comes back, 5 s after that the lower one, each
  // restored feed marking its first chunk as a discontinuity.
  const std::uint64_t calm_from = now;
  for (; now < calm_from + 5100 * kMs; now += kMs) turn(1, now);
  EXPECT_EQ(dp->qos_stats().shed_tiers, 1u);
  EXPECT_FALSE(high.stats().shed);
  EXPECT_TRUE(low.stats().shed);
  EXPECT_EQ(high_marks, 1) << "the restored feed starts a new timeline";
  EXPECT_EQ(low_marks, 0);
  for (; now < calm_from + 10'200 * kMs; now += kMs) turn(1, now);
  EXPECT_EQ(dp->qos_stats().shed_tiers, 0u);
  EXPECT_FALSE(low.stats().shed);
  EXPECT_EQ(low_marks, 1);
  EXPECT_GE(dp->qos_stats().overload_windows, 2u);
  dp.reset();
}

// What overload shed stays shed by priority across a reload, not by rank: the lowest tier
// (priority 10) is shed when a reload removes its channel; the channel of priority 200,
// served until then, stays served (it was the highest tier, and now is the lowest: shed by
// its rank, its HLS stopped because of a reload that took load away).
TEST(OttFeedQos, AReloadThatRemovesTheShedTierLeavesTheOthersServed) {
  constexpr std::size_t kBurstFrames = 32;
  ApplianceConfig cfg;
  PortConfig port;
  port.name = "p0";
  port.device = "net_null_qos1,no-rx=1";
  port.address = kOurIp;
  port.mbufs = 8191;
  cfg.ports.push_back(port);
  const std::uint8_t priorities[2] = {10, 200};
  const Ipv4 groups[2] = {ipv4(239, 1, 8, 1), ipv4(239, 1, 8, 2)};
  for (int k = 0; k < 2; ++k) {
    ChannelConfig ch;
    ch.id = "ch" + std::to_string(k);
    ch.hls = true;
    ch.priority = priorities[k];
    InputConfig in;
    in.port = "p0";
    in.address = groups[k];
    in.udp_port = 5000;
    ch.inputs.push_back(in);
    cfg.channels.push_back(ch);
  }
  auto dp = std::make_unique<Dataplane>(cfg);
  rte_mempool* pool = dp->mempool(0);
  const auto packets = test::read_packets(test::fixture("h264_aac.ts"));
  std::size_t at = 0;
  std::size_t frame_no = 0;
  auto turn = [&](std::size_t frames, std::uint64_t now) {
    std::vector<rte_mbuf*> burst;
    const std::size_t n_channels = dp->config().channels.size();
    for (std::size_t i = 0; i < frames; ++i) {
      if (at + 7 > packets.size()) at = 0;
      const Ipv4 group = n_channels == 2 ? groups[frame_no++ % 2] : groups[1];
      rte_mbuf* m = test::mbuf_of(pool, udp_frame(group, std::span(packets.data() + at, 7)));
      at += 7;
      ASSERT_NE(m, nullptr);
      burst.push_back(m);
    }
    dp->process_burst(0, burst.data(), static_cast<std::uint16_t>(burst.size()), now);
    dp->poll_once(now);
    for (std::size_t c = 0; c < n_channels; ++c) (void)dp->ott_feed(c)->read([](const OttChunk&) {});
  };
  std::uint64_t now = kMs;
  for (; now < 101 * kMs; now += kMs) turn(3, now);
  for (const std::uint64_t until = now + 101 * kMs; now < until; now += kMs) turn(kBurstFrames, now);
  ASSERT_EQ(dp->qos_stats().shed_tiers, 1u);
  ASSERT_TRUE(dp->ott_feed(0)->stats().shed);
  ASSERT_FALSE(dp->ott_feed(1)->stats().shed);
  ApplianceConfig without_low = cfg;
  without_low.channels.erase(without_low.channels.begin());
  (void)dp->apply(without_low);
  for (const std::uint64_t until = now + 300 * kMs; now < until; now += kMs) turn(1, now);  // calm, < 5 s
  EXPECT_FALSE(dp->ott_feed(0)->stats().shed) << "priority 200 shed: the reload removed the tier that was";
  EXPECT_EQ(dp->qos_stats().tiers, 1u);
  EXPECT_EQ(dp->qos_stats().shed_tiers, 0u);
  dp.reset();
}

}  // namespace
}  // namespace twincast::dataplane
