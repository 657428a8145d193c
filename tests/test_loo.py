"""Leave-one-out: influence and Newton estimates against brute-force refits
(fi.exact_loo), on breast-cancer data and on problems where Newton is exact."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, make_data, make_model

import fastinfluence as fi

# ---------------------------------------------------------------------------
# Breast cancer: logistic regression, 455 training rows, 114 test rows
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def breast_cancer():
    """Model, influence object, exact LOO for the first five test points (computed once)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_train, y_train, X_test, y_test = X[:455], y[:455], X[455:], y[455:]
    model = fi.LogisticRegression(l2=1e-2).fit(X_train, y_train)
    exact = fi.exact_loo(model, X_train, y_train, None, X_test[:5], y_test[:5])
    inf = fi.Influence(model, X_train, y_train)
    return model, inf, X_train, y_train, X_test[:5], y_test[:5], exact


@pytest.mark.parametrize(
    ("method", "min_correlation", "slope_range"),
    [("influence", 0.98, (0.7, 1.2)), ("newton", 0.995, (0.95, 1.05))],
)
def test_breast_cancer_estimates_correlate_with_exact_loo(
    breast_cancer, method, min_correlation, slope_range
):
    model, inf, _X_train, _y_train, X_test, y_test, exact = breast_cancer
    assert model.converged_
    assert exact.shape == (455, 5)
    estimate = inf.loo(X_test, y_test, method=method)
    assert estimate.shape == (455, 5)
    for j in range(5):
        r = np.corrcoef(estimate[:, j], exact[:, j])[0, 1]
        assert r >= min_correlation, f"test point {j}: Pearson r = {r:.5f} < {min_correlation}"
        # the same sign convention and scale, not merely correlated (measured slopes:
        # 0.82-0.89 for the first-order estimate, which misses the 1/(1 - h_i) factor; 0.99-1.01 for Newton)
        slope = np.dot(estimate[:, j], exact[:, j]) / np.dot(exact[:, j], exact[:, j])
        assert slope_range[0] < slope < slope_range[1], f"test point {j}: slope {slope:.3f}"


def test_breast_cancer_newton_beats_influence(breast_cancer):
    _, inf, _, _, X_test, y_test, exact = breast_cancer
    err_influence = np.abs(inf.loo(X_test, y_test, method="influence") - exact).sum()
    err_newton = np.abs(inf.loo(X_test, y_test, method="newton") - exact).sum()
    assert err_newton < 0.5 * err_influence


def test_breast_cancer_influence_is_minus_scaled_up_loss(breast_cancer):
    # loo(method="influence") = -(s_i/n) I_up,loss with s_i = 1, n = 455
    _, inf, _, _, X_test, y_test, _ = breast_cancer
    assert_close(inf.loo(X_test, y_test, method="influence"), -inf.loss(X_test, y_test) / 455, 1e-12)


# ---------------------------------------------------------------------------
# Squared loss: the objective is quadratic, so one Newton step is exact
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_newton_is_exact_for_squared_loss(l2, fit_intercept, weighted):
    X, y, s = make_data("squared", n=50, d=4, seed=41, weighted=weighted)
    X_test, y_test, _ = make_data("squared", n=5, d=4, seed=42)
    model = fi.LinearRegression(l2=l2, fit_intercept=fit_intercept, tol=1e-13).fit(X, y, sample_weight=s)
    exact, delta = fi.exact_loo(model, X, y, None, X_test, y_test, sample_weight=s, return_params=True)
    inf = fi.Influence(model, X, y, s)
    assert_close(inf.loo(X_test, y_test, method="newton"), exact, 1e-8, atol_fraction=1e-10)
    assert_close(inf.loo_params(method="newton"), delta, 1e-8, atol_fraction=1e-10)
    # the first-order estimate is close but not exact: it lacks the 1/(1 - h_i) factor
    influence = inf.loo_params(method="influence")
    assert_close(influence / (1 - inf.leverage())[:, None], delta, 1e-8, atol_fraction=1e-10)
    assert not np.allclose(influence, delta, rtol=1e-4)


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
def test_loo_with_nonuniform_weights_uses_s_over_n(fit_intercept):
    # Dropping z_i removes (s_i/n) loss(z_i) from R (n stays fixed), so every estimate
    # scales with s_i/n; for the squared loss the Newton estimate is exact at any weight.
    X, y, _ = make_data("squared", n=30, d=3, seed=43)
    s = np.random.default_rng(43).uniform(0.1, 3.0, 30)
    s[:4] = [0.0, 0.2, 3.0, 9.0]
    X_test, y_test, _ = make_data("squared", n=4, d=3, seed=44)
    model = fi.LinearRegression(l2=0.05, fit_intercept=fit_intercept, tol=1e-13).fit(X, y, sample_weight=s)
    inf = fi.Influence(model, X, y, s)
    exact, delta = fi.exact_loo(model, X, y, None, X_test, y_test, sample_weight=s, return_params=True)
    assert_close(inf.loo_params("newton"), delta, 1e-8, atol_fraction=1e-10)
    assert_close(inf.loo(X_test, y_test, "newton"), exact, 1e-8, atol_fraction=1e-10)
    # a zero-weight point changes nothing
    np.testing.assert_array_equal(exact[0], 0.0)
    np.testing.assert_array_equal(inf.loo(X_test, y_test, "newton", [0]), 0.0)
    np.testing.assert_array_equal(inf.loo_params("influence", [0]), 0.0)
    # the influence estimate is -(s_i/n) I_up,params
    assert_close(inf.loo_params("influence"), -(s / 30)[:, None] * inf.params(), 1e-12)


@pytest.mark.parametrize("name", ["logistic", "smooth_hinge", "poisson"])
def test_loo_with_nonuniform_weights_other_losses(name):
    # Newton is exact only to higher order in s_i/n here, so compare row by row through the
    # least-squares slope of estimate on exact change: within [0.6, 1.6] for every weight
    # (the smooth hinge, t = 0.25, is the least quadratic of the three), whereas
    # scaling by 1/n instead of s_i/n would give slopes near 1/s_i (3.3 or 0.33).
    X, y, _ = make_data(name, n=100, d=3, seed=45)
    s = np.random.default_rng(45).choice([0.3, 3.0], 100)
    s[0] = 0.0
    X_test, y_test, _ = make_data(name, n=4, d=3, seed=46)
    model = make_model(name, tol=1e-13).fit(X, y, sample_weight=s)
    inf = fi.Influence(model, X, y, s)
    idx = np.arange(16)
    exact, delta = fi.exact_loo(model, X, y, idx, X_test, y_test, sample_weight=s, return_params=True)
    np.testing.assert_array_equal(exact[0], 0.0)
    np.testing.assert_array_equal(inf.loo(X_test, y_test, "newton", [0]), 0.0)
    np.testing.assert_array_equal(inf.loo_params("newton", [0]), 0.0)
    for estimate, reference in (
        (inf.loo_params("newton", idx), delta),
        (inf.loo(X_test, y_test, "newton", idx), exact),
    ):
        for i in idx[1:]:
            slope = estimate[i] @ reference[i] / (reference[i] @ reference[i])
            assert 0.6 < slope < 1.6, f"row {i} (s_i = {s[i]}): slope {slope:.3f}"
        assert np.corrcoef(estimate.ravel(), reference.ravel())[0, 1] > 0.98


def test_exact_loo_matches_refit_without_the_row():
    # l2 = 0: dropping a row and setting its weight to 0 have the same minimiser
    X, y, _ = make_data("logistic", n=40, d=3, seed=45)
    X_test, y_test, _ = make_data("logistic", n=3, d=3, seed=46)
    model = fi.LogisticRegression(l2=0.0, tol=1e-13).fit(X, y)
    exact, delta = fi.exact_loo(model, X, y, [5, 11], X_test, y_test, return_params=True)
    for row, i in enumerate([5, 11]):
        keep = np.arange(40) != i
        refit = fi.LogisticRegression(l2=0.0, tol=1e-13).fit(X[keep], y[keep])
        assert_close(model.theta_ + delta[row], refit.theta_, 1e-8)
        eta_new, eta_old = X_test @ refit.coef_ + refit.intercept_, X_test @ model.coef_ + model.intercept_
        change = np.logaddexp(0, eta_new) - y_test * eta_new - (np.logaddexp(0, eta_old) - y_test * eta_old)
        assert_close(exact[row], change, 1e-7)


def test_leverage_one_gives_nan_and_warns():
    # Feature 3 is non-zero in row 0 only: without row 0 its weight is unidentified
    # (l2 = 0), the Hessian of the reduced problem is singular and h_0 = 1.
    X, y, _ = make_data("squared", n=20, d=3, seed=47)
    X = np.column_stack([X, np.zeros(20)])
    X[0, 3] = 1.0
    model = fi.LinearRegression(l2=0.0).fit(X, y)
    inf = fi.Influence(model, X, y)
    np.testing.assert_allclose(inf.leverage([0]), 1.0, rtol=1e-10)
    with pytest.warns(fi.LeverageWarning, match="leverage"):
        loo = inf.loo(X[:2], y[:2], method="newton")
    assert np.all(np.isnan(loo[0]))
    assert np.all(np.isfinite(loo[1:]))
    with pytest.warns(fi.LeverageWarning):
        params = inf.loo_params(method="newton")
    assert np.all(np.isnan(params[0]))
    assert np.all(np.isfinite(params[1:]))
    assert np.all(np.isfinite(inf.loo(X[:2], y[:2], method="influence")))


def test_exact_loo_shapes_and_indices():
    X, y, _ = make_data("poisson", n=30, d=2, seed=48)
    model = fi.PoissonRegression().fit(X, y)
    full = fi.exact_loo(model, X, y, None, X[:3], y[:3])
    assert full.shape == (30, 3)
    subset, delta = fi.exact_loo(model, X, y, [4, 2], X[:3], y[:3], return_params=True)
    assert subset.shape == (2, 3)
    assert delta.shape == (2, 3)
    assert_close(subset, full[[4, 2]], 1e-12)
