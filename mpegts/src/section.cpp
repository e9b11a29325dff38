// Section reassembly (ISO/IEC 13818-1, 2.4.4.1 pointer_field, 2.4.4.4 section_length).
#include "twincast/mpegts/section.hpp"

#include <algorithm>

#include "twincast/mpegts/crc32.hpp"

namespace twincast::mpegts {

namespace {

constexpr std::size_t kHeaderSize = 3;  // table_id, flags + section_length
constexpr std::uint8_t kStuffing = 0xFF;

// Largest section_length a table may declare: 1021 for the 13818-1 tables whose length
// field starts with '00' (PAT, CAT, PMT, TSDT), 4093 for everything else.
constexpr std::size_t max_section_length(std::uint8_t table_id) { return table_id <= 0x03 ? 1021 : 4093; }

}  // namespace

void SectionAssembler::reset() {
  have_ = 0;
  need_ = 0;
  collecting_ = false;
  last_cc_ = -1;
  last_payload_size_ = 0;
}

void SectionAssembler::push(const TsPacket& packet, SectionHandler& handler) {
  ++stats_.packets;
  // Forgets the partial section, counting it.
  const auto drop = [this] {
    if (collecting_) ++stats_.dropped;
    collecting_ = false;
    have_ = 0;
    need_ = 0;
  };

  if (packet.transport_error()) {
    // The header itself may be wrong: forget the section and the CC.
    drop();
    last_cc_ = -1;
    return;
  }
  if (!packet.has_payload()) return;  // CC does not advance without payload
  if (packet.adaptation_overflows()) {
    ++stats_.malformed;
    drop();
    last_cc_ = -1;
    return;
  }

  const int cc = packet.cc();
  const std::span<const std::uint8_t> payload = packet.payload();
  if (packet.discontinuity()) {
    drop();
  } else if (last_cc_ >= 0) {
    // A duplicate (13818-1, 2.4.3.3) repeats the packet before byte for byte: ignore it.
    // The same counter with another payload is a loss (16 packets, or a stuck counter).
    if (cc == last_cc_ && payload.size() == last_payload_size_ &&
        std::equal(payload.begin(), payload.end(), last_payload_.begin()))
      return;
    if (cc != ((last_cc_ + 1) & 0x0F)) drop();
  }
  last_cc_ = cc;
  std::copy(payload.begin(), payload.end(), last_payload_.begin());
  last_payload_size_ = payload.size();

  const std::uint16_t pid = packet.pid();

  if (!packet.payload_unit_start()) {
    // No section starts in this packet: it can only continue the current one. Bytes after
    // that section's end are stuffing.
    if (collecting_) append(payload, pid, handler);
    return;
  }

  const std::size_t pointer = payload[0];
  if (1 + pointer > payload.size()) {
    ++stats_.malformed;
    drop();
    return;
  }
  // The bytes before the pointer target finish the previous section.
  if (collecting_) {
    append(payload.subspan(1, pointer), pid, handler);
    drop();  // still incomplete: the new section starts anyway
  }

  std::size_t pos = 1 + pointer;
  while (pos < payload.size() && payload[pos] != kStuffing) {
    collecting_ = true;
    have_ = 0;
    need_ = 0;
    pos += append(payload.subspan(pos), pid, handler);
    if (collecting_) break;  // continues in the next packet, or malformed
  }
}

// Adds bytes to the current section; delivers it when complete. Returns the bytes used.
// On a malformed header collecting_ is cleared and everything is reported used (the rest
// of the packet cannot be parsed).
std::size_t SectionAssembler::append(std::span<const std::uint8_t> bytes, std::uint16_t pid,
                                     SectionHandler& handler) {
  std::size_t used = 0;
  if (need_ == 0) {
    const std::size_t n = std::min(kHeaderSize - have_, bytes.size());
    std::copy_n(bytes.data(), n, buf_.data() + have_);
    have_ += n;
    used += n;
    if (have_ < kHeaderSize) return used;
    const std::size_t length = (std::size_t{buf_[1] & 0x0FU} << 8) | buf_[2];
    const bool syntax = (buf_[1] & 0x80) != 0;
    // With section_syntax_indicator the header after the length is 5 bytes, plus CRC_32.
    if (length > max_section_length(buf_[0]) || (syntax && length < 9)) {
      ++stats_.malformed;
      collecting_ = false;
      have_ = 0;
      return bytes.size();
    }
    need_ = kHeaderSize + length;
  }
  const std::size_t n = std::min(need_ - have_, bytes.size() - used);
  std::copy_n(bytes.data() + used, n, buf_.data() + have_);
  have_ += n;
  used += n;
  if (have_ == need_) {
    const std::span<const std::uint8_t> section(buf_.data(), need_);
    const bool crc_ok = (buf_[1] & 0x80) == 0 || section_crc_ok(section);
    ++stats_.sections;
    if (!crc_ok) ++stats_.crc_errors;
    collecting_ = false;
    have_ = 0;
    need_ = 0;
    handler.on_section(pid, section, crc_ok);
  }
  return used;
}

}  // namespace twincast::mpegts
