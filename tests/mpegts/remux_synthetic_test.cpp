// The remux engine on synthetic inputs whose PSI is built here, so each
// test controls PIDs, descriptors and table changes exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "twincast/mpegts/analyzer.hpp"
#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/section.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/psi_tables.hpp"
#include "twincast/mpegts/remux.hpp"
#include "tests_common.hpp"

using namespace twincast::mpegts;

namespace {

// One synthetic input: a PAT, one PMT per service, ES packets tagged with
// (input, source PID) in their payload so the output can be traced back.
struct Source {
  std::uint8_t tag = 0;
  std::uint16_t tsid = 1;
  std::vector<Service> services;
  TableCarousel pat{kPatPid};
  std::map<std::uint16_t, TableCarousel> pmts;
  std::map<std::uint16_t, std::uint8_t> cc;
  std::optional<std::vector<Descriptor>> cat;  // a CAT with these descriptors after the PAT
  TableCarousel cat_table{kCatPid};

  std::vector<TsPacket> tables() {
    std::vector<PatEntry> entries;
    for (const auto& s : services) entries.push_back({s.service_id, s.pmt_pid});
    pat.update([&](std::uint8_t v) { return build_pat(tsid, entries, v); });
    std::vector<TsPacket> out(2048);
    std::size_t n = pat.packetize(out);
    if (cat) {
      cat_table.update([&](std::uint8_t v) { return build_cat(*cat, v); });
      n += cat_table.packetize(std::span<TsPacket>(out).subspan(n));
    }
    for (const auto& s : services) {
      auto it = pmts.try_emplace(s.pmt_pid, s.pmt_pid).first;
      it->second.update([&](std::uint8_t v) { return build_pmt(s, v); });
      n += it->second.packetize(std::span<TsPacket>(out).subspan(n));
    }
    out.resize(n);
    return out;
  }

  TsPacket es(std::uint16_t pid, bool unit_start = true, bool rai = true, std::optional<std::uint64_t> pcr = {}) {
    TsPacket p{};
    p.bytes.fill(0xFF);
    p.bytes[0] = kSyncByte;
    p.bytes[1] = 0;  // no transport_error_indicator or priority
    p.set_pid(pid);
    p.set_payload_unit_start(unit_start);
    std::size_t at = 4;
    if (rai || pcr) {
      p.bytes[3] = 0x30;
      p.bytes[4] = pcr ? 7 : 1;
      p.bytes[5] = static_cast<std::uint8_t>((rai ? 0x40 : 0) | (pcr ? 0x10 : 0));
      if (pcr) p.set_pcr(*pcr);
      at = 5 + p.bytes[4];
    } else {
      p.bytes[3] = 0x10;
    }
    p.bytes[at] = 0x00;
    p.bytes[at + 1] = 0x00;
    p.bytes[at + 2] = 0x01;
    p.bytes[at + 3] = 0xE0;
    p.bytes[at + 4] = tag;
    p.bytes[at + 5] = static_cast<std::uint8_t>(pid >> 8);
    p.bytes[at + 6] = static_cast<std::uint8_t>(pid & 0xFF);
    auto& c = cc.try_emplace(pid, 0x0F).first->second;
    c = static_cast<std::uint8_t>((c + 1) & 0x0F);
    p.set_cc(c);
    return p;
  }
};

// (tag, source PID) an output media packet came from (written by Source::es).
std::pair<int, int> origin(const TsPacket& p) {
  const auto pl = p.payload();
  if (pl.size() < 7 || pl[0] != 0 || pl[1] != 0 || pl[2] != 1) return {-1, -1};
  return {pl[4], (pl[5] << 8) | pl[6]};
}

// Each output PID carried one source stream (tag, source PID) for the whole run.
void expect_each_output_pid_carries_one_source(const std::vector<TsPacket>& out) {
  std::map<std::uint16_t, std::set<std::pair<int, int>>> carried;
  for (const auto& p : out) {
    const auto o = origin(p);
    if (o.first >= 0) carried[p.pid()].insert(o);
  }
  for (const auto& [pid, origins] : carried) EXPECT_EQ(origins.size(), 1u) << "output PID " << pid << " changed content";
}

Service spts_service(std::uint16_t sid, std::uint16_t pmt, std::vector<std::pair<std::uint16_t, std::uint8_t>> es,
                     std::uint16_t pcr) {
  Service s;
  s.service_id = sid;
  s.pmt_pid = pmt;
  s.pcr_pid = pcr;
  for (const auto& [pid, type] : es) {
    ElementaryStream e;
    e.pid = pid;
    e.stream_type = type;
    s.streams.push_back(e);
  }
  return s;
}

struct Harness {
  Remuxer r;
  std::vector<TsPacket> out;
  std::uint64_t t = 0;
  explicit Harness(RemuxConfig c) : r(std::move(c)) {}
  void push(std::size_t input, const TsPacket& p) {
    std::vector<TsPacket> buf(r.max_output_per_push());
    t += 1'000'000;
    const std::size_t n = r.push(input, p, t, buf);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  void push(std::size_t input, const std::vector<TsPacket>& ps) {
    for (const auto& p : ps) push(input, p);
  }
};

// One SPTS (service 1, PMT 0x1000, PCR on 0x100, streams `es`) and a remux taking it,
// its tables learnt.
struct OneService {
  Source src{.tag = 0};
  Harness h{config()};
  explicit OneService(std::vector<std::pair<std::uint16_t, std::uint8_t>> es) {
    src.services.push_back(spts_service(1, 0x1000, std::move(es), 0x100));
    h.push(0, src.tables());
  }
  static RemuxConfig config() {
    RemuxConfig cfg;
    cfg.services.push_back({.input = 0, .source_service_id = 1});
    return cfg;
  }
};

ProgramModel decode(const std::vector<TsPacket>& pkts) {
  PsiDecoder d;
  for (const auto& p : pkts) d.push(p);
  return d.model();
}

}  // namespace

// Two SPTS with the same PIDs (ffmpeg's defaults) merged into an MPTS. When the first
// member's PMT gains a stream, the second member's live PIDs must not move: they did not
// collide with anything new. (An engine that allocates every PID afresh in configuration
// order at each rebuild gives the newcomer the PID of the second member's video and shifts
// that member's streams, its video onto the PID that carried its audio, with no
// discontinuity for a receiver to notice.)
TEST(RemuxSynthetic, AMembersNewStreamDoesNotMoveAnotherMembersPids) {
  RemuxConfig cfg;
  cfg.n_inputs = 2;
  cfg.services.push_back({.input = 0, .service_id = 10});
  cfg.services.push_back({.input = 1, .service_id = 20});
  Harness h(cfg);
  Source a{.tag = 0}, b{.tag = 1};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100));
  b.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100));
  h.push(0, a.tables());
  h.push(1, b.tables());
  for (int i = 0; i < 20; ++i) {
    h.push(0, a.es(0x100));
    h.push(0, a.es(0x101));
    h.push(1, b.es(0x100));
    h.push(1, b.es(0x101));
  }
  const std::uint16_t b_video = h.r.output_pid(1, 0x100);
  const std::uint16_t b_audio = h.r.output_pid(1, 0x101);
  ASSERT_NE(b_video, Remuxer::kUnmapped);
  ASSERT_NE(b_audio, Remuxer::kUnmapped);

  // Member A adds a second audio on 0x102.
  ElementaryStream extra;
  extra.pid = 0x102;
  extra.stream_type = 0x0F;
  a.services[0].streams.push_back(extra);
  h.push(0, a.tables());
  for (int i = 0; i < 20; ++i) {
    h.push(0, a.es(0x100));
    h.push(0, a.es(0x101));
    h.push(0, a.es(0x102));
    h.push(1, b.es(0x100));
    h.push(1, b.es(0x101));
  }
  EXPECT_EQ(h.r.output_pid(1, 0x100), b_video) << "member B's video moved";
  EXPECT_EQ(h.r.output_pid(1, 0x101), b_audio) << "member B's audio moved";

  // Each output PID carries one source stream for the whole run.
  expect_each_output_pid_carries_one_source(h.out);
}

// The same root cause at start-up: member B's tables arrive first, then A's. B has been
// on air with its own PIDs and service; learning A must not move them.
TEST(RemuxSynthetic, LearningASecondMemberDoesNotMoveTheFirstOnesPids) {
  RemuxConfig cfg;
  cfg.n_inputs = 2;
  cfg.services.push_back({.input = 0});  // service id: the source's
  cfg.services.push_back({.input = 1});
  Harness h(cfg);
  Source a{.tag = 0}, b{.tag = 1};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100));
  b.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100));
  h.push(1, b.tables());
  for (int i = 0; i < 10; ++i) {
    h.push(1, b.es(0x100));
    h.push(1, b.es(0x101));
  }
  ASSERT_EQ(h.r.output_model().services.size(), 1u);
  const Service before = h.r.output_model().services[0];
  h.push(0, a.tables());
  for (int i = 0; i < 10; ++i) {
    h.push(0, a.es(0x100));
    h.push(1, b.es(0x100));
  }
  ASSERT_EQ(h.r.output_model().services.size(), 2u);
  const Service& after = h.r.output_model().services[1];  // B, in configuration order
  EXPECT_EQ(after.service_id, before.service_id);
  EXPECT_EQ(after.pmt_pid, before.pmt_pid);
  EXPECT_EQ(h.r.output_pid(1, 0x100), before.streams[0].pid);
  expect_each_output_pid_carries_one_source(h.out);
}

// An MPTS of many services, each with a name and a logical channel number: every service
// must be in the regenerated SDT (with its name) and in the NIT (service list and LCN),
// split over several sections where one 1021-byte section is not enough.
TEST(RemuxSynthetic, ManyServicesAllKeepTheirNameAndLcn) {
  constexpr std::uint16_t kServices = 160;
  Source src{.tag = 0};
  RemuxConfig cfg;
  cfg.nit = true;
  for (std::uint16_t i = 0; i < kServices; ++i) {
    src.services.push_back(spts_service(static_cast<std::uint16_t>(i + 1), static_cast<std::uint16_t>(0x1000 + i),
                                        {{static_cast<std::uint16_t>(0x100 + i), 0x1B}},
                                        static_cast<std::uint16_t>(0x100 + i)));
    cfg.services.push_back({.input = 0,
                            .source_service_id = static_cast<std::uint16_t>(i + 1),
                            .lcn = static_cast<std::uint16_t>(100 + i),
                            .name = "Channel number " + std::to_string(i + 1)});
  }
  Harness h(cfg);
  h.push(0, src.tables());
  ASSERT_EQ(h.r.output_model().services.size(), kServices);
  // A receiver that tunes in once the service list is complete: it sees the tables of
  // the last few seconds.
  h.out.clear();
  for (int round = 0; round < 20; ++round)
    for (std::uint16_t i = 0; i < kServices; ++i) h.push(0, src.es(static_cast<std::uint16_t>(0x100 + i)));

  const ProgramModel m = decode(h.out);
  ASSERT_EQ(m.services.size(), kServices);
  std::size_t named = 0, numbered = 0;
  for (const auto& s : m.services) {
    named += s.name == "Channel number " + std::to_string(s.service_id);
    numbered += s.lcn == 99 + s.service_id;
  }
  EXPECT_EQ(named, kServices) << "services with their SDT name";
  EXPECT_EQ(numbered, kServices) << "services with their LCN in the NIT";
}

// The table builders the engine uses: every service of an SDT that needs two sections
// keeps its service_descriptor (libdvbpsi drops those of the services at the end of a
// full section and still writes the service, with an empty loop).
TEST(RemuxSynthetic, SdtOfTwoSectionsKeepsEveryServiceDescriptor) {
  std::vector<Service> services;
  for (std::uint16_t i = 1; i <= 30; ++i) {
    Service s;
    s.service_id = i;
    s.name = "Channel number " + std::to_string(i);
    s.provider = "Provider " + std::to_string(i % 3);
    services.push_back(s);
  }
  std::size_t described = 0, listed = 0;
  for (const auto& s : build_sdt(7, 0x2000, services, 0)) {
    ASSERT_LE(s.size(), 1024u);
    for (std::size_t q = 11; q + 4 < s.size();) {
      const std::size_t loop = static_cast<std::size_t>(((s[q + 3] & 0x0F) << 8) | s[q + 4]);
      ++listed;
      described += loop > 0;
      q += 5 + loop;
    }
  }
  EXPECT_EQ(listed, 30u);
  EXPECT_EQ(described, 30u) << "services listed without their service_descriptor";
}

// A scrambled service taken out of an MPTS: its PMT's CA_descriptor names the ECM PID.
// The output PMT keeps the descriptor, so the ECM PID it names must be carried (and
// follow a remap), not only the ES and PCR PIDs.
TEST(RemuxSynthetic, EcmPidOfACaDescriptorIsCarried) {
  Source src{.tag = 0};
  Service s = spts_service(5, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100);
  // CA_descriptor: CA_system_id 0x0B00, CA_PID 0x1F0.
  s.program_descriptors.push_back(Descriptor{0x09, {0x0B, 0x00, 0xE1, 0xF0}});
  src.services.push_back(s);
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .source_service_id = 5});
  Harness h(cfg);
  h.push(0, src.tables());
  for (int i = 0; i < 10; ++i) {
    h.push(0, src.es(0x100));
    h.push(0, src.es(0x1F0));  // ECM
  }
  const ProgramModel m = decode(h.out);
  ASSERT_EQ(m.services.size(), 1u);
  ASSERT_EQ(m.services[0].program_descriptors.size(), 1u);
  const auto& ca = m.services[0].program_descriptors[0].data;
  ASSERT_EQ(ca.size(), 4u);
  const auto ecm = static_cast<std::uint16_t>(((ca[2] & 0x1F) << 8) | ca[3]);
  std::size_t ecm_packets = 0;
  for (const auto& p : h.out) ecm_packets += p.pid() == ecm;
  EXPECT_EQ(ecm_packets, 10u) << "ECM packets on the PID the output PMT names";
}

// A PID rule names the output PID a source PID must be carried on. Whether the rule holds
// must not depend on which input's tables arrive first: the other member's stream, learnt
// first on the rule's target PID, must not keep it as "on air" (nor be moved off it later).
TEST(RemuxSynthetic, PidRuleTargetHoldsWhateverInputIsLearntFirst) {
  RemuxConfig cfg;
  cfg.n_inputs = 2;
  cfg.services.push_back({.input = 0, .service_id = 10, .rules = {PidRule{.from = 0x100, .to = 0x300}}});
  cfg.services.push_back({.input = 1, .service_id = 20});
  Harness h(cfg);
  Source a{.tag = 0}, b{.tag = 1};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  b.services.push_back(spts_service(1, 0x1001, {{0x300, 0x1B}}, 0x300));
  h.push(1, b.tables());  // member B first
  for (int i = 0; i < 5; ++i) h.push(1, b.es(0x300));
  h.push(0, a.tables());
  for (int i = 0; i < 5; ++i) {
    h.push(0, a.es(0x100));
    h.push(1, b.es(0x300));
  }
  EXPECT_EQ(h.r.output_pid(0, 0x100), 0x300) << "rule 0x100 -> 0x300 not applied";
  expect_each_output_pid_carries_one_source(h.out);
}

// A reload that rebuilds a multiplex (a member added) hands the output over with
// continue_from(). The members already on air keep their PIDs, PMT PIDs and service ids,
// although the new engine learns its inputs in another order than the old one did.
namespace {

// The reload case: an engine of members A (input 0) and B (input 1) learnt B first; the
// engine after the reload has `next_inputs` inputs, the members at `slot_a`/`slot_b` (the
// new one C at the remaining slot), learns them in input order, and takes over with
// `previous_input`. A and B must keep what they had on air.
void expect_members_keep_their_layout(std::size_t slot_a, std::size_t slot_b, std::size_t slot_c,
                                      std::vector<std::size_t> previous_input) {
  RemuxConfig cfg;
  cfg.n_inputs = 2;
  cfg.services.push_back({.input = 0});
  cfg.services.push_back({.input = 1});
  Source a{.tag = 0}, b{.tag = 1}, c{.tag = 2};
  for (Source* s : {&a, &b, &c})
    s->services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100));
  Harness old(cfg);
  old.push(1, b.tables());
  old.push(0, a.tables());
  for (int i = 0; i < 5; ++i) {
    old.push(0, a.es(0x100));
    old.push(1, b.es(0x100));
  }
  ASSERT_EQ(old.r.output_model().services.size(), 2u);
  const ProgramModel before = old.r.output_model();
  const std::uint16_t a_video = old.r.output_pid(0, 0x100), b_video = old.r.output_pid(1, 0x100);

  RemuxConfig next;
  next.n_inputs = 3;
  for (std::size_t slot = 0; slot < 3; ++slot) next.services.push_back({.input = slot});
  Harness now(next);
  now.r.continue_from(old.r, previous_input);
  Source* by_slot[3];
  by_slot[slot_a] = &a;
  by_slot[slot_b] = &b;
  by_slot[slot_c] = &c;
  for (std::size_t slot = 0; slot < 3; ++slot) now.push(slot, by_slot[slot]->tables());
  for (int i = 0; i < 5; ++i)
    for (std::size_t slot = 0; slot < 3; ++slot) now.push(slot, by_slot[slot]->es(0x100));
  ASSERT_EQ(now.r.output_model().services.size(), 3u);
  EXPECT_EQ(now.r.output_pid(slot_a, 0x100), a_video) << "member A's video moved across the reload";
  EXPECT_EQ(now.r.output_pid(slot_b, 0x100), b_video) << "member B's video moved across the reload";
  const std::size_t slots[2] = {slot_a, slot_b};
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(now.r.output_model().services[slots[k]].service_id, before.services[k].service_id) << "member " << k;
    EXPECT_EQ(now.r.output_model().services[slots[k]].pmt_pid, before.services[k].pmt_pid) << "member " << k;
  }
}

}  // namespace

TEST(RemuxSynthetic, ReloadKeepsWhatIsOnAirWhenInputsArriveInAnotherOrder) {
  expect_members_keep_their_layout(0, 1, 2, {});  // C added at the end: input i was input i
}

// The same with C listed first: A and B move to inputs 1 and 2, and continue_from() is told
// where they were.
TEST(RemuxSynthetic, ReloadKeepsWhatIsOnAirWhenMembersMoveToOtherInputs) {
  expect_members_keep_their_layout(1, 2, 0, {Remuxer::kNoPreviousInput, 0, 1});
}

// Programs (program_number != 0) of every PAT section in `pkts` (one-packet PATs).
static std::vector<std::size_t> pat_program_counts(const std::vector<TsPacket>& pkts) {
  std::vector<std::size_t> counts;
  for (const auto& p : pkts) {
    if (p.pid() != kPatPid || !p.payload_unit_start()) continue;
    const auto pl = p.payload();
    const std::size_t at = 1 + pl[0];
    const std::size_t len = static_cast<std::size_t>(((pl[at + 1] & 0x0F) << 8) | pl[at + 2]);
    std::size_t n = 0;
    for (std::size_t q = at + 8; q + 4 <= at + 3 + len - 4; q += 4) n += ((pl[q] << 8) | pl[q + 1]) != 0;
    counts.push_back(n);
  }
  return counts;
}

// A reload that rebuilds a multiplex (a member's input address changed, a member added,
// the network name changed) hands its output over with continue_from(); the new engine
// learns its members one after the other (each channel's tables come when they come). The
// services that were on air stay in the PAT meanwhile: a PAT that lists only the members
// learnt so far tells every receiver the others are gone (and each member learnt moves
// the version again), although nothing about them changed.
TEST(RemuxSynthetic, AReloadKeepsTheMembersNotLearntYetInThePat) {
  RemuxConfig cfg;
  cfg.n_inputs = 3;
  for (std::size_t i = 0; i < 3; ++i)
    cfg.services.push_back({.input = i, .service_id = static_cast<std::uint16_t>(10 + i)});
  Source src[3] = {Source{.tag = 0}, Source{.tag = 1}, Source{.tag = 2}};
  for (Source& s : src) s.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100));
  Harness old(cfg);
  for (std::size_t i = 0; i < 3; ++i) old.push(i, src[i].tables());
  for (int k = 0; k < 5; ++k)
    for (std::size_t i = 0; i < 3; ++i) old.push(i, src[i].es(0x100));
  ASSERT_EQ(old.r.output_model().services.size(), 3u);

  Harness now(cfg);
  now.r.continue_from(old.r);
  for (std::size_t i = 0; i < 3; ++i) {
    now.push(i, src[i].tables());
    for (int k = 0; k < 5; ++k)
      for (std::size_t j = 0; j <= i; ++j) now.push(j, src[j].es(0x100));
  }
  ASSERT_EQ(now.r.output_model().services.size(), 3u);
  const std::vector<std::size_t> counts = pat_program_counts(now.out);
  ASSERT_FALSE(counts.empty());
  for (std::size_t k = 0; k < counts.size(); ++k) EXPECT_EQ(counts[k], 3u) << "PAT #" << k << " after the reload";
  // One new version for the reload, not one per member learnt.
  std::set<int> versions;
  for (const auto& p : now.out)
    if (p.pid() == kPatPid && p.payload_unit_start()) versions.insert((p.payload()[1 + p.payload()[0] + 5] >> 1) & 0x1F);
  EXPECT_EQ(versions.size(), 1u) << "PAT versions after the reload";
}

// Continuity errors per PID over `pkts` (packets without payload and null packets skipped;
// a discontinuity_indicator excuses one; a repeated counter is a duplicate only when the
// packet repeats, ISO 13818-1 2.4.3.3, else a receiver drops it: an error).
static std::map<std::uint16_t, int> cc_errors_by_pid(const std::vector<TsPacket>& pkts) {
  std::map<std::uint16_t, TsPacket> last;
  std::map<std::uint16_t, int> errors;
  for (const auto& p : pkts) {
    if (p.pid() == kNullPid || !p.has_payload()) continue;
    const auto it = last.find(p.pid());
    if (it != last.end() && !p.discontinuity() && p.cc() != ((it->second.cc() + 1) & 0xF) &&
        !(p.cc() == it->second.cc() && p.bytes == it->second.bytes))
      ++errors[p.pid()];
    last[p.pid()] = p;
  }
  return errors;
}

// A reload replaces member B by a new member C whose PMT lands on the PID that carried B's
// video and whose video lands on B's old PMT PID (both free now, so nothing is remapped).
// Each of those PIDs goes on with the next continuity counter: a table that takes over a
// stream's PID (or a stream a table's) across a reload must not restart the counter, or
// every analyzer watching the MPTS counts a continuity error on it.
TEST(RemuxSynthetic, AReloadContinuesTheCounterOfAPidThatChangesFromStreamToTableOrBack) {
  RemuxConfig cfg;
  cfg.n_inputs = 2;
  cfg.services.push_back({.input = 0, .service_id = 10});
  cfg.services.push_back({.input = 1, .service_id = 20});
  Source a{.tag = 0}, b{.tag = 1}, c{.tag = 2};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100));
  b.services.push_back(spts_service(1, 0x1001, {{0x200, 0x1B}, {0x201, 0x0F}}, 0x200));
  c.services.push_back(spts_service(1, 0x200, {{0x1001, 0x1B}}, 0x1001));
  Harness old(cfg);
  old.push(0, a.tables());
  old.push(1, b.tables());
  for (int k = 0; k < 250; ++k) {  // 0.5 s: the PMTs go out several times
    old.push(0, a.es(0x100));
    old.push(1, b.es(0x200));
  }
  ASSERT_EQ(old.r.output_pid(1, 0x200), 0x200);
  ASSERT_EQ(old.r.output_model().services.at(1).pmt_pid, 0x1001);

  Harness now(cfg);
  now.t = old.t;
  const std::vector<std::size_t> previous_input = {0, Remuxer::kNoPreviousInput};  // B removed, C new
  now.r.continue_from(old.r, previous_input);
  now.push(0, a.tables());
  now.push(1, c.tables());
  for (int k = 0; k < 7; ++k) {
    now.push(0, a.es(0x100));
    now.push(1, c.es(0x1001));
  }
  ASSERT_EQ(now.r.output_model().services.at(1).pmt_pid, 0x200);
  ASSERT_EQ(now.r.output_pid(1, 0x1001), 0x1001);
  std::vector<TsPacket> all = old.out;
  all.insert(all.end(), now.out.begin(), now.out.end());
  const auto errors = cc_errors_by_pid(all);
  EXPECT_EQ(errors.count(0x200), 0u) << "C's PMT on B's old video PID restarted its counter";
  EXPECT_EQ(errors.count(0x1001), 0u) << "C's video on B's old PMT PID restarted its counter";
}

// What the engine before was configured to do is not inherited: a PID rule and a service
// id the reload removed give way to the source's own PID and service id.
TEST(RemuxSynthetic, AReloadDropsWhatTheOldConfigurationChose) {
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .service_id = 5, .rules = {PidRule{.from = 0x100, .to = 0x300}}});
  Source a{.tag = 0};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100));
  Harness old(cfg);
  old.push(0, a.tables());
  for (int i = 0; i < 5; ++i) old.push(0, a.es(0x100));
  ASSERT_EQ(old.r.output_pid(0, 0x100), 0x300);
  ASSERT_EQ(old.r.output_model().services.at(0).service_id, 5);

  RemuxConfig next;
  next.services.push_back({.input = 0});
  Harness now(next);
  now.r.continue_from(old.r);
  now.push(0, a.tables());
  for (int i = 0; i < 5; ++i) now.push(0, a.es(0x100));
  EXPECT_EQ(now.r.output_pid(0, 0x100), 0x100) << "the removed rule still applies";
  EXPECT_EQ(now.r.output_pid(0, 0x101), old.r.output_pid(0, 0x101)) << "what the engine chose itself stays";
  EXPECT_EQ(now.r.output_model().services.at(0).service_id, 1) << "the removed service id still applies";
}

// An encoder restarting behind the same input (an SRT caller reconnecting, a UDP source
// restarted) starts a new timeline without flagging it. The output flags it on the jump's
// PCR, so a receiver re-locks instead of counting a PCR_discontinuity_indicator_error
// (TR 101 290 2.3: consecutive PCRs more than 100 ms apart or going back). Regular PCRs,
// small irregularities and the 2^33 wrap stay unflagged; a jump the source flagged is
// passed as it is.
TEST(RemuxSynthetic, UnflaggedPcrJumpsAreFlaggedAtTheOutput) {
  OneService one({{0x100, 0x1B}});
  Source& src = one.src;
  Harness& h = one.h;
  constexpr std::uint64_t kMsTicks = 27'000;
  constexpr std::uint64_t kWrap = (std::uint64_t{1} << 33) * 300;
  // PCR values (27 MHz) in order, and whether the output must flag each.
  const std::vector<std::pair<std::uint64_t, bool>> pcrs = {
      {1'000 * kMsTicks, false},
      {1'040 * kMsTicks, false},
      {1'120 * kMsTicks, false},    // 80 ms: irregular, not a jump
      {0, true},                    // the encoder restarted: back to 0
      {40 * kMsTicks, false},
      {5'040 * kMsTicks, true},     // 5 s forward
      {kWrap - 20 * kMsTicks, true},  // back by more than half the range: a jump
      {20 * kMsTicks, false},       // 40 ms on through the wrap
  };
  std::size_t first_out = h.out.size();
  for (const auto& [pcr, _] : pcrs) h.push(0, src.es(0x100, true, true, pcr));
  std::vector<bool> flagged;
  for (std::size_t i = first_out; i < h.out.size(); ++i)
    if (h.out[i].has_pcr()) flagged.push_back(h.out[i].discontinuity());
  ASSERT_EQ(flagged.size(), pcrs.size());
  for (std::size_t i = 0; i < pcrs.size(); ++i) EXPECT_EQ(flagged[i], pcrs[i].second) << "PCR #" << i;
  EXPECT_EQ(h.r.stats().discontinuities_marked, 3u);

  // A jump the source flagged itself stays flagged once, not counted as ours.
  TsPacket flagged_jump = src.es(0x100, true, true, 900 * kMsTicks);
  ASSERT_TRUE(flagged_jump.set_discontinuity(true));
  first_out = h.out.size();
  h.push(0, flagged_jump);
  ASSERT_EQ(h.out.size(), first_out + 1);
  EXPECT_TRUE(h.out.back().discontinuity());
  EXPECT_EQ(h.r.stats().discontinuities_marked, 3u);
}

// ISO 13818-1 2.4.3.3: a duplicate repeats every byte of the packet (a PCR may be
// re-stamped) with the same continuity_counter, and keeps that counter at the output. A
// packet that only shares the counter (the source restarted behind the same input, its
// counters starting again) is new: it must get the next counter, or a receiver drops it as
// a duplicate, often the first packet of a key frame's PES.
TEST(RemuxSynthetic, ARepeatedCounterIsADuplicateOnlyWhenThePacketRepeats) {
  OneService one({{0x100, 0x1B}});
  Source& src = one.src;
  Harness& h = one.h;
  const auto with_data = [](TsPacket p, std::uint8_t v) {
    for (std::size_t k = 20; k < kPacketSize; ++k) p.bytes[k] = static_cast<std::uint8_t>(v + k);
    return p;
  };
  const TsPacket a = with_data(src.es(0x100, true, true, 27'000'000), 1);
  TsPacket a_again = a;  // a duplicate with its PCR re-stamped
  a_again.set_pcr(27'000'100);
  TsPacket restarted = with_data(src.es(0x100, true, true, 900), 2);  // same counter, another packet
  restarted.set_cc(a.cc());
  const TsPacket next = with_data(src.es(0x100, true, true, 1'000), 3);
  const std::size_t first = h.out.size();
  for (const TsPacket& p : {a, a_again, restarted, next}) h.push(0, p);
  std::vector<std::uint8_t> ccs;
  for (std::size_t i = first; i < h.out.size(); ++i)
    if (origin(h.out[i]).first == 0) ccs.push_back(h.out[i].cc());
  ASSERT_EQ(ccs.size(), 4u);
  EXPECT_EQ(ccs[1], ccs[0]) << "a duplicate keeps its counter";
  EXPECT_EQ(ccs[2], (ccs[1] + 1) & 0x0F) << "a new packet with a repeated source counter is not a duplicate";
  EXPECT_EQ(ccs[3], (ccs[2] + 1) & 0x0F);
}

// A full round of tables must fit what a push may write (max_output_per_push()): with 40
// services of ~1 KB PMTs and 250-character names the SDT needs ~11 sections, more than a
// fixed 4, and a table that does not fit is not sent at all. Both push() overloads.
TEST(RemuxSynthetic, AFullRoundOfTablesOfManyServicesGoesOut) {
  constexpr int kServices = 40;
  RemuxConfig cfg;
  cfg.sdt = true;
  cfg.psi_interval_ns = 100'000'000;
  cfg.si_interval_ns = 1'000'000'000;
  Source src{.tag = 0};
  for (int k = 0; k < kServices; ++k) {
    const auto pid = static_cast<std::uint16_t>(0x100 + k);
    Service s = spts_service(static_cast<std::uint16_t>(k + 1), static_cast<std::uint16_t>(0x1000 + k), {{pid, 0x1B}}, pid);
    for (int d = 0; d < 4; ++d)  // ~970 bytes of ES descriptors: a PMT of 6 packets
      s.streams[0].descriptors.push_back(Descriptor{0xF0, std::vector<std::uint8_t>(240, static_cast<std::uint8_t>(d))});
    src.services.push_back(s);
    RemuxServiceConfig sc;
    sc.source_service_id = static_cast<std::uint16_t>(k + 1);
    sc.name = std::string(250, static_cast<char>('A' + k % 26));
    cfg.services.push_back(sc);
  }
  for (const bool batch : {false, true}) {
    Remuxer r(cfg);
    std::vector<TsPacket> out(3 * r.max_output_per_push());
    std::uint64_t t = 1'000'000'000;
    for (const TsPacket& p : src.tables()) r.push(0, p, t, out);  // learn the tables
    ASSERT_EQ(r.output_model().services.size(), static_cast<std::size_t>(kServices));
    t += 2'000'000'000;  // everything due
    const std::vector<TsPacket> media{src.es(0x100), src.es(0x101), src.es(0x102)};
    const std::size_t n = batch ? r.push(0, media, t, out)
                                : r.push(0, media[0], t, std::span<TsPacket>(out).first(r.max_output_per_push()));
    std::size_t sdt = 0, pmt = 0;
    for (std::size_t i = 0; i < n; ++i) {
      sdt += out[i].pid() == kSdtPid;
      pmt += out[i].pid() >= 0x1000 && out[i].pid() < 0x1000 + kServices;
    }
    EXPECT_GT(sdt, 0u) << (batch ? "batch" : "single") << ": the SDT was due but not sent";
    EXPECT_EQ(pmt, 6u * kServices) << (batch ? "batch" : "single");
    std::vector<TsPacket> sent(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
    const ProgramModel m = decode(sent);
    EXPECT_EQ(m.services.size(), static_cast<std::size_t>(kServices)) << (batch ? "batch" : "single");
  }
}

// A PCR PID that moves to another stream of the service and back, on one clock: when the
// video is the PCR PID again its first PCR is compared with the one it had a second ago
// as PCR PID, a "jump" of the time it spent as a plain stream. The timeline never broke,
// so nothing is flagged (a flag makes receivers re-lock and the pacer re-anchor).
TEST(RemuxSynthetic, APidThatIsThePcrPidAgainIsNotFlaggedOnAContinuousTimeline) {
  OneService one({{0x100, 0x1B}, {0x101, 0x0F}});
  Source& src = one.src;
  Harness& h = one.h;
  constexpr std::uint64_t kMsTicks = 27'000;
  std::uint64_t pcr = 1'000 * kMsTicks;
  const auto run = [&](int n) {
    for (int i = 0; i < n; ++i, pcr += 40 * kMsTicks) {
      h.push(0, src.es(0x100, true, true, pcr));
      h.push(0, src.es(0x101, true, true, pcr + 1 * kMsTicks));
    }
  };
  run(10);
  src.services[0].pcr_pid = 0x101;  // the PMT names the audio as PCR PID...
  h.push(0, src.tables());
  ASSERT_EQ(h.r.output_model().services.at(0).pcr_pid, 0x101);
  run(25);                          // ...for a second
  src.services[0].pcr_pid = 0x100;  // and the video again
  h.push(0, src.tables());
  ASSERT_EQ(h.r.output_model().services.at(0).pcr_pid, 0x100);
  run(10);
  for (const TsPacket& p : h.out)
    EXPECT_FALSE(p.has_pcr() && p.discontinuity())
        << "PID " << p.pid() << ": PCR at " << p.pcr() / kMsTicks << " ms flagged on a continuous timeline";
  EXPECT_EQ(h.r.stats().discontinuities_marked, 0u);
}

// A packet with transport_error_indicator (an uncorrectable one a demodulator passes on)
// may carry a corrupt PCR: the next good PCR, 40 ms after the last good one, is not a jump.
TEST(RemuxSynthetic, ACorruptedPcrDoesNotGetTheNextGoodPcrFlagged) {
  OneService one({{0x100, 0x1B}});
  Source& src = one.src;
  Harness& h = one.h;
  constexpr std::uint64_t kMsTicks = 27'000;
  h.push(0, src.es(0x100, true, true, 1'000 * kMsTicks));
  h.push(0, src.es(0x100, true, true, 1'040 * kMsTicks));
  TsPacket corrupt = src.es(0x100, false, false, 1'080 * kMsTicks);
  corrupt.bytes[1] |= 0x80;  // transport_error_indicator
  corrupt.bytes[6] ^= 0x5A;  // and its PCR hit
  h.push(0, corrupt);
  const std::size_t first_good = h.out.size();
  h.push(0, src.es(0x100, true, true, 1'120 * kMsTicks));
  h.push(0, src.es(0x100, true, true, 1'160 * kMsTicks));
  for (std::size_t i = first_good; i < h.out.size(); ++i) {
    if (h.out[i].has_pcr()) {
      EXPECT_FALSE(h.out[i].discontinuity()) << "good PCR at " << h.out[i].pcr() / kMsTicks << " ms flagged";
    }
  }
  EXPECT_EQ(h.r.stats().discontinuities_marked, 0u);
}

// Two audio PES starts that differ only in their PTS (digital silence after an encoder
// restart, the same counter by chance) are two packets: the second gets the next counter.
TEST(RemuxSynthetic, PesStartsThatDifferOnlyInTheirPtsAreNotDuplicates) {
  OneService one({{0x100, 0x1B}, {0x101, 0x04}});
  Harness& h = one.h;
  const auto audio_pes_start = [](std::uint64_t pts, std::uint8_t cc, bool adaptation) {
    TsPacket p{};
    p.bytes.fill(0x00);  // a silent MPEG audio frame: all-zero allocation and samples
    p.bytes[0] = kSyncByte;
    p.set_pid(0x101);
    p.set_payload_unit_start(true);
    std::size_t at = 4;
    if (adaptation) {  // a one-byte adaptation field: the PES header two bytes later
      p.bytes[3] = static_cast<std::uint8_t>(0x30 | cc);
      p.bytes[4] = 1;
      p.bytes[5] = 0;
      at = 6;
    } else {
      p.bytes[3] = static_cast<std::uint8_t>(0x10 | cc);
    }
    const std::uint8_t pes[] = {0x00, 0x00, 0x01, 0xC0, 0x02, 0x48, 0x80, 0x80, 0x05};
    std::copy(std::begin(pes), std::end(pes), p.bytes.begin() + static_cast<std::ptrdiff_t>(at));
    at += sizeof pes;
    p.bytes[at] = static_cast<std::uint8_t>(0x21 | ((pts >> 29) & 0x0E));
    p.bytes[at + 1] = static_cast<std::uint8_t>(pts >> 22);
    p.bytes[at + 2] = static_cast<std::uint8_t>(0x01 | ((pts >> 14) & 0xFE));
    p.bytes[at + 3] = static_cast<std::uint8_t>(pts >> 7);
    p.bytes[at + 4] = static_cast<std::uint8_t>(0x01 | ((pts << 1) & 0xFE));
    const std::uint8_t header[] = {0xFF, 0xFD, 0x94, 0x04};  // MPEG-1 layer II, 192 kbit/s, 48 kHz
    std::copy(std::begin(header), std::end(header), p.bytes.begin() + static_cast<std::ptrdiff_t>(at + 5));
    return p;
  };
  for (const bool adaptation : {false, true}) {
    const std::uint8_t cc = adaptation ? 9 : 7;
    const TsPacket before = audio_pes_start(900'000, cc, adaptation);        // the old source's last
    const TsPacket after = audio_pes_start(90'000 + 2'160, cc, adaptation);  // the restarted source's, same counter
    ASSERT_NE(std::memcmp(before.bytes.data(), after.bytes.data(), kPacketSize), 0);
    const std::size_t first = h.out.size();
    h.push(0, before);
    h.push(0, after);
    h.push(0, after);  // and a true duplicate of it
    std::vector<std::uint8_t> ccs;
    const std::uint16_t audio = h.r.output_pid(0, 0x101);
    for (std::size_t i = first; i < h.out.size(); ++i)
      if (h.out[i].pid() == audio) ccs.push_back(h.out[i].cc());
    ASSERT_EQ(ccs.size(), 3u);
    EXPECT_EQ(ccs[1], (ccs[0] + 1) & 0x0F) << "adaptation " << adaptation << ": a new packet sent as a duplicate";
    EXPECT_EQ(ccs[2], ccs[1]) << "adaptation " << adaptation << ": the duplicate keeps its counter";
  }
}

namespace {

// A CA_descriptor body: CA_system_id, CA_PID, private bytes.
std::vector<std::uint8_t> ca_body(std::uint16_t system, std::uint16_t pid, std::vector<std::uint8_t> priv = {}) {
  priv.insert(priv.begin(), {static_cast<std::uint8_t>(system >> 8), static_cast<std::uint8_t>(system),
                             static_cast<std::uint8_t>(0xE0 | (pid >> 8)), static_cast<std::uint8_t>(pid)});
  return priv;
}

std::uint16_t ca_pid(const Descriptor& d) { return static_cast<std::uint16_t>(((d.data[2] & 0x1F) << 8) | d.data[3]); }

// A scrambled (transport_scrambling_control 10) media packet.
TsPacket scrambled(Source& src, std::uint16_t pid) {
  TsPacket p = src.es(pid, false, false);
  p.bytes[3] = static_cast<std::uint8_t>(p.bytes[3] | 0x80);
  return p;
}

// Packets of `pid` in `out`, and whether their counters ran on without a gap.
std::pair<std::size_t, bool> count_continuous(const std::vector<TsPacket>& out, std::uint16_t pid) {
  std::size_t n = 0;
  bool continuous = true;
  int last = -1;
  for (const auto& p : out) {
    if (p.pid() != pid) continue;
    ++n;
    if (last >= 0 && p.cc() != ((last + 1) & 0x0F)) continuous = false;
    last = p.cc();
  }
  return {n, continuous};
}

}  // namespace

// A scrambled service needs the CAT of its transport stream: its CA_descriptors name the
// EMM PIDs through which receivers get their entitlements (ISO 13818-1 2.4.4.6), and
// TR 101 290 counts a CAT_error for scrambled packets without one (1.6 of priority 2).
// The output carries the input's CAT (every descriptor, the private bytes too) and its
// EMM PIDs, besides the ECM PID the PMT names.
TEST(RemuxSynthetic, TheInputsCatAndItsEmmPidsAreCarried) {
  Source src{.tag = 0};
  Service s = spts_service(5, 0x1000, {{0x100, 0x1B}, {0x101, 0x0F}}, 0x100);
  s.program_descriptors.push_back(Descriptor{0x09, ca_body(0x0B00, 0x1F0)});  // ECM
  src.services.push_back(s);
  const std::vector<Descriptor> cat{Descriptor{0x09, ca_body(0x0B00, 0x1F8, {0x11, 0x22, 0x33})},
                                    Descriptor{0x09, ca_body(0x0500, 0x1F9)}, Descriptor{0x5F, {0, 0, 0, 2}}};
  src.cat = cat;
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .source_service_id = 5});
  Harness h(cfg);
  for (int round = 0; round < 20; ++round) {
    h.push(0, src.tables());
    for (int i = 0; i < 50; ++i) h.push(0, scrambled(src, 0x100));
    h.push(0, src.es(0x1F0));  // ECM
    h.push(0, src.es(0x1F8));  // EMM of the first CA system
    h.push(0, src.es(0x1F9));  // and of the second
  }
  const ProgramModel m = decode(h.out);
  ASSERT_TRUE(m.has_cat) << "no CAT at the output";
  EXPECT_EQ(m.cat_descriptors, cat) << "no PID collided, so the CAT is the input's";
  EXPECT_EQ(m.ca_pids, (std::vector<std::uint16_t>{0x1F8, 0x1F9}));
  EXPECT_EQ(h.r.output_model().cat_descriptors, cat) << "the output model says what the output CAT says";
  EXPECT_EQ(h.r.output_model().ca_pids, m.ca_pids);
  for (const std::uint16_t emm : {std::uint16_t{0x1F8}, std::uint16_t{0x1F9}}) {
    const auto [n, continuous] = count_continuous(h.out, emm);
    EXPECT_EQ(n, 20u) << "EMM PID " << emm;
    EXPECT_TRUE(continuous) << "EMM PID " << emm;
  }
  const auto [cats, continuous] = count_continuous(h.out, kCatPid);
  EXPECT_GE(cats, 10u) << "the CAT goes out with the PAT";
  EXPECT_TRUE(continuous);
  Analyzer a;
  std::uint64_t t = 0;
  for (const auto& p : h.out) a.push(p, t += 1'000'000);
  EXPECT_EQ(a.count(Check::kCatError), 0u);
  EXPECT_EQ(a.count(Check::kContinuityCountError), 0u);
}

// Two scrambled SPTS whose EMM PIDs collide, merged into an MPTS: each input's EMM PID gets
// its own output PID and the CAT names both; a PID rule that drops one drops its
// descriptor too; and a source switch to an input with no CAT (yet) keeps the CAT as it was.
TEST(RemuxSynthetic, EmmPidsOfSeveralInputsAreRemappedAndFollowTheRules) {
  Source a{.tag = 1};
  Source b{.tag = 2};
  Source c{.tag = 3};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  b.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  c.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  a.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8, {0xAA})}};
  b.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8, {0xBB})}};
  c.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0500, 0x1F7)}};
  RemuxConfig cfg;
  cfg.n_inputs = 3;
  cfg.services.push_back({.input = 0, .source_service_id = 1});
  cfg.services.push_back({.input = 1, .source_service_id = 1});
  cfg.services.push_back({.input = 2, .source_service_id = 1, .rules = {PidRule{.from = 0x1F7, .drop = true}}});
  Harness h(cfg);
  for (int round = 0; round < 5; ++round) {
    h.push(0, a.tables());
    h.push(1, b.tables());
    h.push(2, c.tables());
    h.push(0, a.es(0x1F8));
    h.push(1, b.es(0x1F8));
    h.push(2, c.es(0x1F7));
  }
  ProgramModel m = decode(h.out);
  ASSERT_TRUE(m.has_cat);
  ASSERT_EQ(m.cat_descriptors.size(), 2u) << "the dropped EMM PID's descriptor is gone";
  const std::uint16_t emm_a = ca_pid(m.cat_descriptors[0]);
  const std::uint16_t emm_b = ca_pid(m.cat_descriptors[1]);
  EXPECT_NE(emm_a, emm_b);
  EXPECT_EQ(m.cat_descriptors[0].data.back(), 0xAA);
  EXPECT_EQ(m.cat_descriptors[1].data.back(), 0xBB);
  for (const auto& p : h.out) {
    if (origin(p).second != 0x1F8 && origin(p).second != 0x1F7) continue;
    EXPECT_NE(origin(p).first, 3) << "the dropped EMM PID was carried";
    EXPECT_EQ(p.pid(), origin(p).first == 1 ? emm_a : emm_b);
  }
  EXPECT_EQ(count_continuous(h.out, emm_a).first, 5u);
  EXPECT_EQ(count_continuous(h.out, emm_b).first, 5u);

  // Input 0 switches to a source without a CAT: the output CAT does not change.
  const std::size_t before = h.out.size();
  h.r.switch_source(0);
  Source d{.tag = 4};
  d.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  for (int round = 0; round < 5; ++round) {
    h.push(0, d.tables());
    for (int i = 0; i < 50; ++i) h.push(0, d.es(0x100));
  }
  const std::vector<TsPacket> after(h.out.begin() + static_cast<std::ptrdiff_t>(before), h.out.end());
  m = decode(after);
  ASSERT_TRUE(m.has_cat);
  EXPECT_EQ(m.cat_descriptors.size(), 2u);
  EXPECT_TRUE(count_continuous(h.out, kCatPid).second);
}

// A channel rebuilt by a reload goes on with the CAT's counter and the next version.
TEST(RemuxSynthetic, AReloadContinuesTheCat) {
  Source src{.tag = 0};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  src.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8)}};
  Harness first(OneService::config());
  for (int i = 0; i < 3; ++i) first.push(0, src.tables());
  Harness second(OneService::config());
  second.r.continue_from(first.r);
  second.t = first.t;
  for (int i = 0; i < 3; ++i) second.push(0, src.tables());
  std::vector<TsPacket> all = first.out;
  all.insert(all.end(), second.out.begin(), second.out.end());
  EXPECT_TRUE(count_continuous(all, kCatPid).second) << "the CAT's counter goes on";
  int first_version = -1, second_version = -1;
  for (const auto& p : first.out)
    if (p.pid() == kCatPid && p.payload_unit_start()) first_version = (p.payload()[1 + 5] >> 1) & 0x1F;
  for (const auto& p : second.out)
    if (p.pid() == kCatPid && p.payload_unit_start()) second_version = (p.payload()[1 + 5] >> 1) & 0x1F;
  ASSERT_GE(first_version, 0);
  EXPECT_EQ(second_version, (first_version + 1) & 0x1F) << "receivers read the CAT again";
}

// ---- review of d2b9d2a ----

namespace {
std::vector<TsPacket> only_pid(const std::vector<TsPacket>& ps, std::uint16_t pid, bool keep) {
  std::vector<TsPacket> out;
  for (const auto& p : ps)
    if ((p.pid() == pid) == keep) out.push_back(p);
  return out;
}
}  // namespace

// README: "A CAT once sent goes on, empty if no input has one any more" and the CAT
// "continues across a reload". A reload to a channel whose source has no CAT (the
// scrambled service is gone, or now in the clear) must send the CAT on, empty, so
// receivers drop the EMM PIDs the old one named.
TEST(RemuxSynthetic, ACatOnAirGoesOnEmptyAfterAReloadToASourceWithoutOne) {
  Source src{.tag = 0};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  src.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8)}};
  Harness first(OneService::config());
  for (int i = 0; i < 3; ++i) first.push(0, src.tables());
  ASSERT_TRUE(decode(first.out).has_cat);

  Source clear{.tag = 0};
  clear.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  Harness second(OneService::config());
  second.r.continue_from(first.r);
  second.t = first.t;
  for (int i = 0; i < 3; ++i) {
    second.push(0, clear.tables());
    for (int k = 0; k < 150; ++k) second.push(0, clear.es(0x100));
  }
  const ProgramModel m = decode(second.out);
  ASSERT_TRUE(m.has_cat) << "the CAT stopped at the reload: receivers keep naming 0x1F8 an EMM PID";
  EXPECT_TRUE(m.cat_descriptors.empty());
  std::vector<TsPacket> all = first.out;
  all.insert(all.end(), second.out.begin(), second.out.end());
  EXPECT_TRUE(count_continuous(all, kCatPid).second);
}

// README: "The output CAT has every descriptor of the CAT of each input that feeds an output
// service, in input order".
// The CAT lists each input's descriptors in the order of the output services.
TEST(RemuxSynthetic, TheCatListsTheInputsInTheOrderOfTheirServices) {
  Source a{.tag = 1};
  Source b{.tag = 2};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  b.services.push_back(spts_service(1, 0x1000, {{0x200, 0x1B}}, 0x200));
  a.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8, {0xAA})}};
  b.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0500, 0x1F9, {0xBB})}};
  RemuxConfig cfg;
  cfg.n_inputs = 2;
  cfg.services.push_back({.input = 1, .source_service_id = 1, .service_id = 20});  // listed first
  cfg.services.push_back({.input = 0, .source_service_id = 1, .service_id = 10});
  Harness h(cfg);
  for (int round = 0; round < 3; ++round) {
    h.push(0, a.tables());
    h.push(1, b.tables());
  }
  const ProgramModel m = decode(h.out);
  ASSERT_EQ(m.cat_descriptors.size(), 2u);
  EXPECT_EQ(m.cat_descriptors[0].data.back(), 0xBB) << "input 1's service is listed first";
  EXPECT_EQ(m.cat_descriptors[1].data.back(), 0xAA);
}

// README: "The PID rules of the input's first output service apply to its EMM PIDs". An MPTS
// input feeds two services; the first one's rule drops the EMM PID. While the first service's
// PMT is missing (the service is off air), the second one's rules are used instead and the
// EMM PID is carried and named in the CAT.
TEST(RemuxSynthetic, TheFirstServicesRulesApplyToTheEmmPidsEvenBeforeItIsLearnt) {
  Source src{.tag = 0};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  src.services.push_back(spts_service(2, 0x1100, {{0x200, 0x1B}}, 0x200));
  src.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8)}};
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .source_service_id = 1, .rules = {PidRule{.from = 0x1F8, .drop = true}}});
  cfg.services.push_back({.input = 0, .source_service_id = 2});
  Harness h(cfg);
  for (int round = 0; round < 5; ++round) {
    h.push(0, only_pid(src.tables(), 0x1000, false));  // service 1's PMT does not come (yet)
    h.push(0, src.es(0x200));
    h.push(0, src.es(0x1F8));
  }
  const ProgramModel m = decode(h.out);
  ASSERT_TRUE(m.has_cat);
  EXPECT_TRUE(m.cat_descriptors.empty()) << "the EMM PID dropped by service 1's rule is named";
  EXPECT_EQ(count_continuous(h.out, 0x1F8).first, 0u) << "the EMM PID dropped by service 1's rule is carried";
}

namespace {

// An SPTS tagged `tag`: service 1, PMT 0x1000, video and PCR on 0x100.
Source spts_source(std::uint8_t tag) {
  Source src{.tag = tag};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  return src;
}
// Two such SPTS (inputs 0 and 1) as services 10 and 20 of an MPTS.
RemuxConfig two_spts_mpts() {
  RemuxConfig c;
  c.n_inputs = 2;
  c.services.push_back({.input = 0, .source_service_id = 1, .service_id = 10});
  c.services.push_back({.input = 1, .source_service_id = 1, .service_id = 20});
  return c;
}

// Two scrambled SPTS with the same EMM PID (0x1F8; CA private byte 0xAA and 0xBB) as
// services 10 and 20 of an MPTS, learnt by `old`: B's EMM PID is remapped to `b_emm`.
struct CollidingEmms {
  Source a = spts_source(1);
  Source b = spts_source(2);
  RemuxConfig cfg = two_spts_mpts();
  Harness old{cfg};
  std::uint16_t b_emm = 0;
  CollidingEmms() {
    a.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8, {0xAA})}};
    b.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8, {0xBB})}};
    for (int round = 0; round < 3; ++round) {
      old.push(0, a.tables());
      old.push(1, b.tables());
    }
    b_emm = old.r.output_pid(1, 0x1F8);
  }
  // A reload after `from` that adds a channel C whose video sits on b_emm at its source. B's
  // PAT and PMT arrive before its CAT, C's tables in between: B's EMM PID must keep b_emm,
  // which the receivers' CAT names, and C's video must not take it.
  void reload_adding_c(const Harness& from) {
    Source c{.tag = 3};
    c.services.push_back(spts_service(1, 0x1000, {{b_emm, 0x1B}}, b_emm));
    RemuxConfig cfg2 = cfg;
    cfg2.n_inputs = 3;
    cfg2.services.push_back({.input = 2, .source_service_id = 1, .service_id = 30});
    Harness now(cfg2);
    now.r.continue_from(from.r);
    now.t = from.t;
    const auto b_tables = b.tables();
    now.push(1, only_pid(b_tables, kCatPid, false));
    now.push(2, c.tables());
    now.push(1, only_pid(b_tables, kCatPid, true));
    EXPECT_EQ(now.r.output_pid(1, 0x1F8), b_emm) << "B's EMM PID moved";
    EXPECT_NE(now.r.output_pid(2, b_emm), b_emm) << "C's video took the PID the receivers know as B's EMM PID";
  }
};

}  // namespace

// A reload keeps what the previous engine had on air (remux.hpp, continue_from: "The services
// here that previous had on air keep their output PIDs ... as they are learnt (whatever
// order the inputs arrive in)"). A remapped EMM PID whose CAT arrives after the PMT is not
// kept: a channel added by the reload takes its output PID, which the receivers' CAT (the
// previous engine's) still names as B's EMM PID.
TEST(RemuxSynthetic, AReloadKeepsARemappedEmmPidWhenTheCatComesAfterThePmt) {
  CollidingEmms e;
  ASSERT_NE(e.b_emm, Remuxer::kUnmapped);
  ASSERT_NE(e.b_emm, 0x1F8);
  e.reload_adding_c(e.old);
}

// README: "Descriptors beyond one section (1000 bytes) are not carried", and the code's own
// comment: "what does not fit is not carried". When input 0's CAT grows so that input 1's
// descriptor no longer fits, the descriptor leaves the CAT but its EMM PID, kept from the
// previous rebuild, is still carried: an EMM PID that no table names.
TEST(RemuxSynthetic, AnEmmPidWhoseDescriptorNoLongerFitsIsNotCarried) {
  Source a{.tag = 1};
  Source b{.tag = 2};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  b.services.push_back(spts_service(1, 0x1000, {{0x200, 0x1B}}, 0x200));
  a.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8)}};
  b.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0500, 0x1F9)}};
  RemuxConfig cfg;
  cfg.n_inputs = 2;
  cfg.services.push_back({.input = 0, .source_service_id = 1, .service_id = 10});
  cfg.services.push_back({.input = 1, .source_service_id = 1, .service_id = 20});
  Harness h(cfg);
  h.push(0, a.tables());
  h.push(1, b.tables());
  ASSERT_EQ(decode(h.out).cat_descriptors.size(), 2u);
  ASSERT_NE(h.r.output_pid(1, 0x1F9), Remuxer::kUnmapped);
  // Input 0's CAT grows to 4 descriptors of 248 bytes: 1000 bytes, nothing else fits.
  a.cat->clear();
  for (std::uint16_t i = 0; i < 4; ++i) a.cat->push_back(Descriptor{0x09, ca_body(0x0B00, static_cast<std::uint16_t>(0x1F8 + 16 * i), std::vector<std::uint8_t>(244, 0x55))});
  const std::size_t before = h.out.size();
  for (int round = 0; round < 3; ++round) {
    h.push(0, a.tables());
    h.push(1, b.tables());
    h.push(1, b.es(0x1F9));
  }
  const std::vector<TsPacket> after(h.out.begin() + static_cast<std::ptrdiff_t>(before), h.out.end());
  const ProgramModel m = decode(after);
  ASSERT_EQ(m.cat_descriptors.size(), 4u) << "input 1's descriptor does not fit";
  EXPECT_EQ(h.r.output_pid(1, 0x1F9), Remuxer::kUnmapped) << "input 1's EMM PID is carried, named by no CAT";
  std::size_t unnamed = 0;
  for (const auto& p : after)
    if (origin(p) == std::pair<int, int>{2, 0x1F9}) ++unnamed;
  EXPECT_EQ(unnamed, 0u);
}

namespace {

// A TDT (table 0x70, section_syntax_indicator 0): UTC_time as MJD + BCD time, `seconds`
// telling packets apart.
TsPacket tdt_packet(std::uint8_t seconds, std::uint8_t cc) {
  TsPacket p{};
  p.bytes.fill(0xFF);
  p.bytes[0] = kSyncByte;
  p.set_pid(kTdtPid);
  p.set_payload_unit_start(true);
  p.bytes[3] = static_cast<std::uint8_t>(0x10 | (cc & 0x0F));
  const std::uint8_t section[] = {0x00, 0x70, 0x70, 0x05, 0xEA, 0x5C, 0x12, 0x30, seconds};
  std::memcpy(p.bytes.data() + 4, section, sizeof section);
  return p;
}

}  // namespace

// Set-top boxes set their clock from the TDT (and time zone from the TOT) on PID 0x14. The
// output carries the time of one input, that of its first configured service, so the clock
// never steps between two sources; a PID rule of that service can drop it.
TEST(RemuxSynthetic, TheTimeOfTheFirstServicesInputIsCarried) {
  Source a = spts_source(1);
  Source b = spts_source(2);
  RemuxConfig cfg = two_spts_mpts();
  Harness h(cfg);
  for (std::uint8_t s = 0; s < 10; ++s) {
    h.push(0, a.tables());
    h.push(1, b.tables());
    h.push(0, tdt_packet(s, s));                                       // input 0's clock
    h.push(1, tdt_packet(static_cast<std::uint8_t>(0x50 + s), s));     // input 1's
  }
  std::vector<std::uint8_t> seconds;
  for (const auto& p : h.out)
    if (p.pid() == kTdtPid) seconds.push_back(p.bytes[4 + 8]);
  EXPECT_EQ(seconds, (std::vector<std::uint8_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})) << "input 0's TDT, and only it";
  EXPECT_TRUE(count_continuous(h.out, kTdtPid).second);

  cfg.services[0].rules.push_back(PidRule{.from = kTdtPid, .drop = true});
  Harness dropped(cfg);
  for (std::uint8_t s = 0; s < 3; ++s) {
    dropped.push(0, a.tables());
    dropped.push(0, tdt_packet(s, s));
  }
  EXPECT_EQ(count_continuous(dropped.out, kTdtPid).first, 0u) << "the rule drops it";
}



// An input whose CA system carries ECMs and EMMs on one PID (the PMT's CA_descriptor and the
// CAT's name the same PID), feeding two services, the scrambled one configured second. After
// a reload whose CAT comes after the PMTs, the ECM PID keeps its output PID like any other
// PID on air.
TEST(RemuxSynthetic, AReloadKeepsAnEcmPidThatIsAlsoTheEmmPidWhenTheCatComesLate) {
  Source src{.tag = 0};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  Service s2 = spts_service(2, 0x1100, {{0x200, 0x1B}}, 0x200);
  s2.program_descriptors.push_back(Descriptor{0x09, ca_body(0x0B00, 0x1F8)});  // ECM on 0x1F8
  src.services.push_back(s2);
  src.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8)}};  // EMM on 0x1F8 too
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .source_service_id = 1});
  cfg.services.push_back({.input = 0, .source_service_id = 2});
  Harness old(cfg);
  for (int round = 0; round < 3; ++round) old.push(0, src.tables());
  const std::uint16_t ca = old.r.output_pid(0, 0x1F8);
  ASSERT_EQ(ca, 0x1F8);

  Harness now(cfg);
  now.r.continue_from(old.r);
  now.t = old.t;
  now.push(0, only_pid(src.tables(), kCatPid, false));  // PAT and PMTs; the CAT comes later
  EXPECT_EQ(now.r.output_pid(0, 0x1F8), ca) << "the ECM PID moved at the reload";
  now.push(0, src.tables());
  EXPECT_EQ(now.r.output_pid(0, 0x1F8), ca) << "the ECM/EMM PID moved at the reload";
}

// Two reloads in a row, the second before the engine of the first learnt the CAT (it learnt
// the PMT): the remapped EMM PID the receivers' CAT names is kept, as after one reload.
TEST(RemuxSynthetic, TwoReloadsKeepARemappedEmmPidWhenTheCatComesAfterThePmt) {
  CollidingEmms e;
  Source& b = e.b;
  const RemuxConfig& cfg = e.cfg;
  Harness& old = e.old;
  ASSERT_NE(e.b_emm, Remuxer::kUnmapped);
  ASSERT_NE(e.b_emm, 0x1F8);

  // First reload: B's PAT and PMT are learnt, its CAT not yet.
  Harness mid(cfg);
  mid.r.continue_from(old.r);
  mid.t = old.t;
  mid.push(1, only_pid(b.tables(), kCatPid, false));
  ASSERT_NE(mid.r.output_model().find_service(20), nullptr);  // B learnt (A, not learnt, may be listed as it was)
  ASSERT_NE(mid.r.output_pid(1, 0x100), Remuxer::kUnmapped);

  e.reload_adding_c(mid);  // the second reload
}

namespace {
// `h` learns a source whose CAT names EMM PID 0x1F8 (and carries it), then its input switches.
void learn_a_cat_then_switch(Harness& h) {
  Source old_src{.tag = 1};
  old_src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  old_src.cat = std::vector<Descriptor>{Descriptor{0x09, ca_body(0x0B00, 0x1F8)}};
  for (int round = 0; round < 3; ++round) {
    h.push(0, old_src.tables());
    h.push(0, old_src.es(0x1F8));
  }
  ASSERT_EQ(h.r.output_model().ca_pids, (std::vector<std::uint16_t>{0x1F8}));
  h.r.switch_source(0);
}
}  // namespace

// A source switch keeps the last CAT until the new source sends one. The new source (in the
// clear, no CAT) has its video on the PID the old one had its EMMs on: the output CAT must not
// name the video's PID as an EMM PID.
TEST(RemuxSynthetic, ACatKeptAcrossASwitchDoesNotNameTheNewSourcesVideoAsEmmPid) {
  Harness h(OneService::config());
  learn_a_cat_then_switch(h);
  Source backup{.tag = 2};
  backup.services.push_back(spts_service(1, 0x1000, {{0x1F8, 0x1B}}, 0x1F8));
  for (int round = 0; round < 3; ++round) {
    h.push(0, backup.tables());
    for (int i = 0; i < 50; ++i) h.push(0, backup.es(0x1F8));
  }
  const ProgramModel& m = h.r.output_model();
  ASSERT_EQ(m.services.size(), 1u);
  ASSERT_EQ(m.services[0].streams.size(), 1u);
  const std::uint16_t video = m.services[0].streams[0].pid;
  EXPECT_EQ(std::count(m.ca_pids.begin(), m.ca_pids.end(), video), 0) << "the CAT names the video PID an EMM PID";
}

namespace {

// An EIT section of `table_id` for `service_id` with one event whose short_event_descriptor
// has a name of `name_len` bytes (so a section may span packets).
Section eit_section(std::uint8_t table_id, std::uint16_t service_id, std::uint8_t section_number, std::uint8_t version,
                    std::size_t name_len, std::uint16_t tsid = 1, std::uint16_t onid = 1) {
  Section s{table_id, 0, 0, static_cast<std::uint8_t>(service_id >> 8), static_cast<std::uint8_t>(service_id),
            static_cast<std::uint8_t>(0xC1 | (version << 1)), section_number, 1,
            static_cast<std::uint8_t>(tsid >> 8), static_cast<std::uint8_t>(tsid),
            static_cast<std::uint8_t>(onid >> 8), static_cast<std::uint8_t>(onid), 1, table_id};
  // event_id, start_time (MJD + BCD), duration (BCD), running_status 4 + descriptors length
  std::vector<std::uint8_t> d{0x4D, static_cast<std::uint8_t>(3 + 1 + name_len + 1), 'e', 'n', 'g',
                              static_cast<std::uint8_t>(name_len)};
  for (std::size_t i = 0; i < name_len; ++i) d.push_back(static_cast<std::uint8_t>('a' + (i + section_number) % 26));
  d.push_back(0);
  const std::uint8_t event[] = {0x00, static_cast<std::uint8_t>(1 + section_number), 0xEA, 0x5C, 0x12, 0x00, 0x00,
                                0x00, 0x30, 0x00, static_cast<std::uint8_t>(0x80 | (d.size() >> 8)),
                                static_cast<std::uint8_t>(d.size())};
  s.insert(s.end(), std::begin(event), std::end(event));
  s.insert(s.end(), d.begin(), d.end());
  const std::size_t len = s.size() - 3 + 4;
  s[1] = static_cast<std::uint8_t>(0xF0 | (len >> 8));
  s[2] = static_cast<std::uint8_t>(len);
  const std::uint32_t crc = crc32_mpeg(s);
  for (int b = 0; b < 4; ++b) s.push_back(static_cast<std::uint8_t>(crc >> (24 - 8 * b)));
  return s;
}
// An EIT present/following actual section (table 0x4E).
Section eit_pf(std::uint16_t service_id, std::uint8_t section_number, std::uint8_t version, std::size_t name_len,
               std::uint16_t tsid = 1, std::uint16_t onid = 1) {
  return eit_section(0x4E, service_id, section_number, version, name_len, tsid, onid);
}

// The sections of `pid` in `out`, and how many of them had a bad CRC.
struct Sections final : SectionHandler {
  std::vector<Section> good;
  std::size_t bad = 0;
  void on_section(std::uint16_t, std::span<const std::uint8_t> s, bool crc_ok) override {
    if (crc_ok) good.emplace_back(s.begin(), s.end());
    else ++bad;
  }
};
Sections sections_of(const std::vector<TsPacket>& out, std::uint16_t pid) {
  Sections h;
  SectionAssembler a;
  for (const auto& p : out)
    if (p.pid() == pid) a.push(p, h);
  return h;
}

// A source without an SDT (many encoders, an SRT contribution feed) gives no service_type.
// The output SDT and NIT service_list_descriptor must not say 0x00 (reserved, EN 300 468
// table 87): receivers skip such a service in a scan. A service with video is a digital
// television service (0x01), one with audio only a digital radio sound service (0x02). An
// HEVC service has its own type, 0x1F (since V1.15.1): under 0x01 a receiver without HEVC
// would list it and show a black screen; under 0x1F it leaves it out.
TEST(RemuxSynthetic, AServiceWithoutSourceSdtGetsATelevisionOrRadioServiceType) {
  struct Case {
    const char* what;
    std::uint8_t video_type;  // 0: none
    std::uint8_t want;
  };
  for (const Case& c : {Case{"H.264 video", 0x1B, 0x01}, Case{"audio only", 0, 0x02}, Case{"HEVC video", 0x24, 0x1F}}) {
    const char* what = c.what;
    Source src{.tag = 0};
    src.services.push_back(c.video_type != 0 ? spts_service(1, 0x1000, {{0x100, c.video_type}, {0x101, 0x0F}}, 0x100)
                                             : spts_service(1, 0x1000, {{0x101, 0x0F}}, 0x101));
    RemuxConfig cfg;
    cfg.nit = true;
    cfg.services.push_back({.input = 0, .source_service_id = 1, .lcn = 5});
    Harness h(cfg);
    h.push(0, src.tables());
    for (int i = 0; i < 200; ++i) h.push(0, src.es(0x101));
    const std::uint8_t want = c.want;
    ASSERT_EQ(h.r.output_model().services.size(), 1u);
    EXPECT_EQ(h.r.output_model().services[0].service_type, want) << what;
    // What a receiver reads: the SDT's service_descriptor and the NIT's service list.
    const Sections sdt = sections_of(h.out, kSdtPid);
    ASSERT_FALSE(sdt.good.empty());
    for (const Section& sec : sdt.good) {
      ASSERT_GE(sec.size(), 11u + 5 + 3 + 4);
      ASSERT_EQ(sec[11 + 5], 0x48);  // service 1's first descriptor: tag, length, service_type
      EXPECT_EQ(sec[11 + 7], want) << "SDT service_type, " << what;
    }
    const Sections nit = sections_of(h.out, kNitPid);
    ASSERT_FALSE(nit.good.empty());
    std::size_t listed = 0;
    for (const Section& sec : nit.good)
      for (const auto& d : twincast::test::nit_ts_descriptors(sec))
        if (d.tag == 0x41) {
          ASSERT_GE(d.data.size(), 3u);  // service_id, service_type
          EXPECT_EQ(d.data[2], want) << "NIT service_list service_type, " << what;
          ++listed;
        }
    EXPECT_GT(listed, 0u);
  }
}

// ISO 13818-1 makes a PMT one section (section_number 0), but libdvbpsi's decoder takes one
// in several sections and hands over all their streams: a source (faulty, or hostile) that
// sends 2 x 150 streams must not take the headend down. The output PMT cannot hold them all
// (1024 bytes: (1024 - 16) / 5 = 201 streams without descriptors); it carries the ones that
// fit, in the source's order, and the PIDs of the rest are not forwarded.
TEST(RemuxSynthetic, ASourcePmtBeyondOneSectionIsCutNotFatal) {
  Service whole = spts_service(1, 0x1000, {}, 0x100);
  for (std::uint16_t i = 0; i < 300; ++i) {
    ElementaryStream e;
    e.pid = static_cast<std::uint16_t>(0x100 + i);
    e.stream_type = 0x06;
    whole.streams.push_back(e);
  }
  // Two sections of 150 streams: numbered 0 and 1 of 1, CRC_32 computed again.
  std::vector<Section> sections;
  for (int half = 0; half < 2; ++half) {
    Service part = whole;
    part.streams.assign(whole.streams.begin() + half * 150, whole.streams.begin() + (half + 1) * 150);
    Section sec = build_pmt(part, 0).at(0);
    sec[6] = static_cast<std::uint8_t>(half);
    sec[7] = 1;
    const std::uint32_t crc = crc32_mpeg(std::span<const std::uint8_t>(sec.data(), sec.size() - 4));
    for (std::size_t k = 0; k < 4; ++k) sec[sec.size() - 4 + k] = static_cast<std::uint8_t>(crc >> (24 - 8 * k));
    sections.push_back(std::move(sec));
  }
  TableCarousel pat(kPatPid), pmt(0x1000);
  pat.update([&](std::uint8_t v) { return build_pat(1, {{1, 0x1000}}, v); });
  pmt.update([&](std::uint8_t) { return sections; });
  std::vector<TsPacket> in(64);
  std::size_t n = pat.packetize(in);
  n += pmt.packetize(std::span<TsPacket>(in).subspan(n));
  in.resize(n);

  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .source_service_id = 1});
  Harness h(cfg);
  Source src{.tag = 0};
  try {
    h.push(0, in);
    for (std::uint16_t pid = 0x100; pid < 0x100 + 300; ++pid) h.push(0, src.es(pid));
    h.push(0, in);
  } catch (const std::exception& e) {
    FAIL() << "push threw: " << e.what();
  }
  const ProgramModel m = decode(h.out);
  ASSERT_EQ(m.services.size(), 1u);
  ASSERT_TRUE(m.services[0].has_pmt);
  EXPECT_EQ(m.services[0].streams.size(), 201u);
  std::set<std::uint16_t> listed;
  for (const auto& e : m.services[0].streams) listed.insert(e.pid);
  for (const auto& p : h.out) {
    const auto o = origin(p);
    if (o.first < 0) continue;
    EXPECT_TRUE(listed.count(p.pid())) << "PID " << p.pid() << " forwarded but not in the PMT";
  }
}

// The EIT_present_following_flag (or with `bit` 1, the EIT_schedule_flag) of `service_id` in
// every SDT section of `out`, in order.
std::vector<int> sdt_eit_pf_flags(const std::vector<TsPacket>& out, std::uint16_t service_id, int bit = 0) {
  std::vector<int> flags;
  for (const Section& s : sections_of(out, kSdtPid).good)
    for (std::size_t at = 11; at + 5 <= s.size() - 4;) {
      if (((s[at] << 8) | s[at + 1]) == service_id) flags.push_back((s[at + 2] >> bit) & 0x01);
      at += 5 + ((std::size_t{s[at + 3]} & 0x0F) << 8 | s[at + 4]);
    }
  return flags;
}
// Runs `h` for `rounds` rounds of `src`'s tables, `eit`'s sections and `media` packets of
// `es_pid`.
void run_eit_rounds(Harness& h, Source& src, TableCarousel& eit, int rounds = 3, std::uint16_t es_pid = 0x100,
                    int media = 10) {
  std::vector<TsPacket> pkts(eit.packet_count());
  for (int round = 0; round < rounds; ++round) {
    h.push(0, src.tables());
    eit.packetize(pkts);
    h.push(0, pkts);
    for (int i = 0; i < media; ++i) h.push(0, src.es(es_pid));
  }
}
// The flag the output's last SDT gives `service_id` (-1: not listed).
int sdt_eit_pf(const std::vector<TsPacket>& out, std::uint16_t service_id) {
  const std::vector<int> flags = sdt_eit_pf_flags(out, service_id);
  return flags.empty() ? -1 : flags.back();
}

}  // namespace

// Set-top boxes show now/next from the EIT present/following of their service. The output
// carries that of its services, with the output's service id, transport_stream_id and
// original_network_id (their CRC recomputed), says so in its SDT, and leaves out the EIT of
// the input's other services. Sections longer than a packet arrive whole.
TEST(RemuxSynthetic, TheEitPresentFollowingOfTheOutputServicesIsCarried) {
  Source src{.tag = 0};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  src.services.push_back(spts_service(2, 0x1100, {{0x200, 0x1B}}, 0x200));
  RemuxConfig cfg;
  cfg.transport_stream_id = 7;
  cfg.original_network_id = 9;
  cfg.services.push_back({.input = 0, .source_service_id = 2, .service_id = 20});
  Harness h(cfg);
  TableCarousel eit(kEitPid);
  eit.update([](std::uint8_t v) {
    return std::vector<Section>{eit_pf(1, 0, v, 40), eit_pf(1, 1, v, 40), eit_pf(2, 0, v, 600), eit_pf(2, 1, v, 30)};
  });
  run_eit_rounds(h, src, eit, 5, 0x200, 20);
  const Sections got = sections_of(h.out, kEitPid);
  EXPECT_EQ(got.bad, 0u);
  ASSERT_EQ(got.good.size(), 10u) << "service 2's two sections, five times; none of service 1";
  for (std::size_t i = 0; i < got.good.size(); ++i) {
    const Section& s = got.good[i];
    const Section want = eit_pf(20, static_cast<std::uint8_t>(i % 2), 0, i % 2 == 0 ? 600 : 30, 7, 9);
    ASSERT_EQ(s.size(), want.size());
    EXPECT_EQ(((s[3] << 8) | s[4]), 20) << "the output service id";
    EXPECT_TRUE(std::equal(s.begin(), s.end() - 4, want.begin())) << "section " << i;
  }
  EXPECT_TRUE(count_continuous(h.out, kEitPid).second);
  EXPECT_EQ(sdt_eit_pf(h.out, 20), 1) << "the SDT says the service has EIT p/f";
  EXPECT_EQ(h.r.stats().eit_sections_out, 10u);
  EXPECT_EQ(h.r.stats().eit_dropped, 0u);

  // A drop rule on PID 0x12 keeps it out.
  cfg.services[0].rules.push_back(PidRule{.from = kEitPid, .drop = true});
  Harness dropped(cfg);
  run_eit_rounds(dropped, src, eit, 3, 0x200, 20);
  EXPECT_EQ(count_continuous(dropped.out, kEitPid).first, 0u);
  EXPECT_EQ(sdt_eit_pf(dropped.out, 20), 0);
}

// Set-top boxes build their programme guide from the EIT schedule (tables 0x50..0x5F). The
// output carries its services' schedule like their p/f: the output's ids, CRC recomputed,
// the SDT's EIT_schedule_flag set; other services' schedule and EIT of other transport
// streams (0x4F, 0x60..0x6F) stay out. Each sub_table keeps its own version: a new version
// of 0x50 at the source moves 0x50's at the output, not 0x51's.
TEST(RemuxSynthetic, TheEitScheduleOfTheOutputServicesIsCarried) {
  Source src{.tag = 0};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  src.services.push_back(spts_service(2, 0x1100, {{0x200, 0x1B}}, 0x200));
  RemuxConfig cfg;
  cfg.transport_stream_id = 7;
  cfg.original_network_id = 9;
  cfg.services.push_back({.input = 0, .source_service_id = 2, .service_id = 20});
  Harness h(cfg);
  std::uint8_t v50 = 3;
  std::size_t name50 = 300;
  TableCarousel eit(kEitPid);
  const auto update = [&] {
    eit.update([&](std::uint8_t) {
      return std::vector<Section>{eit_section(0x50, 2, 0, v50, name50), eit_section(0x50, 2, 8, v50, 20),
                                  eit_section(0x51, 2, 0, 6, 40),    eit_section(0x50, 1, 0, 1, 40),
                                  eit_section(0x4F, 2, 0, 1, 20),    eit_section(0x60, 2, 0, 1, 20)};
    });
  };
  update();
  run_eit_rounds(h, src, eit, 3, 0x200, 20);
  v50 = 4;  // the source's 0x50 sub_table changes
  name50 = 310;
  update();
  run_eit_rounds(h, src, eit, 3, 0x200, 20);
  const Sections got = sections_of(h.out, kEitPid);
  EXPECT_EQ(got.bad, 0u);
  ASSERT_EQ(got.good.size(), 18u) << "service 2's three schedule sections, six times; nothing else";
  for (std::size_t i = 0; i < got.good.size(); ++i) {
    const Section& s = got.good[i];
    const std::size_t which = i % 3;
    const std::uint8_t tid = which == 2 ? 0x51 : 0x50;
    // 0x50 goes out with the source's first version, then one more; 0x51 with its own.
    const std::uint8_t version = tid == 0x51 ? 6 : i < 9 ? 3 : 4;
    const std::size_t name = which == 0 ? (i < 9 ? 300 : 310) : which == 1 ? 20 : 40;
    const Section want = eit_section(tid, 20, which == 1 ? 8 : 0, version, name, 7, 9);
    ASSERT_EQ(s.size(), want.size()) << "section " << i;
    EXPECT_TRUE(std::equal(s.begin(), s.end() - 4, want.begin()))
        << "section " << i << ": table " << int{s[0]} << " version " << ((s[5] >> 1) & 0x1F);
  }
  EXPECT_TRUE(count_continuous(h.out, kEitPid).second);
  EXPECT_EQ(sdt_eit_pf_flags(h.out, 20, 1).back(), 1) << "the SDT's EIT_schedule_flag";
  EXPECT_EQ(sdt_eit_pf(h.out, 20), 0) << "no p/f was carried";
  EXPECT_EQ(h.r.stats().eit_sections_out, 18u);
}

// A schedule flood (a source repeating its 8-day guide in bursts) fills at most half the EIT
// queue: the now/next sections arriving among it all go out; only schedule sections are lost.
TEST(RemuxSynthetic, AnEitScheduleFloodLeavesNowNextAlone) {
  OneService one({{0x100, 0x1B}});
  std::vector<Section> sections;
  // Small sections, several to a packet: each leaves in a packet of its own, so they come
  // faster than the two EIT packets a push may send.
  for (std::uint8_t k = 0; k < 180; ++k) {
    sections.push_back(eit_section(static_cast<std::uint8_t>(0x50 + k % 16), 1, k, 0, 1));
    if (k % 30 == 0) sections.push_back(eit_pf(1, static_cast<std::uint8_t>(k / 30 % 2), 0, 20));
  }
  TableCarousel eit(kEitPid);
  eit.update([&](std::uint8_t) { return sections; });
  std::vector<TsPacket> eit_packets(eit.packet_count());
  const int rounds = 10;
  for (int round = 0; round < rounds; ++round) {
    eit.packetize(eit_packets);
    one.h.push(0, eit_packets);
  }
  for (int i = 0; i < 5000; ++i) one.h.push(0, one.src.es(0x100));
  EXPECT_GT(one.h.r.stats().eit_dropped, 0u) << "the schedule came faster than it can leave";
  const Sections got = sections_of(one.h.out, kEitPid);
  EXPECT_EQ(got.bad, 0u);
  const auto pf = std::count_if(got.good.begin(), got.good.end(), [](const Section& s) { return s[0] == 0x4E; });
  EXPECT_EQ(pf, 6 * rounds) << "every p/f section went out";
  EXPECT_GT(got.good.size(), static_cast<std::size_t>(pf)) << "and schedule sections too";
  EXPECT_TRUE(count_continuous(one.h.out, kEitPid).second);
}

// Small EIT sections packed many to a packet come faster than the two EIT packets a push
// may send: what does not fit the queue is dropped and counted, and what goes out is whole.
TEST(RemuxSynthetic, AnEitFloodIsCountedAndWhatGoesOutIsWhole) {
  OneService one({{0x100, 0x1B}});
  std::vector<Section> many;
  for (std::uint8_t k = 0; k < 200; ++k) many.push_back(eit_pf(1, static_cast<std::uint8_t>(k % 2), 0, 1));
  TableCarousel eit(kEitPid);
  eit.update([&](std::uint8_t) { return many; });
  std::vector<TsPacket> eit_packets(eit.packet_count());
  for (int round = 0; round < 40; ++round) {
    eit.packetize(eit_packets);
    one.h.push(0, eit_packets);
  }
  for (int i = 0; i < 2000; ++i) one.h.push(0, one.src.es(0x100));
  EXPECT_GT(one.h.r.stats().eit_dropped, 0u);
  const Sections got = sections_of(one.h.out, kEitPid);
  EXPECT_EQ(got.bad, 0u);
  EXPECT_EQ(got.good.size(), one.h.r.stats().eit_sections_out);
  EXPECT_TRUE(count_continuous(one.h.out, kEitPid).second);
}



// The first configured service is learnt after the second (its input came up later): the
// output's time must still come from one input only. On HEAD it comes from input 1 until
// service 1 (input 0) is learnt, then from input 0: the clock steps between two sources.
TEST(RemuxSynthetic, TheTimeDoesNotStepToAnotherInputWhenTheFirstServiceIsLearntLate) {
  Source a = spts_source(1);
  Source b = spts_source(2);
  RemuxConfig cfg = two_spts_mpts();
  Harness h(cfg);
  for (std::uint8_t s = 0; s < 5; ++s) {  // input 0 is not up yet
    h.push(1, b.tables());
    h.push(1, tdt_packet(static_cast<std::uint8_t>(0x50 + s), s));
  }
  for (std::uint8_t s = 5; s < 10; ++s) {  // now it is
    h.push(0, a.tables());
    h.push(1, b.tables());
    h.push(0, tdt_packet(s, s));
    h.push(1, tdt_packet(static_cast<std::uint8_t>(0x50 + s), s));
  }
  std::set<bool> from_input_1;
  for (const auto& p : h.out)
    if (p.pid() == kTdtPid) from_input_1.insert(p.bytes[4 + 8] >= 0x50);
  EXPECT_EQ(from_input_1.size(), 1u) << "the output's TDT came from both inputs: the clock stepped between two sources";
}

// A source switch keeps the old CAT until the new source sends one. The new source (in the
// clear, no CAT) has its PCR on a PID of its own, the old source's EMM PID: the output CAT
// must not name the PCR PID as an EMM PID (is_stream() looks at the streams only).
TEST(RemuxSynthetic, ACatKeptAcrossASwitchDoesNotNameTheNewSourcesPcrPidAsEmmPid) {
  Harness h(OneService::config());
  learn_a_cat_then_switch(h);
  Source backup{.tag = 2};
  backup.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x1F8));  // PCR-only PID 0x1F8
  for (int round = 0; round < 3; ++round) {
    h.push(0, backup.tables());
    for (int i = 0; i < 10; ++i) h.push(0, backup.es(0x100));
    h.push(0, backup.es(0x1F8, false, false, std::uint64_t{27'000'000} * static_cast<std::uint64_t>(round)));
  }
  const ProgramModel& m = h.r.output_model();
  ASSERT_EQ(m.services.size(), 1u);
  const std::uint16_t pcr = m.services[0].pcr_pid;
  EXPECT_EQ(std::count(m.ca_pids.begin(), m.ca_pids.end(), pcr), 0) << "the CAT names the PCR PID an EMM PID";
}

// A reload rebuilds the engine while the source's EIT p/f goes on: the SDT the previous
// engine had on air said the service has EIT p/f. The new engine's SDT must not say it has
// none until the next EIT section arrives (a flag flap and two SDT versions for nothing;
// receivers that believe it stop looking at the EIT).
TEST(RemuxSynthetic, AReloadKeepsTheEitPresentFollowingFlagOfTheSdt) {
  Source src{.tag = 0};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  TableCarousel eit(kEitPid);
  eit.update([](std::uint8_t v) { return std::vector<Section>{eit_pf(1, 0, v, 20), eit_pf(1, 1, v, 20)}; });
  std::vector<TsPacket> eit_packets(eit.packet_count());
  Harness old(OneService::config());
  for (int round = 0; round < 3; ++round) {
    old.push(0, src.tables());
    eit.packetize(eit_packets);
    old.push(0, eit_packets);
    for (int i = 0; i < 10; ++i) old.push(0, src.es(0x100));
  }
  ASSERT_EQ(sdt_eit_pf(old.out, 1), 1);
  Harness now(OneService::config());
  now.t = old.t;
  now.r.continue_from(old.r);
  for (int round = 0; round < 3; ++round) {
    now.push(0, src.tables());  // the PMT comes before the next EIT p/f (every 2 s at most)
    for (int i = 0; i < 10; ++i) now.push(0, src.es(0x100));
    eit.packetize(eit_packets);
    now.push(0, eit_packets);
  }
  const std::vector<int> flags = sdt_eit_pf_flags(now.out, 1);
  ASSERT_FALSE(flags.empty());
  EXPECT_EQ(std::count(flags.begin(), flags.end(), 0), 0) << "the new engine's SDT said the service has no EIT p/f";
  std::vector<TsPacket> both = old.out;
  both.insert(both.end(), now.out.begin(), now.out.end());
  EXPECT_TRUE(count_continuous(both, kEitPid).second) << "PID 0x12's counter across the reload";
}

// After a switch the new source's EIT p/f goes out as the same sub_table (the output's
// service id, transport_stream_id, original_network_id). Its version_number is the new
// source's own, which may well be the one the old source's had (both start at 0): receivers
// that saw that version keep the old source's now/next. One version, one content.
TEST(RemuxSynthetic, TheEitOfTheNewSourceAfterASwitchGetsANewVersion) {
  Source a{.tag = 1}, b{.tag = 2};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  b.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  TableCarousel eit_a(kEitPid), eit_b(kEitPid);
  eit_a.update([](std::uint8_t v) { return std::vector<Section>{eit_pf(1, 0, v, 20), eit_pf(1, 1, v, 20)}; });
  eit_b.update([](std::uint8_t v) { return std::vector<Section>{eit_pf(1, 0, v, 33), eit_pf(1, 1, v, 33)}; });
  std::vector<TsPacket> pa(eit_a.packet_count()), pb(eit_b.packet_count());
  Harness h(OneService::config());
  for (int round = 0; round < 3; ++round) {
    h.push(0, a.tables());
    eit_a.packetize(pa);
    h.push(0, pa);
    for (int i = 0; i < 10; ++i) h.push(0, a.es(0x100));
  }
  h.r.switch_source(0);
  for (int round = 0; round < 3; ++round) {
    h.push(0, b.tables());
    eit_b.packetize(pb);
    h.push(0, pb);
    for (int i = 0; i < 10; ++i) h.push(0, b.es(0x100));
  }
  std::map<std::pair<int, int>, Section> by_version;  // (section_number, version) -> content
  const Sections got = sections_of(h.out, kEitPid);
  ASSERT_EQ(got.good.size(), 12u);
  for (const Section& s : got.good) {
    const auto [it, fresh] = by_version.try_emplace({s[6], (s[5] >> 1) & 0x1F}, s);
    EXPECT_TRUE(fresh || it->second == s) << "section " << int{s[6]} << " version " << ((s[5] >> 1) & 0x1F)
                                          << " went out with two contents";
  }
}

// The same when the "first service" of the input (source_service_id 0) becomes another
// source service: its EIT p/f goes out as the output service's, and its version_number
// (0, as the first one's) must not be the one under which the first one's went out.
TEST(RemuxSynthetic, TheEitOfAnotherFirstServiceGetsANewVersion) {
  Source src{.tag = 1};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .source_service_id = 0, .service_id = 10});
  Harness h(cfg);
  TableCarousel eit1(kEitPid), eit5(kEitPid);
  eit1.update([](std::uint8_t v) { return std::vector<Section>{eit_pf(1, 0, v, 20)}; });
  eit5.update([](std::uint8_t v) { return std::vector<Section>{eit_pf(5, 0, v, 33)}; });
  std::vector<TsPacket> p1(eit1.packet_count()), p5(eit5.packet_count());
  for (int round = 0; round < 3; ++round) {
    h.push(0, src.tables());
    eit1.packetize(p1);
    h.push(0, p1);
    for (int i = 0; i < 10; ++i) h.push(0, src.es(0x100));
  }
  src.services[0] = spts_service(5, 0x1000, {{0x100, 0x1B}}, 0x100);  // the PAT now lists service 5 only
  for (int round = 0; round < 3; ++round) {
    h.push(0, src.tables());
    eit5.packetize(p5);
    h.push(0, p5);
    for (int i = 0; i < 10; ++i) h.push(0, src.es(0x100));
  }
  ASSERT_EQ(h.r.output_model().services.size(), 1u);
  const Sections got = sections_of(h.out, kEitPid);
  ASSERT_EQ(got.good.size(), 6u);
  std::map<int, Section> by_version;
  for (const Section& s : got.good) {
    EXPECT_EQ((s[3] << 8) | s[4], 10);
    const auto [it, fresh] = by_version.try_emplace((s[5] >> 1) & 0x1F, s);
    EXPECT_TRUE(fresh || it->second == s) << "version " << ((s[5] >> 1) & 0x1F) << " went out with two contents";
  }
}

namespace {
// Every (table_id, section_number, version) of the output service's EIT in `out` went out
// with one content; the message names those that did not.
std::string eit_versions_reused(const std::vector<TsPacket>& out) {
  std::map<std::tuple<int, int, int>, Section> seen;
  std::set<std::tuple<int, int, int>> reused;
  for (const Section& s : sections_of(out, kEitPid).good) {
    const auto [it, fresh] = seen.try_emplace({s[0], s[6], (s[5] >> 1) & 0x1F}, s);
    if (!fresh && it->second != s) reused.insert(it->first);
  }
  std::string why;
  for (const auto& [table, section, version] : reused) {
    char one[96];
    std::snprintf(one, sizeof one, "table 0x%02X section %d version %d went out with two contents; ", table, section,
                  version);
    why += one;
  }
  return why;
}
}  // namespace

// A reload that points output service 10 from source service 1 to service 2 of the same
// input, both with EIT p/f and schedule at version 0: what the old engine and the new one
// (continue_from the old) sent, three rounds each.
struct ReloadOntoAnotherSourceService {
  static RemuxConfig config(std::uint16_t source_service_id) {
    RemuxConfig cfg;
    cfg.services.push_back({.input = 0, .source_service_id = source_service_id, .service_id = 10});
    return cfg;
  }
  Harness old{config(1)};
  Harness now{config(2)};
  ReloadOntoAnotherSourceService() {
    Source src{.tag = 1};
    src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
    src.services.push_back(spts_service(2, 0x1100, {{0x200, 0x1B}}, 0x200));
    TableCarousel eit(kEitPid);
    eit.update([](std::uint8_t) {
      return std::vector<Section>{eit_pf(1, 0, 0, 20), eit_section(0x50, 1, 0, 0, 20),
                                  eit_pf(2, 0, 0, 33), eit_section(0x50, 2, 0, 0, 33)};
    });
    run_eit_rounds(old, src, eit);
    now.t = old.t;
    now.r.continue_from(old.r);
    run_eit_rounds(now, src, eit);  // the tables come before the next EIT
  }
};

// The output's EIT p/f and schedule sub_tables of service 10 are the same sub_tables after
// the reload, now with the other service's content: the new engine must not send it under
// the version the old one sent the old content with, or receivers keep the old service's
// now/next and guide.
TEST(RemuxSynthetic, AReloadOntoAnotherSourceServiceGivesItsEitANewVersion) {
  ReloadOntoAnotherSourceService r;
  ASSERT_EQ(sections_of(r.old.out, kEitPid).good.size(), 6u);
  ASSERT_EQ(sections_of(r.now.out, kEitPid).good.size(), 6u);
  std::vector<TsPacket> both = r.old.out;
  both.insert(both.end(), r.now.out.begin(), r.now.out.end());
  EXPECT_EQ(eit_versions_reused(both), "");
}

// A reload rebuilds the engine, and its input is another feed than the old engine's was
// (the channel was on its backup and restarts on its primary; or its input's address
// changed): same service id, same version (0), other events. As after a switch, its EIT
// must go out with a new version.
TEST(RemuxSynthetic, AReloadOntoAnotherFeedGivesItsEitANewVersion) {
  Source a{.tag = 1}, b{.tag = 2};
  a.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  b.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  TableCarousel eit_a(kEitPid), eit_b(kEitPid);
  eit_a.update([](std::uint8_t) { return std::vector<Section>{eit_pf(1, 0, 0, 20), eit_section(0x50, 1, 0, 0, 20)}; });
  eit_b.update([](std::uint8_t) { return std::vector<Section>{eit_pf(1, 0, 0, 33), eit_section(0x50, 1, 0, 0, 33)}; });
  Harness old(OneService::config());
  run_eit_rounds(old, a, eit_a);
  Harness now(OneService::config());
  now.t = old.t;
  now.r.continue_from(old.r);
  run_eit_rounds(now, b, eit_b);
  ASSERT_EQ(sections_of(now.out, kEitPid).good.size(), 6u);
  std::vector<TsPacket> both = old.out;
  both.insert(both.end(), now.out.begin(), now.out.end());
  EXPECT_EQ(eit_versions_reused(both), "");
}

// The same reload: the SDT the old engine had on air said service 10 has EIT p/f and
// schedule. The new engine's SDT must not say it has neither until the new source's first
// EIT section arrives (a flag flap and two SDT versions for nothing, as in
// AReloadKeepsTheEitPresentFollowingFlagOfTheSdt).
TEST(RemuxSynthetic, AReloadOntoAnotherSourceServiceKeepsTheSdtEitFlags) {
  ReloadOntoAnotherSourceService r;
  ASSERT_EQ(sdt_eit_pf_flags(r.old.out, 10, 0).back(), 1);
  ASSERT_EQ(sdt_eit_pf_flags(r.old.out, 10, 1).back(), 1);
  for (const int bit : {0, 1}) {
    const std::vector<int> flags = sdt_eit_pf_flags(r.now.out, 10, bit);
    ASSERT_FALSE(flags.empty());
    EXPECT_EQ(std::count(flags.begin(), flags.end(), 0), 0)
        << "the new engine's SDT said service 10 has no EIT " << (bit == 0 ? "p/f" : "schedule");
  }
}

// An input switch onto a backup that carries no EIT (or an encoder that stops sending it):
// the SDT goes on saying the service has EIT p/f, and boxes wait for a now/next that never
// comes. A gap shorter than the timeout (a switch onto a source with EIT, a short outage)
// changes nothing; after Remuxer::kEitPfTimeoutNs without one the SDT clears the flag, in
// one new version, and sets it again when EIT comes back.
TEST(RemuxSynthetic, TheSdtStopsAnnouncingEitThatStoppedComing) {
  Source src{.tag = 0};
  src.services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
  TableCarousel eit(kEitPid);
  eit.update([](std::uint8_t v) { return std::vector<Section>{eit_pf(1, 0, v, 20), eit_pf(1, 1, v, 20)}; });
  Harness h(OneService::config());
  auto without_eit = [&](std::uint64_t ms) {  // 1 ms per packet
    for (std::uint64_t sent = 0; sent < ms; sent += 100) {
      h.push(0, src.tables());
      for (int i = 0; i < 100; ++i) h.push(0, src.es(0x100));
    }
  };
  run_eit_rounds(h, src, eit);
  ASSERT_EQ(sdt_eit_pf(h.out, 1), 1);
  without_eit(9'000);  // the SDT goes out every second
  std::vector<int> flags = sdt_eit_pf_flags(h.out, 1);
  EXPECT_EQ(std::count(flags.begin(), flags.end(), 0), 1) << "cleared within 9 s of the last EIT p/f (the only 0 must be "
                                                              "the SDT before the first EIT)";
  without_eit(3'000);
  flags = sdt_eit_pf_flags(h.out, 1);
  EXPECT_EQ(flags.back(), 0) << "12 s without EIT p/f: the SDT still announces it";
  // One SDT version for the change, not one per repetition.
  std::set<int> versions;
  for (const Section& s : sections_of(h.out, kSdtPid).good) versions.insert((s[5] >> 1) & 0x1F);
  EXPECT_EQ(versions.size(), 3u) << "without EIT, with EIT p/f, without again";
  run_eit_rounds(h, src, eit);
  EXPECT_EQ(sdt_eit_pf(h.out, 1), 1) << "EIT p/f came back";
}

// A switch to a backup with the same program (the same service, and in its SDT the same
// name, provider and service_type) changes no table: the output's SDT keeps its version
// and its content. The new source's PMT comes before its SDT (PMTs repeat every 100 ms, the
// SDT up to every 2 s): until its SDT is learnt the output keeps the provider and
// service_type it had, not an SDT without them and then one with them again (two new
// versions, the service briefly of type 0 and without its provider, for nothing).
TEST(RemuxSynthetic, ASwitchToTheSameProgramKeepsTheSdt) {
  RemuxConfig cfg = OneService::config();
  cfg.services[0].name = "Channel";
  Harness h(cfg);
  Source primary{.tag = 0};
  Source backup{.tag = 2};
  for (Source* s : {&primary, &backup}) {
    s->services.push_back(spts_service(1, 0x1000, {{0x100, 0x1B}}, 0x100));
    s->services[0].name = "Source";
    s->services[0].provider = "Encoder";
    s->services[0].service_type = 1;
  }
  TableCarousel primary_sdt(kSdtPid), backup_sdt(kSdtPid);
  const auto sdt = [](Source& s, TableCarousel& t) {
    t.update([&](std::uint8_t v) { return build_sdt(s.tsid, 1, s.services, v); });
    std::vector<TsPacket> pkts(t.packet_count());
    t.packetize(pkts);
    return pkts;
  };
  h.push(0, sdt(primary, primary_sdt));
  h.push(0, primary.tables());
  for (int i = 0; i < 20; ++i) h.push(0, primary.es(0x100));
  h.r.switch_source(0);
  h.push(0, backup.tables());  // PAT and PMT first
  for (int i = 0; i < 20; ++i) h.push(0, backup.es(0x100));
  h.push(0, sdt(backup, backup_sdt));  // then its SDT
  for (int i = 0; i < 20; ++i) h.push(0, backup.es(0x100));

  const std::vector<Section> sections = sections_of(h.out, kSdtPid).good;
  ASSERT_FALSE(sections.empty());
  std::string versions;
  for (const Section& s : sections) versions += std::to_string((s[5] >> 1) & 0x1F) + " ";
  for (std::size_t i = 1; i < sections.size(); ++i)
    EXPECT_EQ(sections[i], sections[0]) << "SDT #" << i << " differs from the first; versions sent: " << versions;
  const ProgramModel m = decode(h.out);
  ASSERT_EQ(m.services.size(), 1u);
  EXPECT_EQ(m.services[0].provider, "Encoder");
  EXPECT_EQ(m.services[0].service_type, 1);
}

// After a switch, video resumes at a random access point: a unit start without the
// random_access_indicator is dropped (until kMaxKeyframeWaitNs has passed), so decoders
// restart on a keyframe, whatever the clock reads when the first packet comes.
TEST(RemuxSynthetic, AfterASwitchVideoResumesAtARandomAccessPointWhateverTheClock) {
  OneService one({{0x100, 0x1B}});
  Harness& h = one.h;
  for (int i = 0; i < 5; ++i) h.push(0, one.src.es(0x100));
  h.r.switch_source(0);
  Source backup{.tag = 2};
  ASSERT_EQ(h.t % 2, 0u) << "the harness's clock moves by whole milliseconds";
  const std::size_t before = h.out.size();
  h.push(0, backup.es(0x100, /*unit_start=*/true, /*rai=*/false));   // a picture that is no keyframe
  h.push(0, backup.es(0x100, /*unit_start=*/false, /*rai=*/false));  // ...and its next packet
  h.push(0, backup.es(0x100, /*unit_start=*/true, /*rai=*/true));    // a keyframe
  std::vector<TsPacket> video;
  for (std::size_t i = before; i < h.out.size(); ++i)
    if (origin(h.out[i]).first == 2) video.push_back(h.out[i]);
  ASSERT_FALSE(video.empty());
  EXPECT_TRUE(video[0].random_access()) << "video resumed on a picture that is no keyframe";
  EXPECT_EQ(video.size(), 1u) << "only the keyframe goes out";
}

namespace {

// An SDT actual of one service whose service_descriptor holds `provider` and `name` as
// they are (their character-table selector, if any, included).
std::vector<TsPacket> raw_sdt(TableCarousel& t, std::uint16_t tsid, std::uint16_t service_id,
                              const std::vector<std::uint8_t>& provider, const std::vector<std::uint8_t>& name) {
  std::vector<std::uint8_t> d{0x48, static_cast<std::uint8_t>(3 + provider.size() + name.size()), 0x01,
                              static_cast<std::uint8_t>(provider.size())};
  d.insert(d.end(), provider.begin(), provider.end());
  d.push_back(static_cast<std::uint8_t>(name.size()));
  d.insert(d.end(), name.begin(), name.end());
  t.update([&](std::uint8_t v) {
    Section s{0x42, 0, 0, static_cast<std::uint8_t>(tsid >> 8), static_cast<std::uint8_t>(tsid),
              static_cast<std::uint8_t>(0xC1 | (v << 1)), 0, 0, 0x00, 0x01, 0xFF,
              static_cast<std::uint8_t>(service_id >> 8), static_cast<std::uint8_t>(service_id), 0xFC,
              static_cast<std::uint8_t>(0x80 | (d.size() >> 8)), static_cast<std::uint8_t>(d.size())};
    s.insert(s.end(), d.begin(), d.end());
    const std::size_t length = s.size() - 3 + 4;
    s[1] = static_cast<std::uint8_t>(0xF0 | (length >> 8));
    s[2] = static_cast<std::uint8_t>(length);
    const std::uint32_t crc = crc32_mpeg(s);
    for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<std::uint8_t>(crc >> sh));
    return std::vector<Section>{s};
  });
  std::vector<TsPacket> pkts(t.packet_count());
  t.packetize(pkts);
  return pkts;
}

// The service_descriptor texts (provider, name) of `service_id` in the last SDT of `out`.
std::pair<std::vector<std::uint8_t>, std::vector<std::uint8_t>> sdt_texts(const std::vector<TsPacket>& out,
                                                                          std::uint16_t service_id) {
  std::pair<std::vector<std::uint8_t>, std::vector<std::uint8_t>> texts;
  for (const Section& s : sections_of(out, kSdtPid).good)
    for (std::size_t at = 11; at + 5 <= s.size() - 4;) {
      const std::size_t loop = (std::size_t{s[at + 3]} & 0x0F) << 8 | s[at + 4];
      if (((s[at] << 8) | s[at + 1]) == service_id && loop >= 5 && s[at + 5] == 0x48) {
        const std::uint8_t* b = &s[at + 7];
        const std::size_t p = b[1];
        texts.first.assign(b + 2, b + 2 + p);
        texts.second.assign(b + 3 + p, b + 3 + p + b[2 + p]);
      }
      at += 5 + loop;
    }
  return texts;
}

std::vector<std::uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

// A service that keeps its source's name and provider: the source's SDT writes them in
// another character table than UTF-8 (ISO 8859-9 behind the selector 0x05 for a Turkish
// name; the default table, ISO 6937, where "ü" is the diacritic 0xC8 and "u", for a German
// provider). The output SDT must say the same characters: in UTF-8 behind 0x15, not the
// source's bytes relabelled as UTF-8 (an invalid sequence a set-top box shows as garbage).
TEST(RemuxSynthetic, TheSourcesNamesInAnotherCharacterTableKeepTheirCharacters) {
  OneService one({{0x100, 0x1B}});
  TableCarousel sdt(kSdtPid);
  one.h.push(0, raw_sdt(sdt, one.src.tsid, 1, bytes("M\xC8unchen TV"), bytes("\x05\xC7" "anakkale")));
  for (int i = 0; i < 20; ++i) one.h.push(0, one.src.es(0x100));
  ASSERT_EQ(one.h.r.output_model().services.size(), 1u);
  const auto [provider, name] = sdt_texts(one.h.out, 1);
  EXPECT_EQ(name, bytes("\x15\xC3\x87" "anakkale"));  // "Çanakkale"
  EXPECT_EQ(provider, bytes("\x15M\xC3\xBCnchen TV"));  // "München TV"
}
