"""The multinomial (softmax) loss kernels: objective, gradient and Hessian against central
differences and hand-written sums; the Gram and scoring passes against direct NumPy
computations; the change of loss against 60-digit decimal arithmetic; the compiled backend
against the NumPy reference over every layout of X; threaded results against serial ones."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import assert_close, assert_same_ranking
from scipy.special import logsumexp, softmax

import fastinfluence as fi
from fastinfluence.backends import get_backend
from fastinfluence.backends.contract import Problem
from fastinfluence.exceptions import InvalidArgumentValueError
from fastinfluence.losses import Loss, loss_infimum

K = fi.kernels
BACKENDS = ("cpp", "numpy")
N_CLASSES = (2, 3, 7)
#: dense float64 C/F order, float32 C/F order, CSR float64 with int32/int64 indices, CSR float32
LAYOUTS = ("C", "F", "C32", "F32", "csr32", "csr64", "csr32_f32")
L2 = 1e-2
MULTINOMIAL = Loss("multinomial")


def make_X(layout, n, d, seed):
    """(n, d) data in ``layout``; sparse layouts keep about half the entries."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + 0.3
    if layout.startswith("csr"):
        X[rng.random((n, d)) < 0.5] = 0.0
        Xs = sp.csr_matrix(X.astype(np.float32 if layout.endswith("f32") else np.float64))
        index = np.int64 if layout.startswith("csr64") else np.int32
        Xs.indices = Xs.indices.astype(index)
        Xs.indptr = Xs.indptr.astype(index)
        return Xs
    dtype = np.float32 if layout.endswith("32") else np.float64
    return np.array(X, dtype=dtype, order=layout[0])


def dense(X):
    """X as a float64 array (float32 values converted exactly)."""
    return X.toarray().astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)


def augmented(X, fit_intercept):
    D = dense(X)
    return np.hstack([D, np.ones((D.shape[0], 1))]) if fit_intercept else D


@dataclass
class MultinomialProblem:
    X: object
    y: np.ndarray
    weights: np.ndarray | None
    theta: np.ndarray
    n_classes: int
    fit_intercept: bool
    l2: float = L2

    @property
    def kwargs(self):
        return dict(
            weights=self.weights, l2=self.l2, fit_intercept=self.fit_intercept, n_classes=self.n_classes
        )

    @property
    def q(self):
        return self.X.shape[1] + (1 if self.fit_intercept else 0)

    @property
    def p(self):
        return self.n_classes * self.q

    def problem(self):
        return Problem(MULTINOMIAL, self.X, self.y, self.weights, self.fit_intercept, self.l2, self.n_classes)


def make_problem(n_classes, layout="C", fit_intercept=True, weighted=False, *, n=40, d=4, seed=0, scale=0.4):
    X = make_X(layout, n, d, seed)
    rng = np.random.default_rng(seed + 1)
    q = d + (1 if fit_intercept else 0)
    eta = augmented(X, fit_intercept) @ rng.standard_normal((n_classes, q)).T
    probabilities = softmax(eta, axis=1)
    y = np.array([rng.choice(n_classes, p=row) for row in probabilities], dtype=np.float64)
    s = rng.uniform(0.5, 2.0, n) if weighted else None
    theta = scale * rng.standard_normal(n_classes * q)  # away from the optimum
    return MultinomialProblem(X, y, s, theta, n_classes, fit_intercept)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=N_CLASSES, ids=lambda k: f"K{k}")
def n_classes(request):
    return request.param


@pytest.fixture(params=[True, False], ids=["intercept", "no_intercept"])
def fit_intercept(request):
    return request.param


@pytest.fixture(params=[False, True], ids=["unweighted", "weighted"])
def weighted(request):
    return request.param


@pytest.fixture(params=LAYOUTS)
def layout(request):
    return request.param


@pytest.fixture
def mp(n_classes, layout, fit_intercept, weighted):
    """Every class count x layout x intercept x weights."""
    return make_problem(n_classes, layout, fit_intercept, weighted)


@pytest.fixture(params=["C", "F32", "csr64"])
def fd_mp(request, n_classes, fit_intercept, weighted):
    """The finite-difference problems: every class count x intercept x weights, three layouts."""
    return make_problem(n_classes, request.param, fit_intercept, weighted)


def central_difference(f, x, h):
    cols = []
    for k in range(x.shape[0]):
        e = np.zeros_like(x)
        e[k] = h
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


def row_probabilities(pb):
    """(c = s/n, P) at theta, from the reference: the arguments of the multinomial Gram passes."""
    n = pb.X.shape[0]
    s = np.ones(n) if pb.weights is None else pb.weights
    P = K.row_derivatives("multinomial", pb.X, pb.y, pb.theta, **_row_kwargs(pb), backend="numpy")[3]
    return s / n, P


def _row_kwargs(pb):
    return dict(fit_intercept=pb.fit_intercept, n_classes=pb.n_classes)


# ---------------------------------------------------------------------------
# Derivatives: central differences and hand-written sums
# ---------------------------------------------------------------------------


def test_gradient_matches_central_differences_of_objective(fd_mp, backend):
    pb = fd_mp

    def objective(theta):
        return K.objective("multinomial", pb.X, pb.y, theta, **pb.kwargs, backend=backend)

    grad = K.gradient("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend)
    assert grad.shape == (pb.p,)
    fd = central_difference(lambda th: np.array([objective(th)]), pb.theta, 1e-5)[0]
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)


def test_hessian_matches_central_differences_of_gradient(fd_mp, backend):
    pb = fd_mp
    H = K.hessian("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend)
    assert H.shape == (pb.p, pb.p)
    fd = central_difference(
        lambda th: K.gradient("multinomial", pb.X, pb.y, th, **pb.kwargs, backend=backend), pb.theta, 1e-5
    )
    np.testing.assert_allclose(H, fd, rtol=1e-7, atol=1e-9)
    if backend == "cpp":
        np.testing.assert_array_equal(H, H.T)  # the core returns an exactly symmetric H
    assert_close(H, H.T, 1e-14)
    # positive semi-definite, singular along the gauge direction (the same vector for every class)
    # in the intercepts, which l2 does not reach
    if pb.fit_intercept:
        gauge = np.zeros(pb.p)
        gauge[pb.q - 1 :: pb.q] = 1.0
        np.testing.assert_allclose(H @ gauge, 0.0, atol=1e-14 * np.abs(H).max() * pb.n_classes)
    assert np.linalg.eigvalsh(H).min() > -1e-12 * np.abs(H).max()


def test_objective_gradient_hessian_match_hand_written_sums(mp, backend):
    # R = (1/n) sum s_i (lse(eta_i) - eta_iy) + (l2/2) sum_k ||w_k||^2
    # grad block k = (1/n) sum s_i (P_ik - [y_i = k]) xa_i + l2 (w_k, 0)
    # H block (k, l) = (1/n) sum s_i (delta_kl P_ik - P_ik P_il) xa_i xa_i^T + l2 delta_kl diag(1.., 0)
    pb = mp
    Xa = augmented(pb.X, pb.fit_intercept)
    n, q = Xa.shape
    Kc = pb.n_classes
    s = np.ones(n) if pb.weights is None else pb.weights
    Theta = pb.theta.reshape(Kc, q)
    eta = Xa @ Theta.T
    y = pb.y.astype(int)
    P = softmax(eta, axis=1)
    Y = np.eye(Kc)[y]
    value = logsumexp(eta, axis=1) - eta[np.arange(n), y]
    d = pb.X.shape[1]
    W = Theta[:, :d]
    objective = np.dot(s, value) / n + 0.5 * pb.l2 * np.sum(W * W)
    gradient = np.zeros((Kc, q))
    hessian = np.zeros((Kc * q, Kc * q))
    for i in range(n):
        gradient += s[i] * np.outer(P[i] - Y[i], Xa[i]) / n
        hessian += s[i] * np.kron(np.diag(P[i]) - np.outer(P[i], P[i]), np.outer(Xa[i], Xa[i])) / n
    gradient[:, :d] += pb.l2 * W
    penalty = np.tile(np.r_[np.ones(d), np.zeros(q - d)], Kc)
    hessian += np.diag(pb.l2 * penalty)
    kw = dict(**pb.kwargs, backend=backend)
    assert_close(K.objective("multinomial", pb.X, pb.y, pb.theta, **kw), objective, 1e-12)
    assert_close(K.gradient("multinomial", pb.X, pb.y, pb.theta, **kw), gradient.reshape(-1), 1e-12)
    assert_close(K.hessian("multinomial", pb.X, pb.y, pb.theta, **kw), hessian, 1e-12)
    got = K.row_derivatives("multinomial", pb.X, pb.y, pb.theta, **_row_kwargs(pb), backend=backend)
    assert got.eta.shape == got.d1.shape == got.d2.shape == (n, Kc)
    assert got.value.shape == (n,)
    for g, w, what in zip(got, (eta, value, P - Y, P), ("eta", "value", "d1", "d2")):
        assert_close(g, w, 1e-12, err_msg=what)


def test_theta_may_be_given_as_a_class_by_parameter_matrix(backend):
    pb = make_problem(3)
    flat = K.gradient("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, backend=backend)
    matrix = K.gradient("multinomial", pb.X, pb.y, pb.theta.reshape(3, -1), **pb.kwargs, backend=backend)
    np.testing.assert_array_equal(flat, matrix)


def test_the_layout_is_scikit_learns(backend):
    # sklearn's multinomial LogisticRegression minimises C sum_i loss_i + ||W||^2 / 2, that is
    # R with l2 = 1 / (C n); theta = its coef_ rows with intercept_ appended is our optimum.
    from sklearn.linear_model import LogisticRegression

    pb = make_problem(3, n=200, d=3, seed=4)
    C = 2.0
    model = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(pb.X, pb.y.astype(int))
    theta = np.hstack([model.coef_, model.intercept_[:, None]]).reshape(-1)
    kw = dict(l2=1.0 / (C * 200), fit_intercept=True, n_classes=3, backend=backend)
    grad = K.gradient("multinomial", pb.X, pb.y, theta, **kw)
    assert np.abs(grad).max() < 1e-7
    P = K.row_derivatives("multinomial", pb.X, pb.y, theta, fit_intercept=True, n_classes=3, backend=backend)[
        3
    ]
    assert_close(P, model.predict_proba(pb.X), 1e-12)


@pytest.mark.parametrize("want_hessian", [True, False], ids=["hessian", "no_hessian"])
def test_evaluate_with_row_derivatives_is_evaluate_plus_row_derivatives(mp, backend, want_hessian):
    pb = mp
    impl = get_backend(backend)
    data = pb.problem()
    value, gradient, hessian, d1, d2 = impl.evaluate_with_row_derivatives(data, pb.theta, want_hessian)
    want_value, want_gradient, want_hessian_matrix = impl.evaluate(data, pb.theta, True, want_hessian)
    assert value == want_value
    np.testing.assert_array_equal(gradient, want_gradient)
    if want_hessian:
        np.testing.assert_array_equal(hessian, want_hessian_matrix)
    else:
        assert hessian is None
    rows = impl.row_derivatives(data, pb.theta)
    assert d1.shape == d2.shape == (pb.X.shape[0], pb.n_classes)
    assert_close(d1, rows.d1, 1e-15, err_msg="P - Y")
    assert_close(d2, rows.d2, 1e-15, err_msg="P")
    value_only = impl.evaluate(data, pb.theta, False, False)
    assert value_only.gradient is None
    assert value_only.hessian is None
    assert_close(value_only.value, value, 1e-15)


def test_hessian_vector_product_is_hessian_times_v(mp, backend):
    pb = mp
    rng = np.random.default_rng(11)
    H = K.hessian("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, backend="numpy")
    V = rng.standard_normal((pb.p, 3))
    for v in (V[:, 0], V):
        hv = K.hessian_vector_product("multinomial", pb.X, pb.y, pb.theta, v, **pb.kwargs, backend=backend)
        assert hv.shape == v.shape
        assert_close(hv, H @ v, 1e-12)


def test_gram_product_is_the_explicit_hessian(mp, backend):
    pb = mp
    c, P = row_probabilities(pb)
    H = K.hessian("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, backend="numpy")
    V = np.random.default_rng(3).standard_normal((pb.p, 5))
    got = K.multinomial_gram_product(pb.X, c, P, V, l2=pb.l2, fit_intercept=pb.fit_intercept, backend=backend)
    assert got.shape == (pb.p, 5)
    assert_close(got, H @ V, 1e-12)
    # without l2: the data part only
    H0 = K.hessian("multinomial", pb.X, pb.y, pb.theta, **{**pb.kwargs, "l2": 0.0}, backend="numpy")
    got0 = K.multinomial_gram_product(pb.X, c, P, V[:, 0], fit_intercept=pb.fit_intercept, backend=backend)
    assert_close(got0[:, 0], H0 @ V[:, 0], 1e-12)


def test_gram_diagonal_is_the_hessians_diagonal(mp, backend):
    pb = mp
    c, P = row_probabilities(pb)
    H0 = K.hessian("multinomial", pb.X, pb.y, pb.theta, **{**pb.kwargs, "l2": 0.0}, backend="numpy")
    got = K.multinomial_gram_diagonal(pb.X, c, P, fit_intercept=pb.fit_intercept, backend=backend)
    assert got.shape == (pb.p,)
    assert_close(got, np.diag(H0), 1e-12)


# ---------------------------------------------------------------------------
# Scoring passes against direct NumPy computations
# ---------------------------------------------------------------------------


def direct_scores(pb, R, M):
    """out_ij = sum_k R_ik xa_i . M[k-block, j], by einsum over the blocks."""
    Xa = augmented(pb.X, pb.fit_intercept)
    blocks = M.reshape(pb.n_classes, pb.q, -1)  # [k, :, j] = M[k q:(k + 1) q, j]
    return np.einsum("ik,iq,kqj->ij", R, Xa, blocks)


@pytest.mark.parametrize("order", ["F", "C"])
def test_scaled_row_products_are_the_direct_sums(mp, backend, order):
    pb = mp
    rng = np.random.default_rng(5)
    n = pb.X.shape[0]
    R, M = rng.standard_normal((n, pb.n_classes)), np.array(rng.standard_normal((pb.p, 6)), order=order)
    got = K.multinomial_scaled_row_products(pb.X, R, M, fit_intercept=pb.fit_intercept, backend=backend)
    assert got.shape == (n, 6)
    assert_close(got, direct_scores(pb, R, M), 1e-12)
    out = np.full((n, 6), np.nan)
    result = K.multinomial_scaled_row_products(
        pb.X, R, M, fit_intercept=pb.fit_intercept, out=out, backend=backend
    )
    assert result is out
    np.testing.assert_array_equal(out, got)


def test_top_k_scores_rank_the_direct_scores(mp, backend):
    pb = mp
    rng = np.random.default_rng(6)
    n = pb.X.shape[0]
    R, M = rng.standard_normal((n, pb.n_classes)), rng.standard_normal((pb.p, 4))
    S = direct_scores(pb, R, M)
    k = 5
    top = K.multinomial_top_k_scores(pb.X, R, M, k, fit_intercept=pb.fit_intercept, backend=backend)
    order = np.argsort(S, axis=0, kind="stable")
    helpful, harmful = order[:k].T, np.argsort(-S, axis=0, kind="stable")[:k].T
    assert top.helpful_rows.shape == top.harmful_rows.shape == (4, k)
    assert_same_ranking(top.helpful_rows, helpful, S, 1e-12, err_msg="helpful")
    assert_same_ranking(top.harmful_rows, harmful, S, 1e-12, err_msg="harmful")
    assert_close(top.helpful_scores, np.take_along_axis(S.T, helpful, 1), 1e-12)
    assert_close(top.harmful_scores, np.take_along_axis(S.T, harmful, 1), 1e-12)
    # k above n: every row, ranked
    every = K.multinomial_top_k_scores(pb.X, R, M, n + 5, fit_intercept=pb.fit_intercept, backend=backend)
    assert every.helpful_rows.shape == (4, n)


def test_top_k_ties_go_to_the_lower_row(backend):
    # identical rows give identical scores: the lower row ranks first, in both lists
    X = np.repeat(np.random.default_rng(1).standard_normal((5, 3)), 4, axis=0)
    R = np.repeat(np.random.default_rng(2).standard_normal((5, 3)), 4, axis=0)
    M = np.random.default_rng(3).standard_normal((12, 2))
    top = K.multinomial_top_k_scores(X, R, M, 20, backend=backend)
    for rows, scores in ((top.helpful_rows, top.helpful_scores), (top.harmful_rows, top.harmful_scores)):
        for j in range(2):
            for a in range(19):
                if scores[j, a] == scores[j, a + 1]:
                    assert rows[j, a] < rows[j, a + 1]


def test_row_quadratic_forms_are_the_kxk_blocks_of_the_inverse(mp, backend):
    pb = mp
    rng = np.random.default_rng(7)
    A = rng.standard_normal((pb.p + 2, pb.p))
    S = K.multinomial_row_quadratic_forms(
        pb.X, A, n_classes=pb.n_classes, fit_intercept=pb.fit_intercept, backend=backend
    )
    n = pb.X.shape[0]
    assert S.shape == (n, pb.n_classes, pb.n_classes)
    Xa = augmented(pb.X, pb.fit_intercept)
    Hinv = A.T @ A
    blocks = [np.kron(np.eye(pb.n_classes), x[:, None]) for x in Xa]  # (p, K): I_K kron xa_i
    expected = np.stack([B.T @ Hinv @ B for B in blocks])
    assert_close(S, expected, 1e-12)
    np.testing.assert_array_equal(S, np.swapaxes(S, 1, 2))


def multinomial_loss(eta, y):
    return logsumexp(eta, axis=-1) - np.take_along_axis(eta, y[..., None], axis=-1)[..., 0]


def test_loo_loss_change_is_the_difference_of_losses(mp, backend):
    pb = mp
    rng = np.random.default_rng(8)
    n, Kc, m = pb.X.shape[0], pb.n_classes, 3
    R = rng.standard_normal((n, Kc))
    U = 0.3 * rng.standard_normal((pb.p, m * Kc))
    y_test = rng.integers(0, Kc, m).astype(np.float64)
    eta_test = 2.0 * rng.standard_normal((m, Kc))
    got = K.multinomial_loo_loss_change(
        pb.X, R, U, y_test, eta_test, fit_intercept=pb.fit_intercept, backend=backend
    )
    assert got.shape == (n, m)
    delta = direct_scores(pb, R, U).reshape(n, m, Kc)  # delta_ijl, column j K + l
    yt = y_test.astype(int)
    expected = multinomial_loss(eta_test + delta, np.broadcast_to(yt, (n, m))) - multinomial_loss(
        eta_test, yt
    )
    # the direct difference has the rounding of the losses themselves
    assert_close(got, expected, 1e-9, atol_fraction=1e-13)
    out = np.full((n, m), np.nan)
    result = K.multinomial_loo_loss_change(
        pb.X, R, U, y_test, eta_test, fit_intercept=pb.fit_intercept, out=out, backend=backend
    )
    assert result is out
    np.testing.assert_array_equal(out, got)


def _expm1(x):
    """e^x - 1 in Decimal, by its series for small x (where x.exp() - 1 would cancel)."""
    if abs(x) >= Decimal("1e-3"):
        return x.exp() - 1
    total, term, k = Decimal(0), Decimal(1), 0
    while True:
        k += 1
        term = term * x / k  # x^k / k!
        if abs(term) <= abs(total) * Decimal(10) ** -75:
            return total
        total += term


def _log1p(x):
    """log(1 + x) in Decimal, by its series for small x (where (1 + x).ln() would lose digits)."""
    if abs(x) >= Decimal("1e-3"):
        return (1 + x).ln()
    total, power, k = Decimal(0), Decimal(1), 0
    while True:
        k += 1
        power *= x
        term = (power if k % 2 else -power) / k  # (-1)^(k+1) x^k / k
        if abs(term) <= abs(total) * Decimal(10) ** -75:
            return total
        total += term


def exact_loss_difference(eta, delta, y):
    """lse(eta + delta) - lse(eta) - delta_y for the double inputs, in 80-digit decimal arithmetic:
    the same value as log1p(sum_l P_l expm1(delta_l - delta_y)), which needs no more digits than the
    result has however small it is (a difference of two log-sum-exps of 3000 would need 400 more)."""
    with localcontext() as ctx:
        ctx.prec = 80
        e = [Decimal(float(v)) for v in eta]
        dl = [Decimal(float(v)) for v in delta]
        top = max(e)
        lse = top + sum((v - top).exp() for v in e).ln()
        s = sum((v - lse).exp() * _expm1(d - dl[y]) for v, d in zip(e, dl))
        return float(_log1p(s))


def loo_of_deltas(eta_test, y_test, deltas, backend):
    """multinomial_loo_loss_change with delta_j given exactly: one row x = 1, q = 1, R = e_0, so
    delta_jl = U[0, j K + l] (class 0's block) and every product is exact."""
    m, Kc = eta_test.shape
    U = np.zeros((Kc, m * Kc))
    U[0] = deltas.reshape(-1)
    R = np.zeros((1, Kc))
    R[0, 0] = 1.0
    return K.multinomial_loo_loss_change(
        np.ones((1, 1)), R, U, y_test, eta_test, fit_intercept=False, backend=backend
    )[0]


@pytest.mark.parametrize("size", [1e-10, 1e-6, 0.5, 5.0, 60.0, 1500.0], ids=lambda s: f"delta{s:g}")
def test_loo_loss_change_is_exact_to_rounding(backend, n_classes, size):
    rng = np.random.default_rng(int(size * 1e3) % 2**32 + n_classes)
    m = 60
    eta_test = 3.0 * rng.standard_normal((m, n_classes))
    eta_test[:10] *= 100.0  # saturated probabilities: P_y near 1 or near 0
    eta_test[10:14] = 1000.0 * rng.standard_normal((4, n_classes))
    y_test = rng.integers(0, n_classes, m)
    deltas = size * rng.standard_normal((m, n_classes))
    got = loo_of_deltas(eta_test, y_test.astype(np.float64), deltas, backend)
    exact = np.array([exact_loss_difference(eta_test[j], deltas[j], y_test[j]) for j in range(m)])
    # rounding of the inputs' first-order term sum_l P_l |x_l|, x_l = delta_l - delta_y: the
    # difference is that ill-conditioned in its inputs, so no method does better
    P = softmax(eta_test, axis=1)
    x = deltas - deltas[np.arange(m), y_test][:, None]
    floor = 4 * n_classes * np.finfo(float).eps * np.sum(P * np.abs(x), axis=1) + 1e-300  # and underflow
    assert np.all(np.abs(got - exact) <= 1e-13 * np.abs(exact) + floor), np.max(
        np.abs(got - exact) / (1e-13 * np.abs(exact) + floor)
    )
    if size == 1e-10:
        # the naive difference of log-sum-exps cancels: the test above would catch it
        naive = multinomial_loss(eta_test + deltas, y_test) - multinomial_loss(eta_test, y_test)
        assert np.max(np.abs(naive - exact) / np.maximum(np.abs(exact), 1e-300)) > 1e-7


# ---------------------------------------------------------------------------
# Stability: linear predictors of +-1000
# ---------------------------------------------------------------------------


def test_eta_of_a_thousand_gives_finite_results(backend, n_classes):
    pb = make_problem(n_classes, n=30, d=3, seed=2)
    theta = pb.theta * (1000.0 / np.abs(pb.theta).max())
    eta, value, d1, P = K.row_derivatives(
        "multinomial", pb.X, pb.y, theta, **_row_kwargs(pb), backend=backend
    )
    assert np.abs(eta).max() > 500
    for what, a in (("value", value), ("d1", d1), ("P", P)):
        assert np.isfinite(a).all(), what
    assert np.all((P >= 0) & (P <= 1))
    assert_close(P.sum(axis=1), np.ones(30), 1e-15)
    assert np.all(value >= 0)
    assert_close(value, multinomial_loss(eta, pb.y.astype(int)), 1e-13, atol_fraction=1e-16)
    value_total, gradient, hessian = K.evaluate(
        "multinomial", pb.X, pb.y, theta, **pb.kwargs, backend=backend
    )
    assert np.isfinite(value_total)
    assert np.isfinite(gradient).all()
    assert np.isfinite(hessian).all()
    n = pb.X.shape[0]
    HV = K.multinomial_gram_product(pb.X, np.full(n, 1.0 / n), P, np.ones((pb.p, 2)), backend=backend)
    assert np.isfinite(HV).all()
    change = K.multinomial_loo_loss_change(
        pb.X, d1, np.ones((pb.p, 2 * n_classes)), pb.y[:2], eta[:2], backend=backend
    )
    assert np.isfinite(change).all()


# ---------------------------------------------------------------------------
# The compiled backend against the NumPy reference, every layout
# ---------------------------------------------------------------------------


@pytest.mark.requires_core
def test_backends_agree_on_the_objective_passes(mp):
    pb = mp
    for kernel in (K.objective, K.gradient, K.hessian):
        got = kernel("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, backend="cpp")
        want = kernel("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, backend="numpy")
        assert_close(got, want, 1e-12, err_msg=kernel.__name__)
    got = K.row_derivatives("multinomial", pb.X, pb.y, pb.theta, **_row_kwargs(pb), backend="cpp")
    want = K.row_derivatives("multinomial", pb.X, pb.y, pb.theta, **_row_kwargs(pb), backend="numpy")
    for g, w, what in zip(got, want, ("eta", "value", "d1", "d2")):
        assert_close(g, w, 1e-12, err_msg=what)
    V = np.random.default_rng(4).standard_normal((pb.p, 3))
    got = K.hessian_vector_product("multinomial", pb.X, pb.y, pb.theta, V, **pb.kwargs, backend="cpp")
    want = K.hessian_vector_product("multinomial", pb.X, pb.y, pb.theta, V, **pb.kwargs, backend="numpy")
    assert_close(got, want, 1e-12)


@pytest.mark.requires_core
def test_backends_agree_on_the_gram_and_scoring_passes(mp):
    pb = mp
    rng = np.random.default_rng(10)
    n, Kc = pb.X.shape[0], pb.n_classes
    c, P = row_probabilities(pb)
    V = rng.standard_normal((pb.p, 4))
    R = rng.standard_normal((n, Kc))
    fi_ = pb.fit_intercept
    pairs = {
        "gram_product": lambda b: K.multinomial_gram_product(
            pb.X, c, P, V, l2=0.1, fit_intercept=fi_, backend=b
        ),
        "gram_diagonal": lambda b: K.multinomial_gram_diagonal(pb.X, c, P, fit_intercept=fi_, backend=b),
        "scaled_row_products": lambda b: K.multinomial_scaled_row_products(
            pb.X, R, V, fit_intercept=fi_, backend=b
        ),
        "row_quadratic_forms": lambda b: K.multinomial_row_quadratic_forms(
            pb.X, V.T, n_classes=Kc, fit_intercept=fi_, backend=b
        ),
        "loo_loss_change": lambda b: K.multinomial_loo_loss_change(
            pb.X, R, rng_U, pb.y[:3], eta_test, fit_intercept=fi_, backend=b
        ),
    }
    rng_U = 0.2 * np.random.default_rng(12).standard_normal((pb.p, 3 * Kc))
    eta_test = np.random.default_rng(13).standard_normal((3, Kc))
    for what, call in pairs.items():
        assert_close(call("cpp"), call("numpy"), 1e-12, err_msg=what)
    got = K.multinomial_top_k_scores(pb.X, R, V, 4, fit_intercept=fi_, backend="cpp")
    want = K.multinomial_top_k_scores(pb.X, R, V, 4, fit_intercept=fi_, backend="numpy")
    S = direct_scores(pb, R, V)
    assert_same_ranking(got.helpful_rows, want.helpful_rows, S, 1e-12)
    assert_same_ranking(got.harmful_rows, want.harmful_rows, S, 1e-12)
    assert_close(got.helpful_scores, want.helpful_scores, 1e-12)
    assert_close(got.harmful_scores, want.harmful_scores, 1e-12)


@pytest.mark.parametrize("layout", ["C", "csr64"])
@pytest.mark.requires_core
def test_kernels_working_in_panels_agree_with_the_reference(layout):
    # test columns in panels (the Gram product's of ~2 MiB, the scoring products' of 128), the
    # quadratic forms in sub-blocks of rows: sizes past one panel, against the reference
    rng = np.random.default_rng(14)
    sparse_X = layout.startswith("csr")
    n, d, Kc = (300, 2000, 3) if sparse_X else (1500, 5, 3)
    X = sp.random(n, d, density=0.005, format="csr", random_state=1) if sparse_X else make_X(layout, n, d, 1)
    if sparse_X:
        X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    q = d + 1
    p = Kc * q
    P = softmax(rng.standard_normal((n, Kc)), axis=1)
    c = rng.uniform(0.5, 2.0, n) / n
    R = rng.standard_normal((n, Kc))
    m = 50 if sparse_X else 100  # sparse: q K m = 300,150 doubles, past one 2^18 panel
    V = rng.standard_normal((p, m))
    calls = {
        "gram_product": lambda b: K.multinomial_gram_product(X, c, P, V, l2=0.1, backend=b),
        "scaled_row_products": lambda b: K.multinomial_scaled_row_products(X, R, rng_M, backend=b),
        "loo_loss_change": lambda b: K.multinomial_loo_loss_change(X, R, U, y_test, eta_test, backend=b),
    }
    rng_M = rng.standard_normal((p, 300))
    U = 0.1 * rng.standard_normal((p, 100 * Kc))
    y_test = rng.integers(0, Kc, 100).astype(np.float64)
    eta_test = rng.standard_normal((100, Kc))
    if not sparse_X:
        A = rng.standard_normal((2000, p))  # sub-blocks of 2^18 / (K r) = 43 rows
        calls["row_quadratic_forms"] = lambda b: K.multinomial_row_quadratic_forms(
            X, A, n_classes=Kc, backend=b
        )
    for what, call in calls.items():
        assert_close(call("cpp"), call("numpy"), 1e-12, err_msg=what)
    top = K.multinomial_top_k_scores(X, R, rng_M, 3, backend="cpp")
    want = K.multinomial_top_k_scores(X, R, rng_M, 3, backend="numpy")
    assert_close(top.harmful_scores, want.harmful_scores, 1e-12)


@pytest.mark.requires_core
def test_float32_and_sparse_x_give_the_dense_float64_results(n_classes):
    # float32 values convert exactly to float64, and CSR holds the same numbers: only the
    # order of the sums differs between layouts
    base = make_problem(n_classes, "csr32_f32", weighted=True)
    as_dense = dense(base.X)
    rng = np.random.default_rng(2)
    R, M = rng.standard_normal((40, n_classes)), rng.standard_normal((base.p, 3))
    for layout_X in (base.X, as_dense, as_dense.astype(np.float32), np.asfortranarray(as_dense)):
        kw = dict(weights=base.weights, l2=L2, n_classes=n_classes, backend="cpp")
        assert_close(
            K.hessian("multinomial", layout_X, base.y, base.theta, **kw),
            K.hessian("multinomial", as_dense, base.y, base.theta, **{**kw, "backend": "numpy"}),
            1e-12,
        )
        assert_close(
            K.multinomial_scaled_row_products(layout_X, R, M, backend="cpp"),
            K.multinomial_scaled_row_products(as_dense, R, M, backend="numpy"),
            1e-12,
        )


# ---------------------------------------------------------------------------
# Threads: bitwise the same result for any thread count
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["C", "F32", "csr32", "csr64"])
def large(request):
    return make_problem(4, request.param, True, True, n=5000, d=6, seed=3)


@pytest.mark.requires_core
def test_threaded_kernels_equal_serial_bitwise(large):
    pb = large
    n, Kc = pb.X.shape[0], pb.n_classes
    rng = np.random.default_rng(5)
    V = rng.standard_normal((pb.p, 3))
    R = rng.standard_normal((n, Kc))
    c, P = row_probabilities(pb)
    U = 0.1 * rng.standard_normal((pb.p, 2 * Kc))
    eta_test = rng.standard_normal((2, Kc))
    A = rng.standard_normal((pb.p, pb.p))

    def run(n_jobs):
        kw = dict(backend="cpp", n_jobs=n_jobs)
        top = K.multinomial_top_k_scores(pb.X, R, V, 7, **kw)
        return {
            "objective": K.objective("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, **kw),
            "gradient": K.gradient("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, **kw),
            "hessian": K.hessian("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, **kw),
            "hvp": K.hessian_vector_product("multinomial", pb.X, pb.y, pb.theta, V, **pb.kwargs, **kw),
            **dict(
                zip(
                    ("eta", "value", "d1", "d2"),
                    K.row_derivatives("multinomial", pb.X, pb.y, pb.theta, **_row_kwargs(pb), **kw),
                )
            ),
            "gram_product": K.multinomial_gram_product(pb.X, c, P, V, l2=0.1, **kw),
            "gram_diagonal": K.multinomial_gram_diagonal(pb.X, c, P, **kw),
            "scaled_row_products": K.multinomial_scaled_row_products(pb.X, R, V, **kw),
            "row_quadratic_forms": K.multinomial_row_quadratic_forms(pb.X, A, n_classes=Kc, **kw),
            "loo_loss_change": K.multinomial_loo_loss_change(pb.X, R, U, pb.y[:2], eta_test, **kw),
            **{f"top_k {name}": value for name, value in top._asdict().items()},
        }

    serial = run(1)
    for n_jobs in (2, 4):
        threaded = run(n_jobs)
        for what, value in serial.items():
            np.testing.assert_array_equal(threaded[what], value, err_msg=f"{what}, n_jobs={n_jobs}")
    # and right, not merely reproducible
    H = K.hessian("multinomial", pb.X, pb.y, pb.theta, **pb.kwargs, backend="numpy")
    assert_close(serial["hessian"], H, 1e-12)
    assert_close(serial["hvp"], H @ V, 1e-12)


# ---------------------------------------------------------------------------
# Validation: errors name the argument
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_problem_arguments_are_checked(backend_name):
    pb = make_problem(3)
    kw = dict(fit_intercept=True, backend=backend_name)
    with pytest.raises(InvalidArgumentValueError, match=r"^theta has 14 entries, expected 15"):
        K.gradient("multinomial", pb.X, pb.y, pb.theta[:-1], n_classes=3, **kw)
    y = pb.y.copy()
    y[4] = 3.0
    with pytest.raises(InvalidArgumentValueError, match=r"^y must hold integer class codes in 0\.\.2"):
        K.gradient("multinomial", pb.X, y, pb.theta, n_classes=3, **kw)
    y[4] = 1.5
    with pytest.raises(InvalidArgumentValueError, match=r"^y must hold integer class codes"):
        K.row_derivatives("multinomial", pb.X, y, pb.theta, n_classes=3, **kw)
    y[4] = -1.0
    with pytest.raises(InvalidArgumentValueError, match=r"^y must hold integer class codes"):
        K.hessian("multinomial", pb.X, y, pb.theta, n_classes=3, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^n_classes must be given"):
        K.gradient("multinomial", pb.X, pb.y, pb.theta, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^n_classes must be at least 2"):
        K.gradient("multinomial", pb.X, np.zeros(40), pb.theta[:5], n_classes=1, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^n_classes is for the multinomial loss only"):
        K.gradient("logistic", pb.X, (pb.y > 0).astype(float), np.zeros(5), n_classes=3, **kw)
    with pytest.raises(ValueError, match=r"^v must have shape \(15,\)"):
        K.hessian_vector_product("multinomial", pb.X, pb.y, pb.theta, np.ones(5), n_classes=3, **kw)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_per_row_arguments_are_checked(backend_name):
    pb = make_problem(3)
    c, P = row_probabilities(pb)
    n = 40
    kw = dict(backend=backend_name)
    V = np.ones((15, 2))
    with pytest.raises(InvalidArgumentValueError, match=r"^P must have shape \(40, K\)"):
        K.multinomial_gram_product(pb.X, c, P[:-1], V, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^P must have shape"):
        K.multinomial_gram_diagonal(pb.X, c, P[:, 0], **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^P rows must sum to 1"):
        K.multinomial_gram_product(pb.X, c, 0.5 * P, V, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^P must hold probabilities"):
        K.multinomial_gram_diagonal(pb.X, c, P - 0.5, **kw)
    with pytest.raises(ValueError, match=r"^V_block must have shape \(15,\) or \(15, m\)"):
        K.multinomial_gram_product(pb.X, c, P, np.ones((14, 2)), **kw)
    with pytest.raises(ValueError, match=r"^c \(curvature weights s_i loss''_i / n\) must be non-negative"):
        K.multinomial_gram_product(pb.X, -c, P, V, **kw)
    R = np.ones((n, 3))
    with pytest.raises(InvalidArgumentValueError, match=r"^R must have shape \(40, K\)"):
        K.multinomial_scaled_row_products(pb.X, R[:, :1], V, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^R contains NaN"):
        K.multinomial_top_k_scores(pb.X, np.full((n, 3), np.nan), V, 2, **kw)
    with pytest.raises(ValueError, match=r"^M must have shape \(15, m\)"):
        K.multinomial_scaled_row_products(pb.X, R, np.ones((10, 2)), **kw)
    with pytest.raises(ValueError, match=r"^out must be a writable C-contiguous"):
        K.multinomial_scaled_row_products(pb.X, R, V, out=np.empty((n, 2), order="F"), **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^A must have shape \(r, 15\)"):
        K.multinomial_row_quadratic_forms(pb.X, np.ones((15, 14)), n_classes=3, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^n_classes must be given"):
        K.multinomial_row_quadratic_forms(pb.X, np.ones((15, 15)), n_classes=None, **kw)
    U = np.ones((15, 6))
    eta_test = np.zeros((2, 3))
    with pytest.raises(InvalidArgumentValueError, match=r"^U must have m \* K = 6 columns"):
        K.multinomial_loo_loss_change(pb.X, R, U[:, :5], [0, 1], eta_test, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^y_test must hold integer class codes in 0\.\.2"):
        K.multinomial_loo_loss_change(pb.X, R, U, [0, 3], eta_test, **kw)
    with pytest.raises(InvalidArgumentValueError, match=r"^eta_test must have shape \(2, 3\)"):
        K.multinomial_loo_loss_change(pb.X, R, U, [0, 1], np.zeros((2, 4)), **kw)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_per_entry_functions_refuse_the_multinomial_loss(backend_name):
    with pytest.raises(ValueError, match=r"^loss_terms takes a per-entry loss"):
        K.loss_terms("multinomial", [0.0, 1.0], [0.2, 0.3], backend=backend_name)
    with pytest.raises(ValueError, match=r"^loss_difference takes a per-entry loss"):
        K.loss_difference("multinomial", [0.0], [0.2], [0.1], backend=backend_name)
    impl = get_backend(backend_name)
    with pytest.raises(ValueError, match=r"^loss_terms takes a per-entry loss"):
        impl.loss_terms(MULTINOMIAL, np.zeros(2), np.zeros(2))
    pb = make_problem(3)
    with pytest.raises(ValueError, match=r"^curvature_weights .*multinomial_gram_product"):
        impl.curvature_weights(pb.problem(), pb.theta)
    with pytest.raises(ValueError, match=r"^curvature_weights .*multinomial_gram_product"):
        K.curvature_weights("multinomial", pb.X, pb.y, pb.theta, backend=backend_name)


def test_problem_checks_n_classes():
    X, y = np.ones((3, 2)), np.zeros(3)
    with pytest.raises(ValueError, match=r"^n_classes must be >= 2 for the multinomial loss"):
        Problem(MULTINOMIAL, X, y)
    with pytest.raises(ValueError, match=r"^n_classes must be 1 for the per-entry logistic loss"):
        Problem(Loss("logistic"), X, y, n_classes=3)
    with pytest.raises(TypeError, match=r"^n_classes must be an integer"):
        Problem(MULTINOMIAL, X, y, n_classes=2.0)
    assert Problem(MULTINOMIAL, X, y, n_classes=np.int64(4)).n_params == 12
    assert Problem(Loss("squared"), X, y, fit_intercept=False).n_params == 2


def test_multinomial_loss_domain():
    assert MULTINOMIAL.kind == 4
    assert MULTINOMIAL.multiclass
    assert not Loss("poisson").multiclass
    MULTINOMIAL.check_targets(np.array([0.0, 2.0, 6.0]))
    with pytest.raises(InvalidArgumentValueError, match=r"^y must hold integer class codes >= 0"):
        MULTINOMIAL.check_targets(np.array([0.0, 0.5]))
    np.testing.assert_array_equal(loss_infimum(MULTINOMIAL, np.array([0.0, 3.0])), [0.0, 0.0])


@pytest.mark.requires_core
def test_the_core_refuses_what_would_index_outside_a_row():
    # the bindings check class codes and shapes themselves: a code of K or more, or a P with too
    # few columns, would read and write outside the (n, K) rows
    from fastinfluence import _core

    pb = make_problem(3)
    X, y, theta = pb.X, pb.y.copy(), pb.theta
    y[3] = 3.0
    with pytest.raises(ValueError, match=r"^y must hold class codes in 0\.\.2"):
        _core.multinomial_row_derivatives(X, y, theta, True, 3, 1)
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"^y must hold class codes"):
        _core.multinomial_evaluate(X, y, np.empty(0), theta, True, 0.0, 3, True, True, 1)
    with pytest.raises(ValueError, match=r"^theta must have length 15"):
        _core.multinomial_row_derivatives(X, pb.y, theta[:-1], True, 3, 1)
    with pytest.raises(ValueError, match=r"^n_classes must be >= 2"):
        _core.multinomial_row_derivatives(X, pb.y, theta[:5], True, 1, 1)
    with pytest.raises(ValueError, match=r"^V must have one row per parameter"):
        _core.multinomial_hessian_vector_product(
            X, pb.y, np.empty(0), theta, True, 0.0, 3, np.ones((5, 1)), 1
        )
    c, P = row_probabilities(pb)
    with pytest.raises(ValueError, match=r"^P must have shape \(40, K\)"):
        _core.multinomial_gram_diagonal(X, True, c, P[:-1], 1)
    with pytest.raises(ValueError, match=r"^V must have one row per parameter"):
        _core.multinomial_gram_product(X, True, c, P[:, :2], 0.0, np.ones((15, 1)), 1)
    with pytest.raises(ValueError, match=r"^M must have one row per parameter"):
        _core.multinomial_scaled_row_products(X, True, P, np.ones((14, 2)), None, 1)
    with pytest.raises(ValueError, match=r"^k must be >= 1"):
        _core.multinomial_top_k_scores(X, True, P, np.ones((15, 2)), 0, 1)
    with pytest.raises(ValueError, match=r"^A must be r x p"):
        _core.multinomial_row_quadratic_forms(X, True, np.ones((3, 14)), 3, 1)
    U, eta_test = np.ones((15, 6)), np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^y_test must hold class codes in 0\.\.2"):
        _core.multinomial_loo_loss_change(X, True, P, U, np.array([0.0, 5.0]), eta_test, None, 1)
    with pytest.raises(ValueError, match=r"^eta_test must have 3 columns"):
        _core.multinomial_loo_loss_change(X, True, P, U, np.array([0.0, 1.0]), np.zeros((2, 2)), None, 1)
    with pytest.raises(ValueError, match=r"^U must be p x \(m K\)"):
        _core.multinomial_loo_loss_change(X, True, P, U[:, :5], np.array([0.0, 1.0]), eta_test, None, 1)
    with pytest.raises(
        ValueError, match=r"^out must be a writable C-contiguous float64 array of shape \(40, 2\)"
    ):
        _core.multinomial_loo_loss_change(X, True, P, U, np.array([0.0, 1.0]), eta_test, np.empty((40, 3)), 1)


@pytest.mark.requires_core
def test_the_stubs_list_every_multinomial_binding_with_its_parameters():
    import ast
    import re
    from pathlib import Path

    from fastinfluence import _core

    stubs = ast.parse((Path(fi.__file__).parent / "_core.pyi").read_text())
    declared = {
        node.name: [a.arg for a in node.args.args] for node in stubs.body if isinstance(node, ast.FunctionDef)
    }
    bound = [name for name in dir(_core) if name.startswith("multinomial_")]
    assert len(bound) == 9
    for name in bound:
        signature = getattr(_core, name).__doc__.splitlines()[0]
        assert declared[name] == re.findall(r"[(,]\s*(\w+):", signature), name
