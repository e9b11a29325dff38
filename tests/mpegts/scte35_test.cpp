// SCTE-35: the splice_info_section parser, the Segmenter's cues (DATERANGE / CUE tags on
// the right segment, read back by ffmpeg) and the remux pass-through.
#include "twincast/mpegts/scte35.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "mpegts/scte35_sections.hpp"
#include "tests_common.hpp"
#include "twincast/mpegts/access_unit.hpp"
#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/hls.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/psi_tables.hpp"
#include "twincast/mpegts/remux.hpp"
#include "twincast/mpegts/section.hpp"

using namespace twincast::mpegts;
namespace hls = twincast::mpegts::hls;
namespace s35 = twincast::mpegts::scte35;
namespace tt = twincast::test;
namespace fs = std::filesystem;

// The section writer, the fixture with an SCTE-35 PID and the playlist readers.
using namespace twincast::test::scte35_writer;

namespace {

Bytes from_hex(std::string_view h) {
  Bytes b;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) b.push_back(static_cast<std::uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return b;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------

// The two worked examples of SCTE 35 (14.1 time_signal - Placement Opportunity Start,
// 14.2 splice_insert), as published: bytes from an encoder, not from our writer.
TEST(Scte35Parse, SpecSamples) {
  s35::SpliceInfo si;
  const Bytes ts = from_hex(
      "fc3034000000000000fffff00506fe72bd0050001e021c435545494800008e7fcf0001a599b00808000000002ca0a18a3402009ac9d17e");
  ASSERT_EQ(s35::parse_splice_info(ts, si), s35::Error::kOk);
  EXPECT_EQ(si.command_type, 0x06);
  EXPECT_EQ(si.sap_type, 3);
  EXPECT_EQ(si.tier, 0xFFF);
  EXPECT_TRUE(si.time_signal.specified);
  EXPECT_EQ(si.time_signal.pts, 0x072BD0050u);  // 21388.766756 s
  ASSERT_EQ(si.segmentation.size(), 1u);
  const auto& d = si.segmentation[0];
  EXPECT_EQ(d.event_id, 0x4800008Eu);
  EXPECT_FALSE(d.cancel);
  EXPECT_TRUE(d.has_duration);
  EXPECT_EQ(d.duration, 27'630'000u);  // 307 s
  EXPECT_FALSE(d.delivery_not_restricted);
  EXPECT_EQ(d.upid_type, 0x08);  // AiringID
  EXPECT_EQ(d.upid, from_hex("000000002ca0a18a"));
  EXPECT_EQ(d.type_id, 0x34);
  EXPECT_EQ(d.segment_num, 2);
  EXPECT_EQ(d.segments_expected, 0);
  EXPECT_FALSE(d.has_sub_segments);  // the 2013-era descriptor ends before them
  EXPECT_EQ(s35::segmentation_direction(d.type_id), s35::Direction::kOut);

  const Bytes ins = from_hex(
      "fc302f000000000000fffff014054800008f7feffe7369c02efe0052ccf500000000000a0008435545490000013562dba30a");
  ASSERT_EQ(s35::parse_splice_info(ins, si), s35::Error::kOk);
  EXPECT_EQ(si.command_type, 0x05);
  EXPECT_EQ(si.insert.event_id, 0x4800008Fu);
  EXPECT_FALSE(si.insert.cancel);
  EXPECT_TRUE(si.insert.out_of_network);
  EXPECT_TRUE(si.insert.program_splice);
  EXPECT_FALSE(si.insert.immediate);
  EXPECT_TRUE(si.insert.event_id_compliance);
  EXPECT_TRUE(si.insert.time.specified);
  EXPECT_EQ(si.insert.time.pts, 0x07369C02Eu);
  EXPECT_TRUE(si.insert.duration.present);
  EXPECT_TRUE(si.insert.duration.auto_return);
  EXPECT_EQ(si.insert.duration.duration, 0x00052CCF5u);  // 60.293566 s
  EXPECT_EQ(si.other_descriptors, 1u);                    // an avail_descriptor
  EXPECT_TRUE(si.segmentation.empty());
}

TEST(Scte35Parse, SpliceInsertRoundTrip) {
  const std::uint64_t adj = (std::uint64_t{1} << 33) - 900;  // wraps: pts 1000 + adj = 100
  InsertSpec i{.event_id = 0xDEADBEEF, .out = true, .pts = 0x1'2345'6789, .has_duration = true, .auto_return = true,
               .duration = 30 * 90'000, .unique_program_id = 0xBEEF, .avail_num = 1, .avails_expected = 2};
  s35::SpliceInfo si;
  ASSERT_EQ(s35::parse_splice_info(insert_section(i, adj), si), s35::Error::kOk);
  EXPECT_EQ(si.pts_adjustment, adj);
  EXPECT_EQ(si.insert.event_id, 0xDEADBEEFu);
  EXPECT_TRUE(si.insert.out_of_network);
  EXPECT_EQ(si.insert.time.pts, 0x1'2345'6789u);
  EXPECT_TRUE(si.insert.duration.auto_return);
  EXPECT_EQ(si.insert.duration.duration, 30u * 90'000);
  EXPECT_EQ(si.insert.unique_program_id, 0xBEEF);
  EXPECT_EQ(si.insert.avail_num, 1);
  EXPECT_EQ(si.insert.avails_expected, 2);
  EXPECT_EQ(s35::adjusted_pts(1000, adj), 100u);

  // In, immediate, no duration.
  ASSERT_EQ(s35::parse_splice_info(insert_section({.event_id = 5, .out = false, .immediate = true}), si), s35::Error::kOk);
  EXPECT_FALSE(si.insert.out_of_network);
  EXPECT_TRUE(si.insert.immediate);
  EXPECT_FALSE(si.insert.time.specified);
  EXPECT_FALSE(si.insert.duration.present);

  // Cancel: nothing after the indicator.
  ASSERT_EQ(s35::parse_splice_info(insert_section({.event_id = 6, .cancel = true}), si), s35::Error::kOk);
  EXPECT_TRUE(si.insert.cancel);
  EXPECT_EQ(si.insert.event_id, 6u);

  // Component mode: the first component's time.
  ASSERT_EQ(s35::parse_splice_info(
                insert_section({.event_id = 7, .program_splice = false, .components = {{0x01, 4242}, {0x02, 4343}}}), si),
            s35::Error::kOk);
  EXPECT_FALSE(si.insert.program_splice);
  EXPECT_EQ(si.insert.component_count, 2);
  EXPECT_EQ(si.insert.time.pts, 4242u);

  // Legacy splice_command_length 0xFFF: the length follows from the syntax.
  SectionSpec legacy{.command_type = 0x05, .command = splice_insert(i), .unknown_command_length = true};
  ASSERT_EQ(s35::parse_splice_info(section(legacy), si), s35::Error::kOk);
  EXPECT_EQ(si.insert.time.pts, 0x1'2345'6789u);
  legacy.command_type = 0x04;  // splice_schedule cannot be skipped without a length
  EXPECT_EQ(s35::parse_splice_info(section(legacy), si), s35::Error::kBadCommand);
}

TEST(Scte35Parse, TimeSignalWithSegmentationDescriptors) {
  const Bytes sec = time_signal_section(
      true, 123456,
      {{.event_id = 10, .has_duration = true, .duration = 90'000 * 15, .type_id = 0x34, .sub_segments = true},
       {.event_id = 11, .type_id = 0x31},
       {.event_id = 12, .cancel = true}},
      77);
  s35::SpliceInfo si;
  ASSERT_EQ(s35::parse_splice_info(sec, si), s35::Error::kOk);
  EXPECT_EQ(si.time_signal.pts, 123456u);
  EXPECT_EQ(si.pts_adjustment, 77u);
  ASSERT_EQ(si.segmentation.size(), 3u);
  EXPECT_EQ(si.segmentation[0].type_id, 0x34);
  EXPECT_EQ(si.segmentation[0].duration, 90'000u * 15);
  EXPECT_TRUE(si.segmentation[0].has_sub_segments);
  EXPECT_EQ(si.segmentation[0].sub_segment_num, 2);
  EXPECT_EQ(si.segmentation[0].sub_segments_expected, 3);
  EXPECT_EQ(si.segmentation[0].upid, (Bytes{'t', 'w', 'c'}));
  EXPECT_EQ(si.segmentation[1].type_id, 0x31);
  EXPECT_FALSE(si.segmentation[1].has_sub_segments);
  EXPECT_TRUE(si.segmentation[2].cancel);
  EXPECT_EQ(si.segmentation[2].event_id, 12u);

  // A tag-2 descriptor of another identifier is not a segmentation descriptor.
  Bytes other = segmentation_descriptor({.event_id = 1});
  other[2] = 'X';
  s35::SpliceInfo o;
  ASSERT_EQ(s35::parse_splice_info(section({.command_type = 0x06, .command = {0x7F}, .descriptors = other}), o),
            s35::Error::kOk);
  EXPECT_TRUE(o.segmentation.empty());
  EXPECT_EQ(o.other_descriptors, 1u);
  EXPECT_FALSE(o.time_signal.specified);

  // splice_null and reserved command types: parsed, type only.
  ASSERT_EQ(s35::parse_splice_info(section({.command_type = 0x00}), o), s35::Error::kOk);
  EXPECT_EQ(o.command_type, 0x00);
  ASSERT_EQ(s35::parse_splice_info(section({.command_type = 0x42, .command = {1, 2, 3}}), o), s35::Error::kOk);
  EXPECT_EQ(o.command_type, 0x42);
}

TEST(Scte35Parse, DirectionTable) {
  const std::vector<std::uint8_t> outs = {0x22, 0x30, 0x32, 0x34, 0x36, 0x38, 0x3A, 0x3C, 0x3E, 0x44, 0x46};
  for (int t = 0; t < 256; ++t) {
    const auto id = static_cast<std::uint8_t>(t);
    const bool is_out = std::find(outs.begin(), outs.end(), id) != outs.end();
    const bool is_in = id > 0 && std::find(outs.begin(), outs.end(), static_cast<std::uint8_t>(id - 1)) != outs.end();
    const s35::Direction expect = is_out ? s35::Direction::kOut : is_in ? s35::Direction::kIn : s35::Direction::kNone;
    EXPECT_EQ(s35::segmentation_direction(id), expect) << "type 0x" << std::hex << t;
  }
}

TEST(Scte35Parse, RefusesBadSections) {
  const Bytes good = insert_section({.event_id = 1, .pts = 1000, .has_duration = true, .duration = 9000});
  s35::SpliceInfo si;
  ASSERT_EQ(s35::parse_splice_info(good, si), s35::Error::kOk);

  // Every byte flipped: the CRC catches it (or the header check before it).
  for (std::size_t i = 0; i < good.size(); ++i) {
    Bytes b = good;
    b[i] ^= 0x01;
    EXPECT_NE(s35::parse_splice_info(b, si), s35::Error::kOk) << "byte " << i;
  }
  Bytes bad_crc = good;
  bad_crc.back() ^= 0xFF;
  EXPECT_EQ(s35::parse_splice_info(bad_crc, si), s35::Error::kBadCrc);

  // Truncated anywhere.
  for (std::size_t n = 0; n < good.size(); ++n)
    EXPECT_NE(s35::parse_splice_info(std::span<const std::uint8_t>(good.data(), n), si), s35::Error::kOk) << n;
  EXPECT_EQ(s35::parse_splice_info(std::span<const std::uint8_t>(good.data(), good.size() - 1), si),
            s35::Error::kTruncated);
  EXPECT_EQ(s35::parse_splice_info(std::span<const std::uint8_t>(good.data(), 2), si), s35::Error::kTruncated);

  Bytes table = good;
  table[0] = 0xFD;
  fix_crc(table);
  EXPECT_EQ(s35::parse_splice_info(table, si), s35::Error::kBadTableId);

  Bytes longer = good;
  longer.push_back(0xFF);
  EXPECT_EQ(s35::parse_splice_info(longer, si), s35::Error::kBadLength);

  Bytes enc = good;
  enc[4] |= 0x80;
  fix_crc(enc);
  EXPECT_EQ(s35::parse_splice_info(enc, si), s35::Error::kEncrypted);
  EXPECT_TRUE(si.encrypted);

  // splice_command_length larger than the section.
  Bytes cmd_len = good;
  cmd_len[12] = 0xF0;
  fix_crc(cmd_len);
  EXPECT_EQ(s35::parse_splice_info(cmd_len, si), s35::Error::kBadLength);

  // A command shorter than its syntax (splice_insert cut after the flags).
  EXPECT_EQ(s35::parse_splice_info(section({.command_type = 0x05, .command = {0, 0, 0, 1, 0x7F, 0xFF}}), si),
            s35::Error::kBadCommand);

  // A descriptor loop running past the CRC, and a descriptor longer than the loop.
  Bytes loop = section({.command_type = 0x00, .descriptors = segmentation_descriptor({})});
  loop[14] = 0x00;
  loop[15] = 0xF0;
  fix_crc(loop);
  EXPECT_EQ(s35::parse_splice_info(loop, si), s35::Error::kBadDescriptor);
  Bytes desc = section({.command_type = 0x00, .descriptors = segmentation_descriptor({})});
  desc[17] = static_cast<std::uint8_t>(desc[17] + 1);  // descriptor_length
  fix_crc(desc);
  EXPECT_EQ(s35::parse_splice_info(desc, si), s35::Error::kBadDescriptor);
  // A segmentation descriptor cut inside its UPID.
  Bytes upid = segmentation_descriptor({.upid = Bytes(20, 0xAB)});
  upid[1] = static_cast<std::uint8_t>(upid[1] - 10);
  upid.resize(upid.size() - 10);
  EXPECT_EQ(s35::parse_splice_info(section({.command_type = 0x06, .command = {0x7F}, .descriptors = upid}), si),
            s35::Error::kBadDescriptor);
}

// Valid sections with random bytes changed (CRC fixed, so the body parsers run): any
// result but a crash or a read outside the span (the Sanitize build checks that), and the
// same result twice.
TEST(Scte35Parse, MutatedSectionsNeverCrash) {
  const std::vector<Bytes> bases = {
      insert_section({.event_id = 1, .pts = 1000, .has_duration = true, .duration = 9000}),
      insert_section({.event_id = 2, .program_splice = false, .components = {{1, 5}, {2, 6}, {3, 7}}}),
      time_signal_section(true, 5, {{.event_id = 3, .has_duration = true, .duration = 90, .sub_segments = true},
                                    {.event_id = 4, .type_id = 0x35},
                                    {.event_id = 5, .cancel = true}})};
  std::mt19937 rng(35);
  std::size_t ok = 0;
  std::size_t refused = 0;
  for (int round = 0; round < 30000; ++round) {
    Bytes b = bases[static_cast<std::size_t>(round) % bases.size()];
    const int n = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < n; ++k) b[3 + rng() % (b.size() - 7)] = static_cast<std::uint8_t>(rng());
    fix_crc(b);
    s35::SpliceInfo si;
    const auto e = s35::parse_splice_info(b, si);
    (e == s35::Error::kOk ? ok : refused) += 1;
    s35::SpliceInfo again;
    EXPECT_EQ(s35::parse_splice_info(b, again), e);
  }
  EXPECT_GT(ok, 1000u);
  EXPECT_GT(refused, 1000u);
}

// ---------------------------------------------------------------------------------------
// Segmenter: cues on a real stream
// ---------------------------------------------------------------------------------------

namespace {

constexpr std::int64_t kWall0 = 1'795'642'000'000;
// The wall clock of packet i arriving at the fixture's mux rate (1500 kbit/s), so program
// dates follow the media clock as they do live.
std::int64_t wall_of(std::size_t i) { return kWall0 + static_cast<std::int64_t>(i * kPacketSize * 8 / 1500); }

struct CueRun {
  std::vector<hls::Segment> segments;
  hls::SegmenterStats stats;
};

CueRun segment(const std::vector<TsPacket>& pkts) {
  CueRun r;
  hls::Segmenter s({}, [&](hls::Segment&& seg) { r.segments.push_back(std::move(seg)); });
  for (std::size_t i = 0; i < pkts.size(); i += 7)
    s.push(std::span<const TsPacket>(pkts.data() + i, std::min<std::size_t>(7, pkts.size() - i)), wall_of(i));
  s.flush();
  r.stats = s.stats();
  return r;
}

// The tags both two-break streams below put before seg1.ts .. seg3.ts: the placement
// opportunity's in (its out 1.52 s into seg0, its in 0.52 s into seg1), the break's out at
// seg2's start (2.5 s planned) and its in 0.5 s into seg3 (the first two of seg3's tags,
// which are returned).
std::vector<std::string> expect_ppo_in_and_break(const std::string& pl, const std::vector<hls::Segment>& segs,
                                                 const std::string& ppo_id, const std::string& brk_id, const Bytes& ppo_in,
                                                 const Bytes& brk_out, const Bytes& brk_in) {
  const auto iso = [](std::int64_t ms) { return hls::format_date_time(ms); };
  const std::int64_t ppo_start = segs[0].program_date_time_ms + 1520, ppo_end = segs[1].program_date_time_ms + 520;
  const std::int64_t brk_start = segs[2].program_date_time_ms, brk_end = segs[3].program_date_time_ms + 500;
  EXPECT_EQ(tags_before(pl, "seg1.ts"),
            (std::vector<std::string>{"#EXT-X-DATERANGE:ID=\"" + ppo_id + "\",START-DATE=\"" + iso(ppo_start) +
                                          "\",END-DATE=\"" + iso(ppo_end) + "\",DURATION=" + seconds(ppo_end - ppo_start) +
                                          ",SCTE35-IN=" + to_hex(ppo_in),
                                      "#EXT-X-CUE-IN"})) << pl;
  EXPECT_EQ(tags_before(pl, "seg2.ts"),
            (std::vector<std::string>{"#EXT-X-DATERANGE:ID=\"" + brk_id + "\",START-DATE=\"" + iso(brk_start) +
                                          "\",PLANNED-DURATION=2.500,SCTE35-OUT=" + to_hex(brk_out),
                                      "#EXT-X-CUE-OUT:DURATION=2.500"})) << pl;
  const auto s3_tags = tags_before(pl, "seg3.ts");
  if (s3_tags.size() < 2) {
    ADD_FAILURE() << "seg3.ts has fewer than 2 tags\n" << pl;
    return s3_tags;
  }
  EXPECT_EQ(s3_tags[0], "#EXT-X-DATERANGE:ID=\"" + brk_id + "\",START-DATE=\"" + iso(brk_start) + "\",END-DATE=\"" +
                           iso(brk_end) + "\",DURATION=" + seconds(brk_end - brk_start) + ",SCTE35-IN=" + to_hex(brk_in));
  EXPECT_EQ(s3_tags[1], "#EXT-X-CUE-IN");
  return s3_tags;
}


}  // namespace

// Cues on the ffmpeg fixture (25 fps, an IDR every second, 2 s target): a time_signal
// Placement Opportunity start/end in the middle of GOPs, a splice_insert out on an IDR
// (pts_adjustment wrapping), its in mid-GOP, an immediate out, a cancelled event, a
// splice_null and a section with a bad CRC.
TEST(Scte35Segmenter, CuesLandOnTheRightSegment) {
  const auto base = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
  ASSERT_FALSE(base.empty());
  const auto pes = video_pes(base);
  ASSERT_FALSE(pes.empty());
  const std::uint64_t f0 = first_pts(pes);
  // The first packet whose video PES is at or after f0 + `s` seconds (decode order).
  const auto at = [&](double s) { return packet_at(pes, f0 + static_cast<std::uint64_t>(s * 90'000), base.size()); };
  const std::uint64_t adj = (std::uint64_t{1} << 33) - 45'000;  // pts_time is 0.5 s ahead, wrapping
  const auto t = [&](double s) { return (f0 + static_cast<std::uint64_t>(s * 90'000) + 45'000) % (std::uint64_t{1} << 33); };

  const Bytes ppo_out = time_signal_section(true, f0 + 136'800, {{.event_id = 500, .has_duration = true,
                                                                   .duration = 90'000 * 1, .type_id = 0x34}});  // 1.52 s
  const Bytes ppo_in = time_signal_section(true, f0 + 226'800, {{.event_id = 500, .type_id = 0x35}});            // 2.52 s
  const Bytes brk_out = insert_section({.event_id = 7, .out = true, .pts = t(3.0), .has_duration = true,
                                        .duration = 90'000 * 5 / 2}, adj);                                      // 3.0 s, an IDR
  const Bytes brk_in = insert_section({.event_id = 7, .out = false, .pts = t(5.5)}, adj);                       // 5.5 s
  const Bytes imm = insert_section({.event_id = 11, .out = true, .immediate = true});
  const Bytes cancelled = insert_section({.event_id = 9, .out = true, .pts = f0 + 4 * 90'000});  // an IDR: no cut once cancelled
  const Bytes cancel = insert_section({.event_id = 9, .cancel = true});
  const Bytes null_cmd = section({.command_type = 0x00});
  Bytes bad = insert_section({.event_id = 13, .pts = f0 + 90'000});
  bad[20] ^= 0x40;

  const std::size_t imm_at = at(0.6);
  const auto pkts = insert_sections(base, {{at(0.3), ppo_out},
                                           {at(0.4), cancelled},
                                           {at(0.5), cancel},
                                           {imm_at, imm},
                                           {at(1.0), null_cmd},
                                           {at(1.2), bad},
                                           {at(2.0), ppo_in},
                                           {at(2.2), brk_out},
                                           {at(5.0), brk_in}});
  const CueRun r = segment(pkts);
  // Cuts at 0, 2, 3 (the splice point's IDR, before the target), 5, end.
  ASSERT_EQ(r.segments.size(), 4u);
  EXPECT_EQ(r.stats.splice_cuts, 1u);
  std::vector<std::uint64_t> starts;
  for (const auto& s : r.segments) starts.push_back(pts_delta(f0, s.first_pts));
  EXPECT_EQ(starts, (std::vector<std::uint64_t>{0, 180'000, 270'000, 450'000}));
  EXPECT_EQ(r.stats.scte35_sections, 9u);
  EXPECT_EQ(r.stats.scte35_refused, 1u);
  EXPECT_EQ(r.stats.scte35_error(s35::Error::kBadCrc), 1u);
  EXPECT_EQ(r.stats.scte35_ignored, 1u);  // splice_null
  EXPECT_EQ(r.stats.cues_cancelled, 1u);
  EXPECT_EQ(r.stats.cues, 5u);
  EXPECT_EQ(r.stats.cues_dropped, 0u);

  const auto wall_at = [&](const hls::Segment& s, std::uint64_t pts) {
    return s.program_date_time_ms + static_cast<std::int64_t>((pts_delta(s.first_pts, pts) + 45) / 90);
  };
  // Segment 0: the immediate out (at the latest video PES before it arrived), then the PPO start.
  const auto& s0 = r.segments[0];
  ASSERT_EQ(s0.cues.size(), 2u);
  std::uint64_t imm_pts = 0;
  for (const auto& [i, pts] : pes)
    if (i < imm_at) imm_pts = pts;
  EXPECT_EQ(s0.cues[0].id, cue_id("splice-11", s0.cues[0].wall_ms));
  EXPECT_TRUE(s0.cues[0].immediate);
  EXPECT_EQ(s0.cues[0].pts, imm_pts);
  EXPECT_EQ(s0.cues[0].wall_ms, wall_at(s0, imm_pts));
  EXPECT_EQ(s0.cues[0].section, imm);
  EXPECT_EQ(s0.cues[1].kind, hls::CueKind::kOut);
  EXPECT_EQ(s0.cues[1].id, cue_id("seg-500-34", s0.program_date_time_ms + 1520));
  EXPECT_EQ(s0.cues[1].segmentation_type, 0x34);
  EXPECT_EQ(s0.cues[1].wall_ms, s0.program_date_time_ms + 1520);
  EXPECT_DOUBLE_EQ(s0.cues[1].planned_duration_s, 1.0);
  EXPECT_EQ(s0.cues[1].section, ppo_out);
  // Segment 1: the PPO end, 0.52 s in, closing the out of segment 0.
  const auto& s1 = r.segments[1];
  ASSERT_EQ(s1.cues.size(), 1u);
  EXPECT_EQ(s1.cues[0].kind, hls::CueKind::kIn);
  EXPECT_EQ(s1.cues[0].id, s0.cues[1].id) << "the in closes the out's range";
  EXPECT_EQ(s1.cues[0].wall_ms, s1.program_date_time_ms + 520);
  EXPECT_TRUE(s1.cues[0].has_out);
  EXPECT_EQ(s1.cues[0].out_wall_ms, s0.cues[1].wall_ms);
  // Segment 2 starts on the break's splice point.
  const auto& s2 = r.segments[2];
  ASSERT_EQ(s2.cues.size(), 1u);
  EXPECT_EQ(s2.cues[0].id, cue_id("splice-7", s2.program_date_time_ms));
  EXPECT_EQ(s2.cues[0].pts, s2.first_pts);  // pts_adjustment applied across the wrap
  EXPECT_EQ(s2.cues[0].wall_ms, s2.program_date_time_ms);
  EXPECT_DOUBLE_EQ(s2.cues[0].planned_duration_s, 2.5);
  EXPECT_EQ(s2.cues[0].section, brk_out);
  // Segment 3: the break's in, 0.5 s in.
  const auto& s3 = r.segments[3];
  ASSERT_EQ(s3.cues.size(), 1u);
  EXPECT_EQ(s3.cues[0].id, s2.cues[0].id);
  EXPECT_EQ(s3.cues[0].kind, hls::CueKind::kIn);
  EXPECT_EQ(s3.cues[0].wall_ms, s3.program_date_time_ms + 500);
  EXPECT_EQ(s3.cues[0].out_wall_ms, s2.program_date_time_ms);

  // The SCTE-35 packets stay in the segments (those before the first keyframe are dropped
  // with the rest), and every segment's PMT lists the PID.
  std::size_t scte_packets = 0;
  for (const auto& s : r.segments)
    for (std::size_t o = 0; o < s.bytes.size(); o += kPacketSize)
      if (TsPacket::view(s.bytes.data() + o).pid() == kScte35Pid) ++scte_packets;
  EXPECT_GE(scte_packets, 5u);

  // The playlist: tags before the right URIs.
  const std::string imm_id = cue_id("splice-11", s0.cues[0].wall_ms);
  const std::string ppo_id = cue_id("seg-500-34", s0.program_date_time_ms + 1520);
  const std::string brk_id = cue_id("splice-7", s2.program_date_time_ms);
  const std::string pl = hls::media_playlist(playlist_of(r.segments));
  const auto iso = [](std::int64_t ms) { return hls::format_date_time(ms); };
  EXPECT_EQ(tags_before(pl, "seg0.ts"),
            (std::vector<std::string>{
                "#EXT-X-DATERANGE:ID=\"" + imm_id + "\",START-DATE=\"" + iso(s0.cues[0].wall_ms) + "\",SCTE35-OUT=" + to_hex(imm),
                "#EXT-X-CUE-OUT",
                "#EXT-X-DATERANGE:ID=\"" + ppo_id + "\",START-DATE=\"" + iso(s0.program_date_time_ms + 1520) +
                    "\",PLANNED-DURATION=1.000,SCTE35-OUT=" + to_hex(ppo_out),
                "#EXT-X-CUE-OUT:DURATION=1.000"})) << pl;
  EXPECT_EQ(expect_ppo_in_and_break(pl, r.segments, ppo_id, brk_id, ppo_in, brk_out, brk_in).size(), 2u) << pl;
  EXPECT_EQ(daterange_conflicts(pl), std::vector<std::string>{}) << pl;

  // Real peers read the playlist and its segments: ffmpeg decodes everything without an
  // error, ffprobe sees the SCTE-35 stream the PMT announces.
  const fs::path dir = tt::temp_dir("scte35_hls");
  for (const auto& s : r.segments) tt::write_file(dir / ("seg" + std::to_string(s.sequence) + ".ts"), s.bytes);
  tt::write_file(dir / "playlist.m3u8", Bytes(pl.begin(), pl.end()));
  const std::string path = tt::shell_quote((dir / "playlist.m3u8").string());
  const auto dec = tt::run("ffmpeg -nostdin -v error -i " + path + " -f null - 2>&1");
  EXPECT_EQ(dec.exit_code, 0) << dec.out;
  EXPECT_EQ(dec.out, "");
  const auto frames = tt::run("ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames "
                              "-of csv=p=0 " + path + " 2>&1");
  EXPECT_EQ(frames.exit_code, 0) << frames.out;
  EXPECT_EQ(frames.out.substr(0, 4), "150\n") << frames.out;
  const auto streams = tt::run("ffprobe -v error -show_entries stream=codec_name -of csv=p=0 " +
                               tt::shell_quote((dir / "seg2.ts").string()) + " 2>&1");
  EXPECT_EQ(streams.exit_code, 0) << streams.out;
  EXPECT_NE(streams.out.find("scte_35"), std::string::npos) << streams.out;
  fs::remove_all(dir);
}

// A discontinuity drops the cues still pending (their splice points are on the old
// timeline); an in whose out was never seen still renders, with its own START-DATE (and
// an ID made from it).
TEST(Scte35Segmenter, DiscontinuityDropsPendingCuesAndLoneInRenders) {
  const auto base = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
  const auto pes = video_pes(base);
  ASSERT_FALSE(pes.empty());
  const std::uint64_t f0 = pes.front().second;
  const auto pkts = insert_sections(
      base, {{pes[10].first, insert_section({.event_id = 20, .pts = f0 + 3600 * 90'000})},  // an hour ahead
             {pes[12].first, insert_section({.event_id = 21, .out = false, .pts = f0 + 90'000 / 2})}});
  CueRun r;
  {
    hls::Segmenter s({}, [&](hls::Segment&& seg) { r.segments.push_back(std::move(seg)); });
    const std::size_t half = pkts.size() / 2;
    s.push(std::span<const TsPacket>(pkts.data(), half), wall_of(0));
    s.push(std::span<const TsPacket>(pkts.data() + half, pkts.size() - half), wall_of(half), true);
    s.flush();
    r.stats = s.stats();
  }
  EXPECT_EQ(r.stats.cues, 1u);
  EXPECT_EQ(r.stats.cues_dropped, 1u);
  ASSERT_FALSE(r.segments.empty());
  ASSERT_EQ(r.segments[0].cues.size(), 1u);
  const hls::Cue& c = r.segments[0].cues[0];
  EXPECT_FALSE(c.has_out);
  const std::string pl = hls::media_playlist(playlist_of(r.segments));
  EXPECT_EQ(tags_before(pl, "seg0.ts"),
            (std::vector<std::string>{"#EXT-X-DATERANGE:ID=\"" + cue_id("splice-21", r.segments[0].program_date_time_ms + 500) +
                                          "\",START-DATE=\"" +
                                          hls::format_date_time(r.segments[0].program_date_time_ms + 500) +
                                          "\",SCTE35-IN=" + to_hex(c.section),
                                      "#EXT-X-CUE-IN"}))
      << pl;
}

// Aligned cuts (ABR): a rendition that carries no SCTE-35 (a transcoded rung) cuts on the
// PTS grid only, and the packager numbers each rendition's segments one after another, so
// a rendition with the cue must cut on the same grid: no extra cut at the splice point
// (the cue still gets its exact START-DATE inside the segment holding it).
TEST(Scte35Segmenter, AlignedCutsStayOnTheGridWithACue) {
  const auto base = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
  const auto pes = video_pes(base);
  ASSERT_FALSE(pes.empty());
  const std::uint64_t f0 = first_pts(pes);
  const auto at = [&](double s) { return packet_at(pes, f0 + static_cast<std::uint64_t>(s * 90'000), base.size()); };
  const auto run = [](const std::vector<TsPacket>& pkts) {
    std::vector<hls::Segment> segs;
    hls::SegmenterConfig c;
    c.align_to_pts = true;
    hls::Segmenter s(c, [&](hls::Segment&& seg) { segs.push_back(std::move(seg)); });
    for (std::size_t i = 0; i < pkts.size(); i += 7)
      s.push(std::span<const TsPacket>(pkts.data() + i, std::min<std::size_t>(7, pkts.size() - i)), wall_of(i));
    s.flush();
    return segs;
  };
  const auto plain = run(base);
  ASSERT_GE(plain.size(), 3u);
  // An IDR (one a second) in the middle of the second aligned segment.
  const std::uint64_t point = plain[1].first_pts + 90'000;
  const auto cued = insert_sections(base, {{at(static_cast<double>(pts_delta(f0, plain[1].first_pts)) / 90'000.0 - 0.5),
                                            insert_section({.event_id = 7, .out = true, .pts = point})}});
  const auto with_cue = run(cued);
  std::vector<std::uint64_t> plain_starts, cue_starts;
  for (const auto& s : plain) plain_starts.push_back(s.first_pts);
  for (const auto& s : with_cue) cue_starts.push_back(s.first_pts);
  EXPECT_EQ(cue_starts, plain_starts) << "a splice cut left the PTS grid";
  std::size_t n_cues = 0;
  for (const auto& s : with_cue) {
    for (const auto& c : s.cues) {
      ++n_cues;
      EXPECT_EQ(c.pts, point);
      EXPECT_EQ(c.wall_ms, s.program_date_time_ms + static_cast<std::int64_t>(pts_delta(s.first_pts, c.pts) / 90));
    }
  }
  EXPECT_EQ(n_cues, 1u);
}

// At an input switch the pending cues wait for the new input's first PTS; a cancel that
// arrives meanwhile (the encoder withdraws the break) removes them there too: no range is
// opened for a cancelled event.
TEST(Scte35Segmenter, CancelDuringInputSwitchRemovesTheWaitingCue) {
  const auto base = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
  const auto pes = video_pes(base);
  ASSERT_GT(pes.size(), 60u);
  const std::uint64_t f0 = first_pts(pes);
  const std::size_t split = pes[50].first;  // ~2 s in; the redundant input carries on with the same clock
  const std::vector<TsPacket> head(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(split));
  const std::vector<TsPacket> tail(base.begin() + static_cast<std::ptrdiff_t>(split), base.end());
  const auto first = insert_sections(head, {{pes[10].first, insert_section({.event_id = 9, .out = true, .pts = f0 + 4 * 90'000})}});
  const auto second = insert_sections(tail, {{0, insert_section({.event_id = 9, .cancel = true})}});
  CueRun r;
  {
    hls::Segmenter s({}, [&](hls::Segment&& seg) { r.segments.push_back(std::move(seg)); });
    s.push(first, wall_of(0));
    s.push(second, wall_of(first.size()), true);  // input switch
    s.flush();
    r.stats = s.stats();
  }
  ASSERT_FALSE(r.segments.empty());
  EXPECT_EQ(r.stats.scte35_sections, 2u);
  EXPECT_EQ(r.stats.cues_cancelled, 1u);
  EXPECT_EQ(r.stats.cues, 0u);
  for (const auto& seg : r.segments)
    for (const auto& c : seg.cues) ADD_FAILURE() << "cancelled event's cue rendered: " << c.id;
}

// Encoders repeat a section several times before its splice point: each event gives one
// cue (one DATERANGE, one CUE-OUT / CUE-IN), the copies are counted as repeats, whether
// they arrive while the cue is pending or after it was attached. The same event ID with
// another splice point is a new cue, with a DATERANGE ID of its own.
TEST(Scte35Segmenter, RepeatedSectionsGiveOneCue) {
  const auto base = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
  const auto pes = video_pes(base);
  ASSERT_FALSE(pes.empty());
  const std::uint64_t f0 = first_pts(pes);
  const auto at = [&](double s) { return packet_at(pes, f0 + static_cast<std::uint64_t>(s * 90'000), base.size()); };
  const auto pts_at = [&](double s) { return f0 + static_cast<std::uint64_t>(s * 90'000); };
  const Bytes ppo_out = time_signal_section(true, pts_at(1.52), {{.event_id = 500, .has_duration = true,
                                                                   .duration = 90'000, .type_id = 0x34}});
  const Bytes ppo_in = time_signal_section(true, pts_at(2.52), {{.event_id = 500, .type_id = 0x35}});
  const Bytes brk_out = insert_section({.event_id = 7, .out = true, .pts = pts_at(3.0), .has_duration = true,
                                        .duration = 90'000 * 5 / 2});
  const Bytes brk_in = insert_section({.event_id = 7, .out = false, .pts = pts_at(5.5)});
  const Bytes next_out = insert_section({.event_id = 7, .out = true, .pts = pts_at(5.8)});  // a new event, same ID
  const auto pkts = insert_sections(base, {{at(0.3), ppo_out},
                                           {at(0.9), ppo_out},
                                           {at(1.4), ppo_out},
                                           {at(2.0), ppo_in},
                                           {at(2.3), ppo_in},
                                           {at(1.0), brk_out},
                                           {at(1.8), brk_out},
                                           {at(2.6), brk_out},
                                           {at(3.4), brk_out},  // late: attached already
                                           {at(4.6), brk_in},
                                           {at(5.2), brk_in},
                                           {at(5.6), next_out}});
  const CueRun r = segment(pkts);
  ASSERT_EQ(r.segments.size(), 4u);  // cuts at 0, 2, 3 (the break's splice point), 5
  EXPECT_EQ(r.stats.scte35_sections, 12u);
  EXPECT_EQ(r.stats.cues, 5u);
  EXPECT_EQ(r.stats.cues_repeated, 7u);
  EXPECT_EQ(r.stats.cues_dropped, 0u);
  EXPECT_EQ(r.stats.splice_cuts, 1u);
  const auto ids = [&](std::size_t i) {
    std::vector<std::string> v;
    for (const auto& c : r.segments[i].cues) v.push_back(c.id + (c.kind == hls::CueKind::kOut ? "/out" : "/in"));
    return v;
  };
  const std::string ppo_id = cue_id("seg-500-34", r.segments[0].program_date_time_ms + 1520);
  const std::string brk_id = cue_id("splice-7", r.segments[2].program_date_time_ms);
  const std::string next_id = cue_id("splice-7", r.segments[3].program_date_time_ms + 800);
  EXPECT_NE(brk_id, next_id) << "event 7 again: another range";
  EXPECT_EQ(ids(0), (std::vector<std::string>{ppo_id + "/out"}));
  EXPECT_EQ(ids(1), (std::vector<std::string>{ppo_id + "/in"}));
  EXPECT_EQ(ids(2), (std::vector<std::string>{brk_id + "/out"}));
  EXPECT_EQ(ids(3), (std::vector<std::string>{brk_id + "/in", next_id + "/out"}));
  ASSERT_EQ(r.segments[3].cues.size(), 2u);
  EXPECT_EQ(r.segments[3].cues[1].pts, pts_at(5.8));

  const std::string pl = hls::media_playlist(playlist_of(r.segments));
  const auto iso = [](std::int64_t ms) { return hls::format_date_time(ms); };
  const auto& s0 = r.segments[0];
  const auto& s3 = r.segments[3];
  EXPECT_EQ(tags_before(pl, "seg0.ts"),
            (std::vector<std::string>{"#EXT-X-DATERANGE:ID=\"" + ppo_id + "\",START-DATE=\"" + iso(s0.program_date_time_ms + 1520) +
                                          "\",PLANNED-DURATION=1.000,SCTE35-OUT=" + to_hex(ppo_out),
                                      "#EXT-X-CUE-OUT:DURATION=1.000"})) << pl;
  const auto s3_tags = expect_ppo_in_and_break(pl, r.segments, ppo_id, brk_id, ppo_in, brk_out, brk_in);
  ASSERT_EQ(s3_tags.size(), 4u) << pl;
  EXPECT_EQ(s3_tags[2], "#EXT-X-DATERANGE:ID=\"" + next_id + "\",START-DATE=\"" + iso(s3.program_date_time_ms + 800) +
                           "\",SCTE35-OUT=" + to_hex(next_out));
  EXPECT_EQ(s3_tags[3], "#EXT-X-CUE-OUT");
  EXPECT_EQ(daterange_conflicts(pl), std::vector<std::string>{}) << pl;
}

// Two ranges of one event dated in the same millisecond (two outs of event 30, both late,
// land on one segment's start) keep distinct IDs; the in closes the latest.
TEST(Scte35Segmenter, SameMillisecondRangesKeepDistinctIds) {
  const auto base = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
  const auto pes = video_pes(base);
  ASSERT_FALSE(pes.empty());
  const std::uint64_t f0 = first_pts(pes);
  const auto at = [&](double s) { return packet_at(pes, f0 + static_cast<std::uint64_t>(s * 90'000), base.size()); };
  const Bytes out_a = insert_section({.event_id = 30, .pts = f0 + 90'000});        // 1.0 s, sent at 2.5 s
  const Bytes out_b = insert_section({.event_id = 30, .pts = f0 + 90'000 * 3 / 2});  // 1.5 s, sent at 2.6 s
  const Bytes in = insert_section({.event_id = 30, .out = false, .pts = f0 + 90'000 * 7 / 2});
  const CueRun r = segment(insert_sections(base, {{at(2.5), out_a}, {at(2.6), out_b}, {at(3.2), in}}));
  ASSERT_GE(r.segments.size(), 2u);
  const auto& s1 = r.segments[1];
  ASSERT_EQ(s1.cues.size(), 3u);
  EXPECT_EQ(s1.cues[0].wall_ms, s1.program_date_time_ms);
  EXPECT_EQ(s1.cues[1].wall_ms, s1.program_date_time_ms);
  EXPECT_EQ(s1.cues[0].id, cue_id("splice-30", s1.program_date_time_ms));
  EXPECT_EQ(s1.cues[1].id, cue_id("splice-30", s1.program_date_time_ms) + "-2");
  EXPECT_EQ(s1.cues[1].section, out_b);
  EXPECT_EQ(s1.cues[2].kind, hls::CueKind::kIn);
  EXPECT_EQ(s1.cues[2].id, s1.cues[1].id) << "the in closes the latest out";
  const std::string pl = hls::media_playlist(playlist_of(r.segments));
  EXPECT_EQ(daterange_conflicts(pl), std::vector<std::string>{}) << pl;
}

namespace {

// The 33-bit PES timestamp (PTS / DTS) at p, moved `by` ticks; prefix and marker bits kept.
void shift_timestamp(std::uint8_t* p, std::uint64_t by) {
  const std::uint64_t v = ((std::uint64_t{p[0]} >> 1 & 7) << 30) | (std::uint64_t{p[1]} << 22) |
                          (std::uint64_t{p[2]} >> 1 << 15) | (std::uint64_t{p[3]} << 7) | (std::uint64_t{p[4]} >> 1);
  const std::uint64_t n = (v + by) % kPtsWrap;
  p[0] = static_cast<std::uint8_t>((p[0] & 0xF0) | ((n >> 29) & 0x0E) | 1);
  p[1] = static_cast<std::uint8_t>(n >> 22);
  p[2] = static_cast<std::uint8_t>(((n >> 14) & 0xFE) | 1);
  p[3] = static_cast<std::uint8_t>(n >> 7);
  p[4] = static_cast<std::uint8_t>(((n << 1) & 0xFE) | 1);
}

// `base` played `n` times in a row, each pass's PCR, PTS and DTS one `period` after the
// previous pass's, continuity counters running on: a stream n times as long whose clocks
// never jump (the Segmenter sees no discontinuity).
std::vector<TsPacket> looped(const std::vector<TsPacket>& base, std::size_t n, std::uint64_t period) {
  std::vector<TsPacket> out;
  out.reserve(base.size() * n);
  std::array<std::uint8_t, kPidCount> cc{};
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint64_t by = period * k;
    for (TsPacket p : base) {
      if (p.has_pcr()) p.set_pcr((p.pcr() + by * 300) % kPcrWrap);
      if (p.has_payload()) {
        p.set_cc(cc[p.pid()]);
        cc[p.pid()] = static_cast<std::uint8_t>((cc[p.pid()] + 1) & 0x0F);
      }
      const auto pl = p.payload();
      if (p.payload_unit_start() && p.pid() != kPatPid && p.pid() != kPmtPid && pl.size() >= 19 && pl[0] == 0 &&
          pl[1] == 0 && pl[2] == 1) {
        const unsigned flags = pl[7] >> 6;  // PTS_DTS_flags
        if (flags & 2) shift_timestamp(pl.data() + 9, by);
        if (flags == 3) shift_timestamp(pl.data() + 14, by);
      }
      out.push_back(p);
    }
  }
  return out;
}

// One pass's length for looped(): past the last video frame and the last PCR, whole frames.
std::uint64_t loop_period(const std::vector<TsPacket>& base) {
  const auto pes = video_pes(base);
  std::uint64_t lo = UINT64_MAX;
  std::uint64_t hi = 0;
  for (const auto& [i, pts] : pes) {
    lo = std::min(lo, pts);
    hi = std::max(hi, pts);
  }
  std::uint64_t first_pcr = 0;
  std::uint64_t last_pcr = 0;
  bool any = false;
  for (const auto& p : base) {
    if (!p.has_pcr()) continue;
    if (!any) first_pcr = p.pcr();
    last_pcr = p.pcr();
    any = true;
  }
  constexpr std::uint64_t kFrame = 3600;  // 25 fps
  const std::uint64_t span = std::max(hi - lo, (last_pcr - first_pcr) / 300) + kFrame;
  return (span + kFrame - 1) / kFrame * kFrame;
}

// Real encoders reuse event IDs. A continuous stream of 25 passes of the fixture (~150 s)
// carries each of three events twice, two minutes apart: splice_insert event 7 (out / in),
// a Placement Opportunity of segmentation_event_id 500 (time_signal 0x34 / 0x35) and an
// immediate splice_insert event 11; every section is sent several times, some copies late.
struct ReusedIds {
  std::vector<hls::Segment> segments;
  hls::SegmenterStats stats;
  std::size_t sections = 0;
  std::string playlist;
};

const ReusedIds& reused_ids_run() {
  static const ReusedIds run = [] {
    ReusedIds r;
    const auto one = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
    const auto base = looped(one, 25, loop_period(one));
    const auto pes = video_pes(base);
    EXPECT_FALSE(pes.empty());
    if (pes.empty()) return r;
    const std::uint64_t f0 = first_pts(pes);
    const auto at = [&](double s) {
      const auto t = f0 + static_cast<std::uint64_t>(s * 90'000);
      for (const auto& [i, pts] : pes)
        if (pts_delta(t, pts) < kPtsWrap / 2) return i;  // at or after t
      return base.size();
    };
    const auto pts_at = [&](double s) { return (f0 + static_cast<std::uint64_t>(s * 90'000)) % kPtsWrap; };
    std::vector<Insertion> ins;
    const auto send = [&](const Bytes& sec, std::initializer_list<double> when) {
      for (const double w : when) ins.push_back({at(w), sec});
    };
    for (const double t0 : {0.0, 120.0}) {
      send(insert_section({.event_id = 7, .pts = pts_at(t0 + 12), .has_duration = true, .duration = 90'000 * 30}),
           {t0 + 8, t0 + 10, t0 + 11.5, t0 + 12.5});  // the last one late
      send(insert_section({.event_id = 7, .out = false, .pts = pts_at(t0 + 22)}), {t0 + 20, t0 + 21.5});
      send(time_signal_section(true, pts_at(t0 + 14.5), {{.event_id = 500, .type_id = 0x34}}), {t0 + 13, t0 + 14});
      send(time_signal_section(true, pts_at(t0 + 17.5), {{.event_id = 500, .type_id = 0x35}}), {t0 + 16, t0 + 17, t0 + 18});
      send(insert_section({.event_id = 11, .immediate = true}), {t0 + 24, t0 + 24.5, t0 + 25});
      send(insert_section({.event_id = 11, .out = false, .immediate = true}), {t0 + 27, t0 + 27.4});
    }
    r.sections = ins.size();
    const CueRun c = segment(insert_sections(base, std::move(ins)));
    r.segments = c.segments;
    r.stats = c.stats;
    hls::MediaPlaylist p = playlist_of(r.segments);
    p.type = hls::PlaylistType::kEvent;  // a DVR playlist: every cue of the run in one text
    r.playlist = hls::media_playlist(p);
    return r;
  }();
  return run;
}

}  // namespace

TEST(Scte35Segmenter, ReusedEventIdsGiveOneRangePerOccurrence) {
  const ReusedIds& r = reused_ids_run();
  ASSERT_FALSE(r.segments.empty());
  EXPECT_EQ(r.stats.scte35_sections, r.sections);
  EXPECT_EQ(r.stats.cues, 12u) << r.playlist;
  EXPECT_EQ(r.stats.cues_repeated, r.sections - 12) << r.playlist;
  EXPECT_EQ(r.stats.cues_dropped, 0u);
  EXPECT_EQ(r.stats.clock_jumps, 0u) << "the looped stream's clocks run on";

  // Per event, in time order: out, in, out, in; each in closes the out before it.
  std::map<std::string, std::vector<const hls::Cue*>> by_event;
  for (const auto& s : r.segments)
    for (const auto& c : s.cues)
      by_event[(c.segmentation_type != 0 ? "seg-" : "splice-") + std::to_string(c.event_id)].push_back(&c);
  ASSERT_EQ(by_event.size(), 3u) << r.playlist;
  for (const auto& [event, cues] : by_event) {
    SCOPED_TRACE(event);
    ASSERT_EQ(cues.size(), 4u) << r.playlist;
    const std::string key = event == "seg-500" ? "seg-500-34" : event;
    for (std::size_t k = 0; k < 4; k += 2) {
      const hls::Cue& out = *cues[k];
      const hls::Cue& in = *cues[k + 1];
      EXPECT_EQ(out.kind, hls::CueKind::kOut);
      EXPECT_EQ(in.kind, hls::CueKind::kIn);
      EXPECT_EQ(out.id, cue_id(key, out.wall_ms));
      EXPECT_EQ(in.id, out.id) << "an in shares its out's ID";
      EXPECT_TRUE(in.has_out);
      EXPECT_EQ(in.out_wall_ms, out.wall_ms);
    }
    EXPECT_NE(cues[0]->id, cues[2]->id) << "the event's second occurrence is another range";
    // 120 s of PTS apart; program dates follow the mux rate (wall_of), within a second of it.
    const std::int64_t apart = cues[2]->wall_ms - cues[0]->wall_ms;
    EXPECT_GT(apart, 118'000);
    EXPECT_LT(apart, 122'000);
  }
  EXPECT_TRUE(by_event["splice-11"][0]->immediate);
  EXPECT_TRUE(by_event["splice-11"][2]->immediate) << "an immediate cue minutes later is not a repeat";

  // The playlist text: 12 DATERANGE tags, 6 IDs, each on one out and one in, and no ID
  // with two START-DATEs (nor any other attribute that differs, RFC 8216 4.3.2.7).
  const auto tags = dateranges(r.playlist);
  ASSERT_EQ(tags.size(), 12u) << r.playlist;
  std::map<std::string, std::set<std::string>> starts;
  std::map<std::string, int> uses;
  for (const auto& a : tags) {
    ASSERT_TRUE(a.count("ID") && a.count("START-DATE")) << r.playlist;
    starts[a.at("ID")].insert(a.at("START-DATE"));
    ++uses[a.at("ID")];
  }
  EXPECT_EQ(starts.size(), 6u) << r.playlist;
  for (const auto& [id, dates] : starts) {
    EXPECT_EQ(dates.size(), 1u) << id << " has " << dates.size() << " START-DATEs\n" << r.playlist;
    EXPECT_EQ(uses[id], 2) << id;
    EXPECT_LE(id.size(), 35u);
    EXPECT_EQ(id.find_first_not_of("\"abcdefghijklmnopqrstuvwxyz0123456789-"), std::string::npos) << id;
  }
  EXPECT_EQ(daterange_conflicts(r.playlist), std::vector<std::string>{}) << r.playlist;
}

// A real player's parser: hls.js (control/web's, installed by scripts/setup) drops a
// DATERANGE whose attributes disagree with an earlier tag of the same ID, so with one ID
// per event the second break would vanish. It must keep all six ranges, closed, with our dates.
TEST(Scte35Segmenter, HlsJsKeepsEveryRangeOfAReusedEventId) {
  const char* src = std::getenv("TWINCAST_SOURCE_DIR");
  const fs::path hlsjs = fs::path(src != nullptr ? src : "") / "control/web/node_modules/hls.js/dist/hls.mjs";
  if (std::system("command -v node > /dev/null 2>&1") != 0) GTEST_SKIP() << "node not installed";
  if (src == nullptr || !fs::exists(hlsjs)) GTEST_SKIP() << "hls.js not installed (scripts/setup: npm ci in control/web)";
  const ReusedIds& r = reused_ids_run();
  ASSERT_FALSE(r.segments.empty());
  const fs::path dir = tt::temp_dir("scte35_hlsjs");
  tt::write_file(dir / "event.m3u8", Bytes(r.playlist.begin(), r.playlist.end()));
  const std::string script =
      "globalThis.self = globalThis;\n"
      "const fs = await import('node:fs');\n"
      "const { M3U8Parser } = await import(process.argv[2]);\n"
      "const d = M3U8Parser.parseLevelPlaylist(fs.readFileSync(process.argv[3], 'utf8'), 'http://o/event.m3u8', 0, 'main', 0, null);\n"
      "for (const [id, x] of Object.entries(d.dateRanges))\n"
      "  console.log([id, x.isValid, x.startDate.toISOString(), x.endDate ? x.endDate.toISOString() : '-'].join(' '));\n";
  tt::write_file(dir / "dateranges.mjs", Bytes(script.begin(), script.end()));
  const auto res = tt::run("node " + tt::shell_quote((dir / "dateranges.mjs").string()) + " " +
                           tt::shell_quote("file://" + hlsjs.string()) + " " + tt::shell_quote((dir / "event.m3u8").string()) +
                           " 2>&1");
  ASSERT_EQ(res.exit_code, 0) << res.out;
  std::vector<std::string> want;
  for (const auto& s : r.segments)
    for (const auto& c : s.cues)
      if (c.kind == hls::CueKind::kIn)
        want.push_back(c.id + " true " + hls::format_date_time(c.out_wall_ms) + " " +
                       hls::format_date_time(std::max(c.wall_ms, c.out_wall_ms)));
  std::vector<std::string> got = lines_of(res.out);
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(want.size(), 6u);
  EXPECT_EQ(got, want) << r.playlist;
  fs::remove_all(dir);
}

// More cues than kMaxPendingCues waiting: the oldest go, counted.
TEST(Scte35Segmenter, PendingCuesAreBounded) {
  const auto base = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
  const auto pes = video_pes(base);
  std::vector<Insertion> ins;
  for (std::uint32_t k = 0; k < hls::Segmenter::kMaxPendingCues + 8; ++k)
    ins.push_back({pes[5].first, insert_section({.event_id = k, .pts = pes.front().second + 3600 * 90'000})});
  const CueRun r = segment(insert_sections(base, ins));
  EXPECT_EQ(r.stats.cues_dropped, 8u);
  EXPECT_EQ(r.stats.cues, 0u);
}

// ---------------------------------------------------------------------------------------
// Remux: the multicast output carries SCTE-35 untouched
// ---------------------------------------------------------------------------------------

namespace {

std::vector<TsPacket> remux_all(Remuxer& r, const std::vector<TsPacket>& in) {
  std::vector<TsPacket> out;
  std::vector<TsPacket> buf(r.max_output_per_push());
  std::uint64_t t = 0;
  for (const auto& p : in) {
    t += 1'000'000;
    const std::size_t n = r.push(0, p, t, buf);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return out;
}

std::vector<Bytes> payloads(const std::vector<TsPacket>& pkts, std::uint16_t pid) {
  std::vector<Bytes> v;
  for (const auto& p : pkts)
    if (p.pid() == pid) v.emplace_back(p.payload().begin(), p.payload().end());
  return v;
}

}  // namespace

TEST(Scte35Remux, PassesThroughUntouched) {
  const auto base = with_scte35_pmt(tt::read_packets(tt::fixture("h264_aac.ts")));
  const auto pes = video_pes(base);
  std::vector<Insertion> ins;
  for (std::uint32_t k = 0; k < 6; ++k)
    ins.push_back({pes[10 + 20 * k].first,
                   k % 2 == 0 ? insert_section({.event_id = k, .pts = pes[30 + 20 * k].second, .has_duration = true, .duration = 90'000})
                              : time_signal_section(true, pes[30 + 20 * k].second, {{.event_id = k, .upid = Bytes(150, 0x5A)}})});  // 2 packets
  const auto in = insert_sections(base, ins);
  const auto in_payloads = payloads(in, kScte35Pid);
  ASSERT_GT(in_payloads.size(), 6u);

  for (const bool move : {false, true}) {
    RemuxConfig cfg;
    RemuxServiceConfig sc;
    if (move) sc.rules.push_back({kScte35Pid, false, 0x1F0});
    cfg.services.push_back(sc);
    Remuxer r(cfg);
    const auto out = remux_all(r, in);
    const std::uint16_t out_pid = move ? 0x1F0 : kScte35Pid;
    // Every SCTE-35 packet after the output tables exist, payload byte for byte.
    const auto out_payloads = payloads(out, out_pid);
    ASSERT_EQ(out_payloads.size(), in_payloads.size()) << "move=" << move;
    EXPECT_EQ(out_payloads, in_payloads);

    // The output PMT still lists it as stream_type 0x86 with its descriptors, and the
    // program-level registration "CUEI".
    PsiDecoder d;
    for (const auto& p : out) d.push(p);
    ASSERT_EQ(d.model().services.size(), 1u);
    const Service& s = d.model().services[0];
    const auto es = std::find_if(s.streams.begin(), s.streams.end(), [&](const auto& e) { return e.pid == out_pid; });
    ASSERT_NE(es, s.streams.end());
    EXPECT_EQ(es->stream_type, s35::kStreamType);
    EXPECT_EQ(es->codec, Codec::kScte35);
    EXPECT_EQ(es->descriptors, std::vector<Descriptor>{registration_cuei()});
    EXPECT_NE(std::find(s.program_descriptors.begin(), s.program_descriptors.end(), registration_cuei()),
              s.program_descriptors.end());

    // The sections reassembled from the output parse to the same cues.
    struct Collect final : SectionHandler {
      std::vector<Bytes> sections;
      void on_section(std::uint16_t, std::span<const std::uint8_t> sec, bool) override { sections.emplace_back(sec.begin(), sec.end()); }
    } collect;
    SectionAssembler a;
    for (const auto& p : out)
      if (p.pid() == out_pid) a.push(p, collect);
    ASSERT_EQ(collect.sections.size(), ins.size());
    for (std::size_t k = 0; k < ins.size(); ++k) EXPECT_EQ(collect.sections[k], ins[k].section);

    // ffprobe reads the output's SCTE-35 stream.
    const fs::path dir = tt::temp_dir("scte35_remux");
    tt::write_packets(dir / "out.ts", out);
    const auto probe = tt::run("ffprobe -v error -show_entries stream=codec_name,id -of csv=p=0 " +
                               tt::shell_quote((dir / "out.ts").string()) + " 2>&1");
    EXPECT_EQ(probe.exit_code, 0) << probe.out;
    char want[32];
    std::snprintf(want, sizeof want, "scte_35,0x%x", out_pid);
    EXPECT_NE(probe.out.find(want), std::string::npos) << probe.out;
    fs::remove_all(dir);
  }
}
