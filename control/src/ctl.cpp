#include "twincast/control/ctl.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "twincast/control/config.hpp"

namespace twincast::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = boost::asio::ip::tcp;

std::string_view ctl_exit_description(CtlExit e) {
  switch (e) {
#define TWINCAST_X(name, n, d) \
  case CtlExit::name:          \
    return d;
    TWINCAST_CTL_EXITS(TWINCAST_X)
#undef TWINCAST_X
  }
  return {};
}

std::string format_bitrate(double bps) {
  if (!std::isfinite(bps) || bps < 0) return "-";
  char buf[64];
  // Thresholds below the next unit's 1.00 so that rounding never prints "1000.0 kbit/s".
  if (bps < 999.5) {
    std::snprintf(buf, sizeof buf, "%.0f bit/s", bps);
  } else if (bps < 999'950.0) {
    std::snprintf(buf, sizeof buf, "%.1f kbit/s", bps / 1e3);
  } else if (bps < 999'995'000.0) {
    std::snprintf(buf, sizeof buf, "%.2f Mbit/s", bps / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f Gbit/s", bps / 1e9);
  }
  return buf;
}

namespace {

constexpr const char* kDefaultApi = "127.0.0.1:8080";
constexpr double kDefaultTimeoutS = 5.0;
constexpr std::size_t kMaxAnswerBytes = 64 * 1024 * 1024;

int code(CtlExit e) { return static_cast<int>(e); }

std::string help_text() {
  std::string h =
      "usage: twincastctl [OPTIONS] status              every channel: state, active input, bitrate, alarms\n"
      "       twincastctl [OPTIONS] channel ID          one channel: inputs (TR 101 290, MDI, SRT), outputs, HLS\n"
      "       twincastctl [OPTIONS] multiplexes         every multiplex (MPTS): members, packets, queue drops, outputs\n"
      "       twincastctl [OPTIONS] switch ID INPUT     make INPUT the active input of channel ID (needs the token)\n"
      "       twincastctl [OPTIONS] reload              make twincastd re-read its configuration (needs the token)\n"
      "       twincastctl [OPTIONS] hls-url ID [--ttl S] [--client ADDR] [--page]\n"
      "                                                 a signed HLS URL of channel ID (needs the token), valid\n"
      "                                                 S seconds (default 3600), only for ADDR if given; --page:\n"
      "                                                 the web page's URL that plays it\n"
      "       twincastctl check FILE                    validate a channel map locally (as twincastd --check)\n"
      "       twincastctl --version | --help\n"
      "\n"
      "options:\n"
      "  --api HOST:PORT     the REST API (default $TWINCAST_API, else 127.0.0.1:8080; [::1]:8080 for IPv6)\n"
      "  --token-file FILE   file holding the API bearer token (default $TWINCAST_TOKEN_FILE); the token\n"
      "                      itself is never accepted on the command line, where `ps` would show it\n"
      "  --json              print the API's JSON answer as is (for scripts and jq); exit codes unchanged\n"
      "  --timeout SECONDS   give up on the API after this long (default 5)\n"
      "\n"
      "Data goes to stdout, messages to stderr. A channel is healthy when its state is \"ok\" and it\n"
      "has no alarm; `status` and `channel` exit 1 when a channel they show is not.\n"
      "\n"
      "exit codes:\n";
  for (CtlExit e : {
#define TWINCAST_X(name, n, d) CtlExit::name,
           TWINCAST_CTL_EXITS(TWINCAST_X)
#undef TWINCAST_X
       }) {
    h += "  " + std::to_string(code(e)) + "  " + std::string(ctl_exit_description(e)) + "\n";
  }
  return h;
}

// ---------------------------------------------------------------------------------------
// Output: everything printed goes through here, so that the token can never leave (the
// API redacts it too; this is the second lock on the door) and control characters from
// the API (channel names, alarm texts) cannot drive the terminal.

class Printer {
 public:
  void set_secret(std::string s) { secret_ = std::move(s); }

  void out(std::string text) const { write(stdout, std::move(text)); }
  void err(std::string text) const { write(stderr, "twincastctl: " + std::move(text) + "\n"); }

 private:
  void write(std::FILE* f, std::string text) const {
    if (!secret_.empty()) {
      std::size_t pos = 0;
      while ((pos = text.find(secret_, pos)) != std::string::npos) {
        text.replace(pos, secret_.size(), "***");
        pos += 3;
      }
    }
    std::fwrite(text.data(), 1, text.size(), f);
    std::fflush(f);
  }

  std::string secret_;
};

// A string from the API made safe for a terminal: control characters become '?'.
std::string printable(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return r;
}

// Columns on a terminal: UTF-8 continuation bytes take none (wide characters are rare in
// channel names and would only shift a column).
std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0U) == 0x80U ? 0U : 1U;
  return n;
}

// ---------------------------------------------------------------------------------------
// Command line

struct ApiAddress {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  [[nodiscard]] std::string text() const {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
};

// "HOST:PORT", "[V6]:PORT", optionally behind "http://" and before a "/". An error message
// or the address.
std::optional<ApiAddress> parse_api_address(std::string s, std::string& error) {
  if (s.rfind("https://", 0) == 0) {
    error = "HTTPS is not supported: the API listens on plain HTTP (put it behind a TLS proxy on loopback)";
    return std::nullopt;
  }
  if (s.rfind("http://", 0) == 0) s.erase(0, 7);
  while (!s.empty() && s.back() == '/') s.pop_back();
  ApiAddress a;
  std::string port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      error = "expected HOST:PORT or [IPV6]:PORT";
      return std::nullopt;
    }
    a.host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.find(':');
    if (colon == std::string::npos || s.find(':', colon + 1) != std::string::npos) {
      error = "expected HOST:PORT or [IPV6]:PORT";
      return std::nullopt;
    }
    a.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (a.host.empty()) {
    error = "the host is empty";
    return std::nullopt;
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    error = "the port must be a number in 1..65535";
    return std::nullopt;
  }
  const unsigned long p = std::stoul(port);
  if (p == 0 || p > 65535) {
    error = "the port must be a number in 1..65535";
    return std::nullopt;
  }
  a.port = static_cast<std::uint16_t>(p);
  return a;
}

struct Options {
  std::string api_text;
  std::string api_origin;  // where api_text came from, for messages
  std::optional<std::string> token_file;
  std::string token_origin;
  bool json = false;
  double timeout_s = kDefaultTimeoutS;
  bool help = false;
  bool version = false;
  std::vector<std::string> words;  // command and its arguments
  std::optional<std::string> ttl;     // hls-url
  std::optional<std::string> client;  // hls-url
  bool page = false;                  // hls-url
};

// Parses the command line; nullopt after printing a usage error.
std::optional<Options> parse_options(const std::vector<std::string>& args, const Printer& p) {
  Options o;
  if (const char* env = std::getenv("TWINCAST_API"); env != nullptr && *env != '\0') {
    o.api_text = env;
    o.api_origin = "TWINCAST_API";
  } else {
    o.api_text = kDefaultApi;
    o.api_origin = "the default";
  }
  if (const char* env = std::getenv("TWINCAST_TOKEN_FILE"); env != nullptr && *env != '\0') {
    o.token_file = env;
    o.token_origin = "TWINCAST_TOKEN_FILE";
  }
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      o.words.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    // --name=value or --name value.
    std::string name = a;
    std::optional<std::string> inline_value;
    if (const auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      inline_value = a.substr(eq + 1);
    }
    auto value = [&]() -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 < args.size()) return args[++i];
      p.err(name + " needs a value (see --help)");
      return std::nullopt;
    };
    if (name == "--token" || name == "-t") {
      // Not even a hint of the value: it may be the token.
      p.err("the token is never taken on the command line (`ps` would show it): put it in a file and pass "
            "--token-file FILE or set TWINCAST_TOKEN_FILE");
      return std::nullopt;
    }
    if (inline_value && (name == "--json" || name == "--page" || name == "--help" || name == "--version")) {
      p.err(name + " takes no value");
      return std::nullopt;
    }
    if (name == "--json") {
      o.json = true;
    } else if (name == "--page") {
      o.page = true;
    } else if (name == "--ttl" || name == "--client") {
      auto v = value();
      if (!v) return std::nullopt;
      (name == "--ttl" ? o.ttl : o.client) = *v;
    } else if (name == "--help" || name == "-h") {
      o.help = true;
    } else if (name == "--version" || name == "-V") {
      o.version = true;
    } else if (name == "--api") {
      auto v = value();
      if (!v) return std::nullopt;
      o.api_text = *v;
      o.api_origin = "--api";
    } else if (name == "--token-file") {
      auto v = value();
      if (!v) return std::nullopt;
      if (v->empty()) {
        p.err("--token-file needs a file name");
        return std::nullopt;
      }
      o.token_file = *v;
      o.token_origin = "--token-file";
    } else if (name == "--timeout") {
      auto v = value();
      if (!v) return std::nullopt;
      char* end = nullptr;
      const double t = std::strtod(v->c_str(), &end);
      if (v->empty() || end == nullptr || *end != '\0' || !std::isfinite(t) || t <= 0 || t > 3600) {
        p.err("--timeout takes a number of seconds in (0, 3600], not '" + printable(*v) + "'");
        return std::nullopt;
      }
      o.timeout_s = t;
    } else {
      p.err("unknown option '" + printable(name) + "' (see --help)");
      return std::nullopt;
    }
  }
  return o;
}

// The token file's content up to trailing whitespace, or an error message.
std::optional<std::string> read_token(const Options& o, const std::string& what, std::string& error) {
  if (!o.token_file) {
    error = what + " needs the API token: pass --token-file FILE or set TWINCAST_TOKEN_FILE";
    return std::nullopt;
  }
  const std::string& file = *o.token_file;
  std::ifstream f(file, std::ios::binary);
  if (!f) {
    error = "cannot read the token file '" + printable(file) + "' (from " + o.token_origin + "): " +
            std::string(std::strerror(errno));
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) t.pop_back();
  if (t.empty()) {
    error = "the token file '" + printable(file) + "' is empty";
    return std::nullopt;
  }
  // Visible ASCII only: anything else cannot travel in an HTTP header (and a newline in
  // the middle would split it).
  if (!std::all_of(t.begin(), t.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    error = "the token file '" + printable(file) + "' holds characters a bearer token cannot have "
            "(one line of visible ASCII expected)";
    return std::nullopt;
  }
  return t;
}

// ---------------------------------------------------------------------------------------
// HTTP

struct Answer {
  bool reached = false;  // an HTTP answer arrived
  std::string failure;   // when not: why
  unsigned status = 0;
  std::string body;
};

// One request on a fresh connection, everything (connect, write, read) within `timeout`.
// Names are resolved synchronously before the clock starts (numeric addresses skip it).
Answer exchange(const ApiAddress& api, http::verb verb, const std::string& target, const std::string& body,
                const std::optional<std::string>& token, std::chrono::milliseconds timeout) {
  Answer a;
  asio::io_context ioc;
  std::vector<tcp::endpoint> endpoints;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(api.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, api.port);
  } else {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(api.host, std::to_string(api.port), ec);
    if (ec) {
      a.failure = "cannot resolve '" + printable(api.host) + "': " + ec.message();
      return a;
    }
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }

  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, api.text());
  req.set(http::field::user_agent, std::string("twincastctl/") + TWINCAST_VERSION);
  req.set(http::field::accept, "application/json");
  if (token) req.set(http::field::authorization, "Bearer " + *token);
  if (verb == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.keep_alive(false);
  req.prepare_payload();

  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxAnswerBytes);
  std::string stage = "connect";
  boost::system::error_code result;

  // The deadline covers the whole exchange (tcp_stream applies it to every operation
  // started after it is set; it only works for asynchronous ones, hence the callbacks).
  stream.expires_at(std::chrono::steady_clock::now() + timeout);
  stream.async_connect(endpoints, [&](boost::system::error_code e, const tcp::endpoint&) {
    if (e) {
      result = e;
      return;
    }
    stage = "send the request";
    http::async_write(stream, req, [&](boost::system::error_code e2, std::size_t) {
      if (e2) {
        result = e2;
        return;
      }
      stage = "read the answer";
      http::async_read(stream, buffer, parser, [&](boost::system::error_code e3, std::size_t) { result = e3; });
    });
  });
  ioc.run();
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  if (result) {
    const double s = std::chrono::duration<double>(timeout).count();
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", s);
    if (result == beast::error::timeout) {
      a.failure = stage == "connect" ? "cannot reach the API at " + api.text() + ": no connection within " + secs + " s"
                                     : "the API at " + api.text() + " did not answer within " + secs + " s";
    } else {
      a.failure = "cannot " + stage + (stage == "connect" ? " to the API at " : " (API at ") + api.text() +
                  (stage == "connect" ? "" : ")") + ": " + result.message();
    }
    return a;
  }
  a.reached = true;
  a.status = parser.get().result_int();
  a.body = std::move(parser.get().body());
  return a;
}

// A path segment with everything but RFC 3986 unreserved characters percent-encoded.
std::string encode_segment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string r;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' || u == '.' ||
        u == '_' || u == '~') {
      r += c;
    } else {
      r += '%';
      r += kHex[u >> 4U];
      r += kHex[u & 0xFU];
    }
  }
  return r;
}

CtlExit exit_for_status(unsigned status) {
  if (status >= 200 && status < 300) return CtlExit::kOk;
  if (status == 401) return CtlExit::kAuth;
  if (status == 404) return CtlExit::kNotFound;
  return CtlExit::kRefused;
}

// The "error" of an API error body, else a cleaned-up start of the body.
std::string error_text(const Answer& a) {
  boost::system::error_code ec;
  json::value v = json::parse(a.body, ec);
  if (!ec && v.is_object()) {
    if (const json::value* e = v.as_object().if_contains("error"); e != nullptr && e->is_string()) {
      // One line per line of the message (a refused reload lists its config errors).
      std::string_view rest = e->as_string();
      std::string text;
      for (std::size_t nl; (nl = rest.find('\n')) != std::string_view::npos; rest.remove_prefix(nl + 1)) {
        text += printable(rest.substr(0, nl)) + "\n  ";
      }
      return text + printable(rest);
    }
  }
  std::string b = printable(a.body.substr(0, 200));
  while (!b.empty() && (b.back() == ' ' || b.back() == '?')) b.pop_back();
  return b.empty() ? "(no message)" : b;
}

// ---------------------------------------------------------------------------------------
// JSON access that never throws: a missing or mistyped field reads as absent.

const json::value* field(const json::value& v, std::string_view key) {
  if (!v.is_object()) return nullptr;
  return v.as_object().if_contains(key);
}

std::string str(const json::value& v, std::string_view key, std::string_view fallback = "") {
  const json::value* f = field(v, key);
  if (f == nullptr || !f->is_string()) return std::string(fallback);
  return printable(f->as_string());
}

std::optional<double> num(const json::value& v, std::string_view key) {
  const json::value* f = field(v, key);
  if (f == nullptr || !f->is_number()) return std::nullopt;
  return f->to_number<double>();
}

std::string count_of(const json::value* f) {
  if (f == nullptr) return "-";
  if (f->is_uint64()) return std::to_string(f->as_uint64());
  if (f->is_int64()) return std::to_string(f->as_int64());
  if (f->is_double()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", f->as_double());
    return buf;
  }
  return "-";
}

std::string count(const json::value& v, std::string_view key) { return count_of(field(v, key)); }

bool flag(const json::value& v, std::string_view key) {
  const json::value* f = field(v, key);
  return f != nullptr && f->is_bool() && f->as_bool();
}

const json::array* arr(const json::value& v, std::string_view key) {
  const json::value* f = field(v, key);
  return f != nullptr && f->is_array() ? &f->as_array() : nullptr;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::vector<std::string> alarms_of(const json::value& channel) {
  std::vector<std::string> r;
  if (const json::array* a = arr(channel, "alarms")) {
    for (const auto& x : *a) r.push_back(x.is_string() ? printable(x.as_string()) : std::string("?"));
  }
  return r;
}

// "" when the channel is healthy (state "ok", no alarm), else why not.
std::string trouble_of(const json::value& channel) {
  const std::string state = str(channel, "state", "?");
  const std::size_t n_alarms = alarms_of(channel).size();
  std::string why;
  if (state != "ok") why = state;
  if (n_alarms > 0) {
    if (!why.empty()) why += ", ";
    why += std::to_string(n_alarms) + (n_alarms == 1 ? " alarm" : " alarms");
  }
  return why;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string r;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) r += sep;
    r += parts[i];
  }
  return r;
}

// Rows of cells as aligned columns (two spaces apart); columns listed in `right` are
// right-aligned; the last column is not padded.
std::string table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], display_width(row[c]));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      const std::size_t pad = width[c] - display_width(row[c]);
      const bool r = c < right.size() && right[c];
      if (c > 0) line += "  ";
      if (r) line.append(pad, ' ');
      line += row[c];
      if (!r && c + 1 < row.size()) line.append(pad, ' ');
    }
    out += line + "\n";
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Commands

class Ctl {
 public:
  Ctl(Options o, Printer& p) : o_(std::move(o)), p_(p) {}

  int run() {
    const auto& w = o_.words;
    const std::string& cmd = w[0];
    auto arity = [&](std::size_t n, const char* usage) {
      if (w.size() == n + 1) return true;
      p_.err(std::string("usage: twincastctl ") + usage);
      return false;
    };
    if (cmd == "help") {
      p_.out(help_text());
      return code(CtlExit::kOk);
    }
    if (cmd == "check") return arity(1, "check FILE") ? check(w[1]) : code(CtlExit::kUsage);
    if (cmd != "status" && cmd != "channel" && cmd != "multiplexes" && cmd != "switch" && cmd != "reload" &&
        cmd != "hls-url") {
      p_.err("unknown command '" + printable(cmd) +
             "' (commands: status, channel, multiplexes, switch, reload, hls-url, check; see --help)");
      return code(CtlExit::kUsage);
    }
    if (cmd != "hls-url" && (o_.ttl || o_.client || o_.page)) {
      p_.err("--ttl, --client and --page go with hls-url");
      return code(CtlExit::kUsage);
    }
    if (cmd == "hls-url" && !arity(1, "[OPTIONS] hls-url ID [--ttl S] [--client ADDR] [--page]")) return code(CtlExit::kUsage);
    if (cmd == "status" && !arity(0, "[OPTIONS] status")) return code(CtlExit::kUsage);
    if (cmd == "multiplexes" && !arity(0, "[OPTIONS] multiplexes")) return code(CtlExit::kUsage);
    if (cmd == "channel" && !arity(1, "[OPTIONS] channel ID")) return code(CtlExit::kUsage);
    if (cmd == "switch" && !arity(2, "[OPTIONS] switch ID INPUT")) return code(CtlExit::kUsage);
    if (cmd == "reload" && !arity(0, "[OPTIONS] reload")) return code(CtlExit::kUsage);
    for (std::size_t i = 1; i < w.size(); ++i) {
      if (w[i].empty()) {
        p_.err(cmd + ": an empty name is not a channel or an input");
        return code(CtlExit::kUsage);
      }
    }
    std::string error;
    auto api = parse_api_address(o_.api_text, error);
    if (!api) {
      p_.err("bad API address '" + printable(o_.api_text) + "' (from " + o_.api_origin + "): " + error);
      return code(CtlExit::kUsage);
    }
    api_ = *api;
    if (cmd == "status") return status();
    if (cmd == "multiplexes") return multiplexes();
    if (cmd == "channel") return channel(w[1]);
    if (cmd == "switch") return switch_input(w[1], w[2]);
    if (cmd == "hls-url") return hls_url(w[1]);
    return reload();
  }

 private:
  // Sends a request; on an HTTP answer with a 2xx status returns it, otherwise reports and
  // stores the exit code in `exit` and returns nullopt.
  std::optional<Answer> call(http::verb verb, const std::string& target, const std::string& body,
                             const std::optional<std::string>& token, const std::string& what, int& exit) {
    const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(o_.timeout_s * 1000)));
    Answer a = exchange(api_, verb, target, body, token, timeout);
    if (!a.reached) {
      p_.err(a.failure);
      exit = code(CtlExit::kUnreachable);
      return std::nullopt;
    }
    const CtlExit e = exit_for_status(a.status);
    if (e != CtlExit::kOk) {
      std::string msg = what + ": " + error_text(a) + " (HTTP " + std::to_string(a.status) + ")";
      if (e == CtlExit::kAuth && token) msg += "; check the token in '" + printable(*o_.token_file) + "'";
      p_.err(msg);
      exit = code(e);
      return std::nullopt;
    }
    return a;
  }

  // The body as JSON (an object), or nullopt after reporting that this is not the API.
  std::optional<json::value> parse_answer(const Answer& a, int& exit) {
    boost::system::error_code ec;
    json::value v = json::parse(a.body, ec);
    if (ec || !v.is_object()) {
      p_.err("the answer from " + api_.text() + " is not the twincast API's JSON");
      exit = code(CtlExit::kUnreachable);
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> token(const std::string& what, int& exit) {
    std::string error;
    auto t = read_token(o_, what, error);
    if (!t) {
      p_.err(error);
      exit = code(CtlExit::kAuth);
      return std::nullopt;
    }
    p_.set_secret(*t);
    return t;
  }

  int status() {
    int exit = 0;
    auto a = call(http::verb::get, "/api/v1/channels", "", std::nullopt, "status", exit);
    if (!a) return exit;
    auto v = parse_answer(*a, exit);
    if (!v) return exit;
    const json::array* channels = arr(*v, "channels");
    if (channels == nullptr) {
      p_.err("the answer from " + api_.text() + " has no channel list");
      return code(CtlExit::kUnreachable);
    }
    std::vector<std::string> unhealthy;
    std::vector<std::vector<std::string>> rows{{"ID", "NAME", "STATE", "INPUT", "BITRATE", "ALARMS"}};
    for (const auto& c : *channels) {
      const std::string id = str(c, "id", "?");
      const std::string input = str(c, "active_input");
      const auto bitrate = num(c, "bitrate_bps");
      const auto alarms = alarms_of(c);
      rows.push_back({id, str(c, "name"), str(c, "state", "?"), input.empty() ? "-" : input,
                      bitrate ? format_bitrate(*bitrate) : "-", alarms.empty() ? "-" : join(alarms, "; ")});
      if (auto why = trouble_of(c); !why.empty()) unhealthy.push_back(id + " (" + why + ")");
    }
    if (o_.json) {
      p_.out(a->body);
    } else if (channels->empty()) {
      p_.err("no channels configured");
    } else {
      p_.out(table(rows, {false, false, false, false, true, false}));
    }
    if (!unhealthy.empty()) {
      p_.err(std::to_string(unhealthy.size()) + " of " + std::to_string(channels->size()) +
             " channels need attention: " + join(unhealthy, ", "));
      return code(CtlExit::kRefused);
    }
    return code(CtlExit::kOk);
  }

  int multiplexes() {
    int exit = 0;
    auto a = call(http::verb::get, "/api/v1/multiplexes", "", std::nullopt, "multiplexes", exit);
    if (!a) return exit;
    auto v = parse_answer(*a, exit);
    if (!v) return exit;
    const json::array* list = arr(*v, "multiplexes");
    if (list == nullptr) {
      p_.err("the answer from " + api_.text() + " has no multiplex list");
      return code(CtlExit::kUnreachable);
    }
    std::vector<std::string> dropping;
    std::vector<std::vector<std::string>> rows{{"ID", "CHANNELS", "PACKETS_OUT", "QUEUE_DROPS", "OUTPUTS"}};
    for (const auto& m : *list) {
      const std::string id = str(m, "id", "?");
      std::vector<std::string> members;
      if (const json::array* c = arr(m, "channels"))
        for (const auto& x : *c)
          if (x.is_string()) members.push_back(printable(x.as_string()));
      std::vector<std::string> outputs;
      if (const json::array* o = arr(m, "outputs"))
        for (const auto& x : *o) outputs.push_back(str(x, "id", "?") + " (" + count(x, "datagrams") + " datagrams)");
      // count(), not num(): a double has 53 bits, the API's counters 64.
      const auto drops = num(m, "queue_drops");
      rows.push_back({id, members.empty() ? "-" : join(members, ","), count(m, "packets_out"), count(m, "queue_drops"),
                      outputs.empty() ? "-" : join(outputs, ", ")});
      if (drops && *drops > 0) dropping.push_back(id + " (" + count(m, "queue_drops") + " packets)");
    }
    if (o_.json) {
      p_.out(a->body);
    } else if (list->empty()) {
      p_.err("no multiplexes configured");
    } else {
      p_.out(table(rows, {false, false, true, true, false}));
    }
    // A warning, not a failure: the count runs since the multiplex started, so it says
    // nothing of now (twincast_multiplex_queue_dropped_packets_total's rate does).
    if (!dropping.empty()) {
      p_.err(std::to_string(dropping.size()) + " of " + std::to_string(list->size()) +
             " multiplexes have dropped packets at a full output queue since they started (cbr_bps below the members' "
             "total?): " +
             join(dropping, ", "));
    }
    return code(CtlExit::kOk);
  }

  int channel(const std::string& id) {
    int exit = 0;
    auto a = call(http::verb::get, "/api/v1/channels/" + encode_segment(id), "", std::nullopt, "channel " + printable(id),
                  exit);
    if (!a) return exit;
    auto v = parse_answer(*a, exit);
    if (!v) return exit;
    if (o_.json) {
      p_.out(a->body);
    } else {
      p_.out(channel_detail(*v));
    }
    if (auto why = trouble_of(*v); !why.empty()) {
      p_.err("channel " + str(*v, "id", printable(id)) + " needs attention: " + why);
      return code(CtlExit::kRefused);
    }
    return code(CtlExit::kOk);
  }

  static std::string kv(std::string_view label, const std::string& value, std::size_t indent = 2) {
    constexpr std::size_t kLabelWidth = 14;
    std::string line(indent, ' ');
    line += label;
    line.append(label.size() < kLabelWidth ? kLabelWidth - label.size() : 1, ' ');
    return line + value + "\n";
  }

  static std::string channel_detail(const json::value& c) {
    std::string s;
    const std::string name = str(c, "name");
    s += "channel " + str(c, "id", "?") + (name.empty() ? "" : " (" + name + ")") + "\n";
    s += kv("state", str(c, "state", "?"));
    const std::string active = str(c, "active_input");
    s += kv("active input", active.empty() ? "-" : active);
    const auto bitrate = num(c, "bitrate_bps");
    s += kv("bitrate", bitrate ? format_bitrate(*bitrate) : "-");
    s += kv("packets", "in " + count(c, "packets_in") + ", out " + count(c, "packets_out"));
    s += kv("switches", count(c, "switches"));
    if (const json::value* remux = field(c, "remux")) {
      s += kv("remux", "dropped by rule " + count(*remux, "dropped_by_rule") + ", at resync " +
                           count(*remux, "dropped_resync") + ", corrupted " + count(*remux, "dropped_sync") +
                           "; discontinuities marked " +
                           count(*remux, "discontinuities_marked") + "; EIT sections lost " +
                           count(*remux, "eit_dropped"));
    }
    const auto alarms = alarms_of(c);
    if (alarms.empty()) {
      s += kv("alarms", "none");
    } else {
      for (std::size_t i = 0; i < alarms.size(); ++i) s += kv(i == 0 ? "alarms" : "", alarms[i]);
    }

    if (const json::array* inputs = arr(c, "inputs")) {
      for (const auto& in : *inputs) {
        const std::string state = str(in, "state");
        s += "input " + str(in, "id", "?") + " (" + str(in, "kind", "?") + "), " +
             (flag(in, "active") ? "active" : "standby") + (state.empty() ? "" : ", " + state) + "\n";
        const auto rate = num(in, "bitrate_bps");
        std::string traffic = count(in, "packets") + " packets, " + (rate ? format_bitrate(*rate) : "-");
        if (const json::value* age = field(in, "last_packet_age_s"); age != nullptr) {
          if (age->is_number()) {
            traffic += ", last packet " + fixed(age->to_number<double>(), 3) + " s ago";
          } else if (age->is_null()) {
            traffic += ", nothing received yet";
          }
        }
        s += kv("traffic", traffic);
        if (const json::value* checks = field(in, "tr101290"); checks != nullptr && checks->is_object()) {
          std::vector<std::string> nonzero;
          for (const auto& [k, n] : checks->as_object()) {
            if (n.is_number() && n.to_number<double>() != 0) nonzero.push_back(printable(k) + " " + count_of(&n));
          }
          s += kv("TR 101 290", nonzero.empty() ? "no errors" : join(nonzero, ", "));
        }
        if (const json::value* mdi = field(in, "mdi"); mdi != nullptr && mdi->is_object()) {
          const auto df = num(*mdi, "df_ms");
          const auto mlr = num(*mdi, "mlr");
          if (flag(*mdi, "valid") && df && mlr) {
            s += kv("MDI", "DF " + fixed(*df, 1) + " ms, MLR " + fixed(*mlr, 2) + " packets/s");
          } else {
            s += kv("MDI", "not measured yet");
          }
        }
        if (const json::value* pcr = field(in, "pcr"); pcr != nullptr && pcr->is_object()) {
          // The last MDI interval: overall jitter (arrival) and accuracy (byte position).
          const auto jitter = num(*pcr, "jitter_ms");
          const auto accuracy = num(*pcr, "accuracy_ns");
          if (jitter) {
            s += kv("PCR", "jitter " + fixed(*jitter, 2) + " ms, accuracy " +
                               (accuracy ? fixed(*accuracy, 0) + " ns" : std::string("not measured (variable rate)")));
          } else {
            s += kv("PCR", "not measured yet");
          }
        }
        if (const json::value* srt = field(in, "srt"); srt != nullptr && srt->is_object()) {
          const auto rtt = num(*srt, "rtt_ms");
          s += kv("SRT", std::string(flag(*srt, "connected") ? "connected" : "not connected") + ", rtt " +
                             (rtt ? fixed(*rtt, 1) + " ms" : "-") + ", lost " + count(*srt, "lost") + ", retransmitted " +
                             count(*srt, "retransmitted") + ", recovered " + count(*srt, "recovered") + ", dropped " +
                             count(*srt, "dropped") + ", ring drops " + count(*srt, "ring_drops"));
        }
        if (const json::value* rtp = field(in, "rtp"); rtp != nullptr && rtp->is_object()) {
          s += kv("RTP", "lost " + count(*rtp, "lost") + ", reordered " + count(*rtp, "reordered") + ", duplicates " +
                             count(*rtp, "duplicates") + " datagrams");
        }
      }
    }

    if (const json::array* outputs = arr(c, "outputs")) {
      for (const auto& out : *outputs) {
        s += "output " + str(out, "id", "?") + "\n";
        s += kv("sent", count(out, "datagrams") + " datagrams, " + count(out, "packets") + " packets, " +
                            count(out, "bytes") + " bytes, " + count(out, "dropped") + " dropped");
        if (num(out, "queue_drops").value_or(0) != 0) s += kv("queue drops", count(out, "queue_drops") + " packets (the pacer fell behind)");
        if (const json::value* pl = field(out, "pacing_lateness"); pl != nullptr && pl->is_object()) {
          s += kv("pacing", pacing_summary(*pl));
        }
      }
    }

    if (const json::value* hls = field(c, "hls"); hls != nullptr && hls->is_object()) {
      if (!flag(*hls, "enabled")) {
        s += "hls disabled\n";
      } else {
        // The age reads 0 while there is no segment: only shown once there is one.
        const auto age = num(*hls, "segments").value_or(0) > 0 ? num(*hls, "last_segment_age_s") : std::nullopt;
        s += "hls " + str(*hls, "state", "?") + ", " + count(*hls, "segments") + " segments" +
             (age ? ", last segment " + fixed(*age, 1) + " s ago" : "") + "\n";
      }
    }
    return s;
  }

  // "140 datagrams timed, mean 87.9 us, 99% within 1 ms".
  static std::string pacing_summary(const json::value& pl) {
    const json::array* buckets = arr(pl, "buckets");
    if (buckets == nullptr) return "-";
    double total = 0;
    for (const auto& b : *buckets) total += num(b, "count").value_or(0);
    if (total <= 0) return "no datagram timed yet";
    auto us = [](double s) {
      return s < 1e-3 ? fixed(s * 1e6, s < 1e-5 ? 1 : 0) + " us" : fixed(s * 1e3, s < 1e-2 ? 1 : 0) + " ms";
    };
    std::string r = fixed(total, 0) + " datagrams timed";
    if (const auto sum = num(pl, "sum_s")) r += ", mean " + us(*sum / total) + " late";
    // The smallest bucket bound that 99% of the datagrams are within ("+Inf": none).
    double seen = 0;
    std::optional<double> last_bound;
    for (const auto& b : *buckets) {
      seen += num(b, "count").value_or(0);
      const auto le = num(b, "le_s");
      if (seen >= 0.99 * total) {
        r += le ? ", 99% within " + us(*le) : ", over 1% later than " + (last_bound ? us(*last_bound) : "-");
        break;
      }
      if (le) last_bound = le;
    }
    return r;
  }

  int switch_input(const std::string& id, const std::string& input) {
    int exit = 0;
    auto t = token("switch", exit);
    if (!t) return exit;
    json::object body;
    body["input"] = input;
    auto a = call(http::verb::post, "/api/v1/channels/" + encode_segment(id) + "/switch", json::serialize(body), t,
                  "switch " + printable(id) + " to " + printable(input), exit);
    if (!a) return exit;
    // A 200 from something else (a wrong --api) switched nothing.
    if (!parse_answer(*a, exit)) return exit;
    if (o_.json) {
      p_.out(a->body);
    } else {
      p_.out("channel " + printable(id) + ": active input is now " + printable(input) + "\n");
    }
    return code(CtlExit::kOk);
  }

  int hls_url(const std::string& id) {
    json::object body;
    if (o_.ttl) {
      char* end = nullptr;
      const long long ttl = std::strtoll(o_.ttl->c_str(), &end, 10);
      if (o_.ttl->empty() || end == nullptr || *end != '\0' || ttl < 1) {
        p_.err("--ttl takes a whole number of seconds, not '" + printable(*o_.ttl) + "'");
        return code(CtlExit::kUsage);
      }
      body["ttl_s"] = ttl;
    }
    if (o_.client) body["client"] = *o_.client;
    int exit = 0;
    auto t = token("hls-url", exit);
    if (!t) return exit;
    auto a = call(http::verb::post, "/api/v1/channels/" + encode_segment(id) + "/hls-url", json::serialize(body), t,
                  "hls-url " + printable(id), exit);
    if (!a) return exit;
    if (o_.json) {
      p_.out(a->body);
      return code(CtlExit::kOk);
    }
    boost::system::error_code ec;
    const json::value v = json::parse(a->body, ec);
    const auto* field = !ec && v.is_object() ? v.as_object().if_contains(o_.page ? "page_url" : "url") : nullptr;
    if (field == nullptr || !field->is_string()) {
      p_.err("hls-url: the API's answer has no URL");
      return code(CtlExit::kUnreachable);
    }
    p_.out(printable(std::string(field->as_string())) + "\n");
    return code(CtlExit::kOk);
  }

  int reload() {
    int exit = 0;
    auto t = token("reload", exit);
    if (!t) return exit;
    auto a = call(http::verb::post, "/api/v1/reload", "", t, "reload", exit);
    if (!a) return exit;
    // A 200 from something else (a wrong --api) reloaded nothing.
    const auto parsed = parse_answer(*a, exit);
    if (!parsed) return exit;
    const json::value& v = *parsed;
    // Applied, but something did not follow: said, and not a success for a script (with
    // --json too).
    const json::value* warning = field(v, "warning");
    if (o_.json) {
      p_.out(a->body);
    } else {
      std::string line = "configuration reloaded";
      if (v.as_object().contains("channels") && v.as_object().at("channels").is_object()) {
        const auto& ch = v.as_object().at("channels").as_object();
        auto list = [&](const char* key) {
          std::string out;
          const auto* arr = ch.if_contains(key);
          if (arr == nullptr || !arr->is_array()) return out;
          for (const auto& id : arr->as_array())
            if (id.is_string()) out += (out.empty() ? "" : ",") + printable(std::string(id.as_string()));
          return out;
        };
        const auto count = [&](const char* key) {
          const auto* arr = ch.if_contains(key);
          return arr != nullptr && arr->is_array() ? arr->as_array().size() : 0;
        };
        line += ": " + std::to_string(count("added")) + " added, " + std::to_string(count("removed")) + " removed, " +
                std::to_string(count("restarted")) + " restarted, " +
                (count("updated") != 0 ? std::to_string(count("updated")) + " updated in place, " : std::string()) +
                std::to_string(count("unchanged")) + " unchanged";
        for (const char* key : {"added", "removed", "restarted", "updated"}) {
          if (count(key) != 0) line += "\n  " + std::string(key) + ": " + list(key);
        }
      }
      p_.out(line + "\n");
    }
    if (warning != nullptr && warning->is_string()) {
      p_.err("reload: warning: " + printable(std::string(warning->as_string())));
      return code(CtlExit::kRefused);
    }
    return code(CtlExit::kOk);
  }

  // The same output as `twincastd --check FILE`.
  int check(const std::string& file) {
    const auto result = load_config(file);
    if (!result.ok()) {
      std::string errors = format_errors(result.errors, file);
      std::fwrite(errors.data(), 1, errors.size(), stderr);
      return code(CtlExit::kRefused);
    }
    p_.out(file + ": OK (" + config_summary(*result.config) + ")\n");
    return code(CtlExit::kOk);
  }

  Options o_;
  Printer& p_;
  ApiAddress api_;
};

}  // namespace

int ctl_main(const std::vector<std::string>& args) {
  Printer p;
  auto o = parse_options(args, p);
  if (!o) return code(CtlExit::kUsage);
  if (o->help) {
    p.out(help_text());
    return code(CtlExit::kOk);
  }
  if (o->version) {
    p.out(std::string("twincastctl ") + TWINCAST_VERSION + "\n");
    return code(CtlExit::kOk);
  }
  if (o->words.empty()) {
    std::fputs(help_text().c_str(), stderr);
    return code(CtlExit::kUsage);
  }
  try {
    Ctl ctl(std::move(*o), p);
    return ctl.run();
  } catch (const std::exception& e) {
    p.err(std::string("internal error: ") + e.what());
    return code(CtlExit::kRefused);
  }
}

}  // namespace twincast::control
