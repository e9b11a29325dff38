// Fuzzes the byte-stream aligner, the packet accessors and the remux engine: arbitrary
// bytes in arbitrary chunks, every packet found read field by field and remuxed, one push
// per packet and one batch push per group of 1..7 packets, which must agree.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "twincast/mpegts/aligner.hpp"
#include "twincast/mpegts/packet.hpp"
#include "twincast/mpegts/remux.hpp"

using namespace twincast::mpegts;

namespace {
volatile std::uint64_t g_sink;

void touch(const TsPacket& p) {
  std::uint64_t h = p.pid() ^ p.cc() ^ p.scrambling() ^ static_cast<std::uint64_t>(p.adaptation_control());
  h += p.transport_error() + p.payload_unit_start() + p.discontinuity() + p.random_access();
  if (p.has_pcr()) h += p.pcr();
  if (p.has_opcr()) h += p.opcr();
  for (std::uint8_t b : p.payload()) h += b;
  g_sink = h;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first byte chooses the chunk size the stream is pushed in, and how many packets
  // arrive together (a datagram's worth, 1..7) for the batch remux.
  const std::size_t chunk = 1 + data[0] * 7u;
  const std::size_t group = 1 + (data[0] >> 1) % 7;
  std::span<const std::uint8_t> rest(data + 1, size - 1);

  RemuxConfig cfg;
  cfg.nit = (data[0] & 1) != 0;
  cfg.services.push_back({.input = 0});
  // The same stream through one push per packet and through one batch push per group must
  // give the same bytes and the same counts (the data plane uses the batch).
  Remuxer remux(cfg);
  Remuxer batched(cfg);
  std::vector<TsPacket> out(remux.max_output_per_push());
  std::vector<TsPacket> out_batched(group * batched.max_output_per_push());
  std::vector<TsPacket> single_all;
  std::vector<TsPacket> batched_all;
  std::vector<TsPacket> pending;
  std::uint64_t t = 0;

  auto flush_group = [&] {
    if (pending.empty()) return;
    t += 1'000'000;
    for (const TsPacket& p : pending) {
      const std::size_t n = remux.push(0, p, t, out);
      if (n > out.size()) __builtin_trap();
      for (std::size_t i = 0; i < n; ++i)
        if (!out[i].has_sync()) __builtin_trap();  // the engine only writes well-formed packets
      single_all.insert(single_all.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
    }
    const std::size_t n = batched.push(0, pending, t, out_batched);
    if (n > out_batched.size()) __builtin_trap();
    batched_all.insert(batched_all.end(), out_batched.begin(), out_batched.begin() + static_cast<std::ptrdiff_t>(n));
    pending.clear();
  };
  PacketAligner aligner;
  auto sink = [&](const TsPacket& p) {
    touch(p);
    TsPacket q = p;
    q.set_cc(static_cast<std::uint8_t>(q.cc() + 1));
    (void)q.set_discontinuity(true);
    pending.push_back(p);
    if (pending.size() == group) flush_group();
  };
  for (std::size_t i = 0; i < rest.size(); i += chunk) aligner.push(rest.subspan(i, std::min(chunk, rest.size() - i)), sink);
  aligner.flush(sink);
  flush_group();
  const auto& st = aligner.stats();
  if (st.packets * kPacketSize > rest.size()) __builtin_trap();
  if (single_all.size() != batched_all.size()) __builtin_trap();
  for (std::size_t i = 0; i < single_all.size(); ++i)
    if (std::memcmp(single_all[i].bytes.data(), batched_all[i].bytes.data(), kPacketSize) != 0) __builtin_trap();
  const auto a = remux.stats();
  const auto b = batched.stats();
  if (a.packets_in != b.packets_in || a.packets_out != b.packets_out || a.dropped_unmapped != b.dropped_unmapped ||
      a.dropped_resync != b.dropped_resync || a.discontinuities_marked != b.discontinuities_marked)
    __builtin_trap();
  g_sink = single_all.size();
  return 0;
}
