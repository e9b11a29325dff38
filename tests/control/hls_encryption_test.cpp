// End to end: a signed, AES-128 encrypted channel through the real packager (a real
// OttFeed fed with the h264_aac.ts fixture, its key rotating every 2 segments) and the real
// origin over HTTP. ffmpeg plays index.m3u8?start=&end=&token= (master -> media -> keys ->
// segments, all with the token the origin copied into the URIs); the openssl CLI decrypts a
// segment with the key the origin served; a raw segment is not a transport stream; without
// a token ffmpeg is refused; a key goes (404) once no held segment uses it.
// GCC 12 at -O1 with the sanitizers warns falsely inside <regex> (maybe-uninitialized in
// the std::function moves of its NFA states), as in dashboard_test.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "control/http_reply.hpp"
#include "control/packager_fixture.hpp"
#include "dataplane/eal_harness.hpp"
#include "tests_common.hpp"
#include "twincast/control/hls_auth.hpp"
#include "twincast/control/hls_origin.hpp"
#include "twincast/control/hls_packager.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/hls.hpp"
#include "twincast/mpegts/pes.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/psi_tables.hpp"

namespace twincast::control {
namespace {

namespace fs = std::filesystem;
namespace tt = twincast::test;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using namespace packager_test;

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new tt::EalEnvironment("tchls_enc_", "control_hls_encryption_test"));

constexpr const char* kSecret = "encryption-test-secret-0123456789";

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

tt::HttpReply fetch(std::uint16_t port, const std::string& target) {
  boost::asio::io_context ioc;
  boost::beast::tcp_stream s(ioc);
  s.expires_after(std::chrono::seconds(5));
  s.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  http::write(s, req);
  boost::beast::flat_buffer buf;
  return tt::read_reply(s, buf, false);
}

std::string hex(const std::string& bytes) {
  std::string out;
  char b[3];
  for (char c : bytes) {
    std::snprintf(b, sizeof b, "%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
    out += b;
  }
  return out;
}

class Encryption : public PackagerTest {
 protected:
  void SetUp() override {
    PackagerTest::SetUp();
    feed_ = new_feed();
    dataplane::OttConfig config;
    config.segment_seconds = 2;
    config.window_segments = 3;  // 6 segments held: the oldest keys go as the feed goes on
    config.dvr_hours = 0;
    packager_ = std::make_unique<HlsPackager>(config, options());
    PackagedChannel ch{"news", "News", feed_};
    ch.encrypt = true;
    ch.key_rotation_segments = 2;
    packager_->set_channels({ch});
    origin_ = std::make_unique<HlsOrigin>(*packager_);
    origin_->listen("127.0.0.1:0");
    origin_->start();
    port_ = origin_->ports().at(0);
    HlsAccessPolicy p;
    p.secret = kSecret;
    p.channels["news"] = HlsChannelAccess{.signed_urls = true, .bind_client = false, .encrypted = true};
    origin_->set_access(p);
    token_ = hls_sign(kSecret, "news", unix_now() + 600);
  }

  // The key of segment `sequence`: the channel was made at kT0, so its first segment and
  // its first key id are kT0 (the clock's ms), and a new key comes every 2 segments.
  static std::string key_of(std::uint64_t sequence) {
    return "key-" + std::to_string(static_cast<std::uint64_t>(kT0) + (sequence - static_cast<std::uint64_t>(kT0)) / 2) + ".key";
  }

  std::string url(const std::string& name, const std::string& query = "") const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/hls/news/" + name + (query.empty() ? "" : "?" + query);
  }

  std::uint16_t port_ = 0;
  std::string token_;
};

TEST_F(Encryption, PlaylistKeysRotateAndSegmentsAreCiphertextThatOpensslDecrypts) {
  feed_copies(0, 3);
  const auto live = fetch(port_, "/hls/news/live.m3u8?token=" + token_);
  ASSERT_EQ(live.status, 200U) << live.body;
  const auto listed = parse_playlist(live.body).entries;
  ASSERT_EQ(listed.size(), 3U) << live.body;
  // One EXT-X-KEY per key change, each before the first segment it covers; a new key every
  // 2 segments by sequence order (the channel's first segment and first key id are the
  // clock's ms when it was made: never key-0, never a number of an earlier run).
  for (const auto& e : listed) {
    EXPECT_EQ(e.key, key_of(e.sequence) + "?token=" + token_) << live.body;
  }
  std::set<std::string> keys;
  for (const auto& e : listed) keys.insert(e.key);
  std::size_t key_tags = 0;
  for (std::size_t at = 0; (at = live.body.find("#EXT-X-KEY:", at)) != std::string::npos; ++at) ++key_tags;
  EXPECT_EQ(key_tags, keys.size()) << live.body;
  EXPECT_EQ(live.body.find("IV="), std::string::npos);

  const fs::path dir = tt::temp_dir("hls-encryption");
  // Two listed segments under one key (rotation 2: there is a pair among 3).
  std::size_t pair = 1;
  while (pair + 1 < listed.size() && listed[pair].key != listed[pair - 1].key) ++pair;
  const Entry& e = listed[pair];
  const auto seg = fetch(port_, "/hls/news/seg-" + std::to_string(e.sequence) + ".ts?token=" + token_);
  ASSERT_EQ(seg.status, 200U);
  EXPECT_EQ(seg.body.size() % 16, 0U);
  const auto key = fetch(port_, "/hls/news/" + e.key);
  ASSERT_EQ(key.status, 200U);
  ASSERT_EQ(key.body.size(), 16U);
  EXPECT_EQ(key.header("cache-control"), "private, max-age=86400");
  tt::write_file(dir / "raw.ts", std::vector<std::uint8_t>(seg.body.begin(), seg.body.end()));
  // The raw segment is no transport stream: no sync bytes, nothing ffprobe can read.
  std::size_t syncs = 0;
  for (std::size_t i = 0; i < seg.body.size(); i += 188) syncs += seg.body[i] == 0x47 ? 1U : 0U;
  EXPECT_LT(syncs, seg.body.size() / 188 / 10);
  auto r = tt::run("ffprobe -v error -show_entries stream=codec_name -of csv=p=0 " + (dir / "raw.ts").string() + " 2>&1");
  EXPECT_EQ(r.out.find("h264"), std::string::npos) << r.out;
  // openssl with the served key and IV = the sequence number: a TS with H.264 and AAC.
  char iv[33];
  std::snprintf(iv, sizeof iv, "%032llx", static_cast<unsigned long long>(e.sequence));
  r = tt::run("openssl enc -aes-128-cbc -d -K " + hex(key.body) + " -iv " + iv + " -in " + (dir / "raw.ts").string() +
              " -out " + (dir / "plain.ts").string() + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto plain = tt::read_file(dir / "plain.ts");
  ASSERT_EQ(plain.size() % 188, 0U);
  for (std::size_t i = 0; i < plain.size(); i += 188) ASSERT_EQ(plain[i], 0x47) << i;
  r = tt::run("ffprobe -v error -show_entries stream=codec_name -of csv=p=0 " + (dir / "plain.ts").string() + " 2>&1");
  EXPECT_NE(r.out.find("h264"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("aac"), std::string::npos) << r.out;
  // The segment before, under the same key, has its own IV (its sequence number): with it,
  // a TS; with this segment's IV only the first block differs (CBC), so the IV matters.
  const Entry& prev = listed[pair - 1];
  if (prev.key == e.key) {
    const auto s2 = fetch(port_, "/hls/news/seg-" + std::to_string(prev.sequence) + ".ts?token=" + token_);
    tt::write_file(dir / "raw2.ts", std::vector<std::uint8_t>(s2.body.begin(), s2.body.end()));
    char iv2[33];
    std::snprintf(iv2, sizeof iv2, "%032llx", static_cast<unsigned long long>(prev.sequence));
    for (const auto& [v, out] : {std::pair{std::string(iv2), "right.ts"}, std::pair{std::string(iv), "wrong.ts"}}) {
      r = tt::run("openssl enc -aes-128-cbc -d -K " + hex(key.body) + " -iv " + v + " -in " + (dir / "raw2.ts").string() +
                  " -out " + (dir / out).string() + " 2>&1");
      ASSERT_EQ(r.exit_code, 0) << r.out;
    }
    const auto right = tt::read_file(dir / "right.ts"), wrong = tt::read_file(dir / "wrong.ts");
    ASSERT_EQ(right.size() % 188, 0U);
    for (std::size_t i = 0; i < right.size(); i += 188) ASSERT_EQ(right[i], 0x47) << i;
    ASSERT_EQ(wrong.size(), right.size());
    EXPECT_FALSE(std::equal(right.begin(), right.begin() + 16, wrong.begin()));
    EXPECT_TRUE(std::equal(right.begin() + 16, right.end(), wrong.begin() + 16));
  } else {
    ADD_FAILURE() << "the last two listed segments should share a key (rotation 2): " << live.body;
  }
  fs::remove_all(dir);
}

TEST_F(Encryption, FfmpegPlaysTheSignedEncryptedChannelAndIsRefusedWithoutAToken) {
  feed_copies(0, 4);
  const auto event = packager_->get("news", "event.m3u8", "");
  ASSERT_TRUE(event);
  const auto all = parse_playlist(event->body->str()).entries;
  ASSERT_GE(all.size(), 6U);
  // A finished range of the last 5 held segments (VOD): ffmpeg reads it to the end.
  const auto first = all[all.size() - 6], last = all[all.size() - 1];
  const std::string range = "start=" + epoch_s(first.pdt_ms) + "&end=" + epoch_s(last.pdt_ms);
  const std::string master = url("index.m3u8", range + "&token=" + token_);
  auto r = tt::run("ffmpeg -nostdin -v error -i " + tt::shell_quote(master) + " -f null - 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  // Every frame of the 5 segments (2 s at 25 fps) decodes.
  r = tt::run("ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 " +
              tt::shell_quote(master) + " 2>&1");
  EXPECT_EQ(r.out.substr(0, 4), "250\n") << r.out;  // per program and stream: "250\n\n250\n"
  const auto traffic = origin_->channel_traffic().at("news");
  EXPECT_GE(traffic.keys, 1U);
  EXPECT_GE(traffic.segments, 5U);

  r = tt::run("ffmpeg -nostdin -v error -i " + tt::shell_quote(url("index.m3u8", range)) + " -f null - 2>&1");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("403"), std::string::npos) << r.out;
  const std::string expired = hls_sign(kSecret, "news", unix_now() - 1);
  r = tt::run("ffmpeg -nostdin -v error -i " + tt::shell_quote(url("index.m3u8", range + "&token=" + expired)) +
              " -f null - 2>&1");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_GE(origin_->stats().refused[static_cast<std::size_t>(HlsDenial::kExpired)].load(), 1U);
}

// A second audio that leaves the PMT for a while and comes back (a language track carried
// only during some programmes). Its playlist listed the segments from before and after the
// absence one after the other, so a player numbered the later ones (MEDIA-SEQUENCE + index,
// RFC 8216 6.3.2) below their real numbers, and decrypted them with those numbers as IVs
// (no IV attribute): the first block of each came out wrong (the PAT's section broken).
TEST_F(Encryption, AnAudioTrackThatComesBackListsEachSegmentAtItsOwnNumber) {
  const auto base = tt::read_packets(tt::fixture("two_audio.ts"));
  std::vector<std::uint64_t> ms;
  for (auto ns : mpegts::file_times(base).ns) ms.push_back(ns / 1'000'000);
  mpegts::PsiDecoder psi;
  for (const auto& p : base) (void)psi.push(p);
  ASSERT_EQ(psi.model().services.size(), 1U);
  const mpegts::Service with = psi.model().services.front();
  mpegts::Service without = with;
  std::erase_if(without.streams, [](const mpegts::ElementaryStream& es) { return es.pid == 0x102; });
  ASSERT_EQ(without.streams.size() + 1, with.streams.size());
  mpegts::TableCarousel pmt(with.pmt_pid, 1);
  // Copy 0 as recorded (PMT version 0), copy 1 without the AC-3 (its PMT and packets gone,
  // version 1), copies 2 and 3 with it again (version 2).
  std::size_t chunks = 0;
  for (int k = 0; k < 4; ++k) {
    std::vector<mpegts::TsPacket> pkts;
    std::vector<std::uint64_t> at;
    const auto shifted_copy = shifted(base, k * kCopyMs);
    for (std::size_t i = 0; i < shifted_copy.size(); ++i) {
      mpegts::TsPacket p = shifted_copy[i];
      if (k == 1 && p.pid() == 0x102) continue;
      if (k > 0 && p.pid() == with.pmt_pid) {
        (void)pmt.update([&](std::uint8_t v) { return mpegts::build_pmt(k == 1 ? without : with, v); });
        std::array<mpegts::TsPacket, 4> out;
        ASSERT_EQ(pmt.packetize(out), 1U);
        p = out[0];
      }
      pkts.push_back(p);
      at.push_back(ms[i]);
    }
    for (std::size_t i = 0; i < pkts.size(); i += dataplane::OttFeed::kChunkPackets) {
      const std::size_t n = std::min(dataplane::OttFeed::kChunkPackets, pkts.size() - i);
      const std::uint64_t t = static_cast<std::uint64_t>(k * kCopyMs) + at[i];
      mono_ns_ = std::max(mono_ns_, t * 1'000'000);
      feed_->on_packets(0, std::span<const mpegts::TsPacket>(pkts.data() + i, n), t * 1'000'000);
      if (++chunks % 256 == 0) packager_->poll_once();
    }
  }
  packager_->poll_once();
  ASSERT_EQ(feed_->stats().dropped_chunks, 0U);

  std::size_t checked = 0;
  for (const char* name : {"audio-258-event.m3u8", "audio-258.m3u8"}) {
    const auto list = packager_->get("news", name, "");
    ASSERT_TRUE(list) << name;
    const auto entries = parse_playlist(list->body->str()).entries;
    ASSERT_FALSE(entries.empty()) << name;
    for (const Entry& e : entries) {
      EXPECT_EQ(e.position, e.sequence) << name << ": " << e.uri << "\n" << list->body->str();
      const auto seg = packager_->get("news", e.uri, "");
      const auto key = packager_->get("news", e.key, "");
      ASSERT_TRUE(seg && key) << e.uri << " " << e.key;
      HlsKey k;
      ASSERT_EQ(key->body->size(), 16U);
      std::memcpy(k.bytes.data(), key->body->data(), 16);
      // As a player decrypts it: the IV is its media sequence number in the playlist.
      const auto plain = hls_decrypt(k, e.position, seg->body->view());
      ASSERT_TRUE(plain) << e.uri;
      // Its first packet is the PAT: a wrong IV garbles the block's low bytes (where the
      // numbers differ), which are the PAT's section, so its CRC fails.
      ASSERT_GE(plain->size(), mpegts::kPacketSize);
      mpegts::TsPacket first;
      std::memcpy(first.bytes.data(), plain->data(), mpegts::kPacketSize);
      mpegts::PsiDecoder pat;
      (void)pat.push(first);
      EXPECT_TRUE(pat.model().has_pat) << name << ": " << e.uri;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0U);
}

TEST_F(Encryption, AKeyIsServedWhileAHeldSegmentUsesIt) {
  feed_copies(0, 2);
  const auto early = parse_playlist(packager_->get("news", "event.m3u8", "")->body->str()).entries;
  ASSERT_FALSE(early.empty());
  const std::string first_key = early.front().key.substr(0, early.front().key.find('?'));
  EXPECT_EQ(first_key, key_of(early.front().sequence));
  EXPECT_EQ(fetch(port_, "/hls/news/" + first_key + "?token=" + token_).status, 200U);
  feed_copies(2, 5);  // 30 s: the first segments are evicted (7 held: 2 x 3 + 1)
  const auto later = parse_playlist(packager_->get("news", "event.m3u8", "")->body->str()).entries;
  ASSERT_EQ(later.size(), 7U);
  ASSERT_NE(key_of(later.front().sequence), first_key);
  EXPECT_EQ(fetch(port_, "/hls/news/" + first_key + "?token=" + token_).status, 404U);
  EXPECT_EQ(fetch(port_, "/hls/news/" + key_of(later.front().sequence) + "?token=" + token_).status, 200U);
  EXPECT_EQ(fetch(port_, "/hls/news/key-999.key?token=" + token_).status, 404U);
}

}  // namespace
}  // namespace twincast::control
