"""Bad input is refused at the boundary with an error naming the argument;
good input is never modified; a singular Hessian asks for damping."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import L2, make_data, make_model

import fastinfluence as fi
from fastinfluence.losses import LOSS_NAMES

K = fi.kernels


@pytest.fixture(scope="module")
def setup():
    X, y, s = make_data("logistic", n=40, d=3, seed=51, weighted=True)
    X_test, y_test, _ = make_data("logistic", n=5, d=3, seed=52)
    model = fi.LogisticRegression(l2=L2).fit(X, y, s)
    inf = fi.Influence(model, X, y, s)
    return model, inf, X, y, s, X_test, y_test


def with_value(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def test_shape_mismatches_name_the_argument(setup):
    model, inf, X, y, s, X_test, y_test = setup
    with pytest.raises(ValueError, match=r"y has 39 entries, expected 40"):
        fi.LogisticRegression().fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"sample_weight has 39 entries"):
        fi.LogisticRegression().fit(X, y, sample_weight=s[:-1])
    with pytest.raises(ValueError, match=r"^y has 39 entries"):
        fi.Influence(model, X, y[:-1], s)
    with pytest.raises(ValueError, match=r"y_test has 4 entries, expected 5"):
        inf.loss(X_test, y_test[:-1])
    with pytest.raises(ValueError, match=r"y_test has 4 entries"):
        inf.loo(X_test, y_test[:-1], method="newton")
    with pytest.raises(ValueError, match=r"y_test has 4 entries"):
        inf.pert_loss(X_test, y_test[:-1])
    with pytest.raises(ValueError, match=r"X_test has 2 features, but the model was fitted with 3"):
        inf.loss(X_test[:, :2], y_test)
    with pytest.raises(ValueError, match=r"^X has 4 features, but the model was fitted with 3"):
        fi.Influence(model, np.hstack([X, X[:, :1]]), y, s)
    with pytest.raises(ValueError, match=r"^X has 2 features"):
        model.predict(X[:, :2])
    with pytest.raises(ValueError, match=r"X_test has 2 features"):
        fi.exact_loo(model, X, y, [0], X_test[:, :2], y_test, s)
    with pytest.raises(ValueError, match=r"^X must be a 2-D array"):
        fi.LogisticRegression().fit(X[:, 0], y)
    with pytest.raises(ValueError, match=r"^y must be 1-D"):
        fi.LogisticRegression().fit(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match=r"^theta has 3 entries, expected 4"):
        K.objective("logistic", X, y, np.zeros(3))
    with pytest.raises(ValueError, match=r"^v must have shape \(4,\)"):
        K.hessian_vector_product("logistic", X, y, np.zeros(4), np.zeros(5))
    with pytest.raises(ValueError, match=r"^eta has 3 entries"):
        K.loss_terms("logistic", y[:4], np.zeros(3))
    with pytest.raises(ValueError, match=r"^delta has 3 entries"):
        K.loss_difference("logistic", y[:4], np.zeros(4), np.zeros(3))


@pytest.mark.parametrize("empty", [np.empty((0, 3)), np.empty((5, 0))], ids=["no_rows", "no_columns"])
def test_empty_input_is_refused(empty):
    with pytest.raises(ValueError, match=r"^X is empty"):
        fi.LinearRegression().fit(empty, np.zeros(empty.shape[0]))
    with pytest.raises(ValueError, match=r"^X is empty"):
        K.objective("squared", empty, np.zeros(empty.shape[0]), np.zeros(empty.shape[1] + 1))


def test_wrong_types_are_type_errors(setup):
    model, inf, X, y, s, X_test, y_test = setup
    with pytest.raises(TypeError, match=r"^X must hold real numbers, got dtype complex128"):
        fi.LogisticRegression().fit(X.astype(complex), y)
    with pytest.raises(TypeError, match=r"^X must hold real numbers"):
        fi.LogisticRegression().fit(X.astype(str), y)
    with pytest.raises(TypeError, match=r"^y must hold real numbers"):
        fi.LinearRegression().fit(X, y.astype(str))
    with pytest.raises(TypeError, match=r"^model must be a fastinfluence model"):
        fi.Influence(object(), X, y)


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_values_are_refused(setup, bad):
    model, inf, X, y, s, X_test, y_test = setup
    with pytest.raises(ValueError, match=r"^X contains NaN or infinity"):
        fi.LogisticRegression().fit(with_value(X, (3, 1), bad), y)
    with pytest.raises(ValueError, match=r"^y contains NaN or infinity"):
        fi.LinearRegression().fit(X, with_value(y, 2, bad))
    with pytest.raises(ValueError, match=r"^sample_weight contains NaN or infinity"):
        fi.LogisticRegression().fit(X, y, sample_weight=with_value(s, 0, bad))
    with pytest.raises(ValueError, match=r"^X contains NaN or infinity"):
        fi.Influence(model, with_value(X, (0, 0), bad), y, s)
    with pytest.raises(ValueError, match=r"^sample_weight contains NaN or infinity"):
        fi.Influence(model, X, y, with_value(s, 5, bad))
    with pytest.raises(ValueError, match=r"^X_test contains NaN or infinity"):
        inf.loss(with_value(X_test, (1, 2), bad), y_test)
    with pytest.raises(ValueError, match=r"^X_test contains NaN or infinity"):
        inf.loo(with_value(X_test, (1, 2), bad), y_test, method="newton")
    with pytest.raises(ValueError, match=r"^y_test contains NaN or infinity"):
        fi.Influence(fi.LinearRegression().fit(X, y), X, y).loss(X_test, with_value(y_test, 0, bad))
    with pytest.raises(ValueError, match=r"^theta contains NaN or infinity"):
        K.gradient("logistic", X, y, with_value(np.zeros(4), 1, bad))
    with pytest.raises(ValueError, match=r"^eta contains NaN or infinity"):
        K.loss_terms("logistic", y[:3], with_value(np.zeros(3), 1, bad))
    with pytest.raises(ValueError, match=r"^v contains NaN or infinity"):
        K.hessian_vector_product("logistic", X, y, np.zeros(4), with_value(np.zeros(4), 1, bad))
    with pytest.raises(ValueError, match=r"^X contains NaN or infinity"):
        fi.LogisticRegression().fit(with_value(X, (3, 1), bad).astype(np.float32), y)


def test_sample_weights_must_be_nonnegative_and_not_all_zero(setup):
    model, inf, X, y, s, X_test, y_test = setup
    with pytest.raises(ValueError, match=r"^sample_weight must be non-negative"):
        fi.LogisticRegression().fit(X, y, sample_weight=with_value(s, 3, -0.5))
    with pytest.raises(ValueError, match=r"^sample_weight is zero everywhere"):
        fi.LogisticRegression().fit(X, y, sample_weight=np.zeros(40))
    with pytest.raises(ValueError, match=r"^sample_weight must be non-negative"):
        fi.Influence(model, X, y, with_value(s, 3, -0.5))
    with pytest.raises(ValueError, match=r"^sample_weight must be non-negative"):
        fi.exact_loo(model, X, y, [0], X_test, y_test, with_value(s, 3, -0.5))
    with pytest.raises(ValueError, match=r"^sample_weight is zero everywhere"):
        K.objective("logistic", X, y, np.zeros(4), weights=np.zeros(40))


def test_labels_outside_the_loss_domain_are_refused():
    X, _, _ = make_data("logistic", n=6, d=2, seed=53)
    with pytest.raises(
        ValueError, match=r"^y must hold binary labels in \{0, 1\}, \{-1, \+1\} or bool .* \[0\.0, 2\.0\]"
    ):
        fi.LogisticRegression().fit(X, [0, 2, 0, 2, 0, 2])
    with pytest.raises(ValueError, match=r"^y must hold binary labels"):
        fi.SmoothHingeClassifier().fit(X, [-1, 0, 1, -1, 0, 1])
    with pytest.raises(ValueError, match=r"^y must hold binary labels"):
        fi.LogisticRegression().fit(X, [0.0, 0.5, 1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"^y must hold non-negative counts for the poisson loss; found -1"):
        fi.PoissonRegression().fit(X, [0, 1, 4, -1, 2, 0])
    # the kernels check the internal encodings
    with pytest.raises(ValueError, match=r"^y must hold labels in \{0, 1\} for the logistic loss; found 2"):
        K.objective("logistic", X, [0, 2, 0, 1, 0, 1], np.zeros(3))
    with pytest.raises(
        ValueError, match=r"^y must hold labels in \{-1, \+1\} for the smooth_hinge loss; found 0"
    ):
        K.gradient("smooth_hinge", X, [0, 1, 1, 0, 1, 1], np.zeros(3))
    with pytest.raises(ValueError, match=r"^y must hold non-negative counts"):
        K.loss_terms("poisson", [-2.0], [0.0])
    # test labels must be among the fitted classes
    model = fi.LogisticRegression().fit(X, [-1, 1, -1, 1, 1, -1])
    inf = fi.Influence(model, X, [-1, 1, -1, 1, 1, -1])
    with pytest.raises(
        ValueError, match=r"^y_test holds labels \[0\.0\] that are not among the model's classes"
    ):
        inf.loss(X[:2], [0, 1])


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_negative_l2_is_refused(name):
    X, y, _ = make_data(name, n=10, d=2, seed=54)
    with pytest.raises(ValueError, match=r"^l2 must be >= 0, got -0\.1"):
        make_model(name, l2=-0.1).fit(X, y)
    with pytest.raises(ValueError, match=r"^l2 must be >= 0"):
        K.objective(make_model(name).loss, X, y, np.zeros(3), l2=-1.0)
    with pytest.raises(TypeError, match=r"^l2 must be a finite real number"):
        make_model(name, l2=np.nan).fit(X, y)


@pytest.mark.parametrize("t", [0.0, -0.5, np.inf, np.nan])
def test_nonpositive_temperature_is_refused(t):
    X, y, _ = make_data("smooth_hinge", n=10, d=2, seed=55)
    with pytest.raises(ValueError, match=r"^t \(smooth-hinge temperature\) must be a finite number > 0"):
        fi.SmoothHingeClassifier(t=t).fit(X, y)
    with pytest.raises(ValueError, match=r"^t \(smooth-hinge temperature\)"):
        K.loss_terms("smooth_hinge", [1.0], [0.0], t=t)
    with pytest.raises(ValueError, match=r"^t \(smooth-hinge temperature\)"):
        fi.Loss("smooth_hinge", t)


def test_model_options_are_checked():
    X, y, _ = make_data("logistic", n=10, d=2, seed=56)
    for kwargs, error, pattern in [
        (dict(tol=0.0), ValueError, r"^tol must be a number > 0"),
        (dict(max_iter=0), ValueError, r"^max_iter must be a positive integer"),
        (dict(n_jobs=0), ValueError, r"^n_jobs must be None, -1 or a positive integer"),
        (dict(fit_intercept="yes"), TypeError, r"^fit_intercept must be True or False"),
        (dict(backend="gpu"), ValueError, r"^backend must be one of \('cpp', 'numpy'\), got 'gpu'"),
    ]:
        with pytest.raises(error, match=pattern):
            fi.LogisticRegression(**kwargs).fit(X, y)
    with pytest.raises(TypeError, match=r"^t must be a number > 0"):
        fi.SmoothHingeClassifier(t="0.1").fit(X, 2 * y - 1)
    with pytest.raises(ValueError, match=r"^loss must be one of"):
        K.objective("hinge", X, y, np.zeros(3))
    with pytest.raises(ValueError, match=r"^backend must be one of"):
        K.gradient("logistic", X, y, np.zeros(3), backend="torch")


# ---------------------------------------------------------------------------
# Influence options
# ---------------------------------------------------------------------------


def test_unfitted_model_is_refused():
    X, y, _ = make_data("logistic", n=10, d=2, seed=57)
    with pytest.raises(fi.NotFittedError, match=r"^model \(LogisticRegression\) is not fitted yet"):
        fi.Influence(fi.LogisticRegression(), X, y)
    with pytest.raises(fi.NotFittedError, match=r"^model \(LinearRegression\) is not fitted yet"):
        fi.exact_loo(fi.LinearRegression(), X, y, [0], X, y)


def test_unknown_options_of_influence_are_refused(setup):
    model, inf, X, y, s, X_test, y_test = setup
    with pytest.raises(ValueError, match=r"^backend must be one of \('cpp', 'numpy'\), got 'gpu'"):
        fi.Influence(model, X, y, s, backend="gpu")
    with pytest.raises(ValueError, match=r"^solver must be one of .*got 'qr'"):
        fi.Influence(model, X, y, s, solver="qr")
    with pytest.raises(ValueError, match=r"^damping must be >= 0"):
        fi.Influence(model, X, y, s, damping=-1e-3)
    with pytest.raises(ValueError, match=r"^n_jobs must be"):
        fi.Influence(model, X, y, s, n_jobs=-2)
    with pytest.raises(ValueError, match=r"^method must be one of \('influence', 'newton'\), got 'exact'"):
        inf.loo(X_test, y_test, method="exact")
    with pytest.raises(ValueError, match=r"^method must be one of"):
        inf.loo_params(method="newton-cg")


def test_bad_indices_are_refused(setup):
    model, inf, X, y, s, X_test, y_test = setup
    with pytest.raises(ValueError, match=r"^indices must lie in \[0, 40\); got values from 0 to 40"):
        inf.params([0, 40])
    with pytest.raises(ValueError, match=r"^indices must lie in \[0, 40\)"):
        inf.loss(X_test, y_test, indices=[-1])
    with pytest.raises(ValueError, match=r"^indices must lie in \[0, 40\)"):
        fi.exact_loo(model, X, y, [41], X_test, y_test, s)
    with pytest.raises(TypeError, match=r"^indices must hold integer row numbers, not a boolean mask"):
        inf.self_influence(np.arange(40) < 5)
    with pytest.raises(TypeError, match=r"^indices must hold integer row numbers, got dtype float64"):
        inf.leverage([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^indices must be a 1-D sequence"):
        inf.loo_params(indices=[[0, 1]])


# ---------------------------------------------------------------------------
# A singular Hessian
# ---------------------------------------------------------------------------


def test_singular_hessian_asks_for_damping():
    # A duplicated column with l2 = 0 and the squared loss: H = X^T X / n is singular.
    X, y, _ = make_data("squared", n=50, d=3, seed=58)
    X = np.column_stack([X, X[:, 1]])
    model = fi.LinearRegression(l2=0.0).fit(X, y)
    with pytest.raises(fi.IllConditionedHessianError, match=r"damping") as excinfo:
        fi.Influence(model, X, y)
    assert isinstance(excinfo.value, ValueError)
    suggested = re.search(r"damping=([0-9.e+-]+)", str(excinfo.value))
    assert suggested, str(excinfo.value)
    damping = float(suggested.group(1))
    assert 0 < damping < 1e-4
    inf = fi.Influence(model, X, y, damping=damping)
    scores = inf.loss(X[:3], y[:3])
    assert np.all(np.isfinite(scores)) and np.all(np.isfinite(inf.self_influence()))
    # damping regularises the direction of the duplicated column only: the two copies
    # get equal parameter influence (H + damping I is symmetric in them)
    params = inf.params()
    np.testing.assert_allclose(params[:, 1], params[:, 3], rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------
# Inputs are never modified
# ---------------------------------------------------------------------------


def exercise_everything(X, y, s, X_test, y_test, name):
    """Every public entry point that takes arrays, on the given (possibly read-only) arrays."""
    model = make_model(name).fit(X, y, s)
    model.predict(X_test)
    model.decision_function(X_test)
    for backend in ("cpp", "numpy"):
        inf = fi.Influence(model, X, y, s, backend=backend)
        inf.params()
        inf.params(np.array([0, 3]))
        inf.loss(X_test, y_test)
        inf.self_influence()
        inf.leverage()
        inf.pert_loss(X_test, y_test)
        for method in ("influence", "newton"):
            inf.loo(X_test, y_test, method=method)
            inf.loo_params(method=method)
    fi.exact_loo(model, X, y, np.array([1, 2]), X_test, y_test, s, return_params=True)
    y_int = model._encode_targets(y, X.shape[0])
    theta = model.theta_.copy()
    theta.setflags(write=False)
    for backend in ("cpp", "numpy"):
        kw = dict(weights=s, l2=L2, backend=backend)
        K.objective(model.loss, X, y_int, theta, **kw)
        K.gradient(model.loss, X, y_int, theta, **kw)
        K.hessian(model.loss, X, y_int, theta, **kw)
        K.hessian_vector_product(model.loss, X, y_int, theta, theta, **kw)
        K.fit_newton(model.loss, X, y_int, theta0=theta, **kw)
        K.row_derivatives(model.loss, X, y_int, theta, backend=backend)
        K.loss_terms(model.loss, y_int, theta[:1].repeat(len(y_int)), backend=backend)
        eta = np.zeros(len(y_int))
        K.loss_difference(model.loss, y_int, eta, eta + 0.1, backend=backend)
        K.scaled_row_products(X, s, np.eye(theta.size)[:, :2], backend=backend)
        K.row_quadratic_forms(X, np.eye(theta.size), backend=backend)


@pytest.mark.parametrize("read_only", [False, True], ids=["writeable", "read_only"])
@pytest.mark.parametrize(
    ("dtype", "order"),
    [(np.float64, "C"), (np.float32, "F"), (np.float32, "C"), (np.float64, "F")],
    ids=["float64-C", "float32-F", "float32-C", "float64-F"],
)
@pytest.mark.parametrize("name", ["logistic", "poisson"])
def test_inputs_are_never_modified(name, dtype, order, read_only):
    X, y, s = make_data(name, n=30, d=3, seed=59, dtype=dtype, order=order, weighted=True)
    X_test, y_test, _ = make_data(name, n=4, d=3, seed=60, dtype=dtype, order=order)
    y = y.astype(np.int64)  # labels as users hold them (converted inside, never in place)
    arrays = dict(X=X, y=y, s=s, X_test=X_test, y_test=y_test)
    before = {
        k: (a.copy(order="A"), a.dtype, a.flags.c_contiguous, a.flags.f_contiguous) for k, a in arrays.items()
    }
    if read_only:
        for a in arrays.values():
            a.setflags(write=False)
    exercise_everything(X, y, s, X_test, y_test, name)
    for key, a in arrays.items():
        copy, dt, c_order, f_order = before[key]
        assert a.dtype == dt and a.flags.c_contiguous == c_order and a.flags.f_contiguous == f_order, key
        np.testing.assert_array_equal(a, copy, err_msg=key)
        assert a.tobytes(order="A") == copy.tobytes(order="A"), key  # bitwise, -0.0 and NaN payloads too
