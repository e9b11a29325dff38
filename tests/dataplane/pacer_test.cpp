// Tests of the output pacer (dataplane/src/pacer.*) through the Channel API, with
// synthetic streams: one service (PMT 0x1000), its PCR on the video PID 0x100.
#include "twincast/dataplane/channel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "dataplane/pipeline_harness.hpp"
#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/program.hpp"
#include "twincast/mpegts/psi_tables.hpp"

using namespace twincast;
using namespace twincast::dataplane;
using mpegts::TsPacket;
using twincast::test::Recorder;
using twincast::test::one_channel;

namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint16_t kVideo = 0x100;


// A packet's arrival time and bytes.
struct Timed {
  std::uint64_t t;
  TsPacket p;
};

// A synthetic SPTS: PAT/PMT every 100 ms, the video PID at `per_interval` packets per
// 40 ms PCR interval, its first carrying the PCR.
struct Synth {
  mpegts::TableCarousel pat{0};
  mpegts::TableCarousel pmt{0x1000};
  std::uint8_t cc = 0;
  std::uint32_t serial = 0;

  Synth() {
    mpegts::Service s;
    s.service_id = 1;
    s.pmt_pid = 0x1000;
    s.pcr_pid = kVideo;
    s.has_pmt = true;
    mpegts::ElementaryStream es;
    es.pid = kVideo;
    es.stream_type = 0x1B;
    s.streams.push_back(es);
    pat.update([](std::uint8_t v) { return mpegts::build_pat(1, {{1, 0x1000}}, v); });
    pmt.update([s](std::uint8_t v) { return mpegts::build_pmt(s, v); });
  }
  std::vector<TsPacket> psi() {
    std::vector<TsPacket> out(8);
    std::size_t n = pat.packetize(out);
    n += pmt.packetize(std::span(out).subspan(n));
    out.resize(n);
    return out;
  }
  TsPacket video(std::optional<std::uint64_t> pcr, bool discontinuity = false) {
    TsPacket p{};
    p.bytes.fill(0xA5);
    p.bytes[0] = mpegts::kSyncByte;
    p.set_pid(kVideo);
    if (pcr) {
      // A payload unit start at a random access point (where the remux resumes after a
      // switch), adaptation + payload.
      p.set_payload_unit_start(true);
      p.bytes[3] = 0x30;
      p.bytes[4] = 7;
      p.bytes[5] = static_cast<std::uint8_t>(0x50 | (discontinuity ? 0x80 : 0));
      p.set_pcr(*pcr);
    } else {
      p.bytes[3] = 0x10;
    }
    p.set_cc(cc);
    cc = (cc + 1) & 0xF;
    // A serial number in the payload, to follow packets through.
    const std::size_t off = p.payload_offset();
    p.bytes[off] = static_cast<std::uint8_t>(serial >> 24);
    p.bytes[off + 1] = static_cast<std::uint8_t>(serial >> 16);
    p.bytes[off + 2] = static_cast<std::uint8_t>(serial >> 8);
    p.bytes[off + 3] = static_cast<std::uint8_t>(serial);
    ++serial;
    return p;
  }
};

// `intervals` PCR intervals of 40 ms from stream time 0, arriving at `start` + stream
// time; the PCR of interval i is pcr_of(i) (27 MHz).
template <class PcrOf>
std::vector<Timed> stream(Synth& s, std::uint64_t start, std::size_t intervals, std::size_t per_interval, PcrOf&& pcr_of,
                          bool with_pcr = true) {
  std::vector<Timed> out;
  for (std::size_t i = 0; i < intervals; ++i) {
    const std::uint64_t t0 = start + i * 40 * kMs;
    if (i % 3 == 0)
      for (const TsPacket& p : s.psi()) out.push_back({t0, p});
    for (std::size_t k = 0; k < per_interval; ++k) {
      const std::uint64_t t = t0 + k * 40 * kMs / per_interval;
      out.push_back({t, s.video(k == 0 && with_pcr ? std::optional<std::uint64_t>(pcr_of(i)) : std::nullopt)});
    }
  }
  return out;
}

// Pushes `in` (in order) at its times in bursts of up to `burst`, polling every `step` from
// `from` to `to`.
template <class Sink>
void run(Channel& ch, const std::vector<Timed>& in, std::size_t& next, Sink& sink, std::uint64_t from, std::uint64_t to,
         std::uint64_t step = 100'000, std::size_t burst = 7, std::size_t input = 0) {
  std::vector<TsPacket> batch;
  for (std::uint64_t now = from; now <= to; now += step) {
    while (next < in.size() && in[next].t <= now) {
      batch.clear();
      while (next < in.size() && in[next].t <= now && batch.size() < burst) batch.push_back(in[next++].p);
      ch.push(input, batch, now);
    }
    sink.now = now;
    ch.poll(now, sink);
  }
}

struct Departure {
  std::uint64_t t;
  std::uint64_t pcr;
};
std::vector<Departure> pcr_departures(const Recorder& rec, std::size_t output = 0) {
  std::vector<Departure> d;
  for (const auto& s : rec.sent)
    if (s.output == output)
      for (const auto& p : s.packets)
        if (p.pid() == kVideo && p.has_pcr()) d.push_back({s.t, p.pcr()});
  return d;
}

// A sink that counts datagrams and media packets per output and refuses to go on past
// `limit` datagrams (a runaway poll loop would otherwise never return).
struct Counting final : DatagramSink {
  std::uint64_t now = 0;
  std::size_t limit;
  std::vector<std::uint64_t> datagrams = std::vector<std::uint64_t>(4);
  std::vector<std::uint64_t> media = std::vector<std::uint64_t>(4);
  explicit Counting(std::size_t l) : limit(l) {}
  void send(std::size_t output, std::span<const TsPacket> packets) override {
    ++datagrams[output];
    for (const TsPacket& p : packets) media[output] += p.pid() != mpegts::kNullPid;
    if (datagrams[output] > limit) throw std::runtime_error("runaway: more datagrams than the rate allows");
  }
};

// Counts what leaves the remux (a tap sees every remuxed packet).
struct CountingTap final : PacketTap {
  std::uint64_t packets = 0;
  void on_packets(std::size_t, std::span<const TsPacket> p, std::uint64_t) override { packets += p.size(); }
};

std::uint32_t serial_of(const TsPacket& p) {
  const std::size_t off = p.payload_offset();
  return (std::uint32_t{p.bytes[off]} << 24) | (std::uint32_t{p.bytes[off + 1]} << 16) |
         (std::uint32_t{p.bytes[off + 2]} << 8) | p.bytes[off + 3];
}

// Video serial numbers sent to `output`, in order.
std::vector<std::uint32_t> serials(const Recorder& rec, std::size_t output) {
  std::vector<std::uint32_t> v;
  for (const auto& s : rec.sent)
    if (s.output == output)
      for (const auto& p : s.packets)
        if (p.pid() == kVideo) v.push_back(serial_of(p));
  return v;
}

std::uint64_t pcr_ns(std::uint64_t pcr) { return pcr * 1000 / 27; }

// The lateness histogram of a channel run with one output of `pacing`, polled every 1 ms,
// whose worker stalls (no push, no poll) for `stall` 1 s into the run.
PacingHistogram lateness_after_stall(PacingMode pacing, std::uint64_t stall) {
  auto cfg = one_channel(1, pacing);
  if (pacing == PacingMode::kCbr) cfg.outputs[0].cbr_bps = 2'000'000;
  Channel ch(cfg);
  Synth s;
  const std::uint64_t start = 1000 * kMs;
  auto in = stream(s, start, 75, 20, [](std::size_t i) { return i * 40 * 27'000; });
  Recorder rec;
  std::size_t next = 0;
  run(ch, in, next, rec, start, start + 1000 * kMs, kMs);
  run(ch, in, next, rec, start + 1000 * kMs + stall, start + 3000 * kMs, kMs);
  return ch.pacing_lateness();
}

}  // namespace

// --- Lateness ---------------------------------------------------------------------------

// A worker stall (a long loop turn: the channel is not polled) delays every output. The
// lateness histogram is how an operator sees it. A CBR schedule more than 100 ms behind
// re-anchors on `now`; the datagram after the stall still counts against the slot it was
// due in. (It was counted against the new slot, 0 late: a 50 ms stall showed in the +Inf
// bucket, a 150 ms or 500 ms one, a 0.5 s hole for set-top boxes behind a QAM edge, left
// no trace.) The PCR-paced schedule counts the same stall (next test).
TEST(Pacer, CbrLatenessShowsAStallLongerThanTheReanchorLimit) {
  const PacingHistogram short_stall = lateness_after_stall(PacingMode::kCbr, 50 * kMs);
  EXPECT_GT(short_stall.buckets.back(), 0u) << "a 50 ms stall";
  for (const std::uint64_t stall : {150 * kMs, 500 * kMs}) {
    const PacingHistogram h = lateness_after_stall(PacingMode::kCbr, stall);
    EXPECT_GT(h.buckets.back(), 0u) << "a " << stall / kMs << " ms stall: no datagram counted more than 20 ms late";
    EXPECT_GE(h.sum_ns, stall) << "a " << stall / kMs << " ms stall";
  }
}

// --- Schedules ----------------------------------------------------------------------------

TEST(Pacer, PcrLatenessShowsAStall) {
  // (Passthrough has nothing due during a stall: its packets are due when they arrive.)
  for (const std::uint64_t stall : {50 * kMs, 150 * kMs, 500 * kMs}) {
    const PacingHistogram h = lateness_after_stall(PacingMode::kPcr, stall);
    EXPECT_GT(h.buckets.back(), 0u) << stall / kMs << " ms";
    EXPECT_GE(h.sum_ns, stall) << stall / kMs << " ms";
  }
}

// The monotonic clock runs for years: the CBR schedule must not overflow (it did, kept in
// thousandths of a ns, 213.5 days after boot; fixed in 76aa92d).
class PacerCbrClock : public ::testing::TestWithParam<std::uint64_t> {};
TEST_P(PacerCbrClock, CbrRateHoldsWhateverTheClock) {
  auto cfg = one_channel(1, PacingMode::kCbr);
  cfg.outputs[0].cbr_bps = 2'000'000;  // 7 packets = 10528 bits every 5.264 ms
  Channel ch(cfg);
  Synth s;
  const std::uint64_t start = GetParam();
  auto in = stream(s, start, 50, 20, [](std::size_t i) { return i * 40 * 27'000; });
  Counting sink(1000);
  std::size_t next = 0;
  ASSERT_NO_THROW(run(ch, in, next, sink, start, start + 2000 * kMs, 1 * kMs));
  EXPECT_NEAR(static_cast<double>(sink.datagrams[0]), 2.0 / 0.005264, 3.0);
  EXPECT_EQ(sink.media[0], ch.stats().packets_out);
}
INSTANTIATE_TEST_SUITE_P(Uptime, PacerCbrClock,
                         ::testing::Values(std::uint64_t{1000} * kMs,                      // 1 s
                                           std::uint64_t{214} * 86'400'000 * kMs,          // 214 days
                                           std::uint64_t{5} * 365 * 86'400'000 * kMs));    // 5 years

// Across the PCR wrap (2^33 * 300) the schedule goes on: every PCR leaves 40 ms after the
// previous one, 100 ms after it arrived, no re-anchor.
TEST(Pacer, PcrScheduleGoesOnAcrossTheWrap) {
  Channel ch(one_channel());
  Synth s;
  const std::uint64_t start = 1000 * kMs;
  auto in = stream(s, start, 100, 50, [](std::size_t i) {
    return (mpegts::kPcrWrap - 50 * 40 * 27'000 + 1234 + i * 40 * 27'000) % mpegts::kPcrWrap;
  });
  Recorder rec;
  std::size_t next = 0;
  run(ch, in, next, rec, start, start + 5000 * kMs);
  const auto d = pcr_departures(rec);
  ASSERT_EQ(d.size(), 100u);
  for (std::size_t i = 0; i < d.size(); ++i) EXPECT_EQ(d[i].t, start + i * 40 * kMs + 100 * kMs) << "PCR " << i;
  EXPECT_LT(d[60].pcr, d[40].pcr);  // it did wrap
}

// A PCR jump (backwards, or more than 1 s forwards) re-anchors: the PCR after it leaves
// 100 ms after it arrived, not at the old timeline's idea of its time.
TEST(Pacer, PcrJumpReanchors) {
  for (const std::int64_t jump_ms : {-700, -41, 2000, 60'000}) {
    Channel ch(one_channel());
    Synth s;
    const std::uint64_t start = 1000 * kMs;
    auto in = stream(s, start, 100, 50, [jump_ms](std::size_t i) {
      const std::int64_t base = std::int64_t{1'000'000'000} + static_cast<std::int64_t>(i) * 40 * 27'000;
      return static_cast<std::uint64_t>(i >= 50 ? base + jump_ms * 27'000 : base);
    });
    Recorder rec;
    std::size_t next = 0;
    run(ch, in, next, rec, start, start + 5000 * kMs);
    const auto d = pcr_departures(rec);
    ASSERT_EQ(d.size(), 100u) << jump_ms;
    for (std::size_t i = 0; i < d.size(); ++i)
      EXPECT_EQ(d[i].t, start + i * 40 * kMs + 100 * kMs) << "jump " << jump_ms << " ms, PCR " << i;
  }
}

namespace {

// The most datagrams `rec` sent to `output` in one poll (at one instant) before `until`.
std::size_t worst_burst(const Recorder& rec, std::uint64_t until, std::size_t output = 0) {
  std::size_t worst = 0, run = 0;
  std::uint64_t t = 0;
  for (const auto& s : rec.sent) {
    if (s.output != output || s.t >= until) continue;
    run = s.t == t ? run + 1 : 1;
    t = s.t;
    worst = std::max(worst, run);
  }
  return worst;
}

}  // namespace

// A re-anchor (here a PCR jump) while the old schedule still has ~60 ms queued ahead: the
// packets before the new anchor's PCR are spread after what is queued, not from `now` (they
// were due at once behind the queue and left in one burst when it had gone: 26 datagrams in
// one poll).
TEST(Pacer, PcrJumpReanchorsWithoutABurst) {
  for (const std::int64_t jump_ms : {-700, 2000}) {
    Channel ch(one_channel());
    Synth s;
    const std::uint64_t start = 1000 * kMs;
    auto in = stream(s, start, 100, 300, [jump_ms](std::size_t i) {  // 7.5 packets a ms
      const std::int64_t base = std::int64_t{1'000'000'000} + static_cast<std::int64_t>(i) * 40 * 27'000;
      return static_cast<std::uint64_t>(i >= 50 ? base + jump_ms * 27'000 : base);
    });
    Recorder rec;
    std::size_t next = 0;
    run(ch, in, next, rec, start, start + 5000 * kMs);
    EXPECT_EQ(serials(rec, 0).size(), s.serial) << jump_ms;
    // (Up to the input's end: the packets after its last PCR then go at once, later.)
    EXPECT_LE(worst_burst(rec, start + 4000 * kMs), 2u)
        << "jump " << jump_ms << " ms: datagrams sent in one poll (polled every 0.1 ms)";
  }
}

namespace {

// 4 s of a 300-packet-per-40-ms stream from `start`, and of another, on another clock, from
// 13 ms later: the two inputs of the switch tests below.
std::pair<std::vector<Timed>, std::vector<Timed>> two_clocks(std::uint64_t start) {
  Synth s0, s1;
  return {stream(s0, start, 100, 300, [](std::size_t i) { return std::uint64_t{1000} + i * 40 * 27'000; }),
          stream(s1, start + 13 * kMs, 100, 300,
                 [](std::size_t i) { return std::uint64_t{5'000'000'000} + i * 40 * 27'000; })};
}

// Pushes `in0` and `in1` (inputs 0 and 1) at their times in bursts of up to 7, forcing input
// 1 at `switch_at`, polling every 0.1 ms from `from` to `to`.
void run_switch(Channel& ch, const std::vector<Timed>& in0, const std::vector<Timed>& in1, Recorder& rec,
                std::uint64_t from, std::uint64_t switch_at, std::uint64_t to) {
  std::size_t n0 = 0, n1 = 0;
  std::vector<TsPacket> batch;
  for (std::uint64_t now = from; now <= to; now += 100'000) {
    if (now == switch_at) ch.force_input(1, now);
    for (auto [in, next, input] : {std::tuple{&in0, &n0, 0u}, std::tuple{&in1, &n1, 1u}}) {
      while (*next < in->size() && (*in)[*next].t <= now) {
        batch.clear();
        while (*next < in->size() && (*in)[*next].t <= now && batch.size() < 7) batch.push_back((*in)[(*next)++].p);
        ch.push(input, batch, now);
      }
    }
    rec.now = now;
    ch.poll(now, rec);
  }
}

}  // namespace

// A switch to a backup whose first PCR comes 13 ms later: what the old input sent after its
// last PCR does not leave in one burst once the old schedule's queue has gone (21 datagrams
// in one poll), nor do the backup's packets before its first PCR.
TEST(Pacer, SwitchReanchorsWithoutABurst) {
  Channel ch(one_channel(2, PacingMode::kPcr));
  const std::uint64_t start = 1000 * kMs;
  auto [in0, in1] = two_clocks(start);
  Recorder rec;
  run_switch(ch, in0, in1, rec, start, start + 2000 * kMs, start + 3000 * kMs);
  EXPECT_LE(worst_burst(rec, start + 3000 * kMs), 2u) << "datagrams sent in one poll (polled every 0.1 ms)";
}

// A switch to a backup whose first random access point (where the remux lets its video, and
// so its PCRs, through) comes 213 ms later: what the old input sent after its last PCR gets
// no PCR of its own timeline any more. It leaves as it came, after that PCR; it waited for
// kMaxUnscheduledNs and then left at once (43 datagrams, 40 ms of the stream, in one poll).
TEST(Pacer, SwitchToABackupWaitingForAKeyframeSendsTheOldTailWithoutABurst) {
  Channel ch(one_channel(2, PacingMode::kPcr));
  const std::uint64_t start = 1000 * kMs;
  auto [in0, in1] = two_clocks(start);
  std::size_t pcrs = 0;
  for (auto& x : in1)
    if (x.p.has_pcr() && pcrs++ % 12 != 7) x.p.bytes[5] = 0x10;  // a PCR, no random_access_indicator
  Recorder rec;
  run_switch(ch, in0, in1, rec, start, start + 2000 * kMs, start + 3000 * kMs);
  // The backup's first PCR let through (its first random access point, 2213 ms) anchors.
  const auto d = pcr_departures(rec);
  const auto first = std::find_if(d.begin(), d.end(), [](const Departure& x) { return x.pcr >= 5'000'000'000; });
  ASSERT_NE(first, d.end());
  EXPECT_EQ(first->t, start + 2213 * kMs + 100 * kMs);
  EXPECT_LE(worst_burst(rec, start + 3000 * kMs), 2u) << "datagrams sent in one poll (polled every 0.1 ms)";
}

// An operator's switch to a backup on another clock: its first PCR leaves 100 ms after it
// arrived and the schedule follows the backup's PCRs from there.
TEST(Pacer, SwitchAnchorsOnTheNewInputsFirstPcr) {
  Channel ch(one_channel(2, PacingMode::kPcr));
  Synth s0, s1;
  const std::uint64_t start = 1000 * kMs;
  auto in0 = stream(s0, start, 100, 50, [](std::size_t i) { return std::uint64_t{1000} + i * 40 * 27'000; });
  auto in1 = stream(s1, start + 13 * kMs, 100, 50,
                    [](std::size_t i) { return std::uint64_t{5'000'000'000} + i * 40 * 27'000; });
  Recorder rec;
  std::size_t n0 = 0, n1 = 0;
  for (std::uint64_t now = start; now <= start + 5000 * kMs; now += 100'000) {
    if (now == start + 2000 * kMs) ch.force_input(1, now);
    std::vector<TsPacket> batch;
    for (auto [in, next, input] : {std::tuple{&in0, &n0, 0u}, std::tuple{&in1, &n1, 1u}}) {
      while (*next < in->size() && (*in)[*next].t <= now) {
        batch.clear();
        while (*next < in->size() && (*in)[*next].t <= now && batch.size() < 7) batch.push_back((*in)[(*next)++].p);
        ch.push(input, batch, now);
      }
    }
    rec.now = now;
    ch.poll(now, rec);
  }
  const auto d = pcr_departures(rec);
  std::size_t backup = 0;
  std::uint64_t first_t = 0, first_pcr = 0;
  for (const auto& x : d) {
    if (x.pcr < 5'000'000'000) continue;
    if (backup++ == 0) {
      first_t = x.t;
      first_pcr = x.pcr;
    }
    EXPECT_EQ(x.t - first_t, pcr_ns(x.pcr - first_pcr)) << "backup PCR " << backup;
  }
  ASSERT_GT(backup, 40u);
  // The backup's first PCR after 2 s arrives at 2013 ms (its intervals start 13 ms later).
  EXPECT_EQ(first_t, start + 2013 * kMs + 100 * kMs);
}

// A full queue: the channel counts each packet it could not queue, and what it queued
// leaves: queued + lost = what the remux produced.
TEST(Pacer, QueueFullCountsEveryLostPacket) {
  Channel ch(one_channel());
  CountingTap tap;
  ch.add_tap(&tap, 0);
  Synth s;
  const std::uint64_t start = 1000 * kMs;
  auto in = stream(s, start, 100, 300, [](std::size_t i) { return std::uint64_t{1000} + i * 40 * 27'000; });
  std::vector<TsPacket> all;
  for (const auto& x : in) all.push_back(x.p);
  for (std::size_t k = 0; k < all.size(); k += 7)
    ch.push(0, std::span(all).subspan(k, std::min<std::size_t>(7, all.size() - k)), start);  // 4 s of stream at once
  Recorder rec;
  for (std::uint64_t now = start; now < start + 6000 * kMs; now += kMs) {
    rec.now = now;
    ch.poll(now, rec);
  }
  const ChannelStats st = ch.stats();
  EXPECT_EQ(st.packets_out, 16384u);
  EXPECT_EQ(rec.packets().size(), 16384u);
  EXPECT_EQ(st.packets_out + st.dropped_queue_full, tap.packets);
  EXPECT_EQ(ch.queue_dropped_packets(0), st.dropped_queue_full);
}

// A cbr output whose rate is below the stream's (2 Mbit/s for ~2.3): the queue grows by
// what the rate cannot carry. Each PCR is restamped by its packet's wait, so a wait beyond a
// decoder's buffering (MPEG's T-STD: at most 1 s in the buffers) puts every PCR past the
// PTS of its frames: set-top boxes show nothing. What does not fit in 1 s of the rate must
// be lost and counted. (The queue held 16384 packets, 12 s at 2 Mbit/s: after 12 s of
// input the wait was 1.7 s and growing, nothing counted; at 5 % over a 6 Mbit/s multiplex
// the first loss would be counted after 80 s, the stream long broken.)
TEST(Pacer, CbrBelowTheInputRateNeverHoldsAPacketForMoreThanASecondAndCountsWhatItLoses) {
  auto cfg = one_channel(1, PacingMode::kCbr);
  cfg.outputs[0].cbr_bps = 2'000'000;  // 1330 packets a second
  Channel ch(cfg);
  CountingTap tap;
  ch.add_tap(&tap, 0);
  Synth s;
  const std::uint64_t start = 1000 * kMs;
  auto in = stream(s, start, 300, 60, [](std::size_t i) { return i * 40 * 27'000; });  // 12 s, 1517 packets a second
  std::vector<std::uint64_t> arrived(s.serial);
  for (const Timed& x : in)
    if (x.p.pid() == kVideo) arrived[serial_of(x.p)] = x.t;
  Recorder rec;
  std::size_t next = 0;
  run(ch, in, next, rec, start, start + 16'000 * kMs, kMs);
  std::uint64_t worst_wait = 0;
  for (const auto& d : rec.sent)
    for (const TsPacket& p : d.packets)
      if (p.pid() == kVideo) worst_wait = std::max(worst_wait, d.t - arrived[serial_of(p)]);
  EXPECT_LE(worst_wait, 1001 * kMs) << "a packet waited " << worst_wait / kMs << " ms for its slot";
  const ChannelStats st = ch.stats();
  EXPECT_GT(st.dropped_queue_full, 0u) << "the rate is too low: packets are lost, and counted";
  EXPECT_EQ(st.packets_out + st.dropped_queue_full, tap.packets);
}

// Four schedules (PCR 7 and 4 per datagram, passthrough, CBR) from slow streams (the queue
// compacts) to fast ones (the ring wraps): every output carries every video packet once, in
// order.
TEST(Pacer, EveryScheduleCarriesEveryPacketInOrder) {
  for (const std::size_t per : {3u, 30u, 300u}) {
    auto cfg = one_channel();
    OutputConfig b;
    b.pacing = PacingMode::kPcr;
    b.packets_per_datagram = 4;
    b.address = 2;
    cfg.outputs.push_back(b);
    OutputConfig c;
    c.pacing = PacingMode::kPassthrough;
    c.address = 3;
    cfg.outputs.push_back(c);
    OutputConfig d;
    d.pacing = PacingMode::kCbr;
    d.cbr_bps = 20'000'000;
    d.address = 4;
    cfg.outputs.push_back(d);
    Channel ch(cfg);
    Synth s;
    const std::uint64_t start = 1000 * kMs;
    const std::size_t intervals = per <= 5 ? 3000 : 300;
    auto in = stream(s, start, intervals, per, [](std::size_t i) { return i * 40 * 27'000; });
    Recorder rec;
    std::size_t next = 0;
    run(ch, in, next, rec, start, start + intervals * 40 * kMs + 1000 * kMs, kMs);
    for (std::size_t o = 0; o < 4; ++o) {
      const auto v = serials(rec, o);
      ASSERT_EQ(v.size(), s.serial) << per << " per interval, output " << o;
      for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], i) << per << " per interval, output " << o;
    }
    EXPECT_EQ(ch.stats().dropped_queue_full, 0u);
  }
}

namespace {

// Encoder clock drift: the input's PCRs run `ppm` fast (or, negative, slow) against the
// arrival clock, for `seconds`. Returns, for each PCR, how long it waited in the pacer
// (departure - arrival) and the largest step between consecutive departures beyond the
// PCR interval (a hole in the output).
struct DriftRun {
  std::vector<std::int64_t> waits;
  std::int64_t worst_gap_ns = 0;
};
DriftRun run_with_drift(double ppm, std::size_t seconds) {
  Channel ch(one_channel());
  Synth s;
  const std::uint64_t start = 1000 * kMs;
  const std::size_t intervals = seconds * 25;
  auto in = stream(s, start, intervals, 4, [ppm](std::size_t i) {
    return static_cast<std::uint64_t>(static_cast<double>(i) * 40 * 27'000 * (1 + ppm * 1e-6));
  });
  Recorder rec;
  std::size_t next = 0;
  run(ch, in, next, rec, start, start + (seconds + 1) * 1000 * kMs, kMs, 7);
  const std::vector<Departure> d = pcr_departures(rec);
  EXPECT_EQ(d.size(), intervals);
  DriftRun r;
  for (std::size_t i = 0; i < d.size(); ++i) {
    r.waits.push_back(static_cast<std::int64_t>(d[i].t) - static_cast<std::int64_t>(start + i * 40 * kMs));
    if (i != 0) r.worst_gap_ns = std::max(r.worst_gap_ns, static_cast<std::int64_t>(d[i].t - d[i - 1].t) - 40 * static_cast<std::int64_t>(kMs));
  }
  return r;
}

}  // namespace

// The encoder's 27 MHz clock and the appliance's are never the same (MPEG allows 30 ppm for
// the encoder; ours, free-running, may be tens of ppm off too). The PCR schedule follows the
// input's rate: every PCR keeps waiting about the 100 ms it was anchored with, and the
// output never has a hole. Before, the schedule ran on the PCRs alone: with a slow clock the
// margin ran out (at 80 ppm after 21 min, at 30 ppm after 55), packets went late and a
// re-anchor left a 100-ms hole; with a fast one the queue grew towards a second.
TEST(Pacer, PcrScheduleFollowsAnEncoderClockThatDrifts) {
  for (const double ppm : {-80.0, 80.0}) {
    SCOPED_TRACE(std::to_string(ppm) + " ppm");
    const DriftRun r = run_with_drift(ppm, ppm < 0 ? 1500 : 300);
    ASSERT_FALSE(r.waits.empty());
    const auto [lo, hi] = std::minmax_element(r.waits.begin(), r.waits.end());
    EXPECT_GE(*lo, 90 * static_cast<std::int64_t>(kMs)) << "a PCR left with less than 90 ms of its margin";
    EXPECT_LE(*hi, 110 * static_cast<std::int64_t>(kMs)) << "a PCR waited more than 110 ms: the queue grows";
    EXPECT_LT(r.worst_gap_ns, 2 * static_cast<std::int64_t>(kMs)) << "a hole in the output";
  }
}

// A reload that changes an output from pcr to cbr pacing: the new cbr pacer takes over
// the old one's queue, whose PCR packets carry their pcr departure time (~100 ms after
// arrival), not their arrival. Restamped against that as if it were the arrival, each of
// them moved ~100 ms back against its byte position, then the PCRs of new packets
// (restamped against their real arrival) jumped ~100 ms forward.
TEST(Pacer, PcrToCbrReloadRestampsTheTakenOverPcrsAsTheNewOnes) {
  auto cfg = one_channel(1, PacingMode::kPcr);
  auto before = std::make_unique<Channel>(cfg);
  Synth s;
  const std::uint64_t start = 1000 * kMs;
  auto in = stream(s, start, 100, 20, [](std::size_t i) { return 1234 + i * 40 * 27'000; });
  Recorder rec;
  std::size_t next = 0;
  const std::uint64_t reload = start + 1000 * kMs;
  run(*before, in, next, rec, start, reload);
  auto cbr = cfg;
  cbr.outputs[0].pacing = PacingMode::kCbr;
  cbr.outputs[0].cbr_bps = 2'000'000;
  Channel after(cbr);
  after.continue_from(*before);
  before.reset();
  const std::size_t sent_before = rec.sent.size();
  run(after, in, next, rec, reload + 100'000, start + 5000 * kMs);
  std::vector<TsPacket> out;
  for (std::size_t k = sent_before; k < rec.sent.size(); ++k)
    out.insert(out.end(), rec.sent[k].packets.begin(), rec.sent[k].packets.end());
  ASSERT_GT(std::count_if(out.begin(), out.end(), [](const TsPacket& p) { return p.pid() == kVideo && p.has_pcr(); }),
            50);
  const double worst_ns = twincast::test::worst_pcr_position_error_ns(out, kVideo, 2'000'000);
  EXPECT_LT(worst_ns, 5'000'000) << "a PCR off its byte position after the reload by " << worst_ns / 1e6 << " ms";
}
