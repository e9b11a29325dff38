#include "twincast/control/ts_tool.hpp"

#include <charconv>
#include <cstdio>
#include <exception>

#include "ts_tool_internal.hpp"

namespace twincast::control {

namespace {
constexpr const char* kUsage =
    "usage: twincast-ts COMMAND [options]\n"
    "  analyze [--json] FILE     services, PIDs, codecs, bitrates, TR 101 290 counts, MDI\n"
    "  remux -o OUT [opts] IN... select a service, merge files into an MPTS, remap PIDs\n"
    "  record GROUP:PORT OUT     write what a receiver gets from a multicast group, unremuxed\n"
    "  --version\n"
    "Run `twincast-ts COMMAND --help` for a command's options.\n";
}  // namespace

std::uint64_t parse_number(const std::string& s, const char* what, std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t v = 0;
  const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  const char* first = s.data() + (hex ? 2 : 0);
  const char* last = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(first, last, v, hex ? 16 : 10);
  if (s.empty() || ec != std::errc() || ptr != last)
    throw UsageError(std::string(what) + ": '" + s + "' is not a number");
  if (v < lo || v > hi)
    throw UsageError(std::string(what) + ": " + s + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

int ts_tool_main(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (args[0] == "analyze") return analyze_command(rest);
    if (args[0] == "remux") return remux_command(rest);
    if (args[0] == "record") return record_command(rest);
    if (args[0] == "--version") {
      std::printf("twincast-ts %s\n", TWINCAST_VERSION);
      return 0;
    }
    if (args[0] == "-h" || args[0] == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "twincast-ts: unknown command '%s'\n%s", args[0].c_str(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "twincast-ts %s: %s\n", args[0].c_str(), e.what());
    return 2;
  }
}

}  // namespace twincast::control
