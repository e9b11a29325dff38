// SCTE-35 splice_info_section decoding (ANSI/SCTE 35, 9.6 splice_info_section, 9.7
// commands, 9.8 splice_time / break_duration, 10.3.3 segmentation_descriptor).
#include "twincast/mpegts/scte35.hpp"

#include "twincast/mpegts/crc32.hpp"

namespace twincast::mpegts::scte35 {

namespace {

constexpr std::size_t kHeaderSize = 14;       // table_id .. splice_command_type
constexpr std::size_t kCrcSize = 4;
constexpr std::size_t kMinSectionLength = 17;  // 11 header bytes after section_length, loop length, CRC
constexpr std::size_t kMaxSectionLength = 4093;
constexpr std::uint16_t kUnknownCommandLength = 0xFFF;

// Big-endian reads over a span; reading past the end returns zeros and sets failed().
class Cursor {
 public:
  explicit Cursor(std::span<const std::uint8_t> d) : d_(d) {}

  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] std::size_t pos() const { return pos_; }
  [[nodiscard]] std::size_t left() const { return failed_ ? 0 : d_.size() - pos_; }

  std::uint8_t u8() {
    if (pos_ >= d_.size()) {
      failed_ = true;
      return 0;
    }
    return d_[pos_++];
  }
  // n <= 8 bytes, big-endian.
  std::uint64_t be(std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | u8();
    return v;
  }
  std::span<const std::uint8_t> take(std::size_t n) {
    if (n > left()) {
      failed_ = true;
      pos_ = d_.size();
      return {};
    }
    const auto s = d_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const std::uint8_t> d_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

constexpr std::uint64_t kPts33 = (std::uint64_t{1} << 33) - 1;

// splice_time(): time_specified_flag, then 6 reserved bits and pts_time (5 bytes), or 7
// reserved bits (1 byte).
SpliceTime read_splice_time(Cursor& c) {
  SpliceTime t;
  const std::uint8_t first = c.u8();
  t.specified = (first & 0x80) != 0;
  if (t.specified) t.pts = ((std::uint64_t{first} << 32) | c.be(4)) & kPts33;
  return t;
}

// break_duration(): auto_return, 6 reserved bits, duration (33 bits): 5 bytes.
BreakDuration read_break_duration(Cursor& c) {
  BreakDuration b;
  const std::uint8_t first = c.u8();
  b.present = true;
  b.auto_return = (first & 0x80) != 0;
  b.duration = ((std::uint64_t{first} << 32) | c.be(4)) & kPts33;
  return b;
}

bool read_splice_insert(Cursor& c, SpliceInsert& s) {
  s = SpliceInsert{};
  s.event_id = static_cast<std::uint32_t>(c.be(4));
  s.cancel = (c.u8() & 0x80) != 0;
  if (!s.cancel) {
    const std::uint8_t f = c.u8();
    s.out_of_network = (f & 0x80) != 0;
    s.program_splice = (f & 0x40) != 0;
    const bool duration_flag = (f & 0x20) != 0;
    s.immediate = (f & 0x10) != 0;
    s.event_id_compliance = (f & 0x08) != 0;
    if (s.program_splice && !s.immediate) s.time = read_splice_time(c);
    if (!s.program_splice) {
      s.component_count = c.u8();
      for (std::uint8_t i = 0; i < s.component_count && !c.failed(); ++i) {
        (void)c.u8();  // component_tag
        if (!s.immediate) {
          const SpliceTime t = read_splice_time(c);
          if (i == 0) s.time = t;
        }
      }
    }
    if (duration_flag) s.duration = read_break_duration(c);
    s.unique_program_id = static_cast<std::uint16_t>(c.be(2));
    s.avail_num = c.u8();
    s.avails_expected = c.u8();
  }
  return !c.failed();
}

// Reads the command at the cursor. Returns false when it does not fit.
bool read_command(Cursor& c, SpliceInfo& out) {
  switch (static_cast<CommandType>(out.command_type)) {
    case CommandType::kSpliceNull:
      return true;
    case CommandType::kSpliceInsert:
      return read_splice_insert(c, out.insert);
    case CommandType::kTimeSignal:
      out.time_signal = read_splice_time(c);
      return !c.failed();
    case CommandType::kSpliceSchedule:
    case CommandType::kBandwidthReservation:
    case CommandType::kPrivateCommand:
      break;
  }
  return true;  // not decoded; its bytes are skipped by splice_command_length
}

// True for the segmentation types that may carry sub_segment_num / sub_segments_expected
// (SCTE 35 2019 and later; older encoders end the descriptor before them).
constexpr bool may_have_sub_segments(std::uint8_t type_id) {
  switch (type_id) {
    case 0x34: case 0x36: case 0x38: case 0x3A: case 0x44: case 0x46:
      return true;
    default:
      return false;
  }
}

// segmentation_descriptor() body after splice_descriptor_tag, descriptor_length and the
// identifier.
bool read_segmentation(Cursor& c, SegmentationDescriptor& d) {
  d.event_id = static_cast<std::uint32_t>(c.be(4));
  d.cancel = (c.u8() & 0x80) != 0;
  if (d.cancel) return !c.failed();
  const std::uint8_t f = c.u8();
  d.program_segmentation = (f & 0x80) != 0;
  d.has_duration = (f & 0x40) != 0;
  d.delivery_not_restricted = (f & 0x20) != 0;
  if (!d.program_segmentation) {
    const std::uint8_t n = c.u8();
    (void)c.take(std::size_t{n} * 6);  // component_tag, 7 reserved bits, pts_offset (33)
  }
  if (d.has_duration) d.duration = c.be(5);
  d.upid_type = c.u8();
  const std::uint8_t upid_length = c.u8();
  const auto upid = c.take(upid_length);
  if (c.failed()) return false;
  d.upid.assign(upid.begin(), upid.end());
  d.type_id = c.u8();
  d.segment_num = c.u8();
  d.segments_expected = c.u8();
  if (c.failed()) return false;
  if (may_have_sub_segments(d.type_id) && c.left() >= 2) {
    d.has_sub_segments = true;
    d.sub_segment_num = c.u8();
    d.sub_segments_expected = c.u8();
  }
  return !c.failed();
}

Error read_descriptors(std::span<const std::uint8_t> loop, SpliceInfo& out) {
  Cursor c(loop);
  while (c.left() > 0) {
    const std::uint8_t tag = c.u8();
    const std::uint8_t length = c.u8();
    const auto body = c.take(length);
    if (c.failed()) return Error::kBadDescriptor;
    Cursor b(body);
    const auto identifier = static_cast<std::uint32_t>(b.be(4));
    if (b.failed()) return Error::kBadDescriptor;  // every splice_descriptor starts with one
    if (tag != kSegmentationDescriptorTag || identifier != kCueIdentifier) {
      ++out.other_descriptors;
      continue;
    }
    SegmentationDescriptor d;
    if (!read_segmentation(b, d)) return Error::kBadDescriptor;
    out.segmentation.push_back(std::move(d));
  }
  return Error::kOk;
}

}  // namespace

Error parse_splice_info(std::span<const std::uint8_t> s, SpliceInfo& out) {
  out = SpliceInfo{};
  if (s.size() < 3) return Error::kTruncated;
  if (s[0] != kTableId) return Error::kBadTableId;
  const std::size_t length = (std::size_t{s[1] & 0x0FU} << 8) | s[2];
  if (length < kMinSectionLength || length > kMaxSectionLength) return Error::kBadLength;
  if (s.size() < 3 + length) return Error::kTruncated;
  if (s.size() > 3 + length) return Error::kBadLength;
  if (crc32_mpeg(s) != 0) return Error::kBadCrc;

  out.sap_type = static_cast<std::uint8_t>((s[1] >> 4) & 0x03);
  out.protocol_version = s[3];
  out.encrypted = (s[4] & 0x80) != 0;
  out.encryption_algorithm = static_cast<std::uint8_t>((s[4] >> 1) & 0x3F);
  out.pts_adjustment = ((std::uint64_t{s[4]} & 1) << 32) | (std::uint64_t{s[5]} << 24) | (std::uint64_t{s[6]} << 16) |
                       (std::uint64_t{s[7]} << 8) | s[8];
  out.cw_index = s[9];
  out.tier = static_cast<std::uint16_t>((std::uint16_t{s[10]} << 4) | (s[11] >> 4));
  const auto command_length = static_cast<std::uint16_t>(((s[11] & 0x0FU) << 8) | s[12]);
  out.command_type = s[13];
  if (out.encrypted) return Error::kEncrypted;

  // What follows the header, up to (not including) CRC_32.
  const std::span<const std::uint8_t> body = s.subspan(kHeaderSize, s.size() - kHeaderSize - kCrcSize);
  std::size_t command_end = 0;
  if (command_length == kUnknownCommandLength) {
    // Legacy "unknown length": only commands whose syntax gives their length.
    const auto type = static_cast<CommandType>(out.command_type);
    if (type != CommandType::kSpliceNull && type != CommandType::kSpliceInsert && type != CommandType::kTimeSignal)
      return Error::kBadCommand;
    Cursor c(body);
    if (!read_command(c, out)) return Error::kBadCommand;
    command_end = c.pos();
  } else {
    if (command_length > body.size()) return Error::kBadLength;
    Cursor c(body.first(command_length));
    if (!read_command(c, out)) return Error::kBadCommand;
    command_end = command_length;
  }

  Cursor rest(body.subspan(command_end));
  const auto loop_length = static_cast<std::size_t>(rest.be(2));
  if (rest.failed()) return Error::kTruncated;
  const auto loop = rest.take(loop_length);
  if (rest.failed()) return Error::kBadDescriptor;
  // Unencrypted sections have nothing between the loop and CRC_32; trailing bytes are
  // tolerated (alignment_stuffing is only defined for encrypted ones).
  return read_descriptors(loop, out);
}

}  // namespace twincast::mpegts::scte35
