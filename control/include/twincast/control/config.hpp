// The YAML channel map: parsed into dataplane::ApplianceConfig, then validated in one pass
// that collects every error with its YAML path and 1-based line:column. The schema is
// documented in config/README.md; field defaults are the initialisers in
// twincast/dataplane/config.hpp, ranges sit next to each field in config.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twincast/dataplane/config.hpp"

namespace twincast::control {

struct ConfigError {
  std::string path;     // "channels[2].outputs[0].udp.ttl"; empty when it is about the whole file
  int line = 0;         // 1-based; 0 when there is no position (the file cannot be read)
  int column = 0;       // 1-based
  std::string message;  // "300 is out of range (1..255)"
};

struct ConfigResult {
  std::optional<dataplane::ApplianceConfig> config;  // set only when errors is empty
  std::vector<ConfigError> errors;                   // sorted by line, then column
  bool ok() const { return config.has_value(); }
};

// Parses and validates a configuration held in memory. file_name names it in nothing but
// the resolution of relative passphrase_file paths (relative to the file's directory).
ConfigResult parse_config(std::string_view yaml_text, std::string_view file_name = "<config>");

// A host name as the configuration accepts one: labels of letters, digits and '-' (not at
// a label's ends) separated by '.', at most 253 characters, or an IPv4 address in four
// decimal parts. Numeric forms the resolver would also read as an address ("0", "127.1",
// "0x7f.1") and names ending in a numeric label are not host names.
bool is_host_name(std::string_view s);

// Reads and parses a file; an unreadable file is a ConfigError ("cannot read FILE: reason").
ConfigResult load_config(const std::string& path);

// "FILE:LINE:COL: PATH: MESSAGE"; the parts that are empty (no file, no position, no
// path) are left out, so format_error(e, "") gives "LINE:COL: PATH: MESSAGE". An error
// without a position (the file cannot be read) is its message alone: it names the file.
std::string format_error(const ConfigError& error, std::string_view file);
// One formatted error per line, each ending in '\n'.
std::string format_errors(const std::vector<ConfigError>& errors, std::string_view file);

// What a valid map holds, for `--check` and `twincastctl check`: "2 channels, 1 on HLS,
// 1 multiplex" (the HLS and multiplex parts only when there are some; "1 channel").
std::string config_summary(const dataplane::ApplianceConfig& config);

}  // namespace twincast::control
