"""The Hessian of wide models, computed in (row chunk, column panel) tasks.

The row chunks' Hessian accumulators share a 32 MiB budget (2^22 doubles), so a model with
p >= 362 (p = K q multinomial) gets fewer than 32 chunks whatever n, and p = 2,000 gets one:
one thread did all of it. Such a Hessian is now filled in a second pass by tasks that
each own a column panel (binary) or a block row and panel (multinomial) of one chunk's
accumulator, over windows of rows (cpp/include/fastinfluence/parallel.hpp,
parallel_reduce_row_parts). These tests pick shapes that take that path for certain, check
the result against the NumPy reference, and check that it is bitwise the same for any
thread count, as every reduction of the core promises.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import fastinfluence as fi
from fastinfluence import kernels as K

pytestmark = pytest.mark.requires_core

L2 = 1e-3


def _design(layout, n, d, seed):
    rng = np.random.default_rng(seed)
    if layout == "csr":
        return sp.random(n, d, density=0.05, format="csr", random_state=seed, data_rvs=rng.standard_normal)
    X = rng.standard_normal((n, d))
    if layout == "F":
        return np.asfortranarray(X)
    if layout == "F32":
        return X.astype(np.float32)
    return X


def _assert_threads_agree(compute, reference, rtol):
    got = {n_jobs: compute(n_jobs) for n_jobs in (1, 2, 3)}
    np.testing.assert_array_equal(got[2], got[1])
    np.testing.assert_array_equal(got[3], got[1])
    np.testing.assert_allclose(got[1], reference, rtol=rtol, atol=rtol * np.abs(reference).max())


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
@pytest.mark.parametrize(
    ("layout", "n", "d"),
    [
        # p = 1,101: 2^22 / p^2 = 3 chunks of 667 rows, 11 column panels, windows of 317 rows
        # (635 for float32)
        ("C", 2000, 1100),
        ("F", 2000, 1100),
        ("F32", 2000, 1100),
        # p = 401: 26 chunks of 770 rows (the last 750), 2 panels, windows of 655 rows
        ("C", 20_000, 400),
    ],
)
def test_binary_hessian_in_panels(layout, n, d, fit_intercept):
    X = _design(layout, n, d, seed=1)
    rng = np.random.default_rng(2)
    y = (rng.random(n) < 0.5).astype(np.float64)
    s = rng.uniform(0.5, 2.0, n)
    s[::7] = 0.0  # rows without weight add nothing
    theta = 0.05 * rng.standard_normal(d + fit_intercept)
    args = dict(weights=s, l2=L2, fit_intercept=fit_intercept)
    reference = K.hessian("logistic", X, y, theta, **args, backend="numpy")

    def compute(n_jobs):
        return K.hessian("logistic", X, y, theta, **args, backend="cpp", n_jobs=n_jobs)

    _assert_threads_agree(compute, reference, 1e-5 if layout == "F32" else 1e-10)
    # the first pass, which keeps the curvature weights for the panels, still gives the
    # objective and the gradient
    for kernel in (K.objective, K.gradient):
        got = kernel("logistic", X, y, theta, **args, backend="cpp", n_jobs=2)
        want = kernel("logistic", X, y, theta, **args, backend="numpy")
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(compute(2)) > 0)


@pytest.mark.parametrize(
    ("layout", "n_classes", "n", "d", "fit_intercept"),
    [
        # p = 3 x 201: 11 chunks x 3 block rows, no panels
        ("C", 3, 3000, 200, True),
        ("F32", 3, 3000, 200, True),
        ("C", 3, 3000, 200, False),
        # p = 2 x 601: 2 chunks x 2 block rows x 8 column panels, windows of 873 rows
        ("F", 2, 3000, 600, True),
        # sparse rows, about 15 per row: block rows only (p = 4 x 301: 2 chunks x 4 block rows)
        ("csr", 4, 25_000, 300, True),
    ],
)
def test_multinomial_hessian_in_block_rows_and_panels(layout, n_classes, n, d, fit_intercept):
    X = _design(layout, n, d, seed=3)
    rng = np.random.default_rng(4)
    y = rng.integers(0, n_classes, n).astype(np.float64)
    s = rng.uniform(0.5, 2.0, n)
    theta = 0.1 * rng.standard_normal(n_classes * (d + fit_intercept))
    args = dict(weights=s, l2=L2, n_classes=n_classes, fit_intercept=fit_intercept)
    reference = K.hessian("multinomial", X, y, theta, **args, backend="numpy")

    def compute(n_jobs):
        return K.hessian("multinomial", X, y, theta, **args, backend="cpp", n_jobs=n_jobs)

    _assert_threads_agree(compute, reference, 1e-5 if layout == "F32" else 1e-10)


def test_wide_fit_and_influence_same_for_any_thread_count():
    """A fit whose every Newton step takes the panelled Hessian, and the Influence built on it."""
    rng = np.random.default_rng(5)
    n, d = 3000, 700  # p = 701: 8 chunks, 4 panels
    X = rng.standard_normal((n, d))
    y = (X[:, :5].sum(axis=1) + rng.standard_normal(n) > 0).astype(np.float64)
    results = []
    for n_jobs in (1, 2):
        model = fi.LogisticRegression(l2=0.1, n_jobs=n_jobs).fit(X, y)
        inf = fi.Influence(model, X, y, n_jobs=n_jobs)
        results.append((model.coef_, inf.self_influence()))
    for serial, threaded in zip(*results):
        np.testing.assert_array_equal(threaded, serial)
    reference = fi.LogisticRegression(l2=0.1, backend="numpy").fit(X, y)
    np.testing.assert_allclose(results[0][0], reference.coef_, rtol=1e-8, atol=1e-12)
