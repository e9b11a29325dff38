// Fuzzes parse_pes_header on arbitrary bytes and AccessUnitScanner on arbitrary packets,
// for each video and audio codec. Two ways of building packets from the input:
//   - raw: the input is a sequence of 188-byte packets (sync byte forced);
//   - es:  the input is elementary-stream bytes, wrapped in well-formed PES/TS packets of
//          varying payload sizes, so the start-code scan and the parameter-set capture see
//          every split the mutator can think of.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "twincast/mpegts/access_unit.hpp"
#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/pes.hpp"

using namespace twincast::mpegts;

namespace {
volatile std::uint64_t g_sink;

constexpr std::array<Codec, 7> kCodecs = {Codec::kH264, Codec::kHevc,      Codec::kMpeg2Video, Codec::kAac,
                                          Codec::kAc3,  Codec::kEac3,      Codec::kMpegAudio};

void check(const AccessUnitScanner& sc, const AccessUnitInfo& info) {
  if (info.keyframe && codec_kind(sc.codec()) != StreamKind::kVideo) __builtin_trap();
  if (info.pes_start && info.pes_error) __builtin_trap();
  if (info.has_pts && info.pts >= kPtsWrap) __builtin_trap();
  if (sc.params_known()) g_sink = sc.params().hls_codec().size() + sc.params().width;
}

void raw_packets(AccessUnitScanner& sc, std::span<const std::uint8_t> d) {
  for (std::size_t i = 0; i < d.size(); i += kPacketSize) {
    TsPacket p{};
    std::copy_n(d.data() + i, std::min(kPacketSize, d.size() - i), p.bytes.begin());
    p.bytes[0] = kSyncByte;
    check(sc, sc.push(p));
  }
}

void es_packets(AccessUnitScanner& sc, std::span<const std::uint8_t> d, std::uint8_t split) {
  static constexpr std::array<std::uint8_t, 14> kPes = {0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5,
                                                        0x21, 0x00, 0x01, 0x00, 0x01};
  std::size_t i = 0;
  std::uint8_t cc = 0;
  bool start = true;
  while (i < d.size()) {
    TsPacket p = make_null_packet();
    p.set_pid(0x100);
    p.set_cc(cc++);
    // Payload size from the split byte and position: 1..184 bytes.
    std::size_t room = 1 + ((split * 31u + i * 7u) % 184u);
    std::size_t off = kPacketSize - room;
    if (off > 4) {  // adaptation field of stuffing to shrink the payload
      p.bytes[3] = 0x30 | (p.bytes[3] & 0x0F);
      p.bytes[4] = static_cast<std::uint8_t>(off - 5);
      if (off > 5) p.bytes[5] = (split & 1) ? 0x40 : 0x00;  // random_access_indicator
    }
    std::size_t at = off;
    if (start) {
      if (room < kPes.size()) room = kPes.size(), off = kPacketSize - room, at = off;
      if (off > 4) p.bytes[4] = static_cast<std::uint8_t>(off - 5);
      else p.bytes[3] = 0x10 | (p.bytes[3] & 0x0F);
      p.set_payload_unit_start(true);
      std::copy(kPes.begin(), kPes.end(), p.bytes.begin() + static_cast<std::ptrdiff_t>(at));
      at += kPes.size();
      start = false;
    }
    const std::size_t n = std::min(kPacketSize - at, d.size() - i);
    std::copy_n(d.data() + i, n, p.bytes.begin() + static_cast<std::ptrdiff_t>(at));
    i += n;
    // Every few hundred bytes a new PES begins (the byte value decides).
    if (n > 0 && d[i - 1] == 0xA5) start = true;
    check(sc, sc.push(p));
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (const auto h = parse_pes_header({data, size})) {
    if (h->header_size > size || h->pts >= kPtsWrap || h->dts >= kPtsWrap) __builtin_trap();
  }
  if (size < 2) return 0;
  const Codec codec = kCodecs[data[0] % kCodecs.size()];
  AccessUnitScanner sc(codec);
  const std::span<const std::uint8_t> rest(data + 2, size - 2);
  if (data[0] & 0x80) es_packets(sc, rest, data[1]);
  else raw_packets(sc, rest);
  const auto& st = sc.stats();
  if (st.n_pes + st.n_pes_header_errors > st.n_packets) __builtin_trap();
  return 0;
}
