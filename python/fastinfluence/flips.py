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
rows whose own first-order removal estimate moves f most the right way. Once the estimate
crosses the threshold, an exact refit without the set confirms it, or the greedy removal goes
on (refitting at each step) up to ``max_size`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validation as V
from .exceptions import InvalidArgumentValueError

__all__ = ["FlipSet", "flip_set"]


@dataclass(frozen=True)
class FlipSet:
    """The result of :meth:`fastinfluence.Influence.flip_set`.

    ``rows``: training positions in the order they were removed; ``fraction``: their number over
    n; ``start``: f at the fitted theta; ``predicted``: the Newton estimate of f without the rows;
    ``refit``: f at the exact refit without them (NaN if no refit was made); ``confirmed``: the
    refit crosses ``threshold``; ``message`` says what was found.
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
    start = float(bound.value(kernels, theta, fit_intercept)[0])
    direction = np.sign(threshold - start)
    if direction == 0:
        return FlipSet(
            np.empty(0, np.int64), 0.0, start, threshold, start, start, True, "f is at the threshold"
        )

    def crossed(value):
        return direction * (value - threshold) >= 0

    # candidates: the rows whose own removal moves f furthest towards the threshold
    own = np.asarray(inf.loo_on(target, "influence"))[:, 0] * direction
    order = np.argsort(-own, kind="stable")
    pool = order[own[order] > 0][: max(int(candidates), max_size)]
    block = engine.gather(engine.rows(pool))
    Xa = _augmented(block.X, fit_intercept)  # (L, p)
    c = block.s / n
    curvature, gradient_weight = c * block.d2, c * block.d1
    M = np.linalg.inv(inf.hessian_ + inf.damping * np.eye(inf.n_params_))
    g = np.zeros(inf.n_params_)  # sum over the removed rows of (s_i/n) loss'_i xa_i
    removed: list[int] = []
    available = np.ones(pool.size, dtype=bool)
    predicted, refit, confirmed = start, np.nan, False
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
        best = int(np.argmax(progress))
        removed.append(int(pool[best]))
        available[best] = False
        u = U[:, best]
        M = M + np.outer(u, u) * (curvature[best] / denominator[best])
        g = g + gradient_weight[best] * Xa[best]
        predicted = float(values[best])
        if crossed(predicted):
            refit = _refit_value(inf, bound, np.array(removed))
            if crossed(refit):
                confirmed = True
                break
    rows = np.array(removed, dtype=np.int64)
    if confirmed:
        message = (
            f"removing {rows.size} row(s) ({rows.size / n:.2%} of n) moves f from {start:.6g} to {refit:.6g} "
            f"(refit; the Newton estimate {predicted:.6g}), across {threshold:g}"
        )
    elif np.isfinite(refit):
        message = (
            f"the Newton estimate crosses {threshold:g} after {rows.size} row(s), but the refits do not "
            f"up to {max_size} rows (f at the last refit {refit:.6g})"
        )
    else:
        message = (
            f"no set of up to {max_size} row(s) ({max_size / n:.2%} of n) among the {pool.size} candidates "
            f"is estimated to move f from {start:.6g} across {threshold:g} (the estimate reaches "
            f"{predicted:.6g})"
        )
    return FlipSet(rows, rows.size / n, start, threshold, predicted, refit, confirmed, message)


def _augmented(X, fit_intercept: bool) -> np.ndarray:
    X = X.toarray() if V.is_sparse(X) else np.asarray(X, dtype=np.float64)
    return np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X


def _refit_value(inf, bound, rows: np.ndarray) -> float:
    """f at the exact refit with the weights of ``rows`` set to 0."""
    from .influence import _refit_without

    engine = inf._engine
    delta = _refit_without(
        inf.model, engine.X, engine.y, engine.s, rows, f"the {rows.size} row(s) of the set"
    )
    return float(bound.value(engine.kernels, inf._theta + delta, engine.fit_intercept)[0])
