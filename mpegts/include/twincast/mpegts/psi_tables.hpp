// Generation of PSI/SI tables with libdvbpsi, and their carriage in TS packets.
//
// Builders turn the program model into complete sections (CRC_32 included). A
// TableCarousel owns one table on one PID: it keeps the version number, bumps it
// (modulo 32) only when the content changes, and packetises the sections with its own
// continuity counter. Building allocates (it runs when the configuration or the input's
// PSI changes); packetize() does not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/program.hpp"

namespace twincast::mpegts {

using Section = std::vector<std::uint8_t>;

struct PatEntry {
  std::uint16_t program_number = 0;  // 0 = network PID entry
  std::uint16_t pid = 0;
};

// PAT: table 0x00 on PID 0.
[[nodiscard]] std::vector<Section> build_pat(std::uint16_t transport_stream_id,
                                             const std::vector<PatEntry>& programs, std::uint8_t version);
// PMT: table 0x02 for one service (program descriptors, streams with their
// descriptors, PCR PID). A PMT is one section (ISO 13818-1 2.4.4.8): std::length_error
// when the service needs more than kMaxPmtBytes.
[[nodiscard]] std::vector<Section> build_pmt(const Service& service, std::uint8_t version);
inline constexpr std::size_t kMaxPmtBytes = 1024;    // 3 + section_length 1021, CRC_32 included
inline constexpr std::size_t kPmtFixedBytes = 12 + 4;  // the header to program_info_length, CRC_32
// The bytes build_pmt writes for one stream (its ES_info entry, with the ISO 639
// descriptor it adds for `language`), and for one program descriptor.
[[nodiscard]] std::size_t pmt_stream_bytes(const ElementaryStream& es);
[[nodiscard]] inline std::size_t pmt_descriptor_bytes(const Descriptor& d) { return 2 + d.data.size(); }
// SDT actual: table 0x42 on PID 0x11, one service_descriptor (0x48) per service with
// its type, provider and name.
[[nodiscard]] std::vector<Section> build_sdt(std::uint16_t transport_stream_id, std::uint16_t original_network_id,
                                             const std::vector<Service>& services, std::uint8_t version);
// NIT actual: table 0x40 on PID 0x10: network_name_descriptor (0x40), one transport
// stream with service_list_descriptor (0x41) and logical_channel_descriptor (0x83) for
// services with an LCN, behind an EACEM private_data_specifier_descriptor (0x5F).
[[nodiscard]] std::vector<Section> build_nit(std::uint16_t network_id, const std::string& network_name,
                                             std::uint16_t transport_stream_id, std::uint16_t original_network_id,
                                             const std::vector<Service>& services, std::uint8_t version);

// CAT: table 0x01 on PID 1, the descriptors as given (CA_descriptors name the EMM PIDs).
// Throws std::length_error when they do not fit one section (kCatDescriptorBudget bytes).
inline constexpr std::size_t kCatDescriptorBudget = 1000;
[[nodiscard]] std::vector<Section> build_cat(const std::vector<Descriptor>& descriptors, std::uint8_t version);

class TableCarousel {
 public:
  // `first_version` is used for the first content.
  explicit TableCarousel(std::uint16_t pid, std::uint8_t first_version = 0);

  // Rebuilds the table with build(version). When the sections differ from the current
  // ones in anything but version_number and CRC_32, the version is incremented
  // (modulo 32) and the sections are rebuilt with it. Returns true when it changed.
  bool update(const std::function<std::vector<Section>(std::uint8_t version)>& build);

  // Writes one repetition of the table (all its sections) as TS packets into `out`,
  // continuing this carousel's continuity counter, and returns how many it wrote
  // (0 when `out` is too small or there is no content yet). Sections are packed back
  // to back; the last packet is stuffed with 0xFF. No allocation.
  std::size_t packetize(std::span<TsPacket> out);

  // Takes over from a carousel that another engine ran on the same PID (a channel rebuilt
  // by a reload): the continuity counter goes on from `cc` and the first content gets
  // version `last_version + 1`, so receivers read it again even when it is the same.
  // Only before the first content; no allocation.
  void resume(std::uint8_t last_version, std::uint8_t cc);

  [[nodiscard]] std::size_t packet_count() const { return packets_.size(); }
  [[nodiscard]] std::uint8_t cc() const { return cc_; }
  [[nodiscard]] std::uint8_t version() const { return version_; }
  [[nodiscard]] std::uint16_t pid() const { return pid_; }
  [[nodiscard]] bool has_content() const { return !packets_.empty(); }
  [[nodiscard]] const std::vector<Section>& sections() const { return sections_; }

 private:
  std::uint16_t pid_;
  std::uint8_t version_;
  bool versioned_ = false;  // content has been set at least once
  std::uint8_t cc_ = 0;
  std::vector<Section> sections_;
  std::vector<TsPacket> packets_;  // prebuilt packets, CC stamped at packetize()
};

}  // namespace twincast::mpegts
