"""``fastinfluence score`` on real data sets as people have them: class names, text columns, row ids,
raw units, missing categories; written to CSV and Parquet.

The data ship with statsmodels and scikit-learn (no network). Each output is checked against the
library called directly on model matrices built here independently of the command's encoder
(indicators by comparison with the sorted training values, NumPy standardisation): influence
scores do not depend on the order of the model columns, so only the encoding's meaning must agree.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conftest import assert_same_ranking

import fastinfluence as fi
from fastinfluence import cli

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("tqdm")
sm = pytest.importorskip("statsmodels.api")
datasets = pytest.importorskip("sklearn.datasets")


def run(capsys, folder, train, test, target, *options, out="out.csv"):
    """``score`` in-process on ``folder/train`` and ``folder/test``: (exit status, stderr)."""
    argv = ["score", "--train", str(folder / train), "--test", str(folder / test), "--target", target]
    status = cli.main([*argv, *options, "--out", str(folder / out), "--quiet"])
    return status, capsys.readouterr().err


def read(path):
    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def write_split(folder, name, frame, test_rows, fmt="csv"):
    """``name_train.FMT`` and ``name_test.FMT`` (the rows ``test_rows`` of ``frame``); returns both
    frames, numbered from 0."""
    mask = np.zeros(len(frame), dtype=bool)
    mask[test_rows] = True
    train, test = frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
    for part, table in (("train", train), ("test", test)):
        path = folder / f"{name}_{part}.{fmt}"
        if fmt == "csv":
            table.to_csv(path, index=False)
        else:
            table.to_parquet(path, index=False)
    return train, test


def encode(train, test, numeric, categorical=(), *, standardize=True):
    """Reference model matrices (train, test): the numeric columns standardised with the training
    mean and population standard deviation, then one 0/1 column per sorted training value of each
    categorical column (and one for missing values, when the training rows have any)."""
    X, X_test = train[numeric].to_numpy(dtype=float), test[numeric].to_numpy(dtype=float)
    if standardize:
        mean, sd = X.mean(axis=0), X.std(axis=0)
        X, X_test = (X - mean) / sd, (X_test - mean) / sd
    blocks, test_blocks = [X], [X_test]
    for column in categorical:
        levels = np.array(sorted(train[column].dropna().unique().tolist()), dtype=object)
        for frame, into in ((train, blocks), (test, test_blocks)):
            values = frame[column].to_numpy(dtype=object)
            parts = [values[:, None] == levels[None, :]]
            if train[column].isna().any():
                parts.append(frame[column].isna().to_numpy()[:, None])
            into.append(np.hstack(parts).astype(float))
    return np.hstack(blocks), np.hstack(test_blocks)


def check_top_k(table, inf, X, X_test, y_test, k, *, ids=None):
    """The --top-k output against ``Influence.top_k`` of the model fitted on the reference matrices
    (X, X_test), with the labels, predictions and, given ``ids`` (train ids, test ids), the ids of
    the two rows of each line."""
    expected = inf.top_k(X_test, y_test, k=k)
    full = inf.loss(X_test, y_test)
    m = X_test.shape[0]
    assert len(table) == 2 * k * m
    for kind, rows, scores in (
        ("helpful", expected.helpful_indices, expected.helpful_scores),
        ("harmful", expected.harmful_indices, expected.harmful_scores),
    ):
        part = table[table["kind"] == kind].sort_values(["test_row", "rank"])
        np.testing.assert_array_equal(part["test_row"].to_numpy(), np.repeat(np.arange(m), k))
        assert_same_ranking(part["train_row"].to_numpy().reshape(m, k), rows, full, 1e-8, err_msg=kind)
        np.testing.assert_allclose(part["score"].to_numpy().reshape(m, k), scores, rtol=1e-8, atol=1e-12)
    train_rows, test_rows = table["train_row"].to_numpy(), table["test_row"].to_numpy()
    assert_predictions(table["train_prediction"], inf.model.predict(X)[train_rows])
    assert_predictions(table["test_prediction"], inf.model.predict(X_test)[test_rows])
    np.testing.assert_array_equal(table["test_label"], np.asarray(y_test)[test_rows])
    if ids is not None:
        np.testing.assert_array_equal(table["train_id"], np.asarray(ids[0])[train_rows])
        np.testing.assert_array_equal(table["test_id"], np.asarray(ids[1])[test_rows])


def assert_predictions(written, expected):
    """Classes must be equal; predicted means agree to rounding (the fits are different computations)."""
    if np.asarray(expected).dtype.kind == "f":
        np.testing.assert_allclose(written, expected, rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_array_equal(written, expected)


def reference(model, X, y):
    """``fi.Influence`` of ``model`` fitted on (X, y): the library called directly."""
    return fi.Influence(model.fit(X, y), X, y)


def digest(*paths):
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]


# -- statsmodels: fair (affairs), with the occupations as text and a respondent id -----------------

OCCUPATIONS = {
    1: "student",
    2: "farming, semi-skilled or unskilled",
    3: "white collar",
    4: "teacher, nurse, writer, technician or skilled",
    5: "managerial, administrative or business",
    6: "professional with advanced degree",
}


@pytest.fixture(scope="module")
def fair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fair")
    data = sm.datasets.fair.load_pandas().data
    frame = data.assign(
        occupation=data["occupation"].map(OCCUPATIONS),
        occupation_husb=data["occupation_husb"].map(OCCUPATIONS),
        affairs=np.where(data["affairs"] > 0, "yes", "no"),
    )
    frame.insert(0, "respondent_id", np.arange(100001, 100001 + len(frame)))
    rng = np.random.default_rng(0)
    train, test = write_split(folder, "fair", frame, rng.choice(len(frame), 400, replace=False))
    return folder, train, test


FAIR_NUMERIC = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]
FAIR_TEXT = ["occupation", "occupation_husb"]


def test_fair_text_columns_ids_and_class_names(fair, capsys):
    folder, train, test = fair
    before = digest(folder / "fair_train.csv", folder / "fair_test.csv")
    options = ["--id-column", "respondent_id", "--top-k", "5", "--self-influence"]
    options += ["--report", str(folder / "r.json")]
    status, err = run(capsys, folder, "fair_train.csv", "fair_test.csv", "affairs", *options, out="top.csv")
    assert status == 0, err
    assert err == ""
    assert digest(folder / "fair_train.csv", folder / "fair_test.csv") == before  # inputs untouched
    X, X_test = encode(train, test, FAIR_NUMERIC, FAIR_TEXT)
    inf = reference(fi.LogisticRegression(l2=1e-3), X, train["affairs"])
    table = read(folder / "top.csv")
    assert list(table.columns) == [
        *("test_row", "test_id", "test_label", "test_prediction", "rank"),
        *("train_row", "train_id", "train_label", "train_prediction", "score", "kind"),
    ]
    ids = (train["respondent_id"], test["respondent_id"])
    check_top_k(table, inf, X, X_test, test["affairs"].to_numpy(), 5, ids=ids)
    assert set(table["train_prediction"]) <= {"yes", "no"}
    own = read(folder / "top.self_influence.csv")
    assert list(own.columns) == ["train_row", "train_id", "train_label", "train_prediction", "self_influence"]
    np.testing.assert_allclose(
        own["self_influence"], inf.self_influence()[own["train_row"]], rtol=1e-8, atol=1e-12
    )
    np.testing.assert_array_equal(own["train_id"], train["respondent_id"].to_numpy()[own["train_row"]])
    np.testing.assert_array_equal(own["train_label"], train["affairs"].to_numpy()[own["train_row"]])


def test_fair_report_records_the_encoding_and_the_coefficients(fair, capsys):
    folder, train, test = fair
    options = ["--id-column", "respondent_id", "--top-k", "1", "--report", str(folder / "fair.json")]
    status, err = run(
        capsys, folder, "fair_train.csv", "fair_test.csv", "affairs", *options, out="t1.parquet"
    )
    assert status == 0, err
    report = json.loads((folder / "fair.json").read_text())
    assert report["id_column"] == "respondent_id"
    assert report["not_features"] == {"respondent_id": "--id-column"}
    assert report["model"]["classes"] == ["no", "yes"]
    assert report["model"]["converged"] is True
    columns = {c["column"]: c for c in report["encoding"]["columns"]}
    assert list(columns) == FAIR_NUMERIC + FAIR_TEXT  # the file's order
    for name in FAIR_NUMERIC:
        assert columns[name]["center"] == pytest.approx(train[name].mean(), rel=1e-12)
        assert columns[name]["scale"] == pytest.approx(train[name].std(ddof=0), rel=1e-12)
    assert columns["occupation"]["levels"] == sorted(OCCUPATIONS.values())
    assert columns["occupation"]["encoded"][0] == "occupation=farming, semi-skilled or unskilled"
    # the coefficients, matched by model column name to a fit on the reference matrices
    X, _ = encode(train, test, FAIR_NUMERIC, FAIR_TEXT)
    model = fi.LogisticRegression(l2=1e-3).fit(X, train["affairs"])
    names = FAIR_NUMERIC + [f"{c}={v}" for c in FAIR_TEXT for v in sorted(OCCUPATIONS.values())]
    expected = dict(zip([*names, "intercept"], model.theta_))
    got = dict(zip(report["coefficients"]["model_columns"], report["coefficients"]["values"]))
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-7, abs=1e-9)


def test_fair_id_named_column_is_refused_without_a_choice(fair, capsys):
    folder, _, _ = fair
    status, err = run(capsys, folder, "fair_train.csv", "fair_test.csv", "affairs", "--top-k", "1")
    assert status == 2
    (line,) = err.strip().splitlines()
    assert "column 'respondent_id' of --train file" in line
    assert "looks like a row id" in line
    assert "--id-column 'respondent_id'" in line
    assert not (folder / "out.csv").exists()
    # named in --features it is a feature, as asked
    features = ["--features", "respondent_id", *FAIR_NUMERIC]
    status, err = run(capsys, folder, "fair_train.csv", "fair_test.csv", "affairs", *features, "--top-k", "1")
    assert status == 0, err


# -- statsmodels: anes96 (1996 election), labels as documented, Parquet, missing and unseen values --

PARTIES = [
    "Strong Democrat",
    "Weak Democrat",
    "Independent-Democrat",
    "Independent-Independent",
    "Independent-Republican",
    "Weak Republican",
    "Strong Republican",
]
EDUCATION = [
    "1-8 grades",
    "Some high school",
    "High school graduate",
    "Some college",
    "College degree",
    "Master's degree",
    "PhD",
]


@pytest.fixture(scope="module")
def anes96(tmp_path_factory):
    folder = tmp_path_factory.mktemp("anes96")
    data = sm.datasets.anes96.load_pandas().data.drop(columns="logpopul")
    frame = data.assign(
        PID=np.array(PARTIES, dtype=object)[data["PID"].astype(int)],
        educ=np.array(EDUCATION, dtype=object)[data["educ"].astype(int) - 1],
        vote=np.where(data["vote"] == 1, "Dole", "Clinton"),
    )
    frame.loc[frame.index[::37], "educ"] = None  # not answered: a level of its own
    test_rows = np.arange(1, len(frame), 5)
    frame.loc[frame.index[test_rows[:4]], "PID"] = "Reform"  # a party --train never saw
    train, test = write_split(folder, "anes96", frame, test_rows, fmt="parquet")
    return folder, train, test


def test_anes96_parquet_missing_and_unseen_categories(anes96, capsys):
    folder, train, test = anes96
    assert train["educ"].isna().any()
    assert test["educ"].isna().any()
    assert "Reform" not in set(train["PID"])
    assert (test["PID"] == "Reform").sum() == 4
    status, err = run(
        capsys, folder, "anes96_train.parquet", "anes96_test.parquet", "vote", out="scores.parquet"
    )
    assert status == 0, err
    (warning,) = err.strip().splitlines()
    assert warning.startswith("fastinfluence: warning: InputWarning: column 'PID' of --test file")
    assert "values not seen in --train in 4 rows ('Reform')" in warning
    numeric = ["popul", "TVnews", "selfLR", "ClinLR", "DoleLR", "age", "income"]
    X, X_test = encode(train, test, numeric, ["PID", "educ"])
    assert X_test[(test["PID"] == "Reform").to_numpy()][:, len(numeric) : len(numeric) + 7].sum() == 0
    inf = reference(fi.LogisticRegression(l2=1e-3), X, train["vote"])
    table = read(folder / "scores.parquet")
    assert list(table.columns[:3]) == ["train_row", "train_label", "train_prediction"]
    scores = table.filter(regex="^test_[0-9]+$").to_numpy()
    np.testing.assert_allclose(scores, inf.loss(X_test, test["vote"]), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(table["train_prediction"], inf.model.predict(X))
    rows = read(folder / "scores.test_rows.parquet")
    assert list(rows.columns) == ["test_row", "test_label", "test_prediction"]
    np.testing.assert_array_equal(rows["test_label"], test["vote"])
    np.testing.assert_array_equal(rows["test_prediction"], inf.model.predict(X_test))


# -- statsmodels: star98 (test results of 303 school districts), raw units over 5 orders of size ----


@pytest.fixture(scope="module")
def star98(tmp_path_factory):
    folder = tmp_path_factory.mktemp("star98")
    data = sm.datasets.star98.load_pandas().data
    frame = data.assign(share_above=data["NABOVE"] / (data["NABOVE"] + data["NBELOW"]))
    train, test = write_split(folder, "star98", frame, np.arange(0, len(frame), 6))
    return folder, train, test


def test_star98_standardising_changes_the_scores_only_through_l2(star98, capsys):
    """With --l2 0 (and an intercept) the fitted model is the same on standardised and raw columns,
    and so are its influence scores; with --l2 > 0 the penalty is not unit-free, and they differ."""
    folder, train, test = star98
    features = [c for c in train.columns if c not in ("NABOVE", "NBELOW", "share_above")]
    raw = train[features].to_numpy()
    spread = raw.std(axis=0)
    assert spread.max() / spread.min() > 1e4  # the raw columns' scales differ widely
    common = ["--model", "linear", "--drop", "NABOVE", "NBELOW"]
    outputs = {}
    for name, options in {
        "std-l2-0": ["--l2", "0"],
        "raw-l2-0": ["--l2", "0", "--no-standardize"],
        "std": [],
        "raw": ["--no-standardize"],
    }.items():
        status, err = run(
            capsys, folder, "star98_train.csv", "star98_test.csv", "share_above", *common, *options
        )
        assert status == 0, err
        outputs[name] = read(folder / "out.csv").filter(regex="^test_[0-9]+$").to_numpy()
    y, X_test_raw = train["share_above"], test[features].to_numpy()
    unpenalised = reference(fi.LinearRegression(l2=0.0), raw, y).loss(X_test_raw, test["share_above"])
    # H of the raw problem has condition number ~1e13 (equilibrated ~1e9): agreement to ~1e-6
    np.testing.assert_allclose(outputs["raw-l2-0"], unpenalised, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(outputs["std-l2-0"], unpenalised, rtol=1e-6, atol=1e-9)
    penalised_raw = reference(fi.LinearRegression(l2=1e-3), raw, y).loss(X_test_raw, test["share_above"])
    np.testing.assert_allclose(outputs["raw"], penalised_raw, rtol=1e-8, atol=1e-12)
    X, X_test = encode(train, test, features)
    penalised = reference(fi.LinearRegression(l2=1e-3), X, y).loss(X_test, test["share_above"])
    np.testing.assert_allclose(outputs["std"], penalised, rtol=1e-8, atol=1e-12)
    assert not np.allclose(outputs["std"], outputs["raw"], rtol=1e-2)


# -- statsmodels: spector (32 students), as written with pandas' index; ids and their look-alikes ---


@pytest.fixture(scope="module")
def spector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spector")
    data = sm.datasets.spector.load_pandas().data
    frame = data.assign(
        PSI=np.where(data["PSI"] == 1, "PSI", "traditional"),
        GRADE=np.where(data["GRADE"] == 1, "improved", "not improved"),
    )
    test_rows = np.arange(0, len(frame), 4)
    mask = np.isin(np.arange(len(frame)), test_rows)
    frame[~mask].to_csv(folder / "train.csv")  # with the index: a first column without a name
    frame[mask].to_csv(folder / "test.csv")
    return folder, frame[~mask], frame[mask]


def test_spector_pandas_index_column_is_not_a_feature(spector, capsys):
    folder, train, test = spector
    assert (folder / "train.csv").read_text().startswith(",GPA,")
    status, err = run(capsys, folder, "train.csv", "test.csv", "GRADE", "--self-influence")
    assert status == 2
    (line,) = err.strip().splitlines()
    assert "column 'Unnamed: 0' of --train file" in line
    assert "looks like a row id" in line
    status, err = run(
        capsys, folder, "train.csv", "test.csv", "GRADE", "--id-column", "Unnamed: 0", "--top-k", "2"
    )
    assert status == 0, err
    X, X_test = encode(train, test, ["GPA", "TUCE"], ["PSI"])
    inf = reference(fi.LogisticRegression(l2=1e-3), X, train["GRADE"])
    ids = (train.index.to_numpy(), test.index.to_numpy())  # the pandas index the files were written with
    check_top_k(read(folder / "out.csv"), inf, X, X_test, test["GRADE"].to_numpy(), 2, ids=ids)
    status, err = run(
        capsys, folder, "train.csv", "test.csv", "GRADE", "--drop", "Unnamed: 0", "--top-k", "2"
    )
    assert status == 0, err


def test_a_column_of_distinct_whole_numbers_is_used_with_a_warning(tmp_path, capsys):
    data = sm.datasets.spector.load_pandas().data
    frame = data.assign(enrolment=np.random.default_rng(1).permutation(len(data)) + 5000)
    frame.iloc[:24].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[24:].to_csv(tmp_path / "test.csv", index=False)
    status, err = run(capsys, tmp_path, "train.csv", "test.csv", "GRADE", "--top-k", "1")
    assert status == 0, err
    (line,) = err.strip().splitlines()
    assert "warning: InputWarning: column 'enrolment' of --train file" in line
    assert "holds a different whole number in each of its 24 rows, as a row id does; it is used" in line
    features = ["--features", "GPA", "TUCE", "PSI", "enrolment"]
    status, err = run(capsys, tmp_path, "train.csv", "test.csv", "GRADE", *features, "--top-k", "1")
    assert (status, err) == (0, "")  # named: no warning


def test_a_column_nearly_constant_beside_the_intercept_is_named_with_no_standardize(tmp_path, capsys):
    """Issue 13: on unscaled data the fit failed with advice (raise --l2, --max-iter) that did not
    help. Here the time each exam started, in Unix seconds, all within ten minutes."""
    data = sm.datasets.spector.load_pandas().data
    started = 1_700_000_000 + np.random.default_rng(2).integers(0, 600, len(data))
    frame = data.assign(started=started.astype(float))
    frame.iloc[:24].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[24:].to_csv(tmp_path / "test.csv", index=False)
    status, err = run(capsys, tmp_path, "train.csv", "test.csv", "GRADE", "--no-standardize")
    assert status == 2
    (line,) = err.strip().splitlines()
    assert "did not converge" in line
    assert "column 'started' varies by" in line
    assert "nearly constant beside the intercept" in line
    assert "standardise with --standardize" in line
    assert "--max-iter" not in line
    status, err = run(capsys, tmp_path, "train.csv", "test.csv", "GRADE")  # standardised: fine
    assert status == 0, err
    train, test = frame.iloc[:24], frame.iloc[24:]
    X, X_test = encode(train, test, ["GPA", "TUCE", "PSI", "started"])
    inf = reference(fi.LogisticRegression(l2=1e-3), X, train["GRADE"])
    scores = read(tmp_path / "out.csv").filter(regex="^test_[0-9]+$").to_numpy()
    np.testing.assert_allclose(scores, inf.loss(X_test, test["GRADE"]), rtol=1e-8, atol=1e-12)


# -- statsmodels: randhie (20,190 person-years of doctor visits), Poisson -------------------------


def test_randhie_poisson_top_k(tmp_path, capsys):
    data = sm.datasets.randhie.load_pandas().data
    train, test = write_split(tmp_path, "randhie", data, np.arange(0, len(data), 100), fmt="parquet")
    status, err = run(
        capsys, tmp_path, "randhie_train.parquet", "randhie_test.parquet", "mdvis", "--model", "poisson",
        "--top-k", "3", out="top.parquet",
    )  # fmt: skip
    assert status == 0, err
    X, X_test = encode(train, test, [c for c in data.columns if c != "mdvis"])
    inf = reference(fi.PoissonRegression(l2=1e-3), X, train["mdvis"])
    check_top_k(read(tmp_path / "top.parquet"), inf, X, X_test, test["mdvis"].to_numpy(), 3)


# -- statsmodels: grunfeld (investment of 11 firms), firm names and years as categories ------------


def test_grunfeld_firm_names_and_years_one_hot(tmp_path, capsys):
    data = sm.datasets.grunfeld.load_pandas().data
    train, test = write_split(tmp_path, "grunfeld", data, np.arange(3, len(data), 7))
    options = ["--model", "linear", "--categorical", "year", "--top-k", "2"]
    options += ["--report", str(tmp_path / "g.json")]
    status, err = run(capsys, tmp_path, "grunfeld_train.csv", "grunfeld_test.csv", "invest", *options)
    assert status == 0, err
    X, X_test = encode(train, test, ["value", "capital"], ["firm", "year"])
    inf = reference(fi.LinearRegression(l2=1e-3), X, train["invest"])
    check_top_k(read(tmp_path / "out.csv"), inf, X, X_test, test["invest"].to_numpy(), 2)
    encoded = json.loads((tmp_path / "g.json").read_text())["encoding"]["model_columns"]
    assert "firm=General Motors" in encoded
    assert "year=1935" in encoded  # whole numbers named without a decimal point
    assert len(encoded) == 2 + 11 + 20


# -- scikit-learn's bundled data sets, with their class names --------------------------------------


def sklearn_frame(loader, **kwargs):
    bunch = loader(**kwargs)
    frame = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
    return frame, bunch


def test_breast_cancer_class_names_full_matrix(tmp_path, capsys):
    frame, bunch = sklearn_frame(datasets.load_breast_cancer)
    frame["diagnosis"] = bunch.target_names[bunch.target]
    train, test = write_split(tmp_path, "cancer", frame, np.arange(455, len(frame)))
    status, err = run(capsys, tmp_path, "cancer_train.csv", "cancer_test.csv", "diagnosis")
    assert status == 0, err
    X, X_test = encode(train, test, [str(c) for c in bunch.feature_names])
    inf = reference(fi.LogisticRegression(l2=1e-3), X, train["diagnosis"])
    table = read(tmp_path / "out.csv")
    scores = table.filter(regex="^test_[0-9]+$").to_numpy()
    np.testing.assert_allclose(scores, inf.loss(X_test, test["diagnosis"]), rtol=1e-8, atol=1e-12)
    assert set(table["train_prediction"]) == {"benign", "malignant"}
    rows = read(tmp_path / "out.test_rows.csv")
    np.testing.assert_array_equal(rows["test_label"], test["diagnosis"])


def test_iris_species_names_fit_the_multinomial_model(tmp_path, capsys):
    frame, bunch = sklearn_frame(datasets.load_iris)
    frame["species"] = pd.Categorical(bunch.target_names[bunch.target])  # a Parquet dictionary column
    train, test = write_split(tmp_path, "iris", frame, np.arange(0, len(frame), 3), fmt="parquet")
    status, err = run(
        capsys, tmp_path, "iris_train.parquet", "iris_test.parquet", "species", "--top-k", "4",
        "--self-influence", out="top.parquet",
    )  # fmt: skip
    assert status == 0, err
    X, X_test = encode(train, test, [str(c) for c in bunch.feature_names])
    y = train["species"].astype(str)
    inf = reference(fi.MultinomialLogisticRegression(l2=1e-3), X, y)
    check_top_k(read(tmp_path / "top.parquet"), inf, X, X_test, test["species"].astype(str).to_numpy(), 4)
    own = read(tmp_path / "top.self_influence.parquet")
    np.testing.assert_allclose(own["self_influence"], inf.self_influence()[own["train_row"]], rtol=1e-8)


def test_iris_notes_say_how_the_columns_were_encoded(tmp_path, capsys):
    frame, bunch = sklearn_frame(datasets.load_iris)
    frame["species"] = bunch.target_names[bunch.target]
    write_split(tmp_path, "iris", frame, np.arange(0, len(frame), 3))
    argv = ["score", "--train", str(tmp_path / "iris_train.csv"), "--test", str(tmp_path / "iris_test.csv")]
    status = cli.main([*argv, "--target", "species", "--top-k", "1", "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert status == 0, err
    notes = [line for line in err.splitlines() if line.startswith("fastinfluence: note: ")]
    assert notes[0] == (
        "fastinfluence: note: numeric: 'sepal length (cm)', 'sepal width (cm)', 'petal length (cm)', "
        "'petal width (cm)', standardised: (x - mean) / standard deviation, of --train"
    )
    assert notes[1] == "fastinfluence: note: 4 model columns from 4 feature columns, and an intercept"
    assert (
        notes[2]
        == "fastinfluence: note: --target 'species' has 3 classes: fitting the multinomial (softmax) model"
    )


def test_wine_alcohol_in_ppm_unstandardised_is_refused_with_standardising_advice(tmp_path, capsys):
    """The multinomial fit is not invariant to the columns' scales: with alcohol in ppm (x 1e4 its
    percentage) its Hessian is numerically singular on the raw columns. Standardised, it is fine."""
    frame, bunch = sklearn_frame(datasets.load_wine)
    frame["alcohol"] *= 1e4  # percent by volume -> parts per million
    frame["cultivar"] = np.array(["Barbera", "Barolo", "Grignolino"], dtype=object)[bunch.target]
    train, test = write_split(tmp_path, "wine", frame, np.arange(0, len(frame), 4))
    status, err = run(capsys, tmp_path, "wine_train.csv", "wine_test.csv", "cultivar", "--no-standardize")
    assert status == 2
    (line,) = err.strip().splitlines()
    assert "the Hessian is numerically singular" in line
    assert "the columns' magnitudes differ by a factor" in line
    assert "'alcohol' about 1.3e+05" in line
    assert "standardise with --standardize (the default; this run has --no-standardize)" in line
    status, err = run(capsys, tmp_path, "wine_train.csv", "wine_test.csv", "cultivar", "--top-k", "3")
    assert status == 0, err
    X, X_test = encode(train, test, [str(c) for c in bunch.feature_names])
    inf = reference(fi.MultinomialLogisticRegression(l2=1e-3), X, train["cultivar"])
    check_top_k(read(tmp_path / "out.csv"), inf, X, X_test, test["cultivar"].to_numpy(), 3)


def test_diabetes_raw_units_with_sex_as_a_category(tmp_path, capsys):
    frame, bunch = sklearn_frame(datasets.load_diabetes, scaled=False)
    frame["progression"] = bunch.target
    train, test = write_split(tmp_path, "diabetes", frame, np.arange(0, len(frame), 10), fmt="parquet")
    options = ["--model", "linear", "--categorical", "sex", "--self-influence"]
    status, err = run(
        capsys, tmp_path, "diabetes_train.parquet", "diabetes_test.parquet", "progression", *options
    )
    assert status == 0, err
    numeric = [c for c in frame.columns if c not in ("sex", "progression")]
    X, _ = encode(train, test, numeric, ["sex"])
    inf = reference(fi.LinearRegression(l2=1e-3), X, train["progression"])
    own = read(tmp_path / "out.csv")
    np.testing.assert_allclose(own["self_influence"], inf.self_influence()[own["train_row"]], rtol=1e-8)
    assert_predictions(own["train_prediction"], inf.model.predict(X)[own["train_row"]])
