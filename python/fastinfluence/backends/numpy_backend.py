"""Pure-NumPy reference backend.

Mirrors ``cpp/include/fastinfluence/*.hpp`` function by function, with the
same names, so the two can be read side by side; the tests hold the compiled
backend to this one. ``n_jobs`` is accepted for a common signature and ignored
(NumPy's BLAS threads as it likes).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse
from scipy.special import expit, log_expit

from ..losses import Loss
from ..solvers import conjugate_gradient, jacobi_inverse
from ..topk import best_k
from .contract import CGResult, Evaluation, LissaResult, RowDerivatives, RowEvaluation, TopKScores

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
# kernels.hpp (X dense or SciPy CSR; never augmented with a column of ones)
# ---------------------------------------------------------------------------


def _as_float64(X):
    return X.astype(np.float64) if X.dtype != np.float64 else X


def _row_products(X, fit_intercept, M):
    """xa_i^T M for every row: (n, m) dense."""
    d = X.shape[1]
    P = np.asarray(_as_float64(X) @ M[:d])
    return P + M[d] if fit_intercept else P


def _transpose_products(X, fit_intercept, R):
    """Xa^T R for R (n, k): (p, k) dense."""
    top = np.asarray(_as_float64(X).T @ R)
    return np.vstack([top, R.sum(axis=0, keepdims=True)]) if fit_intercept else top


def _linear_predictor(X, theta, fit_intercept):
    return _row_products(X, fit_intercept, theta[:, None])[:, 0]


def row_derivatives(problem, theta, n_jobs=0):
    eta = _linear_predictor(problem.X, theta, problem.fit_intercept)
    value, d1, d2 = loss_terms(problem.loss, problem.y, eta)
    return RowDerivatives(eta, value, d1, d2)


def _penalty_mask(d, fit_intercept):
    # the l2 penalty acts on w, never on the intercept
    return np.r_[np.ones(d), np.zeros(1 if fit_intercept else 0)]


def _gram(X, fit_intercept, c):
    """Xa^T diag(c) Xa, dense (p, p)."""
    Xf = _as_float64(X)
    if sparse.issparse(Xf):
        top = np.asarray((Xf.T @ sparse.diags(c) @ Xf).toarray())
    else:
        top = (Xf.T * c) @ Xf
    if not fit_intercept:
        return top
    side = np.asarray(Xf.T @ c).reshape(-1, 1)
    return np.block([[top, side], [side.T, np.array([[c.sum()]])]])


def evaluate(problem, theta, want_gradient, want_hessian, n_jobs=0):
    """R(theta) = (1/n) sum_i s_i loss_i + (l2/2)||w||^2, its gradient and Hessian."""
    return Evaluation(*_evaluate(problem, theta, want_gradient, want_hessian)[:3])


def evaluate_with_row_derivatives(problem, theta, want_hessian, n_jobs=0):
    """evaluate's (value, gradient, Hessian | None) and the unweighted loss'_i, loss''_i."""
    return RowEvaluation(*_evaluate(problem, theta, True, want_hessian))


def _evaluate(problem, theta, want_gradient, want_hessian):
    X, fit_intercept, l2 = problem.X, problem.fit_intercept, problem.l2
    n, d = X.shape
    s = np.ones(n) if problem.weights is None else problem.weights
    _, value, d1, d2 = row_derivatives(problem, theta)
    penalty = _penalty_mask(d, fit_intercept)
    objective = np.dot(s, value) / n + 0.5 * l2 * np.dot(theta[:d], theta[:d])
    gradient = hessian = None
    if want_gradient:
        # grad = (1/n) Xa^T (s * loss') + l2 [w; 0]
        gradient = _transpose_products(X, fit_intercept, (s * d1 / n)[:, None])[:, 0] + l2 * penalty * theta
    if want_hessian:
        # H = Xa^T diag(s * loss'' / n) Xa + l2 diag([1..1, 0])
        hessian = _gram(X, fit_intercept, s * d2 / n) + np.diag(l2 * penalty)
    return objective, gradient, hessian, d1, d2


def curvature_weights(problem, theta, n_jobs=0):
    """c_i = s_i loss''_i / n: the per-row weights of the data part of H."""
    n = problem.X.shape[0]
    s = np.ones(n) if problem.weights is None else problem.weights
    return s * row_derivatives(problem, theta).d2 / n


def regularised_gram_product(X, fit_intercept, c, l2, V, n_jobs=0):
    """H V = Xa^T (c * (Xa V)) + l2 [V_w; 0]."""
    HV = _transpose_products(X, fit_intercept, c[:, None] * _row_products(X, fit_intercept, V))
    return HV + l2 * _penalty_mask(X.shape[1], fit_intercept)[:, None] * V


def gram_diagonal(X, fit_intercept, c, n_jobs=0):
    """diag(Xa^T diag(c) Xa)."""
    Xf = _as_float64(X)
    squares = Xf.multiply(Xf) if sparse.issparse(Xf) else Xf * Xf
    top = np.asarray(squares.T @ c).reshape(-1)
    return np.r_[top, c.sum()] if fit_intercept else top


def hessian_vector_product(problem, theta, V, n_jobs=0):
    V = np.asarray(V, dtype=np.float64)
    vec = V.ndim == 1
    c = curvature_weights(problem, theta)
    HV = regularised_gram_product(problem.X, problem.fit_intercept, c, problem.l2, V[:, None] if vec else V)
    return HV[:, 0] if vec else HV


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


def cg_solve(X, fit_intercept, c, l2, damping, B, tol, max_iter, x0=None, precondition=True, n_jobs=0):
    """(H + damping I) V = B by Jacobi-preconditioned CG over Hessian-vector products."""
    d = X.shape[1]
    inv_diag = None
    if precondition:
        diag = gram_diagonal(X, fit_intercept, c)
        diag[:d] += l2
        inv_diag = jacobi_inverse(diag + damping)

    def apply(V):
        return regularised_gram_product(X, fit_intercept, c, l2, V) + damping * V

    return CGResult(*conjugate_gradient(apply, np.asarray(B, dtype=np.float64), inv_diag, x0, tol, max_iter))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(states):
    """The splitmix64 output for each state (uint64 arithmetic wraps, as in C++)."""
    z = states.copy()
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def lissa_solve(X, fit_intercept, c, l2, damping, B, scale, depth, repeats, batch_size, seed):
    """v_j = b + (I - (H_batch + damping I)/scale) v_{j-1}; result v_depth / scale, averaged over repeats.

    Draws the same mini-batches as the C++ core for the same seed (splitmix64)."""
    n, d = X.shape
    B = np.asarray(B, dtype=np.float64)
    m = B.shape[1]
    batch = min(batch_size, n)
    b_norm = np.linalg.norm(B, axis=0)
    diverged = np.zeros(m, dtype=bool)
    total = np.zeros_like(B)
    penalty = _penalty_mask(d, fit_intercept)[:, None]
    Xf = _as_float64(X)
    with np.errstate(over="ignore"):
        for r in range(repeats):
            start = np.uint64(seed) * np.uint64(0x100000001B3) + np.uint64(r)
            V = B.copy()
            for j in range(depth):
                if batch_size >= n:  # a batch as large as the data is the data
                    rows = np.arange(n)
                else:
                    k = np.arange(j * batch + 1, (j + 1) * batch + 1, dtype=np.uint64)
                    rows = np.sort((_splitmix64(start + k * _GOLDEN) % np.uint64(n)).astype(np.int64))
                Xb = Xf[rows]
                cb = c[rows]
                # mini-batch Hessian: (n/|B|) sum_{i in B} c_i xa_i xa_i^T + l2 P
                HV = _transpose_products(Xb, fit_intercept, cb[:, None] * _row_products(Xb, fit_intercept, V))
                HV = HV * (n / batch) + l2 * penalty * V
                V = B + (1.0 - damping / scale) * V - HV / scale
                norms = np.linalg.norm(V, axis=0)
                diverged |= ~np.isfinite(norms) | (norms > 1e8 * np.maximum(b_norm, 1e-300) * (j + 1))
                if diverged.all():
                    break
            total += V / scale
    total /= repeats
    total[:, diverged] = np.nan
    return LissaResult(total, diverged)


# ---------------------------------------------------------------------------
# scoring kernels (kernels.hpp)
# ---------------------------------------------------------------------------


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


def top_k_scores(X, fit_intercept, row_scale, M, k, n_jobs=0, block_rows=65536):
    """For each column j of S = diag(row_scale) Xa M: the k most negative (helpful) and k most
    positive (harmful) entries, streaming over row blocks. Ties go to the lower row index.

    Returns (helpful_rows, helpful_scores, harmful_rows, harmful_scores), each (m, k)."""
    n = X.shape[0]
    k = min(k, n)
    m = M.shape[1]
    best = {largest: (np.zeros((m, 0), dtype=np.int64), np.zeros((m, 0))) for largest in (False, True)}
    for start in range(0, n, block_rows):
        S = row_scale[start : start + block_rows, None] * _row_products(
            X[start : start + block_rows], fit_intercept, M
        )
        rows = np.broadcast_to(np.arange(start, start + S.shape[0]), (m, S.shape[0]))
        for largest, (kept_rows, kept_scores) in best.items():
            best[largest] = best_k(
                np.hstack([kept_rows, rows]), np.hstack([kept_scores, S.T]), k, largest=largest
            )
    return TopKScores(*best[False], *best[True])
