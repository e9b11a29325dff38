// Shared by the DPDK-free pipeline tests (channel_test, pacer_test, multiplex_test): a test channel's config, a sink that records
// every datagram with its time, a continuity check and an ffmpeg decode check. Header-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tests_common.hpp"
#include "twincast/dataplane/channel.hpp"
#include "twincast/mpegts/packet.hpp"

namespace twincast::test {

// A channel "test" (service 5, PMT 0x1000) with `n_inputs` inputs in0, in1, ... and one
// output paced by `pacing`; revert hold-off 1 s.
inline dataplane::ChannelConfig one_channel(std::size_t n_inputs = 1,
                                            dataplane::PacingMode pacing = dataplane::PacingMode::kPcr) {
  dataplane::ChannelConfig c;
  c.id = "test";
  c.name = "Test";
  c.service_id = 5;
  c.pmt_pid = 0x1000;
  for (std::size_t i = 0; i < n_inputs; ++i) {
    dataplane::InputConfig in;
    in.name = "in" + std::to_string(i);
    c.inputs.push_back(in);
  }
  dataplane::OutputConfig o;
  o.pacing = pacing;
  c.outputs.push_back(o);
  c.failover.revert_holdoff_ms = 1000;
  return c;
}

// One datagram a Recorder received: when, for which output, its packets.
struct Sent {
  std::uint64_t t;
  std::size_t output;
  std::vector<mpegts::TsPacket> packets;
};

// A DatagramSink that keeps everything, stamped with `now` (set by the test before a poll).
struct Recorder final : dataplane::DatagramSink {
  std::uint64_t now = 0;
  std::vector<Sent> sent;
  void send(std::size_t output, std::span<const mpegts::TsPacket> packets) override {
    sent.push_back({now, output, {packets.begin(), packets.end()}});
  }
  // Every packet sent to `output`, in order.
  std::vector<mpegts::TsPacket> packets(std::size_t output = 0) const {
    std::vector<mpegts::TsPacket> out;
    for (const auto& s : sent)
      if (s.output == output) out.insert(out.end(), s.packets.begin(), s.packets.end());
    return out;
  }
};

// Continuity counter errors over `pkts` (null packets and packets without payload skipped;
// a repeated counter and a discontinuity flag are not errors).
inline std::size_t cc_errors(const std::vector<mpegts::TsPacket>& pkts) {
  std::map<std::uint16_t, int> last;
  std::size_t errors = 0;
  for (const auto& p : pkts) {
    if (p.pid() == mpegts::kNullPid || !p.has_payload()) continue;
    auto it = last.find(p.pid());
    if (it != last.end() && !p.discontinuity() && p.cc() != ((it->second + 1) & 0xF) && p.cc() != it->second) ++errors;
    last[p.pid()] = p.cc();
  }
  return errors;
}

// A packet's bytes with its PCR (if it has one) zeroed: cbr outputs restamp PCRs to their
// slots, so the same packet on another schedule differs there only.
inline std::array<std::uint8_t, mpegts::kPacketSize> pcr_blind(mpegts::TsPacket p) {
  if (p.has_pcr()) p.set_pcr(0);
  return p.bytes;
}

// The worst difference, in ns, between a PCR of `pid` and its byte position in `pkts` sent
// at a constant `bps` (TR 101 290 PCR_AC): each PCR against the first one's.
inline double worst_pcr_position_error_ns(const std::vector<mpegts::TsPacket>& pkts, std::uint16_t pid, double bps) {
  bool first = true;
  std::uint64_t pcr0 = 0;
  std::size_t at0 = 0;
  double worst = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    if (pkts[i].pid() != pid || !pkts[i].has_pcr()) continue;
    if (first) {
      pcr0 = pkts[i].pcr();
      at0 = i;
      first = false;
      continue;
    }
    const double pcr_ns = static_cast<double>((pkts[i].pcr() + mpegts::kPcrWrap - pcr0) % mpegts::kPcrWrap) / 27.0 * 1000.0;
    const double position_ns = static_cast<double>(i - at0) * mpegts::kPacketSize * 8.0 / bps * 1e9;
    worst = std::max(worst, std::abs(pcr_ns - position_ns));
  }
  return worst;
}

// How far the PCRs on `pid` stray from a straight line through them against their byte
// positions, peak to peak (ns), over the PCRs from `skip_ns` of stream on (at `bps`): what a
// receiver's clock recovery sees as jitter. The line's slope is fitted, not taken from
// `bps`: PCRs that follow an encoder clock some ppm off ours are on a line too.
inline double pcr_position_spread_ns(const std::vector<mpegts::TsPacket>& pkts, std::uint16_t pid, double bps,
                                     double skip_ns = 0) {
  const double packet_ns = mpegts::kPacketSize * 8.0 / bps * 1e9;
  std::vector<std::pair<double, double>> points;  // (byte position, PCR), ns from the first
  std::uint64_t pcr0 = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    if (pkts[i].pid() != pid || !pkts[i].has_pcr() || static_cast<double>(i) * packet_ns < skip_ns) continue;
    if (points.empty()) pcr0 = pkts[i].pcr();
    const double pcr_ns = static_cast<double>((pkts[i].pcr() + mpegts::kPcrWrap - pcr0) % mpegts::kPcrWrap) / 27.0 * 1000.0;
    points.emplace_back(static_cast<double>(i) * packet_ns, pcr_ns);
  }
  if (points.size() < 3) return 0;
  double mx = 0, my = 0;
  for (const auto& [x, y] : points) {
    mx += x;
    my += y;
  }
  mx /= static_cast<double>(points.size());
  my /= static_cast<double>(points.size());
  double sxx = 0, sxy = 0;
  for (const auto& [x, y] : points) {
    sxx += (x - mx) * (x - mx);
    sxy += (x - mx) * (y - my);
  }
  const double slope = sxy / sxx;
  double lo = 0, hi = 0;
  for (const auto& [x, y] : points) {
    const double r = y - my - slope * (x - mx);
    lo = std::min(lo, r);
    hi = std::max(hi, r);
  }
  return hi - lo;
}

// The worst step between consecutive PCRs on `pid` (ns), over the PCRs from `skip_ns` of
// stream on (at `bps`): each PCR's distance from the one before against the bytes between
// them, what a receiver's clock recovery sees as a jump. A PCR with the
// discontinuity_indicator is not judged (a receiver re-locks on it).
inline double worst_pcr_step_ns(const std::vector<mpegts::TsPacket>& pkts, std::uint16_t pid, double bps,
                                double skip_ns = 0) {
  const double packet_ns = mpegts::kPacketSize * 8.0 / bps * 1e9;
  bool have = false;
  std::uint64_t last_pcr = 0;
  std::size_t last_at = 0;
  double worst = 0;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    if (pkts[i].pid() != pid || !pkts[i].has_pcr()) continue;
    if (have && !pkts[i].discontinuity() && static_cast<double>(i) * packet_ns >= skip_ns) {
      auto ticks = static_cast<double>((pkts[i].pcr() + mpegts::kPcrWrap - last_pcr) % mpegts::kPcrWrap);
      if (ticks > static_cast<double>(mpegts::kPcrWrap / 2)) ticks -= static_cast<double>(mpegts::kPcrWrap);  // went back
      worst = std::max(worst, std::abs(ticks / 27.0 * 1000.0 - static_cast<double>(i - last_at) * packet_ns));
    }
    have = true;
    last_pcr = pkts[i].pcr();
    last_at = i;
  }
  return worst;
}

// What ffmpeg says decoding `pkts` (written to `<temp_dir(tag)>/<file_name>`): "" when clean,
// "exit N: ..." when it failed.
inline std::string decode_errors(const std::vector<mpegts::TsPacket>& pkts, const std::string& tag,
                                 const std::string& file_name) {
  const auto dir = temp_dir(tag);
  const auto file = dir / file_name;
  write_packets(file, pkts);
  const auto r = run("ffmpeg -nostdin -v error -i " + shell_quote(file.string()) + " -map 0 -f null -");
  std::filesystem::remove_all(dir);
  return r.exit_code == 0 ? r.out : "exit " + std::to_string(r.exit_code) + ": " + r.out;
}

}  // namespace twincast::test
