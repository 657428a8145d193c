"""Influence functions on row-chunked Dask data: datasets larger than one machine's memory.

``pip install "fastinfluence[dask]"``. The API mirrors the in-memory one on
a ``dask.array`` of shape (n, d) chunked by rows, or a ``dask.dataframe``
(feature columns plus a target column, named by ``y``):

>>> import fastinfluence as fi, fastinfluence.dask as fid            # doctest: +SKIP
>>> model = fid.fit(fi.LogisticRegression(l2=1e-3), X, y)             # doctest: +SKIP
>>> inf = fid.Influence(model, X, y)                                  # doctest: +SKIP
>>> inf.loss(X_test, y_test).to_zarr("scores.zarr")   # lazy (n, m)   # doctest: +SKIP
>>> inf.top_k(X_test, y_test, k=10)                   # TopK, (m, k)  # doctest: +SKIP

Everything here decomposes by rows. The objective, its gradient and Hessian
are sums over rows, so a *pass* runs the fused compiled kernel on every chunk
(in parallel, wherever Dask places the chunk) and adds the partial sums by a
tree reduction; only (p,) and (p, p) arrays travel. The kernels compute means
over a chunk's own ``n_c`` rows without the penalty; a chunk's results are
multiplied by ``n_c / n`` and the penalty ``l2 [w; 0]`` is added once, on the
client, after the reduction:

    grad R = sum_chunks (n_c / n) grad_c + l2 [w; 0],   H = sum_chunks (n_c / n) H_c + l2 diag(1,..,1,0).

What is computed where:

- the client (the Python process that calls this module) runs Newton's
  iteration (direction, line search, stopping rule), factorises H, and
  computes the test side (the m test gradients and their solves
  ``V = H^{-1} G_test``) once;
- the workers run one kernel call per chunk per pass; theta, V and the other
  small (p, .) arrays go to them as one graph key each (computed once,
  shipped once to each worker that needs it, never recomputed per chunk);
- per-row results (:meth:`Influence.loss`, :meth:`Influence.self_influence`,
  ...) are lazy dask arrays chunked like X, to be stored by the caller
  (``to_zarr``, ``da.store`` into a ``numpy.memmap``, ``dd.from_dask_array(...).to_parquet``);
  :meth:`Influence.top_k` runs the streaming top-k kernel per chunk and
  merges the candidates by a tree reduction, so only (m, k) arrays travel.

Dask does the scheduling: the default threaded scheduler on one machine
(out of core over a ``numpy.memmap`` or a folder of Parquet files), or a
``distributed`` cluster when a ``Client`` is active. Lost workers are
recovered by Dask (tasks are recomputed from the graph; see the README).
Results equal the in-memory engine's to about 1e-9 relative: the same
kernels, the same Newton iteration and stopping rule, only the order of the
sums over chunks differs.
"""

from __future__ import annotations

import functools
import mmap
import os
import warnings
from dataclasses import dataclass

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "fastinfluence.dask needs Dask: pip install 'fastinfluence[dask]' "
        "(dask[array,dataframe] and distributed)"
    ) from exc

from . import _dataframes as D
from . import _validation as V
from .backends import get_backend
from .backends.numpy_backend import conjugate_gradient
from .exceptions import ConvergenceWarning, LeverageWarning
from .fitting import Evaluation, minimise, newton_cg_damping
from .influence import LOO_METHODS, TopK, _check_finite_test_gradients, _check_model, warn_if_not_at_optimum
from .losses import Loss, loss_infimum
from .minimiser import SEPARABLE_MESSAGE, intercept_only_reason, separated_at
from .models import _BinaryClassifier, _LinearModel
from .solvers import (
    DirectSolver,
    HessianOperator,
    _IterativeSolver,
    check_solver_options,
    newton_decrement,
    resolve_solver,
    spectrum_summary,
)

__all__ = ["fit", "Influence", "TopK", "from_memmap"]

#: Partial results combined per node of the tree reductions.
SPLIT_EVERY = 8

#: Rows with ``1 - h_i`` at or below this get NaN Newton estimates (as in memory).
_LEVERAGE_FLOOR = 1e-12


# ---------------------------------------------------------------------------
# Input: dask.array or dask.dataframe, chunked by rows
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """Training data as dask arrays with the same row chunks.

    ``X`` is (n, d) with all columns in one chunk; ``y`` and ``s`` (sample
    weights, or None) are (n, 1) columns, raw (labels are encoded per chunk).
    """

    X: da.Array
    y: da.Array
    s: da.Array | None
    columns: tuple | None = None  # the feature columns of a DataFrame
    labels: np.ndarray | None = None  # the distinct raw labels, when learnt with the partition lengths

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @property
    def row_chunks(self) -> tuple:
        return self.X.chunks[0]

    def select(self, idx: np.ndarray) -> _Data:
        """The rows ``idx`` (in that order), still lazy."""
        return _Data(self.X[idx], self.y[idx], None if self.s is None else self.s[idx], self.columns)


class _MemmapRows:
    """Rows of a read-only NumPy memory map, for ``dask.array.from_array`` without a copy.

    ``from_array`` copies array-likes that have a ``copy`` method (recent Dask), which
    for a memory map reads the whole file into memory; this view has none. It pickles
    as the file's path, offset, dtype, shape and order (so distributed workers reopen
    the file, which must be at the same path for them), never as the data.
    """

    def __init__(self, array: np.memmap):
        if not isinstance(array.base, mmap.mmap):
            raise ValueError(
                "pass the memory map itself (numpy.load(path, mmap_mode='r') or numpy.memmap), not a "
                "slice of it; slice the dask array instead"
            )
        self.filename, self.offset = os.fspath(array.filename), int(array.offset)
        self.dtype, self.shape, self.ndim = array.dtype, array.shape, array.ndim
        fortran = array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous
        self.order = "F" if fortran else "C"
        self._map = array

    def __getitem__(self, key):
        return np.asarray(self._map[key])  # a view of the mapped pages

    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key != "_map"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._map = np.memmap(self.filename, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape,
                              order=self.order)


#: Default size of the chunks :func:`from_memmap` cuts.
MEMMAP_CHUNK_BYTES = 256 * 2**20


def from_memmap(array: np.memmap, chunk_rows: int | None = None) -> da.Array:
    """A ``numpy.memmap`` (1-D or 2-D) as a dask array in row chunks, read lazily, never copied.

    Use it for data on disk larger than memory (``numpy.load(path, mmap_mode="r")``);
    :func:`fit` and :class:`Influence` also accept a memory map directly and call this.
    ``chunk_rows`` defaults to about :data:`MEMMAP_CHUNK_BYTES` (256 MiB) per chunk. Chunks
    are views of the mapped file: the operating system pages them in and out, so the
    process holds little more than the chunks being processed.
    """
    if not isinstance(array, np.memmap):
        raise TypeError(f"from_memmap needs a numpy.memmap, got {type(array).__name__}")
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise ValueError(f"the memory map must be 1-D or 2-D with at least one row, got shape {array.shape}")
    rows = _MemmapRows(array)
    row_bytes = max(1, array.itemsize * (array.shape[1] if array.ndim == 2 else 1))
    chunk_rows = max(1, MEMMAP_CHUNK_BYTES // row_bytes) if chunk_rows is None else V.check_positive_int(
        chunk_rows, "chunk_rows"
    )
    modified = os.stat(rows.filename).st_mtime_ns
    name = "memmap-" + dask.base.tokenize(rows.filename, rows.offset, str(rows.dtype), rows.shape, rows.order,
                                           modified)
    chunks = (chunk_rows,) + tuple(-1 for _ in array.shape[1:])
    return da.from_array(rows, chunks=chunks, name=name, meta=np.empty((0,) * array.ndim, dtype=array.dtype))


def _dataframe_type(name: str):
    """dask.dataframe's DataFrame or Series class; None when dask.dataframe is not installed."""
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - dask[array] without dask[dataframe]
        return None
    return getattr(dd, name)


def _is_dataframe(obj) -> bool:
    return dask.is_dask_collection(obj) and not isinstance(obj, da.Array) and (
        (cls := _dataframe_type("DataFrame")) is not None and isinstance(obj, cls)
    )


def _is_series(obj) -> bool:
    return dask.is_dask_collection(obj) and not isinstance(obj, da.Array) and (
        (cls := _dataframe_type("Series")) is not None and isinstance(obj, cls)
    )


def _column(values, n: int, row_chunks, name: str) -> da.Array:
    """A per-row vector as an (n, 1) dask array with the given row chunks."""
    if _is_series(values):
        values = values.to_dask_array(lengths=True)
    elif dask.is_dask_collection(values):
        if not isinstance(values, da.Array):
            raise TypeError(f"{name} must be a dask array or Series, a NumPy array, or a column name; "
                            f"got {type(values).__name__}")
    else:
        arr = values if isinstance(values, np.memmap) else np.asarray(values)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(f"{name} has shape {arr.shape}, expected ({n},): one entry per row of X")
        if isinstance(arr, np.memmap):
            values = from_memmap(arr).rechunk((row_chunks,) + tuple((s,) for s in arr.shape[1:]))
        else:
            values = da.from_array(arr, chunks=(row_chunks,) + tuple((s,) for s in arr.shape[1:]))
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one entry per row, got shape {values.shape}")
    if any(np.isnan(c) for c in values.chunks[0]):
        values = values.compute_chunk_sizes()
    if values.shape[0] != n:
        raise ValueError(f"{name} has {values.shape[0]} entries, expected {n} (one per row of X)")
    return values.rechunk((row_chunks,))[:, None]


def _frame_arrays(part, features, named):
    """One pandas partition as NumPy: the features (2-D), then each (column, name) of ``named`` (1-D),
    converted as in-memory frames are. One task, so the partition is freed once it has run."""
    arrays = [D.to_numpy_2d(part[features], "X")[0]]
    arrays += [D.to_numpy_1d(part[column], name)[0] for column, name in named]
    return tuple(arrays)


def _distinct_labels(part, column):
    return np.unique(D.to_numpy_1d(part[column], "y")[0])


def _from_dataframe(frame, y, sample_weight, distinct_labels=False):
    """(X, y, sample_weight, feature columns, distinct labels | None) from a dask DataFrame.

    ``y`` and ``sample_weight`` may name columns. All arrays are cut from *one* graph of
    the frame's partitions (``to_delayed``): each partition is read once per pass, and X,
    y and the weights share its row boundaries whatever Dask's column projection would
    do to the partitioning of a single column. Learning the partitions' lengths (and,
    with ``distinct_labels``, the distinct values of the target column) costs one pass.
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    named = [c for c in (y, sample_weight) if isinstance(c, str)]
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the DataFrame (columns: {list(frame.columns)})")
    if y is None:
        raise ValueError("y must be given: the target column's name, or a dask Series or array")
    features = [c for c in frame.columns if c not in named]
    if not features:
        raise ValueError("the DataFrame has no feature columns besides the target and weight columns")
    dtypes = frame.dtypes
    bad = [c for c in features if not (is_numeric_dtype(dtypes[c]) or is_bool_dtype(dtypes[c]))]
    if bad:
        raise TypeError(
            f"feature columns must be numeric or bool; not so: {[str(c) for c in bad[:5]]} (dtypes "
            f"{[str(dtypes[c]) for c in bad[:5]]}). Name the target and weight columns in y= and "
            "sample_weight=, or select the feature columns first."
        )
    # float32 only when every feature column is float32 (as for in-memory frames)
    dtype = np.float32 if all(dtypes[c] == np.float32 for c in features) else np.float64
    parts = frame[features + named].to_delayed()
    learn_labels = distinct_labels and isinstance(y, str)
    found = dask.compute(
        [dask.delayed(len)(part) for part in parts],
        [dask.delayed(_distinct_labels)(part, y) for part in parts] if learn_labels else [],
    )
    lengths = [int(v) for v in found[0]]
    labels = np.unique(np.concatenate(found[1])) if learn_labels else None
    columns = [(c, "y" if c == y else "sample_weight") for c in named]
    split = [dask.delayed(_frame_arrays, pure=True, nout=1 + len(named))(part, features, columns)
             for part in parts]

    def stack(position, dtype, shape_tail):
        # dtype is the blocks' declared dtype (metadata); per-chunk validation checks the values
        blocks = [da.from_delayed(arrays[position], shape=(rows, *shape_tail), dtype=dtype)
                  for arrays, rows in zip(split, lengths)]
        return da.concatenate(blocks, axis=0)

    X = stack(0, dtype, (len(features),))
    for position, (column, name) in enumerate(columns, 1):
        if name == "y":
            y = stack(position, dtypes[column] if isinstance(dtypes[column], np.dtype) else object, ())
        else:
            sample_weight = stack(position, np.float64, ())
    return X, y, sample_weight, features, labels


def _as_data(X, y, sample_weight, *, distinct_labels=False) -> _Data:
    """Validate the layout of (X, y, sample_weight) and align them on X's row chunks.

    Values are validated per chunk when a pass reads them (finite, label
    domain, non-negative weights), with messages that name the chunk's rows.
    ``distinct_labels``: learn the distinct labels of a DataFrame's target column in the
    pass that learns the partition lengths (a classifier's fit needs them).
    """
    columns = labels = None
    if _is_dataframe(X):
        X, y, sample_weight, columns, labels = _from_dataframe(X, y, sample_weight, distinct_labels)
    elif isinstance(y, str) or isinstance(sample_weight, str):
        raise TypeError("y and sample_weight may be column names only when X is a dask DataFrame")
    elif isinstance(X, np.memmap):
        X = from_memmap(X)
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask array, a dask DataFrame or a numpy.memmap, got {type(X).__name__}; for a "
            "NumPy array in memory use fastinfluence.Influence, or "
            "dask.array.from_array(X, chunks=(rows, -1))"
        )
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {X.shape}")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})  # the kernels take whole rows
    n, row_chunks = int(X.shape[0]), X.chunks[0]
    y = _column(y, n, row_chunks, "y")
    s = None if sample_weight is None else _column(sample_weight, n, row_chunks, "sample_weight")
    return _Data(X, y, s, None if columns is None else tuple(columns), labels)


# ---------------------------------------------------------------------------
# What every chunk task needs, and the per-chunk validation
# ---------------------------------------------------------------------------


def _label_encoder(model: _LinearModel) -> _LinearModel:
    """An unfitted copy of ``model`` (with ``classes_``): small to ship, encodes labels per chunk."""
    encoder = type(model)(**model.get_params())
    if hasattr(model, "classes_"):
        encoder.classes_ = model.classes_
    return encoder


@dataclass(frozen=True)
class _Spec:
    """The objective and kernel settings, shipped with every pass."""

    loss: Loss
    fit_intercept: bool
    n_samples: int  # n of the whole data set: chunk means are rescaled to it
    encoder: _LinearModel
    backend: str
    n_jobs: int

    @property
    def kernels(self):
        return get_backend(self.backend)


def _location(block_info) -> tuple[int, int]:
    start, stop = block_info[0]["array-location"][0]
    return int(start), int(stop)


def _chunk_inputs(spec: _Spec, X, y, s, start: int, stop: int):
    """(X, encoded y, weights | None) of one chunk, validated as the in-memory path validates."""
    where = f"[{start}:{stop}]"
    rows = stop - start
    X = V.check_matrix(X, f"X{where}")
    y = spec.encoder._encode_targets(np.asarray(y).reshape(-1), rows, f"y{where}")
    if s is not None:
        s = V.check_vector(np.asarray(s).reshape(-1), rows, f"sample_weight{where}")
        if np.any(s < 0):
            raise ValueError(f"sample_weight must be non-negative (rows {start}:{stop})")
    return X, y, s


def _shared(value):
    """``value`` as one graph key: computed here once, sent once to each worker that needs it."""
    return dask.delayed(value, pure=True)


def _map_rows(data: _Data, func, context, trailing: tuple, *, per_chunk: bool = False,
              dtype=np.float64) -> da.Array:
    """``func(X_chunk, y_chunk, s_chunk, context, block_info=...)`` for every row chunk.

    Output chunks: one block per row chunk, with the chunk's rows as the first
    axis (``per_chunk=False``) or a single row per chunk (``per_chunk=True``,
    for partial sums), followed by the fixed ``trailing`` shape.
    """
    if not trailing:
        # One value per row: computed as an (n_c, 1) column and viewed as (n,). (map_blocks'
        # drop_axis would concatenate X's single column block, copying every chunk.)
        return _map_rows(data, functools.partial(_as_column, func), context, (1,), per_chunk=per_chunk,
                         dtype=dtype)[:, 0]
    first = tuple(1 for _ in data.row_chunks) if per_chunk else data.row_chunks
    chunks = (first,) + tuple((t,) for t in trailing)
    ndim = 1 + len(trailing)
    kwargs = {"new_axis": list(range(2, ndim))} if ndim > 2 else {}
    return da.map_blocks(
        func, data.X, data.y, data.s, context, chunks=chunks, dtype=dtype,
        meta=np.empty((0,) * ndim, dtype=dtype), **kwargs,
    )


def _as_column(func, X, y, s, context, block_info=None):
    return func(X, y, s, context, block_info=block_info)[:, None]


def _compute(*collections):
    """Compute on the active scheduler (a distributed Client if one is set, else threads)."""
    return dask.compute(*collections)


# ---------------------------------------------------------------------------
# Passes that reduce: objective, gradient, Hessian, Hessian-vector products
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    """One evaluation within a pass: what to compute at theta."""

    theta: np.ndarray
    gradient: bool = True
    hessian: bool = False
    diagonal: bool = False  # diag of the data part of H (the Jacobi preconditioner)

    def size(self, p: int) -> int:
        return 1 + (p if self.gradient else 0) + (p * p if self.hessian else 0) + (p if self.diagonal else 0)


@dataclass
class _Evaluation:
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
    start, stop = _location(block_info)
    if stop == start:
        return out
    X, y, s = _chunk_inputs(spec, X, y, s, start, stop)
    k, fi, n_jobs = spec.kernels, spec.fit_intercept, spec.n_jobs
    # chunk means over n_c rows -> contributions to means over all n rows
    scale = (stop - start) / spec.n_samples
    pos = 0
    for r in requests:
        value, gradient, hessian = k.evaluate(spec.loss, X, y, s, r.theta, fi, 0.0, r.gradient, r.hessian,
                                              n_jobs)
        parts = [np.atleast_1d(value)]
        if r.gradient:
            parts.append(gradient)
        if r.hessian:
            parts.append(np.ravel(hessian))
        if r.diagonal:
            # c_i = s_i loss''_i / n_c, diag(Xa^T diag(c) Xa)
            c = k.curvature_weights(spec.loss, X, y, s, r.theta, fi, n_jobs)
            parts.append(k.gram_diagonal(X, fi, c, n_jobs))
        block = np.concatenate(parts)
        out[0, pos : pos + block.size] = scale * block
        pos += block.size
    out[0, -1] = (stop - start) if s is None else float(s.sum())
    return out


def _chunk_hessian_products(X, y, s, context, block_info=None):
    """(n_c/n) times the data part of H V over one chunk, flattened to a (1, p*k) row."""
    spec, theta, block = context["spec"], context["theta"], context["V"]
    start, stop = _location(block_info)
    if stop == start:
        return np.zeros((1, block.size))
    X, y, s = _chunk_inputs(spec, X, y, s, start, stop)
    HV = spec.kernels.hessian_vector_product(
        spec.loss, X, y, s, theta, spec.fit_intercept, 0.0, block, spec.n_jobs
    )
    return ((stop - start) / spec.n_samples * np.asarray(HV)).reshape(1, -1)


class _Objective:
    """R(theta) of the whole data set, evaluated by passes over the chunks."""

    def __init__(self, data: _Data, spec: _Spec, l2: float):
        self.data, self.spec, self.l2 = data, spec, float(l2)
        self.d = data.d
        self.n_params = data.d + (1 if spec.fit_intercept else 0)
        self.penalty = np.r_[np.ones(self.d), np.zeros(self.n_params - self.d)]  # l2 acts on w only
        self.passes = 0
        self.total_weight = None

    def evaluate(self, *requests: _Request) -> list[_Evaluation]:
        """One pass over the data for all ``requests``; the penalty is added here, once."""
        p = self.n_params
        parts = _map_rows(self.data, _chunk_moments, _shared({"spec": self.spec, "requests": requests}),
                          (sum(r.size(p) for r in requests) + 1,), per_chunk=True)
        (total,) = _compute(parts.sum(axis=0, split_every=SPLIT_EVERY))
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
            results.append(_Evaluation(value, gradient, hessian, diagonal))
        return results

    def hessian_products(self, theta: np.ndarray, block: np.ndarray) -> np.ndarray:
        """H(theta) V for a (p, k) block, in one pass (H never formed)."""
        block = np.asfortranarray(block, dtype=np.float64)
        context = _shared({"spec": self.spec, "theta": theta, "V": block})
        parts = _map_rows(self.data, _chunk_hessian_products, context, (block.size,), per_chunk=True)
        (total,) = _compute(parts.sum(axis=0, split_every=SPLIT_EVERY))
        self.passes += 1
        return total.reshape(block.shape) + self.l2 * self.penalty[:, None] * block


# ---------------------------------------------------------------------------
# Fitting: the in-memory iteration (fastinfluence.fitting) over passes on the chunks
# ---------------------------------------------------------------------------


def _poisson_summary(data: _Data) -> tuple[float, float]:
    """(lower bound of R: mean of s_i (y_i - y_i log y_i), the largest count), in one pass over y."""
    y = data.y[:, 0].astype(np.float64)
    infimum = y.map_blocks(lambda b: loss_infimum(Loss("poisson"), b), dtype=np.float64)
    if data.s is not None:
        infimum = infimum * data.s[:, 0]
    total, largest = _compute(infimum.sum(), y.max())
    return float(total) / data.n, float(largest)


class _FitObjective:
    """The :class:`fastinfluence.fitting.Objective` of the chunked data: one pass per evaluation,
    one pass per CG iteration (H V over every chunk)."""

    def __init__(self, objective: _Objective, lower_bound: float):
        self.objective, self.n_params, self.lower_bound = objective, objective.n_params, lower_bound

    def evaluate(self, theta, hessian):
        (ev,) = self.objective.evaluate(_Request(theta, True, hessian, False))
        return Evaluation(ev.value, ev.gradient, ev.hessian)

    def newton_cg(self, theta, rhs, tol, max_iter):
        (ev,) = self.objective.evaluate(_Request(theta, False, False, True))
        diag = ev.diagonal.copy()
        diag[: self.objective.d] += self.objective.l2
        damping = newton_cg_damping(diag)
        diag += damping
        inv_diag = np.where(diag > 0, 1.0 / np.where(diag > 0, diag, 1.0), 1.0)
        step, _, residual = conjugate_gradient(
            lambda B: self.objective.hessian_products(theta, B) + damping * B,
            rhs[:, None], inv_diag, None, tol, max_iter,
        )
        return step[:, 0], float(residual[0])


def _chunk_minimiser_check(X, y, s, context, block_info=None):
    """Whether the fitted theta separates one chunk's rows, as a (1, 1) object array: the message
    when it does, None when it does not, "" for an empty chunk (vacuously separated). theta
    separates the whole data exactly when it separates every chunk (the in-memory fit also
    solves a linear program for quasi-separation, which does not split over chunks)."""
    spec, result = context["spec"], context["result"]
    start, stop = _location(block_info)
    out = np.empty((1, 1), dtype=object)
    if stop == start:
        out[0, 0] = ""
        return out
    X, y, s = _chunk_inputs(spec, X, y, s, start, stop)
    separated = separated_at(spec.loss, X, y, s, np.asarray(result["theta"]), spec.fit_intercept)
    out[0, 0] = SEPARABLE_MESSAGE if separated else None
    return out


def fit(model, X, y, sample_weight=None, *, n_jobs=1):
    """Fit an unfitted fastinfluence model on row-chunked Dask data, to the same optimum as ``model.fit``.

    Parameters
    ----------
    model : LinearRegression, LogisticRegression, SmoothHingeClassifier or PoissonRegression
        Its options (``l2``, ``fit_intercept``, ``tol``, ``max_iter``, ``solver``, ``backend``) are
        used as in memory; ``solver="auto"`` is dense Newton up to 4096 parameters, Newton-CG above.
    X : dask array (n, d) chunked by rows, or dask DataFrame
        A DataFrame's columns other than the target (and weight) column are the features, in order.
    y : dask array or Series (n,), NumPy array, or the target column's name when X is a DataFrame
    sample_weight : like y, or None for all ones
    n_jobs : int
        Threads of the compiled kernel inside each Dask task (default 1: Dask runs the tasks in parallel).

    Returns
    -------
    model
        Fitted: ``theta_``, ``coef_``, ``intercept_``, ``n_iter_``, ... as after ``model.fit``
        (``feature_names_in_`` from a DataFrame's string column labels), and ``dask_passes_``,
        the number of passes over the data the fit made.

    Each Newton iteration is one pass over the data (the trial point's objective, gradient and
    Hessian, or Hessian diagonal for Newton-CG, from one fused kernel call per chunk, added by a
    tree reduction); a backtracking step costs one more pass. Newton-CG adds one pass per CG
    iteration (a Hessian-vector product over every chunk). Classifiers learn their classes in one
    pass over y first.
    """
    if not isinstance(model, _LinearModel):
        raise TypeError(f"model must be an unfitted fastinfluence model, got {type(model).__name__}")
    model._check_params()
    classifier = isinstance(model, _BinaryClassifier)
    data = _as_data(X, y, sample_weight, distinct_labels=classifier)
    if classifier:
        labels = data.labels if data.labels is not None else da.unique(data.y[:, 0]).compute()
        model._encode_targets(labels, labels.shape[0], "y", fitting=True)  # sets classes_, checks the labels
    spec = _Spec(model.loss, bool(model.fit_intercept), data.n, _label_encoder(model), model.backend,
                 V.check_n_jobs(n_jobs))
    objective = _Objective(data, spec, float(model.l2))
    p = objective.n_params
    lower_bound, largest_count = _poisson_summary(data) if model.loss.name == "poisson" else (0.0, None)
    result = minimise(_FitObjective(objective, lower_bound), np.zeros(p), tol=float(model.tol),
                      max_iter=int(model.max_iter), method=model._fit_method(p))
    if not objective.total_weight > 0:
        raise ValueError("sample_weight is zero everywhere")
    if float(model.l2) > 0 and model.fit_intercept and model.loss.name != "squared":
        # only the intercept is unpenalised: whether R has a minimiser is a look at the labels
        distinct = np.unique(labels) if classifier else np.array([largest_count])
        reason = intercept_only_reason(model.loss, model._encode_targets(distinct, distinct.size, "y"))
        if reason is not None:
            result = dict(result, converged=False, message=reason)
    if isinstance(model, _BinaryClassifier) and not float(model.l2) > 0:
        # l2 = 0 and every (weighted) point classified correctly: R has no minimiser. The data
        # are separable exactly when every chunk is, so the model's own check runs per chunk.
        context = _shared({"spec": spec, "result": result})
        checks = _map_rows(data, _chunk_minimiser_check, context, (1,), per_chunk=True, dtype=object)
        (messages,) = _compute(checks)
        messages = messages[:, 0]
        if all(message is not None for message in messages):
            result = dict(result, converged=False, message=next(m for m in messages if m))
    model._set_fit_result(result, data.d)
    names = D.feature_names(data.columns)
    if names is not None:  # as the in-memory fit on a frame does
        model.feature_names_in_ = names
    elif hasattr(model, "feature_names_in_"):
        del model.feature_names_in_
    model.dask_passes_ = objective.passes
    return model


# ---------------------------------------------------------------------------
# Solvers over the reduced Hessian
# ---------------------------------------------------------------------------


class _DaskHessianOperator(HessianOperator):
    """H + damping I at the fitted theta, applied by one pass over the chunks per block of columns.

    Shares :class:`fastinfluence.solvers.HessianOperator`'s ``dense`` and
    ``extreme_eigenvalues`` (Lanczos for p > 512: one pass per iteration).
    """

    def __init__(self, objective: _Objective, theta: np.ndarray, damping: float):
        self.objective, self.theta, self.damping = objective, theta, damping
        self.fit_intercept = objective.spec.fit_intercept
        self.l2 = objective.l2
        self.n_params = objective.n_params

    def matmat(self, V: np.ndarray) -> np.ndarray:
        V = np.asfortranarray(V, dtype=np.float64)
        HV = self.objective.hessian_products(self.theta, V)
        return HV + self.damping * V if self.damping else HV


class _DaskCGSolver(_IterativeSolver):
    """Jacobi-preconditioned CG on (H + damping I) V = B; each iteration is one pass for all columns."""

    name = "cg"

    def __init__(self, operator: _DaskHessianOperator, data_diagonal: np.ndarray, tol=1e-10, max_iter=1000,
                 preconditioner="jacobi"):
        super().__init__(operator)
        self.tol, self.max_iter, self.preconditioner = float(tol), int(max_iter), preconditioner
        diag = data_diagonal.copy()
        diag[: operator.objective.d] += operator.l2
        diag += operator.damping
        self._inv_diag = np.where(diag > 0, 1.0 / np.where(diag > 0, diag, 1.0), 1.0)

    def solve(self, B: np.ndarray, x0=None) -> np.ndarray:
        B = np.asarray(B, dtype=np.float64)
        vec = B.ndim == 1
        B2 = np.asfortranarray(B[:, None] if vec else B)
        inv_diag = self._inv_diag if self.preconditioner == "jacobi" else None
        V_, iterations, residual = conjugate_gradient(
            self.operator.matmat, B2, inv_diag, None if x0 is None else np.reshape(x0, B2.shape), self.tol,
            self.max_iter,
        )
        self.iterations_, self.residual_ = np.asarray(iterations), np.asarray(residual)
        unconverged = self.residual_ > self.tol
        if np.any(unconverged):
            warnings.warn(
                f"CG did not converge for {int(unconverged.sum())} of {unconverged.size} right-hand sides in "
                f"max_iter={self.max_iter} iterations (worst relative residual {self.residual_.max():.1e}, "
                f"tol {self.tol:.0e}). Raise max_iter, loosen tol, or add damping "
                "(Influence.hessian_spectrum() suggests one).",
                ConvergenceWarning,
                stacklevel=3,
            )
        return V_[:, 0] if vec else V_


# ---------------------------------------------------------------------------
# Per-row influence kernels, one call per chunk
# ---------------------------------------------------------------------------


def _chunk_derivatives(X, y, s, context, start, stop):
    """(X, loss', loss'', s) of one validated chunk at the fitted theta."""
    spec = context["spec"]
    X, y, s = _chunk_inputs(spec, X, y, s, start, stop)
    _, _, d1, d2 = spec.kernels.row_derivatives(spec.loss, X, y, context["theta"], spec.fit_intercept,
                                                spec.n_jobs)
    return X, d1, d2, (np.ones(stop - start) if s is None else s)


def _leverage(context, X, d2, s):
    """h_i = (s_i/n) loss''_i xa_i^T H^{-1} xa_i for the chunk's rows (context["A"] = H^{-1})."""
    spec = context["spec"]
    return s / spec.n_samples * d2 * spec.kernels.row_quadratic_forms(X, spec.fit_intercept, context["A"],
                                                                      spec.n_jobs)


def _removal_scale(context, X, d1, d2, s):
    """c_i with theta_{-i} - theta ~ c_i H^{-1} xa_i (influence), divided by 1 - h_i (Newton)."""
    spec = context["spec"]
    scale = s / spec.n_samples * d1
    if context["method"] == "newton":
        one_minus_h = 1.0 - _leverage(context, X, d2, s)
        risky = one_minus_h <= _LEVERAGE_FLOOR
        scale = np.where(risky, np.nan, scale / np.where(risky, 1.0, one_minus_h))
    return scale


def _chunk_row_products(X, y, s, context, block_info=None):
    """row_scale_i * (xa_i . M_j): the scoring product, (n_c, m), with the row scale named by context."""
    start, stop = _location(block_info)
    M = context["M"]
    if stop == start:
        return np.empty((0, M.shape[1]))
    spec = context["spec"]
    X, d1, d2, s = _chunk_derivatives(X, y, s, context, start, stop)
    kind = context["row_scale"]
    if kind == "minus_d1":  # I_up: -loss'_i
        row_scale = -d1
    else:  # "removal": leave-one-out
        row_scale = _removal_scale(context, X, d1, d2, s)
    return spec.kernels.scaled_row_products(X, spec.fit_intercept, row_scale, M, None, spec.n_jobs)


def _chunk_quadratic(X, y, s, context, block_info=None):
    """Self-influence -loss'^2 q_i or leverage (s_i/n) loss''_i q_i, q_i = xa_i^T H^{-1} xa_i, (n_c,)."""
    start, stop = _location(block_info)
    if stop == start:
        return np.empty(0)
    X, d1, d2, s = _chunk_derivatives(X, y, s, context, start, stop)
    if context["what"] == "self_influence":
        spec = context["spec"]
        return -(d1 * d1) * spec.kernels.row_quadratic_forms(X, spec.fit_intercept, context["A"], spec.n_jobs)
    return _leverage(context, X, d2, s)


def _chunk_risky_count(X, y, s, context, block_info=None):
    """Number of rows with leverage h_i >= 1 in the chunk, as a (1, 1) partial sum."""
    start, stop = _location(block_info)
    if stop == start:
        return np.zeros((1, 1))
    X, _, d2, s = _chunk_derivatives(X, y, s, context, start, stop)
    h = _leverage(context, X, d2, s)
    return np.full((1, 1), float(np.count_nonzero(1.0 - h <= _LEVERAGE_FLOOR)))


def _chunk_pert_loss(X, y, s, context, block_info=None):
    """I_pert,loss for the chunk's rows, (n_c, m, d)."""
    start, stop = _location(block_info)
    M = context["M"]
    if stop == start:
        return np.empty((0, M.shape[1], X.shape[1]))
    spec = context["spec"]
    X, d1, d2, _ = _chunk_derivatives(X, y, s, context, start, stop)
    return spec.kernels.perturbation_loss(X, spec.fit_intercept, d1, d2, M, context["w"], spec.n_jobs)


def _chunk_loo_newton(X, y, s, context, block_info=None):
    """loss(z_j, theta + delta_newton_i) - loss(z_j, theta) for the chunk's rows, (n_c, m)."""
    start, stop = _location(block_info)
    U = context["U"]
    if stop == start:
        return np.empty((0, U.shape[1]))
    spec = context["spec"]
    X, d1, d2, s = _chunk_derivatives(X, y, s, context, start, stop)
    scale = _removal_scale(context, X, d1, d2, s)
    return spec.kernels.loo_loss_change(spec.loss, X, spec.fit_intercept, scale, U, context["y_test"],
                                        context["eta_test"], None, spec.n_jobs)


def _chunk_top_k(X, y, s, context, block_info=None):
    """This chunk's k most helpful and most harmful rows per test point, packed (1, m, 4, k):
    global row numbers, helpful scores, rows, harmful scores; missing entries (a chunk with fewer
    than k rows) are row -1 with score +inf (helpful) or -inf (harmful), which sort last."""
    start, stop = _location(block_info)
    M, k = context["M"], context["k"]
    m = M.shape[1]
    out = np.empty((1, m, 4, k))
    out[0, :, 0], out[0, :, 1], out[0, :, 2], out[0, :, 3] = -1.0, np.inf, -1.0, -np.inf
    if stop == start:
        return out
    spec = context["spec"]
    X, d1, _, _ = _chunk_derivatives(X, y, s, context, start, stop)
    helpful_rows, helpful, harmful_rows, harmful = spec.kernels.top_k_scores(
        X, spec.fit_intercept, -d1, M, k, spec.n_jobs
    )
    found = np.asarray(helpful).shape[1]
    # chunk-local row numbers -> rows of the whole data set
    out[0, :, 0, :found] = np.asarray(helpful_rows) + start
    out[0, :, 1, :found] = helpful
    out[0, :, 2, :found] = np.asarray(harmful_rows) + start
    out[0, :, 3, :found] = harmful
    return out


def _merge_top_k(candidates, axis=None, keepdims=False):
    """Merge stacked (B, m, 4, k) candidate lists into the best k: scores ascending for helpful,
    descending for harmful, ties to the lower row (as the in-memory kernel orders them)."""
    B, m, _, k = candidates.shape
    merged = np.empty((m, 4, k))
    for rows_at, scores_at, sign in ((0, 1, 1.0), (2, 3, -1.0)):
        rows = np.moveaxis(candidates[:, :, rows_at, :], 0, 1).reshape(m, B * k)
        scores = np.moveaxis(candidates[:, :, scores_at, :], 0, 1).reshape(m, B * k)
        order = np.lexsort((rows, sign * scores), axis=1)[:, :k]
        merged[:, rows_at] = np.take_along_axis(rows, order, axis=1)
        merged[:, scores_at] = np.take_along_axis(scores, order, axis=1)
    return merged[None] if keepdims else merged


def _identity_chunk(block, axis=None, keepdims=False):
    return block


# ---------------------------------------------------------------------------
# Influence
# ---------------------------------------------------------------------------


class Influence:
    """Influence of training points on parameters and test losses, over row-chunked Dask data.

    The methods and their meanings are those of :class:`fastinfluence.Influence`
    (see its documentation for the formulas and signs); per-row results are
    lazy dask arrays chunked like X, so nothing of size n is held by the
    client: compute them, or store them (``to_zarr``, ``da.store``).

    Parameters
    ----------
    model : a fitted fastinfluence model (by :func:`fit` or in memory)
    X, y, sample_weight : as for :func:`fit`, the data the model was fitted on
    solver : {"direct", "cg", "auto"}
        ``"direct"`` reduces H (p x p) in the construction pass and factorises
        it on the client; ``"cg"`` never forms H: each CG iteration is one pass
        over the data for all right-hand sides. ``"auto"``: direct up to 4096
        parameters. LiSSA samples random rows, which chunked data make costly:
        use ``"cg"``.
    damping : float >= 0
        Added to the diagonal of H (Koh & Liang, section 4.2).
    backend : {"cpp", "numpy"}
        Kernels run per chunk.
    n_jobs : int
        Threads of the compiled kernel inside each Dask task (default 1).
    solver_options : dict or None
        CG options ``tol``, ``max_iter``, ``preconditioner``.

    Attributes
    ----------
    hessian_ : (p, p) Hessian of R at theta (without damping); None with ``"cg"``
    gradient_norm_ : ||grad R(theta)|| on the given data
    n_samples_, n_params_ : n and p
    solver_ : the solver (``iterations_`` and ``residual_`` of the last solve for CG)

    Construction costs one pass over the data (gradient at theta and at zero,
    and H or its diagonal); every quantity below is one more pass when computed.
    """

    def __init__(self, model, X, y, sample_weight=None, *, solver="direct", damping=0.0, backend="cpp",
                 n_jobs=1, solver_options=None):
        _check_model(model)
        if solver == "lissa":
            raise ValueError(
                "solver='lissa' is not available on Dask data: its random mini-batches read rows scattered "
                "over every chunk at each of thousands of steps. Use solver='cg' (matrix-free, one pass per "
                "iteration) or 'direct'."
            )
        self.model = model
        self.damping = V.check_nonnegative(damping, "damping")
        self.backend = backend
        get_backend(backend)
        self._data = _as_data(X, y, sample_weight)
        V.check_same_features(self._data.X, model.n_features_in_, "X")
        D.check_feature_names(getattr(model, "feature_names_in_", None), self._data.columns, "X")
        self.n_samples_ = self._data.n
        self._theta = np.asarray(model.theta_, dtype=np.float64)
        self.n_params_ = self._theta.shape[0]
        self.solver = resolve_solver(solver, self.n_params_)
        options = check_solver_options(self.solver, solver_options)
        self._spec = _Spec(model.loss, bool(model.fit_intercept), self.n_samples_, _label_encoder(model),
                           backend, V.check_n_jobs(n_jobs))
        self._objective = _Objective(self._data, self._spec, float(model.l2))
        direct = self.solver == "direct"
        at_theta, at_zero = self._objective.evaluate(
            _Request(self._theta, True, direct, not direct), _Request(np.zeros(self.n_params_))
        )
        if not self._objective.total_weight > 0:
            raise ValueError("sample_weight is zero everywhere")
        self.hessian_ = at_theta.hessian
        g = at_theta.gradient
        self.gradient_norm_ = float(np.linalg.norm(g))
        self._operator = _DaskHessianOperator(self._objective, self._theta, self.damping)
        if direct:
            self.solver_ = DirectSolver(self.hessian_, self.damping, get_backend(backend))
        else:
            self.solver_ = _DaskCGSolver(self._operator, at_theta.diagonal, **options)

        def diagonal():  # diag(H + damping I) from the pass above
            full = at_theta.diagonal + self.damping
            full[: self._data.d] += float(model.l2)
            return full

        self.newton_decrement_ = newton_decrement(g, self.solver_, diagonal)
        warn_if_not_at_optimum(self.newton_decrement_, max(float(at_zero.value), np.finfo(float).tiny),
                               stacklevel=2)
        self._client_kernels = get_backend(backend)
        self._inverse_factor = None
        self._risky_rows = None

    # -- helpers -------------------------------------------------------------------------------
    def _rows(self, indices) -> _Data:
        idx = V.check_indices(indices, self.n_samples_)
        return self._data if idx is None else self._data.select(idx)

    def _context(self, **arrays):
        """The spec, theta and the given client-side arrays as one shared graph key."""
        return _shared({"spec": self._spec, "theta": self._theta, **arrays})

    def _test_side(self, X_test, y_test):
        """(X_test, encoded y_test, eta_test, loss'_test), computed here on the client."""
        if dask.is_dask_collection(X_test):
            X_test = X_test.compute()
        if dask.is_dask_collection(y_test):
            y_test = y_test.compute()
        X_test = self.model._validate_features(X_test, "X_test")[0]  # arrays or in-memory frames
        y_test = self.model._encode_targets(y_test, X_test.shape[0], "y_test")
        eta, _, d1, _ = self._client_kernels.row_derivatives(self._spec.loss, X_test, y_test, self._theta,
                                                             self._spec.fit_intercept, 0)
        _check_finite_test_gradients(eta, d1, self._spec.loss.name)
        return X_test, y_test, eta, d1

    def _solved_test_gradients(self, X_test, y_test):
        """V = H^{-1} G_test, (p, m): every test gradient solved once, on the client."""
        X_test, _, _, d1 = self._test_side(X_test, y_test)
        G_test = V.augmented_transpose(X_test, d1, self._spec.fit_intercept)
        return np.asfortranarray(self.solver_.solve(G_test))

    def _quadratic_factor(self):
        """A with xa^T H^{-1} xa = ||A xa||^2: L^{-1} (H = L L^T), or from H^{-1} = C C^T for CG."""
        if self._inverse_factor is None:
            if hasattr(self.solver_, "inverse_factor"):
                factor = self.solver_.inverse_factor()
            else:
                factor = np.linalg.cholesky(self.solver_.inverse()).T
            self._inverse_factor = np.asfortranarray(factor)
        return self._inverse_factor

    def _check_method(self, method):
        if method not in LOO_METHODS:
            raise ValueError(f"method must be one of {LOO_METHODS}, got {method!r}")

    def _warn_leverage(self, method):
        """Newton estimates of rows with h_i >= 1 are NaN; say so, as in memory (one pass, once)."""
        if method != "newton":
            return
        if self._risky_rows is None:
            context = self._context(A=self._quadratic_factor())
            counts = _map_rows(self._data, _chunk_risky_count, context, (1,), per_chunk=True)
            self._risky_rows = int(counts.sum().compute())
        if self._risky_rows:
            warnings.warn(
                f"{self._risky_rows} training point(s) have leverage h_i >= 1: the objective without them "
                "has a singular Hessian, so their Newton estimates are set to NaN",
                LeverageWarning,
                stacklevel=3,
            )

    @property
    def loss_derivative_(self) -> da.Array:
        """loss'_i at the training points, (n,), lazy."""
        return self._derivative_array(0)

    @property
    def loss_second_derivative_(self) -> da.Array:
        """loss''_i at the training points, (n,), lazy."""
        return self._derivative_array(1)

    def _derivative_array(self, which):
        return _map_rows(self._data, _chunk_derivative_column, self._context(which=which), ())

    @property
    def passes_(self) -> int:
        """Passes over the data made so far by the construction and the solvers (not by lazy results)."""
        return self._objective.passes

    # -- public quantities ---------------------------------------------------------------------
    def params(self, indices=None) -> da.Array:
        """I_up,params(z_i) = -H^{-1} g_i, lazy (k, p) (k = n without ``indices``)."""
        context = self._context(M=np.asfortranarray(self.solver_.inverse()), row_scale="minus_d1")
        return _map_rows(self._rows(indices), _chunk_row_products, context, (self.n_params_,))

    def loss(self, X_test, y_test, indices=None, *, out=None):
        """I_up,loss(z_i, z_test_j) = -g_test_j^T H^{-1} g_i, lazy (k, m).

        Negative: upweighting z_i lowers the test loss (helpful); positive: harmful.
        The test gradients are solved once here; each chunk then needs one dense
        product. With ``out`` (a writable (k, m) float64 array, for example a
        ``numpy.memmap``) the result is stored into it by ``dask.array.store`` and
        ``out`` is returned.
        """
        M = self._solved_test_gradients(X_test, y_test)
        context = self._context(M=M, row_scale="minus_d1")
        result = _map_rows(self._rows(indices), _chunk_row_products, context, (M.shape[1],))
        if out is None:
            return result
        if not isinstance(out, np.ndarray) or out.shape != result.shape or out.dtype != np.float64:
            raise ValueError(f"out must be a float64 NumPy array (or numpy.memmap) of shape {result.shape}")
        da.store(result, out, lock=False)
        return out

    def top_k(self, X_test, y_test, k=10) -> TopK:
        """The k most helpful and k most harmful training points for each test point.

        One pass: the streaming top-k kernel runs per chunk (O(m k) memory each) and the
        candidates are merged by a tree reduction. Returns a :class:`fastinfluence.influence.TopK`
        with (m, min(k, n)) arrays, the same as the in-memory ``top_k``.
        """
        k = min(V.check_positive_int(k, "k", maximum=None), self.n_samples_)  # chunks allocate (m, 4, k)
        M = self._solved_test_gradients(X_test, y_test)
        m, kept = M.shape[1], k
        parts = _map_rows(self._data, _chunk_top_k, self._context(M=M, k=k), (m, 4, k), per_chunk=True)
        merged = da.reduction(
            parts, _identity_chunk, _merge_top_k, combine=_merge_top_k, axis=0, dtype=np.float64,
            split_every=SPLIT_EVERY, concatenate=True, meta=np.empty((0, 0, 0)),
        ).compute()[:, :, :kept]
        return TopK(merged[:, 0].astype(np.int64), merged[:, 1].copy(), merged[:, 2].astype(np.int64),
                    merged[:, 3].copy())

    def self_influence(self, indices=None) -> da.Array:
        """I_up,loss(z_i, z_i) = -g_i^T H^{-1} g_i <= 0, lazy (k,)."""
        context = self._context(A=self._quadratic_factor(), what="self_influence")
        return _map_rows(self._rows(indices), _chunk_quadratic, context, ())

    def leverage(self, indices=None) -> da.Array:
        """h_i = (s_i/n) loss''_i xa_i^T H^{-1} xa_i, lazy (k,)."""
        context = self._context(A=self._quadratic_factor(), what="leverage")
        return _map_rows(self._rows(indices), _chunk_quadratic, context, ())

    def pert_loss(self, X_test, y_test, indices=None) -> da.Array:
        """I_pert,loss(z_i, z_test_j), lazy (k, m, d)."""
        M = self._solved_test_gradients(X_test, y_test)
        d = self.model.n_features_in_
        context = self._context(M=M, w=self._theta[:d].copy())
        return _map_rows(self._rows(indices), _chunk_pert_loss, context, (M.shape[1], d))

    def loo_params(self, method="influence", indices=None) -> da.Array:
        """Estimated theta_{-i} - theta when z_i is removed, lazy (k, p).

        See :meth:`fastinfluence.Influence.loo_params`; Newton estimates of rows with h_i >= 1
        are NaN (a LeverageWarning says how many, after one pass to count them).
        """
        self._check_method(method)
        self._warn_leverage(method)
        A = self._quadratic_factor() if method == "newton" else None
        inverse = np.asfortranarray(self.solver_.inverse())
        context = self._context(M=inverse, row_scale="removal", method=method, A=A)
        return _map_rows(self._rows(indices), _chunk_row_products, context, (self.n_params_,))

    def loo(self, X_test, y_test, method="influence", indices=None) -> da.Array:
        """Estimated loss(z_j, theta_{-i}) - loss(z_j, theta), lazy (k, m).

        See :meth:`fastinfluence.Influence.loo`; ``method="newton"`` solves the test inputs once
        here, and gives NaN for rows with h_i >= 1, as in memory.
        """
        self._check_method(method)
        if method == "influence":
            M = self._solved_test_gradients(X_test, y_test)
            context = self._context(M=M, row_scale="removal", method=method, A=None)
            return _map_rows(self._rows(indices), _chunk_row_products, context, (M.shape[1],))
        X_test, y_test, eta_test, _ = self._test_side(X_test, y_test)
        self._warn_leverage(method)
        # U = H^{-1} Xa_test^T, so xa_test_j . delta_i = c_i xa_i . U_j
        U = np.asfortranarray(self.solver_.solve(
            V.augmented_transpose(X_test, np.ones(X_test.shape[0]), self._spec.fit_intercept)
        ))
        context = self._context(U=U, y_test=y_test, eta_test=eta_test, method=method,
                                A=self._quadratic_factor())
        return _map_rows(self._rows(indices), _chunk_loo_newton, context, (U.shape[1],))

    def hessian_spectrum(self) -> dict:
        """Extreme eigenvalues of H + damping I, its condition number and a suggested damping.

        Exact from the reduced H with the direct solver; otherwise from Hessian-vector
        passes (p of them in one pass for p <= 512, else Lanczos, one pass per iteration).
        """
        if self.hessian_ is not None:
            eig = np.linalg.eigvalsh(self.hessian_ + self.damping * np.eye(self.n_params_))
            return spectrum_summary(float(eig[0]), float(eig[-1]))
        return spectrum_summary(*self._operator.extreme_eigenvalues())


def _chunk_derivative_column(X, y, s, context, block_info=None):
    """loss'_i (which = 0) or loss''_i (which = 1) of the chunk's rows, (n_c,)."""
    start, stop = _location(block_info)
    if stop == start:
        return np.empty(0)
    _, d1, d2, _ = _chunk_derivatives(X, y, s, context, start, stop)
    return d1 if context["which"] == 0 else d2
