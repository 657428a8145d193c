// Scoring products of Koh & Liang (ICML 2017): the dense products that turn
// solved test gradients into influence values for every training row, one
// product per row block, written into the caller's output.
#pragma once

#include <Eigen/Core>

#include "losses.hpp"
#include "parallel.hpp"
#include "problem.hpp"
#include "products.hpp"

namespace fastinfluence {

// out_i = row_scale_i * (x_i^T M_w + M_b) for M (p x m): with M = H^{-1} G_test
// and row_scale = -loss'_i this is I_up,loss (eq. 2 of the paper) for all test
// points at once; with M = H^{-1} it is I_up,params.
template <class XType>
void scaled_row_products(const XType& X, bool fit_intercept, VectorCRef row_scale, MatrixCRef M,
                         Eigen::Ref<RowMatrixXd> out, int n_threads) {
  const Index d = X.cols();
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      auto block = out.middleRows(b, nb);
      affine_product(Xb, M.topRows(d), M.middleRows(d, fit_intercept ? 1 : 0), block);
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
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      Scratch<double> scratch(nb * At_w.cols());
      auto Z = scratch.matrix(nb, At_w.cols());
      affine_product(Xb, At_w, A.middleCols(d, fit_intercept ? 1 : 0).transpose(), Z);
      // Reduce into a fresh (aligned) vector, then copy: assigning the reduction
      // straight into `out` would let the buffer's alignment pick scalar or
      // SIMD (FMA) code for the first rows, changing results by an ulp.
      const VectorXd q = Z.rowwise().squaredNorm();
      out.segment(b, nb) = q;
    });
  });
}

// Leave-one-out change of test loss under the one-step Newton estimate:
// delta eta_ij = row_scale_i * (xa_i . U_j) with U = H^{-1} Xa_test^T, and
// out_ij = loss(y_j, eta_j + delta eta_ij) - loss(y_j, eta_j).
template <class XType>
void loo_loss_change(const LossSpec& spec, const XType& X, bool fit_intercept, VectorCRef row_scale, MatrixCRef U,
                     VectorCRef y_test, VectorCRef eta_test, Eigen::Ref<RowMatrixXd> out, int n_threads) {
  check_loss(spec);
  const Index d = X.cols(), m = U.cols();
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      auto block = out.middleRows(b, nb);
      affine_product(Xb, U.topRows(d), U.middleRows(d, fit_intercept ? 1 : 0), block);
      for (Index i = 0; i < nb; ++i) {
        double* row = block.row(i).data();
        for (Index j = 0; j < m; ++j) row[j] *= row_scale[b + i];  // delta eta_ij
        loss_differences(spec, y_test.data(), eta_test.data(), row, m, row);
      }
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
      Scratch<double> scratch(nb * m);
      auto A = scratch.matrix(nb, m);
      affine_product(Xb, V.topRows(d), V.middleRows(d, fit_intercept ? 1 : 0), A);
      for (Index i = 0; i < nb; ++i) {
        for (Index j = 0; j < m; ++j) {
          Eigen::Map<VectorXd> dst(out + ((b + i) * m + j) * d, d);
          dst = -(d2[b + i] * A(i, j)) * w - d1[b + i] * V.col(j).head(d);
        }
      }
    });
  });
}

// Compiled once, in cpp/src/scoring.cpp (see objective.hpp).
#define FASTINFLUENCE_SCORING_INSTANCES(EXTERN, XType)                                                                 \
  EXTERN template void scaled_row_products<XType>(const XType&, bool, VectorCRef, MatrixCRef, Eigen::Ref<RowMatrixXd>, \
                                                  int);                                                                \
  EXTERN template void row_quadratic_forms<XType>(const XType&, bool, MatrixCRef, Eigen::Ref<VectorXd>, int);          \
  EXTERN template void loo_loss_change<XType>(const LossSpec&, const XType&, bool, VectorCRef, MatrixCRef, VectorCRef, \
                                              VectorCRef, Eigen::Ref<RowMatrixXd>, int);                               \
  EXTERN template void perturbation_loss<XType>(const XType&, bool, VectorCRef, VectorCRef, MatrixCRef, VectorCRef,    \
                                                double*, int);

#ifdef FASTINFLUENCE_EXTERN_TEMPLATES
FASTINFLUENCE_SCORING_INSTANCES(extern, DesignMatrix)
#endif

}  // namespace fastinfluence
