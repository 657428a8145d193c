// The multinomial (softmax) loss of K classes: per-row derivatives, the objective with its
// gradient and Hessian in one fused pass, and the Hessian's products and diagonal.
//
//   eta_i = Theta xa_i (K-vector),  P_i = softmax(eta_i),  loss_i = logsumexp(eta_i) - eta_i[y_i],
//   R(theta) = (1/n) sum_i s_i loss_i + (l2/2) sum_k ||w_k||^2,
//   grad, block k    = (1/n) sum_i s_i (P_ik - [y_i = k]) xa_i + l2 (w_k, 0),
//   H, block (k, l)  = sum_i c_i (delta_kl P_ik - P_ik P_il) xa_i xa_i^T + l2 delta_kl diag(1, .., 1, 0),
//
// c_i = s_i / n. theta (p,), p = K q, q = d (+ 1 with an intercept), is Theta (K, q) row-major:
// class-major, Theta[k] = (w_k, b_k). Seen as a column-major (q x K) matrix W its column k is
// Theta[k], so eta_b = Xb W_w + 1 W_b for a row block, and the same holds for every vector in
// parameter space: V (p x m) column-major *is* the (q x K m) matrix whose column j K + k is
// V[k q:(k + 1) q, j]. The kernels use that view and never form a per-row Kronecker product.
//
// H is singular along the gauge direction (the same vector added to every class), always in the
// intercepts: the exact H is returned, the layer above deals with it (Bishop 2006, section 4.3.4
// derives these derivatives).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "gram.hpp"
#include "objective.hpp"
#include "parallel.hpp"
#include "problem.hpp"
#include "products.hpp"

namespace fastinfluence {

// ---------------------------------------------------------------------------
// One row of K linear predictors
// ---------------------------------------------------------------------------

// P = softmax(eta) without overflow: with a the (first) largest entry and
// t = sum_{l != a} exp(eta_l - eta_a), P_l = exp(eta_l - eta_a) / (1 + t) and
// logsumexp(eta) = eta_a + log1p(t). Returns a; t in `t`.
inline Index softmax_row(const double* eta, Index K, double* P, double& t) {
  Index a = 0;
  for (Index l = 1; l < K; ++l)
    if (eta[l] > eta[a]) a = l;
  t = 0.0;
  for (Index l = 0; l < K; ++l) {
    if (l == a) continue;
    P[l] = std::exp(eta[l] - eta[a]);
    t += P[l];
  }
  const double z = 1.0 + t;
  for (Index l = 0; l < K; ++l) P[l] = l == a ? 1.0 / z : P[l] / z;
  return a;
}

// loss = logsumexp(eta) - eta_y = (eta_a - eta_y) + log1p(t), without cancellation when P_y
// is near 1; P = softmax(eta); d1 = P - onehot(y), with P_y - 1 = -t / (1 + t) when y = a.
inline double multinomial_row(const double* eta, Index K, Index y, double* P, double* d1) {
  double t;
  const Index a = softmax_row(eta, K, P, t);
  for (Index l = 0; l < K; ++l) d1[l] = P[l];
  d1[y] = y == a ? -t / (1.0 + t) : P[y] - 1.0;
  return (eta[a] - eta[y]) + std::log1p(t);
}

// one_minus_l = 1 - P_l without cancellation: the sum of the others for the largest P_a.
inline void one_minus_row(const double* P, Index K, double* one_minus) {
  Index a = 0;
  for (Index l = 1; l < K; ++l)
    if (P[l] > P[a]) a = l;
  double others = 0.0;
  for (Index l = 0; l < K; ++l) {
    one_minus[l] = 1.0 - P[l];
    if (l != a) others += P[l];
  }
  one_minus[a] = others;
}

// The kernels read per-row arrays (P, R: n x K row-major) as rows of K contiguous doubles.
inline void require_contiguous_rows(const Eigen::Ref<const RowMatrixXd>& A, const char* name) {
  if (A.rows() > 1 && A.outerStride() != A.cols())
    throw std::invalid_argument(std::string(name) + ": rows of K contiguous doubles expected");
}

// Theta (K, q) row-major as the column-major (q x K) matrix W: column k is Theta[k].
inline Eigen::Map<const MatrixXd> class_columns(const double* theta, Index q, Index columns) {
  return Eigen::Map<const MatrixXd>(theta, q, columns);
}

// E = Xa_b W for W (q x c): the rows' products with c vectors in parameter space.
template <class Block, class WType>
void augmented_products(const Block& Xb, const WType& W, bool fit_intercept, RowMatrixXd& E) {
  const Index d = Xb.cols();
  E.resize(Xb.rows(), W.cols());
  affine_product(Xb, W.topRows(d), W.middleRows(d, fit_intercept ? 1 : 0), E);
}

// ---------------------------------------------------------------------------
// Per-row derivatives: eta (n x K), loss (n), P - Y (n x K), P (n x K), unweighted
// ---------------------------------------------------------------------------
template <class XType>
void multinomial_row_derivatives(const XType& X, VectorCRef y, VectorCRef theta, bool fit_intercept, Index K,
                                 Eigen::Ref<RowMatrixXd> eta, Eigen::Ref<VectorXd> value, Eigen::Ref<RowMatrixXd> d1,
                                 Eigen::Ref<RowMatrixXd> d2, int n_threads) {
  const Index q = X.cols() + (fit_intercept ? 1 : 0);
  const auto W = class_columns(theta.data(), q, K);
  const ChunkPlan plan = plan_chunks(X.rows());
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    RowMatrixXd E;
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      augmented_products(Xb, W, fit_intercept, E);
      eta.middleRows(b, nb) = E;
      for (Index i = 0; i < nb; ++i)
        value[b + i] = multinomial_row(E.row(i).data(), K, static_cast<Index>(y[b + i]), d2.row(b + i).data(),
                                       d1.row(b + i).data());
    });
  });
}

// P = softmax(Theta xa_i) for every row, (n x K): the curvature of H at theta.
template <class XType>
void multinomial_probabilities(const XType& X, VectorCRef theta, bool fit_intercept, Index K, Eigen::Ref<RowMatrixXd> P,
                               int n_threads) {
  const Index q = X.cols() + (fit_intercept ? 1 : 0);
  const auto W = class_columns(theta.data(), q, K);
  const ChunkPlan plan = plan_chunks(X.rows());
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    RowMatrixXd E;
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      augmented_products(Xb, W, fit_intercept, E);
      double t;
      for (Index i = 0; i < nb; ++i) softmax_row(E.row(i).data(), K, P.row(b + i).data(), t);
    });
  });
}

// ---------------------------------------------------------------------------
// The Hessian's data part, block by block
// ---------------------------------------------------------------------------

// H += sum over the block's rows of c_i Q_i kron xa_i xa_i^T, Q_i = diag(P_i) - P_i P_i^T, in the
// lower triangle of the blocks (k, l <= k) of the block rows k in [k0, k1), columns [j0, j1) of
// each block (and its corner with `corner`; accumulate_gram_panel): weights c_i P_ik (1 - P_ik) on
// the diagonal blocks, -c_i P_ik P_il off it, each a symmetric q x q Gram matrix of its own. P is
// the block's (nb x K) row-major probabilities.
template <class Block>
void accumulate_multinomial_hessian(const Block& Xb, const double* c, const double* P, Index K, bool fit_intercept,
                                    Index k0, Index k1, Index j0, Index j1, bool corner, MatrixXd& H) {
  const Index nb = Xb.rows(), q = Xb.cols() + (fit_intercept ? 1 : 0);
  RowMatrixXd one_minus(nb, K);
  for (Index i = 0; i < nb; ++i) one_minus_row(P + i * K, K, one_minus.row(i).data());
  VectorXd w(nb);
  for (Index k = k0; k < k1; ++k) {
    for (Index l = 0; l <= k; ++l) {
      for (Index i = 0; i < nb; ++i) w[i] = c[i] * P[i * K + k] * (k == l ? one_minus(i, k) : P[i * K + l]);
      accumulate_gram_panel(Xb, w, k == l ? 1.0 : -1.0, fit_intercept, j0, j1, corner, H.block(k * q, l * q, q, q));
    }
  }
}

// The full symmetric H from the lower triangles of its blocks (k, l <= k); each block is symmetric.
inline void complete_multinomial_hessian(MatrixXd& H, Index K, Index q) {
  for (Index k = 0; k < K; ++k) {
    for (Index l = 0; l <= k; ++l) {
      const MatrixXd B = H.block(k * q, l * q, q, q).template selfadjointView<Eigen::Lower>();
      H.block(k * q, l * q, q, q) = B;
      if (l != k) H.block(l * q, k * q, q, q) = B;
    }
  }
}

// ---------------------------------------------------------------------------
// Objective, gradient and Hessian in one fused pass
// ---------------------------------------------------------------------------

// Optional per-row outputs of multinomial_evaluate, (n x K) row-major each or null: P - Y and P.
struct MultinomialRowsOut {
  double* d1 = nullptr;
  double* d2 = nullptr;
};

template <class XType>
Evaluation multinomial_evaluate(const Problem<XType>& prob, Index K, VectorCRef theta, Want want, int n_threads,
                                MultinomialRowsOut rows = {}) {
  const Index d = prob.n_features(), q = prob.n_params(), p = K * q;
  const double inv_n = 1.0 / static_cast<double>(prob.n_rows());
  const auto W = class_columns(theta.data(), q, K);
  const Index acc_doubles = (want.gradient ? p : 0) + (want.hessian ? p * p : 0) + 1;
  const double nnz = row_size(prob.X), k = static_cast<double>(K);
  const double row_work = (want.gradient ? k * nnz : 0.0) + (want.hessian ? 0.5 * k * (k + 1) * nnz * nnz : 0.0) + k;
  const ChunkPlan plan = plan_reduction(prob.n_rows(), acc_doubles, row_work);
  // A wide H comes in a second pass over (chunk, block row, column panel) tasks
  // (parallel_reduce_row_parts; dense X only is cut into panels), from the c and P the first
  // pass keeps. Intercepts alone (d = 0) have no columns to cut.
  const bool fused_hessian = want.hessian && (!wide_hessian(acc_doubles) || d == 0);
  const bool keep = want.hessian && !fused_hessian;
  const Index panels = keep && !prob.X.is_sparse() ? hessian_panels(plan, K, d) : 1;
  VectorXd c_all;
  RowMatrixXd P_own;
  if (keep) c_all.resize(prob.n_rows());
  if (keep && rows.d2 == nullptr) P_own.resize(prob.n_rows(), K);
  double* P_all = rows.d2 != nullptr ? rows.d2 : P_own.data();  // null when neither is wanted
  auto make = [&] {
    Evaluation e;
    if (want.gradient) e.gradient = VectorXd::Zero(p);
    if (fused_hessian) e.hessian = MatrixXd::Zero(p, p);
    return e;
  };
  Evaluation total =
      parallel_reduce_rows<Evaluation>(plan, n_threads, make, [&](Evaluation& acc, Index begin, Index size) {
        RowMatrixXd E, P, G;
        VectorXd c;
        for_each_block(prob.X, begin, size, [&](const auto& Xb, Index b, Index nb) {
          augmented_products(Xb, W, prob.fit_intercept, E);
          P.resize(nb, K), G.resize(nb, K), c.resize(nb);
          for (Index i = 0; i < nb; ++i) {
            // loss_i, P_i and P_i - Y_i ;  c_i = s_i / n
            const double value = multinomial_row(E.row(i).data(), K, static_cast<Index>(prob.y[b + i]), P.row(i).data(),
                                                 G.row(i).data());
            c[i] = prob.weight(b + i) * inv_n;
            acc.value += c[i] * value;
          }
          if (rows.d1 != nullptr) Eigen::Map<RowMatrixXd>(rows.d1 + b * K, nb, K) = G;
          if (P_all != nullptr) Eigen::Map<RowMatrixXd>(P_all + b * K, nb, K) = P;
          if (keep) c_all.segment(b, nb) = c;
          if (want.gradient) {
            // grad (q x K) += Xa_b^T (c (P - Y))
            G = c.asDiagonal() * G;
            Eigen::Map<MatrixXd> g(acc.gradient.data(), q, K);
            gemm(Xb.transpose(), G, g.topRows(d));
            if (prob.fit_intercept) g.row(d) += G.colwise().sum();
          }
          if (fused_hessian)
            accumulate_multinomial_hessian(Xb, c.data(), P.data(), K, prob.fit_intercept, 0, K, 0, d, true,
                                           acc.hessian);
        });
      });
  if (keep) {
    const std::vector<Index> bounds = lower_triangle_panels(d, panels);
    const auto n_panels = static_cast<Index>(bounds.size()) - 1;
    total.hessian = parallel_reduce_row_parts<MatrixAcc>(
                        plan, K * n_panels, hessian_window_rows(prob.X, plan), n_threads,
                        [&] { return MatrixAcc{MatrixXd::Zero(p, p)}; },
                        [&](MatrixAcc& acc, Index part, Index begin, Index size) {
                          // block row K - 1 (K blocks) first, block row 0 (one) last
                          const Index kb = K - 1 - part / n_panels, t = part % n_panels;
                          for_each_block(prob.X, begin, size, [&](const auto& Xb, Index b, Index) {
                            accumulate_multinomial_hessian(Xb, c_all.data() + b, P_all + b * K, K, prob.fit_intercept,
                                                           kb, kb + 1, bounds[t], bounds[t + 1], t == 0, acc.m);
                          });
                        })
                        .m;
  }
  // Penalty (l2/2) sum_k ||w_k||^2, never on the intercepts.
  const auto Ww = W.topRows(d);
  total.value += 0.5 * prob.l2 * Ww.squaredNorm();
  if (want.gradient) Eigen::Map<MatrixXd>(total.gradient.data(), q, K).topRows(d) += prob.l2 * Ww;
  if (want.hessian) {
    for (Index kk = 0; kk < K; ++kk) total.hessian.diagonal().segment(kk * q, d).array() += prob.l2;
    complete_multinomial_hessian(total.hessian, K, q);
  }
  return total;
}

// ---------------------------------------------------------------------------
// Hessian products: (sum_i c_i (xa_i xa_i^T) kron Q_i) V + l2 (I_K kron diag(1, .., 1, 0)) V
// ---------------------------------------------------------------------------

// For each column j of the (nb x K m) products E (E(i, j K + k) = xa_i . V_k,j):
//   T_i = c_i P_i * (E_i - P_i . E_i)  (= c_i Q_i E_i, Q_i = diag(P_i) - P_i P_i^T).
inline void curvature_transform(double* e, Index m, Index K, double c, const double* P) {
  for (Index j = 0; j < m; ++j, e += K) {
    double pe = 0.0;
    for (Index k = 0; k < K; ++k) pe += P[k] * e[k];
    for (Index k = 0; k < K; ++k) e[k] = (c * P[k]) * (e[k] - pe);
  }
}

// Dense rows: acc (q x K m) += Xa_b^T T, T = the curvature transform of E = Xa_b Vq, in panels
// of test columns whose E stays at about 2 MiB (1024 rows x 100 columns x 10 classes would be
// 8 MB; the block of X is read again from cache for each panel).
template <class Block>
void accumulate_multinomial_gram_product(const Block& Xb, const double* c, const double* P, Index K, bool fit_intercept,
                                         const Eigen::Map<const MatrixXd>& Vq, RowMatrixXd& E, MatrixXd& acc) {
  const Index nb = Xb.rows(), d = Xb.cols(), m = Vq.cols() / K;
  const Index panel = std::max<Index>(1, (Index{1} << 18) / std::max<Index>(1, nb * K));
  for (Index j0 = 0; j0 < m; j0 += panel) {
    const Index w = std::min(panel, m - j0);
    augmented_products(Xb, Vq.middleCols(j0 * K, w * K), fit_intercept, E);
    for (Index i = 0; i < nb; ++i) curvature_transform(E.row(i).data(), w, K, c[i], P + i * K);
    auto a = acc.middleCols(j0 * K, w * K);
    gemm(Xb.transpose(), E, a.topRows(d));
    if (fit_intercept) a.row(d) += E.colwise().sum();
  }
}

// The data part for V (p x m): one pass over X for dense rows; for sparse rows one pass per
// panel of test columns whose accumulators stay at about kSparsePanelDoubles doubles (gram.hpp).
template <class XType>
MatrixXd multinomial_gram_product(const XType& X, bool fit_intercept, VectorCRef c,
                                  const Eigen::Ref<const RowMatrixXd>& P, double l2, MatrixCRef V, int n_threads) {
  const Index n = X.rows(), d = X.cols(), q = d + (fit_intercept ? 1 : 0), K = P.cols(), p = K * q, m = V.cols();
  require_contiguous_rows(P, "P");
  const MatrixXd Vc = V;  // contiguous: its data is the (q x K m) matrix Vq
  const Eigen::Map<const MatrixXd> Vq(Vc.data(), q, K * m);
  MatrixXd out = MatrixXd::Zero(p, m);
  if (n > 0 && m > 0) {
    if (!X.is_sparse()) {
      MatrixAcc total = parallel_reduce_rows<MatrixAcc>(
          plan_reduction(n, q * K * m, 2.0 * row_size(X) * static_cast<double>(K * m)), n_threads,
          [&] { return MatrixAcc{MatrixXd::Zero(q, K * m)}; },
          [&](MatrixAcc& acc, Index begin, Index size) {
            RowMatrixXd E;
            for_each_block(X, begin, size, [&](const auto& Xb, Index b, Index) {
              if constexpr (!is_sparse_v<std::decay_t<decltype(Xb)>>)
                accumulate_multinomial_gram_product(Xb, c.data() + b, P.data() + b * K, K, fit_intercept, Vq, E, acc.m);
            });
          });
      out = Eigen::Map<const MatrixXd>(total.m.data(), p, m);  // (q x K m) column-major is (p x m)
    } else {
      const Index max_width = std::max<Index>(1, kSparsePanelDoubles / std::max<Index>(1, q * K));
      const Index panels = (m + max_width - 1) / max_width;
      const Index width = (m + panels - 1) / panels;
      for (Index j0 = 0; j0 < m; j0 += width) {
        const Index mw = std::min(width, m - j0), w = K * mw;
        const RowMatrixXd v = Vq.middleCols(j0 * K, w);
        // acc.m (w x q) column-major: the (q x w) row-major accumulator
        MatrixAcc total = parallel_reduce_rows<MatrixAcc>(
            plan_reduction(n, q * w, 2.0 * row_size(X) * static_cast<double>(w)), n_threads,
            [&] { return MatrixAcc{MatrixXd::Zero(w, q)}; },
            [&](MatrixAcc& acc, Index begin, Index size) {
              VectorXd u(w);
              for_each_block(X, begin, size, [&](const auto& Xb, Index b, Index) {
                if constexpr (is_sparse_v<std::decay_t<decltype(Xb)>>) {
                  // each non-zero touches one contiguous w-vector of Vq's panel v (q x w, row-major)
                  const double *cb = c.data() + b, *Pb = P.data() + b * K;
                  sparse_gram_rows_any(Xb, cb, v.data(), static_cast<size_t>(w), d, fit_intercept, u.data(),
                                       acc.m.data(), [&](Index r, double* ur) {
                                         // u = c_i Q_i u per test column
                                         curvature_transform(ur, w / K, K, cb[r], Pb + r * K);
                                       });
                }
              });
            });
        // acc.m(j K + k, r) = out(k q + r, j0 + j)
        for (Index j = 0; j < mw; ++j)
          for (Index k = 0; k < K; ++k) out.col(j0 + j).segment(k * q, q) = total.m.row(j * K + k).transpose();
      }
    }
  }
  // + l2 (w_k rows of V)
  for (Index k = 0; k < K; ++k) out.middleRows(k * q, d) += l2 * V.middleRows(k * q, d);
  return out;
}

// diag of the data part: entry (k, j) = sum_i c_i P_ik (1 - P_ik) xa_ij^2, (p,).
template <class XType>
VectorXd multinomial_gram_diagonal(const XType& X, bool fit_intercept, VectorCRef c,
                                   const Eigen::Ref<const RowMatrixXd>& P, int n_threads) {
  const Index d = X.cols(), q = d + (fit_intercept ? 1 : 0), K = P.cols();
  require_contiguous_rows(P, "P");
  MatrixAcc total = parallel_reduce_rows<MatrixAcc>(
      plan_reduction(X.rows(), q * K, row_size(X) * static_cast<double>(K)), n_threads,
      [&] { return MatrixAcc{MatrixXd::Zero(q, K)}; },
      [&](MatrixAcc& acc, Index begin, Index size) {
        RowMatrixXd Wt;
        for_each_block(X, begin, size, [&](const auto& Xb, Index b, Index nb) {
          // Wt(i, k) = c_i P_ik (1 - P_ik) ;  acc (q x K) += (Xa_b .^ 2)^T Wt
          Wt.resize(nb, K);
          for (Index i = 0; i < nb; ++i) {
            const double* Pi = P.data() + (b + i) * K;
            one_minus_row(Pi, K, Wt.row(i).data());
            for (Index k = 0; k < K; ++k) Wt(i, k) = c[b + i] * Pi[k] * Wt(i, k);
          }
          acc.m.topRows(d).noalias() += Xb.cwiseAbs2().transpose() * Wt;
          if (fit_intercept) acc.m.row(d) += Wt.colwise().sum();
        });
      });
  return Eigen::Map<const VectorXd>(total.m.data(), q * K);
}

// H V at theta: P, then the Gram product with c = s / n.
template <class XType>
MatrixXd multinomial_hessian_vector_product(const Problem<XType>& prob, Index K, VectorCRef theta, MatrixCRef V,
                                            int n_threads) {
  const Index n = prob.n_rows();
  RowMatrixXd P(n, K);
  multinomial_probabilities(prob.X, theta, prob.fit_intercept, K, P, n_threads);
  VectorXd c(n);
  for (Index i = 0; i < n; ++i) c[i] = prob.weight(i) / static_cast<double>(n);
  return multinomial_gram_product(prob.X, prob.fit_intercept, c, P, prob.l2, V, n_threads);
}

// Compiled once, in cpp/src/multinomial.cpp (see objective.hpp).
#define FASTINFLUENCE_MULTINOMIAL_INSTANCES(EXTERN, XType)                                                        \
  EXTERN template void multinomial_row_derivatives<XType>(const XType&, VectorCRef, VectorCRef, bool, Index,      \
                                                          Eigen::Ref<RowMatrixXd>, Eigen::Ref<VectorXd>,          \
                                                          Eigen::Ref<RowMatrixXd>, Eigen::Ref<RowMatrixXd>, int); \
  EXTERN template Evaluation multinomial_evaluate<XType>(const Problem<XType>&, Index, VectorCRef, Want, int,     \
                                                         MultinomialRowsOut);                                     \
  EXTERN template MatrixXd multinomial_gram_product<XType>(                                                       \
      const XType&, bool, VectorCRef, const Eigen::Ref<const RowMatrixXd>&, double, MatrixCRef, int);             \
  EXTERN template VectorXd multinomial_gram_diagonal<XType>(const XType&, bool, VectorCRef,                       \
                                                            const Eigen::Ref<const RowMatrixXd>&, int);           \
  EXTERN template MatrixXd multinomial_hessian_vector_product<XType>(const Problem<XType>&, Index, VectorCRef,    \
                                                                     MatrixCRef, int);

#ifdef FASTINFLUENCE_EXTERN_TEMPLATES
FASTINFLUENCE_MULTINOMIAL_INSTANCES(extern, DesignMatrix)
#endif

}  // namespace fastinfluence
