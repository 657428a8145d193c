"""Pure-NumPy reference backend.

Mirrors ``cpp/include/fastinfluence/*.hpp`` function by function, with the
same names, so the two can be read side by side; the tests hold the compiled
backend to this one. ``n_jobs`` is accepted for a common signature and ignored
(NumPy's BLAS threads as it likes).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg, sparse
from scipy.special import expit, log_expit

from ..losses import CURVATURE_INSTEAD, Loss
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
    loss.require_per_entry("loss_terms")
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
    loss.require_per_entry("loss_difference")
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
    if problem.loss.multiclass:
        return _multinomial_row_derivatives(problem, theta)
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
    if problem.loss.multiclass:
        return _multinomial_evaluate(problem, theta, want_gradient, want_hessian)
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
    problem.loss.require_per_entry("curvature_weights", CURVATURE_INSTEAD)
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
    X, fit_intercept, l2 = problem.X, problem.fit_intercept, problem.l2
    if problem.loss.multiclass:
        # H V = multinomial Gram product with c = s/n and P at theta
        P = row_derivatives(problem, theta).d2
        c = _weights_over_n(problem)
        HV = multinomial_gram_product(X, fit_intercept, c, P, l2, V[:, None] if vec else V)
    else:
        c = curvature_weights(problem, theta)
        HV = regularised_gram_product(X, fit_intercept, c, l2, V[:, None] if vec else V)
    return HV[:, 0] if vec else HV


def _weights_over_n(problem):
    """c_i = s_i / n."""
    n = problem.X.shape[0]
    return (np.ones(n) if problem.weights is None else problem.weights) / n


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
    loss.require_per_entry("loo_loss_change")
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


def max_abs(a):
    """max |a| (NaN if a holds a NaN): two reductions that propagate NaN, no temporary."""
    hi, lo = float(a.max()), float(a.min())
    return math.nan if math.isnan(hi) or math.isnan(lo) else max(hi, -lo)


def top_k_scores(X, fit_intercept, row_scale, M, k, n_jobs=0, screening=None, block_rows=65536):
    """For each column j of S = diag(row_scale) Xa M: the k most negative (helpful) and k most
    positive (harmful) entries, streaming over row blocks. Ties go to the lower row index.
    Always the float64 scores: the reference for the C++ core's float32 screening pass.

    Returns (helpful_rows, helpful_scores, harmful_rows, harmful_scores), each (m, k)."""

    def scores(start, stop):
        return row_scale[start:stop, None] * _row_products(X[start:stop], fit_intercept, M)

    return _streaming_top_k(X.shape[0], M.shape[1], k, scores, block_rows)


def _streaming_top_k(n, m, k, scores, block_rows):
    """top_k_scores over the (stop - start, m) blocks of scores(start, stop)."""
    k = min(k, n)
    best = {largest: (np.zeros((m, 0), dtype=np.int64), np.zeros((m, 0))) for largest in (False, True)}
    for start in range(0, n, block_rows):
        S = scores(start, min(start + block_rows, n))
        rows = np.broadcast_to(np.arange(start, start + S.shape[0]), (m, S.shape[0]))
        for largest, (kept_rows, kept_scores) in best.items():
            best[largest] = best_k(
                np.hstack([kept_rows, rows]), np.hstack([kept_scores, S.T]), k, largest=largest
            )
    return TopKScores(*best[False], *best[True])


# ---------------------------------------------------------------------------
# multinomial.hpp: the multinomial (softmax) loss of K classes. theta (p,), p = K q, is
# Theta (K, q) row-major (Theta[k] = (w_k, b_k)); eta_i = Theta xa_i; P_i = softmax(eta_i);
# loss_i = logsumexp(eta_i) - eta_i[y_i]. Vectors in parameter space (V, M, U) have the
# layout of theta: rows k q .. (k + 1) q - 1 belong to class k.
# ---------------------------------------------------------------------------


def _class_columns(M, n_classes):
    """(p, m) in the class-major layout -> (q, K m), column k m + j = M[k q:(k + 1) q, j]."""
    p, m = M.shape
    q = p // n_classes
    return M.reshape(n_classes, q, m).transpose(1, 0, 2).reshape(q, n_classes * m)


def _class_rows(A, n_classes):
    """(q, K m), column k m + j -> (p, m) in the class-major layout: inverse of _class_columns."""
    q = A.shape[0]
    m = A.shape[1] // n_classes
    return A.reshape(q, n_classes, m).transpose(1, 0, 2).reshape(n_classes * q, m)


def _softmax_rows(eta):
    """(P, lse, argmax, t) of each row of eta (n, K), without overflow: with a the argmax,
    t = sum_{l != a} exp(eta_l - eta_a), lse = eta_a + log1p(t), P = exp(eta - eta_a) / (1 + t)."""
    rows = np.arange(eta.shape[0])
    a = np.argmax(eta, axis=1)
    top = eta[rows, a]
    e = np.exp(eta - top[:, None])
    e[rows, a] = 0.0
    t = e.sum(axis=1)
    e[rows, a] = 1.0
    return e / (1.0 + t)[:, None], top + np.log1p(t), a, t


def _one_minus(P):
    """1 - P_ik without cancellation: sum_{l != a} P_il for the largest entry a of each row."""
    rows = np.arange(P.shape[0])
    a = np.argmax(P, axis=1)
    out = 1.0 - P
    others = P.copy()
    others[rows, a] = 0.0
    out[rows, a] = others.sum(axis=1)
    return out


def _multinomial_row_derivatives(problem, theta):
    K = problem.n_classes
    q = theta.shape[0] // K
    eta = _row_products(problem.X, problem.fit_intercept, theta.reshape(K, q).T)  # (n, K)
    y = problem.y.astype(np.intp)
    rows = np.arange(eta.shape[0])
    P, _, a, t = _softmax_rows(eta)
    # loss = lse - eta_y = (eta_a - eta_y) + log1p(t): no cancellation when P_y is near 1
    value = (eta[rows, a] - eta[rows, y]) + np.log1p(t)
    # d1 = P - onehot(y); P_y - 1 = -t / (1 + t) when y is the argmax
    d1 = P.copy()
    d1[rows, y] = np.where(y == a, -t / (1.0 + t), P[rows, y] - 1.0)
    return RowDerivatives(eta, value, d1, P)


def _multinomial_hessian(X, fit_intercept, c, P):
    """sum_i c_i Q_i kron (xa_i xa_i^T), Q_i = diag(P_i) - P_i P_i^T, dense (p, p): block (k, l) is
    Xa^T diag(c (delta_kl P_k - P_k P_l)) Xa, with P_k (1 - P_k) for delta_kl = 1."""
    K = P.shape[1]
    one_minus = _one_minus(P)
    blocks: list[list[np.ndarray]] = [[np.empty(0)] * K for _ in range(K)]
    for k in range(K):
        for j in range(k + 1):
            w = c * P[:, k] * (one_minus[:, k] if k == j else -P[:, j])
            G = _gram(X, fit_intercept, w)
            blocks[k][j] = blocks[j][k] = np.tril(G) + np.tril(G, -1).T  # exactly symmetric, as in C++
    return np.block(blocks)


def _multinomial_evaluate(problem, theta, want_gradient, want_hessian):
    X, fit_intercept, l2, K = problem.X, problem.fit_intercept, problem.l2, problem.n_classes
    d = X.shape[1]
    c = _weights_over_n(problem)
    _, value, d1, P = _multinomial_row_derivatives(problem, theta)
    Theta = theta.reshape(K, -1)
    objective = np.dot(c, value) + 0.5 * l2 * np.sum(Theta[:, :d] ** 2)
    penalty = np.tile(_penalty_mask(d, fit_intercept), K)
    gradient = hessian = None
    if want_gradient:
        # block k: Xa^T (c (P_k - Y_k)) + l2 (w_k, 0)
        gradient = _transpose_products(X, fit_intercept, c[:, None] * d1).T.reshape(-1) + l2 * penalty * theta
    if want_hessian:
        hessian = _multinomial_hessian(X, fit_intercept, c, P) + np.diag(l2 * penalty)
    return objective, gradient, hessian, d1, P


def multinomial_gram_product(X, fit_intercept, c, P, l2, V, n_jobs=0):
    """H V = (sum_i c_i (xa_i xa_i^T) kron Q_i) V + l2 (I_K kron diag(1, .., 1, 0)) V, H never formed:
    E_i = the K products xa_i . V_k, T_i = c_i (P_i * E_i - P_i (P_i . E_i)), H V = Xa^T T."""
    K = P.shape[1]
    n, d = X.shape
    m = V.shape[1]
    E = _row_products(X, fit_intercept, _class_columns(V, K)).reshape(n, K, m)
    PE = np.einsum("ik,ikj->ij", P, E)
    T = c[:, None, None] * P[:, :, None] * (E - PE[:, None, :])
    HV = _class_rows(_transpose_products(X, fit_intercept, T.reshape(n, K * m)), K)
    return HV + l2 * np.tile(_penalty_mask(d, fit_intercept), K)[:, None] * V


def multinomial_gram_diagonal(X, fit_intercept, c, P, n_jobs=0):
    """diag of the data part of H: entry (k, j) = sum_i c_i P_ik (1 - P_ik) xa_ij^2, (p,)."""
    W = c[:, None] * P * _one_minus(P)  # (n, K)
    Xf = _as_float64(X)
    squares = Xf.multiply(Xf) if sparse.issparse(Xf) else Xf * Xf
    top = np.asarray(squares.T @ W)  # (d, K)
    diag = np.vstack([top, W.sum(axis=0, keepdims=True)]) if fit_intercept else top
    return diag.T.reshape(-1)


def _multinomial_scores(X, fit_intercept, R, M):
    """out_ij = sum_k R_ik xa_i . M[k q:(k + 1) q, j], (n, m): one product per class."""
    K = R.shape[1]
    q = M.shape[0] // K
    out = np.zeros((X.shape[0], M.shape[1]))
    for k in range(K):
        out += R[:, k, None] * _row_products(X, fit_intercept, M[k * q : (k + 1) * q])
    return out


def multinomial_scaled_row_products(X, fit_intercept, R, M, out=None, n_jobs=0):
    """out_ij = sum_k R_ik xa_i . M[k q:(k + 1) q, j]: with R = -s (P - Y) and M = H^{-1} G_test
    the matrix of I_up,loss."""
    result = _multinomial_scores(X, fit_intercept, R, np.asarray(M, dtype=np.float64))
    if out is None:
        return result
    out[...] = result
    return out


def multinomial_top_k_scores(X, fit_intercept, R, M, k, n_jobs=0, screening=None, block_rows=65536):
    """top_k_scores of the scores of multinomial_scaled_row_products, streaming over row blocks
    (always the float64 scores, as top_k_scores)."""
    M = np.asarray(M, dtype=np.float64)

    def scores(start, stop):
        return _multinomial_scores(X[start:stop], fit_intercept, R[start:stop], M)

    return _streaming_top_k(X.shape[0], M.shape[1], k, scores, block_rows)


def multinomial_row_quadratic_forms(X, fit_intercept, A, n_classes, n_jobs=0):
    """S_ikl = (A_k xa_i) . (A_l xa_i), A_k = A[:, k q:(k + 1) q], (n, K, K); with H^{-1} = A^T A this
    is the K x K block (I kron xa_i)^T H^{-1} (I kron xa_i)."""
    A = np.asarray(A, dtype=np.float64)
    r = A.shape[0]
    n = X.shape[0]
    # Z[i, k, :] = A_k xa_i
    Z = _row_products(X, fit_intercept, _class_columns(A.T, n_classes)).reshape(n, n_classes, r)
    return np.einsum("iks,ils->ikl", Z, Z)


def multinomial_loss_difference(y, eta, delta):
    """loss(y, eta + delta) - loss(y, eta) of the multinomial loss, without cancellation.

    y (m,) class codes, eta (m, K), delta (..., m, K). With x_l = delta_l - delta_y and P = softmax(eta),
    the difference is log(sum_l P_l e^{x_l}) = log1p(S), S = sum_{l != y} P_l expm1(x_l) (the y term
    is 0): accurate for small x. When 1 + S < 1/2 (log1p would cancel) or P_l e^{x_l} would
    overflow it is logsumexp_l(log P_l + x_l), accurate there since the result is then at least
    log 2 in magnitude."""
    y = np.asarray(y).astype(np.intp)
    P, lse, _, _ = _softmax_rows(eta)
    log_p = eta - lse[:, None]
    delta = np.asarray(delta, dtype=np.float64)
    x = delta - np.take_along_axis(delta, np.broadcast_to(y[:, None], (*delta.shape[:-1], 1)), axis=-1)
    a = log_p + x  # log(P_l e^{x_l})
    with np.errstate(over="ignore", invalid="ignore"):
        # P expm1(x) for x <= 1; P e^x - P (e^x > e: at most a bit lost) above, inf past overflow
        terms = np.where(x <= 1.0, P * np.expm1(np.minimum(x, 1.0)), np.exp(a) - P)
        S = terms.sum(axis=-1)
        top = a.max(axis=-1)
        far = top + np.log(np.exp(a - top[..., None]).sum(axis=-1))
        near = np.log1p(np.maximum(S, -0.5))
    return np.where((S >= -0.5) & (top <= 700.0), near, far)


def multinomial_loo_loss_change(X, fit_intercept, R, U, y_test, eta_test, out=None, n_jobs=0):
    """loss(y_j, eta_j + delta_ij) - loss(y_j, eta_j) with delta_ijl = sum_k R_ik xa_i . U[k-block, j K + l]
    (U (p, m K): column j K + l is test point j's class l); (n, m)."""
    K = R.shape[1]
    m = eta_test.shape[0]
    delta = _multinomial_scores(X, fit_intercept, R, np.asarray(U, dtype=np.float64)).reshape(-1, m, K)
    result = multinomial_loss_difference(y_test, eta_test, delta)
    if out is None:
        return result
    out[...] = result
    return out
