"""Pure-NumPy reference backend.

Mirrors ``cpp/include/fastinfluence/*.hpp`` function by function, with the
same names, so the two can be read side by side; the tests hold the compiled
backend to this one. ``n_jobs`` is accepted for a common signature and ignored
(NumPy's BLAS threads as it likes).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.special import expit, log_expit

from ..losses import Loss

# ---------------------------------------------------------------------------
# losses.hpp
# ---------------------------------------------------------------------------


def _softplus(x):
    # log(1 + e^x) = -log(sigmoid(-x))
    return -log_expit(-x)


def _softplus_difference(a, delta):
    # softplus(a + delta) - softplus(a) = log1p(sigmoid(a) * expm1(delta)), stable for small delta
    small = np.abs(delta) <= 1.0
    with np.errstate(over="ignore"):
        near = np.log1p(expit(a) * np.expm1(np.where(small, delta, 0.0)))
    far = _softplus(a + delta) - _softplus(a)
    return np.where(small, near, far)


def loss_terms(loss: Loss, y, eta):
    """(value, d1, d2) of the loss, elementwise."""
    y = np.asarray(y, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    if loss.name == "squared":
        r = eta - y
        return 0.5 * r * r, r, np.ones_like(eta)
    if loss.name == "logistic":
        # (1 - y) softplus(eta) + y softplus(-eta) == softplus(eta) - y eta, without cancellation
        value = (1.0 - y) * _softplus(eta) + y * _softplus(-eta)
        return value, expit(eta) - y, expit(eta) * expit(-eta)
    if loss.name == "smooth_hinge":
        t = loss.t
        u = (1.0 - y * eta) / t
        return t * _softplus(u), -y * expit(u), expit(u) * expit(-u) / t
    if loss.name == "poisson":
        with np.errstate(over="ignore"):
            mu = np.exp(eta)
        value = np.where(y == 0.0, mu, mu - y * eta)
        return value, mu - y, mu
    raise ValueError(f"unknown loss {loss.name!r}")


def loss_difference(loss: Loss, y, eta, delta):
    """value(y, eta + delta) - value(y, eta), without cancellation for small delta."""
    y, eta, delta = (np.asarray(a, dtype=np.float64) for a in (y, eta, delta))
    if loss.name == "squared":
        return delta * ((eta - y) + 0.5 * delta)
    if loss.name == "logistic":
        return _softplus_difference(eta, delta) - y * delta
    if loss.name == "smooth_hinge":
        u = (1.0 - y * eta) / loss.t
        return loss.t * _softplus_difference(u, -y * delta / loss.t)
    if loss.name == "poisson":
        with np.errstate(over="ignore"):
            return np.exp(eta) * np.expm1(delta) - y * delta
    raise ValueError(f"unknown loss {loss.name!r}")


# ---------------------------------------------------------------------------
# kernels.hpp
# ---------------------------------------------------------------------------


def _augmented(X, fit_intercept):
    """xa_i = (x_i, 1) as rows, in float64."""
    X = np.asarray(X, dtype=np.float64)
    if not fit_intercept:
        return X
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _linear_predictor(X, theta, fit_intercept):
    d = X.shape[1]
    eta = np.asarray(X, dtype=np.float64) @ theta[:d]
    return eta + theta[d] if fit_intercept else eta


def row_derivatives(loss, X, y, theta, fit_intercept, n_jobs=0):
    eta = _linear_predictor(X, theta, fit_intercept)
    value, d1, d2 = loss_terms(loss, y, eta)
    return eta, value, d1, d2


def _penalty_mask(d, fit_intercept):
    # the l2 penalty acts on w, never on the intercept
    return np.r_[np.ones(d), np.zeros(1 if fit_intercept else 0)]


def evaluate(loss, X, y, weights, theta, fit_intercept, l2, want_gradient, want_hessian, n_jobs=0):
    """R(theta) = (1/n) sum_i s_i loss_i + (l2/2)||w||^2, its gradient and Hessian."""
    n, d = X.shape
    s = np.ones(n) if weights is None else weights
    _, value, d1, d2 = row_derivatives(loss, X, y, theta, fit_intercept)
    penalty = _penalty_mask(d, fit_intercept)
    objective = np.dot(s, value) / n + 0.5 * l2 * np.dot(theta[:d], theta[:d])
    gradient = hessian = None
    Xa = _augmented(X, fit_intercept) if (want_gradient or want_hessian) else None
    if want_gradient:
        # grad = (1/n) Xa^T (s * loss') + l2 [w; 0]
        gradient = Xa.T @ (s * d1) / n + l2 * penalty * theta
    if want_hessian:
        # H = (1/n) Xa^T diag(s * loss'') Xa + l2 diag([1..1, 0])
        hessian = (Xa.T * (s * d2 / n)) @ Xa + np.diag(l2 * penalty)
    return objective, gradient, hessian


def hessian_vector_product(loss, X, y, weights, theta, fit_intercept, l2, V, n_jobs=0):
    n, d = X.shape
    s = np.ones(n) if weights is None else weights
    _, _, _, d2 = row_derivatives(loss, X, y, theta, fit_intercept)
    Xa = _augmented(X, fit_intercept)
    V = np.asarray(V, dtype=np.float64)
    vec = V.ndim == 1
    V2 = V[:, None] if vec else V
    # H V = Xa^T (c * (Xa V)) + l2 [V_w; 0],  c = s loss'' / n
    HV = Xa.T @ ((s * d2 / n)[:, None] * (Xa @ V2)) + l2 * _penalty_mask(d, fit_intercept)[:, None] * V2
    return HV[:, 0] if vec else HV


# ---------------------------------------------------------------------------
# fit.hpp
# ---------------------------------------------------------------------------

_EPS = np.finfo(np.float64).eps


def newton_direction(H, g):
    """(-H^{-1} g, shifted): Cholesky, with a growing Levenberg shift when H is singular."""

    def attempt(A):
        try:
            factor = linalg.cho_factor(A, lower=True)
        except linalg.LinAlgError:
            return None
        rcond, _ = linalg.lapack.dpocon(factor[0], np.abs(A).sum(axis=0).max(), uplo="L")
        return -linalg.cho_solve(factor, g) if rcond > 1e3 * _EPS else None

    step = attempt(H)
    if step is not None:
        return step, False
    scale = max(np.abs(np.diag(H)).max(), np.finfo(np.float64).tiny)
    mu = 1e-12 * scale
    while mu < 1e20 * scale:
        step = attempt(H + mu * np.eye(H.shape[0]))
        if step is not None:
            return step, True
        mu *= 10.0
    return -g, True


def fit_newton(loss, X, y, weights, theta0, fit_intercept, l2, tol, max_iter, n_jobs=0):
    """Newton's method with backtracking line search until ||grad|| <= tol * max(1, ||grad R(0)||)."""
    theta = np.array(theta0, dtype=np.float64)
    args = (loss, X, y, weights)
    zero_grad = evaluate(*args, np.zeros_like(theta), fit_intercept, l2, True, False)[1]
    scale = max(1.0, float(np.linalg.norm(zero_grad)))
    target = tol * scale
    value, grad, hess = evaluate(*args, theta, fit_intercept, l2, True, True)
    any_shift = False
    n_iter = 0
    while True:
        grad_norm = float(np.linalg.norm(grad))
        result = dict(theta=theta, n_iter=n_iter, grad_norm=grad_norm, grad_norm_scale=scale, objective=value)
        if not (np.isfinite(value) and np.isfinite(grad_norm)):
            return dict(result, converged=False, message="the objective or its gradient is not finite")
        if grad_norm <= target:
            return dict(result, converged=True, message="converged")
        if n_iter >= max_iter:
            message = "reached max_iter"
            if any_shift:
                message += " with a singular Hessian (is the data separable, or l2 = 0 with collinear features?)"
            return dict(result, converged=False, message=message)
        step, shifted = newton_direction(hess, grad)
        any_shift = any_shift or shifted
        slope = float(grad @ step)
        t = 1.0
        for halvings in range(60):
            candidate = theta + t * step
            trial = evaluate(*args, candidate, fit_intercept, l2, True, halvings == 0)
            if np.isfinite(trial[0]):
                armijo = trial[0] <= value + 1e-4 * t * slope
                within_rounding = trial[0] <= value + 64.0 * _EPS * abs(value) and np.linalg.norm(
                    trial[1]
                ) < grad_norm
                if armijo or within_rounding:
                    theta = candidate
                    if halvings == 0:
                        value, grad, hess = trial
                    else:
                        value, grad, hess = evaluate(*args, theta, fit_intercept, l2, True, True)
                    break
            t *= 0.5
        else:
            return dict(result, converged=False, message="line search failed: no step decreases the objective")
        n_iter += 1


# ---------------------------------------------------------------------------
# solvers.hpp
# ---------------------------------------------------------------------------


class CholeskySolver:
    """Factorises H + damping I once; reports LAPACK's reciprocal 1-norm condition estimate."""

    def __init__(self, H, damping=0.0):
        A = np.array(H, dtype=np.float64) + damping * np.eye(H.shape[0])
        self.size = A.shape[0]
        try:
            self._factor = linalg.cho_factor(A, lower=True)
            self.ok = bool(np.all(np.diag(self._factor[0]) > 0))
        except linalg.LinAlgError:
            self._factor, self.ok = None, False
        self.reciprocal_condition = 0.0
        if self.ok:
            anorm = np.abs(A).sum(axis=0).max()
            self.reciprocal_condition = float(linalg.lapack.dpocon(self._factor[0], anorm, uplo="L")[0])

    def solve(self, B):
        return linalg.cho_solve(self._factor, np.asarray(B, dtype=np.float64))

    def inverse_factor(self):
        L = np.tril(self._factor[0])
        return linalg.solve_triangular(L, np.eye(self.size), lower=True)


# ---------------------------------------------------------------------------
# scoring kernels (kernels.hpp)
# ---------------------------------------------------------------------------


def _row_products(X, fit_intercept, M):
    """xa_i^T M for every row: (n, m)."""
    d = X.shape[1]
    P = np.asarray(X, dtype=np.float64) @ M[:d]
    return P + M[d] if fit_intercept else P


def scaled_row_products(X, fit_intercept, row_scale, M, out=None, n_jobs=0):
    """out_i = row_scale_i * (x_i^T M_w + M_b)."""
    result = row_scale[:, None] * _row_products(X, fit_intercept, M)
    if out is None:
        return result
    out[...] = result
    return out


def row_quadratic_forms(X, fit_intercept, A, n_jobs=0):
    """q_i = ||A xa_i||^2 (with A = L^{-1}: xa_i^T H^{-1} xa_i)."""
    Z = _row_products(X, fit_intercept, np.asarray(A).T)
    return np.einsum("ij,ij->i", Z, Z)


def loo_loss_change(loss, X, fit_intercept, row_scale, U, y_test, eta_test, out=None, n_jobs=0):
    """loss(y_j, eta_j + row_scale_i xa_i.U_j) - loss(y_j, eta_j)."""
    delta = row_scale[:, None] * _row_products(X, fit_intercept, U)
    result = loss_difference(loss, y_test[None, :], eta_test[None, :], delta)
    if out is None:
        return result
    out[...] = result
    return out


def perturbation_loss(X, fit_intercept, d1, d2, V, w, n_jobs=0):
    """out[i, j, :] = -(loss''_i (xa_i . V_j) w + loss'_i V_j[:d])."""
    d = X.shape[1]
    A = _row_products(X, fit_intercept, V)  # (n, m)
    return -(d2[:, None, None] * A[:, :, None] * w[None, None, :] + d1[:, None, None] * V[:d].T[None, :, :])
