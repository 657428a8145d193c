"""Newton's method to the optimum, written once for every engine.

Influence functions are derivatives at the minimiser of

    R(theta) = (1/n) sum_i s_i loss(y_i, xa_i . theta) + (l2/2) ||w||^2,

so the fit must end *at* it, in any units of the features. The iteration:

- **Equilibrated Newton steps.** With ``S = diag(H)^{-1/2}`` the step solves
  ``(S H S) u = -S g``, ``step = S u``. ``S H S`` has a unit diagonal whatever
  the units of the columns (NIST's Longley data in raw units: reciprocal
  condition 3.5e-20 for H, 5e-10 for S H S), so its Cholesky factorisation
  and the conditioning judgement made on it do not depend on the units.
  Only a numerically singular ``S H S`` (reciprocal condition below
  :data:`MIN_RECIPROCAL_CONDITION`: collinear features with l2 = 0, separable
  data) gets a Levenberg shift ``mu I``, growing tenfold from 1e-12 until the
  factorisation succeeds. Newton-CG (``method="newton_cg"``) solves the same
  system by Jacobi-preconditioned CG over Hessian-vector products, which is
  the same equilibration.
- **A backtracking line search** (Armijo), shrinking the step by a factor in
  [0.1, 0.5] chosen by quadratic interpolation, so that even an
  astronomically long step (vanishing curvature) is cut to size in a few
  dozen trials. Near the optimum the decrease of R falls below its rounding;
  a step that keeps R within rounding and shrinks the equilibrated gradient
  ``||S g||`` is then accepted too.
- **A certified stop** on the Newton decrement ``lambda^2 = g^T H^{-1} g``
  (affine invariant: the same in any units of the features; for a quadratic
  R it is exactly ``2 (R(theta) - min R)``):

      lambda^2 <= tol^2 * max(R(0), tiny)          (tol = 1e-10 by default)

  computed from an unshifted factorisation (Newton) or a CG solve to relative
  residual 0.1 or better (Newton-CG). ``R(0)``, the objective at theta = 0,
  makes the rule invariant to the units of the target too.
- **Polishing.** After the stop, full Newton steps continue while each still
  divides ``lambda^2`` by at least 4 (at most :data:`MAX_POLISH_STEPS`),
  reusing the last factorisation (Newton) or with a tight CG solve (Newton-CG),
  so theta is at the optimum to rounding rather than merely within ``tol``.

The iteration runs over an :class:`Objective`: anything that evaluates
``(R, grad R, H)`` at theta and gives H(theta) as a
:class:`fastinfluence.solvers.HessianOperator` (for Newton-CG). The in-memory
engine is :class:`RowObjective` (the backend kernels over X); the Dask engine
has its own over chunked data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import linalg

from .backends.contract import Problem
from .losses import loss_infimum
from .multinomial import Gauge
from .solvers import HessianOperator, RowHessianOperator, SumOperator, row_hessian_operator

__all__ = [
    "MIN_RECIPROCAL_CONDITION",
    "Evaluation",
    "Objective",
    "RowObjective",
    "minimise",
    "relative_decrement",
]

#: Equilibrated Hessians whose Cholesky reciprocal condition estimate is below
#: this get a Levenberg shift (condition above ~4.5e12 in unit-diagonal form).
MIN_RECIPROCAL_CONDITION = 1e3 * np.finfo(np.float64).eps

#: Full Newton steps after the stopping rule is met, at most.
MAX_POLISH_STEPS = 3

_EPS = np.finfo(np.float64).eps
_TINY = np.finfo(np.float64).tiny
_MAX_TRIALS = 100  # line-search trials: enough to shrink a step by 1e-100
# CG's relative residual while polishing: near rounding, so the step is the Newton step (a looser
# solve underestimates the decrement on ill-conditioned problems and stops polishing early)
_POLISH_CG_TOL = 1e-14


@dataclass
class Evaluation:
    """R, its gradient and (when asked for) its Hessian at one theta."""

    value: float
    gradient: np.ndarray
    hessian: np.ndarray | None = None


class Objective(Protocol):
    """What :func:`minimise` needs of an engine."""

    n_params: int
    lower_bound: float  # R >= lower_bound everywhere (-inf when unknown)

    def evaluate(self, theta: np.ndarray, hessian: bool) -> Evaluation:
        """R(theta), grad R(theta) and, with ``hessian=True``, the dense H(theta), in one pass."""

    def hessian_operator(self, theta: np.ndarray) -> HessianOperator:
        """H(theta) as an operator (no damping): Hessian-vector products, diagonal and CG."""


class RowObjective:
    """R over in-memory X through a backend's fused kernels (see :mod:`fastinfluence.backends`).

    For the multinomial loss it is R plus the gauge term of :class:`fastinfluence.multinomial.Gauge`
    (zero at the sum-to-zero parameters, where the fit starts and stays), whose Hessian is definite.
    """

    def __init__(self, backend, problem: Problem, n_jobs: int, *, with_gauge: bool = True):
        self.backend, self.problem, self.n_jobs = backend, problem, int(n_jobs)
        self.n_params = problem.n_params
        infimum = loss_infimum(problem.loss, problem.y)
        self.lower_bound = float(np.mean(infimum if problem.weights is None else problem.weights * infimum))
        multi = problem.n_classes > 1 and with_gauge
        self.gauge = Gauge.for_problem(backend, problem, self.n_jobs) if multi else None

    def evaluate(self, theta, hessian):
        value, gradient, H = self.backend.evaluate(self.problem, theta, True, hessian, self.n_jobs)
        value, gradient = float(value), np.asarray(gradient)
        H = None if H is None else np.asarray(H)
        if self.gauge is not None:
            value += self.gauge.value(theta)
            gradient = gradient + self.gauge.product(theta)
            H = None if H is None else H + self.gauge.dense()
        return Evaluation(value, gradient, H)

    def hessian_operator(self, theta):
        p = self.problem
        if p.n_classes > 1:  # the Hessian's weights are the probabilities at theta
            P = np.asarray(self.backend.row_derivatives(p, theta, self.n_jobs).d2)
            return row_hessian_operator(self.backend, p, P, 0.0, self.n_jobs, self.gauge)
        # c_i = s_i loss''_i / n at theta: H = Xa^T diag(c) Xa + l2 P
        c = np.asarray(self.backend.curvature_weights(p, theta, self.n_jobs))
        return RowHessianOperator(self.backend, p.X, p.fit_intercept, c, p.l2, 0.0, self.n_jobs)


class SumObjective:
    """sum_k sign_k R_k(theta), each R_k an objective over rows with non-negative weights: extra
    points added (sign +1) to, or weight taken (sign -1) from, an objective, without handing a
    kernel a negative weight (its Gram products scale rows by the square roots of the weights)."""

    def __init__(self, parts, signs):
        self.parts, self.signs = list(parts), [float(sign) for sign in signs]
        self.n_params = self.parts[0].n_params
        bounds = [sign * part.lower_bound for part, sign in zip(self.parts, self.signs)]
        self.lower_bound = float(sum(bounds)) if all(sign > 0 for sign in self.signs) else -np.inf

    def evaluate(self, theta, hessian):
        value, gradient, H = 0.0, np.zeros(self.n_params), np.zeros((self.n_params,) * 2) if hessian else None
        for part, sign in zip(self.parts, self.signs):
            ev = part.evaluate(theta, hessian)
            value += sign * ev.value
            gradient = gradient + sign * ev.gradient
            if H is not None:
                H = H + sign * ev.hessian
        return Evaluation(value, gradient, H)

    def hessian_operator(self, theta):
        return SumOperator([part.hessian_operator(theta) for part in self.parts], self.signs)


def newton_cg_damping(diagonal: np.ndarray) -> float:
    """A shift of 1e-12 of H's smallest positive diagonal entry for Newton-CG's systems: on a
    singular H (collinear columns, a one-hot encoding beside the intercept) CG would otherwise
    amplify the rounding in g's null-space part into steps of 1e13. It changes directions only,
    never the optimum (where g = 0), and is below 1e-12 of every coordinate's own curvature,
    whatever the units (the largest entry would shift the small ones of raw Longley by 0.1)."""
    positive = diagonal[diagonal > 0]
    smallest = float(np.min(positive)) if positive.size else 0.0
    return 1e-12 * smallest if np.isfinite(smallest) else 0.0


class _EquilibratedCholesky:
    """Cholesky of S H S (+ mu I), S = diag(H)^{-1/2}: Newton steps whatever the units of theta.

    LAPACK is called directly (dpotrf, dpocon, dpotrs): the fit of a small model takes tens of
    these per refit, and scipy.linalg's wrappers would cost more than the factorisation.
    """

    def __init__(self, H: np.ndarray):
        diag = np.diag(H).copy()
        positive = diag > 0
        # a zero diagonal (an all-zero column with l2 = 0) gets the largest scale; the shift handles it
        fallback = np.max(diag[positive]) if np.any(positive) else 1.0
        self.scale = 1.0 / np.sqrt(np.where(positive, diag, fallback))
        Hs = H * self.scale[:, None] * self.scale[None, :]
        Hs = 0.5 * (Hs + Hs.T)
        self.shift = 0.0
        self._factor = None
        for mu in [0.0, *(10.0**k for k in range(-12, 21))]:
            factor = _cholesky(Hs, mu)
            if factor is not None:
                self._factor, self.shift = factor, mu
                return

    @property
    def ok(self) -> bool:
        return self._factor is not None

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """H^{-1} rhs (of the shifted S H S when ``shift > 0``)."""
        u, _ = _POTRS(self._factor, self.scale * rhs, lower=1)
        return self.scale * u


_POTRF, _POCON, _POTRS = linalg.lapack.dpotrf, linalg.lapack.dpocon, linalg.lapack.dpotrs


def _cholesky(A: np.ndarray, mu: float):
    """The lower Cholesky factor of A + mu I when it exists with reciprocal condition above the floor."""
    shifted = A + mu * np.eye(A.shape[0]) if mu else A
    if not np.all(np.isfinite(shifted)):
        return None
    factor, info = _POTRF(shifted, lower=1, clean=0)
    if info != 0:
        return None
    rcond, info = _POCON(factor, float(np.abs(shifted).sum(axis=0).max()), uplo="L")
    return factor if info == 0 and rcond > MIN_RECIPROCAL_CONDITION else None


@dataclass
class _Direction:
    step: np.ndarray
    decrement2: float  # -g . step: the squared Newton decrement when the step is an unshifted Newton step
    certified: bool  # the step is a Newton step accurate enough to certify the optimum
    shifted: bool  # a Levenberg shift or steepest descent replaced the Newton step
    solver: object = None  # the factorisation, reused while polishing


def _newton_direction(cur: Evaluation) -> _Direction:
    assert cur.hessian is not None  # the dense methods evaluate H at every iterate
    chol = _EquilibratedCholesky(cur.hessian)
    if not chol.ok:  # not even a shift helps (non-finite H): steepest descent
        return _Direction(-cur.gradient, float(cur.gradient @ cur.gradient), False, True)
    step = chol.solve(-cur.gradient)
    return _Direction(step, float(-cur.gradient @ step), chol.shift == 0.0, chol.shift > 0.0, chol)


def _newton_cg_direction(objective: Objective, theta, cur: Evaluation, forcing: float) -> _Direction:
    max_iter = max(100, min(objective.n_params, 2000))
    # H s = -g by Jacobi-preconditioned CG, with the shift of newton_cg_damping
    operator = objective.hessian_operator(theta)
    operator = operator.with_damping(newton_cg_damping(operator.diagonal()))
    steps, _, residuals = operator.conjugate_gradient(-cur.gradient[:, None], forcing, max_iter)
    step, residual = np.asarray(steps)[:, 0], float(np.asarray(residuals)[0])
    decrement2 = float(-cur.gradient @ step)
    if not (np.all(np.isfinite(step)) and decrement2 > 0):  # not a descent direction
        return _Direction(-cur.gradient, float(cur.gradient @ cur.gradient), False, True)
    return _Direction(step, decrement2, residual <= 0.1, False)


def _root(decrement2):
    return float("nan") if decrement2 is None else float(np.sqrt(max(decrement2, 0.0)))


def objective_magnitude(value_at_zero: float, lower_bound: float) -> float:
    """max(|R(0)|, |inf R|, tiny): the size of R, the yardstick of the stopping rule. R(0) alone
    would do for the squared, logistic and hinge losses; a Poisson R(0) is 1 whatever the counts,
    while its lower bound, mean(y - y log y), grows with them (and so does R's rounding)."""
    values = [abs(float(value_at_zero))] + ([abs(float(lower_bound))] if np.isfinite(lower_bound) else [])
    largest = max(values)
    return max(largest, _TINY) if np.isfinite(largest) else np.inf


def relative_decrement(decrement: float, objective_scale: float) -> float:
    """lambda / sqrt(max(R(0), tiny)): how far theta is from the optimum, in any units (0 at it)."""
    return float(decrement / np.sqrt(objective_scale))


def _scaled_gradient_norm(gradient, scale):
    return float(np.linalg.norm(gradient * scale))


def minimise(
    objective: Objective,
    theta0,
    *,
    tol: float,
    max_iter: int,
    method: str,
    objective_scale: float | None = None,
) -> dict:
    """Minimise R from ``theta0`` by Newton (``method="newton"``, dense H) or Newton-CG.

    ``objective_scale`` is ``max(R(0), tiny)`` when the caller knows it (a warm
    restart on nearly the same objective), else it is computed (one pass).

    Returns a dict: ``theta``; ``n_iter`` (Newton iterations to the stop);
    ``polish_steps`` (full Newton steps taken after it); ``grad_norm``
    (``||grad R||``); ``decrement`` (the Newton decrement lambda at the
    returned theta, from the last factorisation) and ``initial_decrement``
    (at ``theta0``); ``objective_scale``; ``objective``; ``converged``;
    ``message``; ``shifted`` (whether any step needed a Levenberg shift).
    """
    if method not in ("newton", "newton_cg"):
        raise ValueError(f"method must be 'newton' or 'newton_cg', got {method!r}")
    dense = method == "newton"
    theta = np.array(theta0, dtype=np.float64)
    cur = objective.evaluate(theta, dense)
    if objective_scale is None:
        zero = cur if not np.any(theta) else objective.evaluate(np.zeros_like(theta), False)
        objective_scale = objective_magnitude(zero.value, objective.lower_bound)
    target = tol * tol * objective_scale
    any_shift = False
    forcing = 0.5
    n_iter = n_polish = 0

    initial_decrement2 = None

    def result(converged, message, decrement2):
        return dict(
            theta=theta,
            n_iter=n_iter,
            polish_steps=n_polish,
            grad_norm=float(np.linalg.norm(cur.gradient)),
            decrement=_root(decrement2),
            initial_decrement=_root(initial_decrement2),
            objective_scale=objective_scale,
            objective=cur.value,
            converged=converged,
            message=message,
            shifted=any_shift,
        )

    while True:
        if not (np.isfinite(cur.value) and np.all(np.isfinite(cur.gradient))):
            return result(
                False, "the objective or its gradient is not finite at the current parameters", np.inf
            )
        if dense and (cur.hessian is None or not np.all(np.isfinite(cur.hessian))):
            return result(False, "the Hessian is not finite at the current parameters", np.inf)
        if not np.any(cur.gradient):  # a stationary point of a convex R: the optimum, exactly
            return result(True, "converged", 0.0)
        direction = _newton_direction(cur) if dense else _newton_cg_direction(objective, theta, cur, forcing)
        if not dense and not direction.certified and direction.decrement2 <= target:
            # a loose solve underestimates the decrement: solve tightly before deciding
            direction = _newton_cg_direction(objective, theta, cur, _POLISH_CG_TOL)
        if initial_decrement2 is None:
            initial_decrement2 = direction.decrement2
        if direction.decrement2 <= target and (direction.certified or direction.solver is not None):
            theta, cur, direction, n_polish = _polish(objective, theta, cur, direction, dense)
            message = "converged"
            if not direction.certified:
                # the decrement of the shifted system: g has no part in H's null space, so a
                # minimiser is reached, but H is singular and the minimiser is not unique
                message += (
                    " to a minimiser that is not unique: the Hessian is singular (collinear "
                    "features with l2 = 0?)"
                )
            return result(True, message, direction.decrement2)
        if n_iter >= max_iter:
            message = "reached max_iter"
            if any_shift or direction.shifted:
                message += (
                    " with a singular Hessian (is the data separable, or l2 = 0 with collinear features?)"
                )
            return result(False, message, direction.decrement2)
        any_shift = any_shift or direction.shifted
        accepted = _line_search(objective, theta, cur, direction, dense)
        if accepted is None and (direction.certified or direction.solver is not None):
            # Near the optimum the decrease of R (lambda^2 / 2) can be below the rounding of R
            # itself (cancellation in eta = x . w + b with large |x| |w|), so the line search cannot
            # see it. Full Newton steps judged by the decrement (as when polishing) can.
            theta, cur, direction, steps = _polish(objective, theta, cur, direction, dense)
            if steps and direction.decrement2 <= target:
                n_polish = steps
                return result(True, "converged", direction.decrement2)
        if accepted is None:
            message = (
                "line search failed: no step decreases the objective (the iteration stalled with "
                f"Newton decrement^2 {direction.decrement2:.3e}, target {target:.3e})"
            )
            if direction.shifted:
                message += (
                    "; the Hessian is numerically singular, so the optimum cannot be resolved in "
                    "double precision (nearly collinear features with l2 = 0?)"
                )
            return result(False, message, direction.decrement2)
        theta, cur = accepted
        if not dense:  # Nocedal & Wright 7.1: forcing term from the (scale-invariant) decrement
            forcing = min(0.5, float(np.sqrt(np.sqrt(max(direction.decrement2, 0.0) / objective_scale))))
        n_iter += 1


def _line_search(objective, theta, cur, direction, dense):
    """(theta, evaluation) after a backtracking (Armijo) search along ``direction.step``, or None."""
    step = direction.step
    slope = float(cur.gradient @ step)  # < 0 for a descent direction
    scale = direction.solver.scale if direction.solver is not None else np.ones_like(theta)
    grad_norm = _scaled_gradient_norm(cur.gradient, scale)
    theta_norm = float(np.linalg.norm(theta / scale)) + _TINY
    step_norm = float(np.linalg.norm(step / scale))
    # R cannot fall below its lower bound, so a first-order decrease -slope * t beyond R - bound
    # means the step is far too long (curvature vanishing along it: a smooth hinge with small t
    # and l2 = 0 once gave a step of length 1e40); start where it would be R - bound
    room = cur.value - objective.lower_bound
    t = min(1.0, room / -slope) if np.isfinite(room) and -slope > 10.0 * room > 0 else 1.0
    for trial_number in range(_MAX_TRIALS):
        if t * step_norm <= _EPS * theta_norm:  # the step no longer moves theta
            return None
        candidate = theta + t * step
        # the full step is usually taken: its Hessian comes in the same pass
        trial = objective.evaluate(candidate, dense and trial_number == 0)
        if np.isfinite(trial.value):
            if trial.value <= cur.value + 1e-4 * t * slope:
                break
            within_rounding = trial.value <= cur.value + 64.0 * _EPS * abs(cur.value)
            if within_rounding and _scaled_gradient_norm(trial.gradient, scale) < grad_norm:
                break
            # minimiser of the quadratic through R(0), R'(0) = slope and R(t), kept in [0.1 t, 0.5 t]:
            # a step far too long (curvature vanishing along it) shrinks tenfold per trial
            curvature = trial.value - cur.value - slope * t
            t_new = -slope * t * t / (2.0 * curvature) if curvature > 0 else 0.5 * t
            t = min(max(t_new, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1
    else:
        return None
    if dense and trial.hessian is None:
        trial = objective.evaluate(candidate, True)
    return candidate, trial


def _polish(objective, theta, cur, direction, dense):
    """Full Newton steps while each divides the decrement^2 by at least 4: theta at the optimum to rounding.

    Newton reuses the last factorisation (no Hessian pass); Newton-CG solves tightly.
    Returns (theta, evaluation, direction at theta, steps taken).
    """
    steps = 0
    if not dense:  # the stopping test's solve was loose: its decrement is no yardstick for the polish
        direction = _newton_cg_direction(objective, theta, cur, _POLISH_CG_TOL)
    for _ in range(MAX_POLISH_STEPS):
        if not direction.decrement2 > 0:
            break
        candidate = theta + direction.step
        trial = objective.evaluate(candidate, False)
        if not (np.isfinite(trial.value) and np.all(np.isfinite(trial.gradient))):
            break
        if dense:
            step = direction.solver.solve(-trial.gradient)
            new = _Direction(
                step, float(-trial.gradient @ step), direction.certified, direction.shifted, direction.solver
            )
        else:
            new = _newton_cg_direction(objective, candidate, trial, _POLISH_CG_TOL)
        if not new.decrement2 < 0.25 * direction.decrement2:
            break
        theta, cur, direction = candidate, trial, new
        steps += 1
    return theta, cur, direction, steps
