// Immutable bytes shared by the store that made them (the HLS packager's segments, the
// origin's static files) and the HTTP responses in flight that send them.
//
// Two homes:
//   * the heap (a std::string), for small bodies: playlists, keys, JSON;
//   * a sealed memfd (memfd_create, written once, F_SEAL_WRITE | F_SEAL_GROW |
//     F_SEAL_SHRINK | F_SEAL_SEAL) mapped read-only: the HTTP server sends these with
//     sendfile(2), so the kernel hands the pages to the socket instead of copying a 2 MB
//     segment into every response (nginx serves its files the same way). The pages are
//     shmem: they count in the process's memory like the heap copy they replace, once.
//
// A memfd costs a file descriptor for as long as the bytes live, so at most
// memfd_budget() of them exist at once (half the soft RLIMIT_NOFILE when the first one is
// made; the other half stays for sockets and files); past it, and when memfd_create,
// write or mmap fail, in_memfd() keeps the bytes on the heap (counted: heap_fallbacks()).
// Either way view() gives the same bytes. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace twincast::control {

class SharedBytes {
 public:
  // On the heap.
  [[nodiscard]] static std::shared_ptr<const SharedBytes> heap(std::string bytes);
  // In a sealed memfd (`name` shows in /proc/<pid>/fd, e.g. "seg-42.ts"), or on the heap
  // when that is not possible (see above). Empty bytes stay on the heap.
  [[nodiscard]] static std::shared_ptr<const SharedBytes> in_memfd(std::string_view bytes, const char* name = "bytes");

  // The first `size` bytes of an open regular file that nobody truncates (a DVR segment
  // written once): takes `fd` (closed with the object, or at once on failure), maps it
  // read-only; sent with sendfile like a memfd. nullptr when mmap fails. Not in the memfd
  // budget: the caller bounds how many it holds.
  [[nodiscard]] static std::shared_ptr<const SharedBytes> of_file(int fd, std::size_t size);

  ~SharedBytes();
  SharedBytes(const SharedBytes&) = delete;
  SharedBytes& operator=(const SharedBytes&) = delete;

  [[nodiscard]] std::string_view view() const noexcept { return {data_, size_}; }
  [[nodiscard]] const char* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] const char* begin() const noexcept { return data_; }
  [[nodiscard]] const char* end() const noexcept { return data_ + size_; }
  [[nodiscard]] std::string str() const { return std::string(view()); }
  // The sealed memfd or file holding the bytes (offset 0, size() long), or -1 on the heap.
  [[nodiscard]] int fd() const noexcept { return fd_; }

  friend bool operator==(const SharedBytes& a, std::string_view b) noexcept { return a.view() == b; }
  friend bool operator==(const SharedBytes& a, const SharedBytes& b) noexcept { return a.view() == b.view(); }

  // Memfds alive now, the most allowed at once, and in_memfd() calls that kept their bytes
  // on the heap (budget reached or a system call failed) since the process started.
  [[nodiscard]] static std::size_t memfds();
  [[nodiscard]] static std::size_t memfd_budget();
  [[nodiscard]] static std::uint64_t heap_fallbacks();
  // Tests: replaces the budget (0: memfds off).
  static void set_memfd_budget(std::size_t n);

 private:
  SharedBytes() = default;
  std::string heap_;
  int fd_ = -1;
  bool memfd_ = false;  // fd_ counts in the memfd budget
  void* map_ = nullptr;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace twincast::control
