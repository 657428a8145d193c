"""Influence.validate / validate_on (the accuracy certificate) against refits written here, on real
data: closed-form ridge refits on the diabetes data in its raw units, and logistic and Poisson refits
by SciPy's trust-region Newton on breast cancer and on statsmodels' RAND health data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import spearmanr

import fastinfluence as fi
from fastinfluence.validation_refits import AccuracyCertificate, compare

datasets = pytest.importorskip("sklearn.datasets")


# -- refits that share no code with the package: (1/n) sum s_i loss_i + (l2/2)||w||^2, n fixed ----
def _augment(X):
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _ridge_refit(X, y, s, l2):
    """The squared loss's optimum in closed form (the normal equations)."""
    A = _augment(X)
    n = X.shape[0]
    penalty = l2 * np.diag(np.r_[np.ones(X.shape[1]), 0.0])
    return np.linalg.solve(A.T @ (s[:, None] * A) / n + penalty, A.T @ (s * y) / n)


def _glm_refit(X, y, s, l2, theta0, loss):
    """Logistic or Poisson optimum by SciPy's trust-region Newton (exact gradient and Hessian)."""
    A, n = _augment(X), X.shape[0]
    mask = np.r_[np.ones(X.shape[1]), 0.0]

    def parts(theta):
        eta = A @ theta
        if loss == "logistic":
            value, d1, d2 = np.logaddexp(0, eta) - y * eta, expit(eta) - y, expit(eta) * expit(-eta)
        else:
            mu = np.exp(eta)
            value, d1, d2 = mu - y * eta, mu - y, mu
        return value, d1, d2

    def f(theta):
        value = parts(theta)[0]
        return s @ value / n + 0.5 * l2 * np.sum(mask * theta**2)

    def grad(theta):
        return A.T @ (s * parts(theta)[1]) / n + l2 * mask * theta

    def hess(theta):
        return A.T @ ((s * parts(theta)[2])[:, None] * A) / n + l2 * np.diag(mask)

    theta = minimize(f, theta0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-11}).x
    for _ in range(2):  # polish: SciPy stops at gtol; two Newton steps reach rounding
        theta = theta - np.linalg.solve(hess(theta), grad(theta))
    assert np.linalg.norm(grad(theta)) < 1e-12
    return theta


def _test_loss(theta, X, y, loss):
    eta = _augment(X) @ theta
    if loss == "squared":
        return 0.5 * (eta - y) ** 2
    if loss == "logistic":
        return np.logaddexp(0, eta) - y * eta
    return np.exp(eta) - y * eta


def _brute_force(X, y, l2, loss, removals, X_test, y_test, theta):
    """(k, m) test-loss changes, one refit per removal (an array of rows)."""
    changes = []
    for rows in removals:
        s = np.ones(X.shape[0])
        s[rows] = 0.0
        refit = _ridge_refit(X, y, s, l2) if loss == "squared" else _glm_refit(X, y, s, l2, theta, loss)
        changes.append(_test_loss(refit, X_test, y_test, loss) - _test_loss(theta, X_test, y_test, loss))
    return np.array(changes)


@pytest.fixture(scope="module")
def diabetes_raw():
    """The diabetes data in raw units (age in years, BMI, blood pressure, serum values)."""
    X, y = datasets.load_diabetes(return_X_y=True, scaled=False)
    return X[:300], y[:300], X[300:], y[300:]


@pytest.fixture(scope="module")
def breast_cancer():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    mean, std = X[:455].mean(axis=0), X[:455].std(axis=0)
    return (X[:455] - mean) / std, y[:455], (X[455:] - mean) / std, y[455:]


@pytest.fixture(scope="module")
def rand_health():
    """Doctor visits (counts) of statsmodels' RAND health insurance data, raw covariates."""
    sm_datasets = pytest.importorskip("statsmodels.datasets")
    data = sm_datasets.randhie.load_pandas().data
    X = data.drop(columns="mdvis").to_numpy(dtype=np.float64)[:1200]
    y = data["mdvis"].to_numpy(dtype=np.float64)[:1200]
    return X[:1000], y[:1000], X[1000:], y[1000:]


def test_ridge_in_raw_units_matches_closed_form_refits(diabetes_raw):
    X, y, X_test, y_test = diabetes_raw
    model = fi.LinearRegression(l2=1e-3).fit(X, y)
    inf = fi.Influence(model, X, y)
    cert = inf.validate(X_test, y_test, n_top=5, n_random=10, random_state=3)
    assert isinstance(cert, AccuracyCertificate)
    assert cert.rows.size == 15
    assert list(cert.kind) == ["top"] * 5 + ["random"] * 10
    expected = _brute_force(X, y, 1e-3, "squared", [[i] for i in cert.rows], X_test, y_test, model.theta_)
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(cert.refit, expected, rtol=1e-6, atol=1e-8 * scale)
    # the Newton step is exact for the squared loss: the certificate says so
    assert cert.metrics["newton"]["max_relative_error"] < 1e-6
    assert cert.metrics["newton"]["pearson"] > 1 - 1e-9
    assert cert.metrics["influence"]["pearson"] > 0.9
    # computed over all rows (to rank them) vs over the selected ones: equal to rounding
    np.testing.assert_allclose(cert.influence, inf.loo(X_test, y_test, indices=cert.rows), rtol=1e-12)
    np.testing.assert_allclose(cert.newton, inf.loo(X_test, y_test, "newton", indices=cert.rows), rtol=1e-12)


def test_logistic_metrics_are_those_of_the_brute_force_refits(breast_cancer):
    X, y, X_test, y_test = breast_cancer
    model = fi.LogisticRegression(l2=1e-3).fit(X, y)
    inf = fi.Influence(model, X, y)
    cert = inf.validate(X_test, y_test, n_top=4, n_random=8, random_state=0)
    expected = _brute_force(X, y, 1e-3, "logistic", [[i] for i in cert.rows], X_test, y_test, model.theta_)
    np.testing.assert_allclose(cert.refit, expected, rtol=1e-5, atol=1e-9)
    for method in ("influence", "newton"):
        estimate = getattr(cert, method)
        figures = cert.metrics[method]
        assert figures["pearson"] == pytest.approx(
            np.corrcoef(estimate.ravel(), expected.ravel())[0, 1], abs=1e-6
        )
        # ranks of changes near 1e-12 swap between two exact refits: rank the certificate's own
        assert figures["spearman"] == pytest.approx(
            spearmanr(estimate.ravel(), cert.refit.ravel())[0], abs=1e-12
        )
        error = np.max(np.abs(estimate - expected))
        assert figures["max_abs_error"] == pytest.approx(error, rel=1e-4)
        assert figures["max_relative_error"] == pytest.approx(error / np.max(np.abs(expected)), rel=1e-4)
    # on this data the Newton step is the better estimate (Koh & Liang's figure 2)
    assert cert.metrics["newton"]["max_abs_error"] < cert.metrics["influence"]["max_abs_error"]
    assert cert.metrics["newton"]["pearson"] > 0.99


def test_poisson_in_raw_units(rand_health):
    X, y, X_test, y_test = rand_health
    model = fi.PoissonRegression(l2=1e-2).fit(X, y)
    inf = fi.Influence(model, X, y)
    cert = inf.validate(X_test, y_test, n_top=3, n_random=5, random_state=1)
    expected = _brute_force(X, y, 1e-2, "poisson", [[i] for i in cert.rows], X_test, y_test, model.theta_)
    np.testing.assert_allclose(cert.refit, expected, rtol=1e-5, atol=1e-9 * np.max(np.abs(expected)))
    assert cert.metrics["newton"]["pearson"] > 0.99


def test_top_rows_are_the_largest_estimates_and_the_sample_is_seeded(breast_cancer):
    X, y, X_test, y_test = breast_cancer
    inf = fi.Influence(fi.LogisticRegression(l2=1e-3).fit(X, y), X, y)
    first = inf.loo(X_test[:5], y_test[:5])
    cert = inf.validate(X_test[:5], y_test[:5], n_top=6, n_random=6, random_state=7)
    largest = np.argsort(-np.abs(first).max(axis=1), kind="stable")[:6]
    np.testing.assert_array_equal(cert.rows[:6], largest)
    random_rows = cert.rows[6:]
    assert not set(random_rows) & set(largest)
    again = inf.validate(X_test[:5], y_test[:5], n_top=6, n_random=6, random_state=7)
    np.testing.assert_array_equal(again.rows, cert.rows)
    np.testing.assert_array_equal(again.refit, cert.refit)
    other = inf.validate(X_test[:5], y_test[:5], n_top=6, n_random=6, random_state=8)
    assert set(other.rows[6:]) != set(random_rows)
    everything = inf.validate(X_test[:2], y_test[:2], n_top=3, n_random=10_000)
    assert everything.rows.size == X.shape[0]  # capped at n


def test_groups_against_brute_force(diabetes_raw):
    X, y, X_test, y_test = diabetes_raw
    model = fi.LinearRegression(l2=1e-3).fit(X, y)
    inf = fi.Influence(model, X, y)
    labels = X[:, 1].astype(int)  # the sex column: two groups of about 150 rows
    age_band = (X[:, 0] // 10).astype(int)  # decades of age: 6 groups
    cert = inf.validate(X_test, y_test, groups=age_band, n_top=2, n_random=2, random_state=0)
    assert cert.unit == "group"
    assert len(cert.labels) == 4
    removals = [np.flatnonzero(age_band == label) for label in cert.labels]
    expected = _brute_force(X, y, 1e-3, "squared", removals, X_test, y_test, model.theta_)
    np.testing.assert_allclose(cert.refit, expected, rtol=1e-6, atol=1e-8 * np.max(np.abs(expected)))
    assert cert.metrics["newton"]["max_relative_error"] < 1e-6  # Woodbury: exact for the squared loss
    two = inf.validate(X_test, y_test, groups=labels, n_top=1, n_random=1)
    assert sorted(two.labels) == [1, 2]
    frame = two.to_frame()
    assert list(frame.columns[:3]) == ["group", "label", "kind"]
    assert len(frame) == 2 * X_test.shape[0]


def test_other_targets_and_multinomial():
    X, y = datasets.load_wine(return_X_y=True)  # raw units: proline in the hundreds, hue near 1
    model = fi.MultinomialLogisticRegression(l2=1e-2, max_iter=200).fit(X, y)
    inf = fi.Influence(model, X, y)
    cert = inf.validate_on(fi.targets.PredictProba(X[:3]), n_top=3, n_random=3)
    assert cert.target == "PredictProba"
    expected = fi.exact_loo_on(model, X, y, cert.rows, fi.targets.PredictProba(X[:3]))
    np.testing.assert_allclose(cert.refit, expected, rtol=1e-12)
    assert cert.metrics["newton"]["pearson"] > 0.95
    coefficient = inf.validate_on(fi.targets.Coefficient(0), n_top=2, n_random=2)
    assert coefficient.refit.shape[0] == 4


def test_repr_and_frame(breast_cancer):
    X, y, X_test, y_test = breast_cancer
    inf = fi.Influence(fi.LogisticRegression(l2=1e-3).fit(X, y), X, y)
    cert = inf.validate(X_test[:4], y_test[:4], n_top=2, n_random=3)
    text = repr(cert)
    assert "5 rows refitted exactly, 2 of largest |influence| and 3 at random" in text
    assert "first order" in text
    assert "Newton step" in text
    assert "Pearson r" in text
    frame = cert.to_frame()
    assert list(frame.columns) == [
        "row", "kind", "column", "refit", "influence", "newton", "influence_error", "newton_error"
    ]  # fmt: skip
    assert len(frame) == 5 * 4
    np.testing.assert_allclose(frame["newton_error"], (cert.newton - cert.refit).ravel())


def test_frames_are_accepted(breast_cancer):
    pd = pytest.importorskip("pandas")
    X, y, X_test, y_test = breast_cancer
    frame = pd.DataFrame(X, index=np.arange(X.shape[0]) + 1000)
    model = fi.LogisticRegression(l2=1e-3).fit(X, y)
    by_frame = fi.Influence(model, frame, y).validate(X_test[:3], y_test[:3], n_top=2, n_random=2)
    by_array = fi.Influence(model, X, y).validate(X_test[:3], y_test[:3], n_top=2, n_random=2)
    np.testing.assert_array_equal(by_frame.rows, by_array.rows)
    np.testing.assert_allclose(by_frame.refit, by_array.refit)


def test_bad_arguments(breast_cancer):
    X, y, X_test, y_test = breast_cancer
    inf = fi.Influence(fi.LogisticRegression(l2=1e-3).fit(X, y), X, y)
    with pytest.raises(ValueError, match="at least one row"):
        inf.validate(X_test, y_test, n_top=0, n_random=0)
    with pytest.raises(ValueError, match="n_top"):
        inf.validate(X_test, y_test, n_top=-1)
    with pytest.raises(TypeError, match="target"):
        inf.validate_on("loss")


def test_compare_leaves_out_undefined_estimates():
    figures = compare(np.array([1.0, np.nan, 3.0, 2.0]), np.array([1.0, 5.0, 2.0, 3.0]))
    assert figures["n_undefined"] == 1
    assert figures["max_abs_error"] == 1.0
    assert figures["max_relative_error"] == pytest.approx(1 / 3)


def test_dask_influence_refuses_clearly():
    da = pytest.importorskip("dask.array")
    fid = pytest.importorskip("fastinfluence.dask")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + rng.normal(size=200) > 0).astype(float)
    model = fi.LogisticRegression(l2=1e-2).fit(X, y)
    inf = fid.Influence(model, da.from_array(X, chunks=100), da.from_array(y, chunks=100))
    with pytest.raises(ValueError, match="in memory"):
        inf.validate(X[:2], y[:2])


def test_sample_weights_are_the_fits(diabetes_raw):
    X, y, X_test, y_test = diabetes_raw
    s = np.random.default_rng(0).uniform(0.5, 2.0, size=X.shape[0])
    model = fi.LinearRegression(l2=1e-3).fit(X, y, sample_weight=s)
    cert = fi.Influence(model, X, y, s).validate(X_test, y_test, n_top=2, n_random=3)
    theta = _ridge_refit(X, y, s, 1e-3)
    expected = []
    for i in cert.rows:
        weights = s.copy()
        weights[i] = 0.0
        refit = _ridge_refit(X, y, weights, 1e-3)
        expected.append(
            _test_loss(refit, X_test, y_test, "squared") - _test_loss(theta, X_test, y_test, "squared")
        )
    expected = np.array(expected)
    np.testing.assert_allclose(cert.refit, expected, rtol=1e-6, atol=1e-8 * np.max(np.abs(expected)))
    assert cert.metrics["newton"]["max_relative_error"] < 1e-6
