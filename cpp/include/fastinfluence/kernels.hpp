// Fused kernels over the rows of X for the regularised empirical risk
//
//   R(theta) = (1/n) sum_i s_i loss(y_i, eta_i) + (l2/2) ||w||^2,
//   eta_i = x_i.w + b,  theta = (w, b)  (b present only with an intercept),
//
// and the scoring products of Koh & Liang (ICML 2017). Each kernel makes one
// pass over X, in row chunks spread over OpenMP threads, with per-chunk
// accumulators reduced in a fixed order (see parallel.hpp).
//
// X is any Eigen dense expression with rows (a Map over a C- or F-order NumPy
// buffer of float or double). Sums are always accumulated in double.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "losses.hpp"
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

// Rows per inner block: the block (and its double copy for float input) stays
// in cache, whatever the number of features.
inline Index block_rows_for(Index n_features) {
  return std::clamp<Index>((Index{1} << 17) / std::max<Index>(1, n_features), 8, 512);
}

// Calls f(Xb, begin, size) on consecutive inner blocks of rows [begin, begin + size),
// with Xb a double-valued dense block (a copy only when X holds float).
template <class XType, class F>
void for_each_block(const XType& X, Index begin, Index size, F&& f) {
  using Scalar = typename XType::Scalar;
  const Index step = block_rows_for(X.cols());
  MatrixXd converted;
  for (Index b = begin; b < begin + size; b += step) {
    const Index nb = std::min(step, begin + size - b);
    if constexpr (std::is_same_v<Scalar, double>) {
      f(X.middleRows(b, nb), b, nb);
    } else {
      converted = X.middleRows(b, nb).template cast<double>();
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

// Chunks for accumulators holding `acc_doubles` doubles: at most 64, and no
// more than about 256 MiB of partial results in all.
inline ChunkPlan plan_reduction(Index n_rows, Index acc_doubles) {
  const Index budget = (Index{1} << 25) / std::max<Index>(1, acc_doubles);
  return plan_chunks(n_rows, std::clamp<Index>(budget, 1, 64));
}

// ---------------------------------------------------------------------------
// Per-row derivative scalars: eta_i, loss_i, loss'_i, loss''_i (unweighted).
// ---------------------------------------------------------------------------
template <class XType>
void row_derivatives(const LossSpec& spec, const XType& X, VectorCRef y, VectorCRef theta, bool fit_intercept,
                     Eigen::Ref<VectorXd> eta, Eigen::Ref<VectorXd> value, Eigen::Ref<VectorXd> d1,
                     Eigen::Ref<VectorXd> d2, int n_threads) {
  visit_loss(spec, [&](const auto& loss) {
    const ChunkPlan plan = plan_chunks(X.rows());
    parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
      for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
        eta.segment(b, nb) = linear_predictor(Xb, theta, fit_intercept);
        for (Index i = b; i < b + nb; ++i) {
          value[i] = loss.value(y[i], eta[i]);
          d1[i] = loss.d1(y[i], eta[i]);
          d2[i] = loss.d2(y[i], eta[i]);
        }
      });
    });
  });
}

// ---------------------------------------------------------------------------
// Objective, gradient and Hessian in one fused pass.
// ---------------------------------------------------------------------------
struct Want {
  bool gradient = true;
  bool hessian = true;
};

struct Evaluation {
  double value = 0.0;
  VectorXd gradient;  // (p,)   empty unless wanted
  MatrixXd hessian;   // (p, p) empty unless wanted; full symmetric

  Evaluation& operator+=(const Evaluation& other) {
    value += other.value;
    if (gradient.size()) gradient += other.gradient;
    if (hessian.size()) hessian += other.hessian;
    return *this;
  }
};

template <class XType>
Evaluation evaluate(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta, Want want, int n_threads) {
  const Index d = prob.n_features(), p = prob.n_params();
  const double inv_n = 1.0 / static_cast<double>(prob.n_rows());
  auto make = [&] {
    Evaluation e;
    if (want.gradient) e.gradient = VectorXd::Zero(p);
    if (want.hessian) e.hessian = MatrixXd::Zero(p, p);
    return e;
  };
  const Index acc_doubles = (want.gradient ? p : 0) + (want.hessian ? p * p : 0) + 1;
  Evaluation total = visit_loss(spec, [&](const auto& loss) {
    return parallel_reduce_rows<Evaluation>(
        plan_reduction(prob.n_rows(), acc_doubles), n_threads, make, [&](Evaluation& acc, Index begin, Index size) {
          for_each_block(prob.X, begin, size, [&](const auto& Xb, Index b, Index nb) {
            const VectorXd eta = linear_predictor(Xb, theta, prob.fit_intercept);
            // r_i = s_i loss'_i / n ;  c_i = s_i loss''_i / n
            VectorXd r(nb), c(nb);
            for (Index k = 0; k < nb; ++k) {
              const double s = prob.weight(b + k) * inv_n, yk = prob.y[b + k];
              acc.value += s * loss.value(yk, eta[k]);
              r[k] = s * loss.d1(yk, eta[k]);
              c[k] = s * loss.d2(yk, eta[k]);
            }
            if (want.gradient) {
              // grad_w += Xb^T r ;  grad_b += sum r
              acc.gradient.head(d).noalias() += Xb.transpose() * r;
              if (prob.fit_intercept) acc.gradient[d] += r.sum();
            }
            if (want.hessian) {
              // H_ww += Xb^T diag(c) Xb = Z^T Z with Z = diag(sqrt c) Xb (c >= 0: convex loss)
              const MatrixXd Z = c.array().sqrt().matrix().asDiagonal() * Xb;
              acc.hessian.topLeftCorner(d, d).template selfadjointView<Eigen::Lower>().rankUpdate(Z.transpose());
              if (prob.fit_intercept) {
                // H_bw += c^T Xb ;  H_bb += sum c
                acc.hessian.row(d).head(d).noalias() += c.transpose() * Xb;
                acc.hessian(d, d) += c.sum();
              }
            }
          });
        });
  });
  // Penalty (l2/2)||w||^2, never on the intercept.
  const auto w = theta.head(d);
  total.value += 0.5 * prob.l2 * w.squaredNorm();
  if (want.gradient) total.gradient.head(d) += prob.l2 * w;
  if (want.hessian) {
    total.hessian.diagonal().head(d).array() += prob.l2;
    total.hessian = MatrixXd(total.hessian.template selfadjointView<Eigen::Lower>());
  }
  return total;
}

// ---------------------------------------------------------------------------
// Hessian-vector products H V for a block of vectors V (p x k), without H.
// ---------------------------------------------------------------------------
struct MatrixAcc {
  MatrixXd m;
  MatrixAcc& operator+=(const MatrixAcc& o) {
    m += o.m;
    return *this;
  }
};

template <class XType>
MatrixXd hessian_vector_product(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta, MatrixCRef V,
                                int n_threads) {
  const Index d = prob.n_features(), p = prob.n_params(), k = V.cols();
  const double inv_n = 1.0 / static_cast<double>(prob.n_rows());
  MatrixAcc total = visit_loss(spec, [&](const auto& loss) {
    return parallel_reduce_rows<MatrixAcc>(
        plan_reduction(prob.n_rows(), p * k), n_threads, [&] { return MatrixAcc{MatrixXd::Zero(p, k)}; },
        [&](MatrixAcc& acc, Index begin, Index size) {
          for_each_block(prob.X, begin, size, [&](const auto& Xb, Index b, Index nb) {
            const VectorXd eta = linear_predictor(Xb, theta, prob.fit_intercept);
            VectorXd c(nb);
            for (Index i = 0; i < nb; ++i) c[i] = prob.weight(b + i) * inv_n * loss.d2(prob.y[b + i], eta[i]);
            // U = Xa_b V ;  U <- diag(c) U ;  HV += Xa_b^T U
            MatrixXd U = Xb * V.topRows(d);
            if (prob.fit_intercept) U.rowwise() += V.row(d);
            U = c.asDiagonal() * U;
            acc.m.topRows(d).noalias() += Xb.transpose() * U;
            if (prob.fit_intercept) acc.m.row(d) += U.colwise().sum();
          });
        });
  });
  total.m.topRows(d) += prob.l2 * V.topRows(d);
  return total.m;
}

// ---------------------------------------------------------------------------
// Scoring products: one dense product per row block, written into `out`.
// ---------------------------------------------------------------------------

// out_i = row_scale_i * (x_i^T M_w + M_b) for M (p x m): with M = H^{-1} G_test
// and row_scale = -loss'_i this is I_up,loss (eq. 2 of the paper) for all test
// points at once; with M = H^{-1} it is I_up,params.
template <class XType>
void scaled_row_products(const XType& X, bool fit_intercept, VectorCRef row_scale, MatrixCRef M,
                         Eigen::Ref<RowMatrixXd> out, int n_threads) {
  const Index d = X.cols();
  const ChunkPlan plan = plan_chunks(X.rows(), 1024, 64);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      auto block = out.middleRows(b, nb);
      block.noalias() = Xb * M.topRows(d);
      if (fit_intercept) block.rowwise() += M.row(d);
      block = row_scale.segment(b, nb).asDiagonal() * block;
    });
  });
}

// q_i = ||A xa_i||^2 for a p x p matrix A. With A = L^{-1} (H = L L^T) this is
// xa_i^T H^{-1} xa_i, the quadratic form behind self-influence and leverage.
template <class XType>
void row_quadratic_forms(const XType& X, bool fit_intercept, MatrixCRef A, Eigen::Ref<VectorXd> out, int n_threads) {
  const Index d = X.cols();
  const MatrixXd At_w = A.leftCols(d).transpose();
  const ChunkPlan plan = plan_chunks(X.rows(), 1024, 64);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      MatrixXd Z = Xb * At_w;
      if (fit_intercept) Z.rowwise() += A.col(d).transpose();
      out.segment(b, nb) = Z.rowwise().squaredNorm();
    });
  });
}

// Leave-one-out change of test loss under the one-step Newton estimate:
// delta eta_ij = row_scale_i * (xa_i . U_j) with U = H^{-1} Xa_test^T, and
// out_ij = loss(y_j, eta_j + delta eta_ij) - loss(y_j, eta_j).
template <class XType>
void loo_loss_change(const LossSpec& spec, const XType& X, bool fit_intercept, VectorCRef row_scale, MatrixCRef U,
                     VectorCRef y_test, VectorCRef eta_test, Eigen::Ref<RowMatrixXd> out, int n_threads) {
  const Index d = X.cols(), m = U.cols();
  visit_loss(spec, [&](const auto& loss) {
    const ChunkPlan plan = plan_chunks(X.rows(), 1024, 64);
    parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
      for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
        auto block = out.middleRows(b, nb);
        block.noalias() = Xb * U.topRows(d);
        if (fit_intercept) block.rowwise() += U.row(d);
        for (Index i = 0; i < nb; ++i)
          for (Index j = 0; j < m; ++j)
            block(i, j) = loss.difference(y_test[j], eta_test[j], row_scale[b + i] * block(i, j));
      });
    });
  });
}

// I_pert,loss(z_i, z_test_j) = -V_j^T grad_x grad_theta loss(z_i), with
// grad_x grad_theta loss = loss''_i xa_i w^T + loss'_i [I_d; 0] for a linear
// model, so out[i, j, :] = -(loss''_i (xa_i . V_j) w + loss'_i V_j[:d]).
// out is (n, m, d) in C order.
template <class XType>
void perturbation_loss(const XType& X, bool fit_intercept, VectorCRef d1, VectorCRef d2, MatrixCRef V, VectorCRef w,
                       double* out, int n_threads) {
  const Index d = X.cols(), m = V.cols();
  const ChunkPlan plan = plan_chunks(X.rows(), 1024, 16);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      MatrixXd A = Xb * V.topRows(d);
      if (fit_intercept) A.rowwise() += V.row(d);
      for (Index i = 0; i < nb; ++i) {
        for (Index j = 0; j < m; ++j) {
          Eigen::Map<VectorXd> dst(out + ((b + i) * m + j) * d, d);
          dst = -(d2[b + i] * A(i, j)) * w - d1[b + i] * V.col(j).head(d);
        }
      }
    });
  });
}

}  // namespace fastinfluence
