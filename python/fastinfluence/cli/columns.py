"""Which columns of ``score``'s input files the model sees, and how they become numbers.

- The target (--target) and the row ids (--id-column) are not features. The features are the
  columns --features names, or else every other column but those --drop names.
- Numeric columns are standardised by default (--standardize): centred on their --train mean
  and divided by their --train standard deviation, as scikit-learn's StandardScaler does. With
  --no-intercept they are only divided by their root mean square, because centring would change
  the model (it would add an intercept). A column constant in --train is only centred.
- Boolean columns become 0/1, as they are.
- Text and categorical columns, and numeric ones named in --categorical, are one-hot encoded:
  one 0/1 column per value seen in --train, named ``COLUMN=VALUE``, sorted, and
  ``COLUMN=<missing>`` when --train has missing values there (so missing is a value of its own,
  as in scikit-learn's OneHotEncoder). A value of --test not seen in --train sets none of the
  column's indicators, with a warning. One-hot columns are not standardised.
- A column that looks like a row id is not used as a feature silently: by its name (``id``,
  ``ID``, ``patient_id``, ``customerId``, ``index``, pandas' ``Unnamed: 0``...) it is refused
  unless --features names it; holding a different whole number in every row, it is used with a
  warning (counts can do that too).

The encoding is fitted on --train and applied unchanged to --test (:class:`Encoding`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import _dataframes as D
from .errors import InputError, InputWarning

__all__ = [
    "looks_like_id",
    "Selection",
    "select_columns",
    "check_test_columns",
    "check_ids",
    "FeatureColumn",
    "Encoding",
    "fit_encoding",
    "scale_problem",
    "MISSING_LEVEL",
]

#: The name of the one-hot column of missing values: ``COLUMN=<missing>``.
MISSING_LEVEL = "<missing>"

#: Names a row id goes by: id, ID, idx, index, row, uuid, pandas' Unnamed: 0 (a CSV's unnamed first
#: column, often an index written by ``to_csv``), ...
_ID_NAME = re.compile(r"(?i:id|idx|index|row|rownum|row_?(?:number|id)|uuid|guid|unnamed: ?\d+)")
#: ... and names that end in one: patient_id, patient-id, patient.id, patient id, patientId, PatientID.
_ID_SUFFIX = re.compile(r".+[_\-. ](?i:id|idx)|.*[a-z0-9](?:Id|ID)")

#: A text column with a different value in each of at least this many rows is a name or an id.
_DISTINCT_TEXT_MIN_ROWS = 20
#: A numeric column with a different whole number in each of at least this many rows looks like an id.
_DISTINCT_INTEGER_MIN_ROWS = 20


def looks_like_id(name: str) -> bool:
    """Whether a column's name is one a row id goes by (``id``, ``patient_id``, ``customerId``...)."""
    return bool(_ID_NAME.fullmatch(name) or _ID_SUFFIX.fullmatch(name))


# -- which columns -----------------------------------------------------------------------------


@dataclass
class Selection:
    """The columns of a run: ``features`` in file order (or --features order), the ``id_column``,
    the columns to one-hot encode although numeric (``categorical``), and the ``ignored`` columns
    with the reason for each."""

    target: str
    features: list[str]
    id_column: str | None = None
    categorical: set[str] = field(default_factory=set)
    explicit: set[str] = field(default_factory=set)
    ignored: dict[str, str] = field(default_factory=dict)


def _unique(names):
    return list(dict.fromkeys(names))


def _check_named(columns, option, names, target, id_column, where):
    for name in names:
        if name not in columns:
            raise InputError(
                f"{option} {name!r}: {where} has no such column; "
                f"its columns are {D.describe_columns(columns)}"
            )
        if name == target:
            raise InputError(f"{option} names the --target column {name!r}; the target is never a feature")
        if name == id_column:
            raise InputError(f"{option} names the --id-column {name!r}; the row ids are never a feature")


def _id_suspect_error(name, where):
    return InputError(
        f"column {name!r} of {where} looks like a row id (by its name), not a feature; say what it is: "
        f"--id-column {name!r} (carried into the outputs), --drop {name!r}, or name it in --features "
        "to use it as a feature"
    )


def select_columns(frame, args, where) -> Selection:
    """The columns of --train that the run uses, from --target, --id-column, --features, --drop
    and --categorical; an InputError names the option and the column that is wrong."""
    columns = list(frame.columns)
    target = args.target
    if target not in columns:
        raise InputError(
            f"{where} has no column {target!r} (--target); its columns are {D.describe_columns(columns)}"
        )
    id_column = args.id_column
    if id_column is not None:
        if id_column == target:
            raise InputError(f"--id-column and --target name the same column {target!r}")
        _check_named(columns, "--id-column", [id_column], target, None, where)
    chosen, dropped, categorical = (
        _unique(getattr(args, name) or []) for name in ("features", "drop", "categorical")
    )
    for option, names in (("--features", chosen), ("--drop", dropped), ("--categorical", categorical)):
        _check_named(columns, option, names, target, id_column, where)
    if chosen:
        features = chosen
        ignored = {
            c: "not in --features" for c in columns if c not in chosen and c not in (target, id_column)
        }
    else:
        features = [c for c in columns if c not in (target, id_column) and c not in dropped]
        ignored = dict.fromkeys(dropped, "--drop")
    if id_column is not None:
        ignored = {id_column: "--id-column", **ignored}
    for name in categorical:
        if name not in features:
            raise InputError(f"--categorical {name!r} is not a feature column of this run ({ignored[name]})")
    if not features:
        raise InputError(f"{where} has no feature columns besides the target {target!r}")
    explicit = set(chosen) | set(categorical)
    for name in features:
        if name not in explicit and looks_like_id(name):
            raise _id_suspect_error(name, where)
    return Selection(target, features, id_column, set(categorical), explicit, ignored)


def check_ids(frame, id_column, where):
    """Warn when the --id-column of a table repeats a value or misses one: the row numbers
    (train_row, test_row) still tell the rows apart, the ids do not."""
    ids = frame[id_column]
    missing = int(ids.isna().sum())
    repeated = ids[ids.duplicated(keep=False) & ids.notna()]
    if not missing and repeated.empty:
        return
    parts = []
    if not repeated.empty:
        counts = repeated.value_counts()
        parts.append(
            f"repeats {len(counts)} value{'s' if len(counts) > 1 else ''} (such as {counts.index[0]!r}, "
            f"in {int(counts.iloc[0])} rows)"
        )
    if missing:
        parts.append(f"is missing in {missing} row{'s' if missing > 1 else ''}")
    warnings.warn(
        f"--id-column {id_column!r} of {where} {' and '.join(parts)}; the row numbers in the outputs still "
        "tell the rows apart",
        InputWarning,
        stacklevel=2,
    )


def check_test_columns(frame, train_columns, selection, where):
    """--test must hold every column the run uses, and no column that --train lacks."""
    needed = [*selection.features, selection.target]
    if selection.id_column is not None:
        needed.append(selection.id_column)
    given = [c for c in frame.columns if c in needed or c not in train_columns]
    mismatch = D.describe_column_mismatch(
        needed, given, lacking="training columns", extra="columns not in --train:"
    )
    if mismatch is not None:
        raise InputError(f"{where} {mismatch}")


# -- how each column is encoded ----------------------------------------------------------------


def _level_text(value) -> str:
    """A one-hot level as it appears in a column name: 3.0 as 3, text as it is."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _plain(value):
    """A level as JSON takes it (NumPy scalars as Python numbers; anything else as text)."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # JSON has no inf
    return value if isinstance(value, (str, int, float, bool)) else str(value)


@dataclass
class FeatureColumn:
    """How one input column becomes model columns.

    ``kind`` is ``"numeric"`` (``(x - center) / scale``), ``"boolean"`` (0/1) or ``"one-hot"``
    (one indicator per value of ``levels``, then one for missing values when ``missing_level``).
    """

    name: str
    kind: str
    center: float = 0.0
    scale: float = 1.0
    levels: list = field(default_factory=list)
    missing_level: bool = False

    @property
    def encoded_names(self) -> list[str]:
        if self.kind != "one-hot":
            return [self.name]
        names = [f"{self.name}={_level_text(v)}" for v in self.levels]
        return names + ([f"{self.name}={MISSING_LEVEL}"] if self.missing_level else [])

    def as_dict(self) -> dict:
        out: dict = {"column": self.name, "kind": self.kind, "encoded": self.encoded_names}
        if self.kind == "numeric":
            out.update(center=self.center, scale=self.scale)
        if self.kind == "one-hot":
            out.update(levels=[_plain(v) for v in self.levels], missing_level=self.missing_level)
        return out


def _pandas_types():
    from pandas.api import types

    return types


def _column_kind(series, name, forced, where) -> str:
    """ "numeric", "boolean" or "one-hot" for a column; an InputError for dates, times and complex numbers."""
    import pandas as pd

    types = _pandas_types()
    dtype = series.dtype
    if forced or isinstance(dtype, pd.CategoricalDtype):
        return "one-hot"
    if types.is_bool_dtype(dtype):
        return "boolean"
    if (
        types.is_complex_dtype(dtype)
        or types.is_datetime64_any_dtype(dtype)
        or types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype))
    ):
        raise InputError(
            f"column {name!r} of {where} holds {dtype} values, which are neither numbers nor categories: "
            f"convert it to numbers (a date to days since a start, say) or --drop {name!r}"
        )
    return "numeric" if types.is_numeric_dtype(dtype) else "one-hot"


def _sorted_levels(values) -> list:
    try:
        return sorted(values)
    except TypeError:  # values of several types: sorted by their text
        return sorted(values, key=repr)


def _check_text_column(series, present, levels, name, where):
    """Refuse text columns that are not categories: numbers written as text, names and ids."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype) or not present.size:
        return  # declared categorical in the file
    numbers = _numbers(present)
    if numbers.mean() >= 0.5:
        others = _not_numbers(series)
        what = (
            f"{int(numbers.sum())} of its {present.size} values are numbers (not numbers: "
            f"{', '.join(repr(v) for v in others[:4])}{', ...' if len(others) > 4 else ''})"
            if others
            else "every value is a number written as text"
        )
        raise InputError(
            f"column {name!r} of {where} is text, but {what}; to use it as a number, fix those values "
            f"(missing numbers are refused too); to one-hot encode it, name it in --categorical; or --drop "
            f"{name!r}"
        )
    if len(levels) == len(series) >= _DISTINCT_TEXT_MIN_ROWS:
        raise InputError(
            f"column {name!r} of {where} holds a different value in each of its {len(series)} rows, as a "
            f"name or an id does, not a category: --id-column {name!r} (carried into the outputs), "
            f"--drop {name!r}, or name it in --categorical to one-hot encode it anyway"
        )


def _fit_one_hot(series, name, forced, max_categories, where) -> FeatureColumn:
    import pandas as pd

    missing = series.isna().to_numpy()
    present = series.to_numpy(dtype=object)[~missing]
    levels = _sorted_levels(pd.unique(present).tolist())
    if not forced:
        _check_text_column(series, present, levels, name, where)
    if len(levels) > max_categories:
        raise InputError(
            f"column {name!r} of {where} has {len(levels)} distinct values; one-hot encoding it would add "
            f"a column for each, above --max-categories {max_categories}: --drop {name!r}, or raise "
            "--max-categories"
        )
    return FeatureColumn(name, "one-hot", levels=levels, missing_level=bool(missing.any()))


def _numeric_values(frame, names, argument) -> np.ndarray:
    """The columns ``names`` as float64, checked for missing and infinite values by the library
    (its error names the column; ``argument`` is ``X`` or ``X_test``)."""
    if not names:
        return np.empty((len(frame), 0))
    return np.asarray(D.to_numpy_2d(frame[names], argument)[0], dtype=np.float64)


def _warn_distinct_integers(values, columns, where):
    """Warn of numeric columns with a different whole number in every row, as row ids have."""
    n = values.shape[0]
    if n < _DISTINCT_INTEGER_MIN_ROWS:
        return
    for j, column in enumerate(columns):
        v = values[:, j]
        if np.all(v == np.rint(v)) and np.unique(v).size == n:
            warnings.warn(
                f"column {column.name!r} of {where} holds a different whole number in each of its {n} "
                f"rows, as a row id does; it is used as a feature (if it is an id: --id-column "
                f"{column.name!r} or --drop {column.name!r}; name it in --features to silence this)",
                InputWarning,
                stacklevel=2,
            )


def _standardise(columns, values, center):
    """Set ``center`` and ``scale`` of the numeric ``columns`` from their --train ``values``."""
    mean = values.mean(axis=0)
    if center:
        spread = values.std(axis=0)
        constant = ~(spread > 64 * np.finfo(np.float64).eps * np.abs(mean))  # rounding noise is no spread
    else:
        spread = np.sqrt(np.mean(values * values, axis=0))
        constant = ~(spread > 0)
    for j, column in enumerate(columns):
        column.center = float(mean[j]) if center else 0.0
        column.scale = 1.0 if constant[j] else float(spread[j])


def _numbers(values) -> np.ndarray:
    """Which of the (object) ``values`` are numbers or numbers written as text; booleans are not."""
    import pandas as pd

    parsed = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").notna().to_numpy()
    return parsed & np.array([not isinstance(v, (bool, np.bool_)) for v in values], dtype=bool)


def _not_numbers(series) -> list[str]:
    """The distinct values of a column that are not numbers, as text, sorted."""
    present = series.dropna().to_numpy(dtype=object)
    return _sorted_levels({str(v) for v in present[~_numbers(present)]})


def _check_still_numeric(frame, columns, where):
    """A column numeric in --train must be numeric in --test: a value like '?' makes a CSV column text."""
    types = _pandas_types()
    for column in columns:
        dtype = frame[column.name].dtype
        if types.is_bool_dtype(dtype) or (
            types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype)
        ):
            continue
        others = _not_numbers(frame[column.name])
        shown = ", ".join(repr(v) for v in others[:4]) + (", ..." if len(others) > 4 else "")
        raise InputError(
            f"column {column.name!r} of {where} is not numeric ({dtype}: {shown or 'no numbers'}), but it is "
            f"in --train: fix those values (missing values are refused too), or --drop {column.name!r}"
        )


class Encoding:
    """The model columns of a run: each input feature column encoded (see the module's docstring);
    ``fit_encoding`` fits it on --train, :meth:`transform` applies it to a table."""

    def __init__(self, columns: list[FeatureColumn], standardized: bool, centered: bool):
        self.columns = columns
        self.standardized = standardized
        self.centered = standardized and centered

    @property
    def names(self) -> list[str]:
        """The model columns' names, in order: numeric and boolean columns keep their name, a
        one-hot column ``C`` becomes ``C=VALUE`` ... (and ``C=<missing>``)."""
        return [name for column in self.columns for name in column.encoded_names]

    def of_kind(self, kind) -> list[FeatureColumn]:
        return [c for c in self.columns if c.kind == kind]

    def transform(self, frame, argument, where) -> np.ndarray:
        """The (n, p) float64 model matrix of ``frame``; missing or infinite numbers are an error
        naming the column (``argument``: ``X`` or ``X_test``), unseen levels a warning."""
        numbers = [c for c in self.columns if c.kind != "one-hot"]
        _check_still_numeric(frame, numbers, where)
        values = _numeric_values(frame, [c.name for c in numbers], argument)
        out = np.zeros((len(frame), len(self.names)))
        position, j = 0, 0
        for column in self.columns:
            width = len(column.encoded_names)
            if column.kind == "one-hot":
                out[:, position : position + width] = self._one_hot(column, frame[column.name], where)
            else:
                out[:, position] = (values[:, j] - column.center) / column.scale
                j += 1
            position += width
        return out

    @staticmethod
    def _one_hot(column, series, where) -> np.ndarray:
        import pandas as pd

        missing = series.isna().to_numpy()
        codes = pd.Index(column.levels, dtype=object).get_indexer(series.to_numpy(dtype=object))
        codes[missing] = -1
        block = np.zeros((len(series), len(column.encoded_names)))
        seen = codes >= 0
        block[np.flatnonzero(seen), codes[seen]] = 1.0
        if column.missing_level:
            block[missing, -1] = 1.0
        unseen = ~seen & (~missing if column.missing_level else np.ones_like(missing))
        if unseen.any():
            values = series.to_numpy(dtype=object)[unseen & ~missing]
            shown = [repr(v) for v in _sorted_levels({_level_text(v) for v in values})]
            if (unseen & missing).any():
                shown.append("missing values")
            count = int(unseen.sum())
            warnings.warn(
                f"column {column.name!r} of {where} has values not seen in --train in {count} "
                f"row{'s' if count > 1 else ''} ({', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''}); "
                "those rows get 0 in every one-hot column of it (no level)",
                InputWarning,
                stacklevel=3,
            )
        return block

    def describe(self) -> list[str]:
        """What was done to the columns, one line per kind (for stderr)."""
        lines = []
        numeric, boolean = self.of_kind("numeric"), self.of_kind("boolean")
        if numeric:
            if not self.standardized:
                how = "as they are (--no-standardize)"
            elif self.centered:
                how = "standardised: (x - mean) / standard deviation, of --train"
            else:
                how = "divided by their root mean square in --train (--no-intercept: not centred)"

            lines.append(f"numeric: {D.describe_columns([c.name for c in numeric])}, {how}")
        if boolean:
            lines.append(f"boolean (0/1): {D.describe_columns([c.name for c in boolean])}")
        for column in self.of_kind("one-hot"):
            levels = [repr(name.split("=", 1)[1]) for name in column.encoded_names]
            shown = ", ".join(levels[:6]) + (", ..." if len(levels) > 6 else "")
            lines.append(f"one-hot: {column.name!r} -> {len(levels)} columns {column.name}=VALUE ({shown})")
        return lines

    def as_dict(self) -> dict:
        return {
            "standardize": self.standardized,
            "centered": self.centered,
            "columns": [c.as_dict() for c in self.columns],
            "model_columns": self.names,
        }


def fit_encoding(frame, selection, *, standardize, center, max_categories, where) -> Encoding:
    """The :class:`Encoding` of the selected feature columns, fitted on the --train table ``frame``.

    ``center``: whether standardising centres the columns (with an intercept). Missing or
    infinite values in numeric columns are the library's error (argument ``X``).
    """
    columns = []
    for name in selection.features:
        series = frame[name]
        forced = name in selection.categorical
        kind = _column_kind(series, name, forced, where)
        if kind == "one-hot":
            columns.append(_fit_one_hot(series, name, forced, max_categories, where))
        else:
            columns.append(FeatureColumn(name, kind))
    numeric = [c for c in columns if c.kind == "numeric"]
    values = _numeric_values(frame, [c.name for c in numeric], "X")
    _numeric_values(frame, [c.name for c in columns if c.kind == "boolean"], "X")  # missing values
    implicit = [j for j, c in enumerate(numeric) if c.name not in selection.explicit]
    _warn_distinct_integers(values[:, implicit], [numeric[j] for j in implicit], where)
    if standardize and numeric:
        _standardise(numeric, values, center)
    return Encoding(columns, bool(standardize), bool(center))


# -- when the scale of the data is the problem ---------------------------------------------------


def scale_problem(frame, encoding, fit_intercept) -> str | None:
    """What is wrong with the scales of the numeric feature columns of --train (``frame``), when
    unstandardised: a column whose values vary little around a large value (nearly constant
    beside the intercept), or column magnitudes that differ by more than 1e4. None when neither."""
    numeric = encoding.of_kind("numeric")
    values = _numeric_values(frame, [c.name for c in numeric], "X")
    if not values.shape[1]:
        return None
    mean, std = values.mean(axis=0), values.std(axis=0)
    size = np.sqrt(mean * mean + std * std)
    varies = std > 64 * np.finfo(np.float64).eps * np.abs(mean)
    if not varies.any():
        return None
    problems = []
    if fit_intercept:
        offset = np.where(varies, np.abs(mean) / np.where(varies, std, 1.0), 0.0)
        j = int(np.argmax(offset))
        if offset[j] > 1e3:
            problems.append(
                f"column {numeric[j].name!r} varies by {std[j]:.3g} (standard deviation) around "
                f"{mean[j]:.6g}, so it is nearly constant beside the intercept"
            )
    sizes = np.where(varies, size, np.nan)
    small, large = int(np.nanargmin(sizes)), int(np.nanargmax(sizes))
    if sizes[large] > 1e4 * sizes[small]:
        problems.append(
            f"the columns' magnitudes differ by a factor {sizes[large] / sizes[small]:.1e} "
            f"({numeric[small].name!r} about {sizes[small]:.2g}, {numeric[large].name!r} about "
            f"{sizes[large]:.2g})"
        )
    return "; ".join(problems) or None
