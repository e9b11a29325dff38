// The running appliance: the data plane (DPDK) and the SRT ingest that feeds it, built
// from one validated configuration.
#pragma once

#include <memory>
#include <string>

#include "twincast/dataplane/config.hpp"

namespace twincast::control {

class Appliance {
 public:
  // Brings up EAL (once per process), the ports, the channels and the SRT listeners and
  // callers. Throws std::runtime_error / std::invalid_argument with a message.
  Appliance(const dataplane::ApplianceConfig& config, const std::string& argv0);
  ~Appliance();
  Appliance(const Appliance&) = delete;
  Appliance& operator=(const Appliance&) = delete;

  void start();
  void stop();

  // One line per port, input and channel: counters an operator reads at 3 a.m.
  [[nodiscard]] std::string status() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
