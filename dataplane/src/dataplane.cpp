// Dataplane set-up and the control side: ports, plans (channels, flows, groups), reload,
// start/stop, stats.
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_malloc.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <algorithm>
#include <ctime>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "dataplane_impl.hpp"

namespace twincast::dataplane {

const char* drop_reason_name(DropReason r) {
  switch (r) {
#define TWINCAST_X(e, s) \
  case DropReason::e:    \
    return s;
    TWINCAST_DATAPLANE_DROP_REASONS(TWINCAST_X)
#undef TWINCAST_X
  }
  return "unknown";
}

namespace {

std::atomic<unsigned> g_instances{0};

[[noreturn]] void fail(const PortConfig& p, const std::string& what, int rc) {
  throw std::runtime_error("port " + p.name + " (" + p.device + "): " + what + ": " + rte_strerror(rc < 0 ? -rc : rc));
}

std::uint32_t output_ssrc(const std::string& channel, std::size_t output) {
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (char c : channel) h = (h ^ static_cast<std::uint8_t>(c)) * 16777619u;
  return (h ^ static_cast<std::uint32_t>(output)) * 16777619u;
}

}  // namespace

InputState::~InputState() {
  for (auto& slot : window) {
    if (slot.m != nullptr) rte_pktmbuf_free(slot.m);
    slot = {};
  }
  if (ring != nullptr) {
    rte_mbuf* m = nullptr;
    while (rte_ring_dequeue(ring, reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
    rte_ring_free(ring);
  }
  if (ring_pool != nullptr) rte_mempool_free(ring_pool);
}

ChannelCore::~ChannelCore() {
  pipeline.reset();
  ott.reset();  // its queued chunks go back to the pool first
  if (ott_pool != nullptr) rte_mempool_free(ott_pool);
}

Dataplane::Impl::Impl(const ApplianceConfig& c, PipelineFactory& f) : config(c), factory(f) {
  try {
    instance = g_instances.fetch_add(1);
    const std::size_t qsbr_size = rte_rcu_qsbr_get_memsize(1);
    qsbr = static_cast<rte_rcu_qsbr*>(rte_zmalloc("tc_qsbr", qsbr_size, RTE_CACHE_LINE_SIZE));
    if (qsbr == nullptr || rte_rcu_qsbr_init(qsbr, 1) != 0) throw std::runtime_error("cannot set up the RCU state");
    for (std::size_t i = 0; i < c.ports.size(); ++i) {
      const PortConfig& pc = c.ports[i];
      auto ps = std::make_unique<PortState>();
      ps->config = pc;
      ps->index = i;
      const std::string dev = device_name(pc.device);
      if (rte_eth_dev_get_port_by_name(dev.c_str(), &ps->port_id) != 0 && !is_pci_address(pc.device)) {
        // A virtual device not on the EAL command line (or closed by an earlier instance): hot-plug it.
        (void)rte_dev_probe(pc.device.c_str());
      }
      if (rte_eth_dev_get_port_by_name(dev.c_str(), &ps->port_id) != 0) {
        throw std::runtime_error("port " + pc.name + ": no DPDK device \"" + dev + "\" (EAL arguments?)");
      }
      const std::uint16_t id = ps->port_id;
      // Not set up twice, nor released twice (the second release would close and remove
      // a device the first removed).
      for (const auto& other : ports)
        if (other->port_id == id)
          throw std::runtime_error("port " + pc.name + ": DPDK device \"" + dev + "\" is already port " +
                                   other->config.name);
      if (!is_pci_address(pc.device)) {
        rte_eth_dev_info info;
        if (rte_eth_dev_info_get(id, &info) == 0) ps->vdev = info.device;
      }
      // Listed before anything can fail: release() closes (and removes) the device.
      PortState& p = *ps;
      ports.push_back(std::move(ps));
      const int socket = rte_eth_dev_socket_id(id);
      const std::string pool_name = "tc" + std::to_string(instance) + "_" + std::to_string(i);
      const unsigned cache = std::min(256u, pc.mbufs * 2 / 3);
      p.pool = rte_pktmbuf_pool_create(pool_name.c_str(), pc.mbufs, cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                       socket < 0 ? static_cast<int>(SOCKET_ID_ANY) : socket);
      if (p.pool == nullptr) fail(pc, "mempool of " + std::to_string(pc.mbufs) + " mbufs", rte_errno);

      rte_eth_conf conf;
      std::memset(&conf, 0, sizeof conf);
      int rc = rte_eth_dev_configure(id, 1, 1, &conf);
      if (rc != 0) fail(pc, "configure", rc);
      std::uint16_t n_rx = static_cast<std::uint16_t>(std::min<std::uint32_t>(pc.rx_descriptors, 0xFFFF));
      std::uint16_t n_tx = static_cast<std::uint16_t>(std::min<std::uint32_t>(pc.tx_descriptors, 0xFFFF));
      rc = rte_eth_dev_adjust_nb_rx_tx_desc(id, &n_rx, &n_tx);
      if (rc != 0) fail(pc, "descriptor counts", rc);
      const unsigned qsocket = socket < 0 ? static_cast<unsigned>(SOCKET_ID_ANY) : static_cast<unsigned>(socket);
      rc = rte_eth_rx_queue_setup(id, 0, n_rx, qsocket, nullptr, p.pool);
      if (rc != 0) fail(pc, "RX queue", rc);
      rc = rte_eth_tx_queue_setup(id, 0, n_tx, qsocket, nullptr);
      if (rc != 0) fail(pc, "TX queue", rc);
      if (pc.mac) {
        rte_ether_addr a;
        std::copy(pc.mac->begin(), pc.mac->end(), a.addr_bytes);
        rc = rte_eth_dev_default_mac_addr_set(id, &a);
        // pcap and af_packet cannot set it; being promiscuous they receive for it anyway.
        if (rc != 0 && rc != -ENOTSUP) fail(pc, "set MAC", rc);
      }
      rc = rte_eth_dev_start(id);
      if (rc != 0) fail(pc, "start", rc);
      p.started = true;
      (void)rte_eth_promiscuous_enable(id);   // not every PMD has it; the classifier filters anyway
      (void)rte_eth_allmulticast_enable(id);
      rte_ether_addr a;
      rc = rte_eth_macaddr_get(id, &a);
      if (rc != 0) fail(pc, "read MAC", rc);
      std::copy(std::begin(a.addr_bytes), std::end(a.addr_bytes), p.mac.begin());
      if (pc.mac) p.mac = *pc.mac;  // PMDs without MAC setting (af_packet) still answer as configured
    }
    owned = build_plan(c, nullptr, diff_configs(ApplianceConfig{}, c));
    owned->generation = 1;
    current = owned.get();
    published.store(owned.get(), std::memory_order_release);
    worker_lcore = rte_get_next_lcore(static_cast<unsigned>(-1), 1, 0);
  } catch (...) {
    release();  // the destructor will not run: release the ports, then rethrow
    throw;
  }
}

std::unique_ptr<Plan> Dataplane::Impl::build_plan(const ApplianceConfig& c, const Plan* from, const ConfigDiff& diff) {
  auto plan = std::make_unique<Plan>();
  plan->config = c;
  plan->ports.resize(ports.size());
  auto port_index = [&](const std::string& name, const std::string& what) {
    for (std::size_t i = 0; i < ports.size(); ++i) {
      if (ports[i]->config.name == name) return i;
    }
    throw std::invalid_argument(what + ": unknown port \"" + name + "\"");
  };
  auto listed = [](const std::vector<std::string>& v, const std::string& id) {
    return std::find(v.begin(), v.end(), id) != v.end();
  };
  // A unicast destination's next hop: itself inside the port's subnet, else the gateway
  // (0: none, never resolved).
  auto next_hop = [](const PortConfig& pc, Ipv4 dst) -> Ipv4 {
    if (pc.address == 0) return 0;
    const Ipv4 mask = pc.prefix_len >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> pc.prefix_len);
    return (dst & mask) == (pc.address & mask) ? dst : pc.gateway;
  };
  // Next hops this plan needs beyond those the ports know: appended (after the plan is
  // built, so a failed build changes nothing), never removed, so that outputs of
  // unchanged channels keep their index.
  // A next hop is an address on a VLAN (outputs may tag their own).
  std::vector<std::vector<std::pair<Ipv4, std::uint16_t>>> new_hops(ports.size());
  auto hop_index = [&](std::size_t port, Ipv4 hop, std::uint16_t vlan) -> std::uint32_t {
    if (hop == 0) return kNoNeighbor;
    const PortState& p = *ports[port];
    const std::uint32_t known = p.n_neighbors.load(std::memory_order_acquire);
    for (std::uint32_t k = 0; k < known; ++k)
      if (p.neighbors[k].ip == hop && p.neighbors[k].vlan == vlan) return k;
    auto& add = new_hops[port];
    const auto it = std::find(add.begin(), add.end(), std::pair{hop, vlan});
    const auto k = static_cast<std::uint32_t>(known + static_cast<std::uint32_t>(it - add.begin()));
    if (it == add.end()) {
      if (k >= kMaxNeighbors)
        throw std::invalid_argument("port " + p.config.name + ": more than " + std::to_string(kMaxNeighbors) +
                                    " unicast next hops (restart twincastd to forget old ones)");
      add.emplace_back(hop, vlan);
    }
    return k;
  };
  auto make_output = [&](const OutputConfig& out, const std::string& who, const std::string& ssrc_key, std::size_t oi) {
    OutputState os;
    os.port = port_index(out.port, who + " output");
    const PortState& p = *ports[os.port];
    os.rtp = out.kind == OutputKind::kRtp;
    os.resolved = net::is_multicast(out.address);
    os.frame.dst_mac = net::multicast_mac(out.address);
    os.frame.vlan = out.vlan != 0 ? out.vlan : p.config.vlan;
    if (!os.resolved) {
      os.neighbor = hop_index(os.port, next_hop(p.config, out.address), os.frame.vlan);
      os.frame.dst_mac = Mac{};  // the worker fills it in when it takes the plan over (adopt)
    }
    os.frame.src_mac = p.mac;
    os.frame.src_ip = out.source != 0 ? out.source : p.config.address;
    os.frame.dst_ip = out.address;
    os.frame.src_port = out.source_port != 0 ? out.source_port : out.udp_port;
    os.frame.dst_port = out.udp_port;
    os.frame.ttl = out.ttl;
    os.frame.dscp = out.dscp;
    os.ssrc = output_ssrc(ssrc_key, oi);
    return os;
  };
  auto find_old = [&](const std::string& id) -> std::shared_ptr<ChannelState> {
    if (from == nullptr) return nullptr;
    for (std::size_t i = 0; i < from->config.channels.size(); ++i)
      if (from->config.channels[i].id == id) return from->channels[i];
    return nullptr;
  };
  auto old_config = [&](const std::string& id) -> const ChannelConfig* {
    if (from == nullptr) return nullptr;
    for (const ChannelConfig& ch : from->config.channels)
      if (ch.id == id) return &ch;
    return nullptr;
  };
  // The service's description (what Remuxer::describe changes) differs?
  auto renamed = [](const ChannelConfig& a, const ChannelConfig& b) {
    return a.name != b.name || a.provider != b.provider || a.lcn != b.lcn;
  };

  // Channels: the unchanged ones are taken over as they are, the updated ones get new
  // outputs around their core (and are renamed by the worker); the others are built anew.
  for (const ChannelConfig& ch : c.channels) {
    if (listed(diff.channels_unchanged, ch.id)) {
      std::shared_ptr<ChannelState> old = find_old(ch.id);
      if (!old) throw std::logic_error("channel " + ch.id + ": unchanged but not running");
      plan->channels.push_back(std::move(old));
      plan->predecessors.push_back(nullptr);
      continue;
    }
    const std::shared_ptr<ChannelState> old = find_old(ch.id);
    plan->predecessors.push_back(old.get());
    auto cs = std::make_shared<ChannelState>();
    for (std::size_t oi = 0; oi < ch.outputs.size(); ++oi)
      cs->outputs.push_back(make_output(ch.outputs[oi], "channel " + ch.id, ch.id, oi));
    if (listed(diff.channels_updated, ch.id)) {
      const ChannelConfig* before = old_config(ch.id);
      if (!old || before == nullptr) throw std::logic_error("channel " + ch.id + ": updated but not running");
      cs->core = old->core;
      if (renamed(*before, ch))
        plan->renames.push_back({cs->core->pipeline.get(), nullptr, 0,
                                 &plan->config.channels[static_cast<std::size_t>(&ch - c.channels.data())]});
      plan->channels.push_back(std::move(cs));
      continue;
    }
    cs->core = std::make_shared<ChannelCore>();
    ChannelCore& core = *cs->core;
    core.pipeline = factory(ch);
    if (!core.pipeline) throw std::invalid_argument("channel " + ch.id + ": no pipeline");
    for (std::size_t ii = 0; ii < ch.inputs.size(); ++ii) {
      const InputConfig& in = ch.inputs[ii];
      auto is = std::make_unique<InputState>();
      is->pipeline = core.pipeline.get();
      is->input = ii;
      is->rtp = in.kind == InputKind::kRtp;
      if (in.kind == InputKind::kSrt) {
        const std::string name = "tc_srt_" + std::to_string(instance) + "_" + std::to_string(next_object++);
        is->ring = rte_ring_create(name.c_str(), kExternalRing, static_cast<int>(rte_socket_id()),
                                   RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (is->ring == nullptr) throw std::runtime_error("channel " + ch.id + " input " + in.name + ": cannot create its ring");
        // Enough mbufs to fill the ring, plus what the worker holds while draining.
        is->ring_pool = rte_pktmbuf_pool_create((name + "p").c_str(), kExternalRing + 2 * kBurst, 0, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
        if (is->ring_pool == nullptr)
          throw std::runtime_error("channel " + ch.id + " input " + in.name + ": cannot create its mbuf pool");
        is->aligner = std::make_unique<mpegts::PacketAligner>();
      } else {
        is->port = ports[port_index(in.port, "channel " + ch.id)].get();
      }
      core.inputs.push_back(std::move(is));
    }
    if (ch.hls) {
      const std::string name = "tc_ott_" + std::to_string(instance) + "_" + std::to_string(next_object++);
      // The ring full, plus what the worker's mempool cache may hold.
      constexpr unsigned kOttCache = 32;
      core.ott_pool = rte_pktmbuf_pool_create((name + "p").c_str(), kOttRing + 2 * kOttCache, kOttCache, 0,
                                             static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + OttFeed::kChunkBytes),
                                             static_cast<int>(rte_socket_id()));
      if (core.ott_pool == nullptr)
        throw std::runtime_error("channel " + ch.id + ": cannot create the OTT mbuf pool: " + rte_strerror(rte_errno));
      core.ott = std::make_unique<OttFeed>(name, kOttRing, core.ott_pool);
      core.pipeline->add_tap(core.ott.get(), 0);
    }
    plan->channels.push_back(std::move(cs));
  }

  // Flows: every UDP/RTP input of every channel, through each port's classifier.
  std::vector<std::size_t> n_flows(ports.size(), 0);
  for (const ChannelConfig& ch : c.channels)
    for (const InputConfig& in : ch.inputs)
      if (in.kind != InputKind::kSrt) ++n_flows[port_index(in.port, "channel " + ch.id + " input " + in.name)];
  for (std::size_t i = 0; i < ports.size(); ++i) plan->ports[i].classifier = FlowClassifier(n_flows[i]);
  for (std::size_t ci = 0; ci < c.channels.size(); ++ci) {
    const ChannelConfig& ch = c.channels[ci];
    ChannelCore& core = *plan->channels[ci]->core;
    for (std::size_t ii = 0; ii < ch.inputs.size(); ++ii) {
      const InputConfig& in = ch.inputs[ii];
      InputState* is = core.inputs[ii].get();
      if (in.kind == InputKind::kSrt) {
        plan->external_inputs.push_back(is);
        continue;
      }
      const std::size_t pi = port_index(in.port, "channel " + ch.id);
      PortPlan& pp = plan->ports[pi];
      const auto id = static_cast<std::uint32_t>(plan->flows.size());
      if (pp.classifier.add(in.address, in.udp_port, in.source, id)) {
        plan->flows.push_back(Flow{{is}});
        if (is->rtp) plan->rtp_flows.push_back(id);
      } else {
        // The same flow feeds several channels (an MPTS split by source_service_id, which
        // the config validator allows).
        Flow& f = plan->flows.at(pp.classifier.lookup(in.address, in.udp_port, in.source));
        if (f.members.front()->rtp != is->rtp) {
          throw std::invalid_argument("channel " + ch.id + " input " + in.name +
                                      ": the same group, port and source is already an input of another kind");
        }
        for (const InputState* m : f.members) {
          if (m->pipeline == is->pipeline) {
            throw std::invalid_argument("channel " + ch.id + " input " + in.name +
                                        ": the same group, port and source is already an input of this channel");
          }
        }
        f.members.push_back(is);
        if (is->rtp) plan->rtp_window_of.emplace_back(is, f.members.front());
      }
      if (net::is_multicast(in.address)) {
        const GroupJoin j{in.address, in.source};
        if (std::none_of(pp.groups.begin(), pp.groups.end(), [&](const GroupJoin& g) { return g == j; }))
          pp.groups.push_back(j);
      }
    }
  }
  // Group changes against the plan before.
  for (std::size_t i = 0; i < ports.size(); ++i) {
    PortPlan& pp = plan->ports[i];
    const std::vector<GroupJoin> none;
    const std::vector<GroupJoin>& before = from != nullptr ? from->ports[i].groups : none;
    for (const GroupJoin& g : before)
      if (std::find(pp.groups.begin(), pp.groups.end(), g) == pp.groups.end()) pp.leave.push_back(g);
    for (const GroupJoin& g : pp.groups)
      if (std::find(before.begin(), before.end(), g) == before.end()) pp.join.push_back(g);
  }

  // Multiplexes: unchanged ones are taken over; the others are built on their members'
  // (new) pipelines, which diff_configs() restarted with them.
  for (const MultiplexConfig& mc : c.multiplexes) {
    const bool rebuilt = listed(diff.multiplexes_added, mc.id) || listed(diff.multiplexes_changed, mc.id);
    if (!rebuilt && from != nullptr) {
      bool found = false;
      for (std::size_t m = 0; m < from->config.multiplexes.size() && !found; ++m) {
        if (from->config.multiplexes[m].id != mc.id) continue;
        plan->multiplexes.push_back(from->multiplexes[m]);
        found = true;
        // Members updated in place and renamed: the multiplex's tables follow. (Slots are
        // the places in the member list, which a kept multiplex did not change; the members'
        // indices among the channels may have.)
        for (std::size_t slot = 0; slot < mc.channels.size(); ++slot) {
          const ChannelConfig* before = old_config(mc.channels[slot]);
          const auto now = std::find_if(plan->config.channels.begin(), plan->config.channels.end(),
                                        [&](const ChannelConfig& x) { return x.id == mc.channels[slot]; });
          if (before == nullptr || now == plan->config.channels.end())
            throw std::logic_error("multiplex " + mc.id + ": a member of the kept multiplex is gone");
          // Its taps are on the members' pipelines: they must go on (diff_configs()).
          if (!listed(diff.channels_unchanged, now->id) && !listed(diff.channels_updated, now->id))
            throw std::logic_error("multiplex " + mc.id + ": kept, but its member " + now->id + " was restarted");
          if (renamed(*before, *now)) plan->renames.push_back({nullptr, from->multiplexes[m]->multiplex.get(), slot, &*now});
        }
      }
      if (found) {
        plan->multiplex_predecessors.push_back(nullptr);
        continue;
      }
    }
    const MultiplexState* before = nullptr;
    for (std::size_t m = 0; from != nullptr && m < from->config.multiplexes.size(); ++m)
      if (from->config.multiplexes[m].id == mc.id) before = from->multiplexes[m].get();
    plan->multiplex_predecessors.push_back(before);
    auto ms = std::make_shared<MultiplexState>();
    ms->multiplex = std::make_unique<Multiplex>(mc, c.channels);
    for (std::size_t oi = 0; oi < mc.outputs.size(); ++oi)
      ms->outputs.push_back(make_output(mc.outputs[oi], "multiplex " + mc.id, "multiplex/" + mc.id, oi));
    for (std::size_t slot = 0; slot < ms->multiplex->member_count(); ++slot) {
      const std::size_t member = ms->multiplex->member_channel(slot);
      if (listed(diff.channels_unchanged, c.channels[member].id) || listed(diff.channels_updated, c.channels[member].id))
        throw std::logic_error("multiplex " + mc.id + ": member " + c.channels[member].id + " was not restarted");
      plan->channels[member]->core->pipeline->add_tap(ms->multiplex.get(), slot);
    }
    plan->multiplexes.push_back(std::move(ms));
  }

  // QoS tiers of the HLS channels: distinct priorities, lowest first.
  std::vector<std::uint8_t> prios;
  for (const ChannelConfig& ch : c.channels)
    if (ch.hls && std::find(prios.begin(), prios.end(), ch.priority) == prios.end()) prios.push_back(ch.priority);
  std::sort(prios.begin(), prios.end());
  plan->ott_tiers = static_cast<std::uint8_t>(std::min<std::size_t>(prios.size(), 255));
  plan->ott_priorities = prios;
  for (const ChannelConfig& ch : c.channels) {
    const auto it = std::find(prios.begin(), prios.end(), ch.priority);
    plan->ott_tier.push_back(ch.hls ? static_cast<std::uint8_t>(std::min<std::ptrdiff_t>(it - prios.begin(), 254)) : 255);
  }

  // The next hops its outputs send through (those of channels and multiplexes taken over too).
  auto mark_used = [&](const std::vector<OutputState>& outputs) {
    for (const OutputState& o : outputs)
      if (o.neighbor != kNoNeighbor) plan->ports[o.port].neighbors_used |= std::uint64_t{1} << o.neighbor;
  };
  for (const auto& cs : plan->channels) mark_used(cs->outputs);
  for (const auto& ms : plan->multiplexes) mark_used(ms->outputs);

  // The plan is complete: the next hops it needs join their ports' tables (unresolved;
  // the worker asks for them at its next ARP tick).
  for (std::size_t i = 0; i < ports.size(); ++i) {
    PortState& p = *ports[i];
    std::uint32_t n = p.n_neighbors.load(std::memory_order_relaxed);
    for (const auto& [hop, vlan] : new_hops[i]) {
      p.neighbors[n] = Neighbor{};
      p.neighbors[n].ip = hop;
      p.neighbors[n].vlan = vlan;
      ++n;
    }
    p.n_neighbors.store(n, std::memory_order_release);
  }
  return plan;
}

std::unique_ptr<Plan> Dataplane::Impl::publish(std::unique_ptr<Plan> next) {
  next->generation = owned->generation + 1;
  next->before = owned.get();
  std::unique_ptr<Plan> old = std::move(owned);
  owned = std::move(next);
  published.store(owned.get(), std::memory_order_release);
  if (running) {
    // The worker takes the plan over at the start of a loop turn (and sends its group
    // changes then); once it has, and has finished the turn, the old plan is unused.
    while (adopted_generation.load(std::memory_order_acquire) < owned->generation) rte_pause();
    rte_rcu_qsbr_synchronize(qsbr, RTE_QSBR_THRID_INVALID);
  } else {
    current = owned.get();
    adopt(*owned);  // the group changes, sent now (as stop() sends leaves)
    for (auto& p : ports) flush_tx(*p);
  }
  return old;
}

Dataplane::Impl::~Impl() { release(); }

void Dataplane::Impl::release() {
  // The plans first: their rings, windows and OTT feeds hold mbufs of the pools below.
  published.store(nullptr, std::memory_order_release);
  current = nullptr;
  owned.reset();
  for (auto& p : ports) {
    if (p == nullptr) continue;
    if (p->n_tx != 0) rte_pktmbuf_free_bulk(p->tx, p->n_tx);
    p->n_tx = 0;
    if (p->started) {
      (void)rte_eth_dev_stop(p->port_id);
      p->started = false;
    }
    if (p->vdev != nullptr) {
      (void)rte_eth_dev_close(p->port_id);
      (void)rte_dev_remove(p->vdev);
      p->vdev = nullptr;
    } else {
      (void)rte_eth_dev_close(p->port_id);
    }
    if (p->pool != nullptr) {
      rte_mempool_free(p->pool);
      p->pool = nullptr;
    }
  }
  ports.clear();
  if (qsbr != nullptr) {
    rte_free(qsbr);
    qsbr = nullptr;
  }
}

Dataplane::Dataplane(const ApplianceConfig& config, PipelineFactory factory)
    : impl_(std::make_unique<Impl>(config, factory)) {}

Dataplane::~Dataplane() { stop(); }

void Dataplane::start() {
  if (impl_->running) return;
  if (impl_->worker_lcore >= RTE_MAX_LCORE) {
    throw std::runtime_error("no worker lcore: EAL lcores \"" + impl_->config.eal.lcores + "\" need two or more");
  }
  impl_->stop_requested.store(false, std::memory_order_relaxed);
  const int rc = rte_eal_remote_launch(&Impl::worker_main, impl_.get(), impl_->worker_lcore);
  if (rc != 0) throw std::runtime_error(std::string("cannot launch the worker: ") + rte_strerror(-rc));
  impl_->running = true;
}

unsigned Dataplane::worker_lcore() const { return impl_->worker_lcore; }

unsigned Dataplane::idle_lcores() const {
  const unsigned n = rte_lcore_count();  // the main lcore, the worker, the rest
  return n > 2 ? n - 2 : 0;
}

void Dataplane::stop() {
  if (!impl_->running) return;
  impl_->stop_requested.store(true, std::memory_order_release);
  (void)rte_eal_wait_lcore(impl_->worker_lcore);
  impl_->running = false;
  impl_->current = impl_->owned.get();
  send_igmp_reports(false);
}

ConfigDiff Dataplane::apply(const ApplianceConfig& next) {
  Impl& d = *impl_;
  ConfigDiff diff = diff_configs(d.plan().config, next);
  if (!diff.live()) {
    std::string why;
    for (const auto& r : diff.restart_reasons) why += (why.empty() ? "" : "; ") + r;
    throw std::invalid_argument(why + ": restart twincastd to apply");
  }
  // Nothing to change, unless only the order of channels or multiplexes did: every channel
  // is taken over as it is, but the new plan lists them in the new order, by which the
  // accessors (pipeline(c), input_stats(c, i), output_stats(c, o)) know them.
  if (diff.empty() && next == d.plan().config) return diff;
  // Built completely before anything changes: a failure leaves the running plan as it is.
  std::unique_ptr<Plan> plan = d.build_plan(next, &d.plan(), diff);
  std::unique_ptr<Plan> old = d.publish(std::move(plan));
  old.reset();  // removed and restarted channels stop here (on this thread)
  // Channels updated in place send elsewhere now: a later restart must know their outputs
  // by where they send (Channel::readdress). The worker has taken the plan over and reads
  // these only when a later reload restarts the channel.
  for (std::size_t c = 0; c < next.channels.size(); ++c)
    if (std::find(diff.channels_updated.begin(), diff.channels_updated.end(), next.channels[c].id) !=
        diff.channels_updated.end())
      d.plan().channels[c]->core->pipeline->readdress(next.channels[c].outputs);
  return diff;
}

const ApplianceConfig& Dataplane::config() const { return impl_->plan().config; }

WorkerStats Dataplane::worker_stats() const {
  constexpr auto r = std::memory_order_relaxed;
  const WorkerCounters& c = impl_->worker_counters;
  return WorkerStats{impl_->worker_lcore, c.poll_ns.load(r), c.busy_ns.load(r), c.turns.load(r), c.busy_turns.load(r)};
}

QosStats Dataplane::qos_stats() const {
  constexpr auto r = std::memory_order_relaxed;
  return QosStats{impl_->qos.shed_published.load(r), impl_->plan().ott_tiers, impl_->qos.overload_windows.load(r)};
}

bool Dataplane::running() const { return impl_->running; }
std::size_t Dataplane::port_count() const { return impl_->ports.size(); }
Mac Dataplane::port_mac(std::size_t port) const { return impl_->ports.at(port)->mac; }
std::uint16_t Dataplane::port_id(std::size_t port) const { return impl_->ports.at(port)->port_id; }
rte_mempool* Dataplane::mempool(std::size_t port) const { return impl_->ports.at(port)->pool; }
ChannelPipeline& Dataplane::pipeline(std::size_t channel) { return *impl_->plan().channels.at(channel)->core->pipeline; }
std::size_t Dataplane::multiplex_count() const { return impl_->plan().multiplexes.size(); }
MultiplexStats Dataplane::multiplex_stats(std::size_t multiplex) const {
  return impl_->plan().multiplexes.at(multiplex)->multiplex->stats();
}

namespace {
OutputStats output_stats_of(const std::vector<OutputState>& outputs, std::size_t output) {
  const OutputCounters& c = *outputs.at(output).counters;
  constexpr auto r = std::memory_order_relaxed;
  return OutputStats{c.datagrams.load(r), c.packets.load(r), c.bytes.load(r), c.dropped_datagrams.load(r),
                     c.dropped_packets.load(r)};
}
}  // namespace

OutputStats Dataplane::output_stats(std::size_t channel, std::size_t output) const {
  const ChannelState& c = *impl_->plan().channels.at(channel);
  OutputStats s = output_stats_of(c.outputs, output);
  s.queue_dropped_packets = c.core->pipeline->queue_dropped_packets(output);
  return s;
}
OutputStats Dataplane::multiplex_output_stats(std::size_t multiplex, std::size_t output) const {
  const MultiplexState& m = *impl_->plan().multiplexes.at(multiplex);
  OutputStats s = output_stats_of(m.outputs, output);
  s.queue_dropped_packets = m.multiplex->queue_dropped_packets(output);
  return s;
}
InputSnapshot Dataplane::input_snapshot(std::size_t channel, std::size_t input) const {
  return impl_->plan().channels.at(channel)->core->pipeline->input_snapshot(input);
}
PacingHistogram Dataplane::pacing_lateness(std::size_t channel, std::size_t output) const {
  return impl_->plan().channels.at(channel)->core->pipeline->pacing_lateness(output);
}
PacingHistogram Dataplane::multiplex_pacing_lateness(std::size_t multiplex, std::size_t output) const {
  return impl_->plan().multiplexes.at(multiplex)->multiplex->pacing_lateness(output);
}

ExternalInput* Dataplane::external_input(std::size_t channel, std::size_t input) const {
  InputState& in = *impl_->plan().channels.at(channel)->core->inputs.at(input);
  if (in.ring == nullptr) throw std::out_of_range("not an SRT input");
  return reinterpret_cast<ExternalInput*>(&in);
}

bool Dataplane::feed_external(ExternalInput* handle, std::span<const std::uint8_t> bytes) {
  InputState& in = *reinterpret_cast<InputState*>(handle);
  if (!bytes.empty() && in.restart_pending) {
    // The new stream's mark found the ring full: it goes before the stream's first bytes.
    if (!feed_external(handle, {})) {
      bump(in.counters.external_drops);
      return false;
    }
  }
  rte_mbuf* m = rte_pktmbuf_alloc(in.ring_pool);
  if (m == nullptr) {
    in.restart_pending = in.restart_pending || bytes.empty();
    if (!bytes.empty()) bump(in.counters.external_drops);
    return false;
  }
  if (bytes.size() > rte_pktmbuf_tailroom(m)) bytes = bytes.first(rte_pktmbuf_tailroom(m));
  auto* dst = static_cast<std::uint8_t*>(static_cast<void*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(bytes.size()))));
  if (!bytes.empty()) std::memcpy(dst, bytes.data(), bytes.size());  // the mark's span may be null
  if (rte_ring_enqueue(in.ring, m) != 0) {
    rte_pktmbuf_free(m);
    in.restart_pending = in.restart_pending || bytes.empty();
    if (!bytes.empty()) bump(in.counters.external_drops);
    return false;
  }
  if (bytes.empty()) in.restart_pending = false;
  return true;
}

bool Dataplane::feed_external(std::size_t channel, std::size_t input, std::span<const std::uint8_t> bytes) {
  return feed_external(external_input(channel, input), bytes);
}

OttFeed* Dataplane::ott_feed(std::size_t channel) const { return impl_->plan().channels.at(channel)->core->ott.get(); }

std::uint64_t Dataplane::external_drops(std::size_t channel, std::size_t input) const {
  return impl_->plan().channels.at(channel)->core->inputs.at(input)->counters.external_drops.load(std::memory_order_relaxed);
}

PortStats Dataplane::port_stats(std::size_t port) const {
  const PortCounters& c = impl_->ports.at(port)->counters;
  constexpr auto r = std::memory_order_relaxed;
  PortStats s;
  s.rx_packets = c.rx_packets.load(r);
  s.rx_bytes = c.rx_bytes.load(r);
  s.tx_packets = c.tx_packets.load(r);
  s.tx_bytes = c.tx_bytes.load(r);
  s.rx_missed = c.rx_missed.load(r);
  s.rx_nombuf = c.rx_nombuf.load(r);
  s.arp_replies = c.arp_replies.load(r);
  s.arp_other = c.arp_other.load(r);
  s.arp_requests_sent = c.arp_requests_sent.load(r);
  s.arp_learnt = c.arp_learnt.load(r);
  s.arp_expired = c.arp_expired.load(r);
  s.igmp_queries = c.igmp_queries.load(r);
  s.igmp_reports_sent = c.igmp_reports_sent.load(r);
  s.igmp_other = c.igmp_other.load(r);
  s.igmp_compat_reports = c.igmp_compat_reports.load(r);
  s.igmp_ssm_as_asm = c.igmp_ssm_as_asm.load(r);
  s.igmp_version = c.igmp_version.load(r);
  for (std::size_t i = 0; i < kDropReasonCount; ++i) s.drops[i] = c.drops[i].load(r);
  return s;
}

InputStats Dataplane::input_stats(std::size_t channel, std::size_t input) const {
  const Plan& plan = impl_->plan();
  const InputState* in = plan.channels.at(channel)->core->inputs.at(input).get();
  const InputCounters& c = in->counters;
  // A flow shared with an earlier channel's input is reordered once, in that input's
  // window: its RTP counters are the flow's.
  const InputState* window = in;
  for (const auto& [member, head] : plan.rtp_window_of)
    if (member == in) window = head;
  const InputCounters& w = window->counters;
  constexpr auto r = std::memory_order_relaxed;
  return InputStats{c.datagrams.load(r), c.packets.load(r), w.rtp_out_of_order.load(r), w.rtp_lost.load(r),
                    w.rtp_duplicates.load(r)};
}

void Dataplane::process_burst(std::size_t port, rte_mbuf** frames, std::uint16_t n, std::uint64_t now_ns) {
  PortState& p = *impl_->ports.at(port);
  impl_->current = impl_->owned.get();
  if (n == 0) p.full_run = 0;  // an empty burst: the port is drained (QoS)
  while (n > 0) {
    const std::uint16_t k = std::min(n, kBurst);
    impl_->rx_burst(p, frames, k, now_ns);
    frames += k;
    n = static_cast<std::uint16_t>(n - k);
  }
  impl_->flush_tx(p);
}

void Dataplane::poll_once(std::uint64_t now_ns) {
  impl_->current = impl_->owned.get();
  impl_->qos_tick(now_ns);
  impl_->arp_tick(now_ns);
  impl_->drain_external(now_ns);
  impl_->igmp_repeat_tick(now_ns);
  if (!impl_->current->rtp_flows.empty()) {
    impl_->expire_rtp(now_ns);
    impl_->free_retired();
  }
  impl_->poll_channels(now_ns);
}

void Dataplane::send_igmp_reports(bool join) {
  for (std::size_t i = 0; i < impl_->ports.size(); ++i) {
    PortState& p = *impl_->ports[i];
    impl_->send_reports(p, impl_->plan().ports[i].groups, join ? net::IgmpEvent::kJoin : net::IgmpEvent::kLeave, 0);
    impl_->flush_tx(p);
  }
}

// CLOCK_MONOTONIC (vDSO, ~20 ns, once per loop turn), not the TSC: DPDK's
// rte_get_tsc_hz() can be the nominal frequency rather than the measured one (seen here:
// 2600 MHz against the kernel's 2596.146 MHz), and 0.15 % of clock error walks every PCR-
// paced datagram 1.5 ms further from its schedule each second (appliance_ns_test
// PacingP99AtTheReceiver).
std::uint64_t Dataplane::now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace twincast::dataplane
