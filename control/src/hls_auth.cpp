#include "twincast/control/hls_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace twincast::control {

namespace {

constexpr std::string_view kTokenDomain = "twincast-hls-v1";
constexpr std::size_t kMacBytes = 32;
constexpr std::size_t kMacChars = 43;  // base64url of 32 bytes, no padding
constexpr std::size_t kMaxExpiryDigits = 12;
constexpr std::size_t kMaxClientChars = 64;

std::string base64url(const unsigned char* data, std::size_t n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (n - i == 1) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::string mac_of(std::string_view secret, std::string_view channel, std::int64_t expiry_s, std::string_view client) {
  std::string message(kTokenDomain);
  message += '\n';
  message += hls_token_scope(channel);
  message += '\n';
  message += std::to_string(expiry_s);
  message += '\n';
  message += client;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len) == nullptr ||
      len != kMacBytes)
    throw std::runtime_error("HMAC-SHA256 failed");
  return base64url(mac, len);
}

bool client_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == ':' || c == '-' || c == '_';
}

struct CipherCtx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
  CipherCtx() = default;
  CipherCtx(const CipherCtx&) = delete;
  CipherCtx& operator=(const CipherCtx&) = delete;
};

}  // namespace

std::string_view hls_denial_name(HlsDenial d) {
  switch (d) {
#define TWINCAST_X(e, s) \
  case HlsDenial::e:     \
    return s;
    TWINCAST_HLS_DENIALS(TWINCAST_X)
#undef TWINCAST_X
  }
  return "unknown";
}

std::string hls_token_scope(std::string_view channel) { return "/hls/" + std::string(channel) + "/"; }

std::string hls_sign(std::string_view secret, std::string_view channel, std::int64_t expiry_s, std::string_view client) {
  if (secret.empty()) throw std::invalid_argument("hls_sign: empty secret");
  if (expiry_s < 0 || std::to_string(expiry_s).size() > kMaxExpiryDigits)
    throw std::invalid_argument("hls_sign: expiry " + std::to_string(expiry_s) + " is not 0..999999999999");
  std::string bound;
  if (!client.empty()) {
    boost::system::error_code ec;
    (void)boost::asio::ip::make_address(std::string(client), ec);
    if (ec) throw std::invalid_argument("client '" + std::string(client) + "' is not an IPv4 or IPv6 address");
    bound = hls_client_address(client);
    if (bound.size() > kMaxClientChars || !std::all_of(bound.begin(), bound.end(), client_char))
      throw std::invalid_argument("client '" + std::string(client) + "' cannot be bound (an IPv6 zone id?)");
  }
  std::string out = std::to_string(expiry_s);
  out += '.';
  if (!bound.empty()) {
    out += bound;
    out += '.';
  }
  out += mac_of(secret, channel, expiry_s, bound);
  return out;
}

std::optional<HlsDenial> hls_verify(std::string_view secret, std::string_view channel, std::string_view token,
                                    std::int64_t now_s, std::string_view client, bool require_client) {
  if (token.empty()) return HlsDenial::kMissing;
  if (secret.empty()) return HlsDenial::kBad;
  const std::size_t first = token.find('.');
  const std::size_t last = token.rfind('.');
  if (first == std::string_view::npos || first == 0 || first > kMaxExpiryDigits) return HlsDenial::kBad;
  const std::string_view expiry_text = token.substr(0, first);
  const std::string_view mac = token.substr(last + 1);
  const std::string_view bound = first == last ? std::string_view{} : token.substr(first + 1, last - first - 1);
  if (mac.size() != kMacChars || (first != last && bound.empty()) || bound.size() > kMaxClientChars ||
      !std::all_of(bound.begin(), bound.end(), client_char))
    return HlsDenial::kBad;
  if (expiry_text.size() > 1 && expiry_text.front() == '0') return HlsDenial::kBad;  // one spelling per expiry
  std::int64_t expiry = 0;
  for (char c : expiry_text) {
    if (c < '0' || c > '9') return HlsDenial::kBad;
    expiry = expiry * 10 + (c - '0');
  }
  const std::string want = mac_of(secret, channel, expiry, bound);
  if (CRYPTO_memcmp(want.data(), mac.data(), kMacChars) != 0) return HlsDenial::kBad;
  if (expiry <= now_s) return HlsDenial::kExpired;
  if (bound.empty() ? require_client : bound != client) return HlsDenial::kWrongClient;
  return std::nullopt;
}

std::optional<std::string_view> query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const std::size_t amp = std::min(query.find('&'), query.size());
    const std::string_view param = query.substr(0, amp);
    query = amp < query.size() ? query.substr(amp + 1) : std::string_view{};
    const std::size_t eq = param.find('=');
    if (param.substr(0, eq) == key) return eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
  }
  return std::nullopt;
}

std::optional<std::string> hls_query_token(std::string_view query) {
  const auto raw = query_param(query, "token");
  if (!raw) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < raw->size(); ++i) {
    const char c = (*raw)[i];
    if (c != '%') {
      out += c;
      continue;
    }
    if (i + 2 >= raw->size()) return std::nullopt;
    int v = 0;
    for (std::size_t k = i + 1; k <= i + 2; ++k) {
      const char h = (*raw)[k];
      const int x = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (x < 0) return std::nullopt;
      v = v * 16 + x;
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

namespace {

void append_tokenized_uri(std::string& out, std::string_view uri, std::string_view token) {
  out += uri;
  if (uri.empty() || uri.find("://") != std::string_view::npos) return;
  const std::size_t q = uri.find('?');
  if (q != std::string_view::npos && query_param(uri.substr(q + 1), "token")) return;
  out += q == std::string_view::npos ? '?' : '&';
  out += "token=";
  out += token;
}

}  // namespace

std::string hls_tokenize_playlist(std::string_view playlist, std::string_view token) {
  std::string out;
  out.reserve(playlist.size() + playlist.size() / 4);
  while (!playlist.empty()) {
    const std::size_t nl = playlist.find('\n');
    std::string_view line = playlist.substr(0, nl);
    const std::string_view ending = nl == std::string_view::npos ? std::string_view{} : std::string_view("\n");
    playlist = nl == std::string_view::npos ? std::string_view{} : playlist.substr(nl + 1);
    const bool cr = !line.empty() && line.back() == '\r';
    if (cr) line.remove_suffix(1);
    if (line.empty()) {
    } else if (line.front() != '#') {
      append_tokenized_uri(out, line, token);
      line = {};
    } else {
      // URI="..." attributes (after ':' or ','), any number of them.
      std::size_t at = 0;
      while (true) {
        const std::size_t k = line.find("URI=\"", at);
        if (k == std::string_view::npos) break;
        const std::size_t start = k + 5;
        const std::size_t end = line.find('"', start);
        if (end == std::string_view::npos) break;
        // A quoted value never holds '"', so a match inside one is impossible; the name must
        // start the attribute.
        if (k > 0 && (line[k - 1] == ':' || line[k - 1] == ',')) {
          out += line.substr(0, start);
          append_tokenized_uri(out, line.substr(start, end - start), token);
          line = line.substr(end);
          at = 1;
        } else {
          at = end + 1;
        }
      }
    }
    out += line;
    if (cr) out += '\r';
    out += ending;
  }
  return out;
}

std::string hls_client_address(std::string_view remote) {
  std::string_view host = remote;
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    host = host.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1);
  } else if (host.find(':') == host.rfind(':') && host.find(':') != std::string_view::npos) {
    host = host.substr(0, host.find(':'));  // IPv4 "a.b.c.d:port"
  }
  std::string out(host);
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(out, ec);
  if (!ec) {
    // One spelling per address: "fd00:0:0::7" and "FD00::7" are "fd00::7".
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
      return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6()).to_string();
    }
    return address.to_string();
  }
  std::transform(out.begin(), out.end(), out.begin(), [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  return out;
}

std::string read_hls_secret(const std::string& path) {
  std::ifstream is(path, std::ios::binary);
  if (!is) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::string secret((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < 16) throw std::runtime_error(path + " holds fewer than 16 bytes: not a signing secret");
  return secret;
}

std::string hls_key_name(std::uint64_t id) { return "key-" + std::to_string(id) + ".key"; }

std::optional<std::uint64_t> hls_name_number(std::string_view name, std::string_view prefix, std::string_view suffix) {
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix))
    return std::nullopt;
  const std::string_view digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

std::optional<std::uint64_t> hls_key_id(std::string_view name) { return hls_name_number(name, "key-", ".key"); }

HlsKey make_hls_key(std::uint64_t id) {
  HlsKey k;
  k.id = id;
  if (RAND_bytes(k.bytes.data(), static_cast<int>(k.bytes.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return k;
}

std::array<std::uint8_t, 16> hls_iv(std::uint64_t sequence) {
  std::array<std::uint8_t, 16> iv{};
  for (std::size_t i = 0; i < 8; ++i) iv[15 - i] = static_cast<std::uint8_t>(sequence >> (8 * i));
  return iv;
}

std::string hls_encrypt(const HlsKey& key, std::uint64_t sequence, std::string_view plain) {
  CipherCtx c;
  const auto iv = hls_iv(sequence);
  if (c.ctx == nullptr || EVP_EncryptInit_ex(c.ctx, EVP_aes_128_cbc(), nullptr, key.bytes.data(), iv.data()) != 1)
    throw std::runtime_error("AES-128-CBC init failed");
  std::string out(plain.size() + 16, '\0');
  int n1 = 0, n2 = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  // EVP takes an int length: segments are far below 2 GB.
  if (EVP_EncryptUpdate(c.ctx, o, &n1, reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(c.ctx, o + n1, &n2) != 1)
    throw std::runtime_error("AES-128-CBC failed");
  out.resize(static_cast<std::size_t>(n1 + n2));
  return out;
}

std::optional<std::string> hls_decrypt(const HlsKey& key, std::uint64_t sequence, std::string_view cipher) {
  CipherCtx c;
  const auto iv = hls_iv(sequence);
  if (c.ctx == nullptr || EVP_DecryptInit_ex(c.ctx, EVP_aes_128_cbc(), nullptr, key.bytes.data(), iv.data()) != 1)
    throw std::runtime_error("AES-128-CBC init failed");
  std::string out(cipher.size() + 16, '\0');
  int n1 = 0, n2 = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_DecryptUpdate(c.ctx, o, &n1, reinterpret_cast<const unsigned char*>(cipher.data()), static_cast<int>(cipher.size())) != 1 ||
      EVP_DecryptFinal_ex(c.ctx, o + n1, &n2) != 1)
    return std::nullopt;
  out.resize(static_cast<std::size_t>(n1 + n2));
  return out;
}

}  // namespace twincast::control
