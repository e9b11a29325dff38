// AccessUnitScanner: PES headers, start codes, keyframes and parameter sets of one PID.
#include "twincast/mpegts/access_unit.hpp"

#include <algorithm>
#include <cstring>

#include "bit_reader.hpp"
#include "twincast/mpegts/pes.hpp"

namespace twincast::mpegts {

namespace {
constexpr std::uint32_t kZerosCap = 1u << 20;
}  // namespace

AccessUnitScanner::AccessUnitScanner(Codec codec)
    : codec_(codec), is_video_(codec_kind(codec) == StreamKind::kVideo) {
  params_.codec = codec;
}

void AccessUnitScanner::reset() {
  in_pes_ = false;
  pes_has_pts_ = false;
  zeros_ = 0;
  head_active_ = false;
  head_len_ = 0;
  capturing_ = false;
  capture_overflow_ = false;
  cap_len_ = 0;
  audio_len_ = 0;
}

void AccessUnitScanner::set_params(const StreamParams& p, AccessUnitInfo& out) {
  StreamParams q = p;
  // The PMT's codec stays authoritative, except that the bitstream tells AC-3 from E-AC-3.
  q.codec = codec_;
  if (codec_ == Codec::kAc3 || codec_ == Codec::kEac3 || codec_ == Codec::kUnknown) q.codec = p.codec;
  if (params_known_ && q == params_) return;
  params_ = q;
  params_known_ = true;
  out.params_changed = true;
  ++stats_.n_params_changes;
}

AccessUnitInfo AccessUnitScanner::push(const TsPacket& pkt) {
  AccessUnitInfo out;
  ++stats_.n_packets;
  if (pkt.transport_error() || pkt.scrambling() != 0) {
    ++stats_.n_skipped;
    return out;
  }
  out.random_access = pkt.random_access();
  std::span<const std::uint8_t> payload = pkt.payload();
  if (pkt.payload_unit_start()) {
    end_pes(out);
    const auto h = parse_pes_header(payload);
    if (!h) {
      out.pes_error = true;
      ++stats_.n_pes_header_errors;
      return out;
    }
    ++stats_.n_pes;
    in_pes_ = true;
    out.pes_start = true;
    out.has_pts = h->has_pts;
    out.has_dts = h->has_dts;
    out.pts = h->pts;
    out.dts = h->dts;
    pes_has_pts_ = h->has_pts;
    pes_pts_ = h->pts;
    payload = payload.subspan(h->header_size);
  }
  if (!in_pes_ || payload.empty()) return out;
  if (is_video_) {
    scan_video(payload.data(), payload.size(), out);
  } else if (codec_kind(codec_) == StreamKind::kAudio) {
    scan_audio(payload.data(), payload.size(), out);
  }
  return out;
}

// The PES ended (a new one starts): a NAL cannot run on into the next PES.
void AccessUnitScanner::end_pes(AccessUnitInfo& out) {
  if (head_active_) evaluate_head(out);
  if (capturing_) finish_capture(cap_len_, out);
  if (audio_len_ > 0 && audio_len_ < kAudioHead) parse_audio_head(out);  // a short PES
  zeros_ = 0;
  audio_len_ = 0;
  in_pes_ = false;
}

// Bytes are examined one by one only right after a start code (kHeadBytes) and while a
// parameter set is being captured; elsewhere memchr jumps to the next 0x01.
void AccessUnitScanner::scan_video(const std::uint8_t* p, std::size_t n, AccessUnitInfo& out) {
  std::size_t i = 0;
  while (i < n) {
    if (head_active_ || capturing_) {
      scan_byte(p[i++], out);
      continue;
    }
    const auto* q = static_cast<const std::uint8_t*>(std::memchr(p + i, 0x01, n - i));
    if (q == nullptr) {
      // Keep the run of zeros at the end for a start code split across packets.
      std::size_t z = 0;
      while (z < n - i && p[n - 1 - z] == 0) ++z;
      zeros_ = z == n - i ? std::min<std::uint32_t>(kZerosCap, zeros_ + static_cast<std::uint32_t>(z))
                          : static_cast<std::uint32_t>(z);
      return;
    }
    const auto j = static_cast<std::size_t>(q - p);
    std::size_t z = 0;
    while (z < 3 && z < j - i && p[j - 1 - z] == 0) ++z;
    if (z == j - i) z += zeros_;  // the zero run reaches back into the previous bytes
    zeros_ = static_cast<std::uint32_t>(std::min<std::size_t>(z, kZerosCap));
    scan_byte(p[j], out);
    i = j + 1;
  }
}

void AccessUnitScanner::scan_byte(std::uint8_t b, AccessUnitInfo& out) {
  if (head_active_) {
    head_[head_len_++] = b;
    if (head_len_ == 1) on_code_byte(b, out);
    if (head_len_ == kHeadBytes) evaluate_head(out);
  }
  if (capturing_) {
    if (cap_len_ < cap_.size()) {
      cap_[cap_len_++] = b;
    } else if (!capture_overflow_) {
      capture_overflow_ = true;
      ++stats_.n_param_set_overflows;
    }
  }
  if (b == 0) {
    if (zeros_ < kZerosCap) ++zeros_;
    return;
  }
  if (b == 1 && zeros_ >= 2) on_start_code(out);
  zeros_ = 0;
}

void AccessUnitScanner::on_start_code(AccessUnitInfo& out) {
  if (head_active_) evaluate_head(out);  // a short NAL: decide with what there is
  head_active_ = true;
  head_len_ = 0;
  if (capturing_) {
    // The prefix (its zeros and the 0x01) went into cap_; remember where it began.
    const std::size_t prefix = std::size_t{zeros_} + 1;
    cap_prefix_pos_ = cap_len_ >= prefix ? cap_len_ - prefix : 0;
  }
}

// First byte after a start code: ends or continues a capture, starts a new one.
void AccessUnitScanner::on_code_byte(std::uint8_t b, AccessUnitInfo& out) {
  if (capturing_) {
    // An MPEG-2 sequence header runs on through its extensions and user data.
    if (codec_ == Codec::kMpeg2Video && (b == 0xB5 || b == 0xB2)) return;
    finish_capture(cap_prefix_pos_, out);
  }
  bool param_set = false;
  switch (codec_) {
    case Codec::kH264: param_set = (b & 0x9F) == 0x07; break;  // forbidden bit 0, type 7
    case Codec::kHevc: param_set = (b & 0xFE) == (33 << 1); break;
    case Codec::kMpeg2Video: param_set = b == 0xB3; break;
    default: break;
  }
  if (param_set) {
    capturing_ = true;
    capture_overflow_ = false;
    cap_len_ = 0;  // scan_byte appends b next
  }
}

void AccessUnitScanner::evaluate_head(AccessUnitInfo& out) {
  head_active_ = false;
  const std::size_t n = head_len_;
  const std::uint8_t* h = head_.data();
  bool key = false;
  bool idr = false;
  switch (codec_) {
    case Codec::kH264: {
      if (n < 2) break;
      const unsigned type = h[0] & 0x1F;
      if ((h[1] & 0x80) == 0) break;  // first_mb_in_slice != 0: not the first slice
      if (type == 5) {
        key = idr = true;
      } else if (type == 1) {
        BitReader br({h + 1, n - 1});
        br.skip(1);  // first_mb_in_slice = 0
        const std::uint32_t slice_type = br.ue();
        key = !br.failed() && (slice_type % 5 == 2 || slice_type % 5 == 4);  // I or SI
      }
      break;
    }
    case Codec::kHevc: {
      if (n < 3) break;
      const unsigned type = (h[0] >> 1) & 0x3F;
      const unsigned layer = ((h[0] & 1u) << 5) | (h[1] >> 3);
      if (type >= 16 && type <= 23 && layer == 0 && (h[2] & 0x80) != 0) {  // first slice segment
        key = true;
        idr = type <= 20;  // BLA and IDR; CRA (21) is open-GOP
      }
      break;
    }
    case Codec::kMpeg2Video:
      if (n >= 3 && h[0] == 0x00) key = ((h[2] >> 3) & 7) == 1;  // picture_coding_type I
      break;
    default:
      break;
  }
  if (key) {
    out.keyframe = true;
    out.keyframe_idr = out.keyframe_idr || idr;
    out.keyframe_has_pts = pes_has_pts_;
    out.keyframe_pts = pes_pts_;
    ++stats_.n_keyframes;
    if (idr) ++stats_.n_idr;
  }
}

void AccessUnitScanner::finish_capture(std::size_t len, AccessUnitInfo& out) {
  capturing_ = false;
  if (capture_overflow_) return;
  len = std::min(len, cap_len_);
  while (len > 0 && cap_[len - 1] == 0) --len;  // trailing_zero bytes / next prefix
  if (len == 0) return;
  if (params_known_ && len == last_len_ && std::memcmp(cap_.data(), last_.data(), len) == 0) return;
  std::copy_n(cap_.data(), len, last_.data());
  last_len_ = len;
  const std::span<const std::uint8_t> ps(cap_.data(), len);
  std::optional<StreamParams> p;
  switch (codec_) {
    case Codec::kH264: p = parse_h264_sps(ps); break;
    case Codec::kHevc: p = parse_hevc_sps(ps); break;
    case Codec::kMpeg2Video: p = parse_mpeg2_sequence_header(ps); break;
    default: break;
  }
  if (!p) {
    ++stats_.n_param_set_errors;
    return;
  }
  set_params(*p, out);
}

// Gathers the first kAudioHead ES bytes of each PES and looks for a frame header in them.
void AccessUnitScanner::scan_audio(const std::uint8_t* p, std::size_t n, AccessUnitInfo& out) {
  if (audio_len_ >= kAudioHead) return;
  const std::size_t take = std::min(n, kAudioHead - audio_len_);
  std::copy_n(p, take, audio_.data() + audio_len_);
  audio_len_ += take;
  if (audio_len_ == kAudioHead) parse_audio_head(out);
}

void AccessUnitScanner::parse_audio_head(AccessUnitInfo& out) {
  const std::span<const std::uint8_t> a(audio_.data(), audio_len_);
  for (std::size_t i = 0; i + 4 <= a.size(); ++i) {
    std::optional<StreamParams> sp;
    switch (codec_) {
      case Codec::kAac: sp = parse_adts_header(a.subspan(i)); break;
      case Codec::kAc3:
      case Codec::kEac3: sp = parse_ac3_header(a.subspan(i)); break;
      case Codec::kMpegAudio: sp = parse_mpeg_audio_header(a.subspan(i)); break;
      default: return;
    }
    if (sp) {
      set_params(*sp, out);
      return;
    }
  }
}

}  // namespace twincast::mpegts
