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
  // For each of aligner.sync_losses, the packets handed to the sink before it: where the
  // loss is in the stream, for a reader that reports it there rather than at the end.
  std::vector<std::uint64_t> sync_loss_at;
};

// Streams every packet of the file at `path` ("-" for stdin) through the aligner to
// `sink`. Throws std::runtime_error with the path and the system's reason on I/O errors.
TsFileStats read_ts_file(const std::string& path, const std::function<void(const mpegts::TsPacket&)>& sink);

// All packets of a file in memory (the remux tool needs several passes).
std::vector<mpegts::TsPacket> load_ts_file(const std::string& path, TsFileStats* stats = nullptr);

}  // namespace twincast::control
