// MSB-first bit reader with Exp-Golomb codes, for parameter sets and frame headers.
// Reading past the end returns zeros and sets failed(); callers check it once at the end
// of a section instead of after every field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace twincast::mpegts {

class BitReader {
 public:
  explicit BitReader(std::span<const std::uint8_t> data) : data_(data) {}

  [[nodiscard]] bool failed() const { return failed_; }
  void fail() { failed_ = true; }
  [[nodiscard]] std::size_t bits_left() const {
    const std::size_t total = data_.size() * 8;
    return pos_ >= total ? 0 : total - pos_;
  }

  std::uint32_t bit() {
    if (pos_ >= data_.size() * 8) {
      failed_ = true;
      return 0;
    }
    const std::uint32_t v = (std::uint32_t{data_[pos_ >> 3]} >> (7 - (pos_ & 7))) & 1u;
    ++pos_;
    return v;
  }
  bool flag() { return bit() != 0; }

  // Up to 32 bits.
  std::uint32_t bits(unsigned n) {
    std::uint32_t v = 0;
    for (unsigned i = 0; i < n; ++i) v = (v << 1) | bit();
    return v;
  }
  std::uint64_t bits64(unsigned n) {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v = (v << 1) | bit();
    return v;
  }
  void skip(std::size_t n) {
    if (n > bits_left()) {
      pos_ = data_.size() * 8;
      failed_ = true;
      return;
    }
    pos_ += n;
  }

  // ue(v); codes longer than 32 bits fail.
  std::uint32_t ue() {
    unsigned zeros = 0;
    while (bit() == 0) {
      if (failed_ || ++zeros > 31) {
        failed_ = true;
        return 0;
      }
    }
    if (zeros == 0) return 0;
    return static_cast<std::uint32_t>((std::uint64_t{1} << zeros) - 1 + bits(zeros));
  }
  // se(v)
  std::int32_t se() {
    const std::uint32_t k = ue();
    const auto half = static_cast<std::int64_t>((std::uint64_t{k} + 1) / 2);
    return static_cast<std::int32_t>((k & 1) ? half : -half);
  }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

// Copies a NAL unit into `out` without its emulation-prevention bytes (00 00 03 -> 00 00).
// Returns the RBSP length (at most out.size(); the rest of a longer NAL is dropped).
inline std::size_t unescape_rbsp(std::span<const std::uint8_t> nal, std::span<std::uint8_t> out) {
  std::size_t n = 0;
  unsigned zeros = 0;
  for (const std::uint8_t b : nal) {
    if (n == out.size()) break;
    if (zeros >= 2 && b == 0x03) {
      zeros = 0;
      continue;
    }
    out[n++] = b;
    zeros = b == 0 ? zeros + 1 : 0;
  }
  return n;
}

}  // namespace twincast::mpegts
