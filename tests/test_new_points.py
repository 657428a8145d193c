"""Points that are not in the training set (``Influence.new_points``) and the response function
(``fi.response_function``): the influence is the derivative of the exact refit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, assert_same_ranking, make_data, make_model

import fastinfluence as fi
from fastinfluence import targets as T
from fastinfluence.losses import LOSS_NAMES


def problem(name, seed=51):
    X, y, s = make_data(name, n=70, d=3, seed=seed, weighted=True)
    X_new, y_new, _ = make_data(name, n=4, d=3, seed=seed + 1)
    X_test, y_test, _ = make_data(name, n=3, d=3, seed=seed + 2)
    model = make_model(name, tol=1e-13).fit(X, y, sample_weight=s)
    return model, X, y, s, X_new, y_new, X_test, y_test


def derivative(model, X, y, s, X_new, y_new, j, value, h=1e-5):
    """d value(theta(eps)) / d eps at 0 for candidate j, by central differences of exact refits."""
    up, down = (
        fi.response_function(model, X, y, X_new[j : j + 1], y_new[j : j + 1], sign * h, s) for sign in (1, -1)
    )
    return (value(up) - value(down)) / (2 * h)


def test_the_worked_example():
    # three points x = [0, 1, 2], y = [0, 1.5, 2], a line with intercept: the fit is y = x + 1/6, and
    # I_up,loss(z_i, z_j) = -g_j^T H^{-1} g_i in closed form (H = (1/3) Xa^T Xa, g = r xa)
    X, y = np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1.5, 2.0])
    model = fi.LinearRegression(tol=1e-13).fit(X, y)
    assert_close(model.theta_, [1.0, 1.0 / 6.0], 1e-12)
    Xa = np.hstack([X, np.ones((3, 1))])
    G = Xa * (Xa @ model.theta_ - y)[:, None]
    expected = -G @ np.linalg.solve(Xa.T @ Xa / 3, G.T)
    inf = fi.Influence(model, X, y)
    assert_close(inf.new_points(X, y).loss(X, y), expected, 1e-12)
    assert_close(inf.loss(X, y), expected, 1e-12)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_influence_of_new_points_is_the_derivative_of_the_response_function(name):
    model, X, y, s, X_new, y_new, X_test, y_test = problem(name)
    points = fi.Influence(model, X, y, s).new_points(X_new, y_new)
    params, loss = points.params(), points.loss(X_test, y_test)
    decision = points.on(T.DecisionFunction(X_test))
    y_int = model.encode_targets(y_test, 3)

    def eta(t):
        return np.hstack([X_test, np.ones((3, 1))]) @ t

    def test_loss(t):
        return fi.kernels.row_derivatives(model.loss, X_test, y_int, t, backend="numpy")[1]

    for j in (0, 3):
        for result, value in ((params, lambda t: t), (decision, eta), (loss, test_loss)):
            expected = derivative(model, X, y, s, X_new, y_new, j, value)
            assert_close(result[j], expected, 1e-6, atol_fraction=1e-6)


def test_a_training_row_as_a_new_point_and_the_zero_weight_pitfall():
    model, X, y, s, _, _, X_test, y_test = problem("logistic")
    inf = fi.Influence(model, X, y, s)
    # the same row: the same formula
    assert_close(
        inf.new_points(X[[5, 9]], y[[5, 9]]).loss(X_test, y_test), inf.loss(X_test, y_test)[[5, 9]], 1e-12
    )
    assert_close(inf.new_points(X[[5]], y[[5]]).self_influence(), inf.self_influence()[[5]], 1e-12)
    # appending z with weight 0 instead changes n: every value comes out (n + 1) / n times too large
    # (and with l2 > 0 the optimum moves too: least squares without a penalty shows the factor alone)
    model, X, y, s, _, _, X_test, y_test = problem("squared")
    model = make_model("squared", l2=0.0, tol=1e-13).fit(X, y, sample_weight=s)
    inf = fi.Influence(model, X, y, s)
    n = X.shape[0]
    z, label = X[[5]] + 0.3, y[[5]]
    appended = fi.Influence(model, np.vstack([X, z]), np.r_[y, label], np.r_[s, 0.0])
    assert_close(
        appended.loss(X_test, y_test)[n],
        (n + 1) / n * inf.new_points(z, label).loss(X_test, y_test)[0],
        1e-10,
    )


@pytest.mark.parametrize("name", ["squared", "logistic", "poisson"])
def test_adding_with_a_weight_against_the_refit(name):
    model, X, y, s, X_new, y_new, X_test, y_test = problem(name)
    n = X.shape[0]
    points = fi.Influence(model, X, y, s).new_points(X_new, y_new)
    target = T.TestLoss(X_test, y_test)
    weight = 3.0
    first = points.add_on(target, "influence", weight)
    assert_close(first, weight / n * points.on(target), 1e-12)
    newton = points.add_on(target, "newton", weight)
    y_int = model.encode_targets(y_test, 3)
    base = fi.kernels.row_derivatives(model.loss, X_test, y_int, model.theta_, backend="numpy")[1]
    every = T.LinearFunctional(np.eye(model.theta_.size))  # theta itself
    steps = {method: points.add_on(every, method, weight) for method in ("influence", "newton")}
    errors = {method: [] for method in steps}
    for j in range(4):
        theta = fi.response_function(model, X, y, X_new[j : j + 1], y_new[j : j + 1], weight / n, s)
        if name == "squared":  # one Newton step is the refit
            exact = fi.kernels.row_derivatives(model.loss, X_test, y_int, theta, backend="numpy")[1] - base
            assert_close(newton[j], exact, 1e-8)
            assert_close(steps["newton"][j], theta - model.theta_, 1e-8)
        for method, step in steps.items():
            errors[method].append(
                np.linalg.norm(step[j] - (theta - model.theta_)) / np.linalg.norm(theta - model.theta_)
            )
    # one Newton step from theta: closer to the refit than the first-order step, on the whole
    assert np.mean(errors["newton"]) < np.mean(errors["influence"])


def test_the_response_function_removes_a_row_and_refits_several():
    model, X, y, s, X_new, y_new, _, _ = problem("squared")
    n = X.shape[0]
    inf = fi.Influence(model, X, y, s)
    # a training row with eps = -s_i / n: the leave-one-out refit (exact for least squares)
    theta = fi.response_function(model, X, y, X[[8]], y[[8]], -s[8] / n, s)
    assert_close(theta - model.theta_, inf.loo_params("newton", [8])[0], 1e-9)
    _, expected = fi.exact_loo(model, X, y, [8], X[:2], y[:2], s, return_params=True)
    assert_close(theta - model.theta_, expected[0], 1e-9)
    # several points at once, each its own weight: to first order the sum of their effects
    eps = np.array([1e-6, 2e-6, 0.0, -1e-6])
    both = fi.response_function(model, X, y, X_new, y_new, eps, s) - model.theta_
    assert_close(both, eps @ inf.new_points(X_new, y_new).params(), 1e-4)
    with pytest.raises(fi.InvalidArgumentError, match="one per new point") as info:
        fi.response_function(model, X, y, X_new, y_new, [1e-3, 2e-3], s)
    assert info.value.argument == "eps"


def test_multinomial_new_points():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 3))
    y = np.argmax(X @ rng.standard_normal((3, 3)) + rng.gumbel(size=(60, 3)), axis=1)
    model = fi.MultinomialLogisticRegression(l2=1e-2, tol=1e-13).fit(X, y)
    inf = fi.Influence(model, X, y)
    X_new, y_new = rng.standard_normal((2, 3)), np.array([0, 2])
    points = inf.new_points(X_new, y_new)
    proba = points.on(T.PredictProba(X[:3], class_=1))
    params = points.params()
    for j in range(2):
        d = derivative(model, X, y, None, X_new, y_new, j, lambda t: t)
        assert_close(params[j], d, 1e-6, atol_fraction=1e-6)

        def probability(t):
            return fi.MultinomialLogisticRegression.predict_proba(_with_theta(model, t), X[:3])[:, 1]

        assert_close(
            proba[j], derivative(model, X, y, None, X_new, y_new, j, probability), 1e-6, atol_fraction=1e-6
        )
    assert_close(points.loss(X[:3], y[:3]), inf.new_points(X_new, y_new).on(T.TestLoss(X[:3], y[:3])), 1e-12)
    assert_close(inf.new_points(X[[4]], y[[4]]).params(), inf.params([4]), 1e-12)


def _with_theta(model, theta):
    import copy

    other = copy.copy(model)
    other.theta_ = theta
    return other


def test_top_k_frames_dask_and_errors():
    pd = pytest.importorskip("pandas")
    model, X, y, s, X_new, y_new, X_test, y_test = problem("logistic")
    inf = fi.Influence(model, X, y, s)
    many_new = np.vstack([X_new, X[:20] + 0.1])
    many_y = np.r_[y_new, y[:20]]
    points = inf.new_points(many_new, many_y)
    scores = points.loss(X_test, y_test)
    top = points.top_k_on(T.TestLoss(X_test, y_test), 3)
    assert_same_ranking(top.helpful_indices, np.argsort(scores, axis=0, kind="stable")[:3].T, scores, 1e-9)
    # frames: rows labelled by X_new's index
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    labelled = fi.Influence(make_model("logistic", tol=1e-13).fit(frame, y, s), frame, y, s)
    new_frame = pd.DataFrame(X_new, columns=["a", "b", "c"], index=["w", "x", "y", "z"])
    result = labelled.new_points(new_frame, y_new).loss(X_test, y_test)
    assert result.index.name == "new_row"
    assert list(result.index) == ["w", "x", "y", "z"]
    # Dask: the candidates are in memory, the Hessian from the chunks
    da = pytest.importorskip("dask.array")
    fid = pytest.importorskip("fastinfluence.dask")
    chunked = fid.Influence(model, da.from_array(X, chunks=(25, -1)), y, sample_weight=s)
    assert_close(chunked.new_points(X_new, y_new).loss(X_test, y_test), points.loss(X_test, y_test)[:4], 1e-9)
    with pytest.raises(fi.InvalidArgumentError) as info:
        inf.new_points(X_new[:, :2], y_new)
    assert info.value.argument == "X_new"
    with pytest.raises(fi.InvalidArgumentError) as info:
        inf.new_points(X_new, np.array([0, 1, 2, 1]))
    assert info.value.argument == "y_new"


def test_new_points_whose_gradient_overflows_name_x_new():
    model, X, y, s, _, _, _, _ = problem("poisson")
    w = model.theta_[:3]
    X_bad = np.tile(800.0 * w / (w @ w), (2, 1))  # eta = 800 + b: exp(eta) overflows
    with pytest.raises(fi.InvalidArgumentError, match="not finite") as info:
        fi.Influence(model, X, y, s).new_points(X_bad, np.array([1.0, 2.0]))
    assert info.value.argument == "X_new"


def test_multinomial_response_function_with_newton_cg():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 3))
    y = np.argmax(X @ rng.standard_normal((3, 3)) + rng.gumbel(size=(50, 3)), axis=1)
    for method in ("newton", "newton_cg"):
        model = fi.MultinomialLogisticRegression(l2=1e-2, tol=1e-12, method=method).fit(X, y)
        up, down = (fi.response_function(model, X, y, X[:2], y[:2], e) for e in (1e-5, -1e-5))
        expected = fi.Influence(model, X, y).new_points(X[:2], y[:2]).params().sum(axis=0)
        assert_close((up - down) / 2e-5, expected, 1e-5, atol_fraction=1e-6)
