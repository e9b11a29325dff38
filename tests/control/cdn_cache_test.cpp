// The HLS origin behind a CDN-style cache: the real HlsOrigin over a source that behaves like
// the live packager (a media playlist that moves on every second with a growing
// MEDIA-SEQUENCE and ETag, immutable segments cut from h264_aac.ts by the Segmenter), and
// nginx as a caching reverse proxy in front of it (proxy_cache, proxy_cache_lock,
// proxy_cache_revalidate, X-Cache-Status). Checks through nginx: segments are fetched once
// from the origin and then served from the cache (also to concurrent clients, also as byte
// ranges, also as 304s); playlists stay fresh within max-age + 1 s; 404s are not cached;
// CORS passes through; ffmpeg plays the channel through the cache.
//
// nginx runs as a child of the test (never the system service): its own prefix, config,
// cache, temp paths and logs in a temporary directory, on a free loopback port. The test
// skips when nginx is not installed (scripts/setup installs it).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "control/http_reply.hpp"
#include "tests_common.hpp"
#include "twincast/control/hls_origin.hpp"
#include "twincast/mpegts/hls.hpp"

extern char** environ;

namespace tc = twincast::control;
namespace tt = twincast::test;
namespace hls = twincast::mpegts::hls;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace fs = std::filesystem;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* kChannel = "news";
constexpr std::uint64_t kFirstSequence = 100;  // MEDIA-SEQUENCE when the source starts
constexpr std::size_t kWindow = 3;             // segments listed in the media playlist
constexpr auto kTick = 1s;                     // the playlist moves on one segment per tick
constexpr double kPlaylistMaxAgeS = 1.0;       // half of the 2 s segments, as the packager does

// ---------------------------------------------------------------------------------------
// A live source like the packager: master "index.m3u8" -> media "live.m3u8" listing
// seg-<m>.ts .. seg-<m+2>.ts, where m grows by one every second from kFirstSequence. The
// fixture cuts into three 2 s segments; seg-<n>.ts is the fixture's segment n % 3, with
// EXT-X-DISCONTINUITY where the fixture starts again (n % 3 == 0). Segments outside the
// window are 404 (evicted, or not published yet). Counts every request by name.

class LiveSource : public tc::HlsSource {
 public:
  LiveSource() : start_(Clock::now()) {
    const auto pkts = tt::read_packets(tt::fixture("h264_aac.ts"));
    hls::Segmenter seg(hls::SegmenterConfig{.target_duration_s = 2.0}, [this](hls::Segment&& s) {
      durations_.push_back(s.duration_s);
      segments_.push_back(tc::SharedBytes::in_memfd(std::string_view(reinterpret_cast<const char*>(s.bytes.data()), s.bytes.size())));
    });
    seg.push(pkts, 0);
    seg.flush();
    if (segments_.size() < 2) throw std::runtime_error("h264_aac.ts cut into fewer than 2 segments");
    hls::MasterPlaylist master;
    master.variants.push_back(hls::variant_from(seg.stream_info(), "live.m3u8"));
    master_ = tc::SharedBytes::heap(hls::master_playlist(master));
  }

  // The media sequence the source publishes at `t` (the first segment of its playlist).
  [[nodiscard]] std::uint64_t sequence_at(Clock::time_point t) const {
    if (t < start_) return kFirstSequence;
    return kFirstSequence + static_cast<std::uint64_t>((t - start_) / kTick);
  }
  [[nodiscard]] std::uint64_t sequence_now() const { return sequence_at(Clock::now()); }
  [[nodiscard]] std::string segment_name(std::uint64_t seq) const { return "seg-" + std::to_string(seq) + ".ts"; }
  [[nodiscard]] std::string segment_body(std::uint64_t seq) const { return std::string(segments_[seq % segments_.size()]->view()); }
  // Waits until the window starts a new segment, so the next ~1 s has no boundary.
  void wait_for_fresh_tick() const {
    const std::uint64_t now = sequence_now();
    while (sequence_now() == now) std::this_thread::sleep_for(5ms);
  }
  // Waits until the window starts anew with the fixture's first segment: for the next ~2 s
  // its first two segments are the fixture's first two, with no discontinuity between them.
  void wait_for_fixture_start() const {
    do {
      wait_for_fresh_tick();
    } while (sequence_now() % segments_.size() != 0);
  }

  [[nodiscard]] int count(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(name);
    return it == counts_.end() ? 0 : it->second;
  }

  std::optional<tc::HlsResource> get(std::string_view channel, std::string_view name, std::string_view) override {
    const std::uint64_t m = sequence_now();
    {
      std::lock_guard lock(mutex_);
      ++counts_[std::string(name)];
    }
    if (channel != kChannel) return std::nullopt;
    tc::HlsResource r;
    if (name == "index.m3u8" || name == "live.m3u8") {
      r.kind = tc::HlsResource::Kind::kPlaylist;
      r.content_type = "application/vnd.apple.mpegurl";
      r.max_age_s = kPlaylistMaxAgeS;
      if (name == "index.m3u8") {
        r.body = master_;
        r.etag = "\"i1\"";
      } else {
        r.body = tc::SharedBytes::heap(media_playlist(m));
        r.etag = "\"m" + std::to_string(m) + "\"";
      }
      return r;
    }
    constexpr std::string_view kPrefix = "seg-";
    constexpr std::string_view kSuffix = ".ts";
    if (name.size() <= kPrefix.size() + kSuffix.size() || name.substr(0, kPrefix.size()) != kPrefix ||
        name.substr(name.size() - kSuffix.size()) != kSuffix) {
      return std::nullopt;
    }
    const std::string digits(name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size()));
    if (digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    const std::uint64_t seq = std::stoull(digits);
    if (seq < m || seq >= m + kWindow) return std::nullopt;
    r.kind = tc::HlsResource::Kind::kSegment;
    r.content_type = "video/mp2t";
    r.body = segments_[seq % segments_.size()];
    r.etag = "\"s" + std::to_string(seq) + "\"";
    return r;
  }
  std::vector<std::string> channel_ids() override { return {kChannel}; }
  std::string channels_json() override {
    return R"([{"id":"news","name":"News","state":"serving","url":"/hls/news/index.m3u8"}])";
  }

 private:
  std::string media_playlist(std::uint64_t m) const {
    const std::uint64_t n = segments_.size();
    hls::MediaPlaylist p;
    p.target_duration_s = 2;
    p.media_sequence = m;
    // Discontinuities before m (the Segmenter's convention: a segment with the tag has
    // the same discontinuity sequence as the one before it).
    p.discontinuity_sequence = m == 0 ? 0 : (m - 1) / n;
    for (std::uint64_t s = m; s < m + kWindow; ++s) {
      p.entries.push_back(hls::MediaEntry{.uri = segment_name(s),
                                          .duration_s = durations_[s % n],
                                          .discontinuity = s > 0 && s % n == 0,
                                          .program_date_time_ms = 1'700'000'000'000 + static_cast<std::int64_t>(s) * 2000});
    }
    return hls::media_playlist(p);
  }

  const Clock::time_point start_;
  std::vector<std::shared_ptr<const tc::SharedBytes>> segments_;  // in memfds: sent with sendfile
  std::vector<double> durations_;
  std::shared_ptr<const tc::SharedBytes> master_;
  std::mutex mutex_;
  std::map<std::string, int> counts_;
};

// ---------------------------------------------------------------------------------------
// A blocking HTTP/1.1 client (one connection per request).

using Reply = twincast::test::HttpReply;

using Headers = twincast::test::HttpHeaders;

Reply request(std::uint16_t port, http::verb method, const std::string& target, const Headers& headers = {}) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(10s);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.keep_alive(false);
  http::write(stream, req);
  beast::flat_buffer buffer;
  return twincast::test::read_reply(stream, buffer, method == http::verb::head);
}

Reply get(std::uint16_t port, const std::string& target, const Headers& headers = {}) {
  return request(port, http::verb::get, target, headers);
}

// The MEDIA-SEQUENCE of a media playlist, or -1.
long long media_sequence(const std::string& playlist) {
  constexpr std::string_view kTag = "#EXT-X-MEDIA-SEQUENCE:";
  const auto at = playlist.find(kTag);
  if (at == std::string::npos) return -1;
  return std::stoll(playlist.substr(at + kTag.size()));
}

std::uint16_t free_port() {
  asio::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

bool accepts(std::uint16_t port) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  return !ec;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool have_nginx() { return std::system("command -v nginx > /dev/null 2>&1") == 0; }

// ---------------------------------------------------------------------------------------
// nginx as a caching reverse proxy in front of the origin, a child process of the test.

class Nginx {
 public:
  Nginx(const fs::path& dir, std::uint16_t origin_port) : dir_(dir) {
    for (int attempt = 0; attempt < 3 && pid_ <= 0; ++attempt) {
      port_ = free_port();
      write_config(origin_port);
      start();
    }
    if (pid_ <= 0) throw std::runtime_error("nginx did not start: " + slurp(dir_ / "nginx.out") + slurp(dir_ / "error.log"));
  }
  ~Nginx() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string error_log() const { return slurp(dir_ / "error.log"); }

 private:
  void write_config(std::uint16_t origin_port) {
    const std::string d = dir_.string();
    std::ofstream conf(dir_ / "nginx.conf");
    // As root, the workers keep root (the temp directory is not the nobody user's).
    if (::geteuid() == 0) conf << "user root;\n";
    conf << "worker_processes 1;\n"
         << "error_log " << d << "/error.log info;\n"
         << "events { worker_connections 512; }\n"
         << "http {\n"
         << "  access_log " << d << "/access.log;\n"
         << "  client_body_temp_path " << d << "/client_body;\n"
         << "  proxy_temp_path " << d << "/proxy_temp;\n"
         << "  fastcgi_temp_path " << d << "/fastcgi_temp;\n"
         << "  uwsgi_temp_path " << d << "/uwsgi_temp;\n"
         << "  scgi_temp_path " << d << "/scgi_temp;\n"
         << "  proxy_cache_path " << d << "/cache levels=1:2 keys_zone=hls:10m max_size=256m inactive=10m"
         << " use_temp_path=off;\n"
         << "  upstream origin { server 127.0.0.1:" << origin_port << "; keepalive 16; }\n"
         << "  server {\n"
         << "    listen 127.0.0.1:" << port_ << ";\n"
         << "    location / {\n"
         << "      proxy_pass http://origin;\n"
         << "      proxy_http_version 1.1;\n"
         << "      proxy_set_header Connection \"\";\n"
         << "      proxy_cache hls;\n"
         << "      proxy_cache_lock on;\n"
         << "      proxy_cache_revalidate on;\n"
         // Only for answers without caching headers: the origin's Cache-Control wins
         // (max-age for playlists and segments, no-cache for 404s), which the test checks
         // by making these long.
         << "      proxy_cache_valid 200 206 10m;\n"
         << "      proxy_cache_valid 404 10m;\n"
         << "      add_header X-Cache-Status $upstream_cache_status always;\n"
         << "    }\n"
         << "  }\n"
         << "}\n";
  }

  void start() {
    const std::string prefix = dir_.string() + "/";
    const std::string conf = (dir_ / "nginx.conf").string();
    const std::string globals = "daemon off; pid " + (dir_ / "nginx.pid").string() + ";";
    const std::string out = (dir_ / "nginx.out").string();
    std::vector<std::string> args = {"nginx", "-p", prefix, "-c", conf, "-g", globals};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, "nginx", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return;
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return;  // exited (port taken, bad config)
      if (accepts(port_)) {
        pid_ = pid;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }

  fs::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

class CdnCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_nginx()) GTEST_SKIP() << "nginx not installed (scripts/setup installs it)";
    dir_ = tt::temp_dir("cdn-cache");
    source_ = std::make_unique<LiveSource>();
    origin_ = std::make_unique<tc::HlsOrigin>(*source_);
    origin_->listen("127.0.0.1:0");
    origin_->start();
    nginx_ = std::make_unique<Nginx>(dir_, origin_->ports().at(0));
    port_ = nginx_->port();
  }
  void TearDown() override {
    if (HasFailure() && nginx_) std::cerr << "nginx error.log:\n" << nginx_->error_log();
    nginx_.reset();
    if (origin_) origin_->stop();
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }

  static std::string path(const std::string& name) { return std::string("/hls/") + kChannel + "/" + name; }

  fs::path dir_;
  std::unique_ptr<LiveSource> source_;
  std::unique_ptr<tc::HlsOrigin> origin_;
  std::unique_ptr<Nginx> nginx_;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST_F(CdnCacheTest, SegmentIsFetchedOnceThenServedFromTheCache) {
  source_->wait_for_fresh_tick();
  const std::uint64_t seq = source_->sequence_now() + 1;  // in the window for the next ~2 s
  const std::string name = source_->segment_name(seq);
  const std::string& body = source_->segment_body(seq);

  const Reply first = get(port_, path(name));
  ASSERT_EQ(first.status, 200U);
  EXPECT_EQ(first.header("x-cache-status"), "MISS");
  EXPECT_TRUE(first.body == body) << first.body.size() << " bytes, want " << body.size();
  EXPECT_EQ(first.header("cache-control"), "public, max-age=86400, immutable");
  EXPECT_EQ(first.header("content-type"), "video/mp2t");
  EXPECT_EQ(first.header("etag"), "\"s" + std::to_string(seq) + "\"");
  EXPECT_EQ(first.header("access-control-allow-origin"), "*");

  const Reply second = get(port_, path(name));
  ASSERT_EQ(second.status, 200U);
  EXPECT_EQ(second.header("x-cache-status"), "HIT");
  EXPECT_TRUE(second.body == body);
  EXPECT_EQ(second.header("etag"), first.header("etag"));
  EXPECT_EQ(second.header("cache-control"), "public, max-age=86400, immutable");
  EXPECT_EQ(second.header("access-control-allow-origin"), "*");  // stored with the answer
  EXPECT_EQ(source_->count(name), 1);

  // A HEAD from the cache.
  const Reply head = request(port_, http::verb::head, path(name));
  EXPECT_EQ(head.status, 200U);
  EXPECT_EQ(head.header("content-length"), std::to_string(body.size()));
  EXPECT_EQ(source_->count(name), 1);

  // Once evicted at the origin, the cache keeps serving it (immutable, max-age 86400).
  while (source_->sequence_now() <= seq) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(get(port_, path(name)).header("x-cache-status"), "HIT");
  EXPECT_EQ(source_->count(name), 1);
}

TEST_F(CdnCacheTest, ConcurrentViewersOfANewSegmentMakeOneOriginRequest) {
  // proxy_cache_lock: a new segment that many viewers ask for at once reaches the origin once.
  source_->wait_for_fresh_tick();
  const std::uint64_t seq = source_->sequence_now() + 2;
  const std::string name = source_->segment_name(seq);
  const std::string& body = source_->segment_body(seq);
  constexpr int kViewers = 16;
  std::vector<Reply> replies(kViewers);
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int i = 0; i < kViewers; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      replies[static_cast<std::size_t>(i)] = get(port_, path(name));
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  int misses = 0;
  for (const Reply& r : replies) {
    EXPECT_EQ(r.status, 200U);
    EXPECT_TRUE(r.body == body);
    misses += r.header("x-cache-status") == "MISS" ? 1 : 0;
  }
  EXPECT_EQ(source_->count(name), 1);
  EXPECT_GE(misses, 1);  // the one that filled the cache (the waiters are HITs or MISSes)
}

TEST_F(CdnCacheTest, RangesThroughTheCacheAreExact) {
  source_->wait_for_fresh_tick();
  const std::uint64_t seq = source_->sequence_now() + 1;
  const std::string name = source_->segment_name(seq);
  const std::string& body = source_->segment_body(seq);
  const std::string total = std::to_string(body.size());

  // On a miss: nginx fetches the whole segment (it does not pass Range on when caching)
  // and answers the range from it.
  Reply r = get(port_, path(name), {{"Range", "bytes=188-1315"}});
  EXPECT_EQ(r.status, 206U);
  EXPECT_EQ(r.header("x-cache-status"), "MISS");
  EXPECT_EQ(r.header("content-range"), "bytes 188-1315/" + total);
  EXPECT_TRUE(r.body == body.substr(188, 1128)) << r.body.size();

  // From the cache: a middle range, a suffix range, an open-ended range.
  r = get(port_, path(name), {{"Range", "bytes=100000-100187"}});
  EXPECT_EQ(r.status, 206U);
  EXPECT_EQ(r.header("x-cache-status"), "HIT");
  EXPECT_EQ(r.header("content-range"), "bytes 100000-100187/" + total);
  EXPECT_TRUE(r.body == body.substr(100000, 188));
  r = get(port_, path(name), {{"Range", "bytes=-376"}});
  EXPECT_EQ(r.status, 206U);
  EXPECT_TRUE(r.body == body.substr(body.size() - 376));
  const std::size_t from = body.size() - 1000;
  r = get(port_, path(name), {{"Range", "bytes=" + std::to_string(from) + "-"}});
  EXPECT_EQ(r.status, 206U);
  EXPECT_EQ(r.header("content-range"),
            "bytes " + std::to_string(from) + "-" + std::to_string(body.size() - 1) + "/" + total);
  EXPECT_TRUE(r.body == body.substr(from));
  // Past the end: 416.
  r = get(port_, path(name), {{"Range", "bytes=" + total + "-"}});
  EXPECT_EQ(r.status, 416U);
  EXPECT_EQ(source_->count(name), 1);
}

TEST_F(CdnCacheTest, PlaylistStaysFreshWithinMaxAgePlusOneSecond) {
  // Every 100 ms for ~3.5 s: the playlist through nginx is never older than max-age + 1 s
  // (nginx counts in whole seconds): its MEDIA-SEQUENCE is at least what the source
  // published max-age + 1 s before the request, and never ahead of the source.
  const auto kStaleBound = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kPlaylistMaxAgeS + 1.0));
  struct Fetch {
    Clock::time_point sent;
    Clock::time_point received;
    long long sequence;
    std::string cache;
    std::string etag;
  };
  std::vector<Fetch> fetches;
  // At least 3.5 s and 20 fetches (fewer fit in 3.5 s when each is slow on a loaded machine).
  const auto end = Clock::now() + 3500ms;
  while (Clock::now() < end || fetches.size() < 20) {
    Fetch f;
    f.sent = Clock::now();
    const Reply r = get(port_, path("live.m3u8"));
    f.received = Clock::now();
    ASSERT_EQ(r.status, 200U);
    EXPECT_EQ(r.header("cache-control"), "public, max-age=1");
    EXPECT_EQ(r.header("content-type"), "application/vnd.apple.mpegurl");
    EXPECT_EQ(r.header("access-control-allow-origin"), "*");
    f.sequence = media_sequence(r.body);
    f.cache = r.header("x-cache-status");
    f.etag = r.header("etag");
    EXPECT_EQ(f.etag, "\"m" + std::to_string(f.sequence) + "\"");
    fetches.push_back(f);
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_GE(fetches.size(), 20U);
  std::map<std::string, int> by_status;
  long long previous = 0;
  std::set<long long> versions;
  for (const Fetch& f : fetches) {
    const auto oldest_allowed = static_cast<long long>(source_->sequence_at(f.sent - kStaleBound - 100ms));
    const auto newest = static_cast<long long>(source_->sequence_at(f.received));
    EXPECT_GE(f.sequence, oldest_allowed) << "stale playlist (" << f.cache << ")";
    EXPECT_LE(f.sequence, newest);
    EXPECT_GE(f.sequence, previous) << "went back";
    previous = f.sequence;
    versions.insert(f.sequence);
    ++by_status[f.cache];
  }
  // It moved on with the source: with max-age=1 nginx refreshes at least every 2 s.
  EXPECT_GE(versions.size(), 2U);
  std::cout << fetches.size() << " fetches, " << versions.size() << " versions (" << *versions.begin() << ".."
            << *versions.rbegin() << "), HIT " << by_status["HIT"] << ", MISS " << by_status["MISS"] << ", EXPIRED "
            << by_status["EXPIRED"] << ", REVALIDATED " << by_status["REVALIDATED"] << "; origin saw "
            << source_->count("live.m3u8") << "\n";
  // The cache absorbed most of them: the origin saw about one request per max-age.
  EXPECT_GE(by_status["HIT"], 1);
  EXPECT_LT(source_->count("live.m3u8"), static_cast<int>(fetches.size()) / 2)
      << "HIT " << by_status["HIT"] << ", MISS " << by_status["MISS"] << ", EXPIRED " << by_status["EXPIRED"];
}

TEST_F(CdnCacheTest, ConditionalRequestsThroughTheCache) {
  // A segment: 304 for its ETag, 200 for another.
  source_->wait_for_fresh_tick();
  const std::uint64_t seq = source_->sequence_now() + 1;
  const std::string name = source_->segment_name(seq);
  const Reply full = get(port_, path(name));
  ASSERT_EQ(full.status, 200U);
  const std::string etag = full.header("etag");
  Reply r = get(port_, path(name), {{"If-None-Match", etag}});
  EXPECT_EQ(r.status, 304U);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.header("etag"), etag);
  r = get(port_, path(name), {{"If-None-Match", "\"s1\""}});
  EXPECT_EQ(r.status, 200U);
  EXPECT_TRUE(r.body == source_->segment_body(seq));
  EXPECT_EQ(source_->count(name), 1);

  // The playlist: its current ETag gives 304 while the cached copy is fresh; an old one
  // gives the new playlist.
  bool got_304 = false;
  for (int attempt = 0; attempt < 5 && !got_304; ++attempt) {
    source_->wait_for_fresh_tick();
    const Reply p = get(port_, path("live.m3u8"));
    ASSERT_EQ(p.status, 200U);
    const Reply c = get(port_, path("live.m3u8"), {{"If-None-Match", p.header("etag")}});
    if (c.status == 304U) {
      got_304 = true;
      EXPECT_TRUE(c.body.empty());
      EXPECT_EQ(c.header("etag"), p.header("etag"));
    } else {
      EXPECT_EQ(c.status, 200U);
      EXPECT_NE(c.header("etag"), p.header("etag"));  // only a newer version may be a 200
    }
  }
  EXPECT_TRUE(got_304);
  r = get(port_, path("live.m3u8"), {{"If-None-Match", "\"m1\""}});
  EXPECT_EQ(r.status, 200U);
  EXPECT_GE(media_sequence(r.body), static_cast<long long>(kFirstSequence));
}

TEST_F(CdnCacheTest, NotFoundIsNotCachedAndALateSegmentArrives) {
  source_->wait_for_fresh_tick();
  const std::uint64_t m = source_->sequence_now();
  // Evicted: 404 each time from the origin (no-cache), although nginx would keep a 404
  // for 10 minutes if the origin said nothing.
  const std::string evicted = source_->segment_name(m - 1);
  for (int i = 1; i <= 2; ++i) {
    const Reply r = get(port_, path(evicted));
    EXPECT_EQ(r.status, 404U);
    EXPECT_EQ(r.header("cache-control"), "no-cache");
    EXPECT_EQ(r.header("access-control-allow-origin"), "*");
    const std::string status = r.header("x-cache-status");
    EXPECT_TRUE(status == "MISS" || status == "EXPIRED" || status == "BYPASS") << status;
    EXPECT_EQ(source_->count(evicted), i);
  }
  // Asked for too early (a player racing the packager): 404, then 200 once published. A
  // fresh tick first: the two requests above may have taken this one's.
  source_->wait_for_fresh_tick();
  const std::uint64_t early = source_->sequence_now() + kWindow;
  const std::string name = source_->segment_name(early);
  EXPECT_EQ(get(port_, path(name)).status, 404U);
  while (source_->sequence_now() + kWindow <= early) std::this_thread::sleep_for(50ms);
  const Reply r = get(port_, path(name));
  EXPECT_EQ(r.status, 200U);
  EXPECT_TRUE(r.body == source_->segment_body(early));
  EXPECT_EQ(source_->count(name), 2);
  // A name the origin refuses: its 400 passes through.
  EXPECT_EQ(get(port_, "/hls/news/..%2Fetc").status, 400U);
}

TEST_F(CdnCacheTest, CorsPreflightPassesThrough) {
  const Reply r = request(port_, http::verb::options, path("live.m3u8"),
                          {{"Origin", "https://player.example"}, {"Access-Control-Request-Method", "GET"}});
  EXPECT_EQ(r.status, 204U);
  EXPECT_EQ(r.header("access-control-allow-origin"), "*");
  EXPECT_NE(r.header("access-control-allow-methods").find("GET"), std::string::npos);
  EXPECT_NE(r.header("access-control-allow-headers").find("Range"), std::string::npos);
  const Reply g = get(port_, path("index.m3u8"), {{"Origin", "https://player.example"}});
  EXPECT_EQ(g.status, 200U);
  EXPECT_EQ(g.header("access-control-allow-origin"), "*");
  EXPECT_NE(g.header("access-control-expose-headers").find("Content-Range"), std::string::npos);
}

TEST_F(CdnCacheTest, FfmpegPlaysTheChannelThroughTheCache) {
  if (std::system("command -v ffmpeg > /dev/null 2>&1") != 0) GTEST_SKIP() << "ffmpeg not installed";
  const std::string url = "http://127.0.0.1:" + std::to_string(port_) + path("index.m3u8");
  // ffmpeg does not reset its timestamps at an EXT-X-DISCONTINUITY: 4 s from a window that
  // starts with the fixture's last segment cross the fixture's restart, where it complains
  // ("non monotonically increasing dts"). That was up to when ffmpeg came after SetUp; now
  // its window starts with the fixture's first or second segment.
  source_->wait_for_fixture_start();
  const auto r = tt::run("timeout 60 ffmpeg -nostdin -v error -i " + url + " -t 4 -f null - 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(r.out.empty()) << r.out;
  // It went through the master, the media playlist and at least two segments, all via nginx.
  EXPECT_GE(source_->count("index.m3u8"), 1);
  EXPECT_GE(source_->count("live.m3u8"), 1);
  const std::string log = slurp(dir_ / "access.log");
  EXPECT_NE(log.find("GET /hls/news/index.m3u8"), std::string::npos) << log;
  EXPECT_NE(log.find("GET /hls/news/live.m3u8"), std::string::npos) << log;
  std::size_t segments = 0;
  for (std::size_t at = log.find("/hls/news/seg-"); at != std::string::npos; at = log.find("/hls/news/seg-", at + 1)) {
    ++segments;
  }
  EXPECT_GE(segments, 2U) << log;
  // A second viewer right after is served the segments it shares with the first from the
  // cache: the origin saw each segment at most once.
  const auto r2 = tt::run("timeout 60 ffmpeg -nostdin -v error -i " + url + " -t 4 -f null - 2>&1");
  EXPECT_EQ(r2.exit_code, 0) << r2.out;
  const std::uint64_t now = source_->sequence_now();
  for (std::uint64_t s = kFirstSequence; s <= now + kWindow; ++s) {
    EXPECT_LE(source_->count(source_->segment_name(s)), 1) << s;
  }
}
