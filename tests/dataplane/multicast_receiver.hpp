// What the namespace tests' set-top box does: join a multicast group with a kernel socket
// and keep every datagram with its kernel receive time (MulticastReceiver), and cut a capture
// to whole GOPs for a decode check that only the stream's own faults can fail (whole_gops).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/netns.hpp"

namespace twincast::test {

// One multicast group received by a kernel socket in namespace `ns`, joined on the local
// address `iface`, on its own thread, until stop().
class MulticastReceiver {
 public:
  struct Datagram {
    std::chrono::steady_clock::time_point at;      // when this thread read it
    std::int64_t kernel_ns;    // when the kernel received it (SO_TIMESTAMPNS): immune to this
                               // thread being scheduled late on a busy machine
    std::vector<std::uint8_t> bytes;
  };

  MulticastReceiver(std::string ns, std::string group, std::uint16_t port, std::string iface)
      : ns_(std::move(ns)), group_(std::move(group)), iface_(std::move(iface)), port_(port) {
    thread_ = std::thread([this] { loop(); });
    for (int i = 0; i < 200 && !ready_ && !failed_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~MulticastReceiver() { stop(); }
  MulticastReceiver(const MulticastReceiver&) = delete;
  MulticastReceiver& operator=(const MulticastReceiver&) = delete;

  [[nodiscard]] bool ready() const { return ready_; }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::vector<Datagram> datagrams() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }
  // The TS bytes of the datagrams that hold 1..7 whole packets, in order; the others are
  // counted in *bad.
  [[nodiscard]] std::vector<std::uint8_t> ts(std::size_t* bad) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::uint8_t> out;
    *bad = 0;
    for (const Datagram& d : got_) {
      if (d.bytes.size() % 188 != 0 || d.bytes.size() > 7 * 188) {
        ++*bad;
        continue;
      }
      out.insert(out.end(), d.bytes.begin(), d.bytes.end());
    }
    return out;
  }
  [[nodiscard]] std::size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_.size();
  }

 private:
  void loop() {
    if (!enter_netns(ns_)) {
      failed_ = true;
      return;
    }
    const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rcvbuf = 4 << 20;
    ::setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    inet_pton(AF_INET, group_.c_str(), &a.sin_addr);
    ip_mreq m{};
    inet_pton(AF_INET, group_.c_str(), &m.imr_multiaddr);
    inet_pton(AF_INET, iface_.c_str(), &m.imr_interface);
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) != 0) {
      ::close(s);
      failed_ = true;
      return;
    }
    timeval tv{0, 50000};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    ready_ = true;
    std::vector<std::uint8_t> buf(65536);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    while (!stop_) {
      iovec iov{buf.data(), buf.size()};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(s, &msg, 0);
      if (n <= 0) continue;
      std::int64_t kernel_ns = 0;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts{};
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
          kernel_ns = static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back(Datagram{std::chrono::steady_clock::now(), kernel_ns, std::vector<std::uint8_t>(buf.begin(), buf.begin() + n)});
    }
    ::close(s);
  }

  std::string ns_, group_, iface_;
  std::uint16_t port_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::vector<Datagram> got_;
};

// Whole GOPs only, for the decode check: the first PAT and PMT, then every packet from the
// first video random-access point (ffmpeg's muxer flags each key frame with the
// random_access_indicator) up to, not including, the last one. A capture that starts
// mid-GOP makes the decoder report missing references until the next key frame, and one
// that ends mid-frame reports a truncated picture; neither is the appliance's doing.
inline std::vector<std::uint8_t> whole_gops(const std::vector<std::uint8_t>& ts, std::uint16_t video_pid) {
  const std::size_t n = ts.size() / 188;
  std::optional<std::uint16_t> pmt_pid;
  std::optional<std::size_t> pat_at, pmt_at, first_key, last_key;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* p = &ts[i * 188];
    const auto pid = static_cast<std::uint16_t>(((p[1] & 0x1F) << 8) | p[2]);
    const bool pusi = (p[1] & 0x40) != 0;
    const bool af = (p[3] & 0x20) != 0;
    if (pid == 0 && pusi && !pat_at && (p[3] & 0x30) == 0x10) {
      // PAT: pointer field, then the section; the first program with a non-zero number.
      const std::size_t sec = 5 + p[4];
      if (sec + 12 > 188) continue;  // a PAT that does not fit its first packet: take the next
      const std::size_t len = static_cast<std::size_t>(((p[sec + 1] & 0x0F) << 8) | p[sec + 2]);
      for (std::size_t at = sec + 8; at + 4 <= sec + 3 + len - 4 && at + 4 <= 188; at += 4) {
        if (((p[at] << 8) | p[at + 1]) != 0) {
          pmt_pid = static_cast<std::uint16_t>(((p[at + 2] & 0x1F) << 8) | p[at + 3]);
          pat_at = i;
          break;
        }
      }
    }
    if (pmt_pid && pid == *pmt_pid && pusi && !pmt_at) pmt_at = i;
    if (pid == video_pid && af && p[4] > 0 && (p[5] & 0x40) != 0 && pusi) {
      if (!first_key && pmt_at) first_key = i;
      last_key = i;
    }
  }
  std::vector<std::uint8_t> out;
  if (!pat_at || !pmt_at || !first_key || *last_key <= *first_key) return out;
  out.insert(out.end(), ts.begin() + static_cast<std::ptrdiff_t>(*pat_at * 188),
             ts.begin() + static_cast<std::ptrdiff_t>(*pat_at * 188 + 188));
  out.insert(out.end(), ts.begin() + static_cast<std::ptrdiff_t>(*pmt_at * 188),
             ts.begin() + static_cast<std::ptrdiff_t>(*pmt_at * 188 + 188));
  out.insert(out.end(), ts.begin() + static_cast<std::ptrdiff_t>(*first_key * 188),
             ts.begin() + static_cast<std::ptrdiff_t>(*last_key * 188));
  return out;
}

}  // namespace twincast::test
