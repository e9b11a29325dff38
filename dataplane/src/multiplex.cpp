#include "twincast/dataplane/multiplex.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "pacer.hpp"
#include "twincast/mpegts/remux.hpp"

namespace twincast::dataplane {

namespace {

using mpegts::TsPacket;

std::vector<std::size_t> resolve_members(const MultiplexConfig& m, const std::vector<ChannelConfig>& channels) {
  const std::string who = "multiplex " + m.id;
  if (m.channels.empty()) throw std::invalid_argument(who + ": no channels");
  if (m.outputs.empty()) throw std::invalid_argument(who + ": no outputs");
  std::vector<std::size_t> members;
  for (const std::string& id : m.channels) {
    const auto it = std::find_if(channels.begin(), channels.end(), [&](const ChannelConfig& c) { return c.id == id; });
    if (it == channels.end()) throw std::invalid_argument(who + ": unknown channel \"" + id + "\"");
    const auto index = static_cast<std::size_t>(it - channels.begin());
    if (std::find(members.begin(), members.end(), index) != members.end())
      throw std::invalid_argument(who + ": channel \"" + id + "\" is listed twice");
    members.push_back(index);
  }
  return members;
}

mpegts::RemuxConfig make_remux_config(const MultiplexConfig& m, const std::vector<ChannelConfig>& channels,
                                      const std::vector<std::size_t>& members) {
  mpegts::RemuxConfig rc;
  rc.n_inputs = members.size();
  rc.transport_stream_id = m.transport_stream_id;
  rc.original_network_id = m.original_network_id;
  rc.network_id = m.network_id;
  rc.network_name = m.network_name;
  rc.sdt = true;
  rc.nit = true;
  for (std::size_t slot = 0; slot < members.size(); ++slot) {
    const ChannelConfig& c = channels[members[slot]];
    mpegts::RemuxServiceConfig s;
    s.input = slot;
    s.source_service_id = 0;  // a channel's SPTS holds one service
    s.service_id = c.service_id;
    s.pmt_pid = c.pmt_pid;
    s.lcn = c.lcn;
    s.name = c.name;
    s.provider = c.provider;
    // The channel applied its PID rules: their targets are on its SPTS. They stay the
    // rules' here too, whichever member is learnt first (what is on air would keep them
    // otherwise): each target reserved by a rule that leaves it where it is.
    for (const mpegts::PidRule& r : c.pid_rules)
      if (!r.drop) s.rules.push_back(mpegts::PidRule{r.to, false, r.to});
    rc.services.push_back(std::move(s));
  }
  return rc;
}

}  // namespace

struct Multiplex::Impl {
  Impl(const MultiplexConfig& m, const std::vector<ChannelConfig>& channels)
      : config(m),
        members(resolve_members(m, channels)),
        remux(make_remux_config(m, channels, members)),
        pacer(m.outputs, "multiplex " + m.id),
        previous_slot(members.size(), mpegts::Remuxer::kNoPreviousInput) {
    remux_out.resize(remux.max_output_per_push());
  }

  void push(std::size_t slot, std::span<const TsPacket> packets, std::uint64_t now) {
    if (slot >= members.size()) return;
    bump_counter(packets_in, packets.size());
    // Usually straight into the pacer's queue (see Channel::Impl::push).
    if (const std::span<TsPacket> room = pacer.tail_room(packets.size() * remux.max_output_per_push()); !room.empty()) {
      const std::size_t n = remux.push(slot, packets, now, room);
      pacer.commit(n, pacing_pcr_pid(remux.output_model()), now);
      return;
    }
    for (const TsPacket& p : packets) {
      const std::size_t n = remux.push(slot, p, now, remux_out);
      if (n == 0) continue;
      const std::uint16_t pcr_pid = pacing_pcr_pid(remux.output_model());
      for (std::size_t k = 0; k < n; ++k) pacer.enqueue(remux_out[k], pcr_pid, now);
    }
  }

  // Member `slot` switched inputs: the PCRs of its service follow another input, whose
  // path may be a few ms faster or slower (the same encoder on a second feed: under the
  // 50 ms that restarts a cbr clock by itself), so that service's clock starts again; slewed
  // over at 200 ppm instead, its PCRs would stray from their byte positions for a minute.
  void on_discontinuity(std::size_t slot) {
    if (slot >= members.size()) return;
    // The member's service (its SPTS holds one; a PAT's program 0 is the NIT's); not
    // learnt yet: no PCR sent, no clock.
    for (const mpegts::Service& s : remux.input_psi(slot).model().services) {
      if (s.service_id == 0) continue;
      const std::uint16_t pid = remux.output_pid(slot, s.pcr_pid);
      if (pid != mpegts::Remuxer::kUnmapped) pacer.restart_clock(pid);
      return;
    }
  }

  MultiplexConfig config;
  std::vector<std::size_t> members;
  mpegts::Remuxer remux;
  std::vector<TsPacket> remux_out;
  Pacers pacer;
  std::vector<std::size_t> previous_slot;  // continue_from(): each member's slot in the multiplex before
  alignas(64) std::atomic<std::uint64_t> packets_in{0};
};

Multiplex::Multiplex(const MultiplexConfig& config, const std::vector<ChannelConfig>& channels)
    : impl_(std::make_unique<Impl>(config, channels)) {}
Multiplex::~Multiplex() = default;

void Multiplex::on_packets(std::size_t slot, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) {
  impl_->push(slot, packets, now_ns);
}
void Multiplex::on_discontinuity(std::size_t slot) { impl_->on_discontinuity(slot); }
void Multiplex::poll(std::uint64_t now_ns, DatagramSink& sink) { impl_->pacer.poll(now_ns, sink); }
void Multiplex::continue_from(const Multiplex& previous) {
  // Members are known by channel id: one that was in the multiplex before keeps its PIDs,
  // PMT PID and service id wherever it now sits.
  const std::vector<std::string>& before = previous.impl_->config.channels;
  for (std::size_t slot = 0; slot < impl_->previous_slot.size(); ++slot) {
    const auto it = std::find(before.begin(), before.end(), impl_->config.channels[slot]);
    impl_->previous_slot[slot] =
        it == before.end() ? mpegts::Remuxer::kNoPreviousInput : static_cast<std::size_t>(it - before.begin());
  }
  continue_output(impl_->remux, impl_->pacer, previous.impl_->remux, previous.impl_->pacer, impl_->previous_slot);
}
void Multiplex::describe_member(std::size_t slot, const ChannelConfig& member) {
  if (slot < impl_->members.size()) impl_->remux.describe(slot, member.name, member.provider, member.lcn);
}
std::size_t Multiplex::member_channel(std::size_t slot) const { return impl_->members.at(slot); }
std::size_t Multiplex::member_count() const { return impl_->members.size(); }
const MultiplexConfig& Multiplex::config() const { return impl_->config; }
const mpegts::ProgramModel& Multiplex::output_model() const { return impl_->remux.output_model(); }

PacingHistogram Multiplex::pacing_lateness(std::size_t output) const { return impl_->pacer.lateness(output); }
std::uint64_t Multiplex::queue_dropped_packets(std::size_t output) const {
  return impl_->pacer.dropped_queue_full(output);
}

MultiplexStats Multiplex::stats() const {
  MultiplexStats s;
  s.packets_in = impl_->packets_in.load(std::memory_order_relaxed);
  s.packets_out = impl_->pacer.packets_out();
  s.datagrams_out = impl_->pacer.datagrams_out();
  s.dropped_queue_full = impl_->pacer.dropped_queue_full();
  return s;
}

}  // namespace twincast::dataplane
