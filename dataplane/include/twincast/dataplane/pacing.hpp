// Pacing lateness: how much later than its due time a datagram left (the time of the
// poll that sent it minus the departure time the pacer gave it). The bucket bounds are
// declared here once; control's REST API and /metrics use them too.
//
// Lateness is dominated by the poll loop's granularity: a datagram due between two loop
// turns leaves at the next one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace twincast::dataplane {

// Upper bounds (inclusive, as Prometheus' "le") of the lateness buckets; a last bucket
// (+Inf) takes the rest.
inline constexpr std::array<std::uint64_t, 8> kPacingLatenessBoundsNs = {
    10'000, 50'000, 100'000, 200'000, 500'000, 1'000'000, 5'000'000, 20'000'000};
inline constexpr std::size_t kPacingLatenessBucketCount = kPacingLatenessBoundsNs.size() + 1;
// The same bounds in seconds.
inline constexpr std::array<double, kPacingLatenessBoundsNs.size()> kPacingLatenessBoundsSeconds = [] {
  std::array<double, kPacingLatenessBoundsNs.size()> s{};
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<double>(kPacingLatenessBoundsNs[i]) / 1e9;  // exact: 10'000 -> 1e-05
  return s;
}();
static_assert(kPacingLatenessBoundsSeconds[0] == 10e-6 && kPacingLatenessBoundsSeconds[3] == 200e-6);

// The bucket of a lateness: the first whose bound is >= it, else the +Inf one.
[[nodiscard]] constexpr std::size_t pacing_lateness_bucket(std::uint64_t lateness_ns) {
  std::size_t b = 0;
  while (b < kPacingLatenessBoundsNs.size() && lateness_ns > kPacingLatenessBoundsNs[b]) ++b;
  return b;
}

// pacing_lateness(output): every output's datagrams together.
inline constexpr std::size_t kAllOutputs = static_cast<std::size_t>(-1);

// A snapshot of a lateness histogram. Counts per bucket (not cumulative), by
// kPacingLatenessBoundsNs, the last one +Inf.
struct PacingHistogram {
  std::array<std::uint64_t, kPacingLatenessBucketCount> buckets{};
  std::uint64_t sum_ns = 0;  // total lateness of the datagrams counted

  [[nodiscard]] std::uint64_t count() const {
    std::uint64_t n = 0;
    for (std::uint64_t b : buckets) n += b;
    return n;
  }
  [[nodiscard]] double sum_seconds() const { return static_cast<double>(sum_ns) / 1e9; }
};

}  // namespace twincast::dataplane
