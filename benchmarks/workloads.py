"""The benchmark workloads W1-W5 and their seeded data, generated in place."""

from __future__ import annotations

import dataclasses

import numpy as np

L2 = 1e-3  # the penalty of every workload's model
SEED = 20240611
MiB = 2.0**20


# --------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    description: str
    data: str  # "cancer", "dense", "sparse", "multinomial"; W0 also "poisson", "linear"
    quantity: str  # "matrix", "top_k_self", "cg", "matrix_top_k"; "fit" (W0)
    n: int = 0
    d: int = 0
    m: int = 0
    nnz_per_row: int = 0
    k: int = 10
    classes: int = 0  # K of a multinomial workload
    l2: float = L2  # the model's penalty (0 for W6: statsmodels fits without one)
    tol: float = 1e-8
    repeats: int = 3
    methods: tuple = ()  # baseline first


def workloads(quick: bool) -> dict[str, Workload]:
    """The workloads of the issues; ``quick`` shrinks W2-W5 so the whole run takes seconds."""
    matrix_methods = ("numpy", "fastinfluence")
    cg_methods = ("scipy_cg", "fastinfluence_cg", "fastinfluence")
    if quick:
        sizes = {
            "W2": dict(n=20_000, d=100, m=50),
            "W3": dict(n=100_000, d=100, m=200, repeats=1),
            "W4": dict(n=20_000, d=5_000, nnz_per_row=50, m=10, repeats=1),
            "W5": dict(n=10_000, d=50, classes=5, m=20, repeats=1),
            "W3R": dict(n=20_000, d=100, m=200, repeats=1),
        }
    else:
        sizes = {
            "W2": dict(n=100_000, d=100, m=100, repeats=5),
            "W3": dict(n=1_000_000, d=100, m=1_000, repeats=2),
            "W4": dict(n=200_000, d=50_000, nnz_per_row=50, m=10, repeats=3),
            "W5": dict(n=100_000, d=100, classes=10, m=100, repeats=3),
            "W3R": dict(n=100_000, d=100, m=1_000, repeats=1),
        }
    return {
        **fit_workloads(quick),
        **diagnostics_workloads(quick),
        "W1": Workload(
            "W1",
            "breast cancer 455x30, m=114: full I_up,loss matrix",
            "cancer",
            "matrix",
            m=114,
            repeats=21,
            methods=matrix_methods,
        ),
        "W2": Workload(
            "W2",
            "dense n={n:,} d={d} m={m}: full I_up,loss matrix",
            "dense",
            "matrix",
            methods=matrix_methods,
            **sizes["W2"],
        ),
        "W3": Workload(
            "W3",
            "dense n={n:,} d={d} m={m}: top-{k} + self-influence",
            "dense",
            "top_k_self",
            methods=matrix_methods,
            **sizes["W3"],
        ),
        "W3R": Workload(  # W3 at the size the peers run it (benchmarks/peers.py)
            "W3R",
            "dense n={n:,} d={d} m={m}: top-{k} + self-influence (W3 reduced for the peers)",
            "dense",
            "top_k_self",
            methods=matrix_methods,
            **sizes["W3R"],
        ),
        "W4": Workload(
            "W4",
            "CSR n={n:,} d={d:,} nnz/row={nnz_per_row} m={m}: CG to rtol {tol:g}",
            "sparse",
            "cg",
            methods=cg_methods,
            **sizes["W4"],
        ),
        "W5": Workload(
            "W5",
            "multinomial n={n:,} d={d} K={classes} m={m}: full I_up,loss matrix + top-{k}",
            "multinomial",
            "matrix_top_k",
            methods=matrix_methods,
            **sizes["W5"],
        ),
    }


def fit_workloads(quick: bool) -> dict[str, Workload]:
    """W0: the fit itself (benchmarks/fits.py), against scikit-learn's solvers for each model."""
    size = dict(n=20_000, d=100, repeats=3) if quick else dict(n=100_000, d=100, repeats=5)
    glm = ("sklearn_newton_cholesky", "sklearn_newton_cholesky_default", "sklearn_lbfgs", "fastinfluence")
    what = "dense n={n:,} d={d}: the fit"
    return {
        "W0L": Workload("W0L", f"logistic, {what}", "dense", "fit", methods=glm, **size),
        "W0P": Workload("W0P", f"Poisson, {what}", "poisson", "fit", methods=glm, **size),
        "W0S": Workload(
            "W0S",
            f"least squares, {what}",
            "linear",
            "fit",
            methods=("sklearn_ridge", "fastinfluence"),
            **size,
        ),
    }


def diagnostics_workloads(quick: bool) -> dict[str, Workload]:
    """W6: regression diagnostics (benchmarks/diagnostics.py), against statsmodels' summary_frame()."""
    methods = ("statsmodels", "fastinfluence")
    ols_n = 300 if quick else 1_000  # statsmodels refits n times for OLS's DFBETAS
    glm_n = 10_000 if quick else 100_000
    what = "n={n:,} d={d}, l2 = 0: summary_frame()"
    return {
        "W6L": Workload(
            "W6L",
            f"logistic (GLM), {what}",
            "dense",
            "diagnostics",
            n=glm_n,
            d=50,
            l2=0.0,
            repeats=3,
            methods=methods,
        ),
        "W6S": Workload(
            "W6S",
            f"least squares (OLS), {what}",
            "linear",
            "diagnostics",
            n=ols_n,
            d=50,
            l2=0.0,
            repeats=1,
            methods=methods,
        ),
        "W6S100k": Workload(
            "W6S100k",
            f"least squares, {what}, fastinfluence alone",
            "linear",
            "diagnostics",
            n=10_000 if quick else 100_000,
            d=50,
            l2=0.0,
            repeats=3,
            methods=("fastinfluence",),
        ),
    }


def describe(w: Workload) -> str:
    return w.description.format(**dataclasses.asdict(w))


METHOD_LABELS = {
    "numpy": "NumPy closed form",
    "fastinfluence": "fastinfluence",
    "scipy_cg": "SciPy cg + LinearOperator",
    "fastinfluence_cg": "fi.kernels.cg_solve",
    # W0 (benchmarks/fits.py)
    "sklearn_newton_cholesky": "sklearn newton-chol 1e-10",
    "sklearn_newton_cholesky_default": "sklearn newton-chol 1e-4",
    "sklearn_lbfgs": "sklearn lbfgs 1e-10",
    "sklearn_ridge": "sklearn Ridge cholesky",
    # W6 (benchmarks/diagnostics.py)
    "statsmodels": "statsmodels summary_frame",
    # the peers (benchmarks/peers.py), where installed
    "pydvl_direct": "pyDVL DirectInfluence",
    "pydvl_cg": "pyDVL CgInfluence",
}

# --------------------------------------------------------------------------------------------
# Data (generated in place, so that setup never peaks above its final size)
# --------------------------------------------------------------------------------------------

CHUNK_ROWS = 65_536


def expit(z):
    from scipy.special import expit

    return expit(z)


def _dense_design(rng, n, d):
    X = np.empty((n, d))
    for start in range(0, n, CHUNK_ROWS):
        rng.standard_normal(out=X[start : start + CHUNK_ROWS])
    return X


def _sparse_design(rng, n, d, nnz_per_row):
    """CSR with exactly ``nnz_per_row`` distinct sorted columns per row and N(0, 1) values."""
    import scipy.sparse as sp

    indices = np.empty(n * nnz_per_row, dtype=np.int32)
    data = np.empty(n * nnz_per_row)
    offsets = np.arange(nnz_per_row, dtype=np.int32)
    for start in range(0, n, CHUNK_ROWS):
        rows = min(CHUNK_ROWS, n - start)
        # sorted draws from [0, d - k] plus 0..k-1: strictly increasing, distinct columns
        cols = np.sort(rng.integers(0, d - nnz_per_row + 1, size=(rows, nnz_per_row), dtype=np.int32), axis=1)
        indices[start * nnz_per_row : (start + rows) * nnz_per_row] = (cols + offsets).ravel()
        rng.standard_normal(out=data[start * nnz_per_row : (start + rows) * nnz_per_row])
    indptr = np.arange(0, n * nnz_per_row + 1, nnz_per_row, dtype=np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(n, d), copy=False)


def _logistic_labels(rng, X, w_true, b_true):
    return (rng.random(X.shape[0]) < expit(X @ w_true + b_true)).astype(np.float64)


def _multinomial_labels(rng, X, W_true):
    """Class codes drawn from softmax(X W^T) (by the Gumbel-max trick, chunk by chunk)."""
    y = np.empty(X.shape[0])
    for start in range(0, X.shape[0], CHUNK_ROWS):
        eta = X[start : start + CHUNK_ROWS] @ W_true.T
        y[start : start + CHUNK_ROWS] = np.argmax(eta + rng.gumbel(size=eta.shape), axis=1)
    return y


def make_data(w: Workload):
    """(X, y, X_test, y_test), seeded; labels in {0, 1} (class codes 0 .. K-1 for W5)."""
    if w.data == "cancer":
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import train_test_split

        X, y = load_breast_cancer(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y.astype(np.float64), test_size=0.2, random_state=0, stratify=y
        )
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        return (X_train - mean) / std, y_train, (X_test - mean) / std, y_test
    rng = np.random.default_rng(SEED)
    if w.data == "multinomial":
        W_true = rng.standard_normal((w.classes, w.d)) * (1.0 / np.sqrt(w.d))
        X, X_test = _dense_design(rng, w.n, w.d), _dense_design(rng, w.m, w.d)
        return X, _multinomial_labels(rng, X, W_true), X_test, _multinomial_labels(rng, X_test, W_true)
    if w.data in ("poisson", "linear"):  # W0: counts from exp(eta), or eta plus N(0, 1) noise
        w_true = rng.standard_normal(w.d) * (0.5 / np.sqrt(w.d))
        X = _dense_design(rng, w.n, w.d)
        eta = X @ w_true + 0.3
        y = (
            rng.poisson(np.exp(eta)).astype(np.float64)
            if w.data == "poisson"
            else eta + rng.standard_normal(w.n)
        )
        return X, y, X[:0], y[:0]
    if w.data == "dense":
        w_true = rng.standard_normal(w.d) * (2.0 / np.sqrt(w.d))
        X, X_test = _dense_design(rng, w.n, w.d), _dense_design(rng, w.m, w.d)
    else:
        w_true = rng.standard_normal(w.d) * (2.0 / np.sqrt(w.nnz_per_row))
        X = _sparse_design(rng, w.n, w.d, w.nnz_per_row)
        X_test = _sparse_design(rng, w.m, w.d, w.nnz_per_row)
    return X, _logistic_labels(rng, X, w_true, 0.3), X_test, _logistic_labels(rng, X_test, w_true, 0.3)


def data_bytes(X) -> int:
    if hasattr(X, "indptr"):
        return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
    return int(X.nbytes)
