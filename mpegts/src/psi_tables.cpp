// PSI/SI generation with libdvbpsi and the table carousel that carries it.
#include "twincast/mpegts/psi_tables.hpp"

#include <algorithm>
#include <stdexcept>

// libdvbpsi's headers are C and must come in this order (dvbpsi.h first).
#include <dvbpsi/dvbpsi.h>
#include <dvbpsi/psi.h>
#include <dvbpsi/descriptor.h>
#include <dvbpsi/demux.h>
#include <dvbpsi/pat.h>
#include <dvbpsi/cat.h>
#include <dvbpsi/pmt.h>
#include <dvbpsi/sdt.h>
#include <dvbpsi/nit.h>

#include "twincast/mpegts/crc32.hpp"

namespace twincast::mpegts {

namespace {

constexpr std::size_t kMaxDescriptorBody = 255;
constexpr std::size_t kMaxPsiSection = 1024;  // 3 + section_length 1021 (PAT, PMT, SDT, NIT)

// A dvbpsi handle for the generators (they only use it to log, which is silenced).
class Handle {
 public:
  Handle() : h_(dvbpsi_new(nullptr, DVBPSI_MSG_NONE)) {
    if (h_ == nullptr) throw std::bad_alloc();
  }
  ~Handle() { dvbpsi_delete(h_); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  dvbpsi_t* get() const { return h_; }

 private:
  dvbpsi_t* h_;
};

// Copies libdvbpsi's section chain (p_data .. p_payload_end + CRC_32) and frees it.
std::vector<Section> take_sections(dvbpsi_psi_section_t* chain, const char* table) {
  std::vector<Section> out;
  bool ok = true;
  for (const dvbpsi_psi_section_t* s = chain; s != nullptr; s = s->p_next) {
    const std::ptrdiff_t len = (s->p_payload_end + 4) - s->p_data;
    if (len < 12 || static_cast<std::size_t>(len) > kMaxPsiSection) {
      ok = false;
      break;
    }
    out.emplace_back(s->p_data, s->p_data + len);
    const Section& sec = out.back();
    const std::size_t declared = 3 + ((std::size_t{sec[1] & 0x0FU} << 8) | sec[2]);
    if (declared != sec.size() || !section_crc_ok(sec)) ok = false;
  }
  dvbpsi_DeletePSISections(chain);
  if (!ok || out.empty()) throw std::length_error(std::string("cannot generate ") + table + ": content too large");
  return out;
}

// libdvbpsi copies descriptor bodies but takes them through a non-const pointer.
std::uint8_t* body(const std::vector<std::uint8_t>& data) {
  static std::uint8_t empty = 0;
  return data.empty() ? &empty : const_cast<std::uint8_t*>(data.data());
}

void check_descriptor(const Descriptor& d) {
  if (d.data.size() > kMaxDescriptorBody) throw std::length_error("descriptor longer than 255 bytes");
}

bool has_tag(const std::vector<Descriptor>& ds, std::uint8_t tag) {
  return std::any_of(ds.begin(), ds.end(), [tag](const Descriptor& d) { return d.tag == tag; });
}

// build_pmt writes an ISO_639_language_descriptor (0x0A) for a stream's language unless it
// carries one.
bool adds_language(const ElementaryStream& es) { return es.language.size() == 3 && !has_tag(es.descriptors, 0x0A); }

// A DVB text field: plain bytes when ASCII, else UTF-8 behind the 0x15 selector (EN 300 468 Annex A).
std::vector<std::uint8_t> dvb_text(const std::string& s) {
  const bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  std::vector<std::uint8_t> out;
  out.reserve(s.size() + 1);
  if (!ascii) out.push_back(0x15);
  for (const char c : s) out.push_back(static_cast<std::uint8_t>(c));
  return out;
}

// Cuts a dvb_text() field to at most `max` bytes, between two UTF-8 characters when it is
// UTF-8 (a continuation byte is never the first one dropped).
void cut_text(std::vector<std::uint8_t>& text, std::size_t max) {
  if (text.size() <= max) return;
  std::size_t n = max;
  if (!text.empty() && text[0] == 0x15)
    while (n > 1 && (text[n] & 0xC0) == 0x80) --n;
  text.resize(n);
}

// What one generated section may hold, kept below the 1024 bytes where libdvbpsi's
// generators start a new section: they then drop what does not fit (SDT services lose
// their descriptors, NIT transport streams lose descriptors) instead of moving it.
constexpr std::size_t kSectionBudget = 1000;

// Sections generated one table part at a time become one table: section_number,
// last_section_number and CRC_32 rewritten.
void number_sections(std::vector<Section>& sections) {
  const auto last = static_cast<std::uint8_t>(sections.size() - 1);
  for (std::size_t i = 0; i < sections.size(); ++i) {
    Section& s = sections[i];
    s[6] = static_cast<std::uint8_t>(i);
    s[7] = last;
    const std::uint32_t crc = crc32_mpeg(std::span<const std::uint8_t>(s.data(), s.size() - 4));
    for (std::size_t k = 0; k < 4; ++k) s[s.size() - 4 + k] = static_cast<std::uint8_t>(crc >> (24 - 8 * k));
  }
}

}  // namespace

std::vector<Section> build_pat(std::uint16_t transport_stream_id, const std::vector<PatEntry>& programs,
                               std::uint8_t version) {
  Handle h;
  dvbpsi_pat_t pat;
  dvbpsi_pat_init(&pat, transport_stream_id, static_cast<std::uint8_t>(version & 0x1F), true);
  for (const auto& p : programs) {
    if (dvbpsi_pat_program_add(&pat, p.program_number, static_cast<std::uint16_t>(p.pid & 0x1FFF)) == nullptr) {
      dvbpsi_pat_empty(&pat);
      throw std::bad_alloc();
    }
  }
  // 253 programs fill a section: (1021 - 5 - 4) / 4.
  dvbpsi_psi_section_t* chain = dvbpsi_pat_sections_generate(h.get(), &pat, 253);
  dvbpsi_pat_empty(&pat);
  return take_sections(chain, "PAT");
}

std::size_t pmt_stream_bytes(const ElementaryStream& es) {
  std::size_t bytes = 5 + (adds_language(es) ? std::size_t{2 + 4} : 0);
  for (const auto& d : es.descriptors) bytes += pmt_descriptor_bytes(d);
  return bytes;
}

std::vector<Section> build_pmt(const Service& service, std::uint8_t version) {
  // Measured before libdvbpsi's generator, which drops the ES descriptors that do not fit
  // and writes descriptor-less ESs past its 1024 bytes.
  std::size_t bytes = kPmtFixedBytes;
  for (const auto& d : service.program_descriptors) bytes += pmt_descriptor_bytes(d);
  for (const auto& es : service.streams) bytes += pmt_stream_bytes(es);
  if (bytes > kMaxPmtBytes) throw std::length_error("cannot generate PMT: more than one section");
  Handle h;
  dvbpsi_pmt_t pmt;
  dvbpsi_pmt_init(&pmt, service.service_id, static_cast<std::uint8_t>(version & 0x1F), true,
                  static_cast<std::uint16_t>(service.pcr_pid & 0x1FFF));
  try {
    for (const auto& d : service.program_descriptors) {
      check_descriptor(d);
      dvbpsi_pmt_descriptor_add(&pmt, d.tag, static_cast<std::uint8_t>(d.data.size()), body(d.data));
    }
    for (const auto& es : service.streams) {
      dvbpsi_pmt_es_t* e = dvbpsi_pmt_es_add(&pmt, es.stream_type, static_cast<std::uint16_t>(es.pid & 0x1FFF));
      if (e == nullptr) throw std::bad_alloc();
      // A language without its ISO 639 descriptor gets one (audio_type 0, undefined).
      if (adds_language(es)) {
        std::vector<std::uint8_t> lang(es.language.begin(), es.language.end());
        lang.push_back(0);
        dvbpsi_pmt_es_descriptor_add(e, 0x0A, 4, lang.data());
      }
      for (const auto& d : es.descriptors) {
        check_descriptor(d);
        dvbpsi_pmt_es_descriptor_add(e, d.tag, static_cast<std::uint8_t>(d.data.size()), body(d.data));
      }
    }
  } catch (...) {
    dvbpsi_pmt_empty(&pmt);
    throw;
  }
  dvbpsi_psi_section_t* chain = dvbpsi_pmt_sections_generate(h.get(), &pmt);
  dvbpsi_pmt_empty(&pmt);
  auto sections = take_sections(chain, "PMT");
  if (sections.size() != 1) throw std::length_error("cannot generate PMT: more than one section");
  return sections;
}

std::vector<Section> build_cat(const std::vector<Descriptor>& descriptors, std::uint8_t version) {
  std::size_t bytes = 0;
  for (const auto& d : descriptors) {
    check_descriptor(d);
    bytes += 2 + d.data.size();
  }
  if (bytes > kCatDescriptorBudget) throw std::length_error("cannot generate CAT: more than one section");
  Handle h;
  dvbpsi_cat_t cat;
  dvbpsi_cat_init(&cat, static_cast<std::uint8_t>(version & 0x1F), true);
  for (const auto& d : descriptors) {
    if (dvbpsi_cat_descriptor_add(&cat, d.tag, static_cast<std::uint8_t>(d.data.size()), body(d.data)) == nullptr) {
      dvbpsi_cat_empty(&cat);
      throw std::bad_alloc();
    }
  }
  dvbpsi_psi_section_t* chain = dvbpsi_cat_sections_generate(h.get(), &cat);
  dvbpsi_cat_empty(&cat);
  auto sections = take_sections(chain, "CAT");
  if (sections.size() != 1) throw std::length_error("cannot generate CAT: more than one section");
  return sections;
}

std::vector<Section> build_sdt(std::uint16_t transport_stream_id, std::uint16_t original_network_id,
                               const std::vector<Service>& services, std::uint8_t version) {
  // service_descriptor body per service: service_type, provider length + text, name
  // length + text: at most 255 bytes in all.
  std::vector<std::vector<std::uint8_t>> bodies;
  bodies.reserve(services.size());
  for (const auto& s : services) {
    std::vector<std::uint8_t> provider = dvb_text(s.provider);
    std::vector<std::uint8_t> name = dvb_text(s.name);
    cut_text(provider, 126);
    cut_text(name, kMaxDescriptorBody - 3 - provider.size());
    std::vector<std::uint8_t> d;
    d.push_back(s.service_type);
    d.push_back(static_cast<std::uint8_t>(provider.size()));
    d.insert(d.end(), provider.begin(), provider.end());
    d.push_back(static_cast<std::uint8_t>(name.size()));
    d.insert(d.end(), name.begin(), name.end());
    bodies.push_back(std::move(d));
  }
  std::vector<Section> out;
  std::size_t i = 0;
  do {
    // One section's worth of services: header 11 bytes, CRC 4, each service 5 + descriptor.
    std::size_t end = i;
    std::size_t size = 11 + 4;
    while (end < services.size() && (end == i || size + 5 + 2 + bodies[end].size() <= kSectionBudget))
      size += 5 + 2 + bodies[end++].size();
    Handle h;
    dvbpsi_sdt_t sdt;
    dvbpsi_sdt_init(&sdt, 0x42, transport_stream_id, static_cast<std::uint8_t>(version & 0x1F), true,
                    original_network_id);
    for (std::size_t k = i; k < end; ++k) {
      // running_status 4 (running); free_CA_mode when the PMT has a CA_descriptor, program or
      // stream level (EN 300 468 5.2.3); EIT schedule and p/f as the service says.
      const Service& sv = services[k];
      const bool scrambled = has_tag(sv.program_descriptors, 0x09) ||
                             std::any_of(sv.streams.begin(), sv.streams.end(),
                                         [](const ElementaryStream& e) { return has_tag(e.descriptors, 0x09); });
      dvbpsi_sdt_service_t* srv = dvbpsi_sdt_service_add(&sdt, sv.service_id, sv.eit_schedule,
                                                         sv.eit_present_following, 4, scrambled);
      if (srv == nullptr) {
        dvbpsi_sdt_empty(&sdt);
        throw std::bad_alloc();
      }
      dvbpsi_sdt_service_descriptor_add(srv, 0x48, static_cast<std::uint8_t>(bodies[k].size()), bodies[k].data());
    }
    dvbpsi_psi_section_t* chain = dvbpsi_sdt_sections_generate(h.get(), &sdt);
    dvbpsi_sdt_empty(&sdt);
    for (auto& sec : take_sections(chain, "SDT")) out.push_back(std::move(sec));
    i = end;
  } while (i < services.size());
  if (out.size() > 256) throw std::length_error("cannot generate SDT: content too large");
  number_sections(out);
  return out;
}

std::vector<Section> build_nit(std::uint16_t network_id, const std::string& network_name,
                               std::uint16_t transport_stream_id, std::uint16_t original_network_id,
                               const std::vector<Service>& services, std::uint8_t version) {
  std::vector<std::uint8_t> name = dvb_text(network_name);
  cut_text(name, kMaxDescriptorBody);

  // The transport stream's descriptors. Both are loops of fixed-size entries; split them
  // at 255 bytes.
  std::vector<Descriptor> descriptors;
  const auto add_entries = [&](std::uint8_t tag, const std::vector<std::uint8_t>& entries, std::size_t entry) {
    const std::size_t per = kMaxDescriptorBody / entry * entry;
    for (std::size_t i = 0; i < entries.size(); i += per) {
      const std::size_t n = std::min(per, entries.size() - i);
      descriptors.push_back(Descriptor{tag, std::vector<std::uint8_t>(entries.begin() + static_cast<std::ptrdiff_t>(i),
                                                                      entries.begin() + static_cast<std::ptrdiff_t>(i + n))});
    }
  };
  std::vector<std::uint8_t> list;  // service_list_descriptor: service_id 16, service_type 8
  std::vector<std::uint8_t> lcns;  // logical_channel_descriptor: service_id 16, visible 1, reserved 5, LCN 10
  for (const auto& s : services) {
    list.push_back(static_cast<std::uint8_t>(s.service_id >> 8));
    list.push_back(static_cast<std::uint8_t>(s.service_id & 0xFF));
    list.push_back(s.service_type);
    if (s.lcn != 0) {
      lcns.push_back(static_cast<std::uint8_t>(s.service_id >> 8));
      lcns.push_back(static_cast<std::uint8_t>(s.service_id & 0xFF));
      lcns.push_back(static_cast<std::uint8_t>(0xFC | ((s.lcn >> 8) & 0x03)));
      lcns.push_back(static_cast<std::uint8_t>(s.lcn & 0xFF));
    }
  }
  add_entries(0x41, list, 3);
  add_entries(0x83, lcns, 4);
  // The specifier of the logical_channel_descriptor: EACEM (IEC 62216-1, TS 101 162).
  static const Descriptor kEacemPds{0x5F, {0x00, 0x00, 0x00, 0x28}};

  // Sections: the network name in the first, the transport stream in each with the
  // descriptors that fit (EN 300 468 lets a transport stream's description span sections).
  std::vector<Section> out;
  std::size_t i = 0;
  do {
    const bool first = out.empty();
    // Header 10, network descriptors, ts loop length 2, ts entry 6, CRC 4.
    std::size_t size = 10 + (first && !name.empty() ? 2 + name.size() : 0) + 2 + 6 + 4;
    // What this section's part of the transport stream loop carries, in order. 0x83 is a
    // private descriptor (EN 300 468 6.2.31): receivers read it only after a
    // private_data_specifier_descriptor in the same loop, in each section the loop spans.
    std::vector<const Descriptor*> loop;
    bool pds = false;
    std::size_t end = i;
    while (end < descriptors.size()) {
      const Descriptor& d = descriptors[end];
      const bool add_pds = d.tag == 0x83 && !pds;
      const std::size_t need = (add_pds ? 2 + kEacemPds.data.size() : 0) + 2 + d.data.size();
      if (end != i && size + need > kSectionBudget) break;
      if (add_pds) loop.push_back(&kEacemPds);
      loop.push_back(&d);
      pds = pds || add_pds;
      size += need;
      ++end;
    }
    Handle h;
    dvbpsi_nit_t nit;
    dvbpsi_nit_init(&nit, 0x40, network_id, network_id, static_cast<std::uint8_t>(version & 0x1F), true);
    if (first && !name.empty())
      dvbpsi_nit_descriptor_add(&nit, 0x40, static_cast<std::uint8_t>(name.size()), name.data());
    dvbpsi_nit_ts_t* ts = dvbpsi_nit_ts_add(&nit, transport_stream_id, original_network_id);
    if (ts == nullptr) {
      dvbpsi_nit_empty(&nit);
      throw std::bad_alloc();
    }
    for (const Descriptor* d : loop)
      dvbpsi_nit_ts_descriptor_add(ts, d->tag, static_cast<std::uint8_t>(d->data.size()), body(d->data));
    dvbpsi_psi_section_t* chain = dvbpsi_nit_sections_generate(h.get(), &nit, 0x40);
    dvbpsi_nit_empty(&nit);
    for (auto& sec : take_sections(chain, "NIT")) out.push_back(std::move(sec));
    i = end;
  } while (i < descriptors.size());
  if (out.size() > 256) throw std::length_error("cannot generate NIT: content too large");
  number_sections(out);
  return out;
}

// --- TableCarousel ---

namespace {

// Same sections apart from version_number (byte 5, bits 1-5) and CRC_32.
bool same_content(const std::vector<Section>& a, const std::vector<Section>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Section& x = a[i];
    const Section& y = b[i];
    if (x.size() != y.size()) return false;
    const bool syntax = x.size() >= 8 && (x[1] & 0x80) != 0;
    const std::size_t end = syntax ? x.size() - 4 : x.size();
    for (std::size_t k = 0; k < end; ++k) {
      const auto mask = static_cast<std::uint8_t>((syntax && k == 5) ? 0xC1 : 0xFF);
      if ((x[k] & mask) != (y[k] & mask)) return false;
    }
  }
  return true;
}

}  // namespace

TableCarousel::TableCarousel(std::uint16_t pid, std::uint8_t first_version)
    : pid_(static_cast<std::uint16_t>(pid & 0x1FFF)), version_(static_cast<std::uint8_t>(first_version & 0x1F)) {}

void TableCarousel::resume(std::uint8_t last_version, std::uint8_t cc) {
  if (versioned_) return;
  version_ = static_cast<std::uint8_t>((last_version + 1) & 0x1F);
  cc_ = static_cast<std::uint8_t>(cc & 0x0F);
}

bool TableCarousel::update(const std::function<std::vector<Section>(std::uint8_t version)>& build) {
  std::vector<Section> built = build(version_);
  if (versioned_) {
    if (same_content(built, sections_)) return false;
    version_ = static_cast<std::uint8_t>((version_ + 1) & 0x1F);
    built = build(version_);
  }
  versioned_ = true;
  sections_ = std::move(built);

  // Prebuild the packets: sections back to back, PUSI + pointer_field in every packet
  // where a section starts, 0xFF after the last one.
  packets_.clear();
  std::vector<std::uint8_t> stream;
  std::vector<std::size_t> starts;
  for (const auto& s : sections_) {
    if (s.empty()) continue;
    starts.push_back(stream.size());
    stream.insert(stream.end(), s.begin(), s.end());
  }
  std::size_t pos = 0;
  std::size_t next = 0;  // index in starts of the first section start at or after pos
  while (pos < stream.size()) {
    while (next < starts.size() && starts[next] < pos) ++next;
    const std::size_t start = next < starts.size() ? starts[next] : stream.size() + kPacketSize;
    TsPacket p{};
    p.bytes.fill(0xFF);
    p.bytes[0] = kSyncByte;
    p.bytes[1] = 0x00;  // no TEI, no PUSI, no priority
    p.bytes[3] = 0x10;  // payload only, CC stamped by packetize()
    p.set_pid(pid_);
    std::size_t at = 4;
    std::size_t room = kPacketSize - 4;
    if (start < pos + room - 1) {
      // A section starts here: pointer_field to it.
      p.set_payload_unit_start(true);
      p.bytes[at++] = static_cast<std::uint8_t>(start - pos);
      --room;
    } else if (start == pos + room - 1) {
      // The next section would start on the last byte, where a pointer_field cannot
      // reach it: end this packet one byte early with stuffing.
      --room;
    }
    const std::size_t n = std::min(room, stream.size() - pos);
    std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(pos), n, p.bytes.begin() + static_cast<std::ptrdiff_t>(at));
    pos += n;
    packets_.push_back(p);
  }
  return true;
}

std::size_t TableCarousel::packetize(std::span<TsPacket> out) {
  if (packets_.empty() || out.size() < packets_.size()) return 0;
  for (std::size_t i = 0; i < packets_.size(); ++i) {
    out[i] = packets_[i];
    out[i].set_cc(cc_);
    cc_ = static_cast<std::uint8_t>((cc_ + 1) & 0x0F);
  }
  return packets_.size();
}

}  // namespace twincast::mpegts
