// A fake ApiBackend shared by the control tests (api_test, ctl_test): two channels and one
// port, with the calls it receives recorded.
//
//   news   "News HD"        ok, active input main (udp, CC and PCR accuracy errors, MDI),
//                           backup (srt, down); one output with pacing lateness; HLS serving;
//                           one alarm that quotes kFakePassphrase (the API must redact it)
//   sport  "Sport \"Live\""  down, one rtp input, nothing else
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "twincast/control/api.hpp"
#include "twincast/mpegts/analyzer.hpp"

namespace twincast::test {

// A secret of the fake backend (secrets()): it must never appear in an answer.
inline constexpr const char* kFakePassphrase = "srt-passphrase-DO-NOT-LEAK";

class FakeBackend : public control::ApiBackend {
 public:
  FakeBackend() {
    control::ApiChannelView news;
    news.id = "news";
    news.name = "News HD";
    news.lcn = 5;
    news.state = "ok";
    news.active_input = "main";
    news.bitrate_bps = 4'500'000;
    news.packets_in = 1000;
    news.packets_out = 990;
    news.switches = 3;
    news.remux = {.dropped_by_rule = 40, .dropped_resync = 120, .dropped_sync = 3, .discontinuities_marked = 4, .eit_dropped = 2};
    news.alarms = {"backup: SRT auth failed (passphrase " + std::string(kFakePassphrase) + ")"};
    control::ApiInputView main;
    main.id = "main";
    main.kind = "udp";
    main.active = true;
    main.state = "ok";
    main.packets = 600;
    main.bytes = 600 * 188;
    main.bitrate_bps = 4'400'000;
    main.bitrate_ceiling_bps = 4'000'000;
    main.over_ceiling = true;
    main.tr101290[static_cast<std::size_t>(twincast::mpegts::Check::kContinuityCountError)] = 7;
    main.tr101290[static_cast<std::size_t>(twincast::mpegts::Check::kPcrAccuracyError)] = 2;
    main.mdi_valid = true;
    main.mdi_df_ms = 12.5;
    main.mdi_mlr = 0.5;
    main.pcr_jitter_s = 0.0025;
    main.pcr_accuracy_s = 0.00000025;
    main.last_packet_age_s = 0.002;
    control::ApiInputView backup;
    backup.id = "backup";
    backup.kind = "srt";
    backup.state = "down";
    backup.pcr_jitter_s = 0.0004;  // a variable-rate stream: no accuracy
    backup.srt = control::ApiSrtView{
        .connected = true, .rtt_ms = 35, .lost = 10, .retransmitted = 9, .recovered = 8, .dropped = 1, .ring_drops = 6};
    news.inputs = {main, backup};
    control::ApiOutputView out;
    out.id = "239.1.1.1:5000";
    out.datagrams = 140;
    out.packets = 980;
    out.bytes = 980 * 188;
    out.dropped = 2;
    out.queue_drops = 7;
    out.pacing_lateness = std::array<std::uint64_t, control::kPacingLatenessBuckets.size() + 1>{100, 20, 10, 5, 3, 1, 1, 0, 0};
    out.pacing_lateness_sum_s = 0.0123;
    news.outputs = {out};
    news.hls = control::ApiHlsView{.enabled = true, .state = "serving",
                                   .url = "https://cdn.example.net/hls/news/index.m3u8", .segments = 42,
                                   .last_segment_age_s = 1.5,
                                   .feed_packets = 70000, .feed_dropped_packets = 14, .shed = true,
                                   .playlist_requests = 300, .segment_requests = 150, .bytes_served = 90000000,
                                   .viewers = 3};

    control::ApiChannelView sport;
    sport.id = "sport";
    sport.name = "Sport \"Live\"";
    sport.state = "down";
    control::ApiInputView s1;
    s1.id = "primary";
    s1.kind = "rtp";
    s1.rtp = control::ApiRtpView{.reordered = 11, .lost = 3, .duplicates = 2};
    sport.inputs = {s1};
    channels_ = {news, sport};

    control::ApiPortView port;
    port.id = "0000:00:04.0";
    port.rx_packets = 12345;
    port.tx_packets = 2345;
    port.rx_missed = 4;
    port.rx_nombuf = 1;
    port.drops = {{"malformed", 0}, {"unknown_flow", 21}, {"ts_size", 5}};
    ports_ = {port};
    control::ApiMultiplexView mux;
    mux.id = "mux1";
    mux.channels = {"news", "sport"};
    mux.packets_in = 2000;
    mux.packets_out = 1900;
    mux.datagrams_out = 300;
    control::ApiOutputView mux_out;
    mux_out.id = "239.3.3.3:5000";
    mux_out.datagrams = 300;
    mux_out.packets = 2100;
    mux_out.bytes = 300 * 1358;
    mux_out.pacing_lateness = std::array<std::uint64_t, control::kPacingLatenessBuckets.size() + 1>{290, 10, 0, 0, 0, 0, 0, 0, 0};
    mux_out.pacing_lateness_sum_s = 0.0004;
    mux.outputs = {mux_out};
    multiplexes_ = {mux};
    workers_ = {control::ApiWorkerView{.lcore = 1, .poll_seconds = 120.5, .busy_seconds = 30.25, .overload_windows = 3,
                                       .ott_shed_tiers = 1}};
  }

  std::vector<control::ApiChannelView> channels() override {
    std::lock_guard lock(mutex_);
    return channels_;
  }
  std::vector<control::ApiPortView> ports() override {
    std::lock_guard lock(mutex_);
    return ports_;
  }
  std::vector<control::ApiMultiplexView> multiplexes() override {
    std::lock_guard lock(mutex_);
    return multiplexes_;
  }
  std::vector<control::ApiWorkerView> workers() override {
    std::lock_guard lock(mutex_);
    return workers_;
  }
  std::optional<std::string> switch_input(const std::string& channel, const std::string& input) override {
    std::lock_guard lock(mutex_);
    switches_.emplace_back(channel, input);
    if (refuse_switch_) return "input " + input + " has no signal";
    for (auto& c : channels_) {
      if (c.id != channel) continue;
      c.active_input = input;
      for (auto& in : c.inputs) in.active = in.id == input;
    }
    return std::nullopt;
  }
  control::ApiReloadResult reload() override {
    std::lock_guard lock(mutex_);
    ++reloads_;
    if (reload_error_) return control::ApiReloadResult{.error = reload_error_, .warning = reload_warning_};
    return control::ApiReloadResult{.warning = reload_warning_, .added = {"kids"}, .removed = {"old"},
                                     .restarted = {"sport"}, .updated = {"weather"}, .unchanged = {"news"}};
  }
  std::vector<std::string> secrets() override { return {kFakePassphrase}; }

  std::mutex mutex_;
  std::vector<control::ApiChannelView> channels_;
  std::vector<control::ApiPortView> ports_;
  std::vector<control::ApiWorkerView> workers_;
  std::vector<control::ApiMultiplexView> multiplexes_;
  std::vector<std::pair<std::string, std::string>> switches_;
  bool refuse_switch_ = false;
  int reloads_ = 0;
  std::optional<std::string> reload_error_;
  std::optional<std::string> reload_warning_;  // applied, but e.g. the SRT ingest did not start
};

}  // namespace twincast::test
