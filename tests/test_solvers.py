"""Matrix-free solvers (CG, LiSSA, auto) against the direct Cholesky solve, and their diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import fastinfluence as fi
from fastinfluence import solvers
from fastinfluence.backends import get_backend

BACKENDS = ["cpp", "numpy"]


@pytest.fixture(scope="module")
def problem():
    """A fitted logistic model on dense and sparse copies of the same data, with test points."""
    rng = np.random.default_rng(3)
    n, d = 1500, 25
    X = sp.random(n, d, density=0.3, format="csr", random_state=4) * 2.0
    w = rng.standard_normal(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w)))).astype(int)
    X_test = sp.random(12, d, density=0.3, format="csr", random_state=5) * 2.0
    y_test = (rng.random(12) < 0.5).astype(int)
    model = fi.LogisticRegression(l2=1e-2).fit(X, y)
    return model, X, y, X_test, y_test


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_cg_matches_direct(problem, backend, layout):
    model, X, y, X_test, y_test = problem
    X_in = X.toarray() if layout == "dense" else X
    direct = fi.Influence(model, X_in, y, backend=backend)
    cg = fi.Influence(model, X_in, y, solver="cg", backend=backend, solver_options={"tol": 1e-12})
    expected = direct.loss(X_test, y_test)
    np.testing.assert_allclose(
        cg.loss(X_test, y_test), expected, rtol=1e-8, atol=1e-10 * np.abs(expected).max()
    )
    np.testing.assert_allclose(
        cg.params(indices=[0, 5, 7]), direct.params(indices=[0, 5, 7]), rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(cg.self_influence(), direct.self_influence(), rtol=1e-7)
    np.testing.assert_allclose(
        cg.loo(X_test, y_test, method="newton"),
        direct.loo(X_test, y_test, method="newton"),
        rtol=1e-6,
        atol=1e-12,
    )
    assert cg.hessian_ is None  # never formed
    assert np.all(cg.solver_.residual_ <= 1e-12)
    assert np.all(cg.solver_.iterations_ >= 1)


def test_cg_warm_start_and_preconditioner(problem):
    model, X, y, _X_test, _y_test = problem
    inf = fi.Influence(model, X, y)
    c = inf._operator.c
    p = inf.n_params_
    B = np.random.default_rng(0).standard_normal((p, 3))
    exact = inf.solver_.solve(B)
    V, it_plain, res = fi.kernels.cg_solve(X, c, B, l2=model.l2, tol=1e-11, precondition=False)
    V2, it_jacobi, _ = fi.kernels.cg_solve(X, c, B, l2=model.l2, tol=1e-11)
    np.testing.assert_allclose(V, exact, rtol=1e-8)
    np.testing.assert_allclose(V2, exact, rtol=1e-8)
    assert np.all(res <= 1e-11)
    # starting at the answer: converged at once
    _, it_warm, _ = fi.kernels.cg_solve(X, c, B, l2=model.l2, tol=1e-8, x0=exact)
    assert np.all(it_warm <= 1)
    assert it_jacobi.max() <= it_plain.max() + 2  # the preconditioner does not hurt on scaled data


def test_cg_unconverged_warns_with_spectrum_and_damping(problem):
    model, X, y, X_test, y_test = problem
    inf = fi.Influence(model, X, y, solver="cg", solver_options={"max_iter": 2, "tol": 1e-14})
    with pytest.warns(fi.ConvergenceWarning, match=r"CG did not converge.*condition number.*damping="):
        inf.loss(X_test, y_test)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lissa_converges_with_full_batches_and_is_seed_reproducible(problem, backend):
    model, X, y, X_test, y_test = problem
    n = X.shape[0]
    direct = fi.Influence(model, X, y).loss(X_test, y_test)
    # batch_size >= n uses every row: the deterministic Neumann series: it converges to the exact solve
    # error after depth j ~ (1 - 1/(1.1 kappa))^j: depth 30 * 1.1 kappa gives ~1e-13
    kappa = fi.Influence(model, X, y).hessian_spectrum()["condition_number"]
    depth = int(33 * kappa) + 1
    inf = fi.Influence(
        model,
        X,
        y,
        solver="lissa",
        backend=backend,
        solver_options={"batch_size": n, "depth": depth, "seed": 1},
    )
    np.testing.assert_allclose(inf.loss(X_test, y_test), direct, rtol=1e-6, atol=1e-9 * np.abs(direct).max())
    assert inf.solver_.scale > 0  # chosen from the largest eigenvalue


@pytest.mark.requires_core
def test_lissa_same_for_any_thread_count_and_backend(problem):
    model, X, y, X_test, y_test = problem
    options = {"batch_size": 100, "depth": 200, "seed": 7, "warn_residual": np.inf}
    results = [
        fi.Influence(
            model, X, y, solver="lissa", backend=backend, n_jobs=n_jobs, solver_options=options
        ).loss(X_test, y_test)
        for backend, n_jobs in [("cpp", 1), ("cpp", 2), ("numpy", None)]
    ]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], results[2], rtol=1e-9, atol=1e-12 * np.abs(results[2]).max())
    other_seed = fi.Influence(model, X, y, solver="lissa", solver_options={**options, "seed": 8})
    assert not np.allclose(other_seed.loss(X_test, y_test), results[0], rtol=1e-6)


def test_lissa_noisy_estimate_warns(problem):
    model, X, y, X_test, y_test = problem
    inf = fi.Influence(model, X, y, solver="lissa", solver_options={"batch_size": 5, "depth": 50})
    with pytest.warns(fi.ConvergenceWarning, match="relative residual"):
        inf.loss(X_test, y_test)


def test_lissa_divergence_warns_and_gives_nan(problem):
    model, X, y, X_test, y_test = problem
    spectrum = fi.Influence(model, X, y).hessian_spectrum()
    inf = fi.Influence(
        model,
        X,
        y,
        solver="lissa",
        solver_options={"scale": spectrum["largest_eigenvalue"] / 10, "depth": 500, "batch_size": 1500},
    )
    with pytest.warns(fi.ConvergenceWarning, match="diverged"):
        result = inf.loss(X_test, y_test)
    assert np.isnan(result).all()


def test_auto_rule():
    assert solvers.resolve_solver("auto", solvers.AUTO_DIRECT_MAX_PARAMS) == "direct"
    assert solvers.resolve_solver("auto", solvers.AUTO_DIRECT_MAX_PARAMS + 1) == "cg"
    with pytest.raises(ValueError, match="solver must be one of"):
        solvers.resolve_solver("qr", 3)


def test_auto_uses_cg_for_many_parameters():
    rng = np.random.default_rng(0)
    n, d = 600, solvers.AUTO_DIRECT_MAX_PARAMS + 10
    X = sp.random(n, d, density=3 / d, format="csr", random_state=1)
    y = X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
    model = fi.LinearRegression(l2=1e-1).fit(X, y)
    assert model.converged_
    inf = fi.Influence(model, X, y, solver="auto")
    assert inf.solver == "cg"
    assert inf.hessian_ is None
    direct = fi.Influence(model, X, y, solver="direct")
    np.testing.assert_allclose(inf.loss(X[:3], y[:3]), direct.loss(X[:3], y[:3]), rtol=1e-7, atol=1e-12)


def test_solver_options_are_checked(problem):
    model, X, y, *_ = problem
    with pytest.raises(ValueError, match=r"solver_options \['depth'\] are not options of solver='cg'"):
        fi.Influence(model, X, y, solver="cg", solver_options={"depth": 3})
    with pytest.raises(ValueError, match="max_iter"):
        fi.Influence(model, X, y, solver="cg", solver_options={"max_iter": 0})
    with pytest.raises(ValueError, match="scale"):
        fi.Influence(model, X, y, solver="lissa", solver_options={"scale": -1.0})


@pytest.mark.parametrize("p_small", [True, False])
@pytest.mark.requires_core
def test_spectrum_estimates(problem, p_small):
    model, X, y, *_ = problem
    inf = fi.Influence(model, X, y)
    eig = np.linalg.eigvalsh(inf.hessian_)
    op = inf._operator
    if not p_small:  # force the Lanczos path on a p > 512 operator: pad with zero columns under l2
        Xp = sp.hstack([X, sp.csr_matrix((X.shape[0], 600))], format="csr")
        op = solvers.RowHessianOperator(get_backend("cpp"), Xp, True, op.c, model.l2, 0.0, 0)
        eig = np.sort(np.r_[eig, np.full(600, model.l2)])
    smallest, largest = op.extreme_eigenvalues()
    np.testing.assert_allclose([smallest, largest], [eig[0], eig[-1]], rtol=1e-4)
    summary = inf.hessian_spectrum()
    np.testing.assert_allclose(
        summary["condition_number"], eig[-1] / eig[0] if p_small else summary["condition_number"]
    )


def test_near_singular_hessian_error_names_damping_with_suggestion():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((80, 3))
    X = np.hstack([base, base[:, :1]])  # a duplicated column: H singular with l2 = 0
    y = base @ [1.0, -1.0, 0.5] + 0.1 * rng.standard_normal(80)
    model = fi.LinearRegression(l2=0.0).fit(X, y)
    with pytest.raises(fi.IllConditionedHessianError, match=r"damping=(\S+)") as excinfo:
        fi.Influence(model, X, y)
    suggested = float(excinfo.value.args[0].split("damping=")[1].split(",")[0])
    inf = fi.Influence(model, X, y, damping=suggested)
    assert np.isfinite(inf.loss(X[:2], y[:2])).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_newton_cg_fit_matches_newton(backend):
    rng = np.random.default_rng(1)
    n, d = 800, 60
    X = sp.random(n, d, density=0.1, format="csr", random_state=2)
    y = (rng.random(n) < 0.5).astype(int)
    dense = fi.LogisticRegression(l2=1e-3, method="newton", backend=backend).fit(X, y)
    matrix_free = fi.LogisticRegression(l2=1e-3, method="newton_cg", backend=backend).fit(X, y)
    assert matrix_free.converged_
    assert matrix_free.grad_norm_ <= 1e-10 * max(1.0, matrix_free.grad_norm_)
    np.testing.assert_allclose(matrix_free.theta_, dense.theta_, rtol=1e-7, atol=1e-9)
