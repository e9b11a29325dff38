#include "twincast/mpegts/pes.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tests_common.hpp"

using namespace twincast::mpegts;

namespace {

// 5-byte timestamp with the given 4-bit prefix and all marker bits set.
void put_ts(std::vector<std::uint8_t>& v, unsigned prefix, std::uint64_t t) {
  v.push_back(static_cast<std::uint8_t>((prefix << 4) | ((t >> 29) & 0x0E) | 1));
  v.push_back(static_cast<std::uint8_t>(t >> 22));
  v.push_back(static_cast<std::uint8_t>(((t >> 14) & 0xFE) | 1));
  v.push_back(static_cast<std::uint8_t>(t >> 7));
  v.push_back(static_cast<std::uint8_t>(((t << 1) & 0xFE) | 1));
}

std::vector<std::uint8_t> pes(std::uint8_t stream_id, std::uint16_t len, bool pts, bool dts, std::uint64_t p,
                              std::uint64_t d, std::uint8_t extra_header = 0) {
  std::vector<std::uint8_t> v = {0, 0, 1, stream_id, static_cast<std::uint8_t>(len >> 8),
                                 static_cast<std::uint8_t>(len), 0x84 /* '10', data_alignment */,
                                 static_cast<std::uint8_t>((pts ? 0x80 : 0) | (dts ? 0x40 : 0)),
                                 static_cast<std::uint8_t>((pts ? 5 : 0) + (dts ? 5 : 0) + extra_header)};
  if (pts) put_ts(v, dts ? 3 : 2, p);
  if (dts) put_ts(v, 1, d);
  for (int i = 0; i < extra_header; ++i) v.push_back(0xFF);
  return v;
}

}  // namespace

TEST(Pes, PtsOnly) {
  const auto v = pes(0xC0, 0, true, false, 0x1'2345'6789, 0);
  const auto h = parse_pes_header(v);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stream_id, 0xC0);
  EXPECT_TRUE(h->has_pts);
  EXPECT_FALSE(h->has_dts);
  EXPECT_EQ(h->pts, 0x1'2345'6789u);
  EXPECT_EQ(h->dts, h->pts);
  EXPECT_TRUE(h->data_alignment);
  EXPECT_EQ(h->header_size, 14u);
  EXPECT_EQ(h->packet_length, 0);
}

TEST(Pes, PtsAndDtsFullRange) {
  for (std::uint64_t t : {std::uint64_t{0}, std::uint64_t{1}, kPtsWrap - 1, std::uint64_t{0x0'AAAA'5555}}) {
    const auto v = pes(0xE0, 1000, true, true, t, (t + 7) % kPtsWrap, 3);
    const auto h = parse_pes_header(v);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->pts, t);
    EXPECT_EQ(h->dts, (t + 7) % kPtsWrap);
    EXPECT_TRUE(h->has_dts);
    EXPECT_EQ(h->header_size, 22u);
    EXPECT_EQ(h->packet_length, 1000);
  }
}

TEST(Pes, NoTimestamps) {
  const auto v = pes(0xE0, 0, false, false, 0, 0);
  const auto h = parse_pes_header(v);
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->has_pts);
  EXPECT_EQ(h->header_size, 9u);
}

TEST(Pes, BrokenMarkersAndFlags) {
  auto v = pes(0xE0, 0, true, true, 90000, 86400);
  for (std::size_t at : {9u, 11u, 13u, 14u, 16u, 18u}) {
    auto b = v;
    b[at] &= 0xFE;  // clear one marker bit
    EXPECT_FALSE(parse_pes_header(b)) << "marker at " << at;
  }
  auto b = v;
  b[7] = 0x40;  // PTS_DTS_flags = 01, forbidden
  EXPECT_FALSE(parse_pes_header(b));
  b = v;
  b[6] = 0x44;  // '01' instead of '10'
  EXPECT_FALSE(parse_pes_header(b));
  b = v;
  b[2] = 0x02;  // no start code prefix
  EXPECT_FALSE(parse_pes_header(b));
  b = v;
  b[8] = 4;  // header data too short for PTS+DTS
  EXPECT_FALSE(parse_pes_header(b));
  b = v;
  b[4] = 0;
  b[5] = 5;  // PES_packet_length smaller than its own header
  EXPECT_FALSE(parse_pes_header(b));
  b = v;
  b[3] = 0xBA;  // pack header code, not a PES stream id
  EXPECT_FALSE(parse_pes_header(b));
}

TEST(Pes, TruncatedAtEveryLength) {
  const auto v = pes(0xE0, 0, true, true, 123456, 120000);
  ASSERT_EQ(v.size(), 19u);
  for (std::size_t n = 0; n < v.size(); ++n) {
    // Copy into an exactly sized buffer so ASan catches any read past it.
    std::vector<std::uint8_t> cut(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(parse_pes_header(cut)) << "length " << n;
  }
  EXPECT_TRUE(parse_pes_header(v));
}

TEST(Pes, StreamsWithoutOptionalHeader) {
  for (const int sid : {0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF}) {
    const auto id = static_cast<std::uint8_t>(sid);
    const std::vector<std::uint8_t> v = {0, 0, 1, id, 0x00, 0x10, 0xFF, 0xFF, 0xFF};
    const auto h = parse_pes_header(v);
    ASSERT_TRUE(h) << int{id};
    EXPECT_EQ(h->header_size, 6u);
    EXPECT_FALSE(h->has_pts);
    EXPECT_EQ(h->packet_length, 16);
    EXPECT_TRUE(parse_pes_header(std::span(v).first(6)));
    EXPECT_FALSE(parse_pes_header(std::span(v).first(5)));
  }
  // A stream with the optional header needs the 3 bytes of flags.
  const std::vector<std::uint8_t> bd = {0, 0, 1, 0xBD, 0, 0, 0x80, 0x00};
  EXPECT_FALSE(parse_pes_header(bd));
}

TEST(Pes, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  int ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::uint8_t> v(rng() % 40);
    for (auto& b : v) b = static_cast<std::uint8_t>(rng());
    if (v.size() >= 3 && (i & 1)) v[0] = 0, v[1] = 0, v[2] = 1;
    if (const auto h = parse_pes_header(v)) {
      ++ok;
      EXPECT_LE(h->header_size, v.size());
      EXPECT_LT(h->pts, kPtsWrap);
    }
  }
  EXPECT_GT(ok, 0);
}

TEST(Pes, EveryVideoAndAudioPesOfFfmpegFixture) {
  const auto pkts = twincast::test::read_packets(twincast::test::fixture("h264_aac.ts"));
  // h264_aac.ts: video on 0x100, audio on 0x101 (make_fixtures: -mpegts_start_pid 0x100).
  int n_video = 0, n_audio = 0;
  std::uint64_t last_dts = 0;
  for (const auto& p : pkts) {
    if (!p.payload_unit_start() || (p.pid() != 0x100 && p.pid() != 0x101)) continue;
    const auto h = parse_pes_header(p.payload());
    ASSERT_TRUE(h) << "pid " << p.pid();
    ASSERT_TRUE(h->has_pts);
    if (p.pid() == 0x100) {
      EXPECT_EQ(h->stream_id, 0xE0);
      EXPECT_EQ(h->packet_length, 0);
      // DTS steps one frame (3600 at 25 fps); PTS never precedes DTS, by less than a second.
      if (n_video > 0) {
        EXPECT_EQ(pts_delta(last_dts, h->dts), 3600u);
      }
      EXPECT_LT(pts_delta(h->dts, h->pts), kPtsHz);
      last_dts = h->dts;
      ++n_video;
    } else {
      EXPECT_EQ(h->stream_id, 0xC0);
      EXPECT_GT(h->packet_length, 0);
      ++n_audio;
    }
  }
  EXPECT_EQ(n_video, 150);  // 6 s at 25 fps, one frame per PES
  EXPECT_GT(n_audio, 0);
}
