"""Input: a dask.array or dask.dataframe chunked by rows, or a numpy.memmap read in row chunks."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Literal

import dask
import dask.array as da
import numpy as np

from .. import _dataframes as D
from .. import _validation as V


@dataclass(frozen=True)
class Data:
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

    def select(self, idx: np.ndarray) -> Data:
        """The rows ``idx`` (in that order), still lazy."""
        return Data(self.X[idx], self.y[idx], None if self.s is None else self.s[idx], self.columns)


class _MemmapRows:
    """Rows of a read-only NumPy memory map, for ``dask.array.from_array`` without a copy.

    ``from_array`` copies array-likes that have a ``copy`` method (recent Dask), which
    for a memory map reads the whole file into memory; this view has none. It pickles
    as the file's path, offset, dtype, shape and order (so distributed workers reopen
    the file, which must be at the same path for them), never as the data.
    """

    filename: str
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]
    ndim: int
    order: Literal["C", "F"]
    _map: np.memmap

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
        self._map = np.memmap(
            self.filename, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape, order=self.order
        )


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
    chunk_rows = (
        max(1, MEMMAP_CHUNK_BYTES // row_bytes)
        if chunk_rows is None
        else V.check_positive_int(chunk_rows, "chunk_rows")
    )
    modified = os.stat(rows.filename).st_mtime_ns
    name = "memmap-" + dask.base.tokenize(
        rows.filename, rows.offset, str(rows.dtype), rows.shape, rows.order, modified
    )
    chunks = (chunk_rows, *(-1 for _ in array.shape[1:]))
    return da.from_array(rows, chunks=chunks, name=name, meta=np.empty((0,) * array.ndim, dtype=array.dtype))


def _dataframe_type(name: str):
    """dask.dataframe's DataFrame or Series class; None when dask.dataframe is not installed."""
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - dask[array] without dask[dataframe]
        return None
    return getattr(dd, name)


def _is_dataframe(obj) -> bool:
    return (
        dask.is_dask_collection(obj)
        and not isinstance(obj, da.Array)
        and ((cls := _dataframe_type("DataFrame")) is not None and isinstance(obj, cls))
    )


def _is_series(obj) -> bool:
    return (
        dask.is_dask_collection(obj)
        and not isinstance(obj, da.Array)
        and ((cls := _dataframe_type("Series")) is not None and isinstance(obj, cls))
    )


def _column(values, n: int, row_chunks, name: str) -> da.Array:
    """A per-row vector as an (n, 1) dask array with the given row chunks."""
    if _is_series(values):
        values = values.to_dask_array(lengths=True)
    elif dask.is_dask_collection(values):
        if not isinstance(values, da.Array):
            raise TypeError(
                f"{name} must be a dask array or Series, a NumPy array, or a column name; "
                f"got {type(values).__name__}"
            )
    else:
        arr = values if isinstance(values, np.memmap) else np.asarray(values)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(f"{name} has shape {arr.shape}, expected ({n},): one entry per row of X")
        if isinstance(arr, np.memmap):
            values = from_memmap(arr).rechunk((row_chunks, *((s,) for s in arr.shape[1:])))
        else:
            values = da.from_array(arr, chunks=(row_chunks, *((s,) for s in arr.shape[1:])))
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
    split = [
        dask.delayed(_frame_arrays, pure=True, nout=1 + len(named))(part, features, columns) for part in parts
    ]

    def stack(position, dtype, shape_tail):
        # dtype is the blocks' declared dtype (metadata); per-chunk validation checks the values
        blocks = [
            da.from_delayed(arrays[position], shape=(rows, *shape_tail), dtype=dtype)
            for arrays, rows in zip(split, lengths)
        ]
        return da.concatenate(blocks, axis=0)

    X = stack(0, dtype, (len(features),))
    for position, (column, name) in enumerate(columns, 1):
        if name == "y":
            y = stack(position, dtypes[column] if isinstance(dtypes[column], np.dtype) else object, ())
        else:
            sample_weight = stack(position, np.float64, ())
    return X, y, sample_weight, features, labels


def as_data(X, y, sample_weight, *, distinct_labels=False) -> Data:
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
    return Data(X, y, s, None if columns is None else tuple(columns), labels)
