"""The command line: ``fastinfluence demo`` and ``fastinfluence score`` (CSV/Parquet in and out, exit status).

Values written by ``score`` are checked against the Python API called directly
(``fi.Influence(...).loss`` / ``self_influence``) and, for top-k, against a full
sort of the matrix. Most cases call ``cli.main`` in-process (fast); a few run
``python -m fastinfluence`` in a subprocess to check the real exit status.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_ranking

import fastinfluence as fi
from fastinfluence import cli

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("tqdm")

TIMEOUT = 120


def run_module(*args, cwd=None):
    """``python -m fastinfluence ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "fastinfluence", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        check=False,  # the callers check the exit status
    )


def run_main(capsys, *args):
    """``cli.main(ARGS)`` in-process: (exit status, stdout, stderr)."""
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def score_args(
    folder, *options, train="train.csv", test="test.csv", out="out.csv", target="label", quiet=True
):
    """The arguments of ``score`` on the files ``folder / train`` (and test, out; a name that is a path
    of its own is kept), ``options`` before ``--out``, and ``--quiet`` unless ``quiet`` is False."""
    files = ["--train", str(folder / train), "--test", str(folder / test), "--target", target]
    return ["score", *files, *options, "--out", str(folder / out), *(["--quiet"] if quiet else [])]


def make_frames(n=60, m=12, d=4, model="logistic", seed=0):
    """Training and test DataFrames with feature columns x0.. and a 'label' column."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + m, d))
    eta = X @ rng.normal(size=d) * 1.5 + 0.3
    if model in ("logistic", "smooth-hinge"):
        y = (rng.random(n + m) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    elif model == "poisson":
        y = rng.poisson(np.exp(0.3 * eta)).astype(np.int64)
    else:
        y = eta + rng.normal(size=n + m)
    frame = pd.DataFrame(X, columns=[f"x{k}" for k in range(d)])
    frame.insert(2, "label", y)  # the target need not be the last column
    return frame.iloc[:n].reset_index(drop=True), frame.iloc[n:].reset_index(drop=True)


def standardized(train, test, features, *, center=True):
    """The feature columns as ``score`` standardises them by default: (x - mean) / sd with the mean and
    (population) standard deviation of the training rows; without centring (--no-intercept),
    x / root mean square."""
    X, X_test = train[features].to_numpy(dtype=float), test[features].to_numpy(dtype=float)
    if center:
        mean, scale = X.mean(axis=0), X.std(axis=0)
    else:
        mean, scale = np.zeros(X.shape[1]), np.sqrt(np.mean(X * X, axis=0))
    return (X - mean) / scale, (X_test - mean) / scale


def reference_influence(train, test, model, *, standardize=True, damping=0.0, **options):
    """``fi.Influence`` computed directly, on the columns as ``score`` encodes them, and the test rows."""
    features = [c for c in train.columns if c != "label"]
    if standardize:
        X, X_test = standardized(train, test, features, center=options.get("fit_intercept", True))
    else:
        X, X_test = train[features].to_numpy(), test[features].to_numpy()
    y = train["label"].to_numpy()
    fitted = model(**options).fit(X, y)
    return fi.Influence(fitted, X, y, damping=damping), X_test, test["label"].to_numpy()


def matrix_of(table):
    """The score columns test_0, test_1, ... of a full-matrix output, as an (n, m) array."""
    return table.filter(regex=r"^test_[0-9]+$").to_numpy()


@pytest.fixture
def data(tmp_path):
    """A folder with train/test as CSV and Parquet; returns (folder, train frame, test frame)."""
    train, test = make_frames()
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    train.to_parquet(tmp_path / "train.parquet", index=False)
    test.to_parquet(tmp_path / "test.parquet", index=False)
    return tmp_path, train, test


def read(path):
    return pd.read_parquet(path) if str(path).endswith((".parquet", ".pq")) else pd.read_csv(path)


# -- help, usage -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["score"], ["demo"]], ids=["main", "score", "demo"])
def test_help_exits_zero_and_shows_an_example(command):
    result = run_module(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "examples:" in result.stdout
    assert "fastinfluence " + (command[0] if command else "score") in result.stdout.split("examples:")[1]


def test_help_explains_the_sign_and_the_outputs(capsys):
    status, out, _ = run_main(capsys, "score", "--help")
    assert status == 0
    for phrase in ("helpful", "harmful", "--top-k", "self_influence", "test_0", "exit status"):
        assert phrase in out
    # issue 13: the default of --standardize and why, and what the outputs carry beside the scores
    for phrase in ("standardising (--standardize, the default)", "is not unit-free", "--no-standardize"):
        assert phrase in out
    for phrase in (
        "--id-column",
        "train_label",
        "test_prediction",
        "scores.test_rows.csv",
        "COLUMN=<missing>",
    ):
        assert phrase in out


def test_help_names_the_partial_output_file_and_the_signal_exit_statuses(capsys):
    """Issue 9, section 4: a killed run's temporary must be findable from the help text."""
    status, out, _ = run_main(capsys, "score", "--help")
    assert status == 0
    assert "FILE.fastinfluence-partial-HOST-PID" in out
    assert "130 interrupted" in out
    assert "143 terminated (SIGTERM)" in out


def test_no_command_prints_help_and_exits_2(capsys):
    status, _out, err = run_main(capsys)
    assert status == 2
    assert "demo" in err
    assert "score" in err


def test_import_fastinfluence_does_not_import_optional_dependencies():
    code = (
        "import sys, fastinfluence, fastinfluence.cli, fastinfluence.plot, fastinfluence.demo; "
        "print(sorted(m for m in ('matplotlib', 'pandas', 'pyarrow', 'tqdm', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- demo --------------------------------------------------------------------------------------


def test_demo_prints_every_section_and_writes_pngs(tmp_path):
    out_dir = tmp_path / "plots" / "nested"  # created by the demo
    result = run_module("demo", "--out-dir", str(out_dir))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for section in (
        "== 1. Fit ==",
        "== 2. Most helpful and most harmful",
        "== 3. Leave-one-out",
        "== 4. Self-influence",
        "== 5. Mislabel detection",
        "== 6. Accuracy certificate",
    ):
        assert section in text
    assert "Negative = helpful" in text
    assert "Positive = harmful" in text
    assert "most helpful (most negative):" in text
    assert "most harmful (most positive):" in text
    # The Newton estimate of leave-one-out changes is nearly exact on this data.
    newton_row = next(line for line in text.splitlines() if line.strip().startswith("one Newton step"))
    assert all(float(v) > 0.99 for v in newton_row.split()[-3:])
    # Scores come with their scale: the first-order change of the test loss when the row is removed.
    scored = [line for line in text.splitlines() if "score " in line and "if removed: test loss" in line]
    assert len(scored) >= 6
    for line in scored:
        score = float(line.split("score")[1].split()[0])
        change = float(line.split("if removed: test loss")[1].split()[0])
        assert change == pytest.approx(-score / 455, abs=1e-3)
    assert "if removed: own loss" in text
    # The certificate: the Newton step is closer to the refits than the first-order estimate.
    pearson = {
        line.split()[0]: float(line.split()[-4])
        for line in text.split("== 6. Accuracy certificate")[1].splitlines()
        if line.strip().startswith(("first order ", "Newton step "))
    }
    assert pearson["Newton"] > max(0.99, pearson["first"])
    # The mislabel section says which ranking found more, and why and when self-influence pays.
    verdict = r"Here (the training loss|self-influence) finds more at 10% checked|Here both find"
    assert re.search(verdict, text)
    assert "Self-influence is worth" in text
    detection_row = next(line for line in text.splitlines() if line.strip().startswith("|self-influence|"))
    found_at_30 = float(detection_row.split()[-1].rstrip("%")) / 100
    assert found_at_30 > 0.6  # far better than the 30% expected at random
    for name in ("demo_loo.png", "demo_top_influences.png", "demo_mislabel.png"):
        path = out_dir / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
    assert str(out_dir) in text


def test_demo_quiet_no_plots_prints_nothing_and_writes_nothing(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    status, out, err = run_main(capsys, "demo", "--quiet", "--no-plots", "--out-dir", str(out_dir))
    assert status == 0
    assert out == ""
    assert err == ""
    assert not out_dir.exists()


def test_demo_is_reproducible_and_the_seed_matters():
    from fastinfluence.demo import compute_demo

    a, b, c = compute_demo(seed=3, n_loo=10), compute_demo(seed=3, n_loo=10), compute_demo(seed=4, n_loo=10)
    np.testing.assert_array_equal(a.loo_indices, b.loo_indices)
    np.testing.assert_array_equal(a.flipped_mask, b.flipped_mask)
    assert not np.array_equal(a.flipped_mask, c.flipped_mask)
    # The demo's numbers are the library's: exact refits agree closely with the Newton estimate.
    assert np.corrcoef(a.loo_newton.ravel(), a.loo_actual.ravel())[0, 1] > 0.99
    assert a.correlations["newton"]["all_pairs"] == pytest.approx(
        np.corrcoef(a.loo_newton.ravel(), a.loo_actual.ravel())[0, 1]
    )


def test_demo_data_is_scikit_learns_breast_cancer():
    """The demo reads scikit-learn's bundled CSV without importing sklearn; it must be load_breast_cancer."""
    datasets = pytest.importorskip("sklearn.datasets")
    from fastinfluence.demo import _read_bundled_breast_cancer, load_breast_cancer_split

    reference = datasets.load_breast_cancer()
    X, y, class_names = _read_bundled_breast_cancer()
    np.testing.assert_array_equal(X, reference.data)
    np.testing.assert_array_equal(y, reference.target)
    assert class_names == [str(c) for c in reference.target_names]
    X_train, y_train, X_test, y_test, _ = load_breast_cancer_split()
    assert X_train.shape == (455, 30)
    assert X_test.shape == (114, 30)
    np.testing.assert_allclose(X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_array_equal(np.concatenate([y_train, y_test]), reference.target)


def test_demo_out_dir_that_is_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    status, _, err = run_main(capsys, "demo", "--quiet", "--out-dir", str(target))
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "not a folder" in err


# -- score: values -----------------------------------------------------------------------------


def test_score_full_matrix_csv_matches_the_python_api(data):
    folder, train, test = data
    result = run_module(*score_args(Path(), "--l2", "1e-2", out="scores.csv", quiet=False), cwd=folder)
    assert result.returncode == 0, result.stderr
    table = read(folder / "scores.csv")
    rows = ["train_row", "train_label", "train_prediction"]
    assert list(table.columns) == rows + [f"test_{j}" for j in range(len(test))]
    np.testing.assert_array_equal(table["train_row"], np.arange(len(train)))
    inf, X_test, y_test = reference_influence(train, test, fi.LogisticRegression, l2=1e-2)
    np.testing.assert_allclose(matrix_of(table), inf.loss(X_test, y_test), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(table["train_label"], train["label"])
    X = standardized(train, test, [c for c in train.columns if c != "label"])[0]
    np.testing.assert_array_equal(table["train_prediction"], inf.model.predict(X))
    # the test rows' labels and predictions, in the order of the columns test_0, test_1, ...
    test_rows = read(folder / "scores.test_rows.csv")
    assert list(test_rows.columns) == ["test_row", "test_label", "test_prediction"]
    np.testing.assert_array_equal(test_rows["test_row"], np.arange(len(test)))
    np.testing.assert_array_equal(test_rows["test_label"], y_test)
    np.testing.assert_array_equal(test_rows["test_prediction"], inf.model.predict(X_test))


@pytest.mark.parametrize("ext", [".parquet", ".pq", ".csv.gz"])
def test_score_round_trip_through_other_formats(data, capsys, ext):
    folder, train, test = data
    source = ".parquet" if ext != ".csv.gz" else ".csv"
    out = folder / f"scores{ext}"
    status, _, err = run_main(
        capsys,
        *score_args(folder, train=f"train{source}", test=f"test{source}", out=out),
    )
    assert status == 0, err
    table = pd.read_parquet(out) if ext != ".csv.gz" else pd.read_csv(out)
    inf, X_test, y_test = reference_influence(train, test, fi.LogisticRegression, l2=1e-3)
    np.testing.assert_allclose(matrix_of(table), inf.loss(X_test, y_test), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("model", "options", "cls", "kwargs"),
    [
        ("linear", ["--l2", "0"], fi.LinearRegression, {"l2": 0.0}),
        ("poisson", ["--l2", "1e-2"], fi.PoissonRegression, {"l2": 1e-2}),
        ("smooth-hinge", ["--t", "0.5"], fi.SmoothHingeClassifier, {"t": 0.5, "l2": 1e-3}),
        (
            "logistic",
            ["--no-intercept", "--damping", "0.01"],
            fi.LogisticRegression,
            {"l2": 1e-3, "fit_intercept": False},
        ),
    ],
    ids=["linear", "poisson", "smooth-hinge", "logistic-no-intercept-damped"],
)
def test_score_every_model_matches_the_python_api(tmp_path, capsys, model, options, cls, kwargs):
    train, test = make_frames(model=model, seed=1)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run_main(capsys, *score_args(tmp_path, "--model", model, *options))
    assert status == 0, err
    damping = 0.01 if "--damping" in options else 0.0
    inf, X_test, y_test = reference_influence(train, test, cls, damping=damping, **kwargs)
    table = read(tmp_path / "out.csv")
    np.testing.assert_allclose(matrix_of(table), inf.loss(X_test, y_test), rtol=1e-8, atol=1e-12)


#: The columns of top_k_table (TopK.to_frame) ...
TOP_K_COLUMNS = ["test_row", "rank", "train_row", "score", "kind"]
#: ... and of the --top-k output, with each row's label and the model's prediction (and id, with --id-column).
TOP_K_OUTPUT_COLUMNS = [
    "test_row",
    "test_label",
    "test_prediction",
    "rank",
    "train_row",
    "train_label",
    "train_prediction",
    "score",
    "kind",
]


def check_top_k(table, full, k, columns=TOP_K_OUTPUT_COLUMNS):
    """The tidy top-k table against a full sort of each column of the matrix."""
    _n, m = full.shape
    assert list(table.columns) == columns
    assert len(table) == 2 * k * m
    for j in range(m):
        rows = table[table["test_row"] == j]
        helpful, harmful = rows[rows["kind"] == "helpful"], rows[rows["kind"] == "harmful"]
        np.testing.assert_array_equal(helpful["rank"], np.arange(1, k + 1))
        np.testing.assert_array_equal(harmful["rank"], np.arange(1, k + 1))
        order = np.argsort(full[:, j], kind="stable")
        # the matrix was read back from CSV and the top-k computed by another pass: scores agree to
        # rounding, so rows whose scores are that close may change places (equal rows otherwise)
        column = full[:, j : j + 1]
        for kind, expected in ((helpful, order[:k]), (harmful, order[::-1][:k])):
            assert_same_ranking(kind["train_row"].to_numpy()[None, :], expected[None, :], column, 1e-9)
        np.testing.assert_allclose(helpful["score"], full[order[:k], j], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(harmful["score"], full[order[::-1][:k], j], rtol=1e-9, atol=1e-12)


def test_score_top_k_matches_a_full_sort(data, capsys):
    folder, train, test = data
    status, _, err = run_main(capsys, *score_args(folder, "--top-k", "5", out="top.csv"))
    assert status == 0, err
    inf, X_test, y_test = reference_influence(train, test, fi.LogisticRegression, l2=1e-3)
    check_top_k(read(folder / "top.csv"), inf.loss(X_test, y_test), 5)


def test_score_top_k_larger_than_the_training_set_is_capped(tmp_path, capsys):
    train, test = make_frames(n=8, m=3)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run_main(capsys, *score_args(tmp_path, "--top-k", "50", out="top.csv"))
    assert status == 0, err
    inf, X_test, y_test = reference_influence(train, test, fi.LogisticRegression, l2=1e-3)
    check_top_k(read(tmp_path / "top.csv"), inf.loss(X_test, y_test), 8)


def test_score_self_influence_sorted_most_negative_first(data, capsys):
    folder, train, test = data
    parquet = dict(train="train.parquet", test="test.parquet")
    status, _, err = run_main(capsys, *score_args(folder, "--self-influence", **parquet, out="self.parquet"))
    assert status == 0, err
    table = read(folder / "self.parquet")
    assert list(table.columns) == ["train_row", "train_label", "train_prediction", "self_influence"]
    assert np.all(np.diff(table["self_influence"]) >= 0)
    inf, _, _ = reference_influence(train, test, fi.LogisticRegression, l2=1e-3)
    # Independent reference: the diagonal of I_up,loss with the training set as the test set.
    X = standardized(train, test, [c for c in train.columns if c != "label"])[0]
    diagonal = np.diag(inf.loss(X, train["label"].to_numpy()))
    np.testing.assert_allclose(table["self_influence"], diagonal[table["train_row"]], rtol=1e-9, atol=1e-12)
    assert sorted(table["train_row"]) == list(range(len(train)))


def test_score_top_k_and_self_influence_write_two_files(data, capsys):
    folder, train, test = data
    status, _, err = run_main(
        capsys,
        *score_args(folder, "--top-k", "3", "--self-influence", out="result.parquet"),
    )
    assert status == 0, err
    inf, X_test, y_test = reference_influence(train, test, fi.LogisticRegression, l2=1e-3)
    check_top_k(read(folder / "result.parquet"), inf.loss(X_test, y_test), 3)
    second = read(folder / "result.self_influence.parquet")
    np.testing.assert_allclose(second["self_influence"], inf.self_influence()[second["train_row"]], rtol=1e-9)


def test_score_shows_progress_on_stderr_unless_quiet(data, capsys, monkeypatch):
    folder, _, _ = data
    monkeypatch.setattr(cli.commands, "PROGRESS_DELAY", 0.0)  # show the quick steps of this small problem
    args = score_args(folder, out="o.csv", quiet=False)
    status, out, err = run_main(capsys, *args)
    assert status == 0
    assert out == ""
    for step in ("reading", "fit", "Hessian", "scoring", "writing"):
        assert step in err
    status, out, err = run_main(capsys, *args, "--quiet")
    assert status == 0
    assert out == ""
    assert err == ""


def test_score_top_k_streams_through_influence_top_k(data, capsys, monkeypatch):
    """--top-k never forms the full matrix: it is Influence.top_k's table (TopK.to_frame)."""
    folder, train, test = data
    calls = []

    class Recording(fi.Influence):
        def top_k(self, X_test, y_test, k=10):
            calls.append(("top_k", k))
            return super().top_k(X_test, y_test, k=k)

        def loss(self, *args, **kwargs):
            calls.append(("loss",))
            return super().loss(*args, **kwargs)

    monkeypatch.setattr(fi, "Influence", Recording)
    status, _, err = run_main(capsys, *score_args(folder, "--top-k", "4", out="top.csv"))
    assert status == 0, err
    assert calls == [("top_k", 4)]
    inf, X_test, y_test = reference_influence(train, test, fi.LogisticRegression, l2=1e-3)
    check_top_k(read(folder / "top.csv"), inf.loss(X_test, y_test), 4)


def test_top_k_table_is_the_table_of_top_k_to_frame(data):
    """For arrays (TopK) and frames (the labelled table) alike; k is capped at the training rows."""
    _folder, train, test = data
    inf, X_test, y_test = reference_influence(train, test, fi.LogisticRegression, l2=1e-3)
    full = inf.loss(X_test, y_test)
    table = cli.top_k_table(inf, X_test, y_test, 6)
    pd.testing.assert_frame_equal(table, inf.top_k(X_test, y_test, k=6).to_frame())
    check_top_k(table, full, 6, TOP_K_COLUMNS)
    features = [c for c in train.columns if c != "label"]
    X, X_test = standardized(train, test, features)
    model = fi.LogisticRegression(l2=1e-3).fit(pd.DataFrame(X, columns=features), train["label"])
    frames = fi.Influence(model, pd.DataFrame(X, columns=features), train["label"])
    capped = cli.top_k_table(frames, pd.DataFrame(X_test, columns=features), test["label"], 10**6)
    check_top_k(capped, full, len(train), TOP_K_COLUMNS)


# -- score: bad input --------------------------------------------------------------------------


def write(path, text):
    path.write_text(text)
    return path.name


def write_parquet(path, **columns):
    """A two-row Parquet file with the columns of ``make_frames`` and ``columns`` in their place."""
    frame = pd.DataFrame(
        {"x0": [1.0, 2.0], "x1": [2.0, 3.0], "label": [0, 1], "x2": [1.0, 2.0], "x3": [1.0, 2.0]}
    )
    frame = frame.assign(**columns)
    frame.to_parquet(path, index=False)
    return path.name


def file_for(option, name, text, *options):
    """The arguments that give ``option`` the file ``name`` holding ``text``, written into the folder
    the test runs in, and ``options``."""
    return lambda folder: [option, write(folder / name, text), *options]


BAD_INPUTS = {
    "missing-file": (lambda f: ["--train", "nope.csv"], "not found"),
    "unknown-extension": (file_for("--train", "train.txt", "a,label\n1,0\n"), "unknown file type"),
    "missing-target": (lambda f: ["--target", "y"], "no column 'y'"),
    "text-in-a-numeric-test-column": (
        file_for("--test", "text.csv", "x0,x1,label,x2,x3\n1,a,0,1,1\n2,?,1,2,2\n"),
        "column 'x1' of --test file text.csv is not numeric (",
    ),
    "numbers-and-text-in-a-column": (
        file_for("--train", "text.csv", "x0,x1,label,x2,x3\n1,2,0,1,1\n2,?,1,2,2\n3,4,1,2,2\n"),
        "column 'x1' of --train file text.csv is text, but 2 of its 3 values are numbers (not numbers: '?')",
    ),
    "numbers-written-as-text": (
        lambda f: ["--train", write_parquet(f / "texts.parquet", x1=["2.5", "3"])],
        "column 'x1' of --train file texts.parquet is text, but every value is a number written as text",
    ),
    "a-date-column": (
        lambda f: [
            "--train",
            write_parquet(f / "dates.parquet", x1=pd.to_datetime(["2024-01-01", "2024-01-02"])),
        ],
        "column 'x1' of --train file dates.parquet holds datetime64",
    ),
    "an-id-named-column": (
        file_for("--train", "ids.csv", "x0,patient_id,label,x2,x3\n1,7,0,1,1\n2,9,1,2,2\n"),
        "column 'patient_id' of --train file ids.csv looks like a row id (by its name)",
    ),
    "pandas-index-column": (
        file_for("--train", "index.csv", ",x0,x1,label,x2,x3\n0,1,2,0,1,1\n1,2,3,1,2,2\n"),
        "column 'Unnamed: 0' of --train file index.csv looks like a row id",
    ),
    "missing-id-column": (
        lambda f: ["--id-column", "nope"],
        "--id-column 'nope': --train file train.csv has no such column",
    ),
    "id-column-is-target": (
        lambda f: ["--id-column", "label"],
        "--id-column and --target name the same column",
    ),
    "features-unknown": (
        lambda f: ["--features", "x0", "nope"],
        "--features 'nope': --train file train.csv has no such",
    ),
    "features-and-drop": (lambda f: ["--features", "x0", "--drop", "x1"], "not allowed with argument"),
    "drop-target": (lambda f: ["--drop", "label"], "--drop names the --target column 'label'"),
    "categorical-dropped": (
        lambda f: ["--drop", "x1", "--categorical", "x1"],
        "--categorical 'x1' is not a feature",
    ),
    "max-categories": (
        lambda f: ["--categorical", "x0", "--max-categories", "5"],
        "above --max-categories 5",
    ),
    "max-categories-zero": (lambda f: ["--max-categories", "0"], "--max-categories must be >= 1"),
    "l2-0-with-one-hot": (
        file_for("--train", "text.csv", "x0,x1,label,x2,x3\n1,a,0,1,1\n2,b,1,2,2\n", "--l2", "0"),
        (
            "--l2 0 with one-hot encoded column 'x1': the indicators of each add up to 1 in every row, as "
            "the intercept's column does, so the fit has no unique optimum; give --l2 > 0"
        ),
    ),
    "report-not-json": (lambda f: ["--report", "r.txt"], "--report r.txt: the report is JSON"),
    "report-folder-missing": (lambda f: ["--report", "no/such/r.json"], "--report no/such/r.json: folder"),
    "id-column-not-in-test": (
        lambda f: ["--id-column", "x0", "--test", write(f / "noid.csv", "x1,label,x2,x3\n1,0,1,1\n")],
        "--test file noid.csv lacks training columns 'x0'",
    ),
    "text-different-in-every-row": (
        file_for(
            "--train",
            "names.csv",
            "x0,x1,label,x2,x3\n" + "".join(f"{i},name {i},{i % 2},1,{i}\n" for i in range(25)),
        ),
        "column 'x1' of --train file names.csv holds a different value in each of its 25 rows",
    ),
    "non-numeric-target": (
        file_for("--train", "text.csv", "x0,x1,label,x2,x3\n1,2,a,1,1\n2,3,b,2,2\n", "--model", "linear"),
        "--train file text.csv has a non-numeric target column 'label'",
    ),
    "nan-in-train": (
        file_for("--train", "nan.csv", "x0,x1,label,x2,x3\n1,2,0,1,1\n2,,1,2,2\n"),
        "--train file nan.csv has missing values (NaN, None or NA) in column 'x1' (1 row)",
    ),
    "nan-in-target": (
        file_for("--test", "nan.csv", "x0,x1,label,x2,x3\n1,2,,1,1\n2,3,1,2,2\n"),
        "--target 'label' in --test file nan.csv has missing values (NaN, None or NA) in 1 row",
    ),
    "nan-in-test": (
        file_for("--test", "nan.csv", "x0,x1,label,x2,x3\n1,2,1,1,1\n2,3,1,,2\n"),
        "--test file nan.csv has missing values (NaN, None or NA) in column 'x2' (1 row)",
    ),
    "infinite-value": (
        file_for("--train", "inf.csv", "x0,x1,label,x2,x3\n1,inf,0,1,1\n2,3,1,2,2\n"),
        "--train file inf.csv has infinite values in column 'x1'",
    ),
    "infinite-target": (
        file_for("--train", "inf.csv", "x0,x1,label,x2,x3\n1,2,0,1,1\n2,3,inf,2,2\n", "--model", "linear"),
        "--target 'label' in --train file inf.csv contains NaN or infinity",
    ),
    "test-columns-differ": (file_for("--test", "other.csv", "a,label\n1,0\n"), "lacks training columns"),
    "empty-file": (file_for("--train", "empty.csv", ""), "is empty"),
    "header-only": (file_for("--test", "header.csv", "x0,x1,label,x2,x3\n"), "no data rows"),
    "ragged-csv": (file_for("--train", "ragged.csv", "x0,x1,label\n1,2\n1,2,3,4,5\n"), "cannot read"),
    "corrupt-parquet": (file_for("--train", "bad.parquet", "not parquet"), "cannot read"),
    "non-binary-labels": (
        lambda f: ["--target", "x0"],
        "--target 'x0' in --train file train.csv must hold binary labels",
    ),
    "unseen-test-label": (
        file_for("--test", "three.csv", "x0,x1,label,x2,x3\n1,2,2,1,1\n"),
        (
            "--target 'label' in --test file three.csv holds labels [2.0] "
            "that are not among the model's classes [0, 1]"
        ),
    ),
    "negative-poisson-counts": (
        lambda f: ["--model", "poisson", "--target", "x0"],
        "--target 'x0' in --train file train.csv must hold non-negative counts",
    ),
    "out-folder-missing": (lambda f: ["--out", str(f / "no" / "such" / "out.csv")], "does not exist"),
    "out-extension": (lambda f: ["--out", "out.json"], "unknown file type"),
    "out-overwrites-input": (lambda f: ["--out", "train.csv"], "overwrite an input"),
    "t-without-smooth-hinge": (lambda f: ["--t", "0.5"], "--t"),
    "top-k-zero": (lambda f: ["--top-k", "0"], "--top-k must be >= 1"),
    "negative-l2": (lambda f: ["--l2", "-1"], "--l2"),
    "zero-threads": (lambda f: ["--n-jobs", "0"], "--n-jobs"),
    "matrix-too-large": (lambda f: ["--max-matrix-mb", "0.001"], "--top-k"),
    "not-converged": (lambda f: ["--max-iter", "1"], "did not converge"),
    "unknown-option": (lambda f: ["--bogus"], "unrecognized arguments"),
    "bad-number": (lambda f: ["--l2", "abc"], "invalid float value"),
    "unknown-model": (lambda f: ["--model", "tree"], "invalid choice"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_no_output(data, capsys, monkeypatch, case):
    folder, _, _ = data
    monkeypatch.chdir(folder)
    make_args, expected = BAD_INPUTS[case]
    files, extra = {}, []
    overrides = iter(make_args(folder))
    for arg in overrides:
        if arg in ("--train", "--test", "--target", "--out"):
            files[arg[2:]] = next(overrides)
        else:
            extra.append(arg)
    before = set(os.listdir(folder))
    status, _out, err = run_main(capsys, *score_args(Path(), *extra, **files))
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastinfluence: error: ")
    assert expected in lines[0]
    assert "Traceback" not in err
    assert set(os.listdir(folder)) == before  # no output, no temporary file left behind


def test_library_errors_are_placed_by_their_argument_not_their_text():
    """Issue 10: library errors are placed on --train, --test or --target by InvalidArgumentError.argument."""
    from fastinfluence.exceptions import InvalidArgumentTypeError, InvalidArgumentValueError

    places = {"X": "--train file t.csv", "y_test": "--target 'label' in --test file s.csv"}

    def raised(error):
        """What ``library_errors`` turns ``error`` into (every error here is an Exception)."""
        try:
            with cli.errors.library_errors(places, "--test file s.csv"):
                raise error
        except Exception as caught:
            return caught
        pytest.fail(f"library_errors swallowed {error!r}")

    error = raised(InvalidArgumentTypeError("X", "must hold real numbers; non-numeric column: 'x1'"))
    assert isinstance(error, cli.InputError)
    assert str(error) == "--train file t.csv must hold real numbers; non-numeric column: 'x1'"
    error = raised(InvalidArgumentValueError("y_test", "has missing values in 1 row"))
    assert str(error) == "--target 'label' in --test file s.csv has missing values in 1 row"
    # errors without an argument: the step's fallback place, the message as it is
    assert str(raised(ValueError("y_test holds labels [2]"))) == "--test file s.csv: y_test holds labels [2]"
    # an argument the command line does not give is its own bug: exit status 1, not 2
    unknown = InvalidArgumentValueError("indices", "must lie in [0, 3)")
    assert raised(unknown) is unknown
    assert isinstance(raised(TypeError("unrelated")), TypeError)


@pytest.mark.parametrize("ext", [".csv", ".csv.gz"])
@pytest.mark.parametrize("option", ["--train", "--test"])
@pytest.mark.parametrize("extra_field", [",", ",0"], ids=["trailing-comma", "trailing-zero"])
def test_csv_rows_with_one_field_more_than_the_header_exit_2_instead_of_shifting_columns(
    data, capsys, extra_field, option, ext
):
    """Issue 9, section 4: pandas took the first column as the index and shifted the others left
    (with ',0' the label became all 0 and the command exited 0)."""
    folder, train, test = data
    frame = train if option == "--train" else test
    header, *rows = frame.to_csv(index=False).splitlines()
    text = "\n".join([header] + [row + extra_field for row in rows]) + "\n"
    path = folder / f"extra{ext}"
    path.write_bytes(gzip.compress(text.encode()) if ext == ".csv.gz" else text.encode())
    before = set(os.listdir(folder))
    status, _, err = run_main(capsys, *score_args(folder, **{option[2:]: path}))
    assert status == 2, err
    (line,) = err.strip().splitlines()
    d = len(frame.columns)
    assert f"{option} file {path} has {d} column names in its header but {d + 1} fields" in line
    assert "(line 2)" in line
    assert "trailing comma" in line
    assert set(os.listdir(folder)) == before


def test_csv_field_count_check_reads_a_quoted_comma_as_part_of_the_field(tmp_path, capsys):
    """The check above counts fields as pandas does: a quoted header name may hold commas."""
    train, test = (f.rename(columns={"x1": "x1, in cm"}) for f in make_frames())
    train.to_csv(tmp_path / "train.csv", index=False)  # the header reads x0,"x1, in cm",label,...
    test.to_csv(tmp_path / "test.csv", index=False)
    assert '"x1, in cm"' in (tmp_path / "train.csv").read_text().splitlines()[0]
    status, _, err = run_main(capsys, *score_args(tmp_path))
    assert status == 0, err
    assert read(tmp_path / "out.csv").shape == (len(train), 3 + len(test))


@pytest.mark.parametrize(
    ("model", "kind", "expected"),
    [
        (
            "logistic",
            "one-class",
            "--target 'label' in --train file {path} holds a single class (every row is 1)",
        ),
        ("smooth-hinge", "one-class", "holds a single class (every row is 1); a smooth-hinge classifier"),
        ("logistic", "one-row", "--train file {path} has 1 data row"),
        ("linear", "one-row", "--train file {path} has 1 data row"),
        ("poisson", "all-zero", "--target 'label' in --train file {path} is 0 in every row"),
    ],
    ids=[
        "logistic-one-class",
        "smooth-hinge-one-class",
        "logistic-one-row",
        "linear-one-row",
        "poisson-all-0",
    ],
)
def test_single_class_or_single_row_training_file_exits_2_before_fitting(
    data, capsys, monkeypatch, model, kind, expected
):
    """Issue 9, section 4: these fits have no optimum (or no meaning), yet exited 0."""
    folder, train, _ = data
    if kind == "one-row":
        train = train.iloc[:1]
    else:
        train = train.assign(label=1 if kind == "one-class" else 0)
    path = folder / "degenerate.csv"
    train.to_csv(path, index=False)
    fits = []
    make_model = cli.commands.make_model

    def make_recording_model(args):
        fitted = make_model(args)
        fit = fitted.fit
        fitted.fit = lambda *a, **k: fits.append(1) or fit(*a, **k)
        return fitted

    monkeypatch.setattr(cli.commands, "make_model", make_recording_model)
    status, _, err = run_main(capsys, *score_args(folder, "--model", model, train=path))
    assert status == 2, err
    (line,) = err.strip().splitlines()
    assert expected.format(path=path) in line
    assert fits == []  # refused before fitting
    assert not (folder / "out.csv").exists()


def test_bad_input_exit_status_from_a_real_process(data):
    folder, _, _ = data
    (folder / "out.csv").write_text("previous result\n")
    result = run_module(*score_args(Path(), target="missing", quiet=False), cwd=folder)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no column 'missing'" in result.stderr
    assert (folder / "out.csv").read_text() == "previous result\n"  # an existing output is left as it was


def test_unexpected_failure_exits_1_with_one_line(data, capsys, monkeypatch):
    folder, _, _ = data

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(fi, "Influence", broken)
    argv = score_args(folder, out="o.csv")
    status, _, err = run_main(capsys, *argv)
    assert status == 1
    assert err.strip().splitlines() == [
        (
            "fastinfluence: error: unexpected failure: RuntimeError: simulated bug "
            "(rerun with --verbose for the traceback)"
        )
    ]
    status, _, err = run_main(capsys, *argv, "--verbose")
    assert status == 1
    assert "Traceback" in err
    assert "simulated bug" in err
    assert not (folder / "o.csv").exists()


def test_failure_while_writing_leaves_no_partial_file(data, capsys, monkeypatch):
    folder, _, _ = data
    original = pd.DataFrame.to_csv

    def half_written(self, path, *args, **kwargs):
        original(self.iloc[:3], path, *args, **kwargs)  # a partial file on disk ...
        raise RuntimeError("disk on fire")  # ... then a failure

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    before = set(os.listdir(folder))
    options = ("--top-k", "2", "--self-influence")
    status, _, err = run_main(
        capsys, *score_args(folder, *options, train="train.parquet", test="test.parquet", out="o.csv")
    )
    assert status == 1
    assert "disk on fire" in err
    assert set(os.listdir(folder)) == before


def test_output_file_gets_the_usual_permissions(data, capsys):
    folder, _, _ = data
    status, _, _ = run_main(capsys, *score_args(folder, "--self-influence", out="o.csv"))
    assert status == 0
    mask = os.umask(0)
    os.umask(mask)
    assert (folder / "o.csv").stat().st_mode & 0o777 == 0o666 & ~mask


# -- score: signals and partial outputs (issue 9, section 4) -----------------------------------


@pytest.fixture
def large_data(tmp_path):
    """Train/test CSVs whose full matrix (8000 x 500) takes seconds to write: time to send a signal.

    Also small_train.csv and small_test.csv, for a quick second run.
    """
    train, test = make_frames(n=8000, m=500)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    small_train, small_test = make_frames()
    small_train.to_csv(tmp_path / "small_train.csv", index=False)
    small_test.to_csv(tmp_path / "small_test.csv", index=False)
    return tmp_path


def start_score(folder, out):
    """``python -m fastinfluence score`` on large_data's files in a subprocess, writing the full matrix.

    The child must start with SIGINT at its default. An ignored SIGINT (a test run started in the
    background) survives exec, and Python then keeps ignoring it; a handled one is reset to the
    default by exec. So while starting the child, SIGINT is handled here rather than ignored (a hook
    in the child instead, preexec_fn, is unsafe in a process with threads).
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "fastinfluence", *score_args(Path(), out=out)],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        if previous == signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


def wait_for_partial_output(process, out):
    """Poll until ``process`` has started writing ``out``: its partial file exists. Returns that path."""
    partial = Path(cli.partial_output_path(str(out), pid=process.pid))
    deadline = time.monotonic() + TIMEOUT
    while not partial.exists():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the run ended (status {process.returncode}) before writing {partial.name}: {err}")
        if time.monotonic() > deadline:
            process.kill()
            process.communicate()
            pytest.fail(f"no {partial.name} after {TIMEOUT} s")
        time.sleep(0.005)
    return partial


needs_posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@needs_posix_signals
@pytest.mark.parametrize(
    ("signum", "status", "message"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_sigterm_is_handled_like_sigint_no_partial_output_left(large_data, signum, status, message):
    """Issue 9, section 4: SIGTERM killed the run and left its temporary file; SIGINT already cleaned up."""
    out = large_data / "scores.csv"
    before = set(os.listdir(large_data))
    process = start_score(large_data, out)
    wait_for_partial_output(process, out)
    process.send_signal(signum)
    _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == status, err
    assert err.strip().splitlines() == [f"fastinfluence: error: {message}"]
    assert set(os.listdir(large_data)) == before  # no output, no partial file


def test_sigterm_during_a_compiled_kernel_exits_143_not_130(data, capsys, monkeypatch):
    """The compiled core re-raises whatever a signal handler raised during a kernel as KeyboardInterrupt
    (cpp/bindings/module.cpp): SIGTERM must still exit 143. The kernel is simulated, the signal is real."""
    folder, _, _ = data
    handler_before = signal.getsignal(signal.SIGTERM)

    def loss_stopped_as_the_core_stops(self, X_test, y_test, indices=None, *, out=None):
        # Never send SIGTERM without a handler of the command's: it would end the test run.
        assert signal.getsignal(signal.SIGTERM) not in (handler_before, signal.SIG_DFL, signal.SIG_IGN, None)
        try:
            signal.raise_signal(signal.SIGTERM)  # the handler runs before raise_signal returns
        except BaseException:
            raise KeyboardInterrupt from None  # what the core's interrupt hook makes of it
        raise AssertionError("the SIGTERM handler did not raise")

    monkeypatch.setattr(fi.Influence, "loss", loss_stopped_as_the_core_stops)
    before = set(os.listdir(folder))
    status, _, err = run_main(capsys, *score_args(folder))
    assert status == 143, err
    assert err.strip().splitlines() == ["fastinfluence: error: terminated (SIGTERM)"]
    assert signal.getsignal(signal.SIGTERM) == handler_before  # restored when main returns
    assert set(os.listdir(folder)) == before


@needs_posix_signals
def test_partial_output_of_a_killed_run_is_removed_by_the_next_run(data, capsys):
    """Issue 9, section 4: a SIGKILLed run left a hidden .scores.csv.XXXX.tmp.csv nobody removed."""
    folder, _, _ = data
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    dead_pid = int(ended.stdout)
    running = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        out, second = folder / "top.csv", folder / "top.self_influence.csv"
        stale = [Path(cli.partial_output_path(str(path), pid=dead_pid)) for path in (out, second)]
        kept = [
            Path(cli.partial_output_path(str(out), pid=running.pid)),  # its run may still finish
            folder / f"top.csv.fastinfluence-partial-elsewhere.invalid-{dead_pid}",  # not checkable here
            Path(cli.partial_output_path(str(folder / "other.csv"), pid=dead_pid)),  # another --out
        ]
        for path in stale + kept:
            path.write_text("test_row,rank\n0,")
        status, _, err = run_main(
            capsys,
            *score_args(folder, "--top-k", "2", "--self-influence", out=out, quiet=False),
        )
    finally:
        running.communicate(input=b"", timeout=TIMEOUT)
    assert status == 0, err
    assert [path.exists() for path in stale] == [False, False]
    assert [path.exists() for path in kept] == [True, True, True]
    for path in stale:
        assert f"fastinfluence: note: removed {path.name}, the partial output of an earlier run" in err
    assert len(read(out)) == 2 * 2 * 12
    assert len(read(second)) == 60


@needs_posix_signals
def test_sigkill_leaves_a_findable_partial_output_that_the_next_run_removes(large_data, capsys):
    """Issue 9, section 4: what a SIGKILLed run leaves is named after --out and the pid, and the next
    run with the same --out removes it."""
    out = large_data / "scores.csv"
    before = set(os.listdir(large_data))
    process = start_score(large_data, out)
    partial = wait_for_partial_output(process, out)
    process.kill()
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    assert set(os.listdir(large_data)) - before == {partial.name}
    assert partial.name.startswith("scores.csv.fastinfluence-partial-")
    assert partial.name.endswith(f"-{process.pid}")
    status, _, err = run_main(
        capsys,
        *score_args(large_data, train="small_train.csv", test="small_test.csv", out=out, quiet=False),
    )
    assert status == 0, err
    assert f"removed {partial.name}" in err
    assert set(os.listdir(large_data)) - before == {"scores.csv", "scores.test_rows.csv"}
    assert read(out).shape == (60, 3 + 12)


@pytest.mark.parametrize("model", ["logistic", "multinomial"])
def test_score_a_multiclass_target_with_class_names(tmp_path, capsys, model):
    # --model logistic on three classes is the multinomial model; labels are strings
    rng = np.random.default_rng(5)
    X = rng.standard_normal((80, 3))
    y = np.array(["red", "green", "blue"])[
        np.argmax(X @ rng.standard_normal((3, 3)) + rng.gumbel(size=(80, 3)), 1)
    ]
    features = ["a", "b", "c"]
    train = pd.DataFrame(X[:60], columns=features).assign(label=y[:60])
    test = pd.DataFrame(X[60:], columns=features).assign(label=y[60:])
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run_main(capsys, *score_args(tmp_path, "--model", model, "--top-k", "3"))
    assert status == 0, err
    X, X_test = standardized(train, test, features)
    fitted = fi.MultinomialLogisticRegression(l2=1e-3).fit(X, train["label"])
    expected = fi.Influence(fitted, X, train["label"].to_numpy()).top_k(X_test, test["label"].to_numpy(), 3)
    table = read(tmp_path / "out.csv")
    np.testing.assert_array_equal(table["test_label"], test["label"].to_numpy()[table["test_row"]])
    np.testing.assert_array_equal(table["train_prediction"], fitted.predict(X)[table["train_row"]])
    helpful = table[table["kind"] == "helpful"].sort_values(["test_row", "rank"])
    np.testing.assert_allclose(helpful["score"].to_numpy(), expected.helpful_scores.ravel(), rtol=1e-8)


# -- score: columns (issue 13) -----------------------------------------------------------------


def test_drop_features_booleans_and_a_test_file_without_the_unused_columns(tmp_path, capsys):
    train, test = make_frames(seed=3)
    rng = np.random.default_rng(3)
    train = train.assign(flag=rng.random(len(train)) < 0.4, notes=[f"visit {i}" for i in range(len(train))])
    test = test.assign(flag=rng.random(len(test)) < 0.4)  # no notes: the run does not use them
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run_main(capsys, *score_args(tmp_path, "--drop", "notes"))
    assert status == 0, err
    X, X_test = standardized(train, test, ["x0", "x1", "x2", "x3"])
    X = np.column_stack([X, train["flag"].to_numpy(dtype=float)])  # booleans stay 0/1
    X_test = np.column_stack([X_test, test["flag"].to_numpy(dtype=float)])
    inf = fi.Influence(fi.LogisticRegression(l2=1e-3).fit(X, train["label"]), X, train["label"])
    table = read(tmp_path / "out.csv")
    np.testing.assert_allclose(matrix_of(table), inf.loss(X_test, test["label"]), rtol=1e-9, atol=1e-12)
    # --features: these columns only, in this order (the scores do not depend on the order)
    report = tmp_path / "r.json"
    status, _, err = run_main(
        capsys, *score_args(tmp_path, "--features", "x2", "x0", "--report", str(report))
    )
    assert status == 0, err
    X, X_test = standardized(train, test, ["x0", "x2"])
    inf = fi.Influence(fi.LogisticRegression(l2=1e-3).fit(X, train["label"]), X, train["label"])
    table = read(tmp_path / "out.csv")
    np.testing.assert_allclose(matrix_of(table), inf.loss(X_test, test["label"]), rtol=1e-9, atol=1e-12)
    described = json.loads(report.read_text())
    assert described["encoding"]["model_columns"] == ["x2", "x0"]
    assert described["not_features"] == dict.fromkeys(["x1", "x3", "flag", "notes"], "not in --features")
    assert described["outputs"] == [str(tmp_path / "out.csv"), str(tmp_path / "out.test_rows.csv")]


def test_a_numeric_column_named_in_categorical_with_missing_values(tmp_path, capsys):
    train, test = make_frames(seed=4)
    rng = np.random.default_rng(4)
    train["x3"] = rng.integers(1, 4, len(train)).astype(float)
    train.loc[::9, "x3"] = np.nan  # a level of its own: x3=<missing>
    test["x3"] = rng.integers(1, 5, len(test)).astype(float)  # 4 was not in --train
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run_main(capsys, *score_args(tmp_path, "--categorical", "x3", quiet=False))
    assert status == 0, err
    assert "one-hot: 'x3' -> 4 columns x3=VALUE ('1', '2', '3', '<missing>')" in err
    unseen = int((test["x3"] == 4).sum())
    where = f"--test file {tmp_path / 'test.csv'}"
    assert f"column 'x3' of {where} has values not seen in --train in {unseen} rows ('4')" in err
    X, X_test = standardized(train, test, ["x0", "x1", "x2"])
    levels = np.array([1.0, 2.0, 3.0])
    X = np.column_stack([X, train["x3"].to_numpy()[:, None] == levels, train["x3"].isna()]).astype(float)
    X_test = np.column_stack([X_test, test["x3"].to_numpy()[:, None] == levels, test["x3"].isna()]).astype(
        float
    )
    inf = fi.Influence(fi.LogisticRegression(l2=1e-3).fit(X, train["label"]), X, train["label"])
    np.testing.assert_allclose(
        matrix_of(read(tmp_path / "out.csv")), inf.loss(X_test, test["label"]), rtol=1e-9, atol=1e-12
    )


def test_repeated_or_missing_ids_are_carried_with_a_warning(data, capsys):
    folder, train, test = data
    with_ids = train.assign(case=[f"c{i // 2}" for i in range(len(train))])  # each id twice
    with_ids.loc[5, "case"] = None
    with_ids.to_csv(folder / "ids.csv", index=False)
    test.assign(case=[f"t{i}" for i in range(len(test))]).to_csv(folder / "ids_test.csv", index=False)
    options = ("--id-column", "case", "--self-influence")
    status, _, err = run_main(capsys, *score_args(folder, *options, train="ids.csv", test="ids_test.csv"))
    assert status == 0, err
    (line,) = err.strip().splitlines()
    assert "--id-column 'case' of --train file" in line
    assert "repeats 29 values (such as 'c0', in 2 rows) and is missing in 1 row" in line
    table = read(folder / "out.csv")
    np.testing.assert_array_equal(
        table["train_id"].fillna("-"), with_ids["case"].fillna("-")[table["train_row"]]
    )


@pytest.mark.parametrize(
    ("case", "options", "expected", "not_expected"),
    [
        ("max-iter", ["--max-iter", "1"], "did not converge (reached max_iter;", "--standardize"),
        ("separable", ["--l2", "0"], "give --l2 > 0 (for example 1e-3, the default)", "--max-iter"),
        (
            "collinear",
            ["--l2", "0", "--model", "linear"],
            "influence values would be meaningless: the feature columns are nearly collinear: --drop some",
            "standardise",
        ),
    ],
    ids=["max-iter", "separable", "collinear"],
)
def test_fit_and_hessian_failures_give_advice_that_fits_the_cause(
    tmp_path, capsys, case, options, expected, not_expected
):
    """Issue 13: every failed fit was told to raise --l2 or --max-iter, which helps only some."""
    train, test = make_frames(seed=6)
    if case == "separable":
        train["label"] = (train["x0"] > 0).astype(int)  # x0 separates the classes
    if case == "collinear":
        train["x3"], test["x3"] = 2 * train["x1"] - train["x0"], 2 * test["x1"] - test["x0"]
        train["label"], test["label"] = train["x0"] + train["x2"], test["x0"] + test["x2"]
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    status, _, err = run_main(capsys, *score_args(tmp_path, *options))
    assert status == 2, err
    (line,) = err.strip().splitlines()
    assert expected in line
    assert not_expected not in line
    if case == "max-iter":
        advice = "raise --max-iter (it is 1; Newton's method rarely needs more than 30 iterations)"
        assert line.endswith(f"influence needs the optimum: {advice}")


# -- --validate: the accuracy certificate ------------------------------------------------------


def test_validate_reports_the_certificate_of_the_api(data, capsys):
    folder, train, test = data
    report = folder / "r.json"
    options = ("--top-k", "2", "--validate", "3", "--validate-seed", "5", "--report", str(report))
    status, _, err = run_main(capsys, *score_args(folder, *options, quiet=False))
    assert status == 0, err
    assert "accuracy of the estimates against exact refits (--validate)" in err
    assert "6 rows refitted exactly, 3 of largest |influence| and 3 at random" in err
    inf, X_test, y_test = reference_influence(train, test, fi.LogisticRegression, l2=1e-3)
    expected = inf.validate(X_test, y_test, n_top=3, n_random=3, random_state=5)
    described = json.loads(report.read_text())["validation"]
    assert described["target"] == "TestLoss"
    assert described["train_rows"] == expected.rows.tolist()
    assert described["kinds"] == ["top"] * 3 + ["random"] * 3
    assert described["columns"] == len(test)
    for method in ("influence", "newton"):
        for name, value in expected.metrics[method].items():
            assert described["estimates"][method][name] == pytest.approx(value, rel=1e-6, abs=1e-12)
    assert set(described["estimates_by_kind"]) == {"top", "random"}


def test_validate_uses_the_mean_test_loss_above_the_matrix_limit(data, capsys):
    folder, _, _ = data
    report = folder / "r.json"
    options = ("--top-k", "1", "--validate", "2", "--max-matrix-mb", "1e-4", "--report", str(report))
    status, _, err = run_main(capsys, *score_args(folder, *options))
    assert status == 0, err
    assert err == ""  # --quiet: the certificate goes to the report only
    described = json.loads(report.read_text())["validation"]
    assert described["target"] == "MeanTestLoss"
    assert described["columns"] == 1


def test_without_validate_the_report_has_none(data, capsys):
    folder, _, _ = data
    report = folder / "r.json"
    status, _, err = run_main(capsys, *score_args(folder, "--top-k", "1", "--report", str(report)))
    assert status == 0, err
    assert json.loads(report.read_text())["validation"] is None


def test_validate_must_be_positive(data, capsys):
    folder, _, _ = data
    status, _, err = run_main(capsys, *score_args(folder, "--validate", "0"))
    assert status == 2
    assert "--validate must be >= 1" in err


def test_demo_certificate_is_the_librarys():
    from fastinfluence.demo import CERTIFICATE_RANDOM, CERTIFICATE_TOP, compute_demo

    result = compute_demo(seed=2, n_loo=5)
    certificate = result.certificate
    assert certificate.rows.size == CERTIFICATE_TOP + CERTIFICATE_RANDOM
    expected = fi.exact_loo(
        result.model, result.X_train, result.y_train, certificate.rows, result.X_test, result.y_test
    )
    np.testing.assert_allclose(certificate.refit, expected, rtol=1e-12, atol=1e-15)
    assert certificate.metrics["newton"]["pearson"] > 0.99
    assert certificate.metrics["newton"]["max_abs_error"] < certificate.metrics["influence"]["max_abs_error"]
