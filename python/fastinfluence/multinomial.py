"""Multinomial (softmax) logistic regression: the parameter layout, the gauge rule, and the K x K
blocks that take the place of the binary models' scalars in the influence formulas.

Layout
------
K classes, ``q = d (+1)`` parameters per class, ``p = K q``. ``theta`` is ``Theta`` (K, q)
flattened row by row: ``Theta[k] = (w_k, b_k)``, as scikit-learn's ``coef_`` rows with
``intercept_`` appended. ``eta_i = Theta xa_i`` (K,), ``P_i = softmax(eta_i)``, the loss is
``logsumexp(eta_i) - eta_i[y_i]``; the gradient of row i's loss is ``g_i = r_i kron xa_i``
with the residual ``r_i = P_i - e_{y_i}``, and its Hessian ``Q_i kron xa_i xa_i^T`` with
``Q_i = diag(P_i) - P_i P_i^T``. The objective is
``R = (1/n) sum_i s_i loss_i + (l2/2) sum_k ||w_k||^2`` (intercepts unpenalised).

The gauge, and how H is made definite
-------------------------------------
Adding the same vector to every class's parameters changes no probability: R is constant
along the *gauge* directions ``u_j = 1_K kron e_j / sqrt(K)`` of the unpenalised coordinates j
(the intercept when l2 > 0; every coordinate when l2 = 0), so H u_j = 0 there. Every loss
gradient is orthogonal to them (the residuals sum to zero over the classes), and so is any
gauge-invariant target (a loss, a probability). The rule here is scikit-learn's: the
parameters of the unpenalised coordinates **sum to zero over the classes** (its solvers start
at 0 and their steps keep the sum; the l2 penalty forces it on the weights at its optimum).
It is imposed by minimising ``R + (1/2) theta^T Gamma theta`` with
``Gamma = sum_j gamma_j u_j u_j^T``: its minimiser is the sum-to-zero minimiser of R (Gamma
vanishes there), its Hessian ``H + Gamma`` is definite, and for any vector v orthogonal to the
gauge, ``(H + Gamma)^{-1} v`` is the same for every choice of gamma > 0 (H maps the complement
of the gauge to itself). So every influence quantity of a gauge-invariant target is invariant
to gamma, and the others (a decision value of one class, a coefficient) are those of the
sum-to-zero parameterisation. ``gamma_j = (1/n) sum_i s_i xa_ij^2`` keeps the gauge
eigenvalues on the scale of the data's.

The Newton (leave-one-out) estimate
-----------------------------------
Without row i the Hessian is ``H - c_i B_i Q_i B_i^T``, ``c_i = s_i/n``,
``B_i = I_K kron xa_i`` (p x K). With ``S_i = B_i^T H^{-1} B_i`` (K x K), Woodbury gives

    (H - c_i B_i Q_i B_i^T)^{-1} B_i = H^{-1} B_i (I_K - c_i Q_i S_i)^{-1},

so the exact Newton step without row i, from theta, is
``delta_i = c_i H^{-1} B_i (I_K - c_i Q_i S_i)^{-1} r_i``: the first-order estimate with the
residual ``r_i`` replaced by ``(I_K - c_i Q_i S_i)^{-1} r_i`` (K = 1 gives Sherman-Morrison's
``1 / (1 - h_i)``). The eigenvalues of ``c_i Q_i S_i`` are those of the symmetric leverage
block ``L_i = c_i F_i S_i F_i^T`` with ``Q_i = F_i^T F_i``, ``F_i = diag(sqrt(P_i)) -
sqrt(P_i) P_i^T``; they lie in [0, 1), and the largest, ``h_i``, plays the binary leverage's
part: the Newton estimate is unreliable (NaN) when ``1 - h_i`` is within rounding of 0. For
K = 2 the block has one non-zero eigenvalue, the binary model's leverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validation as V

__all__ = [
    "Gauge",
    "class_design",
    "class_labels",
    "eta_gradients",
    "leverage_blocks",
    "linear_predictors",
    "newton_residuals",
    "row_gradients",
    "rows_kron_transpose",
    "softmax",
]


@dataclass(frozen=True)
class Gauge:
    """Gamma = sum_j gamma_j u_j u_j^T over the gauge coordinates (``scale[j] = gamma_j``, 0 for the
    coordinates the penalty identifies): the term that makes the Hessian definite."""

    scale: np.ndarray  # (q,)
    n_classes: int

    @classmethod
    def for_data(cls, kernels, X, s, n, fit_intercept: bool, l2: float, n_classes: int, n_jobs: int = 0):
        """gamma_j = (1/n) sum_i s_i xa_ij^2 on the unpenalised coordinates (1 where that is 0)."""
        weights = (np.ones(X.shape[0]) if s is None else np.asarray(s, dtype=np.float64)) / n
        scale = kernels.gram_diagonal(X, fit_intercept, weights, n_jobs)
        return cls.from_scale(scale, X.shape[1], l2, n_classes)

    @classmethod
    def from_scale(cls, square_means, d: int, l2: float, n_classes: int):
        """From ``(1/n) sum_i s_i xa_ij^2`` (q,): those of the unpenalised coordinates (1 where 0)."""
        scale = np.array(square_means, dtype=np.float64)
        scale[~(scale > 0)] = 1.0
        if l2 > 0:  # the penalty identifies the weights: only the intercept's gauge remains
            scale[:d] = 0.0
        return cls(scale, int(n_classes))

    @classmethod
    def for_problem(cls, kernels, problem, n_jobs: int = 0):
        p = problem
        n = p.X.shape[0]
        return cls.for_data(kernels, p.X, p.weights, n, p.fit_intercept, p.l2, p.n_classes, n_jobs)

    def _blocks(self, V: np.ndarray) -> np.ndarray:
        return V.reshape(self.n_classes, self.scale.size, *V.shape[1:])

    def product(self, V: np.ndarray) -> np.ndarray:
        """Gamma V for V (p,) or (p, m): gamma_j times the mean over the classes, in every class."""
        blocks = self._blocks(np.asarray(V, dtype=np.float64))
        mean = blocks.mean(axis=0, keepdims=True)
        scale = self.scale.reshape((1, -1) + (1,) * (blocks.ndim - 2))
        return np.broadcast_to(scale * mean, blocks.shape).reshape(np.shape(V)).copy()

    def diagonal(self) -> np.ndarray:
        return np.tile(self.scale / self.n_classes, self.n_classes)

    def projector(self) -> Gauge:
        """The orthogonal projector on the gauge directions (as a Gauge of unit scale: its product)."""
        return Gauge((self.scale > 0).astype(np.float64), self.n_classes)

    def dense(self) -> np.ndarray:
        return self.product(np.eye(self.n_classes * self.scale.size))

    def value(self, theta: np.ndarray) -> float:
        return 0.5 * float(theta @ self.product(theta))

    def centre(self, theta: np.ndarray) -> np.ndarray:
        """theta with the gauge coordinates' mean over the classes removed (the same probabilities)."""
        blocks = self._blocks(np.array(theta, dtype=np.float64))
        gauge = self.scale > 0
        blocks[:, gauge] -= blocks[:, gauge].mean(axis=0)
        return blocks.reshape(-1)


# -- the layout of theta in blocks, one per linear predictor (K for this model, 1 for the others) --
def linear_predictors(X, theta: np.ndarray, n_blocks: int, fit_intercept: bool) -> np.ndarray:
    """eta = xa_j . theta (m,), or Theta xa_j (m, K) with theta in K blocks."""
    if n_blocks == 1:
        return V.linear_predictor(X, theta, fit_intercept)
    return np.column_stack([V.linear_predictor(X, row, fit_intercept) for row in theta.reshape(n_blocks, -1)])


def row_gradients(X, scale: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """(p, m): column j is ``scale_j xa_j`` for numbers, ``scale_j kron xa_j`` for K-vectors (m, K)."""
    if scale.ndim == 2:
        return rows_kron_transpose(X, scale, fit_intercept)
    return V.augmented_transpose(X, scale, fit_intercept)


def eta_gradients(X, n_blocks: int, fit_intercept: bool) -> np.ndarray:
    """The gradients in theta of the linear predictors at the rows of X: ``xa_j`` (p, m), or
    ``e_l kron xa_j`` in column ``j K + l`` (p, m K)."""
    if n_blocks == 1:
        return V.augmented_transpose(X, np.ones(X.shape[0]), fit_intercept)
    return class_design(X, n_blocks, fit_intercept)


def class_labels(model) -> list | None:
    """The labels of a multinomial model's parameter blocks (for (class, feature) columns), else None."""
    return np.asarray(model.classes_).tolist() if model.n_blocks > 1 else None


def softmax(eta: np.ndarray) -> np.ndarray:
    """P = softmax(eta) row by row (m, K), without overflow."""
    e = np.exp(eta - eta.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def rows_kron_transpose(X, R: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """The dense (p, k) matrix whose column i is ``R_i kron xa_i`` (class-major): the gradients
    ``g_i`` for R the residuals, or any per-row K-vectors times the rows."""
    K = R.shape[1]
    blocks = [V.augmented_transpose(X, np.ascontiguousarray(R[:, k]), fit_intercept) for k in range(K)]
    return np.concatenate(blocks, axis=0)


def class_design(X, n_classes: int, fit_intercept: bool) -> np.ndarray:
    """The dense (p, m K) matrix whose column j K + l is ``e_l kron xa_j``: the gradients of the
    decision values eta_jl."""
    m = X.shape[0]
    Xa_T = V.augmented_transpose(X, np.ones(m), fit_intercept)  # (q, m)
    q = Xa_T.shape[0]
    out = np.zeros((n_classes, q, m, n_classes))
    for k in range(n_classes):
        out[k, :, :, k] = Xa_T
    return out.reshape(n_classes * q, m * n_classes)


def _factor(P: np.ndarray) -> np.ndarray:
    """F_i with Q_i = diag(P_i) - P_i P_i^T = F_i^T F_i: F_i = diag(sqrt(P_i)) - sqrt(P_i) P_i^T."""
    root = np.sqrt(P)
    return root[:, :, None] * (np.eye(P.shape[1])[None] - P[:, None, :])


def leverage_blocks(c: np.ndarray, P: np.ndarray, S: np.ndarray) -> np.ndarray:
    """The symmetric K x K blocks ``L_i = c_i F_i S_i F_i^T`` (k, K, K), whose eigenvalues are those
    of ``c_i Q_i S_i``."""
    F = _factor(P)
    L = c[:, None, None] * (F @ S @ np.swapaxes(F, 1, 2))
    return 0.5 * (L + np.swapaxes(L, 1, 2))


def largest_leverage(c: np.ndarray, P: np.ndarray, S: np.ndarray) -> np.ndarray:
    """h_i = the largest eigenvalue of the leverage block, (k,)."""
    if len(c) == 0:
        return np.empty(0)
    return np.linalg.eigvalsh(leverage_blocks(c, P, S))[:, -1]


def newton_residuals(c: np.ndarray, P: np.ndarray, S: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``(I_K - c_i Q_i S_i)^{-1} r_i`` for each row, (k, K) (rows to be marked risky by the caller)."""
    if len(c) == 0:
        return np.empty_like(r)
    K = P.shape[1]
    Q = np.einsum("ik,kl->ikl", P, np.eye(K)) - P[:, :, None] * P[:, None, :]
    A = np.eye(K)[None] - c[:, None, None] * (Q @ S)
    return np.linalg.solve(A, r[:, :, None])[:, :, 0]
