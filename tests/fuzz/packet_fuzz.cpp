// Fuzzes the byte-stream aligner, the packet accessors and the remux engine: arbitrary
// bytes in arbitrary chunks, every packet found read field by field and remuxed.
#include <cstddef>
#include <cstdint>
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
  // The first byte chooses the chunk size the stream is pushed in.
  const std::size_t chunk = 1 + data[0] * 7u;
  std::span<const std::uint8_t> rest(data + 1, size - 1);

  RemuxConfig cfg;
  cfg.nit = (data[0] & 1) != 0;
  cfg.services.push_back({.input = 0});
  Remuxer remux(cfg);
  std::vector<TsPacket> out(remux.max_output_per_push());
  std::uint64_t t = 0;
  std::uint64_t n_out = 0;

  PacketAligner aligner;
  auto sink = [&](const TsPacket& p) {
    touch(p);
    TsPacket q = p;
    q.set_cc(static_cast<std::uint8_t>(q.cc() + 1));
    (void)q.set_discontinuity(true);
    t += 1'000'000;
    const std::size_t n = remux.push(0, p, t, out);
    if (n > out.size()) __builtin_trap();
    for (std::size_t i = 0; i < n; ++i)
      if (!out[i].has_sync()) __builtin_trap();  // the engine only writes well-formed packets
    n_out += n;
  };
  for (std::size_t i = 0; i < rest.size(); i += chunk) aligner.push(rest.subspan(i, std::min(chunk, rest.size() - i)), sink);
  aligner.flush(sink);
  const auto& st = aligner.stats();
  if (st.packets * kPacketSize > rest.size()) __builtin_trap();
  g_sink = n_out;
  return 0;
}
