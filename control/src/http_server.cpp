#include "twincast/control/http_server.hpp"

#include <array>
#include <atomic>
#include <ctime>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_set>

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

// Percent-decodes one path segment; nullopt for a malformed escape or a NUL.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_value(s[i + 1]);
    int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return std::nullopt;
    out += c;
    i += 2;
  }
  return out;
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

bool match(const Route& route, const std::vector<std::string>& segments, std::map<std::string, std::string>& params) {
  if (route.segments.size() != segments.size()) return false;
  std::map<std::string, std::string> found;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string& pattern = route.segments[i];
    if (is_param(pattern)) {
      if (segments[i].empty()) return false;
      found[pattern.substr(1, pattern.size() - 2)] = segments[i];
    } else if (pattern != segments[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

// A response body that is a slice of a shared immutable string: a segment held by the
// store is written to the socket from where it lies, and a 206 sends only its slice.
struct SharedSliceBody {
  struct value_type {
    std::shared_ptr<const std::string> data;
    std::size_t offset = 0;
    std::size_t length = 0;  // 0: nothing is written (HEAD, 304...)
  };
  static std::uint64_t size(const value_type& v) { return v.length; }

  class writer {
   public:
    using const_buffers_type = asio::const_buffer;
    template <bool kIsRequest, class Fields>
    writer(const http::header<kIsRequest, Fields>&, const value_type& v) : v_(v) {}
    void init(beast::error_code& ec) { ec = {}; }
    boost::optional<std::pair<const_buffers_type, bool>> get(beast::error_code& ec) {
      ec = {};
      if (sent_ || v_.length == 0 || !v_.data) return boost::none;
      sent_ = true;
      return std::make_pair(const_buffers_type(v_.data->data() + v_.offset, v_.length), false);
    }

   private:
    const value_type& v_;
    bool sent_ = false;
  };
};

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

// Digits to a number; nullopt when empty, not all digits or above 2^62.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
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

// An IMF-fixdate for the Date header.
std::string http_date() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::array<char, 40> buf{};
  std::size_t n = std::strftime(buf.data(), buf.size(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf.data(), n);
}

std::string canned_503() {
  HttpResponse r = json_error(503, "too many connections");
  return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
         "Content-Length: " +
         std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

HttpResponse json_error(unsigned status, std::string_view message) {
  boost::json::object o;
  o["error"] = message;
  return HttpResponse{.status = status, .content_type = "application/json", .body = boost::json::serialize(o) + "\n"};
}

// ---------------------------------------------------------------------------------------

namespace http_internal {

class Session;

// The server's state; HttpServer::Impl is this (a named type so sessions can reach it).
struct Core {
  explicit Core(HttpServerLimits l) : limits(l) {}

  HttpResponse dispatch(HttpRequest& req) const;

  // Declared before ioc: pending handlers (holding sessions) are destroyed with ioc and
  // still reach these.
  HttpServerLimits limits;
  std::vector<Route> routes;
  std::vector<std::pair<std::string, std::string>> default_headers;
  std::atomic<std::size_t> n_connections{0};
  std::mutex sessions_mutex;                  // sessions, for stop()
  std::unordered_set<Session*> sessions;
  std::vector<std::uint16_t> bound_ports;
  asio::io_context ioc;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<std::thread> threads;
  bool started = false;
  bool stopped = false;
};

}  // namespace http_internal

struct HttpServer::Impl : http_internal::Core {
  using Core::Core;
};

namespace http_internal {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(http_internal::Core& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {
    server_.n_connections.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(server_.sessions_mutex);
      server_.sessions.insert(this);
    }
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      remote_ = ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                                     : ep.address().to_string() + ":" + std::to_string(ep.port());
    }
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
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

  // Also called by HttpServer::stop() once the server's threads are joined.
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits.max_header_bytes));
    parser_->body_limit(server_.limits.max_body_bytes);
    stream_.expires_after(server_.limits.request_timeout);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) {
      close();
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
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.remote = remote_;
    for (const auto& field : msg) req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    req.body = std::move(msg.body());
    bool keep_alive = msg.keep_alive();
    bool head = msg.method() == http::verb::head;
    unsigned version = msg.version();

    HttpResponse res = server_.dispatch(req);
    write(std::move(res), &req, keep_alive, head, version);
  }

  void respond_error(unsigned status, const std::string& message) {
    write(json_error(status, message), nullptr, false, false, 11);
  }

  // `req` is null for errors found while reading (no conditional handling then).
  void write(HttpResponse r, const HttpRequest* req, bool keep_alive, bool head, unsigned version) {
    std::shared_ptr<const std::string> data =
        r.shared_body ? std::move(r.shared_body) : std::make_shared<const std::string>(std::move(r.body));
    const std::size_t total = data->size();
    std::size_t offset = 0;
    std::size_t length = total;
    unsigned status = r.status;
    std::string content_range;
    const bool get_like = req != nullptr && (req->method == "GET" || req->method == "HEAD");
    if (get_like && status == 200) {
      if (!r.etag.empty() && !req->header("If-None-Match").empty() &&
          if_none_match(req->header("If-None-Match"), r.etag)) {
        status = 304;
      } else if (r.ranges && !req->header("Range").empty()) {
        std::string if_range = req->header("If-Range");
        if (if_range.empty() || (!r.etag.empty() && trim(if_range) == r.etag && r.etag.rfind("W/", 0) != 0)) {
          ByteRange range = parse_range(req->header("Range"), total);
          if (range.kind == RangeKind::kPartial) {
            status = 206;
            offset = range.offset;
            length = range.length;
            content_range = "bytes " + std::to_string(offset) + "-" + std::to_string(offset + length - 1) + "/" +
                            std::to_string(total);
          } else if (range.kind == RangeKind::kUnsatisfiable) {
            HttpResponse e = json_error(416, "range not satisfiable");
            status = 416;
            r.content_type = e.content_type;
            r.headers.emplace_back("Cache-Control", "no-store");
            data = std::make_shared<const std::string>(std::move(e.body));
            length = data->size();
            content_range = "bytes */" + std::to_string(total);
          }
        }
      }
    }
    const bool no_body = status == 304 || status == 204 || status < 200;

    res_ = {};
    res_.version(version == 10 ? 10 : 11);
    res_.result(status);
    res_.set(http::field::date, http_date());
    for (const auto& [k, v] : server_.default_headers) res_.set(k, v);
    if (!r.content_type.empty() && status != 304) res_.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res_.set(k, v);
    if (!r.etag.empty()) res_.set(http::field::etag, r.etag);
    if (r.ranges && get_like) res_.set(http::field::accept_ranges, "bytes");
    if (!content_range.empty()) res_.set(http::field::content_range, content_range);
    res_.keep_alive(keep_alive);
    if (no_body) {
      res_.body() = {};
    } else {
      res_.content_length(length);  // HEAD: the GET's length, no body
      if (head) length = 0;
      res_.body() = SharedSliceBody::value_type{.data = std::move(data), .offset = offset, .length = length};
    }
    close_after_ = !keep_alive;
    stream_.expires_after(server_.limits.write_timeout);
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    if (ec) {
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
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      close();
      return;
    }
    stream_.expires_after(std::chrono::seconds(1));
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(drain_buf_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > 256 * 1024) {
        self->close();
        return;
      }
      self->drain();
    });
  }

  http_internal::Core& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<SharedSliceBody> res_;
  bool close_after_ = false;
  std::string remote_;
  std::array<char, 4096> drain_buf_{};
  std::size_t drained_ = 0;
};

}  // namespace http_internal

namespace {

// Answers 503 to a connection over the cap, then closes it like Session::linger (so the
// unread request does not turn the close into a reset that eats the answer). At most 1 s.
class Rejecter : public std::enable_shared_from_this<Rejecter> {
 public:
  explicit Rejecter(tcp::socket socket) : socket_(std::move(socket)), timer_(socket_.get_executor()) {}
  void run() {
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

 private:
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

  tcp::socket socket_;
  asio::steady_timer timer_;
  std::string text_ = canned_503();
  std::array<char, 1024> buf_{};
};

void do_accept(http_internal::Core& server, tcp::acceptor& acceptor) {
  acceptor.async_accept(asio::make_strand(server.ioc), [&server, &acceptor](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (server.n_connections.load(std::memory_order_relaxed) >= server.limits.max_connections) {
        std::make_shared<Rejecter>(std::move(socket))->run();
      } else {
        std::make_shared<http_internal::Session>(server, std::move(socket))->run();
      }
    }
    // Accept errors (EMFILE...) are transient: keep accepting.
    do_accept(server, acceptor);
  });
}

}  // namespace

HttpResponse http_internal::Core::dispatch(HttpRequest& req) const {
  std::string_view target = req.target;
  std::size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  if (raw_path.empty() || raw_path.front() != '/') return json_error(400, "request target must be an absolute path");

  std::vector<std::string> segments;
  for (std::string_view s : split_path(raw_path)) {
    auto decoded = percent_decode(s);
    if (!decoded) return json_error(400, "malformed percent-encoding in the path");
    segments.push_back(std::move(*decoded));
  }
  req.path.clear();
  for (const auto& s : segments) req.path += "/" + s;

  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  bool path_matched = false;
  std::string allow;
  for (const Route& route : routes) {
    std::map<std::string, std::string> params;
    if (!match(route, segments, params)) continue;
    path_matched = true;
    if (route.method == method) {
      req.params = std::move(params);
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
  if (path_matched) {
    HttpResponse r = json_error(405, "method " + req.method + " not allowed here");
    r.headers.emplace_back("Allow", allow);
    return r;
  }
  return json_error(404, "no such resource");
}

HttpServer::HttpServer(HttpServerLimits limits) : impl_(std::make_unique<Impl>(limits)) {
  if (limits.threads == 0) impl_->limits.threads = 1;
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::add_default_header(std::string name, std::string value) {
  if (impl_->started) throw std::logic_error("HttpServer: default headers must be added before start()");
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

  tcp::resolver resolver(impl_->ioc);
  beast::error_code ec;
  auto results = resolver.resolve(host, port_text, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    throw std::invalid_argument("listen address '" + address + "': cannot resolve '" + host + "'");
  }
  tcp::endpoint ep = results.begin()->endpoint();
  auto acceptor = std::make_unique<tcp::acceptor>(impl_->ioc);
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("listen " + address + ": " + ec.message());
  impl_->bound_ports.push_back(acceptor->local_endpoint().port());
  impl_->acceptors.push_back(std::move(acceptor));
}

std::vector<std::uint16_t> HttpServer::ports() const { return impl_->bound_ports; }

void HttpServer::start() {
  if (impl_->started) return;
  impl_->started = true;
  for (auto& acceptor : impl_->acceptors) do_accept(*impl_, *acceptor);
  for (std::size_t i = 0; i < impl_->limits.threads; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  beast::error_code ec;
  for (auto& acceptor : impl_->acceptors) acceptor->close(ec);
  // No thread runs the io_context now: close every connection from here.
  std::lock_guard lock(impl_->sessions_mutex);
  for (auto* session : impl_->sessions) session->close();
}

std::size_t HttpServer::connections() const { return impl_->n_connections.load(std::memory_order_relaxed); }

}  // namespace twincast::control
