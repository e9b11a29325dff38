// The management REST API (/api/v1/...) and the Prometheus /metrics endpoint, over an
// abstract data source (ApiBackend) that the appliance implements.
//
//   GET  /api/v1/health                 {"status":"ok","channels":N,"channels_alarmed":K}
//   GET  /api/v1/channels               every channel: state, active input, bitrates, alarms
//   GET  /api/v1/channels/{id}          one channel: inputs (TR 101 290, MDI, SRT), outputs, HLS
//   POST /api/v1/channels/{id}/switch   body {"input":"<input id>"}          (bearer token)
//   POST /api/v1/reload                 re-read the configuration            (bearer token)
//   POST /api/v1/channels/{id}/hls-url  a signed HLS URL: body {"ttl_s":3600,"client":"10.0.0.7"}
//                                       (both optional; or ?ttl_s=&client=)   (bearer token)
//                                       -> {"channel","url","page_url","token","expires"}
//   GET  /lineup/iptv.m3u               the multicast lineup (udp://@ or rtp://@group:port), LCN order
//   GET  /lineup/ott.m3u                the HLS lineup (master playlist URLs), LCN order
//   GET  /metrics                       Prometheus text format 0.0.4 (its own listen address)
//
// Errors are {"error":"..."}: 400 bad body, 401 no/wrong token, 404 unknown channel,
// 405 wrong method, 409 the backend refused, 413 body too large, 500 handler failure.
// Secrets: the token is never echoed, and every response body has the token and the
// backend's secrets() replaced by "***" (in case an error message carries one).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "twincast/control/http_server.hpp"
#include "twincast/control/metrics.hpp"
#include "twincast/dataplane/pacing.hpp"
#include "twincast/mpegts/analyzer.hpp"

namespace twincast::control {

struct ApiSrtView {
  bool connected = false;
  double rtt_ms = 0;
  std::uint64_t lost = 0;           // packets the receiver found missing
  std::uint64_t retransmitted = 0;  // retransmitted packets received
  std::uint64_t recovered = 0;      // losses repaired in time
  std::uint64_t dropped = 0;        // never delivered (too late)
  std::uint64_t ring_drops = 0;     // SRT messages the data plane's input ring had no room for
};

// An RTP input's reordering window (counted in datagrams).
struct ApiRtpView {
  std::uint64_t reordered = 0;   // arrived out of order and put back in place
  std::uint64_t lost = 0;        // gaps the window gave up on
  std::uint64_t duplicates = 0;  // dropped as already received (or too late)
};

struct ApiInputView {
  std::string id;    // input name, unique in its channel (a received rendition r's: "r.<input>")
  std::string kind;  // "udp", "rtp", "srt"
  bool active = false;
  std::string state;  // e.g. "ok", "down" (backend's words)
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  double bitrate_bps = 0;
  std::uint64_t bitrate_ceiling_bps = 0;  // the configured alarm ceiling (max_bitrate_bps), 0 = none
  bool over_ceiling = false;              // bitrate_bps is above it (an alarm)
  std::array<std::uint64_t, mpegts::kCheckCount> tr101290{};  // by mpegts::Check
  bool mdi_valid = false;
  double mdi_df_ms = 0;
  double mdi_mlr = 0;  // packets lost per second
  // PCR timing over the last MDI interval: overall jitter (PCR_OJ, against arrival times),
  // and accuracy (PCR_AC, against byte positions) when the stream is constant-rate.
  std::optional<double> pcr_jitter_s;
  std::optional<double> pcr_accuracy_s;
  std::optional<double> last_packet_age_s;  // nullopt: nothing received yet
  std::optional<ApiSrtView> srt;            // SRT inputs only
  std::optional<ApiRtpView> rtp;            // RTP inputs only
};

// Pacing lateness: how late datagrams left compared to their due time. Upper bounds in
// seconds; a backend fills per-bucket counts (not cumulative), the last one +Inf.
inline constexpr std::array<double, 8> kPacingLatenessBuckets = dataplane::kPacingLatenessBoundsSeconds;

struct ApiOutputView {
  std::string id;           // "group:port", e.g. "239.1.1.1:5000"
  bool rtp = false;         // TS in RTP (an `rtp:` output): rtp://, not udp://, for players
  std::uint64_t datagrams = 0;
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t dropped = 0;      // datagrams dropped on the way to the port (no mbuf, no ARP answer, TX refused)
  std::uint64_t queue_drops = 0;  // packets lost at its schedule's full queue (the pacer fell behind)
  std::optional<std::array<std::uint64_t, kPacingLatenessBuckets.size() + 1>> pacing_lateness;
  double pacing_lateness_sum_s = 0;
};

struct ApiHlsView {
  bool enabled = false;
  std::string state;  // backend's words, e.g. "serving", "stalled"
  std::string url;    // the master playlist's public URL (lineups, players)
  std::uint64_t segments = 0;
  double last_segment_age_s = 0;
  // The data plane's OTT feed (the ring from the channel to the packager).
  std::uint64_t feed_packets = 0;          // TS packets queued for the packager
  std::uint64_t feed_dropped_packets = 0;  // lost because the ring was full (packager behind)
  bool shed = false;                       // the data plane shed this channel's OTT (overload, low priority)
  // The origin's traffic for the channel (HlsChannelTraffic).
  std::uint64_t playlist_requests = 0;
  std::uint64_t segment_requests = 0;
  std::uint64_t bytes_served = 0;
  std::uint64_t viewers = 0;
  // The packager's store (HlsChannelStats): segment bytes in memory and, with ott.dvr_dir, on
  // disk; writes to dvr_dir that failed; time from the oldest held segment to the newest.
  std::uint64_t memory_bytes = 0;
  std::uint64_t disk_bytes = 0;
  std::uint64_t dvr_write_errors = 0;
  std::uint64_t dvr_reads_refused = 0;  // on-disk segments refused (404): disk read bytes over their cap
  double held_seconds = 0;
  // Requests refused for want of a valid token (signed URLs), by reason (hls_denial_name).
  std::vector<std::pair<std::string, std::uint64_t>> refused;
};

// What the channel's remux dropped or flagged (dataplane::ChannelStats).
struct ApiRemuxView {
  std::uint64_t dropped_by_rule = 0;         // packets of PIDs the service's rules drop
  std::uint64_t dropped_resync = 0;          // packets before the first unit start (video: keyframe) after a switch
  std::uint64_t dropped_sync = 0;            // packets whose sync byte was corrupted (Sync_byte_error)
  std::uint64_t discontinuities_marked = 0;  // discontinuity_indicators set: switches, reloads, unflagged jumps
  std::uint64_t eit_dropped = 0;             // EIT sections lost at a full EIT queue
};

struct ApiChannelView {
  std::string id;
  std::string name;
  std::uint16_t lcn = 0;     // logical channel number, 0 = none
  std::string state;         // backend's words: "ok", "degraded", "down"...
  std::string active_input;  // input id, "" when none
  double bitrate_bps = 0;    // output bitrate
  std::uint64_t packets_in = 0;
  std::uint64_t packets_out = 0;
  std::uint64_t switches = 0;
  ApiRemuxView remux;
  std::vector<std::string> alarms;
  std::vector<ApiInputView> inputs;
  std::vector<ApiOutputView> outputs;
  ApiHlsView hls;
};

// A multiplex: an MPTS made of member channels, with outputs of its own.
struct ApiMultiplexView {
  std::string id;
  std::vector<std::string> channels;  // member channel ids, in program order
  std::uint64_t packets_in = 0;       // remuxed packets of the members
  std::uint64_t packets_out = 0;      // media and PSI packets sent (null stuffing not counted)
  std::uint64_t datagrams_out = 0;
  std::uint64_t queue_drops = 0;      // packets lost at full output queues, each once (cbr_bps too low?)
  std::vector<ApiOutputView> outputs;
};

struct ApiPortView {
  std::string id;
  std::uint64_t rx_packets = 0;
  std::uint64_t tx_packets = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t rx_missed = 0;   // imissed: the NIC had no room
  std::uint64_t rx_nombuf = 0;   // rx_nombuf: no mbuf for a received packet
  // Frames the data plane dropped on the port, by reason (dataplane::drop_reason_name:
  // malformed ... ts_sync for what it received, tx_* for what it could not send); every
  // reason, zero or not, in the data plane's order.
  std::vector<std::pair<std::string, std::uint64_t>> drops;
};

// The packet worker (dataplane::WorkerStats, QosStats).
struct ApiWorkerView {
  unsigned lcore = 0;
  double poll_seconds = 0;     // in its poll loop since start
  double busy_seconds = 0;     // of which in turns that moved a packet
  std::uint64_t overload_windows = 0;  // 100 ms windows it found itself behind
  unsigned ott_shed_tiers = 0;         // HLS priority tiers shed now
};

// A signed HLS URL (hls_auth.hpp), or why there is none.
struct ApiHlsUrl {
  std::optional<std::string> error;  // e.g. the channel's HLS is not signed (409)
  std::string url;                   // <public base>/hls/<id>/index.m3u8?token=<token>
  std::string page_url;              // <public base>/?channel=<id>&token=<token> (the web page)
  std::string token;
  std::int64_t expires = 0;          // Unix seconds
};

// What a reload did: refused (error set; the running configuration stays) or applied,
// with the channels by what happened to them.
struct ApiReloadResult {
  std::optional<std::string> error;
  std::optional<std::string> warning;  // applied, but something did not follow (JSON "warning")
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::vector<std::string> restarted;  // changed (or members of a changed multiplex)
  std::vector<std::string> updated;    // outputs moved or renamed: kept running, not restarted
  std::vector<std::string> unchanged;
};

// What the API reads and commands. Called on the HTTP servers' threads: the API server's
// and the metrics server's may call at the same time, so every method must be thread-safe
// (snapshots of one-writer counters, commands handed to their owners).
class ApiBackend {
 public:
  virtual ~ApiBackend() = default;
  virtual std::vector<ApiChannelView> channels() = 0;
  virtual std::vector<ApiPortView> ports() = 0;
  // The multiplexes (none by default: a backend without any).
  virtual std::vector<ApiMultiplexView> multiplexes() { return {}; }
  // The packet workers (none: no data plane behind this backend).
  virtual std::vector<ApiWorkerView> workers() { return {}; }
  // Makes `input` the active input of `channel`; an error message or nullopt (refused: an
  // input that is down or has no signal, which the selector would leave again at once).
  virtual std::optional<std::string> switch_input(const std::string& channel, const std::string& input) = 0;
  // Re-reads the configuration and applies the difference.
  virtual ApiReloadResult reload() = 0;
  // Values that must never appear in a response (SRT passphrases, keys).
  virtual std::vector<std::string> secrets() { return {}; }
  // A signed URL of `channel` (known to channels()) valid for `ttl_s` seconds, bound to
  // `client` when not empty.
  virtual ApiHlsUrl hls_url(const std::string& channel, std::int64_t ttl_s, const std::string& client) {
    (void)channel, (void)ttl_s, (void)client;
    return ApiHlsUrl{.error = "signed HLS URLs are not supported here"};
  }
};

struct ApiOptions {
  // The bearer token for POSTs, read at each mutating request (so it can be rotated); its
  // content up to trailing whitespace. Missing, empty or shorter than 16 characters:
  // mutating calls answer 401.
  std::filesystem::path token_file;
};

class Api {
 public:
  // Registers the twincast_* metric families in `registry` and a collector that refreshes
  // them from `backend` before each render. `backend` and `registry` outlive the Api.
  Api(ApiBackend& backend, metrics::Registry& registry, ApiOptions options);
  ~Api();  // removes the collector
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // The /api/v1 routes.
  void add_routes(HttpServer& server);
  // GET /metrics.
  void add_metrics_route(HttpServer& server);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
