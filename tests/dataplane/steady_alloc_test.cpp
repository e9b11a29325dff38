// A channel's per-packet path (analyzer, selector, remux, pacer) allocates nothing once
// its input's tables are known, with the PSI/SI a broadcast multiplex carries: an SDT and
// a NIT of several packets each, an SDT "other" taking turns with the SDT actual on its
// PID, EIT present/following, and an input that loops (a CC jump on every PID). Counted
// by wrapping malloc, calloc and realloc for this test program (operator new and
// libdvbpsi come through them). A table change still allocates (libdvbpsi decodes it,
// the model is rebuilt): the test checks that too, so the counter is known to work.
//
// Not under AddressSanitizer, which owns malloc itself (the test is skipped there).
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tests_common.hpp"
#include "twincast/dataplane/channel.hpp"
#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/psi_tables.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define TWINCAST_COUNTS_ALLOCATIONS 0
#else
#define TWINCAST_COUNTS_ALLOCATIONS 1
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

#if TWINCAST_COUNTS_ALLOCATIONS
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);

void* malloc(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, size);
}
}
#endif

using namespace twincast;
using namespace twincast::dataplane;
using mpegts::TsPacket;

namespace {

constexpr std::uint64_t kMs = 1'000'000;

// Discards datagrams, counting them; allocates nothing.
struct CountingSink final : DatagramSink {
  std::uint64_t datagrams = 0;
  std::uint64_t packets = 0;
  void send(std::size_t, std::span<const TsPacket> p) override {
    ++datagrams;
    packets += p.size();
  }
};

std::vector<mpegts::Service> services(const std::string& suffix) {
  std::vector<mpegts::Service> out;
  for (std::uint16_t i = 0; i < 30; ++i) {
    mpegts::Service s;
    s.service_id = i == 0 ? 101 : static_cast<std::uint16_t>(200 + i);  // 101: the fixture's own
    s.name = (i == 0 ? std::string("Test One") : "Channel number " + std::to_string(i)) + suffix;
    s.provider = "Provider " + std::to_string(i % 3);
    s.lcn = static_cast<std::uint16_t>(i + 1);
    out.push_back(s);
  }
  return out;
}

// A long-form EIT present/following section for `service` (no events), CRC appended.
mpegts::Section eit_pf(std::uint16_t service, std::uint8_t section_number) {
  mpegts::Section s{0x4E, 0xF0, 0x00, static_cast<std::uint8_t>(service >> 8), static_cast<std::uint8_t>(service),
                    0xC1, section_number, 0x01, 0x00, 0x01, 0x00, 0x01, 0x01, 0x4E};
  const std::size_t len = s.size() + 4 - 3;
  s[1] = static_cast<std::uint8_t>(0xF0 | (len >> 8));
  s[2] = static_cast<std::uint8_t>(len);
  const std::uint32_t c = mpegts::crc32_mpeg(s);
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<std::uint8_t>(c >> sh));
  return s;
}

// h264_aac.ts with its one-packet SDT replaced, and null packets used for: a 30-service
// SDT actual and NIT (several packets each), an SDT other, and EIT p/f for two services.
struct Stream {
  std::vector<TsPacket> packets;
  std::vector<std::uint64_t> times;
  std::uint64_t duration_ns = 0;
  std::size_t sdt_repetitions = 0;
  std::size_t sdt_packets = 0;
  std::size_t nit_packets = 0;
};

Stream broadcast_stream(const std::string& suffix, std::uint8_t version) {
  Stream s;
  s.packets = test::read_packets(test::fixture("h264_aac.ts"));
  s.times = mpegts::file_times(s.packets).ns;
  s.duration_ns = s.times.back() + 10 * kMs;
  const auto svcs = services(suffix);
  mpegts::TableCarousel sdt(mpegts::kSdtPid, version), nit(mpegts::kNitPid), eit(mpegts::kEitPid);
  sdt.update([&](std::uint8_t v) { return mpegts::build_sdt(1, 0x2000, svcs, v); });
  nit.update([&](std::uint8_t v) { return mpegts::build_nit(0x3001, "TwinNet", 1, 0x2000, svcs, v); });
  eit.update([&](std::uint8_t) { return std::vector<mpegts::Section>{eit_pf(101, 0), eit_pf(101, 1), eit_pf(201, 0)}; });
  s.sdt_packets = sdt.packet_count();
  s.nit_packets = nit.packet_count();
  // SDT other (table 0x46): its own carousel would restart the PID's CC, so its packets
  // are stamped with the SDT actual's.
  mpegts::TableCarousel other(mpegts::kSdtPid);
  other.update([&](std::uint8_t v) {
    std::vector<mpegts::Service> none;
    auto secs = mpegts::build_sdt(2, 0x2001, none, v);
    for (auto& sec : secs) {
      sec[0] = 0x46;
      const std::uint32_t c = mpegts::crc32_mpeg(std::span(sec).first(sec.size() - 4));
      for (int k = 0; k < 4; ++k) sec[sec.size() - 4 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(c >> (24 - 8 * k));
    }
    return secs;
  });

  std::vector<TsPacket> queue;  // what the next null packets become
  std::vector<TsPacket> buf(16);
  std::uint8_t sdt_cc = 0;
  std::uint64_t next_sdt = 0, next_nit = 0, next_eit = 0;
  for (std::size_t i = 0; i < s.packets.size(); ++i) {
    TsPacket& p = s.packets[i];
    const std::uint64_t t = s.times[i];
    if (p.pid() == mpegts::kSdtPid) p = mpegts::make_null_packet();
    if (t >= next_sdt) {
      for (mpegts::TableCarousel* c : {&sdt, &other}) {
        const std::size_t n = c->packetize(buf);
        for (std::size_t k = 0; k < n; ++k) {
          buf[k].set_cc(sdt_cc);
          sdt_cc = static_cast<std::uint8_t>((sdt_cc + 1) & 0x0F);
          queue.push_back(buf[k]);
        }
      }
      ++s.sdt_repetitions;
      next_sdt = t + 200 * kMs;
    }
    if (t >= next_nit) {
      queue.insert(queue.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(nit.packetize(buf)));
      next_nit = t + 500 * kMs;
    }
    if (t >= next_eit) {
      queue.insert(queue.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(eit.packetize(buf)));
      next_eit = t + 100 * kMs;
    }
    if (p.pid() == mpegts::kNullPid && !queue.empty()) {
      p = queue.front();
      queue.erase(queue.begin());
    }
  }
  return s;
}

ChannelConfig channel_config(PacingMode pacing) {
  ChannelConfig c;
  c.id = "alloc";
  c.name = "Alloc";
  c.service_id = 5;
  c.pmt_pid = 0x1000;
  c.lcn = 5;
  InputConfig in;
  in.name = "in";
  c.inputs.push_back(in);
  OutputConfig o;
  o.pacing = pacing;
  c.outputs.push_back(o);
  return c;
}

// Feeds one pass of `s` in datagrams of 7 packets from `start_ns`, polling every 1 ms.
void play(Channel& ch, const Stream& s, std::uint64_t start_ns, CountingSink& sink) {
  std::uint64_t next_poll = start_ns;
  for (std::size_t i = 0; i < s.packets.size(); i += 7) {
    const std::size_t n = std::min<std::size_t>(7, s.packets.size() - i);
    const std::uint64_t now = start_ns + s.times[i + n - 1];
    ch.push(0, std::span(s.packets.data() + i, n), now);
    for (; next_poll <= now; next_poll += kMs) ch.poll(next_poll, sink);
  }
}

std::uint64_t allocations_while(const std::function<void()>& f) {
  g_allocations.store(0);
  g_counting.store(true);
  f();
  g_counting.store(false);
  return g_allocations.load();
}

}  // namespace

class SteadyState : public ::testing::TestWithParam<PacingMode> {};

TEST_P(SteadyState, ChannelAllocatesNothingOnceTheTablesAreKnown) {
  if (!TWINCAST_COUNTS_ALLOCATIONS) GTEST_SKIP() << "AddressSanitizer owns malloc";
  const Stream s = broadcast_stream("", 0);
  ASSERT_GE(s.sdt_packets, 3u);
  ASSERT_GE(s.nit_packets, 2u);
  ASSERT_GE(s.sdt_repetitions, 20u);
  Channel ch(channel_config(GetParam()));
  CountingSink sink;
  play(ch, s, 0, sink);  // learns the tables
  const mpegts::Analyzer& a = ch.input_analyzer(0);
  ASSERT_EQ(a.programs().services.size(), 1u);
  std::uint64_t start = s.duration_ns;
  // Three more passes: every PID's CC jumps where the input loops.
  const std::uint64_t steady = allocations_while([&] {
    for (int pass = 0; pass < 3; ++pass, start += s.duration_ns) play(ch, s, start, sink);
  });
  EXPECT_EQ(steady, 0u);
  EXPECT_GT(sink.datagrams, 1000u);
  EXPECT_EQ(ch.stats().dropped_queue_full, 0u);
  EXPECT_GE(a.count(mpegts::Check::kContinuityCountError), 3u);  // the loops were seen

  // The SDT changes (every name gets " HD", version 1): decoded, so allocations.
  const Stream changed = broadcast_stream(" HD", 1);
  const std::uint64_t on_change = allocations_while([&] { play(ch, changed, start, sink); });
  EXPECT_GT(on_change, 0u);
  ASSERT_EQ(a.programs().services.size(), 1u);
  EXPECT_EQ(a.programs().services[0].name, "Test One HD");
  start += changed.duration_ns;
  // ...and once known, nothing again.
  EXPECT_EQ(allocations_while([&] { play(ch, changed, start, sink); }), 0u);
}

INSTANTIATE_TEST_SUITE_P(Pacing, SteadyState, ::testing::Values(PacingMode::kPcr, PacingMode::kPassthrough),
                         [](const auto& p) { return p.param == PacingMode::kPcr ? "pcr" : "passthrough"; });
