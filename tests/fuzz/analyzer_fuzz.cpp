// Feeds arbitrary packets to the analyzer with increasing times.
//
// Input: records of 1 control byte + 188 packet bytes. The control byte's low 7 bits are
// the time step (0 = same time: a burst; else step * 1.5 ms), bit 7 keeps the packet's
// first byte as it is (usually a bad sync byte); otherwise it is forced to 0x47. A
// control byte of exactly 0x80 also reports an aligner sync loss. Two analyzers run: one
// on these times with short timeouts, one on PcrClock times with the defaults.
#include <cstddef>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "twincast/mpegts/analyzer.hpp"

using namespace twincast::mpegts;

namespace {
void check(const Analyzer& a, std::uint64_t packets) {
  const Report r = a.report();
  if (r.packets != packets) __builtin_trap();
  std::uint64_t per_pid = 0;
  for (const auto& p : r.pids) {
    per_pid += p.packets;
    if (p.pid >= kPidCount) __builtin_trap();
  }
  if (per_pid + r.count(Check::kSyncByteError) != packets) __builtin_trap();
  if (r.mdi_last.df_ms < 0 || r.mdi_max.df_ms < r.mdi_last.df_ms) __builtin_trap();
  // PCR jitter and accuracy: finite and not negative, per PID and over the last interval.
  for (const auto& p : r.pcr)
    if (!(p.max_jitter_ns >= 0 && std::isfinite(p.max_jitter_ns) && p.max_accuracy_ns >= 0 && std::isfinite(p.max_accuracy_ns)))
      __builtin_trap();
  // A repetition interval is measured only between PCR values no further apart than a
  // jump (beyond that it is a discontinuity).
  for (const auto& p : r.pcr)
    if (p.max_pcr_interval_ns > a.config().pcr_max_jump_ns) __builtin_trap();
  const PcrInterval& last = a.pcr_last();
  if (!(last.jitter_ns >= 0 && std::isfinite(last.jitter_ns) && last.accuracy_ns >= 0 && std::isfinite(last.accuracy_ns)))
    __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kRecord = 1 + kPacketSize;
  AnalyzerConfig fast;
  fast.pat_max_interval_ns = 20'000'000;
  fast.pmt_max_interval_ns = 20'000'000;
  fast.pid_max_absence_ns = 30'000'000;
  fast.pts_max_interval_ns = 30'000'000;
  fast.mdi_interval_ns = 50'000'000;
  fast.bitrate_window_ns = 40'000'000;
  fast.tick_ns = 1'000'000;
  Analyzer a(fast);
  Analyzer b;
  PcrClock clock;
  std::uint64_t t = 0;
  std::uint64_t n = 0;
  for (std::size_t off = 0; off + kRecord <= size; off += kRecord) {
    const std::uint8_t ctrl = data[off];
    TsPacket p;
    std::memcpy(p.bytes.data(), data + off + 1, kPacketSize);
    if ((ctrl & 0x80) == 0) p.bytes[0] = kSyncByte;
    if (ctrl == 0x80) {
      a.on_aligner_sync_loss();
      b.on_aligner_sync_loss();
    }
    t += std::uint64_t{ctrl & 0x7Fu} * 1'500'000;
    a.push(p, t);
    b.push(p, clock.push(p));
    ++n;
  }
  check(a, n);
  check(b, n);
  return 0;
}
