#include "twincast/mpegts/packet.hpp"

#include <gtest/gtest.h>

#include "tests_common.hpp"

using namespace twincast::mpegts;

namespace {
TsPacket packet_with_pcr(std::uint64_t pcr) {
  TsPacket p = make_null_packet();
  p.set_pid(0x100);
  p.bytes[3] = 0x30 | 0x05;  // adaptation + payload, CC 5
  p.bytes[4] = 7;
  p.bytes[5] = 0x10 | 0x40;  // PCR flag, random access
  p.set_pcr(pcr);
  return p;
}
}  // namespace

TEST(Packet, HeaderFields) {
  TsPacket p{};
  p.bytes = {0x47, 0xE1, 0x23, 0xB7};
  EXPECT_TRUE(p.has_sync());
  EXPECT_TRUE(p.transport_error());
  EXPECT_TRUE(p.payload_unit_start());
  EXPECT_TRUE(p.transport_priority());
  EXPECT_EQ(p.pid(), 0x0123);
  EXPECT_EQ(p.scrambling(), 2);
  EXPECT_EQ(p.adaptation_control(), AdaptationControl::kAdaptationAndPayload);
  EXPECT_EQ(p.cc(), 7);
  p.set_pid(0x1FFE);
  p.set_cc(0xF);
  EXPECT_EQ(p.pid(), 0x1FFE);
  EXPECT_EQ(p.cc(), 0xF);
  EXPECT_TRUE(p.transport_error()) << "set_pid must keep the flags";
  EXPECT_EQ(p.scrambling(), 2) << "set_cc must keep the other bits";
}

TEST(Packet, PcrRoundTripAndFlags) {
  for (std::uint64_t pcr : {std::uint64_t{0}, std::uint64_t{299}, std::uint64_t{27'000'000},
                            kPcrWrap - 1, std::uint64_t{123456789012}}) {
    const TsPacket p = packet_with_pcr(pcr);
    ASSERT_TRUE(p.has_pcr());
    EXPECT_EQ(p.pcr(), pcr % kPcrWrap);
    EXPECT_TRUE(p.random_access());
    EXPECT_FALSE(p.discontinuity());
    EXPECT_FALSE(p.has_opcr());
    EXPECT_EQ(p.payload_offset(), 12u);
    EXPECT_EQ(p.payload().size(), 176u);
  }
}

TEST(Packet, DiscontinuityNeedsAdaptationField) {
  TsPacket p = packet_with_pcr(42);
  EXPECT_TRUE(p.set_discontinuity(true));
  EXPECT_TRUE(p.discontinuity());
  EXPECT_EQ(p.pcr(), 42u);
  TsPacket q = make_null_packet();
  EXPECT_FALSE(q.set_discontinuity(true));
  EXPECT_FALSE(q.discontinuity());
}

TEST(Packet, MalformedAdaptationLengthNeverReadsPastThePacket) {
  TsPacket p = make_null_packet();
  p.bytes[3] = 0x30;
  p.bytes[4] = 200;  // longer than the packet
  EXPECT_TRUE(p.adaptation_overflows());
  EXPECT_FALSE(p.has_pcr());
  EXPECT_EQ(p.adaptation_flags(), 0);
  EXPECT_TRUE(p.payload().empty());
  p.bytes[3] = 0x20;  // adaptation only: 183 is the maximum
  p.bytes[4] = 183;
  EXPECT_FALSE(p.adaptation_overflows());
  p.bytes[4] = 184;
  EXPECT_TRUE(p.adaptation_overflows());
}

TEST(Packet, OpcrFollowsPcr) {
  TsPacket p = make_null_packet();
  p.bytes[3] = 0x20;
  p.bytes[4] = 13;
  p.bytes[5] = 0x18;  // PCR and OPCR
  p.set_pcr(1000);
  // Write OPCR = 2000 at offset 12 through a scratch packet.
  TsPacket s = packet_with_pcr(2000);
  std::copy_n(s.bytes.begin() + 6, 6, p.bytes.begin() + 12);
  ASSERT_TRUE(p.has_opcr());
  EXPECT_EQ(p.pcr(), 1000u);
  EXPECT_EQ(p.opcr(), 2000u);
}

TEST(Packet, ClockDeltasWrap) {
  EXPECT_EQ(pcr_delta(kPcrWrap - 10, 5), 15u);
  EXPECT_EQ(pts_delta(kPtsWrap - 1, 0), 1u);
  EXPECT_EQ(pts_delta(100, 90100), 90000u);
}

TEST(Packet, RealStreamHeadersParse) {
  const auto pkts = twincast::test::read_packets(twincast::test::fixture("h264_aac.ts"));
  ASSERT_GT(pkts.size(), 1000u);
  std::size_t pcrs = 0;
  for (const auto& p : pkts) {
    ASSERT_TRUE(p.has_sync());
    ASSERT_FALSE(p.adaptation_overflows());
    if (p.has_pcr()) ++pcrs;
  }
  EXPECT_GT(pcrs, 100u) << "6 s of ffmpeg output carries a PCR at least every 40 ms";
}
