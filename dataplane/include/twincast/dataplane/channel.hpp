// One channel's pipeline, independent of DPDK: inputs in priority order -> failover
// selector -> remux engine (mpegts::Remuxer) -> datagrams of N TS packets -> pacer.
//
// The worker lcore that owns the channel calls push() with the TS packets each input
// delivered (from a UDP/RTP datagram or the SRT ring) and poll() on every loop turn;
// poll() hands every datagram whose departure time has come to the DatagramSink, once
// per configured output. The remuxed SPTS (after the selector and the remux engine,
// before the pacer) also goes to every PacketTap added with add_tap(): the multiplexes
// the channel belongs to and the OTT feed (ott_feed.hpp) of a channel with HLS. A channel with taps may have no
// outputs of its own. Nothing here allocates, locks, throws or logs after construction.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "twincast/dataplane/config.hpp"
#include "twincast/dataplane/pacing.hpp"
#include "twincast/mpegts/analyzer.hpp"
#include "twincast/mpegts/packet.hpp"

namespace twincast::dataplane {

// Receives paced datagrams. `packets` is valid only during the call (1..7 packets).
class DatagramSink {
 public:
  virtual void send(std::size_t output, std::span<const mpegts::TsPacket> packets) = 0;

 protected:
  ~DatagramSink() = default;
};

// Receives a channel's remuxed packets as they leave the remux engine, on the lcore that
// pushes into the channel. `packets` is valid only during the call. Must not allocate,
// lock, throw or log.
class PacketTap {
 public:
  virtual void on_packets(std::size_t slot, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) = 0;
  // The channel switched inputs (failover, revert or an operator's command): what follows
  // is another source's timeline, starting at a random access point.
  virtual void on_discontinuity(std::size_t /*slot*/) {}

 protected:
  ~PacketTap() = default;
};

// A channel's health as its selector sees it. X-macro: enum value, name (API state).
#define TWINCAST_CHANNEL_HEALTH(X)                                              \
  X(kOk, "ok")             /* the active input is healthy, and so are the others */ \
  X(kDegraded, "degraded") /* the active input is healthy, a standby one is not */  \
  X(kDown, "down")         /* the active input is unhealthy (the output pauses) */

enum class ChannelHealth : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_CHANNEL_HEALTH(TWINCAST_X)
#undef TWINCAST_X
};
[[nodiscard]] constexpr const char* channel_health_name(ChannelHealth state) {
  switch (state) {
#define TWINCAST_X(e, s) \
  case ChannelHealth::e: \
    return s;
    TWINCAST_CHANNEL_HEALTH(TWINCAST_X)
#undef TWINCAST_X
  }
  return "unknown";
}

// A snapshot of one input's analysis (mpegts::Analyzer) and health, published by the
// owning lcore at most every Channel::kSnapshotIntervalNs and read from any thread. The
// fields of one snapshot are consistent with each other (one publication).
struct InputSnapshot {
  bool published = false;            // false: nothing published yet (or no such input)
  std::uint64_t published_ns = 0;    // the lcore's now_ns of the publication
  bool seen = false;                 // a packet arrived
  std::uint64_t last_packet_ns = 0;  // its arrival time (valid when seen)
  bool healthy = false;              // the selector considers it usable
  bool active = false;               // the selector's active input
  std::uint64_t packets = 0;         // TS packets analysed since start
  std::uint64_t bytes = 0;
  double bitrate_bps = 0;            // over the analyzer's last complete window (1 s); 0 after 1 s silent
  std::array<std::uint64_t, mpegts::kCheckCount> tr101290{};  // counts, by mpegts::Check
  bool mdi_valid = false;            // the last MDI interval
  double mdi_df_ms = 0;
  double mdi_mlr = 0;                // packets lost per second
  // PCR timing over the same interval (mpegts::PcrInterval): the worst PCR overall jitter
  // (arrival times) and, on a constant-rate stream, the worst PCR accuracy (byte positions).
  bool pcr_valid = false;
  double pcr_jitter_ns = 0;
  bool pcr_accuracy_measured = false;
  double pcr_accuracy_ns = 0;

  [[nodiscard]] std::uint64_t count(mpegts::Check c) const { return tr101290[static_cast<std::size_t>(c)]; }
};

struct ChannelStats {
  std::uint64_t packets_in = 0;
  // packets_out and datagrams_out: the first output's schedule's (every schedule carries the
  // same packets; each output's own counters are Dataplane::output_stats).
  std::uint64_t packets_out = 0;
  std::uint64_t datagrams_out = 0;
  std::uint64_t dropped_inactive = 0;   // packets of inputs that are not the active one
  std::uint64_t dropped_queue_full = 0; // lost at a full output queue (each packet once, whichever schedules lost it)
  std::uint64_t switches = 0;
  std::size_t active_input = 0;
  // As of the last input snapshot: kDown when the active input is unhealthy, kDegraded
  // when a standby one is, else kOk; alarm == (state != kOk). Stand-ins leave kOk.
  ChannelHealth state = ChannelHealth::kOk;
  bool alarm = false;
  // The remuxed stream's bitrate over the last whole second (as of the last snapshot;
  // 0 in the first second). Stand-ins leave 0.
  double bitrate_bps = 0;
  // The remux's, as of the last snapshot (Stand-ins leave 0): packets dropped by the
  // service's PID rules, and while the output waited for a unit start (video: a random
  // access point) after a switch, and with a corrupted sync byte; discontinuity_indicators
  // it set (switches, reloads, timeline jumps the source did not flag); EIT sections lost at
  // its full EIT queue.
  std::uint64_t dropped_by_rule = 0;
  std::uint64_t dropped_resync = 0;
  std::uint64_t dropped_sync = 0;
  std::uint64_t discontinuities_marked = 0;
  std::uint64_t eit_dropped = 0;
};

class Channel {
 public:
  // Throws std::invalid_argument for a configuration the pipeline cannot run (no inputs,
  // packets_per_datagram outside 1..7, cbr without cbr_bps). No outputs is allowed: the
  // channel then only feeds its taps.
  explicit Channel(const ChannelConfig& config);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Packets that input `input` delivered at `now_ns` (monotonic).
  void push(std::size_t input, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns);
  // Sends every datagram due at `now_ns` to `sink`, for each output.
  void poll(std::uint64_t now_ns, DatagramSink& sink);
  // Also hands the remuxed packets to `tap`, tagged with `slot` (the tap's own index for
  // this channel). Set-up only: before the first push(); the tap must outlive the channel.
  void add_tap(PacketTap* tap, std::size_t slot);
  // Operator command: make `input` the active one now.
  void force_input(std::size_t input, std::uint64_t now_ns);
  // This channel replaces `previous` at the same receivers (a reload changed its
  // configuration): its output goes on with previous's continuity counters and table
  // versions (mpegts::Remuxer::continue_from), so they see a discontinuity_indicator, not
  // a CC error. It also sends what previous had queued and not sent yet, each output what
  // its own schedule had queued (Pacers::take_over; outputs known by port, group and UDP
  // port), so no output loses those packets, also when its pacing, packets per datagram or
  // place in the list changed (unless it now shares a schedule with an output that was
  // further ahead or behind). It goes on from the input previous was on (forced or not),
  // where that is still one of its inputs. On the owning lcore, before the first push(); no
  // allocation.
  void continue_from(const Channel& previous);
  // A reload renamed the channel (ConfigDiff::channels_updated): the service's name,
  // provider and LCN become `next`'s; its SDT and NIT (sent from the first LCN on) change
  // at once with new versions, the streams go on untouched (mpegts::Remuxer::describe).
  // config() stays as constructed. On the owning lcore, between pushes.
  void describe(const ChannelConfig& next);
  // A reload moved the channel's outputs (ConfigDiff::channels_updated; `outputs`, as many,
  // on the same schedules): continue_from() in a later restart knows them by their new
  // destinations (Pacers::readdress). config() stays as constructed. On the control side,
  // once the worker runs the reload's plan; it may allocate.
  void readdress(const std::vector<OutputConfig>& outputs);

  // A snapshot; safe to call from any thread while the owning lcore runs the channel.
  [[nodiscard]] ChannelStats stats() const;
  [[nodiscard]] const ChannelConfig& config() const;
  // TR 101 290, MDI and bitrates of one input (active or not). Only on the owning lcore
  // (or while it is stopped): from other threads use input_snapshot().
  [[nodiscard]] const mpegts::Analyzer& input_analyzer(std::size_t input) const;
  // Input snapshots are published (on the lcore, from push()/poll()) this often at most.
  static constexpr std::uint64_t kSnapshotIntervalNs = 100'000'000;
  // The last published snapshot of `input`; safe from any thread. Unknown input: {}.
  [[nodiscard]] InputSnapshot input_snapshot(std::size_t input) const;
  // How late datagrams left against their schedule: `output`'s (outputs with the same
  // packets_per_datagram, pacing and cbr_bps share one), or every schedule's with
  // kAllOutputs; safe from any thread.
  [[nodiscard]] PacingHistogram pacing_lateness(std::size_t output = kAllOutputs) const;
  // Packets lost at `output`'s schedule's full queue; with kAllOutputs each lost packet
  // once (ChannelStats::dropped_queue_full). Safe from any thread.
  [[nodiscard]] std::uint64_t queue_dropped_packets(std::size_t output = kAllOutputs) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::dataplane
