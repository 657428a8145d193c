"""pandas, polars and pyarrow input; labelled results; class names as labels.

The reference for every value is the array path: a frame is first checked to
convert to exactly the training array's values, then every quantity computed
from the frame must equal, bit for bit, the same quantity computed from the
converted array (the layout of an array changes rounding, so against the
original C-order array the agreement is to 1e-12 only).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import L2, assert_close, make_data

import fastinfluence as fi
from fastinfluence import _dataframes as D

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")

COLUMNS = ["age", "dose", "score"]
N, M = 40, 5
TRAIN_LABELS = [f"row_{i}" for i in range(N)]
TEST_LABELS = [f"test_{j}" for j in range(M)]
LIBRARIES = ["pandas", "polars", "pyarrow"]


def as_frame(library, X, index=None, columns=COLUMNS):
    """X (n, d) as a frame of ``library``; ``index`` is used by pandas only (the others have none)."""
    frame = pd.DataFrame(X, columns=columns, index=index)
    if library == "pandas":
        return frame
    if library == "polars":
        return pl.from_pandas(frame)
    return pa.Table.from_pandas(frame, preserve_index=False)


def as_series(library, y, index=None):
    if library == "pandas":
        return pd.Series(y, index=index)
    if library == "polars":
        return pl.Series(y)
    return pa.chunked_array([y])


@pytest.fixture(scope="module")
def problem():
    X, y, s = make_data("logistic", n=N + M, d=3, seed=71, weighted=True)
    return dict(X=X[:N], y=y[:N].astype(int), s=s[:N], X_test=X[N:], y_test=y[N:].astype(int))


def labels_of(library, labels):
    """The row labels results carry: the pandas index, or row numbers."""
    return list(labels) if library == "pandas" else list(range(len(labels)))


# ---------------------------------------------------------------------------
# Values: the frame path equals the array path
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_frame_results_equal_array_results(problem, library):
    X, y, s, X_test, y_test = (problem[k] for k in ("X", "y", "s", "X_test", "y_test"))
    frame = as_frame(library, X, TRAIN_LABELS)
    frame_test = as_frame(library, X_test, TEST_LABELS)
    converted = D.to_numpy_2d(frame)[0]
    converted_test = D.to_numpy_2d(frame_test)[0]
    np.testing.assert_array_equal(converted, X)
    np.testing.assert_array_equal(converted_test, X_test)

    model = fi.LogisticRegression(l2=L2).fit(
        frame, as_series(library, y, TRAIN_LABELS), as_series(library, s)
    )
    reference = fi.LogisticRegression(l2=L2).fit(converted, y, s)
    np.testing.assert_array_equal(model.theta_, reference.theta_)
    np.testing.assert_allclose(model.theta_, fi.LogisticRegression(l2=L2).fit(X, y, s).theta_, rtol=1e-12)
    np.testing.assert_array_equal(
        model.decision_function(frame_test), reference.decision_function(converted_test)
    )
    # against the original C-order X_test the layout differs (pandas >= 3 converts to F order)
    assert_close(model.decision_function(frame_test), reference.decision_function(X_test), 1e-12)

    inf = fi.Influence(model, frame, as_series(library, y), as_series(library, s))
    ref = fi.Influence(reference, converted, y, s)
    idx = [3, 0, 17]
    pairs = {
        "loss": (inf.loss(frame_test, y_test), ref.loss(converted_test, y_test)),
        "loss[idx]": (
            inf.loss(frame_test, y_test, indices=idx),
            ref.loss(converted_test, y_test, indices=idx),
        ),
        "loo": (inf.loo(frame_test, y_test), ref.loo(converted_test, y_test)),
        "loo-newton": (
            inf.loo(frame_test, y_test, method="newton", indices=idx),
            ref.loo(converted_test, y_test, method="newton", indices=idx),
        ),
        "params": (inf.params(), ref.params()),
        "loo_params": (
            inf.loo_params(method="newton", indices=idx),
            ref.loo_params(method="newton", indices=idx),
        ),
        "self_influence": (inf.self_influence(), ref.self_influence()),
        "leverage": (inf.leverage(indices=idx), ref.leverage(indices=idx)),
        "pert_loss": (
            inf.pert_loss(frame_test, y_test, indices=idx),
            ref.pert_loss(converted_test, y_test, indices=idx),
        ),
        "exact_loo": (
            fi.exact_loo(model, frame, y, [1, 5], frame_test, y_test, s),
            fi.exact_loo(reference, converted, y, [1, 5], converted_test, y_test, s),
        ),
    }
    for what, (labelled, plain) in pairs.items():
        assert isinstance(labelled, (pd.DataFrame, pd.Series)), what
        values = labelled.to_numpy()
        expected = plain.reshape(-1, plain.shape[-1]) if what == "pert_loss" else plain
        np.testing.assert_array_equal(values, expected, err_msg=what)
    np.testing.assert_allclose(
        inf.loss(frame_test, y_test).to_numpy(), fi.Influence(model, X, y, s).loss(X_test, y_test), rtol=1e-10
    )
    top = inf.top_k(frame_test, y_test, k=4)
    expected = ref.top_k(converted_test, y_test, k=4).to_frame(
        train_labels=labels_of(library, TRAIN_LABELS), test_labels=labels_of(library, TEST_LABELS)
    )
    pd.testing.assert_frame_equal(top, expected)


def test_the_numpy_backend_and_float32_frames():
    X, y, _ = make_data("squared", n=N, d=3, seed=72)
    frame32 = pd.DataFrame(X.astype(np.float32), columns=COLUMNS)
    assert D.to_numpy_2d(frame32)[0].dtype == np.float32
    assert D.to_numpy_2d(pl.from_pandas(frame32))[0].dtype == np.float32
    assert D.to_numpy_2d(pa.Table.from_pandas(frame32))[0].dtype == np.float32
    mixed = frame32.assign(score=frame32["score"].astype(np.float64))
    assert D.to_numpy_2d(mixed)[0].dtype == np.float64
    assert D.to_numpy_2d(frame32.assign(flag=True))[0].dtype == np.float64
    model = fi.LinearRegression(l2=L2, backend="numpy").fit(frame32, y)
    inf = fi.Influence(model, frame32, y, backend="numpy")
    assert inf._engine.X.dtype == np.float32
    ref = fi.Influence(model, D.to_numpy_2d(frame32)[0], y, backend="numpy")
    scores = inf.loss(frame32[:3], y[:3]).to_numpy()
    np.testing.assert_array_equal(scores, ref.loss(D.to_numpy_2d(frame32[:3])[0], y[:3]))
    # a C-order float32 array holds the same values in another layout: the float64 products
    # of the NumPy backend round differently, by a few ulp of the largest score
    assert_close(scores, ref.loss(X[:3].astype(np.float32), y[:3]), 1e-12)


def test_integer_boolean_and_nullable_columns_become_float64():
    frame = pd.DataFrame(
        {
            "count": np.array([1, 2, 3], dtype=np.int32),
            "flag": [True, False, True],
            "nullable": pd.array([4, 5, 6], dtype="Int64"),
            "small": np.array([0.5, 1.5, 2.5], dtype=np.float32),
        }
    )
    expected = np.array([[1, 1, 4, 0.5], [2, 0, 5, 1.5], [3, 1, 6, 2.5]], dtype=np.float64)
    for converted in (frame, pl.from_pandas(frame), pa.Table.from_pandas(frame)):
        arr = D.to_numpy_2d(converted)[0]
        assert arr.dtype == np.float64
        np.testing.assert_array_equal(arr, expected)
    # pandas only: Arrow-backed and sparse columns
    other = pd.DataFrame(
        {
            "arrow": pd.array([1, 2, 3], dtype=pd.ArrowDtype(pa.int32())),
            "sparse": pd.arrays.SparseArray([0.0, 1.5, 0.0]),
        }
    )
    np.testing.assert_array_equal(D.to_numpy_2d(other)[0], [[1, 0], [2, 1.5], [3, 0]])


def test_y_and_sample_weight_are_matched_by_position(problem):
    X, y, s = problem["X"], problem["y"], problem["s"]
    frame = pd.DataFrame(X, columns=COLUMNS, index=TRAIN_LABELS)
    reverse = TRAIN_LABELS[::-1]  # an index that would reorder them if aligned by label
    model = fi.LogisticRegression(l2=L2).fit(frame, pd.Series(y, index=reverse), pd.Series(s, index=reverse))
    converted = D.to_numpy_2d(frame)[0]
    np.testing.assert_array_equal(model.theta_, fi.LogisticRegression(l2=L2).fit(converted, y, s).theta_)


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_results_are_labelled(problem, library):
    X, y, X_test, y_test = problem["X"], problem["y"], problem["X_test"], problem["y_test"]
    frame, frame_test = as_frame(library, X, TRAIN_LABELS), as_frame(library, X_test, TEST_LABELS)
    model = fi.LogisticRegression(l2=L2).fit(frame, y)
    np.testing.assert_array_equal(model.feature_names_in_, COLUMNS)
    inf = fi.Influence(model, frame, y)
    train, test = labels_of(library, TRAIN_LABELS), labels_of(library, TEST_LABELS)
    idx = [4, 1]

    scores = inf.loss(frame_test, y_test, indices=idx)
    assert list(scores.index) == [train[4], train[1]]
    assert scores.index.name == "train_row"
    assert list(scores.columns) == test
    assert scores.columns.name == "test_row"
    # an array on the test side: its rows are numbered
    assert list(inf.loo(X_test, y_test).columns) == list(range(M))

    params = inf.params(indices=idx)
    assert list(params.columns) == [*COLUMNS, "intercept"]
    assert list(params.index) == [train[4], train[1]]
    assert list(inf.loo_params().index) == train

    influence = inf.self_influence()
    assert isinstance(influence, pd.Series)
    assert influence.name == "self_influence"
    assert list(influence.index) == train
    assert inf.leverage(indices=[7]).index.tolist() == [train[7]]

    pert = inf.pert_loss(frame_test, y_test, indices=idx)
    assert pert.index.names == ["train_row", "test_row"]
    assert list(pert.columns) == COLUMNS
    assert pert.index[0] == (train[4], test[0])
    assert pert.index[M] == (train[1], test[0])
    # the same values as the array's: a row computed alone may differ in the last bit
    np.testing.assert_allclose(
        pert.loc[(train[1], test[2]), :].to_numpy(),
        fi.Influence(model, D.to_numpy_2d(frame)[0], y).pert_loss(D.to_numpy_2d(frame_test)[0], y_test)[1, 2],
        rtol=1e-13,
        atol=0,
    )

    change, delta = fi.exact_loo(model, frame, y, idx, frame_test, y_test, return_params=True)
    assert list(change.index) == [train[4], train[1]]
    assert list(change.columns) == test
    assert list(delta.columns) == [*COLUMNS, "intercept"]


def test_params_without_intercept_and_non_string_columns(problem):
    X, y = problem["X"], problem["y"]
    frame = pd.DataFrame(X)  # integer column labels: no feature names, but columns are kept
    model = fi.LogisticRegression(l2=L2, fit_intercept=False).fit(frame, y)
    assert not hasattr(model, "feature_names_in_")
    params = fi.Influence(model, frame, y).params()
    assert list(params.columns) == [0, 1, 2]
    assert list(params.index) == list(range(N))


def test_top_k_to_frame(problem):
    X, y, X_test, y_test = problem["X"], problem["y"], problem["X_test"], problem["y_test"]
    inf = fi.Influence(fi.LogisticRegression(l2=L2).fit(X, y), X, y)
    top = inf.top_k(X_test, y_test, k=3)
    assert isinstance(top, fi.influence.TopK)
    table = top.to_frame()
    assert list(table.columns) == ["test_row", "rank", "train_row", "score", "kind"]
    assert len(table) == M * 2 * 3
    scores = inf.loss(X_test, y_test)
    for j in range(M):
        for kind, rows, values in (
            ("helpful", top.helpful_indices[j], top.helpful_scores[j]),
            ("harmful", top.harmful_indices[j], top.harmful_scores[j]),
        ):
            part = table[(table["test_row"] == j) & (table["kind"] == kind)]
            assert part["rank"].tolist() == [1, 2, 3]
            assert part["train_row"].tolist() == rows.tolist()
            np.testing.assert_array_equal(part["score"].to_numpy(), values)
            np.testing.assert_allclose(part["score"].to_numpy(), scores[rows, j], rtol=1e-12)
    # test-major order, helpful before harmful
    assert table["test_row"].tolist() == np.repeat(np.arange(M), 6).tolist()
    assert table["kind"].tolist()[:6] == ["helpful"] * 3 + ["harmful"] * 3
    labelled = top.to_frame(train_labels=TRAIN_LABELS, test_labels=TEST_LABELS)
    assert labelled["train_row"].tolist() == [TRAIN_LABELS[i] for i in table["train_row"]]
    assert labelled["test_row"].tolist() == [TEST_LABELS[j] for j in table["test_row"]]


# ---------------------------------------------------------------------------
# Arrays in, arrays out (regression check)
# ---------------------------------------------------------------------------


def test_plain_arrays_give_plain_arrays(problem):
    X, y, X_test, y_test = problem["X"], problem["y"], problem["X_test"], problem["y_test"]
    model = fi.LogisticRegression(l2=L2).fit(X, y)
    assert not hasattr(model, "feature_names_in_")
    inf = fi.Influence(model, X, y)
    frame_test = pd.DataFrame(X_test, columns=COLUMNS)  # only the training X decides
    for result in (
        inf.loss(X_test, y_test),
        inf.loss(frame_test, y_test),
        inf.loo(frame_test, y_test, method="newton"),
        inf.params(),
        inf.loo_params(),
        inf.self_influence(),
        inf.leverage(),
        inf.pert_loss(frame_test, y_test),
        fi.exact_loo(model, X, y, [0], frame_test, y_test),
        model.predict(frame_test),
    ):
        assert type(result) is np.ndarray
    assert isinstance(inf.top_k(frame_test, y_test, k=2), fi.influence.TopK)


def test_out_is_returned_for_frames(problem):
    X, y, X_test, y_test = problem["X"], problem["y"], problem["X_test"], problem["y_test"]
    frame = pd.DataFrame(X, columns=COLUMNS)
    inf = fi.Influence(fi.LogisticRegression(l2=L2).fit(frame, y), frame, y)
    out = np.empty((N, M))
    assert inf.loss(X_test, y_test, out=out) is out
    np.testing.assert_array_equal(out, inf.loss(X_test, y_test).to_numpy())


def test_importing_fastinfluence_imports_no_frame_library():
    code = (
        "import sys, fastinfluence, numpy as np\n"
        "X = np.random.default_rng(0).standard_normal((20, 2)); y = (X[:, 0] > 0).astype(int)\n"
        "model = fastinfluence.LogisticRegression(l2=1e-2).fit(X, y)\n"
        "fastinfluence.Influence(model, X, y).loss(X, y)\n"
        "loaded = [m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_non_numeric_columns_are_named(problem, library):
    base = pd.DataFrame(problem["X"][:4], columns=COLUMNS).assign(city=["a", "b", "c", "d"])
    frame = {"pandas": base, "polars": pl.from_pandas(base), "pyarrow": pa.Table.from_pandas(base)}[library]
    with pytest.raises(TypeError, match=r"^X must hold real numbers .*non-numeric column: 'city'"):
        fi.LinearRegression().fit(frame, np.zeros(4))


def test_pandas_categorical_and_datetime_columns_are_refused(problem):
    frame = pd.DataFrame(problem["X"][:3], columns=COLUMNS)
    frame["colour"] = pd.Categorical(["red", "blue", "red"])
    frame["when"] = pd.to_datetime(["2020-01-01", "2021-01-01", "2022-01-01"])
    with pytest.raises(TypeError, match=r"non-numeric columns: 'colour' \(category\), 'when'"):
        fi.LinearRegression().fit(frame, np.zeros(3))


MISSING = {
    "pandas-nan": lambda: pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, np.nan, 0.0]}),
    "pandas-none": lambda: pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, None, 0.0]}),
    "pandas-nullable": lambda: pd.DataFrame(
        {"a": [1.0, 2.0, 3.0], "b": pd.array([1, None, 0], dtype="Int64")}
    ),
    "pandas-boolean-na": lambda: pd.DataFrame(
        {"a": [1.0, 2.0, 3.0], "b": pd.array([True, None, False], dtype="boolean")}
    ),
    "polars-null": lambda: pl.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1, None, 0]}),
    "polars-nan": lambda: pl.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, float("nan"), 0.0]}),
    "pyarrow-null": lambda: pa.table({"a": [1.0, 2.0, 3.0], "b": [1, None, 0]}),
}


@pytest.mark.parametrize("case", list(MISSING))
def test_missing_values_are_refused_by_column(case):
    with pytest.raises(
        ValueError, match=r"^X has missing values \(NaN, None or NA\) in column 'b' \(1 row\)"
    ):
        fi.LinearRegression().fit(MISSING[case](), np.zeros(3))


def test_infinite_values_and_missing_labels_are_refused():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, np.inf, 0.0]})
    with pytest.raises(ValueError, match=r"^X has infinite values in column 'b'"):
        fi.LinearRegression().fit(frame, np.zeros(3))
    good = frame.assign(b=[1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match=r"^y has missing values \(NaN, None or NA\) in 1 row"):
        fi.LinearRegression().fit(good, pd.Series([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match=r"^y has missing values"):
        fi.LogisticRegression().fit(good, pd.Series(["yes", None, "no"]))
    with pytest.raises(ValueError, match=r"^y has missing values"):
        fi.LogisticRegression().fit(good, pl.Series([1, None, 0]))
    with pytest.raises(ValueError, match=r"^sample_weight has missing values"):
        fi.LinearRegression().fit(good, np.zeros(3), sample_weight=pa.array([1.0, None, 1.0]))


def test_frame_errors_carry_the_argument_they_concern(problem):
    """The frame checks say which argument failed in ``argument`` (the command line maps X_test to
    --test), the message (from its second word on) in ``detail``."""
    frame = pd.DataFrame(problem["X"], columns=COLUMNS)
    model = fi.LogisticRegression(l2=L2).fit(frame, problem["y"])
    inf = fi.Influence(model, frame, problem["y"])
    test = pd.DataFrame(problem["X_test"], columns=COLUMNS)
    cases = [
        (lambda: fi.LinearRegression().fit(frame.assign(city="a"), np.zeros(N)), TypeError, "X"),
        (lambda: inf.loss(test.assign(age=np.nan), problem["y_test"]), ValueError, "X_test"),
        (lambda: inf.top_k(test.rename(columns={"age": "years"}), problem["y_test"]), ValueError, "X_test"),
        (lambda: inf.loss(test, pd.Series([1.0, np.nan, 0.0, 1.0, 0.0])), ValueError, "y_test"),
        (lambda: fi.LinearRegression().fit(frame, frame), ValueError, "y"),
        (lambda: fi.LinearRegression().fit(frame["age"], np.zeros(N)), ValueError, "X"),
    ]
    for call, base, argument in cases:
        with pytest.raises(base) as caught:
            call()
        assert isinstance(caught.value, fi.InvalidArgumentError)
        assert caught.value.argument == argument
        assert str(caught.value) == f"{argument} {caught.value.detail}"


def test_describe_column_mismatch():
    assert D.describe_column_mismatch(["a", "b"], ["b", "a"], lacking="L", extra="E:") is None
    assert (
        D.describe_column_mismatch(["a", "b", "c"], ["c", "d"], lacking="the columns", extra="others:")
        == "lacks the columns 'a', 'b' and has others: 'd'"
    )
    assert D.describe_columns([f"c{i}" for i in range(8)], limit=2) == "'c0', 'c1' and 6 more"


def test_wrong_shapes_and_lazy_frames():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 0.0]})
    with pytest.raises(ValueError, match=r"^X must be 2-D .*Series"):
        fi.LinearRegression().fit(frame["a"], np.zeros(3))
    with pytest.raises(ValueError, match=r"^y must be 1-D: got a DataFrame with 2 columns"):
        fi.LinearRegression().fit(frame, frame)
    model = fi.LinearRegression().fit(frame, frame[["a"]])  # a one-column frame is a vector
    np.testing.assert_allclose(model.predict(frame), frame["a"].to_numpy(), atol=1e-10)
    with pytest.raises(TypeError, match=r"LazyFrame .*collect\(\)"):
        fi.LinearRegression().fit(pl.from_pandas(frame).lazy(), np.zeros(3))


def test_feature_names_must_match_the_fit(problem):
    X, y, X_test, y_test = problem["X"], problem["y"], problem["X_test"], problem["y_test"]
    frame = pd.DataFrame(X, columns=COLUMNS)
    frame_test = pd.DataFrame(X_test, columns=COLUMNS)
    model = fi.LogisticRegression(l2=L2).fit(frame, y)
    inf = fi.Influence(model, frame, y)
    reordered = frame_test[["dose", "age", "score"]]
    with pytest.raises(ValueError, match=r"^X has the fitted columns in another order"):
        model.predict(reordered)
    with pytest.raises(ValueError, match=r"^X_test has the fitted columns in another order"):
        inf.loss(reordered, y_test)
    renamed = frame_test.rename(columns={"dose": "dosage"})
    with pytest.raises(
        ValueError, match=r"^X_test lacks the fitted columns 'dose' and has columns the model"
    ):
        inf.top_k(renamed, y_test)
    with pytest.raises(ValueError, match=r"^X has the fitted columns in another order"):
        fi.Influence(model, frame[["dose", "age", "score"]], y)
    with pytest.raises(ValueError, match=r"^X_test lacks"):
        fi.exact_loo(model, frame, y, [0], renamed, y_test)
    with pytest.raises(ValueError, match=r"^X_test lacks"):
        inf.pert_loss(pl.from_pandas(renamed), y_test)
    # reordering by name is the caller's fix; arrays are matched by position
    np.testing.assert_array_equal(
        model.predict(reordered[model.feature_names_in_]), model.predict(frame_test)
    )
    # the same values; the frame's memory layout (F order with pandas >= 3) rounds the products
    # differently, so equal to the last few bits only
    assert_close(model.decision_function(X_test), model.decision_function(frame_test), 1e-12)
    # refitting on an array forgets the names
    model.fit(X, y)
    assert not hasattr(model, "feature_names_in_")
    model.predict(reordered)


def test_kernels_and_from_sklearn_accept_frames(problem):
    from sklearn.linear_model import LogisticRegression

    X, y = problem["X"], problem["y"]
    frame = pd.DataFrame(X, columns=COLUMNS)
    theta = np.array([0.1, -0.2, 0.3, 0.05])
    converted = D.to_numpy_2d(frame)[0]
    assert fi.kernels.objective("logistic", frame, pd.Series(y), theta) == fi.kernels.objective(
        "logistic", converted, y, theta
    )
    estimator = LogisticRegression(C=10.0, tol=1e-10, max_iter=1000).fit(frame, y)
    model = fi.from_sklearn(estimator, pl.from_pandas(frame), pl.Series(y))
    np.testing.assert_array_equal(model.feature_names_in_, COLUMNS)
    np.testing.assert_allclose(model.theta_, fi.from_sklearn(estimator, X, y).theta_, rtol=1e-12)


# ---------------------------------------------------------------------------
# Class names as labels
# ---------------------------------------------------------------------------

NAMES = np.array(["benign", "malignant"])


@pytest.mark.parametrize("cls", [fi.LogisticRegression, fi.SmoothHingeClassifier])
@pytest.mark.parametrize(
    "form", ["numpy-str", "object", "pandas-str", "pandas-category", "polars", "pyarrow"]
)
def test_class_names_fit_like_zero_one(problem, cls, form):
    X, y01, X_test, y_test01 = problem["X"], problem["y"], problem["X_test"], problem["y_test"]
    names = NAMES[y01]
    labels = {
        "numpy-str": names,
        "object": names.astype(object),
        "pandas-str": pd.Series(names),
        "pandas-category": pd.Series(names, dtype="category"),
        "polars": pl.Series(names),
        "pyarrow": pa.array(names),
    }[form]
    model = cls(l2=L2).fit(X, labels)
    reference = cls(l2=L2).fit(X, y01)
    np.testing.assert_array_equal(model.theta_, reference.theta_)
    assert model.classes_.tolist() == ["benign", "malignant"]  # sorted; positive = classes_[1]
    np.testing.assert_array_equal(model.predict(X_test), NAMES[reference.predict(X_test)])
    inf = fi.Influence(model, X, labels)
    np.testing.assert_array_equal(
        inf.loss(X_test, NAMES[y_test01]), fi.Influence(reference, X, y01).loss(X_test, y_test01)
    )


def test_class_names_are_sorted_and_the_second_is_positive(problem):
    X, y01 = problem["X"], problem["y"]
    model = fi.LogisticRegression(l2=L2).fit(X, np.where(y01 == 1, "a_yes", "b_no"))  # "b_no" sorts last
    assert model.classes_.tolist() == ["a_yes", "b_no"]
    flipped = fi.LogisticRegression(l2=L2).fit(X, 1 - y01)
    np.testing.assert_array_equal(model.theta_, flipped.theta_)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], flipped.predict_proba(X)[:, 1], rtol=1e-15)


def test_class_name_errors(problem):
    X, y01 = problem["X"][:6], problem["y"][:6]
    with pytest.raises(
        ValueError,
        match=r"^y must hold binary labels \(two classes.* for LogisticRegression; found one class only, 'a'",
    ):
        fi.LogisticRegression().fit(X, ["a"] * 6)
    with pytest.raises(
        ValueError, match=r"^y must hold binary labels .*found 3 classes \['a', 'b', 'c'\]\. Only binary"
    ):
        fi.LogisticRegression().fit(X, ["a", "b", "c", "a", "b", "c"])
    with pytest.raises(TypeError, match=r"^y mixes label types \['int', 'str'\]"):
        fi.LogisticRegression().fit(X, np.array(["a", 1, "a", 1, "a", 1], dtype=object))
    with pytest.raises(ValueError, match=r"^y has missing values \(None or NaN\)"):
        fi.LogisticRegression().fit(X, np.array(["a", None, "a", "b", "a", "b"], dtype=object))
    model = fi.LogisticRegression(l2=L2).fit(X, NAMES[y01])
    with pytest.raises(
        ValueError, match=r"^y_test holds labels \['unknown'\] that are not among the model's"
    ):
        fi.Influence(model, X, NAMES[y01]).loss(X[:2], ["benign", "unknown"])
    with pytest.raises(
        ValueError, match=r"^y_test holds labels \[0\.0, 1\.0\] that are not among the model's"
    ):
        fi.Influence(model, X, NAMES[y01]).loss(X[:2], [0, 1])
    numeric = fi.LogisticRegression(l2=L2).fit(X, y01)
    with pytest.raises(
        ValueError,
        match=r"^y holds labels \['benign', 'malignant'\] that are not among the model's classes \[0, 1\]",
    ):
        fi.Influence(numeric, X, np.where(y01 == 1, "malignant", "benign"))
    # regression models still take numbers only
    with pytest.raises(TypeError, match=r"^y must hold real numbers"):
        fi.LinearRegression().fit(X, NAMES[y01])
