// Arrival times for the packets of a recorded stream.
//
// A file has no arrival times; the best stand-in is its own clock. file_times() takes
// the PCRs of the first PID that carries them and:
//  - when the stream is constant-rate (every PCR interval within kCbrTolerance of the
//    overall rate), places every packet on that constant-rate line, so the PCR overall
//    jitter the analyzer reports is each PCR's distance from where a CBR stream puts it;
//  - otherwise interpolates linearly between consecutive PCRs by byte position, which
//    makes each PCR exactly on time.
// (The analyzer's PCR_accuracy_error does not depend on these times: it measures PCR_AC
// from byte positions itself, on constant-rate stretches; see mpegts/README.md.)
// Discontinuities (flagged, backwards, or more than kMaxPcrGap ahead) start a new
// segment that continues the time without a jump. Packets before the first PCR and
// after the last one are placed with the nearest segment's rate.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "twincast/mpegts/packet.hpp"

namespace twincast::mpegts {

struct FileTimes {
  std::vector<std::uint64_t> ns;  // one per packet, never decreasing, 0 at the first PCR
  bool constant_rate = false;
  double rate_bps = 0;            // overall rate between the first and the last PCR
  std::uint16_t pcr_pid = kNullPid;
  std::uint64_t n_pcr = 0;
  std::uint64_t n_discontinuities = 0;
};

inline constexpr double kCbrTolerance = 0.01;
inline constexpr std::uint64_t kMaxPcrGapNs = 1'000'000'000;

[[nodiscard]] FileTimes file_times(std::span<const TsPacket> packets);

}  // namespace twincast::mpegts
