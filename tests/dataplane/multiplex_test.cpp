// MPTS multiplex outputs without DPDK: three channels fed from real ffmpeg streams (H.264,
// HEVC, MPEG-2; all on the same PIDs, so the multiplex must remap), their remuxed SPTS
// tapped into one Multiplex; the output is checked with ffprobe (three programs with the
// configured ids and names), with our own PSI decoder (LCNs from the NIT, network name,
// transport_stream_id), for continuity, for completeness of every member's media, and
// for its constant rate.
#include "twincast/dataplane/multiplex.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "dataplane/pipeline_harness.hpp"
#include "tests_common.hpp"
#include "twincast/dataplane/channel.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/psi_decoder.hpp"

using namespace twincast;
using namespace twincast::dataplane;
using mpegts::TsPacket;
using twincast::test::fixture;
using twincast::test::read_packets;
using twincast::test::cc_errors;
using twincast::test::Recorder;

namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kCbr = 6'000'000;

// Counts what a tap receives (a second tap on a channel, next to the multiplex).
struct CountingTap final : PacketTap {
  std::map<std::size_t, std::size_t> per_slot;
  void on_packets(std::size_t slot, std::span<const TsPacket> packets, std::uint64_t) override {
    per_slot[slot] += packets.size();
  }
};

struct Source {
  std::vector<TsPacket> packets;
  std::vector<std::uint64_t> times;
  std::size_t next = 0;
};

Source source(const std::string& name) {
  Source s;
  s.packets = read_packets(fixture(name));
  s.times = mpegts::file_times(s.packets).ns;
  return s;
}

// Packets of the elementary streams of the first service in `pkts`, per stream type
// order (video first, then audio, as the PMT lists them).
std::vector<std::size_t> media_counts(const std::vector<TsPacket>& pkts, const mpegts::Service& svc) {
  std::vector<std::size_t> n(svc.streams.size(), 0);
  for (const auto& p : pkts)
    for (std::size_t k = 0; k < svc.streams.size(); ++k) n[k] += p.pid() == svc.streams[k].pid;
  return n;
}

mpegts::ProgramModel decode_psi(const std::vector<TsPacket>& pkts) {
  mpegts::PsiDecoder psi;
  for (const auto& p : pkts) psi.push(p);
  return psi.model();
}

ChannelConfig member(const std::string& id, const std::string& name, std::uint16_t sid, std::uint16_t lcn,
                     bool own_output = false) {
  ChannelConfig c;
  c.id = id;
  c.name = name;
  c.provider = "Twincast Test";
  c.service_id = sid;
  c.lcn = lcn;
  c.inputs.push_back(InputConfig{});
  if (own_output) c.outputs.push_back(OutputConfig{});
  return c;
}

MultiplexConfig mux_config(PacingMode pacing = PacingMode::kCbr) {
  MultiplexConfig m;
  m.id = "mux1";
  m.transport_stream_id = 77;
  m.original_network_id = 8888;
  m.network_id = 4444;
  m.network_name = "Test Network";
  m.channels = {"one", "two", "three"};
  OutputConfig o;
  o.pacing = pacing;
  o.cbr_bps = pacing == PacingMode::kCbr ? kCbr : 0;
  m.outputs.push_back(o);
  return m;
}

std::vector<ChannelConfig> three_channels(bool first_has_output = false) {
  return {member("one", "Alpha One", 201, 11, first_has_output), member("two", "Bravo Two", 202, 12),
          member("three", "Charlie Three", 203, 13)};
}

const std::vector<std::string> kFiles = {"h264_aac.ts", "hevc_aac.ts", "mpeg2_mp2.ts"};

struct Session {
  std::vector<Source> sources;
  Recorder mux_out;
  Recorder own_out;  // the channels' own outputs
};

// Feeds each source into its channel in bursts of `burst` from 0 to end_ns; every 100 us the
// channels and then the multiplex are polled. Without sources in `r`, each of kFiles.
void run(std::vector<std::unique_ptr<Channel>>& channels, Multiplex& mux, Session& r, std::uint64_t end_ns,
         std::size_t burst) {
  if (r.sources.empty())
    for (const auto& f : kFiles) r.sources.push_back(source(f));
  for (std::uint64_t now = 0; now <= end_ns; now += 100'000) {
    for (std::size_t i = 0; i < r.sources.size(); ++i) {
      Source& s = r.sources[i];
      while (s.next < s.packets.size() && s.times[s.next] <= now) {
        const std::size_t n = std::min(burst, s.packets.size() - s.next);
        channels[i]->push(0, std::span(s.packets.data() + s.next, n), now);
        s.next += n;
      }
    }
    r.own_out.now = now;
    r.mux_out.now = now;
    for (auto& ch : channels) ch->poll(now, r.own_out);
    mux.poll(now, r.mux_out);
  }
}

std::vector<std::unique_ptr<Channel>> make_channels(const std::vector<ChannelConfig>& cfgs, Multiplex& mux) {
  std::vector<std::unique_ptr<Channel>> out;
  for (std::size_t slot = 0; slot < mux.member_count(); ++slot) {
    out.push_back(std::make_unique<Channel>(cfgs[mux.member_channel(slot)]));
    out.back()->add_tap(&mux, slot);
  }
  return out;
}

std::string ffprobe_programs(const std::vector<TsPacket>& pkts) {
  const auto dir = twincast::test::temp_dir("multiplex");
  const auto file = dir / "mux.ts";
  twincast::test::write_packets(file, pkts);
  const auto r = twincast::test::run("ffprobe -v error -show_entries program=program_num:program_tags=service_name "
                                     "-show_entries stream=codec_name -of compact " +
                                     twincast::test::shell_quote(file.string()));
  std::filesystem::remove_all(dir);
  return r.out;
}

}  // namespace

class MultiplexBursts : public ::testing::TestWithParam<std::size_t> {};

TEST_P(MultiplexBursts, ThreeChannelsMakeOneCbrMptsWithTheirServices) {
  const auto cfgs = three_channels();
  Multiplex mux(mux_config(), cfgs);
  auto channels = make_channels(cfgs, mux);
  Session r;
  run(channels, mux, r, 7000 * kMs, GetParam());
  const auto out = r.mux_out.packets();
  ASSERT_FALSE(out.empty());

  // Our own PSI decoder: three services with the configured ids, names, providers and
  // LCNs (from the NIT), on the multiplex's network.
  const mpegts::ProgramModel model = decode_psi(out);
  EXPECT_EQ(model.transport_stream_id, 77);
  EXPECT_EQ(model.original_network_id, 8888);
  EXPECT_EQ(model.network_id, 4444);
  EXPECT_EQ(model.network_name, "Test Network");
  ASSERT_EQ(model.services.size(), 3u);
  std::map<std::uint16_t, const mpegts::Service*> by_id;
  for (const auto& s : model.services) by_id[s.service_id] = &s;
  ASSERT_EQ(by_id.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    const auto sid = static_cast<std::uint16_t>(201 + k);
    ASSERT_TRUE(by_id.count(sid)) << sid;
    EXPECT_EQ(by_id[sid]->name, cfgs[k].name);
    EXPECT_EQ(by_id[sid]->provider, "Twincast Test");
    EXPECT_EQ(by_id[sid]->lcn, 11 + k);
    EXPECT_EQ(by_id[sid]->streams.size(), 2u);
  }
  // The three sources all use PMT 0x1000 and ES 0x100/0x101: every output PID is distinct.
  std::set<std::uint16_t> pids;
  for (const auto& s : model.services) {
    EXPECT_TRUE(pids.insert(s.pmt_pid).second) << "PMT PID " << s.pmt_pid;
    for (const auto& es : s.streams) EXPECT_TRUE(pids.insert(es.pid).second) << "ES PID " << es.pid;
  }

  // Every member's media packets are there, none lost on the way (the channel and the
  // multiplex only regenerate tables and drop the sources' null packets).
  for (std::size_t k = 0; k < 3; ++k) {
    const mpegts::ProgramModel src = decode_psi(r.sources[k].packets);
    ASSERT_EQ(src.services.size(), 1u);
    const auto in = media_counts(r.sources[k].packets, src.services[0]);
    const auto got = media_counts(out, *by_id[static_cast<std::uint16_t>(201 + k)]);
    EXPECT_EQ(got, in) << kFiles[k];
  }
  EXPECT_EQ(cc_errors(out), 0u);
  const MultiplexStats st = mux.stats();
  EXPECT_EQ(st.dropped_queue_full, 0u);
  EXPECT_GT(st.packets_in, 0u);
  EXPECT_EQ(st.datagrams_out, r.mux_out.sent.size());
  EXPECT_TRUE(r.own_out.sent.empty()) << "the members have no outputs of their own";

  // Constant rate: over 1..6 s, datagrams of 7 packets at cbr_bps within 1%.
  std::uint64_t bits = 0;
  for (const auto& s : r.mux_out.sent)
    if (s.t >= 1000 * kMs && s.t < 6000 * kMs) bits += s.packets.size() * mpegts::kPacketSize * 8;
  const double rate = static_cast<double>(bits) / 5.0;
  EXPECT_NEAR(rate, static_cast<double>(kCbr), 0.01 * static_cast<double>(kCbr));
  for (const auto& s : r.mux_out.sent) ASSERT_EQ(s.packets.size(), 7u);

  // A real peer: ffprobe sees three programs with our ids and names, and all six streams.
  const std::string probe = ffprobe_programs(out);
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_NE(probe.find("program_num=" + std::to_string(201 + k) + "|"), std::string::npos) << probe;
    EXPECT_NE(probe.find("service_name=" + cfgs[k].name), std::string::npos) << probe;
  }
  for (const char* codec : {"codec_name=h264", "codec_name=hevc", "codec_name=mpeg2video", "codec_name=aac",
                            "codec_name=mp2"})
    EXPECT_NE(probe.find(codec), std::string::npos) << codec << "\n" << probe;
}

INSTANTIATE_TEST_SUITE_P(Bursts, MultiplexBursts, ::testing::Values(1u, 7u, 33u));

TEST(Multiplex, OutputDecodesWithFfmpeg) {
  const auto cfgs = three_channels();
  Multiplex mux(mux_config(), cfgs);
  auto channels = make_channels(cfgs, mux);
  Session r;
  run(channels, mux, r, 7000 * kMs, 7);
  std::vector<TsPacket> without_nulls;
  for (const auto& p : r.mux_out.packets())
    if (p.pid() != mpegts::kNullPid) without_nulls.push_back(p);
  EXPECT_EQ(twincast::test::decode_errors(without_nulls, "multiplex", "mux.ts"), "");
}

// A member keeps its own SPTS output; a second tap on the same channel sees the same
// remuxed packets as the multiplex.
TEST(Multiplex, MemberKeepsItsOwnOutputAndTapsSeeEveryRemuxedPacket) {
  const auto cfgs = three_channels(/*first_has_output=*/true);
  Multiplex mux(mux_config(), cfgs);
  auto channels = make_channels(cfgs, mux);
  CountingTap counter;
  channels[0]->add_tap(&counter, 5);
  Session r;
  run(channels, mux, r, 7000 * kMs, 7);
  const auto own = r.own_out.packets();
  const mpegts::ProgramModel m = decode_psi(own);
  ASSERT_EQ(m.services.size(), 1u);
  EXPECT_EQ(m.services[0].service_id, 201);
  EXPECT_EQ(cc_errors(own), 0u);
  ASSERT_EQ(counter.per_slot.size(), 1u);
  EXPECT_EQ(counter.per_slot.begin()->first, 5u);
  // The pacer sent everything the remux engine produced: exactly what the tap saw.
  EXPECT_EQ(counter.per_slot[5], own.size());
  EXPECT_EQ(channels[0]->stats().packets_out, own.size());
}

TEST(Multiplex, PcrPacedFollowsTheFirstServiceAndLosesNothing) {
  const auto cfgs = three_channels();
  Multiplex mux(mux_config(PacingMode::kPcr), cfgs);
  auto channels = make_channels(cfgs, mux);
  Session r;
  run(channels, mux, r, 7000 * kMs, 7);
  const auto out = r.mux_out.packets();
  const mpegts::ProgramModel model = decode_psi(out);
  ASSERT_EQ(model.services.size(), 3u);
  EXPECT_EQ(cc_errors(out), 0u);
  for (const auto& p : out) ASSERT_NE(p.pid(), mpegts::kNullPid) << "pcr pacing does not stuff";
  // Datagrams are full, or end early with a PCR of the first service (it paces).
  const std::uint16_t pacing_pid = model.services[0].pcr_pid;
  for (std::size_t i = 0; i + 1 < r.mux_out.sent.size(); ++i) {
    const auto& d = r.mux_out.sent[i].packets;
    ASSERT_TRUE(d.size() == 7u || (d.back().has_pcr() && d.back().pid() == pacing_pid)) << "datagram " << i;
  }
  for (std::size_t k = 0; k < 3; ++k) {
    const mpegts::ProgramModel src = decode_psi(r.sources[k].packets);
    const mpegts::Service* svc = model.find_service(static_cast<std::uint16_t>(201 + k));
    ASSERT_NE(svc, nullptr);
    EXPECT_EQ(media_counts(out, *svc), media_counts(r.sources[k].packets, src.services[0])) << kFiles[k];
  }
}

// passthrough sends packets as they came, in datagrams that end at a PCR packet: on an MPTS
// every member's PCR, not only the first service's (the pacing PID means nothing to
// passthrough). A PCR in the middle of a datagram waits for the packets behind it to arrive
// (5.5 ms here; tens on a slow multiplex): jitter that passthrough added to every PCR of
// members 2..n only.
TEST(Multiplex, PassthroughEndsADatagramAtEveryMembersPcr) {
  const auto cfgs = three_channels();
  Multiplex mux(mux_config(PacingMode::kPassthrough), cfgs);
  auto channels = make_channels(cfgs, mux);
  Session r;
  run(channels, mux, r, 3000 * kMs, 1);
  const mpegts::ProgramModel model = decode_psi(r.mux_out.packets());
  ASSERT_EQ(model.services.size(), 3u);
  // When each PCR reached the multiplex (run() pushes on a 100 us grid; passthrough keeps
  // the PCR values).
  std::map<std::uint64_t, std::uint64_t> arrived;
  for (const Source& src : r.sources)
    for (std::size_t i = 0; i < src.packets.size(); ++i)
      if (src.packets[i].has_pcr()) {
        const std::uint64_t t = (src.times[i] + 99'999) / 100'000 * 100'000;
        arrived[src.packets[i].pcr()] = std::max(arrived[src.packets[i].pcr()], t);
      }
  std::map<std::uint16_t, std::size_t> pcrs, inside;
  std::map<std::uint16_t, std::uint64_t> worst_wait;
  for (const auto& s : r.mux_out.sent)
    for (std::size_t k = 0; k < s.packets.size(); ++k) {
      const TsPacket& p = s.packets[k];
      if (!p.has_pcr()) continue;
      ++pcrs[p.pid()];
      inside[p.pid()] += k + 1 != s.packets.size() ? 1U : 0U;
      if (const auto it = arrived.find(p.pcr()); it != arrived.end() && s.t > it->second)
        worst_wait[p.pid()] = std::max(worst_wait[p.pid()], s.t - it->second);
    }
  ASSERT_EQ(pcrs.size(), 3u) << "a PCR PID per member";
  for (const auto& [pid, n] : pcrs) {
    EXPECT_EQ(inside[pid], 0u) << "PID " << pid << ": PCRs not at the end of their datagram, of " << n;
    EXPECT_EQ(worst_wait[pid], 0u) << "PID " << pid << ": a PCR held back for " << worst_wait[pid] / 1000 << " us";
  }
  EXPECT_EQ(cc_errors(r.mux_out.packets()), 0u);
}

TEST(Multiplex, RejectsWhatItCannotRun) {
  auto cfgs = three_channels();
  auto m = mux_config();
  m.channels = {"one", "nope"};
  EXPECT_THROW(Multiplex(m, cfgs), std::invalid_argument);
  m.channels = {"one", "two", "one"};
  EXPECT_THROW(Multiplex(m, cfgs), std::invalid_argument);
  m = mux_config();
  m.channels.clear();
  EXPECT_THROW(Multiplex(m, cfgs), std::invalid_argument);
  m = mux_config();
  m.outputs.clear();
  EXPECT_THROW(Multiplex(m, cfgs), std::invalid_argument);
  m = mux_config();
  m.outputs[0].cbr_bps = 0;
  EXPECT_THROW(Multiplex(m, cfgs), std::invalid_argument);
  m = mux_config();
  cfgs[1].pmt_pid = 0x500;
  cfgs[2].pmt_pid = 0x500;
  EXPECT_THROW(Multiplex(m, cfgs), std::invalid_argument);
  cfgs = three_channels();
  cfgs[2].service_id = 201;
  EXPECT_THROW(Multiplex(m, cfgs), std::invalid_argument);
}

// Garbage and truncated packets pushed straight into the tap never crash the multiplex,
// and the tables it makes stay well-formed.
TEST(Multiplex, SurvivesRandomBytesOnItsInputs) {
  const auto cfgs = three_channels();
  Multiplex mux(mux_config(), cfgs);
  std::uint32_t x = 12345;
  auto rnd = [&] { return x = x * 1664525u + 1013904223u; };
  Recorder rec;
  std::vector<TsPacket> batch(9);
  for (std::uint64_t now = 0; now < 2000 * kMs; now += kMs) {
    for (auto& p : batch) {
      for (auto& b : p.bytes) b = static_cast<std::uint8_t>(rnd() >> 24);
      p.bytes[0] = mpegts::kSyncByte;
      if ((rnd() & 3) == 0) p.set_pid(static_cast<std::uint16_t>(rnd() & 0x1F));  // PSI PIDs too
    }
    mux.on_packets(rnd() % 4, batch, now);  // slot 3 does not exist: ignored
    rec.now = now;
    mux.poll(now, rec);
  }
  EXPECT_FALSE(rec.sent.empty());
  for (const auto& s : rec.sent)
    for (const auto& p : s.packets) ASSERT_EQ(p.bytes[0], mpegts::kSyncByte);
}

// A reload that rebuilds the multiplex (here its network name changed; a member's input
// changed or a member added does the same) restarts its members, and the new multiplex
// learns each member's tables again, one after the other. Every PAT a receiver sees across
// the reload lists all three services, and the PAT version moves once for the reload, not
// once per member learnt: a PAT listing only the members learnt so far makes set-top boxes
// drop the others' services although nothing about them changed.
TEST(Multiplex, AReloadThatRebuildsItKeepsEveryMemberInThePat) {
  const auto cfgs = three_channels();
  auto mux = std::make_unique<Multiplex>(mux_config(), cfgs);
  auto channels = make_channels(cfgs, *mux);
  std::vector<Source> sources;
  for (const auto& f : kFiles) sources.push_back(source(f));
  Recorder out;
  auto drive = [&](Multiplex& m, std::vector<std::unique_ptr<Channel>>& chs, std::uint64_t from, std::uint64_t to) {
    Recorder own;
    for (std::uint64_t now = from; now < to; now += 100'000) {
      for (std::size_t i = 0; i < sources.size(); ++i) {
        Source& s = sources[i];
        while (s.next < s.packets.size() && s.times[s.next] <= now) {
          const std::size_t n = std::min<std::size_t>(7, s.packets.size() - s.next);
          chs[i]->push(0, std::span(s.packets.data() + s.next, n), now);
          s.next += n;
        }
      }
      out.now = now;
      for (auto& ch : chs) ch->poll(now, own);
      m.poll(now, out);
    }
  };
  drive(*mux, channels, 0, 3000 * kMs);
  const std::size_t at_reload = out.packets().size();
  MultiplexConfig renamed = mux_config();
  renamed.network_name = "Renamed Network";
  auto mux2 = std::make_unique<Multiplex>(renamed, cfgs);
  auto channels2 = make_channels(cfgs, *mux2);
  for (std::size_t i = 0; i < channels2.size(); ++i) channels2[i]->continue_from(*channels[i]);
  mux2->continue_from(*mux);
  drive(*mux2, channels2, 3000 * kMs, 5000 * kMs);

  const auto all = out.packets();
  ASSERT_GT(all.size(), at_reload);
  EXPECT_EQ(cc_errors(all), 0u);
  std::set<int> versions_after;
  std::size_t pats_after = 0;
  for (std::size_t k = at_reload; k < all.size(); ++k) {
    const TsPacket& p = all[k];
    if (p.pid() != mpegts::kPatPid || !p.payload_unit_start()) continue;
    const auto pl = p.payload();
    const std::size_t at = 1 + pl[0];
    const std::size_t len = static_cast<std::size_t>(((pl[at + 1] & 0x0F) << 8) | pl[at + 2]);
    std::size_t programs = 0;
    for (std::size_t q = at + 8; q + 4 <= at + 3 + len - 4; q += 4) programs += ((pl[q] << 8) | pl[q + 1]) != 0;
    EXPECT_EQ(programs, 3u) << "PAT #" << pats_after << " after the reload (version " << ((pl[at + 5] >> 1) & 0x1F) << ")";
    versions_after.insert((pl[at + 5] >> 1) & 0x1F);
    ++pats_after;
  }
  EXPECT_GT(pats_after, 10u);
  EXPECT_LE(versions_after.size(), 2u) << "the old version (still queued) and the reload's new one";
  const mpegts::ProgramModel model = decode_psi(std::vector<TsPacket>(all.begin() + static_cast<std::ptrdiff_t>(at_reload), all.end()));
  EXPECT_EQ(model.services.size(), 3u);
  EXPECT_EQ(model.network_name, "Renamed Network");
}

// The MPTS at a constant rate: each PCR must match its byte position at cbr_bps (TR 101 290
// PCR_accuracy, |PCR_AC| <= 500 ns), as on any constant-rate TS. The members' packets are
// fed at the exact times their PCRs give (so the inputs are accurate to the nanosecond)
// and the multiplex is polled as they come; where null packets and queueing move a PCR
// packet to another slot than its arrival, the PCR must move with it. Without that, the
// PCRs go out where their packets happened to land, milliseconds off their byte position:
// a PCR_accuracy_error (and PCR jitter for the set-top box's clock recovery) on nearly
// every PCR of every service.
TEST(Multiplex, CbrOutputPcrsMatchTheirBytePosition) {
  const auto cfgs = three_channels();
  Multiplex mux(mux_config(), cfgs);
  auto channels = make_channels(cfgs, mux);
  std::vector<Source> sources;
  for (const auto& f : kFiles) sources.push_back(source(f));
  Recorder out, own;
  for (;;) {
    std::uint64_t now = ~std::uint64_t{0};
    for (const Source& s : sources)
      if (s.next < s.packets.size()) now = std::min(now, s.times[s.next]);
    if (now > 5000 * kMs) break;
    for (std::size_t i = 0; i < sources.size(); ++i) {
      Source& s = sources[i];
      while (s.next < s.packets.size() && s.times[s.next] == now) channels[i]->push(0, std::span(&s.packets[s.next++], 1), now);
    }
    out.now = now;
    for (auto& ch : channels) ch->poll(now, own);
    mux.poll(now, out);
  }
  const auto pkts = out.packets();
  ASSERT_GT(pkts.size(), 10000u);
  // PCR_AC of each PCR against the one before on its PID: the PCRs' difference against
  // the bytes between them at cbr_bps.
  std::map<std::uint16_t, std::pair<std::size_t, std::uint64_t>> last;
  std::map<std::uint16_t, std::size_t> judged, off;
  std::map<std::uint16_t, double> worst;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    const TsPacket& p = pkts[i];
    if (!p.has_pcr() || p.discontinuity()) continue;
    if (const auto it = last.find(p.pid()); it != last.end()) {
      const double pcr_ns = static_cast<double>((p.pcr() + mpegts::kPcrWrap - it->second.second) % mpegts::kPcrWrap) * 1000.0 / 27.0;
      const double bytes_ns = static_cast<double>(i - it->second.first) * mpegts::kPacketSize * 8 * 1e9 / static_cast<double>(kCbr);
      const double error = pcr_ns > bytes_ns ? pcr_ns - bytes_ns : bytes_ns - pcr_ns;
      ++judged[p.pid()];
      off[p.pid()] += error > 500.0 ? 1 : 0;
      worst[p.pid()] = std::max(worst[p.pid()], error);
    }
    last[p.pid()] = {i, p.pcr()};
  }
  ASSERT_EQ(judged.size(), 3u) << "a PCR PID per member";
  for (const auto& [pid, n] : judged) {
    EXPECT_GT(n, 100u) << "PID " << pid;
    EXPECT_EQ(off[pid], 0u) << "PID " << pid << ": PCRs more than 500 ns off their byte position, of " << n
                            << " (worst " << worst[pid] << " ns)";
  }
}

// A member switches to its backup, which carries the same encoder's stream over a path 10 ms
// faster (dual feeds of one encoder: the PCRs go on, they only arrive earlier). A channel's
// own cbr output restarts its PCR clock at an input switch (Pacer::reanchor); the
// multiplex's must too. Kept, its offset from arrival to PCR slews to the new path's at
// 200 ppm for 50 s, and so does every restamped PCR against its byte position: ~4 us of
// PCR_accuracy error per 20 ms PCR interval (limit 500 ns), a clock 200 ppm off for the
// set-top boxes.
TEST(Multiplex, CbrOutputPcrsStayOnTheirBytePositionWhenAMemberSwitchesToAFasterPath) {
  auto cfgs = three_channels();
  cfgs[0].inputs.push_back(InputConfig{});
  Multiplex mux(mux_config(), cfgs);
  auto channels = make_channels(cfgs, mux);
  // Member 0's inputs, then members 1 and 2; the backup is the primary 10 ms earlier.
  std::vector<Source> sources = {source(kFiles[0]), source(kFiles[0]), source(kFiles[1]), source(kFiles[2])};
  for (std::size_t i = 0; i < sources.size(); ++i)
    for (auto& t : sources[i].times) t += i == 1 ? 10 * kMs : 20 * kMs;
  const std::size_t channel_of[] = {0, 0, 1, 2};
  const std::size_t input_of[] = {0, 1, 0, 0};
  constexpr std::uint64_t kSwitchAt = 3000 * kMs;  // past the 2 s in which a new clock follows arrivals directly
  bool switched = false;
  Recorder out, own;
  for (;;) {
    std::uint64_t now = ~std::uint64_t{0};
    for (const Source& s : sources)
      if (s.next < s.packets.size()) now = std::min(now, s.times[s.next]);
    if (now > 6000 * kMs) break;
    if (!switched && now >= kSwitchAt) {
      channels[0]->force_input(1, now);
      switched = true;
    }
    for (std::size_t i = 0; i < sources.size(); ++i) {
      Source& s = sources[i];
      while (s.next < s.packets.size() && s.times[s.next] == now)
        channels[channel_of[i]]->push(input_of[i], std::span(&s.packets[s.next++], 1), now);
    }
    out.now = now;
    for (auto& ch : channels) ch->poll(now, own);
    mux.poll(now, out);
  }
  ASSERT_EQ(channels[0]->stats().active_input, 1u);
  const auto pkts = out.packets();
  // PCR_AC of each PCR against the one before on its PID (a discontinuity_indicator starts
  // the comparison again).
  std::map<std::uint16_t, std::pair<std::size_t, std::uint64_t>> last;
  std::map<std::uint16_t, std::size_t> judged, off, discontinuities;
  std::map<std::uint16_t, double> worst;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    const TsPacket& p = pkts[i];
    if (!p.has_pcr()) continue;
    if (const auto it = last.find(p.pid()); it != last.end() && !p.discontinuity()) {
      const double pcr_ns = static_cast<double>((p.pcr() + mpegts::kPcrWrap - it->second.second) % mpegts::kPcrWrap) * 1000.0 / 27.0;
      const double bytes_ns = static_cast<double>(i - it->second.first) * mpegts::kPacketSize * 8 * 1e9 / static_cast<double>(kCbr);
      const double error = pcr_ns > bytes_ns ? pcr_ns - bytes_ns : bytes_ns - pcr_ns;
      ++judged[p.pid()];
      off[p.pid()] += error > 500.0 ? 1 : 0;
      worst[p.pid()] = std::max(worst[p.pid()], error);
    }
    discontinuities[p.pid()] += p.discontinuity() ? 1U : 0U;
    last[p.pid()] = {i, p.pcr()};
  }
  ASSERT_EQ(judged.size(), 3u) << "a PCR PID per member";
  const mpegts::ProgramModel model = decode_psi(pkts);
  ASSERT_NE(model.find_service(201), nullptr);
  const std::uint16_t switched_pid = model.find_service(201)->pcr_pid;
  EXPECT_GE(discontinuities[switched_pid], 1u) << "the switch";
  for (const auto& [pid, n] : judged) {
    EXPECT_GT(n, 100u) << "PID " << pid;
    EXPECT_EQ(off[pid], 0u) << "PID " << pid << (pid == switched_pid ? " (switched)" : "")
                            << ": PCRs more than 500 ns off their byte position, of " << n << " (worst " << worst[pid]
                            << " ns)";
  }
}

// A member's PID rules put its PIDs where a downstream device expects them (here its video
// on 0x101, its audio on 0x302), and the MPTS must carry them there too, whichever member
// is learnt first (config/README). Another member whose own audio is on 0x101 is learnt a
// second earlier: its audio moves, not the rule's target. (The multiplex knew nothing of
// the members' rules: the member learnt first kept 0x101 and the rule's video went out on
// 0x102.)
TEST(Multiplex, AMembersPidRuleTargetsStayTheirsWhicheverMemberIsLearntFirst) {
  for (const bool rule_member_first : {false, true}) {
    SCOPED_TRACE(rule_member_first ? "the member with the rules learnt first" : "the other learnt first");
    auto cfgs = three_channels();
    cfgs.pop_back();
    cfgs[1].pid_rules = {mpegts::PidRule{0x100, false, 0x101}, mpegts::PidRule{0x101, false, 0x302}};
    MultiplexConfig mc = mux_config();
    mc.channels = {"one", "two"};
    Multiplex mux(mc, cfgs);
    auto channels = make_channels(cfgs, mux);
    Session r;
    r.sources = {source(kFiles[0]), source(kFiles[1])};
    for (auto& t : r.sources[rule_member_first ? 0 : 1].times) t += 1000 * kMs;
    run(channels, mux, r, 8000 * kMs, 7);
    const std::vector<Source>& sources = r.sources;
    const auto pkts = r.mux_out.packets();
    const mpegts::ProgramModel model = decode_psi(pkts);
    ASSERT_EQ(model.services.size(), 2u);
    const mpegts::Service* ruled = model.find_service(202);
    ASSERT_NE(ruled, nullptr);
    ASSERT_EQ(ruled->streams.size(), 2u);
    EXPECT_EQ(ruled->streams[0].pid, 0x101) << "the video, by the rule";
    EXPECT_EQ(ruled->streams[1].pid, 0x302) << "the audio, by the rule";
    std::set<std::uint16_t> pids;
    for (const auto& s : model.services) {
      EXPECT_TRUE(pids.insert(s.pmt_pid).second) << "PMT PID " << s.pmt_pid;
      for (const auto& es : s.streams) EXPECT_TRUE(pids.insert(es.pid).second) << "ES PID " << es.pid;
    }
    for (std::size_t k = 0; k < 2; ++k) {
      const mpegts::ProgramModel src = decode_psi(sources[k].packets);
      const mpegts::Service* svc = model.find_service(static_cast<std::uint16_t>(201 + k));
      ASSERT_NE(svc, nullptr);
      EXPECT_EQ(media_counts(pkts, *svc), media_counts(sources[k].packets, src.services[0])) << kFiles[k];
    }
    EXPECT_EQ(cc_errors(pkts), 0u);
  }
}

// pcr pacing follows the first service in the tables: until member 0 is learnt that is the
// first member learnt, whose PCRs are another encoder's clock. When member 0 is learnt the
// pacing PID changes and the schedule must start again from now (as after an input switch),
// not go on from the other member's last PCR by the difference between the two clocks: a
// member 0 whose clock is 600 ms ahead (nothing unusual between two encoders) would hold
// the whole MPTS back for 600 ms, every member's packets with it, a stall no set-top box
// rides out (and the 100 ms PCR repetition limit broken six times over).
TEST(Multiplex, PcrPacingDoesNotStallWhenTheFirstMemberIsLearntLast) {
  auto cfgs = three_channels();
  cfgs.pop_back();
  MultiplexConfig mc = mux_config(PacingMode::kPcr);
  mc.channels = {"one", "two"};
  Multiplex mux(mc, cfgs);
  auto channels = make_channels(cfgs, mux);
  std::vector<Source> sources = {source(kFiles[0]), source(kFiles[1])};
  // Member 1 starts at 0, member 0 at 1 s (so member 1 is learnt first and paces), its PCRs
  // 600 ms ahead of member 1's at the same instant.
  constexpr std::uint64_t kLate = 1000 * kMs;
  constexpr std::uint64_t kAheadTicks = 600 * 27'000;
  const auto first_pcr = [](const Source& s) {
    for (std::size_t i = 0; i < s.packets.size(); ++i)
      if (s.packets[i].has_pcr()) return std::pair<std::uint64_t, std::uint64_t>{s.packets[i].pcr(), s.times[i]};
    return std::pair<std::uint64_t, std::uint64_t>{0, 0};
  };
  const auto [pcr0, t0] = first_pcr(sources[0]);
  const auto [pcr1, t1] = first_pcr(sources[1]);
  // Member 1's PCR when member 0's first one arrives, plus 600 ms.
  const std::uint64_t wanted = pcr1 + (t0 + kLate - t1) * 27 / 1000 + kAheadTicks;
  for (auto& t : sources[0].times) t += kLate;
  for (auto& p : sources[0].packets)
    if (p.has_pcr()) p.set_pcr((p.pcr() + wanted - pcr0) % mpegts::kPcrWrap);
  Recorder out, own;
  for (std::uint64_t now = 0; now <= 8000 * kMs; now += 100'000) {
    for (std::size_t i = 0; i < sources.size(); ++i) {
      Source& s = sources[i];
      while (s.next < s.packets.size() && s.times[s.next] <= now) {
        const std::size_t n = std::min<std::size_t>(7, s.packets.size() - s.next);
        channels[i]->push(0, std::span(s.packets.data() + s.next, n), now);
        s.next += n;
      }
    }
    out.now = now;
    for (auto& ch : channels) ch->poll(now, own);
    mux.poll(now, out);
  }
  ASSERT_EQ(decode_psi(out.packets()).services.size(), 2u);
  // While both members feed it (0.5..6 s), each member's PCRs (every 20 ms in the sources)
  // leave every few tens of ms: none waits near 600 ms for the one before.
  std::map<std::uint16_t, std::uint64_t> last_sent;
  std::uint64_t worst_gap = 0, worst_at = 0;
  std::uint16_t worst_pid = 0;
  for (const auto& d : out.sent)
    for (const TsPacket& p : d.packets) {
      if (!p.has_pcr() || d.t < 500 * kMs || d.t > 6000 * kMs) continue;
      if (const auto it = last_sent.find(p.pid()); it != last_sent.end() && d.t - it->second > worst_gap) {
        worst_gap = d.t - it->second;
        worst_at = it->second;
        worst_pid = p.pid();
      }
      last_sent[p.pid()] = d.t;
    }
  EXPECT_EQ(last_sent.size(), 2u);
  EXPECT_LT(worst_gap, 100 * kMs) << "PID " << worst_pid << ": no PCR sent for " << worst_gap / kMs << " ms from "
                                  << worst_at / kMs << " ms";
  EXPECT_EQ(cc_errors(out.packets()), 0u);
}
