"""Solvers for the Hessian systems (H + damping I) V = B behind every influence quantity.

A solver is built once per :class:`~fastinfluence.Influence` and answers:

- ``solve(B)``: ``(H + damping I)^{-1} B`` for a (p, m) block of right-hand sides at once;
- ``inverse()``: ``(H + damping I)^{-1}`` (p, p);
- ``inverse_factor()``: ``L^{-1}`` with ``H + damping I = L L^T``, so that
  ``xa^T H^{-1} xa = ||L^{-1} xa||^2``.

Only ``"direct"`` (dense Cholesky) exists so far; matrix-free solvers plug in
here through :func:`make_solver`.
"""

from __future__ import annotations

import numpy as np

from .exceptions import IllConditionedHessianError

SOLVERS = ("direct",)

#: A factorisation whose reciprocal condition estimate is below this is
#: refused: its solves would carry relative errors above ~1e-4.
MIN_RECIPROCAL_CONDITION = 1e-12


def suggest_damping(H: np.ndarray) -> float:
    """A damping that bounds the condition number near 1e8: 1e-8 x the largest diagonal entry of H."""
    largest = float(np.max(np.abs(np.diag(H)))) if H.size else 1.0
    value = max(1e-8 * largest, 1e-12)
    return float(f"{value:.0e}")


class DirectSolver:
    """Dense Cholesky factorisation of H + damping I, with a conditioning check."""

    name = "direct"

    def __init__(self, H: np.ndarray, damping: float, backend):
        self.damping = damping
        self._impl = backend.CholeskySolver(np.asfortranarray(H, dtype=np.float64), damping)
        self.reciprocal_condition = float(self._impl.reciprocal_condition)
        if not self._impl.ok or self.reciprocal_condition < MIN_RECIPROCAL_CONDITION:
            what = "not positive definite" if not self._impl.ok else "numerically singular"
            raise IllConditionedHessianError(
                f"the Hessian{' plus damping' if damping else ''} is {what} "
                f"(reciprocal condition estimate {self.reciprocal_condition:.1e}, "
                f"below {MIN_RECIPROCAL_CONDITION:.0e}); influence values would be meaningless. "
                f"Increase damping (currently {damping:g}); for example damping={suggest_damping(H):g}, "
                "or fit with a larger l2."
            )
        self._inverse = None

    def solve(self, B: np.ndarray) -> np.ndarray:
        B = np.asarray(B, dtype=np.float64)
        vec = B.ndim == 1
        V = self._impl.solve(np.asfortranarray(B[:, None] if vec else B))
        return V[:, 0] if vec else V

    def inverse(self) -> np.ndarray:
        if self._inverse is None:
            self._inverse = self.solve(np.eye(self._impl.size))
        return self._inverse

    def inverse_factor(self) -> np.ndarray:
        return np.asarray(self._impl.inverse_factor())


def make_solver(name: str, H: np.ndarray, damping: float, backend):
    """The solver called ``name`` for H + damping I."""
    if name == "direct":
        return DirectSolver(H, damping, backend)
    raise ValueError(f"solver must be one of {SOLVERS}, got {name!r}")
