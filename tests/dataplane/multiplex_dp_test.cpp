// A multiplex through the whole data plane without root: EAL with --no-huge, a net_pcap
// port whose TX goes to a pcap file, three channels receiving real ffmpeg streams as UDP
// multicast frames (Dataplane::process_burst), their SPTS tapped into one CBR multiplex
// output; the pcap's datagrams to the multiplex group are checked for three programs,
// every member's media, continuity, the mempool and the status counters.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "dataplane/eal_harness.hpp"
#include "dataplane/pcap_port.hpp"
#include "dataplane/ts_frames.hpp"
#include "tests_common.hpp"
#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/net.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/psi_decoder.hpp"

namespace twincast::dataplane {
namespace {

using mpegts::TsPacket;
using net::ipv4;
using ByteVec = std::vector<std::uint8_t>;
using test::read_pcap;

constexpr Ipv4 kOurIp = ipv4(10, 9, 1, 2);
constexpr Ipv4 kPeerIp = ipv4(10, 9, 1, 1);
constexpr Ipv4 kMuxGroup = ipv4(239, 3, 3, 3);
constexpr Ipv4 kOwnGroup = ipv4(239, 3, 3, 4);
constexpr Mac kOurMac = {0x02, 0x74, 0x63, 0x00, 0x01, 0x02};
constexpr Mac kPeerMac = {0x02, 0x74, 0x63, 0x00, 0x01, 0x01};
constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kCbr = 6'000'000;

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new test::EalEnvironment("tcdp_mux_", "dataplane_multiplex_dp_test"));

ByteVec udp_frame(Ipv4 dst, std::uint16_t dport, std::span<const TsPacket> packets) {
  return test::ts_udp_frame(dst, dport, packets, kPeerIp, kPeerMac);
}
using test::ts_to;

// The configuration both cases start from: the pcap port on the vdev `name` (TX to
// `tx_pcap`), one channel per source k ("ch<k>", "Channel <k>", service 301 + k) receiving
// 239.1.9.<k+1>:5000, and the multiplex "m" of them all with one CBR output to kMuxGroup:6000.
ApplianceConfig mux_config(const std::string& name, const std::filesystem::path& dir, const std::filesystem::path& tx_pcap,
                           std::size_t n_channels) {
  ApplianceConfig cfg;
  cfg.ports.push_back(test::pcap_port(name, dir, tx_pcap, kOurIp));
  cfg.ports.back().mac = kOurMac;
  MultiplexConfig mux;
  mux.id = "m";
  for (std::size_t k = 0; k < n_channels; ++k) {
    ChannelConfig ch;
    ch.id = "ch" + std::to_string(k);
    ch.name = "Channel " + std::to_string(k);
    ch.service_id = static_cast<std::uint16_t>(301 + k);
    InputConfig in;
    in.port = "p0";
    in.address = ipv4(239, 1, 9, static_cast<std::uint8_t>(k + 1));
    in.udp_port = 5000;
    ch.inputs.push_back(in);
    cfg.channels.push_back(ch);
    mux.channels.push_back(ch.id);
  }
  OutputConfig o;
  o.port = "p0";
  o.address = kMuxGroup;
  o.udp_port = 6000;
  o.pacing = PacingMode::kCbr;
  o.cbr_bps = kCbr;
  mux.outputs.push_back(o);
  cfg.multiplexes.push_back(mux);
  return cfg;
}

TEST(MultiplexDataplane, ChannelsFromTheWireLeaveAsOneMpts) {
  const auto dir = test::temp_dir("dp_mux");
  const auto tx_pcap = dir / "tx.pcap";
  const std::vector<std::string> files = {"h264_aac.ts", "hevc_aac.ts", "mpeg2_mp2.ts"};
  ApplianceConfig cfg = mux_config("net_pcap_mux0", dir, tx_pcap, files.size());
  for (std::size_t k = 0; k < files.size(); ++k) cfg.channels[k].lcn = static_cast<std::uint16_t>(21 + k);
  OutputConfig own_spts;  // the first also keeps an SPTS output of its own
  own_spts.port = "p0";
  own_spts.address = kOwnGroup;
  own_spts.udp_port = 5000;
  cfg.channels[0].outputs.push_back(own_spts);
  cfg.multiplexes[0].transport_stream_id = 9;

  auto dp = std::make_unique<Dataplane>(cfg);
  ASSERT_EQ(dp->multiplex_count(), 1u);
  rte_mempool* pool = dp->mempool(0);
  const unsigned base_in_use = rte_mempool_in_use_count(pool);

  struct Src {
    std::vector<TsPacket> packets;
    std::vector<std::uint64_t> times;
    std::size_t next = 0;
  };
  std::vector<Src> srcs;
  for (const auto& f : files) {
    Src s;
    s.packets = test::read_packets(test::fixture(f));
    s.times = mpegts::file_times(s.packets).ns;
    srcs.push_back(std::move(s));
  }
  constexpr std::uint64_t kEnd = 3000 * kMs;  // the first 3 s of each file
  for (std::uint64_t now = kMs; now <= kEnd + 300 * kMs; now += kMs) {
    std::vector<rte_mbuf*> burst;
    for (std::size_t k = 0; k < srcs.size(); ++k) {
      Src& s = srcs[k];
      while (s.next < s.packets.size() && s.times[s.next] < std::min(now, kEnd)) {
        const std::size_t n = std::min<std::size_t>(7, s.packets.size() - s.next);
        const ByteVec frame = udp_frame(cfg.channels[k].inputs[0].address, 5000, std::span(s.packets.data() + s.next, n));
        rte_mbuf* m = test::mbuf_of(pool, frame);
        ASSERT_NE(m, nullptr);
        burst.push_back(m);
        s.next += n;
      }
    }
    if (!burst.empty()) dp->process_burst(0, burst.data(), static_cast<std::uint16_t>(burst.size()), now);
    dp->poll_once(now);
    ASSERT_EQ(rte_mempool_in_use_count(pool), base_in_use) << "an mbuf leaked at " << now;
  }
  const MultiplexStats st = dp->multiplex_stats(0);
  EXPECT_GT(st.packets_in, 0u);
  EXPECT_EQ(st.dropped_queue_full, 0u);
  const PortStats ps = dp->port_stats(0);
  EXPECT_EQ(ps.drop(DropReason::kUnknownFlow), 0u);
  EXPECT_EQ(ps.drop(DropReason::kTxNoMbuf), 0u);
  dp.reset();  // closes the port: the pcap is complete

  const auto frames = read_pcap(tx_pcap);
  std::size_t n_dgrams = 0;
  const auto out = ts_to(frames, kMuxGroup, 6000, &n_dgrams);
  EXPECT_EQ(n_dgrams, st.datagrams_out);
  mpegts::PsiDecoder psi;
  for (const auto& p : out) psi.push(p);
  const auto& model = psi.model();
  EXPECT_EQ(model.transport_stream_id, 9);
  ASSERT_EQ(model.services.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    const mpegts::Service* s = model.find_service(static_cast<std::uint16_t>(301 + k));
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->name, "Channel " + std::to_string(k));
    EXPECT_EQ(s->lcn, 21 + k);
    ASSERT_EQ(s->streams.size(), 2u);
    std::size_t media = 0;
    for (const auto& p : out) media += p.pid() == s->streams[0].pid || p.pid() == s->streams[1].pid;
    std::size_t media_in = 0;  // the sources' ES are 0x100 and 0x101
    for (std::size_t i = 0; i < srcs[k].next; ++i) media_in += srcs[k].packets[i].pid() == 0x100 || srcs[k].packets[i].pid() == 0x101;
    EXPECT_EQ(media, media_in) << files[k];
  }
  std::map<std::uint16_t, int> last;
  std::size_t cc_errors = 0;
  for (const auto& p : out) {
    if (p.pid() == mpegts::kNullPid || !p.has_payload()) continue;
    if (auto it = last.find(p.pid()); it != last.end() && p.cc() != ((it->second + 1) & 0xF)) ++cc_errors;
    last[p.pid()] = p.cc();
  }
  EXPECT_EQ(cc_errors, 0u);
  // The first channel's own SPTS output still goes out, with its one service.
  const auto own = ts_to(frames, kOwnGroup, 5000, &n_dgrams);
  mpegts::PsiDecoder own_psi;
  for (const auto& p : own) own_psi.push(p);
  ASSERT_EQ(own_psi.model().services.size(), 1u);
  EXPECT_EQ(own_psi.model().services[0].service_id, 301);
  std::filesystem::remove_all(dir);
}

// Continuity counted strictly: every payload packet +1 on its PID (discontinuity_indicator
// excuses nothing).
std::size_t strict_cc_errors(const std::vector<TsPacket>& out) {
  std::map<std::uint16_t, int> last;
  std::size_t errors = 0;
  for (const auto& p : out) {
    if (p.pid() == mpegts::kNullPid || !p.has_payload()) continue;
    if (auto it = last.find(p.pid()); it != last.end() && p.cc() != ((it->second + 1) & 0xF)) {
      ++errors;
      ADD_FAILURE() << "PID " << p.pid() << ": CC " << p.cc() << " after " << it->second;
    }
    last[p.pid()] = p.cc();
  }
  return errors;
}

// The TS packets of the RTP datagrams sent to (group, port), and how many RTP sequence
// numbers were skipped or repeated between consecutive datagrams.
std::vector<TsPacket> rtp_ts_to(const std::vector<ByteVec>& frames, Ipv4 group, std::uint16_t port,
                                std::size_t* seq_errors) {
  std::vector<TsPacket> out;
  std::optional<std::uint16_t> last;
  *seq_errors = 0;
  for (const auto& f : frames) {
    const auto e = net::parse_ethernet(f);
    if (!e || e->ether_type != net::kEtherTypeIpv4) continue;
    net::Bytes l4;
    const auto ip = net::parse_ipv4(net::Bytes(f).subspan(e->header_size), &l4);
    if (!ip || ip->protocol != net::kProtoUdp || ip->dst != group) continue;
    net::Bytes udp_payload;
    const auto u = net::parse_udp(l4, &udp_payload);
    if (!u || u->dst_port != port) continue;
    net::Bytes payload;
    const auto rtp = net::parse_rtp(udp_payload, &payload);
    if (!rtp || payload.size() % mpegts::kPacketSize != 0) continue;
    if (last && rtp->sequence != static_cast<std::uint16_t>(*last + 1)) ++*seq_errors;
    last = rtp->sequence;
    for (std::size_t at = 0; at < payload.size(); at += mpegts::kPacketSize) {
      TsPacket p;
      std::memcpy(p.bytes.data(), payload.data() + at, mpegts::kPacketSize);
      out.push_back(p);
    }
  }
  return out;
}

// Feeds each of `files` to the input of the channel of the same index, in real time
// (datagrams of 7 packets, polled every ms) from 1 ms to 4 s, then polls 300 ms more;
// reload(k) runs at at_ms[k].
void drive_reloads(Dataplane& dp, const ApplianceConfig& cfg, const std::vector<std::string>& files,
                   const std::vector<std::uint64_t>& at_ms, const std::function<void(std::size_t)>& reload) {
  rte_mempool* pool = dp.mempool(0);
  std::vector<std::vector<TsPacket>> packets;
  std::vector<std::vector<std::uint64_t>> times;
  std::vector<std::size_t> next(files.size(), 0);
  for (const auto& f : files) {
    packets.push_back(test::read_packets(test::fixture(f)));
    times.push_back(mpegts::file_times(packets.back()).ns);
  }
  constexpr std::uint64_t kEnd = 4000 * kMs;
  std::size_t reloads = 0;
  for (std::uint64_t now = kMs; now <= kEnd + 300 * kMs; now += kMs) {
    if (reloads < at_ms.size() && now >= at_ms[reloads] * kMs) reload(reloads++);
    std::vector<rte_mbuf*> burst;
    for (std::size_t k = 0; k < files.size(); ++k) {
      while (next[k] < packets[k].size() && times[k][next[k]] < std::min(now, kEnd)) {
        const std::size_t n = std::min<std::size_t>(7, packets[k].size() - next[k]);
        const ByteVec frame = udp_frame(cfg.channels[k].inputs[0].address, 5000, std::span(packets[k].data() + next[k], n));
        rte_mbuf* m = test::mbuf_of(pool, frame);
        ASSERT_NE(m, nullptr);
        burst.push_back(m);
        next[k] += n;
      }
    }
    if (!burst.empty()) dp.process_burst(0, burst.data(), static_cast<std::uint16_t>(burst.size()), now);
    dp.poll_once(now);
  }
}

// As drive_reloads(), with `reload` run once at 1.5 s.
template <class Reload>
void drive(Dataplane& dp, const ApplianceConfig& cfg, const std::vector<std::string>& files, Reload&& reload) {
  drive_reloads(dp, cfg, files, {1500}, [&](std::size_t) { reload(); });
}

// A reload renumbers and renames a member (a new service_id restarts it): the member and the
// multiplex are rebuilt, and the receivers of both the MPTS and the member's own SPTS go on
// without a CC error; the new number and name are there.
TEST(MultiplexDataplane, AReloadThatRebuildsTheMultiplexKeepsItsReceiversContinuity) {
  const auto dir = test::temp_dir("dp_mux_reload");
  const auto tx_pcap = dir / "tx.pcap";
  const std::vector<std::string> files = {"h264_aac.ts", "hevc_aac.ts"};
  ApplianceConfig cfg = mux_config("net_pcap_muxr0", dir, tx_pcap, files.size());
  for (std::size_t k = 0; k < files.size(); ++k) {  // each keeps an RTP output of its own
    OutputConfig own;
    own.port = "p0";
    own.address = ipv4(239, 3, 4, static_cast<std::uint8_t>(k + 1));
    own.udp_port = 5000;
    own.kind = OutputKind::kRtp;
    cfg.channels[k].outputs.push_back(own);
  }

  auto dp = std::make_unique<Dataplane>(cfg);
  drive(*dp, cfg, files, [&] {
    ApplianceConfig renamed = cfg;
    renamed.channels[1].name = "Renamed";
    renamed.channels[1].service_id = 312;
    const ConfigDiff diff = dp->apply(renamed);
    EXPECT_EQ(diff.channels_changed.size(), 2u);  // ch1 itself, ch0 with the multiplex
    EXPECT_EQ(diff.multiplexes_changed, std::vector<std::string>{"m"});
  });
  dp.reset();
  const auto frames = read_pcap(tx_pcap);
  std::size_t n_dgrams = 0;
  const auto out = ts_to(frames, kMuxGroup, 6000, &n_dgrams);
  ASSERT_GT(out.size(), 2000u);
  EXPECT_EQ(strict_cc_errors(out), 0u);
  mpegts::PsiDecoder psi;
  for (const auto& p : out) psi.push(p);
  const mpegts::Service* renamed = psi.model().find_service(312);
  ASSERT_NE(renamed, nullptr);
  EXPECT_EQ(renamed->name, "Renamed");
  for (std::size_t k = 0; k < files.size(); ++k) {
    std::size_t seq_errors = 0;
    const auto own = rtp_ts_to(frames, ipv4(239, 3, 4, static_cast<std::uint8_t>(k + 1)), 5000, &seq_errors);
    ASSERT_GT(own.size(), 1000u) << files[k];
    EXPECT_EQ(strict_cc_errors(own), 0u) << files[k];
    EXPECT_EQ(seq_errors, 0u) << files[k] << ": RTP sequence numbers must go on across the reload";
  }
  std::filesystem::remove_all(dir);
}

// A reload moves a member's own output to another group (and TTL) and renames it (name and
// LCN): the member is updated in place, not restarted, and the multiplex is not rebuilt.
// The MPTS goes on without a CC error and its counters go on, its SDT and NIT give the
// member's new name and LCN, as the member's own SPTS does; the SPTS moves to the new
// group; each multiplex output's pacing lateness counts its own datagrams.
TEST(MultiplexDataplane, AReloadThatMovesAMembersOutputLeavesTheMultiplexAlone) {
  const auto dir = test::temp_dir("dp_mux_readdress");
  const auto tx_pcap = dir / "tx.pcap";
  const std::vector<std::string> files = {"h264_aac.ts", "hevc_aac.ts"};
  ApplianceConfig cfg = mux_config("net_pcap_muxa0", dir, tx_pcap, files.size());
  OutputConfig own;
  own.port = "p0";
  own.address = ipv4(239, 3, 5, 1);
  own.udp_port = 5000;
  own.kind = OutputKind::kRtp;
  cfg.channels[1].outputs.push_back(own);
  OutputConfig second = cfg.multiplexes[0].outputs[0];  // the MPTS also PCR-paced, 4 per datagram
  second.address = ipv4(239, 3, 6, 1);
  second.pacing = PacingMode::kPcr;
  second.packets_per_datagram = 4;
  cfg.multiplexes[0].outputs.push_back(second);
  const Ipv4 moved_to = ipv4(239, 3, 5, 2);

  auto dp = std::make_unique<Dataplane>(cfg);
  MultiplexStats before{};
  drive(*dp, cfg, files, [&] {
    before = dp->multiplex_stats(0);
    ASSERT_GT(before.packets_out, 0u);
    ApplianceConfig moved = cfg;
    moved.channels[1].outputs[0].address = moved_to;
    moved.channels[1].outputs[0].ttl = 9;
    moved.channels[1].name = "Moved Member";
    moved.channels[1].lcn = 9;
    const ConfigDiff diff = dp->apply(moved);
    EXPECT_EQ(diff.channels_updated, std::vector<std::string>{cfg.channels[1].id});
    EXPECT_TRUE(diff.channels_changed.empty());
    EXPECT_TRUE(diff.multiplexes_changed.empty());
  });
  const MultiplexStats after = dp->multiplex_stats(0);
  std::vector<std::uint64_t> counted(2, 0);
  for (std::size_t o = 0; o < 2; ++o) {
    for (const std::uint64_t b : dp->multiplex_pacing_lateness(0, o).buckets) counted[o] += b;
    EXPECT_EQ(counted[o], dp->multiplex_output_stats(0, o).datagrams) << "output " << o;
  }
  EXPECT_NE(counted[0], counted[1]) << "two schedules, the same lateness: not per output";
  dp.reset();
  const auto frames = read_pcap(tx_pcap);
  std::size_t n_dgrams = 0;
  const auto out = ts_to(frames, kMuxGroup, 6000, &n_dgrams);
  ASSERT_GT(out.size(), 2000u);
  EXPECT_EQ(strict_cc_errors(out), 0u);
  // Its counter counted every media and PSI packet the MPTS carried over the whole run: a
  // rebuilt multiplex would have started again from 0 at the reload.
  const auto media = static_cast<std::uint64_t>(
      std::count_if(out.begin(), out.end(), [](const TsPacket& p) { return p.pid() != mpegts::kNullPid; }));
  EXPECT_GT(before.packets_out, 0u);
  EXPECT_EQ(after.packets_out, media);
  std::size_t seq_errors = 0;
  const auto old_group = rtp_ts_to(frames, ipv4(239, 3, 5, 1), 5000, &seq_errors);
  const auto new_group = rtp_ts_to(frames, moved_to, 5000, &seq_errors);
  EXPECT_GT(old_group.size(), 200u);
  EXPECT_GT(new_group.size(), 200u);
  std::vector<TsPacket> joined = old_group;
  joined.insert(joined.end(), new_group.begin(), new_group.end());
  EXPECT_EQ(strict_cc_errors(joined), 0u) << "the member's SPTS broke where it moved";
  // The names: before the reload in the old group's SPTS, after it in the new one's and in
  // the MPTS (whose tables the reload renamed without rebuilding it).
  const auto described = [](const std::vector<TsPacket>& pkts, std::uint16_t service_id) {
    mpegts::PsiDecoder psi;
    for (const auto& p : pkts) psi.push(p);
    const mpegts::Service* s = psi.model().find_service(service_id);
    return s == nullptr ? std::string("none") : s->name + "/" + std::to_string(s->lcn);
  };
  EXPECT_EQ(described(old_group, 302), "Channel 1/0");
  EXPECT_EQ(described(new_group, 302), "Moved Member/9");
  EXPECT_EQ(described(out, 302), "Moved Member/9");
  EXPECT_EQ(described(out, 301), "Channel 0/0");
  std::filesystem::remove_all(dir);
}

// A channel in two multiplexes, m {ch0, ch1} and n {ch1, ch2}: a reload changes n (and
// renames ch1), so n's members restart and ch1 gets a new pipeline. m is rebuilt on it too,
// and keeps carrying ch1's media under its new name (a kept m would have gone on tapping
// the old, freed pipeline: its tables without media).
TEST(MultiplexDataplane, AMemberSharedWithARebuiltMultiplexStillFeedsTheOther) {
  const auto dir = test::temp_dir("dp_mux_shared");
  const auto tx_pcap = dir / "tx.pcap";
  const std::vector<std::string> files = {"h264_aac.ts", "hevc_aac.ts", "mpeg2_mp2.ts"};
  ApplianceConfig cfg = mux_config("net_pcap_muxs0", dir, tx_pcap, files.size());
  cfg.multiplexes[0].channels = {cfg.channels[0].id, cfg.channels[1].id};
  MultiplexConfig n = cfg.multiplexes[0];
  n.id = "n";
  n.channels = {cfg.channels[1].id, cfg.channels[2].id};
  n.outputs[0].address = ipv4(239, 3, 3, 9);
  cfg.multiplexes.push_back(n);
  auto dp = std::make_unique<Dataplane>(cfg);
  MultiplexStats m_before{};
  drive(*dp, cfg, files, [&] {
    m_before = dp->multiplex_stats(0);
    ApplianceConfig next = cfg;
    next.multiplexes[1].network_name = "other";
    next.channels[1].name = "Renamed";
    const ConfigDiff diff = dp->apply(next);
    EXPECT_EQ(diff.multiplexes_changed, (std::vector<std::string>{cfg.multiplexes[0].id, "n"}));
  });
  dp.reset();
  const auto frames = read_pcap(tx_pcap);
  std::size_t n_dgrams = 0;
  const auto out = ts_to(frames, kMuxGroup, 6000, &n_dgrams);
  EXPECT_EQ(strict_cc_errors(out), 0u);
  mpegts::PsiDecoder psi;
  for (const auto& p : out) psi.push(p);
  const mpegts::Service* s = psi.model().find_service(302);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->name, "Renamed");
  ASSERT_EQ(s->streams.size(), 2u);
  // ch1's media in m's MPTS before the reload (1.5 s) and after it (2.5 s).
  std::size_t media_before = 0;
  std::size_t media_after = 0;
  std::uint64_t sent = 0;
  for (const auto& p : out) {
    if (p.pid() != mpegts::kNullPid) ++sent;
    const bool media = p.pid() == s->streams[0].pid || p.pid() == s->streams[1].pid;
    (sent <= m_before.packets_out ? media_before : media_after) += media ? 1 : 0;
  }
  EXPECT_GT(media_before, 100u);
  EXPECT_GT(media_after, media_before) << "ch1 is gone from m after the reload";
  std::filesystem::remove_all(dir);
}

// A channel added in front of the members (their places among the channels move) while a
// member is renamed, in one reload: the kept multiplex renames that member's service and no
// other (members are known by their place in the multiplex's list).
TEST(MultiplexDataplane, ARenamedMemberWhosePlaceAmongTheChannelsMoved) {
  const auto dir = test::temp_dir("dp_mux_place");
  const auto tx_pcap = dir / "tx.pcap";
  const std::vector<std::string> files = {"h264_aac.ts", "hevc_aac.ts"};
  ApplianceConfig cfg = mux_config("net_pcap_muxi0", dir, tx_pcap, files.size());
  auto dp = std::make_unique<Dataplane>(cfg);
  drive(*dp, cfg, files, [&] {
    ApplianceConfig next = cfg;
    ChannelConfig x = cfg.channels[0];
    x.id = "x";
    x.name = "X";
    x.service_id = 399;
    x.inputs[0].address = ipv4(239, 1, 9, 77);
    next.channels.insert(next.channels.begin(), x);
    next.channels[2].name = "Renamed";
    next.channels[2].lcn = 12;
    const ConfigDiff diff = dp->apply(next);
    EXPECT_TRUE(diff.multiplexes_changed.empty());
    EXPECT_EQ(diff.channels_updated, std::vector<std::string>{cfg.channels[1].id});
  });
  dp.reset();
  const auto frames = read_pcap(tx_pcap);
  std::size_t n_dgrams = 0;
  const auto out = ts_to(frames, kMuxGroup, 6000, &n_dgrams);
  EXPECT_EQ(strict_cc_errors(out), 0u);
  mpegts::PsiDecoder psi;
  for (const auto& p : out) psi.push(p);
  ASSERT_NE(psi.model().find_service(302), nullptr);
  ASSERT_NE(psi.model().find_service(301), nullptr);
  EXPECT_EQ(psi.model().find_service(302)->name, "Renamed");
  EXPECT_EQ(psi.model().find_service(302)->lcn, 12);
  EXPECT_EQ(psi.model().find_service(301)->name, "Channel 0");
  std::filesystem::remove_all(dir);
}

// A restarted channel's outputs go on from the schedules that fed them, known by their
// destinations, which updates in place may have moved since the pipeline was built. A
// channel with a PCR-paced output to A and a CBR one to B: reload 1 moves the first to Q,
// reload 2 the second (TTL 9) to A, both in place; reload 3 restarts the channel. A's
// receivers (the CBR schedule since reload 2) must go on without a CC break: the new CBR
// schedule takes over the old CBR one, not the PCR-paced one that sent to A when the
// pipeline was built.
TEST(MultiplexDataplane, ARestartAfterOutputsMovedInPlaceContinuesEachOutputFromItsOwnSchedule) {
  const auto dir = test::temp_dir("dp_mux_moved_restart");
  const auto tx_pcap = dir / "tx.pcap";
  const std::vector<std::string> files = {"h264_aac.ts"};
  ApplianceConfig cfg = mux_config("net_pcap_muxm0", dir, tx_pcap, files.size());
  cfg.multiplexes.clear();
  const Ipv4 a = ipv4(239, 3, 7, 1);
  const Ipv4 q = ipv4(239, 3, 7, 3);
  OutputConfig paced;
  paced.port = "p0";
  paced.address = a;
  paced.udp_port = 5000;
  OutputConfig cbr = paced;
  cbr.address = ipv4(239, 3, 7, 2);
  cbr.pacing = PacingMode::kCbr;
  cbr.cbr_bps = kCbr;
  cfg.channels[0].outputs = {paced, cbr};

  auto dp = std::make_unique<Dataplane>(cfg);
  ApplianceConfig next = cfg;
  drive_reloads(*dp, cfg, files, {1000, 2000, 3000}, [&](std::size_t k) {
    if (k == 0) next.channels[0].outputs[0].address = q;
    if (k == 1) {
      next.channels[0].outputs[1].address = a;
      next.channels[0].outputs[1].ttl = 9;
    }
    if (k == 2) next.channels[0].service_id = 333;
    const ConfigDiff diff = dp->apply(next);
    EXPECT_EQ(diff.channels_updated.size(), k < 2 ? 1u : 0u) << "reload " << k + 1;
    EXPECT_EQ(diff.channels_changed.size(), k < 2 ? 0u : 1u) << "reload " << k + 1;
  });
  dp.reset();
  // What A's receivers got from the CBR schedule: A's datagrams with TTL 9.
  std::vector<TsPacket> got;
  for (const ByteVec& f : read_pcap(tx_pcap)) {
    const auto e = net::parse_ethernet(f);
    if (!e || e->ether_type != net::kEtherTypeIpv4) continue;
    net::Bytes l4;
    const auto ip = net::parse_ipv4(net::Bytes(f).subspan(e->header_size), &l4);
    if (!ip || ip->protocol != net::kProtoUdp || ip->dst != a || ip->ttl != 9) continue;
    net::Bytes payload;
    if (!net::parse_udp(l4, &payload)) continue;
    for (std::size_t at = 0; at + mpegts::kPacketSize <= payload.size(); at += mpegts::kPacketSize) {
      TsPacket p;
      std::memcpy(p.bytes.data(), payload.data() + at, mpegts::kPacketSize);
      got.push_back(p);
    }
  }
  ASSERT_GT(got.size(), 2000u);
  // As a receiver judges it: the next CC, a duplicate of the packet before, or flagged.
  std::map<std::uint16_t, TsPacket> last;
  std::size_t breaks = 0;
  for (const TsPacket& p : got) {
    if (p.pid() == mpegts::kNullPid || !p.has_payload()) continue;
    if (const auto it = last.find(p.pid()); it != last.end() && !p.discontinuity()) {
      const bool next_cc = p.cc() == ((it->second.cc() + 1) & 0xF);
      const bool duplicate = p.cc() == it->second.cc() && p.bytes == it->second.bytes;
      if (!next_cc && !duplicate && breaks++ < 5)
        ADD_FAILURE() << "PID " << p.pid() << ": CC " << int{p.cc()} << " after " << int{it->second.cc()};
    }
    last[p.pid()] = p;
  }
  EXPECT_EQ(breaks, 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace twincast::dataplane
