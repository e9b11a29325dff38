// The unit files pass `systemd-analyze verify` (with the service pointed at the built
// binaries, since verify checks that ExecStart names an executable).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests_common.hpp"

namespace fs = std::filesystem;
using twincast::test::run;
using twincast::test::shell_quote;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

fs::path source_dir() {
  const char* s = std::getenv("TWINCAST_SOURCE_DIR");
  return s ? fs::path(s) : fs::path(".");
}

}  // namespace

TEST(Systemd, UnitFilesVerify) {
  if (run("command -v systemd-analyze").exit_code != 0) GTEST_SKIP() << "systemd-analyze is not installed";
  const fs::path dir = twincast::test::temp_dir("systemd");
  std::string unit = slurp(source_dir() / "systemd/twincastd.service");
  ASSERT_NE(unit.find("Type=notify"), std::string::npos);
  ASSERT_NE(unit.find("WatchdogSec="), std::string::npos);
  ASSERT_NE(unit.find("ExecReload="), std::string::npos);
  const std::string installed = "/usr/local/bin/twincastd";
  const std::string built = twincast::test::tool("twincastd").string();
  for (std::size_t at; (at = unit.find(installed)) != std::string::npos;) unit.replace(at, installed.size(), built);
  std::ofstream(dir / "twincastd.service") << unit;
  fs::copy_file(source_dir() / "systemd/twincast-hugepages.service", dir / "twincast-hugepages.service");
  const auto r = run("cd " + shell_quote(dir.string()) + " && systemd-analyze verify ./twincastd.service ./twincast-hugepages.service");
  // verify also reports on units it loads as dependencies (network-online.target ...):
  // only lines about our two units count.
  std::string ours;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);)
    if (line.find("twincast") != std::string::npos) ours += line + "\n";
  EXPECT_EQ(ours, "") << r.out;
  fs::remove_all(dir);
}
