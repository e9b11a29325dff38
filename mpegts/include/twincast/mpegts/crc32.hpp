// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no reflection, no
// final XOR), the CRC of PSI/SI sections (ISO/IEC 13818-1 Annex A).
#pragma once

#include <cstdint>
#include <span>

namespace twincast::mpegts {

[[nodiscard]] std::uint32_t crc32_mpeg(std::span<const std::uint8_t> data);

// True when a section that carries CRC_32 as its last 4 bytes is intact
// (the CRC over the whole section, CRC included, is 0).
[[nodiscard]] inline bool section_crc_ok(std::span<const std::uint8_t> section) {
  return section.size() >= 4 && crc32_mpeg(section) == 0;
}

}  // namespace twincast::mpegts
