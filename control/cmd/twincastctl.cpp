// twincastctl — the operator's CLI. Today: version information only; its commands
// (status, channel, switch, reload, check) arrive with the control-plane issue.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-V") == 0)) {
    std::printf("twincastctl %s\n", TWINCAST_VERSION);
    return 0;
  }
  std::fprintf(stderr, "usage: twincastctl --version\n(no appliance commands yet: there is no API to talk to)\n");
  return 2;
}
