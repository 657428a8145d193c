"""Removing groups of training rows (``Influence.groups``): the first-order and Newton (Woodbury)
estimates against exact group refits (``fi.exact_group_loo_on``)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, make_data, make_model

import fastinfluence as fi
from fastinfluence import targets as T


def problem(name, n=80, d=3, seed=61):
    X, y, s = make_data(name, n=n, d=d, seed=seed, weighted=True)
    X_test, y_test, _ = make_data(name, n=3, d=d, seed=seed + 1)
    model = make_model(name, tol=1e-13).fit(X, y, sample_weight=s)
    return model, X, y, s, X_test, y_test


def test_groups_of_one_row_are_the_leave_one_out_estimates():
    model, X, y, s, X_test, y_test = problem("logistic")
    inf = fi.Influence(model, X, y, s)
    rows = [3, 17, 42]
    groups = inf.groups([np.array([i]) for i in rows])
    for method in ("influence", "newton"):
        assert_close(groups.loo_params(method), inf.loo_params(method, rows), 1e-10)
    assert_close(groups.loo(X_test, y_test, "influence"), inf.loo(X_test, y_test, "influence", rows), 1e-10)
    assert_close(groups.loo(X_test, y_test, "newton"), inf.loo(X_test, y_test, "newton", rows), 1e-10)


def test_first_order_is_the_sum_of_the_rows_estimates():
    model, X, y, s, X_test, y_test = problem("poisson")
    inf = fi.Influence(model, X, y, s)
    labels = np.arange(X.shape[0]) % 7
    groups = inf.groups(labels)
    assert groups.labels_ == list(range(7))
    assert groups.sizes_.sum() == X.shape[0]
    single = inf.loo_params("influence")
    expected = np.stack([single[labels == g].sum(axis=0) for g in range(7)])
    assert_close(groups.loo_params("influence"), expected, 1e-10)
    single_loss = inf.loo(X_test, y_test, "influence")
    assert_close(
        groups.loo(X_test, y_test), np.stack([single_loss[labels == g].sum(axis=0) for g in range(7)]), 1e-10
    )


@pytest.mark.parametrize("size", [3, 12])  # below and above p = 4: Woodbury, then the reduced Hessian
def test_newton_is_the_exact_refit_for_least_squares(size):
    model, X, y, s, X_test, y_test = problem("squared")
    inf = fi.Influence(model, X, y, s)
    rng = np.random.default_rng(size)
    members = [np.sort(rng.choice(X.shape[0], size, replace=False)) for _ in range(3)]
    groups = inf.groups(members)
    target = T.TestLoss(X_test, y_test)
    exact, delta = fi.exact_group_loo_on(model, X, y, members, target, s, return_params=True)
    assert_close(groups.loo_params("newton"), delta, 1e-8)
    assert_close(groups.loo_on(target, "newton"), exact, 1e-8)


@pytest.mark.parametrize("name", ["logistic", "poisson", "smooth_hinge"])
def test_newton_is_closer_than_first_order_for_large_groups(name):
    model, X, y, s, _X_test, _y_test = problem(name, n=120)
    inf = fi.Influence(model, X, y, s)
    rng = np.random.default_rng(1)
    members = [np.sort(rng.choice(X.shape[0], 24, replace=False)) for _ in range(4)]
    groups = inf.groups(members)
    _, delta = fi.exact_group_loo_on(model, X, y, members, T.Coefficient(0), s, return_params=True)
    errors = {
        method: np.linalg.norm(groups.loo_params(method) - delta, axis=1) / np.linalg.norm(delta, axis=1)
        for method in ("influence", "newton")
    }
    assert np.mean(errors["newton"]) < 0.7 * np.mean(errors["influence"])


def test_targets_and_labels():
    pd = pytest.importorskip("pandas")
    model, X, y, s, X_test, _y_test = problem("logistic")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = make_model("logistic", tol=1e-13).fit(frame, y, sample_weight=s)
    inf = fi.Influence(model, frame, y, s)
    sites = np.array(["north", "south", "east"])[np.arange(X.shape[0]) % 3]
    groups = inf.groups(pd.Series(sites))
    assert groups.labels_ == ["east", "north", "south"]
    params = groups.loo_params("newton")
    assert params.index.name == "group"
    assert list(params.index) == ["east", "north", "south"]
    coefficient = groups.loo_on(T.Coefficient("b"), "newton")
    assert_close(coefficient.to_numpy()[:, 0], params["b"].to_numpy(), 1e-12)
    proba = groups.loo_on(T.PredictProba(X_test), "newton")
    _, delta = fi.exact_group_loo_on(
        model, frame, y, pd.Series(sites), T.PredictProba(X_test), s, return_params=True
    )
    assert list(delta.index) == ["east", "north", "south"]
    first = groups.loo_on(T.PredictProba(X_test), "influence")
    assert_close(
        first.to_numpy(),
        groups.loo_params("influence").to_numpy() @ inf._bind(T.PredictProba(X_test)).gradients,
        1e-12,
    )
    assert proba.shape == (3, 3)
    with pytest.raises(fi.InvalidArgumentError) as info:
        inf.groups(sites[:-1])
    assert info.value.argument == "groups"
    with pytest.raises(fi.InvalidArgumentError, match="empty"):
        inf.groups([np.array([1, 2]), np.array([], dtype=int)])
    with pytest.raises(fi.InvalidArgumentError, match="NaN"):
        inf.groups(np.where(np.arange(X.shape[0]) == 4, np.nan, 1.0))


def test_multinomial_groups_are_the_explicit_newton_step():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((90, 3))
    y = np.argmax(X @ rng.standard_normal((3, 3)) + rng.gumbel(size=(90, 3)), axis=1)
    model = fi.MultinomialLogisticRegression(l2=1e-2, tol=1e-13).fit(X, y)
    inf = fi.Influence(model, X, y)
    members = [np.arange(0, 5), np.arange(10, 40)]  # K|G| = 15 and 90 against p = 12
    steps = inf.groups(members).loo_params("newton")
    from fastinfluence import kernels as K
    from fastinfluence.backends import get_backend
    from fastinfluence.multinomial import Gauge

    for k, rows in enumerate(members):
        weights = np.ones(90)
        weights[rows] = 0.0
        H = K.hessian(
            "multinomial", X, y, model.theta_, weights=weights, l2=1e-2, n_classes=3, backend="numpy"
        )
        g = K.gradient(
            "multinomial", X, y, model.theta_, weights=weights, l2=1e-2, n_classes=3, backend="numpy"
        )
        gauge = Gauge.for_data(get_backend("numpy"), X, None, 90, True, 1e-2, 3)
        assert_close(steps[k], -np.linalg.solve(H + gauge.dense(), g), 1e-8)


def test_dask_groups_agree_with_memory():
    da = pytest.importorskip("dask.array")
    fid = pytest.importorskip("fastinfluence.dask")
    model, X, y, s, X_test, y_test = problem("logistic")
    labels = np.arange(X.shape[0]) % 4
    expected = fi.Influence(model, X, y, s).groups(labels)
    groups = fid.Influence(model, da.from_array(X, chunks=(30, -1)), y, sample_weight=s).groups(labels)
    for method in ("influence", "newton"):
        assert_close(groups.loo(X_test, y_test, method), expected.loo(X_test, y_test, method), 1e-9)


def test_duplicates_tuples_singular_groups_and_cg():
    model, X, y, s, _X_test, _y_test = problem("squared")
    inf = fi.Influence(model, X, y, s)
    # a row listed twice is removed once, as the refit removes it
    twice = inf.groups([[3, 3, 7]]).loo_params("newton")
    assert_close(twice, inf.groups([[3, 7]]).loo_params("newton"), 1e-12)
    _, exact = fi.exact_group_loo_on(model, X, y, [[3, 7]], T.Coefficient(0), s, return_params=True)
    assert_close(twice, exact, 1e-8)
    # tuple labels, one per row, are labels
    labels = [(i % 2, i % 3) for i in range(X.shape[0])]
    assert len(inf.groups(labels).labels_) == 6
    # CG: the same estimates, the reduced Hessian formed from the operator for large groups
    cg = fi.Influence(model, X, y, s, solver="cg", solver_options={"tol": 1e-12})
    members = [np.arange(0, 3), np.arange(10, 40)]
    assert_close(cg.groups(members).loo_params("newton"), inf.groups(members).loo_params("newton"), 1e-8)
    # a group whose removal leaves a singular Hessian: NaN and a warning, as for single rows
    Xs = np.hstack([X, np.zeros((X.shape[0], 1))])
    Xs[0, -1] = 1.0  # a column only row 0 has
    singular = make_model("squared", l2=0.0, tol=1e-13).fit(Xs, y)
    inf_s = fi.Influence(singular, Xs, y)
    with pytest.warns(fi.LeverageWarning, match="singular Hessian"):
        steps = inf_s.groups([[0], [0, 1, 2, 3], list(range(40))]).loo_params("newton")
    assert np.isnan(steps[:2]).all()
    assert np.isfinite(steps[2]).all() or np.isnan(steps[2]).all()
