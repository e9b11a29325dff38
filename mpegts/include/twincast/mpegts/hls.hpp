// HLS (RFC 8216) for MPEG-TS: segment cutting and playlist text.
//
// Segmenter is fed one program's transport stream (an SPTS, as the remux hands it to the
// OTT side) and cuts it into segments that each decode alone:
//
//   * a segment starts with the latest PAT and PMT packets seen (copied as they were,
//     continuity counters included), then the packets from the start of the PES holding a
//     random access point (RAP): an H.264 IDR / I picture, an HEVC IRAP, an MPEG-2 I picture
//     on the video PID; for a program without video, any PES start of the first audio PID;
//   * it closes at the first RAP at or after `target_duration_s` from its own first RAP
//     (measured on the video PTS, falling back to the PCR, then to the wall clock), so with
//     a GOP of 1 s and a target of 2 s every segment is 2 s long;
//   * a discontinuity closes it at once: the `discontinuity` argument of push(), a jump of
//     the anchor stream's DTS or of the PCR backwards or more than 10 s forwards, or a PMT
//     change of the video/anchor PID or codec. The next segment (which again starts at a RAP)
//     carries `discontinuity = true`, and the one after it a discontinuity sequence one
//     higher (see Segment::discontinuity_sequence);
//   * packets before the first RAP (of the stream, or after a discontinuity) are dropped and
//     counted; so are packets without a sync byte;
//   * no RAP for `max_duration_s` (a stream with very long GOPs) cuts at the next PES start
//     of the anchor stream; that segment has `starts_with_keyframe = false` (unless that PES
//     turns out to hold a RAP). Time runs on across a hole in the input smaller than the
//     jump above, so a segment may last more than 10 s. A segment that
//     grows past `max_segment_bytes` is closed where it stands and the next waits for a RAP.
//
// Segments leave through the sink given at construction, moved out (the bytes are never
// copied after they are built). A segment is delivered when the next one starts (its
// duration is first PTS of the next - its first PTS) or when flush() / a discontinuity
// closes it (then the duration is the best estimate: last PTS + one frame - first PTS).
//
// The Segmenter is for one thread (the packager). It allocates as segments grow and when
// the PSI changes; push() costs the access-unit scan of the video/audio packets plus a
// 188-byte append per packet: ~20 ns/packet in chunks of 7 (40-55 with the 2 cores busy;
// Release, g++ 12, hls_test CostPerPacket over h264_aac.ts, PSI, scanning and segment
// delivery included). Once constructed it throws nothing of its own (std::bad_alloc and
// the sink's exceptions pass through).
//
// SCTE-35 (see scte35.hpp for what is decoded): the Segmenter follows every PMT stream of
// stream_type 0x86 of its program, reassembles its splice_info_sections and turns
//   * splice_insert with out_of_network_indicator 1 / 0 into an out / in cue of event
//     key "splice-<splice_event_id>",
//   * time_signal whose segmentation_descriptor(s) have a break start / end
//     segmentation_type_id (scte35::segmentation_direction) into one out / in cue per
//     descriptor, of key "seg-<segmentation_event_id>-<start type id, 2 hex digits>" (a
//     start and its end share it);
// a section repeating a cue already pending or among the last kRecentCues attached (same
// key, out / in, and splice point as signalled; for an immediate cue, key and out / in,
// arriving within kImmediateRepeatMs of the previous copy) is ignored and counted
// (SegmenterStats::cues_repeated): encoders send a splice_insert / time_signal several
// times before its splice point, and one event must give one DATERANGE (RFC 8216
// 4.3.2.7); the same key with another splice point (or an immediate one later) is a new
// cue; cancels remove the pending cues of the event; splice_null, splice_schedule, other
// commands and time_signals without a break descriptor are counted and ignored; sections
// with a bad CRC, encrypted or malformed ones are counted and ignored.
//   Encoders reuse event IDs (a small counter cycling, or one ID for every break), and
// RFC 8216 4.3.2.7 requires two DATERANGE tags with one ID to agree on every attribute, so
// the DATERANGE ID is the key plus the range's START-DATE in ms since the Unix epoch:
// "<key>-<ms>" (e.g. "splice-7-1795642003000"), given when the cue is attached. An out
// opens a range; the next in of the same key closes it and carries its ID (START-DATE =
// the out's); an in whose out was not seen (or already closed) gets an ID of its own from
// its own time. A second range of one key dated in the same millisecond while the first
// is still remembered (open, or among the last kRecentCues) gets "-2", "-3"... appended.
// IDs are ASCII letters, digits and '-' (RFC 8216 quoted-string safe), 31 characters at most
// for dates before the year 2287, plus the "-<n>" above when there is one.
//   A cue's splice point is its splice_time + pts_adjustment (90 kHz, on the PTS clock of
// the stream), or, for splice_immediate / a time_signal without a time, the PTS of the
// anchor's latest PES when the section arrived. Cues wait (at most kMaxPendingCues) until
// the segment holding their splice point is delivered: a segment starting at first_pts F
// lasting D gets the cues whose point is before F + D - 10 ms (a point already behind F:
// the cue arrived late, or just before a cut on its point; it goes to that segment at F).
// The cue's wall time is the segment's program_date_time_ms + (point - F) / 90 kHz, so a
// point inside a segment keeps its exact time in START-DATE while the tags precede that
// segment's URI. When the anchor has a RAP within 10 ms of a pending cue's point (an
// encoder conditioned for splicing, SCTE 172), the segment is cut there even before the
// target duration, so the cue starts a segment (SegmenterStats::splice_cuts); not with
// align_to_pts, whose renditions must all cut on the PTS grid alone. Cues still
// pending at a discontinuity belong to the old timeline and are dropped (counted); at an
// input switch signalled to push(), those whose splice point lies within 10 s of the new
// input's first anchor PTS wait on (a redundant input on the same clock, the usual
// failover pair, must not lose a cue announced before the switch).
// The SCTE-35 PID's packets stay in the segments, as the PMT copied at their start lists
// the PID (players ignore a stream_type 0x86 stream; tools can still read the cues).
//
// Playlist functions write RFC 8216 text; they throw nothing and validate nothing beyond
// what the format requires (quoted strings lose CR, LF and '"', which RFC 8216 4.2 forbids
// inside them and has no escape for).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/program.hpp"
#include "twincast/mpegts/scte35.hpp"

namespace twincast::mpegts::hls {

// ---------------------------------------------------------------------------------------
// Segmenter
// ---------------------------------------------------------------------------------------

struct SegmenterConfig {
  double target_duration_s = 2.0;     // 1..10 (constructor throws std::invalid_argument otherwise)
  std::uint64_t first_sequence = 0;   // sequence number of the first segment
  std::uint64_t first_discontinuity_sequence = 0;  // discontinuity sequence before any discontinuity
  std::uint16_t service_id = 0;       // program to follow; 0 = the first one in the PAT
  double max_duration_s = 0;          // force a cut without a RAP after this; 0 = 4 x target (>= target)
  std::size_t max_segment_bytes = 64u << 20;  // close a segment that grows past this (>= 64 KiB)
  // Aligned cuts (ABR renditions): close at the first RAP whose PTS reaches the next
  // multiple of the target duration on the 90 kHz PTS timeline (10 ms tolerance), rather
  // than the target from the segment's own start; renditions with key frames at the same
  // PTS then cut at the same PTS whenever each started. The first segment may be short.
  bool align_to_pts = false;
};

// One SCTE-35 splice point, as the Segmenter attaches it to a segment and
// media_playlist() renders it (EXT-X-DATERANGE per RFC 8216 4.3.2.7.1, plus the de-facto
// EXT-X-CUE-OUT / EXT-X-CUE-IN).
enum class CueKind : std::uint8_t { kOut, kIn };

struct Cue {
  CueKind kind = CueKind::kOut;
  // DATERANGE ID "<event key>-<START-DATE, ms since the Unix epoch>" (see Segmenter): one
  // per occurrence of an event, the same for an out and the in that closes it.
  std::string id;
  std::uint32_t event_id = 0;         // splice_event_id / segmentation_event_id
  std::uint8_t segmentation_type = 0; // segmentation_type_id; 0 for a splice_insert
  bool immediate = false;             // no splice_time: where the section arrived
  std::uint64_t pts = 0;              // splice point, 90 kHz, pts_adjustment applied
  std::int64_t wall_ms = 0;           // program time of the splice point (ms since the Unix epoch)
  // kIn: wall_ms of the matching out when this segmenter saw it (has_out), for the
  // DATERANGE's START-DATE and DURATION; otherwise START-DATE is wall_ms.
  bool has_out = false;
  std::int64_t out_wall_ms = 0;
  double planned_duration_s = 0;      // kOut: break_duration / segmentation_duration, 0 = none
  std::vector<std::uint8_t> section;  // the whole splice_info_section (SCTE35-OUT / -IN)
  friend bool operator==(const Cue&, const Cue&) = default;
};

struct Segment {
  std::uint64_t sequence = 0;
  double duration_s = 0;
  bool discontinuity = false;                // EXT-X-DISCONTINUITY before this segment
  // EXT-X-DISCONTINUITY-SEQUENCE for a playlist whose first entry is this segment: the
  // discontinuity tags on the segments before it (plus config first_discontinuity_sequence).
  // A segment with `discontinuity` has the same value as the one before it; the one after
  // it has one more.
  std::uint64_t discontinuity_sequence = 0;
  std::int64_t program_date_time_ms = 0;     // wall clock (ms since the Unix epoch) at its first packet
  bool has_first_pts = false;
  std::uint64_t first_pts = 0;               // 90 kHz, of its first RAP (video or audio anchor)
  bool starts_with_keyframe = false;         // false only for forced cuts (see max_duration_s)
  std::vector<std::uint8_t> bytes;           // whole TS packets, PAT + PMT first
  std::vector<Cue> cues{};                   // SCTE-35 splice points in it, in time order
};

struct AudioTrack {
  std::uint16_t pid = 0;
  Codec codec = Codec::kUnknown;
  std::string language;  // ISO 639-2 from the PMT, empty when none
  std::string codec_string;  // RFC 6381 ("mp4a.40.2"), empty until the first frame header
  std::uint8_t channels = 0;
  std::uint32_t sample_rate = 0;
};

// What the stream turned out to be, for the master playlist.
struct StreamInfo {
  bool has_program = false;           // PAT and PMT of the followed program seen
  std::uint16_t service_id = 0;
  std::uint16_t video_pid = 0;        // 0 when none
  Codec video_codec = Codec::kUnknown;
  std::string codecs;                 // CODECS: video then audio, e.g. "avc1.64001f,mp4a.40.2"
  std::uint16_t width = 0;            // RESOLUTION; 0 until the SPS / sequence header is seen
  std::uint16_t height = 0;
  double frame_rate = 0;              // FRAME-RATE; 0 when the stream does not say
  std::vector<AudioTrack> audio;      // in PMT order
  // Over the segments delivered so far: total bits / total duration, and the peak rate of
  // any run of consecutive segments lasting 0.5 .. 1.5 x target (RFC 8216 4.3.4.2);
  // a single longer segment counts alone. 0 before the first segment.
  std::uint64_t average_bandwidth_bps = 0;
  std::uint64_t peak_bandwidth_bps = 0;
};

// Why packets were dropped. X-macro: enum value, metric label.
#define TWINCAST_HLS_DROPS(X)            \
  X(kNoSync, "no_sync")                  \
  X(kNoProgram, "no_program")            \
  X(kBeforeRap, "before_rap")            \
  X(kOversize, "oversize")

enum class Drop : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_HLS_DROPS(TWINCAST_X)
#undef TWINCAST_X
  kCount
};

[[nodiscard]] constexpr std::string_view drop_name(Drop d) {
  switch (d) {
#define TWINCAST_X(e, s) \
  case Drop::e:          \
    return s;
    TWINCAST_HLS_DROPS(TWINCAST_X)
#undef TWINCAST_X
    case Drop::kCount:
      break;
  }
  return "unknown";
}

struct SegmenterStats {
  std::uint64_t packets = 0;            // pushed
  std::uint64_t null_packets = 0;       // PID 0x1FFF, left out of the segments (not a drop)
  std::uint64_t segments = 0;           // delivered
  std::uint64_t segment_bytes = 0;      // in delivered segments
  std::uint64_t discontinuities = 0;    // segments delivered with discontinuity = true
  std::uint64_t flagged_discontinuities = 0;  // push(..., discontinuity = true)
  std::uint64_t clock_jumps = 0;        // DTS or PCR jumps taken as discontinuities
  std::uint64_t program_changes = 0;    // PMT changes of the anchor PID / codec
  std::uint64_t forced_cuts = 0;        // cuts without a RAP (max_duration_s)
  std::uint64_t splice_cuts = 0;        // cuts before the target at a RAP on a cue's splice point
  // SCTE-35
  std::uint64_t scte35_sections = 0;    // complete sections on the program's 0x86 PIDs
  std::uint64_t scte35_refused = 0;     // bad CRC, encrypted, malformed (by reason below)
  std::array<std::uint64_t, static_cast<std::size_t>(scte35::Error::kCount)> scte35_errors{};
  std::uint64_t scte35_ignored = 0;     // splice_null, schedule, other commands, time_signal without a break
  std::uint64_t cues = 0;               // cues attached to delivered segments
  std::uint64_t cues_cancelled = 0;     // pending cues removed by a cancel
  std::uint64_t cues_dropped = 0;       // pending cues dropped (discontinuity, too many pending)
  std::uint64_t cues_repeated = 0;      // cues of an event already pending or attached lately, ignored
  std::array<std::uint64_t, static_cast<std::size_t>(Drop::kCount)> dropped{};  // packets, by Drop
  [[nodiscard]] std::uint64_t drops(Drop d) const { return dropped[static_cast<std::size_t>(d)]; }
  [[nodiscard]] std::uint64_t scte35_error(scte35::Error e) const { return scte35_errors[static_cast<std::size_t>(e)]; }
};

class Segmenter {
 public:
  using Sink = std::function<void(Segment&&)>;
  // Cues waiting for their segment; more are dropped (oldest first) and counted.
  static constexpr std::size_t kMaxPendingCues = 32;
  // Identities of the latest attached cues remembered to recognise repeats (ring).
  static constexpr std::size_t kRecentCues = 16;
  // An immediate cue (no splice time) repeats one of the same event and direction only if
  // it arrives (wall clock) within this of that one's latest copy; later, it is a new break.
  static constexpr std::int64_t kImmediateRepeatMs = 10'000;

  // Throws std::invalid_argument for a config out of range or an empty sink.
  Segmenter(SegmenterConfig config, Sink sink);
  ~Segmenter();
  Segmenter(const Segmenter&) = delete;
  Segmenter& operator=(const Segmenter&) = delete;

  // Packets in stream order. `wall_ms`: wall clock (ms since the Unix epoch) of these
  // packets; `discontinuity`: the input switched before the first of them (OttChunk's flag).
  // May call the sink (at most a few times) before it returns.
  void push(std::span<const TsPacket> packets, std::int64_t wall_ms, bool discontinuity = false);
  // Raw bytes: whole 188-byte packets, a trailing partial packet is ignored (not kept).
  void push_bytes(std::span<const std::uint8_t> bytes, std::int64_t wall_ms, bool discontinuity = false);

  // Closes and delivers the open segment (end of stream), duration estimated. The next
  // packets start a new segment at a RAP, without a discontinuity unless one is signalled.
  void flush();

  // Sequence number the next delivered segment will carry.
  [[nodiscard]] std::uint64_t next_sequence() const;
  // Built on each call (allocates): for the control side, not per packet.
  [[nodiscard]] StreamInfo stream_info() const;
  [[nodiscard]] const SegmenterStats& stats() const;
  [[nodiscard]] const SegmenterConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------
// Playlists
// ---------------------------------------------------------------------------------------

#define TWINCAST_HLS_PLAYLIST_TYPES(X) \
  X(kNone, "")                         \
  X(kEvent, "EVENT")                   \
  X(kVod, "VOD")

enum class PlaylistType : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_HLS_PLAYLIST_TYPES(TWINCAST_X)
#undef TWINCAST_X
};

struct MediaEntry {
  std::string uri;
  double duration_s = 0;
  bool discontinuity = false;
  std::int64_t program_date_time_ms = 0;  // ms since the Unix epoch
  std::vector<Cue> cues{};                 // rendered before the segment (see media_playlist)
  // AES-128 key URI of this segment ("" : not encrypted); the IV is the segment's media
  // sequence number (RFC 8216 5.2 default, no IV attribute).
  std::string key_uri{};
};

struct MediaPlaylist {
  // EXT-X-TARGETDURATION; raised to the largest EXTINF rounded to the nearest integer
  // when that is larger (RFC 8216 4.3.3.1 makes it a MUST), and to at least 1.
  std::uint32_t target_duration_s = 2;
  std::uint64_t media_sequence = 0;          // of entries.front()
  // RFC 8216 4.3.3.3: entries.front()'s Segment::discontinuity_sequence, as it is.
  std::uint64_t discontinuity_sequence = 0;
  PlaylistType type = PlaylistType::kNone;
  // Every listed segment starts with a keyframe (Segment::starts_with_keyframe).
  bool independent_segments = true;
  bool end_list = false;
  std::vector<MediaEntry> entries;
};

// #EXTM3U, #EXT-X-VERSION:3 (decimal EXTINF; the other tags used need version 1),
// TARGETDURATION, MEDIA-SEQUENCE, DISCONTINUITY-SEQUENCE, PLAYLIST-TYPE when set,
// INDEPENDENT-SEGMENTS when set, then per segment [#EXT-X-DISCONTINUITY],
// #EXT-X-PROGRAM-DATE-TIME:<ISO 8601 UTC, ms>, the segment's cues, #EXTINF:<d.ddd>, and
// the URI; ENDLIST when set. #EXT-X-KEY:METHOD=AES-128,URI="<key_uri>" goes before the
// first entry with a key_uri and whenever it changes (METHOD=NONE when it becomes empty),
// after the entry's DISCONTINUITY. Per cue (RFC 8216 4.3.2.7 / 4.3.2.7.1):
//   out: #EXT-X-DATERANGE:ID="<id>",START-DATE="<wall>"[,PLANNED-DURATION=<d.ddd>],SCTE35-OUT=0x<HEX>
//        #EXT-X-CUE-OUT:DURATION=<d.ddd>   (#EXT-X-CUE-OUT without a planned duration)
//   in:  #EXT-X-DATERANGE:ID="<id>",START-DATE="<out wall>",END-DATE="<wall>",DURATION=<d.ddd>,SCTE35-IN=0x<HEX>
//        (without a known out: ID, START-DATE="<wall>" and SCTE35-IN only)
//        #EXT-X-CUE-IN
// Lines end in "\n".
[[nodiscard]] std::string media_playlist(const MediaPlaylist& p);

struct AudioRendition {  // one EXT-X-MEDIA:TYPE=AUDIO
  std::string group_id = "audio";
  std::string name;             // NAME (required by RFC 8216); the language when empty
  std::string language;         // LANGUAGE, omitted when empty
  bool is_default = false;      // DEFAULT=YES
  bool autoselect = true;       // AUTOSELECT=YES (RFC: must be YES when DEFAULT is)
  std::uint8_t channels = 0;    // CHANNELS, omitted when 0
  std::string uri;              // URI, omitted when empty (audio muxed in the variant)
};

struct Variant {  // one EXT-X-STREAM-INF and its URI
  std::string uri;
  std::uint64_t bandwidth_bps = 0;          // BANDWIDTH (peak)
  std::uint64_t average_bandwidth_bps = 0;  // AVERAGE-BANDWIDTH, omitted when 0
  std::string codecs;                       // omitted when empty
  std::uint16_t width = 0;                  // RESOLUTION, omitted when 0
  std::uint16_t height = 0;
  double frame_rate = 0;                    // FRAME-RATE (3 decimals), omitted when 0
  std::string audio_group;                  // AUDIO, omitted when empty
};

struct MasterPlaylist {
  bool independent_segments = true;
  std::vector<AudioRendition> audio;
  std::vector<Variant> variants;
};

// #EXTM3U, INDEPENDENT-SEGMENTS when set, the EXT-X-MEDIA lines, then each EXT-X-STREAM-INF
// followed by its URI. No EXT-X-VERSION: nothing in it needs more than version 1 (RFC 8216 7).
[[nodiscard]] std::string master_playlist(const MasterPlaylist& p);

// A variant filled from what a Segmenter learnt (bandwidths, codecs, resolution, frame
// rate); BANDWIDTH falls back to the average, then to `fallback_bps`, before any segment.
[[nodiscard]] Variant variant_from(const StreamInfo& info, std::string uri, std::string audio_group = {},
                                   std::uint64_t fallback_bps = 0);

// "2026-11-25T21:40:00.123Z" (ISO 8601, UTC, milliseconds).
[[nodiscard]] std::string format_date_time(std::int64_t ms_since_epoch);
// A string as an RFC 8216 quoted-string: in double quotes, CR, LF and '"' removed.
[[nodiscard]] std::string quoted(std::string_view s);

}  // namespace twincast::mpegts::hls
