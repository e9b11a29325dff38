// Integration (root): the data plane on net_af_packet between network namespaces.
//
//   [src] veth ─── veth [head: dp_forwarder] veth ─── veth [stb]
//   ffmpeg -re -> 239.1.1.1:5000           -> 239.2.2.2:5000 -> kernel socket (joined)
//
// Checks: the stream arrives in stb with its program and streams (ffprobe) and no CC error
// (twincast-ts analyze); src's kernel resolves the data plane's address by ARP; IGMPv3
// reports (join, then leave on stop) leave toward src. Namespaces get a random suffix and
// are deleted in TearDown, child processes killed, even when an assertion fails.
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

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
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

class DataplaneNs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    std::random_device rd;
    sfx_ = random_suffix(rd);
    net_ = static_cast<int>(100 + rd() % 100);
    src_ = "tcsrc" + sfx_;
    head_ = "tchead" + sfx_;
    stb_ = "tcstb" + sfx_;
    veth_src_ = "tcs" + sfx_;
    veth_h1_ = "tch1" + sfx_;
    veth_h2_ = "tch2" + sfx_;
    veth_stb_ = "tcb" + sfx_;
    src_ip_ = addr(1, 1);
    in_ip_ = addr(1, 2);
    out_ip_ = addr(2, 2);
    stb_ip_ = addr(2, 3);
    dir_ = temp_dir("dp_ns");
    const std::vector<std::string> cmds = {
        "ip netns add " + src_, "ip netns add " + head_, "ip netns add " + stb_,
        "ip link add " + veth_src_ + " netns " + src_ + " type veth peer name " + veth_h1_ + " netns " + head_,
        "ip link add " + veth_stb_ + " netns " + stb_ + " type veth peer name " + veth_h2_ + " netns " + head_,
        "ip -n " + src_ + " addr add " + src_ip_ + "/24 dev " + veth_src_,
        "ip -n " + src_ + " link set " + veth_src_ + " up", "ip -n " + src_ + " link set lo up",
        "ip -n " + src_ + " route add 224.0.0.0/4 dev " + veth_src_,
        "ip -n " + stb_ + " addr add " + stb_ip_ + "/24 dev " + veth_stb_,
        "ip -n " + stb_ + " link set " + veth_stb_ + " up", "ip -n " + stb_ + " link set lo up",
        "ip -n " + stb_ + " route add 224.0.0.0/4 dev " + veth_stb_,
        "ip -n " + head_ + " link set " + veth_h1_ + " up", "ip -n " + head_ + " link set " + veth_h2_ + " up",
        "ip -n " + head_ + " link set lo up"};
    ASSERT_NO_FATAL_FAILURE(run_setup_commands(cmds));
  }

  void TearDown() override {
    stop_capture();
    for (pid_t p : children_.pids()) {
      ::kill(p, SIGKILL);
      int st = 0;
      ::waitpid(p, &st, 0);
    }
    delete_netns({src_, head_, stb_});
    if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::string addr(int subnet, int host) const {
    return "10." + std::to_string(net_) + "." + std::to_string(subnet) + "." + std::to_string(host);
  }

  pid_t start_child(const std::vector<std::string>& args, const std::string& tag) {
    return children_.start(args, dir_, tag);
  }
  // SIGTERM, wait, forget; false when it had to be killed.
  bool end_child(pid_t pid, std::chrono::milliseconds grace) {
    int st = 0;
    const bool ok = terminate_child(pid, grace, SIGTERM, &st);
    children_.forget(pid);
    return ok;
  }

  // Captures ARP and IGMP frames on src's veth (a packet socket in src's namespace).
  void start_capture() {
    capture_ = std::thread([this] {
      if (!enter_netns(src_)) return;
      const int s = ::socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
      if (s < 0) return;
      sockaddr_ll sll{};
      sll.sll_family = AF_PACKET;
      sll.sll_protocol = htons(ETH_P_ALL);
      sll.sll_ifindex = static_cast<int>(if_nametoindex(veth_src_.c_str()));
      timeval tv{0, 100000};
      ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (::bind(s, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
        ::close(s);
        return;
      }
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
        {"ip", "netns", "exec", head_, tool("dp_forwarder").string(), "--in-dev", "net_af_packet0,iface=" + veth_h1_,
         "--in-ip", in_ip_, "--in-mac", kOurMac, "--out-dev", "net_af_packet1,iface=" + veth_h2_, "--out-ip", out_ip_,
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

  std::string sfx_;
  int net_ = 0;
  std::string src_, head_, stb_, veth_src_, veth_h1_, veth_h2_, veth_stb_;
  std::string src_ip_, in_ip_, out_ip_, stb_ip_;
  std::filesystem::path dir_;
  Children children_;
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
  std::this_thread::sleep_for(200ms);  // the leave report on its way
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

}  // namespace
}  // namespace twincast::test
