// mbuf leaks over many input stop/start cycles: the real Channel pipelines (passthrough,
// PCR and CBR pacing, UDP and RTP in and out, failover and revert) on net_null / net_ring
// ports, EAL in-process with --no-huge. After every cycle, and at the end, every port's
// mempool in-use count must be back where it started.
//
// VirtualTime: 1000 cycles through Dataplane::process_burst / poll_once with a clock the
// test advances: bursts of 1, 3, 4, 32 and 33 frames (plus frames that must be dropped),
// then a pause longer than the failover timeout, so inputs go down, the selector fails
// over and reverts, partial datagrams are flushed and CBR fills with null packets.
// RealWorker: the worker lcore running (start/stop several times), frames handed to it
// through the net_ring port's ring, pauses longer than the failover timeout in real time.
#include "twincast/dataplane/dataplane.hpp"

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "dataplane/eal_harness.hpp"
#include "tests_common.hpp"
#include "twincast/dataplane/net.hpp"

namespace twincast::dataplane {
namespace {

using mpegts::TsPacket;
using net::ipv4;
using ByteVec = std::vector<std::uint8_t>;

constexpr Ipv4 kOurIp = ipv4(10, 9, 0, 2);
constexpr Ipv4 kPeerIp = ipv4(10, 9, 0, 1);
constexpr Mac kOurMac = {0x02, 0x74, 0x63, 0x00, 0x00, 0x02};
constexpr Mac kPeerMac = {0x02, 0x74, 0x63, 0x00, 0x00, 0x01};
constexpr std::uint64_t kMs = 1'000'000;
constexpr std::size_t kBursts[] = {1, 3, 4, 32, 33};

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new test::EalEnvironment("tcdp_leak_", "dataplane_leak_test"));

ByteVec udp_frame(Ipv4 dst, std::uint16_t dport, const ByteVec& payload) {
  net::UdpFrame f;
  f.dst_mac = net::is_multicast(dst) ? net::multicast_mac(dst) : kOurMac;
  f.src_mac = kPeerMac;
  f.src_ip = kPeerIp;
  f.dst_ip = dst;
  f.src_port = 40000;
  f.dst_port = dport;
  f.ttl = 8;
  ByteVec frame(net::udp_headers_size(0) + payload.size());
  EXPECT_GT(net::write_udp_headers(frame, f, payload.size()), 0u);
  std::copy(payload.begin(), payload.end(), frame.begin() + static_cast<std::ptrdiff_t>(net::udp_headers_size(0)));
  return frame;
}

// The fixture's first packet of `pid` (PAT 0, PMT 0x1000).
TsPacket first_of(const std::vector<TsPacket>& ts, std::uint16_t pid) {
  for (const TsPacket& p : ts) {
    if (p.pid() == pid && p.payload_unit_start()) return p;
  }
  ADD_FAILURE() << "no packet of PID " << pid << " in the fixture";
  return mpegts::make_null_packet();
}

// One input's sender: 7 packets of the fixture per datagram, wrapping at its end; RTP
// with consecutive sequence numbers when asked. A datagram asked for with `psi` starts
// with the PAT and the PMT, so an input that sends a burst now and then still has its
// tables well within the 500 ms TR 101 290 limit (and so stays healthy for the selector).
class Sender {
 public:
  Sender(const std::vector<TsPacket>& ts, Ipv4 dst, std::uint16_t port, bool rtp)
      : ts_(ts), dst_(dst), port_(port), rtp_(rtp), pat_(first_of(ts, 0)), pmt_(first_of(ts, 0x1000)) {}
  ByteVec next(bool psi = false) {
    ByteVec payload;
    if (rtp_) {
      payload.resize(net::kRtpHeaderSize);
      net::write_rtp(payload, net::Rtp{33, false, seq_, 3600u * seq_, 0xBEEF});
      ++seq_;
    }
    int k = 0;
    if (psi) {
      pat_.set_cc(pat_cc_++);
      pmt_.set_cc(pmt_cc_++);
      payload.insert(payload.end(), pat_.bytes.begin(), pat_.bytes.end());
      payload.insert(payload.end(), pmt_.bytes.begin(), pmt_.bytes.end());
      k = 2;
    }
    for (; k < 7; ++k) {
      const TsPacket& p = ts_[at_++ % ts_.size()];
      payload.insert(payload.end(), p.bytes.begin(), p.bytes.end());
    }
    ++sent;
    return udp_frame(dst_, port_, payload);
  }
  std::uint64_t sent = 0;

 private:
  const std::vector<TsPacket>& ts_;
  Ipv4 dst_;
  std::uint16_t port_;
  bool rtp_;
  TsPacket pat_;
  TsPacket pmt_;
  std::uint8_t pat_cc_ = 0;
  std::uint8_t pmt_cc_ = 0;
  std::size_t at_ = 0;
  std::uint16_t seq_ = 0;
};

rte_mbuf* to_mbuf(rte_mempool* pool, const ByteVec& frame) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  auto* d = rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame.size()));
  if (d == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memcpy(d, frame.data(), frame.size());
  return m;
}

InputConfig udp_input(const std::string& name, Ipv4 address, std::uint16_t port, InputKind kind = InputKind::kUdp) {
  InputConfig in;
  in.name = name;
  in.kind = kind;
  in.port = "in";
  in.address = address;
  in.udp_port = port;
  return in;
}

OutputConfig output(Ipv4 group, PacingMode pacing, OutputKind kind = OutputKind::kUdp) {
  OutputConfig o;
  o.kind = kind;
  o.port = "out";
  o.address = group;
  o.udp_port = 5000;
  o.pacing = pacing;
  return o;
}

PortConfig port(const std::string& name, const std::string& device) {
  PortConfig p;
  p.name = name;
  p.device = device;
  p.address = kOurIp;
  p.mac = kOurMac;
  p.mbufs = 2047;
  return p;
}

TEST(Leak, VirtualTimeThousandInputStopStartCycles) {
  const std::vector<TsPacket> ts = test::read_packets(test::fixture("h264_aac.ts"));
  ASSERT_GT(ts.size(), 1000u);

  ApplianceConfig config;
  config.ports = {port("in", "net_null10,no-rx=1"), port("out", "net_null11,no-rx=1")};
  FailoverConfig failover;
  failover.timeout_ms = 50;
  failover.revert_holdoff_ms = 10;
  // Channel 0: primary A and backup B, passthrough.
  ChannelConfig pass;
  pass.id = "pass";
  pass.inputs = {udp_input("a", ipv4(239, 1, 1, 1), 5000), udp_input("b", ipv4(239, 1, 1, 2), 5000)};
  pass.outputs = {output(ipv4(239, 2, 2, 1), PacingMode::kPassthrough)};
  pass.failover = failover;
  // Channel 1: an RTP input, PCR pacing, an RTP and a UDP output.
  ChannelConfig pcr;
  pcr.id = "pcr";
  pcr.inputs = {udp_input("c", ipv4(239, 1, 1, 3), 5000, InputKind::kRtp)};
  pcr.outputs = {output(ipv4(239, 2, 2, 2), PacingMode::kPcr, OutputKind::kRtp),
                 output(ipv4(239, 2, 2, 3), PacingMode::kPcr)};
  pcr.failover = failover;
  // Channel 2: CBR with 4 packets per datagram (null packets fill the pauses).
  ChannelConfig cbr;
  cbr.id = "cbr";
  cbr.inputs = {udp_input("d", ipv4(239, 1, 1, 4), 5000)};
  cbr.outputs = {output(ipv4(239, 2, 2, 4), PacingMode::kCbr)};
  cbr.outputs[0].cbr_bps = 2'000'000;
  cbr.outputs[0].packets_per_datagram = 4;
  cbr.failover = failover;
  config.channels = {pass, pcr, cbr};

  Dataplane dp(config);
  rte_mempool* in_pool = dp.mempool(0);
  rte_mempool* out_pool = dp.mempool(1);
  const unsigned in_base = rte_mempool_in_use_count(in_pool);
  const unsigned out_base = rte_mempool_in_use_count(out_pool);

  Sender a(ts, ipv4(239, 1, 1, 1), 5000, false);
  Sender b(ts, ipv4(239, 1, 1, 2), 5000, false);
  Sender c(ts, ipv4(239, 1, 1, 3), 5000, true);
  Sender d(ts, ipv4(239, 1, 1, 4), 5000, false);
  std::uint64_t junk = 0;
  std::vector<rte_mbuf*> burst;
  auto feed = [&](Sender& s, std::size_t n, bool with_junk, std::uint64_t now) {
    burst.clear();
    for (std::size_t k = 0; k < n; ++k) burst.push_back(to_mbuf(in_pool, s.next(k == 0)));
    if (with_junk) {  // an unknown flow and a runt: dropped, and freed
      burst.push_back(to_mbuf(in_pool, udp_frame(ipv4(239, 9, 9, 9), 5000, ByteVec(7 * 188, 0x47))));
      burst.push_back(to_mbuf(in_pool, ByteVec(10, 0xAB)));
      junk += 2;
    }
    for (rte_mbuf* m : burst) ASSERT_NE(m, nullptr);
    dp.process_burst(0, burst.data(), static_cast<std::uint16_t>(burst.size()), now);
  };

  constexpr int kCycles = 1000;
  std::uint64_t now = 1'000 * kMs;
  for (int i = 0; i < kCycles; ++i) {
    const std::size_t n = kBursts[static_cast<std::size_t>(i) % std::size(kBursts)];
    // The primary misses every fourth cycle: the backup takes over, and the primary takes
    // back at its return (the backup, silent since the last cycle, is down by then).
    const bool a_on = i % 4 != 3;
    if (a_on) feed(a, n, false, now);
    feed(b, n, true, now);
    if (i % 3 != 2) feed(c, n, false, now);
    feed(d, n, false, now);
    // Polls every 5 ms while the inputs are fresh: the selector (10 ms ticks) sees the
    // primary healthy for longer than the hold-off and reverts; partial datagrams flush.
    for (std::uint64_t ms = 0; ms <= 45; ms += 5) dp.poll_once(now + ms * kMs);
    ASSERT_EQ(rte_mempool_in_use_count(in_pool), in_base) << "cycle " << i;
    ASSERT_EQ(rte_mempool_in_use_count(out_pool), out_base) << "cycle " << i;
    now += 100 * kMs;  // no input for longer than the failover timeout
    dp.poll_once(now - kMs);
  }
  // Let the PCR-paced queue drain.
  for (int k = 0; k < 30; ++k) dp.poll_once(now + static_cast<std::uint64_t>(k) * 100 * kMs);
  EXPECT_EQ(rte_mempool_in_use_count(in_pool), in_base);
  EXPECT_EQ(rte_mempool_in_use_count(out_pool), out_base);

  // Everything fed was received and classified, the junk dropped, and each channel sent.
  EXPECT_EQ(dp.input_stats(0, 0).datagrams, a.sent);
  EXPECT_EQ(dp.input_stats(0, 1).datagrams, b.sent);
  EXPECT_EQ(dp.input_stats(1, 0).datagrams, c.sent);
  EXPECT_EQ(dp.input_stats(2, 0).datagrams, d.sent);
  const PortStats in = dp.port_stats(0);
  EXPECT_EQ(in.rx_packets, a.sent + b.sent + c.sent + d.sent + junk);
  EXPECT_EQ(in.drop(DropReason::kUnknownFlow) + in.drop(DropReason::kMalformed), junk);
  const PortStats out = dp.port_stats(1);
  EXPECT_GT(out.tx_packets, 0u);
  EXPECT_EQ(out.drop(DropReason::kTxNoMbuf), 0u);
  EXPECT_EQ(out.drop(DropReason::kTxRefused), 0u);
  const ChannelStats s0 = dp.pipeline(0).stats();
  const ChannelStats s1 = dp.pipeline(1).stats();
  const ChannelStats s2 = dp.pipeline(2).stats();
  // The primary stopped 250 times: a failover each time and back when it returned.
  EXPECT_GE(s0.switches, 2u * (kCycles / 4) - 1);
  EXPECT_GT(s0.packets_out, 0u);
  EXPECT_GT(s1.packets_out, 0u);
  EXPECT_GT(s2.datagrams_out, 0u);
  EXPECT_EQ(s0.dropped_queue_full + s1.dropped_queue_full + s2.dropped_queue_full, 0u);
}

TEST(Leak, RealWorkerStopStartCycles) {
  const std::vector<TsPacket> ts = test::read_packets(test::fixture("h264_aac.ts"));
  // net_ring0 loops its TX ring back to RX: the test enqueues frames on it (the worker
  // never transmits on this port: its inputs are unicast, so no IGMP).
  ApplianceConfig config;
  config.ports = {port("in", "net_ring0"), port("out", "net_null21,no-rx=1")};
  ChannelConfig ch;
  ch.id = "live";
  ch.inputs = {udp_input("a", kOurIp, 6000), udp_input("b", kOurIp, 6001)};
  ch.outputs = {output(ipv4(239, 2, 2, 9), PacingMode::kPassthrough)};
  ch.failover.timeout_ms = 20;
  ch.failover.revert_holdoff_ms = 5;
  config.channels = {ch};

  Dataplane dp(config);
  rte_ring* ring = rte_ring_lookup("ETH_RXTX0_net_ring0");
  ASSERT_NE(ring, nullptr) << "the net_ring PMD's ring name changed";
  rte_mempool* in_pool = dp.mempool(0);
  rte_mempool* out_pool = dp.mempool(1);
  const unsigned in_base = rte_mempool_in_use_count(in_pool);
  const unsigned out_base = rte_mempool_in_use_count(out_pool);
  Sender a(ts, kOurIp, 6000, false);
  Sender b(ts, kOurIp, 6001, false);

  // The worker empties the ring on its next turn; on a loaded machine it can be off its
  // core for seconds. Only a guard: waiting longer passes nothing that should fail.
  auto wait_drained = [&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (rte_ring_count(ring) != 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return rte_ring_count(ring) == 0;
  };
  std::uint64_t fed = 0;
  for (int run = 0; run < 5; ++run) {
    dp.start();
    for (int i = 0; i < 20; ++i) {
      const std::size_t n = kBursts[static_cast<std::size_t>(i) % std::size(kBursts)];
      std::vector<rte_mbuf*> burst;
      for (std::size_t k = 0; k < n; ++k) {
        burst.push_back(to_mbuf(in_pool, (i % 4 < 2 ? a : b).next(k == 0)));
        ASSERT_NE(burst.back(), nullptr);
      }
      ASSERT_EQ(rte_ring_enqueue_bulk(ring, reinterpret_cast<void**>(burst.data()), static_cast<unsigned>(n), nullptr), n);
      fed += n;
      ASSERT_TRUE(wait_drained());
      std::this_thread::sleep_for(std::chrono::milliseconds(25));  // > failover timeout
    }
    dp.stop();
    EXPECT_EQ(rte_ring_count(ring), 0u);
    EXPECT_EQ(rte_mempool_in_use_count(in_pool), in_base) << "run " << run;
    EXPECT_EQ(rte_mempool_in_use_count(out_pool), out_base) << "run " << run;
  }
  EXPECT_EQ(dp.input_stats(0, 0).datagrams + dp.input_stats(0, 1).datagrams, fed);
  EXPECT_EQ(dp.port_stats(0).rx_packets, fed);
  EXPECT_GT(dp.port_stats(1).tx_packets, 0u);
  EXPECT_GE(dp.pipeline(0).stats().switches, 1u);
  // The worker's load: the turns that received or sent were busy, most were not (the test
  // sleeps 25 ms after each burst); every turn's time is in poll_ns, the busy ones' also
  // in busy_ns.
  const WorkerStats w = dp.worker_stats();
  EXPECT_EQ(w.lcore, 1u);
  EXPECT_GT(w.busy_turns, 0u);
  EXPECT_LT(w.busy_turns * 4, w.turns);
  EXPECT_GT(w.busy_ns, 0u);
  EXPECT_LT(w.busy_ns, w.poll_ns);
}

// An RTP datagram that came after a gap waits in the flow's reordering window; the worker
// stopping then must not keep it: stop() returns every mbuf to its pool, as RealWorker
// checks after each stop (the window kept it until the Dataplane went, or delivered it,
// stale, after the next start()).
TEST(Leak, RealWorkerStopReturnsWhatAnRtpWindowHeld) {
  const std::vector<TsPacket> ts = test::read_packets(test::fixture("h264_aac.ts"));
  ApplianceConfig config;
  config.ports = {port("in", "net_ring1"), port("out", "net_null22,no-rx=1")};
  ChannelConfig ch;
  ch.id = "rtp";
  ch.inputs = {udp_input("a", kOurIp, 6000, InputKind::kRtp)};
  ch.outputs = {output(ipv4(239, 2, 2, 9), PacingMode::kPassthrough)};
  config.channels = {ch};

  Dataplane dp(config);
  rte_ring* ring = rte_ring_lookup("ETH_RXTX0_net_ring1");
  ASSERT_NE(ring, nullptr) << "the net_ring PMD's ring name changed";
  rte_mempool* in_pool = dp.mempool(0);
  const unsigned in_base = rte_mempool_in_use_count(in_pool);
  Sender a(ts, kOurIp, 6000, true);
  dp.start();
  // Sequence numbers 0 and 2: 1 is missing, 2 waits for it (kRtpHoldNs, 20 ms).
  rte_mbuf* burst[2] = {to_mbuf(in_pool, a.next(true)), nullptr};
  (void)a.next();
  burst[1] = to_mbuf(in_pool, a.next());
  ASSERT_NE(burst[0], nullptr);
  ASSERT_NE(burst[1], nullptr);
  ASSERT_EQ(rte_ring_enqueue_bulk(ring, reinterpret_cast<void**>(burst), 2, nullptr), 2u);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);  // a guard: the worker may be off its core for seconds
  while (rte_ring_count(ring) != 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  ASSERT_EQ(rte_ring_count(ring), 0u);
  dp.stop();
  EXPECT_EQ(rte_mempool_in_use_count(in_pool), in_base);
  EXPECT_EQ(dp.input_stats(0, 0).datagrams, 2u);  // both went to the channel
  EXPECT_EQ(dp.input_stats(0, 0).rtp_lost, 1u);
}

// A port that cannot be set up after another was: the constructor throws and releases what
// it set up, the failing port's device included (hot-plugged here, as every port of these
// tests: it stayed probed, and a later Dataplane got it with its old arguments).
TEST(Leak, FailedConstructionReleasesTheFailingPortsDevice) {
  const std::uint16_t devices = rte_eth_dev_count_total();
  ApplianceConfig config;
  config.ports = {port("in", "net_null30,no-rx=1"), port("out", "net_null31,no-rx=1")};
  config.ports[1].mbufs = 0;  // no mempool
  EXPECT_THROW(Dataplane dp(config), std::runtime_error);
  EXPECT_EQ(rte_eth_dev_count_total(), devices);
}

// Two ports on one device (which twincastd --check refuses): the second cannot be set up,
// and what the constructor releases is the device once. It was released twice, as each
// port's: closed again and removed again through the rte_device the first removal freed
// ("EAL: Driver cannot detach the device").
TEST(Leak, FailedConstructionReleasesASharedDeviceOnce) {
  const std::uint16_t devices = rte_eth_dev_count_total();
  ApplianceConfig config;
  config.ports = {port("in", "net_null32,no-rx=1"), port("out", "net_null32,size=128")};
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  EXPECT_THROW(Dataplane dp(config), std::runtime_error);
  const std::string log = ::testing::internal::GetCapturedStdout() + ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log.find("cannot detach"), std::string::npos) << log;
  EXPECT_EQ(log.find("Invalid port_id"), std::string::npos) << log;
  EXPECT_EQ(rte_eth_dev_count_total(), devices);
}

}  // namespace
}  // namespace twincast::dataplane
