// Solvers for (H + damping I) V = B.
//
// The direct solver factorises H = L L^T once (Cholesky) and reports a
// reciprocal condition estimate, so callers can refuse a factorisation that
// "succeeded" on a numerically singular matrix.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <limits>

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
