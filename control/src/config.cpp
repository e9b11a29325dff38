// The YAML channel map -> dataplane::ApplianceConfig.
//
// Two stages, one error list. The parser walks the YAML tree field by field: it rejects
// unknown and duplicate keys, wrong types and out-of-range values (the range of each field
// is written where the field is read, below), and records the position of every node it
// reads by its YAML path. The validator then checks what spans several fields or objects
// (references to ports, duplicates, collisions) and finds positions through those paths.
// Nothing stops at the first error; the result carries a configuration only when the
// error list is empty.
#include "twincast/control/config.hpp"
#include "twincast/control/srt_ingest.hpp"  // srt_streamid_resource: how callers are routed
#include "twincast/dataplane/dataplane.hpp"  // device_name: how EAL names a port's device
#include "twincast/dataplane/net.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace twincast::control {

bool is_host_name(std::string_view s) {
  const bool fqdn = !s.empty() && s.back() == '.';  // a fully qualified "example.org."
  if (fqdn) s.remove_suffix(1);
  if (s.empty() || s.size() > 253) return false;
  // Labels of 1..63 letters, digits and hyphens, not starting or ending with a hyphen.
  for (std::size_t from = 0; from <= s.size();) {
    const std::size_t dot = std::min(s.find('.', from), s.size());
    const std::string_view label = s.substr(from, dot - from);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        }))
      return false;
    from = dot + 1;
  }
  // What the resolver reads as a number ("0", "127.1", "0x7f.1": inet_aton's forms), or
  // what ends in a numeric label (no top-level domain is one), is an address only as four
  // decimal parts: "0" is refused as "0.0.0.0" is, not looked up.
  const std::string text(s);
  const std::string_view last = s.substr(s.rfind('.') == std::string_view::npos ? 0 : s.rfind('.') + 1);
  in_addr a{};
  const bool numeric = inet_aton(text.c_str(), &a) != 0 ||
                       std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
  return !numeric || (!fqdn && inet_pton(AF_INET, text.c_str(), &a) == 1);
}

namespace {

namespace fs = std::filesystem;
using dataplane::ApplianceConfig;
using dataplane::ChannelConfig;
using dataplane::EalConfig;
using dataplane::FailoverConfig;
using dataplane::HlsOptions;
using dataplane::HlsRendition;
using dataplane::InputConfig;
using dataplane::InputKind;
using dataplane::Ipv4;
using dataplane::Mac;
using dataplane::MultiplexConfig;
using dataplane::OutputConfig;
using dataplane::OutputKind;
using dataplane::PacingMode;
using dataplane::PortConfig;
using dataplane::SrtMode;

constexpr std::int64_t kMinPid = 0x10;      // 0x00..0x0F are PAT, CAT, NIT, SDT...
constexpr std::int64_t kMinOwnPid = 0x20;   // 0x10..0x1F are DVB SI (NIT, SDT, EIT...): what the remuxer
                                            // never gives a service (a PMT PID or a rule's target)
constexpr std::int64_t kMaxPid = 0x1FFE;    // 0x1FFF is the null PID
constexpr std::size_t kMaxSdtNames = 252;   // service descriptor: 255 - 3 length/type bytes
constexpr std::size_t kMaxStreamId = 512;   // SRTO_STREAMID limit
constexpr std::size_t kMaxNextHops = 64;    // unicast next hops per port (the data plane's kMaxNeighbors)
// A port's mbufs beyond its RX and TX descriptors (which the RX queue holds for as long as
// the port runs, and the TX queue until the driver frees what it sent): the mempool caches
// of the worker and the main lcore (up to 1.5 x 256 each), a TX burst and the worker's
// retired RX mbufs (3 x 32), and some for RTP windows and datagrams in flight.
constexpr std::uint32_t kMbufsBeyondDescriptors = 1023;
constexpr std::int64_t kMaxLcore = 127;     // EAL's lcore ids: 0..RTE_MAX_LCORE-1 (128 in DPDK's default build)

struct Pos {
  int line = 0;
  int column = 0;
};

Pos pos_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0 || m.column < 0) return {};
  return {m.line + 1, m.column + 1};
}

std::string in_quotes(std::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = "\"";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return out + "\"";
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return in_quotes(n.Scalar());
    default: return "nothing";
  }
}

std::string join_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0U : 1U)});
      diag = up;
    }
  }
  return row[b.size()];
}

// ---- scalar syntax --------------------------------------------------------------------

// Decimal, or 0x-hex; an optional leading '-' so that "-1" is reported as out of range.
enum class IntParse : std::uint8_t { kOk, kNotInteger, kTooBig };
IntParse parse_integer(std::string_view s, std::int64_t& out) {
  bool negative = false;
  if (!s.empty() && s.front() == '-') {
    negative = true;
    s.remove_prefix(1);
  }
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  if (s.empty()) return IntParse::kNotInteger;
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ptr != s.data() + s.size()) return IntParse::kNotInteger;
  if (ec == std::errc::result_out_of_range || v > static_cast<std::uint64_t>(INT64_MAX)) return IntParse::kTooBig;
  if (ec != std::errc{}) return IntParse::kNotInteger;
  out = negative ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
  return IntParse::kOk;
}

std::optional<Ipv4> parse_ipv4(std::string_view s) {
  Ipv4 addr = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (s.empty() || s.front() != '.') return std::nullopt;
      s.remove_prefix(1);
    }
    std::size_t n = 0;
    while (n < s.size() && n < 4 && s[n] >= '0' && s[n] <= '9') ++n;
    if (n == 0 || n > 3) return std::nullopt;
    unsigned v = 0;
    std::from_chars(s.data(), s.data() + n, v);
    if (v > 255) return std::nullopt;
    addr = (addr << 8) | v;
    s.remove_prefix(n);
  }
  if (!s.empty()) return std::nullopt;
  return addr;
}

std::string ipv4_string(Ipv4 a) { return dataplane::net::ipv4_text(a); }

bool is_multicast(Ipv4 a) { return (a >> 28) == 0xE; }
bool is_link_local_multicast(Ipv4 a) { return (a >> 8) == 0xE00000; }  // 224.0.0.0/24

std::optional<Mac> parse_mac(std::string_view s) {
  if (s.size() != 17) return std::nullopt;
  Mac mac{};
  for (std::size_t i = 0; i < 6; ++i) {
    if (i > 0 && s[i * 3 - 1] != ':' && s[i * 3 - 1] != '-') return std::nullopt;
    unsigned v = 0;
    const char* first = s.data() + i * 3;
    const auto [ptr, ec] = std::from_chars(first, first + 2, v, 16);
    if (ec != std::errc{} || ptr != first + 2) return std::nullopt;
    mac[i] = static_cast<std::uint8_t>(v);
  }
  return mac;
}

bool is_name(std::string_view s) {  // ids and names referenced elsewhere: [a-z0-9_-]
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// How many distinct lcores an lcore list names, counted up to 2 (EAL reads "3-1" as 1-3).
std::size_t lcore_count_upto_two(std::string_view s) {
  std::vector<std::int64_t> seen;
  const auto add = [&](std::int64_t v) {
    if (std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
  };
  for (std::size_t from = 0; from <= s.size() && seen.size() < 2;) {
    const std::size_t comma = std::min(s.find(',', from), s.size());
    const std::string_view item = s.substr(from, comma - from);
    const std::size_t dash = item.find('-');
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    if (parse_integer(item.substr(0, dash), lo) != IntParse::kOk) return 2;  // not ours to judge: EAL will
    hi = lo;
    if (dash != std::string_view::npos && parse_integer(item.substr(dash + 1), hi) != IntParse::kOk) return 2;
    add(std::min(lo, hi));
    if (lo != hi) add(std::min(lo, hi) + 1);
    from = comma + 1;
  }
  return seen.size();
}

// The largest lcore id an lcore list names (INT64_MAX when one is too big to read).
std::int64_t max_lcore(std::string_view s) {
  std::int64_t max = 0;
  for (std::size_t from = 0; from <= s.size();) {
    const std::size_t end = std::min(s.find_first_of(",-", from), s.size());
    std::int64_t v = 0;
    if (parse_integer(s.substr(from, end - from), v) != IntParse::kOk) return INT64_MAX;
    max = std::max(max, v);
    from = end + 1;
  }
  return max;
}

bool is_lcore_list(std::string_view s) {  // "0,1", "0-3", "0,2-5"
  bool digit_expected = true;
  bool in_range = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      digit_expected = false;
    } else if (digit_expected) {
      return false;
    } else if (c == ',') {
      digit_expected = true;
      in_range = false;
    } else if (c == '-' && !in_range) {
      digit_expected = true;
      in_range = true;
    } else {
      return false;
    }
  }
  return !s.empty() && !digit_expected;
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// ---- the parser -----------------------------------------------------------------------

class Parser;

// One YAML mapping and the keys it may hold. Unknown and duplicate keys are errors.
class Fields {
 public:
  Fields(Parser& p, const YAML::Node& node, std::string path, std::initializer_list<std::string_view> keys);
  bool ok() const { return ok_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const YAML::Node* find(std::string_view key) const {
    for (const auto& [k, v] : entries_)
      if (k == key) return &v;
    return nullptr;
  }
  std::string child(std::string_view key) const { return join_path(path_, key); }
  const std::string& path() const { return path_; }
  Pos pos() const { return pos_; }

 private:
  bool ok_ = false;
  std::string path_;
  Pos pos_;
  std::vector<std::pair<std::string, YAML::Node>> entries_;
};

class Parser {
 public:
  explicit Parser(fs::path base_dir) : base_dir_(std::move(base_dir)) {}

  std::vector<ConfigError> errors;
  std::unordered_map<std::string, Pos> where;  // YAML path -> position of its value
  bool ports_broken = false;                   // "ports" is not a list: references cannot be checked
  bool channels_broken = false;                // "channels" is not a list: references cannot be checked
  std::vector<bool> outputs_mistyped;          // per channel: "outputs" is there but not a list

  void error(Pos p, std::string path, std::string message) {
    errors.push_back({std::move(path), p.line, p.column, std::move(message)});
  }
  void error_at(const std::string& path, std::string message) { error(at(path), path, std::move(message)); }

  // The recorded position of a path, or of its closest recorded ancestor.
  Pos at(std::string path) const {
    for (;;) {
      if (auto it = where.find(path); it != where.end()) return it->second;
      const auto cut = path.find_last_of(".[");
      if (cut == std::string::npos) return {};
      path.resize(cut);
    }
  }

  ApplianceConfig parse(const YAML::Node& root);

 private:
  // Field readers: true when the key is present and its value valid (then stored in out).
  bool required(const Fields& f, std::string_view key) {
    if (f.has(key)) return true;
    error(f.pos(), f.child(key), "required key is missing");
    return false;
  }
  bool read_string(const Fields& f, std::string_view key, std::string& out);
  bool read_name(const Fields& f, std::string_view key, std::string& out, std::size_t max_len);
  bool read_bool(const Fields& f, std::string_view key, bool& out);
  template <typename T>
  bool read_int(const Fields& f, std::string_view key, T& out, std::int64_t lo, std::int64_t hi, bool hex = false);
  bool read_pid(const Fields& f, std::string_view key, std::uint16_t& out, std::int64_t lo = kMinPid) {
    return read_int(f, key, out, lo, kMaxPid, true);
  }
  bool read_ipv4(const Fields& f, std::string_view key, Ipv4& out, std::uint8_t* prefix_len = nullptr);
  bool read_group(const Fields& f, std::string_view key, Ipv4& out);
  bool read_unicast(const Fields& f, std::string_view key, Ipv4& out);
  template <typename E>
  bool read_enum(const Fields& f, std::string_view key, E& out,
                 std::initializer_list<std::pair<std::string_view, E>> names);
  // Calls each(node, path, index) for each item of a list.
  template <typename Fn>
  bool read_list(const Fields& f, std::string_view key, Fn each);

  void parse_dataplane(const YAML::Node& n, EalConfig& eal);
  void parse_control(const YAML::Node& n, dataplane::ControlConfig& control);
  void parse_ott(const YAML::Node& n, dataplane::OttConfig& ott);
  void parse_hls(const YAML::Node& n, const std::string& path, ChannelConfig& ch);
  HlsRendition parse_rendition(const YAML::Node& n, const std::string& path);
  PortConfig parse_port(const YAML::Node& n, const std::string& path);
  ChannelConfig parse_channel(const YAML::Node& n, const std::string& path);
  MultiplexConfig parse_multiplex(const YAML::Node& n, const std::string& path);
  InputConfig parse_input(const YAML::Node& n, const std::string& path, std::size_t index);
  void parse_udp_input(const YAML::Node& n, const std::string& path, InputConfig& in);
  void parse_srt_input(const YAML::Node& n, const std::string& path, InputConfig& in);
  OutputConfig parse_output(const YAML::Node& n, const std::string& path);
  void parse_failover(const YAML::Node& n, const std::string& path, FailoverConfig& fo);
  mpegts::PidRule parse_pid_rule(const YAML::Node& n, const std::string& path);

  fs::path base_dir_;
  std::size_t channel_index_ = 0;
};

Fields::Fields(Parser& p, const YAML::Node& node, std::string path, std::initializer_list<std::string_view> keys)
    : path_(std::move(path)), pos_(pos_of(node)) {
  if (!node.IsMap()) {
    // "key:" with nothing is marked at the next token: the key's position, which the
    // mapping holding it recorded, is where to look.
    if (const auto it = p.where.find(path_); node.IsNull() && it != p.where.end()) pos_ = it->second;
    p.error(pos_, path_, "expected a mapping, got " + describe(node));
    return;
  }
  ok_ = true;
  p.where[path_] = pos_;
  for (const auto& kv : node) {  // *it is a temporary: bind it, not it->first
    const YAML::Node k = kv.first;
    const YAML::Node v = kv.second;
    if (!k.IsScalar()) {
      p.error(pos_of(k), path_, "keys must be plain names, got " + describe(k));
      continue;
    }
    const std::string& key = k.Scalar();
    const std::string child_path = join_path(path_, key);
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      std::string msg = "unknown key " + in_quotes(key);
      std::string_view best;
      std::size_t best_d = 3;
      for (auto cand : keys) {
        const std::size_t d = edit_distance(key, cand);
        if (d < best_d) best_d = d, best = cand;
      }
      if (!best.empty()) {
        msg += " (did you mean " + in_quotes(best) + "?)";
      } else {
        msg += " (expected one of:";
        for (auto cand : keys) msg += " " + std::string(cand);
        msg += ")";
      }
      p.error(pos_of(k), child_path, std::move(msg));
      continue;
    }
    if (find(key) != nullptr) {
      p.error(pos_of(k), child_path, "duplicate key " + in_quotes(key));
      continue;
    }
    Pos vp = pos_of(v);
    if (vp.line == 0 || v.IsNull()) vp = pos_of(k);  // "key:" with nothing: its mark is the next token's
    p.where[child_path] = vp;
    entries_.emplace_back(key, v);
  }
}

bool Parser::read_string(const Fields& f, std::string_view key, std::string& out) {
  const YAML::Node* n = f.find(key);
  if (n == nullptr) return false;
  if (!n->IsScalar()) {
    error_at(f.child(key), "expected a string, got " + describe(*n));
    return false;
  }
  out = n->Scalar();
  return true;
}

bool Parser::read_name(const Fields& f, std::string_view key, std::string& out, std::size_t max_len) {
  std::string s;
  if (!read_string(f, key, s)) return false;
  if (!is_name(s) || s.size() > max_len) {
    error_at(f.child(key), in_quotes(s) + " is not a valid " + std::string(key) + " (1.." +
                               std::to_string(max_len) + " characters of a-z, 0-9, _ and -)");
    return false;
  }
  out = std::move(s);
  return true;
}

bool Parser::read_bool(const Fields& f, std::string_view key, bool& out) {
  const YAML::Node* n = f.find(key);
  if (n == nullptr) return false;
  if (n->IsScalar()) {
    std::string s = n->Scalar();
    std::transform(s.begin(), s.end(), s.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
    if (s == "true" || s == "yes" || s == "on") return out = true, true;
    if (s == "false" || s == "no" || s == "off") return out = false, true;
  }
  error_at(f.child(key), "expected true or false, got " + describe(*n));
  return false;
}

template <typename T>
bool Parser::read_int(const Fields& f, std::string_view key, T& out, std::int64_t lo, std::int64_t hi, bool hex) {
  const YAML::Node* n = f.find(key);
  if (n == nullptr) return false;
  const auto show = [hex](std::int64_t v) {
    if (!hex) return std::to_string(v);
    std::ostringstream os;
    os << "0x" << std::uppercase << std::hex << v;
    return os.str();
  };
  std::int64_t v = 0;
  const IntParse r = n->IsScalar() ? parse_integer(n->Scalar(), v) : IntParse::kNotInteger;
  if (r == IntParse::kNotInteger) {
    error_at(f.child(key), "expected an integer, got " + describe(*n));
    return false;
  }
  if (r == IntParse::kTooBig || v < lo || v > hi) {
    error_at(f.child(key), n->Scalar() + " is out of range (" + show(lo) + ".." + show(hi) + ")");
    return false;
  }
  out = static_cast<T>(v);
  return true;
}

bool Parser::read_ipv4(const Fields& f, std::string_view key, Ipv4& out, std::uint8_t* prefix_len) {
  std::string s;
  if (!read_string(f, key, s)) return false;
  std::string_view addr = s;
  if (prefix_len != nullptr) {
    if (const auto slash = s.find('/'); slash != std::string::npos) {
      addr = std::string_view(s).substr(0, slash);
      std::int64_t len = 0;
      if (parse_integer(std::string_view(s).substr(slash + 1), len) != IntParse::kOk || len < 1 || len > 32) {
        error_at(f.child(key), "prefix length in " + in_quotes(s) + " is out of range (1..32)");
        return false;
      }
      *prefix_len = static_cast<std::uint8_t>(len);
    }
  }
  const auto a = parse_ipv4(addr);
  if (!a) {
    error_at(f.child(key),
             in_quotes(s) + " is not an IPv4 address" + (prefix_len != nullptr ? " (like 10.0.0.2/24)" : ""));
    return false;
  }
  out = *a;
  return true;
}

bool Parser::read_group(const Fields& f, std::string_view key, Ipv4& out) {
  Ipv4 a = 0;
  if (!read_ipv4(f, key, a)) return false;
  if (!is_multicast(a)) {
    error_at(f.child(key), ipv4_string(a) + " is not a multicast group (224.0.0.0/4)");
    return false;
  }
  if (is_link_local_multicast(a)) {
    error_at(f.child(key),
             ipv4_string(a) + " is link-local multicast (224.0.0.0/24), reserved for routing protocols");
    return false;
  }
  out = a;
  return true;
}

bool Parser::read_unicast(const Fields& f, std::string_view key, Ipv4& out) {
  Ipv4 a = 0;
  if (!read_ipv4(f, key, a)) return false;
  if (a == 0 || a == 0xFFFFFFFF || is_multicast(a)) {
    error_at(f.child(key), ipv4_string(a) + " is not a unicast address");
    return false;
  }
  out = a;
  return true;
}

template <typename E>
bool Parser::read_enum(const Fields& f, std::string_view key, E& out,
                       std::initializer_list<std::pair<std::string_view, E>> names) {
  const YAML::Node* n = f.find(key);
  if (n == nullptr) return false;
  if (n->IsScalar()) {
    for (const auto& [name, value] : names)
      if (n->Scalar() == name) return out = value, true;
  }
  std::string msg = "expected one of";
  for (const auto& nv : names) msg += (&nv == names.begin() ? " " : ", ") + std::string(nv.first);
  error_at(f.child(key), msg + "; got " + describe(*n));
  return false;
}

template <typename Fn>
bool Parser::read_list(const Fields& f, std::string_view key, Fn each) {
  const YAML::Node* n = f.find(key);
  if (n == nullptr) return false;
  const std::string path = f.child(key);
  if (n->IsNull()) return true;  // "key:" with nothing: an empty list
  if (!n->IsSequence()) {
    error(pos_of(*n), path, "expected a list, got " + describe(*n));
    return false;
  }
  for (std::size_t i = 0; i < n->size(); ++i) {
    const YAML::Node item = (*n)[i];
    where[index_path(path, i)] = pos_of(item);
    each(item, index_path(path, i), i);
  }
  return true;
}

// Whether two valid listen addresses are one TCP listener to the kernel: the same port on
// the same host, or on the wildcard of the other's family (0.0.0.0 takes every IPv4
// address's port, [::] every IPv6 one's: the second bind fails with EADDRINUSE).
bool same_listener(const std::string& a, const std::string& b) {
  const std::size_t ca = a.rfind(':');
  const std::size_t cb = b.rfind(':');
  std::int64_t pa = 0;
  std::int64_t pb = 0;
  if (ca == std::string::npos || cb == std::string::npos || parse_integer(a.substr(ca + 1), pa) != IntParse::kOk ||
      parse_integer(b.substr(cb + 1), pb) != IntParse::kOk || pa != pb)
    return false;
  const std::string ha = a.substr(0, ca);
  const std::string hb = b.substr(0, cb);
  const auto v6 = [](const std::string& h) { return !h.empty() && h.front() == '['; };
  const auto v4_literal = [](const std::string& h) { return parse_ipv4(h).has_value(); };
  if (ha == hb) return true;
  if ((ha == "0.0.0.0" && v4_literal(hb)) || (hb == "0.0.0.0" && v4_literal(ha))) return true;
  return (ha == "[::]" && v6(hb)) || (hb == "[::]" && v6(ha));
}

ApplianceConfig Parser::parse(const YAML::Node& root) {
  ApplianceConfig cfg;
  if (root.IsNull()) {
    error({1, 1}, "", "the file is empty (expected dataplane, ports and channels)");
    return cfg;
  }
  Fields f(*this, root, "", {"control", "ott", "dataplane", "ports", "channels", "multiplexes"});
  if (!f.ok()) return cfg;
  if (const YAML::Node* n = f.find("control")) parse_control(*n, cfg.control);
  if (const YAML::Node* n = f.find("ott")) parse_ott(*n, cfg.ott);
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"api_listen", &cfg.control.api_listen},
                                   {"metrics_listen", &cfg.control.metrics_listen}}) {
    if (!same_listener(*value, cfg.ott.listen)) continue;
    const std::string section = f.has("ott") ? "ott" : "control";
    if (*value == cfg.ott.listen)
      error_at(section, "ott.listen and control." + std::string(key) + " are both " + *value + " (each has its own listener)");
    else
      error_at(section, "ott.listen " + cfg.ott.listen + " and control." + std::string(key) + " " + *value +
                            " take the same port (each has its own listener)");
  }
  if (const YAML::Node* n = f.find("dataplane")) parse_dataplane(*n, cfg.eal);
  if (f.has("ports") && !read_list(f, "ports", [&](const YAML::Node& n, const std::string& path, std::size_t) {
        cfg.ports.push_back(parse_port(n, path));
      }))
    ports_broken = true;
  if (required(f, "channels")) {
    if (!read_list(f, "channels", [&](const YAML::Node& n, const std::string& path, std::size_t) {
          cfg.channels.push_back(parse_channel(n, path));
        }))
      channels_broken = true;
  } else {
    channels_broken = true;
  }
  read_list(f, "multiplexes", [&](const YAML::Node& n, const std::string& path, std::size_t) {
    cfg.multiplexes.push_back(parse_multiplex(n, path));
  });
  return cfg;
}

// host:port or [v6]:port with a port in 1..65535, as HttpServer::listen reads it: an
// IPv6 host only in brackets, the port in decimal.
static bool is_listen_address(const std::string& s) {
  const std::size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= s.size()) return false;
  const std::string host = s.substr(0, colon);
  if (host.front() == '[' ? host.size() < 3 || host.back() != ']' : host.find(':') != std::string::npos) return false;
  const std::string_view port_text = std::string_view(s).substr(colon + 1);
  if (!std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  std::int64_t port = 0;
  return parse_integer(port_text, port) == IntParse::kOk && port >= 1 && port <= 65535;
}

void Parser::parse_control(const YAML::Node& n, dataplane::ControlConfig& control) {
  Fields f(*this, n, "control", {"api_listen", "metrics_listen", "token_file"});
  if (!f.ok()) return;
  for (const char* key : {"api_listen", "metrics_listen"}) {
    std::string s;
    if (!read_string(f, key, s)) continue;
    if (!is_listen_address(s)) {
      error_at(f.child(key), in_quotes(s) + " is not a listen address (host:port, like 127.0.0.1:8080 or [::1]:8080)");
      continue;
    }
    (std::string_view(key) == "api_listen" ? control.api_listen : control.metrics_listen) = s;
  }
  if (same_listener(control.api_listen, control.metrics_listen)) {
    // One of them may be the other's default: the error names the key that is written.
    if (f.has("metrics_listen"))
      error_at(f.child("metrics_listen"), "metrics_listen must differ from api_listen (/metrics has its own listener)");
    else
      error_at(f.child("api_listen"), control.api_listen + " takes the port of metrics_listen's default (" +
                                          control.metrics_listen + "): set metrics_listen to another address "
                                          "(/metrics has its own listener)");
  }
  if (std::string file; read_string(f, "token_file", file)) {
    fs::path p(file);
    if (p.is_relative()) p = base_dir_ / p;
    std::ifstream is(p, std::ios::binary);
    if (!is) error_at(f.child("token_file"), "cannot read " + file + ": " + std::strerror(errno));
    else control.token_file = p.string();
  }
}

void Parser::parse_ott(const YAML::Node& n, dataplane::OttConfig& ott) {
  Fields f(*this, n, "ott", {"listen", "segment_seconds", "window_segments", "memory_mb", "dvr_hours",
                             "dvr_dir", "dvr_disk_mb", "static_dir", "public_url", "secret_file", "transcode_threads",
                             "transcode_preset"});
  if (!f.ok()) return;
  if (std::string s; read_string(f, "listen", s)) {
    if (!is_listen_address(s))
      error_at(f.child("listen"), in_quotes(s) + " is not a listen address (host:port, like 127.0.0.1:8090 or [::1]:8090)");
    else
      ott.listen = s;
  }
  if (std::string url; read_string(f, "public_url", url)) {
    const bool scheme = url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
    if (!scheme || url.find_first_of(" \t\r\n\"") != std::string::npos || url.size() > 512)
      error_at(f.child("public_url"), in_quotes(url) + " is not an http:// or https:// base URL");
    else
      ott.public_url = url.back() == '/' ? url.substr(0, url.size() - 1) : url;
  }
  read_int(f, "segment_seconds", ott.segment_seconds, 1, 10);
  read_int(f, "window_segments", ott.window_segments, 3, 100);
  read_int(f, "memory_mb", ott.memory_mb, 16, 1'048'576);
  read_int(f, "dvr_hours", ott.dvr_hours, 0, 72);
  read_int(f, "dvr_disk_mb", ott.dvr_disk_mb, 0, 1'048'576'000);
  if (std::string dir; read_string(f, "dvr_dir", dir)) {
    fs::path p(dir);
    if (p.is_relative()) p = base_dir_ / p;
    std::error_code ec;
    if (dir.empty() || !fs::is_directory(p, ec)) error_at(f.child("dvr_dir"), "not a directory: " + dir);
    else if (::access(p.c_str(), W_OK | X_OK) != 0)
      error_at(f.child("dvr_dir"), "cannot write in " + dir + ": " + std::strerror(errno));
    else ott.dvr_dir = p.lexically_normal().string();
  }
  if (ott.dvr_disk_mb != 0 && !f.has("dvr_dir")) error_at(f.child("dvr_disk_mb"), "dvr_disk_mb applies to dvr_dir");
  if (std::string dir; read_string(f, "static_dir", dir)) {
    fs::path p(dir);
    if (p.is_relative()) p = base_dir_ / p;
    std::error_code ec;
    if (!fs::is_directory(p, ec)) error_at(f.child("static_dir"), "not a directory: " + dir);
    else ott.static_dir = p.string();
  }
  if (std::string file; read_string(f, "secret_file", file)) {
    fs::path p(file);
    if (p.is_relative()) p = base_dir_ / p;
    std::ifstream is(p, std::ios::binary);
    std::string secret((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (!is && secret.empty()) error_at(f.child("secret_file"), "cannot read " + file + ": " + std::strerror(errno));
    else if (secret.size() < 16)
      error_at(f.child("secret_file"), file + " holds " + std::to_string(secret.size()) +
                                           " bytes; a signing secret needs at least 16");
    else ott.secret_file = p.string();
  }
  read_int(f, "transcode_threads", ott.transcode_threads, 1, 64);
  read_enum(f, "transcode_preset", ott.transcode_preset,
            {{"ultrafast", "ultrafast"}, {"superfast", "superfast"}, {"veryfast", "veryfast"},
             {"faster", "faster"}, {"fast", "fast"}, {"medium", "medium"}, {"slow", "slow"},
             {"slower", "slower"}, {"veryslow", "veryslow"}});
}

void Parser::parse_hls(const YAML::Node& n, const std::string& path, ChannelConfig& ch) {
  Fields f(*this, n, path, {"signed_urls", "bind_client", "encrypt", "key_rotation_segments", "renditions"});
  if (!f.ok()) return;
  ch.hls = true;
  HlsOptions& o = ch.hls_options;
  read_bool(f, "signed_urls", o.signed_urls);
  read_bool(f, "bind_client", o.bind_client);
  read_bool(f, "encrypt", o.encrypt);
  read_int(f, "key_rotation_segments", o.key_rotation_segments, 0, 1'000'000);
  if (o.bind_client && !o.signed_urls) error_at(f.child("bind_client"), "bind_client applies to signed_urls: true");
  if (o.key_rotation_segments != 0 && !o.encrypt)
    error_at(f.child("key_rotation_segments"), "key rotation applies to encrypt: true");
  read_list(f, "renditions", [&](const YAML::Node& item, const std::string& p, std::size_t) {
    o.renditions.push_back(parse_rendition(item, p));
  });
  std::map<std::string, std::size_t> names;
  for (std::size_t r = 0; r < o.renditions.size(); ++r) {
    const std::string& name = o.renditions[r].name;
    if (!name.empty() && !names.emplace(name, r).second)
      error_at(index_path(f.child("renditions"), r) + ".name",
               "duplicate rendition name " + in_quotes(name) + " (also renditions[" + std::to_string(names[name]) + "])");
  }
}

HlsRendition Parser::parse_rendition(const YAML::Node& n, const std::string& path) {
  HlsRendition r;
  Fields f(*this, n, path, {"name", "inputs", "height", "video_kbps"});
  if (!f.ok()) return r;
  if (required(f, "name")) read_name(f, "name", r.name, 32);
  read_list(f, "inputs", [&](const YAML::Node& item, const std::string& p, std::size_t i) {
    r.inputs.push_back(parse_input(item, p, i));
  });
  const bool received = f.has("inputs");
  if (received && (f.has("height") || f.has("video_kbps"))) {
    error_at(f.child(f.has("height") ? "height" : "video_kbps"),
             "a rendition is either received (inputs) or transcoded (height, video_kbps), not both");
    return r;
  }
  if (received) {
    // "inputs:" with nothing is an empty list too (not a transcoded rendition of height 0).
    const YAML::Node& ins = *f.find("inputs");
    if (r.inputs.empty() && (ins.IsSequence() || ins.IsNull()))
      error_at(f.child("inputs"), "a received rendition needs at least one input");
    return r;
  }
  if (!f.has("height") || !f.has("video_kbps")) {
    error(f.pos(), path, "a rendition needs inputs (received) or height and video_kbps (transcoded)");
    return r;
  }
  if (read_int(f, "height", r.height, 144, 2160) && r.height % 2 != 0)
    error_at(f.child("height"), std::to_string(r.height) + " is odd; H.264 4:2:0 needs an even height");
  read_int(f, "video_kbps", r.video_kbps, 100, 50'000);
  return r;
}

void Parser::parse_dataplane(const YAML::Node& n, EalConfig& eal) {
  Fields f(*this, n, "dataplane", {"lcores", "memory_mb", "hugepages", "file_prefix", "eal_args"});
  if (!f.ok()) return;
  if (std::string s; read_string(f, "lcores", s)) {
    if (!is_lcore_list(s))
      error_at(f.child("lcores"), in_quotes(s) + " is not an lcore list (like \"0,1\" or \"0-3\")");
    else if (max_lcore(s) > kMaxLcore)
      error_at(f.child("lcores"), in_quotes(s) + " names an lcore above " + std::to_string(kMaxLcore) +
                                      " (EAL's lcore ids are 0.." + std::to_string(kMaxLcore) + ")");
    else if (lcore_count_upto_two(s) < 2)
      error_at(f.child("lcores"), in_quotes(s) + " names one lcore; twincastd needs two (the main loop, then the "
                                                 "packet worker), like \"0,1\"");
    else
      eal.lcores = s;
  }
  read_int(f, "memory_mb", eal.memory_mb, 64, 1 << 20);
  read_bool(f, "hugepages", eal.hugepages);
  if (std::string s; read_string(f, "file_prefix", s)) {
    const bool ok = std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
    });
    if (ok && !s.empty()) eal.file_prefix = s;
    else error_at(f.child("file_prefix"), in_quotes(s) + " is not a valid file prefix (letters, digits, _ and -)");
  }
  read_list(f, "eal_args", [&](const YAML::Node& item, const std::string& path, std::size_t) {
    if (item.IsScalar()) eal.extra_args.push_back(item.Scalar());
    else error(pos_of(item), path, "expected a string, got " + describe(item));
  });
}

PortConfig Parser::parse_port(const YAML::Node& n, const std::string& path) {
  PortConfig port;
  Fields f(*this, n, path,
           {"name", "device", "address", "gateway", "vlan", "mac", "rx_descriptors", "tx_descriptors", "mbufs"});
  if (!f.ok()) return port;
  if (required(f, "name")) read_name(f, "name", port.name, 32);
  if (required(f, "device") && read_string(f, "device", port.device) && port.device.empty())
    error_at(f.child("device"), "must not be empty");
  if (required(f, "address") && read_ipv4(f, "address", port.address, &port.prefix_len)) {
    const Ipv4 mask = port.prefix_len >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> port.prefix_len);
    if (port.address == 0 || is_multicast(port.address) || port.address == 0xFFFFFFFF)
      error_at(f.child("address"), ipv4_string(port.address) + " is not a unicast address");
    else if (port.prefix_len < 31 && ((port.address & ~mask) == 0 || (port.address | mask) == 0xFFFFFFFFu))
      error_at(f.child("address"), ipv4_string(port.address) + " is the " +
                                       ((port.address & ~mask) == 0 ? "network" : "broadcast") + " address of " +
                                       ipv4_string(port.address & mask) + "/" + std::to_string(port.prefix_len) +
                                       ", not a host in it");
  }
  if (read_ipv4(f, "gateway", port.gateway) && port.address != 0) {
    const Ipv4 mask = port.prefix_len >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> port.prefix_len);
    const bool edge = port.prefix_len < 31 && ((port.gateway & ~mask) == 0 || (port.gateway | mask) == 0xFFFFFFFFu);
    if (port.gateway == port.address || (port.gateway & mask) != (port.address & mask) || edge)
      error_at(f.child("gateway"), ipv4_string(port.gateway) + " is not a host in the port's subnet " +
                                       ipv4_string(port.address & mask) + "/" + std::to_string(port.prefix_len));
  }
  read_int(f, "vlan", port.vlan, 0, 4094);
  if (std::string s; read_string(f, "mac", s)) {
    const auto mac = parse_mac(s);
    if (!mac) error_at(f.child("mac"), in_quotes(s) + " is not a MAC address (like 02:00:00:00:00:01)");
    else if (((*mac)[0] & 1) != 0) error_at(f.child("mac"), in_quotes(s) + " is a multicast MAC address");
    else if (*mac == Mac{}) error_at(f.child("mac"), in_quotes(s) + " is the all-zero MAC address, no station's");
    else port.mac = mac;
  }
  // Each of these valid or absent (an invalid one has its error already).
  const bool rx = read_int(f, "rx_descriptors", port.rx_descriptors, 64, 32768) || !f.has("rx_descriptors");
  const bool tx = read_int(f, "tx_descriptors", port.tx_descriptors, 64, 32768) || !f.has("tx_descriptors");
  const bool mbufs = read_int(f, "mbufs", port.mbufs, 1023, 1048575) || !f.has("mbufs");
  if (rx && tx && mbufs && port.mbufs < port.rx_descriptors + port.tx_descriptors + kMbufsBeyondDescriptors)
    error_at(f.child("mbufs"), std::to_string(port.mbufs) + " mbufs leave no room beyond the " +
                                   std::to_string(port.rx_descriptors) + " RX and " +
                                   std::to_string(port.tx_descriptors) + " TX descriptors, which hold theirs: " +
                                   "at least rx_descriptors + tx_descriptors + " +
                                   std::to_string(kMbufsBeyondDescriptors) + " (" +
                                   std::to_string(port.rx_descriptors + port.tx_descriptors + kMbufsBeyondDescriptors) +
                                   ")");
  return port;
}

ChannelConfig Parser::parse_channel(const YAML::Node& n, const std::string& path) {
  ChannelConfig ch;
  channel_index_ = outputs_mistyped.size();
  outputs_mistyped.push_back(false);
  Fields f(*this, n, path,
           {"id", "name", "provider", "service_id", "source_service_id", "lcn", "pmt_pid", "pids", "inputs",
            "failover", "outputs", "hls", "priority"});
  if (!f.ok()) return ch;
  if (required(f, "id")) read_name(f, "id", ch.id, 64);
  read_string(f, "name", ch.name);
  read_string(f, "provider", ch.provider);
  if (ch.name.size() + ch.provider.size() > kMaxSdtNames)
    error_at(f.child(f.has("provider") ? "provider" : "name"),
             "name and provider together are " + std::to_string(ch.name.size() + ch.provider.size()) +
                 " bytes; an SDT service descriptor holds " + std::to_string(kMaxSdtNames));
  read_int(f, "service_id", ch.service_id, 1, 65535);
  read_int(f, "source_service_id", ch.source_service_id, 1, 65535);
  read_int(f, "lcn", ch.lcn, 1, 1023);
  read_pid(f, "pmt_pid", ch.pmt_pid, kMinOwnPid);
  read_list(f, "pids", [&](const YAML::Node& item, const std::string& p, std::size_t) {
    ch.pid_rules.push_back(parse_pid_rule(item, p));
  });
  if (!f.has("inputs")) {
    error(f.pos(), f.child("inputs"), "a channel needs at least one input");
  } else if (read_list(f, "inputs", [&](const YAML::Node& item, const std::string& p, std::size_t i) {
               ch.inputs.push_back(parse_input(item, p, i));
             }) &&
             ch.inputs.empty()) {
    error_at(f.child("inputs"), "a channel needs at least one input");
  }
  if (const YAML::Node* fo = f.find("failover")) parse_failover(*fo, f.child("failover"), ch.failover);
  read_list(f, "outputs", [&](const YAML::Node& item, const std::string& p, std::size_t) {
    ch.outputs.push_back(parse_output(item, p));
  });
  if (const YAML::Node* h = f.find("hls")) {
    if (h->IsMap()) parse_hls(*h, f.child("hls"), ch);
    else read_bool(f, "hls", ch.hls);
  }
  read_int(f, "priority", ch.priority, 0, 255);
  // Whether the channel goes anywhere is the validator's question (a multiplex may carry
  // it); it needs to know whether "outputs" was there and not a list (reported already).
  const YAML::Node* outs = f.find("outputs");
  outputs_mistyped[channel_index_] = outs != nullptr && !outs->IsSequence() && !outs->IsNull();
  return ch;
}

MultiplexConfig Parser::parse_multiplex(const YAML::Node& n, const std::string& path) {
  MultiplexConfig m;
  Fields f(*this, n, path,
           {"id", "transport_stream_id", "original_network_id", "network_id", "network_name", "channels", "outputs"});
  if (!f.ok()) return m;
  if (required(f, "id")) read_name(f, "id", m.id, 64);
  read_int(f, "transport_stream_id", m.transport_stream_id, 0, 65535);
  read_int(f, "original_network_id", m.original_network_id, 1, 65535);
  read_int(f, "network_id", m.network_id, 1, 65535);
  if (read_string(f, "network_name", m.network_name) && m.network_name.size() > kMaxSdtNames)
    error_at(f.child("network_name"), "is " + std::to_string(m.network_name.size()) +
                                          " bytes; a network_name_descriptor holds " + std::to_string(kMaxSdtNames));
  if (!f.has("channels")) {
    error(f.pos(), f.child("channels"), "a multiplex needs at least one channel");
  } else if (read_list(f, "channels", [&](const YAML::Node& item, const std::string& p, std::size_t) {
               if (item.IsScalar()) m.channels.push_back(item.Scalar());
               else error(pos_of(item), p, "expected a channel id, got " + describe(item));
             }) &&
             m.channels.empty()) {
    error_at(f.child("channels"), "a multiplex needs at least one channel");
  }
  const YAML::Node* outs = f.find("outputs");
  if (outs == nullptr) {
    error(f.pos(), f.child("outputs"), "a multiplex needs at least one output");
  } else if (read_list(f, "outputs", [&](const YAML::Node& item, const std::string& p, std::size_t) {
               m.outputs.push_back(parse_output(item, p));
             }) &&
             m.outputs.empty()) {
    error_at(f.child("outputs"), "a multiplex needs at least one output");
  }
  return m;
}

mpegts::PidRule Parser::parse_pid_rule(const YAML::Node& n, const std::string& path) {
  mpegts::PidRule rule;
  Fields f(*this, n, path, {"from", "to", "drop"});
  if (!f.ok()) return rule;
  if (required(f, "from")) read_pid(f, "from", rule.from);
  read_pid(f, "to", rule.to, kMinOwnPid);
  read_bool(f, "drop", rule.drop);
  if (rule.drop && f.has("to")) error_at(f.child("to"), "a rule either drops a PID or maps it, not both");
  else if (!rule.drop && !f.has("to")) error(f.pos(), path, "a rule needs to: PID or drop: true");
  return rule;
}

InputConfig Parser::parse_input(const YAML::Node& n, const std::string& path, std::size_t index) {
  InputConfig in;
  in.name = "input" + std::to_string(index + 1);
  Fields f(*this, n, path, {"name", "max_bitrate_bps", "udp", "rtp", "srt"});
  if (!f.ok()) return in;
  read_name(f, "name", in.name, 32);
  read_int(f, "max_bitrate_bps", in.max_bitrate_bps, 0, 10'000'000'000);
  std::vector<std::string_view> kinds;
  for (std::string_view k : {"udp", "rtp", "srt"})
    if (f.has(k)) kinds.push_back(k);
  if (kinds.empty()) {
    error(f.pos(), path, "an input needs one of udp, rtp or srt");
    return in;
  }
  if (kinds.size() > 1) {
    error_at(f.child(kinds[1]), "an input has one of udp, rtp or srt; this one also has " + std::string(kinds[0]));
    return in;
  }
  const YAML::Node& body = *f.find(kinds[0]);
  const std::string body_path = f.child(kinds[0]);
  if (kinds[0] == "srt") {
    in.kind = InputKind::kSrt;
    parse_srt_input(body, body_path, in);
  } else {
    in.kind = kinds[0] == "udp" ? InputKind::kUdp : InputKind::kRtp;
    parse_udp_input(body, body_path, in);
  }
  return in;
}

void Parser::parse_udp_input(const YAML::Node& n, const std::string& path, InputConfig& in) {
  Fields f(*this, n, path, {"port", "group", "udp_port", "source"});
  if (!f.ok()) return;
  if (required(f, "port")) read_string(f, "port", in.port);
  read_group(f, "group", in.address);  // absent: unicast to the port's own address
  if (required(f, "udp_port")) read_int(f, "udp_port", in.udp_port, 1, 65535);
  if (read_unicast(f, "source", in.source) && !f.has("group"))
    error_at(f.child("source"), "source-specific multicast needs a group");
}

void Parser::parse_srt_input(const YAML::Node& n, const std::string& path, InputConfig& in) {
  Fields f(*this, n, path,
           {"mode", "address", "port", "local_port", "passphrase", "passphrase_file", "key_length", "latency_ms",
            "streamid"});
  if (!f.ok()) return;
  read_enum(f, "mode", in.srt_mode,
            {{"listener", SrtMode::kListener}, {"caller", SrtMode::kCaller}, {"rendezvous", SrtMode::kRendezvous}});
  if (in.srt_mode == SrtMode::kListener) {
    Ipv4 bind = 0;
    if (read_ipv4(f, "address", bind)) {
      if (is_multicast(bind)) error_at(f.child("address"), ipv4_string(bind) + " is not a unicast address");
      else in.srt_address = ipv4_string(bind);
    }
  } else if (required(f, "address") && read_string(f, "address", in.srt_address)) {
    if (!is_host_name(in.srt_address)) {
      error_at(f.child("address"), in_quotes(in.srt_address) + " is not a host name or IPv4 address");
    } else if (const auto remote = parse_ipv4(in.srt_address)) {
      // An address names the remote host: not "any", broadcast or a group.
      if (*remote == 0 || *remote == 0xFFFFFFFF || is_multicast(*remote))
        error_at(f.child("address"), ipv4_string(*remote) + " is not a unicast address (the remote host's)");
    }
  }
  if (required(f, "port")) read_int(f, "port", in.srt_port, 1, 65535);
  if (read_int(f, "local_port", in.srt_local_port, 1, 65535) && in.srt_mode != SrtMode::kRendezvous)
    error_at(f.child("local_port"), "local_port applies to rendezvous mode only");
  if (f.has("passphrase"))
    error_at(f.child("passphrase"),
             "inline passphrases are not allowed: put it in a file readable only by twincast and name that "
             "file with passphrase_file");
  if (std::string file; read_string(f, "passphrase_file", file)) {
    fs::path p(file);
    if (p.is_relative()) p = base_dir_ / p;
    std::ifstream is(p, std::ios::binary);
    if (!is) {
      error_at(f.child("passphrase_file"), "cannot read " + file + ": " + std::strerror(errno));
    } else {
      std::ostringstream os;
      os << is.rdbuf();
      std::string pass = trim(os.str());
      if (pass.size() < 10 || pass.size() > 79)
        error_at(f.child("passphrase_file"), "the passphrase in " + file + " is " +
                                                 std::to_string(pass.size()) + " characters; SRT needs 10..79");
      else
        in.passphrase = std::move(pass);
    }
  }
  if (const YAML::Node* k = f.find("key_length")) {
    std::int64_t v = 0;
    if (k->IsScalar() && parse_integer(k->Scalar(), v) == IntParse::kOk && v != 16 && v != 24 && v != 32)
      error_at(f.child("key_length"), k->Scalar() + " is not an AES key length (16, 24 or 32)");
    else
      read_int(f, "key_length", in.key_length, 16, 32);
  }
  if (f.has("key_length") && !f.has("passphrase_file") && !f.has("passphrase"))
    error_at(f.child("key_length"), "key_length applies to passphrase_file (without one the stream is not encrypted)");
  read_int(f, "latency_ms", in.latency_ms, 20, 8000);
  if (read_string(f, "streamid", in.streamid) && in.streamid.size() > kMaxStreamId)
    error_at(f.child("streamid"), "is " + std::to_string(in.streamid.size()) + " characters; SRT allows " +
                                      std::to_string(kMaxStreamId));
}

OutputConfig Parser::parse_output(const YAML::Node& n, const std::string& path) {
  OutputConfig out;
  Fields outer(*this, n, path, {"udp", "rtp"});
  if (!outer.ok()) return out;
  if (outer.has("udp") && outer.has("rtp")) {
    error_at(outer.child("rtp"), "an output has one of udp or rtp; this one also has udp");
    return out;
  }
  if (!outer.has("udp") && !outer.has("rtp")) {
    error(outer.pos(), path, "an output needs one of udp or rtp");
    return out;
  }
  out.kind = outer.has("udp") ? OutputKind::kUdp : OutputKind::kRtp;
  const std::string body_path = outer.child(outer.has("udp") ? "udp" : "rtp");
  Fields f(*this, *outer.find(outer.has("udp") ? "udp" : "rtp"), body_path,
           {"port", "group", "address", "udp_port", "source", "source_port", "ttl", "dscp", "vlan",
            "packets_per_datagram", "pacing", "cbr_bps"});
  if (!f.ok()) return out;
  if (required(f, "port")) read_string(f, "port", out.port);
  if (f.has("group") && f.has("address"))
    error_at(f.child("address"), "an output sends to a group or to an address, not both");
  else if (!f.has("group") && !f.has("address"))
    error(f.pos(), f.child("group"), "required key is missing (or address, for unicast)");
  else if (f.has("group"))
    read_group(f, "group", out.address);
  else
    read_unicast(f, "address", out.address);
  if (required(f, "udp_port")) read_int(f, "udp_port", out.udp_port, 1, 65535);
  read_unicast(f, "source", out.source);
  read_int(f, "source_port", out.source_port, 1, 65535);
  read_int(f, "ttl", out.ttl, 1, 255);
  read_int(f, "dscp", out.dscp, 0, 63);
  read_int(f, "vlan", out.vlan, 0, 4094);
  read_int(f, "packets_per_datagram", out.packets_per_datagram, 1, 7);
  read_enum(f, "pacing", out.pacing,
            {{"pcr", PacingMode::kPcr}, {"cbr", PacingMode::kCbr}, {"passthrough", PacingMode::kPassthrough}});
  const bool has_rate = read_int(f, "cbr_bps", out.cbr_bps, 64'000, 1'000'000'000);
  if (out.pacing == PacingMode::kCbr && !f.has("cbr_bps"))
    error_at(f.child("pacing"), "cbr pacing needs cbr_bps (the constant output rate)");
  if (has_rate && out.pacing != PacingMode::kCbr)
    error_at(f.child("cbr_bps"), "cbr_bps applies to pacing: cbr only");
  return out;
}

void Parser::parse_failover(const YAML::Node& n, const std::string& path, FailoverConfig& fo) {
  Fields f(*this, n, path, {"timeout_ms", "max_cc_errors_per_s", "require_psi", "revert", "revert_holdoff_ms"});
  if (!f.ok()) return;
  read_int(f, "timeout_ms", fo.timeout_ms, 1, 60'000);
  read_int(f, "max_cc_errors_per_s", fo.max_cc_errors_per_s, 0, 100'000);
  read_bool(f, "require_psi", fo.require_psi);
  read_bool(f, "revert", fo.revert);
  read_int(f, "revert_holdoff_ms", fo.revert_holdoff_ms, 0, 3'600'000);
}

// ---- the validator: what spans several fields -----------------------------------------

std::string kind_key(InputKind k) { return k == InputKind::kSrt ? "srt" : k == InputKind::kRtp ? "rtp" : "udp"; }
std::string kind_key(OutputKind k) { return k == OutputKind::kRtp ? "rtp" : "udp"; }

void validate(Parser& p, ApplianceConfig& cfg) {
  std::map<std::string, std::string> port_paths;  // name -> path of its first definition
  std::map<std::string, std::string> device_paths;  // by the device's name: what precedes its first ','
  for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
    const PortConfig& port = cfg.ports[i];
    const std::string path = index_path("ports", i);
    if (!port.name.empty() && !port_paths.emplace(port.name, path).second)
      p.error_at(path + ".name",
                 "duplicate port name " + in_quotes(port.name) + " (also " + port_paths[port.name] + ")");
    // EAL knows one device per name (a second --vdev of that name replaces the first's
    // arguments), and the data plane looks a port up by it.
    const std::string device_name = dataplane::device_name(port.device);  // a PCI address as EAL writes it
    if (!port.device.empty() && !device_paths.emplace(device_name, path).second)
      p.error_at(path + ".device", "device " + in_quotes(port.device) + " is already " + device_paths[device_name] +
                                       (device_name != port.device ? " (one device per name, " + in_quotes(device_name) + ")"
                                                                   : std::string()));
  }
  const auto find_port = [&](const std::string& name) -> const PortConfig* {
    for (const auto& port : cfg.ports)
      if (port.name == name) return &port;
    return nullptr;
  };
  // A port whose name failed to parse could be the one referenced: do not pile on.
  const bool ports_incomplete = p.ports_broken || std::any_of(cfg.ports.begin(), cfg.ports.end(), [](const auto& q) {
                                  return q.name.empty();
                                });
  const auto check_port = [&](const std::string& name, const std::string& path) -> const PortConfig* {
    if (name.empty()) return nullptr;  // missing or mistyped: already reported
    const PortConfig* port = find_port(name);
    if (port == nullptr && !ports_incomplete) {
      std::string known;
      for (const auto& q : cfg.ports) known += (known.empty() ? "" : ", ") + q.name;
      p.error_at(path, "port " + in_quotes(name) + " is not defined in ports" +
                           (known.empty() ? std::string(" (there are none)") : " (defined: " + known + ")"));
    }
    return port;
  };

  std::map<std::string, std::string> ids;
  std::map<std::uint16_t, std::string> service_ids;
  std::map<std::uint16_t, std::string> lcns;
  struct Sharer {
    std::uint16_t source_service_id;
    InputKind kind;
    std::string path;
  };
  std::map<std::tuple<std::string, Ipv4, std::uint16_t, Ipv4>, std::vector<Sharer>>
      udp_inputs;  // (port, address, udp_port, source) -> its inputs
  struct GroupInput {
    Ipv4 source;
    std::string owner;  // the channel or received rendition (a data-plane channel of its own)
    std::string path;
  };
  std::map<std::tuple<std::string, Ipv4, std::uint16_t>, std::vector<GroupInput>> group_inputs;  // (port, group, udp_port)
  struct SrtListener {
    std::string streamid;
    std::string address;
    std::string path;
  };
  std::map<std::uint16_t, std::vector<SrtListener>> srt_listeners;  // port -> listeners
  std::vector<std::pair<std::uint16_t, std::string>> srt_rendezvous;  // (local port, path of the srt body)
  std::map<std::pair<Ipv4, std::uint16_t>, std::string> destinations;
  struct Sent {
    std::string port;
    Ipv4 address;
    std::uint16_t udp_port;
    std::string path;  // of its group or address key
  };
  std::vector<Sent> sent;  // every output's destination, checked against the inputs at the end
  // port -> unicast next hops its outputs need, each on a VLAN (as the data plane's
  // neighbour table holds them: an output on its own VLAN resolves its next hop there)
  std::map<std::string, std::vector<std::pair<Ipv4, std::uint16_t>>> next_hops;
  // Every output (of a channel or a multiplex) names a port and a destination of its own.
  const auto check_outputs = [&](const std::vector<OutputConfig>& outputs, const std::string& owner) {
    for (std::size_t o = 0; o < outputs.size(); ++o) {
      const OutputConfig& out = outputs[o];
      const std::string opath = index_path(owner + ".outputs", o);
      const std::string body = opath + "." + kind_key(out.kind);
      const PortConfig* port = check_port(out.port, body + ".port");
      if (out.address == 0 || out.udp_port == 0) continue;
      if (port != nullptr && port->address != 0 && !is_multicast(out.address)) {
        // As the data plane resolves it: the destination inside the port's subnet, else the gateway.
        const Ipv4 mask = port->prefix_len >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> port->prefix_len);
        const Ipv4 hop = (out.address & mask) == (port->address & mask) ? out.address : port->gateway;
        const std::pair<Ipv4, std::uint16_t> on_vlan{hop, out.vlan != 0 ? out.vlan : port->vlan};
        auto& hops = next_hops[port->name];
        if (hop != 0 && std::find(hops.begin(), hops.end(), on_vlan) == hops.end()) {
          hops.push_back(on_vlan);
          if (hops.size() == kMaxNextHops + 1)
            p.error_at(body + ".address", "port " + port->name + " would need " + std::to_string(kMaxNextHops + 1) +
                                              " unicast next hops (" + ipv4_string(hop) + " is the last); it resolves at most " +
                                              std::to_string(kMaxNextHops));
        }
      }
      const std::string dest = p.where.count(body + ".group") != 0 ? body + ".group" : body + ".address";
      if (auto [it, fresh] = destinations.emplace(std::make_pair(out.address, out.udp_port), opath); !fresh)
        p.error_at(dest, ipv4_string(out.address) + ":" + std::to_string(out.udp_port) +
                             " is already the destination of " + it->second);
      sent.push_back({out.port, out.address, out.udp_port, dest});
    }
  };

  for (std::size_t c = 0; c < cfg.channels.size(); ++c) {
    ChannelConfig& ch = cfg.channels[c];
    const std::string cpath = index_path("channels", c);
    if (!ch.id.empty() && !ids.emplace(ch.id, cpath).second)
      p.error_at(cpath + ".id", "duplicate channel id " + in_quotes(ch.id) + " (also " + ids[ch.id] + ")");
    if (ch.service_id != 0 && !service_ids.emplace(ch.service_id, cpath).second)
      p.error_at(cpath + ".service_id",
                 "service_id " + std::to_string(ch.service_id) + " is already used by " + service_ids[ch.service_id]);
    if (ch.lcn != 0 && !lcns.emplace(ch.lcn, cpath).second)
      p.error_at(cpath + ".lcn", "lcn " + std::to_string(ch.lcn) + " is already used by " + lcns[ch.lcn]);

    std::map<std::uint16_t, std::size_t> froms;
    std::map<std::uint16_t, std::size_t> tos;
    for (std::size_t r = 0; r < ch.pid_rules.size(); ++r) {
      const auto& rule = ch.pid_rules[r];
      const std::string rpath = index_path(cpath + ".pids", r);
      if (rule.from != 0 && !froms.emplace(rule.from, r).second)
        p.error_at(rpath + ".from", "PID " + std::to_string(rule.from) + " already has a rule (pids[" +
                                        std::to_string(froms[rule.from]) + "])");
      if (!rule.drop && rule.to != 0) {
        if (!tos.emplace(rule.to, r).second)
          p.error_at(rpath + ".to", "two rules map onto PID " + std::to_string(rule.to) + " (also pids[" +
                                        std::to_string(tos[rule.to]) + "])");
        else if (rule.to == ch.pmt_pid)
          p.error_at(rpath + ".to", "PID " + std::to_string(rule.to) + " is the channel's pmt_pid");
      }
    }

    // The channel's inputs, then each received rendition's (a data-plane channel of its own).
    const auto check_inputs = [&](std::vector<InputConfig>& inputs, const std::string& owner) {
    std::map<std::string, std::size_t> input_names;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      InputConfig& in = inputs[i];
      const std::string ipath = index_path(owner + ".inputs", i);
      if (!input_names.emplace(in.name, i).second)
        p.error_at(ipath + ".name", "duplicate input name " + in_quotes(in.name) + " (also inputs[" +
                                        std::to_string(input_names[in.name]) + "])");
      const std::string body = ipath + "." + kind_key(in.kind);
      if (in.kind == InputKind::kSrt) {
        if (in.srt_port == 0) continue;
        if (in.srt_mode == SrtMode::kRendezvous) {
          // It binds its local port: not one the ingest listens on (checked once all are known).
          srt_rendezvous.emplace_back(in.srt_local_port != 0 ? in.srt_local_port : in.srt_port, body);
          continue;
        }
        if (in.srt_mode != SrtMode::kListener) continue;
        auto& same_port = srt_listeners[in.srt_port];
        // The ingest binds one socket per port: one address for all its listeners.
        for (const auto& other : same_port) {
          if (other.address != in.srt_address) {
            const std::string key = p.where.count(body + ".address") != 0 ? ".address" : ".port";
            p.error_at(body + key, "SRT listeners on port " + std::to_string(in.srt_port) +
                                       " share one socket: this one binds " + in.srt_address + ", " + other.path +
                                       " binds " + other.address);
            break;
          }
        }
        // Compared as the ingest routes callers: by the streamid's resource name.
        const std::string_view resource = srt_streamid_resource(in.streamid);
        for (const auto& other : same_port) {
          const std::string_view theirs = srt_streamid_resource(other.streamid);
          if (theirs.empty() || resource.empty() || theirs == resource) {
            p.error_at(body + ".port", "SRT port " + std::to_string(in.srt_port) + " is also listened on by " +
                                           other.path + "; listeners sharing a port need distinct streamids");
            break;
          }
        }
        same_port.push_back({in.streamid, in.srt_address, ipath});
        continue;
      }
      const PortConfig* port = check_port(in.port, body + ".port");
      if (port == nullptr || in.udp_port == 0) continue;
      if (in.address == 0 && p.where.count(body + ".group") != 0) continue;  // bad group: already reported
      if (in.address == 0) in.address = port->address;  // unicast to the port itself
      // One received stream may feed several channels only when each takes a different
      // service from it (an MPTS split into channels by source_service_id).
      auto& sharers = udp_inputs[std::make_tuple(in.port, in.address, in.udp_port, in.source)];
      bool shared_badly = false;
      for (const auto& other : sharers) {
        if (other.kind != in.kind) {  // the data plane hands a received flow to its inputs as one kind
          p.error_at(body + ".udp_port",
                     "port " + in.port + " already receives " + ipv4_string(in.address) + ":" +
                         std::to_string(in.udp_port) +
                         (in.source != 0 ? " from " + ipv4_string(in.source) : std::string()) + " as " +
                         kind_key(other.kind) + " for " + other.path + "; one received stream is either udp or rtp");
          shared_badly = true;
          break;
        }
      }
      for (const auto& [other_sid, other_kind, other] : sharers) {
        if (shared_badly) break;
        if (other_sid == 0 || ch.source_service_id == 0 || other_sid == ch.source_service_id) {
          p.error_at(body + ".udp_port",
                     "port " + in.port + " already receives " + ipv4_string(in.address) + ":" +
                         std::to_string(in.udp_port) +
                         (in.source != 0 ? " from " + ipv4_string(in.source) : std::string()) + " for " + other +
                         " (channels may share an input only to take different source_service_ids from it)");
          break;
        }
      }
      sharers.push_back({ch.source_service_id, in.kind, ipath});
      // A datagram from S goes to the (group, udp_port, S) flow when there is one, else to
      // the any-source one: split between data-plane channels, the any-source input never
      // sees S's datagrams. (In one channel, a source-specific primary with an any-source
      // backup for the other senders is fine.)
      if (is_multicast(in.address)) {
        auto& same_group = group_inputs[std::make_tuple(in.port, in.address, in.udp_port)];
        for (const auto& other : same_group) {
          if (other.owner == owner || (other.source == 0) == (in.source == 0)) continue;
          const Ipv4 s = in.source != 0 ? in.source : other.source;
          p.error_at(body + ".group",
                     "port " + in.port + " receives " + ipv4_string(in.address) + ":" + std::to_string(in.udp_port) +
                         " from " + ipv4_string(s) + " only for " + (in.source != 0 ? ipath : other.path) +
                         " and from any source for " + (in.source != 0 ? other.path : ipath) + ": datagrams from " +
                         ipv4_string(s) + " go to the source-specific input alone");
          break;
        }
        same_group.push_back({in.source, owner, ipath});
      }
    }
    };
    check_inputs(ch.inputs, cpath);
    const HlsOptions& hls = ch.hls_options;
    for (std::size_t r = 0; r < hls.renditions.size(); ++r)
      if (!hls.renditions[r].transcoded())
        check_inputs(ch.hls_options.renditions[r].inputs, index_path(cpath + ".hls.renditions", r));
    if (hls.signed_urls && cfg.ott.secret_file.empty())
      p.error_at(cpath + ".hls.signed_urls", "signed URLs need ott.secret_file (the HMAC-SHA256 key)");

    check_outputs(ch.outputs, cpath);
  }

  // A rendezvous input's local port is a UDP port of its own: not an SRT listener's.
  for (const auto& [local, body] : srt_rendezvous) {
    const auto it = srt_listeners.find(local);
    if (it == srt_listeners.end() || it->second.empty()) continue;
    const std::string key = p.where.count(body + ".local_port") != 0 ? ".local_port" : ".port";
    p.error_at(body + key, "rendezvous local port " + std::to_string(local) + " is already an SRT listener port (" +
                               it->second.front().path + ")");
  }

  // Multiplexes: members are channels by id, each at most once per multiplex (a channel
  // may be in several multiplexes). A member needs its own service_id: two sources may
  // well both be program 1. service_ids and LCNs are unique over all channels already,
  // so they are unique inside a multiplex; pmt_pids (free per channel) must be too.
  std::map<std::string, std::size_t> channel_index;
  for (std::size_t c = 0; c < cfg.channels.size(); ++c) channel_index.emplace(cfg.channels[c].id, c);
  const bool channels_incomplete =
      p.channels_broken ||
      std::any_of(cfg.channels.begin(), cfg.channels.end(), [](const auto& ch) { return ch.id.empty(); });
  std::vector<bool> carried(cfg.channels.size(), false);
  std::map<std::string, std::string> mux_ids;
  for (std::size_t m = 0; m < cfg.multiplexes.size(); ++m) {
    const MultiplexConfig& mux = cfg.multiplexes[m];
    const std::string mpath = index_path("multiplexes", m);
    if (!mux.id.empty() && !mux_ids.emplace(mux.id, mpath).second)
      p.error_at(mpath + ".id", "duplicate multiplex id " + in_quotes(mux.id) + " (also " + mux_ids[mux.id] + ")");
    std::map<std::string, std::size_t> members;
    std::map<std::uint16_t, std::string> pmt_pids;
    for (std::size_t k = 0; k < mux.channels.size(); ++k) {
      const std::string& id = mux.channels[k];
      const std::string kpath = index_path(mpath + ".channels", k);
      const auto it = channel_index.find(id);
      if (it == channel_index.end()) {
        if (!channels_incomplete) p.error_at(kpath, "channel " + in_quotes(id) + " is not defined in channels");
        continue;
      }
      if (!members.emplace(id, k).second) {
        p.error_at(kpath, "channel " + in_quotes(id) + " is already in this multiplex (channels[" +
                              std::to_string(members[id]) + "])");
        continue;
      }
      carried[it->second] = true;
      const ChannelConfig& ch = cfg.channels[it->second];
      const std::string cpath = index_path("channels", it->second);
      if (ch.service_id == 0)
        p.error_at(kpath, "channel " + in_quotes(id) + " needs a service_id to be in a multiplex (" + cpath +
                              " keeps its source's, which may collide)");
      if (ch.pmt_pid != 0) {
        if (auto [pit, fresh] = pmt_pids.emplace(ch.pmt_pid, id); !fresh)
        {
          std::ostringstream pid;
          pid << "0x" << std::uppercase << std::hex << ch.pmt_pid;
          p.error_at(kpath, "channel " + in_quotes(id) + " has pmt_pid " + pid.str() + ", like channel " +
                                in_quotes(pit->second) + " in this multiplex");
        }
      }
    }
    check_outputs(mux.outputs, mpath);
  }

  for (std::size_t c = 0; c < cfg.channels.size(); ++c) {
    const ChannelConfig& ch = cfg.channels[c];
    const bool mistyped = c < p.outputs_mistyped.size() && p.outputs_mistyped[c];
    if (ch.outputs.empty() && !ch.hls && !carried[c] && !mistyped)
      p.error_at(index_path("channels", c) + ".outputs",
                 "the channel goes nowhere: no outputs, hls is off and no multiplex carries it");
  }

  // An output onto a group and UDP port that an input receives on the same port makes two
  // senders of one stream on that network (and the input may get our own output back).
  for (const Sent& s : sent) {
    const auto it = udp_inputs.lower_bound(std::make_tuple(s.port, s.address, s.udp_port, Ipv4{0}));
    if (it == udp_inputs.end() || std::get<0>(it->first) != s.port || std::get<1>(it->first) != s.address ||
        std::get<2>(it->first) != s.udp_port || it->second.empty())
      continue;
    p.error_at(s.path, ipv4_string(s.address) + ":" + std::to_string(s.udp_port) + " is received on port " + s.port +
                           " by " + it->second.front().path + "; an output may not send onto an input");
  }
}

// Counts the documents of a stream and keeps where the second one's content starts.
struct DocumentMarks final : YAML::EventHandler {
  int n_documents = 0;
  bool have_second = false;
  YAML::Mark second;
  void node(const YAML::Mark& mark) {
    if (n_documents == 2 && !have_second) second = mark, have_second = true;
  }
  void OnDocumentStart(const YAML::Mark&) override { ++n_documents; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { node(m); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnMapEnd() override {}
};

}  // namespace

ConfigResult parse_config(std::string_view yaml_text, std::string_view file_name) {
  ConfigResult result;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
    // A second document would be ignored silently; find it without YAML::LoadAll, which
    // loops forever on some malformed streams (yaml-cpp 0.7).
    std::istringstream stream{std::string(yaml_text)};
    YAML::Parser parser(stream);
    DocumentMarks marks;
    if (parser.HandleNextDocument(marks) && parser.HandleNextDocument(marks) && marks.n_documents > 1) {
      const Pos p = marks.have_second ? Pos{marks.second.line + 1, marks.second.column + 1} : Pos{};
      result.errors.push_back({"", p.line, p.column,
                               "a configuration is one YAML document; this is a second one"});
      return result;
    }
  } catch (const YAML::Exception& e) {
    const int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    const int column = e.mark.column >= 0 ? e.mark.column + 1 : 0;
    result.errors.push_back({"", line, column, "YAML syntax error: " + e.msg});
    return result;
  }
  Parser parser(fs::path(file_name).parent_path());
  ApplianceConfig cfg = parser.parse(root);
  validate(parser, cfg);
  result.errors = std::move(parser.errors);
  std::stable_sort(result.errors.begin(), result.errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  if (result.errors.empty()) result.config = std::move(cfg);
  return result;
}

ConfigResult load_config(const std::string& path) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  std::ifstream is;
  if (!is_dir) is.open(path, std::ios::binary);
  if (is_dir || !is) {
    ConfigResult r;
    r.errors.push_back({"", 0, 0, "cannot read " + path + ": " + std::strerror(is_dir ? EISDIR : errno)});
    return r;
  }
  std::ostringstream os;
  os << is.rdbuf();
  return parse_config(os.str(), path);
}

std::string format_error(const ConfigError& e, std::string_view file) {
  std::string s(e.line > 0 ? file : std::string_view());  // no position: the message names the file
  if (e.line > 0) s += (s.empty() ? "" : ":") + std::to_string(e.line) + ":" + std::to_string(e.column);
  if (!s.empty()) s += ": ";
  if (!e.path.empty()) s += e.path + ": ";
  return s + e.message;
}

std::string format_errors(const std::vector<ConfigError>& errors, std::string_view file) {
  std::string out;
  for (const auto& e : errors) out += format_error(e, file) + "\n";
  return out;
}

std::string config_summary(const ApplianceConfig& config) {
  const auto count = [](std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  std::string s = count(config.channels.size(), "channel", "channels");
  const auto hls = static_cast<std::size_t>(
      std::count_if(config.channels.begin(), config.channels.end(), [](const ChannelConfig& ch) { return ch.hls; }));
  if (hls != 0) s += ", " + std::to_string(hls) + " on HLS";
  if (!config.multiplexes.empty()) s += ", " + count(config.multiplexes.size(), "multiplex", "multiplexes");
  return s;
}

}  // namespace twincast::control
