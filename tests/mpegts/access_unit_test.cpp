#include "twincast/mpegts/access_unit.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests_common.hpp"

using namespace twincast::mpegts;
namespace tt = twincast::test;

namespace {

// All fixtures put video on 0x100 and audio from 0x101 on (make_fixtures).
constexpr std::uint16_t kVideoPid = 0x100;

struct ScanResult {
  std::vector<std::uint64_t> keyframe_pts;
  int n_pes = 0;
  int n_keyframes_without_rai = 0;  // keyframes in a PES whose first packet lacks the RAI flag
  int n_params_changes = 0;
  int n_idr = 0;
  StreamParams params;
  bool params_known = false;
  AccessUnitStats stats;
};

ScanResult scan(const std::string& file, std::uint16_t pid, Codec codec) {
  const auto pkts = tt::read_packets(tt::fixture(file));
  AccessUnitScanner sc(codec);
  ScanResult r;
  bool pes_rai = false;
  for (const auto& p : pkts) {
    if (p.pid() != pid) continue;
    const AccessUnitInfo info = sc.push(p);
    if (info.pes_start) {
      ++r.n_pes;
      pes_rai = info.random_access;
    }
    if (info.keyframe) {
      EXPECT_TRUE(info.keyframe_has_pts);
      r.keyframe_pts.push_back(info.keyframe_pts);
      if (!pes_rai) ++r.n_keyframes_without_rai;
      if (info.keyframe_idr) ++r.n_idr;
    }
    if (info.params_changed) ++r.n_params_changes;
  }
  r.params = sc.params();
  r.params_known = sc.params_known();
  r.stats = sc.stats();
  return r;
}

// ffprobe's stream fields (first stream matching `select`), as key -> value.
std::map<std::string, std::string> ffprobe_stream(const std::string& file, const std::string& select) {
  const auto res = tt::run("ffprobe -v error -select_streams " + select +
                           " -show_entries stream=width,height,profile,level,r_frame_rate,sample_rate,channels"
                           " -of default=noprint_wrappers=1 " + tt::shell_quote(tt::fixture(file).string()));
  EXPECT_EQ(res.exit_code, 0) << res.out;
  std::map<std::string, std::string> m;
  std::istringstream in(res.out);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos && !m.count(line.substr(0, eq))) m[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return m;
}

// PTS of the packets ffprobe flags as keyframes on the first video stream.
std::vector<std::uint64_t> ffprobe_keyframe_pts(const std::string& file) {
  const auto res = tt::run("ffprobe -v error -select_streams v:0 -show_entries packet=pts,flags -of csv=p=0 " +
                           tt::shell_quote(tt::fixture(file).string()));
  EXPECT_EQ(res.exit_code, 0) << res.out;
  std::vector<std::uint64_t> out;
  std::istringstream in(res.out);
  std::string line;
  while (std::getline(in, line)) {
    const auto comma = line.find(',');
    if (comma == std::string::npos || line.find('K', comma) == std::string::npos) continue;
    out.push_back(std::stoull(line.substr(0, comma)));
  }
  return out;
}

// The stream's extradata as ffprobe found it in the TS (the in-band parameter sets).
std::vector<std::uint8_t> ffprobe_extradata(const std::string& file) {
  const auto res = tt::run("ffprobe -v error -select_streams v:0 -show_streams -show_data " +
                           tt::shell_quote(tt::fixture(file).string()));
  std::vector<std::uint8_t> out;
  std::istringstream in(res.out);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.rfind("extradata=", 0) == 0) {
      inside = true;
      continue;
    }
    if (!inside) continue;
    if (line.size() < 10 || line[8] != ':') break;
    // "00000000: 0000 0140 010c ...  text": hex groups between the colon and two spaces.
    const std::string hex = line.substr(10, 40);
    for (std::size_t i = 0; i + 1 < hex.size(); ++i) {
      if (hex[i] == ' ') continue;
      if (hex[i + 1] == ' ') break;
      out.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
      ++i;
    }
  }
  return out;
}

// The NAL unit of `type_byte` in an Annex B byte stream, without emulation prevention.
std::vector<std::uint8_t> find_nal(const std::vector<std::uint8_t>& es, std::uint8_t type_byte) {
  for (std::size_t i = 0; i + 3 < es.size(); ++i) {
    if (es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 && es[i + 3] == type_byte) {
      std::vector<std::uint8_t> nal;
      for (std::size_t j = i + 3; j < es.size(); ++j) {
        if (j + 2 < es.size() && es[j] == 0 && es[j + 1] == 0 && es[j + 2] == 1) break;
        if (j >= 2 && es[j] == 3 && es[j - 1] == 0 && es[j - 2] == 0) continue;
        nal.push_back(es[j]);
      }
      return nal;
    }
  }
  return {};
}

std::string h264_profile_name(const StreamParams& p) {
  switch (p.profile) {
    case 66: return (p.constraint_flags & 0x40) ? "Constrained Baseline" : "Baseline";
    case 77: return "Main";
    case 88: return "Extended";
    case 100: return "High";
    case 110: return "High 10";
    default: return "?";
  }
}

std::string rate(const StreamParams& p) {
  return std::to_string(p.frame_rate_num) + "/" + std::to_string(p.frame_rate_den);
}

}  // namespace

TEST(AccessUnit, H264KeyframesAndParamsMatchFfprobe) {
  const auto r = scan("h264_aac.ts", kVideoPid, Codec::kH264);
  EXPECT_EQ(r.n_pes, 150);
  EXPECT_EQ(r.stats.n_pes_header_errors, 0u);
  EXPECT_EQ(r.keyframe_pts, ffprobe_keyframe_pts("h264_aac.ts"));
  EXPECT_EQ(r.keyframe_pts.size(), 6u);
  EXPECT_EQ(r.stats.n_idr, 6u);
  EXPECT_EQ(r.n_idr, 6);
  EXPECT_EQ(r.n_keyframes_without_rai, 0);
  ASSERT_TRUE(r.params_known);
  EXPECT_EQ(r.n_params_changes, 1) << "the repeated SPS must not count as a change";
  const auto ff = ffprobe_stream("h264_aac.ts", "v:0");
  EXPECT_EQ(std::to_string(r.params.width), ff.at("width"));
  EXPECT_EQ(std::to_string(r.params.height), ff.at("height"));
  EXPECT_EQ(std::to_string(r.params.level), ff.at("level"));
  EXPECT_EQ(h264_profile_name(r.params), ff.at("profile"));
  EXPECT_EQ(rate(r.params), ff.at("r_frame_rate"));
  EXPECT_TRUE(r.params.progressive);
  // avc1.PPCCLL is the three bytes after the SPS NAL header in ffprobe's extradata.
  const auto sps = find_nal(ffprobe_extradata("h264_aac.ts"), 0x67);
  ASSERT_GE(sps.size(), 4u);
  char expect[32];
  std::snprintf(expect, sizeof expect, "avc1.%02x%02x%02x", unsigned{sps[1]}, unsigned{sps[2]}, unsigned{sps[3]});
  EXPECT_EQ(r.params.hls_codec(), expect);
  // The fixture is x264 High profile level 3.1 (make_fixtures): the string HLS players expect.
  EXPECT_EQ(r.params.hls_codec(), "avc1.64001f");
}

TEST(AccessUnit, AacParamsMatchFfprobe) {
  const auto r = scan("h264_aac.ts", 0x101, Codec::kAac);
  ASSERT_TRUE(r.params_known);
  EXPECT_GT(r.n_pes, 0);
  EXPECT_TRUE(r.keyframe_pts.empty());
  EXPECT_EQ(r.n_params_changes, 1);
  const auto ff = ffprobe_stream("h264_aac.ts", "a:0");
  EXPECT_EQ(ff.at("profile"), "LC");
  EXPECT_EQ(r.params.audio_object_type, 2);
  EXPECT_EQ(std::to_string(r.params.sample_rate), ff.at("sample_rate"));
  EXPECT_EQ(std::to_string(r.params.channels), ff.at("channels"));
  EXPECT_EQ(r.params.hls_codec(), "mp4a.40.2");
}

TEST(AccessUnit, HevcKeyframesAndParamsMatchFfprobe) {
  const auto r = scan("hevc_aac.ts", kVideoPid, Codec::kHevc);
  EXPECT_EQ(r.n_pes, 150);
  EXPECT_EQ(r.keyframe_pts, ffprobe_keyframe_pts("hevc_aac.ts"));
  EXPECT_EQ(r.keyframe_pts.size(), 6u);
  EXPECT_EQ(r.n_keyframes_without_rai, 0);
  ASSERT_TRUE(r.params_known);
  const auto ff = ffprobe_stream("hevc_aac.ts", "v:0");
  EXPECT_EQ(std::to_string(r.params.width), ff.at("width"));
  EXPECT_EQ(std::to_string(r.params.height), ff.at("height"));
  EXPECT_EQ(std::to_string(r.params.level), ff.at("level"));
  EXPECT_EQ(ff.at("profile"), "Main");
  EXPECT_EQ(r.params.profile, 1);
  EXPECT_EQ(rate(r.params), ff.at("r_frame_rate"));
  // The profile_tier_level bytes straight from ffprobe's extradata (SPS NAL header 42 01).
  const auto sps = find_nal(ffprobe_extradata("hevc_aac.ts"), 0x42);
  ASSERT_GE(sps.size(), 15u);
  const std::uint8_t* ptl = sps.data() + 3;  // after the 2-byte header and vps/sub-layers byte
  std::uint32_t compat = 0;
  for (int i = 0; i < 4; ++i) compat = (compat << 8) | ptl[1 + i];
  EXPECT_EQ(r.params.hevc_compatibility_flags, compat);
  std::uint64_t cons = 0;
  for (int i = 0; i < 6; ++i) cons = (cons << 8) | ptl[5 + i];
  EXPECT_EQ(r.params.hevc_constraint_flags, cons);
  EXPECT_EQ(r.params.level, ptl[11]);
  // x265 Main: compat flags 1 and 2 -> "6"; progressive + frame-only constraint byte 0x90.
  EXPECT_EQ(r.params.hls_codec(), "hvc1.1.6.L60.90");
}

TEST(AccessUnit, Mpeg2IPicturesAndSequenceHeader) {
  const auto r = scan("mpeg2_mp2.ts", kVideoPid, Codec::kMpeg2Video);
  EXPECT_EQ(r.n_pes, 150);
  EXPECT_EQ(r.keyframe_pts, ffprobe_keyframe_pts("mpeg2_mp2.ts"));
  EXPECT_EQ(r.keyframe_pts.size(), 13u);  // -g 12 over 150 frames
  EXPECT_EQ(r.n_keyframes_without_rai, 0);
  ASSERT_TRUE(r.params_known);
  const auto ff = ffprobe_stream("mpeg2_mp2.ts", "v:0");
  EXPECT_EQ(std::to_string(r.params.width), ff.at("width"));
  EXPECT_EQ(std::to_string(r.params.height), ff.at("height"));
  EXPECT_EQ(std::to_string(r.params.level), ff.at("level"));
  EXPECT_EQ(ff.at("profile"), "Main");
  EXPECT_EQ(r.params.profile, 4);
  EXPECT_EQ(rate(r.params), ff.at("r_frame_rate"));
  EXPECT_TRUE(r.params.mpeg2_extension);
  EXPECT_EQ(r.params.hls_codec(), "mp4v.61");
}

TEST(AccessUnit, MpegAudioLayer2) {
  const auto r = scan("mpeg2_mp2.ts", 0x101, Codec::kMpegAudio);
  ASSERT_TRUE(r.params_known);
  const auto ff = ffprobe_stream("mpeg2_mp2.ts", "a:0");
  EXPECT_EQ(r.params.mpeg_audio_layer, 2);
  EXPECT_EQ(r.params.mpeg_audio_version, 1);
  EXPECT_EQ(std::to_string(r.params.sample_rate), ff.at("sample_rate"));
  EXPECT_EQ(std::to_string(r.params.channels), ff.at("channels"));
  EXPECT_EQ(r.params.hls_codec(), "mp4a.6B");
}

TEST(AccessUnit, Ac3ParamsMatchFfprobe) {
  const auto r = scan("two_audio.ts", 0x102, Codec::kAc3);
  ASSERT_TRUE(r.params_known);
  const auto ff = ffprobe_stream("two_audio.ts", "a:1");
  EXPECT_EQ(r.params.codec, Codec::kAc3);
  EXPECT_EQ(std::to_string(r.params.sample_rate), ff.at("sample_rate"));
  EXPECT_EQ(std::to_string(r.params.channels), ff.at("channels"));
  EXPECT_EQ(r.params.hls_codec(), "ac-3");
  const auto v = scan("two_audio.ts", kVideoPid, Codec::kH264);
  const auto aac = scan("two_audio.ts", 0x101, Codec::kAac);
  const std::vector<StreamParams> all = {aac.params, r.params, v.params, aac.params};
  EXPECT_EQ(hls_codecs(all), v.params.hls_codec() + ",mp4a.40.2,ac-3");
}

TEST(AccessUnit, CodecStrings) {
  StreamParams h264;
  h264.codec = Codec::kH264;
  h264.profile = 100;
  h264.level = 31;
  EXPECT_EQ(h264.hls_codec(), "avc1.64001f");
  StreamParams hevc;
  hevc.codec = Codec::kHevc;
  hevc.profile = 2;
  hevc.hevc_compatibility_flags = 0x20000000;  // flag 2
  hevc.hevc_tier_flag = true;
  hevc.level = 120;
  hevc.hevc_constraint_flags = std::uint64_t{0xB0} << 40;
  EXPECT_EQ(hevc.hls_codec(), "hvc1.2.4.H120.B0");
  hevc.hevc_constraint_flags = 0;
  hevc.hevc_profile_space = 1;
  EXPECT_EQ(hevc.hls_codec(), "hvc1.A2.4.H120");
  StreamParams mp3;
  mp3.codec = Codec::kMpegAudio;
  mp3.mpeg_audio_layer = 3;
  EXPECT_EQ(mp3.hls_codec(), "mp4a.40.34");
  StreamParams eac3;
  eac3.codec = Codec::kEac3;
  eac3.sample_rate = 48000;
  EXPECT_EQ(eac3.hls_codec(), "ec-3");
  StreamParams unknown;
  EXPECT_EQ(unknown.hls_codec(), "");
  const std::vector<StreamParams> v = {eac3, unknown, h264};
  EXPECT_EQ(hls_codecs(v), "avc1.64001f,ec-3");
}

TEST(AccessUnit, H264SpsEdgeCases) {
  // Constrained Baseline 320x240 with VUI timing 25 fps (built by hand, bit by bit).
  // 67 42 c0 1e: header, profile 66, constraint 0xc0, level 30; then the ue/flags.
  const auto sps = find_nal(ffprobe_extradata("h264_aac.ts"), 0x67);
  ASSERT_FALSE(sps.empty());
  const auto full = parse_h264_sps(sps);
  ASSERT_TRUE(full);
  // Every truncation: either nullopt, or the same picture size (only the VUI was cut).
  for (std::size_t n = 0; n < sps.size(); ++n) {
    const std::vector<std::uint8_t> cut(sps.begin(), sps.begin() + static_cast<std::ptrdiff_t>(n));
    const auto p = parse_h264_sps(cut);
    if (p) {
      EXPECT_EQ(p->width, full->width);
      EXPECT_EQ(p->height, full->height);
    }
  }
  EXPECT_FALSE(parse_h264_sps(std::span(sps).first(4)));
  // Emulation prevention everywhere: 00 00 03 inserted before bytes <= 3 is what encoders do;
  // here every byte pair gets an extra escape, which must leave the result unchanged.
  std::vector<std::uint8_t> escaped;
  int zeros = 0;
  for (std::uint8_t b : sps) {
    if (zeros >= 2 && b <= 3) {
      escaped.push_back(3);
      zeros = 0;
    }
    escaped.push_back(b);
    zeros = b == 0 ? zeros + 1 : 0;
  }
  EXPECT_EQ(parse_h264_sps(escaped), full);
  // A run of escaped zeros as the SPS body: no crash, nothing sane claimed.
  std::vector<std::uint8_t> zeros_sps = {0x67, 0x64, 0x00, 0x1f};
  for (int i = 0; i < 200; ++i) zeros_sps.insert(zeros_sps.end(), {0, 0, 3});
  const auto z = parse_h264_sps(zeros_sps);
  EXPECT_FALSE(z);
  // Wrong NAL type.
  auto other = sps;
  other[0] = 0x68;
  EXPECT_FALSE(parse_h264_sps(other));
}

TEST(AccessUnit, HevcAndMpeg2Truncated) {
  const auto sps = find_nal(ffprobe_extradata("hevc_aac.ts"), 0x42);
  ASSERT_FALSE(sps.empty());
  const auto full = parse_hevc_sps(sps);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->frame_rate_num, 25u);
  for (std::size_t n = 0; n < sps.size(); ++n) {
    const std::vector<std::uint8_t> cut(sps.begin(), sps.begin() + static_cast<std::ptrdiff_t>(n));
    if (const auto p = parse_hevc_sps(cut)) {
      EXPECT_EQ(p->width, full->width);
      EXPECT_EQ(p->height, full->height);
    }
  }
  const std::vector<std::uint8_t> seq = {0x00, 0x00, 0x01, 0xB3, 0x14, 0x00, 0xF0, 0x13, 0xFF, 0xFF, 0xE0, 0x18};
  const auto m = parse_mpeg2_sequence_header(seq);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->width, 320);
  EXPECT_EQ(m->height, 240);
  EXPECT_EQ(rate(*m), "25/1");
  EXPECT_FALSE(m->mpeg2_extension);
  EXPECT_EQ(m->hls_codec(), "mp4v.6A");
  for (std::size_t n = 0; n < seq.size() - 1; ++n)
    EXPECT_FALSE(parse_mpeg2_sequence_header(std::span(seq).first(n))) << n;
}

TEST(AccessUnit, RandomPacketsNeverCrash) {
  std::mt19937 rng(11);
  for (const Codec c : {Codec::kH264, Codec::kHevc, Codec::kMpeg2Video, Codec::kAac, Codec::kAc3,
                        Codec::kEac3, Codec::kMpegAudio}) {
    AccessUnitScanner sc(c);
    for (int i = 0; i < 5000; ++i) {
      TsPacket p{};
      for (auto& b : p.bytes) b = static_cast<std::uint8_t>(rng());
      p.bytes[0] = kSyncByte;
      p.bytes[1] &= 0x5F;  // no transport_error
      p.bytes[3] &= 0x3F;  // not scrambled
      if (i % 3 == 0) {  // a plausible PES start with start codes in the payload
        p.bytes[1] |= 0x40;
        p.bytes[3] = 0x10;
        const std::uint8_t hdr[] = {0, 0, 1, 0xE0, 0, 0, 0x80, 0x00, 0x00, 0, 0, 1, 0x67, 0x64};
        std::copy(std::begin(hdr), std::end(hdr), p.bytes.begin() + 4);
      }
      if (i % 7 == 0) {
        for (std::size_t k = 20; k + 3 < kPacketSize; k += 9) p.bytes[k] = p.bytes[k + 1] = 0, p.bytes[k + 2] = 1;
      }
      const auto info = sc.push(p);
      if (info.keyframe) {
        EXPECT_TRUE(codec_kind(c) == StreamKind::kVideo);
      }
    }
    if (sc.params_known()) {
      EXPECT_TRUE(sc.params().codec == c || c == Codec::kAc3 || c == Codec::kEac3);
    }
  }
}

// Rough per-packet cost (printed, not asserted): the number next to AccessUnitScanner::push.
TEST(AccessUnit, CostPerPacket) {
  const auto pkts = tt::read_packets(tt::fixture("h264_aac.ts"));
  for (const auto& [pid, codec] : {std::pair{std::uint16_t{0x100}, Codec::kH264}, std::pair{std::uint16_t{0x101}, Codec::kAac}}) {
    std::vector<TsPacket> mine;
    for (const auto& p : pkts)
      if (p.pid() == pid) mine.push_back(p);
    std::uint64_t n_key = 0;
    const auto t0 = std::chrono::steady_clock::now();
    constexpr int kRounds = 20;
    for (int round = 0; round < kRounds; ++round) {
      AccessUnitScanner sc(codec);
      for (const auto& p : mine) n_key += sc.push(p).keyframe ? 1u : 0u;
    }
    const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %.1f ns/packet over %zu packets (%llu keyframes)\n", std::string(codec_name(codec)).c_str(),
                ns / (static_cast<double>(mine.size()) * kRounds), mine.size(), static_cast<unsigned long long>(n_key));
    if (codec == Codec::kH264) {
      EXPECT_EQ(n_key, 6u * kRounds);
    }
  }
}
