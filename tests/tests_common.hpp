// Helpers shared by the tests: fixture paths, file I/O, running tools.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "twincast/mpegts/packet.hpp"

namespace twincast::test {

// A generated fixture (tests/fixtures/make_fixtures), by file name.
std::filesystem::path fixture(const std::string& name);
// A built executable (twincast-ts, ...).
std::filesystem::path tool(const std::string& name);
// A fresh temporary directory, removed by the caller or left for inspection.
std::filesystem::path temp_dir(const std::string& tag);

std::vector<std::uint8_t> read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::vector<std::uint8_t>& bytes);
// The packets of an aligned 188-byte TS file.
std::vector<mpegts::TsPacket> read_packets(const std::filesystem::path& p);
void write_packets(const std::filesystem::path& p, const std::vector<mpegts::TsPacket>& pkts);

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};
// Runs a shell command line, capturing its output.
RunResult run(const std::string& command);
// Single-quotes a string for a shell command line.
std::string shell_quote(const std::string& s);

struct RawDescriptor {
  std::uint8_t tag = 0;
  std::vector<std::uint8_t> data;  // after the length byte
};
// The descriptors, in order, of the first transport stream in a NIT section (EN 300 468
// 5.2.1: network descriptors, then the transport stream loop), as far as the section holds
// them.
std::vector<RawDescriptor> nit_ts_descriptors(const std::vector<std::uint8_t>& section);

}  // namespace twincast::test
