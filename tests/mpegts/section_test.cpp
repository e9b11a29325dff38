#include "twincast/mpegts/section.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "tests_common.hpp"
#include "twincast/mpegts/crc32.hpp"

using namespace twincast::mpegts;
using Bytes = std::vector<std::uint8_t>;

namespace {

struct Collector final : SectionHandler {
  struct Got {
    std::uint16_t pid;
    Bytes bytes;
    bool crc_ok;
  };
  std::vector<Got> got;
  void on_section(std::uint16_t pid, std::span<const std::uint8_t> s, bool crc_ok) override {
    got.push_back({pid, Bytes(s.begin(), s.end()), crc_ok});
  }
};

// A long-form section (syntax 1) of `total` bytes with a valid CRC_32.
Bytes make_section(std::uint8_t table_id, std::size_t total, std::uint8_t fill = 0x5A) {
  Bytes s(total - 4, fill);
  const std::size_t len = total - 3;
  s[0] = table_id;
  s[1] = static_cast<std::uint8_t>(0xB0 | (len >> 8));
  s[2] = static_cast<std::uint8_t>(len & 0xFF);
  s[3] = 0x00;
  s[4] = 0x01;
  s[5] = 0xC1;
  s[6] = 0;
  s[7] = 0;
  for (std::size_t i = 8; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(fill + i);
  const std::uint32_t c = crc32_mpeg(s);
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<std::uint8_t>(c >> sh));
  return s;
}

// A packet on `pid` with `cc`; payload bytes from `data`, the rest 0xFF.
TsPacket packet(std::uint16_t pid, std::uint8_t cc, bool pusi, const Bytes& data) {
  TsPacket p{};
  p.bytes.fill(0xFF);
  p.bytes[0] = kSyncByte;
  p.bytes[1] = 0;
  p.bytes[3] = 0x10;
  p.set_pid(pid);
  p.set_cc(cc);
  p.set_payload_unit_start(pusi);
  EXPECT_LE(data.size(), 184U);
  std::copy(data.begin(), data.end(), p.bytes.begin() + 4);
  return p;
}

Bytes slice(const Bytes& b, std::size_t from, std::size_t n) {
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(from + n));
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST(Section, SpansThreePackets) {
  const Bytes s = make_section(0x02, 400);
  SectionAssembler a;
  Collector c;
  a.push(packet(0x100, 0, true, cat({{0x00}, slice(s, 0, 183)})), c);
  a.push(packet(0x100, 1, false, slice(s, 183, 184)), c);
  EXPECT_TRUE(c.got.empty());
  a.push(packet(0x100, 2, false, slice(s, 367, 33)), c);
  ASSERT_EQ(c.got.size(), 1U);
  EXPECT_EQ(c.got[0].bytes, s);
  EXPECT_TRUE(c.got[0].crc_ok);
  EXPECT_EQ(c.got[0].pid, 0x100);
  EXPECT_EQ(a.stats().sections, 1U);
  EXPECT_EQ(a.stats().packets, 3U);
  EXPECT_EQ(a.stats().dropped, 0U);
}

TEST(Section, TwoSectionsInOnePacketThenStuffing) {
  const Bytes s1 = make_section(0x00, 20);
  const Bytes s2 = make_section(0x02, 30, 0x11);
  SectionAssembler a;
  Collector c;
  // After the stuffing byte, bytes that look like a section must be ignored.
  a.push(packet(0, 0, true, cat({{0x00}, s1, s2, {0xFF}, make_section(0x02, 20)})), c);
  ASSERT_EQ(c.got.size(), 2U);
  EXPECT_EQ(c.got[0].bytes, s1);
  EXPECT_EQ(c.got[1].bytes, s2);
}

TEST(Section, PointerFieldCompletesPreviousSection) {
  const Bytes s1 = make_section(0x02, 250);
  const Bytes s2 = make_section(0x02, 40, 0x33);
  SectionAssembler a;
  Collector c;
  a.push(packet(0x20, 5, true, cat({{0x00}, slice(s1, 0, 183)})), c);
  const std::size_t rest = s1.size() - 183;  // 67
  a.push(packet(0x20, 6, true, cat({{static_cast<std::uint8_t>(rest)}, slice(s1, 183, rest), s2})), c);
  ASSERT_EQ(c.got.size(), 2U);
  EXPECT_EQ(c.got[0].bytes, s1);
  EXPECT_EQ(c.got[1].bytes, s2);
  EXPECT_EQ(a.stats().dropped, 0U);
}

TEST(Section, HeaderSplitAcrossPackets) {
  // The next section starts on the last payload byte: its header completes in the next packet.
  const Bytes s1 = make_section(0x02, 182);
  const Bytes s2 = make_section(0x02, 50, 0x44);
  SectionAssembler a;
  Collector c;
  a.push(packet(0x20, 0, true, cat({{0x00}, s1, slice(s2, 0, 1)})), c);
  a.push(packet(0x20, 1, false, slice(s2, 1, 49)), c);
  ASSERT_EQ(c.got.size(), 2U);
  EXPECT_EQ(c.got[1].bytes, s2);
}

TEST(Section, CcBreakDropsPartialSection) {
  const Bytes s = make_section(0x02, 400);
  SectionAssembler a;
  Collector c;
  a.push(packet(0x100, 0, true, cat({{0x00}, slice(s, 0, 183)})), c);
  a.push(packet(0x100, 2, false, slice(s, 183, 184)), c);  // CC 1 lost
  a.push(packet(0x100, 3, false, slice(s, 367, 33)), c);
  EXPECT_TRUE(c.got.empty());
  EXPECT_EQ(a.stats().dropped, 1U);
  // The next section starts cleanly.
  const Bytes small = make_section(0x02, 30);
  a.push(packet(0x100, 4, true, cat({{0x00}, small})), c);
  ASSERT_EQ(c.got.size(), 1U);
  EXPECT_EQ(c.got[0].bytes, small);
}

TEST(Section, DuplicatePacketIgnored) {
  const Bytes s = make_section(0x02, 400);
  SectionAssembler a;
  Collector c;
  const TsPacket p1 = packet(0x100, 7, true, cat({{0x00}, slice(s, 0, 183)}));
  const TsPacket p2 = packet(0x100, 8, false, slice(s, 183, 184));
  a.push(p1, c);
  a.push(p2, c);
  a.push(p2, c);  // duplicate
  a.push(packet(0x100, 9, false, slice(s, 367, 33)), c);
  ASSERT_EQ(c.got.size(), 1U);
  EXPECT_EQ(c.got[0].bytes, s);
  EXPECT_EQ(a.stats().dropped, 0U);
}

// 13818-1 2.4.3.3: a duplicate repeats its original byte for byte. A packet with the
// counter of the one before and another payload is not one: packets were lost (16 of them,
// or a muxer whose counter is stuck), and the section it starts is delivered.
TEST(Section, SameCounterWithAnotherPayloadIsALossNotADuplicate) {
  const Bytes s = make_section(0x02, 400);
  const Bytes a1 = make_section(0x4E, 60, 0x10);
  const Bytes a2 = make_section(0x4E, 60, 0x20);
  SectionAssembler a;
  Collector c;
  a.push(packet(0x12, 3, true, cat({{0x00}, a1})), c);
  a.push(packet(0x12, 3, true, cat({{0x00}, a2})), c);  // stuck counter: a new section
  ASSERT_EQ(c.got.size(), 2U);
  EXPECT_EQ(c.got[1].bytes, a2);
  // Inside a section: 16 packets lost after its second one, the stream goes on in another
  // section. The partial one is dropped, not completed with the other's bytes.
  const Bytes t = make_section(0x4E, 400, 0x30);
  a.push(packet(0x12, 4, true, cat({{0x00}, slice(s, 0, 183)})), c);
  a.push(packet(0x12, 5, false, slice(s, 183, 184)), c);
  a.push(packet(0x12, 5, false, slice(t, 183, 184)), c);  // 16 packets later
  a.push(packet(0x12, 6, false, slice(t, 367, 33)), c);
  EXPECT_EQ(c.got.size(), 2U);
  EXPECT_EQ(a.stats().crc_errors, 0U);
  EXPECT_EQ(a.stats().dropped, 1U);
  // A true duplicate is still ignored.
  const TsPacket p1 = packet(0x12, 7, true, cat({{0x00}, slice(s, 0, 183)}));
  const TsPacket p2 = packet(0x12, 8, false, slice(s, 183, 184));
  a.push(p1, c);
  a.push(p1, c);
  a.push(p2, c);
  a.push(p2, c);
  a.push(packet(0x12, 9, false, slice(s, 367, 33)), c);
  ASSERT_EQ(c.got.size(), 3U);
  EXPECT_EQ(c.got[2].bytes, s);
}

TEST(Section, CorruptedByteCountsCrcError) {
  Bytes s = make_section(0x02, 100);
  s[50] ^= 0x10;
  SectionAssembler a;
  Collector c;
  a.push(packet(0x100, 0, true, cat({{0x00}, s})), c);
  ASSERT_EQ(c.got.size(), 1U);
  EXPECT_FALSE(c.got[0].crc_ok);
  EXPECT_EQ(a.stats().crc_errors, 1U);
  EXPECT_EQ(a.stats().sections, 1U);
}

TEST(Section, ShortFormSectionHasNoCrcCheck) {
  // section_syntax_indicator 0 (e.g. a TDT): delivered as is, crc_ok true.
  const Bytes tdt{0x70, 0x70, 0x05, 0xE7, 0x4C, 0x12, 0x34, 0x56};
  SectionAssembler a;
  Collector c;
  a.push(packet(0x14, 0, true, cat({{0x00}, tdt})), c);
  ASSERT_EQ(c.got.size(), 1U);
  EXPECT_TRUE(c.got[0].crc_ok);
  EXPECT_EQ(c.got[0].bytes, tdt);
  EXPECT_EQ(a.stats().crc_errors, 0U);
}

TEST(Section, MalformedLengths) {
  SectionAssembler a;
  Collector c;
  // PAT claiming 1022 bytes: more than the 1021 allowed.
  a.push(packet(0, 0, true, {0x00, 0x00, 0xB3, 0xFE, 0x00}), c);
  EXPECT_EQ(a.stats().malformed, 1U);
  // Long form with a length too short for its header and CRC.
  a.push(packet(0, 1, true, {0x00, 0x00, 0xB0, 0x04, 0, 0, 0, 0}), c);
  EXPECT_EQ(a.stats().malformed, 2U);
  // A private table may use up to 4093 bytes, spanning 23 packets.
  const Bytes big = make_section(0x80, 4096);
  std::size_t pos = 0;
  std::uint8_t cc = 2;
  a.push(packet(0x30, cc++, true, cat({{0x00}, slice(big, 0, 183)})), c);
  pos = 183;
  while (pos < big.size()) {
    const std::size_t n = std::min<std::size_t>(184, big.size() - pos);
    a.push(packet(0x30, static_cast<std::uint8_t>(cc++ & 0x0F), false, slice(big, pos, n)), c);
    pos += n;
  }
  ASSERT_EQ(c.got.size(), 1U);
  EXPECT_EQ(c.got[0].bytes, big);
  EXPECT_TRUE(c.got[0].crc_ok);
  // Pointer field beyond the payload.
  a.push(packet(0x30, 0, true, {183 + 1}), c);
  EXPECT_EQ(a.stats().malformed, 3U);
}

TEST(Section, NewStartWhileIncompleteAndTei) {
  const Bytes s = make_section(0x02, 400);
  const Bytes small = make_section(0x02, 30);
  SectionAssembler a;
  Collector c;
  a.push(packet(0x100, 0, true, cat({{0x00}, slice(s, 0, 183)})), c);
  a.push(packet(0x100, 1, true, cat({{0x00}, small})), c);  // new section, the old one is cut
  ASSERT_EQ(c.got.size(), 1U);
  EXPECT_EQ(c.got[0].bytes, small);
  EXPECT_EQ(a.stats().dropped, 1U);

  a.push(packet(0x100, 2, true, cat({{0x00}, slice(s, 0, 183)})), c);
  TsPacket bad = packet(0x100, 3, false, slice(s, 183, 184));
  bad.bytes[1] |= 0x80;  // transport_error_indicator
  a.push(bad, c);
  EXPECT_EQ(a.stats().dropped, 2U);
  a.push(packet(0x100, 4, false, slice(s, 367, 33)), c);
  EXPECT_EQ(c.got.size(), 1U);

  // reset() forgets a partial section.
  a.push(packet(0x100, 5, true, cat({{0x00}, slice(s, 0, 183)})), c);
  a.reset();
  a.push(packet(0x100, 9, false, slice(s, 183, 184)), c);
  a.push(packet(0x100, 10, false, slice(s, 367, 33)), c);
  EXPECT_EQ(c.got.size(), 1U);
}

TEST(Section, AdaptationFieldBeforePayload) {
  const Bytes s = make_section(0x02, 60);
  TsPacket p = packet(0x40, 0, true, {});
  p.bytes[3] = 0x30;  // adaptation + payload
  p.bytes[4] = 10;
  p.bytes[5] = 0x00;
  p.bytes[15] = 0x00;  // pointer_field
  std::copy(s.begin(), s.end(), p.bytes.begin() + 16);
  SectionAssembler a;
  Collector c;
  a.push(p, c);
  ASSERT_EQ(c.got.size(), 1U);
  EXPECT_EQ(c.got[0].bytes, s);
}

// Every PAT, PMT and SDT section ffmpeg wrote reassembles with a good CRC.
TEST(Section, FfmpegStreams) {
  for (const char* name : {"h264_aac.ts", "mpts3.ts"}) {
    const auto pkts = twincast::test::read_packets(twincast::test::fixture(name));
    std::map<std::uint16_t, SectionAssembler> asm_by_pid;
    Collector c;
    // Pass 1: the PAT gives the PMT PIDs.
    for (const auto& p : pkts)
      if (p.pid() == kPatPid) asm_by_pid[kPatPid].push(p, c);
    ASSERT_FALSE(c.got.empty()) << name;
    std::vector<std::uint16_t> pmt_pids;
    const Bytes& pat = c.got.front().bytes;
    for (std::size_t i = 8; i + 4 + 4 <= pat.size(); i += 4) {
      const auto number = static_cast<std::uint16_t>((pat[i] << 8) | pat[i + 1]);
      const auto pid = static_cast<std::uint16_t>(((pat[i + 2] & 0x1F) << 8) | pat[i + 3]);
      if (number != 0) pmt_pids.push_back(pid);
    }
    EXPECT_EQ(pmt_pids.size(), std::string(name) == "mpts3.ts" ? 3U : 1U);
    // Pass 2: PMTs and SDT.
    std::map<std::uint16_t, int> sections_per_pid;
    Collector c2;
    for (const auto& p : pkts) {
      const std::uint16_t pid = p.pid();
      if (pid == kSdtPid || std::find(pmt_pids.begin(), pmt_pids.end(), pid) != pmt_pids.end())
        asm_by_pid[pid].push(p, c2);
    }
    for (const auto& g : c2.got) {
      EXPECT_TRUE(g.crc_ok);
      ++sections_per_pid[g.pid];
      if (g.pid == kSdtPid) EXPECT_EQ(g.bytes[0], 0x42);
      else EXPECT_EQ(g.bytes[0], 0x02);
    }
    for (const auto pid : pmt_pids) EXPECT_GT(sections_per_pid[pid], 5) << name << " pid " << pid;
    EXPECT_GT(sections_per_pid[kSdtPid], 0) << name;
    for (auto& [pid, a] : asm_by_pid) {
      EXPECT_EQ(a.stats().crc_errors, 0U) << name << " pid " << pid;
      EXPECT_EQ(a.stats().dropped, 0U) << name << " pid " << pid;
      EXPECT_EQ(a.stats().malformed, 0U) << name << " pid " << pid;
      EXPECT_GT(a.stats().sections, 0U);
    }
  }
}

// Random bytes never crash or read out of bounds (the Sanitize build checks the reads).
TEST(Section, RandomGarbage) {
  std::mt19937 rng(1234);
  SectionAssembler a;
  Collector c;
  std::uint64_t delivered = 0;
  for (int i = 0; i < 200000; ++i) {
    TsPacket p{};
    for (auto& b : p.bytes) b = static_cast<std::uint8_t>(rng());
    p.bytes[0] = kSyncByte;
    if (i % 3 == 0) {  // plausible: payload, small pointer, section-ish header
      p.bytes[3] = static_cast<std::uint8_t>(0x10 | (i & 0x0F));
      p.bytes[4] = static_cast<std::uint8_t>(rng() % 8);
    }
    a.push(p, c);
    delivered += c.got.size();
    c.got.clear();
  }
  EXPECT_EQ(a.stats().packets, 200000U);
  EXPECT_EQ(a.stats().sections, delivered);
  EXPECT_GT(a.stats().malformed + a.stats().dropped, 0U);
}
