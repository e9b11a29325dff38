// Shared by the in-process DPDK tests (worker_test, leak_test, multiplex_dp_test and others): the EAL
// as a GoogleTest environment (--no-huge, 256 MB, lcores 0,1) and a pcap file reader.
// Header-only.
#pragma once

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests_common.hpp"
#include "twincast/dataplane/dataplane.hpp"

namespace twincast::test {

// Brings the EAL up once for the whole test program and cleans it up at the end. The
// file prefix gets the process id appended so that concurrent runs do not collide.
// Register with ::testing::AddGlobalTestEnvironment(new EalEnvironment(prefix, argv0)).
class EalEnvironment : public ::testing::Environment {
 public:
  EalEnvironment(std::string file_prefix, std::string argv0)
      : file_prefix_(std::move(file_prefix)), argv0_(std::move(argv0)) {}
  void SetUp() override {
    dataplane::ApplianceConfig c;
    c.eal.lcores = "0,1";
    c.eal.memory_mb = 256;
    c.eal.file_prefix = file_prefix_ + std::to_string(getpid());
    dataplane::init_eal(c, argv0_);
  }
  void TearDown() override { rte_eal_cleanup(); }

 private:
  std::string file_prefix_;
  std::string argv0_;
};

// The frames of a classic pcap file (24-byte file header, 16-byte record headers); stops at
// a truncated record.
inline std::vector<std::vector<std::uint8_t>> read_pcap(const std::filesystem::path& p) {
  const std::vector<std::uint8_t> b = read_file(p);
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::size_t at = 24; at + 16 <= b.size();) {
    std::uint32_t incl = 0;
    std::memcpy(&incl, &b[at + 8], 4);
    at += 16;
    if (at + incl > b.size()) break;
    frames.emplace_back(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + incl));
    at += incl;
  }
  return frames;
}

}  // namespace twincast::test
