#include "twincast/mpegts/crc32.hpp"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "tests_common.hpp"

using namespace twincast::mpegts;

namespace {
std::vector<std::uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

void append_crc(std::vector<std::uint8_t>& v) {
  const std::uint32_t c = crc32_mpeg(v);
  for (int shift = 24; shift >= 0; shift -= 8) v.push_back(static_cast<std::uint8_t>(c >> shift));
}
}  // namespace

TEST(Crc32, KnownVector) {
  EXPECT_EQ(crc32_mpeg(bytes_of("123456789")), 0x0376E6E7U);
  EXPECT_EQ(crc32_mpeg({}), 0xFFFFFFFFU);
  const std::vector<std::uint8_t> zero{0x00};
  EXPECT_EQ(crc32_mpeg(zero), 0x4E08BFB4U);
}

TEST(Crc32, SectionCheck) {
  auto v = bytes_of("a section body");
  append_crc(v);
  EXPECT_TRUE(section_crc_ok(v));
  for (std::size_t i = 0; i < v.size(); ++i) {
    auto bad = v;
    bad[i] ^= 0x01;
    EXPECT_FALSE(section_crc_ok(bad)) << "bit flip at " << i;
  }
  EXPECT_FALSE(section_crc_ok(std::vector<std::uint8_t>{0x00, 0x00, 0x00}));
}

// The PAT sections ffmpeg wrote: CRC over the whole section is 0, and the stored
// CRC_32 equals the CRC of the bytes before it.
TEST(Crc32, FfmpegPatSections) {
  for (const char* name : {"h264_aac.ts", "mpts3.ts", "two_audio.ts"}) {
    const auto pkts = twincast::test::read_packets(twincast::test::fixture(name));
    int checked = 0;
    for (const auto& p : pkts) {
      if (p.pid() != kPatPid || !p.payload_unit_start()) continue;
      const auto pl = p.payload();
      const std::size_t at = 1 + pl[0];
      ASSERT_LT(at + 3, pl.size());
      const std::size_t len = 3 + ((std::size_t{pl[at + 1] & 0x0FU} << 8) | pl[at + 2]);
      ASSERT_LE(at + len, pl.size());  // ffmpeg's PAT fits one packet
      const auto section = pl.subspan(at, len);
      ASSERT_EQ(section[0], 0x00);
      EXPECT_TRUE(section_crc_ok(section));
      const std::uint32_t stored = (std::uint32_t{section[len - 4]} << 24) | (std::uint32_t{section[len - 3]} << 16) |
                                   (std::uint32_t{section[len - 2]} << 8) | section[len - 1];
      EXPECT_EQ(crc32_mpeg(section.first(len - 4)), stored);
      ++checked;
    }
    EXPECT_GT(checked, 5) << name;
  }
}
