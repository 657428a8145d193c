"""Checks at the boundary: every public entry point validates here before a
kernel runs, with messages that name the argument and say what was expected.

Data frames (pandas, polars, pyarrow) are converted by
:mod:`fastinfluence._dataframes`, the one module that decides what a frame is;
entry points that label their results call it first to keep the labels.

Every check raises :class:`~fastinfluence.exceptions.InvalidArgumentValueError` or
:class:`~fastinfluence.exceptions.InvalidArgumentTypeError` (a ``ValueError`` or ``TypeError``
whose ``argument`` names the argument that failed and whose message starts with that name).
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from . import _dataframes as D
from .exceptions import ComplexDataError, InvalidArgumentTypeError, InvalidArgumentValueError

try:  # SciPy is a dependency; the guard keeps this module importable on its own
    from scipy import sparse as _scipy_sparse
except ImportError:  # pragma: no cover
    _scipy_sparse = None

#: Largest magnitude accepted in X, X_test and sample_weight. The kernels multiply two
#: features and a weight (the Hessian's s_i loss''_i x_ij x_ik) and square gradients in
#: norms; past ~1e154 (the square root of the largest double) one square overflows and
#: every influence value comes out NaN. At 1e64 a weight times two features stays below
#: 1e192 and a gradient's squared norm below 1e256 * loss'^2: room for sums over many rows.
MAX_MAGNITUDE = 1e64

#: Largest C ``int``: the compiled core takes iteration counts, LiSSA's depth and
#: repeats, and thread counts as ``int``.
INT_MAX = 2**31 - 1

#: Largest unsigned 64-bit integer: the LiSSA seed's range.
UINT64_MAX = 2**64 - 1

# Stored entries of a sparse matrix checked for sorted indices at a time (bounds the temporaries).
_SPARSE_CHECK_ENTRIES = 1 << 20


# Values from which the compiled core's one parallel pass is worth a call.
_PARALLEL_CHECK_VALUES = 1 << 16


def _magnitude(a: np.ndarray) -> float:
    """max |a| (0 for an empty array); NaN when a holds NaN, inf when it holds an infinity.

    No temporary array: for a large contiguous float array, one parallel pass of the
    backend; otherwise two NumPy reductions (max and min, which propagate NaN).
    """
    if a.size == 0:
        return 0.0
    from .backends import get_backend

    if (
        a.size >= _PARALLEL_CHECK_VALUES
        and a.dtype in (np.float32, np.float64)
        and (a.flags.c_contiguous or a.flags.f_contiguous)
    ):
        return float(get_backend("auto").max_abs(a.ravel(order="K")))
    return get_backend("numpy").max_abs(a)


def _check_values(a: np.ndarray, name: str, what: str = "the features") -> None:
    """ValueError unless every entry of ``a`` is finite and at most MAX_MAGNITUDE in magnitude."""
    largest = _magnitude(a)
    if not math.isfinite(largest):
        raise InvalidArgumentValueError(name, "contains NaN or infinity")
    if largest > MAX_MAGNITUDE:
        raise InvalidArgumentValueError(
            name,
            f"has values up to {largest:.1e} in magnitude, above {MAX_MAGNITUDE:.0e}: the products "
            f"the kernels form (two features times a weight, squared gradients) would overflow double "
            f"precision and every influence value would be NaN. Rescale {what}",
        )


def check_not_masked(value, name: str) -> None:
    """Refuse a NumPy masked array that has masked entries: the kernels read every value, mask or not."""
    if isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):
        raise InvalidArgumentValueError(
            name,
            f"is a masked array with {int(np.ma.count_masked(value))} masked entries; fastinfluence "
            f"would read the values under the mask. Fill them ({name}.filled(value)) "
            "or drop those rows first",
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

    Values must be finite and at most :data:`MAX_MAGNITUDE` (1e64) in
    magnitude; masked arrays with masked entries are refused. The structure of
    sparse input (index ranges, ``indptr``) is checked in O(nnz), whatever
    SciPy's cached flags say.
    """
    check_not_masked(X, name)
    X = D.to_numpy_2d(X, name)[0]
    if is_sparse(X):
        return _check_sparse_matrix(X, name, allow_empty)
    try:
        arr = np.asarray(X)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InvalidArgumentTypeError(name, f"could not be converted to a NumPy array: {exc}") from None
    arr = _real_dtype(arr, name)
    if arr.ndim != 2:
        hint = (
            ". Reshape your data: X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single sample"
            if arr.ndim == 1
            else ""
        )
        raise InvalidArgumentValueError(
            name, f"must be a 2-D array (n_samples, n_features), got shape {arr.shape}{hint}"
        )
    if not allow_empty:
        check_not_empty(arr.shape, name)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    _check_values(arr, name)
    return arr


def check_not_empty(shape: tuple, name: str) -> None:
    """ValueError when an (n, d) shape has no rows or no columns (in scikit-learn's words, which its
    estimator checks look for)."""
    for axis, what in ((0, "sample"), (1, "feature")):
        if shape[axis] == 0:
            raise InvalidArgumentValueError(
                name, f"is empty: 0 {what}(s) (shape={tuple(shape)}) while a minimum of 1 is required."
            )


def _dtype_error(name: str, dtype) -> InvalidArgumentTypeError:
    if np.issubdtype(dtype, np.complexfloating):  # scikit-learn's estimator checks want a ValueError
        return ComplexDataError(
            name,
            f"must hold real numbers, got dtype {dtype}. Complex data not supported: pass the real "
            "part (.real) if the imaginary parts are zero",
        )
    return InvalidArgumentTypeError(name, f"must hold real numbers, got dtype {dtype}")


def _real_dtype(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` unchanged when it holds real numbers or booleans; an object array of numbers as
    float64 (a copy); otherwise a TypeError (a ValueError too for complex numbers)."""
    if arr.dtype == object:
        values = arr.ravel().tolist()
        if any(v is None for v in values):
            raise InvalidArgumentValueError(name, "has missing values (None) in an object array")
        if any(isinstance(v, (complex, np.complexfloating)) for v in values):
            raise _dtype_error(name, np.dtype(complex))
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError) as exc:  # strings, dicts, ...: NumPy says which
            raise InvalidArgumentTypeError(
                name, f"must hold real numbers; its object entries could not be converted ({exc})"
            ) from None
    if np.issubdtype(arr.dtype, np.complexfloating) or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ):
        raise _dtype_error(name, arr.dtype)
    return arr


def _check_sparse_matrix(X, name, allow_empty):
    if X.ndim != 2:
        raise InvalidArgumentValueError(name, f"must be 2-D, got shape {X.shape}")
    if not allow_empty:
        check_not_empty(X.shape, name)
    dtype = X.dtype
    if (
        dtype.kind == "O"
        or not (np.issubdtype(dtype, np.number) or dtype.kind == "b")
        or np.issubdtype(dtype, np.complexfloating)
    ):
        raise _dtype_error(name, dtype)
    _check_sparse_structure(X, name)  # before SciPy's conversions or the kernels read the index arrays
    csr = X if X.format == "csr" else X.tocsr()  # CSC/COO/...: one conversion
    copied = csr is not X
    if X.format not in ("csr", "csc", "coo"):  # LIL, DOK, ...: the conversion's result is checked
        _check_sparse_structure(csr, name)
    nnz = int(csr.indptr[-1])
    data, indices, indptr = csr.data, csr.indices, csr.indptr
    if (
        data.shape[0] != nnz
        or indices.shape[0] != nnz
        or not (data.flags.c_contiguous and indices.flags.c_contiguous and indptr.flags.c_contiguous)
        or indices.dtype != indptr.dtype
        or indices.dtype not in (np.int32, np.int64)
    ):
        # entries past indptr[-1] dropped, strided arrays made contiguous, one index type: a new
        # matrix over the (possibly shared) arrays, so nothing below may work in place on it
        index_dtype = np.int32 if indices.dtype == indptr.dtype == np.int32 else np.int64
        csr = type(csr)(
            (
                np.ascontiguousarray(data[:nnz]),
                np.ascontiguousarray(indices[:nnz], dtype=index_dtype),
                np.ascontiguousarray(indptr, dtype=index_dtype),
            ),
            shape=csr.shape,
        )
        copied = False
    if csr.dtype not in (np.float32, np.float64):
        csr = csr.astype(np.float64)
        copied = True
    if not _has_canonical_indices(csr.indptr, csr.indices):  # unsorted or duplicate column indices
        csr = csr.copy() if not copied else csr
        csr.sum_duplicates()
    _check_values(csr.data, name)
    return csr


def _check_sparse_structure(X, name) -> None:
    """Refuse CSR, CSC and COO matrices whose index arrays do not describe their shape, in O(nnz).

    SciPy checks them when a matrix is built, not when ``.indices``, ``.indptr``
    or ``.data`` are assigned later; the kernels (and SciPy's own conversions)
    would then read or write outside the buffers, or drop entries silently.
    """
    fmt = X.format
    what = f"is a malformed {fmt.upper()} matrix"  # after the name, in every message
    if fmt == "coo":
        n_rows, n_cols = X.shape
        n_entries = _index_array(X.data, name, what, ".data", integer=False).shape[0]
        for attr, bound, unit in (("row", n_rows, "row"), ("col", n_cols, "column")):
            index = _index_array(getattr(X, attr), name, what, f".{attr}")
            if index.shape[0] != n_entries:
                raise InvalidArgumentValueError(
                    name, f"{what}: .{attr} has {index.shape[0]} entries, .data has {n_entries}"
                )
            _check_index_range(index, bound, name, what, f".{attr}", unit)
        return
    if fmt not in ("csr", "csc"):
        return  # other formats: their conversion to CSR is checked
    n_major, n_minor = X.shape if fmt == "csr" else X.shape[::-1]
    major, minor = ("row", "column") if fmt == "csr" else ("column", "row")
    indptr = _index_array(X.indptr, name, what, ".indptr")
    indices = _index_array(X.indices, name, what, ".indices")
    data = _index_array(X.data, name, what, ".data", integer=False)
    if indptr.shape[0] != n_major + 1:
        raise InvalidArgumentValueError(
            name,
            f"{what}: .indptr has {indptr.shape[0]} entries, expected {n_major + 1} "
            f"(one per {major}, plus one)",
        )
    if indptr[0] != 0:
        raise InvalidArgumentValueError(name, f"{what}: .indptr must start at 0, got {indptr[0]}")
    falls = np.flatnonzero(indptr[1:] < indptr[:-1])
    if falls.size:
        i = int(falls[0])
        raise InvalidArgumentValueError(
            name,
            f"{what}: .indptr must be non-decreasing; it falls from {indptr[i]} to {indptr[i + 1]} "
            f"at {major} {i}",
        )
    nnz = int(indptr[-1])
    if indices.shape[0] < nnz or data.shape[0] < nnz:
        raise InvalidArgumentValueError(
            name,
            f"{what}: .indptr ends at {nnz} stored entries, but .indices has {indices.shape[0]} and .data "
            f"{data.shape[0]}",
        )
    _check_index_range(indices[:nnz], n_minor, name, what, ".indices", minor)


def _index_array(a, name: str, what: str, attr: str, *, integer: bool = True) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim != 1 or (integer and not np.issubdtype(a.dtype, np.integer)):
        kind = "integer " if integer else ""
        shown = f"shape {a.shape}, dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise InvalidArgumentTypeError(name, f"{what}: {attr} must be a 1-D {kind}NumPy array, got {shown}")
    return a


def _check_index_range(index: np.ndarray, bound: int, name: str, what: str, attr: str, unit: str) -> None:
    if index.size == 0:
        return
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= bound:
        raise InvalidArgumentValueError(
            name, f"{what}: {attr} must hold {unit} numbers in [0, {bound}); got values from {lo} to {hi}"
        )


def _has_canonical_indices(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Whether the column indices increase strictly within every row (sorted, no duplicates).

    Computed in O(nnz), in blocks that bound the temporaries: SciPy's cached
    ``has_canonical_format`` is not trusted, as it is not updated when
    ``.indices`` is assigned (and may be set by hand).
    """
    nnz = int(indptr[-1])
    for a in range(0, nnz - 1, _SPARSE_CHECK_ENTRIES):
        b = min(a + _SPARSE_CHECK_ENTRIES, nnz - 1)
        rising = indices[a + 1 : b + 1] > indices[a:b]  # entry j + 1 against entry j, for j in [a, b)
        # an entry that starts a row may lie below its predecessor
        starts = indptr[np.searchsorted(indptr, a + 1) : np.searchsorted(indptr, b, side="right")]
        rising[starts - (a + 1)] = True
        if not rising.all():
            return False
    return True


def check_1d(v, n: int | None, name: str) -> np.ndarray:
    """``v`` as a non-empty 1-D array of length n, of any dtype (series and column vectors flattened)."""
    v = D.to_numpy_1d(v, name)[0]
    try:
        arr = np.asarray(v)
    except Exception as exc:  # pragma: no cover
        raise InvalidArgumentTypeError(name, f"could not be converted to a NumPy array: {exc}") from None
    check_not_masked(v, name)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise InvalidArgumentValueError(name, f"must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InvalidArgumentValueError(name, f"has {arr.shape[0]} entries, expected {n} (one per row of X)")
    if arr.shape[0] == 0:
        raise InvalidArgumentValueError(name, "is empty")
    return arr


def check_vector(v, n: int | None, name: str) -> np.ndarray:
    """A 1-D finite float64 vector of length n (a copy, so callers may encode in place)."""
    arr = check_1d(v, n, name)
    real = _real_dtype(arr, name)
    out = real if real is not arr else np.array(arr, dtype=np.float64, copy=True)
    if not np.isfinite(out).all():
        raise InvalidArgumentValueError(name, "contains NaN or infinity")
    return out


def check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """None, or a finite non-negative float64 vector of length n that is not all zero, at most
    :data:`MAX_MAGNITUDE` (weights of 1e307 overflow the weighted sums to inf)."""
    if sample_weight is None:
        return None
    s = check_vector(sample_weight, n, "sample_weight")
    if np.any(s < 0):
        raise InvalidArgumentValueError("sample_weight", "must be non-negative")
    if not np.any(s > 0):
        raise InvalidArgumentValueError("sample_weight", "is zero everywhere")
    _check_values(
        s, "sample_weight", "the weights: dividing them and l2 by one constant leaves the optimum unchanged"
    )
    return s


def check_indices(indices, n: int, name: str = "indices") -> np.ndarray | None:
    """None (all rows), or an int64 array of row numbers in [0, n)."""
    if indices is None:
        return None
    arr = np.asarray(indices)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InvalidArgumentValueError(name, f"must be a 1-D sequence of row numbers, got shape {arr.shape}")
    if arr.dtype == bool:
        raise InvalidArgumentTypeError(
            name, "must hold integer row numbers, not a boolean mask (use np.flatnonzero(mask))"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidArgumentTypeError(name, f"must hold integer row numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise InvalidArgumentValueError(
            name, f"must lie in [0, {n}); got values from {arr.min()} to {arr.max()}"
        )
    return arr


def _real(value, name: str, expected: str) -> float:
    """``value`` as a float: TypeError unless it is a real number (Python or NumPy, not bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentTypeError(name, f"must be a real number {expected}, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an integer beyond the float range
        return -math.inf if value < 0 else math.inf


def check_nonnegative(value, name: str) -> float:
    """A finite real number >= 0 as a float (NumPy scalars accepted; NaN and infinities refused)."""
    number = _real(value, name, ">= 0")
    if not math.isfinite(number):
        raise InvalidArgumentValueError(name, f"must be a finite number >= 0, got {value!r}")
    if number < 0:
        raise InvalidArgumentValueError(name, f"must be >= 0, got {value!r}")
    return number


def check_positive_finite(value, name: str) -> float:
    """A finite real number > 0 as a float (NumPy scalars accepted; NaN and infinities refused:
    guards written ``value > 0`` let NaN through to the kernels)."""
    number = _real(value, name, "> 0")
    if not (math.isfinite(number) and number > 0):
        raise InvalidArgumentValueError(name, f"must be a finite number > 0, got {value!r}")
    return number


def check_positive_int(value, name: str, maximum: int | None = INT_MAX) -> int:
    """An integer in [1, maximum] (default: the C ``int`` range the compiled core takes; None: no bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidArgumentValueError(name, f"must be a positive integer, got {value!r}")
    count = int(value)  # exact for any Integral
    if maximum is not None and count > maximum:
        raise InvalidArgumentValueError(
            name, f"must be a positive integer of at most {maximum}, got {value!r}"
        )
    return count


def check_nonnegative_int(value, name: str, maximum: int = UINT64_MAX) -> int:
    """An integer in [0, maximum] (default: the unsigned 64-bit range of the LiSSA seed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidArgumentValueError(name, f"must be a non-negative integer, got {value!r}")
    count = int(value)  # exact for any Integral
    if count > maximum:
        raise InvalidArgumentValueError(
            name, f"must be a non-negative integer of at most {maximum}, got {value!r}"
        )
    return count


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "process_cpu_count"):  # Python >= 3.13
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS, Windows before 3.13
        count = os.cpu_count()
    return max(1, count or 1)


def check_n_jobs(n_jobs) -> int:
    """The thread count for the compiled kernels: 0 (every core, the C++ default) for None or -1, else
    a positive count, lowered to :func:`available_cores` when it asks for more.

    More threads than cores cannot speed up the CPU-bound kernels, and the kernels size per-thread
    buffers by the count asked for (``n_jobs=10**7`` once allocated gigabytes), so larger counts are
    clamped rather than refused; results do not depend on the thread count. The cores counted are
    those of the process that checks ``n_jobs``: for :mod:`fastinfluence.dask`, the client's.
    """
    if n_jobs is None:
        return 0
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or (n_jobs < 1 and n_jobs != -1):
        raise InvalidArgumentValueError("n_jobs", f"must be None, -1 or a positive integer, got {n_jobs!r}")
    if n_jobs == -1:
        return 0
    return min(int(n_jobs), available_cores())


def check_out_overlap(out: np.ndarray, inputs: dict) -> None:
    """ValueError when ``out`` shares memory with one of ``inputs`` (name -> array, sparse matrix,
    frame or None): the kernel would overwrite values it has still to read, and the caller's input."""
    for name, value in inputs.items():
        for buffer in _buffers(value):
            if np.shares_memory(out, buffer):
                raise InvalidArgumentValueError(
                    "out",
                    f"shares memory with {name}: writing the result would overwrite the input while "
                    "it is read. Pass an array that does not overlap the inputs as out",
                )


def _buffers(value) -> list:
    """The NumPy arrays holding ``value``'s numbers (none for None or objects without an array view)."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return [value]
    if is_sparse(value):
        return [
            getattr(value, a)
            for a in ("data", "indices", "indptr", "row", "col")
            if isinstance(getattr(value, a, None), np.ndarray)
        ]
    if hasattr(value, "__array__"):  # frames: their block, where NumPy gets a view of it
        try:
            return [np.asarray(value)]
        except Exception:  # pragma: no cover - objects NumPy cannot read are no threat to out
            return []
    return []


def check_same_features(X: np.ndarray, n_features: int, name: str, owner: str = "the model") -> None:
    """ValueError unless X has the ``n_features`` columns the model (named ``owner``) was fitted with."""
    if X.shape[1] != n_features:
        raise InvalidArgumentValueError(
            name,
            f"has {X.shape[1]} features, but {owner} is expecting {n_features} features as input (the "
            "number it was fitted with)",
        )


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
