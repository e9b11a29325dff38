// Dataplane set-up and the control side: ports, classifier, pipelines, start/stop, stats.
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
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

Dataplane::Impl::Impl(const ApplianceConfig& c, PipelineFactory& factory) : config(c) {
  try {
    const unsigned instance = g_instances.fetch_add(1);
    for (std::size_t i = 0; i < c.ports.size(); ++i) {
      const PortConfig& pc = c.ports[i];
      auto ps = std::make_unique<PortState>();
      ps->config = pc;
      const std::string dev = pc.device.substr(0, pc.device.find(','));
      if (rte_eth_dev_get_port_by_name(dev.c_str(), &ps->port_id) != 0 && !is_pci_address(pc.device)) {
        // A virtual device not on the EAL command line (or closed by an earlier instance): hot-plug it.
        (void)rte_dev_probe(pc.device.c_str());
      }
      if (rte_eth_dev_get_port_by_name(dev.c_str(), &ps->port_id) != 0) {
        throw std::runtime_error("port " + pc.name + ": no DPDK device \"" + dev + "\" (EAL arguments?)");
      }
      const std::uint16_t id = ps->port_id;
      if (!is_pci_address(pc.device)) {
        rte_eth_dev_info info;
        if (rte_eth_dev_info_get(id, &info) == 0) ps->vdev = info.device;
      }
      const int socket = rte_eth_dev_socket_id(id);
      const std::string pool_name = "tc" + std::to_string(instance) + "_" + std::to_string(i);
      const unsigned cache = std::min(256u, pc.mbufs * 2 / 3);
      ps->pool = rte_pktmbuf_pool_create(pool_name.c_str(), pc.mbufs, cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                         socket < 0 ? static_cast<int>(SOCKET_ID_ANY) : socket);
      if (ps->pool == nullptr) fail(pc, "mempool of " + std::to_string(pc.mbufs) + " mbufs", rte_errno);
      PortState& p = *ps;
      ports.push_back(std::move(ps));

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

    auto port_index = [&](const std::string& name, const std::string& what) {
      for (std::size_t i = 0; i < ports.size(); ++i) {
        if (ports[i]->config.name == name) return i;
      }
      throw std::invalid_argument(what + ": unknown port \"" + name + "\"");
    };
    // A unicast destination's next hop: itself inside the port's subnet, else the
    // gateway (0: none, never resolved).
    auto next_hop = [](const PortConfig& pc, Ipv4 dst) -> Ipv4 {
      if (pc.address == 0) return 0;
      const Ipv4 mask = pc.prefix_len >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> pc.prefix_len);
      return (dst & mask) == (pc.address & mask) ? dst : pc.gateway;
    };
    // Each port's neighbor table, sized once from every unicast output (never grows in the loop).
    {
      std::vector<std::vector<Ipv4>> hops(ports.size());
      auto collect = [&](const OutputConfig& out) {
        if (net::is_multicast(out.address)) return;
        for (std::size_t i = 0; i < ports.size(); ++i) {
          if (ports[i]->config.name != out.port) continue;
          const Ipv4 hop = next_hop(ports[i]->config, out.address);
          if (hop != 0 && std::find(hops[i].begin(), hops[i].end(), hop) == hops[i].end()) hops[i].push_back(hop);
        }
      };
      for (const ChannelConfig& ch : c.channels)
        for (const OutputConfig& out : ch.outputs) collect(out);
      for (const MultiplexConfig& mc : c.multiplexes)
        for (const OutputConfig& out : mc.outputs) collect(out);
      for (std::size_t i = 0; i < ports.size(); ++i) {
        ports[i]->neighbors.resize(hops[i].size());
        for (std::size_t k = 0; k < hops[i].size(); ++k) ports[i]->neighbors[k].ip = hops[i][k];
      }
    }
    auto make_output = [&](const OutputConfig& out, const std::string& who, const std::string& ssrc_key, std::size_t oi) {
      OutputState os;
      os.port = port_index(out.port, who + " output");
      const PortState& p = *ports[os.port];
      os.rtp = out.kind == OutputKind::kRtp;
      os.resolved = net::is_multicast(out.address);
      os.frame.dst_mac = net::multicast_mac(out.address);
      if (!os.resolved) {
        const Ipv4 hop = next_hop(p.config, out.address);
        for (std::size_t k = 0; k < p.neighbors.size(); ++k) {
          if (hop != 0 && p.neighbors[k].ip == hop) os.neighbor = static_cast<std::uint32_t>(k);
        }
        os.frame.dst_mac = Mac{};
      }
      os.frame.src_mac = p.mac;
      os.frame.vlan = out.vlan != 0 ? out.vlan : p.config.vlan;
      os.frame.src_ip = out.source != 0 ? out.source : p.config.address;
      os.frame.dst_ip = out.address;
      os.frame.src_port = out.source_port != 0 ? out.source_port : out.udp_port;
      os.frame.dst_port = out.udp_port;
      os.frame.ttl = out.ttl;
      os.frame.dscp = out.dscp;
      os.ssrc = output_ssrc(ssrc_key, oi);
      return os;
    };
    // Size each port's classifier, then fill it.
    std::vector<std::size_t> n_flows(ports.size(), 0);
    for (const ChannelConfig& ch : c.channels) {
      for (const InputConfig& in : ch.inputs) {
        if (in.kind != InputKind::kSrt) ++n_flows[port_index(in.port, "channel " + ch.id + " input " + in.name)];
      }
    }
    for (std::size_t i = 0; i < ports.size(); ++i) ports[i]->classifier = FlowClassifier(n_flows[i]);

    for (std::size_t ci = 0; ci < c.channels.size(); ++ci) {
      const ChannelConfig& ch = c.channels[ci];
      ChannelState cs;
      cs.first_input = inputs.size();
      for (std::size_t ii = 0; ii < ch.inputs.size(); ++ii) {
        const InputConfig& in = ch.inputs[ii];
        auto is = std::make_unique<InputState>();
        is->channel = ci;
        is->input = ii;
        is->rtp = in.kind == InputKind::kRtp;
        if (is->rtp) rtp_inputs.push_back(is.get());
        const auto flat = static_cast<std::uint32_t>(inputs.size());
        if (in.kind == InputKind::kSrt) {
          const std::string ring_name = "tc_srt_" + std::to_string(flat);
          is->ring = rte_ring_create(ring_name.c_str(), kExternalRing, static_cast<int>(rte_socket_id()),
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
          if (is->ring == nullptr) throw std::runtime_error("channel " + ch.id + " input " + in.name + ": cannot create its ring");
          is->aligner = std::make_unique<mpegts::PacketAligner>();
          external_inputs.push_back(is.get());
        }
        inputs.push_back(std::move(is));
        if (in.kind == InputKind::kSrt) continue;
        PortState& p = *ports[port_index(in.port, "channel " + ch.id)];
        inputs.back()->port = &p;
        if (!p.classifier.add(in.address, in.udp_port, in.source, flat)) {
          // The same flow feeds several channels (an MPTS split by source_service_id, which
          // the config validator allows): chain this input behind the one that owns it.
          const std::uint32_t owner = p.classifier.lookup(in.address, in.udp_port, in.source);
          InputState* head = owner < inputs.size() ? inputs[owner].get() : nullptr;
          if (head == nullptr || head->rtp != inputs.back()->rtp) {
            throw std::invalid_argument("channel " + ch.id + " input " + in.name +
                                        ": the same group, port and source is already an input of another kind");
          }
          for (InputState* i = head; i != nullptr; i = i->share_next) {
            if (i->channel == ci) {
              throw std::invalid_argument("channel " + ch.id + " input " + in.name +
                                          ": the same group, port and source is already an input of this channel");
            }
            head = i;
          }
          head->share_next = inputs.back().get();
        }
        if (net::is_multicast(in.address)) {
          const GroupJoin j{in.address, in.source};
          if (std::none_of(p.groups.begin(), p.groups.end(),
                           [&](const GroupJoin& g) { return g.group == j.group && g.source == j.source; })) {
            p.groups.push_back(j);
          }
        }
      }
      for (std::size_t oi = 0; oi < ch.outputs.size(); ++oi)
        cs.outputs.push_back(make_output(ch.outputs[oi], "channel " + ch.id, ch.id, oi));
      cs.pipeline = factory(ch);
      if (!cs.pipeline) throw std::invalid_argument("channel " + ch.id + ": no pipeline");
      channels.push_back(std::move(cs));
    }
    for (const MultiplexConfig& mc : c.multiplexes) {
      MultiplexState ms;
      ms.multiplex = std::make_unique<Multiplex>(mc, c.channels);
      for (std::size_t oi = 0; oi < mc.outputs.size(); ++oi)
        ms.outputs.push_back(make_output(mc.outputs[oi], "multiplex " + mc.id, "multiplex/" + mc.id, oi));
      for (std::size_t slot = 0; slot < ms.multiplex->member_count(); ++slot)
        channels[ms.multiplex->member_channel(slot)].pipeline->add_tap(ms.multiplex.get(), slot);
      multiplexes.push_back(std::move(ms));
    }
    if (!external_inputs.empty()) {
      // Enough mbufs to fill every ring, plus what the worker holds while draining.
      const auto n = static_cast<unsigned>(external_inputs.size() * kExternalRing + 2 * kBurst);
      external_pool = rte_pktmbuf_pool_create("tc_srt_pool", n, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              static_cast<int>(rte_socket_id()));
      if (external_pool == nullptr) throw std::runtime_error("cannot create the SRT mbuf pool");
    }
    const auto n_hls = static_cast<unsigned>(std::count_if(c.channels.begin(), c.channels.end(),
                                                            [](const ChannelConfig& ch) { return ch.hls; }));
    ott_feeds.resize(c.channels.size());
    if (n_hls != 0) {
      // Every ring full, plus what the worker's mempool cache may hold.
      constexpr unsigned kOttCache = 64;
      const unsigned n = n_hls * kOttRing + 2 * kOttCache;
      const std::string pool_name = "tc_ott_" + std::to_string(instance);
      ott_pool = rte_pktmbuf_pool_create(pool_name.c_str(), n, kOttCache, 0,
                                         static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + OttFeed::kChunkBytes),
                                         static_cast<int>(rte_socket_id()));
      if (ott_pool == nullptr) throw std::runtime_error("cannot create the OTT mbuf pool: " + std::string(rte_strerror(rte_errno)));
      for (std::size_t ci = 0; ci < c.channels.size(); ++ci) {
        if (!c.channels[ci].hls) continue;
        ott_feeds[ci] = std::make_unique<OttFeed>("tc_ott_" + std::to_string(instance) + "_" + std::to_string(ci),
                                                  kOttRing, ott_pool);
        channels[ci].pipeline->add_tap(ott_feeds[ci].get(), 0);
      }
    }
    worker_lcore = rte_get_next_lcore(static_cast<unsigned>(-1), 1, 0);
  } catch (...) {
    release();  // the destructor will not run: release the ports, then rethrow
    throw;
  }
}

Dataplane::Impl::~Impl() { release(); }

void Dataplane::Impl::release() {
  for (InputState* in : rtp_inputs) {
    for (auto& slot : in->window) {
      if (slot.m != nullptr) rte_pktmbuf_free(slot.m);
      slot = {};
    }
    in->held = 0;
  }
  rtp_inputs.clear();
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
  for (auto& in : inputs) {
    if (in == nullptr || in->ring == nullptr) continue;
    rte_mbuf* m = nullptr;
    while (rte_ring_dequeue(in->ring, reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
    rte_ring_free(in->ring);
    in->ring = nullptr;
  }
  external_inputs.clear();
  ott_feeds.clear();  // their queued chunks go back to the pool first
  if (ott_pool != nullptr) {
    rte_mempool_free(ott_pool);
    ott_pool = nullptr;
  }
  if (external_pool != nullptr) {
    rte_mempool_free(external_pool);
    external_pool = nullptr;
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

void Dataplane::stop() {
  if (!impl_->running) return;
  impl_->stop_requested.store(true, std::memory_order_release);
  (void)rte_eal_wait_lcore(impl_->worker_lcore);
  impl_->running = false;
  send_igmp_reports(false);
}

bool Dataplane::running() const { return impl_->running; }
std::size_t Dataplane::port_count() const { return impl_->ports.size(); }
Mac Dataplane::port_mac(std::size_t port) const { return impl_->ports.at(port)->mac; }
std::uint16_t Dataplane::port_id(std::size_t port) const { return impl_->ports.at(port)->port_id; }
rte_mempool* Dataplane::mempool(std::size_t port) const { return impl_->ports.at(port)->pool; }
ChannelPipeline& Dataplane::pipeline(std::size_t channel) { return *impl_->channels.at(channel).pipeline; }
std::size_t Dataplane::multiplex_count() const { return impl_->multiplexes.size(); }
MultiplexStats Dataplane::multiplex_stats(std::size_t multiplex) const {
  return impl_->multiplexes.at(multiplex).multiplex->stats();
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
  return output_stats_of(impl_->channels.at(channel).outputs, output);
}
OutputStats Dataplane::multiplex_output_stats(std::size_t multiplex, std::size_t output) const {
  return output_stats_of(impl_->multiplexes.at(multiplex).outputs, output);
}
InputSnapshot Dataplane::input_snapshot(std::size_t channel, std::size_t input) const {
  return impl_->channels.at(channel).pipeline->input_snapshot(input);
}
PacingHistogram Dataplane::pacing_lateness(std::size_t channel) const {
  return impl_->channels.at(channel).pipeline->pacing_lateness();
}
PacingHistogram Dataplane::multiplex_pacing_lateness(std::size_t multiplex) const {
  return impl_->multiplexes.at(multiplex).multiplex->pacing_lateness();
}

bool Dataplane::feed_external(std::size_t channel, std::size_t input, std::span<const std::uint8_t> bytes) {
  const ChannelState& cs = impl_->channels.at(channel);
  if (input >= impl_->config.channels.at(channel).inputs.size()) throw std::out_of_range("input");
  InputState& in = *impl_->inputs[cs.first_input + input];
  if (in.ring == nullptr) throw std::out_of_range("not an SRT input");
  rte_mbuf* m = rte_pktmbuf_alloc(impl_->external_pool);
  if (m == nullptr) {
    bump(in.counters.external_drops);
    return false;
  }
  if (bytes.size() > rte_pktmbuf_tailroom(m)) bytes = bytes.first(rte_pktmbuf_tailroom(m));
  auto* dst = static_cast<std::uint8_t*>(static_cast<void*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(bytes.size()))));
  std::memcpy(dst, bytes.data(), bytes.size());
  if (rte_ring_enqueue(in.ring, m) != 0) {
    rte_pktmbuf_free(m);
    bump(in.counters.external_drops);
    return false;
  }
  return true;
}

OttFeed* Dataplane::ott_feed(std::size_t channel) const { return impl_->ott_feeds.at(channel).get(); }

std::uint64_t Dataplane::external_drops(std::size_t channel, std::size_t input) const {
  const ChannelState& cs = impl_->channels.at(channel);
  if (input >= impl_->config.channels.at(channel).inputs.size()) throw std::out_of_range("input");
  return impl_->inputs[cs.first_input + input]->counters.external_drops.load(std::memory_order_relaxed);
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
  for (std::size_t i = 0; i < kDropReasonCount; ++i) s.drops[i] = c.drops[i].load(r);
  return s;
}

InputStats Dataplane::input_stats(std::size_t channel, std::size_t input) const {
  const ChannelState& cs = impl_->channels.at(channel);
  if (input >= impl_->config.channels.at(channel).inputs.size()) throw std::out_of_range("input");
  const InputCounters& c = impl_->inputs.at(cs.first_input + input)->counters;
  constexpr auto r = std::memory_order_relaxed;
  return InputStats{c.datagrams.load(r), c.packets.load(r), c.rtp_out_of_order.load(r), c.rtp_lost.load(r),
                    c.rtp_duplicates.load(r)};
}

void Dataplane::process_burst(std::size_t port, rte_mbuf** frames, std::uint16_t n, std::uint64_t now_ns) {
  PortState& p = *impl_->ports.at(port);
  while (n > 0) {
    const std::uint16_t k = std::min(n, kBurst);
    impl_->rx_burst(p, frames, k, now_ns);
    frames += k;
    n = static_cast<std::uint16_t>(n - k);
  }
  impl_->flush_tx(p);
}

void Dataplane::poll_once(std::uint64_t now_ns) {
  impl_->arp_tick(now_ns);
  impl_->poll_channels(now_ns);
}

void Dataplane::send_igmp_reports(bool join) {
  for (auto& p : impl_->ports) {
    impl_->send_reports(*p, join ? net::IgmpEvent::kJoin : net::IgmpEvent::kLeave, 0);
    impl_->flush_tx(*p);
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
