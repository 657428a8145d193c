"""Influence on any prediction (``fastinfluence.targets``): against refits, the loss methods, and
across backends, sparse input, frames and Dask.

Every target's I_up is checked against central differences of weighted refits (the weight
of z_i becomes s_i + n eps), each target's value at the refit computed here from theta
directly, not through the package; the removal estimates against exact refits.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import assert_close, assert_same_ranking, make_data, make_model
from test_influence import refit

import fastinfluence as fi
from fastinfluence import rowwise
from fastinfluence import targets as T
from fastinfluence.losses import LOSS_NAMES


def augmented(X, fit_intercept):
    return np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def direct_value(kind, model, theta, X_test, y_test):
    """The target's value at theta, per column, computed here from its definition."""
    eta = augmented(X_test, model.fit_intercept) @ theta
    name = model.loss.name
    if kind in ("loss", "mean_loss"):
        y = model.encode_targets(y_test, X_test.shape[0])
        if name == "squared":
            values = 0.5 * (eta - y) ** 2
        elif name == "logistic":
            values = np.logaddexp(0.0, eta) - y * eta
        elif name == "smooth_hinge":
            t = model.t
            values = t * np.logaddexp(0.0, (1.0 - y * eta) / t)
        else:
            values = np.exp(eta) - y * eta
        return values.mean(keepdims=True) if kind == "mean_loss" else values
    if kind == "decision":
        return eta
    if kind == "proba":
        return sigmoid(eta)
    if kind == "proba_negative":
        return 1.0 - sigmoid(eta)
    if kind == "predict":
        return np.exp(eta) if name == "poisson" else eta
    if kind == "coefficient":
        return theta[[1, -1]]
    if kind == "functional":
        return CONTRAST @ theta
    raise ValueError(kind)


#: c^T theta for the linear functional: w_0 - w_2 and the sum of all parameters.
CONTRAST = np.array([[1.0, 0.0, -1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])


def make_target(kind, model, X_test, y_test):
    if kind == "loss":
        return T.TestLoss(X_test, y_test)
    if kind == "mean_loss":
        return T.MeanTestLoss(X_test, y_test)
    if kind == "decision":
        return T.DecisionFunction(X_test)
    if kind == "proba":
        return T.PredictProba(X_test)
    if kind == "proba_negative":
        return T.PredictProba(X_test, class_=model.classes_[0])
    if kind == "predict":
        return T.Predict(X_test)
    if kind == "coefficient":
        return T.Coefficient(1, "intercept")
    if kind == "functional":
        return T.LinearFunctional(CONTRAST.T, names=["w0 - w2", "sum"])
    raise ValueError(kind)


def kinds_for(name):
    kinds = ["loss", "mean_loss", "decision", "coefficient", "functional"]
    if name == "logistic":
        kinds += ["proba", "proba_negative"]
    if name in ("squared", "poisson"):
        kinds.append("predict")
    return kinds


CASES = [(name, kind) for name in LOSS_NAMES for kind in kinds_for(name)]


@functools.cache
def fitted_for(name):
    """(model, X, y, s, X_test, y_test) with non-uniform weights and an intercept."""
    X, y, s = make_data(name, n=80, d=3, seed=41, weighted=True)
    X_test, y_test, _ = make_data(name, n=5, d=3, seed=42)
    model = make_model(name, tol=1e-13).fit(X, y, sample_weight=s)
    return model, X, y, s, X_test, y_test


@pytest.fixture(params=LOSS_NAMES)
def fitted(request):
    return fitted_for(request.param)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_upweighting_matches_refits(name, kind):
    model, X, y, s, X_test, y_test = fitted_for(name)
    n = X.shape[0]
    inf = fi.Influence(model, X, y, s)
    scores = inf.on(make_target(kind, model, X_test, y_test))
    eps = 1e-4
    for i in (0, 17, 66):
        values = []
        for sign in (1.0, -1.0):
            weights = s.copy()
            weights[i] += sign * n * eps
            values.append(direct_value(kind, model, refit(model, X, y, weights), X_test, y_test))
        assert_close(scores[i], (values[0] - values[1]) / (2 * eps), 1e-5, atol_fraction=1e-6, err_msg=kind)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_removal_estimates_against_exact_refits(name, kind):
    model, X, y, s, X_test, y_test = fitted_for(name)
    n = X.shape[0]
    inf = fi.Influence(model, X, y, s)
    target = make_target(kind, model, X_test, y_test)
    rows = [3, 28, 71]
    exact = np.stack(
        [
            direct_value(kind, model, refit(model, X, y, np.where(np.arange(n) == i, 0.0, s)), X_test, y_test)
            - direct_value(kind, model, model.theta_, X_test, y_test)
            for i in rows
        ]
    )
    # the package's own brute force agrees with this one
    assert_close(fi.influence.exact_loo_on(model, X, y, rows, target, s), exact, 1e-7, atol_fraction=1e-7)
    first = inf.loo_on(target, "influence", rows)
    assert_close(first, -(s[rows] / n)[:, None] * inf.on(target, rows), 1e-12)
    newton = inf.loo_on(target, "newton", rows)
    scale = np.max(np.abs(exact))
    if name == "squared":  # one Newton step is the refit
        assert_close(newton, exact, 1e-8, atol_fraction=1e-8)
    else:  # one Newton step from theta: closer than the first-order estimate (smooth hinge: 12%)
        error = np.max(np.abs(newton - exact))
        assert error < np.max(np.abs(first - exact)), kind
        assert error < (0.15 if name == "smooth_hinge" else 0.05) * scale, kind
    if kind in ("decision", "coefficient", "functional"):  # linear in theta: f(theta + delta) exactly
        delta = inf.loo_params("newton", rows)
        direct = np.stack([direct_value(kind, model, model.theta_ + d, X_test, y_test) for d in delta])
        assert_close(newton, direct - direct_value(kind, model, model.theta_, X_test, y_test), 1e-10)


def test_loss_methods_are_the_test_loss_target(fitted):
    model, X, y, s, X_test, y_test = fitted
    inf = fi.Influence(model, X, y, s)
    target = T.TestLoss(X_test, y_test)
    np.testing.assert_array_equal(inf.loss(X_test, y_test), inf.on(target))
    for method in ("influence", "newton"):
        np.testing.assert_array_equal(inf.loo(X_test, y_test, method), inf.loo_on(target, method))
    a, b = inf.top_k(X_test, y_test, 4), inf.top_k_on(target, 4)
    np.testing.assert_array_equal(a.helpful_indices, b.helpful_indices)
    np.testing.assert_array_equal(a.harmful_scores, b.harmful_scores)


def test_mean_test_loss_is_the_mean_of_the_test_losses(fitted, monkeypatch):
    model, X, y, s, X_test, y_test = fitted
    inf = fi.Influence(model, X, y, s)
    target = T.MeanTestLoss(X_test, y_test)
    assert_close(inf.on(target)[:, 0], inf.loss(X_test, y_test).mean(axis=1), 1e-12)
    newton = inf.loo(X_test, y_test, "newton").mean(axis=1)
    assert_close(inf.loo_on(target, "newton")[:, 0], newton, 1e-12)
    # sub-blocks of rows (a mean over many test points never holds the (n, m) block)
    monkeypatch.setattr(rowwise, "SUB_BLOCK_ENTRIES", 7)
    assert_close(inf.loo_on(target, "newton")[:, 0], newton, 1e-12)


def test_mean_test_loss_is_one_solve(fitted, monkeypatch):
    model, X, y, s, X_test, y_test = fitted
    inf = fi.Influence(model, X, y, s)
    shapes = []
    original = inf.solver_.solve
    monkeypatch.setattr(inf.solver_, "solve", lambda B: shapes.append(B.shape) or original(B))
    inf.on(T.MeanTestLoss(X_test, y_test))
    assert shapes == [(inf.n_params_, 1)]


@pytest.mark.parametrize("kind", ["decision", "proba", "mean_loss", "coefficient"])
def test_top_k_on_ranks_the_scores(kind):
    X, y, s = make_data("logistic", n=90, d=3, seed=5, weighted=True)
    X_test, y_test, _ = make_data("logistic", n=4, d=3, seed=6)
    model = make_model("logistic").fit(X, y, sample_weight=s)
    inf = fi.Influence(model, X, y, s)
    target = make_target(kind, model, X_test, y_test)
    scores = inf.on(target)
    top = inf.top_k_on(target, 5)
    assert_same_ranking(top.helpful_indices, np.argsort(scores, axis=0, kind="stable")[:5].T, scores, 1e-9)
    assert_same_ranking(top.harmful_indices, np.argsort(-scores, axis=0, kind="stable")[:5].T, scores, 1e-9)
    assert_close(top.helpful_scores, np.sort(scores, axis=0)[:5].T, 1e-12)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_backends_and_sparse_agree(backend, sparse):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, y, s = make_data("poisson", n=70, d=4, seed=8, weighted=True)
    X_test, _, _ = make_data("poisson", n=3, d=4, seed=9)
    X[np.abs(X) < 0.6] = 0.0
    model = make_model("poisson", backend="numpy").fit(X, y, sample_weight=s)
    reference = fi.Influence(model, X, y, s, backend="numpy")
    X_used = scipy_sparse.csr_matrix(X) if sparse else X
    inf = fi.Influence(model, X_used, y, s, backend=backend)
    for target in (
        T.Predict(X_test),
        T.DecisionFunction(scipy_sparse.csr_matrix(X_test) if sparse else X_test),
    ):
        assert_close(inf.on(target), reference.on(target), 1e-10)
        for method in ("influence", "newton"):
            assert_close(inf.loo_on(target, method), reference.loo_on(target, method), 1e-10)


def test_frames_label_the_targets():
    pd = pytest.importorskip("pandas")
    X, y, _ = make_data("logistic", n=60, d=3, seed=12, weighted=True)
    X_test, _, _ = make_data("logistic", n=3, d=3, seed=13)
    frame = pd.DataFrame(X, columns=["age", "dose", "bmi"], index=pd.Index(np.arange(60) * 10, name="id"))
    test_frame = pd.DataFrame(X_test, columns=frame.columns, index=["a", "b", "c"])
    labels = np.where(y > 0, "sick", "well")
    model = fi.LogisticRegression(l2=1e-2).fit(frame, labels)
    inf = fi.Influence(model, frame, labels)
    assert list(model.classes_) == ["sick", "well"]  # "well" is the positive class
    proba = inf.on(T.PredictProba(test_frame, class_="sick"))
    assert list(proba.columns) == ["a", "b", "c"]
    assert proba.columns.name == "test_row"
    assert proba.index.name == "train_row"
    np.testing.assert_array_equal(proba.index, frame.index)
    np.testing.assert_allclose(proba.to_numpy(), -inf.on(T.PredictProba(test_frame)).to_numpy(), rtol=1e-12)
    coefficients = inf.loo_on(T.Coefficient("dose", "intercept"), "newton")
    assert list(coefficients.columns) == ["dose", "intercept"]
    assert coefficients.columns.name == "target"
    np.testing.assert_allclose(
        coefficients.to_numpy(), inf.loo_params("newton")[["dose", "intercept"]].to_numpy(), rtol=1e-12
    )
    top = inf.top_k_on(T.DecisionFunction(test_frame), 2)
    assert set(top["kind"]) == {"lowers", "raises"}
    assert set(top["test_row"]) == {"a", "b", "c"}
    top = inf.top_k_on(T.MeanTestLoss(test_frame, ["sick", "well", "sick"]), 2)
    assert set(top["kind"]) == {"helpful", "harmful"}
    assert list(top.columns[:1]) == ["target"]


def test_dask_engine_agrees():
    da = pytest.importorskip("dask.array")
    fid = pytest.importorskip("fastinfluence.dask")
    X, y, s = make_data("logistic", n=50, d=3, seed=14, weighted=True)
    X_test, y_test, _ = make_data("logistic", n=4, d=3, seed=15)
    model = make_model("logistic").fit(X, y, sample_weight=s)
    expected = fi.Influence(model, X, y, s)
    inf = fid.Influence(model, da.from_array(X, chunks=(17, -1)), y, sample_weight=s)
    for target in (T.PredictProba(X_test), T.MeanTestLoss(X_test, y_test), T.Coefficient(0)):
        assert_close(inf.on(target).compute(scheduler="threads"), expected.on(target), 1e-9)
        got = inf.loo_on(target, "newton").compute(scheduler="threads")
        assert_close(got, expected.loo_on(target, "newton"), 1e-9)
        top, want = inf.top_k_on(target, 3), expected.top_k_on(target, 3)
        assert_same_ranking(top.harmful_indices, want.harmful_indices, expected.on(target), 1e-9)


def test_mean_difference_is_accurate_for_small_steps():
    eta = np.array([-30.0, -2.0, 0.0, 3.0, 40.0])
    for delta in (1e-9, 1e-3):
        for mean, derivative in (
            ("logistic", sigmoid(eta) * sigmoid(-eta)),
            ("exp", np.exp(eta)),
        ):
            got = T.mean_difference(mean, eta, np.full_like(eta, delta))
            # f(eta + d) - f(eta) = f' d + f'' d^2 / 2 + ...: relative error O(d)
            np.testing.assert_allclose(got, derivative * delta, rtol=3 * delta)


@pytest.mark.parametrize(
    ("make", "argument", "match"),
    [
        (lambda X: T.PredictProba(X, class_=7), "class_", "must be one of the model's classes"),
        (T.Predict, "target", "predicts a class label"),
        (lambda X: T.Coefficient("height"), "names", "not a coefficient"),
        (lambda X: T.Coefficient(9), "names", "outside theta"),
        (lambda X: T.LinearFunctional(np.ones(3)), "c", r"shape \(4,\)"),
        (lambda X: T.LinearFunctional([np.nan, 0, 0, 0]), "c", "finite"),
    ],
)
def test_bad_targets_name_the_argument(make, argument, match):
    X, y, _ = make_data("logistic", n=40, d=3, seed=2)
    model = make_model("logistic").fit(X, y)
    inf = fi.Influence(model, X, y)
    with pytest.raises(fi.InvalidArgumentError, match=match) as info:
        inf.on(make(X[:3]))
    assert info.value.argument == argument


def test_test_points_whose_prediction_overflows_name_x_test():
    X, y, _ = make_data("poisson", n=40, d=3, seed=2)
    model = make_model("poisson").fit(X, y)
    w = model.theta_[:3]
    X_bad = np.tile(800.0 * w / (w @ w), (2, 1))  # eta = 800 + b: exp(eta) overflows
    with pytest.raises(fi.InvalidArgumentError, match=r"exp\(eta\) overflows") as info:
        fi.Influence(model, X, y).on(T.Predict(X_bad))
    assert info.value.argument == "X_test"


def test_probability_needs_a_probabilistic_model():
    X, y, _ = make_data("smooth_hinge", n=40, d=3, seed=2)
    model = make_model("smooth_hinge").fit(X, y)
    with pytest.raises(fi.InvalidArgumentError, match="defines no probability"):
        fi.Influence(model, X, y).on(T.PredictProba(X[:2]))
    with pytest.raises(TypeError, match="target must be"):
        fi.Influence(model, X, y).on(X[:2])


def test_binary_probability_of_a_class_per_test_point_and_empty_selections():
    X, y, s = make_data("logistic", n=50, d=3, seed=21, weighted=True)
    X_test, _, _ = make_data("logistic", n=4, d=3, seed=22)
    labels = np.where(y > 0, "yes", "no")
    model = fi.LogisticRegression(l2=1e-2).fit(X, labels, sample_weight=s)
    inf = fi.Influence(model, X, labels, s)
    per_point = inf.on(T.PredictProba(X_test, class_=["no", "yes", "yes", "no"]))
    positive = inf.on(T.PredictProba(X_test))
    np.testing.assert_allclose(per_point, positive * np.array([-1.0, 1.0, 1.0, -1.0]), rtol=1e-12)
    newton = inf.loo_on(T.PredictProba(X_test, class_=["no", "yes", "yes", "no"]), "newton")
    np.testing.assert_allclose(
        newton, inf.loo_on(T.PredictProba(X_test), "newton") * np.array([-1.0, 1.0, 1.0, -1.0]), rtol=1e-12
    )
    assert fi.exact_loo(model, X, labels, [], X_test, labels[:4], s).shape == (0, 4)
    assert fi.exact_loo_on(model, X, labels, [], T.PredictProba(X_test), s).shape == (0, 4)
    with pytest.raises(fi.InvalidArgumentError, match="sequence of names"):
        inf.on(T.LinearFunctional(np.ones(4), names="abc"))
