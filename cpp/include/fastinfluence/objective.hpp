// The objective R(theta) of problem.hpp and its derivatives, in fused passes
// over the rows of X: per-row derivatives, value/gradient/Hessian, and the
// curvature weights c_i of the Hessian. Each pass reads X once, in row
// chunks spread over OpenMP threads, with per-chunk accumulators reduced in a
// fixed order (parallel.hpp).
#pragma once

#include <Eigen/Core>
#include <cassert>
#include <type_traits>

#include "losses.hpp"
#include "parallel.hpp"
#include "problem.hpp"
#include "products.hpp"
#include "register_tiles.hpp"

namespace fastinfluence {

// ---------------------------------------------------------------------------
// Per-row derivative scalars: eta_i, loss_i, loss'_i, loss''_i (unweighted).
// ---------------------------------------------------------------------------
template <class XType>
void row_derivatives(const LossSpec& spec, const XType& X, VectorCRef y, VectorCRef theta, bool fit_intercept,
                     Eigen::Ref<VectorXd> eta, Eigen::Ref<VectorXd> value, Eigen::Ref<VectorXd> d1,
                     Eigen::Ref<VectorXd> d2, int n_threads) {
  check_loss(spec);
  const ChunkPlan plan = plan_chunks(X.rows());
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      eta.segment(b, nb) = linear_predictor(Xb, theta, fit_intercept);
      loss_terms(spec, y.data() + b, eta.data() + b, nb, value.data() + b, d1.data() + b, d2.data() + b);
    });
  });
}

// Columns [j0, j1) of the lower triangle of G += alpha Xa_b^T diag(w) Xa_b, for w >= 0
// and alpha = +1 or -1: of the (d, d) part and of the intercept row, and the corner
// G(d, d) when `corner`. Panels of one G write disjoint entries; j0 = 0, j1 = d is all of it.
template <class Block>
void accumulate_gram_panel(const Block& Xb, const VectorXd& w, double alpha, bool fit_intercept, Index j0, Index j1,
                           bool corner, Eigen::Ref<MatrixXd> G) {
  const Index d = Xb.cols();
  if constexpr (is_sparse_v<Block>) {
    // Per row, every pair of non-zeros: O(nnz_row^2), never a d x d temporary. Sparse X is
    // never cut into panels (hessian_panels is for dense X): all columns at once.
    assert(j0 == 0 && j1 == d);
    for (Index i = 0; i < Xb.rows(); ++i) {
      for (typename Block::InnerIterator a(Xb, i); a; ++a) {
        const double wa = alpha * w[i] * a.value();
        for (typename Block::InnerIterator b(Xb, i); b && b.index() <= a.index(); ++b)
          G(a.index(), b.index()) += wa * b.value();
        if (fit_intercept) G(d, a.index()) += wa;
      }
    }
  } else {
    // = Z^T Z with Z = diag(sqrt w) Xb: a symmetric rank-k update on the panel's diagonal
    // block and a GEMM below it. Z keeps the block's storage order (a row-major Z for
    // C-ordered X is ~1.5x faster than a transposing copy at d = 100).
    // Z and the products' packing live in the thread's kept buffers (products.hpp).
    const Index width = j1 - j0, cols = d - j0;
    const auto root_w = w.array().sqrt().matrix().asDiagonal();
    if constexpr (tiles::kEnabled && std::is_same_v<Block, DenseBlock>) {
      // register tiles (register_tiles.hpp) over a Z padded with zeros to whole packets
      const Index ldz = tiles::padded(cols);
      Scratch<double> scratch(Xb.rows() * ldz);
      auto Z = scratch.matrix<Eigen::RowMajor>(Xb.rows(), ldz);
      Z.leftCols(cols).noalias() = root_w * Xb.rightCols(cols);
      Z.rightCols(ldz - cols).setZero();
      tiles::gram_lower(Z.data(), ldz, Xb.rows(), d, j0, j1, alpha, G.data(), G.outerStride());
    } else {
      Scratch<double> scratch(Xb.rows() * cols);
      auto Z = scratch.matrix<Block::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor>(Xb.rows(), cols);
      Z.noalias() = root_w * Xb.rightCols(cols);
      rank_update_lower(Z.leftCols(width).transpose(), G.block(j0, j0, width, width), alpha);
      const Index below = d - j1;
      if (below > 0) gemm(Z.rightCols(below).transpose(), Z.leftCols(width), G.block(j1, j0, below, width), alpha);
    }
    if (fit_intercept) {  // G's row d is strided: the product into a vector first
      VectorXd row = VectorXd::Zero(width);
      gemm(Xb.middleCols(j0, width).transpose(), w, row, alpha);
      G.row(d).segment(j0, width) += row.transpose();
    }
  }
  if (fit_intercept && corner) G(d, d) += alpha * w.sum();
}

// G += Xa_b^T diag(c) Xa_b, the lower triangle of the (d, d) block and the
// intercept row; c >= 0 for convex losses.
template <class Block>
void accumulate_gram(const Block& Xb, const VectorXd& c, bool fit_intercept, MatrixXd& G) {
  accumulate_gram_panel(Xb, c, 1.0, fit_intercept, 0, Xb.cols(), true, G);
}

// A Hessian is wide when the accumulators' budget (plan_reduction) leaves fewer than
// kMinHessianTasks chunks whatever n: p >= 362 with the gradient. A wide Hessian comes in a
// second pass of (chunk, part) tasks, parallel_reduce_row_parts; a small one (small n
// included: few chunks, little work) stays in the fused pass. Depends on the data's shape
// only, never on the thread count.
inline constexpr Index kMinHessianTasks = 32;
inline bool wide_hessian(Index acc_doubles) { return accumulator_budget(acc_doubles) < kMinHessianTasks; }

// How many column panels each of `parts` parts of a wide Hessian is cut into, so that the
// tasks number at least kMinHessianTasks: enough for every thread of a 16-core machine twice
// over. Measured on 2 cores: n = 20,000, d = 2,000 (one chunk) 3.3-4.0 s in the fused pass,
// 2.2-2.4 s with 32 panels (2.1-2.2 s with 16); d = 700 (8 chunks, 4 panels) and W5 (4
// chunks, 10 block rows) the same within the noise.
inline Index hessian_panels(const ChunkPlan& plan, Index parts, Index n_columns) {
  const Index tasks = std::max<Index>(1, plan.n_chunks * parts);
  return std::clamp<Index>((kMinHessianTasks + tasks - 1) / tasks, 1, std::max<Index>(1, n_columns));
}

// Rows per chunk in one window of parallel_reduce_row_parts: about 8 MiB of X over all chunks,
// which stays in a shared L3 cache while every part reads it.
inline Index hessian_window_rows(const DesignMatrix& X, const ChunkPlan& plan) {
  constexpr double kWindowBytes = 8.0 * (1 << 20);
  const double index_bytes = X.is_sparse() ? (X.has_int64_indices() ? 8.0 : 4.0) : 0.0;
  const double row_bytes = std::max(1.0, row_size(X)) * ((X.is_float32() ? 4.0 : 8.0) + index_bytes);
  const double chunks = static_cast<double>(std::max<Index>(1, plan.n_chunks));
  return std::max<Index>(block_rows(X), static_cast<Index>(kWindowBytes / (row_bytes * chunks)));
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
  Index doubles() const { return gradient.size() + hessian.size(); }
};

// Optional per-row outputs of evaluate, (n,) each or null: the unweighted
// loss'_i and loss''_i, so that callers needing them (Influence) make one pass.
struct RowDerivativesOut {
  double* d1 = nullptr;
  double* d2 = nullptr;
};

template <class XType>
Evaluation evaluate(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta, Want want, int n_threads,
                    RowDerivativesOut rows = {}) {
  check_loss(spec);
  const Index d = prob.n_features(), p = prob.n_params();
  const double inv_n = 1.0 / static_cast<double>(prob.n_rows());
  const Index acc_doubles = (want.gradient ? p : 0) + (want.hessian ? p * p : 0) + 1;
  const double nnz = row_size(prob.X);  // per row: the gradient's nnz, the Hessian's nnz^2
  const double row_work = (want.gradient ? nnz : 0.0) + (want.hessian ? nnz * nnz : 0.0) + 1.0;
  const ChunkPlan plan = plan_reduction(prob.n_rows(), acc_doubles, row_work);
  // A wide dense H comes in a second pass, in column panels (parallel_reduce_row_parts),
  // from the weights c the first pass keeps.
  const bool wide = want.hessian && !prob.X.is_sparse() && wide_hessian(acc_doubles);
  const Index panels = wide ? hessian_panels(plan, 1, d) : 1;
  const bool fused_hessian = want.hessian && panels == 1;
  VectorXd c_all;
  if (want.hessian && !fused_hessian) c_all.resize(prob.n_rows());
  auto make = [&] {
    Evaluation e;
    if (want.gradient) e.gradient = VectorXd::Zero(p);
    if (fused_hessian) e.hessian = MatrixXd::Zero(p, p);
    return e;
  };
  Evaluation total =
      parallel_reduce_rows<Evaluation>(plan, n_threads, make, [&](Evaluation& acc, Index begin, Index size) {
        VectorXd value, d1, d2, r, c;
        for_each_block(prob.X, begin, size, [&](const auto& Xb, Index b, Index nb) {
          const VectorXd eta = linear_predictor(Xb, theta, prob.fit_intercept);
          value.resize(nb), d1.resize(nb), d2.resize(nb), r.resize(nb), c.resize(nb);
          loss_terms(spec, prob.y.data() + b, eta.data(), nb, value.data(), d1.data(), d2.data());
          // r_i = s_i loss'_i / n ;  c_i = s_i loss''_i / n
          for (Index k = 0; k < nb; ++k) {
            const double s = prob.weight(b + k) * inv_n;
            acc.value += s * value[k];
            r[k] = s * d1[k];
            c[k] = s * d2[k];
          }
          if (rows.d1 != nullptr) VectorXd::Map(rows.d1 + b, nb) = d1;
          if (rows.d2 != nullptr) VectorXd::Map(rows.d2 + b, nb) = d2;
          if (want.gradient) {
            // grad_w += Xb^T r ;  grad_b += sum r
            gemm(Xb.transpose(), r, acc.gradient.head(d));
            if (prob.fit_intercept) acc.gradient[d] += r.sum();
          }
          if (fused_hessian) accumulate_gram(Xb, c, prob.fit_intercept, acc.hessian);
          if (c_all.size()) c_all.segment(b, nb) = c;
        });
      });
  if (want.hessian && !fused_hessian) {
    const std::vector<Index> bounds = lower_triangle_panels(d, panels);
    const auto n_panels = static_cast<Index>(bounds.size()) - 1;
    total.hessian =
        parallel_reduce_row_parts<MatrixAcc>(
            plan, n_panels, hessian_window_rows(prob.X, plan), n_threads,
            [&] { return MatrixAcc{MatrixXd::Zero(p, p)}; },
            [&](MatrixAcc& acc, Index t, Index begin, Index size) {
              for_each_block(prob.X, begin, size, [&](const auto& Xb, Index b, Index nb) {
                const VectorXd cb = c_all.segment(b, nb);
                accumulate_gram_panel(Xb, cb, 1.0, prob.fit_intercept, bounds[t], bounds[t + 1], t == 0, acc.m);
              });
            })
            .m;
  }
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

// c_i = s_i loss''_i / n at theta: the per-row weights of the data part of H,
//   H = Xa^T diag(c) Xa + l2 P,  P = diag(1, .., 1, 0).
template <class XType>
VectorXd curvature_weights(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta, int n_threads) {
  check_loss(spec);
  const Index n = prob.n_rows();
  VectorXd c(n);
  const double inv_n = 1.0 / static_cast<double>(n);
  const ChunkPlan plan = plan_chunks(n);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index ch) {
    for_each_block(prob.X, plan.begin(ch), plan.size(ch), [&](const auto& Xb, Index b, Index nb) {
      const VectorXd eta = linear_predictor(Xb, theta, prob.fit_intercept);
      loss_second_derivatives(spec, prob.y.data() + b, eta.data(), nb, c.data() + b);
      for (Index i = 0; i < nb; ++i) c[b + i] = prob.weight(b + i) * inv_n * c[b + i];
    });
  });
  return c;
}

// The passes above for the design matrices the Python module hands over:
// compiled once, in cpp/src/objective.cpp. A translation unit that defines
// FASTINFLUENCE_EXTERN_TEMPLATES links to those instead of compiling its own
// (header-only users need neither).
#define FASTINFLUENCE_OBJECTIVE_INSTANCES(EXTERN, XType)                                                        \
  EXTERN template void row_derivatives<XType>(const LossSpec&, const XType&, VectorCRef, VectorCRef, bool,      \
                                              Eigen::Ref<VectorXd>, Eigen::Ref<VectorXd>, Eigen::Ref<VectorXd>, \
                                              Eigen::Ref<VectorXd>, int);                                       \
  EXTERN template Evaluation evaluate<XType>(const LossSpec&, const Problem<XType>&, VectorCRef, Want, int,     \
                                             RowDerivativesOut);                                                \
  EXTERN template VectorXd curvature_weights<XType>(const LossSpec&, const Problem<XType>&, VectorCRef, int);

#ifdef FASTINFLUENCE_EXTERN_TEMPLATES
FASTINFLUENCE_OBJECTIVE_INSTANCES(extern, DesignMatrix)
#endif

}  // namespace fastinfluence
