#include "twincast/mpegts/program.hpp"

namespace twincast::mpegts {

namespace {
bool has_tag(const std::vector<Descriptor>& ds, std::uint8_t tag) {
  for (const auto& d : ds)
    if (d.tag == tag) return true;
  return false;
}
// registration_descriptor (0x05) format_identifier, 0 when absent.
std::uint32_t registration(const std::vector<Descriptor>& ds) {
  for (const auto& d : ds) {
    if (d.tag == 0x05 && d.data.size() >= 4) {
      return (std::uint32_t{d.data[0]} << 24) | (std::uint32_t{d.data[1]} << 16) |
             (std::uint32_t{d.data[2]} << 8) | d.data[3];
    }
  }
  return 0;
}
constexpr std::uint32_t fourcc(const char (&s)[5]) {
  return (std::uint32_t(std::uint8_t(s[0])) << 24) | (std::uint32_t(std::uint8_t(s[1])) << 16) |
         (std::uint32_t(std::uint8_t(s[2])) << 8) | std::uint32_t(std::uint8_t(s[3]));
}
}  // namespace

Codec codec_from_stream(std::uint8_t stream_type, const std::vector<Descriptor>& ds) {
  switch (stream_type) {
    case 0x01:
    case 0x02:
      return Codec::kMpeg2Video;
    case 0x03:
    case 0x04:
      return Codec::kMpegAudio;
    case 0x0F:
      return Codec::kAac;
    case 0x11:
      return Codec::kAacLatm;
    case 0x1B:
      return Codec::kH264;
    case 0x24:
      return Codec::kHevc;
    case 0x81:
      return Codec::kAc3;  // ATSC A/52
    case 0x87:
      return Codec::kEac3;  // ATSC A/52 Annex G
    case 0x86:
      return Codec::kScte35;
    case 0x06: {
      if (has_tag(ds, 0x6A)) return Codec::kAc3;        // DVB AC-3_descriptor
      if (has_tag(ds, 0x7A)) return Codec::kEac3;       // DVB enhanced_AC-3_descriptor
      if (has_tag(ds, 0x59)) return Codec::kDvbSubtitle;  // subtitling_descriptor
      if (has_tag(ds, 0x56) || has_tag(ds, 0x46)) return Codec::kTeletext;
      const std::uint32_t reg = registration(ds);
      if (reg == fourcc("AC-3")) return Codec::kAc3;
      if (reg == fourcc("EAC3")) return Codec::kEac3;
      if (reg == fourcc("HEVC")) return Codec::kHevc;
      return Codec::kPrivateData;
    }
    case 0x05:
      return Codec::kPrivateData;
    default:
      return Codec::kUnknown;
  }
}

}  // namespace twincast::mpegts
