#include "twincast/control/appliance.hpp"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "twincast/control/srt_ingest.hpp"
#include "twincast/dataplane/dataplane.hpp"

namespace twincast::control {

struct Appliance::Impl {
  dataplane::ApplianceConfig config;
  std::unique_ptr<dataplane::Dataplane> dp;
  std::unique_ptr<SrtIngest> srt;
  std::vector<std::pair<std::size_t, std::size_t>> srt_route;  // SRT input -> (channel, input)
};

Appliance::Appliance(const dataplane::ApplianceConfig& config, const std::string& argv0)
    : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  dataplane::init_eal(config, argv0);
  impl_->dp = std::make_unique<dataplane::Dataplane>(config);
  std::vector<dataplane::InputConfig> srt_inputs;
  for (std::size_t c = 0; c < config.channels.size(); ++c) {
    for (std::size_t i = 0; i < config.channels[c].inputs.size(); ++i) {
      if (config.channels[c].inputs[i].kind != dataplane::InputKind::kSrt) continue;
      srt_inputs.push_back(config.channels[c].inputs[i]);
      impl_->srt_route.emplace_back(c, i);
    }
  }
  if (!srt_inputs.empty()) {
    dataplane::Dataplane* dp = impl_->dp.get();
    const auto* route = &impl_->srt_route;
    impl_->srt = std::make_unique<SrtIngest>(std::move(srt_inputs), [dp, route](std::size_t input, std::span<const std::uint8_t> bytes) {
      const auto [c, i] = (*route)[input];
      (void)dp->feed_external(c, i, bytes);  // refusals are counted by the data plane
    });
  }
}

Appliance::~Appliance() { stop(); }

void Appliance::start() {
  impl_->dp->start();
  if (impl_->srt) impl_->srt->start();
}

void Appliance::stop() {
  if (impl_->srt) impl_->srt->stop();  // no producer may outlive the rings
  if (impl_->dp) impl_->dp->stop();
}

std::string Appliance::status() const {
  std::string out;
  char line[512];
  const auto& cfg = impl_->config;
  for (std::size_t p = 0; p < cfg.ports.size(); ++p) {
    const auto s = impl_->dp->port_stats(p);
    std::uint64_t drops = 0;
    for (auto d : s.drops) drops += d;
    std::snprintf(line, sizeof line, "port=%s rx=%llu tx=%llu missed=%llu nombuf=%llu drops=%llu arp_replies=%llu igmp_reports=%llu\n",
                  cfg.ports[p].name.c_str(), static_cast<unsigned long long>(s.rx_packets),
                  static_cast<unsigned long long>(s.tx_packets), static_cast<unsigned long long>(s.rx_missed),
                  static_cast<unsigned long long>(s.rx_nombuf), static_cast<unsigned long long>(drops),
                  static_cast<unsigned long long>(s.arp_replies), static_cast<unsigned long long>(s.igmp_reports_sent));
    out += line;
  }
  std::size_t srt_index = 0;
  for (std::size_t c = 0; c < cfg.channels.size(); ++c) {
    const auto cs = impl_->dp->pipeline(c).stats();
    std::snprintf(line, sizeof line,
                  "channel=%s active_input=%s switches=%llu packets_in=%llu packets_out=%llu datagrams_out=%llu queue_drops=%llu\n",
                  cfg.channels[c].id.c_str(), cfg.channels[c].inputs.at(cs.active_input).name.c_str(),
                  static_cast<unsigned long long>(cs.switches), static_cast<unsigned long long>(cs.packets_in),
                  static_cast<unsigned long long>(cs.packets_out), static_cast<unsigned long long>(cs.datagrams_out),
                  static_cast<unsigned long long>(cs.dropped_queue_full));
    out += line;
    for (std::size_t i = 0; i < cfg.channels[c].inputs.size(); ++i) {
      const auto& in = cfg.channels[c].inputs[i];
      const auto s = impl_->dp->input_stats(c, i);
      std::snprintf(line, sizeof line, "channel=%s input=%s ts_packets=%llu datagrams=%llu",
                    cfg.channels[c].id.c_str(), in.name.c_str(), static_cast<unsigned long long>(s.packets),
                    static_cast<unsigned long long>(s.datagrams));
      out += line;
      if (in.kind == dataplane::InputKind::kSrt && impl_->srt) {
        const auto st = impl_->srt->stats(srt_index++);
        std::snprintf(line, sizeof line, " srt_connected=%d srt_rtt_ms=%.1f srt_lost=%llu srt_rejected=%llu ring_drops=%llu",
                      st.connected ? 1 : 0, st.rtt_ms, static_cast<unsigned long long>(st.lost),
                      static_cast<unsigned long long>(st.rejected_callers),
                      static_cast<unsigned long long>(impl_->dp->external_drops(c, i)));
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
