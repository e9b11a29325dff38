#include "twincast/mpegts/file_times.hpp"

#include <algorithm>
#include <cmath>

namespace twincast::mpegts {

namespace {
struct Anchor {
  std::size_t index;    // packet index
  std::uint64_t ns;     // time of that packet
  bool starts_segment;  // a discontinuity: no interpolation from the previous anchor
};
}  // namespace

FileTimes file_times(std::span<const TsPacket> packets) {
  FileTimes out;
  out.ns.assign(packets.size(), 0);
  if (packets.empty()) return out;

  // PCR anchors on the first PCR PID, with times continued across discontinuities.
  std::vector<Anchor> anchors;
  std::uint64_t last_pcr = 0;
  for (std::size_t i = 0; i < packets.size(); ++i) {
    const TsPacket& p = packets[i];
    if (!p.has_sync() || !p.has_pcr()) continue;
    if (out.pcr_pid == kNullPid) out.pcr_pid = p.pid();
    if (p.pid() != out.pcr_pid) continue;
    const std::uint64_t pcr = p.pcr();
    if (anchors.empty()) {
      anchors.push_back({i, 0, true});
    } else {
      const std::uint64_t delta = pcr_delta(last_pcr, pcr);
      const std::uint64_t delta_ns = delta * 1000 / 27;
      if (p.discontinuity() || delta > kPcrWrap / 2 || delta_ns > kMaxPcrGapNs) {
        ++out.n_discontinuities;
        anchors.push_back({i, 0, true});  // time filled in below
      } else {
        anchors.push_back({i, anchors.back().ns + delta_ns, false});
      }
    }
    last_pcr = pcr;
  }
  out.n_pcr = anchors.size();
  if (anchors.size() < 2) return out;  // no clock: every packet at 0

  // Rates per interval; a segment start inherits the previous interval's rate.
  const auto bytes_between = [](std::size_t a, std::size_t b) { return static_cast<double>((b - a) * kPacketSize * 8); };
  std::vector<double> rate(anchors.size(), 0.0);  // rate of the interval ending at anchor k
  double last_rate = 0;
  for (std::size_t k = 1; k < anchors.size(); ++k) {
    if (!anchors[k].starts_segment && anchors[k].ns > anchors[k - 1].ns) {
      last_rate = bytes_between(anchors[k - 1].index, anchors[k].index) * 1e9 / static_cast<double>(anchors[k].ns - anchors[k - 1].ns);
    }
    rate[k] = last_rate;
  }
  double first_rate = 0;
  for (double r : rate)
    if (r > 0) {
      first_rate = r;
      break;
    }
  if (first_rate <= 0) return out;
  for (auto& r : rate)
    if (r <= 0) r = first_rate;
  for (std::size_t k = 1; k < anchors.size(); ++k) {
    if (!anchors[k].starts_segment) continue;
    // Continue the time from the previous anchor at the previous rate, then shift the
    // rest of the new segment by the same amount.
    const double gap_ns = bytes_between(anchors[k - 1].index, anchors[k].index) * 1e9 / rate[k];
    const std::uint64_t base = anchors[k - 1].ns + static_cast<std::uint64_t>(gap_ns);
    const std::uint64_t old = anchors[k].ns;
    for (std::size_t j = k; j < anchors.size() && (j == k || !anchors[j].starts_segment); ++j) anchors[j].ns = anchors[j].ns - old + base;
  }

  // Constant rate? Every interval within the tolerance of the overall rate.
  const Anchor& first = anchors.front();
  const Anchor& last = anchors.back();
  out.rate_bps = last.ns > first.ns ? bytes_between(first.index, last.index) * 1e9 / static_cast<double>(last.ns - first.ns) : 0;
  out.constant_rate = out.n_discontinuities == 0 && out.rate_bps > 0;
  for (std::size_t k = 1; k < anchors.size() && out.constant_rate; ++k)
    out.constant_rate = std::fabs(rate[k] - out.rate_bps) <= kCbrTolerance * out.rate_bps;

  auto at = [](double ns) { return ns <= 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(std::llround(ns)); };
  if (out.constant_rate) {
    const double ns_per_packet = kPacketSize * 8 * 1e9 / out.rate_bps;
    for (std::size_t i = 0; i < packets.size(); ++i)
      out.ns[i] = at((static_cast<double>(i) - static_cast<double>(first.index)) * ns_per_packet);
  } else {
    // Piecewise linear between anchors; before the first and after the last, the
    // nearest interval's rate.
    std::size_t k = 0;
    for (std::size_t i = 0; i < packets.size(); ++i) {
      while (k + 1 < anchors.size() && anchors[k + 1].index <= i) ++k;
      const Anchor& a = anchors[k];
      double t = 0;
      if (i < a.index) {  // before the first anchor
        t = static_cast<double>(a.ns) - bytes_between(i, a.index) * 1e9 / rate[1];
      } else if (k + 1 < anchors.size() && !anchors[k + 1].starts_segment) {
        const Anchor& b = anchors[k + 1];
        t = static_cast<double>(a.ns) + static_cast<double>(b.ns - a.ns) * static_cast<double>(i - a.index) / static_cast<double>(b.index - a.index);
      } else {
        const double r = k + 1 < anchors.size() ? rate[k + 1] : rate[k];
        t = static_cast<double>(a.ns) + bytes_between(a.index, i) * 1e9 / r;
      }
      out.ns[i] = at(t);
    }
  }
  for (std::size_t i = 1; i < out.ns.size(); ++i) out.ns[i] = std::max(out.ns[i], out.ns[i - 1]);
  return out;
}

}  // namespace twincast::mpegts
