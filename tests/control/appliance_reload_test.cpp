// The real control::Appliance in this process (EAL without hugepages, net_pcap and net_null
// ports, no root): what a reload of its file shows an operator in status().
#include "twincast/control/appliance.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests_common.hpp"
#include "twincast/control/config.hpp"
#include "twincast/dataplane/net.hpp"
#include "twincast/mpegts/packet.hpp"

namespace twincast::control {
namespace {

namespace fs = std::filesystem;
namespace dp = twincast::dataplane;

std::uint16_t free_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// `datagrams` UDP datagrams of 7 null packets from 10.50.0.1 to `group`:5000, as a pcap
// the port reads once.
void write_pcap(const fs::path& path, dp::Ipv4 group, std::size_t datagrams) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  auto put32 = [&](std::uint32_t v) { f.write(reinterpret_cast<const char*>(&v), sizeof v); };
  for (std::uint32_t v : {0xa1b2c3d4U, 0x00040002U, 0U, 0U, 65535U, 1U}) put32(v);
  dp::net::UdpFrame uf;
  uf.dst_mac = dp::net::multicast_mac(group);
  uf.src_mac = {0x02, 0x74, 0x63, 0x00, 0x00, 0x01};
  uf.src_ip = dp::net::ipv4(10, 50, 0, 1);
  uf.dst_ip = group;
  uf.src_port = 40000;
  uf.dst_port = 5000;
  uf.ttl = 8;
  constexpr std::size_t kPayload = 7 * mpegts::kPacketSize;
  std::vector<std::uint8_t> frame(dp::net::udp_headers_size(0) + kPayload);
  for (std::size_t d = 0; d < datagrams; ++d) {
    uf.identification = static_cast<std::uint16_t>(d);
    const std::size_t h = dp::net::write_udp_headers(frame, uf, kPayload);
    for (std::size_t k = 0; k < 7; ++k) {
      std::uint8_t* p = frame.data() + h + k * mpegts::kPacketSize;
      std::memset(p, 0xFF, mpegts::kPacketSize);
      p[0] = mpegts::kSyncByte;
      p[1] = 0x1F;  // the null PID
      p[2] = 0xFF;
      p[3] = 0x10;
    }
    put32(0);
    put32(static_cast<std::uint32_t>(d));
    put32(static_cast<std::uint32_t>(frame.size()));
    put32(static_cast<std::uint32_t>(frame.size()));
    f.write(reinterpret_cast<const char*>(frame.data()), static_cast<std::streamsize>(frame.size()));
  }
}

// The listeners and the data plane: the same in every version of the file.
std::string head(const fs::path& pcap, const std::string& prefix) {
  std::string y = "control:\n  api_listen: 127.0.0.1:" + std::to_string(free_port()) +
                  "\n  metrics_listen: 127.0.0.1:" + std::to_string(free_port()) + "\n";
  y += "ott:\n  listen: 127.0.0.1:" + std::to_string(free_port()) + "\n";
  y += "dataplane:\n  lcores: \"0,1\"\n  memory_mb: 256\n  hugepages: false\n  file_prefix: " + prefix + "\n";
  y += "ports:\n  - name: in\n    device: \"net_pcap0,rx_pcap=" + pcap.string() + "\"\n    address: 10.50.0.2/16\n";
  y += "  - name: out\n    device: \"net_null1,no-rx=1\"\n    address: 10.60.0.2/16\n";
  return y;
}

// The channel map: channels "one" (fed by the pcap) and "two" (fed by nothing), in the
// order given.
std::string yaml(const std::string& head, const std::vector<std::string>& order) {
  std::string y = head + "channels:\n";
  for (const std::string& id : order) {
    const std::string n = id == "one" ? "1" : "2";
    y += "  - id: " + id + "\n    service_id: 10" + n + "\n";
    y += "    inputs:\n      - { name: rx, udp: { port: in, group: 239.1.0." + n + ", udp_port: 5000 } }\n";
    y += "    outputs:\n      - { udp: { port: out, group: 239.200.0." + n + ", udp_port: 5000 } }\n";
  }
  return y;
}

// packets_in of `channel`'s line in status().
std::uint64_t packets_in(const std::string& status, const std::string& channel) {
  const std::string head = "channel=" + channel + " active_input=";
  const std::size_t at = status.find(head);
  if (at == std::string::npos) throw std::runtime_error("no " + head + " in:\n" + status);
  const std::size_t field = status.find(" packets_in=", at);
  if (field == std::string::npos || field > status.find('\n', at)) throw std::runtime_error("no packets_in for " + channel);
  return std::strtoull(status.c_str() + field + std::strlen(" packets_in="), nullptr, 10);
}

// A reload that only changes the order of the channels in the file: each channel's counters
// stay its own (they followed the positions before: one's line showed two's, and the other
// way round).
TEST(ApplianceReload, ReorderingTheChannelsKeepsEachOnesCounters) {
  const fs::path dir = fs::temp_directory_path() / ("tc_app_reload_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path pcap = dir / "in.pcap";
  const fs::path file = dir / "channels.yaml";
  constexpr std::size_t kDatagrams = 100;
  write_pcap(pcap, dp::net::ipv4(239, 1, 0, 1), kDatagrams);
  const std::string top = head(pcap, "tcappreload" + std::to_string(getpid()));
  std::ofstream(file) << yaml(top, {"one", "two"});
  const ConfigResult loaded = load_config(file.string());
  ASSERT_TRUE(loaded.ok()) << format_errors(loaded.errors, file.string());
  {
    Appliance appliance(*loaded.config, "appliance_reload_test", file.string());
    appliance.start();
    const std::uint64_t want = kDatagrams * 7;
    // A guard only (the pcap is read at once): generous for EAL and the ports coming up under
    // ASan on a loaded machine.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (packets_in(appliance.status(), "one") < want && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_EQ(packets_in(appliance.status(), "one"), want) << appliance.status();
    ASSERT_EQ(packets_in(appliance.status(), "two"), 0U);

    std::ofstream(file, std::ios::trunc) << yaml(top, {"two", "one"});
    const ReloadOutcome out = appliance.reload();
    ASSERT_FALSE(out.error) << *out.error;
    EXPECT_TRUE(out.diff.channels_changed.empty());  // nothing restarted
    const std::string status = appliance.status();
    EXPECT_EQ(packets_in(status, "one"), want) << status;
    EXPECT_EQ(packets_in(status, "two"), 0U) << status;
    EXPECT_LT(status.find("channel=two active_input="), status.find("channel=one active_input="))
        << "status lists the channels in the file's new order:\n" << status;
    appliance.stop();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace twincast::control
