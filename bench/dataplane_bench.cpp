// TS throughput of the whole data plane on one worker core, with DPDK virtual devices:
//
//   net_pcap (rx_pcap=FILE, infinite_rx=1) -> Dataplane worker loop (RX burst, parse,
//   classify, copy, channel pipeline, TX build) -> net_null (no-rx=1)
//
// The pcap holds UDP datagrams of 7 TS packets (1316 bytes of payload) addressed to the
// channel's input (239.1.1.1:5000), built from --input=FILE.ts (or a synthetic stream).
// The channel's output uses passthrough pacing, so nothing waits for a PCR: the rate is
// what the worker core sustains. Each repetition builds a Dataplane, starts the worker,
// lets it warm up, then reads the port and input counters over a fixed time.
//
//   dataplane_bench [--input=FILE.ts] [--pcap=OUT.pcap] [--seconds=2] [--warmup=0.5]
//                   [--max-datagrams=8192] [--hugepages] [Google Benchmark flags]
//
// --hugepages: EAL memory from hugetlbfs (2 MB pages, as in production; needs free
// hugepages) instead of --no-huge.
//
// Benchmarks:
//   BM_Dataplane/channel  the production pipeline (dataplane::Channel: selector, analyzer,
//                         remux, passthrough pacer)
//   BM_Dataplane/relay    a stand-in pipeline that sends every datagram on as it came: the
//                         worker's own RX/TX cost without the channel
//   BM_Dataplane/drop     a stand-in pipeline that drops everything: the RX side alone (PMD RX,
//                         parse, classify, mbufs freed)
//   BM_Dataplane/analyze  the channel's analyzer and remux alone, nothing queued, paced or
//                         sent (the remux still copies each kept packet into its output):
//                         the floor of any channel design that keeps the remux's copy
//   BM_Dataplane/inplace  the analyzer and the remux's header work (continuity counter,
//                         PID) done in place in the RX mbuf, nothing copied, queued or sent:
//                         the floor of a channel that copies nothing
// channel minus relay is what the channel costs beyond forwarding; bench/compare_testpmd adds
// dpdk-testpmd (io forwarding on the same vdevs) for what the PMDs alone cost.
#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "twincast/dataplane/dataplane.hpp"
#include "twincast/dataplane/net.hpp"
#include "twincast/mpegts/aligner.hpp"
#include "twincast/mpegts/analyzer.hpp"
#include "twincast/mpegts/psi_tables.hpp"
#include "twincast/mpegts/remux.hpp"

namespace twincast::dataplane {
namespace {

using mpegts::TsPacket;

constexpr Ipv4 kPeerIp = net::ipv4(10, 9, 0, 1);
constexpr Ipv4 kOurIp = net::ipv4(10, 9, 0, 2);
constexpr Ipv4 kGroupIn = net::ipv4(239, 1, 1, 1);
constexpr Ipv4 kGroupOut = net::ipv4(239, 2, 2, 2);
constexpr std::uint16_t kUdpPort = 5000;
constexpr std::size_t kTsPerDatagram = 7;
constexpr Mac kPeerMac = {0x02, 0x74, 0x63, 0x00, 0x00, 0x01};

struct Options {
  std::string input;
  std::string pcap;
  double seconds = 2.0;
  double warmup = 0.5;
  std::size_t max_datagrams = 8192;
  bool hugepages = false;  // --hugepages: EAL memory in 2 MB pages (hugetlbfs), as in production
};
Options g_options;
std::size_t g_frames = 0;  // datagrams in the pcap

std::vector<TsPacket> load_ts(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "dataplane_bench: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<TsPacket> packets;
  mpegts::PacketAligner a;
  auto sink = [&](const TsPacket& p) { packets.push_back(p); };
  a.push(bytes, sink);
  a.flush(sink);
  return packets;
}

// One service (PMT 0x1000, video 0x100 with a PCR every 20 packets, audio 0x101), PAT and
// PMT every ~100 ms at 8 Mbit/s: enough for the remux to pass everything on.
std::vector<TsPacket> synthesize(std::size_t n_packets) {
  mpegts::Service svc;
  svc.service_id = 1;
  svc.pmt_pid = 0x1000;
  svc.pcr_pid = 0x100;
  svc.streams = {{.pid = 0x100, .stream_type = 0x1B, .codec = mpegts::Codec::kH264},
                 {.pid = 0x101, .stream_type = 0x0F, .codec = mpegts::Codec::kAac}};
  mpegts::TableCarousel pat(mpegts::kPatPid), pmt(0x1000);
  pat.update([&](std::uint8_t v) { return mpegts::build_pat(1, {{1, 0x1000}}, v); });
  pmt.update([&](std::uint8_t v) { return mpegts::build_pmt(svc, v); });
  std::vector<TsPacket> out;
  std::vector<TsPacket> tables(8);
  std::uint8_t cc_v = 0;
  std::uint8_t cc_a = 0;
  std::uint64_t pcr = 0;
  for (std::size_t i = 0; out.size() < n_packets; ++i) {
    if (i % 530 == 0) {
      std::size_t n = pat.packetize(tables);
      n += pmt.packetize(std::span(tables).subspan(n));
      out.insert(out.end(), tables.begin(), tables.begin() + static_cast<std::ptrdiff_t>(n));
    }
    TsPacket p = mpegts::make_null_packet();
    const bool audio = i % 10 == 9;
    p.set_pid(audio ? 0x101 : 0x100);
    p.set_cc(audio ? cc_a++ : cc_v++);
    p.set_payload_unit_start(i % 50 == 0);
    if (!audio && i % 20 == 0) {
      p.bytes[3] = static_cast<std::uint8_t>(0x30 | p.cc());
      p.bytes[4] = 7;
      p.bytes[5] = 0x10;
      pcr += 27'000'000ULL * 188 * 8 * 20 / 8'000'000;
      p.set_pcr(pcr);
    }
    out.push_back(p);
  }
  return out;
}

void put32(std::ofstream& f, std::uint32_t v) { f.write(reinterpret_cast<const char*>(&v), sizeof v); }

// A classic pcap (microseconds, Ethernet) of UDP datagrams of 7 TS packets to the input.
std::size_t write_pcap(const std::vector<TsPacket>& packets, const std::string& path, std::size_t max_datagrams) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) {
    std::fprintf(stderr, "dataplane_bench: cannot write %s\n", path.c_str());
    std::exit(2);
  }
  for (std::uint32_t v : {0xa1b2c3d4u, 0x00040002u, 0u, 0u, 65535u, 1u}) put32(f, v);
  net::UdpFrame uf;
  uf.dst_mac = net::multicast_mac(kGroupIn);
  uf.src_mac = kPeerMac;
  uf.src_ip = kPeerIp;
  uf.dst_ip = kGroupIn;
  uf.src_port = 40000;
  uf.dst_port = kUdpPort;
  uf.ttl = 8;
  constexpr std::size_t kPayload = kTsPerDatagram * mpegts::kPacketSize;
  std::vector<std::uint8_t> frame(net::udp_headers_size(0) + kPayload);
  std::size_t n = 0;
  for (std::size_t at = 0; at + kTsPerDatagram <= packets.size() && n < max_datagrams; at += kTsPerDatagram, ++n) {
    uf.identification = static_cast<std::uint16_t>(n);
    const std::size_t h = net::write_udp_headers(frame, uf, kPayload);
    std::memcpy(frame.data() + h, packets.data() + at, kPayload);
    put32(f, static_cast<std::uint32_t>(n / 1000));           // seconds
    put32(f, static_cast<std::uint32_t>((n % 1000) * 1000));  // microseconds
    put32(f, static_cast<std::uint32_t>(frame.size()));
    put32(f, static_cast<std::uint32_t>(frame.size()));
    f.write(reinterpret_cast<const char*>(frame.data()), static_cast<std::streamsize>(frame.size()));
  }
  return n;
}

// The stand-in: every pushed datagram is sent on at the next poll, unchanged. Holds one RX
// burst's worth (the worker pushes a whole burst, then polls).
class Relay final : public ChannelPipeline {
 public:
  void push(std::size_t, std::span<const TsPacket> packets, std::uint64_t) override {
    if (n_ == held_.size()) return;
    Held& h = held_[n_++];
    h.n = std::min(packets.size(), h.packets.size());
    std::copy_n(packets.begin(), h.n, h.packets.begin());
  }
  void poll(std::uint64_t, DatagramSink& sink) override {
    for (std::size_t i = 0; i < n_; ++i) sink.send(0, std::span<const TsPacket>(held_[i].packets.data(), held_[i].n));
    n_ = 0;
  }

 private:
  struct Held {
    std::array<TsPacket, kTsPerDatagram> packets;
    std::size_t n = 0;
  };
  std::array<Held, 64> held_{};
  std::size_t n_ = 0;
};

// The floor: every pushed datagram is dropped (the worker's input counters count it). What is left is the
// RX side alone: the PMD's RX, Ethernet/IPv4/UDP parse, classify, mbufs freed.
class Drop final : public ChannelPipeline {
 public:
  void push(std::size_t, std::span<const TsPacket>, std::uint64_t) override {}
  void poll(std::uint64_t, DatagramSink&) override {}
};
// The channel's per-packet work and nothing else: the TR 101 290 analyzer and the remux
// (configured as dataplane::Channel configures it for this channel) run on every pushed
// datagram, the remux writing into a small buffer that stays in L1; nothing is queued,
// paced, copied into a TX mbuf or sent. A channel that keeps the remux as it is (reading
// every kept packet and writing it out) cannot cost less than this.
class Analyze final : public ChannelPipeline {
 public:
  Analyze() : remux_(config()), out_(kTsPerDatagram * remux_.max_output_per_push()) {}
  void push(std::size_t, std::span<const TsPacket> packets, std::uint64_t now) override {
    analyzer_.push(packets, now);
    remux_.push(0, packets, now, out_);
  }
  void poll(std::uint64_t, DatagramSink&) override {}

 private:
  static mpegts::RemuxConfig config() {
    mpegts::RemuxConfig c;
    c.sdt = true;
    c.services.push_back(mpegts::RemuxServiceConfig{.name = "bench"});
    return c;
  }
  mpegts::Analyzer analyzer_;
  mpegts::Remuxer remux_;
  std::vector<TsPacket> out_;
};

// The bound for a channel that never copies its packets: the same analyzer, then the
// remux's header work done in place in the RX mbuf: every packet but the null ones keeps
// its PID (a table lookup, as a PID remap would be) and gets the output's continuity
// counter. Nothing is copied, queued, paced or sent, and no PSI is regenerated. A
// zero-copy channel would add to this at least the send of the received mbuf (new
// Ethernet/IPv4/UDP headers, TX burst), the compaction of the datagrams that held null
// packets, and a pacer that queues mbufs; so it could not run faster than this.
class InPlace final : public ChannelPipeline {
 public:
  InPlace() {
    for (std::uint16_t pid = 0; pid < mpegts::kPidCount; ++pid) map_[pid] = pid;
    map_[mpegts::kNullPid] = kDropped;
  }
  void push(std::size_t, std::span<const TsPacket> packets, std::uint64_t now) override {
    analyzer_.push(packets, now);
    // The worker hands the packets over as const: they are the RX mbuf's, which this
    // stand-in owns until the worker frees it after the burst.
    for (const TsPacket& in : packets) {
      auto& p = const_cast<TsPacket&>(in);
      const std::uint16_t to = map_[p.pid()];
      if (to == kDropped) continue;
      std::uint8_t& cc = cc_[to];
      if ((p.bytes[3] & 0x10) != 0) cc = static_cast<std::uint8_t>((cc + 1) & 0x0F);
      p.bytes[1] = static_cast<std::uint8_t>((p.bytes[1] & 0xE0) | (to >> 8));
      p.bytes[2] = static_cast<std::uint8_t>(to & 0xFF);
      p.bytes[3] = static_cast<std::uint8_t>((p.bytes[3] & 0xF0) | cc);
    }
  }
  void poll(std::uint64_t, DatagramSink&) override {}

 private:
  static constexpr std::uint16_t kDropped = 0xFFFF;
  mpegts::Analyzer analyzer_;
  std::array<std::uint16_t, mpegts::kPidCount> map_{};
  std::array<std::uint8_t, mpegts::kPidCount> cc_{};
};

enum class Mode { kChannel, kRelay, kDrop, kAnalyze, kInPlace };

struct Snapshot {
  PortStats in;
  PortStats out;
  InputStats input;
  ChannelStats channel;
  std::chrono::steady_clock::time_point at;
  std::uint64_t worker_cpu_ns = 0;
  WorkerStats worker;
};

// The CPU time the worker thread (rte-worker-1) got so far, from the scheduler
// (/proc/self/task/TID/schedstat, first field): the machine is shared, and a worker that
// lost its core for a while shows it as cpu_share < 1. 0 when unknown.
std::uint64_t worker_cpu_ns() {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "rte-worker-1") continue;
    std::ifstream sched(task.path() / "schedstat");
    std::uint64_t ns = 0;
    sched >> ns;
    return ns;
  }
  return 0;
}

struct RunResult {
  double seconds = 0;
  double datagrams = 0;      // UDP datagrams of TS received and classified to the input
  double ts_in = 0;          // TS packets handed to the channel
  double ts_out = 0;         // TS packets in the transmitted datagrams
  double tx_frames = 0;
  double lost = 0;           // no mbuf, TX refused, channel queue full
  double rx_nombuf = 0;
  double worker_cpu_seconds = 0;  // 0: unknown
  double worker_busy_share = 0;   // what twincast_worker_busy/poll_seconds_total say over the run
};

std::uint32_t pool_size_for(std::size_t frames) {
  // The pcap PMD keeps every frame of the file in an mbuf of the RX pool (infinite_rx);
  // the worker needs a few bursts more.
  std::uint32_t n = 1;
  while (n < frames + 8192) n <<= 1;
  return n - 1;
}

Snapshot snapshot(Dataplane& dp) {
  return Snapshot{dp.port_stats(0), dp.port_stats(1), dp.input_stats(0, 0), dp.pipeline(0).stats(),
                  std::chrono::steady_clock::now(), worker_cpu_ns(), dp.worker_stats()};
}

RunResult run_dataplane(Mode mode) {
  static int instance = 0;
  const int n = instance++;
  ApplianceConfig config;
  PortConfig in;
  in.name = "in";
  in.device = "net_pcap" + std::to_string(n) + ",rx_pcap=" + g_options.pcap + ",infinite_rx=1";
  in.address = kOurIp;
  in.mbufs = pool_size_for(g_frames);
  PortConfig out;
  out.name = "out";
  out.device = "net_null" + std::to_string(n) + ",no-rx=1";
  out.address = kOurIp;
  config.ports = {in, out};
  ChannelConfig ch;
  ch.id = "bench";
  ch.name = "bench";
  InputConfig input;
  input.name = "udp";
  input.port = "in";
  input.address = kGroupIn;
  input.udp_port = kUdpPort;
  ch.inputs = {input};
  OutputConfig output;
  output.port = "out";
  output.address = kGroupOut;
  output.udp_port = kUdpPort;
  output.pacing = PacingMode::kPassthrough;
  ch.outputs = {output};
  config.channels = {ch};

  PipelineFactory factory = make_channel_pipeline;
  if (mode == Mode::kRelay) factory = [](const ChannelConfig&) { return std::make_unique<Relay>(); };
  if (mode == Mode::kDrop) factory = [](const ChannelConfig&) { return std::make_unique<Drop>(); };
  if (mode == Mode::kInPlace) factory = [](const ChannelConfig&) { return std::make_unique<InPlace>(); };
  if (mode == Mode::kAnalyze) factory = [](const ChannelConfig&) { return std::make_unique<Analyze>(); };
  Dataplane dp(config, factory);
  dp.start();
  std::this_thread::sleep_for(std::chrono::duration<double>(g_options.warmup));
  const Snapshot a = snapshot(dp);
  std::this_thread::sleep_for(std::chrono::duration<double>(g_options.seconds));
  const Snapshot b = snapshot(dp);
  dp.stop();

  auto d = [](std::uint64_t x1, std::uint64_t x0) { return static_cast<double>(x1 - x0); };
  RunResult r;
  r.seconds = std::chrono::duration<double>(b.at - a.at).count();
  r.datagrams = d(b.input.datagrams, a.input.datagrams);
  r.ts_in = d(b.input.packets, a.input.packets);
  r.tx_frames = d(b.out.tx_packets, a.out.tx_packets);
  const double header = static_cast<double>(net::udp_headers_size(0));
  r.ts_out = (d(b.out.tx_bytes, a.out.tx_bytes) - header * r.tx_frames) / mpegts::kPacketSize;
  r.lost = d(b.out.drop(DropReason::kTxNoMbuf), a.out.drop(DropReason::kTxNoMbuf)) +
           d(b.out.drop(DropReason::kTxRefused), a.out.drop(DropReason::kTxRefused)) +
           d(b.channel.dropped_queue_full, a.channel.dropped_queue_full);
  r.rx_nombuf = d(b.in.rx_nombuf, a.in.rx_nombuf);
  if (a.worker_cpu_ns != 0 && b.worker_cpu_ns > a.worker_cpu_ns) r.worker_cpu_seconds = d(b.worker_cpu_ns, a.worker_cpu_ns) * 1e-9;
  if (b.worker.poll_ns > a.worker.poll_ns)
    r.worker_busy_share = d(b.worker.busy_ns, a.worker.busy_ns) / d(b.worker.poll_ns, a.worker.poll_ns);
  std::uint64_t other_drops = 0;
  for (std::size_t i = 0; i < kDropReasonCount; ++i) other_drops += b.in.drops[i] - a.in.drops[i];
  if (other_drops != 0) std::fprintf(stderr, "dataplane_bench: %llu input frames dropped\n",
                                     static_cast<unsigned long long>(other_drops));
  return r;
}

void BM_Dataplane(benchmark::State& state, Mode mode) {
  RunResult r;
  for (auto _ : state) {
    r = run_dataplane(mode);
    state.SetIterationTime(r.seconds);
  }
  const double s = r.seconds;
  state.counters["dgram_per_s"] = r.datagrams / s;
  state.counters["ts_in_per_s"] = r.ts_in / s;
  state.counters["ts_out_per_s"] = r.ts_out / s;
  state.counters["tx_frames_per_s"] = r.tx_frames / s;
  state.counters["gbit_ts_in"] = r.ts_in * mpegts::kPacketSize * 8 / s / 1e9;
  state.counters["gbit_ts_out"] = r.ts_out * mpegts::kPacketSize * 8 / s / 1e9;
  state.counters["ns_per_dgram"] = r.datagrams > 0 ? s * 1e9 / r.datagrams : 0;
  state.counters["lost"] = r.lost;
  state.counters["rx_nombuf"] = r.rx_nombuf;
  // Per second of the worker's CPU time: steadier than per wall second on a shared machine.
  state.counters["cpu_share"] = r.worker_cpu_seconds / s;
  state.counters["dgram_per_cpu_s"] = r.worker_cpu_seconds > 0 ? r.datagrams / r.worker_cpu_seconds : 0;
  // The worker's own load meter (/metrics twincast_worker_busy_seconds_total over
  // ..._poll_seconds_total): ~1 here, where the pcap PMD never runs dry.
  state.counters["busy_share"] = r.worker_busy_share;
}

}  // namespace
}  // namespace twincast::dataplane

using twincast::dataplane::BM_Dataplane;
using twincast::dataplane::Mode;
BENCHMARK_CAPTURE(BM_Dataplane, channel, Mode::kChannel)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dataplane, drop, Mode::kDrop)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dataplane, relay, Mode::kRelay)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dataplane, analyze, Mode::kAnalyze)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dataplane, inplace, Mode::kInPlace)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  namespace dp = twincast::dataplane;
  dp::Options& o = dp::g_options;
  std::vector<char*> rest{argv[0]};
  bool repetitions = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* key) { return a.substr(std::strlen(key)); };
    if (a.rfind("--input=", 0) == 0) o.input = value("--input=");
    else if (a.rfind("--pcap=", 0) == 0) o.pcap = value("--pcap=");
    else if (a.rfind("--seconds=", 0) == 0) o.seconds = std::stod(value("--seconds="));
    else if (a.rfind("--warmup=", 0) == 0) o.warmup = std::stod(value("--warmup="));
    else if (a.rfind("--max-datagrams=", 0) == 0) o.max_datagrams = std::stoul(value("--max-datagrams="));
    else if (a == "--hugepages") o.hugepages = true;
    else {
      if (a.rfind("--benchmark_repetitions", 0) == 0) repetitions = true;
      rest.push_back(argv[i]);
    }
  }
  // Medians of 5 unless told otherwise.
  static char reps[] = "--benchmark_repetitions=5";
  static char aggregates[] = "--benchmark_report_aggregates_only=true";
  if (!repetitions) {
    rest.push_back(reps);
    rest.push_back(aggregates);
  }
  if (o.pcap.empty()) o.pcap = "/tmp/dataplane_bench_" + std::to_string(getpid()) + ".pcap";
  const auto packets = o.input.empty() ? dp::synthesize(o.max_datagrams * dp::kTsPerDatagram) : dp::load_ts(o.input);
  dp::g_frames = dp::write_pcap(packets, o.pcap, o.max_datagrams);
  if (dp::g_frames == 0) {
    std::fprintf(stderr, "dataplane_bench: no datagrams to send\n");
    return 2;
  }
  std::fprintf(stderr, "dataplane_bench: %zu datagrams of 7 TS packets in %s (%s)\n", dp::g_frames, o.pcap.c_str(),
               o.input.empty() ? "synthetic stream" : o.input.c_str());

  dp::ApplianceConfig eal;
  eal.eal.lcores = "0,1";
  eal.eal.memory_mb = 1024;
  eal.eal.hugepages = o.hugepages;
  if (o.hugepages) eal.eal.extra_args.emplace_back("--huge-unlink");  // leave no files in hugetlbfs
  eal.eal.file_prefix = "tcbench_" + std::to_string(getpid());
  dp::init_eal(eal, "dataplane_bench");

  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  rte_eal_cleanup();
  return 0;
}
