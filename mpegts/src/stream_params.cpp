// Codec parameters from parameter sets and frame headers, and their RFC 6381 strings.
//   H.264 SPS: ITU-T H.264 7.3.2.1.1 and E.1.1.   HEVC SPS: ITU-T H.265 7.3.2.2, 7.3.3, E.2.1.
//   MPEG-2 video: ISO/IEC 13818-2 6.2.2.1, 6.2.2.3.   ADTS: ISO/IEC 14496-3 1.A.2.2.
//   AC-3 / E-AC-3: ATSC A/52 5.3 and E.2.3.   MPEG audio: ISO/IEC 11172-3 2.4.1.3.
#include <algorithm>
#include <array>
#include <cstdio>
#include <numeric>

#include "bit_reader.hpp"
#include "twincast/mpegts/access_unit.hpp"

namespace twincast::mpegts {

namespace {

constexpr std::size_t kRbspMax = AccessUnitScanner::kParamSetMax;

void set_frame_rate(StreamParams& p, std::uint64_t num, std::uint64_t den) {
  if (num == 0 || den == 0) return;
  const std::uint64_t g = std::gcd(num, den);
  num /= g;
  den /= g;
  if (num > UINT32_MAX || den > UINT32_MAX) return;
  p.frame_rate_num = static_cast<std::uint32_t>(num);
  p.frame_rate_den = static_cast<std::uint32_t>(den);
}

bool h264_scaling_list(BitReader& br, unsigned size) {
  std::int32_t last = 8;
  std::int32_t next = 8;
  for (unsigned j = 0; j < size; ++j) {
    if (next != 0) {
      const std::int32_t delta = br.se();
      if (delta < -128 || delta > 127 || br.failed()) return false;
      next = (last + delta + 256) % 256;
    }
    if (next != 0) last = next;
  }
  return true;
}

bool h264_high_profile(unsigned profile_idc) {
  switch (profile_idc) {
    case 100: case 110: case 122: case 244: case 44: case 83:
    case 86: case 118: case 128: case 138: case 139: case 134: case 135:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::optional<StreamParams> parse_h264_sps(std::span<const std::uint8_t> nal) {
  std::array<std::uint8_t, kRbspMax> rbsp;
  const std::size_t n = unescape_rbsp(nal, rbsp);
  BitReader br({rbsp.data(), n});
  if (br.bit() != 0) return std::nullopt;  // forbidden_zero_bit
  br.skip(2);                              // nal_ref_idc
  if (br.bits(5) != 7) return std::nullopt;
  StreamParams p;
  p.codec = Codec::kH264;
  p.profile = static_cast<std::uint8_t>(br.bits(8));
  p.constraint_flags = static_cast<std::uint8_t>(br.bits(8));
  p.level = static_cast<std::uint8_t>(br.bits(8));
  if (br.ue() > 31) return std::nullopt;  // seq_parameter_set_id
  unsigned chroma_array_type = 1;
  if (h264_high_profile(p.profile)) {
    const std::uint32_t chroma = br.ue();
    if (chroma > 3) return std::nullopt;
    p.chroma_format_idc = static_cast<std::uint8_t>(chroma);
    chroma_array_type = chroma;
    if (chroma == 3 && br.flag()) chroma_array_type = 0;  // separate_colour_plane_flag
    const std::uint32_t depth_luma = br.ue();
    if (depth_luma > 6 || br.ue() > 6) return std::nullopt;
    p.bit_depth = static_cast<std::uint8_t>(8 + depth_luma);
    br.skip(1);  // qpprime_y_zero_transform_bypass_flag
    if (br.flag()) {  // seq_scaling_matrix_present_flag
      const unsigned lists = chroma != 3 ? 8 : 12;
      for (unsigned i = 0; i < lists; ++i)
        if (br.flag() && !h264_scaling_list(br, i < 6 ? 16 : 64)) return std::nullopt;
    }
  }
  if (br.ue() > 12) return std::nullopt;  // log2_max_frame_num_minus4
  const std::uint32_t poc_type = br.ue();
  if (poc_type == 0) {
    if (br.ue() > 12) return std::nullopt;  // log2_max_pic_order_cnt_lsb_minus4
  } else if (poc_type == 1) {
    br.skip(1);  // delta_pic_order_always_zero_flag
    br.se();     // offset_for_non_ref_pic
    br.se();     // offset_for_top_to_bottom_field
    const std::uint32_t cycle = br.ue();
    if (cycle > 255) return std::nullopt;
    for (std::uint32_t i = 0; i < cycle && !br.failed(); ++i) br.se();
  } else if (poc_type != 2) {
    return std::nullopt;
  }
  br.ue();     // max_num_ref_frames
  br.skip(1);  // gaps_in_frame_num_value_allowed_flag
  const std::uint32_t width_mbs = br.ue() + 1;
  const std::uint32_t height_map_units = br.ue() + 1;
  const bool frame_mbs_only = br.flag();
  if (!frame_mbs_only) br.skip(1);  // mb_adaptive_frame_field_flag
  br.skip(1);                       // direct_8x8_inference_flag
  std::uint32_t crop_l = 0, crop_r = 0, crop_t = 0, crop_b = 0;
  if (br.flag()) {
    crop_l = br.ue();
    crop_r = br.ue();
    crop_t = br.ue();
    crop_b = br.ue();
  }
  if (br.failed()) return std::nullopt;
  const std::uint64_t sub_w = (chroma_array_type == 1 || chroma_array_type == 2) ? 2 : 1;
  const std::uint64_t sub_h = chroma_array_type == 1 ? 2 : 1;
  const std::uint64_t frame_factor = frame_mbs_only ? 1 : 2;
  const std::uint64_t crop_x = sub_w;
  const std::uint64_t crop_y = sub_h * frame_factor;
  const std::uint64_t w = std::uint64_t{width_mbs} * 16;
  const std::uint64_t h = frame_factor * height_map_units * 16;
  const std::uint64_t cw = crop_x * (std::uint64_t{crop_l} + crop_r);
  const std::uint64_t ch = crop_y * (std::uint64_t{crop_t} + crop_b);
  if (cw >= w || ch >= h || w - cw > 65535 || h - ch > 65535) return std::nullopt;
  p.width = static_cast<std::uint16_t>(w - cw);
  p.height = static_cast<std::uint16_t>(h - ch);
  p.progressive = frame_mbs_only;

  // VUI: only as far as timing_info; a cut VUI leaves the frame rate unknown.
  if (br.flag()) {
    if (br.flag() && br.bits(8) == 255) br.skip(32);  // aspect_ratio_idc, sar
    if (br.flag()) br.skip(1);                        // overscan
    if (br.flag()) {                                  // video_signal_type
      br.skip(4);
      if (br.flag()) br.skip(24);  // colour description
    }
    if (br.flag()) {  // chroma_loc_info
      br.ue();
      br.ue();
    }
    if (br.flag()) {  // timing_info_present_flag
      const std::uint32_t units = br.bits(32);
      const std::uint32_t scale = br.bits(32);
      // Frame rate = time_scale / (2 * num_units_in_tick) (one tick per field).
      if (!br.failed()) set_frame_rate(p, scale, 2 * std::uint64_t{units});
    }
  }
  return p;
}

namespace {

// profile_tier_level(1, max_sub_layers_minus1), 7.3.3.
bool hevc_profile_tier_level(BitReader& br, unsigned max_sub_layers_minus1, StreamParams& p) {
  p.hevc_profile_space = static_cast<std::uint8_t>(br.bits(2));
  p.hevc_tier_flag = br.flag();
  p.profile = static_cast<std::uint8_t>(br.bits(5));
  p.hevc_compatibility_flags = br.bits(32);
  p.hevc_constraint_flags = br.bits64(48);
  p.level = static_cast<std::uint8_t>(br.bits(8));
  std::array<bool, 8> profile_present{};
  std::array<bool, 8> level_present{};
  for (unsigned i = 0; i < max_sub_layers_minus1; ++i) {
    profile_present[i] = br.flag();
    level_present[i] = br.flag();
  }
  if (max_sub_layers_minus1 > 0)
    for (unsigned i = max_sub_layers_minus1; i < 8; ++i) br.skip(2);
  for (unsigned i = 0; i < max_sub_layers_minus1; ++i) {
    if (profile_present[i]) br.skip(88);
    if (level_present[i]) br.skip(8);
  }
  return !br.failed();
}

bool hevc_scaling_list_data(BitReader& br) {
  for (unsigned size_id = 0; size_id < 4; ++size_id) {
    for (unsigned matrix_id = 0; matrix_id < 6; matrix_id += size_id == 3 ? 3 : 1) {
      if (!br.flag()) {
        br.ue();  // scaling_list_pred_matrix_id_delta
      } else {
        const unsigned coefs = std::min(64u, 1u << (4 + (size_id << 1)));
        if (size_id > 1) br.se();  // scaling_list_dc_coef_minus8
        for (unsigned i = 0; i < coefs; ++i) br.se();
      }
      if (br.failed()) return false;
    }
  }
  return true;
}

// st_ref_pic_set(idx) as in the SPS; num_delta_pocs keeps NumDeltaPocs of each set.
bool hevc_st_ref_pic_set(BitReader& br, unsigned idx, std::array<std::uint32_t, 65>& num_delta_pocs) {
  const bool inter = idx != 0 && br.flag();
  if (inter) {
    const unsigned ref = idx - 1;  // delta_idx_minus1 is only coded in slice headers
    br.skip(1);                    // delta_rps_sign
    br.ue();                       // abs_delta_rps_minus1
    std::uint32_t count = 0;
    for (std::uint32_t j = 0; j <= num_delta_pocs[ref]; ++j) {
      const bool used = br.flag();
      const bool use_delta = used ? true : br.flag();
      if (use_delta) ++count;
      if (br.failed()) return false;
    }
    if (count > 32) return false;
    num_delta_pocs[idx] = count;
  } else {
    const std::uint32_t neg = br.ue();
    const std::uint32_t pos = br.ue();
    if (neg > 16 || pos > 16) return false;
    for (std::uint32_t i = 0; i < neg + pos; ++i) {
      br.ue();     // delta_poc_sX_minus1
      br.skip(1);  // used_by_curr_pic_sX_flag
    }
    num_delta_pocs[idx] = neg + pos;
  }
  return !br.failed();
}

}  // namespace

std::optional<StreamParams> parse_hevc_sps(std::span<const std::uint8_t> nal) {
  std::array<std::uint8_t, kRbspMax> rbsp;
  const std::size_t n = unescape_rbsp(nal, rbsp);
  BitReader br({rbsp.data(), n});
  if (br.bit() != 0) return std::nullopt;
  if (br.bits(6) != 33) return std::nullopt;
  br.skip(9);  // nuh_layer_id, nuh_temporal_id_plus1
  StreamParams p;
  p.codec = Codec::kHevc;
  br.skip(4);  // sps_video_parameter_set_id
  const unsigned max_sub_layers_minus1 = br.bits(3);
  if (max_sub_layers_minus1 > 6) return std::nullopt;
  br.skip(1);  // sps_temporal_id_nesting_flag
  if (!hevc_profile_tier_level(br, max_sub_layers_minus1, p)) return std::nullopt;
  if (br.ue() > 15) return std::nullopt;  // sps_seq_parameter_set_id
  const std::uint32_t chroma = br.ue();
  if (chroma > 3) return std::nullopt;
  p.chroma_format_idc = static_cast<std::uint8_t>(chroma);
  bool separate_planes = false;
  if (chroma == 3) separate_planes = br.flag();
  const std::uint32_t w = br.ue();
  const std::uint32_t h = br.ue();
  std::uint64_t crop_w = 0, crop_h = 0;
  if (br.flag()) {  // conformance_window_flag
    const unsigned chroma_array_type = separate_planes ? 0 : chroma;
    const std::uint64_t sub_w = (chroma_array_type == 1 || chroma_array_type == 2) ? 2 : 1;
    const std::uint64_t sub_h = chroma_array_type == 1 ? 2 : 1;
    const std::uint64_t l = br.ue(), r = br.ue(), t = br.ue(), b = br.ue();
    crop_w = sub_w * (l + r);
    crop_h = sub_h * (t + b);
  }
  const std::uint32_t depth_luma = br.ue();
  if (br.failed() || depth_luma > 8 || br.ue() > 8) return std::nullopt;
  if (w == 0 || h == 0 || crop_w >= w || crop_h >= h || w - crop_w > 65535 || h - crop_h > 65535)
    return std::nullopt;
  p.width = static_cast<std::uint16_t>(w - crop_w);
  p.height = static_cast<std::uint16_t>(h - crop_h);
  p.bit_depth = static_cast<std::uint8_t>(8 + depth_luma);
  p.progressive = (p.hevc_constraint_flags >> 46 & 1) == 0;  // general_interlaced_source_flag

  // From here on only the frame rate is wanted: any failure just leaves it 0/0.
  const std::uint32_t log2_max_poc_lsb = br.ue() + 4;
  if (log2_max_poc_lsb > 16) return p;
  const bool ordering_all = br.flag();
  for (unsigned i = ordering_all ? 0 : max_sub_layers_minus1; i <= max_sub_layers_minus1; ++i) {
    br.ue();
    br.ue();
    br.ue();
  }
  for (int i = 0; i < 6; ++i) br.ue();  // coding/transform block sizes and depths
  if (br.flag() && br.flag() && !hevc_scaling_list_data(br)) return p;  // scaling lists
  br.skip(2);  // amp_enabled_flag, sample_adaptive_offset_enabled_flag
  if (br.flag()) {  // pcm_enabled_flag
    br.skip(8);
    br.ue();
    br.ue();
    br.skip(1);
  }
  const std::uint32_t num_st_rps = br.ue();
  if (num_st_rps > 64 || br.failed()) return p;
  std::array<std::uint32_t, 65> num_delta_pocs{};
  for (unsigned i = 0; i < num_st_rps; ++i)
    if (!hevc_st_ref_pic_set(br, i, num_delta_pocs)) return p;
  if (br.flag()) {  // long_term_ref_pics_present_flag
    const std::uint32_t num_lt = br.ue();
    if (num_lt > 32) return p;
    for (std::uint32_t i = 0; i < num_lt && !br.failed(); ++i) br.skip(log2_max_poc_lsb + 1);
  }
  br.skip(2);  // sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
  if (br.failed() || !br.flag()) return p;  // vui_parameters_present_flag
  if (br.flag() && br.bits(8) == 255) br.skip(32);  // aspect ratio
  if (br.flag()) br.skip(1);                        // overscan
  if (br.flag()) {                                  // video_signal_type
    br.skip(4);
    if (br.flag()) br.skip(24);
  }
  if (br.flag()) {  // chroma_loc_info
    br.ue();
    br.ue();
  }
  br.skip(3);  // neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag
  if (br.flag()) {  // default_display_window_flag
    for (int i = 0; i < 4; ++i) br.ue();
  }
  if (br.flag()) {  // vui_timing_info_present_flag
    const std::uint32_t units = br.bits(32);
    const std::uint32_t scale = br.bits(32);
    if (!br.failed()) set_frame_rate(p, scale, units);
  }
  return p;
}

std::optional<StreamParams> parse_mpeg2_sequence_header(std::span<const std::uint8_t> data) {
  if (data.size() >= 3 && data[0] == 0 && data[1] == 0 && data[2] == 1) data = data.subspan(3);
  // Code byte plus the 8 fixed bytes up to the quantiser flags.
  if (data.size() < 8 || data[0] != 0xB3) return std::nullopt;
  BitReader br(data.subspan(1));
  StreamParams p;
  p.codec = Codec::kMpeg2Video;
  std::uint32_t w = br.bits(12);
  std::uint32_t h = br.bits(12);
  br.skip(4);  // aspect_ratio_information
  const std::uint32_t rate_code = br.bits(4);
  if (w == 0 || h == 0) return std::nullopt;
  static constexpr std::array<std::array<std::uint32_t, 2>, 9> kRates = {{
      {0, 0}, {24000, 1001}, {24, 1}, {25, 1}, {30000, 1001}, {30, 1}, {50, 1}, {60000, 1001}, {60, 1}}};
  std::uint64_t num = rate_code < kRates.size() ? kRates[rate_code][0] : 0;
  std::uint64_t den = rate_code < kRates.size() ? kRates[rate_code][1] : 0;
  // Find the sequence_extension (00 00 01 B5, extension id 1) that follows, if any.
  // Zero bytes at the very end may have been trimmed with a following start code prefix,
  // so fields past the end of the buffer read as zero.
  for (std::size_t i = 8; i + 4 < data.size(); ++i) {
    if (data[i] != 0 || data[i + 1] != 0 || data[i + 2] != 1) continue;
    if (data[i + 3] != 0xB5) {
      if (data[i + 3] == 0xB2) continue;  // user data may come between
      break;
    }
    if ((data[i + 4] >> 4) != 1) continue;  // another extension
    BitReader ex(data.subspan(i + 4));
    ex.skip(4);
    p.mpeg2_extension = true;
    p.mpeg2_profile_and_level = static_cast<std::uint8_t>(ex.bits(8));
    p.progressive = ex.flag();
    p.chroma_format_idc = static_cast<std::uint8_t>(ex.bits(2));
    w |= ex.bits(2) << 12;
    h |= ex.bits(2) << 12;
    ex.skip(12 + 1 + 8 + 1);  // bit_rate_extension, marker, vbv_buffer_size_extension, low_delay
    const std::uint32_t fr_n = ex.bits(2);
    const std::uint32_t fr_d = ex.bits(5);
    num *= fr_n + 1;
    den *= fr_d + 1;
    break;
  }
  if (w > 65535 || h > 65535) return std::nullopt;
  p.width = static_cast<std::uint16_t>(w);
  p.height = static_cast<std::uint16_t>(h);
  if (p.mpeg2_extension && (p.mpeg2_profile_and_level & 0x80) == 0) {
    p.profile = static_cast<std::uint8_t>((p.mpeg2_profile_and_level >> 4) & 7);
    p.level = static_cast<std::uint8_t>(p.mpeg2_profile_and_level & 0x0F);
  }
  set_frame_rate(p, num, den);
  return p;
}

std::optional<StreamParams> parse_adts_header(std::span<const std::uint8_t> d) {
  if (d.size() < 7 || d[0] != 0xFF || (d[1] & 0xF6) != 0xF0) return std::nullopt;  // sync, layer 00
  static constexpr std::array<std::uint32_t, 13> kRates = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                                          22050, 16000, 12000, 11025, 8000, 7350};
  const unsigned profile = d[2] >> 6;  // audio object type - 1
  const unsigned rate_index = (d[2] >> 2) & 0x0F;
  const unsigned channel_config = ((d[2] & 0x01u) << 2) | (d[3] >> 6);
  const unsigned frame_length = ((d[3] & 0x03u) << 11) | (unsigned{d[4]} << 3) | (d[5] >> 5);
  if (rate_index >= kRates.size() || frame_length < 7) return std::nullopt;
  StreamParams p;
  p.codec = Codec::kAac;
  p.audio_object_type = static_cast<std::uint8_t>(profile + 1);
  p.sample_rate = kRates[rate_index];
  // Channel configuration 7 is 7.1 (8 channels); 0 means a PCE in the payload (unknown).
  p.channels = static_cast<std::uint8_t>(channel_config == 7 ? 8 : channel_config);
  return p;
}

std::optional<StreamParams> parse_ac3_header(std::span<const std::uint8_t> d) {
  if (d.size() < 7 || d[0] != 0x0B || d[1] != 0x77) return std::nullopt;
  static constexpr std::array<std::uint8_t, 8> kChannels = {2, 1, 2, 3, 3, 4, 4, 5};
  static constexpr std::array<std::uint32_t, 3> kRates = {48000, 44100, 32000};
  const unsigned bsid = d[5] >> 3;
  StreamParams p;
  BitReader br(d.subspan(2));
  if (bsid <= 10) {  // AC-3: crc1, fscod, frmsizecod, bsid, bsmod, acmod, ...
    p.codec = Codec::kAc3;
    br.skip(16);
    const unsigned fscod = br.bits(2);
    const unsigned frmsizecod = br.bits(6);
    if (fscod == 3 || frmsizecod > 37) return std::nullopt;
    br.skip(5 + 3);
    const unsigned acmod = br.bits(3);
    if ((acmod & 1) && acmod != 1) br.skip(2);  // cmixlev
    if (acmod & 4) br.skip(2);                  // surmixlev
    if (acmod == 2) br.skip(2);                 // dsurmod
    const unsigned lfe = br.bit();
    if (br.failed()) return std::nullopt;
    p.sample_rate = kRates[fscod];
    p.channels = static_cast<std::uint8_t>(kChannels[acmod] + lfe);
    return p;
  }
  if (bsid > 16) return std::nullopt;
  // E-AC-3: strmtyp, substreamid, frmsiz, fscod, fscod2/numblkscod, acmod, lfeon, bsid.
  p.codec = Codec::kEac3;
  const unsigned strmtyp = br.bits(2);
  br.skip(3 + 11);
  const unsigned fscod = br.bits(2);
  const unsigned fscod2 = br.bits(2);
  const unsigned acmod = br.bits(3);
  const unsigned lfe = br.bit();
  if (br.failed() || strmtyp == 3) return std::nullopt;
  if (fscod == 3) {
    if (fscod2 == 3) return std::nullopt;
    p.sample_rate = kRates[fscod2] / 2;
  } else {
    p.sample_rate = kRates[fscod];
  }
  p.channels = static_cast<std::uint8_t>(kChannels[acmod] + lfe);
  return p;
}

std::optional<StreamParams> parse_mpeg_audio_header(std::span<const std::uint8_t> d) {
  if (d.size() < 4 || d[0] != 0xFF || (d[1] & 0xE0) != 0xE0) return std::nullopt;
  const unsigned version = (d[1] >> 3) & 3;  // 0 = 2.5, 1 reserved, 2 = MPEG-2, 3 = MPEG-1
  const unsigned layer = (d[1] >> 1) & 3;    // 1 = III, 2 = II, 3 = I
  const unsigned bitrate_index = d[2] >> 4;
  const unsigned rate_index = (d[2] >> 2) & 3;
  if (version == 1 || layer == 0 || bitrate_index == 15 || rate_index == 3) return std::nullopt;
  static constexpr std::array<std::uint32_t, 3> kRates = {44100, 48000, 32000};
  StreamParams p;
  p.codec = Codec::kMpegAudio;
  p.mpeg_audio_layer = static_cast<std::uint8_t>(4 - layer);
  p.mpeg_audio_version = version == 3 ? 1 : version == 2 ? 2 : 25;
  p.sample_rate = kRates[rate_index] >> (version == 3 ? 0 : version == 2 ? 1 : 2);
  p.channels = (d[3] >> 6) == 3 ? 1 : 2;
  return p;
}

// --- RFC 6381 strings ---

std::string StreamParams::hls_codec() const {
  char buf[64];
  switch (codec) {
    case Codec::kH264:
      if (profile == 0) return {};
      std::snprintf(buf, sizeof buf, "avc1.%02x%02x%02x", unsigned{profile}, unsigned{constraint_flags},
                    unsigned{level});
      return buf;
    case Codec::kHevc: {
      if (profile == 0 && hevc_compatibility_flags == 0) return {};
      // Compatibility flags in reverse bit order (flag 0 becomes the lowest bit).
      std::uint32_t reversed = 0;
      for (unsigned i = 0; i < 32; ++i)
        if (hevc_compatibility_flags & (1u << i)) reversed |= 1u << (31 - i);
      static constexpr std::array<const char*, 4> kSpace = {"", "A", "B", "C"};
      std::string s = "hvc1.";
      s += kSpace[hevc_profile_space & 3];
      std::snprintf(buf, sizeof buf, "%u.%X.%c%u", unsigned{profile}, reversed, hevc_tier_flag ? 'H' : 'L',
                    unsigned{level});
      s += buf;
      // Constraint bytes, trailing zero bytes dropped.
      int last = -1;
      for (int i = 0; i < 6; ++i)
        if ((hevc_constraint_flags >> (40 - 8 * i)) & 0xFF) last = i;
      for (int i = 0; i <= last; ++i) {
        std::snprintf(buf, sizeof buf, ".%X", unsigned((hevc_constraint_flags >> (40 - 8 * i)) & 0xFF));
        s += buf;
      }
      return s;
    }
    case Codec::kMpeg2Video: {
      if (width == 0) return {};
      if (!mpeg2_extension) return "mp4v.6A";  // MPEG-1 video
      if (mpeg2_profile_and_level & 0x80) {
        // Escape: 4:2:2 profile (0x82, 0x85); multi-view and others have no object type.
        const unsigned pl = mpeg2_profile_and_level & 0x0F;
        return pl == 2 || pl == 5 ? "mp4v.65" : std::string{};
      }
      switch (profile) {
        case 5: return "mp4v.60";  // Simple
        case 4: return "mp4v.61";  // Main
        case 3: return "mp4v.62";  // SNR
        case 2: return "mp4v.63";  // Spatial
        case 1: return "mp4v.64";  // High
        default: return {};
      }
    }
    case Codec::kAac:
      if (audio_object_type == 0) return {};
      return "mp4a.40." + std::to_string(audio_object_type);
    case Codec::kAc3:
      return sample_rate ? "ac-3" : std::string{};
    case Codec::kEac3:
      return sample_rate ? "ec-3" : std::string{};
    case Codec::kMpegAudio:
      if (mpeg_audio_layer == 3) return "mp4a.40.34";
      if (mpeg_audio_layer == 1 || mpeg_audio_layer == 2) return mpeg_audio_version == 1 ? "mp4a.6B" : "mp4a.69";
      return {};
    default:
      return {};
  }
}

std::string hls_codecs(std::span<const StreamParams> streams) {
  std::string out;
  std::array<std::string, 16> seen;  // few streams per variant; more are still joined
  std::size_t n_seen = 0;
  for (const StreamKind kind : {StreamKind::kVideo, StreamKind::kAudio}) {
    for (const auto& s : streams) {
      if (codec_kind(s.codec) != kind) continue;
      std::string c = s.hls_codec();
      if (c.empty()) continue;
      if (std::find(seen.begin(), seen.begin() + static_cast<std::ptrdiff_t>(n_seen), c) !=
          seen.begin() + static_cast<std::ptrdiff_t>(n_seen))
        continue;
      if (n_seen < seen.size()) seen[n_seen++] = c;
      if (!out.empty()) out += ',';
      out += c;
    }
  }
  return out;
}

}  // namespace twincast::mpegts
