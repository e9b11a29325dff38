#include "twincast/control/hls_packager.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/hls.hpp"

namespace twincast::control {

namespace {

namespace hls = mpegts::hls;

constexpr auto kPollInterval = std::chrono::milliseconds(5);
constexpr const char* kMediaName = "live.m3u8";
constexpr const char* kMasterName = "index.m3u8";

std::int64_t wall_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct StoredSegment {
  std::uint64_t sequence = 0;
  double duration_s = 0;
  bool discontinuity = false;
  std::uint32_t discontinuity_sequence = 0;
  std::int64_t program_date_time_ms = 0;
  bool starts_with_keyframe = true;
  std::shared_ptr<const std::string> bytes;
};

// The segment's sequence number from "seg-<n>.ts", or nullopt.
std::optional<std::uint64_t> segment_sequence(std::string_view name) {
  constexpr std::string_view kPrefix = "seg-";
  constexpr std::string_view kSuffix = ".ts";
  if (name.size() <= kPrefix.size() + kSuffix.size() || name.substr(0, kPrefix.size()) != kPrefix ||
      name.substr(name.size() - kSuffix.size()) != kSuffix)
    return std::nullopt;
  const std::string_view digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (digits.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

struct ChannelStore {
  std::string id;
  std::string name;
  dataplane::OttFeed* feed = nullptr;             // guarded by Impl::feeds_mu
  std::unique_ptr<hls::Segmenter> segmenter;      // the packager thread (under feeds_mu)

  mutable std::mutex mu;  // everything below
  std::deque<StoredSegment> window;               // oldest first; the playlist lists the newest
  std::uint64_t window_bytes = 0;
  std::shared_ptr<const std::string> media;       // rendered once per segment
  std::shared_ptr<const std::string> master;
  std::uint64_t newest_sequence = 0;
  std::chrono::steady_clock::time_point last_segment{};
  std::uint64_t segments = 0;
  std::uint64_t evicted = 0;
  std::uint64_t discontinuities = 0;
  std::uint64_t dropped_packets = 0;
  std::uint64_t bandwidth_bps = 0;
};

struct HlsPackager::Impl {
  explicit Impl(const dataplane::OttConfig& c) : config(c) {}

  // Segment `s` of `ch` is complete (packager thread, inside Segmenter::push).
  void store(ChannelStore& ch, hls::Segment&& s, const hls::StreamInfo& info, std::uint64_t budget) {
    StoredSegment st;
    st.sequence = s.sequence;
    st.duration_s = s.duration_s;
    st.discontinuity = s.discontinuity;
    st.discontinuity_sequence = s.discontinuity_sequence;
    st.program_date_time_ms = s.program_date_time_ms;
    st.starts_with_keyframe = s.starts_with_keyframe;
    st.bytes = std::make_shared<const std::string>(reinterpret_cast<const char*>(s.bytes.data()), s.bytes.size());
    std::lock_guard lock(ch.mu);
    ch.window_bytes += st.bytes->size();
    ch.window.push_back(std::move(st));
    ++ch.segments;
    if (s.discontinuity) ++ch.discontinuities;
    ch.newest_sequence = s.sequence;
    ch.last_segment = std::chrono::steady_clock::now();
    // Kept: the playlist's window and as many again for clients that still fetch what
    // slid out of it, within the channel's share of the memory budget.
    const std::size_t keep = 2 * static_cast<std::size_t>(config.window_segments);
    while (ch.window.size() > keep || (ch.window_bytes > budget && ch.window.size() > 1)) {
      ch.window_bytes -= ch.window.front().bytes->size();
      ch.window.pop_front();
      ++ch.evicted;
    }
    render(ch, info);
  }

  // The playlists of `ch` from its window (under ch.mu).
  void render(ChannelStore& ch, const hls::StreamInfo& info) {
    hls::MediaPlaylist p;
    p.target_duration_s = config.segment_seconds;
    const std::size_t n = std::min<std::size_t>(ch.window.size(), config.window_segments);
    const std::size_t first = ch.window.size() - n;
    p.media_sequence = ch.window[first].sequence;
    p.discontinuity_sequence = ch.window[first].discontinuity_sequence;
    p.independent_segments = true;  // unless a forced cut (a GOP far longer than the target) is listed
    for (std::size_t i = first; i < ch.window.size(); ++i) {
      const StoredSegment& s = ch.window[i];
      p.independent_segments = p.independent_segments && s.starts_with_keyframe;
      p.entries.push_back(hls::MediaEntry{"seg-" + std::to_string(s.sequence) + ".ts", s.duration_s,
                                          s.discontinuity, s.program_date_time_ms});
    }
    ch.media = std::make_shared<const std::string>(hls::media_playlist(p));
    hls::MasterPlaylist m;
    hls::Variant v;
    v.uri = kMediaName;
    v.bandwidth_bps = std::max(info.peak_bandwidth_bps, info.average_bandwidth_bps);
    v.average_bandwidth_bps = info.average_bandwidth_bps;
    v.codecs = info.codecs;
    v.width = info.width;
    v.height = info.height;
    v.frame_rate = info.frame_rate;
    m.variants.push_back(v);
    ch.master = std::make_shared<const std::string>(hls::master_playlist(m));
    ch.bandwidth_bps = v.bandwidth_bps;
  }

  void poll_once() {
    std::lock_guard feeds(feeds_mu);
    std::vector<std::shared_ptr<ChannelStore>> list;
    {
      std::lock_guard lock(channels_mu);
      list = channels;
    }
    // The feed's times are the data plane's monotonic clock; the playlists want UTC.
    const std::uint64_t mono_now = dataplane::Dataplane::now_ns();
    const std::int64_t wall_now = wall_ms_now();
    for (const auto& chp : list) {
      ChannelStore& ch = *chp;
      if (ch.feed == nullptr || !ch.segmenter) continue;
      (void)ch.feed->read([&](const dataplane::OttChunk& c) {
        const auto age_ms = static_cast<std::int64_t>(mono_now > c.ns ? (mono_now - c.ns) / 1'000'000 : 0);
        ch.segmenter->push(c.packets, wall_now - age_ms, c.discontinuity);
      });
      const auto& st = ch.segmenter->stats();
      std::uint64_t dropped = 0;
      for (const auto d : st.dropped) dropped += d;
      std::lock_guard lock(ch.mu);
      ch.dropped_packets = dropped;
    }
  }

  std::shared_ptr<ChannelStore> find(std::string_view id) const {
    std::lock_guard lock(channels_mu);
    for (const auto& c : channels)
      if (c->id == id) return c;
    return nullptr;
  }

  dataplane::OttConfig config;
  std::mutex feeds_mu;            // feed pointers and segmenters; held for a whole poll pass
  mutable std::mutex channels_mu; // the list
  std::vector<std::shared_ptr<ChannelStore>> channels;
  std::thread thread;
  std::atomic<bool> stopping{false};
};

HlsPackager::HlsPackager(const dataplane::OttConfig& config) : impl_(std::make_unique<Impl>(config)) {}
HlsPackager::~HlsPackager() { stop(); }

void HlsPackager::set_channels(std::vector<PackagedChannel> wanted) {
  Impl& d = *impl_;
  std::lock_guard feeds(d.feeds_mu);
  std::vector<std::shared_ptr<ChannelStore>> next;
  for (const PackagedChannel& w : wanted) {
    std::shared_ptr<ChannelStore> old = d.find(w.id);
    if (old && old->feed == w.feed && w.feed != nullptr) {
      old->name = w.name;
      next.push_back(std::move(old));
      continue;
    }
    auto ch = std::make_shared<ChannelStore>();
    ch->id = w.id;
    ch->name = w.name;
    ch->feed = w.feed;
    hls::SegmenterConfig sc;
    sc.target_duration_s = static_cast<double>(d.config.segment_seconds);
    if (old) {
      // The same channel restarted (a reload changed it): its sequence numbers go on, so
      // players and caches never see a number reused; the timeline jump is a discontinuity.
      std::lock_guard lock(old->mu);
      sc.first_sequence = old->window.empty() ? old->newest_sequence : old->newest_sequence + 1;
      ch->window = old->window;
      ch->window_bytes = old->window_bytes;
      ch->media = old->media;
      ch->master = old->master;
      ch->newest_sequence = old->newest_sequence;
      ch->last_segment = old->last_segment;
      if (!old->window.empty()) {
        // The count before the newest old segment, plus its own tag if it has one.
        const StoredSegment& last = old->window.back();
        sc.first_discontinuity_sequence = last.discontinuity_sequence + (last.discontinuity ? 1 : 0);
      }
    }
    ChannelStore* raw = ch.get();
    Impl* impl = &d;
    const bool continued = old != nullptr && !ch->window.empty();
    ch->segmenter = std::make_unique<hls::Segmenter>(sc, [impl, raw, continued, first = true](hls::Segment&& s) mutable {
      if (continued) {
        // A new timeline after the restart: the first segment carries the tag, the ones
        // after it count it (RFC 8216 4.3.3.3).
        if (first) {
          s.discontinuity = true;
        } else {
          ++s.discontinuity_sequence;
        }
      }
      first = false;
      const std::uint64_t budget = static_cast<std::uint64_t>(impl->config.memory_mb) * 1024 * 1024 /
                                   std::max<std::size_t>(1, impl->channels.size());
      impl->store(*raw, std::move(s), raw->segmenter->stream_info(), budget);
    });
    next.push_back(std::move(ch));
  }
  std::lock_guard lock(d.channels_mu);
  d.channels = std::move(next);
}

void HlsPackager::detach(const std::vector<std::string>& ids) {
  std::lock_guard feeds(impl_->feeds_mu);
  for (const auto& id : ids) {
    if (auto ch = impl_->find(id)) ch->feed = nullptr;
  }
}

void HlsPackager::start() {
  Impl& d = *impl_;
  if (d.thread.joinable()) return;
  d.stopping = false;
  d.thread = std::thread([&d] {
    while (!d.stopping.load(std::memory_order_relaxed)) {
      d.poll_once();
      std::this_thread::sleep_for(kPollInterval);
    }
  });
}

void HlsPackager::stop() {
  impl_->stopping = true;
  if (impl_->thread.joinable()) impl_->thread.join();
}

void HlsPackager::poll_once() { impl_->poll_once(); }

std::optional<HlsChannelStats> HlsPackager::channel_stats(const std::string& id) const {
  const auto ch = impl_->find(id);
  if (!ch) return std::nullopt;
  std::lock_guard lock(ch->mu);
  HlsChannelStats s;
  s.segments = ch->segments;
  s.window_bytes = ch->window_bytes;
  s.evicted = ch->evicted;
  s.discontinuities = ch->discontinuities;
  s.dropped_packets = ch->dropped_packets;
  s.bandwidth_bps = ch->bandwidth_bps;
  if (ch->window.empty()) {
    s.state = "waiting";
  } else {
    s.last_segment_age_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ch->last_segment).count();
    s.state = s.last_segment_age_s < 3.0 * impl_->config.segment_seconds + 1 ? "serving" : "stalled";
  }
  return s;
}

std::optional<HlsResource> HlsPackager::get(std::string_view channel, std::string_view name, std::string_view) {
  const auto ch = impl_->find(channel);
  if (!ch) return std::nullopt;
  std::lock_guard lock(ch->mu);
  HlsResource r;
  const double half_segment = static_cast<double>(impl_->config.segment_seconds) / 2;
  if (name == kMediaName || name == kMasterName) {
    const bool media = name == kMediaName;
    const auto& body = media ? ch->media : ch->master;
    if (!body) return std::nullopt;
    r.body = body;
    r.kind = HlsResource::Kind::kPlaylist;
    r.content_type = "application/vnd.apple.mpegurl";
    r.etag = "\"" + std::string(media ? "m" : "i") + std::to_string(ch->newest_sequence) + "\"";
    r.max_age_s = half_segment;
    return r;
  }
  const auto seq = segment_sequence(name);
  if (!seq) return std::nullopt;
  for (const StoredSegment& s : ch->window) {
    if (s.sequence != *seq) continue;
    r.body = s.bytes;
    r.kind = HlsResource::Kind::kSegment;
    r.content_type = "video/mp2t";
    r.etag = "\"s" + std::to_string(s.sequence) + "-" + std::to_string(s.program_date_time_ms) + "\"";
    return r;
  }
  return std::nullopt;
}

std::vector<std::string> HlsPackager::channel_ids() {
  std::lock_guard lock(impl_->channels_mu);
  std::vector<std::string> out;
  for (const auto& c : impl_->channels) out.push_back(c->id);
  return out;
}

std::string HlsPackager::channels_json() {
  std::vector<std::pair<std::string, std::string>> ids;
  {
    std::lock_guard lock(impl_->channels_mu);
    for (const auto& c : impl_->channels) ids.emplace_back(c->id, c->name);
  }
  boost::json::array a;
  for (const auto& [id, name] : ids) {
    const auto st = channel_stats(id);
    if (!st) continue;
    boost::json::object o;
    o["id"] = id;
    o["name"] = name.empty() ? id : name;
    o["state"] = st->state;
    o["url"] = "/hls/" + id + "/" + kMasterName;
    o["segments"] = st->segments;
    o["bandwidth_bps"] = st->bandwidth_bps;
    o["last_segment_age_s"] = std::round(st->last_segment_age_s * 10) / 10;
    a.push_back(std::move(o));
  }
  return boost::json::serialize(a);
}

}  // namespace twincast::control
