// One MPTS output built from several channels, independent of DPDK: each member
// channel's remuxed SPTS arrives through the channel's PacketTap (slot = the member's
// index in MultiplexConfig::channels) -> remux engine (mpegts::Remuxer, one input per
// member: PID collisions remapped, the member's service_id, name, provider, LCN and
// pmt_pid, PAT/PMT/SDT/NIT regenerated with the multiplex's transport_stream_id,
// original_network_id, network_id and network_name) -> datagrams -> the same pacer as a
// channel's.
//
// Pacing: cbr is the usual choice for an MPTS (a constant rate, null-stuffed). pcr
// follows the PCR of the first member's service only (the other services' packets are
// spread between those PCRs in the order they arrived); passthrough sends as they came.
//
// The lcore that owns the member channels calls on_packets() (through the channels) and
// poll(). Nothing here allocates, locks, throws or logs after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "twincast/dataplane/channel.hpp"
#include "twincast/dataplane/config.hpp"
#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/program.hpp"

namespace twincast::dataplane {

struct MultiplexStats {
  std::uint64_t packets_in = 0;          // remuxed packets of the member channels
  std::uint64_t packets_out = 0;         // media and PSI packets sent (null stuffing not counted)
  std::uint64_t datagrams_out = 0;
  std::uint64_t dropped_queue_full = 0;  // lost at a full output queue, each packet once (cbr_bps below the members' total?)
};

class Multiplex final : public PacketTap {
 public:
  // `channels` is the appliance's channel list; MultiplexConfig::channels names members
  // in it. Throws std::invalid_argument for an unknown or repeated member, no members,
  // no outputs, or what the pacer or the remux engine cannot run (duplicate service ids
  // or pmt_pids among the members, packets_per_datagram outside 1..7, cbr without a rate).
  Multiplex(const MultiplexConfig& config, const std::vector<ChannelConfig>& channels);
  ~Multiplex();
  Multiplex(const Multiplex&) = delete;
  Multiplex& operator=(const Multiplex&) = delete;

  // PacketTap: remuxed packets of member `slot` at `now_ns`.
  void on_packets(std::size_t slot, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) override;
  // PacketTap: member `slot` switched inputs (cbr outputs restart its PCR PID's clock).
  void on_discontinuity(std::size_t slot) override;
  // Sends every datagram due at `now_ns` to `sink`, for each output.
  void poll(std::uint64_t now_ns, DatagramSink& sink);
  // This multiplex replaces `previous` (same id, rebuilt by a reload) at the same
  // receivers: as Channel::continue_from. On the owning lcore, before the first packet.
  void continue_from(const Multiplex& previous);
  // A reload renamed member `slot` (ConfigDiff::channels_updated): its service's name,
  // provider and LCN in the multiplex's SDT and NIT become `member`'s. On the owning lcore,
  // between pushes.
  void describe_member(std::size_t slot, const ChannelConfig& member);

  // Index into the `channels` given to the constructor of member `slot`.
  [[nodiscard]] std::size_t member_channel(std::size_t slot) const;
  [[nodiscard]] std::size_t member_count() const;
  [[nodiscard]] const MultiplexConfig& config() const;
  // A snapshot; safe to call from any thread while the owning lcore runs the multiplex.
  [[nodiscard]] MultiplexStats stats() const;
  // How late datagrams left against their schedule: of `output`'s schedule (an output
  // index), or of all of them. Safe from any thread.
  [[nodiscard]] PacingHistogram pacing_lateness(std::size_t output = kAllOutputs) const;
  // Packets lost at `output`'s schedule's full queue, or (kAllOutputs) at any, each once.
  // Safe from any thread.
  [[nodiscard]] std::uint64_t queue_dropped_packets(std::size_t output = kAllOutputs) const;
  // What the generated tables say. Only on the owning lcore (or while it is stopped).
  [[nodiscard]] const mpegts::ProgramModel& output_model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::dataplane
