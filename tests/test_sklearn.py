"""fastinfluence.sklearn: estimators translated into fastinfluence models, checked against scikit-learn.

The references are independent of the code under test: scikit-learn's own
coefficients and predictions, its objectives written out from its
documentation, and exact leave-one-out refits of the scikit-learn estimators.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.linear_model import (
    Lasso,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    PoissonRegressor,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import fastinfluence as fi

N, D = 80, 4
C = 0.5
ALPHA = 3.0
NEW_PENALTY_API = LogisticRegression().get_params()["penalty"] == "deprecated"  # scikit-learn >= 1.8


def logistic(penalty="l2", **kwargs):
    """LogisticRegression with ``penalty`` spelled the way the installed scikit-learn wants it."""
    if NEW_PENALTY_API:
        if penalty == "l1":
            kwargs["l1_ratio"] = 1.0
        elif penalty == "elasticnet":
            kwargs["l1_ratio"] = 0.5
        elif penalty is None:
            kwargs["C"] = np.inf
    else:
        kwargs["penalty"] = penalty
        if penalty == "elasticnet":
            kwargs["l1_ratio"] = 0.5
    return LogisticRegression(**kwargs)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N, D))
    X_test = rng.normal(size=(12, D))
    w = np.array([1.0, -2.0, 0.5, 0.0])
    labels = (X @ w + 0.3 + rng.normal(size=N) > 0).astype(int)
    labels_test = (X_test @ w + 0.3 > 0).astype(int)
    y = X @ w + 0.3 + 0.5 * rng.normal(size=N)
    y_test = X_test @ w + 0.3
    counts = rng.poisson(np.exp(0.3 * (X @ w) + 0.2)).astype(float)
    counts_test = rng.poisson(np.exp(0.3 * (X_test @ w) + 0.2)).astype(float)
    weights = rng.uniform(0.5, 2.0, size=N)
    return dict(
        X=X,
        X_test=X_test,
        labels=labels,
        labels_test=labels_test,
        y=y,
        y_test=y_test,
        counts=counts,
        counts_test=counts_test,
        weights=weights,
    )


def theta_of(est):
    coef = np.ravel(est.coef_)
    return np.append(coef, np.ravel(est.intercept_)[0]) if est.fit_intercept else coef


# -- scikit-learn's objectives, written out from its documentation ------------------------------------------
def logloss(labels, eta):
    return np.logaddexp(0.0, eta) - labels * eta


def sklearn_objective(kind, X, target, s, theta, strength, fit_intercept=True):
    """The objective scikit-learn documents for each estimator, at theta = (w, b)."""
    w = theta[: X.shape[1]]
    eta = X @ w + (theta[-1] if fit_intercept else 0.0)
    if kind == "logistic":  # C sum_i s_i logloss_i + ||w||^2 / 2
        return strength * np.sum(s * logloss(target, eta)) + 0.5 * w @ w
    if kind == "ridge":  # sum_i s_i (y_i - eta_i)^2 + alpha ||w||^2
        return np.sum(s * (target - eta) ** 2) + strength * w @ w
    if kind == "poisson":  # 1/(2 sum s) sum_i s_i deviance_i + alpha/2 ||w||^2
        mu = np.exp(eta)
        ylogy = np.where(target > 0, target * np.log(np.where(target > 0, target, 1.0) / mu), 0.0)
        deviance = 2.0 * (ylogy - target + mu)
        return np.sum(s * deviance) / (2.0 * np.sum(s)) + 0.5 * strength * w @ w
    if kind == "sgd_log":  # 1/n sum_i s_i log(1 + exp(-y' eta)) + alpha ||w||^2 / 2, y' in {-1, +1}
        signed = 2.0 * target - 1.0
        return np.mean(s * np.logaddexp(0.0, -signed * eta)) + 0.5 * strength * w @ w
    raise AssertionError(kind)


# -- the mapping --------------------------------------------------------------------------------------------
# id: (estimator, target key, use weights, expected fastinfluence class, expected l2 as a function of (n, s))
MAPPING_CASES = {
    "logistic-lbfgs": (
        lambda: logistic(C=C, tol=1e-12, max_iter=10_000),
        "labels",
        False,
        fi.LogisticRegression,
        lambda n, s: 1 / (C * n),
    ),
    "logistic-newton-cholesky-weighted": (
        lambda: logistic(C=C, solver="newton-cholesky", tol=1e-12),
        "labels",
        True,
        fi.LogisticRegression,
        lambda n, s: 1 / (C * n),
    ),
    "logistic-newton-cg-no-intercept": (
        lambda: logistic(C=C, solver="newton-cg", tol=1e-12, fit_intercept=False),
        "labels",
        False,
        fi.LogisticRegression,
        lambda n, s: 1 / (C * n),
    ),
    "logistic-saga": (
        lambda: logistic(C=C, solver="saga", tol=1e-12, max_iter=100_000),
        "labels",
        False,
        fi.LogisticRegression,
        lambda n, s: 1 / (C * n),
    ),
    "logistic-no-penalty": (
        lambda: logistic(penalty=None, solver="newton-cholesky", tol=1e-12),
        "labels",
        False,
        fi.LogisticRegression,
        lambda n, s: 0.0,
    ),
    "logistic-balanced-weighted": (
        lambda: logistic(C=C, class_weight="balanced", tol=1e-12, max_iter=10_000),
        "labels",
        True,
        fi.LogisticRegression,
        lambda n, s: 1 / (C * n),
    ),
    "logistic-class-weight-dict": (
        lambda: logistic(C=C, class_weight={0: 3.0, 1: 0.5}, solver="newton-cholesky", tol=1e-12),
        "labels",
        False,
        fi.LogisticRegression,
        lambda n, s: 1 / (C * n),
    ),
    "linear-regression-weighted": (
        LinearRegression,
        "y",
        True,
        fi.LinearRegression,
        lambda n, s: 0.0,
    ),
    "ridge-weighted": (
        lambda: Ridge(alpha=ALPHA, tol=1e-12),
        "y",
        True,
        fi.LinearRegression,
        lambda n, s: ALPHA / n,
    ),
    "ridge-no-intercept": (
        lambda: Ridge(alpha=ALPHA, fit_intercept=False),
        "y",
        False,
        fi.LinearRegression,
        lambda n, s: ALPHA / n,
    ),
    "poisson-newton-cholesky-weighted": (
        lambda: PoissonRegressor(alpha=0.1, solver="newton-cholesky", tol=1e-12),
        "counts",
        True,
        fi.PoissonRegression,
        lambda n, s: 0.1 * s.sum() / n,
    ),
    "poisson-lbfgs": (
        lambda: PoissonRegressor(alpha=0.1, tol=1e-12, max_iter=10_000),
        "counts",
        False,
        fi.PoissonRegression,
        lambda n, s: 0.1,
    ),
}


@pytest.fixture(scope="module")
def fitted(data):
    """Each mapping case fitted once with scikit-learn: id -> (estimator, y, sample_weight)."""
    out = {}
    for name, (make, key, weighted, _, _) in MAPPING_CASES.items():
        s = data["weights"] if weighted else None
        out[name] = (make().fit(data["X"], data[key], sample_weight=s), data[key], s)
    return out


@pytest.mark.parametrize("case", list(MAPPING_CASES))
def test_mapping_matches_sklearn_coefficients(case, data, fitted):
    est, y, s = fitted[case]
    _, _, _, expected_type, expected_l2 = MAPPING_CASES[case]
    model = fi.from_sklearn(est, data["X"], y, sample_weight=s)  # tight fits: no polishing warning
    assert type(model) is expected_type
    assert model.l2 == pytest.approx(expected_l2(N, np.ones(N) if s is None else s), rel=1e-12)
    assert model.fit_intercept == est.fit_intercept
    assert model.converged_
    np.testing.assert_allclose(model.theta_, theta_of(est), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        model.decision_function(data["X_test"]),
        est.decision_function(data["X_test"])
        if hasattr(est, "classes_")
        else np.log(est.predict(data["X_test"]))
        if expected_type is fi.PoissonRegression
        else est.predict(data["X_test"]),
        rtol=1e-5,
        atol=1e-6,
    )
    if hasattr(est, "classes_"):
        np.testing.assert_array_equal(model.classes_, est.classes_)
        np.testing.assert_array_equal(model.predict(data["X_test"]), est.predict(data["X_test"]))


OBJECTIVE_CASES = {
    # id: (mapping case, objective kind, strength, factor k(n, s) with F(theta) = k R(theta) + const)
    "logistic": ("logistic-newton-cholesky-weighted", "logistic", C, lambda n, s: C * n),
    "ridge": ("ridge-weighted", "ridge", ALPHA, lambda n, s: 2 * n),
    "linear-regression": ("linear-regression-weighted", "ridge", 0.0, lambda n, s: 2 * n),
    "poisson": ("poisson-newton-cholesky-weighted", "poisson", 0.1, lambda n, s: n / s.sum()),
}


@pytest.mark.parametrize("case", list(OBJECTIVE_CASES))
def test_translated_objective_is_a_multiple_of_sklearns(case, data, fitted):
    """The l2 algebra: F_sklearn(theta) = k R(theta) + const for every theta, with the derived k."""
    mapping_case, kind, strength, factor = OBJECTIVE_CASES[case]
    est, y, s = fitted[mapping_case]
    model = fi.from_sklearn(est, data["X"], y, sample_weight=s)
    rng = np.random.default_rng(3)
    thetas = [0.3 * rng.normal(size=model.theta_.size) for _ in range(3)]
    F = [sklearn_objective(kind, data["X"], y, s, th, strength) for th in thetas]
    internal = model.encode_targets(y, N) if hasattr(model, "classes_") else y
    R = [fi.kernels.objective(model.loss, data["X"], internal, th, weights=s, l2=model.l2) for th in thetas]
    k = factor(N, s)
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        assert F[a] - F[b] == pytest.approx(k * (R[a] - R[b]), rel=1e-10)


def test_sgd_objective_and_polishing(data):
    """SGD: F = (1/n) sum L + alpha/2 ||w||^2 = R with l2 = alpha; never at the optimum, so it polishes."""
    alpha = 0.02
    est = SGDClassifier(loss="log_loss", alpha=alpha, average=True, max_iter=2000, tol=None, random_state=0)
    est.fit(data["X"], data["labels"])
    with pytest.warns(fi.PolishingWarning, match=r"SGDClassifier.*Newton decrement .*moved them by"):
        model = fi.from_sklearn(est, data["X"], data["labels"])
    assert type(model) is fi.LogisticRegression
    assert model.l2 == alpha
    reference = fi.LogisticRegression(l2=alpha).fit(data["X"], data["labels"])
    np.testing.assert_allclose(model.theta_, reference.theta_, rtol=1e-7, atol=1e-9)
    # averaged SGD lands near the optimum of the translated objective (a wrong l2 would not)
    assert np.linalg.norm(theta_of(est) - model.theta_) < 0.02 * np.linalg.norm(model.theta_)
    s = np.ones(N)
    theta1, theta2 = model.theta_, np.zeros_like(model.theta_)
    F = [sklearn_objective("sgd_log", data["X"], data["labels"], s, th, alpha) for th in (theta1, theta2)]
    R = [
        fi.kernels.objective("logistic", data["X"], data["labels"].astype(float), th, l2=model.l2)
        for th in (theta1, theta2)
    ]
    assert F[0] - F[1] == pytest.approx(R[0] - R[1], rel=1e-10)


def test_sgd_regressor_maps_to_ridge_objective(data):
    alpha = 0.05
    est = SGDRegressor(alpha=alpha, average=True, max_iter=2000, tol=None, random_state=0)
    est.fit(data["X"], data["y"])
    with pytest.warns(fi.PolishingWarning, match="SGDRegressor"):
        model = fi.from_sklearn(est, data["X"], data["y"])
    assert type(model) is fi.LinearRegression
    assert model.l2 == alpha
    reference = fi.LinearRegression(l2=alpha).fit(data["X"], data["y"])
    np.testing.assert_allclose(model.theta_, reference.theta_, rtol=1e-8, atol=1e-10)
    assert np.linalg.norm(theta_of(est) - model.theta_) < 0.02 * np.linalg.norm(model.theta_)


def test_sgd_without_penalty_has_zero_l2(data):
    est = SGDRegressor(penalty=None, max_iter=200, tol=None, random_state=0).fit(data["X"], data["y"])
    with pytest.warns(fi.PolishingWarning):
        model = fi.from_sklearn(est, data["X"], data["y"])
    assert model.l2 == 0.0
    np.testing.assert_allclose(
        model.theta_, theta_of(LinearRegression().fit(data["X"], data["y"])), rtol=1e-8
    )


@pytest.mark.parametrize("loss", ["hinge", "squared_hinge"])
def test_linear_svc_becomes_smooth_hinge_with_warning(loss, data):
    est = LinearSVC(C=C, loss=loss, dual=True, max_iter=100_000).fit(data["X"], data["labels"])
    with pytest.warns(fi.ApproximationWarning, match=r"smooth hinge .*t=0\.1.*moved by"):
        model = fi.from_sklearn(est, data["X"], data["labels"])
    assert type(model) is fi.SmoothHingeClassifier
    assert model.t == fi.sklearn.DEFAULT_TEMPERATURE
    assert model.l2 == pytest.approx(1 / (C * N), rel=1e-12)
    reference = fi.SmoothHingeClassifier(t=0.1, l2=1 / (C * N)).fit(data["X"], data["labels"])
    np.testing.assert_allclose(model.theta_, reference.theta_, rtol=1e-7, atol=1e-9)
    agreement = np.mean(model.predict(data["X"]) == est.predict(data["X"]))
    assert agreement >= 0.9
    if loss == "hinge":  # the smooth hinge is close to the hinge, so the coefficients barely move
        assert np.linalg.norm(theta_of(est) - model.theta_) < 0.15 * np.linalg.norm(model.theta_)


def test_sgd_hinge_and_temperature(data):
    est = SGDClassifier(loss="hinge", alpha=0.01, random_state=0).fit(data["X"], data["labels"])
    with pytest.warns(fi.ApproximationWarning, match=r"t=0\.05"):
        model = fi.from_sklearn(est, data["X"], data["labels"], t=0.05)
    assert type(model) is fi.SmoothHingeClassifier
    assert model.t == 0.05
    assert model.l2 == 0.01


def test_liblinear_intercept_penalty_is_dropped_with_a_warning(data):
    """liblinear penalises the intercept; the returned model is the optimum of R, which does not."""
    est = logistic(C=C, solver="liblinear", tol=1e-10, max_iter=10_000).fit(data["X"], data["labels"])
    with pytest.warns(fi.PolishingWarning, match="intercept_scaling"):
        model = fi.from_sklearn(est, data["X"], data["labels"])
    exact = logistic(C=C, solver="newton-cholesky", tol=1e-12).fit(data["X"], data["labels"])
    np.testing.assert_allclose(model.theta_, theta_of(exact), rtol=1e-5, atol=1e-7)
    assert abs(model.intercept_ - est.intercept_[0]) > 1e-4  # the penalty did move liblinear's intercept


def test_loose_fit_warns_with_distance_and_warning_is_filterable(data):
    est = logistic(C=C, tol=1e-1, max_iter=3).fit(data["X"], data["labels"])
    with pytest.warns(fi.PolishingWarning, match=r"Newton decrement \d\.\d+e[-+]\d+ relative.*moved them by"):
        model = fi.from_sklearn(est, data["X"], data["labels"])
    reference = fi.LogisticRegression(l2=1 / (C * N)).fit(data["X"], data["labels"])
    np.testing.assert_allclose(model.theta_, reference.theta_, rtol=1e-7, atol=1e-9)
    assert issubclass(fi.PolishingWarning, fi.NotAtOptimumWarning)
    assert issubclass(fi.ApproximationWarning, fi.FastInfluenceWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fi.PolishingWarning)
        fi.from_sklearn(est, data["X"], data["labels"])


@pytest.mark.requires_core
def test_polishing_backends_agree(data):
    est = logistic(C=C, tol=1e-1, max_iter=3).fit(data["X"], data["labels"])
    models = {}
    for backend in ("cpp", "numpy"):
        with pytest.warns(fi.PolishingWarning):
            models[backend] = fi.from_sklearn(est, data["X"], data["labels"], backend=backend)
    assert models["numpy"].backend == "numpy"
    np.testing.assert_allclose(models["numpy"].theta_, models["cpp"].theta_, rtol=1e-9, atol=1e-12)


def test_separable_data_without_penalty_is_not_converged():
    """LogisticRegression(C=inf) on separable data has no optimum: the polished model must say so."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    labels = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own convergence warnings
        est = logistic(penalty=None, solver="newton-cholesky").fit(X, labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = fi.from_sklearn(est, X, labels)
    assert any(
        issubclass(w.category, fi.ConvergenceWarning) and "separable" in str(w.message) for w in caught
    )
    assert not model.converged_


def test_balanced_class_weights_are_sklearns(data):
    labels = data["labels"]
    est = logistic(C=C, class_weight="balanced", solver="newton-cholesky", tol=1e-12).fit(data["X"], labels)
    model = fi.from_sklearn(est, data["X"], labels)
    expected = N / (2 * np.bincount(labels))  # n_samples / (n_classes * bincount(y))
    np.testing.assert_allclose(model.sample_weight_, expected[labels], rtol=1e-12)
    inf = fi.Influence(
        model, data["X"], labels, sample_weight=model.sample_weight_
    )  # at the optimum: no warning
    assert inf.gradient_norm_ < 1e-8


def test_numeric_labels_other_than_zero_one(data):
    labels = np.where(data["labels"] == 1, 7, 3)
    est = logistic(C=C, tol=1e-12, max_iter=10_000).fit(data["X"], labels)
    model = fi.from_sklearn(est, data["X"], labels)
    np.testing.assert_array_equal(model.classes_, [3, 7])
    np.testing.assert_array_equal(model.predict(data["X_test"]), est.predict(data["X_test"]))
    labels_test = np.where(data["labels_test"] == 1, 7, 3)
    scores = fi.Influence(model, data["X"], labels).loss(data["X_test"], labels_test)
    est01 = logistic(C=C, tol=1e-12, max_iter=10_000).fit(data["X"], data["labels"])
    reference = fi.Influence(fi.from_sklearn(est01, data["X"], data["labels"]), data["X"], data["labels"])
    np.testing.assert_allclose(scores, reference.loss(data["X_test"], data["labels_test"]), rtol=1e-6)


# -- pipelines ----------------------------------------------------------------------------------------------
def test_pipeline_influence_in_transformed_space(data):
    X_raw = 10.0 * data["X"] + 3.0
    X_test_raw = 10.0 * data["X_test"] + 3.0
    pipe = make_pipeline(StandardScaler(), logistic(C=C, tol=1e-12, max_iter=10_000)).fit(
        X_raw, data["labels"]
    )

    model = fi.from_sklearn(pipe, X_raw, data["labels"])
    inf = fi.Influence(model, fi.sklearn.transform(pipe, X_raw), data["labels"])
    scores = inf.loss(fi.sklearn.transform(pipe, X_test_raw), data["labels_test"])

    np.testing.assert_allclose(model.coef_, pipe[-1].coef_.ravel(), rtol=1e-5)
    np.testing.assert_allclose(
        model.decision_function(fi.sklearn.transform(pipe, X_test_raw)),
        pipe.decision_function(X_test_raw),
        rtol=1e-5,
        atol=1e-7,
    )
    scaled = StandardScaler().fit(X_raw)
    reference = fi.Influence(
        fi.LogisticRegression(l2=1 / (C * N)).fit(scaled.transform(X_raw), data["labels"]),
        scaled.transform(X_raw),
        data["labels"],
    )
    expected = reference.loss(scaled.transform(X_test_raw), data["labels_test"])
    np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-10 * np.abs(expected).max())
    pert = inf.pert_loss(fi.sklearn.transform(pipe, X_test_raw), data["labels_test"], indices=[0, 1])
    assert pert.shape == (2, X_test_raw.shape[0], D)  # gradient in the transformed (standardised) features


def test_transform_of_a_bare_estimator_is_identity(data):
    est = Ridge(alpha=ALPHA).fit(data["X"], data["y"])
    np.testing.assert_array_equal(fi.sklearn.transform(est, data["X"]), data["X"])


# -- unsupported settings -----------------------------------------------------------------------------------
UNSUPPORTED = {
    "l1": (
        lambda d: (logistic(penalty="l1", C=C, solver="liblinear").fit(d["X"], d["labels"]), d["labels"]),
        ValueError,
        "l1 penalty is not supported",
    ),
    "elasticnet": (
        lambda d: (
            logistic(penalty="elasticnet", C=C, solver="saga", max_iter=5000).fit(d["X"], d["labels"]),
            d["labels"],
        ),
        ValueError,
        "elasticnet penalty is not supported",
    ),
    "one-vs-rest": (
        lambda d: (
            OneVsRestClassifier(logistic(C=C)).fit(d["X"], np.digitize(d["X"][:, 0], [-0.5, 0.5])),
            np.digitize(d["X"][:, 0], [-0.5, 0.5]),
        ),
        TypeError,
        "one_vs_rest_models",
    ),
    "sgd-multiclass": (
        lambda d: (
            SGDClassifier(loss="log_loss", random_state=0).fit(
                d["X"], np.digitize(d["X"][:, 0], [-0.5, 0.5])
            ),
            np.digitize(d["X"][:, 0], [-0.5, 0.5]),
        ),
        ValueError,
        "3 classes; only binary",
    ),
    "lasso": (lambda d: (Lasso(alpha=0.1).fit(d["X"], d["y"]), d["y"]), TypeError, "Lasso is not supported"),
    "sgd-modified-huber": (
        lambda d: (
            SGDClassifier(loss="modified_huber", random_state=0).fit(d["X"], d["labels"]),
            d["labels"],
        ),
        ValueError,
        "loss='modified_huber'",
    ),
    "sgd-l1": (
        lambda d: (SGDRegressor(penalty="l1", random_state=0).fit(d["X"], d["y"]), d["y"]),
        ValueError,
        "penalty='l1'",
    ),
    "svc-l1": (
        lambda d: (LinearSVC(penalty="l1", dual=False).fit(d["X"], d["labels"]), d["labels"]),
        ValueError,
        "penalty='l1'",
    ),
    "multi-output": (
        lambda d: (Ridge().fit(d["X"], np.column_stack([d["y"], d["y"]])), d["y"]),
        ValueError,
        "multi-output",
    ),
    "positive": (
        lambda d: (LinearRegression(positive=True).fit(d["X"], d["y"]), d["y"]),
        ValueError,
        "positive=True",
    ),
    # unfitted: an unsupported type is reported before "not fitted"
    "logistic-cv": (lambda d: (LogisticRegressionCV(), d["labels"]), TypeError, "LogisticRegressionCV"),
    "pipeline-ending-in-transformer": (
        lambda d: (make_pipeline(StandardScaler()).fit(d["X"]), d["y"]),
        TypeError,
        "StandardScaler is not supported",
    ),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_settings_raise_helpfully(case, data):
    make, error, reason = UNSUPPORTED[case]
    est, y = make(data)
    with pytest.raises(error, match=reason) as info:
        fi.from_sklearn(est, data["X"], y)
    assert "from_sklearn supports LogisticRegression" in str(info.value)


def test_string_class_labels_match_numeric(data):
    """Class names (strings) map like scikit-learn: classes_ sorted, classes_[1] positive."""
    names = np.where(data["labels"] == 1, "yes", "no")
    est_names = LogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(data["X"], names)
    est_numbers = LogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(data["X"], data["labels"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fi.PolishingWarning)
        model_names = fi.from_sklearn(est_names, data["X"], names)
        model_numbers = fi.from_sklearn(est_numbers, data["X"], data["labels"])
    assert model_names.classes_.tolist() == ["no", "yes"]
    np.testing.assert_allclose(model_names.theta_, model_numbers.theta_, rtol=1e-10, atol=1e-12)
    scores_names = fi.Influence(model_names, data["X"], names).loss(data["X"][:3], names[:3])
    scores_numbers = fi.Influence(model_numbers, data["X"], data["labels"]).loss(
        data["X"][:3], data["labels"][:3]
    )
    np.testing.assert_allclose(scores_names, scores_numbers, rtol=1e-10)


def test_unfitted_estimator(data):
    with pytest.raises(fi.NotFittedError, match="not fitted"):
        fi.from_sklearn(Ridge(), data["X"], data["y"])


def test_importing_fastinfluence_does_not_import_sklearn():
    code = "import sys, fastinfluence; assert 'sklearn' not in sys.modules, 'sklearn was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- influence against scikit-learn's own leave-one-out refits ----------------------------------------------
LOO_INDICES = [0, 9, 33, 61]


def test_logistic_loo_matches_sklearn_refits(data):
    """Removing a row from C * sum_i loss_i with C unchanged is our s_i = 0 at fixed n (both / (C n))."""
    X, labels, X_test, labels_test = data["X"], data["labels"], data["X_test"], data["labels_test"]
    make = lambda: logistic(C=C, tol=1e-12, max_iter=10_000)  # noqa: E731
    est = make().fit(X, labels)
    model = fi.from_sklearn(est, X, labels)
    base = logloss(labels_test, est.decision_function(X_test))
    refits = np.array(
        [
            logloss(
                labels_test, make().fit(np.delete(X, i, 0), np.delete(labels, i)).decision_function(X_test)
            )
            - base
            for i in LOO_INDICES
        ]
    )
    scale = np.abs(refits).max()
    exact = fi.exact_loo(model, X, labels, LOO_INDICES, X_test, labels_test)
    np.testing.assert_allclose(exact, refits, atol=1e-5 * scale)
    newton = fi.Influence(model, X, labels).loo(X_test, labels_test, method="newton", indices=LOO_INDICES)
    np.testing.assert_allclose(newton, refits, atol=5e-2 * scale)  # one Newton step: second-order accurate


def test_ridge_loo_matches_sklearn_refits_exactly(data):
    """Ridge's sum convention: alpha unchanged; the Newton estimate is exact for the squared loss."""
    X, y, s, X_test, y_test = data["X"], data["y"], data["weights"], data["X_test"], data["y_test"]
    est = Ridge(alpha=ALPHA).fit(X, y, sample_weight=s)
    model = fi.from_sklearn(est, X, y, sample_weight=s)
    base = 0.5 * (est.predict(X_test) - y_test) ** 2
    refits = np.array(
        [
            0.5
            * (
                Ridge(alpha=ALPHA)
                .fit(np.delete(X, i, 0), np.delete(y, i), sample_weight=np.delete(s, i))
                .predict(X_test)
                - y_test
            )
            ** 2
            - base
            for i in LOO_INDICES
        ]
    )
    newton = fi.Influence(model, X, y, sample_weight=s).loo(
        X_test, y_test, method="newton", indices=LOO_INDICES
    )
    np.testing.assert_allclose(newton, refits, rtol=1e-8, atol=1e-12 * np.abs(refits).max())


def test_poisson_loo_needs_rescaled_alpha(data):
    """Poisson's mean convention: the refit without row i matches s_i = 0 only with alpha * S / (S - s_i)."""
    X, counts, s, X_test, counts_test = (
        data["X"],
        data["counts"],
        data["weights"],
        data["X_test"],
        data["counts_test"],
    )
    alpha = 0.1
    make = lambda a: PoissonRegressor(alpha=a, solver="newton-cholesky", tol=1e-12)  # noqa: E731
    est = make(alpha).fit(X, counts, sample_weight=s)
    model = fi.from_sklearn(est, X, counts, sample_weight=s)

    def change(fitted):
        eta, eta0 = np.log(fitted.predict(X_test)), np.log(est.predict(X_test))
        return (np.exp(eta) - counts_test * eta) - (np.exp(eta0) - counts_test * eta0)

    def refit(i, a):
        return make(a).fit(np.delete(X, i, 0), np.delete(counts, i), sample_weight=np.delete(s, i))

    rescaled = np.array([change(refit(i, alpha * s.sum() / (s.sum() - s[i]))) for i in LOO_INDICES])
    exact = fi.exact_loo(model, X, counts, LOO_INDICES, X_test, counts_test, sample_weight=s)
    scale = np.abs(rescaled).max()
    np.testing.assert_allclose(exact, rescaled, atol=1e-6 * scale)
    unscaled = np.array([change(refit(i, alpha)) for i in LOO_INDICES])
    assert np.abs(unscaled - exact).max() > 1e-3 * scale  # the rescaling is not negligible


def test_one_vs_rest_is_one_binary_model_per_class(data):
    y3 = np.digitize(data["X"][:, 0], [-0.5, 0.5])
    labels = np.array(["low", "mid", "high"])[y3]
    ovr = OneVsRestClassifier(logistic(C=C, tol=1e-10)).fit(data["X"], labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fi.PolishingWarning)
        models = fi.sklearn.one_vs_rest_models(ovr, data["X"], labels)
    assert sorted(models) == ["high", "low", "mid"]
    for label, model in models.items():
        own = fi.LogisticRegression(l2=model.l2, tol=1e-12).fit(data["X"], labels == label)
        np.testing.assert_allclose(model.theta_, own.theta_, rtol=1e-7, atol=1e-9)
        column = list(ovr.classes_).index(label)
        np.testing.assert_allclose(
            model.decision_function(data["X"]),
            ovr.decision_function(data["X"])[:, column],
            rtol=1e-4,
            atol=1e-4,
        )
    with pytest.raises(TypeError, match="OneVsRestClassifier"):
        fi.sklearn.one_vs_rest_models(logistic(C=C), data["X"], labels)
