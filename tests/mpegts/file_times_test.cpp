#include "twincast/mpegts/file_times.hpp"

#include <gtest/gtest.h>

#include "tests_common.hpp"

using namespace twincast::mpegts;
using twincast::test::fixture;
using twincast::test::read_packets;

TEST(FileTimes, ConstantRateFilePutsPacketsOnTheLine) {
  const auto pkts = read_packets(fixture("h264_aac.ts"));  // ffmpeg -muxrate 1500k
  const FileTimes t = file_times(pkts);
  ASSERT_EQ(t.ns.size(), pkts.size());
  EXPECT_TRUE(t.constant_rate);
  EXPECT_NEAR(t.rate_bps, 1'500'000.0, 15'000.0);
  EXPECT_EQ(t.n_discontinuities, 0u);
  // One packet is 188*8 bits at 1.5 Mbit/s = ~1.0027 ms.
  EXPECT_NEAR(static_cast<double>(t.ns[1001] - t.ns[1000]), 1'002'666.0, 20'000.0);
  EXPECT_NEAR(static_cast<double>(t.ns.back()) / 1e9, 6.0, 0.1);
}

TEST(FileTimes, VariableRateFileIsExactAtEachPcr) {
  const auto pkts = read_packets(fixture("h264_aac_vbr.ts"));
  const FileTimes t = file_times(pkts);
  EXPECT_FALSE(t.constant_rate);
  std::uint64_t first_pcr = 0;
  bool have = false;
  std::size_t checked = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    if (pkts[i].pid() != t.pcr_pid || !pkts[i].has_pcr()) continue;
    if (!have) {
      first_pcr = pkts[i].pcr();
      have = true;
    }
    const double expect_ns = static_cast<double>(pcr_delta(first_pcr, pkts[i].pcr())) * 1000.0 / 27.0;
    EXPECT_NEAR(static_cast<double>(t.ns[i]), expect_ns, 1000.0) << "packet " << i;
    ++checked;
  }
  EXPECT_GT(checked, 20u);
  for (std::size_t i = 1; i < t.ns.size(); ++i) ASSERT_GE(t.ns[i], t.ns[i - 1]);
}

TEST(FileTimes, ConcatenatedFilesContinueAcrossThePcrJump) {
  auto pkts = read_packets(fixture("h264_aac.ts"));
  const std::size_t half = pkts.size();
  const auto again = pkts;
  pkts.insert(pkts.end(), again.begin(), again.end());  // PCR jumps back by 6 s
  const FileTimes t = file_times(pkts);
  EXPECT_EQ(t.n_discontinuities, 1u);
  for (std::size_t i = 1; i < t.ns.size(); ++i) ASSERT_GE(t.ns[i], t.ns[i - 1]);
  EXPECT_NEAR(static_cast<double>(t.ns.back()) / 1e9, 12.0, 0.2);
  EXPECT_NEAR(static_cast<double>(t.ns[half] - t.ns[half - 1]), 1'002'666.0, 100'000.0) << "no jump at the seam";
}

TEST(FileTimes, NoPcrMeansNoClock) {
  std::vector<TsPacket> pkts(100, make_null_packet());
  const FileTimes t = file_times(pkts);
  EXPECT_EQ(t.pcr_pid, kNullPid);
  EXPECT_EQ(t.ns, std::vector<std::uint64_t>(100, 0));
  EXPECT_TRUE(file_times({}).ns.empty());
}
