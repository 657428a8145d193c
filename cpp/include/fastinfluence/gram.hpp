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
#include "products.hpp"

namespace fastinfluence {

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

// How many non-zeros ahead sparse_gram_rows prefetches the rows of V and of
// the accumulator it will touch: their indices are random, so the hardware
// cannot guess them, and each miss would otherwise stall the row's chain of
// additions. At p = 50,000, 5 columns, 2 cores: 0.056-0.060 s per panel with 4
// to 16 ahead against 0.085 s without (medians of 15, interleaved).
inline constexpr Index kGramPrefetchAhead = 8;

// Rows of one block of a panel of a sparse Gram product: acc += xa_i t_i(xa_i^T V)
// for every row with c_i != 0, for V and acc (p x k) row-major and u a k-vector of
// scratch; transform(i, u) turns xa_i^T V into t_i in place (u *= c_i here, the
// class blocks' curvature in multinomial.hpp). W > 0 fixes the width at compile
// time (k == W), so that the loops over the columns unroll into a few vector
// instructions; W = 0 takes any k. W changes how the loops compile, not the
// order of any sum.
template <int W, class Block, class Transform>
void sparse_gram_rows(const Block& Xb, const double* c, const double* v, size_t k, Index d, bool fit_intercept,
                      double* u, double* acc, Transform& transform) {
  const size_t width = W > 0 ? static_cast<size_t>(W) : k;
  const auto* outer = Xb.outerIndexPtr();
  const auto* inner = Xb.innerIndexPtr();
  const double* values = Xb.valuePtr();
  const Index last = static_cast<Index>(Xb.nonZeros()) - 1;  // prefetches stay inside the block
  const auto ahead = [&](Index j) {
    return static_cast<size_t>(inner[std::min(j + kGramPrefetchAhead, last)]) * width;
  };
  // At a fixed width u lives on the stack: the compiler then keeps it in registers, which it
  // cannot for the caller's buffer (it might alias acc): 0.072-0.109 s -> 0.056-0.058 s per
  // 5-column panel at p = 50,000 on 2 cores.
  double fixed[W > 0 ? W : 1];
  u = W > 0 ? fixed : u;
  for (Index r = 0; r < Xb.rows(); ++r) {
    if (c[r] == 0.0) continue;
    const auto begin = static_cast<Index>(outer[r]), end = static_cast<Index>(outer[r + 1]);
    for (size_t q = 0; q < width; ++q) u[q] = fit_intercept ? v[static_cast<size_t>(d) * width + q] : 0.0;
    for (Index j = begin; j < end; ++j) {
      prefetch_read(v + ahead(j));
      const double x = values[j];
      const double* vj = v + static_cast<size_t>(inner[j]) * width;
      for (size_t q = 0; q < width; ++q) u[q] += x * vj[q];
    }
    transform(r, u);
    for (Index j = begin; j < end; ++j) {
      prefetch_write(acc + ahead(j));
      const double x = values[j];
      double* aj = acc + static_cast<size_t>(inner[j]) * width;
      for (size_t q = 0; q < width; ++q) aj[q] += x * u[q];
    }
    if (fit_intercept) {
      double* ad = acc + static_cast<size_t>(d) * width;
      for (size_t q = 0; q < width; ++q) ad[q] += u[q];
    }
  }
}

// sparse_gram_rows at a width fixed at compile time where there is one (k <= 8: the
// panels of wide problems, see kSparsePanelDoubles), any width otherwise.
template <class Block, class Transform>
void sparse_gram_rows_any(const Block& Xb, const double* c, const double* v, size_t k, Index d, bool fit_intercept,
                          double* u, double* acc, Transform&& transform) {
  switch (k) {
    case 1:
      return sparse_gram_rows<1>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
    case 2:
      return sparse_gram_rows<2>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
    case 3:
      return sparse_gram_rows<3>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
    case 4:
      return sparse_gram_rows<4>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
    case 5:
      return sparse_gram_rows<5>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
    case 6:
      return sparse_gram_rows<6>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
    case 7:
      return sparse_gram_rows<7>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
    case 8:
      return sparse_gram_rows<8>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
    default:
      return sparse_gram_rows<0>(Xb, c, v, k, d, fit_intercept, u, acc, transform);
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
      if constexpr (is_sparse_v<std::decay_t<decltype(Xb)>>) {
        const double* cb = c.data() + b;
        sparse_gram_rows_any(Xb, cb, v, ku, d, fit_intercept, u.data(), a, [&](Index r, double* ur) {
          for (size_t q = 0; q < ku; ++q) ur[q] *= cb[r];
        });
      }
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
  Scratch<double> scratch(Xb.rows() * V.cols());
  auto U = scratch.matrix(Xb.rows(), V.cols());
  affine_product(Xb, V.topRows(d), V.middleRows(d, fit_intercept ? 1 : 0), U);
  U = c_b.asDiagonal() * U;
  gemm(Xb.transpose(), U, acc.topRows(d));
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
          // an aligned copy: a reduction over the caller's buffer would peel a number of terms
          // that depends on its address, and so change the sum's rounding from call to call
          const VectorXd cb = c.segment(b, nb);
          acc.m.col(0).head(d).noalias() += Xb.cwiseAbs2().transpose() * cb;
          if (fit_intercept) acc.m(d, 0) += cb.sum();
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
