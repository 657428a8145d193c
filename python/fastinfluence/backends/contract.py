"""The kernel contract: what a backend (the compiled core, the NumPy reference) provides.

Arguments are already validated (see :mod:`fastinfluence.kernels` for the public,
validated entry points and their documentation). Two kinds of data come in:

- a :class:`Problem` (the objective's data: loss, X, y, weights, intercept, l2) for the
  passes that evaluate the loss;
- ``X, fit_intercept`` and per-row weights for the Gram and scoring passes, whose rows
  carry no labels.

The multinomial loss (K classes) has K linear predictors per row: ``theta`` (p,), p = K q with
q = d + 1 (intercept) or d, is Theta (K, q) in row-major, class-major order (Theta[k] = (w_k, b_k));
its per-row quantities are (n, K) arrays, and vectors in parameter space (V, M, U) are laid out
like theta. The Problem-based passes dispatch on ``problem.loss.name == "multinomial"``; the
``multinomial_*`` Gram and scoring passes take (n, K) arrays of probabilities P or row scales R.

Results with several parts are named tuples (they unpack as plain tuples too).
``n_jobs`` is the thread count, 0 for every core. Both backends implement every member
of :class:`Backend` with the same parameter names (``tests/test_backends.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from ..losses import Loss

__all__ = [
    "Backend",
    "CGResult",
    "Evaluation",
    "LissaResult",
    "Problem",
    "RowDerivatives",
    "RowEvaluation",
    "TopKScores",
]


@dataclass(frozen=True)
class Problem:
    """R(theta) = (1/n) sum_i s_i loss(y_i, xa_i . theta) + (l2/2) ||w||^2 on these data.

    For the multinomial loss, ``n_classes`` is K >= 2, eta_i = Theta xa_i is a K-vector and
    ||w||^2 = sum_k ||w_k||^2; for the per-entry losses it is 1.
    """

    loss: Loss
    X: Any  # (n, d) float32/float64 array in C or F order, or CSR matrix
    y: np.ndarray  # (n,) labels in the loss's internal encoding (class codes 0..K-1, as float64)
    weights: np.ndarray | None = None  # (n,) s_i, None for all ones
    fit_intercept: bool = True
    l2: float = 0.0
    n_classes: int = 1  # K for the multinomial loss, 1 for the per-entry losses

    def __post_init__(self):
        k = self.n_classes
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"n_classes must be an integer, got {k!r}")
        if self.loss.multiclass and k < 2:
            raise ValueError(f"n_classes must be >= 2 for the {self.loss.name} loss, got {k}")
        if not self.loss.multiclass and k != 1:
            raise ValueError(f"n_classes must be 1 for the per-entry {self.loss.name} loss, got {k}")
        object.__setattr__(self, "n_classes", int(k))

    @property
    def n_params(self) -> int:
        """p = K q, q = d + 1 with an intercept, d without (K = 1 for the per-entry losses)."""
        return self.n_classes * (self.X.shape[1] + (1 if self.fit_intercept else 0))


class RowDerivatives(NamedTuple):
    eta: np.ndarray  # xa_i . theta (n,); multinomial: Theta xa_i (n, K)
    value: np.ndarray  # loss_i (n,)
    d1: np.ndarray  # loss'_i (in eta) (n,); multinomial: P_i - onehot(y_i) (n, K)
    d2: np.ndarray  # loss''_i (n,); multinomial: P_i = softmax(eta_i) (n, K)


class Evaluation(NamedTuple):
    value: float  # R(theta)
    gradient: np.ndarray | None
    hessian: np.ndarray | None


class RowEvaluation(NamedTuple):
    value: float
    gradient: np.ndarray
    hessian: np.ndarray | None
    d1: np.ndarray  # loss'_i of every row (unweighted); multinomial: P - Y (n, K)
    d2: np.ndarray  # loss''_i; multinomial: P (n, K)


class CGResult(NamedTuple):
    solution: np.ndarray  # (p, m)
    iterations: np.ndarray  # (m,)
    residuals: np.ndarray  # (m,) relative residuals


class LissaResult(NamedTuple):
    solution: np.ndarray  # (p, m), NaN columns where the recursion diverged
    diverged: np.ndarray  # (m,) bool


class TopKScores(NamedTuple):
    helpful_rows: np.ndarray  # (m, k)
    helpful_scores: np.ndarray
    harmful_rows: np.ndarray
    harmful_scores: np.ndarray


class Backend(Protocol):
    """The functions of a backend module (``fastinfluence.backends.cpp_backend``, ``numpy_backend``)."""

    CholeskySolver: type  # (H, damping) with ok, reciprocal_condition, size, solve(B), inverse_factor()

    # -- losses ------------------------------------------------------------------------------------
    def loss_terms(self, loss: Loss, y, eta) -> tuple: ...  # (value, d1, d2) per entry

    def loss_difference(self, loss: Loss, y, eta, delta) -> np.ndarray: ...  # loss(eta + delta) - loss(eta)

    # -- the objective -----------------------------------------------------------------------------
    def row_derivatives(self, problem: Problem, theta, n_jobs: int = 0) -> RowDerivatives: ...

    def evaluate(
        self, problem: Problem, theta, want_gradient: bool, want_hessian: bool, n_jobs: int = 0
    ) -> Evaluation: ...

    def evaluate_with_row_derivatives(
        self, problem: Problem, theta, want_hessian: bool, n_jobs: int = 0
    ) -> RowEvaluation: ...

    def hessian_vector_product(self, problem: Problem, theta, V, n_jobs: int = 0) -> np.ndarray: ...

    # c_i = s_i loss''_i / n (per-entry losses only: multinomial_gram_product takes c = s/n and P)
    def curvature_weights(self, problem: Problem, theta, n_jobs: int = 0) -> np.ndarray: ...

    # -- Gram products: H = Xa^T diag(c) Xa + l2 diag(1, .., 1, 0) --------------------------------
    def regularised_gram_product(
        self, X, fit_intercept: bool, c, l2: float, V, n_jobs: int = 0
    ) -> np.ndarray: ...

    def gram_diagonal(self, X, fit_intercept: bool, c, n_jobs: int = 0) -> np.ndarray: ...

    def cg_solve(
        self,
        X,
        fit_intercept: bool,
        c,
        l2: float,
        damping: float,
        B,
        tol: float,
        max_iter: int,
        x0=None,
        precondition: bool = True,
        n_jobs: int = 0,
    ) -> CGResult: ...

    def lissa_solve(
        self,
        X,
        fit_intercept: bool,
        c,
        l2: float,
        damping: float,
        B,
        scale: float,
        depth: int,
        repeats: int,
        batch_size: int,
        seed: int,
    ) -> LissaResult: ...

    # -- scoring -----------------------------------------------------------------------------------
    def scaled_row_products(
        self, X, fit_intercept: bool, row_scale, M, out=None, n_jobs: int = 0
    ) -> np.ndarray: ...

    def row_quadratic_forms(self, X, fit_intercept: bool, A, n_jobs: int = 0) -> np.ndarray: ...

    def loo_loss_change(
        self, loss: Loss, X, fit_intercept: bool, row_scale, U, y_test, eta_test, out=None, n_jobs: int = 0
    ) -> np.ndarray: ...

    def perturbation_loss(self, X, fit_intercept: bool, d1, d2, V, w, n_jobs: int = 0) -> np.ndarray: ...

    def max_abs(self, a) -> float: ...  # max |a| of a contiguous 1-D float array, NaN if it holds one

    def top_k_scores(
        self, X, fit_intercept: bool, row_scale, M, k: int, n_jobs: int = 0, screening: bool | None = None
    ) -> TopKScores: ...

    # -- the multinomial loss: H = sum_i c_i Q_i kron (xa_i xa_i^T) + l2 (I_K kron diag(1, .., 1, 0)),
    #    Q_i = diag(P_i) - P_i P_i^T, in the class-major layout of theta --------------------------
    def multinomial_gram_product(
        self, X, fit_intercept: bool, c, P, l2: float, V, n_jobs: int = 0
    ) -> np.ndarray: ...  # H V, (p, m)

    # entry (k, j): sum_i c_i P_ik (1 - P_ik) xa_ij^2, (p,), without l2
    def multinomial_gram_diagonal(self, X, fit_intercept: bool, c, P, n_jobs: int = 0) -> np.ndarray: ...

    # out_ij = sum_k R_ik xa_i . M[k q:(k + 1) q, j], (n, m)
    def multinomial_scaled_row_products(
        self, X, fit_intercept: bool, R, M, out=None, n_jobs: int = 0
    ) -> np.ndarray: ...

    def multinomial_top_k_scores(
        self, X, fit_intercept: bool, R, M, k: int, n_jobs: int = 0, screening: bool | None = None
    ) -> TopKScores: ...

    # S_ikl = (A_k xa_i) . (A_l xa_i), A_k = A[:, k q:(k + 1) q], (n, K, K)
    def multinomial_row_quadratic_forms(
        self, X, fit_intercept: bool, A, n_classes: int, n_jobs: int = 0
    ) -> np.ndarray: ...

    # loss(y_j, eta_j + delta_j) - loss(y_j, eta_j) without cancellation: y (m,), eta (m, K),
    # delta (..., m, K) -> (..., m)
    def multinomial_loss_difference(self, y, eta, delta) -> np.ndarray: ...

    # loss(y_j, eta_j + delta_ij) - loss(y_j, eta_j), delta_ijl = sum_k R_ik xa_i . U[k-block, j K + l]
    def multinomial_loo_loss_change(
        self, X, fit_intercept: bool, R, U, y_test, eta_test, out=None, n_jobs: int = 0
    ) -> np.ndarray: ...
