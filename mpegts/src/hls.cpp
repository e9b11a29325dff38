#include "twincast/mpegts/hls.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>

#include "twincast/mpegts/access_unit.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/section.hpp"

namespace twincast::mpegts::hls {

namespace {

constexpr std::size_t kNoOffset = std::numeric_limits<std::size_t>::max();
constexpr std::uint8_t kNoIndex = 0xFF;
constexpr std::uint64_t kJumpPtsTicks = 10 * kPtsHz;       // DTS jump: backwards or > 10 s forwards
constexpr std::uint64_t kJumpPcrTicks = 10 * kPcrHz;
constexpr std::uint64_t kCutToleranceTicks = kPtsHz / 100;  // a RAP 10 ms short of the target still cuts
constexpr std::size_t kRateRing = 32;                       // segments kept for the peak bitrate
constexpr std::uint64_t kHalfPtsWrap = kPtsWrap / 2;        // pts_delta() above this: behind, not ahead

// The packets of the latest complete PSI section run on one PID (a PAT or a PMT), kept
// as they came so a segment can start with them. Runs longer than kMax packets are not kept.
class PsiCapture {
 public:
  static constexpr std::size_t kMax = 8;

  void push(const TsPacket& p) {
    if (!p.has_payload() || p.transport_error()) return;
    const auto pl = p.payload();
    if (p.payload_unit_start()) {
      n_building_ = 0;
      active_ = false;
      if (pl.empty()) return;
      const std::size_t start = 1 + std::size_t{pl[0]};
      if (start + 3 > pl.size()) return;  // header cut: ignore this run
      need_ = 3 + (((std::size_t{pl[start + 1]} & 0x0F) << 8) | pl[start + 2]);
      got_ = pl.size() - start;
      building_[n_building_++] = p;
      active_ = true;
    } else {
      if (!active_) return;
      if (n_building_ == kMax) {
        active_ = false;
        return;
      }
      building_[n_building_++] = p;
      got_ += pl.size();
    }
    if (got_ >= need_) {
      complete_ = building_;
      n_complete_ = n_building_;
      active_ = false;
    }
  }
  void reset() {
    n_building_ = 0;
    n_complete_ = 0;
    active_ = false;
  }
  [[nodiscard]] bool ready() const { return n_complete_ > 0; }
  void append_to(std::vector<std::uint8_t>& out) const {
    for (std::size_t i = 0; i < n_complete_; ++i)
      out.insert(out.end(), complete_[i].bytes.begin(), complete_[i].bytes.end());
  }
  [[nodiscard]] std::size_t bytes() const { return n_complete_ * kPacketSize; }

 private:
  std::array<TsPacket, kMax> building_{};
  std::array<TsPacket, kMax> complete_{};
  std::size_t n_building_ = 0;
  std::size_t n_complete_ = 0;
  std::size_t need_ = 0;
  std::size_t got_ = 0;
  bool active_ = false;
};

struct Es {
  std::uint16_t pid = 0;
  Codec codec = Codec::kUnknown;
  StreamKind kind = StreamKind::kOther;
  std::string language;
  AccessUnitScanner scanner;
  Es(std::uint16_t p, Codec c, std::string lang) : pid(p), codec(c), kind(codec_kind(c)), language(std::move(lang)), scanner(c) {}
};

// What makes two sections the same splice event (an encoder repeats a section several
// times before its splice point): the event key, the direction and the splice point as
// signalled. An immediate cue has no point of its own: a copy repeats it only while the
// copies keep coming, each within Segmenter::kImmediateRepeatMs of the one before.
struct CueIdentity {
  std::string key;          // "splice-<event id>" / "seg-<event id>-<start type>"; empty: an unused slot
  std::string id;           // the DATERANGE ID it was given (attached cues only)
  CueKind kind = CueKind::kOut;
  bool immediate = false;
  std::uint64_t pts = 0;    // as signalled, pts_adjustment applied; 0 when immediate
  std::int64_t seen_ms = 0; // wall clock of the latest copy
};

[[nodiscard]] bool repeats(const CueIdentity& earlier, const CueIdentity& copy) {
  if (earlier.key.empty() || earlier.kind != copy.kind || earlier.immediate != copy.immediate || earlier.key != copy.key)
    return false;
  if (!copy.immediate) return earlier.pts == copy.pts;
  const std::int64_t gap = copy.seen_ms - earlier.seen_ms;
  return gap >= -Segmenter::kImmediateRepeatMs && gap <= Segmenter::kImmediateRepeatMs;
}

// A cue waiting for the segment that holds its splice point.
struct PendingCue {
  Cue cue;
  CueIdentity identity;
  bool has_pts = false;           // false: immediate, and no anchor PTS known yet
  std::int64_t arrival_wall_ms = 0;
};

struct ScteInput {
  std::uint16_t pid = 0;
  SectionAssembler assembler;
};

// An out cue delivered and not closed yet, for the ID, START-DATE and DURATION of its in.
struct OutSeen {
  std::string key;
  std::string id;
  std::int64_t wall_ms = 0;
};

std::string hex2(std::uint8_t v) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  return {kDigits[v >> 4], kDigits[v & 0x0F]};
}

const Service* find_program(const ProgramModel& m, std::uint16_t service_id) {
  if (service_id != 0) return m.find_service(service_id);
  for (const auto& s : m.services)
    if (s.service_id != 0) return &s;
  return nullptr;
}

}  // namespace

struct Segmenter::Impl {
  Impl(SegmenterConfig c, Sink s) : config(c), sink(std::move(s)) {
    pid_index.fill(kNoIndex);
    scte_index.fill(kNoIndex);
    cue_handler.impl = this;
    next_sequence = config.first_sequence;
    disc_seq = config.first_discontinuity_sequence;
    target_ticks = static_cast<std::uint64_t>(std::llround(config.target_duration_s * kPtsHz));
    max_ticks = static_cast<std::uint64_t>(std::llround(config.max_duration_s * kPtsHz));
  }

  // Per open segment (or the one being waited for).
  struct Open {
    bool discontinuity = false;
    std::uint64_t disc_seq = 0;
    std::int64_t pdt_ms = 0;
    bool has_first_pts = false;
    std::uint64_t first_pts = 0;
    bool has_start_pcr = false;
    std::uint64_t start_pcr = 0;
    bool keyframe = true;
    bool has_max_pts = false;
    std::uint64_t max_pts_off = 0;  // largest anchor PTS - first_pts seen in the segment
    std::uint64_t cut_ticks = 0;    // closes at a RAP this far from first_pts (align_to_pts: the next multiple)
  };

  SegmenterConfig config;
  Sink sink;
  SegmenterStats stats;
  std::uint64_t target_ticks = 0;
  std::uint64_t max_ticks = 0;

  PsiDecoder psi;
  PsiCapture pat;
  PsiCapture pmt;
  bool has_program = false;
  std::uint16_t service_id = 0;
  std::uint16_t pmt_pid = 0;
  std::uint16_t pcr_pid = kNullPid;
  std::vector<Es> es;
  std::array<std::uint8_t, kPidCount> pid_index{};
  std::size_t anchor = kNoOffset;  // index in es
  bool anchor_video = false;

  // SCTE-35: the program's stream_type 0x86 PIDs and the cues waiting for their segment.
  struct CueHandler final : SectionHandler {
    Impl* impl = nullptr;
    void on_section(std::uint16_t, std::span<const std::uint8_t> section, bool) override { impl->on_scte35(section); }
  };
  CueHandler cue_handler;
  std::vector<ScteInput> scte;
  std::array<std::uint8_t, kPidCount> scte_index{};
  std::vector<PendingCue> pending_cues;  // in arrival order
  std::vector<PendingCue> switched_cues; // pending at an input switch, until the new input's first anchor PTS
  std::vector<OutSeen> outs;             // newest last, at most Segmenter::kMaxPendingCues
  std::array<CueIdentity, Segmenter::kRecentCues> recent_cues{};  // attached lately, a ring
  std::size_t recent_next = 0;           // next slot of recent_cues to overwrite
  bool have_last_pts = false;            // the anchor's latest PES PTS (for immediate cues)
  std::uint64_t last_pts = 0;
  std::int64_t scte_wall_ms = 0;         // wall clock of the packet being assembled

  // Clocks.
  bool have_pcr = false;
  std::uint64_t last_pcr = 0;
  bool have_dts = false;
  std::uint64_t last_dts = 0;
  std::uint64_t dts_step = 0;  // last positive DTS step of the anchor, ticks

  // Segment under construction (open == true) or the bytes waiting for a RAP.
  bool open = false;
  std::vector<std::uint8_t> buf;
  std::size_t pes_off = kNoOffset;  // where the anchor's current PES starts in buf
  std::size_t own_off = kNoOffset;  // where the open segment's first PES starts (no cut there)
  std::int64_t pes_wall_ms = 0;
  bool pes_has_pcr = false;
  std::uint64_t pes_pcr = 0;
  Open seg;
  bool pending_discontinuity = false;
  bool had_segment = false;  // a segment has been opened since the start
  std::uint64_t disc_seq = 0;
  std::uint64_t next_sequence = 0;
  std::size_t last_size = 0;
  std::int64_t last_wall_ms = 0;

  // Bitrate.
  double total_bits = 0;
  double total_s = 0;
  std::array<std::pair<double, double>, kRateRing> ring{};  // bits, seconds
  std::size_t ring_n = 0;
  std::size_t ring_head = 0;
  double peak_bps = 0;

  void drop(Drop d, std::uint64_t n = 1) { stats.dropped[static_cast<std::size_t>(d)] += n; }
  [[nodiscard]] Drop waiting_reason() const { return (has_program && pat.ready() && pmt.ready()) ? Drop::kBeforeRap : Drop::kNoProgram; }

  void drop_pending() {
    if (!buf.empty()) drop(waiting_reason(), buf.size() / kPacketSize);
    buf.clear();
    pes_off = kNoOffset;
  }

  // --- program model ---
  void on_model() {
    const ProgramModel& m = psi.model();
    std::uint16_t new_pmt_pid = 0;
    const Service* s = find_program(m, config.service_id);
    if (s != nullptr) new_pmt_pid = s->pmt_pid;
    if (new_pmt_pid != pmt_pid) {
      pmt.reset();
      pmt_pid = new_pmt_pid;
    }
    const bool ready = s != nullptr && s->has_pmt;
    const std::uint16_t old_pid = anchor == kNoOffset ? 0 : es[anchor].pid;
    const Codec old_codec = anchor == kNoOffset ? Codec::kUnknown : es[anchor].codec;
    for (const auto& e : es) pid_index[e.pid] = kNoIndex;
    // New elementary-stream table, keeping the scanners (and what they learnt) of streams
    // that stay.
    std::vector<Es> next;
    if (ready) {
      for (const auto& e : s->streams) {
        const StreamKind k = codec_kind(e.codec);
        if (k != StreamKind::kVideo && k != StreamKind::kAudio) continue;
        if (next.size() >= kNoIndex) break;
        bool moved = false;
        for (auto& old : es) {
          if (old.pid == e.pid && old.codec == e.codec && old.pid != 0) {
            next.push_back(std::move(old));
            next.back().language = e.language;
            old.pid = 0;
            moved = true;
            break;
          }
        }
        if (!moved) next.emplace_back(e.pid, e.codec, e.language);
      }
    }
    std::size_t new_anchor = kNoOffset;
    bool new_anchor_video = false;
    for (std::size_t i = 0; i < next.size(); ++i)
      if (next[i].kind == StreamKind::kVideo) {
        new_anchor = i;
        new_anchor_video = true;
        break;
      }
    if (new_anchor == kNoOffset && !next.empty()) new_anchor = 0;
    const std::uint16_t new_pid = new_anchor == kNoOffset ? 0 : next[new_anchor].pid;
    const Codec new_codec = new_anchor == kNoOffset ? Codec::kUnknown : next[new_anchor].codec;
    const bool anchor_changed = old_pid != new_pid || old_codec != new_codec;

    es = std::move(next);
    for (std::size_t i = 0; i < es.size(); ++i) pid_index[es[i].pid] = static_cast<std::uint8_t>(i);
    learn_scte35_pids(ready ? s : nullptr);
    anchor = new_anchor;
    anchor_video = new_anchor_video;
    has_program = ready;
    service_id = s != nullptr ? s->service_id : 0;
    pcr_pid = s != nullptr ? s->pcr_pid : kNullPid;

    if (anchor_changed && old_pid != 0) {
      ++stats.program_changes;
      discontinuity_now();
    } else if (anchor_changed) {
      // First program: whatever was pending belonged to no known anchor.
      if (!open) drop_pending();
    }
  }

  // The SCTE-35 PIDs of the followed program; assemblers of PIDs that stay are kept.
  void learn_scte35_pids(const Service* s) {
    std::vector<ScteInput> next;
    if (s != nullptr) {
      for (const auto& e : s->streams) {
        if (e.stream_type != scte35::kStreamType || next.size() >= kNoIndex) continue;
        const std::uint8_t old = scte_index[e.pid];
        if (old != kNoIndex && scte[old].pid == e.pid) {
          next.push_back(std::move(scte[old]));
          scte[old].pid = kNullPid;
        } else {
          next.push_back(ScteInput{e.pid, {}});
        }
      }
    }
    for (const auto& x : scte)
      if (x.pid < kNullPid) scte_index[x.pid] = kNoIndex;
    for (const auto& x : next) scte_index[x.pid] = kNoIndex;
    scte = std::move(next);
    for (std::size_t i = 0; i < scte.size(); ++i) scte_index[scte[i].pid] = static_cast<std::uint8_t>(i);
  }

  // --- SCTE-35 cues ---
  void on_scte35(std::span<const std::uint8_t> section) {
    ++stats.scte35_sections;
    scte35::SpliceInfo si;
    const scte35::Error err = scte35::parse_splice_info(section, si);
    if (err != scte35::Error::kOk) {
      ++stats.scte35_refused;
      ++stats.scte35_errors[static_cast<std::size_t>(err)];
      return;
    }
    if (si.command_type == static_cast<std::uint8_t>(scte35::CommandType::kSpliceInsert)) {
      const scte35::SpliceInsert& in = si.insert;
      if (in.cancel) {
        cancel(in.event_id, false);
        return;
      }
      Cue c;
      c.kind = in.out_of_network ? CueKind::kOut : CueKind::kIn;
      c.event_id = in.event_id;
      c.immediate = in.immediate || !in.time.specified;
      c.pts = c.immediate ? 0 : scte35::adjusted_pts(in.time.pts, si.pts_adjustment);
      if (c.kind == CueKind::kOut && in.duration.present)
        c.planned_duration_s = static_cast<double>(in.duration.duration) / kPtsHz;
      c.section.assign(section.begin(), section.end());
      add_pending(std::move(c), "splice-" + std::to_string(in.event_id));
      return;
    }
    if (si.command_type == static_cast<std::uint8_t>(scte35::CommandType::kTimeSignal)) {
      bool any = false;
      for (const auto& d : si.segmentation) {
        if (d.cancel) {
          cancel(d.event_id, true);
          any = true;
          continue;
        }
        const scte35::Direction dir = scte35::segmentation_direction(d.type_id);
        if (dir == scte35::Direction::kNone) continue;
        any = true;
        // An end type is its start type + 1 (scte35.hpp), so a start and its end share the key.
        const auto start_type = static_cast<std::uint8_t>(dir == scte35::Direction::kOut ? d.type_id : d.type_id - 1);
        Cue c;
        c.kind = dir == scte35::Direction::kOut ? CueKind::kOut : CueKind::kIn;
        c.event_id = d.event_id;
        c.segmentation_type = d.type_id;
        c.immediate = !si.time_signal.specified;
        c.pts = c.immediate ? 0 : scte35::adjusted_pts(si.time_signal.pts, si.pts_adjustment);
        if (c.kind == CueKind::kOut && d.has_duration) c.planned_duration_s = static_cast<double>(d.duration) / kPtsHz;
        c.section.assign(section.begin(), section.end());
        add_pending(std::move(c), "seg-" + std::to_string(d.event_id) + "-" + hex2(start_type));
      }
      if (!any) ++stats.scte35_ignored;
      return;
    }
    ++stats.scte35_ignored;  // splice_null, splice_schedule, bandwidth_reservation, private, reserved
  }

  // Removes pending cues of a splice_insert (segmentation = false) or segmentation event,
  // those waiting at an input switch included (keep_switched_cues would revive them).
  void cancel(std::uint32_t event_id, bool segmentation) {
    const auto match = [&](const PendingCue& p) {
      return p.cue.event_id == event_id && (p.cue.segmentation_type != 0) == segmentation;
    };
    stats.cues_cancelled += std::erase_if(pending_cues, match) + std::erase_if(switched_cues, match);
  }

  // True when `copy` repeats an event pending, waiting at an input switch, or attached
  // lately (an encoder sends a section several times); that event's copy time is updated.
  bool note_repeat(const CueIdentity& copy) {
    const auto seen = [&](CueIdentity& k) {
      if (!repeats(k, copy)) return false;
      k.seen_ms = std::max(k.seen_ms, copy.seen_ms);
      return true;
    };
    for (auto& p : pending_cues)
      if (seen(p.identity)) return true;
    for (auto& p : switched_cues)
      if (seen(p.identity)) return true;
    return std::any_of(recent_cues.begin(), recent_cues.end(), seen);
  }

  // `key` names the event: "splice-<splice_event_id>" or "seg-<segmentation_event_id>-<start type>".
  void add_pending(Cue&& c, std::string key) {
    PendingCue p;
    p.identity = CueIdentity{std::move(key), {}, c.kind, c.immediate, c.immediate ? 0 : c.pts, scte_wall_ms};
    if (note_repeat(p.identity)) {
      ++stats.cues_repeated;
      return;
    }
    p.arrival_wall_ms = scte_wall_ms;
    p.has_pts = !c.immediate || have_last_pts;
    if (c.immediate && have_last_pts) c.pts = last_pts;  // the current point in the stream
    p.cue = std::move(c);
    if (pending_cues.size() >= Segmenter::kMaxPendingCues) {
      pending_cues.erase(pending_cues.begin());
      ++stats.cues_dropped;
    }
    pending_cues.push_back(std::move(p));
  }

  // A DATERANGE ID for a new range of event `key` starting at `wall_ms`: "<key>-<wall_ms>",
  // so an event ID an encoder reuses gives one ID per occurrence (RFC 8216 4.3.2.7: tags
  // with one ID must agree on START-DATE). Should one still be in use (two ranges of the
  // event dated in the same millisecond), "-2", "-3"... follow.
  [[nodiscard]] std::string new_cue_id(const std::string& key, std::int64_t wall_ms) const {
    const std::string base = key + "-" + std::to_string(wall_ms);
    const auto in_use = [&](const std::string& id) {
      return std::any_of(outs.begin(), outs.end(), [&](const OutSeen& o) { return o.id == id; }) ||
             std::any_of(recent_cues.begin(), recent_cues.end(), [&](const CueIdentity& k) { return k.id == id; });
    };
    std::string id = base;
    for (std::size_t n = 2; in_use(id); ++n) id = base + "-" + std::to_string(n);  // ends: outs and recent_cues are bounded
    return id;
  }

  // True when a pending cue's splice point is within the cut tolerance of `rap_pts` and
  // after the open segment's start: cutting there makes the cue start a segment.
  [[nodiscard]] bool splice_point_at(std::uint64_t rap_pts) const {
    if (!seg.has_first_pts) return false;
    for (const auto& p : pending_cues) {
      if (!p.has_pts || p.cue.immediate) continue;
      const std::uint64_t into = pts_delta(seg.first_pts, p.cue.pts);
      if (into <= kCutToleranceTicks || into >= kHalfPtsWrap) continue;
      const std::uint64_t d = std::min(pts_delta(p.cue.pts, rap_pts), pts_delta(rap_pts, p.cue.pts));
      if (d <= kCutToleranceTicks) return true;
    }
    return false;
  }

  // Moves the pending cues whose splice point falls in `s` (lasting `dur`) into s.cues.
  void attach_cues(Segment& s, double dur) {
    if (pending_cues.empty()) return;
    const std::int64_t dur_ms = std::llround(std::max(0.0, dur) * 1000.0);
    const auto end_ticks = static_cast<std::uint64_t>(std::llround(std::max(0.0, dur) * kPtsHz));
    std::vector<std::pair<std::uint64_t, PendingCue>> taken;  // offset into the segment (90 kHz), cue
    for (auto it = pending_cues.begin(); it != pending_cues.end();) {
      bool take = false;
      std::int64_t wall = s.program_date_time_ms;
      std::uint64_t off = 0;
      if (!it->has_pts) {
        take = true;
        wall = std::clamp(it->arrival_wall_ms, s.program_date_time_ms, s.program_date_time_ms + dur_ms);
        off = static_cast<std::uint64_t>(wall - s.program_date_time_ms) * (kPtsHz / 1000);
      } else if (s.has_first_pts) {
        const std::uint64_t ahead = pts_delta(s.first_pts, it->cue.pts);
        if (ahead >= kHalfPtsWrap) {
          take = true;  // behind the segment's start: late, it takes effect here
        } else if (ahead + kCutToleranceTicks < end_ticks) {
          take = true;
          off = ahead;
          wall = s.program_date_time_ms + static_cast<std::int64_t>((ahead + kPtsHz / 2000) / (kPtsHz / 1000));
        }
      }
      if (!take) {
        ++it;
        continue;
      }
      it->cue.wall_ms = wall;
      taken.emplace_back(off, std::move(*it));
      it = pending_cues.erase(it);
    }
    std::stable_sort(taken.begin(), taken.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& entry : taken) {
      Cue& c = entry.second.cue;
      CueIdentity& k = entry.second.identity;
      // An out opens a range named after its START-DATE; the in that follows closes that
      // range (same ID); an in without a known out opens and closes its own.
      if (c.kind == CueKind::kOut) {
        c.id = new_cue_id(k.key, c.wall_ms);
        std::erase_if(outs, [&](const OutSeen& o) { return o.key == k.key; });
        if (outs.size() >= Segmenter::kMaxPendingCues) outs.erase(outs.begin());
        outs.push_back(OutSeen{k.key, c.id, c.wall_ms});
      } else {
        const auto o = std::find_if(outs.begin(), outs.end(), [&](const OutSeen& x) { return x.key == k.key; });
        if (o != outs.end()) {
          c.id = o->id;
          c.has_out = true;
          c.out_wall_ms = o->wall_ms;
          outs.erase(o);
        } else {
          c.id = new_cue_id(k.key, c.wall_ms);
        }
      }
      k.id = c.id;
      recent_cues[recent_next] = std::move(k);
      recent_next = (recent_next + 1) % recent_cues.size();
      ++stats.cues;
      s.cues.push_back(std::move(c));
    }
  }

  // The first anchor PTS after an input switch: the cues pending at the switch whose
  // splice point lies within kJumpPtsTicks of it were on this clock too (a redundant input)
  // and wait on, before the cues that came since; the others were on the old input's
  // timeline and are dropped.
  void keep_switched_cues(std::uint64_t pts) {
    std::vector<PendingCue> kept;
    for (auto& p : switched_cues) {
      if (pts_delta(pts, p.cue.pts) <= kJumpPtsTicks || pts_delta(p.cue.pts, pts) <= kJumpPtsTicks) kept.push_back(std::move(p));
      else ++stats.cues_dropped;
    }
    switched_cues.clear();
    for (auto& p : pending_cues) kept.push_back(std::move(p));
    if (kept.size() > Segmenter::kMaxPendingCues) {
      const std::size_t over = kept.size() - Segmenter::kMaxPendingCues;
      kept.erase(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(over));
      stats.cues_dropped += over;
    }
    pending_cues = std::move(kept);
  }

  // --- discontinuities ---
  // Closes the open segment where it stands; the next one carries the discontinuity.
  // Pending cues are on the old timeline and dropped; at an input switch those with a
  // splice point wait for the new input's first anchor PTS (keep_switched_cues).
  void discontinuity_now(bool input_switch = false) {
    if (open) close_open();
    else drop_pending();
    if (had_segment) pending_discontinuity = true;
    stats.cues_dropped += switched_cues.size();
    switched_cues.clear();
    for (auto& p : pending_cues) {
      if (input_switch && p.has_pts) switched_cues.push_back(std::move(p));
      else ++stats.cues_dropped;
    }
    pending_cues.clear();
    have_last_pts = false;
    have_dts = false;
    have_pcr = false;
    dts_step = 0;
  }

  // --- segment assembly ---
  [[nodiscard]] bool psi_ready() const { return has_program && pat.ready() && pmt.ready() && anchor != kNoOffset; }

  std::vector<std::uint8_t> start_bytes(const std::uint8_t* tail, std::size_t tail_n) const {
    std::vector<std::uint8_t> b;
    b.reserve(std::max(last_size + last_size / 4, pat.bytes() + pmt.bytes() + tail_n + 64 * kPacketSize));
    pat.append_to(b);
    pmt.append_to(b);
    b.insert(b.end(), tail, tail + tail_n);
    return b;
  }

  void begin(bool keyframe, bool has_pts, std::uint64_t pts) {
    seg = Open{};
    seg.discontinuity = pending_discontinuity && had_segment;
    seg.disc_seq = disc_seq;
    if (seg.discontinuity) ++disc_seq;
    pending_discontinuity = false;
    seg.pdt_ms = pes_wall_ms;
    seg.has_first_pts = has_pts;
    seg.first_pts = pts;
    seg.cut_ticks = target_ticks;
    if (config.align_to_pts && has_pts) {
      // Up to the next multiple of the target after this RAP (one within the tolerance
      // short of a multiple counts as on it, as the cut test below allows).
      const std::uint64_t slot_end = ((pts + kCutToleranceTicks) / target_ticks + 1) * target_ticks;
      seg.cut_ticks = slot_end - pts;
    }
    seg.has_start_pcr = pes_has_pcr;
    seg.start_pcr = pes_pcr;
    seg.keyframe = keyframe;
    had_segment = true;
    open = true;
  }

  // The pending bytes from pes_off start the first segment.
  void open_from_pending(bool has_pts, std::uint64_t pts) {
    std::vector<std::uint8_t> b = start_bytes(buf.data() + pes_off, buf.size() - pes_off);
    const std::size_t dropped = pes_off / kPacketSize;
    if (dropped > 0) drop(Drop::kBeforeRap, dropped);
    buf = std::move(b);
    pes_off = pat.bytes() + pmt.bytes();
    own_off = pes_off;
    begin(true, has_pts, pts);
  }

  // Closes the open segment at pes_off; the bytes from there start the next.
  void cut(bool keyframe, bool has_pts, std::uint64_t pts) {
    std::vector<std::uint8_t> next = start_bytes(buf.data() + pes_off, buf.size() - pes_off);
    buf.resize(pes_off);
    double dur = 0;
    if (seg.has_first_pts && has_pts)
      dur = static_cast<double>(pts_delta(seg.first_pts, pts)) / kPtsHz;
    else if (seg.has_start_pcr && pes_has_pcr)
      dur = static_cast<double>(pcr_delta(seg.start_pcr, pes_pcr)) / kPcrHz;
    else
      dur = static_cast<double>(std::max<std::int64_t>(0, pes_wall_ms - seg.pdt_ms)) / 1000.0;
    deliver(dur);
    buf = std::move(next);
    pes_off = pat.bytes() + pmt.bytes();
    own_off = pes_off;
    begin(keyframe, has_pts, pts);
  }

  [[nodiscard]] double estimate_duration() const {
    if (seg.has_first_pts && seg.has_max_pts) {
      std::uint64_t frame = 0;
      if (anchor != kNoOffset) {
        const StreamParams& sp = es[anchor].scanner.params();
        if (anchor_video && sp.frame_rate_num > 0 && sp.frame_rate_den > 0)
          frame = kPtsHz * sp.frame_rate_den / sp.frame_rate_num;
      }
      if (frame == 0 && dts_step > 0 && dts_step < kPtsHz) frame = dts_step;
      return static_cast<double>(seg.max_pts_off + frame) / kPtsHz;
    }
    if (seg.has_start_pcr && have_pcr) return static_cast<double>(pcr_delta(seg.start_pcr, last_pcr)) / kPcrHz;
    return static_cast<double>(std::max<std::int64_t>(0, last_wall_ms - seg.pdt_ms)) / 1000.0;
  }

  void close_open() {
    deliver(estimate_duration());
    open = false;
    buf.clear();
    pes_off = kNoOffset;
  }

  void deliver(double dur) {
    Segment s;
    s.sequence = next_sequence++;
    s.duration_s = dur;
    s.discontinuity = seg.discontinuity;
    s.discontinuity_sequence = seg.disc_seq;
    s.program_date_time_ms = seg.pdt_ms;
    s.has_first_pts = seg.has_first_pts;
    s.first_pts = seg.first_pts;
    s.starts_with_keyframe = seg.keyframe;
    s.bytes = std::move(buf);
    buf = {};
    attach_cues(s, dur);
    last_size = s.bytes.size();
    ++stats.segments;
    stats.segment_bytes += s.bytes.size();
    if (s.discontinuity) ++stats.discontinuities;
    account_rate(static_cast<double>(s.bytes.size()) * 8.0, dur);
    sink(std::move(s));
  }

  void account_rate(double bits, double secs) {
    if (secs <= 0) return;
    total_bits += bits;
    total_s += secs;
    ring_head = (ring_head + kRateRing - 1) % kRateRing;
    ring[ring_head] = {bits, secs};
    ring_n = std::min(ring_n + 1, kRateRing);
    // The newest run of segments ending here that lasts at least half the target
    // (RFC 8216 4.3.4.2 looks at runs of 0.5 .. 1.5 x target).
    const double lo = 0.5 * config.target_duration_s;
    const double hi = 1.5 * config.target_duration_s;
    double b = 0;
    double t = 0;
    for (std::size_t i = 0; i < ring_n; ++i) {
      const auto& [rb, rs] = ring[(ring_head + i) % kRateRing];
      if (i > 0 && t + rs > hi) break;
      b += rb;
      t += rs;
      if (t >= lo) {
        peak_bps = std::max(peak_bps, b / t);
        break;
      }
    }
  }

  // --- per packet ---
  void append(const TsPacket& p) { buf.insert(buf.end(), p.bytes.begin(), p.bytes.end()); }

  void on_packet(const TsPacket& p, std::int64_t wall_ms) {
    ++stats.packets;
    if (!p.has_sync()) {
      drop(Drop::kNoSync);
      return;
    }
    const std::uint16_t pid = p.pid();
    if (pid == kNullPid) {
      ++stats.null_packets;
      return;
    }
    if (psi.is_psi_pid(pid)) {
      if (psi.push(p)) on_model();
      if (pid == kPatPid) pat.push(p);
      if (pid == pmt_pid && pmt_pid != 0) pmt.push(p);
    }
    if (const std::uint8_t si = scte_index[pid]; si != kNoIndex) {
      scte_wall_ms = wall_ms;
      scte[si].assembler.push(p, cue_handler);
    }
    if (pid == pcr_pid && p.has_pcr()) {
      const std::uint64_t pcr = p.pcr();
      if (have_pcr && pcr_delta(last_pcr, pcr) > kJumpPcrTicks) {
        ++stats.clock_jumps;
        discontinuity_now();
      }
      have_pcr = true;
      last_pcr = pcr;
    }

    const std::uint8_t idx = pid_index[pid];
    const bool is_anchor = idx != kNoIndex && idx == anchor;
    AccessUnitInfo info{};
    if (idx != kNoIndex) info = es[idx].scanner.push(p);

    if (!is_anchor) {
      if (open || pes_off != kNoOffset) append(p);
      else drop(waiting_reason());
      check_size();
      return;
    }

    if (info.pes_start && info.has_pts) {
      if (!switched_cues.empty()) keep_switched_cues(info.pts);
      if (have_dts) {
        const std::uint64_t step = pts_delta(last_dts, info.dts);
        if (step > kJumpPtsTicks) {
          ++stats.clock_jumps;
          discontinuity_now();
        } else if (step > 0) {
          dts_step = step;
        }
      }
      have_dts = true;
      last_dts = info.dts;
      have_last_pts = true;
      last_pts = info.pts;
      if (open && seg.has_first_pts) {
        const std::uint64_t off = pts_delta(seg.first_pts, info.pts);
        // Behind the first RAP (reordered) is more than half the wrap ahead; a segment may
        // span more than kJumpPtsTicks (a long GOP, a hole in the input under the jump limit).
        if (off < kHalfPtsWrap && (!seg.has_max_pts || off > seg.max_pts_off)) {
          seg.max_pts_off = off;
          seg.has_max_pts = true;
        }
      }
    }
    if (info.pes_start) {
      if (!open) drop_pending();
      pes_off = buf.size();
      pes_wall_ms = wall_ms;
      pes_has_pcr = have_pcr;
      pes_pcr = last_pcr;
    }
    if (open || pes_off != kNoOffset) append(p);
    else drop(waiting_reason());

    const bool rap = anchor_video ? info.keyframe : info.pes_start;
    const bool rap_has_pts = anchor_video ? info.keyframe_has_pts : info.has_pts;
    const std::uint64_t rap_pts = anchor_video ? info.keyframe_pts : info.pts;
    if (rap && pes_off != kNoOffset) {
      if (!open) {
        if (psi_ready()) open_from_pending(rap_has_pts, rap_pts);
      } else if (pes_off != own_off) {
        if (elapsed_ticks(rap_has_pts, rap_pts) + kCutToleranceTicks >= seg.cut_ticks) {
          cut(true, rap_has_pts, rap_pts);
        } else if (!config.align_to_pts && rap_has_pts && !pending_cues.empty() && splice_point_at(rap_pts)) {
          // Not when aligned: a rendition without the cue (a transcoded rung) would not cut
          // there, and the packager numbers the renditions' segments slot by slot.
          ++stats.splice_cuts;
          cut(true, rap_has_pts, rap_pts);
        }
      } else {
        // The segment's own first PES: a cut forced at its start (max_duration_s) before
        // its key frame's slice came (a packet or more after the PES header) starts with
        // a key frame after all.
        seg.keyframe = true;
      }
    } else if (info.pes_start && open && pes_off != own_off &&
               elapsed_ticks(info.has_pts, info.pts) >= max_ticks) {
      ++stats.forced_cuts;
      cut(false, info.has_pts, info.pts);
    }
    check_size();
  }

  // Time since the open segment's first RAP, in 90 kHz ticks: PTS, else PCR, else wall clock.
  [[nodiscard]] std::uint64_t elapsed_ticks(bool has_pts, std::uint64_t pts) const {
    if (has_pts && seg.has_first_pts) {
      // Behind the first RAP (reordered): not elapsed. Only a point more than half the wrap
      // ahead is behind: the clocks may advance by more than kJumpPtsTicks within one
      // segment (steps each under it), and that time has elapsed (else no cut would come).
      const std::uint64_t d = pts_delta(seg.first_pts, pts);
      return d >= kHalfPtsWrap ? 0 : d;
    }
    if (pes_has_pcr && seg.has_start_pcr) return pcr_delta(seg.start_pcr, pes_pcr) / 300;
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, pes_wall_ms - seg.pdt_ms)) * (kPtsHz / 1000);
  }

  void check_size() {
    if (buf.size() <= config.max_segment_bytes) return;
    if (open) {
      close_open();
    } else {
      drop(Drop::kOversize, buf.size() / kPacketSize);
      buf.clear();
      pes_off = kNoOffset;
    }
  }

  void push(std::span<const TsPacket> packets, std::int64_t wall_ms, bool discontinuity) {
    last_wall_ms = wall_ms;
    if (discontinuity) {
      ++stats.flagged_discontinuities;
      discontinuity_now(true);
      for (auto& e : es) e.scanner.reset();
      for (auto& x : scte) x.assembler.reset();
    }
    for (const auto& p : packets) on_packet(p, wall_ms);
  }
};

Segmenter::Segmenter(SegmenterConfig config, Sink sink) {
  if (!(config.target_duration_s >= 1.0 && config.target_duration_s <= 10.0))
    throw std::invalid_argument("hls: target_duration_s must be within 1..10");
  if (config.max_duration_s == 0) config.max_duration_s = 4 * config.target_duration_s;
  if (!(config.max_duration_s >= config.target_duration_s) || !std::isfinite(config.max_duration_s))
    throw std::invalid_argument("hls: max_duration_s must be at least target_duration_s");
  if (config.max_segment_bytes < (64u << 10)) throw std::invalid_argument("hls: max_segment_bytes must be at least 64 KiB");
  if (!sink) throw std::invalid_argument("hls: a segment sink is needed");
  impl_ = std::make_unique<Impl>(config, std::move(sink));
}

Segmenter::~Segmenter() = default;

void Segmenter::push(std::span<const TsPacket> packets, std::int64_t wall_ms, bool discontinuity) {
  impl_->push(packets, wall_ms, discontinuity);
}

void Segmenter::push_bytes(std::span<const std::uint8_t> bytes, std::int64_t wall_ms, bool discontinuity) {
  const std::size_t n = bytes.size() / kPacketSize;
  impl_->push({}, wall_ms, discontinuity);
  for (std::size_t i = 0; i < n; ++i) impl_->on_packet(TsPacket::view(bytes.data() + i * kPacketSize), wall_ms);
}

void Segmenter::flush() {
  if (impl_->open) impl_->close_open();
  else impl_->drop_pending();
}

std::uint64_t Segmenter::next_sequence() const { return impl_->next_sequence; }
const SegmenterStats& Segmenter::stats() const { return impl_->stats; }
const SegmenterConfig& Segmenter::config() const { return impl_->config; }

StreamInfo Segmenter::stream_info() const {
  const Impl& m = *impl_;
  StreamInfo info;
  info.has_program = m.has_program && m.pmt.ready();
  info.service_id = m.service_id;
  std::vector<StreamParams> known;
  for (const auto& e : m.es) {
    const StreamParams& sp = e.scanner.params();
    if (e.kind == StreamKind::kVideo && info.video_pid == 0) {
      info.video_pid = e.pid;
      info.video_codec = e.codec;
      if (e.scanner.params_known()) {
        info.width = sp.width;
        info.height = sp.height;
        if (sp.frame_rate_num > 0 && sp.frame_rate_den > 0)
          info.frame_rate = static_cast<double>(sp.frame_rate_num) / sp.frame_rate_den;
      }
    }
    if (e.kind == StreamKind::kAudio) {
      AudioTrack a;
      a.pid = e.pid;
      a.codec = e.codec;
      a.language = e.language;
      if (e.scanner.params_known()) {
        a.codec_string = sp.hls_codec();
        a.channels = sp.channels;
        a.sample_rate = sp.sample_rate;
      }
      info.audio.push_back(std::move(a));
    }
    if (e.scanner.params_known()) known.push_back(sp);
  }
  info.codecs = hls_codecs(known);
  if (m.total_s > 0) info.average_bandwidth_bps = static_cast<std::uint64_t>(std::llround(m.total_bits / m.total_s));
  info.peak_bandwidth_bps = static_cast<std::uint64_t>(std::llround(m.peak_bps));
  if (info.peak_bandwidth_bps < info.average_bandwidth_bps) info.peak_bandwidth_bps = info.average_bandwidth_bps;
  return info;
}

// ---------------------------------------------------------------------------------------
// Playlists
// ---------------------------------------------------------------------------------------

namespace {

std::string_view playlist_type_name(PlaylistType t) {
  switch (t) {
#define TWINCAST_X(e, s) \
  case PlaylistType::e:  \
    return s;
    TWINCAST_HLS_PLAYLIST_TYPES(TWINCAST_X)
#undef TWINCAST_X
  }
  return "";
}

// Milliseconds, rounded to the nearest, as the EXTINF text carries them.
std::int64_t duration_ms(double s) {
  if (!(s > 0) || !std::isfinite(s)) return 0;
  return std::llround(s * 1000.0);
}

void append_ms(std::string& out, std::int64_t ms) {
  char b[32];
  std::snprintf(b, sizeof b, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
  out += b;
}

void append_hex(std::string& out, std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  out += "0x";
  for (const std::uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0F];
  }
}

void append_cue(std::string& out, const Cue& c) {
  out += "#EXT-X-DATERANGE:ID=";
  out += quoted(c.id);
  const bool out_cue = c.kind == CueKind::kOut;
  // RFC 8216 4.3.2.7: tags with one ID must agree on every attribute they share, so an in
  // repeats its out's START-DATE and ends with END-DATE and DURATION (4.3.2.7.1).
  // END-DATE may not precede START-DATE: an in dated before its out (program dates are
  // arrival times, which can run slow or fast against the media clock) closes it at once.
  const bool closes = !out_cue && c.has_out;
  out += ",START-DATE=";
  out += quoted(format_date_time(closes ? c.out_wall_ms : c.wall_ms));
  if (closes) {
    const std::int64_t end = std::max(c.wall_ms, c.out_wall_ms);
    out += ",END-DATE=";
    out += quoted(format_date_time(end));
    out += ",DURATION=";
    append_ms(out, end - c.out_wall_ms);
  }
  const std::int64_t planned_ms = duration_ms(c.planned_duration_s);
  if (out_cue && planned_ms > 0) {
    out += ",PLANNED-DURATION=";
    append_ms(out, planned_ms);
  }
  out += out_cue ? ",SCTE35-OUT=" : ",SCTE35-IN=";
  append_hex(out, c.section);
  out += '\n';
  if (out_cue) {
    out += "#EXT-X-CUE-OUT";
    if (planned_ms > 0) {
      out += ":DURATION=";
      append_ms(out, planned_ms);
    }
    out += '\n';
  } else {
    out += "#EXT-X-CUE-IN\n";
  }
}

}  // namespace

std::string format_date_time(std::int64_t ms) {
  std::int64_t secs = ms / 1000;
  std::int64_t frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  const auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[48];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(frac));
  return b;
}

std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (const char c : s)
    if (c != '"' && c != '\r' && c != '\n') out += c;
  out += '"';
  return out;
}

std::string media_playlist(const MediaPlaylist& p) {
  std::int64_t target = std::max<std::int64_t>(1, p.target_duration_s);
  for (const auto& e : p.entries) {
    const std::int64_t ms = duration_ms(e.duration_s);
    target = std::max(target, (ms + 500) / 1000);  // nearest integer, halves up
  }
  std::string out;
  out.reserve(256 + p.entries.size() * 96);
  out += "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:";
  out += std::to_string(target);
  out += "\n#EXT-X-MEDIA-SEQUENCE:";
  out += std::to_string(p.media_sequence);
  out += "\n#EXT-X-DISCONTINUITY-SEQUENCE:";
  out += std::to_string(p.discontinuity_sequence);
  out += '\n';
  if (p.type != PlaylistType::kNone) {
    out += "#EXT-X-PLAYLIST-TYPE:";
    out += playlist_type_name(p.type);
    out += '\n';
  }
  if (p.independent_segments) out += "#EXT-X-INDEPENDENT-SEGMENTS\n";
  const std::string* key_uri = nullptr;  // of the previous entry
  for (const auto& e : p.entries) {
    if (e.discontinuity) out += "#EXT-X-DISCONTINUITY\n";
    if (key_uri == nullptr ? !e.key_uri.empty() : *key_uri != e.key_uri) {
      out += e.key_uri.empty() ? "#EXT-X-KEY:METHOD=NONE\n" : "#EXT-X-KEY:METHOD=AES-128,URI=" + quoted(e.key_uri) + "\n";
    }
    key_uri = &e.key_uri;
    out += "#EXT-X-PROGRAM-DATE-TIME:";
    out += format_date_time(e.program_date_time_ms);
    out += '\n';
    for (const auto& c : e.cues) append_cue(out, c);
    out += "#EXTINF:";
    append_ms(out, duration_ms(e.duration_s));
    out += ",\n";
    out += e.uri;
    out += '\n';
  }
  if (p.end_list) out += "#EXT-X-ENDLIST\n";
  return out;
}

std::string master_playlist(const MasterPlaylist& p) {
  std::string out = "#EXTM3U\n";
  if (p.independent_segments) out += "#EXT-X-INDEPENDENT-SEGMENTS\n";
  for (const auto& a : p.audio) {
    out += "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=";
    out += quoted(a.group_id);
    if (!a.language.empty()) {
      out += ",LANGUAGE=";
      out += quoted(a.language);
    }
    out += ",NAME=";
    out += quoted(a.name.empty() ? (a.language.empty() ? std::string("audio") : a.language) : a.name);
    out += a.is_default ? ",DEFAULT=YES" : ",DEFAULT=NO";
    out += (a.autoselect || a.is_default) ? ",AUTOSELECT=YES" : ",AUTOSELECT=NO";
    if (a.channels > 0) {
      out += ",CHANNELS=";
      out += quoted(std::to_string(a.channels));
    }
    if (!a.uri.empty()) {
      out += ",URI=";
      out += quoted(a.uri);
    }
    out += '\n';
  }
  for (const auto& v : p.variants) {
    out += "#EXT-X-STREAM-INF:BANDWIDTH=";
    out += std::to_string(v.bandwidth_bps);
    if (v.average_bandwidth_bps > 0) {
      out += ",AVERAGE-BANDWIDTH=";
      out += std::to_string(v.average_bandwidth_bps);
    }
    if (!v.codecs.empty()) {
      out += ",CODECS=";
      out += quoted(v.codecs);
    }
    if (v.width > 0 && v.height > 0) {
      out += ",RESOLUTION=";
      out += std::to_string(v.width);
      out += 'x';
      out += std::to_string(v.height);
    }
    if (v.frame_rate > 0 && std::isfinite(v.frame_rate)) {
      char b[32];
      std::snprintf(b, sizeof b, ",FRAME-RATE=%.3f", v.frame_rate);
      out += b;
    }
    if (!v.audio_group.empty()) {
      out += ",AUDIO=";
      out += quoted(v.audio_group);
    }
    out += '\n';
    out += v.uri;
    out += '\n';
  }
  return out;
}

Variant variant_from(const StreamInfo& info, std::string uri, std::string audio_group, std::uint64_t fallback_bps) {
  Variant v;
  v.uri = std::move(uri);
  v.bandwidth_bps = info.peak_bandwidth_bps;
  if (v.bandwidth_bps == 0) v.bandwidth_bps = info.average_bandwidth_bps;
  if (v.bandwidth_bps == 0) v.bandwidth_bps = fallback_bps;
  v.average_bandwidth_bps = info.average_bandwidth_bps;
  v.codecs = info.codecs;
  v.width = info.width;
  v.height = info.height;
  v.frame_rate = info.frame_rate;
  v.audio_group = std::move(audio_group);
  return v;
}

}  // namespace twincast::mpegts::hls
