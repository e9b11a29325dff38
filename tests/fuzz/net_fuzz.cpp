// Fuzzes the data plane's frame parsers (dataplane/include/twincast/dataplane/net.hpp) the
// way the worker runs them on every received frame: Ethernet [+VLAN], then ARP, or IPv4
// (IGMP query, or UDP, then RTP). Whatever a parser accepts must lie inside the bytes it was
// given and be self-consistent; what the appliance builds from it (an ARP reply, an IPv4
// header) must parse back to the same fields.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "twincast/dataplane/net.hpp"

namespace net = twincast::dataplane::net;

namespace {

volatile std::uint64_t g_sink;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool inside(net::Bytes part, net::Bytes whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

void arp(net::Bytes l3, std::uint16_t vlan) {
  const auto a = net::parse_arp(l3);
  if (!a) return;
  check(l3.size() >= net::kArpSize);
  // Answer it as the appliance would (as if we owned the address asked for), then read the
  // answer back.
  const twincast::dataplane::Mac ours{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
  std::array<std::uint8_t, 64> frame{};
  const std::size_t n = net::build_arp_reply(frame, *a, ours, a->target_ip, vlan);
  check(n != 0 && n <= frame.size());
  const net::Bytes reply(frame.data(), n);
  const net::EthernetType t = net::parse_ethernet_type(reply);
  check(t.header_size != 0 && t.ether_type == net::kEtherTypeArp && t.vlan == (vlan & 0x0FFF));
  const auto r = net::parse_arp(reply.subspan(t.header_size));
  check(r.has_value());
  check(r->op == net::kArpReply && r->sender_ip == a->target_ip && r->target_ip == a->sender_ip &&
        r->target_mac == a->sender_mac && r->sender_mac == ours);
}

void udp(net::Bytes segment) {
  net::Bytes payload;
  const auto u = net::parse_udp(segment, &payload);
  if (!u) return;
  check(inside(payload, segment) && payload.data() == segment.data() + net::kUdpHeaderSize);
  net::Bytes ts;
  const auto r = net::parse_rtp(payload, &ts);
  if (!r) return;
  check(inside(ts, payload) && r->payload_type < 128);
  g_sink = r->sequence + r->timestamp + r->ssrc + ts.size();
}

void ipv4(net::Bytes l3) {
  net::Bytes payload;
  const auto h = net::parse_ipv4(l3, &payload);
  if (!h) return;
  check(h->header_size >= net::kIpv4HeaderSize && h->header_size <= 60 && h->header_size % 4 == 0);
  check(h->total_size <= l3.size() && h->header_size <= h->total_size);
  check(inside(payload, l3) && payload.size() == h->total_size - h->header_size);
  check(net::internet_checksum(l3.first(h->header_size)) == 0);
  // The same header written by the appliance's builder (options kept), in front of the same
  // payload, parses back to the same fields.
  static std::array<std::uint8_t, 60 + 0xFFFF> again;
  const net::Bytes options = l3.subspan(net::kIpv4HeaderSize, h->header_size - net::kIpv4HeaderSize);
  const std::size_t n = net::write_ipv4(again, *h, payload.size(), options);
  check(n == h->header_size);
  std::copy(payload.begin(), payload.end(), again.begin() + static_cast<std::ptrdiff_t>(n));
  const auto back = net::parse_ipv4(net::Bytes(again.data(), n + payload.size()));
  check(back.has_value());
  check(back->src == h->src && back->dst == h->dst && back->protocol == h->protocol && back->ttl == h->ttl &&
        back->dscp == h->dscp && back->ecn == h->ecn && back->identification == h->identification &&
        back->dont_fragment == h->dont_fragment && back->header_size == h->header_size &&
        back->total_size == h->total_size);
  if (h->is_fragment()) return;  // the worker drops fragments here
  if (h->protocol == net::kProtoIgmp) {
    const auto q = net::parse_igmp_query(payload);
    if (q) check(q->version >= 1 && q->version <= 3);
  } else if (h->protocol == net::kProtoUdp) {
    udp(payload);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const net::Bytes frame(data, size);
  const net::EthernetType t = net::parse_ethernet_type(frame);
  const auto e = net::parse_ethernet(frame);
  check(e.has_value() == (t.header_size != 0));
  if (!e) return 0;
  check(t.header_size == net::kEthernetHeaderSize || t.header_size == net::kEthernetHeaderSize + net::kVlanTagSize);
  check(t.header_size <= size && e->vlan == t.vlan && e->ether_type == t.ether_type && e->header_size == t.header_size);
  check(t.ether_type != net::kEtherTypeVlan);  // QinQ is refused
  const net::Bytes l3 = frame.subspan(t.header_size);
  if (t.ether_type == net::kEtherTypeArp) arp(l3, t.vlan);
  else if (t.ether_type == net::kEtherTypeIpv4) ipv4(l3);
  return 0;
}
