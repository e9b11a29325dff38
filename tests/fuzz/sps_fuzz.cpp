// Fuzzes the parameter-set and audio-header parsers on raw bytes and checks what they
// return is self-consistent (and that the codec strings can be built from it).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "twincast/mpegts/access_unit.hpp"

using namespace twincast::mpegts;

namespace {
volatile std::size_t g_sink;

void check(const std::optional<StreamParams>& p, bool video) {
  if (!p) return;
  if (video && (p->width == 0 || p->height == 0)) __builtin_trap();
  if ((p->frame_rate_num == 0) != (p->frame_rate_den == 0)) __builtin_trap();
  if (!video && p->sample_rate == 0) __builtin_trap();
  g_sink = p->hls_codec().size();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> d(data, size);
  check(parse_h264_sps(d), true);
  check(parse_hevc_sps(d), true);
  check(parse_mpeg2_sequence_header(d), true);
  check(parse_adts_header(d), false);
  check(parse_ac3_header(d), false);
  check(parse_mpeg_audio_header(d), false);
  return 0;
}
