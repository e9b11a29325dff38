#include "twincast/mpegts/psi_tables.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests_common.hpp"
#include "twincast/mpegts/crc32.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/section.hpp"

using namespace twincast::mpegts;

namespace {

Descriptor iso639(const char* lang) {
  return {0x0A, {static_cast<std::uint8_t>(lang[0]), static_cast<std::uint8_t>(lang[1]),
                 static_cast<std::uint8_t>(lang[2]), 0x00}};
}

ElementaryStream es(std::uint16_t pid, std::uint8_t type, Codec codec, const char* lang = nullptr,
                    std::vector<Descriptor> extra = {}) {
  ElementaryStream e;
  e.pid = pid;
  e.stream_type = type;
  e.codec = codec;
  if (lang != nullptr) {
    e.language = lang;
    e.descriptors.push_back(iso639(lang));
  }
  for (auto& d : extra) e.descriptors.push_back(std::move(d));
  return e;
}

// Three services as PsiDecoder reports them (has_pmt, names, LCNs, languages).
ProgramModel sample_model() {
  ProgramModel m;
  m.transport_stream_id = 0x0042;
  m.original_network_id = 0x2001;
  m.network_id = 0x3001;
  m.network_name = "Twin Net";
  m.has_pat = true;
  const char* names[] = {"Uno", "Dos", "Tres Ü"};
  for (std::uint16_t i = 0; i < 3; ++i) {
    Service s;
    s.service_id = static_cast<std::uint16_t>(10 + i);
    s.pmt_pid = static_cast<std::uint16_t>(0x1000 + i);
    s.pcr_pid = static_cast<std::uint16_t>(0x100 + 0x10 * i);
    s.has_pmt = true;
    s.name = names[i];
    s.provider = "twincast";
    s.service_type = 0x01;
    s.lcn = static_cast<std::uint16_t>(i == 2 ? 1023 : 1 + i);
    s.program_descriptors.push_back({0x05, {'H', 'D', 'M', 'V'}});
    s.streams.push_back(es(s.pcr_pid, 0x1B, Codec::kH264));
    s.streams.push_back(es(static_cast<std::uint16_t>(s.pcr_pid + 1), 0x0F, Codec::kAac, "eng"));
    s.streams.push_back(es(static_cast<std::uint16_t>(s.pcr_pid + 2), 0x06, Codec::kAc3, "deu", {{0x6A, {0x00}}}));
    m.services.push_back(std::move(s));
  }
  return m;
}

std::vector<PatEntry> pat_entries(const ProgramModel& m) {
  std::vector<PatEntry> out;
  for (const auto& s : m.services) out.push_back({s.service_id, s.pmt_pid});
  return out;
}

std::vector<TsPacket> run_carousel(TableCarousel& c) {
  std::vector<TsPacket> out(c.packet_count());
  EXPECT_EQ(c.packetize(out), out.size());
  return out;
}

// Packets of all tables of a model, one repetition.
std::vector<TsPacket> model_packets(const ProgramModel& m, std::vector<TableCarousel>& cars) {
  if (cars.empty()) {
    cars.emplace_back(kPatPid);
    cars.emplace_back(kSdtPid);
    cars.emplace_back(kNitPid);
    for (const auto& s : m.services) cars.emplace_back(s.pmt_pid);
  }
  cars[0].update([&](std::uint8_t v) { return build_pat(m.transport_stream_id, pat_entries(m), v); });
  cars[1].update([&](std::uint8_t v) {
    return build_sdt(m.transport_stream_id, m.original_network_id, m.services, v);
  });
  cars[2].update([&](std::uint8_t v) {
    return build_nit(m.network_id, m.network_name, m.transport_stream_id, m.original_network_id, m.services, v);
  });
  for (std::size_t i = 0; i < m.services.size(); ++i)
    cars[3 + i].update([&](std::uint8_t v) { return build_pmt(m.services[i], v); });
  std::vector<TsPacket> all;
  for (auto& c : cars) {
    const auto p = run_carousel(c);
    all.insert(all.end(), p.begin(), p.end());
  }
  return all;
}

struct Collector final : SectionHandler {
  std::vector<Section> got;
  void on_section(std::uint16_t, std::span<const std::uint8_t> s, bool crc_ok) override {
    EXPECT_TRUE(crc_ok);
    got.emplace_back(s.begin(), s.end());
  }
};

}  // namespace

TEST(PsiTables, BuildersMakeValidSections) {
  const ProgramModel m = sample_model();
  const auto pat = build_pat(m.transport_stream_id, pat_entries(m), 4);
  ASSERT_EQ(pat.size(), 1U);
  const Section& s = pat[0];
  EXPECT_TRUE(section_crc_ok(s));
  EXPECT_EQ(s[0], 0x00);
  EXPECT_EQ(s.size(), 3U + 5 + 3 * 4 + 4);
  EXPECT_EQ((s[3] << 8) | s[4], 0x42);
  EXPECT_EQ((s[5] >> 1) & 0x1F, 4);
  EXPECT_EQ((s[8] << 8) | s[9], 10);                    // first program_number
  EXPECT_EQ(((s[10] & 0x1F) << 8) | s[11], 0x1000);     // its PMT PID

  for (const auto& [sections, table] : {std::pair{build_pmt(m.services[0], 0), 0x02},
                                        std::pair{build_sdt(1, 2, m.services, 0), 0x42},
                                        std::pair{build_nit(3, "n", 1, 2, m.services, 0), 0x40}}) {
    ASSERT_FALSE(sections.empty());
    for (const auto& sec : sections) {
      EXPECT_TRUE(section_crc_ok(sec));
      EXPECT_EQ(sec[0], table);
      EXPECT_EQ(sec.size(), 3U + (((sec[1] & 0x0FU) << 8) | sec[2]));
    }
  }
  // A PAT of 300 programs needs two sections, numbered 0 and 1.
  std::vector<PatEntry> many;
  for (std::uint16_t i = 1; i <= 300; ++i) many.push_back({i, static_cast<std::uint16_t>(0x20 + i)});
  const auto big = build_pat(1, many, 0);
  ASSERT_EQ(big.size(), 2U);
  EXPECT_EQ(big[0][6], 0);
  EXPECT_EQ(big[1][6], 1);
  EXPECT_EQ(big[1][7], 1);
  // A descriptor body over 255 bytes is refused, not truncated.
  Service bad = m.services[0];
  bad.program_descriptors.push_back({0x80, std::vector<std::uint8_t>(300, 1)});
  EXPECT_THROW((void)build_pmt(bad, 0), std::length_error);
}

// The logical_channel_descriptor (0x83) is a private descriptor (EN 300 468 6.2.31, tags
// 0x80..0xFE): a receiver reads it only after a private_data_specifier_descriptor (0x5F)
// in the same loop names its specifier, EACEM 0x00000028 (IEC 62216-1). Without one,
// receivers that check (and analysers: TSDuck shows "unknown descriptor") ignore the
// LCNs. The NIT's transport stream loop is split over sections for many services: each
// section's part of the loop that holds 0x83 descriptors needs its own 0x5F before them.
TEST(PsiTables, LcnDescriptorsFollowAnEacemPrivateDataSpecifierInEverySection) {
  std::vector<Service> services;
  for (std::uint16_t i = 1; i <= 400; ++i) {
    Service s;
    s.service_id = i;
    s.service_type = 0x01;
    s.lcn = static_cast<std::uint16_t>(i);
    services.push_back(s);
  }
  for (const std::size_t n : {std::size_t{3}, services.size()}) {
    const auto nit = build_nit(3, "Twin Net", 1, 2, std::vector<Service>(services.begin(), services.begin() + static_cast<std::ptrdiff_t>(n)), 0);
    if (n == services.size()) {
      EXPECT_GT(nit.size(), 1U);
    }
    std::size_t lcns = 0;
    for (const auto& sec : nit) {
      ASSERT_TRUE(section_crc_ok(sec));
      bool pds = false;
      for (const auto& d : twincast::test::nit_ts_descriptors(sec)) {
        if (d.tag == 0x5F) pds = d.data == std::vector<std::uint8_t>{0x00, 0x00, 0x00, 0x28};
        if (d.tag != 0x83) continue;
        EXPECT_TRUE(pds) << "0x83 without an EACEM private_data_specifier before it, section " << int{sec[6]} << " of " << n << " services";
        lcns += d.data.size() / 4U;
      }
    }
    EXPECT_EQ(lcns, n);
  }
}

// Model -> tables -> packets -> PsiDecoder -> the same model.
TEST(PsiTables, RoundTripThroughDecoder) {
  const ProgramModel m = sample_model();
  std::vector<TableCarousel> cars;
  const auto pkts = model_packets(m, cars);
  PsiDecoder d;
  for (const auto& p : pkts) d.push(p);
  EXPECT_EQ(d.model(), m);
  EXPECT_EQ(d.model().services.at(2).name, "Tres Ü");
  EXPECT_EQ(d.model().services.at(2).lcn, 1023);
  EXPECT_EQ(d.model().services.at(1).streams.at(2).language, "deu");
  EXPECT_EQ(d.stats().nit, 1U);
  EXPECT_EQ(d.stats().sdt, 1U);

  // Renaming a service bumps the SDT version only; the decoder follows.
  ProgramModel m2 = m;
  m2.services[1].name = "Zwei";
  const auto pkts2 = model_packets(m2, cars);
  EXPECT_EQ(cars[0].version(), 0);
  EXPECT_EQ(cars[1].version(), 1);
  EXPECT_EQ(cars[2].version(), 0);
  const auto gen = d.generation();
  for (const auto& p : pkts2) d.push(p);
  EXPECT_EQ(d.model().services.at(1).name, "Zwei");
  EXPECT_EQ(d.generation(), gen + 1);
  EXPECT_EQ(d.stats().version_changes, 1U);
}

TEST(PsiTables, VersionBumpsOnlyOnChange) {
  std::vector<PatEntry> progs{{1, 0x100}};
  TableCarousel c(kPatPid, 30);
  const auto build = [&](std::uint8_t v) { return build_pat(7, progs, v); };
  EXPECT_FALSE(c.has_content());
  EXPECT_TRUE(c.update(build));
  EXPECT_EQ(c.version(), 30);
  EXPECT_FALSE(c.update(build));
  EXPECT_FALSE(c.update(build));
  EXPECT_EQ(c.version(), 30);
  EXPECT_EQ(((c.sections().at(0)[5] >> 1) & 0x1F), 30);
  progs.push_back({2, 0x200});
  EXPECT_TRUE(c.update(build));
  EXPECT_EQ(c.version(), 31);
  progs.pop_back();
  EXPECT_TRUE(c.update(build));
  EXPECT_EQ(c.version(), 0);  // wraps modulo 32
  EXPECT_EQ(((c.sections().at(0)[5] >> 1) & 0x1F), 0);
  EXPECT_TRUE(section_crc_ok(c.sections().at(0)));
  EXPECT_FALSE(c.update(build));
}

TEST(PsiTables, ContinuityCounterAcrossCalls) {
  TableCarousel c(0x1234);
  std::vector<TsPacket> out(8);
  EXPECT_EQ(c.packetize(out), 0U);  // no content yet
  c.update([](std::uint8_t v) { return build_pat(1, {{1, 0x100}}, v); });
  EXPECT_EQ(c.pid(), 0x1234);
  int expected = 0;
  for (int call = 0; call < 40; ++call) {
    ASSERT_EQ(c.packetize(out), 1U);
    EXPECT_EQ(out[0].cc(), expected);
    EXPECT_EQ(out[0].pid(), 0x1234);
    EXPECT_TRUE(out[0].payload_unit_start());
    EXPECT_FALSE(out[0].transport_error());
    EXPECT_EQ(out[0].adaptation_control(), AdaptationControl::kPayloadOnly);
    expected = (expected + 1) & 0x0F;
  }
  EXPECT_EQ(c.packetize(std::span<TsPacket>(out.data(), 0)), 0U);  // too small
}

TEST(PsiTables, LongPmtSpansPackets) {
  Service s;
  s.service_id = 5;
  s.pmt_pid = 0x500;
  s.pcr_pid = 0x501;
  s.has_pmt = true;
  for (std::uint16_t i = 0; i < 40; ++i)
    s.streams.push_back(es(static_cast<std::uint16_t>(0x501 + i), 0x0F, Codec::kAac, i % 2 ? "fra" : "ita"));
  TableCarousel c(s.pmt_pid);
  c.update([&](std::uint8_t v) { return build_pmt(s, v); });
  ASSERT_GT(c.sections().at(0).size(), 184U * 2);
  EXPECT_GE(c.packet_count(), 3U);
  const auto pkts = run_carousel(c);
  EXPECT_TRUE(pkts[0].payload_unit_start());
  EXPECT_FALSE(pkts[1].payload_unit_start());
  EXPECT_EQ(pkts.back().bytes.back(), 0xFF);  // stuffed
  PsiDecoder d;
  TableCarousel pat(kPatPid);
  pat.update([&](std::uint8_t v) { return build_pat(1, {{5, 0x500}}, v); });
  for (const auto& p : run_carousel(pat)) d.push(p);
  for (const auto& p : pkts) d.push(p);
  ASSERT_EQ(d.model().services.size(), 1U);
  EXPECT_EQ(d.model().services[0], s);
}

// A PMT is one section (ISO 13818-1 2.4.4.8): 1024 bytes at most, section_length 1021.
// One at the limit is built whole; one over it is refused, never sent with descriptors
// left out (libdvbpsi's generator drops the ES descriptors that do not fit, or writes
// descriptor-less ESs past its 1024-byte buffer, and says so only in its log).
TEST(PsiTables, PmtAtTheSectionLimitIsWholeAndOneOverItIsRefused) {
  Service s;
  s.service_id = 5;
  s.pcr_pid = 0x101;
  s.has_pmt = true;
  // 12 header + 5 ES + 3 x 252 + 247 descriptors + 4 CRC: 1024 bytes.
  ElementaryStream e = es(0x101, 0x06, Codec::kPrivateData);
  for (int i = 0; i < 3; ++i) e.descriptors.push_back({0x80, std::vector<std::uint8_t>(250, static_cast<std::uint8_t>(i))});
  e.descriptors.push_back({0x81, std::vector<std::uint8_t>(245, 0xAB)});
  s.streams.push_back(e);
  const auto full = build_pmt(s, 0);
  ASSERT_EQ(full.size(), 1U);
  EXPECT_EQ(full[0].size(), 1024U);
  EXPECT_TRUE(section_crc_ok(full[0]));

  // Five bytes more in the last descriptor: 1029 bytes.
  s.streams[0].descriptors.back().data.resize(250, 0xAB);
  std::vector<Section> over;
  EXPECT_THROW(over = build_pmt(s, 0), std::length_error);
  if (!over.empty())
    ADD_FAILURE() << "built a PMT of " << over.size() << " section(s), the first " << over[0].size()
                  << " bytes, for content of 1029 bytes";

  // ESs without descriptors past the limit: (1024 - 16) / 5 = 201 fit, 202 do not.
  Service many;
  many.service_id = 6;
  many.pcr_pid = 0x100;
  for (std::uint16_t i = 0; i < 201; ++i) many.streams.push_back(es(static_cast<std::uint16_t>(0x100 + i), 0x06, Codec::kPrivateData));
  const auto fits = build_pmt(many, 0);
  ASSERT_EQ(fits.size(), 1U);
  EXPECT_EQ(fits[0].size(), 16U + 201 * 5);
  many.streams.push_back(es(0x100 + 201, 0x06, Codec::kPrivateData));
  EXPECT_THROW((void)build_pmt(many, 0), std::length_error);
}

// Sections of every length packed back to back: every boundary position in a packet,
// including a section starting on the last payload byte, reassembles.
TEST(PsiTables, PackingAllAlignments) {
  std::vector<Section> sections;
  for (std::size_t len = 12; len < 12 + 200; len += 1) {
    Section s(len - 4, 0);
    s[0] = 0x80;  // private table, long form
    s[1] = static_cast<std::uint8_t>(0xB0 | ((len - 3) >> 8));
    s[2] = static_cast<std::uint8_t>((len - 3) & 0xFF);
    for (std::size_t i = 3; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(len + i);
    const std::uint32_t crc = crc32_mpeg(s);
    for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<std::uint8_t>(crc >> sh));
    sections.push_back(std::move(s));
  }
  TableCarousel c(0x77);
  c.update([&](std::uint8_t) { return sections; });
  const auto pkts = run_carousel(c);
  SectionAssembler a;
  Collector col;
  for (const auto& p : pkts) a.push(p, col);
  EXPECT_EQ(col.got, sections);
  EXPECT_EQ(a.stats().malformed, 0U);
  EXPECT_EQ(a.stats().dropped, 0U);
  // And libdvbpsi-style consumers: every packet's pointer_field stays inside the packet.
  for (const auto& p : pkts)
    if (p.payload_unit_start()) {
      EXPECT_LT(std::size_t{p.payload()[0]} + 1, p.payload().size());
    }
}

// ffprobe reads the service name and program from a file made of our tables.
TEST(PsiTables, FfprobeReadsGeneratedTables) {
  ProgramModel m = sample_model();
  m.services.resize(1);
  m.services[0].name = "Generated One";
  std::vector<TableCarousel> cars;
  std::vector<TsPacket> file;
  for (int rep = 0; rep < 5; ++rep) {
    const auto pkts = model_packets(m, cars);
    file.insert(file.end(), pkts.begin(), pkts.end());
    for (int i = 0; i < 20; ++i) file.push_back(make_null_packet());
  }
  const auto dir = twincast::test::temp_dir("psi-tables");
  const auto path = dir / "tables.ts";
  twincast::test::write_packets(path, file);
  const auto r = twincast::test::run("ffprobe -v error -show_programs -of json " +
                                     twincast::test::shell_quote(path.string()));
  std::filesystem::remove_all(dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"program_num\": 10"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"pmt_pid\": 4096"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"service_name\": \"Generated One\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"service_provider\": \"twincast\""), std::string::npos) << r.out;
}

namespace {

// A DVB text field behind the UTF-8 selector (0x15) holds whole UTF-8 characters only.
bool whole_utf8(std::span<const std::uint8_t> field) {
  if (field.empty() || field[0] != 0x15) return true;
  for (std::size_t i = 1; i < field.size();) {
    const std::uint8_t b = field[i];
    const std::size_t n = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > field.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((field[i + k] & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

std::string repeat(const std::string& s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

// Names in UTF-8 that do not fit the service_descriptor (its 255 bytes hold both texts and
// their 0x15 selectors) are cut between characters, never inside one: a set-top box shows
// a truncated multi-byte sequence as garbage or drops the name. Both are within what the
// configuration accepts (name and provider 252 bytes together).
// EN 300 468 5.2.3: free_CA_mode 1 says access to one or more of the service's streams may
// be controlled by a CA system. The remux carries scrambled services (their ECM PIDs, the
// CAT); announcing one as free (0) puts it in a receiver's "free only" scan and keeps the
// "scrambled" mark off it. The PMT's CA_descriptors (0x09, program or stream level) say it.
TEST(PsiTables, SdtFreeCaModeIsSetForAScrambledService) {
  std::vector<Service> services = sample_model().services;
  services[1].program_descriptors.push_back({0x09, {0x06, 0x04, 0xE1, 0x00}});               // ECM PID 0x100
  services[2].streams[0].descriptors.push_back({0x09, {0x0B, 0x00, 0xE1, 0x01, 0xAA}});  // stream level
  const auto sections = build_sdt(1, 2, services, 0);
  ASSERT_EQ(sections.size(), 1U);
  const Section& s = sections[0];
  std::vector<std::pair<std::uint16_t, bool>> got;
  for (std::size_t q = 11; q + 4 < s.size();) {
    const std::size_t loop = static_cast<std::size_t>(((s[q + 3] & 0x0F) << 8) | s[q + 4]);
    got.emplace_back(static_cast<std::uint16_t>((s[q] << 8) | s[q + 1]), (s[q + 3] & 0x10) != 0);
    EXPECT_EQ(s[q + 3] >> 5, 4) << "running_status";
    q += 5 + loop;
  }
  const std::vector<std::pair<std::uint16_t, bool>> want{{10, false}, {11, true}, {12, true}};
  EXPECT_EQ(got, want) << "(service_id, free_CA_mode)";
}

TEST(PsiTables, SdtNamesAreCutBetweenUtf8Characters) {
  std::vector<Service> services(2);
  services[0].service_id = 1;
  services[0].provider = repeat("\xC3\xA9", 100);  // 200 bytes: over the provider's share
  services[0].name = "N";
  services[1].service_id = 2;
  services[1].provider = "\xC3\x84" "b";  // 3 bytes
  services[1].name = repeat("\xC3\xA9", 124) + "x";  // 249 bytes: 252 together, 254 with the selectors
  const auto sections = build_sdt(1, 2, services, 0);
  ASSERT_EQ(sections.size(), 1U);
  const Section& s = sections[0];
  std::size_t checked = 0;
  for (std::size_t q = 11; q + 4 < s.size();) {
    const std::size_t loop = static_cast<std::size_t>(((s[q + 3] & 0x0F) << 8) | s[q + 4]);
    const std::uint16_t sid = static_cast<std::uint16_t>((s[q] << 8) | s[q + 1]);
    ASSERT_GE(loop, 2U);
    ASSERT_EQ(s[q + 5], 0x48);
    const std::uint8_t* d = &s[q + 7];
    const std::size_t provider_len = d[1];
    const std::size_t name_len = d[2 + provider_len];
    ASSERT_EQ(3 + provider_len + name_len, std::size_t{s[q + 6]});
    const std::span<const std::uint8_t> provider(d + 2, provider_len);
    const std::span<const std::uint8_t> name(d + 3 + provider_len, name_len);
    EXPECT_TRUE(whole_utf8(provider)) << "service " << sid << ": provider of " << provider_len
                                      << " bytes ends inside a character";
    EXPECT_TRUE(whole_utf8(name)) << "service " << sid << ": name of " << name_len << " bytes ends inside a character";
    ++checked;
    q += 5 + loop;
  }
  EXPECT_EQ(checked, 2U);
}
