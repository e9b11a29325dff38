// Fuzzes SCTE-35 handling.
//
// 1. The splice_info_section parser. The input is parsed twice: as it is (mostly refused
//    early: table_id, length, CRC), and with its header repaired (table_id 0xFC,
//    section_length = the input's size, encrypted_packet cleared, a correct CRC_32) so the
//    command and descriptor parsers see arbitrary bodies. Checks that a parse gives the
//    same answer twice and that what it returns is within the field widths.
// 2. The Segmenter's cues: a synthetic audio-only program (PAT, PMT with AAC on 0x101 and
//    SCTE-35 on 0x102, an audio PES every 0.5 s from the PTS of SCTE 35's sample 14.1, 1 s
//    segments). The input, cut into sections (a length byte, then the bytes, the header
//    repaired as above), rides on 0x102, one section after each PES. Checks that every
//    cue lands inside its segment's time span, that the counters agree, and that the
//    playlist renders one CUE tag per cue.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/hls.hpp"
#include "twincast/mpegts/psi_tables.hpp"
#include "twincast/mpegts/scte35.hpp"

using namespace twincast::mpegts;

namespace {

constexpr std::uint64_t kPtsMask = (std::uint64_t{1} << 33) - 1;

void check(std::span<const std::uint8_t> s) {
  scte35::SpliceInfo si;
  const scte35::Error e = scte35::parse_splice_info(s, si);
  scte35::SpliceInfo again;
  if (scte35::parse_splice_info(s, again) != e) std::abort();
  if (e != scte35::Error::kOk) return;
  if (si.pts_adjustment > kPtsMask || si.time_signal.pts > kPtsMask || si.insert.time.pts > kPtsMask ||
      si.insert.duration.duration > kPtsMask || si.tier > 0xFFF || si.encrypted)
    std::abort();
  for (const auto& d : si.segmentation) {
    if (d.upid.size() > 255 || d.duration > (std::uint64_t{1} << 40) - 1) std::abort();
    if (d.cancel && (d.type_id != 0 || !d.upid.empty())) std::abort();
  }
  if (si.segmentation.size() + si.other_descriptors > s.size()) std::abort();
}

// Table id, section_length, encrypted_packet and CRC_32 made right (size >= 20).
std::vector<std::uint8_t> repaired(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> b(data, data + size);
  b[0] = scte35::kTableId;
  const std::size_t len = size - 3;
  b[1] = static_cast<std::uint8_t>((b[1] & 0xF0) | (len >> 8));
  b[2] = static_cast<std::uint8_t>(len & 0xFF);
  b[4] &= 0x7F;
  const std::uint32_t crc = crc32_mpeg(std::span<const std::uint8_t>(b.data(), size - 4));
  for (std::size_t i = 0; i < 4; ++i) b[size - 4 + i] = static_cast<std::uint8_t>(crc >> (24 - 8 * i));
  return b;
}

constexpr std::uint16_t kPmtPid = 0x1000;
constexpr std::uint16_t kAudioPid = 0x101;
constexpr std::uint16_t kScte35Pid = 0x102;
constexpr std::uint64_t kFirstPts = 0x072BD0050 - 2 * 90'000;

std::vector<TsPacket> psi_packets() {
  TableCarousel pat(kPatPid);
  pat.update([](std::uint8_t v) { return build_pat(1, {{1, kPmtPid}}, v); });
  Service s;
  s.service_id = 1;
  s.pmt_pid = kPmtPid;
  s.pcr_pid = kAudioPid;
  s.has_pmt = true;
  ElementaryStream a;
  a.pid = kAudioPid;
  a.stream_type = 0x0F;
  a.codec = Codec::kAac;
  ElementaryStream c;
  c.pid = kScte35Pid;
  c.stream_type = scte35::kStreamType;
  c.codec = Codec::kScte35;
  s.streams = {a, c};
  TableCarousel pmt(kPmtPid);
  pmt.update([&](std::uint8_t v) { return build_pmt(s, v); });
  std::vector<TsPacket> out(pat.packet_count() + pmt.packet_count());
  const std::size_t n = pat.packetize(out);
  pmt.packetize(std::span<TsPacket>(out).subspan(n));
  return out;
}

// One packet: a PES start with this PTS (the payload is not a valid ADTS frame; only the
// PES header matters to the cut).
TsPacket audio_pes(std::uint64_t pts, std::uint8_t cc) {
  TsPacket p;
  p.bytes.fill(0xFF);
  const std::uint8_t h[] = {kSyncByte, static_cast<std::uint8_t>(0x40 | (kAudioPid >> 8)), kAudioPid & 0xFF,
                            static_cast<std::uint8_t>(0x10 | (cc & 0x0F)), 0, 0, 1, 0xC0, 0, 0, 0x80, 0x80, 5,
                            static_cast<std::uint8_t>(0x21 | ((pts >> 29) & 0x0E)), static_cast<std::uint8_t>(pts >> 22),
                            static_cast<std::uint8_t>(((pts >> 14) & 0xFE) | 1), static_cast<std::uint8_t>(pts >> 7),
                            static_cast<std::uint8_t>(((pts << 1) & 0xFE) | 1)};
  std::memcpy(p.bytes.data(), h, sizeof h);
  return p;
}

// A section as packets on kScte35Pid (pointer_field 0, stuffed with 0xFF).
void packetize(const std::vector<std::uint8_t>& sec, std::uint8_t& cc, std::vector<TsPacket>& out) {
  std::size_t pos = 0;
  for (bool first = true; first || pos < sec.size(); first = false) {
    TsPacket p;
    p.bytes.fill(0xFF);
    p.bytes[0] = kSyncByte;
    p.bytes[1] = static_cast<std::uint8_t>((first ? 0x40 : 0) | (kScte35Pid >> 8));
    p.bytes[2] = kScte35Pid & 0xFF;
    p.bytes[3] = static_cast<std::uint8_t>(0x10 | (cc++ & 0x0F));
    std::size_t off = 4;
    if (first) p.bytes[off++] = 0;
    const std::size_t n = std::min(kPacketSize - off, sec.size() - pos);
    std::memcpy(p.bytes.data() + off, sec.data() + pos, n);
    pos += n;
    out.push_back(p);
  }
}

void segment_cues(const std::uint8_t* data, std::size_t size) {
  hls::SegmenterConfig cfg;
  cfg.target_duration_s = 1;
  std::vector<hls::Segment> segs;
  hls::Segmenter seg(cfg, [&](hls::Segment&& s) { segs.push_back(std::move(s)); });
  static const std::vector<TsPacket> psi = psi_packets();
  constexpr std::int64_t kWall0 = 1'700'000'000'000;
  std::uint8_t audio_cc = 0;
  std::uint8_t scte_cc = 0;
  std::size_t off = 0;
  std::vector<TsPacket> chunk;
  for (int k = 0; k < 48; ++k) {
    chunk.clear();
    if (k % 8 == 0) chunk.insert(chunk.end(), psi.begin(), psi.end());
    chunk.push_back(audio_pes((kFirstPts + static_cast<std::uint64_t>(k) * 45'000) & ((std::uint64_t{1} << 33) - 1), audio_cc++));
    if (off < size) {
      const std::size_t want = std::min<std::size_t>(20 + data[off], size - off - 1);
      ++off;
      if (want >= 20) packetize(repaired(data + off, want), scte_cc, chunk);
      off += want;
    }
    seg.push(chunk, kWall0 + k * 500);
  }
  seg.flush();
  std::size_t n_cues = 0;
  hls::MediaPlaylist p;
  for (const auto& s : segs) {
    const std::int64_t dur_ms = std::llround(s.duration_s * 1000);
    for (const auto& c : s.cues) {
      if (c.wall_ms < s.program_date_time_ms || c.wall_ms > s.program_date_time_ms + dur_ms + 1) std::abort();
      if (c.id.empty() || c.section.empty()) std::abort();
      scte35::SpliceInfo si;
      if (scte35::parse_splice_info(c.section, si) != scte35::Error::kOk) std::abort();
      ++n_cues;
    }
    p.entries.push_back(hls::MediaEntry{.uri = "s.ts", .duration_s = s.duration_s, .discontinuity = s.discontinuity,
                                        .program_date_time_ms = s.program_date_time_ms, .cues = s.cues});
  }
  if (n_cues != seg.stats().cues) std::abort();
  const std::string text = hls::media_playlist(p);
  std::size_t tags = 0;
  for (std::size_t at = text.find("#EXT-X-CUE-"); at != std::string::npos; at = text.find("#EXT-X-CUE-", at + 1)) ++tags;
  if (tags != n_cues) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check(std::span<const std::uint8_t>(data, size));
  if (size >= 20 && size <= 4096) check(repaired(data, size));
  segment_cues(data, size);
  return 0;
}
