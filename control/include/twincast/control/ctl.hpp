// twincastctl — the operator's CLI over the REST API (twincast/control/api.hpp):
//
//   twincastctl [OPTIONS] status              one line per channel: state, input, bitrate, alarms
//   twincastctl [OPTIONS] channel ID          inputs (TR 101 290, MDI, SRT), outputs, HLS
//   twincastctl [OPTIONS] switch ID INPUT     make INPUT the active input of channel ID (token)
//   twincastctl [OPTIONS] reload              re-read the configuration (token)
//   twincastctl [OPTIONS] hls-url ID [--ttl S] [--client ADDR] [--page]
//                                             a signed HLS URL (or the web page's) (token)
//   twincastctl check FILE                    validate a channel map locally (as twincastd --check)
//
// Data goes to stdout, messages to stderr; the exit code tells scripts what happened
// (CtlExit). The token is read from a file, never taken on the command line (it would
// show in `ps`), and never printed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace twincast::control {

// Exit codes: the enum, its number and what it means (for --help and the README).
#define TWINCAST_CTL_EXITS(X)                                                                 \
  X(kOk, 0, "success (status/channel: every channel shown is ok and has no alarm)")           \
  X(kRefused, 1, "refused or unhealthy (API error 400/409/5xx, config check failed, "        \
                 "a channel shown is not ok or has an alarm)")                                \
  X(kUsage, 2, "usage error (unknown command or option, missing argument)")                   \
  X(kUnreachable, 3, "cannot reach the API (refused, timeout, not a twincast API answer)")    \
  X(kAuth, 4, "authentication failed (401, or no usable token file)")                         \
  X(kNotFound, 5, "not found (404: no such channel)")

enum class CtlExit : int {
#define TWINCAST_X(e, n, d) e = (n),
  TWINCAST_CTL_EXITS(TWINCAST_X)
#undef TWINCAST_X
};

// What an exit code means, "" for an unknown one.
[[nodiscard]] std::string_view ctl_exit_description(CtlExit e);

// Runs the CLI: `args` is the command line without the program name. Returns the exit code.
int ctl_main(const std::vector<std::string>& args);

// "4.50 Mbit/s", "812.0 kbit/s", "950 bit/s", "1.20 Gbit/s"; "-" for a negative or
// non-finite value.
[[nodiscard]] std::string format_bitrate(double bps);

}  // namespace twincast::control
