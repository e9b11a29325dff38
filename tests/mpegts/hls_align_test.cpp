// SegmenterConfig::align_to_pts: cuts on the PTS grid (multiples of the target), so two
// renditions of the same content (one ffmpeg run, two encodes with key frames forced at the
// same PTS every second) cut at the same PTS however late one of them starts; without the
// option a late starter cuts elsewhere (what the option is for).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "tests_common.hpp"
#include "twincast/mpegts/hls.hpp"

namespace twincast::mpegts::hls {
namespace {

namespace tt = twincast::test;

struct Pair {
  std::vector<TsPacket> hi, lo;
  Pair() {
    const auto dir = tt::temp_dir("hls_align");
    const std::string x264 =
        "-c:v libx264 -preset ultrafast -g 25 -keyint_min 25 -sc_threshold 0 -force_key_frames 'expr:gte(t,n_forced)' "
        "-pix_fmt yuv420p";
    const auto r = tt::run(
        "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=25:duration=15 "
        "-f lavfi -i sine=frequency=440:sample_rate=48000:duration=15 "
        "-filter_complex '[0:v]split=2[a][x];[x]scale=160:120[b]' -map '[a]' -map 1:a " + x264 +
        " -b:v 500k -c:a aac -f mpegts " + tt::shell_quote((dir / "hi.ts").string()) + " -map '[b]' -map 1:a " + x264 +
        " -b:v 150k -c:a aac -f mpegts " + tt::shell_quote((dir / "lo.ts").string()) + " 2>&1");
    if (r.exit_code != 0) throw std::runtime_error("ffmpeg: " + r.out);
    hi = tt::read_packets(dir / "hi.ts");
    lo = tt::read_packets(dir / "lo.ts");
  }
};
const Pair& pair() {
  static const Pair p;
  return p;
}

// First PTS of every delivered segment (after flush()), feeding from packet `from` on.
std::vector<std::uint64_t> cuts(const std::vector<TsPacket>& pkts, std::size_t from, bool aligned, double target = 2.0) {
  SegmenterConfig c;
  c.target_duration_s = target;
  c.align_to_pts = aligned;
  std::vector<std::uint64_t> out;
  Segmenter s(c, [&](Segment&& seg) {
    EXPECT_TRUE(seg.has_first_pts);
    EXPECT_TRUE(seg.starts_with_keyframe);
    out.push_back(seg.first_pts);
  });
  for (std::size_t i = from; i < pkts.size(); i += 7)
    s.push(std::span<const TsPacket>(pkts.data() + i, std::min<std::size_t>(7, pkts.size() - i)), 0);
  s.flush();
  return out;
}

TEST(HlsAlign, RenditionsCutAtTheSamePtsWhateverTheirStart) {
  const Pair& p = pair();
  const auto hi = cuts(p.hi, 0, true);
  ASSERT_GE(hi.size(), 6u);
  // After the first (partial) segment, every cut is the first key frame (1 s GOP) at or
  // after a multiple of 2 s, so consecutive cuts are 2 s apart.
  for (std::size_t i = 1; i < hi.size(); ++i) {
    EXPECT_LT(hi[i] % 180'000, 90'000u) << i << ": " << hi[i];
    if (i > 1) {
      EXPECT_EQ(hi[i] - hi[i - 1], 180'000u) << i;
    }
  }
  // "lo" starting 2.3 s, 3.1 s and 4.7 s in (a third of the packets: anywhere in a GOP).
  for (const std::size_t from : {p.lo.size() * 23 / 150, p.lo.size() * 31 / 150, p.lo.size() * 47 / 150}) {
    const auto lo = cuts(p.lo, from, true);
    ASSERT_GE(lo.size(), 3u);
    const std::set<std::uint64_t> hi_set(hi.begin(), hi.end());
    for (std::size_t i = 1; i < lo.size(); ++i) EXPECT_TRUE(hi_set.count(lo[i])) << "from " << from << ": " << lo[i];
  }
}

TEST(HlsAlign, WithoutTheOptionALateStarterCutsElsewhere) {
  const Pair& p = pair();
  // hi's aligned cuts: the grid.
  const auto hi_aligned = cuts(p.hi, 0, true);
  const std::set<std::uint64_t> grid(hi_aligned.begin() + 1, hi_aligned.end());
  // Late starts anywhere in the first seconds: without the option, a start in an odd second
  // makes every later 2 s segment one second out of step with the grid; with it, never.
  std::size_t off_grid_runs = 0;
  for (std::size_t k = 20; k <= 50; k += 3) {
    const std::size_t from = p.lo.size() * k / 150;
    const auto lo = cuts(p.lo, from, false);
    std::size_t off = 0;
    for (std::size_t i = 1; i < lo.size(); ++i) off += grid.count(lo[i]) == 0 ? 1u : 0u;
    off_grid_runs += off > 0 ? 1u : 0u;
    const auto lo_aligned = cuts(p.lo, from, true);
    for (std::size_t i = 1; i < lo_aligned.size(); ++i) EXPECT_EQ(grid.count(lo_aligned[i]), 1u) << k << ": " << lo_aligned[i];
  }
  EXPECT_GE(off_grid_runs, 3u);
}

TEST(HlsAlign, AlignedTargetOfThreeSeconds) {
  const auto hi = cuts(pair().hi, 0, true, 3.0);
  ASSERT_GE(hi.size(), 4u);
  for (std::size_t i = 1; i < hi.size(); ++i) EXPECT_LT(hi[i] % 270'000, 90'000u) << hi[i];
}

}  // namespace
}  // namespace twincast::mpegts::hls
