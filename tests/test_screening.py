"""The float32 screening pass of top_k_scores: the exact top k of the float64 scores.

The pass scores in float32 and recomputes in float64 only the rows whose error bound
reaches a heap's floor (cpp/include/fastinfluence/screening.hpp). A bound too small
would drop rows silently, so these tests build data where float32 cannot tell the
rows apart and check the ranking against the float64 one exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import assert_same_ranking

import fastinfluence as fi

pytestmark = pytest.mark.requires_core
K = fi.kernels


def _scores(X, r, M, fit_intercept=True):
    X = np.asarray(X, dtype=np.float64)
    eta = X @ M[: X.shape[1]] + (M[X.shape[1]] if fit_intercept else 0.0)
    return r[:, None] * eta


def _full_sort(S, k):
    """Ties to the lower row, as the kernel promises."""
    rows = np.arange(S.shape[0])
    helpful = np.array([np.lexsort((rows, col))[:k] for col in S.T])
    harmful = np.array([np.lexsort((rows, -col))[:k] for col in S.T])
    return helpful, harmful


def _check_exact(result, S, k, rtol=1e-13):
    helpful, harmful = _full_sort(S, k)
    assert_same_ranking(result.helpful_rows, helpful, S, rtol)
    assert_same_ranking(result.harmful_rows, harmful, S, rtol)
    # relative to the largest score: two float64 sums of a score near 0 differ by ulps of the terms
    atol = rtol * np.abs(S).max()
    np.testing.assert_allclose(result.helpful_scores, np.take_along_axis(S.T, helpful, 1), rtol=0, atol=atol)
    np.testing.assert_allclose(result.harmful_scores, np.take_along_axis(S.T, harmful, 1), rtol=0, atol=atol)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n, d, m = 6000, 30, 20
    return rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal((d + 1, m))


@pytest.mark.parametrize("layout", ["C", "F", "C32", "F32"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [1, 10, 6000])
def test_equals_the_float64_ranking(data, layout, fit_intercept, k):
    X, r, M = data
    Xin = np.asarray(X, dtype=np.float32 if layout.endswith("32") else np.float64, order=layout[0])
    M = M if fit_intercept else M[:-1]
    result = K.top_k_scores(Xin, r, M, k, fit_intercept=fit_intercept, screening=True)
    _check_exact(result, _scores(Xin, r, M, fit_intercept), k)
    # and the float64 pass
    plain = K.top_k_scores(Xin, r, M, k, fit_intercept=fit_intercept, screening=False)
    S = _scores(Xin, r, M, fit_intercept)
    assert_same_ranking(result.harmful_rows, plain.harmful_rows, S, 1e-13)
    assert_same_ranking(result.helpful_rows, plain.helpful_rows, S, 1e-13)


def test_rows_float32_cannot_tell_apart_are_ranked_exactly():
    # every row is one base row plus a perturbation of relative size 1e-10: float32 (2^-24 = 6e-8)
    # sees the same score for all of them, float64 orders them apart by about 1e-10, far above its
    # own rounding (1e-16). Only rows recomputed in float64 can come out in the right order.
    rng = np.random.default_rng(3)
    n, d, m, k = 5000, 12, 9, 25
    base = rng.standard_normal(d)
    X = base + 1e-10 * rng.standard_normal((n, d))
    r = np.ones(n)
    M = rng.standard_normal((d + 1, m))
    S = _scores(X, r, M)
    result = K.top_k_scores(X, r, M, k, screening=True)
    helpful, harmful = _full_sort(S, k)
    np.testing.assert_array_equal(result.helpful_rows, helpful)
    np.testing.assert_array_equal(result.harmful_rows, harmful)


def test_cancellation_far_below_the_norms():
    # large features whose dot products cancel: scores ~1 against norms ~3e6, so float32's
    # error (norms times 6e-8, ~0.2) is of the size of the gaps between the top scores
    rng = np.random.default_rng(4)
    n, d, m, k = 5000, 10, 8, 10
    X = 1e6 + rng.standard_normal((n, d))
    M = rng.standard_normal((d + 1, m))
    M[:d] -= M[:d].mean(axis=0)  # sum_k M_kj = 0: the 1e6 common part cancels
    M[d] = 0.0
    r = rng.uniform(0.5, 1.5, n)
    result = K.top_k_scores(X, r, M, k, screening=True)
    _check_exact(result, _scores(X, r, M), k, rtol=1e-8)  # the scores lose ~1e-10 to the 1e6 themselves
    helpful, harmful = _full_sort(_scores(X, r, M), k)
    np.testing.assert_array_equal(result.harmful_rows, harmful)
    np.testing.assert_array_equal(result.helpful_rows, helpful)


def test_exact_ties_go_to_the_lower_row_for_any_thread_count():
    rng = np.random.default_rng(5)
    distinct = rng.standard_normal((40, 6))
    X = distinct[rng.integers(0, 40, size=8000)]  # every score repeated ~200 times, bitwise
    r = np.ones(8000)
    M = rng.standard_normal((7, 10))
    results = [K.top_k_scores(X, r, M, 30, screening=True, n_jobs=j) for j in (1, 2)]
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)  # a promise: any thread count, the same bits
    res = results[0]
    for rows, scores in ((res.helpful_rows, res.helpful_scores), (res.harmful_rows, res.harmful_scores)):
        tied = np.diff(scores, axis=1) == 0
        assert tied.all(), "30 copies of the best row: all tied"
        assert np.all(np.diff(rows, axis=1) > 0)
    _check_exact(res, _scores(X, r, M), 30)


@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1e15])
def test_any_magnitude_the_bound_allows(data, scale):
    X, r, M = data
    result = K.top_k_scores(X * scale, r, M / scale, 7, screening=True)
    _check_exact(result, _scores(X * scale, r, M / scale), 7)


@pytest.mark.parametrize(
    "case", ["huge_rows", "huge_columns", "overflowing_product", "nan_row", "inf_scale", "sparse"]
)
def test_data_outside_the_bound_take_the_float64_pass(data, case):
    X, r, M = (a.copy() for a in data)
    if case == "huge_rows":
        X[17] *= 1e30  # a norm above 2^60
    elif case == "huge_columns":
        M[:, 3] *= 1e30
    elif case == "overflowing_product":
        X *= 1e18
        M *= 1e19  # each norm below 2^60, their product above 2^120
    elif case == "nan_row":
        X[5, 2] = np.nan
    elif case == "inf_scale":
        r[9] = np.inf
    Xin = sp.csr_matrix(X) if case == "sparse" else X
    if case in ("nan_row", "inf_scale"):
        # refused by fi.kernels before the core sees them; the core must still stay exact
        from fastinfluence import _core

        screened = _core.top_k_scores(Xin, True, r, M, 5, 0, 1)
        plain = _core.top_k_scores(Xin, True, r, M, 5, 0, 0)
    else:
        screened = K.top_k_scores(Xin, r, M, 5, screening=True)
        plain = K.top_k_scores(Xin, r, M, 5, screening=False)
    for a, b in zip(screened, plain):
        np.testing.assert_array_equal(a, b)  # the same pass, so the same bits


def test_automatic_choice_screens_large_problems_only(data):
    X, r, M = data
    auto = K.top_k_scores(X, r, M, 5)
    _check_exact(auto, _scores(X, r, M), 5)
    small = K.top_k_scores(X[:100], r[:100], M, 5)
    for a, b in zip(small, K.top_k_scores(X[:100], r[:100], M, 5, screening=False)):
        np.testing.assert_array_equal(a, b)  # below n = 4096: the float64 pass


def test_influence_top_k_through_the_screening_pass():
    rng = np.random.default_rng(8)
    n, d = 9000, 15
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ rng.standard_normal(d)))).astype(int)
    X_test, y_test = rng.standard_normal((40, d)), (rng.random(40) < 0.5).astype(int)
    inf = fi.Influence(fi.LogisticRegression(l2=1e-3).fit(X, y), X, y)
    scores = inf.loss(X_test, y_test)
    top = inf.top_k(X_test, y_test, k=12)
    helpful, harmful = _full_sort(scores, 12)
    assert_same_ranking(top.helpful_indices, helpful, scores, 1e-12)
    assert_same_ranking(top.harmful_indices, harmful, scores, 1e-12)
    reference = fi.Influence(inf.model, X, y, backend="numpy").top_k(X_test, y_test, k=12)
    assert_same_ranking(top.harmful_indices, reference.harmful_indices, scores, 1e-12)


def test_bad_screening_is_refused(data):
    X, r, M = data
    with pytest.raises(TypeError, match="screening must be None, True or False"):
        K.top_k_scores(X, r, M, 5, screening="yes")


# ---------------------------------------------------------------------------
# The multinomial scores, s_ij = sum_k R_ik (xa_i . M_kj)
# ---------------------------------------------------------------------------


def _multinomial_scores(X, R, M, fit_intercept=True):
    X = np.asarray(X, dtype=np.float64)
    n_classes, q = R.shape[1], X.shape[1] + (1 if fit_intercept else 0)
    Xa = np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X
    return sum(R[:, [c]] * (Xa @ M[c * q : (c + 1) * q]) for c in range(n_classes))


@pytest.fixture(scope="module")
def multinomial_data():
    rng = np.random.default_rng(12)
    n, d, n_classes, m = 5000, 12, 4, 11
    return (
        rng.standard_normal((n, d)),
        rng.standard_normal((n, n_classes)),
        rng.standard_normal((n_classes * (d + 1), m)),
    )


@pytest.mark.parametrize("layout", ["C", "F", "C32"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_multinomial_equals_the_float64_ranking(multinomial_data, layout, fit_intercept):
    X, R, M = multinomial_data
    Xin = np.asarray(X, dtype=np.float32 if layout.endswith("32") else np.float64, order=layout[0])
    if not fit_intercept:
        M = np.delete(M, np.arange(X.shape[1], M.shape[0], X.shape[1] + 1), axis=0)
    S = _multinomial_scores(Xin, R, M, fit_intercept)
    result = K.multinomial_top_k_scores(Xin, R, M, 9, fit_intercept=fit_intercept, screening=True)
    _check_exact(result, S, 9)
    reference = K.multinomial_top_k_scores(Xin, R, M, 9, fit_intercept=fit_intercept, backend="numpy")
    assert_same_ranking(result.harmful_rows, reference.harmful_rows, S, 1e-13)
    assert_same_ranking(result.helpful_rows, reference.helpful_rows, S, 1e-13)


def test_multinomial_rows_float32_cannot_tell_apart_are_ranked_exactly():
    rng = np.random.default_rng(13)
    n, d, n_classes, m, k = 5000, 8, 3, 7, 20
    X = rng.standard_normal(d) + 1e-10 * rng.standard_normal((n, d))
    R = rng.standard_normal(n_classes) + 1e-10 * rng.standard_normal((n, n_classes))
    M = rng.standard_normal((n_classes * (d + 1), m))
    S = _multinomial_scores(X, R, M)
    result = K.multinomial_top_k_scores(X, R, M, k, screening=True)
    helpful, harmful = _full_sort(S, k)
    np.testing.assert_array_equal(result.helpful_rows, helpful)
    np.testing.assert_array_equal(result.harmful_rows, harmful)
    for a, b in zip(result, K.multinomial_top_k_scores(X, R, M, k, screening=True, n_jobs=1)):
        np.testing.assert_array_equal(a, b)  # any thread count, the same bits


def test_multinomial_outside_the_bound_takes_the_float64_pass(multinomial_data):
    X, R, M = (a.copy() for a in multinomial_data)
    R[3] *= 1e13  # ||R_i|| above 2^40
    screened = K.multinomial_top_k_scores(X, R, M, 5, screening=True)
    plain = K.multinomial_top_k_scores(X, R, M, 5, screening=False)
    for a, b in zip(screened, plain):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Found by review: scales at the ends of the float64 range, panels past the first
# ---------------------------------------------------------------------------


def test_a_huge_row_scale_takes_the_float64_pass():
    # r = 1e300 times a dot product of 1e9 overflows float64: the pass must refuse, not hand an
    # infinite bound (whose inf - inf would drop the row from a heap) to the selection
    X = np.array([[1e4], [1.0], [2.0]] * 2000)
    r = np.tile([1e300, 1.0, 1.0], 2000)
    M = np.array([[1e5], [0.0]])
    screened = K.top_k_scores(X, r, M, 3, screening=True)
    plain = K.top_k_scores(X, r, M, 3, screening=False)
    for a, b in zip(screened, plain):
        np.testing.assert_array_equal(a, b)


def test_a_tiny_row_scale_keeps_the_bound():
    # r = 2^-1022 makes beta_i kappa_j subnormal: the bound's absolute term must still cover the
    # float32 error, or rows differing by 1e-8 relative come out in the wrong order
    rng = np.random.default_rng(6)
    n, k = 5000, 5
    X = 1e-18 * (1 + 1e-8 * rng.standard_normal((n, 1)))
    M = np.full((1, 8), 1e18)
    r = np.full(n, 2.0**-1022)
    result = K.top_k_scores(X, r, M, k, fit_intercept=False, screening=True)
    helpful, harmful = _full_sort(_scores(X, r, M, fit_intercept=False), k)
    np.testing.assert_array_equal(result.harmful_rows, harmful)
    np.testing.assert_array_equal(result.helpful_rows, helpful)


@pytest.mark.parametrize("multinomial", [False, True])
def test_panels_past_the_first_and_any_thread_count(multinomial):
    # 300 test points: three float32 panels of 128; 1, 2, 3 and 7 threads give the same bits
    rng = np.random.default_rng(9)
    n, d, m = 4500, 6, 300
    X = np.asfortranarray(rng.standard_normal((n, d)), dtype=np.float32)
    if multinomial:
        R = rng.standard_normal((n, 3))
        M = rng.standard_normal((3 * (d + 1), m))
        S = _multinomial_scores(X, R, M)
        runs = [K.multinomial_top_k_scores(X, R, M, 4, screening=True, n_jobs=j) for j in (1, 2, 3, 7)]
    else:
        r = rng.standard_normal(n)
        M = rng.standard_normal((d + 1, m))
        S = _scores(X, r, M)
        runs = [K.top_k_scores(X, r, M, 4, screening=True, n_jobs=j) for j in (1, 2, 3, 7)]
    _check_exact(runs[0], S, 4)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)
