// ns per TS packet for the analyzer, the remux engine and both together, on a real
// stream (bench/compare_ffmpeg generates one with ffmpeg and compares with its
// copy-remux in the same run).
//
//   mpegts_bench --input=FILE.ts [Google Benchmark flags]
//
// Without --input it builds a synthetic 8 Mbit/s-like stream (one service, PSI every
// 100 ms) so the binary also runs on its own.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "twincast/mpegts/aligner.hpp"
#include "twincast/mpegts/analyzer.hpp"
#include "twincast/mpegts/psi_tables.hpp"
#include "twincast/mpegts/remux.hpp"

using namespace twincast::mpegts;

namespace {

struct Stream {
  std::vector<TsPacket> packets;
  std::vector<std::uint64_t> times;  // PcrClock times, as a file reader would give them
};

Stream& stream() {
  static Stream s;
  return s;
}

void load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "mpegts_bench: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  PacketAligner a;
  auto sink = [&](const TsPacket& p) { stream().packets.push_back(p); };
  a.push(bytes, sink);
  a.flush(sink);
}

// One service: PAT + PMT every 40 packets' worth of 100 ms, video on 0x100 with a PCR
// every 20 packets, audio on 0x101.
void synthesize() {
  Service svc;
  svc.service_id = 1;
  svc.pmt_pid = 0x1000;
  svc.pcr_pid = 0x100;
  svc.streams = {{.pid = 0x100, .stream_type = 0x1B, .codec = Codec::kH264},
                 {.pid = 0x101, .stream_type = 0x0F, .codec = Codec::kAac}};
  TableCarousel pat(kPatPid), pmt(0x1000);
  pat.update([&](std::uint8_t v) { return build_pat(1, {{1, 0x1000}}, v); });
  pmt.update([&](std::uint8_t v) { return build_pmt(svc, v); });
  std::uint8_t cc_v = 0, cc_a = 0;
  std::uint64_t pcr = 0;
  std::vector<TsPacket> tables(8);
  for (std::size_t i = 0; i < 200'000; ++i) {
    if (i % 530 == 0) {  // ~100 ms at 8 Mbit/s
      std::size_t n = pat.packetize(tables);
      n += pmt.packetize(std::span(tables).subspan(n));
      stream().packets.insert(stream().packets.end(), tables.begin(), tables.begin() + static_cast<std::ptrdiff_t>(n));
    }
    TsPacket p = make_null_packet();
    const bool audio = i % 10 == 9;
    p.set_pid(audio ? 0x101 : 0x100);
    p.set_cc(audio ? cc_a++ : cc_v++);
    p.set_payload_unit_start(i % 50 == 0);
    if (!audio && i % 20 == 0) {
      p.bytes[3] = static_cast<std::uint8_t>(0x30 | p.cc());
      p.bytes[4] = 7;
      p.bytes[5] = 0x10;
      pcr += 27'000'000ull * 188 * 8 * 20 / 8'000'000;
      p.set_pcr(pcr);
    }
    stream().packets.push_back(p);
  }
}

void prepare_times() {
  PcrClock clock;
  for (const auto& p : stream().packets) stream().times.push_back(clock.push(p));
}

void set_counters(benchmark::State& state) {
  const auto n = static_cast<double>(stream().packets.size());
  state.counters["ns_per_packet"] =
      benchmark::Counter(n, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["gbit"] = benchmark::Counter(n * 188 * 8 / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

RemuxConfig channel_config() {
  RemuxConfig cfg;
  cfg.services.push_back({.input = 0, .service_id = 0, .name = "bench"});
  return cfg;
}

void BM_Analyze(benchmark::State& state) {
  const auto& s = stream();
  for (auto _ : state) {
    auto an = std::make_unique<Analyzer>();
    for (std::size_t i = 0; i < s.packets.size(); ++i) an->push(s.packets[i], s.times[i]);
    benchmark::DoNotOptimize(an->count(Check::kContinuityCountError));
  }
  set_counters(state);
}

// As the data plane pushes: datagrams of 7 packets, each at the time of its first packet.
void BM_AnalyzeDatagrams(benchmark::State& state) {
  const auto& s = stream();
  constexpr std::size_t kPerDatagram = 7;
  for (auto _ : state) {
    auto an = std::make_unique<Analyzer>();
    for (std::size_t i = 0; i < s.packets.size(); i += kPerDatagram) {
      const std::size_t n = std::min(kPerDatagram, s.packets.size() - i);
      an->push(std::span<const TsPacket>(s.packets.data() + i, n), s.times[i]);
    }
    benchmark::DoNotOptimize(an->count(Check::kContinuityCountError));
  }
  set_counters(state);
}

void BM_Remux(benchmark::State& state) {
  const auto& s = stream();
  std::vector<TsPacket> out;
  for (auto _ : state) {
    Remuxer r(channel_config());
    out.resize(r.max_output_per_push());
    std::size_t total = 0;
    for (std::size_t i = 0; i < s.packets.size(); ++i) total += r.push(0, s.packets[i], s.times[i], out);
    benchmark::DoNotOptimize(total);
  }
  set_counters(state);
}

// What a channel costs per packet: analyze the input, remux it into the output.
void BM_AnalyzeAndRemux(benchmark::State& state) {
  const auto& s = stream();
  std::vector<TsPacket> out;
  for (auto _ : state) {
    auto an = std::make_unique<Analyzer>();
    Remuxer r(channel_config());
    out.resize(r.max_output_per_push());
    std::size_t total = 0;
    for (std::size_t i = 0; i < s.packets.size(); ++i) {
      an->push(s.packets[i], s.times[i]);
      total += r.push(0, s.packets[i], s.times[i], out);
    }
    benchmark::DoNotOptimize(total);
  }
  set_counters(state);
}

// Reading a byte stream into packets (what a file or SRT input adds).
void BM_Align(benchmark::State& state) {
  const auto& s = stream();
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(s.packets.data());
  const std::size_t len = s.packets.size() * kPacketSize;
  for (auto _ : state) {
    PacketAligner a;
    std::uint64_t n = 0;
    auto sink = [&](const TsPacket& p) { n += p.pid(); };
    for (std::size_t off = 0; off < len; off += 1316) a.push(std::span(bytes + off, std::min<std::size_t>(1316, len - off)), sink);
    benchmark::DoNotOptimize(n);
  }
  set_counters(state);
}

}  // namespace

BENCHMARK(BM_Align)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Analyze)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AnalyzeDatagrams)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Remux)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AnalyzeAndRemux)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  std::string input;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--input=", 8) == 0) input = argv[i] + 8;
    else rest.push_back(argv[i]);
  }
  if (input.empty()) synthesize();
  else load(input);
  prepare_times();
  std::fprintf(stderr, "mpegts_bench: %zu packets (%s)\n", stream().packets.size(), input.empty() ? "synthetic" : input.c_str());
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
