// The problem every kernel works on, the regularised empirical risk
//
//   R(theta) = (1/n) sum_i s_i loss(y_i, eta_i) + (l2/2) ||w||^2,
//   eta_i = x_i.w + b,  theta = (w, b)  (b present only with an intercept),
//
// its data (Problem), and how the kernels read X in row blocks. Each kernel
// (objective, gram, scoring, top_k) makes one pass over X, in row chunks spread
// over OpenMP threads, with per-chunk accumulators reduced in a fixed order
// (see parallel.hpp).
//
// X is an Eigen Map over a NumPy buffer (float or double, C or F order) or a
// row-major sparse Map over a SciPy CSR matrix (int32 or int64 indices).
// Sums are always accumulated in double.
#pragma once

#include <Eigen/Core>
#include <Eigen/SparseCore>
#include <algorithm>
#include <type_traits>

#include "parallel.hpp"

namespace fastinfluence {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VectorCRef = Eigen::Ref<const VectorXd>;
using MatrixCRef = Eigen::Ref<const MatrixXd>;

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

template <class XType>
inline constexpr bool is_sparse_v = std::is_base_of_v<Eigen::SparseMatrixBase<XType>, XType>;

// Rows per inner block: a dense block (and its double copy for float input)
// stays in cache whatever the number of features; sparse rows cost their
// non-zeros only.
template <class XType>
Index block_rows_for(const XType& X) {
  if constexpr (is_sparse_v<XType>) {
    return 1024;
  } else {
    return std::clamp<Index>((Index{1} << 18) / std::max<Index>(1, X.cols()), 8, 1024);
  }
}

// Calls f(Xb, begin, size) on consecutive inner blocks of rows [begin, begin + size),
// with Xb a double-valued block (a copy only when X holds float).
template <class XType, class F>
void for_each_block(const XType& X, Index begin, Index size, F&& f) {
  using Scalar = typename XType::Scalar;
  const Index step = block_rows_for(X);
  for (Index b = begin; b < begin + size; b += step) {
    const Index nb = std::min(step, begin + size - b);
    if constexpr (std::is_same_v<Scalar, double>) {
      f(X.middleRows(b, nb), b, nb);
    } else if constexpr (is_sparse_v<XType>) {
      const Eigen::SparseMatrix<double, Eigen::RowMajor, typename XType::StorageIndex> converted =
          X.middleRows(b, nb).template cast<double>();
      f(converted, b, nb);
    } else {
      const MatrixXd converted = X.middleRows(b, nb).template cast<double>();
      f(converted, b, nb);
    }
  }
}

// eta = Xb w + b for one block.
template <class Block>
VectorXd linear_predictor(const Block& Xb, VectorCRef theta, bool fit_intercept) {
  const Index d = Xb.cols();
  VectorXd eta = Xb * theta.head(d);
  if (fit_intercept) eta.array() += theta[d];
  return eta;
}

// Chunks for accumulators holding `acc_doubles` doubles, when each row adds
// about `row_doubles` of work: at most 64 chunks, no more than about 32 MiB of
// partial results in all, and at least 16 accumulators' worth of work per
// chunk (every chunk allocates, zeroes and adds one accumulator; a sparse row
// of 50 non-zeros against a 50,000-row accumulator would otherwise spend more
// time on the accumulator than on its rows).
inline ChunkPlan plan_reduction(Index n_rows, Index acc_doubles, double row_doubles) {
  const Index budget = (Index{1} << 22) / std::max<Index>(1, acc_doubles);
  const double rows_for_work = 16.0 * static_cast<double>(acc_doubles) / std::max(1.0, row_doubles);
  const Index min_rows = std::max<Index>(256, static_cast<Index>(std::min(rows_for_work, 1e15)));
  return plan_chunks(n_rows, std::clamp<Index>(budget, 1, 64), min_rows);
}

// Doubles of X one row holds on average: its non-zeros, or d.
template <class XType>
double row_size(const XType& X) {
  if constexpr (is_sparse_v<XType>) {
    return static_cast<double>(X.nonZeros()) / static_cast<double>(std::max<Index>(1, X.rows()));
  } else {
    return static_cast<double>(X.cols());
  }
}

}  // namespace fastinfluence
