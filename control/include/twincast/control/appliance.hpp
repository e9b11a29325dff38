// The running appliance: the data plane (DPDK) and the SRT ingest that feeds it, built
// from one validated configuration.
#pragma once

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
};

// The web page's files: ott.static_dir, else <binary's dir>/../web (a build tree) or
// <binary's dir>/../share/twincast/web (an install) when it exists, else empty (no page).
[[nodiscard]] std::filesystem::path web_dir(const dataplane::OttConfig& ott);

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

  // Hot reload (SIGHUP, POST /api/v1/reload): re-reads and validates the file, then
  // applies only the difference (dataplane::Dataplane::apply). The SRT ingest is rebuilt
  // only when a channel with SRT inputs is added, removed or changed. Thread-safe.
  ReloadOutcome reload();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
