// HLS access control and segment encryption: signed URL tokens (HMAC-SHA256) and AES-128
// keys and cipher (RFC 8216 4.3.2.4, METHOD=AES-128).
//
// Token. One token opens a channel's whole path prefix "/hls/<id>/" (master, media
// playlists, renditions, segments, keys) until its expiry, optionally for one client
// address only. It travels in the query as token=<value>; the origin copies it into every
// URI of the playlists it answers. The value is URL-safe ([0-9A-Za-z._:-]):
//   unbound: <expiry>.<mac>            "1795556400.q3Jx...43 chars"
//   bound:   <expiry>.<client>.<mac>   "1795556400.10.0.0.7.q3Jx..." (IPv6: "fd00::7")
// <expiry> is Unix seconds (decimal, 1..12 digits, no leading zero); <mac> is base64url without padding of
//   HMAC-SHA256(secret, "twincast-hls-v1\n/hls/<id>/\n<expiry>\n<client>")
// where <client> is "" for an unbound token. The client address is the peer address the
// origin sees, normalised by hls_client_address() (behind a CDN or proxy that is the edge's
// address: bind only where viewers reach the origin directly).
//
// Verification (constant-time comparison of the MAC): missing (no token parameter), bad
// (malformed or wrong MAC, another channel's token, or no secret configured), expired
// (expiry <= now), wrong_client (bound to another address, or an unbound token on a channel
// with bind_client).
//
// Encryption. AES-128-CBC with PKCS#7 padding over the whole segment (RFC 8216 5.2); the IV
// is the segment's media sequence number as a 128-bit big-endian integer (the RFC's default,
// so EXT-X-KEY carries no IV attribute). Keys are 16 bytes from RAND_bytes, numbered per
// channel (the packager makes a new one every N segments; N = 0: one key per channel start).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace twincast::control {

// Why the origin refused a request (403): enum, name and metric label from one list.
#define TWINCAST_HLS_DENIALS(X) \
  X(kMissing, "missing")        \
  X(kBad, "bad")                \
  X(kExpired, "expired")        \
  X(kWrongClient, "wrong_client")

enum class HlsDenial : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_HLS_DENIALS(TWINCAST_X)
#undef TWINCAST_X
};
inline constexpr std::size_t kHlsDenialCount = 0
#define TWINCAST_X(e, s) +1
    TWINCAST_HLS_DENIALS(TWINCAST_X)
#undef TWINCAST_X
    ;
[[nodiscard]] std::string_view hls_denial_name(HlsDenial d);

// The path prefix a token covers: "/hls/<channel>/".
[[nodiscard]] std::string hls_token_scope(std::string_view channel);

// The token value for `channel` valid until `expiry_s` (Unix seconds, 0..10^12-1), bound to
// `client` when not empty: an IPv4 or IPv6 address, canonicalised as hls_client_address()
// does ("fd00:0:0::7" and "FD00::7" bind "fd00::7"). Throws std::invalid_argument for an
// empty secret, an expiry out of range, or a client that is not an address (or has an IPv6
// zone id).
[[nodiscard]] std::string hls_sign(std::string_view secret, std::string_view channel, std::int64_t expiry_s,
                                   std::string_view client = {});

// nullopt: `token` admits `client` to `channel` at `now_s`. `require_client`: the channel
// binds tokens to clients (an unbound token is wrong_client). An empty secret refuses all.
// hls_sign + hls_verify: ~2.7 us.
[[nodiscard]] std::optional<HlsDenial> hls_verify(std::string_view secret, std::string_view channel,
                                                  std::string_view token, std::int64_t now_s,
                                                  std::string_view client, bool require_client);

// The value of `key` in a query string ("a=1&token=x"), undecoded; nullopt when absent.
[[nodiscard]] std::optional<std::string_view> query_param(std::string_view query, std::string_view key);

// The token of a request's query (token=<value>, %XX decoded); nullopt when absent or
// malformed.
[[nodiscard]] std::optional<std::string> hls_query_token(std::string_view query);

// `playlist` with "token=<token>" added to the query of every URI in it: URI lines and the
// URI="..." attributes of tags. A URI that already has a token parameter, or an absolute
// one ("scheme://"), is left as it is. Line endings are kept. ~0.4 us for a 6-entry live
// playlist, ~80 us for 1800 entries (an hour of DVR), per request of a signed channel.
[[nodiscard]] std::string hls_tokenize_playlist(std::string_view playlist, std::string_view token);

// The client address of a peer as the origin sees it, in one canonical spelling (RFC 5952
// for IPv6, as boost::asio::ip::address::to_string writes it): "10.0.0.7:4711" -> "10.0.0.7",
// "[fd00:0:0::7]:4711" -> "fd00::7", "[::ffff:10.0.0.7]:4711" -> "10.0.0.7"; also takes a
// bare address ("FD00:0::7" -> "fd00::7"). Something that is not an address comes back
// lower-cased (never throws: it runs per request).
[[nodiscard]] std::string hls_client_address(std::string_view remote);

// The secret in `path`: its bytes without trailing CR/LF. Throws std::runtime_error when
// unreadable or shorter than 16 bytes.
[[nodiscard]] std::string read_hls_secret(const std::string& path);

// ---- AES-128 ----

struct HlsKey {
  std::uint64_t id = 0;  // served as key-<id>.key
  std::array<std::uint8_t, 16> bytes{};
};

// "key-<id>.key", and its inverse (nullopt for other names).
[[nodiscard]] std::string hls_key_name(std::uint64_t id);
[[nodiscard]] std::optional<std::uint64_t> hls_key_id(std::string_view name);
// The n of "<prefix><n><suffix>" (decimal digits only, at most 19), or nullopt: how key and
// segment file names are read back.
[[nodiscard]] std::optional<std::uint64_t> hls_name_number(std::string_view name, std::string_view prefix,
                                                           std::string_view suffix);

// A fresh random key (RAND_bytes); throws std::runtime_error if the RNG fails.
[[nodiscard]] HlsKey make_hls_key(std::uint64_t id);

// The IV of a segment: its media sequence number, big-endian, in 16 bytes.
[[nodiscard]] std::array<std::uint8_t, 16> hls_iv(std::uint64_t sequence);

// AES-128-CBC, PKCS#7, of a whole segment (the output is 1..16 bytes longer). 2 MB: 1.5 ms
// (min; median 1.6-3.8 ms on the loaded 2-core test machine, AES-NI). Throws
// std::runtime_error on an OpenSSL failure.
[[nodiscard]] std::string hls_encrypt(const HlsKey& key, std::uint64_t sequence, std::string_view plain);
// The inverse (tests); nullopt when the padding is wrong.
[[nodiscard]] std::optional<std::string> hls_decrypt(const HlsKey& key, std::uint64_t sequence,
                                                     std::string_view cipher);

}  // namespace twincast::control
