// A small HTTP/1.1 server over Boost.Beast for the REST API and /metrics: its own
// io_context thread(s), IPv4/IPv6 listen addresses, keep-alive, a router (method + path
// pattern with {name} segments), HEAD for every GET route, and limits so that slow or
// greedy clients cannot starve the others (header and body size, a deadline per request,
// a connection cap). Errors are JSON: {"error": "..."} with the matching status code.
//
// Handlers run on the server's thread(s) and must not block for long: with the default
// single thread, a handler that takes 100 ms delays every other request by as much. With
// several threads (HttpServerLimits::threads), each runs its own io_context and a connection
// stays on the thread it was given at accept (round-robin): handlers run concurrently for
// different connections, in order for one connection.
//
// Responses are rendered by hand (status line and headers into a buffer the connection
// reuses) and written with the body in one gathered write; Beast only parses requests
// (pipelined requests are answered in order). The head is read first: "Expect:
// 100-continue" gets its 100 before the body is read, and a Transfer-Encoding that does not
// end in chunked is a 400 that closes the connection (RFC 9112 6.3: no reliable length).
//
// Generic HTTP semantics a handler opts into through its HttpResponse (the HLS origin uses
// them; the API does not): a shared immutable body sent without copying (from a memfd with
// sendfile(2): the kernel passes its pages to the socket), a strong ETag with
// If-None-Match -> 304, single byte ranges (Range / If-Range -> 206, 416). Every response
// carries a Date header and the server's default headers (add_default_header, e.g. CORS).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "twincast/control/shared_bytes.hpp"

namespace twincast::control {

struct HttpRequest {
  std::string method;                         // "GET", "POST", ... (HEAD arrives as "HEAD")
  std::string target;                         // as sent: path and query
  std::string path;                           // percent-decoded path
  std::string query;                          // after '?', not decoded
  std::map<std::string, std::string> params;  // {name} segments of the route pattern
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote;                         // peer address:port

  // The first header with this name (case-insensitive), or "".
  [[nodiscard]] std::string header(std::string_view name) const;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";  // "": no Content-Type header
  std::string body;
  // Extra headers. One whose name is not an RFC 9110 token, or whose value holds CR, LF or
  // NUL, is not sent (so a value cannot inject a header); the same holds for content_type
  // and etag.
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, sent instead of `body`, without a copy (HLS segments shared with the store);
  // bytes in a memfd (SharedBytes::fd()) go out with sendfile(2), header first.
  std::shared_ptr<const SharedBytes> shared_body;
  // A strong validator, quoted ("\"s42-1a2b\""): sent as ETag; for a 200 answer to GET or
  // HEAD whose If-None-Match matches it (weak comparison, or "*"), the server answers 304
  // with the headers and no body.
  std::string etag;
  // For a 200 answer to GET or HEAD: Accept-Ranges: bytes, and a single byte range in Range
  // (bytes=a-b, a-, -n; honoured only when If-Range is absent or equals `etag`) is answered
  // 206 with Content-Range, an unsatisfiable one 416 with Content-Range: bytes */size.
  // Several ranges, or a malformed Range, get the whole body (200), as RFC 9110 allows.
  bool ranges = false;
};

// {"error": message} with `status`.
[[nodiscard]] HttpResponse json_error(unsigned status, std::string_view message);

// `s` with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD
// (JSON must be UTF-8; a message may echo a percent-decoded path, a name may be Latin-1).
[[nodiscard]] std::string valid_utf8(std::string_view s);

// Percent-decodes a path segment or query value into `out` (its capacity reused); false
// for a malformed escape or a NUL. '+' stays '+'.
[[nodiscard]] bool percent_decode(std::string_view s, std::string& out);

struct HttpServerLimits {
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 64 * 1024;
  // A connection must deliver each whole request within this time, counted from the end
  // of the previous response (so it also closes idle keep-alive connections).
  std::chrono::milliseconds request_timeout{10'000};
  // Writing one response (a client that does not read is dropped after this).
  std::chrono::milliseconds write_timeout{10'000};
  // Connections above this are answered 503 and closed at once.
  std::size_t max_connections = 512;
  std::size_t threads = 1;  // 0 is taken as 1
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  explicit HttpServer(HttpServerLimits limits = {});
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes are added before start(). `pattern` is an absolute path whose segments are
  // literal or {name} (matches one non-empty segment, percent-decoded, into params).
  // A GET route also answers HEAD. A path that matches with another method is a 405.
  void route(std::string method, std::string pattern, Handler handler);

  // A header sent on every response, errors included (before start()). A handler's header
  // of the same name replaces it. Throws std::invalid_argument when the name is not a token
  // or the value holds CR, LF or NUL.
  void add_default_header(std::string name, std::string value);

  // Binds "host:port": "127.0.0.1:8080", "[::1]:0", "0.0.0.0:9100", "[::]:80",
  // "localhost:8080". Port 0 picks a free port (see ports()). Throws std::invalid_argument
  // for a malformed address and std::runtime_error when binding fails.
  void listen(const std::string& address);
  // The bound ports, in the order of listen().
  [[nodiscard]] std::vector<std::uint16_t> ports() const;

  void start();
  // Closes the listeners and every connection, joins the threads. Idempotent.
  void stop();

  // Connections open now (for tests and the status line).
  [[nodiscard]] std::size_t connections() const;
  // Failed accepts so far (EMFILE, ENFILE...). After one, the listener waits 100 ms before
  // accepting again (retrying at once would fail at once and spin a thread): at most ~10 a
  // second per listener while descriptors are exhausted.
  [[nodiscard]] std::uint64_t accept_errors() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
