// The real control::Appliance in this process (EAL without hugepages, net_null ports, no
// root), its REST API and HLS origin over HTTP: a URL the API mints opens the origin. Its
// own program: the EAL comes up once per process, so one Appliance per test binary.
#include "twincast/control/appliance.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "control/http_reply.hpp"
#include "tests_common.hpp"
#include "twincast/control/config.hpp"

namespace twincast::control {
namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;

std::uint16_t free_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// One HTTP/1.1 exchange with 127.0.0.1:`port`.
twincast::test::HttpReply call(std::uint16_t port, http::verb verb, const std::string& target,
                               const std::string& bearer = {}) {
  boost::asio::io_context ioc;
  boost::beast::tcp_stream s(ioc);
  s.expires_after(std::chrono::seconds(5));
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
  req.keep_alive(false);
  req.prepare_payload();
  http::write(s, req);
  boost::beast::flat_buffer buf;
  return twincast::test::read_reply(s, buf, false);
}

constexpr const char* kApiToken = "appliance-api-token-0123456789";

// The API mints HLS URLs with the secret the origin checks them with. The origin takes
// ott.secret_file at start and at each reload; the API read the file again at each mint, so
// once a new secret was written (its reload still to come) every URL it minted was refused
// by the origin ("token bad") until that reload.
TEST(ApplianceHlsUrl, MintedUrlsOpenTheOriginTillTheNewSecretIsReloaded) {
  const fs::path dir = fs::temp_directory_path() / ("tc_app_hlsurl_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "channels.yaml";
  const fs::path secret = dir / "hls.secret";
  const fs::path api_token = dir / "api.token";
  std::ofstream(secret) << "first-secret-0123456789abcdef\n";
  std::ofstream(api_token) << kApiToken << "\n";
  const std::uint16_t api = free_port(), ott = free_port();
  std::string y = "control:\n  api_listen: 127.0.0.1:" + std::to_string(api) + "\n  metrics_listen: 127.0.0.1:" +
                  std::to_string(free_port()) + "\n  token_file: " + api_token.string() + "\n";
  y += "ott:\n  listen: 127.0.0.1:" + std::to_string(ott) + "\n  secret_file: " + secret.string() + "\n";
  y += "dataplane:\n  lcores: \"0,1\"\n  memory_mb: 256\n  hugepages: false\n  file_prefix: tcapphlsurl" +
       std::to_string(getpid()) + "\n";
  y += "ports:\n  - name: in\n    device: \"net_null0,no-rx=1\"\n    address: 10.50.0.2/16\n";
  y += "  - name: out\n    device: \"net_null1,no-rx=1\"\n    address: 10.60.0.2/16\n";
  y += "channels:\n  - id: one\n    service_id: 101\n    hls: { signed_urls: true }\n";
  y += "    inputs:\n      - { name: rx, udp: { port: in, group: 239.1.0.1, udp_port: 5000 } }\n";
  y += "    outputs:\n      - { udp: { port: out, group: 239.200.0.1, udp_port: 5000 } }\n";
  std::ofstream(file) << y;
  const ConfigResult loaded = load_config(file.string());
  ASSERT_TRUE(loaded.ok()) << format_errors(loaded.errors, file.string());
  {
    Appliance appliance(*loaded.config, "appliance_hls_url_test", file.string());
    appliance.start();
    // The origin's answer to a URL the API mints now: no segment yet, so 404 once admitted.
    const auto open_with_minted = [&] {
      const auto minted = call(api, http::verb::post, "/api/v1/channels/one/hls-url", kApiToken);
      if (minted.status != 200U) return "mint: " + std::to_string(minted.status) + " " + minted.body;
      const std::string token(boost::json::parse(minted.body).as_object().at("token").as_string());
      const auto r = call(ott, http::verb::get, "/hls/one/index.m3u8?token=" + token);
      return std::to_string(r.status) + " " + r.body;
    };
    std::string r = open_with_minted();
    EXPECT_EQ(r.substr(0, 3), "404") << r;
    // A new secret in the file: the origin goes on with the first until the reload.
    std::ofstream(secret, std::ios::trunc) << "second-secret-0123456789abcdef\n";
    r = open_with_minted();
    EXPECT_EQ(r.substr(0, 3), "404") << "minted before the reload: " << r;
    const ReloadOutcome out = appliance.reload();
    ASSERT_FALSE(out.error) << *out.error;
    r = open_with_minted();
    EXPECT_EQ(r.substr(0, 3), "404") << "minted after the reload: " << r;
    appliance.stop();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace twincast::control
