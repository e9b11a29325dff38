// Shared pieces of the twincast-ts subcommands.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace twincast::control {

// A mistake in the command line: exit 2 with the message.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A file that cannot be read, written or understood: exit 2 with the message.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Decimal or 0x-hex, within [lo, hi]; throws UsageError naming `what`.
std::uint64_t parse_number(const std::string& s, const char* what, std::uint64_t lo, std::uint64_t hi);

int analyze_command(const std::vector<std::string>& args);
int remux_command(const std::vector<std::string>& args);
int record_command(const std::vector<std::string>& args);

}  // namespace twincast::control
