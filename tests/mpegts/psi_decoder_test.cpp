#include "twincast/mpegts/psi_decoder.hpp"

#include <gtest/gtest.h>

#include <random>
#include <sstream>
#include <string>

#include "tests_common.hpp"
#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/psi_tables.hpp"

using namespace twincast::mpegts;
using Bytes = std::vector<std::uint8_t>;

namespace {

PsiDecoder& decode_file(PsiDecoder& d, const std::string& name) {
  for (const auto& p : twincast::test::read_packets(twincast::test::fixture(name))) d.push(p);
  return d;
}

// Sections into packets on `pid` (one section per packet start; sections < 184 bytes here
// or spread over several packets), CC from `cc`.
std::vector<TsPacket> packets_for(std::uint16_t pid, const std::vector<Section>& sections, std::uint8_t& cc) {
  TableCarousel car(pid);
  car.update([&](std::uint8_t) { return sections; });
  std::vector<TsPacket> out(car.packet_count());
  EXPECT_EQ(car.packetize(out), out.size());
  for (auto& p : out) {
    p.set_cc(cc);
    cc = static_cast<std::uint8_t>((cc + 1) & 0x0F);
  }
  return out;
}

void feed(PsiDecoder& d, const std::vector<TsPacket>& pkts) {
  for (const auto& p : pkts) d.push(p);
}

Service simple_service(std::uint16_t id, std::uint16_t pmt_pid, std::uint16_t first_es) {
  Service s;
  s.service_id = id;
  s.pmt_pid = pmt_pid;
  s.pcr_pid = first_es;
  ElementaryStream v;
  v.pid = first_es;
  v.stream_type = 0x1B;
  v.codec = Codec::kH264;
  s.streams.push_back(v);
  return s;
}

// A long-form section with the given header fields and body, CRC appended.
Section raw_section(std::uint8_t table_id, std::uint16_t ext, std::uint8_t version, const Bytes& body) {
  Section s;
  s.reserve(8 + body.size() + 4);
  for (const std::uint8_t b : {table_id, std::uint8_t{0}, std::uint8_t{0}, static_cast<std::uint8_t>(ext >> 8),
                               static_cast<std::uint8_t>(ext & 0xFF),
                               static_cast<std::uint8_t>(0xC1 | ((version & 0x1F) << 1)), std::uint8_t{0},
                               std::uint8_t{0}})
    s.push_back(b);
  for (const std::uint8_t b : body) s.push_back(b);
  const std::size_t len = s.size() + 4 - 3;
  s[1] = static_cast<std::uint8_t>(0xB0 | (len >> 8));
  s[2] = static_cast<std::uint8_t>(len & 0xFF);
  const std::uint32_t c = crc32_mpeg(s);
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<std::uint8_t>(c >> sh));
  return s;
}

}  // namespace

TEST(PsiDecoder, H264Aac) {
  PsiDecoder d;
  decode_file(d, "h264_aac.ts");
  const ProgramModel& m = d.model();
  ASSERT_TRUE(m.has_pat);
  ASSERT_EQ(m.services.size(), 1U);
  const Service& s = m.services[0];
  EXPECT_EQ(s.service_id, 101);
  EXPECT_EQ(s.name, "Test One");
  EXPECT_EQ(s.provider, "twincast");
  EXPECT_EQ(s.service_type, 0x01);
  EXPECT_EQ(s.pmt_pid, 0x1000);
  EXPECT_TRUE(s.has_pmt);
  ASSERT_EQ(s.streams.size(), 2U);
  EXPECT_EQ(s.streams[0].codec, Codec::kH264);
  EXPECT_EQ(s.streams[0].pid, 0x100);
  EXPECT_EQ(s.streams[1].codec, Codec::kAac);
  EXPECT_EQ(s.streams[1].pid, 0x101);
  EXPECT_EQ(s.pcr_pid, 0x100);
  EXPECT_EQ(m.transport_stream_id, 1);  // ffmpeg's default
  EXPECT_EQ(m.original_network_id, 0xFF01);  // ffmpeg's default
  EXPECT_TRUE(d.is_psi_pid(0x1000));
  EXPECT_TRUE(d.is_psi_pid(kPatPid));
  EXPECT_TRUE(d.is_psi_pid(kSdtPid));
  EXPECT_FALSE(d.is_psi_pid(0x100));
  EXPECT_FALSE(d.is_psi_pid(0x1FFF));
  EXPECT_GE(d.stats().pat, 1U);
  EXPECT_GE(d.stats().pmt, 1U);
  EXPECT_GE(d.stats().sdt, 1U);
  EXPECT_EQ(d.stats().version_changes, 0U);
  // PAT, PMT and SDT each change the model once (PAT alone, then PMT, then SDT).
  EXPECT_GE(d.generation(), 2U);
  EXPECT_LE(d.generation(), 3U);

  // The same stream again changes nothing.
  const std::uint64_t gen = d.generation();
  const ProgramModel before = d.model();
  decode_file(d, "h264_aac.ts");
  EXPECT_EQ(d.generation(), gen);
  EXPECT_EQ(d.model(), before);

  d.reset();
  EXPECT_FALSE(d.model().has_pat);
  EXPECT_TRUE(d.model().services.empty());
  EXPECT_FALSE(d.is_psi_pid(0x1000));
  decode_file(d, "h264_aac.ts");
  EXPECT_EQ(d.model(), before);
}

TEST(PsiDecoder, Mpts3) {
  PsiDecoder d;
  decode_file(d, "mpts3.ts");
  const auto& ss = d.model().services;
  ASSERT_EQ(ss.size(), 3U);
  const char* names[] = {"Alpha", "Bravo", "Charlie"};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ss[i].service_id, i + 1);
    EXPECT_EQ(ss[i].name, names[i]);
    EXPECT_TRUE(ss[i].has_pmt);
    ASSERT_EQ(ss[i].streams.size(), 2U);
    EXPECT_EQ(ss[i].streams[0].codec, Codec::kH264);
    EXPECT_EQ(ss[i].streams[1].codec, Codec::kAac);
  }
  EXPECT_NE(d.model().find_service(2), nullptr);
  EXPECT_EQ(d.model().find_service(4), nullptr);
}

TEST(PsiDecoder, TwoAudioLanguages) {
  PsiDecoder d;
  decode_file(d, "two_audio.ts");
  ASSERT_EQ(d.model().services.size(), 1U);
  const auto& st = d.model().services[0].streams;
  ASSERT_EQ(st.size(), 3U);
  EXPECT_EQ(st[0].codec, Codec::kH264);
  EXPECT_EQ(st[1].codec, Codec::kAac);
  EXPECT_EQ(st[1].language, "eng");
  EXPECT_EQ(st[2].codec, Codec::kAc3);
  EXPECT_EQ(st[2].language, "deu");
  EXPECT_TRUE(st[0].language.empty());
}

TEST(PsiDecoder, HevcAndMpeg2) {
  {
    PsiDecoder d;
    decode_file(d, "hevc_aac.ts");
    ASSERT_EQ(d.model().services.size(), 1U);
    const auto& st = d.model().services[0].streams;
    ASSERT_EQ(st.size(), 2U);
    EXPECT_EQ(st[0].codec, Codec::kHevc);
    EXPECT_EQ(st[1].codec, Codec::kAac);
  }
  {
    PsiDecoder d;
    decode_file(d, "mpeg2_mp2.ts");
    ASSERT_EQ(d.model().services.size(), 1U);
    const auto& st = d.model().services[0].streams;
    ASSERT_EQ(st.size(), 2U);
    EXPECT_EQ(st[0].codec, Codec::kMpeg2Video);
    EXPECT_EQ(st[1].codec, Codec::kMpegAudio);
  }
}

// Program numbers, PMT PIDs and stream PIDs agree with ffprobe's reading of the same files.
TEST(PsiDecoder, AgreesWithFfprobe) {
  for (const char* name : {"mpts3.ts", "two_audio.ts", "mpeg2_mp2.ts"}) {
    const auto path = twincast::test::fixture(name);
    const auto r = twincast::test::run("ffprobe -v error -show_programs -of json " +
                                       twincast::test::shell_quote(path.string()));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    // Walk the JSON in order: program_num / pmt_pid open a program, "id": "0x..." are its streams.
    struct Prog {
      int number = 0;
      int pmt_pid = 0;
      std::vector<int> pids;
    };
    std::vector<Prog> progs;
    std::istringstream in(r.out);
    std::string line;
    // The number after `key` on a line of ffprobe's JSON, or -1.
    const auto field = [](const std::string& l, const std::string& key, int base) {
      const auto at = l.find(key);
      if (at == std::string::npos) return -1;
      return std::stoi(l.substr(at + key.size()), nullptr, base);
    };
    while (std::getline(in, line)) {
      if (const int n = field(line, "\"program_num\": ", 10); n >= 0) progs.push_back({n, 0, {}});
      else if (const int pmt = field(line, "\"pmt_pid\": ", 10); pmt >= 0 && !progs.empty()) progs.back().pmt_pid = pmt;
      else if (const int id = field(line, "\"id\": \"0x", 16); id >= 0 && !progs.empty()) progs.back().pids.push_back(id);
    }
    PsiDecoder d;
    decode_file(d, name);
    const auto& ss = d.model().services;
    ASSERT_EQ(ss.size(), progs.size()) << name;
    for (std::size_t i = 0; i < ss.size(); ++i) {
      EXPECT_EQ(ss[i].service_id, progs[i].number) << name;
      EXPECT_EQ(ss[i].pmt_pid, progs[i].pmt_pid) << name;
      std::vector<int> ours;
      for (const auto& e : ss[i].streams) ours.push_back(e.pid);
      EXPECT_EQ(ours, progs[i].pids) << name;
    }
  }
}

TEST(PsiDecoder, PatChangesAttachAndDetachPmts) {
  PsiDecoder d;
  std::uint8_t pat_cc = 0;
  std::uint8_t pmt_cc = 0;
  feed(d, packets_for(kPatPid, build_pat(9, {{1, 0x200}, {2, 0x300}}, 0), pat_cc));
  ASSERT_EQ(d.model().services.size(), 2U);
  EXPECT_FALSE(d.model().services[0].has_pmt);  // listed, PMT not seen yet
  EXPECT_FALSE(d.model().services[1].has_pmt);
  EXPECT_EQ(d.model().transport_stream_id, 9);
  EXPECT_TRUE(d.is_psi_pid(0x200));
  EXPECT_TRUE(d.is_psi_pid(0x300));

  feed(d, packets_for(0x200, build_pmt(simple_service(1, 0x200, 0x210), 3), pmt_cc));
  ASSERT_TRUE(d.model().services[0].has_pmt);
  EXPECT_EQ(d.model().services[0].pmt_version, 3);
  EXPECT_EQ(d.model().services[0].pcr_pid, 0x210);
  EXPECT_FALSE(d.model().services[1].has_pmt);

  // Program 2 leaves, program 1 moves its PMT to another PID: its PMT is forgotten.
  feed(d, packets_for(kPatPid, build_pat(9, {{1, 0x250}}, 1), pat_cc));
  ASSERT_EQ(d.model().services.size(), 1U);
  EXPECT_EQ(d.model().pat_version, 1);
  EXPECT_FALSE(d.model().services[0].has_pmt);
  EXPECT_EQ(d.model().services[0].pmt_pid, 0x250);
  EXPECT_FALSE(d.is_psi_pid(0x200));
  EXPECT_FALSE(d.is_psi_pid(0x300));
  EXPECT_TRUE(d.is_psi_pid(0x250));
  EXPECT_EQ(d.stats().version_changes, 1U);

  std::uint8_t cc2 = 0;
  // A PMT for another program on the same PID is not this program's.
  feed(d, packets_for(0x250, build_pmt(simple_service(7, 0x250, 0x260), 0), cc2));
  EXPECT_FALSE(d.model().services[0].has_pmt);
  feed(d, packets_for(0x250, build_pmt(simple_service(1, 0x250, 0x260), 0), cc2));
  EXPECT_TRUE(d.model().services[0].has_pmt);
  EXPECT_EQ(d.model().services[0].streams.at(0).pid, 0x260);
}

namespace {

// The same sections with current_next_indicator 0 (a table announced, not yet valid), CRC redone.
std::vector<Section> not_current(std::vector<Section> sections) {
  for (Section& s : sections) {
    s[5] = static_cast<std::uint8_t>(s[5] & 0xFE);
    const std::uint32_t c = crc32_mpeg(std::span<const std::uint8_t>(s).first(s.size() - 4));
    for (int k = 0; k < 4; ++k) s[s.size() - 4 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(c >> (24 - 8 * k));
  }
  return sections;
}

}  // namespace

// 13818-1 2.4.4.5: a table with current_next_indicator 0 is the next one, not yet
// applicable; a receiver keeps using the current one until that arrives with the bit set.
TEST(PsiDecoder, NextTablesAreNotApplied) {
  PsiDecoder d;
  std::uint8_t pat_cc = 0, pmt_cc = 0, sdt_cc = 0, nit_cc = 0;
  std::vector<Service> svcs{simple_service(1, 0x100, 0x110)};
  svcs[0].name = "Current";
  svcs[0].lcn = 5;
  feed(d, packets_for(kPatPid, build_pat(7, {{1, 0x100}}, 0), pat_cc));
  feed(d, packets_for(0x100, build_pmt(svcs[0], 0), pmt_cc));
  feed(d, packets_for(kSdtPid, build_sdt(7, 0x2000, svcs, 0), sdt_cc));
  feed(d, packets_for(kNitPid, build_nit(0x3001, "Net", 7, 0x2000, svcs, 0), nit_cc));
  const ProgramModel before = d.model();
  ASSERT_EQ(before.services.size(), 1U);
  ASSERT_EQ(before.services[0].name, "Current");
  ASSERT_EQ(before.services[0].lcn, 5);

  // The next versions, announced with current_next_indicator 0.
  std::vector<Service> next{simple_service(1, 0x100, 0x120)};
  next[0].name = "Next";
  next[0].lcn = 9;
  feed(d, packets_for(kPatPid, not_current(build_pat(7, {{1, 0x100}, {2, 0x200}}, 1)), pat_cc));
  feed(d, packets_for(0x100, not_current(build_pmt(next[0], 1)), pmt_cc));
  feed(d, packets_for(kSdtPid, not_current(build_sdt(7, 0x2000, next, 1)), sdt_cc));
  feed(d, packets_for(kNitPid, not_current(build_nit(0x3001, "Net", 7, 0x2000, next, 1)), nit_cc));
  EXPECT_EQ(d.model(), before);
  ASSERT_EQ(d.model().services.size(), 1U);
  EXPECT_EQ(d.model().services[0].name, "Current");
  EXPECT_EQ(d.model().services[0].lcn, 5);
  EXPECT_EQ(d.model().services[0].pcr_pid, 0x110);
  EXPECT_EQ(d.model().pat_version, 0);

  // They become current: now they apply.
  feed(d, packets_for(kPatPid, build_pat(7, {{1, 0x100}, {2, 0x200}}, 1), pat_cc));
  feed(d, packets_for(0x100, build_pmt(next[0], 1), pmt_cc));
  feed(d, packets_for(kSdtPid, build_sdt(7, 0x2000, next, 1), sdt_cc));
  feed(d, packets_for(kNitPid, build_nit(0x3001, "Net", 7, 0x2000, next, 1), nit_cc));
  ASSERT_EQ(d.model().services.size(), 2U);
  EXPECT_EQ(d.model().pat_version, 1);
  EXPECT_EQ(d.model().services[0].name, "Next");
  EXPECT_EQ(d.model().services[0].lcn, 9);
  EXPECT_EQ(d.model().services[0].pcr_pid, 0x120);
}

namespace {

// An SDT actual (ts 7, ONID 0x2000) of one service `sid` whose service_descriptor has
// these provider and name bytes (character table selectors included).
Section sdt_with_name(std::uint16_t sid, const Bytes& provider, const Bytes& name) {
  Bytes d{0x01, static_cast<std::uint8_t>(provider.size())};
  d.insert(d.end(), provider.begin(), provider.end());
  d.push_back(static_cast<std::uint8_t>(name.size()));
  d.insert(d.end(), name.begin(), name.end());
  Bytes body{0x20, 0x00, 0xFF, static_cast<std::uint8_t>(sid >> 8), static_cast<std::uint8_t>(sid), 0xFC,
             static_cast<std::uint8_t>(0x80 | ((d.size() + 2) >> 8)), static_cast<std::uint8_t>(d.size() + 2), 0x48,
             static_cast<std::uint8_t>(d.size())};
  body.insert(body.end(), d.begin(), d.end());
  Section s = raw_section(0x42, 7, 0, body);
  s[1] = static_cast<std::uint8_t>(0xF0 | (s[1] & 0x0F));  // reserved_future_use bits set, as EN 300 468 has them
  const std::uint32_t c = crc32_mpeg(std::span<const std::uint8_t>(s).first(s.size() - 4));
  for (int k = 0; k < 4; ++k) s[s.size() - 4 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(c >> (24 - 8 * k));
  return s;
}

std::string decoded_name(const Bytes& name, const Bytes& provider = {'P'}) {
  PsiDecoder d;
  std::uint8_t cc = 0;
  feed(d, packets_for(kPatPid, build_pat(7, {{1, 0x100}}, 0), cc));
  cc = 0;
  feed(d, packets_for(kSdtPid, {sdt_with_name(1, provider, name)}, cc));
  if (d.model().services.size() != 1) return "<no service>";
  return d.model().services[0].name;
}

}  // namespace

// Service names in the character tables of EN 300 468 Annex A, as a receiver shows them.
TEST(PsiDecoder, ServiceNameCharacterTables) {
  EXPECT_EQ(decoded_name({'B', 'B', 'C'}), "BBC");
  // Default table (ISO/IEC 6937): a non-spacing diacritic before its letter.
  EXPECT_EQ(decoded_name({'C', 'a', 'f', 0xC2, 'e'}), "Caf\xC3\xA9");
  // 0x01: ISO/IEC 8859-5 (Cyrillic).
  EXPECT_EQ(decoded_name({0x01, 0xBF, 0xD5, 0xE0, 0xD2, 0xEB, 0xD9}), "\xD0\x9F\xD0\xB5\xD1\x80\xD0\xB2\xD1\x8B\xD0\xB9");
  // 0x10 0x00 0x02: ISO/IEC 8859-2 (Polish).
  EXPECT_EQ(decoded_name({0x10, 0x00, 0x02, 'T', 'V', 'P', ' ', 0xA3, 0xF3, 'd', 0xBC}), "TVP \xC5\x81\xC3\xB3" "d\xC5\xBA");
  // 0x10 0x00 0x07: ISO/IEC 8859-7 (Greek).
  EXPECT_EQ(decoded_name({0x10, 0x00, 0x07, 0xC5, 0xD1, 0xD4}), "\xCE\x95\xCE\xA1\xCE\xA4");
  // 0x15: UTF-8.
  EXPECT_EQ(decoded_name({0x15, 'Z', 'D', 'F', ' ', 0xC3, 0xBC}), "ZDF \xC3\xBC");
  // 0x11: ISO/IEC 10646 BMP (UCS-2 big-endian).
  EXPECT_EQ(decoded_name({0x11, 0x00, 'A', 0x04, 0x1F}), "A\xD0\x9F");
  // 0x14: the Big5 subset of ISO/IEC 10646, coded as 0x11 is (two bytes per character):
  // "中視" (CTV) is U+4E2D U+8996.
  EXPECT_EQ(decoded_name({0x14, 0x4E, 0x2D, 0x89, 0x96}), "\xE4\xB8\xAD\xE8\xA6\x96");
  // Emphasis on/off (0x86/0x87) are control codes, not text.
  EXPECT_EQ(decoded_name({0x86, 'B', 'B', 'C', 0x87, ' ', 'O', 'n', 'e'}), "BBC One");
}

// The default table is ISO/IEC 6937 with the euro sign added at 0xA4 (EN 300 468
// Figure A.1), which ISO 6937 converters do not know.
TEST(PsiDecoder, ServiceNameEuroSignInTheDefaultTable) {
  EXPECT_EQ(decoded_name({'1', 0xA4, ' ', 'T', 'V'}), "1\xE2\x82\xAC TV");
  EXPECT_EQ(decoded_name({'P', 'r', 'i', 'x', ' ', 0xA4, ' ', 'C', 'a', 'f', 0xC2, 'e'}), "Prix \xE2\x82\xAC Caf\xC3\xA9");
}

TEST(PsiDecoder, CatNitEit) {
  PsiDecoder d;
  std::uint8_t cc = 0;
  // CAT with two CA_descriptors (CA_system_ID, CA_PID 0x1F00 / 0x1F01).
  const Section cat = raw_section(0x01, 0xFFFF, 0, {0x09, 0x04, 0x0B, 0x00, 0xFF, 0x00, 0x09, 0x04, 0x0B, 0x01, 0xFF, 0x01});
  feed(d, packets_for(kCatPid, {cat}, cc));
  EXPECT_EQ(d.stats().cat, 1U);
  EXPECT_EQ(d.model().ca_pids, (std::vector<std::uint16_t>{0x1F00, 0x1F01}));

  std::vector<Service> svcs{simple_service(1, 0x100, 0x110), simple_service(2, 0x200, 0x210)};
  svcs[0].lcn = 7;
  svcs[1].lcn = 1000;
  cc = 0;
  feed(d, packets_for(kPatPid, build_pat(5, {{1, 0x100}, {2, 0x200}}, 0), cc));
  cc = 0;
  feed(d, packets_for(kNitPid, build_nit(0x3001, "TwinNet", 5, 0x2000, svcs, 0), cc));
  EXPECT_EQ(d.stats().nit, 1U);
  EXPECT_EQ(d.model().network_id, 0x3001);
  EXPECT_EQ(d.model().network_name, "TwinNet");
  EXPECT_EQ(d.model().original_network_id, 0x2000);  // from the NIT while there is no SDT
  EXPECT_EQ(d.model().services.at(0).lcn, 7);
  EXPECT_EQ(d.model().services.at(1).lcn, 1000);

  // EIT present/following for service 1: only counted.
  const Section eit = raw_section(0x4E, 1, 0, {0x00, 0x05, 0x20, 0x00, 0x00, 0x4E});
  cc = 0;
  // Counted as sections with a good CRC; not decoded (nothing uses the content).
  for (int i = 0; i < 4; ++i) feed(d, packets_for(kEitPid, {eit}, cc));
  EXPECT_EQ(d.stats().eit, 4U);
  Section bad = eit;
  bad[9] ^= 0x01;
  feed(d, packets_for(kEitPid, {bad}, cc));
  EXPECT_EQ(d.stats().eit, 4U);
  EXPECT_FALSE(d.model().services.empty());  // EIT leaves the model alone
}

// A transport stream is identified by transport_stream_id and original_network_id together
// (EN 300 468): a NIT that describes a TS of another original network with the same
// transport_stream_id (common in cable networks carrying satellite multiplexes) does not
// give this TS's LCNs.
TEST(PsiDecoder, NitLcnsOfThisTransportStreamOnly) {
  const auto ts_entry = [](std::uint16_t ts, std::uint16_t onid, std::uint16_t sid, std::uint16_t lcn) {
    return Bytes{static_cast<std::uint8_t>(ts >> 8), static_cast<std::uint8_t>(ts), static_cast<std::uint8_t>(onid >> 8),
                 static_cast<std::uint8_t>(onid), 0xF0, 12, 0x5F, 0x04, 0x00, 0x00, 0x00, 0x28, 0x83, 0x04,
                 static_cast<std::uint8_t>(sid >> 8), static_cast<std::uint8_t>(sid),
                 static_cast<std::uint8_t>(0xFC | (lcn >> 8)), static_cast<std::uint8_t>(lcn)};
  };
  Bytes loop = ts_entry(7, 0x0001, 1, 50);  // TS 7 of another original network first
  const Bytes ours = ts_entry(7, 0x2000, 1, 5);
  loop.insert(loop.end(), ours.begin(), ours.end());
  Bytes body{0xF0, 0x00, static_cast<std::uint8_t>(0xF0 | (loop.size() >> 8)), static_cast<std::uint8_t>(loop.size())};
  body.insert(body.end(), loop.begin(), loop.end());
  const Section nit = raw_section(0x40, 0x3001, 0, body);

  PsiDecoder d;
  std::uint8_t pat_cc = 0, sdt_cc = 0, nit_cc = 0;
  std::vector<Service> svcs{simple_service(1, 0x100, 0x110)};
  svcs[0].name = "One";
  feed(d, packets_for(kPatPid, build_pat(7, {{1, 0x100}}, 0), pat_cc));
  feed(d, packets_for(kSdtPid, build_sdt(7, 0x2000, svcs, 0), sdt_cc));  // this TS: 7 of ONID 0x2000
  feed(d, packets_for(kNitPid, {nit}, nit_cc));
  ASSERT_EQ(d.stats().nit, 1U);
  ASSERT_EQ(d.model().services.size(), 1U);
  EXPECT_EQ(d.model().original_network_id, 0x2000);
  EXPECT_EQ(d.model().services[0].lcn, 5);
}

TEST(PsiDecoder, PmtWithAbsentPidsAndBigPat) {
  PsiDecoder d;
  std::uint8_t cc = 0;
  std::vector<PatEntry> progs;
  for (std::uint16_t i = 1; i <= 300; ++i) progs.push_back({i, static_cast<std::uint16_t>(0x100 + i)});
  const auto pat = build_pat(1, progs, 0);
  EXPECT_EQ(pat.size(), 2U);  // 253 programs per section
  feed(d, packets_for(kPatPid, pat, cc));
  ASSERT_EQ(d.model().services.size(), 300U);
  for (std::uint16_t i = 1; i <= 300; ++i) {
    std::uint8_t pcc = 0;
    // Streams on PIDs that never carry a packet.
    feed(d, packets_for(static_cast<std::uint16_t>(0x100 + i),
                        build_pmt(simple_service(i, static_cast<std::uint16_t>(0x100 + i), 0x1800), 0), pcc));
  }
  EXPECT_EQ(d.stats().pmt, 300U);
  for (const auto& s : d.model().services) {
    EXPECT_TRUE(s.has_pmt);
    EXPECT_EQ(s.streams.at(0).pid, 0x1800);
  }
}

TEST(PsiDecoder, VersionsFlappingEveryPacket) {
  PsiDecoder d;
  std::uint8_t cc = 0;
  std::uint8_t pcc = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto v = static_cast<std::uint8_t>(i & 1);
    feed(d, packets_for(kPatPid, build_pat(1, {{1, 0x100}}, v), cc));
    feed(d, packets_for(0x100, build_pmt(simple_service(1, 0x100, static_cast<std::uint16_t>(0x200 + (i & 1))), v), pcc));
  }
  EXPECT_EQ(d.stats().pat, 2000U);
  EXPECT_EQ(d.stats().pmt, 2000U);
  EXPECT_EQ(d.stats().version_changes, 2U * 1999U);
  ASSERT_EQ(d.model().services.size(), 1U);
  EXPECT_EQ(d.model().services[0].streams.size(), 1U);
  EXPECT_EQ(d.model().services[0].streams[0].pid, 0x201);
  EXPECT_GE(d.stats().model_changes, 2000U);
}

// Garbage on every PSI PID never crashes; the model stays bounded.
TEST(PsiDecoder, RandomPackets) {
  PsiDecoder d;
  std::mt19937 rng(99);
  const std::uint16_t pids[] = {0x0000, 0x0001, 0x0010, 0x0011, 0x0012, 0x0100};
  // Give it a PMT PID to chew on.
  std::uint8_t cc = 0;
  feed(d, packets_for(kPatPid, build_pat(1, {{1, 0x100}}, 0), cc));
  for (int i = 0; i < 100000; ++i) {
    TsPacket p{};
    for (auto& b : p.bytes) b = static_cast<std::uint8_t>(rng());
    p.bytes[0] = kSyncByte;
    p.set_pid(pids[rng() % 6]);
    if (i % 2 == 0) {
      p.bytes[1] = static_cast<std::uint8_t>(p.bytes[1] & 0x7F);
      p.bytes[3] = static_cast<std::uint8_t>(0x10 | (p.bytes[3] & 0x0F));
      p.bytes[4] = static_cast<std::uint8_t>(rng() % 4);
      if (rng() % 2) {
        p.bytes[5] = static_cast<std::uint8_t>(rng() % 3);  // plausible table ids
        p.bytes[6] = static_cast<std::uint8_t>(0xB0 | (rng() % 4));
      }
    }
    d.push(p);
  }
  EXPECT_LE(d.model().services.size(), 65535U);
}

TEST(PsiDecoder, TableRepetitionsDoNotReachLibdvbpsi) {
  // A steady stream repeats PAT, PMT and SDT unchanged: after the first copy of each,
  // every repetition is recognised and skipped (no allocation, no CRC), and the model is
  // the one the first copies gave.
  const auto pkts = twincast::test::read_packets(twincast::test::fixture("h264_aac.ts"));
  PsiDecoder d;
  std::size_t psi_packets = 0;
  for (const auto& p : pkts) {
    if (d.is_psi_pid(p.pid())) ++psi_packets;
    d.push(p);
  }
  ASSERT_EQ(d.model().services.size(), 1u);
  EXPECT_EQ(d.model().services[0].name, "Test One");
  EXPECT_GT(psi_packets, 100u);
  EXPECT_GE(d.stats().repeats_skipped, psi_packets - 10) << "only the first copy of each table is decoded";
  // A changed table is still seen among the repetitions: the same stream with the PMT's
  // version moved on (and its CRC redone) from halfway.
  auto changed = pkts;
  for (std::size_t i = changed.size() / 2; i < changed.size(); ++i) {
    auto& p = changed[i];
    if (p.pid() != 0x1000 || !p.payload_unit_start()) continue;
    auto pl = p.payload();
    const std::size_t at = 1 + pl[0];
    const std::size_t len = 3 + (((std::size_t{pl[at + 1]} & 0x0F) << 8) | pl[at + 2]);
    pl[at + 5] = static_cast<std::uint8_t>((pl[at + 5] & 0xC1) | (((((pl[at + 5] >> 1) & 0x1F) + 1) & 0x1F) << 1));
    const std::uint32_t crc = twincast::mpegts::crc32_mpeg(pl.subspan(at, len - 4));
    for (int k = 0; k < 4; ++k) pl[at + len - 4 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(crc >> (24 - 8 * k));
  }
  PsiDecoder e;
  for (const auto& p : changed) e.push(p);
  ASSERT_EQ(e.model().services.size(), 1u);
  EXPECT_EQ(e.model().services[0].pmt_version, (d.model().services[0].pmt_version + 1) & 0x1F);
}

namespace {

// Services 1..n with names long enough that the SDT and NIT span several packets.
std::vector<Service> many_services(std::uint16_t n, const std::string& suffix = "") {
  std::vector<Service> out;
  for (std::uint16_t i = 1; i <= n; ++i) {
    Service s = simple_service(i, static_cast<std::uint16_t>(0x100 + i), static_cast<std::uint16_t>(0x1000 + i));
    s.name = "Channel number " + std::to_string(i) + suffix;
    s.provider = "Provider " + std::to_string(i % 3);
    s.lcn = i;
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST(PsiDecoder, MultiPacketRepetitionsDoNotReachLibdvbpsi) {
  // A multiplex's SDT and NIT span several packets; another table (an SDT "other", table
  // 0x46) takes turns with the SDT actual on PID 0x11. 200 repetitions, with losses
  // between some of them (a CC error on a PSI PID, or an input that loops): each table is
  // decoded once, every later repetition is skipped whole.
  const auto svcs = many_services(30);
  const auto sdt = build_sdt(7, 0x2000, svcs, 0);
  const auto nit = build_nit(0x3001, "TwinNet", 7, 0x2000, svcs, 0);
  const Section other = raw_section(0x46, 8, 0, {0x20, 0x01, 0xFF});  // ONID 0x2001, no services
  std::uint8_t pat_cc = 0, sdt_cc = 0, nit_cc = 0;
  const auto pat_pkts = packets_for(kPatPid, build_pat(7, {{0, kNitPid}}, 0), pat_cc);
  std::size_t sdt_packets = packets_for(kSdtPid, sdt, sdt_cc).size();
  std::size_t nit_packets = packets_for(kNitPid, nit, nit_cc).size();
  ASSERT_GE(sdt_packets, 3u);
  ASSERT_GE(nit_packets, 2u);
  PsiDecoder d;
  feed(d, pat_pkts);
  std::size_t fed = 0;
  for (int rep = 0; rep < 200; ++rep) {
    if (rep % 20 == 19) {  // three packets of each PID lost
      sdt_cc = static_cast<std::uint8_t>((sdt_cc + 3) & 0x0F);
      nit_cc = static_cast<std::uint8_t>((nit_cc + 3) & 0x0F);
    }
    const auto a = packets_for(kSdtPid, sdt, sdt_cc);
    const auto o = packets_for(kSdtPid, {other}, sdt_cc);
    const auto n = packets_for(kNitPid, nit, nit_cc);
    feed(d, a);
    feed(d, o);
    feed(d, n);
    fed += a.size() + o.size() + n.size();
  }
  EXPECT_EQ(d.stats().sdt, 1u);
  EXPECT_EQ(d.stats().nit, 1u);
  // Only the first copy of each of the three runs reached libdvbpsi.
  EXPECT_EQ(d.stats().repeats_skipped, fed - sdt_packets - nit_packets - 1);
  const ProgramModel& m = d.model();
  EXPECT_EQ(m.network_name, "TwinNet");

  // A new SDT version (a service renamed) is seen at its first repetition.
  const auto renamed = many_services(30, " HD");
  const auto sdt1 = build_sdt(7, 0x2000, renamed, 1);
  feed(d, packets_for(kSdtPid, sdt1, sdt_cc));
  EXPECT_EQ(d.stats().sdt, 2u);
  // And back to the old bytes (a version_number that wrapped, two muxers taking turns):
  // libdvbpsi takes it as a change, so it is fed again.
  feed(d, packets_for(kSdtPid, sdt, sdt_cc));
  EXPECT_EQ(d.stats().sdt, 3u);
}

TEST(PsiDecoder, LossInsideTheFirstRepetitionIsMadeGoodByTheNext) {
  // The second packet of the first SDT repetition is lost: libdvbpsi drops that section,
  // and the next repetition (first packet the same) must not be skipped.
  const auto sdt = build_sdt(7, 0x2000, many_services(30), 0);
  std::uint8_t cc = 0;
  PsiDecoder d;
  auto first = packets_for(kSdtPid, sdt, cc);
  ASSERT_GE(first.size(), 3u);
  first.erase(first.begin() + 1);
  feed(d, first);
  EXPECT_EQ(d.stats().sdt, 0u);
  feed(d, packets_for(kSdtPid, sdt, cc));
  EXPECT_EQ(d.stats().sdt, 1u);
  // A repetition that differs only after its first packet (not a legal change, but seen
  // from broken muxers) is decoded at the latest by the repetition after it.
  auto odd = build_sdt(7, 0x2000, many_services(30), 0);
  odd[0][odd[0].size() - 40] ^= 0x20;  // a byte of a late service name, CRC redone below
  {
    Section& sec = odd[0];
    const std::uint32_t c = crc32_mpeg(std::span(sec).first(sec.size() - 4));
    for (int k = 0; k < 4; ++k) sec[sec.size() - 4 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(c >> (24 - 8 * k));
  }
  std::uint8_t scratch_cc = 0;
  const std::size_t n = packets_for(kSdtPid, odd, scratch_cc).size();
  auto skipped_by = [&](const std::vector<Section>& table) {
    const auto before = d.stats().repeats_skipped;
    feed(d, packets_for(kSdtPid, table, cc));
    return d.stats().repeats_skipped - before;
  };
  const auto first_odd = skipped_by(odd);
  EXPECT_GE(first_odd, 1u);  // its first packet matched the remembered run...
  EXPECT_LT(first_odd, n);   // ...a later one did not
  EXPECT_EQ(skipped_by(odd), 0u);  // so the next repetition reaches libdvbpsi whole
  EXPECT_EQ(skipped_by(odd), n);   // and is remembered from then on
}

// Table repetitions against what libdvbpsi does with losses and changes (found in review of
// the run mechanism): a table of two sections changed with a loss in its first repetition,
// a lost tail before the next section starts, a program that leaves the PAT and comes back
// (its new PMT decoder must be fed), a PAT that goes back to another transport stream.
namespace {

// SDT actual section `num` of `last` (services first..first+count-1), version v.
Section sdt_section(std::uint8_t num, std::uint8_t last, std::uint16_t first, int count, std::uint8_t v,
                    const std::string& suffix) {
  Section s{0x42, 0, 0, 0x00, 0x07, static_cast<std::uint8_t>(0xC1 | ((v & 0x1F) << 1)), num, last, 0x20, 0x00, 0xFF};
  for (int i = 0; i < count; ++i) {
    const std::uint16_t sid = static_cast<std::uint16_t>(first + i);
    const std::string prov = "Provider";
    const std::string name = "Channel number " + std::to_string(sid) + suffix;
    Bytes d{0x48, 0, 0x01, static_cast<std::uint8_t>(prov.size())};
    d.insert(d.end(), prov.begin(), prov.end());
    d.push_back(static_cast<std::uint8_t>(name.size()));
    d.insert(d.end(), name.begin(), name.end());
    d[1] = static_cast<std::uint8_t>(d.size() - 2);
    s.push_back(static_cast<std::uint8_t>(sid >> 8));
    s.push_back(static_cast<std::uint8_t>(sid));
    s.push_back(0xFC);
    s.push_back(static_cast<std::uint8_t>(0x80 | (d.size() >> 8)));
    s.push_back(static_cast<std::uint8_t>(d.size()));
    s.insert(s.end(), d.begin(), d.end());
  }
  const std::size_t len = s.size() + 4 - 3;
  s[1] = static_cast<std::uint8_t>(0xF0 | (len >> 8));
  s[2] = static_cast<std::uint8_t>(len & 0xFF);
  const std::uint32_t c = crc32_mpeg(s);
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<std::uint8_t>(c >> sh));
  return s;
}

// `reps` repetitions of `sections` on the SDT PID, each section in its own run.
void repeat_sdt(PsiDecoder& d, const std::vector<Section>& sections, int reps, std::uint8_t& cc) {
  for (int rep = 0; rep < reps; ++rep)
    for (const Section& sec : sections) feed(d, packets_for(kSdtPid, {sec}, cc));
}

std::vector<PatEntry> pat_entries() {
  std::vector<PatEntry> e;
  for (std::uint16_t i = 1; i <= 40; ++i) e.push_back({i, static_cast<std::uint16_t>(0x100 + i)});
  return e;
}

std::string name_of(const PsiDecoder& d, std::uint16_t sid) {
  for (const auto& s : d.model().services)
    if (s.service_id == sid) return s.name;
  return "<none>";
}

}  // namespace

// A: two-section SDT, each section its own run (a new packet with pointer_field 0).
// Version 1 arrives; one packet inside section 1's first v1 repetition is lost.
TEST(PsiDecoderRepetitions, LossInANewVersionsSecondSection) {
  std::uint8_t pat_cc = 0, cc = 0;
  PsiDecoder d;
  feed(d, packets_for(kPatPid, build_pat(7, pat_entries(), 0), pat_cc));
  const Section s0v0 = sdt_section(0, 1, 1, 10, 0, ""), s1v0 = sdt_section(1, 1, 11, 10, 0, "");
  const Section s0v1 = sdt_section(0, 1, 1, 10, 1, " HD"), s1v1 = sdt_section(1, 1, 11, 10, 1, " HD");
  repeat_sdt(d, {s0v0, s1v0}, 5, cc);
  EXPECT_EQ(d.stats().sdt, 1u);
  EXPECT_EQ(name_of(d, 15), "Channel number 15");
  // v1: section 0 whole; section 1 with its second packet lost.
  feed(d, packets_for(kSdtPid, {s0v1}, cc));
  auto s1 = packets_for(kSdtPid, {s1v1}, cc);
  s1.erase(s1.begin() + 1);
  feed(d, s1);
  repeat_sdt(d, {s0v1, s1v1}, 50, cc);
  EXPECT_EQ(d.stats().sdt, 2u);
  EXPECT_EQ(name_of(d, 15), "Channel number 15 HD");

  // Control: a fresh decoder fed the same v1 repetitions without the loss.
  PsiDecoder e;
  std::uint8_t pc = 0, c2 = 0;
  feed(e, packets_for(kPatPid, build_pat(7, pat_entries(), 0), pc));
  repeat_sdt(e, {s0v1, s1v1}, 5, c2);
  EXPECT_EQ(name_of(e, 15), "Channel number 15 HD");
}

// B: the tail of section 0's first v1 repetition (its last two packets) is lost, right
// before section 1 starts (pointer_field 0): the CC gap is not shown to libdvbpsi.
TEST(PsiDecoderRepetitions, LostTailBeforeTheNextSection) {
  std::uint8_t pat_cc = 0, cc = 0;
  PsiDecoder d;
  feed(d, packets_for(kPatPid, build_pat(7, pat_entries(), 0), pat_cc));
  const Section s0v0 = sdt_section(0, 1, 1, 20, 0, ""), s1v0 = sdt_section(1, 1, 21, 10, 0, "");
  const Section s0v1 = sdt_section(0, 1, 1, 20, 1, " HD"), s1v1 = sdt_section(1, 1, 21, 10, 1, " HD");
  repeat_sdt(d, {s0v0, s1v0}, 5, cc);
  EXPECT_EQ(d.stats().sdt, 1u);
  auto s0 = packets_for(kSdtPid, {s0v1}, cc);
  ASSERT_GE(s0.size(), 4u);
  s0.resize(s0.size() - 2);
  feed(d, s0);
  repeat_sdt(d, {s1v1, s0v1}, 50, cc);
  EXPECT_EQ(d.stats().sdt, 2u);
  EXPECT_EQ(name_of(d, 25), "Channel number 25 HD");
}

namespace {
const Service* find_service(const PsiDecoder& d, std::uint16_t sid) {
  for (const auto& s : d.model().services)
    if (s.service_id == sid) return &s;
  return nullptr;
}
}  // namespace

// C: program 2 leaves the PAT and comes back (same PMT PID, same PMT): its new PMT
// decoder never sees the PMT, whose run is still remembered for the PID.
TEST(PsiDecoderRepetitions, ProgramLeavesThePatAndComesBack) {
  std::uint8_t pat_cc = 0, c1 = 0, c2 = 0;
  PsiDecoder d;
  const auto pmt1 = build_pmt(simple_service(1, 0x100, 0x101), 0);
  const auto pmt2 = build_pmt(simple_service(2, 0x200, 0x201), 0);
  auto round = [&](std::uint8_t pat_version, bool with2) {
    std::vector<PatEntry> e{{1, 0x100}};
    if (with2) e.push_back({2, 0x200});
    feed(d, packets_for(kPatPid, build_pat(7, e, pat_version), pat_cc));
    feed(d, packets_for(0x100, pmt1, c1));
    feed(d, packets_for(0x200, pmt2, c2));
  };
  for (int i = 0; i < 5; ++i) round(0, true);
  ASSERT_NE(find_service(d, 2), nullptr);
  EXPECT_TRUE(find_service(d, 2)->has_pmt);
  for (int i = 0; i < 5; ++i) round(1, false);
  EXPECT_EQ(find_service(d, 2), nullptr);
  for (int i = 0; i < 50; ++i) round(2, true);
  ASSERT_NE(find_service(d, 2), nullptr);
  EXPECT_TRUE(find_service(d, 2)->has_pmt);
}

// D: the PAT goes back to an earlier table with another transport_stream_id (two sources
// taking turns): A (ts 7, v0, program 1), B (ts 8, v1, program 2), A again.
TEST(PsiDecoderRepetitions, PatBackToAnotherTransportStream) {
  std::uint8_t pat_cc = 0;
  PsiDecoder d;
  const auto a = build_pat(7, {{1, 0x100}}, 0);
  const auto b = build_pat(8, {{2, 0x200}}, 1);
  for (int i = 0; i < 3; ++i) feed(d, packets_for(kPatPid, a, pat_cc));
  EXPECT_NE(find_service(d, 1), nullptr);
  for (int i = 0; i < 3; ++i) feed(d, packets_for(kPatPid, b, pat_cc));
  EXPECT_NE(find_service(d, 2), nullptr);
  for (int i = 0; i < 20; ++i) feed(d, packets_for(kPatPid, a, pat_cc));
  EXPECT_NE(find_service(d, 1), nullptr);
}

TEST(PsiDecoderRepetitions, StuckContinuityCounterIsALossNotADuplicate) {
  // Every PAT packet with CC 0 (a broken muxer): a new PAT is not a duplicate of the old
  // one just because its counter did not move.
  PsiDecoder d;
  for (int i = 0; i < 3; ++i) {
    std::uint8_t cc = 0;
    feed(d, packets_for(kPatPid, build_pat(7, {{1, 0x100}}, 0), cc));
  }
  ASSERT_NE(find_service(d, 1), nullptr);
  for (int i = 0; i < 3; ++i) {
    std::uint8_t cc = 0;
    feed(d, packets_for(kPatPid, build_pat(7, {{2, 0x200}}, 1), cc));
  }
  EXPECT_EQ(find_service(d, 1), nullptr);
  EXPECT_NE(find_service(d, 2), nullptr);
}

TEST(PsiDecoderRepetitions, ManyTablesTakingTurnsOnOnePid) {
  // SDT actual and SDT other for six other transport streams on PID 0x11 (a satellite
  // transponder's SI): seven runs in turn, each remembered.
  std::vector<Section> others;
  for (std::uint16_t ts = 10; ts < 16; ++ts) others.push_back(raw_section(0x46, ts, 0, {0x20, 0x01, 0xFF}));
  const auto actual = build_sdt(7, 0x2000, many_services(10), 0);
  PsiDecoder d;
  std::uint8_t cc = 0;
  std::size_t first_round = 0, fed = 0;
  for (int rep = 0; rep < 20; ++rep) {
    const auto before = d.stats().repeats_skipped;
    std::size_t packets = 0;
    for (const auto& p : packets_for(kSdtPid, actual, cc)) d.push(p), ++packets;
    for (const auto& o : others)
      for (const auto& p : packets_for(kSdtPid, {o}, cc)) d.push(p), ++packets;
    const auto skipped = d.stats().repeats_skipped - before;
    if (rep == 0) first_round = packets - skipped;
    else fed += packets - skipped;
  }
  EXPECT_EQ(first_round, 1 + packets_for(kSdtPid, actual, cc).size() + others.size() - 1);  // all of it, once
  EXPECT_EQ(fed, 0u);  // nothing after the first round
  EXPECT_EQ(d.stats().sdt, 1u);
}

TEST(PsiDecoderRepetitions, InputLoopingInsideATableCostsNothing) {
  // A capture that loops in the middle of a multi-packet SDT: at each loop the stream
  // jumps (a CC gap) into the table's second packet. Decoded once, never again.
  // (One section of several packets: 20 services fit, 30 take two sections.)
  const auto sdt = build_sdt(7, 0x2000, many_services(20), 0);
  ASSERT_EQ(sdt.size(), 1u);
  std::uint8_t cc = 0;
  const auto one = packets_for(kSdtPid, sdt, cc);
  ASSERT_GE(one.size(), 3u);
  PsiDecoder d;
  for (int loop = 0; loop < 20; ++loop) {
    // The loop: the last packets of a repetition, then whole repetitions.
    std::uint8_t lcc = static_cast<std::uint8_t>(loop * 5);
    auto tail = packets_for(kSdtPid, sdt, lcc);
    tail.erase(tail.begin());
    feed(d, tail);
    for (int rep = 0; rep < 3; ++rep) feed(d, packets_for(kSdtPid, sdt, lcc));
  }
  EXPECT_EQ(d.stats().sdt, 1u);
  EXPECT_GE(d.stats().repeats_skipped, 19u * 3u * one.size());
}

TEST(PsiDecoderRepetitions, AMultiplexOfManyPrograms) {
  // A PAT of 100 programs, each PMT on its own PID, repeated: every PMT is decoded once,
  // then every repetition of every table is skipped.
  std::vector<PatEntry> programs;
  for (std::uint16_t i = 1; i <= 100; ++i) programs.push_back({i, static_cast<std::uint16_t>(0x100 + i)});
  const auto pat = build_pat(7, programs, 0);
  std::vector<std::vector<Section>> pmts;
  for (const auto& e : programs)
    pmts.push_back(build_pmt(simple_service(e.program_number, e.pid, static_cast<std::uint16_t>(0x1000 + e.program_number)), 0));
  PsiDecoder d;
  std::uint8_t pat_cc = 0;
  std::vector<std::uint8_t> pmt_cc(programs.size());
  std::size_t total = 0, first = 0;
  for (int rep = 0; rep < 10; ++rep) {
    const auto p = packets_for(kPatPid, pat, pat_cc);
    feed(d, p);
    total += p.size();
    for (std::size_t k = 0; k < pmts.size(); ++k) {
      const auto q = packets_for(programs[k].pid, pmts[k], pmt_cc[k]);
      feed(d, q);
      total += q.size();
    }
    if (rep == 0) first = total;
  }
  EXPECT_EQ(d.stats().pmt, 100u);
  ASSERT_EQ(d.model().services.size(), 100u);
  for (const auto& s : d.model().services) EXPECT_TRUE(s.has_pmt) << s.service_id;
  EXPECT_EQ(d.stats().repeats_skipped, total - first);
}
