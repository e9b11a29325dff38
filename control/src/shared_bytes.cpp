#include "twincast/control/shared_bytes.hpp"

#include <atomic>
#include <cerrno>
#include <mutex>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

namespace twincast::control {

namespace {

std::atomic<std::size_t> g_memfds{0};
std::atomic<std::uint64_t> g_fallbacks{0};
std::atomic<std::size_t> g_budget{0};
std::once_flag g_budget_once;

std::size_t budget() {
  std::call_once(g_budget_once, [] {
    struct rlimit rl {};
    std::size_t b = 0;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      const rlim_t soft = rl.rlim_cur == RLIM_INFINITY ? static_cast<rlim_t>(1) << 20 : rl.rlim_cur;
      b = static_cast<std::size_t>(soft / 2);
    }
    g_budget.store(b, std::memory_order_relaxed);
  });
  return g_budget.load(std::memory_order_relaxed);
}

// Reserves one memfd of the budget; false when it is used up.
bool reserve() {
  const std::size_t cap = budget();
  std::size_t cur = g_memfds.load(std::memory_order_relaxed);
  do {
    if (cur >= cap) return false;
  } while (!g_memfds.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
  return true;
}

void release() { g_memfds.fetch_sub(1, std::memory_order_relaxed); }

bool write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

std::shared_ptr<const SharedBytes> SharedBytes::heap(std::string bytes) {
  std::shared_ptr<SharedBytes> b(new SharedBytes());
  b->heap_ = std::move(bytes);
  b->data_ = b->heap_.data();
  b->size_ = b->heap_.size();
  return b;
}

std::shared_ptr<const SharedBytes> SharedBytes::in_memfd(std::string_view bytes, const char* name) {
  if (bytes.empty() || !reserve()) {
    if (!bytes.empty()) g_fallbacks.fetch_add(1, std::memory_order_relaxed);
    return heap(std::string(bytes));
  }
  const int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  void* map = MAP_FAILED;
  if (fd >= 0 && write_all(fd, bytes) &&
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) == 0) {
    map = ::mmap(nullptr, bytes.size(), PROT_READ, MAP_SHARED, fd, 0);
  }
  if (map == MAP_FAILED) {
    if (fd >= 0) ::close(fd);
    release();
    g_fallbacks.fetch_add(1, std::memory_order_relaxed);
    return heap(std::string(bytes));
  }
  std::shared_ptr<SharedBytes> b(new SharedBytes());
  b->fd_ = fd;
  b->memfd_ = true;
  b->map_ = map;
  b->data_ = static_cast<const char*>(map);
  b->size_ = bytes.size();
  return b;
}

std::shared_ptr<const SharedBytes> SharedBytes::of_file(int fd, std::size_t size) {
  if (size == 0) {
    ::close(fd);
    return heap({});
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    ::close(fd);
    return nullptr;
  }
  std::shared_ptr<SharedBytes> b(new SharedBytes());
  b->fd_ = fd;
  b->map_ = map;
  b->data_ = static_cast<const char*>(map);
  b->size_ = size;
  return b;
}

SharedBytes::~SharedBytes() {
  if (map_ != nullptr) ::munmap(map_, size_);
  if (fd_ >= 0) {
    ::close(fd_);
    if (memfd_) release();
  }
}

std::size_t SharedBytes::memfds() { return g_memfds.load(std::memory_order_relaxed); }
std::size_t SharedBytes::memfd_budget() { return budget(); }
std::uint64_t SharedBytes::heap_fallbacks() { return g_fallbacks.load(std::memory_order_relaxed); }

void SharedBytes::set_memfd_budget(std::size_t n) {
  (void)budget();  // the default is computed first, so it cannot overwrite `n` later
  g_budget.store(n, std::memory_order_relaxed);
}

}  // namespace twincast::control
