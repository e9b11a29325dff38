#include "twincast/mpegts/remux.hpp"

#include "twincast/mpegts/crc32.hpp"

#include <algorithm>
#include <cassert>
#include <bit>
#include <bitset>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

namespace twincast::mpegts {

namespace {

constexpr std::uint16_t kDropByRule = 0xFFFE;
// A fingerprint of a payload packet for telling a duplicate (ISO 13818-1 2.4.3.3: every
// byte again, the PCR excepted) from another packet with the same counter: the header flags
// (not the counter), bytes 4..27 where a PES header and its PTS/DTS lie (bytes 6..11 left
// out when they hold a PCR, which a duplicate may re-stamp), a word in the middle and the
// last one. Equal for a duplicate, for another packet only by chance.
inline std::uint64_t fingerprint(const TsPacket& p) {
  std::uint64_t w[5];
  std::memcpy(&w[0], p.bytes.data() + 4, 24);  // bytes 4..27
  std::memcpy(&w[3], p.bytes.data() + 100, 8);
  std::memcpy(&w[4], p.bytes.data() + kPacketSize - 8, 8);
  if (p.has_pcr()) w[0] &= 0xFFFF;  // bytes 4 and 5 (little-endian load): the PCR's bytes out
  const std::uint64_t header = (std::uint64_t{p.bytes[1]} << 8) | (p.bytes[3] & 0xF0);
  return w[0] ^ std::rotl(w[1], 13) ^ std::rotl(w[2], 26) ^ std::rotl(w[3], 39) ^ std::rotl(w[4], 52) ^ (header << 48);
}
// The PID a CA_descriptor (0x09: CA_system_id, CA_PID) names, or kNullPid for any other
// descriptor (ECM PIDs in PMTs, EMM PIDs in the CAT).
std::uint16_t ca_pid(const Descriptor& d) {
  if (d.tag != 0x09 || d.data.size() < 4) return kNullPid;
  return static_cast<std::uint16_t>(((d.data[2] & 0x1F) << 8) | d.data[3]);
}
// A PID rule drops `pid`.
bool drops(const std::vector<PidRule>& rules, std::uint16_t pid) {
  return std::any_of(rules.begin(), rules.end(), [pid](const PidRule& r) { return r.from == pid && r.drop; });
}
constexpr std::uint64_t kPcrJumpTicks = 100 * 27'000;  // 100 ms of 27 MHz: TR 101 290's PCR discontinuity limit
constexpr std::uint16_t kFirstDynamicPid = 0x0100;
constexpr std::uint16_t kFirstPmtPid = 0x1000;

// PIDs an output never gives to a service: PSI/SI, the DVB SI range and the null PID.
bool is_reserved_pid(std::uint16_t pid) { return pid < 0x0020 || pid >= kNullPid; }

// Hands out output PIDs: the wanted one when free, otherwise the next free one above
// `fallback_from`, so a service's PIDs only move when they collide.
class PidAllocator {
 public:
  std::uint16_t take(std::uint16_t wanted, std::uint16_t fallback_from) {
    if (!is_reserved_pid(wanted) && !used_[wanted]) {
      used_[wanted] = true;
      return wanted;
    }
    for (std::uint32_t i = 0; i < kNullPid; ++i) {
      const auto pid = static_cast<std::uint16_t>(0x20 + (fallback_from - 0x20 + i) % (kNullPid - 0x20));
      if (!used_[pid]) {
        used_[pid] = true;
        return pid;
      }
    }
    throw std::runtime_error("remux: no free output PID left");
  }
  // Takes exactly `pid` when it is free.
  bool take_exact(std::uint16_t pid) {
    if (is_reserved_pid(pid) || used_[pid]) return false;
    used_[pid] = true;
    return true;
  }

 private:
  std::bitset<kPidCount> used_;
};

const Service* find_source(const ProgramModel& m, std::uint16_t service_id) {
  if (service_id != 0) return m.find_service(service_id);
  for (const auto& s : m.services)
    if (s.service_id != 0) return &s;
  return nullptr;
}

}  // namespace

Remuxer::Remuxer(RemuxConfig config) : config_(std::move(config)) {
  if (config_.n_inputs == 0) throw std::invalid_argument("remux: at least one input is needed");
  if (config_.services.empty()) throw std::invalid_argument("remux: at least one output service is needed");
  std::bitset<65536> ids;
  std::bitset<kPidCount> pmt_pids;
  for (std::size_t k = 0; k < config_.services.size(); ++k) {
    const auto& s = config_.services[k];
    const std::string where = "remux: service #" + std::to_string(k + 1) + ": ";
    if (s.input >= config_.n_inputs)
      throw std::invalid_argument(where + "input " + std::to_string(s.input) + " does not exist");
    if (s.service_id != 0) {
      if (ids[s.service_id]) throw std::invalid_argument(where + "service id " + std::to_string(s.service_id) + " is used twice");
      ids[s.service_id] = true;
    }
    if (s.pmt_pid != 0) {
      if (is_reserved_pid(s.pmt_pid)) throw std::invalid_argument(where + "PMT PID " + std::to_string(s.pmt_pid) + " is reserved");
      if (pmt_pids[s.pmt_pid]) throw std::invalid_argument(where + "PMT PID " + std::to_string(s.pmt_pid) + " is used twice");
      pmt_pids[s.pmt_pid] = true;
    }
    for (const auto& r : s.rules) {
      if (r.from >= kNullPid) throw std::invalid_argument(where + "rule source PID " + std::to_string(r.from) + " is out of range");
      if (!r.drop && is_reserved_pid(r.to))
        throw std::invalid_argument(where + "rule target PID " + std::to_string(r.to) + " is reserved");
    }
  }
  // Room for what continue_from() takes over (it runs on a worker: no allocation then);
  // an engine before this one may have had more services.
  inherited_tables_.reserve(std::max<std::size_t>(2 * config_.services.size() + 6, 256));
  inputs_.reserve(config_.n_inputs);
  for (std::size_t i = 0; i < config_.n_inputs; ++i) {
    auto in = std::make_unique<Input>();
    in->psi = std::make_unique<PsiDecoder>();
    in->map.fill(kUnmapped);
    in->inherited_map.fill(kUnmapped);
    in->last_cc.fill(0x10);
    in->eit_tap.remux = this;
    in->eit_tap.input = i;
    in->psi->set_eit_handler(&in->eit_tap);
    copy_psi_pids(*in);
    inputs_.push_back(std::move(in));
  }
  pmts_.reserve(config_.services.size());
  for (std::size_t k = 0; k < config_.services.size(); ++k) pmts_.emplace_back(kNullPid);
  snapshots_.resize(config_.services.size());
  learnt_.resize(config_.services.size(), false);
  inherited_snapshots_.resize(config_.services.size());
  eit_pf_.resize(config_.services.size(), false);
  eit_sched_.resize(config_.services.size(), false);
  eit_pf_seen_ns_.resize(config_.services.size(), 0);
  eit_sched_seen_ns_.resize(config_.services.size(), 0);
  EitVersions none;
  none.fill(0xFF);
  eit_out_version_.resize(config_.services.size(), none);
  eit_src_version_.resize(config_.services.size(), none);
  eit_src_sid_.resize(config_.services.size(), {});
  last_sid_.resize(config_.services.size(), 0);
  inherited_pmt_.resize(config_.services.size(), 0);
  // One packet, plus a full round of tables: PAT, CAT and each PMT fit in 1024-byte
  // sections (at most 6 packets each); SDT and NIT sections hold at most kSectionBudget
  // bytes (6 packets) and at least one service each, so one per service and one more at most.
  const std::size_t services = config_.services.size();
  max_out_ = 1 + 6 * (2 + services) + 2 * 6 * (1 + services) + kEitPacketsPerPush;
}

Remuxer::~Remuxer() = default;

void Remuxer::copy_psi_pids(Input& in) {
  for (std::uint16_t pid = 0; pid < kPidCount; ++pid) in.psi_pids[pid] = in.psi->is_psi_pid(pid);
}

std::uint16_t Remuxer::output_pid(std::size_t input, std::uint16_t source_pid) const {
  const std::uint16_t o = inputs_.at(input)->map[source_pid & 0x1FFF];
  return o == kDropByRule ? kUnmapped : o;
}

void Remuxer::rebuild() {
  ++stats_.table_rebuilds;
  PidAllocator pids;
  std::vector<std::array<std::uint16_t, kPidCount>> maps(inputs_.size());
  for (auto& m : maps) m.fill(kUnmapped);

  ProgramModel model;
  model.transport_stream_id = config_.transport_stream_id;
  model.original_network_id = config_.original_network_id;
  model.network_id = config_.network_id;
  model.network_name = config_.network_name;
  model.has_pat = true;
  std::bitset<65536> ids;
  for (const auto& sc : config_.services)
    if (sc.service_id != 0) ids[sc.service_id] = true;
  // Explicit PMT PIDs first, so automatic ones never take them.
  for (const auto& sc : config_.services)
    if (sc.pmt_pid != 0) (void)pids.take(sc.pmt_pid, kFirstPmtPid);
  // Then the targets of PID rules: what is on air (kept below) never sits on them.
  std::bitset<kPidCount> rule_targets, rule_claimed;
  for (const auto& sc : config_.services)
    for (const auto& r : sc.rules)
      if (!r.drop && pids.take_exact(r.to)) rule_targets[r.to] = true;

  // Keep the last complete picture of the source while its PSI is being relearnt
  // (after a switch), so the output tables do not flap; its CAT too.
  for (std::size_t k = 0; k < config_.services.size(); ++k) {
    const auto& sc = config_.services[k];
    const Input& in = *inputs_[sc.input];
    const Service* src = find_source(in.psi->model(), sc.source_service_id);
    if (src != nullptr && src->has_pmt) {
      Service s = *src;
      if (snapshots_[k] && in.sdts_at_switch == in.psi->stats().sdt) {  // no SDT since the switch
        s.name = snapshots_[k]->name;
        s.provider = snapshots_[k]->provider;
        s.service_type = snapshots_[k]->service_type;
      }
      snapshots_[k] = std::move(s);
      learnt_[k] = true;
    }
  }
  // After a reload, once a service is learnt here the others the previous engine had on
  // air stay in the tables as they were until they are learnt too (not one by one).
  if (std::find(learnt_.begin(), learnt_.end(), true) != learnt_.end())
    for (std::size_t k = 0; k < config_.services.size(); ++k)
      if (!snapshots_[k] && inherited_snapshots_[k]) snapshots_[k].swap(inherited_snapshots_[k]);
  for (auto& in : inputs_)
    if (in->psi->model().has_cat) in->cat = in->psi->model().cat_descriptors;
  // An input's EMM PIDs are placed with the first learnt service it feeds (emm_service) and
  // follow the PID rules of the first configured one (emm_rules), learnt or not.
  std::vector<std::size_t> emm_service(inputs_.size(), config_.services.size());
  std::vector<std::size_t> emm_rules(inputs_.size(), 0);  // the input's first configured service: its rules
  for (std::size_t k = config_.services.size(); k-- > 0;) {
    if (snapshots_[k]) emm_service[config_.services[k].input] = k;
    emm_rules[config_.services[k].input] = k;
  }
  // What is on air keeps its service id, PMT PID and stream PIDs: only what is new
  // (a service just learnt, a stream just added) moves when it collides.
  std::vector<std::uint16_t> kept_pmt(config_.services.size(), 0);
  std::vector<std::array<std::uint16_t, kPidCount>> emm_kept(inputs_.size());  // EMM PIDs kept, per input
  for (auto& m : emm_kept) m.fill(kUnmapped);
  std::vector<std::uint16_t> kept_sid(config_.services.size(), 0);
  for (std::size_t k = 0; k < config_.services.size(); ++k) {
    const auto& sc = config_.services[k];
    if (!snapshots_[k]) {
      // Not learnt yet: what the engine continue_from() took over from had on air for it
      // stays reserved until it is (so a member learnt earlier cannot take it).
      if (sc.service_id == 0 && last_sid_[k] != 0) ids[last_sid_[k]] = true;
      if (sc.pmt_pid == 0 && inherited_pmt_[k] != 0) (void)pids.take_exact(inherited_pmt_[k]);
      for (const std::uint16_t o : inputs_[sc.input]->inherited_map)
        if (o < kNullPid) (void)pids.take_exact(o);
      continue;
    }
    if (sc.service_id == 0 && last_sid_[k] != 0 && !ids[last_sid_[k]]) {
      ids[last_sid_[k]] = true;
      kept_sid[k] = last_sid_[k];
    }
    // A service not on air yet keeps what the engine continue_from() took over from gave it.
    const bool on_air = pmts_[k].has_content();
    // Its PIDs come from what the previous engine had on air while this one has not mapped them.
    const bool from_before = !on_air || inputs_[sc.input]->held;
    const std::uint16_t last_pmt = on_air ? pmts_[k].pid() : inherited_pmt_[k];
    if (sc.pmt_pid == 0 && last_pmt != 0 && pids.take_exact(last_pmt)) kept_pmt[k] = last_pmt;
    const auto& prev = inputs_[sc.input]->map;
    const auto& inherited = inputs_[sc.input]->inherited_map;
    auto& map = maps[sc.input];
    auto keep = [&](std::uint16_t src_pid, bool fresh, const std::vector<PidRule>& rules,
                    std::array<std::uint16_t, kPidCount>* into = nullptr) {
      if (src_pid >= kNullPid || map[src_pid] != kUnmapped) return;
      if (into == nullptr && emm_kept[sc.input][src_pid] < kNullPid) {  // also an EMM PID: one output PID
        map[src_pid] = emm_kept[sc.input][src_pid];
        return;
      }
      std::uint16_t o = prev[src_pid];
      if (o == kUnmapped && fresh &&
          std::none_of(rules.begin(), rules.end(), [&](const PidRule& r) { return r.from == src_pid; }))
        o = inherited[src_pid];
      if (o < kNullPid && pids.take_exact(o)) (into != nullptr ? *into : map)[src_pid] = o;
    };
    auto keep_ca = [&](const std::vector<Descriptor>& ds, bool fresh, const std::vector<PidRule>& rules) {
      for (const auto& d : ds) keep(ca_pid(d), fresh, rules);
    };
    keep_ca(snapshots_[k]->program_descriptors, from_before, sc.rules);
    for (const auto& es : snapshots_[k]->streams) {
      keep(es.pid, from_before, sc.rules);
      keep_ca(es.descriptors, from_before, sc.rules);
    }
    keep(snapshots_[k]->pcr_pid, from_before, sc.rules);
    if (emm_service[sc.input] == k) {
      Input& in = *inputs_[sc.input];
      if (in.cat) {
        // Reserved only: an EMM PID is mapped when its descriptor fits the CAT (below).
        for (const auto& d : *in.cat)
          keep(ca_pid(d), !in.emm_on_air, config_.services[emm_rules[sc.input]].rules, &emm_kept[sc.input]);
      } else {
        // The CAT is not learnt yet: the EMM PIDs the previous engine had on air stay reserved.
        // A stream or ECM PID of a later service of this input that is one of them keeps it.
        for (std::uint16_t pid = 0; pid < kNullPid; ++pid)
          if (in.inherited_emm[pid] && map[pid] == kUnmapped && inherited[pid] < kNullPid &&
              pids.take_exact(inherited[pid]))
            emm_kept[sc.input][pid] = inherited[pid];
      }
    }
  }

  std::size_t cat_bytes = 0;  // of the output CAT's descriptors
  for (std::size_t k = 0; k < config_.services.size(); ++k) {
    const auto& sc = config_.services[k];
    auto& map = maps[sc.input];
    if (!snapshots_[k]) continue;
    const Service& source = *snapshots_[k];

    Service out = source;
    if (sc.service_id != 0) {
      out.service_id = sc.service_id;
    } else if (kept_sid[k] != 0) {
      out.service_id = kept_sid[k];
    } else {
      while (out.service_id == 0 || ids[out.service_id]) ++out.service_id;
      ids[out.service_id] = true;
    }
    last_sid_[k] = out.service_id;
    out.pmt_pid = sc.pmt_pid != 0 ? sc.pmt_pid : kept_pmt[k] != 0 ? kept_pmt[k] : pids.take(source.pmt_pid, kFirstPmtPid);
    if (!sc.name.empty()) out.name = sc.name;
    if (!sc.provider.empty()) out.provider = sc.provider;
    if (out.name.empty()) out.name = "Service " + std::to_string(out.service_id);
    if (out.service_type == 0) {
      // No SDT from the source: 0x00 is reserved (EN 300 468 table 87) and receivers skip
      // such a service in a scan. Digital television with video, digital radio without;
      // television whose video is all HEVC has its own type (0x1F), which receivers
      // without HEVC leave out.
      bool video = false, other_video = false;
      for (const ElementaryStream& e : source.streams)
        if (codec_kind(e.codec) == StreamKind::kVideo) {
          video = true;
          other_video = other_video || e.codec != Codec::kHevc;
        }
      out.service_type = !video ? 0x02 : other_video ? 0x01 : 0x1F;
    }
    out.lcn = sc.lcn;
    out.eit_present_following = eit_pf_[k];
    out.eit_schedule = eit_sched_[k];
    out.streams.clear();

    auto map_pid_by = [&](std::uint16_t src_pid, const std::vector<PidRule>& rules) -> std::uint16_t {
      if (map[src_pid] != kUnmapped) return map[src_pid];  // shared by two services of one input
      std::uint16_t wanted = src_pid;
      for (const auto& r : rules) {
        if (r.from != src_pid) continue;
        if (r.drop) return map[src_pid] = kDropByRule;
        wanted = r.to;
        if (rule_targets[wanted] && !rule_claimed[wanted]) {
          rule_claimed[wanted] = true;
          return map[src_pid] = wanted;
        }
      }
      return map[src_pid] = pids.take(wanted, kFirstDynamicPid);
    };
    auto map_pid = [&](std::uint16_t src_pid) { return map_pid_by(src_pid, sc.rules); };
    // CA_descriptors (0x09) name the service's ECM PIDs: those are carried too, and the
    // descriptor names their output PID (a dropped ECM PID drops its descriptor).
    auto map_ca = [&](std::vector<Descriptor>& ds) {
      std::erase_if(ds, [&](Descriptor& d) {
        const std::uint16_t ecm = ca_pid(d);
        if (ecm >= kNullPid) return false;
        const std::uint16_t o = map_pid(ecm);
        if (o == kDropByRule) return true;
        d.data[2] = static_cast<std::uint8_t>((d.data[2] & 0xE0) | (o >> 8));
        d.data[3] = static_cast<std::uint8_t>(o & 0xFF);
        return false;
      });
    };
    // The output PMT is one section (build_pmt refuses more). A source's is too, but
    // libdvbpsi takes one spread over several: what does not fit is left out (and its PIDs
    // not carried) rather than stopping the channel.
    std::size_t pmt_bytes = kPmtFixedBytes;
    const auto fits = [&](std::size_t bytes) {
      if (pmt_bytes + bytes > kMaxPmtBytes) return false;
      pmt_bytes += bytes;
      return true;
    };
    std::erase_if(out.program_descriptors, [&](const Descriptor& d) { return !fits(pmt_descriptor_bytes(d)); });
    map_ca(out.program_descriptors);
    for (const auto& es : source.streams) {
      if (es.pid >= kNullPid) continue;
      if (!drops(sc.rules, es.pid) && !fits(pmt_stream_bytes(es))) continue;
      const std::uint16_t o = map_pid(es.pid);
      if (o == kDropByRule) continue;
      ElementaryStream e = es;
      e.pid = o;
      map_ca(e.descriptors);
      out.streams.push_back(std::move(e));
    }
    if (source.pcr_pid < kNullPid) {
      const std::uint16_t o = map_pid(source.pcr_pid);
      out.pcr_pid = o == kDropByRule ? kNullPid : o;
    }
    out.has_pmt = true;
    model.services.push_back(std::move(out));
    // The input's CAT goes out with its CA_descriptors' EMM PIDs carried (and named by
    // their output PID, a dropped one dropping its descriptor), as long as the CAT of all
    // inputs fits one section: what does not fit is not carried.
    if (emm_service[sc.input] != k || !inputs_[sc.input]->cat) continue;
    model.has_cat = true;
    inputs_[sc.input]->emm_on_air = true;
    // An EMM PID that a service of this input has as a stream is not one (any more: the CAT
    // kept across a source switch is the old source's): its descriptor is not carried.
    const auto is_stream = [&](std::uint16_t pid) {
      for (std::size_t j = 0; j < config_.services.size(); ++j)
        if (config_.services[j].input == sc.input && snapshots_[j]) {
          if (snapshots_[j]->pcr_pid == pid) return true;  // a PCR PID of its own too
          for (const auto& es : snapshots_[j]->streams)
            if (es.pid == pid) return true;
        }
      return false;
    };
    for (const Descriptor& d : *inputs_[sc.input]->cat) {
      if (cat_bytes + 2 + d.data.size() > kCatDescriptorBudget) break;
      Descriptor c = d;
      if (const std::uint16_t emm = ca_pid(c); emm < kNullPid) {
        if (is_stream(emm)) continue;
        if (map[emm] == kUnmapped) map[emm] = emm_kept[sc.input][emm];
        const std::uint16_t o = map_pid_by(emm, config_.services[emm_rules[sc.input]].rules);
        if (o == kDropByRule) continue;
        c.data[2] = static_cast<std::uint8_t>((c.data[2] & 0xE0) | (o >> 8));
        c.data[3] = static_cast<std::uint8_t>(o & 0xFF);
      }
      cat_bytes += 2 + c.data.size();
      model.cat_descriptors.push_back(std::move(c));
    }
  }

  // The time (TDT and TOT, PID 0x14) comes from the input of the first configured service,
  // once it is learnt, unless that service's PID rules drop it: set-top boxes set their clock
  // and time zone from it. One source only (not whichever service is learnt first), so the
  // output's clock never steps between two.
  if (snapshots_[0]) {
    auto& tdt = maps[config_.services[0].input][kTdtPid];
    if (!drops(config_.services[0].rules, kTdtPid) && tdt == kUnmapped) tdt = kTdtPid;  // (a stream on PID 0x14 was moved off it)
  }
  for (const Descriptor& d : model.cat_descriptors) {  // the output model says what its CAT says
    const std::uint16_t emm = ca_pid(d);
    if (emm < kNullPid && std::find(model.ca_pids.begin(), model.ca_pids.end(), emm) == model.ca_pids.end()) model.ca_pids.push_back(emm);
  }
  for (auto& o : out_) o.carries_pcr = o.is_video = false;
  for (const auto& s : model.services) {
    if (s.pcr_pid < kNullPid) out_[s.pcr_pid].carries_pcr = true;
    for (const auto& es : s.streams) out_[es.pid].is_video = codec_kind(es.codec) == StreamKind::kVideo;
  }
  // A PID's PCRs are followed while it is a PCR PID: one that becomes one again starts
  // afresh, not from the PCR it last had as one (its clock went on meanwhile).
  for (auto& o : out_)
    if (!o.carries_pcr) o.have_pcr = false;
  std::uint64_t remapped = 0;
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    for (std::uint32_t pid = 0; pid < kPidCount; ++pid)
      if (maps[i][pid] < kNullPid && maps[i][pid] != pid) ++remapped;
    for (std::uint32_t pid = 0; pid < kPidCount; ++pid)
      if (maps[i][pid] < kNullPid) used_out_[maps[i][pid] / 64] |= std::uint64_t{1} << (maps[i][pid] % 64);
    // An input none of whose services is learnt here yet (only inherited): its packets wait.
    bool has = false, learnt = false;
    for (std::size_t k = 0; k < config_.services.size(); ++k)
      if (config_.services[k].input == i && snapshots_[k]) {
        has = true;
        learnt = learnt || learnt_[k];
      }
    inputs_[i]->held = has && !learnt;
    if (inputs_[i]->held) maps[i].fill(kUnmapped);
    inputs_[i]->map = maps[i];
    inputs_[i]->seen_generation = inputs_[i]->psi->generation();
  }
  stats_.remapped_pids = remapped;

  // Tables: versions move only when the content does.
  bool changed = false;
  std::vector<PatEntry> pat;
  for (const auto& s : model.services) pat.push_back({s.service_id, s.pmt_pid});
  if (config_.nit) pat.insert(pat.begin(), PatEntry{0, kNitPid});
  changed |= pat_.update([&](std::uint8_t v) { return build_pat(model.transport_stream_id, pat, v); });
  // A CAT once on air goes on (empty when no input has one any more), so receivers learn
  // that the EMM PIDs it named are gone.
  // After a reload, one the previous engine had on air goes on too (empty), once all services
  // are learnt and none is scrambled (a scrambled one's CAT is still to come).
  const auto scrambled = [](const Service& s) {
    const auto ca = [](const std::vector<Descriptor>& ds) {
      return std::any_of(ds.begin(), ds.end(), [](const Descriptor& d) { return d.tag == 0x09; });
    };
    return ca(s.program_descriptors) ||
           std::any_of(s.streams.begin(), s.streams.end(), [&](const ElementaryStream& e) { return ca(e.descriptors); });
  };
  const bool cat_gone = cat_inherited_ && model.services.size() == config_.services.size() &&
                        std::none_of(model.services.begin(), model.services.end(), scrambled);
  if (model.has_cat || cat_.has_content() || cat_gone) {
    resume_table(cat_);
    changed |= cat_.update([&](std::uint8_t v) { return build_cat(model.cat_descriptors, v); });
    model.has_cat = true;
  }
  // A PMT that moves to another PID (PIDs are assigned as services are learnt) leaves its
  // PID's counter and version to whichever table takes that PID next, so no PID shows a CC
  // error; all are noted before any is rebuilt, for services that swap PIDs.
  std::size_t k = 0;
  for (std::size_t sk = 0; sk < config_.services.size(); ++sk) {
    if (!snapshots_[sk]) continue;
    const Service& s = model.services[k++];
    if (pmts_[sk].pid() == s.pmt_pid || !pmts_[sk].has_content()) continue;
    const InheritedTable left{pmts_[sk].pid(), pmts_[sk].version(), pmts_[sk].cc()};
    const auto it = std::find_if(inherited_tables_.begin(), inherited_tables_.end(),
                                 [&](const InheritedTable& t) { return t.pid == left.pid; });
    if (it != inherited_tables_.end()) *it = left;
    else inherited_tables_.push_back(left);
  }
  k = 0;
  for (std::size_t sk = 0; sk < config_.services.size(); ++sk) {
    if (!snapshots_[sk]) continue;
    const Service& s = model.services[k++];
    if (pmts_[sk].pid() != s.pmt_pid) {
      const std::uint8_t next = pmts_[sk].has_content() ? static_cast<std::uint8_t>((pmts_[sk].version() + 1) & 0x1F) : 0;
      pmts_[sk] = TableCarousel(s.pmt_pid, next);
    }
    resume_table(pmts_[sk]);
    changed |= pmts_[sk].update([&](std::uint8_t v) { return build_pmt(s, v); });
  }
  if (config_.sdt)
    changed |= sdt_.update([&](std::uint8_t v) {
      return build_sdt(model.transport_stream_id, model.original_network_id, model.services, v);
    });
  if (config_.nit)
    changed |= nit_.update([&](std::uint8_t v) {
      return build_nit(model.network_id, model.network_name, model.transport_stream_id, model.original_network_id,
                       model.services, v);
    });
  model.pat_version = pat_.version();
  clock_pid_ = model.services.empty() ? kNullPid : model.services[0].pcr_pid;
  out_model_ = std::move(model);
  tables_ready_ = !out_model_.services.empty();
  if (changed) tables_due_ = true;
}

// The tables' intervals are kept on the stream's own time, not on arrival: the output is
// paced on the PCRs, so a burst after a stall, or a backlog sent faster than real time,
// would otherwise carry one PAT for all the stream time it holds (gaps of 360-480 ms seen
// on the demo's UDP channel, TR 101 290 PAT_error_2 beyond 500 ms). The clock moves by each
// PCR of the first service's PCR PID (by its arrival time across a PCR jump, the first
// PCR, or a discontinuity_indicator), and by arrival time while that PID has had no PCR for
// kClockPcrTimeoutNs (a stream without PCRs, a multiplex whose first member stopped).
void Remuxer::tick_table_clock(const TsPacket& packet, std::uint16_t out_pid, std::uint64_t now_ns) {
  constexpr std::uint64_t kClockPcrTimeoutNs = 150'000'000;
  constexpr std::uint64_t kClockMaxPcrStep = 27'000'000;  // 1 s of 27 MHz: more is a jump
  constexpr std::uint64_t kClockMaxLagNs = 100'000'000;   // behind arrival (the pacer's re-anchor)
  if (clock_arrival_ns_ == 0) [[unlikely]] {
    clock_ns_ = now_ns;  // starts on arrival time
    clock_arrival_ns_ = std::max<std::uint64_t>(now_ns, 1);
  }
  const std::uint64_t since = now_ns > clock_arrival_ns_ ? now_ns - clock_arrival_ns_ : 0;
  if (out_pid == clock_pid_ && packet.has_pcr()) [[unlikely]] {
    const std::uint64_t pcr = packet.pcr();
    const std::uint64_t step = pcr_delta(clock_pcr_, pcr);
    if (clock_on_pcr_ && step <= kClockMaxPcrStep && !packet.discontinuity()) {
      // PCRs slower than arrival (a source delivered below its rate, a crawling or frozen
      // PCR): the PCR-paced output cannot send before arrival (the pacer re-anchors once
      // kClockMaxLagNs behind), so neither does this clock fall further behind it.
      const std::uint64_t step_ns = step * 1000 / 27;
      clock_lag_ns_ = since >= step_ns ? clock_lag_ns_ + (since - step_ns)
                                       : clock_lag_ns_ - std::min(clock_lag_ns_, step_ns - since);
      const std::uint64_t catch_up = clock_lag_ns_ > kClockMaxLagNs ? clock_lag_ns_ - kClockMaxLagNs : 0;
      clock_lag_ns_ -= catch_up;
      clock_ns_ += step_ns + catch_up;
    } else {
      clock_ns_ += since;
      clock_lag_ns_ = 0;
    }
    clock_pcr_ = pcr;
    clock_pcr_ns_ = now_ns;
    clock_arrival_ns_ = std::max<std::uint64_t>(now_ns, 1);
    clock_on_pcr_ = true;
  } else if (!clock_on_pcr_ || now_ns - clock_pcr_ns_ >= kClockPcrTimeoutNs) [[unlikely]] {
    clock_ns_ += since;
    clock_lag_ns_ = 0;
    clock_arrival_ns_ = std::max<std::uint64_t>(now_ns, 1);
    clock_on_pcr_ = false;
  }
}

std::size_t Remuxer::emit_tables(std::uint64_t now_ns, std::span<TsPacket> out) {
  std::size_t n = 0;
  auto due = [&](std::uint64_t& next, std::uint64_t interval) {
    // Also when the clock went backwards by more than an interval (a new file, a wrap).
    if (tables_due_ || clock_ns_ >= next || next - clock_ns_ > interval) {
      // On time, or late by less than an interval (the clock moves by PCR steps): the next one
      // an interval after this one was due, so the intervals average out to the configured one.
      const bool on_schedule = !tables_due_ && clock_ns_ >= next && clock_ns_ - next < interval;
      next = (on_schedule ? next : clock_ns_) + interval;
      return true;
    }
    return false;
  };
  if (due(next_psi_ns_, config_.psi_interval_ns)) {
    n += pat_.packetize(out.subspan(n));
    if (cat_.has_content()) n += cat_.packetize(out.subspan(n));
    for (auto& pmt : pmts_)
      if (pmt.has_content()) n += pmt.packetize(out.subspan(n));
  }
  if ((config_.sdt || config_.nit) && due(next_si_ns_, config_.si_interval_ns)) {
    if (config_.sdt && expire_eit_flags(now_ns)) rebuild();  // a new SDT version, sent now
    if (config_.sdt) n += sdt_.packetize(out.subspan(n));
    if (config_.nit) {
      const std::size_t k = nit_.packetize(out.subspan(n));
      nit_on_air_ = nit_on_air_ || k != 0;
      n += k;
    }
  }
  tables_due_ = false;
  stats_.psi_packets_out += n;
  // Nothing is due before the next deadline, nor after the clock went back past one.
  auto below = [](std::uint64_t next, std::uint64_t interval) { return next > interval ? next - interval : 0; };
  quiet_until_ns_ = next_psi_ns_;
  quiet_from_ns_ = below(next_psi_ns_, config_.psi_interval_ns);
  if (config_.sdt || config_.nit) {
    quiet_until_ns_ = std::min(quiet_until_ns_, next_si_ns_);
    quiet_from_ns_ = std::max(quiet_from_ns_, below(next_si_ns_, config_.si_interval_ns));
  }
  return n;
}

bool Remuxer::expire_eit_flags(std::uint64_t now_ns) {
  bool cleared = false;
  auto expire = [&](std::vector<bool>& flags, std::vector<std::uint64_t>& seen, std::uint64_t timeout) {
    for (std::size_t k = 0; k < flags.size(); ++k) {
      if (!flags[k]) continue;
      if (seen[k] == 0 || now_ns < seen[k]) {
        seen[k] = std::max<std::uint64_t>(now_ns, 1);  // carried over, or the clock went back: timed from here
      } else if (now_ns - seen[k] > timeout) {
        flags[k] = false;
        cleared = true;
      }
    }
  };
  expire(eit_pf_, eit_pf_seen_ns_, kEitPfTimeoutNs);
  expire(eit_sched_, eit_sched_seen_ns_, kEitScheduleTimeoutNs);
  return cleared;
}

void Remuxer::EitTap::on_section(std::uint16_t, std::span<const std::uint8_t> section, bool crc_ok) {
  if (crc_ok) remux->take_eit(input, section);
}

void Remuxer::take_eit(std::size_t input, std::span<const std::uint8_t> section) {
  // EIT actual present/following (table_id 0x4E) or schedule (0x50..0x5F): service_id
  // (3..4), transport_stream_id (8..9), original_network_id (10..11), at least one byte of
  // header after, CRC_32. Other TS's EIT (0x4F, 0x60..0x6F) describes no output service.
  if (section.size() < 18 || section.size() > SectionAssembler::kMaxSection) return;
  const std::uint8_t table_id = section[0];
  const bool schedule = table_id >= 0x50 && table_id <= 0x5F;
  if (table_id != 0x4E && !schedule) return;
  const std::size_t slot = schedule ? 1U + (table_id - 0x50U) : 0U;
  // Schedule sections may fill half the queue: the rest stays for now/next.
  const std::size_t room = schedule ? kEitQueueBytes / 2 : kEitQueueBytes;
  const auto source_sid = static_cast<std::uint16_t>((section[3] << 8) | section[4]);
  constexpr std::size_t kMask = kEitQueueBytes - 1;
  for (std::size_t k = 0; k < config_.services.size(); ++k) {
    const RemuxServiceConfig& sc = config_.services[k];
    if (sc.input != input || !snapshots_[k] || snapshots_[k]->service_id != source_sid || last_sid_[k] == 0) continue;
    if (drops(sc.rules, kEitPid)) continue;
    if (eit_len_ + 2 + section.size() > room) {
      ++stats_.eit_dropped;
      continue;
    }
    std::array<std::uint8_t, SectionAssembler::kMaxSection> s;
    std::copy(section.begin(), section.end(), s.begin());
    const std::uint16_t sid = last_sid_[k];
    s[3] = static_cast<std::uint8_t>(sid >> 8);
    s[4] = static_cast<std::uint8_t>(sid);
    s[8] = static_cast<std::uint8_t>(config_.transport_stream_id >> 8);
    s[9] = static_cast<std::uint8_t>(config_.transport_stream_id);
    s[10] = static_cast<std::uint8_t>(config_.original_network_id >> 8);
    s[11] = static_cast<std::uint8_t>(config_.original_network_id);
    // The source's version moves the output's; another source (a switch, another first
    // service) moves it too, whatever version that source has.
    const auto v = static_cast<std::uint8_t>((section[5] >> 1) & 0x1F);
    std::uint8_t& out_version = eit_out_version_[k][slot];
    if (out_version > 0x1F) out_version = v;
    else if (eit_src_version_[k][slot] != v || eit_src_sid_[k][slot] != source_sid)
      out_version = static_cast<std::uint8_t>((out_version + 1) & 0x1F);
    eit_src_version_[k][slot] = v;
    eit_src_sid_[k][slot] = source_sid;
    s[5] = static_cast<std::uint8_t>((s[5] & 0xC1) | (out_version << 1));
    const std::size_t body = section.size() - 4;
    const std::uint32_t crc = crc32_mpeg(std::span<const std::uint8_t>(s.data(), body));
    for (std::size_t b = 0; b < 4; ++b) s[body + b] = static_cast<std::uint8_t>(crc >> (24 - 8 * b));
    std::size_t at = eit_head_ + eit_len_;
    eit_q_[at++ & kMask] = static_cast<std::uint8_t>(section.size() >> 8);
    eit_q_[at++ & kMask] = static_cast<std::uint8_t>(section.size());
    for (std::size_t b = 0; b < section.size(); ++b) eit_q_[at++ & kMask] = s[b];
    eit_len_ += 2 + section.size();
    std::vector<bool>::reference carried = schedule ? eit_sched_[k] : eit_pf_[k];
    (schedule ? eit_sched_seen_ns_ : eit_pf_seen_ns_)[k] = std::max<std::uint64_t>(now_ns_, 1);
    if (!carried) {
      carried = true;  // the SDT says the service has it from its next version on
      eit_sdt_due_ = true;
    }
  }
}

std::size_t Remuxer::emit_eit(std::span<TsPacket> out) {
  constexpr std::size_t kMask = kEitQueueBytes - 1;
  std::size_t n = 0;
  OutPid& op = out_[kEitPid];
  while (eit_len_ != 0 && n < kEitPacketsPerPush && n < out.size()) {
    const std::size_t len = (std::size_t{eit_q_[eit_head_ & kMask]} << 8) | eit_q_[(eit_head_ + 1) & kMask];
    TsPacket& p = out[n++];
    p.bytes.fill(0xFF);
    p.bytes[0] = kSyncByte;
    p.bytes[1] = static_cast<std::uint8_t>(kEitPid >> 8);
    p.bytes[2] = static_cast<std::uint8_t>(kEitPid);
    op.cc = static_cast<std::uint8_t>((op.cc + 1) & 0x0F);
    p.bytes[3] = static_cast<std::uint8_t>(0x10 | op.cc);
    std::size_t at = 4;
    if (eit_pos_ == 0) {  // a section starts here, right after the pointer_field
      p.bytes[1] |= 0x40;
      p.bytes[at++] = 0;
    }
    const std::size_t take = std::min(kPacketSize - at, len - eit_pos_);
    for (std::size_t b = 0; b < take; ++b) p.bytes[at + b] = eit_q_[(eit_head_ + 2 + eit_pos_ + b) & kMask];
    eit_pos_ += take;
    if (eit_pos_ == len) {
      eit_head_ = (eit_head_ + 2 + len) & kMask;
      eit_len_ -= 2 + len;
      eit_pos_ = 0;
      ++stats_.eit_sections_out;
    }
  }
  used_out_[kEitPid / 64] |= std::uint64_t{1} << (kEitPid % 64);
  stats_.psi_packets_out += n;
  return n;
}

// One packet in; `out` has room for max_output_per_push() packets. Both push() overloads
// call it, so the batch one runs it inline, without a call per packet. The header is read
// once into registers and the output's written once: the packets are bytes, which may
// alias anything, so every store into one makes the compiler reload what it read before.
// The caller counts packets in and out.
std::size_t Remuxer::push_one(Input& in, const TsPacket& packet, std::uint64_t now_ns, std::span<TsPacket> out) {
  if (packet.bytes[0] != kSyncByte) [[unlikely]] {
    // A corrupted sync byte (the aligner keeps its lock over a single one, for the analyzer
    // to count a Sync_byte_error): its header cannot be trusted, and a receiver would see
    // garbage where a packet should start.
    ++stats_.dropped_sync;
    return 0;
  }
  const std::uint8_t b1 = packet.bytes[1];
  const std::uint8_t b3 = packet.bytes[3];
  const auto pid = static_cast<std::uint16_t>(((b1 & 0x1F) << 8) | packet.bytes[2]);
  if (in.psi_pids[pid]) [[unlikely]] {
    now_ns_ = now_ns;
    in.psi->push(packet);  // EIT sections come back through take_eit()
    if (in.psi->generation() != in.seen_generation) {
      copy_psi_pids(in);  // a new PAT may have moved the PMT PIDs
      eit_sdt_due_ = false;
      rebuild();
    } else if (eit_sdt_due_) {
      eit_sdt_due_ = false;  // a service's first EIT p/f or schedule: the SDT says it has one
      rebuild();
    }
  }
  if (!tables_ready_) [[unlikely]] {
    ++stats_.dropped_unmapped;
    return 0;
  }
  const std::uint16_t o = in.map[pid];
  tick_table_clock(packet, o, now_ns);
  std::size_t n = 0;
  if (tables_due_ || clock_ns_ < quiet_from_ns_ || clock_ns_ >= quiet_until_ns_) [[unlikely]]
    n = emit_tables(now_ns, out);
  if (eit_len_ != 0) [[unlikely]]
    n += emit_eit(out.subspan(n));
  if (o >= kDropByRule) [[unlikely]] {
    if (o == kUnmapped)
      ++stats_.dropped_unmapped;
    else
      ++stats_.dropped_rule;
    return n;
  }
  const bool payload = (b3 & 0x10) != 0;
  const std::uint8_t cc_in = b3 & 0x0F;
  bool duplicate = false;
  if (payload) {
    // A legal single repeat (ISO 13818-1 2.4.3.3: every byte again, the PCR excepted)
    // stays a repeat. The same counter on another packet is not one: the source restarted
    // (an encoder behind the same input) and its packet must get the next counter, or a
    // receiver drops it as a duplicate (the first packet of a PES, often of a key frame).
    const std::uint64_t fp = fingerprint(packet);
    duplicate = in.last_cc[pid] == cc_in && in.last_fp[pid] == fp;
    in.last_cc[pid] = cc_in;
    in.last_fp[pid] = fp;
  }
  OutPid& op = out_[o];
  if (op.wait_unit_start && payload) [[unlikely]] {
    // Resume at a unit start; video at a random access point (the encoder's
    // random_access_indicator), or at any unit start once kMaxKeyframeWaitNs has passed
    // for streams that do not flag them.
    // (now_ns | 1 may lie 1 ns ahead of now_ns: no time has passed then, not 2^64 - 1 ns.)
    if (op.wait_since_ns == 0 || now_ns + 1 < op.wait_since_ns) op.wait_since_ns = now_ns | 1;
    const bool keyframe_ok = !op.is_video || packet.random_access() ||
                             (now_ns >= op.wait_since_ns && now_ns - op.wait_since_ns >= kMaxKeyframeWaitNs);
    if ((b1 & 0x40) == 0 || !keyframe_ok) {
      ++stats_.dropped_resync;
      return n;
    }
    op.wait_unit_start = false;
  }
  std::uint8_t cc = op.cc;
  if (payload && !duplicate) cc = static_cast<std::uint8_t>((cc + 1) & 0x0F);
  op.cc = cc;
  const bool mark = op.mark_discontinuity;
  TsPacket& w = out[n++];
  std::memcpy(w.bytes.data(), packet.bytes.data(), kPacketSize);
  w.bytes[1] = static_cast<std::uint8_t>((b1 & 0xE0) | (o >> 8));
  w.bytes[2] = static_cast<std::uint8_t>(o);
  w.bytes[3] = static_cast<std::uint8_t>((b3 & 0xF0) | cc);
  if (mark) [[unlikely]] {
    // The PCR PID announces the new timeline on its first PCR; other PIDs on their first
    // packet after the switch when it has an adaptation field to carry the flag.
    if (!op.carries_pcr || w.has_pcr()) {
      if (w.set_discontinuity(true)) ++stats_.discontinuities_marked;
      op.mark_discontinuity = false;
    }
  }
  if (op.carries_pcr && (b3 & 0x20) != 0 && (b1 & 0x80) == 0 && w.has_pcr()) {
    // A timeline jump the source did not flag (an encoder restarted behind the same
    // input, its clock stepped, an outage longer than the limit): the PCR is flagged here,
    // so receivers re-lock instead of counting a PCR_discontinuity_indicator_error
    // (TR 101 290 2.3: consecutive PCRs more than 100 ms apart, or going back, unflagged).
    // A packet with transport_error_indicator is not believed: its PCR may be corrupt.
    const std::uint64_t pcr = w.pcr();
    if (op.have_pcr && !w.discontinuity() && pcr_delta(op.last_pcr, pcr) > kPcrJumpTicks) [[unlikely]] {
      if (w.set_discontinuity(true)) ++stats_.discontinuities_marked;
    }
    op.last_pcr = pcr;
    op.have_pcr = true;
  }
  return n;
}

std::size_t Remuxer::push(std::size_t input, const TsPacket& packet, std::uint64_t now_ns, std::span<TsPacket> out) {
  const std::size_t n = push_one(*inputs_[input], packet, now_ns, out);
  ++stats_.packets_in;
  stats_.packets_out += n;
  return n;
}

std::size_t Remuxer::push(std::size_t input, std::span<const TsPacket> packets, std::uint64_t now_ns,
                          std::span<TsPacket> out) {
  assert(out.size() >= packets.size() * max_out_);
  Input& in = *inputs_[input];
  TsPacket* const to = out.data();
  std::size_t n = 0;
  for (const TsPacket& p : packets) n += push_one(in, p, now_ns, std::span<TsPacket>(to + n, out.size() - n));
  stats_.packets_in += packets.size();
  stats_.packets_out += n;
  return n;
}

void Remuxer::describe(std::size_t service, const std::string& name, const std::string& provider, std::uint16_t lcn,
                       std::optional<bool> nit) {
  RemuxServiceConfig& s = config_.services.at(service);
  s.name = name;
  s.provider = provider;
  s.lcn = lcn;
  if (nit) config_.nit = *nit || nit_on_air_;
  // Before any service is learnt there are no tables: the first rebuild() uses these.
  if (std::any_of(snapshots_.begin(), snapshots_.end(), [](const auto& snap) { return snap.has_value(); })) rebuild();
}

void Remuxer::switch_source(std::size_t input) {
  Input& in = *inputs_.at(input);
  for (std::uint32_t pid = 0; pid < kPidCount; ++pid) {
    const std::uint16_t o = in.map[pid];
    if (o == kUnmapped || o == kDropByRule) continue;
    out_[o].wait_unit_start = true;
    out_[o].wait_since_ns = 0;
    out_[o].mark_discontinuity = true;
  }
  in.last_cc.fill(0x10);
  for (std::size_t k = 0; k < config_.services.size(); ++k)
    if (config_.services[k].input == input) eit_src_version_[k].fill(0xFF);  // each next EIT sub_table: a new version
  in.psi->reset();
  in.sdts_at_switch = in.psi->stats().sdt;
  in.seen_generation = in.psi->generation();
  copy_psi_pids(in);
}

void Remuxer::resume_table(TableCarousel& table) const {
  if (table.has_content()) return;
  for (const InheritedTable& t : inherited_tables_)
    if (t.pid == table.pid()) {
      table.resume(t.version, t.cc);
      return;
    }
  // A PID a stream had (here or in an engine this one took over from): its counter goes on.
  const std::uint16_t pid = table.pid();
  if (pid < kNullPid && ((used_out_[pid / 64] >> (pid % 64)) & 1U) != 0)
    table.resume(static_cast<std::uint8_t>((table.version() + 0x1F) & 0x1F), static_cast<std::uint8_t>(out_[pid].cc + 1));
}

void Remuxer::continue_from(const Remuxer& previous, std::span<const std::size_t> previous_input) {
  // `previous` may itself have taken over from an engine and not sent anything yet (reloads
  // faster than it learnt its input): what it inherited and did not use yet goes on too
  // (used_out_ includes those PIDs). Only the PIDs ever mapped: a worker runs this for
  // every changed channel of a reload in one turn.
  for (std::size_t w = 0; w < used_out_.size(); ++w) {
    used_out_[w] |= previous.used_out_[w];
    for (std::uint64_t bits = previous.used_out_[w]; bits != 0; bits &= bits - 1) {
      const std::size_t pid = w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
      out_[pid].cc = previous.out_[pid].cc;
      out_[pid].wait_unit_start = true;
      out_[pid].wait_since_ns = 0;
      out_[pid].mark_discontinuity = true;
    }
  }
  // Receivers that saw a NIT keep what it said until a new version tells them otherwise: a
  // NIT the previous engine sent (or one before it: it may have sent nothing) goes on, even
  // when this one has no LCN to give.
  if (previous.nit_on_air_) nit_on_air_ = config_.nit = true;
  // What the previous engine's services had on air (the same source service of the same
  // source): kept by the services here as they are learnt, as within one engine.
  const auto previous_of = [&](std::size_t input) {
    const std::size_t j = previous_input.empty() ? input
                          : input < previous_input.size() ? previous_input[input]
                                                          : kNoPreviousInput;
    return j < previous.inputs_.size() ? j : kNoPreviousInput;
  };
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    const std::size_t j = previous_of(i);
    inputs_[i]->inherited_emm.reset();
    if (j == kNoPreviousInput) {
      inputs_[i]->inherited_map.fill(kUnmapped);
    } else {
      const Input& p = *previous.inputs_[j];
      inputs_[i]->inherited_map = p.map;
      if (p.emm_on_air) {
        for (const auto& d : *p.cat)
          if (const std::uint16_t emm = ca_pid(d); emm < kNullPid) inputs_[i]->inherited_emm[emm] = true;
      } else {
        // `previous` has not mapped its CAT yet: the EMM PIDs it inherited (and kept reserved) go on.
        inputs_[i]->inherited_emm = p.inherited_emm;
        for (std::uint16_t pid = 0; pid < kNullPid; ++pid)
          if (p.inherited_emm[pid] && inputs_[i]->inherited_map[pid] == kUnmapped)
            inputs_[i]->inherited_map[pid] = p.inherited_map[pid];
      }
    }
  }
  // Only what the engine before chose itself: an output PID its PID rules named, a
  // configured service id or PMT PID, were the configuration's, which may have changed.
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    const std::size_t j = previous_of(i);
    for (const auto& pc : previous.config_.services)
      if (j != kNoPreviousInput && pc.input == j)
        for (const auto& r : pc.rules) inputs_[i]->inherited_map[r.from & 0x1FFF] = kUnmapped;
  }
  for (std::size_t k = 0; k < config_.services.size(); ++k) {
    const auto& sc = config_.services[k];
    const std::size_t j = previous_of(sc.input);
    last_sid_[k] = 0;
    inherited_pmt_[k] = 0;
    for (std::size_t p = 0; j != kNoPreviousInput && p < previous.config_.services.size(); ++p) {
      const auto& pc = previous.config_.services[p];
      if (pc.input != j || pc.source_service_id != sc.source_service_id) continue;
      if (pc.service_id == 0) last_sid_[k] = previous.last_sid_[p];
      if (pc.pmt_pid == 0 && previous.pmts_[p].has_content()) inherited_pmt_[k] = previous.pmts_[p].pid();
      inherited_snapshots_[k] = previous.snapshots_[p] ? previous.snapshots_[p] : previous.inherited_snapshots_[p];
      break;
    }
    // The EIT sub_tables of the output service id the previous engine had on air (another
    // output service id: new sub_tables) go on from their versions, and the SDT's EIT flags
    // with them, whatever source fed them: the input here may be another source service or
    // another feed (a changed address; a channel that was on its backup restarts on its
    // primary), so each sub_table's next section moves its version, as after a switch
    // (eit_src_version_ stays unknown).
    const std::uint16_t out_sid = sc.service_id != 0 ? sc.service_id : last_sid_[k];
    for (std::size_t p = 0; out_sid != 0 && !drops(sc.rules, kEitPid) && p < previous.config_.services.size(); ++p) {
      const auto& pc = previous.config_.services[p];
      if ((pc.service_id != 0 ? pc.service_id : previous.last_sid_[p]) != out_sid) continue;
      eit_pf_[k] = previous.eit_pf_[p];
      eit_sched_[k] = previous.eit_sched_[p];
      eit_out_version_[k] = previous.eit_out_version_[p];
      break;
    }
  }
  inherited_tables_.clear();
  const auto inherit = [&](const TableCarousel& t) {
    if (t.has_content() && inherited_tables_.size() < inherited_tables_.capacity())
      inherited_tables_.push_back(InheritedTable{t.pid(), t.version(), t.cc()});
    // A stream that gets the PID of a table `previous` had on air goes on from its counter.
    // (A carousel's counter is the next one it writes, a stream's the last one written.)
    if (t.has_content() && t.pid() < kNullPid) out_[t.pid()].cc = static_cast<std::uint8_t>((t.cc() + 0x0F) & 0x0F);
  };
  inherit(previous.pat_);
  inherit(previous.cat_);
  inherit(previous.sdt_);
  inherit(previous.nit_);
  for (const TableCarousel& pmt : previous.pmts_) inherit(pmt);
  for (const InheritedTable& t : previous.inherited_tables_) {
    const bool known = std::any_of(inherited_tables_.begin(), inherited_tables_.end(),
                                   [&](const InheritedTable& k) { return k.pid == t.pid; });
    if (!known && inherited_tables_.size() < inherited_tables_.capacity()) {
      inherited_tables_.push_back(t);
      if (((previous.used_out_[t.pid / 64] >> (t.pid % 64)) & 1U) == 0)
        out_[t.pid].cc = static_cast<std::uint8_t>((t.cc + 0x0F) & 0x0F);
    }
  }
  cat_inherited_ = std::any_of(inherited_tables_.begin(), inherited_tables_.end(),
                               [](const InheritedTable& t) { return t.pid == kCatPid; });
  resume_table(pat_);
  resume_table(cat_);
  resume_table(sdt_);
  resume_table(nit_);
  for (TableCarousel& pmt : pmts_) resume_table(pmt);  // configured PMT PIDs already in place
}

}  // namespace twincast::mpegts
