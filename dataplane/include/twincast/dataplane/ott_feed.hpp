// A channel's output TS on its way to the OTT (HLS) packager.
//
// OttFeed is a PacketTap: on the worker lcore the channel hands it the remuxed SPTS (the
// same packets the multicast pacer gets) and tells it when the input switched. It copies
// the packets into mbufs of a pool, at most kChunkPackets per mbuf behind a small header
// (the worker's time and the discontinuity count), and queues them on a single-producer /
// single-consumer rte_ring. One packager thread drains it with read(). When the ring is
// full or the pool is empty the chunk is dropped and counted: the data plane never waits
// for the OTT side, and the multicast output does not notice.
//
// A discontinuity (an input switch, forced or by failover) marks the first chunk after it:
// the packager closes its segment there and writes EXT-X-DISCONTINUITY. The remux resumes
// the new input at a random access point, so that chunk starts decodable video. A dropped
// chunk marks the next one queued the same way (a hole, not an input switch).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>

#include "twincast/dataplane/channel.hpp"
#include "twincast/mpegts/packet.hpp"

struct rte_mempool;
struct rte_ring;
struct rte_mbuf;

namespace twincast::dataplane {

// One chunk as the packager sees it; `packets` is valid only during the read() callback.
struct OttChunk {
  std::uint64_t ns = 0;                 // Dataplane::now_ns() when the packets left the remux
  std::uint32_t discontinuity_seq = 0;  // input switches before this chunk (since start)
  bool discontinuity = false;           // the first chunk after a switch, shedding or a drop
  std::span<const mpegts::TsPacket> packets;
};

struct OttFeedStats {
  std::uint64_t chunks = 0;           // queued
  std::uint64_t packets = 0;          // TS packets in them
  std::uint64_t dropped_chunks = 0;   // ring full or no mbuf
  std::uint64_t dropped_packets = 0;
  std::uint64_t discontinuities = 0;  // input switches signalled
  std::uint64_t shed_packets = 0;     // not queued because the data plane shed this feed (overload)
  bool shed = false;                  // shed now
};

class OttFeed final : public PacketTap {
 public:
  static constexpr std::size_t kChunkPackets = 7;
  // Bytes of mbuf data room a chunk needs (the pool's data room must be at least this
  // plus RTE_PKTMBUF_HEADROOM).
  static constexpr std::size_t kChunkBytes = 16 + kChunkPackets * mpegts::kPacketSize;

  // A ring of `ring_size` chunks (a power of two) named `name` (unique in the process);
  // mbufs from `pool`, which may be shared with other feeds. Throws std::runtime_error.
  OttFeed(const std::string& name, unsigned ring_size, rte_mempool* pool);
  ~OttFeed();  // frees what is still queued
  OttFeed(const OttFeed&) = delete;
  OttFeed& operator=(const OttFeed&) = delete;

  // Producer side (the worker lcore, through Channel): no allocation, lock or wait.
  void on_packets(std::size_t slot, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) override;
  void on_discontinuity(std::size_t slot) override;
  // QoS (the producer's thread): while shed, packets are counted and not queued; when the
  // feed comes back, its first chunk is marked as a discontinuity (the packager starts a
  // new segment: the timeline has a hole).
  void set_shed(bool shed);

  // Consumer side (one thread at a time): calls `fn` for the queued chunks in order, at
  // most `max` of them, and returns how many it called it for.
  std::size_t read(const std::function<void(const OttChunk&)>& fn,
                   std::size_t max = std::numeric_limits<std::size_t>::max());
  // Chunks waiting in the ring (approximate while the producer runs).
  [[nodiscard]] std::size_t queued() const;
  // Any thread.
  [[nodiscard]] OttFeedStats stats() const;

 private:
  void enqueue(std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns);

  rte_ring* ring_ = nullptr;
  rte_mempool* pool_ = nullptr;
  std::uint32_t discontinuity_seq_ = 0;  // producer only
  bool pending_discontinuity_ = false;   // producer only
  bool shed_ = false;                    // producer only
  struct alignas(64) Counters {          // one writer: the producer
    std::atomic<std::uint64_t> chunks{0};
    std::atomic<std::uint64_t> packets{0};
    std::atomic<std::uint64_t> dropped_chunks{0};
    std::atomic<std::uint64_t> dropped_packets{0};
    std::atomic<std::uint64_t> discontinuities{0};
    std::atomic<std::uint64_t> shed_packets{0};
    std::atomic<bool> shed{false};
  } counters_;
};

}  // namespace twincast::dataplane
