// The output queue and pacer shared by dataplane::Channel and dataplane::Multiplex:
// remuxed packets in, datagrams of up to 7 packets out at their departure time, handed to
// a DatagramSink once per output.
//
//  - kPcr: a packet carrying a PCR of the pacing PID (the caller says which) departs at
//    its PCR mapped onto the local clock (anchored kPcrDelayNs after arrival); packets
//    between two PCRs are spread evenly. A datagram ends early at a PCR packet so every
//    PCR leaves on time. Without PCRs for kMaxUnscheduledNs packets go as they come
//    until the next PCR anchors the schedule again.
//  - kCbr: one packet slot every 188*8/cbr_bps; empty slots carry null packets; the queue
//    holds kMaxCbrWaitNs of the rate at most (a rate below the input's loses, and counts,
//    the rest). Each PCR is moved by the time its packet waited for its slot since it
//    would have arrived on a jitter-free link (PcrClock: per PCR PID, the lower envelope of
//    arrival minus PCR, slewed), so it matches its byte position in the constant-rate
//    stream and the input's arrival jitter does not reach the output's PCRs.
//  - kPassthrough: packets leave as they arrived, in datagrams of up to 7 that also end
//    at a PCR packet (a PCR never waits for the packets behind it).
//
// Every datagram sent also counts its lateness (the poll's `now` minus its due time) in a
// histogram on kPacingLatenessBoundsNs.
//
// Pacers: the pacers of one channel or multiplex, one per distinct schedule among its
// outputs (packets_per_datagram, pacing, cbr_bps), each sending to its own outputs.
//
// Sized at construction; enqueue() and poll() never allocate, lock, throw or log.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "twincast/dataplane/channel.hpp"
#include "twincast/dataplane/config.hpp"
#include "twincast/dataplane/pacing.hpp"
#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/program.hpp"

namespace twincast::mpegts {
class Remuxer;
}

namespace twincast::dataplane {

// A counter with one writer: a plain load and store, no locked instruction.
inline void bump_counter(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// The PID whose PCRs pace an output: the PCR PID of its first service (none yet: the
// null PID, which never carries one).
inline std::uint16_t pacing_pcr_pid(const mpegts::ProgramModel& model) {
  return model.services.empty() ? mpegts::kNullPid : model.services[0].pcr_pid;
}

class Pacer {
 public:
  static constexpr std::size_t kQueuePackets = 16384;  // ~1.2 s at 20 Mbit/s
  // kCbr queues what its rate sends in this long at most (at least a datagram).
  static constexpr std::uint64_t kMaxCbrWaitNs = 1'000'000'000;

  // Throws std::invalid_argument (prefixed with `who`) for packets_per_datagram outside
  // 1..7 or cbr without a rate. The first output decides the schedule: all outputs carry
  // the same datagrams (Pacers gives each schedule its own Pacer). `ids`: the outputs'
  // numbers for the DatagramSink (default 0, 1, ...). No outputs: nothing is queued,
  // poll() sends nothing.
  Pacer(const std::vector<OutputConfig>& outputs, const std::string& who, std::vector<std::size_t> ids = {});

  // One packet in at `now`, copied to the tail (a packet carrying a PCR on `pcr_pid` is a
  // pacing PCR). False, and a drop counted, when the queue is full. Inline: the remux
  // output loops call it per packet when they cannot write in place (tail_room()).
  bool enqueue(const mpegts::TsPacket& p, std::uint16_t pcr_pid, std::uint64_t now) {
    if (n_outputs_ == 0) return true;
    if (queued() >= capacity_) [[unlikely]] {
      bump_counter(counters_.dropped_queue_full);
      return false;
    }
    packets_[index(tail_)] = p;
    commit(1, pcr_pid, now);
    return true;
  }
  // In place: room for `max` packets at the queue's tail, one contiguous span, for a
  // producer to write into (the remux); empty when the queue has no such room (too full,
  // or its end is near): then enqueue() them. Nothing is queued until commit().
  [[nodiscard]] std::span<mpegts::TsPacket> tail_room(std::size_t max) {
    const std::size_t i = index(tail_);
    if (n_outputs_ == 0 || queued() + max > capacity_ || i + max > kQueuePackets) return {};
    return {packets_.get() + i, max};
  }
  // The first `n` packets written at the tail (tail_room(), or enqueue()'s one) join the
  // queue at `now`; a packet carrying a PCR on `pcr_pid` is a pacing PCR.
  void commit(std::size_t n, std::uint16_t pcr_pid, std::uint64_t now) {
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = index(tail_++);
      const mpegts::TsPacket& p = packets_[i];
      // passthrough ends a datagram at every PCR (an MPTS's other services' too: none may
      // wait for the packets behind it); kPcr marks the PCRs it paces by.
      const bool pcr = p.has_pcr() && (p.pid() == pcr_pid || pacing_ == PacingMode::kPassthrough);
      meta_[i] = Meta{now, pcr};  // due_ns provisional: the arrival time
      if (pacing_ == PacingMode::kPcr) schedule_pcr(p, now);
    }
    if (pacing_ != PacingMode::kPcr) scheduled_ = tail_;
  }
  // Sends every datagram due at `now`.
  void poll(std::uint64_t now, DatagramSink& sink);
  // The pacing PID's timeline changed (an input switch): anchor on its next PCR, and until
  // then spread what comes (the new input's PCRs are expected, not missing). What came
  // since the old timeline's last PCR gets no PCR of its own any more: it leaves as it came,
  // after that PCR.
  void reanchor();
  // The PCRs on `pcr_pid` follow another input (a multiplex member switched): kCbr's clock
  // of that PID starts again, as reanchor() starts them all for a channel; the other PIDs'
  // go on. (kPcr needs nothing: the switched member's first PCR carries the
  // discontinuity_indicator, which anchors the schedule when that member paces.)
  void restart_clock(std::uint16_t pcr_pid) {
    for (PcrClock& c : clocks_)
      if (c.valid && c.pid == pcr_pid) c = PcrClock{};
  }
  // Same schedule (packets_per_datagram, pacing, cbr_bps)?
  [[nodiscard]] bool same_schedule(const Pacer& other) const {
    return per_datagram_ == other.per_datagram_ && pacing_ == other.pacing_ && cbr_bps_ == other.cbr_bps_ &&
           (n_outputs_ == 0) == (other.n_outputs_ == 0);
  }
  // Takes over `old`'s queue (a reload rebuilt the owner): what `old` had not sent yet
  // leaves from here, on `old`'s timing when the pacing is of the same kind (PCR, CBR,
  // passthrough), else at once. Before the first enqueue; no allocation (copies at most
  // kQueuePackets packets).
  void take_over(const Pacer& old);

  [[nodiscard]] bool active() const { return n_outputs_ != 0; }
  // Sends to the output the sink knows as `id`?
  [[nodiscard]] bool serves(std::size_t id) const { return std::find(ids_.begin(), ids_.end(), id) != ids_.end(); }
  // The sink's numbers of its outputs.
  [[nodiscard]] const std::vector<std::size_t>& outputs() const { return ids_; }
  [[nodiscard]] std::uint64_t packets_out() const { return counters_.packets_out.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t datagrams_out() const { return counters_.datagrams_out.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t dropped_queue_full() const {
    return counters_.dropped_queue_full.load(std::memory_order_relaxed);
  }
  // A snapshot, from any thread: each bucket is exact, the set may be one datagram apart.
  [[nodiscard]] PacingHistogram lateness() const;

 private:
  static_assert((kQueuePackets & (kQueuePackets - 1)) == 0, "the queue index is a mask");
  // The queue is a ring of packets (contiguous, so a datagram that does not wrap goes to
  // the sink straight from it) beside a ring of their schedules. head_, scheduled_ and
  // tail_ count up; index() maps them onto the rings.
  struct Meta {
    std::uint64_t due_ns;
    bool pcr;  // a pacing PCR (passthrough: any PCR)
    // due_ns minus the arrival time (the PCR schedule moved it; kCbr restamps PCRs by the
    // wait since arrival, also for packets taken over from a PCR-paced queue).
    std::int32_t after_arrival_ns = 0;
  };

  // kCbr: when a PCR of one PID would have arrived on a link without jitter, as arrival
  // time minus PCR (ns). The lowest such offset seen (a packet that waited for nothing: the
  // first of a datagram, one not held up in a switch) is the link's; it leaks up at
  // kPcrLeakPpm of the time passing so it follows an encoder clock slower than ours, and
  // falls at once to a lower one. The offset used moves 1/kPcrSmoothing of the way towards
  // it per PCR and at most kPcrSlewPpm of the time passing (after kPcrAcquireNs of following
  // it directly), so the PCRs sent never step and the envelope's sawtooth is smoothed out. A
  // PCR that does not go on from it (kPcrJumpNs off: a restart, another source; time going
  // back) starts it again; the wrap does not, nor a discontinuity_indicator on a timeline
  // that goes on (the remux sets one after an outage of over 100 ms and after a reload).
  struct PcrClock {
    std::uint16_t pid = 0;
    bool valid = false;
    std::int64_t lowest_ns = 0;  // the lower envelope of arrival - PCR
    std::int64_t offset_ns = 0;  // what is used: smoothed, slewed towards lowest_ns
    std::uint64_t since_ns = 0;  // arrival of the first PCR since the clock (re)started
    std::uint64_t last_ns = 0;   // arrival of the last PCR
    std::uint64_t last_pcr = 0;  // the last PCR (27 MHz)
  };
  // PCR PIDs followed at once (more: arrival times used as they are); the clock of a PID
  // without a PCR for a second goes to the next PID that needs one.
  static constexpr std::size_t kPcrClocks = 16;
  // When the packet carrying PCR `pcr` on `pid`, which arrived at `arrived_ns`, would have
  // arrived on a jitter-free link.
  std::uint64_t smoothed_arrival(std::uint16_t pid, std::uint64_t pcr, std::uint64_t arrived_ns);

  [[nodiscard]] std::uint64_t queued() const { return tail_ - head_; }
  [[nodiscard]] static std::size_t index(std::uint64_t i) { return static_cast<std::size_t>(i & (kQueuePackets - 1)); }
  Meta& meta(std::uint64_t i) { return meta_[index(i)]; }
  void schedule_pcr(const mpegts::TsPacket& p, std::uint64_t now);
  void send_datagram(std::uint64_t count, std::uint64_t due, std::uint64_t now, DatagramSink& sink);
  void count_lateness(std::uint64_t due, std::uint64_t now);
  void poll_cbr(std::uint64_t now, DatagramSink& sink);
  void compact();

  std::size_t n_outputs_ = 0;
  std::vector<std::size_t> ids_;  // the sink's number of each output
  std::size_t per_datagram_ = 7;
  PacingMode pacing_ = PacingMode::kPcr;
  std::uint64_t cbr_bps_ = 0;
  // Packets queued at most: kQueuePackets; kCbr: what its rate sends in kMaxCbrWaitNs (a
  // packet that would wait longer is lost and counted, see the constructor).
  std::size_t capacity_ = kQueuePackets;
  std::unique_ptr<mpegts::TsPacket[]> packets_;  // kQueuePackets (none without outputs)
  std::unique_ptr<Meta[]> meta_;
  std::uint64_t head_ = 0;       // next packet to send
  std::uint64_t scheduled_ = 0;  // packets before this have their departure time
  std::uint64_t tail_ = 0;       // next free slot
  bool have_anchor_ = false;
  bool reanchor_ = false;
  bool prev_due_valid_ = false;
  std::uint64_t last_pcr_ = 0;
  std::uint16_t last_pcr_pid_ = mpegts::kNullPid;  // the PID of last_pcr_
  std::uint64_t last_pcr_due_ = 0;
  std::int64_t lead_avg_ns_ = 0;      // kPcr: the PCRs' average margin before departure (drift servo)
  bool unpaced_ = false;              // kPcr: no PCR for kMaxUnscheduledNs, packets go as they come
  std::uint64_t next_slot_ns_ = 0;    // kCbr: the next slot (0: none yet)...
  std::uint64_t next_slot_frac_ = 0;  // ...and its thousandths of a ns
  std::array<PcrClock, kPcrClocks> clocks_{};  // kCbr
  mpegts::TsPacket null_packet_ = mpegts::make_null_packet();
  // One writer (the owning lcore); the getters may read from any thread.
  struct alignas(64) Counters {
    std::atomic<std::uint64_t> packets_out{0};
    std::atomic<std::uint64_t> datagrams_out{0};
    std::atomic<std::uint64_t> dropped_queue_full{0};
  } counters_;
  struct alignas(64) Lateness {
    std::array<std::atomic<std::uint64_t>, kPacingLatenessBucketCount> buckets{};
    std::atomic<std::uint64_t> sum_ns{0};
  } lateness_;
};

}  // namespace twincast::dataplane

namespace twincast::dataplane {

// The output side of a channel or multiplex: a Pacer per distinct schedule among its
// outputs (most have one). The producer writes into the first pacer's queue (tail_room,
// commit, as with one Pacer); the others get a copy of what is committed. The
// packet and datagram counts are the first pacer's (the first output's schedule); queue
// drops and the lateness histogram are summed over all of them.
class Pacers {
 public:
  Pacers(const std::vector<OutputConfig>& outputs, const std::string& who);

  [[nodiscard]] std::span<mpegts::TsPacket> tail_room(std::size_t max) {
    room_ = pacers_[0]->tail_room(max);
    return room_;
  }
  void commit(std::size_t n, std::uint16_t pcr_pid, std::uint64_t now) {
    pacers_[0]->commit(n, pcr_pid, now);
    // A full queue drops the batch's tail, so the packets lost to some schedule are the
    // longest of those tails.
    std::size_t lost = 0;
    for (std::size_t i = 1; i < pacers_.size(); ++i)
      lost = std::max(lost, copy_in(*pacers_[i], room_.first(n), pcr_pid, now));
    if (lost != 0) [[unlikely]]
      bump_counter(dropped_any_, lost);
  }
  void enqueue(const mpegts::TsPacket& p, std::uint16_t pcr_pid, std::uint64_t now) {
    bool lost = false;
    for (const auto& pacer : pacers_) lost |= !pacer->enqueue(p, pcr_pid, now);
    if (lost) [[unlikely]]
      bump_counter(dropped_any_);
  }
  void poll(std::uint64_t now, DatagramSink& sink) {
    for (const auto& pacer : pacers_) pacer->poll(now, sink);
  }
  void reanchor() {
    for (const auto& pacer : pacers_) pacer->reanchor();
  }
  void restart_clock(std::uint16_t pcr_pid) {
    for (const auto& pacer : pacers_) pacer->restart_clock(pcr_pid);
  }
  [[nodiscard]] bool active() const { return pacers_[0]->active(); }
  // A reload rebuilt the owner: each pacer takes over the queue of the old pacer that
  // served one of its outputs before (outputs matched by port, address and UDP port, not by
  // their place in the list), with its timing when the pacing is of the same kind; a pacer
  // of outputs that are all new takes the queue of an old one on its schedule, else the
  // first. So every output that stays goes on without a gap, whatever its schedule or place
  // became, unless it now shares a schedule with an output that was further ahead or
  // behind (it then goes on from there).
  void take_over(const Pacers& old);
  // A reload updated the owner in place (ConfigDiff::channels_updated): its outputs, at the
  // same places on the same schedules, now send to `outputs`' destinations, by which a
  // later take_over() knows them. Not on the worker (it may allocate); nothing reads the
  // keys but take_over().
  void readdress(const std::vector<OutputConfig>& outputs) {
    for (std::size_t o = 0; o < outputs.size() && o < keys_.size(); ++o)
      keys_[o] = OutputKey{outputs[o].port, outputs[o].address, outputs[o].udp_port};
  }
  // The first output's schedule's: every schedule carries the same packets, in datagrams of
  // its own size, at its own times (each output's counters are the worker's OutputStats).
  [[nodiscard]] std::uint64_t packets_out() const { return pacers_[0]->packets_out(); }
  [[nodiscard]] std::uint64_t datagrams_out() const { return pacers_[0]->datagrams_out(); }
  // Packets lost at a full queue: with kAllOutputs, each packet once, whichever schedules
  // lost it; else those lost by `output`'s schedule.
  [[nodiscard]] std::uint64_t dropped_queue_full(std::size_t output = kAllOutputs) const;
  // The lateness of the datagrams of `output`'s schedule (kAllOutputs: of every schedule).
  [[nodiscard]] PacingHistogram lateness(std::size_t output = kAllOutputs) const;
  [[nodiscard]] std::size_t schedules() const { return pacers_.size(); }

 private:
  // The packets lost at `to`'s full queue.
  static std::size_t copy_in(Pacer& to, std::span<const mpegts::TsPacket> packets, std::uint16_t pcr_pid,
                             std::uint64_t now);

  struct OutputKey {
    std::string port;
    Ipv4 address = 0;
    std::uint16_t udp_port = 0;
    friend bool operator==(const OutputKey&, const OutputKey&) = default;
  };
  std::vector<OutputKey> keys_;                 // by output number
  std::vector<std::unique_ptr<Pacer>> pacers_;  // at least one
  std::span<mpegts::TsPacket> room_;            // the first pacer's last tail_room()
  std::atomic<std::uint64_t> dropped_any_{0};   // lost by at least one schedule (one writer)
};

// A reload rebuilt a channel or multiplex (its remux `remux` and pacers `pacers`) in place
// of `old_remux` / `old_pacers`: the new pacers take over what the old ones had queued
// (Pacers::take_over), so the remux goes on from the last packet it wrote. On the owning
// lcore; no allocation.
void continue_output(mpegts::Remuxer& remux, Pacers& pacers, const mpegts::Remuxer& old_remux,
                     const Pacers& old_pacers, std::span<const std::size_t> previous_input = {});

}  // namespace twincast::dataplane
