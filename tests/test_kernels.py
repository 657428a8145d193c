"""The fused kernels: objective, gradient, Hessian and Hessian-vector products
against central differences and hand-written sums; the compiled backend
against the NumPy reference; threaded results against serial ones."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import L2, assert_close, loss_of, make_data, random_theta
from hypothesis import given, settings
from hypothesis import strategies as st

import fastinfluence as fi
from fastinfluence.backends import get_backend
from fastinfluence.backends.contract import Problem
from fastinfluence.losses import LOSS_NAMES

K = fi.kernels
BACKENDS = ("cpp", "numpy")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def central_difference(f, x, h):
    """Columns (f(x + h e_k) - f(x - h e_k)) / 2h, stacked as a (len(f(x)), len(x)) array."""
    cols = []
    for k in range(x.shape[0]):
        e = np.zeros_like(x)
        e[k] = h
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


# ---------------------------------------------------------------------------
# Finite differences: every loss x intercept x weights x dtype x order x backend
# ---------------------------------------------------------------------------


def test_gradient_matches_central_differences_of_objective(problem, backend):
    pb = problem

    def objective(theta):
        return K.objective(pb.loss, pb.X, pb.y, theta, **pb.kwargs, backend=backend)

    grad = K.gradient(pb.loss, pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend)
    assert grad.shape == (pb.p,)
    fd = central_difference(lambda th: np.array([objective(th)]), pb.theta, 1e-5)[0]
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)


def test_hessian_matches_central_differences_of_gradient(problem, backend):
    pb = problem
    H = K.hessian(pb.loss, pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend)
    assert H.shape == (pb.p, pb.p)
    fd = central_difference(
        lambda th: K.gradient(pb.loss, pb.X, pb.y, th, **pb.kwargs, backend=backend), pb.theta, 1e-5
    )
    np.testing.assert_allclose(H, fd, rtol=1e-7, atol=1e-9)
    if backend == "cpp":
        np.testing.assert_array_equal(H, H.T)  # the core returns an exactly symmetric H
    assert_close(H, H.T, 1e-14)
    assert np.linalg.eigvalsh(H).min() > 0  # l2 > 0 and convex losses


def test_hessian_vector_product_matches_directional_differences(problem, backend):
    pb = problem
    rng = np.random.default_rng(11)
    v = rng.standard_normal(pb.p)
    hv = K.hessian_vector_product(pb.loss, pb.X, pb.y, pb.theta, v, **pb.kwargs, backend=backend)
    assert hv.shape == (pb.p,)
    h = 1e-5

    def grad(th):
        return K.gradient(pb.loss, pb.X, pb.y, th, **pb.kwargs, backend=backend)

    fd = (grad(pb.theta + h * v) - grad(pb.theta - h * v)) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-7, atol=1e-9)
    # a block of vectors at once, column by column the same as H V
    V = rng.standard_normal((pb.p, 3))
    HV = K.hessian_vector_product(pb.loss, pb.X, pb.y, pb.theta, V, **pb.kwargs, backend=backend)
    H = K.hessian(pb.loss, pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend)
    assert HV.shape == (pb.p, 3)
    assert_close(HV, H @ V, rtol=1e-12)


def test_objective_gradient_hessian_match_hand_written_sums(problem, backend):
    # R = (1/n) sum s_i loss_i + (l2/2)||w||^2 ; grad = (1/n) sum s_i loss'_i xa_i + l2 [w; 0]
    # H = (1/n) sum s_i loss''_i xa_i xa_i^T + l2 diag(1..1, 0), from loss_terms row by row.
    pb = problem
    n, d = pb.X.shape
    X64 = np.asarray(pb.X, dtype=np.float64)
    Xa = np.hstack([X64, np.ones((n, 1))]) if pb.fit_intercept else X64
    s = np.ones(n) if pb.weights is None else pb.weights
    eta = Xa @ pb.theta
    value, d1, d2 = K.loss_terms(pb.loss, pb.y, eta, backend="numpy")
    w = pb.theta[:d]
    objective = sum(s[i] * value[i] for i in range(n)) / n + 0.5 * pb.l2 * (w @ w)
    gradient = sum(s[i] * d1[i] * Xa[i] for i in range(n)) / n
    gradient[:d] += pb.l2 * w
    hessian = sum(s[i] * d2[i] * np.outer(Xa[i], Xa[i]) for i in range(n)) / n
    hessian[np.arange(d), np.arange(d)] += pb.l2
    assert_close(K.objective(pb.loss, pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend), objective, 1e-12)
    assert_close(K.gradient(pb.loss, pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend), gradient, 1e-12)
    assert_close(K.hessian(pb.loss, pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend), hessian, 1e-12)
    eta_k, value_k, d1_k, d2_k = K.row_derivatives(
        pb.loss, pb.X, pb.y, pb.theta, fit_intercept=pb.fit_intercept, backend=backend
    )
    for got, want in ((eta_k, eta), (value_k, value), (d1_k, d1), (d2_k, d2)):
        assert_close(got, want, 1e-12)


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_integer_weights_equal_duplicated_rows(name, l2, backend):
    # Duplicating row i s_i times gives N = sum s_i rows and
    #   R_dup = (1/N) sum_i s_i loss_i + (l2_dup/2)||w||^2.
    # With l2_dup = l2 n / N this is (n/N) R_weighted: values, gradients and
    # Hessians scale by n/N and the minimiser is the same.
    X, y, _ = make_data(name, n=30, d=3, seed=5)
    n = X.shape[0]
    s = np.random.default_rng(2).integers(0, 4, n).astype(float)
    s[0] = 0.0
    counts = s.astype(int)
    X_dup, y_dup = np.repeat(X, counts, axis=0), np.repeat(y, counts)
    N = X_dup.shape[0]
    loss, theta = loss_of(name), random_theta(3, True)
    weighted = dict(weights=s, l2=l2, backend=backend)
    dup = dict(l2=l2 * n / N, backend=backend)
    for kernel in (K.objective, K.gradient, K.hessian):
        got = kernel(loss, X_dup, y_dup, theta, **dup)
        assert_close(
            got, n / N * np.asarray(kernel(loss, X, y, theta, **weighted)), 1e-12, err_msg=kernel.__name__
        )
    fit_w = K.fit_newton(loss, X, y, **weighted, tol=1e-12)
    fit_dup = K.fit_newton(loss, X_dup, y_dup, **dup, tol=1e-12)
    assert fit_w["converged"]
    assert fit_dup["converged"]
    assert_close(fit_w["theta"], fit_dup["theta"], 1e-9)


# ---------------------------------------------------------------------------
# The compiled backend against the NumPy reference, on the parametrised problem
# ---------------------------------------------------------------------------


def test_backends_agree_on_objective_gradient_hessian(problem, backend_pair):
    pb = problem
    cpp, ref = backend_pair
    for kernel in (K.objective, K.gradient, K.hessian):
        got = kernel(pb.loss, pb.X, pb.y, pb.theta, **pb.kwargs, backend=cpp)
        want = kernel(pb.loss, pb.X, pb.y, pb.theta, **pb.kwargs, backend=ref)
        assert_close(got, want, 1e-9, err_msg=kernel.__name__)


def test_backends_agree_on_hessian_vector_product(problem, backend_pair):
    pb = problem
    cpp, ref = backend_pair
    V = np.random.default_rng(4).standard_normal((pb.p, 4))
    for v in (V[:, 0], V):
        got = K.hessian_vector_product(pb.loss, pb.X, pb.y, pb.theta, v, **pb.kwargs, backend=cpp)
        want = K.hessian_vector_product(pb.loss, pb.X, pb.y, pb.theta, v, **pb.kwargs, backend=ref)
        assert got.shape == want.shape == v.shape
        assert_close(got, want, 1e-9)


@pytest.mark.parametrize("want_hessian", [True, False], ids=["hessian", "no_hessian"])
def test_evaluate_with_row_derivatives_is_evaluate_plus_row_derivatives(problem, backend, want_hessian):
    """Influence's one-pass construction: the same value, gradient and Hessian as evaluate, and the
    loss'_i, loss''_i of row_derivatives, from one pass over X."""
    pb = problem
    impl = get_backend(backend)
    data = Problem(pb.loss, pb.X, pb.y, pb.weights, pb.fit_intercept, pb.l2)
    value, gradient, hessian, d1, d2 = impl.evaluate_with_row_derivatives(data, pb.theta, want_hessian)
    want_value, want_gradient, want_hessian_matrix = impl.evaluate(data, pb.theta, True, want_hessian)
    assert value == want_value
    np.testing.assert_array_equal(gradient, want_gradient)
    if want_hessian:
        np.testing.assert_array_equal(hessian, want_hessian_matrix)
    else:
        assert hessian is None
    _, _, want_d1, want_d2 = impl.row_derivatives(data, pb.theta)
    assert d1.shape == d2.shape == (pb.X.shape[0],)
    assert_close(d1, want_d1, 1e-13, err_msg="loss'")
    assert_close(d2, want_d2, 1e-13, err_msg="loss''")


def test_backends_agree_on_row_derivatives(problem, backend_pair):
    pb = problem
    cpp, ref = backend_pair
    got = K.row_derivatives(pb.loss, pb.X, pb.y, pb.theta, fit_intercept=pb.fit_intercept, backend=cpp)
    want = K.row_derivatives(pb.loss, pb.X, pb.y, pb.theta, fit_intercept=pb.fit_intercept, backend=ref)
    for g, w, what in zip(got, want, ("eta", "value", "d1", "d2")):
        assert_close(g, w, 1e-9, err_msg=what)


def test_backends_agree_on_fit_newton(problem, backend_pair):
    pb = problem
    cpp, ref = backend_pair
    kwargs = dict(weights=pb.weights, l2=pb.l2, fit_intercept=pb.fit_intercept, tol=1e-12)
    got = K.fit_newton(pb.loss, pb.X, pb.y, **kwargs, backend=cpp)
    want = K.fit_newton(pb.loss, pb.X, pb.y, **kwargs, backend=ref)
    assert got["converged"], got["message"]
    assert want["converged"], want["message"]
    assert_close(got["theta"], want["theta"], 1e-9)
    assert_close(got["objective"], want["objective"], 1e-12)
    assert got["decrement"] <= 1e-12 * np.sqrt(got["objective_scale"])


def test_backends_agree_on_scoring_products(problem, backend_pair):
    pb = problem
    cpp, ref = backend_pair
    rng = np.random.default_rng(9)
    n = pb.X.shape[0]
    row_scale, M = rng.standard_normal(n), rng.standard_normal((pb.p, 5))
    got = K.scaled_row_products(pb.X, row_scale, M, fit_intercept=pb.fit_intercept, backend=cpp)
    want = K.scaled_row_products(pb.X, row_scale, M, fit_intercept=pb.fit_intercept, backend=ref)
    assert_close(got, want, 1e-9)
    # out_i = row_scale_i * xa_i^T M, by hand
    X64 = np.asarray(pb.X, dtype=np.float64)
    Xa = np.hstack([X64, np.ones((n, 1))]) if pb.fit_intercept else X64
    assert_close(got, row_scale[:, None] * (Xa @ M), 1e-12)
    A = np.tril(rng.standard_normal((pb.p, pb.p)))
    q = K.row_quadratic_forms(pb.X, A, fit_intercept=pb.fit_intercept, backend=cpp)
    assert_close(q, K.row_quadratic_forms(pb.X, A, fit_intercept=pb.fit_intercept, backend=ref), 1e-9)
    assert_close(q, np.einsum("ij,ij->i", Xa @ A.T, Xa @ A.T), 1e-12)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_scaled_row_products_writes_into_out(backend_name):
    X, _, _ = make_data("squared", n=50, d=3, seed=1)
    rng = np.random.default_rng(0)
    row_scale, M = rng.standard_normal(50), rng.standard_normal((4, 2))
    out = np.full((50, 2), np.nan)
    result = K.scaled_row_products(X, row_scale, M, out=out, backend=backend_name)
    assert np.shares_memory(result, out)
    assert_close(out, K.scaled_row_products(X, row_scale, M, backend=backend_name), 1e-15)
    with pytest.raises(ValueError, match="out"):
        K.scaled_row_products(X, row_scale, M, out=np.empty((50, 2), order="F"), backend=backend_name)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(LOSS_NAMES),
    n=st.integers(1, 25),
    d=st.integers(1, 5),
    fit_intercept=st.booleans(),
    float32=st.booleans(),
    fortran=st.booleans(),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@pytest.mark.requires_core
def test_backends_agree_on_random_small_problems(name, n, d, fit_intercept, float32, fortran, weighted, seed):
    X, y, s = make_data(
        name,
        n=n,
        d=d,
        seed=seed,
        dtype=np.float32 if float32 else np.float64,
        order="F" if fortran else "C",
        weighted=weighted,
    )
    if s is not None:
        s[0] = 0.0
        s[-1] = 1.0  # never all zero
    loss, theta = loss_of(name), random_theta(d, fit_intercept, seed=seed % 1000)
    kwargs = dict(weights=s, l2=L2, fit_intercept=fit_intercept)
    value, grad, hess = (
        kernel(loss, X, y, theta, **kwargs, backend="cpp") for kernel in (K.objective, K.gradient, K.hessian)
    )
    assert_close(value, K.objective(loss, X, y, theta, **kwargs, backend="numpy"), 1e-9)
    assert_close(grad, K.gradient(loss, X, y, theta, **kwargs, backend="numpy"), 1e-9)
    assert_close(hess, K.hessian(loss, X, y, theta, **kwargs, backend="numpy"), 1e-9)
    v = np.linspace(-1.0, 1.0, theta.shape[0])
    assert_close(K.hessian_vector_product(loss, X, y, theta, v, **kwargs, backend="cpp"), hess @ v, 1e-9)


# ---------------------------------------------------------------------------
# Threads: the core reduces row chunks in a fixed order, so any thread count
# gives bitwise the same result.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=LOSS_NAMES)
def large_problem(request):
    X, y, s = make_data(request.param, n=5000, d=8, seed=3, weighted=True)
    return loss_of(request.param), X, y, s, random_theta(8, True, seed=4)


@pytest.mark.requires_core
def test_threaded_kernels_equal_serial_bitwise(large_problem):
    loss, X, y, s, theta = large_problem
    V = np.random.default_rng(5).standard_normal((theta.shape[0], 3))
    results = {}
    for n_jobs in (1, 2):
        kw = dict(weights=s, l2=L2, backend="cpp", n_jobs=n_jobs)
        results[n_jobs] = (
            K.objective(loss, X, y, theta, **kw),
            K.gradient(loss, X, y, theta, **kw),
            K.hessian(loss, X, y, theta, **kw),
            K.hessian_vector_product(loss, X, y, theta, V, **kw),
            *K.row_derivatives(loss, X, y, theta, backend="cpp", n_jobs=n_jobs),
            K.fit_newton(loss, X, y, **kw)["theta"],
        )
    names = ("objective", "gradient", "hessian", "hvp", "eta", "value", "d1", "d2", "fit theta")
    for serial, threaded, what in zip(results[1], results[2], names):
        np.testing.assert_array_equal(threaded, serial, err_msg=what)
    # and the threaded sums are right, not merely reproducible
    assert_close(results[2][2], K.hessian(loss, X, y, theta, weights=s, l2=L2, backend="numpy"), 1e-9)


# ---------------------------------------------------------------------------
# Build information
# ---------------------------------------------------------------------------


@pytest.mark.requires_core
def test_show_config_prints_eigen_version_and_openmp(capsys):
    info = fi.show_config()
    printed = capsys.readouterr().out
    assert re.search(r"^\s*eigen: 3\.\d+\.\d+$", printed, flags=re.MULTILINE), printed
    assert re.search(r"^\s*openmp: (on|off)$", printed, flags=re.MULTILINE), printed
    assert re.search(r"^\s*fastinfluence: " + re.escape(fi.__version__) + "$", printed, flags=re.MULTILINE)
    assert info == fi.build_info()
    assert info["compiled_core"] == "available"
    assert isinstance(info["threads"], int)
    assert info["threads"] >= 1


@pytest.mark.requires_core
def test_build_info_names_the_instruction_sets_compiled_for():
    # from the compiler's macros (Eigen's "simd" string says AVX for an AVX2 + FMA build too)
    from fastinfluence import _core

    sets = _core.build_info()["instruction_sets"]
    assert set(sets) <= {"SSE4.2", "AVX", "AVX2", "FMA", "AVX512F", "NEON"}
    assert "AVX2" not in sets or "AVX" in sets  # AVX2 implies AVX
    assert fi.build_info()["instruction_sets"] == (", ".join(sets) or "baseline")


def _at_every_address(a):
    """Copies of ``a`` (C order) starting at every residue of the address modulo 64 bytes."""
    for offset in range(8):
        buffer = np.empty(a.size + 16)
        start = (-(buffer.ctypes.data // 8)) % 8 + offset
        shifted = buffer[start : start + a.size].reshape(a.shape)
        shifted[...] = a
        yield shifted


@pytest.mark.requires_core
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dense_matrix_vector_products_do_not_depend_on_the_address_of_X(fit_intercept):
    """eta = X w + b and the gradient X^T r come from products that sweep a C-ordered X row by
    row (products.hpp, contiguous_matrix_vector): the same X at any address, and any thread
    count, gives the same bits; and the same values as the NumPy reference."""
    rng = np.random.default_rng(11)
    n, d = 3_000, 37  # d not a multiple of any SIMD width: every row has a tail
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.5).astype(np.float64)
    theta = rng.standard_normal(d + fit_intercept) * 0.3
    results = []
    for shifted in _at_every_address(X):
        for n_jobs in (1, 2):
            options = dict(fit_intercept=fit_intercept, n_jobs=n_jobs, backend="cpp")
            eta = K.row_derivatives("logistic", shifted, y, theta, **options)[0]
            value, gradient, hessian = K.evaluate("logistic", shifted, y, theta, l2=L2, **options)
            results.append((np.array(eta), value, np.array(gradient), np.array(hessian)))
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            np.testing.assert_array_equal(a, b)
    ref = K.evaluate("logistic", X, y, theta, fit_intercept=fit_intercept, l2=L2, backend="numpy")
    eta = X @ theta[:d] + (theta[d] if fit_intercept else 0.0)
    np.testing.assert_allclose(results[0][0], eta, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(results[0][2], ref[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(results[0][3], ref[2], rtol=1e-12, atol=1e-15)


@pytest.mark.requires_core
@pytest.mark.parametrize("d", [1, 7, 8, 9, 16, 17, 23, 24, 25, 41, 100, 400])
def test_dense_hessian_matches_the_reference_at_every_tile_edge(d):
    """The Hessian of C-ordered X comes, on 32-register CPUs, from register tiles of 8 rows and
    up to 3 packets (register_tiles.hpp) whose edges fall at multiples of the packet width and
    of 8 and 24 columns, with tails of 4, 2 and 1 rows; d = 400 is wide enough to be cut into
    column panels (objective.hpp, hessian_panels). Every d matches the NumPy reference, and
    gives the same bits at any thread count and at any address of X."""
    rng = np.random.default_rng(d)
    n = 4_000 if d < 400 else 1_500
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.5).astype(np.float64)
    theta = rng.standard_normal(d + 1) * (0.5 / np.sqrt(d))
    ref = K.hessian("logistic", X, y, theta, l2=L2, backend="numpy")
    results = [
        np.array(K.hessian("logistic", shifted, y, theta, l2=L2, backend="cpp", n_jobs=n_jobs))
        for shifted in _at_every_address(X)
        for n_jobs in (1, 2)
    ]
    for got in results[1:]:
        np.testing.assert_array_equal(got, results[0])
    np.testing.assert_allclose(results[0], ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(results[0], results[0].T)


@pytest.mark.requires_core
def test_gram_diagonal_does_not_depend_on_the_address_of_c():
    """The same c at any address gives the same bits: a sum over the caller's buffer used to peel
    a number of terms set by its alignment (two Influence objects on the same data then differed
    in the last bit, 1 run in 3, on AVX-512)."""
    from fastinfluence.backends import get_backend

    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 3))
    c = rng.random(40)
    cpp = get_backend("cpp")
    results = [np.array(cpp.gram_diagonal(X, True, shifted, 1)) for shifted in _at_every_address(c)]
    for got in results[1:]:
        np.testing.assert_array_equal(got, results[0])
