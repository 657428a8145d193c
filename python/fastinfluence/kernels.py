"""The stable low-level kernel API, for libraries that build on fastinfluence.

Every function validates its arguments (shapes, dtypes, finiteness, label
domains) and then calls the chosen backend: ``"cpp"`` (compiled, OpenMP) or
``"numpy"`` (pure-NumPy reference). Signatures here are stable across minor
versions; :mod:`fastinfluence._core` is private and may change.

Conventions: ``X`` is (n, d): a float32 or float64 array in C or F order
(never copied when it is one of those) or a SciPy sparse matrix (used as CSR;
other formats are converted once); ``theta = (w, b)`` has ``p = d + 1`` entries with an
intercept (``b`` last, unpenalised) and ``d`` without; labels ``y`` are in the
loss's internal encoding (see :mod:`fastinfluence.losses`); ``weights`` are the
sample weights ``s_i`` (None for all ones). The objective is

    R(theta) = (1/n) sum_i s_i loss(y_i, x_i . w + b) + (l2/2) ||w||^2.
"""

from __future__ import annotations

import numpy as np

from . import _validation as V
from .backends import get_backend
from .backends.contract import Problem
from .fitting import RowObjective, minimise
from .losses import Loss, get_loss

__all__ = [
    "loss_terms",
    "loss_difference",
    "row_derivatives",
    "evaluate",
    "objective",
    "gradient",
    "hessian",
    "hessian_vector_product",
    "fit_newton",
    "scaled_row_products",
    "row_quadratic_forms",
    "curvature_weights",
    "regularised_gram_product",
    "gram_diagonal",
    "cg_solve",
    "lissa_solve",
    "top_k_scores",
]


def _problem(loss, X, y, theta, fit_intercept, weights=None, l2=0.0, t=None) -> tuple[Problem, np.ndarray]:
    """The validated (Problem, theta) of the public arguments."""
    loss = get_loss(loss, t)
    X = V.check_matrix(X, "X")
    y = V.check_vector(y, X.shape[0], "y")
    loss.check_targets(y)
    p = X.shape[1] + (1 if fit_intercept else 0)
    theta = V.check_vector(theta, p, "theta") if theta is not None else None
    weights = V.check_sample_weight(weights, X.shape[0])
    l2 = V.check_nonnegative(l2, "l2")
    return Problem(loss, X, y, weights, bool(fit_intercept), l2), theta


def loss_terms(loss: str | Loss, y, eta, *, t=None, backend="cpp"):
    """Elementwise ``(loss(y, eta), d loss/d eta, d^2 loss/d eta^2)``, each of shape (n,)."""
    loss = get_loss(loss, t)
    y = V.check_vector(y, None, "y")
    loss.check_targets(y)
    eta = V.check_vector(eta, y.shape[0], "eta")
    return get_backend(backend).loss_terms(loss, y, eta)


def loss_difference(loss: str | Loss, y, eta, delta, *, t=None, backend="cpp"):
    """``loss(y, eta + delta) - loss(y, eta)`` elementwise, accurate for small delta."""
    loss = get_loss(loss, t)
    y = V.check_vector(y, None, "y")
    loss.check_targets(y)
    eta = V.check_vector(eta, y.shape[0], "eta")
    delta = V.check_vector(delta, y.shape[0], "delta")
    return get_backend(backend).loss_difference(loss, y, eta, delta)


def row_derivatives(loss, X, y, theta, *, fit_intercept=True, t=None, backend="cpp", n_jobs=None):
    """Per-row ``(eta, loss, loss', loss'')`` at theta, each (n,), in one pass over X."""
    problem, theta = _problem(loss, X, y, theta, fit_intercept, t=t)
    return get_backend(backend).row_derivatives(problem, theta, V.check_n_jobs(n_jobs))


def _evaluate(loss, X, y, theta, fit_intercept, weights, l2, t, backend, n_jobs, want_gradient, want_hessian):
    problem, theta = _problem(loss, X, y, theta, fit_intercept, weights, l2, t)
    return get_backend(backend).evaluate(problem, theta, want_gradient, want_hessian, V.check_n_jobs(n_jobs))


def evaluate(
    loss,
    X,
    y,
    theta,
    *,
    weights=None,
    l2=0.0,
    fit_intercept=True,
    want_gradient=True,
    want_hessian=True,
    t=None,
    backend="cpp",
    n_jobs=None,
):
    """``(R(theta), grad R | None, H | None)`` in one fused pass over X.

    Partial sums over row chunks add up: for chunks X_1..X_K of one data set,
    evaluating each with the *same* n is what a distributed fit needs; here n
    is ``X.shape[0]``, so scale a chunk's results by ``n_chunk / n`` (the
    penalty terms are added once per call: subtract them from all but one).
    """
    return _evaluate(
        loss,
        X,
        y,
        theta,
        fit_intercept,
        weights,
        l2,
        t,
        backend,
        n_jobs,
        bool(want_gradient),
        bool(want_hessian),
    )


def objective(
    loss, X, y, theta, *, weights=None, l2=0.0, fit_intercept=True, t=None, backend="cpp", n_jobs=None
) -> float:
    """``R(theta)``."""
    return float(
        _evaluate(loss, X, y, theta, fit_intercept, weights, l2, t, backend, n_jobs, False, False)[0]
    )


def gradient(
    loss, X, y, theta, *, weights=None, l2=0.0, fit_intercept=True, t=None, backend="cpp", n_jobs=None
) -> np.ndarray:
    """``grad R(theta) = (1/n) sum_i s_i loss'_i xa_i + l2 [w; 0]``, shape (p,)."""
    return _evaluate(loss, X, y, theta, fit_intercept, weights, l2, t, backend, n_jobs, True, False)[1]


def hessian(
    loss, X, y, theta, *, weights=None, l2=0.0, fit_intercept=True, t=None, backend="cpp", n_jobs=None
) -> np.ndarray:
    """``H = (1/n) sum_i s_i loss''_i xa_i xa_i^T + l2 diag(1, .., 1, 0)``, shape (p, p)."""
    return _evaluate(loss, X, y, theta, fit_intercept, weights, l2, t, backend, n_jobs, False, True)[2]


def hessian_vector_product(
    loss, X, y, theta, v, *, weights=None, l2=0.0, fit_intercept=True, t=None, backend="cpp", n_jobs=None
) -> np.ndarray:
    """``H v`` without forming H; ``v`` of shape (p,) or a block (p, k)."""
    problem, theta = _problem(loss, X, y, theta, fit_intercept, weights, l2, t)
    v = np.asarray(v, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[0] != theta.shape[0]:
        raise ValueError(f"v must have shape ({theta.shape[0]},) or ({theta.shape[0]}, k), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("v contains NaN or infinity")
    return get_backend(backend).hessian_vector_product(problem, theta, v, V.check_n_jobs(n_jobs))


def fit_newton(
    loss,
    X,
    y,
    *,
    theta0=None,
    weights=None,
    l2=0.0,
    fit_intercept=True,
    t=None,
    tol=1e-10,
    max_iter=100,
    method="newton",
    backend="cpp",
    n_jobs=None,
) -> dict:
    """Minimise R by Newton's method with line search (warm-started at ``theta0``, default zeros).

    ``method="newton"`` solves with the dense Hessian each iteration (in
    equilibrated coordinates, so the result does not depend on the units of
    the features); ``"newton_cg"`` (truncated Newton) with Jacobi-preconditioned
    CG over Hessian-vector products, never forming H (for large p). The stop
    is certified by the Newton decrement, ``g^T H^{-1} g <= tol^2 * max(R(0), tiny)``,
    and followed by polishing steps (see :mod:`fastinfluence.fitting`).

    Returns a dict with ``theta``, ``n_iter``, ``grad_norm``, ``decrement``
    (the Newton decrement at theta), ``initial_decrement`` (at theta0),
    ``objective_scale`` (``max(R(0), tiny)``), ``objective``, ``converged``,
    ``message`` and ``shifted``. It does not test whether a minimiser exists
    (the models do, see :mod:`fastinfluence.minimiser`).
    """
    problem, _ = _problem(loss, X, y, None, fit_intercept, weights, l2, t)
    p = problem.X.shape[1] + (1 if problem.fit_intercept else 0)
    theta0 = np.zeros(p) if theta0 is None else V.check_vector(theta0, p, "theta0")
    tol = V.check_positive_finite(tol, "tol")
    max_iter = V.check_positive_int(max_iter, "max_iter")
    if method not in ("newton", "newton_cg"):
        raise ValueError(f"method must be 'newton' or 'newton_cg', got {method!r}")
    objective = RowObjective(get_backend(backend), problem, V.check_n_jobs(n_jobs))
    return minimise(objective, theta0, tol=float(tol), max_iter=max_iter, method=method)


def scaled_row_products(X, row_scale, M, *, fit_intercept=True, out=None, backend="cpp", n_jobs=None):
    """``out[i] = row_scale[i] * (x_i^T M[:d] + M[d])``, shape (n, m): the batch-scoring product.

    With ``M = H^{-1} G_test`` and ``row_scale = -loss'`` this is the matrix of
    I_up,loss. ``out`` may be a preallocated C-contiguous float64 (n, m) array
    (a ``numpy.memmap`` for results larger than memory) that overlaps none of
    the inputs.
    """
    X_given, row_scale_given, M_given = X, row_scale, M
    X = V.check_matrix(X, "X")
    row_scale = V.check_vector(row_scale, X.shape[0], "row_scale")
    p = X.shape[1] + (1 if fit_intercept else 0)
    M = _check_block(M, p, "M", vector=False)
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array (or numpy.memmap), got {type(out).__name__}")
        if (
            out.shape != (X.shape[0], M.shape[1])
            or out.dtype != np.float64
            or not (out.flags.c_contiguous and out.flags.writeable)
        ):
            raise ValueError(
                f"out must be a writable C-contiguous float64 array of shape {(X.shape[0], M.shape[1])}; "
                f"got shape {out.shape}, dtype {out.dtype}"
            )
        V.check_out_overlap(out, {"X": X_given, "row_scale": row_scale_given, "M": M_given})
    return get_backend(backend).scaled_row_products(
        X, bool(fit_intercept), row_scale, M, out, V.check_n_jobs(n_jobs)
    )


def row_quadratic_forms(X, A, *, fit_intercept=True, backend="cpp", n_jobs=None):
    """``q_i = ||A xa_i||^2``, shape (n,); with ``A = L^{-1}`` (H = L L^T) it is ``xa_i^T H^{-1} xa_i``."""
    X = V.check_matrix(X, "X")
    A = np.asfortranarray(A, dtype=np.float64)
    p = X.shape[1] + (1 if fit_intercept else 0)
    if A.shape != (p, p):
        raise ValueError(f"A must have shape ({p}, {p}), got {A.shape}")
    return get_backend(backend).row_quadratic_forms(X, bool(fit_intercept), A, V.check_n_jobs(n_jobs))


def _check_block(B, p, name, *, vector=True):
    """A finite (p, m) float64 block in Fortran order (a (p,) vector becomes one column when ``vector``)."""
    V.check_not_masked(B, name)
    B = np.asarray(B)
    if (
        B.dtype == object
        or not (np.issubdtype(B.dtype, np.number) or B.dtype == bool)
        or np.issubdtype(B.dtype, np.complexfloating)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {B.dtype}")
    B = B.astype(np.float64, copy=False)
    if vector and B.ndim == 1:
        B = B[:, None]
    if B.ndim != 2 or B.shape[0] != p:
        expected = f"({p},) or ({p}, m)" if vector else f"({p}, m)"
        raise ValueError(f"{name} must have shape {expected}, got {np.shape(B)}")
    if not np.isfinite(B).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return np.asfortranarray(B)


def _check_curvature(X, c):
    c = V.check_vector(c, X.shape[0], "c")
    if np.any(c < 0):
        raise ValueError("c (curvature weights s_i loss''_i / n) must be non-negative for a convex loss")
    return c


def curvature_weights(
    loss, X, y, theta, *, weights=None, fit_intercept=True, t=None, backend="cpp", n_jobs=None
) -> np.ndarray:
    """``c_i = s_i loss''_i / n`` at theta, shape (n,): ``H = Xa^T diag(c) Xa + l2 diag(1, .., 1, 0)``."""
    problem, theta = _problem(loss, X, y, theta, fit_intercept, weights, 0.0, t)
    return get_backend(backend).curvature_weights(problem, theta, V.check_n_jobs(n_jobs))


def regularised_gram_product(X, c, V_block, *, l2=0.0, fit_intercept=True, backend="cpp", n_jobs=None):
    """``H V = Xa^T diag(c) Xa V + l2 [V_w; 0]`` for a (p, k) block, one pass over X, H never formed."""
    X = V.check_matrix(X, "X")
    c = _check_curvature(X, c)
    p = X.shape[1] + (1 if fit_intercept else 0)
    block = _check_block(V_block, p, "V_block")
    return get_backend(backend).regularised_gram_product(
        X, bool(fit_intercept), c, V.check_nonnegative(l2, "l2"), block, V.check_n_jobs(n_jobs)
    )


def gram_diagonal(X, c, *, fit_intercept=True, backend="cpp", n_jobs=None) -> np.ndarray:
    """``diag(Xa^T diag(c) Xa)``, shape (p,): the Jacobi preconditioner (add l2 to the first d entries)."""
    X = V.check_matrix(X, "X")
    c = _check_curvature(X, c)
    return get_backend(backend).gram_diagonal(X, bool(fit_intercept), c, V.check_n_jobs(n_jobs))


def cg_solve(
    X,
    c,
    B,
    *,
    l2=0.0,
    damping=0.0,
    fit_intercept=True,
    tol=1e-10,
    max_iter=1000,
    x0=None,
    precondition=True,
    backend="cpp",
    n_jobs=None,
):
    """Solve ``(H + damping I) V = B`` by Jacobi-preconditioned CG over Hessian-vector products.

    All columns of B share each pass over X. Returns ``(V, iterations, residual)``:
    the (p, m) solution, the iterations and the final relative residual
    ``||b - A v|| / ||b||`` of every column.
    """
    X = V.check_matrix(X, "X")
    c = _check_curvature(X, c)
    p = X.shape[1] + (1 if fit_intercept else 0)
    B = _check_block(B, p, "B")
    x0 = None if x0 is None else _check_block(x0, p, "x0")
    if x0 is not None and x0.shape != B.shape:
        raise ValueError(f"x0 must have the shape of B, {B.shape}")
    return get_backend(backend).cg_solve(
        X,
        bool(fit_intercept),
        c,
        V.check_nonnegative(l2, "l2"),
        V.check_nonnegative(damping, "damping"),
        B,
        V.check_positive_finite(tol, "tol"),
        V.check_positive_int(max_iter, "max_iter"),
        x0,
        bool(precondition),
        V.check_n_jobs(n_jobs),
    )


def lissa_solve(
    X,
    c,
    B,
    *,
    scale,
    l2=0.0,
    damping=0.0,
    fit_intercept=True,
    depth=5000,
    repeats=1,
    batch_size=256,
    seed=0,
    backend="cpp",
):
    """LiSSA estimate of ``(H + damping I)^{-1} B``: ``v_j = b + (I - (H_j + damping I)/scale) v_{j-1}``.

    ``H_j`` is the Hessian of a mini-batch of ``batch_size`` rows drawn with
    replacement by a seeded splitmix64 generator (the same batches in both
    backends and for any thread count). Returns ``(V, diverged)``; diverged
    columns are NaN. Needs ``scale`` above half the largest eigenvalue of the
    mini-batch Hessians plus damping.
    """
    X = V.check_matrix(X, "X")
    c = _check_curvature(X, c)
    p = X.shape[1] + (1 if fit_intercept else 0)
    B = _check_block(B, p, "B")
    return get_backend(backend).lissa_solve(
        X,
        bool(fit_intercept),
        c,
        V.check_nonnegative(l2, "l2"),
        V.check_nonnegative(damping, "damping"),
        B,
        V.check_positive_finite(scale, "scale"),
        V.check_positive_int(depth, "depth"),
        V.check_positive_int(repeats, "repeats"),
        V.check_positive_int(batch_size, "batch_size"),
        V.check_nonnegative_int(seed, "seed"),
    )


def top_k_scores(X, row_scale, M, k, *, fit_intercept=True, backend="cpp", n_jobs=None):
    """The k most negative and k most positive entries of each column of ``diag(row_scale) Xa M``.

    Streams over row blocks without holding the (n, m) matrix. Returns
    ``(helpful_rows, helpful_scores, harmful_rows, harmful_scores)``, each
    (m, min(k, n)), best first; ties go to the lower row index.
    """
    X = V.check_matrix(X, "X")
    row_scale = V.check_vector(row_scale, X.shape[0], "row_scale")
    p = X.shape[1] + (1 if fit_intercept else 0)
    M = _check_block(M, p, "M")
    k = min(V.check_positive_int(k, "k", maximum=None), X.shape[0])  # at most n rows to rank
    return get_backend(backend).top_k_scores(X, bool(fit_intercept), row_scale, M, k, V.check_n_jobs(n_jobs))
