// The HLS origin over a fake source, with a Beast client, raw sockets, curl and ffprobe:
// headers (types, caching, CORS, ETag, ranges), conditional and ranged GETs with exact
// bytes, HEAD, 404s, traversal attempts, keep-alive, slow clients, the web page; signed
// URLs (403 by reason, tokens carried into playlists, private caching, per-token ETags and
// viewers, ffprobe following a tokenised playlist) and the policy from a configuration.
#include "twincast/control/hls_origin.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "control/http_reply.hpp"
#include "tests_common.hpp"

namespace tc = twincast::control;
namespace tt = twincast::test;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kSegmentBytes = 2 * 1024 * 1024;
constexpr const char* kPlaylist =
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:42\n"
    "#EXT-X-KEY:METHOD=AES-128,URI=\"key-1.key\"\n#EXTINF:2.000,\nseg-42.ts\n";

// ---------------------------------------------------------------------------------------
// A fake segment store: channel "news" with a playlist, a 2 MB segment and a key; records
// every (channel, name) it is asked for.

class FakeSource : public tc::HlsSource {
 public:
  FakeSource() {
    std::mt19937 rng(42);
    std::string seg(kSegmentBytes, '\0');
    for (auto& c : seg) c = static_cast<char>(rng() & 0xFF);
    put("news", "index.m3u8",
        {.body = tc::SharedBytes::heap(std::string(kPlaylist)),
         .content_type = "application/vnd.apple.mpegurl",
         .etag = "\"p42-1\"",
         .kind = tc::HlsResource::Kind::kPlaylist,
         .max_age_s = 1.0});
    put("news", "seg-42.ts",
        {.body = tc::SharedBytes::in_memfd(seg, "seg-42.ts"),  // sent with sendfile
         .content_type = "video/mp2t",
         .etag = "\"s42-1a2b\"",
         .kind = tc::HlsResource::Kind::kSegment,
         .max_age_s = 0});
    put("news", "key-1.key",
        {.body = tc::SharedBytes::heap(std::string("0123456789abcdef")),
         .content_type = "application/octet-stream",
         .etag = "",  // the origin hashes it
         .kind = tc::HlsResource::Kind::kKey,
         .max_age_s = 0});
  }

  void put(const std::string& channel, const std::string& name, tc::HlsResource r) {
    std::lock_guard lock(mutex_);
    resources_[channel + "/" + name] = std::move(r);
  }
  void evict(const std::string& channel, const std::string& name) {
    std::lock_guard lock(mutex_);
    resources_.erase(channel + "/" + name);
  }
  std::shared_ptr<const tc::SharedBytes> body(const std::string& channel, const std::string& name) {
    std::lock_guard lock(mutex_);
    return resources_.at(channel + "/" + name).body;
  }
  std::vector<std::pair<std::string, std::string>> asked() {
    std::lock_guard lock(mutex_);
    return asked_;
  }
  std::vector<std::string> queries() {
    std::lock_guard lock(mutex_);
    return queries_;
  }

  std::optional<tc::HlsResource> get(std::string_view channel, std::string_view name,
                                     std::string_view query) override {
    std::lock_guard lock(mutex_);
    asked_.emplace_back(channel, name);
    queries_.emplace_back(query);
    auto it = resources_.find(std::string(channel) + "/" + std::string(name));
    if (it == resources_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> channel_ids() override { return {"news"}; }
  std::string channels_json() override {
    return R"([{"id":"news","name":"News HD","state":"ok","url":"/hls/news/index.m3u8","bitrate_bps":4500000,)"
           R"("segments":5}])";
  }

 private:
  std::mutex mutex_;
  std::map<std::string, tc::HlsResource> resources_;
  std::vector<std::pair<std::string, std::string>> asked_;
  std::vector<std::string> queries_;
};

// ---------------------------------------------------------------------------------------
// A small blocking HTTP client.

using Reply = twincast::test::HttpReply;

using Headers = twincast::test::HttpHeaders;

class Client {
 public:
  explicit Client(std::uint16_t port) : stream_(ioc_) {
    stream_.expires_after(5s);
    stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  Reply send(http::verb method, const std::string& target, const Headers& headers = {}, bool keep_alive = true) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.keep_alive(keep_alive);
    req.prepare_payload();
    stream_.expires_after(5s);
    http::write(stream_, req);
    return twincast::test::read_reply(stream_, buffer_, method == http::verb::head);
  }

 private:
  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

Reply get(std::uint16_t port, const std::string& target, const Headers& headers = {}) {
  Client c(port);
  return c.send(http::verb::get, target, headers, false);
}

// Sends raw bytes on a fresh connection and reads until the server closes (or 10 s).
std::string raw_exchange(std::uint16_t port, const std::string& bytes) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  boost::system::error_code ec;
  asio::write(s, asio::buffer(bytes), ec);
  s.shutdown(tcp::socket::shutdown_send, ec);
  std::string out;
  std::array<char, 4096> buf{};
  timeval tv{10, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (true) {
    std::size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf.data(), n);
  }
  return out;
}

unsigned status_of(const std::string& raw) {
  if (raw.size() < 12 || raw.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return static_cast<unsigned>(std::stoul(raw.substr(9, 3)));
}

std::filesystem::path source_dir() {
  const char* v = std::getenv("TWINCAST_SOURCE_DIR");
  return v ? std::filesystem::path(v) : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

class HlsOriginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static_dir_ = tt::temp_dir("hls-origin-web");
    for (const char* f : {"index.html", "app.js", "style.css"}) {
      std::filesystem::copy_file(source_dir() / "control/web" / f, static_dir_ / f,
                                 std::filesystem::copy_options::overwrite_existing);
    }
    // The project's scripts install the real hls.js here; a stand-in is enough to serve.
    std::ofstream(static_dir_ / "hls.min.js") << "/* hls.js stand-in */ window.Hls = undefined;\n";
    origin_ = std::make_unique<tc::HlsOrigin>(source_, options());
    origin_->listen("127.0.0.1:0");
    origin_->start();
    port_ = origin_->ports().at(0);
  }
  void TearDown() override {
    origin_->stop();
    std::filesystem::remove_all(static_dir_);
  }
  virtual tc::HlsOriginOptions options() { return tc::HlsOriginOptions{.static_dir = static_dir_}; }

  // Every name that reached the source is one the origin accepts.
  void expect_only_valid_names_reached_the_source() {
    for (const auto& [channel, name] : source_.asked()) {
      EXPECT_TRUE(tc::valid_hls_name(channel)) << channel;
      EXPECT_TRUE(tc::valid_hls_name(name)) << name;
      EXPECT_EQ(name.find(".."), std::string::npos);
      EXPECT_EQ(name.find('/'), std::string::npos);
    }
  }

  FakeSource source_;
  std::filesystem::path static_dir_;
  std::unique_ptr<tc::HlsOrigin> origin_;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST(HlsName, Validation) {
  EXPECT_TRUE(tc::valid_hls_name("index.m3u8"));
  EXPECT_TRUE(tc::valid_hls_name("seg-123.ts"));
  EXPECT_TRUE(tc::valid_hls_name("news_HD-2"));
  EXPECT_FALSE(tc::valid_hls_name(""));
  EXPECT_FALSE(tc::valid_hls_name("."));
  EXPECT_FALSE(tc::valid_hls_name(".."));
  EXPECT_FALSE(tc::valid_hls_name(".hidden"));
  EXPECT_FALSE(tc::valid_hls_name("a..b"));
  EXPECT_FALSE(tc::valid_hls_name("a/b"));
  EXPECT_FALSE(tc::valid_hls_name("a\\b"));
  EXPECT_FALSE(tc::valid_hls_name("a b"));
  EXPECT_FALSE(tc::valid_hls_name(std::string("a\0b", 3)));
  EXPECT_FALSE(tc::valid_hls_name("s%2e.ts"));
  EXPECT_TRUE(tc::valid_hls_name(std::string(128, 'a')));
  EXPECT_FALSE(tc::valid_hls_name(std::string(129, 'a')));
}

TEST_F(HlsOriginTest, PlaylistSegmentAndKeyHeaders) {
  Reply p = get(port_, "/hls/news/index.m3u8");
  ASSERT_EQ(p.status, 200U);
  EXPECT_EQ(p.body, kPlaylist);
  EXPECT_EQ(p.header("content-type"), "application/vnd.apple.mpegurl");
  EXPECT_EQ(p.header("cache-control"), "public, max-age=1");
  EXPECT_EQ(p.header("etag"), "\"p42-1\"");
  EXPECT_EQ(p.header("accept-ranges"), "bytes");
  EXPECT_EQ(p.header("access-control-allow-origin"), "*");
  EXPECT_NE(p.header("access-control-expose-headers").find("Content-Range"), std::string::npos);
  EXPECT_EQ(p.header("content-length"), std::to_string(std::string(kPlaylist).size()));
  EXPECT_NE(p.header("date").find(" GMT"), std::string::npos) << p.header("date");

  Reply s = get(port_, "/hls/news/seg-42.ts");
  ASSERT_EQ(s.status, 200U);
  EXPECT_EQ(s.body.size(), kSegmentBytes);
  EXPECT_TRUE(s.body == *source_.body("news", "seg-42.ts"));
  EXPECT_EQ(s.header("content-type"), "video/mp2t");
  EXPECT_EQ(s.header("cache-control"), "public, max-age=86400, immutable");
  EXPECT_EQ(s.header("etag"), "\"s42-1a2b\"");
  EXPECT_EQ(s.header("content-length"), std::to_string(kSegmentBytes));

  Reply k = get(port_, "/hls/news/key-1.key");
  ASSERT_EQ(k.status, 200U);
  EXPECT_EQ(k.body, "0123456789abcdef");
  EXPECT_EQ(k.header("content-type"), "application/octet-stream");
  EXPECT_EQ(k.header("cache-control"), "private, max-age=86400");
  // No ETag from the source: a hash of the body, stable across requests.
  ASSERT_GE(k.header("etag").size(), 4U);
  EXPECT_EQ(k.header("etag").front(), '"');
  EXPECT_EQ(get(port_, "/hls/news/key-1.key").header("etag"), k.header("etag"));

  // A playlist without max-age from the source is revalidated each time.
  source_.put("news", "live.m3u8",
              {.body = tc::SharedBytes::heap(std::string("#EXTM3U\n")),
               .content_type = "application/vnd.apple.mpegurl",
               .etag = "\"l\"",
               .kind = tc::HlsResource::Kind::kPlaylist,
               .max_age_s = 0});
  EXPECT_EQ(get(port_, "/hls/news/live.m3u8").header("cache-control"), "no-cache");

  // The query reaches the source (LL-HLS _HLS_msn...).
  EXPECT_EQ(get(port_, "/hls/news/index.m3u8?_HLS_msn=43&_HLS_part=1").status, 200U);
  EXPECT_EQ(source_.queries().back(), "_HLS_msn=43&_HLS_part=1");
  EXPECT_EQ(origin_->stats().playlists.load(), 3U);
  EXPECT_EQ(origin_->stats().segments.load(), 1U);
  EXPECT_EQ(origin_->stats().keys.load(), 2U);
}

// A playlist's max-age is at most what the source asks for (half a segment: 1.5 s for 3 s
// segments), never rounded up past it: a CDN holding a 5 s channel's playlist for 3 s
// serves it stale for more than half a target duration. At least 1 s (0 would send every
// request to the origin).
TEST_F(HlsOriginTest, PlaylistMaxAgeIsNeverRoundedUpPastTheSources) {
  for (const auto& [seconds, want] : std::vector<std::pair<double, std::string>>{
           {0.5, "public, max-age=1"}, {1.5, "public, max-age=1"}, {2.5, "public, max-age=2"},
           {4.5, "public, max-age=4"}, {5.0, "public, max-age=5"}, {60.0, "public, max-age=60"}}) {
    source_.put("news", "odd.m3u8",
                {.body = tc::SharedBytes::heap(std::string(kPlaylist)),
                 .content_type = "application/vnd.apple.mpegurl",
                 .etag = "\"o\"",
                 .kind = tc::HlsResource::Kind::kPlaylist,
                 .max_age_s = seconds});
    EXPECT_EQ(get(port_, "/hls/news/odd.m3u8").header("cache-control"), want) << seconds;
  }
}

TEST_F(HlsOriginTest, IfNoneMatchGives304) {
  Client c(port_);
  for (const std::string& inm : {std::string("\"s42-1a2b\""), std::string("W/\"s42-1a2b\""),
                                 std::string("\"other\", \"s42-1a2b\""), std::string("*"),
                                 std::string("\"a,b\",\"s42-1a2b\"")}) {
    Reply r = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"If-None-Match", inm}});
    EXPECT_EQ(r.status, 304U) << inm;
    EXPECT_TRUE(r.body.empty());
    EXPECT_EQ(r.header("etag"), "\"s42-1a2b\"");
    EXPECT_EQ(r.header("cache-control"), "public, max-age=86400, immutable");
    EXPECT_EQ(r.header("access-control-allow-origin"), "*");
    EXPECT_EQ(r.header("content-type"), "<absent>");
  }
  for (const std::string& inm : {std::string("\"s42-1a2\""), std::string("\"other\""), std::string("garbage"),
                                 std::string("\"s42-1a2b")}) {
    Reply r = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"If-None-Match", inm}});
    EXPECT_EQ(r.status, 200U) << inm;
    EXPECT_EQ(r.body.size(), kSegmentBytes);
  }
  // HEAD, and a Range under a matching If-None-Match: still 304.
  EXPECT_EQ(c.send(http::verb::head, "/hls/news/index.m3u8", {{"If-None-Match", "\"p42-1\""}}).status, 304U);
  EXPECT_EQ(c.send(http::verb::get, "/hls/news/seg-42.ts", {{"If-None-Match", "\"s42-1a2b\""}, {"Range", "bytes=0-9"}})
                .status,
            304U);
  // The connection stayed in step through the bodiless answers.
  Reply last = c.send(http::verb::get, "/hls/news/index.m3u8");
  EXPECT_EQ(last.status, 200U);
  EXPECT_EQ(last.body, kPlaylist);
  // channels.json and static files carry ETags too.
  Reply j = get(port_, "/channels.json");
  ASSERT_NE(j.header("etag"), "<absent>");
  EXPECT_EQ(get(port_, "/channels.json", {{"If-None-Match", j.header("etag")}}).status, 304U);
}

TEST_F(HlsOriginTest, ByteRanges) {
  const std::string seg = source_.body("news", "seg-42.ts")->str();
  const std::string total = std::to_string(kSegmentBytes);
  Client c(port_);
  struct Case {
    std::string range;
    std::size_t first;
    std::size_t length;
  };
  for (const Case& k : {Case{"bytes=0-99", 0, 100}, Case{"bytes=100-", 100, kSegmentBytes - 100},
                        Case{"bytes=-500", kSegmentBytes - 500, 500}, Case{"bytes=2000000-9999999", 2000000, 97152},
                        Case{"bytes=2097151-2097151", 2097151, 1}, Case{"bytes=-99999999", 0, kSegmentBytes},
                        Case{"BYTES= 10 - 19", 10, 10}}) {
    Reply r = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", k.range}});
    ASSERT_EQ(r.status, 206U) << k.range;
    EXPECT_EQ(r.header("content-range"), "bytes " + std::to_string(k.first) + "-" +
                                             std::to_string(k.first + k.length - 1) + "/" + total)
        << k.range;
    EXPECT_EQ(r.header("content-length"), std::to_string(k.length));
    EXPECT_TRUE(r.body == seg.substr(k.first, k.length)) << k.range;
    EXPECT_EQ(r.header("etag"), "\"s42-1a2b\"");
    EXPECT_EQ(r.header("content-type"), "video/mp2t");
  }
  for (const std::string& range : {std::string("bytes=2097152-"), std::string("bytes=9999999-10000000"),
                                   std::string("bytes=-0")}) {
    Reply r = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", range}});
    EXPECT_EQ(r.status, 416U) << range;
    EXPECT_EQ(r.header("content-range"), "bytes */" + total) << range;
    EXPECT_LT(r.body.size(), 200U);
    EXPECT_EQ(r.header("cache-control"), "no-store");
  }
  // Several ranges, malformed ones, other units: the whole body.
  for (const std::string& range : {std::string("bytes=0-1,5-6"), std::string("bytes=abc"), std::string("bytes=5-1"),
                                   std::string("items=0-1"), std::string("bytes=0x10-"), std::string("bytes=")}) {
    Reply r = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", range}});
    EXPECT_EQ(r.status, 200U) << range;
    EXPECT_EQ(r.body.size(), kSegmentBytes) << range;
    EXPECT_EQ(r.header("content-range"), "<absent>");
  }
  // If-Range: the range only while the validator still matches.
  Reply same = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", "bytes=0-9"}, {"If-Range", "\"s42-1a2b\""}});
  EXPECT_EQ(same.status, 206U);
  EXPECT_EQ(same.body, seg.substr(0, 10));
  Reply changed = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", "bytes=0-9"}, {"If-Range", "\"old\""}});
  EXPECT_EQ(changed.status, 200U);
  EXPECT_EQ(changed.body.size(), kSegmentBytes);
  // HEAD with a range: the 206's headers, no body.
  Reply head = c.send(http::verb::head, "/hls/news/seg-42.ts", {{"Range", "bytes=100-199"}});
  EXPECT_EQ(head.status, 206U);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(head.header("content-length"), "100");
  EXPECT_EQ(head.header("content-range"), "bytes 100-199/" + total);
  // Playlists too; the connection is still in step.
  Reply p = c.send(http::verb::get, "/hls/news/index.m3u8", {{"Range", "bytes=0-6"}});
  EXPECT_EQ(p.status, 206U);
  EXPECT_EQ(p.body, "#EXTM3U");
  // Not on channels.json (no ranges there).
  Reply j = c.send(http::verb::get, "/channels.json", {{"Range", "bytes=0-0"}});
  EXPECT_EQ(j.status, 200U);
  EXPECT_EQ(j.header("accept-ranges"), "<absent>");
}

// RFC 9110 14.1.2: a last position at or past the end means "to the end", however many
// digits it has (clients ask for "bytes=0-18446744073709551615" for "everything"); a first
// position past the end is unsatisfiable, not malformed.
TEST_F(HlsOriginTest, RangePositionsOfAnyLengthAreRanges) {
  const std::string seg = source_.body("news", "seg-42.ts")->str();
  const std::string total = std::to_string(kSegmentBytes);
  Client c(port_);
  for (const std::string& range : {std::string("bytes=100-18446744073709551615"), std::string("bytes=100-99999999999999999999999")}) {
    Reply r = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", range}});
    EXPECT_EQ(r.status, 206U) << range;
    EXPECT_EQ(r.header("content-range"), "bytes 100-" + std::to_string(kSegmentBytes - 1) + "/" + total) << range;
    EXPECT_TRUE(r.body == seg.substr(100)) << range;
  }
  Reply suffix = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", "bytes=-99999999999999999999"}});
  EXPECT_EQ(suffix.status, 206U);
  EXPECT_EQ(suffix.header("content-range"), "bytes 0-" + std::to_string(kSegmentBytes - 1) + "/" + total);
  Reply past = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", "bytes=99999999999999999999-"}});
  EXPECT_EQ(past.status, 416U);
  EXPECT_EQ(past.header("content-range"), "bytes */" + total);
  // Still malformed: a last position before the first.
  EXPECT_EQ(c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", "bytes=99999999999999999999-5"}}).status, 200U);
}

TEST_F(HlsOriginTest, HeadHasHeadersWithoutBody) {
  Client c(port_);
  Reply head = c.send(http::verb::head, "/hls/news/seg-42.ts");
  EXPECT_EQ(head.status, 200U);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(head.header("content-length"), std::to_string(kSegmentBytes));
  EXPECT_EQ(head.header("content-type"), "video/mp2t");
  EXPECT_EQ(head.header("etag"), "\"s42-1a2b\"");
  Reply ph = c.send(http::verb::head, "/hls/news/index.m3u8");
  EXPECT_EQ(ph.header("content-length"), std::to_string(std::string(kPlaylist).size()));
  // Right after two bodiless answers, a GET reads exactly its own answer.
  Reply g = c.send(http::verb::get, "/hls/news/index.m3u8");
  EXPECT_EQ(g.body, kPlaylist);
  // HEAD of the page.
  Reply page = c.send(http::verb::head, "/");
  EXPECT_EQ(page.status, 200U);
  EXPECT_TRUE(page.body.empty());
  EXPECT_EQ(page.header("content-length"), std::to_string(std::filesystem::file_size(static_dir_ / "index.html")));
}

TEST_F(HlsOriginTest, UnknownChannelsAndEvictedSegmentsAre404) {
  Reply r = get(port_, "/hls/sport/index.m3u8");
  EXPECT_EQ(r.status, 404U);
  EXPECT_LT(r.body.size(), 100U);
  EXPECT_EQ(r.header("cache-control"), "no-cache");  // a CDN must not keep "not there yet"
  EXPECT_EQ(r.header("access-control-allow-origin"), "*");
  EXPECT_EQ(get(port_, "/hls/news/seg-41.ts").status, 404U);
  ASSERT_EQ(get(port_, "/hls/news/seg-42.ts").status, 200U);
  source_.evict("news", "seg-42.ts");
  EXPECT_EQ(get(port_, "/hls/news/seg-42.ts").status, 404U);
  EXPECT_EQ(origin_->stats().not_found.load(), 3U);
  // Paths outside the routes.
  EXPECT_EQ(get(port_, "/hls/news").status, 404U);
  EXPECT_EQ(get(port_, "/hls/news/index.m3u8/extra").status, 404U);
  EXPECT_EQ(get(port_, "/nothing").status, 404U);
  // Other methods.
  Client c(port_);
  Reply post = c.send(http::verb::post, "/hls/news/index.m3u8");
  EXPECT_EQ(post.status, 405U);
  EXPECT_EQ(post.header("allow"), "GET, HEAD, OPTIONS");
}

// RFC 9112 3.2.2: a server MUST accept the absolute-form ("GET http://host/path"), which
// a set-top box configured with the origin as its HTTP proxy, or a forwarding proxy, sends.
TEST_F(HlsOriginTest, AbsoluteFormTargetsAreServedLikeTheirPath) {
  for (const std::string& t : {std::string("http://127.0.0.1/hls/news/index.m3u8"),
                               std::string("HTTP://origin.example:8081/hls/news/index.m3u8?_HLS_msn=43"),
                               std::string("https://origin.example/hls/news/index.m3u8")}) {
    std::string raw = raw_exchange(port_, "GET " + t + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(status_of(raw), 200U) << t << "\n" << raw.substr(0, 200);
    EXPECT_NE(raw.find("seg-42.ts"), std::string::npos) << t;
  }
  ASSERT_FALSE(source_.queries().empty());
  EXPECT_EQ(source_.queries()[1], "_HLS_msn=43");
  // The authority alone is the root; traversal through it still fails.
  EXPECT_EQ(status_of(raw_exchange(port_, "GET http://127.0.0.1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
            200U);
  const unsigned bad = status_of(raw_exchange(
      port_, "GET http://127.0.0.1/hls/news/%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_GE(bad, 400U);
  EXPECT_LT(bad, 500U);
  expect_only_valid_names_reached_the_source();
}

TEST_F(HlsOriginTest, TraversalAttemptsAre4xxAndNeverReachTheSourceWithABadName) {
  const std::vector<std::string> targets = {
      "/hls/news/../../etc/passwd",
      "/hls/news/%2e%2e",
      "/hls/news/%2E%2E/%2E%2E/etc/passwd",
      "/hls/%2e%2e/index.m3u8",
      "/hls/news/..%2F..%2Fetc%2Fpasswd",
      "/hls/news/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "/hls/news/a%2Fb.ts",
      "/hls/news%2F..%2Fnews/index.m3u8",
      "/hls/news/.hidden",
      "/hls/news/seg%00.ts",
      "/hls/news/seg%20.ts",
      "/hls/news/seg%5C..%5Cx.ts",
      "/hls/news/seg%ZZ.ts",
      "/hls/news/seg%",
      "/hls/news/",
      "/hls//index.m3u8",
      "/hls/news/" + std::string(129, 'a'),
      "/hls/news/" + std::string(4000, 'a') + ".ts",
      "/static/../../etc/passwd",
      "/static/..%2F..%2Fetc%2Fpasswd",
      "/static/%2e%2e%2fhls_origin_test.cpp",
      "/static/%2e%2e",
      "/static/passwd",
      "/static/.hidden.js",
      "/static/app.js%00.html",
      "/../../etc/passwd",
      "//etc/passwd",
  };
  for (const std::string& t : targets) {
    std::string raw = raw_exchange(port_, "GET " + t + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    unsigned status = status_of(raw);
    std::cout << status << "  " << t.substr(0, 60) << "\n";
    EXPECT_GE(status, 400U) << t << "\n" << raw.substr(0, 200);
    EXPECT_LT(status, 500U) << t;
    EXPECT_EQ(raw.find("root:"), std::string::npos) << t;
  }
  // A name longer than the header limit: 431.
  std::string huge = raw_exchange(port_, "GET /hls/news/" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(huge), 431U) << huge.substr(0, 200);
  expect_only_valid_names_reached_the_source();
  EXPECT_GT(origin_->stats().bad_names.load(), 5U);
  // Still serving.
  EXPECT_EQ(get(port_, "/hls/news/index.m3u8").status, 200U);
}

TEST_F(HlsOriginTest, KeepAliveReusesOneConnection) {
  Client c(port_);
  for (int i = 0; i < 10; ++i) {
    Reply p = c.send(http::verb::get, "/hls/news/index.m3u8");
    EXPECT_EQ(p.status, 200U);
    EXPECT_TRUE(p.keep_alive);
    Reply s = c.send(http::verb::get, "/hls/news/seg-42.ts", {{"Range", "bytes=0-187"}});
    EXPECT_EQ(s.status, 206U);
    EXPECT_EQ(s.body.size(), 188U);
  }
  EXPECT_EQ(c.send(http::verb::get, "/hls/news/seg-99.ts").status, 404U);  // errors keep it too
  EXPECT_EQ(c.send(http::verb::get, "/hls/news/seg-42.ts").body.size(), kSegmentBytes);
  EXPECT_EQ(origin_->connections(), 1U);
  Reply last = c.send(http::verb::get, "/hls/news/index.m3u8", {}, false);
  EXPECT_FALSE(last.keep_alive);
}

TEST_F(HlsOriginTest, CorsPreflight) {
  Client c(port_);
  Reply r = c.send(http::verb::options, "/hls/news/seg-42.ts",
                   {{"Origin", "https://player.example"},
                    {"Access-Control-Request-Method", "GET"},
                    {"Access-Control-Request-Headers", "range"}});
  EXPECT_EQ(r.status, 204U);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.header("access-control-allow-origin"), "*");
  EXPECT_NE(r.header("access-control-allow-methods").find("GET"), std::string::npos);
  EXPECT_NE(r.header("access-control-allow-headers").find("Range"), std::string::npos);
  EXPECT_EQ(r.header("content-length"), "<absent>");
  // The preflight did not reach the source; the connection is still in step.
  EXPECT_TRUE(source_.asked().empty());
  EXPECT_EQ(c.send(http::verb::options, "/channels.json").status, 204U);
  EXPECT_EQ(c.send(http::verb::get, "/hls/news/index.m3u8").body, kPlaylist);
}

TEST_F(HlsOriginTest, WebPageStaticFilesAndChannels) {
  Reply page = get(port_, "/");
  ASSERT_EQ(page.status, 200U);
  EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("/static/hls.min.js"), std::string::npos);
  EXPECT_NE(page.body.find("/static/app.js"), std::string::npos);
  EXPECT_EQ(page.body.find("http://"), std::string::npos) << "no external URL";
  EXPECT_EQ(page.body.find("https://"), std::string::npos) << "no external URL";

  Reply app = get(port_, "/static/app.js");
  ASSERT_EQ(app.status, 200U);
  EXPECT_EQ(app.header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(app.header("x-content-type-options"), "nosniff");
  EXPECT_NE(app.body.find("/channels.json"), std::string::npos);
  EXPECT_NE(app.body.find("application/vnd.apple.mpegurl"), std::string::npos);  // Safari's native HLS
  EXPECT_EQ(app.body.find("http://"), std::string::npos);
  EXPECT_EQ(app.body.find("https://"), std::string::npos);
  EXPECT_EQ(get(port_, "/static/style.css").header("content-type"), "text/css; charset=utf-8");
  Reply hls = get(port_, "/static/hls.min.js");
  EXPECT_EQ(hls.status, 200U);
  EXPECT_NE(hls.body.find("stand-in"), std::string::npos);
  // Revalidation, and a changed file is served fresh.
  EXPECT_EQ(get(port_, "/static/hls.min.js", {{"If-None-Match", hls.header("etag")}}).status, 304U);
  std::this_thread::sleep_for(20ms);
  std::ofstream(static_dir_ / "hls.min.js") << "/* hls.js v2 */\n";
  Reply hls2 = get(port_, "/static/hls.min.js");
  EXPECT_EQ(hls2.body, "/* hls.js v2 */\n");
  EXPECT_NE(hls2.header("etag"), hls.header("etag"));
  std::filesystem::remove(static_dir_ / "hls.min.js");
  EXPECT_EQ(get(port_, "/static/hls.min.js").status, 404U);

  EXPECT_EQ(get(port_, "/static/missing.js").status, 404U);
  std::ofstream(static_dir_ / "notes") << "no extension";
  EXPECT_EQ(get(port_, "/static/notes").status, 404U);  // not a whitelisted type
  std::filesystem::create_directory(static_dir_ / "dir.js");
  EXPECT_EQ(get(port_, "/static/dir.js").status, 404U);

  Reply ch = get(port_, "/channels.json");
  ASSERT_EQ(ch.status, 200U);
  EXPECT_EQ(ch.header("content-type"), "application/json");
  EXPECT_EQ(ch.header("cache-control"), "no-cache");
  json::value v = json::parse(ch.body);
  ASSERT_TRUE(v.is_array());
  EXPECT_EQ(v.as_array().at(0).at("url").as_string(), "/hls/news/index.m3u8");
}

TEST(HlsOriginWeb, PageScriptIsValidJavaScript) {
  if (std::system("command -v node > /dev/null 2>&1") != 0) GTEST_SKIP() << "node not installed";
  auto r = tt::run("node --check " + tt::shell_quote((source_dir() / "control/web/app.js").string()));
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

// Drives control/web/app.js under node with a minimal fake DOM, fetch and hls.js: cards
// per channel with unknown fields shown, Play hands the playlist to hls.js, a refresh
// updates in place and drops removed channels, errors are shown and polling continues.
constexpr const char* kPageCheck = R"JS(// Drives control/web/app.js with a minimal fake DOM, fetch and hls.js.
'use strict';
const assert = require('assert');
class El {
  constructor(tag) { this.tag = tag; this.attrs = {}; this.children = []; this.parent = null; this.text = '';
                     this.listeners = {}; this.className = ''; }
  setAttribute(k, v) { this.attrs[k] = String(v); if (k === 'class') this.className = String(v); }
  removeAttribute(k) { delete this.attrs[k]; }
  get id() { return this.attrs.id; }
  set textContent(t) { this.children = []; this.text = String(t); }
  get textContent() {
    return this.text + this.children.map(c => (typeof c === 'string' ? c : c.textContent)).join(' ');
  }
  append(...xs) {
    for (const x of xs) {
      if (typeof x !== 'string') { if (x.parent) x.remove(); x.parent = this; }
      this.children.push(x);
    }
  }
  replaceChildren(...xs) {
    for (const c of this.children) if (typeof c !== 'string') c.parent = null;
    this.children = [];
    this.append(...xs);
  }
  remove() {
    if (!this.parent) return;
    this.parent.children.splice(this.parent.children.indexOf(this), 1);
    this.parent = null;
  }
  addEventListener(type, f) { this.listeners[type] = f; }
  set href(v) { this.attrs.href = v; }
  get href() { return this.attrs.href; }
  load() {}
  play() { return Promise.resolve(); }
  canPlayType() { return ''; }
}
const roots = { channels: new El('main'), status: new El('span') };
global.document = { getElementById: id => roots[id], createElement: tag => new El(tag) };
const players = [];
class FakeHls {
  static isSupported() { return true; }
  constructor() { this.destroyed = false; players.push(this); }
  on() {}
  loadSource(url) { this.url = url; }
  attachMedia(video) { this.video = video; }
  destroy() { this.destroyed = true; }
}
FakeHls.Events = { ERROR: 'hlsError' };
global.window = { Hls: FakeHls };
let answer = { ok: true, status: 200, body: [] };
global.fetch = async url => {
  assert.strictEqual(url, '/channels.json');
  return { ok: answer.ok, status: answer.status, json: async () => answer.body };
};
let pending = null;
global.setTimeout = (f, ms) => { assert.strictEqual(ms, 2000); pending = f; };
const flush = () => new Promise(r => setImmediate(r));
const card = id => roots.channels.children.find(c => c.id === 'channel-' + id);

(async () => {
  answer.body = [
    { id: 'news', name: 'News HD', state: 'ok', url: '/hls/news/index.m3u8', bitrate_bps: 4500000,
      inputs: ['main', 'backup'] },
    { id: 'sport', name: 'Sport', state: 'down', url: '/hls/sport/index.m3u8', segments: 0 },
  ];
  require(process.argv[2]);
  await flush(); await flush();
  assert.deepStrictEqual(roots.channels.children.map(c => c.id), ['channel-news', 'channel-sport']);
  const news = card('news');
  const text = news.textContent;
  for (const s of ['News HD', 'ok', 'bitrate_bps', '4500000', '["main","backup"]']) {
    assert.ok(text.includes(s), s + ' in ' + text);
  }
  const state = news.children[0].children[1];
  assert.strictEqual(state.className, 'state ok');
  assert.strictEqual(card('sport').children[0].children[1].className, 'state down');
  assert.ok(roots.status.textContent.startsWith('2 channels'), roots.status.textContent);
  const video = news.children.find(c => c.tag === 'video');
  assert.ok(video, 'a video per channel');

  // Play: hls.js loads the playlist into that channel's video.
  const button = news.children.find(c => c.tag === 'div').children.find(c => c.tag === 'button');
  button.listeners.click();
  assert.strictEqual(players.length, 1);
  assert.strictEqual(players[0].url, '/hls/news/index.m3u8');
  assert.strictEqual(players[0].video, video);

  // A refresh: state changes in place, the playing card is kept, a removed channel goes.
  answer.body = [{ id: 'news', name: 'News HD', state: 'degraded', url: '/hls/news/index.m3u8', bitrate_bps: 1 }];
  pending(); await flush(); await flush();
  assert.deepStrictEqual(roots.channels.children.map(c => c.id), ['channel-news']);
  assert.strictEqual(card('news'), news, 'the same card, not a new one');
  assert.strictEqual(state.textContent, 'degraded');
  assert.strictEqual(players[0].destroyed, false, 'still playing');
  assert.strictEqual(players.length, 1);
  assert.ok(roots.status.textContent.startsWith('1 channel '), roots.status.textContent);

  // Stop.
  button.listeners.click();
  assert.strictEqual(players[0].destroyed, true);

  // An error answer is shown, the cards stay, and the page keeps polling.
  answer = { ok: false, status: 503, body: null };
  const again = pending;
  pending = null;
  again(); await flush(); await flush();
  assert.ok(roots.status.textContent.includes('cannot read /channels.json: HTTP 503'), roots.status.textContent);
  assert.ok(pending, 'still polling');
  assert.deepStrictEqual(roots.channels.children.map(c => c.id), ['channel-news']);
  console.log('ok');
})().catch(e => { console.error(e); process.exit(1); });
)JS";

TEST(HlsOriginWeb, PageScriptRendersChannelsAndPlays) {
  if (std::system("command -v node > /dev/null 2>&1") != 0) GTEST_SKIP() << "node not installed";
  auto dir = tt::temp_dir("hls-page");
  std::ofstream(dir / "page_check.js") << kPageCheck;
  auto r = tt::run("node " + tt::shell_quote((dir / "page_check.js").string()) + " " +
                   tt::shell_quote((source_dir() / "control/web/app.js").string()));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "ok\n");
  std::filesystem::remove_all(dir);
}

TEST(HlsOriginWeb, NoStaticDirMeansNoPage) {
  FakeSource source;
  tc::HlsOrigin origin(source);
  origin.listen("127.0.0.1:0");
  origin.start();
  EXPECT_EQ(get(origin.ports().at(0), "/").status, 404U);
  EXPECT_EQ(get(origin.ports().at(0), "/static/app.js").status, 404U);
  EXPECT_EQ(get(origin.ports().at(0), "/hls/news/index.m3u8").status, 200U);
}

namespace {
// The deadlines are long enough for the test's own setup (208 connections, each request
// deadline counted from its accept) on a loaded machine or under the sanitizers: with
// 1.5 s, the first slow connections were closed before the last ones were made (the setup
// took 2.6-2.9 s on a loaded 2-core machine). The playlist bound is a fifth of the shorter
// deadline (500 ms was a third of 1.5 s): a playlist starved behind the slow or stalled
// clients waits for one of their deadlines.
constexpr auto kSlowRequestTimeout = 10000ms;
constexpr auto kSlowWriteTimeout = 12000ms;
constexpr double kPromptMs = 2000.0;

class SlowOriginTest : public HlsOriginTest {
  tc::HlsOriginOptions options() override {
    tc::HlsOriginOptions o{.static_dir = static_dir_};
    o.limits.request_timeout = kSlowRequestTimeout;
    o.limits.write_timeout = kSlowWriteTimeout;
    return o;
  }
};
}  // namespace

TEST_F(SlowOriginTest, SlowClientsDoNotStarvePlaylistRequests) {
  asio::io_context ioc;
  const auto setup_start = std::chrono::steady_clock::now();
  // 200 connections that start a request and never finish it...
  std::vector<tcp::socket> slow;
  for (int i = 0; i < 200; ++i) {
    slow.emplace_back(ioc);
    slow.back().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    asio::write(slow.back(), asio::buffer(std::string("GET /hls/news/index.m3u8 HTTP/1.1\r\nHost: slow\r\nX-Drip: ")));
  }
  // ... and 8 that ask for a 32 MB segment and never read it (more than the loopback's
  // socket buffers hold, so the server's writes really stall).
  constexpr std::size_t kBig = 32 * 1024 * 1024;
  source_.put("news", "big.ts",
              {.body = tc::SharedBytes::in_memfd(std::string(kBig, 'x'), "big.ts"),
               .content_type = "video/mp2t",
               .etag = "\"big\"",
               .kind = tc::HlsResource::Kind::kSegment,
               .max_age_s = 0});
  std::vector<tcp::socket> stalled;
  for (int i = 0; i < 8; ++i) {
    stalled.emplace_back(ioc);
    stalled.back().open(tcp::v4());
    stalled.back().set_option(asio::socket_base::receive_buffer_size(4096));
    stalled.back().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    asio::write(stalled.back(), asio::buffer(std::string("GET /hls/news/big.ts HTTP/1.1\r\nHost: stalled\r\n\r\n")));
  }
  while (std::chrono::steady_clock::now() - setup_start < kSlowRequestTimeout &&
         (origin_->connections() < 208 || origin_->stats().segments.load() < 8)) {
    std::this_thread::sleep_for(10ms);
  }
  const auto setup_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - setup_start).count();
  ASSERT_EQ(origin_->connections(), 208U) << "after " << setup_ms << " ms of setup";
  ASSERT_EQ(origin_->stats().segments.load(), 8U);

  std::vector<double> ms;
  for (int i = 0; i < 20; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Reply r = get(port_, "/hls/news/index.m3u8");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    EXPECT_EQ(r.status, 200U);
    EXPECT_EQ(r.body, kPlaylist);
  }
  std::sort(ms.begin(), ms.end());
  // All of them were measured beside the held connections: the first slow one, whose
  // request deadline is the earliest, is still open.
  std::array<char, 16> buf{};
  boost::system::error_code ec;
  slow[0].non_blocking(true);
  slow[0].read_some(asio::buffer(buf), ec);
  slow[0].non_blocking(false);
  std::cout << "setup " << setup_ms << " ms; playlist beside 200 slow + 8 stalled connections: median "
            << ms[ms.size() / 2] << " ms, max " << ms.back() << " ms\n";
  EXPECT_LT(ms.back(), kPromptMs);
  EXPECT_EQ(ec, asio::error::would_block) << "the first slow connection was closed during the measurement: " << ec.message();

  // The request deadline closes the slow ones, the write deadline the stalled ones.
  const auto closing = std::chrono::steady_clock::now() + kSlowWriteTimeout + 10s;
  while (std::chrono::steady_clock::now() < closing && origin_->connections() > 0) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(origin_->connections(), 0U);
  slow[0].read_some(asio::buffer(buf), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  // A stalled one got part of its segment, then the end of the connection.
  std::size_t got = 0;
  std::vector<char> chunk(1 << 16);
  while (true) {
    std::size_t n = stalled[0].read_some(asio::buffer(chunk), ec);
    if (ec) break;
    got += n;
  }
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_GT(got, 0U);
  EXPECT_LT(got, kBig);
}

// ---------------------------------------------------------------------------------------
// Real peers: curl and ffprobe.

TEST_F(HlsOriginTest, CurlRangeKeepAliveAndConditional) {
  if (std::system("command -v curl > /dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
  const std::string base = "http://127.0.0.1:" + std::to_string(port_);
  const std::filesystem::path out = static_dir_ / "curl.out";
  // A range: curl writes exactly those bytes.
  auto r = tt::run("curl -sS --http1.1 -r 1000-1999 -o " + tt::shell_quote(out.string()) +
                   " -w '%{http_code} %{size_download}' " + base + "/hls/news/seg-42.ts");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "206 1000");
  auto bytes = tt::read_file(out);
  EXPECT_TRUE(std::string(bytes.begin(), bytes.end()) == source_.body("news", "seg-42.ts")->view().substr(1000, 1000));
  // Two URLs on one command line share the connection.
  r = tt::run("curl -sS -v --http1.1 -o /dev/null -o /dev/null " + base + "/hls/news/index.m3u8 " + base +
              "/hls/news/seg-42.ts 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("Re-using existing connection"), std::string::npos) << r.out;
  EXPECT_EQ(origin_->stats().segments.load(), 2U);
  // A resumed download (-C -) is a ranged request curl stitches together.
  std::string seg = source_.body("news", "seg-42.ts")->str();
  tt::write_file(out, std::vector<std::uint8_t>(seg.begin(), seg.begin() + 123456));
  r = tt::run("curl -sS --http1.1 -C - -o " + tt::shell_quote(out.string()) + " -w '%{http_code}' " + base +
              "/hls/news/seg-42.ts");
  EXPECT_EQ(r.out, "206") << r.out;
  bytes = tt::read_file(out);
  EXPECT_TRUE(std::string(bytes.begin(), bytes.end()) == seg);
  // HEAD with curl -I and a conditional GET with an ETag curl saved.
  r = tt::run("curl -sS -I " + base + "/hls/news/index.m3u8");
  EXPECT_NE(r.out.find("Content-Type: application/vnd.apple.mpegurl"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Content-Length: " + std::to_string(std::string(kPlaylist).size())), std::string::npos);
  const std::string etag_file = (static_dir_ / "etag").string();
  r = tt::run("curl -sS -o /dev/null --etag-save " + etag_file + " " + base + "/hls/news/index.m3u8 && curl -sS " +
              "-o /dev/null -w '%{http_code}' --etag-compare " + etag_file + " " + base + "/hls/news/index.m3u8");
  EXPECT_EQ(r.out, "304") << r.out;
}

TEST_F(HlsOriginTest, FfprobeReadsAPlaylistAndItsSegment) {
  if (std::system("command -v ffprobe > /dev/null 2>&1") != 0) GTEST_SKIP() << "ffprobe not installed";
  auto ts = tt::read_file(tt::fixture("h264_aac.ts"));
  source_.put("vod", "seg-0.ts",
              {.body = tc::SharedBytes::in_memfd(std::string(ts.begin(), ts.end()), "fixture.ts"),
               .content_type = "video/mp2t",
               .etag = "\"vod-0\"",
               .kind = tc::HlsResource::Kind::kSegment,
               .max_age_s = 0});
  source_.put("vod", "index.m3u8",
              {.body = tc::SharedBytes::heap(std::string(
                   "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                   "#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:6.021,\nseg-0.ts\n#EXT-X-ENDLIST\n")),
               .content_type = "application/vnd.apple.mpegurl",
               .etag = "\"vod-p\"",
               .kind = tc::HlsResource::Kind::kPlaylist,
               .max_age_s = 0});
  auto r = tt::run("ffprobe -v error -show_entries stream=codec_name:format=duration -of default=nw=1 "
                   "http://127.0.0.1:" + std::to_string(port_) + "/hls/vod/index.m3u8 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("codec_name=h264"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("codec_name=aac"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("duration=6.0"), std::string::npos) << r.out;
  bool segment_asked = false;
  for (const auto& [channel, name] : source_.asked()) segment_asked |= channel == "vod" && name == "seg-0.ts";
  EXPECT_TRUE(segment_asked);
  // ffmpeg copies the stream over HTTP without a decoding error.
  r = tt::run("ffmpeg -v error -i http://127.0.0.1:" + std::to_string(port_) + "/hls/vod/index.m3u8 -f null - 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(HlsOriginLimits, ConnectionCapAnswers503AndDefaultsUseTwoThreads) {
  EXPECT_GE(tc::HlsOriginOptions{}.limits.threads, 2U);
  FakeSource source;
  tc::HlsOriginOptions options;
  options.limits.max_connections = 3;
  tc::HlsOrigin origin(source, options);
  origin.listen("127.0.0.1:0");
  origin.start();
  const std::uint16_t port = origin.ports().at(0);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Client>(port));
    EXPECT_EQ(held.back()->send(http::verb::get, "/hls/news/index.m3u8").status, 200U);
  }
  std::string reply = raw_exchange(port, "GET /hls/news/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(reply), 503U) << reply;
  held.pop_back();
  for (int i = 0; i < 1000 && origin.connections() >= 3; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(get(port, "/hls/news/index.m3u8").status, 200U);
}

// A browser player over the cap must see the 503 (and back off), not a CORS failure with
// no status: the refusal carries the origin's default headers too.
TEST(HlsOriginLimits, TheCapsRefusalCarriesTheCorsHeaders) {
  FakeSource source;
  tc::HlsOriginOptions options;
  options.limits.max_connections = 1;
  tc::HlsOrigin origin(source, options);
  origin.listen("127.0.0.1:0");
  origin.start();
  const std::uint16_t port = origin.ports().at(0);
  Client held(port);
  ASSERT_EQ(held.send(http::verb::get, "/hls/news/index.m3u8").status, 200U);
  std::string reply = raw_exchange(port, "GET /hls/news/index.m3u8 HTTP/1.1\r\nHost: x\r\nOrigin: https://p.example\r\n\r\n");
  ASSERT_EQ(status_of(reply), 503U) << reply;
  EXPECT_NE(reply.find("\r\nAccess-Control-Allow-Origin: *\r\n"), std::string::npos) << reply;
  const std::size_t end = reply.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  const std::size_t cl = reply.find("Content-Length: ");
  ASSERT_NE(cl, std::string::npos);
  EXPECT_EQ(reply.size() - end - 4, std::stoul(reply.substr(cl + 16)));
}

// ---------------------------------------------------------------------------------------
// Signed URLs (set_access): 403 reasons before the source, tokens carried into playlists,
// per-token ETags and private caching, viewers by token.

namespace {
constexpr std::int64_t kAuthNow = 1'795'556'400;
constexpr const char* kAuthSecret = "origin-test-secret-0123456789";

class SignedOriginTest : public HlsOriginTest {
 protected:
  void SetUp() override {
    HlsOriginTest::SetUp();
    source_.put("open", "index.m3u8",
                {.body = tc::SharedBytes::heap(std::string(kPlaylist)),
                 .content_type = "application/vnd.apple.mpegurl",
                 .etag = "\"o1\"",
                 .kind = tc::HlsResource::Kind::kPlaylist,
                 .max_age_s = 1.0});
    source_.put("news", "live.m3u8",
                {.body = tc::SharedBytes::heap(std::string(
                     "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"live-audio.m3u8\"\n"
                     "#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nlive-720p.m3u8?start=2026-11-25T21:40:00.000Z\n")),
                 .content_type = "application/vnd.apple.mpegurl",
                 .etag = "\"l1\"",
                 .kind = tc::HlsResource::Kind::kPlaylist,
                 .max_age_s = 1.0});
    policy(false);
  }
  tc::HlsOriginOptions options() override {
    tc::HlsOriginOptions o{.static_dir = static_dir_};
    o.now_s = [] { return kAuthNow; };
    return o;
  }
  void policy(bool bind) {
    tc::HlsAccessPolicy p;
    p.secret = kAuthSecret;
    p.channels["news"] = tc::HlsChannelAccess{.signed_urls = true, .bind_client = bind, .encrypted = true};
    origin_->set_access(std::move(p));
  }
  static std::string token(std::int64_t ttl = 60, const std::string& client = "") {
    return tc::hls_sign(kAuthSecret, "news", kAuthNow + ttl, client);
  }
  std::uint64_t refused(tc::HlsDenial d) const { return origin_->stats().refused[static_cast<std::size_t>(d)].load(); }
};
}  // namespace

TEST_F(SignedOriginTest, RefusalsAre403WithTheirReasonAndNeverReachTheSource) {
  const std::string other = tc::hls_sign(kAuthSecret, "sport", kAuthNow + 60);
  const std::string forged = tc::hls_sign("another-secret-0123456789", "news", kAuthNow + 60);
  struct Case {
    std::string target;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"/hls/news/index.m3u8", "missing"},
      {"/hls/news/seg-42.ts?start=1", "missing"},
      {"/hls/news/key-1.key?token=", "missing"},
      {"/hls/news/index.m3u8?token=" + other, "bad"},
      {"/hls/news/seg-42.ts?token=" + forged, "bad"},
      {"/hls/news/key-1.key?token=garbage", "bad"},
      {"/hls/news/index.m3u8?token=" + token(0), "expired"},
      {"/hls/news/seg-42.ts?token=" + token(-3600), "expired"},
      {"/hls/news/key-1.key?token=" + token(60, "10.9.9.9"), "wrong_client"},
  };
  for (const auto& c : cases) {
    for (const auto verb : {http::verb::get, http::verb::head}) {
      Client client(port_);
      Reply r = client.send(verb, c.target);
      EXPECT_EQ(r.status, 403U) << c.target;
      if (verb == http::verb::get) {
        EXPECT_EQ(r.body, "{\"error\":\"token " + c.reason + "\"}\n") << c.target;
      }
      EXPECT_EQ(r.header("cache-control"), "no-store") << c.target;
    }
  }
  EXPECT_TRUE(source_.asked().empty());
  EXPECT_EQ(refused(tc::HlsDenial::kMissing), 6U);
  EXPECT_EQ(refused(tc::HlsDenial::kBad), 6U);
  EXPECT_EQ(refused(tc::HlsDenial::kExpired), 4U);
  EXPECT_EQ(refused(tc::HlsDenial::kWrongClient), 2U);
  const auto traffic = origin_->channel_traffic().at("news");
  EXPECT_EQ(traffic.refused[static_cast<std::size_t>(tc::HlsDenial::kBad)], 6U);
  EXPECT_EQ(traffic.playlists + traffic.segments + traffic.keys, 0U);

  // Binding: a token bound to this client (127.0.0.1) passes, an unbound one does not.
  policy(true);
  EXPECT_EQ(get(port_, "/hls/news/key-1.key?token=" + token(60, "127.0.0.1")).status, 200U);
  Reply unbound = get(port_, "/hls/news/key-1.key?token=" + token());
  EXPECT_EQ(unbound.status, 403U);
  EXPECT_EQ(unbound.body, "{\"error\":\"token wrong_client\"}\n");
  // An open channel needs nothing; without a policy entry nothing is checked.
  EXPECT_EQ(get(port_, "/hls/open/index.m3u8").status, 200U);
  origin_->set_access({});
  EXPECT_EQ(get(port_, "/hls/news/index.m3u8").status, 200U);
}

// A token parameter whose percent-encoding is broken was refused as "missing" (counted
// with requests that carry no token at all): it is there, and malformed, so "bad".
TEST_F(SignedOriginTest, AMalformedlyEncodedTokenIsBadNotMissing) {
  for (const std::string& t : {std::string("%zz"), std::string("%4"), token().substr(0, 5) + "%G1" + token().substr(5)}) {
    Reply r = get(port_, "/hls/news/index.m3u8?token=" + t);
    EXPECT_EQ(r.status, 403U) << t;
    EXPECT_EQ(r.body, "{\"error\":\"token bad\"}\n") << t;
  }
  EXPECT_EQ(refused(tc::HlsDenial::kMissing), 0U);
  EXPECT_EQ(refused(tc::HlsDenial::kBad), 3U);
  EXPECT_TRUE(source_.asked().empty());
}

TEST_F(SignedOriginTest, PlaylistsCarryTheTokenAndAreCachedPrivatelyPerToken) {
  const std::string t1 = token(), t2 = token(120);
  Reply p = get(port_, "/hls/news/index.m3u8?token=" + t1);
  ASSERT_EQ(p.status, 200U);
  EXPECT_EQ(p.body, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:42\n"
                    "#EXT-X-KEY:METHOD=AES-128,URI=\"key-1.key?token=" + t1 + "\"\n#EXTINF:2.000,\nseg-42.ts?token=" + t1 + "\n");
  EXPECT_EQ(p.header("cache-control"), "private, max-age=1");
  EXPECT_EQ(p.header("content-length"), std::to_string(p.body.size()));
  // The source's query (here with the token) still reaches it: the DVR's start/end stay.
  EXPECT_EQ(source_.queries().back(), "token=" + t1);

  Reply m = get(port_, "/hls/news/live.m3u8?start=1&token=" + t1);
  ASSERT_EQ(m.status, 200U);
  EXPECT_NE(m.body.find("URI=\"live-audio.m3u8?token=" + t1 + "\""), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("\nlive-720p.m3u8?start=2026-11-25T21:40:00.000Z&token=" + t1 + "\n"), std::string::npos) << m.body;

  // Another token: another body and ETag; each ETag revalidates only its own token's text.
  Reply p2 = get(port_, "/hls/news/index.m3u8?token=" + t2);
  ASSERT_EQ(p2.status, 200U);
  EXPECT_NE(p2.body, p.body);
  EXPECT_NE(p2.header("etag"), p.header("etag"));
  EXPECT_NE(p.header("etag"), "\"p42-1\"");
  EXPECT_EQ(p.header("etag").rfind("\"p42-1-t", 0), 0U) << p.header("etag");
  EXPECT_EQ(get(port_, "/hls/news/index.m3u8?token=" + t1, {{"If-None-Match", p.header("etag")}}).status, 304U);
  EXPECT_EQ(get(port_, "/hls/news/index.m3u8?token=" + t2, {{"If-None-Match", p.header("etag")}}).status, 200U);

  // Segments and keys: the same bytes, private.
  Reply s = get(port_, "/hls/news/seg-42.ts?token=" + t1);
  ASSERT_EQ(s.status, 200U);
  EXPECT_TRUE(s.body == *source_.body("news", "seg-42.ts"));
  EXPECT_EQ(s.header("cache-control"), "private, max-age=86400, immutable");
  EXPECT_EQ(s.header("etag"), "\"s42-1a2b\"");
  Reply k = get(port_, "/hls/news/key-1.key?token=" + t1);
  EXPECT_EQ(k.status, 200U);
  EXPECT_EQ(k.header("cache-control"), "private, max-age=86400");
  // A percent-encoded token is the same token.
  std::string encoded = t1;
  encoded.replace(encoded.find('.'), 1, "%2E");
  EXPECT_EQ(get(port_, "/hls/news/key-1.key?token=" + encoded).status, 200U);

  // Viewers of a protected channel are tokens: two from one address count twice.
  EXPECT_EQ(origin_->channel_traffic().at("news").viewers, 2U);
  // The open channel stays public and untouched.
  Reply o = get(port_, "/hls/open/index.m3u8?token=" + t1);
  EXPECT_EQ(o.body, kPlaylist);
  EXPECT_EQ(o.header("cache-control"), "public, max-age=1");
  EXPECT_EQ(origin_->channel_traffic().at("open").viewers, 1U);

  // The page learns which channels need a token.
  const auto j = json::parse(get(port_, "/channels.json").body).as_array();
  ASSERT_EQ(j.size(), 1U);
  EXPECT_EQ(j[0].as_object().at("signed"), true);
  EXPECT_EQ(j[0].as_object().at("encrypted"), true);
}

TEST_F(SignedOriginTest, FfprobeFollowsTheTokenizedPlaylist) {
  if (std::system("command -v ffprobe > /dev/null 2>&1") != 0) GTEST_SKIP() << "ffprobe not installed";
  // A real TS segment behind a plain playlist: ffprobe needs the token only in the URL it
  // is given; the segment's URI in the answer carries it on.
  const auto ts = tt::read_file(tt::fixture("h264_aac.ts"));
  source_.put("news", "plain.m3u8",
              {.body = tc::SharedBytes::heap(std::string(
                   "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n"
                   "#EXTINF:6.000,\nfixture.ts\n#EXT-X-ENDLIST\n")),
               .content_type = "application/vnd.apple.mpegurl",
               .etag = "",
               .kind = tc::HlsResource::Kind::kPlaylist,
               .max_age_s = 1.0});
  source_.put("news", "fixture.ts",
              {.body = tc::SharedBytes::in_memfd(std::string(ts.begin(), ts.end()), "fixture.ts"),
               .content_type = "video/mp2t",
               .etag = "",
               .kind = tc::HlsResource::Kind::kSegment,
               .max_age_s = 0});
  const std::string base = "http://127.0.0.1:" + std::to_string(port_) + "/hls/news/plain.m3u8";
  auto r = tt::run("ffprobe -v error -show_entries stream=codec_name -of csv=p=0 " +
                   tt::shell_quote(base + "?token=" + token()) + " 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("h264"), std::string::npos) << r.out;
  r = tt::run("ffprobe -v error -show_entries stream=codec_name -of csv=p=0 " + tt::shell_quote(base) + " 2>&1");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("403"), std::string::npos) << r.out;
  bool fetched_segment = false;
  for (const auto& [channel, name] : source_.asked()) fetched_segment = fetched_segment || name == "fixture.ts";
  EXPECT_TRUE(fetched_segment);
}

TEST(HlsAccessPolicy, FromTheConfigurationWithTheSecretFile) {
  const auto dir = tt::temp_dir("hls-access-policy");
  std::ofstream(dir / "secret") << "policy-secret-0123456789\r\n";
  twincast::dataplane::ApplianceConfig c;
  c.ott.secret_file = (dir / "secret").string();
  auto channel = [](const std::string& id, bool hls, bool sign, bool bind, bool encrypt) {
    twincast::dataplane::ChannelConfig ch;
    ch.id = id;
    ch.hls = hls;
    ch.hls_options.signed_urls = sign;
    ch.hls_options.bind_client = bind;
    ch.hls_options.encrypt = encrypt;
    return ch;
  };
  c.channels = {channel("open", true, false, false, false), channel("news", true, true, true, true),
                channel("enc", true, false, false, true), channel("mcast", false, true, false, false)};
  auto p = tc::hls_access_policy(c);
  EXPECT_EQ(p.secret, "policy-secret-0123456789");
  ASSERT_EQ(p.channels.size(), 2U);
  EXPECT_TRUE(p.channels.at("news").signed_urls);
  EXPECT_TRUE(p.channels.at("news").bind_client);
  EXPECT_TRUE(p.channels.at("news").encrypted);
  EXPECT_FALSE(p.channels.at("enc").signed_urls);
  EXPECT_TRUE(p.channels.at("enc").encrypted);
  // Gone or too short since the configuration was checked: no secret, so it fails closed.
  std::ofstream(dir / "secret") << "short\n";
  p = tc::hls_access_policy(c);
  EXPECT_EQ(p.secret, "");
  EXPECT_EQ(tc::hls_verify(p.secret, "news", tc::hls_sign("policy-secret-0123456789", "news", 4'000'000'000), 0, "", false),
            tc::HlsDenial::kBad);
  std::filesystem::remove_all(dir);
}
