"""Checks at the boundary: every public entry point validates here before a
kernel runs, with messages that name the argument and say what was expected.

Data frames (pandas, polars, pyarrow) are converted by
:mod:`fastinfluence._dataframes`, the one module that decides what a frame is;
entry points that label their results call it first to keep the labels.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _dataframes as D

try:  # SciPy is a dependency; the guard keeps this module importable on its own
    from scipy import sparse as _scipy_sparse
except ImportError:  # pragma: no cover
    _scipy_sparse = None

# Rows checked for finiteness at a time: bounds the temporary boolean array.
_FINITE_CHECK_ROWS = 65536


def _all_finite(a: np.ndarray) -> bool:
    if a.ndim < 2 or a.shape[0] <= _FINITE_CHECK_ROWS:
        return bool(np.isfinite(a).all())
    return all(
        bool(np.isfinite(a[i : i + _FINITE_CHECK_ROWS]).all()) for i in range(0, a.shape[0], _FINITE_CHECK_ROWS)
    )


def is_sparse(X) -> bool:
    """True for SciPy sparse matrices and arrays (any format)."""
    return _scipy_sparse is not None and _scipy_sparse.issparse(X)


def check_matrix(X, name: str = "X", *, allow_empty: bool = False):
    """X as the kernels take it, after checks; copied only when it must be.

    Dense input becomes a 2-D float32/float64 array in C or F order (float32
    stays float32: the kernels accumulate in double; integers, bools and other
    real dtypes become float64). Sparse input becomes a canonical CSR matrix:
    CSR (``csr_matrix`` or ``csr_array``) is used as is; CSC, COO and the other
    formats are converted once (``tocsr``: O(nnz) time and a copy of the
    data); unsorted or duplicate indices are fixed on a copy; indices and
    indptr are given one integer type (int32 or int64). The caller's object is
    never modified. Data frames are converted by
    :func:`fastinfluence._dataframes.to_numpy_2d` (numeric columns only).
    """
    X = D.to_numpy_2d(X, name)[0]
    if is_sparse(X):
        return _check_sparse_matrix(X, name, allow_empty)
    try:
        arr = np.asarray(X)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} could not be converted to a NumPy array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features), got shape {arr.shape}")
    if not allow_empty and (arr.shape[0] == 0 or arr.shape[1] == 0):
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    if not _all_finite(arr):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _check_sparse_matrix(X, name, allow_empty):
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {X.shape}")
    if not allow_empty and (X.shape[0] == 0 or X.shape[1] == 0):
        raise ValueError(f"{name} is empty: shape {X.shape}")
    dtype = X.dtype
    if dtype == object or not (np.issubdtype(dtype, np.number) or dtype == bool) or np.issubdtype(
        dtype, np.complexfloating
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    csr = X if X.format == "csr" else X.tocsr()  # CSC/COO/...: one conversion
    copied = csr is not X
    if csr.dtype not in (np.float32, np.float64):
        csr = csr.astype(np.float64)
        copied = True
    if not csr.has_canonical_format:  # unsorted or duplicate column indices
        csr = csr.copy() if not copied else csr
        csr.sum_duplicates()
        copied = True
    if csr.indices.dtype != csr.indptr.dtype or csr.indices.dtype not in (np.int32, np.int64):
        csr = csr.copy() if not copied else csr
        csr.indices = csr.indices.astype(np.int64)
        csr.indptr = csr.indptr.astype(np.int64)
    if not np.isfinite(csr.data).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return csr


def check_1d(v, n: int | None, name: str) -> np.ndarray:
    """``v`` as a non-empty 1-D array of length n, of any dtype (series and column vectors flattened)."""
    v = D.to_numpy_1d(v, name)[0]
    try:
        arr = np.asarray(v)
    except Exception as exc:  # pragma: no cover
        raise TypeError(f"{name} could not be converted to a NumPy array: {exc}") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries, expected {n} (one per row of X)")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return arr


def check_vector(v, n: int | None, name: str) -> np.ndarray:
    """A 1-D finite float64 vector of length n (a copy, so callers may encode in place)."""
    arr = check_1d(v, n, name)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    out = np.array(arr, dtype=np.float64, copy=True)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return out


def check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """None, or a finite non-negative float64 vector of length n that is not all zero."""
    if sample_weight is None:
        return None
    s = check_vector(sample_weight, n, "sample_weight")
    if np.any(s < 0):
        raise ValueError("sample_weight must be non-negative")
    if not np.any(s > 0):
        raise ValueError("sample_weight is zero everywhere")
    return s


def check_indices(indices, n: int, name: str = "indices") -> np.ndarray | None:
    """None (all rows), or an int64 array of row numbers in [0, n)."""
    if indices is None:
        return None
    arr = np.asarray(indices)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of row numbers, got shape {arr.shape}")
    if arr.dtype == bool:
        raise TypeError(f"{name} must hold integer row numbers, not a boolean mask (use np.flatnonzero(mask))")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer row numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name} must lie in [0, {n}); got values from {arr.min()} to {arr.max()}")
    return arr


def check_nonnegative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_n_jobs(n_jobs) -> int:
    """0 means every core (the C++ default); a positive count is used as is; -1 is every core."""
    if n_jobs is None or n_jobs == -1:
        return 0
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs < 1:
        raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {n_jobs!r}")
    return int(n_jobs)


def check_same_features(X: np.ndarray, n_features: int, name: str) -> None:
    if X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features, but the model was fitted with {n_features}")


def linear_predictor(X, theta: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """eta = X w + b for dense or sparse X, in float64."""
    d = X.shape[1]
    eta = X @ theta[:d] if is_sparse(X) else np.asarray(X, dtype=np.float64) @ theta[:d]
    eta = np.asarray(eta, dtype=np.float64).reshape(-1)
    return eta + theta[d] if fit_intercept else eta


def augmented_transpose(X, row_scale: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """The dense (p, m) matrix whose column j is row_scale_j * xa_j (xa = (x, 1))."""
    if is_sparse(X):
        top = (X.T @ _scipy_sparse.diags(row_scale)).toarray()
    else:
        top = np.asarray(X, dtype=np.float64).T * row_scale
    return np.vstack([top, row_scale[None, :]]) if fit_intercept else np.asarray(top)
