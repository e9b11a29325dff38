// Signed HLS URL tokens and AES-128 segment encryption (control/hls_auth), against the
// openssl command line as the independent peer: the MAC recomputed by `openssl dgst
// -hmac`, ciphertext decrypted by `openssl enc -d` and compared with `openssl enc`'s own.
// GCC 12 at -O1 with the sanitizers warns falsely inside <regex> (maybe-uninitialized in
// the std::function moves of its NFA states), as in dashboard_test.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "twincast/control/hls_auth.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>

#include "tests_common.hpp"

namespace tc = twincast::control;
namespace tt = twincast::test;

namespace {

constexpr std::string_view kSecret = "0123456789abcdef-test-secret";
constexpr std::int64_t kNow = 1'795'556'400;

std::string hex(const std::uint8_t* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::filesystem::path& p, std::string_view s) {
  std::ofstream(p, std::ios::binary).write(s.data(), static_cast<std::streamsize>(s.size()));
}

}  // namespace

TEST(HlsToken, FormatIsUrlSafeAndTheMacMatchesOpensslDgst) {
  const std::string t = tc::hls_sign(kSecret, "news", kNow + 60);
  EXPECT_TRUE(std::regex_match(t, std::regex(R"(\d+\.[A-Za-z0-9_-]{43})"))) << t;
  EXPECT_EQ(t.substr(0, t.find('.')), std::to_string(kNow + 60));
  const std::string bound = tc::hls_sign(kSecret, "news", kNow + 60, "10.0.0.7");
  EXPECT_TRUE(std::regex_match(bound, std::regex(R"(\d+\.10\.0\.0\.7\.[A-Za-z0-9_-]{43})"))) << bound;

  // The documented message, MACed by the openssl CLI and base64url-encoded by coreutils.
  const auto dir = tt::temp_dir("hls-auth-dgst");
  for (const auto& [token, client] : {std::pair{t, std::string()}, std::pair{bound, std::string("10.0.0.7")}}) {
    spit(dir / "msg", "twincast-hls-v1\n/hls/news/\n" + std::to_string(kNow + 60) + "\n" + client);
    const auto r = tt::run("openssl dgst -sha256 -hmac " + tt::shell_quote(std::string(kSecret)) + " -binary " +
                           tt::shell_quote((dir / "msg").string()) + " | base64 -w0 | tr '+/' '-_' | tr -d '='");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(token.substr(token.rfind('.') + 1), r.out) << client;
  }
  std::filesystem::remove_all(dir);
}

TEST(HlsToken, VerifyAcceptsItsOwnTokenForTheWholeChannel) {
  const std::string t = tc::hls_sign(kSecret, "news", kNow + 60);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", t, kNow, "10.0.0.7", false), std::nullopt);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", t, kNow + 59, "192.168.1.1", false), std::nullopt);
  const std::string b = tc::hls_sign(kSecret, "news", kNow + 60, "10.0.0.7");
  EXPECT_EQ(tc::hls_verify(kSecret, "news", b, kNow, "10.0.0.7", true), std::nullopt);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", b, kNow, "10.0.0.7", false), std::nullopt);
  const std::string v6 = tc::hls_sign(kSecret, "news", kNow + 60, "fd00::7");
  EXPECT_EQ(tc::hls_verify(kSecret, "news", v6, kNow, "fd00::7", true), std::nullopt);
}

TEST(HlsToken, RefusalReasons) {
  using D = tc::HlsDenial;
  const std::string t = tc::hls_sign(kSecret, "news", kNow + 60);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", "", kNow, "10.0.0.7", false), D::kMissing);
  // Expiry: valid up to the second before, refused at and after it.
  EXPECT_EQ(tc::hls_verify(kSecret, "news", t, kNow + 60, "10.0.0.7", false), D::kExpired);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", t, kNow + 3600, "10.0.0.7", false), D::kExpired);
  // Another channel, another secret.
  EXPECT_EQ(tc::hls_verify(kSecret, "sport", t, kNow, "10.0.0.7", false), D::kBad);
  EXPECT_EQ(tc::hls_verify("another-secret-of-16+", "news", t, kNow, "10.0.0.7", false), D::kBad);
  EXPECT_EQ(tc::hls_verify("", "news", t, kNow, "10.0.0.7", false), D::kBad);
  // Tampering: a later expiry, every single MAC character changed.
  std::string later = t;
  later[later.find('.') - 1] = later[later.find('.') - 1] == '9' ? '8' : '9';
  EXPECT_EQ(tc::hls_verify(kSecret, "news", later, kNow, "10.0.0.7", false), D::kBad);
  for (std::size_t i = t.rfind('.') + 1; i < t.size(); ++i) {
    std::string x = t;
    x[i] = x[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(tc::hls_verify(kSecret, "news", x, kNow, "10.0.0.7", false), D::kBad) << x;
  }
  // Malformed.
  for (const std::string& bad : std::vector<std::string>{"x", "123", ".abc", "12a.AAAA", t + "A", t.substr(0, t.size() - 1), "123..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                "1234567890123." + t.substr(t.find('.') + 1)}) {
    EXPECT_EQ(tc::hls_verify(kSecret, "news", bad, kNow, "10.0.0.7", false), D::kBad) << bad;
  }
  // Clients: a bound token from elsewhere, an inserted client, an unbound token where
  // the channel binds.
  const std::string b = tc::hls_sign(kSecret, "news", kNow + 60, "10.0.0.7");
  EXPECT_EQ(tc::hls_verify(kSecret, "news", b, kNow, "10.0.0.8", false), D::kWrongClient);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", b, kNow, "10.0.0.8", true), D::kWrongClient);
  std::string moved = b;
  moved.replace(moved.find("10.0.0.7"), 8, "10.0.0.8");
  EXPECT_EQ(tc::hls_verify(kSecret, "news", moved, kNow, "10.0.0.8", true), D::kBad);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", t, kNow, "10.0.0.7", true), D::kWrongClient);
  // An expired token of another client is "expired" (the MAC is checked first, then time).
  EXPECT_EQ(tc::hls_verify(kSecret, "news", b, kNow + 61, "10.0.0.8", true), D::kExpired);
  EXPECT_EQ(tc::hls_denial_name(D::kWrongClient), "wrong_client");
  EXPECT_EQ(tc::kHlsDenialCount, 4U);
}

TEST(HlsToken, QueryAndClientAddress) {
  EXPECT_EQ(tc::hls_query_token("start=1&token=12.ab-_&end=3"), "12.ab-_");
  EXPECT_EQ(tc::hls_query_token("token=1.fd00%3A%3a7.x"), "1.fd00::7.x");
  EXPECT_EQ(tc::hls_query_token("tokens=1"), std::nullopt);
  EXPECT_EQ(tc::hls_query_token("token=%zz"), std::nullopt);
  EXPECT_EQ(tc::hls_query_token(""), std::nullopt);
  EXPECT_EQ(tc::hls_client_address("10.0.0.7:4711"), "10.0.0.7");
  EXPECT_EQ(tc::hls_client_address("[FD00::7]:4711"), "fd00::7");
  EXPECT_EQ(tc::hls_client_address("[::ffff:10.0.0.7]:4711"), "10.0.0.7");
  EXPECT_EQ(tc::hls_client_address("[::1]:80"), "::1");
}

TEST(HlsToken, ExpiryHasOneSpelling) {
  using D = tc::HlsDenial;
  // The MAC covers the expiry's value, so "0" + token carried the same MAC and was admitted.
  const std::string t = tc::hls_sign(kSecret, "news", kNow + 60);
  ASSERT_EQ(tc::hls_verify(kSecret, "news", t, kNow, "10.0.0.7", false), std::nullopt);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", "0" + t, kNow, "10.0.0.7", false), D::kBad);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", "00" + t, kNow, "10.0.0.7", false), D::kBad);
  const std::string b = tc::hls_sign(kSecret, "news", kNow + 60, "10.0.0.7");
  EXPECT_EQ(tc::hls_verify(kSecret, "news", "0" + b, kNow, "10.0.0.7", true), D::kBad);
  // "0" itself is a spelling: a well-formed token that has expired.
  const std::string zero = tc::hls_sign(kSecret, "news", 0);
  EXPECT_EQ(zero.rfind("0.", 0), 0U) << zero;
  EXPECT_EQ(tc::hls_verify(kSecret, "news", zero, kNow, "10.0.0.7", false), D::kExpired);
  EXPECT_THROW((void)tc::hls_sign(kSecret, "news", -1), std::invalid_argument);
  EXPECT_THROW((void)tc::hls_sign(kSecret, "news", 1'000'000'000'000), std::invalid_argument);
}

TEST(HlsToken, ClientAddressesAreCanonical) {
  EXPECT_EQ(tc::hls_client_address("fd00:0:0::7"), "fd00::7");
  EXPECT_EQ(tc::hls_client_address("FD00:0000::0007"), "fd00::7");
  EXPECT_EQ(tc::hls_client_address("[fd00:0:0:0:0:0:0:7]:4711"), "fd00::7");
  EXPECT_EQ(tc::hls_client_address("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");  // RFC 5952 4.2.3
  EXPECT_EQ(tc::hls_client_address("::ffff:10.0.0.7"), "10.0.0.7");
  EXPECT_EQ(tc::hls_client_address("10.0.0.7"), "10.0.0.7");

  // Spelled differently by the API caller, the same client for the token and the origin.
  const std::string a = tc::hls_sign(kSecret, "news", kNow + 60, "fd00:0:0::7");
  const std::string b = tc::hls_sign(kSecret, "news", kNow + 60, "fd00::7");
  const std::string c = tc::hls_sign(kSecret, "news", kNow + 60, "FD00::0:7");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_NE(a.find(".fd00::7."), std::string::npos) << a;
  EXPECT_EQ(tc::hls_verify(kSecret, "news", a, kNow, tc::hls_client_address("[fd00::7]:5000"), true), std::nullopt);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", a, kNow, tc::hls_client_address("[fd00:0::7]:5000"), true), std::nullopt);
  EXPECT_EQ(tc::hls_verify(kSecret, "news", a, kNow, tc::hls_client_address("[fd00::8]:5000"), true),
            tc::HlsDenial::kWrongClient);
  const std::string mapped = tc::hls_sign(kSecret, "news", kNow + 60, "::ffff:10.0.0.7");
  EXPECT_EQ(mapped, tc::hls_sign(kSecret, "news", kNow + 60, "10.0.0.7"));
  EXPECT_EQ(tc::hls_verify(kSecret, "news", mapped, kNow, tc::hls_client_address("10.0.0.7:80"), true), std::nullopt);

  // Not an address: refused, saying why.
  for (const char* bad : {"10.0.0.256", "10.0.0", "fd00::7::1", "evil", "10.0.0.7:80", "[fd00::7]", "fe80::1%1"}) {
    try {
      (void)tc::hls_sign(kSecret, "news", kNow + 60, bad);
      ADD_FAILURE() << bad << " was signed";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(HlsToken, PlaylistUrisCarryTheToken) {
  const std::string media =
      "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-KEY:METHOD=AES-128,URI=\"key-3.key\"\n"
      "#EXT-X-DATERANGE:ID=\"x\",X-COM-URI=\"nope\"\n#EXTINF:2.000,\nseg-42.ts\n"
      "#EXT-X-MAP:URI=\"init.mp4?a=1\",BYTERANGE=\"1@0\"\n#EXTINF:2.000,\nhttps://cdn.example/seg-43.ts\n\n";
  EXPECT_EQ(tc::hls_tokenize_playlist(media, "9.x"),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-KEY:METHOD=AES-128,URI=\"key-3.key?token=9.x\"\n"
            "#EXT-X-DATERANGE:ID=\"x\",X-COM-URI=\"nope\"\n#EXTINF:2.000,\nseg-42.ts?token=9.x\n"
            "#EXT-X-MAP:URI=\"init.mp4?a=1&token=9.x\",BYTERANGE=\"1@0\"\n#EXTINF:2.000,\nhttps://cdn.example/seg-43.ts\n\n");
  const std::string master =
      "#EXTM3U\r\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"live-audio.m3u8\"\r\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1\r\nlive.m3u8?start=2026-11-25T21:40:00.000Z&end=2026-11-25T22:40:00.000Z\r\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=2\r\nlive-720p.m3u8?token=already";
  EXPECT_EQ(tc::hls_tokenize_playlist(master, "9.x"),
            "#EXTM3U\r\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"live-audio.m3u8?token=9.x\"\r\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=1\r\n"
            "live.m3u8?start=2026-11-25T21:40:00.000Z&end=2026-11-25T22:40:00.000Z&token=9.x\r\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=2\r\nlive-720p.m3u8?token=already");
}

TEST(HlsCipher, OpensslCliDecryptsOurSegmentsAndAgreesByteForByte) {
  const auto dir = tt::temp_dir("hls-auth-aes");
  std::mt19937 rng(7);
  // Sizes around the block: padding adds 1..16 bytes, a whole block when already aligned.
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16}, std::size_t{188},
                                 std::size_t{188 * 1000}, std::size_t{2 * 1024 * 1024 + 3}}) {
    std::string plain(size, '\0');
    for (auto& c : plain) c = static_cast<char>(rng() & 0xFF);
    const tc::HlsKey key = tc::make_hls_key(5);
    const std::uint64_t sequence = 0x0102030405060708ULL + size;
    const std::string cipher = tc::hls_encrypt(key, sequence, plain);
    EXPECT_EQ(cipher.size(), (size / 16 + 1) * 16) << size;
    const auto iv = tc::hls_iv(sequence);
    EXPECT_EQ(hex(iv.data(), 8), "0000000000000000");
    spit(dir / "plain", plain);
    spit(dir / "cipher", cipher);
    const std::string k = hex(key.bytes.data(), 16), v = hex(iv.data(), 16);
    auto r = tt::run("openssl enc -aes-128-cbc -d -K " + k + " -iv " + v + " -in " + (dir / "cipher").string() +
                     " -out " + (dir / "decrypted").string());
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_TRUE(slurp(dir / "decrypted") == plain) << size;
    r = tt::run("openssl enc -aes-128-cbc -K " + k + " -iv " + v + " -in " + (dir / "plain").string() + " -out " +
                (dir / "theirs").string());
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_TRUE(slurp(dir / "theirs") == cipher) << size;
    EXPECT_EQ(tc::hls_decrypt(key, sequence, cipher), plain);
    // Another IV (the neighbouring segment's) garbles the first block.
    const auto wrong = tc::hls_decrypt(key, sequence + 1, cipher);
    if (size >= 16 && wrong) {
      EXPECT_NE(wrong->substr(0, 16), plain.substr(0, 16));
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(HlsCipher, IvIsTheSequenceBigEndian) {
  const auto iv = tc::hls_iv(0x1122334455667788ULL);
  EXPECT_EQ(hex(iv.data(), 16), "00000000000000001122334455667788");
}

TEST(HlsCipher, KeyNames) {
  EXPECT_EQ(tc::hls_key_name(12), "key-12.key");
  EXPECT_EQ(tc::hls_key_id("key-12.key"), 12U);
  for (const char* bad : {"key-.key", "key-1a.key", "seg-1.ts", "key-1.ke", "key-99999999999999999999.key"})
    EXPECT_EQ(tc::hls_key_id(bad), std::nullopt) << bad;
}
