// Dataplane's internals, shared by dataplane.cpp (set-up, reload, control side) and
// worker.cpp (the poll loop).
//
// What the loop runs is a Plan: the channels, multiplexes, inputs, per-port flow tables and
// group lists of one configuration, built on the control side and published to the worker
// through one atomic pointer. The worker reads the pointer at the start of each loop turn
// and reports a quiescent state (rte_rcu_qsbr) at its end, so after a reload publishes a
// new plan and rte_rcu_qsbr_synchronize() returns, nothing of the old plan is in use: the
// objects only it held (removed or restarted channels) are freed then, on the control
// side. Unchanged channels are the same objects in both plans and never stop. Everything
// the loop touches is sized before it is published.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "twincast/dataplane/classifier.hpp"
#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/dataplane/net.hpp"
#include "twincast/mpegts/aligner.hpp"

struct rte_device;
struct rte_ring;
struct rte_rcu_qsbr;

namespace twincast::dataplane {

inline constexpr std::uint16_t kBurst = 32;
inline constexpr std::size_t kPrefetchAhead = 3;
inline constexpr std::size_t kMaxTsPerDatagram = 64;  // jumbo frames: 9000 / 188 = 47
inline constexpr std::uint64_t kIgmpRefreshNs = 60'000'000'000ULL;
// RFC 3376 8.11 Unsolicited Report Interval (the IGMPv3 default): a reload's state-change
// report is sent again once (Robustness Variable 2, less one) at a random time within it.
inline constexpr std::uint64_t kIgmpRepeatIntervalNs = 1'000'000'000ULL;
// RFC 3376 8.12 Older Version Querier Present Timeout, less the Query Response Interval
// that is added from the query itself: Robustness Variable (2) x Query Interval (125 s),
// the defaults, since an IGMPv1/v2 querier does not tell its own.
inline constexpr std::uint64_t kIgmpOlderQuerierNs = 2 * 125'000'000'000ULL;
inline constexpr std::uint64_t kStatsRefreshNs = 1'000'000'000ULL;
// ARP for unicast outputs' next hops: a request at most every kArpRetryNs while a next
// hop is unresolved (or being refreshed), a refresh kArpRefreshNs after the last answer
// (the old MAC stays in use meanwhile), forgotten when nothing confirmed it for
// kArpRefreshNs + kArpGiveUpNs. The loop looks at the table every kArpTickNs.
inline constexpr std::uint64_t kArpRetryNs = 1'000'000'000ULL;
inline constexpr std::uint64_t kArpRefreshNs = 60'000'000'000ULL;
inline constexpr std::uint64_t kArpGiveUpNs = 30'000'000'000ULL;
inline constexpr std::uint64_t kArpTickNs = 10'000'000ULL;
inline constexpr std::uint32_t kNoNeighbor = 0xFFFFFFFFu;
inline constexpr std::uint32_t kMaxNeighbors = 64;  // unicast next hops per port
inline constexpr unsigned kExternalRing = 1024;  // SRT messages queued per input (~1.4 MB)
inline constexpr unsigned kOttRing = 1024;       // OTT chunks (<= 7 packets) queued per HLS channel (~1.6 MB)
// RTP reordering: datagrams that arrive ahead of a gap wait in a window of this many
// sequence numbers, at most kRtpHoldNs, for the missing ones.
inline constexpr std::uint16_t kRtpWindow = 32;
inline constexpr std::uint64_t kRtpHoldNs = 20'000'000;
// A sequence number this far ahead or more is not a gap but a new numbering (or a stray)
// until the next datagram confirms it (RFC 3550 A.1's MAX_DROPOUT).
inline constexpr std::uint16_t kRtpMaxDropout = 3000;

using Counter = std::atomic<std::uint64_t>;
// One writer: a plain load + store, no locked instruction; readers load relaxed.
inline void bump(Counter& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct alignas(64) PortCounters {
  Counter rx_packets{0};
  Counter rx_bytes{0};
  Counter tx_packets{0};
  Counter tx_bytes{0};
  Counter rx_missed{0};
  Counter rx_nombuf{0};
  Counter arp_replies{0};
  Counter arp_other{0};
  Counter arp_requests_sent{0};
  Counter arp_learnt{0};
  Counter arp_expired{0};
  Counter igmp_queries{0};
  Counter igmp_reports_sent{0};
  Counter igmp_other{0};
  Counter igmp_compat_reports{0};  // IGMPv1/v2 reports and leaves (also in igmp_reports_sent)
  Counter igmp_ssm_as_asm{0};      // SSM joins reported as their whole group in v1/v2 messages
  std::atomic<std::uint8_t> igmp_version{3};  // the host compatibility mode in use
  std::array<Counter, kDropReasonCount> drops{};
};

struct alignas(64) InputCounters {
  Counter external_drops{0};  // SRT bytes refused at the ring (full, or no mbuf): written by the producer
  Counter datagrams{0};
  Counter packets{0};
  Counter rtp_out_of_order{0};
  Counter rtp_lost{0};
  Counter rtp_duplicates{0};
};

// One output's counters: written by the worker only (send_datagram, flush_tx).
struct alignas(64) OutputCounters {
  Counter datagrams{0};
  Counter packets{0};
  Counter bytes{0};
  Counter dropped_datagrams{0};
  Counter dropped_packets{0};
};

struct GroupJoin {
  Ipv4 group = 0;
  Ipv4 source = 0;
  friend bool operator==(const GroupJoin&, const GroupJoin&) = default;
};

// A unicast output's next hop on its port (the destination, or the port's gateway).
struct Neighbor {
  Ipv4 ip = 0;
  std::uint16_t vlan = 0;             // of the outputs behind it: ARP for it is asked and answered there
  Mac mac{};
  bool resolved = false;
  std::uint64_t confirmed_ns = 0;     // when an ARP reply/request from it was last seen
  std::uint64_t next_request_ns = 0;  // rate limit of our requests (0: at the first tick)
};

struct PortState {
  PortConfig config;
  std::uint32_t full_run = 0;  // worker: RX bursts in a row that came back full (QoS)
  std::size_t index = 0;  // in Impl::ports (and Plan::ports)
  std::uint16_t port_id = 0;
  rte_mempool* pool = nullptr;
  bool started = false;
  rte_device* vdev = nullptr;      // a virtual device, removed with the port (so it can be probed again)
  Mac mac{};
  // Distinct next hops of unicast outputs: a fixed array the worker owns, to which a reload
  // appends (entries never move, so outputs keep their index); the worker reads up to
  // n_neighbors (acquire).
  std::unique_ptr<Neighbor[]> neighbors = std::make_unique<Neighbor[]>(kMaxNeighbors);
  std::atomic<std::uint32_t> n_neighbors{0};
  // Whether a next hop is on `vlan` (an output's own VLAN: ARP for it comes tagged so).
  [[nodiscard]] bool neighbor_on_vlan(std::uint16_t vlan) const {
    const std::uint32_t n = n_neighbors.load(std::memory_order_acquire);
    for (std::uint32_t k = 0; k < n; ++k)
      if (neighbors[k].vlan == vlan) return true;
    return false;
  }
  std::uint16_t ip_id = 0;
  // IGMP host compatibility mode (RFC 3376 7.2.1), worker only: until these times an
  // IGMPv1 / IGMPv2 querier was heard on the port, and reports are sent in the oldest
  // version heard (1, 2, or 3 when both have passed). update_igmp_version() moves the
  // mode on with the clock; counters.igmp_version shows it.
  std::uint64_t igmp_v1_querier_until_ns = 0;
  std::uint64_t igmp_v2_querier_until_ns = 0;
  std::uint8_t igmp_version = 3;
  // Plans with group changes on this port adopted since their reports were last repeated
  // (2: several, or a plan adopted since without any, whose join list is not theirs), when
  // the repeat goes (0: not drawn yet; igmp_repeat_tick()), and the groups they left, less
  // those joined again since: the repeat leaves them all (RFC 3376 5.1: a further change
  // does not drop the records of the one before from the retransmission).
  // (Fixed room: the worker does not allocate; leaves beyond it go once, unrepeated.)
  static constexpr std::size_t kIgmpLeftMax = 256;
  std::uint8_t igmp_changes_pending = 0;
  std::uint64_t igmp_repeat_ns = 0;
  std::array<GroupJoin, kIgmpLeftMax> igmp_left{};
  std::size_t n_igmp_left = 0;
  void update_igmp_version(std::uint64_t now_ns) {
    const std::uint8_t v = now_ns < igmp_v1_querier_until_ns ? 1 : now_ns < igmp_v2_querier_until_ns ? 2 : 3;
    if (v == igmp_version) return;
    igmp_version = v;
    counters.igmp_version.store(v, std::memory_order_relaxed);
    // A change of mode cancels the retransmissions pending (RFC 3376 7.2.1).
    igmp_changes_pending = 0;
    igmp_repeat_ns = 0;
    n_igmp_left = 0;
  }
  // TX waiting for the next burst (worker only).
  alignas(64) rte_mbuf* tx[kBurst] = {};
  // Whose datagram each queued frame is (nullptr: ARP, IGMP) and its TS packets, so the
  // output's counters follow what the TX burst took.
  OutputCounters* tx_owner[kBurst] = {};
  std::uint8_t tx_ts_packets[kBurst] = {};
  std::uint16_t n_tx = 0;
  PortCounters counters;
};

// An RTP flow's receive state: its reordering window and what tells a gap from a new
// numbering. It lives in the flow's first member (InputState) and moves whole to another
// member when a reload makes that one the first (adopt()).
struct RtpReceiveState {
  // RTP reordering window: slot seq % kRtpWindow holds a datagram that came before the
  // one expected next (the window owns those mbufs until they are delivered or dropped).
  struct RtpSlot {
    rte_mbuf* m = nullptr;
    std::uint16_t offset = 0;  // TS payload inside the mbuf
    std::uint16_t length = 0;
    std::uint64_t arrived_ns = 0;  // when it was received (held_since_ns: the oldest of these)
  };
  bool have_seq = false;
  std::uint16_t expected_seq = 0;  // the next sequence number to deliver
  std::uint32_t ssrc = 0;
  // The sender before the last change of SSRC, and the sequence number it was expected to
  // send next: one of its datagrams a little behind that is late, not that sender back.
  bool have_previous = false;
  std::uint32_t previous_ssrc = 0;
  std::uint16_t previous_expected_seq = 0;
  std::uint32_t held = 0;          // datagrams waiting in the window
  std::uint64_t held_since_ns = 0; // when the oldest of them arrived
  // held_since_ns again, from the datagrams still held (0: none), after some went out.
  void find_oldest_held() {
    held_since_ns = ~std::uint64_t{0};
    for (const RtpSlot& s : window)
      if (s.m != nullptr) held_since_ns = std::min(held_since_ns, s.arrived_ns);
    if (held == 0) held_since_ns = 0;
  }
  // The datagram just before was far behind the window (restart_seq): late, or the first
  // of a sender's new numbering. Dropped; this one, closely after it, means the latter.
  bool restart_armed = false;
  std::uint16_t restart_seq = 0;
  // When the last datagram came, and the flow's average interval between datagrams (ns x
  // 256, averaged over ~256 datagrams; each sample at most 100 ms, so an outage barely moves
  // it): receive_rtp() tells an outage from a new numbering by them.
  std::uint64_t last_rtp_ns = 0;
  std::uint64_t rtp_interval_x256 = 0;
  void note_rtp_interval(std::uint64_t silence, std::uint64_t now_ns) {
    if (last_rtp_ns != 0) {
      const auto sample = static_cast<std::int64_t>(std::min<std::uint64_t>(silence, 100'000'000) * 256);
      const auto avg = static_cast<std::int64_t>(rtp_interval_x256);
      rtp_interval_x256 = static_cast<std::uint64_t>(avg == 0 ? sample : avg + (sample - avg) / 256);
    }
    last_rtp_ns = now_ns;
  }
  std::array<RtpSlot, kRtpWindow> window{};
};

// One input of a channel (owned by its ChannelState). UDP/RTP inputs are reached through
// their plan's Flow; SRT inputs through their ring.
struct InputState : RtpReceiveState {
  InputState() = default;
  ~InputState();  // frees what the RTP window and the ring hold, the ring and its pool
  InputState(const InputState&) = delete;
  InputState& operator=(const InputState&) = delete;
  ChannelPipeline* pipeline = nullptr;  // the channel's
  std::size_t input = 0;     // index within the channel
  bool rtp = false;
  PortState* port = nullptr;       // where drops are counted
  // SRT (and any input received off the data plane): bytes arrive from a control thread
  // in mbufs of its own pool through a single-producer/single-consumer ring; the worker
  // aligns them.
  rte_ring* ring = nullptr;
  rte_mempool* ring_pool = nullptr;
  bool restart_pending = false;  // a new stream's mark is still to be queued (producer side)
  std::unique_ptr<mpegts::PacketAligner> aligner;
  InputCounters counters;
};

struct OutputState {
  std::size_t port = 0;
  net::UdpFrame frame;
  bool rtp = false;
  bool resolved = true;       // multicast: always; unicast: its next hop's MAC is known (frame.dst_mac)
  std::uint32_t neighbor = kNoNeighbor;  // unicast: index into its port's neighbors; none: no route
  std::uint16_t rtp_seq = 0;
  std::uint32_t ssrc = 0;
  // frame's headers for a UDP payload of header_payload bytes with identification 0, built
  // by the worker at the first datagram of that size (0: none yet; update_outputs() clears
  // it when the frame changes). A datagram copies them and patches identification and
  // checksum instead of writing every field again.
  std::array<std::uint8_t, net::udp_headers_size(1)> header{};
  std::size_t header_payload = 0;
  // Behind a pointer so OutputState stays movable while set up; the worker is its one writer.
  std::unique_ptr<OutputCounters> counters = std::make_unique<OutputCounters>();
};

// What a channel is apart from its outputs' addresses: a reload that changes only those, or
// renames the channel (ConfigDiff::channels_updated), gives the channel new OutputStates
// around the same core, so its pipeline, inputs and OTT feed go on untouched.
struct ChannelCore {
  ChannelCore() = default;
  ~ChannelCore();  // the OTT feed before its pool
  ChannelCore(const ChannelCore&) = delete;
  ChannelCore& operator=(const ChannelCore&) = delete;
  std::unique_ptr<ChannelPipeline> pipeline;
  std::vector<std::unique_ptr<InputState>> inputs;  // config order
  std::unique_ptr<OttFeed> ott;                     // hls: true only
  rte_mempool* ott_pool = nullptr;
};

struct ChannelState {
  std::shared_ptr<ChannelCore> core;  // shared with the plan before when the channel was updated in place
  std::vector<OutputState> outputs;
};

struct MultiplexState {
  std::unique_ptr<Multiplex> multiplex;  // fed by its members' taps, polled like a channel
  std::vector<OutputState> outputs;
};

// The inputs one UDP/RTP flow (destination, port, source) feeds: usually one; several
// channels when an MPTS is split by service. The first holds the RTP reordering state.
struct Flow {
  std::vector<InputState*> members;
};

struct PortPlan {
  FlowClassifier classifier{1};  // -> index into Plan::flows
  std::vector<GroupJoin> groups; // multicast inputs received on this port
  // What the worker sends when it takes this plan over from the one before.
  std::vector<GroupJoin> leave;
  std::vector<GroupJoin> join;
  // Bit k: an output of this plan sends through the port's neighbor k. The table keeps next
  // hops no output uses any more (until a restart); ARP asks only for those in use.
  std::uint64_t neighbors_used = 0;
  static_assert(kMaxNeighbors <= 64, "one bit per neighbor");
};

// One configuration as the worker runs it. Immutable once published, except the state the
// worker owns inside the objects (pipelines, windows, output counters).
struct Plan {
  std::uint64_t generation = 0;
  ApplianceConfig config;
  std::vector<std::shared_ptr<ChannelState>> channels;  // config order
  // By channel: the state a changed channel replaces (same id in the plan before), for the
  // worker to carry its output's continuity over when it adopts this plan (adopt()); only
  // valid until then (the plan before is freed after the adoption), so adopt() clears it
  // (mutable: the only field that changes once published). nullptr: new or unchanged. A
  // channel updated in place has one too, with the same core: its output counters and RTP
  // streams carry over.
  mutable std::vector<const ChannelState*> predecessors;
  mutable std::vector<const MultiplexState*> multiplex_predecessors;  // the same, by multiplex
  mutable const Plan* before = nullptr;  // the plan this one replaces, valid (and set) until adopt()
  // Services renamed by this reload in pipelines that go on (a channel updated in place, a
  // member of a multiplex kept as it was): adopt() describes them on the worker, once.
  struct Rename {
    ChannelPipeline* pipeline = nullptr;  // a channel's, or
    Multiplex* multiplex = nullptr;       // a multiplex's member
    std::size_t slot = 0;
    const ChannelConfig* config = nullptr;  // in this plan's config
  };
  std::vector<Rename> renames;
  std::vector<std::shared_ptr<MultiplexState>> multiplexes;
  std::vector<Flow> flows;
  std::vector<PortPlan> ports;                // by port index
  std::vector<InputState*> external_inputs;   // SRT
  std::vector<std::uint32_t> rtp_flows;       // flows whose head is RTP
  // RTP inputs that share a flow with an input of an earlier channel, and that input: the
  // flow's one reordering window is the first member's, and so are its counters.
  std::vector<std::pair<const InputState*, const InputState*>> rtp_window_of;
  // QoS: each channel's OTT tier (its rank among the distinct priorities of the HLS
  // channels, lowest priority first; by channel), and how many tiers there are.
  std::vector<std::uint8_t> ott_tier;
  std::uint8_t ott_tiers = 0;
  std::vector<std::uint8_t> ott_priorities;  // by tier: its priority (lowest first)
};

// Overload and shedding (worker only, but shed_tiers is read by the control side). A
// worker that keeps up drains its RX queues: an RX burst comes back full (kBurst frames)
// only while a backlog waits, and a bursty sender (an encoder writing a key frame, ffmpeg
// -re) makes a few full bursts in a row at most. A worker that falls behind gets full
// bursts on every poll of a port. So a kQosWindowNs window in which some port returned
// kQosFullRun full bursts in a row (a backlog of half a default RX ring, and growing) is an
// overload: the OTT feeds of one more tier are shed, lowest priority first; kQosRestoreNs
// without overload brings one tier back. Multicast outputs are never shed.
inline constexpr std::uint64_t kQosWindowNs = 100'000'000;
inline constexpr std::uint64_t kQosRestoreNs = 5'000'000'000ULL;
inline constexpr std::uint32_t kQosFullRun = 16;
struct QosState {
  std::uint64_t window_start_ns = 0;
  std::uint32_t longest_run = 0;  // consecutive full RX bursts of one port, in this window
  std::uint64_t calm_since_ns = 0;
  std::uint8_t shed = 0;  // tiers shed now
  std::atomic<std::uint8_t> shed_published{0};
  std::atomic<std::uint64_t> overload_windows{0};
};

// One writer (the worker), read by the control side: see WorkerStats.
struct alignas(64) WorkerCounters {
  std::atomic<std::uint64_t> poll_ns{0};
  std::atomic<std::uint64_t> busy_ns{0};
  std::atomic<std::uint64_t> turns{0};
  std::atomic<std::uint64_t> busy_turns{0};
};

struct Dataplane::Impl {
  // ---- set-up (dataplane.cpp) ----
  Impl(const ApplianceConfig& config, PipelineFactory& factory);
  ~Impl();
  void release();  // stops and closes the ports, frees the pools (idempotent)

  // ---- the loop (worker.cpp) ----
  void rx_frame(PortState& port, rte_mbuf* m, std::uint64_t now_ns);
  void rx_burst(PortState& port, rte_mbuf** frames, std::uint16_t n, std::uint64_t now_ns);
  void handle_igmp(PortState& port, const PortPlan& pp, net::Bytes message, std::uint64_t now_ns);
  void handle_udp(PortState& port, rte_mbuf* m, const net::Ipv4Header& ip, net::Bytes segment,
                  std::uint64_t now_ns);
  // TS payload of one datagram (inside mbuf m, which this consumes) to the flow's channels.
  void deliver(const Flow& flow, rte_mbuf* m, net::Bytes payload, std::uint64_t now_ns);
  void receive_rtp(const Flow& flow, rte_mbuf* m, const net::Rtp& rtp, net::Bytes payload, std::uint64_t now_ns);
  void flush_rtp(const Flow& flow, bool all, std::uint64_t now_ns);  // deliver what the window holds
  bool step_rtp(const Flow& flow, std::uint64_t now_ns);  // the window's front: out or lost, then on by one
  void expire_rtp(std::uint64_t now_ns);
  void send_datagram(std::vector<OutputState>& outputs, std::size_t output,
                     std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns);
  // IGMP reports for `groups` (only `only_group`'s when not 0) in the port's compatibility
  // mode. IGMPv1/v2 name groups, not sources: a group is reported once, and not left while
  // `still_joined` (the port's groups after a leave) holds it with another source. IGMPv3
  // leaves report the group's state after them: none while `still_joined` has the group
  // any-source, its remaining sources when an any-source join is left. `queried` (4 bytes
  // an address): the sources of a group-and-source-specific query that this answers.
  void send_reports(PortState& port, std::span<const GroupJoin> groups, net::IgmpEvent event, Ipv4 only_group,
                    std::span<const GroupJoin> still_joined = {}, net::Bytes queried = {});
  // The worker takes `next` over: leaves and joins of its ports' group changes.
  void adopt(const Plan& next);
  // ARP for the next hops: requests due (and expiry) on every port; what a frame from
  // `ip` at `mac` teaches (updates the outputs behind that neighbor).
  void arp_tick(std::uint64_t now_ns);
  // Sends the repeat of the state-change reports of the last reload (RFC 3376 5.1), a random
  // time within kIgmpRepeatIntervalNs after the first turn that saw them.
  void igmp_repeat_tick(std::uint64_t now_ns);
  std::uint64_t igmp_rng = 0x9E3779B97F4A7C15ULL;  // worker: xorshift64 state for the repeat's delay
  void send_arp_request(PortState& port, Neighbor& n, std::uint64_t now_ns);
  void learn_neighbor(PortState& port, Ipv4 ip, std::uint16_t vlan, const Mac& mac, std::uint64_t now_ns);
  void update_outputs(const PortState& port, std::size_t neighbor);
  // A delivered RX mbuf, freed with the others of its burst by free_retired() (one bulk
  // put into the mempool instead of one per datagram).
  void retire(rte_mbuf* m) {
    if (n_retired == kRetireMax) free_retired();
    retired[n_retired++] = m;
  }
  void free_retired();
  void enqueue_tx(PortState& port, rte_mbuf* m, OutputCounters* owner = nullptr, std::size_t ts_packets = 0);
  void flush_tx(PortState& port);
  void poll_channels(std::uint64_t now_ns);
  void drain_external(std::uint64_t now_ns);
  void refresh_eth_stats(PortState& port);
  // One turn of the poll loop; true when it moved a packet (see WorkerStats).
  bool loop_once(std::uint64_t now_ns);
  static int worker_main(void* arg);
  static void drop(PortState& port, DropReason r) { bump(port.counters.drops[static_cast<std::size_t>(r)]); }

  // ---- plans (dataplane.cpp) ----
  // A plan for `config`, taking over from `from` (nullptr at start) the channels and
  // multiplexes `diff` leaves unchanged; appends next hops to the ports. Control side.
  std::unique_ptr<Plan> build_plan(const ApplianceConfig& config, const Plan* from, const ConfigDiff& diff);
  // Publishes `next` and waits until the worker no longer uses the old plan, which it
  // returns (to be freed by the caller). Control side, one at a time.
  std::unique_ptr<Plan> publish(std::unique_ptr<Plan> next);
  // The published plan, for the control side (set-up, reads, test hooks).
  [[nodiscard]] Plan& plan() const { return *owned; }

  ApplianceConfig config;  // the ports and EAL (fixed while the ports exist)
  PipelineFactory factory;
  unsigned instance = 0;   // names of pools and rings
  std::uint64_t next_object = 0;  // their serial numbers
  std::vector<std::unique_ptr<PortState>> ports;
  std::unique_ptr<Plan> owned;           // the published plan (control side owns it)
  std::atomic<Plan*> published{nullptr}; // what the worker loads each turn
  Plan* current = nullptr;               // worker: the plan of this turn (control: owned)
  std::uint64_t worker_generation = 0;   // worker: the generation it took over last
  std::atomic<std::uint64_t> adopted_generation{0};  // worker -> control
  rte_rcu_qsbr* qsbr = nullptr;
  static constexpr std::size_t kRetireMax = 2 * kBurst;
  rte_mbuf* retired[kRetireMax] = {};  // worker only: see retire()
  std::size_t n_retired = 0;
  std::atomic<bool> stop_requested{false};
  bool running = false;
  unsigned worker_lcore = 0;
  std::uint64_t next_igmp_ns = 0;
  std::uint64_t next_stats_ns = 0;
  std::uint64_t next_arp_ns = 0;
  QosState qos;
  std::uint64_t moved = 0;  // worker: frames received, SRT mbufs taken, frames sent (a turn's work)
  WorkerCounters worker_counters;
  void qos_tick(std::uint64_t now_ns);
  void apply_shedding();  // sets each OTT feed's shed state from qos.shed (worker)
};

}  // namespace twincast::dataplane
