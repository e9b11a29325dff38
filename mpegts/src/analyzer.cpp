#include "twincast/mpegts/analyzer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/pes.hpp"

namespace twincast::mpegts {

namespace {

// Role bits of a PID (PidHot::role); a packet on a PID without any takes the fast path.
constexpr std::uint8_t kRolePsi = 0x01;  // sections reassembled, PsiDecoder fed
constexpr std::uint8_t kRolePmt = 0x02;  // a PMT PID of the PAT
constexpr std::uint8_t kRolePcr = 0x04;  // the PCR_PID of a program
constexpr std::uint8_t kRoleEs = 0x08;   // an ES PID of a PMT (PID_error)
constexpr std::uint8_t kRolePes = 0x10;  // a video/audio ES (PTS_error)

// CC state (PidHot::cc_state).
constexpr std::uint8_t kCcValid = 0x01;
constexpr std::uint8_t kCcDup = 0x02;

constexpr std::uint16_t kNoSlot = 0xFFFF;
constexpr std::uint16_t kNoPid = kPidCount;  // count_error() for stream-wide checks
constexpr std::uint16_t kTotPid = kTdtPid;
constexpr std::array<std::uint16_t, 6> kFixedPsiPids{kPatPid, kCatPid, kNitPid, kSdtPid, kEitPid, kTotPid};

constexpr double kPacketBits = static_cast<double>(kPacketSize * 8);

// PCR accuracy: the expected PCR follows a line fitted to (arrival, PCR) with exponential
// forgetting, so slow drift between the two clocks is not jitter.
constexpr double kPcrTrendSeconds = 10.0;
// The fit is judged once kPcrWarmup PCRs in a row agree with it within the accuracy
// bound; a PCR that does not during the warm-up restarts it there (an outlier at the start,
// such as PcrClock's times before it knows the rate, would otherwise bias the fit for
// many seconds). After kPcrRestarts restarts the fit is judged anyway (a jittery network).
constexpr std::uint32_t kPcrWarmup = 5;
constexpr std::uint32_t kPcrRestarts = 3;
// PCR accuracy is judged only on a constant-rate stream (TR 101 290 defines PCR_AC
// against the byte position at a constant rate): once this many PCR intervals in a row
// had a rate within kCbrTolerance of the run's mean. A variable-rate stream (a remux
// output without stuffing, most VBR encoders) never gets there.
constexpr std::uint32_t kCbrIntervals = 8;

constexpr std::uint64_t elapsed(std::uint64_t now, std::uint64_t ref) { return now > ref ? now - ref : 0; }

}  // namespace

struct Analyzer::PidHot {
  std::uint64_t last_seen_ns = 0;
  std::uint32_t window_packets = 0;  // packets in the current bitrate window
  std::uint8_t cc = 0;
  std::uint8_t cc_state = 0;
  std::uint8_t role = 0;
  std::uint8_t mark = 0;  // scratch for rebuild()
};

struct Analyzer::PidCold {
  std::array<std::uint32_t, kCheckCount> errors{};
  std::uint64_t packets_total = 0;  // up to the last bitrate window roll
  std::uint32_t last_window_packets = 0;
  std::uint16_t section_slot = kNoSlot;
  std::uint16_t pcr_slot = kNoSlot;
  std::uint64_t lost = 0;
  std::uint64_t pmt_ref_ns = 0;  // last PMT section (or PMT_error_2)
  std::uint64_t es_ref_ns = 0;   // last PID_error (or start of watching)
  std::uint64_t pts_ref_ns = 0;  // last PTS (or PTS_error)
};

namespace {

// A line fitted to (x, PCR elapsed - x) with exponential forgetting in x, so that a slow
// drift between the PCR clock and x is a trend, not jitter; x is the arrival time (PCR
// overall jitter) or the byte position at the stream's rate (PCR accuracy).
struct PcrTrend {
  std::uint64_t base_ns = 0;
  double pcr_elapsed_ns = 0;
  std::uint32_t samples = 0;
  std::uint32_t restarts = 0;
  double last_t = 0;
  double s0 = 0, st = 0, so = 0, stt = 0, sto = 0;

  void rebase(std::uint64_t x) {
    restarts = 0;
    restart(x);
  }
  void restart(std::uint64_t x) {
    base_ns = x;
    pcr_elapsed_ns = 0;
    samples = 1;
    last_t = 0;
    s0 = 1;
    st = so = stt = sto = 0;
  }
  // Returns PCR - expected in ns, or NaN while warming up.
  double sample(std::uint64_t x, std::uint64_t delta27, double accuracy_ns) {
    pcr_elapsed_ns += static_cast<double>(delta27) * (1000.0 / 27.0);
    const double t = static_cast<double>(elapsed(x, base_ns)) * 1e-9;
    const double offset = pcr_elapsed_ns - static_cast<double>(elapsed(x, base_ns));
    const double det = s0 * stt - st * st;
    double predicted = so / s0;
    if (samples >= 2 && det > 1e-12 * s0 * s0) {
      const double b = (s0 * sto - st * so) / det;
      const double a = (so - b * st) / s0;
      predicted = a + b * t;
    }
    double jitter = offset - predicted;
    if (samples < kPcrWarmup) {
      if (std::fabs(jitter) > accuracy_ns && restarts < kPcrRestarts) {
        ++restarts;
        restart(x);
        return std::numeric_limits<double>::quiet_NaN();
      }
      jitter = std::numeric_limits<double>::quiet_NaN();
    }
    const double w = std::exp(-(t - last_t) / kPcrTrendSeconds);
    s0 = s0 * w + 1;
    st = st * w + t;
    so = so * w + offset;
    stt = stt * w + t * t;
    sto = sto * w + t * offset;
    last_t = t;
    ++samples;
    return jitter;
  }
};

}  // namespace

struct Analyzer::PcrState {
  std::uint16_t pid = kNullPid;
  bool have_pcr = false;
  bool discontinuity_pending = false;
  std::uint64_t last_pcr = 0;
  std::uint64_t last_arrival_ns = 0;
  std::uint64_t last_index = 0;  // stream packet index of the last PCR
  std::uint64_t rep_ref_ns = 0;  // last PCR (or silence PCR_repetition_error), arrival time
  bool silence_counted = false;  // a PCR_repetition_error was counted for silence since the last PCR
  std::uint64_t pcrs = 0;
  std::uint64_t max_interval_ns = 0;
  std::uint64_t max_pcr_interval_ns = 0;
  double max_jitter_ns = 0;
  double max_accuracy_ns = 0;
  // PCR overall jitter: the PCR against its arrival time (network jitter included).
  PcrTrend arrival;
  // PCR accuracy (TR 101 290 PCR_AC): the PCR against its byte position, on a run of PCR
  // intervals whose rates agree within kCbrTolerance (a constant-rate stream). x is the
  // byte position in ns at the run's first rate.
  PcrTrend position;
  bool run = false;
  std::uint64_t run_index = 0;       // packet index at the start of the run
  double run_ns_per_packet = 0;      // the run's first interval's rate (fixes x)
  double run_pcr_ns = 0;             // PCR time since the start of the run
  std::uint32_t run_intervals = 0;
  std::uint64_t lost_at_pcr = 0;     // Analyzer::lost_ at the last PCR
  // The last PCR's PCR_AC, counted at the next PCR unless a loss is seen by then (a lost
  // packet shows at the next packet of its PID, which may come after the PCR). NaN: none.
  double pending_accuracy_ns = std::numeric_limits<double>::quiet_NaN();
  std::uint64_t pending_ns = 0;

  void rebase(std::uint64_t now) {
    arrival.rebase(now);
    run = false;
  }
};

// ---------------------------------------------------------------------------------------

std::uint64_t Report::priority_errors(int priority) const {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < kCheckCount; ++i)
    if (check_priority(static_cast<Check>(i)) == priority) n += checks[i].count;
  return n;
}

const PidReport* Report::find_pid(std::uint16_t pid) const {
  for (const auto& p : pids)
    if (p.pid == pid) return &p;
  return nullptr;
}

// ---------------------------------------------------------------------------------------

Analyzer::Analyzer() : Analyzer(Config{}) {}

Analyzer::Analyzer(const Config& config)
    : config_(config),
      hot_(std::make_unique<PidHot[]>(kPidCount)),
      cold_(std::make_unique<PidCold[]>(kPidCount)),
      assemblers_(std::make_unique<SectionAssembler[]>(kMaxSectionPids)),
      pcr_(std::make_unique<PcrState[]>(kMaxPcrPids)),
      window_pids_(std::make_unique<std::uint16_t[]>(kPidCount)),
      last_window_pids_(std::make_unique<std::uint16_t[]>(kPidCount)) {
  static_assert(sizeof(PidHot) == 16, "four PIDs per cache line");
  if (config_.tick_ns == 0) config_.tick_ns = 1;
  if (config_.mdi_interval_ns == 0) config_.mdi_interval_ns = 1;
  if (config_.bitrate_window_ns == 0) config_.bitrate_window_ns = 1;
  section_owner_.fill(kNullPid);
  for (std::uint16_t pid : kFixedPsiPids) {
    hot_[pid].role = kRolePsi;
    alloc_section_slot(pid);
  }
  mdi_rate_bits_per_ns_ = static_cast<double>(config_.media_rate_bps) * 1e-9;
}

Analyzer::~Analyzer() = default;

std::uint16_t Analyzer::alloc_section_slot(std::uint16_t pid) {
  if (cold_[pid].section_slot != kNoSlot) return cold_[pid].section_slot;
  for (std::size_t i = 0; i < kMaxSectionPids; ++i) {
    if (section_owner_[i] == kNullPid) {
      section_owner_[i] = pid;
      assemblers_[i].reset();
      cold_[pid].section_slot = static_cast<std::uint16_t>(i);
      return static_cast<std::uint16_t>(i);
    }
  }
  return kNoSlot;
}

void Analyzer::free_section_slot(std::uint16_t pid) {
  const std::uint16_t slot = cold_[pid].section_slot;
  if (slot == kNoSlot) return;
  section_owner_[slot] = kNullPid;
  cold_[pid].section_slot = kNoSlot;
}

// --- packet path ---------------------------------------------------------------------------

// n packets arrive at `now`: the clock, the timed checks and the MDI virtual buffer
// (RFC 4445 4.1) before and after each of them. The buffer only grows within a burst, so
// its minimum is before the first packet and its maximum after the last: the same values
// as packet by packet. Returns the (never backwards) time.
inline std::uint64_t Analyzer::arrive(std::size_t n, std::uint64_t now) {
  if (now < last_ns_) now = last_ns_;  // never backwards
  last_ns_ = now;
  if (now >= next_tick_ns_) [[unlikely]] {
    if (!started_) start(now);
    tick(now);
  }
  packets_ += n;
  window_packets_ += n;
  const double drained = static_cast<double>(now - mdi_start_ns_) * mdi_rate_bits_per_ns_;
  vb_min_ = std::min(vb_min_, static_cast<double>(mdi_bits_) - drained);
  mdi_bits_ += (n - 1) * kPacketSize * 8;
  vb_max_ = std::max(vb_max_, static_cast<double>(mdi_bits_) - drained + kPacketBits);
  mdi_bits_ += kPacketSize * 8;
  return now;
}

inline void Analyzer::check_packet(const TsPacket& p, std::uint64_t now) {
  if (!p.has_sync()) [[unlikely]] {
    bad_sync(now);
    return;
  }
  if (bad_run_ != 0 || !in_sync_) [[unlikely]]
    good_sync();

  const std::uint16_t pid = p.pid();
  PidHot& h = hot_[pid];
  h.last_seen_ns = now;
  if (h.window_packets++ == 0) window_pids_[n_window_pids_++] = pid;

  const std::uint8_t b3 = p.bytes[3];
  if (p.transport_error()) [[unlikely]] {
    // The header may be wrong too: counted, then ignored (its payload is lost, so the
    // next packet of the PID normally shows a CC gap).
    count_error(Check::kTransportError, pid, now);
    return;
  }
  if (pid == kNullPid) return;
  if ((b3 & 0xC0) != 0) [[unlikely]]
    scrambled(pid, now);

  if ((b3 & 0x10) != 0) {
    const std::uint8_t cc = b3 & 0x0F;
    if (cc != ((h.cc + 1) & 0x0F) || h.cc_state != kCcValid) [[unlikely]]
      continuity(p, h, pid, now);
    else
      h.cc = cc;
  } else if (p.discontinuity()) [[unlikely]] {
    h.cc_state = 0;  // the next payload packet may carry any CC
  }

  // Most packets of an ES PID (no adaptation field, no unit start) have nothing for
  // role_packet(): they stay on the fast path.
  const std::uint8_t role = h.role;
  if (role != 0) [[unlikely]] {
    const bool psi = (role & kRolePsi) != 0;
    const bool pcr = (role & kRolePcr) != 0 && (b3 & 0x20) != 0;
    const bool pes = (role & kRolePes) != 0 && p.payload_unit_start();
    if (psi || pcr || pes) role_packet(p, pid, role, now);
  }
}

void Analyzer::push(const TsPacket& p, std::uint64_t now) {
  burst_begin_ = &p;
  burst_index_ = packets_;
  check_packet(p, arrive(1, now));
}

void Analyzer::push(std::span<const TsPacket> burst, std::uint64_t now) {
  if (burst.empty()) return;
  burst_begin_ = burst.data();
  burst_index_ = packets_;
  now = arrive(burst.size(), now);
  for (const TsPacket& p : burst) check_packet(p, now);
}

std::uint64_t Analyzer::count(Check c, std::uint16_t pid) const {
  return pid < kPidCount ? cold_[pid].errors[static_cast<std::size_t>(c)] : 0;
}

void Analyzer::on_aligner_sync_loss() {
  if (in_sync_) count_error(Check::kTsSyncLoss, kNoPid, last_ns_);
  in_sync_ = false;
  good_run_ = 0;
}

void Analyzer::bad_sync(std::uint64_t now) {
  count_error(Check::kSyncByteError, kNoPid, now);
  good_run_ = 0;
  if (++bad_run_ >= 2 && in_sync_) {
    in_sync_ = false;
    count_error(Check::kTsSyncLoss, kNoPid, now);
  }
}

void Analyzer::good_sync() {
  bad_run_ = 0;
  if (!in_sync_ && ++good_run_ >= 5) {
    in_sync_ = true;
    good_run_ = 0;
  }
}

void Analyzer::continuity(const TsPacket& p, PidHot& h, std::uint16_t pid, std::uint64_t now) {
  const std::uint8_t cc = p.cc();
  const std::uint8_t expected = static_cast<std::uint8_t>((h.cc + 1) & 0x0F);
  if (h.cc_state == 0 || p.discontinuity() || cc == expected) {
    h.cc = cc;
    h.cc_state = kCcValid;
    return;
  }
  if (cc == h.cc) {
    // One duplicate is allowed; a packet occurring more than twice is an error.
    if ((h.cc_state & kCcDup) != 0)
      count_error(Check::kContinuityCountError, pid, now);
    else
      h.cc_state |= kCcDup;
    return;
  }
  const std::uint64_t missing = static_cast<std::uint8_t>((cc - expected) & 0x0F);
  count_error(Check::kContinuityCountError, pid, now);
  lost_ += missing;
  mdi_lost_ += missing;
  cold_[pid].lost += missing;
  h.cc = cc;
  h.cc_state = kCcValid;
}

void Analyzer::scrambled(std::uint16_t pid, std::uint64_t now) {
  if (pid == kPatPid) {
    count_error(Check::kPatError2, pid, now);
  } else if ((hot_[pid].role & kRolePmt) != 0) {
    count_error(Check::kPmtError2, pid, now);
  }
  if (!cat_seen_ && !scrambled_without_cat_) {
    // Judged pat_max_interval_ns after this packet, time for a CAT to come: not against
    // the last judgement, which may be long ago when scrambling has just started.
    scrambled_without_cat_ = true;
    cat_error_ref_ns_ = now;
  }
}

void Analyzer::role_packet(const TsPacket& p, std::uint16_t pid, std::uint8_t role, std::uint64_t now) {
  if ((role & kRolePsi) != 0 && p.scrambling() == 0) {
    const std::uint16_t slot = cold_[pid].section_slot;
    if (slot != kNoSlot) {
      section_now_ns_ = now;
      assemblers_[slot].push(p, *this);
    }
    if (psi_.push(p)) rebuild(now);
  }
  if ((role & kRolePcr) != 0 && p.has_adaptation()) pcr_packet(p, pid, now);
  if ((role & kRolePes) != 0 && p.payload_unit_start()) pes_start(p, pid, now);
}

void Analyzer::on_section(std::uint16_t pid, std::span<const std::uint8_t> section, bool crc_ok) {
  const std::uint64_t now = section_now_ns_;
  if (section.empty()) return;
  const std::uint8_t table_id = section[0];
  // The TOT (EN 300 468) carries a CRC_32 although its section_syntax_indicator is 0.
  if (pid == kTotPid && table_id == 0x73) crc_ok = section_crc_ok(section);
  if (!crc_ok) count_error(Check::kCrcError, pid, now);
  // A section failing its CRC is discarded by decoders: it is not the PAT, CAT or PMT that
  // the repetition checks wait for.
  if (pid == kPatPid) {
    if (table_id != 0x00)
      count_error(Check::kPatError2, pid, now);
    else if (crc_ok)
      pat_ref_ns_ = now;
  } else if (pid == kCatPid) {
    if (table_id != 0x01)
      count_error(Check::kCatError, pid, now);
    else if (crc_ok)
      cat_seen_ = true;
  }
  if ((hot_[pid].role & kRolePmt) != 0 && table_id == 0x02 && crc_ok) cold_[pid].pmt_ref_ns = now;
}

void Analyzer::pcr_packet(const TsPacket& p, std::uint16_t pid, std::uint64_t now) {
  const std::uint16_t slot = cold_[pid].pcr_slot;
  if (slot == kNoSlot) return;
  PcrState& s = pcr_[slot];
  const bool disc = p.discontinuity();
  if (!p.has_pcr()) {
    if (disc) s.discontinuity_pending = true;
    return;
  }
  const std::uint64_t pcr = p.pcr();
  ++s.pcrs;
  // PCR_repetition_error is judged on the interval between PCR values (stream time), not
  // between arrivals: a network input that delivers a compliant stream in bursts (a
  // sender pacing per frame, SRT) has arrival gaps over 40 ms that are delivery jitter
  // (MDI DF, PCR_OJ), not a mux breaking the rule. Silence is caught in tick(). Where the
  // values say nothing about the interval (a discontinuity, a jump), the arrival gap is
  // judged instead.
  const bool silence_counted = s.silence_counted;
  s.silence_counted = false;
  const std::uint64_t arrival_gap = s.have_pcr ? elapsed(now, s.last_arrival_ns) : 0;
  s.max_interval_ns = std::max(s.max_interval_ns, arrival_gap);
  s.rep_ref_ns = now;
  s.last_arrival_ns = now;
  // One error per interval over the limit, unless tick() already counted it as silence.
  const auto repetition = [&](std::uint64_t interval_ns) {
    if (!silence_counted && interval_ns > config_.pcr_max_interval_ns) count_error(Check::kPcrRepetitionError, pid, now);
  };

  const std::uint64_t index = burst_index_ + static_cast<std::uint64_t>(&p - burst_begin_);
  if (!std::isnan(s.pending_accuracy_ns)) {
    if (lost_ == s.lost_at_pcr) {
      const double a = s.pending_accuracy_ns;
      s.max_accuracy_ns = std::max(s.max_accuracy_ns, a);
      pcr_window_.accuracy_measured = true;
      pcr_window_.accuracy_ns = std::max(pcr_window_.accuracy_ns, a);
      if (a > static_cast<double>(config_.pcr_accuracy_ns)) count_error(Check::kPcrAccuracyError, pid, s.pending_ns);
    }
    s.pending_accuracy_ns = std::numeric_limits<double>::quiet_NaN();
  }
  if (!s.have_pcr || disc || s.discontinuity_pending) {
    repetition(arrival_gap);
    s.rebase(now);
  } else {
    const std::uint64_t delta = pcr_delta(s.last_pcr, pcr);
    if (delta > config_.pcr_max_jump_ns * 27 / 1000) {
      count_error(Check::kPcrDiscontinuityIndicatorError, pid, now);
      repetition(arrival_gap);
      s.rebase(now);
    } else {
      const std::uint64_t interval_ns = delta * 1000 / 27;
      s.max_pcr_interval_ns = std::max(s.max_pcr_interval_ns, interval_ns);
      repetition(interval_ns);
      const double accuracy = static_cast<double>(config_.pcr_accuracy_ns);
      // Overall jitter: measured and reported, never an error by itself (on a network
      // input it is mostly the network's, and TR 101 290's PCR_accuracy_error is not).
      const double jitter = s.arrival.sample(now, delta, accuracy);
      if (!std::isnan(jitter)) {
        s.max_jitter_ns = std::max(s.max_jitter_ns, std::fabs(jitter));
        pcr_window_.valid = true;
        pcr_window_.jitter_ns = std::max(pcr_window_.jitter_ns, std::fabs(jitter));
      }
      // Packets lost since the last PCR (CC gaps): the byte positions between the two
      // PCRs are not the ones sent, so this interval says nothing about PCR_AC, nor about
      // the TS rate that MDI drains at (13818-1's transport_rate: bytes between PCRs).
      if (lost_ != s.lost_at_pcr) {
        s.run = false;
      } else {
        pcr_accuracy(s, index, delta, now);
        if (index > s.last_index && delta != 0) {
          mdi_pcr_packets_ += index - s.last_index;
          mdi_pcr_ticks_ += delta;
        }
      }
    }
  }
  s.lost_at_pcr = lost_;
  s.have_pcr = true;
  s.discontinuity_pending = false;
  s.last_pcr = pcr;
  s.last_index = index;
}

// PCR_AC: each PCR against where its byte position puts it on a constant-rate stream.
void Analyzer::pcr_accuracy(PcrState& s, std::uint64_t index, std::uint64_t delta27,
                            std::uint64_t now) {
  if (index <= s.last_index || delta27 == 0) {
    s.run = false;
    return;
  }
  const double delta_ns = static_cast<double>(delta27) * (1000.0 / 27.0);
  const double ns_per_packet = delta_ns / static_cast<double>(index - s.last_index);
  if (s.run) {
    // The interval's rate against the run's mean so far; outside the tolerance the stream
    // is not (or no longer) constant-rate here: a new run starts with this interval.
    const double mean = s.run_pcr_ns / static_cast<double>(s.last_index - s.run_index);
    if (std::fabs(ns_per_packet - mean) > kCbrTolerance * mean) s.run = false;
  }
  if (!s.run) {
    s.run = true;
    s.run_index = s.last_index;
    s.run_ns_per_packet = ns_per_packet;
    s.run_pcr_ns = 0;
    s.run_intervals = 0;
    s.position.rebase(0);
  }
  s.run_pcr_ns += delta_ns;
  ++s.run_intervals;
  const double x_ns = static_cast<double>(index - s.run_index) * s.run_ns_per_packet;
  if (x_ns > 1e18) {  // ~32 years of run: start again rather than overflow the conversion
    s.run = false;
    return;
  }
  const auto x = static_cast<std::uint64_t>(x_ns);
  const double accuracy = static_cast<double>(config_.pcr_accuracy_ns);
  const double error = s.position.sample(x, delta27, accuracy);
  if (s.run_intervals < kCbrIntervals || std::isnan(error)) return;
  s.pending_accuracy_ns = std::fabs(error);  // judged at the next PCR (pcr_packet)
  s.pending_ns = now;
}

void Analyzer::pes_start(const TsPacket& p, std::uint16_t pid, std::uint64_t now) {
  PidCold& c = cold_[pid];
  if (p.scrambling() != 0) {
    c.pts_ref_ns = now;  // PTS cannot be read; TR 101 290 checks it on clear streams only
    return;
  }
  const auto pes = parse_pes_header(p.payload());
  if (!pes || !pes->has_pts) return;
  if (elapsed(now, c.pts_ref_ns) > config_.pts_max_interval_ns) count_error(Check::kPtsError, pid, now);
  c.pts_ref_ns = now;
}

void Analyzer::count_error(Check c, std::uint16_t pid, std::uint64_t now) {
  CheckStats& s = checks_[static_cast<std::size_t>(c)];
  if (s.count == 0) s.first_ns = now;
  ++s.count;
  s.last_ns = now;
  if (pid < kPidCount) ++cold_[pid].errors[static_cast<std::size_t>(c)];
}

// --- timed checks ----------------------------------------------------------------------

void Analyzer::start(std::uint64_t now) {
  started_ = true;
  start_ns_ = now;
  pat_ref_ns_ = now;
  cat_error_ref_ns_ = now;
  window_start_ns_ = now;
  mdi_start_ns_ = now;
  vb_min_ = std::numeric_limits<double>::infinity();
  vb_max_ = -std::numeric_limits<double>::infinity();
}

void Analyzer::tick(std::uint64_t now) {
  next_tick_ns_ = now + config_.tick_ns;

  if (elapsed(now, pat_ref_ns_) > config_.pat_max_interval_ns) {
    count_error(Check::kPatError2, kPatPid, now);
    pat_ref_ns_ = now;
  }
  for (std::size_t i = 0; i < n_pmt_; ++i) {
    const std::uint16_t pid = pmt_pids_[i];
    PidCold& c = cold_[pid];
    if (elapsed(now, c.pmt_ref_ns) > config_.pmt_max_interval_ns) {
      count_error(Check::kPmtError2, pid, now);
      c.pmt_ref_ns = now;
    }
  }
  for (std::size_t i = 0; i < n_es_; ++i) {
    const std::uint16_t pid = es_pids_[i];
    PidCold& c = cold_[pid];
    const std::uint64_t seen = std::max(hot_[pid].last_seen_ns, c.es_ref_ns);
    if (elapsed(now, seen) > config_.pid_max_absence_ns) {
      count_error(Check::kPidError, pid, now);
      c.es_ref_ns = now;
    }
    if ((hot_[pid].role & kRolePes) != 0 && elapsed(now, c.pts_ref_ns) > config_.pts_max_interval_ns) {
      count_error(Check::kPtsError, pid, now);
      c.pts_ref_ns = now;
    }
  }
  for (std::size_t i = 0; i < n_pcr_; ++i) {
    // No PCR for a while by arrival time: counted now, without waiting for the next PCR
    // (which may never come). The first one only after the slack, so that delivery jitter
    // is not taken for silence; then one per pcr_max_interval_ns.
    PcrState& s = pcr_[i];
    const std::uint64_t limit = config_.pcr_max_interval_ns + (s.silence_counted ? 0 : config_.pcr_silence_slack_ns);
    if (elapsed(now, s.rep_ref_ns) > limit) {
      count_error(Check::kPcrRepetitionError, s.pid, now);
      s.rep_ref_ns = now;
      s.silence_counted = true;
    }
  }
  if (scrambled_without_cat_ && elapsed(now, cat_error_ref_ns_) > config_.pat_max_interval_ns) {
    if (!cat_seen_) count_error(Check::kCatError, kCatPid, now);
    scrambled_without_cat_ = false;
    cat_error_ref_ns_ = now;
  }

  if (now - window_start_ns_ >= config_.bitrate_window_ns) roll_bitrate(now);
  if (now - mdi_start_ns_ >= config_.mdi_interval_ns) roll_mdi(now);
}

void Analyzer::roll_bitrate(std::uint64_t now) {
  for (std::size_t i = 0; i < n_last_window_pids_; ++i) cold_[last_window_pids_[i]].last_window_packets = 0;
  for (std::size_t i = 0; i < n_window_pids_; ++i) {
    const std::uint16_t pid = window_pids_[i];
    PidHot& h = hot_[pid];
    PidCold& c = cold_[pid];
    c.last_window_packets = h.window_packets;
    c.packets_total += h.window_packets;
    h.window_packets = 0;
  }
  std::swap(window_pids_, last_window_pids_);
  n_last_window_pids_ = n_window_pids_;
  n_window_pids_ = 0;
  last_window_packets_ = window_packets_;
  last_window_ns_ = now - window_start_ns_;
  window_packets_ = 0;
  window_start_ns_ = now;
}

void Analyzer::roll_mdi(std::uint64_t now) {
  const std::uint64_t duration = now - mdi_start_ns_;
  const double seconds = static_cast<double>(duration) * 1e-9;
  // The buffer drained until now, when the packet that closes the interval arrives: a gap
  // in the input before it (an outage across the interval's end) is this interval's.
  vb_min_ = std::min(vb_min_, static_cast<double>(mdi_bits_) - static_cast<double>(duration) * mdi_rate_bits_per_ns_);
  Mdi m;
  m.lost = mdi_lost_;
  m.mlr = static_cast<double>(mdi_lost_) / seconds;
  if (mdi_rate_bits_per_ns_ > 0 && mdi_bits_ > 0) {
    m.valid = true;
    m.media_rate_bps = mdi_rate_bits_per_ns_ * 1e9;
    m.df_ms = (vb_max_ - vb_min_) / mdi_rate_bits_per_ns_ * 1e-6;
  }
  if (m.valid || mdi_bits_ > 0) {
    mdi_last_ = m;
    if (m.valid) {
      mdi_max_.valid = true;
      mdi_max_.df_ms = std::max(mdi_max_.df_ms, m.df_ms);
      mdi_max_.media_rate_bps = std::max(mdi_max_.media_rate_bps, m.media_rate_bps);
    }
    mdi_max_.mlr = std::max(mdi_max_.mlr, m.mlr);
    mdi_max_.lost = std::max(mdi_max_.lost, m.lost);
  }
  pcr_last_ = pcr_window_;
  pcr_window_ = PcrInterval{};
  // Measured rate: the TS rate from the PCRs (packets between two PCRs over their values),
  // which an outage or a loss does not lower: the arrival rate over an interval with a gap
  // in the input is a fraction of the stream's and would turn the next, clean, interval's
  // DF into (a multiple of) the gap. From arrivals only without PCRs, and not over an
  // interval that spans an input outage (no packet, hence no tick, for more than an
  // interval).
  if (config_.media_rate_bps != 0)
    mdi_rate_bits_per_ns_ = static_cast<double>(config_.media_rate_bps) * 1e-9;
  else if (mdi_pcr_ticks_ != 0)
    mdi_rate_bits_per_ns_ = static_cast<double>(mdi_pcr_packets_) * kPacketBits /
                            (static_cast<double>(mdi_pcr_ticks_) * (1000.0 / 27.0));
  else if (duration <= 2 * config_.mdi_interval_ns)
    mdi_rate_bits_per_ns_ = static_cast<double>(mdi_bits_) / static_cast<double>(duration);
  mdi_pcr_packets_ = 0;
  mdi_pcr_ticks_ = 0;
  mdi_start_ns_ = now;
  mdi_bits_ = 0;
  mdi_lost_ = 0;
  vb_min_ = std::numeric_limits<double>::infinity();
  vb_max_ = -std::numeric_limits<double>::infinity();
}

// --- PSI changes -----------------------------------------------------------------------

void Analyzer::rebuild(std::uint64_t now) {
  const ProgramModel& m = psi_.model();
  std::array<std::uint16_t, kMaxSectionPids> pmt{};
  std::size_t n_pmt = 0;
  std::array<std::uint16_t, kMaxPcrPids> pcr{};
  std::size_t n_pcr = 0;
  std::array<std::uint16_t, kMaxEsPids> es{};
  std::size_t n_es = 0;

  auto is_fixed = [](std::uint16_t pid) {
    return std::find(kFixedPsiPids.begin(), kFixedPsiPids.end(), pid) != kFixedPsiPids.end();
  };

  // New lists; mark holds the role bits each PID keeps.
  for (const Service& s : m.services) {
    const std::uint16_t pid = s.pmt_pid;
    if (pid < kNullPid && (hot_[pid].mark & kRolePmt) == 0 && n_pmt < pmt.size()) {
      PidHot& h = hot_[pid];
      // Out of section slots: the PMT is not watched.
      const bool ok = (h.role & kRolePmt) != 0 || alloc_section_slot(pid) != kNoSlot;
      if (ok && (h.role & kRolePmt) == 0) {
        h.role |= kRolePmt | kRolePsi;
        cold_[pid].pmt_ref_ns = now;
      }
      if (ok) {
        h.mark |= kRolePmt;
        pmt[n_pmt++] = pid;
      }
    }
    if (!s.has_pmt) continue;
    if (s.pcr_pid < kNullPid && (hot_[s.pcr_pid].mark & kRolePcr) == 0 && n_pcr < pcr.size()) {
      hot_[s.pcr_pid].mark |= kRolePcr;
      pcr[n_pcr++] = s.pcr_pid;
    }
    for (const ElementaryStream& e : s.streams) {
      if (e.pid >= kNullPid || (hot_[e.pid].mark & kRoleEs) != 0 || n_es >= es.size()) continue;
      PidHot& h = hot_[e.pid];
      const StreamKind kind = codec_kind(e.codec);
      const bool av = kind == StreamKind::kVideo || kind == StreamKind::kAudio;
      if ((h.role & kRoleEs) == 0) {
        cold_[e.pid].es_ref_ns = now;
        cold_[e.pid].pts_ref_ns = now;
      } else if (av && (h.role & kRolePes) == 0) {
        cold_[e.pid].pts_ref_ns = now;
      }
      h.role = static_cast<std::uint8_t>((h.role & ~kRolePes) | kRoleEs | (av ? kRolePes : 0));
      h.mark |= kRoleEs;
      es[n_es++] = e.pid;
    }
  }

  // PIDs that left a role.
  for (std::size_t i = 0; i < n_pmt_; ++i) {
    const std::uint16_t pid = pmt_pids_[i];
    PidHot& h = hot_[pid];
    if ((h.mark & kRolePmt) != 0) continue;
    h.role &= static_cast<std::uint8_t>(~kRolePmt);
    if (!is_fixed(pid)) {
      h.role &= static_cast<std::uint8_t>(~kRolePsi);
      free_section_slot(pid);
    }
  }
  for (std::size_t i = 0; i < n_es_; ++i) {
    PidHot& h = hot_[es_pids_[i]];
    if ((h.mark & kRoleEs) == 0) h.role &= static_cast<std::uint8_t>(~(kRoleEs | kRolePes));
  }
  // PCR states are kept for PIDs that stay PCR PIDs, in the new order.
  std::array<PcrState, kMaxPcrPids> kept{};
  for (std::size_t i = 0; i < n_pcr; ++i) {
    const std::uint16_t pid = pcr[i];
    const std::uint16_t old = cold_[pid].pcr_slot;
    if (old != kNoSlot && (hot_[pid].role & kRolePcr) != 0) {
      kept[i] = pcr_[old];
    } else {
      kept[i] = PcrState{};
      kept[i].pid = pid;
      kept[i].rep_ref_ns = now;
    }
  }
  for (std::size_t i = 0; i < n_pcr_; ++i) {
    const std::uint16_t pid = pcr_pids_[i];
    hot_[pid].role &= static_cast<std::uint8_t>(~kRolePcr);
    cold_[pid].pcr_slot = kNoSlot;
  }
  for (std::size_t i = 0; i < n_pcr; ++i) {
    pcr_[i] = kept[i];
    hot_[pcr[i]].role |= kRolePcr;
    cold_[pcr[i]].pcr_slot = static_cast<std::uint16_t>(i);
  }

  for (std::size_t i = 0; i < n_pmt; ++i) hot_[pmt[i]].mark = 0;
  for (std::size_t i = 0; i < n_pcr; ++i) hot_[pcr[i]].mark = 0;
  for (std::size_t i = 0; i < n_es; ++i) hot_[es[i]].mark = 0;
  pmt_pids_ = pmt;
  n_pmt_ = n_pmt;
  pcr_pids_ = pcr;
  n_pcr_ = n_pcr;
  es_pids_ = es;
  n_es_ = n_es;
}

// --- report ----------------------------------------------------------------------------

Report Analyzer::report() const {
  Report r;
  r.packets = packets_;
  r.bytes = packets_ * kPacketSize;
  r.start_ns = start_ns_;
  r.now_ns = last_ns_;
  r.checks = checks_;
  const double run_s = static_cast<double>(last_ns_ - start_ns_) * 1e-9;
  if (last_window_ns_ > 0)
    r.bitrate_bps = static_cast<double>(last_window_packets_) * kPacketBits / (static_cast<double>(last_window_ns_) * 1e-9);
  if (run_s > 0) r.average_bitrate_bps = static_cast<double>(r.bytes) * 8 / run_s;
  for (std::uint16_t pid = 0; pid < kPidCount; ++pid) {
    const PidHot& h = hot_[pid];
    const PidCold& c = cold_[pid];
    const std::uint64_t packets = c.packets_total + h.window_packets;
    bool any_error = false;
    for (auto e : c.errors) any_error |= e != 0;
    if (packets == 0 && !any_error) continue;
    PidReport p;
    p.pid = pid;
    p.packets = packets;
    p.lost_packets = c.lost;
    for (std::size_t i = 0; i < kCheckCount; ++i) p.errors[i] = c.errors[i];
    if (last_window_ns_ > 0)
      p.bitrate_bps = static_cast<double>(c.last_window_packets) * kPacketBits / (static_cast<double>(last_window_ns_) * 1e-9);
    if (run_s > 0) p.average_bitrate_bps = static_cast<double>(packets) * kPacketBits / run_s;
    r.pids.push_back(p);
  }
  for (std::size_t i = 0; i < n_pcr_; ++i) {
    const PcrState& s = pcr_[i];
    r.pcr.push_back(PcrReport{s.pid, s.pcrs, s.max_jitter_ns, s.max_interval_ns, s.max_pcr_interval_ns,
                              s.max_accuracy_ns, s.run && s.run_intervals >= kCbrIntervals});
  }
  r.mdi_last = mdi_last_;
  r.mdi_max = mdi_max_;
  r.lost_packets = lost_;
  r.in_sync = in_sync_;
  r.programs = psi_.model();
  return r;
}

// --- PcrClock --------------------------------------------------------------------------

std::uint64_t PcrClock::extrapolate() const {
  if (rate_bps_ <= 0) return anchor_ns_;
  const double bits = static_cast<double>((pos_ - anchor_pos_) * 8);
  const double ns = std::min(bits * 1e9 / rate_bps_, 1e18);  // a cast beyond 2^64 is undefined
  return anchor_ns_ + static_cast<std::uint64_t>(ns);
}

std::uint64_t PcrClock::push(const TsPacket& p) {
  std::uint64_t t = 0;
  const bool has_pcr = p.has_sync() && p.has_pcr();
  if (has_pcr && pid_ == kNullPid) pid_ = p.pid();
  if (has_pcr && p.pid() == pid_) {
    const std::uint64_t pcr = p.pcr();
    if (!anchored_) {
      anchored_ = true;
      t = rate_bps_ > 0 ? extrapolate() : 0;
      origin_ns_ = std::max(t, last_ns_);
      origin_pcr_ticks_ = 0;
      t = origin_ns_;
    } else {
      const std::uint64_t delta = pcr_delta(anchor_pcr_, pcr);
      const std::uint64_t delta_ns = delta * 1000 / 27;
      const std::uint64_t guess = extrapolate();
      const std::uint64_t guess_ns = guess - anchor_ns_;
      bool disc = p.discontinuity() || delta > kPcrWrap / 2;
      if (!disc) {
        // Far from where the byte count says it should be: a jump, not a gap.
        const std::uint64_t diff = delta_ns > guess_ns ? delta_ns - guess_ns : guess_ns - delta_ns;
        disc = rate_bps_ > 0 ? diff > 100'000'000 + guess_ns / 2 : delta_ns > 1'000'000'000;
      }
      if (disc) {
        ++discontinuities_;
        t = std::max(guess, last_ns_);
        origin_ns_ = t;
        origin_pcr_ticks_ = 0;
      } else {
        origin_pcr_ticks_ += delta;
        t = origin_ns_ + origin_pcr_ticks_ * 1000 / 27;
        if (delta > 0) rate_bps_ = static_cast<double>((pos_ - anchor_pos_) * 8) * 27e6 / static_cast<double>(delta);
      }
    }
    anchor_pcr_ = pcr;
    anchor_ns_ = t;
    anchor_pos_ = pos_;
  } else if (anchored_ || rate_bps_ > 0) {
    t = extrapolate();
  }
  t = std::max(t, last_ns_);
  last_ns_ = t;
  pos_ += kPacketSize;
  return t;
}

}  // namespace twincast::mpegts
