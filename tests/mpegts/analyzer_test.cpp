#include "twincast/mpegts/analyzer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>

#include "tests_common.hpp"
#include "twincast/mpegts/psi_tables.hpp"

using namespace twincast::mpegts;
using twincast::test::fixture;
using twincast::test::read_packets;

namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kSec = 1'000'000'000;
constexpr std::uint16_t kVideo = 0x100;  // h264_aac.ts: video (PCR PID), audio, PMT
constexpr std::uint16_t kAudio = 0x101;
constexpr std::uint16_t kPmt = 0x1000;
constexpr std::array<std::size_t, 5> kBursts{1, 3, 4, 32, 33};

std::vector<std::uint64_t> pcr_times(const std::vector<TsPacket>& pkts) {
  PcrClock clock;
  std::vector<std::uint64_t> t(pkts.size());
  for (std::size_t i = 0; i < pkts.size(); ++i) t[i] = clock.push(pkts[i]);
  return t;
}

// Feeds the packets in bursts, each burst at the time of its last packet (times from a
// PcrClock over the same packets).
Report analyze(const std::vector<TsPacket>& pkts, std::size_t burst = 1, const AnalyzerConfig& cfg = {}) {
  const auto t = pcr_times(pkts);
  Analyzer a(cfg);
  for (std::size_t i = 0; i < pkts.size(); i += burst) {
    const std::size_t n = std::min(burst, pkts.size() - i);
    a.push(std::span(pkts.data() + i, n), t[i + n - 1]);
  }
  return a.report();
}

std::uint64_t pid_errors(const Report& r, std::uint16_t pid, Check c) {
  const PidReport* p = r.find_pid(pid);
  return p ? p->errors[static_cast<std::size_t>(c)] : 0;
}

std::string summary(const Report& r) {
  std::string s;
  for (std::size_t i = 0; i < kCheckCount; ++i)
    if (r.checks[i].count != 0)
      s += std::string(check_name(static_cast<Check>(i))) + "=" + std::to_string(r.checks[i].count) + " ";
  return s.empty() ? "no errors" : s;
}

bool is_payload(const TsPacket& p) { return p.has_payload() && p.payload_offset() < kPacketSize; }

// Offset in the packet of the first section byte (PUSI packets only), or 0.
std::size_t section_start(const TsPacket& p) {
  if (!p.payload_unit_start() || p.payload_offset() >= kPacketSize) return 0;
  const std::size_t at = p.payload_offset() + 1 + p.bytes[p.payload_offset()];
  return at < kPacketSize ? at : 0;
}

class AnalyzerFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cbr_ = new std::vector<TsPacket>(read_packets(fixture("h264_aac.ts")));
    cbr_times_ = new std::vector<std::uint64_t>(pcr_times(*cbr_));
  }
  static void TearDownTestSuite() {
    delete cbr_;
    delete cbr_times_;
  }
  static const std::vector<TsPacket>& cbr() { return *cbr_; }
  static std::uint64_t time_of(std::size_t i) { return (*cbr_times_)[i]; }
  static std::vector<TsPacket>* cbr_;
  static std::vector<std::uint64_t>* cbr_times_;
};
std::vector<TsPacket>* AnalyzerFixture::cbr_ = nullptr;
std::vector<std::uint64_t>* AnalyzerFixture::cbr_times_ = nullptr;

}  // namespace

TEST(AnalyzerChecks, NamesAndPriorities) {
  EXPECT_EQ(check_name(Check::kTsSyncLoss), "TS_sync_loss");
  EXPECT_EQ(check_name(Check::kPcrDiscontinuityIndicatorError), "PCR_discontinuity_indicator_error");
  EXPECT_EQ(check_priority(Check::kPidError), 1);
  EXPECT_EQ(check_priority(Check::kTransportError), 2);
  EXPECT_EQ(check_priority(Check::kCatError), 2);
  int p1 = 0, p2 = 0;
  for (std::size_t i = 0; i < kCheckCount; ++i) (check_priority(static_cast<Check>(i)) == 1 ? p1 : p2)++;
  EXPECT_EQ(p1, 6);
  EXPECT_EQ(p2, 7);
}

TEST_F(AnalyzerFixture, PcrClockFollowsThePcr) {
  PcrClock clock;
  std::uint64_t prev = 0, first_pcr = 0;
  bool have = false;
  for (const TsPacket& p : cbr()) {
    const std::uint64_t t = clock.push(p);
    EXPECT_GE(t, prev);
    prev = t;
    if (p.pid() == kVideo && p.has_pcr()) {
      if (!have) first_pcr = p.pcr();
      have = true;
      EXPECT_EQ(t, pcr_delta(first_pcr, p.pcr()) * 1000 / 27);
    }
  }
  EXPECT_EQ(clock.pid(), kVideo);
  EXPECT_NEAR(clock.rate_bps(), 1'500'000.0, 1.0);
  EXPECT_EQ(clock.discontinuities(), 0u);
  EXPECT_NEAR(static_cast<double>(prev), 6.0 * kSec, 0.05 * kSec);
}

TEST_F(AnalyzerFixture, CleanCbrHasNoErrors) {
  for (std::size_t burst : kBursts) {
    const Report r = analyze(cbr(), burst);
    SCOPED_TRACE("burst " + std::to_string(burst) + ": " + summary(r));
    EXPECT_EQ(r.priority_errors(1), 0u);
    EXPECT_EQ(r.count(Check::kCrcError), 0u);
    EXPECT_EQ(r.count(Check::kTransportError), 0u);
    EXPECT_EQ(r.count(Check::kPtsError), 0u);
    EXPECT_EQ(r.count(Check::kPcrDiscontinuityIndicatorError), 0u);
    EXPECT_EQ(r.packets, cbr().size());
    EXPECT_EQ(r.bytes, cbr().size() * kPacketSize);
    ASSERT_EQ(r.programs.services.size(), 1u);
    EXPECT_EQ(r.programs.services[0].service_id, 101);
    ASSERT_EQ(r.pcr.size(), 1u);
    EXPECT_EQ(r.pcr[0].pid, kVideo);
    if (burst == 1) {
      // Packet-accurate times: the PCR timing checks are exact too.
      EXPECT_EQ(r.priority_errors(2), 0u);
      EXPECT_LT(r.pcr[0].max_jitter_ns, 50.0);
      EXPECT_LT(r.pcr[0].max_accuracy_ns, 50.0);
      EXPECT_TRUE(r.pcr[0].constant_rate);
      EXPECT_LE(r.pcr[0].max_interval_ns, 40 * kMs);
      EXPECT_GT(r.pcr[0].pcrs, 300u);
    }
  }
}

TEST(Analyzer, CleanMptsHasNoErrors) {
  const auto pkts = read_packets(fixture("mpts3.ts"));
  const Report r = analyze(pkts);
  SCOPED_TRACE(summary(r));
  EXPECT_EQ(r.priority_errors(1), 0u);
  // Three programs, each with its own PCR PID; two of them are timed by interpolation
  // from the first one's PCRs, which is exact on ffmpeg's constant-rate mux.
  EXPECT_EQ(r.priority_errors(2), 0u);
  ASSERT_EQ(r.programs.services.size(), 3u);
  ASSERT_EQ(r.pcr.size(), 3u);
  for (const auto& p : r.pcr) EXPECT_LT(p.max_jitter_ns, 100.0) << p.pid;
  EXPECT_NEAR(r.bitrate_bps, 3'000'000.0, 0.02 * 3'000'000.0);
  for (std::size_t burst : kBursts) EXPECT_EQ(analyze(pkts, burst).priority_errors(1), 0u) << burst;
}

TEST(Analyzer, VbrFileIsReportedHonestly) {
  // h264_aac_vbr.ts is ffmpeg's default (variable-rate) mux: no null packets and PCRs
  // only about every 76 ms on average, so PCR_repetition_error fires many times (the file
  // really breaks the 40 ms rule; max interval ~168 ms). Times come from PcrClock, which
  // extrapolates at the previous PCR interval's rate; where a VBR interval carries more
  // bytes than that, the time overshoots the next PCR and, as the clock never goes
  // backwards, that PCR's packet is stamped late: a large PCR overall jitter that describes
  // the clock more than the file. PCR accuracy is not judged on a variable-rate stream, so
  // there is no PCR_accuracy_error. Priority 1 is clean.
  const auto pkts = read_packets(fixture("h264_aac_vbr.ts"));
  const Report r = analyze(pkts);
  std::printf("h264_aac_vbr.ts: %s (max PCR interval %.1f ms, max jitter %.0f ns)\n", summary(r).c_str(),
              static_cast<double>(r.pcr.at(0).max_interval_ns) / 1e6, r.pcr.at(0).max_jitter_ns);
  EXPECT_EQ(r.priority_errors(1), 0u) << summary(r);
  EXPECT_GT(r.count(Check::kPcrRepetitionError), 0u);
  EXPECT_EQ(r.count(Check::kCrcError), 0u);
  EXPECT_EQ(r.count(Check::kPcrDiscontinuityIndicatorError), 0u);
  EXPECT_EQ(r.count(Check::kPcrAccuracyError), 0u);
  EXPECT_FALSE(r.pcr.at(0).constant_rate);
}

TEST_F(AnalyzerFixture, DroppedVideoPacketsAreCcErrors) {
  // Drop 5 single payload packets of the video PID, then a run of 3.
  std::vector<TsPacket> pkts;
  std::size_t video_payload = 0;
  int dropped_runs = 0;
  std::size_t run_left = 0;
  for (const TsPacket& p : cbr()) {
    const bool candidate = p.pid() == kVideo && is_payload(p);
    if (candidate) ++video_payload;
    if (candidate && run_left > 0) {
      --run_left;
      continue;
    }
    if (candidate && video_payload % 400 == 0 && dropped_runs < 6) {
      ++dropped_runs;
      if (dropped_runs == 6) run_left = 2;  // this one and the next two
      continue;
    }
    pkts.push_back(p);
  }
  ASSERT_EQ(dropped_runs, 6);
  ASSERT_EQ(pkts.size(), cbr().size() - 8);
  for (std::size_t burst : kBursts) {
    const Report r = analyze(pkts, burst);
    SCOPED_TRACE("burst " + std::to_string(burst) + ": " + summary(r));
    EXPECT_EQ(r.count(Check::kContinuityCountError), 6u);
    EXPECT_EQ(pid_errors(r, kVideo, Check::kContinuityCountError), 6u);
    EXPECT_EQ(r.lost_packets, 8u);
    EXPECT_EQ(r.find_pid(kVideo)->lost_packets, 8u);
    EXPECT_GT(r.mdi_max.mlr, 0.0);
    EXPECT_GE(r.mdi_max.lost, 1u);
    EXPECT_EQ(r.count(Check::kPatError2), 0u);
  }
}

TEST(AnalyzerCc, DuplicatesDiscontinuityAndAdaptationOnly) {
  Analyzer a;
  std::uint64_t t = 0;
  auto send = [&](std::uint8_t cc, bool payload = true, bool disc = false) {
    TsPacket p = make_null_packet();
    p.set_pid(0x200);
    p.bytes[3] = static_cast<std::uint8_t>((payload ? 0x30 : 0x20) | (cc & 0x0F));
    p.bytes[4] = payload ? 1 : 183;
    p.bytes[5] = disc ? 0x80 : 0x00;
    a.push(p, t += kMs);
  };
  send(0);
  send(1);
  send(1);  // one duplicate: fine
  send(2);
  EXPECT_EQ(a.count(Check::kContinuityCountError), 0u);
  send(2);
  send(2);  // a packet a third time
  EXPECT_EQ(a.count(Check::kContinuityCountError), 1u);
  send(5, false);  // adaptation only: not checked, not counted
  send(3);
  EXPECT_EQ(a.count(Check::kContinuityCountError), 1u);
  send(9, true, true);  // discontinuity_indicator: any CC
  send(10);
  EXPECT_EQ(a.count(Check::kContinuityCountError), 1u);
  send(12);  // one lost
  EXPECT_EQ(a.count(Check::kContinuityCountError), 2u);
  send(11);  // out of order: counted as 14 lost (12 -> 11 skips 13..10)
  EXPECT_EQ(a.count(Check::kContinuityCountError), 3u);
  EXPECT_EQ(a.report().lost_packets, 1u + 14u);
  // Null packets are never checked.
  for (int i = 0; i < 5; ++i) a.push(make_null_packet(), t += kMs);
  EXPECT_EQ(a.count(Check::kContinuityCountError), 3u);
}

TEST_F(AnalyzerFixture, CorruptPmtSectionsAreCrcErrors) {
  auto pkts = cbr();
  std::size_t corrupted = 0;
  for (std::size_t i = 0; i < pkts.size() && corrupted < 3; ++i) {
    TsPacket& p = pkts[i];
    if (p.pid() != kPmt || i < 1000 || i % 3 != 0) continue;
    const std::size_t at = section_start(p);
    ASSERT_NE(at, 0u);
    ASSERT_EQ(p.bytes[at], 0x02);
    p.bytes[at + 9] ^= 0x01;  // PCR_PID low byte: framing intact, CRC broken
    ++corrupted;
  }
  ASSERT_EQ(corrupted, 3u);
  for (std::size_t burst : kBursts) {
    const Report r = analyze(pkts, burst);
    SCOPED_TRACE("burst " + std::to_string(burst) + ": " + summary(r));
    EXPECT_EQ(r.count(Check::kCrcError), 3u);
    EXPECT_EQ(pid_errors(r, kPmt, Check::kCrcError), 3u);
    EXPECT_EQ(r.priority_errors(1), 0u);
    ASSERT_EQ(r.programs.services.size(), 1u);
    EXPECT_EQ(r.programs.services[0].pcr_pid, kVideo);  // the corrupt PMTs were not taken
  }
}

TEST_F(AnalyzerFixture, MissingPatForOneSecond) {
  // PID 0 replaced by null packets between 2.5 s and 3.5 s (PATs come every 100 ms).
  auto pkts = cbr();
  std::size_t removed = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    if (pkts[i].pid() == kPatPid && time_of(i) >= 2500 * kMs && time_of(i) < 3500 * kMs) {
      pkts[i] = make_null_packet();
      ++removed;
    }
  }
  ASSERT_GE(removed, 9u);
  for (std::size_t burst : kBursts) {
    const Report r = analyze(pkts, burst);
    SCOPED_TRACE("burst " + std::to_string(burst) + ": " + summary(r));
    const auto& s = r.checks[static_cast<std::size_t>(Check::kPatError2)];
    EXPECT_GE(s.count, 1u);
    EXPECT_LE(s.count, 2u);
    EXPECT_GE(s.first_ns, 2900 * kMs);  // last PAT before the gap at ~2.4-2.5 s, + 0.5 s
    EXPECT_LE(s.last_ns, 3600 * kMs);
    // The PAT packets that were removed show up as one CC gap on PID 0.
    EXPECT_EQ(r.count(Check::kContinuityCountError), removed % 16 != 0 ? 1u : 0u);
    EXPECT_EQ(r.lost_packets, removed % 16);
    EXPECT_EQ(r.count(Check::kPmtError2), 0u);
  }
}

TEST_F(AnalyzerFixture, PcrGapOf200ms) {
  // PCR flags cleared on the PCR PID between 2.0 s and 2.2 s: the next PCR arrives
  // ~220 ms after the previous one.
  auto pkts = cbr();
  for (std::size_t i = 0; i < pkts.size(); ++i)
    if (pkts[i].pid() == kVideo && pkts[i].has_pcr() && time_of(i) >= 2000 * kMs && time_of(i) < 2200 * kMs)
      pkts[i].bytes[5] &= static_cast<std::uint8_t>(~0x10);
  const Report r = analyze(pkts);
  SCOPED_TRACE(summary(r));
  const auto& s = r.checks[static_cast<std::size_t>(Check::kPcrRepetitionError)];
  // Silence: the first after 40 ms + the 100 ms slack of arrival time without a PCR, then
  // one per 40 ms until the next PCR (which is not counted again).
  EXPECT_GE(s.count, 2u);
  EXPECT_LE(s.count, 3u);
  EXPECT_GE(s.first_ns, 2140 * kMs);
  EXPECT_LE(s.first_ns, 2160 * kMs);
  EXPECT_LE(s.last_ns, 2240 * kMs);
  EXPECT_EQ(pid_errors(r, kVideo, Check::kPcrRepetitionError), s.count);
  // TR 101 290: consecutive PCR values more than 100 ms apart are a discontinuity too.
  EXPECT_EQ(r.count(Check::kPcrDiscontinuityIndicatorError), 1u);
  EXPECT_EQ(r.count(Check::kPcrAccuracyError), 0u);
  EXPECT_EQ(r.priority_errors(1), 0u);
}

// Arrival times as a bursty sender delivers them: every packet of each `window_ns` window
// of stream time arrives at once, at the window's end.
std::vector<std::uint64_t> bunched(const std::vector<std::uint64_t>& times, std::uint64_t window_ns) {
  std::vector<std::uint64_t> out(times.size());
  for (std::size_t i = 0; i < times.size(); ++i) out[i] = (times[i] / window_ns + 1) * window_ns;
  return out;
}

Report analyze_at(const std::vector<TsPacket>& pkts, const std::vector<std::uint64_t>& times) {
  Analyzer a;
  for (std::size_t i = 0; i < pkts.size(); ++i) a.push(pkts[i], times[i]);
  return a.report();
}

TEST_F(AnalyzerFixture, BurstyDeliveryIsNotAPcrRepetitionError) {
  // A compliant stream (a PCR every ~20 ms of stream time) delivered in 80-ms bursts, as
  // `ffmpeg -re` or an SRT sender pacing per frame does: PCRs arrive up to 80 ms apart.
  // That is delivery jitter (MDI DF, PCR overall jitter), not PCR_repetition_error.
  const Report r = analyze_at(cbr(), bunched(*cbr_times_, 80 * kMs));
  SCOPED_TRACE(summary(r));
  ASSERT_EQ(r.pcr.size(), 1u);
  EXPECT_GE(r.pcr[0].max_interval_ns, 79 * kMs);     // the arrival gaps are there
  EXPECT_LE(r.pcr[0].max_pcr_interval_ns, 40 * kMs);  // the stream's own are not
  EXPECT_EQ(r.count(Check::kPcrRepetitionError), 0u);
  EXPECT_GT(r.pcr[0].max_jitter_ns, 10.0 * kMs);
  EXPECT_GT(r.mdi_max.df_ms, 40.0);
  EXPECT_EQ(r.priority_errors(1), 0u);
}

TEST_F(AnalyzerFixture, SparsePcrsAreRepetitionErrorsHoweverDelivered) {
  // Only every third PCR kept: ~60 ms between PCR values, a mux breaking the 40 ms rule.
  // One error per such interval, whether the packets arrive on time or in 80-ms bursts.
  auto pkts = cbr();
  std::size_t n_pcr = 0;
  std::uint64_t last = 0, expected = 0, longest = 0;
  for (TsPacket& p : pkts) {
    if (p.pid() != kVideo || !p.has_pcr()) continue;
    if (n_pcr++ % 3 != 0) {
      p.bytes[5] &= static_cast<std::uint8_t>(~0x10);
      continue;
    }
    if (n_pcr > 1) {
      const std::uint64_t gap = pcr_delta(last, p.pcr()) * 1000 / 27;
      longest = std::max(longest, gap);
      if (gap > 40 * kMs) ++expected;
    }
    last = p.pcr();
  }
  ASSERT_GT(expected, 50u);
  ASSERT_LT(longest, 100 * kMs);  // not a PCR discontinuity
  const auto times = pcr_times(pkts);
  for (const std::uint64_t window : {std::uint64_t{0}, 80 * kMs}) {
    const Report r = analyze_at(pkts, window == 0 ? times : bunched(times, window));
    SCOPED_TRACE("window " + std::to_string(window / kMs) + " ms: " + summary(r));
    EXPECT_EQ(r.count(Check::kPcrRepetitionError), expected);
    EXPECT_EQ(r.pcr.at(0).max_pcr_interval_ns, longest);
    EXPECT_EQ(r.count(Check::kPcrDiscontinuityIndicatorError), 0u);
  }
}

namespace {

// A synthetic service arriving on time: one video packet per ms for `seconds` (stream
// time = arrival time), PAT and PMT every 50 ms, a PCR every `interval_ms` carrying
// `first_pcr` + its time; with `indicate`, every PCR but the first has the
// discontinuity_indicator set.
Report spaced_pcrs(std::uint64_t interval_ms, bool indicate, std::uint64_t first_pcr = 0, std::uint64_t seconds = 3) {
  constexpr std::uint16_t kPcrPid = 0x101, kPmtPid = 0x100;
  Service svc;
  svc.service_id = 1;
  svc.pmt_pid = kPmtPid;
  svc.pcr_pid = kPcrPid;
  svc.streams = {{.pid = kPcrPid, .stream_type = 0x1B, .codec = Codec::kH264}};
  TableCarousel pat(kPatPid), pmt(kPmtPid);
  pat.update([](std::uint8_t v) { return build_pat(1, {{1, kPmtPid}}, v); });
  pmt.update([&](std::uint8_t v) { return build_pmt(svc, v); });
  Analyzer a;
  std::vector<TsPacket> tables(4);
  std::uint8_t cc = 0;
  for (std::uint64_t ms = 0; ms < seconds * 1000; ++ms) {
    const std::uint64_t now = ms * kMs;
    if (ms % 50 == 0) {
      for (TableCarousel* c : {&pat, &pmt}) {
        const std::size_t n = c->packetize(tables);
        for (std::size_t i = 0; i < n; ++i) a.push(tables[i], now);
      }
    }
    TsPacket p = make_null_packet();
    p.set_pid(kPcrPid);
    p.set_cc(cc);
    cc = static_cast<std::uint8_t>((cc + 1) & 0x0F);
    if (ms % interval_ms == 0) {
      p.bytes[3] = static_cast<std::uint8_t>(0x30 | p.cc());
      p.bytes[4] = 7;
      p.bytes[5] = 0x10;
      p.set_pcr((first_pcr + ms * 27'000) % kPcrWrap);
      if (indicate && ms > 0) {
        EXPECT_TRUE(p.set_discontinuity(true));
      }
    }
    a.push(p, now);
  }
  return a.report();
}

}  // namespace

TEST(AnalyzerPcrRepetition, OneErrorPerLongIntervalWhateverTheValuesSay) {
  // Up to 100 ms the PCR values give the interval; beyond (a PCR_discontinuity_indicator_
  // error as well) and across a discontinuity_indicator they cannot, and the arrival gap
  // is judged. Each interval over 40 ms is one error, below the silence check's 140 ms.
  for (const std::uint64_t interval : {20u, 40u, 60u, 90u, 110u, 120u, 135u}) {
    for (const bool indicate : {false, true}) {
      const Report r = spaced_pcrs(interval, indicate);
      SCOPED_TRACE("PCR every " + std::to_string(interval) + " ms" + (indicate ? ", discontinuity_indicator" : "") +
                   ": " + summary(r));
      const std::uint64_t intervals = (3000 + interval - 1) / interval - 1;
      EXPECT_EQ(r.count(Check::kPcrRepetitionError), interval > 40 ? intervals : 0u);
      EXPECT_EQ(r.count(Check::kPcrDiscontinuityIndicatorError), interval > 100 && !indicate ? intervals : 0u);
    }
  }
  // Across the 33-bit wrap: nothing.
  const Report w = spaced_pcrs(20, false, kPcrWrap - 27'000ULL * 1500);
  EXPECT_EQ(w.count(Check::kPcrRepetitionError), 0u) << summary(w);
  EXPECT_EQ(w.count(Check::kPcrDiscontinuityIndicatorError), 0u);
}

TEST_F(AnalyzerFixture, PcrJumpWithAndWithoutDiscontinuityIndicator) {
  for (bool indicate : {false, true}) {
    auto pkts = cbr();
    bool first = true;
    for (std::size_t i = 0; i < pkts.size(); ++i) {
      TsPacket& p = pkts[i];
      if (p.pid() != kVideo || !p.has_pcr() || time_of(i) < 3 * kSec) continue;
      p.set_pcr(p.pcr() + 27'000'000);  // +1 s from here on
      if (first && indicate) {
        ASSERT_TRUE(p.set_discontinuity(true));
      }
      first = false;
    }
    PcrClock clock;
    for (const auto& p : pkts) clock.push(p);
    EXPECT_EQ(clock.discontinuities(), 1u);
    for (std::size_t burst : {std::size_t{1}, std::size_t{4}}) {
      const Report r = analyze(pkts, burst);
      SCOPED_TRACE(std::string(indicate ? "indicated" : "not indicated") + ", burst " + std::to_string(burst) + ": " +
                   summary(r));
      EXPECT_EQ(r.count(Check::kPcrDiscontinuityIndicatorError), indicate ? 0u : 1u);
      EXPECT_EQ(r.priority_errors(1), 0u);
      if (burst == 1) {
        EXPECT_EQ(r.count(Check::kPcrAccuracyError), 0u);
      }
    }
  }
}

TEST_F(AnalyzerFixture, ArrivalJitterIsOverallJitterNotAnAccuracyError) {
  // Arrival times that disagree with the PCR by 2 us on every 10th PCR packet, as a network
  // does: PCR_OJ (max_jitter_ns) sees it; PCR_accuracy_error, which TR 101 290 defines on
  // the PCR's byte position, does not.
  const auto& pkts = cbr();
  Analyzer a;
  std::size_t n_pcr = 0, shifted = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    std::uint64_t t = time_of(i);
    if (pkts[i].pid() == kVideo && pkts[i].has_pcr() && ++n_pcr % 10 == 0 && n_pcr > 20) {
      t += 2000;
      ++shifted;
    }
    a.push(pkts[i], t);
  }
  ASSERT_GT(shifted, 10u);
  const Report r = a.report();
  EXPECT_EQ(r.count(Check::kPcrAccuracyError), 0u);
  EXPECT_NEAR(r.pcr.at(0).max_jitter_ns, 2000.0, 200.0);
  EXPECT_TRUE(r.pcr.at(0).constant_rate);
  EXPECT_LT(r.pcr.at(0).max_accuracy_ns, 100.0);
  // The last MDI interval (1 s) had shifted PCRs too: what the API and /metrics show.
  EXPECT_TRUE(a.pcr_last().valid);
  EXPECT_NEAR(a.pcr_last().jitter_ns, 2000.0, 300.0);  // the fit has taken in 10 % of +2 us by now
  EXPECT_TRUE(a.pcr_last().accuracy_measured);
  EXPECT_LT(a.pcr_last().accuracy_ns, 100.0);
  // A constant 20 ppm drift between the clocks is a trend, not jitter.
  Analyzer b;
  for (std::size_t i = 0; i < pkts.size(); ++i)
    b.push(pkts[i], time_of(i) + time_of(i) / 50'000);
  EXPECT_LT(b.report().pcr.at(0).max_jitter_ns, 100.0);
  EXPECT_EQ(b.count(Check::kPcrAccuracyError), 0u);
}

// The PCR values of every 10th PCR of `pkts` on `pid` (after the first 20) moved by `ns`;
// returns how many.
std::size_t shift_pcrs(std::vector<TsPacket>& pkts, std::uint16_t pid, std::int64_t ns) {
  std::size_t n_pcr = 0, shifted = 0;
  for (TsPacket& p : pkts) {
    if (p.pid() != pid || !p.has_pcr() || ++n_pcr % 10 != 0 || n_pcr <= 20) continue;
    p.set_pcr((p.pcr() + kPcrWrap + static_cast<std::uint64_t>(ns * 27 / 1000)) % kPcrWrap);
    ++shifted;
  }
  return shifted;
}

TEST_F(AnalyzerFixture, PcrAccuracyFromBytePositions) {
  // PCR values 2 us off where their byte position puts them on this constant-rate mux:
  // each is one PCR_accuracy_error, however the packets are grouped into bursts, and
  // whatever the arrival times say (here: on time for every packet).
  auto pkts = cbr();
  const std::size_t shifted = shift_pcrs(pkts, kVideo, 2000);
  ASSERT_GT(shifted, 10u);
  for (std::size_t burst : kBursts) {
    Analyzer a;
    for (std::size_t i = 0; i < pkts.size(); i += burst) {
      const std::size_t n = std::min(burst, pkts.size() - i);
      a.push(std::span<const TsPacket>(pkts.data() + i, n), time_of(i + n - 1));
    }
    const Report r = a.report();
    SCOPED_TRACE("burst " + std::to_string(burst) + ": " + summary(r));
    EXPECT_EQ(r.count(Check::kPcrAccuracyError), shifted);
    EXPECT_EQ(pid_errors(r, kVideo, Check::kPcrAccuracyError), shifted);
    EXPECT_NEAR(r.pcr.at(0).max_accuracy_ns, 2000.0, 200.0);
    EXPECT_TRUE(r.pcr.at(0).constant_rate);
    EXPECT_EQ(r.count(Check::kPcrDiscontinuityIndicatorError), 0u);
    EXPECT_TRUE(a.pcr_last().accuracy_measured);
    EXPECT_NEAR(a.pcr_last().accuracy_ns, 2000.0, 300.0);  // the fit has taken in 10 % of +2 us by now
  }
  // 400 ns off is within TR 101 290's +-500 ns.
  auto slight = cbr();
  ASSERT_EQ(shift_pcrs(slight, kVideo, 400), shifted);
  EXPECT_EQ(analyze(slight).count(Check::kPcrAccuracyError), 0u);
}

TEST(Analyzer, PcrAccuracyIsNotJudgedOnAVariableRateStream) {
  // ffmpeg's default VBR mux: the PCR intervals' rates differ by far more than 1 %, so
  // there is no constant-rate line to measure PCR_AC against; moved PCRs change nothing.
  auto pkts = read_packets(fixture("h264_aac_vbr.ts"));
  ASSERT_GE(shift_pcrs(pkts, kVideo, 2000), 5u);
  const auto t = pcr_times(pkts);
  Analyzer a;
  for (std::size_t i = 0; i < pkts.size(); ++i) a.push(pkts[i], t[i]);
  const Report r = a.report();
  EXPECT_EQ(r.count(Check::kPcrAccuracyError), 0u) << summary(r);
  EXPECT_FALSE(r.pcr.at(0).constant_rate);
  EXPECT_TRUE(a.pcr_last().valid);
  EXPECT_FALSE(a.pcr_last().accuracy_measured);
}

TEST_F(AnalyzerFixture, TransportErrorIndicator) {
  auto pkts = cbr();
  std::size_t set = 0;
  for (std::size_t i = 500; i < pkts.size() && set < 5; i += 400) {
    while (!(pkts[i].pid() == kVideo && !pkts[i].has_adaptation() && !pkts[i].payload_unit_start())) ++i;
    pkts[i].bytes[1] |= 0x80;
    ++set;
  }
  ASSERT_EQ(set, 5u);
  for (std::size_t burst : kBursts) {
    const Report r = analyze(pkts, burst);
    SCOPED_TRACE("burst " + std::to_string(burst) + ": " + summary(r));
    EXPECT_EQ(r.count(Check::kTransportError), 5u);
    EXPECT_EQ(pid_errors(r, kVideo, Check::kTransportError), 5u);
    // A TEI packet is not trusted: its payload is lost, so the next one shows a CC gap.
    EXPECT_EQ(r.count(Check::kContinuityCountError), 5u);
    EXPECT_EQ(r.count(Check::kCrcError), 0u);
  }
}

TEST_F(AnalyzerFixture, SyncByteErrorsAndSyncLoss) {
  auto pkts = cbr();
  pkts[1000].bytes[0] = 0x46;
  pkts[2000].bytes[0] = 0x00;
  pkts[2001].bytes[0] = 0xB8;
  pkts[2002].bytes[0] = 0x47 ^ 0x10;
  for (std::size_t burst : kBursts) {
    const Report r = analyze(pkts, burst);
    SCOPED_TRACE("burst " + std::to_string(burst) + ": " + summary(r));
    EXPECT_EQ(r.count(Check::kSyncByteError), 4u);
    EXPECT_EQ(r.count(Check::kTsSyncLoss), 1u);
    EXPECT_TRUE(r.in_sync);
    EXPECT_EQ(r.packets, pkts.size());
  }
}

TEST(AnalyzerSync, LostAfterTwoRegainedAfterFive) {
  Analyzer a;
  std::uint64_t t = 0;
  TsPacket good = make_null_packet();
  TsPacket bad = good;
  bad.bytes[0] = 0x48;
  auto feed = [&](const TsPacket& p, int n) {
    for (int i = 0; i < n; ++i) a.push(p, t += kMs);
  };
  feed(bad, 1);
  feed(good, 1);
  EXPECT_EQ(a.count(Check::kTsSyncLoss), 0u);
  feed(bad, 2);
  EXPECT_EQ(a.count(Check::kTsSyncLoss), 1u);
  EXPECT_FALSE(a.report().in_sync);
  feed(good, 4);
  feed(bad, 2);  // not regained yet: still the same loss
  EXPECT_EQ(a.count(Check::kTsSyncLoss), 1u);
  feed(good, 5);
  EXPECT_TRUE(a.report().in_sync);
  feed(bad, 3);
  EXPECT_EQ(a.count(Check::kTsSyncLoss), 2u);
  EXPECT_EQ(a.count(Check::kSyncByteError), 8u);
  feed(good, 5);
  a.on_aligner_sync_loss();
  EXPECT_EQ(a.count(Check::kTsSyncLoss), 3u);
  a.on_aligner_sync_loss();  // not regained in between
  EXPECT_EQ(a.count(Check::kTsSyncLoss), 3u);
}

TEST_F(AnalyzerFixture, PmtNamingAPidThatNeverAppears) {
  // The audio PID of the PMT never appears.
  std::vector<TsPacket> pkts;
  for (const auto& p : cbr())
    if (p.pid() != kAudio) pkts.push_back(p);
  {
    const Report r = analyze(pkts);  // default period 5 s: once, at ~5 s
    SCOPED_TRACE(summary(r));
    EXPECT_EQ(r.count(Check::kPidError), 1u);
    EXPECT_EQ(pid_errors(r, kAudio, Check::kPidError), 1u);
    EXPECT_GE(r.checks[static_cast<std::size_t>(Check::kPidError)].first_ns, 5 * kSec);
    EXPECT_GE(pid_errors(r, kAudio, Check::kPtsError), 7u);  // every 700 ms
    EXPECT_EQ(pid_errors(r, kVideo, Check::kPtsError), 0u);
  }
  AnalyzerConfig cfg;
  cfg.pid_max_absence_ns = 1 * kSec;
  for (std::size_t burst : kBursts) {
    const Report r = analyze(pkts, burst, cfg);
    SCOPED_TRACE("burst " + std::to_string(burst) + ": " + summary(r));
    EXPECT_GE(r.count(Check::kPidError), 5u);
    EXPECT_LE(r.count(Check::kPidError), 6u);
    EXPECT_EQ(r.count(Check::kPidError), pid_errors(r, kAudio, Check::kPidError));
  }
}

TEST_F(AnalyzerFixture, MissingAndScrambledPmt) {
  auto pkts = cbr();
  for (std::size_t i = 0; i < pkts.size(); ++i)
    if (pkts[i].pid() == kPmt && time_of(i) >= 2 * kSec && time_of(i) < 3 * kSec) pkts[i] = make_null_packet();
  Report r = analyze(pkts);
  EXPECT_GE(pid_errors(r, kPmt, Check::kPmtError2), 1u) << summary(r);
  EXPECT_EQ(r.count(Check::kPatError2), 0u);

  pkts = cbr();
  std::size_t scrambled = 0;
  for (auto& p : pkts)
    if (p.pid() == kPmt && ++scrambled <= 2) p.bytes[3] |= 0x80;
  r = analyze(pkts);
  EXPECT_EQ(pid_errors(r, kPmt, Check::kPmtError2), 2u) << summary(r);
  EXPECT_GE(r.count(Check::kCatError), 1u);  // scrambled packets but no CAT
  EXPECT_EQ(r.count(Check::kCrcError), 0u);  // scrambled sections are not reassembled
}

TEST_F(AnalyzerFixture, PatErrors) {
  auto pkts = cbr();
  std::size_t n = 0;
  for (auto& p : pkts) {
    if (p.pid() != kPatPid || ++n > 2) continue;
    if (n == 1) p.bytes[3] |= 0x40;  // scrambled
    if (n == 2) {
      const std::size_t at = section_start(p);
      ASSERT_NE(at, 0u);
      p.bytes[at] = 0x05;  // table_id != 0 (and a CRC error)
    }
  }
  const Report r = analyze(pkts);
  EXPECT_EQ(r.count(Check::kPatError2), 2u) << summary(r);
  EXPECT_EQ(r.count(Check::kCrcError), 1u);
}

TEST_F(AnalyzerFixture, SectionsFailingTheirCrcAreNotPatsOrPmts) {
  // Every PAT section from 2.0 s to 3.5 s, then every PMT section from 4.0 s to 5.5 s,
  // arrives with a broken CRC: a decoder discards them, so for 1.5 s there is no PAT, then
  // no PMT. Each is a CRC_error, and the missing table a PAT_error_2 (PMT_error_2) after
  // 0.5 s without a good one.
  auto pkts = cbr();
  std::size_t pats = 0, pmts = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    TsPacket& p = pkts[i];
    const bool pat = p.pid() == kPatPid && time_of(i) >= 2000 * kMs && time_of(i) < 3500 * kMs;
    const bool pmt = p.pid() == kPmt && time_of(i) >= 4000 * kMs && time_of(i) < 5500 * kMs;
    if (!pat && !pmt) continue;
    const std::size_t at = section_start(p);
    ASSERT_NE(at, 0u);
    p.bytes[at + 4] ^= 0x01;  // transport_stream_id / program_number low byte: CRC broken
    ++(pat ? pats : pmts);
  }
  ASSERT_GE(pats, 10u);
  ASSERT_GE(pmts, 10u);
  const Report r = analyze(pkts);
  SCOPED_TRACE(summary(r));
  EXPECT_EQ(r.count(Check::kCrcError), pats + pmts);
  const auto& pat = r.checks[static_cast<std::size_t>(Check::kPatError2)];
  EXPECT_GE(pat.count, 2u);
  EXPECT_LE(pat.count, 3u);
  EXPECT_GE(pat.first_ns, 2400 * kMs);
  EXPECT_LE(pat.last_ns, 3600 * kMs);
  const auto& pmt = r.checks[static_cast<std::size_t>(Check::kPmtError2)];
  EXPECT_GE(pmt.count, 2u);
  EXPECT_LE(pmt.count, 3u);
  EXPECT_EQ(pid_errors(r, kPmt, Check::kPmtError2), pmt.count);
  EXPECT_GE(pmt.first_ns, 4400 * kMs);
  EXPECT_LE(pmt.last_ns, 5600 * kMs);
}

TEST_F(AnalyzerFixture, Bitrate) {
  const Report r = analyze(cbr());
  EXPECT_NEAR(r.bitrate_bps, 1'500'000.0, 0.02 * 1'500'000.0);
  EXPECT_NEAR(r.average_bitrate_bps, 1'500'000.0, 0.02 * 1'500'000.0);
  const PidReport* v = r.find_pid(kVideo);
  const PidReport* n = r.find_pid(kNullPid);
  ASSERT_TRUE(v && n);
  // 600 kbit/s of video plus PES/TS overhead; the rest is mostly null packets.
  EXPECT_GT(v->bitrate_bps, 0.35 * r.bitrate_bps);
  EXPECT_LT(v->bitrate_bps, 0.65 * r.bitrate_bps);
  EXPECT_GT(n->bitrate_bps, 0.2 * r.bitrate_bps);
  const auto video_packets = static_cast<std::uint64_t>(
      std::count_if(cbr().begin(), cbr().end(), [](const TsPacket& p) { return p.pid() == kVideo; }));
  EXPECT_EQ(v->packets, video_packets);
  double sum = 0;
  std::uint64_t packets = 0;
  for (const auto& p : r.pids) {
    sum += p.bitrate_bps;
    packets += p.packets;
  }
  EXPECT_NEAR(sum, r.bitrate_bps, 1.0);
  EXPECT_EQ(packets, cbr().size());
}

TEST_F(AnalyzerFixture, MdiDelayFactorAndLoss) {
  // PcrClock cannot know the rate before the second PCR: the ~20 packets up to it share
  // one time, a burst the first intervals' DF shows (mdi_max). The last interval is clean.
  Report r = analyze(cbr(), 1);
  ASSERT_TRUE(r.mdi_last.valid);
  EXPECT_NEAR(r.mdi_last.media_rate_bps, 1'500'000.0, 0.02 * 1'500'000.0);
  EXPECT_LT(r.mdi_last.df_ms, 2.5);  // one packet is 1 ms at 1.5 Mbit/s
  EXPECT_GE(r.mdi_last.df_ms, 0.9);
  EXPECT_LT(r.mdi_max.df_ms, 25.0);
  EXPECT_EQ(r.mdi_max.mlr, 0.0);
  // 33 packets arriving at once: the virtual buffer swings by ~33 ms.
  r = analyze(cbr(), 33);
  EXPECT_GT(r.mdi_last.df_ms, 25.0);
  EXPECT_LT(r.mdi_max.df_ms, 45.0);
  // A configured media rate is used as is.
  AnalyzerConfig cfg;
  cfg.media_rate_bps = 1'500'000;
  r = analyze(cbr(), 1, cfg);
  EXPECT_EQ(r.mdi_last.media_rate_bps, 1'500'000.0);
  EXPECT_LT(r.mdi_last.df_ms, 1.5);
  EXPECT_GT(r.mdi_max.df_ms, 15.0);  // the start-up burst, measured against the true rate
}

TEST_F(AnalyzerFixture, MdiDelayFactorAfterAShortOutage) {
  // 500 ms of the input lost on the way (2.2 s to 2.7 s), every other packet on time. The
  // MDI interval holding the gap has a DF of about the gap (the buffer ran dry); the next
  // ones are as clean as those before it. Their drain rate is the TS rate, not the half of
  // it that arrived in the interval with the gap (RFC 4445's DF is against the media rate).
  const auto& pkts = cbr();
  Analyzer a;
  std::size_t i = 0;
  const auto feed_until = [&](std::uint64_t t) {
    for (; i < pkts.size() && time_of(i) < t; ++i)
      if (time_of(i) < 2200 * kMs || time_of(i) >= 2700 * kMs) a.push(pkts[i], time_of(i));
  };
  feed_until(2100 * kMs);
  ASSERT_TRUE(a.mdi_last().valid);
  EXPECT_LT(a.mdi_last().df_ms, 2.5);
  feed_until(3500 * kMs);  // the interval with the gap has completed
  EXPECT_GT(a.mdi_last().df_ms, 400.0);
  for (const std::uint64_t until : {4500 * kMs, 5500 * kMs}) {
    feed_until(until);
    SCOPED_TRACE("interval before " + std::to_string(until / kMs) + " ms");
    ASSERT_TRUE(a.mdi_last().valid);
    EXPECT_LT(a.mdi_last().df_ms, 2.5) << "a clean interval after a 500 ms outage";
    EXPECT_NEAR(a.mdi_last().media_rate_bps, 1'500'000.0, 0.02 * 1'500'000.0);
  }
}

TEST_F(AnalyzerFixture, MdiDelayFactorOfAnOutageAcrossAnIntervalEnd) {
  // The same 500 ms outage, from 2.7 s to 3.2 s: the interval from ~2 s ends during it, so
  // the first packet after it closes that interval. The buffer ran dry for 500 ms before
  // that packet arrived: the closing interval's DF shows it, wherever the boundary fell.
  const auto& pkts = cbr();
  Analyzer a;
  std::size_t i = 0;
  const auto feed_until = [&](std::uint64_t t) {
    for (; i < pkts.size() && time_of(i) < t; ++i)
      if (time_of(i) < 2700 * kMs || time_of(i) >= 3200 * kMs) a.push(pkts[i], time_of(i));
  };
  feed_until(2600 * kMs);
  ASSERT_TRUE(a.mdi_last().valid);
  EXPECT_LT(a.mdi_last().df_ms, 2.5);
  feed_until(3500 * kMs);  // the interval [2 s, 3.2 s) has completed
  ASSERT_TRUE(a.mdi_last().valid);
  EXPECT_NEAR(a.mdi_last().df_ms, 500.0, 10.0) << "an outage of 500 ms";
  EXPECT_GE(a.report().mdi_max.df_ms, 490.0);
  feed_until(4500 * kMs);
  EXPECT_LT(a.mdi_last().df_ms, 2.5);
}

TEST(AnalyzerRobustness, AllPidsAndRandomBytes) {
  std::mt19937 rng(1234);
  std::vector<TsPacket> pkts(8192 * 3);
  std::size_t bad_sync = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    for (auto& b : pkts[i].bytes) b = static_cast<std::uint8_t>(rng());
    if (i % 7 != 0) {
      pkts[i].bytes[0] = kSyncByte;
      pkts[i].bytes[1] &= 0x7F;  // no TEI, so the PIDs are counted
      pkts[i].set_pid(static_cast<std::uint16_t>(i % 8192));
    }
    bad_sync += pkts[i].bytes[0] != kSyncByte;
  }
  for (std::size_t burst : kBursts) {
    Analyzer a;
    std::uint64_t t = 0;
    for (std::size_t i = 0; i < pkts.size(); i += burst) {
      const std::size_t n = std::min(burst, pkts.size() - i);
      a.push(std::span(pkts.data() + i, n), t += 50'000);
    }
    const Report r = a.report();
    EXPECT_EQ(r.packets, pkts.size());
    EXPECT_EQ(r.count(Check::kSyncByteError), bad_sync);
    std::uint64_t per_pid = 0;
    for (const auto& p : r.pids) per_pid += p.packets;
    EXPECT_EQ(per_pid, pkts.size() - bad_sync);
    EXPECT_GT(r.pids.size(), 8000u);
    EXPECT_LE(r.count(Check::kContinuityCountError), pkts.size());
    EXPECT_LE(r.count(Check::kTransportError), pkts.size());
  }
}

TEST(AnalyzerRobustness, TimeGoingBackwardsAndNoPackets) {
  Analyzer a;
  EXPECT_EQ(a.report().packets, 0u);
  EXPECT_FALSE(a.report().mdi_last.valid);
  TsPacket p = make_null_packet();
  a.push(p, 10 * kSec);
  a.push(p, 5 * kSec);
  a.push(p, 0);
  const Report r = a.report();
  EXPECT_EQ(r.packets, 3u);
  EXPECT_EQ(r.now_ns, 10 * kSec);
}

TEST_F(AnalyzerFixture, Throughput) {
  // Noted next to Analyzer::push(). Best of several rounds (the machine is shared); the
  // file is replayed with steadily increasing times (one CC gap and one PCR jump per
  // replay, negligible). "media only" leaves out the PSI packets, whose sections go
  // through SectionAssembler and libdvbpsi.
  std::vector<TsPacket> media;
  for (const auto& p : cbr())
    if (p.pid() == kVideo || p.pid() == kAudio || p.pid() == kNullPid) media.push_back(p);
  for (const std::vector<TsPacket>* pkts : {&cbr(), static_cast<const std::vector<TsPacket>*>(&media)}) {
    Analyzer a;
    std::uint64_t t = 0;
    double best = 1e9;
    for (int round = 0; round < 7; ++round) {
      const int reps = 30;
      const auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < reps; ++k)
        for (const TsPacket& p : *pkts) a.push(p, t += 1'002'667);
      const auto t1 = std::chrono::steady_clock::now();
      const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()) /
                        static_cast<double>(reps * pkts->size());
      best = std::min(best, ns);
    }
    std::printf("analyze %s: %.2f ns/packet (best of 7 rounds of %zu packets)\n",
                pkts == &media ? "media only" : "h264_aac.ts", best, 30 * pkts->size());
    EXPECT_EQ(a.report().packets, 7 * 30 * pkts->size());
  }
}

TEST(AnalyzerPeer, AverageBitrateAgreesWithFfprobe) {
  for (const char* name : {"h264_aac.ts", "mpts3.ts", "two_audio.ts"}) {
    const auto path = fixture(name);
    const auto out = twincast::test::run("ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 " +
                                         twincast::test::shell_quote(path.string()));
    ASSERT_EQ(out.exit_code, 0) << out.out;
    const double ffprobe_bps = std::stod(out.out);
    const Report r = analyze(read_packets(path));
    EXPECT_NEAR(r.average_bitrate_bps, ffprobe_bps, 0.01 * ffprobe_bps) << name;
    EXPECT_NEAR(r.bitrate_bps, ffprobe_bps, 0.02 * ffprobe_bps) << name;
    EXPECT_EQ(r.priority_errors(1), 0u) << name << ": " << summary(r);
  }
}
