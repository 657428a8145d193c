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

import warnings

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from .exceptions import ConvergenceWarning, IllConditionedHessianError

SOLVERS = ("auto", "direct", "cg", "lissa")

#: ``solver="auto"`` factorises H directly up to this many parameters.
AUTO_DIRECT_MAX_PARAMS = 4096

#: A factorisation whose reciprocal condition estimate is below this is
#: refused: its solves would carry relative errors above ~1e-4.
MIN_RECIPROCAL_CONDITION = 1e-12

_SOLVER_OPTIONS = {
    "direct": {},
    "cg": {"tol": 1e-10, "max_iter": 1000, "preconditioner": "jacobi"},
    "lissa": {"scale": None, "depth": 5000, "repeats": 1, "batch_size": 256, "seed": 0, "warn_residual": 1e-2},
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
    """Defaults of ``solver`` updated by ``options``; unknown keys are an error naming them."""
    allowed = _SOLVER_OPTIONS[solver]
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"solver_options {unknown} are not options of solver={solver!r}; it takes {sorted(allowed) or 'none'}"
        )
    merged = {**allowed, **options}
    if solver == "cg":
        if not (isinstance(merged["tol"], (int, float)) and merged["tol"] > 0):
            raise ValueError(f"solver_options['tol'] must be > 0, got {merged['tol']!r}")
        if not (isinstance(merged["max_iter"], (int, np.integer)) and merged["max_iter"] >= 1):
            raise ValueError(f"solver_options['max_iter'] must be a positive integer, got {merged['max_iter']!r}")
        if merged["preconditioner"] not in ("jacobi", None):
            raise ValueError("solver_options['preconditioner'] must be 'jacobi' or None")
    if solver == "lissa":
        for key in ("depth", "repeats", "batch_size"):
            if not (isinstance(merged[key], (int, np.integer)) and merged[key] >= 1):
                raise ValueError(f"solver_options[{key!r}] must be a positive integer, got {merged[key]!r}")
        if merged["scale"] is not None and not (isinstance(merged["scale"], (int, float)) and merged["scale"] > 0):
            raise ValueError(f"solver_options['scale'] must be > 0 or None, got {merged['scale']!r}")
        if not (isinstance(merged["seed"], (int, np.integer)) and merged["seed"] >= 0):
            raise ValueError(f"solver_options['seed'] must be a non-negative integer, got {merged['seed']!r}")
    return merged


def suggest_damping(largest_eigenvalue: float) -> float:
    """A damping that bounds the condition number of H + damping I near 1e8."""
    value = max(1e-8 * abs(largest_eigenvalue), 1e-12)
    return float(f"{value:.0e}")


class HessianOperator:
    """H + damping I of the fitted objective as an operator: H V by one fused pass over X.

    ``H = Xa^T diag(c) Xa + l2 diag(1, .., 1, 0)`` with the curvature weights
    ``c_i = s_i loss''_i / n`` fixed at the fitted theta.
    """

    def __init__(self, backend, X, fit_intercept, c, l2, damping, n_jobs):
        self.backend, self.X, self.fit_intercept = backend, X, fit_intercept
        self.c, self.l2, self.damping, self.n_jobs = c, l2, damping, n_jobs
        self.n_params = X.shape[1] + (1 if fit_intercept else 0)

    def matmat(self, V: np.ndarray) -> np.ndarray:
        V = np.asfortranarray(V, dtype=np.float64)
        HV = self.backend.regularised_gram_product(self.X, self.fit_intercept, self.c, self.l2, V, self.n_jobs)
        return HV + self.damping * V if self.damping else HV

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


def spectrum_summary(smallest: float, largest: float) -> dict:
    return {
        "smallest_eigenvalue": smallest,
        "largest_eigenvalue": largest,
        "condition_number": largest / smallest if smallest > 0 else float("inf"),
        "suggested_damping": suggest_damping(largest),
    }


class DirectSolver:
    """Dense Cholesky factorisation of H + damping I, with a conditioning check."""

    name = "direct"

    def __init__(self, H: np.ndarray, damping: float, backend):
        self.damping = damping
        self._impl = backend.CholeskySolver(np.asfortranarray(H, dtype=np.float64), damping)
        self.reciprocal_condition = float(self._impl.reciprocal_condition)
        if not self._impl.ok or self.reciprocal_condition < MIN_RECIPROCAL_CONDITION:
            what = "not positive definite" if not self._impl.ok else "numerically singular"
            largest = float(np.max(np.abs(np.diag(H)))) if H.size else 1.0
            raise IllConditionedHessianError(
                f"the Hessian{' plus damping' if damping else ''} is {what} "
                f"(reciprocal condition estimate {self.reciprocal_condition:.1e}, "
                f"below {MIN_RECIPROCAL_CONDITION:.0e}); influence values would be meaningless. "
                f"Increase damping (currently {damping:g}); for example damping={suggest_damping(largest):g}, "
                "or fit with a larger l2."
            )
        self._inverse = None

    def solve(self, B: np.ndarray) -> np.ndarray:
        B2, vec = _as_block(B)
        V = self._impl.solve(B2)
        return V[:, 0] if vec else V

    def inverse(self) -> np.ndarray:
        if self._inverse is None:
            self._inverse = self.solve(np.eye(self._impl.size))
        return self._inverse

    def inverse_factor(self) -> np.ndarray:
        return np.asarray(self._impl.inverse_factor())


class _IterativeSolver:
    """Shared by CG and LiSSA: H^{-1} by solving against the identity when asked."""

    def __init__(self, operator: HessianOperator):
        self.operator = operator
        self._inverse = None
        self.iterations_ = None
        self.residual_ = None

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

    def solve(self, B: np.ndarray, x0=None) -> np.ndarray:
        B2, vec = _as_block(B)
        op = self.operator
        V, iterations, residual = op.backend.cg_solve(
            op.X, op.fit_intercept, op.c, op.l2, op.damping, B2, self.tol, self.max_iter,
            None if x0 is None else np.asfortranarray(np.reshape(x0, B2.shape)),
            self.preconditioner == "jacobi", op.n_jobs,
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

    def __init__(self, operator: HessianOperator, scale=None, depth=5000, repeats=1, batch_size=256, seed=0,
                 warn_residual=1e-2):
        super().__init__(operator)
        if scale is None:
            _, largest = operator.extreme_eigenvalues(tol=1e-3)
            scale = 1.1 * largest  # eigenvalues of (H + damping) / scale then lie in (0, 1/1.1]
        self.scale, self.depth, self.repeats = float(scale), int(depth), int(repeats)
        self.batch_size, self.seed, self.warn_residual = int(batch_size), int(seed), float(warn_residual)

    def solve(self, B: np.ndarray) -> np.ndarray:
        B2, vec = _as_block(B)
        op = self.operator
        V, diverged = op.backend.lissa_solve(
            op.X, op.fit_intercept, op.c, op.l2, op.damping, B2, self.scale, self.depth, self.repeats,
            self.batch_size, self.seed,
        )
        V, diverged = np.asarray(V), np.asarray(diverged, dtype=bool)
        if np.any(diverged):
            warnings.warn(
                f"LiSSA diverged for {int(diverged.sum())} of {diverged.size} right-hand sides (scale={self.scale:g} "
                "is too small for the mini-batch Hessians); their results are NaN. Increase scale or batch_size.",
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


def make_solver(name: str, *, operator: HessianOperator, hessian=None, damping: float, backend, options=None):
    """The solver called ``name`` (already resolved from "auto") for H + damping I."""
    options = check_solver_options(name, options)
    if name == "direct":
        return DirectSolver(hessian, damping, backend)
    if name == "cg":
        return CGSolver(operator, **options)
    if name == "lissa":
        return LissaSolver(operator, **options)
    raise ValueError(f"solver must be one of {SOLVERS}, got {name!r}")
