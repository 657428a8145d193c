#!/usr/bin/env python
"""Benchmarks of fastinfluence against the baselines a competent user would write.

    python benchmarks/run.py                          # W1-W4 at full size (2-3 min, quiet 2-core machine)
    python benchmarks/run.py --quick                  # small sizes, under a minute
    python benchmarks/run.py --workloads W1,W2 --json results.json
    python benchmarks/run.py --threads 1,2,4,8,16     # thread scaling of W2 and W3
    python benchmarks/run.py --workloads W2,W4 --rounds 3   # methods alternate: fairer on a noisy machine

Workloads (seeded; logistic regression with l2 = 1e-3 throughout):

W1  scikit-learn breast cancer (standardised), 455 train x 114 test: the full I_up,loss matrix.
W2  dense synthetic, n = 100,000, d = 100, m = 100 test points: the full I_up,loss matrix.
W3  dense synthetic, n = 1,000,000, d = 100, m = 1,000: top-k (k = 10) helpful/harmful
    training points per test point, and the self-influence of every training point.
W4  sparse CSR, n = 200,000, d = 50,000, 50 non-zeros per row, m = 10: H^{-1} g_test for the
    10 test gradients by conjugate gradient to a relative residual of 1e-8.

Every (workload, method) runs in a fresh subprocess of this script (``--worker``). The worker
generates the data, fits the model with fastinfluence to the optimum (untimed; both sides get
the same theta), returns free heap memory to the kernel, resets the kernel's peak-RSS counter,
and times the influence computation. Peak extra memory is VmHWM after the timed call minus
VmRSS just before it. The parent compares every result with its baseline, measures the
machine's memory bandwidth and dense matrix-product throughput (the physical limits), and
prints one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

L2 = 1e-3
SEED = 20240611
MiB = 2.0**20

# --------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    description: str
    data: str  # "cancer", "dense" or "sparse"
    quantity: str  # "matrix", "top_k_self" or "cg"
    n: int = 0
    d: int = 0
    m: int = 0
    nnz_per_row: int = 0
    k: int = 10
    tol: float = 1e-8
    repeats: int = 3
    methods: tuple = ()  # baseline first


def workloads(quick: bool) -> dict[str, Workload]:
    """The four workloads of the issue; ``quick`` shrinks W2-W4 so the whole run takes seconds."""
    matrix_methods = ("numpy", "fastinfluence")
    cg_methods = ("scipy_cg", "fastinfluence_cg", "fastinfluence")
    if quick:
        sizes = {
            "W2": dict(n=20_000, d=100, m=50),
            "W3": dict(n=100_000, d=100, m=200, repeats=1),
            "W4": dict(n=20_000, d=5_000, nnz_per_row=50, m=10, repeats=1),
        }
    else:
        sizes = {
            "W2": dict(n=100_000, d=100, m=100, repeats=5),
            "W3": dict(n=1_000_000, d=100, m=1_000, repeats=2),
            "W4": dict(n=200_000, d=50_000, nnz_per_row=50, m=10, repeats=3),
        }
    return {
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
        "W4": Workload(
            "W4",
            "CSR n={n:,} d={d:,} nnz/row={nnz_per_row} m={m}: CG to rtol {tol:g}",
            "sparse",
            "cg",
            methods=cg_methods,
            **sizes["W4"],
        ),
    }


def describe(w: Workload) -> str:
    return w.description.format(**dataclasses.asdict(w))


METHOD_LABELS = {
    "numpy": "NumPy closed form",
    "fastinfluence": "fastinfluence",
    "scipy_cg": "SciPy cg + LinearOperator",
    "fastinfluence_cg": "fi.kernels.cg_solve",
}

# --------------------------------------------------------------------------------------------
# Data (generated in place, so that setup never peaks above its final size)
# --------------------------------------------------------------------------------------------

CHUNK_ROWS = 65_536


def _expit(z):
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
    return (rng.random(X.shape[0]) < _expit(X @ w_true + b_true)).astype(np.float64)


def make_data(w: Workload):
    """(X, y, X_test, y_test), seeded; labels in {0, 1}."""
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
        prob = _expit(X @ w + b)
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
        d1_test = _expit(X_test @ w + b) - y_test
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
    n, d = X.shape
    d1, factor, V = numpy_hessian_and_gradients(
        X, ctx["y"], ctx["X_test"], ctx["y_test"], ctx["theta"], timer
    )
    with timer("scores"):
        ST = V[:-1].T @ X.T  # (m, n)
        ST += V[-1][:, None]
        ST *= -d1[None, :]
    with timer("top_k"):
        m = ST.shape[0]
        helpful_idx, harmful_idx = np.empty((m, k), np.int64), np.empty((m, k), np.int64)
        helpful, harmful = np.empty((m, k)), np.empty((m, k))
        for start in range(0, m, row_block):
            rows = ST[start : start + row_block]
            part = np.argpartition(rows, (k - 1, n - k), axis=1)
            low, high = part[:, :k], part[:, n - k :]
            low_s, high_s = np.take_along_axis(rows, low, 1), np.take_along_axis(rows, high, 1)
            # most negative first (ties: lower row first); most positive first
            order = np.lexsort((low, low_s), axis=1)
            helpful_idx[start : start + row_block] = np.take_along_axis(low, order, 1)
            helpful[start : start + row_block] = np.take_along_axis(low_s, order, 1)
            order = np.lexsort((high, -high_s), axis=1)
            harmful_idx[start : start + row_block] = np.take_along_axis(high, order, 1)
            harmful[start : start + row_block] = np.take_along_axis(high_s, order, 1)
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
        prob = _expit(X @ w + b)
        c = prob * (1.0 - prob) / n
        d1_test = _expit(X_test @ w + b) - y_test
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
    d1 = _expit(X @ theta[:d] + theta[d]) - ctx["y"]
    return -d1[:, None] * (X @ V[:d] + V[d])


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
}

# --------------------------------------------------------------------------------------------
# The worker: one (workload, method) in a fresh process
# --------------------------------------------------------------------------------------------


def _proc_status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_free_heap() -> None:
    """Return the allocator's free memory to the kernel (glibc ``malloc_trim``), so that the timed
    call's allocations show up in RSS instead of silently reusing pages freed during setup."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def busy_cpu_seconds() -> float:
    """Busy CPU seconds of all cores since boot (user, nice, system, irq, softirq, steal): /proc/stat."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


#: Seconds over which the load of other processes is measured, at least.
MIN_LOAD_WINDOW = 1.0


class ForeignLoad:
    """CPU time other processes (and the hypervisor, as steal) took while a block ran, in cores.

    Busy CPU seconds of the whole machine minus this process's own, divided by the wall time:
    0 on a quiet machine, 1.0 when another process kept one core busy throughout.
    """

    def __enter__(self):
        self._wall, self._own, self._busy = time.perf_counter(), time.process_time(), busy_cpu_seconds()
        return self

    def __exit__(self, *exc):
        wall = max(time.perf_counter() - self._wall, 1e-9)
        foreign = (busy_cpu_seconds() - self._busy) - (time.process_time() - self._own)
        self.cores = max(0.0, foreign / wall)


def wait_for_quiet(max_wait: float, threshold: float = 0.2, interval: float = 1.0) -> float:
    """Wait (up to ``max_wait`` s) until other processes use less than ``threshold`` cores.

    Returns the load seen last; the benchmark still runs after ``max_wait`` and reports it.
    """
    deadline = time.perf_counter() + max_wait
    while True:
        with ForeignLoad() as load:
            time.sleep(interval)
        if load.cores < threshold or time.perf_counter() >= deadline:
            return load.cores


def blas_threads_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "num_threads", "architecture", "threading_layer")
    return [
        {**{key: pool.get(key) for key in keys}, "library": os.path.basename(pool.get("filepath", ""))}
        for pool in threadpool_info()
    ]


def worker(spec: dict) -> dict:
    import fastinfluence as fi

    w = workloads(spec["quick"])[spec["workload"]]
    n_jobs = spec["n_jobs"]
    X, y, X_test, y_test = make_data(w)
    start = time.perf_counter()
    model = fi.LogisticRegression(l2=L2, n_jobs=n_jobs).fit(X, y)
    fit_seconds = time.perf_counter() - start
    ctx = dict(
        X=X,
        y=y,
        X_test=X_test,
        y_test=y_test,
        model=model,
        theta=model.theta_,
        n_jobs=n_jobs,
        k=w.k,
        tol=w.tol,
    )
    method = METHODS[(w.quantity, spec["method"])]
    repeats = spec["repeats"] or w.repeats
    times, extras, phases = [], [], []
    result = None
    loop_start = time.perf_counter()
    with ForeignLoad() as load:
        for _ in range(repeats):
            result = None
            gc.collect()
            _release_free_heap()
            peak_reset = _reset_peak_rss()
            rss_before = _proc_status_mib("VmRSS")
            timer = PhaseTimer()
            start = time.perf_counter()
            result = method(ctx, timer)
            times.append(time.perf_counter() - start)
            extras.append(_proc_status_mib("VmHWM") - rss_before if peak_reset else float("nan"))
            phases.append(timer.phases)
        # /proc/stat counts in clock ticks (10 ms): measure the load over at least a second,
        # idling after short runs (an idle worker adds nothing to it)
        time.sleep(max(0.0, MIN_LOAD_WINDOW - (time.perf_counter() - loop_start)))
    result_mib = sum(np.asarray(value).nbytes for value in result.values()) / MiB
    if method is scipy_cg:  # the scores for checking Influence.loss end to end, untimed
        result["matrix"] = scipy_cg_scores(ctx, result["solution"])
    np.savez(spec["output"], **result)
    return {
        "workload": w.name,
        "method": spec["method"],
        "times": times,
        "peak_extra_mib": extras,
        "result_mib": result_mib,
        "foreign_load_cores": load.cores,
        "phases": {name: statistics.median(p[name] for p in phases) for name in phases[0]},
        "fit_seconds": fit_seconds,
        "fit_iterations": model.n_iter_,
        "fit_solver": model.fit_method(model.theta_.size),
        "fit_grad_norm": model.grad_norm_,
        "data_mib": data_bytes(X) / MiB,
        "rss_before_mib": rss_before,
        "n_jobs": n_jobs,
        "threadpools": blas_threads_info(),
    }


def run_worker(spec: dict, threads: int | None) -> dict:
    """Run one worker in a fresh interpreter; ``threads`` caps OpenMP and BLAS through the environment."""
    env = dict(os.environ)
    if threads is not None:
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[key] = str(threads)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"worker {spec['workload']}/{spec['method']} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"worker printed no result:\n{proc.stdout}\n{proc.stderr}")


# --------------------------------------------------------------------------------------------
# Checks against the baseline
# --------------------------------------------------------------------------------------------


def relative_difference(a, b) -> float:
    """max |a - b| / max |b|: the worst entry relative to the scale of the reference."""
    scale = float(np.max(np.abs(b))) or 1.0
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale


def column_relative_difference(a, b) -> float:
    """max_j ||a_j - b_j|| / ||b_j|| over columns."""
    norms = np.linalg.norm(b, axis=0)
    return float(np.max(np.linalg.norm(a - b, axis=0) / np.where(norms > 0, norms, 1.0)))


def check(w: Workload, method: str, ours, base) -> tuple[bool, str]:
    """Compare a result with the baseline's; returns (passed, one-line summary)."""
    if w.quantity == "matrix" or (w.quantity == "cg" and method == "fastinfluence"):
        diff = relative_difference(ours["matrix"], base["matrix"])
        limit = 1e-8 if w.quantity == "matrix" else 10 * w.tol
        return diff <= limit, f"matrix rel diff {diff:.1e}"
    if w.quantity == "cg":
        diff = column_relative_difference(ours["solution"], base["solution"])
        iters = f"iters {int(ours['iterations'].max())} vs {int(base['iterations'].max())}/column"
        return diff <= 10 * w.tol, f"solution rel diff {diff:.1e}, {iters}"
    # top-k: scores agree; indices agree except where the k-th score is tied to within rounding
    notes, passed = [], True
    for side in ("helpful", "harmful"):
        diff = relative_difference(ours[f"{side}_scores"], base[f"{side}_scores"])
        same = np.sort(ours[f"{side}_indices"], axis=1) == np.sort(base[f"{side}_indices"], axis=1)
        mismatched_rows = int((~same.all(axis=1)).sum())
        passed &= diff <= 1e-8
        notes.append(f"{side} score diff {diff:.0e}, index sets differ in {mismatched_rows} rows")
    diff = relative_difference(ours["self_influence"], base["self_influence"])
    passed &= diff <= 1e-8
    notes.append(f"self-influence diff {diff:.0e}")
    return passed, "; ".join(notes)


# --------------------------------------------------------------------------------------------
# The machine: memory bandwidth and dense throughput
# --------------------------------------------------------------------------------------------


def measure_machine(quick: bool) -> dict:
    """Read bandwidth (sum of a large array, one slice per core, median of 5) and dgemm GFLOP/s."""
    cores = os.cpu_count() or 1
    x = np.ones((256 if quick else 1024) * 2**20 // 8)
    parts = np.array_split(x, cores)
    samples = []
    with ThreadPoolExecutor(cores) as pool:  # NumPy's sum releases the GIL
        for _ in range(5):
            start = time.perf_counter()
            sum(pool.map(np.sum, parts))
            samples.append(x.nbytes / (time.perf_counter() - start))
    bandwidth = statistics.median(samples)
    size = 1024 if quick else 2048
    a, b = np.ones((size, size)), np.ones((size, size))
    flops = []
    for _ in range(3):
        start = time.perf_counter()
        a @ b
        flops.append(2.0 * size**3 / (time.perf_counter() - start))
    return {
        "read_bandwidth_gbs": bandwidth / 1e9,
        "array_gib": x.nbytes / 2**30,
        "dgemm_gflops": statistics.median(flops) / 1e9,
        "dgemm_size": size,
    }


def physical_limit(w: Workload, data_mib: float, iterations: int | None, machine: dict) -> dict:
    """Bytes the fastest possible implementation must move and flops it must do, and the time they take.

    W1/W2: one pass over X for H, one for the scores, plus writing the (n, m) result; flops
    n p^2 (H, symmetric) + 2 n p m (scores). W3: one pass for H and one for scoring and
    self-influence together; flops n p^2 + 2 n p m + n p^2. W4: one pass over X per CG
    iteration (all test gradients share it) plus one for the curvature weights.
    """
    data = data_mib * MiB
    p = (30 if w.data == "cancer" else w.d) + 1
    n = 455 if w.data == "cancer" else w.n
    if w.quantity == "matrix":
        moved, flops = 2 * data + 8.0 * n * w.m, n * p * p + 2.0 * n * p * w.m
    elif w.quantity == "top_k_self":
        moved, flops = 2 * data, 2.0 * n * p * p + 2.0 * n * p * w.m
    else:
        passes = (iterations or 0) + 1
        moved, flops = passes * data, passes * 4.0 * w.n * w.nnz_per_row * w.m
    seconds = max(moved / (machine["read_bandwidth_gbs"] * 1e9), flops / (machine["dgemm_gflops"] * 1e9))
    return {"bytes_gb": moved / 1e9, "gflop": flops / 1e9, "bound_s": seconds}


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def environment() -> dict:
    import scipy

    import fastinfluence as fi

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "platform": platform.platform(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "fastinfluence_build": fi.build_info(),
        "threadpools": blas_threads_info(),
    }


def print_environment(env: dict, machine: dict) -> None:
    print(f"CPU: {env['cpu']} ({env['cores']} cores), {env['memory_gib']:.1f} GiB, {env['platform']}")
    print(
        f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}  OMP_NUM_THREADS={env['OMP_NUM_THREADS']}  "
        f"numpy {env['numpy']}  scipy {env['scipy']}"
    )
    build = env["fastinfluence_build"]
    print("fastinfluence.build_info(): " + ", ".join(f"{key}={value}" for key, value in build.items()))
    print("threadpoolctl:")
    for pool in env["threadpools"]:
        print(
            f"  {pool['user_api']:<7} {pool['internal_api']:<9} {pool['version'] or '':<14} "
            f"threads={pool['num_threads']}  arch={pool['architecture']}  {pool['library']}"
        )
    print(
        f"machine: read bandwidth {machine['read_bandwidth_gbs']:.1f} GB/s (sum of "
        f"{machine['array_gib']:g} GiB, all cores), dgemm {machine['dgemm_gflops']:.1f} GFLOP/s "
        f"({machine['dgemm_size']}^2, NumPy/BLAS)"
    )


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'workload':<8} {'method':<27} {'median s':>9} {'min s':>8} {'runs':>4} "
        f"{'peak extra MiB':>14} {'of it result':>12} {'speedup':>8} {'memory':>7} {'bound s':>8} "
        f"{'load':>5}  check"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        speedup = "base" if row["baseline"] else f"{row['speedup']:.2f}x"
        memory = "base" if row["baseline"] else f"{row['memory_ratio']:.3f}"
        bound = f"{row['bound_s']:.3f}" if row.get("bound_s") is not None else ""
        check_text = "" if row["baseline"] else ("OK  " if row["check_ok"] else "FAIL ") + row["check"]
        load = row["foreign_load_cores"]
        print(
            f"{row['workload']:<8} {METHOD_LABELS[row['method']]:<27} {row['median_s']:>9.3f} "
            f"{min(row['times']):>8.3f} {len(row['times']):>4} {row['peak_extra_mib']:>14.1f} "
            f"{row['result_mib']:>12.1f} {speedup:>8} {memory:>7} {bound:>8} "
            f"{load:>4.2f}{'!' if load > LOAD_WARNING else ' '}  {check_text}"
        )
    print(
        "speedup = baseline median / median; memory = peak extra / baseline's peak extra; 'of it result' = "
        "the returned arrays;\nbound = the physical lower bound on time; load = cores other processes took "
        f"during the timed runs (measured over at least {MIN_LOAD_WINDOW:g} s; '!' above {LOAD_WARNING}: "
        "timings disturbed)."
    )


#: Other processes using more than this many cores during a timed run make its timing suspect.
LOAD_WARNING = 0.1

TARGETS = [
    # (workload, method, what, attribute, comparison, value)
    ("W2", "fastinfluence", "speedup vs NumPy closed form", "speedup", ">=", 2.0),
    ("W2", "fastinfluence", "peak extra memory / NumPy's", "memory_ratio", "<=", 0.1),
    ("W3", "fastinfluence", "speedup vs NumPy closed form", "speedup", ">=", 2.0),
    ("W3", "fastinfluence", "peak extra memory / NumPy's", "memory_ratio", "<=", 0.1),
    ("W3", "fastinfluence", "peak extra memory (MiB)", "peak_extra_mib", "<=", 2048.0),
    ("W4", "fastinfluence_cg", "speedup vs SciPy cg (solve only)", "speedup", ">=", 3.0),
    ("W4", "fastinfluence", "speedup vs SciPy cg (Influence end to end)", "speedup", ">=", 3.0),
]


def evaluate_targets(rows: list[dict]) -> list[dict]:
    found = {(row["workload"], row["method"]): row for row in rows}
    results = []
    for workload, method, what, attribute, comparison, value in TARGETS:
        row = found.get((workload, method))
        if row is None:
            continue
        measured = row[attribute]
        met = measured >= value if comparison == ">=" else measured <= value
        results.append(
            {
                "workload": workload,
                "method": method,
                "target": f"{what} {comparison} {value:g}",
                "measured": measured,
                "met": bool(met),
            }
        )
    return results


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def run_measured(args, spec: dict, threads: int | None) -> dict:
    """Wait for a quiet machine (``--max-wait``), then run one worker."""
    if args.max_wait > 0:
        load = wait_for_quiet(args.max_wait)
        if load > LOAD_WARNING:
            print(
                f"  (other processes still use {load:.2f} cores after waiting {args.max_wait:g} s; "
                "running anyway)",
                flush=True,
            )
    return run_worker(spec, threads)


def merge_rounds(results: list[dict]) -> dict:
    """One worker result from several rounds: all times, the largest peak and load, median phases."""
    merged = dict(results[-1])
    merged["times"] = [t for r in results for t in r["times"]]
    merged["peak_extra_mib"] = [m for r in results for m in r["peak_extra_mib"]]
    merged["foreign_load_cores"] = max(r["foreign_load_cores"] for r in results)
    merged["phases"] = {
        key: statistics.median(r["phases"][key] for r in results) for key in results[0]["phases"]
    }
    return merged


def benchmark(args, names: list[str], machine: dict, scratch: str) -> dict:
    all_workloads = workloads(args.quick)
    rows = []
    for name in names:
        w = all_workloads[name]
        print(f"\n{name}: {describe(w)}", flush=True)
        outputs, rounds = {}, {method: [] for method in w.methods}
        # methods alternate round by round, so that a slow spell of the machine hits all of them
        for _ in range(args.rounds):
            for method in w.methods:
                output = os.path.join(scratch, f"{name}_{method}.npz")
                spec = dict(
                    workload=name,
                    method=method,
                    quick=args.quick,
                    n_jobs=args.n_jobs,
                    repeats=args.repeats,
                    output=output,
                )
                rounds[method].append(run_measured(args, spec, None))
                outputs[method] = np.load(output)
        for method in w.methods:
            result = merge_rounds(rounds[method])
            phases = ", ".join(f"{k} {v:.3f}" for k, v in result["phases"].items())
            print(
                f"  {METHOD_LABELS[method]:<27} times {', '.join(f'{t:.3f}' for t in result['times'])} s; "
                f"peak extra {max(result['peak_extra_mib']):.1f} MiB; phases (median): {phases}; "
                f"other load {result['foreign_load_cores']:.2f} cores",
                flush=True,
            )
            rows.append(
                {
                    **result,
                    "median_s": statistics.median(result["times"]),
                    "peak_extra_mib": max(result["peak_extra_mib"]),
                    "baseline": method == w.methods[0],
                }
            )
        fit = rows[-1]
        print(
            f"  fit (untimed, fastinfluence {fit['fit_solver']}): {fit['fit_seconds']:.2f} s, "
            f"{fit['fit_iterations']} iterations, gradient norm {fit['fit_grad_norm']:.1e}; "
            f"X is {fit['data_mib']:.1f} MiB"
        )
        base = next(row for row in rows if row["workload"] == name and row["baseline"])
        iterations = None
        if w.quantity == "cg":
            iterations = int(outputs["fastinfluence_cg"]["iterations"].max())
        limit = physical_limit(w, base["data_mib"], iterations, machine)
        for row in rows:
            if row["workload"] != name:
                continue
            row["speedup"] = base["median_s"] / row["median_s"]
            row["memory_ratio"] = row["peak_extra_mib"] / max(base["peak_extra_mib"], 1e-9)
            row.update(limit)
            if not row["baseline"]:
                row["check_ok"], row["check"] = check(
                    w, row["method"], outputs[row["method"]], outputs[w.methods[0]]
                )
        print(
            f"  physical limit: {limit['bytes_gb']:.3f} GB to move, {limit['gflop']:.1f} GFLOP "
            f"-> at least {limit['bound_s']:.3f} s"
        )
    print()
    print_table(rows)
    targets = evaluate_targets(rows)
    if targets:
        print(
            "\ntargets:"
            + (
                " (--quick: the targets are set for the full sizes; these are indicative only)"
                if args.quick
                else ""
            )
        )
        for t in targets:
            print(
                f"  {t['workload']} {METHOD_LABELS[t['method']]:<22} {t['target']:<52} measured "
                f"{t['measured']:8.3f}  {'MET' if t['met'] else 'MISSED'}"
            )
    failed = [row for row in rows if not row["baseline"] and not row["check_ok"]]
    return {"rows": rows, "targets": targets, "checks_failed": len(failed)}


def thread_scaling(args, names: list[str], thread_counts: list[int], scratch: str) -> dict:
    """fastinfluence (and with ``--with-baseline`` the NumPy closed form) at each thread count.

    ``n_jobs`` sets fastinfluence's OpenMP threads; OMP_NUM_THREADS and OPENBLAS_NUM_THREADS
    are set to the same count in the worker's environment so that BLAS follows. Speedups are
    relative to the first count given (normally 1); every result must match that run's.
    """
    all_workloads = workloads(args.quick)
    rows, failed = [], 0
    for name in names:
        w = all_workloads[name]
        if w.quantity not in ("matrix", "top_k_self"):
            print(f"\n{name}: skipped (thread scaling covers the dense workloads W1-W3)")
            continue
        print(f"\n{name}: {describe(w)}", flush=True)
        methods = w.methods if args.with_baseline else ("fastinfluence",)
        for method in methods:
            reference = None
            for threads in thread_counts:
                output = os.path.join(scratch, f"{name}_{method}_{threads}.npz")
                spec = dict(
                    workload=name,
                    method=method,
                    quick=args.quick,
                    n_jobs=threads,
                    repeats=args.repeats,
                    output=output,
                )
                result = run_measured(args, spec, threads)
                median = statistics.median(result["times"])
                arrays = np.load(output)
                if reference is None:
                    reference = (median, arrays)
                key = "matrix" if "matrix" in arrays else "self_influence"
                diff = relative_difference(arrays[key], reference[1][key])
                failed += int(diff > 1e-12)
                load = result["foreign_load_cores"]
                row = {
                    "workload": name,
                    "method": method,
                    "threads": threads,
                    "times": result["times"],
                    "median_s": median,
                    "speedup": reference[0] / median,
                    "diff_vs_first": diff,
                    "peak_extra_mib": max(result["peak_extra_mib"]),
                    "phases": result["phases"],
                    "foreign_load_cores": result["foreign_load_cores"],
                }
                rows.append(row)
                phases = ", ".join(f"{k} {v:.3f}" for k, v in result["phases"].items())
                print(
                    f"  {METHOD_LABELS[method]:<20} threads {threads:>2}: median {median:8.3f} s  speedup "
                    f"{row['speedup']:5.2f}x  (max rel diff vs {thread_counts[0]} thread(s) {diff:.0e}; "
                    f"other load {load:.2f} cores; {phases})",
                    flush=True,
                )
    cores = os.cpu_count() or 1
    if max(thread_counts) > cores:
        print(
            f"\nnote: this machine has {cores} cores; thread counts above that are oversubscribed and say "
            "nothing about scaling."
        )
    return {"scaling": rows, "checks_failed": failed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", default="W1,W2,W3,W4", help="comma-separated subset of W1,W2,W3,W4")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, under a minute)")
    parser.add_argument("--repeats", type=int, default=0, help="timed runs per method (0: per workload)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="fresh workers per method, the methods alternating (each runs --repeats times)",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="fastinfluence threads (default: all cores)")
    parser.add_argument(
        "--threads",
        default=None,
        help="thread-scaling mode: comma-separated thread counts, e.g. 1,2,4,8,16 (W2, W3)",
    )
    parser.add_argument(
        "--with-baseline",
        action="store_true",
        help="thread-scaling mode: also scale the NumPy closed form (BLAS threads)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="before each measurement wait up to this many seconds for other processes to "
        "go quiet (default 60, with --quick 0: never wait)",
    )
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.max_wait is None:
        args.max_wait = 0.0 if args.quick else 60.0

    if args.worker is not None:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0

    names = [name.strip().upper() for name in args.workloads.split(",") if name.strip()]
    unknown = sorted(set(names) - set(workloads(args.quick)))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from W1, W2, W3, W4")
    started = time.perf_counter()
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(command, flush=True)
    env = environment()
    if args.max_wait > 0:
        wait_for_quiet(args.max_wait)
    machine = measure_machine(args.quick)
    print_environment(env, machine)
    report = {"command": command, "environment": env, "machine": machine, "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="fastinfluence-bench-") as scratch:
        if args.threads:
            counts = [int(t) for t in args.threads.split(",")]
            report.update(thread_scaling(args, names, counts, scratch))
        else:
            report.update(benchmark(args, names, machine, scratch))
    report["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal {report['total_seconds']:.0f} s; {report['checks_failed']} check(s) failed")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1, default=float)
    return 1 if report["checks_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
