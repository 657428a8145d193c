"""Plots of influence results (matplotlib, an optional extra: ``pip install ".[plot]"`` in a checkout,
``"fastinfluence[plot]"`` from an index).

Each function draws on ``ax`` (a new figure's Axes when ``ax`` is None) and
returns that Axes, so plots compose with the rest of a matplotlib figure:

>>> import fastinfluence.plot as fiplot                        # doctest: +SKIP
>>> ax = fiplot.plot_loo(inf.loo(X_test, y_test)[:, 0], actual[:, 0])   # doctest: +SKIP
>>> ax.figure.savefig("loo.png")                               # doctest: +SKIP

Sign convention (see :mod:`fastinfluence.influence`): a negative
``I_up,loss(z_i, z_test)`` marks a *helpful* training point (upweighting it lowers
the test loss), a positive one a *harmful* point.

Labels: pandas Series (a column of ``inf.loss(X_test, y_test)`` for a training
frame, ``inf.self_influence()``, a column of ``fi.exact_loo(...)``) carry the training
rows' labels in their index. Given one, :func:`plot_top_influences` names its bars by
them and :func:`plot_loo` labels its most influential points; several Series given
together are matched by label (in the first one's order), not by position.

matplotlib is imported when a function is first called, never at
``import fastinfluence``.
"""

from __future__ import annotations

import numpy as np

from . import _dataframes as D
from ._optional import require

__all__ = ["plot_loo", "plot_top_influences", "plot_mislabel_detection"]

HELPFUL_COLOR = "#2b7bba"
HARMFUL_COLOR = "#d1495b"


def _new_axes():
    """A fresh Axes from pyplot, with a clear message when matplotlib is missing."""
    plt = require("matplotlib.pyplot", extra="plot", purpose="fastinfluence.plot")
    _, ax = plt.subplots()
    return ax


def _vector(values, name):
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _matched_by_label(named: dict):
    """``(values, labels)``: the values of ``named`` (name -> array or pandas Series), Series
    reordered by label to the first Series's index, and that index as a list (None when no Series
    was given). Arrays are taken in that order as they are."""
    indexes = [D.pandas_series_index(values) for values in named.values()]
    reference = next((index for index in indexes if index is not None), None)
    matched = {}
    for (name, values), index in zip(named.items(), indexes):
        aligned = index is None or reference is None or index.equals(reference)
        matched[name] = values if aligned else _align(values, index, reference, name)
    return matched, None if reference is None else list(reference)


def _align(series, index, reference, name):
    """``series`` reordered to the labels of ``reference``: ValueError unless it has the same labels."""
    if not (index.is_unique and reference.is_unique):
        raise ValueError(
            f"{name} is a Series whose index differs from the other's and is not unique, so its "
            "values cannot be matched by label; pass Series with the same index (or arrays)"
        )
    missing, extra = reference.difference(index), index.difference(reference)
    if len(missing) or len(extra):
        detail = D.describe_column_mismatch(
            list(reference), list(index), lacking="the labels", extra="labels the others do not have:"
        )
        raise ValueError(f"{name} {detail}: Series are matched by their index labels")
    return series.reindex(reference)


def pearson_correlation(predicted, actual) -> float:
    """Pearson correlation of two vectors over the entries where both are finite (NaN if undefined)."""
    predicted = _vector(predicted, "predicted")
    actual = _vector(actual, "actual")
    if predicted.shape != actual.shape:
        raise ValueError(
            f"predicted and actual must have the same shape, got {predicted.shape} and {actual.shape}"
        )
    finite = np.isfinite(predicted) & np.isfinite(actual)
    p, a = predicted[finite], actual[finite]
    if p.size < 2 or np.std(p) == 0.0 or np.std(a) == 0.0:
        return float("nan")
    return float(np.corrcoef(p, a)[0, 1])


def plot_loo(predicted, actual, ax=None, *, label="training points", annotate=None, scale="linear"):
    """Predicted against actual leave-one-out change of test loss, Pearson r in the title.

    Parameters
    ----------
    predicted : array or pandas Series of shape (k,)
        Estimated ``loss(z_test, theta_{-i}) - loss(z_test, theta)``, for example
        ``inf.loo(X_test, y_test, indices=idx)[:, j]`` (or a flattened matrix), or a column
        of the DataFrame it is for a training frame.
    actual : array or pandas Series of shape (k,)
        The same change from brute-force refits, ``fi.exact_loo(...)``. Two Series are
        matched by their index labels; a ValueError says which labels one lacks.
    ax : matplotlib Axes or None
    label : str
        Legend label of the scattered points.
    annotate : int >= 0 or None
        How many points to label, those whose removal changes the test loss most (largest
        ``|actual|``): by their index label when a Series was given, else ``#i`` (position).
        None: 5 when a Series was given, 0 otherwise.
    scale : {"linear", "symlog"}
        "symlog": both axes symmetric-logarithmic, linear within 1/1000 of the largest
        ``|actual|`` of 0 and logarithmic beyond (three decades each side), so that the many
        removals that barely move the test loss spread out instead of piling up at 0 beside the
        few that move it most.

    Returns
    -------
    ax : the matplotlib Axes drawn on. A point on the diagonal is a perfect
    estimate; the title reads ``Pearson r = ...`` (NaN-free entries only).
    """
    matched, labels = _matched_by_label({"predicted": predicted, "actual": actual})
    predicted, actual = _vector(matched["predicted"], "predicted"), _vector(matched["actual"], "actual")
    if annotate is None:
        annotate = 0 if labels is None else 5
    if isinstance(annotate, bool) or not isinstance(annotate, (int, np.integer)) or annotate < 0:
        raise ValueError(f"annotate must be an integer >= 0 or None, got {annotate!r}")
    if scale not in ("linear", "symlog"):
        raise ValueError(f"scale must be 'linear' or 'symlog', got {scale!r}")
    r = pearson_correlation(predicted, actual)
    if ax is None:
        ax = _new_axes()
    if scale == "symlog":
        magnitudes = np.abs(actual[np.isfinite(actual)])
        largest = float(magnitudes.max()) if magnitudes.size else 0.0
        linthresh = 1e-3 * largest if largest > 0 else 1.0
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_yscale("symlog", linthresh=linthresh)
    ax.scatter(actual, predicted, s=14, alpha=0.7, color=HELPFUL_COLOR, edgecolors="none", label=label)
    finite = np.concatenate([actual[np.isfinite(actual)], predicted[np.isfinite(predicted)]])
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.plot(
            [lo - pad, hi + pad],
            [lo - pad, hi + pad],
            color="0.4",
            linewidth=1,
            linestyle="--",
            label="predicted = actual",
        )
    ax.axhline(0.0, color="0.85", linewidth=0.8, zorder=0)
    ax.axvline(0.0, color="0.85", linewidth=0.8, zorder=0)
    if predicted.shape == actual.shape:  # pearson_correlation has refused other shapes
        _annotate_largest(ax, predicted, actual, labels, int(annotate))
    ax.set_xlabel("actual change of test loss (retrained without the point)")
    ax.set_ylabel("predicted change of test loss")
    ax.set_title(f"Leave-one-out: predicted vs actual (Pearson r = {r:.3f})")
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    return ax


def _annotate_largest(ax, predicted, actual, labels, count: int) -> None:
    """Label the ``count`` finite points of largest ``|actual|`` (ties by position)."""
    finite = np.flatnonzero(np.isfinite(actual) & np.isfinite(predicted))
    chosen = finite[np.argsort(-np.abs(actual[finite]), kind="stable")][:count]
    for i in chosen:
        name = f"#{i}" if labels is None else str(labels[i])
        ax.annotate(
            name, (actual[i], predicted[i]), xytext=(4, 4), textcoords="offset points", fontsize="x-small"
        )


def plot_top_influences(scores, k=10, ax=None, labels=None):
    """The k most helpful and k most harmful training points for one test point, as horizontal bars.

    Parameters
    ----------
    scores : array or pandas Series of shape (n_train,)
        ``I_up,loss(z_i, z_test)`` for every training point i, one column of
        ``inf.loss(X_test, y_test)`` (for a training frame, a Series indexed by its rows:
        ``inf.loss(X_test, y_test)[test_label]``). Negative = helpful, positive = harmful.
    k : int
        How many of each kind to show (fewer when there are fewer training points).
    ax : matplotlib Axes or None
    labels : sequence of length n_train, or None
        Names for the training points; default: a Series' index labels, else ``train #i``.

    Returns
    -------
    ax : the matplotlib Axes drawn on. Bars are sorted by score: the most
    helpful point (most negative, blue) at the bottom, the most harmful (most
    positive, red) at the top.
    """
    index = D.pandas_series_index(scores)
    scores = _vector(scores, "scores")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if labels is not None and len(labels) != scores.size:
        raise ValueError(f"labels must have one entry per training point ({scores.size}), got {len(labels)}")
    if labels is None and index is not None:
        labels = list(index)
    order = np.argsort(scores, kind="stable")
    k = min(int(k), scores.size)
    selected = np.union1d(order[:k], order[::-1][:k])  # with k > n/2 each point is shown once
    shown = selected[np.argsort(scores[selected], kind="stable")]  # most helpful at the bottom
    names = [str(labels[i]) if labels is not None else f"train #{i}" for i in shown]
    colors = [HELPFUL_COLOR if scores[i] < 0 else HARMFUL_COLOR for i in shown]
    if ax is None:
        ax = _new_axes()
    positions = np.arange(shown.size)
    ax.barh(positions, scores[shown], color=colors)
    ax.set_yticks(positions)
    ax.set_yticklabels(names, fontsize="small")
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.set_xlabel("I_up,loss  (< 0: helpful, lowers the test loss;  > 0: harmful)")
    ax.set_title(f"Most helpful and most harmful training points (top {k} each)")
    return ax


def detection_curve(ranking, flipped_mask):
    """Fraction of flipped labels found after checking the first 0..n points of ``ranking``.

    Returns ``(fraction_checked, fraction_found)``, two arrays of length n + 1
    starting at (0, 0).
    """
    flipped_mask = np.asarray(flipped_mask, dtype=bool)
    n_flipped = int(flipped_mask.sum())
    found = np.concatenate([[0], np.cumsum(flipped_mask[np.asarray(ranking)])])
    checked = np.arange(found.size) / flipped_mask.size
    return checked, found / max(n_flipped, 1)


def plot_mislabel_detection(self_influence, training_loss, flipped_mask, ax=None, seed=0):
    """Mislabel-detection curves: fraction of flipped labels found against fraction of data checked.

    Three ways to order the training points for manual checking (Koh & Liang,
    section 5.4): by self-influence magnitude ``|I_up,loss(z_i, z_i)|`` (largest
    first), by training loss (largest first), and at random.

    Parameters
    ----------
    self_influence : array or pandas Series of shape (n,)
        ``inf.self_influence()`` of a model fitted on the noisy labels.
    training_loss : array or pandas Series of shape (n,)
        Each training point's loss at the fitted parameters, ``model.row_losses(X, y)``.
    flipped_mask : bool array or pandas Series of shape (n,)
        True where the label was flipped. Series among the three are matched by their index
        labels (to the first Series's order).
    ax : matplotlib Axes or None
    seed : int
        Seed of the random ordering.

    Returns
    -------
    ax : the matplotlib Axes drawn on.
    """
    matched, _ = _matched_by_label(
        {"self_influence": self_influence, "training_loss": training_loss, "flipped_mask": flipped_mask}
    )
    self_influence = _vector(matched["self_influence"], "self_influence")
    training_loss = _vector(matched["training_loss"], "training_loss")
    flipped_mask = matched["flipped_mask"]
    flipped_mask = np.asarray(flipped_mask)
    if flipped_mask.dtype != bool:
        raise TypeError(f"flipped_mask must be a boolean array, got dtype {flipped_mask.dtype}")
    n = self_influence.size
    if training_loss.size != n or flipped_mask.shape != (n,):
        raise ValueError(
            f"self_influence, training_loss and flipped_mask must all have shape ({n},), got "
            f"{training_loss.shape} and {flipped_mask.shape}"
        )
    rankings = {
        "self-influence |I_up,loss(z_i, z_i)|": np.argsort(-np.abs(self_influence), kind="stable"),
        "training loss": np.argsort(-training_loss, kind="stable"),
        "random": np.random.default_rng(seed).permutation(n),
    }
    styles = {
        "self-influence |I_up,loss(z_i, z_i)|": {"color": HELPFUL_COLOR, "linewidth": 2},
        "training loss": {"color": "#edae49", "linewidth": 2},
        "random": {"color": "0.5", "linewidth": 1.5, "linestyle": "--"},
    }
    if ax is None:
        ax = _new_axes()
    for name, ranking in rankings.items():
        checked, found = detection_curve(ranking, flipped_mask)
        ax.plot(checked, found, label=name, **styles[name])
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("fraction of training data checked")
    ax.set_ylabel("fraction of flipped labels found")
    ax.set_title(f"Mislabel detection ({int(flipped_mask.sum())} of {n} labels flipped)")
    ax.legend(loc="lower right", frameon=False, fontsize="small")
    ax.grid(True, color="0.92")
    return ax
