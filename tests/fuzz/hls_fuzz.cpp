// Feeds arbitrary packets through the HLS Segmenter in chunks, the way the packager does.
//
// Input: records of 1 control byte + 188 packet bytes. Control byte: low 3 bits + 1 = how
// many records go into the chunk this record starts (a record inside a chunk has its own
// control byte, only its bit 7 is read); bit 3 = the chunk carries the discontinuity flag;
// bit 4 = flush() before the chunk; bit 7 keeps the packet's first byte (usually a bad sync
// byte), otherwise it is forced to 0x47. The first input byte (when the size is not a
// multiple of a record) picks the target duration 1..10 s. Checks every segment: whole
// packets, PAT first, finite non-negative duration, consecutive sequence numbers,
// discontinuity sequence stepping by one after each flagged segment; and that the stats
// account for every packet.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "twincast/mpegts/hls.hpp"

using namespace twincast::mpegts;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kRecord = 1 + kPacketSize;
  hls::SegmenterConfig cfg;
  std::size_t off = 0;
  if (size % kRecord != 0) {
    cfg.target_duration_s = 1.0 + static_cast<double>(data[0] % 10);
    off = 1;
  }
  cfg.first_sequence = 5;
  cfg.max_segment_bytes = 64u << 10;

  std::uint64_t expect_seq = cfg.first_sequence;
  std::uint64_t disc_seq = 0;
  std::uint64_t seg_packets = 0;
  hls::Segmenter seg(cfg, [&](hls::Segment&& s) {
    if (s.bytes.size() % kPacketSize != 0 || s.bytes.size() < 2 * kPacketSize) __builtin_trap();
    if (TsPacket::view(s.bytes.data()).pid() != kPatPid) __builtin_trap();
    if (!std::isfinite(s.duration_s) || s.duration_s < 0) __builtin_trap();
    if (s.sequence != expect_seq++) __builtin_trap();
    if (s.discontinuity_sequence != disc_seq) __builtin_trap();
    if (s.discontinuity) ++disc_seq;
    seg_packets += s.bytes.size() / kPacketSize;
  });

  std::vector<TsPacket> chunk;
  std::uint64_t pushed = 0;
  std::int64_t wall = 1'700'000'000'000;
  while (off + kRecord <= size) {
    const std::uint8_t ctrl = data[off];
    const std::size_t n = (ctrl & 7u) + 1;
    chunk.clear();
    for (std::size_t k = 0; k < n && off + kRecord <= size; ++k, off += kRecord) {
      TsPacket p;
      std::memcpy(p.bytes.data(), data + off + 1, kPacketSize);
      if ((data[off] & 0x80) == 0) p.bytes[0] = kSyncByte;
      chunk.push_back(p);
    }
    if (ctrl & 0x10) seg.flush();
    seg.push(chunk, wall, (ctrl & 0x08) != 0);
    pushed += chunk.size();
    wall += 5;
  }
  seg.flush();
  const auto& st = seg.stats();
  if (st.packets != pushed) __builtin_trap();
  if (st.segments != expect_seq - cfg.first_sequence) __builtin_trap();
  const hls::StreamInfo info = seg.stream_info();
  if (info.peak_bandwidth_bps < info.average_bandwidth_bps) __builtin_trap();
  (void)seg_packets;
  return 0;
}
