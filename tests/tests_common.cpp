#include "tests_common.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

namespace twincast::test {

namespace fs = std::filesystem;

static fs::path env_dir(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return v ? fs::path(v) : fs::path(fallback);
}

fs::path fixture(const std::string& name) {
  fs::path p = env_dir("TWINCAST_FIXTURE_DIR", "fixtures") / name;
  if (!fs::exists(p)) throw std::runtime_error("missing fixture " + p.string() + " (run tests/fixtures/make_fixtures)");
  return p;
}

fs::path tool(const std::string& name) { return env_dir("TWINCAST_BIN_DIR", "bin") / name; }

fs::path temp_dir(const std::string& tag) {
  std::random_device rd;
  fs::path p = fs::temp_directory_path() / ("twincast-" + tag + "-" + std::to_string(rd()));
  fs::create_directories(p);
  return p;
}

std::vector<std::uint8_t> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::vector<mpegts::TsPacket> read_packets(const fs::path& p) {
  const auto bytes = read_file(p);
  if (bytes.size() % mpegts::kPacketSize != 0) throw std::runtime_error(p.string() + " is not a whole number of packets");
  std::vector<mpegts::TsPacket> out(bytes.size() / mpegts::kPacketSize);
  for (std::size_t i = 0; i < out.size(); ++i)
    std::copy_n(bytes.data() + i * mpegts::kPacketSize, mpegts::kPacketSize, out[i].bytes.begin());
  return out;
}

void write_packets(const fs::path& p, const std::vector<mpegts::TsPacket>& pkts) {
  std::vector<std::uint8_t> bytes;
  bytes.reserve(pkts.size() * mpegts::kPacketSize);
  for (const auto& k : pkts) bytes.insert(bytes.end(), k.bytes.begin(), k.bytes.end());
  write_file(p, bytes);
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

RunResult run(const std::string& command) {
  RunResult r;
  const std::string cmd = command + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::vector<RawDescriptor> nit_ts_descriptors(const std::vector<std::uint8_t>& section) {
  std::vector<RawDescriptor> out;
  if (section.size() < 10 + 2 + 4) return out;
  const std::size_t limit = section.size() - 4;  // the CRC
  const std::size_t network = ((section[8] & 0x0FU) << 8) | section[9];
  const std::size_t ts = 10 + network + 2;  // the first transport stream: ids (4), loop length (2)
  if (ts + 6 > limit) return out;
  const std::size_t end = std::min(limit, ts + 6 + (((section[ts + 4] & 0x0FU) << 8) | section[ts + 5]));
  for (std::size_t q = ts + 6; q + 2 <= end && q + 2 + section[q + 1] <= end; q += 2U + section[q + 1])
    out.push_back(RawDescriptor{section[q], std::vector<std::uint8_t>(section.begin() + static_cast<std::ptrdiff_t>(q + 2),
                                                                 section.begin() + static_cast<std::ptrdiff_t>(q + 2 + section[q + 1]))});
  return out;
}

}  // namespace twincast::test
