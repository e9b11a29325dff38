// The data plane's packet path without root: EAL with --no-huge, a net_pcap port whose TX
// goes to a pcap file, frames built with net.hpp fed through the worker's own code
// (Dataplane::process_burst) in bursts of 1, 3, 4, 32 and 33, a recording stand-in
// pipeline, and the mempool's in-use count checked after every step.
#include "twincast/dataplane/dataplane.hpp"

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>

#include "dataplane/eal_harness.hpp"
#include "tests_common.hpp"
#include "twincast/dataplane/net.hpp"

namespace twincast::dataplane {
namespace {

using mpegts::TsPacket;
using net::ipv4;
using ByteVec = std::vector<std::uint8_t>;
using test::read_pcap;

constexpr Ipv4 kOurIp = ipv4(10, 9, 0, 2);
constexpr Ipv4 kPeerIp = ipv4(10, 9, 0, 1);
constexpr Ipv4 kGroupIn = ipv4(239, 1, 1, 1);
constexpr Ipv4 kGroupRtp = ipv4(239, 1, 1, 2);
constexpr Ipv4 kSsmGroup = ipv4(232, 5, 5, 5);
constexpr Ipv4 kGroupOut = ipv4(239, 2, 2, 2);
constexpr Ipv4 kMovedGroup = ipv4(239, 1, 1, 9);  // where move_first_input() moves input 0
constexpr Mac kOurMac = {0x02, 0x74, 0x63, 0x00, 0x00, 0x02};
constexpr Mac kPeerMac = {0x02, 0x74, 0x63, 0x00, 0x00, 0x01};

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new test::EalEnvironment("tcdp_worker_", "dataplane_worker_test"));

// The stand-in pipeline: records what the worker pushes; poll() sends everything pushed
// so far in datagrams of 7 packets to every output.
class Recorder final : public ChannelPipeline {
 public:
  explicit Recorder(std::size_t n_outputs) : n_outputs_(n_outputs) {}
  void push(std::size_t input, std::span<const TsPacket> packets, std::uint64_t) override {
    for (const TsPacket& p : packets) pushed.emplace_back(input, p);
  }
  void poll(std::uint64_t, DatagramSink& sink) override {
    while (sent_ < pushed.size()) {
      std::vector<TsPacket> d;
      for (; sent_ < pushed.size() && d.size() < 7; ++sent_) d.push_back(pushed[sent_].second);
      for (std::size_t o = 0; o < n_outputs_; ++o) sink.send(o, d);
    }
  }
  void describe(const ChannelConfig& next) override {
    described.push_back(next.name + "/" + next.provider + "/" + std::to_string(next.lcn));
    pushed_when_described.push_back(pushed.size());
  }
  std::vector<std::pair<std::size_t, TsPacket>> pushed;
  std::vector<std::string> described;               // "name/provider/lcn", by describe() call
  std::vector<std::size_t> pushed_when_described;   // pushed.size() at each call

 private:
  std::size_t n_outputs_;
  std::size_t sent_ = 0;
};

TsPacket ts_packet(std::uint32_t n) {
  TsPacket p{};
  p.bytes.fill(0xFF);
  p.bytes[0] = mpegts::kSyncByte;
  p.set_pid(0x100);
  p.bytes[3] = static_cast<std::uint8_t>(0x10 | (n & 0xF));
  std::memcpy(&p.bytes[4], &n, sizeof n);
  return p;
}

ByteVec ts_payload(std::uint32_t first, std::size_t count) {
  ByteVec b;
  b.reserve(count * mpegts::kPacketSize);
  for (std::size_t i = 0; i < count; ++i) {
    const TsPacket p = ts_packet(first + static_cast<std::uint32_t>(i));
    b.insert(b.end(), p.bytes.begin(), p.bytes.end());
  }
  return b;
}

ByteVec udp_frame(Ipv4 dst, std::uint16_t dport, const ByteVec& payload, Ipv4 src = kPeerIp, std::uint16_t vlan = 0) {
  net::UdpFrame f;
  f.dst_mac = net::is_multicast(dst) ? net::multicast_mac(dst) : kOurMac;
  f.src_mac = kPeerMac;
  f.vlan = vlan;
  f.src_ip = src;
  f.dst_ip = dst;
  f.src_port = 40000;
  f.dst_port = dport;
  f.ttl = 8;
  ByteVec frame(net::udp_headers_size(vlan) + payload.size());
  EXPECT_GT(net::write_udp_headers(frame, f, payload.size()), 0u);
  std::copy(payload.begin(), payload.end(), frame.begin() + static_cast<std::ptrdiff_t>(net::udp_headers_size(vlan)));
  return frame;
}

ByteVec rtp_payload(std::uint16_t seq, std::uint32_t first_ts, std::size_t count) {
  ByteVec b(net::kRtpHeaderSize);
  net::write_rtp(b, net::Rtp{33, false, seq, 1000u * seq, 0x1234});
  const ByteVec ts = ts_payload(first_ts, count);
  b.insert(b.end(), ts.begin(), ts.end());
  return b;
}

ByteVec arp_request(Ipv4 target) {
  ByteVec f(60, 0);
  net::write_ethernet(f, net::kBroadcastMac, kPeerMac, 0, net::kEtherTypeArp);
  net::write_arp(std::span<std::uint8_t>(f).subspan(14), net::Arp{net::kArpRequest, kPeerMac, kPeerIp, Mac{}, target});
  return f;
}

// A membership query of `version` (RFC 3376 7.1: v1 and v2 are 8 bytes, v1 with max
// resp code 0; v3 12 bytes) for `group` (0: general); v3 with `sources`: a
// group-and-source-specific query.
ByteVec igmp_query(Ipv4 group, int version = 3, std::uint8_t max_resp = 100, const std::vector<Ipv4>& sources = {}) {
  ByteVec msg = {0x11, max_resp, 0, 0, 0, 0, 0, 0, 0x02, 125, 0, 0};
  if (version < 3) msg.resize(8);
  if (version == 1) msg[1] = 0;
  msg[4] = static_cast<std::uint8_t>(group >> 24);
  msg[5] = static_cast<std::uint8_t>(group >> 16);
  msg[6] = static_cast<std::uint8_t>(group >> 8);
  msg[7] = static_cast<std::uint8_t>(group);
  if (version == 3) {
    msg[10] = static_cast<std::uint8_t>(sources.size() >> 8);
    msg[11] = static_cast<std::uint8_t>(sources.size());
    for (const Ipv4 s : sources)
      for (int shift = 24; shift >= 0; shift -= 8) msg.push_back(static_cast<std::uint8_t>(s >> shift));
  }
  const std::uint16_t c = net::internet_checksum(msg);
  msg[2] = static_cast<std::uint8_t>(c >> 8);
  msg[3] = static_cast<std::uint8_t>(c);
  ByteVec f(14 + 24 + msg.size());
  net::write_ethernet(f, net::multicast_mac(net::kAllHostsGroup), kPeerMac, 0, net::kEtherTypeIpv4);
  net::Ipv4Header h;
  h.src = kPeerIp;
  h.dst = net::kAllHostsGroup;
  h.protocol = net::kProtoIgmp;
  h.ttl = 1;
  const std::uint8_t ra[4] = {0x94, 0x04, 0, 0};
  net::write_ipv4(std::span<std::uint8_t>(f).subspan(14), h, msg.size(), net::Bytes(ra, 4));
  std::copy(msg.begin(), msg.end(), f.begin() + 38);
  return f;
}

void write_empty_pcap(const std::filesystem::path& p) {
  const std::uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(hdr), sizeof hdr);
}

struct Parsed {
  net::Ethernet eth;
  net::Ipv4Header ip;
  net::Udp udp;
  net::Bytes payload;
};
std::optional<Parsed> parse_udp_frame(const ByteVec& f) {
  Parsed r;
  const auto e = net::parse_ethernet(f);
  if (!e || e->ether_type != net::kEtherTypeIpv4) return std::nullopt;
  net::Bytes l4;
  const auto ip = net::parse_ipv4(net::Bytes(f).subspan(e->header_size), &l4);
  if (!ip || ip->protocol != net::kProtoUdp) return std::nullopt;
  const auto u = net::parse_udp(l4, &r.payload);
  if (!u) return std::nullopt;
  r.eth = *e;
  r.ip = *ip;
  r.udp = *u;
  return r;
}

class Worker : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n_ports{0};
    dir_ = test::temp_dir("dp_worker");
    write_empty_pcap(dir_ / "empty.pcap");
    tx_pcap_ = dir_ / "tx.pcap";
    const int n = n_ports++;
    config_.eal.lcores = "0,1";
    PortConfig port;
    port.name = "p0";
    port.device = "net_pcap" + std::to_string(n) + ",rx_pcap=" + (dir_ / "empty.pcap").string() +
                  ",tx_pcap=" + tx_pcap_.string();
    port.address = kOurIp;
    port.mac = kOurMac;
    port.mbufs = 1023;
    config_.ports.push_back(port);
    ChannelConfig ch;
    ch.id = "one";
    InputConfig udp_in;
    udp_in.name = "udp";
    udp_in.port = "p0";
    udp_in.address = kGroupIn;
    udp_in.udp_port = 5000;
    InputConfig rtp_in = udp_in;
    rtp_in.name = "rtp";
    rtp_in.kind = InputKind::kRtp;
    rtp_in.address = kGroupRtp;
    InputConfig ssm_in = udp_in;
    ssm_in.name = "ssm";
    ssm_in.address = kSsmGroup;
    ssm_in.source = kPeerIp;
    InputConfig unicast_in = udp_in;
    unicast_in.name = "unicast";
    unicast_in.address = kOurIp;
    unicast_in.udp_port = 6000;
    ch.inputs = {udp_in, rtp_in, ssm_in, unicast_in};
    OutputConfig out;
    out.port = "p0";
    out.address = kGroupOut;
    out.udp_port = 5000;
    out.ttl = 5;
    out.dscp = 34;
    OutputConfig out_rtp = out;
    out_rtp.kind = OutputKind::kRtp;
    out_rtp.udp_port = 5004;
    out_rtp.vlan = 0;
    ch.outputs = {out, out_rtp};
    config_.channels.push_back(ch);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void make(std::size_t n_outputs = 2) {
    if (n_outputs == 1) config_.channels[0].outputs.resize(1);
    dp_ = std::make_unique<Dataplane>(config_, [](const ChannelConfig& c) {
      return std::make_unique<Recorder>(c.outputs.size());
    });
    pool_ = dp_->mempool(0);
    base_in_use_ = rte_mempool_in_use_count(pool_);
  }
  Recorder& recorder() { return dynamic_cast<Recorder&>(dp_->pipeline(0)); }
  // The channel gets an SRT input (last in its list), then make(): that input's index.
  std::size_t make_with_srt_input() {
    InputConfig srt;
    srt.name = "srt";
    srt.kind = InputKind::kSrt;
    config_.channels[0].inputs.push_back(srt);
    make();
    return config_.channels[0].inputs.size() - 1;
  }
  // The numbers ts_packet() wrote into the packets pushed so far, each checked to be a
  // packet a peer sent (not one glued from two).
  std::vector<std::uint32_t> pushed_numbers() {
    std::vector<std::uint32_t> got;
    for (const auto& pushed : recorder().pushed) {
      std::uint32_t n = 0;
      std::memcpy(&n, &pushed.second.bytes[4], sizeof n);
      EXPECT_TRUE(pushed.second.bytes == ts_packet(n).bytes) << "packet " << got.size() << " is not one the peers sent";
      got.push_back(n);
    }
    return got;
  }

  // `held`: mbufs legitimately still in use afterwards (RTP datagrams waiting in a window).
  void feed(const std::vector<ByteVec>& frames, std::uint64_t rx_ns = 1'000'000, std::uint64_t poll_ns = 2'000'000,
            std::size_t held = 0) {
    std::vector<rte_mbuf*> m(frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) {
      m[i] = rte_pktmbuf_alloc(pool_);
      ASSERT_NE(m[i], nullptr);
      auto* d = rte_pktmbuf_append(m[i], static_cast<std::uint16_t>(frames[i].size()));
      ASSERT_NE(d, nullptr);
      std::memcpy(d, frames[i].data(), frames[i].size());
    }
    dp_->process_burst(0, m.data(), static_cast<std::uint16_t>(m.size()), rx_ns);
    dp_->poll_once(poll_ns);
    EXPECT_EQ(rte_mempool_in_use_count(pool_), base_in_use_ + held) << "an mbuf leaked or was freed twice";
  }
  // Applies a reload that moves the first input from 239.1.1.1 to kMovedGroup (an IGMP
  // leave and a join) and returns that configuration.
  ApplianceConfig move_first_input() {
    ApplianceConfig next = dp_->config();
    next.channels[0].inputs[0].address = kMovedGroup;
    dp_->apply(next);
    return next;
  }
  std::vector<ByteVec> transmitted() {
    dp_.reset();  // closes the port: the pcap is complete
    return read_pcap(tx_pcap_);
  }
  // Runs the worker lcore for `at_least` (and until its loop has turned), then stops it.
  // Returns the wall time from before start() to after stop(): the most the worker's own
  // clock can have advanced before it saw the stop. On a loaded machine the sleep and the
  // stop can take far longer than asked (the worker, or this thread, off its core), and a
  // worker that got to a second of its own time has done its once-a-second work too.
  std::chrono::steady_clock::duration run_worker(std::chrono::milliseconds at_least) {
    const auto t0 = std::chrono::steady_clock::now();
    dp_->start();
    EXPECT_TRUE(dp_->running());
    std::this_thread::sleep_for(at_least);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (dp_->worker_stats().turns == 0 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    dp_->stop();
    EXPECT_FALSE(dp_->running());
    return std::chrono::steady_clock::now() - t0;
  }

  std::filesystem::path dir_;
  std::filesystem::path tx_pcap_;
  ApplianceConfig config_;
  std::unique_ptr<Dataplane> dp_;
  rte_mempool* pool_ = nullptr;
  unsigned base_in_use_ = 0;
};

TEST(EalArguments, FromConfig) {
  EalConfig e;
  e.lcores = "2,3";
  e.memory_mb = 512;
  e.file_prefix = "tc1";
  PortConfig v;
  v.device = "net_af_packet0,iface=veth1";
  auto a = eal_arguments(e, {v}, "twincastd");
  const std::vector<std::string> expect = {"twincastd", "-l", "2,3", "-m", "512", "--no-huge", "--no-shconf",
                                           "--file-prefix", "tc1", "--vdev", "net_af_packet0,iface=veth1",
                                           "--no-pci", "--log-level=warning"};
  EXPECT_EQ(a, expect);
  PortConfig pci;
  pci.device = "0000:3b:00.1";
  e.hugepages = true;
  e.extra_args = {"--log-level=debug"};
  a = eal_arguments(e, {pci, v}, "x");
  const std::vector<std::string> expect2 = {"x", "-l", "2,3", "-m", "512", "--file-prefix", "tc1", "-a", "0000:3b:00.1",
                                            "--vdev", "net_af_packet0,iface=veth1", "--log-level=debug"};
  EXPECT_EQ(a, expect2);
  EXPECT_TRUE(is_pci_address("0000:3b:00.1"));
  EXPECT_TRUE(is_pci_address("3b:00.1"));
  EXPECT_TRUE(is_pci_address("0000:3b:00.1,rxq_pkt_size=128"));
  EXPECT_FALSE(is_pci_address("net_tap0"));
  EXPECT_FALSE(is_pci_address("0000:3b:00"));
  EXPECT_FALSE(is_pci_address(""));
}

// The lcore EAL makes its main lcore from these arguments: --main-lcore, else the lowest
// of -l (EAL's default, whatever the list's order).
std::string eal_main_lcore(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--main-lcore") return args[i + 1];
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "-l") continue;
    unsigned long lowest = ~0UL;
    std::istringstream list(args[i + 1]);
    for (std::string item; std::getline(list, item, ',');) {
      const auto dash = item.find('-');
      lowest = std::min({lowest, std::stoul(item.substr(0, dash)),
                         dash == std::string::npos ? lowest : std::stoul(item.substr(dash + 1))});
    }
    return std::to_string(lowest);
  }
  return "";
}

// The first lcore of dataplane.lcores runs the main loop and the second the packet worker
// (config/README.md, EalConfig). EAL makes the lowest lcore listed its main lcore: with
// "2,1" the packet worker busy-polled lcore 2, the one meant for the main loop, and the
// main loop ran on lcore 1, the one set aside for the worker.
TEST(EalArguments, TheFirstLcoreListedIsTheMainOne) {
  EalConfig e;
  for (const auto& [lcores, main] : std::vector<std::pair<std::string, std::string>>{
           {"0,1", "0"}, {"0-3", "0"}, {"2,1", "2"}, {"5,0-3", "5"}, {"3-1,0", "1"}}) {
    e.lcores = lcores;
    EXPECT_EQ(eal_main_lcore(eal_arguments(e, {}, "x")), main) << lcores;
  }
}

// --socket-mem (memory per NUMA node, the usual advice with hugepages) in eal_args: EAL
// refuses it beside -m ("Options -m and --socket-mem cannot be specified at the same
// time"), rte_eal_init failed and twincastd did not start, though --check said OK.
TEST(EalArguments, SocketMemInTheExtraArgumentsReplacesMemoryMb) {
  EalConfig e;
  e.hugepages = true;
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--socket-mem", "1024,1024"},
                                                std::vector<std::string>{"--socket-mem=1024,0"}}) {
    e.extra_args = extra;
    const std::vector<std::string> a = eal_arguments(e, {}, "x");
    EXPECT_EQ(std::count(a.begin(), a.end(), "-m"), 0) << extra[0] << " and -m";
    EXPECT_EQ(std::count(a.begin(), a.end(), extra[0]), 1);
  }
  e.extra_args = {};
  const std::vector<std::string> a = eal_arguments(e, {}, "x");
  EXPECT_EQ(std::count(a.begin(), a.end(), "-m"), 1);
}

// EAL names a PCI port "dddd:bb:dd.f" in lower case however -a wrote it: a port on
// "3b:00.1" (as lspci prints it) or "0000:3B:00.1" was looked up by that string, not
// found ("no DPDK device"), and twincastd did not start.
TEST(EalArguments, APciPortIsKnownByTheNameEalGivesIt) {
  EXPECT_EQ(device_name("3b:00.1"), "0000:3b:00.1");
  EXPECT_EQ(device_name("0000:3B:00.1,rxq_pkt_size=128"), "0000:3b:00.1");
  EXPECT_EQ(device_name("0000:3b:00.1"), "0000:3b:00.1");
  EXPECT_EQ(device_name("net_pcap0,iface=Eth0"), "net_pcap0");
}

TEST(DropReasons, Names) {
  EXPECT_STREQ(drop_reason_name(DropReason::kUnknownFlow), "unknown_flow");
  EXPECT_STREQ(drop_reason_name(DropReason::kTxRefused), "tx_refused");
  EXPECT_EQ(kDropReasonCount, static_cast<std::size_t>(DropReason::kTxRefused) + 1);
}

TEST_F(Worker, ForwardsUdpInBurstsOf1_3_4_32_33) {
  make(1);
  std::uint32_t next = 0;
  std::size_t total = 0;
  for (const std::size_t burst : {1u, 3u, 4u, 32u, 33u}) {
    std::vector<ByteVec> frames;
    for (std::size_t i = 0; i < burst; ++i, next += 7) frames.push_back(udp_frame(kGroupIn, 5000, ts_payload(next, 7)));
    feed(frames);
    total += burst;
    EXPECT_EQ(dp_->input_stats(0, 0).datagrams, total);
    EXPECT_EQ(dp_->port_stats(0).tx_packets, total);
  }
  ASSERT_EQ(recorder().pushed.size(), total * 7);
  for (std::size_t i = 0; i < recorder().pushed.size(); ++i) {
    EXPECT_EQ(recorder().pushed[i].first, 0u);
    ASSERT_EQ(recorder().pushed[i].second.bytes, ts_packet(static_cast<std::uint32_t>(i)).bytes) << i;
  }
  const PortStats s = dp_->port_stats(0);
  EXPECT_EQ(s.rx_packets, total);
  for (std::size_t r = 0; r < kDropReasonCount; ++r) EXPECT_EQ(s.drops[r], 0u) << drop_reason_name(DropReason(r));

  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), total);
  std::uint32_t expect = 0;
  for (const ByteVec& f : frames) {
    const auto p = parse_udp_frame(f);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->eth.dst, net::multicast_mac(kGroupOut));
    EXPECT_EQ(p->eth.src, kOurMac);
    EXPECT_EQ(p->ip.src, kOurIp);
    EXPECT_EQ(p->ip.dst, kGroupOut);
    EXPECT_EQ(p->ip.ttl, 5);
    EXPECT_EQ(p->ip.dscp, 34);
    EXPECT_FALSE(p->ip.dont_fragment);
    EXPECT_EQ(p->udp.dst_port, 5000);
    ASSERT_EQ(p->payload.size(), 7u * 188);
    const ByteVec want = ts_payload(expect, 7);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), p->payload.begin()));
    expect += 7;
  }
}

TEST_F(Worker, RtpInputStripsHeaderDropsDuplicatesAndRtpOutputIsSequenced) {
  make(2);
  // seq 10, 11, 11 (dup), 13 (waits for 12), 12 (fills the gap), 12 (dup): 4 datagrams go
  // through, in sequence order.
  std::vector<ByteVec> frames;
  const std::uint16_t seqs[] = {10, 11, 11, 13, 12, 12};
  for (std::uint16_t s : seqs) frames.push_back(udp_frame(kGroupRtp, 5000, rtp_payload(s, 100u * s, 7)));
  feed(frames);
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 4u);
  EXPECT_EQ(in.packets, 28u);
  EXPECT_EQ(in.rtp_duplicates, 2u);
  EXPECT_EQ(in.rtp_out_of_order, 1u);  // 12, after 13
  EXPECT_EQ(in.rtp_lost, 0u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kRtpDuplicate), 2u);
  ASSERT_EQ(recorder().pushed.size(), 28u);
  EXPECT_EQ(recorder().pushed[0].first, 1u);
  EXPECT_EQ(recorder().pushed[0].second.bytes, ts_packet(1000).bytes);
  EXPECT_EQ(recorder().pushed[14].second.bytes, ts_packet(1200).bytes) << "12 before 13";
  EXPECT_EQ(recorder().pushed[27].second.bytes, ts_packet(1300 + 6).bytes);

  const auto frames_out = transmitted();
  ASSERT_EQ(frames_out.size(), 8u);  // 4 datagrams x 2 outputs
  std::optional<std::uint16_t> last_seq;
  for (const ByteVec& f : frames_out) {
    const auto p = parse_udp_frame(f);
    ASSERT_TRUE(p);
    if (p->udp.dst_port != 5004) continue;
    net::Bytes ts;
    const auto rtp = net::parse_rtp(p->payload, &ts);
    ASSERT_TRUE(rtp);
    EXPECT_EQ(rtp->payload_type, 33);
    EXPECT_EQ(ts.size(), 7u * 188);
    if (last_seq) {
      EXPECT_EQ(rtp->sequence, static_cast<std::uint16_t>(*last_seq + 1));
    }
    last_seq = rtp->sequence;
  }
  EXPECT_TRUE(last_seq.has_value());
}

// Outputs are matched across a reload by destination, and one that stays goes on with its
// SSRC. An RTP output added in front of it takes its old place in the list: it must still
// get an SSRC of its own, or two outputs of the channel send one SSRC (RFC 3550 8: an SSRC
// names one source; a receiver or probe fed both takes them for one stream).
TEST_F(Worker, RtpOutputAddedInFrontOfAKeptOneGetsADistinctSsrc) {
  OutputConfig kept = config_.channels[0].outputs[1];  // RTP, kGroupOut:5004
  config_.channels[0].outputs = {kept};
  make(1);
  feed({udp_frame(kGroupIn, 5000, ts_payload(0, 7))});
  ApplianceConfig next = dp_->config();
  OutputConfig added = kept;
  added.address = ipv4(239, 2, 2, 5);
  added.udp_port = 5006;
  next.channels[0].outputs = {added, kept};
  dp_->apply(next);
  feed({udp_frame(kGroupIn, 5000, ts_payload(7, 7))}, 3'000'000, 4'000'000);

  std::vector<net::Rtp> kept_rtp;
  std::vector<net::Rtp> added_rtp;
  for (const ByteVec& f : transmitted()) {
    const auto p = parse_udp_frame(f);
    if (!p) continue;
    const auto rtp = net::parse_rtp(p->payload);
    ASSERT_TRUE(rtp);
    (p->udp.dst_port == 5004 ? kept_rtp : added_rtp).push_back(*rtp);
  }
  ASSERT_EQ(kept_rtp.size(), 2u);
  ASSERT_EQ(added_rtp.size(), 1u);
  EXPECT_EQ(kept_rtp[1].ssrc, kept_rtp[0].ssrc) << "the kept output changed its SSRC";
  EXPECT_EQ(kept_rtp[1].sequence, static_cast<std::uint16_t>(kept_rtp[0].sequence + 1));
  EXPECT_NE(added_rtp[0].ssrc, kept_rtp[1].ssrc) << "two outputs of the channel send one SSRC";
}

// A channel sharing channel "one"'s RTP flow (an MPTS split by service), listed first.
ApplianceConfig with_sharing_channel_first(const ApplianceConfig& c) {
  ApplianceConfig next = c;
  ChannelConfig zero;
  zero.id = "zero";
  zero.source_service_id = 2;
  zero.inputs = {c.channels[0].inputs[1]};  // the RTP input: kGroupRtp:5000
  zero.outputs = {c.channels[0].outputs[0]};
  zero.outputs[0].address = ipv4(239, 2, 2, 3);
  next.channels.insert(next.channels.begin(), zero);
  return next;
}

// An RTP flow's reorder window lives in its first member. A reload that lists a channel
// sharing the flow before "one" (unchanged: the same input state) makes the new channel
// the first member: 12, held in "one"'s window for 11, must still follow 11.
TEST_F(Worker, RtpHeldDatagramSurvivesAReloadThatAddsASharingChannelFirst) {
  make(1);
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(10, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(12, 0, 7))},
       1'000'000, 2'000'000, 1);
  const ConfigDiff d = dp_->apply(with_sharing_channel_first(dp_->config()));
  ASSERT_EQ(d.channels_unchanged, std::vector<std::string>{"one"});
  auto& one = dynamic_cast<Recorder&>(dp_->pipeline(1));
  ASSERT_EQ(one.pushed.size(), 7u);  // 10
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(11, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(13, 0, 7))});
  EXPECT_EQ(one.pushed.size(), 4u * 7) << "10, 11, 12, 13";
  EXPECT_EQ(dp_->input_stats(1, 1).datagrams, 4u);
  EXPECT_EQ(dp_->input_stats(1, 1).rtp_lost, 0u);
}

// Every channel that shares an RTP flow shows the flow's reordering counts, not only the
// channel whose input holds the window: an operator reading the second channel of an MPTS
// split sees the loss its output carries. 11 lost (given up 20 ms after 12 arrived), 14
// before 13 (reordered), 13 again (a duplicate).
TEST_F(Worker, RtpCountersOfASharedFlowShowOnEveryChannelItFeeds) {
  make(1);
  dp_->apply(with_sharing_channel_first(dp_->config()));  // "zero" (0) heads the flow, "one" (1) shares it
  constexpr std::uint64_t ms = 1'000'000;
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(10, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(12, 0, 7))}, 1 * ms,
       1 * ms, 1);
  feed({}, 22 * ms, 22 * ms);  // 11 given up, 12 delivered
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(14, 0, 7))}, 23 * ms, 23 * ms, 1);
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(13, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(13, 0, 7))}, 24 * ms,
       24 * ms);
  for (const auto& [channel, input] : {std::pair<std::size_t, std::size_t>{0, 0}, {1, 1}}) {
    const InputStats in = dp_->input_stats(channel, input);
    EXPECT_EQ(in.rtp_lost, 1u) << "channel " << channel;
    EXPECT_EQ(in.rtp_out_of_order, 2u) << "channel " << channel << ": 12 after the gap, 13 before 14";
    EXPECT_EQ(in.rtp_duplicates, 1u) << "channel " << channel;
    EXPECT_EQ(in.datagrams, 4u) << "channel " << channel << ": 10, 12, 13, 14";
  }
}

// A reload that makes another input the flow's first member (a channel sharing the flow
// listed first) moves the window there: "one", unchanged, must still show the flow's
// counts (11 lost before the reload), not restart from the new first member's zero; and
// back again when that channel is removed.
TEST_F(Worker, RtpCountersOfASharedFlowGoOnAcrossAReloadThatChangesItsFirstMember) {
  make(1);
  constexpr std::uint64_t ms = 1'000'000;
  const ApplianceConfig base = dp_->config();
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(10, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(12, 0, 7))}, 1 * ms,
       1 * ms, 1);
  feed({}, 22 * ms, 22 * ms);  // 11 given up
  ASSERT_EQ(dp_->input_stats(0, 1).rtp_lost, 1u);
  ASSERT_EQ(dp_->input_stats(0, 1).rtp_out_of_order, 1u);
  (void)dp_->apply(with_sharing_channel_first(base));
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(13, 0, 7))}, 23 * ms, 23 * ms);
  EXPECT_EQ(dp_->input_stats(1, 1).rtp_lost, 1u) << "\"one\"'s count went back to the new first member's";
  EXPECT_EQ(dp_->input_stats(1, 1).rtp_out_of_order, 1u);
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(15, 0, 7))}, 24 * ms, 24 * ms, 1);
  feed({}, 45 * ms, 45 * ms);  // 14 given up
  ASSERT_EQ(dp_->input_stats(1, 1).rtp_lost, 2u);
  (void)dp_->apply(base);  // "zero" removed: "one" heads the flow again
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(16, 0, 7))}, 46 * ms, 46 * ms);
  EXPECT_EQ(dp_->input_stats(0, 1).rtp_lost, 2u) << "11 and 14";
  EXPECT_EQ(dp_->input_stats(0, 1).datagrams, 5u);  // 10, 12, 13, 15, 16
}

// The other way: the channel that headed the flow (its window holding 12) is removed;
// "one" goes on and must still get 12 after 11.
TEST_F(Worker, RtpHeldDatagramSurvivesAReloadThatRemovesTheFlowsFirstChannel) {
  make(1);
  const ApplianceConfig base = dp_->config();
  dp_->apply(with_sharing_channel_first(base));
  auto& one = dynamic_cast<Recorder&>(dp_->pipeline(1));
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(10, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(12, 0, 7))},
       1'000'000, 2'000'000, 1);
  ASSERT_EQ(one.pushed.size(), 7u);  // 10
  const ConfigDiff d = dp_->apply(base);
  ASSERT_EQ(d.channels_removed, std::vector<std::string>{"zero"});
  ASSERT_EQ(&dp_->pipeline(0), &one);
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(11, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(13, 0, 7))});
  EXPECT_EQ(one.pushed.size(), 4u * 7) << "10, 11, 12, 13";
  EXPECT_EQ(dp_->input_stats(0, 1).rtp_lost, 0u);
  EXPECT_EQ(dp_->input_stats(0, 1).rtp_out_of_order, 1u);
}

// The sharing channel removed again: "one" heads the flow once more, and must not take up
// the sequence number it had before the first reload (11 while the stream is at 1010: ~1000
// datagrams counted lost that all arrived).
TEST_F(Worker, RtpFlowHeadedAgainByAFormerHeadKeepsTheCurrentSequence) {
  make(1);
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(10, 0, 7))});
  const ApplianceConfig base = dp_->config();
  (void)dp_->apply(with_sharing_channel_first(base));
  for (std::uint16_t s = 11; s < 1010; s += 30) {
    std::vector<ByteVec> frames;
    for (std::uint16_t k = s; k < s + 30 && k < 1010; ++k) frames.push_back(udp_frame(kGroupRtp, 5000, rtp_payload(k, 0, 1)));
    feed(frames);
  }
  (void)dp_->apply(base);  // "zero" removed: "one" heads the flow again
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(1010, 0, 1))});
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 1001u);
  EXPECT_EQ(in.rtp_lost, 0u) << "every sequence number 10..1010 arrived, in order";
}

// A gap waits kRtpHoldNs (20 ms) from when the oldest datagram still held arrived. 12 held
// at 1 ms (11 missing), 14 at 15 ms (13 missing); 11 at 16 ms delivers 11 and 12. At 22 ms
// 14 has waited 7 ms, so 13 at 23 ms is in time. The window kept 12's arrival as the
// hold's start: it gave 13 up at 22 ms and dropped it as a duplicate at 23 ms.
TEST_F(Worker, RtpHoldTimeStartsAtTheOldestDatagramStillHeld) {
  make(1);
  constexpr std::uint64_t ms = 1'000'000;
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(10, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(12, 0, 7))}, 1 * ms,
       1 * ms, 1);
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(14, 0, 7))}, 15 * ms, 15 * ms, 2);
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(11, 0, 7))}, 16 * ms, 16 * ms, 1);
  ASSERT_EQ(dp_->input_stats(0, 1).datagrams, 3u);  // 10, 11, 12
  feed({}, 22 * ms, 22 * ms, 1);                      // a loop turn: 14 still waits
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(13, 0, 7))}, 23 * ms, 23 * ms);
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.rtp_lost, 0u);
  EXPECT_EQ(in.rtp_duplicates, 0u);
  EXPECT_EQ(in.datagrams, 5u);
  // And a gap that waits its full 20 ms is given up: 16 held at 30 ms, 15 never comes.
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(16, 0, 7))}, 30 * ms, 30 * ms, 1);
  feed({}, 49 * ms, 49 * ms, 1);
  feed({}, 51 * ms, 51 * ms);
  EXPECT_EQ(dp_->input_stats(0, 1).rtp_lost, 1u);
  EXPECT_EQ(dp_->input_stats(0, 1).datagrams, 6u);
}

// A gap given up by the hold timer leaves the next gap waiting from the oldest
// datagram still held (README: "a gap given up 20 ms after the oldest datagram still
// waiting arrived"), not a fresh 20 ms from the expiry. 12 held at 1 ms (11 missing), 14
// held at 5 ms (13 missing). At 21 ms 11 is given up and 12 delivered; 14 has then waited
// 16 ms. At 26 ms it has waited 21 ms: 13 is given up and 14 delivered.
TEST_F(Worker, RtpHoldTimeAfterAnExpiredGapStartsAtTheOldestDatagramStillHeld) {
  make(1);
  constexpr std::uint64_t ms = 1'000'000;
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(10, 0, 7)), udp_frame(kGroupRtp, 5000, rtp_payload(12, 0, 7))}, 1 * ms,
       1 * ms, 1);
  feed({udp_frame(kGroupRtp, 5000, rtp_payload(14, 0, 7))}, 5 * ms, 5 * ms, 2);
  feed({}, 21 * ms, 21 * ms, 1);  // 11 given up, 12 delivered, 14 waits
  ASSERT_EQ(dp_->input_stats(0, 1).datagrams, 2u);  // 10, 12
  ASSERT_EQ(dp_->input_stats(0, 1).rtp_lost, 1u);
  feed({}, 26 * ms, 26 * ms, 0);  // 14 arrived 21 ms ago
  EXPECT_EQ(dp_->input_stats(0, 1).rtp_lost, 2u) << "13 given up 20 ms after 14 arrived";
  EXPECT_EQ(dp_->input_stats(0, 1).datagrams, 3u) << "10, 12, 14";
}

// An SRT input's peer reconnects while the last TS packet it sent was cut off (an
// encoder killed mid-write): the new connection's bytes must not complete that packet into
// one of neither stream. The ingest marks the new stream with an empty feed_external().
TEST_F(Worker, AnSrtReconnectDoesNotGlueTwoStreamsIntoOnePacket) {
  const std::size_t in = make_with_srt_input();
  ByteVec old_stream = ts_payload(0, 7);
  old_stream.resize(6 * mpegts::kPacketSize + 88);  // the seventh packet cut off
  ASSERT_TRUE(dp_->feed_external(0, in, old_stream));
  ASSERT_TRUE(dp_->feed_external(0, in, {}));  // a new connection
  ASSERT_TRUE(dp_->feed_external(0, in, ts_payload(100, 7)));
  ASSERT_TRUE(dp_->feed_external(0, in, ts_payload(107, 7)));
  dp_->poll_once(2'000'000);
  for (const auto& pushed : recorder().pushed) ASSERT_EQ(pushed.first, in);
  const std::vector<std::uint32_t> got = pushed_numbers();
  std::vector<std::uint32_t> want{0, 1, 2, 3, 4, 5};
  for (std::uint32_t n = 100; n < 114; ++n) want.push_back(n);
  EXPECT_EQ(got, want);
}

// An M2TS (192-byte) SRT stream that ended cleanly, then a reconnect: the old stream's
// last packet is whole (only the next unit's 4-byte prefix is missing, which the aligner
// waits for) and must reach the channel, as flush() would hand it out at the end of a file.
TEST_F(Worker, AnSrtReconnectKeepsTheLastWholePacketOfA192ByteStream) {
  const std::size_t in = make_with_srt_input();
  const auto m2ts = [](std::uint32_t first, std::size_t count) {
    ByteVec b;
    for (std::size_t i = 0; i < count; ++i) {
      b.insert(b.end(), {0x00, 0x01, 0x02, 0x03});  // the 4-byte timestamp prefix
      const TsPacket p = ts_packet(first + static_cast<std::uint32_t>(i));
      b.insert(b.end(), p.bytes.begin(), p.bytes.end());
    }
    return b;
  };
  ASSERT_TRUE(dp_->feed_external(0, in, m2ts(0, 6)));  // a whole stream: 6 units, no cut
  ASSERT_TRUE(dp_->feed_external(0, in, {}));          // a new connection
  ASSERT_TRUE(dp_->feed_external(0, in, m2ts(100, 6)));
  ASSERT_TRUE(dp_->feed_external(0, in, m2ts(106, 6)));
  dp_->poll_once(2'000'000);
  const std::vector<std::uint32_t> got = pushed_numbers();
  std::vector<std::uint32_t> want{0, 1, 2, 3, 4, 5};
  for (std::uint32_t n = 100; n < 111; ++n) want.push_back(n);  // 111 waits for its trailer
  EXPECT_EQ(got, want);
}

// The new connection's mark comes while the input's ring is full (the worker is behind):
// it must not be lost, or the new stream completes the packet the old one cut off anyway.
TEST_F(Worker, AnSrtReconnectWhileTheRingIsFullStillRestartsTheStream) {
  const std::size_t in = make_with_srt_input();
  const ByteVec whole = ts_payload(0, 7);
  std::size_t accepted = 0;
  while (accepted < 100000 && dp_->feed_external(0, in, whole)) ++accepted;
  ASSERT_GT(accepted, 64u);
  dp_->poll_once(1'000'000);  // the worker takes one burst (32): room for 32 more
  for (int k = 0; k < 31; ++k) ASSERT_TRUE(dp_->feed_external(0, in, whole));
  ByteVec cut = whole;
  cut.resize(6 * mpegts::kPacketSize + 88);  // the old stream's last message, cut off
  ASSERT_TRUE(dp_->feed_external(0, in, cut));
  (void)dp_->feed_external(0, in, {});  // the new connection, while the ring is full
  for (std::uint64_t k = 0; k < 200; ++k) dp_->poll_once(2'000'000 + k);  // the worker catches up
  ASSERT_TRUE(dp_->feed_external(0, in, ts_payload(100, 7)));
  dp_->poll_once(3'000'000);
  const std::vector<std::uint32_t> got = pushed_numbers();  // none glued from both streams
  EXPECT_EQ(std::count_if(got.begin(), got.end(), [](std::uint32_t n) { return n >= 100; }), 7);
}

// The old stream lost sync just before its peer went away (a lost SRT message that did not
// end on a packet boundary: the rest of a packet whose payload holds a 0x47 byte, then two
// whole packets, too few to lock again). At the reconnect mark the aligner is not locked:
// flush() must not hand the channel a "packet" that starts at the payload's 0x47.
TEST_F(Worker, AnSrtReconnectAfterALostSyncDoesNotPushAPacketThePeerNeverSent) {
  const std::size_t in = make_with_srt_input();
  ASSERT_TRUE(dp_->feed_external(0, in, ts_payload(0, 7)));  // locked: packets 0..6
  ByteVec rest(88, 0xFF);                                    // a packet's last 88 bytes...
  rest[20] = mpegts::kSyncByte;                              // ...whose payload holds a 0x47
  const ByteVec two = ts_payload(7, 2);
  rest.insert(rest.end(), two.begin(), two.end());
  ASSERT_TRUE(dp_->feed_external(0, in, rest));
  ASSERT_TRUE(dp_->feed_external(0, in, {}));  // a new connection
  ASSERT_TRUE(dp_->feed_external(0, in, ts_payload(100, 7)));
  ASSERT_TRUE(dp_->feed_external(0, in, ts_payload(107, 7)));
  dp_->poll_once(2'000'000);
  const std::vector<std::uint32_t> got = pushed_numbers();  // fails for a packet no peer sent
  EXPECT_EQ(got.back(), 113u);
}

// An SRT sender whose messages do not end on packet boundaries (1000-byte messages of a
// 188-byte stream), and one message lost (too late for the latency, dropped by libsrt):
// the packet cut off by the loss must not be completed with the next message's bytes into
// a packet the peer never sent; the packets after the gap still come once the aligner has
// found them again.
TEST_F(Worker, AnSrtMessageLostMidPacketDoesNotPushAPacketGluedAcrossTheGap) {
  const std::size_t in = make_with_srt_input();
  const ByteVec stream = ts_payload(0, 40);
  for (std::size_t at = 0; at < stream.size(); at += 1000) {
    if (at == 1000) continue;  // the lost message: packet 5's last 128 bytes to packet 10's first 120
    const std::size_t end = std::min(stream.size(), at + 1000);
    ASSERT_TRUE(dp_->feed_external(0, in, ByteVec(stream.begin() + static_cast<std::ptrdiff_t>(at),
                                                  stream.begin() + static_cast<std::ptrdiff_t>(end))));
  }
  dp_->poll_once(2'000'000);
  const std::vector<std::uint32_t> got = pushed_numbers();  // fails for a packet no peer sent
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), 39u);
  EXPECT_EQ(std::count(got.begin(), got.end(), 5u), 0) << "packet 5 lost its end with the message";
}

// An SRT stream with single corrupted sync bytes (TR 101 290 1.2 Sync_byte_error, not a
// loss of sync): the lock is kept, the packets reach the channel as they came (its analyzer
// counts the error, its remux drops them) and none around them is lost. Packet 21 is cut by
// the end of a 1000-byte message; packet 27 follows one that is (26).
TEST_F(Worker, AnSrtPacketWithACorruptedSyncByteKeepsTheLock) {
  const std::size_t in = make_with_srt_input();
  ByteVec stream = ts_payload(0, 40);
  stream[21 * mpegts::kPacketSize] = 0x46;
  stream[27 * mpegts::kPacketSize] = 0x46;
  for (std::size_t at = 0; at < stream.size(); at += 1000) {
    const std::size_t end = std::min(stream.size(), at + 1000);
    ASSERT_TRUE(dp_->feed_external(0, in, ByteVec(stream.begin() + static_cast<std::ptrdiff_t>(at),
                                                  stream.begin() + static_cast<std::ptrdiff_t>(end))));
  }
  dp_->poll_once(2'000'000);
  std::vector<std::uint32_t> got;
  for (const auto& pushed : recorder().pushed) {
    std::uint32_t n = 0;
    std::memcpy(&n, &pushed.second.bytes[4], sizeof n);
    TsPacket want = ts_packet(n);
    if (n == 21 || n == 27) want.bytes[0] = 0x46;
    EXPECT_TRUE(pushed.second.bytes == want.bytes) << "packet " << n;
    got.push_back(n);
  }
  std::vector<std::uint32_t> want(40);
  std::iota(want.begin(), want.end(), 0u);
  EXPECT_EQ(got, want);
}

// One corrupted sync byte costs that packet, not the datagram: the channel gets all seven
// (its analyzer counts the Sync_byte_error, its remux drops the one; see remux_test). Two,
// or one in a datagram too short to tell a damaged TS datagram from other bytes, are not TS.
TEST_F(Worker, AUdpDatagramWithOneCorruptedSyncByteGoesOnWhole) {
  make(1);
  ByteVec one_bad = ts_payload(0, 7);
  one_bad[3 * mpegts::kPacketSize] = 0x46;
  ByteVec first_bad = ts_payload(7, 4);
  first_bad[0] = 0x07;
  ByteVec two_bad = ts_payload(11, 7);
  two_bad[1 * mpegts::kPacketSize] = 0x46;
  two_bad[6 * mpegts::kPacketSize] = 0x46;
  ByteVec short_bad = ts_payload(18, 3);
  short_bad[2 * mpegts::kPacketSize] = 0x46;
  feed({udp_frame(kGroupIn, 5000, one_bad), udp_frame(kGroupIn, 5000, first_bad),
        udp_frame(kGroupIn, 5000, two_bad), udp_frame(kGroupIn, 5000, short_bad)});
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTsSync), 2u);
  EXPECT_EQ(dp_->input_stats(0, 0).datagrams, 2u);
  EXPECT_EQ(dp_->input_stats(0, 0).packets, 11u);
  std::vector<std::uint32_t> got;
  for (const auto& pushed : recorder().pushed) {
    std::uint32_t n = 0;
    std::memcpy(&n, &pushed.second.bytes[4], sizeof n);
    TsPacket want = ts_packet(n);
    if (n == 3) want.bytes[0] = 0x46;
    if (n == 7) want.bytes[0] = 0x07;
    EXPECT_TRUE(pushed.second.bytes == want.bytes) << "packet " << n;
    got.push_back(n);
  }
  std::vector<std::uint32_t> want(11);
  std::iota(want.begin(), want.end(), 0u);
  EXPECT_EQ(got, want);
}

TEST_F(Worker, SsmAndUnicastInputs) {
  make(1);
  feed({udp_frame(kSsmGroup, 5000, ts_payload(0, 7)),                      // from the SSM source: input 2
        udp_frame(kSsmGroup, 5000, ts_payload(0, 7), ipv4(10, 9, 0, 77)),  // other source: unknown
        udp_frame(kOurIp, 6000, ts_payload(0, 3)),                          // unicast input 3
        udp_frame(ipv4(10, 9, 0, 3), 6000, ts_payload(0, 3))});             // unicast, not ours
  EXPECT_EQ(dp_->input_stats(0, 2).datagrams, 1u);
  EXPECT_EQ(dp_->input_stats(0, 3).datagrams, 1u);
  EXPECT_EQ(dp_->input_stats(0, 3).packets, 3u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kUnknownFlow), 1u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kNotForUs), 1u);
}

TEST_F(Worker, AnswersArpForItsAddressOnly) {
  make(1);
  feed({arp_request(kOurIp), arp_request(ipv4(10, 9, 0, 99))});
  EXPECT_EQ(dp_->port_stats(0).arp_replies, 1u);
  EXPECT_EQ(dp_->port_stats(0).arp_other, 1u);
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 1u);
  const auto e = net::parse_ethernet(frames[0]);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->ether_type, net::kEtherTypeArp);
  EXPECT_EQ(e->dst, kPeerMac);
  const auto arp = net::parse_arp(net::Bytes(frames[0]).subspan(14));
  ASSERT_TRUE(arp);
  EXPECT_EQ(arp->op, net::kArpReply);
  EXPECT_EQ(arp->sender_mac, kOurMac);
  EXPECT_EQ(arp->sender_ip, kOurIp);
  EXPECT_EQ(arp->target_ip, kPeerIp);
}

TEST_F(Worker, AnswersIgmpQueriesForItsGroups) {
  make(1);
  feed({igmp_query(0), igmp_query(kGroupRtp), igmp_query(ipv4(239, 9, 9, 9))});
  EXPECT_EQ(dp_->port_stats(0).igmp_queries, 3u);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 2u);  // not for 239.9.9.9
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 2u);
  // The general query's answer: one current-state record per group, SSM with its source.
  net::Bytes igmp;
  const auto ip = net::parse_ipv4(net::Bytes(frames[0]).subspan(14), &igmp);
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->dst, net::kIgmpv3ReportGroup);
  EXPECT_EQ(ip->ttl, 1);
  ASSERT_EQ(igmp.size(), 8u + 8 + 8 + 12);
  EXPECT_EQ(igmp[0], 0x22);
  EXPECT_EQ(igmp[7], 3);                                                  // records
  EXPECT_EQ(igmp[8], static_cast<std::uint8_t>(net::IgmpRecordType::kModeIsExclude));
  EXPECT_EQ(igmp[24], static_cast<std::uint8_t>(net::IgmpRecordType::kModeIsInclude));
  EXPECT_EQ(igmp[24 + 7], 5);   // 232.5.5.5
  EXPECT_EQ(igmp[24 + 11], 1);  // source 10.9.0.1
  const auto ip2 = net::parse_ipv4(net::Bytes(frames[1]).subspan(14), &igmp);
  ASSERT_TRUE(ip2);
  EXPECT_EQ(igmp[7], 1);
  EXPECT_EQ(igmp[15], 2);  // 239.1.1.2
}

// An IGMP frame as the port sent it: Ethernet, IPv4 (checksum checked by the parser) and
// the IGMP message (its own checksum checked here).
struct IgmpFrame {
  net::Ethernet eth;
  net::Ipv4Header ip;
  ByteVec igmp;
  bool router_alert = false;
};
std::optional<IgmpFrame> parse_igmp_frame(const ByteVec& f) {
  const auto e = net::parse_ethernet(f);
  if (!e || e->ether_type != net::kEtherTypeIpv4) return std::nullopt;
  net::Bytes l4;
  const auto ip = net::parse_ipv4(net::Bytes(f).subspan(e->header_size), &l4);
  if (!ip || ip->protocol != net::kProtoIgmp || net::internet_checksum(l4) != 0) return std::nullopt;
  IgmpFrame r{*e, *ip, ByteVec(l4.begin(), l4.end())};
  const std::size_t o = e->header_size + net::kIpv4HeaderSize;
  r.router_alert = ip->header_size >= 24 && f[o] == 0x94 && f[o + 1] == 0x04 && f[o + 2] == 0 && f[o + 3] == 0;
  return r;
}
Ipv4 igmp_group(const IgmpFrame& f) { return net::ipv4(f.igmp[4], f.igmp[5], f.igmp[6], f.igmp[7]); }

// The group records of an IGMPv3 report (RFC 3376 4.2.4): type, group and sources.
struct IgmpGroupRecord {
  std::uint8_t type = 0;
  Ipv4 group = 0;
  std::vector<Ipv4> sources;
  friend bool operator==(const IgmpGroupRecord&, const IgmpGroupRecord&) = default;
};
void PrintTo(const IgmpGroupRecord& r, std::ostream* os) {
  *os << "type " << int{r.type} << " " << net::ipv4_text(r.group) << " {";
  for (std::size_t i = 0; i < r.sources.size(); ++i) *os << (i == 0 ? "" : " ") << net::ipv4_text(r.sources[i]);
  *os << "}";
}
std::vector<IgmpGroupRecord> igmpv3_records(const ByteVec& igmp) {
  std::vector<IgmpGroupRecord> records;
  if (igmp.size() < 8 || igmp[0] != 0x22) return records;
  const auto get32 = [&](std::size_t at) { return net::ipv4(igmp[at], igmp[at + 1], igmp[at + 2], igmp[at + 3]); };
  const std::size_t n = (std::size_t{igmp[6]} << 8) | igmp[7];
  std::size_t at = 8;
  for (std::size_t i = 0; i < n && at + 8 <= igmp.size(); ++i) {
    IgmpGroupRecord r;
    r.type = igmp[at];
    const std::size_t aux = igmp[at + 1];
    const std::size_t sources = (std::size_t{igmp[at + 2]} << 8) | igmp[at + 3];
    r.group = get32(at + 4);
    at += 8;
    for (std::size_t k = 0; k < sources && at + 4 <= igmp.size(); ++k, at += 4) r.sources.push_back(get32(at));
    at += 4 * aux;
    records.push_back(std::move(r));
  }
  return records;
}
// The records of each IGMPv3 report the port sent, by report.
std::vector<std::vector<IgmpGroupRecord>> igmpv3_reports(const std::vector<ByteVec>& frames) {
  std::vector<std::vector<IgmpGroupRecord>> reports;
  for (const auto& f : frames)
    if (auto r = parse_igmp_frame(f); r && r->igmp[0] == 0x22) reports.push_back(igmpv3_records(r->igmp));
  return reports;
}
constexpr auto kRecIsIn = static_cast<std::uint8_t>(net::IgmpRecordType::kModeIsInclude);
constexpr auto kRecIsEx = static_cast<std::uint8_t>(net::IgmpRecordType::kModeIsExclude);
constexpr auto kRecToIn = static_cast<std::uint8_t>(net::IgmpRecordType::kChangeToInclude);

// What an IGMPv1/v2 membership message must look like (RFC 2236 2, RFC 1112 appendix I):
// 8 bytes of `type` for `group`, sent to the group itself (a leave: to 224.0.0.2) at its
// multicast MAC, from us, with TTL 1 and (v2) the Router Alert option.
void expect_older_message(const ByteVec& frame, std::uint8_t type, Ipv4 group) {
  SCOPED_TRACE(::testing::Message() << "type 0x" << std::hex << int{type} << " group " << net::ipv4_text(group));
  const auto f = parse_igmp_frame(frame);
  ASSERT_TRUE(f) << "not IGMP, or a bad checksum";
  EXPECT_EQ(frame.size(), 60u);
  ASSERT_EQ(f->igmp.size(), 8u);
  EXPECT_EQ(f->igmp[0], type);
  EXPECT_EQ(f->igmp[1], 0);
  EXPECT_EQ(igmp_group(*f), group);
  const Ipv4 dst = type == 0x17 ? net::kAllRoutersGroup : group;
  EXPECT_EQ(f->ip.dst, dst);
  EXPECT_EQ(f->eth.dst, net::multicast_mac(dst));
  EXPECT_EQ(f->eth.src, kOurMac);
  EXPECT_EQ(f->ip.src, kOurIp);
  EXPECT_EQ(f->ip.ttl, 1);
  EXPECT_EQ(f->router_alert, type != 0x12);
}

TEST_F(Worker, AnswersIgmpv2QueriesWithV2ReportsPerGroup) {
  make(1);
  feed({igmp_query(0, 2)});
  PortStats s = dp_->port_stats(0);
  EXPECT_EQ(s.igmp_queries, 1u);
  EXPECT_EQ(s.igmp_version, 2);
  EXPECT_EQ(s.igmp_reports_sent, 3u);    // one per group
  EXPECT_EQ(s.igmp_compat_reports, 3u);
  EXPECT_EQ(s.igmp_ssm_as_asm, 1u);      // 232.5.5.5 from 10.9.0.1, reported as the group
  // Group-specific: that group only; not ours: nothing.
  feed({igmp_query(kGroupRtp, 2), igmp_query(ipv4(239, 9, 9, 9), 2)});
  // Leaving (stop()) in v2: a leave per group to 224.0.0.2.
  dp_->send_igmp_reports(false);
  s = dp_->port_stats(0);
  EXPECT_EQ(s.igmp_reports_sent, 3u + 1 + 3);
  EXPECT_EQ(rte_mempool_in_use_count(pool_), base_in_use_);
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 7u);
  expect_older_message(frames[0], 0x16, kGroupIn);
  expect_older_message(frames[1], 0x16, kGroupRtp);
  expect_older_message(frames[2], 0x16, kSsmGroup);
  expect_older_message(frames[3], 0x16, kGroupRtp);
  expect_older_message(frames[4], 0x17, kGroupIn);
  expect_older_message(frames[5], 0x17, kGroupRtp);
  expect_older_message(frames[6], 0x17, kSsmGroup);
}

TEST_F(Worker, AnswersIgmpv1QueriesWithV1ReportsAndNeverLeaves) {
  make(1);
  feed({igmp_query(0, 1)});
  EXPECT_EQ(dp_->port_stats(0).igmp_version, 1);
  // A v2 query meanwhile does not lift the v1 mode (RFC 3376 7.2.1: the oldest present wins).
  feed({igmp_query(kGroupIn, 2)});
  EXPECT_EQ(dp_->port_stats(0).igmp_version, 1);
  dp_->send_igmp_reports(false);  // IGMPv1 has no leave message
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 4u);
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 4u);
  expect_older_message(frames[0], 0x12, kGroupIn);
  expect_older_message(frames[1], 0x12, kGroupRtp);
  expect_older_message(frames[2], 0x12, kSsmGroup);
  expect_older_message(frames[3], 0x12, kGroupIn);
}

// An IGMPv1 query's group field is ignored (RFC 1112: "zeroed when sent, ignored when
// received"): one with something in it is a general query, answered for every group.
TEST_F(Worker, Igmpv1QueryWithAGroupInItIsAGeneralQuery) {
  make(1);
  ByteVec q = igmp_query(0, 1);
  const std::size_t igmp = q.size() - 8;
  q[igmp + 4] = 239;  // group field 239.1.1.2, checksum made again
  q[igmp + 5] = 1;
  q[igmp + 6] = 1;
  q[igmp + 7] = 2;
  q[igmp + 2] = q[igmp + 3] = 0;
  const std::uint16_t c = net::internet_checksum(net::Bytes(q).subspan(igmp));
  q[igmp + 2] = static_cast<std::uint8_t>(c >> 8);
  q[igmp + 3] = static_cast<std::uint8_t>(c);
  feed({q});
  EXPECT_EQ(dp_->port_stats(0).igmp_queries, 1u);
  EXPECT_EQ(dp_->port_stats(0).igmp_version, 1);
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 3u);
  expect_older_message(frames[0], 0x12, kGroupIn);
  expect_older_message(frames[1], 0x12, kGroupRtp);
  expect_older_message(frames[2], 0x12, kSsmGroup);
}

TEST_F(Worker, Igmpv3QueryKeepsV3Reports) {
  make(1);
  feed({igmp_query(0, 3)});
  const PortStats s = dp_->port_stats(0);
  EXPECT_EQ(s.igmp_version, 3);
  EXPECT_EQ(s.igmp_compat_reports, 0u);
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 1u);
  const auto f = parse_igmp_frame(frames[0]);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->igmp[0], 0x22);
  EXPECT_EQ(f->ip.dst, net::kIgmpv3ReportGroup);
  EXPECT_EQ(f->igmp[7], 3);  // records
}

// RFC 3376 8.12: the older querier is forgotten 2 x 125 s + its query's response time
// (10 s here) after its last query; v3 queries meanwhile are answered in v2.
TEST_F(Worker, CompatibilityModeExpiresBackToV3) {
  make(1);
  constexpr std::uint64_t kS = 1'000'000'000ULL;
  constexpr std::uint64_t t0 = 5 * kS;
  feed({igmp_query(0, 2)}, t0, t0);                        // v2 x3
  feed({igmp_query(kGroupIn, 3)}, t0 + 200 * kS, t0 + 200 * kS);    // still v2: x1
  EXPECT_EQ(dp_->port_stats(0).igmp_version, 2);
  feed({igmp_query(kGroupIn, 2)}, t0 + 250 * kS, t0 + 250 * kS);    // restarts the timer: v2 x1
  feed({igmp_query(kGroupIn, 3)}, t0 + 509 * kS, t0 + 509 * kS);    // 259 s after it: v2 x1
  EXPECT_EQ(dp_->port_stats(0).igmp_version, 2);
  feed({igmp_query(kGroupIn, 3)}, t0 + 510 * kS + 1, t0 + 511 * kS); // 260 s: v3
  EXPECT_EQ(dp_->port_stats(0).igmp_version, 3);
  dp_->send_igmp_reports(false);                                      // v3 leave
  EXPECT_EQ(dp_->port_stats(0).igmp_compat_reports, 6u);
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 8u);
  for (std::size_t i = 0; i < 6; ++i) {
    const auto f = parse_igmp_frame(frames[i]);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->igmp[0], 0x16) << i;
  }
  for (std::size_t i = 6; i < 8; ++i) {
    const auto f = parse_igmp_frame(frames[i]);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->igmp[0], 0x22) << i;
    EXPECT_EQ(f->ip.dst, net::kIgmpv3ReportGroup);
  }
  const auto leave = parse_igmp_frame(frames[7]);
  EXPECT_EQ(leave->igmp[8], static_cast<std::uint8_t>(net::IgmpRecordType::kChangeToInclude));
}

// A reload that drops one of two SSM sources of a group: IGMPv3 blocks that source; IGMPv2
// cannot name it and must not leave the group the other source still needs.
TEST_F(Worker, Igmpv2DoesNotLeaveAGroupStillJoinedWithAnotherSource) {
  InputConfig ssm2 = config_.channels[0].inputs[2];
  ssm2.name = "ssm2";
  ssm2.source = ipv4(10, 9, 0, 77);
  config_.channels[0].inputs.push_back(ssm2);
  make(1);
  feed({igmp_query(0, 2)});
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 3u);  // 232.5.5.5 once for both sources
  EXPECT_EQ(dp_->port_stats(0).igmp_ssm_as_asm, 2u);
  ApplianceConfig next = dp_->config();
  next.channels[0].inputs.pop_back();
  dp_->apply(next);
  const std::uint64_t after_reload = dp_->port_stats(0).igmp_reports_sent;
  next.channels[0].inputs.erase(next.channels[0].inputs.begin() + 2);  // the last source
  dp_->apply(next);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, after_reload + 1);
  EXPECT_EQ(rte_mempool_in_use_count(pool_), base_in_use_);
  const auto frames = transmitted();
  ASSERT_GE(frames.size(), 4u);
  for (std::size_t i = 3; i < frames.size(); ++i) {
    const auto f = parse_igmp_frame(frames[i]);
    ASSERT_TRUE(f);
    EXPECT_FALSE(f->igmp[0] == 0x17 && igmp_group(*f) == kSsmGroup && i + 1 < frames.size())
        << "left 232.5.5.5 while 10.9.0.1 still needed it";
  }
  expect_older_message(frames.back(), 0x17, kSsmGroup);
}

// Two inputs of `group` like `source_specific` (an input from a source): "from_peer" on port
// 5002 from that source, "any" on port 5003 from any source.
std::pair<InputConfig, InputConfig> mixed_group_inputs(const InputConfig& source_specific, Ipv4 group) {
  InputConfig from_peer = source_specific;
  from_peer.name = "from_peer";
  from_peer.address = group;
  from_peer.udp_port = 5002;
  InputConfig any = from_peer;
  any.name = "any";
  any.source = 0;
  any.udp_port = 5003;
  return {from_peer, any};
}

// IGMPv3 with a source-specific and an any-source join of one group (inputs on 239.7.7.7,
// port 5002 from 10.9.0.1 and port 5003 from anyone). Leaving the any-source join changes
// the group to the source still joined: TO_IN({10.9.0.1}); an empty TO_IN would tell the
// router to stop the group the other input still needs. Leaving the source while the
// any-source join stays changes nothing: no report.
TEST_F(Worker, Igmpv3LeavingOneJoinOfAGroupKeepsTheOther) {
  constexpr Ipv4 kMixed = ipv4(239, 7, 7, 7);
  const auto [from_peer, any] = mixed_group_inputs(config_.channels[0].inputs[2], kMixed);
  config_.channels[0].inputs.push_back(from_peer);
  config_.channels[0].inputs.push_back(any);
  make(1);
  const ApplianceConfig both = dp_->config();
  ApplianceConfig only_source = both;
  only_source.channels[0].inputs.pop_back();
  dp_->apply(only_source);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 1u);
  dp_->apply(both);  // the any-source join again: TO_EX({})
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 2u);
  ApplianceConfig only_any = both;
  only_any.channels[0].inputs.erase(only_any.channels[0].inputs.end() - 2);
  dp_->apply(only_any);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 2u) << "the source left while the group stays joined from any";
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 2u);
  const auto leave = parse_igmp_frame(frames[0]);
  ASSERT_TRUE(leave);
  ASSERT_EQ(leave->igmp[7], 1);  // one record
  EXPECT_EQ(leave->igmp[8], static_cast<std::uint8_t>(net::IgmpRecordType::kChangeToInclude));
  ASSERT_EQ(leave->igmp[11], 1) << "TO_IN with the source still joined, not an empty one";
  EXPECT_EQ(net::ipv4(leave->igmp[12], leave->igmp[13], leave->igmp[14], leave->igmp[15]), kMixed);
  EXPECT_EQ(net::ipv4(leave->igmp[16], leave->igmp[17], leave->igmp[18], leave->igmp[19]), kPeerIp);
  const auto join = parse_igmp_frame(frames[1]);
  ASSERT_TRUE(join);
  EXPECT_EQ(join->igmp[8], static_cast<std::uint8_t>(net::IgmpRecordType::kChangeToExclude));
}

// The answer to a query holds one current-state record per group (RFC 3376 5.2), of
// the interface's state for it (3.2): a group joined from any source and from a source is
// EXCLUDE({}) — IS_EX({}) alone, not IS_EX({}) and IS_IN({source}), two records of one group
// that contradict each other; a group received from two sources is one IS_IN of both, also
// when other groups' inputs lie between theirs.
TEST_F(Worker, Igmpv3QueryAnswerHasOneRecordPerGroup) {
  constexpr Ipv4 kMixed = ipv4(239, 7, 7, 7);
  constexpr Ipv4 kOther = ipv4(10, 9, 0, 77);
  const auto [from_peer, any] = mixed_group_inputs(config_.channels[0].inputs[2], kMixed);
  InputConfig between = config_.channels[0].inputs[0];
  between.name = "between";
  between.address = ipv4(239, 1, 1, 3);
  InputConfig ssm2 = config_.channels[0].inputs[2];
  ssm2.name = "ssm2";
  ssm2.source = kOther;
  for (const InputConfig& in : {from_peer, any, between, ssm2}) config_.channels[0].inputs.push_back(in);
  make(1);
  feed({igmp_query(0), igmp_query(kMixed)});  // and a group-specific query: that group's one record
  const std::vector<std::vector<IgmpGroupRecord>> want = {{{kRecIsEx, kGroupIn, {}},
                                                           {kRecIsEx, kGroupRtp, {}},
                                                           {kRecIsIn, kSsmGroup, {kPeerIp, kOther}},
                                                           {kRecIsEx, kMixed, {}},
                                                           {kRecIsEx, ipv4(239, 1, 1, 3), {}}},
                                                          {{kRecIsEx, kMixed, {}}}};
  EXPECT_EQ(igmpv3_reports(transmitted()), want);
}

// A reload's IGMP state change is sent at once and once more a random time within the
// Unsolicited Report Interval (RFC 3376 5.1: Robustness Variable 2, so one retransmission,
// 1 s): a router that missed the first report would otherwise not forward a new input's
// group until its next query or our 60-s report. The repeat carries the same records.
TEST_F(Worker, ReloadRepeatsItsIgmpStateChangeOnceWithinASecond) {
  make(1);
  move_first_input();
  const std::uint64_t first = dp_->port_stats(0).igmp_reports_sent;
  ASSERT_EQ(first, 2u);  // the leave, then the join
  constexpr std::uint64_t kT = 10'000'000'000ULL;
  dp_->poll_once(kT);  // the turn after the change draws the repeat's time, in (kT, kT + 1 s]
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, first);
  dp_->poll_once(kT + 1'000'000'000ULL);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 2 * first) << "the state change was not repeated";
  dp_->poll_once(kT + 3'000'000'000ULL);
  dp_->poll_once(kT + 30'000'000'000ULL);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 2 * first) << "repeated more than once";
  std::vector<IgmpFrame> reports;
  for (const auto& f : transmitted())
    if (auto r = parse_igmp_frame(f)) reports.push_back(std::move(*r));
  ASSERT_EQ(reports.size(), 4u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(reports[i + 2].igmp, reports[i].igmp) << "report " << i << " repeated with other records";
    EXPECT_NE(reports[i + 2].ip.identification, reports[i].ip.identification);
  }
  ASSERT_GE(reports[1].igmp.size(), 16u);
  EXPECT_EQ(reports[1].igmp[8], static_cast<std::uint8_t>(net::IgmpRecordType::kChangeToExclude));
  EXPECT_EQ(net::ipv4(reports[1].igmp[12], reports[1].igmp[13], reports[1].igmp[14], reports[1].igmp[15]), kMovedGroup);
}

// Two reloads before the repeat: the second's list of joins does not hold the first's, so
// the repeat reports every group joined as it stands (current-state records) besides both
// reloads' leaves; the first reload's join is not lost with its repeat.
TEST_F(Worker, IgmpRepeatAfterTwoQuickReloadsCoversTheFirstReloadsJoin) {
  make(1);
  ApplianceConfig next = move_first_input();
  next.channels[0].inputs[1].address = ipv4(239, 1, 1, 8);  // 239.1.1.2 -> 239.1.1.8
  dp_->apply(next);
  const std::uint64_t first = dp_->port_stats(0).igmp_reports_sent;
  ASSERT_EQ(first, 4u);
  dp_->poll_once(10'000'000'000ULL);
  dp_->poll_once(11'000'000'000ULL);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, first + 2);  // the leave, the current state
  std::vector<IgmpFrame> reports;
  for (const auto& f : transmitted())
    if (auto r = parse_igmp_frame(f)) reports.push_back(std::move(*r));
  ASSERT_EQ(reports.size(), 6u);
  const std::vector<IgmpGroupRecord> leaves = {{kRecToIn, kGroupIn, {}}, {kRecToIn, kGroupRtp, {}}};
  EXPECT_EQ(igmpv3_records(reports[4].igmp), leaves) << "both reloads' leaves, repeated";
  const std::vector<IgmpGroupRecord> state = igmpv3_records(reports[5].igmp);
  const auto has = [&](std::uint8_t type, Ipv4 group) {
    return std::any_of(state.begin(), state.end(), [&](const IgmpGroupRecord& r) { return r.type == type && r.group == group; });
  };
  EXPECT_TRUE(has(kRecIsEx, kMovedGroup)) << "the first reload's join is not in the repeat";
  EXPECT_TRUE(has(kRecIsEx, ipv4(239, 1, 1, 8)));
  EXPECT_TRUE(has(kRecIsIn, kSsmGroup));
  EXPECT_EQ(state.size(), 3u);
}

// A group-and-source-specific query is answered with IS_IN of the queried sources the
// group is received from (RFC 3376 5.2, the table of rule 3): those of its sources that are
// queried (INCLUDE(A): A*B), all the queried ones for an any-source join (EXCLUDE({}): B-{}),
// and nothing at all when that set is empty.
TEST_F(Worker, Igmpv3GroupAndSourceSpecificQueryIsAnsweredWithTheQueriedSourcesOnly) {
  constexpr Ipv4 kOther = ipv4(10, 9, 0, 77);
  constexpr Ipv4 kNotOurs = ipv4(10, 9, 0, 200);
  InputConfig ssm2 = config_.channels[0].inputs[2];
  ssm2.name = "ssm2";
  ssm2.source = kOther;
  config_.channels[0].inputs.push_back(ssm2);  // 232.5.5.5 from 10.9.0.1 and 10.9.0.77
  make(1);
  feed({igmp_query(kSsmGroup, 3, 100, {kOther, kNotOurs}),   // IS_IN({10.9.0.77})
        igmp_query(kSsmGroup, 3, 100, {kNotOurs}),           // none of ours: no answer
        igmp_query(kGroupIn, 3, 100, {kNotOurs, kOther})});  // any source: IS_IN of both
  EXPECT_EQ(dp_->port_stats(0).igmp_queries, 3u);
  const std::vector<std::vector<IgmpGroupRecord>> want = {{{kRecIsIn, kSsmGroup, {kOther}}},
                                                          {{kRecIsIn, kGroupIn, {kNotOurs, kOther}}}};
  EXPECT_EQ(igmpv3_reports(transmitted()), want);
}

// A group record that fits in one report is sent in one (RFC 3376 4.2.16: only a record
// too long for a whole message is split): leaving the any-source join of a group also
// received from 70 sources is one TO_IN of the 70. Two TO_IN records with part of them
// each tell a router that tracks its hosts that this one wants the second part only.
TEST_F(Worker, Igmpv3ChangeToIncludeOfManySourcesIsOneRecord) {
  constexpr Ipv4 kMixed = ipv4(239, 7, 7, 7);
  InputConfig any = config_.channels[0].inputs[0];
  any.name = "any";
  any.address = kMixed;
  any.udp_port = 5003;
  config_.channels[0].inputs.push_back(any);
  std::vector<Ipv4> sources;
  for (int i = 1; i <= 70; ++i) {
    InputConfig in = config_.channels[0].inputs[2];
    in.name = std::to_string(i);  // "s1".. trips GCC 12 -Wrestrict here
    in.address = kMixed;
    in.udp_port = 5002;
    in.source = ipv4(10, 9, 1, static_cast<std::uint8_t>(i));
    sources.push_back(in.source);
    config_.channels[0].inputs.push_back(in);
  }
  make(1);
  ApplianceConfig next = dp_->config();
  next.channels[0].inputs.erase(next.channels[0].inputs.begin() + 4);  // the any-source join
  dp_->apply(next);
  const std::vector<std::vector<IgmpGroupRecord>> want = {{{kRecToIn, kMixed, sources}}};
  EXPECT_EQ(igmpv3_reports(transmitted()), want);
}

// Reports fill frames of up to 1500 bytes of IP; a record that does not fit in what is left
// of one starts the next whole, and only a record too long for any one frame is split (RFC
// 3376 4.2.16: into records of its type, each with part of the sources): the answer to a
// general query with the three groups of the fixture and one received from 400 sources.
TEST_F(Worker, Igmpv3ReportsFillFramesAndSplitOnlyARecordTooLongForOne) {
  constexpr Ipv4 kMany = ipv4(232, 7, 7, 7);
  std::vector<Ipv4> sources;
  for (int i = 0; i < 400; ++i) {
    InputConfig in = config_.channels[0].inputs[2];
    in.name = std::to_string(i);
    in.address = kMany;
    in.udp_port = 5002;
    in.source = ipv4(10, 9, static_cast<std::uint8_t>(1 + i / 200), static_cast<std::uint8_t>(1 + i % 200));
    sources.push_back(in.source);
    config_.channels[0].inputs.push_back(in);
  }
  make(1);
  feed({igmp_query(0)});
  std::vector<std::vector<IgmpGroupRecord>> reports;
  for (const auto& frame : transmitted()) {
    const auto f = parse_igmp_frame(frame);
    ASSERT_TRUE(f);
    EXPECT_LE(f->ip.total_size, 1500u);
    reports.push_back(igmpv3_records(f->igmp));
  }
  const auto part = [&](std::size_t from, std::size_t to) {
    return std::vector<Ipv4>(sources.begin() + static_cast<std::ptrdiff_t>(from),
                             sources.begin() + static_cast<std::ptrdiff_t>(to));
  };
  // 24 + 8 + 8 + 4 x 365 = 1500.
  const std::vector<std::vector<IgmpGroupRecord>> want = {
      {{kRecIsEx, kGroupIn, {}}, {kRecIsEx, kGroupRtp, {}}, {kRecIsIn, kSsmGroup, {kPeerIp}}},
      {{kRecIsIn, kMany, part(0, 365)}},
      {{kRecIsIn, kMany, part(365, 400)}}};
  EXPECT_EQ(reports, want);
}

// Whenever a host changes its compatibility mode it cancels its pending retransmissions
// (RFC 3376 7.2.1): an IGMPv2 query between a reload and the repeat of its IGMPv3 state
// change is answered in v2 (every group), and the change is not repeated after it.
TEST_F(Worker, IgmpCompatibilityModeChangeCancelsThePendingRepeat) {
  make(1);
  ApplianceConfig next = move_first_input();
  ASSERT_EQ(dp_->port_stats(0).igmp_reports_sent, 2u);
  constexpr std::uint64_t kT = 10'000'000'000ULL;
  feed({igmp_query(0, 2)}, kT, kT);  // v2 from now: a report per group
  EXPECT_EQ(dp_->port_stats(0).igmp_version, 2);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 2u + 3);
  dp_->poll_once(kT + 1'000'000'000ULL);
  dp_->poll_once(kT + 2'000'000'000ULL);
  EXPECT_EQ(dp_->port_stats(0).igmp_reports_sent, 2u + 3) << "the v3 change was repeated after the switch to v2";
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 5u);
  expect_older_message(frames[2], 0x16, kMovedGroup);
  expect_older_message(frames[3], 0x16, kGroupRtp);
  expect_older_message(frames[4], 0x16, kSsmGroup);
}

// A reload that changes no group (here an output's TTL) after one that did, before the
// repeat: the first reload's change is still repeated (RFC 3376 5.1), though the plan now
// running has no leaves or joins of its own.
TEST_F(Worker, IgmpRepeatSurvivesAFollowingReloadThatChangesNoGroup) {
  make(1);
  ApplianceConfig next = move_first_input();
  next.channels[0].outputs[0].ttl = 9;
  dp_->apply(next);
  ASSERT_EQ(dp_->port_stats(0).igmp_reports_sent, 2u);
  dp_->poll_once(10'000'000'000ULL);
  dp_->poll_once(11'000'000'000ULL);
  const auto reports = igmpv3_reports(transmitted());
  ASSERT_EQ(reports.size(), 4u) << "the state change was not repeated";
  EXPECT_EQ(reports[2], reports[0]) << "the leave, repeated";
  EXPECT_NE(std::find(reports[3].begin(), reports[3].end(), IgmpGroupRecord{kRecIsEx, kMovedGroup, {}}), reports[3].end())
      << "the join is not in the repeat";
}

// Two reloads before the repeat, each leaving a group: the repeat leaves both (RFC 3376 5.1:
// a further change merges its records with those still to be retransmitted, it does not
// drop them); a group left and joined again in between is not left.
TEST_F(Worker, IgmpRepeatAfterTwoQuickReloadsCoversTheFirstReloadsLeave) {
  make(1);
  ApplianceConfig next = move_first_input();                 // leaves 239.1.1.1
  next.channels[0].inputs[1].address = ipv4(239, 1, 1, 8);  // leaves 239.1.1.2
  dp_->apply(next);
  ASSERT_EQ(dp_->port_stats(0).igmp_reports_sent, 4u);
  dp_->poll_once(10'000'000'000ULL);
  dp_->poll_once(11'000'000'000ULL);
  std::vector<std::string> left;  // by the repeat
  const auto reports = igmpv3_reports(transmitted());
  for (std::size_t i = 4; i < reports.size(); ++i)
    for (const IgmpGroupRecord& r : reports[i])
      if (r.type == kRecToIn) left.push_back(net::ipv4_text(r.group));
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"239.1.1.1", "239.1.1.2"})) << "a reload's leave was not repeated";
}

// A reload that only moves a channel's output (destination, port, TTL, DSCP) keeps the
// channel's pipeline and inputs: the same pipeline object gets the next datagrams, the
// input's counters go on, and the frames after the reload carry the new headers. A reload
// that changes the output's pacing restarts the channel (a new pipeline).
TEST_F(Worker, AReloadThatOnlyMovesAnOutputKeepsThePipeline) {
  make(1);
  std::uint32_t next = 0;
  std::vector<ByteVec> frames;
  for (int i = 0; i < 3; ++i, next += 7) frames.push_back(udp_frame(kGroupIn, 5000, ts_payload(next, 7)));
  feed(frames);
  const ChannelPipeline* before = &dp_->pipeline(0);
  const Ipv4 moved_to = ipv4(239, 9, 9, 9);
  ApplianceConfig moved = dp_->config();
  moved.channels[0].outputs[0].address = moved_to;
  moved.channels[0].outputs[0].udp_port = 5010;
  moved.channels[0].outputs[0].ttl = 9;
  moved.channels[0].outputs[0].dscp = 46;
  const ConfigDiff d = dp_->apply(moved);
  EXPECT_EQ(d.channels_updated, std::vector<std::string>{"one"});
  EXPECT_TRUE(d.channels_changed.empty());
  frames.clear();
  for (int i = 0; i < 2; ++i, next += 7) frames.push_back(udp_frame(kGroupIn, 5000, ts_payload(next, 7)));
  feed(frames);
  EXPECT_EQ(&dp_->pipeline(0), before) << "the pipeline was rebuilt";
  EXPECT_EQ(recorder().pushed.size(), 5u * 7);
  EXPECT_EQ(dp_->input_stats(0, 0).datagrams, 5u) << "the input's counters started again";
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 5u) << "the moved output's counters started again";
  EXPECT_EQ(dp_->output_stats(0, 0).packets, 5u * 7);

  ApplianceConfig repaced = moved;
  repaced.channels[0].outputs[0].pacing = PacingMode::kPassthrough;
  const ConfigDiff r = dp_->apply(repaced);
  EXPECT_EQ(r.channels_changed, std::vector<std::string>{"one"});
  feed({udp_frame(kGroupIn, 5000, ts_payload(next, 7))});
  EXPECT_NE(&dp_->pipeline(0), before) << "a pacing change must restart the channel";
  EXPECT_EQ(recorder().pushed.size(), 7u);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 1u) << "a restarted channel's outputs count afresh";

  const auto sent = transmitted();
  std::vector<Parsed> out;
  for (const ByteVec& f : sent)
    if (auto p = parse_udp_frame(f)) out.push_back(*p);
  ASSERT_EQ(out.size(), 6u);
  for (std::size_t i = 0; i < out.size(); ++i) {
    SCOPED_TRACE(i);
    const bool after = i >= 3;
    EXPECT_EQ(out[i].ip.dst, after ? moved_to : kGroupOut);
    EXPECT_EQ(out[i].eth.dst, net::multicast_mac(after ? moved_to : kGroupOut));
    EXPECT_EQ(out[i].udp.dst_port, after ? 5010 : 5000);
    EXPECT_EQ(out[i].ip.ttl, after ? 9 : 5);
    EXPECT_EQ(out[i].ip.dscp, after ? 46 : 34);
    const ByteVec want = ts_payload(static_cast<std::uint32_t>(i * 7), 7);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), out[i].payload.begin()));
  }
}

// A reload that renames a channel (name, provider, LCN), also moving its output, keeps its
// pipeline: the worker describes the new names to it once, before the next packet, and the
// packets go on. A reload of only the priority keeps it too, with nothing to describe.
TEST_F(Worker, AReloadThatRenamesAChannelKeepsItRunning) {
  make(1);
  std::uint32_t next = 0;
  feed({udp_frame(kGroupIn, 5000, ts_payload(next, 7))});
  next += 7;
  const ChannelPipeline* before = &dp_->pipeline(0);
  ApplianceConfig renamed = dp_->config();
  renamed.channels[0].name = "Renamed";
  renamed.channels[0].provider = "Operator";
  renamed.channels[0].lcn = 5;
  renamed.channels[0].outputs[0].ttl = 9;
  const ConfigDiff d = dp_->apply(renamed);
  EXPECT_EQ(d.channels_updated, std::vector<std::string>{"one"});
  EXPECT_TRUE(d.channels_changed.empty());
  feed({udp_frame(kGroupIn, 5000, ts_payload(next, 7))});
  next += 7;
  ASSERT_EQ(&dp_->pipeline(0), before) << "the pipeline was rebuilt";
  EXPECT_EQ(recorder().described, std::vector<std::string>{"Renamed/Operator/5"});
  EXPECT_EQ(recorder().pushed_when_described, std::vector<std::size_t>{7});
  EXPECT_EQ(recorder().pushed.size(), 14u);

  ApplianceConfig reprioritised = renamed;
  reprioritised.channels[0].priority = 3;
  const ConfigDiff p = dp_->apply(reprioritised);
  EXPECT_EQ(p.channels_updated, std::vector<std::string>{"one"});
  feed({udp_frame(kGroupIn, 5000, ts_payload(next, 7))});
  EXPECT_EQ(&dp_->pipeline(0), before);
  EXPECT_EQ(recorder().described.size(), 1u) << "nothing to rename";
  EXPECT_EQ(recorder().pushed.size(), 21u);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 3u);
}

// Two outputs on one schedule swap places (a readdress): each keeps its own counters, as
// the API names them (by destination), not those of the output now at its place.
TEST_F(Worker, SwappedOutputsKeepTheirOwnCounters) {
  make(2);
  std::vector<ByteVec> frames;
  for (std::uint32_t i = 0; i < 3; ++i) frames.push_back(udp_frame(kGroupIn, 5000, ts_payload(i * 7, 7)));
  feed(frames);
  const OutputStats udp = dp_->output_stats(0, 0);
  const OutputStats rtp = dp_->output_stats(0, 1);
  ASSERT_EQ(udp.datagrams, 3u);
  ASSERT_NE(udp.bytes, rtp.bytes);  // the RTP header
  ApplianceConfig swapped = dp_->config();
  std::swap(swapped.channels[0].outputs[0], swapped.channels[0].outputs[1]);
  const ConfigDiff d = dp_->apply(swapped);
  EXPECT_EQ(d.channels_updated, std::vector<std::string>{"one"});
  feed({});
  EXPECT_EQ(dp_->output_stats(0, 1).bytes, udp.bytes);
  EXPECT_EQ(dp_->output_stats(0, 0).bytes, rtp.bytes);
  EXPECT_EQ(dp_->output_stats(0, 1).datagrams, 3u);
}

// A reload that only lists the channels in another order changes no channel, but the data
// plane's channels are known by their place in the configuration (input_stats(c, i),
// output_stats(c, o), pipeline(c)): the reload must take the new order, or every view
// indexed by it reads another channel's counters ("one"'s datagram shown as "two"'s).
TEST_F(Worker, AReloadThatOnlyReordersChannelsTakesTheNewOrder) {
  ChannelConfig two = config_.channels[0];
  two.id = "two";
  two.inputs = {config_.channels[0].inputs[0]};
  two.inputs[0].address = ipv4(239, 1, 1, 3);
  two.outputs = {config_.channels[0].outputs[0]};
  two.outputs[0].address = ipv4(239, 2, 2, 3);
  config_.channels.push_back(two);
  make(1);
  feed({udp_frame(kGroupIn, 5000, ts_payload(0, 7))});
  ASSERT_EQ(dp_->input_stats(0, 0).datagrams, 1u);
  const ChannelPipeline* one = &dp_->pipeline(0);
  ApplianceConfig reordered = dp_->config();
  std::swap(reordered.channels[0], reordered.channels[1]);
  (void)dp_->apply(reordered);
  EXPECT_EQ(dp_->config().channels[0].id, "two");
  EXPECT_EQ(&dp_->pipeline(1), one) << "\"one\" is the second channel now";
  EXPECT_EQ(dp_->input_stats(1, 0).datagrams, 1u) << "\"one\"'s count";
  EXPECT_EQ(dp_->input_stats(0, 0).datagrams, 0u) << "\"two\"'s count";
  feed({udp_frame(kGroupIn, 5000, ts_payload(7, 7))});
  EXPECT_EQ(dp_->input_stats(1, 0).datagrams, 2u);
  EXPECT_EQ(dp_->output_stats(1, 0).datagrams, 2u) << "\"one\"'s output";
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 0u) << "\"two\"'s output";
}

TEST_F(Worker, DropsWithReasonsAndNeverLeaks) {
  make(1);
  ByteVec bad_csum = udp_frame(kGroupIn, 5000, ts_payload(0, 7));
  bad_csum[14 + 8] ^= 1;  // TTL changed, checksum stale
  ByteVec frag = udp_frame(kGroupIn, 5000, ts_payload(0, 7));
  frag[14 + 6] = 0x20;  // MF; checksum now wrong too, fix it
  frag[14 + 10] = frag[14 + 11] = 0;
  const std::uint16_t c = net::internet_checksum(net::Bytes(frag).subspan(14, 20));
  frag[14 + 10] = static_cast<std::uint8_t>(c >> 8);
  frag[14 + 11] = static_cast<std::uint8_t>(c);
  ByteVec tcp = udp_frame(kGroupIn, 5000, ts_payload(0, 1));
  tcp[14 + 9] = 6;
  tcp[14 + 10] = tcp[14 + 11] = 0;
  const std::uint16_t c2 = net::internet_checksum(net::Bytes(tcp).subspan(14, 20));
  tcp[14 + 10] = static_cast<std::uint8_t>(c2 >> 8);
  tcp[14 + 11] = static_cast<std::uint8_t>(c2);
  ByteVec ipv6 = udp_frame(kGroupIn, 5000, ts_payload(0, 1));
  ipv6[12] = 0x86;
  ipv6[13] = 0xdd;
  ByteVec bad_sync = ts_payload(0, 7);
  bad_sync[188 * 3] = 0x48;
  bad_sync[188 * 5] = 0x00;  // two: not TS (one alone is a damaged packet, see below)
  ByteVec bad_rtp = rtp_payload(1, 0, 7);
  bad_rtp[0] = 0x40;  // version 1
  feed({bad_csum, frag, tcp, ipv6, ByteVec(10, 0xAB),
        udp_frame(kGroupIn, 5001, ts_payload(0, 7)),          // unknown port
        udp_frame(kGroupIn, 5000, ByteVec(100, 0x47)),        // not 188-sized
        udp_frame(kGroupIn, 5000, ByteVec{}),                 // empty
        udp_frame(kGroupIn, 5000, bad_sync),
        udp_frame(kGroupIn, 5000, ts_payload(0, 7), kPeerIp, 12),  // tagged, port untagged
        udp_frame(kGroupRtp, 5000, bad_rtp)});
  const PortStats s = dp_->port_stats(0);
  EXPECT_EQ(s.drop(DropReason::kBadIpv4), 1u);
  EXPECT_EQ(s.drop(DropReason::kFragment), 1u);
  EXPECT_EQ(s.drop(DropReason::kOtherProtocol), 1u);
  EXPECT_EQ(s.drop(DropReason::kOtherEtherType), 1u);
  EXPECT_EQ(s.drop(DropReason::kMalformed), 1u);
  EXPECT_EQ(s.drop(DropReason::kUnknownFlow), 1u);
  EXPECT_EQ(s.drop(DropReason::kTsSize), 2u);
  EXPECT_EQ(s.drop(DropReason::kTsSync), 1u);
  EXPECT_EQ(s.drop(DropReason::kWrongVlan), 1u);
  EXPECT_EQ(s.drop(DropReason::kBadRtp), 1u);
  EXPECT_EQ(s.rx_packets, 11u);
  EXPECT_EQ(s.tx_packets, 0u);
  EXPECT_TRUE(recorder().pushed.empty());

  // Random frames, some with a valid Ethernet/IPv4/UDP prefix, in odd burst sizes.
  std::mt19937 rng(99);
  for (const std::size_t burst : {1u, 3u, 4u, 32u, 33u, 77u}) {
    std::vector<ByteVec> frames;
    for (std::size_t i = 0; i < burst; ++i) {
      ByteVec f = (rng() % 2) != 0 ? udp_frame(kGroupIn, 5000, ts_payload(0, rng() % 8)) : ByteVec(14 + rng() % 200);
      const std::size_t flips = rng() % 6;
      for (std::size_t k = 0; k < flips && !f.empty(); ++k) f[rng() % f.size()] = static_cast<std::uint8_t>(rng());
      if (f.empty()) f.resize(1);
      frames.push_back(f);
    }
    feed(frames);
  }
}

TEST_F(Worker, StartJoinsStopLeaves) {
  make(1);
  // EAL lcores "0,1": the main lcore and the one worker, none idle.
  EXPECT_EQ(dp_->worker_lcore(), 1u);
  EXPECT_EQ(dp_->idle_lcores(), 0u);
  const auto ran = run_worker(std::chrono::milliseconds(200));
  // The worker's clock got to its 1-s current-state report before the stop only if the run
  // took a second of wall time (200 ms asked; a loaded machine stretches it).
  const bool second_passed = ran >= std::chrono::seconds(1);
  // No traffic: the loop turned, none of its turns moved a packet (the join went before
  // the first turn; at most the 1-s report refresh, should the machine stall that long).
  const WorkerStats w = dp_->worker_stats();
  EXPECT_GT(w.turns, 0u);
  EXPECT_GT(w.poll_ns, 0u);
  EXPECT_LE(w.busy_turns, 1u);
  EXPECT_EQ(rte_mempool_in_use_count(pool_), base_in_use_);
  const PortStats s = dp_->port_stats(0);
  const auto frames = transmitted();
  // Join at start, leave at stop; in between only the 1-s refresh, and only once the
  // worker's second was up (the next report is due 60 s on).
  ASSERT_GE(frames.size(), 2u);
  const std::size_t refreshes = frames.size() - 2;
  if (second_passed) {
    EXPECT_LE(refreshes, 1u);
  } else {
    EXPECT_EQ(refreshes, 0u) << "a report besides the join and the leave in a "
                             << std::chrono::duration_cast<std::chrono::milliseconds>(ran).count() << " ms run";
  }
  EXPECT_EQ(s.igmp_reports_sent, frames.size());
  net::Bytes igmp;
  ASSERT_TRUE(net::parse_ipv4(net::Bytes(frames[0]).subspan(14), &igmp));
  EXPECT_EQ(igmp[8], static_cast<std::uint8_t>(net::IgmpRecordType::kChangeToExclude));
  if (refreshes == 1) {
    ASSERT_TRUE(net::parse_ipv4(net::Bytes(frames[1]).subspan(14), &igmp));
    EXPECT_EQ(igmp[8], static_cast<std::uint8_t>(net::IgmpRecordType::kModeIsExclude));
  }
  ASSERT_TRUE(net::parse_ipv4(net::Bytes(frames.back()).subspan(14), &igmp));
  EXPECT_EQ(igmp[8], static_cast<std::uint8_t>(net::IgmpRecordType::kChangeToInclude));
  EXPECT_EQ(igmp[24], static_cast<std::uint8_t>(net::IgmpRecordType::kBlockOldSources));
}

// One datagram in, one out: a stand-in that sends each pushed datagram on at the next poll.
class Relay final : public ChannelPipeline {
 public:
  void push(std::size_t, std::span<const TsPacket> packets, std::uint64_t) override {
    n_ = std::min(packets.size(), held_.size());
    std::copy_n(packets.begin(), n_, held_.begin());
  }
  void poll(std::uint64_t, DatagramSink& sink) override {
    if (n_ != 0) sink.send(0, std::span<const TsPacket>(held_.data(), n_));
    n_ = 0;
  }

 private:
  std::array<TsPacket, 7> held_{};
  std::size_t n_ = 0;
};

// Cost of the worker's code per datagram (RX parse, classify, copy, push; TX build and
// burst) with net_null as the port, so the PMD costs nearly nothing. Prints the figure;
// asserts only that nothing leaked and everything went through.
TEST_F(Worker, MeasureCostPerDatagram) {
  static int n_null = 0;
  config_.ports[0].device = "net_null" + std::to_string(n_null++);
  config_.channels[0].outputs.resize(1);
  dp_ = std::make_unique<Dataplane>(config_, [](const ChannelConfig&) { return std::make_unique<Relay>(); });
  pool_ = dp_->mempool(0);
  base_in_use_ = rte_mempool_in_use_count(pool_);
  const ByteVec frame = udp_frame(kGroupIn, 5000, ts_payload(0, 7));
  constexpr int kRounds = 20000;
  std::uint64_t busy_ns = 0;
  for (int r = 0; r < kRounds; ++r) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    ASSERT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame.size())), frame.data(), frame.size());
    const auto t0 = std::chrono::steady_clock::now();
    dp_->process_burst(0, &m, 1, 0);
    dp_->poll_once(0);
    busy_ns += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  }
  EXPECT_EQ(rte_mempool_in_use_count(pool_), base_in_use_);
  EXPECT_EQ(dp_->input_stats(0, 0).datagrams, static_cast<std::uint64_t>(kRounds));
  EXPECT_EQ(dp_->port_stats(0).tx_packets, static_cast<std::uint64_t>(kRounds));
  std::printf("worker: %.0f ns per 7-packet datagram in and out (bursts of 1, net_null)\n",
              static_cast<double>(busy_ns) / kRounds);
}

// Per-output counters: what each output's TX burst took (datagrams, TS packets, frame
// bytes), checked against the frames in the pcap; a unicast output without an ARP
// resolution counts every datagram as dropped.
TEST_F(Worker, OutputCountersMatchWhatWasTransmitted) {
  OutputConfig unicast = config_.channels[0].outputs[0];
  unicast.address = ipv4(10, 9, 0, 77);
  unicast.udp_port = 7000;
  config_.channels[0].outputs.push_back(unicast);
  make(3);
  for (std::size_t o = 0; o < 3; ++o) {
    const OutputStats s = dp_->output_stats(0, o);
    EXPECT_EQ(s.datagrams + s.packets + s.bytes + s.dropped_datagrams + s.dropped_packets, 0u);
  }
  // Datagrams of 5 packets in: the stand-in regroups them into 7s (and a short tail).
  std::uint32_t next = 0;
  std::uint64_t expect_datagrams = 0;
  for (const std::size_t burst : {1u, 3u, 4u, 32u, 33u}) {
    std::vector<ByteVec> frames;
    for (std::size_t i = 0; i < burst; ++i, next += 5) frames.push_back(udp_frame(kGroupIn, 5000, ts_payload(next, 5)));
    feed(frames);
    expect_datagrams += (burst * 5 + 6) / 7;  // the stand-in flushes a short one at each poll
  }
  const OutputStats udp = dp_->output_stats(0, 0);
  const OutputStats rtp = dp_->output_stats(0, 1);
  const OutputStats lost = dp_->output_stats(0, 2);
  EXPECT_THROW((void)dp_->output_stats(0, 3), std::out_of_range);
  EXPECT_THROW((void)dp_->output_stats(1, 0), std::out_of_range);
  EXPECT_EQ(udp.packets, next);
  EXPECT_EQ(rtp.packets, next);
  EXPECT_EQ(udp.dropped_datagrams + rtp.dropped_datagrams, 0u);
  EXPECT_EQ(lost.datagrams, 0u);
  EXPECT_EQ(lost.dropped_datagrams, udp.datagrams);
  EXPECT_EQ(lost.dropped_packets, udp.packets);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTxNoRoute), lost.dropped_datagrams);
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 1u);  // for 10.9.0.77, once within the second
  EXPECT_EQ(dp_->port_stats(0).tx_bytes, udp.bytes + rtp.bytes + 60);
  // A stand-in has no input snapshots or pacer.
  EXPECT_FALSE(dp_->input_snapshot(0, 0).published);
  EXPECT_EQ(dp_->pacing_lateness(0).count(), 0u);

  const auto frames = transmitted();
  std::array<std::uint64_t, 2> datagrams{}, packets{}, bytes{};
  for (const ByteVec& f : frames) {
    if (net::parse_ethernet(f)->ether_type == net::kEtherTypeArp) continue;  // asking for 10.9.0.77
    const auto p = parse_udp_frame(f);
    ASSERT_TRUE(p);
    ASSERT_NE(p->ip.dst, ipv4(10, 9, 0, 77));
    const std::size_t o = p->udp.dst_port == 5000 ? 0 : 1;
    ++datagrams[o];
    packets[o] += (p->payload.size() - (o == 1 ? net::kRtpHeaderSize : 0)) / mpegts::kPacketSize;
    bytes[o] += f.size();
  }
  EXPECT_EQ(udp.datagrams, datagrams[0]);
  EXPECT_EQ(udp.packets, packets[0]);
  EXPECT_EQ(udp.bytes, bytes[0]);
  EXPECT_EQ(rtp.datagrams, datagrams[1]);
  EXPECT_EQ(rtp.packets, packets[1]);
  EXPECT_EQ(rtp.bytes, bytes[1]);
  EXPECT_EQ(udp.datagrams, expect_datagrams);
}

ByteVec arp_frame(std::uint16_t op, const Mac& sender_mac, Ipv4 sender_ip, Ipv4 target_ip,
                  const Mac& dst = kOurMac) {
  ByteVec f(60, 0);
  net::write_ethernet(f, dst, sender_mac, 0, net::kEtherTypeArp);
  net::write_arp(std::span<std::uint8_t>(f).subspan(14),
                 net::Arp{op, sender_mac, sender_ip, op == net::kArpReply ? kOurMac : Mac{}, target_ip});
  return f;
}

// An ARP request of ours for `target` (broadcast unless `dst`), or a failure message.
::testing::AssertionResult is_arp_request_for(const ByteVec& f, Ipv4 target, const Mac& dst = net::kBroadcastMac) {
  const auto e = net::parse_ethernet(f);
  if (!e || e->ether_type != net::kEtherTypeArp) return ::testing::AssertionFailure() << "not ARP";
  if (e->dst != dst || e->src != kOurMac) return ::testing::AssertionFailure() << "Ethernet addresses";
  if (f.size() != 60) return ::testing::AssertionFailure() << "size " << f.size();
  const auto a = net::parse_arp(net::Bytes(f).subspan(14));
  if (!a || a->op != net::kArpRequest) return ::testing::AssertionFailure() << "not a request";
  if (a->sender_mac != kOurMac || a->sender_ip != kOurIp || a->target_mac != Mac{} || a->target_ip != target)
    return ::testing::AssertionFailure() << "ARP fields, target " << a->target_ip;
  return ::testing::AssertionSuccess();
}

constexpr Mac kPeerMac2 = {0x02, 0x74, 0x63, 0x00, 0x00, 0x11};
constexpr std::uint64_t kSecond = 1'000'000'000ULL;

// A unicast output inside the port's subnet: dropped (tx_no_route) and asked for by ARP
// (once a second) until a reply teaches the MAC; then sent to that MAC. A request from
// the host to us teaches a new MAC; refreshed after 60 s, forgotten after 90 s unanswered.
TEST_F(Worker, UnicastOutputResolvesItsNextHopByArp) {
  config_.channels[0].outputs[0].address = kPeerIp;
  config_.channels[0].outputs[0].udp_port = 7000;
  make(1);
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 0u);
  feed({udp_frame(kGroupIn, 5000, ts_payload(0, 7))});  // poll at 2 ms: a request, the datagram dropped
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 1u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTxNoRoute), 1u);
  EXPECT_EQ(dp_->output_stats(0, 0).dropped_datagrams, 1u);
  feed({udp_frame(kGroupIn, 5000, ts_payload(7, 7))}, 500'000'000, 900'000'000);  // within the second: no new request
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 1u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTxNoRoute), 2u);
  dp_->poll_once(kSecond + 2'000'000);  // a second later: asked again
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 2u);
  // Replies that teach nothing: from a host that is no next hop, to another address.
  feed({arp_frame(net::kArpReply, kPeerMac2, ipv4(10, 9, 0, 50), kOurIp),
        arp_frame(net::kArpReply, kPeerMac2, kPeerIp, ipv4(10, 9, 0, 3))},
       kSecond + 3'000'000, kSecond + 4'000'000);
  EXPECT_EQ(dp_->port_stats(0).arp_learnt, 0u);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 0u);
  // The reply: learnt, and the next datagram goes out to that MAC.
  feed({arp_frame(net::kArpReply, kPeerMac, kPeerIp, kOurIp), udp_frame(kGroupIn, 5000, ts_payload(14, 7))},
       2 * kSecond, 2 * kSecond + 1);
  EXPECT_EQ(dp_->port_stats(0).arp_learnt, 1u);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 1u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTxNoRoute), 2u);
  // Resolved: no further requests for a minute.
  dp_->poll_once(30 * kSecond);
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 2u);
  // The host asks for us from a new MAC: answered, and its new MAC used.
  feed({arp_frame(net::kArpRequest, kPeerMac2, kPeerIp, kOurIp, net::kBroadcastMac),
        udp_frame(kGroupIn, 5000, ts_payload(21, 7))},
       40 * kSecond, 40 * kSecond + 1);
  EXPECT_EQ(dp_->port_stats(0).arp_learnt, 2u);
  EXPECT_EQ(dp_->port_stats(0).arp_replies, 1u);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 2u);
  // 60 s after the last word from it: a refresh (unicast), the MAC still in use meanwhile.
  feed({udp_frame(kGroupIn, 5000, ts_payload(28, 7))}, 100 * kSecond, 100 * kSecond + 1);
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 3u);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 3u);
  dp_->poll_once(100 * kSecond + 2);  // still within the retry second
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 3u);
  // Unanswered for 90 s: forgotten, dropped again, asked by broadcast.
  feed({udp_frame(kGroupIn, 5000, ts_payload(35, 7))}, 130 * kSecond, 130 * kSecond + 1);
  EXPECT_EQ(dp_->port_stats(0).arp_expired, 1u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTxNoRoute), 3u);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 3u);
  EXPECT_EQ(dp_->output_stats(0, 0).dropped_datagrams, 3u);
  const std::uint64_t requests = dp_->port_stats(0).arp_requests_sent;
  EXPECT_EQ(requests, 4u);

  const auto frames = transmitted();
  // request, request, [reply to the host's request], datagrams and the refresh in order.
  ASSERT_EQ(frames.size(), 4u + 1 + 3);
  EXPECT_TRUE(is_arp_request_for(frames[0], kPeerIp));
  EXPECT_TRUE(is_arp_request_for(frames[1], kPeerIp));
  std::vector<Mac> datagram_macs;
  std::size_t refreshes = 0, broadcasts = 0, replies = 0;
  for (std::size_t i = 2; i < frames.size(); ++i) {
    const auto e = net::parse_ethernet(frames[i]);
    ASSERT_TRUE(e);
    if (e->ether_type == net::kEtherTypeArp) {
      const auto a = net::parse_arp(net::Bytes(frames[i]).subspan(14));
      ASSERT_TRUE(a);
      if (a->op == net::kArpReply) {
        ++replies;
        EXPECT_EQ(e->dst, kPeerMac2);
      } else if (e->dst == net::kBroadcastMac) {
        ++broadcasts;
        EXPECT_TRUE(is_arp_request_for(frames[i], kPeerIp));
      } else {
        ++refreshes;
        EXPECT_TRUE(is_arp_request_for(frames[i], kPeerIp, kPeerMac2));
      }
      continue;
    }
    const auto p = parse_udp_frame(frames[i]);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->eth.src, kOurMac);
    EXPECT_EQ(p->ip.dst, kPeerIp);
    EXPECT_EQ(p->ip.src, kOurIp);
    EXPECT_EQ(p->udp.dst_port, 7000);
    datagram_macs.push_back(p->eth.dst);
  }
  EXPECT_EQ(replies, 1u);
  EXPECT_EQ(refreshes, 1u);
  EXPECT_EQ(broadcasts, 1u);
  EXPECT_EQ(datagram_macs, (std::vector<Mac>{kPeerMac, kPeerMac2, kPeerMac2}));
}

// Destinations outside the subnet go through the gateway: one ARP entry for all of them,
// the IP destination unchanged. Without a gateway they have no route and nothing is asked.
TEST_F(Worker, OffSubnetOutputsGoThroughTheGateway) {
  constexpr Ipv4 kGateway = ipv4(10, 9, 0, 254);
  constexpr Mac kGatewayMac = {0x02, 0x74, 0x63, 0x00, 0x00, 0xfe};
  config_.ports[0].gateway = kGateway;
  OutputConfig far = config_.channels[0].outputs[0];
  far.address = ipv4(192, 168, 5, 5);
  OutputConfig far2 = far;
  far2.address = ipv4(192, 168, 6, 6);
  OutputConfig near = far;
  near.address = ipv4(10, 9, 0, 40);
  config_.channels[0].outputs = {far, far2, near};
  make(3);
  feed({udp_frame(kGroupIn, 5000, ts_payload(0, 7))});
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 2u);  // the gateway and 10.9.0.40, once each
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTxNoRoute), 3u);
  feed({arp_frame(net::kArpReply, kGatewayMac, kGateway, kOurIp), udp_frame(kGroupIn, 5000, ts_payload(7, 7))},
       3'000'000, 4'000'000);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 1u);
  EXPECT_EQ(dp_->output_stats(0, 1).datagrams, 1u);
  EXPECT_EQ(dp_->output_stats(0, 2).datagrams, 0u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTxNoRoute), 4u);
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_TRUE(is_arp_request_for(frames[0], kGateway));
  EXPECT_TRUE(is_arp_request_for(frames[1], ipv4(10, 9, 0, 40)));
  const Ipv4 want[] = {ipv4(192, 168, 5, 5), ipv4(192, 168, 6, 6)};
  for (std::size_t i = 0; i < 2; ++i) {
    const auto p = parse_udp_frame(frames[2 + i]);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->eth.dst, kGatewayMac);
    EXPECT_EQ(p->ip.dst, want[i]);
  }
}

TEST_F(Worker, OffSubnetOutputWithoutGatewayHasNoRoute) {
  config_.channels[0].outputs[0].address = ipv4(192, 168, 5, 5);
  make(1);
  feed({udp_frame(kGroupIn, 5000, ts_payload(0, 7))});
  feed({arp_frame(net::kArpReply, kPeerMac, ipv4(192, 168, 5, 5), kOurIp), udp_frame(kGroupIn, 5000, ts_payload(7, 7))},
       5 * kSecond, 5 * kSecond + 1);
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 0u);
  EXPECT_EQ(dp_->port_stats(0).arp_learnt, 0u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTxNoRoute), 2u);
  EXPECT_TRUE(transmitted().empty());
}

// The running worker asks at start (and not again within the second).
TEST_F(Worker, StartAsksForUnicastNextHops) {
  config_.channels[0].outputs[0].address = kPeerIp;
  make(1);
  const auto ran = run_worker(std::chrono::milliseconds(200));
  EXPECT_EQ(rte_mempool_in_use_count(pool_), base_in_use_);
  const std::uint64_t sent = dp_->port_stats(0).arp_requests_sent;
  const auto frames = transmitted();
  std::size_t requests = 0;
  for (const ByteVec& f : frames) requests += is_arp_request_for(f, kPeerIp) ? 1u : 0u;
  EXPECT_EQ(requests, sent);
  // 200 ms asked; should a loaded machine stretch the run past a second of the worker's
  // own time, the retry a second after the first request (kArpRetryNs) is due, and only it.
  const auto seconds = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(ran).count());
  if (seconds == 0) {
    EXPECT_EQ(sent, 1u);
  } else {
    EXPECT_GE(sent, 1u);
    EXPECT_LE(sent, 1u + seconds) << "more than one request a second";
  }
}

// A reload that takes a unicast output away (here: back to multicast) stops asking for its
// next hop: the entry stays in the port's table (kept until a restart), but a host no output
// sends to is not asked for once a second, forever, nor refreshed. Adding the output back
// asks again at once.
TEST_F(Worker, ANextHopNoOutputUsesAnyMoreIsNotAskedFor) {
  config_.channels[0].outputs[0].address = ipv4(10, 9, 0, 40);  // never answers
  config_.channels[0].outputs[0].udp_port = 7000;
  make(1);
  dp_->poll_once(2'000'000);
  ASSERT_EQ(dp_->port_stats(0).arp_requests_sent, 1u);
  const ApplianceConfig unicast = dp_->config();
  ApplianceConfig multicast = unicast;
  multicast.channels[0].outputs[0].address = kGroupOut;
  dp_->apply(multicast);
  for (std::uint64_t s = 2; s <= 10; ++s) dp_->poll_once(s * kSecond);
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 1u) << "still asking for a next hop no output uses";
  dp_->apply(unicast);
  dp_->poll_once(11 * kSecond);
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 2u) << "the output is back: its next hop is asked for again";
  EXPECT_EQ(rte_mempool_in_use_count(pool_), base_in_use_);
}

// The same for a next hop that was resolved: no refresh 60 s on, and no broadcasts once it
// is forgotten 30 s later, while no output sends to it.
TEST_F(Worker, AResolvedNextHopNoOutputUsesAnyMoreIsNeitherRefreshedNorAskedFor) {
  config_.channels[0].outputs[0].address = kPeerIp;
  config_.channels[0].outputs[0].udp_port = 7000;
  make(1);
  feed({arp_frame(net::kArpReply, kPeerMac, kPeerIp, kOurIp)}, kSecond, kSecond + 1);
  ASSERT_EQ(dp_->port_stats(0).arp_learnt, 1u);
  ApplianceConfig next = dp_->config();
  next.channels[0].outputs[0].address = kGroupOut;
  dp_->apply(next);
  const std::uint64_t before = dp_->port_stats(0).arp_requests_sent;
  for (std::uint64_t s = 2; s <= 120; ++s) dp_->poll_once(s * kSecond);
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, before) << "refreshing or asking for a next hop no output uses";
  EXPECT_EQ(dp_->port_stats(0).arp_expired, 1u);  // its MAC is not trusted for ever either
  EXPECT_EQ(rte_mempool_in_use_count(pool_), base_in_use_);
}

TEST_F(Worker, BadConfigIsAnError) {
  config_.channels[0].outputs[0].port = "nope";
  EXPECT_THROW(make(), std::invalid_argument);
  config_.channels[0].outputs[0].port = "p0";
  config_.channels[0].inputs[1] = config_.channels[0].inputs[0];
  EXPECT_THROW(make(), std::invalid_argument);  // the same flow twice
}


// The reorder window spans 32 sequence numbers. 11 is lost and 12..41 wait for it; then
// 43 comes just before 42 (two neighbours swapped). 43 is 32 past 11: the window must move
// on to take it, which gives up 11 and nothing else: 42 is within 32 of every datagram
// received and comes at once, so it goes out before 43. The window jumped to 43 instead,
// giving 42 up unseen and dropping it as a duplicate when it came.
TEST_F(Worker, RtpWindowFullSlidesOnlyAsFarAsTheNewDatagramNeeds) {
  make(1);
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  std::vector<ByteVec> frames;
  frames.push_back(rtp(10));
  for (std::uint16_t s = 12; s <= 41; ++s) frames.push_back(rtp(s));
  frames.push_back(rtp(43));
  frames.push_back(rtp(42));
  feed(frames);
  std::vector<std::uint32_t> want = {10};
  for (std::uint32_t s = 12; s <= 43; ++s) want.push_back(s);
  EXPECT_EQ(pushed_numbers(), want);
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 33u);
  EXPECT_EQ(in.rtp_lost, 1u) << "11 only";
  EXPECT_EQ(in.rtp_duplicates, 0u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kRtpDuplicate), 0u);
}

// The same with nothing held when the datagram beyond the window comes: after a burst loss
// (11..49 never sent on, a link flap), 51 comes before 50 (reordered). 50 is within the
// window of 51 and must go out before it, as it would have had an earlier gap happened to
// be open. The window jumped to 51 instead, giving 50 up at once (lost) and dropping it as a
// duplicate 1 ms later: a gap given up without its 20 ms.
TEST_F(Worker, RtpDatagramReorderedBehindTheFirstAfterABurstLossIsAwaited) {
  make(1);
  constexpr std::uint64_t ms = 1'000'000;
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  feed({rtp(10)}, 1 * ms, 1 * ms);
  feed({rtp(51)}, 2 * ms, 2 * ms, 1);
  feed({rtp(50)}, 3 * ms, 3 * ms, 2);
  feed({}, 23 * ms, 23 * ms);  // 20..49 given up 20 ms after 51 arrived
  EXPECT_EQ(pushed_numbers(), (std::vector<std::uint32_t>{10, 50, 51}));
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.rtp_lost, 39u) << "11..49";
  EXPECT_EQ(in.rtp_duplicates, 0u);
}

// Duplicates that come late by more than the window, as during a multicast route change
// (PIM moving to the shortest-path tree forwards both copies for a while, one of them ~80
// datagrams behind): every late copy is dropped. Each was taken for a sender that had
// restarted its numbering: delivered again (stale TS packets, out of order, into the
// channel), and the next datagram on time counted ~80 lost.
TEST_F(Worker, RtpDuplicatesFarBehindTheWindowAreDroppedNotTakenForARestart) {
  make(1);
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  for (std::uint16_t s = 100; s < 200; s += 20) {
    std::vector<ByteVec> frames;
    for (std::uint16_t k = s; k < s + 20; ++k) frames.push_back(rtp(k));
    feed(frames);
  }
  std::vector<ByteVec> frames;
  for (std::uint16_t k = 0; k < 20; ++k) {
    frames.push_back(rtp(static_cast<std::uint16_t>(200 + k)));  // the new path, on time
    frames.push_back(rtp(static_cast<std::uint16_t>(120 + k)));  // the old one, 80 behind
  }
  feed(frames);
  std::vector<std::uint32_t> want;
  for (std::uint32_t s = 100; s < 220; ++s) want.push_back(s);
  EXPECT_EQ(pushed_numbers(), want);
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 120u);
  EXPECT_EQ(in.rtp_duplicates, 20u);
  EXPECT_EQ(in.rtp_lost, 0u);
}

// A sender that restarts its numbering behind where it was (same SSRC) is followed from
// its second datagram: only its first is dropped (it might have been a late copy).
TEST_F(Worker, RtpSenderRestartingItsNumberingBehindIsFollowedFromItsSecondDatagram) {
  make(1);
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  std::vector<ByteVec> frames;
  for (std::uint16_t s = 1000; s < 1010; ++s) frames.push_back(rtp(s));
  for (std::uint16_t s = 5; s < 15; ++s) frames.push_back(rtp(s));
  feed(frames);
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 19u);
  EXPECT_EQ(in.rtp_lost, 0u);
  const auto got = pushed_numbers();
  ASSERT_EQ(got.size(), 19u);
  for (std::size_t i = 0; i < 9; ++i) EXPECT_EQ(got[got.size() - 9 + i], 6u + i);
}

// The same ahead: a sender that restarts its numbering thousands ahead (same SSRC) is
// followed from its second datagram, and nothing is counted lost; it used to count the
// jump (~30000 datagrams "lost" on a Grafana panel for an encoder restart). Its first is
// dropped as rtp_jump (it might have been a stray).
TEST_F(Worker, RtpSenderRestartingItsNumberingFarAheadIsFollowedFromItsSecondDatagram) {
  make(1);
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  std::vector<ByteVec> frames;
  for (std::uint16_t s = 10; s < 20; ++s) frames.push_back(rtp(s));
  for (std::uint16_t s = 30000; s < 30010; ++s) frames.push_back(rtp(s));
  feed(frames);
  std::vector<std::uint32_t> want;
  for (std::uint32_t s = 10; s < 20; ++s) want.push_back(s);
  for (std::uint32_t s = 30001; s < 30010; ++s) want.push_back(s);
  EXPECT_EQ(pushed_numbers(), want);
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 19u);
  EXPECT_EQ(in.rtp_lost, 0u);
  EXPECT_EQ(in.rtp_duplicates, 0u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kRtpJump), 1u);
}

// A far jump that is as long as the silence before it is an outage, not a new numbering:
// a sender at one datagram per ms, then 4 s without any, then the numbering 4000 on
// (a link down on a high-rate feed). The 3999 datagrams in between are counted lost and the
// first after the silence is delivered (it used to be dropped as rtp_jump, nothing lost).
TEST_F(Worker, RtpOutageAsLongAsItsJumpIsCountedLost) {
  make(1);
  constexpr std::uint64_t ms = 1'000'000;
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  for (std::uint16_t s = 0; s < 300; ++s) feed({rtp(s)}, (1 + s) * ms, (1 + s) * ms);
  feed({rtp(4299)}, 4300 * ms, 4300 * ms, 1);  // waits for 4268..4298, the window before it
  feed({rtp(4300)}, 4301 * ms, 4301 * ms, 2);
  feed({}, 4321 * ms, 4321 * ms);
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.rtp_lost, 3999u);
  EXPECT_EQ(in.datagrams, 302u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kRtpJump), 0u);
  // The same jump right after the datagram before it is a new numbering, not an outage.
  feed({rtp(4301), rtp(9000), rtp(9001)}, 4322 * ms, 4322 * ms);
  EXPECT_EQ(dp_->input_stats(0, 1).rtp_lost, 3999u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kRtpJump), 1u);
}

// A single datagram far ahead between ones in sequence (a stray) is dropped and changes
// nothing; a real gap below RFC 3550's MAX_DROPOUT (2999 here) is still a loss.
TEST_F(Worker, RtpStrayFarAheadIsDroppedAndAGapBelowTheDropoutLimitIsALoss) {
  make(1);
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  feed({rtp(10), rtp(11), rtp(9000), rtp(12), rtp(13)});
  EXPECT_EQ(pushed_numbers(), (std::vector<std::uint32_t>{10, 11, 12, 13}));
  EXPECT_EQ(dp_->input_stats(0, 1).rtp_lost, 0u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kRtpJump), 1u);
  feed({rtp(3013), rtp(3014)}, 1'000'000, 2'000'000, 2);  // 14..3012 never came
  feed({}, 22'000'000, 22'000'000);  // 2982..3012, the window before 3013, waited 20 ms
  EXPECT_EQ(dp_->input_stats(0, 1).rtp_lost, 2999u);
  EXPECT_EQ(dp_->input_stats(0, 1).datagrams, 6u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kRtpJump), 1u);
}

}  // namespace
}  // namespace twincast::dataplane

namespace twincast::dataplane {
namespace {

// RTCP multiplexed on the RTP port (RFC 5761; a sender report every few seconds) is not
// media: dropped as bad_rtp. It used to pass as RTP of another SSRC: the window was flushed
// for a "new sender" (a datagram held behind a gap delivered, the gap counted lost) and the
// late datagram filling the gap then went out after the one behind it.
TEST_F(Worker, RtcpOnTheRtpPortIsDroppedAndDisturbsNoReordering) {
  make(1);
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  ByteVec sender_report(28, 0);
  sender_report[0] = 0x80;  // version 2, no reception report
  sender_report[1] = 200;   // SR
  sender_report[3] = 6;     // length in 32-bit words - 1
  sender_report[7] = 0x99;  // its SSRC
  feed({rtp(1), rtp(2), rtp(3), rtp(5), udp_frame(kGroupRtp, 5000, sender_report), rtp(4), rtp(6)});
  EXPECT_EQ(pushed_numbers(), (std::vector<std::uint32_t>{1, 2, 3, 4, 5, 6}));
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 6u);
  EXPECT_EQ(in.rtp_lost, 0u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kBadRtp), 1u);
}

// Garbage on the RTP port (a stray datagram, another application's RTP of another payload)
// that happens to read as an RTP header of another SSRC carries no TS: it is dropped as such
// and disturbs nothing, as RTCP there does not. It used to restart the window for a "new
// sender": the datagram held behind a gap went out, and the late one filling the gap after
// it; a copy of one already delivered went out again.
TEST_F(Worker, NonTsDatagramOnTheRtpPortDisturbsNoReordering) {
  make(1);
  auto rtp = [](std::uint16_t s) { return udp_frame(kGroupRtp, 5000, rtp_payload(s, s, 1)); };
  ByteVec garbage(100, 0x5A);
  garbage[0] = 0x80;  // reads as version 2, no CSRC, no extension, no padding
  garbage[1] = 96;    // a dynamic payload type
  feed({rtp(1), rtp(2), rtp(4), udp_frame(kGroupRtp, 5000, garbage), rtp(3), rtp(4), rtp(5)});
  EXPECT_EQ(pushed_numbers(), (std::vector<std::uint32_t>{1, 2, 3, 4, 5}));
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 5u);
  EXPECT_EQ(in.rtp_lost, 0u);
  EXPECT_EQ(in.rtp_duplicates, 1u);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kTsSize), 1u);
}

// An encoder handing over to its backup (a new SSRC): a copy of the old encoder's last
// datagram, or one of its datagrams reordered behind the new encoder's first, arrives after
// the switch. It is a late datagram of the sender before, not a sender coming back: it used
// to flip the window back to the old SSRC, so 10 went into the channel twice and 9 after 10
// and after the new encoder's 500 (9 counted lost and delivered both).
TEST_F(Worker, RtpLateDatagramOfThePreviousSsrcIsDroppedNotTakenForItsReturn) {
  make(1);
  auto rtp = [](std::uint16_t s, std::uint32_t ssrc) {
    ByteVec b = rtp_payload(s, s, 1);
    net::write_rtp(b, net::Rtp{33, false, s, 0, ssrc});
    return udp_frame(kGroupRtp, 5000, b);
  };
  constexpr std::uint32_t kOld = 0xA, kNew = 0xB;
  feed({rtp(1, kOld), rtp(2, kOld), rtp(3, kOld), rtp(4, kOld), rtp(5, kOld), rtp(6, kOld), rtp(7, kOld), rtp(8, kOld),
        rtp(10, kOld), rtp(500, kNew), rtp(9, kOld), rtp(10, kOld), rtp(501, kNew), rtp(502, kNew)});
  EXPECT_EQ(pushed_numbers(), (std::vector<std::uint32_t>{1, 2, 3, 4, 5, 6, 7, 8, 10, 500, 501, 502}));
  const InputStats in = dp_->input_stats(0, 1);
  EXPECT_EQ(in.datagrams, 12u);
  EXPECT_EQ(in.rtp_lost, 1u) << "9, given up when the new encoder took over";
  EXPECT_EQ(in.rtp_duplicates, 2u) << "9 late, 10 again";
  // The old encoder coming back later (its numbering gone on) is followed again.
  feed({rtp(600, kOld), rtp(601, kOld)});
  EXPECT_EQ(in.datagrams + 2, dp_->input_stats(0, 1).datagrams);
}

}  // namespace
}  // namespace twincast::dataplane

namespace twincast::dataplane {
namespace {

// A next hop that announces a new MAC with a gratuitous ARP (RFC 826's merge step; RFC
// 5227 2.4 announcements; a router failover, a replaced NIC) is sent to at that MAC from
// the next datagram on, not to the old one until the refresh 60 s later gives up.
TEST_F(Worker, GratuitousArpFromANextHopMovesItsOutputsToTheNewMac) {
  config_.channels[0].outputs[0].address = kPeerIp;
  config_.channels[0].outputs[0].udp_port = 7000;
  make(1);
  feed({arp_frame(net::kArpReply, kPeerMac, kPeerIp, kOurIp), udp_frame(kGroupIn, 5000, ts_payload(0, 7))});
  EXPECT_EQ(dp_->port_stats(0).arp_learnt, 1u);
  // Gratuitous: a broadcast request from the next hop for its own address.
  feed({arp_frame(net::kArpRequest, kPeerMac2, kPeerIp, kPeerIp, net::kBroadcastMac),
        udp_frame(kGroupIn, 5000, ts_payload(7, 7))},
       2 * kSecond, 2 * kSecond + 1);
  EXPECT_EQ(dp_->port_stats(0).arp_learnt, 2u);
  EXPECT_EQ(dp_->port_stats(0).arp_replies, 0u);  // not for our address: no answer
  std::vector<Mac> macs;
  for (const ByteVec& f : transmitted())
    if (const auto p = parse_udp_frame(f)) macs.push_back(p->eth.dst);
  EXPECT_EQ(macs, (std::vector<Mac>{kPeerMac, kPeerMac2}));
}

// A unicast output with its own VLAN (the port untagged): its datagrams go out tagged, so
// its next hop lives on that VLAN, and ARP for it must be asked, and its answer taken, there.
TEST_F(Worker, UnicastOutputOnItsOwnVlanResolvesItsNextHopOnThatVlan) {
  config_.channels[0].outputs[0].address = kPeerIp;
  config_.channels[0].outputs[0].udp_port = 7000;
  config_.channels[0].outputs[0].vlan = 12;
  make(1);
  feed({udp_frame(kGroupIn, 5000, ts_payload(0, 7))});
  EXPECT_EQ(dp_->port_stats(0).arp_requests_sent, 1u);
  ByteVec reply = arp_frame(net::kArpReply, kPeerMac, kPeerIp, kOurIp);
  reply.insert(reply.begin() + 12, {0x81, 0x00, 0x00, 12});
  feed({reply, udp_frame(kGroupIn, 5000, ts_payload(7, 7))}, 3'000'000, 4'000'000);
  EXPECT_EQ(dp_->port_stats(0).drop(DropReason::kWrongVlan), 0u);
  EXPECT_EQ(dp_->port_stats(0).arp_learnt, 1u);
  EXPECT_EQ(dp_->output_stats(0, 0).datagrams, 1u);
  const auto frames = transmitted();
  ASSERT_GE(frames.size(), 1u);
  const auto request = net::parse_ethernet(frames[0]);
  ASSERT_TRUE(request);
  EXPECT_EQ(request->ether_type, net::kEtherTypeArp);
  EXPECT_EQ(request->vlan, 12) << "the ARP request went out on the port's VLAN, not the output's";
  ASSERT_EQ(frames.size(), 2u);
  const auto p = parse_udp_frame(frames[1]);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->eth.vlan, 12);
  EXPECT_EQ(p->eth.dst, kPeerMac);
}

// Every frame the port sends is at least the Ethernet minimum of 60 bytes (without FCS), as
// its ARP frames and IGMPv1/v2 messages are: an IGMPv3 report with one group record is 54.
TEST_F(Worker, Igmpv3ReportsAreAtLeastTheEthernetMinimum) {
  make(1);
  feed({igmp_query(kGroupIn, 3)});
  const auto frames = transmitted();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_GE(frames[0].size(), 60u);
  const auto f = parse_igmp_frame(frames[0]);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->igmp.size(), 16u);  // the IP length still covers the report only
}

// One reload that leaves more groups than the port's fixed room for leaves still to be
// repeated (256): the repeat of that reload's state change (RFC 3376 5.1) still leaves them
// all, as the plan it runs holds every one of them (before the room was added, it did).
TEST_F(Worker, IgmpRepeatOfOneReloadLeavesEveryGroupItLeft) {
  std::vector<std::string> groups;
  for (int i = 0; i < 300; ++i) {
    InputConfig in = config_.channels[0].inputs[0];
    in.name = std::to_string(1000 + i);  // "g".. trips GCC 12 -Wrestrict here
    in.address = ipv4(239, 50, static_cast<std::uint8_t>(i / 200), static_cast<std::uint8_t>(1 + i % 200));
    groups.push_back(net::ipv4_text(in.address));
    config_.channels[0].inputs.push_back(in);
  }
  std::sort(groups.begin(), groups.end());
  make(1);
  ApplianceConfig next = dp_->config();
  next.channels[0].inputs.resize(4);  // leaves the 300
  dp_->apply(next);
  const std::uint64_t first = dp_->port_stats(0).igmp_reports_sent;
  dp_->poll_once(10'000'000'000ULL);
  dp_->poll_once(11'000'000'000ULL);
  const auto reports = igmpv3_reports(transmitted());
  std::vector<std::string> once;
  std::vector<std::string> again;
  for (std::size_t i = 0; i < reports.size(); ++i)
    for (const IgmpGroupRecord& r : reports[i])
      if (r.type == kRecToIn) (i < first ? once : again).push_back(net::ipv4_text(r.group));
  std::sort(once.begin(), once.end());
  std::sort(again.begin(), again.end());
  EXPECT_EQ(once, groups);
  EXPECT_EQ(again.size(), groups.size()) << "leaves beyond the port's room were not repeated";
  EXPECT_EQ(again, groups);
}

}  // namespace
}  // namespace twincast::dataplane
