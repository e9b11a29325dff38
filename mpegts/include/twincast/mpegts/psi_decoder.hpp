// Decodes PSI/SI with libdvbpsi into a ProgramModel.
//
// PAT (PID 0) gives the programs and their PMT PIDs; a PMT decoder is attached for each
// and detached when the program leaves the PAT. CAT (PID 1), SDT actual (PID 0x11, table
// 0x42) and NIT actual (PID 0x10, table 0x40; LCNs from the logical_channel_descriptor
// 0x83) are decoded too. EIT sections (PID 0x12) are only counted, with their CRC
// checked, and never handed to libdvbpsi (it passes through untouched).
// Table repetitions (a table's run of packets, up to 8 of them, byte for byte like one
// already decoded: the usual PAT, PMT, SDT and NIT, also several tables taking turns on a
// PID, and also after a CC error or an input that loops) are recognised from a hash of
// each packet's payload and not handed to libdvbpsi, so a steady stream costs a hash per
// PSI packet and no allocation; libdvbpsi allocates only when a table changes or its run
// is longer than 8 packets. Media packets are ignored (the caller need not even push
// them, see is_psi_pid()).
#pragma once

#include <cstdint>
#include <memory>

#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/program.hpp"
#include "twincast/mpegts/section.hpp"

namespace twincast::mpegts {

class PsiDecoder {
 public:
  struct Stats {
    std::uint64_t pat = 0;  // tables decoded (new or changed versions delivered by libdvbpsi)
    std::uint64_t pmt = 0;
    std::uint64_t cat = 0;
    std::uint64_t sdt = 0;
    std::uint64_t nit = 0;
    std::uint64_t eit = 0;  // EIT sections with a good CRC (counted, not decoded)
    std::uint64_t version_changes = 0;  // a table arrived with a version other than the one held
    std::uint64_t model_changes = 0;    // times model() changed
    std::uint64_t repeats_skipped = 0;  // table repetitions not handed to libdvbpsi (nothing new in them)
  };

  PsiDecoder();
  ~PsiDecoder();
  PsiDecoder(const PsiDecoder&) = delete;
  PsiDecoder& operator=(const PsiDecoder&) = delete;

  // Feeds one packet. Packets on PIDs that carry no PSI are ignored cheaply.
  // Returns true when the program model changed with this packet.
  bool push(const TsPacket& packet);

  // True for PIDs the decoder wants: 0x0000, 0x0001, 0x0010, 0x0011, 0x0012 and the PMT
  // PIDs of the current PAT.
  [[nodiscard]] bool is_psi_pid(std::uint16_t pid) const;
  // Every EIT section with a good CRC (table_id 0x4E..0x6F) is also handed to `handler`
  // (nullptr: none), during push(). It survives reset().
  void set_eit_handler(SectionHandler* handler);

  [[nodiscard]] const ProgramModel& model() const;
  // Increments on every change of model(); cheap to poll.
  [[nodiscard]] std::uint64_t generation() const;
  [[nodiscard]] const Stats& stats() const;

  // Forgets everything (a new input).
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::mpegts
