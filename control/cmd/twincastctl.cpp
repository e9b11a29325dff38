// twincastctl — the operator's CLI; the commands live in control/src/ctl.cpp.
#include <string>
#include <vector>

#include "twincast/control/ctl.hpp"

int main(int argc, char** argv) {
  return twincast::control::ctl_main(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc));
}
