// POST /api/v1/channels/{id}/hls-url over a backend that signs like the Appliance: the
// bearer token, ttl_s and client from the body or the query, their 400s, 404 for an unknown
// channel, 409 for a channel that does not sign; the answer's token verifies.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "control/fake_backend.hpp"
#include "control/http_reply.hpp"
#include "tests_common.hpp"
#include "twincast/control/api.hpp"
#include "twincast/control/hls_auth.hpp"
#include "twincast/control/http_server.hpp"

namespace tc = twincast::control;
namespace tt = twincast::test;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr const char* kApiToken = "hls-url-api-token-0123456789";
constexpr const char* kSecret = "hls-url-secret-0123456789";

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The fake's channels (news, sport); news signs, sport does not.
class SigningBackend : public tt::FakeBackend {
 public:
  tc::ApiHlsUrl hls_url(const std::string& channel, std::int64_t ttl_s, const std::string& client) override {
    asked_ttl = ttl_s;
    asked_client = client;
    if (channel != "news") return tc::ApiHlsUrl{.error = "channel '" + channel + "' does not sign its HLS URLs"};
    tc::ApiHlsUrl u;
    u.expires = now_s() + ttl_s;
    u.token = tc::hls_sign(kSecret, channel, u.expires, client);
    u.url = "http://origin/hls/news/index.m3u8?token=" + u.token;
    u.page_url = "http://origin/?channel=news&token=" + u.token;
    return u;
  }
  std::int64_t asked_ttl = 0;
  std::string asked_client;
};

class HlsUrlApi : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tt::temp_dir("hls-url-api");
    std::ofstream(dir_ / "token") << kApiToken << "\n";
    api_ = std::make_unique<tc::Api>(backend_, registry_, tc::ApiOptions{.token_file = dir_ / "token"});
    api_->add_routes(server_);
    server_.listen("127.0.0.1:0");
    server_.start();
  }
  void TearDown() override {
    server_.stop();
    std::filesystem::remove_all(dir_);
  }
  tt::HttpReply post(const std::string& target, const std::string& body, bool auth = true) {
    boost::asio::io_context ioc;
    boost::beast::tcp_stream s(ioc);
    s.expires_after(std::chrono::seconds(5));
    s.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), server_.ports().at(0)));
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (auth) req.set(http::field::authorization, std::string("Bearer ") + kApiToken);
    req.body() = body;
    req.keep_alive(false);
    req.prepare_payload();
    http::write(s, req);
    boost::beast::flat_buffer buf;
    return tt::read_reply(s, buf, false);
  }

  std::filesystem::path dir_;
  SigningBackend backend_;
  tc::metrics::Registry registry_;
  std::unique_ptr<tc::Api> api_;
  tc::HttpServer server_;
};

}  // namespace

TEST_F(HlsUrlApi, MintsAVerifiableTokenFromBodyOrQuery) {
  auto r = post("/api/v1/channels/news/hls-url", "");
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(backend_.asked_ttl, 3600);
  EXPECT_EQ(backend_.asked_client, "");
  auto o = json::parse(r.body).as_object();
  EXPECT_EQ(o.at("channel"), "news");
  const std::string token(o.at("token").as_string());
  EXPECT_EQ(std::string(o.at("url").as_string()), "http://origin/hls/news/index.m3u8?token=" + token);
  EXPECT_EQ(std::string(o.at("page_url").as_string()), "http://origin/?channel=news&token=" + token);
  EXPECT_NEAR(static_cast<double>(o.at("expires").as_int64()), static_cast<double>(now_s() + 3600), 5);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", token, now_s(), "10.1.2.3", false), std::nullopt);

  r = post("/api/v1/channels/news/hls-url", R"({"ttl_s": 60, "client": "10.0.0.7"})");
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(backend_.asked_ttl, 60);
  EXPECT_EQ(backend_.asked_client, "10.0.0.7");
  const std::string bound(json::parse(r.body).as_object().at("token").as_string());
  EXPECT_EQ(tc::hls_verify(kSecret, "news", bound, now_s(), "10.0.0.7", true), std::nullopt);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", bound, now_s(), "10.0.0.8", true), tc::HlsDenial::kWrongClient);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", bound, now_s() + 61, "10.0.0.7", true), tc::HlsDenial::kExpired);

  r = post("/api/v1/channels/news/hls-url?ttl_s=120&client=fd00::7", "");
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(backend_.asked_ttl, 120);
  EXPECT_EQ(backend_.asked_client, "fd00::7");
}

TEST_F(HlsUrlApi, RefusesWhatItShould) {
  EXPECT_EQ(post("/api/v1/channels/news/hls-url", "", false).status, 401U);
  EXPECT_EQ(post("/api/v1/channels/nope/hls-url", "").status, 404U);
  auto r = post("/api/v1/channels/sport/hls-url", "");
  EXPECT_EQ(r.status, 409U);
  EXPECT_NE(r.body.find("does not sign"), std::string::npos) << r.body;
  for (const char* body : {"[1]", "{bad", R"({"ttl_s": "60"})", R"({"ttl_s": 0})", R"({"ttl_s": 99999999})",
                           R"({"ttl_s": 1.5})", R"({"client": 7})", R"({"client": "10.0.0.7; rm -rf"})",
                           R"({"client": "evil.example.com"})"}) {
    EXPECT_EQ(post("/api/v1/channels/news/hls-url", body).status, 400U) << body;
  }
  // Made of address characters, yet no address: the same 400 (the backend cannot bind it).
  for (const char* body : {R"({"client": "10.0.0"})", R"({"client": "10.0.0.999"})", R"({"client": ":::"})",
                           R"({"client": "."})"}) {
    r = post("/api/v1/channels/news/hls-url", body);
    EXPECT_EQ(r.status, 400U) << body << ": " << r.body;
  }
  EXPECT_EQ(post("/api/v1/channels/news/hls-url?client=1.2.3", "").status, 400U);
  EXPECT_EQ(post("/api/v1/channels/news/hls-url?ttl_s=-1", "").status, 400U);
  EXPECT_EQ(post("/api/v1/channels/news/hls-url?ttl_s=abc", "").status, 400U);
}
