#include "twincast/control/hls_packager.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
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

constexpr const char* kEventName = "event.m3u8";
constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kForever = std::numeric_limits<std::int64_t>::max();

std::int64_t wall_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `n` decimal digits of `s` at `at`, or -1.
int digits_at(std::string_view s, std::size_t at, std::size_t n) {
  if (at + n > s.size()) return -1;
  int v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// ".ddd..." (1..9 digits) at the start of `s` as milliseconds (truncated), and its length;
// {0, 0} when `s` does not start with '.'; {-1, 0} when malformed.
std::pair<std::int64_t, std::size_t> fraction_ms(std::string_view s) {
  if (s.empty() || s[0] != '.') return {0, 0};
  std::size_t n = 1;
  std::int64_t ms = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') {
    if (n <= 3) ms = ms * 10 + (s[n] - '0');
    ++n;
  }
  if (n == 1 || n > 10) return {-1, 0};
  for (std::size_t k = n; k <= 3; ++k) ms *= 10;  // ".5" -> 500
  return {ms, n};
}

// A time-range bound: ISO 8601 UTC ("2026-11-25T21:40:00Z", optional fraction, "Z" or
// "+00:00") or Unix epoch seconds ("1795556400", "1795556400.25"); ms since the epoch.
std::optional<std::int64_t> parse_time_ms(std::string_view s) {
  if (s.empty() || s.size() > 40) return std::nullopt;
  if (s.find('-') == std::string_view::npos) {  // epoch seconds
    const std::size_t dot = std::min(s.find('.'), s.size());
    if (dot == 0 || dot > 11) return std::nullopt;  // up to year 5138
    std::int64_t sec = 0;
    for (std::size_t i = 0; i < dot; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      sec = sec * 10 + (s[i] - '0');
    }
    const auto [ms, len] = fraction_ms(s.substr(dot));
    if (ms < 0 || dot + len != s.size()) return std::nullopt;
    return sec * 1000 + ms;
  }
  // YYYY-MM-DDTHH:MM:SS
  const int y = digits_at(s, 0, 4), mo = digits_at(s, 5, 2), d = digits_at(s, 8, 2);
  const int h = digits_at(s, 11, 2), mi = digits_at(s, 14, 2), sec = digits_at(s, 17, 2);
  if (s.size() < 20 || y < 1970 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0 || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' || h > 23 || mi > 59 || sec > 59)
    return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(mo)},
                                        std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  const auto [ms, len] = fraction_ms(s.substr(19));
  if (ms < 0) return std::nullopt;
  const std::string_view zone = s.substr(19 + len);
  if (zone != "Z" && zone != "z" && zone != "+00:00") return std::nullopt;
  const std::int64_t days = std::chrono::sys_days{ymd}.time_since_epoch().count();
  return ((days * 24 + h) * 60 + mi) * 60'000 + std::int64_t{sec} * 1000 + ms;
}

// %XX decoded ('+' stays: it is the zone's sign in "+00:00" as often as a space).
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t k = i + 1; k <= i + 2; ++k) {
      const char c = s[k];
      const int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (x < 0) return std::nullopt;
      v = v * 16 + x;
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

// [start, end) from a query string; start kNoTime / end kForever when absent.
struct TimeRange {
  std::int64_t start = kNoTime;
  std::int64_t end = kForever;
};

enum class RangeQuery { kNone, kValid, kInvalid };

RangeQuery parse_range(std::string_view query, TimeRange& r) {
  bool any = false;
  while (!query.empty()) {
    const std::size_t amp = std::min(query.find('&'), query.size());
    const std::string_view param = query.substr(0, amp);
    query = amp < query.size() ? query.substr(amp + 1) : std::string_view{};
    const std::size_t eq = param.find('=');
    const std::string_view key = param.substr(0, eq);
    if (key != "start" && key != "end") continue;
    if (eq == std::string_view::npos) return RangeQuery::kInvalid;
    const auto value = percent_decode(param.substr(eq + 1));
    if (!value) return RangeQuery::kInvalid;
    const auto t = parse_time_ms(*value);
    if (!t) return RangeQuery::kInvalid;
    (key == "start" ? r.start : r.end) = *t;
    any = true;
  }
  if (!any) return RangeQuery::kNone;
  return r.start < r.end ? RangeQuery::kValid : RangeQuery::kInvalid;
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
  hls::Variant variant;                           // of `master`, for the time-range masters
  std::shared_ptr<const std::string> event;       // event.m3u8, rendered on demand
  std::uint64_t event_first = 0, event_last = 0;  // the sequences it lists
  std::uint64_t newest_sequence = 0;
  std::chrono::steady_clock::time_point last_segment{};
  std::uint64_t segments = 0;
  std::uint64_t evicted = 0;
  std::uint64_t discontinuities = 0;
  std::uint64_t dropped_packets = 0;
  std::uint64_t bandwidth_bps = 0;
};

struct HlsPackager::Impl {
  Impl(const dataplane::OttConfig& c, HlsPackagerOptions o) : config(c), options(std::move(o)) {
    if (!options.wall_ms) options.wall_ms = wall_ms_now;
    if (!options.mono_ns) options.mono_ns = [] { return dataplane::Dataplane::now_ns(); };
  }

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
    // slid out of it, and what started within dvr_hours of the newest segment's end; the
    // channel's share of the memory budget first (oldest out first).
    const std::size_t keep = 2 * static_cast<std::size_t>(config.window_segments);
    const StoredSegment& newest = ch.window.back();
    const std::int64_t horizon =
        config.dvr_hours == 0 ? kForever
                              : newest.program_date_time_ms + std::llround(newest.duration_s * 1000) -
                                    std::int64_t{config.dvr_hours} * 3'600'000;
    while (ch.window.size() > 1 &&
           (ch.window_bytes > budget || (ch.window.size() > keep && ch.window.front().program_date_time_ms < horizon))) {
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
    ch.variant = std::move(v);
  }

  // The held segments of `ch` whose PDT is in [r.start, r.end), as a VOD playlist when the
  // range is over and an EVENT one otherwise (under ch.mu); no entries when none.
  hls::MediaPlaylist select(const ChannelStore& ch, const TimeRange& r, std::int64_t now_ms) const {
    hls::MediaPlaylist p;
    p.target_duration_s = config.segment_seconds;
    const auto& w = ch.window;
    const auto before = [](std::int64_t t) { return [t](const StoredSegment& s) { return s.program_date_time_ms < t; }; };
    const auto first = std::partition_point(w.begin(), w.end(), before(r.start));
    const auto last = std::partition_point(first, w.end(), before(r.end));
    if (first == last) return p;
    p.media_sequence = first->sequence;
    p.discontinuity_sequence = first->discontinuity_sequence;
    p.entries.reserve(static_cast<std::size_t>(last - first));
    for (auto it = first; it != last; ++it) {
      p.independent_segments = p.independent_segments && it->starts_with_keyframe;
      p.entries.push_back(hls::MediaEntry{"seg-" + std::to_string(it->sequence) + ".ts", it->duration_s,
                                          it->discontinuity, it->program_date_time_ms});
    }
    // Over: a held segment starts at or after the end (nothing more can fall in the range),
    // or the end is long past (a stalled channel).
    const bool over = last != w.end() ||
                      (r.end != kForever && now_ms - r.end > 3'000 * std::int64_t{config.segment_seconds});
    p.type = over ? hls::PlaylistType::kVod : hls::PlaylistType::kEvent;
    p.end_list = over;
    return p;
  }

  void poll_once() {
    std::lock_guard feeds(feeds_mu);
    std::vector<std::shared_ptr<ChannelStore>> list;
    {
      std::lock_guard lock(channels_mu);
      list = channels;
    }
    // The feed's times are the data plane's monotonic clock; the playlists want UTC.
    const std::uint64_t mono_now = options.mono_ns();
    const std::int64_t wall_now = options.wall_ms();
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
  HlsPackagerOptions options;
  std::mutex feeds_mu;            // feed pointers and segmenters; held for a whole poll pass
  mutable std::mutex channels_mu; // the list
  std::vector<std::shared_ptr<ChannelStore>> channels;
  std::thread thread;
  std::atomic<bool> stopping{false};
};

HlsPackager::HlsPackager(const dataplane::OttConfig& config, HlsPackagerOptions options)
    : impl_(std::make_unique<Impl>(config, std::move(options))) {}
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
      ch->variant = old->variant;
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
  s.held_segments = ch->window.size();
  if (!ch->window.empty())
    s.held_seconds = static_cast<double>(ch->window.back().program_date_time_ms - ch->window.front().program_date_time_ms) / 1000 +
                     ch->window.back().duration_s;
  if (ch->window.empty()) {
    s.state = "waiting";
  } else {
    s.last_segment_age_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ch->last_segment).count();
    s.state = s.last_segment_age_s < 3.0 * impl_->config.segment_seconds + 1 ? "serving" : "stalled";
  }
  return s;
}

std::optional<HlsResource> HlsPackager::get(std::string_view channel, std::string_view name, std::string_view query) {
  const auto ch = impl_->find(channel);
  if (!ch) return std::nullopt;
  HlsResource r;
  r.kind = HlsResource::Kind::kPlaylist;
  r.content_type = "application/vnd.apple.mpegurl";
  const double half_segment = static_cast<double>(impl_->config.segment_seconds) / 2;
  const bool media = name == kMediaName;
  const bool master = name == kMasterName;
  TimeRange range;
  const RangeQuery rq = media || master ? parse_range(query, range) : RangeQuery::kNone;
  if (rq == RangeQuery::kInvalid) return std::nullopt;
  if (rq == RangeQuery::kValid) {
    // Catch-up / timeshift: the metadata is copied under the lock, the text made outside it.
    hls::MediaPlaylist p;
    hls::Variant v;
    {
      std::lock_guard lock(ch->mu);
      p = impl_->select(*ch, range, impl_->options.wall_ms());
      if (master) v = ch->variant;
    }
    if (p.entries.empty()) return std::nullopt;
    const bool vod = p.type == hls::PlaylistType::kVod;
    const std::string tag = std::to_string(p.media_sequence) + "-" + std::to_string(p.media_sequence + p.entries.size() - 1) +
                            (vod ? "v" : "e");
    r.max_age_s = vod ? 60 : half_segment;
    if (master) {
      std::string uri = std::string(kMediaName) + "?";
      if (range.start != kNoTime) uri += "start=" + hls::format_date_time(range.start);
      if (range.end != kForever) uri += std::string(range.start != kNoTime ? "&" : "") + "end=" + hls::format_date_time(range.end);
      v.uri = std::move(uri);
      hls::MasterPlaylist m;
      m.variants.push_back(std::move(v));
      r.body = std::make_shared<const std::string>(hls::master_playlist(m));
      r.etag = "\"j" + tag + "\"";
    } else {
      r.body = std::make_shared<const std::string>(hls::media_playlist(p));
      r.etag = "\"r" + tag + "\"";
    }
    return r;
  }
  if (name == kEventName) {
    hls::MediaPlaylist p;
    {
      std::lock_guard lock(ch->mu);
      if (ch->window.empty()) return std::nullopt;
      const std::uint64_t first = ch->window.front().sequence, last = ch->window.back().sequence;
      r.etag = "\"e" + std::to_string(first) + "-" + std::to_string(last) + "\"";
      r.max_age_s = half_segment;
      if (ch->event && ch->event_first == first && ch->event_last == last) {
        r.body = ch->event;
        return r;
      }
      p = impl_->select(*ch, TimeRange{}, impl_->options.wall_ms());
    }
    p.type = hls::PlaylistType::kEvent;
    p.end_list = false;
    r.body = std::make_shared<const std::string>(hls::media_playlist(p));
    std::lock_guard lock(ch->mu);
    ch->event = r.body;
    ch->event_first = p.media_sequence;
    ch->event_last = p.media_sequence + p.entries.size() - 1;
    return r;
  }
  std::lock_guard lock(ch->mu);
  if (media || master) {
    const auto& body = media ? ch->media : ch->master;
    if (!body) return std::nullopt;
    r.body = body;
    r.etag = "\"" + std::string(media ? "m" : "i") + std::to_string(ch->newest_sequence) + "\"";
    r.max_age_s = half_segment;
    return r;
  }
  const auto seq = segment_sequence(name);
  if (!seq) return std::nullopt;
  // The held sequences are consecutive and in order (eviction takes the oldest).
  const auto& w = ch->window;
  const auto it = std::partition_point(w.begin(), w.end(), [&](const StoredSegment& s) { return s.sequence < *seq; });
  if (it == w.end() || it->sequence != *seq) return std::nullopt;
  r.body = it->bytes;
  r.kind = HlsResource::Kind::kSegment;
  r.content_type = "video/mp2t";
  r.etag = "\"s" + std::to_string(it->sequence) + "-" + std::to_string(it->program_date_time_ms) + "\"";
  r.max_age_s = 0;
  return r;
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
