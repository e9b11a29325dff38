// One channel's pipeline, independent of DPDK: inputs in priority order -> failover
// selector -> remux engine (mpegts::Remuxer) -> datagrams of N TS packets -> pacer.
//
// The worker lcore that owns the channel calls push() with the TS packets each input
// delivered (from a UDP/RTP datagram or the SRT ring) and poll() on every loop turn;
// poll() hands every datagram whose departure time has come to the DatagramSink, once
// per configured output. The remuxed SPTS (after the selector and the remux engine,
// before the pacer) also goes to every PacketTap added with add_tap(): the multiplexes
// the channel belongs to, later the HLS packager. A channel with taps may have no
// outputs of its own. Nothing here allocates, locks, throws or logs after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "twincast/dataplane/config.hpp"
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

 protected:
  ~PacketTap() = default;
};

struct ChannelStats {
  std::uint64_t packets_in = 0;
  std::uint64_t packets_out = 0;
  std::uint64_t datagrams_out = 0;
  std::uint64_t dropped_inactive = 0;   // packets of inputs that are not the active one
  std::uint64_t dropped_queue_full = 0; // the output queue overflowed (the pacer fell behind)
  std::uint64_t switches = 0;
  std::size_t active_input = 0;
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

  // A snapshot; safe to call from any thread while the owning lcore runs the channel.
  [[nodiscard]] ChannelStats stats() const;
  [[nodiscard]] const ChannelConfig& config() const;
  // TR 101 290, MDI and bitrates of one input (active or not).
  [[nodiscard]] const mpegts::Analyzer& input_analyzer(std::size_t input) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::dataplane
