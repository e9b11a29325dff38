// PES packet headers (ISO/IEC 13818-1, 2.4.3.6): enough to find each PES's PTS/DTS and
// where its elementary-stream data starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace twincast::mpegts {

struct PesHeader {
  std::uint8_t stream_id = 0;
  std::uint16_t packet_length = 0;  // PES_packet_length; 0 = unbounded (video)
  bool has_pts = false;
  bool has_dts = false;
  std::uint64_t pts = 0;  // 90 kHz, 33 bits
  std::uint64_t dts = 0;  // equals pts when the stream carries no DTS
  bool data_alignment = false;
  std::size_t header_size = 0;  // bytes from the start of the PES to its ES data
};

// Parses the PES header at the start of `payload` (the payload of a packet with
// payload_unit_start set). Returns nullopt when it is not a valid PES start: no
// 00 00 01 prefix, too short for what its flags announce, or broken marker bits.
// Streams without the optional header (padding, private_stream_2, ...) parse with
// header_size 6 and no timestamps. Never reads outside `payload`.
[[nodiscard]] std::optional<PesHeader> parse_pes_header(std::span<const std::uint8_t> payload);

}  // namespace twincast::mpegts
