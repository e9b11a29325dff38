// Nothing allocates on the packet path once an input's tables are known, with the PSI/SI
// a broadcast multiplex carries: an SDT and a NIT of several packets each, an SDT "other"
// taking turns with the SDT actual on its PID, EIT present/following, and an input that
// loops (a CC jump on every PID). Counted by wrapping malloc, calloc and realloc for this
// test program (operator new and libdvbpsi come through them).
//
// SteadyState: a Channel (analyzer, selector, remux, pacer) driven by the test. A table
// change still allocates (libdvbpsi decodes it, the model is rebuilt): checked too, so
// the counter is known to work.
// WorkerLoop: the whole Dataplane worker lcore (RX burst, parse, classify, channel, OTT
// feed, TX build, TX burst) at full speed on net_pcap (the stream replayed forever) to
// net_null, its allocations counted for one second on the worker's thread only.
//
// Not under AddressSanitizer, which owns malloc itself (the test is skipped there).
#include <gtest/gtest.h>
#include <pthread.h>
#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "dataplane/eal_harness.hpp"
#include "tests_common.hpp"
#include "twincast/dataplane/channel.hpp"
#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/net.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/psi_tables.hpp"

// A sanitizer's runtime owns malloc: no wrapping there (GCC says so with macros, clang
// with __has_feature).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TWINCAST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define TWINCAST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef TWINCAST_COUNTS_ALLOCATIONS
#define TWINCAST_COUNTS_ALLOCATIONS 1
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_allocations{0};
std::atomic<bool> g_one_thread{false};  // count only on g_thread
std::atomic<pthread_t> g_thread{};

inline void count_allocation() {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  if (g_one_thread.load(std::memory_order_relaxed) && pthread_self() != g_thread.load(std::memory_order_relaxed)) return;
  g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if TWINCAST_COUNTS_ALLOCATIONS
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);

void* malloc(std::size_t size) {
  count_allocation();
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) {
  count_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) {
  count_allocation();
  return __libc_realloc(p, size);
}
// The aligned ones too (aligned operator new comes through aligned_alloc).
void* memalign(std::size_t alignment, std::size_t size) {
  count_allocation();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) {
  count_allocation();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  count_allocation();
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
}
#endif

using namespace twincast;
using namespace twincast::dataplane;
using mpegts::TsPacket;

namespace {

constexpr std::uint64_t kMs = 1'000'000;

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new test::EalEnvironment("tcdp_alloc_", "dataplane_steady_alloc_test"));

// Discards datagrams, counting them; allocates nothing.
struct CountingSink final : DatagramSink {
  std::uint64_t datagrams = 0;
  void send(std::size_t, std::span<const TsPacket>) override { ++datagrams; }
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

// Allocations on this thread while f() runs (the EAL's own threads run in this program too).
std::uint64_t allocations_while(const std::function<void()>& f) {
  g_thread.store(pthread_self());
  g_allocations.store(0);
  g_one_thread.store(true);
  g_counting.store(true);
  f();
  g_counting.store(false);
  g_one_thread.store(false);
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

namespace {

constexpr Ipv4 kGroupIn = net::ipv4(239, 1, 1, 1);
constexpr std::uint16_t kPortIn = 5000;

void put32(std::ofstream& f, std::uint32_t v) { f.write(reinterpret_cast<const char*>(&v), sizeof v); }

// The stream as UDP datagrams of 7 packets to kGroupIn:kPortIn, in a classic pcap.
// The stream in UDP datagrams of 7 TS packets to the input (Ethernet frames).
std::vector<std::vector<std::uint8_t>> udp_frames(const Stream& s) {
  net::UdpFrame uf;
  uf.dst_mac = net::multicast_mac(kGroupIn);
  uf.src_mac = {0x02, 0x74, 0x63, 0x00, 0x00, 0x01};
  uf.src_ip = net::ipv4(10, 9, 0, 1);
  uf.dst_ip = kGroupIn;
  uf.src_port = 40000;
  uf.dst_port = kPortIn;
  uf.ttl = 8;
  constexpr std::size_t kPayload = 7 * mpegts::kPacketSize;
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::size_t at = 0; at + 7 <= s.packets.size(); at += 7) {
    std::vector<std::uint8_t>& frame = frames.emplace_back(net::udp_headers_size(0) + kPayload);
    uf.identification = static_cast<std::uint16_t>(frames.size() - 1);
    const std::size_t h = net::write_udp_headers(frame, uf, kPayload);
    std::memcpy(frame.data() + h, s.packets.data() + at, kPayload);
  }
  return frames;
}

// A classic pcap (microseconds, Ethernet) of those datagrams.
std::size_t write_pcap(const Stream& s, const std::filesystem::path& path) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  for (std::uint32_t v : {0xa1b2c3d4u, 0x00040002u, 0u, 0u, 65535u, 1u}) put32(f, v);
  const auto frames = udp_frames(s);
  for (std::size_t n = 0; n < frames.size(); ++n) {
    put32(f, static_cast<std::uint32_t>(n / 1000));
    put32(f, static_cast<std::uint32_t>((n % 1000) * 1000));
    put32(f, static_cast<std::uint32_t>(frames[n].size()));
    put32(f, static_cast<std::uint32_t>(frames[n].size()));
    f.write(reinterpret_cast<const char*>(frames[n].data()), static_cast<std::streamsize>(frames[n].size()));
  }
  return frames.size();
}

// One channel (passthrough, with HLS: the OTT feed too) from port "in" (`in_device`) to
// port "out" (`out_device`), for the real worker.
ApplianceConfig worker_config(const std::string& in_device, const std::string& out_device) {
  ApplianceConfig config;
  PortConfig in;
  in.name = "in";
  in.device = in_device;
  in.address = net::ipv4(10, 9, 0, 2);
  PortConfig out;
  out.name = "out";
  out.device = out_device;
  out.address = net::ipv4(10, 9, 0, 2);
  config.ports = {in, out};
  ChannelConfig ch = channel_config(PacingMode::kPassthrough);
  ch.inputs[0].port = "in";
  ch.inputs[0].address = kGroupIn;
  ch.inputs[0].udp_port = kPortIn;
  ch.outputs[0].port = "out";
  ch.outputs[0].address = net::ipv4(239, 2, 2, 2);
  ch.outputs[0].udp_port = 5000;
  ch.hls = true;
  config.channels = {ch};
  return config;
}

int note_thread(void*) {
  g_thread.store(pthread_self());
  return 0;
}

}  // namespace

TEST(WorkerLoop, AllocatesNothingAtFullSpeed) {
  if (!TWINCAST_COUNTS_ALLOCATIONS) GTEST_SKIP() << "AddressSanitizer owns malloc";
  const auto dir = test::temp_dir("steady_alloc");
  const Stream s = broadcast_stream("", 0);
  const std::size_t frames = write_pcap(s, dir / "in.pcap");
  ASSERT_GT(frames, 500u);

  // The pcap PMD keeps every frame in an mbuf (infinite_rx): the port's 8191 hold them and bursts.
  Dataplane dp(worker_config("net_pcap_alloc,rx_pcap=" + (dir / "in.pcap").string() + ",infinite_rx=1",
                             "net_null_alloc,no-rx=1"));
  // The worker lcore's thread, as the Dataplane will run on it.
  ASSERT_EQ(rte_eal_remote_launch(note_thread, nullptr, dp.worker_lcore()), 0);
  ASSERT_EQ(rte_eal_wait_lcore(dp.worker_lcore()), 0);
  dp.start();
  std::size_t chunks = 0;
  auto drain = [&] { dp.ott_feed(0)->read([&](const OttChunk&) { ++chunks; }); };
  // Drains the feed for at least `d` and until `done()` (the worker, which may lose its
  // core for seconds on a loaded machine, has done the work asked; a minute at most).
  const auto spin = [&](std::chrono::milliseconds d, const std::function<bool()>& done) {
    const auto until = std::chrono::steady_clock::now() + d;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until || (!done() && std::chrono::steady_clock::now() < give_up)) {
      drain();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  // Tables learnt, every path warm: the input looped a few times.
  spin(std::chrono::milliseconds(500), [&] { return dp.input_stats(0, 0).datagrams > 3 * frames; });
  const InputStats before = dp.input_stats(0, 0);
  g_allocations.store(0);
  g_one_thread.store(true);
  g_counting.store(true);
  // A second, and as long as the worker needs to loop the input many times (checked below).
  spin(std::chrono::milliseconds(1000), [&] { return dp.input_stats(0, 0).datagrams - before.datagrams > 10 * frames; });
  g_counting.store(false);
  g_one_thread.store(false);
  const InputStats after = dp.input_stats(0, 0);
  dp.stop();
  const std::uint64_t datagrams = after.datagrams - before.datagrams;
  std::printf("worker: %llu datagrams while counting, %llu allocations on its thread, %zu OTT chunks read\n",
              static_cast<unsigned long long>(datagrams), static_cast<unsigned long long>(g_allocations.load()), chunks);
  EXPECT_EQ(g_allocations.load(), 0u) << "in " << datagrams << " datagrams";
  EXPECT_GT(datagrams, 10 * frames) << "the input looped many times";
  EXPECT_GT(chunks, 1000u) << "the OTT feed ran";
  std::filesystem::remove_all(dir);
}

// The same with the OTT feed running while allocations are counted. At full speed (above)
// every RX burst is full, which the QoS takes for overload: it sheds the only HLS channel's
// feed after the first 100 ms and keeps it shed, so the packager's path is not what runs
// there. Here the test feeds a net_ring port a few datagrams at a time, never more than
// half a burst waiting, so the worker is not behind and the feed stays on.
TEST(WorkerLoop, AllocatesNothingWithTheOttFeedRunning) {
  if (!TWINCAST_COUNTS_ALLOCATIONS) GTEST_SKIP() << "AddressSanitizer owns malloc";
  const auto frames = udp_frames(broadcast_stream("", 0));
  ASSERT_GT(frames.size(), 500u);

  // net_ring: its TX ring is its RX ring, the test enqueues on it.
  Dataplane dp(worker_config("net_ring_alloc", "net_null_alloc2,no-rx=1"));
  rte_ring* ring = rte_ring_lookup("ETH_RXTX0_net_ring_alloc");
  ASSERT_NE(ring, nullptr) << "the net_ring PMD's ring name changed";
  rte_mempool* pool = dp.mempool(0);
  ASSERT_EQ(rte_eal_remote_launch(note_thread, nullptr, dp.worker_lcore()), 0);
  ASSERT_EQ(rte_eal_wait_lcore(dp.worker_lcore()), 0);
  dp.start();
  std::size_t chunks = 0;
  std::size_t next = 0;
  std::uint64_t fed = 0;
  bool fed_ok = true;
  // Feeds (4 datagrams whenever fewer than 16 wait: the worker takes up to a burst of 32)
  // and drains the feed for at least `d` and until `done()`; a minute at most.
  const auto run = [&](std::chrono::milliseconds d, const std::function<bool()>& done) {
    const auto until = std::chrono::steady_clock::now() + d;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (fed_ok && (std::chrono::steady_clock::now() < until || (!done() && std::chrono::steady_clock::now() < give_up))) {
      if (rte_ring_count(ring) < 16) {
        std::array<rte_mbuf*, 4> burst{};
        if (rte_pktmbuf_alloc_bulk(pool, burst.data(), burst.size()) != 0) {
          fed_ok = false;
          break;
        }
        for (rte_mbuf* m : burst) {
          const auto& f = frames[next++ % frames.size()];
          std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(f.size())), f.data(), f.size());
        }
        fed_ok = rte_ring_enqueue_bulk(ring, reinterpret_cast<void**>(burst.data()), burst.size(), nullptr) == burst.size();
        fed += burst.size();
      } else {
        std::this_thread::yield();
      }
      dp.ott_feed(0)->read([&](const OttChunk&) { ++chunks; });
    }
  };
  // Tables learnt, every path warm: the input looped a few times.
  run(std::chrono::milliseconds(500), [&] { return dp.input_stats(0, 0).datagrams > 3 * frames.size(); });
  const InputStats before = dp.input_stats(0, 0);
  const std::size_t chunks_before = chunks;
  g_allocations.store(0);
  g_one_thread.store(true);
  g_counting.store(true);
  run(std::chrono::milliseconds(1000), [&] { return dp.input_stats(0, 0).datagrams - before.datagrams > 3 * frames.size(); });
  g_counting.store(false);
  g_one_thread.store(false);
  const InputStats after = dp.input_stats(0, 0);
  const QosStats qos = dp.qos_stats();
  // What is still in the ring goes through before the stop (a guard: the worker may be off its core).
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       rte_ring_count(ring) != 0 && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  dp.stop();
  ASSERT_TRUE(fed_ok) << "no mbuf for the input, or its ring full";
  const std::uint64_t datagrams = after.datagrams - before.datagrams;
  const std::size_t chunks_counted = chunks - chunks_before;
  std::printf("worker: %llu datagrams while counting, %llu allocations on its thread, %zu OTT chunks read meanwhile, "
              "%llu overload windows\n",
              static_cast<unsigned long long>(datagrams), static_cast<unsigned long long>(g_allocations.load()),
              chunks_counted, static_cast<unsigned long long>(qos.overload_windows));
  EXPECT_EQ(g_allocations.load(), 0u) << "in " << datagrams << " datagrams";
  EXPECT_GT(datagrams, 3 * frames.size()) << "the input looped several times";
  EXPECT_EQ(qos.shed_tiers, 0u) << "the OTT feed was shed";
  EXPECT_GT(chunks_counted, 100u) << "the OTT feed ran while allocations were counted";
  // Every datagram fed reached the input (the port's RX also has the worker's own IGMP
  // reports: net_ring loops them back).
  EXPECT_EQ(dp.input_stats(0, 0).datagrams, fed);
}
