// The HLS origin: an HTTP/1.1 server (HttpServer, Beast) on its own listen address that
// serves playlists, segments and keys from memory through an abstract HlsSource (the
// packager's segment store), plus a web page listing the channels with a player.
//
// Routes:
//   GET/HEAD /hls/{channel}/{name}   the source's resource; names are [A-Za-z0-9._-]{1,128}
//                                    without "..": anything else is 400 and never reaches
//                                    the source; the source's nullopt is 404
//   GET/HEAD /channels.json          source.channels_json() (live state for the page)
//   GET/HEAD /                       static_dir/index.html
//   GET/HEAD /static/{file}          static_dir/file, for whitelisted names and extensions
//   OPTIONS  any of the above        CORS preflight (204)
// Every answer carries Access-Control-Allow-Origin: * and a Date. Resources carry their
// ETag (If-None-Match -> 304); /hls/ resources also accept byte ranges (206, 416).
// Cache-Control: playlists "public, max-age=<the source's max_age_s>" (about half a
// segment), segments "public, max-age=86400, immutable", keys "private, max-age=86400"
// (shared caches keep no keys), 404s and channels.json "no-cache".
//
// The source's get() runs on the server's threads: it must be thread-safe and quick (a
// lookup and a shared_ptr copy, no waiting).
//
// Access control (set_access; see hls_auth.hpp for the token). A channel with signed_urls
// answers every /hls/<id>/ request (GET and HEAD: playlists, segments, keys) only with a
// valid token=<value> in the query; otherwise 403 {"error":"token <reason>"} with
// Cache-Control: no-store, counted by reason (missing, bad, expired, wrong_client) in the
// stats and the channel's traffic. The source never sees refused requests. Playlists of such
// a channel are rewritten per request: every URI in them (segment and variant lines, the
// URI="..." of EXT-X-KEY, EXT-X-MEDIA, EXT-X-MAP, EXT-X-I-FRAME-STREAM-INF...) gets
// token=<value> appended to its query (an existing query such as ?start=&end= stays;
// absolute URIs to other hosts are left alone). Caching of a protected channel's answers:
// everything is "private" (playlists "private, max-age=<the source's>", segments "private,
// max-age=86400, immutable") so no shared cache hands one viewer's tokenised playlist, or
// any resource, to a request without a valid token; a CDN in front of protected channels
// must validate the tokens itself or pass requests through. A tokenised playlist's ETag is
// the source's with a hash of the token appended, so a 304 never confirms another viewer's
// text. Viewers of a protected channel are distinct tokens (one per viewer as minted),
// not client addresses, which also counts viewers behind one NAT or CDN edge apart.
// /channels.json gains "signed": true and "encrypted": true for such channels.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twincast/control/hls_auth.hpp"
#include "twincast/control/http_server.hpp"
#include "twincast/dataplane/config.hpp"

namespace twincast::control {

// One playlist, segment or key, immutable once published.
struct HlsResource {
  enum class Kind { kPlaylist, kSegment, kKey };

  std::shared_ptr<const SharedBytes> body;  // segments in a memfd (sent with sendfile)
  std::string content_type;  // application/vnd.apple.mpegurl, video/mp2t, application/octet-stream
  std::string etag;          // strong, quoted: "\"s42-1a2b\""; "": the origin hashes the body
  Kind kind = Kind::kSegment;
  double max_age_s = 0;  // Cache-Control max-age; playlists about half a segment; <= 0: the
                         // origin's default for segments and keys, "no-cache" for playlists
};

// Implemented by the segment store. Thread-safe; called on the origin's threads.
class HlsSource {
 public:
  virtual ~HlsSource() = default;
  // A resource of `channel` by its file name ("index.m3u8", "seg-123.ts", ...); `query` is
  // the request's query string (not decoded). nullopt: 404 (unknown channel, evicted segment).
  virtual std::optional<HlsResource> get(std::string_view channel, std::string_view name, std::string_view query) = 0;
  virtual std::vector<std::string> channel_ids() = 0;
  // Live state for the web page: a JSON array of objects with at least "id", "name",
  // "state" and "url" (the playlist's path, "/hls/<id>/index.m3u8"); other fields are shown
  // as they are.
  virtual std::string channels_json() = 0;
};

// The origin's defaults differ from the API's: two threads (a 2 MB segment to a slow client
// never delays a playlist), a longer write deadline (a whole segment to a slow viewer),
// small request bodies (GET only), more connections.
inline HttpServerLimits hls_origin_default_limits() {
  return HttpServerLimits{.max_header_bytes = 8 * 1024,
                          .max_body_bytes = 4 * 1024,
                          .request_timeout = std::chrono::milliseconds(10'000),
                          .write_timeout = std::chrono::milliseconds(30'000),
                          .max_connections = 1024,
                          .threads = 2};
}

struct HlsOriginOptions {
  // index.html, app.js, hls.min.js...; empty: no web page (404 for / and /static/).
  std::filesystem::path static_dir;
  HttpServerLimits limits = hls_origin_default_limits();
  double segment_max_age_s = 86400;
  double key_max_age_s = 86400;
  // Static files above this size are refused (404), so the cache stays small.
  std::size_t max_static_bytes = 16 * 1024 * 1024;
  // Unix seconds for token expiry (tests); empty: the system clock.
  std::function<std::int64_t()> now_s;
};

// Who may fetch a channel's HLS (HlsOrigin::set_access).
struct HlsChannelAccess {
  bool signed_urls = false;  // a valid token is required
  bool bind_client = false;  // ...bound to the requesting client's address
  bool encrypted = false;    // shown on the web page only (the source encrypts)
};
struct HlsAccessPolicy {
  std::string secret;                                // the HMAC key; empty: protected channels refuse all
  std::map<std::string, HlsChannelAccess> channels;  // absent: open
};

// Counters (one writer per request; read with relaxed loads), for /metrics.
struct HlsOriginStats {
  std::atomic<std::uint64_t> playlists{0};  // 200s from the source by kind
  std::atomic<std::uint64_t> segments{0};
  std::atomic<std::uint64_t> keys{0};
  std::atomic<std::uint64_t> not_found{0};  // the source's nullopt
  std::atomic<std::uint64_t> bad_names{0};  // refused before the source
  std::atomic<std::uint64_t> static_files{0};
  std::array<std::atomic<std::uint64_t>, kHlsDenialCount> refused{};  // 403s by HlsDenial
};

// One channel's traffic at the origin (for /metrics). Bytes are the resources' whole sizes
// as answered (a range or a 304 counts the whole body). A viewer is a client address that
// fetched the channel's playlists or segments within the last viewer_window_s; behind a
// CDN these are the CDN's edges.
struct HlsChannelTraffic {
  std::uint64_t playlists = 0;
  std::uint64_t segments = 0;
  std::uint64_t keys = 0;
  std::uint64_t bytes = 0;
  std::uint64_t viewers = 0;  // protected channels: distinct valid tokens in the window
  std::array<std::uint64_t, kHlsDenialCount> refused{};  // 403s by HlsDenial
};

// The access policy of a configuration's HLS channels, the secret read from
// ott.secret_file (when a channel signs URLs). An unreadable secret leaves it empty: the
// protected channels then refuse every request (fail closed) and an error is logged.
[[nodiscard]] HlsAccessPolicy hls_access_policy(const dataplane::ApplianceConfig& config);

// A channel id or file name the origin passes to its source: 1..128 of [A-Za-z0-9._-],
// not "." or "..", no "..", not starting with '.'.
[[nodiscard]] bool valid_hls_name(std::string_view name);

class HlsOrigin {
 public:
  HlsOrigin(HlsSource& source, HlsOriginOptions options = {});
  ~HlsOrigin();  // stops
  HlsOrigin(const HlsOrigin&) = delete;
  HlsOrigin& operator=(const HlsOrigin&) = delete;

  // As HttpServer::listen ("0.0.0.0:8081", "[::]:8081", "127.0.0.1:0").
  void listen(const std::string& address);
  [[nodiscard]] std::vector<std::uint16_t> ports() const;
  void start();
  void stop();  // idempotent
  [[nodiscard]] std::size_t connections() const;
  [[nodiscard]] const HlsOriginStats& stats() const;
  // Per channel (those requested since start). Any thread.
  [[nodiscard]] std::map<std::string, HlsChannelTraffic> channel_traffic() const;
  // Replaces the access policy (at start and after each reload). Any thread; requests in
  // flight finish under the policy they started with.
  void set_access(HlsAccessPolicy policy);
  static constexpr double kViewerWindowS = 30;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
