"""Multinomial logistic regression: the fit, the gauge rule, and every influence quantity against
finite differences of refits, exact refits, an independent pseudo-inverse and the binary model."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from conftest import assert_close, assert_same_ranking

import fastinfluence as fi
from fastinfluence import kernels as K
from fastinfluence import multinomial as MN
from fastinfluence import targets as T
from fastinfluence.backends import get_backend

L2 = 1e-2


def make_data(n=90, d=3, classes=3, seed=0, weighted=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + 0.2
    W = rng.standard_normal((classes, d))
    eta = X @ W.T + rng.standard_normal(classes) * 0.3
    P = np.exp(eta - eta.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(classes, p=row) for row in P])
    s = rng.uniform(0.5, 2.0, n) if weighted else None
    return X, y, s


@functools.cache
def fitted(classes=3, fit_intercept=True, l2=L2):
    X, y, s = make_data(classes=classes)
    X_test, y_test, _ = make_data(n=4, classes=classes, seed=1)
    labels = np.array(["ant", "bee", "cat", "dog", "eel"])[:classes]
    model = fi.MultinomialLogisticRegression(l2=l2, fit_intercept=fit_intercept, tol=1e-13)
    model.fit(X, labels[y], sample_weight=s)
    return model, X, labels[y], s, X_test, labels[y_test]


def refit(model, X, y, s):
    """theta minimising R (plus the gauge term, zero at the result) on the given weights."""
    from fastinfluence.fitting import minimise

    result = minimise(
        model.row_objective(X, model.encode_targets(y, X.shape[0]), s),
        model.theta_,
        tol=1e-13,
        max_iter=100,
        method="newton",
    )
    assert result["converged"], result["message"]
    return result["theta"]


def losses_at(model, theta, X, y):
    eta = np.column_stack([X @ row[:-1] + row[-1] for row in theta.reshape(model.n_classes_, -1)])
    codes = model.encode_targets(y, X.shape[0]).astype(int)
    top = eta.max(axis=1)
    lse = top + np.log(np.exp(eta - top[:, None]).sum(axis=1))
    return lse - eta[np.arange(len(codes)), codes]


def probabilities_at(model, theta, X):
    eta = np.column_stack([X @ row[:-1] + row[-1] for row in theta.reshape(model.n_classes_, -1)])
    P = np.exp(eta - eta.max(axis=1, keepdims=True))
    return P / P.sum(axis=1, keepdims=True)


def raw_hessian(model, X, y, s):
    """H of R (no gauge term) at the fitted theta, by the NumPy reference."""
    codes = model.encode_targets(y, X.shape[0])
    return K.hessian(
        "multinomial",
        X,
        codes,
        model.theta_,
        weights=s,
        l2=model.l2,
        n_classes=model.n_classes_,
        backend="numpy",
    )


# ---------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------


def test_fit_matches_scikit_learn_and_sums_to_zero():
    sklearn = pytest.importorskip("sklearn.linear_model")
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)  # raw units
    model = fi.MultinomialLogisticRegression(l2=1e-2).fit(X, y)
    assert model.converged_
    reference = sklearn.LogisticRegression(C=1 / (1e-2 * len(y)), tol=1e-12, max_iter=100_000).fit(X, y)
    assert_close(model.coef_, reference.coef_, 1e-4)
    assert_close(model.intercept_, reference.intercept_, 1e-4)
    np.testing.assert_allclose(model.intercept_.sum(), 0.0, atol=1e-10)
    np.testing.assert_allclose(model.coef_.sum(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-6)
    assert model.predict(X).tolist() == reference.predict(X).tolist()


def test_labels_of_any_kind_sorted_as_scikit_learn_sorts_them():
    X, y, _ = make_data(classes=3)
    for labels in (np.array([7, 2, 5]), np.array(["c", "a", "b"]), np.array([2.0, -1.0, 3.0])):
        model = fi.MultinomialLogisticRegression().fit(X, labels[y])
        assert model.classes_.tolist() == sorted(labels.tolist())
        assert set(model.predict(X).tolist()) <= set(labels.tolist())
    # numbers that are not whole are a continuous target, not classes (scikit-learn's rule)
    with pytest.raises(
        fi.InvalidArgumentError, match=r"^y must hold class labels .*continuous values such as 0\.5"
    ):
        fi.MultinomialLogisticRegression().fit(X, np.array([0.5, -1.0, 3.0])[y])
    model = fi.MultinomialLogisticRegression().fit(X, y == 1)
    assert model.classes_.tolist() == [False, True]
    with pytest.raises(fi.InvalidArgumentError, match="not among the model's classes") as info:
        fi.Influence(model, X, y == 1).loss(X[:2], np.array([3, 1]))
    assert info.value.argument == "y_test"
    with pytest.raises(fi.InvalidArgumentError, match="at least two classes"):
        fi.MultinomialLogisticRegression().fit(X, np.zeros(len(y)))


def test_a_class_without_rows_has_no_minimiser():
    X, y, s = make_data(classes=3)
    model = fi.MultinomialLogisticRegression(l2=L2, tol=1e-13).fit(X, y, sample_weight=s)
    weights = np.where(y == 2, 0.0, s)
    with pytest.warns(fi.ConvergenceWarning, match="no training rows"):
        fi.exact_loo(
            model, X, y, [0], X[:1], y[:1], sample_weight=np.where(np.arange(len(y)) == 0, s, weights)
        )


# ---------------------------------------------------------------------------
# The gauge: every influence quantity is invariant to the gauge term's scale
# ---------------------------------------------------------------------------


def _quantities(inf, X_test, y_test):
    return {
        "params": inf.params(),
        "loss": inf.loss(X_test, y_test),
        "self_influence": inf.self_influence(),
        "leverage": inf.leverage(),
        "loo_newton": inf.loo(X_test, y_test, "newton"),
        "loo_params_newton": inf.loo_params("newton"),
        "proba": inf.on(T.PredictProba(X_test)),
        "decision": inf.on(T.DecisionFunction(X_test)),
        "pert": inf.pert_loss(X_test, y_test, indices=[0, 5]),
        "leverage_blocks": inf.leverage_blocks(),
        "coefficient": inf.loo_on(T.Coefficient((inf.model.classes_[1].item(), 1)), "newton"),
        "spectrum": np.array(list(inf.hessian_spectrum().values())),
    }


@pytest.mark.parametrize(
    ("fit_intercept", "l2"),
    [(True, L2), (True, 0.0), (False, 0.0)],
    ids=["intercept", "l2=0", "l2=0-no-intercept"],
)
def test_influence_is_invariant_to_the_gauge_scale(monkeypatch, fit_intercept, l2):
    model, X, y, s, X_test, y_test = fitted(fit_intercept=fit_intercept, l2=l2)
    inf = fi.Influence(model, X, y, s)
    assert np.any(inf._engine.gauge.scale > 0)  # there is a gauge to scale
    expected = _quantities(inf, X_test, y_test)
    original = MN.Gauge.for_data.__func__
    for factor in (1e-3, 1e3):

        def scaled(cls, *args, factor=factor, **kwargs):
            gauge = original(cls, *args, **kwargs)
            return MN.Gauge(gauge.scale * factor, gauge.n_classes)

        monkeypatch.setattr(MN.Gauge, "for_data", classmethod(scaled))
        got = _quantities(fi.Influence(model, X, y, s), X_test, y_test)
        for name, value in expected.items():
            assert_close(got[name], value, 1e-8, atol_fraction=1e-10, err_msg=name)


@pytest.mark.parametrize("l2", [L2, 0.0], ids=["l2", "l2=0"])
def test_influence_equals_the_pseudo_inverse_of_the_singular_hessian(l2):
    # the sum-to-zero rule: (H + Gamma)^{-1} g = H^+ g for the gradients, which are orthogonal to the gauge
    model, X, y, s, X_test, y_test = fitted(l2=l2)
    inf = fi.Influence(model, X, y, s)
    H = raw_hessian(model, X, y, s)
    gauge_dimensions = 1 if l2 > 0 else X.shape[1] + 1  # the intercepts', or every coordinate's
    assert np.linalg.matrix_rank(H) == H.shape[0] - gauge_dimensions
    spectrum = inf.hessian_spectrum()  # of H on the complement of the gauge
    eig = np.linalg.eigvalsh(H)
    assert_close(spectrum["smallest_eigenvalue"], eig[gauge_dimensions], 1e-8)
    assert_close(spectrum["largest_eigenvalue"], eig[-1], 1e-10)
    H_plus = np.linalg.pinv(H, rcond=1e-12, hermitian=True)
    codes = model.encode_targets(y, X.shape[0])
    d1 = K.row_derivatives("multinomial", X, codes, model.theta_, n_classes=3, backend="numpy")[2]
    G = MN.rows_kron_transpose(X, d1, True)  # (p, n)
    assert_close(inf.params(), -(H_plus @ G).T, 1e-9)
    test_codes = model.encode_targets(y_test, X_test.shape[0])
    d1_test = K.row_derivatives(
        "multinomial", X_test, test_codes, model.theta_, n_classes=3, backend="numpy"
    )[2]
    G_test = MN.rows_kron_transpose(X_test, d1_test, True)
    assert_close(inf.loss(X_test, y_test), -G.T @ H_plus @ G_test, 1e-9)


# ---------------------------------------------------------------------------
# Against refits
# ---------------------------------------------------------------------------


def test_upweighting_matches_refits():
    model, X, y, s, X_test, y_test = fitted()
    n = X.shape[0]
    inf = fi.Influence(model, X, y, s)
    params, loss = inf.params(), inf.loss(X_test, y_test)
    proba = inf.on(T.PredictProba(X_test, class_="bee"))
    eps = 1e-5
    for i in (0, 33, 71):
        thetas = []
        for sign in (1.0, -1.0):
            weights = s.copy()
            weights[i] += sign * n * eps
            thetas.append(refit(model, X, y, weights))
        assert_close(params[i], (thetas[0] - thetas[1]) / (2 * eps), 1e-5, atol_fraction=1e-6)
        d_loss = (
            losses_at(model, thetas[0], X_test, y_test) - losses_at(model, thetas[1], X_test, y_test)
        ) / (2 * eps)
        assert_close(loss[i], d_loss, 1e-5, atol_fraction=1e-6)
        P0, P1 = (probabilities_at(model, t, X_test)[:, 1] for t in thetas)
        assert_close(proba[i], (P0 - P1) / (2 * eps), 1e-5, atol_fraction=1e-6)


def test_pert_loss_matches_refits_with_moved_training_point():
    model, X, y, s, X_test, y_test = fitted()
    n, d = X.shape
    pert = fi.Influence(model, X, y, s).pert_loss(X_test, y_test, indices=[4])
    h = 1e-5
    for k in range(d):
        values = []
        for sign in (1.0, -1.0):
            X_moved = X.copy()
            X_moved[4, k] += sign * h
            values.append(losses_at(model, refit(model, X_moved, y, s), X_test, y_test))
        # d loss_test / d x_ik = (s_i/n) I_pert[i, :, k]
        assert_close(s[4] / n * pert[0, :, k], (values[0] - values[1]) / (2 * h), 1e-5, atol_fraction=1e-6)


def test_newton_estimate_is_the_woodbury_step_and_near_the_refit():
    model, X, y, s, X_test, y_test = fitted()
    n = X.shape[0]
    inf = fi.Influence(model, X, y, s)
    rows = [2, 40, 77]
    newton = inf.loo_params("newton", rows)
    first = inf.loo_params("influence", rows)
    gauge = MN.Gauge.for_data(get_backend("numpy"), X, s, n, True, L2, 3)
    codes = model.encode_targets(y, n)
    for row, i in enumerate(rows):
        weights = s.copy()
        weights[i] = 0.0
        # one Newton step on the objective without row i, from theta, with its Hessian formed
        H = K.hessian(
            "multinomial", X, codes, model.theta_, weights=weights, l2=L2, n_classes=3, backend="numpy"
        )
        g = K.gradient(
            "multinomial", X, codes, model.theta_, weights=weights, l2=L2, n_classes=3, backend="numpy"
        )
        step = -np.linalg.solve(H + gauge.dense(), g)
        assert_close(newton[row], step, 1e-9)
        exact = refit(model, X, y, weights) - model.theta_
        assert np.linalg.norm(newton[row] - exact) < 0.5 * np.linalg.norm(first[row] - exact)
    change = inf.loo(X_test, y_test, "newton", rows)
    exact_change = fi.exact_loo(model, X, y, rows, X_test, y_test, s)
    assert_close(change, exact_change, 3e-2, atol_fraction=1e-2)


def test_two_classes_are_the_binary_model():
    # softmax over 2 classes with l2 is logistic regression with l2 / 2 on w = w_1 - w_0
    X, y, s = make_data(classes=2)
    X_test, y_test, _ = make_data(n=5, classes=2, seed=3)
    multi = fi.MultinomialLogisticRegression(l2=L2, tol=1e-13).fit(X, y, sample_weight=s)
    binary = fi.LogisticRegression(l2=L2 / 2, tol=1e-13).fit(X, y, sample_weight=s)
    blocks = multi.theta_.reshape(2, -1)
    assert_close(blocks[1] - blocks[0], binary.theta_, 1e-9)
    a, b = fi.Influence(multi, X, y, s), fi.Influence(binary, X, y, s)
    assert_close(a.loss(X_test, y_test), b.loss(X_test, y_test), 1e-8)
    assert_close(a.self_influence(), b.self_influence(), 1e-8)
    assert_close(a.leverage(), b.leverage(), 1e-8)
    assert_close(a.loo(X_test, y_test, "newton"), b.loo(X_test, y_test, "newton"), 1e-8)
    assert_close(a.on(T.PredictProba(X_test, class_=1)), b.on(T.PredictProba(X_test)), 1e-8)
    params = a.params().reshape(len(y), 2, -1)
    assert_close(params[:, 1] - params[:, 0], b.params(), 1e-8)


# ---------------------------------------------------------------------------
# Targets, top-k, backends, frames
# ---------------------------------------------------------------------------


def test_targets_per_class_and_their_newton_estimates():
    model, X, y, s, X_test, y_test = fitted()
    inf = fi.Influence(model, X, y, s)
    m = X_test.shape[0]
    every = inf.on(T.DecisionFunction(X_test))
    assert every.shape == (X.shape[0], m * 3)
    one = inf.on(T.DecisionFunction(X_test, class_="cat"))
    assert_close(one, every[:, 2::3], 1e-12)
    rows = [1, 50]
    delta = inf.loo_params("newton", rows)
    newton = inf.loo_on(T.PredictProba(X_test, class_=list(y_test)), "newton", rows)
    codes = model.encode_targets(y_test, m).astype(int)
    for r, dt in enumerate(delta):
        direct = probabilities_at(model, model.theta_ + dt, X_test) - probabilities_at(
            model, model.theta_, X_test
        )
        assert_close(newton[r], direct[np.arange(m), codes], 1e-9)
    mean = inf.on(T.MeanTestLoss(X_test, y_test))[:, 0]
    assert_close(mean, inf.loss(X_test, y_test).mean(axis=1), 1e-12)
    coefficient = inf.loo_on(T.Coefficient(("bee", "intercept"), ("cat", 1)), "newton")
    p_blocks = inf.loo_params("newton").reshape(X.shape[0], 3, -1)
    assert_close(coefficient[:, 0], p_blocks[:, 1, -1], 1e-12)
    assert_close(coefficient[:, 1], p_blocks[:, 2, 1], 1e-12)
    top = inf.top_k_on(T.PredictProba(X_test), 4)
    scores = inf.on(T.PredictProba(X_test))
    assert_same_ranking(top.helpful_indices, np.argsort(scores, axis=0, kind="stable")[:4].T, scores, 1e-9)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_backends_sparse_and_float32_agree(backend):
    # the compiled backend on every layout, and the NumPy one on CSR, against NumPy on dense
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, y, s = make_data(classes=4, d=5, seed=9)
    X[np.abs(X) < 0.5] = 0.0
    X_test, y_test, _ = make_data(n=3, classes=4, d=5, seed=10)
    model = fi.MultinomialLogisticRegression(l2=L2, backend="numpy", tol=1e-13).fit(X, y, sample_weight=s)
    reference = _quantities(fi.Influence(model, X, y, s, backend="numpy"), X_test, y_test)
    for data, rtol in ((scipy_sparse.csr_matrix(X), 1e-9), (X.astype(np.float32), 1e-9), (X, 1e-9)):
        if backend == "numpy" and not scipy_sparse.issparse(data):
            continue  # the reference itself
        data_model = fi.MultinomialLogisticRegression(l2=L2, backend=backend, tol=1e-13)
        data_model.fit(data, y, sample_weight=s)
        got = _quantities(fi.Influence(data_model, data, y, s, backend=backend), X_test, y_test)
        if data.dtype == np.float32:  # another problem (rounded X): compare with its own reference
            reference32 = _quantities(fi.Influence(data_model, data, y, s, backend="numpy"), X_test, y_test)
            for name in reference32:
                assert_close(got[name], reference32[name], rtol, atol_fraction=1e-10, err_msg=name)
            continue
        for name, value in reference.items():
            assert_close(got[name], value, rtol, atol_fraction=1e-10, err_msg=name)


def test_cg_agrees_with_direct_and_lissa_is_refused():
    model, X, y, s, X_test, y_test = fitted()
    direct = fi.Influence(model, X, y, s)
    inf = fi.Influence(model, X, y, s, solver="cg", solver_options={"tol": 1e-12})
    assert_close(inf.loss(X_test, y_test), direct.loss(X_test, y_test), 1e-8)
    assert_close(inf.self_influence(), direct.self_influence(), 1e-8)
    assert_close(inf.loo(X_test, y_test, "newton"), direct.loo(X_test, y_test, "newton"), 1e-8)
    with pytest.raises(ValueError, match="lissa"):
        fi.Influence(model, X, y, s, solver="lissa")


def test_frames_label_classes():
    pd = pytest.importorskip("pandas")
    model, X, y, s, X_test, y_test = fitted()
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    test_frame = pd.DataFrame(X_test, columns=frame.columns, index=["p", "q", "r", "t"])
    model = fi.MultinomialLogisticRegression(l2=L2).fit(frame, y, sample_weight=s)
    inf = fi.Influence(model, frame, y, s)
    params = inf.params()
    assert params.shape == (X.shape[0], 12)
    decision = inf.on(T.DecisionFunction(test_frame))
    assert decision.columns.names == ["test_row", "class"]
    assert decision.columns[0] == ("p", "ant")
    coefficient = inf.on(T.Coefficient(("cat", "b")))
    assert coefficient.columns.tolist() == [("cat", "b")]
    assert coefficient.columns.names == ["class", "feature"]
    top = inf.top_k_on(T.DecisionFunction(test_frame), 2)
    assert list(top.columns[:2]) == ["test_row", "class"]
    assert len(top) == 4 * 3 * 2 * 2  # (test point, class) x kind x rank
    assert set(top["kind"]) == {"lowers", "raises"}
    assert inf.loss(test_frame, y_test).columns.tolist() == ["p", "q", "r", "t"]


def test_leverage_blocks():
    model, X, y, s, _, _ = fitted()
    inf = fi.Influence(model, X, y, s)
    blocks = inf.leverage_blocks()
    assert blocks.shape == (X.shape[0], 3, 3)
    eig = np.linalg.eigvalsh(blocks)
    assert np.all(eig > -1e-12)
    assert np.all(eig < 1)
    assert_close(inf.leverage(), eig[:, -1], 1e-12)
    with pytest.raises(ValueError, match="multinomial"):
        fi.Influence(*_binary()).leverage_blocks()


def _binary():
    X, y, _ = make_data(classes=2)
    return fi.LogisticRegression().fit(X, y), X, y


def test_dask_fit_and_influence_agree_with_memory():
    da = pytest.importorskip("dask.array")
    fid = pytest.importorskip("fastinfluence.dask")
    model, X, y, s, X_test, y_test = fitted()
    chunks = da.from_array(X, chunks=((30, 1, 41, 18), -1))
    labels = da.from_array(y, chunks=((30, 1, 41, 18),))
    fitted_dask = fid.fit(fi.MultinomialLogisticRegression(l2=L2, tol=1e-13), chunks, labels, sample_weight=s)
    assert_close(fitted_dask.theta_, model.theta_, 1e-9)
    assert fitted_dask.classes_.tolist() == model.classes_.tolist()
    expected = fi.Influence(model, X, y, s)
    for solver in ("direct", "cg"):
        options = {"tol": 1e-12} if solver == "cg" else None
        inf = fid.Influence(model, chunks, labels, sample_weight=s, solver=solver, solver_options=options)
        with fi_threads():
            assert_close(inf.loss(X_test, y_test).compute(), expected.loss(X_test, y_test), 1e-8)
            assert_close(inf.self_influence().compute(), expected.self_influence(), 1e-8)
            got = inf.loo(X_test, y_test, "newton").compute()
            assert_close(got, expected.loo(X_test, y_test, "newton"), 1e-8)
            assert_close(inf.params(indices=[3, 7]).compute(), expected.params([3, 7]), 1e-8)
            top, want = inf.top_k(X_test, y_test, 3), expected.top_k(X_test, y_test, 3)
            scores = expected.loss(X_test, y_test)
            assert_same_ranking(top.helpful_indices, want.helpful_indices, scores, 1e-9)


def fi_threads():
    import dask

    return dask.config.set(scheduler="threads")


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"])
@pytest.mark.parametrize("setting", ["plain", "weighted", "balanced", "dict", "no_penalty"])
def test_from_sklearn_maps_multinomial_logistic_regression(solver, setting):
    linear_model = pytest.importorskip("sklearn.linear_model")
    X, y, s = make_data(n=120, classes=3, seed=4)
    labels = np.array(["ant", "bee", "cat"])[y]
    n = len(y)
    C = 1.0 if setting != "no_penalty" else np.inf
    class_weight = {"balanced": "balanced", "dict": {"ant": 2.0, "bee": 0.5, "cat": 1.0}}.get(setting)
    weights = s if setting in ("weighted", "balanced") else None
    est = linear_model.LogisticRegression(
        C=C, solver=solver, class_weight=class_weight, tol=1e-10, max_iter=20000
    )
    if setting == "no_penalty":
        X = X[:, :2]  # keep the classes overlapping: without a penalty they must not be separable
    with np.errstate(all="ignore"):
        est.fit(X, labels, sample_weight=weights)
    eta = est.decision_function(X)
    if not np.allclose(est.predict_proba(X), MN.softmax(eta), atol=1e-9):
        # newton-cholesky before scikit-learn 1.6 fits one-vs-rest: K binary models, refused
        with pytest.raises(ValueError, match="one-vs-rest"):
            fi.from_sklearn(est, X, labels, sample_weight=weights)
        return
    with warnings.catch_warnings():  # scikit-learn's solvers stop short of the optimum: polished
        warnings.simplefilter("ignore", fi.PolishingWarning)
        model = fi.from_sklearn(est, X, labels, sample_weight=weights)
    assert isinstance(model, fi.MultinomialLogisticRegression)
    assert model.classes_.tolist() == ["ant", "bee", "cat"]
    expected_l2 = 0.0 if setting == "no_penalty" else 1.0 / (C * n)
    assert model.l2 == pytest.approx(expected_l2)
    own = fi.MultinomialLogisticRegression(l2=expected_l2, tol=1e-12).fit(
        X, labels, sample_weight=model.sample_weight_
    )
    assert_close(model.theta_, own.theta_, 1e-7)
    np.testing.assert_allclose(model.predict_proba(X), est.predict_proba(X), atol=1e-4)
    inf = fi.Influence(model, X, labels, sample_weight=model.sample_weight_)
    assert_close(
        inf.loss(X[:3], labels[:3]),
        fi.Influence(own, X, labels, model.sample_weight_).loss(X[:3], labels[:3]),
        1e-6,
    )


def test_newton_cg_fit_reaches_the_same_optimum():
    X, y, s = make_data(classes=4, d=5, seed=11)
    dense = fi.MultinomialLogisticRegression(l2=L2, tol=1e-12).fit(X, y, sample_weight=s)
    cg = fi.MultinomialLogisticRegression(l2=L2, tol=1e-12, method="newton_cg").fit(X, y, sample_weight=s)
    assert cg.converged_
    assert_close(cg.theta_, dense.theta_, 1e-8)


def test_per_class_targets_match_refits():
    model, X, y, s, X_test, y_test = fitted()
    n = X.shape[0]
    inf = fi.Influence(model, X, y, s)
    decision = inf.on(T.DecisionFunction(X_test))  # columns j K + c
    mean_loss = inf.on(T.MeanTestLoss(X_test, y_test))[:, 0]
    coefficient = inf.on(T.Coefficient(("ant", 2)))[:, 0]
    eps = 1e-5
    for i in (5, 60):
        thetas = []
        for sign in (1.0, -1.0):
            weights = s.copy()
            weights[i] += sign * n * eps
            thetas.append(refit(model, X, y, weights))
        etas = [np.column_stack([X_test @ r[:-1] + r[-1] for r in t.reshape(3, -1)]) for t in thetas]
        assert_close(decision[i], ((etas[0] - etas[1]) / (2 * eps)).ravel(), 1e-5, atol_fraction=1e-6)
        means = [losses_at(model, t, X_test, y_test).mean() for t in thetas]
        assert_close(mean_loss[i], (means[0] - means[1]) / (2 * eps), 1e-5)
        assert_close(coefficient[i], (thetas[0][2] - thetas[1][2]) / (2 * eps), 1e-5)


def test_empty_selections_and_loss_second_derivative():
    model, X, y, s, X_test, y_test = fitted()
    inf = fi.Influence(model, X, y, s)
    assert fi.exact_loo(model, X, y, [], X_test, y_test, s).shape == (0, 4)
    assert fi.exact_loo_on(model, X, y, [], T.PredictProba(X_test), s).shape == (0, 4)
    assert inf.loo_on(T.PredictProba(X_test), "newton", indices=[]).shape == (0, 4)
    Q = inf.loss_second_derivative_
    P = model.predict_proba(X)
    assert_close(Q[7], np.diag(P[7]) - np.outer(P[7], P[7]), 1e-10)
    assert inf.loss_derivative_.shape == (X.shape[0], 3)


def test_per_chunk_dask_targets_and_a_class_without_weight():
    da = pytest.importorskip("dask.array")
    fid = pytest.importorskip("fastinfluence.dask")
    model, X, y, s, X_test, y_test = fitted()
    chunks = da.from_array(X, chunks=((30, 1, 41, 18), -1))
    expected = fi.Influence(model, X, y, s)
    inf = fid.Influence(model, chunks, y, sample_weight=s)
    for target in (T.PredictProba(X_test), T.MeanTestLoss(X_test, y_test), T.DecisionFunction(X_test, "cat")):
        for method in ("influence", "newton"):
            got = inf.loo_on(target, method, indices=[2, 50, 89]).compute(scheduler="threads")
            assert_close(got, expected.loo_on(target, method, indices=[2, 50, 89]), 1e-8)
    weights = np.where(y == "cat", 0.0, s)
    with pytest.warns(fi.ConvergenceWarning, match="no training rows"):
        dask_fit = fid.fit(fi.MultinomialLogisticRegression(l2=L2), chunks, y, sample_weight=weights)
    assert not dask_fit.converged_
