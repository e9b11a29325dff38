// Shared by the SCTE-35 tests (tests/mpegts/scte35_test.cpp, tests/dataplane/scte35_dp_test.cpp):
// the tests' own splice_info_section writer (SCTE 35 9.6 - 10.3.3), h264_aac.ts given a
// PMT that lists an SCTE-35 PID, sections packetized and inserted into a stream, and
// reading cue tags back from a media playlist. Header-only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "twincast/mpegts/access_unit.hpp"
#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/hls.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/psi_tables.hpp"
#include "twincast/mpegts/scte35.hpp"

namespace twincast::test::scte35_writer {

using namespace twincast::mpegts;
namespace hls = twincast::mpegts::hls;
namespace s35 = twincast::mpegts::scte35;
using Bytes = std::vector<std::uint8_t>;

// --- a splice_info_section writer (the test's own, written from SCTE 35 9.6 - 10.3.3) ---

inline void put(Bytes& b, std::uint64_t v, std::size_t n) {
  for (std::size_t i = n; i-- > 0;) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// splice_time(): time_specified_flag, 6 reserved bits (1s), pts_time; or 7 reserved bits.
inline void put_splice_time(Bytes& b, bool specified, std::uint64_t pts) {
  if (!specified) {
    b.push_back(0x7F);
    return;
  }
  b.push_back(static_cast<std::uint8_t>(0xFE | ((pts >> 32) & 1)));
  put(b, pts & 0xFFFFFFFF, 4);
}

struct InsertSpec {
  std::uint32_t event_id = 1;
  bool cancel = false;
  bool out = true;
  bool program_splice = true;
  bool immediate = false;
  std::uint64_t pts = 0;
  std::vector<std::pair<std::uint8_t, std::uint64_t>> components;  // component mode
  bool has_duration = false;
  bool auto_return = false;
  std::uint64_t duration = 0;
  std::uint16_t unique_program_id = 0;
  std::uint8_t avail_num = 0;
  std::uint8_t avails_expected = 0;
};

inline Bytes splice_insert(const InsertSpec& s) {
  Bytes b;
  put(b, s.event_id, 4);
  b.push_back(s.cancel ? 0xFF : 0x7F);
  if (s.cancel) return b;
  b.push_back(static_cast<std::uint8_t>((s.out ? 0x80 : 0) | (s.program_splice ? 0x40 : 0) | (s.has_duration ? 0x20 : 0) |
                                        (s.immediate ? 0x10 : 0) | 0x0F));
  if (s.program_splice && !s.immediate) put_splice_time(b, true, s.pts);
  if (!s.program_splice) {
    b.push_back(static_cast<std::uint8_t>(s.components.size()));
    for (const auto& [tag, pts] : s.components) {
      b.push_back(tag);
      if (!s.immediate) put_splice_time(b, true, pts);
    }
  }
  if (s.has_duration) {
    b.push_back(static_cast<std::uint8_t>((s.auto_return ? 0x80 : 0) | 0x7E | ((s.duration >> 32) & 1)));
    put(b, s.duration & 0xFFFFFFFF, 4);
  }
  put(b, s.unique_program_id, 2);
  b.push_back(s.avail_num);
  b.push_back(s.avails_expected);
  return b;
}

struct SegSpec {
  std::uint32_t event_id = 1;
  bool cancel = false;
  bool has_duration = false;
  std::uint64_t duration = 0;
  std::uint8_t upid_type = 0x0C;
  Bytes upid = {'t', 'w', 'c'};
  std::uint8_t type_id = 0x34;
  std::uint8_t segment_num = 1;
  std::uint8_t segments_expected = 1;
  bool sub_segments = false;
};

inline Bytes segmentation_descriptor(const SegSpec& s) {
  Bytes body{s35::kSegmentationDescriptorTag, 0};  // descriptor_length below
  put(body, s35::kCueIdentifier, 4);
  put(body, s.event_id, 4);
  body.push_back(s.cancel ? 0xFF : 0x7F);
  if (!s.cancel) {
    body.push_back(static_cast<std::uint8_t>(0x80 | (s.has_duration ? 0x40 : 0) | 0x20 | 0x1F));
    if (s.has_duration) put(body, s.duration, 5);
    body.push_back(s.upid_type);
    body.push_back(static_cast<std::uint8_t>(s.upid.size()));
    body.insert(body.end(), s.upid.begin(), s.upid.end());
    body.push_back(s.type_id);
    body.push_back(s.segment_num);
    body.push_back(s.segments_expected);
    if (s.sub_segments) {
      body.push_back(2);
      body.push_back(3);
    }
  }
  body[1] = static_cast<std::uint8_t>(body.size() - 2);
  return body;
}

struct SectionSpec {
  std::uint8_t command_type = 0x05;
  Bytes command;
  Bytes descriptors;
  std::uint64_t pts_adjustment = 0;
  bool encrypted = false;
  bool unknown_command_length = false;  // splice_command_length 0xFFF
};

inline Bytes section(const SectionSpec& s) {
  Bytes b{s35::kTableId, 0, 0};  // section_length below
  b.push_back(0);                // protocol_version
  b.push_back(static_cast<std::uint8_t>((s.encrypted ? 0x80 : 0) | ((s.pts_adjustment >> 32) & 1)));
  put(b, s.pts_adjustment & 0xFFFFFFFF, 4);
  b.push_back(0);  // cw_index
  const std::uint32_t tier = 0xFFF;
  const std::uint32_t cmd_len = s.unknown_command_length ? 0xFFF : static_cast<std::uint32_t>(s.command.size());
  put(b, (tier << 12) | cmd_len, 3);
  b.push_back(s.command_type);
  b.insert(b.end(), s.command.begin(), s.command.end());
  put(b, s.descriptors.size(), 2);
  b.insert(b.end(), s.descriptors.begin(), s.descriptors.end());
  const std::size_t length = b.size() - 3 + 4;
  b[1] = static_cast<std::uint8_t>(0x30 | (length >> 8));  // ssi 0, private 0, sap_type 3
  b[2] = static_cast<std::uint8_t>(length & 0xFF);
  put(b, crc32_mpeg(b), 4);
  return b;
}

inline Bytes insert_section(const InsertSpec& i, std::uint64_t adjustment = 0) {
  return section({.command_type = 0x05, .command = splice_insert(i), .pts_adjustment = adjustment});
}

inline Bytes time_signal_section(bool specified, std::uint64_t pts, const std::vector<SegSpec>& segs,
                          std::uint64_t adjustment = 0) {
  Bytes cmd;
  put_splice_time(cmd, specified, pts);
  Bytes desc;
  for (const auto& s : segs) {
    const Bytes d = segmentation_descriptor(s);
    desc.insert(desc.end(), d.begin(), d.end());
  }
  return section({.command_type = 0x06, .command = cmd, .descriptors = desc, .pts_adjustment = adjustment});
}

inline void fix_crc(Bytes& b) {
  const std::uint32_t c = crc32_mpeg(std::span<const std::uint8_t>(b.data(), b.size() - 4));
  for (std::size_t i = 0; i < 4; ++i) b[b.size() - 4 + i] = static_cast<std::uint8_t>(c >> (24 - 8 * i));
}

inline std::string to_hex(const Bytes& b) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string s = "0x";
  for (const auto v : b) {
    s += kDigits[v >> 4];
    s += kDigits[v & 0xF];
  }
  return s;
}

// Where make_fixtures puts h264_aac.ts's tables and video, and the SCTE-35 PID the tests add.
inline constexpr std::uint16_t kPmtPid = 0x1000;   // make_fixtures: h264_aac.ts
inline constexpr std::uint16_t kVideoPid = 0x100;
inline constexpr std::uint16_t kScte35Pid = 0x102;

inline Descriptor registration_cuei() { return {0x05, {'C', 'U', 'E', 'I'}}; }

// h264_aac.ts with its PMT rewritten (ours, built with build_pmt) to list an SCTE-35 PID,
// registration "CUEI" at program and stream level.
std::vector<TsPacket> with_scte35_pmt(const std::vector<TsPacket>& in) {
  PsiDecoder d;
  for (const auto& p : in) d.push(p);
  const Service* src = d.model().find_service(101);
  EXPECT_NE(src, nullptr);
  if (src == nullptr) return {};
  Service s = *src;
  s.program_descriptors.push_back(registration_cuei());
  ElementaryStream e;
  e.pid = kScte35Pid;
  e.stream_type = s35::kStreamType;
  e.codec = Codec::kScte35;
  e.descriptors.push_back(registration_cuei());
  s.streams.push_back(e);
  TableCarousel pmt(kPmtPid, 1);
  pmt.update([&](std::uint8_t v) { return build_pmt(s, v); });
  EXPECT_EQ(pmt.packet_count(), 1u);
  std::vector<TsPacket> out;
  out.reserve(in.size());
  for (const auto& p : in) {
    if (p.pid() != kPmtPid) {
      out.push_back(p);
      continue;
    }
    TsPacket n{};
    pmt.packetize(std::span<TsPacket>(&n, 1));
    out.push_back(n);
  }
  return out;
}

// A section as TS packets: PUSI + pointer_field 0, then continuation packets, stuffed with 0xFF.
inline std::vector<TsPacket> packetize(const Bytes& sec, std::uint16_t pid, std::uint8_t& cc) {
  std::vector<TsPacket> out;
  std::size_t pos = 0;
  bool first = true;
  while (pos < sec.size() || first) {
    TsPacket p;
    p.bytes.fill(0xFF);
    p.bytes[0] = kSyncByte;
    p.bytes[1] = static_cast<std::uint8_t>((first ? 0x40 : 0) | (pid >> 8));
    p.bytes[2] = static_cast<std::uint8_t>(pid & 0xFF);
    p.bytes[3] = static_cast<std::uint8_t>(0x10 | (cc & 0x0F));
    cc = static_cast<std::uint8_t>((cc + 1) & 0x0F);
    std::size_t off = 4;
    if (first) p.bytes[off++] = 0;
    const std::size_t n = std::min(kPacketSize - off, sec.size() - pos);
    std::memcpy(p.bytes.data() + off, sec.data() + pos, n);
    pos += n;
    first = false;
    out.push_back(p);
  }
  return out;
}

// Video PES starts: (packet index, PTS).
inline std::vector<std::pair<std::size_t, std::uint64_t>> video_pes(const std::vector<TsPacket>& pkts) {
  AccessUnitScanner sc(Codec::kH264);
  std::vector<std::pair<std::size_t, std::uint64_t>> v;
  for (std::size_t i = 0; i < pkts.size(); ++i) {
    if (pkts[i].pid() != kVideoPid) continue;
    const auto info = sc.push(pkts[i]);
    if (info.pes_start && info.has_pts) v.emplace_back(i, info.pts);
  }
  return v;
}

// The lowest PTS of video_pes(): the stream's first picture in presentation order.
// Throws when there is none (a fixture without video PES), instead of reading past the end.
inline std::uint64_t first_pts(const std::vector<std::pair<std::size_t, std::uint64_t>>& pes) {
  if (pes.empty()) throw std::runtime_error("first_pts: no video PES with a PTS");
  return std::min_element(pes.begin(), pes.end(), [](auto& a, auto& b) { return a.second < b.second; })->second;
}

// The first packet whose video PES (decode order) has a PTS at or after `pts`; `end` (the
// stream's size) when none has.
inline std::size_t packet_at(const std::vector<std::pair<std::size_t, std::uint64_t>>& pes, std::uint64_t pts,
                             std::size_t end) {
  for (const auto& [i, p] : pes)
    if (p >= pts) return i;
  return end;
}

struct Insertion {
  std::size_t before = 0;  // packet index in the source
  Bytes section;
};

inline std::vector<TsPacket> insert_sections(const std::vector<TsPacket>& in, std::vector<Insertion> ins) {
  std::stable_sort(ins.begin(), ins.end(), [](const auto& a, const auto& b) { return a.before < b.before; });
  std::vector<TsPacket> out;
  std::uint8_t cc = 0;
  std::size_t k = 0;
  for (std::size_t i = 0; i <= in.size(); ++i) {
    for (; k < ins.size() && ins[k].before == i; ++k) {
      const auto p = packetize(ins[k].section, kScte35Pid, cc);
      out.insert(out.end(), p.begin(), p.end());
    }
    if (i < in.size()) out.push_back(in[i]);
  }
  return out;
}

// --- playlists ---

inline hls::MediaPlaylist playlist_of(const std::vector<hls::Segment>& segs) {
  hls::MediaPlaylist p;
  p.type = hls::PlaylistType::kVod;
  p.end_list = true;
  for (const auto& s : segs)
    p.entries.push_back(hls::MediaEntry{.uri = "seg" + std::to_string(s.sequence) + ".ts",
                                        .duration_s = s.duration_s,
                                        .discontinuity = s.discontinuity,
                                        .program_date_time_ms = s.program_date_time_ms,
                                        .cues = s.cues});
  return p;
}

inline std::string seconds(std::int64_t ms) {
  char b[32];
  std::snprintf(b, sizeof b, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
  return b;
}

inline std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> v;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

// The tag lines between the URI before segment `uri` and `uri` itself.
inline std::vector<std::string> tags_before(const std::string& playlist, const std::string& uri) {
  const auto lines = lines_of(playlist);
  std::vector<std::string> tags;
  for (const auto& l : lines) {
    if (l == uri) return tags;
    if (!l.empty() && l[0] != '#') tags.clear();
    else if (l.rfind("#EXT-X-DATERANGE", 0) == 0 || l.rfind("#EXT-X-CUE", 0) == 0) tags.push_back(l);
  }
  return {};
}

// The DATERANGE ID the Segmenter gives a range of event `key` ("splice-7", "seg-500-34")
// starting at `start_ms` (its START-DATE, ms since the Unix epoch).
inline std::string cue_id(std::string_view key, std::int64_t start_ms) {
  return std::string(key) + "-" + std::to_string(start_ms);
}

// The attributes of an attribute-list (RFC 8216 4.2), values as written (quotes kept).
inline std::map<std::string, std::string> attributes(std::string_view list) {
  std::map<std::string, std::string> a;
  std::size_t i = 0;
  while (i < list.size()) {
    const std::size_t eq = list.find('=', i);
    if (eq == std::string_view::npos) break;
    std::size_t end = eq + 1;
    if (end < list.size() && list[end] == '"') end = list.find('"', end + 1) + 1;
    end = std::min(list.find(',', end == 0 ? list.size() : end), list.size());
    a[std::string(list.substr(i, eq - i))] = std::string(list.substr(eq + 1, end - eq - 1));
    i = end + 1;
  }
  return a;
}

// Every EXT-X-DATERANGE of a playlist, in order: its attributes.
inline std::vector<std::map<std::string, std::string>> dateranges(const std::string& playlist) {
  static constexpr std::string_view kTag = "#EXT-X-DATERANGE:";
  std::vector<std::map<std::string, std::string>> v;
  for (const auto& l : lines_of(playlist))
    if (l.rfind(kTag, 0) == 0) v.push_back(attributes(std::string_view(l).substr(kTag.size())));
  return v;
}

// RFC 8216 4.3.2.7: DATERANGE tags with one ID must have the same value for every
// attribute they both carry. One line per violation ("ID: ATTR a != b"); empty when none.
inline std::vector<std::string> daterange_conflicts(const std::string& playlist) {
  std::vector<std::string> bad;
  std::map<std::string, std::map<std::string, std::string>> by_id;
  for (const auto& a : dateranges(playlist)) {
    const auto id = a.find("ID");
    if (id == a.end()) {
      bad.push_back("a DATERANGE without an ID");
      continue;
    }
    auto& seen = by_id[id->second];
    for (const auto& [name, value] : a) {
      const auto [it, fresh] = seen.emplace(name, value);
      if (!fresh && it->second != value) bad.push_back(id->second + ": " + name + " " + it->second + " != " + value);
    }
  }
  return bad;
}

}  // namespace twincast::test::scte35_writer
