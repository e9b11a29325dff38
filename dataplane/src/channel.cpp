#include "twincast/dataplane/channel.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <stdexcept>
#include <vector>

#include "twincast/mpegts/analyzer.hpp"
#include "twincast/mpegts/remux.hpp"

namespace twincast::dataplane {

namespace {

using mpegts::TsPacket;

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::size_t kQueuePackets = 16384;             // ~1.2 s at 20 Mbit/s
constexpr std::uint64_t kPcrDelayNs = 100 * kMs;         // a PCR leaves this long after it arrived (> PCR interval + jitter)
constexpr std::uint64_t kMaxUnscheduledNs = 150 * kMs;   // no PCR for this long: send as they came
constexpr std::uint64_t kLateReanchorNs = 100 * kMs;     // schedule this far behind: re-anchor
constexpr std::uint64_t kEarlyReanchorNs = 1000 * kMs;   // schedule this far ahead: re-anchor
constexpr std::uint64_t kPartialFlushNs = 20 * kMs;      // a partial datagram waits at most this long
constexpr std::uint64_t kSelectorTickNs = 10 * kMs;

// A counter with one writer: a plain load and store, no locked instruction.
template <class T>
void bump(std::atomic<T>& c, T n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void bump(std::atomic<std::uint64_t>& c, std::size_t n) { bump<std::uint64_t>(c, n); }
inline void bump(std::atomic<std::uint64_t>& c) { bump<std::uint64_t>(c, 1); }

struct Slot {
  TsPacket packet;
  std::uint64_t due_ns;
  bool pcr;  // carries a PCR of the output's PCR PID
};

// Per-input health as the selector sees it.
struct InputState {
  std::unique_ptr<mpegts::Analyzer> analyzer;
  bool seen = false;
  std::uint64_t last_packet_ns = 0;
  std::uint64_t healthy_since_ns = 0;  // 0: not healthy
  std::uint64_t cc_at_second_start = 0;
  std::uint64_t cc_last_second = 0;
  std::uint64_t psi_errors_seen = 0;
  std::uint64_t psi_error_ns = 0;      // last time a PAT/PMT error was counted
  std::uint64_t second_start_ns = 0;
};

}  // namespace

struct Channel::Impl {
  explicit Impl(const ChannelConfig& c) : config(c), remux(make_remux_config(c)) {
    if (c.inputs.empty()) throw std::invalid_argument("channel " + c.id + ": no inputs");
    if (c.outputs.empty()) throw std::invalid_argument("channel " + c.id + ": no outputs");
    for (const auto& o : c.outputs) {
      if (o.packets_per_datagram < 1 || o.packets_per_datagram > 7)
        throw std::invalid_argument("channel " + c.id + ": packets_per_datagram must be 1..7");
      if (o.pacing == PacingMode::kCbr && o.cbr_bps == 0)
        throw std::invalid_argument("channel " + c.id + ": cbr pacing needs cbr_bps");
    }
    // One schedule serves every output: the datagram size and pacing of the first output
    // decide it (outputs of one channel carry the same datagrams).
    per_datagram = c.outputs[0].packets_per_datagram;
    pacing = c.outputs[0].pacing;
    cbr_bps = c.outputs[0].cbr_bps;
    inputs.resize(c.inputs.size());
    for (auto& in : inputs) in.analyzer = std::make_unique<mpegts::Analyzer>();
    remux_out.resize(remux.max_output_per_push());
    queue.resize(kQueuePackets);
  }

  static mpegts::RemuxConfig make_remux_config(const ChannelConfig& c) {
    mpegts::RemuxConfig rc;
    rc.n_inputs = 1;  // the active input feeds input 0; a switch is switch_source(0)
    rc.sdt = true;
    mpegts::RemuxServiceConfig s;
    s.input = 0;
    s.source_service_id = c.source_service_id;
    s.service_id = c.service_id;
    s.pmt_pid = c.pmt_pid;
    s.lcn = c.lcn;
    s.name = c.name;
    s.provider = c.provider;
    s.rules = c.pid_rules;
    rc.services.push_back(std::move(s));
    return rc;
  }

  // --- selector ---
  bool healthy(const InputState& in, std::uint64_t now) const {
    if (!in.seen || now - in.last_packet_ns > config.failover.timeout_ms * kMs) return false;
    if (config.failover.max_cc_errors_per_s != 0 && in.cc_last_second > config.failover.max_cc_errors_per_s) return false;
    if (config.failover.require_psi) {
      if (in.analyzer->programs().services.empty()) return false;
      if (in.psi_error_ns != 0 && now - in.psi_error_ns < 1000 * kMs) return false;
    }
    return true;
  }

  void update_health(std::uint64_t now) {
    for (auto& in : inputs) {
      const mpegts::Analyzer& a = *in.analyzer;
      if (now - in.second_start_ns >= 1000 * kMs) {
        const std::uint64_t cc = a.count(mpegts::Check::kContinuityCountError);
        in.cc_last_second = cc - in.cc_at_second_start;
        in.cc_at_second_start = cc;
        in.second_start_ns = now;
      }
      const std::uint64_t psi = a.count(mpegts::Check::kPatError2) + a.count(mpegts::Check::kPmtError2);
      if (psi != in.psi_errors_seen) {
        in.psi_errors_seen = psi;
        in.psi_error_ns = now;
      }
      if (healthy(in, now)) {
        if (in.healthy_since_ns == 0) in.healthy_since_ns = now;
      } else {
        in.healthy_since_ns = 0;
      }
    }
  }

  void select(std::uint64_t now) {
    if (now < next_select_ns) return;
    next_select_ns = now + kSelectorTickNs;
    update_health(now);
    const bool active_ok = inputs[active].healthy_since_ns != 0;
    if (!active_ok) {
      manual = false;
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (i != active && inputs[i].healthy_since_ns != 0) {
          switch_to(i);
          return;
        }
      }
      return;  // nothing better: stay (the output simply pauses)
    }
    if (!config.failover.revert || manual) return;
    for (std::size_t i = 0; i < active; ++i) {
      if (inputs[i].healthy_since_ns != 0 && now - inputs[i].healthy_since_ns >= config.failover.revert_holdoff_ms * kMs) {
        switch_to(i);
        return;
      }
    }
  }

  void switch_to(std::size_t i) {
    if (i == active) return;
    active = i;
    bump(counters.switches);
    counters.active_input.store(i, std::memory_order_relaxed);
    remux.switch_source(0);
    reanchor = true;  // the new input's PCRs are another clock
  }

  // --- queue and pacing ---
  std::size_t queued() const { return tail - head; }
  Slot& at(std::uint64_t i) { return queue[i % kQueuePackets]; }

  void enqueue(const TsPacket& p, std::uint64_t now) {
    if (queued() == kQueuePackets) {
      bump(counters.dropped_queue_full);
      return;
    }
    Slot& s = at(tail++);
    s.packet = p;
    s.due_ns = now;  // provisional: the arrival time
    s.pcr = p.has_pcr() && !remux.output_model().services.empty() && p.pid() == remux.output_model().services[0].pcr_pid;
    if (pacing == PacingMode::kPcr) schedule_pcr(s.packet, now);
    else scheduled = tail;
  }

  // PCR pacing: a packet with a PCR of the output's PCR PID fixes its own departure time
  // (PCR mapped onto the local clock); the packets since the previous PCR are spread
  // evenly between the two.
  void schedule_pcr(const TsPacket& p, std::uint64_t now) {
    if (!at(tail - 1).pcr) {
      // Without PCRs for too long, send packets as they arrived.
      if (tail - scheduled > 1 && now - at(scheduled).due_ns > kMaxUnscheduledNs) {
        scheduled = tail;
        have_anchor = false;
      }
      return;
    }
    std::uint64_t due = 0;
    bool anchor_now = !have_anchor || reanchor || p.discontinuity();
    if (!anchor_now) {
      const std::uint64_t delta_ticks = mpegts::pcr_delta(last_pcr, p.pcr());
      if (delta_ticks > mpegts::kPcrWrap / 2 || delta_ticks * 1000 / 27 > 1000 * kMs) {
        anchor_now = true;  // a jump: the stream's timeline restarted
      } else {
        due = last_pcr_due + delta_ticks * 1000 / 27;
        if (due + kLateReanchorNs < now || due > now + kEarlyReanchorNs) anchor_now = true;  // drifted away
      }
    }
    if (anchor_now) {
      due = now + kPcrDelayNs;
      have_anchor = true;
      reanchor = false;
      ++anchors;
    }
    // Spread the packets since the previous PCR between its departure and this one
    // (after a new anchor: between now and this one).
    const std::uint64_t n = tail - scheduled;  // includes this packet
    const std::uint64_t from = std::min(prev_due_valid && !anchor_now ? last_pcr_due : now, due);
    for (std::uint64_t k = 0; k < n; ++k) at(scheduled + k).due_ns = from + (due - from) * (k + 1) / n;
    scheduled = tail;
    last_pcr = p.pcr();
    last_pcr_due = due;
    prev_due_valid = true;
  }

  void send_datagram(std::uint64_t count, DatagramSink& sink) {
    std::array<TsPacket, 7> dg;
    count = std::min<std::uint64_t>(count, dg.size());
    for (std::uint64_t k = 0; k < count; ++k) dg[k] = at(head + k).packet;
    for (std::size_t o = 0; o < config.outputs.size(); ++o) sink.send(o, std::span(dg.data(), count));
    head += count;
    bump(counters.packets_out, count);
    bump(counters.datagrams_out);
  }

  void poll(std::uint64_t now, DatagramSink& sink) {
    select(now);
    // The input stopped (or carries no PCR): what waited too long for a PCR goes as it came.
    if (tail > scheduled && now - at(scheduled).due_ns > kMaxUnscheduledNs) {
      scheduled = tail;
      have_anchor = false;
    }
    if (pacing == PacingMode::kCbr) {
      poll_cbr(now, sink);
      return;
    }
    // A datagram is up to per_datagram packets and ends early at a PCR packet, so every
    // PCR leaves exactly on its schedule; it leaves when its last packet is due. A short
    // one goes only when nothing more is coming for a while.
    for (;;) {
      const std::uint64_t ready = scheduled - head;
      if (ready == 0) break;
      std::uint64_t count = std::min<std::uint64_t>(per_datagram, ready);
      for (std::uint64_t k = 0; k < count; ++k) {
        if (at(head + k).pcr) {
          count = k + 1;
          break;
        }
      }
      const Slot& last = at(head + count - 1);
      if (last.due_ns > now) break;
      const bool complete = count == per_datagram || last.pcr;
      if (!complete && (tail != scheduled || last.due_ns + kPartialFlushNs > now)) break;
      send_datagram(count, sink);
    }
  }

  // Constant bitrate: one packet slot every 188*8/cbr_bps; empty slots carry null packets.
  void poll_cbr(std::uint64_t now, DatagramSink& sink) {
    const std::uint64_t slot_ns_x1000 = kPacketBits * 1'000'000'000'000ull / cbr_bps;  // ns * 1000
    if (next_slot_x1000 == 0 || next_slot_x1000 / 1000 + kLateReanchorNs < now) next_slot_x1000 = now * 1000;
    while (next_slot_x1000 / 1000 <= now) {
      std::array<TsPacket, 7> dg;
      const std::size_t n = std::min(per_datagram, dg.size());
      for (std::size_t k = 0; k < n; ++k) {
        if (head < scheduled) {
          dg[k] = at(head++).packet;
          bump(counters.packets_out);
        } else {
          dg[k] = null_packet;
          dg[k].set_cc(0);
        }
      }
      for (std::size_t o = 0; o < config.outputs.size(); ++o) sink.send(o, std::span(dg.data(), n));
      bump(counters.datagrams_out);
      next_slot_x1000 += slot_ns_x1000 * per_datagram;
    }
  }

  void push(std::size_t input, std::span<const TsPacket> packets, std::uint64_t now) {
    InputState& in = inputs[input];
    in.seen = true;
    in.last_packet_ns = now;
    in.analyzer->push(packets, now);
    bump(counters.packets_in, packets.size());
    if (input != active) {
      bump(counters.dropped_inactive, packets.size());
      select(now);
      return;
    }
    for (const TsPacket& p : packets) {
      const std::size_t n = remux.push(0, p, now, remux_out);
      for (std::size_t k = 0; k < n; ++k) enqueue(remux_out[k], now);
    }
  }

  static constexpr std::uint64_t kPacketBits = mpegts::kPacketSize * 8;

  ChannelConfig config;
  mpegts::Remuxer remux;
  std::vector<TsPacket> remux_out;
  std::vector<InputState> inputs;
  std::size_t active = 0;
  bool manual = false;
  std::uint64_t next_select_ns = 0;

  std::size_t per_datagram = 7;
  PacingMode pacing = PacingMode::kPcr;
  std::uint64_t cbr_bps = 0;
  std::vector<Slot> queue;
  std::uint64_t head = 0;       // next packet to send
  std::uint64_t scheduled = 0;  // packets before this have their departure time
  std::uint64_t tail = 0;       // next free slot
  bool have_anchor = false;
  bool reanchor = false;
  bool prev_due_valid = false;
  std::uint64_t last_pcr = 0;
  std::uint64_t last_pcr_due = 0;
  std::uint64_t anchors = 0;
  std::uint64_t next_slot_x1000 = 0;
  TsPacket null_packet = mpegts::make_null_packet();
  // One writer (the lcore that owns the channel); stats() may read from any thread.
  struct alignas(64) Counters {
    std::atomic<std::uint64_t> packets_in{0};
    std::atomic<std::uint64_t> packets_out{0};
    std::atomic<std::uint64_t> datagrams_out{0};
    std::atomic<std::uint64_t> dropped_inactive{0};
    std::atomic<std::uint64_t> dropped_queue_full{0};
    std::atomic<std::uint64_t> switches{0};
    std::atomic<std::size_t> active_input{0};
  } counters;
};

Channel::Channel(const ChannelConfig& config) : impl_(std::make_unique<Impl>(config)) {}
Channel::~Channel() = default;

void Channel::push(std::size_t input, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) {
  if (input < impl_->inputs.size()) impl_->push(input, packets, now_ns);
}
void Channel::poll(std::uint64_t now_ns, DatagramSink& sink) { impl_->poll(now_ns, sink); }
void Channel::force_input(std::size_t input, std::uint64_t) {
  if (input >= impl_->inputs.size()) return;
  impl_->switch_to(input);
  impl_->manual = true;
}
ChannelStats Channel::stats() const {
  const auto& c = impl_->counters;
  constexpr auto r = std::memory_order_relaxed;
  ChannelStats s;
  s.packets_in = c.packets_in.load(r);
  s.packets_out = c.packets_out.load(r);
  s.datagrams_out = c.datagrams_out.load(r);
  s.dropped_inactive = c.dropped_inactive.load(r);
  s.dropped_queue_full = c.dropped_queue_full.load(r);
  s.switches = c.switches.load(r);
  s.active_input = c.active_input.load(r);
  return s;
}
const ChannelConfig& Channel::config() const { return impl_->config; }
const mpegts::Analyzer& Channel::input_analyzer(std::size_t input) const { return *impl_->inputs.at(input).analyzer; }

}  // namespace twincast::dataplane
