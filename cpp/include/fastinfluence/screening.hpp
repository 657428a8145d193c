// Exact top-k of dense scores s_ij = r_i (xa_i . M_j) through a float32
// screening pass: the float32 GEMM runs at over twice the speed of the float64
// one and moves half the bytes, and a rigorous bound on its error decides
// which scores are recomputed in float64 before they may enter a top-k heap.
//
// The result is exactly the top-k of the float64 scores
//   s_ij = fl64(r_i * fl64(dot(xa_i, M_j)))   (dot: exact_dot below),
// ties to the lower row index, for any thread count.
//
// Why it is exact. Let q = d + [intercept] be the number of terms of the dot
// product, u = 2^-24 and v = 2^-53 the unit roundoffs of float32 and float64,
// gamma_q(u) = q u / (1 - q u), and S_ij = sum_k |xa_ik| |M_kj|.
//  * The screening value is a_ij = fl64(r_i * D_ij) with D_ij the float32
//    dot product of the float32-rounded xa_i and M_j (in whatever order the
//    GEMM sums, with or without FMA). Rounding the inputs perturbs each term by
//    at most gamma_2(u) relative, the summation adds gamma_q(u) (Higham, Accuracy
//    and Stability, section 3.1: any order), so
//      |D_ij - xa_i . M_j| <= gamma_{q+2}(u) S_ij + eta_ij,
//    eta_ij the absolute error of operations that underflow into subnormals:
//    at most 2^-150 per conversion or product, so eta_ij <= 2^-147 q (N_i + C_j + 1).
//  * The float64 score differs from r_i (xa_i . M_j) by at most
//    gamma_{q+2}(v) |r_i| S_ij (q - 1 additions, q products, the intercept and
//    the scaling), and a_ij from r_i D_ij by v |r_i D_ij|.
//  * S_ij <= N_i C_j (Cauchy-Schwarz) with N_i = ||xa_i||_2, C_j = ||M_j||_2.
// So |a_ij - s_ij| <= |r_i| (G N_i C_j + eta_ij) with G = gamma_{q+2}(u) +
// gamma_{q+2}(v) + 2 v. With t = 2^-60, G (N_i + t)(C_j + t) exceeds
// G N_i C_j + eta_ij (G t >= q 2^-84 and G t^2 >= q 2^-144), so
//   B_ij = beta_i kappa_j + 2^-50 |a_ij|,  beta_i = |r_i| (N_i + t),
//   kappa_j = G (C_j + t) (1 + 2^-30)
// bounds |a_ij - s_ij|; the factor 1 + 2^-30 and the 2^-50 |a_ij| term cover
// the float64 rounding of N_i, C_j, beta_i kappa_j, a_ij +- B_ij and the
// comparisons (each a few v relative, q < 2^20).
//  * A row enters the harmful heap of column j only if s_ij reaches the heap's
//    floor, the k-th largest float64 score among rows already recomputed.
//    That floor never exceeds the final k-th largest score, so every row of
//    the final top-k (ties included) has a_ij + B_ij >= s_ij >= floor when it is
//    scanned, and is recomputed and offered. Rows with a_ij + B_ij below the
//    floor cannot enter and are skipped. The helpful heap is the same on -s.
//
// The bound needs no overflow or NaN anywhere in float32: the pass runs only
// when every N_i, C_j and r_i is finite, N_i and C_j are at most 2^60, and
// max N * max C <= 2^120 (every partial sum then stays below 2^121 < 2^128);
// and q < 2^20 (G stays below 0.07). Otherwise, or for sparse X, the float64
// pass of top_k.hpp runs.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "parallel.hpp"
#include "problem.hpp"

namespace fastinfluence {

namespace screening {

inline constexpr double kMaxNorm = 0x1p60;          // N_i, C_j at most this
inline constexpr double kMaxProduct = 0x1p120;      // max N * max C at most this
inline constexpr Index kMaxTerms = Index{1} << 20;  // q below this
inline constexpr double kTiny = 0x1p-60;            // t of the bound
inline constexpr Index kRows = 256;                 // rows per float32 block: it and its scores stay in L2
inline constexpr Index kPanel = 128;                // test points per float32 GEMM

// dot(x, v) for x read with a stride: four partial sums in a fixed
// association, so the value of a row depends on its numbers only, never on
// where it sits in memory or in a block.
template <class T>
double exact_dot(const T* x, Index stride, const double* v, Index n) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  Index k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += static_cast<double>(x[k * stride]) * v[k];
    s1 += static_cast<double>(x[(k + 1) * stride]) * v[k + 1];
    s2 += static_cast<double>(x[(k + 2) * stride]) * v[k + 2];
    s3 += static_cast<double>(x[(k + 3) * stride]) * v[k + 3];
  }
  for (; k < n; ++k) s0 += static_cast<double>(x[k * stride]) * v[k];
  return (s0 + s1) + (s2 + s3);
}

inline double gamma(Index terms, double unit) {
  const double t = static_cast<double>(terms) * unit;
  return t / (1.0 - t);
}

}  // namespace screening

// Dense X as float32 row blocks for the screening GEMM, and float64 rows for recomputing.
template <class T>
class DenseRows {
 public:
  explicit DenseRows(const DesignMatrix& X)
      : values_(X.values<T>()),
        n_(X.rows()),
        d_(X.cols()),
        row_major_(X.storage() == DesignMatrix::Storage::row_major) {}

  // Rows [b, b + nb) as a float32 row-major block (float32 C-order X: in place).
  const float* float_block(Index b, Index nb, std::vector<float>& buffer) const {
    if constexpr (std::is_same_v<T, float>) {
      if (row_major_) return values_ + b * d_;
    }
    buffer.resize(static_cast<size_t>(nb * d_));
    for (Index i = 0; i < nb; ++i)
      for (Index k = 0; k < d_; ++k) buffer[static_cast<size_t>(i * d_ + k)] = static_cast<float>(at(b + i, k));
    return buffer.data();
  }
  // The float64 score s_i of row i against the column v (p values, intercept last).
  double score(Index i, double r, const double* v, bool fit_intercept) const {
    const double dot =
        row_major_ ? screening::exact_dot(values_ + i * d_, 1, v, d_) : screening::exact_dot(values_ + i, n_, v, d_);
    return r * (fit_intercept ? dot + v[d_] : dot);
  }
  // ||xa_i||_2 in float64.
  double norm(Index i, bool fit_intercept) const {
    double s = fit_intercept ? 1.0 : 0.0;
    for (Index k = 0; k < d_; ++k) {
      const double x = static_cast<double>(at(i, k));
      s += x * x;
    }
    return std::sqrt(s);
  }

 private:
  T at(Index i, Index k) const { return row_major_ ? values_[i * d_ + k] : values_[k * n_ + i]; }
  const T* values_;
  Index n_, d_;
  bool row_major_;
};

// The screening pass of top_k_scores: offers every (row, column) score to
// heaps.scan_bounded (top_k.hpp) as a float32 value within its bound. Returns
// false, having offered nothing, when the data do not meet the bound's
// conditions (see the top of this file).
template <class T, class Heaps>
bool screened_scan(const DesignMatrix& X, bool fit_intercept, VectorCRef row_scale, MatrixCRef M, int n_threads,
                   Heaps& heaps) {
  const Index n = X.rows(), d = X.cols(), m = M.cols(), q = d + (fit_intercept ? 1 : 0);
  if (q >= screening::kMaxTerms || n == 0 || m == 0) return false;
  const DenseRows<T> rows(X);
  const ChunkPlan plan = plan_chunks(n, 256, 1024);

  // beta_i = |r_i| (N_i + t); a non-finite or too large row refuses the pass
  VectorXd beta(n);
  std::vector<double> chunk_max(static_cast<size_t>(plan.n_chunks), 0.0);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    double largest = 0.0;
    for (Index i = plan.begin(c); i < plan.begin(c) + plan.size(c); ++i) {
      const double norm = rows.norm(i, fit_intercept), r = row_scale[i];
      // "!(<=)": NaN refuses too
      if (!(norm <= screening::kMaxNorm) || !std::isfinite(r)) largest = std::numeric_limits<double>::infinity();
      largest = std::max(largest, norm);
      beta[i] = std::abs(r) * (norm + screening::kTiny);
    }
    chunk_max[static_cast<size_t>(c)] = largest;
  });
  const double max_row = *std::max_element(chunk_max.begin(), chunk_max.end());
  if (!(max_row <= screening::kMaxNorm)) return false;
  // kappa_j = G (C_j + t) (1 + 2^-30)
  const double G = screening::gamma(q + 2, 0x1p-24) + screening::gamma(q + 2, 0x1p-53) + 0x1p-52;
  VectorXd kappa(m);
  double max_col = 0.0;
  for (Index j = 0; j < m; ++j) {
    const double norm = M.col(j).norm();
    if (!(norm <= screening::kMaxNorm)) return false;
    max_col = std::max(max_col, norm);
    kappa[j] = G * (norm + screening::kTiny) * (1.0 + 0x1p-30);
  }
  if (!(max_row * max_col <= screening::kMaxProduct)) return false;
  const Eigen::MatrixXf M32 = M.cast<float>();

  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    std::vector<float> buffer;
    Eigen::MatrixXf S;  // (rows, panel): float32 dot products
    Eigen::ArrayXd a, bound;
    const Index end = plan.begin(c) + plan.size(c);
    for (Index b = plan.begin(c); b < end; b += screening::kRows) {
      const Index nb = std::min(screening::kRows, end - b);
      const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> Xb(
          rows.float_block(b, nb, buffer), nb, d);
      for (Index j0 = 0; j0 < m; j0 += screening::kPanel) {
        const Index w = std::min(screening::kPanel, m - j0);
        // S = Xb M_w + 1 M_b, in float32
        S.noalias() = Xb * M32.block(0, j0, d, w);
        if (fit_intercept) S.rowwise() += M32.row(d).segment(j0, w);
        for (Index jj = 0; jj < w; ++jj) {
          const Index j = j0 + jj;
          // a = r s, the screening values; bound = B_ij
          a = row_scale.segment(b, nb).array() * S.col(jj).cast<double>().array();
          bound = beta.segment(b, nb).array() * kappa[j] + 0x1p-50 * a.abs();
          const double* column = M.col(j).data();
          heaps.scan_bounded(j, b, nb, a, bound,
                             [&](Index i) { return rows.score(i, row_scale[i], column, fit_intercept); });
        }
      }
    }
  });
  return true;
}

}  // namespace fastinfluence
