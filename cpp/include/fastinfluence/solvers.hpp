// Solvers for (H + damping I) V = B.
//
// The direct solver factorises H = L L^T once (Cholesky) and reports a
// reciprocal condition estimate, so callers can refuse a factorisation that
// "succeeded" on a numerically singular matrix. Conjugate gradient and LiSSA
// are written over any operator; at the end of this file they are assembled
// over the Gram product of gram.hpp (H = Xa^T diag(c) Xa + l2 P).
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gram.hpp"
#include "parallel.hpp"
#include "problem.hpp"

namespace fastinfluence {

class CholeskySolver {
 public:
  // Factorises H + damping * I. Check ok() and reciprocal_condition() before use.
  explicit CholeskySolver(const Eigen::MatrixXd& H, double damping = 0.0) : p_(H.rows()) {
    Eigen::MatrixXd A = H;
    A.diagonal().array() += damping;
    llt_.compute(A);
    ok_ = llt_.info() == Eigen::Success && llt_.matrixL().toDenseMatrix().diagonal().minCoeff() > 0.0;
    // LAPACK-style 1-norm estimate of 1 / (||A||_1 ||A^{-1}||_1), in [0, 1].
    rcond_ = ok_ ? llt_.rcond() : 0.0;
  }

  bool ok() const { return ok_; }
  double reciprocal_condition() const { return rcond_; }
  Eigen::Index size() const { return p_; }

  // X = (H + damping I)^{-1} B for all columns of B at once.
  Eigen::MatrixXd solve(const Eigen::Ref<const Eigen::MatrixXd>& B) const { return llt_.solve(B); }

  // L^{-1} (lower triangular), so that xa^T H^{-1} xa = ||L^{-1} xa||^2.
  Eigen::MatrixXd inverse_factor() const {
    Eigen::MatrixXd Linv = Eigen::MatrixXd::Identity(p_, p_);
    llt_.matrixL().solveInPlace(Linv);
    return Linv;
  }

 private:
  Eigen::Index p_;
  Eigen::LLT<Eigen::MatrixXd> llt_;
  bool ok_ = false;
  double rcond_ = 0.0;
};

}  // namespace fastinfluence

namespace fastinfluence {

// ---------------------------------------------------------------------------
// Preconditioned conjugate gradient for (H + damping I) X = B, all columns of
// B at once: each iteration applies H to every unconverged column in a
// single pass over the data (one fused HVP), never forming H.
// ---------------------------------------------------------------------------
struct CGOptions {
  double tol = 1e-10;  // on the relative residual ||b - A x|| / ||b||, per column
  int max_iter = 1000;
};

struct CGResult {
  Eigen::MatrixXd solution;    // (p, m)
  Eigen::VectorXi iterations;  // (m,)
  Eigen::VectorXd residual;    // (m,) final relative residual
  bool converged = false;      // every column within tol
};

// apply(V) returns (H + damping I) V for a (p, k) block. inv_diag is the
// Jacobi preconditioner 1 / diag(H + damping I), or empty for none. X0 is a
// warm start, or empty for zeros.
template <class Apply>
CGResult conjugate_gradient(Apply&& apply, const Eigen::MatrixXd& B, const Eigen::VectorXd& inv_diag,
                            const Eigen::MatrixXd& X0, const CGOptions& opt) {
  using Eigen::MatrixXd;
  using Eigen::VectorXd;
  const Eigen::Index p = B.rows(), m = B.cols();
  CGResult res;
  res.solution = X0.size() ? X0 : MatrixXd::Zero(p, m);
  res.iterations = Eigen::VectorXi::Zero(m);
  res.residual = VectorXd::Zero(m);
  const VectorXd b_norm = B.colwise().norm();
  auto precondition = [&](const MatrixXd& R) -> MatrixXd {
    return inv_diag.size() ? MatrixXd(inv_diag.asDiagonal() * R) : R;
  };
  // r = b - A x ;  z = M^{-1} r ;  d = z
  MatrixXd R = X0.size() ? MatrixXd(B - apply(res.solution)) : B;
  MatrixXd Z = precondition(R);
  MatrixXd D = Z;
  VectorXd rz = (R.cwiseProduct(Z)).colwise().sum();
  std::vector<Eigen::Index> active;
  for (Eigen::Index j = 0; j < m; ++j) {
    res.residual[j] = b_norm[j] > 0 ? R.col(j).norm() / b_norm[j] : 0.0;
    if (b_norm[j] == 0.0)
      res.solution.col(j).setZero();
    else if (res.residual[j] > opt.tol)
      active.push_back(j);
  }
  for (int it = 1; it <= opt.max_iter && !active.empty(); ++it) {
    const auto k = static_cast<Eigen::Index>(active.size());
    MatrixXd Dk(p, k);
    for (Eigen::Index a = 0; a < k; ++a) Dk.col(a) = D.col(active[static_cast<size_t>(a)]);
    const MatrixXd ADk = apply(Dk);
    std::vector<Eigen::Index> still;
    for (Eigen::Index a = 0; a < k; ++a) {
      const Eigen::Index j = active[static_cast<size_t>(a)];
      // alpha = r.z / d.Ad ;  x += alpha d ;  r -= alpha Ad
      const double curvature = Dk.col(a).dot(ADk.col(a));
      res.iterations[j] = it;
      if (!(curvature > 0.0)) {  // A is not positive definite along d: stop this column
        res.residual[j] = R.col(j).norm() / b_norm[j];
        continue;
      }
      const double alpha = rz[j] / curvature;
      res.solution.col(j) += alpha * Dk.col(a);
      R.col(j) -= alpha * ADk.col(a);
      res.residual[j] = R.col(j).norm() / b_norm[j];
      if (res.residual[j] <= opt.tol) continue;
      // z = M^{-1} r ;  beta = r.z (new) / r.z (old) ;  d = z + beta d
      const VectorXd z = inv_diag.size() ? VectorXd(inv_diag.cwiseProduct(R.col(j))) : VectorXd(R.col(j));
      const double rz_new = R.col(j).dot(z);
      D.col(j) = z + (rz_new / rz[j]) * D.col(j);
      rz[j] = rz_new;
      still.push_back(j);
    }
    active.swap(still);
  }
  res.converged = (res.residual.array() <= opt.tol).all();
  return res;
}

// ---------------------------------------------------------------------------
// LiSSA (Agarwal, Bullins & Hazan 2017; Koh & Liang 2017, section 3):
//   v_0 = b,  v_j = b + (I - (H_j + damping I) / scale) v_{j-1},  result v_depth / scale,
// with H_j the Hessian of a random mini-batch of rows (drawn with replacement;
// a batch_size >= n uses every row), averaged over repeats.
// Converges when every eigenvalue of (H + damping I) / scale lies in (0, 2).
// ---------------------------------------------------------------------------
struct LissaOptions {
  double scale = 1.0;
  double damping = 0.0;
  int depth = 1000;
  int repeats = 1;
  Eigen::Index batch_size = 256;
  std::uint64_t seed = 0;
};

struct LissaResult {
  Eigen::MatrixXd solution;                         // (p, m); NaN columns where the recursion diverged
  Eigen::Matrix<bool, Eigen::Dynamic, 1> diverged;  // (m,)
};

// splitmix64: a tiny, portable generator, so a seed gives the same batches
// on every platform and for every thread count.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  Eigen::Index below(Eigen::Index n) { return static_cast<Eigen::Index>(next() % static_cast<std::uint64_t>(n)); }
};

// apply_batch(rows, V) returns the Hessian of the mini-batch `rows` (without
// damping) applied to V.
template <class ApplyBatch>
LissaResult lissa(ApplyBatch&& apply_batch, Eigen::Index n_rows, const Eigen::MatrixXd& B, const LissaOptions& opt) {
  using Eigen::MatrixXd;
  const Eigen::Index m = B.cols();
  LissaResult res;
  res.solution = MatrixXd::Zero(B.rows(), m);
  res.diverged = Eigen::Matrix<bool, Eigen::Dynamic, 1>::Constant(m, false);
  const Eigen::VectorXd b_norm = B.colwise().norm();
  std::vector<Eigen::Index> rows(static_cast<size_t>(std::min(opt.batch_size, n_rows)));
  for (int r = 0; r < opt.repeats; ++r) {
    SplitMix64 rng{opt.seed * 0x100000001B3ULL + static_cast<std::uint64_t>(r)};
    MatrixXd V = B;
    for (int j = 0; j < opt.depth; ++j) {
      check_interrupt();  // thousands of cheap steps: Ctrl-C must not wait for all of them
      if (opt.batch_size >= n_rows) {
        // A batch as large as the data is the data: the deterministic Neumann series.
        for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<Eigen::Index>(i);
      } else {
        for (auto& row : rows) row = rng.below(n_rows);
        std::sort(rows.begin(), rows.end());  // sequential access; the batch is a multiset either way
      }
      // v = b + v - (H_batch v + damping v) / scale
      const MatrixXd HV = apply_batch(rows, V);
      V = B + (1.0 - opt.damping / opt.scale) * V - HV / opt.scale;
      for (Eigen::Index c = 0; c < m; ++c) {
        const double norm = V.col(c).norm();
        if (!std::isfinite(norm) || norm > 1e8 * std::max(b_norm[c], 1e-300) * (j + 1)) res.diverged[c] = true;
      }
      if (res.diverged.all()) break;
    }
    res.solution += V / opt.scale;
  }
  res.solution /= static_cast<double>(opt.repeats);
  for (Eigen::Index c = 0; c < m; ++c)
    if (res.diverged[c]) res.solution.col(c).setConstant(std::numeric_limits<double>::quiet_NaN());
  return res;
}

// ---------------------------------------------------------------------------
// CG and LiSSA over the data: (H + damping I) X = B for
//   H = Xa^T diag(c) Xa + l2 P,  P = diag(1, .., 1, 0),
// with c the curvature weights at the optimum (objective.hpp).
// ---------------------------------------------------------------------------

// The Jacobi preconditioner 1 / diag(H + damping I), from the data part
// gram_diag = diag(Xa^T diag(c) Xa) (gram_diagonal). An entry that is not
// positive (an all-zero column with neither l2 nor damping, or NaN) gets 1:
// that coordinate is left unscaled rather than divided by zero.
inline Eigen::VectorXd jacobi_preconditioner(const Eigen::VectorXd& gram_diag, Eigen::Index n_features, double l2,
                                             double damping) {
  Eigen::VectorXd diag = gram_diag;
  diag.head(n_features).array() += l2;  // the penalty spares the intercept
  diag.array() += damping;
  return diag.unaryExpr([](double v) { return v > 0.0 ? 1.0 / v : 1.0; });
}

// Preconditioned (Jacobi, when `precondition`) conjugate gradient from X0
// (empty: zeros), every column of B at once: one pass over X per iteration.
template <class XType>
CGResult cg_solve(const XType& X, bool fit_intercept, VectorCRef c, double l2, double damping, const Eigen::MatrixXd& B,
                  const Eigen::MatrixXd& X0, bool precondition, const CGOptions& opt, int n_threads) {
  Eigen::VectorXd inv_diag;
  if (precondition)
    inv_diag = jacobi_preconditioner(gram_diagonal(X, fit_intercept, c, n_threads), X.cols(), l2, damping);
  GramWorkspace workspace;  // one for the whole solve: sparse X's buffers are mapped once
  // (H + damping I) V
  auto apply = [&](const Eigen::MatrixXd& V) {
    Eigen::MatrixXd HV = regularised_gram_product(X, fit_intercept, c, l2, V, n_threads, &workspace);
    if (damping != 0.0) HV += damping * V;
    return HV;
  };
  return conjugate_gradient(apply, B, inv_diag, X0, opt);
}

// LiSSA with the Hessian of a mini-batch of rows,
//   H_batch = (n / |batch|) sum_{i in batch} c_i xa_i xa_i^T + l2 P  (unbiased for H);
// opt.damping is added by the recursion.
template <class XType>
LissaResult lissa_solve(const XType& X, bool fit_intercept, VectorCRef c, double l2, const Eigen::MatrixXd& B,
                        const LissaOptions& opt) {
  const Eigen::Index n = X.rows(), d = X.cols();
  auto apply_batch = [&](const std::vector<Eigen::Index>& rows, const Eigen::MatrixXd& V) {
    Eigen::MatrixXd HV = gram_product_rows(X, fit_intercept, c, rows, V);
    HV *= static_cast<double>(n) / static_cast<double>(rows.size());
    HV.topRows(d) += l2 * V.topRows(d);
    return HV;
  };
  return lissa(apply_batch, n, B, opt);
}

// Compiled once, in cpp/src/solvers.cpp (see objective.hpp).
#define FASTINFLUENCE_SOLVER_INSTANCES(EXTERN, XType)                                                              \
  EXTERN template CGResult cg_solve<XType>(const XType&, bool, VectorCRef, double, double, const Eigen::MatrixXd&, \
                                           const Eigen::MatrixXd&, bool, const CGOptions&, int);                   \
  EXTERN template LissaResult lissa_solve<XType>(const XType&, bool, VectorCRef, double, const Eigen::MatrixXd&,   \
                                                 const LissaOptions&);

#ifdef FASTINFLUENCE_EXTERN_TEMPLATES
FASTINFLUENCE_SOLVER_INSTANCES(extern, DesignMatrix)
#endif

}  // namespace fastinfluence
