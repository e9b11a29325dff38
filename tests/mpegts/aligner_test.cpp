#include "twincast/mpegts/aligner.hpp"

#include <gtest/gtest.h>

#include <random>

#include "tests_common.hpp"

using namespace twincast::mpegts;

namespace {
std::vector<std::uint8_t> make_stream(std::size_t unit, std::size_t n, std::size_t garbage_front = 0) {
  std::mt19937 rng(7);
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < garbage_front; ++i) out.push_back(static_cast<std::uint8_t>(rng() | 1) == 0x47 ? 0 : static_cast<std::uint8_t>(rng() & 0x3F));
  for (std::size_t i = 0; i < n; ++i) {
    if (unit == 192) for (int k = 0; k < 4; ++k) out.push_back(0xAA);
    TsPacket p = make_null_packet();
    p.set_pid(static_cast<std::uint16_t>(i % 8000));
    p.set_cc(static_cast<std::uint8_t>(i));
    out.insert(out.end(), p.bytes.begin(), p.bytes.end());
    if (unit == 204) for (int k = 0; k < 16; ++k) out.push_back(0x55);
  }
  return out;
}

struct Collected {
  std::vector<std::uint16_t> pids;
};

Collected feed(PacketAligner& a, const std::vector<std::uint8_t>& s, std::size_t chunk) {
  Collected c;
  auto sink = [&](const TsPacket& p) { c.pids.push_back(p.pid()); };
  for (std::size_t i = 0; i < s.size(); i += chunk)
    a.push(std::span(s.data() + i, std::min(chunk, s.size() - i)), sink);
  a.flush(sink);
  return c;
}
}  // namespace

class AlignerUnits : public ::testing::TestWithParam<std::tuple<std::size_t, std::size_t>> {};

TEST_P(AlignerUnits, FindsEveryPacketWhateverTheChunking) {
  const auto [unit, chunk] = GetParam();
  const auto s = make_stream(unit, 100);
  PacketAligner a;
  const auto c = feed(a, s, chunk);
  ASSERT_EQ(c.pids.size(), 100u) << "unit " << unit << " chunk " << chunk;
  for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ(c.pids[i], i % 8000);
  EXPECT_EQ(a.unit_size(), unit);
  EXPECT_EQ(a.stats().sync_losses, 0u);
  // 192: the 4-byte prefix of the first packet is not part of any packet; the
  // Reed-Solomon trailer of 204-byte units belongs to its packet's unit.
  const std::uint64_t expect_skipped = unit == 192 ? 4 : 0;
  EXPECT_EQ(a.stats().skipped_bytes, expect_skipped);
}

INSTANTIATE_TEST_SUITE_P(All, AlignerUnits,
                         ::testing::Combine(::testing::Values(188u, 192u, 204u),
                                            ::testing::Values(1u, 7u, 188u, 1316u, 4096u, 100000u)));

TEST(Aligner, ResynchronisesAfterGarbageAndCountsIt) {
  auto s = make_stream(188, 50, 333);
  const auto tail = make_stream(188, 50);
  // 100 bytes of garbage in the middle (no 0x47 in it).
  s.insert(s.end(), 100, 0x00);
  s.insert(s.end(), tail.begin(), tail.end());
  PacketAligner a;
  const auto c = feed(a, s, 1316);
  EXPECT_EQ(c.pids.size(), 100u);
  EXPECT_EQ(a.stats().skipped_bytes, 433u);
  EXPECT_EQ(a.stats().sync_losses, 1u);
}

// Where the sync byte of packet i lies in make_stream(unit, ...).
std::size_t sync_at(std::size_t unit, std::size_t i) { return (unit == 192 ? 4 : 0) + i * unit; }

// TR 101 290 1.1/1.2: one corrupted sync byte while in sync is a Sync_byte_error, not a
// loss of sync. The packet goes to the sink as it is (byte 0 not 0x47), the lock is kept,
// whether the packet comes whole in one push, straddles two or ends a push exactly.
class AlignerBadSync : public ::testing::TestWithParam<std::tuple<std::size_t, std::size_t>> {};

TEST_P(AlignerBadSync, OneCorruptedSyncByteKeepsTheLockAndThePacket) {
  const auto [unit, chunk] = GetParam();
  auto s = make_stream(unit, 40);
  s[sync_at(unit, 20)] = 0x46;
  PacketAligner a;
  std::vector<std::uint8_t> first_bytes;
  Collected c;
  auto sink = [&](const TsPacket& p) {
    c.pids.push_back(p.pid());
    first_bytes.push_back(p.bytes[0]);
  };
  for (std::size_t i = 0; i < s.size(); i += chunk) a.push(std::span(s.data() + i, std::min(chunk, s.size() - i)), sink);
  a.flush(sink);
  ASSERT_EQ(c.pids.size(), 40u) << "unit " << unit << " chunk " << chunk;
  for (std::size_t i = 0; i < 40; ++i) {
    EXPECT_EQ(c.pids[i], i % 8000);
    EXPECT_EQ(first_bytes[i], i == 20 ? 0x46 : kSyncByte) << i;
  }
  EXPECT_EQ(a.stats().sync_losses, 0u);
  EXPECT_EQ(a.stats().sync_byte_errors, 1u);
  EXPECT_EQ(a.stats().skipped_bytes, unit == 192 ? 4u : 0u);
}

// 1, 7 and 1316 split the stream anywhere (the carry); 100000 is the direct path.
INSTANTIATE_TEST_SUITE_P(All, AlignerBadSync,
                         ::testing::Combine(::testing::Values(188u, 192u, 204u), ::testing::Values(1u, 7u, 1316u, 100000u)));

TEST(Aligner, CorruptedPacketEndingAPushWaitsForTheNextSyncByte) {
  for (const std::size_t unit : {188u, 192u, 204u}) {
    auto s = make_stream(unit, 40);
    s[sync_at(unit, 20)] = 0x46;
    const std::size_t cut = sync_at(unit, 21);  // the first push ends with the corrupted packet
    PacketAligner a;
    std::vector<std::uint8_t> first_bytes;
    auto sink = [&](const TsPacket& p) { first_bytes.push_back(p.bytes[0]); };
    a.push(std::span(s.data(), cut), sink);
    EXPECT_EQ(first_bytes.size(), 20u) << unit;  // not yet: the next sync byte decides
    a.push(std::span(s.data() + cut, s.size() - cut), sink);
    a.flush(sink);
    ASSERT_EQ(first_bytes.size(), 40u) << unit;
    EXPECT_EQ(first_bytes[20], 0x46) << unit;
    EXPECT_EQ(a.stats().sync_losses, 0u) << unit;
    EXPECT_EQ(a.stats().sync_byte_errors, 1u) << unit;
  }
}

// Two corrupted sync bytes in a row: the lock is lost (a TS_sync_loss), as before; the two
// packets are skipped and the lock is found again on the next ones. (When a push ends in the
// packet before them, that one goes too: it cannot be told from one glued across a lost
// SRT message.)
TEST(Aligner, TwoCorruptedSyncBytesInARowLoseTheLock) {
  for (const std::size_t unit : {188u, 192u, 204u}) {
    for (const std::size_t chunk : {7u, 1316u, 100000u}) {
      auto s = make_stream(unit, 40);
      s[sync_at(unit, 20)] = 0x46;
      s[sync_at(unit, 21)] = 0x00;
      PacketAligner a;
      const auto c = feed(a, s, chunk);
      ASSERT_GE(c.pids.size(), 37u) << unit << " " << chunk;
      EXPECT_LE(c.pids.size(), 38u) << unit << " " << chunk;
      if (chunk == 100000u) {
        EXPECT_EQ(c.pids.size(), 38u) << unit;
      }
      for (std::size_t i = 0; i < 18; ++i) EXPECT_EQ(c.pids[c.pids.size() - 18 + i], 22 + i);
      for (std::size_t i = 0; i < 19; ++i) EXPECT_EQ(c.pids[i], i);
      EXPECT_EQ(a.stats().sync_losses, 1u) << unit << " " << chunk;
      EXPECT_EQ(a.stats().sync_byte_errors, 0u) << unit << " " << chunk;
    }
  }
}

// A corrupted sync byte on the last packet: nothing follows to vouch for it, so it is not
// taken for a packet (counted as skipped).
TEST(Aligner, CorruptedLastPacketIsSkippedAtFlush) {
  auto s = make_stream(188, 10);
  s[sync_at(188, 9)] = 0x46;
  PacketAligner a;
  const auto c = feed(a, s, 100000);
  EXPECT_EQ(c.pids.size(), 9u);
  EXPECT_EQ(a.stats().skipped_bytes, 188u);
  EXPECT_EQ(a.stats().sync_byte_errors, 0u);
}

TEST(Aligner, RandomBytesNeverYieldBogusLocksForLong) {
  std::mt19937 rng(1);
  std::vector<std::uint8_t> s(1 << 20);
  for (auto& b : s) b = static_cast<std::uint8_t>(rng());
  PacketAligner a;
  const auto c = feed(a, s, 1316);
  // Three sync bytes at the right distance happen by chance about once every 2^24
  // offsets per unit size; allow a handful.
  EXPECT_LT(c.pids.size(), 10u);
  EXPECT_GT(a.stats().skipped_bytes, s.size() - 10 * 204);
}

TEST(Aligner, ShortStreamIsFlushed) {
  const auto s = make_stream(188, 2);
  PacketAligner a;
  const auto c = feed(a, s, 1000);
  EXPECT_EQ(c.pids.size(), 2u);
}

TEST(Aligner, RealFileThroughOddChunks) {
  const auto bytes = twincast::test::read_file(twincast::test::fixture("mpts3.ts"));
  PacketAligner a;
  const auto c = feed(a, bytes, 1333);
  EXPECT_EQ(c.pids.size(), bytes.size() / kPacketSize);
  EXPECT_EQ(a.stats().skipped_bytes, 0u);
}
