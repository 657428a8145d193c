"""The kernel contract: what a backend (the compiled core, the NumPy reference) provides.

Arguments are already validated (see :mod:`fastinfluence.kernels` for the public,
validated entry points and their documentation). Two kinds of data come in:

- a :class:`Problem` (the objective's data: loss, X, y, weights, intercept, l2) for the
  passes that evaluate the loss;
- ``X, fit_intercept`` and per-row weights for the Gram and scoring passes, whose rows
  carry no labels.

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
    """R(theta) = (1/n) sum_i s_i loss(y_i, xa_i . theta) + (l2/2) ||w||^2 on these data."""

    loss: Loss
    X: Any  # (n, d) float32/float64 array in C or F order, or CSR matrix
    y: np.ndarray  # (n,) labels in the loss's internal encoding
    weights: np.ndarray | None = None  # (n,) s_i, None for all ones
    fit_intercept: bool = True
    l2: float = 0.0


class RowDerivatives(NamedTuple):
    eta: np.ndarray  # xa_i . theta
    value: np.ndarray  # loss_i
    d1: np.ndarray  # loss'_i (in eta)
    d2: np.ndarray  # loss''_i


class Evaluation(NamedTuple):
    value: float  # R(theta)
    gradient: np.ndarray | None
    hessian: np.ndarray | None


class RowEvaluation(NamedTuple):
    value: float
    gradient: np.ndarray
    hessian: np.ndarray | None
    d1: np.ndarray  # loss'_i of every row (unweighted)
    d2: np.ndarray


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

    # c_i = s_i loss''_i / n
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

    def top_k_scores(self, X, fit_intercept: bool, row_scale, M, k: int, n_jobs: int = 0) -> TopKScores: ...
