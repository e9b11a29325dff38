// PES header parsing (ISO/IEC 13818-1, 2.4.3.6 and 2.4.3.7).
#include "twincast/mpegts/pes.hpp"

namespace twincast::mpegts {

namespace {

// Stream ids whose PES packets carry no optional header (Table 2-22 and the
// condition in front of the optional fields in 2.4.3.6).
constexpr bool has_optional_header(std::uint8_t stream_id) {
  switch (stream_id) {
    case 0xBC:  // program_stream_map
    case 0xBE:  // padding_stream
    case 0xBF:  // private_stream_2
    case 0xF0:  // ECM
    case 0xF1:  // EMM
    case 0xF2:  // DSMCC_stream
    case 0xF8:  // ITU-T H.222.1 type E
    case 0xFF:  // program_stream_directory
      return false;
    default:
      return true;
  }
}

// A 33-bit timestamp in 5 bytes: 4-bit prefix, 3 bits, marker, 15 bits, marker, 15 bits,
// marker. nullopt when a marker bit is 0.
std::optional<std::uint64_t> read_timestamp(const std::uint8_t* p) {
  if ((p[0] & 0x01) == 0 || (p[2] & 0x01) == 0 || (p[4] & 0x01) == 0) return std::nullopt;
  return (std::uint64_t{p[0] & 0x0Eu} << 29) | (std::uint64_t{p[1]} << 22) |
         (std::uint64_t{p[2] & 0xFEu} << 14) | (std::uint64_t{p[3]} << 7) | (std::uint64_t{p[4]} >> 1);
}

}  // namespace

std::optional<PesHeader> parse_pes_header(std::span<const std::uint8_t> payload) {
  const std::size_t n = payload.size();
  if (n < 6) return std::nullopt;
  const std::uint8_t* p = payload.data();
  if (p[0] != 0x00 || p[1] != 0x00 || p[2] != 0x01) return std::nullopt;
  PesHeader h;
  h.stream_id = p[3];
  if (h.stream_id < 0xBC) return std::nullopt;  // 0xB9..0xBB are program-stream codes, not PES
  h.packet_length = static_cast<std::uint16_t>((p[4] << 8) | p[5]);
  if (!has_optional_header(h.stream_id)) {
    h.header_size = 6;
    return h;
  }
  if (n < 9) return std::nullopt;
  if ((p[6] & 0xC0) != 0x80) return std::nullopt;  // the '10' marker bits
  h.data_alignment = (p[6] & 0x04) != 0;
  const unsigned pts_dts_flags = p[7] >> 6;
  if (pts_dts_flags == 1) return std::nullopt;  // forbidden value
  const std::size_t header_data_length = p[8];
  h.header_size = 9 + header_data_length;
  if (h.header_size > n) return std::nullopt;
  // A bounded PES must at least hold its own header.
  if (h.packet_length != 0 && std::size_t{h.packet_length} + 6 < h.header_size) return std::nullopt;
  const std::size_t need = pts_dts_flags == 3 ? 10 : pts_dts_flags == 2 ? 5 : 0;
  if (need > header_data_length) return std::nullopt;
  if (pts_dts_flags >= 2) {
    const auto pts = read_timestamp(p + 9);
    if (!pts) return std::nullopt;
    h.has_pts = true;
    h.pts = *pts;
    h.dts = *pts;
  }
  if (pts_dts_flags == 3) {
    const auto dts = read_timestamp(p + 14);
    if (!dts) return std::nullopt;
    h.has_dts = true;
    h.dts = *dts;
  }
  return h;
}

}  // namespace twincast::mpegts
