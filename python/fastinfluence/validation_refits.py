"""An accuracy certificate: the influence estimates checked against exact refits on the user's data.

:meth:`fastinfluence.Influence.validate` (the test loss) and :meth:`~fastinfluence.Influence.validate_on`
(any target of :mod:`fastinfluence.targets`) pick the training rows (or groups) to check,

* the ``n_top`` of largest first-order estimate ``max_j |f_j(theta_{-i}) - f_j(theta)|`` (over
  the target's columns j): where a large effect is claimed and the first-order estimate is
  least safe, and
* ``n_random`` more drawn uniformly from the rest (seeded by ``random_state``): what a
  typical row looks like,

refit the model exactly without each (:func:`fastinfluence.exact_loo_on` or
:func:`fastinfluence.exact_group_loo_on`: Newton's method warm-started at the fitted theta, run
to the model's tolerance, n fixed) and compare the first-order and the Newton estimate with the
refitted change, over every (checked row, target column) pair:

==========================  ==============================================================
``pearson``                 Pearson correlation of estimate and refit
``spearman``                Spearman (rank) correlation
``max_abs_error``           ``max |estimate - refit|``
``max_relative_error``      ``max_abs_error / max |refit|``: the largest error relative to
                            the largest change the refits show (entrywise relative errors
                            are meaningless where a refit changes f by almost nothing)
==========================  ==============================================================

Pairs where an estimate is NaN (the Newton estimate of a row of leverage within rounding of 1)
are left out of that estimate's figures and counted in ``n_undefined``. The refits are of the
undamped objective: with ``damping > 0`` the certificate measures the damping's bias too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import _dataframes as D
from . import _validation as V
from . import targets as T

__all__ = ["AccuracyCertificate", "certify"]

METHODS = ("influence", "newton")
_METHOD_NAMES = {"influence": "first order", "newton": "Newton step"}


@dataclass(frozen=True, repr=False)
class AccuracyCertificate:
    """The estimates of removing training rows (or groups) next to the exact refits without them.

    Made by :meth:`fastinfluence.Influence.validate` and :meth:`~fastinfluence.Influence.validate_on`.

    Attributes
    ----------
    rows : (k,) int array
        The rows checked, as positions 0 .. n-1 (with groups: positions in the order of
        ``Influence.groups(groups).labels_``), first the ``n_top`` of largest
        ``|first-order estimate|``, then the random ones.
    kind : (k,) object array
        ``"top"`` or ``"random"`` for each of ``rows``.
    labels : list or None
        The group labels of ``rows`` (None when rows were checked one by one).
    refit : (k, c) array
        ``f(theta_{-i}) - f(theta)`` by exact refit, for each of the target's c columns.
    influence, newton : (k, c) arrays
        The first-order and the Newton estimates of the same (see :meth:`Influence.loo_on`).
    metrics : dict
        ``{"influence": {...}, "newton": {...}}``, each with ``pearson``, ``spearman``,
        ``max_abs_error``, ``max_relative_error`` and ``n_undefined`` (see the module docstring),
        over every checked row.
    metrics_by_kind : dict
        The same figures over the ``"top"`` rows and over the ``"random"`` ones
        (``metrics_by_kind["random"]["newton"]["max_abs_error"]``): the random rows say what a
        typical row's estimate is worth, the top rows what the largest claimed effects are.
    target : str
        The target's name; ``random_state`` the seed given; ``seconds_refits`` the time the k refits took.
    """

    rows: np.ndarray
    kind: np.ndarray
    labels: list | None
    refit: np.ndarray
    influence: np.ndarray
    newton: np.ndarray
    target: str
    random_state: object
    seconds_refits: float
    metrics: dict = field(default_factory=dict)
    metrics_by_kind: dict = field(default_factory=dict)

    @property
    def unit(self) -> str:
        """``"row"`` or ``"group"``: what each refit removed."""
        return "row" if self.labels is None else "group"

    def __repr__(self) -> str:
        k, c = self.refit.shape
        n_top = int(np.sum(self.kind == "top"))
        units = f"{self.unit}s" if k != 1 else self.unit
        largest = float(np.max(np.abs(self.refit))) if self.refit.size else float("nan")
        lines = [
            (
                f"AccuracyCertificate({self.target}: {k} {units} refitted exactly, {n_top} of largest "
                f"|influence| and {k - n_top} at random (random_state={self.random_state!r}); "
                f"{k * c} ({self.unit}, column) pairs, largest refit change {largest:.3g}, "
                f"refits {self.seconds_refits:.2f} s)"
            ),
            f"  {'estimate':<12s}{'Pearson r':>11s}{'Spearman r':>12s}{'max |error|':>13s}{'relative':>10s}",
        ]
        for method in METHODS:
            m = self.metrics[method]
            undefined = f"  ({m['n_undefined']} undefined)" if m["n_undefined"] else ""
            lines.append(
                f"  {_METHOD_NAMES[method]:<12s}{m['pearson']:>11.4f}{m['spearman']:>12.4f}"
                f"{m['max_abs_error']:>13.3g}{m['max_relative_error']:>10.2%}{undefined}"
            )
        for kind, by_kind in self.metrics_by_kind.items():
            count = f"{int(np.sum(self.kind == kind))} {kind} {units if k != 1 else self.unit}"
            first, newton = by_kind["influence"]["max_abs_error"], by_kind["newton"]["max_abs_error"]
            lines.append(
                f"  max |error| on the {count + ':':<16s} first order {first:.3g}, Newton {newton:.3g}"
            )
        return "\n".join(lines)

    def to_frame(self):
        """One tidy pandas DataFrame, a line per (checked row or group, target column): ``row`` (or
        ``group``: the position; ``label`` the group's label), ``kind``, ``column`` (0 .. c-1),
        ``refit``, ``influence``, ``newton`` and the two estimates' errors ``influence_error``,
        ``newton_error`` (estimate minus refit). Needs pandas."""
        pd = D.require_pandas("AccuracyCertificate.to_frame")
        k, c = self.refit.shape
        frame = pd.DataFrame({self.unit: np.repeat(self.rows, c)})
        if self.labels is not None:
            frame["label"] = np.repeat(np.array(self.labels, dtype=object), c)
        frame["kind"] = np.repeat(self.kind, c)
        frame["column"] = np.tile(np.arange(c), k)
        frame["refit"] = self.refit.ravel()
        for method in METHODS:
            frame[method] = getattr(self, method).ravel()
        for method in METHODS:
            frame[f"{method}_error"] = getattr(self, method).ravel() - self.refit.ravel()
        return frame


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values)


def compare(estimate: np.ndarray, refit: np.ndarray) -> dict:
    """The figures of the module docstring for one estimate against the refits (any equal shapes)."""
    estimate, refit = np.ravel(estimate), np.ravel(refit)
    finite = np.isfinite(estimate) & np.isfinite(refit)
    e, r = estimate[finite], refit[finite]
    undefined = int(estimate.size - e.size)
    if e.size == 0:
        nan = float("nan")
        return dict(
            pearson=nan, spearman=nan, max_abs_error=nan, max_relative_error=nan, n_undefined=undefined
        )
    error = float(np.max(np.abs(e - r)))
    scale = float(np.max(np.abs(r)))
    constant = e.size < 2 or np.ptp(e) == 0.0 or np.ptp(r) == 0.0
    return dict(
        pearson=float("nan") if constant else float(np.corrcoef(e, r)[0, 1]),
        spearman=float("nan") if constant else float(np.corrcoef(_ranks(e), _ranks(r))[0, 1]),
        max_abs_error=error,
        max_relative_error=error / scale if scale > 0 else (0.0 if error == 0 else float("inf")),
        n_undefined=undefined,
    )


def _choose(first_order: np.ndarray, n_top: int, n_random: int, random_state):
    """(positions, kinds): the n_top of largest max_j |first_order[:, j]|, then n_random of the rest."""
    units = first_order.shape[0]
    size = np.max(np.abs(first_order), axis=1) if first_order.shape[1] else np.zeros(units)
    size = np.where(np.isfinite(size), size, -np.inf)
    n_top = min(n_top, units)
    top = np.argsort(-size, kind="stable")[:n_top]
    rest = np.setdiff1d(np.arange(units), top)
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(rest, size=min(n_random, rest.size), replace=False))
    rows = np.concatenate([top, sample]).astype(np.int64)
    kinds = np.array(["top"] * top.size + ["random"] * sample.size, dtype=object)
    return rows, kinds


#: The rows are ranked by their first-order estimates in blocks of at most this many bytes, so
#: that a certificate of a large n x c problem never holds the (n, c) matrix.
RANKING_BLOCK_BYTES = 64 * 2**20


def _first_order_sizes(inf, target) -> np.ndarray:
    """max_j |first-order estimate| of every training row, (n, 1), block by block."""
    n = inf.n_samples_
    c = inf._bind(target).n_columns
    step = max(1, RANKING_BLOCK_BYTES // (8 * max(c, 1)))
    sizes = np.empty((n, 1))
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        block = np.abs(np.asarray(inf.loo_on(target, "influence", indices=rows), dtype=np.float64))
        sizes[rows, 0] = block.max(axis=1) if c else 0.0
    return sizes


def certify(inf, target, *, n_top=10, n_random=20, groups=None, random_state=0) -> AccuracyCertificate:
    """See :meth:`fastinfluence.Influence.validate_on`."""
    from .influence import _exact_removals

    engine = inf._engine
    if not hasattr(engine, "X"):
        raise ValueError(
            f"validate needs the training rows in memory for its exact refits; this {type(inf).__name__} "
            "holds them as Dask chunks. Check a sample instead: bring it into memory, fit "
            "fastinfluence.Influence on it and call its validate"
        )
    if not isinstance(target, T.Target):
        raise TypeError(f"target must be a fastinfluence.targets target, got {type(target).__name__}")
    n_top = V.check_nonnegative_int(n_top, "n_top")
    n_random = V.check_nonnegative_int(n_random, "n_random")
    if n_top + n_random == 0:
        raise ValueError("n_top and n_random are both 0: give at least one row to refit")
    if groups is None:
        first_order = _first_order_sizes(inf, target)
        rows, kinds = _choose(first_order, n_top, n_random, random_state)
        first_order = np.asarray(inf.loo_on(target, "influence", indices=rows), dtype=np.float64)
        newton = np.asarray(inf.loo_on(target, "newton", indices=rows), dtype=np.float64)
        labels, selection = None, {"indices": rows}
    else:
        every = inf.groups(groups)
        first_order = np.asarray(every.loo_on(target, "influence"), dtype=np.float64)
        rows, kinds = _choose(first_order, n_top, n_random, random_state)
        members = [every._members[k] for k in rows]
        newton = np.asarray(inf.groups(members).loo_on(target, "newton"), dtype=np.float64)
        labels, selection = [every.labels_[k] for k in rows], {"groups": members}
    start = time.perf_counter()
    # the package's refits (warm-started at theta, n fixed), on the arrays the Influence holds
    refit = _exact_removals(inf.model, engine.X, engine.y, engine.weights, target, False, **selection)
    seconds = time.perf_counter() - start
    refit = np.asarray(refit, dtype=np.float64).reshape(rows.size, -1)
    if groups is not None:
        first_order = first_order[rows]
    estimates = {"influence": first_order.reshape(rows.size, -1), "newton": newton.reshape(rows.size, -1)}
    return AccuracyCertificate(
        rows=rows,
        kind=kinds,
        labels=labels,
        refit=refit,
        influence=estimates["influence"],
        newton=estimates["newton"],
        target=type(target).__name__,
        random_state=random_state,
        seconds_refits=seconds,
        metrics={method: compare(estimates[method], refit) for method in METHODS},
        metrics_by_kind={
            kind: {
                method: compare(estimates[method][kinds == kind], refit[kinds == kind]) for method in METHODS
            }
            for kind in ("top", "random")
            if np.any(kinds == kind)
        },
    )
