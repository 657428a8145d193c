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
//    eta_ij the absolute error of operations that underflow: at most 2^-126
//    per conversion or product even where the thread flushes subnormals to
//    zero (FTZ/DAZ), so eta_ij <= 2^-124 q (N_i + C_j + 1).
//  * The float64 score differs from r_i (xa_i . M_j) by at most
//    gamma_{q+2}(v) |r_i| S_ij (q - 1 additions, q products, the intercept and
//    the scaling), and a_ij from r_i D_ij by v |r_i D_ij|.
//  * S_ij <= N_i C_j (Cauchy-Schwarz) with N_i = ||xa_i||_2, C_j = ||M_j||_2.
// So |a_ij - s_ij| <= |r_i| (G N_i C_j + eta_ij) + e with G = gamma_{q+2}(u) +
// gamma_{q+2}(v) + 2 v, e <= 2^-1073 the absolute underflow of the two float64
// products by r_i. With t = 2^-50, G (N_i + t)(C_j + t) exceeds
// G N_i C_j + eta_ij (G t >= q 2^-74 and G t^2 >= q 2^-124), so
//   B_ij = beta_i kappa_j + 2^-50 |a_ij| + 2^-1000,  beta_i = |r_i| (N_i + t),
//   kappa_j = G (C_j + t) (1 + 2^-30)
// bounds |a_ij - s_ij|: the factor 1 + 2^-30 covers the float64 rounding of
// N_i, C_j and beta_i kappa_j (each a few v relative, p < 2^20 entries), the
// 2^-1000 the underflow of beta_i and beta_i kappa_j (kappa_j < 2^56) and e,
// and a_ij +- B_ij round monotonically (s_ij is a float64).
//  * A row enters the harmful heap of column j only if s_ij reaches the heap's
//    floor, the k-th largest float64 score among rows already recomputed.
//    That floor never exceeds the final k-th largest score, so every row of
//    the final top-k (ties included) has a_ij + B_ij >= s_ij >= floor when it is
//    scanned, and is recomputed and offered. Rows with a_ij + B_ij below the
//    floor cannot enter and are skipped. The helpful heap is the same on -s.
//
// The bound needs no overflow or NaN anywhere: the pass runs only when every
// N_i, C_j and r_i is finite, N_i and C_j are at most 2^60, max N * max C <=
// 2^120 (every float32 partial sum then stays below 2^121 < 2^128), max beta *
// max C <= 2^1000 (so a_ij and B_ij stay finite in float64), and M has fewer
// than 2^20 rows (G stays below 0.07). The float32 copies are made only then.
// Otherwise, or for sparse X, the float64 pass of top_k.hpp runs.
//
// The multinomial scores s_ij = sum_k R_ik (xa_i . M_kj) (multinomial_scoring.hpp)
// are the dot products of z_i = (R_i1 xa_i, .., R_iK xa_i) with M_j (K q terms).
// In float32 each class's dot product has the error above, its product with the
// float32-rounded R_ik two more roundings and the sum over classes K - 1, so
// |D_ij - s_ij| <= gamma_{q+K+4}(u) sum |z_i| |M_j| + eta_ij <= gamma_{q+K+4}(u)
// ||R_i|| N_i C_j + eta_ij, C_j = ||M_j|| over all K q entries; R_i enters float32,
// so the underflow terms carry three factors and t = 2^-34 covers them, flushed
// to zero or not (beta_i = (||R_i|| + t)(N_i + t); G t^3 >= (q + K) 2^-126 >=
// K 2^-126, and the two-factor terms as above). The pass needs ||R_i||, N_i,
// C_j <= 2^40.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "parallel.hpp"
#include "problem.hpp"
#include "products.hpp"

namespace fastinfluence {

using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace screening {

inline constexpr double kMaxProduct = 0x1p120;      // max N * max C at most this
inline constexpr double kMaxScore = 0x1p1000;       // max beta * max C at most this
inline constexpr double kFloor = 0x1p-1000;         // the bound's absolute term
inline constexpr Index kMaxTerms = Index{1} << 20;  // q below this
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

// What both score policies below hold: X's rows, M and its float32 copy.
template <class T>
class DenseScores {
 public:
  const DenseRows<T>& rows() const { return rows_; }
  const MatrixCRef& M() const { return M_; }
  // The float32 copy of M, once the checks have passed (a value beyond float32 is undefined behaviour).
  void make_float_copies() { M32_ = M_.template cast<float>(); }

 protected:
  DenseScores(const DesignMatrix& X, bool fit_intercept, const MatrixCRef& M)
      : rows_(X),
        fit_intercept_(fit_intercept),
        M_(M),
        d_(X.cols()),
        q_(X.cols() + (fit_intercept ? 1 : 0)),
        M32_(M.cast<float>()) {}
  DenseRows<T> rows_;
  bool fit_intercept_;
  const MatrixCRef& M_;
  Index d_, q_;
  Eigen::MatrixXf M32_;
};

// The scores of top_k_scores, s_ij = r_i (xa_i . M_j): r_i is applied in float64.
template <class T>
class LinearScores : public DenseScores<T> {
 public:
  static constexpr double kTiny = 0x1p-50;    // t of the bound
  static constexpr double kMaxNorm = 0x1p60;  // N_i, C_j at most this
  LinearScores(const DesignMatrix& X, bool fit_intercept, const VectorCRef& r, const MatrixCRef& M)
      : DenseScores<T>(X, fit_intercept, M), r_(r) {}
  Index terms() const { return this->q_; }
  // beta_i from N_i, or NaN when row i cannot be screened.
  double row_factor(Index i, double norm) const {
    const double r = r_[i];
    return std::isfinite(r) && norm <= kMaxNorm ? std::abs(r) * (norm + kTiny)
                                                : std::numeric_limits<double>::quiet_NaN();
  }
  // a = r_b (Xb M_w + 1 M_b) for this panel, the float32 GEMM; S, T scratch
  void screen(const Eigen::Map<const RowMatrixXf>& Xb, Index b, Index j0, Index w, Eigen::MatrixXf& S, Eigen::MatrixXf&,
              Index jj, Eigen::ArrayXd& a, bool new_panel) const {
    const Index d = this->d_;
    if (new_panel) {
      S.resize(Xb.rows(), w);
      affine_product(Xb, this->M32_.block(0, j0, d, w), this->M32_.block(d, j0, this->fit_intercept_ ? 1 : 0, w), S);
    }
    a = r_.segment(b, Xb.rows()).array() * S.col(jj).cast<double>().array();
  }
  double exact(Index i, Index j) const {
    return this->rows_.score(i, r_[i], this->M_.col(j).data(), this->fit_intercept_);
  }

 private:
  const VectorCRef& r_;
};

// The multinomial scores s_ij = sum_k R_ik (xa_i . M_kj), R (n x K) row-major.
template <class T>
class MultinomialScores : public DenseScores<T> {
 public:
  static constexpr double kTiny = 0x1p-34;    // t of the bound
  static constexpr double kMaxNorm = 0x1p40;  // ||R_i||, N_i, C_j at most this
  MultinomialScores(const DesignMatrix& X, bool fit_intercept, const Eigen::Ref<const RowMatrixXd>& R,
                    const MatrixCRef& M)
      : DenseScores<T>(X, fit_intercept, M), R_(R), K_(R.cols()) {}
  void make_float_copies() {
    DenseScores<T>::make_float_copies();
    R32_ = R_.template cast<float>();
  }
  Index terms() const { return this->q_ + K_ + 2; }
  double row_factor(Index i, double norm) const {
    const double r = R_.row(i).norm();
    return r <= kMaxNorm && norm <= kMaxNorm ? (r + kTiny) * (norm + kTiny) : std::numeric_limits<double>::quiet_NaN();
  }
  // a = sum_k diag(R_k) (Xb M_k,w + 1 M_kb,w), in float32
  void screen(const Eigen::Map<const RowMatrixXf>& Xb, Index b, Index j0, Index w, Eigen::MatrixXf& S,
              Eigen::MatrixXf& scratch, Index jj, Eigen::ArrayXd& a, bool new_panel) const {
    const Index nb = Xb.rows(), d = this->d_, q = this->q_;
    if (new_panel) {
      S.setZero(nb, w);
      for (Index k = 0; k < K_; ++k) {
        scratch.resize(nb, w);
        affine_product(Xb, this->M32_.block(k * q, j0, d, w),
                       this->M32_.block(k * q + d, j0, this->fit_intercept_ ? 1 : 0, w), scratch);
        S += R32_.col(k).segment(b, nb).asDiagonal() * scratch;
      }
    }
    a = S.col(jj).cast<double>().array();
  }
  // sum_k R_ik (xa_i . M_kj), the classes in order
  double exact(Index i, Index j) const {
    double s = 0.0;
    for (Index k = 0; k < K_; ++k)
      s += this->rows_.score(i, R_(i, k), this->M_.col(j).data() + k * this->q_, this->fit_intercept_);
    return s;
  }

 private:
  const Eigen::Ref<const RowMatrixXd>& R_;
  Index K_;
  RowMatrixXf R32_;
};

// The screening pass: offers every (row, column) score to heaps.scan_bounded
// (top_k.hpp) as a float32 value within its bound. Returns false, having
// offered nothing, when the data do not meet the bound's conditions (see the
// top of this file).
template <class Scores, class Heaps>
bool screened_scan(const DesignMatrix& X, bool fit_intercept, Scores& scores, int n_threads, Heaps& heaps) {
  const Index n = X.rows(), d = X.cols(), m = scores.M().cols();
  if (scores.terms() >= screening::kMaxTerms || scores.M().rows() >= screening::kMaxTerms || n == 0 || m == 0)
    return false;
  const ChunkPlan plan = plan_chunks(n, 256, 1024);

  // beta_i; a row that cannot be screened (NaN) refuses the pass
  VectorXd beta(n);
  std::vector<double> chunk_norm(static_cast<size_t>(plan.n_chunks), 0.0), chunk_beta(chunk_norm);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    double largest = 0.0, largest_beta = 0.0;
    for (Index i = plan.begin(c); i < plan.begin(c) + plan.size(c); ++i) {
      const double norm = scores.rows().norm(i, fit_intercept);
      beta[i] = scores.row_factor(i, norm);
      // "!(<=)": NaN refuses too
      if (!(beta[i] <= std::numeric_limits<double>::max())) largest = std::numeric_limits<double>::infinity();
      largest = std::max(largest, norm);
      largest_beta = std::max(largest_beta, beta[i]);
    }
    chunk_norm[static_cast<size_t>(c)] = largest;
    chunk_beta[static_cast<size_t>(c)] = largest_beta;
  });
  const double max_row = *std::max_element(chunk_norm.begin(), chunk_norm.end());
  const double max_beta = *std::max_element(chunk_beta.begin(), chunk_beta.end());
  if (!(max_row <= Scores::kMaxNorm)) return false;
  // kappa_j = G (C_j + t) (1 + 2^-30)
  const Index terms = scores.terms() + 2;
  const double G = screening::gamma(terms, 0x1p-24) + screening::gamma(terms, 0x1p-53) + 0x1p-52;
  VectorXd kappa(m);
  double max_col = 0.0;
  for (Index j = 0; j < m; ++j) {
    const double norm = scores.M().col(j).norm();
    if (!(norm <= Scores::kMaxNorm)) return false;
    max_col = std::max(max_col, norm);
    kappa[j] = G * (norm + Scores::kTiny) * (1.0 + 0x1p-30);
  }
  if (!(max_row * max_col <= screening::kMaxProduct) || !(max_beta * max_col <= screening::kMaxScore)) return false;
  scores.make_float_copies();

  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    std::vector<float> buffer;
    Eigen::MatrixXf S, T;  // (rows, panel): float32 scores, scratch
    Eigen::ArrayXd a, bound;
    const Index end = plan.begin(c) + plan.size(c);
    for (Index b = plan.begin(c); b < end; b += screening::kRows) {
      const Index nb = std::min(screening::kRows, end - b);
      const Eigen::Map<const RowMatrixXf> Xb(scores.rows().float_block(b, nb, buffer), nb, d);
      for (Index j0 = 0; j0 < m; j0 += screening::kPanel) {
        const Index w = std::min(screening::kPanel, m - j0);
        for (Index jj = 0; jj < w; ++jj) {
          const Index j = j0 + jj;
          // a: the screening values; bound = B_ij
          scores.screen(Xb, b, j0, w, S, T, jj, a, jj == 0);
          bound = beta.segment(b, nb).array() * kappa[j] + 0x1p-50 * a.abs() + screening::kFloor;
          heaps.scan_bounded(j, b, nb, a, bound, [&](Index i) { return scores.exact(i, j); });
        }
      }
    }
  });
  return true;
}

}  // namespace fastinfluence
