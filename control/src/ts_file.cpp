#include "twincast/control/ts_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace twincast::control {

TsFileStats read_ts_file(const std::string& path, const std::function<void(const mpegts::TsPacket&)>& sink) {
  std::unique_ptr<FILE, int (*)(FILE*)> owned(nullptr, &std::fclose);
  FILE* f = stdin;
  if (path != "-") {
    owned.reset(std::fopen(path.c_str(), "rb"));
    if (!owned) throw std::runtime_error(path + ": " + std::strerror(errno));
    f = owned.get();
  }
  mpegts::PacketAligner aligner;
  TsFileStats st;
  std::uint64_t n_packets = 0;
  const auto note_losses = [&] {
    while (st.sync_loss_at.size() < aligner.stats().sync_losses) st.sync_loss_at.push_back(n_packets);
  };
  const auto counted = [&](const mpegts::TsPacket& p) {
    note_losses();
    ++n_packets;
    sink(p);
  };
  std::vector<std::uint8_t> buf(1 << 20);
  for (;;) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), f);
    if (n > 0) {
      st.bytes += n;
      aligner.push(std::span(buf.data(), n), counted);
    }
    if (n < buf.size()) {
      if (std::ferror(f)) throw std::runtime_error(path + ": read error: " + std::strerror(errno));
      break;
    }
  }
  aligner.flush(counted);
  note_losses();
  st.aligner = aligner.stats();
  st.unit_size = aligner.unit_size();
  return st;
}

std::vector<mpegts::TsPacket> load_ts_file(const std::string& path, TsFileStats* stats) {
  std::vector<mpegts::TsPacket> out;
  const TsFileStats st = read_ts_file(path, [&](const mpegts::TsPacket& p) { out.push_back(p); });
  if (stats) *stats = st;
  return out;
}

}  // namespace twincast::control
