// The TR 101 290 / MDI analyzer on faults other tests do not make: a corrupt TOT, an input
// outage, one packet lost in a constant-rate mux.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "twincast/mpegts/analyzer.hpp"
#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/psi_tables.hpp"

using namespace twincast::mpegts;

namespace {

constexpr std::uint64_t kMs = 1'000'000;

// A payload-only packet on `pid` carrying one section from offset 5 (pointer_field 0),
// 0xFF stuffing after it.
TsPacket section_packet(std::uint16_t pid, std::uint8_t cc, const std::vector<std::uint8_t>& section) {
  TsPacket p = make_null_packet();
  p.set_pid(pid);
  p.set_payload_unit_start(true);
  p.bytes[3] = static_cast<std::uint8_t>(0x10 | (cc & 0x0F));
  p.bytes[4] = 0x00;  // pointer_field
  std::copy(section.begin(), section.end(), p.bytes.begin() + 5);
  return p;
}

// A TOT (EN 300 468 5.2.6): table_id 0x73, section_syntax_indicator 0, but with a CRC_32.
std::vector<std::uint8_t> make_tot() {
  std::vector<std::uint8_t> s{0x73, 0x70, 0x00,                  // length patched below
                              0xE7, 0x4C, 0x12, 0x34, 0x56,     // UTC_time
                              0xF0, 0x00};                      // descriptors_loop_length 0
  s.resize(s.size() + 4);
  const std::size_t len = s.size() - 3;
  s[1] = static_cast<std::uint8_t>(0x70 | (len >> 8));
  s[2] = static_cast<std::uint8_t>(len & 0xFF);
  const std::uint32_t crc = crc32_mpeg(std::span(s.data(), s.size() - 4));
  s[s.size() - 4] = static_cast<std::uint8_t>(crc >> 24);
  s[s.size() - 3] = static_cast<std::uint8_t>(crc >> 16);
  s[s.size() - 2] = static_cast<std::uint8_t>(crc >> 8);
  s[s.size() - 1] = static_cast<std::uint8_t>(crc);
  return s;
}

}  // namespace

// TR 101 290 CRC_error covers "CAT, PAT, PMT, NIT, EIT, BAT, SDT or TOT". The TOT carries a
// CRC_32 although its section_syntax_indicator is 0; a corrupt TOT must be a CRC_error.
TEST(AnalyzerFaults, CorruptTotIsACrcError) {
  const auto good = make_tot();
  ASSERT_TRUE(section_crc_ok(good));
  auto bad = good;
  bad[5] ^= 0x01;  // UTC_time changed, CRC not updated
  Analyzer a;
  std::uint64_t t = 0;
  a.push(section_packet(0x14, 0, good), t += kMs);
  EXPECT_EQ(a.count(Check::kCrcError), 0u);
  a.push(section_packet(0x14, 1, bad), t += kMs);
  EXPECT_EQ(a.count(Check::kCrcError), 1u);
}

// RFC 4445 DF after an outage: 3 s of a perfectly regular 1 packet/ms stream, 10 s of
// nothing, then the same regular stream again. The intervals after the outage are as
// clean as those before (DF ~1 packet time); they must not be measured against a drain
// rate averaged over the outage.
TEST(AnalyzerFaults, MdiDelayFactorAfterAnOutage) {
  Analyzer a;
  const TsPacket p = make_null_packet();
  for (std::uint64_t ms = 0; ms < 3000; ++ms) a.push(p, ms * kMs);
  ASSERT_TRUE(a.mdi_last().valid);
  const double before = a.mdi_last().df_ms;
  EXPECT_LT(before, 3.0);
  // The outage: 10 s without packets. Then 1.5 s of the same stream: the interval
  // [13 s, 14 s) completes.
  for (std::uint64_t ms = 13000; ms < 14500; ++ms) a.push(p, ms * kMs);
  const Mdi& m = a.mdi_last();
  ASSERT_TRUE(m.valid);
  EXPECT_NEAR(m.media_rate_bps, 1'504'000.0, 0.05 * 1'504'000.0);
  EXPECT_LT(m.df_ms, 3.0) << "a clean interval after an outage reported DF " << m.df_ms << " ms";
}

namespace {

// A clear service, one data packet per ms on PID 0x100 (no PCR, no PES to check), PAT and
// PMT every 100 ms. From 3 s on, the data is scrambled and a CAT comes every 100 ms, 50 ms
// after the first scrambled packet; with `broken_cat`, every CAT fails its CRC.
Report scrambling_starts(bool broken_cat) {
  constexpr std::uint16_t kData = 0x100, kPmtPid = 0x1000;
  Service svc;
  svc.service_id = 1;
  svc.pmt_pid = kPmtPid;
  svc.streams = {{.pid = kData, .stream_type = 0x06, .codec = Codec::kPrivateData}};
  TableCarousel pat(kPatPid), pmt(kPmtPid), cat(kCatPid);
  pat.update([](std::uint8_t v) { return build_pat(1, {{1, kPmtPid}}, v); });
  pmt.update([&](std::uint8_t v) { return build_pmt(svc, v); });
  cat.update([](std::uint8_t v) { return build_cat({{.tag = 0x09, .data = {0x0B, 0x00, 0xE1, 0x00}}}, v); });
  Analyzer a;
  std::vector<TsPacket> tables(4);
  std::uint8_t cc = 0;
  for (std::uint64_t ms = 0; ms < 6000; ++ms) {
    const std::uint64_t now = ms * kMs;
    if (ms % 100 == 0) {
      for (TableCarousel* c : {&pat, &pmt}) {
        const std::size_t n = c->packetize(tables);
        for (std::size_t i = 0; i < n; ++i) a.push(tables[i], now);
      }
    }
    if (ms >= 3050 && ms % 100 == 50) {
      EXPECT_EQ(cat.packetize(tables), 1u);
      if (broken_cat) tables[0].bytes[16] ^= 0x01;  // CA_system_id: CRC broken
      a.push(tables[0], now);
    }
    TsPacket p = make_null_packet();
    p.set_pid(kData);
    p.set_cc(cc);
    cc = static_cast<std::uint8_t>((cc + 1) & 0x0F);
    if (ms >= 3000) p.bytes[3] |= 0x80;
    a.push(p, now);
  }
  return a.report();
}

}  // namespace

// TR 101 290 CAT_error: scrambled packets but no CAT. A service whose scrambling starts
// after 3 s of clear stream, its CAT 50 ms later, has had a CAT all along as far as its
// scrambled packets go: no CAT_error. A CAT that fails its CRC is not a CAT.
TEST(AnalyzerFaults, CatErrorOnlyWhenScrambledPacketsWentWithoutACat) {
  Report r = scrambling_starts(false);
  EXPECT_EQ(r.count(Check::kCatError), 0u);
  EXPECT_TRUE(r.programs.has_cat);
  EXPECT_EQ(r.count(Check::kCrcError), 0u);
  EXPECT_EQ(r.priority_errors(1), 0u);

  r = scrambling_starts(true);
  EXPECT_EQ(r.count(Check::kCrcError), 30u);
  EXPECT_GE(r.count(Check::kCatError), 5u);  // about one per 0.5 s over 3 s
  EXPECT_LE(r.count(Check::kCatError), 6u);
}

namespace {

// A constant-rate service at 10 packets/ms (15 Mbit/s), every packet arriving exactly on
// time: slot i at i * 100 us. PAT and PMT every 100 ms, a PCR on the video PID every
// 30 ms with the value of its slot's time (a perfect mux: PCR_AC 0); with `audio`, every
// 10th slot (i % 10 == 3) carries an audio PID. Slots in `drop` are lost on the way (not
// pushed).
Analyzer& cbr_15mbps(Analyzer& a, std::uint64_t slots, const std::vector<std::uint64_t>& drop, bool audio = false) {
  constexpr std::uint16_t kVid = 0x100, kAud = 0x101, kPmtPid = 0x1000;
  Service svc;
  svc.service_id = 1;
  svc.pmt_pid = kPmtPid;
  svc.pcr_pid = kVid;
  svc.streams = {{.pid = kVid, .stream_type = 0x1B, .codec = Codec::kH264}};
  if (audio) svc.streams.push_back({.pid = kAud, .stream_type = 0x0F, .codec = Codec::kAac});
  TableCarousel pat(kPatPid), pmt(kPmtPid);
  pat.update([](std::uint8_t v) { return build_pat(1, {{1, kPmtPid}}, v); });
  pmt.update([&](std::uint8_t v) { return build_pmt(svc, v); });
  std::vector<TsPacket> table(4);
  std::uint8_t cc_v = 0, cc_a = 0;
  for (std::uint64_t i = 0; i < slots; ++i) {
    TsPacket p = make_null_packet();
    if (i % 1000 == 0 || i % 1000 == 1) {
      EXPECT_EQ((i % 1000 == 0 ? pat : pmt).packetize(table), 1u);
      p = table[0];
    } else if (audio && i % 10 == 3) {
      p.set_pid(kAud);
      p.set_cc(cc_a);
      cc_a = static_cast<std::uint8_t>((cc_a + 1) & 0x0F);
    } else {
      p.set_pid(kVid);
      if (i % 300 == 5) {
        p.bytes[3] = 0x30;
        p.bytes[4] = 7;
        p.bytes[5] = 0x10;
        p.set_pcr(i * 2700);  // 100 us per slot
      }
      p.set_cc(cc_v);
      cc_v = static_cast<std::uint8_t>((cc_v + 1) & 0x0F);
    }
    if (std::find(drop.begin(), drop.end(), i) != drop.end()) continue;
    a.push(p, i * 100'000);
  }
  return a;
}

}  // namespace

// One video packet lost on the network (a CC error, one packet lost) in a perfect
// constant-rate mux. TR 101 290's PCR_AC is the mux's PCR against its byte position; the
// lost packet shifts every later byte position by one packet (100 us here) while the
// interval's rate moves by only 1/300 (inside the 1 % constant-rate tolerance), so every
// later PCR is judged ~100 us "inaccurate" until the fit forgets: one lost packet becomes
// hundreds of PCR_accuracy_errors on a mux whose PCRs are exact.
TEST(AnalyzerFaults, OneLostPacketIsNotAStormOfPcrAccuracyErrors) {
  {
    Analyzer clean;
    cbr_15mbps(clean, 60'000, {});
    const Report r = clean.report();
    ASSERT_EQ(r.priority_errors(1), 0u);
    ASSERT_EQ(r.count(Check::kPcrAccuracyError), 0u);
    ASSERT_TRUE(r.pcr.at(0).constant_rate);
  }
  Analyzer a;
  cbr_15mbps(a, 60'000, {30'002});  // a video payload packet at 3 s
  const Report r = a.report();
  EXPECT_EQ(r.count(Check::kContinuityCountError), 1u);
  EXPECT_EQ(r.lost_packets, 1u);
  EXPECT_EQ(r.count(Check::kPcrAccuracyError), 0u) << "max PCR_AC " << r.pcr.at(0).max_accuracy_ns << " ns";
}

// The first MDI interval is the one that spans the outage (50 ms of stream, then 3 s of
// nothing). No drain rate is known yet; the outage interval's rate (a 60th of the
// stream's) must not become the drain rate of the next, clean, interval (its DF would be
// tens of seconds). A clean interval must report a small DF (or none while no rate is known).
TEST(AnalyzerFaults, MdiDelayFactorAfterAnOutageInTheFirstInterval) {
  Analyzer a;
  const TsPacket p = make_null_packet();
  for (std::uint64_t ms = 0; ms < 50; ++ms) a.push(p, ms * kMs);
  // The outage, then the same regular stream: the interval [3 s, 4 s) completes.
  for (std::uint64_t ms = 3000; ms < 4500; ++ms) a.push(p, ms * kMs);
  const Mdi& m = a.mdi_last();
  if (m.valid) {
    EXPECT_LT(m.df_ms, 3.0) << "a clean interval after an outage reported DF " << m.df_ms << " ms";
  }
  // And once a rate is known, the clean stream's intervals are clean.
  for (std::uint64_t ms = 4500; ms < 6500; ++ms) a.push(p, ms * kMs);
  ASSERT_TRUE(a.mdi_last().valid);
  EXPECT_LT(a.mdi_last().df_ms, 3.0);
  EXPECT_NEAR(a.mdi_last().media_rate_bps, 1'504'000.0, 0.05 * 1'504'000.0);
}

// PCR_AC is not judged over an interval with lost packets. A lost packet is only
// seen (a CC gap) at the next packet of its PID, which may come after the next PCR: here
// an audio packet (PID 0x101, every 10th slot) lost 2 slots before a PCR of the video PID,
// its gap seen 8 slots after that PCR. The interval ending at that PCR has lost a packet
// all the same, and a perfect mux must not get a PCR_accuracy_error for it.
TEST(AnalyzerFaults, LostPacketOfAnotherPidSeenAfterThePcrIsNotAPcrAccuracyError) {
  {
    Analyzer clean;
    cbr_15mbps(clean, 60'000, {}, true);
    ASSERT_EQ(clean.report().count(Check::kPcrAccuracyError), 0u);
    ASSERT_EQ(clean.report().count(Check::kContinuityCountError), 0u);
  }
  Analyzer a;
  cbr_15mbps(a, 60'000, {30'003}, true);  // audio, 2 slots before the PCR in slot 30'005; the next audio is slot 30'013
  const Report r = a.report();
  EXPECT_EQ(r.count(Check::kContinuityCountError), 1u);
  EXPECT_EQ(r.lost_packets, 1u);
  EXPECT_EQ(r.count(Check::kPcrAccuracyError), 0u) << "max PCR_AC " << r.pcr.at(0).max_accuracy_ns << " ns";
}
