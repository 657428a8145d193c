"""Engines: where the training rows live and how a pass over them runs.

:class:`fastinfluence.Influence` writes every formula once (the per-row parts in
:mod:`fastinfluence.rowwise`, the client-side solves in :mod:`fastinfluence.solvers`)
against the :class:`Engine` protocol. Two engines implement it:

- :class:`MemoryEngine` (here): X in memory, each pass one call of the backend's
  compiled (or NumPy) kernel over all the selected rows, results NumPy arrays;
- ``fastinfluence.dask.DaskEngine``: row-chunked Dask data, each pass one kernel
  call per chunk, sums tree-reduced, per-row results lazy dask arrays.

A new engine (another out-of-core store, a GPU) implements the protocol and a
:class:`fastinfluence.solvers.HessianOperator`; the formulas, solvers and the Newton
fit (:mod:`fastinfluence.fitting`, over an ``Objective``) come with it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from . import _validation as V
from . import rowwise
from .backends import get_backend
from .multinomial import Gauge
from .solvers import HessianOperator, row_hessian_operator
from .topk import TopK, unpack

__all__ = ["Engine", "MemoryEngine", "Optimum"]

RowFunction = Callable[..., np.ndarray]


@dataclass
class Optimum:
    """What one pass at the fitted theta gives: grad R, H (when asked for) and R(0) (when asked for)."""

    gradient: np.ndarray
    hessian: np.ndarray | None
    value_at_zero: float | None


class Engine(Protocol):
    """What :class:`fastinfluence.Influence` needs of the place the training data live."""

    kernels: Any  # the backend module (fastinfluence.backends)
    n_samples: int
    n_jobs: int
    fit_intercept: bool
    solvers: tuple[str, ...]  # the Hessian solvers it can run
    lazy: bool  # results are lazy (no size limit: the caller stores them)
    train_rows: Any  # row labels of a training frame (pandas Index), or None
    columns: Any  # its feature labels, or None

    def __init__(self, model, X, y, sample_weight, backend: str, n_jobs) -> None:
        """Validate the training data against the fitted ``model``; no pass over it yet."""

    @property
    def gauge(self) -> Any:
        """The multinomial model's gauge term (:class:`fastinfluence.multinomial.Gauge`), else None."""

    @staticmethod
    def unavailable_solver_message(solver: str) -> str:
        """Why ``solver`` (not in ``solvers``) cannot run here."""

    def at_optimum(self, theta: np.ndarray, hessian: bool, value_at_zero: bool) -> Optimum:
        """One pass at theta; loss'_i and loss''_i of every row are kept (or made available)."""

    def hessian_operator(self, damping: float) -> HessianOperator:
        """H + damping I at the theta of :meth:`at_optimum`."""

    def rows(self, indices) -> Any:
        """A handle on the training rows at ``indices`` (positions; all when None)."""

    def n_rows(self, rows) -> int: ...

    def map_rows(self, rows, func: RowFunction, ctx: rowwise.Context, trailing: tuple, out=None):
        """``func(kernels, block, ctx)`` over the rows: a ``(k, *trailing)`` result (``out`` if given)."""

    def sum_rows(self, rows, func: Callable[..., float], ctx: rowwise.Context) -> float:
        """The sum of ``func(kernels, block, ctx)`` (a number per block) over the rows, computed now."""

    def top_k(self, ctx: rowwise.Context) -> TopK:
        """The top-k of :func:`fastinfluence.rowwise.top_k_candidates` over all training rows."""

    def gather(self, rows) -> rowwise.RowBlock:
        """The rows as one in-memory block (a few rows, for client-side solves)."""

    def wrap(self, values: np.ndarray, rows):
        """A client-side result for ``rows`` in the engine's result type."""

    def derivatives(self, which: int):
        """loss'_i (``which = 0``) or loss''_i (1) of every training row."""

    def test_inputs(self, X_test, y_test) -> tuple:
        """The test data on this machine (test sets are small)."""

    def check_unchanged(self) -> None: ...

    def largest_magnitude(self) -> float: ...


def fingerprint(X) -> bytes:
    """A digest of up to 64 rows of X spread over it (and of a sparse X's structure there):
    O(64 d) work, enough to catch X being rescaled, refilled or resized in place."""
    n = X.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(np.int64))
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.asarray(X.shape, dtype=np.int64).tobytes())
    if V.is_sparse(X):
        digest.update(np.ascontiguousarray(X.indptr[rows]).tobytes())
        sample = X[rows]
        digest.update(np.ascontiguousarray(sample.indices).tobytes())
        digest.update(np.ascontiguousarray(sample.data).tobytes())
    else:
        digest.update(np.ascontiguousarray(X[rows]).tobytes())
    return digest.digest()


class MemoryEngine:
    """Training rows in memory (dense or CSR, float32 or float64), passes by the backend's kernels."""

    solvers: tuple[str, ...] = ("direct", "cg", "lissa")
    lazy = False
    _d1: np.ndarray  # loss'_i and loss''_i of every row at the fitted theta, set by at_optimum
    _d2: np.ndarray

    @staticmethod
    def unavailable_solver_message(solver: str) -> str:
        return f"solver {solver!r} is not available"

    def __init__(self, model, X, y, sample_weight, backend: str, n_jobs):
        self.kernels = get_backend(backend)
        self.n_jobs = V.check_n_jobs(n_jobs)
        self.model = model
        # frames: their row and column labels label the results (None for arrays)
        self.X, self.train_rows, self.columns = model.validate_features(X, "X")
        self._fingerprint = fingerprint(self.X)
        self.n_samples = self.X.shape[0]
        self.y = model.encode_targets(y, self.n_samples, "y")
        self.weights = V.check_sample_weight(sample_weight, self.n_samples)
        self.s = np.ones(self.n_samples) if self.weights is None else self.weights
        self.fit_intercept = bool(model.fit_intercept)
        self.l2 = float(model.l2)
        self.problem = model.problem(self.X, self.y, self.weights)
        # the multinomial model's gauge term (fastinfluence.multinomial): part of its H
        multi = self.problem.n_classes > 1
        self.gauge = Gauge.for_problem(self.kernels, self.problem, self.n_jobs) if multi else None
        self._theta = None

    def at_optimum(self, theta, hessian, value_at_zero):
        self._theta = theta
        # one pass over X: gradient, Hessian (when asked for) and loss', loss'' per row
        at = self.kernels.evaluate_with_row_derivatives(self.problem, theta, hessian, self.n_jobs)
        self._d1, self._d2 = at.d1, at.d2
        gradient, hessian = np.asarray(at.gradient), None if at.hessian is None else np.asarray(at.hessian)
        if self.gauge is not None:
            gradient = gradient + self.gauge.product(theta)
            hessian = None if hessian is None else hessian + self.gauge.dense()
        zero = None
        if value_at_zero:
            zero = float(
                self.kernels.evaluate(self.problem, np.zeros_like(theta), False, False, self.n_jobs).value
            )
        return Optimum(gradient, hessian, zero)

    def hessian_operator(self, damping):
        # H = Xa^T diag(c) Xa + l2 P with c_i = s_i loss''_i / n (or its multinomial form),
        # applied without forming H
        return row_hessian_operator(self.kernels, self.problem, self._d2, damping, self.n_jobs, self.gauge)

    def rows(self, indices):
        idx = V.check_indices(indices, self.n_samples)
        if idx is None:
            return rowwise.RowBlock(self.X, self._d1, self._d2, self.s)
        return rowwise.RowBlock(self.X[idx], self._d1[idx], self._d2[idx], self.s[idx])

    def n_rows(self, rows):
        return len(rows)

    def map_rows(self, rows, func, ctx, trailing, out=None):
        return func(self.kernels, rows, ctx) if out is None else func(self.kernels, rows, ctx, out=out)

    def sum_rows(self, rows, func, ctx):
        return float(func(self.kernels, rows, ctx))

    def top_k(self, ctx):
        # the kernel streams over row blocks itself: one call keeps O(m k) memory
        return unpack(rowwise.top_k_candidates(self.kernels, self.rows(None), ctx))

    def gather(self, rows):
        return rows

    def wrap(self, values, rows):
        return values

    def derivatives(self, which):
        return self._d1 if which == 0 else self._d2

    def test_inputs(self, X_test, y_test):
        return X_test, y_test

    def check_unchanged(self):
        if fingerprint(self.X) != self._fingerprint:
            raise ValueError(
                "the training X was modified after this Influence was constructed (Influence keeps X by "
                "reference, not a copy, and its results assume the data the model was fitted on); "
                "construct a new Influence (and refit the model) for the new data"
            )

    def largest_magnitude(self):
        X = self.X
        return float(abs(X).max()) if X.shape[0] and X.shape[1] else 0.0
