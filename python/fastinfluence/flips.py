"""The smallest set of training rows whose removal flips a conclusion (Broderick, Giordano &
Meager, "An automatic finite-sample robustness metric").

For a quantity f (one column of a target: a coefficient, a test point's decision value or
probability, a test loss) and a threshold it should cross, rows are removed one at a time,
greedily: each step removes the candidate whose removal, together with the rows already
removed, moves f furthest towards the threshold by the Newton group estimate (one exact Newton
step on the objective without the rows, :mod:`fastinfluence.groups`). The inverse of the reduced
Hessian, ``M = (H - sum_{i in R} c_i xa_i xa_i^T)^{-1}`` (``c_i = (s_i/n) loss''_i``), is kept
and updated by Sherman-Morrison as each row goes (rank-one updates, never a refactorisation), so
the estimate for every candidate costs O(p^2 L) per step for L candidates. Candidates are the L
rows whose own first-order removal estimate moves f most the right way. The greedy removal goes
on to ``max_size`` rows (or until no candidate moves f further); then an exact refit without
them decides, and when it crosses the threshold, bisection over refits finds the shortest prefix
of the greedy order that still does (the Newton estimate may cross earlier or later than the
refit: the refits, not the estimate, say whether a set exists).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validation as V
from . import multinomial as MN
from .exceptions import InvalidArgumentValueError

__all__ = ["FlipSet", "flip_set"]


@dataclass(frozen=True)
class FlipSet:
    """The result of :meth:`fastinfluence.Influence.flip_set`.

    ``rows``: training positions in the order they were removed; ``fraction``: their number over
    n (not their weight); ``start``: f at the fitted theta; ``predicted``: the Newton estimate of
    f without the rows;
    ``refit``: f at the exact refit without them; ``confirmed``: that refit converged and crosses
    ``threshold`` (the set is then the shortest prefix of the greedy order that does, by
    bisection over refits); ``message`` says what was found. ``rows`` are positions in the
    training data, as ``indices=`` takes them.
    """

    rows: np.ndarray
    fraction: float
    start: float
    threshold: float
    predicted: float
    refit: float
    confirmed: bool
    message: str

    @property
    def size(self) -> int:
        return int(self.rows.size)


def flip_set(inf, target, threshold: float, max_size: int | None, candidates: int) -> FlipSet:
    """See :meth:`fastinfluence.Influence.flip_set`."""
    engine = inf._engine
    if inf.model.n_blocks > 1:
        raise ValueError("flip_set is for the models with one linear predictor per row (not multinomial yet)")
    if not hasattr(engine, "X") or inf.hessian_ is None:
        raise ValueError(
            "flip_set needs the training rows in memory and the direct solver (its refits and H)"
        )
    bound = inf._bind(target)
    if bound.n_columns != 1:
        raise InvalidArgumentValueError(
            "target", f"must have one column (one quantity to flip); it has {bound.n_columns}"
        )
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise InvalidArgumentValueError("threshold", "must be a finite number")
    n, kernels, fit_intercept, theta = inf.n_samples_, engine.kernels, engine.fit_intercept, inf._theta
    max_size = max(1, n // 20) if max_size is None else V.check_positive_int(max_size, "max_size", maximum=n)
    candidates = V.check_positive_int(candidates, "candidates", maximum=None)
    start = float(bound.value(kernels, theta, fit_intercept)[0])
    direction = np.sign(threshold - start)
    if direction == 0:
        return FlipSet(
            np.empty(0, np.int64), 0.0, start, threshold, start, start, True, "f is at the threshold"
        )

    # candidates: the rows whose own removal moves f furthest towards the threshold
    own = np.asarray(inf.loo_on(target, "influence"))[:, 0] * direction
    order = np.argsort(-own, kind="stable")
    pool = order[own[order] > 0][: max(int(candidates), max_size)]
    rows, path = _greedy_removal(inf, bound, pool, start, direction, max_size)
    return _decide(inf, bound, rows, path, start, threshold, max_size, pool.size)


def _greedy_removal(inf, bound, pool, start, direction, max_size):
    """(rows in the order removed, the Newton estimate of f after each): greedy by the group estimate,
    up to ``max_size`` rows or until no candidate moves f further."""
    engine, kernels, fit_intercept = inf._engine, inf._engine.kernels, inf._engine.fit_intercept
    n = inf.n_samples_
    block = engine.gather(engine.rows(pool))
    Xa = MN.eta_gradients(block.X, 1, fit_intercept).T  # (L, p)
    c = block.s / n
    curvature, gradient_weight = c * block.d2, c * block.d1
    M = np.array(inf.solver_.inverse())  # (H + damping I)^{-1}, updated as rows go
    g = np.zeros(inf.n_params_)  # sum over the removed rows of (s_i/n) loss'_i xa_i
    removed: list[int] = []
    path: list[float] = []
    available = np.ones(pool.size, dtype=bool)
    predicted = start
    while len(removed) < max_size and available.any():
        U = M @ Xa.T  # (p, L): M xa_j
        q = np.einsum("ij,ji->i", Xa, U)  # xa_j^T M xa_j
        denominator = 1.0 - curvature * q
        ok = available & (denominator > 1e-12)
        if not ok.any():
            break
        # the Newton step without R + {j}: M_j (g + w_j xa_j), M_j = M + c_j u u^T / (1 - c_j q_j)
        g_j = g[:, None] + gradient_weight[None, :] * Xa.T
        Mg = M @ g_j
        steps = (
            Mg + U * ((curvature / np.where(ok, denominator, 1.0)) * np.einsum("ij,ij->j", U, g_j))[None, :]
        )
        values = start + bound.change(kernels, steps.T, fit_intercept)[:, 0]
        progress = np.where(ok, direction * (values - start), -np.inf)
        progress[~np.isfinite(progress)] = -np.inf  # NaN-proof: argmax must not pick a NaN
        best = int(np.argmax(progress))
        if not progress[best] > direction * (predicted - start):
            break  # no candidate moves f further towards the threshold
        removed.append(int(pool[best]))
        available[best] = False
        u = U[:, best]
        M = M + np.outer(u, u) * (curvature[best] / denominator[best])
        g = g + gradient_weight[best] * Xa[best]
        predicted = float(values[best])
        path.append(predicted)
    return np.array(removed, dtype=np.int64), path


def _decide(inf, bound, rows, path, start, threshold, max_size, candidates):
    """The refit of the greedy set decides; if it crosses, bisection finds the shortest prefix."""
    n, direction = inf.n_samples_, np.sign(threshold - start)

    def crossed(value):
        return direction * (value - threshold) >= 0

    refit, converged = _refit_value(inf, bound, rows) if rows.size else (start, True)
    confirmed = bool(converged and crossed(refit))
    predicted = path[-1] if path else start
    if confirmed:
        low, high = 0, rows.size  # the prefix of length high crosses; find the shortest by bisection
        while high - low > 1:
            middle = (low + high) // 2
            value, ok_refit = _refit_value(inf, bound, rows[:middle])
            if ok_refit and crossed(value):
                high, refit = middle, value
            else:
                low = middle
        rows = rows[:high]
        predicted = path[high - 1]
        message = (
            f"removing {rows.size} row(s) ({rows.size / n:.2%} of n) moves f from {start:.6g} to {refit:.6g} "
            f"(refit), across {threshold:g}"
        )
    elif not converged:
        message = (
            f"the refit without the {rows.size} row(s) found has no minimiser (or did not converge); "
            "no conclusion can be drawn from it"
        )
    else:
        message = (
            f"no set of up to {max_size} row(s) ({max_size / n:.2%} of n) was found: the greedy removal "
            f"of {rows.size} row(s) among the {candidates} candidates moves f from {start:.6g} to "
            f"{refit:.6g} (refit), short of {threshold:g}"
        )
    return FlipSet(rows, rows.size / n, start, threshold, predicted, refit, confirmed, message)


def _refit_value(inf, bound, rows: np.ndarray) -> tuple[float, bool]:
    """(f at the exact refit with the weights of ``rows`` set to 0, whether that refit converged)."""
    from .influence import _refit_without

    engine = inf._engine
    what = f"a candidate set of {rows.size} row(s)"
    delta, converged = _refit_without(inf.model, engine.X, engine.y, engine.s, rows, what, warn=False)
    return float(bound.value(engine.kernels, inf._theta + delta, engine.fit_intercept)[0]), converged
