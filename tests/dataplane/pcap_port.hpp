// A data-plane port without a NIC for the in-process tests (multiplex_dp_test, ott_feed_test,
// scte35_dp_test): DPDK's net_pcap reading an empty capture and writing what the port sends
// to a pcap file (read it back with read_pcap, eal_harness.hpp). Header-only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "twincast/dataplane/config.hpp"

namespace twincast::test {

// Port "p0" (`address`, 4095 mbufs) on the vdev `name` (net_pcap_<unique>): it receives
// nothing (<dir>/empty.pcap, written here) and its TX goes to `tx_pcap`, complete once the
// Dataplane that opened it is gone.
inline dataplane::PortConfig pcap_port(const std::string& name, const std::filesystem::path& dir,
                                       const std::filesystem::path& tx_pcap, dataplane::Ipv4 address) {
  const std::uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};  // pcap file header, Ethernet
  std::ofstream(dir / "empty.pcap", std::ios::binary).write(reinterpret_cast<const char*>(hdr), sizeof hdr);
  dataplane::PortConfig port;
  port.name = "p0";
  port.device = name + ",rx_pcap=" + (dir / "empty.pcap").string() + ",tx_pcap=" + tx_pcap.string();
  port.address = address;
  port.mbufs = 4095;
  return port;
}

}  // namespace twincast::test
