// The problem every kernel works on, and how the kernels read X.
//
//   R(theta) = (1/n) sum_i s_i loss(y_i, eta_i) + (l2/2) ||w||^2,
//   eta_i = x_i.w + b,  theta = (w, b)  (b present only with an intercept).
//
// X arrives in one of eight layouts (dense float32/float64 in C or Fortran
// order; CSR with float32/float64 values and int32/int64 indices) and is seen
// through DesignMatrix, a view that names the layout at run time. The kernels
// read it in row blocks of four kinds only, whatever the layout:
//
//   DenseBlock      float64, row-major        (C-order float64: no copy)
//   ColumnBlock     float64, column-major     (F-order float64: no copy)
//   CsrBlock<int32> float64 values, int32 indices
//   CsrBlock<int64> float64 values, int64 indices
//
// float32 blocks are converted to float64 as they are read, in their own
// order (never transposed), into a buffer that stays in cache; sparse blocks
// keep the caller's index arrays. So each kernel body is compiled for four
// block kinds instead of eight layouts, and sums are always accumulated in
// double. (One dense kind would not do: transposing F-order blocks into
// row-major ones made the passes that read X once 1.2-2.8x slower.)
#pragma once

#include <Eigen/Core>
#include <Eigen/SparseCore>
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "parallel.hpp"
#include "products.hpp"

namespace fastinfluence {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VectorCRef = Eigen::Ref<const VectorXd>;
using MatrixCRef = Eigen::Ref<const MatrixXd>;

// The row-block kinds the kernels are compiled for (see the top of this file).
using DenseBlock = Eigen::Map<const RowMatrixXd>;
using ColumnBlock = Eigen::Map<const MatrixXd, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class StorageIndex>
using CsrBlock = Eigen::Map<const Eigen::SparseMatrix<double, Eigen::RowMajor, StorageIndex>>;

template <class Block>
inline constexpr bool is_sparse_v = std::is_base_of_v<Eigen::SparseMatrixBase<Block>, Block>;

// A read-only view of X as the caller holds it; nothing is copied, and the
// caller keeps the buffers alive while a kernel runs. CSR input must be
// canonical (column indices sorted within each row, no duplicates); entries
// outside [indptr[0], indptr[rows]) are never read.
class DesignMatrix {
 public:
  enum class Storage : unsigned char { row_major, column_major, csr };

  // Dense X (rows x cols) of float or double, C order (row_major) or Fortran order.
  template <class T>
  static DesignMatrix dense(const T* values, Index rows, Index cols, bool row_major) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "X holds float or double");
    DesignMatrix X(row_major ? Storage::row_major : Storage::column_major, rows, cols);
    X.float32_ = std::is_same_v<T, float>;
    X.values_ = values;
    return X;
  }

  // CSR X (rows x cols): indptr has rows + 1 entries; indices and values are
  // read at [indptr[0], indptr[rows]).
  template <class T, class I>
  static DesignMatrix csr(Index rows, Index cols, const I* indptr, const I* indices, const T* values) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "X holds float or double");
    static_assert(std::is_same_v<I, std::int32_t> || std::is_same_v<I, std::int64_t>, "int32 or int64 indices");
    DesignMatrix X(Storage::csr, rows, cols);
    X.float32_ = std::is_same_v<T, float>;
    X.index64_ = std::is_same_v<I, std::int64_t>;
    X.values_ = values;
    X.indptr_ = indptr;
    X.indices_ = indices;
    return X;
  }

  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  Storage storage() const { return storage_; }
  bool is_sparse() const { return storage_ == Storage::csr; }
  bool is_float32() const { return float32_; }
  bool has_int64_indices() const { return index64_; }

  // Stored entries: the non-zeros of CSR X, rows * cols of dense X.
  Index nonZeros() const {
    if (!is_sparse()) return rows_ * cols_;
    return index64_ ? nnz<std::int64_t>() : nnz<std::int32_t>();
  }

  // The raw buffers, for the block readers below.
  template <class T>
  const T* values() const {
    return static_cast<const T*>(values_);
  }
  template <class I>
  const I* indptr() const {
    return static_cast<const I*>(indptr_);
  }
  template <class I>
  const I* indices() const {
    return static_cast<const I*>(indices_);
  }

 private:
  DesignMatrix(Storage storage, Index rows, Index cols) : storage_(storage), rows_(rows), cols_(cols) {}
  template <class I>
  Index nnz() const {
    const I* p = indptr<I>();
    return rows_ == 0 ? 0 : static_cast<Index>(p[rows_] - p[0]);
  }

  Storage storage_;
  bool float32_ = false;
  bool index64_ = false;
  Index rows_ = 0, cols_ = 0;
  const void* values_ = nullptr;
  const void* indptr_ = nullptr;
  const void* indices_ = nullptr;
};

// Doubles of X one row holds on average: its non-zeros, or d.
inline double row_size(const DesignMatrix& X) {
  if (X.is_sparse()) return static_cast<double>(X.nonZeros()) / static_cast<double>(std::max<Index>(1, X.rows()));
  return static_cast<double>(X.cols());
}

// Rows per block: a dense block (and its float64 copy for float32 input) stays
// in cache whatever the number of features; sparse rows cost their non-zeros only.
inline Index block_rows(const DesignMatrix& X) {
  if (X.is_sparse()) return 1024;
  return std::clamp<Index>((Index{1} << 18) / std::max<Index>(1, X.cols()), 8, 1024);
}

namespace detail {

// One traversal's conversion buffers, reused from block to block.
struct BlockBuffers {
  VectorXd values;  // float64 copies of float32 values
  std::vector<std::int32_t> outer32;
  std::vector<std::int64_t> outer64;
  std::vector<std::int32_t> inner32;  // gathered rows only
  std::vector<std::int64_t> inner64;
  bool in_use = false;

  double* doubles(Index n) {
    if (values.size() < n) values.resize(n);
    return values.data();
  }
  template <class I>
  std::vector<I>& outer() {
    if constexpr (std::is_same_v<I, std::int32_t>)
      return outer32;
    else
      return outer64;
  }
  template <class I>
  std::vector<I>& inner() {
    if constexpr (std::is_same_v<I, std::int32_t>)
      return inner32;
    else
      return inner64;
  }
};

// The calling thread's buffers, kept from one traversal to the next: a chunk
// allocating its own would, for float32 X, get memory the allocator had just
// returned to the system and fault it in again page by page (46,000 page
// faults and twice the time of float64 per row_quadratic_forms call at
// n = 100,000, d = 100). A nested traversal gets fresh buffers, and buffers
// grown past 4 MiB (sparse blocks of very full rows) are not kept.
class ThreadBuffers {
 public:
  ThreadBuffers() : buf_(kept().in_use ? own_ : kept()) { buf_.in_use = true; }
  ~ThreadBuffers() {
    buf_.in_use = false;
    constexpr Index kKeepDoubles = Index{1} << 19;
    if (&buf_ == &kept() && buf_.values.size() > kKeepDoubles) buf_ = BlockBuffers();
  }
  ThreadBuffers(const ThreadBuffers&) = delete;
  ThreadBuffers& operator=(const ThreadBuffers&) = delete;
  BlockBuffers& get() { return buf_; }

 private:
  static BlockBuffers& kept() {
    thread_local BlockBuffers buffers;
    return buffers;
  }
  BlockBuffers own_;
  BlockBuffers& buf_;
};

// f(block) for rows [b, b + nb) of dense X.
template <class T, class F>
void dense_block(const DesignMatrix& X, Index b, Index nb, BlockBuffers& buf, F& f) {
  const Index n = X.rows(), d = X.cols();
  const T* values = X.values<T>();
  if (X.storage() == DesignMatrix::Storage::row_major) {
    if constexpr (std::is_same_v<T, double>) {
      f(DenseBlock(values + b * d, nb, d));
    } else {
      using Source = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
      double* copy = buf.doubles(nb * d);
      Eigen::Map<RowMatrixXd>(copy, nb, d) = Source(values + b * d, nb, d).template cast<double>();
      f(DenseBlock(copy, nb, d));
    }
  } else {
    if constexpr (std::is_same_v<T, double>) {
      f(ColumnBlock(values + b, nb, d, Eigen::OuterStride<>(n)));
    } else {
      using Source = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>, 0, Eigen::OuterStride<>>;
      double* copy = buf.doubles(nb * d);
      Eigen::Map<MatrixXd>(copy, nb, d) = Source(values + b, nb, d, Eigen::OuterStride<>(n)).template cast<double>();
      f(ColumnBlock(copy, nb, d, Eigen::OuterStride<>(nb)));
    }
  }
}

// f(block) for rows [b, b + nb) of CSR X: the row pointers rebased to 0 (nb + 1
// indices), the caller's column indices, its values or their float64 copy.
template <class T, class I, class F>
void csr_block(const DesignMatrix& X, Index b, Index nb, BlockBuffers& buf, F& f) {
  const I* indptr = X.indptr<I>();
  const I start = indptr[b];
  std::vector<I>& outer = buf.outer<I>();
  outer.resize(static_cast<size_t>(nb) + 1);
  for (Index i = 0; i <= nb; ++i) outer[static_cast<size_t>(i)] = static_cast<I>(indptr[b + i] - start);
  const Index nnz = static_cast<Index>(outer[static_cast<size_t>(nb)]);
  const T* values = X.values<T>() + start;
  const double* block_values;
  if constexpr (std::is_same_v<T, double>) {
    block_values = values;
  } else {
    double* copy = buf.doubles(nnz);
    for (Index k = 0; k < nnz; ++k) copy[k] = static_cast<double>(values[k]);
    block_values = copy;
  }
  f(CsrBlock<I>(nb, X.cols(), nnz, outer.data(), X.indices<I>() + start, block_values));
}

template <class F>
void any_block(const DesignMatrix& X, Index b, Index nb, BlockBuffers& buf, F& f) {
  if (X.is_sparse()) {
    if (X.is_float32()) {
      if (X.has_int64_indices())
        csr_block<float, std::int64_t>(X, b, nb, buf, f);
      else
        csr_block<float, std::int32_t>(X, b, nb, buf, f);
    } else {
      if (X.has_int64_indices())
        csr_block<double, std::int64_t>(X, b, nb, buf, f);
      else
        csr_block<double, std::int32_t>(X, b, nb, buf, f);
    }
  } else {
    if (X.is_float32())
      dense_block<float>(X, b, nb, buf, f);
    else
      dense_block<double>(X, b, nb, buf, f);
  }
}

}  // namespace detail

// Calls f(Xb, b, nb) on consecutive blocks of rows [b, b + nb) covering
// [begin, begin + size), Xb one of the four block kinds. f is compiled for all
// four: a body meant for dense or sparse blocks only guards itself with
// `if constexpr (is_sparse_v<Block>)`.
template <class F>
void for_each_block(const DesignMatrix& X, Index begin, Index size, F&& f) {
  const Index step = block_rows(X);
  detail::ThreadBuffers buffers;
  detail::BlockBuffers& buf = buffers.get();
  for (Index b = begin; b < begin + size; b += step) {
    const Index nb = std::min(step, begin + size - b);
    auto call = [&](const auto& Xb) { f(Xb, b, nb); };
    detail::any_block(X, b, nb, buf, call);
  }
}

// Calls f(Xb, first, count) on blocks holding the listed rows of X in order
// (repeats allowed), rows[first, first + count): a run of consecutive rows is
// read in place like for_each_block, any other selection is gathered.
template <class F>
void for_each_gathered_block(const DesignMatrix& X, const std::vector<Index>& rows, F&& f) {
  const Index step = block_rows(X), total = static_cast<Index>(rows.size());
  detail::ThreadBuffers buffers;
  detail::BlockBuffers& buf = buffers.get();
  RowMatrixXd dense;  // gathered dense rows
  for (Index first = 0; first < total; first += step) {
    const Index count = std::min(step, total - first);
    const Index* sel = rows.data() + first;
    bool consecutive = true;
    for (Index i = 1; i < count && consecutive; ++i) consecutive = sel[i] == sel[0] + i;
    auto call = [&](const auto& Xb) { f(Xb, first, count); };
    if (consecutive) {
      detail::any_block(X, sel[0], count, buf, call);
      continue;
    }
    if (!X.is_sparse()) {
      dense.resize(count, X.cols());
      for (Index i = 0; i < count; ++i) {
        auto copy_row = [&](const auto& row) { dense.row(i) = row; };  // converted like any block
        if (X.is_float32())
          detail::dense_block<float>(X, sel[i], 1, buf, copy_row);
        else
          detail::dense_block<double>(X, sel[i], 1, buf, copy_row);
      }
      f(DenseBlock(dense.data(), count, X.cols()), first, count);
      continue;
    }
    // CSR: concatenate the selected rows' entries
    auto gather = [&](auto scalar_tag, auto index_tag) {
      using T = decltype(scalar_tag);
      using I = decltype(index_tag);
      const T* source = X.values<T>();
      const I* indptr = X.indptr<I>();
      const I* indices = X.indices<I>();
      std::vector<I>& outer = buf.outer<I>();
      std::vector<I>& inner = buf.inner<I>();
      outer.assign(1, I{0});
      inner.clear();
      Index nnz = 0;
      for (Index i = 0; i < count; ++i) nnz += static_cast<Index>(indptr[sel[i] + 1] - indptr[sel[i]]);
      double* values = buf.doubles(nnz);
      Index k = 0;
      for (Index i = 0; i < count; ++i) {
        for (I e = indptr[sel[i]]; e < indptr[sel[i] + 1]; ++e, ++k) {
          inner.push_back(indices[e]);
          values[k] = static_cast<double>(source[e]);
        }
        outer.push_back(static_cast<I>(k));
      }
      f(CsrBlock<I>(count, X.cols(), nnz, outer.data(), inner.data(), values), first, count);
    };
    if (X.is_float32()) {
      if (X.has_int64_indices())
        gather(float{}, std::int64_t{});
      else
        gather(float{}, std::int32_t{});
    } else {
      if (X.has_int64_indices())
        gather(double{}, std::int64_t{});
      else
        gather(double{}, std::int32_t{});
    }
  }
}

// The data of one problem; views only, nothing is copied.
template <class XType>
struct Problem {
  const XType& X;
  VectorCRef y;
  VectorCRef weights;  // empty means every s_i = 1
  bool fit_intercept;
  double l2;

  Index n_rows() const { return X.rows(); }
  Index n_features() const { return X.cols(); }
  Index n_params() const { return X.cols() + (fit_intercept ? 1 : 0); }
  double weight(Index i) const { return weights.size() == 0 ? 1.0 : weights[i]; }
};

// eta = Xb w + b for one block.
template <class Block>
VectorXd linear_predictor(const Block& Xb, VectorCRef theta, bool fit_intercept) {
  const Index d = Xb.cols();
  VectorXd eta = VectorXd::Constant(Xb.rows(), fit_intercept ? theta[d] : 0.0);
  gemm(Xb, theta.head(d), eta);
  return eta;
}

// Chunks for accumulators holding `acc_doubles` doubles, when each row adds
// about `row_doubles` of work: at most 64 chunks, no more than about 32 MiB of
// partial results in all, and at least 16 accumulators' worth of work per
// chunk (every chunk allocates, zeroes and adds one accumulator; a sparse row
// of 50 non-zeros against a 50,000-row accumulator would otherwise spend more
// time on the accumulator than on its rows).
inline Index accumulator_budget(Index acc_doubles) {
  return std::clamp<Index>((Index{1} << 22) / std::max<Index>(1, acc_doubles), 1, 64);
}
inline ChunkPlan plan_reduction(Index n_rows, Index acc_doubles, double row_doubles) {
  const double rows_for_work = 16.0 * static_cast<double>(acc_doubles) / std::max(1.0, row_doubles);
  const Index min_rows = std::max<Index>(256, static_cast<Index>(std::min(rows_for_work, 1e15)));
  return plan_chunks(n_rows, accumulator_budget(acc_doubles), min_rows);
}

}  // namespace fastinfluence
