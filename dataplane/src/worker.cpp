// The worker's poll loop: RX burst -> classify -> channels -> TX burst. No heap, no lock,
// no throw, no log in here; every mbuf is transmitted (queued for the TX burst) or freed
// by the function that received it.
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "dataplane_impl.hpp"

namespace twincast::dataplane {
namespace {

static_assert(sizeof(mpegts::TsPacket) == mpegts::kPacketSize, "TS packets are copied as 188-byte blocks");

// The outputs of one channel or multiplex.
class TxSink final : public DatagramSink {
 public:
  TxSink(Dataplane::Impl& d, std::vector<OutputState>& outputs, std::uint64_t now_ns)
      : d_(d), outputs_(outputs), now_ns_(now_ns) {}
  void send(std::size_t output, std::span<const mpegts::TsPacket> packets) override {
    d_.send_datagram(outputs_, output, packets, now_ns_);
  }

 private:
  Dataplane::Impl& d_;
  std::vector<OutputState>& outputs_;
  std::uint64_t now_ns_;
};

std::uint8_t* data_of(rte_mbuf* m) { return rte_pktmbuf_mtod(m, std::uint8_t*); }

// The TS packets a datagram's payload holds (1..kMaxTsPerDatagram whole ones, each starting
// with a sync byte), or 0 and `why` it holds none. One corrupted sync byte in a datagram of
// kMinPacketsForOneBadSync or more, whose other packets all start right, is a damaged packet
// in a TS datagram (an IRD passing on a demodulator's error, say), not a datagram of
// something else: it goes on, for the analyzer to count a Sync_byte_error and the remux to
// drop that one packet, as the SRT aligner keeps its lock over one (TR 101 290 loses sync at
// two in a row). Dropping the datagram would lose the good packets with it. Random bytes
// pass that with a probability of 4/256^3 at most.
constexpr std::size_t kMinPacketsForOneBadSync = 4;
std::size_t ts_packets_in(net::Bytes payload, DropReason& why) {
  const std::size_t n = payload.size() / mpegts::kPacketSize;
  if (n == 0 || n > kMaxTsPerDatagram || payload.size() % mpegts::kPacketSize != 0) {
    why = DropReason::kTsSize;
    return 0;
  }
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad += payload[i * mpegts::kPacketSize] != mpegts::kSyncByte ? 1U : 0U;
  if (bad > 1 || (bad == 1 && n < kMinPacketsForOneBadSync)) [[unlikely]] {
    why = DropReason::kTsSync;
    return 0;
  }
  return n;
}

}  // namespace

void Dataplane::Impl::rx_burst(PortState& port, rte_mbuf** frames, std::uint16_t n, std::uint64_t now_ns) {
  moved += n;
  if (n == kBurst) {
    qos.longest_run = std::max(qos.longest_run, ++port.full_run);
  } else {
    port.full_run = 0;
  }
  std::size_t i = 0;
  for (; i < kPrefetchAhead && i < n; ++i) rte_prefetch0(data_of(frames[i]));
  for (i = 0; i + kPrefetchAhead < n; ++i) {
    rte_prefetch0(data_of(frames[i + kPrefetchAhead]));
    rx_frame(port, frames[i], now_ns);
  }
  for (; i < n; ++i) rx_frame(port, frames[i], now_ns);
  free_retired();
}

// RX to TX for a 7-packet UDP datagram, pushed and sent on by a trivial pipeline, with
// net_null as the port: ~370 ns per datagram in bursts of 1 (tests/dataplane/worker_test
// MeasureCostPerDatagram, Release, this 2-core VM; includes a TX burst per datagram).
void Dataplane::Impl::rx_frame(PortState& port, rte_mbuf* m, std::uint64_t now_ns) {
  bump(port.counters.rx_packets);
  bump(port.counters.rx_bytes, m->pkt_len);
  DropReason why = DropReason::kMalformed;
  do {
    if (m->nb_segs != 1) break;
    const net::Bytes frame(data_of(m), m->data_len);
    const net::EthernetType eth = net::parse_ethernet_type(frame);
    if (eth.header_size == 0) break;
    if (eth.vlan != port.config.vlan && !(eth.ether_type == net::kEtherTypeArp && port.neighbor_on_vlan(eth.vlan))) {
      why = DropReason::kWrongVlan;  // (ARP also comes on the VLANs of unicast outputs' next hops)
      break;
    }
    const net::Bytes l3 = frame.subspan(eth.header_size);
    if (eth.ether_type == net::kEtherTypeArp) {
      const auto arp = net::parse_arp(l3);
      if (!arp) break;
      // A reply to us, a request for our address, or a gratuitous announcement (RFC 826's
      // merge: an entry we have follows whatever its address says) tells its sender's MAC.
      if (port.config.address != 0 &&
          (arp->target_ip == port.config.address || arp->target_ip == arp->sender_ip) &&
          port.n_neighbors.load(std::memory_order_relaxed) != 0 &&
          (arp->op == net::kArpReply || arp->op == net::kArpRequest)) {
        learn_neighbor(port, arp->sender_ip, eth.vlan, arp->sender_mac, now_ns);
      }
      if (arp->op != net::kArpRequest || port.config.address == 0 || arp->target_ip != port.config.address) {
        bump(port.counters.arp_other);
        rte_pktmbuf_free(m);
        return;
      }
      // Answer in the request's own mbuf.
      const net::Arp request = *arp;
      rte_pktmbuf_reset(m);
      constexpr std::uint16_t kReplyMax = 64;
      auto* d = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, kReplyMax));
      const std::size_t len =
          d == nullptr ? 0
                       : net::build_arp_reply({d, kReplyMax}, request, port.mac, port.config.address, eth.vlan);
      if (len == 0) break;
      rte_pktmbuf_trim(m, static_cast<std::uint16_t>(kReplyMax - len));
      bump(port.counters.arp_replies);
      enqueue_tx(port, m);
      return;
    }
    if (eth.ether_type != net::kEtherTypeIpv4) {
      why = DropReason::kOtherEtherType;
      break;
    }
    net::Bytes ip_payload;
    const auto ip = net::parse_ipv4(l3, &ip_payload);
    if (!ip) {
      why = DropReason::kBadIpv4;
      break;
    }
    if (ip->is_fragment()) {
      why = DropReason::kFragment;
      break;
    }
    if (ip->protocol == net::kProtoIgmp) {
      handle_igmp(port, current->ports[port.index], ip_payload, now_ns);
      rte_pktmbuf_free(m);
      return;
    }
    if (ip->protocol != net::kProtoUdp) {
      why = DropReason::kOtherProtocol;
      break;
    }
    if (!net::is_multicast(ip->dst) && ip->dst != port.config.address) {
      why = DropReason::kNotForUs;
      break;
    }
    handle_udp(port, m, *ip, ip_payload, now_ns);
    return;
  } while (false);
  drop(port, why);
  rte_pktmbuf_free(m);
}

void Dataplane::Impl::handle_udp(PortState& port, rte_mbuf* m, const net::Ipv4Header& ip, net::Bytes segment,
                                 std::uint64_t now_ns) {
  DropReason why = DropReason::kBadUdp;
  do {
    net::Bytes payload;
    const auto udp = net::parse_udp(segment, &payload);
    if (!udp) break;
    const std::uint32_t id = current->ports[port.index].classifier.lookup(ip.dst, udp->dst_port, ip.src);
    if (id == FlowClassifier::kNoInput) {
      why = DropReason::kUnknownFlow;
      break;
    }
    const Flow& flow = current->flows[id];
    if (flow.members.front()->rtp) {
      net::Bytes ts;
      const auto rtp = net::parse_rtp(payload, &ts);
      // Payload types 64..95 are RTCP multiplexed on the RTP port (RFC 5761 4: its packet
      // types 192..223 read as these): no media, and its SSRC must not restart the window.
      if (!rtp || (rtp->payload_type >= 64 && rtp->payload_type <= 95)) {
        why = DropReason::kBadRtp;
        break;
      }
      receive_rtp(flow, m, *rtp, ts, now_ns);
      return;
    }
    deliver(flow, m, payload, now_ns);
    return;
  } while (false);
  drop(port, why);
  rte_pktmbuf_free(m);
}

void Dataplane::Impl::deliver(const Flow& flow, rte_mbuf* m, net::Bytes payload, std::uint64_t now_ns) {
  DropReason why = DropReason::kTsSize;
  const std::size_t n = ts_packets_in(payload, why);
  if (n != 0) {
    // The pipelines read the packets where they lie in the mbuf (TsPacket is 188 raw
    // bytes, alignment 1) and copy what they keep; the mbuf is freed with the rest of
    // the burst's afterwards.
    const auto* packets = reinterpret_cast<const mpegts::TsPacket*>(payload.data());
    for (InputState* i : flow.members) {
      bump(i->counters.datagrams);
      bump(i->counters.packets, n);
      i->pipeline->push(i->input, std::span<const mpegts::TsPacket>(packets, n), now_ns);
    }
    retire(m);
    return;
  }
  drop(*flow.members.front()->port, why);
  rte_pktmbuf_free(m);
}

// RTP: deliver in sequence order. A datagram ahead of a gap waits in the window (up to
// kRtpWindow sequence numbers, kRtpHoldNs) for the missing ones; a repeat of one already
// delivered or held is a duplicate; one from behind the window is late and dropped.
void Dataplane::Impl::receive_rtp(const Flow& flow, rte_mbuf* m, const net::Rtp& rtp, net::Bytes payload,
                                  std::uint64_t now_ns) {
  InputState& in = *flow.members.front();
  if (!in.have_seq || rtp.ssrc != in.ssrc) {
    // Only a datagram of TS is a new sender: garbage that reads as RTP of another SSRC is
    // dropped as deliver() would drop it, and neither flushes the window nor renumbers it.
    DropReason why = DropReason::kTsSize;
    if (ts_packets_in(payload, why) == 0) {
      drop(*in.port, why);
      rte_pktmbuf_free(m);
      return;
    }
    // A datagram of the sender before, reordered behind the new one's first or a copy of
    // its last, is late: it must not switch back (delivered again, or after the ones that
    // followed it). That sender back goes on from where it stopped, or far from it.
    if (in.have_seq && in.have_previous && rtp.ssrc == in.previous_ssrc) {
      const auto behind = static_cast<std::int16_t>(static_cast<std::uint16_t>(rtp.sequence - in.previous_expected_seq));
      if (behind < 0 && -behind < 2 * kRtpWindow) {
        bump(in.counters.rtp_duplicates);
        drop(*in.port, DropReason::kRtpDuplicate);
        rte_pktmbuf_free(m);
        return;
      }
    }
    flush_rtp(flow, true, now_ns);  // a new sender: what the old one left goes first
    if (in.have_seq) {
      in.have_previous = true;
      in.previous_ssrc = in.ssrc;
      in.previous_expected_seq = in.expected_seq;
    }
    in.have_seq = true;
    in.ssrc = rtp.ssrc;
    in.expected_seq = rtp.sequence;
  }
  const bool armed = in.restart_armed;
  in.restart_armed = false;
  auto d = static_cast<std::int16_t>(static_cast<std::uint16_t>(rtp.sequence - in.expected_seq));
  // The silence before this datagram, and the flow's average interval before it: a jump
  // far ahead about as long as the silence (half to twice) is an outage the numbering went
  // on through (its datagrams are lost), not a new numbering.
  const std::uint64_t silence = in.last_rtp_ns != 0 && now_ns > in.last_rtp_ns ? now_ns - in.last_rtp_ns : 0;
  const std::uint64_t interval_x256 = in.rtp_interval_x256;
  in.note_rtp_interval(silence, now_ns);
  const bool far_behind = d < 0 && -d >= 2 * kRtpWindow;
  bool far_ahead = d >= static_cast<std::int16_t>(kRtpMaxDropout);
  if (far_ahead && interval_x256 != 0) [[unlikely]] {
    const std::uint64_t outage_len = silence * 256 / interval_x256;  // datagrams the silence held
    const auto jump = static_cast<std::uint64_t>(d);
    far_ahead = !(jump * 2 >= outage_len && jump <= outage_len * 2);
  }
  const auto after_far = static_cast<std::uint16_t>(rtp.sequence - in.restart_seq);
  if ((far_behind || far_ahead) && armed && after_far != 0 && after_far < kRtpWindow) {
    // Far from the numbering right after one far from it, and a little ahead of that one:
    // the sender restarted its numbering (same SSRC); follow it, nothing counted lost.
    // (Late copies come between ones on time; a stray comes alone.)
    flush_rtp(flow, true, now_ns);
    in.expected_seq = rtp.sequence;
    d = 0;
  } else if (far_ahead) {
    // Far ahead (RFC 3550 A.1's MAX_DROPOUT), after a silence too short for that many: the
    // first of a sender's new numbering, or a stray; the next datagram tells. Not a loss of
    // thousands of datagrams either way.
    in.restart_armed = true;
    in.restart_seq = rtp.sequence;
    drop(*in.port, DropReason::kRtpJump);
    rte_pktmbuf_free(m);
    return;
  } else if (d < 0) {
    // Behind: already delivered (a duplicate) or given up for lost (late). Far behind, it
    // may also be the first of a sender's new numbering: the next datagram tells.
    if (far_behind) {
      in.restart_armed = true;
      in.restart_seq = rtp.sequence;
    }
    bump(in.counters.rtp_duplicates);
    drop(*in.port, DropReason::kRtpDuplicate);
    rte_pktmbuf_free(m);
    return;
  } else if (d >= static_cast<std::int16_t>(kRtpWindow)) {
    // Ahead of the window: it moves on just far enough to take this one, giving up the
    // gaps and delivering what it held on the way; the sequence numbers between the ones
    // it still holds and this one may yet come. With nothing held, the same: the ones just
    // before this one (reordered behind it) may yet come too, whether or not an earlier
    // gap happened to be open.
    while (in.held != 0 && static_cast<std::uint16_t>(rtp.sequence - in.expected_seq) >= kRtpWindow)
      step_rtp(flow, now_ns);
    if (in.held == 0) {
      const auto front = static_cast<std::uint16_t>(rtp.sequence - (kRtpWindow - 1));
      bump(in.counters.rtp_lost, static_cast<std::uint16_t>(front - in.expected_seq));
      in.expected_seq = front;
      in.held_since_ns = 0;
    } else {
      flush_rtp(flow, false, now_ns);  // the run the window starts with now
      in.find_oldest_held();
    }
    d = static_cast<std::int16_t>(static_cast<std::uint16_t>(rtp.sequence - in.expected_seq));
  }
  if (d > 0) {
    InputState::RtpSlot& slot = in.window[rtp.sequence % kRtpWindow];
    if (slot.m != nullptr) {
      bump(in.counters.rtp_duplicates);
      drop(*in.port, DropReason::kRtpDuplicate);
      rte_pktmbuf_free(m);
      return;
    }
    slot.m = m;
    slot.offset = static_cast<std::uint16_t>(payload.data() - data_of(m));
    slot.length = static_cast<std::uint16_t>(payload.size());
    slot.arrived_ns = now_ns;
    if (in.held++ == 0) in.held_since_ns = now_ns;
    return;
  }
  // The one expected: deliver it and whatever it unblocks.
  if (in.held != 0) bump(in.counters.rtp_out_of_order);
  deliver(flow, m, payload, now_ns);
  in.expected_seq = static_cast<std::uint16_t>(in.expected_seq + 1);
  flush_rtp(flow, false, now_ns);
}

// The window's front moves on by one: the datagram expected there goes out, or, not held,
// counts as lost. True when one went out.
bool Dataplane::Impl::step_rtp(const Flow& flow, std::uint64_t now_ns) {
  InputState& in = *flow.members.front();
  InputState::RtpSlot& slot = in.window[in.expected_seq % kRtpWindow];
  rte_mbuf* const m = slot.m;
  if (m == nullptr) {
    bump(in.counters.rtp_lost);
  } else {
    const net::Bytes payload(data_of(m) + slot.offset, slot.length);
    slot = {};
    --in.held;
    deliver(flow, m, payload, now_ns);
  }
  in.expected_seq = static_cast<std::uint16_t>(in.expected_seq + 1);
  return m != nullptr;
}

// Delivers the consecutive run of held datagrams from expected_seq on; with `all`, also
// skips the gaps (counting them lost) until the window is empty.
void Dataplane::Impl::flush_rtp(const Flow& flow, bool all, std::uint64_t now_ns) {
  InputState& in = *flow.members.front();
  bool delivered = false;
  for (std::uint16_t k = 0; in.held != 0 && k < kRtpWindow; ++k) {
    if (!all && in.window[in.expected_seq % kRtpWindow].m == nullptr) {
      // The rest waits from when the oldest of it arrived, not from when the ones just
      // delivered did.
      if (delivered) in.find_oldest_held();
      return;
    }
    delivered |= step_rtp(flow, now_ns);
  }
  if (in.held == 0) in.held_since_ns = 0;
}

// A gap that stayed open for kRtpHoldNs is a loss: skip it.
void Dataplane::Impl::expire_rtp(std::uint64_t now_ns) {
  for (const std::uint32_t id : current->rtp_flows) {
    const Flow& flow = current->flows[id];
    InputState* in = flow.members.front();
    while (in->held != 0 && now_ns - in->held_since_ns >= kRtpHoldNs) {
      while (in->window[in->expected_seq % kRtpWindow].m == nullptr) {
        bump(in->counters.rtp_lost);
        in->expected_seq = static_cast<std::uint16_t>(in->expected_seq + 1);
      }
      bump(in->counters.rtp_out_of_order);
      // flush_rtp() delivers at least the datagram after the gap; the rest waits from when
      // the oldest of it arrived (flush_rtp() sets held_since_ns so).
      flush_rtp(flow, false, now_ns);
    }
  }
}

void Dataplane::Impl::handle_igmp(PortState& port, const PortPlan& pp, net::Bytes message, std::uint64_t now_ns) {
  const auto q = net::parse_igmp_query(message);
  if (!q) {
    bump(port.counters.igmp_other);
    return;
  }
  bump(port.counters.igmp_queries);
  // An IGMPv1 or v2 querier on the segment (RFC 3376 7.2.1): it would ignore IGMPv3
  // reports (7 there), so the port speaks its version for the Older Version Querier
  // Present Timeout (8.12), restarted by each of its queries. An IGMPv3 query changes
  // nothing: while an older querier is present the older version is what gets through.
  if (q->version < 3) {
    const std::uint64_t until = now_ns + kIgmpOlderQuerierNs + std::uint64_t{q->max_response_ds} * 100'000'000ULL;
    std::uint64_t& timer = q->version == 1 ? port.igmp_v1_querier_until_ns : port.igmp_v2_querier_until_ns;
    timer = std::max(timer, until);
  }
  port.update_igmp_version(now_ns);
  if (q->group != 0) {
    bool joined = false;
    for (const GroupJoin& g : pp.groups) joined = joined || g.group == q->group;
    if (!joined) return;
  }
  // Answered at once rather than after a random delay up to max_response_ds: with one
  // box per segment there is no report suppression (RFC 2236 3, RFC 3376 5.2) to gain
  // from waiting, and no other member's report to cancel ours.
  // A group-and-source-specific query: for its sources only (a general query has none).
  const net::Bytes queried = q->group != 0 ? q->sources : net::Bytes{};
  send_reports(port, pp.groups, net::IgmpEvent::kQueryResponse, q->group, {}, queried);
}

void Dataplane::Impl::send_reports(PortState& port, std::span<const GroupJoin> groups, net::IgmpEvent event,
                                   Ipv4 only_group, std::span<const GroupJoin> still_joined, net::Bytes queried) {
  if (port.igmp_version < 3) {
    // One 8-byte message per group (IGMPv1/v2), none for a v1 leave.
    const auto type = net::igmp_older_message(port.igmp_version, event);
    if (!type) return;
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const GroupJoin& g = groups[i];
      if (only_group != 0 && g.group != only_group) continue;
      if (g.source != 0) bump(port.counters.igmp_ssm_as_asm);
      // A group of several SSM joins is one v1/v2 membership: reported once, left last.
      // Quadratic in the port's joins (tens to hundreds), once per query: no table needed.
      bool done = false;
      for (std::size_t k = 0; k < i && !done; ++k) done = groups[k].group == g.group;
      if (event == net::IgmpEvent::kLeave) {
        for (const GroupJoin& s : still_joined) done = done || s.group == g.group;
      }
      if (done) continue;
      rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
      if (m == nullptr) {
        drop(port, DropReason::kTxNoMbuf);
        continue;
      }
      constexpr auto kMax = static_cast<std::uint16_t>(net::kIgmpOlderFrameMax);
      auto* d = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, kMax));
      const std::size_t len = d == nullptr ? 0
                                           : net::build_igmp_older_message({d, kMax}, *type, port.mac,
                                                                           port.config.address, port.config.vlan,
                                                                           port.ip_id++, g.group);
      if (len == 0) {
        rte_pktmbuf_free(m);
        drop(port, DropReason::kTxTooBig);
        continue;
      }
      rte_pktmbuf_trim(m, static_cast<std::uint16_t>(kMax - len));
      bump(port.counters.igmp_reports_sent);
      bump(port.counters.igmp_compat_reports);
      enqueue_tx(port, m);
    }
    return;
  }
  // Reports of up to 1500 bytes of IP (RFC 3376 4.2.16). A record that does not fit in what
  // is left of one goes whole into the next: only one longer than a whole report is split
  // (into records of its type with part of its sources each, as the RFC allows for all but
  // the EXCLUDE types, which have no sources here). Two TO_IN records with part of a group's
  // sources each would mean the second part only to a router that tracks its hosts.
  constexpr std::size_t kIpMax = 1500;
  constexpr std::size_t kHeaders = 24 + 8;                        // IPv4 with Router Alert, the report's
  constexpr std::size_t kPerFrame = (kIpMax - kHeaders - 8) / 4;  // entries: one record's sources at most
  std::array<net::IgmpRecord, kPerFrame> records;
  std::size_t n = 0;
  std::size_t record = 0;       // where the last record's entries start
  std::size_t size = kHeaders;  // of the report so far
  // Whether `r` after the last entry goes into its record (as write_igmpv3_report merges).
  const auto merges = [&](const net::IgmpRecord& r) {
    return n > 0 && r.source != 0 && records[n - 1].source != 0 && records[n - 1].type == r.type &&
           records[n - 1].group == r.group;
  };
  // Sends the first `count` entries (whole records) and keeps the rest.
  auto emit = [&](std::size_t count) {
    if (count == 0) return;
    const auto rest = [&] {
      std::copy(records.begin() + static_cast<std::ptrdiff_t>(count),
                records.begin() + static_cast<std::ptrdiff_t>(n), records.begin());
      n -= count;
      record = 0;
      size = kHeaders + (n == 0 ? 0 : 8 + 4 * n);  // what stays is one record of sources
    };
    rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
    if (m == nullptr) {
      drop(port, DropReason::kTxNoMbuf);
      rest();
      return;
    }
    constexpr std::uint16_t kMax = 18 + kIpMax;
    auto* d = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, kMax));
    const std::size_t len =
        d == nullptr ? 0
                     : net::build_igmpv3_report({d, kMax}, port.mac, port.config.address, port.config.vlan,
                                                port.ip_id++, std::span<const net::IgmpRecord>(records.data(), count));
    rest();
    if (len == 0) {
      rte_pktmbuf_free(m);
      drop(port, DropReason::kTxTooBig);
      return;
    }
    rte_pktmbuf_trim(m, static_cast<std::uint16_t>(kMax - len));
    bump(port.counters.igmp_reports_sent);
    enqueue_tx(port, m);
  };
  auto add = [&](net::IgmpRecordType type, Ipv4 group, Ipv4 source) {
    const net::IgmpRecord r{type, group, source};
    const auto bytes = [&] { return std::size_t{merges(r) ? 0U : 8U} + std::size_t{source != 0 ? 4U : 0U}; };
    if (size + bytes() > kIpMax && merges(r) && record > 0) emit(record);  // the record moves on whole
    if (size + bytes() > kIpMax) emit(n);                                   // it alone fills a report
    if (!merges(r)) record = n;
    size += bytes();
    records[n++] = r;
  };
  for (const GroupJoin& g : groups) {
    if (only_group != 0 && g.group != only_group) continue;
    if (!queried.empty()) {
      // A group-and-source-specific query (RFC 3376 5.2, rule 3): IS_IN of the queried
      // sources the group is received from, all of them for an any-source join
      // (EXCLUDE({}): B-{}), else those that are its sources (INCLUDE(A): A*B); no
      // record, and no report, when that is none.
      bool any_source = false;
      for (const GroupJoin& o : groups) any_source = any_source || (o.group == g.group && o.source == 0);
      for (std::size_t k = 0; k + 4 <= queried.size(); k += 4) {
        const Ipv4 s = net::detail::get32(queried, k);
        if (s != 0 && (g.source == 0 || (!any_source && s == g.source)))
          add(net::IgmpRecordType::kModeIsInclude, g.group, s);
      }
      continue;
    }
    if (event == net::IgmpEvent::kLeave) {
      // What a leave reports is the group's state after it (RFC 3376 5.1, 5.2): nothing
      // changes while an any-source join of the group stays; an any-source join left while
      // sources of the group stay joined changes to those sources: TO_IN of them, in one
      // record (write_igmpv3_report merges them; an empty TO_IN would leave the group).
      bool any_source_stays = false;
      bool sources_stay = false;
      for (const GroupJoin& s : still_joined) {
        if (s.group != g.group) continue;
        any_source_stays = any_source_stays || s.source == 0;
        sources_stay = sources_stay || s.source != 0;
      }
      if (any_source_stays) continue;
      if (g.source == 0 && sources_stay) {
        for (const GroupJoin& s : still_joined)
          if (s.group == g.group && s.source != 0) add(net::IgmpRecordType::kChangeToInclude, g.group, s.source);
        continue;
      }
    }
    if (event == net::IgmpEvent::kQueryResponse) {
      // A current-state record is the group's whole state (RFC 3376 5.2: one record a group),
      // sent at its first join: EXCLUDE({}) while any join of it is any-source (3.2), else
      // INCLUDE of all its sources, listed together (one record). Quadratic in the port's
      // joins, as the v1/v2 answer above.
      bool first = true;
      for (const GroupJoin* o = groups.data(); o != &g && first; ++o) first = o->group != g.group;
      if (!first) continue;
      bool any_source = false;
      for (const GroupJoin& o : groups) any_source = any_source || (o.group == g.group && o.source == 0);
      if (any_source) {
        add(net::IgmpRecordType::kModeIsExclude, g.group, 0);
        continue;
      }
      for (const GroupJoin& o : groups)
        if (o.group == g.group) add(net::IgmpRecordType::kModeIsInclude, g.group, o.source);
      continue;
    }
    add(net::igmp_record_type(event, g.source != 0), g.group, g.source);
  }
  emit(n);
}

void Dataplane::Impl::send_arp_request(PortState& port, Neighbor& n, std::uint64_t now_ns) {
  n.next_request_ns = now_ns + kArpRetryNs;
  rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
  if (m == nullptr) {
    drop(port, DropReason::kTxNoMbuf);
    return;
  }
  constexpr std::uint16_t kMax = 64;
  auto* d = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, kMax));
  // A refresh goes to the MAC in use (as a Linux probe does), a first request to all.
  const std::size_t len =
      d == nullptr ? 0
                   : net::build_arp_request({d, kMax}, port.mac, port.config.address, n.ip, n.vlan,
                                            n.resolved ? n.mac : net::kBroadcastMac);
  if (len == 0) {
    rte_pktmbuf_free(m);
    drop(port, DropReason::kTxTooBig);
    return;
  }
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(kMax - len));
  bump(port.counters.arp_requests_sent);
  enqueue_tx(port, m);
}

void Dataplane::Impl::arp_tick(std::uint64_t now_ns) {
  for (auto& pp : ports) {
    PortState& port = *pp;
    const std::uint32_t n_neighbors = port.n_neighbors.load(std::memory_order_acquire);
    const std::uint64_t used = current->ports[port.index].neighbors_used;
    for (std::size_t k = 0; k < n_neighbors; ++k) {
      Neighbor& n = port.neighbors[k];
      if (n.resolved && now_ns >= n.confirmed_ns + kArpRefreshNs + kArpGiveUpNs) {
        n.resolved = false;  // the refreshes went unanswered: stop sending to a MAC that may be gone
        bump(port.counters.arp_expired);
        update_outputs(port, k);
      }
      // A next hop that a reload left without outputs is neither asked for nor refreshed (it
      // still expires, so an output that uses it again later does not get a stale MAC).
      const bool due = ((used >> k) & 1) != 0 && (!n.resolved || now_ns >= n.confirmed_ns + kArpRefreshNs);
      if (due && now_ns >= n.next_request_ns) send_arp_request(port, n, now_ns);
    }
  }
}

void Dataplane::Impl::learn_neighbor(PortState& port, Ipv4 ip, std::uint16_t vlan, const Mac& mac,
                                     std::uint64_t now_ns) {
  if ((mac[0] & 1) != 0 || mac == Mac{}) return;  // not a station's address
  const std::uint32_t n_neighbors = port.n_neighbors.load(std::memory_order_acquire);
  for (std::size_t k = 0; k < n_neighbors; ++k) {
    Neighbor& n = port.neighbors[k];
    if (n.ip != ip || n.vlan != vlan) continue;
    n.confirmed_ns = now_ns;
    n.next_request_ns = 0;
    if (n.resolved && n.mac == mac) return;
    n.mac = mac;
    n.resolved = true;
    bump(port.counters.arp_learnt);
    update_outputs(port, k);
    return;
  }
}

// Every output (channels' and multiplexes') behind port's neighbor k follows it.
void Dataplane::Impl::update_outputs(const PortState& port, std::size_t neighbor) {
  const Neighbor& n = port.neighbors[neighbor];
  auto update = [&](std::vector<OutputState>& outputs) {
    for (OutputState& o : outputs) {
      if (o.neighbor != neighbor || ports[o.port].get() != &port) continue;
      o.frame.dst_mac = n.mac;
      o.resolved = n.resolved;
      o.header_payload = 0;
    }
  };
  for (const auto& c : current->channels) update(c->outputs);
  for (const auto& m : current->multiplexes) update(m->outputs);
}

void Dataplane::Impl::send_datagram(std::vector<OutputState>& outputs, std::size_t output,
                                    std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) {
  if (output >= outputs.size() || packets.empty()) return;
  OutputState& o = outputs[output];
  PortState& port = *ports[o.port];
  OutputCounters& oc = *o.counters;
  auto drop_datagram = [&](DropReason r) {
    drop(port, r);
    bump(oc.dropped_datagrams);
    bump(oc.dropped_packets, packets.size());
  };
  if (!o.resolved) {
    drop_datagram(DropReason::kTxNoRoute);
    return;
  }
  const std::size_t payload = (o.rtp ? net::kRtpHeaderSize : 0) + packets.size() * mpegts::kPacketSize;
  const std::size_t total = net::udp_headers_size(o.frame.vlan) + payload;
  rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
  if (m == nullptr) {
    drop_datagram(DropReason::kTxNoMbuf);
    return;
  }
  if (total > rte_pktmbuf_tailroom(m)) {
    rte_pktmbuf_free(m);
    drop_datagram(DropReason::kTxTooBig);
    return;
  }
  auto* d = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(total)));
  const net::MutableBytes out(d, total);
  if (o.header_payload != payload) [[unlikely]] {
    o.frame.identification = 0;
    (void)net::write_udp_headers(o.header, o.frame, payload);
    o.header_payload = payload;
  }
  std::size_t at = net::udp_headers_size(o.frame.vlan);
  std::memcpy(d, o.header.data(), at);
  {
    // Identification, and the header checksum updated for it (RFC 1624: the header's sum
    // was taken with identification 0, so the new one is that sum plus the identification).
    std::uint8_t* ip = d + at - net::kUdpHeaderSize - net::kIpv4HeaderSize;
    const std::uint16_t id = port.ip_id++;
    std::uint32_t sum = static_cast<std::uint16_t>(~((ip[10] << 8) | ip[11])) + std::uint32_t{id};
    sum = (sum & 0xFFFF) + (sum >> 16);
    const auto checksum = static_cast<std::uint16_t>(~sum);
    ip[4] = static_cast<std::uint8_t>(id >> 8);
    ip[5] = static_cast<std::uint8_t>(id);
    ip[10] = static_cast<std::uint8_t>(checksum >> 8);
    ip[11] = static_cast<std::uint8_t>(checksum);
  }
  if (o.rtp) {
    const auto ts90k = static_cast<std::uint32_t>(now_ns / 100'000 * 9 + (now_ns % 100'000) * 9 / 100'000);
    at += net::write_rtp(out.subspan(at), net::Rtp{net::kRtpPayloadTypeMp2t, false, o.rtp_seq++, ts90k, o.ssrc});
  }
  std::memcpy(d + at, packets.data(), packets.size() * mpegts::kPacketSize);
  enqueue_tx(port, m, &oc, packets.size());
}

void Dataplane::Impl::free_retired() {
  if (n_retired == 0) return;
  rte_pktmbuf_free_bulk(retired, static_cast<unsigned>(n_retired));
  n_retired = 0;
}

void Dataplane::Impl::enqueue_tx(PortState& port, rte_mbuf* m, OutputCounters* owner, std::size_t ts_packets) {
  port.tx_owner[port.n_tx] = owner;
  port.tx_ts_packets[port.n_tx] = static_cast<std::uint8_t>(ts_packets);  // <= kMaxTsPerDatagram
  port.tx[port.n_tx++] = m;
  if (port.n_tx == kBurst) flush_tx(port);
}

void Dataplane::Impl::flush_tx(PortState& port) {
  const std::uint16_t n = port.n_tx;
  if (n == 0) return;
  // Lengths first: after the burst the sent mbufs belong to the driver.
  std::uint64_t bytes = 0;
  std::uint32_t len[kBurst];
  for (std::uint16_t i = 0; i < n; ++i) {
    len[i] = port.tx[i]->pkt_len;
    bytes += len[i];
  }
  const std::uint16_t sent = rte_eth_tx_burst(port.port_id, 0, port.tx, n);
  for (std::uint16_t i = 0; i < n; ++i) {
    OutputCounters* oc = port.tx_owner[i];
    if (oc == nullptr) continue;
    if (i < sent) {
      bump(oc->datagrams);
      bump(oc->packets, port.tx_ts_packets[i]);
      bump(oc->bytes, len[i]);
    } else {
      bump(oc->dropped_datagrams);
      bump(oc->dropped_packets, port.tx_ts_packets[i]);
    }
  }
  if (sent < n) {
    for (std::uint16_t i = sent; i < n; ++i) bytes -= len[i];
    bump(port.counters.drops[static_cast<std::size_t>(DropReason::kTxRefused)], n - sent);
    rte_pktmbuf_free_bulk(port.tx + sent, static_cast<unsigned>(n - sent));
  }
  bump(port.counters.tx_packets, sent);
  bump(port.counters.tx_bytes, bytes);
  moved += sent;
  port.n_tx = 0;
}

void Dataplane::Impl::poll_channels(std::uint64_t now_ns) {
  for (const auto& c : current->channels) {
    TxSink sink(*this, c->outputs, now_ns);
    c->core->pipeline->poll(now_ns, sink);
  }
  for (const auto& m : current->multiplexes) {
    TxSink sink(*this, m->outputs, now_ns);
    m->multiplex->poll(now_ns, sink);
  }
  for (auto& p : ports) flush_tx(*p);
}

void Dataplane::Impl::refresh_eth_stats(PortState& port) {
  rte_eth_stats st;
  if (rte_eth_stats_get(port.port_id, &st) == 0) {
    port.counters.rx_missed.store(st.imissed, std::memory_order_relaxed);
    port.counters.rx_nombuf.store(st.rx_nombuf, std::memory_order_relaxed);
  }
}

// SRT inputs: mbufs from the control side's ring, realigned into TS packets (SRT
// messages need not hold whole packets) and pushed to the channel in one batch per mbuf.
void Dataplane::Impl::drain_external(std::uint64_t now_ns) {
  for (InputState* in : current->external_inputs) {
    rte_mbuf* ms[kBurst];
    const unsigned n = rte_ring_dequeue_burst(in->ring, reinterpret_cast<void**>(ms), kBurst, nullptr);
    for (unsigned i = 0; i < n; ++i) {
      std::array<mpegts::TsPacket, kMaxTsPerDatagram> batch;
      std::size_t k = 0;
      ChannelPipeline& pipe = *in->pipeline;
      auto sink = [&](const mpegts::TsPacket& p) {
        batch[k++] = p;
        if (k == batch.size()) {
          pipe.push(in->input, std::span<const mpegts::TsPacket>(batch.data(), k), now_ns);
          k = 0;
        }
      };
      const std::uint64_t before = in->aligner->stats().packets;
      const bool mark = rte_pktmbuf_data_len(ms[i]) == 0;  // feed_external()'s mark: a new stream starts
      if (mark) {
        // The old stream ended: its last packet may lack only a trailer (192/204 bytes).
        // Only while locked: unlocked, flush() would take any 0x47 byte for a packet start.
        if (in->aligner->unit_size() != 0) in->aligner->flush(sink);
        in->aligner->restart();
      } else {
        in->aligner->push(std::span(rte_pktmbuf_mtod(ms[i], const std::uint8_t*), rte_pktmbuf_data_len(ms[i])), sink);
      }
      if (k != 0) pipe.push(in->input, std::span<const mpegts::TsPacket>(batch.data(), k), now_ns);
      if (!mark) bump(in->counters.datagrams);
      bump(in->counters.packets, in->aligner->stats().packets - before);
    }
    if (n != 0) rte_pktmbuf_free_bulk(ms, n);
    moved += n;
  }
}

// A new plan (a reload) is taken over between two turns; a turn uses one plan throughout.
namespace {
void carry_counters(OutputCounters& now, const OutputCounters& before) {
  for (auto [to, from] : {std::pair{&now.datagrams, &before.datagrams}, std::pair{&now.packets, &before.packets},
                          std::pair{&now.bytes, &before.bytes},
                          std::pair{&now.dropped_datagrams, &before.dropped_datagrams},
                          std::pair{&now.dropped_packets, &before.dropped_packets}})
    to->store(from->load(std::memory_order_relaxed), std::memory_order_relaxed);
}
bool same_destination(const OutputState& a, const OutputState& b) {
  return a.port == b.port && a.frame.dst_ip == b.frame.dst_ip && a.frame.dst_port == b.frame.dst_port;
}
// A channel updated in place keeps its outputs' counters (as its pacers do): an output that
// stayed where it sends takes its own; one that moved takes those of the output at its
// place in the list before, unless that one still sends too.
void carry_output_counters(std::vector<OutputState>& now, const std::vector<OutputState>& before) {
  for (std::size_t o = 0; o < now.size(); ++o) {
    const OutputState* from = nullptr;
    for (const OutputState& b : before)
      if (same_destination(now[o], b)) from = &b;
    if (from == nullptr && o < before.size() &&
        std::none_of(now.begin(), now.end(), [&](const OutputState& n) { return same_destination(n, before[o]); }))
      from = &before[o];
    if (from != nullptr) carry_counters(*now[o].counters, *from->counters);
  }
}
// An output that kept its destination goes on with its RTP stream: the same SSRC and the
// next sequence number (outputs are matched by destination, not by their place in the list).
void carry_rtp(std::vector<OutputState>& now, const std::vector<OutputState>& before) {
  auto went_on = [&](const OutputState& o) -> const OutputState* {
    for (const OutputState& b : before)
      if (o.frame.dst_ip == b.frame.dst_ip && o.frame.dst_port == b.frame.dst_port) return &b;
    return nullptr;
  };
  for (OutputState& o : now) {
    if (const OutputState* b = went_on(o)) {
      o.rtp_seq = b->rtp_seq;
      o.ssrc = b->ssrc;
    }
  }
  // A new output's SSRC comes from its place in the list, which may be the old place of one
  // that went on with its own: it takes another, so no two outputs send one SSRC.
  for (OutputState& o : now) {
    if (went_on(o) != nullptr) continue;
    auto taken = [&](std::uint32_t ssrc) {
      return std::any_of(now.begin(), now.end(), [&](const OutputState& n) { return &n != &o && n.ssrc == ssrc; });
    };
    while (taken(o.ssrc)) o.ssrc = o.ssrc * 16777619u + 1;
  }
}
}  // namespace

void Dataplane::Impl::adopt(const Plan& next) {
  // Changed channels go on where their predecessors left their receivers: continuity
  // counters, table versions, RTP sequence numbers of the outputs that stayed the same.
  for (std::size_t c = 0; c < next.predecessors.size(); ++c) {
    const ChannelState* before = next.predecessors[c];
    if (before == nullptr) continue;
    ChannelState& now = *next.channels[c];
    if (now.core != before->core) {
      now.core->pipeline->continue_from(*before->core->pipeline);
    } else {
      carry_output_counters(now.outputs, before->outputs);
    }
    carry_rtp(now.outputs, before->outputs);
  }
  for (std::size_t m = 0; m < next.multiplex_predecessors.size(); ++m) {
    const MultiplexState* before = next.multiplex_predecessors[m];
    if (before == nullptr) continue;
    MultiplexState& now = *next.multiplexes[m];
    now.multiplex->continue_from(*before->multiplex);
    carry_rtp(now.outputs, before->outputs);
  }
  // Renamed services of pipelines that go on: their tables change now (Remuxer::describe
  // rebuilds them, which allocates, as a change of an input's tables does; once per reload).
  for (const Plan::Rename& r : next.renames) {
    if (r.pipeline != nullptr) r.pipeline->describe(*r.config);
    if (r.multiplex != nullptr) r.multiplex->describe_member(r.slot, *r.config);
  }
  // An RTP flow's reordering state (sequence, window) lives in its first member, and a
  // reload can change which member that is: a channel sharing the flow listed before it,
  // the first one removed or restarted. The state moves to the new first member, so what
  // the window holds is not stranded (or freed with a removed channel) and no sequence
  // number goes stale in a member that may head the flow again later. A flow is the same
  // flow across the reload when they share a member (an input that went on).
  if (next.before != nullptr) {
    for (const std::uint32_t id : next.rtp_flows) {
      const Flow& f = next.flows[id];
      InputState& head = *f.members.front();
      for (const std::uint32_t was : next.before->rtp_flows) {
        const Flow& g = next.before->flows[was];
        InputState& old_head = *g.members.front();
        if (&old_head == &head || !old_head.have_seq) continue;
        const bool same_flow = std::any_of(f.members.begin(), f.members.end(), [&](const InputState* m) {
          return std::find(g.members.begin(), g.members.end(), m) != g.members.end();
        });
        if (!same_flow) continue;
        for (InputState::RtpSlot& slot : head.window)
          if (slot.m != nullptr) rte_pktmbuf_free(slot.m);
        // The whole receive state moves (the window's mbufs with it); the old head keeps
        // nothing, so no mbuf has two owners.
        static_cast<RtpReceiveState&>(head) = static_cast<const RtpReceiveState&>(old_head);
        static_cast<RtpReceiveState&>(old_head) = RtpReceiveState{};
        // The flow's counts are the window's: they move with it (every member shows them).
        for (Counter InputCounters::*c :
             {&InputCounters::rtp_out_of_order, &InputCounters::rtp_lost, &InputCounters::rtp_duplicates}) {
          (head.counters.*c).store((head.counters.*c).load(std::memory_order_relaxed) +
                                       (old_head.counters.*c).load(std::memory_order_relaxed),
                                   std::memory_order_relaxed);
          (old_head.counters.*c).store(0, std::memory_order_relaxed);
        }
      }
    }
  }
  // QoS: the tiers shed are those of the priorities shed before, not as many of the lowest
  // ranks: a reload that adds or removes a tier (a priority changed, an HLS channel added
  // or removed) would otherwise shed a priority that was served, or serve one that was shed.
  if (next.before != nullptr && qos.shed != 0 && !next.before->ott_priorities.empty()) {
    const std::vector<std::uint8_t>& was = next.before->ott_priorities;
    const std::uint8_t highest_shed = was[std::min<std::size_t>(qos.shed, was.size()) - 1];
    const auto& now = next.ott_priorities;
    qos.shed = static_cast<std::uint8_t>(std::min<std::ptrdiff_t>(
        std::upper_bound(now.begin(), now.end(), highest_shed) - now.begin(), next.ott_tiers));
    qos.shed_published.store(qos.shed, std::memory_order_relaxed);
  }
  next.before = nullptr;
  next.predecessors.clear();  // keeps its capacity: no free on the worker
  next.multiplex_predecessors.clear();
  for (auto& p : ports) {
    const PortPlan& pp = next.ports[p->index];
    send_reports(*p, pp.leave, net::IgmpEvent::kLeave, 0, pp.groups);
    send_reports(*p, pp.join, net::IgmpEvent::kJoin, 0);
    if (!pp.leave.empty() || !pp.join.empty()) {
      // Each change sends at once and is repeated once more (igmp_repeat_tick), the delay
      // drawn afresh from the turn after this change; its leaves join those still to be
      // repeated, of which a group joined again goes.
      std::size_t kept = 0;
      for (std::size_t k = 0; k < p->n_igmp_left; ++k)
        if (std::find(pp.groups.begin(), pp.groups.end(), p->igmp_left[k]) == pp.groups.end())
          p->igmp_left[kept++] = p->igmp_left[k];
      p->n_igmp_left = kept;
      for (const GroupJoin& g : pp.leave)
        if (p->n_igmp_left < PortState::kIgmpLeftMax) p->igmp_left[p->n_igmp_left++] = g;
      p->igmp_changes_pending = static_cast<std::uint8_t>(std::min(p->igmp_changes_pending + 1, 2));
      p->igmp_repeat_ns = 0;
    } else if (p->igmp_changes_pending != 0) {
      p->igmp_changes_pending = 2;  // this plan's (empty) join list is not the change's
    }
    // New unicast outputs behind next hops already resolved get their MAC now.
    const std::uint32_t n_neighbors = p->n_neighbors.load(std::memory_order_acquire);
    for (std::size_t k = 0; k < n_neighbors; ++k) update_outputs(*p, k);
  }
  worker_generation = next.generation;
}

void Dataplane::Impl::igmp_repeat_tick(std::uint64_t now_ns) {
  for (auto& pp : ports) {
    PortState& p = *pp;
    if (p.igmp_changes_pending == 0) continue;
    if (p.igmp_repeat_ns == 0) {
      igmp_rng ^= igmp_rng << 13;
      igmp_rng ^= igmp_rng >> 7;
      igmp_rng ^= igmp_rng << 17;
      p.igmp_repeat_ns = now_ns + 1 + igmp_rng % kIgmpRepeatIntervalNs;  // (0, interval]
      continue;
    }
    if (now_ns < p.igmp_repeat_ns) continue;
    const PortPlan& plan = current->ports[p.index];
    // One change: its plan's leaves, all of them (igmp_left has only the first kIgmpLeftMax);
    // several: those gathered from each.
    const std::span<const GroupJoin> left = p.igmp_changes_pending == 1
                                                ? std::span<const GroupJoin>(plan.leave)
                                                : std::span<const GroupJoin>(p.igmp_left.data(), p.n_igmp_left);
    send_reports(p, left, net::IgmpEvent::kLeave, 0, plan.groups);
    if (p.igmp_changes_pending == 1) {
      send_reports(p, plan.join, net::IgmpEvent::kJoin, 0);
    } else {
      // Several reloads before the repeat: the joins of the earlier ones are not in this
      // plan's list, so every group joined now is reported as it stands (current-state
      // records, as the answer to a query). The leaves are those of every reload since.
      send_reports(p, plan.groups, net::IgmpEvent::kQueryResponse, 0);
    }
    p.igmp_changes_pending = 0;
    p.igmp_repeat_ns = 0;
    p.n_igmp_left = 0;
  }
}

void Dataplane::Impl::apply_shedding() {
  for (std::size_t c = 0; c < current->channels.size(); ++c) {
    OttFeed* feed = current->channels[c]->core->ott.get();
    if (feed != nullptr) feed->set_shed(current->ott_tier[c] < qos.shed);
  }
}

void Dataplane::Impl::qos_tick(std::uint64_t now_ns) {
  if (qos.window_start_ns == 0) qos.window_start_ns = qos.calm_since_ns = now_ns;
  if (now_ns - qos.window_start_ns < kQosWindowNs) return;
  const bool overloaded = qos.longest_run >= kQosFullRun;
  qos.longest_run = 0;
  qos.window_start_ns = now_ns;
  if (overloaded) {
    bump(qos.overload_windows);
    qos.calm_since_ns = now_ns;
    if (qos.shed < current->ott_tiers) ++qos.shed;
  } else if (qos.shed > 0 && now_ns - qos.calm_since_ns >= kQosRestoreNs) {
    --qos.shed;
    qos.calm_since_ns = now_ns;
  }
  qos.shed = std::min(qos.shed, current->ott_tiers);  // a reload may have removed tiers
  apply_shedding();
  qos.shed_published.store(qos.shed, std::memory_order_relaxed);
}

bool Dataplane::Impl::loop_once(std::uint64_t now_ns) {
  const std::uint64_t moved_before = moved;
  current = published.load(std::memory_order_acquire);
  for (auto& p : ports) p->update_igmp_version(now_ns);  // an older querier's time may be up
  if (current->generation != worker_generation) {
    adopt(*current);
    apply_shedding();  // new feeds follow the shedding in force
    adopted_generation.store(current->generation, std::memory_order_release);
  }
  for (auto& pp : ports) {
    PortState& p = *pp;
    rte_mbuf* frames[kBurst];
    const std::uint16_t n = rte_eth_rx_burst(p.port_id, 0, frames, kBurst);
    if (n != 0) rx_burst(p, frames, n, now_ns);
    else p.full_run = 0;  // drained
  }
  if (now_ns >= next_igmp_ns) {
    for (auto& p : ports) send_reports(*p, current->ports[p->index].groups, net::IgmpEvent::kQueryResponse, 0);
    next_igmp_ns = now_ns + kIgmpRefreshNs;
  }
  igmp_repeat_tick(now_ns);
  if (now_ns >= next_stats_ns) {
    for (auto& p : ports) refresh_eth_stats(*p);
    next_stats_ns = now_ns + kStatsRefreshNs;
  }
  if (now_ns >= next_arp_ns) {
    arp_tick(now_ns);  // queued for the TX flush in poll_channels
    next_arp_ns = now_ns + kArpTickNs;
  }
  qos_tick(now_ns);
  drain_external(now_ns);
  if (!current->rtp_flows.empty()) {
    expire_rtp(now_ns);
    free_retired();
  }
  poll_channels(now_ns);  // flushes every port's TX
  // Nothing of this turn's plan is held past here (a reload may free it now).
  rte_rcu_qsbr_quiescent(qsbr, 0);
  return moved != moved_before;
}

int Dataplane::Impl::worker_main(void* arg) {
  Impl& d = *static_cast<Impl*>(arg);
  const std::uint64_t start = Dataplane::now_ns();
  (void)rte_rcu_qsbr_thread_register(d.qsbr, 0);
  rte_rcu_qsbr_thread_online(d.qsbr, 0);
  d.current = d.published.load(std::memory_order_acquire);
  d.worker_generation = d.current->generation;
  d.adopted_generation.store(d.worker_generation, std::memory_order_release);
  for (auto& p : d.ports) d.send_reports(*p, d.current->ports[p->index].groups, net::IgmpEvent::kJoin, 0);
  d.arp_tick(start);  // the next hops of unicast outputs: asked at once
  for (auto& p : d.ports) d.flush_tx(*p);
  d.igmp_rng = (d.igmp_rng ^ start) | 1;  // never 0; the repeat's delay differs between appliances started together
  d.next_igmp_ns = start + 1'000'000'000ULL;  // a second (current-state) report soon, then every 60 s
  d.next_stats_ns = start;
  // Each turn's time (from its start to the next one's) counts as busy when it moved a packet.
  std::uint64_t turn_start = Dataplane::now_ns();
  while (!d.stop_requested.load(std::memory_order_acquire)) {
    const bool busy = d.loop_once(turn_start);
    const std::uint64_t end = Dataplane::now_ns();
    WorkerCounters& wc = d.worker_counters;
    bump(wc.poll_ns, end - turn_start);
    bump(wc.turns);
    if (busy) {
      bump(wc.busy_ns, end - turn_start);
      bump(wc.busy_turns);
    }
    turn_start = end;
  }
  // What the RTP windows hold goes to the channels now (the gaps before it given up, as
  // expire_rtp would): no mbuf stays held past stop(), nor comes out stale after a start().
  const std::uint64_t end = Dataplane::now_ns();
  for (const std::uint32_t id : d.current->rtp_flows) d.flush_rtp(d.current->flows[id], true, end);
  d.free_retired();
  rte_rcu_qsbr_thread_offline(d.qsbr, 0);
  (void)rte_rcu_qsbr_thread_unregister(d.qsbr, 0);
  for (auto& p : d.ports) d.refresh_eth_stats(*p);
  return 0;
}

}  // namespace twincast::dataplane
