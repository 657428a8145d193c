"""The stable low-level kernel API, for libraries that build on fastinfluence.

Every function validates its arguments (shapes, dtypes, finiteness, label
domains) and then calls the chosen backend: ``"cpp"`` (compiled, OpenMP),
``"numpy"`` (pure-NumPy reference), or ``"auto"`` (the default: the compiled core where
it loads, else NumPy). Signatures here are stable across minor
versions; :mod:`fastinfluence._core` is private and may change.

Conventions: ``X`` is (n, d): a float32 or float64 array in C or F order
(never copied when it is one of those) or a SciPy sparse matrix (used as CSR;
other formats are converted once); ``theta = (w, b)`` has ``p = d + 1`` entries with an
intercept (``b`` last, unpenalised) and ``d`` without; labels ``y`` are in the
loss's internal encoding (see :mod:`fastinfluence.losses`); ``weights`` are the
sample weights ``s_i`` (None for all ones). The objective is

    R(theta) = (1/n) sum_i s_i loss(y_i, x_i . w + b) + (l2/2) ||w||^2.

The multinomial (softmax) loss of K >= 2 classes (``loss="multinomial"`` with
``n_classes=K``) has K linear predictors per row, ``eta_i = Theta xa_i``, with
``xa_i = (x_i, 1)`` (or ``x_i`` without an intercept), ``q = len(xa_i)`` and
``theta`` of ``p = K q`` entries: Theta (K, q) in row-major, class-major order,
``Theta[k] = (w_k, b_k)`` (scikit-learn's ``coef_`` rows with ``intercept_``
appended). Labels are integer class codes ``0..K-1``; ``P_i = softmax(eta_i)``;

    loss_i = logsumexp(eta_i) - eta_i[y_i],
    R(theta) = (1/n) sum_i s_i loss_i + (l2/2) sum_k ||w_k||^2   (intercepts unpenalised),
    grad, class block k = (1/n) sum_i s_i (P_ik - [y_i = k]) xa_i + l2 (w_k, 0),
    H, block (k, l) = (1/n) sum_i s_i (delta_kl P_ik - P_ik P_il) xa_i xa_i^T + l2 delta_kl diag(1, .., 1, 0).

H is singular along the gauge direction (the same vector added to every class's
parameters), always for the intercepts and for the weights when ``l2 = 0``: the
kernels return the exact H and leave that to the caller. Per-row quantities are
(n, K) arrays; vectors in parameter space (``V_block``, ``M``, ``U``) have the layout
of theta, rows ``k q .. (k + 1) q - 1`` for class k. The Gram and scoring passes
(``multinomial_*``) take ``c = s / n`` and the probabilities ``P`` (or row scales ``R``)
as (n, K) arrays, so they never see labels.
"""

from __future__ import annotations

import numpy as np

from . import _validation as V
from .backends import get_backend
from .backends.contract import Problem
from .exceptions import InvalidArgumentTypeError, InvalidArgumentValueError
from .fitting import RowObjective, minimise
from .losses import CURVATURE_INSTEAD, Loss, get_loss

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
    "multinomial_gram_product",
    "multinomial_gram_diagonal",
    "multinomial_scaled_row_products",
    "multinomial_top_k_scores",
    "multinomial_row_quadratic_forms",
    "multinomial_loo_loss_change",
]


def _problem(
    loss, X, y, theta, fit_intercept, weights=None, l2=0.0, t=None, n_classes=None
) -> tuple[Problem, np.ndarray]:
    """The validated (Problem, theta) of the public arguments."""
    loss = get_loss(loss, t)
    n_classes = _check_n_classes(loss, n_classes)
    X = V.check_matrix(X, "X")
    y = V.check_vector(y, X.shape[0], "y")
    loss.check_targets(y, n_classes=n_classes if loss.multiclass else None)
    p = n_classes * (X.shape[1] + (1 if fit_intercept else 0))
    theta = _check_theta(theta, p, n_classes) if theta is not None else None
    weights = V.check_sample_weight(weights, X.shape[0])
    l2 = V.check_nonnegative(l2, "l2")
    return Problem(loss, X, y, weights, bool(fit_intercept), l2, n_classes), theta


def _check_n_classes(loss: Loss, n_classes) -> int:
    """K for the multinomial loss (required, >= 2); 1 for the per-entry losses (None or 1)."""
    if not loss.multiclass:
        if n_classes is not None and n_classes != 1:
            raise InvalidArgumentValueError(
                "n_classes", f"is for the multinomial loss only; the {loss.name} loss has one class"
            )
        return 1
    if n_classes is None:
        raise InvalidArgumentValueError("n_classes", f"must be given for the {loss.name} loss (K >= 2)")
    k = V.check_positive_int(n_classes, "n_classes")
    if k < 2:
        raise InvalidArgumentValueError("n_classes", f"must be at least 2 for the {loss.name} loss, got {k}")
    return k


def _check_theta(theta, p, n_classes):
    if n_classes == 1:
        return V.check_vector(theta, p, "theta")
    arr = np.asarray(theta)
    if arr.ndim == 2 and arr.shape == (n_classes, p // n_classes):
        theta = arr.reshape(-1)  # Theta (K, q) given as a matrix: its rows in order
    elif arr.ndim == 1 and arr.shape[0] != p:
        raise InvalidArgumentValueError(
            "theta",
            f"has {arr.shape[0]} entries, expected {p} = n_classes * q = {n_classes} * {p // n_classes} "
            "(Theta (K, q) flattened class by class)",
        )
    return V.check_vector(theta, p, "theta")


def loss_terms(loss: str | Loss, y, eta, *, t=None, backend="auto"):
    """Elementwise ``(loss(y, eta), d loss/d eta, d^2 loss/d eta^2)``, each of shape (n,).

    For the per-entry losses only (the multinomial loss: :func:`row_derivatives` with ``n_classes``)."""
    loss = get_loss(loss, t)
    loss.require_per_entry("loss_terms")
    y = V.check_vector(y, None, "y")
    loss.check_targets(y)
    eta = V.check_vector(eta, y.shape[0], "eta")
    return get_backend(backend).loss_terms(loss, y, eta)


def loss_difference(loss: str | Loss, y, eta, delta, *, t=None, backend="auto"):
    """``loss(y, eta + delta) - loss(y, eta)`` elementwise, accurate for small delta.

    For the per-entry losses only (the multinomial loss: :func:`multinomial_loo_loss_change`)."""
    loss = get_loss(loss, t)
    loss.require_per_entry("loss_difference")
    y = V.check_vector(y, None, "y")
    loss.check_targets(y)
    eta = V.check_vector(eta, y.shape[0], "eta")
    delta = V.check_vector(delta, y.shape[0], "delta")
    return get_backend(backend).loss_difference(loss, y, eta, delta)


def row_derivatives(
    loss, X, y, theta, *, fit_intercept=True, t=None, n_classes=None, backend="auto", n_jobs=None
):
    """Per-row ``(eta, loss, loss', loss'')`` at theta, each (n,), in one pass over X.

    For the multinomial loss (``n_classes=K``): ``eta = Theta xa_i`` (n, K), ``loss`` (n,),
    ``loss' = P - Y`` (n, K) with Y the one-hot labels, and ``P = softmax(eta)`` (n, K) in
    place of loss'' (the curvature block of row i is ``diag(P_i) - P_i P_i^T``).
    """
    problem, theta = _problem(loss, X, y, theta, fit_intercept, t=t, n_classes=n_classes)
    return get_backend(backend).row_derivatives(problem, theta, V.check_n_jobs(n_jobs))


def _evaluate(
    loss, X, y, theta, fit_intercept, weights, l2, t, backend, n_jobs, want_gradient, want_hessian, n_classes
):
    problem, theta = _problem(loss, X, y, theta, fit_intercept, weights, l2, t, n_classes)
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
    n_classes=None,
    backend="auto",
    n_jobs=None,
):
    """``(R(theta), grad R | None, H | None)`` in one fused pass over X.

    ``n_classes=K`` with the multinomial loss (see the module's documentation for its R, grad
    and H, of p = K q entries in the class-major layout of theta).

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
        n_classes,
    )


def objective(
    loss,
    X,
    y,
    theta,
    *,
    weights=None,
    l2=0.0,
    fit_intercept=True,
    t=None,
    n_classes=None,
    backend="auto",
    n_jobs=None,
) -> float:
    """``R(theta)``."""
    value = _evaluate(
        loss, X, y, theta, fit_intercept, weights, l2, t, backend, n_jobs, False, False, n_classes
    )[0]
    return float(value)


def gradient(
    loss,
    X,
    y,
    theta,
    *,
    weights=None,
    l2=0.0,
    fit_intercept=True,
    t=None,
    n_classes=None,
    backend="auto",
    n_jobs=None,
) -> np.ndarray:
    """``grad R(theta) = (1/n) sum_i s_i loss'_i xa_i + l2 [w; 0]``, shape (p,)."""
    return _evaluate(
        loss, X, y, theta, fit_intercept, weights, l2, t, backend, n_jobs, True, False, n_classes
    )[1]


def hessian(
    loss,
    X,
    y,
    theta,
    *,
    weights=None,
    l2=0.0,
    fit_intercept=True,
    t=None,
    n_classes=None,
    backend="auto",
    n_jobs=None,
) -> np.ndarray:
    """``H = (1/n) sum_i s_i loss''_i xa_i xa_i^T + l2 diag(1, .., 1, 0)``, shape (p, p)."""
    return _evaluate(
        loss, X, y, theta, fit_intercept, weights, l2, t, backend, n_jobs, False, True, n_classes
    )[2]


def hessian_vector_product(
    loss,
    X,
    y,
    theta,
    v,
    *,
    weights=None,
    l2=0.0,
    fit_intercept=True,
    t=None,
    n_classes=None,
    backend="auto",
    n_jobs=None,
) -> np.ndarray:
    """``H v`` without forming H; ``v`` of shape (p,) or a block (p, k)."""
    problem, theta = _problem(loss, X, y, theta, fit_intercept, weights, l2, t, n_classes)
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
    backend="auto",
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


def scaled_row_products(X, row_scale, M, *, fit_intercept=True, out=None, backend="auto", n_jobs=None):
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
    _check_out(out, (X.shape[0], M.shape[1]), {"X": X_given, "row_scale": row_scale_given, "M": M_given})
    return get_backend(backend).scaled_row_products(
        X, bool(fit_intercept), row_scale, M, out, V.check_n_jobs(n_jobs)
    )


def _check_out(out, shape, inputs) -> None:
    """None, or a writable C-contiguous float64 array of ``shape`` that overlaps none of ``inputs``."""
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array (or numpy.memmap), got {type(out).__name__}")
    if out.shape != shape or out.dtype != np.float64 or not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(
            f"out must be a writable C-contiguous float64 array of shape {shape}; "
            f"got shape {out.shape}, dtype {out.dtype}"
        )
    V.check_out_overlap(out, inputs)


def row_quadratic_forms(X, A, *, fit_intercept=True, backend="auto", n_jobs=None):
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
    loss, X, y, theta, *, weights=None, fit_intercept=True, t=None, backend="auto", n_jobs=None
) -> np.ndarray:
    """``c_i = s_i loss''_i / n`` at theta, shape (n,): ``H = Xa^T diag(c) Xa + l2 diag(1, .., 1, 0)``."""
    get_loss(loss, t).require_per_entry("curvature_weights", CURVATURE_INSTEAD)
    problem, theta = _problem(loss, X, y, theta, fit_intercept, weights, 0.0, t)
    return get_backend(backend).curvature_weights(problem, theta, V.check_n_jobs(n_jobs))


def regularised_gram_product(X, c, V_block, *, l2=0.0, fit_intercept=True, backend="auto", n_jobs=None):
    """``H V = Xa^T diag(c) Xa V + l2 [V_w; 0]`` for a (p, k) block, one pass over X, H never formed."""
    X = V.check_matrix(X, "X")
    c = _check_curvature(X, c)
    p = X.shape[1] + (1 if fit_intercept else 0)
    block = _check_block(V_block, p, "V_block")
    return get_backend(backend).regularised_gram_product(
        X, bool(fit_intercept), c, V.check_nonnegative(l2, "l2"), block, V.check_n_jobs(n_jobs)
    )


def gram_diagonal(X, c, *, fit_intercept=True, backend="auto", n_jobs=None) -> np.ndarray:
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
    backend="auto",
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
    backend="auto",
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


def top_k_scores(X, row_scale, M, k, *, fit_intercept=True, backend="auto", n_jobs=None, screening=None):
    """The k most negative and k most positive entries of each column of ``diag(row_scale) Xa M``.

    Streams over row blocks without holding the (n, m) matrix. Returns
    ``(helpful_rows, helpful_scores, harmful_rows, harmful_scores)``, each
    (m, min(k, n)), best first; ties go to the lower row index.

    For dense X the compiled backend screens the scores in float32, with a
    rigorous bound on their error, and recomputes in float64 only the scores
    that could enter a top k: the result is still the top k of the float64
    scores, about twice as fast. ``screening=None`` screens where it pays
    (n >= 4096, m >= 8), ``True`` wherever the data allow it (finite, dense,
    norms below 2**60), ``False`` never. The two passes can differ only where
    two scores are within a few ulps, as any two float64 sums can. The NumPy
    backend always computes the float64 scores.
    """
    X = V.check_matrix(X, "X")
    row_scale = V.check_vector(row_scale, X.shape[0], "row_scale")
    p = X.shape[1] + (1 if fit_intercept else 0)
    M = _check_block(M, p, "M")
    k = min(V.check_positive_int(k, "k", maximum=None), X.shape[0])  # at most n rows to rank
    return get_backend(backend).top_k_scores(
        X, bool(fit_intercept), row_scale, M, k, V.check_n_jobs(n_jobs), _check_screening(screening)
    )


def _check_screening(screening):
    if screening is not None and not isinstance(screening, (bool, np.bool_)):
        raise TypeError(f"screening must be None, True or False, got {screening!r}")
    return None if screening is None else bool(screening)


# ---------------------------------------------------------------------------
# The multinomial loss: Gram and scoring passes over (n, K) per-row arrays
# ---------------------------------------------------------------------------


def _check_per_row(A, n, name, what, n_classes=None):
    """A finite (n, K) float64 C-order array, K >= 2 (or ``n_classes``): one K-vector per row."""
    V.check_not_masked(A, name)
    arr = np.asarray(A)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InvalidArgumentTypeError(name, f"must hold real numbers, got dtype {arr.dtype}")
    expected = f"({n}, K) with K >= 2" if n_classes is None else f"({n}, {n_classes})"
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
        raise InvalidArgumentValueError(name, f"must have shape {expected} ({what}), got {arr.shape}")
    if n_classes is not None and arr.shape[1] != n_classes:
        raise InvalidArgumentValueError(name, f"must have shape {expected} ({what}), got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise InvalidArgumentValueError(name, "contains NaN or infinity")
    return arr


def _check_probabilities(P, n):
    """Class probabilities (n, K): entries in [0, 1], rows summing to 1."""
    P = _check_per_row(P, n, "P", "the class probabilities softmax(eta_i) of each row")
    if np.any(P < 0) or np.any(P > 1):
        raise InvalidArgumentValueError("P", "must hold probabilities in [0, 1]")
    worst = float(np.max(np.abs(P.sum(axis=1) - 1.0)))
    if worst > 1e-6:
        raise InvalidArgumentValueError(
            "P", f"rows must sum to 1 (the softmax of each row's eta), found a row off by {worst:.1e}"
        )
    return P


def _multinomial_params(X, fit_intercept, n_classes):
    return n_classes * (X.shape[1] + (1 if fit_intercept else 0))


def multinomial_gram_product(X, c, P, V_block, *, l2=0.0, fit_intercept=True, backend="auto", n_jobs=None):
    """``H V`` of the multinomial loss for a (p, m) block, one pass over X, H never formed.

    ``H = sum_i c_i Q_i kron (xa_i xa_i^T) + l2 (I_K kron diag(1, .., 1, 0))`` in the class-major
    layout of theta (block (k, l) is ``sum_i c_i Q_i[k, l] xa_i xa_i^T``), with
    ``Q_i = diag(P_i) - P_i P_i^T``: with ``c = s / n`` and ``P`` (n, K) the probabilities of
    :func:`row_derivatives` at theta it is the Hessian of R. ``V_block`` is (p, m) or (p,)
    (one column), p = K q; returns (p, m).
    """
    X = V.check_matrix(X, "X")
    c = _check_curvature(X, c)
    P = _check_probabilities(P, X.shape[0])
    block = _check_block(V_block, _multinomial_params(X, fit_intercept, P.shape[1]), "V_block")
    return get_backend(backend).multinomial_gram_product(
        X, bool(fit_intercept), c, P, V.check_nonnegative(l2, "l2"), block, V.check_n_jobs(n_jobs)
    )


def multinomial_gram_diagonal(X, c, P, *, fit_intercept=True, backend="auto", n_jobs=None) -> np.ndarray:
    """The diagonal of the data part of the multinomial H (no l2), shape (p,): entry ``k q + j`` is
    ``sum_i c_i P_ik (1 - P_ik) xa_ij^2``. Add l2 to the weight entries for the Jacobi preconditioner."""
    X = V.check_matrix(X, "X")
    c = _check_curvature(X, c)
    P = _check_probabilities(P, X.shape[0])
    return get_backend(backend).multinomial_gram_diagonal(
        X, bool(fit_intercept), c, P, V.check_n_jobs(n_jobs)
    )


def multinomial_scaled_row_products(X, R, M, *, fit_intercept=True, out=None, backend="auto", n_jobs=None):
    """``out[i, j] = sum_k R[i, k] * (xa_i . M[k q:(k + 1) q, j])``, shape (n, m).

    ``R`` is (n, K), ``M`` (p, m) in the class-major layout, p = K q: with ``R = -s (P - Y)``
    (per row) and ``M = H^{-1} G_test`` this is the matrix of I_up,loss of every training row on
    every test point. ``out`` may be a preallocated C-contiguous float64 (n, m) array that overlaps
    none of the inputs; it is written and returned.
    """
    X_given, R_given, M_given = X, R, M
    X = V.check_matrix(X, "X")
    R = _check_per_row(R, X.shape[0], "R", "one scale per row and class")
    M = _check_block(M, _multinomial_params(X, fit_intercept, R.shape[1]), "M", vector=False)
    _check_out(out, (X.shape[0], M.shape[1]), {"X": X_given, "R": R_given, "M": M_given})
    return get_backend(backend).multinomial_scaled_row_products(
        X, bool(fit_intercept), R, M, out, V.check_n_jobs(n_jobs)
    )


def multinomial_top_k_scores(X, R, M, k, *, fit_intercept=True, backend="auto", n_jobs=None, screening=None):
    """The k most negative and k most positive entries of each column of the scores of
    :func:`multinomial_scaled_row_products`, streaming over row blocks (O(m k) memory).

    Returns ``(helpful_rows, helpful_scores, harmful_rows, harmful_scores)``, each (m, min(k, n)),
    best first; ties go to the lower row index (as :func:`top_k_scores`). ``screening`` as for
    :func:`top_k_scores`: the exact top k of the float64 scores through a float32 pass.
    """
    X = V.check_matrix(X, "X")
    R = _check_per_row(R, X.shape[0], "R", "one scale per row and class")
    M = _check_block(M, _multinomial_params(X, fit_intercept, R.shape[1]), "M")
    k = min(V.check_positive_int(k, "k", maximum=None), X.shape[0])
    return get_backend(backend).multinomial_top_k_scores(
        X, bool(fit_intercept), R, M, k, V.check_n_jobs(n_jobs), _check_screening(screening)
    )


def multinomial_row_quadratic_forms(X, A, *, n_classes, fit_intercept=True, backend="auto", n_jobs=None):
    """``S[i, k, l] = (A_k xa_i) . (A_l xa_i)`` with ``A_k = A[:, k q:(k + 1) q]``, shape (n, K, K).

    ``A`` is (r, p), p = K q: with ``H^{-1} = A^T A`` (A = L^{-1} for H = L L^T) ``S[i]`` is the
    K x K block ``(I_K kron xa_i)^T H^{-1} (I_K kron xa_i)`` behind self-influence and leverage.
    """
    X = V.check_matrix(X, "X")
    n_classes = _check_n_classes(Loss("multinomial"), n_classes)
    p = _multinomial_params(X, fit_intercept, n_classes)
    V.check_not_masked(A, "A")
    A = np.asarray(A)
    if A.dtype == object or not np.issubdtype(A.dtype, np.number) or np.iscomplexobj(A):
        raise InvalidArgumentTypeError("A", f"must hold real numbers, got dtype {A.dtype}")
    if A.ndim != 2 or A.shape[1] != p or A.shape[0] < 1:
        raise InvalidArgumentValueError("A", f"must have shape (r, {p}) (p = n_classes * q), got {A.shape}")
    A = np.asfortranarray(A, dtype=np.float64)
    if not np.isfinite(A).all():
        raise InvalidArgumentValueError("A", "contains NaN or infinity")
    return get_backend(backend).multinomial_row_quadratic_forms(
        X, bool(fit_intercept), A, n_classes, V.check_n_jobs(n_jobs)
    )


def multinomial_loo_loss_change(
    X, R, U, y_test, eta_test, *, fit_intercept=True, out=None, backend="auto", n_jobs=None
):
    """``loss(y_j, eta_j + delta_ij) - loss(y_j, eta_j)`` of the multinomial loss, shape (n, m).

    ``delta_ij`` (a K-vector) is ``delta_ijl = sum_k R[i, k] * (xa_i . U[k q:(k + 1) q, j K + l])``:
    ``U`` (p, m K) holds K columns per test point j (column ``j K + l`` for class l), ``R`` is
    (n, K), ``eta_test`` (m, K) the test points' linear predictors and ``y_test`` (m,) their class
    codes. With the one-step Newton estimate of leaving row i out this is the change of test loss.
    The difference is computed without cancellation (exact to rounding for deltas of any size,
    1e-10 or 1e3). ``out`` as in :func:`multinomial_scaled_row_products`.
    """
    X_given, R_given, U_given = X, R, U
    X = V.check_matrix(X, "X")
    R = _check_per_row(R, X.shape[0], "R", "one scale per row and class")
    K = R.shape[1]
    y_test = V.check_vector(y_test, None, "y_test")
    Loss("multinomial").check_targets(y_test, "y_test", n_classes=K)
    m = y_test.shape[0]
    eta_test = _check_per_row(eta_test, m, "eta_test", "the test points' linear predictors", n_classes=K)
    U = _check_block(U, _multinomial_params(X, fit_intercept, K), "U", vector=False)
    if U.shape[1] != m * K:
        raise InvalidArgumentValueError(
            "U", f"must have m * K = {m * K} columns (K per test point), got {U.shape[1]}"
        )
    _check_out(out, (X.shape[0], m), {"X": X_given, "R": R_given, "U": U_given})
    return get_backend(backend).multinomial_loo_loss_change(
        X, bool(fit_intercept), R, U, y_test, eta_test, out, V.check_n_jobs(n_jobs)
    )
