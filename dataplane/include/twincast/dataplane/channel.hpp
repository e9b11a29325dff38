// One channel's pipeline, independent of DPDK: inputs in priority order -> failover
// selector -> remux engine (mpegts::Remuxer) -> datagrams of N TS packets -> pacer.
//
// The worker lcore that owns the channel calls push() with the TS packets each input
// delivered (from a UDP/RTP datagram or the SRT ring) and poll() on every loop turn;
// poll() hands every datagram whose departure time has come to the DatagramSink, once
// per configured output. Nothing here allocates, locks, throws or logs after
// construction.
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
  // Throws std::invalid_argument for a configuration the pipeline cannot run.
  explicit Channel(const ChannelConfig& config);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Packets that input `input` delivered at `now_ns` (monotonic).
  void push(std::size_t input, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns);
  // Sends every datagram due at `now_ns` to `sink`, for each output.
  void poll(std::uint64_t now_ns, DatagramSink& sink);
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
