// The HLS packager and its segment store (live window, DVR / timeshift / catch-up).
//
// One packager thread drains the data plane's OTT feed of every HLS channel (the SPSC
// ring dataplane::OttFeed, chunks of the channel's remuxed SPTS) into that channel's
// mpegts::hls::Segmenter. Finished segments go to the channel's store in memory; the live
// playlists are rendered once per new segment and served as they are. The store is the
// origin's HlsSource:
//
//   /hls/<id>/index.m3u8   master playlist: every rendition with segments (see ABR), each
//                          with BANDWIDTH and AVERAGE-BANDWIDTH measured on its segments,
//                          CODECS, RESOLUTION, FRAME-RATE, lowest bandwidth first (404 until
//                          the first segment)
//   /hls/<id>/live.m3u8    media playlist: the last window_segments segments (and older
//                          held ones while those last under 3 x TARGETDURATION, RFC 8216
//                          6.2.2), a PROGRAM-DATE-TIME on each, EXT-X-DISCONTINUITY after an
//                          input switch (the feed's mark) or a timestamp jump; TARGETDURATION
//                          segment_seconds, raised for good by a longer segment (every
//                          playlist of the channel, all tracks, carries one value: RFC 8216 6.2.4)
//   /hls/<id>/event.m3u8   live playlist of every segment the store holds (the DVR window),
//                          no PLAYLIST-TYPE (not EVENT: it loses its oldest segments as they
//                          are evicted, RFC 8216 4.3.3.5), no ENDLIST; rendered at most once
//                          per new segment
//   /hls/<id>/seg-<n>.ts   a segment: PAT, PMT, then from a key frame (decodes alone)
//
// ABR (PackagedChannel::renditions; each rendition a "track" with its own segmenter and
// store, the channel's own output the primary track):
//   /hls/<id>/live-<r>.m3u8, event-<r>.m3u8, seg-<r>-<n>.ts     rendition r (received: the
//                          feed of its hidden data-plane channel "<id>.<r>"; transcoded: the
//                          channel's Transcoder, fed the primary's bytes, one per channel,
//                          its CPU budget ott.transcode_threads shared by such channels)
//   /hls/<id>/audio-<pid>.m3u8, audio-<pid>-event.m3u8, audio-<pid>-<n>.ts   alternate audio:
//                          each audio PID of the primary's program after the first, cut from
//                          the primary's segments (PAT, a regenerated PMT of that PID alone
//                          without PCR, the PID's packets as they were), so it has the
//                          primary's numbers, durations and wall times.
// The master lists the alternates as EXT-X-MEDIA TYPE=AUDIO GROUP-ID="aud" with their ISO 639
// language and URI, DEFAULT=NO, AUTOSELECT=YES; the primary's first audio is the group's
// DEFAULT=YES entry without URI (muxed in every variant, RFC 8216 4.3.4.1), every variant
// carries AUDIO="aud", its CODECS gain the alternates' codecs and its bandwidths the largest
// alternate's (RFC 8216 4.3.4.2: a variant's rate includes the renditions it plays with).
// An alternate is listed while its newest segment is the primary's.
//   Alignment: a channel with renditions cuts every track with SegmenterConfig::align_to_pts
// (at the first key frame at or after each multiple of the target on the PTS timeline), so
// renditions with key frames at the same PTS cut at the same PTS. Sequence numbers: a
// track's first segment takes the number of its PTS slot (slot = PTS / target, counted from
// the channel's newest numbered segment of any track; the channel's first segment takes the
// channel's first number, see Numbers), then the track counts on by one, so the same time
// slot has the same number in every rendition however late one started. Each segmenter's
// first segment (from its first key frame to the first boundary: part of a slot another
// rendition holds whole) is not published. A transcoded segment takes the PROGRAM-DATE-TIME of the primary's segment of
// the same number (the encoder's delay would shift it otherwise). Limits: a rendition that
// loses a slot without a discontinuity (no key frame in it) stays one number behind until
// it restarts; after a discontinuity a track counts on by one as well.
//   Time ranges work on every media playlist; index.m3u8?start=&end= points each variant and
// alternate at its own playlist with the range and leaves out those with nothing in it.
// Memory: the channel's share of ott.memory_mb is split evenly among its tracks.
//
// Time ranges (catch-up, timeshift): live.m3u8?start=<t>&end=<t> lists the held segments
// whose PROGRAM-DATE-TIME is in [start, end); <t> is ISO 8601 UTC
// ("2026-11-25T21:40:00Z", optional fraction, "Z" or "+00:00"; ':' may be sent as %3A) or
// Unix epoch seconds ("1795556400", "1795556400.5"). Either bound may be left out (start:
// the oldest held segment; end: none). The playlist is
//   * VOD (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-ENDLIST) once the range is over: a held segment
//     starts at or after `end`, or `end` is more than 3 target durations in the past (a
//     stalled channel: what is held is all there will be);
//   * EVENT otherwise (`end` in the future or missing): it grows until the range is over.
// MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE are those of the first listed segment. Other
// query parameters are ignored. 404 (HlsSource has no 400): a malformed time, start >= end,
// or no held segment in the range (evicted, or not made yet). index.m3u8 with the same
// query points its variant at that playlist (live.m3u8?start=...&end=..., the times
// rewritten as ISO 8601 with milliseconds), and is 404 when the playlist would be.
//
// What is held: at least 2 x the segments live.m3u8 lists + 1 (RFC 8216 6.2.2: a segment that
// slid out of the live playlist stays available for its duration plus the playlist's) and, with ott.dvr_hours > 0, every segment that
// starts within dvr_hours of the newest segment's end; older ones are evicted (404). The
// channel's share of ott.memory_mb (memory_mb / channels) bounds it whichever is smaller:
// the oldest segments go first, so the held bytes never exceed the share (a single segment
// larger than the share is kept alone). Segment metadata (~100 bytes each) is not counted.
// Without ott.dvr_dir all of it is in memory.
//
// On disk (ott.dvr_dir set): only the newest window_segments segments of each track (and
// the one its segmenter is making) stay in memory. A segment that leaves the live window
// is written once, by the packager thread outside the channel's mutex, to
// <dvr_dir>/<channel>/<seg name>.ts (seg-<n>.ts, seg-<r>-<n>.ts, audio-<pid>-<n>.ts: the
// names the origin serves; the ciphertext for encrypting channels) through a ".tmp" name
// and a rename, then its memory is freed; it stays listed and servable: get() opens the
// file on the origin's thread, outside the mutex, checks it is the one written (a file
// that vanished or was replaced is a 404) and maps it read-only; the origin sends it with
// sendfile from the page cache (a cold page cache makes that thread wait for the disk).
// Concurrent readers of a segment share one opened file (opened once while any holds it;
// a response holds it until its write ends), and the bytes of opened files still held,
// for the whole packager, are capped at max(64 MiB, memory_mb / 4)
// (HlsPackagerOptions::disk_read_cap_bytes): an open over the cap is a 404, counted
// (HlsChannelStats::disk_reads_refused). Neither the origin's threads nor its connection
// limit bound those descriptors and mappings; the cap does.
// memory_mb then bounds only what is in memory: older in-memory segments, live ones too,
// go to disk early while the share is exceeded, but the newest always stays in memory
// (above the share if it alone is larger) and the share never evicts an on-disk segment
// to make room for the live window. ott.dvr_disk_mb (0: no limit) bounds what is on
// disk, shared as memory_mb is; eviction (dvr_hours, the disk budget, the memory budget
// for failed writes, oldest first as above) deletes the file. A failed write (disk full,
// permissions, directory removed) keeps that segment in memory, counted once
// (HlsChannelStats::disk_errors) and logged once per cause and channel (cause
// hls_dvr_write; again after a successful write); the oldest such segment is written
// again with each new segment of the track (one retry per segment, so a full disk costs
// little). While one is in memory the memory share evicts the oldest segments, on disk
// or not, as without a disk (the held numbers stay consecutive), so memory stays bounded.
// No persistence: a restart of twincastd loses the DVR. What the packager writes (regular
// files named seg-<n>.ts, seg-<r>-<n>.ts, audio-<pid>-<n>.ts, or those + ".tmp") is deleted
// from <dvr_dir>/<id> when set_channels adds channel <id> (a previous run's) or drops it,
// and every file goes with the packager; nothing else is deleted: no other name, no
// symlink followed (a channel directory that is a symlink is not emptied), no
// subdirectory entered, no directory of an id not configured. A track restarted by
// set_channels goes on over its old window, files included (its numbers go on, so no name
// is reused).
//
// Numbers: segments are served "immutable, max-age=86400" and keys "private,
// max-age=86400", so no URL may name other bytes after a restart. A channel made by
// set_channels (at twincastd's start, or added again) takes as its first number the wall
// clock in ms (HlsPackagerOptions::wall_ms; ~1.8e12, below hls.js's 2^53), or one above
// every number this packager issued when that is higher: its first segment (the channel's
// first PTS slot for ABR, which every rendition's numbers follow) and its first AES-128 key
// id (key-<id>.key; each key of any of its tracks takes the next id) start there, and only
// grow within the run (RFC 8216 6.2.1). Segments and keys come far slower than one per ms,
// so a later start begins above every number an earlier run issued as long as the clock
// does not go back; the DVR file names (the sequence), the segments' ETags (sequence and
// PROGRAM-DATE-TIME), the playlists' ETags (sequences) and the master's (first number and
// a count) follow. A track restarted by set_channels goes on with its numbers; a rendition
// dropped and added again goes on above its old ones; an ABR track's first number is never
// above the clock's ms (a PTS jump makes no leap that a later start could repeat). The
// DISCONTINUITY-SEQUENCE starts at the channel's first number too and grows by one per
// discontinuity (fewer than its segments), so it never goes back across a restart either.
// A key's ETag is a hash of its bytes.
//
// Threads: the packager thread (feeds, segmenters, the store's writes), the origin's
// threads (get(), channels_json()), the control side (set_channels, detach, stats). One
// mutex per channel guards its store; readers copy a shared_ptr (or the metadata of the
// listed segments, for a time range) and render outside it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "twincast/control/hls_origin.hpp"
#include "twincast/dataplane/config.hpp"

namespace twincast::dataplane {
class OttFeed;
}

namespace twincast::control {

// One more rendition of a channel (ABR), besides the channel's own output.
struct PackagedRendition {
  std::string name;                    // [a-z0-9_-]{1,32}: live-<name>.m3u8, seg-<name>-<n>.ts
  // Received: the feed of its hidden data-plane channel "<channel>.<name>" (owned by the
  // data plane; see HlsPackager::detach). nullptr: transcoded from the channel's feed.
  dataplane::OttFeed* feed = nullptr;
  std::uint16_t height = 0;            // transcoded: lines
  std::uint32_t video_kbps = 0;        // transcoded: H.264 bitrate
  friend bool operator==(const PackagedRendition&, const PackagedRendition&) = default;
};

struct PackagedChannel {
  std::string id;
  std::string name;
  dataplane::OttFeed* feed = nullptr;  // owned by the data plane; see HlsPackager::detach
  std::vector<PackagedRendition> renditions{};  // config order; empty: no ABR
  // AES-128 (hls_auth.hpp): segments encrypted once when stored, keys served as
  // key-<n>.key while a held segment uses them, a new key every key_rotation_segments
  // segments (0: one per track start).
  bool encrypt = false;
  std::uint32_t key_rotation_segments = 0;
};

// The id of rendition `rendition` of channel `channel` as a data-plane channel (and in
// HlsPackager::detach): "<channel>.<rendition>" ('.' is in no channel id).
[[nodiscard]] std::string rendition_channel_id(const std::string& channel, const std::string& rendition);

struct HlsChannelStats {
  std::string state;                 // "waiting" (no segment yet), "serving", "stalled"
  std::uint64_t segments = 0;        // made since the channel started
  double last_segment_age_s = 0;     // since the newest segment was made (0 when none)
  std::uint64_t window_bytes = 0;    // segment bytes held in memory for the channel (not on disk)
  std::uint64_t evicted = 0;         // segments dropped from the store (memory or disk)
  std::uint64_t discontinuities = 0; // EXT-X-DISCONTINUITY tags written
  std::uint64_t dropped_packets = 0; // the segmenter's drops (before the first key frame...)
  std::uint64_t bandwidth_bps = 0;   // peak, as in the master playlist
  std::uint64_t held_segments = 0;   // held now, in memory and on disk (live window + DVR)
  std::uint64_t disk_bytes = 0;      // ott.dvr_dir: segment bytes on disk for the channel
  std::uint64_t disk_segments = 0;   // ... segments on disk (held_segments - disk_segments in memory)
  std::uint64_t disk_errors = 0;     // segments whose write failed (kept in memory, retried)
  std::uint64_t disk_reads_refused = 0;  // get()s of on-disk segments refused (404) by the disk-read cap
  double held_seconds = 0;           // from the oldest held segment's start to the newest's end
};

// Clocks, injectable for tests; empty: the real ones.
struct HlsPackagerOptions {
  // UTC, ms since the Unix epoch (system_clock): PROGRAM-DATE-TIME, and a new channel's
  // first sequence number and key id (see Numbers above).
  std::function<std::int64_t()> wall_ms;
  std::function<std::uint64_t()> mono_ns;  // the feed's clock (dataplane::Dataplane::now_ns)
  // Benchmarks and tests that want fixed names: a new channel's first number (sequence and
  // key id) instead of wall_ms()'s (still above what the packager issued). Empty
  // (twincastd): the clock's, which a restart never repeats; with this set it would.
  std::optional<std::uint64_t> first_sequence;
  // Bytes of ott.dvr_dir files opened for readers and still referenced, for the whole packager; 0:
  // max(64 MiB, memory_mb / 4).
  std::uint64_t disk_read_cap_bytes = 0;
};

class HlsPackager final : public HlsSource {
 public:
  explicit HlsPackager(const dataplane::OttConfig& config, HlsPackagerOptions options = {});
  ~HlsPackager() override;  // stop()
  HlsPackager(const HlsPackager&) = delete;
  HlsPackager& operator=(const HlsPackager&) = delete;

  // The channels to package. A channel whose id and feed are unchanged keeps its
  // segmenter, window and sequence numbers; others start anew; missing ones are dropped.
  void set_channels(std::vector<PackagedChannel> channels);
  // Stops reading these channels' feeds before the data plane frees them (a reload that
  // removes or restarts them); their windows stay until set_channels(). An id
  // "<channel>.<rendition>" (rendition_channel_id) detaches that rendition's feed only.
  void detach(const std::vector<std::string>& ids);

  void start();  // the packager thread
  void stop();   // idempotent

  // One pass over every feed (what the thread does every few milliseconds); for tests
  // that drive the packager without its thread.
  void poll_once();

  // The channel's primary rendition (its own output), or with `rendition` that rendition's
  // ("audio-<pid>" for an alternate audio track).
  [[nodiscard]] std::optional<HlsChannelStats> channel_stats(const std::string& id) const;
  [[nodiscard]] std::optional<HlsChannelStats> rendition_stats(const std::string& id, const std::string& rendition) const;

  // HlsSource (the origin's threads).
  std::optional<HlsResource> get(std::string_view channel, std::string_view name, std::string_view query) override;
  std::vector<std::string> channel_ids() override;
  std::string channels_json() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
