// Integration (root): the data plane on net_af_packet between network namespaces.
//
//   [src] veth ─── veth [head: dp_forwarder] veth ─── veth [stb]
//   ffmpeg -re -> 239.1.1.1:5000           -> 239.2.2.2:5000 -> kernel socket (joined)
//
// Checks: the stream arrives in stb with its program and streams (ffprobe) and no CC error
// (twincast-ts analyze); src's kernel resolves the data plane's address by ARP; IGMPv3
// reports (join, then leave on stop) leave toward src. Namespaces get a random suffix and
// are deleted in TearDown, child processes killed, even when an assertion fails.
//
// IgmpQuerierNs: a real querier and snooping switch in front of the data plane's input port.
//
//   [sw: Linux bridge, mcast_querier 1, mcast_igmp_version 2|3] veth ─── veth [head: dp_forwarder]
//
// The bridge's mdb must hold the input group for several membership intervals (only the
// data plane's answers to the queries can keep it), the reports on the wire must be of the
// querier's version (RFC 3376 7.2.1: v2 reports and a v2 leave to 224.0.0.2 under a v2
// querier), and the leave on stop must take the group out of the mdb.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "dataplane/netns.hpp"
#include "tests_common.hpp"

namespace twincast::test {
namespace {

using namespace std::chrono_literals;
using ByteVec = std::vector<std::uint8_t>;

const char* const kOurMac = "02:74:63:01:00:02";

class DataplaneNs : public NsTestbed {
 protected:
  void SetUp() override {
    if (const std::string why = netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    std::random_device rd;
    net_ = static_cast<int>(100 + rd() % 100);
    src_ip_ = addr(1, 1);
    in_ip_ = addr(1, 2);
    out_ip_ = addr(2, 2);
    stb_ip_ = addr(2, 3);
    ASSERT_NO_FATAL_FAILURE(create_testbed({.prefix = "tc", .dir_name = "dp_ns", .src_ip = src_ip_, .in_ip = in_ip_,
                                            .out_ip = out_ip_, .stb_ip = stb_ip_}));
  }

  void TearDown() override {
    stop_capture();
    children_.kill_all();
    NsTestbed::TearDown();
  }

  std::string addr(int subnet, int host) const {
    return "10." + std::to_string(net_) + "." + std::to_string(subnet) + "." + std::to_string(host);
  }

  // Captures ARP and IGMP frames on src's veth (a packet socket in src's namespace).
  void start_capture() {
    capture_ = std::thread([this] {
      if (!enter_netns(src_)) return;
      const int s = packet_socket(veth_src_, 100ms);
      if (s < 0) return;
      capture_ready_ = true;
      std::uint8_t buf[2048];
      while (!capture_stop_) {
        const ssize_t n = ::recv(s, buf, sizeof buf, 0);
        if (n < 38) continue;
        const bool arp = buf[12] == 0x08 && buf[13] == 0x06;
        const bool igmp = buf[12] == 0x08 && buf[13] == 0x00 && buf[23] == 2;
        if (arp || igmp) {
          std::lock_guard<std::mutex> lock(mu_);
          captured_.emplace_back(buf, buf + n);
        }
      }
      ::close(s);
    });
    for (int i = 0; i < 100 && !capture_ready_; ++i) std::this_thread::sleep_for(10ms);
  }
  void stop_capture() {
    capture_stop_ = true;
    if (capture_.joinable()) capture_.join();
  }

  // Joins `group` in stb and records datagram payloads for `duration`.
  std::vector<ByteVec> receive_in_stb(const std::string& group, std::uint16_t port, std::chrono::milliseconds duration) {
    std::vector<ByteVec> got;
    std::thread t([&] {
      if (!enter_netns(stb_)) return;
      const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
      int one = 1;
      ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      inet_pton(AF_INET, group.c_str(), &a.sin_addr);
      if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
      ip_mreq m{};
      inet_pton(AF_INET, group.c_str(), &m.imr_multiaddr);
      inet_pton(AF_INET, stb_ip_.c_str(), &m.imr_interface);
      if (::setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) != 0) return;
      timeval tv{0, 100000};
      ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      const auto until = std::chrono::steady_clock::now() + duration;
      std::uint8_t buf[9000];
      while (std::chrono::steady_clock::now() < until) {
        const ssize_t n = ::recv(s, buf, sizeof buf, 0);
        if (n > 0) got.emplace_back(buf, buf + n);
      }
      ::close(s);
    });
    t.join();
    return got;
  }

  // Sends one UDP datagram from src to `ip`: src's kernel must resolve it by ARP first.
  void poke_from_src(const std::string& ip) {
    std::thread t([&] {
      if (!enter_netns(src_)) return;
      const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(9);
      inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
      (void)::sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
      ::close(s);
    });
    t.join();
  }

  pid_t start_forwarder(const std::string& input, const std::string& output, const std::string& pipeline) {
    const pid_t pid = start_child(
        {"ip", "netns", "exec", head_, tool("dp_forwarder").string(), "--in-dev", "net_af_packet0,iface=" + veth_in_,
         "--in-ip", in_ip_, "--in-mac", kOurMac, "--out-dev", "net_af_packet1,iface=" + veth_out_, "--out-ip", out_ip_,
         "--input", input, "--output", output, "--ttl", "4", "--pipeline", pipeline, "--file-prefix", "tcdp" + sfx_},
        "forwarder");
    for (int i = 0; i < 200; ++i) {
      if (read_text(dir_ / "forwarder.err").find("running") != std::string::npos) return pid;
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) break;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "dp_forwarder did not start: " << read_text(dir_ / "forwarder.err");
    return -1;
  }

  std::vector<ByteVec> igmp_reports() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ByteVec> r;
    for (const auto& f : captured_) {
      if (f[12] == 0x08 && f[13] == 0x00 && f[23] == 2 && f.size() >= 14 + 24 + 16 && f[14 + 24] == 0x22) r.push_back(f);
    }
    return r;
  }

  int net_ = 0;
  std::string src_ip_, in_ip_, out_ip_, stb_ip_;
  std::thread capture_;
  std::atomic<bool> capture_stop_{false};
  std::atomic<bool> capture_ready_{false};
  std::mutex mu_;
  std::vector<ByteVec> captured_;
};

std::uint64_t json_number(const std::string& text, const std::string& key, std::size_t occurrence = 0) {
  std::size_t at = 0;
  for (std::size_t i = 0; i <= occurrence; ++i) {
    at = text.find("\"" + key + "\":", i == 0 ? 0 : at + 1);
    if (at == std::string::npos) return ~std::uint64_t{0};
  }
  return std::stoull(text.substr(at + key.size() + 3));
}

void check_ts_file(const std::filesystem::path& ts) {
  const RunResult probe = run("ffprobe -v error -show_entries program=program_id:stream=codec_name -of compact " +
                              shell_quote(ts.string()));
  EXPECT_EQ(probe.exit_code, 0) << probe.out;
  EXPECT_NE(probe.out.find("program|program_id="), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("codec_name=h264"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("codec_name=aac"), std::string::npos) << probe.out;
  const RunResult an = run(shell_quote(tool("twincast-ts").string()) + " analyze --json " + shell_quote(ts.string()));
  EXPECT_EQ(an.exit_code, 0) << an.out;
  EXPECT_EQ(json_number(an.out, "Continuity_count_error"), 0u) << an.out;
}

TEST_F(DataplaneNs, UdpMulticastThroughTheChannelWithArpAndIgmp) {
  start_capture();
  ASSERT_TRUE(capture_ready_) << "no packet socket in " << src_;
  const pid_t fwd = start_forwarder("udp://239.1.1.1:5000", "udp://239.2.2.2:5000", "channel");
  ASSERT_GT(fwd, 0);

  // ARP: src's kernel learns our MAC for the input port's address.
  std::string neigh;
  for (int i = 0; i < 20; ++i) {
    poke_from_src(in_ip_);
    std::this_thread::sleep_for(100ms);
    neigh = run("ip -n " + src_ + " neigh show " + in_ip_).out;
    if (neigh.find(kOurMac) != std::string::npos) break;
  }
  EXPECT_NE(neigh.find(kOurMac), std::string::npos) << neigh;
  EXPECT_TRUE(neigh.find("REACHABLE") != std::string::npos || neigh.find("STALE") != std::string::npos ||
              neigh.find("DELAY") != std::string::npos)
      << neigh;

  const pid_t ff = start_child({"ip", "netns", "exec", src_, "ffmpeg", "-nostdin", "-loglevel", "error", "-re",
                                "-stream_loop", "-1", "-i", fixture("h264_aac.ts").string(), "-c", "copy", "-f",
                                "mpegts", "udp://239.1.1.1:5000?pkt_size=1316&ttl=4&localaddr=" + src_ip_},
                               "ffmpeg");
  ASSERT_GT(ff, 0);
  const auto datagrams = receive_in_stb("239.2.2.2", 5000, 4000ms);
  end_child(ff, 2000ms);
  EXPECT_TRUE(end_child(fwd, 10000ms)) << "dp_forwarder did not stop on SIGTERM";
  // The leave report left before the forwarder exited; the capture thread in src may not
  // have read it yet (a loaded machine delays it): wait for it to be seen, not a fixed
  // 200 ms. Asserted below (the last report is a leave).
  (void)poll_until(5000ms, [&] {
    const auto r = igmp_reports();
    return !r.empty() && r.back()[38 + 8] == 3;
  });
  stop_capture();

  // What stb received: whole TS packets, the program and its streams, continuous.
  ASSERT_GT(datagrams.size(), 100u) << read_text(dir_ / "forwarder.err") << read_text(dir_ / "ffmpeg.err");
  ByteVec ts;
  for (const auto& d : datagrams) {
    EXPECT_EQ(d.size() % 188, 0u);
    EXPECT_LE(d.size(), 7u * 188);
    ts.insert(ts.end(), d.begin(), d.end());
  }
  write_file(dir_ / "out.ts", ts);
  check_ts_file(dir_ / "out.ts");

  // The forwarder's own counters.
  const std::string stats = read_text(dir_ / "forwarder.out");
  EXPECT_GT(json_number(stats, "datagrams"), 100u) << stats;
  EXPECT_GE(json_number(stats, "arp_replies"), 1u) << stats;
  EXPECT_GT(json_number(stats, "tx_packets", 1), 100u) << stats;  // the out port
  EXPECT_EQ(json_number(stats, "ts_size"), 0u) << stats;
  EXPECT_EQ(json_number(stats, "tx_refused", 1), 0u) << stats;

  // IGMPv3 toward src: a join (CHANGE_TO_EXCLUDE 239.1.1.1) first, a leave last, from our MAC.
  const auto reports = igmp_reports();
  ASSERT_GE(reports.size(), 2u);
  auto mac_of = [](const ByteVec& f) {
    char m[18];
    std::snprintf(m, sizeof m, "%02x:%02x:%02x:%02x:%02x:%02x", f[6], f[7], f[8], f[9], f[10], f[11]);
    return std::string(m);
  };
  const ByteVec& join = reports.front();
  const ByteVec& leave = reports.back();
  EXPECT_EQ(mac_of(join), kOurMac);
  EXPECT_EQ(join[14 + 8], 1);                 // TTL 1
  EXPECT_EQ(join[14 + 20], 0x94);             // Router Alert
  EXPECT_EQ(join[38 + 8], 4);                 // CHANGE_TO_EXCLUDE
  EXPECT_EQ(ByteVec(join.begin() + 38 + 12, join.begin() + 38 + 16), (ByteVec{239, 1, 1, 1}));
  EXPECT_EQ(leave[38 + 8], 3);                // CHANGE_TO_INCLUDE {}: leave
}

TEST_F(DataplaneNs, RtpInRtpOutPassthrough) {
  const pid_t fwd = start_forwarder("rtp://239.1.1.1:5000", "rtp://239.2.2.2:5000", "passthrough");
  ASSERT_GT(fwd, 0);
  const pid_t ff = start_child({"ip", "netns", "exec", src_, "ffmpeg", "-nostdin", "-loglevel", "error", "-re",
                                "-stream_loop", "-1", "-i", fixture("h264_aac.ts").string(), "-c", "copy", "-f",
                                "rtp_mpegts", "rtp://239.1.1.1:5000?ttl=4&localaddr=" + src_ip_},
                               "ffmpeg");
  ASSERT_GT(ff, 0);
  const auto datagrams = receive_in_stb("239.2.2.2", 5000, 3000ms);
  end_child(ff, 2000ms);
  EXPECT_TRUE(end_child(fwd, 10000ms));
  ASSERT_GT(datagrams.size(), 50u) << read_text(dir_ / "forwarder.err") << read_text(dir_ / "ffmpeg.err");
  ByteVec ts;
  std::optional<std::uint16_t> last;
  std::size_t gaps = 0;
  for (const auto& d : datagrams) {
    ASSERT_EQ(d.size(), 12u + 7 * 188);
    EXPECT_EQ(d[0], 0x80);
    EXPECT_EQ(d[1] & 0x7F, 33);
    const auto seq = static_cast<std::uint16_t>((d[2] << 8) | d[3]);
    if (last && seq != static_cast<std::uint16_t>(*last + 1)) ++gaps;
    last = seq;
    ts.insert(ts.end(), d.begin() + 12, d.end());
  }
  EXPECT_EQ(gaps, 0u);
  write_file(dir_ / "out_rtp.ts", ts);
  check_ts_file(dir_ / "out_rtp.ts");
  const std::string stats = read_text(dir_ / "forwarder.out");
  EXPECT_EQ(json_number(stats, "rtp_duplicates"), 0u) << stats;
  EXPECT_EQ(json_number(stats, "bad_rtp"), 0u) << stats;
}

// ---- IGMP against a Linux bridge acting as querier and snooping switch ----

const char* const kGroup = "239.1.1.1";
// Bridge timers, in centiseconds (iproute2's unit). A query every second (the kernel's
// floor), answers due within one second, and an mdb entry that lives two seconds unless a
// report refreshes it: a forwarder that stopped answering loses its group within 2 s.
constexpr int kQueryIntervalCs = 100;
constexpr int kQueryResponseCs = 100;
constexpr int kMembershipCs = 200;
constexpr auto kMembership = std::chrono::milliseconds(kMembershipCs * 10);
// How long the forwarder runs: three membership intervals.
constexpr auto kRunFor = 3 * kMembership;

std::string ipv4_text(const std::uint8_t* p) {
  char t[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, p, t, sizeof t);
  return t;
}

std::string mac_text(const std::uint8_t* p) {
  char m[18];
  std::snprintf(m, sizeof m, "%02x:%02x:%02x:%02x:%02x:%02x", p[0], p[1], p[2], p[3], p[4], p[5]);
  return m;
}

// RFC 1071 sum over `n` bytes: 0 when a block that carries its checksum is intact.
std::uint16_t ones_complement_sum(const std::uint8_t* p, std::size_t n) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += static_cast<std::uint32_t>((p[i] << 8) | p[i + 1]);
  if (n % 2 != 0) sum += static_cast<std::uint32_t>(p[n - 1] << 8);
  while (sum >> 16 != 0) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xFFFF);
}

// One IGMP message seen on the bridge's port, decoded.
struct IgmpSeen {
  std::chrono::steady_clock::time_point at;
  bool from_bridge = false;  // PACKET_OUTGOING on the bridge's port: a query toward the data plane
  std::string src_mac, dst_mac, src, dst, group;
  std::uint8_t ttl = 0;
  std::size_t ihl = 0;
  bool router_alert = false;
  std::uint8_t type = 0;
  std::uint8_t code = 0;             // max response time (ds) in queries
  std::size_t igmp_size = 0;         // 8: v1/v2, >= 12: v3 query, v3 report 8 + records
  std::uint8_t v3_record_type = 0;   // first record of a v3 report
  std::string v3_record_group;
  bool checksums_ok = false;

  std::string text() const {
    std::ostringstream o;
    o << (from_bridge ? "bridge> " : "<dp     ") << src << " -> " << dst << " ttl " << unsigned{ttl} << " type 0x"
      << std::hex << unsigned{type} << std::dec << " code " << unsigned{code} << " size " << igmp_size << " group "
      << group << (v3_record_group.empty() ? "" : " record " + std::to_string(v3_record_type) + " " + v3_record_group)
      << (checksums_ok ? "" : " BAD-CHECKSUM");
    return o.str();
  }
};

std::optional<IgmpSeen> decode_igmp(const std::uint8_t* f, std::size_t n) {
  if (n < 14 + 20 || f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4 || f[14 + 9] != 2) return std::nullopt;
  IgmpSeen s;
  s.ihl = std::size_t{f[14] & 0x0Fu} * 4;
  const std::size_t total = static_cast<std::size_t>((f[16] << 8) | f[17]);
  if (s.ihl < 20 || total < s.ihl + 8 || 14 + total > n) return std::nullopt;
  const std::uint8_t* ip = f + 14;
  const std::uint8_t* igmp = ip + s.ihl;
  s.dst_mac = mac_text(f);
  s.src_mac = mac_text(f + 6);
  s.ttl = ip[8];
  s.src = ipv4_text(ip + 12);
  s.dst = ipv4_text(ip + 16);
  s.router_alert = s.ihl >= 24 && ip[20] == 0x94 && ip[21] == 0x04;
  s.igmp_size = total - s.ihl;
  s.type = igmp[0];
  s.code = igmp[1];
  s.group = ipv4_text(igmp + 4);
  if (s.type == 0x22 && s.igmp_size >= 16) {
    s.v3_record_type = igmp[8];
    s.v3_record_group = ipv4_text(igmp + 12);
  }
  s.checksums_ok = ones_complement_sum(ip, s.ihl) == 0 && ones_complement_sum(igmp, s.igmp_size) == 0;
  return s;
}

class IgmpQuerierNs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    if (run("bridge -V").exit_code != 0) GTEST_SKIP() << "iproute2 'bridge' missing";
    std::random_device rd;
    sfx_ = random_suffix(rd);
    const int net = static_cast<int>(100 + rd() % 100);
    sw_ = "tcqsw" + sfx_;
    head_ = "tcqhd" + sfx_;
    br_ = "tcqbr" + sfx_;
    port_ = "tcqp" + sfx_;
    in_ = "tcqi" + sfx_;
    out_ = "tcqo" + sfx_;
    out_peer_ = "tcqx" + sfx_;
    bridge_ip_ = "10." + std::to_string(net) + ".1.1";
    in_ip_ = "10." + std::to_string(net) + ".1.2";
    out_ip_ = "10." + std::to_string(net) + ".2.2";
    dir_ = temp_dir("dp_igmp_ns");
  }

  void TearDown() override {
    stop_capture();
    children_.kill_all();
    delete_netns({sw_, head_});
    if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_);
  }

  // sw: the bridge (querier of `version`, the data plane's port a fast-leave port); head:
  // the data plane's input veth and an output veth pair that nothing queries on.
  void build_network(int version) {
    const std::string sw = "ip -n " + sw_ + " ";
    const std::string hd = "ip -n " + head_ + " ";
    const std::vector<std::string> cmds = {
        "ip netns add " + sw_, "ip netns add " + head_,
        "ip link add " + port_ + " netns " + sw_ + " type veth peer name " + in_ + " netns " + head_,
        "ip link add " + out_ + " netns " + head_ + " type veth peer name " + out_peer_ + " netns " + head_,
        sw + "link add " + br_ + " type bridge mcast_snooping 1 mcast_querier 1 mcast_igmp_version " +
            std::to_string(version) + " mcast_query_use_ifaddr 1 mcast_query_interval " +
            std::to_string(kQueryIntervalCs) + " mcast_query_response_interval " + std::to_string(kQueryResponseCs) +
            " mcast_startup_query_interval " + std::to_string(kQueryIntervalCs) + " mcast_membership_interval " +
            std::to_string(kMembershipCs) + " mcast_last_member_interval 10 mcast_last_member_count 1",
        sw + "link set " + port_ + " master " + br_, "bridge -n " + sw_ + " link set dev " + port_ + " fastleave on",
        sw + "addr add " + bridge_ip_ + "/24 dev " + br_, sw + "link set lo up", sw + "link set " + port_ + " up",
        sw + "link set " + br_ + " up", hd + "link set lo up", hd + "link set " + in_ + " up",
        hd + "link set " + out_ + " up", hd + "link set " + out_peer_ + " up"};
    ASSERT_NO_FATAL_FAILURE(run_setup_commands(cmds));
    const std::string details = run(sw + "-d link show " + br_).out;
    ASSERT_NE(details.find("mcast_igmp_version " + std::to_string(version)), std::string::npos) << details;
  }

  // Every IGMP frame crossing the bridge's port to the data plane, both ways.
  void start_capture() {
    capture_ = std::thread([this] {
      if (!enter_netns(sw_)) return;
      const int s = packet_socket(port_, 50ms);
      if (s < 0) return;
      capture_ready_ = true;
      std::uint8_t buf[2048];
      while (!capture_stop_) {
        sockaddr_ll from{};
        socklen_t from_len = sizeof from;
        const ssize_t n = ::recvfrom(s, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n <= 0) continue;
        auto msg = decode_igmp(buf, static_cast<std::size_t>(n));
        if (!msg) continue;
        msg->at = std::chrono::steady_clock::now();
        msg->from_bridge = from.sll_pkttype == PACKET_OUTGOING;
        std::lock_guard<std::mutex> lock(mu_);
        seen_.push_back(*msg);
      }
      ::close(s);
    });
    for (int i = 0; i < 100 && !capture_ready_; ++i) std::this_thread::sleep_for(10ms);
  }
  void stop_capture() {
    capture_stop_ = true;
    if (capture_.joinable()) capture_.join();
  }
  std::vector<IgmpSeen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

  // The seconds the bridge's mdb entry for the group on the data plane's port has left
  // before it expires (`bridge -s mdb show` prints them last), or nothing when absent.
  std::optional<double> mdb_timer() {
    std::istringstream mdb(run("bridge -s -n " + sw_ + " mdb show dev " + br_).out);
    const std::string key = "port " + port_ + " grp " + kGroup + " ";
    for (std::string line; std::getline(mdb, line);) {
      if (line.find(key) == std::string::npos) continue;
      const auto last = line.find_last_of(' ');
      try {
        return std::stod(line.substr(last + 1));
      } catch (const std::exception&) {
        return -1.0;  // present, timer unreadable: fails the bound check
      }
    }
    return std::nullopt;
  }
  bool mdb_has_group() { return mdb_timer().has_value(); }

  pid_t start_forwarder() {
    const pid_t pid = children_.start(
        {"ip", "netns", "exec", head_, tool("dp_forwarder").string(), "--in-dev", "net_af_packet0,iface=" + in_,
         "--in-ip", in_ip_, "--in-mac", kOurMac, "--out-dev", "net_af_packet1,iface=" + out_, "--out-ip", out_ip_,
         "--input", std::string("udp://") + kGroup + ":5000", "--output", "udp://239.2.2.2:5000", "--pipeline",
         "passthrough", "--file-prefix", "tcqd" + sfx_},
        dir_, "forwarder");
    for (int i = 0; i < 300; ++i) {
      if (read_text(dir_ / "forwarder.err").find("running") != std::string::npos) return pid;
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        children_.forget(pid);
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "dp_forwarder did not start: " << read_text(dir_ / "forwarder.err");
    return -1;
  }

  // What one run against a querier of `version` gave.
  struct Session {
    std::vector<IgmpSeen> frames;
    std::chrono::steady_clock::time_point running, mdb_first, stopping;
    bool mdb_held = false;       // present at every poll from first sight until the stop
    bool mdb_gone_after = false; // absent within a second of the stop
    double mdb_timer_min = 1e9, mdb_timer_max = -1;  // seconds left, over the polls
    std::string mdb_log;
    std::string stats;
  };

  // Starts the forwarder joined to kGroup, watches the bridge's mdb for kRunFor, stops it
  // with SIGTERM and watches the group leave the mdb.
  void run_session(int version, Session& out) {
    ASSERT_NO_FATAL_FAILURE(build_network(version));
    start_capture();
    ASSERT_TRUE(capture_ready_) << "no packet socket in " << sw_;
    const pid_t fwd = start_forwarder();
    ASSERT_GT(fwd, 0);
    out.running = std::chrono::steady_clock::now();
    bool first = false;
    out.mdb_held = true;
    // A guard only (the loop ends kRunFor after the group first shows up): roomy enough for
    // a join that reaches the bridge late on a loaded machine.
    while (std::chrono::steady_clock::now() < out.running + kRunFor + 10s) {
      const std::optional<double> timer = mdb_timer();
      const bool has = timer.has_value();
      const auto now = std::chrono::steady_clock::now();
      if (has) {
        out.mdb_timer_min = std::min(out.mdb_timer_min, *timer);
        out.mdb_timer_max = std::max(out.mdb_timer_max, *timer);
      }
      if (has && !first) {
        first = true;
        out.mdb_first = now;
      }
      if (first && !has) out.mdb_held = false;
      out.mdb_log += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - out.running).count()) +
                     (has ? "ms:" + std::to_string(*timer) + " " : "ms:out ");
      if (first && now >= out.mdb_first + kRunFor) break;
      std::this_thread::sleep_for(200ms);
    }
    if (!first) out.mdb_held = false;
    out.stopping = std::chrono::steady_clock::now();
    int st = 0;
    EXPECT_TRUE(terminate_child(fwd, 10s, SIGTERM, &st)) << "dp_forwarder did not stop on SIGTERM";
    children_.forget(fwd);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(dir_ / "forwarder.err");
    for (int i = 0; i < 20 && !out.mdb_gone_after; ++i) {
      out.mdb_gone_after = !mdb_has_group();
      if (!out.mdb_gone_after) std::this_thread::sleep_for(50ms);
    }
    // Our leave went out before the forwarder exited, but the capture thread may not have
    // read it yet on a loaded machine: wait (bounded) until it saw a leave of ours (v2 0x17,
    // or a v3 record CHANGE_TO_INCLUDE {}), instead of a fixed 100 ms. The tests assert
    // that our last frame is that leave and that it came after the stop.
    (void)poll_until(5000ms, [&] {
      const std::vector<IgmpSeen> frames = seen();
      return std::any_of(frames.begin(), frames.end(), [](const IgmpSeen& f) {
        return !f.from_bridge && (f.type == 0x17 || (f.type == 0x22 && f.v3_record_type == 3));
      });
    });
    stop_capture();
    out.frames = seen();
    out.stats = read_text(dir_ / "forwarder.out");
  }

  // The capture, one line a frame (for failure messages).
  static std::string transcript(const Session& s) {
    std::string t;
    for (const auto& f : s.frames) {
      t += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(f.at - s.running).count()) + "ms " +
           f.text() + "\n";
    }
    return t + "mdb: " + s.mdb_log + "\nstats: " + s.stats;
  }

  // The entry held all along is a dynamic one with the membership interval (2 s) to live,
  // so it stayed only because reports kept refreshing it.
  static void expect_entry_would_expire(const Session& s) {
    EXPECT_GT(s.mdb_timer_min, 0.0) << transcript(s);
    EXPECT_LE(s.mdb_timer_max, kMembershipCs / 100.0 + 0.01) << transcript(s);
  }

  // Every general query the bridge sent while the forwarder ran has an answer of
  // `report_type` from us within its max response time; the queries it sent, in *queries.
  static void expect_queries_answered(const Session& s, std::uint8_t report_type, std::size_t query_size,
                                      std::size_t* queries) {
    *queries = 0;
    for (std::size_t i = 0; i < s.frames.size(); ++i) {
      const IgmpSeen& q = s.frames[i];
      if (!q.from_bridge || q.type != 0x11 || q.group != "0.0.0.0") continue;
      EXPECT_EQ(q.igmp_size, query_size) << "the bridge's query is not of the version asked for\n" << transcript(s);
      if (q.at < s.running || q.at + 1500ms > s.stopping) continue;  // started/stopped around it
      ++*queries;
      const auto due = q.at + std::chrono::milliseconds(int{q.code} * 100);
      bool answered = false;
      for (std::size_t k = i + 1; k < s.frames.size() && s.frames[k].at <= due && !answered; ++k) {
        answered = !s.frames[k].from_bridge && s.frames[k].type == report_type && s.frames[k].src_mac == kOurMac;
      }
      EXPECT_TRUE(answered) << "query at "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(q.at - s.running).count()
                            << "ms not answered with type " << unsigned{report_type} << "\n"
                            << transcript(s);
    }
  }

  std::string sfx_;
  std::string sw_, head_, br_, port_, in_, out_, out_peer_;
  std::string bridge_ip_, in_ip_, out_ip_;
  std::filesystem::path dir_;
  Children children_;
  std::thread capture_;
  std::atomic<bool> capture_stop_{false};
  std::atomic<bool> capture_ready_{false};
  std::mutex mu_;
  std::vector<IgmpSeen> seen_;
};

TEST_F(IgmpQuerierNs, V2QuerierGetsV2ReportsAndAV2Leave) {
  Session s;
  ASSERT_NO_FATAL_FAILURE(run_session(2, s));
  const std::string t = transcript(s);

  // (1) The snooping switch kept the group through three membership intervals: its entry
  // dies 2 s after the last report it took, so our answers to its queries refreshed it.
  EXPECT_TRUE(s.mdb_held) << t;
  EXPECT_GE(std::chrono::duration_cast<std::chrono::milliseconds>(s.stopping - s.mdb_first).count(), kRunFor.count())
      << t;
  expect_entry_would_expire(s);

  // (2) Its v2 queries (8 bytes) answered by IGMPv2 membership reports, in time.
  std::size_t queries = 0;
  expect_queries_answered(s, 0x16, 8, &queries);
  EXPECT_GE(queries, 3u) << t;
  std::vector<const IgmpSeen*> ours;
  for (const auto& f : s.frames) {
    if (!f.from_bridge) ours.push_back(&f);
  }
  ASSERT_GE(ours.size(), 4u) << t;
  // First the unsolicited join, sent before any query can have been heard: IGMPv3
  // CHANGE_TO_EXCLUDE {} for the group, the data plane's default mode.
  EXPECT_EQ(ours.front()->type, 0x22) << t;
  EXPECT_EQ(ours.front()->v3_record_type, 4) << t;
  EXPECT_EQ(ours.front()->v3_record_group, kGroup) << t;
  bool after_first_query = false;  // one that reached the data plane (sent after our join)
  std::size_t v2_reports = 0, v2_leaves = 0;
  for (const auto& f : s.frames) {
    if (f.from_bridge) {
      after_first_query = after_first_query || (f.type == 0x11 && f.at > ours.front()->at);
      continue;
    }
    EXPECT_EQ(f.src_mac, kOurMac) << t;
    EXPECT_EQ(f.src, in_ip_) << t;
    EXPECT_EQ(f.ttl, 1) << t;
    EXPECT_TRUE(f.router_alert) << t;
    EXPECT_TRUE(f.checksums_ok) << t;
    // Until it hears the v2 querier the data plane speaks IGMPv3; from then on only v2.
    if (after_first_query) {
      EXPECT_TRUE(f.type == 0x16 || f.type == 0x17) << t;
    }
    if (f.type == 0x16) {
      ++v2_reports;
      EXPECT_EQ(f.igmp_size, 8u) << t;
      EXPECT_EQ(f.group, kGroup) << t;
      EXPECT_EQ(f.dst, kGroup) << t;
      EXPECT_EQ(f.dst_mac, "01:00:5e:01:01:01") << t;
    }
    if (f.type == 0x17) ++v2_leaves;
  }
  EXPECT_GE(v2_reports, queries) << t;

  // (3) SIGTERM: one v2 leave for the group to all-routers, last, and the group leaves the
  // mdb at once (fast-leave port).
  EXPECT_EQ(v2_leaves, 1u) << t;
  const IgmpSeen& leave = *ours.back();
  EXPECT_EQ(leave.type, 0x17) << t;
  EXPECT_EQ(leave.igmp_size, 8u) << t;
  EXPECT_EQ(leave.group, kGroup) << t;
  EXPECT_EQ(leave.dst, "224.0.0.2") << t;
  EXPECT_EQ(leave.dst_mac, "01:00:5e:00:00:02") << t;
  EXPECT_TRUE(leave.at >= s.stopping) << t;
  EXPECT_TRUE(s.mdb_gone_after) << t;

  // The data plane's own view: the input port in IGMPv2 mode, every v2 message we saw
  // counted as a compatibility report; the output port (no querier there) still at v3.
  EXPECT_EQ(json_number(s.stats, "igmp_version", 0), 2u) << t;
  EXPECT_EQ(json_number(s.stats, "igmp_compat_reports", 0), v2_reports + v2_leaves) << t;
  EXPECT_EQ(json_number(s.stats, "igmp_reports_sent", 0), ours.size()) << t;
  EXPECT_GE(json_number(s.stats, "igmp_queries", 0), queries) << t;
  EXPECT_EQ(json_number(s.stats, "igmp_ssm_as_asm", 0), 0u) << t;
  EXPECT_EQ(json_number(s.stats, "igmp_version", 1), 3u) << t;
  EXPECT_EQ(json_number(s.stats, "igmp_queries", 1), 0u) << t;
  EXPECT_EQ(json_number(s.stats, "igmp_compat_reports", 1), 0u) << t;
}

TEST_F(IgmpQuerierNs, V3QuerierGetsV3Reports) {
  Session s;
  ASSERT_NO_FATAL_FAILURE(run_session(3, s));
  const std::string t = transcript(s);
  EXPECT_TRUE(s.mdb_held) << t;
  EXPECT_GE(std::chrono::duration_cast<std::chrono::milliseconds>(s.stopping - s.mdb_first).count(), kRunFor.count())
      << t;
  expect_entry_would_expire(s);

  // (4) v3 queries (12 bytes and more) answered by v3 reports only.
  std::size_t queries = 0;
  expect_queries_answered(s, 0x22, 12, &queries);
  EXPECT_GE(queries, 3u) << t;
  std::vector<const IgmpSeen*> ours;
  for (const auto& f : s.frames) {
    if (f.from_bridge) continue;
    ours.push_back(&f);
    EXPECT_EQ(f.src_mac, kOurMac) << t;
    EXPECT_EQ(f.src, in_ip_) << t;
    EXPECT_EQ(f.type, 0x22) << t;
    EXPECT_EQ(f.dst, "224.0.0.22") << t;
    EXPECT_EQ(f.ttl, 1) << t;
    EXPECT_TRUE(f.router_alert) << t;
    EXPECT_TRUE(f.checksums_ok) << t;
    EXPECT_EQ(f.v3_record_group, kGroup) << t;
  }
  ASSERT_GE(ours.size(), 4u) << t;
  // The leave: CHANGE_TO_INCLUDE_MODE {} (record type 3), after the stop; the mdb drops it.
  EXPECT_EQ(ours.back()->v3_record_type, 3) << t;
  EXPECT_TRUE(ours.back()->at >= s.stopping) << t;
  EXPECT_TRUE(s.mdb_gone_after) << t;

  EXPECT_EQ(json_number(s.stats, "igmp_version", 0), 3u) << t;
  EXPECT_EQ(json_number(s.stats, "igmp_compat_reports", 0), 0u) << t;
  EXPECT_EQ(json_number(s.stats, "igmp_reports_sent", 0), ours.size()) << t;
  EXPECT_GE(json_number(s.stats, "igmp_queries", 0), queries) << t;
}

}  // namespace
}  // namespace twincast::test
