#include "twincast/mpegts/remux.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "tests_common.hpp"
#include "twincast/mpegts/psi_decoder.hpp"

using namespace twincast::mpegts;
using twincast::test::fixture;
using twincast::test::read_packets;

namespace {

struct Output {
  std::vector<TsPacket> packets;
  std::vector<std::uint64_t> times;  // clock of the input packet that produced each
};

// Feeds packets of one input at a 1.5 Mbit/s clock (188*8 bits every ~1 ms).
void feed(Remuxer& r, std::size_t input, const std::vector<TsPacket>& in, Output& out, std::uint64_t& t,
          std::size_t from = 0, std::size_t to = SIZE_MAX) {
  std::vector<TsPacket> buf(r.max_output_per_push());
  for (std::size_t i = from; i < std::min(to, in.size()); ++i) {
    t += 1'002'666;
    const std::size_t n = r.push(input, in[i], t, buf);
    ASSERT_LE(n, buf.size());
    for (std::size_t k = 0; k < n; ++k) {
      out.packets.push_back(buf[k]);
      out.times.push_back(t);
    }
  }
}

// Continuity errors as a receiver counts them: per PID with payload, +1 modulo 16,
// a single repeat allowed, discontinuity_indicator resets.
std::size_t cc_errors(const std::vector<TsPacket>& pkts) {
  std::map<std::uint16_t, int> last;
  std::size_t errors = 0;
  for (const auto& p : pkts) {
    if (p.pid() == kNullPid || !p.has_payload()) continue;
    auto it = last.find(p.pid());
    if (it != last.end() && !p.discontinuity()) {
      const int expect = (it->second + 1) & 0xF;
      if (p.cc() != expect && p.cc() != it->second) ++errors;
    }
    last[p.pid()] = p.cc();
  }
  return errors;
}

ProgramModel decode(const std::vector<TsPacket>& pkts) {
  PsiDecoder d;
  for (const auto& p : pkts) d.push(p);
  return d.model();
}

std::map<std::uint16_t, std::size_t> pid_counts(const std::vector<TsPacket>& pkts) {
  std::map<std::uint16_t, std::size_t> c;
  for (const auto& p : pkts) ++c[p.pid()];
  return c;
}

}  // namespace

TEST(Remux, MptsToSptsKeepsOneServiceAndAllItsPackets) {
  const auto in = read_packets(fixture("mpts3.ts"));
  const ProgramModel src = decode(in);
  ASSERT_EQ(src.services.size(), 3u);
  const Service* bravo = src.find_service(2);
  ASSERT_NE(bravo, nullptr);

  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .source_service_id = 2});
  Remuxer r(cfg);
  Output out;
  std::uint64_t t = 0;
  feed(r, 0, in, out, t);

  const ProgramModel m = decode(out.packets);
  ASSERT_EQ(m.services.size(), 1u);
  const Service& s = m.services[0];
  EXPECT_EQ(s.service_id, 2);
  EXPECT_EQ(s.name, "Bravo");
  ASSERT_EQ(s.streams.size(), bravo->streams.size());
  EXPECT_EQ(s.streams[0].codec, Codec::kH264);
  EXPECT_EQ(s.streams[1].codec, Codec::kAac);

  // Every media packet of Bravo, and nothing of Alpha or Charlie.
  const auto in_counts = pid_counts(in);
  const auto out_counts = pid_counts(out.packets);
  std::set<std::uint16_t> allowed{kPatPid, kSdtPid, s.pmt_pid};
  for (const auto& es : s.streams) allowed.insert(es.pid);
  for (const auto& [pid, n] : out_counts) EXPECT_TRUE(allowed.count(pid)) << "unexpected PID " << pid;
  std::size_t first_media = 0;
  while (first_media < in.size() && in[first_media].pid() != bravo->streams[0].pid) ++first_media;
  for (const auto& es : bravo->streams) {
    // Packets before the tables were known are dropped; ffmpeg writes PSI first, so none are.
    EXPECT_EQ(out_counts.at(es.pid), in_counts.at(es.pid)) << "PID " << es.pid;
  }
  EXPECT_EQ(cc_errors(out.packets), 0u);
  // PAT then PMT come first.
  ASSERT_GE(out.packets.size(), 2u);
  EXPECT_EQ(out.packets[0].pid(), kPatPid);
  EXPECT_EQ(out.packets[1].pid(), s.pmt_pid);
}

namespace {

// Where each of `pkts` lies on its stream's own time (ns), interpolated between the PCRs of
// pcr_pid by packet count, as a PCR-paced output sends them; packets before the first or
// after the last PCR get that PCR's time.
std::vector<std::uint64_t> stream_times(const std::vector<TsPacket>& pkts, std::uint16_t pcr_pid) {
  std::vector<std::pair<std::size_t, std::uint64_t>> pcrs;  // (index, ns since the first PCR)
  std::uint64_t first = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i)
    if (pkts[i].pid() == pcr_pid && pkts[i].has_pcr()) {
      if (pcrs.empty()) first = pkts[i].pcr();
      pcrs.emplace_back(i, pcr_delta(first, pkts[i].pcr()) * 1000 / 27);
    }
  std::vector<std::uint64_t> t(pkts.size(), 0);
  if (pcrs.empty()) return t;
  std::size_t k = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    while (k + 1 < pcrs.size() && pcrs[k + 1].first <= i) ++k;
    if (i <= pcrs[k].first || k + 1 == pcrs.size()) {
      t[i] = pcrs[k].second;
    } else {
      const auto [a, ta] = pcrs[k];
      const auto [b, tb] = pcrs[k + 1];
      t[i] = ta + (tb - ta) * (i - a) / (b - a);
    }
  }
  return t;
}

// The longest gap between PATs and their number, on the clock `times`.
std::pair<std::uint64_t, std::size_t> pat_gaps(const std::vector<TsPacket>& pkts, const std::vector<std::uint64_t>& times) {
  std::uint64_t last_pat = 0;
  std::uint64_t worst = 0;
  std::size_t pats = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    if (pkts[i].pid() != kPatPid) continue;
    if (pats++ > 0) worst = std::max(worst, times[i] - last_pat);
    last_pat = times[i];
  }
  return {worst, pats};
}

// One service of input 0, its tables every 100 ms.
RemuxConfig tables_every_100ms() {
  RemuxConfig cfg;
  cfg.psi_interval_ns = 100'000'000;
  cfg.services.push_back({.input = 0});
  return cfg;
}

// `in` through a remux of tables_every_100ms() at feed()'s clock.
Output remux_fed(const std::vector<TsPacket>& in) {
  Remuxer r(tables_every_100ms());
  Output out;
  std::uint64_t t = 0;
  feed(r, 0, in, out, t);
  return out;
}

// pat_gaps() on the output's own time (its service's PCRs).
std::pair<std::uint64_t, std::size_t> pat_gaps_on_pcrs(const Output& out) {
  return pat_gaps(out.packets, stream_times(out.packets, decode(out.packets).services.at(0).pcr_pid));
}

}  // namespace

// The tables keep their interval on the stream's own time (the PCRs: what a PCR-paced
// output and a receiver see), whatever the clock the input arrives on (here the feed's 1.5
// Mbit/s, slower than the stream's own rate): at most one PCR interval (ffmpeg: 20-40 ms)
// late, and on average the interval.
TEST(Remux, TablesRepeatAtTheirInterval) {
  const Output out = remux_fed(read_packets(fixture("h264_aac.ts")));
  const auto times = stream_times(out.packets, decode(out.packets).services.at(0).pcr_pid);
  const auto [worst, pats] = pat_gaps(out.packets, times);
  const std::uint64_t span = times.back() - times.front();
  EXPECT_GT(pats, 50u);
  EXPECT_LE(worst, 100'000'000u + 41'000'000u);
  EXPECT_NEAR(static_cast<double>(span) / static_cast<double>(pats - 1), 100e6, 3e6) << pats << " PATs in " << span << " ns";
}

// A stall, then what the stream held meanwhile in one burst (a source catching up, a
// backlog sent faster than real time): the burst still carries a PAT every interval of its
// stream time, not one for all of it (the output spreads it on its PCRs: a receiver would
// see a gap of the stall's length, TR 101 290 PAT_error_2 beyond 500 ms).
TEST(Remux, TablesKeepTheirIntervalOnTheStreamsTimeThroughABurst) {
  const auto in = read_packets(fixture("h264_aac.ts"));
  ASSERT_GT(in.size(), 3000u);
  Remuxer r(tables_every_100ms());
  Output out;
  std::uint64_t t = 0;
  feed(r, 0, in, out, t, 0, 1000);
  // 1500 packets (~1.5 s of stream) arrive within 1.5 ms.
  std::vector<TsPacket> buf(r.max_output_per_push());
  for (std::size_t i = 1000; i < 2500; ++i) {
    const std::size_t n = r.push(0, in[i], t + i - 1000, buf);
    out.packets.insert(out.packets.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    out.times.insert(out.times.end(), n, t);
  }
  t += 2'000'000;
  feed(r, 0, in, out, t, 2500);
  const auto [worst, pats] = pat_gaps_on_pcrs(out);
  EXPECT_GT(pats, 50u);
  EXPECT_LE(worst, 100'000'000u + 41'000'000u);
  EXPECT_EQ(cc_errors(out.packets), 0u);
}

// A stream without PCRs: the tables keep their interval on arrival time.
TEST(Remux, TablesOfAStreamWithoutPcrsRepeatOnArrivalTime) {
  auto in = read_packets(fixture("h264_aac.ts"));
  for (TsPacket& p : in)
    if (p.has_pcr()) p.bytes[5] &= 0xEF;  // PCR_flag off: the 6 bytes stay, read as stuffing
  const Output out = remux_fed(in);
  const auto [worst, pats] = pat_gaps(out.packets, out.times);
  EXPECT_GT(pats, 50u);
  EXPECT_LE(worst, 100'000'000u + 2'000'000u);
}

// PCRs that advance far slower than the packets arrive (a source delivered at a fraction of
// its rate, an encoder whose PCR crawls or froze): the PCR-paced output cannot send a packet
// before it came (its schedule re-anchors on arrival once 100 ms behind), so a receiver
// sees the arrival time, and the tables must still repeat on it (TR 101 290 PAT_error_2
// beyond 500 ms), not once every interval of the PCRs' time.
TEST(Remux, TablesOfAStreamWhosePcrsCrawlStillRepeatOnArrivalTime) {
  for (const std::uint64_t slowdown : {10U, 0U}) {  // 0: the PCR is frozen
    auto in = read_packets(fixture("h264_aac.ts"));
    std::optional<std::uint64_t> first;
    for (TsPacket& p : in)
      if (p.has_pcr()) {
        if (!first) first = p.pcr();
        p.set_pcr(*first + (slowdown == 0 ? 0 : pcr_delta(*first, p.pcr()) / slowdown));
      }
    RemuxConfig cfg;
    cfg.psi_interval_ns = 100'000'000;
    cfg.services.push_back({.input = 0});
    Remuxer r(cfg);
    Output out;
    std::uint64_t t = 0;
    feed(r, 0, in, out, t);
    const auto [worst, pats] = pat_gaps(out.packets, out.times);
    EXPECT_GT(pats, 20u) << "slowdown " << slowdown;
    EXPECT_LE(worst, 500'000'000u) << "slowdown " << slowdown;
  }
}

TEST(Remux, MergingThreeSptsRemapsCollisionsAndNumbersChannels) {
  const auto a = read_packets(fixture("h264_aac.ts"));
  const auto b = read_packets(fixture("h264_aac.ts"));
  const auto c = read_packets(fixture("hevc_aac.ts"));
  RemuxConfig cfg;
  cfg.n_inputs = 3;
  cfg.nit = true;
  cfg.transport_stream_id = 7;
  cfg.network_name = "Test Net";
  cfg.services.push_back({.input = 0, .service_id = 10, .lcn = 1, .name = "One"});
  cfg.services.push_back({.input = 1, .service_id = 20, .lcn = 2, .name = "Two"});
  cfg.services.push_back({.input = 2, .service_id = 30, .lcn = 3});
  Remuxer r(cfg);
  Output out;
  std::uint64_t t = 0;
  // Interleave packet by packet, as a multiplexer would.
  std::vector<TsPacket> buf(r.max_output_per_push());
  for (std::size_t i = 0; i < std::max({a.size(), b.size(), c.size()}); ++i) {
    t += 1'000'000;
    std::size_t input = 0;
    for (const auto* in : {&a, &b, &c}) {
      if (i < in->size()) {
        const std::size_t n = r.push(input, (*in)[i], t, buf);
        out.packets.insert(out.packets.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
      }
      ++input;
    }
  }
  const ProgramModel m = decode(out.packets);
  ASSERT_EQ(m.services.size(), 3u);
  EXPECT_EQ(m.transport_stream_id, 7);
  EXPECT_EQ(m.network_name, "Test Net");
  std::set<std::uint16_t> pids;
  std::size_t n_streams = 0;
  for (const auto& s : m.services) {
    pids.insert(s.pmt_pid);
    for (const auto& es : s.streams) {
      pids.insert(es.pid);
      ++n_streams;
    }
  }
  EXPECT_EQ(pids.size(), 3 + n_streams) << "every PMT and ES PID is distinct after remapping";
  EXPECT_GT(r.stats().remapped_pids, 0u);
  EXPECT_EQ(m.services[0].service_id, 10);
  EXPECT_EQ(m.services[0].name, "One");
  EXPECT_EQ(m.services[0].lcn, 1);
  EXPECT_EQ(m.services[1].lcn, 2);
  EXPECT_EQ(m.services[2].lcn, 3);
  EXPECT_EQ(m.services[2].service_id, 30);
  EXPECT_EQ(m.services[2].streams[0].codec, Codec::kHevc);
  EXPECT_EQ(cc_errors(out.packets), 0u);
  // Each output ES PID carries exactly its source's packets.
  const auto counts = pid_counts(out.packets);
  EXPECT_EQ(counts.at(m.services[1].streams[0].pid), pid_counts(b).at(0x100));
}

TEST(Remux, PidRulesDropAndMove) {
  const auto in = read_packets(fixture("two_audio.ts"));
  const ProgramModel src = decode(in);
  ASSERT_EQ(src.services.size(), 1u);
  ASSERT_EQ(src.services[0].streams.size(), 3u);
  const std::uint16_t video = src.services[0].streams[0].pid;
  const std::uint16_t deu = src.services[0].streams[2].pid;
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .rules = {{.from = deu, .drop = true}, {.from = video, .to = 0x200}}});
  Remuxer r(cfg);
  Output out;
  std::uint64_t t = 0;
  feed(r, 0, in, out, t);
  const ProgramModel m = decode(out.packets);
  ASSERT_EQ(m.services.size(), 1u);
  const Service& s = m.services[0];
  ASSERT_EQ(s.streams.size(), 2u);
  EXPECT_EQ(s.streams[0].pid, 0x200);
  EXPECT_EQ(s.pcr_pid, 0x200) << "the PCR follows its PID";
  EXPECT_EQ(s.streams[1].language, "eng");
  const auto counts = pid_counts(out.packets);
  EXPECT_EQ(counts.count(deu), 0u);
  EXPECT_EQ(counts.count(video), 0u);
  EXPECT_EQ(counts.at(0x200), pid_counts(in).at(video));
  EXPECT_GT(r.stats().dropped_rule, 0u);
}

TEST(Remux, InputLossNeverShowsAsOutputCcError) {
  auto in = read_packets(fixture("h264_aac.ts"));
  // Lose 10 % of the media packets.
  std::vector<TsPacket> lossy;
  for (std::size_t i = 0; i < in.size(); ++i)
    if (i % 10 != 7 || in[i].pid() == kPatPid || in[i].pid() == 0x1000) lossy.push_back(in[i]);
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0});
  Remuxer r(cfg);
  Output out;
  std::uint64_t t = 0;
  feed(r, 0, lossy, out, t);
  EXPECT_EQ(cc_errors(out.packets), 0u);
}

TEST(Remux, SwitchingSourcesIsCleanAtTheOutput) {
  const auto a = read_packets(fixture("h264_aac.ts"));
  const auto b = read_packets(fixture("h264_aac_vbr.ts"));
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .service_id = 5, .pmt_pid = 0x1000, .name = "Channel"});
  Remuxer r(cfg);
  Output out;
  std::uint64_t t = 0;
  feed(r, 0, a, out, t, 0, a.size() / 2);
  const std::uint8_t pat_version = r.output_model().pat_version;
  const std::size_t before = out.packets.size();
  r.switch_source(0);
  feed(r, 0, b, out, t, 1000);  // join the backup mid-stream
  EXPECT_EQ(cc_errors(out.packets), 0u);
  EXPECT_EQ(r.output_model().pat_version, pat_version) << "same program: PAT version must not move";
  EXPECT_GE(r.stats().discontinuities_marked, 1u);
  EXPECT_LE(r.stats().discontinuities_marked, r.output_model().services[0].streams.size());
  // The first packet of each PID after the switch starts a payload unit.
  std::set<std::uint16_t> seen;
  bool pcr_marked = false;
  const std::uint16_t pcr_pid = r.output_model().services[0].pcr_pid;
  for (std::size_t i = before; i < out.packets.size(); ++i) {
    const auto& p = out.packets[i];
    if (p.pid() < 0x20 || p.pid() == 0x1000) continue;
    if (seen.insert(p.pid()).second && p.has_payload()) {
      EXPECT_TRUE(p.payload_unit_start()) << "PID " << p.pid();
    }
    if (p.pid() == pcr_pid && p.has_pcr() && !pcr_marked) {
      EXPECT_TRUE(p.discontinuity()) << "the first PCR after the switch announces the new timeline";
      pcr_marked = true;
    }
  }
  EXPECT_TRUE(pcr_marked);
}

// The batch push (how the data plane feeds a datagram's packets) writes exactly what one
// push per packet writes: same packets, same tables at the same points, same counters,
// across a source switch and with the MPTS's other services dropped.
TEST(Remux, BatchPushEqualsOnePushPerPacket) {
  const auto a = read_packets(fixture("mpts3.ts"));
  const auto b = read_packets(fixture("h264_aac_vbr.ts"));
  RemuxConfig cfg;
  cfg.psi_interval_ns = 50'000'000;  // tables often, so batches carry them
  cfg.sdt = true;
  cfg.nit = true;
  cfg.services.push_back({.input = 0, .service_id = 7, .pmt_pid = 0x1000, .lcn = 3, .name = "Seven"});
  Remuxer single(cfg);
  Remuxer batched(cfg);
  std::vector<TsPacket> out_single;
  std::vector<TsPacket> out_batched;
  std::vector<TsPacket> buf(7 * single.max_output_per_push());
  std::uint64_t t = 0;
  auto run = [&](const std::vector<TsPacket>& in, std::size_t from) {
    for (std::size_t i = from; i < in.size(); i += 7) {
      t += 7'018'666;  // 7 packets at 1.5 Mbit/s: a datagram's worth, one arrival time
      const std::span<const TsPacket> dgram(in.data() + i, std::min<std::size_t>(7, in.size() - i));
      for (const TsPacket& p : dgram) {
        const std::size_t n = single.push(0, p, t, std::span<TsPacket>(buf).first(single.max_output_per_push()));
        out_single.insert(out_single.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
      }
      const std::size_t n = batched.push(0, dgram, t, buf);
      ASSERT_LE(n, buf.size());
      out_batched.insert(out_batched.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
  };
  run(a, 0);
  single.switch_source(0);
  batched.switch_source(0);
  run(b, 500);
  ASSERT_GT(out_single.size(), 1000u);
  ASSERT_EQ(out_single.size(), out_batched.size());
  for (std::size_t i = 0; i < out_single.size(); ++i)
    ASSERT_EQ(std::memcmp(out_single[i].bytes.data(), out_batched[i].bytes.data(), kPacketSize), 0) << "packet " << i;
  const auto s = single.stats();
  const auto q = batched.stats();
  EXPECT_EQ(s.packets_in, q.packets_in);
  EXPECT_EQ(s.packets_out, q.packets_out);
  EXPECT_EQ(s.dropped_unmapped, q.dropped_unmapped);
  EXPECT_EQ(s.dropped_resync, q.dropped_resync);
  EXPECT_EQ(s.discontinuities_marked, q.discontinuities_marked);
  EXPECT_GT(s.dropped_unmapped, 0u) << "the MPTS's other services are dropped";
  EXPECT_EQ(cc_errors(out_batched), 0u);
}

// Continuity errors with no excuse: the discontinuity_indicator does not reset the count,
// and a repeated counter is allowed only for a byte-identical repeat (ISO 13818-1 2.4.3.3).
std::size_t strict_cc_errors(const std::vector<TsPacket>& pkts) {
  std::map<std::uint16_t, const TsPacket*> last;
  std::size_t errors = 0;
  for (const auto& p : pkts) {
    if (p.pid() == kNullPid || !p.has_payload()) continue;
    auto it = last.find(p.pid());
    if (it != last.end()) {
      const TsPacket& before = *it->second;
      const bool next = p.cc() == ((before.cc() + 1) & 0xF);
      const bool repeat = p.cc() == before.cc() && p.bytes == before.bytes;
      if (!next && !repeat) ++errors;
    }
    last[p.pid()] = &p;
  }
  return errors;
}

// A reload rebuilds a channel with a new engine: the receivers must not see a CC error
// where the old engine stopped, and the tables come back with a new version.
TEST(Remux, ANewEngineContinuesWhereTheOldOneLeftTheReceivers) {
  const auto in = read_packets(fixture("h264_aac.ts"));
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .service_id = 5, .pmt_pid = 0x1000, .name = "Channel"});
  Remuxer before(cfg);
  Output out;
  std::uint64_t t = 0;
  feed(before, 0, in, out, t, 0, in.size() / 2);
  const std::vector<TsPacket>& received = out.packets;
  const ProgramModel old_model = before.output_model();

  // The same configuration, once without taking over: what a restart used to look like.
  Remuxer fresh(cfg);
  Output fresh_out;
  std::uint64_t t2 = t;
  feed(fresh, 0, in, fresh_out, t2, in.size() / 2);
  std::vector<TsPacket> restarted = received;
  restarted.insert(restarted.end(), fresh_out.packets.begin(), fresh_out.packets.end());
  EXPECT_GT(strict_cc_errors(restarted), 0u) << "the check must see a restart that does not continue";

  Remuxer after(cfg);
  after.continue_from(before);
  Output next;
  feed(after, 0, in, next, t, in.size() / 2);
  ASSERT_GT(next.packets.size(), 1000u);
  std::vector<TsPacket> joined = received;
  joined.insert(joined.end(), next.packets.begin(), next.packets.end());
  EXPECT_EQ(strict_cc_errors(joined), 0u);
  EXPECT_EQ(strict_cc_errors(received), 0u);
  // New versions (the engine may move them again while it learns its input, as the old
  // one did): receivers read the tables again.
  const ProgramModel new_model = decode(next.packets);
  ASSERT_EQ(new_model.services.size(), 1u);
  EXPECT_NE(new_model.pat_version, old_model.pat_version);
  EXPECT_NE(new_model.services[0].pmt_version, old_model.services[0].pmt_version);
  // Each PID resumes at a unit start; the PCR PID announces the jump on its first PCR.
  std::set<std::uint16_t> seen;
  const std::uint16_t pcr_pid = new_model.services[0].pcr_pid;
  bool pcr_marked = false;
  for (const auto& p : next.packets) {
    if (p.pid() < 0x20 || p.pid() == 0x1000) continue;
    if (seen.insert(p.pid()).second && p.has_payload()) {
      EXPECT_TRUE(p.payload_unit_start()) << "PID " << p.pid();
    }
    if (p.pid() == pcr_pid && p.has_pcr() && !pcr_marked) {
      EXPECT_TRUE(p.discontinuity());
      pcr_marked = true;
    }
  }
  EXPECT_TRUE(pcr_marked);
}

// A reload that renames a service (name, provider, LCN) keeps its engine: the SDT, and the
// NIT that an LCN brings with it (listed in the PAT), change at once with new versions,
// while every stream goes on packet for packet, with no discontinuity and no CC error.
TEST(Remux, RenamingAServiceChangesItsTablesAndNothingElse) {
  const auto in = read_packets(fixture("h264_aac.ts"));
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .service_id = 5, .pmt_pid = 0x1000, .name = "Channel"});
  Remuxer r(cfg);
  Output before;
  std::uint64_t t = 0;
  const std::size_t half = in.size() / 2;
  feed(r, 0, in, before, t, 0, half);
  const ProgramModel old_model = decode(before.packets);
  ASSERT_EQ(old_model.services.size(), 1u);
  EXPECT_EQ(old_model.services[0].name, "Channel");
  EXPECT_EQ(old_model.services[0].lcn, 0);
  EXPECT_EQ(pid_counts(before.packets).count(kNitPid), 0u) << "no LCN, no NIT";
  const std::uint64_t rebuilds = r.stats().table_rebuilds;

  r.describe(0, "Renamed", "New Provider", 42, true);
  EXPECT_EQ(r.stats().table_rebuilds, rebuilds + 1);
  Output after;
  feed(r, 0, in, after, t, half);
  // The changed tables lead the first push's output, before its media packet.
  ASSERT_GE(after.packets.size(), 4u);
  std::set<std::uint16_t> first_pids;
  for (std::size_t k = 0; k < after.packets.size() && after.packets[k].pid() != 0x100 && after.packets[k].pid() != 0x101;
       ++k)
    first_pids.insert(after.packets[k].pid());
  EXPECT_EQ(first_pids.count(kPatPid), 1u);
  EXPECT_EQ(first_pids.count(kSdtPid), 1u);
  EXPECT_EQ(first_pids.count(kNitPid), 1u);
  const ProgramModel new_model = decode(after.packets);
  ASSERT_EQ(new_model.services.size(), 1u);
  EXPECT_EQ(new_model.services[0].name, "Renamed");
  EXPECT_EQ(new_model.services[0].provider, "New Provider");
  EXPECT_EQ(new_model.services[0].lcn, 42);
  EXPECT_EQ(new_model.services[0].service_id, 5);
  EXPECT_NE(new_model.pat_version, old_model.pat_version) << "the PAT lists the NIT now";
  EXPECT_EQ(new_model.services[0].pmt_version, old_model.services[0].pmt_version) << "the PMT did not change";

  // Every media packet goes on, none flagged, none waiting for a unit start.
  std::vector<TsPacket> joined = before.packets;
  joined.insert(joined.end(), after.packets.begin(), after.packets.end());
  EXPECT_EQ(strict_cc_errors(joined), 0u);
  const auto media = [](const std::vector<TsPacket>& pkts, std::size_t from, std::size_t to) {
    std::size_t n = 0;
    for (std::size_t i = from; i < std::min(to, pkts.size()); ++i) n += pkts[i].pid() == 0x100 || pkts[i].pid() == 0x101;
    return n;
  };
  EXPECT_EQ(media(after.packets, 0, after.packets.size()), media(in, half, in.size()));
  for (const auto& p : after.packets) EXPECT_FALSE(p.pid() >= 0x20 && p.discontinuity()) << "PID " << p.pid();
  EXPECT_EQ(r.stats().dropped_resync, 0u);

  // And back: no name (the source's SDT name), no LCN. A receiver tuned all along drops the
  // number: the NIT goes on without it, with a new version (were it just to stop, the
  // receiver would keep the last one it saw).
  PsiDecoder stb;
  for (const auto& p : before.packets) stb.push(p);
  for (const auto& p : after.packets) stb.push(p);
  ASSERT_EQ(stb.model().services.at(0).lcn, 42);
  r.describe(0, "", "", 0, false);
  Output last;
  std::uint64_t t3 = t;
  feed(r, 0, in, last, t3, 0, half);
  for (const auto& p : last.packets) stb.push(p);
  ASSERT_EQ(stb.model().services.size(), 1u);
  EXPECT_EQ(stb.model().services[0].name, "Test One") << "no configured name: the source's";
  EXPECT_EQ(stb.model().services[0].lcn, 0) << "the receiver still lists the service at its old number";
  EXPECT_GT(pid_counts(last.packets).count(kNitPid), 0u);
  std::vector<TsPacket> all = joined;
  all.insert(all.end(), last.packets.begin(), last.packets.end());
  EXPECT_EQ(strict_cc_errors(all), 0u) << "continuity across both renames";

  // An engine that takes over from one that sent a NIT sends it too, though its own
  // configuration has no LCN: a restart withdraws the number the same way.
  Remuxer next_engine(cfg);
  next_engine.continue_from(r);
  Output restarted;
  feed(next_engine, 0, in, restarted, t3, half);
  EXPECT_GT(pid_counts(restarted.packets).count(kNitPid), 0u);
}

// The NIT stays on air across engines that sent nothing themselves: a rename that removes
// the LCN right after a restart, before the new engine learnt its input, and two restarts in
// a row (the one between never learnt its input). Either way the receiver that saw the
// number is told it is gone.
TEST(Remux, TheLcnIsWithdrawnThroughEnginesThatSentNothing) {
  const auto in = read_packets(fixture("h264_aac.ts"));
  RemuxConfig with_lcn;
  with_lcn.nit = true;  // as a channel with an LCN configures it
  with_lcn.services.push_back({.input = 0, .service_id = 5, .pmt_pid = 0x1000, .lcn = 42, .name = "Channel"});
  RemuxConfig without = with_lcn;
  without.nit = false;
  without.services[0].lcn = 0;
  const std::size_t half = in.size() / 2;
  for (const bool rename : {true, false}) {
    SCOPED_TRACE(rename ? "restart, then a rename before any packet" : "two restarts in a row");
    Remuxer first(with_lcn);
    Output out;
    std::uint64_t t = 0;
    feed(first, 0, in, out, t, 0, half);
    PsiDecoder stb;
    for (const auto& p : out.packets) stb.push(p);
    ASSERT_EQ(stb.model().services.at(0).lcn, 42);
    Remuxer between(rename ? with_lcn : without);
    between.continue_from(first);
    Output nothing;
    feed(between, 0, in, nothing, t, half, half + 3);
    ASSERT_TRUE(nothing.packets.empty()) << "the engine between must not have learnt its input";
    Remuxer last(without);
    Remuxer* tail = &between;
    if (rename) {
      between.describe(0, "Channel", "", 0, false);  // as Channel::describe with lcn 0
    } else {
      last.continue_from(between);
      tail = &last;
    }
    Output next;
    feed(*tail, 0, in, next, t, half + 3);
    for (const auto& p : next.packets) stb.push(p);
    EXPECT_GT(pid_counts(next.packets).count(kNitPid), 0u) << "no NIT any more";
    EXPECT_EQ(stb.model().services.at(0).lcn, 0) << "the receiver still lists the service at its old number";
    std::vector<TsPacket> joined = out.packets;
    joined.insert(joined.end(), next.packets.begin(), next.packets.end());
    EXPECT_EQ(cc_errors(joined), 0u);
  }
}

// Reloads faster than an engine learns its input: the one in between sent nothing, and the
// next still goes on from what the receivers last saw.
TEST(Remux, TakingOverFromAnEngineThatSentNothingYet) {
  const auto in = read_packets(fixture("h264_aac.ts"));
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .service_id = 5, .pmt_pid = 0x1000, .name = "Channel"});
  Remuxer first(cfg);
  Output out;
  std::uint64_t t = 0;
  feed(first, 0, in, out, t, 0, in.size() / 2);
  Remuxer between(cfg);
  between.continue_from(first);
  Output nothing;
  feed(between, 0, in, nothing, t, in.size() / 2, in.size() / 2 + 3);  // too little to learn the PSI
  EXPECT_TRUE(nothing.packets.empty());
  Remuxer last(cfg);
  last.continue_from(between);
  Output next;
  feed(last, 0, in, next, t, in.size() / 2 + 3);
  ASSERT_GT(next.packets.size(), 1000u);
  std::vector<TsPacket> joined = out.packets;
  joined.insert(joined.end(), next.packets.begin(), next.packets.end());
  EXPECT_EQ(strict_cc_errors(joined), 0u);
  EXPECT_NE(decode(next.packets).pat_version, first.output_model().pat_version);
}

TEST(Remux, RejectsInconsistentConfiguration) {
  RemuxConfig cfg;
  EXPECT_THROW(Remuxer{cfg}, std::invalid_argument);
  cfg.services.push_back({.input = 1});
  EXPECT_THROW(Remuxer{cfg}, std::invalid_argument);
  cfg.n_inputs = 2;
  cfg.services.push_back({.input = 0});
  EXPECT_NO_THROW(Remuxer{cfg});
  cfg.services[0].service_id = 3;
  cfg.services[1].service_id = 3;
  EXPECT_THROW(Remuxer{cfg}, std::invalid_argument);
  cfg.services[1].service_id = 4;
  cfg.services[1].rules.push_back({.from = 0x100, .to = 0x11});
  EXPECT_THROW(Remuxer{cfg}, std::invalid_argument);
}

// A packet whose sync byte was corrupted on the way (the aligner hands it on, for the
// analyzer's Sync_byte_error) is not forwarded: a receiver would take it for garbage, or
// worse, believe its header. It is counted as dropped.
TEST(Remux, APacketWithACorruptedSyncByteIsNotForwarded) {
  auto in = read_packets(fixture("h264_aac.ts"));
  std::size_t bad = in.size() / 2;
  while (in[bad].pid() != 0x100 || !in[bad].has_payload()) ++bad;
  in[bad].bytes[0] = 0x46;
  std::size_t video_in = 0;
  for (const auto& p : in) video_in += p.has_sync() && p.pid() == 0x100 ? 1u : 0u;
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0});
  Remuxer r(cfg);
  Output out;
  std::uint64_t t = 0;
  feed(r, 0, in, out, t);
  std::size_t video_out = 0;
  for (const auto& p : out.packets) {
    EXPECT_TRUE(p.has_sync());
    video_out += p.pid() == 0x100 ? 1u : 0u;
  }
  EXPECT_EQ(video_out, video_in);
  EXPECT_EQ(r.stats().dropped_sync, 1u);
  EXPECT_EQ(r.stats().packets_in, in.size());
}

TEST(Remux, GarbageInputProducesNothingAndNeverCrashes) {
  std::vector<TsPacket> junk(5000);
  std::uint32_t x = 12345;
  for (auto& p : junk) {
    for (auto& b : p.bytes) {
      x = x * 1664525u + 1013904223u;
      b = static_cast<std::uint8_t>(x >> 24);
    }
    p.bytes[0] = kSyncByte;
    if ((x & 3) == 0) p.set_pid(0);  // plenty of broken PAT sections
  }
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0});
  Remuxer r(cfg);
  Output out;
  std::uint64_t t = 0;
  feed(r, 0, junk, out, t);
  EXPECT_EQ(r.stats().packets_in, junk.size());
}
