// twincastd — the appliance. Today: version information only; the data plane and the
// control plane that make it an appliance are built by later issues.
#include <cstdio>
#include <cstring>

#include "twincast/dataplane/build_info.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-V") == 0)) {
    std::printf("twincastd %s (%s)\n", TWINCAST_VERSION, twincast::dataplane::dpdk_version().c_str());
    return 0;
  }
  std::fprintf(stderr,
               "usage: twincastd --version\n"
               "twincastd cannot run channels yet: the data plane is not built. "
               "Use twincast-ts to analyze and remux files.\n");
  return 2;
}
