// Ethernet (+802.1Q), ARP, IPv4, UDP, RTP and IGMP (v1, v2, v3) headers: building and parsing on
// plain byte spans, no DPDK. Parsers never read outside the span they are given and
// return std::nullopt for anything truncated or malformed; builders write into a span
// and return the number of bytes written, or 0 when the span is too small.
//
// All addresses and numbers are host byte order in the structs; the wire is big endian.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "twincast/dataplane/config.hpp"

namespace twincast::dataplane::net {

using Bytes = std::span<const std::uint8_t>;
using MutableBytes = std::span<std::uint8_t>;

inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeArp = 0x0806;
inline constexpr std::uint16_t kEtherTypeVlan = 0x8100;
inline constexpr std::uint8_t kProtoIgmp = 2;
inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::size_t kEthernetHeaderSize = 14;
inline constexpr std::size_t kVlanTagSize = 4;
inline constexpr std::size_t kIpv4HeaderSize = 20;
inline constexpr std::size_t kUdpHeaderSize = 8;
inline constexpr std::size_t kRtpHeaderSize = 12;
inline constexpr std::size_t kArpSize = 28;
inline constexpr std::uint8_t kRtpPayloadTypeMp2t = 33;
inline constexpr Ipv4 kIgmpv3ReportGroup = 0xE0000016;  // 224.0.0.22
inline constexpr Ipv4 kAllHostsGroup = 0xE0000001;      // 224.0.0.1
inline constexpr Ipv4 kAllRoutersGroup = 0xE0000002;    // 224.0.0.2: IGMPv2 leaves go there
inline constexpr Mac kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// Dotted-quad text of a host-order address ("239.1.1.1").
[[nodiscard]] std::string ipv4_text(Ipv4 a);

[[nodiscard]] constexpr Ipv4 ipv4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return (Ipv4{a} << 24) | (Ipv4{b} << 16) | (Ipv4{c} << 8) | Ipv4{d};
}
[[nodiscard]] constexpr bool is_multicast(Ipv4 a) { return (a >> 28) == 0xE; }
// 01:00:5e + the low 23 bits of the group (RFC 1112, 6.4).
[[nodiscard]] constexpr Mac multicast_mac(Ipv4 group) {
  return {0x01, 0x00, 0x5e, static_cast<std::uint8_t>((group >> 16) & 0x7F),
          static_cast<std::uint8_t>((group >> 8) & 0xFF), static_cast<std::uint8_t>(group & 0xFF)};
}

// Big-endian reads (the parsers below are inline: the worker runs them on every frame).
namespace detail {
inline std::uint16_t get16(Bytes b, std::size_t at) { return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]); }
inline std::uint32_t get32(Bytes b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) | (std::uint32_t{b[at + 2]} << 8) |
         std::uint32_t{b[at + 3]};
}
inline Mac get_mac(Bytes b, std::size_t at) {
  Mac m{};
  std::copy_n(b.begin() + static_cast<std::ptrdiff_t>(at), 6, m.begin());
  return m;
}
}  // namespace detail

// RFC 1071 ones' complement sum folded and complemented. `initial` carries a partial sum
// (a pseudo-header) in host order.
[[nodiscard]] inline std::uint16_t internet_checksum(Bytes bytes, std::uint32_t initial = 0) {
  std::uint64_t sum = initial;
  std::size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) sum += detail::get16(bytes, i);
  if (i < bytes.size()) sum += std::uint32_t{bytes[i]} << 8;
  while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xFFFF);
}

// ---- Ethernet ----
struct Ethernet {
  Mac dst{};
  Mac src{};
  std::uint16_t vlan = 0;          // VLAN id (12 bits) of an 802.1Q tag, 0 when untagged
  std::uint16_t ether_type = 0;    // of the payload (after the tag)
  std::size_t header_size = 0;     // 14 or 18
};
// What follows the addresses: all the RX path needs. Small enough to come back in
// registers (the worker calls it on every frame; a whole Ethernet built field by field on
// the stack and copied out as one cost it a store-forwarding stall per frame).
struct EthernetType {
  std::uint16_t vlan = 0;
  std::uint16_t ether_type = 0;
  std::uint16_t header_size = 0;  // 14 or 18; 0: truncated, or QinQ (not ours)
};
[[nodiscard]] inline EthernetType parse_ethernet_type(Bytes frame) {
  if (frame.size() < kEthernetHeaderSize) return {};
  EthernetType t{0, detail::get16(frame, 12), kEthernetHeaderSize};
  if (t.ether_type == kEtherTypeVlan) {
    if (frame.size() < kEthernetHeaderSize + kVlanTagSize) return {};
    t.vlan = detail::get16(frame, 14) & 0x0FFF;
    t.ether_type = detail::get16(frame, 16);
    t.header_size += kVlanTagSize;
    if (t.ether_type == kEtherTypeVlan) return {};  // QinQ: not ours
  }
  return t;
}
[[nodiscard]] inline std::optional<Ethernet> parse_ethernet(Bytes frame) {
  const EthernetType t = parse_ethernet_type(frame);
  if (t.header_size == 0) return std::nullopt;
  Ethernet e;
  e.dst = detail::get_mac(frame, 0);
  e.src = detail::get_mac(frame, 6);
  e.vlan = t.vlan;
  e.ether_type = t.ether_type;
  e.header_size = t.header_size;
  return e;
}
// 14 bytes, or 18 with a tag when vlan != 0.
std::size_t write_ethernet(MutableBytes out, const Mac& dst, const Mac& src, std::uint16_t vlan,
                           std::uint16_t ether_type);

// ---- ARP (Ethernet / IPv4 only) ----
inline constexpr std::uint16_t kArpRequest = 1;
inline constexpr std::uint16_t kArpReply = 2;
struct Arp {
  std::uint16_t op = 0;
  Mac sender_mac{};
  Ipv4 sender_ip = 0;
  Mac target_mac{};
  Ipv4 target_ip = 0;
};
[[nodiscard]] std::optional<Arp> parse_arp(Bytes payload);
std::size_t write_arp(MutableBytes out, const Arp& arp);
// A whole Ethernet frame answering `request` for `our_ip` at `our_mac`.
std::size_t build_arp_reply(MutableBytes out, const Arp& request, const Mac& our_mac, Ipv4 our_ip,
                            std::uint16_t vlan);
// A whole Ethernet frame (padded to 60 bytes) asking who has `target_ip`, from
// `our_mac`/`our_ip`, sent to `dst_mac` (broadcast, or the known MAC when refreshing).
std::size_t build_arp_request(MutableBytes out, const Mac& our_mac, Ipv4 our_ip, Ipv4 target_ip, std::uint16_t vlan,
                              const Mac& dst_mac = kBroadcastMac);

// ---- IPv4 ----
struct Ipv4Header {
  Ipv4 src = 0;
  Ipv4 dst = 0;
  std::uint8_t protocol = 0;
  std::uint8_t ttl = 64;
  std::uint8_t dscp = 0;
  std::uint8_t ecn = 0;
  std::uint16_t identification = 0;
  bool dont_fragment = false;
  bool more_fragments = false;
  std::uint16_t fragment_offset = 0;  // in 8-byte units
  std::size_t header_size = 0;        // parse: 20..60 (options included)
  std::size_t total_size = 0;         // parse: header + payload as the header claims
  [[nodiscard]] bool is_fragment() const { return more_fragments || fragment_offset != 0; }
};
// Checks version, IHL, total length against the span and the header checksum.
// `payload` receives the bytes after the header up to the total length.
[[nodiscard]] inline std::optional<Ipv4Header> parse_ipv4(Bytes p, Bytes* payload = nullptr) {
  if (p.size() < kIpv4HeaderSize) return std::nullopt;
  if ((p[0] >> 4) != 4) return std::nullopt;
  const std::size_t ihl = std::size_t{p[0] & 0x0Fu} * 4;
  if (ihl < kIpv4HeaderSize || ihl > p.size()) return std::nullopt;
  const std::size_t total = detail::get16(p, 2);
  if (total < ihl || total > p.size()) return std::nullopt;
  if (internet_checksum(p.first(ihl)) != 0) return std::nullopt;
  Ipv4Header h;
  h.dscp = static_cast<std::uint8_t>(p[1] >> 2);
  h.ecn = static_cast<std::uint8_t>(p[1] & 0x3);
  h.identification = detail::get16(p, 4);
  const std::uint16_t frag = detail::get16(p, 6);
  h.dont_fragment = (frag & 0x4000) != 0;
  h.more_fragments = (frag & 0x2000) != 0;
  h.fragment_offset = frag & 0x1FFF;
  h.ttl = p[8];
  h.protocol = p[9];
  h.src = detail::get32(p, 12);
  h.dst = detail::get32(p, 16);
  h.header_size = ihl;
  h.total_size = total;
  if (payload != nullptr) *payload = p.subspan(ihl, total - ihl);
  return h;
}
// A header with the fields of `h` (src, dst, protocol, ttl, dscp, identification,
// dont_fragment), `options` (a multiple of 4 bytes, at most 40) and the checksum, for a
// payload of `payload_size` bytes. Returns 20 + options.size().
std::size_t write_ipv4(MutableBytes out, const Ipv4Header& h, std::size_t payload_size,
                       Bytes options = {});

// ---- UDP ----
struct Udp {
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint16_t checksum = 0;
};
// Checks the length field against the span; `payload` receives the datagram's payload.
[[nodiscard]] inline std::optional<Udp> parse_udp(Bytes s, Bytes* payload = nullptr) {
  if (s.size() < kUdpHeaderSize) return std::nullopt;
  const std::size_t len = detail::get16(s, 4);
  if (len < kUdpHeaderSize || len > s.size()) return std::nullopt;
  Udp u{detail::get16(s, 0), detail::get16(s, 2), detail::get16(s, 6)};
  if (payload != nullptr) *payload = s.subspan(kUdpHeaderSize, len - kUdpHeaderSize);
  return u;
}
// The 8-byte header; checksum 0 (allowed for IPv4, RFC 768).
std::size_t write_udp(MutableBytes out, std::uint16_t src_port, std::uint16_t dst_port,
                      std::size_t payload_size);
// The checksum over pseudo-header + `segment` (header with checksum field 0 + payload).
[[nodiscard]] std::uint16_t udp_checksum(Ipv4 src, Ipv4 dst, Bytes segment);

// ---- RTP (RFC 3550) ----
struct Rtp {
  std::uint8_t payload_type = 0;
  bool marker = false;
  std::uint16_t sequence = 0;
  std::uint32_t timestamp = 0;
  std::uint32_t ssrc = 0;
};
// Version 2 only; CSRCs and the header extension are skipped, padding removed.
[[nodiscard]] std::optional<Rtp> parse_rtp(Bytes datagram, Bytes* payload = nullptr);
// The 12-byte fixed header (no CSRC, no extension).
std::size_t write_rtp(MutableBytes out, const Rtp& rtp);

// ---- IGMP ----
enum class IgmpRecordType : std::uint8_t {
  kModeIsInclude = 1,
  kModeIsExclude = 2,
  kChangeToInclude = 3,
  kChangeToExclude = 4,
  kAllowNewSources = 5,
  kBlockOldSources = 6,
};
// Why a report is sent: the record type follows from it and from ASM/SSM (RFC 3376 5.1).
enum class IgmpEvent : std::uint8_t { kJoin, kQueryResponse, kLeave };
[[nodiscard]] IgmpRecordType igmp_record_type(IgmpEvent event, bool source_specific);

struct IgmpRecord {
  IgmpRecordType type = IgmpRecordType::kModeIsExclude;
  Ipv4 group = 0;
  Ipv4 source = 0;  // one source for SSM, 0: none
};
// The IGMPv3 report message (type 0x22) with its checksum. Records of one type and group
// that follow each other, each with a source, become one record listing those sources.
std::size_t write_igmpv3_report(MutableBytes out, std::span<const IgmpRecord> records);
// The whole frame: Ethernet [+VLAN] to 01:00:5e:00:00:16, IPv4 to 224.0.0.22 with TTL 1,
// DSCP CS6 and the Router Alert option, then the report; padded with zeros to the 60-byte
// Ethernet minimum when `out` has room.
std::size_t build_igmpv3_report(MutableBytes out, const Mac& src_mac, Ipv4 src_ip, std::uint16_t vlan,
                                std::uint16_t identification, std::span<const IgmpRecord> records);
// How many records fit in one frame of `mtu` bytes of IP.
[[nodiscard]] std::size_t igmpv3_records_per_frame(std::size_t mtu = 1500);

// IGMPv1 (RFC 1112) and IGMPv2 (RFC 2236) messages, what a host sends in the compatibility
// mode of RFC 3376 7.2.1 while an older querier is present: one 8-byte message per group.
enum class IgmpOlderMessage : std::uint8_t {
  kV1Report = 0x12,
  kV2Report = 0x16,
  kV2Leave = 0x17,
};
inline constexpr std::size_t kIgmpOlderMessageSize = 8;
// What a host in compatibility mode `version` (1 or 2) sends for `event` (an SSM join is
// reported as its whole group: v1/v2 cannot name a source); nullopt: nothing (IGMPv1 has
// no leave; version 3 is not a compatibility mode).
[[nodiscard]] std::optional<IgmpOlderMessage> igmp_older_message(std::uint8_t version, IgmpEvent event);
// The 8-byte message: type, max resp time 0, checksum, group.
std::size_t write_igmp_older_message(MutableBytes out, IgmpOlderMessage type, Ipv4 group);
// The whole frame: Ethernet [+VLAN] to the destination's multicast MAC, IPv4 with TTL 1 and
// DSCP CS6 to the group itself (reports) or 224.0.0.2 (a leave), the Router Alert option
// for IGMPv2 (RFC 2236 2; none for v1, RFC 1112 predates it), then the message; padded
// with zeros to the 60-byte Ethernet minimum when `out` has room.
std::size_t build_igmp_older_message(MutableBytes out, IgmpOlderMessage type, const Mac& src_mac, Ipv4 src_ip,
                                     std::uint16_t vlan, std::uint16_t identification, Ipv4 group);
// Room enough for build_igmp_older_message(): its frames are 60 bytes (50 with a VLAN tag, padded).
inline constexpr std::size_t kIgmpOlderFrameMax = 64;

struct IgmpQuery {
  std::uint8_t version = 0;          // 1, 2 or 3 (RFC 3376 7.1)
  Ipv4 group = 0;                    // 0: general query
  std::uint32_t max_response_ds = 0; // tenths of a second (v3 code decoded)
  std::uint16_t n_sources = 0;       // v3 group-and-source-specific queries
  Bytes sources;                     // their addresses, 4 bytes each (in the message)
};
// A membership query (type 0x11) with a valid checksum, or nullopt.
[[nodiscard]] std::optional<IgmpQuery> parse_igmp_query(Bytes message);

// ---- whole frames ----
struct UdpFrame {
  Mac dst_mac{};
  Mac src_mac{};
  std::uint16_t vlan = 0;
  Ipv4 src_ip = 0;
  Ipv4 dst_ip = 0;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint8_t ttl = 16;
  std::uint8_t dscp = 0;
  std::uint16_t identification = 0;
};
// Ethernet [+VLAN] / IPv4 / UDP headers for `payload_size` bytes that follow; returns the
// header size (42 or 46).
std::size_t write_udp_headers(MutableBytes out, const UdpFrame& f, std::size_t payload_size);
[[nodiscard]] constexpr std::size_t udp_headers_size(std::uint16_t vlan) {
  return kEthernetHeaderSize + (vlan != 0 ? kVlanTagSize : 0) + kIpv4HeaderSize + kUdpHeaderSize;
}

}  // namespace twincast::dataplane::net
