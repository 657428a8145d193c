// Row-block parallelism shared by every kernel.
//
// Rows are cut into a fixed number of chunks that depends on n (and the size
// of each chunk's accumulator) but never on the thread count; partial results
// are reduced in a fixed pairwise tree. Results are therefore bitwise identical
// for any number of threads, which keeps LiSSA and the tests reproducible.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <exception>
#include <stdexcept>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastinfluence {

using Index = Eigen::Index;

inline bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// The OpenMP thread number inside a parallel region (0 outside).
inline int current_thread() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// n_threads <= 0 means "all cores".
inline int resolve_threads(int n_threads) { return n_threads > 0 ? n_threads : max_threads(); }

// Raised when the interrupt hook reports a request to stop (Ctrl-C).
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// The core knows nothing of Python: the bindings install a hook that checks
// for pending signals. It is only ever called from the thread that entered
// the kernel (OpenMP thread 0), between chunks. It returns true to stop the
// kernel with Interrupted, or throws an exception of its own, which leaves
// the kernel like any other.
using InterruptHook = bool (*)();
inline InterruptHook& interrupt_hook() {
  static InterruptHook hook = nullptr;
  return hook;
}

// For serial loops on the entering thread (LiSSA's recursion): stop between
// iterations when the hook asks to.
inline void check_interrupt() {
  const InterruptHook hook = interrupt_hook();
  if (hook != nullptr && hook()) throw Interrupted();
}

struct ChunkPlan {
  Index n_rows = 0;
  Index chunk_rows = 1;
  Index n_chunks = 0;
  Index begin(Index c) const { return c * chunk_rows; }
  Index size(Index c) const { return std::min(chunk_rows, n_rows - c * chunk_rows); }
};

// At most max_chunks chunks of at least min_rows rows each.
inline ChunkPlan plan_chunks(Index n_rows, Index max_chunks = 64, Index min_rows = 256) {
  ChunkPlan plan;
  plan.n_rows = n_rows;
  if (n_rows <= 0) return plan;
  max_chunks = std::max<Index>(1, max_chunks);
  plan.chunk_rows = std::max(min_rows, (n_rows + max_chunks - 1) / max_chunks);
  plan.n_chunks = (n_rows + plan.chunk_rows - 1) / plan.chunk_rows;
  return plan;
}

// Runs body(chunk) for every chunk on n_threads threads. No exception leaves
// the OpenMP region: the first one is captured, remaining chunks are skipped,
// and it is rethrown after the region (as hnswlib's ParallelFor does).
template <class Body>
void parallel_for_chunks(Index n_chunks, int n_threads, Body&& body) {
  std::exception_ptr error = nullptr;
  std::atomic<bool> stop{false};
  const InterruptHook hook = interrupt_hook();
  // No more threads than chunks: a one-chunk call (small data) opens no
  // parallel region at all, which matters on busy machines where waking a
  // team costs milliseconds.
  const int threads = static_cast<int>(std::min<Index>(resolve_threads(n_threads), std::max<Index>(n_chunks, 1)));
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#endif
  for (Index c = 0; c < n_chunks; ++c) {
    if (stop.load(std::memory_order_relaxed)) continue;
    try {
#ifdef _OPENMP
      const bool is_entry_thread = omp_get_thread_num() == 0;
#else
      const bool is_entry_thread = true;
#endif
      if (hook != nullptr && is_entry_thread && hook()) throw Interrupted();
      body(c);
    } catch (...) {
#ifdef _OPENMP
#pragma omp critical(fastinfluence_error)
#endif
      {
        if (!error) error = std::current_exception();
      }
      stop.store(true, std::memory_order_relaxed);
    }
  }
  (void)threads;
  if (error) std::rethrow_exception(error);
}

// Sums n partial results into partial 0 along a fixed pairwise tree:
// add(c, c + stride) for stride = 1, 2, 4, ..., so the result depends on n
// only. With parallel_levels the additions of one level run in parallel:
// worth it for partials of megabytes (sparse Hessian products), where summing
// them on one thread would cap the speedup; small ones are not worth waking a
// team for.
template <class Add>
void tree_reduce(Index n, int n_threads, bool parallel_levels, Add&& add) {
  for (Index stride = 1; stride < n; stride *= 2) {
    const Index pairs = (n - stride + 2 * stride - 1) / (2 * stride);  // c = 2*stride*j with c + stride < n
    const auto add_pair = [&](Index j) { add(2 * stride * j, 2 * stride * j + stride); };
    if (parallel_levels) {
      parallel_for_chunks(pairs, n_threads, add_pair);
    } else {
      for (Index j = 0; j < pairs; ++j) add_pair(j);
    }
  }
}

namespace detail {

// The per-chunk partial results of the calling thread's last reduction of type Acc, kept
// so that the next reduction reuses their memory: partials allocated afresh (64 of 82 KiB
// for a p = 101 Hessian) came from memory glibc had just returned to the system, and were
// faulted in page by page on every call (1,100 page faults, 3 ms of a 23 ms evaluate at
// n = 100,000, d = 100). Not kept past kKeepDoubles in all (then each chunk makes its own,
// as before); a nested reduction on the same thread gets partials of its own.
// `zero` (from make()) is the zeroed accumulator, Acc::doubles() its size. The partial of
// chunk 0 is the result, moved out, so only the others' memory is reused.
template <class Acc>
class KeptPartials {
 public:
  static constexpr Index kKeepDoubles = Index{1} << 20;  // 8 MiB

  KeptPartials(Index n, Acc zero) : store_(kept().in_use ? own_ : kept()) {
    store_.partials.resize(static_cast<size_t>(n));
    store_.in_use = true;
    keep_ = n * zero.doubles() <= kKeepDoubles;
    if (keep_)
      zero_ = std::move(zero);  // copied into each kept partial
    else
      (*this)[0] = std::move(zero);  // chunk 0 starts from it, the others make their own
  }
  // Chunk c's partial, zeroed: a copy of zero over kept memory, or make()'s (once per chunk).
  template <class Make>
  Acc& zeroed(Index c, Make& make) {
    Acc& acc = (*this)[c];
    if (keep_)
      acc = zero_;
    else if (c != 0)
      acc = make();
    return acc;
  }
  ~KeptPartials() {
    store_.in_use = false;
    if (!keep_) std::vector<Acc>().swap(store_.partials);
  }
  KeptPartials(const KeptPartials&) = delete;
  KeptPartials& operator=(const KeptPartials&) = delete;
  Acc& operator[](Index c) { return store_.partials[static_cast<size_t>(c)]; }

 private:
  struct Store {
    std::vector<Acc> partials;
    bool in_use = false;
  };
  static Store& kept() {
    thread_local Store store;
    return store;
  }
  Store own_;
  Store& store_;
  bool keep_ = false;
  Acc zero_;
};

}  // namespace detail

// Deterministic map-reduce over row chunks: make() builds a zeroed accumulator, which
// zeroes each chunk's partial (memory kept from the last call: detail::KeptPartials),
// body(acc, begin, size) fills it, and the partials are summed by tree_reduce.
template <class Acc, class Make, class Body>
Acc parallel_reduce_rows(const ChunkPlan& plan, int n_threads, Make&& make, Body&& body) {
  if (plan.n_chunks == 0) return make();
  detail::KeptPartials<Acc> partial(plan.n_chunks, make());
  parallel_for_chunks(plan.n_chunks, n_threads,
                      [&](Index c) { body(partial.zeroed(c, make), plan.begin(c), plan.size(c)); });
  tree_reduce(plan.n_chunks, n_threads, false, [&](Index into, Index from) { partial[into] += partial[from]; });
  return std::move(partial[0]);
}

// A matrix partial result of the reductions below.
struct MatrixAcc {
  Eigen::MatrixXd m;
  MatrixAcc& operator+=(const MatrixAcc& o) {
    m += o.m;
    return *this;
  }
  Index doubles() const { return m.size(); }
};

// Deterministic map-reduce over tasks (chunk, part), for accumulators too large to give every
// thread a chunk of rows of its own: the Hessian of a wide model (p = 2,000 gets one chunk of
// the 32 MiB budget, so one thread did all of it). Each chunk's accumulator is filled by
// n_parts tasks, body(acc, part, begin, size), that write disjoint entries, so that all
// n_chunks * n_parts tasks can run at once; the tasks of part 0 start first (callers number
// the costliest part 0). Every part reads all of its chunk's rows, so the rows go in windows
// of window_rows per chunk, all tasks on one window before the next: the window's rows are
// read from memory once and by the other parts from the shared cache (for p = 2,000 and 32
// column panels, 6.8 GB of reads otherwise). Every entry is still summed over the rows of its
// chunk in order and over the chunks by tree_reduce, so the result depends on neither the
// thread count nor which thread ran which task.
template <class Acc, class Make, class Body>
Acc parallel_reduce_row_parts(const ChunkPlan& plan, Index n_parts, Index window_rows, int n_threads, Make&& make,
                              Body&& body) {
  if (plan.n_chunks == 0 || n_parts <= 0) return make();
  window_rows = std::max<Index>(1, window_rows);
  detail::KeptPartials<Acc> partial(plan.n_chunks, make());
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) { partial.zeroed(c, make); });  // in parallel
  for (Index w0 = 0; w0 < plan.chunk_rows; w0 += window_rows) {
    parallel_for_chunks(plan.n_chunks * n_parts, n_threads, [&](Index t) {
      const Index part = t / plan.n_chunks, c = t % plan.n_chunks;
      const Index size = std::min(window_rows, plan.size(c) - w0);
      if (size > 0) body(partial[c], part, plan.begin(c) + w0, size);
    });
  }
  tree_reduce(plan.n_chunks, n_threads, /*parallel_levels=*/true,
              [&](Index into, Index from) { partial[into] += partial[from]; });
  return std::move(partial[0]);
}

// Boundaries 0 = j_0 < j_1 < ... < j_m = d of at most `count` column panels [j_t, j_t+1) of a
// (d x d) lower triangle holding about equal numbers of entries (the first panels are the
// narrowest: column j holds d - j).
inline std::vector<Index> lower_triangle_panels(Index d, Index count) {
  std::vector<Index> bounds{0};
  if (d <= 0) return bounds;
  count = std::clamp<Index>(count, 1, d);
  const double total = 0.5 * static_cast<double>(d) * static_cast<double>(d + 1);
  double filled = 0.0;
  for (Index j = 0; j < d; ++j) {
    filled += static_cast<double>(d - j);
    const auto panels = static_cast<Index>(bounds.size()) - 1;
    const double target = total * static_cast<double>(panels + 1) / static_cast<double>(count);
    if (j + 1 < d && filled >= target) bounds.push_back(j + 1);
  }
  bounds.push_back(d);
  return bounds;
}

}  // namespace fastinfluence
