// SCTE-35 (ANSI/SCTE 35, Digital Program Insertion cueing): the splice_info_section
// (table_id 0xFC) as it arrives on a PMT stream of stream_type 0x86.
//
// parse_splice_info() decodes one whole section (table_id to CRC_32, as SectionAssembler
// delivers it) into plain values. What it reads:
//
//   * the header: section_length (must match the bytes given), sap_type, protocol_version,
//     encrypted_packet / encryption_algorithm, pts_adjustment, cw_index, tier,
//     splice_command_length (0xFFF, "unknown" in old encoders, is accepted for the
//     commands whose length follows from their syntax), splice_command_type;
//   * CRC_32 over the whole section (crc32_mpeg, like every PSI section), always;
//   * splice_insert (0x05): event id, cancel, out_of_network_indicator, program_splice /
//     component mode, splice_immediate, splice_time, break_duration (auto_return,
//     duration), unique_program_id, avail_num, avails_expected;
//   * time_signal (0x06): its splice_time;
//   * splice_null (0x00), splice_schedule (0x04), bandwidth_reservation (0x07),
//     private_command (0xFF) and reserved types: only their type (the caller counts them);
//   * the descriptor loop: segmentation_descriptor()s (tag 0x02, identifier "CUEI") are
//     decoded (event id, cancel, program / component flags, duration, UPID, type id,
//     segment numbers, sub-segment numbers when present); the other descriptors are
//     counted and skipped.
//
// An encrypted section (encrypted_packet = 1) is refused with Error::kEncrypted after the
// header and CRC checks: its command and descriptors cannot be read without the key.
//
// Every read is bounds-checked; a malformed section yields an error, never an exception
// or a read outside the span. Parsing allocates only for segmentation descriptors (a
// vector) and their UPIDs, so it belongs where cues are handled, not in a per-packet loop.
//
// Segmentation types that open or close a break (see segmentation_direction()):
//
//   out (start)                              in (end)
//   0x22 Break Start                         0x23 Break End
//   0x30 Provider Advertisement Start        0x31 Provider Advertisement End
//   0x32 Distributor Advertisement Start     0x33 Distributor Advertisement End
//   0x34 Provider Placement Opportunity St.  0x35 Provider Placement Opportunity End
//   0x36 Distributor Placement Opp. Start    0x37 Distributor Placement Opportunity End
//   0x38 Provider Overlay PO Start           0x39 Provider Overlay PO End
//   0x3A Distributor Overlay PO Start        0x3B Distributor Overlay PO End
//   0x3C Provider Promo Start                0x3D Provider Promo End
//   0x3E Distributor Promo Start             0x3F Distributor Promo End
//   0x44 Provider Ad Block Start             0x45 Provider Ad Block End
//   0x46 Distributor Ad Block Start          0x47 Distributor Ad Block End
//
// Everything else (program, chapter, credits, content identification, network...) is
// Direction::kNone: parsed, not a break.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace twincast::mpegts::scte35 {

inline constexpr std::uint8_t kTableId = 0xFC;
inline constexpr std::uint8_t kStreamType = 0x86;
inline constexpr std::uint32_t kCueIdentifier = 0x43554549;  // "CUEI"
inline constexpr std::uint8_t kSegmentationDescriptorTag = 0x02;

// Why a section was refused. X-macro: enum value, metric label.
#define TWINCAST_SCTE35_ERRORS(X)          \
  X(kOk, "ok")                             \
  X(kTruncated, "truncated")               \
  X(kBadTableId, "bad_table_id")           \
  X(kBadLength, "bad_length")              \
  X(kBadCrc, "bad_crc")                    \
  X(kEncrypted, "encrypted")               \
  X(kBadCommand, "bad_command")            \
  X(kBadDescriptor, "bad_descriptor")

enum class Error : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_SCTE35_ERRORS(TWINCAST_X)
#undef TWINCAST_X
  kCount
};

[[nodiscard]] constexpr std::string_view error_name(Error e) {
  switch (e) {
#define TWINCAST_X(e, s) \
  case Error::e:         \
    return s;
    TWINCAST_SCTE35_ERRORS(TWINCAST_X)
#undef TWINCAST_X
    case Error::kCount:
      break;
  }
  return "unknown";
}

enum class CommandType : std::uint8_t {
  kSpliceNull = 0x00,
  kSpliceSchedule = 0x04,
  kSpliceInsert = 0x05,
  kTimeSignal = 0x06,
  kBandwidthReservation = 0x07,
  kPrivateCommand = 0xFF,
};

struct SpliceTime {
  bool specified = false;  // time_specified_flag
  std::uint64_t pts = 0;   // pts_time, 33 bits, before pts_adjustment
};

struct BreakDuration {
  bool present = false;  // duration_flag
  bool auto_return = false;
  std::uint64_t duration = 0;  // 90 kHz, 33 bits
};

struct SpliceInsert {
  std::uint32_t event_id = 0;
  bool cancel = false;                 // splice_event_cancel_indicator (nothing below is set)
  bool out_of_network = false;         // out_of_network_indicator: 1 = out, 0 = in
  bool program_splice = true;          // program_splice_flag (false: component mode)
  bool immediate = false;              // splice_immediate_flag
  bool event_id_compliance = false;
  // Program mode: the splice_time (unless immediate). Component mode: the first
  // component's splice_time (components are not kept one by one).
  SpliceTime time;
  std::uint8_t component_count = 0;
  BreakDuration duration;
  std::uint16_t unique_program_id = 0;
  std::uint8_t avail_num = 0;
  std::uint8_t avails_expected = 0;
};

enum class Direction : std::uint8_t { kNone, kOut, kIn };

struct SegmentationDescriptor {
  std::uint32_t event_id = 0;              // segmentation_event_id
  bool cancel = false;                     // segmentation_event_cancel_indicator (nothing below is set)
  bool program_segmentation = true;
  bool has_duration = false;
  std::uint64_t duration = 0;              // segmentation_duration, 90 kHz, 40 bits
  bool delivery_not_restricted = true;
  std::uint8_t upid_type = 0;
  std::vector<std::uint8_t> upid;
  std::uint8_t type_id = 0;                // segmentation_type_id
  std::uint8_t segment_num = 0;
  std::uint8_t segments_expected = 0;
  bool has_sub_segments = false;
  std::uint8_t sub_segment_num = 0;
  std::uint8_t sub_segments_expected = 0;
};

struct SpliceInfo {
  std::uint8_t sap_type = 3;
  std::uint8_t protocol_version = 0;
  bool encrypted = false;
  std::uint8_t encryption_algorithm = 0;
  std::uint64_t pts_adjustment = 0;  // 33 bits, added (modulo 2^33) to every pts_time
  std::uint8_t cw_index = 0;
  std::uint16_t tier = 0xFFF;
  std::uint8_t command_type = 0;     // CommandType, or any other value (reserved)
  SpliceInsert insert;               // command_type kSpliceInsert
  SpliceTime time_signal;            // command_type kTimeSignal
  std::vector<SegmentationDescriptor> segmentation;  // in loop order
  std::size_t other_descriptors = 0;  // descriptors in the loop that are not segmentation ones
};

// Decodes one whole splice_info_section (table_id .. CRC_32). On Error::kOk `out` holds
// the section; on any other value `out` is unspecified. Never throws (but for
// std::bad_alloc from the segmentation vector).
[[nodiscard]] Error parse_splice_info(std::span<const std::uint8_t> section, SpliceInfo& out);

// pts_time + pts_adjustment, modulo 2^33 (SCTE 35 9.6.1).
[[nodiscard]] constexpr std::uint64_t adjusted_pts(std::uint64_t pts, std::uint64_t adjustment) {
  return (pts + adjustment) & ((std::uint64_t{1} << 33) - 1);
}

// Whether a segmentation_type_id opens or closes a break (table above).
[[nodiscard]] constexpr Direction segmentation_direction(std::uint8_t type_id) {
  switch (type_id) {
    case 0x22: case 0x30: case 0x32: case 0x34: case 0x36: case 0x38:
    case 0x3A: case 0x3C: case 0x3E: case 0x44: case 0x46:
      return Direction::kOut;
    case 0x23: case 0x31: case 0x33: case 0x35: case 0x37: case 0x39:
    case 0x3B: case 0x3D: case 0x3F: case 0x45: case 0x47:
      return Direction::kIn;
    default:
      return Direction::kNone;
  }
}

}  // namespace twincast::mpegts::scte35
