// A view of one 188-byte MPEG transport stream packet (ISO/IEC 13818-1, 2.4.3).
//
// TsPacket is the raw bytes and nothing else: trivially copyable, no constructor that
// does work, every field read through an inline accessor. Accessors assume the packet
// is at least structurally a TS packet (188 bytes); the ones that walk the adaptation
// field check its length against the packet and report absence instead of reading past it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

namespace twincast::mpegts {

inline constexpr std::size_t kPacketSize = 188;
inline constexpr std::uint8_t kSyncByte = 0x47;
inline constexpr std::uint16_t kPidCount = 8192;
inline constexpr std::uint16_t kNullPid = 0x1FFF;
inline constexpr std::uint16_t kPatPid = 0x0000;
inline constexpr std::uint16_t kCatPid = 0x0001;
inline constexpr std::uint16_t kNitPid = 0x0010;
inline constexpr std::uint16_t kSdtPid = 0x0011;
inline constexpr std::uint16_t kEitPid = 0x0012;
inline constexpr std::uint16_t kTdtPid = 0x0014;  // TDT and TOT (EN 300 468)

// 27 MHz system clock; PCR = base * 300 + extension, base wraps at 2^33.
inline constexpr std::uint64_t kPcrHz = 27'000'000;
inline constexpr std::uint64_t kPcrWrap = (std::uint64_t{1} << 33) * 300;
inline constexpr std::uint64_t kPtsHz = 90'000;
inline constexpr std::uint64_t kPtsWrap = std::uint64_t{1} << 33;

// Adaptation field control values (2 bits).
enum class AdaptationControl : std::uint8_t {
  kReserved = 0,
  kPayloadOnly = 1,
  kAdaptationOnly = 2,
  kAdaptationAndPayload = 3,
};

struct TsPacket {
  std::array<std::uint8_t, kPacketSize> bytes;

  // --- header (4 bytes) ---
  [[nodiscard]] constexpr std::uint8_t sync_byte() const { return bytes[0]; }
  [[nodiscard]] constexpr bool has_sync() const { return bytes[0] == kSyncByte; }
  [[nodiscard]] constexpr bool transport_error() const { return (bytes[1] & 0x80) != 0; }
  [[nodiscard]] constexpr bool payload_unit_start() const { return (bytes[1] & 0x40) != 0; }
  [[nodiscard]] constexpr bool transport_priority() const { return (bytes[1] & 0x20) != 0; }
  [[nodiscard]] constexpr std::uint16_t pid() const {
    return static_cast<std::uint16_t>(((bytes[1] & 0x1F) << 8) | bytes[2]);
  }
  [[nodiscard]] constexpr std::uint8_t scrambling() const {
    return static_cast<std::uint8_t>(bytes[3] >> 6);
  }
  [[nodiscard]] constexpr AdaptationControl adaptation_control() const {
    return static_cast<AdaptationControl>((bytes[3] >> 4) & 0x3);
  }
  [[nodiscard]] constexpr bool has_adaptation() const { return (bytes[3] & 0x20) != 0; }
  [[nodiscard]] constexpr bool has_payload() const { return (bytes[3] & 0x10) != 0; }
  [[nodiscard]] constexpr std::uint8_t cc() const { return bytes[3] & 0x0F; }

  constexpr void set_pid(std::uint16_t pid) {
    bytes[1] = static_cast<std::uint8_t>((bytes[1] & 0xE0) | ((pid >> 8) & 0x1F));
    bytes[2] = static_cast<std::uint8_t>(pid & 0xFF);
  }
  constexpr void set_cc(std::uint8_t cc) {
    bytes[3] = static_cast<std::uint8_t>((bytes[3] & 0xF0) | (cc & 0x0F));
  }
  constexpr void set_payload_unit_start(bool v) {
    bytes[1] = static_cast<std::uint8_t>(v ? (bytes[1] | 0x40) : (bytes[1] & ~0x40));
  }

  // --- adaptation field ---
  // Length byte of the adaptation field, or 0 when there is none.
  [[nodiscard]] constexpr std::uint8_t adaptation_length() const {
    return has_adaptation() ? bytes[4] : 0;
  }
  // True when the adaptation field claims more bytes than the packet holds.
  [[nodiscard]] constexpr bool adaptation_overflows() const {
    if (!has_adaptation()) return false;
    const std::size_t max = has_payload() ? 182 : 183;
    return bytes[4] > max;
  }
  // Flags byte of the adaptation field, or 0 when absent or empty.
  [[nodiscard]] constexpr std::uint8_t adaptation_flags() const {
    return (has_adaptation() && bytes[4] > 0 && !adaptation_overflows()) ? bytes[5] : 0;
  }
  [[nodiscard]] constexpr bool discontinuity() const { return (adaptation_flags() & 0x80) != 0; }
  [[nodiscard]] constexpr bool random_access() const { return (adaptation_flags() & 0x40) != 0; }
  [[nodiscard]] constexpr bool es_priority() const { return (adaptation_flags() & 0x20) != 0; }
  [[nodiscard]] constexpr bool has_pcr() const {
    return (adaptation_flags() & 0x10) != 0 && bytes[4] >= 7;
  }
  [[nodiscard]] constexpr bool has_opcr() const {
    const std::size_t need = 1 + ((adaptation_flags() & 0x10) ? 6 : 0) + 6;
    return (adaptation_flags() & 0x08) != 0 && bytes[4] >= need;
  }
  [[nodiscard]] constexpr bool splicing_point() const { return (adaptation_flags() & 0x04) != 0; }

  // PCR in 27 MHz units; valid only when has_pcr().
  [[nodiscard]] constexpr std::uint64_t pcr() const { return read_clock(6); }
  [[nodiscard]] constexpr std::optional<std::uint64_t> pcr_if_present() const {
    if (!has_pcr()) return std::nullopt;
    return pcr();
  }
  // OPCR in 27 MHz units; valid only when has_opcr().
  [[nodiscard]] constexpr std::uint64_t opcr() const {
    return read_clock((adaptation_flags() & 0x10) ? 12 : 6);
  }

  // Sets the discontinuity_indicator. Needs an adaptation field of at least one byte of
  // flags; returns false (and changes nothing) when the packet has none to set it in.
  constexpr bool set_discontinuity(bool v) {
    if (!has_adaptation() || bytes[4] == 0 || adaptation_overflows()) return false;
    bytes[5] = static_cast<std::uint8_t>(v ? (bytes[5] | 0x80) : (bytes[5] & ~0x80));
    return true;
  }
  // Rewrites an existing PCR (27 MHz units, taken modulo the wrap).
  constexpr void set_pcr(std::uint64_t pcr27) {
    pcr27 %= kPcrWrap;
    const std::uint64_t base = pcr27 / 300;
    const std::uint64_t ext = pcr27 % 300;
    bytes[6] = static_cast<std::uint8_t>(base >> 25);
    bytes[7] = static_cast<std::uint8_t>(base >> 17);
    bytes[8] = static_cast<std::uint8_t>(base >> 9);
    bytes[9] = static_cast<std::uint8_t>(base >> 1);
    bytes[10] = static_cast<std::uint8_t>(((base & 1) << 7) | 0x7E | ((ext >> 8) & 1));
    bytes[11] = static_cast<std::uint8_t>(ext & 0xFF);
  }

  // --- payload ---
  // Offset of the payload in the packet; kPacketSize when there is none or the
  // adaptation field is malformed.
  [[nodiscard]] constexpr std::size_t payload_offset() const {
    if (!has_payload()) return kPacketSize;
    if (!has_adaptation()) return 4;
    if (adaptation_overflows()) return kPacketSize;
    return 5 + std::size_t{bytes[4]};
  }
  [[nodiscard]] std::span<const std::uint8_t> payload() const {
    const std::size_t off = payload_offset();
    return {bytes.data() + off, kPacketSize - off};
  }
  [[nodiscard]] std::span<std::uint8_t> payload() {
    const std::size_t off = payload_offset();
    return {bytes.data() + off, kPacketSize - off};
  }

  // Views raw bytes as a packet without copying. The caller guarantees 188 readable bytes.
  static const TsPacket& view(const std::uint8_t* p) {
    return *reinterpret_cast<const TsPacket*>(p);
  }
  static TsPacket& view(std::uint8_t* p) { return *reinterpret_cast<TsPacket*>(p); }

 private:
  [[nodiscard]] constexpr std::uint64_t read_clock(std::size_t at) const {
    const std::uint64_t base = (std::uint64_t{bytes[at]} << 25) | (std::uint64_t{bytes[at + 1]} << 17) |
                               (std::uint64_t{bytes[at + 2]} << 9) | (std::uint64_t{bytes[at + 3]} << 1) |
                               (std::uint64_t{bytes[at + 4]} >> 7);
    const std::uint64_t ext = ((std::uint64_t{bytes[at + 4]} & 1) << 8) | bytes[at + 5];
    return base * 300 + ext;
  }
};

static_assert(sizeof(TsPacket) == kPacketSize, "TsPacket must be exactly the 188 wire bytes");
static_assert(alignof(TsPacket) == 1, "TsPacket must be viewable at any byte offset");
static_assert(std::is_trivially_copyable_v<TsPacket>);
static_assert(std::is_standard_layout_v<TsPacket>);

// A null packet (PID 0x1FFF, payload of 0xFF), for stuffing.
[[nodiscard]] constexpr TsPacket make_null_packet() {
  TsPacket p{};
  p.bytes.fill(0xFF);
  p.bytes[0] = kSyncByte;
  p.bytes[1] = 0x1F;
  p.bytes[2] = 0xFF;
  p.bytes[3] = 0x10;
  return p;
}

// Forward distance a -> b on the PCR clock, modulo the 2^33*300 wrap.
[[nodiscard]] constexpr std::uint64_t pcr_delta(std::uint64_t a, std::uint64_t b) {
  return (b + kPcrWrap - a) % kPcrWrap;
}
// Forward distance a -> b on the 33-bit PTS clock.
[[nodiscard]] constexpr std::uint64_t pts_delta(std::uint64_t a, std::uint64_t b) {
  return (b + kPtsWrap - a) % kPtsWrap;
}

}  // namespace twincast::mpegts
