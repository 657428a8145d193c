"""The smallest set that flips a conclusion (``Influence.flip_set``): a constructed case whose
answer is known, real data, and the case where no small set exists."""

from __future__ import annotations

import numpy as np
import pytest

import fastinfluence as fi
from fastinfluence import targets as T


def planted(n=200, k=5, seed=0):
    """A slope of about -0.05 from n rows, turned positive by k rows at x = 6, y = 6."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = -0.05 * x + rng.standard_normal(n)
    X = np.r_[x, np.full(k, 6.0)][:, None]
    return X, np.r_[y, np.full(k, 6.0)]


def test_the_planted_rows_are_found_and_confirmed():
    X, y = planted()
    model = fi.LinearRegression(tol=1e-13).fit(X, y)
    assert model.theta_[0] > 0.3
    result = fi.Influence(model, X, y).flip_set(T.Coefficient(0), 0.0)
    assert result.confirmed
    assert sorted(result.rows.tolist()) == [200, 201, 202, 203, 204]
    assert result.refit < 0
    assert result.predicted == pytest.approx(result.refit, rel=1e-8)  # least squares: Newton is exact
    assert result.fraction == pytest.approx(5 / 205)
    assert "5 row(s)" in result.message


def test_no_set_below_max_size_is_said_clearly():
    X, y = planted()
    model = fi.LinearRegression(tol=1e-13).fit(X, y)
    result = fi.Influence(model, X, y).flip_set(T.Coefficient(0), 0.0, max_size=3)
    assert not result.confirmed
    assert result.size == 3
    assert result.refit > 0  # the refit without the three greedy rows keeps the sign
    assert "no set of up to 3 row(s)" in result.message


def test_a_predicted_label_flips_on_real_data():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    X_train, y_train, X_test = X[:455], y[:455], X[455:]
    model = fi.LogisticRegression(l2=1e-2).fit(X_train, y_train)
    inf = fi.Influence(model, X_train, y_train)
    # the test point the model is least sure of: its decision value is closest to 0
    eta = model.decision_function(X_test)
    j = int(np.argmin(np.abs(eta)))
    result = inf.flip_set(T.DecisionFunction(X_test[[j]]), 0.0)
    assert result.confirmed, result.message
    assert np.sign(result.refit) != np.sign(eta[j])
    # the refit really flips it: the label of test point j changes without those rows
    weights = np.ones(len(y_train))
    weights[result.rows] = 0.0
    refitted = fi.LogisticRegression(l2=1e-2).fit(X_train, y_train, sample_weight=weights)
    assert refitted.predict(X_test[[j]])[0] != model.predict(X_test[[j]])[0]
    # a probability threshold and a test-loss rise are quantities too
    assert inf.flip_set(T.PredictProba(X_test[[j]]), 0.5).confirmed
    loss = T.TestLoss(X_test[[j]], model.predict(X_test[[j]]))
    start = inf.flip_set(loss, 0.0, max_size=1).start
    assert inf.flip_set(loss, start + 0.2).confirmed


def test_flip_set_refuses_what_it_cannot_do():
    X, y = planted()
    model = fi.LinearRegression(tol=1e-13).fit(X, y)
    inf = fi.Influence(model, X, y)
    with pytest.raises(fi.InvalidArgumentError, match="one column") as info:
        inf.flip_set(T.Coefficient(0, 1), 0.0)
    assert info.value.argument == "target"
    with pytest.raises(fi.InvalidArgumentError) as info:
        inf.flip_set(T.Coefficient(0), np.nan)
    assert info.value.argument == "threshold"
    with pytest.raises(ValueError, match="direct solver"):
        fi.Influence(model, X, y, solver="cg").flip_set(T.Coefficient(0), 0.0)
