"""The models are scikit-learn estimators: scikit-learn's own estimator checks are the referee.

Every check of ``sklearn.utils.estimator_checks`` runs on the five models. A check that cannot
apply is listed in :data:`EXPECTED_FAILED_CHECKS` with the reason (scikit-learn >= 1.6 takes
them as ``expected_failed_checks``; on 1.4 and 1.5 the test marks them itself), and the
checks that pass only with a documented warning expect that warning. Below them, the contract
as users meet it: ``cross_val_score``, ``GridSearchCV``, ``Pipeline``, ``clone``, the scores
against scikit-learn's metrics, ``repr``.
"""

from __future__ import annotations

import inspect
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone, is_classifier, is_regressor  # noqa: E402
from sklearn.exceptions import NotFittedError as SklearnNotFittedError  # noqa: E402
from sklearn.metrics import accuracy_score, d2_tweedie_score, r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastinfluence as fi  # noqa: E402

ESTIMATORS = [
    fi.LinearRegression(),
    fi.LogisticRegression(),
    fi.SmoothHingeClassifier(),
    fi.PoissonRegression(),
    fi.MultinomialLogisticRegression(),
]

# -- what cannot apply, and why ----------------------------------------------------------------
N_ROWS_MEAN = (
    "by design: the objective averages over the n rows, (1/n) sum_i s_i loss_i + (l2/2)||w||^2, not over "
    "the total weight, so with l2 > 0 integer weights equal repeated rows only with l2 rescaled by "
    "n / sum(s) (tests/test_models.py::test_integer_weights_fit_equals_duplicated_rows). The mean over n "
    "rows is what makes s_i = 0 the removal of row i at a fixed n, which influence functions differentiate"
)
UNDERDETERMINED = (
    "the check's data have 30 features and 15 rows: least squares with l2 = 0 then has an affine space "
    "of minimisers, and Newton's method returns one of them (not the minimum-norm one), which depends on "
    "the weighting; influence functions need a unique optimum, so l2 > 0 there, where the n-row mean of "
    "the other models' reason applies"
)
COLUMN_VECTOR_Y = (
    "a column vector y of shape (n, 1) is taken as the 1-D vector it holds, without a warning: "
    "fastinfluence takes one-column frames and column vectors as y by design (tests/test_dataframes.py), "
    "and scikit-learn's DataConversionWarning cannot be raised without importing scikit-learn"
)
REGRESSOR_DECISION_FUNCTION = (
    "every model has decision_function, the linear predictor eta = X w + b (for Poisson regression the "
    "log of the predicted mean), which the DecisionFunction target of Influence differentiates and "
    "existing code calls; scikit-learn's regressors have none, and its tools choose a regressor's "
    "response method from the tags, which say 'regressor'"
)


#: The sample-weight checks by the names of each scikit-learn version: 1.4-1.5 (zero weights against
#: removed rows), 1.6 (integer weights against repeated rows), 1.7 and later (the same, dense and sparse).
WEIGHT_CHECKS = (
    "check_sample_weights_invariance(kind=zeros)",
    "check_sample_weight_equivalence",
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
)


def _expected(estimator) -> dict[str, str]:
    failures = {"check_supervised_y_2d": COLUMN_VECTOR_Y}
    if not isinstance(estimator, fi.LinearRegression):
        failures.update(dict.fromkeys(WEIGHT_CHECKS, N_ROWS_MEAN))
    else:  # l2 = 0: removing rows is zero weight, but repeating them meets an underdetermined problem
        failures.update(dict.fromkeys(WEIGHT_CHECKS[1:], UNDERDETERMINED))
    if isinstance(estimator, (fi.LinearRegression, fi.PoissonRegression)):
        failures["check_regressors_no_decision_function"] = REGRESSOR_DECISION_FUNCTION
    return failures


EXPECTED_FAILED_CHECKS = {type(est).__name__: _expected(est) for est in ESTIMATORS}

#: Checks that pass while the model warns as documented: (warning, message) by model.
ONE_CLASS_FIT = (fi.ConvergenceWarning, "one class only|no training rows")
EXPECTED_WARNINGS = {
    ("LogisticRegression", "check_classifiers_one_label"): ONE_CLASS_FIT,
    ("LogisticRegression", "check_classifiers_one_label_sample_weights"): ONE_CLASS_FIT,
    ("SmoothHingeClassifier", "check_classifiers_one_label"): ONE_CLASS_FIT,
    ("SmoothHingeClassifier", "check_classifiers_one_label_sample_weights"): ONE_CLASS_FIT,
    ("MultinomialLogisticRegression", "check_classifiers_one_label_sample_weights"): ONE_CLASS_FIT,
}


def expected_failed_checks(estimator) -> dict[str, str]:
    """scikit-learn's ``expected_failed_checks``: check name -> why it cannot apply."""
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


def _check_name(check) -> str:
    """The check's name, with the ``kind`` of scikit-learn 1.4's two sample-weight checks."""
    func = getattr(check, "func", check)  # the checks are partials of the check functions
    kind = getattr(check, "keywords", {}).get("kind")
    return func.__name__ if kind is None else f"{func.__name__}(kind={kind})"


NEW_CHECK_API = "expected_failed_checks" in inspect.signature(parametrize_with_checks).parameters
with warnings.catch_warnings():
    # scikit-learn >= 1.7 warns that the models do not inherit from its BaseEstimator: they do not, on
    # purpose (scikit-learn stays optional), and implement the contract themselves, which is what the
    # checks below verify
    warnings.filterwarnings(
        "ignore", message=r"Estimator \w+ does not inherit from `sklearn\.base\.BaseEstimator`"
    )
    if NEW_CHECK_API:  # scikit-learn >= 1.6
        _marker = parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
    else:  # scikit-learn 1.4 and 1.5: the same expected failures, marked below
        _marker = parametrize_with_checks(ESTIMATORS)
    # before 1.6 the cases come as a generator, which newer pytest refuses: a list, the same marks
    _names, _cases = _marker.args
    # Not collected: the array-API checks, which scikit-learn skips unless SCIPY_ARRAY_API=1 is set
    # before SciPy is imported. fastinfluence takes NumPy arrays, sparse matrices and data frames
    # (array-API arrays are converted by np.asarray, not computed on natively), and CI counts any skip
    # as a missing optional dependency.
    _cases = [
        case
        for case in _cases
        if not _check_name(getattr(case, "values", case)[1]).startswith("check_array_api_input")
    ]
    _with_checks = pytest.mark.parametrize(_names, _cases, **_marker.kwargs)


@_with_checks
def test_scikit_learn_estimator_checks(estimator, check, request):
    name = _check_name(check)
    if not NEW_CHECK_API and name in expected_failed_checks(estimator):
        request.applymarker(pytest.mark.xfail(reason=expected_failed_checks(estimator)[name]))
    warning = EXPECTED_WARNINGS.get((type(estimator).__name__, name))
    if warning is None:
        check(estimator)
        return
    with pytest.warns(warning[0], match=warning[1]):  # the documented warning, and the check passes
        check(estimator)


def test_every_expected_failure_names_a_check():
    # no typo hides a failing check: every name is a check of this scikit-learn or a weight check's
    # name in another version
    from sklearn.utils import estimator_checks

    known = {name for name in dir(estimator_checks) if name.startswith("check_")}
    for failures in EXPECTED_FAILED_CHECKS.values():
        for name in failures:
            assert name in known or name in WEIGHT_CHECKS, name
    assert known & {name.partition("(")[0] for name in WEIGHT_CHECKS}


# -- the contract as users meet it -------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 50.0, -2.0, 1.0]
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    eta = z @ [1.0, -0.8, 0.5, 0.0] + 0.2
    labels = (rng.random(120) < 1 / (1 + np.exp(-eta))).astype(int)
    return dict(
        X=X,
        labels=labels,
        named=np.where(labels == 1, "yes", "no"),
        three=np.digitize(eta + 0.5 * rng.normal(size=120), [-0.5, 0.5]),
        y=eta + 0.3 * rng.normal(size=120),
        counts=rng.poisson(np.exp(0.5 * eta)).astype(float),
    )


def test_cross_val_score_of_a_logistic_regression(data):
    # Regression: cross_val_score(fi.LogisticRegression(), X, y) failed with "should have a 'score'
    # method" (the models had no score, so scikit-learn's default scorer could not be built).
    scores = cross_val_score(fi.LogisticRegression(), data["X"], data["labels"])
    assert scores.shape == (5,)
    # the default scorer is accuracy, on scikit-learn's default folds for a classifier
    folds = StratifiedKFold(5).split(data["X"], data["labels"])
    for score, (train, test) in zip(scores, folds):
        model = fi.LogisticRegression().fit(data["X"][train], data["labels"][train])
        assert score == accuracy_score(data["labels"][test], model.predict(data["X"][test]))


@pytest.mark.parametrize(
    ("model", "target"),
    [
        (fi.LinearRegression(), "y"),
        (fi.LogisticRegression(), "named"),
        (fi.SmoothHingeClassifier(), "labels"),
        (fi.PoissonRegression(), "counts"),
        (fi.MultinomialLogisticRegression(), "three"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_grid_search_over_a_pipeline_refits_the_best_l2(model, target, data):
    pipe = make_pipeline(StandardScaler(), model)
    search = GridSearchCV(pipe, {f"{type(model).__name__.lower()}__l2": [1e-3, 1e-1]}, cv=3)
    search.fit(data["X"], data[target])
    best = search.best_estimator_[-1]
    assert best.l2 == search.best_params_[f"{type(model).__name__.lower()}__l2"]
    assert best.converged_
    # the refit is the model fitted by hand on the scaled data
    Z = StandardScaler().fit_transform(data["X"])
    np.testing.assert_allclose(best.theta_, clone(model).set_params(l2=best.l2).fit(Z, data[target]).theta_)
    assert search.score(data["X"], data[target]) == pytest.approx(best.score(Z, data[target]), rel=1e-12)


def test_scores_are_scikit_learns_metrics(data):
    X, w = data["X"], np.random.default_rng(1).uniform(0.5, 2.0, 120)
    linear = fi.LinearRegression(l2=1e-2).fit(X, data["y"])
    assert is_regressor(linear)
    assert linear.score(X, data["y"]) == pytest.approx(r2_score(data["y"], linear.predict(X)), rel=1e-13)
    assert linear.score(X, data["y"], w) == pytest.approx(
        r2_score(data["y"], linear.predict(X), sample_weight=w), rel=1e-13
    )
    for cls, target in ((fi.LogisticRegression, "named"), (fi.MultinomialLogisticRegression, "three")):
        model = cls().fit(X, data[target])
        assert is_classifier(model)
        assert model.score(X, data[target], w) == pytest.approx(
            accuracy_score(data[target], model.predict(X), sample_weight=w), rel=1e-13
        )


def test_poisson_score_is_the_deviance_explained_as_poisson_regressor_scores(data):
    from sklearn.linear_model import PoissonRegressor

    X, counts = data["X"], data["counts"]
    w = np.random.default_rng(2).uniform(0.5, 2.0, 120)
    ours = fi.PoissonRegression(l2=1e-2).fit(X, counts)
    d2 = ours.score(X, counts, w)
    assert d2 == pytest.approx(d2_tweedie_score(counts, ours.predict(X), power=1, sample_weight=w), rel=1e-12)
    # scikit-learn's PoissonRegressor at the same coefficients scores the same number
    theirs = PoissonRegressor(alpha=1e-2, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, counts)
    np.testing.assert_allclose(ours.theta_, np.r_[theirs.coef_, theirs.intercept_], rtol=1e-6, atol=1e-8)
    assert d2 == pytest.approx(theirs.score(X, counts, w), rel=1e-6)
    # and D^2 is not R^2: the squared error of counts weighs the largest counts most
    assert d2 != pytest.approx(r2_score(counts, ours.predict(X), sample_weight=w), rel=1e-3)


def test_scores_check_their_input(data):
    model = fi.LogisticRegression().fit(data["X"], data["labels"])
    with pytest.raises(ValueError, match=r"^y has 5 entries, expected 120"):
        model.score(data["X"], data["labels"][:5])
    with pytest.raises(ValueError, match=r"^sample_weight must be non-negative"):
        model.score(data["X"], data["labels"], -np.ones(120))
    with pytest.raises(ValueError, match=r"^X has 3 features, but LogisticRegression is expecting 4"):
        model.score(data["X"][:, :3], data["labels"])
    with pytest.raises(ValueError, match=r"^y contains NaN or infinity"):
        model.score(data["X"][:2], [0.0, np.nan])
    with pytest.raises(ValueError, match=r"^y has missing values"):
        fi.LogisticRegression().fit(data["X"], data["named"]).score(data["X"][:2], np.array(["yes", None]))
    with pytest.raises(ValueError, match=r"^y must hold non-negative counts"):
        fi.PoissonRegression().fit(data["X"], data["counts"]).score(data["X"], -data["counts"])


def test_params_clone_and_repr_show_what_was_set():
    model = fi.SmoothHingeClassifier(t=0.3, l2=0.2, n_jobs=2)
    assert repr(model) == "SmoothHingeClassifier(t=0.3, l2=0.2, n_jobs=2)"
    assert repr(fi.LogisticRegression()) == "LogisticRegression()"
    assert repr(fi.LinearRegression(l2=1e-3)) == "LinearRegression(l2=0.001)"
    assert repr(fi.LogisticRegression(l2=0)) == "LogisticRegression(l2=0)"  # 0 is not the default 1e-3
    params = model.get_params()
    assert list(params) == sorted(params)  # scikit-learn's order
    assert set(params) == {
        "backend",
        "fit_intercept",
        "l2",
        "max_iter",
        "method",
        "n_jobs",
        "solver",
        "t",
        "tol",
    }
    twin = clone(model)
    assert twin is not model
    assert twin.get_params() == params
    assert repr(twin) == repr(model)
    with pytest.raises(ValueError, match=r"SmoothHingeClassifier has no parameter 'alpha'; its parameters"):
        model.set_params(alpha=1.0)
    with pytest.raises(
        ValueError, match=r"parameter 'l2' is not an estimator, so 'l2__x' names no parameter"
    ):
        model.set_params(l2__x=1.0)
    assert model.set_params() is model
    assert model.set_params(t=0.5, fit_intercept=False).get_params()["t"] == 0.5
    # parameters are stored as given and validated by fit, not by __init__ or set_params
    odd = fi.LogisticRegression(l2=-1.0)
    assert odd.l2 == -1.0
    with pytest.raises(ValueError, match=r"^l2 must be >= 0"):
        odd.fit(np.eye(3), [0, 1, 0])


def test_fitted_state_and_not_fitted_error_are_scikit_learns_too():
    from sklearn.utils.validation import check_is_fitted

    model = fi.LogisticRegression()
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(model)
    with pytest.raises(fi.NotFittedError) as caught:
        model.predict(np.eye(2))
    # scikit-learn is imported here, so the error is its NotFittedError as well as ours
    assert isinstance(caught.value, SklearnNotFittedError)
    assert isinstance(caught.value, (ValueError, AttributeError))
    restored = pickle.loads(pickle.dumps(caught.value))
    assert type(restored) is fi.NotFittedError
    assert str(restored) == str(caught.value)
    model.fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 1, 0, 1])
    check_is_fitted(model)


def test_binary_classifiers_take_any_two_labels_and_refuse_more(data):
    X = data["X"]
    one_two = fi.LogisticRegression().fit(X, data["labels"] + 1)
    np.testing.assert_array_equal(one_two.classes_, [1, 2])
    reference = fi.LogisticRegression().fit(X, data["labels"])
    np.testing.assert_array_equal(one_two.theta_, reference.theta_)  # 2 is the positive class, as 1 was
    np.testing.assert_array_equal(one_two.predict(X), reference.predict(X) + 1)
    for cls in (fi.LogisticRegression, fi.SmoothHingeClassifier):
        with pytest.raises(
            ValueError,
            match=r"^y must hold binary labels .*found 3 classes \[0, 1, 2\]\. Only binary classification is "
            r"supported: use MultinomialLogisticRegression",
        ):
            cls().fit(X, data["three"])
    with pytest.raises(ValueError, match=r"^y must hold binary labels .*continuous values"):
        fi.LogisticRegression().fit(X, data["y"])
    with pytest.raises(ValueError, match=r"^y is None: LogisticRegression requires y to be passed"):
        fi.LogisticRegression().fit(X, None)


def test_feature_names_in_follow_the_frame(data):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(data["X"], columns=["a", "b", "c", "d"])
    model = fi.LinearRegression().fit(frame, data["y"])
    assert model.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert model.n_features_in_ == 4
    with pytest.raises(ValueError, match=r"Feature names must be in the same order as they were in fit"):
        model.predict(frame[["b", "a", "c", "d"]])
    with pytest.raises(ValueError, match=r"Feature names seen at fit time, yet now missing:\n- d\n"):
        model.predict(frame[["a", "b", "c"]])
