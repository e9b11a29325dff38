// Fuzzes section reassembly and PSI decoding: the input is cut into 188-byte packets,
// each forced to sync byte 0x47 and a PID from a small PSI set, and fed to a
// SectionAssembler and a PsiDecoder (which runs libdvbpsi's table decoders).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/psi_tables.hpp"
#include "twincast/mpegts/section.hpp"

using namespace twincast::mpegts;

namespace {

constexpr std::uint16_t kPids[] = {kPatPid, kCatPid, kNitPid, kSdtPid, kEitPid, 0x0100, 0x1000, 0x0101};

struct Checker final : SectionHandler {
  void on_section(std::uint16_t, std::span<const std::uint8_t> s, bool) override {
    // Invariants of what the assembler delivers.
    if (s.size() < 3 || s.size() > SectionAssembler::kMaxSection) std::abort();
    const std::size_t len = ((std::size_t{s[1]} & 0x0F) << 8) | s[2];
    if (s.size() != 3 + len) std::abort();
  }
};

// A PAT naming PMT PIDs 0x100 and 0x1000, so the PMT decoders run too.
const std::vector<TsPacket>& start_packets() {
  static const std::vector<TsPacket> pkts = [] {
    TableCarousel c(kPatPid);
    c.update([](std::uint8_t v) { return build_pat(1, {{1, 0x0100}, {2, 0x1000}, {3, 0x0100}}, v); });
    std::vector<TsPacket> out(c.packet_count());
    c.packetize(out);
    return out;
  }();
  return pkts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  SectionAssembler assemblers[std::size(kPids)];
  PsiDecoder decoder;
  Checker checker;
  for (const auto& p : start_packets()) decoder.push(p);

  for (std::size_t off = 0; off < size; off += kPacketSize) {
    TsPacket p;
    p.bytes.fill(0xFF);
    const std::size_t n = size - off < kPacketSize ? size - off : kPacketSize;
    for (std::size_t i = 0; i < n; ++i) p.bytes[i] = data[off + i];
    p.bytes[0] = kSyncByte;
    const std::size_t which = p.bytes[2] % std::size(kPids);
    p.set_pid(kPids[which]);
    assemblers[which].push(p, checker);
    decoder.push(p);
    (void)decoder.is_psi_pid(p.pid());
  }
  // The model must stay readable and consistent.
  const ProgramModel& m = decoder.model();
  for (const auto& s : m.services)
    if (m.find_service(s.service_id) == nullptr) std::abort();
  if (size > 0 && data[0] == 0x42) decoder.reset();
  return 0;
}
