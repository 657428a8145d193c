"""Sparse CSR input: every kernel, the fit and every influence quantity equal the dense results;
formats, index types and unsorted indices are handled; nothing is densified or modified."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import fastinfluence as fi
from fastinfluence import _validation

BACKENDS = ["cpp", "numpy"]


def _data(seed=0, n=400, d=12, density=0.3):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed) * 3.0 - 0.0
    X.data -= 1.0
    w = rng.standard_normal(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w)))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    X_test, y_test = _data(seed=1, n=15)
    model = fi.LogisticRegression(l2=1e-2).fit(X.toarray(), y)
    return model, X, y, X_test, y_test


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_every_quantity_matches_dense(fitted, backend, dtype, index_dtype):
    model, X, y, X_test, y_test = fitted
    Xs = X.astype(dtype)
    Xs.indices = Xs.indices.astype(index_dtype)
    Xs.indptr = Xs.indptr.astype(index_dtype)
    dense = Xs.toarray()  # same float32 rounding on both sides
    sparse_inf = fi.Influence(model, Xs, y, backend=backend)
    dense_inf = fi.Influence(model, dense, y, backend=backend)
    np.testing.assert_allclose(sparse_inf.hessian_, dense_inf.hessian_, rtol=1e-12, atol=1e-15)
    for name, call in [
        ("params", lambda inf: inf.params()),
        ("loss", lambda inf: inf.loss(X_test, y_test)),
        ("self_influence", lambda inf: inf.self_influence()),
        ("pert_loss", lambda inf: inf.pert_loss(X_test[:3], y_test[:3], indices=[0, 4, 9])),
        ("loo newton", lambda inf: inf.loo(X_test, y_test, method="newton")),
        ("loo_params", lambda inf: inf.loo_params(method="newton")),
    ]:
        expected = call(dense_inf)
        np.testing.assert_allclose(
            call(sparse_inf), expected, rtol=1e-10, atol=1e-13 * np.abs(expected).max(), err_msg=name
        )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["newton", "newton_cg"])
def test_fit_on_sparse_matches_dense(backend, solver):
    X, y = _data(seed=2)
    sparse_model = fi.LogisticRegression(l2=1e-3, method=solver, backend=backend).fit(X, y)
    dense_model = fi.LogisticRegression(l2=1e-3, backend=backend).fit(X.toarray(), y)
    np.testing.assert_allclose(sparse_model.theta_, dense_model.theta_, rtol=1e-8, atol=1e-10)
    # Newton-CG stops at the same gradient tolerance: theta within ~tol / lambda_min
    np.testing.assert_allclose(
        sparse_model.decision_function(X), dense_model.decision_function(X.toarray()), rtol=1e-7, atol=1e-8
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_on_sparse(backend):
    X, y = _data(seed=3)
    theta = np.random.default_rng(0).standard_normal(X.shape[1] + 1) * 0.3
    V = np.random.default_rng(1).standard_normal((X.shape[1] + 1, 3))
    for Xin in (X, X.toarray()):
        args = dict(weights=np.linspace(0.5, 2, X.shape[0]), l2=0.1, backend=backend)
        value = fi.kernels.objective("logistic", Xin, y, theta, **args)
        grad = fi.kernels.gradient("logistic", Xin, y, theta, **args)
        hess = fi.kernels.hessian("logistic", Xin, y, theta, **args)
        hvp = fi.kernels.hessian_vector_product("logistic", Xin, y, theta, V, **args)
        if Xin is X:
            reference = (value, grad, hess, hvp)
    for got, expected in zip((value, grad, hess, hvp), reference):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hvp, hess @ V, rtol=1e-12)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize(
    ("n", "d", "per_row", "k"),
    [
        (3000, 40_003, 8, 7),
        (3000, 40_003, 8, 10),
        (3000, 30_000, 8, 8),
        (8000, 4100, 20, 5),
        (3000, 300_001, 8, 2),
        (8000, 4100, 20, 64),
    ],
    ids=[
        "two_panels",
        "two_panels_of_five",
        "one_panel_of_eight",
        "one_panel_of_five_five_chunks",
        "one_column_panels_on_huge_pages",
        "two_panels_five_chunks",
    ],
)
def test_sparse_gram_product_in_panels(fit_intercept, n, d, per_row, k):
    """The C++ product in column panels of V (4 + 3 columns; 1 + 1 columns of 2.4 MiB, the
    2 MiB-aligned huge-page buffers, sizes not a multiple of 2 MiB; 32 + 32 columns over five
    chunks summed by the parallel tree) equals the NumPy reference and the same product taken
    column by column, and CG over it (buffers reused from one iteration to the next) equals
    NumPy's CG."""
    rng = np.random.default_rng(6)
    columns = rng.integers(0, d, size=(n, per_row))  # duplicates are summed by SciPy
    X = sp.csr_matrix(
        (rng.standard_normal(n * per_row), columns.ravel(), np.arange(0, n * per_row + 1, per_row)),
        shape=(n, d),
    )
    X.sum_duplicates()
    c = rng.random(n) / n
    c[::17] = 0.0  # rows skipped by the kernel
    p = d + fit_intercept
    V = rng.standard_normal((p, k))
    got = fi.kernels.regularised_gram_product(X, c, V, l2=0.3, fit_intercept=fit_intercept, n_jobs=2)
    want = fi.kernels.regularised_gram_product(X, c, V, l2=0.3, fit_intercept=fit_intercept, backend="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    one_column = fi.kernels.regularised_gram_product(X, c, V[:, 3:4], l2=0.3, fit_intercept=fit_intercept)
    np.testing.assert_allclose(got[:, 3:4], one_column, rtol=1e-12, atol=1e-15)
    assert np.all(np.isfinite(got))
    assert np.count_nonzero(got[:d]) > 0
    # the panels' kernels (a width fixed at compile time up to 8, any width past it) give the
    # same bits for any thread count (over 5 chunks of rows in the two 8,000-row cases; the others
    # have one)
    for n_jobs in (1, 3):
        again = fi.kernels.regularised_gram_product(
            X, c, V, l2=0.3, fit_intercept=fit_intercept, n_jobs=n_jobs
        )
        np.testing.assert_array_equal(again, got)
    # CG reuses these buffers from one iteration to the next: each product must start from zero
    solution, iterations, _ = fi.kernels.cg_solve(
        X, c, V, l2=0.3, fit_intercept=fit_intercept, tol=1e-11, n_jobs=2
    )
    assert np.min(iterations) >= 2
    reference = fi.kernels.cg_solve(X, c, V, l2=0.3, fit_intercept=fit_intercept, tol=1e-11, backend="numpy")[
        0
    ]
    np.testing.assert_allclose(solution, reference, rtol=1e-8, atol=1e-10)
    applied = fi.kernels.regularised_gram_product(X, c, solution, l2=0.3, fit_intercept=fit_intercept)
    assert np.linalg.norm(applied - V) <= 1e-9 * np.linalg.norm(V)


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "csr_array"])
def test_other_formats_are_converted_once(fitted, fmt):
    model, X, y, X_test, y_test = fitted
    Xf = sp.csr_array(X) if fmt == "csr_array" else X.asformat(fmt)
    expected = fi.Influence(model, X, y).loss(X_test, y_test)
    np.testing.assert_allclose(fi.Influence(model, Xf, y).loss(X_test, y_test), expected, rtol=1e-12)


def test_unsorted_and_duplicate_indices_are_fixed_on_a_copy(fitted):
    model, X, y, X_test, y_test = fitted
    expected = fi.Influence(model, X, y).loss(X_test, y_test)
    # reverse the column order inside every row and split one entry into two duplicates
    messy = X.copy()
    for i in range(messy.shape[0]):
        lo, hi = messy.indptr[i], messy.indptr[i + 1]
        messy.indices[lo:hi] = messy.indices[lo:hi][::-1].copy()
        messy.data[lo:hi] = messy.data[lo:hi][::-1].copy()
    messy.has_sorted_indices = False
    # two entries that cancel, inserted into row 0 at the column of its first entry
    end0 = messy.indptr[1]
    col = messy.indices[0]
    data = np.r_[messy.data[:end0], [0.25, -0.25], messy.data[end0:]]
    indices = np.r_[messy.indices[:end0], [col, col], messy.indices[end0:]]
    indptr = np.r_[messy.indptr[:1], messy.indptr[1:] + 2]
    dup = sp.csr_matrix((data, indices, indptr), shape=messy.shape)
    assert not dup.has_canonical_format
    before = (dup.data.copy(), dup.indices.copy(), dup.indptr.copy())
    np.testing.assert_allclose(fi.Influence(model, dup, y).loss(X_test, y_test), expected, rtol=1e-10)
    # the caller's matrix is untouched
    for a, b in zip(before, (dup.data, dup.indices, dup.indptr)):
        np.testing.assert_array_equal(a, b)


def test_csr_is_not_copied(fitted):
    _model, X, _y, *_ = fitted
    assert _validation.check_matrix(X) is X
    X32 = X.astype(np.float32)
    assert _validation.check_matrix(X32) is X32


def test_sparse_bad_input():
    X, y = _data()
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        fi.LogisticRegression().fit(bad, y)
    with pytest.raises(ValueError, match="X is empty"):
        fi.LogisticRegression().fit(sp.csr_matrix((0, 3)), [])
    with pytest.raises(TypeError, match="X must hold real numbers"):
        fi.LogisticRegression().fit(X.astype(np.complex128), y)


# ---------------------------------------------------------------------------
# Malformed structure (arrays assigned after construction, which SciPy does not re-check)
# ---------------------------------------------------------------------------


def _assign(X, **arrays):
    """A copy of X with some of .data/.indices/.indptr replaced as given (SciPy does not re-check them)."""
    bad = X.copy()
    for attr, value in arrays.items():
        setattr(bad, attr, value)
    return bad


def _malformed(X):
    """name -> (malformed copy of the (n, d) CSR matrix X, pattern of the error)."""
    n, d = X.shape
    lo, hi = X.indptr[3], X.indptr[4]  # row 3
    assert hi > lo + 1

    def with_index(position, value):
        indices = X.indices.copy()
        indices[position] = value
        return _assign(X, indices=indices)

    def with_indptr(row, value):
        indptr = X.indptr.copy()
        indptr[row] = value
        return _assign(X, indptr=indptr)

    columns = rf"\.indices must hold column numbers in \[0, {d}\)"
    return {
        # out of range: read and written outside the kernels' buffers (a segfault before the fix)
        "column_far_out_of_range": (with_index(lo, 10**6), columns + r"; got values from \d+ to 1000000"),
        # a negative column: writes before the start of a buffer (heap corruption)
        "negative_column": (with_index(lo, -5), columns + "; got values from -5"),
        # column d: silently landed on the intercept's slot
        "column_equal_to_d": (with_index(hi - 1, d), columns + f"; got values from 0 to {d}$"),
        # indptr[0] != 0: the first entries were silently dropped
        "indptr_not_starting_at_0": (with_indptr(0, 2), r"\.indptr must start at 0, got 2"),
        # non-monotone: RuntimeError vector::_M_default_append from the C++ core
        "indptr_decreasing": (
            with_indptr(5, X.indptr[7] + 3),
            r"\.indptr must be non-decreasing; .* at row 5",
        ),
        # indptr[-1] beyond the stored entries: read past the end of .data / .indices
        "data_shorter_than_indptr": (
            _assign(X, data=X.data[:-5].copy()),
            rf"\.indptr ends at {X.nnz} stored entries, .* \.data {X.nnz - 5}",
        ),
        "indices_shorter_than_indptr": (
            _assign(X, indices=X.indices[:-5].copy()),
            rf"\.indptr ends at {X.nnz} .* \.indices has {X.nnz - 5} and",
        ),
        "indptr_of_wrong_length": (
            _assign(X, indptr=X.indptr[:-1].copy()),
            rf"\.indptr has {n} entries, expected {n + 1}",
        ),
        "float_indices": (
            _assign(X, indices=X.indices.astype(np.float64)),
            r"\.indices must be a 1-D integer",
        ),
    }


MALFORMED = [
    "column_far_out_of_range",
    "negative_column",
    "column_equal_to_d",
    "indptr_not_starting_at_0",
    "indptr_decreasing",
    "data_shorter_than_indptr",
    "indices_shorter_than_indptr",
    "indptr_of_wrong_length",
    "float_indices",
]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_sparse_structure_is_refused_naming_the_argument(fitted, case):
    model, X, y, X_test, y_test = fitted
    bad, pattern = _malformed(X)[case]
    bad_test, test_pattern = _malformed(X_test)[case]
    error = TypeError if case == "float_indices" else ValueError
    before = [a.copy() for a in (bad.data, bad.indices, bad.indptr)]
    prefix = "^X is a malformed CSR matrix: "
    with pytest.raises(error, match=prefix + pattern):
        fi.LogisticRegression(l2=1e-2).fit(bad, y)
    with pytest.raises(error, match=prefix + pattern):
        fi.Influence(model, bad, y)
    with pytest.raises(error, match=prefix + pattern):
        fi.kernels.gradient("logistic", bad, y, np.zeros(X.shape[1] + 1))
    with pytest.raises(error, match=prefix + pattern):
        fi.kernels.regularised_gram_product(bad, np.ones(X.shape[0]), np.ones((X.shape[1] + 1, 2)))
    inf = fi.Influence(model, X, y)
    with pytest.raises(error, match="^X_test is a malformed CSR matrix: " + test_pattern):
        inf.loss(bad_test, y_test)
    # validation never modifies the caller's matrix
    for a, b in zip(before, (bad.data, bad.indices, bad.indptr)):
        np.testing.assert_array_equal(a, b)


def test_malformed_csc_and_coo_are_refused_before_conversion(fitted):
    # SciPy's tocsr() does not bounds-check either: a bad index would be written out of bounds
    model, X, y, *_ = fitted
    d = X.shape[1]
    csc = X.tocsc()
    indices = csc.indices.copy()
    indices[0] = X.shape[0] + 7
    pattern = r"^X is a malformed CSC matrix: \.indices must hold row numbers in \[0, 400\)"
    with pytest.raises(ValueError, match=pattern):
        fi.Influence(model, _assign(csc, indices=indices), y)
    coo = X.tocoo()
    col = coo.col.copy()
    col[3] = d
    bad = coo.copy()
    bad.col = col
    pattern = rf"^X is a malformed COO matrix: \.col must hold column numbers in \[0, {d}\)"
    with pytest.raises(ValueError, match=pattern):
        fi.Influence(model, bad, y)
    bad = coo.copy()
    bad.row = coo.row[:-1].copy()
    with pytest.raises(ValueError, match=r"^X is a malformed COO matrix: \.row has \d+ entries, \.data has"):
        fi.Influence(model, bad, y)


def test_entries_past_indptr_end_are_ignored_not_read(fitted):
    # len(data) > indptr[-1]: the trailing entries are not part of the matrix (SciPy ignores them);
    # they were checked for finiteness and counted as stored entries by the kernels
    model, X, y, X_test, y_test = fitted
    expected = fi.Influence(model, X, y).loss(X_test, y_test)
    trailing = np.array([-1, 10**6], dtype=X.indices.dtype)
    padded = _assign(X, data=np.r_[X.data, np.nan, np.inf], indices=np.r_[X.indices, trailing])
    before = [a.copy() for a in (padded.data, padded.indices, padded.indptr)]
    np.testing.assert_allclose(fi.Influence(model, padded, y).loss(X_test, y_test), expected, rtol=1e-12)
    for a, b in zip(before, (padded.data, padded.indices, padded.indptr)):
        np.testing.assert_array_equal(a, b)


def test_strided_sparse_arrays_are_read_in_order(fitted):
    # a .data that is a strided view (every other element of a buffer) was read as if contiguous
    model, X, y, X_test, y_test = fitted
    expected = fi.Influence(model, X, y).loss(X_test, y_test)
    strided = _assign(X, data=np.repeat(X.data, 2)[::2], indices=np.repeat(X.indices, 2)[::2])
    assert not strided.data.flags.c_contiguous
    np.testing.assert_allclose(fi.Influence(model, strided, y).loss(X_test, y_test), expected, rtol=1e-12)


def test_lying_canonical_flag_is_not_trusted(fitted):
    # has_canonical_format is a cached flag: set by hand (or left over from before .indices was
    # assigned) it claimed sorted indices that the kernels then relied on
    model, X, y, X_test, y_test = fitted
    messy = X.copy()
    messy.indices, messy.data = messy.indices.copy(), messy.data.copy()
    for i in range(0, messy.shape[0], 2):  # reverse the entries of every other row
        lo, hi = messy.indptr[i], messy.indptr[i + 1]
        messy.indices[lo:hi] = messy.indices[lo:hi][::-1].copy()
        messy.data[lo:hi] = messy.data[lo:hi][::-1].copy()
    messy.has_canonical_format = True
    # the lie SciPy now believes
    assert messy.has_canonical_format
    assert messy.has_sorted_indices
    before = [a.copy() for a in (messy.data, messy.indices, messy.indptr)]
    checked = _validation.check_matrix(messy)
    assert checked is not messy
    rows = np.repeat(np.arange(checked.shape[0]), np.diff(checked.indptr))
    assert np.all((np.diff(checked.indices) > 0) | (np.diff(rows) > 0)), "indices not sorted within rows"
    np.testing.assert_array_equal(checked.toarray(), X.toarray())  # the same entries, reordered
    expected = fi.Influence(model, X, y).loss(X_test, y_test)
    np.testing.assert_allclose(fi.Influence(model, messy, y).loss(X_test, y_test), expected, rtol=1e-12)
    for a, b in zip(before, (messy.data, messy.indices, messy.indptr)):
        np.testing.assert_array_equal(a, b)
