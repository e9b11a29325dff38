#include "twincast/control/hls_packager.hpp"

#include <boost/json.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "twincast/control/hls_auth.hpp"
#include "twincast/control/http_server.hpp"  // percent_decode, valid_utf8
#include "twincast/control/log.hpp"
#include "twincast/control/transcoder.hpp"
#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/hls.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/psi_tables.hpp"

namespace twincast::control {

namespace {

namespace hls = mpegts::hls;

constexpr auto kPollInterval = std::chrono::milliseconds(5);
constexpr const char* kMediaName = "live.m3u8";
constexpr const char* kMasterName = "index.m3u8";

constexpr const char* kEventName = "event.m3u8";
constexpr const char* kAudioGroup = "aud";
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
    // '+' stays '+': it is the zone's sign in "+00:00" as often as a space.
    std::string value;
    if (!percent_decode(param.substr(eq + 1), value)) return RangeQuery::kInvalid;
    const auto t = parse_time_ms(value);
    if (!t) return RangeQuery::kInvalid;
    (key == "start" ? r.start : r.end) = *t;
    any = true;
  }
  if (!any) return RangeQuery::kNone;
  return r.start < r.end ? RangeQuery::kValid : RangeQuery::kInvalid;
}

namespace fs = std::filesystem;

// A segment written to ott.dvr_dir. The last owner (eviction, a dropped track or channel,
// a get() still reading it) deletes the file, unless the name now holds another file
// (another inode: the directory was emptied and refilled since).
struct DiskSegment {
  std::string path;
  std::uint64_t size = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  // The file opened while a reader still holds it (get()): concurrent readers of the
  // segment share one descriptor and mapping. `read_mu` serializes the open.
  mutable std::mutex read_mu;
  mutable std::weak_ptr<const SharedBytes> read;
  DiskSegment() = default;
  DiskSegment(const DiskSegment&) = delete;
  DiskSegment& operator=(const DiskSegment&) = delete;
  ~DiskSegment() {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) (void)::unlink(path.c_str());
  }
};

// Writes `bytes` to `path` through "<path>.tmp" and a rename; the file, or nullptr with
// `error` set to the errno.
std::shared_ptr<const DiskSegment> write_segment_file(const std::string& path, std::string_view bytes, int& error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno;
    return nullptr;
  }
  std::size_t done = 0;
  error = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno : ENOSPC;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  struct stat st {};
  if (error == 0 && ::fstat(fd, &st) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) {
    (void)::unlink(tmp.c_str());
    return nullptr;
  }
  auto f = std::make_shared<DiskSegment>();
  f->path = path;
  f->size = bytes.size();
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  return f;
}

// The bytes of the files opened for readers and still referenced (by get()'s callers: the
// origin's writes), for the whole packager; shared with their deleters, which may outlive it.
struct DiskReadBudget {
  std::uint64_t cap = 0;
  std::atomic<std::uint64_t> bytes{0};
  // Reserves `n` bytes; false when that would exceed the cap.
  bool take(std::uint64_t n) {
    std::uint64_t cur = bytes.load(std::memory_order_relaxed);
    do {
      if (n > cap || cur > cap - n) return false;
    } while (!bytes.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    return true;
  }
  void give(std::uint64_t n) { bytes.fetch_sub(n, std::memory_order_relaxed); }
};

enum class DiskRead : std::uint8_t { kOk, kGone, kRefused };

// The file of `f` opened and mapped (the origin's threads; sent with sendfile), or nullptr
// when it vanished or is not the one written (size or inode differ: kGone) or the budget's
// cap would be exceeded (kRefused). One still held by another reader is shared.
std::shared_ptr<const SharedBytes> read_segment_file(const DiskSegment& f, const std::shared_ptr<DiskReadBudget>& budget,
                                                     DiskRead& result) {
  std::lock_guard lock(f.read_mu);
  if (auto held = f.read.lock()) {
    result = DiskRead::kOk;
    return held;
  }
  result = DiskRead::kGone;
  const int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_dev != f.dev || st.st_ino != f.ino || static_cast<std::uint64_t>(st.st_size) != f.size) {
    ::close(fd);
    return nullptr;
  }
  if (!budget->take(f.size)) {
    ::close(fd);
    result = DiskRead::kRefused;
    return nullptr;
  }
  const std::uint64_t size = f.size;
  std::shared_ptr<const SharedBytes> opened = SharedBytes::of_file(fd, size);  // takes fd
  if (!opened) {
    budget->give(size);
    return nullptr;
  }
  // Given back to the budget when the last reader lets it go (the file's pages stay in the
  // page cache; the origin sends them with sendfile).
  const SharedBytes* p = opened.get();
  std::shared_ptr<const SharedBytes> out(p, [opened = std::move(opened), budget, size](const SharedBytes*) mutable {
    opened.reset();
    budget->give(size);
  });
  f.read = out;
  result = DiskRead::kOk;
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 20 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A name the packager writes: seg-<n>.ts, seg-<rendition>-<n>.ts, audio-<pid>-<n>.ts, or
// one of them + ".tmp".
bool is_packager_file(std::string_view name) {
  if (name.ends_with(".tmp")) name.remove_suffix(4);
  if (!name.ends_with(".ts")) return false;
  name.remove_suffix(3);
  const std::size_t dash = name.rfind('-');
  if (dash == std::string_view::npos || !all_digits(name.substr(dash + 1))) return false;
  const std::string_view head = name.substr(0, dash);  // "seg", "seg-<r>", "audio-<pid>"
  if (head == "seg") return true;
  if (head.starts_with("audio-")) return all_digits(head.substr(6));
  if (!head.starts_with("seg-")) return false;
  const std::string_view r = head.substr(4);  // a rendition name, [a-z0-9_-]{1,32}
  return !r.empty() && r.size() <= 32 &&
         std::all_of(r.begin(), r.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

// Removes what the packager writes in a channel's directory (regular files with its names,
// is_packager_file), then the directory if that left it empty. Anything else there stays;
// no symlink is followed (a channel directory that is a symlink is left alone) and no
// subdirectory entered.
void clear_channel_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) return;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e;
    if (!is_packager_file(it->path().filename().string()) || !fs::is_regular_file(it->symlink_status(e))) continue;
    fs::remove(it->path(), e);
  }
  fs::remove(dir, ec);  // only when empty
}

struct StoredSegment {
  std::uint64_t sequence = 0;
  double duration_s = 0;
  bool discontinuity = false;
  std::uint64_t discontinuity_sequence = 0;
  std::int64_t program_date_time_ms = 0;
  bool starts_with_keyframe = true;
  std::uint64_t size = 0;                   // bytes of the segment (in memory or on disk)
  std::shared_ptr<const SharedBytes> bytes; // in memory (a memfd once stored); null when on disk
  std::shared_ptr<const DiskSegment> file;  // on disk (ott.dvr_dir)
  bool disk_failed = false;                 // its write failed: it stays in memory (retried)
  std::shared_ptr<const HlsKey> key;  // AES-128: the bytes are the ciphertext (encrypting channels)
  std::vector<hls::Cue> cues{};       // SCTE-35 splice points (rendered before the segment)
};

// The sequence number from "<prefix><n>.ts", or nullopt.
std::optional<std::uint64_t> segment_sequence(std::string_view name, std::string_view prefix) {
  return hls_name_number(name, prefix, ".ts");
}

// "avc1.64001f,mp4a.40.2" + "ac-3" -> "avc1.64001f,mp4a.40.2,ac-3" (no duplicates).
void merge_codecs(std::string& into, std::string_view more) {
  while (!more.empty()) {
    const std::size_t comma = std::min(more.find(','), more.size());
    const std::string_view c = more.substr(0, comma);
    more = comma < more.size() ? more.substr(comma + 1) : std::string_view{};
    if (c.empty()) continue;
    bool have = false;
    std::string_view rest = into;
    while (!rest.empty() && !have) {
      const std::size_t k = std::min(rest.find(','), rest.size());
      have = rest.substr(0, k) == c;
      rest = k < rest.size() ? rest.substr(k + 1) : std::string_view{};
    }
    if (have) continue;
    if (!into.empty()) into += ',';
    into += c;
  }
}

// What a track is: the channel's own output, a received or transcoded rendition, or an
// alternate audio track cut from the channel's own segments.
enum class TrackKind : std::uint8_t { kPrimary, kReceived, kTranscoded, kAudio };

// A channel's first sequence number and first key id: the wall clock in ms when it is made
// (clamped to [0, 2^52]: hls.js reads integers up to 2^53), or above every number the
// packager issued if that is higher. Numbers then grow by one per segment (per key) of
// the channel, far slower than the clock (at most one per ms is what it takes), so a
// channel made later, in this process or after a restart, starts above every number an
// earlier one issued, as long as the clock does not go back. The key ids and segment
// numbers of older builds (small numbers; random epochs from 2^43 up) are out of the way.
constexpr std::int64_t kMaxFirstNumber = std::int64_t{1} << 52;

// An ETag of a key's bytes (FNV-1a), so a reused URL never validates other bytes.
std::string key_etag(const HlsKey& k) {
  std::uint64_t h = 14695981039346656037ull;
  for (const std::uint8_t b : k.bytes) h = (h ^ b) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"k%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

struct HlsChannelStore;

// One media playlist of a channel and its segments.
struct HlsTrack {
  TrackKind kind = TrackKind::kPrimary;
  std::string rendition;       // "" (primary), the rendition's name, "audio-<pid>"
  std::uint16_t audio_pid = 0; // kAudio
  std::string media_name;      // live.m3u8, live-<r>.m3u8, audio-<pid>.m3u8
  std::string event_name;      // event.m3u8, event-<r>.m3u8, audio-<pid>-event.m3u8
  std::string seg_prefix;      // seg-, seg-<r>-, audio-<pid>-
  PackagedRendition wanted;    // kReceived / kTranscoded: as configured
  HlsChannelStore* channel = nullptr;

  // The packager thread (under Impl::feeds_mu).
  dataplane::OttFeed* feed = nullptr;
  std::unique_ptr<hls::Segmenter> segmenter;  // all but kAudio
  std::shared_ptr<const HlsKey> key;          // encrypting channels: the key in use
  std::uint32_t key_uses = 0;                 // segments under `key`
  bool continued = false;      // restarted over an old window: its first segment is a discontinuity
  bool first = true;
  bool cut_once = false;       // aligned: the segmenter's first (partial) segment went by
  std::uint64_t partial_dropped = 0;
  bool has_next = false;       // aligned numbering (channels with renditions)
  std::uint64_t next_sequence = 0;
  std::unique_ptr<mpegts::TableCarousel> pat, pmt;  // kAudio: the regenerated PSI

  // Under HlsChannelStore::mu.
  std::deque<StoredSegment> window;               // oldest first; the playlist lists the newest
  std::uint64_t window_bytes = 0;                 // of the segments in memory
  std::uint64_t disk_bytes = 0, disk_segments = 0, disk_errors = 0;  // ott.dvr_dir
  std::uint64_t failed_bytes = 0;                 // of window_bytes: segments whose write failed
  std::uint64_t disk_reads_refused = 0;           // get()s refused by the disk-read cap
  std::shared_ptr<const SharedBytes> media;       // rendered once per segment
  std::uint64_t media_first = 0;                  // its MEDIA-SEQUENCE (in its ETag)
  std::shared_ptr<const SharedBytes> event;       // rendered on demand
  std::uint64_t event_first = 0, event_last = 0;  // the sequences it lists
  std::uint64_t newest_sequence = 0;
  // EXT-X-TARGETDURATION of its playlists: segment_seconds, raised to the longest segment it
  // made (EXTINF rounded, RFC 8216 4.3.3.1) and never lowered: a live playlist may change
  // only at its ends (6.2.1), so the target stays after that segment left the window. The
  // channel's target (HlsChannelStore::target_s) at least: its variants and alternates
  // all carry one (6.2.4).
  std::uint32_t target_s = 0;
  std::uint32_t event_target = 0;  // the target `event` was rendered with
  std::uint64_t n_forced = 0;      // held segments that start without a key frame (forced cuts)
  std::chrono::steady_clock::time_point last_segment{};
  std::uint64_t segments = 0;
  std::uint64_t evicted = 0;
  std::uint64_t discontinuities = 0;
  std::uint64_t dropped_packets = 0;
  hls::StreamInfo info;                           // at its newest segment (kAudio: bandwidths only)
  std::string audio_language;                     // kAudio
  std::string audio_codecs;                       // kAudio: RFC 6381
  std::uint8_t audio_channels = 0;
};

struct HlsChannelStore {
  std::string id;
  std::string name;
  bool aligned = false;          // has renditions: PTS-aligned cuts and sequence numbers
  bool encrypt = false;
  std::uint32_t key_rotation_segments = 0;

  // [0] the primary, then the renditions in config order, then audio tracks as found.
  // Changed under both Impl::feeds_mu and `mu`; the packager thread reads it under
  // feeds_mu, the origin's threads under mu.
  std::vector<std::unique_ptr<HlsTrack>> tracks;
  // The packager thread: the slot -> sequence anchor (newest segment of any track), the
  // PSI of the primary's segments (for the audio tracks).
  bool has_anchor = false;
  std::uint64_t anchor_grid = 0;   // 90 kHz, a multiple of the target
  std::uint64_t anchor_sequence = 0;
  std::unique_ptr<mpegts::PsiDecoder> psi = std::make_unique<mpegts::PsiDecoder>();
  // Numbering (see kMaxFirstNumber): the first sequence number, above every sequence number
  // issued, per track (by seg_prefix, which a rendition named "audio-<pid>" does not share
  // with that audio track; a rendition dropped and added again goes on above its old
  // numbers), the next key id of any track.
  std::uint64_t first_number = 0;
  std::uint64_t next_number = 0;
  std::map<std::string, std::uint64_t, std::less<>> next_by_name;
  std::uint64_t next_key_id = 0;
  fs::path dvr_path;            // <ott.dvr_dir>/<id>; empty: segments stay in memory
  int dvr_logged_error = 0;     // the errno last logged for a failed write (0: none since a success)
  // Transcoded renditions: the primary's feed goes in, rung r's output to rung_tracks[r]'s
  // segmenter (the packager thread; its own threads inside).
  // Set under both feeds_mu and mu (channels_json copies it under mu for stats()).
  std::shared_ptr<Transcoder> transcoder;
  std::vector<HlsTrack*> rung_tracks;
  std::string transcode_error;  // the Transcoder could not be made (libx264 missing...); as `transcoder`

  mutable std::mutex mu;  // the tracks' windows and everything below
  std::shared_ptr<const SharedBytes> master;
  hls::MasterPlaylist master_model;  // of `master`, for the time-range masters
  std::uint32_t target_s = 0;        // the largest of its tracks' target_s
  std::uint64_t generation = 0;      // segments stored and set_channels() calls (the master's ETag, with first_number)

  // The video track `rendition` ("" the primary), or with `audio` the alternate audio track
  // of that name: a rendition may be named "audio-<pid>" too.
  [[nodiscard]] HlsTrack* find_track(std::string_view rendition, bool audio = false) const {
    for (const auto& t : tracks)  // null: moved out by set_channels
      if (t && t->rendition == rendition && (t->kind == TrackKind::kAudio) == audio) return t.get();
    return nullptr;
  }
};

std::string rendition_channel_id(const std::string& channel, const std::string& rendition) {
  return channel + "." + rendition;
}

struct HlsPackager::Impl {
  Impl(const dataplane::OttConfig& c, HlsPackagerOptions o) : config(c), options(std::move(o)) {
    if (!options.wall_ms) options.wall_ms = wall_ms_now;
    if (!options.mono_ns) options.mono_ns = [] { return dataplane::Dataplane::now_ns(); };
    // No DVR survives a restart: what a previous run left in a channel's directory goes
    // when set_channels adds the channel (open_channel_dir), nothing else in dvr_dir.
    disk_reads->cap = options.disk_read_cap_bytes != 0
                          ? options.disk_read_cap_bytes
                          : std::max<std::uint64_t>(std::uint64_t{64} << 20, (std::uint64_t{config.memory_mb} << 20) / 4);
  }
  ~Impl() {
    // The segments' files go with their stores; then their emptied directories.
    std::vector<fs::path> dirs;
    for (const auto& c : channels)
      if (!c->dvr_path.empty()) dirs.push_back(c->dvr_path);
    channels.clear();
    for (const auto& d : dirs) clear_channel_dir(d);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // A new channel's DVR directory, emptied (packager's files only), or "" when disabled.
  [[nodiscard]] fs::path open_channel_dir(const std::string& id) const {
    if (config.dvr_dir.empty()) return {};
    const fs::path dir = fs::path(config.dvr_dir) / id;
    clear_channel_dir(dir);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)  // its writes fail and are counted (disk_errors); the segments stay in memory
      log::warn("hls_dvr_dir", {{"channel", id}, {"dir", dir.string()}, {"reason", ec.message()}},
                "cannot create the channel's DVR directory");
    return dir;
  }

  [[nodiscard]] std::uint64_t target_ticks() const { return std::uint64_t{config.segment_seconds} * 90'000; }

  // A new channel's first number (under feeds_mu): see kMaxFirstNumber.
  [[nodiscard]] std::uint64_t first_number() const {
    const std::uint64_t first = options.first_sequence
                                    ? *options.first_sequence
                                    : static_cast<std::uint64_t>(std::clamp<std::int64_t>(options.wall_ms(), 0, kMaxFirstNumber));
    return std::max(first, issued);
  }

  // The lowest number a new track `t` of `ch` may take: none it or an earlier channel
  // with the id used.
  [[nodiscard]] static std::uint64_t floor_of(const HlsChannelStore& ch, const HlsTrack& t) {
    const auto it = ch.next_by_name.find(t.seg_prefix);
    return std::max(ch.first_number, it == ch.next_by_name.end() ? 0 : it->second);
  }

  // `seq` was given to a segment of `t` (packager thread).
  void issue(HlsChannelStore& ch, const HlsTrack& t, std::uint64_t seq) {
    ch.next_number = std::max(ch.next_number, seq + 1);
    issued = std::max(issued, seq + 1);
    std::uint64_t& next = ch.next_by_name[t.seg_prefix];
    next = std::max(next, seq + 1);
  }

  // The segment's number in a channel with renditions: a track's first segment takes the
  // number of its PTS slot relative to the channel's newest numbered segment (the anchor),
  // so renditions that start at different times still number the same time slot alike;
  // after that the track counts on by one (a playlist's numbers must be consecutive), which
  // stays in step as long as the renditions cut at the same PTS. The channel's first
  // segment (no anchor yet) takes the channel's next number (its first: the clock's ms),
  // not its absolute PTS slot, which a restart or a source that restarts its PTS repeats.
  // A first number is never below the channel's first number or the track name's earlier
  // numbers, nor above the clock's ms (a PTS jump makes no leap that a later start could
  // repeat; the anchor's slots never outrun the clock otherwise).
  std::uint64_t aligned_sequence(HlsChannelStore& ch, HlsTrack& t, const hls::Segment& s) {
    constexpr std::uint64_t kTolerance = 900;  // 10 ms, as the Segmenter's cut
    const std::uint64_t target = target_ticks();
    std::uint64_t seq = ch.next_number;
    const std::uint64_t grid = s.has_first_pts ? (s.first_pts + kTolerance) / target * target : 0;
    if (t.has_next) {
      seq = t.next_sequence;
    } else {
      if (s.has_first_pts && ch.has_anchor) {
        auto diff = static_cast<std::int64_t>(grid) - static_cast<std::int64_t>(ch.anchor_grid);
        constexpr auto kHalf = static_cast<std::int64_t>(mpegts::kPtsWrap / 2);
        if (diff > kHalf) diff -= static_cast<std::int64_t>(mpegts::kPtsWrap);
        if (diff < -kHalf) diff += static_cast<std::int64_t>(mpegts::kPtsWrap);
        const std::int64_t slots = std::llround(static_cast<double>(diff) / static_cast<double>(target));
        const auto ceiling = std::max(ch.next_number, static_cast<std::uint64_t>(std::max<std::int64_t>(0, options.wall_ms())));
        seq = static_cast<std::uint64_t>(std::clamp(static_cast<std::int64_t>(ch.anchor_sequence) + slots, std::int64_t{0},
                                                    static_cast<std::int64_t>(ceiling)));
      }
      seq = std::max(seq, floor_of(ch, t));
    }
    t.has_next = true;
    t.next_sequence = seq + 1;
    if (s.has_first_pts) {
      ch.has_anchor = true;
      ch.anchor_grid = grid;
      ch.anchor_sequence = seq;
    }
    return seq;
  }

  // The key of the next segment of `t` (encrypting channels): a new one for the track's
  // first segment, then every key_rotation_segments segments (0: never again); its id from
  // the channel's counter, so no two tracks and no two channel starts share one.
  std::shared_ptr<const HlsKey> next_key(HlsChannelStore& ch, HlsTrack& t) {
    if (!t.key || (ch.key_rotation_segments != 0 && t.key_uses >= ch.key_rotation_segments)) {
      t.key = std::make_shared<const HlsKey>(make_hls_key(ch.next_key_id++));
      t.key_uses = 0;
      issued = std::max(issued, ch.next_key_id);
    }
    ++t.key_uses;
    return t.key;
  }

  // The channel's share of the memory budget for one of its tracks.
  [[nodiscard]] std::uint64_t budget(const HlsChannelStore& ch) const {
    const std::uint64_t n_channels = std::max<std::size_t>(1, channels.size());
    const std::uint64_t n_tracks = std::max<std::size_t>(1, ch.tracks.size());
    return std::uint64_t{config.memory_mb} * 1024 * 1024 / n_channels / n_tracks;
  }
  // ... of the disk budget (ott.dvr_disk_mb; no limit when 0).
  [[nodiscard]] std::uint64_t disk_budget(const HlsChannelStore& ch) const {
    if (config.dvr_disk_mb == 0) return std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t n_channels = std::max<std::size_t>(1, channels.size());
    const std::uint64_t n_tracks = std::max<std::size_t>(1, ch.tracks.size());
    return std::uint64_t{config.dvr_disk_mb} * 1024 * 1024 / n_channels / n_tracks;
  }

  // A segment of `t` is complete (packager thread, inside Segmenter::push).
  void on_segment(HlsChannelStore& ch, HlsTrack& t, hls::Segment&& s) {
    if (ch.aligned && !t.cut_once) {
      // A segmenter's first segment runs from the first key frame it saw to the first
      // aligned boundary: mostly part of a slot, which another rendition holds whole under
      // the same number. Not published (counted); the next one starts on a boundary.
      t.cut_once = true;
      ++t.partial_dropped;
      return;
    }
    if (t.continued) {
      // A new timeline after the restart: the first segment carries the tag, the ones
      // after it count it (RFC 8216 4.3.3.3). When the segmenter tagged that segment itself
      // (a discontinuity in the unpublished first slot of an aligned track), its numbers
      // after it count the one tag already.
      if (t.first) {
        if (s.discontinuity) t.continued = false;
        s.discontinuity = true;
      } else {
        ++s.discontinuity_sequence;
      }
    }
    t.first = false;
    if (ch.aligned) s.sequence = aligned_sequence(ch, t, s);
    issue(ch, t, s.sequence);
    StoredSegment st;
    st.sequence = s.sequence;
    st.duration_s = s.duration_s;
    st.discontinuity = s.discontinuity;
    st.discontinuity_sequence = s.discontinuity_sequence;
    st.program_date_time_ms = s.program_date_time_ms;
    st.starts_with_keyframe = s.starts_with_keyframe;
    st.cues = std::move(s.cues);
    st.bytes = new_segment_bytes(ch, t, st.sequence,
                                 std::string_view(reinterpret_cast<const char*>(s.bytes.data()), s.bytes.size()));
    if (t.kind == TrackKind::kTranscoded) {
      // Its wall time is the packager's at the transcoder's output, late by the encoder's
      // delay: the primary's segment of the same slot (same number) has the right one.
      std::lock_guard lock(ch.mu);
      for (auto it = ch.tracks.front()->window.rbegin(); it != ch.tracks.front()->window.rend(); ++it) {
        if (it->sequence < st.sequence) break;
        if (it->sequence == st.sequence) st.program_date_time_ms = it->program_date_time_ms;
      }
    }
    const hls::StreamInfo info = t.segmenter->stream_info();
    if (t.kind == TrackKind::kPrimary) split_audio(ch, st, info);
    store(ch, t, std::move(st), &info);
  }

  // The alternate audio tracks of the primary's segment `st` (plain bytes): for each audio
  // PID after the first of the followed program, PAT + a PMT of that PID alone + its
  // packets, with the segment's number, times and cues (packager thread).
  void split_audio(HlsChannelStore& ch, const StoredSegment& st, const hls::StreamInfo& info) {
    if (info.audio.size() < 2) return;
    const std::string_view b = st.bytes->view();
    const std::size_t n = b.size() / mpegts::kPacketSize;
    mpegts::TsPacket p;
    for (std::size_t i = 0; i < n; ++i) {
      std::memcpy(p.bytes.data(), b.data() + i * mpegts::kPacketSize, mpegts::kPacketSize);
      if (ch.psi->is_psi_pid(p.pid())) (void)ch.psi->push(p);
    }
    const mpegts::Service* svc = ch.psi->model().find_service(info.service_id);
    if (svc == nullptr) return;
    std::size_t n_audio = 0;
    for (const auto& es : svc->streams) {
      if (mpegts::codec_kind(es.codec) != mpegts::StreamKind::kAudio) continue;
      if (n_audio++ == 0) continue;  // the first audio stays muxed in the variant
      const std::string rendition = "audio-" + std::to_string(es.pid);
      HlsTrack* t = ch.find_track(rendition, true);
      if (t == nullptr) {
        auto nt = std::make_unique<HlsTrack>();
        nt->kind = TrackKind::kAudio;
        nt->rendition = rendition;
        nt->audio_pid = es.pid;
        nt->media_name = rendition + ".m3u8";
        nt->event_name = rendition + "-event.m3u8";
        nt->seg_prefix = rendition + "-";
        nt->channel = &ch;
        nt->pat = std::make_unique<mpegts::TableCarousel>(mpegts::kPatPid);
        nt->pmt = std::make_unique<mpegts::TableCarousel>(svc->pmt_pid);
        t = nt.get();
        std::lock_guard lock(ch.mu);
        ch.tracks.push_back(std::move(nt));
      }
      if (t->pmt->pid() != svc->pmt_pid) t->pmt = std::make_unique<mpegts::TableCarousel>(svc->pmt_pid);
      mpegts::Service one;
      one.service_id = svc->service_id;
      one.pmt_pid = svc->pmt_pid;
      one.pcr_pid = mpegts::kNullPid;  // no PCR: the PES timestamps are the timeline
      one.has_pmt = true;
      one.streams.push_back(es);
      const std::uint16_t tsid = ch.psi->model().transport_stream_id;
      const std::vector<mpegts::PatEntry> programs{{svc->service_id, svc->pmt_pid}};
      (void)t->pat->update([&](std::uint8_t v) { return mpegts::build_pat(tsid, programs, v); });
      (void)t->pmt->update([&](std::uint8_t v) { return mpegts::build_pmt(one, v); });
      std::string out;
      out.reserve(b.size() / 4);
      std::array<mpegts::TsPacket, 8> psi_packets;
      for (auto* c : {t->pat.get(), t->pmt.get()}) {
        const std::size_t k = c->packetize(psi_packets);
        for (std::size_t j = 0; j < k; ++j)
          out.append(reinterpret_cast<const char*>(psi_packets[j].bytes.data()), mpegts::kPacketSize);
      }
      for (std::size_t i = 0; i < n; ++i) {
        const char* q = b.data() + i * mpegts::kPacketSize;
        const auto pid = static_cast<std::uint16_t>(((static_cast<unsigned>(q[1]) & 0x1F) << 8) | static_cast<std::uint8_t>(q[2]));
        if (pid == es.pid) out.append(q, mpegts::kPacketSize);
      }
      for (const auto& a : info.audio) {
        if (a.pid != es.pid) continue;
        t->audio_codecs = a.codec_string;
        t->audio_channels = a.channels;
      }
      t->audio_language = es.language;
      StoredSegment as = st;
      as.key = nullptr;
      as.bytes = new_segment_bytes(ch, *t, as.sequence, out);
      issue(ch, *t, as.sequence);
      store(ch, *t, std::move(as), nullptr);
    }
  }

  // "<seg_prefix><sequence>.ts": the segment's URI, DVR file and memfd name.
  static std::string segment_file_name(const HlsTrack& t, std::uint64_t sequence) {
    return t.seg_prefix + std::to_string(sequence) + ".ts";
  }

  // The bytes of a new segment of `t`: straight into its memfd (the origin sends it with
  // sendfile), or on the heap for an encrypting channel, whose ciphertext store() puts there.
  static std::shared_ptr<const SharedBytes> new_segment_bytes(const HlsChannelStore& ch, const HlsTrack& t,
                                                              std::uint64_t sequence, std::string_view bytes) {
    if (ch.encrypt) return SharedBytes::heap(std::string(bytes));
    return SharedBytes::in_memfd(bytes, segment_file_name(t, sequence).c_str());
  }

  // Stores a segment of `t` (packager thread): encrypts it, moves what left the live
  // window to disk (ott.dvr_dir), evicts, renders (`info`: what the track's segmenter
  // knows; nullptr for an audio track, whose rates are measured here).
  void store(HlsChannelStore& ch, HlsTrack& t, StoredSegment&& st, const hls::StreamInfo* info) {
    if (ch.encrypt) {  // AES-128 once here: the origin serves the ciphertext as it is
      st.key = next_key(ch, t);
      st.bytes = SharedBytes::in_memfd(hls_encrypt(*st.key, st.sequence, st.bytes->view()),
                                       segment_file_name(t, st.sequence).c_str());
    }
    st.size = st.bytes->size();
    const std::uint64_t share = budget(ch);
    std::vector<StoredSegment> gone;  // evicted: destroyed (files deleted) after the lock
    std::vector<std::pair<std::uint64_t, std::shared_ptr<const SharedBytes>>> spill;  // sequence, bytes
    {
      std::lock_guard lock(ch.mu);
      const bool disc = st.discontinuity;
      t.window_bytes += st.size;
      const auto ms = std::llround(std::max(0.0, st.duration_s) * 1000.0);
      t.target_s = std::max({t.target_s, ch.target_s, config.segment_seconds, static_cast<std::uint32_t>((ms + 500) / 1000)});
      if (t.target_s > ch.target_s) raise_target(ch, t.target_s);
      if (!st.starts_with_keyframe) ++t.n_forced;
      t.window.push_back(std::move(st));
      ++t.segments;
      ++ch.generation;
      if (disc) ++t.discontinuities;
      t.newest_sequence = t.window.back().sequence;
      t.last_segment = std::chrono::steady_clock::now();
      if (!ch.dvr_path.empty()) {
        // To disk: what left the live window, and older in-memory ones while the memory
        // share is exceeded (never the newest). A failed write is retried, the oldest one
        // per new segment (a full disk costs one more try per segment, not one per held one).
        std::uint64_t in_memory = t.window_bytes;
        bool retried = false;
        const std::size_t live_from = t.window.size() - std::min<std::size_t>(t.window.size(), config.window_segments);
        for (std::size_t i = 0; i + 1 < t.window.size(); ++i) {
          const StoredSegment& s = t.window[i];
          if (!s.bytes) continue;
          if (s.disk_failed) {
            if (retried) continue;
            retried = true;
          } else if (i >= live_from && in_memory <= share) {
            break;
          }
          spill.emplace_back(s.sequence, s.bytes);
          in_memory -= s.size;
        }
      }
      if (!spill.empty()) {
        // The new segment is listed before the writes (~1 ms for a 1.5 MB segment into the
        // page cache): they change no playlist. Eviction may re-render below.
        measure(t, info);
        render(t);
        // Not for an audio track: its segment is stored just before the primary's it was cut
        // from (split_audio), and a master made in between would leave the alternate out
        // (its newest segment is not the primary's yet); the primary's store makes it.
        if (t.kind != TrackKind::kAudio) render_master(ch);
      }
    }
    const bool rendered = !spill.empty();
    // The writes, outside the lock (the origin keeps serving the channel from memory);
    // only this thread changes the window, so the segments are still there after it.
    std::vector<std::pair<std::uint64_t, std::shared_ptr<const DiskSegment>>> written;
    int error = 0;
    std::string failed_path;
    for (const auto& [sequence, bytes] : spill) {
      const std::string path = (ch.dvr_path / segment_file_name(t, sequence)).string();
      int e = 0;
      written.emplace_back(sequence, write_segment_file(path, bytes->view(), e));
      if (e != 0) {
        error = e;
        failed_path = path;
      }
    }
    spill.clear();
    if (error != 0 && ch.dvr_logged_error != error) {
      ch.dvr_logged_error = error;
      log::warn("hls_dvr_write", {{"channel", ch.id}, {"file", failed_path}, {"reason", std::strerror(error)}},
                "cannot write a DVR segment to disk: kept in memory within the memory budget (logged once per cause)");
    } else if (error == 0 && !written.empty()) {
      ch.dvr_logged_error = 0;
    }
    std::lock_guard lock(ch.mu);
    for (auto& [sequence, file] : written) {
      const auto it = std::partition_point(t.window.begin(), t.window.end(),
                                           [&](const StoredSegment& s) { return s.sequence < sequence; });
      if (it == t.window.end() || it->sequence != sequence || !it->bytes) continue;  // cannot happen (this thread)
      if (!file) {
        if (!it->disk_failed) {  // counted once, however often retried
          it->disk_failed = true;
          t.failed_bytes += it->size;
          ++t.disk_errors;
        }
        continue;
      }
      if (it->disk_failed) {
        it->disk_failed = false;
        t.failed_bytes -= it->size;
      }
      it->file = std::move(file);
      it->bytes.reset();
      t.window_bytes -= it->size;
      t.disk_bytes += it->size;
      ++t.disk_segments;
    }
    const std::size_t held = t.window.size();
    evict(ch, t, gone);
    if (rendered && t.window.size() == held) return;
    measure(t, info);
    render(t);
    if (t.kind != TrackKind::kAudio) render_master(ch);  // as above
  }

  // RFC 8216 6.2.4: every media playlist of every variant (and the alternates) has the same
  // target duration. A track's raised target raises the channel's and every other track's,
  // whose live playlists are rendered again (their ETags carry the target).
  void raise_target(HlsChannelStore& ch, std::uint32_t target) const {
    ch.target_s = target;
    for (const auto& o : ch.tracks) {
      if (o->target_s >= target) continue;
      o->target_s = target;
      if (!o->window.empty()) render(*o);
    }
  }

  // Evicts what `t` no longer keeps into `gone` (under ch.mu; destroyed, its files deleted,
  // after the lock); never the newest segment.
  void evict(const HlsChannelStore& ch, HlsTrack& t, std::vector<StoredSegment>& gone) const {
    const std::uint64_t share = budget(ch);
    // Kept: the live playlist's segments (live_first) and, for clients that still fetch
    // what slid out of it, as many again plus one (RFC 8216 6.2.2: a removed segment stays available for its
    // own duration plus the playlist's, W + 1 segments' time after it left a W-segment
    // playlist), and what started within dvr_hours of the newest segment's end; the
    // track's shares of the memory budget and of the disk budget first (oldest out first).
    const std::size_t listed = t.window.size() - live_first(t);
    const std::size_t keep = 2 * std::max<std::size_t>(config.window_segments, listed) + 1;
    const std::uint64_t disk_share = disk_budget(ch);
    const StoredSegment& newest = t.window.back();
    const std::int64_t horizon =
        config.dvr_hours == 0 ? kForever
                              : newest.program_date_time_ms + std::llround(newest.duration_s * 1000) -
                                    std::int64_t{config.dvr_hours} * 3'600'000;
    // With dvr_dir the memory share evicts only to free the memory of failed writes: while
    // the front is in memory or a failed write still is (behind on-disk ones, which go
    // first: the held numbers stay consecutive). Memory over the share for the newest
    // segment alone (the others went to disk above) deletes nothing from disk.
    const auto over_memory = [&] {
      return t.window_bytes > share && (ch.dvr_path.empty() || !t.window.front().file || t.failed_bytes > 0);
    };
    // A playlist cannot skip numbers: a player numbers its segments MEDIA-SEQUENCE + index,
    // and that number is an encrypted segment's IV. After a gap (an alternate audio whose
    // PID left the PMT and came back) what is held before it goes.
    const auto gap = [&] { return t.window.back().sequence - t.window.front().sequence + 1 != t.window.size(); };
    while (t.window.size() > 1 && (gap() || over_memory() || t.disk_bytes > disk_share ||
                                   (t.window.size() > keep && t.window.front().program_date_time_ms < horizon))) {
      StoredSegment& front = t.window.front();
      if (!front.starts_with_keyframe) --t.n_forced;
      if (front.file) {
        t.disk_bytes -= front.size;
        --t.disk_segments;
      } else {
        t.window_bytes -= front.size;
        if (front.disk_failed) t.failed_bytes -= front.size;
      }
      gone.push_back(std::move(front));
      t.window.pop_front();
      ++t.evicted;
    }
  }

  // The track's stream info at its newest segment (under ch.mu): the segmenter's, or for an
  // audio track (`info` nullptr) measured on the held segments: the mean and the largest
  // single segment's rate.
  static void measure(HlsTrack& t, const hls::StreamInfo* info) {
    if (info != nullptr) {
      t.info = *info;
      return;
    }
    double bits = 0, secs = 0, peak = 0;
    for (const auto& s : t.window) {
      bits += static_cast<double>(s.size) * 8;
      secs += s.duration_s;
      if (s.duration_s > 0) peak = std::max(peak, static_cast<double>(s.size) * 8 / s.duration_s);
    }
    t.info.average_bandwidth_bps = secs > 0 ? static_cast<std::uint64_t>(std::llround(bits / secs)) : 0;
    t.info.peak_bandwidth_bps = std::max(t.info.average_bandwidth_bps, static_cast<std::uint64_t>(std::llround(peak)));
  }

  [[nodiscard]] static hls::MediaEntry entry(const HlsTrack& t, const StoredSegment& s) {
    hls::MediaEntry e{segment_file_name(t, s.sequence), s.duration_s, s.discontinuity,
                      s.program_date_time_ms, s.cues};
    if (s.key) e.key_uri = hls_key_name(s.key->id);
    return e;
  }

  // Where the live playlist of `t` starts in its window (under ch.mu): the last
  // window_segments segments, and older held ones while those last less than three target
  // durations. RFC 8216 6.2.2 forbids removing a segment that would leave a live playlist
  // shorter (players start 3 target durations from its end), and segments can be short (a
  // splice cut, a discontinuity) or the target raised for good by one long segment.
  [[nodiscard]] std::size_t live_first(const HlsTrack& t) const {
    const auto ms = [](const StoredSegment& s) { return std::llround(std::max(0.0, s.duration_s) * 1000.0); };
    const std::int64_t need_ms = 3'000 * std::int64_t{std::max(t.target_s, config.segment_seconds)};
    std::size_t first = t.window.size() - std::min<std::size_t>(t.window.size(), config.window_segments);
    std::int64_t total_ms = 0;
    for (std::size_t i = first; i < t.window.size(); ++i) total_ms += ms(t.window[i]);
    while (first > 0 && total_ms < need_ms) total_ms += ms(t.window[--first]);
    return first;
  }

  // The media playlist of `t` from its window (under ch.mu).
  void render(HlsTrack& t) const {
    hls::MediaPlaylist p;
    p.target_duration_s = std::max(t.target_s, config.segment_seconds);
    const std::size_t first = live_first(t);
    p.media_sequence = t.window[first].sequence;
    t.media_first = p.media_sequence;
    p.discontinuity_sequence = t.window[first].discontinuity_sequence;
    p.independent_segments = true;  // unless a forced cut (a GOP far longer than the target) is listed
    for (std::size_t i = first; i < t.window.size(); ++i) {
      const StoredSegment& s = t.window[i];
      p.independent_segments = p.independent_segments && s.starts_with_keyframe;
      p.entries.push_back(entry(t, s));
    }
    t.media = SharedBytes::heap(hls::media_playlist(p));
  }

  // The master playlist (under ch.mu): every video track with segments, by bandwidth
  // (lowest first); the alternate audio tracks that are current (their newest segment is
  // the primary's) as EXT-X-MEDIA with a URI, the primary's first audio as the group's
  // default muxed in the variants (EXT-X-MEDIA without URI, RFC 8216 4.3.4.2.1).
  static hls::MasterPlaylist master_of(const HlsChannelStore& ch) {
    hls::MasterPlaylist m;
    const HlsTrack& primary = *ch.tracks.front();
    std::vector<const HlsTrack*> alts;
    for (const auto& t : ch.tracks)
      if (t->kind == TrackKind::kAudio && !t->window.empty() && !primary.window.empty() &&
          t->newest_sequence == primary.newest_sequence)
        alts.push_back(t.get());
    std::uint64_t alt_peak = 0, alt_average = 0;
    std::string alt_codecs;
    if (!alts.empty() && !primary.info.audio.empty()) {
      const hls::AudioTrack& main = primary.info.audio.front();
      hls::AudioRendition a;
      a.group_id = kAudioGroup;
      a.language = main.language;
      a.name = main.language.empty() ? "main" : main.language;
      a.is_default = true;
      a.channels = main.channels;
      m.audio.push_back(std::move(a));
      for (const HlsTrack* t : alts) {
        hls::AudioRendition r;
        r.group_id = kAudioGroup;
        r.language = t->audio_language;
        r.name = (t->audio_language.empty() ? "audio" : t->audio_language) + " (" + std::to_string(t->audio_pid) + ")";
        r.is_default = false;
        r.autoselect = true;
        r.channels = t->audio_channels;
        r.uri = t->media_name;
        m.audio.push_back(std::move(r));
        alt_peak = std::max(alt_peak, t->info.peak_bandwidth_bps);
        alt_average = std::max(alt_average, t->info.average_bandwidth_bps);
        merge_codecs(alt_codecs, t->audio_codecs);
      }
    } else {
      alts.clear();
    }
    // RFC 8216 4.3.5.1: INDEPENDENT-SEGMENTS here covers every segment of every playlist
    // listed (time ranges of any held one too): not while one holds a forced cut.
    m.independent_segments = std::none_of(alts.begin(), alts.end(), [](const HlsTrack* t) { return t->n_forced > 0; });
    for (const auto& t : ch.tracks) {
      if (t->kind == TrackKind::kAudio || t->window.empty()) continue;
      m.independent_segments = m.independent_segments && t->n_forced == 0;
      hls::Variant v = hls::variant_from(t->info, t->media_name, alts.empty() ? std::string{} : std::string(kAudioGroup));
      // A variant's rate counts the alternate it may play with (RFC 8216 4.3.4.2).
      v.bandwidth_bps += alt_peak;
      if (v.average_bandwidth_bps > 0) v.average_bandwidth_bps += alt_average;
      merge_codecs(v.codecs, alt_codecs);
      m.variants.push_back(std::move(v));
    }
    std::stable_sort(m.variants.begin(), m.variants.end(),
                     [](const hls::Variant& a, const hls::Variant& b) { return a.bandwidth_bps < b.bandwidth_bps; });
    return m;
  }

  void render_master(HlsChannelStore& ch) const {
    ch.master_model = master_of(ch);
    ch.master = ch.master_model.variants.empty() ? nullptr : SharedBytes::heap(hls::master_playlist(ch.master_model));
  }

  // The held segments of `t` whose PDT is in [r.start, r.end), as a VOD playlist when the
  // range is over and an EVENT one otherwise (under ch.mu); no entries when none.
  hls::MediaPlaylist select(const HlsTrack& t, const TimeRange& r, std::int64_t now_ms) const {
    hls::MediaPlaylist p;
    p.target_duration_s = std::max(t.target_s, config.segment_seconds);
    const auto& w = t.window;
    const auto before = [](std::int64_t x) { return [x](const StoredSegment& s) { return s.program_date_time_ms < x; }; };
    const auto first = std::partition_point(w.begin(), w.end(), before(r.start));
    const auto last = std::partition_point(first, w.end(), before(r.end));
    if (first == last) return p;
    p.media_sequence = first->sequence;
    p.discontinuity_sequence = first->discontinuity_sequence;
    p.entries.reserve(static_cast<std::size_t>(last - first));
    for (auto it = first; it != last; ++it) {
      p.independent_segments = p.independent_segments && it->starts_with_keyframe;
      p.entries.push_back(entry(t, *it));
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
    std::vector<std::shared_ptr<HlsChannelStore>> list;
    {
      std::lock_guard lock(channels_mu);
      list = channels;
    }
    // The feed's times are the data plane's monotonic clock; the playlists want UTC.
    const std::uint64_t mono_now = options.mono_ns();
    const std::int64_t wall_now = options.wall_ms();
    for (const auto& chp : list) {
      HlsChannelStore& ch = *chp;
      // By index: a primary segment may add an audio track to the list.
      for (std::size_t k = 0; k < ch.tracks.size(); ++k) {
        HlsTrack& t = *ch.tracks[k];
        if (t.feed == nullptr || !t.segmenter) continue;
        Transcoder* tc = t.kind == TrackKind::kPrimary ? ch.transcoder.get() : nullptr;  // set under feeds_mu
        (void)t.feed->read([&](const dataplane::OttChunk& c) {
          const auto age_ms = static_cast<std::int64_t>(mono_now > c.ns ? (mono_now - c.ns) / 1'000'000 : 0);
          t.segmenter->push(c.packets, wall_now - age_ms, c.discontinuity);
          if (tc != nullptr)  // copies into its bounded queue, never waits (drops are counted)
            tc->push({reinterpret_cast<const std::uint8_t*>(c.packets.data()), c.packets.size() * mpegts::kPacketSize},
                     c.discontinuity);
        });
        const auto& st = t.segmenter->stats();
        std::uint64_t dropped = 0;
        for (const auto d : st.dropped) dropped += d;
        std::lock_guard lock(ch.mu);
        t.dropped_packets = dropped;
      }
      if (ch.transcoder) {
        // The rungs' output; their segments take the primary's PROGRAM-DATE-TIME for the
        // same slot (on_segment), so the encoder's delay does not shift them.
        while (ch.transcoder->pop(chunk)) {
          if (chunk.rung >= ch.rung_tracks.size()) continue;
          HlsTrack& t = *ch.rung_tracks[chunk.rung];
          if (t.segmenter) t.segmenter->push_bytes(chunk.ts, wall_now, chunk.discontinuity);
        }
      }
    }
  }

  std::shared_ptr<HlsChannelStore> find(std::string_view id) const {
    std::lock_guard lock(channels_mu);
    for (const auto& c : channels)
      if (c->id == id) return c;
    return nullptr;
  }

  // A new segmenter for `t` (under feeds_mu); `old` is the track it replaces (its window
  // goes on), or nullptr; `primary`: the channel's own track, for a rendition.
  void start_track(HlsChannelStore& ch, HlsTrack& t, HlsTrack* old, const HlsTrack* primary = nullptr) {
    hls::SegmenterConfig sc;
    sc.target_duration_s = static_cast<double>(config.segment_seconds);
    sc.align_to_pts = ch.aligned;
    sc.first_sequence = floor_of(ch, t);  // a plain channel's new track (aligned: aligned_sequence)
    // DISCONTINUITY-SEQUENCE may only grow (RFC 8216 6.2.1), across restarts too: a new
    // track counts from the channel's first number, which is above everything an earlier
    // run issued (kMaxFirstNumber), and every one of its discontinuities sits on a segment.
    sc.first_discontinuity_sequence = ch.first_number;
    if (primary != nullptr) {
      // Matching content in the variants has matching discontinuity sequence numbers (RFC
      // 8216 6.2.4): a rendition counts on from the channel's own track, which may have had
      // discontinuities before it came (plus the tag a restarted one's next segment carries).
      std::lock_guard lock(ch.mu);
      if (!primary->window.empty()) {
        const StoredSegment& last = primary->window.back();
        sc.first_discontinuity_sequence = last.discontinuity_sequence + (last.discontinuity ? 1 : 0) +
                                          (primary->continued && primary->first ? 1 : 0);
      }
    }
    if (old != nullptr) {
      // The same track restarted (a reload changed it): its sequence numbers go on, so
      // players and caches never see a number reused; the timeline jump is a discontinuity.
      std::lock_guard lock(ch.mu);
      if (!old->window.empty()) sc.first_sequence = std::max(sc.first_sequence, old->newest_sequence + 1);
      t.window = old->window;
      t.window_bytes = old->window_bytes;
      t.disk_bytes = old->disk_bytes;
      t.disk_segments = old->disk_segments;
      t.disk_errors = old->disk_errors;
      t.failed_bytes = old->failed_bytes;
      t.disk_reads_refused = old->disk_reads_refused;
      t.media = old->media;
      t.media_first = old->media_first;
      t.info = old->info;
      t.newest_sequence = old->newest_sequence;
      t.target_s = old->target_s;
      t.n_forced = old->n_forced;
      t.last_segment = old->last_segment;
      if (!old->window.empty()) {
        // The count before the newest old segment, plus its own tag if it has one.
        const StoredSegment& last = old->window.back();
        sc.first_discontinuity_sequence = last.discontinuity_sequence + (last.discontinuity ? 1 : 0);
        t.has_next = true;
        t.next_sequence = old->newest_sequence + 1;
      }
    }
    // Encrypting: a new key for its first segment, its id from the channel's counter (the
    // old window's keys stay served while its segments are held).
    t.key = nullptr;
    t.key_uses = 0;
    t.continued = old != nullptr && !t.window.empty();
    t.first = true;
    t.cut_once = false;
    HlsTrack* raw = &t;
    Impl* impl = this;
    t.segmenter = std::make_unique<hls::Segmenter>(
        sc, [impl, raw](hls::Segment&& s) { impl->on_segment(*raw->channel, *raw, std::move(s)); });
  }

  dataplane::OttConfig config;
  HlsPackagerOptions options;
  std::mutex feeds_mu;            // feed pointers, segmenters, track lists; held for a whole poll pass
  mutable std::mutex channels_mu; // the list
  std::vector<std::shared_ptr<HlsChannelStore>> channels;
  std::thread thread;
  std::atomic<bool> stopping{false};
  TranscodedChunk chunk;  // the packager thread's, reused
  std::shared_ptr<DiskReadBudget> disk_reads = std::make_shared<DiskReadBudget>();
  // Above every sequence number and key id this packager issued (feeds_mu): a channel
  // made again starts above them even when the clock stood still.
  std::uint64_t issued = 0;
};

HlsPackager::HlsPackager(const dataplane::OttConfig& config, HlsPackagerOptions options)
    : impl_(std::make_unique<Impl>(config, std::move(options))) {}
HlsPackager::~HlsPackager() { stop(); }

void HlsPackager::set_channels(std::vector<PackagedChannel> wanted) {
  Impl& d = *impl_;
  std::lock_guard feeds(d.feeds_mu);
  std::vector<std::shared_ptr<HlsChannelStore>> next;
  unsigned transcoding = 0;  // channels with transcoded rungs (they share the CPU budget)
  for (const PackagedChannel& w : wanted)
    transcoding += std::any_of(w.renditions.begin(), w.renditions.end(), [](const PackagedRendition& r) { return r.feed == nullptr; }) ? 1u : 0u;
  for (const PackagedChannel& w : wanted) {
    std::shared_ptr<HlsChannelStore> ch = d.find(w.id);
    const bool aligned = !w.renditions.empty();
    if (ch && (ch->aligned != aligned || ch->encrypt != w.encrypt || ch->key_rotation_segments != w.key_rotation_segments)) {
      // Cutting or encryption changes: every track starts anew over its old window.
      for (auto& t : ch->tracks) t->feed = nullptr;
    }
    if (!ch) {
      ch = std::make_shared<HlsChannelStore>();
      ch->id = w.id;
      ch->dvr_path = d.open_channel_dir(w.id);
      ch->first_number = d.first_number();
      ch->next_number = ch->first_number;
      ch->next_key_id = ch->first_number;
    }
    {
      std::lock_guard lock(ch->mu);
      ch->name = w.name;
    }
    ch->aligned = aligned;  // read by the packager thread only (feeds_mu)
    ch->encrypt = w.encrypt;
    ch->key_rotation_segments = w.key_rotation_segments;
    // The wanted tracks: the primary, then each rendition; a track whose feed is unchanged
    // keeps its segmenter, window and numbers (`kept`); others start anew over the old
    // window (`made`). ch->tracks changes only below, under ch->mu (the origin reads it).
    struct Slot {
      HlsTrack* kept = nullptr;
      std::unique_ptr<HlsTrack> made;
    };
    std::vector<Slot> plan;
    const auto want = [&](TrackKind kind, const std::string& rendition, dataplane::OttFeed* feed, const PackagedRendition& r) {
      HlsTrack* old = ch->find_track(rendition);
      const bool same = old != nullptr && old->kind == kind && old->wanted == r && old->segmenter != nullptr &&
                        (kind == TrackKind::kTranscoded ? true : old->feed == feed && feed != nullptr);
      if (same) {
        plan.push_back(Slot{old, nullptr});
        return;
      }
      auto t = std::make_unique<HlsTrack>();
      t->kind = kind;
      t->rendition = rendition;
      t->wanted = r;
      t->channel = ch.get();
      t->feed = feed;
      if (kind == TrackKind::kPrimary) {
        t->media_name = kMediaName;
        t->event_name = kEventName;
        t->seg_prefix = "seg-";
      } else {
        t->media_name = "live-" + rendition + ".m3u8";
        t->event_name = "event-" + rendition + ".m3u8";
        t->seg_prefix = "seg-" + rendition + "-";
      }
      // A transcoded rung has no feed of its own: the channel's Transcoder's output for it
      // goes to its segmenter (poll_once).
      const HlsTrack* primary = plan.empty() ? nullptr : plan.front().kept != nullptr ? plan.front().kept : plan.front().made.get();
      d.start_track(*ch, *t, old != nullptr && old->kind == kind ? old : nullptr, primary);
      plan.push_back(Slot{nullptr, std::move(t)});
    };
    want(TrackKind::kPrimary, "", w.feed, PackagedRendition{});
    for (const auto& r : w.renditions)
      want(r.feed != nullptr ? TrackKind::kReceived : TrackKind::kTranscoded, r.name, r.feed, r);
    const bool primary_kept = plan.front().kept != nullptr;
    std::vector<std::unique_ptr<HlsTrack>> tracks;
    {
      std::lock_guard lock(ch->mu);
      for (Slot& slot : plan) {
        if (!slot.kept) {
          tracks.push_back(std::move(slot.made));
          continue;
        }
        for (auto& t : ch->tracks)
          if (t.get() == slot.kept) tracks.push_back(std::move(t));
      }
      // The audio tracks follow the primary (a restarted primary goes on with their numbers).
      for (auto& t : ch->tracks)
        if (t && t->kind == TrackKind::kAudio) tracks.push_back(std::move(t));
      ch->tracks = std::move(tracks);  // the others go (their windows with them)
      ++ch->generation;  // the master may have lost or gained a variant: a new ETag
      d.render_master(*ch);
    }
    // Transcoded rungs: one Transcoder per channel, rebuilt when the primary restarted or
    // the ladder changed; its CPU budget is ott.transcode_threads shared by such channels.
    std::vector<TranscodeRung> rungs;
    std::vector<HlsTrack*> rung_tracks;
    for (const auto& t : ch->tracks) {
      if (t->kind != TrackKind::kTranscoded) continue;
      rungs.push_back(TranscodeRung{t->rendition, t->wanted.height, t->wanted.video_kbps});
      rung_tracks.push_back(t.get());
    }
    const auto same_rungs = [&](const TranscoderConfig& c) {
      if (c.rungs.size() != rungs.size()) return false;
      for (std::size_t i = 0; i < rungs.size(); ++i)
        if (c.rungs[i].name != rungs[i].name || c.rungs[i].height != rungs[i].height || c.rungs[i].video_kbps != rungs[i].video_kbps)
          return false;
      return true;
    };
    // The budget's share changes when channels that transcode come or go: a transcoder
    // made for another share is rebuilt too (at least one thread each, whatever the budget).
    const unsigned share = std::max(1u, d.config.transcode_threads / std::max(1u, transcoding));
    if (rungs.empty() || !primary_kept || !ch->transcoder || !same_rungs(ch->transcoder->config()) ||
        ch->transcoder->config().threads != share) {
      std::shared_ptr<Transcoder> made;
      std::string error;
      if (!rungs.empty()) {
        TranscoderConfig tc;
        tc.rungs = rungs;
        tc.threads = share;
        tc.preset = d.config.transcode_preset;
        try {
          made = std::make_shared<Transcoder>(std::move(tc));
          made->start();
        } catch (const std::exception& e) {
          made.reset();
          error = e.what();  // the rungs stay "waiting"; channels.json says why
        }
      }
      std::shared_ptr<Transcoder> old;
      {
        std::lock_guard lock(ch->mu);
        old = std::exchange(ch->transcoder, std::move(made));
        ch->transcode_error = std::move(error);
      }
      old.reset();  // stops its threads (unless channels_json holds it a moment longer)
    }
    ch->rung_tracks = std::move(rung_tracks);
    next.push_back(std::move(ch));
  }
  std::vector<std::shared_ptr<HlsChannelStore>> dropped;
  {
    std::lock_guard lock(d.channels_mu);
    for (const auto& c : d.channels)
      if (std::find(next.begin(), next.end(), c) == next.end()) dropped.push_back(c);
    d.channels = std::move(next);
  }
  // A dropped channel's files go now (a get() still reading one gets a 404), not only
  // when its last reader lets the store go.
  for (const auto& c : dropped)
    if (!c->dvr_path.empty()) clear_channel_dir(c->dvr_path);
  // The shares of memory_mb and dvr_disk_mb follow the channels and tracks there are now:
  // each track is held to its new share here, not at its next segment, which one whose
  // input is down never makes (the channels together would stay over the budgets).
  std::vector<StoredSegment> gone;  // destroyed (files deleted) after the locks
  for (const auto& c : d.channels) {
    std::lock_guard lock(c->mu);
    bool variant_changed = false;
    for (const auto& t : c->tracks) {
      const std::size_t held = t->window.size();
      if (held == 0) continue;
      d.evict(*c, *t, gone);
      if (t->window.size() == held) continue;
      d.render(*t);
      variant_changed = variant_changed || t->kind != TrackKind::kAudio;
    }
    if (variant_changed) d.render_master(*c);  // once for the channel, not per track
  }
}

void HlsPackager::detach(const std::vector<std::string>& ids) {
  std::lock_guard feeds(impl_->feeds_mu);
  for (const auto& id : ids) {
    const std::size_t dot = id.find('.');
    const auto ch = impl_->find(id.substr(0, dot));
    if (!ch) continue;
    HlsTrack* t = ch->find_track(dot == std::string::npos ? std::string{} : id.substr(dot + 1));
    if (t != nullptr) t->feed = nullptr;
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

namespace {

HlsChannelStats stats_of(const HlsTrack& t, std::uint32_t segment_seconds) {
  HlsChannelStats s;
  s.segments = t.segments;
  s.window_bytes = t.window_bytes;
  s.disk_bytes = t.disk_bytes;
  s.disk_segments = t.disk_segments;
  s.disk_errors = t.disk_errors;
  s.disk_reads_refused = t.disk_reads_refused;
  s.evicted = t.evicted;
  s.discontinuities = t.discontinuities;
  s.dropped_packets = t.dropped_packets;
  s.bandwidth_bps = std::max(t.info.peak_bandwidth_bps, t.info.average_bandwidth_bps);
  s.held_segments = t.window.size();
  if (!t.window.empty())
    s.held_seconds = static_cast<double>(t.window.back().program_date_time_ms - t.window.front().program_date_time_ms) / 1000 +
                     t.window.back().duration_s;
  if (t.window.empty()) {
    s.state = "waiting";
  } else {
    s.last_segment_age_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t.last_segment).count();
    s.state = s.last_segment_age_s < 3.0 * segment_seconds + 1 ? "serving" : "stalled";
  }
  return s;
}

}  // namespace

std::optional<HlsChannelStats> HlsPackager::channel_stats(const std::string& id) const { return rendition_stats(id, {}); }

std::optional<HlsChannelStats> HlsPackager::rendition_stats(const std::string& id, const std::string& rendition) const {
  const auto ch = impl_->find(id);
  if (!ch) return std::nullopt;
  std::lock_guard lock(ch->mu);
  const HlsTrack* t = ch->find_track(rendition);
  if (t == nullptr) t = ch->find_track(rendition, true);
  if (t == nullptr) return std::nullopt;
  return stats_of(*t, impl_->config.segment_seconds);
}

std::optional<HlsResource> HlsPackager::get(std::string_view channel, std::string_view name, std::string_view query) {
  const auto ch = impl_->find(channel);
  if (!ch) return std::nullopt;
  HlsResource r;
  r.kind = HlsResource::Kind::kPlaylist;
  r.content_type = "application/vnd.apple.mpegurl";
  const double half_segment = static_cast<double>(impl_->config.segment_seconds) / 2;
  const bool master = name == kMasterName;
  std::unique_lock lock(ch->mu);
  const HlsTrack* media = nullptr;   // the track whose media playlist is asked for
  const HlsTrack* event = nullptr;   // ... event playlist
  for (const auto& t : ch->tracks) {
    if (name == t->media_name) media = t.get();
    if (name == t->event_name) event = t.get();
  }
  TimeRange range;
  const RangeQuery rq = media != nullptr || master ? parse_range(query, range) : RangeQuery::kNone;
  if (rq == RangeQuery::kInvalid) return std::nullopt;
  if (rq == RangeQuery::kValid) {
    // Catch-up / timeshift: the metadata is copied under the lock, the text made outside it.
    const std::int64_t now_ms = impl_->options.wall_ms();
    hls::MediaPlaylist p;
    hls::MasterPlaylist m;
    // The live master's version (its ETag's): the text below is cut from it.
    const std::string version = std::to_string(ch->first_number) + "-" + std::to_string(ch->generation);
    if (master) {
      // Each playlist of the master with the range; those with nothing in it left out.
      m = ch->master_model;
      std::string q = "?";
      if (range.start != kNoTime) q += "start=" + hls::format_date_time(range.start);
      if (range.end != kForever) q += std::string(range.start != kNoTime ? "&" : "") + "end=" + hls::format_date_time(range.end);
      const auto has_range = [&](const std::string& uri) {
        for (const auto& t : ch->tracks)
          if (t->media_name == uri) return !impl_->select(*t, range, now_ms).entries.empty();
        return false;
      };
      std::erase_if(m.variants, [&](const hls::Variant& v) { return !has_range(v.uri); });
      std::erase_if(m.audio, [&](const hls::AudioRendition& a) { return !a.uri.empty() && !has_range(a.uri); });
      if (m.audio.size() == 1) {  // only the muxed default is left: no group
        m.audio.clear();
        for (auto& v : m.variants) v.audio_group.clear();
      }
      for (auto& v : m.variants) v.uri += q;
      for (auto& a : m.audio)
        if (!a.uri.empty()) a.uri += q;
      // Its tag: the selection of the primary, else of the first rendition with one.
      for (const auto& t : ch->tracks) {
        if (t->kind == TrackKind::kAudio) continue;
        p = impl_->select(*t, range, now_ms);
        if (!p.entries.empty()) break;
      }
    } else {
      p = impl_->select(*media, range, now_ms);
    }
    lock.unlock();
    if (p.entries.empty() || (master && m.variants.empty())) return std::nullopt;
    const bool vod = p.type == hls::PlaylistType::kVod;
    // The target too: a later long segment raises it with the range's segments unchanged.
    const std::string tag = std::to_string(p.media_sequence) + "-" + std::to_string(p.media_sequence + p.entries.size() - 1) +
                            "-" + std::to_string(p.target_duration_s) + (vod ? "v" : "e");
    r.max_age_s = vod ? 60 : half_segment;
    if (master) {
      r.body = SharedBytes::heap(hls::master_playlist(m));
      // Not the range's numbers alone: the bandwidths are measured again at every segment.
      r.etag = "\"j" + tag + "-" + version + "\"";
    } else {
      r.body = SharedBytes::heap(hls::media_playlist(p));
      r.etag = "\"r" + (media->rendition.empty() ? std::string{} : media->rendition + "-") + tag + "\"";
    }
    return r;
  }
  if (event != nullptr) {
    const bool audio = event->kind == TrackKind::kAudio;
    HlsTrack& t = *ch->find_track(event->rendition, audio);
    if (t.window.empty()) return std::nullopt;
    const std::uint64_t first = t.window.front().sequence, last = t.window.back().sequence;
    // The target too: another track's long segment raises it with no new segment here.
    r.etag = "\"e" + (t.rendition.empty() ? std::string{} : t.rendition + "-") + std::to_string(first) + "-" + std::to_string(last) +
             "-" + std::to_string(t.target_s) + "\"";
    r.max_age_s = half_segment;
    if (t.event && t.event_first == first && t.event_last == last && t.event_target == t.target_s) {
      r.body = t.event;
      return r;
    }
    hls::MediaPlaylist p = impl_->select(t, TimeRange{}, impl_->options.wall_ms());
    const std::string rendition = t.rendition;
    lock.unlock();
    // No PLAYLIST-TYPE: an EVENT playlist may only grow at its end (RFC 8216 4.3.3.5), and
    // this one loses its oldest segments as they are evicted (a sliding DVR window).
    p.type = hls::PlaylistType::kNone;
    p.end_list = false;
    r.body = SharedBytes::heap(hls::media_playlist(p));
    lock.lock();
    if (HlsTrack* again = ch->find_track(rendition, audio)) {
      again->event = r.body;
      again->event_first = p.media_sequence;
      again->event_last = p.media_sequence + p.entries.size() - 1;
      again->event_target = p.target_duration_s;
    }
    return r;
  }
  if (master) {
    if (!ch->master) return std::nullopt;
    r.body = ch->master;
    r.etag = "\"i" + std::to_string(ch->first_number) + "-" + std::to_string(ch->generation) + "\"";
    r.max_age_s = half_segment;
    return r;
  }
  if (media != nullptr) {
    if (!media->media) return std::nullopt;
    r.body = media->media;
    // Both ends and the target: eviction without a new segment (a reload taking a stalled
    // channel's memory share) renders it again with a later first segment.
    r.etag = "\"m" + (media->rendition.empty() ? std::string{} : media->rendition + "-") + std::to_string(media->media_first) +
             "-" + std::to_string(media->newest_sequence) + "-" + std::to_string(media->target_s) +
             "\"";  // raise_target renders it again
    r.max_age_s = half_segment;
    return r;
  }
  if (const auto key_id = hls_key_id(name)) {  // AES-128 key: while a held segment uses it
    for (const auto& t : ch->tracks) {
      for (const StoredSegment& s : t->window) {
        if (!s.key || s.key->id != *key_id) continue;
        r.body = SharedBytes::heap(std::string(reinterpret_cast<const char*>(s.key->bytes.data()), s.key->bytes.size()));
        r.kind = HlsResource::Kind::kKey;
        r.content_type = "application/octet-stream";
        r.etag = key_etag(*s.key);
        r.max_age_s = 0;
        return r;
      }
    }
    return std::nullopt;
  }
  for (const auto& t : ch->tracks) {
    const auto seq = segment_sequence(name, t->seg_prefix);
    if (!seq) continue;
    // The held sequences are consecutive and in order (eviction takes the oldest).
    const auto& w = t->window;
    const auto it = std::partition_point(w.begin(), w.end(), [&](const StoredSegment& s) { return s.sequence < *seq; });
    if (it == w.end() || it->sequence != *seq) return std::nullopt;
    r.body = it->bytes;
    r.kind = HlsResource::Kind::kSegment;
    r.content_type = "video/mp2t";
    r.etag = "\"s" + (t->rendition.empty() ? std::string{} : t->rendition + "-") + std::to_string(it->sequence) + "-" +
             std::to_string(it->program_date_time_ms) + "\"";
    r.max_age_s = 0;
    if (!r.body) {
      // On disk: opened outside the lock, shared with the other readers of the segment and
      // sent with sendfile; 404 when the file vanished (its directory removed under us...)
      // or over the disk-read cap.
      const std::shared_ptr<const DiskSegment> file = it->file;
      const std::string rendition = t->rendition;
      const bool audio = t->kind == TrackKind::kAudio;
      lock.unlock();
      if (!file) return std::nullopt;
      DiskRead result = DiskRead::kOk;
      r.body = read_segment_file(*file, impl_->disk_reads, result);
      if (result == DiskRead::kRefused) {
        lock.lock();
        if (HlsTrack* again = ch->find_track(rendition, audio)) ++again->disk_reads_refused;
      }
      if (!r.body) return std::nullopt;
    }
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
  std::vector<std::shared_ptr<HlsChannelStore>> list;
  {
    std::lock_guard lock(impl_->channels_mu);
    list = impl_->channels;
  }
  boost::json::array a;
  for (const auto& ch : list) {
    boost::json::object o;
    boost::json::array renditions;
    {
      std::lock_guard lock(ch->mu);
      const HlsChannelStats st = stats_of(*ch->tracks.front(), impl_->config.segment_seconds);
      o["id"] = ch->id;
      // JSON is UTF-8; a name from a YAML saved in Latin-1 is not (yaml-cpp passes the bytes).
      o["name"] = valid_utf8(ch->name.empty() ? ch->id : ch->name);
      o["state"] = st.state;
      o["url"] = "/hls/" + ch->id + "/" + kMasterName;
      o["segments"] = st.segments;
      o["bandwidth_bps"] = st.bandwidth_bps;
      o["last_segment_age_s"] = std::round(st.last_segment_age_s * 10) / 10;
      for (const auto& t : ch->tracks) {
        if (t->kind == TrackKind::kPrimary) continue;
        boost::json::object ro;
        ro["name"] = t->rendition;
        ro["kind"] = t->kind == TrackKind::kAudio ? "audio" : t->kind == TrackKind::kReceived ? "received" : "transcoded";
        ro["segments"] = t->segments;
        ro["bandwidth_bps"] = std::max(t->info.peak_bandwidth_bps, t->info.average_bandwidth_bps);
        if (t->info.height > 0) ro["height"] = t->info.height;
        renditions.push_back(std::move(ro));
      }
    }
    if (!renditions.empty()) o["renditions"] = std::move(renditions);
    std::shared_ptr<Transcoder> tc;
    {
      std::lock_guard lock(ch->mu);
      if (!ch->transcode_error.empty()) o["transcode_error"] = ch->transcode_error;
      tc = ch->transcoder;
    }
    {
      if (tc) {
        const TranscoderStats ts = tc->stats();  // thread-safe
        std::uint64_t errors = 0;
        for (const auto e : ts.errors) errors += e;
        boost::json::object t;
        t["input_bytes"] = ts.input_bytes;
        t["input_bytes_dropped"] = ts.input_bytes_dropped;
        t["frames_decoded"] = ts.frames_decoded;
        t["errors"] = errors;
        o["transcoder"] = std::move(t);
      }
    }
    a.push_back(std::move(o));
  }
  return boost::json::serialize(a);
}

}  // namespace twincast::control
