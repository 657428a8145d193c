// Zeroed double buffers for data read and written at random rows.
//
// The sparse Hessian product gathers and scatters one k-vector per non-zero
// from (p x k) row-major blocks at random rows. Its column panels keep those
// blocks at about 2 MiB, except one-column panels of very wide X (p > 262,144),
// where a block is 8 p bytes and almost every access misses the TLB with 4 KiB
// pages. So on Linux a buffer of at least one huge page is mapped directly,
// aligned to 2 MiB and advised MADV_HUGEPAGE: the kernel backs it with
// transparent huge pages where it can (the default "madvise" mode grants them
// only to advised memory) and hands it over zeroed. Measured at p = 10^6, one
// column, 2 cores: 0.11-0.12 s per product against 0.14 s with 4 KiB pages.
// Smaller buffers, other systems, or refused advice give an ordinary zeroed
// allocation: only speed differs, never results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastinfluence {

// Hints that the cache line at p is about to be read (written): for accesses
// at random rows, which the hardware prefetcher cannot foresee. No-ops where
// the compiler has no such builtin.
inline void prefetch_read(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0);
#else
  (void)p;
#endif
}
inline void prefetch_write(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 1);
#else
  (void)p;
#endif
}

class ZeroedBuffer {
 public:
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

  ZeroedBuffer() = default;
  explicit ZeroedBuffer(std::size_t n_doubles) : size_(n_doubles) {
    if (n_doubles == 0) return;
    const std::size_t bytes = n_doubles * sizeof(double);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHugePage) {
      map_huge(bytes);
      return;
    }
#endif
    data_ = static_cast<double*>(std::calloc(n_doubles, sizeof(double)));
    if (data_ == nullptr) throw std::bad_alloc();
  }

  ZeroedBuffer(ZeroedBuffer&& other) noexcept { swap(other); }
  ZeroedBuffer& operator=(ZeroedBuffer&& other) noexcept {
    ZeroedBuffer(std::move(other)).swap(*this);
    return *this;
  }
  ZeroedBuffer(const ZeroedBuffer&) = delete;
  ZeroedBuffer& operator=(const ZeroedBuffer&) = delete;
  ~ZeroedBuffer() { release(); }

  double* data() { return data_; }
  const double* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  void swap(ZeroedBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(mapped_bytes_, other.mapped_bytes_);
  }

  void release() noexcept {
    if (data_ == nullptr) return;
#if defined(__linux__)
    if (mapped_bytes_ != 0) {
      munmap(data_, mapped_bytes_);
      data_ = nullptr;
      return;
    }
#endif
    std::free(data_);
    data_ = nullptr;
  }

#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Over-map by one huge page, then unmap the unaligned head and the tail.
  void map_huge(std::size_t bytes) {
    const std::size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* raw = mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto base = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t start = (base + kHugePage - 1) / kHugePage * kHugePage;
    const std::size_t head = start - base, tail = kHugePage - head;
    if (head != 0) munmap(raw, head);
    if (tail != 0) munmap(reinterpret_cast<void*>(start + length), tail);
    (void)madvise(reinterpret_cast<void*>(start), length, MADV_HUGEPAGE);  // advice only
    data_ = reinterpret_cast<double*>(start);
    mapped_bytes_ = length;
  }
#endif

  double* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t mapped_bytes_ = 0;  // non-zero when data_ came from mmap
};

}  // namespace fastinfluence
