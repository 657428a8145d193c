"""Checks at the boundary: every public entry point validates here before a
kernel runs, with messages that name the argument and say what was expected."""

from __future__ import annotations

import numbers

import numpy as np

# Rows checked for finiteness at a time: bounds the temporary boolean array.
_FINITE_CHECK_ROWS = 65536


def _all_finite(a: np.ndarray) -> bool:
    if a.ndim < 2 or a.shape[0] <= _FINITE_CHECK_ROWS:
        return bool(np.isfinite(a).all())
    return all(
        bool(np.isfinite(a[i : i + _FINITE_CHECK_ROWS]).all()) for i in range(0, a.shape[0], _FINITE_CHECK_ROWS)
    )


def check_matrix(X, name: str = "X", *, allow_empty: bool = False) -> np.ndarray:
    """A 2-D float32/float64 array in C or F order, finite; copied only when it must be.

    float32 stays float32 (the kernels accumulate in double). Integers, bools
    and other real dtypes become float64. The caller's array is never modified.
    """
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{name} is a sparse matrix; pass a dense NumPy array")
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


def check_vector(v, n: int | None, name: str) -> np.ndarray:
    """A 1-D finite float64 vector of length n (a copy, so callers may encode in place)."""
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
