#include "twincast/dataplane/ott_feed.hpp"

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "pacer.hpp"

namespace twincast::dataplane {

namespace {

// What precedes the packets in a chunk's mbuf.
struct ChunkHeader {
  std::uint64_t ns;
  std::uint32_t discontinuity_seq;
  std::uint16_t n_packets;
  std::uint16_t flags;
};
static_assert(sizeof(ChunkHeader) == 16 && OttFeed::kChunkBytes == 16 + OttFeed::kChunkPackets * 188);
constexpr std::uint16_t kDiscontinuityFlag = 1;

}  // namespace

OttFeed::OttFeed(const std::string& name, unsigned ring_size, rte_mempool* pool) : pool_(pool) {
  if (pool == nullptr) throw std::runtime_error("OTT feed " + name + ": no mempool");
  if (rte_pktmbuf_data_room_size(pool) < RTE_PKTMBUF_HEADROOM + kChunkBytes)
    throw std::runtime_error("OTT feed " + name + ": the mempool's mbufs are too small for a chunk");
  ring_ = rte_ring_create(name.c_str(), ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (ring_ == nullptr) throw std::runtime_error("OTT feed " + name + ": cannot create its ring: " + rte_strerror(rte_errno));
}

OttFeed::~OttFeed() {
  rte_mbuf* m = nullptr;
  while (rte_ring_sc_dequeue(ring_, reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
  rte_ring_free(ring_);
}

void OttFeed::on_discontinuity(std::size_t) {
  ++discontinuity_seq_;
  pending_discontinuity_ = true;
  bump_counter(counters_.discontinuities);
}

void OttFeed::set_shed(bool shed) {
  if (shed == shed_) return;
  shed_ = shed;
  counters_.shed.store(shed, std::memory_order_relaxed);
  if (!shed) pending_discontinuity_ = true;
}

void OttFeed::on_packets(std::size_t, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) {
  if (shed_) {
    bump_counter(counters_.shed_packets, packets.size());
    return;
  }
  while (!packets.empty()) {
    const std::size_t n = std::min(packets.size(), kChunkPackets);
    enqueue(packets.first(n), now_ns);
    packets = packets.subspan(n);
  }
}

void OttFeed::enqueue(std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) {
    bump_counter(counters_.dropped_chunks);
    bump_counter(counters_.dropped_packets, packets.size());
    // A hole in the timeline: the next chunk queued is marked (a discontinuity still
    // pending stays pending), so the packager never splices across it.
    pending_discontinuity_ = true;
    return;
  }
  const std::size_t bytes = sizeof(ChunkHeader) + packets.size() * mpegts::kPacketSize;
  auto* data = rte_pktmbuf_mtod(m, std::uint8_t*);
  const ChunkHeader h{now_ns, discontinuity_seq_, static_cast<std::uint16_t>(packets.size()),
                      pending_discontinuity_ ? kDiscontinuityFlag : std::uint16_t{0}};
  std::memcpy(data, &h, sizeof h);
  std::memcpy(data + sizeof h, packets.data(), packets.size() * mpegts::kPacketSize);
  m->data_len = static_cast<std::uint16_t>(bytes);
  m->pkt_len = static_cast<std::uint32_t>(bytes);
  if (rte_ring_sp_enqueue(ring_, m) != 0) {
    rte_pktmbuf_free(m);
    bump_counter(counters_.dropped_chunks);
    bump_counter(counters_.dropped_packets, packets.size());
    pending_discontinuity_ = true;  // as above
    return;
  }
  pending_discontinuity_ = false;
  bump_counter(counters_.chunks);
  bump_counter(counters_.packets, packets.size());
}

std::size_t OttFeed::read(const std::function<void(const OttChunk&)>& fn, std::size_t max) {
  constexpr unsigned kBatch = 32;
  rte_mbuf* ms[kBatch];
  std::size_t done = 0;
  while (done < max) {
    const auto want = static_cast<unsigned>(std::min<std::size_t>(kBatch, max - done));
    const unsigned n = rte_ring_sc_dequeue_burst(ring_, reinterpret_cast<void**>(ms), want, nullptr);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) {
      const auto* data = rte_pktmbuf_mtod(ms[i], const std::uint8_t*);
      ChunkHeader h;
      std::memcpy(&h, data, sizeof h);
      // The packets sit 16 bytes into the data: TsPacket is an array of bytes, so any
      // alignment will do.
      const auto* packets = reinterpret_cast<const mpegts::TsPacket*>(data + sizeof h);
      OttChunk c;
      c.ns = h.ns;
      c.discontinuity_seq = h.discontinuity_seq;
      c.discontinuity = (h.flags & kDiscontinuityFlag) != 0;
      c.packets = std::span<const mpegts::TsPacket>(packets, h.n_packets);
      try {
        fn(c);
      } catch (...) {
        rte_pktmbuf_free_bulk(ms + i, n - i);  // the rest of this batch is lost with the exception
        throw;
      }
      rte_pktmbuf_free(ms[i]);
    }
    done += n;
  }
  return done;
}

std::size_t OttFeed::queued() const { return rte_ring_count(ring_); }

OttFeedStats OttFeed::stats() const {
  constexpr auto r = std::memory_order_relaxed;
  return OttFeedStats{counters_.chunks.load(r),          counters_.packets.load(r),
                      counters_.dropped_chunks.load(r),  counters_.dropped_packets.load(r),
                      counters_.discontinuities.load(r), counters_.shed_packets.load(r),
                      counters_.shed.load(r)};
}

}  // namespace twincast::dataplane
