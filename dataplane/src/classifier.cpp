#include "twincast/dataplane/classifier.hpp"

namespace twincast::dataplane {

FlowClassifier::FlowClassifier(std::size_t max_flows) : max_flows_(max_flows) {
  std::size_t cap = 8;
  while (cap < 2 * max_flows) cap *= 2;
  table_.resize(cap);
  mask_ = cap - 1;
}

std::size_t FlowClassifier::slot_of(Ipv4 dst, std::uint16_t port, Ipv4 source) const noexcept {
  std::uint64_t h = (std::uint64_t{dst} << 32) ^ (std::uint64_t{port} << 16) ^ source;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return static_cast<std::size_t>(h) & mask_;
}

bool FlowClassifier::add(Ipv4 dst, std::uint16_t port, Ipv4 source, std::uint32_t input_id) {
  if (n_entries_ >= max_flows_ || input_id == kNoInput) return false;
  for (std::size_t i = slot_of(dst, port, source);; i = (i + 1) & mask_) {
    Entry& e = table_[i];
    if (!e.used) {
      e = Entry{dst, source, port, true, input_id};
      ++n_entries_;
      if (source != 0) ++n_ssm_;
      return true;
    }
    if (e.dst == dst && e.port == port && e.source == source) return false;
  }
}

std::uint32_t FlowClassifier::find(Ipv4 dst, std::uint16_t port, Ipv4 source) const noexcept {
  // The table is at most half full, so an empty slot always ends the probe.
  for (std::size_t i = slot_of(dst, port, source);; i = (i + 1) & mask_) {
    const Entry& e = table_[i];
    if (!e.used) return kNoInput;
    if (e.dst == dst && e.port == port && e.source == source) return e.input;
  }
}

std::uint32_t FlowClassifier::lookup(Ipv4 dst, std::uint16_t port, Ipv4 source) const noexcept {
  if (n_entries_ == 0) return kNoInput;
  if (source != 0 && n_ssm_ != 0) {
    const std::uint32_t ssm = find(dst, port, source);
    if (ssm != kNoInput) return ssm;
  }
  return find(dst, port, 0);
}

}  // namespace twincast::dataplane
