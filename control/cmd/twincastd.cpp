// twincastd — the appliance. Today: version information and configuration checking
// (--check FILE); the data plane and the control plane that make it an appliance are
// built by later issues.
#include <cstdio>
#include <cstring>
#include <string>

#include "twincast/control/config.hpp"
#include "twincast/dataplane/build_info.hpp"

namespace {

constexpr const char* kUsage =
    "usage: twincastd --version\n"
    "       twincastd --check FILE   validate a channel map (see config/README.md)\n";

// Prints "FILE: OK (N channels)" and returns 0, or every error on stderr and returns 1.
int check(const std::string& file) {
  const auto result = twincast::control::load_config(file);
  if (!result.ok()) {
    std::fputs(twincast::control::format_errors(result.errors, file).c_str(), stderr);
    return 1;
  }
  const std::size_t n = result.config->channels.size();
  std::printf("%s: OK (%zu channels)\n", file.c_str(), n);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-V") == 0)) {
    std::printf("twincastd %s (%s)\n", TWINCAST_VERSION, twincast::dataplane::dpdk_version().c_str());
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "--check") == 0) return check(argv[2]);
  std::fputs(kUsage, stderr);
  std::fputs("twincastd cannot run channels yet: the data plane is not built. "
             "Use twincast-ts to analyze and remux files.\n",
             stderr);
  return 2;
}
