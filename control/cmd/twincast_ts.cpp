// twincast-ts — analyze and remux transport-stream files.
#include <string>
#include <vector>

#include "twincast/control/ts_tool.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return twincast::control::ts_tool_main(args);
}
