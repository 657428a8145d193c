// Gram products: H V for a block of vectors V (p x k) without forming H,
//
//   H = Xa^T diag(c) Xa + l2 P,  c_i = s_i loss''_i / n,  P = diag(1, .., 1, 0),
//
// with Xa = [X, 1] (the column of ones only with an intercept); its diagonal
// (CG's Jacobi preconditioner); and the mini-batch product behind LiSSA.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "buffers.hpp"
#include "losses.hpp"
#include "objective.hpp"
#include "parallel.hpp"
#include "problem.hpp"

namespace fastinfluence {

struct MatrixAcc {
  MatrixXd m;
  MatrixAcc& operator+=(const MatrixAcc& o) {
    m += o.m;
    return *this;
  }
};

// The buffers of sparse_gram_product, kept across calls: an iterative solver
// passes one workspace to all its products, so that their pages are mapped and
// faulted in once per solve instead of once per iteration.
class GramWorkspace {
 public:
  // `count` buffers of `size` doubles each (their contents are the caller's to reset).
  void reserve(size_t count, size_t size) {
    if (buffers_.size() == count && (count == 0 || buffers_.front().size() == size)) return;
    buffers_.clear();
    for (size_t i = 0; i < count; ++i) buffers_.emplace_back(size);
  }
  double* data(Index i) { return buffers_[static_cast<size_t>(i)].data(); }

 private:
  std::vector<ZeroedBuffer> buffers_;
};

// Rows [b, b + nb) of one panel of sparse_gram_product: acc += xa_i u_i with
// u_i = c_i xa_i^T V, for V and acc (p x k) row-major and u a k-vector of
// scratch. Plain loops over contiguous k-vectors: the compiler vectorises them
// without Eigen's per-expression overhead, which dominates at small k.
template <class Block>
void sparse_gram_rows(const Block& Xb, const double* c, const double* v, size_t k, Index d, bool fit_intercept,
                      double* u, double* acc) {
  for (Index r = 0; r < Xb.rows(); ++r) {
    const double cr = c[r];
    if (cr == 0.0) continue;
    // u = c_i xa_i^T V ;  acc += xa_i u
    for (size_t q = 0; q < k; ++q) u[q] = fit_intercept ? v[static_cast<size_t>(d) * k + q] : 0.0;
    for (typename Block::InnerIterator it(Xb, r); it; ++it) {
      const double x = it.value();
      const double* vj = v + static_cast<size_t>(it.index()) * k;
      for (size_t q = 0; q < k; ++q) u[q] += x * vj[q];
    }
    for (size_t q = 0; q < k; ++q) u[q] *= cr;
    for (typename Block::InnerIterator it(Xb, r); it; ++it) {
      const double x = it.value();
      double* aj = acc + static_cast<size_t>(it.index()) * k;
      for (size_t q = 0; q < k; ++q) aj[q] += x * u[q];
    }
    if (fit_intercept) {
      double* ad = acc + static_cast<size_t>(d) * k;
      for (size_t q = 0; q < k; ++q) ad[q] += u[q];
    }
  }
}

// One panel of sparse_gram_product: Xa^T diag(c) Xa V for the k columns of V,
// one fused pass over the rows. V and the accumulators are row-major so that
// each non-zero touches one contiguous k-vector (Eigen's sparse x dense product
// would walk X once per column of V); they are read and written at random
// rows (on huge pages when a block is 2 MiB or more: buffers.hpp). Leaves the
// result, (p x k) row-major, in ws.data(1).
template <class XType>
void sparse_gram_panel(const XType& X, bool fit_intercept, VectorCRef c, MatrixCRef V, const ChunkPlan& plan,
                       int n_threads, GramWorkspace& ws) {
  const Index d = X.cols(), p = d + (fit_intercept ? 1 : 0), k = V.cols();
  const auto ku = static_cast<size_t>(k), pk = static_cast<size_t>(p) * ku;
  const double* v = ws.data(0);
  Eigen::Map<RowMatrixXd>(ws.data(0), p, k) = V;
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index chunk) {
    double* a = ws.data(chunk + 1);
    std::fill(a, a + pk, 0.0);
    std::vector<double> u(ku);
    for_each_block(X, plan.begin(chunk), plan.size(chunk), [&](const auto& Xb, Index b, Index) {
      if constexpr (is_sparse_v<std::decay_t<decltype(Xb)>>)
        sparse_gram_rows(Xb, c.data() + b, v, ku, d, fit_intercept, u.data(), a);
    });
  });
  tree_reduce(plan.n_chunks, n_threads, /*parallel_levels=*/true, [&](Index into, Index from) {
    double* a = ws.data(into + 1);
    const double* b = ws.data(from + 1);
    for (size_t j = 0; j < pk; ++j) a[j] += b[j];
  });
}

// Doubles in one panel of V in sparse_gram_product (2 MiB). Each thread's
// working set is its panel of V plus its accumulator, and gathers and scatters
// hit them at random: kept this small they stay near the core's caches, while
// wider panels would pass over X fewer times but let a neighbour's traffic in
// the shared L3 push them out (at p = 50,000, k = 10, 2 cores: 5-column panels
// took 0.15-0.17 s per product where all 10 columns at once took 0.28-0.37 s,
// on a busy machine; 0.07-0.1 s either way when quiet).
inline constexpr Index kSparsePanelDoubles = Index{1} << 18;

// Sparse rows: Xa^T diag(c) Xa V, in panels of columns of V of at most
// kSparsePanelDoubles doubles each, one pass over X per panel.
template <class XType>
MatrixXd sparse_gram_product(const XType& X, bool fit_intercept, VectorCRef c, MatrixCRef V, int n_threads,
                             GramWorkspace* workspace = nullptr) {
  const Index p = X.cols() + (fit_intercept ? 1 : 0), k = V.cols();
  const Index max_width = std::max<Index>(1, kSparsePanelDoubles / std::max<Index>(1, p));
  const Index panels = (k + max_width - 1) / max_width;
  const Index width = panels == 0 ? 0 : (k + panels - 1) / panels;  // balanced: widths differ by at most one
  const ChunkPlan plan = plan_reduction(X.rows(), p * width, 2.0 * row_size(X) * static_cast<double>(width));
  MatrixXd out = MatrixXd::Zero(p, k);
  if (plan.n_chunks == 0 || k == 0) return out;
  GramWorkspace local;
  GramWorkspace& ws = workspace != nullptr ? *workspace : local;
  ws.reserve(static_cast<size_t>(plan.n_chunks) + 1, static_cast<size_t>(p * width));  // V, one accumulator per chunk
  for (Index j0 = 0; j0 < k; j0 += width) {
    const Index w = std::min(width, k - j0);
    sparse_gram_panel(X, fit_intercept, c, V.middleCols(j0, w), plan, n_threads, ws);
    out.middleCols(j0, w) = Eigen::Map<const RowMatrixXd>(ws.data(1), p, w);
  }
  return out;
}

// acc += Xa_b^T diag(c_b) Xa_b V for one block of rows.
template <class Block, class CVector>
void accumulate_gram_product(const Block& Xb, const CVector& c_b, bool fit_intercept, MatrixCRef V, MatrixXd& acc) {
  const Index d = Xb.cols();
  // U = diag(c) Xa_b V ;  acc += Xa_b^T U
  MatrixXd U = Xb * V.topRows(d);
  if (fit_intercept) U.rowwise() += V.row(d);
  U = c_b.asDiagonal() * U;
  acc.topRows(d).noalias() += Xb.transpose() * U;
  if (fit_intercept) acc.row(d) += U.colwise().sum();
}

// Xa^T diag(c) Xa V for V (p x k), one pass over X for all k vectors (the
// workspace serves sparse X only).
template <class XType>
MatrixXd gram_product(const XType& X, bool fit_intercept, VectorCRef c, MatrixCRef V, int n_threads,
                      GramWorkspace* workspace = nullptr) {
  if (X.is_sparse()) return sparse_gram_product(X, fit_intercept, c, V, n_threads, workspace);
  const Index p = X.cols() + (fit_intercept ? 1 : 0), k = V.cols();
  MatrixAcc total = parallel_reduce_rows<MatrixAcc>(
      plan_reduction(X.rows(), p * k, 2.0 * row_size(X) * static_cast<double>(k)), n_threads,
      [&] { return MatrixAcc{MatrixXd::Zero(p, k)}; },
      [&](MatrixAcc& acc, Index begin, Index size) {
        for_each_block(X, begin, size, [&](const auto& Xb, Index b, Index nb) {
          if constexpr (!is_sparse_v<std::decay_t<decltype(Xb)>>)
            accumulate_gram_product(Xb, c.segment(b, nb), fit_intercept, V, acc.m);
        });
      });
  return total.m;
}

// sum over the listed rows (repeats count) of c_i xa_i xa_i^T V: the data
// part of a mini-batch Hessian applied to V, on one thread (batches are small).
template <class XType>
MatrixXd gram_product_rows(const XType& X, bool fit_intercept, VectorCRef c, const std::vector<Index>& rows,
                           MatrixCRef V) {
  const Index p = X.cols() + (fit_intercept ? 1 : 0);
  MatrixXd out = MatrixXd::Zero(p, V.cols());
  VectorXd c_b;
  for_each_gathered_block(X, rows, [&](const auto& Xb, Index first, Index count) {
    c_b.resize(count);
    for (Index i = 0; i < count; ++i) c_b[i] = c[rows[static_cast<size_t>(first + i)]];
    accumulate_gram_product(Xb, c_b, fit_intercept, V, out);
  });
  return out;
}

// diag(Xa^T diag(c) Xa): with the l2 and damping terms added, the diagonal
// behind CG's Jacobi preconditioner.
template <class XType>
VectorXd gram_diagonal(const XType& X, bool fit_intercept, VectorCRef c, int n_threads) {
  const Index d = X.cols(), p = d + (fit_intercept ? 1 : 0);
  MatrixAcc total = parallel_reduce_rows<MatrixAcc>(
      plan_reduction(X.rows(), p, row_size(X)), n_threads, [&] { return MatrixAcc{MatrixXd::Zero(p, 1)}; },
      [&](MatrixAcc& acc, Index begin, Index size) {
        for_each_block(X, begin, size, [&](const auto& Xb, Index b, Index nb) {
          acc.m.col(0).head(d).noalias() += Xb.cwiseAbs2().transpose() * c.segment(b, nb);
          if (fit_intercept) acc.m(d, 0) += c.segment(b, nb).sum();
        });
      });
  return total.m.col(0);
}

// H V = Xa^T diag(c) Xa V + l2 P V, with c given (fixed at the optimum).
template <class XType>
MatrixXd regularised_gram_product(const XType& X, bool fit_intercept, VectorCRef c, double l2, MatrixCRef V,
                                  int n_threads, GramWorkspace* workspace = nullptr) {
  MatrixXd HV = gram_product(X, fit_intercept, c, V, n_threads, workspace);
  HV.topRows(X.cols()) += l2 * V.topRows(X.cols());
  return HV;
}

// H V at theta: the curvature weights, then the regularised Gram product.
template <class XType>
MatrixXd hessian_vector_product(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta, MatrixCRef V,
                                int n_threads) {
  const VectorXd c = curvature_weights(spec, prob, theta, n_threads);
  return regularised_gram_product(prob.X, prob.fit_intercept, c, prob.l2, V, n_threads);
}

// Compiled once, in cpp/src/gram.cpp (see objective.hpp).
#define FASTINFLUENCE_GRAM_INSTANCES(EXTERN, XType)                                                                 \
  EXTERN template MatrixXd gram_product_rows<XType>(const XType&, bool, VectorCRef, const std::vector<Index>&,      \
                                                    MatrixCRef);                                                    \
  EXTERN template VectorXd gram_diagonal<XType>(const XType&, bool, VectorCRef, int);                               \
  EXTERN template MatrixXd regularised_gram_product<XType>(const XType&, bool, VectorCRef, double, MatrixCRef, int, \
                                                           GramWorkspace*);                                         \
  EXTERN template MatrixXd hessian_vector_product<XType>(const LossSpec&, const Problem<XType>&, VectorCRef,        \
                                                         MatrixCRef, int);

#ifdef FASTINFLUENCE_EXTERN_TEMPLATES
FASTINFLUENCE_GRAM_INSTANCES(extern, DesignMatrix)
#endif

}  // namespace fastinfluence
