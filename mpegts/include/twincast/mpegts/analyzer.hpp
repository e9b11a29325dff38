// Transport-stream analyzer: ETSI TR 101 290 priority 1 and 2 checks, MDI (RFC 4445)
// and bitrates, one packet at a time.
//
// Analyzer::push() is the data-plane path: per-PID state lives in flat arrays indexed by
// PID, nothing allocates, throws or logs there except the embedded PsiDecoder (libdvbpsi)
// when a PSI section completes, which happens a few times per second, never for media
// packets. Timed checks (PAT/PMT/PID/PCR/PTS timeouts), the bitrate window and the MDI
// interval are evaluated when the arrival time crosses a tick (10 ms by default), over
// the short lists of watched PIDs only. report() is the slow path and allocates.
//
// Times are monotonic nanoseconds: the real arrival time for live input, or PcrClock's
// time for files. A time that goes backwards is treated as "no time elapsed".
//
// Not thread-safe: push() and report() are called from the thread that owns the analyzer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/program.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/section.hpp"

namespace twincast::mpegts {

// The checks. X-macro: enum value, TR 101 290 name (JSON key and metric label), priority.
#define TWINCAST_TR101290_CHECKS(X)                                      \
  X(kTsSyncLoss, "TS_sync_loss", 1)                                      \
  X(kSyncByteError, "Sync_byte_error", 1)                                \
  X(kPatError2, "PAT_error_2", 1)                                        \
  X(kContinuityCountError, "Continuity_count_error", 1)                  \
  X(kPmtError2, "PMT_error_2", 1)                                        \
  X(kPidError, "PID_error", 1)                                           \
  X(kTransportError, "Transport_error", 2)                               \
  X(kCrcError, "CRC_error", 2)                                           \
  X(kPcrRepetitionError, "PCR_repetition_error", 2)                      \
  X(kPcrDiscontinuityIndicatorError, "PCR_discontinuity_indicator_error", 2) \
  X(kPcrAccuracyError, "PCR_accuracy_error", 2)                          \
  X(kPtsError, "PTS_error", 2)                                           \
  X(kCatError, "CAT_error", 2)

enum class Check : std::uint8_t {
#define TWINCAST_X(e, s, p) e,
  TWINCAST_TR101290_CHECKS(TWINCAST_X)
#undef TWINCAST_X
};

inline constexpr std::size_t kCheckCount = 0
#define TWINCAST_X(e, s, p) +1
    TWINCAST_TR101290_CHECKS(TWINCAST_X)
#undef TWINCAST_X
    ;

[[nodiscard]] constexpr std::string_view check_name(Check c) {
  switch (c) {
#define TWINCAST_X(e, s, p) \
  case Check::e:            \
    return s;
    TWINCAST_TR101290_CHECKS(TWINCAST_X)
#undef TWINCAST_X
  }
  return "unknown";
}

[[nodiscard]] constexpr int check_priority(Check c) {
  switch (c) {
#define TWINCAST_X(e, s, p) \
  case Check::e:            \
    return p;
    TWINCAST_TR101290_CHECKS(TWINCAST_X)
#undef TWINCAST_X
  }
  return 0;
}

// Thresholds and intervals; defaults are TR 101 290's (PID_error's period is
// "user specified" there).
struct AnalyzerConfig {
  std::uint64_t pat_max_interval_ns = 500'000'000;   // PAT_error_2: table_id 0x00 at least every 0.5 s
  std::uint64_t pmt_max_interval_ns = 500'000'000;   // PMT_error_2: table_id 0x02 at least every 0.5 s
  std::uint64_t pid_max_absence_ns = 5'000'000'000;  // PID_error: an ES PID of a PMT absent this long
  std::uint64_t pcr_max_interval_ns = 40'000'000;    // PCR_repetition_error: > 40 ms between PCRs,
                                                     // in stream time (their PCR values)
  std::uint64_t pcr_silence_slack_ns = 100'000'000;  // ...and a PCR PID silent for
                                                     // pcr_max_interval_ns + this of arrival time
                                                     // (then one per pcr_max_interval_ns): the
                                                     // slack absorbs delivery jitter
  std::uint64_t pcr_max_jump_ns = 100'000'000;       // PCR_discontinuity_indicator_error: outside 0..100 ms
  std::uint64_t pcr_accuracy_ns = 500;               // PCR_accuracy_error: |PCR_AC| > 500 ns, PCR_AC
                                                     // measured from byte positions on a
                                                     // constant-rate stream (never from arrival
                                                     // times: that is PCR_OJ, network jitter)
  std::uint64_t pts_max_interval_ns = 700'000'000;   // PTS_error: > 700 ms between PTS (video, audio)
  std::uint64_t mdi_interval_ns = 1'000'000'000;     // MDI measurement interval
  std::uint64_t bitrate_window_ns = 1'000'000'000;   // bitrate window ("last full second")
  std::uint64_t media_rate_bps = 0;                  // MDI drain rate; 0 = the TS rate measured over
                                                     // the previous interval (from its PCRs; from
                                                     // arrivals when it had none)
  std::uint64_t tick_ns = 10'000'000;                // granularity of the timed checks (> 0)
};

// Media Delivery Index of one interval (RFC 4445).
struct Mdi {
  bool valid = false;          // false until an interval completed with a known media rate
  double df_ms = 0;            // delay factor: (max VB - min VB) / media rate
  double mlr = 0;              // media loss rate: packets lost per second (from CC gaps)
  double media_rate_bps = 0;   // drain rate used for DF
  std::uint64_t lost = 0;      // packets lost in the interval
};

// PCR timing over one MDI interval (the same interval as Mdi), the worst of every PCR PID.
struct PcrInterval {
  bool valid = false;               // a PCR's overall jitter was measured in the interval
  double jitter_ns = 0;             // largest |PCR_OJ|: against arrival times (network jitter in)
  bool accuracy_measured = false;   // a PCR on a constant-rate stretch was judged
  double accuracy_ns = 0;           // largest |PCR_AC|: against byte positions
};

struct CheckStats {
  std::uint64_t count = 0;
  std::uint64_t first_ns = 0;  // arrival time of the first and the last occurrence (valid when count > 0)
  std::uint64_t last_ns = 0;
};

struct PidReport {
  std::uint16_t pid = 0;
  std::uint64_t packets = 0;        // since start
  double bitrate_bps = 0;           // over the last complete bitrate window
  double average_bitrate_bps = 0;   // since start
  std::uint64_t lost_packets = 0;   // from CC gaps
  std::array<std::uint64_t, kCheckCount> errors{};  // per-PID checks (others stay 0)
};

struct PcrReport {
  std::uint16_t pid = 0;
  std::uint64_t pcrs = 0;
  double max_jitter_ns = 0;         // largest |PCR - expected from its arrival time| (PCR_OJ)
  std::uint64_t max_interval_ns = 0;  // largest arrival gap between PCRs
  std::uint64_t max_pcr_interval_ns = 0;  // largest gap between consecutive PCR values (stream
                                          // time; discontinuities and jumps left out)
  double max_accuracy_ns = 0;       // largest |PCR - expected from its byte position| (PCR_AC),
                                    // on constant-rate stretches only
  bool constant_rate = false;       // the PCR intervals' rates agree now: PCR_AC is measured
};

struct Report {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t start_ns = 0;  // first packet
  std::uint64_t now_ns = 0;    // last packet
  std::array<CheckStats, kCheckCount> checks{};
  double bitrate_bps = 0;          // total over the last complete bitrate window
  double average_bitrate_bps = 0;  // since start
  std::vector<PidReport> pids;     // PIDs seen or with errors, ascending
  std::vector<PcrReport> pcr;      // PCR PIDs of the PMTs
  Mdi mdi_last;                    // last complete interval
  Mdi mdi_max;                     // worst DF and worst MLR over the run (each on its own)
  std::uint64_t lost_packets = 0;
  bool in_sync = true;
  ProgramModel programs;

  [[nodiscard]] std::uint64_t count(Check c) const { return checks[static_cast<std::size_t>(c)].count; }
  [[nodiscard]] std::uint64_t priority_errors(int priority) const;
  [[nodiscard]] const PidReport* find_pid(std::uint16_t pid) const;
};

class Analyzer final : private SectionHandler {
 public:
  using Config = AnalyzerConfig;

  // Section reassembly (CRC_error, table_id checks) runs on at most this many PSI PIDs:
  // 6 fixed (PAT, CAT, NIT, SDT, EIT, TOT) plus the PMTs; PMTs beyond are not checked.
  static constexpr std::size_t kMaxSectionPids = 64;
  static constexpr std::size_t kMaxPcrPids = 64;
  static constexpr std::size_t kMaxEsPids = 1024;

  Analyzer();
  explicit Analyzer(const Config& config);
  ~Analyzer();
  Analyzer(const Analyzer&) = delete;
  Analyzer& operator=(const Analyzer&) = delete;

  // One packet as received (the sync byte is checked, not assumed) and its arrival time.
  // ~5 ns/packet for media packets; ~14 ns/packet over h264_aac.ts as a whole, where
  // PSI is 2% of the packets and each costs ~400 ns (SectionAssembler + libdvbpsi CRC and
  // decode). Release, g++ 12, best of 7 rounds in AnalyzerFixture.Throughput.
  void push(const TsPacket& packet, std::uint64_t now_ns);
  // A burst that arrived at one time (the packets of one datagram): the same as pushing
  // them one by one, with the clock and MDI work done once per burst. ~14-15 ns/packet
  // over bench_60s.ts in datagrams of 7 (bench/mpegts_bench BM_AnalyzeDatagrams; that
  // run reads 60 MB from memory, so it is bound by the reads, not by this code).
  void push(std::span<const TsPacket> burst, std::uint64_t now_ns);
  // A byte-stream reader (PacketAligner) lost sync: counts TS_sync_loss.
  void on_aligner_sync_loss();

  [[nodiscard]] Report report() const;
  [[nodiscard]] const ProgramModel& programs() const { return psi_.model(); }
  [[nodiscard]] std::uint64_t count(Check c) const { return checks_[static_cast<std::size_t>(c)].count; }
  // The count of a per-PID check on one PID (PidReport::errors), without allocating.
  [[nodiscard]] std::uint64_t count(Check c, std::uint16_t pid) const;
  [[nodiscard]] const Config& config() const { return config_; }
  // Cheap reads of what report() gives, without allocating (for periodic snapshots on the
  // owning thread): packets since start, bitrate over the last complete window, last MDI.
  [[nodiscard]] std::uint64_t packets() const { return packets_; }
  [[nodiscard]] double bitrate_bps() const {
    if (last_window_ns_ == 0) return 0;
    return static_cast<double>(last_window_packets_) * static_cast<double>(kPacketSize * 8) /
           (static_cast<double>(last_window_ns_) * 1e-9);
  }
  // The same at `now` on the owning thread's clock, which runs on when no packet comes (the
  // windows only roll on packets): 0 once a whole window passed without one, rather than
  // the rate of the last window before the input went silent, for good.
  [[nodiscard]] double bitrate_bps(std::uint64_t now) const {
    return now >= last_ns_ + config_.bitrate_window_ns ? 0 : bitrate_bps();
  }
  [[nodiscard]] const Mdi& mdi_last() const { return mdi_last_; }
  [[nodiscard]] const PcrInterval& pcr_last() const { return pcr_last_; }

 private:
  struct PidHot;
  struct PidCold;
  struct PcrState;

  void on_section(std::uint16_t pid, std::span<const std::uint8_t> section, bool crc_ok) override;

  std::uint64_t arrive(std::size_t n, std::uint64_t now);
  void check_packet(const TsPacket& p, std::uint64_t now);
  void start(std::uint64_t now);
  void tick(std::uint64_t now);
  void bad_sync(std::uint64_t now);
  void good_sync();
  void continuity(const TsPacket& p, PidHot& h, std::uint16_t pid, std::uint64_t now);
  void scrambled(std::uint16_t pid, std::uint64_t now);
  void role_packet(const TsPacket& p, std::uint16_t pid, std::uint8_t role, std::uint64_t now);
  void pcr_packet(const TsPacket& p, std::uint16_t pid, std::uint64_t now);
  void pcr_accuracy(PcrState& s, std::uint64_t index, std::uint64_t delta27, std::uint64_t now);
  void pes_start(const TsPacket& p, std::uint16_t pid, std::uint64_t now);
  void rebuild(std::uint64_t now);
  void roll_bitrate(std::uint64_t now);
  void roll_mdi(std::uint64_t now);
  void count_error(Check c, std::uint16_t pid, std::uint64_t now);
  std::uint16_t alloc_section_slot(std::uint16_t pid);
  void free_section_slot(std::uint16_t pid);

  Config config_;
  PsiDecoder psi_;

  std::unique_ptr<PidHot[]> hot_;    // kPidCount entries, touched per packet
  std::unique_ptr<PidCold[]> cold_;  // kPidCount entries, touched on errors, ticks, PSI
  std::unique_ptr<SectionAssembler[]> assemblers_;  // kMaxSectionPids
  std::array<std::uint16_t, kMaxSectionPids> section_owner_{};
  std::unique_ptr<PcrState[]> pcr_;  // kMaxPcrPids, in the order of pcr_pids_

  // Watched PIDs (from the ProgramModel).
  std::array<std::uint16_t, kMaxSectionPids> pmt_pids_{};
  std::size_t n_pmt_ = 0;
  std::array<std::uint16_t, kMaxPcrPids> pcr_pids_{};
  std::size_t n_pcr_ = 0;
  std::array<std::uint16_t, kMaxEsPids> es_pids_{};
  std::size_t n_es_ = 0;

  // Timing.
  bool started_ = false;
  std::uint64_t start_ns_ = 0;
  std::uint64_t last_ns_ = 0;
  std::uint64_t next_tick_ns_ = 0;
  std::uint64_t section_now_ns_ = 0;  // arrival time of the packet being reassembled
  std::uint64_t pat_ref_ns_ = 0;      // last PAT section (or last PAT_error_2)
  bool cat_seen_ = false;
  bool scrambled_without_cat_ = false;
  std::uint64_t cat_error_ref_ns_ = 0;

  // Sync (TR 101 290 5.2.1: lost after 2 bad sync bytes in a row, regained after 5 good).
  bool in_sync_ = true;
  std::uint32_t bad_run_ = 0;
  std::uint32_t good_run_ = 0;

  // The burst being pushed: a packet's index in the stream is burst_index_ plus its
  // place in the burst (PCR accuracy needs byte positions; nothing per packet).
  const TsPacket* burst_begin_ = nullptr;
  std::uint64_t burst_index_ = 0;

  // Counters.
  std::uint64_t packets_ = 0;
  std::uint64_t lost_ = 0;
  std::array<CheckStats, kCheckCount> checks_{};

  // Bitrate window: PIDs seen in the current and in the last complete window.
  std::uint64_t window_start_ns_ = 0;
  std::uint64_t window_packets_ = 0;
  std::uint64_t last_window_packets_ = 0;
  std::uint64_t last_window_ns_ = 0;
  std::unique_ptr<std::uint16_t[]> window_pids_;       // kPidCount
  std::size_t n_window_pids_ = 0;
  std::unique_ptr<std::uint16_t[]> last_window_pids_;  // kPidCount
  std::size_t n_last_window_pids_ = 0;

  // MDI: virtual buffer over the current interval, in bits.
  std::uint64_t mdi_start_ns_ = 0;
  std::uint64_t mdi_bits_ = 0;
  std::uint64_t mdi_lost_ = 0;
  std::uint64_t mdi_pcr_packets_ = 0;  // packets between consecutive PCRs (no jump, no loss)
  std::uint64_t mdi_pcr_ticks_ = 0;    // and the 27 MHz ticks between them: the TS rate
  double mdi_rate_bits_per_ns_ = 0;  // drain rate of the current interval; 0 = unknown
  double vb_min_ = 0;
  double vb_max_ = 0;
  Mdi mdi_last_;
  Mdi mdi_max_;
  // PCR timing: the current MDI interval and the last complete one.
  PcrInterval pcr_window_;
  PcrInterval pcr_last_;
};

// A clock for file input: the time of each packet from the PCRs of the first PID that
// carries one, interpolated between PCRs from the byte position and the rate measured
// between the last two PCRs. Starts at 0 on the first PCR (packets before it get 0, or a
// time from `nominal_bps` when given); never goes backwards; a PCR discontinuity (flagged,
// backwards, or far from the extrapolated time) continues the time smoothly.
class PcrClock {
 public:
  explicit PcrClock(std::uint64_t nominal_bps = 0) : rate_bps_(static_cast<double>(nominal_bps)) {}

  // The time of this packet in ns. Packets must come in stream order.
  std::uint64_t push(const TsPacket& packet);

  [[nodiscard]] std::uint16_t pid() const { return pid_; }
  [[nodiscard]] double rate_bps() const { return rate_bps_; }
  [[nodiscard]] std::uint64_t discontinuities() const { return discontinuities_; }

 private:
  [[nodiscard]] std::uint64_t extrapolate() const;

  std::uint16_t pid_ = kNullPid;    // PID whose PCRs drive the clock
  bool anchored_ = false;
  std::uint64_t pos_ = 0;           // bytes before the current packet
  std::uint64_t origin_ns_ = 0;     // time at the origin PCR
  std::uint64_t origin_pcr_ticks_ = 0;  // 27 MHz ticks from the origin PCR to the anchor PCR
  std::uint64_t anchor_pcr_ = 0;    // last PCR value
  std::uint64_t anchor_ns_ = 0;     // its time
  std::uint64_t anchor_pos_ = 0;    // its byte position
  double rate_bps_ = 0;
  std::uint64_t last_ns_ = 0;
  std::uint64_t discontinuities_ = 0;
};

}  // namespace twincast::mpegts
