// DPDK bring-up and the worker: EAL arguments from the config, ports (one RX and one TX
// queue each, a mempool per port), and one worker lcore that runs the poll loop:
//
//   RX burst (32) -> Ethernet [VLAN] -> ARP request for us: reply (the same mbuf);
//                                       ARP reply/request to us from a next hop: learn its MAC
//                                    -> IGMP query: reports for our groups
//                                    -> IPv4/UDP -> FlowClassifier -> [RTP strip, dup drop]
//                                       -> 188-byte packets -> ChannelPipeline::push()
//   every channel: poll(now, sink) -> one mbuf per datagram per output -> TX burst
//   every multiplex (fed by its member channels' taps): the same
//   every channel with HLS: its remuxed SPTS also into its OttFeed ring (for the packager)
//
// Nothing in the loop allocates from the heap, locks, throws or logs, once an input's
// PSI/SI is known (a new or changed table is decoded by libdvbpsi, which allocates;
// tests/dataplane/steady_alloc_test.cpp counts the rest at zero). Counters have one
// writer (the worker) and are read by the control side with relaxed atomic loads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "twincast/dataplane/channel.hpp"
#include "twincast/dataplane/config.hpp"
#include "twincast/dataplane/multiplex.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/dataplane/pacing.hpp"
#include "twincast/mpegts/packet.hpp"

struct rte_mbuf;
struct rte_mempool;

namespace twincast::dataplane {
// An SRT input's way into the worker (Dataplane::external_input).
struct ExternalInput;
}  // namespace twincast::dataplane

namespace twincast::dataplane {

// Why the data plane dropped a frame or a datagram: the enum, its name and the metric label.
#define TWINCAST_DATAPLANE_DROP_REASONS(X)                                        \
  X(kMalformed, "malformed")           /* short Ethernet/ARP, chained mbuf */     \
  X(kWrongVlan, "wrong_vlan")          /* tag differs from the port's VLAN */     \
  X(kOtherEtherType, "other_ethertype")                                           \
  X(kBadIpv4, "bad_ipv4")              /* version, length or header checksum */   \
  X(kFragment, "fragment")                                                        \
  X(kNotForUs, "not_for_us")           /* unicast to another address */           \
  X(kOtherProtocol, "other_protocol")                                             \
  X(kBadUdp, "bad_udp")                                                           \
  X(kUnknownFlow, "unknown_flow")      /* no input for (group, port, source) */   \
  X(kBadRtp, "bad_rtp")                /* not RTP v2, or RTCP (RFC 5761) */       \
  X(kRtpDuplicate, "rtp_duplicate")                                               \
  X(kRtpJump, "rtp_jump")              /* far ahead, not yet confirmed */         \
  X(kTsSize, "ts_size")                /* payload not a whole number of 188 */    \
  X(kTsSync, "ts_sync")                /* 0x47 missing (once in 4+ packets: kept) */ \
  X(kTxNoMbuf, "tx_no_mbuf")           /* mempool empty when building TX */       \
  X(kTxTooBig, "tx_too_big")           /* datagram larger than an mbuf */         \
  X(kTxNoRoute, "tx_no_route")         /* unicast output: no ARP resolution yet */ \
  X(kTxRefused, "tx_refused")          /* rte_eth_tx_burst did not take it */

enum class DropReason : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_DATAPLANE_DROP_REASONS(TWINCAST_X)
#undef TWINCAST_X
};
inline constexpr std::size_t kDropReasonCount = 0
#define TWINCAST_X(e, s) +1
    TWINCAST_DATAPLANE_DROP_REASONS(TWINCAST_X)
#undef TWINCAST_X
    ;
[[nodiscard]] const char* drop_reason_name(DropReason r);

// A snapshot of one port's counters.
struct PortStats {
  std::uint64_t rx_packets = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t rx_missed = 0;   // rte_eth_stats imissed (the NIC had no descriptor)
  std::uint64_t rx_nombuf = 0;   // rte_eth_stats rx_nombuf
  std::uint64_t arp_replies = 0;
  std::uint64_t arp_other = 0;   // ARP not asking for our address (replies included)
  std::uint64_t arp_requests_sent = 0;  // for unicast outputs' next hops
  std::uint64_t arp_learnt = 0;  // a next hop's MAC learnt or changed (from a reply or a request to us)
  std::uint64_t arp_expired = 0; // a next hop forgotten: no answer to the refreshes
  std::uint64_t igmp_queries = 0;
  std::uint64_t igmp_reports_sent = 0;
  std::uint64_t igmp_other = 0;  // reports of other hosts, malformed IGMP
  std::uint64_t igmp_compat_reports = 0;  // IGMPv1/v2 reports and leaves (an older querier is present)
  std::uint64_t igmp_ssm_as_asm = 0;      // SSM joins that v1/v2 could only report as their whole group
  std::uint8_t igmp_version = 3;          // the IGMP version the port speaks now (RFC 3376 7.2.1)
  std::array<std::uint64_t, kDropReasonCount> drops{};
  [[nodiscard]] std::uint64_t drop(DropReason r) const { return drops[static_cast<std::size_t>(r)]; }
};

// A snapshot of one UDP/RTP input's counters.
struct InputStats {
  std::uint64_t datagrams = 0;
  std::uint64_t packets = 0;         // TS packets handed to the channel
  std::uint64_t rtp_out_of_order = 0;
  std::uint64_t rtp_lost = 0;        // datagrams given up for lost (a gap the reordering window did not fill)
  std::uint64_t rtp_duplicates = 0;
};

// A snapshot of one output's counters (a channel's or a multiplex's). A datagram counts as
// sent once the port's TX burst took it; dropped ones never reached the port (no mbuf,
// too big, unicast without ARP resolution, refused by rte_eth_tx_burst). Before that, the
// output's schedule may lose packets at its full queue (the pacer fell behind):
// queue_dropped_packets, shared by the outputs of one schedule.
struct OutputStats {
  std::uint64_t datagrams = 0;
  std::uint64_t packets = 0;  // TS packets in them
  std::uint64_t bytes = 0;    // Ethernet frame bytes (without FCS), as the port's tx_bytes
  std::uint64_t dropped_datagrams = 0;
  std::uint64_t dropped_packets = 0;
  std::uint64_t queue_dropped_packets = 0;
};

// What the worker drives for each channel: dataplane::Channel in production
// (make_channel_pipeline), a stand-in in tests.
class ChannelPipeline {
 public:
  virtual ~ChannelPipeline() = default;
  virtual void push(std::size_t input, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) = 0;
  virtual void poll(std::uint64_t now_ns, DatagramSink& sink) = 0;
  // Counters, readable from any thread (stand-ins may leave them zero).
  [[nodiscard]] virtual ChannelStats stats() const { return {}; }
  // Channel::input_snapshot() / pacing_lateness(), readable from any thread (stand-ins:
  // an unpublished snapshot, an empty histogram).
  [[nodiscard]] virtual InputSnapshot input_snapshot(std::size_t /*input*/) const { return {}; }
  [[nodiscard]] virtual PacingHistogram pacing_lateness(std::size_t /*output: or kAllOutputs*/) const { return {}; }
  // Channel::queue_dropped_packets (stand-ins: 0).
  [[nodiscard]] virtual std::uint64_t queue_dropped_packets(std::size_t /*output*/) const { return 0; }
  // Also hand the remuxed packets to `tap` (Channel::add_tap); set-up only. Stand-ins
  // without a remuxed stream may ignore it.
  virtual void add_tap(PacketTap* /*tap*/, std::size_t /*slot*/) {}
  // Any thread: asks the owning lcore to make `input` active at its next poll (an
  // operator's switch). False when the pipeline cannot be switched, or `input` is not
  // healthy (its last snapshot): the selector would leave it again at once.
  virtual bool request_switch(std::size_t /*input*/) { return false; }
  // On the worker, before the first push(): this pipeline replaces `previous` (same
  // channel id, configuration changed by a reload) at the same receivers; see
  // Channel::continue_from. Stand-ins and pipelines of another type may ignore it.
  virtual void continue_from(const ChannelPipeline& /*previous*/) {}
  // On the worker: a reload renamed the channel (name, provider, LCN); see
  // Channel::describe. Stand-ins may ignore it.
  virtual void describe(const ChannelConfig& /*next*/) {}
  // On the control side, once the worker runs the plan of a reload that moved the
  // channel's outputs in place; see Channel::readdress. Stand-ins may ignore it.
  virtual void readdress(const std::vector<OutputConfig>& /*outputs*/) {}
};
using PipelineFactory = std::function<std::unique_ptr<ChannelPipeline>(const ChannelConfig&)>;
// Wraps dataplane::Channel.
[[nodiscard]] std::unique_ptr<ChannelPipeline> make_channel_pipeline(const ChannelConfig& config);

// The EAL command line for `eal` and `ports`: -l (--main-lcore when the first lcore listed
// is not the lowest), -m (unless the extra arguments give --socket-mem), --no-huge
// --no-shconf (without hugepages), --file-prefix, --vdev for every port whose device is
// not a PCI address, -a for the PCI ones (--no-pci when there are none), --log-level
// (quiet unless the extra arguments set one), then eal.extra_args.
[[nodiscard]] std::vector<std::string> eal_arguments(const EalConfig& eal, const std::vector<PortConfig>& ports,
                                                     const std::string& argv0);
// True for "0000:01:00.0" / "01:00.0" style device names.
[[nodiscard]] bool is_pci_address(const std::string& device);
// The name DPDK knows a port's device by: what precedes the first ',', a PCI address as
// the PCI bus writes it ("3B:00.1" is "0000:3b:00.1").
[[nodiscard]] std::string device_name(const std::string& device);
// rte_eal_init with eal_arguments(). Once per process; throws std::runtime_error.
void init_eal(const ApplianceConfig& config, const std::string& argv0);

// Overload protection: what the worker sheds (the OTT feeds of the lowest-priority HLS
// channels first; multicast never).
struct QosStats {
  std::uint8_t shed_tiers = 0;        // priority tiers whose OTT feeds are shed now
  std::uint8_t tiers = 0;             // distinct priorities among the HLS channels
  std::uint64_t overload_windows = 0; // 100 ms windows the worker found itself behind
};

// How busy the packet worker is. It polls without pause, so its CPU time says nothing; what
// it did with that time does: a turn of the poll loop that moved a packet (received one,
// took one from an SRT ring, or transmitted one) is busy, its time counts in busy_ns.
// busy_ns / poll_ns over an interval is the share of the core the traffic takes.
struct WorkerStats {
  unsigned lcore = 0;
  std::uint64_t poll_ns = 0;     // time in the poll loop since start()
  std::uint64_t busy_ns = 0;     // of which in busy turns
  std::uint64_t turns = 0;
  std::uint64_t busy_turns = 0;
};

class Dataplane {
 public:
  // Sets up every port (mempool, queues, MAC, promiscuous + allmulticast, started), the
  // classifier from the channels' UDP/RTP inputs, one pipeline per channel and one
  // Multiplex per multiplex, tapped onto its member channels' pipelines. EAL must be up. Throws std::runtime_error / std::invalid_argument with a message on failure.
  explicit Dataplane(const ApplianceConfig& config, PipelineFactory factory = make_channel_pipeline);
  ~Dataplane();  // stop(), then the ports are stopped and closed
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  // Launches the poll loop on the first worker lcore (the second in EalConfig::lcores).
  // It joins the multicast groups (IGMPv3) first and refreshes them every 60 s.
  void start();
  // The lcore that runs the poll loop (RTE_MAX_LCORE: the EAL has none besides the main
  // one), and how many further EAL lcores run nothing: one worker carries every channel
  // and multiplex, so an lcore list longer than two leaves the rest idle.
  [[nodiscard]] unsigned worker_lcore() const;
  [[nodiscard]] unsigned idle_lcores() const;
  // Stops the loop, waits for it and sends IGMP leaves. Idempotent.
  void stop();
  [[nodiscard]] bool running() const;

  // Hot reload: runs `next` (a validated configuration with the same ports and EAL)
  // instead of the running one, applying only the difference (diff_configs): added
  // channels and multiplexes start, removed ones stop and their groups are left, changed
  // ones (and the members of a changed multiplex) restart alone, unchanged ones are the
  // same objects and never pause. The new plan is built completely first (a failure
  // throws and changes nothing), published to the worker with one pointer, and the old
  // one freed once the worker reported a quiescent state (rte_rcu_qsbr). Throws
  // std::invalid_argument when ports, EAL or listeners differ (a restart is needed).
  // Returns what changed. Control side: not concurrently with the accessors below, and a
  // removed or restarted channel's ExternalInput must have no producer left.
  ConfigDiff apply(const ApplianceConfig& next);
  // The configuration running now (the last apply()'s, or the constructor's).
  [[nodiscard]] const ApplianceConfig& config() const;
  // Any thread.
  [[nodiscard]] QosStats qos_stats() const;
  [[nodiscard]] WorkerStats worker_stats() const;

  [[nodiscard]] std::size_t port_count() const;
  [[nodiscard]] Mac port_mac(std::size_t port) const;
  [[nodiscard]] std::uint16_t port_id(std::size_t port) const;  // the DPDK port id
  [[nodiscard]] PortStats port_stats(std::size_t port) const;
  // Inputs are numbered in config order: channel 0's inputs, then channel 1's...
  // (SRT inputs included so the numbering is stable; they stay zero here). An RTP flow
  // that feeds several channels has one reordering window: each of its inputs shows that
  // window's rtp_* counts.
  [[nodiscard]] InputStats input_stats(std::size_t channel, std::size_t input) const;
  [[nodiscard]] ChannelPipeline& pipeline(std::size_t channel);
  // Any thread: an operator's switch of `channel` to `input`, applied by the worker.
  bool request_switch(std::size_t channel, std::size_t input) { return pipeline(channel).request_switch(input); }
  // Multiplexes in config order.
  [[nodiscard]] std::size_t multiplex_count() const;
  [[nodiscard]] MultiplexStats multiplex_stats(std::size_t multiplex) const;
  // Per-output counters, outputs in config order. Any thread; std::out_of_range for an
  // unknown channel, multiplex or output.
  [[nodiscard]] OutputStats output_stats(std::size_t channel, std::size_t output) const;
  [[nodiscard]] OutputStats multiplex_output_stats(std::size_t multiplex, std::size_t output) const;
  // The pipeline's input snapshot / pacing lateness (ChannelPipeline), and a multiplex's
  // pacing lateness. Any thread; std::out_of_range for an unknown channel or multiplex.
  [[nodiscard]] InputSnapshot input_snapshot(std::size_t channel, std::size_t input) const;
  // Of `output`'s schedule (an output index of the channel), or of all of them.
  [[nodiscard]] PacingHistogram pacing_lateness(std::size_t channel, std::size_t output = kAllOutputs) const;
  [[nodiscard]] PacingHistogram multiplex_pacing_lateness(std::size_t multiplex, std::size_t output = kAllOutputs) const;

  // An SRT input's handle (channel, input index within the channel); std::out_of_range
  // for an input that is not SRT. Valid until an apply() removes or restarts its channel.
  [[nodiscard]] ExternalInput* external_input(std::size_t channel, std::size_t input) const;
  // Hands bytes of an SRT input to the worker: copied into an mbuf and queued on that
  // input's ring. Any thread, but one producer per input at a time. Returns false (and
  // counts it) when the ring is full or no mbuf is free. No bytes: a new stream starts
  // here (a new SRT connection), so a TS packet cut off at the end of the old one is not
  // completed with the new one's bytes.
  static bool feed_external(ExternalInput* input, std::span<const std::uint8_t> bytes);
  bool feed_external(std::size_t channel, std::size_t input, std::span<const std::uint8_t> bytes);
  // SRT bytes refused by feed_external().
  [[nodiscard]] std::uint64_t external_drops(std::size_t channel, std::size_t input) const;

  // The OTT feed of a channel with `hls: true` (its remuxed SPTS for the packager, read by
  // one consumer thread), nullptr for the others. Lives as long as the Dataplane;
  // std::out_of_range for an unknown channel.
  [[nodiscard]] OttFeed* ott_feed(std::size_t channel) const;

  // Test hooks, only while not running(): run the worker's code on frames the caller
  // allocated from mempool(port) (they are consumed), and one poll turn with TX flush
  // (ARP requests that are due, what SRT inputs queued and RTP gaps that waited too long
  // included).
  void process_burst(std::size_t port, rte_mbuf** frames, std::uint16_t n, std::uint64_t now_ns);
  void poll_once(std::uint64_t now_ns);
  void send_igmp_reports(bool join);  // what start() does first
  [[nodiscard]] rte_mempool* mempool(std::size_t port) const;

  // Nanoseconds of the clock the worker uses for push()/poll() (CLOCK_MONOTONIC).
  [[nodiscard]] static std::uint64_t now_ns();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::dataplane
