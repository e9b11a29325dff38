// SrtIngest against real SRT peers (srt-live-transmit, ffmpeg) on 127.0.0.1.
#include "twincast/control/srt_ingest.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <srt/srt.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests_common.hpp"
#include "twincast/control/config.hpp"

namespace {

using namespace std::chrono_literals;
using twincast::control::SrtIngest;
using twincast::control::srt_streamid_resource;
using twincast::dataplane::InputConfig;
using twincast::dataplane::InputKind;
using twincast::dataplane::SrtMode;
namespace test = twincast::test;

// A UDP port that is free right now on 127.0.0.1 (the kernel picks it).
std::uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A child process group running a shell command; killed and reaped on destruction.
class Peer {
 public:
  explicit Peer(const std::string& command) {
    const std::string log = (std::filesystem::temp_directory_path() / "twincast_srt_peer.log").string();
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (out >= 0) {
        dup2(out, 1);
        dup2(out, 2);
      }
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    if (pid_ > 0) setpgid(pid_, pid_);
  }
  ~Peer() { stop(); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    kill(-pid_, sig);
    for (int k = 0; k < 300; ++k) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        kill(-pid_, SIGKILL);  // anything left in the group (sleep, cat)
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// Collects what the sink receives, per input.
class Collector {
 public:
  explicit Collector(std::size_t n) : data_(n), starts_(n) {}
  SrtIngest::Sink sink() {
    return [this](std::size_t i, std::span<const std::uint8_t> b) {
      const std::lock_guard lock(mu_);
      if (i >= data_.size()) {
        bad_index_ = true;
        return;
      }
      if (b.empty()) ++starts_[i];  // a connection starts
      data_[i].insert(data_[i].end(), b.begin(), b.end());
      if (b.size() > 1500) oversize_ = true;
    };
  }
  std::vector<std::uint8_t> bytes(std::size_t i) {
    const std::lock_guard lock(mu_);
    return data_[i];
  }
  std::size_t size(std::size_t i) {
    const std::lock_guard lock(mu_);
    return data_[i].size();
  }
  // Connections announced to the sink (an empty message each).
  std::size_t starts(std::size_t i) {
    const std::lock_guard lock(mu_);
    return starts_[i];
  }
  bool sane() {
    const std::lock_guard lock(mu_);
    return !bad_index_ && !oversize_;
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<std::uint8_t>> data_;
  std::vector<std::size_t> starts_;
  bool bad_index_ = false;
  bool oversize_ = false;
};

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// Whole TS packets: a multiple of 188 with a sync byte at every stride.
bool whole_ts_packets(const std::vector<std::uint8_t>& b) {
  if (b.empty() || b.size() % 188 != 0) return false;
  for (std::size_t k = 0; k < b.size(); k += 188) {
    if (b[k] != 0x47) return false;
  }
  return true;
}

InputConfig srt_input(const std::string& name, SrtMode mode, std::uint16_t port) {
  InputConfig c;
  c.name = name;
  c.kind = InputKind::kSrt;
  c.srt_mode = mode;
  c.srt_address = mode == SrtMode::kListener ? "127.0.0.1" : "127.0.0.1";
  c.srt_port = port;
  return c;
}

// srt-live-transmit pushing a file (kept open afterwards, so nothing is cut off at EOF).
// Paced at ~7 Mbit/s with dd (live mode drops what is pushed much faster than real time),
// after `delay` s (srt-live-transmit drops what it reads before it is connected), with
// -buffering:1 (it keeps the last 8 messages back otherwise).
std::string push_file(const std::filesystem::path& file, const std::string& uri,
                      const std::string& delay = "1") {
  constexpr std::uintmax_t kChunk = 18800;  // 100 TS packets
  const std::uintmax_t n = (std::filesystem::file_size(file) + kChunk - 1) / kChunk;
  return "{ sleep " + delay + "; i=0; while [ $i -lt " + std::to_string(n) + " ]; do dd if=" +
         test::shell_quote(file.string()) + " bs=" + std::to_string(kChunk) +
         " skip=$i count=1 status=none; i=$((i+1)); sleep 0.02; done; sleep 60; } | "
         "exec srt-live-transmit -q -chunk:1316 -buffering:1 file://con " + test::shell_quote(uri);
}

std::string ffprobe_codec(const std::vector<std::uint8_t>& bytes, const std::string& tag) {
  const auto dir = test::temp_dir(tag);
  const auto path = dir / "received.ts";
  test::write_file(path, bytes);
  const auto r = test::run("ffprobe -v error -select_streams v:0 -show_entries stream=codec_name "
                           "-of default=nw=1:nk=1 " + test::shell_quote(path.string()));
  std::filesystem::remove_all(dir);
  std::string out = r.out;
  return out.substr(0, out.find('\n'));  // the first video stream
}

std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A UDP relay on 127.0.0.1 between an SRT caller and a listener that loses chosen data
// packets: only their first sends (repaired by a retransmission), or every copy (those
// losses can only be dropped).
class LossyRelay {
 public:
  // Loses the data packets whose sequence number, counted from the first one seen, is a
  // positive multiple of `every`.
  LossyRelay(std::uint16_t listener_port, std::uint32_t every, bool retransmissions_too)
      : every_(every), retransmissions_too_(retransmissions_too) {
    front_ = socket(AF_INET, SOCK_DGRAM, 0);
    back_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a = loopback(0);
    bind(front_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(front_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    const sockaddr_in to = loopback(listener_port);
    connect(back_, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    thread_ = std::thread([this] { run(); });
  }
  ~LossyRelay() {
    stop_ = true;
    thread_.join();
    close(front_);
    close(back_);
  }
  LossyRelay(const LossyRelay&) = delete;
  LossyRelay& operator=(const LossyRelay&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  void run() {
    std::array<std::uint8_t, 2048> buf{};
    sockaddr_in caller{};
    bool have_caller = false;
    std::optional<std::uint32_t> first;
    while (!stop_) {
      pollfd fds[2] = {{front_, POLLIN, 0}, {back_, POLLIN, 0}};
      if (poll(fds, 2, 20) <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) {
        socklen_t len = sizeof caller;
        const ssize_t n = recvfrom(front_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&caller), &len);
        have_caller = true;
        if (n >= 16 && (buf[0] & 0x80) == 0) {  // a data packet: its sequence number
          const std::uint32_t seq = ((std::uint32_t{buf[0]} << 24) | (std::uint32_t{buf[1]} << 16) |
                                     (std::uint32_t{buf[2]} << 8) | buf[3]) & 0x7fffffffU;
          if (!first) first = seq;
          const std::uint32_t k = (seq - *first) & 0x7fffffffU;
          const bool retransmission = (buf[4] & 0x04) != 0;  // the R flag
          if (k != 0 && k % every_ == 0 && (retransmissions_too_ || !retransmission)) continue;
        }
        if (n > 0) send(back_, buf.data(), static_cast<std::size_t>(n), 0);
      }
      if ((fds[1].revents & POLLIN) != 0) {
        const ssize_t n = recv(back_, buf.data(), buf.size(), 0);
        if (n > 0 && have_caller)
          sendto(front_, buf.data(), static_cast<std::size_t>(n), 0, reinterpret_cast<const sockaddr*>(&caller), sizeof caller);
      }
    }
  }

  std::uint32_t every_;
  bool retransmissions_too_;
  int front_ = -1;
  int back_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// An in-process libsrt caller (live mode, blocking connect) to 127.0.0.1:port; closed on
// destruction.
class Caller {
 public:
  Caller(std::uint16_t port, int latency_ms, const std::string& streamid = "") {
    sock_ = srt_create_socket();
    srt_setsockflag(sock_, SRTO_LATENCY, &latency_ms, sizeof latency_ms);
    if (!streamid.empty()) srt_setsockflag(sock_, SRTO_STREAMID, streamid.data(), static_cast<int>(streamid.size()));
    const sockaddr_in a = loopback(port);
    connected_ = srt_connect(sock_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != SRT_ERROR;
  }
  ~Caller() { srt_close(sock_); }
  Caller(const Caller&) = delete;
  Caller& operator=(const Caller&) = delete;
  bool connected() const { return connected_; }
  bool send(const std::vector<std::uint8_t>& message) {
    return srt_sendmsg2(sock_, reinterpret_cast<const char*>(message.data()), static_cast<int>(message.size()), nullptr) != SRT_ERROR;
  }

 private:
  SRTSOCKET sock_ = SRT_INVALID_SOCK;
  bool connected_ = false;
};

// ---------------------------------------------------------------------------------------------

TEST(SrtStreamId, ResourceName) {
  EXPECT_EQ(srt_streamid_resource("chan1"), "chan1");
  EXPECT_EQ(srt_streamid_resource(""), "");
  EXPECT_EQ(srt_streamid_resource("#!::r=chan2,m=publish"), "chan2");
  EXPECT_EQ(srt_streamid_resource("#!::m=publish,u=joe,r=live/x"), "live/x");
  EXPECT_EQ(srt_streamid_resource("#!::m=publish,u=joe"), "");
  EXPECT_EQ(srt_streamid_resource("#!::r="), "");
  EXPECT_EQ(srt_streamid_resource("#!::"), "");
  EXPECT_EQ(srt_streamid_resource("#!::rr=a,r=b"), "b");
  EXPECT_EQ(srt_streamid_resource("#!:r=a"), "#!:r=a");  // not the access-control prefix
  std::mt19937 rng(7);
  for (int k = 0; k < 2000; ++k) {
    std::string s = k % 2 == 0 ? "#!::" : "";
    const std::size_t len = rng() % 40;
    for (std::size_t j = 0; j < len; ++j) s += "r=,#!:x\0"[rng() % 8];
    const std::string_view r = srt_streamid_resource(s);
    // A view into the input, never past its end.
    ASSERT_TRUE(r.empty() || (r.data() >= s.data() && r.data() + r.size() <= s.data() + s.size()));
  }
}

TEST(SrtIngestConfig, RejectsBadInputsWithoutLeakingSecrets) {
  Collector col(2);
  const auto expect_error = [&](std::vector<InputConfig> in, const std::string& needle) {
    try {
      SrtIngest ingest(std::move(in), col.sink());
      ADD_FAILURE() << "no error for " << needle;
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find("supersecret"), std::string::npos) << what;
    }
  };
  auto a = srt_input("a", SrtMode::kListener, 9000);
  auto short_pass = a;
  short_pass.passphrase = "supersecr";  // 9 characters
  expect_error({short_pass}, "passphrase must be 10..79");
  auto long_pass = a;
  long_pass.passphrase = "supersecret" + std::string(70, 'x');
  expect_error({long_pass}, "passphrase must be 10..79");
  auto key = a;
  key.key_length = 20;
  expect_error({key}, "key_length must be 16, 24 or 32");
  auto no_port = a;
  no_port.srt_port = 0;
  expect_error({no_port}, "srt_port is required");
  auto udp = a;
  udp.kind = InputKind::kUdp;
  expect_error({udp}, "not an SRT input");
  auto host = a;
  host.srt_address = "example.org";
  expect_error({host}, "not a numeric");
  auto caller_any = srt_input("c", SrtMode::kCaller, 9000);
  caller_any.srt_address = "0.0.0.0";
  expect_error({caller_any}, "must name the remote host");
  // Duplicate streamids on one port, also when one is written in the access-control form.
  auto s1 = a;
  s1.streamid = "chan1";
  auto s2 = a;
  s2.name = "b";
  s2.streamid = "#!::r=chan1,m=publish";
  expect_error({s1, s2}, "streamid 'chan1' on port 9000 is already used by input #0");
  auto e1 = a;
  auto e2 = a;  // two catch-alls
  expect_error({e1, e2}, "already used");
  auto other_addr = s2;
  other_addr.streamid = "chan2";
  other_addr.srt_address = "0.0.0.0";
  expect_error({s1, other_addr}, "must share one bind address");
  // Every error at once.
  auto both = short_pass;
  both.key_length = 8;
  expect_error({both}, "key_length");
  expect_error({both}, "passphrase");
  // The same streamid on different ports is fine, and so is a sensible configuration.
  auto other_port = s2;
  other_port.srt_port = 9001;
  auto good = s1;
  good.passphrase = "supersecret-1";
  good.key_length = 32;
  EXPECT_NO_THROW(SrtIngest({good, other_port}, col.sink()));
  EXPECT_THROW(SrtIngest({good}, SrtIngest::Sink{}), std::invalid_argument);
}

TEST(SrtIngest, ListenerReceivesTheFileExactlyAndAcceptsAReplacement) {
  const auto file = test::fixture("h264_aac.ts");
  const auto expected = test::read_file(file);
  const std::uint16_t port = free_port();
  Collector col(1);
  SrtIngest ingest({srt_input("in", SrtMode::kListener, port)}, col.sink());
  ingest.start();
  EXPECT_THROW(ingest.start(), std::logic_error);
  {
    Peer peer(push_file(file, "srt://127.0.0.1:" + std::to_string(port)));
    ASSERT_TRUE(wait_until([&] { return col.size(0) >= expected.size(); }, 10s))
        << "received " << col.size(0) << " of " << expected.size();
    std::this_thread::sleep_for(300ms);  // nothing more may come
    const auto got = col.bytes(0);
    EXPECT_TRUE(whole_ts_packets(got));
    EXPECT_TRUE(got == expected) << got.size() << " vs " << expected.size();
    ASSERT_TRUE(wait_until([&] { return ingest.stats(0).rtt_ms > 0; }, 3s));
    const auto st = ingest.stats(0);
    EXPECT_TRUE(st.connected);
    EXPECT_EQ(st.connections, 1U);
    EXPECT_EQ(st.bytes, expected.size());
    EXPECT_GE(st.packets, expected.size() / 1316);
    EXPECT_EQ(st.peer.rfind("127.0.0.1:", 0), 0U) << st.peer;
    EXPECT_GE(st.rtt_ms, 0.0);
    EXPECT_EQ(st.rejected_callers, 0U);
    // An encoder restart: a second caller replaces the first (still connected) one.
    Peer again(push_file(file, "srt://127.0.0.1:" + std::to_string(port)));
    ASSERT_TRUE(wait_until([&] { return col.size(0) >= 2 * expected.size(); }, 10s))
        << "received " << col.size(0);
    EXPECT_EQ(ingest.stats(0).connections, 2U);
    EXPECT_EQ(col.starts(0), 2U) << "each connection's stream is announced to the sink";
    EXPECT_TRUE(ingest.stats(0).connected);
  }
  EXPECT_TRUE(col.sane());
  ingest.stop();
  EXPECT_FALSE(ingest.stats(0).connected);
  const auto got = col.bytes(0);
  EXPECT_TRUE(whole_ts_packets(got));
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), got.begin() + static_cast<std::ptrdiff_t>(expected.size())));
}

TEST(SrtIngest, PassphraseAcceptsTheRightOneAndCountsTheWrongOnes) {
  const auto file = test::fixture("h264_aac.ts");
  const auto expected = test::read_file(file);
  const std::uint16_t port = free_port();
  const std::string uri = "srt://127.0.0.1:" + std::to_string(port);
  auto cfg = srt_input("secure", SrtMode::kListener, port);
  cfg.passphrase = "correct-horse-42";
  cfg.key_length = 32;
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  testing::internal::CaptureStderr();
  Peer good(push_file(file, uri + "?passphrase=correct-horse-42&pbkeylen=32"));
  const bool all = wait_until([&] { return col.size(0) >= expected.size(); }, 10s);
  Peer wrong(push_file(file, uri + "?passphrase=wrong-horse-42"));
  Peer none(push_file(file, uri));
  const bool rejected = wait_until([&] { return ingest.stats(0).rejected_callers >= 2; }, 8s);
  std::this_thread::sleep_for(300ms);
  wrong.stop();
  none.stop();
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(all) << "received " << col.size(0) << " of " << expected.size();
  EXPECT_TRUE(rejected) << ingest.stats(0).rejected_callers;
  // The rejected callers disturbed nothing: same connection, no extra data.
  const auto st = ingest.stats(0);
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(st.connections, 1U);
  EXPECT_EQ(st.bytes, expected.size());
  EXPECT_TRUE(col.bytes(0) == expected);
  EXPECT_EQ(st.undecrypted, 0U);
  // Logged, rate-limited (once per 10 s per input), and without secrets.
  EXPECT_NE(log.find("rejected caller"), std::string::npos) << log;
  std::size_t n_lines = 0;
  for (std::size_t at = log.find("rejected caller"); at != std::string::npos;
       at = log.find("rejected caller", at + 1)) {
    ++n_lines;
  }
  EXPECT_EQ(n_lines, 1U) << log;
  EXPECT_EQ(log.find("horse"), std::string::npos) << log;
}

TEST(SrtIngest, StreamidsRouteCallersOnOnePort) {
  const auto h264 = test::fixture("h264_aac.ts");
  const auto hevc = test::fixture("hevc_aac.ts");
  const auto expected = test::read_file(h264);
  const std::uint16_t port = free_port();
  const std::string uri = "srt://127.0.0.1:" + std::to_string(port);
  auto chan1 = srt_input("one", SrtMode::kListener, port);
  chan1.streamid = "chan1";
  auto chan2 = srt_input("two", SrtMode::kListener, port);
  chan2.streamid = "chan2";
  chan2.passphrase = "second-secret-2";  // a passphrase per streamid
  Collector col(2);
  SrtIngest ingest({chan1, chan2}, col.sink());
  ingest.start();
  testing::internal::CaptureStderr();
  Peer p1(push_file(h264, uri + "?streamid=chan1"));
  // ffmpeg with the access-control syntax (ffmpeg 5.1 takes it verbatim, not URL-decoded).
  Peer p2("exec ffmpeg -nostdin -loglevel error -readrate 4 -i " + test::shell_quote(hevc.string()) +
          " -c copy -f mpegts '" + uri +
          "?pkt_size=1316&passphrase=second-secret-2&streamid=#!::r=chan2,m=publish'");
  Peer p3(push_file(h264, uri + "?streamid=chan9"));
  const bool one = wait_until([&] { return col.size(0) >= expected.size(); }, 10s);
  const bool two = wait_until([&] { return ingest.stats(1).connections == 1 && col.size(1) > 200000; }, 10s);
  const bool unknown = wait_until([&] { return ingest.stats(0).rejected_callers >= 1; }, 5s);
  p2.stop(SIGKILL);
  p3.stop();
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(one) << col.size(0);
  ASSERT_TRUE(two) << col.size(1) << log;
  EXPECT_TRUE(unknown);
  EXPECT_TRUE(col.bytes(0) == expected);
  const auto second = col.bytes(1);
  EXPECT_TRUE(whole_ts_packets(second)) << second.size();
  EXPECT_EQ(ffprobe_codec(col.bytes(0), "srt_chan1"), "h264");
  EXPECT_EQ(ffprobe_codec(second, "srt_chan2"), "hevc");
  EXPECT_EQ(ingest.stats(0).connections, 1U);
  EXPECT_GE(ingest.stats(1).rejected_callers, 1U);  // chan9 counts on every input of the port
  EXPECT_NE(log.find("unknown streamid 'chan9'"), std::string::npos) << log;
  EXPECT_EQ(log.find("second-secret"), std::string::npos) << log;
  EXPECT_TRUE(col.sane());
}

TEST(SrtIngest, CallerReconnectsWhenThePeerRestarts) {
  const auto file = test::fixture("h264_aac.ts");
  const std::uint16_t port = free_port();
  const std::string listen = "exec ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i " +
                             test::shell_quote(file.string()) +
                             " -c copy -f mpegts 'srt://127.0.0.1:" + std::to_string(port) +
                             "?mode=listener&pkt_size=1316&streamid=ignored'";
  auto cfg = srt_input("pull", SrtMode::kCaller, port);
  cfg.streamid = "pull-1";
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  std::size_t first = 0;
  {
    Peer peer(listen);
    ASSERT_TRUE(wait_until([&] { return col.size(0) > 100000; }, 10s)) << col.size(0);
    EXPECT_TRUE(ingest.stats(0).connected);
    EXPECT_EQ(ingest.stats(0).peer, "127.0.0.1:" + std::to_string(port));
    peer.stop();
    ASSERT_TRUE(wait_until([&] { return !ingest.stats(0).connected; }, 8s));
    first = col.size(0);
  }
  Peer peer(listen);
  ASSERT_TRUE(wait_until([&] { return col.size(0) > first + 100000; }, 12s)) << col.size(0);
  const auto st = ingest.stats(0);
  EXPECT_EQ(st.connections, 2U);
  EXPECT_EQ(col.starts(0), 2U) << "each connection's stream is announced to the sink";
  EXPECT_TRUE(st.connected);
  EXPECT_GE(st.rtt_ms, 0.0);
  const auto got = col.bytes(0);
  EXPECT_TRUE(whole_ts_packets(std::vector<std::uint8_t>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(first))));
  EXPECT_TRUE(whole_ts_packets(got));
  EXPECT_EQ(ffprobe_codec(got, "srt_caller"), "h264");
}

TEST(SrtIngest, Rendezvous) {
  const auto file = test::fixture("h264_aac.ts");
  const auto expected = test::read_file(file);
  const std::uint16_t ours = free_port();
  std::uint16_t theirs = free_port();
  while (theirs == ours) theirs = free_port();
  auto cfg = srt_input("rdv", SrtMode::kRendezvous, theirs);
  cfg.srt_local_port = ours;
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  Peer peer(push_file(file, "srt://127.0.0.1:" + std::to_string(ours) + "?mode=rendezvous&port=" +
                                std::to_string(theirs)));
  ASSERT_TRUE(wait_until([&] { return ingest.stats(0).connected; }, 10s));
  ASSERT_TRUE(wait_until([&] { return col.size(0) >= expected.size(); }, 10s))
      << col.size(0) << " of " << expected.size();
  EXPECT_TRUE(col.bytes(0) == expected);
  EXPECT_EQ(ingest.stats(0).connections, 1U);
  EXPECT_EQ(ingest.stats(0).peer, "127.0.0.1:" + std::to_string(theirs));
}

TEST(SrtIngest, StopLeavesNoThreadsBehind) {
  const std::size_t before = thread_count();
  {
    Collector col(3);
    const std::uint16_t p1 = free_port();
    const std::uint16_t p2 = free_port();
    auto rdv = srt_input("r", SrtMode::kRendezvous, free_port());
    rdv.srt_local_port = free_port();
    SrtIngest ingest({srt_input("l", SrtMode::kListener, p1), srt_input("c", SrtMode::kCaller, p2), rdv},
                     col.sink());
    ingest.start();
    std::this_thread::sleep_for(300ms);
    EXPECT_GT(thread_count(), before);
    const auto t0 = std::chrono::steady_clock::now();
    ingest.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);  // stop does not wait for timeouts
    ingest.stop();  // idempotent
    EXPECT_FALSE(ingest.stats(1).connected);
    EXPECT_EQ(ingest.stats(1).connections, 0U);
  }
  EXPECT_TRUE(wait_until([&] { return thread_count() == before; }, 3s)) << thread_count() << " vs " << before;
}

TEST(SrtIngest, StartFailsCleanlyWhenThePortIsTaken) {
  const std::uint16_t port = free_port();
  Collector col(2);
  SrtIngest first({srt_input("a", SrtMode::kListener, port)}, col.sink());
  first.start();
  SrtIngest second({srt_input("b", SrtMode::kListener, port)}, col.sink());
  try {
    second.start();
    // libsrt may share the UDP port (SO_REUSEADDR); then the second listen must still fail.
    ADD_FAILURE() << "second listener on one port started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
  }
}

// Configurations the validator accepts must run.

// config/README.md: "caller/rendezvous: required, the remote host name or address", and the
// shipped config/redundant.yaml calls srt-gw.site2.example.net. A caller configured with a
// host name must construct and connect (localhost: 127.0.0.1 from /etc/hosts).
TEST(SrtIngest, CallerAcceptsAHostName) {
  const auto file = test::fixture("h264_aac.ts");
  const std::uint16_t port = free_port();
  auto cfg = srt_input("byname", SrtMode::kCaller, port);
  cfg.srt_address = "localhost";  // /etc/hosts: 127.0.0.1
  Collector col(1);
  std::unique_ptr<SrtIngest> ingest;
  try {
    ingest = std::make_unique<SrtIngest>(std::vector<InputConfig>{cfg}, col.sink());
  } catch (const std::exception& e) {
    FAIL() << "a host name the configuration accepts is refused: " << e.what();
  }
  ingest->start();
  Peer peer(push_file(file, "srt://127.0.0.1:" + std::to_string(port) + "?mode=listener", "2"));
  EXPECT_TRUE(wait_until([&] { return col.size(0) > 100000; }, 12s)) << col.size(0);
  EXPECT_TRUE(ingest->stats(0).connected);
}

// A caller whose peer is a host name, with a resolver that never answers (a DNS outage):
// stop() must not wait for the lookup (glibc's resolver would take timeout x attempts,
// here 4 x 2 s, and a reload or shutdown with it). The child process gets its own mount and
// network namespaces: /etc/resolv.conf names 127.0.0.1, where a UDP socket takes the
// queries and never answers.
TEST(SrtIngest, StopDoesNotWaitForASlowResolver) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for the namespaces";
  const auto dir = test::temp_dir("srt_dns");
  const std::string conf = (dir / "resolv.conf").string();
  {
    std::FILE* f = std::fopen(conf.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("nameserver 127.0.0.1\noptions timeout:4 attempts:2\n", f);
    std::fclose(f);
  }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // 10: setup failed; 0: stop() was quick; 1: it was not.
    if (unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) _exit(10);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(10);
    if (mount(conf.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) _exit(10);
    if (std::system("ip link set lo up") != 0) _exit(10);
    const int dns = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(53);
    if (dns < 0 || bind(dns, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) _exit(10);
    auto cfg = srt_input("slowdns", SrtMode::kCaller, 9000);
    cfg.srt_address = "encoder.headend.example";
    Collector col(1);
    SrtIngest ingest({cfg}, col.sink());
    ingest.start();
    std::this_thread::sleep_for(500ms);  // the lookup is waiting for its answer
    const auto t0 = std::chrono::steady_clock::now();
    ingest.stop();
    const auto took = std::chrono::steady_clock::now() - t0;
    std::fprintf(stderr, "stop() took %lld ms\n",
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
    _exit(took < 1500ms ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_NE(WEXITSTATUS(status), 10) << "could not set up the namespaces";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "stop() waited for the resolver";
}

TEST(SrtIngest, ShippedRedundantConfigBuildsItsIngest) {
  const char* src = std::getenv("TWINCAST_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  const auto r = twincast::control::load_config(std::string(src) + "/config/redundant.yaml");
  ASSERT_TRUE(r.ok());
  std::vector<InputConfig> srt;
  for (const auto& ch : r.config->channels)
    for (const auto& in : ch.inputs)
      if (in.kind == InputKind::kSrt) srt.push_back(in);
  ASSERT_FALSE(srt.empty());
  Collector col(srt.size());
  EXPECT_NO_THROW(SrtIngest(srt, col.sink()));
}

// Listeners on one port are told apart by the streamid's resource name ("chan1" and
// "#!::r=chan1,m=publish" are the same); the configuration validator compares raw strings,
// a validator comparing the raw strings would accept a configuration whose ingest cannot be
// built (twincastd would then fail to start, or a reload half-way).
TEST(SrtIngest, ConfigValidatorAndIngestAgreeOnStreamids) {
  const auto two = [](const std::string& a, const std::string& b) {
    return "channels:\n"
           "  - id: a\n"
           "    inputs: [ { srt: { port: 9000, streamid: \"" + a + "\" } } ]\n"
           "    hls: true\n"
           "  - id: b\n"
           "    inputs: [ { srt: { port: 9000, streamid: \"" + b + "\" } } ]\n"
           "    hls: true\n";
  };
  for (const auto& [a, b] : {std::pair<std::string, std::string>{"chan1", "#!::r=chan1,m=publish"},
                             {"#!::m=publish,u=joe", "#!::m=publish,u=ann"}}) {
    const auto r = twincast::control::parse_config(two(a, b));
    if (!r.ok()) continue;  // refused up front: consistent
    std::vector<InputConfig> srt;
    for (const auto& ch : r.config->channels) srt.push_back(ch.inputs.at(0));
    Collector col(2);
    EXPECT_NO_THROW(SrtIngest(srt, col.sink())) << a << " / " << b << ": the validator accepted it";
  }
}

// A rendezvous input whose peer restarts connects again (as a caller does).
TEST(SrtIngest, RendezvousReconnectsWhenThePeerRestarts) {
  const auto file = test::fixture("h264_aac.ts");
  const std::uint16_t ours = free_port();
  std::uint16_t theirs = free_port();
  while (theirs == ours) theirs = free_port();
  auto cfg = srt_input("rdv", SrtMode::kRendezvous, theirs);
  cfg.srt_local_port = ours;
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  const std::string uri = "srt://127.0.0.1:" + std::to_string(ours) + "?mode=rendezvous&port=" + std::to_string(theirs);
  std::size_t first = 0;
  {
    Peer peer(push_file(file, uri));
    ASSERT_TRUE(wait_until([&] { return col.size(0) > 100000; }, 10s)) << col.size(0);
    peer.stop();
    ASSERT_TRUE(wait_until([&] { return !ingest.stats(0).connected; }, 8s));
    first = col.size(0);
  }
  Peer peer(push_file(file, uri));
  EXPECT_TRUE(wait_until([&] { return col.size(0) > first + 100000; }, 15s)) << col.size(0);
  EXPECT_EQ(ingest.stats(0).connections, 2U);
}

// /metrics exports the SRT figures as Prometheus counters: none may ever go down. A loss the
// retransmissions cannot repair is counted lost when it is seen and dropped a latency later;
// `recovered` (lost - dropped) must not count it in between and take it back then.
TEST(SrtIngest, CountersNeverGoDownWhenLossesAreDropped) {
  const std::uint16_t port = free_port();
  auto cfg = srt_input("lossy", SrtMode::kListener, port);
  cfg.latency_ms = 1000;  // a loss is dropped a second after it is seen: polls in between
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  LossyRelay relay(port, 100, true);
  Caller caller(relay.port(), 1000);
  ASSERT_TRUE(caller.connected()) << srt_getlasterror_str();
  std::atomic<bool> sending{true};
  std::atomic<bool> sent_all{false};
  std::thread sender([&] {
    std::vector<std::uint8_t> message(1316, 0x47);
    for (int k = 0; k < 1250 && sending; ++k) {  // 2.5 s at 500 messages/s
      caller.send(message);
      std::this_thread::sleep_for(2ms);
    }
    sent_all = true;
  });
  std::string history;
  SrtIngest::InputStats prev;
  bool went_down = false;
  // Watched for 4.5 s, and until 2 s (two latencies) after the last message: on a loaded
  // machine the sender takes longer than 2.5 s, and its losses are dropped a latency after
  // they are seen. A guard of 60 s.
  const auto start = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> end;
  while (!end || std::chrono::steady_clock::now() < *end) {
    if (!end && sent_all) end = std::max(start + 4500ms, std::chrono::steady_clock::now() + 2s);
    if (!end && std::chrono::steady_clock::now() > start + 60s) break;
    const auto st = ingest.stats(0);
    const auto down = [&](std::uint64_t now, std::uint64_t before, const char* what) {
      if (now >= before) return;
      went_down = true;
      history += std::string(what) + " " + std::to_string(before) + " -> " + std::to_string(now) + "; ";
    };
    down(st.lost, prev.lost, "lost");
    down(st.dropped, prev.dropped, "dropped");
    down(st.recovered, prev.recovered, "recovered");
    down(st.retransmitted, prev.retransmitted, "retransmitted");
    down(st.packets, prev.packets, "packets");
    prev = st;
    std::this_thread::sleep_for(5ms);
  }
  sending = false;
  sender.join();
  const auto st = ingest.stats(0);
  ASSERT_GT(st.lost, 5U) << "the relay lost nothing";
  ASSERT_GT(st.dropped, 5U) << "nothing was dropped";
  EXPECT_FALSE(went_down) << history;
  // Nothing was repaired: every copy of a lost packet was lost.
  EXPECT_LE(st.recovered + st.dropped, st.lost) << "recovered " << st.recovered << ", dropped " << st.dropped << ", lost " << st.lost;
}

// Losses the retransmissions repair are all counted recovered, once their play time is past.
TEST(SrtIngest, RecoveredCountsTheRepairedLosses) {
  const std::uint16_t port = free_port();
  auto cfg = srt_input("lossy", SrtMode::kListener, port);
  cfg.latency_ms = 500;
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  LossyRelay relay(port, 50, false);
  Caller caller(relay.port(), 500);
  ASSERT_TRUE(caller.connected()) << srt_getlasterror_str();
  std::vector<std::uint8_t> message(1316, 0x47);
  for (int k = 0; k < 500; ++k) {  // 1 s at 500 messages/s
    caller.send(message);
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_TRUE(wait_until([&] {
    const auto st = ingest.stats(0);
    return st.packets == 500 && st.lost > 5 && st.recovered == st.lost;
  }, 10s));
  const auto st = ingest.stats(0);
  EXPECT_GT(st.lost, 5U);
  EXPECT_EQ(st.recovered, st.lost);
  EXPECT_EQ(st.dropped, 0U);
  EXPECT_EQ(st.packets, 500U);
}

// One connection with a latency of 1 s through a relay that loses every 100th packet and
// every copy of it, sending 1.5 s at 500 messages/s, losses to its end: the first losses are
// dropped before it ends, the last ones are not. The relay outlives the caller until the
// ingest has seen it go: the caller's close is one UDP shutdown packet, and a relay torn down
// with it (a race under load) leaves the ingest to notice the silence 5 s later, when every
// loss has been dropped. `stats`: the input's counters once it is disconnected.
void unrepaired_connection_that_ends(SrtIngest& ingest, std::uint16_t port, SrtIngest::InputStats& stats) {
  std::vector<std::uint8_t> message(1316, 0x47);
  LossyRelay relay(port, 100, true);
  {
    Caller caller(relay.port(), 1000);
    ASSERT_TRUE(caller.connected()) << srt_getlasterror_str();
    for (int k = 0; k < 750; ++k) {
      caller.send(message);
      std::this_thread::sleep_for(2ms);
    }
  }
  ASSERT_TRUE(wait_until([&] { return !ingest.stats(0).connected; }, 3s)) << "the caller's close did not arrive";
  stats = ingest.stats(0);
}

// A connection that ends within a latency of its last losses: those were never repaired
// (libsrt had not dropped them yet, and now never will), so the next connection's polls
// must not settle them as recovered. Nothing is repaired here (every copy is lost).
TEST(SrtIngest, LossesOfAConnectionThatEndedAreNotCountedRecovered) {
  const std::uint16_t port = free_port();
  auto cfg = srt_input("lossy", SrtMode::kListener, port);
  cfg.latency_ms = 1000;
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  std::vector<std::uint8_t> message(1316, 0x47);
  SrtIngest::InputStats first;
  ASSERT_NO_FATAL_FAILURE(unrepaired_connection_that_ends(ingest, port, first));
  ASSERT_GT(first.lost, first.dropped) << "every loss was dropped before the end";
  Caller caller(port, 1000);  // a clean one: no loss
  ASSERT_TRUE(caller.connected()) << srt_getlasterror_str();
  for (int k = 0; k < 1250; ++k) {  // 2.5 s: the first connection's losses are all past settling
    caller.send(message);
    std::this_thread::sleep_for(2ms);
  }
  const auto st = ingest.stats(0);
  EXPECT_EQ(st.lost, first.lost);
  EXPECT_EQ(st.recovered, 0U) << "dropped " << st.dropped << ", lost " << st.lost;
}

// A caller whose streamid asks to receive (m=request, SRT access control: "the caller wants to
// receive the stream") is a player or a probe, not an encoder: there is nothing to serve it,
// and it must not take the input from the encoder publishing on that streamid.
TEST(SrtIngest, ARequestModeCallerDoesNotDisplaceThePublisher) {
  const std::uint16_t port = free_port();
  auto cfg = srt_input("pub", SrtMode::kListener, port);
  cfg.streamid = "chan1";
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  Caller encoder(port, 120, "#!::r=chan1,m=publish");
  ASSERT_TRUE(encoder.connected()) << srt_getlasterror_str();
  std::atomic<bool> sending{true};
  std::thread sender([&] {
    std::vector<std::uint8_t> message(1316, 0x47);
    while (sending) {
      encoder.send(message);
      std::this_thread::sleep_for(2ms);
    }
  });
  const bool flowing = wait_until([&] { return ingest.stats(0).packets > 50; }, 5s);
  testing::internal::CaptureStderr();
  Caller probe(port, 120, "#!::r=chan1,m=request");  // e.g. ffplay watching the encoder
  std::this_thread::sleep_for(1500ms);  // the ingest accepts, sweeps its pending callers
  const std::string log = testing::internal::GetCapturedStderr();
  const auto before = ingest.stats(0).packets;
  std::this_thread::sleep_for(300ms);
  const auto st = ingest.stats(0);
  sending = false;
  sender.join();
  ASSERT_TRUE(flowing) << ingest.stats(0).packets;
  EXPECT_FALSE(probe.connected()) << "a caller asking to receive was accepted";
  EXPECT_EQ(st.connections, 1U) << "the encoder's connection was replaced";
  EXPECT_TRUE(st.connected);
  EXPECT_GT(st.packets, before) << "the encoder's data stopped";
  EXPECT_EQ(col.starts(0), 1U);
  EXPECT_EQ(st.rejected_callers, 1U);
  EXPECT_NE(log.find("rejected caller"), std::string::npos) << log;
}

// A connection that ends within a latency of its losses, some of them already dropped: the
// next connection's repaired losses must all be counted recovered. The dropped ones are
// counted in `dropped`; taking them off again as unsettled ("abandoned") losses undercounts
// every later repair by as many.
TEST(SrtIngest, RepairsAfterAConnectionThatEndedWithDropsAreAllCountedRecovered) {
  const std::uint16_t port = free_port();
  auto cfg = srt_input("lossy", SrtMode::kListener, port);
  cfg.latency_ms = 1000;
  Collector col(1);
  SrtIngest ingest({cfg}, col.sink());
  ingest.start();
  std::vector<std::uint8_t> message(1316, 0x47);
  SrtIngest::InputStats first;
  ASSERT_NO_FATAL_FAILURE(unrepaired_connection_that_ends(ingest, port, first));
  ASSERT_GT(first.dropped, 0U) << "nothing was dropped before the end, lost " << first.lost;
  ASSERT_EQ(first.recovered, 0U);
  LossyRelay relay(port, 50, false);  // every loss repaired by its retransmission
  Caller caller(relay.port(), 1000);
  ASSERT_TRUE(caller.connected()) << srt_getlasterror_str();
  for (int k = 0; k < 500; ++k) {  // 1 s at 500 messages/s
    caller.send(message);
    std::this_thread::sleep_for(2ms);
  }
  const auto repaired_all = [&] {
    const auto st = ingest.stats(0);
    return st.lost > first.lost + 5 && st.recovered == st.lost - first.lost;
  };
  EXPECT_TRUE(wait_until(repaired_all, 10s));
  const auto st = ingest.stats(0);
  EXPECT_EQ(st.dropped, first.dropped) << "the second connection dropped packets";
  EXPECT_EQ(st.recovered, st.lost - first.lost)
      << "first connection: lost " << first.lost << ", dropped " << first.dropped << "; now lost " << st.lost
      << ", dropped " << st.dropped;
}

}  // namespace
