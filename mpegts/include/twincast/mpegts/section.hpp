// Reassembly of PSI/SI sections from the TS packets of one PID (ISO/IEC 13818-1, 2.4.4).
//
// Handles pointer_field, sections spanning several packets, several sections in one
// packet, 0xFF stuffing after the last section, and continuity breaks (a partial section
// is dropped and counted). A fixed buffer per assembler: no allocation, ever.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "twincast/mpegts/packet.hpp"

namespace twincast::mpegts {

// Receives complete sections. `section` is the whole section from table_id to the end
// of CRC_32; `crc_ok` is the CRC check (true for sections with section_syntax_indicator 0,
// which carry no CRC). The span is valid only during the call.
class SectionHandler {
 public:
  virtual void on_section(std::uint16_t pid, std::span<const std::uint8_t> section, bool crc_ok) = 0;

 protected:
  ~SectionHandler() = default;
};

class SectionAssembler {
 public:
  // Largest section: 4096 bytes for private sections (1024 for PAT/PMT/CAT).
  static constexpr std::size_t kMaxSection = 4096;

  struct Stats {
    std::uint64_t packets = 0;      // packets pushed
    std::uint64_t sections = 0;     // complete sections delivered (CRC good or bad)
    std::uint64_t crc_errors = 0;   // sections whose CRC_32 did not match
    std::uint64_t dropped = 0;      // partial sections abandoned (CC break, new PUSI too early, TEI)
    std::uint64_t malformed = 0;    // impossible pointer_field or section_length
  };

  // Feeds one packet of this assembler's PID. Packets with transport_error_indicator set,
  // or without payload, are counted and ignored (a partial section is dropped on TEI).
  void push(const TsPacket& packet, SectionHandler& handler);
  // Forgets any partial section (after an input switch, for example).
  void reset();
  [[nodiscard]] const Stats& stats() const { return stats_; }

 private:
  std::size_t append(std::span<const std::uint8_t> bytes, std::uint16_t pid, SectionHandler& handler);

  std::array<std::uint8_t, kMaxSection> buf_{};
  std::size_t have_ = 0;   // bytes of the current section collected so far
  std::size_t need_ = 0;   // total size of the current section once known (0: header not complete)
  bool collecting_ = false;
  int last_cc_ = -1;
  std::array<std::uint8_t, kPacketSize> last_payload_{};  // of the last packet, to tell a duplicate
  std::size_t last_payload_size_ = 0;
  Stats stats_;
};

}  // namespace twincast::mpegts
