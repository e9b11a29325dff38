// CRC-32/MPEG-2, table driven (one table lookup per byte).
#include "twincast/mpegts/crc32.hpp"

#include <array>

namespace twincast::mpegts {

namespace {

constexpr std::uint32_t kPolynomial = 0x04C11DB7;

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i << 24;
    for (int bit = 0; bit < 8; ++bit) c = (c & 0x80000000U) ? (c << 1) ^ kPolynomial : (c << 1);
    table[i] = c;
  }
  return table;
}

constexpr std::array<std::uint32_t, 256> kTable = make_table();
static_assert(kTable[1] == kPolynomial);
static_assert(kTable[255] == 0xB1F740B4U);

}  // namespace

std::uint32_t crc32_mpeg(std::span<const std::uint8_t> data) {
  std::uint32_t crc = 0xFFFFFFFFU;
  for (const std::uint8_t b : data) crc = (crc << 8) ^ kTable[((crc >> 24) ^ b) & 0xFFU];
  return crc;
}

}  // namespace twincast::mpegts
