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

}  // namespace twincast::test
