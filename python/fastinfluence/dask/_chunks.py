"""Passes over row chunks: the settings every chunk task needs, the per-chunk validation, the
reduced objective (R, gradient, Hessian, its diagonal) and Hessian-vector products.

The kernels compute means over a chunk's own ``n_c`` rows without the penalty; a chunk's
results are multiplied by ``n_c / n`` and the penalty ``l2 [w; 0]`` is added once, on the
client, after the tree reduction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from .. import _validation as V
from ..backends import get_backend
from ..backends.contract import Problem
from ..losses import Loss
from ..models import LinearModelBase
from ..solvers import HessianOperator
from ._data import Data

#: Partial results combined per node of the tree reductions.
SPLIT_EVERY = 8


def label_encoder(model: LinearModelBase) -> LinearModelBase:
    """An unfitted copy of ``model`` (with ``classes_``): small to ship, encodes labels per chunk."""
    encoder = type(model)(**model.get_params())
    if hasattr(model, "classes_"):
        encoder.classes_ = model.classes_
    return encoder


@dataclass(frozen=True)
class Spec:
    """The objective and kernel settings, shipped with every pass."""

    loss: Loss
    fit_intercept: bool
    n_samples: int  # n of the whole data set: chunk means are rescaled to it
    encoder: LinearModelBase
    backend: str
    n_jobs: int

    @property
    def kernels(self):
        return get_backend(self.backend)

    def problem(self, X, y, s) -> Problem:
        """One chunk's objective data, without the penalty (added once, after the reduction)."""
        return Problem(self.loss, X, y, s, self.fit_intercept, 0.0)


def location(block_info) -> tuple[int, int]:
    start, stop = block_info[0]["array-location"][0]
    return int(start), int(stop)


def chunk_inputs(spec: Spec, X, y, s, start: int, stop: int):
    """(X, encoded y, weights | None) of one chunk, validated as the in-memory path validates."""
    where = f"[{start}:{stop}]"
    rows = stop - start
    X = V.check_matrix(X, f"X{where}")
    y = spec.encoder.encode_targets(np.asarray(y).reshape(-1), rows, f"y{where}")
    if s is not None:
        s = V.check_vector(np.asarray(s).reshape(-1), rows, f"sample_weight{where}")
        if np.any(s < 0):
            raise ValueError(f"sample_weight must be non-negative (rows {start}:{stop})")
    return X, y, s


def shared(value):
    """``value`` as one graph key: computed here once, sent once to each worker that needs it."""
    return dask.delayed(value, pure=True)


def map_rows(
    data: Data, func, context, trailing: tuple, *, per_chunk: bool = False, dtype=np.float64
) -> da.Array:
    """``func(X_chunk, y_chunk, s_chunk, context, block_info=...)`` for every row chunk.

    Output chunks: one block per row chunk, with the chunk's rows as the first
    axis (``per_chunk=False``) or a single row per chunk (``per_chunk=True``,
    for partial sums), followed by the fixed ``trailing`` shape.
    """
    if not trailing:
        # One value per row: computed as an (n_c, 1) column and viewed as (n,). (map_blocks'
        # drop_axis would concatenate X's single column block, copying every chunk.)
        return map_rows(
            data, functools.partial(_as_column, func), context, (1,), per_chunk=per_chunk, dtype=dtype
        )[:, 0]
    first = tuple(1 for _ in data.row_chunks) if per_chunk else data.row_chunks
    chunks = (first, *((t,) for t in trailing))
    ndim = 1 + len(trailing)
    kwargs = {"new_axis": list(range(2, ndim))} if ndim > 2 else {}
    return da.map_blocks(
        func,
        data.X,
        data.y,
        data.s,
        context,
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0,) * ndim, dtype=dtype),
        **kwargs,
    )


def _as_column(func, X, y, s, context, block_info=None):
    return func(X, y, s, context, block_info=block_info)[:, None]


def compute(*collections):
    """Compute on the active scheduler (a distributed Client if one is set, else threads)."""
    return dask.compute(*collections)


@dataclass(frozen=True)
class Request:
    """One evaluation within a pass: what to compute at theta."""

    theta: np.ndarray
    gradient: bool = True
    hessian: bool = False
    diagonal: bool = False  # diag of the data part of H (the Jacobi preconditioner)

    def size(self, p: int) -> int:
        return 1 + (p if self.gradient else 0) + (p * p if self.hessian else 0) + (p if self.diagonal else 0)


@dataclass
class Evaluation:
    value: float
    gradient: np.ndarray | None
    hessian: np.ndarray | None
    diagonal: np.ndarray | None


def _chunk_moments(X, y, s, context, block_info=None):
    """Partial sums of one chunk, packed in a (1, L) row: for each request, (n_c/n) times the chunk's
    R (without penalty), its gradient, Hessian and Hessian diagonal; last, the chunk's total weight."""
    spec, requests = context["spec"], context["requests"]
    p = X.shape[1] + (1 if spec.fit_intercept else 0)
    out = np.zeros((1, sum(r.size(p) for r in requests) + 1))
    start, stop = location(block_info)
    if stop == start:
        return out
    X, y, s = chunk_inputs(spec, X, y, s, start, stop)
    k, fi, n_jobs = spec.kernels, spec.fit_intercept, spec.n_jobs
    # chunk means over n_c rows -> contributions to means over all n rows
    scale = (stop - start) / spec.n_samples
    pos = 0
    for r in requests:
        problem = spec.problem(X, y, s)
        value, gradient, hessian = k.evaluate(problem, r.theta, r.gradient, r.hessian, n_jobs)
        parts = [np.atleast_1d(value)]
        if r.gradient:
            parts.append(gradient)
        if r.hessian:
            parts.append(np.ravel(hessian))
        if r.diagonal:
            # c_i = s_i loss''_i / n_c, diag(Xa^T diag(c) Xa)
            c = k.curvature_weights(problem, r.theta, n_jobs)
            parts.append(k.gram_diagonal(X, fi, c, n_jobs))
        block = np.concatenate(parts)
        out[0, pos : pos + block.size] = scale * block
        pos += block.size
    out[0, -1] = (stop - start) if s is None else float(s.sum())
    return out


def _chunk_hessian_products(X, y, s, context, block_info=None):
    """(n_c/n) times the data part of H V over one chunk, flattened to a (1, p*k) row."""
    spec, theta, block = context["spec"], context["theta"], context["V"]
    start, stop = location(block_info)
    if stop == start:
        return np.zeros((1, block.size))
    X, y, s = chunk_inputs(spec, X, y, s, start, stop)
    HV = spec.kernels.hessian_vector_product(spec.problem(X, y, s), theta, block, spec.n_jobs)
    return ((stop - start) / spec.n_samples * np.asarray(HV)).reshape(1, -1)


class Objective:
    """R(theta) of the whole data set, evaluated by passes over the chunks."""

    def __init__(self, data: Data, spec: Spec, l2: float):
        self.data, self.spec, self.l2 = data, spec, float(l2)
        self.d = data.d
        self.n_params = data.d + (1 if spec.fit_intercept else 0)
        self.penalty = np.r_[np.ones(self.d), np.zeros(self.n_params - self.d)]  # l2 acts on w only
        self.passes = 0
        self.total_weight = np.nan  # the data's total weight: known after the first pass

    def evaluate(self, *requests: Request) -> list[Evaluation]:
        """One pass over the data for all ``requests``; the penalty is added here, once."""
        p = self.n_params
        parts = map_rows(
            self.data,
            _chunk_moments,
            shared({"spec": self.spec, "requests": requests}),
            (sum(r.size(p) for r in requests) + 1,),
            per_chunk=True,
        )
        (total,) = compute(parts.sum(axis=0, split_every=SPLIT_EVERY))
        self.passes += 1
        self.total_weight = float(total[-1])
        results, pos = [], 0
        for r in requests:
            theta = r.theta
            value = float(total[pos]) + 0.5 * self.l2 * float(theta[: self.d] @ theta[: self.d])
            pos += 1
            gradient = hessian = diagonal = None
            if r.gradient:
                gradient = total[pos : pos + p] + self.l2 * self.penalty * theta
                pos += p
            if r.hessian:
                hessian = total[pos : pos + p * p].reshape(p, p) + np.diag(self.l2 * self.penalty)
                pos += p * p
            if r.diagonal:
                diagonal = total[pos : pos + p].copy()  # data part only
                pos += p
            results.append(Evaluation(value, gradient, hessian, diagonal))
        return results

    def hessian_products(self, theta: np.ndarray, block: np.ndarray) -> np.ndarray:
        """H(theta) V for a (p, k) block, in one pass (H never formed)."""
        block = np.asfortranarray(block, dtype=np.float64)
        context = shared({"spec": self.spec, "theta": theta, "V": block})
        parts = map_rows(self.data, _chunk_hessian_products, context, (block.size,), per_chunk=True)
        (total,) = compute(parts.sum(axis=0, split_every=SPLIT_EVERY))
        self.passes += 1
        return total.reshape(block.shape) + self.l2 * self.penalty[:, None] * block


class DaskHessianOperator(HessianOperator):
    """H + damping I at theta, applied by one pass over the chunks per block of columns; its
    diagonal (one pass, or given) gives the Jacobi preconditioner, and CG runs on the client
    (:func:`fastinfluence.solvers.conjugate_gradient`: one pass per iteration for all columns)."""

    def __init__(self, objective: Objective, theta: np.ndarray, damping: float = 0.0, data_diagonal=None):
        self.objective, self.theta, self.damping = objective, theta, float(damping)
        self.fit_intercept = objective.spec.fit_intercept
        self.backend = objective.spec.kernels
        self.n_params = objective.n_params
        if data_diagonal is not None:
            self._data_diagonal = data_diagonal + objective.l2 * objective.penalty

    def hessian_products(self, V: np.ndarray) -> np.ndarray:
        return self.objective.hessian_products(self.theta, V)

    def undamped_diagonal(self) -> np.ndarray:
        (ev,) = self.objective.evaluate(Request(self.theta, False, False, True))
        return ev.diagonal + self.objective.l2 * self.objective.penalty
