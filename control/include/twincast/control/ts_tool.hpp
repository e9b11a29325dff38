// The `twincast-ts` stream tool: analyze and remux transport-stream files.
#pragma once

#include <string>
#include <vector>

namespace twincast::control {

// Runs `twincast-ts` with its arguments (without the program name). Returns the exit
// code: 0 success, 1 the input had problems the command was asked to report, 2 a usage
// or I/O error (with a message on stderr).
int ts_tool_main(const std::vector<std::string>& args);

}  // namespace twincast::control
