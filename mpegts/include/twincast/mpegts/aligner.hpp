// Finds TS packets in an arbitrary byte stream (files, SRT payloads, pipes).
//
// Detects 188-byte packets, 192-byte packets (M2TS: 4-byte timestamp then the packet)
// and 204-byte packets (188 + 16 Reed-Solomon bytes), locks on after kLockPackets sync
// bytes in a row, resynchronises after garbage or a lost sync, and counts the bytes it
// had to skip. Locked, one corrupted sync byte between two good ones does not lose the
// lock (ETSI TR 101 290 1.1: sync is lost after 2 or more corrupted sync bytes in a row):
// that packet goes to the sink as it is, byte 0 not 0x47, for the analyzer to count a
// Sync_byte_error (1.2) and for every other consumer to drop (TsPacket::has_sync()).
// It never allocates: bytes that straddle two push() calls are carried in a fixed
// buffer; aligned input is handed to the sink without a copy.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "twincast/mpegts/packet.hpp"

namespace twincast::mpegts {

class PacketAligner {
 public:
  static constexpr std::size_t kLockPackets = 3;
  static constexpr std::array<std::size_t, 3> kUnitSizes{188, 204, 192};

  struct Stats {
    std::uint64_t packets = 0;           // packets handed to the sink
    std::uint64_t skipped_bytes = 0;     // bytes that were not part of any packet
    std::uint64_t sync_losses = 0;       // times the lock was lost after being acquired
    std::uint64_t sync_byte_errors = 0;  // of the packets, those with a corrupted sync byte
  };

  // Feeds bytes; calls sink(const TsPacket&) once per packet, in order.
  template <class Sink>
  void push(std::span<const std::uint8_t> data, Sink&& sink) {
    while (!data.empty()) {
      if (carry_len_ == 0 && unit_ != 0) {
        // Direct path: packets are handed out straight from the caller's buffer.
        data = data.subspan(process(data.data(), data.size(), sink));
        if (data.empty()) break;
      }
      // Buffered path: searching for sync, or a packet straddles two pushes.
      const std::size_t seam = carry_len_;  // where this push's bytes start in the carry
      const std::size_t n = std::min(data.size(), kCarry - carry_len_);
      std::memcpy(carry_.data() + carry_len_, data.data(), n);
      carry_len_ += n;
      data = data.subspan(n);
      drop_front(process(carry_.data(), carry_len_, sink, seam));
      if (unit_ != 0 && carry_len_ > 0 && carry_len_ < unit_ && data.size() >= unit_ - carry_len_) {
        // Complete the straddling packet so the next round can take the direct path.
        const std::size_t need = unit_ - carry_len_;
        std::memcpy(carry_.data() + carry_len_, data.data(), need);
        carry_len_ += need;
        data = data.subspan(need);
        drop_front(process(carry_.data(), carry_len_, sink));
      }
    }
  }

  // End of stream: emits a last packet that lacks only its trailer (192/204 formats) or the
  // next packet's sync byte (see process()) or, when too little came to lock, packets that each start with a sync byte; whatever
  // remains is counted as skipped (a last packet with a corrupted sync byte too: no sync
  // byte after it vouches for it).
  template <class Sink>
  void flush(Sink&& sink) {
    std::size_t pos = 0;
    if (unit_ != 0) {
      if (carry_len_ >= kPacketSize && carry_[0] == kSyncByte) {
        emit(carry_.data(), sink);
        pos = carry_len_ >= unit_ ? unit_ : kPacketSize;  // whole: it waited for the next sync byte
      }
    } else {
      while (pos < carry_len_ && carry_[pos] != kSyncByte) ++pos;
      stats_.skipped_bytes += pos;
      while (pos + kPacketSize <= carry_len_ && carry_[pos] == kSyncByte) {
        emit(carry_.data() + pos, sink);
        pos += kPacketSize;
      }
    }
    drop_front(pos);
    stats_.skipped_bytes += carry_len_;
    carry_len_ = 0;
  }

  // Another stream starts (an SRT peer reconnected): the bytes carried from before are
  // dropped (counted as skipped, never completed with the new stream's bytes into a packet
  // of neither) and the packet size is found again. No allocation.
  void restart() {
    stats_.skipped_bytes += carry_len_;
    carry_len_ = 0;
    unit_ = 0;
  }

  // 188, 192 or 204 once locked; 0 while searching.
  [[nodiscard]] std::size_t unit_size() const { return unit_; }
  [[nodiscard]] const Stats& stats() const { return stats_; }

 private:
  static constexpr std::size_t kCarry = 4096;
  static_assert(kCarry >= (kLockPackets + 1) * 204);

  // Processes buf[0, len); returns the bytes consumed (packets emitted or skipped). Bytes
  // before `seam` came in an earlier push (an SRT message) than those from it on: bytes may
  // be missing in between (a lost message), so a packet that reaches the seam goes out only
  // once the sync byte of the one after it is where it should be, not one glued from the
  // start of one packet and the bytes of another.
  template <class Sink>
  std::size_t process(const std::uint8_t* buf, std::size_t len, Sink& sink, std::size_t seam = 0) {
    std::size_t pos = 0;
    for (;;) {
      while (unit_ == 0) {
        // Search: the first offset where kLockPackets sync bytes line up at one unit size.
        // A byte is only ruled out once every unit size could be tested at it.
        if (pos + (kLockPackets - 1) * 204 + kPacketSize > len) return pos;
        for (std::size_t u : kUnitSizes) {
          bool ok = true;
          for (std::size_t k = 0; k < kLockPackets && ok; ++k) ok = buf[pos + k * u] == kSyncByte;
          if (ok) {
            unit_ = u;
            break;
          }
        }
        if (unit_ == 0) {
          ++pos;
          ++stats_.skipped_bytes;
        }
      }
      // Locked: emit while the sync byte is where it should be.
      while (pos + unit_ <= len) {
        const bool bad = buf[pos] != kSyncByte;
        bool lost = false;
        if (bad || (pos < seam && pos + unit_ >= seam)) [[unlikely]] {
          // A corrupted sync byte is one packet's fault only when the next packet's sync
          // byte is where it should be (so never two in a row); the next unit decides, and
          // until it has come the packet stays in the carry, as one cut by a seam does.
          if (pos + unit_ == len) return pos;  // the next sync byte is still to come
          lost = buf[pos + unit_] != kSyncByte;
          if (lost && !bad) {
            // A packet cut by a seam, then one with a corrupted sync byte: the stream goes
            // on in step if the sync byte after that one is where it should be.
            if (pos + 2 * unit_ >= len) return pos;
            lost = buf[pos + 2 * unit_] != kSyncByte;
          }
        }
        if (lost) {
          unit_ = 0;
          ++stats_.sync_losses;
          break;
        }
        if (bad) ++stats_.sync_byte_errors;
        emit(buf + pos, sink);
        pos += unit_;
      }
      if (unit_ != 0) return pos;
    }
  }

  template <class Sink>
  void emit(const std::uint8_t* p, Sink& sink) {
    sink(TsPacket::view(p));
    ++stats_.packets;
  }

  void drop_front(std::size_t n) {
    if (n == 0) return;
    std::memmove(carry_.data(), carry_.data() + n, carry_len_ - n);
    carry_len_ -= n;
  }

  std::array<std::uint8_t, kCarry> carry_{};
  std::size_t carry_len_ = 0;
  std::size_t unit_ = 0;
  Stats stats_;
};

}  // namespace twincast::mpegts
