// Dense matrix products of the block loops, with Eigen's GEMM kernels and packing
// buffers that each thread keeps from call to call.
//
// An Eigen product expression packs its operands into buffers it allocates per call, on the
// heap once they pass EIGEN_STACK_ALLOCATION_LIMIT (128 KiB: a block of 1024 rows of 100
// features does). glibc returned such buffers to the system when they were freed (an
// mmap'ed chunk, or a heap top past the trim threshold), so the next block's product mapped
// and faulted them in again, and every unmapping interrupted the other threads to flush
// their TLBs. Measured on a 2-core AMD EPYC (Zen 5, AVX-512), n = 100,000, d = 100: the
// Hessian's rank updates took 0.064-0.091 s on one thread through Eigen's expressions and
// 0.020 s here (OpenBLAS's dsyrk: 0.032 s); Influence's constructor on W2
// (benchmarks/run.py) went from 0.049-0.054 s to 0.020-0.021 s.
//
// The kernels are Eigen's own (general_matrix_matrix_product and
// general_matrix_matrix_triangular_product, which its product expressions call, with the
// blocking sizes they compute), reached through Eigen 3.4's internal interface: the build
// pins Eigen to 3.4 (pyproject.toml, CMakeLists.txt). Blocking depends on the operands'
// shapes and the CPU's caches, never on the thread count, so results stay identical for any
// number of threads.
#pragma once

#include <Eigen/Core>
#include <cassert>
#include <type_traits>
#include <utility>

static_assert(EIGEN_VERSION_AT_LEAST(3, 4, 0) && !EIGEN_VERSION_AT_LEAST(3, 4, 90),
              "products.hpp calls Eigen 3.4's internal product kernels");

namespace fastinfluence {

namespace detail {

// A per-thread buffer grown on demand and kept from call to call, for the reason above; not
// kept past kKeepBytes once a use ends (a call that large amortises its own allocation).
template <class Scalar>
class KeptBuffer {
 public:
  static constexpr Eigen::Index kKeepBytes = Eigen::Index{8} << 20;
  Scalar* get(Eigen::Index size) {
    if (buffer_.size() < size) buffer_.resize(size);
    return buffer_.data();
  }
  // Called when a use ends: a buffer grown past kKeepBytes is released.
  void trim() {
    if (buffer_.size() * Eigen::Index{sizeof(Scalar)} > kKeepBytes) buffer_.resize(0);
  }
  bool in_use = false;

 private:
  Eigen::Matrix<Scalar, Eigen::Dynamic, 1> buffer_;  // aligned as Eigen's packets need
};

// The products' two packing buffers: a product never calls another.
template <class Scalar>
KeptBuffer<Scalar>& packing_buffer(int which) {
  thread_local KeptBuffer<Scalar> buffers[2];
  return buffers[which];
}

}  // namespace detail

// Scratch for a block loop's temporaries, in the calling thread's kept buffer while this
// object lives: at least `size` scalars, aligned for Eigen's packets. A second one alive on
// the same thread at once gets memory of its own.
template <class Scalar>
class Scratch {
 public:
  explicit Scratch(Eigen::Index size) {
    thread_local detail::KeptBuffer<Scalar> kept;
    if (!kept.in_use) {
      data_ = kept.get(size);
      kept_ = &kept;
      kept.in_use = true;
    } else {
      own_.resize(size);
      data_ = own_.data();
    }
  }
  ~Scratch() {
    if (kept_ == nullptr) return;
    kept_->in_use = false;
    kept_->trim();
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // The scratch as a (rows x cols) matrix of the given storage order; rows * cols <= size.
  template <int Order = Eigen::ColMajor>
  Eigen::Map<Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Order>, Eigen::AlignedMax> matrix(
      Eigen::Index rows, Eigen::Index cols) {
    return {data_, rows, cols};
  }

 private:
  detail::KeptBuffer<Scalar>* kept_ = nullptr;
  Eigen::Matrix<Scalar, Eigen::Dynamic, 1> own_;
  Scalar* data_ = nullptr;
};

namespace detail {

// Eigen's blocking sizes for a (rows x depth) by (depth x cols) product into a
// `result_order` result, computed as its gemm_blocking_space computes them, with the
// thread's kept buffers as the packing space. `l3` false: no blocking of the columns (the
// triangular product packs all of its right-hand side at once).
template <class Scalar>
class KeptBlocking : public Eigen::internal::level3_blocking<Scalar, Scalar> {
 public:
  KeptBlocking(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, int result_order, bool l3) {
    const bool transposed = result_order == Eigen::RowMajor;  // Eigen computes C^T = B^T A^T
    this->m_mc = transposed ? cols : rows;
    this->m_nc = transposed ? rows : cols;
    this->m_kc = depth;
    if (l3) {
      Eigen::internal::computeProductBlockingSizes<Scalar, Scalar, 1>(this->m_kc, this->m_mc, this->m_nc,
                                                                      Eigen::Index{1});
    } else {
      Eigen::Index n = this->m_nc;
      Eigen::internal::computeProductBlockingSizes<Scalar, Scalar, 1>(this->m_kc, this->m_mc, n, Eigen::Index{1});
    }
    this->m_blockA = packing_buffer<Scalar>(0).get(this->m_mc * this->m_kc);
    this->m_blockB = packing_buffer<Scalar>(1).get(this->m_kc * this->m_nc);
  }
  ~KeptBlocking() {
    packing_buffer<Scalar>(0).trim();
    packing_buffer<Scalar>(1).trim();
  }
  KeptBlocking(const KeptBlocking&) = delete;
  KeptBlocking& operator=(const KeptBlocking&) = delete;
};

template <class E>
constexpr int storage_order() {
  return (std::decay_t<E>::Flags & Eigen::RowMajorBit) ? Eigen::RowMajor : Eigen::ColMajor;
}

// Whether T is a dense expression: derived from some DenseBase, which a VectorBlock (head(),
// segment()) is through its Block, not DenseBase<VectorBlock>.
template <class D>
std::true_type dense_base(const Eigen::DenseBase<D>*);
std::false_type dense_base(...);

template <class E>
constexpr bool is_memory_block() {
  using T = std::decay_t<E>;
  if constexpr (decltype(dense_base(std::declval<const T*>()))::value)  // Eigen's own rule (HasUsableDirectAccess)
    return bool(T::Flags & Eigen::DirectAccessBit) && int(T::InnerStrideAtCompileTime) == 1;
  else
    return false;
}

// Whether a block of memory is one run of memory: its inner vectors follow each other.
template <class E>
bool is_contiguous(const E& e) {
  return e.outerStride() == e.innerSize();
}

// c += alpha A b for a vector b and a contiguous A, in one sequential sweep of A: a dot
// product per row of a row-major A, an axpy per column of a column-major one. Eigen's
// matrix-vector kernels walk several rows (columns) at once instead; on a 2-core AMD EPYC
// (Zen 5), n = 100,000, d = 100, one thread: X w took 10.8-11.5 ms that way and 3.8-4.4 ms
// by rows; X w then X^T r on each 1,024-row block, 11.2 ms and 6.5 ms. Each c_i is summed in
// the same order wherever A lies in memory (unaligned loads from its first element; the
// vector c keeps its own alignment), so results do not depend on the caller's addresses.
template <class A, class B, class C, class Scalar>
void contiguous_matrix_vector(const A& a, const B& b, C& c, Scalar alpha) {
  if constexpr (storage_order<A>() == Eigen::RowMajor) {
    for (Eigen::Index i = 0; i < a.rows(); ++i) c.coeffRef(i) += alpha * a.row(i).dot(b);
  } else {
    for (Eigen::Index j = 0; j < a.cols(); ++j) c += (alpha * b.coeff(j)) * a.col(j);
  }
}

static_assert(is_memory_block<Eigen::VectorBlock<Eigen::VectorXd>>(), "head() and segment() are blocks of memory");
static_assert(!is_memory_block<Eigen::Block<Eigen::MatrixXd, 1, Eigen::Dynamic>>(),
              "a row of a column-major matrix is strided");

}  // namespace detail

// C += alpha A B, for C not overlapping A or B. Dense blocks of memory with unit inner stride
// (matrices, maps, blocks, refs, and transposes of them; any storage orders) go through
// Eigen's kernels with kept buffers, matrix-vector products with a contiguous matrix through
// contiguous_matrix_vector. A sparse A, other matrix-vector products, and products so
// small that Eigen computes them coefficient by coefficient (rows + cols + depth below
// EIGEN_GEMM_TO_COEFFBASED_THRESHOLD) go through Eigen's expressions, which pack nothing.
template <class A, class B, class C>
void gemm(const A& a, const B& b, C&& c, typename std::decay_t<C>::Scalar alpha = 1) {
  using Scalar = typename std::decay_t<C>::Scalar;
  static_assert(std::is_same_v<typename A::Scalar, Scalar> && std::is_same_v<typename B::Scalar, Scalar>);
  const Eigen::Index rows = c.rows(), cols = c.cols(), depth = a.cols();
  assert(a.rows() == rows && b.rows() == depth && b.cols() == cols);
  if (rows == 0 || cols == 0 || depth == 0) return;
  constexpr bool blocks = detail::is_memory_block<A>() && detail::is_memory_block<B>() && detail::is_memory_block<C>();
  if constexpr (blocks) {
    // a matrix-vector product with a contiguous A (a dense block of C-ordered rows, or its
    // transpose) sweeps A once
    if (cols == 1 && detail::is_contiguous(a)) {
      auto cc = c.col(0);
      detail::contiguous_matrix_vector(a, b.col(0), cc, alpha);
      return;
    }
    if (rows == 1 && detail::is_contiguous(b)) {
      auto cr = c.row(0).transpose();
      detail::contiguous_matrix_vector(b.transpose(), a.row(0).transpose(), cr, alpha);
      return;
    }
    if (rows > 1 && cols > 1 && rows + cols + depth >= EIGEN_GEMM_TO_COEFFBASED_THRESHOLD) {
      constexpr int order_c = detail::storage_order<C>();
      using Kernel =
          Eigen::internal::general_matrix_matrix_product<Eigen::Index, Scalar, detail::storage_order<A>(), false,
                                                         Scalar, detail::storage_order<B>(), false, order_c, 1>;
      detail::KeptBlocking<Scalar> blocking(rows, cols, depth, order_c, true);
      Kernel::run(rows, cols, depth, a.data(), a.outerStride(), b.data(), b.outerStride(), c.data(), 1, c.outerStride(),
                  alpha, blocking, nullptr);
      return;
    }
  }
  c.noalias() += alpha * (a * b);
}

// The lower triangle of C += alpha U U^T, for U (size x depth) a block of memory with unit
// inner stride in either storage order (a transposed block of rows included) and C a
// column-major block: Eigen's rankUpdate, with kept packing buffers.
template <class U, class C>
void rank_update_lower(const U& u, C&& c, typename std::decay_t<C>::Scalar alpha) {
  using Scalar = typename std::decay_t<C>::Scalar;
  static_assert(std::is_same_v<typename U::Scalar, Scalar>);
  static_assert(detail::storage_order<C>() == Eigen::ColMajor);
  static_assert(detail::is_memory_block<U>() && detail::is_memory_block<C>(), "blocks of memory, unit inner stride");
  const Eigen::Index size = u.rows(), depth = u.cols();
  assert(c.rows() == size && c.cols() == size);
  if (size == 0 || depth == 0) return;
  constexpr int order_u = detail::storage_order<U>();
  constexpr int order_ut = order_u == Eigen::RowMajor ? Eigen::ColMajor : Eigen::RowMajor;
  using Kernel =
      Eigen::internal::general_matrix_matrix_triangular_product<Eigen::Index, Scalar, order_u, false, Scalar, order_ut,
                                                                false, Eigen::ColMajor, 1, Eigen::Lower>;
  detail::KeptBlocking<Scalar> blocking(size, size, depth, Eigen::ColMajor, false);
  Kernel::run(size, depth, u.data(), u.outerStride(), u.data(), u.outerStride(), c.data(), 1, c.outerStride(), alpha,
              blocking);
}

// C = A B + 1 r^T, for C sized (A.rows() x B.cols()) and R a block of 0 or 1 rows: r^T is
// R's row when it has one (the intercept's row of an augmented parameter matrix) and is
// added to every row of C. Written first, so that the product adds to it: one pass over C
// fewer than adding it afterwards.
template <class A, class B, class R, class C>
void affine_product(const A& a, const B& b, const R& r, C&& c) {
  assert(r.rows() <= 1);
  if (r.rows() == 1)
    c.rowwise() = r.row(0);
  else
    c.setZero();
  gemm(a, b, c);
}

}  // namespace fastinfluence
