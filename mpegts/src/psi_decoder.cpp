// PSI/SI decoding with libdvbpsi: one dvbpsi handle per PSI PID (and per program for
// PMTs), a flat table of which PIDs are PSI, and a ProgramModel rebuilt whenever a table
// changes.
#include "twincast/mpegts/psi_decoder.hpp"

#include <iconv.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <iterator>
#include <map>
#include <new>
#include <string>
#include <span>
#include <string_view>
#include <vector>

// libdvbpsi's headers are C and must come in this order (dvbpsi.h first).
#include <dvbpsi/dvbpsi.h>
#include <dvbpsi/psi.h>
#include <dvbpsi/descriptor.h>
#include <dvbpsi/demux.h>
#include <dvbpsi/pat.h>
#include <dvbpsi/pmt.h>
#include <dvbpsi/cat.h>
#include <dvbpsi/sdt.h>
#include <dvbpsi/nit.h>

#include "twincast/mpegts/section.hpp"

namespace twincast::mpegts {

namespace {

// Caps that keep hostile input from growing memory without bound.
constexpr std::size_t kMaxPmtDecoders = 512;  // PMT decoders (one per program)

enum PidFlag : std::uint8_t {
  kFlagPat = 1U << 0,
  kFlagCat = 1U << 1,
  kFlagNit = 1U << 2,
  kFlagSdt = 1U << 3,
  kFlagEit = 1U << 4,
  kFlagPmt = 1U << 5,
};

std::vector<Descriptor> to_descriptors(const dvbpsi_descriptor_t* d) {
  std::vector<Descriptor> out;
  for (; d != nullptr; d = d->p_next) {
    Descriptor x;
    x.tag = d->i_tag;
    if (d->p_data != nullptr) x.data.assign(d->p_data, d->p_data + d->i_length);
    out.push_back(std::move(x));
  }
  return out;
}

// `n` bytes of text in `charset` (an iconv name) as UTF-8. Bytes that are no character
// of it are left out; without the converter, only the ASCII ones are kept.
std::string iconv_utf8(const char* charset, const char* p, std::size_t n) {
  const iconv_t cd = iconv_open("UTF-8", charset);
  if (cd == reinterpret_cast<iconv_t>(-1)) {
    std::string ascii;
    std::copy_if(p, p + n, std::back_inserter(ascii), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    return ascii;
  }
  std::string out(4 * n + 4, '\0');
  char* in = const_cast<char*>(p);
  std::size_t in_left = n;
  char* to = out.data();
  std::size_t to_left = out.size();
  while (in_left > 0 && iconv(cd, &in, &in_left, &to, &to_left) == static_cast<std::size_t>(-1)) {
    if (errno != EILSEQ && errno != EINVAL) break;
    ++in;  // not a character of this table (or one cut short): left out
    --in_left;
  }
  iconv_close(cd);
  out.resize(out.size() - to_left);
  return out;
}

// Whole, well-formed UTF-8 sequences only (the lead byte's length, continuation bytes).
bool valid_utf8(const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n;) {
    const std::uint8_t b = p[i];
    const std::size_t len = b < 0x80 ? 1 : (b >= 0xC2 && b < 0xE0) ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b >= 0xF0 && b < 0xF5) ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

// A DVB text field (EN 300 468 Annex A) in UTF-8, from whichever character table its
// first byte selects (none: the default table, ISO 6937 with the euro sign, unless the
// text is well-formed UTF-8: sources that write UTF-8 without its selector are common, and
// default-table text with accents is never that). The control codes 0x80..0x9F of the
// one-byte tables (emphasis on/off, line break) are left out.
std::string dvb_text(const std::uint8_t* p, std::size_t n) {
  if (n > 0 && p[0] >= 0x20 && valid_utf8(p, n)) return std::string(reinterpret_cast<const char*>(p), n);
  const char* charset = "ISO_6937";
  std::size_t skip = 0;
  bool one_byte = true;
  static constexpr std::array<const char*, 16> kIso8859 = {
      nullptr,      "ISO-8859-1",  "ISO-8859-2",  "ISO-8859-3",  "ISO-8859-4", "ISO-8859-5",
      "ISO-8859-6", "ISO-8859-7",  "ISO-8859-8",  "ISO-8859-9",  "ISO-8859-10", "ISO-8859-11",
      nullptr,      "ISO-8859-13", "ISO-8859-14", "ISO-8859-15"};
  if (n > 0 && p[0] < 0x20) {
    skip = 1;
    one_byte = false;
    charset = nullptr;  // reserved or unknown: the bytes as they are
    if (p[0] >= 0x01 && p[0] <= 0x0B) {
      charset = kIso8859[p[0] + 4U];
      one_byte = true;
    } else if (p[0] == 0x10) {  // 0x10 + 16-bit ISO 8859 part
      skip = 3;
      if (n >= 3 && p[1] == 0x00 && p[2] < kIso8859.size()) charset = kIso8859[p[2]];
      one_byte = true;
    } else if (p[0] == 0x11) {
      charset = "UCS-2BE";
    } else if (p[0] == 0x12) {
      charset = "EUC-KR";
    } else if (p[0] == 0x13) {
      charset = "GB2312";
    } else if (p[0] == 0x14) {  // the Big5 subset of ISO/IEC 10646: coded as 0x11 is, not in Big5
      charset = "UCS-2BE";
    } else if (p[0] == 0x1F) {  // 0x1F + encoding_type_id
      skip = 2;
    }
  }
  skip = std::min(skip, n);
  std::string text(reinterpret_cast<const char*>(p) + skip, n - skip);
  if (one_byte)
    std::erase_if(text, [](char c) { return static_cast<unsigned char>(c) >= 0x80 && static_cast<unsigned char>(c) < 0xA0; });
  const bool ascii = std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (charset == nullptr || (one_byte && ascii)) return text;  // ASCII is ASCII in all one-byte tables
  if (skip == 0) {
    // The default table's euro sign (0xA4) is DVB's addition to ISO 6937: iconv drops it.
    std::string out;
    std::size_t from = 0;
    for (std::size_t at = 0; (at = text.find('\xA4', from)) != std::string::npos; from = at + 1)
      out += iconv_utf8(charset, text.data() + from, at - from) + "\xE2\x82\xAC";
    return out + iconv_utf8(charset, text.data() + from, text.size() - from);
  }
  return iconv_utf8(charset, text.data(), text.size());
}

std::string iso639_language(const std::vector<Descriptor>& ds) {
  for (const auto& d : ds) {
    if (d.tag != 0x0A || d.data.size() < 3) continue;
    std::string lang(reinterpret_cast<const char*>(d.data.data()), 3);
    const bool printable = std::all_of(lang.begin(), lang.end(), [](char c) { return c > 0x20 && c < 0x7F; });
    if (printable) return lang;
  }
  return {};
}

// The fingerprint of a table repetition's packet: its payload (length included) through
// the standard library's string hash (libstdc++: 64-bit MurmurHash, 8 bytes a step; a
// byte-wise FNV-1a here made feed_repeat 2.8 % of the worker's samples in dataplane_bench
// /channel under perf; with this, 0.3 % together).
std::uint64_t payload_hash(std::span<const std::uint8_t> payload) {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()));
}

// Which section a run starts with (its payload starts with pointer_field 0): table_id,
// and for long-form sections the section_number and, where one decoder per
// table_id_extension is kept (PMT: one per program), the extension. PAT, CAT, NIT actual
// and SDT actual have one decoder each: a table with another extension (another
// transport stream or network) replaces the one held, so it is the same key.
std::uint32_t section_key(std::span<const std::uint8_t> payload) {
  if (payload.size() < 2) return 0;
  const std::uint8_t table_id = payload[1];
  std::uint32_t key = std::uint32_t{table_id} << 24;
  if (payload.size() >= 8 && (payload[2] & 0x80) != 0) {
    const bool one_decoder = table_id == 0x00 || table_id == 0x01 || table_id == 0x40 || table_id == 0x42;
    if (!one_decoder) key |= (std::uint32_t{payload[4]} << 16) | (std::uint32_t{payload[5]} << 8);
    key |= payload[7];
  }
  return key;
}

struct PatEntryRaw {
  std::uint16_t program_number = 0;
  std::uint16_t pid = 0;
};

struct SdtEntry {
  std::string name;
  std::string provider;
  std::uint8_t service_type = 0;
};

struct NitTs {
  std::uint16_t ts_id = 0;
  std::uint16_t original_network_id = 0;
  std::map<std::uint16_t, std::uint16_t> lcn;  // service_id -> LCN
};

}  // namespace

struct PsiDecoder::Impl {
  // One program of the PAT with its PMT decoder. Heap-allocated so the pointer handed to
  // libdvbpsi as callback data stays valid while the vector changes.
  struct PmtSlot {
    Impl* owner = nullptr;
    std::uint16_t program_number = 0;
    std::uint16_t pid = 0;
    dvbpsi_t* handle = nullptr;
    Service service;  // pmt fields only (has_pmt, pmt_version, pcr, descriptors, streams)
  };

  std::array<std::uint8_t, kPidCount> flags{};

  // Table repetitions. A muxer repeats each table as a run of packets: one whose payload
  // starts with a section (payload_unit_start, pointer_field 0) and the packets that
  // continue it, up to the next such packet. A run byte for byte like one libdvbpsi was
  // already shown carries nothing new, and libdvbpsi allocates (and checks the CRC of)
  // every section it is given, so it does not see such a run. Each PID remembers its last
  // kRunsPerPid runs (several tables may take turns on one PID: SDT actual and other, BAT;
  // the least recently matched is replaced) as hashes of their packets' payloads, up to
  // kRunPackets packets; longer runs are always fed. A run's first packet picks a
  // remembered run, and its packets are skipped as long as each matches; the first that
  // does not is fed, and that remembered run is forgotten, so the next repetition is fed
  // whole. A changed table changes the run's
  // first packet (every section header holds the version_number), so a change is
  // normally fed at once. Only the newest run of each section (table_id, extension,
  // section_number of the run's first section) is remembered: a table that goes back to
  // an older version's bytes (a wrapped version_number, two muxers taking turns) is fed
  // again, as libdvbpsi would take it.
  //
  // libdvbpsi is shown its own continuity counter: one more per packet it is given, so
  // skipped packets never look like a loss to it, and two where the stream lost packets
  // since the last packet it was given. That discontinuity makes libdvbpsi drop what it
  // had collected of the table (a partial section, the other sections of a table of
  // several), so then every remembered run of the PID is forgotten too: all of the table
  // is fed again. As long as nothing is fed, a loss costs nothing: a CC error on a PSI PID,
  // or an input that loops, is free once its tables are known. After a loss, packets that
  // start no section are not fed until one that does (libdvbpsi would drop them), so an
  // input that loops in the middle of a table does not make it feed everything again. A
  // packet with the CC of the one before is a duplicate only with the same payload;
  // otherwise it is a loss (a stuck counter). A new PMT decoder (a program joins the PAT)
  // forgets its PID's runs as well: it has seen none of them.
  static constexpr std::size_t kRunPackets = 8;
  static constexpr std::size_t kRunsPerPid = 8;
  struct Run {
    std::uint8_t n = 0;  // packets; 0: nothing remembered
    std::uint32_t section = 0;  // the first section's table_id, extension, section_number
    std::uint32_t used = 0;     // when it was last recorded or matched (Repeat::clock)
    std::array<std::uint64_t, kRunPackets> hash{};
  };
  struct Repeat {
    enum class Mode : std::uint8_t { kFeed, kRecord, kSkip };
    std::uint16_t pid = kNullPid;
    std::uint8_t last_cc = 0xFF;  // the stream's CC of the last packet on this PID
    std::uint8_t fed_cc = 0;      // the CC libdvbpsi saw last
    Mode mode = Mode::kFeed;      // what the current run does
    bool gap = false;             // the stream lost packets since the last one fed
    std::uint8_t run = 0;         // the remembered run being recorded or followed
    std::uint8_t at = 0;          // packets of the current run so far
    std::uint32_t clock = 0;      // counts run starts (for Run::used)
    std::uint64_t last_hash = 0;  // payload hash of the last packet on this PID
    std::array<Run, kRunsPerPid> runs{};
  };
  // One slot per PSI PID: 64 to start with, more when the PAT names more PMT PIDs (grown
  // where the PMT decoders are made, which allocates anyway); repeat_of[pid] finds it.
  static constexpr std::size_t kRepeatSlots = 64;
  static constexpr std::uint16_t kNoRepeat = 0xFFFF;
  std::vector<Repeat> repeats;
  std::array<std::uint16_t, kPidCount> repeat_of{};
  // Decides whether the packet goes to libdvbpsi; when it does, sets its CC in `bytes`.
  bool feed_repeat(Repeat& r, const TsPacket& packet, std::span<const std::uint8_t> payload,
                   std::array<std::uint8_t, kPacketSize>& bytes);
  Repeat* repeat_slot(std::uint16_t pid) {
    if (const std::uint16_t i = repeat_of[pid]; i != kNoRepeat) return &repeats[i];
    for (std::size_t i = 0; i < repeats.size(); ++i) {
      if (repeats[i].pid != kNullPid) continue;
      repeats[i].pid = pid;
      repeat_of[pid] = static_cast<std::uint16_t>(i);
      return &repeats[i];
    }
    return nullptr;  // all taken: such PIDs are always fed
  }

  dvbpsi_t* pat = nullptr;
  dvbpsi_t* cat = nullptr;
  dvbpsi_t* nit = nullptr;
  dvbpsi_t* sdt = nullptr;
  // EIT is counted, not decoded: nothing here uses its content, and libdvbpsi would
  // allocate for every EIT section (a broadcast multiplex carries many a second).
  struct EitCounter final : SectionHandler {
    std::uint64_t* sections = nullptr;
    SectionHandler* forward = nullptr;  // set_eit_handler()
    void on_section(std::uint16_t pid, std::span<const std::uint8_t> section, bool crc_ok) override {
      if (!crc_ok || section.empty() || section[0] < 0x4E || section[0] > 0x6F) return;
      ++*sections;
      if (forward != nullptr) forward->on_section(pid, section, crc_ok);
    }
  };
  SectionAssembler eit_assembler;
  EitCounter eit_counter;
  std::vector<std::unique_ptr<PmtSlot>> pmts;

  // What the tables said.
  bool has_pat = false;
  std::uint8_t pat_version = 0;
  std::uint16_t ts_id = 0;
  std::vector<PatEntryRaw> programs;  // PAT order, program 0 excluded, duplicates removed

  bool has_cat = false;
  std::uint8_t cat_version = 0;
  std::vector<std::uint16_t> ca_pids;
  std::vector<Descriptor> cat_descriptors;

  bool has_sdt = false;
  std::uint8_t sdt_version = 0;
  std::uint16_t sdt_ts_id = 0;
  std::uint16_t sdt_onid = 0;
  std::map<std::uint16_t, SdtEntry> sdt_services;

  bool has_nit = false;
  std::uint8_t nit_version = 0;
  std::uint16_t network_id = 0;
  std::string network_name;
  std::vector<NitTs> nit_ts;

  bool dirty = false;
  ProgramModel model;
  std::uint64_t generation = 0;
  Stats stats;

  Impl() {
    eit_counter.sections = &stats.eit;
    open();
  }
  ~Impl() { close(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void open();
  void close();
  bool push(const TsPacket& packet, std::uint16_t pid, std::uint8_t f);
  void rebuild_model();
  void sync_pmt_decoders();
  void refresh_pmt_flags();

  static void on_pat(void* data, dvbpsi_pat_t* pat);
  static void on_pmt(void* data, dvbpsi_pmt_t* pmt);
  static void on_cat(void* data, dvbpsi_cat_t* cat);
  static void on_sdt(void* data, dvbpsi_sdt_t* sdt);
  static void on_nit(void* data, dvbpsi_nit_t* nit);
  static void on_new_si_table(dvbpsi_t* handle, std::uint8_t table_id, std::uint16_t extension, void* data);

  bool sdt_attached = false;
  std::uint16_t sdt_attached_ext = 0;
  bool nit_attached = false;
  std::uint16_t nit_attached_ext = 0;
};

namespace {

dvbpsi_t* new_handle() {
  dvbpsi_t* h = dvbpsi_new(nullptr, DVBPSI_MSG_NONE);
  if (h == nullptr) throw std::bad_alloc();
  return h;
}

void delete_demux_handle(dvbpsi_t*& h) {
  if (h == nullptr) return;
  if (dvbpsi_decoder_present(h)) dvbpsi_DetachDemux(h);
  dvbpsi_delete(h);
  h = nullptr;
}

}  // namespace

void PsiDecoder::Impl::open() {
  pat = new_handle();
  cat = new_handle();
  nit = new_handle();
  sdt = new_handle();
  if (!dvbpsi_pat_attach(pat, &Impl::on_pat, this) || !dvbpsi_cat_attach(cat, &Impl::on_cat, this) ||
      !dvbpsi_AttachDemux(nit, &Impl::on_new_si_table, this) ||
      !dvbpsi_AttachDemux(sdt, &Impl::on_new_si_table, this)) {
    close();
    throw std::bad_alloc();
  }
  flags.fill(0);
  repeats.assign(std::max(repeats.size(), kRepeatSlots), Repeat{});
  repeat_of.fill(kNoRepeat);
  flags[kPatPid] |= kFlagPat;
  flags[kCatPid] |= kFlagCat;
  flags[kNitPid] |= kFlagNit;
  flags[kSdtPid] |= kFlagSdt;
  flags[kEitPid] |= kFlagEit;
}

void PsiDecoder::Impl::close() {
  for (auto& slot : pmts) {
    if (dvbpsi_decoder_present(slot->handle)) dvbpsi_pmt_detach(slot->handle);
    dvbpsi_delete(slot->handle);
  }
  pmts.clear();
  if (pat != nullptr) {
    if (dvbpsi_decoder_present(pat)) dvbpsi_pat_detach(pat);
    dvbpsi_delete(pat);
    pat = nullptr;
  }
  if (cat != nullptr) {
    if (dvbpsi_decoder_present(cat)) dvbpsi_cat_detach(cat);
    dvbpsi_delete(cat);
    cat = nullptr;
  }
  delete_demux_handle(nit);
  delete_demux_handle(sdt);
  sdt_attached = false;
  nit_attached = false;
  eit_assembler.reset();
}

// --- libdvbpsi callbacks (they own the table they receive) ---

void PsiDecoder::Impl::on_pat(void* data, dvbpsi_pat_t* p) {
  auto* self = static_cast<Impl*>(data);
  if (!p->b_current_next) {  // the next table, not yet valid (13818-1 2.4.4.5): libdvbpsi hands it over too
    dvbpsi_pat_delete(p);
    return;
  }
  ++self->stats.pat;
  if (self->has_pat && self->pat_version != p->i_version) ++self->stats.version_changes;
  self->has_pat = true;
  self->pat_version = p->i_version;
  self->ts_id = p->i_ts_id;
  self->programs.clear();
  for (const dvbpsi_pat_program_t* prog = p->p_first_program; prog != nullptr; prog = prog->p_next) {
    if (prog->i_number == 0) continue;  // network_PID entry
    const bool seen = std::any_of(self->programs.begin(), self->programs.end(),
                                  [&](const PatEntryRaw& e) { return e.program_number == prog->i_number; });
    if (!seen) self->programs.push_back({prog->i_number, static_cast<std::uint16_t>(prog->i_pid & 0x1FFF)});
  }
  dvbpsi_pat_delete(p);
  self->sync_pmt_decoders();
  self->dirty = true;
}

// Detaches the PMT decoders of programs that left the PAT (or moved PID), attaches new ones.
void PsiDecoder::Impl::sync_pmt_decoders() {
  std::erase_if(pmts, [&](const std::unique_ptr<PmtSlot>& slot) {
    const bool keep = std::any_of(programs.begin(), programs.end(), [&](const PatEntryRaw& e) {
      return e.program_number == slot->program_number && e.pid == slot->pid;
    });
    if (keep) return false;
    dvbpsi_pmt_detach(slot->handle);
    dvbpsi_delete(slot->handle);
    return true;
  });
  for (const auto& e : programs) {
    if (pmts.size() >= kMaxPmtDecoders) break;
    const bool have = std::any_of(pmts.begin(), pmts.end(), [&](const std::unique_ptr<PmtSlot>& s) {
      return s->program_number == e.program_number;
    });
    if (have) continue;
    auto slot = std::make_unique<PmtSlot>();
    slot->owner = this;
    slot->program_number = e.program_number;
    slot->pid = e.pid;
    slot->handle = dvbpsi_new(nullptr, DVBPSI_MSG_NONE);
    if (slot->handle == nullptr) break;
    if (!dvbpsi_pmt_attach(slot->handle, e.program_number, &Impl::on_pmt, slot.get())) {
      dvbpsi_delete(slot->handle);
      break;
    }
    // The new decoder has seen none of what the PID repeats: feed it all again.
    if (const std::uint16_t i = repeat_of[e.pid]; i != kNoRepeat) {
      for (Run& run : repeats[i].runs) run.n = 0;
      repeats[i].mode = Repeat::Mode::kFeed;
    }
    pmts.push_back(std::move(slot));
  }
  // A slot for every PSI PID: the fixed ones and each PMT PID (a few spare).
  if (const std::size_t want = 8 + pmts.size(); repeats.size() < want) repeats.resize(want);
  refresh_pmt_flags();
}

void PsiDecoder::Impl::refresh_pmt_flags() {
  for (auto& f : flags) f = static_cast<std::uint8_t>(f & ~kFlagPmt);
  for (const auto& slot : pmts) flags[slot->pid] |= kFlagPmt;
  // PIDs that carry no PSI any more give their repetition slot back.
  for (Repeat& r : repeats) {
    if (r.pid == kNullPid || flags[r.pid] != 0) continue;
    repeat_of[r.pid] = kNoRepeat;
    r = Repeat{};
  }
}

void PsiDecoder::Impl::on_pmt(void* data, dvbpsi_pmt_t* p) {
  auto* slot = static_cast<PmtSlot*>(data);
  Impl* self = slot->owner;
  if (!p->b_current_next) {  // not yet valid, as for the PAT
    dvbpsi_pmt_delete(p);
    return;
  }
  ++self->stats.pmt;
  Service& s = slot->service;
  if (s.has_pmt && s.pmt_version != p->i_version) ++self->stats.version_changes;
  s.has_pmt = true;
  s.pmt_version = p->i_version;
  s.pcr_pid = static_cast<std::uint16_t>(p->i_pcr_pid & 0x1FFF);
  s.program_descriptors = to_descriptors(p->p_first_descriptor);
  s.streams.clear();
  for (const dvbpsi_pmt_es_t* es = p->p_first_es; es != nullptr; es = es->p_next) {
    ElementaryStream e;
    e.pid = static_cast<std::uint16_t>(es->i_pid & 0x1FFF);
    e.stream_type = es->i_type;
    e.descriptors = to_descriptors(es->p_first_descriptor);
    e.codec = codec_from_stream(e.stream_type, e.descriptors);
    e.language = iso639_language(e.descriptors);
    s.streams.push_back(std::move(e));
  }
  dvbpsi_pmt_delete(p);
  self->dirty = true;
}

void PsiDecoder::Impl::on_cat(void* data, dvbpsi_cat_t* p) {
  auto* self = static_cast<Impl*>(data);
  if (!p->b_current_next) {  // not yet valid, as for the PAT
    dvbpsi_cat_delete(p);
    return;
  }
  ++self->stats.cat;
  if (self->has_cat && self->cat_version != p->i_version) ++self->stats.version_changes;
  self->has_cat = true;
  self->cat_version = p->i_version;
  self->ca_pids.clear();
  self->cat_descriptors = to_descriptors(p->p_first_descriptor);
  for (const dvbpsi_descriptor_t* d = p->p_first_descriptor; d != nullptr; d = d->p_next) {
    if (d->i_tag != 0x09 || d->i_length < 4 || d->p_data == nullptr) continue;
    const auto pid = static_cast<std::uint16_t>(((d->p_data[2] & 0x1F) << 8) | d->p_data[3]);
    if (std::find(self->ca_pids.begin(), self->ca_pids.end(), pid) == self->ca_pids.end())
      self->ca_pids.push_back(pid);
  }
  dvbpsi_cat_delete(p);
  self->dirty = true;
}

void PsiDecoder::Impl::on_sdt(void* data, dvbpsi_sdt_t* p) {
  auto* self = static_cast<Impl*>(data);
  if (!p->b_current_next) {  // not yet valid, as for the PAT
    dvbpsi_sdt_delete(p);
    return;
  }
  ++self->stats.sdt;
  if (self->has_sdt && self->sdt_version != p->i_version) ++self->stats.version_changes;
  self->has_sdt = true;
  self->sdt_version = p->i_version;
  self->sdt_ts_id = p->i_extension;
  self->sdt_onid = p->i_network_id;
  self->sdt_services.clear();
  for (const dvbpsi_sdt_service_t* s = p->p_first_service; s != nullptr; s = s->p_next) {
    SdtEntry entry;
    for (const dvbpsi_descriptor_t* d = s->p_first_descriptor; d != nullptr; d = d->p_next) {
      if (d->i_tag != 0x48 || d->p_data == nullptr) continue;
      // service_type, provider_name_length, provider_name, service_name_length, service_name
      const std::uint8_t* b = d->p_data;
      const std::size_t n = d->i_length;
      if (n < 2) continue;
      const std::size_t provider_len = b[1];
      if (2 + provider_len + 1 > n) continue;
      const std::size_t name_len = b[2 + provider_len];
      if (3 + provider_len + name_len > n) continue;
      entry.service_type = b[0];
      entry.provider = dvb_text(b + 2, provider_len);
      entry.name = dvb_text(b + 3 + provider_len, name_len);
      break;
    }
    self->sdt_services.insert_or_assign(s->i_service_id, std::move(entry));
  }
  dvbpsi_sdt_delete(p);
  self->dirty = true;
}

void PsiDecoder::Impl::on_nit(void* data, dvbpsi_nit_t* p) {
  auto* self = static_cast<Impl*>(data);
  if (!p->b_current_next) {  // not yet valid, as for the PAT
    dvbpsi_nit_delete(p);
    return;
  }
  ++self->stats.nit;
  if (self->has_nit && self->nit_version != p->i_version) ++self->stats.version_changes;
  self->has_nit = true;
  self->nit_version = p->i_version;
  self->network_id = p->i_network_id;
  self->network_name.clear();
  for (const dvbpsi_descriptor_t* d = p->p_first_descriptor; d != nullptr; d = d->p_next) {
    if (d->i_tag == 0x40 && d->p_data != nullptr) {
      self->network_name = dvb_text(d->p_data, d->i_length);
      break;
    }
  }
  self->nit_ts.clear();
  for (const dvbpsi_nit_ts_t* ts = p->p_first_ts; ts != nullptr; ts = ts->p_next) {
    // A transport stream described over several sections appears once per section: one entry.
    auto same = std::find_if(self->nit_ts.begin(), self->nit_ts.end(), [&](const NitTs& e) {
      return e.ts_id == ts->i_ts_id && e.original_network_id == ts->i_orig_network_id;
    });
    if (same == self->nit_ts.end()) {
      self->nit_ts.emplace_back();
      same = std::prev(self->nit_ts.end());
    }
    NitTs& t = *same;
    t.ts_id = ts->i_ts_id;
    t.original_network_id = ts->i_orig_network_id;
    for (const dvbpsi_descriptor_t* d = ts->p_first_descriptor; d != nullptr; d = d->p_next) {
      if (d->i_tag != 0x83 || d->p_data == nullptr) continue;
      // EICTA logical_channel_descriptor: service_id 16, visible 1, reserved 5, LCN 10.
      for (std::size_t i = 0; i + 4 <= d->i_length; i += 4) {
        const auto sid = static_cast<std::uint16_t>((d->p_data[i] << 8) | d->p_data[i + 1]);
        const auto lcn = static_cast<std::uint16_t>(((d->p_data[i + 2] & 0x03) << 8) | d->p_data[i + 3]);
        t.lcn.insert_or_assign(sid, lcn);
      }
    }
  }
  dvbpsi_nit_delete(p);
  self->dirty = true;
}

// A subtable appeared on the NIT or SDT PID. One decoder per table is kept: a new
// extension (another network_id or transport_stream_id) replaces the previous one.
void PsiDecoder::Impl::on_new_si_table(dvbpsi_t* handle, std::uint8_t table_id, std::uint16_t extension,
                                       void* data) {
  auto* self = static_cast<Impl*>(data);
  if (table_id == 0x42 && handle == self->sdt) {
    if (self->sdt_attached) dvbpsi_sdt_detach(handle, 0x42, self->sdt_attached_ext);
    self->sdt_attached = dvbpsi_sdt_attach(handle, 0x42, extension, &Impl::on_sdt, self);
    self->sdt_attached_ext = extension;
  } else if (table_id == 0x40 && handle == self->nit) {
    if (self->nit_attached) dvbpsi_nit_detach(handle, 0x40, self->nit_attached_ext);
    self->nit_attached = dvbpsi_nit_attach(handle, 0x40, extension, &Impl::on_nit, self);
    self->nit_attached_ext = extension;
  }
}

// --- packets ---

bool PsiDecoder::Impl::feed_repeat(Repeat& r, const TsPacket& packet, std::span<const std::uint8_t> payload,
                                   std::array<std::uint8_t, kPacketSize>& bytes) {
  const std::uint8_t cc = packet.cc();
  const std::uint64_t h = payload_hash(payload);
  const bool seen_before = r.last_cc != 0xFF;
  const bool duplicate = seen_before && cc == r.last_cc && h == r.last_hash;
  const bool continuous = !seen_before || cc == ((r.last_cc + 1) & 0x0F);
  r.last_cc = cc;
  r.last_hash = h;
  if (duplicate) return false;  // a repeated packet (13818-1 2.4.3.3): libdvbpsi had it or skipped it
  if (!continuous) r.gap = true;
  const bool starts = packet.payload_unit_start() && payload[0] == 0;
  bool feed = true;
  if (starts) {
    if (r.mode == Repeat::Mode::kRecord) r.runs[r.run].n = r.at;  // the recorded run is complete
    r.mode = Repeat::Mode::kRecord;
    ++r.clock;
    for (std::uint8_t k = 0; k < kRunsPerPid; ++k) {
      if (r.runs[k].n != 0 && r.runs[k].hash[0] == h) {
        r.mode = Repeat::Mode::kSkip;
        r.run = k;
        r.runs[k].used = r.clock;
        feed = false;
        break;
      }
    }
    if (r.mode == Repeat::Mode::kRecord) {
      const std::uint32_t section = section_key(payload);
      std::uint8_t victim = 0;
      for (std::uint8_t k = 0; k < kRunsPerPid; ++k) {
        Run& old = r.runs[k];
        if (old.section == section) old.n = 0;  // an older version of this section
        if (old.n == 0 || (r.runs[victim].n != 0 && old.used < r.runs[victim].used)) victim = k;
      }
      r.run = victim;
      r.runs[r.run].n = 0;  // filled in when the run is complete
      r.runs[r.run].section = section;
      r.runs[r.run].used = r.clock;
      r.runs[r.run].hash[0] = h;
    }
    r.at = 1;
  } else if (r.mode == Repeat::Mode::kSkip) {
    Run& run = r.runs[r.run];
    if (!continuous) {
      r.mode = Repeat::Mode::kFeed;  // lost our place in the run (not a sign it changed)
    } else if (r.at < run.n && run.hash[r.at] == h) {
      ++r.at;
      feed = false;
    } else {
      run.n = 0;  // not what it was: forget it, so the next repetition is fed whole
      r.mode = Repeat::Mode::kFeed;
    }
  } else if (r.mode == Repeat::Mode::kRecord) {
    if (continuous && r.at < kRunPackets) {
      r.runs[r.run].hash[r.at++] = h;
    } else {
      r.mode = Repeat::Mode::kFeed;  // a loss inside the run, or a run too long to remember
    }
  }
  if (!feed) {
    ++stats.repeats_skipped;
    return false;
  }
  if (r.gap && !packet.payload_unit_start()) {
    // After a loss: the rest of a section that libdvbpsi could not complete anyway.
    if (r.mode == Repeat::Mode::kRecord) r.mode = Repeat::Mode::kFeed;
    return false;
  }
  if (r.gap) {
    for (std::uint8_t k = 0; k < kRunsPerPid; ++k)
      if (r.mode != Repeat::Mode::kRecord || k != r.run) r.runs[k].n = 0;
  }
  r.fed_cc = static_cast<std::uint8_t>((r.fed_cc + (r.gap ? 2 : 1)) & 0x0F);
  r.gap = false;
  bytes[3] = static_cast<std::uint8_t>((bytes[3] & 0xF0) | r.fed_cc);
  return true;
}

bool PsiDecoder::Impl::push(const TsPacket& packet, std::uint16_t pid, std::uint8_t f) {
  // libdvbpsi trusts the adaptation_field_length and the pointer_field; check them here so
  // it never reads past the packet. A packet refused here looks like a CC gap to libdvbpsi,
  // which then drops its partial section, as it should.
  if (!packet.has_sync() || packet.transport_error() || !packet.has_payload() || packet.adaptation_overflows())
    return false;
  const auto payload = packet.payload();
  if (payload.empty()) return false;
  if (packet.payload_unit_start() && std::size_t{payload[0]} + 1 > payload.size()) return false;

  if ((f & kFlagEit) != 0) {
    eit_assembler.push(packet, eit_counter);
    if ((f & ~kFlagEit) == 0) return false;
  }
  // libdvbpsi takes a non-const pointer; give it a copy.
  std::array<std::uint8_t, kPacketSize> bytes = packet.bytes;
  if (Repeat* r = repeat_slot(pid); r != nullptr && !feed_repeat(*r, packet, payload, bytes)) return false;
  if ((f & kFlagPat) != 0) dvbpsi_packet_push(pat, bytes.data());
  if ((f & kFlagCat) != 0) dvbpsi_packet_push(cat, bytes.data());
  if ((f & kFlagNit) != 0) dvbpsi_packet_push(nit, bytes.data());
  if ((f & kFlagSdt) != 0) dvbpsi_packet_push(sdt, bytes.data());
  // The PAT may just have changed the PMT PIDs: look at the flags again.
  if ((flags[pid] & kFlagPmt) != 0) {
    for (const auto& slot : pmts)
      if (slot->pid == pid) dvbpsi_packet_push(slot->handle, bytes.data());
  }
  if (!dirty) return false;
  dirty = false;
  const std::uint64_t before = generation;
  rebuild_model();
  return generation != before;
}

void PsiDecoder::Impl::rebuild_model() {
  ProgramModel m;
  m.has_pat = has_pat;
  m.pat_version = pat_version;
  m.transport_stream_id = has_pat ? ts_id : sdt_ts_id;
  m.network_id = network_id;
  m.network_name = network_name;
  m.has_cat = has_cat;
  m.cat_descriptors = cat_descriptors;
  m.ca_pids = ca_pids;

  // The NIT transport stream entry describing this TS, if any. A TS is named by its
  // original_network_id and transport_stream_id together (EN 300 468): with an SDT, its
  // original_network_id picks among entries of the same transport_stream_id.
  const NitTs* ours = nullptr;
  for (const auto& t : nit_ts) {
    if (has_pat && t.ts_id != ts_id) continue;
    if (has_sdt && t.original_network_id == sdt_onid) {
      ours = &t;
      break;
    }
    if (ours == nullptr) ours = &t;
  }
  if (has_sdt) m.original_network_id = sdt_onid;
  else if (ours != nullptr) m.original_network_id = ours->original_network_id;

  m.services.reserve(programs.size());
  for (const auto& e : programs) {
    Service s;
    for (const auto& slot : pmts) {
      if (slot->program_number == e.program_number && slot->pid == e.pid) {
        s = slot->service;
        break;
      }
    }
    s.service_id = e.program_number;
    s.pmt_pid = e.pid;
    if (auto it = sdt_services.find(e.program_number); it != sdt_services.end()) {
      s.name = it->second.name;
      s.provider = it->second.provider;
      s.service_type = it->second.service_type;
    }
    if (ours != nullptr) {
      if (auto it = ours->lcn.find(e.program_number); it != ours->lcn.end()) s.lcn = it->second;
    }
    m.services.push_back(std::move(s));
  }

  if (m != model) {
    model = std::move(m);
    ++generation;
    ++stats.model_changes;
  }
}

// --- public ---

PsiDecoder::PsiDecoder() : impl_(std::make_unique<Impl>()) {}
PsiDecoder::~PsiDecoder() = default;

bool PsiDecoder::push(const TsPacket& packet) {
  const std::uint16_t pid = packet.pid();
  const std::uint8_t f = impl_->flags[pid];
  if (f == 0) return false;  // not PSI: one load and a branch
  return impl_->push(packet, pid, f);
}

bool PsiDecoder::is_psi_pid(std::uint16_t pid) const { return pid < kPidCount && impl_->flags[pid] != 0; }

void PsiDecoder::set_eit_handler(SectionHandler* handler) { impl_->eit_counter.forward = handler; }

const ProgramModel& PsiDecoder::model() const { return impl_->model; }
std::uint64_t PsiDecoder::generation() const { return impl_->generation; }
const PsiDecoder::Stats& PsiDecoder::stats() const { return impl_->stats; }

void PsiDecoder::reset() {
  Impl& d = *impl_;
  d.close();
  d.has_pat = false;
  d.pat_version = 0;
  d.ts_id = 0;
  d.programs.clear();
  d.has_cat = false;
  d.cat_version = 0;
  d.ca_pids.clear();
  d.cat_descriptors.clear();
  d.has_sdt = false;
  d.sdt_version = 0;
  d.sdt_ts_id = 0;
  d.sdt_onid = 0;
  d.sdt_services.clear();
  d.has_nit = false;
  d.nit_version = 0;
  d.network_id = 0;
  d.network_name.clear();
  d.nit_ts.clear();
  d.dirty = false;
  d.open();
  d.rebuild_model();
}

}  // namespace twincast::mpegts
