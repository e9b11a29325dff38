// The running appliance: the data plane (DPDK) and the SRT ingest that feeds it, built
// from one validated configuration.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "twincast/dataplane/config.hpp"

namespace twincast::control {

// What reload() did: refused (error: the errors, one per line; nothing changed) or the
// difference it applied.
struct ReloadOutcome {
  std::optional<std::string> error;
  dataplane::ConfigDiff diff;
  bool srt_restarted = false;  // the SRT ingest was rebuilt (its callers reconnect)
  // Applied, but not everything followed: the new SRT ingest did not start (the new
  // configuration runs, its SRT inputs receive nothing).
  std::optional<std::string> warning;
};

// The web page's files: ott.static_dir, else <binary's dir>/../web (a build tree) or
// <binary's dir>/../share/twincast/web (an install) when it exists, else empty (no page).
[[nodiscard]] std::filesystem::path web_dir(const dataplane::OttConfig& ott);

// The configuration the data plane runs: `config`, then for each received ABR rendition r
// of an HLS channel c a hidden channel "c.r" (rendition_channel_id) with r's inputs, c's
// service selection (source_service_id, pid_rules, pmt_pid, service_id), failover and
// priority, no outputs and hls on: its OTT feed is the packager's rendition r of c. The
// data plane knows nothing of ABR; the API, metrics and twincastctl show config's channels
// only, with r's inputs among c's as "r.<input>" (a reload's diff names the hidden ones it
// adds, removes or restarts).
[[nodiscard]] dataplane::ApplianceConfig dataplane_config(const dataplane::ApplianceConfig& config);

class Appliance {
 public:
  // Brings up EAL (once per process), the ports, the channels and the SRT listeners and
  // callers. `config_file` is what reload() re-reads (empty: reload is refused). Throws
  // std::runtime_error / std::invalid_argument with a message.
  Appliance(const dataplane::ApplianceConfig& config, const std::string& argv0, std::string config_file = {});
  ~Appliance();
  Appliance(const Appliance&) = delete;
  Appliance& operator=(const Appliance&) = delete;

  void start();
  void stop();

  // One line per port, input and channel: counters an operator reads at 3 a.m.
  [[nodiscard]] std::string status() const;
  // The channels of the running configuration (the file's: not the renditions' hidden ones).
  [[nodiscard]] std::size_t channel_count() const;

  // Hot reload (SIGHUP, POST /api/v1/reload): re-reads and validates the file, then
  // applies only the difference (dataplane::Dataplane::apply). The SRT ingest is rebuilt
  // only when a channel with SRT inputs is added, removed or changed. Thread-safe.
  ReloadOutcome reload();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
