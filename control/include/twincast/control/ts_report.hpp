// A whole-stream analysis (analyzer report + codec parameters per elementary stream)
// and its two renderings: the JSON documented in README.md and a text report for people.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <map>
#include <string>

#include "twincast/mpegts/access_unit.hpp"
#include "twincast/mpegts/analyzer.hpp"

namespace twincast::control {

struct StreamAnalysis {
  std::string source;              // file name or URL
  std::uint64_t bytes = 0;         // bytes read
  std::uint64_t skipped_bytes = 0; // bytes that were not part of a packet
  std::size_t packet_size = 188;   // 188, 192 or 204; 0 when no packet was found
  bool constant_rate = false;       // the file's clock (file_times.hpp)
  double clock_rate_bps = 0;
  std::uint16_t clock_pid = 0x1FFF;
  mpegts::Report report;
  std::map<std::uint16_t, mpegts::StreamParams> params;  // per ES PID, when learnt
};

[[nodiscard]] boost::json::value to_json(const StreamAnalysis& a);
[[nodiscard]] std::string to_text(const StreamAnalysis& a);

}  // namespace twincast::control
