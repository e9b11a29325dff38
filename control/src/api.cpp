#include "twincast/control/shared_bytes.hpp"
#include "twincast/control/api.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <fstream>
#include <sstream>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>

namespace twincast::control {

namespace json = boost::json;
using metrics::Counter;
using metrics::Family;
using metrics::Gauge;
using metrics::Histogram;
using metrics::Labels;

namespace {

constexpr std::size_t kMinTokenLength = 16;

json::value number(double v) {
  if (!std::isfinite(v)) return nullptr;
  return v;
}

// Boost.JSON copies a string's bytes as they are: a name that is not UTF-8 (a channel map
// saved in Latin-1) would make the whole answer invalid JSON (RFC 8259 8.1).
std::string to_body(const json::value& v) { return valid_utf8(json::serialize(v)) + "\n"; }

HttpResponse json_ok(const json::value& v, unsigned status = 200) {
  return HttpResponse{.status = status, .content_type = "application/json", .body = to_body(v)};
}

// Replaces every secret in `body` by "***", each in its three spellings (raw, JSON-escaped,
// and as to_body makes it UTF-8). Secrets shorter than 4 characters are not redacted (they
// would shred the body). One pass over the body, whatever the number of secrets: a scan
// per secret took a 500-channel /metrics with a passphrase per SRT input (1000 secrets)
// from ~50 ms to seconds (api_test MetricsCost.ScrubbingManySecretsKeepsAScrapeCheap).
void redact(std::string& body, const std::vector<std::string>& secrets) {
  std::unordered_set<std::string> spellings;
  for (const std::string& secret : secrets) {
    if (secret.size() < 4) continue;
    std::string escaped = json::serialize(json::string(secret));
    escaped = escaped.substr(1, escaped.size() - 2);
    std::string utf8 = valid_utf8(escaped);  // never shorter: at least 4 bytes each
    spellings.insert(secret);
    spellings.insert(std::move(escaped));
    spellings.insert(std::move(utf8));
  }
  if (spellings.empty()) return;
  // A filter on the first 4 bytes (a 2^20-bit table: few false hits), then a look-up per
  // spelling length, longest first.
  const auto key = [](const char* p) {
    std::uint32_t v = 0;
    std::memcpy(&v, p, sizeof v);
    return static_cast<std::uint32_t>(v * 2654435761U) >> 12U;
  };
  std::vector<std::uint64_t> filter((1U << 20U) / 64);
  std::vector<std::size_t> lengths;
  for (const std::string& sp : spellings) {
    const std::uint32_t k = key(sp.data());
    filter[k / 64] |= std::uint64_t{1} << (k % 64);
    lengths.push_back(sp.size());
  }
  std::sort(lengths.begin(), lengths.end(), std::greater<>());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  const std::unordered_set<std::string_view> views(spellings.begin(), spellings.end());
  const std::string_view text(body);
  std::string out;
  std::size_t copied = 0;  // text[0, copied) is in `out`
  for (std::size_t i = 0; i + 4 <= text.size();) {
    const std::uint32_t k = key(text.data() + i);
    std::size_t match = 0;
    if (((filter[k / 64] >> (k % 64)) & 1U) != 0) {
      for (std::size_t len : lengths) {
        if (len <= text.size() - i && views.contains(text.substr(i, len))) {
          match = len;
          break;
        }
      }
    }
    if (match == 0) {
      ++i;
      continue;
    }
    out.append(text.substr(copied, i - copied));
    out += "***";
    i += match;
    copied = i;
  }
  if (copied == 0) return;  // nothing found
  out.append(text.substr(copied));
  body = std::move(out);
}

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &n, EVP_sha256(), nullptr);
  return d;
}

json::object input_summary(const ApiInputView& in) {
  json::object o;
  o["id"] = in.id;
  o["kind"] = in.kind;
  o["active"] = in.active;
  o["state"] = in.state;
  o["bitrate_bps"] = number(in.bitrate_bps);
  if (in.bitrate_ceiling_bps != 0) {
    o["bitrate_ceiling_bps"] = in.bitrate_ceiling_bps;
    o["over_ceiling"] = in.over_ceiling;
  }
  return o;
}

json::array outputs_json(const std::vector<ApiOutputView>& outs) {
  json::array outputs;
  for (const auto& out : outs) {
    json::object x;
    x["id"] = out.id;
    x["datagrams"] = out.datagrams;
    x["packets"] = out.packets;
    x["bytes"] = out.bytes;
    x["dropped"] = out.dropped;
    x["queue_drops"] = out.queue_drops;
    if (out.pacing_lateness) {
      json::array buckets;
      for (std::size_t b = 0; b < out.pacing_lateness->size(); ++b) {
        json::object bucket;
        bucket["le_s"] = b < kPacingLatenessBuckets.size() ? json::value(kPacingLatenessBuckets[b]) : json::value("+Inf");
        bucket["count"] = (*out.pacing_lateness)[b];
        buckets.emplace_back(std::move(bucket));
      }
      json::object pl;
      pl["buckets"] = std::move(buckets);
      pl["sum_s"] = number(out.pacing_lateness_sum_s);
      x["pacing_lateness"] = std::move(pl);
    }
    outputs.emplace_back(std::move(x));
  }
  return outputs;
}

json::object multiplex_json(const ApiMultiplexView& m) {
  json::object o;
  o["id"] = m.id;
  json::array channels;
  for (const auto& c : m.channels) channels.emplace_back(c);
  o["channels"] = std::move(channels);
  o["packets_in"] = m.packets_in;
  o["packets_out"] = m.packets_out;
  o["datagrams_out"] = m.datagrams_out;
  o["queue_drops"] = m.queue_drops;
  o["outputs"] = outputs_json(m.outputs);
  return o;
}

json::object channel_summary(const ApiChannelView& c) {
  json::object o;
  o["id"] = c.id;
  o["name"] = c.name;
  o["state"] = c.state;
  o["active_input"] = c.active_input;
  o["bitrate_bps"] = number(c.bitrate_bps);
  o["packets_in"] = c.packets_in;
  o["packets_out"] = c.packets_out;
  o["switches"] = c.switches;
  json::array alarms;
  for (const auto& a : c.alarms) alarms.emplace_back(a);
  o["alarms"] = std::move(alarms);
  json::array inputs;
  for (const auto& in : c.inputs) inputs.emplace_back(input_summary(in));
  o["inputs"] = std::move(inputs);
  return o;
}

json::object channel_detail(const ApiChannelView& c) {
  json::object o = channel_summary(c);
  json::array inputs;
  for (const auto& in : c.inputs) {
    json::object i = input_summary(in);
    i["packets"] = in.packets;
    i["bytes"] = in.bytes;
    json::object checks;
    for (std::size_t k = 0; k < mpegts::kCheckCount; ++k) {
      checks[mpegts::check_name(static_cast<mpegts::Check>(k))] = in.tr101290[k];
    }
    i["tr101290"] = std::move(checks);
    json::object mdi;
    mdi["valid"] = in.mdi_valid;
    mdi["df_ms"] = number(in.mdi_df_ms);
    mdi["mlr"] = number(in.mdi_mlr);
    i["mdi"] = std::move(mdi);
    json::object pcr;
    pcr["jitter_ms"] = in.pcr_jitter_s ? number(*in.pcr_jitter_s * 1e3) : json::value(nullptr);
    pcr["accuracy_ns"] = in.pcr_accuracy_s ? number(*in.pcr_accuracy_s * 1e9) : json::value(nullptr);
    i["pcr"] = std::move(pcr);
    i["last_packet_age_s"] = in.last_packet_age_s ? number(*in.last_packet_age_s) : json::value(nullptr);
    if (in.srt) {
      json::object s;
      s["connected"] = in.srt->connected;
      s["rtt_ms"] = number(in.srt->rtt_ms);
      s["lost"] = in.srt->lost;
      s["retransmitted"] = in.srt->retransmitted;
      s["recovered"] = in.srt->recovered;
      s["dropped"] = in.srt->dropped;
      s["ring_drops"] = in.srt->ring_drops;
      i["srt"] = std::move(s);
    } else {
      i["srt"] = nullptr;
    }
    if (in.rtp) {
      json::object r;
      r["reordered"] = in.rtp->reordered;
      r["lost"] = in.rtp->lost;
      r["duplicates"] = in.rtp->duplicates;
      i["rtp"] = std::move(r);
    } else {
      i["rtp"] = nullptr;
    }
    inputs.emplace_back(std::move(i));
  }
  o["inputs"] = std::move(inputs);
  o["outputs"] = outputs_json(c.outputs);
  json::object remux;
  remux["dropped_by_rule"] = c.remux.dropped_by_rule;
  remux["dropped_resync"] = c.remux.dropped_resync;
  remux["dropped_sync"] = c.remux.dropped_sync;
  remux["discontinuities_marked"] = c.remux.discontinuities_marked;
  remux["eit_dropped"] = c.remux.eit_dropped;
  o["remux"] = std::move(remux);
  json::object hls;
  hls["enabled"] = c.hls.enabled;
  hls["state"] = c.hls.state;
  if (!c.hls.url.empty()) hls["url"] = c.hls.url;
  hls["segments"] = c.hls.segments;
  hls["last_segment_age_s"] = number(c.hls.last_segment_age_s);
  hls["feed_packets"] = c.hls.feed_packets;
  hls["feed_dropped_packets"] = c.hls.feed_dropped_packets;
  hls["shed"] = c.hls.shed;
  hls["playlist_requests"] = c.hls.playlist_requests;
  hls["segment_requests"] = c.hls.segment_requests;
  hls["bytes_served"] = c.hls.bytes_served;
  hls["viewers"] = c.hls.viewers;
  hls["memory_bytes"] = c.hls.memory_bytes;
  hls["disk_bytes"] = c.hls.disk_bytes;
  hls["dvr_write_errors"] = c.hls.dvr_write_errors;
  hls["dvr_reads_refused"] = c.hls.dvr_reads_refused;
  hls["held_seconds"] = number(c.hls.held_seconds);
  if (!c.hls.refused.empty()) {
    json::object refused;
    for (const auto& [reason, n] : c.hls.refused) refused[reason] = n;
    hls["refused"] = std::move(refused);
  }
  o["hls"] = std::move(hls);
  return o;
}

double as_double(std::uint64_t v) { return static_cast<double>(v); }

}  // namespace

namespace api_internal {

// The twincast_* families; the collector rebuilds their metrics from a fresh snapshot at
// each render (channels come and go with reloads, and Clear + Add drops the gone ones).
struct MetricFamilies {
  explicit MetricFamilies(metrics::Registry& r)
      : channel_state(metrics::BuildGauge()
                          .Name("twincast_channel_state")
                          .Help("1 for the channel's current state (label state)")
                          .Register(r)),
        channel_bitrate(metrics::BuildGauge()
                            .Name("twincast_channel_bitrate_bps")
                            .Help("Output bitrate of the channel in bits per second")
                            .Register(r)),
        channel_packets_in(metrics::BuildCounter()
                               .Name("twincast_channel_packets_in_total")
                               .Help("TS packets received by the channel from all inputs")
                               .Register(r)),
        channel_packets_out(metrics::BuildCounter()
                                .Name("twincast_channel_packets_out_total")
                                .Help("TS packets sent by the channel")
                                .Register(r)),
        multiplex_member(metrics::BuildGauge()
                             .Name("twincast_multiplex_member")
                             .Help("1 for each member channel of the multiplex (MPTS)")
                             .Register(r)),
        multiplex_packets_in(metrics::BuildCounter()
                                 .Name("twincast_multiplex_packets_in_total")
                                 .Help("Remuxed TS packets of the member channels taken in by the multiplex")
                                 .Register(r)),
        multiplex_packets_out(metrics::BuildCounter()
                                  .Name("twincast_multiplex_packets_out_total")
                                  .Help("Media and PSI TS packets sent by the multiplex (null stuffing not counted)")
                                  .Register(r)),
        multiplex_queue_dropped(metrics::BuildCounter()
                                    .Name("twincast_multiplex_queue_dropped_packets_total")
                                    .Help("TS packets lost at the multiplex's full output queues, each once whichever "
                                          "schedules lost it (cbr_bps below the members' total?)")
                                    .Register(r)),
        channel_switches(metrics::BuildCounter()
                             .Name("twincast_channel_input_switches_total")
                             .Help("Changes of the channel's active input")
                             .Register(r)),
        channel_remux_dropped(metrics::BuildCounter()
                                  .Name("twincast_channel_remux_dropped_packets_total")
                                  .Help("TS packets the channel's remux dropped: by the service's PID rules "
                                        "(reason rule), or while the output waited for a unit start, for video a "
                                        "random access point, after an input switch (reason resync), or for a corrupted sync byte "
                                        "(reason sync)")
                                  .Register(r)),
        channel_discontinuities(metrics::BuildCounter()
                                    .Name("twincast_channel_discontinuities_marked_total")
                                    .Help("discontinuity_indicators the channel's remux set: input switches, "
                                          "reloads, and timeline jumps the source did not flag")
                                    .Register(r)),
        channel_eit_dropped(metrics::BuildCounter()
                                .Name("twincast_channel_eit_dropped_sections_total")
                                .Help("EIT sections of the channel's service lost at its full EIT queue")
                                .Register(r)),
        channel_alarms(metrics::BuildGauge()
                           .Name("twincast_channel_alarms")
                           .Help("Alarms raised on the channel now")
                           .Register(r)),
        channel_hls_segments(metrics::BuildCounter()
                                 .Name("twincast_channel_hls_segments_total")
                                 .Help("HLS segments written for the channel")
                                 .Register(r)),
        channel_ott_feed_packets(metrics::BuildCounter()
                                     .Name("twincast_channel_ott_feed_packets_total")
                                     .Help("TS packets the data plane queued for the channel's HLS packager")
                                     .Register(r)),
        hls_requests(metrics::BuildCounter()
                         .Name("twincast_hls_requests_total")
                         .Help("HLS requests the origin answered from the channel's store, by kind (playlist, segment)")
                         .Register(r)),
        hls_bytes(metrics::BuildCounter()
                      .Name("twincast_hls_bytes_total")
                      .Help("Bytes of the HLS resources the origin answered for the channel")
                      .Register(r)),
        hls_viewers(metrics::BuildGauge()
                        .Name("twincast_hls_viewers")
                        .Help("Client addresses that fetched the channel's HLS in the last 30 s (behind a CDN: its edges; "
                              "signed channels: distinct tokens)")
                        .Register(r)),
        hls_store_bytes(metrics::BuildGauge()
                            .Name("twincast_hls_store_bytes")
                            .Help("Segment bytes the packager holds for the channel's playlists, by where (memory, "
                                  "disk: ott.dvr_dir)")
                            .Register(r)),
        hls_held_seconds(metrics::BuildGauge()
                             .Name("twincast_hls_held_seconds")
                             .Help("Time the channel's held segments span (live window, RFC 8216 grace and DVR)")
                             .Register(r)),
        hls_dvr_write_errors(metrics::BuildCounter()
                                 .Name("twincast_hls_dvr_write_errors_total")
                                 .Help("Segments of the channel that could not be written to ott.dvr_dir (kept in memory)")
                                 .Register(r)),
        hls_dvr_reads_refused(metrics::BuildCounter()
                                  .Name("twincast_hls_dvr_reads_refused_total")
                                  .Help("Requests for the channel's on-disk segments refused (404) because the bytes "
                                        "read from disk and still being sent were over their cap")
                                  .Register(r)),
        hls_memfds(metrics::BuildGauge()
                       .Name("twincast_hls_memfds")
                       .Help("Segments held in sealed memfds, which the origin sends with sendfile (no copy)")
                       .Register(r)),
        hls_memfd_fallbacks(metrics::BuildCounter()
                                .Name("twincast_hls_memfd_fallbacks_total")
                                .Help("Segments kept on the heap instead of a memfd (descriptor budget of half "
                                      "RLIMIT_NOFILE reached, or memfd_create failed): sent with a copy")
                                .Register(r)),
        hls_refused(metrics::BuildCounter()
                        .Name("twincast_hls_refused_total")
                        .Help("HLS requests refused (403) for want of a valid token, by reason (missing, bad, expired, "
                              "wrong_client)")
                        .Register(r)),
        channel_ott_shed(metrics::BuildGauge()
                             .Name("twincast_channel_ott_shed")
                             .Help("1 while overload protection sheds the channel's HLS packaging (lowest priorities "
                                   "first; multicast is never shed)")
                             .Register(r)),
        channel_ott_feed_dropped(metrics::BuildCounter()
                                     .Name("twincast_channel_ott_feed_dropped_packets_total")
                                     .Help("TS packets lost on the way to the HLS packager (its ring was full)")
                                     .Register(r)),
        input_info(metrics::BuildGauge()
                       .Name("twincast_input_info")
                       .Help("1 for each input, with its kind (udp, rtp, srt)")
                       .Register(r)),
        input_active(metrics::BuildGauge()
                         .Name("twincast_input_active")
                         .Help("1 when the input is the channel's active input, else 0")
                         .Register(r)),
        input_packets(metrics::BuildCounter()
                          .Name("twincast_input_packets_total")
                          .Help("TS packets received on the input")
                          .Register(r)),
        input_bytes(metrics::BuildCounter()
                        .Name("twincast_input_bytes_total")
                        .Help("TS bytes received on the input")
                        .Register(r)),
        input_over_ceiling(metrics::BuildGauge()
                               .Name("twincast_input_over_bitrate_ceiling")
                               .Help("1 while the input's bitrate is above its configured max_bitrate_bps, else 0 "
                                     "(only inputs with a ceiling)")
                               .Register(r)),
        input_bitrate(metrics::BuildGauge()
                          .Name("twincast_input_bitrate_bps")
                          .Help("Input bitrate in bits per second")
                          .Register(r)),
        input_cc_errors(metrics::BuildCounter()
                            .Name("twincast_input_cc_errors_total")
                            .Help("Continuity counter errors on the input")
                            .Register(r)),
        input_tr101290(metrics::BuildCounter()
                           .Name("twincast_input_tr101290_errors_total")
                           .Help("ETSI TR 101 290 errors on the input, by check")
                           .Register(r)),
        input_mdi_df(metrics::BuildGauge()
                         .Name("twincast_input_mdi_df_seconds")
                         .Help("MDI delay factor (RFC 4445) of the last interval")
                         .Register(r)),
        input_mdi_mlr(metrics::BuildGauge()
                          .Name("twincast_input_mdi_mlr")
                          .Help("MDI media loss rate (RFC 4445): packets lost per second, last interval")
                          .Register(r)),
        input_pcr_jitter(metrics::BuildGauge()
                             .Name("twincast_input_pcr_jitter_seconds")
                             .Help("Largest PCR overall jitter (PCR_OJ: the PCR against its arrival time, network "
                                   "jitter included) over the last MDI interval")
                             .Register(r)),
        input_pcr_accuracy(metrics::BuildGauge()
                               .Name("twincast_input_pcr_accuracy_seconds")
                               .Help("Largest PCR accuracy error (PCR_AC: the PCR against its byte position at the "
                                     "stream's constant rate) over the last MDI interval; absent on variable-rate "
                                     "streams")
                               .Register(r)),
        input_last_packet_age(metrics::BuildGauge()
                                  .Name("twincast_input_last_packet_age_seconds")
                                  .Help("Time since the input's last packet")
                                  .Register(r)),
        srt_connected(metrics::BuildGauge()
                          .Name("twincast_input_srt_connected")
                          .Help("1 when the SRT input has a connection")
                          .Register(r)),
        srt_rtt(metrics::BuildGauge()
                    .Name("twincast_input_srt_rtt_seconds")
                    .Help("SRT round-trip time")
                    .Register(r)),
        srt_lost(metrics::BuildCounter()
                     .Name("twincast_input_srt_lost_packets_total")
                     .Help("SRT packets the receiver found missing")
                     .Register(r)),
        srt_retransmitted(metrics::BuildCounter()
                              .Name("twincast_input_srt_retransmitted_packets_total")
                              .Help("SRT retransmitted packets received")
                              .Register(r)),
        srt_recovered(metrics::BuildCounter()
                          .Name("twincast_input_srt_recovered_packets_total")
                          .Help("SRT losses repaired in time")
                          .Register(r)),
        srt_dropped(metrics::BuildCounter()
                        .Name("twincast_input_srt_dropped_packets_total")
                        .Help("SRT packets never delivered (too late to play)")
                        .Register(r)),
        srt_ring_drops(metrics::BuildCounter()
                           .Name("twincast_input_srt_ring_drops_total")
                           .Help("SRT messages (up to 7 TS packets each) received but lost before the channel: "
                                 "the data plane's input ring had no room")
                           .Register(r)),
        rtp_reordered(metrics::BuildCounter()
                          .Name("twincast_input_rtp_reordered_datagrams_total")
                          .Help("RTP datagrams that arrived out of order and were put back in sequence")
                          .Register(r)),
        rtp_lost(metrics::BuildCounter()
                     .Name("twincast_input_rtp_lost_datagrams_total")
                     .Help("RTP datagrams given up for lost (a sequence gap the reordering window did not fill)")
                     .Register(r)),
        rtp_duplicates(metrics::BuildCounter()
                           .Name("twincast_input_rtp_duplicate_datagrams_total")
                           .Help("RTP datagrams dropped as already received or too late")
                           .Register(r)),
        output_datagrams(metrics::BuildCounter()
                             .Name("twincast_output_datagrams_total")
                             .Help("Datagrams sent on the output")
                             .Register(r)),
        output_packets(metrics::BuildCounter()
                           .Name("twincast_output_packets_total")
                           .Help("TS packets sent on the output")
                           .Register(r)),
        output_bytes(metrics::BuildCounter()
                         .Name("twincast_output_bytes_total")
                         .Help("Ethernet frame bytes sent on the output (without FCS)")
                         .Register(r)),
        output_dropped(metrics::BuildCounter()
                           .Name("twincast_output_dropped_datagrams_total")
                           .Help("Datagrams dropped on the way to the port (no mbuf, too big, no ARP answer, "
                                 "transmit refused)")
                           .Register(r)),
        output_queue_dropped(metrics::BuildCounter()
                                 .Name("twincast_output_queue_dropped_packets_total")
                                 .Help("TS packets lost at the output's full queue before pacing (its schedule fell "
                                       "behind; outputs on one schedule share the queue)")
                                 .Register(r)),
        output_lateness(metrics::BuildHistogram()
                            .Name("twincast_output_pacing_lateness_seconds")
                            .Help("How late datagrams left compared to their due time")
                            .Register(r)),
        port_rx_packets(metrics::BuildCounter()
                            .Name("twincast_port_rx_packets_total")
                            .Help("Packets received on the port")
                            .Register(r)),
        port_tx_packets(metrics::BuildCounter()
                            .Name("twincast_port_tx_packets_total")
                            .Help("Packets sent on the port")
                            .Register(r)),
        port_rx_bytes(metrics::BuildCounter()
                          .Name("twincast_port_rx_bytes_total")
                          .Help("Bytes received on the port")
                          .Register(r)),
        port_tx_bytes(metrics::BuildCounter()
                          .Name("twincast_port_tx_bytes_total")
                          .Help("Bytes sent on the port")
                          .Register(r)),
        port_rx_missed(metrics::BuildCounter()
                           .Name("twincast_port_rx_missed_total")
                           .Help("Packets the NIC dropped for lack of room (imissed)")
                           .Register(r)),
        port_rx_nombuf(metrics::BuildCounter()
                           .Name("twincast_port_rx_nombuf_total")
                           .Help("Received packets dropped for lack of an mbuf")
                           .Register(r)),
        port_drops(metrics::BuildCounter()
                       .Name("twincast_port_drops_total")
                       .Help("Frames the data plane dropped on the port, by reason: received frames it could not use "
                             "(unknown_flow: no input for that group, port and source; ts_size, ts_sync: not MPEG-TS; ...) "
                             "and frames it could not send (tx_*)")
                       .Register(r)),
        worker_poll_seconds(metrics::BuildCounter()
                                .Name("twincast_worker_poll_seconds_total")
                                .Help("Time the packet worker spent in its poll loop")
                                .Register(r)),
        worker_busy_seconds(metrics::BuildCounter()
                                .Name("twincast_worker_busy_seconds_total")
                                .Help("Of the poll loop's time, the turns that received, took from an SRT ring or sent a "
                                      "packet (its rate over the poll time's: the share of the core the traffic takes)")
                                .Register(r)),
        worker_overload_windows(metrics::BuildCounter()
                                    .Name("twincast_worker_overload_windows_total")
                                    .Help("100 ms windows in which the worker found an RX queue full burst after burst "
                                          "(overload protection sheds HLS packaging then)")
                                    .Register(r)),
        ott_shed_tiers(metrics::BuildGauge()
                           .Name("twincast_ott_shed_tiers")
                           .Help("HLS priority tiers whose packaging overload protection sheds now (0: none)")
                           .Register(r)),
        collect_seconds(metrics::BuildGauge()
                            .Name("twincast_metrics_collect_seconds")
                            .Help("Time the last metrics collection took (snapshot and copy)")
                            .Register(r)) {}

  void clear() {
    channel_state.Clear();
    channel_bitrate.Clear();
    channel_packets_in.Clear();
    channel_packets_out.Clear();
    multiplex_member.Clear();
    multiplex_packets_in.Clear();
    multiplex_packets_out.Clear();
    multiplex_queue_dropped.Clear();
    channel_switches.Clear();
    channel_remux_dropped.Clear();
    channel_discontinuities.Clear();
    channel_eit_dropped.Clear();
    channel_alarms.Clear();
    channel_hls_segments.Clear();
    channel_ott_feed_packets.Clear();
    channel_ott_feed_dropped.Clear();
    channel_ott_shed.Clear();
    hls_requests.Clear();
    hls_bytes.Clear();
    hls_viewers.Clear();
    hls_refused.Clear();
    hls_store_bytes.Clear();
    hls_held_seconds.Clear();
    hls_dvr_write_errors.Clear();
    hls_dvr_reads_refused.Clear();
    input_info.Clear();
    input_active.Clear();
    input_packets.Clear();
    input_bytes.Clear();
    input_bitrate.Clear();
    input_over_ceiling.Clear();
    input_cc_errors.Clear();
    input_tr101290.Clear();
    input_mdi_df.Clear();
    input_mdi_mlr.Clear();
    input_pcr_jitter.Clear();
    input_pcr_accuracy.Clear();
    input_last_packet_age.Clear();
    rtp_reordered.Clear();
    rtp_lost.Clear();
    rtp_duplicates.Clear();
    srt_connected.Clear();
    srt_rtt.Clear();
    srt_lost.Clear();
    srt_retransmitted.Clear();
    srt_recovered.Clear();
    srt_dropped.Clear();
    srt_ring_drops.Clear();
    output_datagrams.Clear();
    output_packets.Clear();
    output_bytes.Clear();
    output_dropped.Clear();
    output_queue_dropped.Clear();
    output_lateness.Clear();
    port_rx_packets.Clear();
    port_tx_packets.Clear();
    port_rx_bytes.Clear();
    port_tx_bytes.Clear();
    port_rx_missed.Clear();
    port_rx_nombuf.Clear();
    port_drops.Clear();
    worker_poll_seconds.Clear();
    worker_busy_seconds.Clear();
    worker_overload_windows.Clear();
    ott_shed_tiers.Clear();
  }

  void collect(ApiBackend& backend) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<ApiChannelView> channels = backend.channels();
    std::vector<ApiPortView> ports = backend.ports();
    std::vector<ApiWorkerView> workers = backend.workers();
    std::vector<ApiMultiplexView> multiplexes = backend.multiplexes();
    clear();
    // An output of a channel or of a multiplex (labels: channel or multiplex, and output).
    const auto add_output = [&](Labels ol, const ApiOutputView& out) {
      output_datagrams.Add(ol).Set(as_double(out.datagrams));
      output_packets.Add(ol).Set(as_double(out.packets));
      output_bytes.Add(ol).Set(as_double(out.bytes));
      output_dropped.Add(ol).Set(as_double(out.dropped));
      output_queue_dropped.Add(ol).Set(as_double(out.queue_drops));
      if (out.pacing_lateness) {
        output_lateness.Add(ol, metrics::BucketBoundaries(kPacingLatenessBuckets.begin(), kPacingLatenessBuckets.end()))
            .Set(*out.pacing_lateness, out.pacing_lateness_sum_s);
      }
    };
    for (const auto& c : channels) {
      const Labels cl{{"channel", c.id}};
      channel_state.Add({{"channel", c.id}, {"state", c.state}}).Set(1);
      channel_bitrate.Add(cl).Set(c.bitrate_bps);
      channel_packets_in.Add(cl).Set(as_double(c.packets_in));
      channel_packets_out.Add(cl).Set(as_double(c.packets_out));
      channel_switches.Add(cl).Set(as_double(c.switches));
      channel_remux_dropped.Add({{"channel", c.id}, {"reason", "rule"}}).Set(as_double(c.remux.dropped_by_rule));
      channel_remux_dropped.Add({{"channel", c.id}, {"reason", "resync"}}).Set(as_double(c.remux.dropped_resync));
      channel_remux_dropped.Add({{"channel", c.id}, {"reason", "sync"}}).Set(as_double(c.remux.dropped_sync));
      channel_discontinuities.Add(cl).Set(as_double(c.remux.discontinuities_marked));
      channel_eit_dropped.Add(cl).Set(as_double(c.remux.eit_dropped));
      channel_alarms.Add(cl).Set(static_cast<double>(c.alarms.size()));
      if (c.hls.enabled) {
        channel_hls_segments.Add(cl).Set(as_double(c.hls.segments));
        channel_ott_feed_packets.Add(cl).Set(as_double(c.hls.feed_packets));
        channel_ott_feed_dropped.Add(cl).Set(as_double(c.hls.feed_dropped_packets));
        channel_ott_shed.Add(cl).Set(c.hls.shed ? 1 : 0);
        hls_requests.Add({{"channel", c.id}, {"kind", "playlist"}}).Set(as_double(c.hls.playlist_requests));
        hls_requests.Add({{"channel", c.id}, {"kind", "segment"}}).Set(as_double(c.hls.segment_requests));
        hls_bytes.Add(cl).Set(as_double(c.hls.bytes_served));
        hls_viewers.Add(cl).Set(as_double(c.hls.viewers));
        for (const auto& [reason, n] : c.hls.refused) hls_refused.Add({{"channel", c.id}, {"reason", reason}}).Set(as_double(n));
        hls_store_bytes.Add({{"channel", c.id}, {"where", "memory"}}).Set(as_double(c.hls.memory_bytes));
        hls_store_bytes.Add({{"channel", c.id}, {"where", "disk"}}).Set(as_double(c.hls.disk_bytes));
        hls_held_seconds.Add(cl).Set(c.hls.held_seconds);
        hls_dvr_write_errors.Add(cl).Set(as_double(c.hls.dvr_write_errors));
        hls_dvr_reads_refused.Add(cl).Set(as_double(c.hls.dvr_reads_refused));
      }
      for (const auto& in : c.inputs) {
        const Labels il{{"channel", c.id}, {"input", in.id}};
        input_info.Add({{"channel", c.id}, {"input", in.id}, {"kind", in.kind}}).Set(1);
        input_active.Add(il).Set(in.active ? 1 : 0);
        input_packets.Add(il).Set(as_double(in.packets));
        input_bytes.Add(il).Set(as_double(in.bytes));
        input_bitrate.Add(il).Set(in.bitrate_bps);
        if (in.bitrate_ceiling_bps != 0) input_over_ceiling.Add(il).Set(in.over_ceiling ? 1 : 0);
        input_cc_errors.Add(il).Set(
            as_double(in.tr101290[static_cast<std::size_t>(mpegts::Check::kContinuityCountError)]));
        for (std::size_t k = 0; k < mpegts::kCheckCount; ++k) {
          input_tr101290
              .Add({{"channel", c.id},
                    {"input", in.id},
                    {"check", std::string(mpegts::check_name(static_cast<mpegts::Check>(k)))}})
              .Set(as_double(in.tr101290[k]));
        }
        // (A silent input's MDI and PCR timing are not valid: the data plane does not publish
        // the interval before the outage as current, Channel::publish().)
        if (in.mdi_valid) {
          input_mdi_df.Add(il).Set(in.mdi_df_ms / 1000.0);
          input_mdi_mlr.Add(il).Set(in.mdi_mlr);
        }
        if (in.pcr_jitter_s) input_pcr_jitter.Add(il).Set(*in.pcr_jitter_s);
        if (in.pcr_accuracy_s) input_pcr_accuracy.Add(il).Set(*in.pcr_accuracy_s);
        if (in.last_packet_age_s) input_last_packet_age.Add(il).Set(*in.last_packet_age_s);
        if (in.srt) {
          srt_connected.Add(il).Set(in.srt->connected ? 1 : 0);
          // libsrt's last sample outlives the connection: no connection, no round-trip time.
          if (in.srt->connected) srt_rtt.Add(il).Set(in.srt->rtt_ms / 1000.0);
          srt_lost.Add(il).Set(as_double(in.srt->lost));
          srt_retransmitted.Add(il).Set(as_double(in.srt->retransmitted));
          srt_recovered.Add(il).Set(as_double(in.srt->recovered));
          srt_dropped.Add(il).Set(as_double(in.srt->dropped));
          srt_ring_drops.Add(il).Set(as_double(in.srt->ring_drops));
        }
        if (in.rtp) {
          rtp_reordered.Add(il).Set(as_double(in.rtp->reordered));
          rtp_lost.Add(il).Set(as_double(in.rtp->lost));
          rtp_duplicates.Add(il).Set(as_double(in.rtp->duplicates));
        }
      }
      for (const auto& out : c.outputs) add_output({{"channel", c.id}, {"output", out.id}}, out);
    }
    for (const auto& m : multiplexes) {
      const Labels ml{{"multiplex", m.id}};
      for (const auto& member : m.channels) multiplex_member.Add({{"multiplex", m.id}, {"channel", member}}).Set(1);
      multiplex_packets_in.Add(ml).Set(as_double(m.packets_in));
      multiplex_packets_out.Add(ml).Set(as_double(m.packets_out));
      multiplex_queue_dropped.Add(ml).Set(as_double(m.queue_drops));
      for (const auto& out : m.outputs) add_output({{"multiplex", m.id}, {"output", out.id}}, out);
    }
    for (const auto& p : ports) {
      const Labels pl{{"port", p.id}};
      port_rx_packets.Add(pl).Set(as_double(p.rx_packets));
      port_tx_packets.Add(pl).Set(as_double(p.tx_packets));
      port_rx_bytes.Add(pl).Set(as_double(p.rx_bytes));
      port_tx_bytes.Add(pl).Set(as_double(p.tx_bytes));
      port_rx_missed.Add(pl).Set(as_double(p.rx_missed));
      port_rx_nombuf.Add(pl).Set(as_double(p.rx_nombuf));
      for (const auto& [reason, n] : p.drops) port_drops.Add({{"port", p.id}, {"reason", reason}}).Set(as_double(n));
    }
    for (const auto& w : workers) {
      const Labels wl{{"lcore", std::to_string(w.lcore)}};
      worker_poll_seconds.Add(wl).Set(w.poll_seconds);
      worker_busy_seconds.Add(wl).Set(w.busy_seconds);
      worker_overload_windows.Add(wl).Set(as_double(w.overload_windows));
      ott_shed_tiers.Add(wl).Set(static_cast<double>(w.ott_shed_tiers));
    }
    hls_memfds.Add({}).Set(as_double(SharedBytes::memfds()));
    hls_memfd_fallbacks.Add({}).Set(as_double(SharedBytes::heap_fallbacks()));
    collect_seconds.Add({}).Set(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  Family<Gauge>& channel_state;
  Family<Gauge>& channel_bitrate;
  Family<Counter>& channel_packets_in;
  Family<Counter>& channel_packets_out;
  Family<Gauge>& multiplex_member;
  Family<Counter>& multiplex_packets_in;
  Family<Counter>& multiplex_packets_out;
  Family<Counter>& multiplex_queue_dropped;
  Family<Counter>& channel_switches;
  Family<Counter>& channel_remux_dropped;
  Family<Counter>& channel_discontinuities;
  Family<Counter>& channel_eit_dropped;
  Family<Gauge>& channel_alarms;
  Family<Counter>& channel_hls_segments;
  Family<Counter>& channel_ott_feed_packets;
  Family<Counter>& hls_requests;
  Family<Counter>& hls_bytes;
  Family<Gauge>& hls_viewers;
  Family<Gauge>& hls_store_bytes;
  Family<Gauge>& hls_held_seconds;
  Family<Counter>& hls_dvr_write_errors;
  Family<Counter>& hls_dvr_reads_refused;
  Family<Gauge>& hls_memfds;
  Family<Counter>& hls_memfd_fallbacks;
  Family<Counter>& hls_refused;
  Family<Gauge>& channel_ott_shed;
  Family<Counter>& channel_ott_feed_dropped;
  Family<Gauge>& input_info;
  Family<Gauge>& input_active;
  Family<Counter>& input_packets;
  Family<Counter>& input_bytes;
  Family<Gauge>& input_over_ceiling;
  Family<Gauge>& input_bitrate;
  Family<Counter>& input_cc_errors;
  Family<Counter>& input_tr101290;
  Family<Gauge>& input_mdi_df;
  Family<Gauge>& input_mdi_mlr;
  Family<Gauge>& input_pcr_jitter;
  Family<Gauge>& input_pcr_accuracy;
  Family<Gauge>& input_last_packet_age;
  Family<Gauge>& srt_connected;
  Family<Gauge>& srt_rtt;
  Family<Counter>& srt_lost;
  Family<Counter>& srt_retransmitted;
  Family<Counter>& srt_recovered;
  Family<Counter>& srt_dropped;
  Family<Counter>& srt_ring_drops;
  Family<Counter>& rtp_reordered;
  Family<Counter>& rtp_lost;
  Family<Counter>& rtp_duplicates;
  Family<Counter>& output_datagrams;
  Family<Counter>& output_packets;
  Family<Counter>& output_bytes;
  Family<Counter>& output_dropped;
  Family<Counter>& output_queue_dropped;
  Family<Histogram>& output_lateness;
  Family<Counter>& port_rx_packets;
  Family<Counter>& port_tx_packets;
  Family<Counter>& port_rx_bytes;
  Family<Counter>& port_tx_bytes;
  Family<Counter>& port_rx_missed;
  Family<Counter>& port_rx_nombuf;
  Family<Counter>& port_drops;
  Family<Counter>& worker_poll_seconds;
  Family<Counter>& worker_busy_seconds;
  Family<Counter>& worker_overload_windows;
  Family<Gauge>& ott_shed_tiers;
  Family<Gauge>& collect_seconds;
};

}  // namespace api_internal

struct Api::Impl {
  Impl(ApiBackend& b, metrics::Registry& r, ApiOptions o) : backend(b), registry(r), options(std::move(o)), families(r) {}

  // The token file's content up to trailing whitespace; "" when missing or unreadable.
  [[nodiscard]] std::string read_token() const {
    std::ifstream f(options.token_file, std::ios::binary);
    if (!f) return {};
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string t = ss.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) t.pop_back();
    return t;
  }

  // nullopt when the request carries the right bearer token, else the 401 to send.
  [[nodiscard]] std::optional<HttpResponse> check_token(const HttpRequest& req) const {
    auto unauthorized = [](std::string_view message) {
      HttpResponse r = json_error(401, message);
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"twincast\"");
      return r;
    };
    std::string expected = read_token();
    if (expected.empty()) {
      return unauthorized("mutating calls are disabled: no API token configured (token file missing or empty)");
    }
    if (expected.size() < kMinTokenLength) {
      return unauthorized("mutating calls are disabled: the configured API token is shorter than 16 characters");
    }
    std::string auth = req.header("Authorization");
    constexpr std::string_view kScheme = "bearer ";
    if (auth.size() <= kScheme.size()) return unauthorized("missing bearer token (Authorization: Bearer <token>)");
    for (std::size_t i = 0; i < kScheme.size(); ++i) {
      char c = auth[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != kScheme[i]) return unauthorized("missing bearer token (Authorization: Bearer <token>)");
    }
    std::string_view given = std::string_view(auth).substr(kScheme.size());
    // Constant time: compare digests, so neither the content nor the length leaks.
    auto a = sha256(given);
    auto b = sha256(expected);
    if (CRYPTO_memcmp(a.data(), b.data(), a.size()) != 0) return unauthorized("invalid bearer token");
    return std::nullopt;
  }

  // Removes every secret from a response about to leave. A token too short to be accepted
  // opens nothing and is likely a word the answers hold too ("twincast", "channels"):
  // redacting it would break every answer (/metrics, JSON) for nothing.
  HttpResponse scrub(HttpResponse r) const {
    std::vector<std::string> secrets = backend.secrets();
    if (std::string token = read_token(); token.size() >= kMinTokenLength) secrets.push_back(std::move(token));
    redact(r.body, secrets);
    return r;
  }

  HttpResponse health() {
    auto channels = backend.channels();
    std::size_t alarmed = 0;
    for (const auto& c : channels) alarmed += c.alarms.empty() ? 0U : 1U;
    json::object o;
    o["status"] = "ok";
    o["channels"] = channels.size();
    o["channels_alarmed"] = alarmed;
    return json_ok(o);
  }

  HttpResponse list_channels() {
    json::array a;
    for (const auto& c : backend.channels()) a.emplace_back(channel_summary(c));
    json::object o;
    o["channels"] = std::move(a);
    return json_ok(o);
  }

  HttpResponse list_multiplexes() {
    json::array a;
    for (const auto& m : backend.multiplexes()) a.emplace_back(multiplex_json(m));
    json::object o;
    o["multiplexes"] = std::move(a);
    return json_ok(o);
  }

  // The multicast lineup for middleware and players: one entry per channel, its first
  // output, in LCN order (channels without an LCN last, in configuration order).
  HttpResponse iptv_lineup() {
    auto channels = backend.channels();
    std::stable_sort(channels.begin(), channels.end(), [](const ApiChannelView& a, const ApiChannelView& b) {
      return (a.lcn == 0 ? 0x10000u : a.lcn) < (b.lcn == 0 ? 0x10000u : b.lcn);
    });
    std::string body = "#EXTM3U\n";
    for (const auto& c : channels) {
      if (c.outputs.empty()) continue;
      const ApiOutputView& out = c.outputs.front();
      body += lineup_entry(c) + (out.rtp ? "rtp://@" : "udp://@") + out.id + "\n";
    }
    HttpResponse r;
    r.status = 200;
    r.content_type = "audio/x-mpegurl";
    r.body = std::move(body);
    return r;
  }

  // The OTT lineup: the same for the HLS channels, their master playlists' URLs.
  HttpResponse ott_lineup() {
    auto channels = backend.channels();
    std::stable_sort(channels.begin(), channels.end(), [](const ApiChannelView& a, const ApiChannelView& b) {
      return (a.lcn == 0 ? 0x10000u : a.lcn) < (b.lcn == 0 ? 0x10000u : b.lcn);
    });
    std::string body = "#EXTM3U\n";
    for (const auto& c : channels) {
      if (!c.hls.enabled || c.hls.url.empty()) continue;
      body += lineup_entry(c) + c.hls.url + "\n";
    }
    HttpResponse r;
    r.content_type = "audio/x-mpegurl";
    r.body = std::move(body);
    return r;
  }

  // "#EXTINF:-1 tvg-id=... tvg-chno=... tvg-name=...,Name\n" of one channel.
  static std::string lineup_entry(const ApiChannelView& c) {
    // Line breaks become spaces; `quote` (0: none) becomes an apostrophe.
    auto clean = [](std::string v, char quote) {
      for (char& ch : v) {
        if (ch == '\n' || ch == '\r') {
          ch = ' ';
        } else if (quote != 0 && ch == quote) {
          ch = '\'';
        }
      }
      return v;
    };
    std::string e = "#EXTINF:-1 tvg-id=\"" + clean(c.id, '"') + "\"";
    if (c.lcn != 0) e += " tvg-chno=\"" + std::to_string(c.lcn) + "\"";
    e += " tvg-name=\"" + clean(c.name, '"') + "\"," + clean(c.name, 0) + "\n";
    return e;
  }

  HttpResponse get_channel(const HttpRequest& req) {
    const std::string& id = req.params.at("id");
    for (const auto& c : backend.channels()) {
      if (c.id == id) return json_ok(channel_detail(c));
    }
    return json_error(404, "no channel '" + id + "'");
  }

  HttpResponse switch_input(const HttpRequest& req) {
    if (auto denied = check_token(req)) return *denied;
    const std::string& id = req.params.at("id");
    boost::system::error_code ec;
    json::value body = json::parse(req.body, ec);
    if (ec || !body.is_object()) return json_error(400, "body must be a JSON object: {\"input\": \"<input id>\"}");
    const json::value* input_value = body.as_object().if_contains("input");
    if (input_value == nullptr || !input_value->is_string() || input_value->as_string().empty()) {
      return json_error(400, "body must name the input: {\"input\": \"<input id>\"}");
    }
    std::string input(input_value->as_string().c_str(), input_value->as_string().size());
    const ApiChannelView* channel = nullptr;
    auto channels = backend.channels();
    for (const auto& c : channels) {
      if (c.id == id) channel = &c;
    }
    if (channel == nullptr) return json_error(404, "no channel '" + id + "'");
    bool known = false;
    for (const auto& in : channel->inputs) known = known || in.id == input;
    if (!known) return json_error(400, "channel '" + id + "' has no input '" + input + "'");
    if (auto err = backend.switch_input(id, input)) return json_error(409, "switch refused: " + *err);
    json::object o;
    o["channel"] = id;
    o["active_input"] = input;
    return json_ok(o);
  }

  // POST /api/v1/channels/{id}/hls-url: ttl_s (1 s .. 1 year, default 3600) and client
  // from a JSON body or the query.
  HttpResponse hls_url(const HttpRequest& req) {
    if (auto denied = check_token(req)) return *denied;
    const std::string& id = req.params.at("id");
    std::string ttl_text, client;
    boost::system::error_code ec;
    if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
      const json::value body = json::parse(req.body, ec);
      if (ec || !body.is_object()) return json_error(400, "body must be a JSON object: {\"ttl_s\": 3600, \"client\": \"<address>\"}");
      if (const auto* t = body.as_object().if_contains("ttl_s")) {
        if (!t->is_int64() && !t->is_uint64()) return json_error(400, "ttl_s must be a whole number of seconds");
        ttl_text = json::serialize(*t);
      }
      if (const auto* c = body.as_object().if_contains("client")) {
        if (!c->is_string()) return json_error(400, "client must be a string (an IP address)");
        client = std::string(c->as_string());
      }
    }
    for (std::string_view q = req.query; !q.empty();) {
      const std::size_t amp = std::min(q.find('&'), q.size());
      const std::string_view param = q.substr(0, amp);
      q = amp < q.size() ? q.substr(amp + 1) : std::string_view{};
      const std::size_t eq = std::min(param.find('='), param.size());
      const std::string_view raw = eq < param.size() ? param.substr(eq + 1) : std::string_view{};
      std::string value;  // percent-decoded, as clients encode a query (':' as %3A)
      if (!percent_decode(raw, value)) return json_error(400, "malformed percent-encoding in the query");
      if (param.substr(0, eq) == "ttl_s") ttl_text = value;
      if (param.substr(0, eq) == "client") client = value;
    }
    std::int64_t ttl = 3600;
    if (!ttl_text.empty()) {
      char* end = nullptr;
      const long long v = std::strtoll(ttl_text.c_str(), &end, 10);
      if (end == nullptr || *end != '\0' || v < 1 || v > 366LL * 86400) return json_error(400, "ttl_s must be 1..31622400 seconds");
      ttl = v;
    }
    // Address characters only (no zone id, no name), and an address ("10.0.0" is not one:
    // the backend could not bind it, and that is the caller's mistake, not a refusal).
    const bool client_chars_ok = client.size() <= 45 && std::all_of(client.begin(), client.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' || c == ':';
    });
    boost::system::error_code address_ec;
    if (client_chars_ok && !client.empty()) (void)boost::asio::ip::make_address(client, address_ec);
    if (!client_chars_ok || address_ec) return json_error(400, "client must be an IPv4 or IPv6 address");
    bool known = false;
    for (const auto& c : backend.channels()) known = known || c.id == id;
    if (!known) return json_error(404, "no channel '" + id + "'");
    const ApiHlsUrl u = backend.hls_url(id, ttl, client);
    if (u.error) return json_error(409, *u.error);
    json::object o;
    o["channel"] = id;
    o["url"] = u.url;
    o["page_url"] = u.page_url;
    o["token"] = u.token;
    o["expires"] = u.expires;
    return json_ok(o);
  }

  HttpResponse reload(const HttpRequest& req) {
    if (auto denied = check_token(req)) return *denied;
    const ApiReloadResult result = backend.reload();
    if (result.error) {
      // A refusal may still leave something not as it was (the SRT ingest stopped for the
      // reload did not come back): said in the same message.
      return json_error(409, "reload refused, the running configuration stays: " + *result.error +
                                 (result.warning ? "; but " + *result.warning : std::string()));
    }
    auto ids = [](const std::vector<std::string>& v) {
      json::array a;
      for (const auto& id : v) a.emplace_back(id);
      return a;
    };
    json::object channels;
    channels["added"] = ids(result.added);
    channels["removed"] = ids(result.removed);
    channels["restarted"] = ids(result.restarted);
    channels["updated"] = ids(result.updated);
    channels["unchanged"] = ids(result.unchanged);
    json::object o;
    o["status"] = "reloaded";
    o["channels"] = std::move(channels);
    if (result.warning) o["warning"] = *result.warning;
    return json_ok(o);
  }

  HttpResponse metrics_text() {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = registry.render();
    return r;
  }

  ApiBackend& backend;
  metrics::Registry& registry;
  ApiOptions options;
  api_internal::MetricFamilies families;
  std::size_t collector_id = 0;
};

Api::Api(ApiBackend& backend, metrics::Registry& registry, ApiOptions options)
    : impl_(std::make_unique<Impl>(backend, registry, std::move(options))) {
  Impl* impl = impl_.get();
  impl_->collector_id = registry.add_collector([impl] { impl->families.collect(impl->backend); });
}

Api::~Api() { impl_->registry.remove_collector(impl_->collector_id); }

void Api::add_routes(HttpServer& server) {
  Impl* impl = impl_.get();
  server.route("GET", "/api/v1/health", [impl](const HttpRequest&) { return impl->scrub(impl->health()); });
  server.route("GET", "/api/v1/channels", [impl](const HttpRequest&) { return impl->scrub(impl->list_channels()); });
  server.route("GET", "/api/v1/channels/{id}",
               [impl](const HttpRequest& req) { return impl->scrub(impl->get_channel(req)); });
  server.route("POST", "/api/v1/channels/{id}/switch",
               [impl](const HttpRequest& req) { return impl->scrub(impl->switch_input(req)); });
  server.route("GET", "/api/v1/multiplexes", [impl](const HttpRequest&) { return impl->scrub(impl->list_multiplexes()); });
  server.route("POST", "/api/v1/reload", [impl](const HttpRequest& req) { return impl->scrub(impl->reload(req)); });
  server.route("POST", "/api/v1/channels/{id}/hls-url",
               [impl](const HttpRequest& req) { return impl->scrub(impl->hls_url(req)); });
  server.route("GET", "/lineup/iptv.m3u", [impl](const HttpRequest&) { return impl->scrub(impl->iptv_lineup()); });
  server.route("GET", "/lineup/ott.m3u", [impl](const HttpRequest&) { return impl->scrub(impl->ott_lineup()); });
}

void Api::add_metrics_route(HttpServer& server) {
  Impl* impl = impl_.get();
  server.route("GET", "/metrics", [impl](const HttpRequest&) { return impl->scrub(impl->metrics_text()); });
}

}  // namespace twincast::control
