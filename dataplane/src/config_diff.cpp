// diff_configs(): what a reload changes (no DPDK here).
#include <algorithm>
#include <set>

#include "twincast/dataplane/config.hpp"

namespace twincast::dataplane {

namespace {

template <class T>
const T* find_id(const std::vector<T>& v, const std::string& id) {
  const auto it = std::find_if(v.begin(), v.end(), [&](const T& x) { return x.id == id; });
  return it == v.end() ? nullptr : &*it;
}

}  // namespace

bool updated_in_place(const ChannelConfig& a, const ChannelConfig& b) {
  if (a.outputs.size() != b.outputs.size()) return false;
  const auto same_schedule = [](const OutputConfig& x, const OutputConfig& y) {
    return x.packets_per_datagram == y.packets_per_datagram && x.pacing == y.pacing && x.cbr_bps == y.cbr_bps;
  };
  for (std::size_t o = 0; o < a.outputs.size(); ++o) {
    if (!same_schedule(a.outputs[o], b.outputs[o])) return false;
    // An output that stays (same port, group and UDP port) but moves in the list must keep
    // its schedule: the kept pacers feed outputs by their place.
    for (const OutputConfig& x : a.outputs)
      if (x.port == b.outputs[o].port && x.address == b.outputs[o].address && x.udp_port == b.outputs[o].udp_port &&
          !same_schedule(x, b.outputs[o]))
        return false;
  }
  ChannelConfig rest = a;
  rest.outputs = b.outputs;
  rest.name = b.name;
  rest.provider = b.provider;
  rest.lcn = b.lcn;
  rest.priority = b.priority;
  return rest == b;
}

ConfigDiff diff_configs(const ApplianceConfig& running, const ApplianceConfig& next) {
  ConfigDiff d;
  if (running.eal != next.eal) d.restart_reasons.emplace_back("dataplane.eal changed");
  if (running.ports != next.ports) d.restart_reasons.emplace_back("dataplane.ports changed");
  if (running.control.api_listen != next.control.api_listen)
    d.restart_reasons.emplace_back("control.api_listen changed");
  if (running.control.metrics_listen != next.control.metrics_listen)
    d.restart_reasons.emplace_back("control.metrics_listen changed");
  if (running.ott != next.ott) d.restart_reasons.emplace_back("ott changed");

  // Multiplexes first: a rebuilt one restarts its members (old and new). A multiplex is fed
  // by taps on its members' pipelines, so one with a member that gets a new pipeline (its
  // own change, or another multiplex it belongs to was rebuilt or removed) is rebuilt on the
  // new one, and restarts its other members in turn: repeated until nothing more moves.
  std::set<std::string> dragged;
  for (const MultiplexConfig& m : running.multiplexes) {
    if (find_id(next.multiplexes, m.id) != nullptr) continue;
    d.multiplexes_removed.push_back(m.id);
    dragged.insert(m.channels.begin(), m.channels.end());
  }
  std::vector<bool> rebuilt(next.multiplexes.size(), false);
  for (bool more = true; more;) {
    more = false;
    for (std::size_t k = 0; k < next.multiplexes.size(); ++k) {
      if (rebuilt[k]) continue;
      const MultiplexConfig& m = next.multiplexes[k];
      const MultiplexConfig* old = find_id(running.multiplexes, m.id);
      bool rebuild = old == nullptr || *old != m;
      for (const std::string& c : m.channels) {
        const ChannelConfig* a = find_id(running.channels, c);
        const ChannelConfig* b = find_id(next.channels, c);
        rebuild = rebuild || a == nullptr || b == nullptr || dragged.count(c) != 0 || (*a != *b && !updated_in_place(*a, *b));
      }
      if (!rebuild) continue;
      rebuilt[k] = more = true;
      dragged.insert(m.channels.begin(), m.channels.end());
      if (old != nullptr) dragged.insert(old->channels.begin(), old->channels.end());
    }
  }
  for (std::size_t k = 0; k < next.multiplexes.size(); ++k) {
    if (!rebuilt[k]) continue;
    const std::string& id = next.multiplexes[k].id;
    (find_id(running.multiplexes, id) == nullptr ? d.multiplexes_added : d.multiplexes_changed).push_back(id);
  }

  for (const ChannelConfig& c : next.channels) {
    const ChannelConfig* old = find_id(running.channels, c.id);
    if (old == nullptr) {
      d.channels_added.push_back(c.id);
    } else if (dragged.count(c.id) != 0 || (*old != c && !updated_in_place(*old, c))) {
      d.channels_changed.push_back(c.id);
    } else if (*old != c) {
      d.channels_updated.push_back(c.id);
    } else {
      d.channels_unchanged.push_back(c.id);
    }
  }
  for (const ChannelConfig& c : running.channels) {
    if (find_id(next.channels, c.id) == nullptr) d.channels_removed.push_back(c.id);
  }
  return d;
}

}  // namespace twincast::dataplane
