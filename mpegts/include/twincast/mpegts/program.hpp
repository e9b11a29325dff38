// The program model: what a transport stream carries, as learnt from its PSI/SI.
//
// Built by PsiDecoder from PAT, PMT, SDT and NIT; read by the analyzer, the remux engine,
// the HLS packager and the tools. Plain values, allocated when the PSI changes, never
// per packet.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace twincast::mpegts {

// Codecs an IPTV headend meets. X-macro: enum value, name used in JSON and metrics.
#define TWINCAST_CODECS(X)          \
  X(kUnknown, "unknown")            \
  X(kMpeg2Video, "mpeg2video")      \
  X(kH264, "h264")                  \
  X(kHevc, "hevc")                  \
  X(kMpegAudio, "mpeg_audio")       \
  X(kAac, "aac")                    \
  X(kAacLatm, "aac_latm")           \
  X(kAc3, "ac3")                    \
  X(kEac3, "eac3")                  \
  X(kDvbSubtitle, "dvb_subtitle")   \
  X(kTeletext, "teletext")          \
  X(kScte35, "scte35")              \
  X(kPrivateData, "private_data")

enum class Codec : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_CODECS(TWINCAST_X)
#undef TWINCAST_X
};

[[nodiscard]] constexpr std::string_view codec_name(Codec c) {
  switch (c) {
#define TWINCAST_X(e, s) \
  case Codec::e:         \
    return s;
    TWINCAST_CODECS(TWINCAST_X)
#undef TWINCAST_X
  }
  return "unknown";
}

enum class StreamKind : std::uint8_t { kOther, kVideo, kAudio, kSubtitle, kData };

[[nodiscard]] constexpr StreamKind codec_kind(Codec c) {
  switch (c) {
    case Codec::kMpeg2Video:
    case Codec::kH264:
    case Codec::kHevc:
      return StreamKind::kVideo;
    case Codec::kMpegAudio:
    case Codec::kAac:
    case Codec::kAacLatm:
    case Codec::kAc3:
    case Codec::kEac3:
      return StreamKind::kAudio;
    case Codec::kDvbSubtitle:
    case Codec::kTeletext:
      return StreamKind::kSubtitle;
    case Codec::kScte35:
    case Codec::kPrivateData:
      return StreamKind::kData;
    case Codec::kUnknown:
      break;
  }
  return StreamKind::kOther;
}

// A descriptor as carried in a PMT/SDT/NIT loop: tag and raw body.
struct Descriptor {
  std::uint8_t tag = 0;
  std::vector<std::uint8_t> data;
  friend bool operator==(const Descriptor&, const Descriptor&) = default;
};

struct ElementaryStream {
  std::uint16_t pid = 0;
  std::uint8_t stream_type = 0;
  Codec codec = Codec::kUnknown;
  std::string language;  // ISO 639-2 code from the PMT, empty when none
  std::vector<Descriptor> descriptors;
  friend bool operator==(const ElementaryStream&, const ElementaryStream&) = default;
};

struct Service {
  std::uint16_t service_id = 0;  // program_number
  std::uint16_t pmt_pid = 0;
  std::uint16_t pcr_pid = 0x1FFF;
  bool has_pmt = false;          // a PMT for this program has been received
  std::uint8_t pmt_version = 0;
  std::string name;              // from the SDT service_descriptor
  std::string provider;
  std::uint8_t service_type = 0;
  std::uint16_t lcn = 0;         // logical channel number from the NIT, 0 when none
  bool eit_present_following = false;  // generated SDT: EIT_present_following_flag
  bool eit_schedule = false;           // generated SDT: EIT_schedule_flag
  std::vector<Descriptor> program_descriptors;
  std::vector<ElementaryStream> streams;
  friend bool operator==(const Service&, const Service&) = default;
};

struct ProgramModel {
  std::uint16_t transport_stream_id = 0;
  std::uint16_t original_network_id = 0;
  std::uint16_t network_id = 0;
  std::string network_name;
  bool has_pat = false;
  std::uint8_t pat_version = 0;
  std::vector<Service> services;  // in PAT order
  bool has_cat = false;                    // a CAT has been received
  std::vector<Descriptor> cat_descriptors;  // the CAT's descriptors, in order (CA_descriptors name EMM PIDs)
  std::vector<std::uint16_t> ca_pids;       // the EMM PIDs of its CA_descriptors, each once

  [[nodiscard]] const Service* find_service(std::uint16_t service_id) const {
    for (const auto& s : services)
      if (s.service_id == service_id) return &s;
    return nullptr;
  }
  [[nodiscard]] Service* find_service(std::uint16_t service_id) {
    for (auto& s : services)
      if (s.service_id == service_id) return &s;
    return nullptr;
  }
  friend bool operator==(const ProgramModel&, const ProgramModel&) = default;
};

// Codec from a PMT stream_type and its ES descriptors (DVB signals AC-3, E-AC-3,
// subtitles and teletext with stream_type 0x06 plus a descriptor).
[[nodiscard]] Codec codec_from_stream(std::uint8_t stream_type, const std::vector<Descriptor>& descriptors);

}  // namespace twincast::mpegts
