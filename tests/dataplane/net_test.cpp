// Header building and parsing (dataplane/net.hpp): known checksum vectors, round trips,
// exact bytes for ARP/IGMP, and truncated / random input that must never read out of bounds.
#include "twincast/dataplane/net.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace twincast::dataplane::net {
namespace {

using ByteVec = std::vector<std::uint8_t>;

TEST(NetChecksum, KnownVectors) {
  // RFC 1071 section 3 example: the sum is 0xddf2, so the checksum is its complement.
  const ByteVec rfc1071 = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(internet_checksum(rfc1071), 0x220d);
  // A well-known IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) whose checksum is 0xb861.
  ByteVec ip = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(internet_checksum(ip), 0xb861);
  ip[10] = 0xb8;
  ip[11] = 0x61;
  EXPECT_EQ(internet_checksum(ip), 0);
  // Odd length: the last byte is padded with zero.
  EXPECT_EQ(internet_checksum(ByteVec{0x01}), static_cast<std::uint16_t>(~0x0100 & 0xFFFF));
}

TEST(NetChecksum, UdpPseudoHeaderVector) {
  // Computed independently (python): 10.0.0.1:1234 -> 239.1.1.1:5000 "hello twincast".
  const std::string text = "hello twincast";
  ByteVec seg(kUdpHeaderSize + text.size());
  ASSERT_EQ(write_udp(seg, 1234, 5000, text.size()), kUdpHeaderSize);
  std::copy(text.begin(), text.end(), seg.begin() + kUdpHeaderSize);
  EXPECT_EQ(udp_checksum(ipv4(10, 0, 0, 1), ipv4(239, 1, 1, 1), seg), 0xf4b6);
}

TEST(NetMulticast, MacMapping) {
  EXPECT_EQ(multicast_mac(ipv4(239, 1, 1, 1)), (Mac{0x01, 0x00, 0x5e, 0x01, 0x01, 0x01}));
  // The 24th bit is dropped: 239.129.1.1 and 239.1.1.1 share a MAC.
  EXPECT_EQ(multicast_mac(ipv4(239, 129, 1, 1)), multicast_mac(ipv4(239, 1, 1, 1)));
  EXPECT_EQ(multicast_mac(kIgmpv3ReportGroup), (Mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x16}));
  EXPECT_TRUE(is_multicast(ipv4(224, 0, 0, 1)));
  EXPECT_TRUE(is_multicast(ipv4(239, 255, 255, 255)));
  EXPECT_FALSE(is_multicast(ipv4(10, 0, 0, 1)));
  EXPECT_FALSE(is_multicast(ipv4(240, 0, 0, 1)));
}

TEST(NetEthernet, RoundTripWithAndWithoutVlan) {
  const Mac a{1, 2, 3, 4, 5, 6};
  const Mac b{0xa, 0xb, 0xc, 0xd, 0xe, 0xf};
  ByteVec f(64);
  ASSERT_EQ(write_ethernet(f, a, b, 0, kEtherTypeIpv4), 14u);
  auto e = parse_ethernet(f);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->dst, a);
  EXPECT_EQ(e->src, b);
  EXPECT_EQ(e->vlan, 0);
  EXPECT_EQ(e->ether_type, kEtherTypeIpv4);
  EXPECT_EQ(e->header_size, 14u);

  ASSERT_EQ(write_ethernet(f, a, b, 0x123, kEtherTypeArp), 18u);
  EXPECT_EQ(f[12], 0x81);
  EXPECT_EQ(f[13], 0x00);
  EXPECT_EQ(f[14], 0x01);
  EXPECT_EQ(f[15], 0x23);
  e = parse_ethernet(f);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->vlan, 0x123);
  EXPECT_EQ(e->ether_type, kEtherTypeArp);
  EXPECT_EQ(e->header_size, 18u);

  EXPECT_FALSE(parse_ethernet(ByteVec(f.begin(), f.begin() + 16)));  // tag cut short
  ByteVec small(17);
  EXPECT_EQ(write_ethernet(small, a, b, 5, 1), 0u);  // a tag needs 18 bytes
  EXPECT_EQ(write_ethernet(small, a, b, 0, 1), 14u);
}

// What the worker reads per frame: tag, type and header size, 0 for what is not ours.
TEST(NetEthernet, TypeOnlyParse) {
  const Mac a{1, 2, 3, 4, 5, 6};
  ByteVec f(64);
  ASSERT_EQ(write_ethernet(f, a, a, 0, kEtherTypeIpv4), 14u);
  EthernetType t = parse_ethernet_type(f);
  EXPECT_EQ(t.vlan, 0);
  EXPECT_EQ(t.ether_type, kEtherTypeIpv4);
  EXPECT_EQ(t.header_size, 14);
  ASSERT_EQ(write_ethernet(f, a, a, 0xFFF, kEtherTypeArp), 18u);
  t = parse_ethernet_type(f);
  EXPECT_EQ(t.vlan, 0xFFF);
  EXPECT_EQ(t.ether_type, kEtherTypeArp);
  EXPECT_EQ(t.header_size, 18);
  f[14] |= 0xF0;  // priority and DEI bits are not part of the VLAN id
  EXPECT_EQ(parse_ethernet_type(f).vlan, 0xFFF);
  EXPECT_EQ(parse_ethernet_type(ByteVec(f.begin(), f.begin() + 17)).header_size, 0);  // tag cut short
  EXPECT_EQ(parse_ethernet_type(ByteVec(f.begin(), f.begin() + 13)).header_size, 0);
  f[16] = 0x81;  // QinQ: a second tag
  f[17] = 0x00;
  EXPECT_EQ(parse_ethernet_type(f).header_size, 0);
  EXPECT_FALSE(parse_ethernet(f));
}

TEST(NetArp, ParsesRequestAndBuildsReply) {
  // Who has 10.0.0.2? Tell 10.0.0.1 (from 02:00:00:00:00:01).
  const ByteVec req = {0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00,
                       0x00, 0x01, 10,   0,    0,    1,    0,    0,    0,    0,    0,    0,
                       10,   0,    0,    2};
  const auto arp = parse_arp(req);
  ASSERT_TRUE(arp);
  EXPECT_EQ(arp->op, kArpRequest);
  EXPECT_EQ(arp->sender_ip, ipv4(10, 0, 0, 1));
  EXPECT_EQ(arp->target_ip, ipv4(10, 0, 0, 2));
  EXPECT_EQ(arp->sender_mac, (Mac{2, 0, 0, 0, 0, 1}));

  const Mac ours{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  ByteVec frame(128);
  const std::size_t n = build_arp_reply(frame, *arp, ours, ipv4(10, 0, 0, 2), 0);
  ASSERT_EQ(n, 60u);  // padded to the Ethernet minimum
  const ByteVec expect = {2,    0,    0,    0,    0,    1,    0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
                          0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0xaa,
                          0xbb, 0xcc, 0xdd, 0xee, 10,   0,    0,    2,    2,    0,    0,    0,
                          0,    1,    10,   0,    0,    1};
  EXPECT_EQ(ByteVec(frame.begin(), frame.begin() + 42), expect);
  for (std::size_t i = 42; i < 60; ++i) EXPECT_EQ(frame[i], 0);

  auto bad = req;
  bad[2] = 0x86;  // not IPv4
  EXPECT_FALSE(parse_arp(bad));
  EXPECT_FALSE(parse_arp(ByteVec(req.begin(), req.end() - 1)));
  // With a VLAN the reply is tagged.
  EXPECT_EQ(build_arp_reply(frame, *arp, ours, ipv4(10, 0, 0, 2), 7), 60u);
  EXPECT_EQ(parse_ethernet(frame)->vlan, 7);
  EXPECT_EQ(build_arp_reply(std::span<std::uint8_t>(frame).first(30), *arp, ours, 1, 0), 0u);
}

TEST(NetArp, BuildRequest) {
  const Mac ours = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  ByteVec frame(64, 0x55);
  const std::size_t n = build_arp_request(frame, ours, ipv4(10, 0, 0, 2), ipv4(10, 0, 0, 9), 0);
  ASSERT_EQ(n, 60u);  // padded to the Ethernet minimum
  const ByteVec expect = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
                          0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0xaa,
                          0xbb, 0xcc, 0xdd, 0xee, 10,   0,    0,    2,    0,    0,    0,    0,
                          0,    0,    10,   0,    0,    9};
  EXPECT_EQ(ByteVec(frame.begin(), frame.begin() + 42), expect);
  for (std::size_t i = 42; i < 60; ++i) EXPECT_EQ(frame[i], 0);
  EXPECT_EQ(frame[60], 0x55);
  const auto arp = parse_arp(Bytes(frame).subspan(14));
  ASSERT_TRUE(arp);
  EXPECT_EQ(arp->op, kArpRequest);
  EXPECT_EQ(arp->target_ip, ipv4(10, 0, 0, 9));
  // Unicast (a refresh) and tagged.
  const Mac peer = {0x02, 0, 0, 0, 0, 9};
  EXPECT_EQ(build_arp_request(frame, ours, ipv4(10, 0, 0, 2), ipv4(10, 0, 0, 9), 7, peer), 60u);
  const auto e = parse_ethernet(frame);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->vlan, 7);
  EXPECT_EQ(e->dst, peer);
  EXPECT_EQ(e->ether_type, kEtherTypeArp);
  // Too small: nothing written.
  EXPECT_EQ(build_arp_request(std::span<std::uint8_t>(frame).first(41), ours, 1, 2, 0), 0u);
  EXPECT_EQ(build_arp_request(std::span<std::uint8_t>(frame).first(10), ours, 1, 2, 0), 0u);
  // Without room for padding: the bare 42 bytes.
  EXPECT_EQ(build_arp_request(std::span<std::uint8_t>(frame).first(42), ours, 1, 2, 0), 42u);
}

TEST(NetIpv4, BuildParseRoundTrip) {
  Ipv4Header h;
  h.src = ipv4(10, 1, 2, 3);
  h.dst = ipv4(239, 2, 2, 2);
  h.protocol = kProtoUdp;
  h.ttl = 7;
  h.dscp = 34;
  h.identification = 0xbeef;
  ByteVec p(20 + 100, 0x55);
  ASSERT_EQ(write_ipv4(p, h, 100), 20u);
  EXPECT_EQ(p[0], 0x45);
  EXPECT_EQ(p[1], 34 << 2);
  EXPECT_EQ(p[6] & 0x40, 0);  // DF off
  EXPECT_EQ(internet_checksum(std::span<const std::uint8_t>(p).first(20)), 0);
  Bytes payload;
  auto q = parse_ipv4(p, &payload);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->src, h.src);
  EXPECT_EQ(q->dst, h.dst);
  EXPECT_EQ(q->ttl, 7);
  EXPECT_EQ(q->dscp, 34);
  EXPECT_EQ(q->identification, 0xbeef);
  EXPECT_EQ(q->protocol, kProtoUdp);
  EXPECT_FALSE(q->dont_fragment);
  EXPECT_FALSE(q->is_fragment());
  EXPECT_EQ(payload.size(), 100u);
  EXPECT_EQ(payload.data(), p.data() + 20);

  // Trailing Ethernet padding beyond total length is not payload.
  p.resize(200, 0);
  ASSERT_TRUE(parse_ipv4(p, &payload));
  EXPECT_EQ(payload.size(), 100u);

  auto bad = p;
  bad[15] ^= 1;  // source changed, checksum stale
  EXPECT_FALSE(parse_ipv4(bad));
  bad = p;
  bad[0] = 0x44;  // IHL 4
  EXPECT_FALSE(parse_ipv4(bad));
  bad = p;
  bad[0] = 0x65;  // version 6
  EXPECT_FALSE(parse_ipv4(bad));
  EXPECT_FALSE(parse_ipv4(ByteVec(p.begin(), p.begin() + 119)));  // total length beyond the span

  // Options: Router Alert, IHL 6.
  const std::uint8_t ra[4] = {0x94, 0x04, 0, 0};
  ASSERT_EQ(write_ipv4(p, h, 8, Bytes(ra, 4)), 24u);
  q = parse_ipv4(p, &payload);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->header_size, 24u);
  EXPECT_EQ(payload.size(), 8u);
  EXPECT_EQ(write_ipv4(p, h, 8, Bytes(ra, 3)), 0u);  // not a multiple of 4
  // Fragments are recognised.
  p[6] = 0x20;  // MF
  p[10] = p[11] = 0;
  const std::uint16_t c = internet_checksum(std::span<const std::uint8_t>(p).first(24));
  p[10] = static_cast<std::uint8_t>(c >> 8);
  p[11] = static_cast<std::uint8_t>(c);
  q = parse_ipv4(p);
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->is_fragment());
}

TEST(NetUdp, BuildParse) {
  ByteVec s(8 + 10, 0x11);
  ASSERT_EQ(write_udp(s, 4000, 5000, 10), 8u);
  Bytes payload;
  auto u = parse_udp(s, &payload);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->src_port, 4000);
  EXPECT_EQ(u->dst_port, 5000);
  EXPECT_EQ(u->checksum, 0);
  EXPECT_EQ(payload.size(), 10u);
  EXPECT_FALSE(parse_udp(ByteVec(s.begin(), s.end() - 1)));  // length says 18
  s[4] = 0;
  s[5] = 7;  // length below the header size
  EXPECT_FALSE(parse_udp(s));
}

TEST(NetUdp, WholeFrameHeaders) {
  UdpFrame f;
  f.dst_mac = multicast_mac(ipv4(239, 2, 2, 2));
  f.src_mac = {2, 0, 0, 0, 0, 9};
  f.vlan = 100;
  f.src_ip = ipv4(10, 0, 1, 1);
  f.dst_ip = ipv4(239, 2, 2, 2);
  f.src_port = 5001;
  f.dst_port = 5000;
  f.ttl = 4;
  f.dscp = 46;
  ByteVec frame(udp_headers_size(100) + 1316);
  ASSERT_EQ(write_udp_headers(frame, f, 1316), 46u);
  const auto e = parse_ethernet(frame);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->vlan, 100);
  Bytes ip_payload;
  const auto ip = parse_ipv4(Bytes(frame).subspan(e->header_size), &ip_payload);
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->ttl, 4);
  EXPECT_EQ(ip->dscp, 46);
  EXPECT_EQ(ip->total_size, 20u + 8 + 1316);
  Bytes udp_payload;
  const auto u = parse_udp(ip_payload, &udp_payload);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->dst_port, 5000);
  EXPECT_EQ(udp_payload.size(), 1316u);
}

TEST(NetRtp, ParseSkipsCsrcExtensionAndPadding) {
  ByteVec d = {0xB2, 0xA1, 0x12, 0x34, 0x00, 0x01, 0x5F, 0x90, 0xde, 0xad, 0xbe, 0xef,  // V2 P X CC=2 M PT33
               1,    1,    1,    1,    2,    2,    2,    2,                              // CSRCs
               0xbe, 0xde, 0x00, 0x01, 9,    9,    9,    9,                              // extension, 1 word
               0x47, 0x47, 0x47, 0,    0,    3};                                         // payload + 3 padding
  Bytes payload;
  auto r = parse_rtp(d, &payload);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload_type, 33);
  EXPECT_TRUE(r->marker);
  EXPECT_EQ(r->sequence, 0x1234);
  EXPECT_EQ(r->timestamp, 90000u);
  EXPECT_EQ(r->ssrc, 0xdeadbeefu);
  ASSERT_EQ(payload.size(), 3u);
  EXPECT_EQ(payload[0], 0x47);

  auto bad = d;
  bad[0] = 0x72;  // version 1
  EXPECT_FALSE(parse_rtp(bad));
  bad = d;
  bad.back() = 40;  // padding longer than the payload
  EXPECT_FALSE(parse_rtp(bad));
  bad = d;
  bad[23] = 50;  // extension longer than the datagram
  EXPECT_FALSE(parse_rtp(bad));

  ByteVec out(12);
  ASSERT_EQ(write_rtp(out, Rtp{33, false, 65535, 123456789, 42}), 12u);
  r = parse_rtp(out, &payload);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->sequence, 65535);
  EXPECT_EQ(r->timestamp, 123456789u);
  EXPECT_EQ(r->ssrc, 42u);
  EXPECT_EQ(payload.size(), 0u);
  EXPECT_EQ(out[0], 0x80);
  EXPECT_EQ(out[1], 33);
}

TEST(NetIgmp, RecordTypesFollowRfc3376) {
  EXPECT_EQ(igmp_record_type(IgmpEvent::kJoin, false), IgmpRecordType::kChangeToExclude);
  EXPECT_EQ(igmp_record_type(IgmpEvent::kJoin, true), IgmpRecordType::kAllowNewSources);
  EXPECT_EQ(igmp_record_type(IgmpEvent::kQueryResponse, false), IgmpRecordType::kModeIsExclude);
  EXPECT_EQ(igmp_record_type(IgmpEvent::kQueryResponse, true), IgmpRecordType::kModeIsInclude);
  EXPECT_EQ(igmp_record_type(IgmpEvent::kLeave, false), IgmpRecordType::kChangeToInclude);
  EXPECT_EQ(igmp_record_type(IgmpEvent::kLeave, true), IgmpRecordType::kBlockOldSources);
}

// Sources of one group and record type that follow each other are one record: a router
// that tracks hosts takes each record's source list as the host's whole state.
TEST(NetIgmp, ConsecutiveSourcesOfAGroupShareOneRecord) {
  const IgmpRecord recs[] = {{IgmpRecordType::kChangeToInclude, ipv4(239, 7, 7, 7), ipv4(10, 0, 0, 1)},
                             {IgmpRecordType::kChangeToInclude, ipv4(239, 7, 7, 7), ipv4(10, 0, 0, 2)},
                             {IgmpRecordType::kBlockOldSources, ipv4(239, 7, 7, 7), ipv4(10, 0, 0, 3)},
                             {IgmpRecordType::kChangeToInclude, ipv4(239, 8, 8, 8), 0}};
  ByteVec m(64);
  ASSERT_EQ(write_igmpv3_report(m, recs), 8u + (8 + 8) + (8 + 4) + 8);
  const ByteVec expect_wo_csum = {0x22, 0, 0, 0, 0, 0, 0, 3,                            //
                                  3, 0, 0, 2, 239, 7, 7, 7, 10, 0, 0, 1, 10, 0, 0, 2,  //
                                  6, 0, 0, 1, 239, 7, 7, 7, 10, 0, 0, 3,               //
                                  3, 0, 0, 0, 239, 8, 8, 8};
  ByteVec got(m.begin(), m.begin() + 44);
  EXPECT_EQ(internet_checksum(got), 0);
  got[2] = got[3] = 0;
  EXPECT_EQ(got, expect_wo_csum);
}

TEST(NetIgmp, ReportBytes) {
  const IgmpRecord recs[] = {{IgmpRecordType::kChangeToExclude, ipv4(239, 1, 1, 1), 0},
                             {IgmpRecordType::kAllowNewSources, ipv4(232, 1, 1, 1), ipv4(10, 0, 0, 1)}};
  ByteVec m(64);
  ASSERT_EQ(write_igmpv3_report(m, recs), 8u + 8 + 12);
  const ByteVec expect_wo_csum = {0x22, 0, 0, 0, 0, 0, 0, 2,  //
                                  4, 0, 0, 0, 239, 1, 1, 1,   //
                                  5, 0, 0, 1, 232, 1, 1, 1, 10, 0, 0, 1};
  ByteVec got(m.begin(), m.begin() + 28);
  EXPECT_EQ(internet_checksum(got), 0);
  got[2] = got[3] = 0;
  EXPECT_EQ(got, expect_wo_csum);

  ByteVec frame(256);
  const Mac mac{2, 0, 0, 0, 0, 7};
  const std::size_t n = build_igmpv3_report(frame, mac, ipv4(10, 0, 0, 2), 0, 77, recs);
  ASSERT_EQ(n, 14u + 24 + 28);
  const auto e = parse_ethernet(Bytes(frame).first(n));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->dst, (Mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x16}));
  EXPECT_EQ(e->src, mac);
  Bytes igmp;
  const auto ip = parse_ipv4(Bytes(frame).subspan(14, n - 14), &igmp);
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->ttl, 1);
  EXPECT_EQ(ip->protocol, kProtoIgmp);
  EXPECT_EQ(ip->dst, kIgmpv3ReportGroup);
  EXPECT_EQ(ip->header_size, 24u);
  EXPECT_EQ(frame[14 + 20], 0x94);  // Router Alert
  EXPECT_EQ(frame[14 + 21], 0x04);
  EXPECT_EQ(ByteVec(igmp.begin(), igmp.end()), ByteVec(m.begin(), m.begin() + 28));
  EXPECT_EQ(build_igmpv3_report(std::span<std::uint8_t>(frame).first(50), mac, 1, 0, 0, recs), 0u);
  EXPECT_GE(igmpv3_records_per_frame(1500), 100u);
}

// A report of one any-source record is 14 + 24 + 16 = 54 bytes: padded with zeros to the
// 60-byte Ethernet minimum, as ARP and IGMPv1/v2 frames are, the IP length unchanged.
TEST(NetIgmp, V3ReportFramePaddedToEthernetMinimum) {
  const IgmpRecord rec[] = {{IgmpRecordType::kModeIsExclude, ipv4(239, 1, 1, 1), 0}};
  ByteVec frame(128, 0xAA);
  const std::size_t n = build_igmpv3_report(frame, Mac{2, 0, 0, 0, 0, 7}, ipv4(10, 0, 0, 2), 0, 1, rec);
  EXPECT_EQ(n, 60u);
  Bytes igmp;
  const auto ip = parse_ipv4(Bytes(frame).subspan(14, n - 14), &igmp);
  ASSERT_TRUE(ip);
  EXPECT_EQ(igmp.size(), 16u);
  for (std::size_t i = 54; i < n; ++i) EXPECT_EQ(frame[i], 0) << i;
}

ByteVec with_checksum(ByteVec m) {
  m[2] = m[3] = 0;
  const std::uint16_t c = internet_checksum(m);
  m[2] = static_cast<std::uint8_t>(c >> 8);
  m[3] = static_cast<std::uint8_t>(c);
  return m;
}

TEST(NetIgmp, QueryParse) {
  auto q = parse_igmp_query(with_checksum({0x11, 100, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->version, 2);
  EXPECT_EQ(q->group, 0u);
  EXPECT_EQ(q->max_response_ds, 100u);

  q = parse_igmp_query(with_checksum({0x11, 0, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->version, 1);

  q = parse_igmp_query(with_checksum({0x11, 10, 0, 0, 239, 1, 1, 1, 0x02, 125, 0, 0}));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->version, 3);
  EXPECT_EQ(q->group, ipv4(239, 1, 1, 1));
  EXPECT_EQ(q->max_response_ds, 10u);

  // Exponential code 0x8F: mant 15, exp 0 -> (15|16) << 3 = 248.
  q = parse_igmp_query(with_checksum({0x11, 0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->max_response_ds, 248u);

  // One source claimed, none present.
  EXPECT_FALSE(parse_igmp_query(with_checksum({0x11, 10, 0, 0, 239, 1, 1, 1, 0, 0, 0, 1})));
  EXPECT_FALSE(parse_igmp_query(with_checksum({0x11, 10, 0, 0, 239, 1, 1, 1, 0, 0})));  // 10 bytes
  auto bad = with_checksum({0x11, 100, 0, 0, 0, 0, 0, 0});
  bad[7] = 1;
  EXPECT_FALSE(parse_igmp_query(bad));  // checksum
  EXPECT_FALSE(parse_igmp_query(with_checksum({0x22, 0, 0, 0, 0, 0, 0, 0})));  // a report
}

TEST(NetIgmp, QueryVersionsPerRfc3376Section7_1) {
  // v1: 8 bytes, max resp code 0 (RFC 1112 has none: 10 s is implied, RFC 2236 4).
  auto q = parse_igmp_query(with_checksum({0x11, 0, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->version, 1);
  EXPECT_EQ(q->max_response_ds, 100u);
  EXPECT_EQ(q->group, 0u);
  // v2 group-specific: 8 bytes, max resp time in tenths of a second, never exponential.
  q = parse_igmp_query(with_checksum({0x11, 0xC8, 0, 0, 239, 1, 1, 2}));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->version, 2);
  EXPECT_EQ(q->group, ipv4(239, 1, 1, 2));
  EXPECT_EQ(q->max_response_ds, 200u);
  // v3: 12 bytes or more, even with a max resp code of 0.
  q = parse_igmp_query(with_checksum({0x11, 0, 0, 0, 0, 0, 0, 0, 0x02, 125, 0, 0}));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->version, 3);
}

// RFC 1112's query has no group: "zeroed when sent, ignored when received". A v1 query
// with something in that field is still a general query, not one for that group.
TEST(NetIgmp, V1QueryIgnoresItsGroupField) {
  const auto q = parse_igmp_query(with_checksum({0x11, 0, 0, 0, 239, 1, 1, 2}));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->version, 1);
  EXPECT_EQ(q->group, 0u);
}

TEST(NetIgmp, OlderMessagesByVersionAndEvent) {
  EXPECT_EQ(igmp_older_message(2, IgmpEvent::kJoin), IgmpOlderMessage::kV2Report);
  EXPECT_EQ(igmp_older_message(2, IgmpEvent::kQueryResponse), IgmpOlderMessage::kV2Report);
  EXPECT_EQ(igmp_older_message(2, IgmpEvent::kLeave), IgmpOlderMessage::kV2Leave);
  EXPECT_EQ(igmp_older_message(1, IgmpEvent::kJoin), IgmpOlderMessage::kV1Report);
  EXPECT_EQ(igmp_older_message(1, IgmpEvent::kQueryResponse), IgmpOlderMessage::kV1Report);
  EXPECT_FALSE(igmp_older_message(1, IgmpEvent::kLeave));  // IGMPv1 has no leave
  EXPECT_FALSE(igmp_older_message(3, IgmpEvent::kJoin));
}

// Whole frames byte for byte. The IGMP and IPv4 checksums were computed apart from
// net.cpp (a few lines of python summing 16-bit words): v2 report of 239.1.1.1 0xf9fc,
// v2 leave 0xf8fc, v1 report 0xfdfc; IPv4 headers from 10.0.0.2 with id 77, DF, TTL 1,
// protocol 2, TOS 0xc0: to 239.1.1.1 with Router Alert 0xe9c6, to 224.0.0.2 with Router
// Alert 0xf9c6, to 239.1.1.1 without 0x7ecf.
TEST(NetIgmp, OlderMessageFramesPerRfc2236AndRfc1112) {
  const Mac mac{2, 0, 0, 0, 0, 7};
  const Ipv4 group = ipv4(239, 1, 1, 1);
  const ByteVec eth_src = {2, 0, 0, 0, 0, 7, 0x08, 0x00};
  struct Case {
    IgmpOlderMessage type;
    ByteVec dst_mac;
    ByteVec ip;
    ByteVec igmp;
  };
  const Case cases[] = {
      {IgmpOlderMessage::kV2Report,
       {0x01, 0x00, 0x5e, 0x01, 0x01, 0x01},
       {0x46, 0xc0, 0x00, 0x20, 0x00, 0x4d, 0x40, 0x00, 0x01, 0x02, 0xe9, 0xc6, 10, 0, 0, 2, 239, 1, 1, 1,
        0x94, 0x04, 0x00, 0x00},
       {0x16, 0x00, 0xf9, 0xfc, 239, 1, 1, 1}},
      {IgmpOlderMessage::kV2Leave,
       {0x01, 0x00, 0x5e, 0x00, 0x00, 0x02},
       {0x46, 0xc0, 0x00, 0x20, 0x00, 0x4d, 0x40, 0x00, 0x01, 0x02, 0xf9, 0xc6, 10, 0, 0, 2, 224, 0, 0, 2,
        0x94, 0x04, 0x00, 0x00},
       {0x17, 0x00, 0xf8, 0xfc, 239, 1, 1, 1}},
      {IgmpOlderMessage::kV1Report,
       {0x01, 0x00, 0x5e, 0x01, 0x01, 0x01},
       {0x45, 0xc0, 0x00, 0x1c, 0x00, 0x4d, 0x40, 0x00, 0x01, 0x02, 0x7e, 0xcf, 10, 0, 0, 2, 239, 1, 1, 1},
       {0x12, 0x00, 0xfd, 0xfc, 239, 1, 1, 1}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(static_cast<int>(c.type));
    ByteVec msg(8);
    ASSERT_EQ(write_igmp_older_message(msg, c.type, group), 8u);
    EXPECT_EQ(msg, c.igmp);
    EXPECT_EQ(internet_checksum(msg), 0);

    ByteVec want = c.dst_mac;
    want.insert(want.end(), eth_src.begin(), eth_src.end());
    want.insert(want.end(), c.ip.begin(), c.ip.end());
    want.insert(want.end(), c.igmp.begin(), c.igmp.end());
    want.resize(60, 0);  // padded to the Ethernet minimum
    ByteVec frame(kIgmpOlderFrameMax, 0xAA);
    const std::size_t n = build_igmp_older_message(frame, c.type, mac, ipv4(10, 0, 0, 2), 0, 77, group);
    ASSERT_EQ(n, 60u);
    frame.resize(n);
    EXPECT_EQ(frame, want);
    // And what the parsers make of it: the padding is not part of the IP packet.
    Bytes igmp;
    const auto ip = parse_ipv4(Bytes(frame).subspan(14), &igmp);
    ASSERT_TRUE(ip);
    EXPECT_EQ(ip->total_size, c.ip.size() + 8);
    EXPECT_EQ(ByteVec(igmp.begin(), igmp.end()), c.igmp);
    EXPECT_FALSE(parse_igmp_query(igmp));  // a report or leave is not a query
  }
  ByteVec seven(7);
  EXPECT_EQ(write_igmp_older_message(seven, IgmpOlderMessage::kV2Report, group), 0u);
}

TEST(NetIgmp, OlderMessageFrameWithVlanAndTightBuffers) {
  const Mac mac{2, 0, 0, 0, 0, 7};
  const Ipv4 group = ipv4(232, 5, 5, 5);
  ByteVec frame(kIgmpOlderFrameMax);
  const std::size_t n = build_igmp_older_message(frame, IgmpOlderMessage::kV2Report, mac, ipv4(10, 0, 0, 2), 42, 1, group);
  ASSERT_EQ(n, 60u);  // 18 + 24 + 8 = 50, padded
  const auto e = parse_ethernet(Bytes(frame).first(n));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->vlan, 42);
  EXPECT_EQ(e->dst, multicast_mac(group));
  Bytes igmp;
  const auto ip = parse_ipv4(Bytes(frame).subspan(18, n - 18), &igmp);
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->dst, group);
  EXPECT_EQ(ip->ttl, 1);
  EXPECT_EQ(ip->header_size, 24u);
  ASSERT_EQ(igmp.size(), 8u);
  EXPECT_EQ(internet_checksum(igmp), 0);
  // Exactly the unpadded size fits and is not padded; one byte less does not.
  ByteVec tight(50);
  EXPECT_EQ(build_igmp_older_message(tight, IgmpOlderMessage::kV2Report, mac, 1, 42, 1, group), 50u);
  ByteVec short_buf(49);
  EXPECT_EQ(build_igmp_older_message(short_buf, IgmpOlderMessage::kV2Report, mac, 1, 42, 1, group), 0u);
  ByteVec v1(42);  // v1: no Router Alert, 14 + 20 + 8
  EXPECT_EQ(build_igmp_older_message(v1, IgmpOlderMessage::kV1Report, mac, 1, 0, 1, group), 42u);
}

// Every parser on every prefix of valid frames and on random bytes, each in a buffer of
// exactly that size so ASan (Sanitize build) catches any read past the end.
void parse_everything(const ByteVec& b) {
  const Bytes s(b);
  Bytes rest;
  (void)parse_ethernet(s);
  (void)parse_arp(s);
  (void)parse_ipv4(s, &rest);
  (void)parse_udp(s, &rest);
  (void)parse_rtp(s, &rest);
  (void)parse_igmp_query(s);
  if (auto e = parse_ethernet(s)) {
    if (auto ip = parse_ipv4(s.subspan(e->header_size), &rest)) {
      Bytes udp;
      if (parse_udp(rest, &udp)) (void)parse_rtp(udp, &rest);
    }
  }
}

TEST(NetRobustness, TruncationsAndRandomBytes) {
  ByteVec frame(udp_headers_size(5) + 12 + 188);
  UdpFrame f;
  f.vlan = 5;
  f.dst_ip = ipv4(239, 1, 1, 1);
  ASSERT_GT(write_udp_headers(frame, f, 12 + 188), 0u);
  ASSERT_EQ(write_rtp(std::span<std::uint8_t>(frame).subspan(46), Rtp{33, false, 1, 2, 3}), 12u);
  for (std::size_t n = 0; n <= frame.size(); ++n) {
    ByteVec cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    parse_everything(cut);
  }
  std::mt19937 rng(1234);
  for (int i = 0; i < 20000; ++i) {
    ByteVec b(rng() % 80);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    if (!b.empty() && (i & 1)) b[0] = static_cast<std::uint8_t>(0x40 | (rng() & 0xF));  // IPv4-ish
    if (b.size() > 1 && (i & 2)) b[0] = static_cast<std::uint8_t>(0x80 | (rng() & 0x3F));  // RTP-ish
    parse_everything(b);
  }
  SUCCEED();
}

}  // namespace
}  // namespace twincast::dataplane::net
