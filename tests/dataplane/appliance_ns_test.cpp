// Integration (root): twincastd, the whole appliance, between network namespaces with real peers.
//
//   [src] veth 10.50.0.1 ─── veth [head: twincastd, DPDK af_packet "in"  10.50.0.2]
//                                  [                       af_packet "out" 10.60.0.2] veth ─── veth 10.60.0.1 [stb]
//   [src] veth 10.70.0.1 ─── veth 10.70.0.2 [head's kernel: libsrt listener]   (the "SRT link")
//
// src runs the senders (ffmpeg UDP/RTP/SRT callers, a garbage sender), head runs twincastd
// from a channel map the test writes, stb runs the receivers: a kernel UDP socket that keeps
// every datagram's bytes and arrival time (the raw output: continuity counters, RTP
// sequence, gaps), and ffprobe/ffmpeg reading the multicast themselves. The head's two
// data-plane veths carry no kernel address; the third veth pair is kernel-only, for SRT
// (tc netem on it models a bad contribution link; without sch_netem, a tc classifier drops
// packets on it and a relay in src delays them).
//
// Continuity is judged on the raw capture with `twincast-ts analyze`: a capture that ffmpeg
// remuxed (-c copy) would carry ffmpeg's own continuity counters, not the appliance's.
//
// Namespaces get a random suffix and are deleted in TearDown, every child (twincastd:
// SIGTERM then SIGKILL) is stopped there too, even when an assertion fails. Traffic stays
// inside these namespaces.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "dataplane/multicast_receiver.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "dataplane/ns_appliance.hpp"
#include "dataplane/tc_loss.hpp"
#include "tests_common.hpp"

namespace twincast::test {
namespace {

using namespace std::chrono_literals;
using ByteVec = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

constexpr const char* kSrcIp = "10.50.0.1";
constexpr const char* kInIp = "10.50.0.2";
constexpr const char* kOutIp = "10.60.0.2";
constexpr const char* kStbIp = "10.60.0.1";
constexpr const char* kSrtSrcIp = "10.70.0.1";
constexpr const char* kSrtHeadIp = "10.70.0.2";
constexpr const char* kPassphrase = "appliance-ns-secret-7";

// `key=N` on the last status line that starts with `line_start` ("port=in ", "channel=x input=y ").
std::optional<std::uint64_t> status_value(const std::string& log, const std::string& line_start, const std::string& key) {
  std::optional<std::uint64_t> value;
  std::size_t at = 0;
  while ((at = log.find(line_start, at)) != std::string::npos) {
    if (at == 0 || log[at - 1] == '\n') {
      const std::size_t eol = log.find('\n', at);
      const std::string line = log.substr(at, eol == std::string::npos ? std::string::npos : eol - at);
      const std::size_t k = line.find(" " + key + "=");
      if (k != std::string::npos) value = std::stoull(line.substr(k + key.size() + 2));
    }
    ++at;
  }
  return value;
}

// The last status line that starts with `line_start`, or "".
std::string status_line(const std::string& log, const std::string& line_start) {
  std::string line;
  std::size_t at = 0;
  while ((at = log.find(line_start, at)) != std::string::npos) {
    if (at == 0 || log[at - 1] == '\n') {
      const std::size_t eol = log.find('\n', at);
      line = log.substr(at, eol == std::string::npos ? std::string::npos : eol - at);
    }
    ++at;
  }
  return line;
}

// How many status lines start with `line_start` (twincastd writes one set a second).
std::size_t status_lines(const std::string& log, const std::string& line_start) {
  std::size_t n = 0;
  for (std::size_t at = log.find(line_start); at != std::string::npos; at = log.find(line_start, at + 1)) {
    if (at == 0 || log[at - 1] == '\n') ++n;
  }
  return n;
}

// stb's set-top box: a MulticastReceiver that joins on stb's address unless told otherwise.
struct Receiver : MulticastReceiver {
  Receiver(std::string ns, std::string group, std::uint16_t port, std::string iface = kStbIp)
      : MulticastReceiver(std::move(ns), std::move(group), port, std::move(iface)) {}
};

// Sends UDP datagrams from src on a thread: `make` builds each payload, `rate` per second.
class UdpSender {
 public:
  using Maker = std::function<ByteVec(std::uint64_t)>;
  UdpSender(std::string ns, std::string group, std::uint16_t port, unsigned rate, Maker make)
      : ns_(std::move(ns)), group_(std::move(group)), port_(port), rate_(rate), make_(std::move(make)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~UdpSender() { stop(); }
  UdpSender(const UdpSender&) = delete;
  UdpSender& operator=(const UdpSender&) = delete;
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::uint64_t sent() const { return sent_; }

 private:
  void loop() {
    if (!enter_netns(ns_)) return;
    const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    in_addr ifaddr{};
    inet_pton(AF_INET, kSrcIp, &ifaddr);
    ::setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof ifaddr);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    inet_pton(AF_INET, group_.c_str(), &a.sin_addr);
    const auto start = Clock::now();
    std::uint64_t i = 0;
    while (!stop_) {
      const ByteVec d = make_(i);
      if (::sendto(s, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) >= 0) ++sent_;
      ++i;
      // Pace in bursts of 10: `rate` datagrams per second on average.
      if (i % 10 == 0) std::this_thread::sleep_until(start + std::chrono::microseconds(i * 1000000 / rate_));
    }
    ::close(s);
  }

  std::string ns_, group_;
  std::uint16_t port_;
  unsigned rate_;
  Maker make_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sent_{0};
};

// A bad contribution link in user space: a UDP relay in src between the SRT caller and the
// listener that drops `loss_percent` of the caller's packets at random and delays both
// directions by `delay`. It stands in for `tc qdisc ... netem loss 2% delay 20ms` on the
// SRT veth when the kernel has no sch_netem (SrtRecoversFromALossyContributionLink uses
// netem itself where it can).
class LossyRelay {
 public:
  LossyRelay(std::string ns, std::string listen_ip, std::uint16_t listen_port, std::string to_ip, std::uint16_t to_port,
             unsigned loss_percent, std::chrono::milliseconds delay)
      : ns_(std::move(ns)), listen_ip_(std::move(listen_ip)), to_ip_(std::move(to_ip)), listen_port_(listen_port),
        to_port_(to_port), loss_percent_(loss_percent), delay_(delay) {
    thread_ = std::thread([this] { loop(); });
    for (int i = 0; i < 200 && !ready_ && !failed_; ++i) std::this_thread::sleep_for(10ms);
  }
  ~LossyRelay() { stop(); }
  LossyRelay(const LossyRelay&) = delete;
  LossyRelay& operator=(const LossyRelay&) = delete;
  [[nodiscard]] bool ready() const { return ready_; }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::uint64_t forwarded() const { return forwarded_; }
  [[nodiscard]] std::uint64_t dropped() const { return dropped_; }

 private:
  struct Held {
    Clock::time_point due;
    ByteVec bytes;
  };
  static sockaddr_in address(const std::string& ip, std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    return a;
  }
  void loop() {
    if (!enter_netns(ns_)) {
      failed_ = true;
      return;
    }
    const int front = ::socket(AF_INET, SOCK_DGRAM, 0);  // the caller's side
    const int back = ::socket(AF_INET, SOCK_DGRAM, 0);   // toward the listener
    const sockaddr_in listen = address(listen_ip_, listen_port_);
    const sockaddr_in local = address(listen_ip_, 0);
    const sockaddr_in to = address(to_ip_, to_port_);
    if (::bind(front, reinterpret_cast<const sockaddr*>(&listen), sizeof listen) != 0 ||
        ::bind(back, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
      ::close(front);
      ::close(back);
      failed_ = true;
      return;
    }
    ready_ = true;
    std::mt19937 rng(12345);
    std::optional<sockaddr_in> caller;
    std::deque<Held> upstream, downstream;  // a constant delay keeps each direction in order
    std::vector<std::uint8_t> buf(65536);
    while (!stop_) {
      pollfd fds[2] = {{front, POLLIN, 0}, {back, POLLIN, 0}};
      (void)::poll(fds, 2, 1);
      const auto now = Clock::now();
      if ((fds[0].revents & POLLIN) != 0) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        const ssize_t n = ::recvfrom(front, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n > 0) {
          caller = from;
          if (rng() % 100 < loss_percent_) {
            ++dropped_;
          } else {
            upstream.push_back(Held{now + delay_, ByteVec(buf.begin(), buf.begin() + n)});
          }
        }
      }
      if ((fds[1].revents & POLLIN) != 0) {
        const ssize_t n = ::recv(back, buf.data(), buf.size(), 0);
        if (n > 0) downstream.push_back(Held{now + delay_, ByteVec(buf.begin(), buf.begin() + n)});
      }
      while (!upstream.empty() && upstream.front().due <= now) {
        (void)::sendto(back, upstream.front().bytes.data(), upstream.front().bytes.size(), 0,
                       reinterpret_cast<const sockaddr*>(&to), sizeof to);
        ++forwarded_;
        upstream.pop_front();
      }
      while (!downstream.empty() && downstream.front().due <= now) {
        if (caller) {
          (void)::sendto(front, downstream.front().bytes.data(), downstream.front().bytes.size(), 0,
                         reinterpret_cast<const sockaddr*>(&*caller), sizeof *caller);
        }
        downstream.pop_front();
      }
    }
    ::close(front);
    ::close(back);
  }

  std::string ns_, listen_ip_, to_ip_;
  std::uint16_t listen_port_, to_port_;
  unsigned loss_percent_;
  std::chrono::milliseconds delay_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> failed_{false};
  std::atomic<std::uint64_t> forwarded_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

// The TS bytes of a capture: UDP payloads as they are, RTP payloads after the 12-byte
// header (checked: version 2, payload type 33, consecutive sequence numbers).
struct Stream {
  ByteVec ts;
  std::size_t bad_datagrams = 0;  // not whole 188-byte packets, or more than 7
  std::size_t rtp_bad = 0;
  std::size_t rtp_gaps = 0;
  std::chrono::milliseconds max_gap{0};  // the longest silence between two datagrams
};

Stream assemble(const std::vector<Receiver::Datagram>& ds, bool rtp) {
  Stream s;
  std::optional<std::uint16_t> last_seq;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    const ByteVec& d = ds[i].bytes;
    if (i > 0) {
      s.max_gap = std::max(s.max_gap, std::chrono::milliseconds((ds[i].kernel_ns - ds[i - 1].kernel_ns) / 1000000));
    }
    std::size_t off = 0;
    if (rtp) {
      if (d.size() < 12 || d[0] != 0x80 || (d[1] & 0x7F) != 33) {
        ++s.rtp_bad;
        continue;
      }
      const auto seq = static_cast<std::uint16_t>((d[2] << 8) | d[3]);
      if (last_seq && seq != static_cast<std::uint16_t>(*last_seq + 1)) ++s.rtp_gaps;
      last_seq = seq;
      off = 12;
    }
    const std::size_t n = d.size() - off;
    if (n == 0 || n % 188 != 0 || n > 7 * 188) {
      ++s.bad_datagrams;
      continue;
    }
    s.ts.insert(s.ts.end(), d.begin() + static_cast<std::ptrdiff_t>(off), d.end());
  }
  return s;
}

std::uint16_t pid_of(const std::uint8_t* p) { return static_cast<std::uint16_t>(((p[1] & 0x1F) << 8) | p[2]); }


// What every output check wants: the analyzer's report of the raw capture (zero
// continuity errors, the service), and a clean decode of its whole GOPs.
struct OutputReport {
  std::string analyze;  // twincast-ts analyze --json
  std::size_t frames = 0;
  std::string decode_errors;
};

OutputReport check_output(const Stream& s, const std::filesystem::path& dir, const std::string& tag,
                          std::uint16_t video_pid) {
  OutputReport r;
  const auto raw = dir / (tag + ".ts");
  write_file(raw, s.ts);
  const RunResult an = run(shell_quote(tool("twincast-ts").string()) + " analyze --json " + shell_quote(raw.string()));
  EXPECT_EQ(an.exit_code, 0) << tag << ": " << an.out;
  r.analyze = an.out;
  EXPECT_EQ(json_number(an.out, "Continuity_count_error"), 0u) << tag << ": " << an.out;
  EXPECT_EQ(json_number(an.out, "Sync_byte_error"), 0u) << tag;
  EXPECT_EQ(json_number(an.out, "CRC_error"), 0u) << tag;
  const ByteVec gops = whole_gops(s.ts, video_pid);
  EXPECT_FALSE(gops.empty()) << tag << ": no two key frames on PID " << video_pid << " in " << s.ts.size() << " bytes";
  if (gops.empty()) return r;
  const auto cut = dir / (tag + "_gops.ts");
  write_file(cut, gops);
  const auto frames = dir / (tag + ".framecrc");
  const auto errors = dir / (tag + ".decode_errors");
  const RunResult dec = run("ffmpeg -nostdin -v error -i " + shell_quote(cut.string()) + " -map 0:v:0 -f framecrc " +
                            shell_quote(frames.string()) + " 2>" + shell_quote(errors.string()));
  EXPECT_EQ(dec.exit_code, 0) << tag << ": " << read_text(errors);
  r.decode_errors = read_text(errors);
  EXPECT_EQ(r.decode_errors, "") << tag;
  std::istringstream lines(read_text(frames));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] != '#') ++r.frames;
  }
  return r;
}

class ApplianceNs : public NsApplianceTest {
 protected:
  void SetUp() override {
    if (const std::string why = netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_NO_FATAL_FAILURE(create_testbed({.prefix = "ta", .dir_name = "appliance_ns", .src_ip = kSrcIp, .in_ip = kInIp,
                                            .out_ip = kOutIp, .stb_ip = kStbIp}));
    // The SRT link: a third veth pair between src and head, kernel addresses on both ends.
    veth_srt_src_ = "tar" + sfx_;
    veth_srt_head_ = "tah" + sfx_;
    const std::string s = "ip -n " + src_ + " ", h = "ip -n " + head_ + " ";
    ASSERT_NO_FATAL_FAILURE(run_setup_commands({
        "ip link add " + veth_srt_src_ + " netns " + src_ + " type veth peer name " + veth_srt_head_ + " netns " + head_,
        s + "addr add " + kSrtSrcIp + "/24 dev " + veth_srt_src_, s + "link set " + veth_srt_src_ + " up",
        h + "addr add " + kSrtHeadIp + "/24 dev " + veth_srt_head_, h + "link set " + veth_srt_head_ + " up"}));
    std::ofstream(dir_ / "srt.key") << kPassphrase << "\n";
    ::chmod((dir_ / "srt.key").c_str(), 0600);
  }

  void TearDown() override {
    receivers_.clear();
    NsApplianceTest::TearDown();
  }

  // The channel map with `channels` (list items) under "channels:"; twincastd running.
  pid_t start_appliance(const std::string& channels) { return start_twincastd("channels:\n" + channels); }

  // ffmpeg in src looping a fixture in real time to `url` (format mpegts or rtp_mpegts).
  pid_t start_ffmpeg_sender(const std::string& fixture_name, const std::string& format, const std::string& url,
                            const std::string& tag) {
    return start_child({"ip", "netns", "exec", src_, "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop",
                        "-1", "-i", fixture(fixture_name).string(), "-map", "0", "-c", "copy", "-f", format, url},
                       tag);
  }
  static std::string udp_url(const std::string& group, int port) {
    return "udp://" + group + ":" + std::to_string(port) + "?pkt_size=1316&ttl=4&localaddr=" + kSrcIp;
  }

  Receiver& receive(const std::string& group, std::uint16_t port) {
    receivers_.push_back(std::make_unique<Receiver>(stb_, group, port));
    EXPECT_TRUE(receivers_.back()->ready()) << "cannot join " << group << " in " << stb_;
    return *receivers_.back();
  }

  // Waits (up to `timeout`) until twincastd wrote `more` status lines starting with
  // `line_start` after the log `since`: the second one was written at least a status
  // interval after the call, whatever the machine's load made of the first.
  bool wait_status_lines(const std::string& since, const std::string& line_start, std::size_t more,
                         std::chrono::milliseconds timeout) {
    const std::size_t before = status_lines(since, line_start);
    return wait_status([&](const std::string& l) { return status_lines(l, line_start) >= before + more; }, timeout);
  }

  // Waits (bounded) for the receiver's first datagram: the output starts once ffmpeg in src
  // is up and the channel has its PSI and a key frame, which a loaded machine can delay by
  // seconds; the tests' fixed observation windows start from there.
  static void wait_first(Receiver& rx, std::chrono::milliseconds timeout = std::chrono::milliseconds(15000)) {
    (void)poll_until(timeout, [&] { return rx.count() > 0; });
  }

  // Polls the status log until `pred(log)` or the timeout.
  bool wait_status(const std::function<bool(const std::string&)>& pred, std::chrono::milliseconds timeout) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      if (pred(appliance_log())) return true;
      std::this_thread::sleep_for(100ms);
    }
    return pred(appliance_log());
  }

  // 2b. (see the tests) UDP or RTP from ffmpeg over a source link that loses 2 % of its
  // packets (a tc classifier in the kernel, TcLoss; the same on a kernel with netem). The
  // input sees the loss: continuity errors at the input (/metrics), and for RTP each lost
  // datagram in rtp_lost (status line and /metrics: more than none, no more than the link
  // dropped, which also counts ffmpeg's RTCP). The channel stays on its input and the
  // receiver sees an output that goes on without a continuity error or a silence: the
  // loss is the source's, the counters say so, the output's numbering is ours.
  void run_lossy_source(bool rtp) {
    const std::string kind = rtp ? "rtp" : "udp";
    const pid_t app = start_appliance("  - id: lossy\n    inputs:\n      - { name: rx, " + kind +
                                      ": { port: in, group: 239.1.1.30, udp_port: 5004 } }\n    outputs:\n"
                                      "      - { udp: { port: out, group: 239.2.2.30, udp_port: 5000, ttl: 4 } }\n");
    ASSERT_GT(app, 0);
    TcLoss loss(src_, veth_src_, 2.0);
    ASSERT_TRUE(loss.ok()) << loss.error();
    ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", rtp ? "rtp_mpegts" : "mpegts",
                                  rtp ? "rtp://239.1.1.30:5004?ttl=4&localaddr=" + std::string(kSrcIp)
                                      : udp_url("239.1.1.30", 5004),
                                  "sender"),
              0);
    Receiver& rx = receive("239.2.2.30", 5000);
    wait_first(rx);
    std::this_thread::sleep_for(6s);
    rx.stop();
    std::this_thread::sleep_for(1100ms);  // one more status line
    const std::string log = appliance_log();
    const RunResult metrics = run(ns_exec(head_) + "curl -sS http://127.0.0.1:9100/metrics");
    const std::uint64_t dropped = loss.dropped();
    stop_twincastd(app);

    const std::string line = "channel=lossy input=rx ";
    auto metric = [&](const std::string& name) {
      const std::string series = name + "{channel=\"lossy\",input=\"rx\"} ";
      const auto at = metrics.out.find(series);
      return at == std::string::npos ? -1.0 : std::strtod(metrics.out.c_str() + at + series.size(), nullptr);
    };
    std::cout << "[ NOTE     ] the link passed " << loss.passed() << " and dropped " << dropped << " packets; "
              << kind << " input: datagrams " << status_value(log, line, "datagrams").value_or(0) << ", CC errors "
              << metric("twincast_input_cc_errors_total");
    if (rtp) std::cout << ", rtp_lost " << status_value(log, line, "rtp_lost").value_or(0);
    std::cout << "\n";
    EXPECT_GT(dropped, 0u);
    EXPECT_GT(metric("twincast_input_cc_errors_total"), 0) << metrics.out;
    if (rtp) {
      const std::uint64_t lost = status_value(log, line, "rtp_lost").value_or(0);
      EXPECT_GT(lost, 0u) << log;
      EXPECT_LE(lost, dropped) << log;
      EXPECT_GE(lost * 2, dropped) << "RTCP is a few packets a second; most of what the link lost is RTP: " << log;
      EXPECT_EQ(status_value(log, line, "rtp_duplicates").value_or(1), 0u) << log;
      EXPECT_GT(metric("twincast_input_rtp_lost_datagrams_total"), 0) << metrics.out;
    } else {
      EXPECT_EQ(log.find("rtp_lost"), std::string::npos) << "no RTP counters on a UDP input: " << log;
      EXPECT_EQ(metric("twincast_input_rtp_lost_datagrams_total"), -1) << metrics.out;
    }
    EXPECT_EQ(status_value(log, "channel=lossy ", "switches").value_or(1), 0u) << log;
    const Stream s = assemble(rx.datagrams(), false);
    ASSERT_GT(s.ts.size(), 188u * 1000) << log << read_text(dir_ / "sender.err");
    EXPECT_EQ(s.bad_datagrams, 0u);
    EXPECT_LT(s.max_gap, 1000ms);
    const auto raw = dir_ / (kind + "_lossy.ts");
    write_file(raw, s.ts);
    const RunResult an = run(shell_quote(tool("twincast-ts").string()) + " analyze --json " + shell_quote(raw.string()));
    EXPECT_EQ(an.exit_code, 0) << an.out;
    EXPECT_EQ(json_number(an.out, "Continuity_count_error"), 0u) << an.out;
    EXPECT_EQ(json_number(an.out, "Sync_byte_error"), 0u) << an.out;
  }

  // 3. (see the tests) An MPTS of three programs split into three SPTS channels by
  // source_service_id; `shared`: one received flow feeds the three channels, otherwise each
  // channel receives its own copy of the MPTS on its own group.
  void run_split(bool shared) {
    const char* const names[3] = {"Alpha", "Bravo", "Charlie"};
    const std::uint16_t video[3] = {0x100, 0x102, 0x104};
    auto in_group = [&](int p) { return shared ? std::string("239.1.1.3") : "239.1.1." + std::to_string(10 + p); };
    std::string channels;
    for (int p = 1; p <= 3; ++p) {
      channels += "  - id: prog" + std::to_string(p) + "\n    service_id: " + std::to_string(400 + p) +
                  "\n    source_service_id: " + std::to_string(p) + "\n    inputs:\n" +
                  "      - { name: rx, udp: { port: in, group: " + in_group(p) + ", udp_port: 5000 } }\n" +
                  "    outputs:\n      - { udp: { port: out, group: 239.2.3." + std::to_string(p) +
                  ", udp_port: 5000, ttl: 4 } }\n";
    }
    const pid_t app = start_appliance(channels);
    ASSERT_GT(app, 0);
    for (int p = 1; p <= (shared ? 1 : 3); ++p) {
      // ffmpeg's muxer would make one program of the six streams; -program keeps the three.
      ASSERT_GT(start_child({"ip", "netns", "exec", src_, "ffmpeg", "-nostdin", "-loglevel", "error", "-re",
                             "-stream_loop", "-1", "-i", fixture("mpts3.ts").string(), "-map", "0", "-c", "copy",
                             "-program", "title=Alpha:program_num=1:st=0:st=1", "-program",
                             "title=Bravo:program_num=2:st=2:st=3", "-program", "title=Charlie:program_num=3:st=4:st=5",
                             "-f", "mpegts", udp_url(in_group(p), 5000)},
                            "sender" + std::to_string(p)),
                0);
    }
    Receiver* rx[3];
    for (int p = 0; p < 3; ++p) rx[p] = &receive("239.2.3." + std::to_string(p + 1), 5000);
    for (Receiver* r : rx) wait_first(*r);
    std::this_thread::sleep_for(5s);
    for (Receiver* r : rx) r->stop();
    const std::string log = appliance_log();
    stop_twincastd(app);
    for (int p = 0; p < 3; ++p) {
      SCOPED_TRACE(names[p]);
      const Stream s = assemble(rx[p]->datagrams(), false);
      ASSERT_GT(s.ts.size(), 188u * 200) << log << read_text(dir_ / "sender1.err");  // Charlie: ~120 kbit/s
      EXPECT_EQ(s.bad_datagrams, 0u);
      const OutputReport r = check_output(s, dir_, "prog" + std::to_string(p + 1), video[p]);
      // One service: ours, under the source's name, with that program's own video PID.
      const std::string svc = "\"services\":[{\"service_id\":" + std::to_string(401 + p) + ",\"name\":\"" + names[p] + "\"";
      EXPECT_NE(r.analyze.find(svc), std::string::npos) << r.analyze;
      EXPECT_EQ(r.analyze.find("\"service_id\"", r.analyze.find("\"service_id\"") + 1), std::string::npos)
          << "more than one service: " << r.analyze;
      EXPECT_NE(r.analyze.find("{\"pid\":" + std::to_string(video[p]) + ",\"stream_type\":27"), std::string::npos)
          << r.analyze;
      EXPECT_GE(r.frames, 50u);
    }
  }

  std::string veth_srt_src_, veth_srt_head_;
  std::vector<std::unique_ptr<Receiver>> receivers_;
};

std::string udp_input(const std::string& name, const std::string& group, int port) {
  return "      - { name: " + name + ", udp: { port: in, group: " + group + ", udp_port: " + std::to_string(port) + " } }\n";
}
std::string output(const std::string& kind, const std::string& group, int port) {
  return "      - { " + kind + ": { port: out, group: " + group + ", udp_port: " + std::to_string(port) + ", ttl: 4 } }\n";
}

// 1. UDP multicast SPTS in, SPTS out with the configured service id, name, provider and LCN.
TEST_F(ApplianceNs, UdpSptsInSptsOutWithTheConfiguredService) {
  const pid_t app = start_appliance(
      "  - id: news\n    name: \"News NS\"\n    provider: \"twincast test\"\n    service_id: 301\n    lcn: 7\n"
      "    inputs:\n" + udp_input("rx", "239.1.1.1", 5000) + "    outputs:\n" + output("udp", "239.2.2.1", 5000));
  ASSERT_GT(app, 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.1", 5000), "sender"), 0);
  Receiver& rx = receive("239.2.2.1", 5000);
  wait_first(rx);
  std::this_thread::sleep_for(5s);
  rx.stop();
  // A real receiver: ffprobe joins the group in stb and reads the service from PAT/PMT/SDT.
  const RunResult probe = run(ns_exec(stb_) + "ffprobe -v error -show_entries program=program_id:program_tags=service_name,service_provider "
                              "-show_entries stream=codec_name -of compact "
                              "'udp://@239.2.2.1:5000?localaddr=" + kStbIp + "&timeout=5000000'");
  const std::string log = appliance_log();
  stop_twincastd(app);

  EXPECT_EQ(probe.exit_code, 0) << probe.out;
  EXPECT_NE(probe.out.find("program_id=301"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("service_name=News NS"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("service_provider=twincast test"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("codec_name=h264"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("codec_name=aac"), std::string::npos) << probe.out;

  const Stream s = assemble(rx.datagrams(), false);
  ASSERT_GT(s.ts.size(), 188u * 1000) << log << read_text(dir_ / "sender.err");
  EXPECT_EQ(s.bad_datagrams, 0u);
  EXPECT_LT(s.max_gap, 1000ms);
  const OutputReport r = check_output(s, dir_, "news", 0x100);
  EXPECT_NE(r.analyze.find("\"services\":[{\"service_id\":301,\"name\":\"News NS\",\"provider\":\"twincast test\""),
            std::string::npos) << r.analyze;
  EXPECT_GE(r.frames, 50u);  // ~5 s at 25 fps less the partial GOPs at both ends
  // The status lines count what came in and went out.
  EXPECT_GT(status_value(log, "channel=news input=rx ", "datagrams").value_or(0), 300u) << log;
  EXPECT_GT(status_value(log, "port=out ", "tx").value_or(0), 300u) << log;
}

// The configured LCN reaches the set-top box in the NIT's logical_channel_descriptor (a
// channel with an LCN gets a NIT: dataplane/src/channel.cpp sets RemuxConfig::nit).
TEST_F(ApplianceNs, ConfiguredLcnReachesTheNit) {
  const pid_t app = start_appliance("  - id: news\n    service_id: 301\n    lcn: 7\n    inputs:\n" +
                                    udp_input("rx", "239.1.1.1", 5000) + "    outputs:\n" + output("udp", "239.2.2.1", 5000));
  ASSERT_GT(app, 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.1", 5000), "sender"), 0);
  Receiver& rx = receive("239.2.2.1", 5000);
  wait_first(rx);
  std::this_thread::sleep_for(3s);
  rx.stop();
  stop_twincastd(app);
  const Stream s = assemble(rx.datagrams(), false);
  ASSERT_GT(s.ts.size(), 188u * 200);
  const auto raw = dir_ / "lcn.ts";
  write_file(raw, s.ts);
  const RunResult an = run(shell_quote(tool("twincast-ts").string()) + " analyze --json " + shell_quote(raw.string()));
  EXPECT_NE(an.out.find("{\"pid\":16,"), std::string::npos) << "no NIT: " << an.out;
  EXPECT_EQ(json_number(an.out, "lcn"), 7u) << an.out;
}

// 2. RTP in (ffmpeg rtp_mpegts) -> RTP out, received by ffmpeg as rtp://.
TEST_F(ApplianceNs, RtpInRtpOutReceivedByFfmpeg) {
  const pid_t app = start_appliance(
      "  - id: rtp\n    inputs:\n      - { name: rx, rtp: { port: in, group: 239.1.1.2, udp_port: 5004 } }\n"
      "    outputs:\n" + output("rtp", "239.2.2.2", 5004));
  ASSERT_GT(app, 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "rtp_mpegts", "rtp://239.1.1.2:5004?ttl=4&localaddr=" + std::string(kSrcIp),
                                "sender"), 0);
  Receiver& rx = receive("239.2.2.2", 5004);
  // ffmpeg's RTP demuxer in stb records 4 s of the output as a TS file.
  const auto peer = dir_ / "peer.ts";
  const RunResult rec = run(ns_exec(stb_) + "ffmpeg -nostdin -v error -i 'rtp://239.2.2.2:5004?localaddr=" + kStbIp +
                            "&timeout=5000000' -t 4 -map 0 -c copy -y " + shell_quote(peer.string()));
  rx.stop();
  const std::string log = appliance_log();
  stop_twincastd(app);

  EXPECT_EQ(rec.exit_code, 0) << rec.out;
  const RunResult probe = run("ffprobe -v error -show_entries stream=codec_name -show_entries format=duration -of compact " +
                              shell_quote(peer.string()));
  EXPECT_NE(probe.out.find("codec_name=h264"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("codec_name=aac"), std::string::npos) << probe.out;

  const Stream s = assemble(rx.datagrams(), true);
  ASSERT_GT(s.ts.size(), 188u * 1000) << log << read_text(dir_ / "sender.err");
  EXPECT_EQ(s.rtp_bad, 0u);
  EXPECT_EQ(s.rtp_gaps, 0u);
  EXPECT_EQ(s.bad_datagrams, 0u);
  const OutputReport r = check_output(s, dir_, "rtp", 0x100);
  EXPECT_GE(r.frames, 50u);
}


// 2b. UDP and RTP over a lossy source link: a tc classifier in the kernel drops 2 % of what
// leaves src on its veth (TcLoss, run_lossy_source above).
TEST_F(ApplianceNs, UdpOverALossySourceLinkCountsTheLossAndTheOutputStaysContinuous) { run_lossy_source(false); }
TEST_F(ApplianceNs, RtpOverALossySourceLinkCountsTheLossAndTheOutputStaysContinuous) { run_lossy_source(true); }

// 3. An MPTS of three programs, one copy per channel on its own group -> three SPTS.
TEST_F(ApplianceNs, MptsSplitIntoThreeSpts) { run_split(false); }

// The same with ONE received flow shared by the three channels, as config/README.md and
// config/lineup-20.yaml describe: the classifier hands each datagram of the flow to the
// three channels' inputs.
TEST_F(ApplianceNs, OneMptsFlowSharedByThreeChannels) { run_split(true); }

// The channel map of an SRT listener channel on head's kernel side of the SRT link.
std::string srt_channel(int latency_ms) {
  return "  - id: contrib\n    inputs:\n      - name: srt\n        srt:\n          mode: listener\n"
         "          address: " + std::string(kSrtHeadIp) + "\n          port: 9000\n"
         "          passphrase_file: srt.key\n          key_length: 16\n          latency_ms: " +
         std::to_string(latency_ms) + "\n    outputs:\n" + output("udp", "239.2.5.1", 5000);
}

// ffmpeg in src calling the listener over the SRT link.
std::vector<std::string> srt_caller(const std::string& src_ns, const std::string& passphrase, int latency_ms,
                                    const std::string& to = std::string(kSrtHeadIp) + ":9000") {
  return {"ip", "netns", "exec", src_ns, "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
          "-i", fixture("h264_aac.ts").string(), "-map", "0", "-c", "copy", "-f", "mpegts",
          "srt://" + to + "?pkt_size=1316&pbkeylen=16&passphrase=" + passphrase +
              "&latency=" + std::to_string(latency_ms * 1000)};
}

// 4a. SRT caller with the passphrase -> output decodes; a caller with a wrong passphrase
// is rejected (srt_rejected) and disturbs nothing (no continuity error at the receiver).
TEST_F(ApplianceNs, SrtListenerRejectsAWrongPassphraseWhileTheGoodCallerFlows) {
  const pid_t app = start_appliance(srt_channel(200));
  ASSERT_GT(app, 0);
  ASSERT_GT(start_child(srt_caller(src_, kPassphrase, 200), "good"), 0);
  const std::string line = "channel=contrib input=srt ";
  ASSERT_TRUE(wait_status([&](const std::string& l) { return status_value(l, line, "srt_connected").value_or(0) == 1; }, 30s))
      << appliance_log() << read_text(dir_ / "good.err");
  Receiver& rx = receive("239.2.5.1", 5000);
  std::this_thread::sleep_for(1500ms);
  const pid_t bad = start_child(srt_caller(src_, "not-the-passphrase", 200), "bad");
  ASSERT_GT(bad, 0);
  const bool rejected = wait_status(
      [&](const std::string& l) { return status_value(l, line, "srt_rejected").value_or(0) >= 1; }, 30s);
  std::this_thread::sleep_for(1500ms);
  rx.stop();
  end_child(bad, 2000ms);
  const std::string log = appliance_log();
  stop_twincastd(app);

  EXPECT_TRUE(rejected) << log << read_text(dir_ / "bad.err");
  EXPECT_EQ(status_value(log, line, "srt_connected").value_or(0), 1u) << log;
  EXPECT_EQ(status_value(log, line, "ring_drops").value_or(1), 0u) << log;
  EXPECT_EQ(log.find(kPassphrase), std::string::npos) << "the passphrase leaked into the log";
  const Stream s = assemble(rx.datagrams(), false);
  ASSERT_GT(s.ts.size(), 188u * 1000) << log << read_text(dir_ / "good.err");
  EXPECT_EQ(s.bad_datagrams, 0u);
  EXPECT_LT(s.max_gap, 1000ms);
  const OutputReport r = check_output(s, dir_, "srt", 0x100);
  EXPECT_GE(r.frames, 50u);
}

// 4b. The SRT link loses 2 % of the caller's packets and delays 20 ms each way: `tc qdisc
// ... netem` on both ends of the SRT veth, or, in a kernel without sch_netem (this CI
// machine's), a tc classifier in the kernel drops 2 % on the same veth (TcLoss) and the
// user-space LossyRelay in src adds the delay (nothing here can delay in the kernel: no
// netem, fq or etf). With 300 ms of SRT latency the retransmissions arrive in time, and
// the output has no continuity error and decodes.
TEST_F(ApplianceNs, SrtRecoversFromALossyContributionLink) {
  const pid_t app = start_appliance(srt_channel(300));
  ASSERT_GT(app, 0);
  const std::string tc_src = "ip netns exec " + src_ + " tc ", tc_head = "ip netns exec " + head_ + " tc ";
  const RunResult netem = run(tc_src + "qdisc add dev " + veth_srt_src_ + " root netem delay 20ms loss 2% 2>&1");
  std::optional<LossyRelay> relay;
  std::optional<TcLoss> loss;
  std::string to = std::string(kSrtHeadIp) + ":9000";
  if (netem.exit_code == 0) {
    const RunResult back = run(tc_head + "qdisc add dev " + veth_srt_head_ + " root netem delay 20ms 2>&1");
    ASSERT_EQ(back.exit_code, 0) << back.out;
  } else {
    std::cout << "[ NOTE     ] no sch_netem in this kernel (" << netem.out.substr(0, netem.out.find('\n'))
              << "): a tc classifier drops 2 % on " << veth_srt_src_ << ", LossyRelay in src delays\n";
    loss.emplace(src_, veth_srt_src_, 2.0);
    ASSERT_TRUE(loss->ok()) << loss->error();
    relay.emplace(src_, kSrtSrcIp, 9100, kSrtHeadIp, 9000, 0, 20ms);
    ASSERT_TRUE(relay->ready());
    to = std::string(kSrtSrcIp) + ":9100";
  }
  ASSERT_GT(start_child(srt_caller(src_, kPassphrase, 300, to), "good"), 0);
  const std::string line = "channel=contrib input=srt ";
  ASSERT_TRUE(wait_status([&](const std::string& l) { return status_value(l, line, "srt_connected").value_or(0) == 1; }, 30s))
      << appliance_log() << read_text(dir_ / "good.err");
  Receiver& rx = receive("239.2.5.1", 5000);
  std::this_thread::sleep_for(6s);
  rx.stop();
  std::this_thread::sleep_for(1100ms);  // one more status line
  const std::string log = appliance_log();
  stop_twincastd(app);

  // The link did lose packets, SRT saw the gaps, and filled them.
  if (loss) {
    relay->stop();
    EXPECT_GT(loss->dropped(), 0u) << loss->passed();
    EXPECT_GT(relay->forwarded(), 0u);
    std::cout << "[ NOTE     ] the link passed " << loss->passed() << " and dropped " << loss->dropped()
              << " packets; srt_lost " << status_value(log, line, "srt_lost").value_or(0) << "\n";
  } else {
    // netem counts what it loses as dropped: " Sent B bytes P pkt (dropped N, ...".
    const RunResult stats = run(tc_src + "-s qdisc show dev " + veth_srt_src_);
    const auto at = stats.out.find("dropped ");
    ASSERT_NE(at, std::string::npos) << stats.out;
    EXPECT_GT(std::strtoull(stats.out.c_str() + at + 8, nullptr, 10), 0u) << stats.out;
  }
  EXPECT_GT(status_value(log, line, "srt_lost").value_or(0), 0u) << log;
  const Stream s = assemble(rx.datagrams(), false);
  ASSERT_GT(s.ts.size(), 188u * 1000) << log << read_text(dir_ / "good.err");
  EXPECT_EQ(s.bad_datagrams, 0u);
  EXPECT_LT(s.max_gap, 1000ms);
  const OutputReport r = check_output(s, dir_, "srt_lossy", 0x100);
  EXPECT_GE(r.frames, 75u);
}

// 5. Failover: a primary and a backup multicast feed of the same programme; the primary's
// encoder dies mid-run. The receiver sees no continuity error over the whole run and no
// silence longer than the failover timeout plus a margin; the output goes on from the
// backup (the primary's counters stop, the status line names the backup after one switch,
// the output rate after the kill is that of before), and the whole capture decodes.
TEST_F(ApplianceNs, FailoverToTheBackupWhenThePrimaryDies) {
  const pid_t app = start_appliance("  - id: fo\n    inputs:\n" + udp_input("primary", "239.1.1.20", 5000) +
                                    udp_input("backup", "239.1.1.21", 5000) +
                                    "    failover: { timeout_ms: 500, revert: true, revert_holdoff_ms: 1000 }\n    outputs:\n" +
                                    output("udp", "239.2.4.1", 5000));
  ASSERT_GT(app, 0);
  // The primary first, so that it is on air before the backup exists. On this shared
  // machine a sender can be starved for longer than the timeout now and then; the channel
  // then rightly fails over early, and reverts to the primary (revert on) before the kill.
  const pid_t primary = start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.20", 5000), "primary");
  ASSERT_GT(primary, 0);
  ASSERT_TRUE(wait_status([](const std::string& l) { return status_value(l, "channel=fo input=primary ", "ts_packets").value_or(0) > 0; }, 30s))
      << appliance_log();
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.21", 5000), "backup"), 0);
  Receiver& rx = receive("239.2.4.1", 5000);
  ASSERT_TRUE(wait_status([](const std::string& l) { return status_value(l, "channel=fo input=backup ", "ts_packets").value_or(0) > 0; }, 30s))
      << appliance_log();
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(wait_status(
      [](const std::string& l) { return status_line(l, "channel=fo active_input=").find("active_input=primary ") != std::string::npos; }, 15s))
      << appliance_log();
  const std::uint64_t switches_before = status_value(appliance_log(), "channel=fo active_input=", "switches").value_or(0);
  const std::string log_at_kill = appliance_log();
  end_child(primary, 2000ms, nullptr, SIGKILL);
  const auto killed = Clock::now();
  std::this_thread::sleep_for(1500ms);
  // The primary's counters are read from a status line written at least a second after the
  // kill (the second new one), not from whichever was last 1.5 s after it: under load the
  // last one could still be from before the kill and a later one count more.
  EXPECT_TRUE(wait_status_lines(log_at_kill, "channel=fo input=primary ", 2, 15s)) << appliance_log();
  const auto primary_after_kill = status_value(appliance_log(), "channel=fo input=primary ", "ts_packets");
  const auto backup_after_kill = status_value(appliance_log(), "channel=fo input=backup ", "ts_packets");
  std::this_thread::sleep_for(3s);
  // The backup's count must grow past the one read above: wait for a status line that
  // says so (bounded) rather than trust one to have been written in the 3 s.
  (void)wait_status(
      [&](const std::string& l) {
        return backup_after_kill && status_value(l, "channel=fo input=backup ", "ts_packets").value_or(0) > *backup_after_kill;
      },
      10s);
  rx.stop();
  const std::string log = appliance_log();
  stop_twincastd(app);

  ASSERT_TRUE(primary_after_kill && backup_after_kill) << log;
  EXPECT_EQ(status_value(log, "channel=fo input=primary ", "ts_packets"), primary_after_kill) << log;
  EXPECT_GT(status_value(log, "channel=fo input=backup ", "ts_packets").value_or(0), *backup_after_kill) << log;
  // The channel says so: the backup is on air, after one more switch.
  const std::string chan = status_line(log, "channel=fo active_input=");
  EXPECT_NE(chan.find("active_input=backup "), std::string::npos) << log;
  EXPECT_GE(status_value(log, "channel=fo active_input=", "switches").value_or(0), switches_before + 1) << log;
  // The output rate after the switch is that of before (the same programme).
  const auto ds = rx.datagrams();
  ASSERT_FALSE(ds.empty()) << log;
  const auto t0 = ds.front().at;
  auto rate = [&](Clock::time_point from, Clock::time_point to) {
    const auto n = std::count_if(ds.begin(), ds.end(), [&](const Receiver::Datagram& d) { return d.at >= from && d.at < to; });
    return static_cast<double>(n) / std::chrono::duration<double>(to - from).count();
  };
  const double before = rate(t0 + 500ms, killed);
  const double after = rate(killed + 1s, ds.back().at);
  EXPECT_GT(ds.back().at - killed, 4s) << "the output stopped with the primary";
  EXPECT_GT(after, 0.7 * before) << "datagrams/s before the kill " << before << ", after " << after;
  const Stream s = assemble(ds, false);
  EXPECT_EQ(s.bad_datagrams, 0u);
  EXPECT_LT(s.max_gap, 1000ms);
  // The whole run decodes, across the switch too: after a switch the remuxer resumes video
  // at the new input's next random access point, so the decoder never sees a broken GOP.
  const OutputReport r = check_output(s, dir_, "failover", 0x100);
  EXPECT_GE(r.frames, 80u);  // ~6.5 s at 25 fps, less the partial GOPs and up to 1 s at the switch
}

// 6. Bad input: random datagrams of odd sizes on the channel's own group and port, a flood
// to a port nobody configured, unicast to the port's address. twincastd stays up, the
// good channel's output has no continuity error and decodes, and the input port's drops
// counter grows by about what was sent.
// The REST API of twincastd in head, on head's loopback, with a bearer token in `token_file`.
std::string control_section(const std::filesystem::path& token_file) {
  return "control:\n  api_listen: 127.0.0.1:8080\n  metrics_listen: 127.0.0.1:9100\n  token_file: " + token_file.string() + "\n";
}

// The value of the series `series` (name and labels, exactly as exposed) in a Prometheus
// text exposition, or -1.
double prometheus_sample(const std::string& exposition, const std::string& series) {
  const std::size_t at = exposition.find("\n" + series + " ");
  return at == std::string::npos ? -1.0 : std::stod(exposition.substr(at + series.size() + 2));
}

TEST_F(ApplianceNs, GarbageAndFloodsAreDroppedAndTheChannelGoesOn) {
  const auto token = dir_ / "api.token";
  std::ofstream(token) << "garbage-test-token-0123456789abcdef\n";
  ::chmod(token.c_str(), 0600);
  const pid_t app = start_appliance("  - id: good\n    inputs:\n" + udp_input("rx", "239.1.1.30", 5000) +
                                    "    outputs:\n" + output("udp", "239.2.6.1", 5000) + control_section(token));
  ASSERT_GT(app, 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.30", 5000), "sender"), 0);
  Receiver& rx = receive("239.2.6.1", 5000);
  ASSERT_TRUE(wait_status([](const std::string& l) { return status_value(l, "port=in ", "drops").has_value(); }, 15s));
  std::this_thread::sleep_for(1s);
  const std::uint64_t drops_before = status_value(appliance_log(), "port=in ", "drops").value_or(0);
  std::uint64_t sent = 0, odd_sent = 0, stray_sent = 0;
  std::string log_after_garbage;
  {
    auto random_bytes = [](std::uint64_t seed, std::size_t n) {
      std::mt19937 g(static_cast<std::uint32_t>(seed));
      ByteVec b(n);
      for (auto& x : b) x = static_cast<std::uint8_t>(g());
      b[0] = 0x47;  // even with a sync byte in front: no whole number of 188-byte packets
      return b;
    };
    // Odd sizes, none a multiple of 188: 1 and 100 bytes, 377, 1000, and 1500 (fragmented
    // by the 1500-byte MTU; DPDK's af_packet PMD asks the kernel to reassemble, with
    // PACKET_FANOUT_FLAG_DEFRAG, so they reach the data plane whole: unfragmented input is
    // worker_test's).
    const std::size_t sizes[] = {1, 100, 377, 1000, 1500};
    UdpSender garbage(src_, "239.1.1.30", 5000, 1000,
                      [&](std::uint64_t i) { return random_bytes(i, sizes[i % 5]); });
    UdpSender flood(src_, "239.1.1.30", 6000, 5000, [&](std::uint64_t i) { return random_bytes(i + 7, 1316); });
    UdpSender unicast(src_, kInIp, 5000, 500, [&](std::uint64_t i) { return random_bytes(i + 11, 188 * 7); });
    std::this_thread::sleep_for(4s);
    garbage.stop();
    flood.stop();
    unicast.stop();
    sent = garbage.sent() + flood.sent() + unicast.sent();
    odd_sent = garbage.sent();
    stray_sent = flood.sent() + unicast.sent();
    log_after_garbage = appliance_log();
    EXPECT_TRUE(alive(app)) << log_after_garbage;
  }
  // A status line after the last garbage: two new port lines (the second written at least
  // a second after the senders stopped), not a fixed 2 s that a loaded machine can outrun.
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(wait_status_lines(log_after_garbage, "port=in ", 2, 15s)) << appliance_log();
  // /metrics says why, by reason: the odd sizes as ts_size (the 1500-byte ones too,
  // reassembled), the flood to an unconfigured port and the unicast to a port without an
  // input as unknown_flow; reasons that did not occur are there at 0.
  const RunResult metrics = run(ns_exec(head_) + "curl -sS http://127.0.0.1:9100/metrics");
  const auto drops = [&](const std::string& reason) {
    return prometheus_sample(metrics.out, "twincast_port_drops_total{port=\"in\",reason=\"" + reason + "\"}");
  };
  EXPECT_GE(drops("ts_size"), static_cast<double>(odd_sent) * 0.9) << metrics.out;
  EXPECT_GE(drops("unknown_flow"), static_cast<double>(stray_sent) * 0.9) << metrics.out;
  EXPECT_EQ(drops("wrong_vlan"), 0.0) << metrics.out;
  EXPECT_EQ(drops("tx_refused"), 0.0) << metrics.out;
  rx.stop();
  const std::string log = appliance_log();
  EXPECT_TRUE(alive(app)) << log;
  stop_twincastd(app);

  const std::uint64_t drops_after = status_value(log, "port=in ", "drops").value_or(0);
  EXPECT_GT(sent, 15000u);
  // Every datagram sent is a drop; the kernel or af_packet may lose a few of the flood
  // before the data plane sees them.
  EXPECT_GE(drops_after - drops_before, sent * 9 / 10) << "sent " << sent << "\n" << log;
  // The status line names the reasons too ("drop_reasons=unknown_flow:N,ts_size:N").
  const std::string port_line = status_line(log, "port=in ");
  for (const char* reason : {" drop_reasons=", "ts_size:", "unknown_flow:"})
    EXPECT_NE(port_line.find(reason), std::string::npos) << reason << " in " << port_line;
  const Stream s = assemble(rx.datagrams(), false);
  ASSERT_GT(s.ts.size(), 188u * 1000) << log;
  EXPECT_EQ(s.bad_datagrams, 0u);
  EXPECT_LT(s.max_gap, 1000ms);
  const OutputReport r = check_output(s, dir_, "good", 0x100);
  EXPECT_GE(r.frames, 75u);
}


// The value of a JSON string member `"key":"..."` (the first one), or "".
std::string json_string(const std::string& text, const std::string& key) {
  const std::string open = "\"" + key + "\":\"";
  const std::size_t at = text.find(open);
  if (at == std::string::npos) return "";
  const std::size_t end = text.find('"', at + open.size());
  return end == std::string::npos ? "" : text.substr(at + open.size(), end - at - open.size());
}

// 7. A forced switch through the API (twincastctl), to the backup and back, while both
// feeds are live: the receiver sees no continuity error and no silence over the whole run,
// the capture decodes across both switches, and the API reports the input and two switches.
TEST_F(ApplianceNs, ForcedSwitchIsCleanAtTheReceiver) {
  const auto token = dir_ / "api.token";
  std::ofstream(token) << "forced-switch-token-0123456789abcdef\n";
  ::chmod(token.c_str(), 0600);
  const pid_t app = start_appliance("  - id: fs\n    inputs:\n" + udp_input("primary", "239.1.1.50", 5000) +
                                    udp_input("backup", "239.1.1.51", 5000) +
                                    "    failover: { timeout_ms: 1000, revert: false, revert_holdoff_ms: 1000 }\n    outputs:\n" +
                                    output("udp", "239.2.7.1", 5000) + control_section(token));
  ASSERT_GT(app, 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.50", 5000), "primary"), 0);
  ASSERT_TRUE(wait_status([](const std::string& l) { return status_value(l, "channel=fs input=primary ", "ts_packets").value_or(0) > 0; }, 30s))
      << appliance_log();
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.51", 5000), "backup"), 0);
  ASSERT_TRUE(wait_status([](const std::string& l) { return status_value(l, "channel=fs input=backup ", "ts_packets").value_or(0) > 0; }, 30s))
      << appliance_log();

  const std::string ctl = ns_exec(head_) + shell_quote(tool("twincastctl").string()) + " --api 127.0.0.1:8080 --token-file " +
                          shell_quote(token.string()) + " ";
  auto channel = [&] { return run(ctl + "--json channel fs"); };
  // The API listener may come up a moment after the data plane.
  RunResult before = channel();
  for (int i = 0; i < 30 && json_string(before.out, "active_input").empty(); ++i) {
    std::this_thread::sleep_for(100ms);
    before = channel();
  }
  ASSERT_EQ(json_string(before.out, "active_input"), "primary") << before.out << appliance_log();
  const std::uint64_t switches_before = json_number(before.out, "switches");
  ASSERT_NE(switches_before, ~std::uint64_t{0}) << before.out;

  Receiver& rx = receive("239.2.7.1", 5000);
  std::this_thread::sleep_for(1500ms);
  const RunResult to_backup = run(ctl + "switch fs backup");
  EXPECT_EQ(to_backup.exit_code, 0) << to_backup.out;
  // The worker applies the switch at its next turn: wait for the API to show it (bounded)
  // rather than a fixed 300 ms that a descheduled worker or a slow twincastctl can exceed.
  RunResult on_backup = channel();
  for (int i = 0; i < 50 && json_string(on_backup.out, "active_input") != "backup"; ++i) {
    std::this_thread::sleep_for(100ms);
    on_backup = channel();
  }
  EXPECT_EQ(json_string(on_backup.out, "active_input"), "backup") << on_backup.out;
  std::this_thread::sleep_for(1700ms);
  const RunResult to_primary = run(ctl + "switch fs primary");
  EXPECT_EQ(to_primary.exit_code, 0) << to_primary.out;
  std::this_thread::sleep_for(2500ms);
  const RunResult after = run(ctl + "--json status");
  const RunResult detail = channel();
  rx.stop();
  const std::string log = appliance_log();
  stop_twincastd(app);

  // `status --json` prints the channel list; ours is the only channel.
  EXPECT_EQ(json_string(after.out, "active_input"), "primary") << after.out;
  EXPECT_EQ(json_number(after.out, "switches"), switches_before + 2) << "before: " << before.out << "\nafter: " << after.out;
  // Both inputs are ffmpeg -re re-muxes (variable rate, sent a frame at a time): the PCR
  // overall jitter of the last second is measured (arrival times), PCR accuracy is not
  // judged on a variable-rate stream, and no PCR_accuracy_error is counted (it used to be,
  // from the arrival jitter, on every such input).
  auto occurrences = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(occurrences(detail.out, "\"PCR_accuracy_error\":0,"), 2u) << detail.out;
  EXPECT_EQ(occurrences(detail.out, "\"pcr\":{\"jitter_ms\":"), 2u) << detail.out;
  EXPECT_EQ(occurrences(detail.out, "\"pcr\":{\"jitter_ms\":null"), 0u) << detail.out;
  EXPECT_EQ(occurrences(detail.out, "\"accuracy_ns\":null"), 2u) << detail.out;
  RecordProperty("switches_before", static_cast<int>(switches_before));
  const Stream s = assemble(rx.datagrams(), false);
  ASSERT_GT(s.ts.size(), 188u * 1000) << log;
  EXPECT_EQ(s.bad_datagrams, 0u);
  EXPECT_LT(s.max_gap, 1000ms);
  const OutputReport r = check_output(s, dir_, "forced", 0x100);
  EXPECT_GE(r.frames, 75u);  // ~6.5 s at 25 fps less the partial GOPs at both ends and at the switches
}

// The PCR schedule of a capture: for every datagram that carries a PCR of the PCR PID (the
// PID with the most PCRs), its due time is that PCR's, moved to the datagram's last packet
// at the stream's packet rate (the appliance ends each datagram at a PCR packet, so there it
// is the PCR's own time; a source's PCR may sit anywhere in a datagram). The kernel arrival
// time minus the due time, less its median over the run, is the deviation. Datagrams in
// the first `skip` of the capture do not count.
struct PacingStats {
  std::size_t samples = 0;
  std::size_t segments = 0;  // PCR timelines (a discontinuity starts a new one)
  std::uint16_t pcr_pid = 0x1FFF;
  double p50_us = 0, p99_us = 0, max_us = 0;  // against one t0 per timeline (the median offset)
  // Against the median offset of the PCRs within +-0.5 s instead: what the pacer does
  // between two re-anchors, without the steps of a re-anchor (a source whose PCR runs
  // ahead of its sending by more than the pacer's delay makes it re-anchor).
  double local_p50_us = 0, local_p99_us = 0, local_max_us = 0;
  std::size_t steps = 0;  // jumps of the local median offset by more than 10 ms
  // The offset's slope over the PCR clock (Theil-Sen: the sender's clock against the
  // receiver's kernel clock, in parts per million), and the deviation from that line.
  double drift_ppm = 0;
  double line_p50_us = 0, line_p99_us = 0, line_max_us = 0;
};

std::optional<std::uint64_t> pcr_of(const std::uint8_t* p) {
  if ((p[3] & 0x20) == 0 || p[4] < 7 || (p[5] & 0x10) == 0) return std::nullopt;
  const std::uint64_t base = (std::uint64_t{p[6]} << 25) | (std::uint64_t{p[7]} << 17) | (std::uint64_t{p[8]} << 9) |
                             (std::uint64_t{p[9]} << 1) | (std::uint64_t{p[10]} >> 7);
  const std::uint64_t ext = (std::uint64_t{p[10] & 0x01u} << 8) | p[11];
  return base * 300 + ext;
}

PacingStats pcr_pacing(const std::vector<Receiver::Datagram>& ds, std::chrono::nanoseconds skip) {
  PacingStats st;
  std::map<std::uint16_t, std::size_t> pcrs;
  for (const auto& d : ds) {
    for (std::size_t i = 0; i + 188 <= d.bytes.size(); i += 188) {
      if (d.bytes[i] == 0x47 && pcr_of(&d.bytes[i])) ++pcrs[pid_of(&d.bytes[i])];
    }
  }
  if (pcrs.empty()) return st;
  st.pcr_pid = std::max_element(pcrs.begin(), pcrs.end(), [](const auto& a, const auto& b) { return a.second < b.second; })->first;

  struct Sample {
    std::int64_t arrival_ns;
    std::int64_t pcr_ns;        // on this segment's unwrapped timeline
    std::uint64_t packet;       // index of the PCR packet in the capture
    std::uint64_t after;        // packets after it in its datagram
  };
  constexpr std::uint64_t kWrap = (std::uint64_t{1} << 33) * 300;
  std::vector<std::vector<Sample>> segments;
  std::uint64_t packet = 0;
  std::uint64_t last_pcr = 0;
  std::int64_t last_pcr_ns = 0, last_arrival = 0;
  for (const auto& d : ds) {
    const std::size_t n = d.bytes.size() / 188;
    std::optional<std::size_t> at;
    std::uint64_t pcr = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const std::uint8_t* p = &d.bytes[k * 188];
      if (p[0] != 0x47 || pid_of(p) != st.pcr_pid) continue;
      if (const auto v = pcr_of(p)) {
        at = k;
        pcr = *v;
      }
    }
    if (at && d.kernel_ns - ds.front().kernel_ns >= skip.count()) {
      const std::uint64_t delta = (pcr + kWrap - last_pcr) % kWrap;
      const auto delta_ns = static_cast<std::int64_t>(delta * 1000 / 27);
      const std::int64_t arrived = d.kernel_ns - last_arrival;
      if (segments.empty() || delta > kWrap / 2 || std::llabs(delta_ns - arrived) > 500'000'000) {
        segments.emplace_back();  // the first PCR, or a discontinuity
        last_pcr_ns = 0;
      } else {
        last_pcr_ns += delta_ns;
      }
      last_pcr = pcr;
      last_arrival = d.kernel_ns;
      segments.back().push_back(Sample{d.kernel_ns, last_pcr_ns, packet + *at, n - 1 - *at});
    }
    packet += n;
  }
  std::vector<std::int64_t> deviations, local, line;
  for (const auto& seg : segments) {
    if (seg.size() < 10) continue;  // too short to have a schedule
    ++st.segments;
    const double ns_per_packet = static_cast<double>(seg.back().pcr_ns - seg.front().pcr_ns) /
                                 static_cast<double>(std::max<std::uint64_t>(1, seg.back().packet - seg.front().packet));
    std::vector<std::int64_t> offsets;
    for (const auto& x : seg) {
      const auto due = x.pcr_ns + static_cast<std::int64_t>(ns_per_packet * static_cast<double>(x.after));
      offsets.push_back(x.arrival_ns - due);
    }
    std::vector<std::int64_t> sorted = offsets;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2), sorted.end());
    const std::int64_t t0 = sorted[sorted.size() / 2];
    for (const std::int64_t o : offsets) deviations.push_back(std::llabs(o - t0));
    {
      // Theil-Sen: the median of the slopes between every two samples (at least 100 ms of
      // PCR apart), the intercept the median of what each sample leaves. A burst of late
      // datagrams near either end (the receiver, or the worker, off its core for a moment on
      // a loaded machine) tilts a least-squares line by hundreds of ppm; it moves this one
      // hardly at all, while a pacer on a wrong clock still drifts by its whole error.
      const auto x_of = [&](std::size_t i) { return static_cast<double>(seg[i].pcr_ns - seg.front().pcr_ns); };
      const auto y_of = [&](std::size_t i) { return static_cast<double>(offsets[i] - t0); };
      std::vector<double> slopes;
      for (std::size_t i = 0; i < seg.size(); ++i)
        for (std::size_t j = i + 1; j < seg.size(); ++j)
          if (x_of(j) - x_of(i) >= 100e6) slopes.push_back((y_of(j) - y_of(i)) / (x_of(j) - x_of(i)));
      const auto median = [](std::vector<double>& v) {
        if (v.empty()) return 0.0;
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
        return v[v.size() / 2];
      };
      const double slope = median(slopes);
      std::vector<double> rest;
      for (std::size_t i = 0; i < seg.size(); ++i) rest.push_back(y_of(i) - slope * x_of(i));
      const double icpt = median(rest);
      st.drift_ppm = slope * 1e6;  // the last (in practice the only) timeline's
      for (std::size_t i = 0; i < seg.size(); ++i) {
        const double fit = icpt + slope * static_cast<double>(seg[i].pcr_ns - seg.front().pcr_ns);
        line.push_back(std::llabs(static_cast<std::int64_t>(static_cast<double>(offsets[i] - t0) - fit)));
      }
    }
    std::optional<std::int64_t> last_median;
    for (std::size_t i = 0; i < seg.size(); ++i) {
      std::vector<std::int64_t> window;
      for (std::size_t j = i; j-- > 0 && seg[i].arrival_ns - seg[j].arrival_ns < 500'000'000;) window.push_back(offsets[j]);
      for (std::size_t j = i; j < seg.size() && seg[j].arrival_ns - seg[i].arrival_ns < 500'000'000; ++j) window.push_back(offsets[j]);
      std::nth_element(window.begin(), window.begin() + static_cast<std::ptrdiff_t>(window.size() / 2), window.end());
      const std::int64_t median = window[window.size() / 2];
      if (last_median && std::llabs(median - *last_median) > 10'000'000) ++st.steps;
      last_median = median;
      local.push_back(std::llabs(offsets[i] - median));
    }
  }
  if (deviations.empty()) return st;
  std::sort(deviations.begin(), deviations.end());
  st.samples = deviations.size();
  auto us = [](std::int64_t ns) { return static_cast<double>(ns) / 1000.0; };
  st.p50_us = us(deviations[deviations.size() / 2]);
  st.p99_us = us(deviations[std::min(deviations.size() - 1, deviations.size() * 99 / 100)]);
  st.max_us = us(deviations.back());
  std::sort(local.begin(), local.end());
  st.local_p50_us = us(local[local.size() / 2]);
  st.local_p99_us = us(local[std::min(local.size() - 1, local.size() * 99 / 100)]);
  st.local_max_us = us(local.back());
  std::sort(line.begin(), line.end());
  st.line_p50_us = us(line[line.size() / 2]);
  st.line_p99_us = us(line[std::min(line.size() - 1, line.size() * 99 / 100)]);
  st.line_max_us = us(line.back());
  return st;
}

// A source with exact timing: a CBR TS file sent once from src, 7 packets a datagram, each
// datagram at its first packet's time on the file's own PCR clock (the packet rate between
// its first and last PCR). Beside ffmpeg -re, whose sending leads or lags its PCRs by up to
// ~100 ms, it shows what the pacer does with a source that keeps time.
class PcrTimedSender {
 public:
  PcrTimedSender(std::string ns, std::string group, std::uint16_t port, ByteVec ts, std::uint16_t pcr_pid)
      : ns_(std::move(ns)), group_(std::move(group)), port_(port), ts_(std::move(ts)) {
    std::optional<std::pair<std::size_t, std::uint64_t>> first, last;
    for (std::size_t i = 0; i + 1 <= ts_.size() / 188; ++i) {
      const std::uint8_t* p = &ts_[i * 188];
      if (pid_of(p) != pcr_pid) continue;
      if ((p[3] & 0x20) == 0 || p[4] < 7 || (p[5] & 0x10) == 0) continue;
      const std::uint64_t base = (std::uint64_t{p[6]} << 25) | (std::uint64_t{p[7]} << 17) | (std::uint64_t{p[8]} << 9) |
                                 (std::uint64_t{p[9]} << 1) | (std::uint64_t{p[10]} >> 7);
      const std::uint64_t pcr = base * 300 + ((std::uint64_t{p[10] & 0x01u} << 8) | p[11]);
      if (!first) first = std::make_pair(i, pcr);
      last = std::make_pair(i, pcr);
    }
    if (first && last && last->first > first->first) {
      ns_per_packet_ = static_cast<double>(last->second - first->second) * 1000.0 / 27.0 /
                       static_cast<double>(last->first - first->first);
    }
    thread_ = std::thread([this] { loop(); });
  }
  ~PcrTimedSender() { stop(); }
  PcrTimedSender(const PcrTimedSender&) = delete;
  PcrTimedSender& operator=(const PcrTimedSender&) = delete;
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] double ns_per_packet() const { return ns_per_packet_; }

 private:
  void loop() {
    if (ns_per_packet_ <= 0 || !enter_netns(ns_)) return;
    const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    in_addr ifaddr{};
    inet_pton(AF_INET, kSrcIp, &ifaddr);
    ::setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof ifaddr);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    inet_pton(AF_INET, group_.c_str(), &a.sin_addr);
    const auto start = Clock::now();
    const std::size_t packets = ts_.size() / 188;
    for (std::size_t i = 0; i < packets && !stop_; i += 7) {
      std::this_thread::sleep_until(start + std::chrono::nanoseconds(static_cast<std::int64_t>(ns_per_packet_ * static_cast<double>(i))));
      const std::size_t n = std::min<std::size_t>(7, packets - i);
      (void)::sendto(s, &ts_[i * 188], n * 188, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    ::close(s);
  }

  std::string ns_, group_;
  std::uint16_t port_;
  ByteVec ts_;
  double ns_per_packet_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

// 8. PCR pacing at the receiver: two channels with the default (PCR) pacing, each fed by a
// CBR source from src: "paced" by ffmpeg -re (muxrate 2000k: at 1500k ffmpeg's remux of
// the fixture does not fit, and its PCR runs ~1.5 % ahead of its sending), "timed" by the
// fixture itself sent on its own PCR clock (PcrTimedSender). Each PCR datagram's kernel
// arrival time in stb against its PCR schedule; the figures are measured and reported
// (the target is p99 <= 200 µs), the test asserts only loose bounds so that a loaded
// machine does not fail it. The same statistic of each source's own output (looped back
// to a receiver in src) is reported next to it.
TEST_F(ApplianceNs, PacingP99AtTheReceiver) {
  const pid_t app = start_appliance("  - id: paced\n    inputs:\n" + udp_input("rx", "239.1.1.60", 5000) + "    outputs:\n" +
                                    output("udp", "239.2.8.1", 5000) + "  - id: timed\n    inputs:\n" +
                                    udp_input("rx", "239.1.1.61", 5000) + "    outputs:\n" + output("udp", "239.2.8.2", 5000));
  ASSERT_GT(app, 0);
  Receiver& ffmpeg_out = receive("239.2.8.1", 5000);
  Receiver& timed_out = receive("239.2.8.2", 5000);
  receivers_.push_back(std::make_unique<Receiver>(src_, "239.1.1.60", 5000, kSrcIp));
  Receiver& ffmpeg_in = *receivers_.back();
  receivers_.push_back(std::make_unique<Receiver>(src_, "239.1.1.61", 5000, kSrcIp));
  Receiver& timed_in = *receivers_.back();
  ASSERT_TRUE(ffmpeg_in.ready() && timed_in.ready()) << "cannot join the input groups in " << src_;
  // Both sources from the fixture's start, for less than its 6 s: no loop in the capture.
  ASSERT_GT(start_child({"ip", "netns", "exec", src_, "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop",
                         "-1", "-i", fixture("h264_aac.ts").string(), "-map", "0", "-c", "copy", "-f", "mpegts",
                         "-muxrate", "2000k", udp_url("239.1.1.60", 5000)},
                        "sender"),
            0);
  PcrTimedSender timed(src_, "239.1.1.61", 5000, read_file(fixture("h264_aac.ts")), 0x100);
  ASSERT_GT(timed.ns_per_packet(), 0.0) << "no PCRs on PID 0x100 in the fixture";
  // The capture runs 5.3 s from the ffmpeg output's first datagram (its media time ~0), not
  // 5.8 s from the spawn: ffmpeg's start-up took ~2 s on a loaded machine and left only
  // ~150 PCR datagrams. It still ends before the fixture's 6 s loop.
  wait_first(ffmpeg_out);
  std::this_thread::sleep_for(5300ms);
  for (Receiver* r : {&ffmpeg_out, &timed_out, &ffmpeg_in, &timed_in}) r->stop();
  timed.stop();
  const std::string log = appliance_log();
  stop_twincastd(app);

  auto show = [](const PacingStats& p) {
    std::ostringstream o;
    o.setf(std::ios::fixed);
    o.precision(1);
    o << "PCR PID " << p.pcr_pid << ", " << p.samples << " PCR datagrams in " << p.segments << " timeline(s): p50 "
      << p.p50_us << " us, p99 " << p.p99_us << " us, max " << p.max_us << " us; local (+-0.5 s median): p50 "
      << p.local_p50_us << " us, p99 " << p.local_p99_us << " us, max " << p.local_max_us << " us; " << p.steps
      << " step(s); drift " << p.drift_ppm << " ppm, off that line: p50 " << p.line_p50_us << " us, p99 "
      << p.line_p99_us << " us, max " << p.line_max_us << " us";
    return o.str();
  };
  // The first 500 ms of each output go before the pacer's first anchor settles.
  const PacingStats paced = pcr_pacing(ffmpeg_out.datagrams(), 500ms);
  const PacingStats paced_src = pcr_pacing(ffmpeg_in.datagrams(), 500ms);
  const PacingStats timed_stats = pcr_pacing(timed_out.datagrams(), 500ms);
  const PacingStats timed_src = pcr_pacing(timed_in.datagrams(), 500ms);
  std::cout << "[ pacing   ] ffmpeg -re source (src):  " << show(paced_src) << "\n"
            << "[ pacing   ] its output (stb):         " << show(paced) << "\n"
            << "[ pacing   ] PCR-timed source (src):   " << show(timed_src) << "\n"
            << "[ pacing   ] its output (stb):         " << show(timed_stats) << std::endl;
  auto record = [&](const std::string& tag, const PacingStats& p) {
    RecordProperty(tag + "_samples", static_cast<int>(p.samples));
    RecordProperty(tag + "_p50_us", static_cast<int>(p.p50_us));
    RecordProperty(tag + "_p99_us", static_cast<int>(p.p99_us));
    RecordProperty(tag + "_max_us", static_cast<int>(p.max_us));
    RecordProperty(tag + "_local_p99_us", static_cast<int>(p.local_p99_us));
    RecordProperty(tag + "_steps", static_cast<int>(p.steps));
    RecordProperty(tag + "_drift_ppm", static_cast<int>(p.drift_ppm));
    RecordProperty(tag + "_line_p99_us", static_cast<int>(p.line_p99_us));
  };
  record("ffmpeg_src", paced_src);
  record("ffmpeg_out", paced);
  record("timed_src", timed_src);
  record("timed_out", timed_stats);

  for (Receiver* r : {&ffmpeg_out, &timed_out}) {
    const Stream s = assemble(r->datagrams(), false);
    EXPECT_GT(s.ts.size(), 188u * 1500) << log << read_text(dir_ / "sender.err");  // null packets are not forwarded
    EXPECT_EQ(s.bad_datagrams, 0u);
  }
  // ~5 s of PCRs (one every ~20 ms) on the video PID, one timeline each.
  for (const PacingStats* p : {&paced, &timed_stats}) {
    EXPECT_EQ(p->pcr_pid, 0x100) << show(*p);
    EXPECT_GE(p->samples, 150u) << show(*p);
    EXPECT_EQ(p->segments, 1u) << show(*p);
  }
  // Loose bounds. With the source that keeps time, over the whole run. With ffmpeg only the
  // median: its sending leads or lags its PCRs by up to ~100 ms (see its source line), more
  // than the pacer's 100 ms delay, so the pacer waits for late data now and then, and
  // re-anchors (a step of that size); the run-wide figures are reported, not asserted.
  // Figures are measured and reported (README), not asserted: on a loaded 2-core machine
  // the receiver's own scheduling moves the tail by milliseconds. What is asserted is
  // what load cannot cause: the output keeping the source's clock. A pacer on a wrong
  // clock drifts steadily (DPDK's nominal TSC rate here was 1484 ppm off); load only
  // adds noise around the line.
  EXPECT_LT(std::abs(timed_stats.drift_ppm), 1000.0) << show(timed_stats);
  EXPECT_LT(timed_stats.p50_us, 5000.0) << show(timed_stats);
  EXPECT_LT(paced.local_p50_us, 5000.0) << show(paced);
}
}  // namespace
}  // namespace twincast::test

namespace twincast::test {
namespace {

// Hot reload: 100 reloads that each add or remove one channel and restart another, half by
// SIGHUP and half by `twincastctl reload` (POST /api/v1/reload), while a receiver in stb
// watches a third channel the reloads never touch: it must see no gap and no CC error. An
// invalid file in between is refused and changes nothing. The removed channel's group is
// left: its receiver stops getting datagrams.
TEST_F(ApplianceNs, HundredReloadsLeaveAnUnchangedChannelAlone) {
  const auto token = dir_ / "api.token";
  std::ofstream(token) << "reload-test-token-0123456789abcdef\n";
  ::chmod(token.c_str(), 0600);
  // news also has a bitrate ceiling below what it carries (~0.75 Mbit/s: ffmpeg -c copy drops
  // the fixture's null packets): an alarm, nothing else.
  const std::string news = "  - id: news\n    inputs:\n"
                           "      - { name: rx, max_bitrate_bps: 500000, udp: { port: in, group: 239.1.1.60, udp_port: 5000 } }\n"
                           "    outputs:\n" + output("udp", "239.2.8.1", 5000);
  // extra gets another service_id from every reload (a restart); moved has its output's
  // TTL and DSCP, its name and its LCN changed by every reload (updated in place: no
  // restart, no pause; its LCN comes and goes).
  auto extra = [&](int n) {
    return "  - id: extra\n    service_id: " + std::to_string(200 + n) + "\n    inputs:\n" +
           udp_input("rx", "239.1.1.61", 5002) + "    outputs:\n" + output("udp", "239.2.8.2", 5002);
  };
  auto moved = [&](int ttl) {
    return "  - id: moved\n    name: Moved " + std::to_string(ttl) + (ttl == 4 ? "" : "\n    lcn: 7") +
           "\n    inputs:\n" + udp_input("rx", "239.1.1.63", 5006) + "    outputs:\n" +
           "      - { udp: { port: out, group: 239.2.8.4, udp_port: 5006, ttl: " + std::to_string(ttl) +
           ", dscp: " + std::to_string(ttl == 4 ? 34 : 46) + " } }\n";
  };
  const std::string kids = "  - id: kids\n    inputs:\n" + udp_input("rx", "239.1.1.62", 5004) + "    outputs:\n" +
                           output("udp", "239.2.8.3", 5004);
  const std::string control = control_section(token);
  const pid_t app = start_appliance(news + extra(4) + moved(4) + kids + control);
  ASSERT_GT(app, 0);
  const std::string head_yaml = read_text(dir_ / "channels.yaml").substr(0, read_text(dir_ / "channels.yaml").find("channels:\n") + 10);
  auto write_config = [&](const std::string& channels) {
    const auto tmp = dir_ / "channels.yaml.new";
    std::ofstream(tmp) << head_yaml << channels;
    std::filesystem::rename(tmp, dir_ / "channels.yaml");  // twincastd never reads half a file
  };
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.60", 5000), "news"), 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.61", 5002), "extra"), 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.62", 5004), "kids"), 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.63", 5006), "moved"), 0);
  // A guard (ffmpeg's start-up): four senders starting at once on a loaded machine were not
  // all sending within 5 s. Likewise the other waits for a first packet or an SRT connect.
  ASSERT_TRUE(wait_status([](const std::string& l) { return status_value(l, "channel=news input=rx ", "ts_packets").value_or(0) > 0; }, 30s))
      << appliance_log();
  const std::string ctl = ns_exec(head_) + shell_quote(tool("twincastctl").string()) + " --api 127.0.0.1:8080 --token-file " +
                          shell_quote(token.string()) + " ";
  Receiver& rx = receive("239.2.8.1", 5000);
  Receiver& kids_rx = receive("239.2.8.3", 5004);
  Receiver& extra_rx = receive("239.2.8.2", 5002);  // restarted by every reload: the control
  Receiver& moved_rx = receive("239.2.8.4", 5006);  // updated in place by every reload
  std::this_thread::sleep_for(1500ms);
  // Each output starts at its channel's next key frame: wait for the first datagrams
  // (bounded) instead of trusting 1.5 s to have been enough on a loaded machine.
  ASSERT_TRUE(poll_until(10s, [&] { return rx.count() > 0 && kids_rx.count() > 0; })) << appliance_log();

  auto reloads_logged = [&] {
    const std::string log = appliance_log();
    std::size_t n = 0;
    for (std::size_t at = log.find("SIGHUP: reloaded"); at != std::string::npos; at = log.find("SIGHUP: reloaded", at + 1)) ++n;
    return n;
  };
  std::size_t by_signal = 0;
  std::size_t by_api = 0;
  std::chrono::milliseconds slowest_api_reload{0};
  const auto first_at = rx.datagrams().at(0).at;
  const auto reload_start = Clock::now();
  const int n_reloads = std::getenv("TC_RELOADS") != nullptr ? std::atoi(std::getenv("TC_RELOADS")) : 100;
  for (int i = 1; i <= n_reloads; ++i) {
    // Odd: kids removed, extra restarted, moved updated; even: kids back, extra
    // restarted and moved updated again.
    write_config(news + extra(i % 2 == 1 ? 5 : 4) + moved(i % 2 == 1 ? 5 : 4) + (i % 2 == 1 ? "" : kids) + control);
    if (i % 2 == 1) {
      ++by_signal;
      ASSERT_EQ(::kill(app, SIGHUP), 0);
      ASSERT_TRUE(wait_status([&](const std::string&) { return reloads_logged() == by_signal; }, 5s))
          << "reload " << i << " by SIGHUP: " << appliance_log();
    } else {
      ++by_api;
      const auto t0 = Clock::now();
      // A generous timeout: on a loaded CI machine a reload may take seconds (it is timed).
      const RunResult r = run(ctl + "--timeout 30 reload");
      slowest_api_reload = std::max(slowest_api_reload, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0));
      ASSERT_EQ(r.exit_code, 0) << "reload " << i << ": " << r.out;
      ASSERT_NE(r.out.find("1 added, 0 removed, 1 restarted, 1 updated in place, 1 unchanged"), std::string::npos) << r.out;
    }
    if (i == 51) {
      // Kids was just removed: its group is left, its receiver hears nothing more. Judged
      // by the kernel's arrival time (SO_TIMESTAMPNS, CLOCK_REALTIME) against the moment the
      // reload was seen done, not by the receiver thread's count: on a loaded machine that
      // thread may still be reading datagrams that arrived before the removal.
      const auto removed_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count();
      std::this_thread::sleep_for(500ms);
      const auto kids_seen = kids_rx.datagrams();
      const auto late = std::count_if(kids_seen.begin(), kids_seen.end(),
                                      [&](const Receiver::Datagram& d) { return d.kernel_ns > removed_ns; });
      EXPECT_EQ(late, 0) << "datagrams of a removed channel still arrive";
      // A broken file is refused: nothing changes.
      write_config(news + "  - id: broken\n    inputs: []\n" + control);
      const RunResult refused = run(ctl + "reload");
      EXPECT_NE(refused.exit_code, 0) << refused.out;
      EXPECT_NE(refused.out.find("reload refused"), std::string::npos) << refused.out;
    }
  }
  const auto reload_end = Clock::now();
  const auto reload_end_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::this_thread::sleep_for(1500ms);
  if (n_reloads % 2 == 0) {
    // The last reload put kids back: its receiver hears it again (datagrams the kernel took
    // after that reload, from its next key frame on), not only what came before the reloads.
    EXPECT_TRUE(poll_until(15s, [&] {
      const auto seen = kids_rx.datagrams();
      return std::any_of(seen.begin(), seen.end(), [&](const Receiver::Datagram& d) { return d.kernel_ns > reload_end_ns; });
    })) << "the channel the last reload added back sends nothing";
  }
  const RunResult status = run(ctl + "--json status");
  const RunResult news_detail = run(ctl + "--json channel news");
  rx.stop();
  kids_rx.stop();
  extra_rx.stop();
  moved_rx.stop();
  const std::string log = appliance_log();
  stop_twincastd(app);

  EXPECT_EQ(by_signal + by_api, static_cast<std::size_t>(n_reloads));
  RecordProperty("slowest_api_reload_ms", static_cast<int>(slowest_api_reload.count()));
  std::printf("reloads: %d, slowest through the API (twincastctl round trip) %lld ms\n", n_reloads,
              static_cast<long long>(slowest_api_reload.count()));
  EXPECT_EQ(reloads_logged(), by_signal) << log;
  EXPECT_NE(status.out.find("\"id\":\"kids\""), std::string::npos) << status.out;
  EXPECT_NE(news_detail.out.find("\"over_ceiling\":true"), std::string::npos) << news_detail.out;
  EXPECT_NE(news_detail.out.find("over its bitrate ceiling"), std::string::npos) << news_detail.out;
  const Stream s = assemble(rx.datagrams(), false);
  ASSERT_GT(s.ts.size(), 188u * 1000) << log;
  EXPECT_EQ(s.bad_datagrams, 0u);
  // The restarted channel: its new remux goes on with the old one's continuity counters
  // (and the packets the old pacer still held), so its receiver sees no CC error; the
  // restart shows as a pause (PSI and a key frame to wait for) and new table versions.
  // The unchanged one must show nothing of it.
  if (n_reloads > 0) {
    const Stream e = assemble(extra_rx.datagrams(), false);
    write_file(dir_ / "extra.ts", e.ts);
    const RunResult an = run(shell_quote(tool("twincast-ts").string()) + " analyze --json " + shell_quote((dir_ / "extra.ts").string()));
    EXPECT_EQ(json_number(an.out, "Continuity_count_error"), 0u) << "a restarted channel broke its receivers' continuity: " << an.out;
    // The analyzer excuses a packet flagged with the discontinuity_indicator, which is what
    // the restarted pipeline sets on each PID's first packet: count again with no excuse.
    std::map<std::uint16_t, int> last_cc;
    std::size_t strict_errors = 0;
    for (std::size_t at = 0; at + 188 <= e.ts.size(); at += 188) {
      const std::uint8_t* p = e.ts.data() + at;
      const auto pid = static_cast<std::uint16_t>(((p[1] & 0x1F) << 8) | p[2]);
      if (pid == 0x1FFF || (p[3] & 0x10) == 0) continue;  // null, or no payload
      const int cc = p[3] & 0x0F;
      if (auto it = last_cc.find(pid); it != last_cc.end() && cc != ((it->second + 1) & 0x0F)) ++strict_errors;
      last_cc[pid] = cc;
    }
    EXPECT_EQ(strict_errors, 0u) << "continuity broken where the restart flagged a discontinuity";
    EXPECT_GT(e.max_gap, 200ms) << "no pause at the restarted channel: did it restart at all?";
    RecordProperty("restarted_channel_max_gap_ms", static_cast<int>(e.max_gap.count()));
    std::printf("restarted channel: max gap %lld ms, CC errors %llu\n", static_cast<long long>(e.max_gap.count()),
                static_cast<unsigned long long>(json_number(an.out, "Continuity_count_error")));
  }
  // h264_aac.ts is CBR 1.5 Mbit/s, a 7-packet datagram every ~7 ms, but ffmpeg -re sends it
  // in bursts: silences up to ~130 ms were seen with no reload at all (TC_RELOADS=0). A
  // channel that restarted would pause for PSI and a key frame (above).
  std::string long_gaps;  // where silences over 50 ms fell, against the reload phase
  {
    const auto ds = rx.datagrams();
    for (std::size_t i = 1; i < ds.size(); ++i) {
      const std::int64_t gap = ds[i].kernel_ns - ds[i - 1].kernel_ns;
      if (gap > 50'000'000) {
        long_gaps += " " + std::to_string((ds[i - 1].at - ds[0].at) / 1ms) + "ms+" + std::to_string(gap / 1'000'000) + "ms";
      }
    }
  }
  EXPECT_LT(s.max_gap, 300ms) << "the unchanged channel paused; silences over 50 ms (since the first datagram):" << long_gaps
                              << "; reloads ran from " << (reload_start - first_at) / 1ms << " ms to "
                              << (reload_end - first_at) / 1ms << " ms";
  RecordProperty("max_gap_ms", static_cast<int>(s.max_gap.count()));
  const OutputReport r = check_output(s, dir_, "reload_news", 0x100);  // zero CC errors, decodes
  EXPECT_GE(r.frames, 50u);
  // The channel updated in place kept its pipeline: no restart's pause, no CC error, and
  // its output decodes like the unchanged one's; its receivers read the new names and
  // LCNs in its SDT and NIT as the reloads made them.
  const Stream mv = assemble(moved_rx.datagrams(), false);
  ASSERT_GT(mv.ts.size(), 188u * 1000) << log;
  EXPECT_LT(mv.max_gap, 300ms) << "the updated channel paused: was it restarted?";
  RecordProperty("updated_channel_max_gap_ms", static_cast<int>(mv.max_gap.count()));
  const OutputReport mr = check_output(mv, dir_, "reload_moved", 0x100);
  EXPECT_GE(mr.frames, 50u);
  if (n_reloads >= 2) {
    mpegts::PsiDecoder psi;
    // (name, LCN) as the receiver's tables said them, each time they changed: from
    // ("Moved 4", 0) to ("Moved 5", 7) and back (the NIT stays once an LCN was sent, and
    // says when there is none any more). Not at every reload: the renamed tables leave with
    // the channel's next packet, and ffmpeg -re sends in bursts, so a reload that follows
    // the one before within a silence of the source replaces its tables before they left.
    using Described = std::pair<std::string, int>;
    std::vector<Described> seen;
    for (std::size_t at = 0; at + 188 <= mv.ts.size(); at += 188) {
      mpegts::TsPacket p;
      std::memcpy(p.bytes.data(), mv.ts.data() + at, 188);
      psi.push(p);
      const mpegts::ProgramModel& m = psi.model();
      if (m.services.size() != 1 || m.services[0].name.empty()) continue;
      const Described now{m.services[0].name, m.services[0].lcn};
      if (seen.empty() || seen.back() != now) seen.push_back(now);
    }
    const Described four{"Moved 4", 0};
    const Described five{"Moved 5", 7};
    std::size_t to_five = 0;
    std::size_t back_to_four = 0;
    for (std::size_t k = 0; k < seen.size(); ++k) {
      to_five += seen[k] == five ? 1U : 0U;
      back_to_four += seen[k] == four && to_five > 0 ? 1U : 0U;
    }
    std::string trail;
    for (const Described& x : seen) trail += " " + x.first + "/" + std::to_string(x.second);
    EXPECT_GE(to_five, 1u) << "the receiver never saw the rename:" << trail;
    EXPECT_GE(back_to_four, 1u) << "the LCN was never taken back:" << trail;
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back(), n_reloads % 2 == 0 ? four : five);
    RecordProperty("updated_channel_renames_seen", static_cast<int>(to_five + back_to_four));
  }
}

}  // namespace
}  // namespace twincast::test

namespace twincast::test {
namespace {

// HLS from the same timeline: a channel with hls: true, fed by ffmpeg over UDP multicast,
// is packaged and served by twincastd's origin; ffmpeg plays the master playlist over HTTP
// without an error, the media playlist follows RFC 8216 (PROGRAM-DATE-TIME on every
// segment, EXTINF within the target duration, MEDIA-SEQUENCE growing), each segment
// decodes alone from a key frame, and the multicast output goes on as before.
TEST_F(ApplianceNs, HlsOfAChannelPlaysOverHttp) {
  const pid_t app = start_appliance("  - id: news\n    name: News\n    hls: true\n    inputs:\n" +
                                    udp_input("rx", "239.1.1.70", 5000) + "    outputs:\n" + output("udp", "239.2.9.1", 5000) +
                                    "ott:\n  listen: 127.0.0.1:8090\n  segment_seconds: 2\n  window_segments: 3\n");
  ASSERT_GT(app, 0);
  ASSERT_GT(start_ffmpeg_sender("h264_aac.ts", "mpegts", udp_url("239.1.1.70", 5000), "sender"), 0);
  Receiver& rx = receive("239.2.9.1", 5000);
  const std::string base = std::string(kOrigin) + "hls/news/";
  // Segments of 2 s: the third is there after ~6-7 s.
  bool ready = false;
  for (int i = 0; i < 150 && !ready; ++i) {
    std::this_thread::sleep_for(100ms);
    if (fetch("live.m3u8", dir_ / "live1.m3u8").exit_code != 0) continue;
    const std::string text = read_text(dir_ / "live1.m3u8");
    ready = std::count(text.begin(), text.end(), '\n') >= 12;  // header lines + 2 segments
  }
  ASSERT_TRUE(ready) << read_text(dir_ / "live1.m3u8") << appliance_log();
  const std::string live1 = read_text(dir_ / "live1.m3u8");
  ASSERT_EQ(fetch("index.m3u8", dir_ / "index.m3u8").exit_code, 0);
  const std::string master = read_text(dir_ / "index.m3u8");
  EXPECT_NE(master.find("#EXT-X-STREAM-INF:BANDWIDTH="), std::string::npos) << master;
  EXPECT_NE(master.find("CODECS=\"avc1."), std::string::npos) << master;
  EXPECT_NE(master.find("RESOLUTION=320x240"), std::string::npos) << master;
  EXPECT_NE(master.find("live.m3u8"), std::string::npos) << master;

  // The media playlist, line by line.
  std::istringstream lines(live1);
  std::size_t pdt = 0, extinf = 0, uris = 0;
  double target = 0;
  std::vector<std::string> segs;
  for (std::string l; std::getline(lines, l);) {
    if (l.rfind("#EXT-X-TARGETDURATION:", 0) == 0) target = std::stod(l.substr(22));
    if (l.rfind("#EXT-X-PROGRAM-DATE-TIME:", 0) == 0) ++pdt;
    if (l.rfind("#EXTINF:", 0) == 0) {
      ++extinf;
      EXPECT_LE(std::lround(std::stod(l.substr(8))), std::lround(target)) << l;
    }
    if (!l.empty() && l[0] != '#') {
      ++uris;
      segs.push_back(l);
    }
  }
  EXPECT_EQ(target, 2);
  EXPECT_GE(extinf, 2u);
  EXPECT_EQ(pdt, extinf) << live1;
  EXPECT_EQ(uris, extinf);
  EXPECT_NE(live1.find("#EXT-X-MEDIA-SEQUENCE:"), std::string::npos);
  EXPECT_NE(live1.find("#EXT-X-DISCONTINUITY-SEQUENCE:"), std::string::npos);
  // Each segment decodes alone from a key frame.
  for (const auto& seg : segs) {
    const auto file = dir_ / seg;
    ASSERT_EQ(fetch(seg, file).exit_code, 0) << seg;
    const RunResult dec = run("ffmpeg -nostdin -v error -i " + shell_quote(file.string()) + " -f null - 2>&1");
    EXPECT_EQ(dec.exit_code, 0) << seg << ": " << dec.out;
    EXPECT_EQ(dec.out, "") << seg;
    const RunResult key = run("ffprobe -v error -select_streams v:0 -show_entries frame=key_frame -of csv=p=0 -read_intervals %+#1 " +
                              shell_quote(file.string()));
    EXPECT_EQ(key.out.substr(0, 1), "1") << seg << " does not start with a key frame";
  }
  // A real player: ffmpeg follows the master playlist live for 6 s and decodes it all.
  const RunResult play = play_master(30);
  EXPECT_EQ(play.exit_code, 0) << play.out;
  EXPECT_EQ(play.out, "") << play.out;
  // The live window slides: 3 segments listed; once 7 were made (MEDIA-SEQUENCE first + 4)
  // the first has left memory too (the window and as many again are kept).
  auto media_sequence = [](const std::string& text) {
    const auto at = text.find("#EXT-X-MEDIA-SEQUENCE:");
    return at == std::string::npos ? -1 : std::stol(text.substr(at + 22));
  };
  // The channel's first number: the wall clock's ms when twincastd made it (live1 lists
  // its first 2 or 3 segments).
  const long first = media_sequence(live1);
  EXPECT_GT(first, 1'700'000'000'000L) << live1;
  std::string live2;
  // Media sequence first + 5 lists first + 5..7: the first segment is then out of the
  // 2 x 3 + 1 = 7 held (RFC 8216 6.2.2).
  for (int i = 0; i < 250 && media_sequence(live2) < first + 5; ++i) {
    std::this_thread::sleep_for(100ms);
    if (fetch("live.m3u8", dir_ / "live2.m3u8").exit_code == 0) live2 = read_text(dir_ / "live2.m3u8");
  }
  EXPECT_GE(media_sequence(live2), first + 5) << live2;
  EXPECT_EQ(std::count(live2.begin(), live2.end(), '\n') - 6, 3 * 3) << "3 segments listed: " << live2;
  // The API and /metrics see the HLS side: serving, requests, a viewer (this namespace's
  // loopback address), the public URL; the OTT lineup lists it.
  const RunResult detail = run(ns_exec(head_) + shell_quote(tool("twincastctl").string()) + " --api 127.0.0.1:8080 --json channel news");
  EXPECT_NE(detail.out.find("\"state\":\"serving\""), std::string::npos) << detail.out;
  EXPECT_NE(detail.out.find("\"viewers\":1"), std::string::npos) << detail.out;
  EXPECT_NE(detail.out.find("\"url\":\"http://127.0.0.1:8090/hls/news/index.m3u8\""), std::string::npos) << detail.out;
  EXPECT_EQ(detail.out.find("\"segment_requests\":0"), std::string::npos) << detail.out;
  const RunResult lineup = run(ns_exec(head_) + "curl -sS http://127.0.0.1:8080/lineup/ott.m3u");
  EXPECT_NE(lineup.out.find("tvg-id=\"news\""), std::string::npos) << lineup.out;
  EXPECT_NE(lineup.out.find("\nhttp://127.0.0.1:8090/hls/news/index.m3u8\n"), std::string::npos) << lineup.out;
  const RunResult metrics = run(ns_exec(head_) + "curl -sS http://127.0.0.1:9100/metrics");
  EXPECT_NE(metrics.out.find("twincast_hls_viewers{channel=\"news\"} 1"), std::string::npos);
  EXPECT_NE(metrics.out.find("twincast_channel_hls_segments_total{channel=\"news\"}"), std::string::npos);
  // The held segments are in memfds (the origin sends them with sendfile), none on the heap.
  const auto sample = [&](const std::string& name) { return prometheus_sample(metrics.out, name); };
  EXPECT_GE(sample("twincast_hls_memfds"), 3.0) << metrics.out;  // at least the 3 listed
  EXPECT_EQ(sample("twincast_hls_memfd_fallbacks_total"), 0.0) << metrics.out;
  // The packet worker (lcore 1) moved packets in some of its turns: a share above 0 and
  // far below 1 for one channel of a few Mbit/s; nothing shed.
  const double poll = sample("twincast_worker_poll_seconds_total{lcore=\"1\"}");
  const double busy = sample("twincast_worker_busy_seconds_total{lcore=\"1\"}");
  EXPECT_GT(poll, 1.0) << metrics.out;
  EXPECT_GT(busy, 0.0) << metrics.out;
  EXPECT_LT(busy, 0.5 * poll) << metrics.out;
  EXPECT_EQ(sample("twincast_ott_shed_tiers{lcore=\"1\"}"), 0.0) << metrics.out;
  // The status lines carry the same meter.
  EXPECT_GT(status_value(appliance_log(), "worker lcore=1 ", "poll_ms").value_or(0), 1000u) << appliance_log();
  // Unknown names and evicted segments are 404s.
  EXPECT_NE(fetch("seg-999999.ts", dir_ / "none.ts").exit_code, 0);
  const RunResult status =
      run(ns_exec(head_) + "curl -sS -o /dev/null -w '%{http_code}' " + base + "seg-" + std::to_string(first) + ".ts");
  EXPECT_EQ(status.out, "404") << "seg-" << first << " should have been evicted (3 listed, 7 kept)";
  rx.stop();
  const std::string log = appliance_log();
  stop_twincastd(app);
  const Stream s = assemble(rx.datagrams(), false);
  ASSERT_GT(s.ts.size(), 188u * 1000) << log;
  (void)check_output(s, dir_, "hls_multicast", 0x100);
}

// config/README.md: a reload whose rebuilt SRT ingest cannot start (a port taken by another
// program) runs the new configuration and says so. Once the port is free again, reloading
// the same file must bring the SRT listener up: the operator has no other way short of a
// restart of twincastd.
TEST_F(ApplianceNs, SrtIngestThatCouldNotStartStartsOnTheNextReload) {
  const std::string news = "  - id: news\n    inputs:\n" + udp_input("rx", "239.1.1.70", 5000) + "    outputs:\n" +
                           output("udp", "239.2.9.1", 5000);
  const pid_t app = start_appliance(news);
  ASSERT_GT(app, 0);
  const std::string yaml = read_text(dir_ / "channels.yaml");
  const std::string head_yaml = yaml.substr(0, yaml.find("channels:\n") + 10);
  {
    const auto tmp = dir_ / "channels.yaml.new";
    std::ofstream(tmp) << head_yaml << news << srt_channel(200);
    std::filesystem::rename(tmp, dir_ / "channels.yaml");
  }
  // Another program holds the SRT port (no SO_REUSEADDR: libsrt cannot share it).
  const pid_t squatter = start_child({"ip", "netns", "exec", head_, "/usr/bin/python3", "-c",
                                      std::string("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                                                  "s.bind(('") + kSrtHeadIp + "',9000))\ntime.sleep(600)\n"},
                                     "squatter");
  ASSERT_GT(squatter, 0);
  // Until it holds the port (python's start-up can take more than a second on a loaded
  // machine; a reload before the bind would simply succeed).
  const bool squatting = poll_until(15s, [&] {
    return run(ns_exec(head_) + "ss -Hlun src " + kSrtHeadIp + ":9000").out.find(":9000") != std::string::npos;
  });
  ASSERT_TRUE(squatting) << read_text(dir_ / "squatter.err");
  ASSERT_EQ(::kill(app, SIGHUP), 0);
  ASSERT_TRUE(wait_status([](const std::string& l) { return l.find("reload_incomplete") != std::string::npos; }, 10s))
      << appliance_log() << read_text(dir_ / "squatter.err");
  end_child(squatter, 2000ms);
  std::this_thread::sleep_for(500ms);
  // The port is free: the same file again.
  ASSERT_EQ(::kill(app, SIGHUP), 0);
  const auto reloads = [](const std::string& l) {
    std::size_t n = 0;
    for (std::size_t at = l.find("SIGHUP: reloaded"); at != std::string::npos; at = l.find("SIGHUP: reloaded", at + 1)) ++n;
    return n;
  };
  ASSERT_TRUE(wait_status([&](const std::string& l) { return reloads(l) >= 3; }, 10s)) << appliance_log();
  ASSERT_GT(start_child(srt_caller(src_, kPassphrase, 200), "good"), 0);
  const std::string line = "channel=contrib input=srt ";
  const bool up = wait_status([&](const std::string& l) { return status_value(l, line, "srt_connected").value_or(0) == 1; }, 30s);
  const std::string log = appliance_log();
  stop_twincastd(app);
  EXPECT_TRUE(up) << "the SRT listener never came back: " << log << read_text(dir_ / "good.err");
}

}  // namespace
}  // namespace twincast::test
