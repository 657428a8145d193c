"""DataFrames in, labelled results out: the one place that decides what is a data frame.

pandas, polars and pyarrow are optional: an object is recognised by the module
its type (or a base class) comes from, so none of them is imported unless the
caller already holds one of their objects.

Recognised inputs
-----------------
==========================================  ===========================================
2-D (``X``)                                 1-D (``y``, ``sample_weight``)
==========================================  ===========================================
``pandas.DataFrame``                        ``pandas.Series``, ``pandas.Index``
``polars.DataFrame``                        ``polars.Series``
``pyarrow.Table``, ``pyarrow.RecordBatch``  ``pyarrow.Array``, ``pyarrow.ChunkedArray``
==========================================  ===========================================

(a one-column frame is also accepted where a 1-D vector is expected).

Conversion rules
----------------
- Every column of ``X`` must be numeric or boolean (a ``TypeError`` names the
  columns that are not); a missing value (NaN, None, ``pd.NA``, a polars or
  Arrow null) is a ``ValueError`` that names the columns and counts the rows,
  and so is an infinity. Both carry the argument's name (``X``, ``y``, ...) in
  ``argument``: see :class:`~fastinfluence.exceptions.InvalidArgumentError`.
- ``X`` becomes float32 when *every* column is float32, float64 otherwise
  (integers, booleans, nullable and Arrow-backed columns included).
- Row labels: a pandas index as it is; polars and pyarrow have none, so their
  rows are labelled by their numbers ``0 .. n-1``. Column labels are kept as
  given; they count as *feature names* (``feature_names_in_``) only when all are
  strings, as in scikit-learn.
- ``y`` and ``sample_weight`` are matched to the rows of ``X`` by position
  (their own index is not used for alignment, as in scikit-learn).

Labelled results are pandas objects (see :func:`label_matrix` and friends):
pandas is then needed even for polars or pyarrow input.
"""

from __future__ import annotations

import numpy as np

from ._optional import require
from .exceptions import InvalidArgumentTypeError, InvalidArgumentValueError

__all__ = [
    "is_dataframe",
    "is_series",
    "is_tabular",
    "pandas_series_index",
    "to_numpy_2d",
    "to_numpy_1d",
    "feature_names",
    "check_feature_names",
    "describe_columns",
    "describe_column_mismatch",
    "require_pandas",
    "take",
    "label_matrix",
    "label_vector",
    "label_params",
    "label_pert",
]

_LIBRARIES = ("pandas", "polars", "pyarrow")
# Rows converted or checked at a time when looking for bad columns: bounds temporaries.
_BLOCK_ROWS = 65536


# -- recognising frames ------------------------------------------------------------------------
def _library(obj) -> str | None:
    """The library ("pandas", "polars", "pyarrow") obj's type or a base class comes from, else None."""
    for cls in type(obj).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in _LIBRARIES:
            return root
    return None


def _kind(obj) -> tuple[str | None, str | None]:
    """(library, "frame" | "series" | None) without importing a library the caller did not use."""
    library = _library(obj)
    if library == "pandas":
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return library, "frame"
        if isinstance(obj, (pd.Series, pd.Index)):
            return library, "series"
    elif library == "polars":
        import polars as pl

        if isinstance(obj, pl.DataFrame):
            return library, "frame"
        if isinstance(obj, pl.Series):
            return library, "series"
        if isinstance(obj, pl.LazyFrame):
            raise TypeError("a polars LazyFrame cannot be used as data: call .collect() on it first")
    elif library == "pyarrow":
        import pyarrow as pa

        if isinstance(obj, (pa.Table, pa.RecordBatch)):
            return library, "frame"
        if isinstance(obj, (pa.Array, pa.ChunkedArray)):
            return library, "series"
    return library, None


def is_dataframe(obj) -> bool:
    """True for a pandas or polars DataFrame, a pyarrow Table or RecordBatch."""
    return _library(obj) is not None and _kind(obj)[1] == "frame"


def is_series(obj) -> bool:
    """True for a pandas Series or Index, a polars Series, a pyarrow Array or ChunkedArray."""
    return _library(obj) is not None and _kind(obj)[1] == "series"


def pandas_series_index(obj):
    """The index of a pandas Series (its labels), or None for anything else (arrays, other libraries'
    series, which have no labels of their own)."""
    if _library(obj) != "pandas":
        return None
    import pandas as pd

    return obj.index if isinstance(obj, pd.Series) else None


def is_tabular(obj) -> bool:
    """True for any of the frames or series this module converts."""
    return _library(obj) is not None and _kind(obj)[1] is not None


# -- 2-D: X ------------------------------------------------------------------------------------
def describe_columns(columns, limit=6) -> str:
    """Up to ``limit`` column labels, quoted: ``'a', 'b' and 3 more``."""
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def _non_numeric_error(name, bad) -> InvalidArgumentTypeError:
    kinds = ", ".join(f"{c!r} ({dtype})" for c, dtype in bad[:6]) + (
        f" and {len(bad) - 6} more" if len(bad) > 6 else ""
    )
    noun = "column" if len(bad) == 1 else "columns"
    return InvalidArgumentTypeError(
        name,
        f"must hold real numbers (numeric or boolean columns); non-numeric {noun}: {kinds}. "
        "Encode them as numbers first (for example one-hot for categories)",
    )


def _pandas_storage(dtype) -> np.dtype:
    """The NumPy dtype a pandas column holds its values in (nullable, Arrow and sparse included)."""
    inner = getattr(dtype, "numpy_dtype", None)
    inner = getattr(dtype, "subtype", None) if inner is None else inner  # SparseDtype
    try:
        return np.dtype(dtype if inner is None else inner)
    except TypeError:
        return np.dtype(object)


def _pandas_2d(df, name):
    from pandas.api import types as pdt

    columns = list(df.columns)
    bad = [
        (c, dtype)
        for c, dtype in zip(columns, df.dtypes)
        if not (pdt.is_bool_dtype(dtype) or pdt.is_numeric_dtype(dtype)) or pdt.is_complex_dtype(dtype)
    ]
    if bad:
        raise _non_numeric_error(name, bad)
    float32 = bool(columns) and all(_pandas_storage(dtype) == np.float32 for dtype in df.dtypes)
    target = np.float32 if float32 else np.float64
    extension = any(not isinstance(dtype, np.dtype) for dtype in df.dtypes)
    # nullable and Arrow-backed columns: missing values become NaN, reported below by column
    arr = df.to_numpy(dtype=target, na_value=np.nan) if extension else df.to_numpy(dtype=target)
    return arr, df.index, columns


def _polars_2d(df, name):
    import polars as pl

    columns = list(df.columns)
    bad = [(c, dtype) for c, dtype in df.schema.items() if not (dtype == pl.Boolean or dtype.is_numeric())]
    if bad:
        raise _non_numeric_error(name, bad)
    dtypes = list(df.schema.values())
    float32 = bool(dtypes) and all(dtype == pl.Float32 for dtype in dtypes)
    # nulls become NaN in a float column, reported below by column
    arr = df.select(pl.all().cast(pl.Float32 if float32 else pl.Float64)).to_numpy()
    return arr, range(df.height), columns


def _pyarrow_2d(table, name):
    import pyarrow as pa

    columns = list(table.schema.names)
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)
    bad = [(f.name, f.type) for f in table.schema if not any(test(f.type) for test in numeric)]
    if bad:
        raise _non_numeric_error(name, bad)
    types = [f.type for f in table.schema]
    float32 = bool(types) and all(t == pa.float32() for t in types)
    target = pa.float32() if float32 else pa.float64()
    arr = np.empty((table.num_rows, len(columns)), dtype=np.float32 if float32 else np.float64, order="F")
    for j in range(len(columns)):
        column = table.column(j).cast(target)
        # nulls become NaN in a float column, reported below by column
        arr[:, j] = _arrow_to_numpy(column)
    return arr, range(table.num_rows), columns


def _arrow_to_numpy(values) -> np.ndarray:
    """A pyarrow Array or ChunkedArray as NumPy (copied where it must be; float nulls become NaN)."""
    import pyarrow as pa

    if isinstance(values, pa.Array):
        return values.to_numpy(zero_copy_only=False)
    return values.to_numpy()


def _check_finite_columns(arr: np.ndarray, columns, name: str) -> None:
    """ValueError naming the columns with missing (NaN) or infinite values."""
    finite = np.ones(arr.shape[1], dtype=bool)
    for start in range(0, arr.shape[0], _BLOCK_ROWS):
        finite &= np.isfinite(arr[start : start + _BLOCK_ROWS]).all(axis=0)
    if finite.all():
        return
    missing, infinite = [], []
    for j in np.flatnonzero(~finite):
        n_nan = int(np.isnan(arr[:, j]).sum())
        if n_nan:
            missing.append(f"{columns[j]!r} ({n_nan} row{'s' if n_nan > 1 else ''})")
        if n_nan < arr.shape[0] and not np.isfinite(arr[:, j][~np.isnan(arr[:, j])]).all():
            infinite.append(columns[j])
    parts = []
    if missing:
        parts.append(
            f"missing values (NaN, None or NA) in column{'s' if len(missing) > 1 else ''} "
            + ", ".join(missing[:6])
            + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        )
    if infinite:
        parts.append(
            f"infinite values in column{'s' if len(infinite) > 1 else ''} {describe_columns(infinite)}"
        )
    raise InvalidArgumentValueError(name, "has " + " and ".join(parts) + "; fill or drop them first")


def to_numpy_2d(obj, name: str = "X"):
    """``(array, row_labels, columns)`` of a data frame; anything else comes back as ``(obj, None, None)``.

    ``array`` is a 2-D float32 (every column float32) or float64 array, C or
    Fortran order (a view of the frame's memory where the library allows);
    ``row_labels`` the pandas index, or ``range(n)`` for polars and pyarrow;
    ``columns`` the list of column labels as given. Raises ``TypeError`` for
    non-numeric columns and ``ValueError`` for missing or infinite values,
    naming the columns. Objects that are not frames are left to
    :func:`fastinfluence._validation.check_matrix`.
    """
    library, kind = _kind(obj)
    if kind is None:
        return obj, None, None
    if kind == "series":
        raise InvalidArgumentValueError(
            name,
            f"must be 2-D (n_samples, n_features): got a 1-D {type(obj).__name__}; "
            "for a single feature pass a one-column DataFrame",
        )
    assert library is not None  # a frame or series comes from one of the libraries
    convert = {"pandas": _pandas_2d, "polars": _polars_2d, "pyarrow": _pyarrow_2d}[library]
    arr, rows, columns = convert(obj, name)
    if arr.size:
        _check_finite_columns(arr, columns, name)
    return arr, rows, columns


# -- 1-D: y, sample_weight ---------------------------------------------------------------------
def _missing_error(name, count) -> InvalidArgumentValueError:
    return InvalidArgumentValueError(
        name, f"has missing values (NaN, None or NA) in {count} row{'s' if count > 1 else ''}"
    )


def _pandas_1d(series, name):
    import pandas as pd

    labels = series if isinstance(series, pd.Index) else series.index
    count = int(series.isna().sum())
    if count:
        raise _missing_error(name, count)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        values = np.asarray(series)  # the category values themselves
    elif getattr(dtype, "numpy_dtype", None) is not None and dtype.kind in "biuf":
        values = series.to_numpy(dtype=dtype.numpy_dtype)  # nullable or Arrow-backed numbers, no NA left
    else:
        values = series.to_numpy()
    return values, (range(len(series)) if isinstance(series, pd.Index) else labels)


def _polars_1d(series, name):
    count = int(series.null_count())
    if count:
        raise _missing_error(name, count)
    if series.dtype.is_float():
        count = int(series.is_nan().sum())
        if count:
            raise _missing_error(name, count)
    return series.to_numpy(), range(series.len())


def _pyarrow_1d(array, name):
    count = int(array.null_count)
    if count:
        raise _missing_error(name, count)
    return _arrow_to_numpy(array), range(len(array))


def _single_column(obj, library, name):
    n_columns = len(obj.columns) if library != "pyarrow" else obj.num_columns
    if n_columns != 1:
        raise InvalidArgumentValueError(
            name, f"must be 1-D: got a {type(obj).__name__} with {n_columns} columns"
        )
    if library == "pandas":
        return obj.iloc[:, 0]
    if library == "polars":
        return obj.to_series(0)
    return obj.column(0)


def to_numpy_1d(obj, name: str = "y"):
    """``(values, row_labels)`` of a series or one-column frame; anything else comes back as ``(obj, None)``.

    ``values`` keeps its kind (bool, integer, float, or strings and other
    objects, for class labels); validation of the values is the caller's
    (:func:`fastinfluence._validation.check_vector`). A missing value is a
    ``ValueError``. ``row_labels`` are the pandas index or ``range(n)``.
    """
    library, kind = _kind(obj)
    if kind is None:
        return obj, None
    if kind == "frame":
        obj = _single_column(obj, library, name)
    assert library is not None  # a frame or series comes from one of the libraries
    convert = {"pandas": _pandas_1d, "polars": _polars_1d, "pyarrow": _pyarrow_1d}[library]
    return convert(obj, name)


# -- feature names -----------------------------------------------------------------------------
def feature_names(columns) -> np.ndarray | None:
    """The column labels as an object array when all are strings (scikit-learn's rule), else None."""
    if columns is None or not columns or not all(isinstance(c, str) for c in columns):
        return None
    return np.asarray(columns, dtype=object)


def check_feature_names(fitted, columns, name: str) -> None:
    """ValueError unless ``columns`` are the fitted feature names, in the same order.

    Checked only when both sides have names (``fitted`` is the model's
    ``feature_names_in_`` or None): arrays, and frames without string column
    labels, are matched by position.
    """
    given = feature_names(columns)
    if fitted is None or given is None:
        return
    fitted_names = [str(c) for c in fitted]
    names = [str(c) for c in given]
    if names == fitted_names:
        return
    detail = describe_column_mismatch(
        fitted_names, names, lacking="the fitted columns", extra="columns the model was not fitted with:"
    )
    if detail is None:
        detail = (
            f"has the fitted columns in another order ({describe_columns(names)} instead of "
            f"{describe_columns(fitted_names)}); reorder them, "
            f"e.g. {name}[model.feature_names_in_] for pandas"
        )
    raise InvalidArgumentValueError(
        name,
        f"{detail}. Its feature names must match those seen in fit, in the same order.\n"
        + _sklearn_feature_names_message(fitted_names, names),
    )


def _sklearn_feature_names_message(fitted: list, given: list) -> str:
    """The mismatch in scikit-learn's words (``validate_data``'s; tools and its estimator checks
    look for them): the names unseen at fit time, then those missing, five of each at most."""

    def listed(names):
        return "".join(f"- {c}\n" for c in names[:5]) + ("- ...\n" if len(names) > 5 else "")

    unseen = sorted(set(given) - set(fitted))
    missing = sorted(set(fitted) - set(given))
    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    return message


def describe_column_mismatch(expected, given, *, lacking: str, extra: str) -> str | None:
    """``"lacks {lacking} 'a' and has {extra} 'b'"``: the labels of ``expected`` that ``given`` lacks
    and those of ``given`` not in ``expected``, each in its own order; None when both hold the same
    labels (in any order)."""
    missing = [c for c in expected if c not in given]
    unseen = [c for c in given if c not in expected]
    parts = []
    if missing:
        parts.append(f"lacks {lacking} {describe_columns(missing)}")
    if unseen:
        parts.append(f"has {extra} {describe_columns(unseen)}")
    return " and ".join(parts) or None


# -- labelled results --------------------------------------------------------------------------
def require_pandas(why: str = "labelled results"):
    """The pandas module, or an ImportError that says why it is needed."""
    return require(
        "pandas",
        extra="cli",
        purpose=f"{why} (pandas objects; pass NumPy arrays, for example "
        "X.to_numpy(), to get NumPy arrays back)",
    )


def _index(labels, name: str | tuple | None = None):
    """``labels`` (a pandas Index, a range, or tuples for a MultiIndex) as a pandas Index named
    ``name`` (a tuple of names for a MultiIndex)."""
    pd = require_pandas()
    index = labels if isinstance(labels, pd.Index) else pd.Index(labels)
    if isinstance(index, pd.MultiIndex):
        return index.set_names(list(name)) if isinstance(name, tuple) else index
    if name is not None:
        index = index.rename(name)
    return index


def take(labels, indices):
    """The labels of the selected rows (``indices``: positions, or None for all)."""
    if labels is None or indices is None:
        return labels
    if isinstance(labels, range):
        return np.asarray(labels)[indices]
    return labels.take(indices)


def label_matrix(
    values, train_labels, column_labels, column_name: str | tuple = "test_row", row_name: str = "train_row"
):
    """A (k, c) result as a DataFrame: index ``row_name`` (training rows, or candidate rows), columns
    ``column_name`` (test points or the columns of a target)."""
    pd = require_pandas()
    column_labels = range(values.shape[1]) if column_labels is None else column_labels
    return pd.DataFrame(
        values, index=_index(train_labels, row_name), columns=_index(column_labels, column_name), copy=False
    )


def label_vector(values, train_labels, name: str, row_name: str = "train_row"):
    """A (k,) result as a Series named ``name``, indexed by ``row_name``."""
    pd = require_pandas()
    return pd.Series(values, index=_index(train_labels, row_name), name=name, copy=False)


def label_params(
    values, train_labels, columns, fit_intercept: bool, classes=None, row_name: str = "train_row"
):
    """A (k, p) parameter result: index ``row_name``, one column per feature (+ ``"intercept"``);
    with ``classes`` (a multinomial model), ``(class, feature)`` columns, class by class."""
    pd = require_pandas()
    names = list(columns) + (["intercept"] if fit_intercept else [])
    if classes is not None:
        columns_index = pd.MultiIndex.from_product([list(classes), names], names=["class", "feature"])
    else:
        columns_index = pd.Index(names)
    return pd.DataFrame(values, index=_index(train_labels, row_name), columns=columns_index, copy=False)


def label_pert(values, train_labels, test_labels, columns):
    """A (k, m, d) result as a DataFrame with a (train_row, test_row) MultiIndex and feature columns."""
    pd = require_pandas()
    k, m, d = values.shape
    test_labels = range(m) if test_labels is None else test_labels
    rows = pd.MultiIndex.from_product(
        [_index(train_labels), _index(test_labels)], names=["train_row", "test_row"]
    )
    return pd.DataFrame(values.reshape(k * m, d), index=rows, columns=pd.Index(list(columns)), copy=False)
