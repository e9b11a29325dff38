// `twincast-ts record`: what a set-top box receives, byte for byte. Joins a multicast
// group (or listens on a unicast port) with a kernel socket and writes the datagrams'
// TS payloads to a file, RTP headers removed. Unlike `ffmpeg -c copy`, nothing is remuxed,
// so continuity counters and tables are exactly the sender's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ts_tool_internal.hpp"

namespace twincast::control {

namespace {

constexpr const char* kRecordUsage =
    "usage: twincast-ts record [--iface ADDR] [--source ADDR] [--seconds N] GROUP:PORT OUT.ts\n"
    "  Joins GROUP (source-specific when --source is given) on the interface with address ADDR\n"
    "  and writes the TS payload of every datagram to OUT.ts for N seconds (default 10);\n"
    "  RTP (version 2, payload type 33) is unwrapped. A unicast address listens on that port.\n";

in_addr parse_addr(const std::string& s, const char* what) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) throw UsageError(std::string(what) + ": '" + s + "' is not an IPv4 address");
  return a;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

int record_command(const std::vector<std::string>& args) {
  std::string iface = "0.0.0.0", source, target, out_path;
  double seconds = 10;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "--iface") iface = value();
    else if (a == "--source") source = value();
    else if (a == "--seconds") seconds = static_cast<double>(parse_number(value(), "--seconds", 1, 86400));
    else if (a == "-h" || a == "--help") {
      std::fputs(kRecordUsage, stdout);
      return 0;
    } else if (!a.empty() && a[0] == '-') throw UsageError("unknown option " + a + "\n" + kRecordUsage);
    else if (target.empty()) target = a;
    else if (out_path.empty()) out_path = a;
    else throw UsageError(std::string("too many arguments\n") + kRecordUsage);
  }
  if (target.empty() || out_path.empty()) throw UsageError(std::string("GROUP:PORT and OUT.ts are required\n") + kRecordUsage);
  const std::size_t colon = target.rfind(':');
  if (colon == std::string::npos) throw UsageError("GROUP:PORT expected, got " + target);
  const in_addr group = parse_addr(target.substr(0, colon), "group");
  const auto port = static_cast<std::uint16_t>(parse_number(target.substr(colon + 1), "port", 1, 65535));
  const in_addr ifaddr = parse_addr(iface, "--iface");
  const bool multicast = IN_MULTICAST(ntohl(group.s_addr));

  Fd s;
  s.fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (s.fd < 0) throw InputError(std::string("socket: ") + std::strerror(errno));
  const int one = 1, zero = 0, rcvbuf = 8 << 20;
  (void)::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  (void)::setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  // Only this group's datagrams, not every group some other socket joined.
  if (multicast) (void)::setsockopt(s.fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero);
  sockaddr_in bind_addr{};
  bind_addr.sin_family = AF_INET;
  bind_addr.sin_port = htons(port);
  bind_addr.sin_addr = multicast ? group : in_addr{INADDR_ANY};
  if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&bind_addr), sizeof bind_addr) != 0)
    throw InputError("bind " + target + ": " + std::strerror(errno));
  if (multicast) {
    int rc = 0;
    if (source.empty()) {
      ip_mreq m{group, ifaddr};
      rc = ::setsockopt(s.fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m);
    } else {
      ip_mreq_source m{};
      m.imr_multiaddr = group;
      m.imr_interface = ifaddr;
      m.imr_sourceaddr = parse_addr(source, "--source");
      rc = ::setsockopt(s.fd, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &m, sizeof m);
    }
    if (rc != 0) throw InputError("join " + target + " on " + iface + ": " + std::strerror(errno));
  }

  std::ofstream f(out_path, std::ios::binary | std::ios::trunc);
  if (!f) throw InputError(out_path + ": cannot open for writing");
  std::array<std::uint8_t, 65536> buf{};
  std::uint64_t datagrams = 0, bytes = 0, rtp = 0, odd = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{s.fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::recv(s.fd, buf.data(), buf.size(), 0);
    if (n <= 0) continue;
    std::size_t off = 0;
    auto len = static_cast<std::size_t>(n);
    // RTP: version 2, payload type 33 (MP2T); skip the header, CSRCs and extension, and the
    // padding at the end (P bit: the last octet counts the padding octets, RFC 3550 5.1).
    if (len >= 12 && (buf[0] >> 6) == 2 && (buf[1] & 0x7F) == 33 && buf[0] != 0x47) {
      off = 12 + 4u * (buf[0] & 0x0F);
      if ((buf[0] & 0x10) != 0 && len >= off + 4) off += 4 + 4u * ((std::size_t{buf[off + 2]} << 8) | buf[off + 3]);
      if ((buf[0] & 0x20) != 0) len -= std::min<std::size_t>(buf[len - 1], len);
      ++rtp;
    }
    if (off >= len) continue;
    if ((len - off) % 188 != 0) ++odd;
    f.write(reinterpret_cast<const char*>(buf.data() + off), static_cast<std::streamsize>(len - off));
    ++datagrams;
    bytes += len - off;
  }
  f.close();
  // A full disk must not pass for a recording.
  if (!f) throw InputError(out_path + ": write failed");
  std::fprintf(stderr, "record: %llu datagrams (%llu RTP, %llu not a multiple of 188 bytes), %llu bytes -> %s\n",
               static_cast<unsigned long long>(datagrams), static_cast<unsigned long long>(rtp),
               static_cast<unsigned long long>(odd), static_cast<unsigned long long>(bytes), out_path.c_str());
  return datagrams == 0 ? 1 : 0;
}

}  // namespace twincast::control
