"""The timed methods: the baselines a competent user would write, and fastinfluence's."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from workloads import L2, expit

# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


class PhaseTimer:
    """Accumulates wall time per named phase: ``with timer("solve"): ...``."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self._name = None

    def __call__(self, name):
        self._name = name
        return self

    def __enter__(self):
        self._start = time.perf_counter()

    def __exit__(self, *exc):
        self.phases[self._name] = self.phases.get(self._name, 0.0) + time.perf_counter() - self._start


def numpy_hessian_and_gradients(X, y, X_test, y_test, theta, timer):
    """The closed form's first half: (loss' at the training points, Cholesky factor of H, V = H^{-1} G_test).

    H = Xa^T diag(c) Xa + l2 diag(1, .., 1, 0) with c_i = loss''_i / n, built around the
    intercept block so that X is never copied with a column of ones; X^T X-shaped products go
    through ``Xs.T @ Xs`` (NumPy hands that to BLAS syrk).
    """
    from scipy.linalg import cho_factor, cho_solve

    n, d = X.shape
    w, b = theta[:d], theta[d]
    with timer("hessian"):
        prob = expit(X @ w + b)
        d1 = prob - y
        c = prob * (1.0 - prob) / n
        Xs = X * np.sqrt(c)[:, None]
        H = np.empty((d + 1, d + 1))
        H[:d, :d] = Xs.T @ Xs
        del Xs
        H[:d, d] = H[d, :d] = c @ X
        H[d, d] = c.sum()
        H[np.arange(d), np.arange(d)] += L2
    with timer("solve"):
        d1_test = expit(X_test @ w + b) - y_test
        G = np.vstack([X_test.T * d1_test, d1_test])  # (p, m): g_j = loss'_j xa_j
        factor = cho_factor(H, lower=True)
        V = cho_solve(factor, G)
    return d1, factor, V


def numpy_matrix(ctx, timer):
    """I_up,loss = -diag(loss') Xa V, (n, m), the straightforward vectorised closed form."""
    X = ctx["X"]
    d1, _, V = numpy_hessian_and_gradients(X, ctx["y"], ctx["X_test"], ctx["y_test"], ctx["theta"], timer)
    with timer("scores"):
        S = X @ V[:-1]
        S += V[-1]
        S *= -d1[:, None]
    return {"matrix": S}


def numpy_top_k_self(ctx, timer, row_block=8):
    """The full (m, n) matrix of I_up,loss, argpartition for the top k of each test point, and
    self-influence from Xa H^{-1} by einsum.

    The matrix is held transposed (test points as rows) so each argpartition runs over a
    contiguous row; argpartition takes ``row_block`` test points at a time, because its index
    output is int64 of the same shape as its input (a second n x m array otherwise).
    """
    from scipy.linalg import cho_solve

    X, k = ctx["X"], ctx["k"]
    d = X.shape[1]
    d1, factor, V = numpy_hessian_and_gradients(
        X, ctx["y"], ctx["X_test"], ctx["y_test"], ctx["theta"], timer
    )
    with timer("scores"):
        ST = V[:-1].T @ X.T  # (m, n)
        ST += V[-1][:, None]
        ST *= -d1[None, :]
    with timer("top_k"):
        helpful_idx, helpful, harmful_idx, harmful = _top_k_of_transposed(ST, k, row_block)
        del ST
    with timer("self_influence"):
        H_inv = cho_solve(factor, np.eye(d + 1))
        # xa^T H^{-1} xa = x^T A x + 2 a.x + alpha with A, a, alpha the blocks of H^{-1}
        XA = X @ H_inv[:d, :d]
        q = np.einsum("ij,ij->i", XA, X)
        del XA
        q += 2.0 * (X @ H_inv[:d, d]) + H_inv[d, d]
        self_influence = -(d1 * d1) * q
    return {
        "helpful_indices": helpful_idx,
        "helpful_scores": helpful,
        "harmful_indices": harmful_idx,
        "harmful_scores": harmful,
        "self_influence": self_influence,
    }


def _cg_tolerance_keyword():
    import inspect

    from scipy.sparse.linalg import cg

    return "rtol" if "rtol" in inspect.signature(cg).parameters else "tol"  # SciPy < 1.12: tol


def scipy_cg(ctx, timer):
    """``scipy.sparse.linalg.cg`` on a LinearOperator for H v, one test gradient at a time."""
    from scipy.sparse.linalg import LinearOperator, cg

    X, _y, X_test, y_test, theta, tol = (ctx[key] for key in ("X", "y", "X_test", "y_test", "theta", "tol"))
    n, d = X.shape
    w, b = theta[:d], theta[d]
    with timer("setup"):
        prob = expit(X @ w + b)
        c = prob * (1.0 - prob) / n
        d1_test = expit(X_test @ w + b) - y_test
        G = np.vstack([(X_test.T @ np.diag(d1_test)), d1_test])  # (p, m)

    def hessian_vector_product(v):
        # H v = Xa^T (c * (Xa v)) + l2 [v_w; 0]
        u = c * (X @ v[:d] + v[d])
        return np.concatenate([X.T @ u + L2 * v[:d], [u.sum()]])

    operator = LinearOperator((d + 1, d + 1), matvec=hessian_vector_product, dtype=np.float64)
    V = np.empty_like(G)
    iterations = np.zeros(G.shape[1], dtype=np.int64)
    keyword = _cg_tolerance_keyword()
    with timer("solve"):
        for j in range(G.shape[1]):

            def count(_, j=j):
                iterations[j] += 1

            V[:, j], info = cg(operator, G[:, j], atol=0.0, maxiter=1000, callback=count, **{keyword: tol})
            if info != 0:
                raise RuntimeError(f"SciPy cg did not converge for column {j} (info={info})")
    return {"solution": V, "iterations": iterations}


def scipy_cg_scores(ctx, V):
    """-diag(loss') Xa V for checking the end-to-end Influence.loss (outside the timed region)."""
    X, theta = ctx["X"], ctx["theta"]
    d = X.shape[1]
    d1 = expit(X @ theta[:d] + theta[d]) - ctx["y"]
    return -d1[:, None] * (X @ V[:d] + V[d])


def _top_k_of_transposed(ST, k, row_block=8):
    """The k most negative and most positive entries of each row of ST (m, n), sorted, ties to the
    lower column; argpartition ``row_block`` rows at a time (its int64 output is ST-sized)."""
    m, n = ST.shape
    helpful_idx, harmful_idx = np.empty((m, k), np.int64), np.empty((m, k), np.int64)
    helpful, harmful = np.empty((m, k)), np.empty((m, k))
    for start in range(0, m, row_block):
        rows = ST[start : start + row_block]
        part = np.argpartition(rows, (k - 1, n - k), axis=1)
        low, high = part[:, :k], part[:, n - k :]
        low_s, high_s = np.take_along_axis(rows, low, 1), np.take_along_axis(rows, high, 1)
        order = np.lexsort((low, low_s), axis=1)
        helpful_idx[start : start + row_block] = np.take_along_axis(low, order, 1)
        helpful[start : start + row_block] = np.take_along_axis(low_s, order, 1)
        order = np.lexsort((high, -high_s), axis=1)
        harmful_idx[start : start + row_block] = np.take_along_axis(high, order, 1)
        harmful[start : start + row_block] = np.take_along_axis(high_s, order, 1)
    return helpful_idx, helpful, harmful_idx, harmful


def _softmax(eta):
    e = np.exp(eta - eta.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_multinomial(ctx, timer):
    """Softmax regression's closed form: H block by block, one solve with the intercept's gauge
    fixed by adding the projector on it (as fastinfluence's rule, so both give H^+ g), the scores
    by one product with all classes' solved test gradients, and the top k from that matrix.

    H_kl = X_a^T diag(c (delta_kl P_k - P_k P_l)) X_a (c = 1/n) + l2 delta_kl diag(1, .., 1, 0),
    each block by a GEMM of X with a weighted copy of X (the weights are not all positive).
    """
    from scipy.linalg import cho_factor, cho_solve

    X, y, X_test, y_test, theta, K, k = (
        ctx[key] for key in ("X", "y", "X_test", "y_test", "theta", "classes", "k")
    )
    n, d = X.shape
    q = d + 1
    Theta = theta.reshape(K, q)
    with timer("hessian"):
        P = _softmax(X @ Theta[:, :d].T + Theta[:, d])
        R = P.copy()
        R[np.arange(n), y.astype(np.int64)] -= 1.0
        H = np.zeros((K * q, K * q))
        for a in range(K):
            for b in range(a, K):
                c = (P[:, a] * ((a == b) - P[:, b])) / n
                block = np.empty((q, q))
                weighted = X * c[:, None]
                block[:d, :d] = X.T @ weighted
                block[:d, d] = block[d, :d] = weighted.sum(axis=0)
                block[d, d] = c.sum()
                del weighted
                if a == b:
                    block[np.arange(d), np.arange(d)] += L2
                H[a * q : (a + 1) * q, b * q : (b + 1) * q] = block
                H[b * q : (b + 1) * q, a * q : (a + 1) * q] = block.T
        # the intercepts' gauge: H + u u^T with u = 1_K kron e_intercept / sqrt(K)
        u = np.zeros(K * q)
        u[d::q] = 1.0 / np.sqrt(K)
        H += np.outer(u, u)
    with timer("solve"):
        P_test = _softmax(X_test @ Theta[:, :d].T + Theta[:, d])
        R_test = P_test.copy()
        R_test[np.arange(X_test.shape[0]), y_test.astype(np.int64)] -= 1.0
        Xa_test = np.hstack([X_test, np.ones((X_test.shape[0], 1))])
        G = (R_test.T[:, None, :] * Xa_test.T[None, :, :]).reshape(K * q, -1)  # (p, m)
        V = cho_solve(cho_factor(H, lower=True), G)  # (p, m)
    with timer("scores"):
        m = V.shape[1]
        blocks = V.reshape(K, q, m)  # scores_ij = -sum_k R_ik (x_i . V_k[:d, j] + V_k[d, j])
        Z = X @ blocks[:, :d, :].transpose(1, 0, 2).reshape(d, K * m)  # (n, K m)
        Z += blocks[:, d, :].reshape(1, K * m)
        S = -np.einsum("ik,ikj->ij", R, Z.reshape(n, K, m))
        del Z
    with timer("top_k"):
        helpful_idx, helpful, harmful_idx, harmful = _top_k_of_transposed(np.ascontiguousarray(S.T), k)
    return {
        "matrix": S,
        "helpful_indices": helpful_idx,
        "helpful_scores": helpful,
        "harmful_indices": harmful_idx,
        "harmful_scores": harmful,
    }


def fastinfluence_multinomial(ctx, timer):
    import fastinfluence as fi

    with timer("construct"):
        inf = fi.Influence(ctx["model"], ctx["X"], ctx["y"], n_jobs=ctx["n_jobs"])
    with timer("loss"):
        S = inf.loss(ctx["X_test"], ctx["y_test"])
    with timer("top_k"):
        top = inf.top_k(ctx["X_test"], ctx["y_test"], k=ctx["k"])
    return {"matrix": S, **dataclasses.asdict(top)}


# --------------------------------------------------------------------------------------------
# fastinfluence
# --------------------------------------------------------------------------------------------


def fastinfluence_matrix(ctx, timer):
    import fastinfluence as fi

    with timer("construct"):
        inf = fi.Influence(ctx["model"], ctx["X"], ctx["y"], n_jobs=ctx["n_jobs"])
    with timer("loss"):
        S = inf.loss(ctx["X_test"], ctx["y_test"])
    return {"matrix": S}


def fastinfluence_top_k_self(ctx, timer):
    import fastinfluence as fi

    with timer("construct"):
        inf = fi.Influence(ctx["model"], ctx["X"], ctx["y"], n_jobs=ctx["n_jobs"])
    with timer("top_k"):
        top = inf.top_k(ctx["X_test"], ctx["y_test"], k=ctx["k"])
    with timer("self_influence"):
        self_influence = inf.self_influence()
    return {**dataclasses.asdict(top), "self_influence": self_influence}


def fastinfluence_cg_kernel(ctx, timer):
    """fi.kernels: curvature weights, test gradients, then one block CG over all of them."""
    import fastinfluence as fi

    X, y, X_test, y_test, theta = (ctx[key] for key in ("X", "y", "X_test", "y_test", "theta"))
    with timer("setup"):
        c = fi.kernels.curvature_weights("logistic", X, y, theta, n_jobs=ctx["n_jobs"])
        d1_test = fi.kernels.row_derivatives("logistic", X_test, y_test, theta, n_jobs=ctx["n_jobs"])[2]
        G = np.vstack([(X_test.T @ np.diag(d1_test)), d1_test])
    with timer("solve"):
        V, iterations, residual = fi.kernels.cg_solve(
            X, c, G, l2=L2, tol=ctx["tol"], max_iter=1000, n_jobs=ctx["n_jobs"]
        )
    return {"solution": np.asarray(V), "iterations": np.asarray(iterations), "residual": np.asarray(residual)}


def fastinfluence_cg_end_to_end(ctx, timer):
    import fastinfluence as fi

    with timer("construct"):
        inf = fi.Influence(
            ctx["model"],
            ctx["X"],
            ctx["y"],
            solver="cg",
            solver_options={"tol": ctx["tol"]},
            n_jobs=ctx["n_jobs"],
        )
    with timer("loss"):
        S = inf.loss(ctx["X_test"], ctx["y_test"])
    return {"matrix": S, "iterations": np.asarray(inf.solver_.iterations_)}


METHODS = {
    ("matrix", "numpy"): numpy_matrix,
    ("matrix", "fastinfluence"): fastinfluence_matrix,
    ("top_k_self", "numpy"): numpy_top_k_self,
    ("top_k_self", "fastinfluence"): fastinfluence_top_k_self,
    ("cg", "scipy_cg"): scipy_cg,
    ("cg", "fastinfluence_cg"): fastinfluence_cg_kernel,
    ("cg", "fastinfluence"): fastinfluence_cg_end_to_end,
    ("matrix_top_k", "numpy"): numpy_multinomial,
    ("matrix_top_k", "fastinfluence"): fastinfluence_multinomial,
}
