"""Influence quantities: formulas and signs on a hand-worked example, derivatives
against refits (upweighting and perturbing a training point), the compiled
backend against the NumPy reference, and threads against serial runs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HAVE_CORE, assert_close, make_data, make_model
from hypothesis import given, settings
from hypothesis import strategies as st

import fastinfluence as fi
from fastinfluence.losses import LOSS_NAMES

K = fi.kernels


def augmented(X, fit_intercept):
    X = np.asarray(X, dtype=np.float64)
    return np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X


def loss_at(model, X_test, y_test, theta):
    """Per-point test loss at theta (no weights, no penalty)."""
    y_int = model.encode_targets(y_test, X_test.shape[0])
    return K.row_derivatives(
        model.loss, X_test, y_int, theta, fit_intercept=model.fit_intercept, backend="numpy"
    )[1]


def refit(model, X, y, sample_weight):
    """theta minimising R on the given data, warm-started and to a tight tolerance."""
    y_int = model.encode_targets(y, X.shape[0])
    result = K.fit_newton(
        model.loss,
        X,
        y_int,
        theta0=model.theta_,
        weights=sample_weight,
        l2=model.l2,
        fit_intercept=model.fit_intercept,
        tol=1e-13,
        max_iter=100,
        backend="numpy",
    )
    assert result["converged"], result["message"]
    return result["theta"]


@pytest.fixture(scope="module", params=LOSS_NAMES)
def fitted(request):
    """(model, X, y, s, X_test, y_test) with non-uniform weights and an intercept."""
    name = request.param
    X, y, s = make_data(name, n=80, d=3, seed=31, weighted=True)
    X_test, y_test, _ = make_data(name, n=6, d=3, seed=32)
    model = make_model(name, tol=1e-13).fit(X, y, sample_weight=s)
    return model, X, y, s, X_test, y_test


# ---------------------------------------------------------------------------
# A hand-worked example: 1-D squared loss, no intercept
# ---------------------------------------------------------------------------


def test_hand_worked_example_squared_loss_1d():
    # R(w) = (1/n) sum_i (x_i w - y_i)^2 / 2 + (l2/2) w^2, so with A = sum x_i^2, B = sum x_i y_i:
    #   w* = B / (A + n l2),   H = A/n + l2,   g_i = (x_i w* - y_i) x_i,
    #   I_up,params(i) = -g_i / H,   I_up,loss(i, t) = -g_t g_i / H,   self-influence = -g_i^2 / H,
    #   leverage h_i = (1/n) x_i^2 / H.
    # Leaving i out: w_{-i} = (B - x_i y_i) / (A - x_i^2 + n l2), and with D = A + n l2 = n H
    #   w_{-i} - w* = [-x_i y_i D + B x_i^2] / (D (D - x_i^2)) = g_i / (D - x_i^2)
    #              = (1/n) (g_i / H) / (1 - h_i)          (the Newton estimate: exact here),
    # while the influence (first-order) estimate is (1/n) g_i / H = -(1/n) I_up,params(i).
    x = np.array([1.0, 2.0, -1.0, 0.5])
    y = np.array([2.0, 1.0, 0.5, -1.0])
    x_t, y_t = np.array([1.5, -2.0]), np.array([0.0, 1.0])
    n, l2 = x.size, 0.5
    A, B = x @ x, x @ y
    w = B / (A + n * l2)
    H = A / n + l2
    g = (x * w - y) * x
    g_t = (x_t * w - y_t) * x_t
    h = x**2 / n / H
    w_loo = (B - x * y) / (A - x**2 + n * l2)
    np.testing.assert_allclose(w_loo - w, (g / H / n) / (1 - h), rtol=1e-14)  # the algebra above

    model = fi.LinearRegression(l2=l2, fit_intercept=False).fit(x[:, None], y)
    np.testing.assert_allclose(model.coef_, [w], rtol=1e-14)
    inf = fi.Influence(model, x[:, None], y)
    np.testing.assert_allclose(inf.hessian_, [[H]], rtol=1e-14)
    np.testing.assert_allclose(inf.params(), (-g / H)[:, None], rtol=1e-13)
    np.testing.assert_allclose(inf.loss(x_t[:, None], y_t), -np.outer(g, g_t) / H, rtol=1e-13)
    np.testing.assert_allclose(inf.self_influence(), -(g**2) / H, rtol=1e-13)
    np.testing.assert_allclose(inf.leverage(), h, rtol=1e-13)
    np.testing.assert_allclose(inf.loo_params("influence"), (g / H / n)[:, None], rtol=1e-13)
    np.testing.assert_allclose(inf.loo_params("newton"), (w_loo - w)[:, None], rtol=1e-12)
    exact_change = 0.5 * (np.outer(w_loo, x_t) - y_t) ** 2 - 0.5 * (w * x_t - y_t) ** 2
    np.testing.assert_allclose(inf.loo(x_t[:, None], y_t, method="newton"), exact_change, rtol=1e-12)
    np.testing.assert_allclose(
        inf.loo(x_t[:, None], y_t, method="influence"), np.outer(g, g_t) / H / n, rtol=1e-13
    )
    np.testing.assert_allclose(
        fi.exact_loo(model, x[:, None], y, None, x_t[:, None], y_t), exact_change, rtol=1e-10
    )
    # I_pert,loss(i, t) = -g_t H^{-1} (loss''_i x_i w + loss'_i), loss'' = 1, loss'_i = x_i w - y_i
    np.testing.assert_allclose(
        inf.pert_loss(x_t[:, None], y_t)[:, :, 0], -np.outer(x * w + (x * w - y), g_t) / H, rtol=1e-13
    )


# ---------------------------------------------------------------------------
# The formulas, against dense linear algebra in the test
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_quantities_match_dense_formulas(fitted, damping):
    model, X, y, s, X_test, y_test = fitted
    n, d = X.shape
    inf = fi.Influence(model, X, y, s, damping=damping)
    y_int = model.encode_targets(y, n)
    yt_int = model.encode_targets(y_test, X_test.shape[0])
    kw = dict(fit_intercept=True, backend="numpy")
    _, _, d1, d2 = K.row_derivatives(model.loss, X, y_int, model.theta_, **kw)
    _, _, d1_t, _ = K.row_derivatives(model.loss, X_test, yt_int, model.theta_, **kw)
    H = K.hessian(model.loss, X, y_int, model.theta_, weights=s, l2=model.l2, **kw)
    assert_close(inf.hessian_, H, 1e-10)
    Hd_inv = np.linalg.inv(H + damping * np.eye(d + 1))
    Xa, Xa_t = augmented(X, True), augmented(X_test, True)
    G, G_t = d1[:, None] * Xa, d1_t[:, None] * Xa_t  # g_i = loss'_i xa_i, as rows
    assert_close(inf.params(), -G @ Hd_inv, 1e-9)
    assert_close(inf.loss(X_test, y_test), -G @ Hd_inv @ G_t.T, 1e-9)
    assert_close(inf.self_influence(), -np.einsum("ij,jk,ik->i", G, Hd_inv, G), 1e-9)
    h = s / n * d2 * np.einsum("ij,jk,ik->i", Xa, Hd_inv, Xa)
    assert_close(inf.leverage(), h, 1e-9)
    delta_inf = (s / n)[:, None] * G @ Hd_inv  # theta_{-i} - theta ~ (s_i/n) H^{-1} g_i
    assert_close(inf.loo_params("influence"), delta_inf, 1e-9)
    assert_close(inf.loo_params("newton"), delta_inf / (1 - h)[:, None], 1e-9)
    assert_close(inf.loo(X_test, y_test, "influence"), (s / n)[:, None] * (G @ Hd_inv @ G_t.T), 1e-9)
    base = loss_at(model, X_test, y_test, model.theta_)
    newton = np.array(
        [loss_at(model, X_test, y_test, model.theta_ + dt) - base for dt in delta_inf / (1 - h)[:, None]]
    )
    assert_close(inf.loo(X_test, y_test, "newton"), newton, 1e-7)
    # I_pert,loss(i, j) = -g_j^T H^{-1} (loss''_i xa_i w^T + loss'_i [I_d; 0])
    w = model.coef_
    V = Hd_inv @ G_t.T  # (p, m)
    pert = np.empty((n, X_test.shape[0], d))
    for i in range(n):
        cross = d2[i] * np.outer(Xa[i], w) + d1[i] * np.vstack([np.eye(d), np.zeros((1, d))])
        pert[i] = -(V.T @ cross)
    assert_close(inf.pert_loss(X_test, y_test), pert, 1e-9)


def test_indices_select_rows(fitted):
    model, X, y, s, X_test, y_test = fitted
    inf = fi.Influence(model, X, y, s)
    idx = np.array([5, 0, 77, 5])
    # (not bitwise: the selected rows sit at other offsets of the kernels' SIMD blocks)
    assert_close(inf.params(idx), inf.params()[idx], 1e-13)
    assert_close(inf.loss(X_test, y_test, idx), inf.loss(X_test, y_test)[idx], 1e-13)
    assert_close(inf.self_influence(idx), inf.self_influence()[idx], 1e-13)
    assert_close(inf.leverage(idx), inf.leverage()[idx], 1e-13)
    assert_close(inf.pert_loss(X_test, y_test, idx), inf.pert_loss(X_test, y_test)[idx], 1e-13)
    for method in ("influence", "newton"):
        assert_close(inf.loo(X_test, y_test, method, idx), inf.loo(X_test, y_test, method)[idx], 1e-13)
        assert_close(inf.loo_params(method, idx), inf.loo_params(method)[idx], 1e-13)
    assert inf.params(3).shape == (1, 4)
    assert inf.loss(X_test, y_test, []).shape == (0, X_test.shape[0])
    assert inf.params(np.array([], dtype=np.int64)).shape == (0, 4)


def test_signs_and_ranges(fitted):
    model, X, y, s, _X_test, _y_test = fitted
    inf = fi.Influence(model, X, y, s)
    assert np.all(inf.self_influence() < 0)
    h = inf.leverage()
    assert np.all(h > 0)
    assert np.all(h < 1)
    # a training point used as its own test point: upweighting it lowers its loss (helpful)
    for i in (0, 17, 42):
        scores = inf.loss(X[i : i + 1], y[i : i + 1])
        assert scores[i, 0] < 0
        assert_close(scores[i, 0], inf.self_influence([i])[0], 1e-12)


# ---------------------------------------------------------------------------
# Derivatives against refits
# ---------------------------------------------------------------------------


def test_upweighting_matches_refits(fitted):
    # R + eps * loss(z_i) = (1/n) sum_j s_j loss_j + eps loss_i: the weight of z_i
    # becomes s_i + n eps. d theta / d eps = I_up,params(z_i) and
    # d loss(z_test, theta) / d eps = I_up,loss(z_i, z_test): central differences in eps.
    model, X, y, s, X_test, y_test = fitted
    n = X.shape[0]
    inf = fi.Influence(model, X, y, s)
    params, scores = inf.params(), inf.loss(X_test, y_test)
    eps = 1e-4
    for i in (0, 9, 63):
        thetas = []
        for sign in (1.0, -1.0):
            weights = s.copy()
            weights[i] += sign * n * eps
            thetas.append(refit(model, X, y, weights))
        d_theta = (thetas[0] - thetas[1]) / (2 * eps)
        d_loss = (loss_at(model, X_test, y_test, thetas[0]) - loss_at(model, X_test, y_test, thetas[1])) / (
            2 * eps
        )
        assert_close(params[i], d_theta, 1e-5, atol_fraction=1e-6)
        assert_close(scores[i], d_loss, 1e-5, atol_fraction=1e-6)


def test_pert_loss_matches_refits_with_moved_training_point(fitted):
    # Moving x_i to x_i + delta changes R by (s_i/n) [loss(x_i + delta, y_i) - loss(x_i, y_i)],
    # so d theta / d delta = -(s_i/n) H^{-1} grad_x grad_theta loss(z_i) and
    # d loss(z_test, theta) / d delta_k = (s_i/n) I_pert,loss(z_i, z_test)[k].
    model, X, y, s, X_test, y_test = fitted
    n, d = X.shape
    inf = fi.Influence(model, X, y, s)
    pert = inf.pert_loss(X_test, y_test)
    h = 1e-4
    for i in (2, 40):
        for k in range(d):
            losses = []
            for sign in (1.0, -1.0):
                X_moved = X.copy()
                X_moved[i, k] += sign * h
                losses.append(loss_at(model, X_test, y_test, refit(model, X_moved, y, s)))
            fd = (losses[0] - losses[1]) / (2 * h)
            assert_close(s[i] / n * pert[i, :, k], fd, 1e-5, atol_fraction=1e-6, err_msg=f"i={i} k={k}")


def test_pert_loss_matches_mixed_derivative_by_finite_differences(fitted):
    # grad_x grad_theta loss(z_i) by central differences in x of the per-row gradient
    # g(x) = loss'(y_i, xa.theta) xa, contracted with -H^{-1} g_test.
    model, X, y, s, X_test, y_test = fitted
    n, d = X.shape
    inf = fi.Influence(model, X, y, s)
    pert = inf.pert_loss(X_test, y_test)
    y_int = model.encode_targets(y, n)
    yt_int = model.encode_targets(y_test, X_test.shape[0])
    _, _, d1_t, _ = K.row_derivatives(model.loss, X_test, yt_int, model.theta_, backend="numpy")
    V = np.linalg.solve(inf.hessian_, (d1_t[:, None] * augmented(X_test, True)).T)  # H^{-1} G_test^T

    def row_gradient(x, label):
        xa = np.r_[x, 1.0]
        _, d1, _ = K.loss_terms(model.loss, [label], [xa @ model.theta_], backend="numpy")
        return d1[0] * xa

    h = 1e-5
    for i in (1, 30, 79):
        cross = np.empty((d + 1, d))
        for k in range(d):
            e = np.zeros(d)
            e[k] = h
            cross[:, k] = (row_gradient(X[i] + e, y_int[i]) - row_gradient(X[i] - e, y_int[i])) / (2 * h)
        assert_close(pert[i], -(V.T @ cross), 1e-6, atol_fraction=1e-8)


# ---------------------------------------------------------------------------
# The compiled backend against the NumPy reference, every quantity
# ---------------------------------------------------------------------------


def test_backends_agree_on_every_influence_quantity(problem, backend_pair):
    pb = problem
    cpp, ref = backend_pair
    model = make_model(pb.name, fit_intercept=pb.fit_intercept).fit(pb.X, pb.y, sample_weight=pb.weights)
    X_test, y_test, _ = make_data(
        pb.name,
        n=7,
        d=pb.X.shape[1],
        seed=8,
        dtype=pb.X.dtype,
        order="F" if pb.X.flags.f_contiguous and not pb.X.flags.c_contiguous else "C",
    )
    got = fi.Influence(model, pb.X, pb.y, pb.weights, backend=cpp)
    want = fi.Influence(model, pb.X, pb.y, pb.weights, backend=ref)
    assert_close(got.hessian_, want.hessian_, 1e-9, err_msg="hessian_")
    for what, compute in {
        "params": lambda inf: inf.params(),
        "loss": lambda inf: inf.loss(X_test, y_test),
        "self_influence": lambda inf: inf.self_influence(),
        "leverage": lambda inf: inf.leverage(),
        "pert_loss": lambda inf: inf.pert_loss(X_test, y_test),
        "loo influence": lambda inf: inf.loo(X_test, y_test, method="influence"),
        "loo newton": lambda inf: inf.loo(X_test, y_test, method="newton"),
        "loo_params influence": lambda inf: inf.loo_params(method="influence"),
        "loo_params newton": lambda inf: inf.loo_params(method="newton"),
        "loss subset": lambda inf: inf.loss(X_test, y_test, indices=[3, 1, 59]),
    }.items():
        a, b = compute(got), compute(want)
        assert a.shape == b.shape, what
        assert_close(a, b, 1e-9, err_msg=what)


def test_backends_agree_on_fit(problem, backend_pair):
    pb = problem
    cpp, ref = backend_pair
    a = make_model(pb.name, fit_intercept=pb.fit_intercept, backend=cpp).fit(pb.X, pb.y, pb.weights)
    b = make_model(pb.name, fit_intercept=pb.fit_intercept, backend=ref).fit(pb.X, pb.y, pb.weights)
    assert_close(a.theta_, b.theta_, 1e-9)


# ---------------------------------------------------------------------------
# Threads, permutations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["logistic", "poisson"])
def test_threaded_influence_equals_serial_bitwise(name):
    X, y, s = make_data(name, n=5000, d=8, seed=33, weighted=True)
    X_test, y_test, _ = make_data(name, n=20, d=8, seed=34)
    model = make_model(name, n_jobs=1).fit(X, y, s)
    results = {}
    for n_jobs in (1, 2):
        inf = fi.Influence(model, X, y, s, n_jobs=n_jobs)
        results[n_jobs] = dict(
            hessian=inf.hessian_,
            loss=inf.loss(X_test, y_test),
            params=inf.params(),
            loo_influence=inf.loo(X_test, y_test, "influence"),
            loo_params=inf.loo_params("influence"),
            pert_loss=inf.pert_loss(X_test[:3], y_test[:3]),
        )
    for what in results[1]:
        np.testing.assert_array_equal(results[2][what], results[1][what], err_msg=what)


def test_quadratic_forms_are_reproducible():
    # Regression: row_quadratic_forms (kernels.hpp) reduced straight into the output buffer,
    # so the buffer's address (mod 64) chose SIMD/FMA or scalar code for the leading rows and
    # self_influence, leverage and the Newton LOO changed by ~1 ulp between calls and n_jobs.
    X, y, s = make_data("logistic", n=5000, d=8, seed=33, weighted=True)
    A = np.asfortranarray(np.tril(np.random.default_rng(0).standard_normal((9, 9))))
    # keeping every result alive puts each output buffer at a new address (16 mod 64 apart)
    results = [K.row_quadratic_forms(X, A, n_jobs=n_jobs) for n_jobs in (1, 2) * 4]
    for q in results[1:]:
        np.testing.assert_array_equal(q, results[0])
    X_test, y_test, _ = make_data("logistic", n=20, d=8, seed=34)
    model = make_model("logistic", n_jobs=1).fit(X, y, s)
    serial, threaded = (fi.Influence(model, X, y, s, n_jobs=n_jobs) for n_jobs in (1, 2))
    kept = []
    for _ in range(4):
        for compute in (
            lambda inf: inf.self_influence(),
            lambda inf: inf.leverage(),
            lambda inf: inf.loo(X_test, y_test, "newton"),
            lambda inf: inf.loo_params("newton"),
        ):
            kept.append((compute(serial), compute(threaded)))
            np.testing.assert_array_equal(kept[-1][1], kept[-1][0])


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(LOSS_NAMES), weighted=st.booleans())
def test_influence_loss_is_permutation_equivariant(seed, name, weighted):
    # Reordering the training set reorders the rows of I_up,loss and changes nothing else.
    X, y, s = make_data(name, n=30, d=3, seed=seed, weighted=weighted)
    X_test, y_test, _ = make_data(name, n=4, d=3, seed=seed + 1)
    perm = np.random.default_rng(seed).permutation(30)
    s_perm = None if s is None else s[perm]
    model = make_model(name).fit(X, y, s)
    model_perm = make_model(name).fit(X[perm], y[perm], s_perm)
    assert_close(model_perm.theta_, model.theta_, 1e-9)
    scores = fi.Influence(model, X, y, s).loss(X_test, y_test)
    scores_perm = fi.Influence(model_perm, X[perm], y[perm], s_perm).loss(X_test, y_test)
    assert_close(scores_perm, scores[perm], 1e-8)


# ---------------------------------------------------------------------------
# Guarding the assumptions
# ---------------------------------------------------------------------------


def test_not_at_optimum_warns(fitted):
    model, X, y, s, _X_test, _y_test = fitted
    with pytest.warns(fi.NotAtOptimumWarning, match="not at the optimum"):
        fi.Influence(model, X, y)  # fitted with weights s, given none
    X_other = X.copy()
    X_other[0] += 1.0
    with pytest.warns(fi.NotAtOptimumWarning, match="same X, y and sample_weight"):
        fi.Influence(model, X_other, y, s)


def test_damping_shifts_the_hessian(fitted):
    model, X, y, s, _, _ = fitted
    undamped = fi.Influence(model, X, y, s)
    damped = fi.Influence(model, X, y, s, damping=10.0)
    np.testing.assert_array_equal(damped.hessian_, undamped.hessian_)  # hessian_ is without damping
    # a large damping shrinks every H^{-1} quantity
    assert np.all(np.abs(damped.self_influence()) < np.abs(undamped.self_influence()))


def test_repr_says_what_it_holds():
    X, y, s = make_data("logistic", n=50, d=3, seed=3, weighted=True)
    model = make_model("logistic").fit(X, y, sample_weight=s)
    inf = fi.Influence(model, X, y, s, damping=1e-6, backend="numpy")
    assert repr(inf) == (
        "Influence(model=LogisticRegression(l2=0.01), n=50, p=4, solver='direct', damping=1e-06, "
        "backend='numpy')"
    )
    assert repr(fi.Influence(model, X, y, s, solver="cg")).startswith(
        "Influence(model=LogisticRegression(l2=0.01), n=50, p=4, solver='cg', damping=0.0"
    )
    labels = np.digitize(X[:, 0], [-0.5, 0.5])
    multi = fi.MultinomialLogisticRegression(l2=0.01, fit_intercept=False).fit(X, labels)
    runs = "cpp" if HAVE_CORE else "numpy"  # the default, "auto", is named by what it runs
    assert repr(fi.Influence(multi, X, labels)) == (
        "Influence(model=MultinomialLogisticRegression(l2=0.01, fit_intercept=False), n=50, p=9, "
        f"classes=3, solver='direct', damping=0.0, backend='{runs}')"
    )
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    labelled = fi.Influence(model.fit(frame, y, s), frame, y, s)
    assert repr(labelled).endswith(f"backend='{runs}', labelled=True)")
