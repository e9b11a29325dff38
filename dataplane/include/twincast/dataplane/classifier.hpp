// RX flow classification: (destination IPv4, destination UDP port, source IPv4) -> input id.
//
// A flat open-addressing table (linear probing, power-of-two capacity, at most half full)
// sized once at construction; add() happens before the worker starts, lookup() never
// allocates. An SSM entry (source != 0) matches only that source and beats an ASM entry
// (source == 0) for the same group and port, which matches any source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "twincast/dataplane/config.hpp"

namespace twincast::dataplane {

class FlowClassifier {
 public:
  static constexpr std::uint32_t kNoInput = 0xFFFFFFFFu;

  // Room for `max_flows` entries.
  explicit FlowClassifier(std::size_t max_flows);

  // False when the table is full or the same (dst, port, source) is already there.
  bool add(Ipv4 dst, std::uint16_t port, Ipv4 source, std::uint32_t input_id);
  // The input for a received datagram, or kNoInput: at most two probe sequences (SSM, then
  // ASM; the first only when the table holds an SSM entry), each ending at the first empty
  // slot.
  [[nodiscard]] std::uint32_t lookup(Ipv4 dst, std::uint16_t port, Ipv4 source) const noexcept;

  [[nodiscard]] std::size_t size() const { return n_entries_; }
  [[nodiscard]] std::size_t capacity() const { return max_flows_; }

 private:
  struct Entry {
    Ipv4 dst = 0;
    Ipv4 source = 0;
    std::uint16_t port = 0;
    bool used = false;
    std::uint32_t input = kNoInput;
  };
  [[nodiscard]] std::size_t slot_of(Ipv4 dst, std::uint16_t port, Ipv4 source) const noexcept;
  [[nodiscard]] std::uint32_t find(Ipv4 dst, std::uint16_t port, Ipv4 source) const noexcept;

  std::vector<Entry> table_;
  std::size_t mask_ = 0;
  std::size_t max_flows_ = 0;
  std::size_t n_entries_ = 0;
  std::size_t n_ssm_ = 0;  // entries with a source
};

}  // namespace twincast::dataplane
