#include "twincast/dataplane/net.hpp"

#include <algorithm>
#include <cstring>

namespace twincast::dataplane::net {

std::string ipv4_text(Ipv4 a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xFF) + "." + std::to_string((a >> 8) & 0xFF) +
         "." + std::to_string(a & 0xFF);
}
namespace {

using detail::get16;
using detail::get32;
using detail::get_mac;
void put16(MutableBytes b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v & 0xFF);
}
void put32(MutableBytes b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 24);
  b[at + 1] = static_cast<std::uint8_t>((v >> 16) & 0xFF);
  b[at + 2] = static_cast<std::uint8_t>((v >> 8) & 0xFF);
  b[at + 3] = static_cast<std::uint8_t>(v & 0xFF);
}
void put_mac(MutableBytes b, std::size_t at, const Mac& m) {
  std::copy(m.begin(), m.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
}

constexpr std::size_t kIgmpv3ReportHeader = 8;
constexpr std::uint8_t kIgmpQuery = 0x11;
constexpr std::uint8_t kIgmpv3Report = 0x22;
constexpr std::uint8_t kDscpCs6 = 48;

}  // namespace


// ---- Ethernet ----

std::size_t write_ethernet(MutableBytes out, const Mac& dst, const Mac& src, std::uint16_t vlan,
                           std::uint16_t ether_type) {
  const std::size_t n = kEthernetHeaderSize + (vlan != 0 ? kVlanTagSize : 0);
  if (out.size() < n) return 0;
  put_mac(out, 0, dst);
  put_mac(out, 6, src);
  if (vlan != 0) {
    put16(out, 12, kEtherTypeVlan);
    put16(out, 14, vlan & 0x0FFF);
    put16(out, 16, ether_type);
  } else {
    put16(out, 12, ether_type);
  }
  return n;
}

// ---- ARP ----
std::optional<Arp> parse_arp(Bytes p) {
  if (p.size() < kArpSize) return std::nullopt;
  if (get16(p, 0) != 1 || get16(p, 2) != kEtherTypeIpv4 || p[4] != 6 || p[5] != 4) return std::nullopt;
  Arp a;
  a.op = get16(p, 6);
  a.sender_mac = get_mac(p, 8);
  a.sender_ip = get32(p, 14);
  a.target_mac = get_mac(p, 18);
  a.target_ip = get32(p, 24);
  return a;
}

std::size_t write_arp(MutableBytes out, const Arp& a) {
  if (out.size() < kArpSize) return 0;
  put16(out, 0, 1);
  put16(out, 2, kEtherTypeIpv4);
  out[4] = 6;
  out[5] = 4;
  put16(out, 6, a.op);
  put_mac(out, 8, a.sender_mac);
  put32(out, 14, a.sender_ip);
  put_mac(out, 18, a.target_mac);
  put32(out, 24, a.target_ip);
  return kArpSize;
}

namespace {

// An ARP message in an Ethernet frame to `dst_mac`, padded to the Ethernet minimum (60
// bytes without FCS) when `out` has room for it.
std::size_t build_arp_frame(MutableBytes out, const Mac& dst_mac, const Mac& our_mac, std::uint16_t vlan,
                            const Arp& message) {
  const std::size_t eth = write_ethernet(out, dst_mac, our_mac, vlan, kEtherTypeArp);
  if (eth == 0) return 0;
  const std::size_t arp = write_arp(out.subspan(eth), message);
  if (arp == 0) return 0;
  std::size_t n = eth + arp;
  if (out.size() >= 60 && n < 60) {
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(n), out.begin() + 60, std::uint8_t{0});
    n = 60;
  }
  return n;
}

}  // namespace

std::size_t build_arp_reply(MutableBytes out, const Arp& request, const Mac& our_mac, Ipv4 our_ip,
                            std::uint16_t vlan) {
  return build_arp_frame(out, request.sender_mac, our_mac, vlan,
                         Arp{kArpReply, our_mac, our_ip, request.sender_mac, request.sender_ip});
}

std::size_t build_arp_request(MutableBytes out, const Mac& our_mac, Ipv4 our_ip, Ipv4 target_ip, std::uint16_t vlan,
                              const Mac& dst_mac) {
  return build_arp_frame(out, dst_mac, our_mac, vlan, Arp{kArpRequest, our_mac, our_ip, Mac{}, target_ip});
}

// ---- IPv4 ----

std::size_t write_ipv4(MutableBytes out, const Ipv4Header& h, std::size_t payload_size, Bytes options) {
  if (options.size() % 4 != 0 || options.size() > 40) return 0;
  const std::size_t hs = kIpv4HeaderSize + options.size();
  if (out.size() < hs || hs + payload_size > 0xFFFF) return 0;
  out[0] = static_cast<std::uint8_t>(0x40 | (hs / 4));
  out[1] = static_cast<std::uint8_t>((h.dscp << 2) | (h.ecn & 0x3));
  put16(out, 2, static_cast<std::uint16_t>(hs + payload_size));
  put16(out, 4, h.identification);
  put16(out, 6, h.dont_fragment ? 0x4000 : 0);
  out[8] = h.ttl;
  out[9] = h.protocol;
  put16(out, 10, 0);
  put32(out, 12, h.src);
  put32(out, 16, h.dst);
  std::copy(options.begin(), options.end(), out.begin() + kIpv4HeaderSize);
  put16(out, 10, internet_checksum(out.first(hs)));
  return hs;
}

// ---- UDP ----

std::size_t write_udp(MutableBytes out, std::uint16_t src_port, std::uint16_t dst_port,
                      std::size_t payload_size) {
  if (out.size() < kUdpHeaderSize || payload_size + kUdpHeaderSize > 0xFFFF) return 0;
  put16(out, 0, src_port);
  put16(out, 2, dst_port);
  put16(out, 4, static_cast<std::uint16_t>(payload_size + kUdpHeaderSize));
  put16(out, 6, 0);
  return kUdpHeaderSize;
}

std::uint16_t udp_checksum(Ipv4 src, Ipv4 dst, Bytes segment) {
  std::uint32_t pseudo = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + kProtoUdp +
                         static_cast<std::uint32_t>(segment.size());
  const std::uint16_t c = internet_checksum(segment, pseudo);
  return c == 0 ? 0xFFFF : c;  // 0 means "no checksum" on the wire
}

// ---- RTP ----
std::optional<Rtp> parse_rtp(Bytes d, Bytes* payload) {
  if (d.size() < kRtpHeaderSize) return std::nullopt;
  if ((d[0] >> 6) != 2) return std::nullopt;
  const bool padding = (d[0] & 0x20) != 0;
  const bool extension = (d[0] & 0x10) != 0;
  const std::size_t n_csrc = d[0] & 0x0Fu;
  std::size_t at = kRtpHeaderSize + 4 * n_csrc;
  if (at > d.size()) return std::nullopt;
  if (extension) {
    if (at + 4 > d.size()) return std::nullopt;
    const std::size_t ext_words = get16(d, at + 2);
    at += 4 + 4 * ext_words;
    if (at > d.size()) return std::nullopt;
  }
  std::size_t end = d.size();
  if (padding) {
    const std::size_t pad = d[end - 1];
    if (pad == 0 || pad > end - at) return std::nullopt;
    end -= pad;
  }
  Rtp r;
  r.marker = (d[1] & 0x80) != 0;
  r.payload_type = d[1] & 0x7F;
  r.sequence = get16(d, 2);
  r.timestamp = get32(d, 4);
  r.ssrc = get32(d, 8);
  if (payload != nullptr) *payload = d.subspan(at, end - at);
  return r;
}

std::size_t write_rtp(MutableBytes out, const Rtp& r) {
  if (out.size() < kRtpHeaderSize) return 0;
  out[0] = 0x80;
  out[1] = static_cast<std::uint8_t>((r.marker ? 0x80 : 0) | (r.payload_type & 0x7F));
  put16(out, 2, r.sequence);
  put32(out, 4, r.timestamp);
  put32(out, 8, r.ssrc);
  return kRtpHeaderSize;
}

// ---- IGMP ----
IgmpRecordType igmp_record_type(IgmpEvent event, bool ssm) {
  switch (event) {
    case IgmpEvent::kJoin: return ssm ? IgmpRecordType::kAllowNewSources : IgmpRecordType::kChangeToExclude;
    case IgmpEvent::kQueryResponse: return ssm ? IgmpRecordType::kModeIsInclude : IgmpRecordType::kModeIsExclude;
    case IgmpEvent::kLeave: return ssm ? IgmpRecordType::kBlockOldSources : IgmpRecordType::kChangeToInclude;
  }
  return IgmpRecordType::kModeIsExclude;
}

std::size_t write_igmpv3_report(MutableBytes out, std::span<const IgmpRecord> records) {
  // Records of one type and group that follow each other, each with a source, go out as
  // one record listing those sources: a router tracking hosts takes a record's source list
  // as the whole of it (two TO_IN({S}) records would leave only the second source).
  const auto continues = [&](std::size_t i) {
    return i > 0 && records[i].source != 0 && records[i - 1].source != 0 && records[i].type == records[i - 1].type &&
           records[i].group == records[i - 1].group;
  };
  std::size_t need = kIgmpv3ReportHeader;
  std::size_t n_records = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (!continues(i)) {
      need += 8;
      ++n_records;
    }
    if (records[i].source != 0) need += 4;
  }
  if (out.size() < need || n_records > 0xFFFF) return 0;
  out[0] = kIgmpv3Report;
  out[1] = 0;
  put16(out, 2, 0);
  put16(out, 4, 0);
  put16(out, 6, static_cast<std::uint16_t>(n_records));
  std::size_t at = kIgmpv3ReportHeader;
  std::size_t record = 0;  // where the current record's header is
  for (std::size_t i = 0; i < records.size(); ++i) {
    const IgmpRecord& r = records[i];
    if (!continues(i)) {
      record = at;
      out[at] = static_cast<std::uint8_t>(r.type);
      out[at + 1] = 0;  // aux data len
      put16(out, at + 2, 0);
      put32(out, at + 4, r.group);
      at += 8;
    }
    if (r.source != 0) {
      put16(out, record + 2, static_cast<std::uint16_t>(((out[record + 2] << 8) | out[record + 3]) + 1));
      put32(out, at, r.source);
      at += 4;
    }
  }
  put16(out, 2, internet_checksum(out.first(at)));
  return at;
}

std::size_t igmpv3_records_per_frame(std::size_t mtu) {
  // IP header + Router Alert + report header; SSM records are the larger ones (12 bytes).
  const std::size_t fixed = kIpv4HeaderSize + 4 + kIgmpv3ReportHeader;
  return mtu > fixed ? (mtu - fixed) / 12 : 0;
}

std::size_t build_igmpv3_report(MutableBytes out, const Mac& src_mac, Ipv4 src_ip, std::uint16_t vlan,
                                std::uint16_t identification, std::span<const IgmpRecord> records) {
  const std::size_t eth = write_ethernet(out, multicast_mac(kIgmpv3ReportGroup), src_mac, vlan, kEtherTypeIpv4);
  if (eth == 0) return 0;
  static constexpr std::uint8_t kRouterAlert[4] = {0x94, 0x04, 0x00, 0x00};
  constexpr std::size_t ip_size = kIpv4HeaderSize + sizeof kRouterAlert;
  if (out.size() < eth + ip_size) return 0;
  const std::size_t igmp = write_igmpv3_report(out.subspan(eth + ip_size), records);
  if (igmp == 0) return 0;
  Ipv4Header h;
  h.src = src_ip;
  h.dst = kIgmpv3ReportGroup;
  h.protocol = kProtoIgmp;
  h.ttl = 1;
  h.dscp = kDscpCs6;
  h.identification = identification;
  h.dont_fragment = true;
  if (write_ipv4(out.subspan(eth), h, igmp, Bytes(kRouterAlert, sizeof kRouterAlert)) != ip_size) return 0;
  // Pad to the Ethernet minimum (one record: 54 bytes), as ARP and IGMPv1/v2 frames are.
  std::size_t n = eth + ip_size + igmp;
  if (out.size() >= 60 && n < 60) {
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(n), out.begin() + 60, std::uint8_t{0});
    n = 60;
  }
  return n;
}

std::optional<IgmpOlderMessage> igmp_older_message(std::uint8_t version, IgmpEvent event) {
  if (version == 1) {
    if (event == IgmpEvent::kLeave) return std::nullopt;
    return IgmpOlderMessage::kV1Report;
  }
  if (version == 2) return event == IgmpEvent::kLeave ? IgmpOlderMessage::kV2Leave : IgmpOlderMessage::kV2Report;
  return std::nullopt;
}

std::size_t write_igmp_older_message(MutableBytes out, IgmpOlderMessage type, Ipv4 group) {
  if (out.size() < kIgmpOlderMessageSize) return 0;
  out[0] = static_cast<std::uint8_t>(type);
  out[1] = 0;  // max resp time: unused in reports and leaves
  put16(out, 2, 0);
  put32(out, 4, group);
  put16(out, 2, internet_checksum(out.first(kIgmpOlderMessageSize)));
  return kIgmpOlderMessageSize;
}

std::size_t build_igmp_older_message(MutableBytes out, IgmpOlderMessage type, const Mac& src_mac, Ipv4 src_ip,
                                     std::uint16_t vlan, std::uint16_t identification, Ipv4 group) {
  const Ipv4 dst = type == IgmpOlderMessage::kV2Leave ? kAllRoutersGroup : group;
  const std::size_t eth = write_ethernet(out, multicast_mac(dst), src_mac, vlan, kEtherTypeIpv4);
  if (eth == 0) return 0;
  static constexpr std::uint8_t kRouterAlert[4] = {0x94, 0x04, 0x00, 0x00};
  const Bytes options = type == IgmpOlderMessage::kV1Report ? Bytes{} : Bytes(kRouterAlert, sizeof kRouterAlert);
  const std::size_t ip_size = kIpv4HeaderSize + options.size();
  if (out.size() < eth + ip_size + kIgmpOlderMessageSize) return 0;
  if (write_igmp_older_message(out.subspan(eth + ip_size), type, group) == 0) return 0;
  Ipv4Header h;
  h.src = src_ip;
  h.dst = dst;
  h.protocol = kProtoIgmp;
  h.ttl = 1;
  h.dscp = kDscpCs6;
  h.identification = identification;
  h.dont_fragment = true;
  if (write_ipv4(out.subspan(eth), h, kIgmpOlderMessageSize, options) != ip_size) return 0;
  std::size_t n = eth + ip_size + kIgmpOlderMessageSize;
  if (out.size() >= 60 && n < 60) {
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(n), out.begin() + 60, std::uint8_t{0});
    n = 60;
  }
  return n;
}

std::optional<IgmpQuery> parse_igmp_query(Bytes m) {
  if (m.size() < 8 || m[0] != kIgmpQuery) return std::nullopt;
  if (internet_checksum(m) != 0) return std::nullopt;
  IgmpQuery q;
  q.group = get32(m, 4);
  if (m.size() == 8) {
    q.version = m[1] == 0 ? 1 : 2;
    q.max_response_ds = m[1] == 0 ? 100 : m[1];
    if (q.version == 1) q.group = 0;  // RFC 1112: "zeroed when sent, ignored when received"
    return q;
  }
  if (m.size() < 12) return std::nullopt;  // 9..11 bytes: RFC 3376 7.1 says ignore
  q.version = 3;
  const std::uint8_t code = m[1];
  if (code < 128) {
    q.max_response_ds = code;
  } else {
    const std::uint32_t mant = code & 0x0Fu;
    const std::uint32_t exp = (code >> 4) & 0x07u;
    q.max_response_ds = (mant | 0x10u) << (exp + 3);
  }
  q.n_sources = get16(m, 10);
  if (12 + std::size_t{q.n_sources} * 4 > m.size()) return std::nullopt;
  q.sources = m.subspan(12, std::size_t{q.n_sources} * 4);
  return q;
}

// ---- whole frames ----
std::size_t write_udp_headers(MutableBytes out, const UdpFrame& f, std::size_t payload_size) {
  const std::size_t total = udp_headers_size(f.vlan);
  if (out.size() < total) return 0;
  const std::size_t eth = write_ethernet(out, f.dst_mac, f.src_mac, f.vlan, kEtherTypeIpv4);
  Ipv4Header h;
  h.src = f.src_ip;
  h.dst = f.dst_ip;
  h.protocol = kProtoUdp;
  h.ttl = f.ttl;
  h.dscp = f.dscp;
  h.identification = f.identification;
  h.dont_fragment = false;
  if (write_ipv4(out.subspan(eth), h, kUdpHeaderSize + payload_size) == 0) return 0;
  if (write_udp(out.subspan(eth + kIpv4HeaderSize), f.src_port, f.dst_port, payload_size) == 0) return 0;
  return total;
}

}  // namespace twincast::dataplane::net
