// Fused kernels over the rows of X for the regularised empirical risk
//
//   R(theta) = (1/n) sum_i s_i loss(y_i, eta_i) + (l2/2) ||w||^2,
//   eta_i = x_i.w + b,  theta = (w, b)  (b present only with an intercept),
//
// and the scoring products of Koh & Liang (ICML 2017). Each kernel makes one
// pass over X, in row chunks spread over OpenMP threads, with per-chunk
// accumulators reduced in a fixed order (see parallel.hpp).
//
// X is an Eigen Map over a NumPy buffer (float or double, C or F order) or a
// row-major sparse Map over a SciPy CSR matrix (int32 or int64 indices).
// Sums are always accumulated in double.
#pragma once

#include <Eigen/Core>
#include <Eigen/SparseCore>
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "buffers.hpp"
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

// G += Xa_b^T diag(c) Xa_b, lower triangle of the (d, d) block and the
// intercept row; c >= 0 for convex losses.
template <class Block>
void accumulate_gram(const Block& Xb, const VectorXd& c, bool fit_intercept, MatrixXd& G) {
  const Index d = Xb.cols();
  if constexpr (is_sparse_v<std::decay_t<Block>>) {
    // Per row, every pair of non-zeros: O(nnz_row^2), never a d x d temporary.
    for (Index i = 0; i < Xb.rows(); ++i) {
      for (Eigen::InnerIterator<Block> a(Xb, i); a; ++a) {
        const double ca = c[i] * a.value();
        for (Eigen::InnerIterator<Block> b(Xb, i); b && b.index() <= a.index(); ++b)
          G(a.index(), b.index()) += ca * b.value();
        if (fit_intercept) G(d, a.index()) += ca;
      }
    }
  } else {
    // = Z^T Z with Z = diag(sqrt c) Xb: a symmetric rank-k update. Z keeps the
    // block's storage order (a row-major Z for C-ordered X is ~1.5x faster
    // than a transposing copy at d = 100).
    using Z_t = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic,
                              std::decay_t<Block>::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor>;
    const Z_t Z = c.array().sqrt().matrix().asDiagonal() * Xb;
    G.topLeftCorner(d, d).template selfadjointView<Eigen::Lower>().rankUpdate(Z.transpose());
    if (fit_intercept) G.row(d).head(d).noalias() += c.transpose() * Xb;
  }
  if (fit_intercept) G(d, d) += c.sum();
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

// Optional per-row outputs of evaluate, (n,) each or null: the unweighted
// loss'_i and loss''_i, so that callers needing them (Influence) make one pass.
struct RowDerivativesOut {
  double* d1 = nullptr;
  double* d2 = nullptr;
};

template <class XType>
Evaluation evaluate(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta, Want want, int n_threads,
                    RowDerivativesOut rows = {}) {
  const Index d = prob.n_features(), p = prob.n_params();
  const double inv_n = 1.0 / static_cast<double>(prob.n_rows());
  auto make = [&] {
    Evaluation e;
    if (want.gradient) e.gradient = VectorXd::Zero(p);
    if (want.hessian) e.hessian = MatrixXd::Zero(p, p);
    return e;
  };
  const Index acc_doubles = (want.gradient ? p : 0) + (want.hessian ? p * p : 0) + 1;
  const double nnz = row_size(prob.X);  // per row: the gradient's nnz, the Hessian's nnz^2
  const double row_work = (want.gradient ? nnz : 0.0) + (want.hessian ? nnz * nnz : 0.0) + 1.0;
  Evaluation total = visit_loss(spec, [&](const auto& loss) {
    return parallel_reduce_rows<Evaluation>(
        plan_reduction(prob.n_rows(), acc_doubles, row_work), n_threads, make,
        [&](Evaluation& acc, Index begin, Index size) {
          for_each_block(prob.X, begin, size, [&](const auto& Xb, Index b, Index nb) {
            const VectorXd eta = linear_predictor(Xb, theta, prob.fit_intercept);
            // r_i = s_i loss'_i / n ;  c_i = s_i loss''_i / n
            VectorXd r(nb), c(nb);
            for (Index k = 0; k < nb; ++k) {
              const double s = prob.weight(b + k) * inv_n, yk = prob.y[b + k];
              const double d1 = loss.d1(yk, eta[k]), d2 = loss.d2(yk, eta[k]);
              acc.value += s * loss.value(yk, eta[k]);
              r[k] = s * d1;
              c[k] = s * d2;
              if (rows.d1 != nullptr) rows.d1[b + k] = d1;
              if (rows.d2 != nullptr) rows.d2[b + k] = d2;
            }
            if (want.gradient) {
              // grad_w += Xb^T r ;  grad_b += sum r
              acc.gradient.head(d).noalias() += Xb.transpose() * r;
              if (prob.fit_intercept) acc.gradient[d] += r.sum();
            }
            if (want.hessian) accumulate_gram(Xb, c, prob.fit_intercept, acc.hessian);
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
// Hessian-vector products H V for a block of vectors V (p x k), never forming H.
//   H = Xa^T diag(c) Xa + l2 P,  c_i = s_i loss''_i / n,  P = diag(1, .., 1, 0)
// ---------------------------------------------------------------------------
struct MatrixAcc {
  MatrixXd m;
  MatrixAcc& operator+=(const MatrixAcc& o) {
    m += o.m;
    return *this;
  }
};

// c_i = s_i loss''_i / n at theta: the per-row weights of the data part of H.
template <class XType>
VectorXd curvature_weights(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta, int n_threads) {
  const Index n = prob.n_rows();
  VectorXd c(n);
  const double inv_n = 1.0 / static_cast<double>(n);
  visit_loss(spec, [&](const auto& loss) {
    const ChunkPlan plan = plan_chunks(n);
    parallel_for_chunks(plan.n_chunks, n_threads, [&](Index ch) {
      for_each_block(prob.X, plan.begin(ch), plan.size(ch), [&](const auto& Xb, Index b, Index nb) {
        const VectorXd eta = linear_predictor(Xb, theta, prob.fit_intercept);
        for (Index i = 0; i < nb; ++i) c[b + i] = prob.weight(b + i) * inv_n * loss.d2(prob.y[b + i], eta[i]);
      });
    });
  });
  return c;
}

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
    // Plain loops over contiguous k-vectors: the compiler vectorises them
    // without Eigen's per-expression overhead, which dominates at small k.
    std::vector<double> u(ku);
    for (Index i = plan.begin(chunk); i < plan.begin(chunk) + plan.size(chunk); ++i) {
      if (c[i] == 0.0) continue;
      // u = c_i xa_i^T V ;  acc += xa_i u
      for (size_t q = 0; q < ku; ++q) u[q] = fit_intercept ? v[static_cast<size_t>(d) * ku + q] : 0.0;
      for (typename XType::InnerIterator it(X, i); it; ++it) {
        const double x = static_cast<double>(it.value());
        const double* vj = v + static_cast<size_t>(it.index()) * ku;
        for (size_t q = 0; q < ku; ++q) u[q] += x * vj[q];
      }
      for (size_t q = 0; q < ku; ++q) u[q] *= c[i];
      for (typename XType::InnerIterator it(X, i); it; ++it) {
        const double x = static_cast<double>(it.value());
        double* aj = a + static_cast<size_t>(it.index()) * ku;
        for (size_t q = 0; q < ku; ++q) aj[q] += x * u[q];
      }
      if (fit_intercept) {
        double* ad = a + static_cast<size_t>(d) * ku;
        for (size_t q = 0; q < ku; ++q) ad[q] += u[q];
      }
    }
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

// Xa^T diag(c) Xa V for V (p x k), one pass over X for all k vectors (the
// workspace serves sparse X only).
template <class XType>
MatrixXd gram_product(const XType& X, bool fit_intercept, VectorCRef c, MatrixCRef V, int n_threads,
                      GramWorkspace* workspace = nullptr) {
  if constexpr (is_sparse_v<XType>) return sparse_gram_product(X, fit_intercept, c, V, n_threads, workspace);
  const Index d = X.cols(), p = d + (fit_intercept ? 1 : 0), k = V.cols();
  MatrixAcc total = parallel_reduce_rows<MatrixAcc>(
      plan_reduction(X.rows(), p * k, 2.0 * row_size(X) * static_cast<double>(k)), n_threads,
      [&] { return MatrixAcc{MatrixXd::Zero(p, k)}; },
      [&](MatrixAcc& acc, Index begin, Index size) {
        for_each_block(X, begin, size, [&](const auto& Xb, Index b, Index nb) {
          // U = diag(c) Xa_b V ;  acc += Xa_b^T U
          MatrixXd U = Xb * V.topRows(d);
          if (fit_intercept) U.rowwise() += V.row(d);
          U = c.segment(b, nb).asDiagonal() * U;
          acc.m.topRows(d).noalias() += Xb.transpose() * U;
          if (fit_intercept) acc.m.row(d) += U.colwise().sum();
        });
      });
  return total.m;
}

// sum over the listed rows (repeats count) of c_i xa_i xa_i^T V: the data
// part of a mini-batch Hessian applied to V, on one thread (batches are small).
template <class XType>
MatrixXd gram_product_rows(const XType& X, bool fit_intercept, VectorCRef c, const std::vector<Index>& rows,
                           MatrixCRef V) {
  const Index d = X.cols(), p = d + (fit_intercept ? 1 : 0);
  MatrixXd out = MatrixXd::Zero(p, V.cols());
  for (const Index i : rows) {
    const auto xi = X.row(i).template cast<double>();
    // u = c_i xa_i^T V ;  out += xa_i u
    Eigen::RowVectorXd u = xi * V.topRows(d);
    if (fit_intercept) u += V.row(d);
    u *= c[i];
    if constexpr (is_sparse_v<XType>) {
      for (typename XType::InnerIterator it(X, i); it; ++it) out.row(it.index()) += static_cast<double>(it.value()) * u;
    } else {
      out.topRows(d).noalias() += xi.transpose() * u;
    }
    if (fit_intercept) out.row(d) += u;
  }
  return out;
}

// diag(Xa^T diag(c) Xa): the Jacobi preconditioner of CG.
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

template <class XType>
MatrixXd hessian_vector_product(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta, MatrixCRef V,
                                int n_threads) {
  const VectorXd c = curvature_weights(spec, prob, theta, n_threads);
  return regularised_gram_product(prob.X, prob.fit_intercept, c, prob.l2, V, n_threads);
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
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
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
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, n_threads, [&](Index c) {
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      MatrixXd Z = Xb * At_w;
      if (fit_intercept) Z.rowwise() += A.col(d).transpose();
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
  const Index d = X.cols(), m = U.cols();
  visit_loss(spec, [&](const auto& loss) {
    const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
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

// ---------------------------------------------------------------------------
// Streaming top-k: the k most negative (helpful) and k most positive
// (harmful) entries of every column of S = diag(row_scale) Xa M, without
// ever holding S: O(threads * m * k) memory.
// ---------------------------------------------------------------------------

// Keeps the k largest keys seen (a min-heap on the key). Keys are
// (value, -index): ties go to the lower row index, so the result is the same
// for any thread count.
class BoundedTopK {
 public:
  using Key = std::pair<double, Index>;
  explicit BoundedTopK(Index k = 0) : k_(static_cast<size_t>(k)) { heap_.reserve(k_); }
  // No value below this can enter: -inf until the heap is full, then the
  // worst kept value (equal values are decided by accepts, on the row).
  double floor_value() const {
    if (k_ == 0) return std::numeric_limits<double>::infinity();
    return heap_.size() < k_ ? -std::numeric_limits<double>::infinity() : heap_.front().first;
  }
  // Cheap test before push: false when (value, row) cannot enter a full heap.
  bool accepts(double value, Index row) const {
    if (heap_.size() < k_) return k_ > 0;
    const Key& worst = heap_.front();
    return value > worst.first || (value == worst.first && -row > worst.second);
  }
  void push(double value, Index row) {
    const Key key{value, -row};
    if (heap_.size() < k_) {
      heap_.push_back(key);
      std::push_heap(heap_.begin(), heap_.end(), std::greater<Key>());
    } else if (k_ > 0 && key > heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<Key>());
      heap_.back() = key;
      std::push_heap(heap_.begin(), heap_.end(), std::greater<Key>());
    }
  }
  void merge(const BoundedTopK& other) {
    for (const Key& key : other.heap_) push(key.first, -key.second);
  }
  // Best first.
  std::vector<Key> sorted() const {
    std::vector<Key> out = heap_;
    std::sort(out.begin(), out.end(), std::greater<Key>());
    return out;
  }

 private:
  size_t k_;
  std::vector<Key> heap_;
};

struct TopKResult {
  Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> helpful_rows, harmful_rows;  // (m, k)
  RowMatrixXd helpful_scores, harmful_scores;                                                       // (m, k)
};

inline constexpr Index kTopKPanel = 128;  // test points scored per GEMM in top_k_scores

template <class XType>
TopKResult top_k_scores(const XType& X, bool fit_intercept, VectorCRef row_scale, MatrixCRef M, Index k,
                        int n_threads) {
  const Index d = X.cols(), m = M.cols();
  k = std::min(k, X.rows());
  const int threads = resolve_threads(n_threads);
  // [thread][column]: helpful keeps -score (most negative scores), harmful keeps +score.
  std::vector<std::vector<BoundedTopK>> helpful(static_cast<size_t>(threads), std::vector<BoundedTopK>(static_cast<size_t>(m), BoundedTopK(k)));
  std::vector<std::vector<BoundedTopK>> harmful = helpful;
  const ChunkPlan plan = plan_chunks(X.rows(), 256, 1024);
  parallel_for_chunks(plan.n_chunks, threads, [&](Index c) {
    auto& help = helpful[static_cast<size_t>(current_thread())];
    auto& harm = harmful[static_cast<size_t>(current_thread())];
    // Offers the nb scores of test point j for rows b.. to its two heaps. Once
    // the heaps are full almost no score enters: compare against two floors
    // held in registers and touch a heap only when one is reached.
    const auto scan_column = [&](const double* column, Index j, Index b, Index nb) {
      auto& hj = help[static_cast<size_t>(j)];
      auto& rj = harm[static_cast<size_t>(j)];
      double help_floor = hj.floor_value(), harm_floor = rj.floor_value();
      for (Index i = 0; i < nb; ++i) {
        const double v = column[i];
        if (!(-v < help_floor) && hj.accepts(-v, b + i)) {  // "!(<)": a NaN still fills a heap, as before
          hj.push(-v, b + i);
          help_floor = hj.floor_value();
        }
        if (!(v < harm_floor) && rj.accepts(v, b + i)) {
          rj.push(v, b + i);
          harm_floor = rj.floor_value();
        }
      }
    };
    MatrixXd S;
    for_each_block(X, plan.begin(c), plan.size(c), [&](const auto& Xb, Index b, Index nb) {
      // Test points in panels, so that each block of scores is scanned while
      // it is still in cache (1024 rows x 1000 test points would be 8 MB).
      for (Index j0 = 0; j0 < m; j0 += kTopKPanel) {
        const Index w = std::min(kTopKPanel, m - j0);
        // S = diag(row_scale_b) (Xb M_w + 1 M_b) for this panel's columns of M
        S.noalias() = Xb * M.block(0, j0, d, w);
        if (fit_intercept) S.rowwise() += M.row(d).segment(j0, w);
        S = row_scale.segment(b, nb).asDiagonal() * S;
        for (Index jj = 0; jj < w; ++jj) scan_column(S.col(jj).data(), j0 + jj, b, nb);
      }
    });
  });
  TopKResult res;
  res.helpful_rows.resize(m, k);
  res.harmful_rows.resize(m, k);
  res.helpful_scores.resize(m, k);
  res.harmful_scores.resize(m, k);
  for (Index j = 0; j < m; ++j) {
    BoundedTopK help(k), harm(k);
    for (int t = 0; t < threads; ++t) {
      help.merge(helpful[static_cast<size_t>(t)][static_cast<size_t>(j)]);
      harm.merge(harmful[static_cast<size_t>(t)][static_cast<size_t>(j)]);
    }
    const auto hs = help.sorted(), rs = harm.sorted();
    for (Index r = 0; r < k; ++r) {
      res.helpful_rows(j, r) = -hs[static_cast<size_t>(r)].second;
      res.helpful_scores(j, r) = -hs[static_cast<size_t>(r)].first;
      res.harmful_rows(j, r) = -rs[static_cast<size_t>(r)].second;
      res.harmful_scores(j, r) = rs[static_cast<size_t>(r)].first;
    }
  }
  return res;
}

}  // namespace fastinfluence
