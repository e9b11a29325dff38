// A test-only main: runs the data plane with one channel (one UDP/RTP input on the "in"
// port, one UDP/RTP output on the "out" port) from command-line options, until SIGTERM /
// SIGINT or --seconds, then prints the counters as one line of JSON on stdout.
//
//   dp_forwarder --in-dev net_af_packet0,iface=veth1 --in-ip 10.1.1.2 [--in-mac 02:..]
//                --out-dev net_af_packet1,iface=veth2 --out-ip 10.1.2.2
//                --input udp://239.1.1.1:5000[@source] --output udp://239.2.2.2:5000
//                [--ttl 4] [--pipeline channel|passthrough] [--seconds N] [--file-prefix P]
//
// The forwarding_ns_test integration test launches it inside a network namespace.
#include <rte_eal.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "twincast/dataplane/dataplane.hpp"

namespace dp = twincast::dataplane;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

dp::Ipv4 parse_ip(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) throw std::invalid_argument("bad IPv4 address: " + s);
  return ntohl(a.s_addr);
}

dp::Mac parse_mac(const std::string& s) {
  dp::Mac m{};
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    throw std::invalid_argument("bad MAC: " + s);
  for (int i = 0; i < 6; ++i) m[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v[i]);
  return m;
}

// "udp://239.1.1.1:5000" or "rtp://239.1.1.1:5000@10.0.0.1" (source-specific).
struct Url {
  bool rtp = false;
  dp::Ipv4 address = 0;
  std::uint16_t port = 0;
  dp::Ipv4 source = 0;
};
Url parse_url(std::string s) {
  Url u;
  if (s.rfind("udp://", 0) == 0) {
    s = s.substr(6);
  } else if (s.rfind("rtp://", 0) == 0) {
    u.rtp = true;
    s = s.substr(6);
  } else {
    throw std::invalid_argument("URL must be udp:// or rtp://: " + s);
  }
  if (const auto at = s.find('@'); at != std::string::npos) {
    u.source = parse_ip(s.substr(at + 1));
    s = s.substr(0, at);
  }
  const auto colon = s.find(':');
  if (colon == std::string::npos) throw std::invalid_argument("URL needs a port");
  u.address = parse_ip(s.substr(0, colon));
  u.port = static_cast<std::uint16_t>(std::stoul(s.substr(colon + 1)));
  return u;
}

// Sends every pushed packet on at the next poll, 7 to a datagram: no selector, no pacing.
class Passthrough final : public dp::ChannelPipeline {
 public:
  explicit Passthrough(std::size_t n_outputs) : n_outputs_(n_outputs) { queue_.reserve(4096); }
  void push(std::size_t input, std::span<const twincast::mpegts::TsPacket> p, std::uint64_t) override {
    if (input != 0) return;
    for (const auto& x : p) {
      if (queue_.size() < queue_.capacity()) queue_.push_back(x);
    }
  }
  void poll(std::uint64_t, dp::DatagramSink& sink) override {
    std::size_t i = 0;
    for (; i + 7 <= queue_.size(); i += 7) {
      for (std::size_t o = 0; o < n_outputs_; ++o) sink.send(o, std::span(queue_).subspan(i, 7));
    }
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(i));
  }

 private:
  std::size_t n_outputs_;
  std::vector<twincast::mpegts::TsPacket> queue_;
};

void print_stats(dp::Dataplane& d) {
  std::ostringstream o;
  o << "{\"ports\":[";
  for (std::size_t p = 0; p < d.port_count(); ++p) {
    const dp::PortStats s = d.port_stats(p);
    o << (p ? "," : "") << "{\"rx_packets\":" << s.rx_packets << ",\"tx_packets\":" << s.tx_packets
      << ",\"rx_missed\":" << s.rx_missed << ",\"arp_replies\":" << s.arp_replies
      << ",\"igmp_queries\":" << s.igmp_queries << ",\"igmp_reports_sent\":" << s.igmp_reports_sent
      << ",\"igmp_other\":" << s.igmp_other << ",\"igmp_compat_reports\":" << s.igmp_compat_reports
      << ",\"igmp_ssm_as_asm\":" << s.igmp_ssm_as_asm << ",\"igmp_version\":" << unsigned{s.igmp_version}
      << ",\"drops\":{";
    for (std::size_t r = 0; r < dp::kDropReasonCount; ++r) {
      o << (r ? "," : "") << '"' << dp::drop_reason_name(static_cast<dp::DropReason>(r)) << "\":" << s.drops[r];
    }
    o << "}}";
  }
  const dp::InputStats in = d.input_stats(0, 0);
  o << "],\"input\":{\"datagrams\":" << in.datagrams << ",\"packets\":" << in.packets
    << ",\"rtp_out_of_order\":" << in.rtp_out_of_order << ",\"rtp_duplicates\":" << in.rtp_duplicates << "}}";
  std::cout << o.str() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> opt = {{"--ttl", "4"}, {"--pipeline", "channel"}, {"--seconds", "0"},
                                            {"--file-prefix", "tcdp_fwd_" + std::to_string(getpid())},
                                            {"--lcores", "0,1"}};
  for (int i = 1; i + 1 < argc; i += 2) opt[argv[i]] = argv[i + 1];
  try {
    for (const char* k : {"--in-dev", "--in-ip", "--out-dev", "--out-ip", "--input", "--output"}) {
      if (opt.count(k) == 0) throw std::invalid_argument(std::string("missing ") + k);
    }
    dp::ApplianceConfig c;
    c.eal.lcores = opt["--lcores"];
    c.eal.memory_mb = 256;
    c.eal.file_prefix = opt["--file-prefix"];
    dp::PortConfig in_port;
    in_port.name = "in";
    in_port.device = opt["--in-dev"];
    in_port.address = parse_ip(opt["--in-ip"]);
    if (opt.count("--in-mac") != 0) in_port.mac = parse_mac(opt["--in-mac"]);
    in_port.mbufs = 4095;
    dp::PortConfig out_port = in_port;
    out_port.name = "out";
    out_port.device = opt["--out-dev"];
    out_port.address = parse_ip(opt["--out-ip"]);
    out_port.mac.reset();
    if (opt.count("--out-mac") != 0) out_port.mac = parse_mac(opt["--out-mac"]);
    c.ports = {in_port, out_port};

    dp::ChannelConfig ch;
    ch.id = "fwd";
    const Url iu = parse_url(opt["--input"]);
    dp::InputConfig in;
    in.name = "in0";
    in.kind = iu.rtp ? dp::InputKind::kRtp : dp::InputKind::kUdp;
    in.port = "in";
    in.address = iu.address;
    in.udp_port = iu.port;
    in.source = iu.source;
    ch.inputs.push_back(in);
    const Url ou = parse_url(opt["--output"]);
    dp::OutputConfig out;
    out.kind = ou.rtp ? dp::OutputKind::kRtp : dp::OutputKind::kUdp;
    out.port = "out";
    out.address = ou.address;
    out.udp_port = ou.port;
    out.ttl = static_cast<std::uint8_t>(std::stoul(opt["--ttl"]));
    ch.outputs.push_back(out);
    c.channels.push_back(ch);

    dp::init_eal(c, argv[0]);
    dp::PipelineFactory factory = dp::make_channel_pipeline;
    if (opt["--pipeline"] == "passthrough") {
      factory = [](const dp::ChannelConfig& cc) { return std::make_unique<Passthrough>(cc.outputs.size()); };
    }
    {
      dp::Dataplane d(c, factory);
      std::signal(SIGTERM, on_signal);
      std::signal(SIGINT, on_signal);
      d.start();
      std::cerr << "dp_forwarder: running" << std::endl;
      const auto seconds = std::stoul(opt["--seconds"]);
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
      while (!g_stop.load() && (seconds == 0 || std::chrono::steady_clock::now() < until)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      d.stop();
      print_stats(d);
    }
    rte_eal_cleanup();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "dp_forwarder: " << e.what() << std::endl;
    return 1;
  }
}
