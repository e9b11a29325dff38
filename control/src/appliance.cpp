#include "twincast/control/appliance.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <chrono>
#include <map>
#include <mutex>

#include "twincast/control/api.hpp"
#include "twincast/control/config.hpp"
#include "twincast/control/hls_auth.hpp"
#include "twincast/control/hls_origin.hpp"
#include "twincast/control/hls_packager.hpp"
#include "twincast/control/http_server.hpp"
#include "twincast/control/log.hpp"
#include "twincast/control/metrics.hpp"
#include "twincast/control/srt_ingest.hpp"
#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/net.hpp"

namespace twincast::control {

namespace {

const char* kind_name(dataplane::InputKind k) {
  switch (k) {
    case dataplane::InputKind::kUdp:
      return "udp";
    case dataplane::InputKind::kRtp:
      return "rtp";
    case dataplane::InputKind::kSrt:
      return "srt";
  }
  return "unknown";
}

}  // namespace

struct Appliance::Impl final : ApiBackend {
  // Guards everything below against the HTTP threads, the status line and reload().
  mutable std::mutex mu;
  std::string config_file;
  dataplane::ApplianceConfig config;  // the running one
  // What the data plane runs: `config` plus a hidden channel per received rendition
  // (dataplane_config()); its first channels are config's, at the same indices.
  dataplane::ApplianceConfig dp_config;
  std::unique_ptr<dataplane::Dataplane> dp;
  std::unique_ptr<SrtIngest> srt;
  std::unique_ptr<HlsPackager> packager;  // the HLS channels' feeds -> segments -> origin
  std::unique_ptr<HlsOrigin> origin;
  // The origin's signing secret (ott.secret_file as read at start or the last reload; ""
  // when unreadable), so the API mints what the origin admits even after the file changed.
  std::string hls_secret;
  std::vector<dataplane::ExternalInput*> srt_route;  // SRT input -> its data-plane ring
  std::vector<std::size_t> srt_index_of;             // flat input -> SRT input (or npos)
  bool started = false;
  bool srt_down = false;  // the last reload could not build or start the SRT ingest
  metrics::Registry registry;
  std::unique_ptr<Api> api;
  std::unique_ptr<HttpServer> api_server;
  std::unique_ptr<HttpServer> metrics_server;

  std::vector<ApiChannelView> channels() override;
  static constexpr std::size_t kNone = ~std::size_t{0};
  // The data-plane channel of a received rendition of `channel` (kNone: none).
  [[nodiscard]] std::size_t hidden_channel(const std::string& channel, const std::string& rendition) const;
  // Input i of data-plane channel c as the API shows it (flat: its place in srt_index_of);
  // its alarms go to `alarms`.
  ApiInputView input_view(std::size_t c, std::size_t i, std::size_t flat, std::size_t active, const std::string& id,
                          std::uint64_t now, std::vector<std::string>& alarms);
  std::vector<ApiPortView> ports() override;
  std::vector<ApiMultiplexView> multiplexes() override;
  std::vector<ApiWorkerView> workers() override;
  std::optional<std::string> switch_input(const std::string& channel, const std::string& input) override;
  ApiReloadResult reload() override {
    const ReloadOutcome r = reload_file();
    update_access();
    ApiReloadResult a;
    a.error = r.error;
    a.warning = r.warning;
    a.added = r.diff.channels_added;
    a.removed = r.diff.channels_removed;
    a.restarted = r.diff.channels_changed;
    a.updated = r.diff.channels_updated;
    a.unchanged = r.diff.channels_unchanged;
    return a;
  }
  ReloadOutcome reload_file();
  // The HLS channels of `config` with their data-plane feeds, for the packager.
  std::vector<PackagedChannel> hls_channels() const {
    std::vector<PackagedChannel> out;
    for (std::size_t c = 0; c < config.channels.size(); ++c) {
      const auto& ch = config.channels[c];
      if (!ch.hls) continue;
      out.push_back(PackagedChannel{ch.id, ch.name, dp->ott_feed(c)});
      // ABR: a received rendition's feed is its hidden channel's; a transcoded one has none.
      for (const auto& r : ch.hls_options.renditions) {
        PackagedRendition pr{r.name, nullptr, r.height, r.video_kbps};
        if (const std::size_t h = r.transcoded() ? kNone : hidden_channel(ch.id, r.name); h != kNone)
          pr.feed = dp->ott_feed(h);
        out.back().renditions.push_back(std::move(pr));
      }
    }
    for (auto& p : out)  // AES-128 (hls_auth)
      for (const auto& ch : config.channels)
        if (ch.id == p.id) p.encrypt = ch.hls_options.encrypt, p.key_rotation_segments = ch.hls_options.key_rotation_segments;
    return out;
  }
  // The origin's signed-URL policy from the running configuration (start, each reload).
  void update_access() {
    std::lock_guard lock(mu);
    if (!origin) return;
    HlsAccessPolicy policy = hls_access_policy(config);
    hls_secret = policy.secret;
    origin->set_access(std::move(policy));
  }
  // SRT inputs of `config` in order (channel id, input): for deciding whether to keep the ingest.
  static std::vector<std::pair<std::string, dataplane::InputConfig>> srt_inputs_of(const dataplane::ApplianceConfig& c) {
    std::vector<std::pair<std::string, dataplane::InputConfig>> out;
    for (const auto& ch : c.channels)
      for (const auto& in : ch.inputs)
        if (in.kind == dataplane::InputKind::kSrt) out.emplace_back(ch.id, in);
    return out;
  }
  // The SRT ingest for `config` (nullptr without SRT inputs), feeding the data plane's rings.
  void build_srt();
  // build_srt() and start it if the appliance runs; a failure goes to out.warning (srt_down).
  void rebuild_srt(ReloadOutcome& out);
  ApiHlsUrl hls_url(const std::string& channel, std::int64_t ttl_s, const std::string& client) override {
    std::lock_guard lock(mu);
    const auto it = std::find_if(config.channels.begin(), config.channels.end(), [&](const auto& c) { return c.id == channel; });
    if (it == config.channels.end() || !it->hls) return ApiHlsUrl{.error = "channel '" + channel + "' has no HLS"};
    if (!it->hls_options.signed_urls) return ApiHlsUrl{.error = "channel '" + channel + "' does not sign its HLS URLs (hls.signed_urls)"};
    ApiHlsUrl u;
    // Signed with the secret the origin checks (a new one in the file counts from the reload).
    if (hls_secret.empty())
      return ApiHlsUrl{.error = "the HLS secret (ott.secret_file) could not be read at start or the last reload: "
                                "signed channels refuse every request"};
    try {
      u.expires = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() + ttl_s;
      u.token = hls_sign(hls_secret, channel, u.expires, client.empty() ? client : hls_client_address(client));
    } catch (const std::exception& e) {
      return ApiHlsUrl{.error = e.what()};
    }
    const std::string base = config.ott.public_url.empty() ? "http://" + config.ott.listen : config.ott.public_url;
    u.url = base + "/hls/" + channel + "/index.m3u8?token=" + u.token;
    u.page_url = base + "/?channel=" + channel + "&token=" + u.token;
    return u;
  }
  std::vector<std::string> secrets() override {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    for (const auto& ch : dp_config.channels)  // the renditions' inputs too
      for (const auto& in : ch.inputs)
        if (!in.passphrase.empty()) out.push_back(in.passphrase);
    if (!config.ott.secret_file.empty()) {  // the HLS signing key never shows either
      try {
        out.push_back(read_hls_secret(config.ott.secret_file));
      } catch (const std::exception&) {
        // unreadable now: nothing of it to hide
      }
    }
    return out;
  }
};

namespace {
ApiOutputView output_view(const dataplane::OutputConfig& oc, const dataplane::OutputStats& os,
                          const dataplane::PacingHistogram& lateness) {
  ApiOutputView ov;
  ov.id = dataplane::net::ipv4_text(oc.address) + ":" + std::to_string(oc.udp_port);
  ov.rtp = oc.kind == dataplane::OutputKind::kRtp;
  ov.datagrams = os.datagrams;
  ov.packets = os.packets;
  ov.bytes = os.bytes;
  ov.dropped = os.dropped_datagrams;
  ov.queue_drops = os.queue_dropped_packets;
  ov.pacing_lateness = lateness.buckets;
  ov.pacing_lateness_sum_s = lateness.sum_seconds();
  return ov;
}
}  // namespace

std::vector<ApiMultiplexView> Appliance::Impl::multiplexes() {
  std::lock_guard lock(mu);
  std::vector<ApiMultiplexView> out;
  for (std::size_t m = 0; m < config.multiplexes.size() && m < dp->multiplex_count(); ++m) {
    const auto& mc = config.multiplexes[m];
    const auto ms = dp->multiplex_stats(m);
    ApiMultiplexView v;
    v.id = mc.id;
    v.channels = mc.channels;
    v.packets_in = ms.packets_in;
    v.packets_out = ms.packets_out;
    v.datagrams_out = ms.datagrams_out;
    v.queue_drops = ms.dropped_queue_full;
    for (std::size_t o = 0; o < mc.outputs.size(); ++o)
      v.outputs.push_back(output_view(mc.outputs[o], dp->multiplex_output_stats(m, o), dp->multiplex_pacing_lateness(m, o)));
    out.push_back(std::move(v));
  }
  return out;
}

std::size_t Appliance::Impl::hidden_channel(const std::string& channel, const std::string& rendition) const {
  const std::string id = rendition_channel_id(channel, rendition);
  for (std::size_t h = config.channels.size(); h < dp_config.channels.size(); ++h)
    if (dp_config.channels[h].id == id) return h;
  return kNone;  // a transcoded rendition: made here, no inputs
}

ApiInputView Appliance::Impl::input_view(std::size_t c, std::size_t i, std::size_t flat, std::size_t active,
                                         const std::string& id, std::uint64_t now, std::vector<std::string>& alarms) {
  const auto& ic = dp_config.channels[c].inputs[i];
  const auto snap = dp->input_snapshot(c, i);
  ApiInputView iv;
  iv.id = id;
  iv.kind = kind_name(ic.kind);
  iv.active = i == active;
  iv.packets = snap.packets;
  iv.bytes = snap.bytes;
  iv.bitrate_bps = snap.bitrate_bps;
  iv.bitrate_ceiling_bps = ic.max_bitrate_bps;
  iv.over_ceiling = ic.max_bitrate_bps != 0 && snap.bitrate_bps > static_cast<double>(ic.max_bitrate_bps);
  iv.tr101290 = snap.tr101290;
  iv.mdi_valid = snap.mdi_valid;
  iv.mdi_df_ms = snap.mdi_df_ms;
  iv.mdi_mlr = snap.mdi_mlr;
  if (snap.pcr_valid) iv.pcr_jitter_s = snap.pcr_jitter_ns * 1e-9;
  if (snap.pcr_accuracy_measured) iv.pcr_accuracy_s = snap.pcr_accuracy_ns * 1e-9;
  if (snap.seen) iv.last_packet_age_s = static_cast<double>(now > snap.last_packet_ns ? now - snap.last_packet_ns : 0) / 1e9;
  iv.state = !snap.seen ? "no signal" : snap.healthy ? "ok" : "down";
  if (ic.kind == dataplane::InputKind::kSrt && srt && flat < srt_index_of.size() &&
      srt_index_of[flat] != static_cast<std::size_t>(-1)) {
    const auto st = srt->stats(srt_index_of[flat]);
    ApiSrtView sv;
    sv.connected = st.connected;
    sv.rtt_ms = st.rtt_ms;
    sv.lost = st.lost;
    sv.retransmitted = st.retransmitted;
    sv.recovered = st.recovered;
    sv.dropped = st.dropped;
    sv.ring_drops = dp->external_drops(c, i);
    iv.srt = sv;
  }
  if (ic.kind == dataplane::InputKind::kRtp) {
    const auto st = dp->input_stats(c, i);
    iv.rtp = ApiRtpView{st.rtp_out_of_order, st.rtp_lost, st.rtp_duplicates};
  }
  if (iv.state != "ok") alarms.push_back("input " + id + (iv.active ? " (active) " : " ") + iv.state);
  if (iv.over_ceiling) {
    char rate[96];
    std::snprintf(rate, sizeof rate, "%.2f Mbit/s > %.2f Mbit/s", snap.bitrate_bps / 1e6,
                  static_cast<double>(ic.max_bitrate_bps) / 1e6);
    alarms.push_back("input " + id + " over its bitrate ceiling: " + rate);
  }
  return iv;
}

std::vector<ApiChannelView> Appliance::Impl::channels() {
  std::lock_guard lock(mu);
  std::vector<ApiChannelView> out;
  // The origin's traffic of every channel, read once (not once per channel).
  const auto traffic = origin ? origin->channel_traffic() : std::map<std::string, HlsChannelTraffic>{};
  // Each data-plane channel's first input in the flat numbering (srt_index_of's).
  std::vector<std::size_t> first_flat(dp_config.channels.size() + 1, 0);
  for (std::size_t c = 0; c < dp_config.channels.size(); ++c) first_flat[c + 1] = first_flat[c] + dp_config.channels[c].inputs.size();
  for (std::size_t c = 0; c < config.channels.size(); ++c) {
    const auto& cc = config.channels[c];
    const auto cs = dp->pipeline(c).stats();
    ApiChannelView v;
    v.id = cc.id;
    v.name = cc.name;
    v.lcn = cc.lcn;
    v.active_input = cs.active_input < cc.inputs.size() ? cc.inputs[cs.active_input].name : "";
    v.packets_in = cs.packets_in;
    v.packets_out = cs.packets_out;
    v.switches = cs.switches;
    v.remux = ApiRemuxView{cs.dropped_by_rule, cs.dropped_resync, cs.dropped_sync, cs.discontinuities_marked, cs.eit_dropped};
    v.bitrate_bps = cs.bitrate_bps;  // measured by the data plane: right from the first call
    const std::uint64_t now = dataplane::Dataplane::now_ns();
    for (std::size_t i = 0; i < cc.inputs.size(); ++i)
      v.inputs.push_back(input_view(c, i, first_flat[c] + i, cs.active_input, cc.inputs[i].name, now, v.alarms));
    // A received rendition's inputs (its hidden channel's) are the channel's too, named
    // "<rendition>.<input>" and active for their rendition: a rendition whose feed fails
    // is an alarm of the channel, and its TR 101 290 counts and SRT state are on view.
    for (const auto& r : cc.hls_options.renditions) {
      const std::size_t h = hidden_channel(cc.id, r.name);
      if (h == kNone) continue;
      const auto hs = dp->pipeline(h).stats();
      for (std::size_t i = 0; i < dp_config.channels[h].inputs.size(); ++i)
        v.inputs.push_back(input_view(h, i, first_flat[h] + i, hs.active_input,
                                      r.name + "." + dp_config.channels[h].inputs[i].name, now, v.alarms));
    }
    for (std::size_t o = 0; o < cc.outputs.size(); ++o)  // lateness: its own schedule's datagrams
      v.outputs.push_back(output_view(cc.outputs[o], dp->output_stats(c, o), dp->pacing_lateness(c, o)));
    v.state = dataplane::channel_health_name(cs.state);
    v.hls.enabled = cc.hls;
    v.hls.state = "off";
    if (cc.hls) {
      const auto& ott = config.ott;
      v.hls.url = (ott.public_url.empty() ? "http://" + ott.listen : ott.public_url) + "/hls/" + cc.id + "/index.m3u8";
    }
    if (const auto hs = cc.hls ? packager->channel_stats(cc.id) : std::nullopt) {
      v.hls.state = hs->state;
      v.hls.segments = hs->segments;
      v.hls.last_segment_age_s = hs->last_segment_age_s;
      v.hls.memory_bytes = hs->window_bytes;
      v.hls.disk_bytes = hs->disk_bytes;
      v.hls.dvr_write_errors = hs->disk_errors;
      v.hls.dvr_reads_refused = hs->disk_reads_refused;
      v.hls.held_seconds = hs->held_seconds;
      if (const auto it = traffic.find(cc.id); it != traffic.end()) {
        v.hls.playlist_requests = it->second.playlists;
        v.hls.segment_requests = it->second.segments;
        v.hls.bytes_served = it->second.bytes;
        v.hls.viewers = it->second.viewers;
        if (cc.hls_options.signed_urls)
          for (std::size_t d = 0; d < kHlsDenialCount; ++d)
            v.hls.refused.emplace_back(hls_denial_name(static_cast<HlsDenial>(d)), it->second.refused[d]);
      }
      if (hs->state == "stalled") v.alarms.push_back("HLS stalled: no segment for " + std::to_string(static_cast<int>(hs->last_segment_age_s)) + " s");
    }
    if (const dataplane::OttFeed* feed = dp->ott_feed(c)) {
      const auto fs = feed->stats();
      v.hls.feed_packets = fs.packets;
      v.hls.feed_dropped_packets = fs.dropped_packets;
      v.hls.shed = fs.shed;
      if (fs.shed) v.alarms.push_back("HLS shed: the data plane is overloaded and this channel's priority is among the lowest");
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<ApiPortView> Appliance::Impl::ports() {
  std::lock_guard lock(mu);
  std::vector<ApiPortView> out;
  for (std::size_t p = 0; p < config.ports.size(); ++p) {
    const auto s = dp->port_stats(p);
    ApiPortView v;
    v.id = config.ports[p].name;
    v.rx_packets = s.rx_packets;
    v.tx_packets = s.tx_packets;
    v.rx_bytes = s.rx_bytes;
    v.tx_bytes = s.tx_bytes;
    v.rx_missed = s.rx_missed;
    v.rx_nombuf = s.rx_nombuf;
    for (std::size_t r = 0; r < dataplane::kDropReasonCount; ++r)
      v.drops.emplace_back(dataplane::drop_reason_name(static_cast<dataplane::DropReason>(r)), s.drops[r]);
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<ApiWorkerView> Appliance::Impl::workers() {
  std::lock_guard lock(mu);
  const dataplane::WorkerStats w = dp->worker_stats();
  const dataplane::QosStats q = dp->qos_stats();
  return {ApiWorkerView{.lcore = w.lcore,
                        .poll_seconds = static_cast<double>(w.poll_ns) * 1e-9,
                        .busy_seconds = static_cast<double>(w.busy_ns) * 1e-9,
                        .overload_windows = q.overload_windows,
                        .ott_shed_tiers = q.shed_tiers}};
}

std::optional<std::string> Appliance::Impl::switch_input(const std::string& channel, const std::string& input) {
  std::lock_guard lock(mu);
  for (std::size_t c = 0; c < config.channels.size(); ++c) {
    if (config.channels[c].id != channel) continue;
    // "<rendition>.<input>": an input of a received rendition (its hidden channel's).
    std::size_t dc = c;
    std::string name = input;
    if (const std::size_t dot = input.find('.'); dot != std::string::npos) {
      dc = hidden_channel(channel, input.substr(0, dot));
      if (dc == kNone) return "channel " + channel + " has no input " + input;
      name = input.substr(dot + 1);
    }
    for (std::size_t i = 0; i < dp_config.channels[dc].inputs.size(); ++i) {
      if (dp_config.channels[dc].inputs[i].name != name) continue;
      if (!dp->input_snapshot(dc, i).healthy) return "input " + input + " is down or has no signal";
      if (!dp->request_switch(dc, i)) return "the channel's pipeline cannot be switched";
      return std::nullopt;
    }
    return "channel " + channel + " has no input " + input;
  }
  return "no channel " + channel;
}

void Appliance::Impl::build_srt() {
  srt.reset();
  srt_route.clear();
  srt_index_of.clear();
  std::vector<dataplane::InputConfig> srt_inputs;
  // Over the data plane's channels: a received rendition's inputs may be SRT too (their
  // flat indices come after those of config's channels, which the views use).
  for (std::size_t c = 0; c < dp_config.channels.size(); ++c) {
    for (std::size_t i = 0; i < dp_config.channels[c].inputs.size(); ++i) {
      if (dp_config.channels[c].inputs[i].kind != dataplane::InputKind::kSrt) {
        srt_index_of.push_back(static_cast<std::size_t>(-1));
        continue;
      }
      srt_index_of.push_back(srt_inputs.size());
      srt_inputs.push_back(dp_config.channels[c].inputs[i]);
      srt_route.push_back(dp->external_input(c, i));
    }
  }
  if (srt_inputs.empty()) return;
  const auto* route = &srt_route;  // fixed while this ingest exists (rebuilt with it)
  srt = std::make_unique<SrtIngest>(std::move(srt_inputs), [route](std::size_t input, std::span<const std::uint8_t> bytes) {
    (void)dataplane::Dataplane::feed_external((*route)[input], bytes);  // refusals are counted by the data plane
  });
}

ReloadOutcome Appliance::Impl::reload_file() {
  std::lock_guard lock(mu);
  ReloadOutcome out;
  if (config_file.empty()) {
    out.error = "twincastd was started without a configuration file to re-read";
    return out;
  }
  const ConfigResult loaded = load_config(config_file);
  if (!loaded.ok()) {
    out.error = format_errors(loaded.errors, config_file);
    if (!out.error->empty() && out.error->back() == '\n') out.error->pop_back();
    return out;
  }
  const dataplane::ApplianceConfig& next = *loaded.config;
  const dataplane::ApplianceConfig next_dp = dataplane_config(next);  // with the renditions' hidden channels
  out.diff = dataplane::diff_configs(dp_config, next_dp);
  if (!out.diff.live()) {
    std::string why;
    for (const auto& r : out.diff.restart_reasons) why += (why.empty() ? "" : "; ") + r;
    out.error = why + ": restart twincastd to apply";
    return out;
  }
  // Nothing for the data plane to do, unless only the order of channels or multiplexes
  // changed: it lists them in the new order then (its accessors, and so every view and
  // counter by position, follow the order of dp_config).
  if (out.diff.empty() && next_dp == dp_config) {
    config = next;  // e.g. a new token_file: read at each request
    dp_config = next_dp;
    if (srt_down) {  // the same SRT inputs: try again what the last reload could not start
      if (srt) srt->stop();
      out.srt_restarted = true;
      rebuild_srt(out);
    }
    return out;
  }
  // The SRT ingest stays when its inputs and their channels stay: its handles point into
  // channels the reload keeps.
  bool keep_srt = !srt_down && srt_inputs_of(dp_config) == srt_inputs_of(next_dp);
  for (const auto& [channel, in] : srt_inputs_of(dp_config)) {
    const auto& changed = out.diff.channels_changed;
    keep_srt = keep_srt && std::find(changed.begin(), changed.end(), channel) == changed.end();
  }
  // The new signed-URL policy before anything of the new map is served (a channel the
  // reload makes signed is never open); the callers set the running map's again after.
  if (origin) origin->set_access(hls_access_policy(next));
  if (!keep_srt && srt) srt->stop();  // no producer may feed a ring the reload frees
  // Nor may the packager read an OTT feed the reload frees.
  std::vector<std::string> going = out.diff.channels_removed;
  going.insert(going.end(), out.diff.channels_changed.begin(), out.diff.channels_changed.end());
  packager->detach(going);
  try {
    dp->apply(next_dp);
  } catch (const std::exception& e) {
    out.error = e.what();
    if (!keep_srt && srt) {
      // The running plan is untouched: bring the same ingest back (a failure to is a
      // warning beside the error, retried by the next reload; never an exception here).
      rebuild_srt(out);
    }
    out.diff = {};
    packager->set_channels(hls_channels());  // the running plan's feeds again
    return out;
  }
  config = next;
  dp_config = next_dp;
  packager->set_channels(hls_channels());
  if (keep_srt) {
    // Same SRT inputs, maybe at other positions: only the index for the views changes.
    std::vector<std::size_t> index;
    std::size_t k = 0;
    for (const auto& ch : dp_config.channels)
      for (const auto& in : ch.inputs) index.push_back(in.kind == dataplane::InputKind::kSrt ? k++ : static_cast<std::size_t>(-1));
    srt_index_of = std::move(index);
  } else {
    out.srt_restarted = true;
    rebuild_srt(out);
  }
  return out;
}

void Appliance::Impl::rebuild_srt(ReloadOutcome& out) {
  srt_down = false;
  try {
    build_srt();
  } catch (const std::exception& e) {
    // The check agrees with the ingest (srt_ingest_test); should they ever differ, the
    // new map runs without SRT and says why, rather than taking every channel down.
    srt.reset();
    srt_down = true;
    out.warning = std::string("the SRT ingest could not be built: ") + e.what();
  }
  if (srt && started) {
    try {
      srt->start();
    } catch (const std::exception& e) {
      srt_down = true;
      out.warning = std::string("the SRT ingest did not start: ") + e.what();
    }
  }
}

dataplane::ApplianceConfig dataplane_config(const dataplane::ApplianceConfig& config) {
  dataplane::ApplianceConfig out = config;
  for (const auto& ch : config.channels) {
    if (!ch.hls) continue;
    for (const auto& r : ch.hls_options.renditions) {
      if (r.transcoded()) continue;
      dataplane::ChannelConfig h;
      h.id = rendition_channel_id(ch.id, r.name);
      h.name = ch.name.empty() ? h.id : ch.name + " (" + r.name + ")";
      h.provider = ch.provider;
      h.service_id = ch.service_id;
      h.source_service_id = ch.source_service_id;
      h.pmt_pid = ch.pmt_pid;
      h.pid_rules = ch.pid_rules;
      h.inputs = r.inputs;
      h.failover = ch.failover;
      h.priority = ch.priority;
      h.hls = true;  // its OTT feed only: no outputs, no multiplex, no HLS options of its own
      out.channels.push_back(std::move(h));
    }
  }
  return out;
}

std::filesystem::path web_dir(const dataplane::OttConfig& ott) {
  if (!ott.static_dir.empty()) return ott.static_dir;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  // The build tree (build/<type>/bin/twincastd -> build/<type>/web), then an installed
  // prefix (<prefix>/bin/twincastd -> <prefix>/share/twincast/web).
  for (const auto& dir : {exe.parent_path().parent_path() / "web", exe.parent_path().parent_path() / "share/twincast/web"}) {
    if (std::filesystem::is_directory(dir, ec)) return dir;
  }
  return {};
}

Appliance::Appliance(const dataplane::ApplianceConfig& config, const std::string& argv0, std::string config_file)
    : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  impl_->dp_config = dataplane_config(config);
  impl_->config_file = std::move(config_file);
  dataplane::init_eal(impl_->dp_config, argv0);
  impl_->dp = std::make_unique<dataplane::Dataplane>(impl_->dp_config);
  if (const unsigned idle = impl_->dp->idle_lcores(); idle != 0) {
    log::warn("idle_lcores",
              {{"lcores", impl_->dp_config.eal.lcores}, {"worker_lcore", impl_->dp->worker_lcore()}, {"idle", idle}},
              "dataplane.lcores \"" + impl_->dp_config.eal.lcores + "\": one packet worker (lcore " +
                  std::to_string(impl_->dp->worker_lcore()) + ") runs every channel and multiplex; " +
                  std::to_string(idle) + " more lcore(s) stay idle");
  }
  impl_->build_srt();
  impl_->packager = std::make_unique<HlsPackager>(config.ott);
  impl_->packager->set_channels(impl_->hls_channels());
}

ReloadOutcome Appliance::reload() {
  ReloadOutcome r = impl_->reload_file();
  impl_->update_access();
  return r;
}

Appliance::~Appliance() { stop(); }

void Appliance::start() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->dp->start();
    if (impl_->srt) impl_->srt->start();
    impl_->packager->start();
    impl_->started = true;
  }
  // The HLS origin and the web page.
  HlsOriginOptions hls_options;
  hls_options.static_dir = web_dir(impl_->config.ott);
  impl_->origin = std::make_unique<HlsOrigin>(*impl_->packager, hls_options);
  impl_->update_access();
  impl_->origin->listen(impl_->config.ott.listen);
  impl_->origin->start();
  // The REST API and /metrics, each on its own listener.
  ApiOptions options;
  options.token_file = impl_->config.control.token_file;
  impl_->api = std::make_unique<Api>(*impl_, impl_->registry, options);
  impl_->api_server = std::make_unique<HttpServer>();
  impl_->api->add_routes(*impl_->api_server);
  impl_->api_server->listen(impl_->config.control.api_listen);
  impl_->metrics_server = std::make_unique<HttpServer>();
  impl_->api->add_metrics_route(*impl_->metrics_server);
  impl_->metrics_server->listen(impl_->config.control.metrics_listen);
  impl_->api_server->start();
  impl_->metrics_server->start();
}

void Appliance::stop() {
  if (impl_->origin) impl_->origin->stop();
  if (impl_->packager) impl_->packager->stop();  // before the data plane's feeds go
  if (impl_->api_server) impl_->api_server->stop();
  if (impl_->metrics_server) impl_->metrics_server->stop();
  std::lock_guard lock(impl_->mu);
  impl_->started = false;
  if (impl_->srt) impl_->srt->stop();  // no producer may outlive the rings
  if (impl_->dp) impl_->dp->stop();
}

std::size_t Appliance::channel_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->config.channels.size();
}

std::string Appliance::status() const {
  std::lock_guard lock(impl_->mu);
  std::string out;
  char line[512];
  const auto& cfg = impl_->dp_config;  // the renditions' hidden channels "<c>.<r>" too
  for (std::size_t p = 0; p < cfg.ports.size(); ++p) {
    const auto s = impl_->dp->port_stats(p);
    std::uint64_t drops = 0;
    for (auto d : s.drops) drops += d;
    std::snprintf(line, sizeof line, "port=%s rx=%llu tx=%llu missed=%llu nombuf=%llu drops=%llu arp_replies=%llu igmp_reports=%llu",
                  cfg.ports[p].name.c_str(), static_cast<unsigned long long>(s.rx_packets),
                  static_cast<unsigned long long>(s.tx_packets), static_cast<unsigned long long>(s.rx_missed),
                  static_cast<unsigned long long>(s.rx_nombuf), static_cast<unsigned long long>(drops),
                  static_cast<unsigned long long>(s.arp_replies), static_cast<unsigned long long>(s.igmp_reports_sent));
    out += line;
    if (drops != 0) {
      // Which reasons make up `drops` (the same names as twincast_port_drops_total's
      // reason label), on the same line: "drop_reasons=other_ethertype:11,unknown_flow:2".
      out += " drop_reasons=";
      const char* sep = "";
      for (std::size_t r = 0; r < dataplane::kDropReasonCount; ++r) {
        if (s.drops[r] == 0) continue;
        out += sep;
        out += dataplane::drop_reason_name(static_cast<dataplane::DropReason>(r));
        out += ':';
        out += std::to_string(s.drops[r]);
        sep = ",";
      }
    }
    out += '\n';
  }
  {
    const dataplane::WorkerStats w = impl_->dp->worker_stats();
    const dataplane::QosStats q = impl_->dp->qos_stats();
    std::snprintf(line, sizeof line, "worker lcore=%u poll_ms=%llu busy_ms=%llu overload_windows=%llu ott_shed_tiers=%u\n", w.lcore,
                  static_cast<unsigned long long>(w.poll_ns / 1'000'000), static_cast<unsigned long long>(w.busy_ns / 1'000'000),
                  static_cast<unsigned long long>(q.overload_windows), static_cast<unsigned>(q.shed_tiers));
    out += line;
  }
  std::size_t flat = 0;
  for (std::size_t c = 0; c < cfg.channels.size(); ++c) {
    const auto cs = impl_->dp->pipeline(c).stats();
    std::snprintf(line, sizeof line,
                  "channel=%s active_input=%s switches=%llu packets_in=%llu packets_out=%llu datagrams_out=%llu queue_drops=%llu\n",
                  cfg.channels[c].id.c_str(), cfg.channels[c].inputs.at(cs.active_input).name.c_str(),
                  static_cast<unsigned long long>(cs.switches), static_cast<unsigned long long>(cs.packets_in),
                  static_cast<unsigned long long>(cs.packets_out), static_cast<unsigned long long>(cs.datagrams_out),
                  static_cast<unsigned long long>(cs.dropped_queue_full));
    out += line;
    for (std::size_t i = 0; i < cfg.channels[c].inputs.size(); ++i, ++flat) {
      const auto& in = cfg.channels[c].inputs[i];
      const auto s = impl_->dp->input_stats(c, i);
      std::snprintf(line, sizeof line, "channel=%s input=%s ts_packets=%llu datagrams=%llu",
                    cfg.channels[c].id.c_str(), in.name.c_str(), static_cast<unsigned long long>(s.packets),
                    static_cast<unsigned long long>(s.datagrams));
      out += line;
      if (in.kind == dataplane::InputKind::kSrt && impl_->srt) {
        const auto st = impl_->srt->stats(impl_->srt_index_of[flat]);
        std::snprintf(line, sizeof line, " srt_connected=%d srt_rtt_ms=%.1f srt_lost=%llu srt_rejected=%llu ring_drops=%llu",
                      st.connected ? 1 : 0, st.rtt_ms, static_cast<unsigned long long>(st.lost),
                      static_cast<unsigned long long>(st.rejected_callers),
                      static_cast<unsigned long long>(impl_->dp->external_drops(c, i)));
        out += line;
      }
      if (in.kind == dataplane::InputKind::kRtp) {
        std::snprintf(line, sizeof line, " rtp_lost=%llu rtp_reordered=%llu rtp_duplicates=%llu",
                      static_cast<unsigned long long>(s.rtp_lost), static_cast<unsigned long long>(s.rtp_out_of_order),
                      static_cast<unsigned long long>(s.rtp_duplicates));
        out += line;
      }
      out += "\n";
    }
  }
  for (std::size_t m = 0; m < cfg.multiplexes.size() && m < impl_->dp->multiplex_count(); ++m) {
    const auto ms = impl_->dp->multiplex_stats(m);
    std::snprintf(line, sizeof line,
                  "multiplex=%s channels=%zu packets_in=%llu packets_out=%llu datagrams_out=%llu queue_drops=%llu\n",
                  cfg.multiplexes[m].id.c_str(), cfg.multiplexes[m].channels.size(),
                  static_cast<unsigned long long>(ms.packets_in), static_cast<unsigned long long>(ms.packets_out),
                  static_cast<unsigned long long>(ms.datagrams_out),
                  static_cast<unsigned long long>(ms.dropped_queue_full));
    out += line;
  }
  return out;
}

}  // namespace twincast::control
