// Scoring products of the multinomial loss (Koh & Liang, ICML 2017, for K linear predictors per
// row): per-row scales R (n x K) against vectors M in parameter space (p x m, class-major, see
// multinomial.hpp),
//
//   S_ij = sum_k R_ik xa_i . M[k q:(k + 1) q, j],
//
// which with R = -s (P - Y) and M = H^{-1} G_test is I_up,loss; its streaming top-k; the K x K
// quadratic forms behind self-influence; and the leave-one-out change of test loss.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "multinomial.hpp"
#include "parallel.hpp"
#include "problem.hpp"
#include "products.hpp"
#include "top_k.hpp"

namespace fastinfluence {

// Test columns scored per pass over a row block: the block's scores and products stay in cache.
inline constexpr Index kMultinomialPanel = 128;

// M as the scoring passes read it: column-major for dense rows, and a row-major copy for sparse
// rows, whose non-zeros each read one contiguous stretch of a row of M.
struct ClassBlocks {
  MatrixCRef M;      // (p x m)
  RowMatrixXd rows;  // M row-major, sparse X only
  template <class XType>
  ClassBlocks(const XType& X, MatrixCRef M_) : M(M_) {
    if (X.is_sparse()) rows = M_;
  }
};

// S (nb x w, column-major) = sum_k diag(R_b[:, k]) (Xa_b M_k[:, j0:j0 + w]) for the rows of one
// block, R_b (nb x K) row-major at R: one product per class for dense rows, for sparse rows
// each non-zero x_ij adds sum_k R_ik x_ij M[k q + j, j0:j0 + w].
template <class Block>
void multinomial_block_scores(const Block& Xb, const double* R, Index K, bool fit_intercept, const ClassBlocks& M,
                              Index j0, Index w, MatrixXd& S, MatrixXd& T) {
  const Index nb = Xb.rows(), d = Xb.cols(), q = d + (fit_intercept ? 1 : 0);
  using Column = Eigen::Map<const VectorXd, 0, Eigen::InnerStride<>>;
  if constexpr (is_sparse_v<Block>) {
    RowMatrixXd Sr = RowMatrixXd::Zero(nb, w);
    for (Index i = 0; i < nb; ++i) {
      double* s = Sr.row(i).data();
      for (Index k = 0; k < K; ++k) {
        const double rk = R[i * K + k];
        const double* Mk = M.rows.data() + k * q * M.rows.cols() + j0;
        for (typename Block::InnerIterator it(Xb, i); it; ++it) {
          const double x = rk * it.value();
          const double* mj = Mk + it.index() * M.rows.cols();
          for (Index s_ = 0; s_ < w; ++s_) s[s_] += x * mj[s_];
        }
        if (fit_intercept) {
          const double* mb = Mk + d * M.rows.cols();
          for (Index s_ = 0; s_ < w; ++s_) s[s_] += rk * mb[s_];
        }
      }
    }
    S = Sr;
  } else {
    // S = sum_k diag(R_k) (Xb M_k,w + 1 b_k,w)
    S.setZero(nb, w);
    for (Index k = 0; k < K; ++k) {
      T.resize(nb, w);
      affine_product(Xb, M.M.block(k * q, j0, d, w), M.M.block(k * q + d, j0, fit_intercept ? 1 : 0, w), T);
      S += Column(R + k, nb, Eigen::InnerStride<>(K)).asDiagonal() * T;
    }
  }
}

// out_ij = sum_k R_ik xa_i . M[k q:(k + 1) q, j], (n x m) row-major.
template <class XType>
void multinomial_scaled_row_products(const XType& X, bool fit_intercept, const Eigen::Ref<const RowMatrixXd>& R,
                                     MatrixCRef M, Eigen::Ref<RowMatrixXd> out, int n_threads) {
  const Index K = R.cols(), m = M.cols();
  const ClassBlocks blocks(X, M);
  require_contiguous_rows(R, "R");
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    MatrixXd S, T;
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      for (Index j0 = 0; j0 < m; j0 += kMultinomialPanel) {
        const Index w = std::min(kMultinomialPanel, m - j0);
        multinomial_block_scores(Xb, R.data() + b * K, K, fit_intercept, blocks, j0, w, S, T);
        out.block(b, j0, nb, w) = S;
      }
    });
  });
}

// top_k_scores (top_k.hpp) of the scores above, streaming: the (n x m) matrix is never held.
// Dense X: through the float32 screening pass where it pays (screening.hpp), as top_k_scores.
template <class XType>
TopKResult multinomial_top_k_scores(const XType& X, bool fit_intercept, const Eigen::Ref<const RowMatrixXd>& R,
                                    MatrixCRef M, Index k, int n_threads, Screening screening = Screening::automatic) {
  const Index K = R.cols();
  require_contiguous_rows(R, "R");
  if constexpr (std::is_same_v<XType, DesignMatrix>) {
    TopKResult res;
    if (screened_top_k<MultinomialScores>(X, fit_intercept, M.cols(), k, n_threads, screening, res, R, M)) return res;
  }
  const ClassBlocks blocks(X, M);
  return streaming_top_k(X, M.cols(), k, n_threads,
                         [&](const auto& Xb, Index b, Index, Index j0, Index w, MatrixXd& S, MatrixXd& T) {
                           multinomial_block_scores(Xb, R.data() + b * K, K, fit_intercept, blocks, j0, w, S, T);
                         });
}

// out[i, k, l] = (A_k xa_i) . (A_l xa_i), A_k = A[:, k q:(k + 1) q] for A (r x p), out (n x K x K)
// C order: with H^{-1} = A^T A the K x K block (I_K kron xa_i)^T H^{-1} (I_K kron xa_i).
template <class XType>
void multinomial_row_quadratic_forms(const XType& X, bool fit_intercept, MatrixCRef A, Index K, double* out,
                                     int n_threads) {
  const Index d = X.cols(), q = d + (fit_intercept ? 1 : 0), r = A.rows();
  // At (q x K r) row-major: At(j, k r + s) = A(s, k q + j), so that Z = Xa_b At holds the K
  // r-vectors A_k xa_i side by side in each row.
  RowMatrixXd At(q, K * r);
  for (Index k = 0; k < K; ++k) At.middleCols(k * r, r) = A.middleCols(k * q, q).transpose();
  // rows per product: Z at about 2 MiB
  const Index sub = std::max<Index>(1, (Index{1} << 18) / std::max<Index>(1, K * r));
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    RowMatrixXd Z;
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      for (Index i0 = 0; i0 < nb; i0 += sub) {
        const Index ns = std::min(sub, nb - i0);
        augmented_products(Xb.middleRows(i0, ns), At, fit_intercept, Z);
        for (Index i = 0; i < ns; ++i) {
          const double* z = Z.row(i).data();
          double* o = out + (b + i0 + i) * K * K;
          // plain loops: each sum in one fixed order, whatever the buffers' alignment
          for (Index k = 0; k < K; ++k) {
            for (Index l = 0; l <= k; ++l) {
              double sum = 0.0;
              for (Index s = 0; s < r; ++s) sum += z[k * r + s] * z[l * r + s];
              o[k * K + l] = o[l * K + k] = sum;
            }
          }
        }
      }
    });
  });
}

// loss(y, eta + delta) - loss(y, eta) of the multinomial loss, without cancellation. P and
// log_p are softmax(eta) and its logarithm; delta is read at stride `stride`. With
// x_l = delta_l - delta_y the difference is log(sum_l P_l e^{x_l}) = log1p(S),
// S = sum_{l != y} P_l expm1(x_l) (the y term is 0), accurate however small x is. When 1 + S
// < 1/2 (log1p would cancel) or P_l e^{x_l} would overflow it is logsumexp_l(log P_l + x_l),
// accurate there since the result is then at least log 2 in magnitude.
inline double multinomial_loss_difference(const double* P, const double* log_p, Index y, const double* delta,
                                          Index stride, Index K) {
  const double dy = delta[y * stride];
  double S = 0.0, top = -std::numeric_limits<double>::infinity();
  for (Index l = 0; l < K; ++l) {
    const double x = delta[l * stride] - dy, a = log_p[l] + x;  // a = log(P_l e^{x_l})
    top = std::max(top, a);
    // P expm1(x) for x <= 1; P e^x - P above (e^x > e: at most a bit lost), inf past overflow
    S += x <= 1.0 ? P[l] * std::expm1(x) : std::exp(a) - P[l];
  }
  if (S >= -0.5 && top <= 700.0) return std::log1p(S);
  double sum = 0.0;
  for (Index l = 0; l < K; ++l) sum += std::exp(log_p[l] + (delta[l * stride] - dy) - top);
  return top + std::log(sum);
}

// out_ij = loss(y_j, eta_j + delta_ij) - loss(y_j, eta_j), delta_ijl = sum_k R_ik xa_i .
// U[k q:(k + 1) q, j K + l]: U (p x m K) holds K columns per test point. With the one-step
// Newton estimate U = H^{-1} (I_K kron xa_test) and R = s (P - Y) / n this is the change of
// test loss when row i is left out.
template <class XType>
void multinomial_loo_loss_change(const XType& X, bool fit_intercept, const Eigen::Ref<const RowMatrixXd>& R,
                                 MatrixCRef U, VectorCRef y_test, const Eigen::Ref<const RowMatrixXd>& eta_test,
                                 Eigen::Ref<RowMatrixXd> out, int n_threads) {
  const Index K = R.cols(), m = eta_test.rows();
  require_contiguous_rows(R, "R");
  // softmax and log-softmax of every test point, once
  RowMatrixXd P(m, K), log_p(m, K);
  for (Index j = 0; j < m; ++j) {
    double t;
    const Index a = softmax_row(eta_test.row(j).data(), K, P.row(j).data(), t);
    const double lse = eta_test(j, a) + std::log1p(t);
    log_p.row(j) = eta_test.row(j).array() - lse;
  }
  const ClassBlocks blocks(X, U);
  const Index panel = std::max<Index>(1, kMultinomialPanel / K);  // test points per pass
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    MatrixXd D, T;
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      for (Index j0 = 0; j0 < m; j0 += panel) {
        const Index w = std::min(panel, m - j0);
        // D(i, (j - j0) K + l) = delta_ijl
        multinomial_block_scores(Xb, R.data() + b * K, K, fit_intercept, blocks, j0 * K, w * K, D, T);
        for (Index i = 0; i < nb; ++i)
          for (Index j = j0; j < j0 + w; ++j)
            out(b + i, j) = multinomial_loss_difference(P.row(j).data(), log_p.row(j).data(),
                                                        static_cast<Index>(y_test[j]), &D(i, (j - j0) * K), nb, K);
      }
    });
  });
}

// Compiled once, in cpp/src/multinomial_scoring.cpp (see objective.hpp).
#define FASTINFLUENCE_MULTINOMIAL_SCORING_INSTANCES(EXTERN, XType)                                                     \
  EXTERN template void multinomial_scaled_row_products<XType>(                                                         \
      const XType&, bool, const Eigen::Ref<const RowMatrixXd>&, MatrixCRef, Eigen::Ref<RowMatrixXd>, int);             \
  EXTERN template TopKResult multinomial_top_k_scores<XType>(const XType&, bool, const Eigen::Ref<const RowMatrixXd>&, \
                                                             MatrixCRef, Index, int, Screening);                       \
  EXTERN template void multinomial_row_quadratic_forms<XType>(const XType&, bool, MatrixCRef, Index, double*, int);    \
  EXTERN template void multinomial_loo_loss_change<XType>(                                                             \
      const XType&, bool, const Eigen::Ref<const RowMatrixXd>&, MatrixCRef, VectorCRef,                                \
      const Eigen::Ref<const RowMatrixXd>&, Eigen::Ref<RowMatrixXd>, int);

#ifdef FASTINFLUENCE_EXTERN_TEMPLATES
FASTINFLUENCE_MULTINOMIAL_SCORING_INSTANCES(extern, DesignMatrix)
#endif

}  // namespace fastinfluence
