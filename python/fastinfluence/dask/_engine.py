"""The Dask engine of :class:`fastinfluence.Influence`: the per-row formulas of
:mod:`fastinfluence.rowwise` run per chunk (lazy results chunked like X), sums and top-k
candidates tree-reduced, the Hessian reduced or applied by passes."""

from __future__ import annotations

import functools

import dask
import dask.array as da
import numpy as np

from .. import _dataframes as D
from .. import _validation as V
from ..backends import get_backend
from ..engine import Optimum
from ..rowwise import RowBlock, top_k_candidates
from ..topk import merge_candidates, unpack
from ._chunks import (
    SPLIT_EVERY,
    DaskHessianOperator,
    Objective,
    Request,
    Spec,
    chunk_inputs,
    compute,
    label_encoder,
    location,
    map_rows,
    shared,
)
from ._data import as_data


def _chunk_block(X, y, s, context, start: int, stop: int) -> RowBlock:
    """One validated chunk at the fitted theta: X, loss', loss'', s and its first row's position."""
    spec = context["spec"]
    X, y, s = chunk_inputs(spec, X, y, s, start, stop)
    rows = spec.kernels.row_derivatives(spec.problem(X, y, s), context["theta"], spec.n_jobs)
    return RowBlock(X, rows.d1, rows.d2, np.ones(stop - start) if s is None else s, start)


def _chunk_apply(X, y, s, context, block_info=None):
    """``context["func"](kernels, block, ctx)`` on one chunk, (n_c, *trailing)."""
    start, stop = location(block_info)
    if stop == start:
        return np.empty((0, *context["trailing"]))
    block = _chunk_block(X, y, s, context, start, stop)
    return context["func"](context["spec"].kernels, block, context["ctx"])


def _chunk_sum(X, y, s, context, block_info=None):
    """``context["func"]`` on one chunk, as a (1, 1) partial sum."""
    start, stop = location(block_info)
    if stop == start:
        return np.zeros((1, 1))
    block = _chunk_block(X, y, s, context, start, stop)
    return np.full((1, 1), float(context["func"](context["spec"].kernels, block, context["ctx"])))


def _chunk_top_k(X, y, s, context, block_info=None):
    """The chunk's top-k candidates, (1, m, 4, k)."""
    start, stop = location(block_info)
    ctx = context["ctx"]
    if stop == start:
        block = RowBlock(np.empty((0, X.shape[1])), np.empty(0), np.empty(0), np.empty(0), start)
    else:
        block = _chunk_block(X, y, s, context, start, stop)
    return top_k_candidates(context["spec"].kernels, block, ctx)[None]


def _keep(block, axis=None, keepdims=False):
    return block


def _merge(candidates, axis=None, keepdims=False, *, k):
    merged = merge_candidates(candidates, k)
    return merged[None] if keepdims else merged


def _loss_derivative(kernels, block, ctx):
    return block.d1


def _loss_second_derivative(kernels, block, ctx):
    return block.d2


class DaskEngine:
    """Row-chunked Dask data (see :mod:`fastinfluence.dask`); every pass is one kernel call per chunk."""

    solvers: tuple[str, ...] = ("direct", "cg")
    lazy = True

    @staticmethod
    def unavailable_solver_message(solver: str) -> str:
        return (
            f"solver={solver!r} is not available on Dask data: its random mini-batches read rows scattered "
            "over every chunk at each of thousands of steps. Use solver='cg' (matrix-free, one pass per "
            "iteration) or 'direct'."
        )

    def __init__(self, model, X, y, sample_weight, backend: str, n_jobs):
        self.kernels = get_backend(backend)
        # None: one thread per task (Dask runs a task per core)
        self.n_jobs = V.check_n_jobs(1 if n_jobs is None else n_jobs)
        self.data = as_data(X, y, sample_weight)
        D.check_feature_names(getattr(model, "feature_names_in_", None), self.data.columns, "X")
        V.check_same_features(self.data.X, model.n_features_in_, "X", type(model).__name__)
        self.n_samples = self.data.n
        self.fit_intercept = bool(model.fit_intercept)
        self.train_rows = self.columns = None  # results are lazy arrays, unlabelled
        self.spec = Spec(
            model.loss,
            self.fit_intercept,
            self.n_samples,
            label_encoder(model),
            backend,
            self.n_jobs,
            model.n_blocks,
        )
        self.objective = Objective(self.data, self.spec, float(model.l2))
        self._theta: np.ndarray | None = None
        self._diagonal: np.ndarray | None = None

    @property
    def gauge(self):
        return self.objective.gauge

    def at_optimum(self, theta, hessian, value_at_zero):
        self._theta = theta
        # one pass: at theta (H, or its diagonal for CG) and R(0) (the yardstick of the optimum check)
        at_theta, at_zero = self.objective.evaluate(
            Request(theta, True, hessian, not hessian), Request(np.zeros_like(theta))
        )
        if not self.objective.total_weight > 0:
            raise ValueError("sample_weight is zero everywhere")
        self._diagonal = at_theta.diagonal
        assert at_theta.gradient is not None  # requested
        return Optimum(at_theta.gradient, at_theta.hessian, at_zero.value)

    def hessian_operator(self, damping):
        assert self._theta is not None  # set by at_optimum, which Influence calls first
        return DaskHessianOperator(self.objective, self._theta, damping, self._diagonal)

    def rows(self, indices):
        idx = V.check_indices(indices, self.n_samples)
        return self.data if idx is None else self.data.select(idx)

    def n_rows(self, rows):
        return rows.n

    def _shared(self, func, ctx, trailing=()):
        """The spec, theta, the formula and its context as one graph key."""
        return shared(
            {"spec": self.spec, "theta": self._theta, "func": func, "ctx": ctx, "trailing": trailing}
        )

    def map_rows(self, rows, func, ctx, trailing, out=None):
        result = map_rows(rows, _chunk_apply, self._shared(func, ctx, trailing), trailing)
        if out is None:
            return result
        da.store(result, out, lock=False)
        return out

    def sum_rows(self, rows, func, ctx):
        parts = map_rows(rows, _chunk_sum, self._shared(func, ctx), (1,), per_chunk=True)
        (total,) = compute(parts.sum())
        return float(total)

    def top_k(self, ctx):
        m, k = ctx.M.shape[1], ctx.k  # each chunk allocates (m, 4, k)
        parts = map_rows(self.data, _chunk_top_k, self._shared(None, ctx), (m, 4, k), per_chunk=True)
        merge = functools.partial(_merge, k=k)
        merged = da.reduction(
            parts,
            _keep,
            merge,
            combine=merge,
            axis=0,
            dtype=np.float64,
            split_every=SPLIT_EVERY,
            concatenate=True,
            meta=np.empty((0, 0, 0)),
        )
        (packed,) = compute(merged)
        return unpack(packed)

    def gather(self, rows):
        X, y, s = compute(rows.X, rows.y, rows.s)
        return _chunk_block(X, y, s, {"spec": self.spec, "theta": self._theta}, 0, rows.n)

    def wrap(self, values, rows):
        return da.from_array(values, chunks=(rows.row_chunks, *values.shape[1:]))

    def derivatives(self, which):
        func = _loss_derivative if which == 0 else _loss_second_derivative
        return self.map_rows(self.data, func, None, ())

    def test_inputs(self, X_test, y_test):
        if dask.is_dask_collection(X_test):
            X_test = X_test.compute()
        if dask.is_dask_collection(y_test):
            y_test = y_test.compute()
        return X_test, y_test

    def check_unchanged(self):
        """Nothing to check: the chunks are read anew by every pass."""

    def largest_magnitude(self):
        (largest,) = compute(abs(self.data.X).max())
        return float(largest)
