#include "twincast/control/hls_origin.hpp"
#include "twincast/control/log.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <array>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <system_error>
#include <utility>

namespace twincast::control {

namespace {

constexpr std::size_t kMaxNameBytes = 128;

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

// FNV-1a, 64 bits: ETags for bodies whose source gave none (channels.json, static files
// use size and mtime instead).
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ULL;
  for (char c : s) {
    h ^= static_cast<std::uint8_t>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hex(std::uint64_t v) {
  constexpr std::array<char, 16> kDigits = {'0', '1', '2', '3', '4', '5', '6', '7',
                                            '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  std::string out;
  do {
    out.insert(out.begin(), kDigits[v & 0xF]);
    v >>= 4;
  } while (v != 0);
  return out;
}

std::string hash_etag(std::string_view body) { return "\"h" + hex(fnv1a(body)) + "-" + hex(body.size()) + "\""; }

// Whole seconds for max-age, at least 1 for a positive value. Rounded down: a playlist's
// half segment (1.5 s for 3 s segments) must not become 2 s of staleness in a CDN.
long long max_age_seconds(double s) { return std::max(1LL, static_cast<long long>(std::floor(s))); }

HttpResponse forbidden(HlsDenial d) {
  HttpResponse r = json_error(403, "token " + std::string(hls_denial_name(d)));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

std::int64_t unix_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

HttpResponse not_found(std::string_view message) {
  HttpResponse r = json_error(404, message);
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

struct StaticType {
  std::string_view extension;
  std::string_view content_type;
};
constexpr std::array<StaticType, 11> kStaticTypes = {{
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
}};

// The content type of a servable static file name, or "" (not servable).
std::string_view static_type(std::string_view name) {
  if (!valid_hls_name(name)) return {};
  for (const auto& t : kStaticTypes) {
    if (name.size() > t.extension.size() && name.substr(name.size() - t.extension.size()) == t.extension) {
      return t.content_type;
    }
  }
  return {};
}

}  // namespace

HlsAccessPolicy hls_access_policy(const dataplane::ApplianceConfig& config) {
  HlsAccessPolicy p;
  bool signs = false;
  for (const auto& ch : config.channels) {
    if (!ch.hls) continue;
    const auto& o = ch.hls_options;
    if (!o.signed_urls && !o.encrypt) continue;
    p.channels[ch.id] = HlsChannelAccess{.signed_urls = o.signed_urls, .bind_client = o.bind_client, .encrypted = o.encrypt};
    signs = signs || o.signed_urls;
  }
  if (signs && !config.ott.secret_file.empty()) {
    try {
      p.secret = read_hls_secret(config.ott.secret_file);
    } catch (const std::exception& e) {
      log::error("hls_secret", {{"file", config.ott.secret_file}},
                 std::string("signed HLS channels refuse every request: ") + e.what());
    }
  }
  return p;
}

bool valid_hls_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes || name.front() == '.') return false;
  if (name.find("..") != std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(), name_char);
}

struct HlsOrigin::Impl {
  Impl(HlsSource& s, HlsOriginOptions o) : source(s), options(std::move(o)), server(options.limits) {}

  HttpResponse hls(const HttpRequest& req);
  HttpResponse channels();
  HttpResponse static_file(std::string_view name);
  static HttpResponse preflight(const HttpRequest& req);
  void add_routes();

  struct CachedFile {
    std::filesystem::file_time_type mtime;
    std::uintmax_t size = 0;
    std::shared_ptr<const SharedBytes> body;
    std::string etag;
  };

  HlsSource& source;
  HlsOriginOptions options;
  HlsOriginStats stats;
  // Per-channel traffic and the viewers' last requests (pruned as it goes).
  struct Traffic {
    HlsChannelTraffic counts;
    std::map<std::string, std::chrono::steady_clock::time_point, std::less<>> last_seen;  // by client address
  };
  // `viewer`: the client address, or the token of a protected channel.
  void account(const std::string& channel, HlsResource::Kind kind, std::size_t bytes, std::string viewer);
  void refuse(const std::string& channel, HlsDenial d);
  std::shared_ptr<const HlsAccessPolicy> access() const {
    std::lock_guard lock(access_mutex);
    return access_policy;
  }
  mutable std::mutex access_mutex;
  std::shared_ptr<const HlsAccessPolicy> access_policy = std::make_shared<const HlsAccessPolicy>();
  mutable std::mutex traffic_mutex;
  std::map<std::string, Traffic, std::less<>> traffic;
  std::mutex static_mutex;  // static_cache
  std::map<std::string, CachedFile, std::less<>> static_cache;
  HttpServer server;  // last: stopped (and its threads joined) before the rest goes
};

HttpResponse HlsOrigin::Impl::hls(const HttpRequest& req) {
  const std::string& channel = req.params.at("channel");
  const std::string& name = req.params.at("name");
  if (!valid_hls_name(channel) || !valid_hls_name(name)) {
    stats.bad_names.fetch_add(1, std::memory_order_relaxed);
    return json_error(400, "bad channel or file name");
  }
  // Access control before the source sees the request.
  std::optional<std::string> token;
  {
    const auto policy = access();
    const auto it = policy->channels.find(channel);
    if (it != policy->channels.end() && it->second.signed_urls) {
      token = hls_query_token(req.query);
      // A token parameter that does not decode (broken %XX) is there and malformed: bad,
      // not missing.
      const auto denial = !token && query_param(req.query, "token")
                              ? std::optional<HlsDenial>(HlsDenial::kBad)
                              : hls_verify(policy->secret, channel, token.value_or(std::string{}),
                                           options.now_s ? options.now_s() : unix_now_s(),
                                           hls_client_address(req.remote), it->second.bind_client);
      if (denial) {
        refuse(channel, *denial);
        return forbidden(*denial);
      }
    }
  }
  const bool guarded = token.has_value();
  const char* const scope = guarded ? "private" : "public";
  std::optional<HlsResource> res = source.get(channel, name, req.query);
  if (!res || !res->body) {
    stats.not_found.fetch_add(1, std::memory_order_relaxed);
    return not_found("no such channel or file");
  }
  std::string cache_control;
  switch (res->kind) {
    case HlsResource::Kind::kPlaylist:
      stats.playlists.fetch_add(1, std::memory_order_relaxed);
      cache_control = res->max_age_s > 0
                          ? std::string(scope) + ", max-age=" + std::to_string(max_age_seconds(res->max_age_s))
                          : "no-cache";
      break;
    case HlsResource::Kind::kSegment:
      stats.segments.fetch_add(1, std::memory_order_relaxed);
      cache_control =
          std::string(scope) + ", max-age=" +
          std::to_string(max_age_seconds(res->max_age_s > 0 ? res->max_age_s : options.segment_max_age_s)) +
          ", immutable";
      break;
    case HlsResource::Kind::kKey:
      stats.keys.fetch_add(1, std::memory_order_relaxed);
      cache_control = "private, max-age=" +
                      std::to_string(max_age_seconds(res->max_age_s > 0 ? res->max_age_s : options.key_max_age_s));
      break;
  }
  std::string etag = res->etag.empty() ? hash_etag(res->body->view()) : std::move(res->etag);
  if (guarded && res->kind == HlsResource::Kind::kPlaylist) {
    // Per viewer: the token in every URI, and an ETag that differs per token.
    res->body = SharedBytes::heap(hls_tokenize_playlist(res->body->view(), *token));
    if (etag.size() >= 2 && etag.back() == '"') etag.pop_back();
    etag += "-t" + hex(fnv1a(*token)) + "\"";
  }
  account(channel, res->kind, res->body->size(), guarded ? "t:" + *token : hls_client_address(req.remote));
  HttpResponse r;
  r.content_type = res->content_type.empty() ? "application/octet-stream" : std::move(res->content_type);
  r.headers.emplace_back("Cache-Control", std::move(cache_control));
  r.etag = std::move(etag);
  r.shared_body = std::move(res->body);
  r.ranges = true;
  return r;
}

void HlsOrigin::Impl::refuse(const std::string& channel, HlsDenial d) {
  const auto i = static_cast<std::size_t>(d);
  stats.refused[i].fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(traffic_mutex);
  ++traffic[channel].counts.refused[i];
}

void HlsOrigin::Impl::account(const std::string& channel, HlsResource::Kind kind, std::size_t bytes,
                              std::string client) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(traffic_mutex);
  Traffic& t = traffic[channel];
  switch (kind) {
    case HlsResource::Kind::kPlaylist:
      ++t.counts.playlists;
      break;
    case HlsResource::Kind::kSegment:
      ++t.counts.segments;
      break;
    case HlsResource::Kind::kKey:
      ++t.counts.keys;
      break;
  }
  t.counts.bytes += bytes;
  t.last_seen[std::move(client)] = now;
  const auto window = std::chrono::duration<double>(HlsOrigin::kViewerWindowS);
  for (auto it = t.last_seen.begin(); it != t.last_seen.end();) it = now - it->second > window ? t.last_seen.erase(it) : std::next(it);
}

HttpResponse HlsOrigin::Impl::channels() {
  HttpResponse r;
  r.body = source.channels_json();
  const auto policy = access();
  if (!policy->channels.empty()) {
    // Mark the protected channels for the page (it needs a token to play them).
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(r.body, ec);
    if (!ec && v.is_array()) {
      for (auto& item : v.as_array()) {
        auto* o = item.if_object();
        const auto* id = o != nullptr ? o->if_contains("id") : nullptr;
        if (id == nullptr || !id->is_string()) continue;
        const auto it = policy->channels.find(std::string(id->as_string()));
        if (it == policy->channels.end()) continue;
        if (it->second.signed_urls) (*o)["signed"] = true;
        if (it->second.encrypted) (*o)["encrypted"] = true;
      }
      r.body = boost::json::serialize(v);
    }
  }
  r.etag = hash_etag(r.body);
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

HttpResponse HlsOrigin::Impl::static_file(std::string_view name) {
  std::string_view type = static_type(name);
  if (type.empty() || options.static_dir.empty()) return not_found("no such file");
  std::filesystem::path path = options.static_dir / std::string(name);
  std::error_code ec;
  // Symbolic links are followed: the name has no '/', so only the operator's own links in
  // static_dir lead elsewhere (hls.min.js linked from node_modules, say).
  auto st = std::filesystem::status(path, ec);
  std::uintmax_t size = ec ? 0 : std::filesystem::file_size(path, ec);
  auto mtime = ec ? std::filesystem::file_time_type{} : std::filesystem::last_write_time(path, ec);
  if (ec || !std::filesystem::is_regular_file(st) || size > options.max_static_bytes) {
    std::lock_guard lock(static_mutex);
    if (auto it = static_cache.find(name); it != static_cache.end()) static_cache.erase(it);
    return not_found("no such file");
  }
  HttpResponse r;
  r.content_type = std::string(type);
  r.headers.emplace_back("Cache-Control", "no-cache");  // revalidated each time: 304s are cheap
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  {
    std::lock_guard lock(static_mutex);
    auto it = static_cache.find(name);
    if (it != static_cache.end() && it->second.mtime == mtime && it->second.size == size) {
      r.shared_body = it->second.body;
      r.etag = it->second.etag;
      stats.static_files.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return not_found("no such file");
  auto body = SharedBytes::heap(std::move(text).str());
  std::string etag = "\"f" + hex(static_cast<std::uint64_t>(mtime.time_since_epoch().count())) + "-" +
                     hex(body->size()) + "\"";
  {
    std::lock_guard lock(static_mutex);
    static_cache[std::string(name)] = CachedFile{.mtime = mtime, .size = size, .body = body, .etag = etag};
  }
  stats.static_files.fetch_add(1, std::memory_order_relaxed);
  r.shared_body = std::move(body);
  r.etag = std::move(etag);
  return r;
}

HttpResponse HlsOrigin::Impl::preflight(const HttpRequest&) {
  HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  r.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
  r.headers.emplace_back("Access-Control-Allow-Headers", "Range, If-None-Match, If-Range, If-Modified-Since");
  r.headers.emplace_back("Access-Control-Max-Age", "86400");
  return r;
}

void HlsOrigin::Impl::add_routes() {
  server.add_default_header("Access-Control-Allow-Origin", "*");
  server.add_default_header("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag, Accept-Ranges");
  server.route("GET", "/hls/{channel}/{name}", [this](const HttpRequest& req) { return hls(req); });
  server.route("GET", "/channels.json", [this](const HttpRequest&) { return channels(); });
  server.route("GET", "/", [this](const HttpRequest&) { return static_file("index.html"); });
  server.route("GET", "/static/{file}", [this](const HttpRequest& req) { return static_file(req.params.at("file")); });
  for (const char* pattern : {"/hls/{channel}/{name}", "/channels.json", "/", "/static/{file}"}) {
    server.route("OPTIONS", pattern, preflight);
  }
}

HlsOrigin::HlsOrigin(HlsSource& source, HlsOriginOptions options)
    : impl_(std::make_unique<Impl>(source, std::move(options))) {
  impl_->add_routes();
}

HlsOrigin::~HlsOrigin() { stop(); }

void HlsOrigin::listen(const std::string& address) { impl_->server.listen(address); }
std::vector<std::uint16_t> HlsOrigin::ports() const { return impl_->server.ports(); }
void HlsOrigin::start() { impl_->server.start(); }
void HlsOrigin::stop() { impl_->server.stop(); }
std::size_t HlsOrigin::connections() const { return impl_->server.connections(); }
const HlsOriginStats& HlsOrigin::stats() const { return impl_->stats; }

void HlsOrigin::set_access(HlsAccessPolicy policy) {
  auto next = std::make_shared<const HlsAccessPolicy>(std::move(policy));
  std::lock_guard lock(impl_->access_mutex);
  impl_->access_policy = std::move(next);
}

std::map<std::string, HlsChannelTraffic> HlsOrigin::channel_traffic() const {
  const auto now = std::chrono::steady_clock::now();
  const auto window = std::chrono::duration<double>(kViewerWindowS);
  std::lock_guard lock(impl_->traffic_mutex);
  std::map<std::string, HlsChannelTraffic> out;
  for (const auto& [channel, t] : impl_->traffic) {
    HlsChannelTraffic c = t.counts;
    c.viewers = static_cast<std::uint64_t>(
        std::count_if(t.last_seen.begin(), t.last_seen.end(), [&](const auto& v) { return now - v.second <= window; }));
    out.emplace(channel, c);
  }
  return out;
}

}  // namespace twincast::control
