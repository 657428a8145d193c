"""Properties of the public API on small random problems, found by hypothesis.

Each example is a fitted model with an l2 penalty (squared, logistic, smooth hinge
or Poisson loss; 20 to 60 rows, 1 to 5 features of scales 0.1 to 10) and three
properties of its influence quantities:

* the compiled and the NumPy backend agree,
* permuting the training rows permutes the rows of every influence quantity,
* an integer sample weight is the same as that many copies of the row.

Two computations of one quantity differ by their rounding, which a solve with H
amplifies by at most its condition number: the tolerance is
``1e3 * eps * cond(H)``, relative to the largest entry of each result (1e3
covers the n-term sums and the factorisation). eps is float64's for float32 X
too: both backends convert float32 rows to float64 before any arithmetic. Two
fits of one objective are compared in the norm of H, in which a fit's distance
from the optimum is (to first order) its Newton decrement lambda:
``||theta_a - theta_b||_H <= 2 (lambda_a + lambda_b)``, plus the rounding of a
gradient, ``1e3 * eps * sqrt(cond(H) * R(0))``.

The examples are derandomised: the same hypothesis version draws the same ones
on every run. Invariance to the scaling of features is the subject of a separate
change (the lead's) and is not tested here.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import assert_close, assert_same_ranking, make_labels, make_model
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastinfluence as fi
from fastinfluence.losses import LOSS_NAMES

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)

#: Rounding of two computations of a quantity, in units of eps * cond(H).
ROUNDING = 1e3

M_TEST = 5


def classes_present(name, y):
    """A minimiser exists: both classes for the classifiers, a non-zero count for Poisson."""
    if name in ("logistic", "smooth_hinge"):
        return np.unique(y).size == 2
    if name == "poisson":
        return bool(np.any(y > 0))
    return True


@st.composite
def problems(draw):
    """(name, X, y, X_test, y_test, fit_intercept, l2): rows from the model each loss belongs to."""
    name = draw(st.sampled_from(LOSS_NAMES))
    n = draw(st.integers(20, 60))
    d = draw(st.integers(1, 5))
    fit_intercept = draw(st.booleans())
    l2 = draw(st.sampled_from([1e-3, 1e-2, 1e-1]))
    scales = np.array(draw(st.lists(st.floats(0.1, 10.0), min_size=d, max_size=d)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = (rng.standard_normal((n + M_TEST, d)) + 0.3) * scales
    w_true = rng.standard_normal(d) / np.sqrt(d) / scales  # eta in [-3, 3] or so, whatever the scales
    y = make_labels(name, X @ w_true + 0.2, rng)
    assume(classes_present(name, y[:n]))
    return name, X[:n], y[:n], X[n:], y[n:], fit_intercept, l2


def tolerance(influence):
    """ROUNDING * eps * cond(H): what two roundings of an H^{-1} quantity may differ by, relatively."""
    return ROUNDING * np.finfo(np.float64).eps * influence.hessian_spectrum()["condition_number"]


def assert_fits_agree(a, b, influence):
    """theta of two fits of one objective (H at the optimum: ``influence.hessian_``), within
    what their Newton decrements allow."""
    cond = influence.hessian_spectrum()["condition_number"]
    objective_scale = max(a.objective_scale_, b.objective_scale_)  # R(0)
    rounding = ROUNDING * np.finfo(np.float64).eps * np.sqrt(cond * objective_scale)
    allowed = 2 * (a.newton_decrement_ + b.newton_decrement_) + rounding
    delta = a.theta_ - b.theta_
    distance = np.sqrt(max(float(delta @ influence.hessian_ @ delta), 0.0))
    assert distance <= allowed, f"||theta_a - theta_b||_H = {distance:.3e} > {allowed:.3e}"


# ---------------------------------------------------------------------------
# (a) The compiled backend against the NumPy reference
# ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    problem=problems(),
    layout=st.sampled_from(["C", "F", "csr"]),
    float32=st.booleans(),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@pytest.mark.requires_core
def test_backends_agree_within_the_conditioning(problem, layout, float32, weighted, seed):
    name, X, y, X_test, y_test, fit_intercept, l2 = problem
    X = np.array(X, dtype=np.float32 if float32 else np.float64, order="F" if layout == "F" else "C")
    if layout == "csr":
        X = sp.csr_matrix(X)
    s = np.random.default_rng(seed).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    model = make_model(name, l2=l2, fit_intercept=fit_intercept).fit(X, y, sample_weight=s)
    cpp = fi.Influence(model, X, y, s, backend="cpp")
    ref = fi.Influence(model, X, y, s, backend="numpy")
    rtol = tolerance(ref)
    for what, compute in {
        "params": lambda inf: inf.params(),
        "loss": lambda inf: inf.loss(X_test, y_test),
        "self_influence": lambda inf: inf.self_influence(),
    }.items():
        assert_close(compute(cpp), compute(ref), rtol, atol_fraction=rtol, err_msg=what)


# ---------------------------------------------------------------------------
# (b) Permuting the training rows
# ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(problem=problems(), weighted=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_permuting_training_rows_permutes_the_influence_rows(problem, weighted, seed):
    """R(theta) is a sum over rows: reordering them changes its rounding only. With the
    same model, row k of every quantity on (X[perm], y[perm]) is row perm[k] on (X, y);
    a fit on the permuted rows is a minimiser of the same objective."""
    name, X, y, X_test, y_test, fit_intercept, l2 = problem
    rng = np.random.default_rng(seed)
    perm = rng.permutation(X.shape[0])
    s = rng.uniform(0.5, 2.0, X.shape[0]) if weighted else None
    s_perm = None if s is None else s[perm]
    model = make_model(name, l2=l2, fit_intercept=fit_intercept).fit(X, y, sample_weight=s)
    inf = fi.Influence(model, X, y, s)
    inf_perm = fi.Influence(model, X[perm], y[perm], s_perm)
    rtol = tolerance(inf)
    scores = inf.loss(X_test, y_test)
    assert_close(inf_perm.params(), inf.params()[perm], rtol, atol_fraction=rtol, err_msg="params")
    assert_close(inf_perm.loss(X_test, y_test), scores[perm], rtol, atol_fraction=rtol, err_msg="loss")
    assert_close(inf_perm.self_influence(), inf.self_influence()[perm], rtol, atol_fraction=rtol)
    top, top_perm = inf.top_k(X_test, y_test, k=3), inf_perm.top_k(X_test, y_test, k=3)
    assert_same_ranking(perm[top_perm.helpful_indices], top.helpful_indices, scores, rtol, err_msg="helpful")
    assert_same_ranking(perm[top_perm.harmful_indices], top.harmful_indices, scores, rtol, err_msg="harmful")

    refit = make_model(name, l2=l2, fit_intercept=fit_intercept).fit(X[perm], y[perm], sample_weight=s_perm)
    assert_fits_agree(refit, model, inf)


# ---------------------------------------------------------------------------
# (c) Integer sample weights are duplicated rows
# ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(problem=problems(), data=st.data())
def test_integer_weights_are_duplicated_rows(problem, data):
    """Row i repeated c_i times (c_i in 0..3, N = sum c_i rows) has the objective

        R_dup(theta) = (1/N) sum_i c_i loss_i + (l2/2) ||w||^2,

    which is exactly the weighted objective of the n original rows,
    R(theta) = (1/n) sum_i u_i loss_i + (l2/2) ||w||^2, with u_i = c_i n / N and the same l2
    (weights c_i themselves would need l2 N / n instead). Same objective: same minimiser and
    Hessian, and since I_up,params = -H^{-1} g_i, I_up,loss and self-influence are of the
    *unweighted* loss of z_i, each copy of z_i has the values of z_i. The first-order
    leave-one-out change (s_i/n) H^{-1} g_i removes all of z_i's weight: c_i times that of
    one copy (1/N) H^{-1} g_i.
    """
    name, X, y, X_test, y_test, fit_intercept, l2 = problem
    n = X.shape[0]
    counts = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n), label="counts"))
    kept = counts > 0
    assume(counts.sum() >= 10 and classes_present(name, y[kept]))
    N = int(counts.sum())
    rows = np.repeat(np.arange(n), counts)  # the original row of each duplicated row
    X_dup, y_dup = X[rows], y[rows]
    u = counts * n / N

    weighted = make_model(name, l2=l2, fit_intercept=fit_intercept).fit(X, y, sample_weight=u)
    inf = fi.Influence(weighted, X, y, u)
    # the weighted model is the minimiser of R_dup too: no NotAtOptimumWarning
    inf_dup = fi.Influence(weighted, X_dup, y_dup)
    rtol = tolerance(inf)
    assert_close(inf_dup.hessian_, inf.hessian_, rtol, atol_fraction=rtol, err_msg="hessian_")
    assert_close(inf_dup.params(), inf.params()[rows], rtol, atol_fraction=rtol, err_msg="params")
    assert_close(inf_dup.loss(X_test, y_test), inf.loss(X_test, y_test)[rows], rtol, atol_fraction=rtol)
    assert_close(inf_dup.self_influence(), inf.self_influence()[rows], rtol, atol_fraction=rtol)
    assert_close(
        counts[rows, None] * inf_dup.loo_params("influence"),
        inf.loo_params("influence")[rows],
        rtol,
        atol_fraction=rtol,
        err_msg="loo_params",
    )

    duplicated = make_model(name, l2=l2, fit_intercept=fit_intercept).fit(X_dup, y_dup)
    assert_fits_agree(duplicated, weighted, inf)
