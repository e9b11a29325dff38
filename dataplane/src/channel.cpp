#include "twincast/dataplane/channel.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "pacer.hpp"
#include "twincast/mpegts/analyzer.hpp"
#include "twincast/mpegts/remux.hpp"

namespace twincast::dataplane {

namespace {

using mpegts::TsPacket;

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kSelectorTickNs = 10 * kMs;
constexpr std::size_t kTapBatch = 64;  // remuxed packets handed to the taps per call (at most)

inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { bump_counter(c, n); }

// Per-input health as the selector sees it.
struct InputState {
  std::unique_ptr<mpegts::Analyzer> analyzer;
  bool seen = false;
  std::uint64_t first_packet_ns = 0;  // valid when seen
  std::uint64_t last_packet_ns = 0;
  std::uint64_t healthy_since_ns = 0;  // 0: not healthy
  std::uint64_t cc_at_second_start = 0;  // CC errors on the channel's program's PIDs
  std::uint64_t cc_pids_key = 0;         // which PIDs those were (program_pids_key())
  std::uint64_t cc_last_second = 0;
  std::uint64_t pat_errors_seen = 0;
  std::uint16_t pmt_pid = mpegts::kNullPid;  // the channel's program's PMT PID in this input
  std::uint64_t pmt_errors_seen = 0;         // PMT_error_2 on it
  std::uint64_t psi_error_ns = 0;      // last time a PAT error or a PMT error of the program was counted
  std::uint64_t second_start_ns = 0;
};

// One input's published snapshot: a sequence lock with one writer (the owning lcore).
// Every field is an atomic accessed relaxed, so a reader racing the writer sees old or new
// values, never torn ones; the sequence number (odd while a publication is under way)
// lets it retry until the set is from one publication. The writer never waits.
struct alignas(64) PublishedInput {
  enum : std::uint8_t { kPublished = 1, kSeen = 2, kHealthy = 4, kActive = 8, kMdiValid = 16, kPcrValid = 32,
                        kPcrAccuracy = 64 };
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> published_ns{0};
  std::atomic<std::uint64_t> last_packet_ns{0};
  std::atomic<std::uint64_t> packets{0};
  std::atomic<double> bitrate_bps{0};
  std::atomic<double> mdi_df_ms{0};
  std::atomic<double> mdi_mlr{0};
  std::atomic<double> pcr_jitter_ns{0};
  std::atomic<double> pcr_accuracy_ns{0};
  std::atomic<std::uint8_t> flags{0};
  std::array<std::atomic<std::uint64_t>, mpegts::kCheckCount> checks{};
};
static_assert(std::atomic<double>::is_always_lock_free && std::atomic<std::uint64_t>::is_always_lock_free,
              "snapshots must not take a lock");

}  // namespace

struct Channel::Impl {
  explicit Impl(const ChannelConfig& c)
      : config(c), remux(make_remux_config(c)), pacer(c.outputs, "channel " + c.id) {
    if (c.inputs.empty()) throw std::invalid_argument("channel " + c.id + ": no inputs");
    inputs.resize(c.inputs.size());
    for (auto& in : inputs) in.analyzer = std::make_unique<mpegts::Analyzer>();
    published = std::make_unique<PublishedInput[]>(c.inputs.size());
    // A batch for the taps, plus room for one push's worth of remux output past it.
    remux_out.resize(kTapBatch + remux.max_output_per_push());
  }

  static mpegts::RemuxConfig make_remux_config(const ChannelConfig& c) {
    mpegts::RemuxConfig rc;
    rc.n_inputs = 1;  // the active input feeds input 0; a switch is switch_source(0)
    rc.sdt = true;
    rc.nit = c.lcn != 0;  // set-top boxes read the logical channel number from the NIT
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
  // The program this channel takes from an input (as the remux picks it), or nullptr.
  const mpegts::Service* source_service(const mpegts::Analyzer& a) const {
    const mpegts::ProgramModel& m = a.programs();
    if (config.source_service_id != 0) return m.find_service(config.source_service_id);
    for (const mpegts::Service& s : m.services)
      if (s.service_id != 0) return &s;
    return nullptr;
  }

  // CC errors on the PIDs of the channel's program in an input (its PMT, PCR and
  // elementary streams): another program's losses are another channel's business.
  static std::uint64_t program_cc_errors(const mpegts::Analyzer& a, const mpegts::Service* s) {
    if (s == nullptr) return 0;
    constexpr auto cc = mpegts::Check::kContinuityCountError;
    std::uint64_t n = a.count(cc, s->pmt_pid);
    bool pcr_is_es = false;
    for (const mpegts::ElementaryStream& e : s->streams) {
      n += a.count(cc, e.pid);
      pcr_is_es = pcr_is_es || e.pid == s->pcr_pid;
    }
    if (!pcr_is_es && s->pcr_pid != s->pmt_pid) n += a.count(cc, s->pcr_pid);
    return n;
  }
  // Changes when the program's PIDs may have (another program, PMT PID or PMT version).
  static std::uint64_t program_pids_key(const mpegts::Service* s) {
    if (s == nullptr) return 0;
    return (std::uint64_t{1} << 48) | (std::uint64_t{s->service_id} << 24) | (std::uint64_t{s->pmt_pid} << 9) |
           (s->has_pmt ? 0x100U : 0U) | s->pmt_version;
  }

  bool healthy(const InputState& in, std::uint64_t now) const {
    if (!in.seen || now - in.last_packet_ns > config.failover.timeout_ms * kMs) return false;
    if (config.failover.max_cc_errors_per_s != 0 && in.cc_last_second > config.failover.max_cc_errors_per_s) return false;
    if (config.failover.require_psi) {
      // The PAT, and the PMT of the channel's program: an MPTS input's other programs are
      // other channels' business.
      const mpegts::Service* s = source_service(*in.analyzer);
      if (s == nullptr || !s->has_pmt) return false;
      if (in.psi_error_ns != 0 && now - in.psi_error_ns < 1000 * kMs) return false;
    }
    return true;
  }

  void update_health(std::uint64_t now) {
    for (auto& in : inputs) {
      const mpegts::Analyzer& a = *in.analyzer;
      const mpegts::Service* s = source_service(a);
      if (now - in.second_start_ns >= 1000 * kMs) {
        const std::uint64_t cc = program_cc_errors(a, s);
        const std::uint64_t key = program_pids_key(s);
        // Over other PIDs than a second ago the difference means nothing: a fresh start.
        in.cc_last_second = key == in.cc_pids_key ? cc - in.cc_at_second_start : 0;
        in.cc_at_second_start = cc;
        in.cc_pids_key = key;
        in.second_start_ns = now;
      }
      const std::uint64_t pat = a.count(mpegts::Check::kPatError2);
      const std::uint16_t pmt_pid = s != nullptr ? s->pmt_pid : mpegts::kNullPid;
      const std::uint64_t pmt = a.count(mpegts::Check::kPmtError2, pmt_pid);
      if (pmt_pid != in.pmt_pid) {  // the program moved: what its new PID had before is not news
        in.pmt_pid = pmt_pid;
        in.pmt_errors_seen = pmt;
      }
      if (pat != in.pat_errors_seen || pmt != in.pmt_errors_seen) {
        in.pat_errors_seen = pat;
        in.pmt_errors_seen = pmt;
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
    if (grace_until_ns == kNotStarted) {
      // Just started (or restarted by a reload): the active input has not had time to be
      // heard, which is not down. It is left only once it has had timeout_ms (and, for its
      // PAT and PMT, TR 101 290's 500 ms), however soon another input came: else two
      // switches, the second a hold-off later, each a cut in the output.
      const std::uint64_t grace_ms = config.failover.require_psi
                                         ? std::max<std::uint64_t>(config.failover.timeout_ms, 500)
                                         : config.failover.timeout_ms;
      grace_until_ns = now + grace_ms * kMs;
    }
    next_select_ns = now + kSelectorTickNs;
    update_health(now);
    choose(now);
    if (now >= next_publish_ns) {
      publish(now);
      next_publish_ns = now + kSnapshotIntervalNs;
    }
  }

  // A few relaxed stores per input every kSnapshotIntervalNs; no allocation (the analyzer's
  // cheap getters, not report()).
  void publish(std::uint64_t now) {
    constexpr auto r = std::memory_order_relaxed;
    bool active_ok = false;
    bool standby_ok = true;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const InputState& in = inputs[i];
      const mpegts::Analyzer& a = *in.analyzer;
      const bool ok = in.healthy_since_ns != 0;
      if (i == active) active_ok = ok;
      else standby_ok = standby_ok && ok;
      const mpegts::Mdi& mdi = a.mdi_last();
      std::uint8_t flags = PublishedInput::kPublished;
      if (in.seen) flags |= PublishedInput::kSeen;
      if (ok) flags |= PublishedInput::kHealthy;
      if (i == active) flags |= PublishedInput::kActive;
      // MDI and PCR timing are the last interval's, which only a packet closes: after a whole
      // interval without one they describe the input before it went silent (MLR 0, the old
      // DF), not the input now, and are not published.
      const bool interval_current = in.seen && now - in.last_packet_ns <= a.config().mdi_interval_ns;
      if (mdi.valid && interval_current) flags |= PublishedInput::kMdiValid;
      const mpegts::PcrInterval& pcr = a.pcr_last();
      if (pcr.valid && interval_current) flags |= PublishedInput::kPcrValid;
      if (pcr.accuracy_measured && interval_current) flags |= PublishedInput::kPcrAccuracy;

      PublishedInput& p = published[i];
      const std::uint64_t seq = p.seq.load(r);
      p.seq.store(seq + 1, r);
      std::atomic_thread_fence(std::memory_order_release);
      p.published_ns.store(now, r);
      p.last_packet_ns.store(in.last_packet_ns, r);
      p.packets.store(a.packets(), r);
      p.bitrate_bps.store(a.bitrate_bps(now), r);
      p.mdi_df_ms.store(mdi.df_ms, r);
      p.mdi_mlr.store(mdi.mlr, r);
      p.pcr_jitter_ns.store(pcr.jitter_ns, r);
      p.pcr_accuracy_ns.store(pcr.accuracy_ns, r);
      p.flags.store(flags, r);
      for (std::size_t c = 0; c < mpegts::kCheckCount; ++c) p.checks[c].store(a.count(static_cast<mpegts::Check>(c)), r);
      p.seq.store(seq + 2, std::memory_order_release);
    }
    const ChannelHealth st = !active_ok ? ChannelHealth::kDown : standby_ok ? ChannelHealth::kOk : ChannelHealth::kDegraded;
    counters.state.store(static_cast<std::uint8_t>(st), r);
    const mpegts::Remuxer::Stats& rs = remux.stats();
    counters.dropped_by_rule.store(rs.dropped_rule, r);
    counters.dropped_resync.store(rs.dropped_resync, r);
    counters.dropped_sync.store(rs.dropped_sync, r);
    counters.discontinuities_marked.store(rs.discontinuities_marked, r);
    counters.eit_dropped.store(rs.eit_dropped, r);
    // The output bitrate over the last whole second (what left the remux).
    if (rate_window_start_ns == 0) {
      rate_window_start_ns = now;
      rate_window_packets = remuxed_packets;
    } else if (now - rate_window_start_ns >= kRateWindowNs) {
      const double seconds = static_cast<double>(now - rate_window_start_ns) / 1e9;
      counters.bitrate_bps.store(static_cast<double>(remuxed_packets - rate_window_packets) * mpegts::kPacketSize * 8 / seconds, r);
      rate_window_start_ns = now;
      rate_window_packets = remuxed_packets;
    }
  }

  InputSnapshot snapshot(std::size_t input) const {
    constexpr auto r = std::memory_order_relaxed;
    const PublishedInput& p = published[input];
    InputSnapshot s;
    std::uint8_t flags = 0;
    // A publication takes well under a microsecond; after many tries (the writer thread
    // was preempted mid-way) take what was read: every value valid, maybe not one set.
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const std::uint64_t before = p.seq.load(std::memory_order_acquire);
      s.published_ns = p.published_ns.load(r);
      s.last_packet_ns = p.last_packet_ns.load(r);
      s.packets = p.packets.load(r);
      s.bitrate_bps = p.bitrate_bps.load(r);
      s.mdi_df_ms = p.mdi_df_ms.load(r);
      s.mdi_mlr = p.mdi_mlr.load(r);
      s.pcr_jitter_ns = p.pcr_jitter_ns.load(r);
      s.pcr_accuracy_ns = p.pcr_accuracy_ns.load(r);
      flags = p.flags.load(r);
      for (std::size_t c = 0; c < mpegts::kCheckCount; ++c) s.tr101290[c] = p.checks[c].load(r);
      std::atomic_thread_fence(std::memory_order_acquire);
      if ((before & 1) == 0 && p.seq.load(r) == before) break;
      if (attempt >= 16) std::this_thread::yield();
    }
    s.bytes = s.packets * mpegts::kPacketSize;
    s.published = (flags & PublishedInput::kPublished) != 0;
    s.seen = (flags & PublishedInput::kSeen) != 0;
    s.healthy = (flags & PublishedInput::kHealthy) != 0;
    s.active = (flags & PublishedInput::kActive) != 0;
    s.mdi_valid = (flags & PublishedInput::kMdiValid) != 0;
    s.pcr_valid = (flags & PublishedInput::kPcrValid) != 0;
    s.pcr_accuracy_measured = (flags & PublishedInput::kPcrAccuracy) != 0;
    return s;
  }

  // The start grace: until grace_until_ns; with require_psi, an active input heard by then
  // and still sending also has TR 101 290's time for its PAT and then its program's PMT
  // (500 ms each) from its first packet, unless the analyzer found one of them late already
  // or its PAT has no such program.
  bool in_grace(std::uint64_t now) const {
    if (now < grace_until_ns) return true;
    const InputState& in = inputs[active];
    if (grace_until_ns == 0 || !config.failover.require_psi || !in.seen || in.psi_error_ns != 0) return false;
    if (now - in.first_packet_ns >= 1000 * kMs || now - in.last_packet_ns > config.failover.timeout_ms * kMs) return false;
    const mpegts::Service* s = source_service(*in.analyzer);
    return !in.analyzer->programs().has_pat || (s != nullptr && !s->has_pmt);
  }

  void choose(std::uint64_t now) {
    const bool active_ok = inputs[active].healthy_since_ns != 0;
    if (!active_ok && in_grace(now)) return;  // the start grace
    grace_until_ns = 0;  // over for good once the active input was heard, or it ran out
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
    grace_until_ns = 0;  // an operator's choice is not second-guessed either
    active = i;
    bump(counters.switches);
    counters.active_input.store(i, std::memory_order_relaxed);
    remux.switch_source(0);
    pacer.reanchor();  // the new input's PCRs are another clock
    for (const auto& [tap, slot] : taps) tap->on_discontinuity(slot);
  }

  // --- remuxed packets: the pacer, then the taps ---
  void deliver(std::size_t n, std::uint64_t now) {
    if (pacer.active()) {
      const std::uint16_t pcr_pid = pacing_pcr_pid(remux.output_model());
      for (std::size_t k = 0; k < n; ++k) pacer.enqueue(remux_out[k], pcr_pid, now);
    }
    for (const auto& [tap, slot] : taps) tap->on_packets(slot, std::span<const TsPacket>(remux_out.data(), n), now);
    remuxed_packets += n;
  }

  void push(std::size_t input, std::span<const TsPacket> packets, std::uint64_t now) {
    InputState& in = inputs[input];
    if (!in.seen) in.first_packet_ns = now;
    in.seen = true;
    in.last_packet_ns = now;
    in.analyzer->push(packets, now);
    bump(counters.packets_in, packets.size());
    if (input != active) {
      select(now);  // may switch to this input: then these packets are its first ones out
      if (input != active) {
        bump(counters.dropped_inactive, packets.size());
        return;
      }
    }
    // Usually the remux writes straight into the pacer's queue and the taps read the
    // packets there: no copy between them.
    if (const std::span<TsPacket> room = pacer.tail_room(packets.size() * remux.max_output_per_push()); !room.empty()) {
      const std::size_t n = remux.push(0, packets, now, room);
      for (const auto& [tap, slot] : taps) tap->on_packets(slot, room.first(n), now);
      pacer.commit(n, pacing_pcr_pid(remux.output_model()), now);
      remuxed_packets += n;
      return;
    }
    std::size_t n = 0;
    for (const TsPacket& p : packets) {
      n += remux.push(0, p, now, std::span<TsPacket>(remux_out).subspan(n));
      if (n >= kTapBatch) {
        deliver(n, now);
        n = 0;
      }
    }
    if (n != 0) deliver(n, now);
  }

  void poll(std::uint64_t now, DatagramSink& sink) {
    select(now);
    pacer.poll(now, sink);
  }

  ChannelConfig config;
  mpegts::Remuxer remux;
  std::vector<TsPacket> remux_out;
  std::vector<InputState> inputs;
  std::size_t active = 0;
  bool manual = false;
  // Until then the active input is not left unless it was heard (set at the selector's
  // first tick; 0: no grace, or over).
  static constexpr std::uint64_t kNotStarted = ~std::uint64_t{0};
  std::uint64_t grace_until_ns = kNotStarted;
  std::uint64_t next_select_ns = 0;
  std::uint64_t next_publish_ns = 0;
  static constexpr std::uint64_t kRateWindowNs = 1'000'000'000;
  std::uint64_t remuxed_packets = 0;  // lcore only
  std::uint64_t rate_window_start_ns = 0;
  std::uint64_t rate_window_packets = 0;
  std::unique_ptr<PublishedInput[]> published;  // one per input

  Pacers pacer;
  std::vector<std::pair<PacketTap*, std::size_t>> taps;
  // One writer (the lcore that owns the channel); stats() may read from any thread.
  struct alignas(64) Counters {
    std::atomic<std::uint64_t> packets_in{0};
    std::atomic<std::uint64_t> dropped_inactive{0};
    std::atomic<std::uint64_t> switches{0};
    std::atomic<std::size_t> active_input{0};
    std::atomic<std::uint8_t> state{static_cast<std::uint8_t>(ChannelHealth::kDown)};  // nothing received yet
    std::atomic<double> bitrate_bps{0};
    std::atomic<std::uint64_t> dropped_by_rule{0};  // the remux's Stats, copied by publish()
    std::atomic<std::uint64_t> dropped_resync{0};
    std::atomic<std::uint64_t> dropped_sync{0};
    std::atomic<std::uint64_t> discontinuities_marked{0};
    std::atomic<std::uint64_t> eit_dropped{0};
  } counters;
};

Channel::Channel(const ChannelConfig& config) : impl_(std::make_unique<Impl>(config)) {}
Channel::~Channel() = default;

void Channel::push(std::size_t input, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) {
  if (input < impl_->inputs.size()) impl_->push(input, packets, now_ns);
}
void Channel::poll(std::uint64_t now_ns, DatagramSink& sink) { impl_->poll(now_ns, sink); }
void Channel::add_tap(PacketTap* tap, std::size_t slot) {
  if (tap != nullptr) impl_->taps.emplace_back(tap, slot);
}
void Channel::continue_from(const Channel& previous) {
  Impl& n = *impl_;
  const Impl& p = *previous.impl_;
  // A reload is no reason to switch (a cut, another timeline): the channel goes on from the
  // input the one before was on, where it is still one of its inputs, and for the same
  // reason (a failover that revert: false or the hold-off keeps, an operator's choice).
  // An input is the same one when it receives the same source: its name and alarm ceiling
  // (max_bitrate_bps, the control plane's) may have changed with the reload. The exact one
  // first (inputs that differ only by name are not both valid outside tests).
  const auto find_input = [](const std::vector<InputConfig>& v, const InputConfig& in) {
    const auto source = [](const InputConfig& x) {  // all but name and max_bitrate_bps
      return std::tie(x.kind, x.port, x.address, x.udp_port, x.source, x.srt_mode, x.srt_address, x.srt_port,
                      x.srt_local_port, x.passphrase, x.key_length, x.latency_ms, x.streamid);
    };
    const auto same_source = [&](const InputConfig& x) { return source(x) == source(in); };
    const auto exact = std::find(v.begin(), v.end(), in);
    return exact != v.end() ? exact : std::find_if(v.begin(), v.end(), same_source);
  };
  const std::vector<InputConfig>& ins = n.config.inputs;
  if (const auto it = find_input(ins, p.config.inputs[p.active]); it != ins.end()) {
    n.active = static_cast<std::size_t>(it - ins.begin());
    n.manual = p.manual;
    n.counters.active_input.store(n.active, std::memory_order_relaxed);
  }
  // The start grace is for an input not heard yet, not for one the channel before found
  // down: that one (the same input) is left as soon as another is heard, as it was.
  const std::vector<InputConfig>& was = p.config.inputs;
  if (const auto it = find_input(was, ins[n.active]);
      p.grace_until_ns == 0 && it != was.end() && p.inputs[static_cast<std::size_t>(it - was.begin())].healthy_since_ns == 0)
    n.grace_until_ns = 0;
  continue_output(impl_->remux, impl_->pacer, previous.impl_->remux, previous.impl_->pacer);
}
void Channel::readdress(const std::vector<OutputConfig>& outputs) { impl_->pacer.readdress(outputs); }
void Channel::describe(const ChannelConfig& next) {
  // Only the remux: config() may be read from other threads (it stays as constructed).
  impl_->remux.describe(0, next.name, next.provider, next.lcn, next.lcn != 0);  // as make_remux_config()
}
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
  s.packets_out = impl_->pacer.packets_out();
  s.datagrams_out = impl_->pacer.datagrams_out();
  s.dropped_inactive = c.dropped_inactive.load(r);
  s.dropped_queue_full = impl_->pacer.dropped_queue_full();
  s.switches = c.switches.load(r);
  s.active_input = c.active_input.load(r);
  s.state = static_cast<ChannelHealth>(c.state.load(r));
  s.alarm = s.state != ChannelHealth::kOk;
  s.bitrate_bps = c.bitrate_bps.load(r);
  s.dropped_by_rule = c.dropped_by_rule.load(r);
  s.dropped_resync = c.dropped_resync.load(r);
  s.dropped_sync = c.dropped_sync.load(r);
  s.discontinuities_marked = c.discontinuities_marked.load(r);
  s.eit_dropped = c.eit_dropped.load(r);
  return s;
}
const ChannelConfig& Channel::config() const { return impl_->config; }
const mpegts::Analyzer& Channel::input_analyzer(std::size_t input) const { return *impl_->inputs.at(input).analyzer; }
InputSnapshot Channel::input_snapshot(std::size_t input) const {
  return input < impl_->inputs.size() ? impl_->snapshot(input) : InputSnapshot{};
}
PacingHistogram Channel::pacing_lateness(std::size_t output) const { return impl_->pacer.lateness(output); }
std::uint64_t Channel::queue_dropped_packets(std::size_t output) const {
  return impl_->pacer.dropped_queue_full(output);
}

}  // namespace twincast::dataplane
