// The HLS packager and its segment store (live window, DVR / timeshift / catch-up).
//
// One packager thread drains the data plane's OTT feed of every HLS channel (the SPSC
// ring dataplane::OttFeed, chunks of the channel's remuxed SPTS) into that channel's
// mpegts::hls::Segmenter. Finished segments go to the channel's store in memory; the live
// playlists are rendered once per new segment and served as they are. The store is the
// origin's HlsSource:
//
//   /hls/<id>/index.m3u8   master playlist: the channel's one rendition with BANDWIDTH and
//                          AVERAGE-BANDWIDTH measured on its segments, CODECS, RESOLUTION,
//                          FRAME-RATE (404 until the first segment)
//   /hls/<id>/live.m3u8    media playlist: the last window_segments segments, a
//                          PROGRAM-DATE-TIME on each, EXT-X-DISCONTINUITY after an input
//                          switch (the feed's mark) or a timestamp jump
//   /hls/<id>/event.m3u8   EVENT playlist of every segment the store holds (the DVR window),
//                          no ENDLIST; rendered at most once per new segment
//   /hls/<id>/seg-<n>.ts   a segment: PAT, PMT, then from a key frame (decodes alone)
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
// What is held: at least 2 x window_segments segments (RFC 8216 6.2.2: a client may still
// fetch what slid out of the live playlist) and, with ott.dvr_hours > 0, every segment that
// starts within dvr_hours of the newest segment's end; older ones are evicted (404). The
// channel's share of ott.memory_mb (memory_mb / channels) bounds it whichever is smaller:
// the oldest segments go first, so the held bytes never exceed the share (a single segment
// larger than the share is kept alone). Segment metadata (~100 bytes each) is not counted.
// In memory only: nothing is written to disk, a restart of twincastd loses the DVR.
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

struct PackagedChannel {
  std::string id;
  std::string name;
  dataplane::OttFeed* feed = nullptr;  // owned by the data plane; see HlsPackager::detach
};

struct HlsChannelStats {
  std::string state;                 // "waiting" (no segment yet), "serving", "stalled"
  std::uint64_t segments = 0;        // made since the channel started
  double last_segment_age_s = 0;     // since the newest segment was made (0 when none)
  std::uint64_t window_bytes = 0;    // segment bytes held in memory for the channel
  std::uint64_t evicted = 0;         // segments dropped from memory
  std::uint64_t discontinuities = 0; // EXT-X-DISCONTINUITY tags written
  std::uint64_t dropped_packets = 0; // the segmenter's drops (before the first key frame...)
  std::uint64_t bandwidth_bps = 0;   // peak, as in the master playlist
  std::uint64_t held_segments = 0;   // in memory now (live window + DVR)
  double held_seconds = 0;           // from the oldest held segment's start to the newest's end
};

// Clocks, injectable for tests; empty: the real ones.
struct HlsPackagerOptions {
  std::function<std::int64_t()> wall_ms;   // UTC, ms since the Unix epoch (system_clock)
  std::function<std::uint64_t()> mono_ns;  // the feed's clock (dataplane::Dataplane::now_ns)
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
  // removes or restarts them); their windows stay until set_channels().
  void detach(const std::vector<std::string>& ids);

  void start();  // the packager thread
  void stop();   // idempotent

  // One pass over every feed (what the thread does every few milliseconds); for tests
  // that drive the packager without its thread.
  void poll_once();

  [[nodiscard]] std::optional<HlsChannelStats> channel_stats(const std::string& id) const;

  // HlsSource (the origin's threads).
  std::optional<HlsResource> get(std::string_view channel, std::string_view name, std::string_view query) override;
  std::vector<std::string> channel_ids() override;
  std::string channels_json() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
