#include "twincast/control/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

namespace twincast::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  // path starts with '/'
  std::size_t pos = 1;
  while (true) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) {
      segments.push_back(path.substr(pos));
      break;
    }
    segments.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return segments;
}

struct Route {
  std::string method;
  std::vector<std::string> segments;  // literal, or "{name}"
  HttpServer::Handler handler;
};

bool is_param(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// The first `n` decoded segments of the request path against a route; on a match, its
// {name} segments go to `params` (checked first, so a miss allocates nothing).
bool match(const Route& route, const std::vector<std::string>& segments, std::size_t n,
           std::map<std::string, std::string>& params) {
  if (route.segments.size() != n) return false;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& pattern = route.segments[i];
    if (is_param(pattern) ? segments[i].empty() : pattern != segments[i]) return false;
  }
  params.clear();
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& pattern = route.segments[i];
    if (is_param(pattern)) params[pattern.substr(1, pattern.size() - 2)] = segments[i];
  }
  return true;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "W/\"x\"" and "\"x\"" compare equal (weak comparison, RFC 9110 8.8.3.2).
std::string_view opaque_tag(std::string_view etag) {
  if (etag.size() >= 2 && etag[0] == 'W' && etag[1] == '/') etag.remove_prefix(2);
  return etag;
}

// If-None-Match: "*" or a comma-separated list of entity tags (which may hold commas).
bool if_none_match(std::string_view header, std::string_view etag) {
  std::string_view ours = opaque_tag(etag);
  std::size_t i = 0;
  while (i < header.size()) {
    char c = header[i];
    if (c == ' ' || c == '\t' || c == ',') {
      ++i;
      continue;
    }
    if (c == '*') return true;
    std::size_t start = i;
    if (c == 'W' && i + 1 < header.size() && header[i + 1] == '/') i += 2;
    if (i >= header.size() || header[i] != '"') return false;  // malformed: no match
    std::size_t close = header.find('"', i + 1);
    if (close == std::string_view::npos) return false;
    if (opaque_tag(header.substr(start, close + 1 - start)) == ours) return true;
    i = close + 1;
  }
  return false;
}

// Digits to a number, at most 10^18: a longer position is still a valid one, past the end
// of any body ("bytes=0-18446744073709551615" asks for everything). nullopt when empty or
// not all digits.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  constexpr std::uint64_t kMax = 1'000'000'000'000'000'000ULL;
  std::uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = std::min(kMax, v * 10 + static_cast<std::uint64_t>(c - '0'));
  }
  return v;
}

enum class RangeKind { kNone, kPartial, kUnsatisfiable };
struct ByteRange {
  RangeKind kind = RangeKind::kNone;
  std::size_t offset = 0;
  std::size_t length = 0;
};

// One "bytes=" range of a body of `total` bytes. kNone for anything malformed or for
// several ranges (answered with the whole body).
ByteRange parse_range(std::string_view header, std::size_t total) {
  header = trim(header);
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() < kUnit.size() || !iequals(header.substr(0, kUnit.size()), kUnit)) return {};
  std::string_view spec = trim(header.substr(kUnit.size()));
  if (spec.find(',') != std::string_view::npos) return {};
  std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  std::string_view first_text = trim(spec.substr(0, dash));
  std::string_view last_text = trim(spec.substr(dash + 1));
  const auto n = static_cast<std::uint64_t>(total);
  if (first_text.empty()) {  // -n: the last n bytes
    auto suffix = parse_u64(last_text);
    if (!suffix) return {};
    if (*suffix == 0 || n == 0) return {.kind = RangeKind::kUnsatisfiable};
    std::uint64_t len = std::min(*suffix, n);
    return {.kind = RangeKind::kPartial,
            .offset = static_cast<std::size_t>(n - len),
            .length = static_cast<std::size_t>(len)};
  }
  auto first = parse_u64(first_text);
  if (!first) return {};
  std::uint64_t last = n == 0 ? 0 : n - 1;
  if (!last_text.empty()) {
    auto l = parse_u64(last_text);
    if (!l || *l < *first) return {};
    last = std::min(*l, last);
  }
  if (*first >= n) return {.kind = RangeKind::kUnsatisfiable};
  return {.kind = RangeKind::kPartial, .offset = static_cast<std::size_t>(*first),
          .length = static_cast<std::size_t>(last - *first + 1)};
}

// The Date header's IMF-fixdate, formatted once per second per thread.
std::string_view http_date() {
  thread_local std::time_t cached = -1;
  thread_local std::array<char, 40> buf{};
  thread_local std::size_t n = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    n = std::strftime(buf.data(), buf.size(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = now;
  }
  return {buf.data(), n};
}

void append_number(std::string& out, std::uint64_t v) {
  std::array<char, 24> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  (void)ec;
  out.append(buf.data(), end);
}

// RFC 9110 5.6.2 tchar.
bool token_char(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A header the server may send: a token for a name, a value without CR, LF or NUL (so a
// handler's value cannot end the header and start another, or end the head).
bool valid_header(std::string_view name, std::string_view value) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), token_char)) return false;
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Appends "name: value\r\n"; a header that is not valid_header() is dropped.
void append_header(std::string& out, std::string_view name, std::string_view value) {
  if (!valid_header(name, value)) return;
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

// With the server's default headers: a browser player refused without its CORS header sees
// a network failure with no status, not a 503 to back off from.
std::string canned_503(const std::string& default_block) {
  HttpResponse r = json_error(503, "too many connections");
  return "HTTP/1.1 503 Service Unavailable\r\n" + default_block +
         "Content-Type: application/json\r\nConnection: close\r\n"
         "Content-Length: " +
         std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
}

// The first header of the request with this name (case-insensitive), or "".
std::string_view find_header(const HttpRequest& req, std::string_view name) {
  for (const auto& [k, v] : req.headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

// Framing is the server's: a handler's header of these names is not sent.
bool framing_header(std::string_view name) {
  return iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") || iequals(name, "Connection");
}

using Executor = asio::io_context::executor_type;
// Sockets and timers bound to one io_context's executor (no type-erased executor, no
// strand: each io_context is run by one thread, which serialises its connections).
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;

}  // namespace

bool percent_decode(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int hi = hex_value(s[i + 1]);
    int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return false;
    out += c;
    i += 2;
  }
  return true;
}

std::string HttpRequest::header(std::string_view name) const { return std::string(find_header(*this, name)); }

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b < 0x80 ? 1 : (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3 : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
    bool ok = n != 0 && i + n <= s.size();
    for (std::size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0U) == 0x80U;
    if (ok && n >= 3) {
      const auto b1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(b == 0xE0 && b1 < 0xA0) && !(b == 0xED && b1 > 0x9F) && !(b == 0xF0 && b1 < 0x90) && !(b == 0xF4 && b1 > 0x8F);
    }
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

HttpResponse json_error(unsigned status, std::string_view message) {
  boost::json::object o;
  o["error"] = valid_utf8(message);
  return HttpResponse{.status = status, .content_type = "application/json", .body = boost::json::serialize(o) + "\n"};
}

// ---------------------------------------------------------------------------------------

namespace http_internal {

class Session;

// The server's state; HttpServer::Impl is this (a named type so sessions can reach it).
// One io_context per thread: the acceptors run on the first, and each accepted connection
// is given to the next io_context in turn and stays there.
struct Core {
  explicit Core(HttpServerLimits l) : limits(l) {
    if (limits.threads == 0) limits.threads = 1;
    for (std::size_t i = 0; i < limits.threads; ++i) iocs.push_back(std::make_unique<asio::io_context>(1));
  }

  // Routes the request; `scratch` holds the decoded path segments (its strings reused).
  HttpResponse dispatch(HttpRequest& req, std::vector<std::string>& scratch) const;

  // Declared before the io_contexts: pending handlers (holding sessions) are destroyed with
  // them and still reach these.
  HttpServerLimits limits;
  std::vector<Route> routes;
  std::vector<std::pair<std::string, std::string>> default_headers;
  std::string default_block;  // default_headers rendered ("Name: value\r\n"...), at start()
  std::atomic<std::size_t> n_connections{0};
  std::mutex sessions_mutex;                  // sessions, for stop()
  std::unordered_set<Session*> sessions;
  std::vector<std::uint16_t> bound_ports;
  std::vector<std::unique_ptr<asio::io_context>> iocs;
  std::size_t next_ioc = 0;  // the acceptors' thread only
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  // One per acceptor: after a failed accept (EMFILE...) the next waits on it (kAcceptRetry).
  std::vector<std::unique_ptr<Timer>> accept_timers;
  std::atomic<std::uint64_t> accept_errors{0};  // written by the acceptors' thread only
  std::vector<std::thread> threads;
  bool started = false;
  bool stopped = false;
};

}  // namespace http_internal

struct HttpServer::Impl : http_internal::Core {
  using Core::Core;
};

namespace http_internal {

// One connection. Everything runs on its io_context's single thread. Deadlines: one timer
// per connection, never armed further ahead than the shorter of the two timeouts, so a new
// deadline (a store to deadline_) never needs the timer re-armed on the request path.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(http_internal::Core& server, Socket socket)
      : server_(server),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        // The bytes read and not yet parsed: a request's head and body limits are all the
        // parser ever needs at once (a body is consumed as it arrives). Unbounded, a line it
        // must see whole (a chunk header with an endless extension) grew until the timeout.
        buffer_(server.limits.max_header_bytes + server.limits.max_body_bytes) {
    server_.n_connections.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(server_.sessions_mutex);
      server_.sessions.insert(this);
    }
    beast::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      req_.remote = ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                                         : ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    tick_ = std::max(std::min(server_.limits.request_timeout, server_.limits.write_timeout),
                     std::chrono::milliseconds(1));
    head_.reserve(512);
  }
  ~Session() {
    {
      std::lock_guard lock(server_.sessions_mutex);
      server_.sessions.erase(this);
    }
    server_.n_connections.fetch_sub(1, std::memory_order_relaxed);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void run() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      self->deadline_ = std::chrono::steady_clock::now() + self->server_.limits.request_timeout;
      self->arm(self->deadline_);
      self->read();
    });
  }

  // Also called by HttpServer::stop() once the server's threads are joined.
  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    timer_.cancel();
  }

 private:
  using Clock = std::chrono::steady_clock;

  void set_deadline(Clock::duration d) {
    deadline_ = Clock::now() + d;
    if (deadline_ < armed_) arm(deadline_);  // only for the linger second
  }

  void arm(Clock::time_point at) {
    armed_ = at;
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) { self->on_timer(ec); });
  }

  void on_timer(beast::error_code ec) {
    if (ec == asio::error::operation_aborted || closed_) return;  // re-armed or closed
    const auto now = Clock::now();
    if (now >= deadline_) {
      close();  // the pending read or write completes with an error
      return;
    }
    arm(std::min(deadline_, now + tick_));
  }

  void read() {
    set_deadline(server_.limits.request_timeout);
    read_header();
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits.max_header_bytes));
    parser_->body_limit(server_.limits.max_body_bytes);
    // The head first: what it announces (its framing, Expect) is dealt with before the body.
    http::async_read_header(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_header(ec);
    });
  }

  // RFC 9112 2.2: empty lines before a request line are skipped (old clients end a POST
  // body with CRLF); Beast takes them for a method. True when some were dropped. Each retry
  // consumes bytes and the request's deadline still runs, so a stream of them ends there.
  bool skip_empty_lines() {
    const auto data = static_cast<const char*>(buffer_.data().data());
    std::size_t n = 0;
    while (n < buffer_.size() && (data[n] == '\r' || data[n] == '\n')) ++n;
    buffer_.consume(n);
    return n != 0;
  }

  void on_header(beast::error_code ec) {
    if (closed_) return;
    if (ec == http::error::bad_method && skip_empty_lines()) {
      read_header();
      return;
    }
    if (ec) {
      on_read(ec);
      return;
    }
    const auto& msg = parser_->get();
    // RFC 9112 6.3: a Transfer-Encoding that does not end in chunked leaves the length
    // unknown (Beast would fall back to Content-Length, or to no body): what a front-end
    // took for the body would be read here as the next request (request smuggling).
    if (msg.find(http::field::transfer_encoding) != msg.end() && !parser_->chunked()) {
      respond_error(400, "Transfer-Encoding must end with chunked");
      return;
    }
    if (parser_->is_done()) {  // no body (most requests): no second read
      on_read({});
      return;
    }
    // RFC 9110 10.1.1: the client holds its body back until "100 Continue" (curl for 1 s).
    // Not to HTTP/1.0, and not once the body is already arriving.
    if (msg.version() >= 11 && buffer_.size() == 0 && iequals(trim(msg[http::field::expect]), "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                          if (write_ec || self->closed_) {
                            self->close();
                            return;
                          }
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (closed_) return;
    if (ec == http::error::end_of_stream) {
      close();
      return;
    }
    if (ec == http::error::bad_version) {  // "HTTP/2.0" as text: a version, not a malformed request
      respond_error(505, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
      return;
    }
    if (ec == http::error::header_limit) {
      respond_error(431, "request header too large (limit " + std::to_string(server_.limits.max_header_bytes) +
                             " bytes)");
      return;
    }
    if (ec == http::error::body_limit) {
      respond_error(413, "request body too large (limit " + std::to_string(server_.limits.max_body_bytes) +
                             " bytes)");
      return;
    }
    if (ec && ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
      // A parse error (bad method, bad header, bad chunking...).
      respond_error(400, "malformed HTTP request");
      return;
    }
    if (ec) {  // timeout, reset, shutdown
      close();
      return;
    }
    // The request object is the connection's: its strings keep their capacity.
    auto& msg = parser_->get();
    HttpRequest& req = req_;
    req.method.assign(msg.method_string());
    req.target.assign(msg.target());
    req.path.clear();
    req.query.clear();
    req.params.clear();
    std::size_t n_headers = 0;
    for (const auto& field : msg) {
      if (n_headers == req.headers.size()) req.headers.emplace_back();
      req.headers[n_headers].first.assign(field.name_string());
      req.headers[n_headers].second.assign(field.value());
      ++n_headers;
    }
    req.headers.resize(n_headers);
    req.body = std::move(msg.body());
    // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request is framing an HTTP/1.0 hop may
    // not have shared: answered, then the connection is closed.
    const bool keep_alive =
        msg.keep_alive() && !(msg.version() < 11 && msg.find(http::field::transfer_encoding) != msg.end());
    const bool head = msg.method() == http::verb::head;
    const unsigned version = msg.version();

    HttpResponse res = server_.dispatch(req, segments_);
    write(std::move(res), &req, keep_alive, head, version);
  }

  void respond_error(unsigned status, const std::string& message) {
    write(json_error(status, message), nullptr, false, false, 11);
  }

  // `req` is null for errors found while reading (no conditional handling then). The
  // status line and headers are rendered into head_ and sent with the body (a slice of the
  // shared body, or the handler's own string) in one gathered write. A whole 1 KB playlist
  // request (read, parse, origin handler, this, send) costs ~8.5 us of server CPU, most
  // of it in the kernel: 112-118 k requests per CPU-second (bench/compare_nginx).
  void write(HttpResponse r, const HttpRequest* req, bool keep_alive, bool head, unsigned version) {
    if (r.shared_body) {
      shared_body_ = std::move(r.shared_body);
    } else {
      own_body_ = std::move(r.body);
      shared_body_.reset();
    }
    std::string_view data = shared_body_ ? shared_body_->view() : std::string_view(own_body_);
    const std::size_t total = data.size();
    std::size_t offset = 0;
    std::size_t length = total;
    unsigned status = r.status;
    bool unsatisfiable = false;
    const bool get_like = req != nullptr && (req->method == "GET" || req->method == "HEAD");
    if (get_like && status == 200) {
      const std::string_view inm = r.etag.empty() ? std::string_view{} : find_header(*req, "If-None-Match");
      const std::string_view range_header = r.ranges ? find_header(*req, "Range") : std::string_view{};
      if (!inm.empty() && if_none_match(inm, r.etag)) {
        status = 304;
      } else if (!range_header.empty()) {
        const std::string_view if_range = find_header(*req, "If-Range");
        if (if_range.empty() || (!r.etag.empty() && trim(if_range) == r.etag && r.etag.rfind("W/", 0) != 0)) {
          ByteRange range = parse_range(range_header, total);
          if (range.kind == RangeKind::kPartial) {
            status = 206;
            offset = range.offset;
            length = range.length;
          } else if (range.kind == RangeKind::kUnsatisfiable) {
            HttpResponse e = json_error(416, "range not satisfiable");
            status = 416;
            unsatisfiable = true;
            r.content_type = e.content_type;
            r.headers.emplace_back("Cache-Control", "no-store");
            shared_body_.reset();
            own_body_ = std::move(e.body);
            data = own_body_;
            offset = 0;
            length = own_body_.size();
          }
        }
      }
    }
    const bool no_body = status == 304 || status == 204 || status < 200;

    // A handler's header replaces a default one of the same name, and a later handler
    // header an earlier one; ETag, Accept-Ranges and Content-Range are the server's.
    const auto replaced_by_handler = [&r](std::string_view name) {
      return std::any_of(r.headers.begin(), r.headers.end(), [name](const auto& h) { return iequals(h.first, name); });
    };
    const bool send_accept_ranges = r.ranges && get_like;
    std::string& h = head_;
    h.clear();
    h += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    append_number(h, status);
    h += ' ';
    h += http::obsolete_reason(static_cast<http::status>(status));
    h += "\r\n";
    if (r.headers.empty()) {
      append_header(h, "Date", http_date());
      h += server_.default_block;
    } else {
      if (!replaced_by_handler("Date")) append_header(h, "Date", http_date());
      for (const auto& [k, v] : server_.default_headers) {
        if (!replaced_by_handler(k)) append_header(h, k, v);
      }
    }
    if (!r.content_type.empty() && status != 304 && !replaced_by_handler("Content-Type")) {
      append_header(h, "Content-Type", r.content_type);
    }
    for (std::size_t i = 0; i < r.headers.size(); ++i) {
      const auto& [k, v] = r.headers[i];
      if (framing_header(k) || (!r.etag.empty() && iequals(k, "ETag")) ||
          (send_accept_ranges && iequals(k, "Accept-Ranges")) ||
          ((status == 206 || unsatisfiable) && iequals(k, "Content-Range"))) {
        continue;
      }
      const bool later = std::any_of(r.headers.begin() + static_cast<std::ptrdiff_t>(i) + 1, r.headers.end(),
                                     [&k](const auto& other) { return iequals(other.first, k); });
      if (!later) append_header(h, k, v);
    }
    if (!r.etag.empty()) append_header(h, "ETag", r.etag);
    if (send_accept_ranges) append_header(h, "Accept-Ranges", "bytes");
    if (status == 206) {
      h += "Content-Range: bytes ";
      append_number(h, offset);
      h += '-';
      append_number(h, offset + length - 1);
      h += '/';
      append_number(h, total);
      h += "\r\n";
    } else if (unsatisfiable) {
      h += "Content-Range: bytes */";
      append_number(h, total);
      h += "\r\n";
    }
    if (version == 10) {
      if (keep_alive) h += "Connection: keep-alive\r\n";
    } else if (!keep_alive) {
      h += "Connection: close\r\n";
    }
    if (no_body) {
      length = 0;
    } else {
      h += "Content-Length: ";
      append_number(h, length);  // HEAD: the GET's length, no body
      h += "\r\n";
      if (head) length = 0;
    }
    h += "\r\n";

    close_after_ = !keep_alive;
    set_deadline(server_.limits.write_timeout);
    if (length != 0 && shared_body_ && shared_body_->fd() >= 0) {
      // From the memfd: the header (MSG_MORE), then sendfile(2) of the range.
      head_sent_ = 0;
      file_offset_ = static_cast<off_t>(offset);
      file_left_ = length;
      send_file();
      return;
    }
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(head_), asio::buffer(data.data() + offset, length)};
    // Each sendmsg() offered everything left, not asio's default 64 KiB slices (a 2 MB
    // segment would take 32 syscalls and as many wake-ups).
    const auto everything = [](const beast::error_code& ec, std::size_t) -> std::size_t {
      return ec ? 0 : std::numeric_limits<std::size_t>::max();
    };
    asio::async_write(socket_, buffers, everything, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  // Sends what is left of head_ and then of the memfd range, as far as the socket takes
  // it without blocking; waits for the socket to become writable and goes on. The socket
  // is non-blocking (asio's async operations set O_NONBLOCK as well).
  void send_file() {
    if (closed_) {
      on_write(asio::error::operation_aborted);
      return;
    }
    beast::error_code ec;
    socket_.native_non_blocking(true, ec);
    if (ec) {
      on_write(ec);
      return;
    }
    const int sock = socket_.native_handle();
    // After a send() / sendfile() that moved nothing: false when the connection waits for
    // the socket to drain or has failed (it is dealt with), true to try again (EINTR).
    const auto retry = [this](ssize_t n) {
      if (n < 0 && errno == EINTR) return true;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wait_writable();
      } else {
        on_write(beast::error_code(n < 0 ? errno : EPIPE, beast::system_category()));
      }
      return false;
    };
    while (head_sent_ < head_.size()) {
      const ssize_t n = ::send(sock, head_.data() + head_sent_, head_.size() - head_sent_, MSG_NOSIGNAL | MSG_MORE);
      if (n > 0) {
        head_sent_ += static_cast<std::size_t>(n);
      } else if (!retry(n)) {
        return;
      }
    }
    while (file_left_ > 0) {
      const ssize_t n = ::sendfile(sock, shared_body_->fd(), &file_offset_, file_left_);
      if (n > 0) {
        file_left_ -= static_cast<std::size_t>(n);
      } else if (!retry(n)) {
        return;
      }
    }
    on_write({});
  }

  void wait_writable() {
    socket_.async_wait(tcp::socket::wait_write, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->on_write(ec);
        return;
      }
      self->send_file();
    });
  }

  void on_write(beast::error_code ec) {
    shared_body_.reset();  // the store may free the segment now
    if (ec || closed_) {
      close();
      return;
    }
    if (close_after_) {
      linger();
      return;
    }
    read();
  }

  // Closing a socket with unread input sends a reset that can destroy the response in
  // flight (a 413 while the client still sends its body). So: half-close, then discard
  // what arrives for up to a second (or 256 KiB), then close.
  void linger() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      close();
      return;
    }
    set_deadline(std::chrono::seconds(1));
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(drain_buf_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->closed_ || self->drained_ > 256 * 1024) {
        self->close();
        return;
      }
      self->drain();
    });
  }

  http_internal::Core& server_;
  Socket socket_;
  Timer timer_;
  Clock::time_point deadline_{};
  Clock::time_point armed_{Clock::time_point::max()};
  Clock::duration tick_{};
  bool closed_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest req_;
  std::vector<std::string> segments_;  // dispatch's scratch
  std::string head_;                   // the response's status line and headers
  std::shared_ptr<const SharedBytes> shared_body_;
  std::string own_body_;
  std::size_t head_sent_ = 0;  // send_file(): of head_
  off_t file_offset_ = 0;      // send_file(): next byte of the memfd, and how many are left
  std::size_t file_left_ = 0;
  bool close_after_ = false;
  std::array<char, 4096> drain_buf_{};
  std::size_t drained_ = 0;
};

}  // namespace http_internal

namespace {

// Answers 503 to a connection over the cap, then closes it like Session::linger (so the
// unread request does not turn the close into a reset that eats the answer). At most 1 s.
class Rejecter : public std::enable_shared_from_this<Rejecter> {
 public:
  Rejecter(Socket socket, const std::string& default_block)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), text_(canned_503(default_block)) {}
  void run() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->start(); });
  }

 private:
  void start() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->close();
    });
    asio::async_write(socket_, asio::buffer(text_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->close();
        return;
      }
      beast::error_code ignored;
      self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
      self->drain();
    });
  }
  void drain() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->close();
        return;
      }
      self->drain();
    });
  }
  void close() {
    beast::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  Socket socket_;
  Timer timer_;
  std::string text_;
  std::array<char, 1024> buf_{};
};

// The pause after a failed accept. Accept errors (EMFILE, ENFILE, ENOBUFS...) are
// transient but retrying at once fails at once again (the pending connection stays queued),
// spinning the acceptors' thread, which also serves connections: wait, then accept again.
constexpr std::chrono::milliseconds kAcceptRetry{100};

void do_accept(http_internal::Core& server, Acceptor& acceptor, Timer& retry) {
  asio::io_context& target = *server.iocs[server.next_ioc];
  acceptor.async_accept(target, [&server, &acceptor, &retry](beast::error_code ec, Socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      server.accept_errors.fetch_add(1, std::memory_order_relaxed);
      retry.expires_after(kAcceptRetry);
      retry.async_wait([&server, &acceptor, &retry](beast::error_code wait_ec) {
        if (wait_ec == asio::error::operation_aborted || !acceptor.is_open()) return;
        do_accept(server, acceptor, retry);
      });
      return;
    }
    server.next_ioc = (server.next_ioc + 1) % server.iocs.size();
    if (server.n_connections.load(std::memory_order_relaxed) >= server.limits.max_connections) {
      std::make_shared<Rejecter>(std::move(socket), server.default_block)->run();
    } else {
      std::make_shared<http_internal::Session>(server, std::move(socket))->run();
    }
    do_accept(server, acceptor, retry);
  });
}

}  // namespace

HttpResponse http_internal::Core::dispatch(HttpRequest& req, std::vector<std::string>& scratch) const {
  std::string_view target = req.target;
  // RFC 9112 3.2.2: the absolute-form ("http://host:port/path?query", what a client sends
  // to a proxy) must be accepted; its authority is dropped, like the Host header is.
  for (const std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (target.size() < scheme.size() || !iequals(target.substr(0, scheme.size()), scheme)) continue;
    const std::size_t end = target.find_first_of("/?", scheme.size());
    target = end == std::string_view::npos ? std::string_view("/") : target.substr(end);
    if (target.front() == '?') {
      req.query.assign(target.substr(1));
      target = "/";
    }
    break;
  }
  std::size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  if (q != std::string_view::npos) req.query.assign(target.substr(q + 1));
  if (raw_path.empty() || raw_path.front() != '/') return json_error(400, "request target must be an absolute path");

  // Split and decode in place: segments [0, n) of `scratch`.
  std::size_t n = 0;
  std::size_t pos = 1;
  while (true) {
    const std::size_t slash = raw_path.find('/', pos);
    const std::string_view s = raw_path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (n == scratch.size()) scratch.emplace_back();
    if (!percent_decode(s, scratch[n])) return json_error(400, "malformed percent-encoding in the path");
    ++n;
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  req.path.clear();
  for (std::size_t i = 0; i < n; ++i) {
    req.path += '/';
    req.path += scratch[i];
  }

  const std::string_view method = req.method == "HEAD" ? std::string_view("GET") : std::string_view(req.method);
  bool path_matched = false;
  std::string allow;
  for (const Route& route : routes) {
    if (!match(route, scratch, n, req.params)) continue;
    path_matched = true;
    if (route.method == method) {
      try {
        return route.handler(req);
      } catch (const std::exception&) {
        // The message may hold anything (paths, values): it is not echoed.
        return json_error(500, "internal error");
      }
    }
    if (!allow.empty()) allow += ", ";
    allow += route.method;
    if (route.method == "GET") allow += ", HEAD";
  }
  req.params.clear();
  if (path_matched) {
    HttpResponse r = json_error(405, "method " + req.method + " not allowed here");
    r.headers.emplace_back("Allow", allow);
    return r;
  }
  return json_error(404, "no such resource");
}

HttpServer::HttpServer(HttpServerLimits limits) : impl_(std::make_unique<Impl>(limits)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::add_default_header(std::string name, std::string value) {
  if (impl_->started) throw std::logic_error("HttpServer: default headers must be added before start()");
  if (!valid_header(name, value)) {
    throw std::invalid_argument("default header '" + name + "': the name must be a token and the value hold no CR, LF or NUL");
  }
  impl_->default_headers.emplace_back(std::move(name), std::move(value));
}

void HttpServer::route(std::string method, std::string pattern, Handler handler) {
  if (impl_->started) throw std::logic_error("HttpServer: routes must be added before start()");
  if (pattern.empty() || pattern.front() != '/') throw std::invalid_argument("route pattern must start with '/'");
  Route r{.method = std::move(method), .segments = {}, .handler = std::move(handler)};
  for (std::string_view s : split_path(pattern)) r.segments.emplace_back(s);
  impl_->routes.push_back(std::move(r));
}

void HttpServer::listen(const std::string& address) {
  std::size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    throw std::invalid_argument("listen address '" + address + "': expected host:port");
  }
  std::string host = address.substr(0, colon);
  std::string port_text = address.substr(colon + 1);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) throw std::invalid_argument("listen address '" + address + "': bad [IPv6]");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    throw std::invalid_argument("listen address '" + address + "': write IPv6 addresses as [addr]:port");
  }
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(port_text, &used);
    if (used != port_text.size() || port > 65535) throw std::invalid_argument("port");
  } catch (const std::exception&) {
    throw std::invalid_argument("listen address '" + address + "': bad port '" + port_text + "'");
  }

  asio::io_context& ioc = *impl_->iocs.front();
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto results = resolver.resolve(host, port_text, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    throw std::invalid_argument("listen address '" + address + "': cannot resolve '" + host + "'");
  }
  tcp::endpoint ep = results.begin()->endpoint();
  auto acceptor = std::make_unique<Acceptor>(ioc.get_executor());
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("listen " + address + ": " + ec.message());
  impl_->bound_ports.push_back(acceptor->local_endpoint().port());
  impl_->accept_timers.push_back(std::make_unique<Timer>(ioc.get_executor()));
  impl_->acceptors.push_back(std::move(acceptor));
}

std::vector<std::uint16_t> HttpServer::ports() const { return impl_->bound_ports; }

void HttpServer::start() {
  if (impl_->started) return;
  impl_->started = true;
  for (const auto& [k, v] : impl_->default_headers) append_header(impl_->default_block, k, v);
  for (std::size_t i = 0; i < impl_->acceptors.size(); ++i) do_accept(*impl_, *impl_->acceptors[i], *impl_->accept_timers[i]);
  for (auto& ioc : impl_->iocs) {
    impl_->threads.emplace_back([&ioc] {
      // sendfile(2) to a socket the peer has closed raises SIGPIPE (it has no MSG_NOSIGNAL),
      // which would end the process: blocked on this thread, the call fails with EPIPE.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      auto guard = asio::make_work_guard(*ioc);  // a thread with no connection yet keeps running
      ioc->run();
    });
  }
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  for (auto& ioc : impl_->iocs) ioc->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  beast::error_code ec;
  for (auto& acceptor : impl_->acceptors) acceptor->close(ec);
  for (auto& timer : impl_->accept_timers) timer->cancel();
  // No thread runs the io_contexts now: close every connection from here.
  std::lock_guard lock(impl_->sessions_mutex);
  for (auto* session : impl_->sessions) session->close();
}

std::size_t HttpServer::connections() const { return impl_->n_connections.load(std::memory_order_relaxed); }

std::uint64_t HttpServer::accept_errors() const { return impl_->accept_errors.load(std::memory_order_relaxed); }

}  // namespace twincast::control
