// The HLS packager's latency and memory (issue #5), on a real dataplane::OttFeed (EAL
// --no-huge, its own mempool) and the real HlsPackager with its own thread, as in twincastd.
//
//   hls_packager_bench --mode=latency --input=FILE.ts [--speed=1] [--segments=N] [--poll-us=100]
//   hls_packager_bench --mode=memory  --input=FILE.ts [--channels=8] [--seconds=40] [--dvr-dir=DIR] [--dvr-hours=0]
// both: [--segment-seconds=2] [--window=6] (ott.segment_seconds, ott.window_segments)
//
// latency: FILE's TS is cut into the feed's chunks (7 packets, as the worker makes them) and
// put into one channel's feed at `speed` x real time (the chunk's time from the file's
// PCRs). A first pass through a private mpegts::hls::Segmenter with the packager's
// settings tells which chunk completes each segment: the one whose push() delivers it,
// i.e. the chunk holding the first packet of the key frame that opens the next segment
// (the segmenter only knows a segment is over when that packet arrives). For every segment
// the bench takes t0 right after OttFeed::on_packets() returned for that chunk (the chunk
// is in the ring) and t1 when HlsPackager::get(channel, "live.m3u8", "") first returns a
// playlist listing the segment's URI; a watcher thread calls get() every `poll-us` (so t1
// is late by up to that plus one get()). Prints p50/p99/max of t1 - t0.
//
// memory: `channels` channels, each with its own feed, all fed the first `seconds` of FILE
// as fast as the packager drains them (ott.window_segments 6, dvr_hours 0, 2 s segments,
// memory_mb large enough not to bind). After the last chunk and the packager's last pass:
// the store's held bytes and segments per channel (channel_stats), and the growth of the
// heap in use (mallinfo2: arena + mmapped) and of VmRSS since before the channels existed,
// per channel. --dvr-dir: ott.dvr_dir (segments out of the live window go to DIR/<channel>/,
// emptied at start; the packager deletes its files when done); --dvr-hours: ott.dvr_hours
// (0: the live window and RFC 8216 6.2.2's 2 x window + 1). With them, the store's bytes and
// segments on disk too; the page cache they fill is the kernel's, not in VmRSS.
#include <malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "twincast/control/hls_packager.hpp"
#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/hls.hpp"

namespace tc = twincast::control;
namespace dp = twincast::dataplane;
namespace ts = twincast::mpegts;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kChunk = dp::OttFeed::kChunkPackets;

struct Options {
  std::string mode;
  std::string input;
  double speed = 1.0;
  std::size_t segments = 0;  // 0: as many as the file holds
  unsigned poll_us = 100;
  std::size_t channels = 8;
  double seconds = 40;
  std::uint32_t segment_seconds = 2;
  std::uint32_t window = 6;
  std::string dvr_dir;            // memory mode: ott.dvr_dir ("" = memory only)
  std::uint32_t dvr_hours = 0;    // memory mode: ott.dvr_hours
};

std::vector<ts::TsPacket> load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<ts::TsPacket> packets(bytes.size() / ts::kPacketSize);
  std::memcpy(packets.data(), bytes.data(), packets.size() * ts::kPacketSize);
  return packets;
}

std::span<const ts::TsPacket> chunk(const std::vector<ts::TsPacket>& p, std::size_t i) {
  const std::size_t at = i * kChunk;
  return {p.data() + at, std::min(kChunk, p.size() - at)};
}

dp::OttConfig ott_config(const Options& o, std::size_t channels) {
  dp::OttConfig c;
  c.segment_seconds = o.segment_seconds;
  c.window_segments = o.window;
  c.dvr_hours = o.dvr_hours;
  c.dvr_dir = o.dvr_dir;
  // 64 MB each: never binds here (but for hours of DVR in memory).
  c.memory_mb = static_cast<std::uint32_t>(64 * channels);
  return c;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

int latency(const Options& o, const std::vector<ts::TsPacket>& packets, rte_mempool* pool) {
  const std::size_t n_chunks = (packets.size() + kChunk - 1) / kChunk;
  const auto times = ts::file_times(packets);

  // Which chunk completes each segment, by the segmenter's own rules.
  std::vector<std::size_t> completing;  // by sequence
  {
    std::size_t current = 0;
    ts::hls::SegmenterConfig sc;
    sc.target_duration_s = static_cast<double>(o.segment_seconds);
    ts::hls::Segmenter seg(sc, [&](ts::hls::Segment&& s) {
      if (s.sequence == completing.size()) completing.push_back(current);
    });
    for (current = 0; current < n_chunks; ++current) seg.push(chunk(packets, current), 0);
  }
  std::size_t n_segments = completing.size();
  if (o.segments != 0) n_segments = std::min(n_segments, o.segments);
  if (n_segments == 0) {
    std::fprintf(stderr, "hls_packager_bench: no complete segment in the input\n");
    return 1;
  }
  std::fprintf(stderr, "hls_packager_bench: %zu chunks, %zu segments completed by the input, measuring %zu at %.1fx\n",
               n_chunks, completing.size(), n_segments, o.speed);

  dp::OttFeed feed("tcb_lat", 4096, pool);
  tc::HlsPackagerOptions po;
  po.first_sequence = 0;  // the watcher looks for seg-0.ts, seg-1.ts... (twincastd numbers from the clock's ms)
  tc::HlsPackager packager(ott_config(o, 1), po);
  packager.set_channels({tc::PackagedChannel{"hd", "HD", &feed}});
  packager.start();

  std::vector<std::atomic<std::int64_t>> t0(n_segments);  // ns since `base`, -1: not yet
  for (auto& t : t0) t.store(-1);
  std::vector<double> ms(n_segments, 0);
  std::size_t listed_early = 0;
  std::size_t missed = 0;
  const auto base = Clock::now();
  const auto since_base = [base] { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - base).count(); };

  std::thread watcher([&] {
    for (std::size_t s = 0; s < n_segments; ++s) {
      const std::string uri = "seg-" + std::to_string(s) + ".ts\n";
      while (true) {
        const std::int64_t start = t0[s].load(std::memory_order_acquire);
        const auto r = packager.get("hd", "live.m3u8", "");
        const bool listed = r && r->body && r->body->view().find(uri) != std::string_view::npos;
        if (listed) {
          const std::int64_t now = since_base();
          if (start < 0) {
            ++listed_early;  // listed before its completing chunk was put: a mapping error
            break;
          }
          ms[s] = static_cast<double>(now - start) / 1e6;
          break;
        }
        if (start >= 0 && since_base() - start > 5'000'000'000) {
          ++missed;  // not listed 5 s after its completing chunk
          ms[s] = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(o.poll_us));
      }
    }
  });

  const double first_ns = static_cast<double>(times.ns.empty() ? 0 : times.ns.front());
  const std::size_t last_chunk = completing[n_segments - 1];
  std::size_t next_segment = 0;
  std::uint64_t dropped_before = feed.stats().dropped_chunks;
  for (std::size_t i = 0; i <= last_chunk; ++i) {
    const double file_ns = static_cast<double>(times.ns[i * kChunk]) - first_ns;
    const auto due = base + std::chrono::nanoseconds(static_cast<std::int64_t>(file_ns / o.speed));
    if (due > Clock::now()) std::this_thread::sleep_until(due);
    feed.on_packets(0, chunk(packets, i), dp::Dataplane::now_ns());
    if (next_segment < n_segments && completing[next_segment] == i) {
      t0[next_segment].store(since_base(), std::memory_order_release);
      ++next_segment;
    }
  }
  watcher.join();
  packager.stop();
  const auto st = feed.stats();

  std::vector<double> v;
  for (double x : ms) {
    if (x > 0) v.push_back(x);
  }
  std::printf("segments measured: %zu (listed before their completing chunk: %zu; not listed within 5 s: %zu; "
              "feed drops: %llu)\n",
              v.size(), listed_early, missed, static_cast<unsigned long long>(st.dropped_chunks - dropped_before));
  if (v.empty()) return 1;
  std::printf("completing chunk -> listed in live.m3u8: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, min %.2f ms\n",
              percentile(v, 0.5), percentile(v, 0.9), percentile(v, 0.99), percentile(v, 1.0), percentile(v, 0.0));
  const auto cs = packager.channel_stats("hd");
  if (cs) std::printf("packager: %llu segments made\n", static_cast<unsigned long long>(cs->segments));
  return 0;
}

struct Usage {
  std::uint64_t heap = 0;   // malloc'd bytes in use: arenas + mmapped chunks
  std::uint64_t memfd = 0;  // bytes in the process's memfds (the segments the store holds)
  std::uint64_t rss = 0;
};

Usage usage() {
  Usage u;
  const struct mallinfo2 mi = mallinfo2();
  u.heap = mi.uordblks + mi.hblkhd;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    std::error_code e2;
    const auto target = std::filesystem::read_symlink(e.path(), e2).string();
    if (e2 || target.rfind("/memfd:", 0) != 0) continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) == 0) u.memfd += static_cast<std::uint64_t>(st.st_size);
  }
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) u.rss = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return u;
}

int memory(const Options& o, const std::vector<ts::TsPacket>& all, rte_mempool* pool) {
  const auto times = ts::file_times(all);
  std::size_t n_packets = all.size();
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (static_cast<double>(times.ns[i] - times.ns.front()) >= o.seconds * 1e9) {
      n_packets = i;
      break;
    }
  }
  const std::vector<ts::TsPacket> packets(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n_packets));
  const std::size_t n_chunks = (packets.size() + kChunk - 1) / kChunk;
  std::fprintf(stderr, "hls_packager_bench: %zu channels x %.0f s of the input (%zu chunks each)\n", o.channels,
               o.seconds, n_chunks);

  malloc_trim(0);
  const Usage before = usage();
  std::vector<std::unique_ptr<dp::OttFeed>> feeds;
  std::vector<tc::PackagedChannel> wanted;
  for (std::size_t c = 0; c < o.channels; ++c) {
    feeds.push_back(std::make_unique<dp::OttFeed>("tcb_mem" + std::to_string(c), 1024, pool));
    wanted.push_back(tc::PackagedChannel{"ch" + std::to_string(c), "Channel " + std::to_string(c), feeds.back().get()});
  }
  tc::HlsPackager packager(ott_config(o, o.channels));
  packager.set_channels(wanted);
  packager.start();
  // Faster than real time: bursts of 256 chunks per channel, then wait until the packager
  // drained the feeds (their rings hold 1024).
  constexpr std::size_t kBurst = 256;
  for (std::size_t i = 0; i < n_chunks; i += kBurst) {
    for (auto& f : feeds) {
      for (std::size_t j = i; j < std::min(n_chunks, i + kBurst); ++j) f->on_packets(0, chunk(packets, j), dp::Dataplane::now_ns());
    }
    for (auto& f : feeds) {
      while (f->queued() > kBurst) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  for (auto& f : feeds) {
    while (f->queued() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the last pass
  packager.stop();
  const Usage after = usage();

  std::uint64_t held_bytes = 0, held_segments = 0, dropped = 0, disk_bytes = 0, disk_segments = 0, disk_errors = 0;
  for (const auto& w : wanted) {
    const auto s = packager.channel_stats(w.id);
    if (!s) continue;
    held_bytes += s->window_bytes;  // in memory
    held_segments += s->held_segments - s->disk_segments;
    disk_bytes += s->disk_bytes;
    disk_segments += s->disk_segments;
    disk_errors += s->disk_errors;
  }
  for (const auto& f : feeds) dropped += f->stats().dropped_chunks;
  const auto cs = packager.channel_stats("ch0");
  const double n = static_cast<double>(o.channels);
  const double mb = 1024.0 * 1024.0;
  std::printf("input: %.2f Mbit/s of TS over the file (%zu packets in %.0f s)\n", times.rate_bps / 1e6, packets.size(),
              o.seconds);
  if (cs) {
    std::printf("per channel: %llu segments made, %.1f held in memory, %.2f MB of segments in memory (%.3f MB each), "
                "peak bandwidth %.2f Mbit/s\n",
                static_cast<unsigned long long>(cs->segments), static_cast<double>(held_segments) / n,
                static_cast<double>(held_bytes) / n / mb,
                static_cast<double>(held_bytes) / static_cast<double>(std::max<std::uint64_t>(1, held_segments)) / mb,
                static_cast<double>(cs->bandwidth_bps) / 1e6);
  }
  if (!o.dvr_dir.empty())
    std::printf("on disk (%s): %.1f segments, %.2f MB per channel; %llu write errors\n", o.dvr_dir.c_str(),
                static_cast<double>(disk_segments) / n, static_cast<double>(disk_bytes) / n / mb,
                static_cast<unsigned long long>(disk_errors));
  // The held segments live in memfds (sendfile), the rest on the heap: the memory a
  // channel costs is both.
  const double heap_mb = (static_cast<double>(after.heap) - static_cast<double>(before.heap)) / n / mb;
  const double memfd_mb = (static_cast<double>(after.memfd) - static_cast<double>(before.memfd)) / n / mb;
  std::printf("memory: +%.2f MB per channel = heap +%.2f MB + memfds +%.2f MB (%.2f MB over the held segments); "
              "VmRSS: +%.2f MB per channel\n",
              heap_mb + memfd_mb, heap_mb, memfd_mb, heap_mb + memfd_mb - static_cast<double>(held_bytes) / n / mb,
              (static_cast<double>(after.rss) - static_cast<double>(before.rss)) / n / mb);
  std::printf("feed drops: %llu chunks\n", static_cast<unsigned long long>(dropped));
  return dropped == 0 && disk_errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&](std::string_view key) -> const char* {
      return a.rfind(key, 0) == 0 ? argv[i] + key.size() : nullptr;
    };
    if (const char* v = value("--mode=")) {
      o.mode = v;
    } else if (const char* v2 = value("--input=")) {
      o.input = v2;
    } else if (const char* v3 = value("--speed=")) {
      o.speed = std::strtod(v3, nullptr);
    } else if (const char* v4 = value("--segments=")) {
      o.segments = std::strtoul(v4, nullptr, 10);
    } else if (const char* v5 = value("--poll-us=")) {
      o.poll_us = static_cast<unsigned>(std::strtoul(v5, nullptr, 10));
    } else if (const char* v6 = value("--channels=")) {
      o.channels = std::max<std::size_t>(1, std::strtoul(v6, nullptr, 10));
    } else if (const char* v7 = value("--seconds=")) {
      o.seconds = std::strtod(v7, nullptr);
    } else if (const char* v8 = value("--segment-seconds=")) {
      o.segment_seconds = static_cast<std::uint32_t>(std::strtoul(v8, nullptr, 10));
    } else if (const char* v9 = value("--window=")) {
      o.window = static_cast<std::uint32_t>(std::strtoul(v9, nullptr, 10));
    } else if (const char* v10 = value("--dvr-dir=")) {
      o.dvr_dir = v10;
    } else if (const char* v11 = value("--dvr-hours=")) {
      o.dvr_hours = static_cast<std::uint32_t>(std::strtoul(v11, nullptr, 10));
    } else {
      o.mode.clear();
      break;
    }
  }
  if ((o.mode != "latency" && o.mode != "memory") || o.input.empty() || o.speed <= 0) {
    std::fprintf(stderr,
                 "usage: hls_packager_bench --mode=latency --input=FILE.ts [--speed=1] [--segments=N] [--poll-us=100]\n"
                 "       hls_packager_bench --mode=memory --input=FILE.ts [--channels=8] [--seconds=40] [--dvr-dir=DIR]\n"
                 "                          [--dvr-hours=0]\n"
                 "  both: [--segment-seconds=2] [--window=6]\n");
    return 2;
  }
  const auto packets = load(o.input);
  if (packets.empty()) {
    std::fprintf(stderr, "hls_packager_bench: cannot read %s\n", o.input.c_str());
    return 2;
  }

  dp::ApplianceConfig eal;
  eal.eal.lcores = "0";
  eal.eal.memory_mb = 512;
  eal.eal.file_prefix = "tcpkbench_" + std::to_string(getpid());
  dp::init_eal(eal, "hls_packager_bench");
  rte_mempool* pool = rte_pktmbuf_pool_create("tcb_pk", 16383, 256, 0,
                                              static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + dp::OttFeed::kChunkBytes),
                                              SOCKET_ID_ANY);
  if (pool == nullptr) {
    std::fprintf(stderr, "hls_packager_bench: no mempool\n");
    return 1;
  }
  const int rc = o.mode == "latency" ? latency(o, packets, pool) : memory(o, packets, pool);
  rte_mempool_free(pool);
  rte_eal_cleanup();
  return rc;
}
