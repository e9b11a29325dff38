// Shared by the HTTP tests (api_test, hls_origin_test, cdn_cache_test): one response read
// off a Beast stream into plain values. Header-only.
#pragma once

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace twincast::test {

struct HttpReply {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  bool keep_alive = false;
  // A header's value, or "<absent>".
  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string("<absent>") : it->second;
  }
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Reads one response from `stream` (bodies up to 64 MB; `head`: the answer to a HEAD, no body).
template <class Stream>
HttpReply read_reply(Stream& stream, boost::beast::flat_buffer& buffer, bool head) {
  namespace http = boost::beast::http;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  parser.skip(head);
  http::read(stream, buffer, parser);
  const auto& res = parser.get();
  HttpReply r;
  r.status = res.result_int();
  r.body = res.body();
  r.keep_alive = res.keep_alive();
  for (const auto& f : res) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    r.headers[name] = std::string(f.value());
  }
  return r;
}

}  // namespace twincast::test
