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
from ..models import LinearModelBase, MultinomialLogisticRegression
from ..multinomial import Gauge
from ..solvers import HessianOperator
from ._data import Data

#: Partial results combined per node of the tree reductions.
SPLIT_EVERY = 8


def label_encoder(model: LinearModelBase) -> LinearModelBase:
    """An unfitted copy of ``model`` (with ``classes_``): small to ship, encodes labels per chunk."""
    encoder = type(model)(**model.get_params())
    if hasattr(model, "classes_"):
        encoder.classes_ = model.classes_
        if isinstance(model, MultinomialLogisticRegression) and isinstance(
            encoder, MultinomialLogisticRegression
        ):
            encoder.n_classes_ = model.n_classes_
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
    n_classes: int = 1  # K of a multinomial model

    @property
    def kernels(self):
        return get_backend(self.backend)

    def problem(self, X, y, s) -> Problem:
        """One chunk's objective data, without the penalty (added once, after the reduction)."""
        return Problem(self.loss, X, y, s, self.fit_intercept, 0.0, self.n_classes)


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
    p = spec.n_classes * (X.shape[1] + (1 if spec.fit_intercept else 0))
    out = np.zeros((1, sum(r.size(p) for r in requests) + 1))
    start, stop = location(block_info)
    if stop == start:
        return out
    X, y, s = chunk_inputs(spec, X, y, s, start, stop)
    k, n_jobs = spec.kernels, spec.n_jobs
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
            parts.append(_data_diagonal(k, problem, r.theta, n_jobs))
        block = np.concatenate(parts)
        out[0, pos : pos + block.size] = scale * block
        pos += block.size
    out[0, -1] = (stop - start) if s is None else float(s.sum())
    return out


def _data_diagonal(k, problem: Problem, theta, n_jobs: int) -> np.ndarray:
    """diag of the data part of one chunk's H (means over its n_c rows)."""
    X, fi = problem.X, problem.fit_intercept
    if problem.n_classes > 1:  # c_i = s_i / n_c, the probabilities at theta
        n_c = X.shape[0]
        c = (np.ones(n_c) if problem.weights is None else problem.weights) / n_c
        P = k.row_derivatives(problem, theta, n_jobs).d2
        return k.multinomial_gram_diagonal(X, fi, c, P, n_jobs)
    # c_i = s_i loss''_i / n_c, diag(Xa^T diag(c) Xa)
    return k.gram_diagonal(X, fi, k.curvature_weights(problem, theta, n_jobs), n_jobs)


def _chunk_square_means(X, y, s, context, block_info=None):
    """(1/n) sum over one chunk of s_i xa_ij^2, (1, q): the scale of the multinomial gauge term."""
    spec = context["spec"]
    start, stop = location(block_info)
    q = X.shape[1] + (1 if spec.fit_intercept else 0)
    if stop == start:
        return np.zeros((1, q))
    X, y, s = chunk_inputs(spec, X, y, s, start, stop)
    weights = (np.ones(stop - start) if s is None else s) / spec.n_samples
    return np.asarray(spec.kernels.gram_diagonal(X, spec.fit_intercept, weights, spec.n_jobs))[None]


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
        q = data.d + (1 if spec.fit_intercept else 0)
        self.n_params = spec.n_classes * q
        # l2 acts on the weights only (of every class)
        self.penalty = np.tile(np.r_[np.ones(self.d), np.zeros(q - self.d)], spec.n_classes)
        self.passes = 0
        self.total_weight = np.nan  # the data's total weight: known after the first pass
        self._gauge: Gauge | None = None

    @property
    def gauge(self) -> Gauge | None:
        """The multinomial gauge term (:class:`fastinfluence.multinomial.Gauge`; one pass, once)."""
        if self.spec.n_classes == 1:
            return None
        if self._gauge is None:
            q = self.n_params // self.spec.n_classes
            parts = map_rows(
                self.data, _chunk_square_means, shared({"spec": self.spec}), (q,), per_chunk=True
            )
            (scale,) = compute(parts.sum(axis=0, split_every=SPLIT_EVERY))
            self.passes += 1
            self._gauge = Gauge.from_scale(scale, self.d, self.l2, self.spec.n_classes)
        return self._gauge

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
            gauge = self.gauge
            if gauge is not None:  # the multinomial gauge term, zero at the sum-to-zero optimum
                value += gauge.value(theta)
                gradient = None if gradient is None else gradient + gauge.product(theta)
                hessian = None if hessian is None else hessian + gauge.dense()
            results.append(Evaluation(value, gradient, hessian, diagonal))
        return results

    def hessian_products(self, theta: np.ndarray, block: np.ndarray) -> np.ndarray:
        """H(theta) V for a (p, k) block, in one pass (H never formed)."""
        block = np.asfortranarray(block, dtype=np.float64)
        context = shared({"spec": self.spec, "theta": theta, "V": block})
        parts = map_rows(self.data, _chunk_hessian_products, context, (block.size,), per_chunk=True)
        (total,) = compute(parts.sum(axis=0, split_every=SPLIT_EVERY))
        self.passes += 1
        HV = total.reshape(block.shape) + self.l2 * self.penalty[:, None] * block
        return HV if self.gauge is None else HV + self.gauge.product(block)

    def regularisation_diagonal(self) -> np.ndarray:
        """diag of the penalty (and gauge) part of H: what the data part's diagonal lacks."""
        diagonal = self.l2 * self.penalty
        return diagonal if self.gauge is None else diagonal + self.gauge.diagonal()


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
            self._data_diagonal = data_diagonal + objective.regularisation_diagonal()

    def hessian_products(self, V: np.ndarray) -> np.ndarray:
        return self.objective.hessian_products(self.theta, V)

    def undamped_diagonal(self) -> np.ndarray:
        (ev,) = self.objective.evaluate(Request(self.theta, False, False, True))
        return ev.diagonal + self.objective.regularisation_diagonal()
