"""A fitted scikit-learn Pipeline explained from its raw DataFrame: fi.sklearn.influence_of_pipeline.

The data sets ship with statsmodels (offline) and have categorical columns in raw units: the
affairs survey ``fair`` (occupation, by the names its documentation gives the codes), Grunfeld's
investment panel (firm names), the RAND health insurance experiment ``randhie`` (self-rated
health, from its dummies). The references: the same computation by hand on the transformed
design (influence on it equals the pipeline route), and scikit-learn's own refits of the final
estimator on that design without a row (the preprocessing held fixed, as documented).
"""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
sm = pytest.importorskip("statsmodels.api")
from sklearn.base import clone  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import fastinfluence as fi  # noqa: E402

#: The occupation codes of statsmodels' fair data, as its documentation names them.
OCCUPATIONS = {
    1: "student",
    2: "farming, semi-skilled, unskilled",
    3: "white collar",
    4: "teacher, nurse, writer, technician, skilled",
    5: "managerial, business",
    6: "professional with advanced degree",
}
LOO_ROWS = [0, 7, 123, 401]


def preprocessing(numeric, categorical):
    return ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
    )


@pytest.fixture(scope="module")
def fair():
    """800 rows of the affairs survey, in a random order (so the index is not 0 .. n-1)."""
    data = sm.datasets.fair.load_pandas().data
    data["occupation"] = data["occupation"].map(OCCUPATIONS)
    rows = np.random.default_rng(0).choice(len(data), 800, replace=False)
    X = data.loc[rows, ["age", "yrs_married", "children", "educ", "occupation"]]
    y = (data.loc[rows, "affairs"] > 0).astype(int).rename("had_affair")
    return X.iloc[:700], y.iloc[:700], X.iloc[700:], y.iloc[700:]


def fair_pipeline(final):
    return make_pipeline(preprocessing(["age", "yrs_married", "children", "educ"], ["occupation"]), final)


def logloss(y, eta):
    return np.logaddexp(0.0, eta) - y * eta


def test_logistic_pipeline_is_explained_from_the_raw_frame(fair):
    X, y, X_test, y_test = fair
    pipe = fair_pipeline(LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12)).fit(X, y)
    inf = fi.sklearn.influence_of_pipeline(pipe, X, y)
    assert isinstance(inf, fi.Influence)
    names = list(pipe[:-1].get_feature_names_out())
    assert "cat__occupation_white collar" in names
    assert inf.feature_names_ == names
    assert inf.model.feature_names_in_.tolist() == names

    scores = inf.loss(X_test, y_test)  # raw test rows: the same preprocessing
    assert scores.index.equals(pd.Index(X.index, name="train_row"))
    assert scores.columns.equals(pd.Index(X_test.index, name="test_row"))
    pert = inf.pert_loss(X_test.iloc[:3], y_test.iloc[:3], indices=[0, 1])
    assert list(pert.columns) == names
    assert pert.index.get_level_values("train_row").tolist() == [X.index[0]] * 3 + [X.index[1]] * 3
    assert list(inf.params(indices=[2]).columns) == [*names, "intercept"]
    top = inf.top_k(X_test.iloc[:2], y_test.iloc[:2], k=3)
    assert set(top["train_row"]) <= set(X.index)
    assert set(top["test_row"]) == set(X_test.index[:2])
    self_influence = inf.self_influence()
    assert self_influence.index.equals(scores.index)

    # the same computation by hand, on the transformed design as arrays
    model = fi.from_sklearn(pipe, X, y)
    Z, Z_test = pipe[:-1].transform(X), pipe[:-1].transform(X_test)
    by_hand = fi.Influence(model, Z, y.to_numpy())
    np.testing.assert_allclose(
        scores.to_numpy(), by_hand.loss(Z_test, y_test.to_numpy()), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(self_influence.to_numpy(), by_hand.self_influence(), rtol=1e-12)
    np.testing.assert_allclose(
        pert.to_numpy(),
        by_hand.pert_loss(Z_test[:3], y_test.to_numpy()[:3], indices=[0, 1]).reshape(6, -1),
        rtol=1e-12,
        atol=1e-14,
    )
    np.testing.assert_allclose(inf.transform(X_test).to_numpy(), Z_test)

    # scikit-learn's refits of the final estimator without a row, on the (fixed) transformed design
    base = logloss(y_test.to_numpy(), pipe.decision_function(X_test))
    refits = np.array(
        [
            logloss(
                y_test.to_numpy(),
                clone(pipe[-1]).fit(np.delete(Z, i, 0), np.delete(y.to_numpy(), i)).decision_function(Z_test),
            )
            - base
            for i in LOO_ROWS
        ]
    )
    scale = np.abs(refits).max()
    newton = inf.loo(X_test, y_test, method="newton", indices=LOO_ROWS)
    assert newton.index.equals(pd.Index(X.index[LOO_ROWS], name="train_row"))
    np.testing.assert_allclose(newton.to_numpy(), refits, atol=5e-2 * scale)  # one Newton step
    exact = fi.exact_loo(inf.model, inf.transform(X), y, LOO_ROWS, inf.transform(X_test), y_test)
    np.testing.assert_allclose(exact.to_numpy(), refits, atol=1e-5 * scale)
    assert exact.index.equals(newton.index)


@pytest.fixture(scope="module")
def grunfeld():
    """Grunfeld's investment panel (11 firms x 20 years), rows labelled "firm year"."""
    data = sm.datasets.grunfeld.load_pandas().data
    data.index = data["firm"] + " " + data["year"].astype(int).astype(str)
    test = data["year"] >= 1952
    X = data[["value", "capital", "firm"]]
    return X[~test], data.loc[~test, "invest"], X[test], data.loc[test, "invest"]


def test_ridge_pipeline_newton_loo_is_scikit_learns_refit_exactly(grunfeld):
    X, y, X_test, y_test = grunfeld
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    # 2 numeric and 11 one-hot columns: the ColumnTransformer's output is sparse (densified for the kernels)
    pipe = make_pipeline(preprocessing(["value", "capital"], ["firm"]), Ridge(alpha=2.0, tol=1e-12))
    pipe.fit(X, y, ridge__sample_weight=w)
    assert hasattr(pipe[:-1].transform(X), "toarray")
    inf = fi.sklearn.influence_of_pipeline(pipe, X, y, sample_weight=w)
    rows = [0, 17, 60, 150]
    newton = inf.loo(X_test, y_test, method="newton", indices=rows)
    assert newton.index.tolist() == [X.index[i] for i in rows]
    assert newton.index[0] == "General Motors 1935"
    assert newton.columns.tolist()[:2] == ["General Motors 1952", "General Motors 1953"]
    # the squared loss is quadratic: one Newton step is the refit, exactly (Ridge: alpha unchanged)
    Z, Z_test = inf.transform(X).to_numpy(), inf.transform(X_test).to_numpy()
    base = 0.5 * (pipe.predict(X_test) - y_test.to_numpy()) ** 2
    refits = np.array(
        [
            0.5
            * (
                Ridge(alpha=2.0)
                .fit(np.delete(Z, i, 0), np.delete(y.to_numpy(), i), np.delete(w, i))
                .predict(Z_test)
                - y_test.to_numpy()
            )
            ** 2
            - base
            for i in rows
        ]
    )
    np.testing.assert_allclose(newton.to_numpy(), refits, rtol=1e-7, atol=1e-10 * np.abs(refits).max())
    assert list(inf.pert_loss(X_test.iloc[:1], y_test.iloc[:1], indices=[0]).columns) == list(
        pipe[:-1].get_feature_names_out()
    )


def test_poisson_pipeline_equals_the_computation_on_the_transformed_design():
    data = sm.datasets.randhie.load_pandas().data.iloc[:1500].copy()
    # self-rated health from its dummies (good, fair, poor; excellent when none is set)
    data["health"] = np.select(
        [data["hlthg"] == 1, data["hlthf"] == 1, data["hlthp"] == 1], ["good", "fair", "poor"], "excellent"
    )
    data.index = pd.Index([f"person {i}" for i in data.index], name="person")
    X = data[["lncoins", "idp", "lpi", "fmde", "physlm", "disea", "health"]]
    y = data["mdvis"]
    X, X_test, y, y_test = X.iloc[:1400], X.iloc[1400:], y.iloc[:1400], y.iloc[1400:]
    pipe = make_pipeline(
        preprocessing(["lncoins", "idp", "lpi", "fmde", "physlm", "disea"], ["health"]),
        PoissonRegressor(alpha=1e-3, solver="newton-cholesky", tol=1e-12, max_iter=1000),
    ).fit(X, y)
    inf = fi.sklearn.influence_of_pipeline(pipe, X, y)
    scores = inf.on(fi.targets.Predict(X_test))  # the predicted visits of raw test rows
    assert scores.index.name == "train_row"
    assert scores.index[0] == "person 0"
    assert scores.columns.equals(pd.Index(X_test.index, name="test_row"))
    Z, Z_test = pipe[:-1].transform(X), pipe[:-1].transform(X_test)
    by_hand = fi.Influence(fi.from_sklearn(pipe, X, y), Z, y.to_numpy())
    np.testing.assert_allclose(
        scores.to_numpy(), by_hand.on(fi.targets.Predict(Z_test)), rtol=1e-12, atol=1e-14
    )
    assert inf.model.score(inf.transform(X_test), y_test) == pytest.approx(
        pipe.score(X_test, y_test), rel=1e-6
    )


def test_a_pipeline_ending_in_a_fastinfluence_model(fair):
    X, y, X_test, y_test = fair
    pipe = fair_pipeline(fi.LogisticRegression(l2=1e-3)).fit(X, y)
    assert pipe.score(X_test, y_test) == pipe[-1].score(pipe[:-1].transform(X_test), y_test)
    inf = fi.sklearn.influence_of_pipeline(pipe, X, y)
    Z = pipe[:-1].transform(X)
    by_hand = fi.Influence(pipe[-1], Z, y)
    np.testing.assert_array_equal(inf.model.theta_, pipe[-1].theta_)
    np.testing.assert_allclose(
        inf.loss(X_test, y_test).to_numpy(), by_hand.loss(pipe[:-1].transform(X_test), y_test), rtol=1e-12
    )
    assert not hasattr(pipe[-1], "feature_names_in_")  # the user's model is not changed
    points = inf.new_points(X_test.iloc[:4], y_test.iloc[:4]).self_influence()
    assert points.index.tolist() == X_test.index[:4].tolist()
    with pytest.raises(fi.NotFittedError, match="not fitted"):
        fi.sklearn.influence_of_pipeline(fair_pipeline(fi.LogisticRegression()), X, y)


def test_the_preprocessing_is_held_as_it_was(fair):
    X, y, X_test, y_test = fair
    pipe = fair_pipeline(LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12)).fit(X, y)
    inf = fi.sklearn.influence_of_pipeline(pipe, X, y)
    before = inf.loss(X_test, y_test)
    pipe.fit(X_test, y_test)  # refitting the user's pipeline changes nothing here
    pd.testing.assert_frame_equal(inf.loss(X_test, y_test), before)
    assert repr(inf.preprocessing) == "FixedPreprocessing(steps=['columntransformer'], features=10)"


def test_bare_estimators_and_errors(fair):
    X, y, X_test, y_test = fair
    numeric = X[["age", "yrs_married", "children", "educ"]]
    est = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12).fit(numeric, y)
    inf = fi.sklearn.influence_of_pipeline(est, numeric, y)
    assert inf.feature_names_ == ["age", "yrs_married", "children", "educ"]
    assert inf.loss(X_test[numeric.columns], y_test).index.equals(pd.Index(X.index, name="train_row"))
    unfitted = fair_pipeline(LogisticRegression())
    with pytest.raises(fi.NotFittedError, match="LogisticRegression is not fitted yet"):
        fi.sklearn.influence_of_pipeline(unfitted, X, y)
    from sklearn.tree import DecisionTreeClassifier

    tree = fair_pipeline(DecisionTreeClassifier()).fit(X, y)
    with pytest.raises(TypeError, match="DecisionTreeClassifier is not supported"):
        fi.sklearn.influence_of_pipeline(tree, X, y)
    inf = fi.sklearn.influence_of_pipeline(
        fair_pipeline(LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12)).fit(X, y), X, y
    )
    with pytest.raises(ValueError, match="occupation"):  # scikit-learn's own message names the column
        inf.loss(X_test.drop(columns="occupation"), y_test)
