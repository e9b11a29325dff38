// Reading transport streams from files (and pipes) for the tools.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "twincast/mpegts/aligner.hpp"
#include "twincast/mpegts/packet.hpp"

namespace twincast::control {

struct TsFileStats {
  std::uint64_t bytes = 0;
  mpegts::PacketAligner::Stats aligner;
  std::size_t unit_size = 0;
};

// Streams every packet of the file at `path` ("-" for stdin) through the aligner to
// `sink`. Throws std::runtime_error with the path and the system's reason on I/O errors.
TsFileStats read_ts_file(const std::string& path, const std::function<void(const mpegts::TsPacket&)>& sink);

// All packets of a file in memory (the remux tool needs several passes).
std::vector<mpegts::TsPacket> load_ts_file(const std::string& path, TsFileStats* stats = nullptr);

}  // namespace twincast::control
