#include "pacer.hpp"

#include "twincast/mpegts/remux.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

namespace twincast::dataplane {

namespace {

using mpegts::TsPacket;

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kPcrDelayNs = 100 * kMs;         // a PCR leaves this long after it arrived (> PCR interval + jitter)
constexpr std::uint64_t kMaxUnscheduledNs = 150 * kMs;   // no PCR for this long: send as they came
constexpr std::uint64_t kLateReanchorNs = 100 * kMs;     // schedule this far behind: re-anchor
constexpr std::uint64_t kEarlyReanchorNs = 1000 * kMs;   // schedule this far ahead: re-anchor
constexpr std::uint64_t kPartialFlushNs = 20 * kMs;      // a partial datagram waits at most this long
constexpr std::uint64_t kPacketBits = mpegts::kPacketSize * 8;
// kCbr's PCR clocks (Pacer::PcrClock): the lower envelope leaks up at 100 ppm (MPEG allows
// an encoder 30 ppm, our clock some tens more); the offset used moves 1/32 of the way to it
// per PCR, at most 200 ppm, after 2 s of following the envelope directly; a PCR 50 ms off
// the offset is a jump; a PID without a PCR for 1 s gives its clock up to another.
constexpr std::int64_t kPcrLeakPpm = 100;
constexpr std::int64_t kPcrSlewPpm = 200;
constexpr std::uint64_t kPcrAcquireNs = 2000 * kMs;
constexpr std::int64_t kPcrJumpNs = 50 * static_cast<std::int64_t>(kMs);
constexpr std::int64_t kPcrSmoothing = 32;  // the offset moves 1/32 of the way to the envelope per PCR
constexpr auto kPcrWrapNs = static_cast<std::int64_t>(mpegts::kPcrWrap * 1000 / 27);
constexpr std::uint64_t kPcrIdleNs = 1000 * kMs;

}  // namespace

Pacer::Pacer(const std::vector<OutputConfig>& outputs, const std::string& who, std::vector<std::size_t> ids)
    : n_outputs_(outputs.size()), ids_(std::move(ids)) {
  if (ids_.size() != n_outputs_) {
    ids_.resize(n_outputs_);
    for (std::size_t o = 0; o < n_outputs_; ++o) ids_[o] = o;
  }
  for (const auto& o : outputs) {
    if (o.packets_per_datagram < 1 || o.packets_per_datagram > 7)
      throw std::invalid_argument(who + ": packets_per_datagram must be 1..7");
    if (o.pacing == PacingMode::kCbr && o.cbr_bps == 0) throw std::invalid_argument(who + ": cbr pacing needs cbr_bps");
  }
  if (outputs.empty()) return;
  per_datagram_ = outputs[0].packets_per_datagram;
  pacing_ = outputs[0].pacing;
  cbr_bps_ = outputs[0].cbr_bps;
  // A cbr packet's PCR is moved by its wait, so one that waited beyond a decoder's buffering
  // (MPEG's T-STD holds data 1 s at most) is past the PTS of its frame: with a rate below
  // the input's, the queue would grow for kQueuePackets (12 s at 2 Mbit/s) before the first
  // loss was counted, the output undecodable all along. Beyond 1 s of the rate, the tail
  // is lost and counted instead.
  if (pacing_ == PacingMode::kCbr)
    capacity_ = static_cast<std::size_t>(std::clamp<std::uint64_t>(
        cbr_bps_ * (kMaxCbrWaitNs / 1'000'000) / (kPacketBits * 1000), 7, kQueuePackets));
  packets_ = std::make_unique<TsPacket[]>(kQueuePackets);
  meta_ = std::make_unique<Meta[]>(kQueuePackets);
}

// PCR pacing: a packet with a PCR of the pacing PID fixes its own departure time (PCR
// mapped onto the local clock); the packets since the previous PCR are spread evenly
// between the two.
void Pacer::schedule_pcr(const TsPacket& p, std::uint64_t now) {
  if (!meta(tail_ - 1).pcr) {
    // Without PCRs for too long, send packets as they arrived (until the next PCR).
    if (unpaced_ || (tail_ - scheduled_ > 1 && now - meta(scheduled_).due_ns > kMaxUnscheduledNs)) {
      scheduled_ = tail_;
      have_anchor_ = false;
      unpaced_ = true;
    }
    return;
  }
  std::uint64_t due = 0;
  // A PCR of another PID than the last one's (the owner's first service changed: a
  // multiplex's member 0 learnt after another member) is another encoder's clock.
  bool anchor_now = !have_anchor_ || reanchor_ || p.discontinuity() || p.pid() != last_pcr_pid_;
  if (!anchor_now) {
    const std::uint64_t delta_ticks = mpegts::pcr_delta(last_pcr_, p.pcr());
    if (delta_ticks > mpegts::kPcrWrap / 2 || delta_ticks * 1000 / 27 > 1000 * kMs) {
      anchor_now = true;  // a jump: the stream's timeline restarted
    } else {
      const std::uint64_t delta_ns = delta_ticks * 1000 / 27;
      due = last_pcr_due_ + delta_ns;
      if (due + kLateReanchorNs < now || due > now + kEarlyReanchorNs) {
        anchor_now = true;  // drifted away
      } else {
        // The encoder's 27 MHz clock and ours differ (MPEG allows 30 ppm; ours, free-running,
        // some tens), so a schedule on the PCRs alone drifts away from the arrivals: with a
        // slow encoder clock the margin runs out (packets late, then a re-anchor leaves a
        // hole), with a fast one the queue grows to a second. Each PCR's margin (due - now) is
        // averaged (1/256 per PCR, so arrival jitter hardly moves it) and the schedule slewed
        // towards kPcrDelayNs by 1/1024 of the difference, at most 100 ppm of the PCR
        // interval: critically damped, ~20 s to settle at 25 PCRs a second, at most ~4 ms off
        // the target. A source further off (its sending drifting from its own PCRs) still
        // re-anchors as before; the output never strays from its PCRs by more than those
        // 100 ppm between re-anchors.
        const std::int64_t lead = static_cast<std::int64_t>(due) - static_cast<std::int64_t>(now);
        lead_avg_ns_ += (lead - lead_avg_ns_) / 256;
        const auto max_slew = static_cast<std::int64_t>(delta_ns / 10'000);
        const std::int64_t slew =
            std::clamp((static_cast<std::int64_t>(kPcrDelayNs) - lead_avg_ns_) / 1024, -max_slew, max_slew);
        due = static_cast<std::uint64_t>(static_cast<std::int64_t>(due) + slew);
      }
    }
  }
  if (anchor_now) {
    due = now + kPcrDelayNs;
    lead_avg_ns_ = static_cast<std::int64_t>(kPcrDelayNs);
    have_anchor_ = true;
    reanchor_ = false;
    unpaced_ = false;
  }
  // Spread the packets since the previous PCR between its departure and this one (after a
  // new anchor: between now, or the last packet the old schedule still has queued ahead,
  // and this one; from now they were due behind that packet and left with it at once).
  const std::uint64_t n = tail_ - scheduled_;  // includes this packet
  std::uint64_t from = now;
  if (prev_due_valid_ && !anchor_now) from = last_pcr_due_;
  else if (scheduled_ != head_) from = std::max(now, meta(scheduled_ - 1).due_ns);
  from = std::min(from, due);
  for (std::uint64_t k = 0; k < n; ++k) {
    Meta& m = meta(scheduled_ + k);
    const std::uint64_t arrived = m.due_ns - static_cast<std::uint64_t>(static_cast<std::int64_t>(m.after_arrival_ns));
    m.due_ns = from + (due - from) * (k + 1) / n;
    m.after_arrival_ns = static_cast<std::int32_t>(
        std::clamp<std::int64_t>(static_cast<std::int64_t>(m.due_ns - arrived), INT32_MIN, INT32_MAX));
  }
  scheduled_ = tail_;
  last_pcr_ = p.pcr();
  last_pcr_pid_ = p.pid();
  last_pcr_due_ = due;
  prev_due_valid_ = true;
}

void Pacer::reanchor() {
  // The old timeline's packets since its last PCR keep their spacing from there (they
  // waited for kMaxUnscheduledNs, then left at once: a burst at every switch to an input
  // whose first random access point, and so its first PCR, is further away).
  if (pacing_ == PacingMode::kPcr && have_anchor_ && prev_due_valid_ && scheduled_ != tail_) {
    const std::uint64_t first = meta(scheduled_).due_ns;  // unscheduled: due_ns is the arrival
    // After that PCR, or what is queued after it (a switch before a PCR came).
    const std::uint64_t from =
        scheduled_ != head_ ? std::max(last_pcr_due_, meta(scheduled_ - 1).due_ns) : last_pcr_due_;
    for (std::uint64_t i = scheduled_; i != tail_; ++i) {
      Meta& m = meta(i);
      const std::uint64_t arrived = m.due_ns;
      m.due_ns = from + (arrived - first);
      m.after_arrival_ns = static_cast<std::int32_t>(
          std::clamp<std::int64_t>(static_cast<std::int64_t>(m.due_ns - arrived), INT32_MIN, INT32_MAX));
    }
    scheduled_ = tail_;
  }
  reanchor_ = true;
  unpaced_ = false;
  for (PcrClock& c : clocks_) c = PcrClock{};
}

void Pacer::take_over(const Pacer& old) {
  if (n_outputs_ == 0 || old.n_outputs_ == 0) return;
  const std::uint64_t n = old.queued();
  for (std::uint64_t k = 0; k < n; ++k) {
    packets_[k] = old.packets_[index(old.head_ + k)];
    meta_[k] = old.meta_[index(old.head_ + k)];
  }
  head_ = 0;
  tail_ = n;
  if (pacing_ != old.pacing_) {
    // Another kind of pacing: what was queued leaves by the times `old` gave it (arrival
    // times where it had none yet), and PCR pacing anchors on the next PCR.
    scheduled_ = n;
    return;
  }
  scheduled_ = old.scheduled_ - old.head_;
  clocks_ = old.clocks_;
  have_anchor_ = old.have_anchor_;
  reanchor_ = old.reanchor_;
  unpaced_ = old.unpaced_;
  prev_due_valid_ = old.prev_due_valid_;
  last_pcr_ = old.last_pcr_;
  last_pcr_pid_ = old.last_pcr_pid_;
  last_pcr_due_ = old.last_pcr_due_;
  lead_avg_ns_ = old.lead_avg_ns_;
  next_slot_ns_ = old.next_slot_ns_;
  next_slot_frac_ = old.next_slot_frac_;
}

void Pacer::count_lateness(std::uint64_t due, std::uint64_t now) {
  const std::uint64_t late = now > due ? now - due : 0;
  bump_counter(lateness_.buckets[pacing_lateness_bucket(late)]);
  bump_counter(lateness_.sum_ns, late);
}

PacingHistogram Pacer::lateness() const {
  PacingHistogram h;
  for (std::size_t b = 0; b < h.buckets.size(); ++b) h.buckets[b] = lateness_.buckets[b].load(std::memory_order_relaxed);
  h.sum_ns = lateness_.sum_ns.load(std::memory_order_relaxed);
  return h;
}

void Pacer::send_datagram(std::uint64_t count, std::uint64_t due, std::uint64_t now, DatagramSink& sink) {
  std::array<TsPacket, 7> dg;
  count = std::min<std::uint64_t>(count, dg.size());
  const std::size_t first = index(head_);
  std::span<const TsPacket> packets(packets_.get() + first, count);
  if (first + count > kQueuePackets) {  // wraps: copied together
    for (std::uint64_t k = 0; k < count; ++k) dg[k] = packets_[index(head_ + k)];
    packets = std::span<const TsPacket>(dg.data(), count);
  }
  for (std::size_t o = 0; o < n_outputs_; ++o) sink.send(ids_[o], packets);
  head_ += count;
  bump_counter(counters_.packets_out, count);
  bump_counter(counters_.datagrams_out);
  count_lateness(due, now);
}

void Pacer::poll(std::uint64_t now, DatagramSink& sink) {
  if (n_outputs_ == 0) return;
  // The input stopped (or carries no PCR): what waited too long for a PCR goes as it came,
  // and so does what follows until a PCR comes (an input switch, reanchor(), waits again).
  if (tail_ > scheduled_ && now - meta(scheduled_).due_ns > kMaxUnscheduledNs) {
    scheduled_ = tail_;
    have_anchor_ = false;
    unpaced_ = pacing_ == PacingMode::kPcr;
  }
  if (pacing_ == PacingMode::kCbr) {
    poll_cbr(now, sink);
    return;
  }
  // A datagram is up to per_datagram packets and ends early at a PCR packet, so every
  // PCR leaves exactly on its schedule; it leaves when its last packet is due. A short
  // one goes only when nothing more is coming for a while.
  for (;;) {
    const std::uint64_t ready = scheduled_ - head_;
    if (ready == 0) break;
    std::uint64_t count = std::min<std::uint64_t>(per_datagram_, ready);
    for (std::uint64_t k = 0; k < count; ++k) {
      if (meta(head_ + k).pcr) {
        count = k + 1;
        break;
      }
    }
    const Meta& last = meta(head_ + count - 1);
    if (last.due_ns > now) break;
    const bool complete = count == per_datagram_ || last.pcr;
    if (!complete && (tail_ != scheduled_ || last.due_ns + kPartialFlushNs > now)) break;
    // A full datagram is due when its last packet is; a short one waits kPartialFlushNs
    // on purpose, so that is its due time.
    send_datagram(count, complete ? last.due_ns : last.due_ns + kPartialFlushNs, now, sink);
  }
  compact();
}

// With little queued (passthrough pacing, cbr keeping up), the rest moves back to the
// start of the rings, so they stay a few cache-hot kilobytes instead of cycling through
// all kQueuePackets slots (3 MB: every enqueue a cache miss). Counters move with them:
// only their differences matter.
void Pacer::compact() {
  constexpr std::size_t kCompactFrom = 256;  // slots, ~48 KB of packets
  constexpr std::size_t kCompactMax = 64;    // queued packets moved at most
  static_assert(kCompactMax <= kCompactFrom, "moved slots never overlap their new place");
  const std::uint64_t q = queued();
  const std::size_t first = index(head_);
  if (first < kCompactFrom || q > kCompactMax || first + q > kQueuePackets) return;
  for (std::size_t k = 0; k < q; ++k) {
    packets_[k] = packets_[first + k];
    meta_[k] = meta_[first + k];
  }
  const std::uint64_t shift = kQueuePackets - first;  // index(head_ + shift) == 0
  head_ += shift;
  scheduled_ += shift;
  tail_ += shift;
}

std::uint64_t Pacer::smoothed_arrival(std::uint16_t pid, std::uint64_t pcr, std::uint64_t arrived_ns) {
  PcrClock* c = nullptr;
  for (PcrClock& k : clocks_) {
    if (k.valid && k.pid == pid) {
      c = &k;
      break;
    }
    // The first free one, or one whose PID is gone (a service removed, a PID moved), unless
    // pid has one further on.
    if (c == nullptr && (!k.valid || k.last_ns + kPcrIdleNs < arrived_ns)) c = &k;
  }
  if (c == nullptr) return arrived_ns;  // more PCR PIDs than clocks
  if (c->valid && c->pid == pid && pcr < c->last_pcr && mpegts::pcr_delta(c->last_pcr, pcr) < mpegts::kPcrWrap / 2) {
    // Past the wrap: the same timeline, its PCRs counted from 0 again (to within a ns).
    c->lowest_ns += kPcrWrapNs;
    c->offset_ns += kPcrWrapNs;
  }
  const auto pcr_ns = static_cast<std::int64_t>(pcr * 1000 / 27);
  const std::int64_t sample = static_cast<std::int64_t>(arrived_ns) - pcr_ns;
  if (!c->valid || c->pid != pid || sample - c->offset_ns > kPcrJumpNs || c->offset_ns - sample > kPcrJumpNs ||
      arrived_ns < c->last_ns) {
    *c = PcrClock{pid, true, sample, sample, arrived_ns, arrived_ns, pcr};
    return arrived_ns;
  }
  const auto dt = static_cast<std::int64_t>(arrived_ns - c->last_ns);
  c->last_ns = arrived_ns;
  c->last_pcr = pcr;
  c->lowest_ns = std::min(c->lowest_ns + dt * kPcrLeakPpm / 1'000'000, sample);
  if (arrived_ns - c->since_ns < kPcrAcquireNs) {
    c->offset_ns = c->lowest_ns;
  } else {
    const std::int64_t step = dt * kPcrSlewPpm / 1'000'000 + 1;
    c->offset_ns += std::clamp((c->lowest_ns - c->offset_ns) / kPcrSmoothing, -step, step);
  }
  return static_cast<std::uint64_t>(pcr_ns + c->offset_ns);
}

// Constant bitrate: one packet slot every 188*8/cbr_bps; empty slots carry null packets.
void Pacer::poll_cbr(std::uint64_t now, DatagramSink& sink) {
  const std::uint64_t slot_ns_x1000 = kPacketBits * 1'000'000'000'000ull / cbr_bps_;  // ns * 1000
  // Too far behind (the loop stalled): the slots missed are given up and the schedule goes
  // on from now, but the datagram sent now still counts as late as the slot it was due in.
  std::uint64_t missed_slot = 0;
  if (next_slot_ns_ == 0 || next_slot_ns_ + kLateReanchorNs < now) {
    missed_slot = next_slot_ns_;
    next_slot_ns_ = now;
    next_slot_frac_ = 0;
  }
  while (next_slot_ns_ <= now) {
    std::array<TsPacket, 7> dg;
    const std::size_t n = std::min(per_datagram_, dg.size());
    std::uint64_t media = 0;
    for (std::size_t k = 0; k < n; ++k) {
      if (head_ < scheduled_) {
        const Meta& m = meta(head_);
        const std::uint64_t arrived = m.due_ns - static_cast<std::uint64_t>(static_cast<std::int64_t>(m.after_arrival_ns));
        dg[k] = packets_[index(head_++)];
        ++media;
        if (dg[k].has_pcr()) [[unlikely]] {
          // The packet leaves at its slot, not when it would have arrived on a jitter-free
          // link: its PCR moves by as much, so it matches its byte position in the constant-
          // rate stream (TR 101 290 PCR_AC) and the receiver's clock recovery sees no jitter.
          const std::uint64_t slot = next_slot_ns_ + (next_slot_frac_ + slot_ns_x1000 * k) / 1000;
          const std::uint64_t ideal = smoothed_arrival(dg[k].pid(), dg[k].pcr(), arrived);
          const auto queued_27 = (static_cast<std::int64_t>(slot) - static_cast<std::int64_t>(ideal)) * 27 / 1000;
          const auto wrap = static_cast<std::int64_t>(mpegts::kPcrWrap);
          dg[k].set_pcr(static_cast<std::uint64_t>(
              ((static_cast<std::int64_t>(dg[k].pcr()) + queued_27) % wrap + wrap) % wrap));
        }
      } else {
        dg[k] = null_packet_;
        dg[k].set_cc(0);
      }
    }
    for (std::size_t o = 0; o < n_outputs_; ++o) sink.send(ids_[o], std::span(dg.data(), n));
    bump_counter(counters_.packets_out, media);
    bump_counter(counters_.datagrams_out);
    count_lateness(missed_slot != 0 ? missed_slot : next_slot_ns_, now);
    missed_slot = 0;
    const std::uint64_t advance_x1000 = next_slot_frac_ + slot_ns_x1000 * per_datagram_;
    next_slot_ns_ += advance_x1000 / 1000;
    next_slot_frac_ = advance_x1000 % 1000;
  }
  compact();
}

// --- Pacers ---

Pacers::Pacers(const std::vector<OutputConfig>& outputs, const std::string& who) {
  for (const OutputConfig& o : outputs) keys_.push_back(OutputKey{o.port, o.address, o.udp_port});
  // Outputs grouped by schedule, in the order of their first output.
  std::vector<std::vector<std::size_t>> groups;
  const auto same_schedule = [](const OutputConfig& a, const OutputConfig& b) {
    return a.packets_per_datagram == b.packets_per_datagram && a.pacing == b.pacing &&
           (a.pacing != PacingMode::kCbr || a.cbr_bps == b.cbr_bps);
  };
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const std::vector<std::size_t>& g) { return same_schedule(outputs[g[0]], outputs[o]); });
    if (it == groups.end()) groups.push_back({o});
    else it->push_back(o);
  }
  if (groups.empty()) {
    pacers_.push_back(std::make_unique<Pacer>(outputs, who));
    return;
  }
  for (const auto& g : groups) {
    std::vector<OutputConfig> mine;
    for (const std::size_t o : g) mine.push_back(outputs[o]);
    pacers_.push_back(std::make_unique<Pacer>(mine, who, g));
  }
}

std::size_t Pacers::copy_in(Pacer& to, std::span<const mpegts::TsPacket> packets, std::uint16_t pcr_pid,
                            std::uint64_t now) {
  if (const std::span<mpegts::TsPacket> room = to.tail_room(packets.size()); !room.empty()) {
    std::copy(packets.begin(), packets.end(), room.begin());
    to.commit(packets.size(), pcr_pid, now);
    return 0;
  }
  std::size_t lost = 0;
  for (const mpegts::TsPacket& p : packets) lost += to.enqueue(p, pcr_pid, now) ? 0U : 1U;
  return lost;
}

void Pacers::take_over(const Pacers& old) {
  for (const auto& p : pacers_) {
    // The old pacer of one of this one's outputs, on this one's schedule if one of them
    // was (so an output whose schedule did not change is the one kept whole when outputs
    // merge onto it); for outputs that are all new, one on the same schedule, else the first.
    const Pacer* from = nullptr;
    const Pacer* served = nullptr;  // served one of p's outputs, on another schedule
    for (std::size_t k = 0; k < p->outputs().size() && from == nullptr; ++k) {
      const std::size_t id = p->outputs()[k];
      const OutputKey& key = keys_[id];
      // The same output at the same place first (two outputs may name the same group).
      std::size_t j = id < old.keys_.size() && old.keys_[id] == key ? id : 0;
      while (j < old.keys_.size() && !(old.keys_[j] == key)) ++j;
      if (j == old.keys_.size()) continue;
      for (const auto& q : old.pacers_) {
        if (!q->serves(j)) continue;
        if (p->same_schedule(*q)) from = q.get();
        else if (served == nullptr) served = q.get();
      }
    }
    if (from == nullptr) from = served;
    for (std::size_t q = 0; q < old.pacers_.size() && from == nullptr; ++q)
      if (p->same_schedule(*old.pacers_[q])) from = old.pacers_[q].get();
    p->take_over(from != nullptr ? *from : *old.pacers_[0]);
  }
}

std::uint64_t Pacers::dropped_queue_full(std::size_t output) const {
  if (output == kAllOutputs)
    return pacers_.size() == 1 ? pacers_[0]->dropped_queue_full() : dropped_any_.load(std::memory_order_relaxed);
  for (const auto& p : pacers_)
    if (p->serves(output)) return p->dropped_queue_full();
  return 0;
}

PacingHistogram Pacers::lateness(std::size_t output) const {
  PacingHistogram h;
  for (const auto& p : pacers_) {
    if (output != kAllOutputs && !p->serves(output)) continue;
    const PacingHistogram one = p->lateness();
    for (std::size_t b = 0; b < h.buckets.size(); ++b) h.buckets[b] += one.buckets[b];
    h.sum_ns += one.sum_ns;
  }
  return h;
}

void continue_output(mpegts::Remuxer& remux, Pacers& pacers, const mpegts::Remuxer& old_remux,
                     const Pacers& old_pacers, std::span<const std::size_t> previous_input) {
  pacers.take_over(old_pacers);
  remux.continue_from(old_remux, previous_input);
}

}  // namespace twincast::dataplane
