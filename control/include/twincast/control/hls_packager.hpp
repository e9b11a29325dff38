// The HLS packager and its segment store.
//
// One packager thread drains the data plane's OTT feed of every HLS channel (the SPSC
// ring dataplane::OttFeed, chunks of the channel's remuxed SPTS) into that channel's
// mpegts::hls::Segmenter. Finished segments go to the channel's live window in memory;
// the playlists are rendered once per new segment and served as they are. The store is
// the origin's HlsSource:
//
//   /hls/<id>/index.m3u8   master playlist: the channel's one rendition with BANDWIDTH and
//                          AVERAGE-BANDWIDTH measured on its segments, CODECS, RESOLUTION,
//                          FRAME-RATE (404 until the first segment)
//   /hls/<id>/live.m3u8    media playlist: the last window_segments segments, a
//                          PROGRAM-DATE-TIME on each, EXT-X-DISCONTINUITY after an input
//                          switch (the feed's mark) or a timestamp jump
//   /hls/<id>/seg-<n>.ts   a segment: PAT, PMT, then from a key frame (decodes alone)
//
// Segments that slid out of the playlist stay available for as long again as the window
// lasts (RFC 8216 6.2.2: a client may still fetch them), within the memory budget
// (ott.memory_mb shared by the channels); then they are evicted (404).
//
// Threads: the packager thread (feeds, segmenters, the store's writes), the origin's
// threads (get(), channels_json()), the control side (set_channels, detach, stats). One
// mutex per channel guards its window; readers copy a shared_ptr and leave.
#pragma once

#include <cstdint>
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
};

class HlsPackager final : public HlsSource {
 public:
  explicit HlsPackager(const dataplane::OttConfig& config);
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
