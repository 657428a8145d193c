"""Solvers for the Hessian systems (H + damping I) V = B behind every influence quantity.

Three solvers share one interface (``solve(B)`` for a (p, m) block of
right-hand sides, ``inverse()``, and ``inverse_factor()`` where a
factorisation exists):

``"direct"``
    Dense Cholesky of H + damping I, factorised once; refuses a numerically
    singular H (reciprocal condition estimate below
    :data:`MIN_RECIPROCAL_CONDITION`) with an error that names ``damping``.
``"cg"``
    Conjugate gradient over Hessian-vector products (H is never formed), all
    right-hand sides in one pass over X per iteration, Jacobi (Hessian
    diagonal) preconditioner by default. Options: ``tol`` (relative residual,
    default 1e-10), ``max_iter`` (default 1000), ``preconditioner``
    ("jacobi" or None).
``"lissa"``
    The stochastic recursion of Agarwal et al. used by Koh & Liang:
    ``v_j = b + (I - (H_batch + damping I)/scale) v_{j-1}``, result
    ``v_depth / scale`` averaged over ``repeats``. Options: ``scale`` (default
    1.1 x the largest eigenvalue of H + damping, estimated by Lanczos),
    ``depth`` (5000), ``repeats`` (1), ``batch_size`` (256), ``seed`` (0).
    Reproducible for a seed whatever the thread count. Its result is checked
    by one exact Hessian-vector product: a relative residual above
    ``warn_residual`` (1e-2) warns, a diverging recursion warns and gives NaN.
``"auto"``
    ``"direct"`` when p <= :data:`AUTO_DIRECT_MAX_PARAMS` (4096: the dense H
    then takes at most 128 MiB and its Cholesky well under a second), else
    ``"cg"``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from . import _validation
from .exceptions import ConvergenceWarning, IllConditionedHessianError

SOLVERS = ("auto", "direct", "cg", "lissa")

#: ``solver="auto"`` factorises H directly up to this many parameters.
AUTO_DIRECT_MAX_PARAMS = 4096

#: CG judges the conditioning of H (equilibrated, as the direct solver does) up to this many
#: parameters, where forming H costs one pass over X with p columns; above, see hessian_spectrum().
CG_CONDITION_CHECK_MAX_PARAMS = 512

#: A factorisation whose reciprocal condition estimate is below this is
#: refused: its solves would carry relative errors above ~1e-4.
MIN_RECIPROCAL_CONDITION = 1e-12

_SOLVER_OPTIONS: dict[str, dict[str, Any]] = {
    "direct": {},
    "cg": {"tol": 1e-10, "max_iter": 1000, "preconditioner": "jacobi"},
    "lissa": {
        "scale": None,
        "depth": 5000,
        "repeats": 1,
        "batch_size": 256,
        "seed": 0,
        "warn_residual": 1e-2,
    },
}


def _as_block(B) -> tuple[np.ndarray, bool]:
    """Right-hand sides as a Fortran-order float64 (p, m) block, and whether B was one vector."""
    B = np.asarray(B, dtype=np.float64)
    vec = B.ndim == 1
    return np.asfortranarray(B[:, None] if vec else B), vec


def resolve_solver(name: str, n_params: int) -> str:
    """The concrete solver for ``name`` (``"auto"`` resolved by the rule above)."""
    if name not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {name!r}")
    if name == "auto":
        return "direct" if n_params <= AUTO_DIRECT_MAX_PARAMS else "cg"
    return name


def check_solver_options(solver: str, options) -> dict:
    """Defaults of ``solver`` updated by ``options`` (a mapping or None), each value checked.

    Unknown keys are an error naming them. Numbers may be Python or NumPy
    scalars; NaN, infinities (but ``warn_residual=inf``: never warn) and
    integers beyond the compiled core's C ``int`` (the LiSSA seed: unsigned
    64-bit) are refused with an error naming the option.
    """
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(
            f"solver_options must be a dict (or another mapping) of option names to values, or None; "
            f"got {type(options).__name__} {options!r}"
        )
    allowed = _SOLVER_OPTIONS[solver]
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed), key=repr)
    if unknown:
        raise ValueError(
            f"solver_options {unknown} are not options of solver={solver!r}; "
            f"it takes {sorted(allowed) or 'none'}"
        )
    merged = {**allowed, **options}
    if solver == "cg":
        merged["tol"] = _validation.check_positive_finite(merged["tol"], "solver_options['tol']")
        merged["max_iter"] = _validation.check_positive_int(merged["max_iter"], "solver_options['max_iter']")
        if merged["preconditioner"] not in ("jacobi", None):
            raise ValueError(
                f"solver_options['preconditioner'] must be 'jacobi' or None, got {merged['preconditioner']!r}"
            )
    if solver == "lissa":
        for key in ("depth", "repeats", "batch_size"):
            merged[key] = _validation.check_positive_int(merged[key], f"solver_options[{key!r}]")
        if merged["scale"] is not None:
            merged["scale"] = _validation.check_positive_finite(merged["scale"], "solver_options['scale']")
        merged["seed"] = _validation.check_nonnegative_int(merged["seed"], "solver_options['seed']")
        if merged["warn_residual"] != math.inf:  # inf: never warn
            merged["warn_residual"] = _validation.check_positive_finite(
                merged["warn_residual"], "solver_options['warn_residual']"
            )
    return merged


def suggest_damping(largest_eigenvalue: float) -> float:
    """A damping that bounds the condition number of H + damping I near 1e8."""
    value = max(1e-8 * abs(largest_eigenvalue), 1e-12)
    return float(f"{value:.0e}")


def jacobi_inverse(diagonal: np.ndarray) -> np.ndarray:
    """The Jacobi preconditioner diag(A)^{-1}, with 1 where an entry is not positive (or NaN)."""
    positive = diagonal > 0
    return np.where(positive, 1.0 / np.where(positive, diagonal, 1.0), 1.0)


def conjugate_gradient(apply, B, inv_diag, X0, tol, max_iter):
    """Per-column preconditioned CG for A X = B; every iteration applies A to all active columns at once.

    ``apply(D)`` is A D for a (p, k) block; ``inv_diag`` the Jacobi preconditioner (or None).
    The algorithm of the compiled ``cg_solve`` kernel, over any operator: the NumPy backend's
    ``cg_solve`` and the Dask engine (one pass over the chunks per iteration) run it.
    Returns (solution, iterations, relative residuals)."""
    p, m = B.shape
    X = np.zeros((p, m)) if X0 is None else np.array(X0, dtype=np.float64)
    iterations = np.zeros(m, dtype=np.int32)
    b_norm = np.linalg.norm(B, axis=0)
    # r = b - A x ;  z = M^{-1} r ;  d = z
    R = B - apply(X) if X0 is not None else B.copy()
    Z = R * inv_diag[:, None] if inv_diag is not None else R.copy()
    D = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    residual = np.where(b_norm > 0, np.linalg.norm(R, axis=0) / np.where(b_norm > 0, b_norm, 1.0), 0.0)
    X[:, b_norm == 0] = 0.0
    active = [j for j in range(m) if b_norm[j] > 0 and residual[j] > tol]
    for it in range(1, max_iter + 1):
        if not active:
            break
        Dk = D[:, active]
        ADk = apply(Dk)
        still = []
        for a, j in enumerate(active):
            curvature = Dk[:, a] @ ADk[:, a]
            iterations[j] = it
            if not curvature > 0:
                residual[j] = np.linalg.norm(R[:, j]) / b_norm[j]
                continue
            # alpha = r.z / d.Ad ;  x += alpha d ;  r -= alpha Ad
            alpha = rz[j] / curvature
            X[:, j] += alpha * Dk[:, a]
            R[:, j] -= alpha * ADk[:, a]
            residual[j] = np.linalg.norm(R[:, j]) / b_norm[j]
            if residual[j] <= tol:
                continue
            z = R[:, j] * inv_diag if inv_diag is not None else R[:, j].copy()
            rz_new = R[:, j] @ z
            D[:, j] = z + (rz_new / rz[j]) * D[:, j]
            rz[j] = rz_new
            still.append(j)
        active = still
    return X, iterations, residual


class HessianOperator:
    """H + damping I at the fitted theta as an operator: what the solvers need of an engine.

    An engine provides ``matmat`` (H V for a (p, k) block), ``diagonal`` (diag(H + damping I))
    and ``conjugate_gradient`` (Jacobi-preconditioned CG on (H + damping I) V = B); ``dense``
    and ``extreme_eigenvalues`` are written here once over ``matmat``. Attributes:
    ``n_params``, ``damping``, ``fit_intercept``, ``backend`` (the kernels' module) and ``X``
    (in-memory data, or None where the rows are not on this machine).
    """

    n_params: int
    damping: float = 0.0
    fit_intercept: bool
    backend: Any = None
    X: Any = None
    _data_diagonal: np.ndarray | None = None

    def matmat(self, V: np.ndarray) -> np.ndarray:
        """(H + damping I) V: the engine's ``hessian_products(V)`` (H V) plus the damping."""
        V = np.asfortranarray(V, dtype=np.float64)
        HV = self.hessian_products(V)
        return HV + self.damping * V if self.damping else HV

    def hessian_products(self, V: np.ndarray) -> np.ndarray:
        """H V for a (p, k) Fortran-ordered block (the engine's pass)."""
        raise NotImplementedError

    def undamped_diagonal(self) -> np.ndarray:
        """diag(H) (the engine's pass)."""
        raise NotImplementedError

    def diagonal(self) -> np.ndarray:
        """diag(H + damping I); diag(H) is computed once per operator."""
        if self._data_diagonal is None:
            self._data_diagonal = np.array(self.undamped_diagonal(), dtype=np.float64)
        return self._data_diagonal + self.damping

    def with_damping(self, damping: float) -> HessianOperator:
        """The same H with another damping (diag(H) is shared, not recomputed)."""
        other = copy.copy(self)
        other.damping = float(damping)
        return other

    def conjugate_gradient(self, B, tol, max_iter, x0=None, precondition=True):
        """(V, iterations, relative residuals) of CG on (H + damping I) V = B; by default the
        algorithm of :func:`conjugate_gradient` over ``matmat``, one call per iteration."""
        inv_diag = jacobi_inverse(self.diagonal()) if precondition else None
        return conjugate_gradient(self.matmat, np.asarray(B, dtype=np.float64), inv_diag, x0, tol, max_iter)

    def dense(self) -> np.ndarray:
        """H + damping I as a dense matrix (p Hessian-vector products in one pass)."""
        H = self.matmat(np.eye(self.n_params))
        return 0.5 * (H + H.T)

    def extreme_eigenvalues(self, tol: float = 1e-6) -> tuple[float, float]:
        """(smallest, largest) eigenvalue of H + damping I: exact for p <= 512, else Lanczos (ARPACK)."""
        p = self.n_params
        if p <= 512:
            eig = np.linalg.eigvalsh(self.dense())
            return float(eig[0]), float(eig[-1])
        op = LinearOperator((p, p), matvec=lambda v: self.matmat(v[:, None])[:, 0], dtype=np.float64)
        largest = float(eigsh(op, k=1, which="LA", tol=tol, return_eigenvectors=False)[0])
        # smallest of H = largest - (largest eigenvalue of largest*I - H): 'LA' converges faster than 'SA'
        shifted = LinearOperator((p, p), matvec=lambda v: largest * v - op.matvec(v), dtype=np.float64)
        gap = float(eigsh(shifted, k=1, which="LA", tol=tol, return_eigenvectors=False)[0])
        return largest - gap, largest


class RowHessianOperator(HessianOperator):
    """H + damping I over in-memory X: H V by one fused pass of the backend's kernels.

    ``H = Xa^T diag(c) Xa + l2 diag(1, .., 1, 0)`` with the curvature weights
    ``c_i = s_i loss''_i / n`` fixed at the fitted theta.
    """

    def __init__(self, backend, X, fit_intercept, c, l2, damping, n_jobs):
        self.backend, self.X, self.fit_intercept = backend, X, fit_intercept
        self.c, self.l2, self.damping, self.n_jobs = c, l2, damping, n_jobs
        self.n_params = X.shape[1] + (1 if fit_intercept else 0)

    def hessian_products(self, V: np.ndarray) -> np.ndarray:
        return self.backend.regularised_gram_product(
            self.X, self.fit_intercept, self.c, self.l2, V, self.n_jobs
        )

    def undamped_diagonal(self) -> np.ndarray:
        top = np.array(
            self.backend.gram_diagonal(self.X, self.fit_intercept, self.c, self.n_jobs), dtype=np.float64
        )
        top[: self.X.shape[1]] += self.l2
        return top

    def conjugate_gradient(self, B, tol, max_iter, x0=None, precondition=True):
        """The backend's fused CG kernel (the compiled one streams X once per iteration)."""
        return self.backend.cg_solve(
            self.X,
            self.fit_intercept,
            self.c,
            self.l2,
            self.damping,
            np.asfortranarray(B, dtype=np.float64),
            tol,
            max_iter,
            None if x0 is None else np.asfortranarray(x0),
            precondition,
            self.n_jobs,
        )


class MultinomialHessianOperator(HessianOperator):
    """H + damping I of the multinomial objective over in-memory X:
    ``sum_i c_i (xa_i xa_i^T) kron Q_i + l2 (weights) + Gamma``, ``Q_i = diag(P_i) - P_i P_i^T``,
    with ``c_i = s_i / n``, the probabilities P fixed at the fitted theta, and the gauge term
    Gamma (:class:`fastinfluence.multinomial.Gauge`) that makes it definite."""

    def __init__(self, backend, X, fit_intercept, c, P, l2, gauge, damping, n_jobs):
        self.backend, self.X, self.fit_intercept = backend, X, fit_intercept
        self.c, self.P, self.l2, self.gauge = c, P, l2, gauge
        self.damping, self.n_jobs = damping, n_jobs
        self.n_params = P.shape[1] * (X.shape[1] + (1 if fit_intercept else 0))

    def hessian_products(self, V: np.ndarray) -> np.ndarray:
        HV = self.backend.multinomial_gram_product(
            self.X, self.fit_intercept, self.c, self.P, self.l2, V, self.n_jobs
        )
        return np.asarray(HV) if self.gauge is None else np.asarray(HV) + self.gauge.product(V)

    def undamped_diagonal(self) -> np.ndarray:
        diagonal = np.array(
            self.backend.multinomial_gram_diagonal(self.X, self.fit_intercept, self.c, self.P, self.n_jobs),
            dtype=np.float64,
        )
        d = self.X.shape[1]
        blocks = diagonal.reshape(self.P.shape[1], -1)
        blocks[:, :d] += self.l2
        return diagonal if self.gauge is None else diagonal + self.gauge.diagonal()


class SumOperator(HessianOperator):
    """sum_k sign_k H_k of undamped operators: the Hessian of a
    :class:`fastinfluence.fitting.SumObjective`."""

    def __init__(self, operators, signs, damping=0.0):
        self.operators, self.signs, self.damping = list(operators), list(signs), float(damping)
        first = self.operators[0]
        self.n_params, self.fit_intercept, self.backend = first.n_params, first.fit_intercept, first.backend

    def hessian_products(self, V: np.ndarray) -> np.ndarray:
        return sum(sign * np.asarray(op.hessian_products(V)) for op, sign in zip(self.operators, self.signs))

    def undamped_diagonal(self) -> np.ndarray:
        return sum(sign * np.asarray(op.undamped_diagonal()) for op, sign in zip(self.operators, self.signs))


def row_hessian_operator(backend, problem, d2, damping, n_jobs, gauge=None) -> HessianOperator:
    """H + damping I over the in-memory rows of ``problem`` at theta, from loss'' per row (the
    probabilities P for the multinomial loss, with its ``gauge``)."""
    p = problem
    n = p.X.shape[0]
    if p.n_classes > 1:
        s = np.ones(n) if p.weights is None else np.asarray(p.weights, dtype=np.float64)
        return MultinomialHessianOperator(
            backend, p.X, p.fit_intercept, s / n, d2, p.l2, gauge, damping, n_jobs
        )
    c = d2 / n if p.weights is None else np.asarray(p.weights, dtype=np.float64) * d2 / n
    return RowHessianOperator(backend, p.X, p.fit_intercept, c, p.l2, damping, n_jobs)


def spectrum_summary(smallest: float, largest: float) -> dict:
    return {
        "smallest_eigenvalue": smallest,
        "largest_eigenvalue": largest,
        "condition_number": largest / smallest if smallest > 0 else float("inf"),
        "suggested_damping": suggest_damping(largest),
    }


def equilibration(diagonal: np.ndarray) -> np.ndarray:
    """S = diag(H)^{-1/2} (1 where an entry is not positive): S H S has a unit diagonal, so its
    conditioning does not depend on the units of the features."""
    return 1.0 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))


def conditioning_advice(diagonal: np.ndarray, damping: float) -> str:
    """What to do about a Hessian that is singular even in equilibrated form."""
    positive = diagonal[diagonal > 0]
    spread = float(positive.max() / positive.min()) if positive.size else 1.0
    advice = "fit with l2 > 0 (features are nearly collinear)"
    if spread > 1e4:
        return (
            f"{advice}, and standardise the features: the diagonal of H spans a factor {spread:.1e}, and "
            "damping shifts every coordinate alike, so it would bias the small ones most"
        )
    typical = float(np.median(positive)) if positive.size else 1.0
    return (
        f"{advice}, or increase damping (currently {damping:g}; for example "
        f"damping={suggest_damping(typical):g}, 1e-8 of the typical diagonal entry of H)"
    )


class DirectSolver:
    """Dense Cholesky factorisation of H + damping I in equilibrated form, with a conditioning check.

    ``A = S (H + damping I) S`` with ``S = diag(H + damping I)^{-1/2}`` is
    factorised, ``A = L L^T``, and ``(H + damping I)^{-1} B = S A^{-1} S B``.
    The conditioning is judged on A: a problem that is ill-conditioned only
    because its features are in different units (income in dollars beside a
    0/1 indicator) is solved to full accuracy; one whose equilibrated
    reciprocal condition is below :data:`MIN_RECIPROCAL_CONDITION` is refused.
    """

    name = "direct"

    def __init__(self, H: np.ndarray, damping: float, backend):
        self.damping = damping
        diagonal = np.diag(H) + damping
        self.scale = equilibration(diagonal)
        A = H * self.scale[:, None] * self.scale[None, :]
        A[np.diag_indices_from(A)] += damping * self.scale**2
        self._impl = backend.CholeskySolver(np.asfortranarray(A, dtype=np.float64), 0.0)
        self.reciprocal_condition = float(self._impl.reciprocal_condition)
        if not self._impl.ok or not self.reciprocal_condition >= MIN_RECIPROCAL_CONDITION:
            what = "not positive definite" if not self._impl.ok else "numerically singular"
            advice = conditioning_advice(diagonal, damping)
            raise IllConditionedHessianError(
                f"the Hessian{' plus damping' if damping else ''} is {what} even with its rows and columns "
                f"scaled to a unit diagonal (reciprocal condition estimate {self.reciprocal_condition:.1e}, "
                f"below {MIN_RECIPROCAL_CONDITION:.0e}); influence values would be meaningless. "
                f"{advice[0].upper()}{advice[1:]}."
            )
        self._inverse: np.ndarray | None = None

    def solve(self, B: np.ndarray) -> np.ndarray:
        B2, vec = _as_block(B)
        V = self.scale[:, None] * self._impl.solve(np.asfortranarray(self.scale[:, None] * B2))
        return V[:, 0] if vec else V

    def inverse(self) -> np.ndarray:
        if self._inverse is None:
            self._inverse = self.solve(np.eye(self._impl.size))
        return self._inverse

    def inverse_factor(self) -> np.ndarray:
        """F with H^{-1} = F^T F (F = L^{-1} S), so that xa^T H^{-1} xa = ||F xa||^2."""
        return np.asarray(self._impl.inverse_factor()) * self.scale[None, :]


class _IterativeSolver:
    """Shared by CG and LiSSA: H^{-1} by solving against the identity when asked."""

    def __init__(self, operator: HessianOperator):
        self.operator = operator
        self._inverse: np.ndarray | None = None
        self.iterations_: np.ndarray | None = None
        self.residual_: np.ndarray | None = None

    def solve(self, B: np.ndarray) -> np.ndarray:
        """(H + damping I)^{-1} B for a (p,) vector or a (p, m) block."""
        raise NotImplementedError

    def inverse(self) -> np.ndarray:
        if self._inverse is None:
            inv = self.solve(np.eye(self.operator.n_params))
            self._inverse = 0.5 * (inv + inv.T)
        return self._inverse

    def _relative_residual(self, B, V):
        b_norm = np.linalg.norm(B, axis=0)
        return np.linalg.norm(self.operator.matmat(V) - B, axis=0) / np.where(b_norm > 0, b_norm, 1.0)


class CGSolver(_IterativeSolver):
    """Preconditioned CG on (H + damping I) V = B, all columns at once; H never formed."""

    name = "cg"

    def __init__(self, operator: HessianOperator, tol=1e-10, max_iter=1000, preconditioner="jacobi"):
        super().__init__(operator)
        self.tol, self.max_iter, self.preconditioner = float(tol), int(max_iter), preconditioner
        self.reciprocal_condition = None
        if operator.n_params <= CG_CONDITION_CHECK_MAX_PARAMS:
            # CG converges to its residual tolerance on a singular H too, to numbers without meaning:
            # judge H as the direct solver does, on its equilibrated form (p products in one pass)
            dense = DirectSolver(operator.dense(), 0.0, operator.backend)
            self.reciprocal_condition = dense.reciprocal_condition

    def solve(self, B: np.ndarray, x0=None) -> np.ndarray:
        B2, vec = _as_block(B)
        op = self.operator
        V, iterations, residual = op.conjugate_gradient(
            B2,
            self.tol,
            self.max_iter,
            None if x0 is None else np.reshape(x0, B2.shape),
            self.preconditioner == "jacobi",
        )
        self.iterations_, self.residual_ = np.asarray(iterations), np.asarray(residual)
        unconverged = self.residual_ > self.tol
        if np.any(unconverged):
            smallest, largest = op.extreme_eigenvalues(tol=1e-4)
            summary = spectrum_summary(smallest, largest)
            warnings.warn(
                f"CG did not converge for {int(unconverged.sum())} of {unconverged.size} right-hand sides in "
                f"max_iter={self.max_iter} iterations (worst relative residual {self.residual_.max():.1e}, "
                f"tol {self.tol:.0e}); H + damping has condition number ~{summary['condition_number']:.1e} "
                f"(eigenvalues {smallest:.2e} .. {largest:.2e}). Raise max_iter, loosen tol, or add "
                f"damping (e.g. damping={summary['suggested_damping']:g}).",
                ConvergenceWarning,
                stacklevel=3,
            )
        return V[:, 0] if vec else V


class LissaSolver(_IterativeSolver):
    """The stochastic LiSSA estimator of (H + damping I)^{-1} B (Koh & Liang 2017, section 3)."""

    name = "lissa"

    def __init__(
        self,
        operator: HessianOperator,
        scale=None,
        depth=5000,
        repeats=1,
        batch_size=256,
        seed=0,
        warn_residual=1e-2,
    ):
        super().__init__(operator)
        if scale is None:
            _, largest = operator.extreme_eigenvalues(tol=1e-3)
            scale = 1.1 * largest  # eigenvalues of (H + damping) / scale then lie in (0, 1/1.1]
        self.scale, self.depth, self.repeats = float(scale), int(depth), int(repeats)
        self.batch_size, self.seed, self.warn_residual = int(batch_size), int(seed), float(warn_residual)

    def solve(self, B: np.ndarray) -> np.ndarray:
        B2, vec = _as_block(B)
        op = self.operator
        assert isinstance(op, RowHessianOperator)  # LiSSA samples mini-batches of rows in memory
        V, diverged = op.backend.lissa_solve(
            op.X,
            op.fit_intercept,
            op.c,
            op.l2,
            op.damping,
            B2,
            self.scale,
            self.depth,
            self.repeats,
            self.batch_size,
            self.seed,
        )
        V, diverged = np.asarray(V), np.asarray(diverged, dtype=bool)
        if np.any(diverged):
            warnings.warn(
                f"LiSSA diverged for {int(diverged.sum())} of {diverged.size} right-hand sides "
                f"(scale={self.scale:g} is too small for the mini-batch Hessians); their results are NaN. "
                "Increase scale or batch_size.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.residual_ = np.full(B2.shape[1], np.nan)
        ok = ~diverged
        if np.any(ok):
            self.residual_[ok] = self._relative_residual(B2[:, ok], V[:, ok])
            worst = float(np.max(self.residual_[ok]))
            if worst > self.warn_residual:
                warnings.warn(
                    f"LiSSA's estimate has relative residual up to {worst:.1e} (checked with one exact "
                    f"Hessian-vector product); increase depth (now {self.depth}), repeats or batch_size, "
                    "or use solver='cg'.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        return V[:, 0] if vec else V


#: A direct solve whose equilibrated reciprocal condition is below this, for a model with an
#: intercept and dense X, is redone on centred columns (:class:`CentredDirectSolver`).
CENTRE_BELOW_RECIPROCAL_CONDITION = 1e-6

# Rows of X centred and multiplied out at a time by centred_hessian (bounds the temporary).
_CENTRING_ROWS = 8192


def centred_hessian(X: np.ndarray, c: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """(H~, mu): the Hessian in the coordinates of centred columns, formed from centred rows.

    With the c-weighted column means ``mu = sum_i c_i x_i / sum_i c_i`` and
    ``M = [[I, -mu], [0, 1]]`` (so ``M xa = (x - mu, 1)``), ``H = M^-1 H~ M^-T`` with
    ``H~ = sum_i c_i (x_i - mu, 1)(x_i - mu, 1)^T + l2 P``: block diagonal up to rounding.
    Formed from ``x_i - mu`` it does not carry the cancellation that forming H from raw
    columns far from zero does (a calendar year beside the intercept).
    """
    n, d = X.shape
    total = float(np.sum(c))
    mu = np.zeros(d)
    for start in range(0, n, _CENTRING_ROWS):
        mu += c[start : start + _CENTRING_ROWS] @ np.asarray(
            X[start : start + _CENTRING_ROWS], dtype=np.float64
        )
    mu /= total
    gram = np.zeros((d, d))
    cross = np.zeros(d)
    for start in range(0, n, _CENTRING_ROWS):
        rows = slice(start, start + _CENTRING_ROWS)
        centred = np.asarray(X[rows], dtype=np.float64) - mu
        cross += c[rows] @ centred
        scaled = centred * np.sqrt(c[rows])[:, None]
        gram += scaled.T @ scaled
    H = np.empty((d + 1, d + 1))
    H[:d, :d] = gram + l2 * np.eye(d)
    H[:d, d] = H[d, :d] = cross
    H[d, d] = total
    return H, mu


class CentredDirectSolver(DirectSolver):
    """The direct solver on the Hessian of centred columns: ``(H)^-1 B = M^T H~^-1 M B``.

    Equilibration rescales columns; it cannot remove the near-collinearity of a column far from
    zero with the intercept (Longley's Year: equilibrated reciprocal condition 5e-10). Centring
    does, so influence values no longer depend on where the features' origin is, to rounding.
    """

    def __init__(self, X, c, l2, backend):
        H, self.mu = centred_hessian(X, c, l2)
        super().__init__(H, 0.0, backend)

    def _to_centred(self, B):  # M B
        out = np.array(B, dtype=np.float64, order="F")
        out[:-1] -= np.outer(self.mu, out[-1])
        return out

    def solve(self, B: np.ndarray) -> np.ndarray:
        B2, vec = _as_block(B)
        W = DirectSolver.solve(self, self._to_centred(B2))
        W[-1] -= self.mu @ W[:-1]  # M^T W
        return W[:, 0] if vec else W

    def inverse_factor(self) -> np.ndarray:
        """F~ M, with H~^-1 = F~^T F~: ||F~ M xa|| = ||F~ (x - mu, 1)||."""
        factor = DirectSolver.inverse_factor(self)
        factor[:, -1] -= factor[:, :-1] @ self.mu
        return factor


def _direct_solver(hessian, damping, backend, operator):
    """The direct solver; on centred columns when plain equilibration leaves H ill-conditioned."""
    # centring needs the rows (an in-memory, dense X) of a model with one linear predictor per row
    centrable = (
        damping == 0
        and isinstance(operator, RowHessianOperator)
        and operator.fit_intercept
        and operator.X is not None
        and not _validation.is_sparse(operator.X)
    )
    try:
        solver = DirectSolver(hessian, damping, backend)
    except IllConditionedHessianError:
        if not centrable:
            raise
        solver = None
    if centrable and (solver is None or solver.reciprocal_condition < CENTRE_BELOW_RECIPROCAL_CONDITION):
        try:
            centred = CentredDirectSolver(operator.X, operator.c, operator.l2, backend)
        except IllConditionedHessianError:
            if solver is None:
                raise
            return solver
        if solver is None or centred.reciprocal_condition > solver.reciprocal_condition:
            return centred
    return solver


def newton_decrement(gradient: np.ndarray, solver, diagonal) -> float:
    """sqrt(g^T H^{-1} g) with a factorised H (the direct solver); otherwise its diagonal estimate
    ||diag(H)^{-1/2} g|| (no solve; ``diagonal()`` gives diag(H + damping I)). Either is the
    same in any units of the features."""
    if isinstance(solver, DirectSolver):
        return float(np.sqrt(max(float(gradient @ solver.solve(gradient)), 0.0)))
    d = diagonal()
    return float(np.linalg.norm(gradient / np.sqrt(np.where(d > 0, d, np.inf))))


def make_solver(name: str, *, operator: HessianOperator, hessian=None, damping: float, backend, options=None):
    """The solver called ``name`` (already resolved from "auto") for H + damping I."""
    options = check_solver_options(name, options)
    if name == "direct":
        return _direct_solver(hessian, damping, backend, operator)
    if name == "cg":
        return CGSolver(operator, **options)
    if name == "lissa":
        return LissaSolver(operator, **options)
    raise ValueError(f"solver must be one of {SOLVERS}, got {name!r}")
