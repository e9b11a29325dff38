// The remux engine: one output transport stream built from the services of one or
// more inputs.
//
//  - MPTS -> SPTS: one output service taken from a multi-program input; only its PIDs
//    pass, PAT/PMT (and SDT/NIT when enabled) are regenerated.
//  - SPTS... -> MPTS: several inputs, one service each; colliding PIDs are remapped,
//    service ids and logical channel numbers assigned, PAT/PMT/SDT/NIT regenerated.
//  - Per-service PID rules: drop a PID, or move it to another PID.
//  - Scrambled services: the ECM PIDs the PMTs name are carried, and the inputs' CATs
//    become the output CAT, their EMM PIDs carried (remapped on collision like streams).
//  - Output continuity counters are the engine's own, per output PID: an output never
//    shows a CC error caused by remapping, by table changes or by an input switch.
//    After switch_source() a service's PIDs resume only at a payload unit start (video
//    at a random access point, so decoders restart on a keyframe); the
//    first PCR of the new source carries the discontinuity_indicator (and so does the
//    first packet of other PIDs when it has an adaptation field), so receivers re-lock
//    to the new timeline.
//
// push() never allocates, throws or logs; the tables are rebuilt (allocating) only when
// an input's PSI changes or the configuration does.
#pragma once

#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/program.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/psi_tables.hpp"

namespace twincast::mpegts {

struct PidRule {
  std::uint16_t from = 0;   // source PID
  bool drop = false;        // drop it, or...
  std::uint16_t to = 0;     // ...carry it on this output PID
  friend bool operator==(const PidRule&, const PidRule&) = default;
};

struct RemuxServiceConfig {
  std::size_t input = 0;                 // index of the input the service comes from
  std::uint16_t source_service_id = 0;   // program_number in that input; 0 = its first service
  std::uint16_t service_id = 0;          // output program_number; 0 = keep the source's
  std::uint16_t pmt_pid = 0;             // output PMT PID; 0 = keep the source's (remapped on collision)
  std::uint16_t lcn = 0;                 // logical channel number in the NIT; 0 = none
  std::string name;                      // SDT service name; empty = the source's SDT name
  std::string provider;                  // SDT provider; empty = the source's
  std::vector<PidRule> rules;
};

struct RemuxConfig {
  std::size_t n_inputs = 1;
  std::uint16_t transport_stream_id = 1;
  std::uint16_t original_network_id = 1;
  std::uint16_t network_id = 1;
  std::string network_name = "twincast";
  bool sdt = true;
  bool nit = false;
  std::uint64_t psi_interval_ns = 100'000'000;   // PAT and PMTs
  std::uint64_t si_interval_ns = 1'000'000'000;  // SDT and NIT
  std::vector<RemuxServiceConfig> services;
};

class Remuxer {
 public:
  static constexpr std::uint16_t kUnmapped = 0xFFFF;
  // After a switch, video waits this long at most for a random_access_indicator.
  static constexpr std::uint64_t kMaxKeyframeWaitNs = 1'000'000'000;

  struct Stats {
    std::uint64_t packets_in = 0;
    std::uint64_t packets_out = 0;
    std::uint64_t psi_packets_out = 0;
    std::uint64_t dropped_unmapped = 0;   // PIDs no output service carries (or not yet known)
    std::uint64_t dropped_rule = 0;       // dropped by a PID rule
    std::uint64_t dropped_resync = 0;     // waiting for a unit start after a switch
    std::uint64_t dropped_sync = 0;       // a corrupted sync byte (TR 101 290 Sync_byte_error)
    std::uint64_t remapped_pids = 0;      // output PIDs that differ from their source PID (current maps)
    std::uint64_t table_rebuilds = 0;
    std::uint64_t discontinuities_marked = 0;  // after a switch or reload, and timeline jumps the source did not flag
    std::uint64_t eit_sections_out = 0;        // EIT present/following and schedule sections carried
    std::uint64_t eit_dropped = 0;             // ...and not carried: the EIT queue was full
  };

  // Throws std::invalid_argument when the configuration is inconsistent (an input index
  // out of range, duplicate output service ids or PMT PIDs, a rule onto a reserved PID).
  explicit Remuxer(RemuxConfig config);
  ~Remuxer();
  Remuxer(const Remuxer&) = delete;
  Remuxer& operator=(const Remuxer&) = delete;

  // The most packets one push() can write (one packet plus a full round of tables).
  [[nodiscard]] std::size_t max_output_per_push() const { return max_out_; }

  // Takes one packet of input `input` at time `now_ns` and writes 0..max_output_per_push()
  // packets into `out`, which must have room for max_output_per_push(). Returns the count.
  std::size_t push(std::size_t input, const TsPacket& packet, std::uint64_t now_ns, std::span<TsPacket> out);
  // The same for several packets arriving together, in order: `out` must have room for
  // packets.size() * max_output_per_push(). One call instead of one per packet.
  std::size_t push(std::size_t input, std::span<const TsPacket> packets, std::uint64_t now_ns, std::span<TsPacket> out);

  // The service(s) fed by `input` switch to a new source (failover): restart PSI
  // learning for that input, resume each PID at a unit start, mark the discontinuity.
  void switch_source(std::size_t input);

  // Takes over the output of `previous`, an engine that fed the same receivers until now
  // (a channel rebuilt by a reload): every output PID's continuity counter goes on from
  // where `previous` left it, the PIDs it carried resume at a unit start (video at a
  // random access point) with the discontinuity_indicator, as after switch_source(),
  // and the tables it sent (PAT, PMTs by PID, SDT, NIT) continue their counters with the
  // next version number (a NIT it sent goes on, even if this configuration has none).
  // Everything `previous` wrote is taken to reach the receivers (the data plane's new
  // pacers send what the old ones still held). Call before the first push(). It copies
  // the source services `previous` had learnt (allocating, once per reload), so that
  // while the inputs are learnt again one after the other, the tables keep listing the
  // services not learnt yet as they were on air (their packets wait until they are).
  // The services here that `previous` had on air keep their output PIDs, PMT PID and
  // service id as they are learnt (whatever order the inputs arrive in): `previous_input`
  // gives, for each input here, the input of `previous` fed by the same source
  // (kNoPreviousInput: none); empty: input i was previous's input i.
  static constexpr std::size_t kNoPreviousInput = ~std::size_t{0};
  void continue_from(const Remuxer& previous, std::span<const std::size_t> previous_input = {});

  // Output service `service` (its place in RemuxConfig::services) is renamed: its SDT name
  // and provider and its NIT logical channel number become these (empty: the source's, as
  // in the configuration), and with `nit` the NIT is sent or not from now on, except that a
  // NIT once sent goes on (without the number, so receivers that saw it drop it). The
  // tables whose content changes go out before the next media packet with their next
  // version; the streams, their PIDs and continuity counters go on untouched. Between
  // pushes, on the owning thread; it rebuilds the tables (allocates, as a change of an
  // input's tables does).
  void describe(std::size_t service, const std::string& name, const std::string& provider, std::uint16_t lcn,
                std::optional<bool> nit = std::nullopt);

  // The output program model (what the generated tables say).
  [[nodiscard]] const ProgramModel& output_model() const { return out_model_; }
  // Output PID for a source PID of an input, or kUnmapped.
  [[nodiscard]] std::uint16_t output_pid(std::size_t input, std::uint16_t source_pid) const;
  [[nodiscard]] const Stats& stats() const { return stats_; }
  [[nodiscard]] const PsiDecoder& input_psi(std::size_t input) const { return *inputs_[input]->psi; }

 private:
  struct Input;
  // An input's EIT sections (from its PsiDecoder) into the engine.
  struct EitTap final : SectionHandler {
    Remuxer* remux = nullptr;
    std::size_t input = 0;
    void on_section(std::uint16_t pid, std::span<const std::uint8_t> section, bool crc_ok) override;
  };
  [[gnu::always_inline]] inline std::size_t push_one(Input& in, const TsPacket& packet, std::uint64_t now_ns,
                                                     std::span<TsPacket> out);
  struct Input {
    std::unique_ptr<PsiDecoder> psi;
    std::uint64_t seen_generation = ~std::uint64_t{0};
    std::array<std::uint16_t, kPidCount> map{};       // source PID -> output PID / kUnmapped
    // The map of the engine continue_from() took over from: what its services had on air,
    // kept by a service learnt here for the first time.
    std::array<std::uint16_t, kPidCount> inherited_map{};
    std::array<std::uint8_t, kPidCount> last_cc{};    // 0x10 = nothing seen yet
    // A fingerprint of the last payload packet of each PID (all but its counter and any
    // PCR, sampled: fingerprint() in remux.cpp), so a repeated counter is a duplicate only
    // when the packet repeats too.
    std::array<std::uint64_t, kPidCount> last_fp{};
    // psi->is_psi_pid() of every PID, copied when the PSI changes (generation) or resets,
    // so a media packet costs a bit test rather than a call into the decoder.
    std::bitset<kPidCount> psi_pids;
    // The last CAT learnt from this input (kept while a switched source is relearnt).
    std::optional<std::vector<Descriptor>> cat;
    // This engine has mapped the EMM PIDs of `cat` (until then, those the engine
    // continue_from() took over from had on air are kept, as for a service not on air yet).
    bool emm_on_air = false;
    // Source PIDs that were EMM PIDs of the engine continue_from() took over from.
    std::bitset<kPidCount> inherited_emm;
    // Its services are in the tables as the engine continue_from() took over from had them,
    // but none is learnt here yet: its packets wait (map unmapped) until one is.
    bool held = false;
    // switch_source(): the SDTs its decoder had decoded then. Until it decodes another, the
    // services it feeds keep the name, provider and type the old source's SDT gave them
    // (the new source's PMT comes first: an SDT without them, then one with them again,
    // would be two new versions for the same program).
    std::optional<std::uint64_t> sdts_at_switch;
    EitTap eit_tap;
  };
  struct OutPid {
    std::uint8_t cc = 0x0F;        // last CC written (so the first is 0)
    bool wait_unit_start = false;  // after a switch: drop until payload_unit_start
    bool mark_discontinuity = false;
    bool carries_pcr = false;      // the PCR PID of an output service
    bool is_video = false;         // resumes at a random access point after a switch
    bool have_pcr = false;         // carries_pcr: last_pcr holds the last PCR sent
    std::uint64_t wait_since_ns = 0;
    std::uint64_t last_pcr = 0;
  };

  void rebuild();
  std::size_t emit_tables(std::uint64_t now_ns, std::span<TsPacket> out);
  void tick_table_clock(const TsPacket& packet, std::uint16_t out_pid, std::uint64_t now_ns);
  // The SDT's EIT flags of services whose EIT stopped coming (kEitPfTimeoutNs,
  // kEitScheduleTimeoutNs) are cleared; true when one was.
  bool expire_eit_flags(std::uint64_t now_ns);
  // EIT actual present/following (table 0x4E) and schedule (0x50..0x5F) of an output
  // service's source service: queued with the output's service id, transport_stream_id and
  // original_network_id, and sent on PID 0x12 at most kEitPacketsPerPush packets per push.
  // Schedule sections take at most half the queue, so a schedule flood never crowds out
  // now/next.
  void take_eit(std::size_t input, std::span<const std::uint8_t> section);
  std::size_t emit_eit(std::span<TsPacket> out);
  static constexpr std::size_t kEitPacketsPerPush = 2;
  static constexpr std::size_t kEitQueueBytes = 16384;  // a power of two
  // The EIT sub_tables of a service carried: p/f (slot 0) and schedule 0x50..0x5F (slots 1..16).
  static constexpr std::size_t kEitSubTables = 17;
  // A service's EIT p/f that has not come for this long is gone (TR 101 290's EIT_error
  // limit is 2 s; an input switch or a short outage stays well inside): the SDT stops
  // announcing it, so set-top boxes stop waiting for a now/next that a backup without EIT
  // never sends. The schedule's limit is 10 s per section for the next 8 days (ETSI TS 101
  // 211); beyond 60 s it is gone.
  static constexpr std::uint64_t kEitPfTimeoutNs = 10'000'000'000;
  static constexpr std::uint64_t kEitScheduleTimeoutNs = 60'000'000'000;
  using EitVersions = std::array<std::uint8_t, kEitSubTables>;
  static void copy_psi_pids(Input& in);

  struct InheritedTable {
    std::uint16_t pid = 0;
    std::uint8_t version = 0;
    std::uint8_t cc = 0;
  };

  RemuxConfig config_;
  // continue_from(): PAT, SDT, NIT and PMT states, applied to a carousel on that PID when
  // it gets its first content (the PMTs' PIDs are known only once the PSI is learnt).
  std::vector<InheritedTable> inherited_tables_;
  // Output PIDs any input was ever mapped onto (here or in the engines continue_from()
  // took over from): what continue_from() carries, without walking all 8192 PIDs.
  std::array<std::uint64_t, kPidCount / 64> used_out_{};  // bit pid % 64 of word pid / 64
  void resume_table(TableCarousel& table) const;
  std::vector<std::unique_ptr<Input>> inputs_;
  std::array<OutPid, kPidCount> out_{};
  ProgramModel out_model_;
  TableCarousel pat_{kPatPid};
  TableCarousel cat_{kCatPid};
  std::vector<TableCarousel> pmts_;                    // one per configured service
  std::vector<std::optional<Service>> snapshots_;      // last complete source service, per configured service
  std::vector<bool> learnt_;                           // snapshots_[k] came from this engine's input
  // continue_from(): the previous engine's source service, per configured service; it joins
  // snapshots_ (so the tables keep the service) once another service is learnt here.
  std::vector<std::optional<Service>> inherited_snapshots_;
  std::vector<std::uint16_t> last_sid_;                // output service id given last, per configured service (0: none)
  std::vector<std::uint16_t> inherited_pmt_;           // PMT PID the previous engine gave the service (0: none)
  TableCarousel sdt_{kSdtPid};
  TableCarousel nit_{kNitPid};
  std::uint64_t next_psi_ns_ = 0;
  std::uint64_t next_si_ns_ = 0;
  // The clock the tables' intervals are kept on (tick_table_clock()): the stream's own time
  // from the PCRs of the first service's PCR PID (clock_pid_, an output PID), arrival time
  // where there are none.
  std::uint64_t clock_ns_ = 0;
  std::uint64_t clock_arrival_ns_ = 0;  // arrival time clock_ns_ last moved at (0: not started)
  std::uint64_t clock_pcr_ = 0;         // the last PCR it moved on
  std::uint64_t clock_pcr_ns_ = 0;      // and when that PCR arrived
  std::uint64_t clock_lag_ns_ = 0;      // how far the PCRs fell behind arrival (at most kClockMaxLagNs)
  std::uint16_t clock_pid_ = kNullPid;
  bool clock_on_pcr_ = false;  // following clock_pid_'s PCRs (else arrival time)
  // emit_tables() has nothing to send while the table clock is in [quiet_from_ns_, quiet_until_ns_)
  // and no table changed (recomputed by every emit_tables()).
  std::uint64_t quiet_from_ns_ = 0;
  std::uint64_t quiet_until_ns_ = 0;
  bool tables_ready_ = false;
  bool nit_on_air_ = false;  // receivers saw a NIT (from here or an engine continue_from() took over from)
  bool cat_inherited_ = false;  // the engine continue_from() took over from (or one before it) had a CAT on air
  bool tables_due_ = false;  // tables changed: send them before the next media packet
  // EIT: per configured service, whether its p/f and its schedule sections were carried
  // (the SDT says so), and a ring of sections waiting to go out ([2-byte length][section] each).
  std::vector<bool> eit_pf_, eit_sched_;
  // When each service's p/f and schedule were last carried (0: not yet timed: a flag that
  // continue_from() carried starts its clock at the next SDT).
  std::vector<std::uint64_t> eit_pf_seen_ns_, eit_sched_seen_ns_;
  std::uint64_t now_ns_ = 0;  // the time of the packet being pushed (for take_eit)
  // Per configured service and EIT sub_table: the version_number it goes out with (0xFF:
  // none yet), and the source's (0xFF: unknown, after a switch) and source service id it
  // came from, so a new source's sub_table never reuses a version under which other content
  // went out.
  std::vector<EitVersions> eit_out_version_, eit_src_version_;
  std::vector<std::array<std::uint16_t, kEitSubTables>> eit_src_sid_;
  bool eit_sdt_due_ = false;
  std::array<std::uint8_t, kEitQueueBytes> eit_q_{};
  std::size_t eit_head_ = 0;  // index of the first queued section's length
  std::size_t eit_len_ = 0;   // bytes queued
  std::size_t eit_pos_ = 0;   // bytes of the first section sent already
  std::size_t max_out_ = 1;
  Stats stats_;
};

}  // namespace twincast::mpegts
