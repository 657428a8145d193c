"""Fitting: convergence to the optimum, agreement with scikit-learn, sample
weights, label encodings, prediction, and the failure modes of a fit."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import L2, SMOOTH_HINGE_T, assert_close, loss_of, make_data, make_model
from scipy import optimize

import fastinfluence as fi
from fastinfluence.losses import LOSS_NAMES

K = fi.kernels


def relative_gradient_norm(model, X, y, sample_weight=None, backend="numpy"):
    """||grad R(theta_)|| / max(1, ||grad R(0)||), recomputed independently of the fit."""
    loss = model.loss
    y_int = model.encode_targets(y, X.shape[0])
    kw = dict(weights=sample_weight, l2=model.l2, fit_intercept=model.fit_intercept, backend=backend)
    grad = K.gradient(loss, X, y_int, model.theta_, **kw)
    grad0 = K.gradient(loss, X, y_int, np.zeros_like(model.theta_), **kw)
    return np.linalg.norm(grad) / max(1.0, np.linalg.norm(grad0))


# ---------------------------------------------------------------------------
# Convergence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_fit_converges_to_the_optimum(name, backend, fit_intercept, weighted):
    X, y, s = make_data(name, n=200, d=5, seed=21, weighted=weighted)
    model = make_model(name, fit_intercept=fit_intercept, backend=backend)
    assert model.fit(X, y, sample_weight=s) is model
    assert model.converged_
    assert model.fit_message_ == "converged"
    assert 1 <= model.n_iter_ <= 30
    assert relative_gradient_norm(model, X, y, s) < 1e-10
    assert model.grad_norm_ < 1e-10 * max(
        1.0,
        np.linalg.norm(
            K.gradient(
                model.loss,
                X,
                model.encode_targets(y, len(y)),
                np.zeros_like(model.theta_),
                weights=s,
                l2=model.l2,
                fit_intercept=fit_intercept,
            )
        ),
    )
    assert_close(
        model.objective_,
        K.objective(
            model.loss,
            X,
            model.encode_targets(y, len(y)),
            model.theta_,
            weights=s,
            l2=model.l2,
            fit_intercept=fit_intercept,
        ),
        1e-12,
    )
    # fitted attributes are consistent views of theta_
    d = X.shape[1]
    assert model.theta_.shape == (d + fit_intercept,)
    np.testing.assert_array_equal(model.coef_, model.theta_[:d])
    assert model.intercept_ == (model.theta_[d] if fit_intercept else 0.0)
    assert model.n_features_in_ == d
    np.testing.assert_allclose(model.decision_function(X), X @ model.coef_ + model.intercept_, rtol=1e-12)


def test_fit_float32_and_fortran_order_give_the_same_theta():
    X, y, s = make_data("logistic", n=300, d=6, seed=2, weighted=True, dtype=np.float32)
    reference = fi.LogisticRegression(l2=L2).fit(np.asarray(X, dtype=np.float64), y, s).theta_
    for X_variant in (X, np.asfortranarray(X), np.asfortranarray(X, dtype=np.float64)):
        assert_close(fi.LogisticRegression(l2=L2).fit(X_variant, y, s).theta_, reference, 1e-10)


def test_fit_threaded_equals_serial_bitwise():
    X, y, s = make_data("poisson", n=5000, d=8, seed=4, weighted=True)
    serial = fi.PoissonRegression(l2=L2, n_jobs=1).fit(X, y, s)
    threaded = fi.PoissonRegression(l2=L2, n_jobs=2).fit(X, y, s)
    np.testing.assert_array_equal(threaded.theta_, serial.theta_)
    assert threaded.n_iter_ == serial.n_iter_


# ---------------------------------------------------------------------------
# Agreement with scikit-learn and SciPy
# ---------------------------------------------------------------------------
# scikit-learn minimises C * sum_i loss_i + 0.5 ||w||^2 (intercept unpenalised).
# Dividing ours, (1/n) sum_i loss_i + (l2/2)||w||^2, by l2 gives the same
# objective with C = 1 / (l2 n). Ridge minimises ||y - Xw - b||^2 + alpha ||w||^2,
# 2n times ours with alpha = l2 n. PoissonRegressor minimises
# (1/2n) sum deviance + (alpha/2)||w||^2 and half the Poisson deviance is
# exp(eta) - y eta plus terms free of w: alpha = l2.


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
@pytest.mark.parametrize("l2", [1e-3, 1e-1])
def test_logistic_regression_matches_scikit_learn(l2, fit_intercept):
    from sklearn.linear_model import LogisticRegression

    X, y, _ = make_data("logistic", n=400, d=6, seed=8)
    ours = fi.LogisticRegression(l2=l2, fit_intercept=fit_intercept).fit(X, y)
    n = X.shape[0]
    theirs = LogisticRegression(
        C=1.0 / (l2 * n), fit_intercept=fit_intercept, solver="newton-cholesky", tol=1e-12, max_iter=10000
    ).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_.ravel(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        ours.intercept_, theirs.intercept_[0] if fit_intercept else 0.0, rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6, atol=1e-9)


def test_logistic_regression_matches_scikit_learn_lbfgs_with_weights():
    from sklearn.linear_model import LogisticRegression

    X, y, s = make_data("logistic", n=300, d=4, seed=9, weighted=True)
    l2, n = 1e-2, X.shape[0]
    ours = fi.LogisticRegression(l2=l2).fit(X, y, sample_weight=s)
    theirs = LogisticRegression(C=1.0 / (l2 * n), solver="lbfgs", tol=1e-12, max_iter=10000).fit(
        X, y, sample_weight=s
    )
    np.testing.assert_allclose(
        ours.theta_, np.r_[theirs.coef_.ravel(), theirs.intercept_], rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_linear_regression_matches_closed_form_and_ridge(l2):
    from sklearn.linear_model import Ridge

    X, y, s = make_data("squared", n=120, d=5, seed=10, weighted=True)
    n = X.shape[0]
    ours = fi.LinearRegression(l2=l2).fit(X, y, sample_weight=s)
    # normal equations of (1/n) sum s_i (xa_i.theta - y_i)^2 / 2 + (l2/2)||w||^2
    Xa = np.hstack([X, np.ones((n, 1))])
    A = Xa.T @ (s[:, None] * Xa) / n + l2 * np.diag([1.0] * 5 + [0.0])
    assert_close(ours.theta_, np.linalg.solve(A, Xa.T @ (s * y) / n), 1e-10)
    theirs = Ridge(alpha=max(l2 * n, 1e-300), solver="cholesky").fit(X, y, sample_weight=s)
    np.testing.assert_allclose(ours.theta_, np.r_[theirs.coef_, theirs.intercept_], rtol=1e-6, atol=1e-9)


def test_poisson_regression_matches_scikit_learn():
    from sklearn.linear_model import PoissonRegressor

    X, y, _ = make_data("poisson", n=300, d=4, seed=12)
    l2 = 1e-2
    ours = fi.PoissonRegression(l2=l2).fit(X, y)
    theirs = PoissonRegressor(alpha=l2, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6)


def test_smooth_hinge_matches_scipy_minimiser():
    X, y, _ = make_data("smooth_hinge", n=200, d=4, seed=13)
    model = fi.SmoothHingeClassifier(t=0.1, l2=L2).fit(X, y)
    loss = fi.Loss("smooth_hinge", 0.1)

    def fun(theta):
        return (
            K.objective(loss, X, y, theta, l2=L2, backend="numpy"),
            K.gradient(loss, X, y, theta, l2=L2, backend="numpy"),
        )

    result = optimize.minimize(
        fun, np.zeros(5), jac=True, method="L-BFGS-B", options=dict(gtol=1e-12, ftol=1e-15, maxiter=10000)
    )
    np.testing.assert_allclose(model.theta_, result.x, rtol=1e-5, atol=1e-6)
    assert model.objective_ <= result.fun + 1e-15


# ---------------------------------------------------------------------------
# Sample weights
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_integer_weights_fit_equals_duplicated_rows(name):
    # Duplicating rows by integer weights s gives N = sum s rows; with
    # l2_dup = l2 n / N the duplicated objective is (n/N) times the weighted one.
    X, y, _ = make_data(name, n=40, d=3, seed=14)
    n = X.shape[0]
    s = np.random.default_rng(1).integers(1, 4, n)
    N = int(s.sum())
    weighted = make_model(name, l2=0.05).fit(X, y, sample_weight=s)
    duplicated = make_model(name, l2=0.05 * n / N).fit(np.repeat(X, s, axis=0), np.repeat(y, s))
    assert_close(weighted.theta_, duplicated.theta_, 1e-9)
    assert not np.allclose(weighted.theta_, make_model(name, l2=0.05).fit(X, y).theta_, rtol=1e-4)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_zero_weight_row_has_no_influence_on_the_fit(name):
    X, y, _ = make_data(name, n=40, d=3, seed=15)
    n, i = X.shape[0], 7
    s = np.ones(n)
    s[i] = 0.0
    model = make_model(name).fit(X, y, sample_weight=s)
    # whatever row i holds, theta is the same
    X2, y2 = X.copy(), y.copy()
    X2[i] = [40.0, -3.0, 11.0]
    y2[i] = y[(i + 1) % n] if name != "squared" else 1e3
    np.testing.assert_array_equal(make_model(name).fit(X2, y2, sample_weight=s).theta_, model.theta_)
    # and it equals the fit without the row, with l2 rescaled for the changed n:
    # (1/(n-1)) sum_{j != i} + (l2'/2)||w||^2 with l2' = l2 n/(n-1) is n/(n-1) times ours
    keep = np.arange(n) != i
    dropped = make_model(name, l2=L2 * n / (n - 1)).fit(X[keep], y[keep])
    assert_close(dropped.theta_, model.theta_, 1e-9)
    # exact_loo refits with s_i = 0 and reports theta_{-i} - theta
    full = make_model(name).fit(X, y)
    _, delta = fi.exact_loo(full, X, y, [i], X[:2], y[:2], return_params=True)
    assert_close(full.theta_ + delta[0], model.theta_, 1e-9)


# ---------------------------------------------------------------------------
# Labels and prediction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [fi.LogisticRegression, fi.SmoothHingeClassifier])
def test_label_encodings_give_the_same_fit(cls):
    X, y01, _ = make_data("logistic", n=100, d=3, seed=16)
    y01 = y01.astype(int)
    encodings = {"01": y01, "pm1": 2 * y01 - 1, "bool": y01.astype(bool), "float01": y01.astype(float)}
    models = {k: cls(l2=L2).fit(X, y) for k, y in encodings.items()}
    for k, model in models.items():
        np.testing.assert_array_equal(model.theta_, models["01"].theta_, err_msg=k)
    np.testing.assert_array_equal(models["pm1"].classes_, [-1, 1])
    np.testing.assert_array_equal(models["bool"].classes_, [False, True])
    np.testing.assert_array_equal(models["01"].classes_, [0, 1])
    # predict answers in the user's labels
    eta = models["01"].decision_function(X)
    np.testing.assert_array_equal(models["pm1"].predict(X), np.where(eta > 0, 1, -1))
    np.testing.assert_array_equal(models["01"].predict(X), (eta > 0).astype(int))
    assert models["bool"].predict(X).dtype == bool
    np.testing.assert_array_equal(models["bool"].predict(X), eta > 0)
    assert np.mean(models["01"].predict(X) == y01) > 0.6


def test_predict_proba_and_poisson_predict():
    X, y, _ = make_data("logistic", n=100, d=3, seed=17)
    model = fi.LogisticRegression(l2=L2).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-model.decision_function(X))), rtol=1e-12)
    Xp, yp, _ = make_data("poisson", n=100, d=3, seed=17)
    poisson = fi.PoissonRegression().fit(Xp, yp)
    np.testing.assert_allclose(
        poisson.predict(Xp), np.exp(Xp @ poisson.coef_ + poisson.intercept_), rtol=1e-12
    )
    linear = fi.LinearRegression().fit(*make_data("squared", n=50, d=2, seed=1)[:2])
    np.testing.assert_array_equal(linear.predict(Xp[:, :2]), linear.decision_function(Xp[:, :2]))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_unfitted_model_raises_not_fitted_error(name):
    model = make_model(name)
    X = np.ones((3, 2))
    for method in ("predict", "decision_function"):
        with pytest.raises(fi.NotFittedError, match="not fitted"):
            getattr(model, method)(X)
    assert issubclass(fi.NotFittedError, ValueError)
    assert issubclass(fi.NotFittedError, AttributeError)


def test_get_params_set_params_and_repr():
    model = fi.SmoothHingeClassifier(t=0.3, l2=0.2)
    params = model.get_params()
    assert params["t"] == 0.3
    assert params["l2"] == 0.2
    assert params["fit_intercept"] is True
    assert model.set_params(l2=0.5) is model
    assert model.l2 == 0.5
    assert "SmoothHingeClassifier(" in repr(model)
    assert "t=0.3" in repr(model)
    with pytest.raises(ValueError, match="no parameter 'alpha'"):
        model.set_params(alpha=1.0)


def test_fit_method_is_named_method_and_solver_is_deprecated():
    # "solver" meant the fit's method on models and the Hessian solver on Influence; the models'
    # keyword is now method=, and the old one still works for a while, with a FutureWarning.
    X, y, _ = make_data("logistic", n=80, d=3, seed=4)
    expected = fi.LogisticRegression(method="newton_cg").fit(X, y)
    assert "method" in expected.get_params()
    assert expected.fit_method(4) == "newton_cg"
    old = fi.LogisticRegression(solver="newton_cg")
    with pytest.warns(FutureWarning, match=r"solver=\.\.\.\) is deprecated.*method='newton_cg'"):
        old.fit(X, y)
    assert old.fit_method(4) == "newton_cg"
    np.testing.assert_array_equal(old.theta_, expected.theta_)
    with pytest.raises(ValueError, match="method must be one of"):
        fi.LinearRegression(method="lbfgs").fit(X, y)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="solver must be one of"):
        fi.LinearRegression(solver="lbfgs").fit(X, y)


# ---------------------------------------------------------------------------
# When there is no optimum
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("name", ["logistic", "smooth_hinge"])
def test_separable_data_without_l2_warns(name, backend):
    # Linearly separable labels and l2 = 0: scaling w up always lowers R, so
    # there is no minimiser, although the gradient does fall below tol as w
    # grows. The fit must say so (and return promptly).
    rng = np.random.default_rng(18)
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] - 0.5 * X[:, 1] > 0).astype(int)
    start = time.perf_counter()
    with pytest.warns(fi.ConvergenceWarning, match=r"linearly separable and l2 = 0.*fit with l2 > 0"):
        model = make_model(name, l2=0.0, backend=backend).fit(X, y)
    assert time.perf_counter() - start < 10.0
    assert not model.converged_
    assert "separable" in model.fit_message_
    # a zero-weight point on the wrong side does not make the data inseparable
    X2, y2 = np.vstack([X, X[:1]]), np.r_[y, 1 - y[0]]
    with pytest.warns(fi.ConvergenceWarning, match="separable"):
        make_model(name, l2=0.0, backend=backend).fit(X2, y2, sample_weight=np.r_[np.ones(60), 0.0])
    # with a penalty the same data has an optimum and no warning is raised
    assert make_model(name, l2=L2, backend=backend).fit(X, y).converged_


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_smooth_hinge_small_t_without_l2_converges(backend):
    # Regression: at theta = 0 the smooth hinge with t = 0.01 has curvature ~exp(-100)/t, so the
    # Newton step was ~1e40 long; 60 halvings could not shorten it enough and the line search
    # failed at iteration 0 on data that do have a minimiser (fit.hpp, numpy_backend.fit_newton).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = np.where(X[:, 0] - 0.5 * X[:, 1] + 0.7 * rng.standard_normal(200) > 0, 1, -1)  # not separable
    model = fi.SmoothHingeClassifier(t=0.01, l2=0.0, backend=backend).fit(X, y)
    assert model.converged_


def test_max_iter_reached_warns_with_the_numbers():
    X, y, _ = make_data("logistic", n=100, d=3, seed=19)
    with pytest.warns(fi.ConvergenceWarning, match=r"did not converge: reached max_iter.*gradient norm"):
        model = fi.LogisticRegression(l2=1e-3, max_iter=1, tol=1e-14).fit(X, y)
    assert not model.converged_
    assert model.n_iter_ == 1


def test_collinear_features_without_l2_still_fit():
    # A duplicated column makes H singular: the Newton step is shifted and the
    # fit reaches a minimiser (one of many), with the gradient at zero.
    X, y, _ = make_data("squared", n=80, d=3, seed=20)
    X = np.column_stack([X, X[:, 0]])
    model = fi.LinearRegression().fit(X, y)
    assert model.converged_
    assert relative_gradient_norm(model, X, y) < 1e-10


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_property_matches_model(name):
    assert make_model(name).loss == loss_of(name)


# ---------------------------------------------------------------------------
# Per-row losses
# ---------------------------------------------------------------------------


def _loss_by_hand(name, y, eta):
    """Each loss written out from its formula (fastinfluence.losses), y in the internal encoding."""
    if name == "squared":
        return 0.5 * (eta - y) ** 2
    if name == "logistic":
        return np.logaddexp(0.0, eta) - y * eta
    if name == "smooth_hinge":
        return SMOOTH_HINGE_T * np.logaddexp(0.0, (1.0 - y * eta) / SMOOTH_HINGE_T)
    return np.exp(eta) - y * eta


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_row_losses_are_the_loss_of_each_row(name, backend):
    X, y, s = make_data(name, n=80, d=3, seed=31, weighted=True)
    model = make_model(name, backend=backend).fit(X, y, sample_weight=s)
    eta = X @ model.coef_ + model.intercept_
    losses = model.row_losses(X, y)
    assert losses.shape == (80,)
    assert losses.dtype == np.float64
    assert_close(losses, _loss_by_hand(name, y, eta), 1e-12)
    y_internal = model.encode_targets(y, 80)
    assert_close(losses, K.loss_terms(model.loss, y_internal, eta)[0], 1e-13)
    # weighted: the terms of R, whose mean plus the penalty is the objective at the optimum
    weighted = model.row_losses(X, y, sample_weight=s)
    assert_close(weighted, s * losses, 1e-15)
    assert_close(weighted.mean() + 0.5 * model.l2 * model.coef_ @ model.coef_, model.objective_, 1e-12)


def test_row_losses_take_the_users_labels_and_frames():
    pd = pytest.importorskip("pandas")
    X, y01, _ = make_data("logistic", n=50, d=3, seed=32)
    names = np.where(y01 == 1, "spam", "ham")
    model = fi.LogisticRegression(l2=L2).fit(pd.DataFrame(X, columns=["a", "b", "c"]), names)
    eta = model.decision_function(X)
    expected = np.logaddexp(0.0, eta) - (names == "spam") * eta  # "spam" is classes_[1]
    frame = pd.DataFrame(X, columns=["a", "b", "c"], index=np.arange(100, 150))
    assert_close(model.row_losses(frame, pd.Series(names, index=frame.index)), expected, 1e-12)
    with pytest.raises(ValueError, match=r"^y holds labels \['eggs'\] that are not among the model's"):
        model.row_losses(X[:2], ["spam", "eggs"])
    with pytest.raises(ValueError, match=r"^sample_weight must be non-negative"):
        model.row_losses(X, names, sample_weight=-np.ones(50))
    with pytest.raises(fi.NotFittedError):
        fi.LogisticRegression().row_losses(X, names)


def test_multinomial_row_losses_are_the_log_loss():
    from scipy.special import logsumexp
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(33)
    X = rng.normal(size=(90, 3))
    y = np.array(["a", "b", "c"])[np.argmax(X @ rng.normal(size=(3, 3)) + rng.gumbel(size=(90, 3)), axis=1)]
    model = fi.MultinomialLogisticRegression(l2=L2).fit(X, y)
    losses = model.row_losses(X, y)
    eta = model.class_scores(X)
    codes = np.searchsorted(model.classes_, y)
    assert_close(losses, logsumexp(eta, axis=1) - eta[np.arange(90), codes], 1e-12)
    # scikit-learn's log-loss of the predicted probabilities is their mean
    assert losses.mean() == pytest.approx(
        log_loss(y, model.predict_proba(X), labels=model.classes_), rel=1e-12
    )
    penalty = 0.5 * model.l2 * np.sum(model.coef_**2)
    assert losses.mean() + penalty == pytest.approx(model.objective_, rel=1e-12)
