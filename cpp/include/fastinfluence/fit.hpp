// Fitting the regularised empirical risk R(theta) to its optimum.
//
// Influence functions are derivatives at the optimum (Koh & Liang 2017,
// section 2), so the fit runs Newton's method with a backtracking line search
// until ||grad R|| <= tol * max(1, ||grad R(0)||), far tighter than the
// defaults of most solvers.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cmath>
#include <limits>
#include <string>

#include "kernels.hpp"
#include "solvers.hpp"

namespace fastinfluence {

// Newton steps longer than this times max(1, ||theta||) are shortened to it.
constexpr double kMaxStepFactor = 1e3;

struct FitOptions {
  double tol = 1e-10;  // relative gradient-norm tolerance
  int max_iter = 100;
  int n_threads = 0;
};

struct FitResult {
  VectorXd theta;
  int n_iter = 0;
  double grad_norm = 0.0;        // ||grad R(theta)|| at the returned theta
  double grad_norm_scale = 0.0;  // max(1, ||grad R(0)||): the tolerance is relative to it
  double objective = 0.0;
  bool converged = false;
  std::string message;
};

// Newton direction -H^{-1} g. When H is singular or indefinite in floating
// point (l2 = 0 with collinear or separable data), a Levenberg shift mu I is
// added, growing tenfold until the Cholesky succeeds.
inline VectorXd newton_direction(const MatrixXd& H, const VectorXd& g, bool* shifted) {
  constexpr double min_rcond = 1e3 * std::numeric_limits<double>::epsilon();
  *shifted = false;
  const CholeskySolver plain(H);
  if (plain.ok() && plain.reciprocal_condition() > min_rcond) return -plain.solve(g);
  *shifted = true;
  const double scale = std::max(H.diagonal().cwiseAbs().maxCoeff(), std::numeric_limits<double>::min());
  for (double mu = 1e-12 * scale; mu < 1e20 * scale; mu *= 10.0) {
    const CholeskySolver damped(H, mu);
    if (damped.ok() && damped.reciprocal_condition() > min_rcond) return -damped.solve(g);
  }
  return -g;
}

// The outer loop shared by both methods: stop at the gradient tolerance,
// otherwise take direction(theta, current evaluation) with a backtracking
// (Armijo) line search. Near the optimum the decrease falls below rounding of
// R, so a step that keeps R within rounding and shrinks the gradient is
// accepted too. `want_hessian` says whether direction() needs H.
template <class XType, class Direction>
FitResult newton_loop(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta0, const FitOptions& opt,
                      bool want_hessian, Direction&& direction) {
  constexpr double eps = std::numeric_limits<double>::epsilon();
  FitResult res;
  res.theta = theta0;
  {
    const VectorXd zero = VectorXd::Zero(prob.n_params());
    res.grad_norm_scale = std::max(1.0, evaluate(spec, prob, zero, Want{true, false}, opt.n_threads).gradient.norm());
  }
  const double target = opt.tol * res.grad_norm_scale;
  Evaluation cur = evaluate(spec, prob, res.theta, Want{true, want_hessian}, opt.n_threads);
  bool any_shift = false;
  for (res.n_iter = 0;; ++res.n_iter) {
    res.grad_norm = cur.gradient.norm();
    res.objective = cur.value;
    if (!std::isfinite(cur.value) || !std::isfinite(res.grad_norm)) {
      res.message = "the objective or its gradient is not finite at the current parameters";
      return res;
    }
    if (res.grad_norm <= target) {
      res.converged = true;
      res.message = "converged";
      return res;
    }
    if (res.n_iter >= opt.max_iter) {
      res.message = "reached max_iter";
      if (any_shift) res.message += " with a singular Hessian (is the data separable, or l2 = 0 with collinear features?)";
      return res;
    }
    bool shifted = false;
    VectorXd step = direction(res.theta, cur, &shifted);
    // Where the curvature nearly vanishes (a smooth hinge with small t far
    // from its margin) the Newton step can be astronomically long; cap its
    // length so the line search starts within reach.
    const double max_step = kMaxStepFactor * std::max(1.0, res.theta.norm());
    const double step_norm = step.norm();
    if (step_norm > max_step) step *= max_step / step_norm;
    any_shift = any_shift || shifted;
    const double slope = cur.gradient.dot(step);  // < 0 for a descent direction
    double t = 1.0;
    bool accepted = false;
    for (int halvings = 0; halvings < 60; ++halvings, t *= 0.5) {
      const VectorXd candidate = res.theta + t * step;
      // The full step is usually taken: evaluate its Hessian in the same pass.
      Evaluation trial = evaluate(spec, prob, candidate, Want{true, want_hessian && halvings == 0}, opt.n_threads);
      if (!std::isfinite(trial.value)) continue;
      const bool armijo = trial.value <= cur.value + 1e-4 * t * slope;
      const bool within_rounding = trial.value <= cur.value + 64.0 * eps * std::fabs(cur.value) &&
                                   trial.gradient.norm() < res.grad_norm;
      if (armijo || within_rounding) {
        res.theta = candidate;
        cur = (halvings == 0 || !want_hessian)
                  ? std::move(trial)
                  : evaluate(spec, prob, res.theta, Want{true, true}, opt.n_threads);
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      res.message = "line search failed: no step decreases the objective (gradient norm " +
                    std::to_string(res.grad_norm) + ")";
      return res;
    }
  }
}

// Newton's method on the dense p x p Hessian (p up to a few thousand).
template <class XType>
FitResult fit_newton(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta0, const FitOptions& opt) {
  return newton_loop(spec, prob, theta0, opt, true, [&](const VectorXd&, const Evaluation& cur, bool* shifted) {
    return newton_direction(cur.hessian, cur.gradient, shifted);
  });
}

// Truncated Newton (Newton-CG): the direction solves H s = -g by Jacobi-
// preconditioned CG over Hessian-vector products, to a relative residual
// min(0.5, sqrt(||g|| / scale)) (superlinear convergence, Nocedal & Wright
// 7.1), so H is never formed: memory O(p) for any number of features.
template <class XType>
FitResult fit_newton_cg(const LossSpec& spec, const Problem<XType>& prob, VectorCRef theta0, const FitOptions& opt) {
  double scale = 1.0;
  auto direction = [&](const VectorXd& theta, const Evaluation& cur, bool* shifted) -> VectorXd {
    *shifted = false;
    const VectorXd c = curvature_weights(spec, prob, theta, opt.n_threads);
    VectorXd diag = gram_diagonal(prob.X, prob.fit_intercept, c, opt.n_threads);
    diag.head(prob.n_features()).array() += prob.l2;
    // A zero diagonal entry (an all-zero column with l2 = 0) gets no preconditioning.
    const VectorXd inv_diag = diag.unaryExpr([](double v) { return v > 0.0 ? 1.0 / v : 1.0; });
    CGOptions cg;
    const double gnorm = cur.gradient.norm();
    cg.tol = std::min(0.5, std::sqrt(gnorm / scale));
    cg.max_iter = std::max<int>(100, static_cast<int>(std::min<Index>(prob.n_params(), 2000)));
    const MatrixXd minus_g = -cur.gradient;
    GramWorkspace workspace;
    CGResult r = conjugate_gradient(
        [&](const MatrixXd& V) {
          return regularised_gram_product(prob.X, prob.fit_intercept, c, prob.l2, V, opt.n_threads, &workspace);
        },
        minus_g, inv_diag, MatrixXd(), cg);
    VectorXd step = r.solution.col(0);
    if (!step.allFinite() || step.dot(cur.gradient) >= 0.0) {  // not a descent direction: fall back to -g
      *shifted = true;
      step = -cur.gradient;
    }
    return step;
  };
  // The forcing term is relative to the gradient at zero, as the stopping rule is.
  const VectorXd zero = VectorXd::Zero(prob.n_params());
  scale = std::max(1.0, evaluate(spec, prob, zero, Want{true, false}, opt.n_threads).gradient.norm());
  return newton_loop(spec, prob, theta0, opt, false, direction);
}

}  // namespace fastinfluence
