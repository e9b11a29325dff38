// Shared by the in-process data-plane tests that feed real TS (multiplex_dp_test,
// ott_feed_test): Ethernet/IPv4/UDP frames carrying TS packets from a peer, the same as an
// mbuf of a port's pool, and the TS packets that a capture's frames carry to one group and
// port. Header-only.
#pragma once

#include <gtest/gtest.h>
#include <rte_mbuf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "twincast/dataplane/net.hpp"
#include "twincast/mpegts/packet.hpp"

namespace twincast::test {

// A UDP frame from `src_ip`/`src_mac` (source port 40000, TTL 8) to `dst`:`dport`
// carrying `packets`.
inline std::vector<std::uint8_t> ts_udp_frame(dataplane::Ipv4 dst, std::uint16_t dport,
                                              std::span<const mpegts::TsPacket> packets, dataplane::Ipv4 src_ip,
                                              const dataplane::Mac& src_mac) {
  namespace net = dataplane::net;
  net::UdpFrame f;
  f.dst_mac = net::multicast_mac(dst);
  f.src_mac = src_mac;
  f.src_ip = src_ip;
  f.dst_ip = dst;
  f.src_port = 40000;
  f.dst_port = dport;
  f.ttl = 8;
  const std::size_t payload = packets.size() * mpegts::kPacketSize;
  std::vector<std::uint8_t> frame(net::udp_headers_size(0) + payload);
  EXPECT_GT(net::write_udp_headers(frame, f, payload), 0u);
  std::memcpy(frame.data() + net::udp_headers_size(0), packets.data(), payload);
  return frame;
}

// `frame` copied into an mbuf of `pool` (nullptr and a test failure when the pool is empty).
inline rte_mbuf* mbuf_of(rte_mempool* pool, const std::vector<std::uint8_t>& frame) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  EXPECT_NE(m, nullptr) << "mempool empty";
  if (m == nullptr) return nullptr;
  std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame.size())), frame.data(), frame.size());
  return m;
}

// The TS packets of the UDP datagrams in `frames` sent to (group, port), in order; the
// number of those datagrams in *n_dgrams when given.
inline std::vector<mpegts::TsPacket> ts_to(const std::vector<std::vector<std::uint8_t>>& frames, dataplane::Ipv4 group,
                                           std::uint16_t port, std::size_t* n_dgrams = nullptr) {
  namespace net = dataplane::net;
  std::vector<mpegts::TsPacket> out;
  std::size_t n = 0;
  for (const auto& f : frames) {
    const auto e = net::parse_ethernet(f);
    if (!e || e->ether_type != net::kEtherTypeIpv4) continue;
    net::Bytes l4;
    const auto ip = net::parse_ipv4(net::Bytes(f).subspan(e->header_size), &l4);
    if (!ip || ip->protocol != net::kProtoUdp || ip->dst != group) continue;
    net::Bytes payload;
    const auto u = net::parse_udp(l4, &payload);
    if (!u || u->dst_port != port || payload.size() % mpegts::kPacketSize != 0) continue;
    ++n;
    for (std::size_t at = 0; at < payload.size(); at += mpegts::kPacketSize) {
      mpegts::TsPacket p;
      std::memcpy(p.bytes.data(), payload.data() + at, mpegts::kPacketSize);
      out.push_back(p);
    }
  }
  if (n_dgrams != nullptr) *n_dgrams = n;
  return out;
}

}  // namespace twincast::test
