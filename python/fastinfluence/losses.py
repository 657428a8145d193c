"""The convex losses fastinfluence supports.

Each loss is a function of the label ``y`` and the linear predictor
``eta = x . w + b``; the kernels need its value and its first two derivatives
in ``eta``. Labels are given here in the *internal* encoding the kernels use
(the estimators in :mod:`fastinfluence.models` translate user labels):

=================  ================================================  ============  =================
name               loss(y, eta)                                      y (internal)  kind id (C++)
=================  ================================================  ============  =================
``squared``        ``0.5 * (eta - y)**2``                            real          0
``logistic``       ``log(1 + exp(eta)) - y * eta``                   {0, 1}        1
``smooth_hinge``   ``t * log(1 + exp((1 - y * eta) / t))``           {-1, +1}      2
``poisson``        ``exp(eta) - y * eta`` (log link)                 y >= 0        3
``multinomial``    ``logsumexp(eta) - eta[y]`` (softmax, K classes)  {0, .., K-1}  4
=================  ================================================  ============  =================

The first four are per-entry losses of one linear predictor per row (:data:`LOSS_NAMES`).
The multinomial loss (:data:`MULTICLASS_LOSS_NAMES`) takes a vector ``eta`` of K linear
predictors per row, one per class, ``eta_k = x . w_k + b_k``, with integer class codes ``y``;
its kernels (``row_derivatives`` with ``n_classes``, the ``multinomial_*`` functions of
:mod:`fastinfluence.kernels`) work on (n, K) arrays, so the per-entry ``loss_terms`` and
``loss_difference`` refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .exceptions import InvalidArgumentValueError

__all__ = ["Loss", "get_loss", "loss_infimum", "LOSS_NAMES", "MULTICLASS_LOSS_NAMES"]

_KIND_IDS = {"squared": 0, "logistic": 1, "smooth_hinge": 2, "poisson": 3, "multinomial": 4}
#: The per-entry losses: one linear predictor per row.
LOSS_NAMES = ("squared", "logistic", "smooth_hinge", "poisson")
#: The losses of K linear predictors per row, one per class.
MULTICLASS_LOSS_NAMES = ("multinomial",)

# What curvature_weights' refusal of the multinomial loss points to.
CURVATURE_INSTEAD = (
    "its curvature is a K x K block diag(P_i) - P_i P_i^T per row, not one weight c_i; use "
    "multinomial_gram_product (and multinomial_gram_diagonal) with c = s / n and P from row_derivatives"
)


@dataclass(frozen=True)
class Loss:
    """A loss by name, with the smooth-hinge temperature ``t`` (ignored by the others)."""

    name: str
    t: float = 1.0

    def __post_init__(self):
        if self.name not in _KIND_IDS:
            raise ValueError(f"loss must be one of {tuple(_KIND_IDS)}, got {self.name!r}")
        t = float(self.t)
        if self.name == "smooth_hinge" and not (np.isfinite(t) and t > 0):
            raise ValueError(f"t (smooth-hinge temperature) must be a finite number > 0, got {self.t!r}")
        object.__setattr__(self, "t", t)

    @property
    def kind(self) -> int:
        """Integer id of the loss in the C++ core."""
        return _KIND_IDS[self.name]

    @property
    def multiclass(self) -> bool:
        """True for the losses of K linear predictors per row (the multinomial loss)."""
        return self.name in MULTICLASS_LOSS_NAMES

    def require_per_entry(self, what: str, instead: str = "") -> None:
        """Raise ValueError when this loss is not a per-entry loss: ``what`` names the caller,
        ``instead`` what to use (by default row_derivatives, multinomial_loo_loss_change)."""
        if self.multiclass:
            instead = instead or (
                "use row_derivatives with n_classes, or multinomial_loo_loss_change for changes of loss"
            )
            raise ValueError(
                f"{what} takes a per-entry loss (one of {LOSS_NAMES}); the {self.name} loss has K "
                f"linear predictors per row: {instead}"
            )

    def check_targets(self, y: np.ndarray, name: str = "y", n_classes: int | None = None) -> None:
        """Raise ValueError unless every entry of ``y`` is in this loss's (internal) label domain.

        For the multinomial loss that is integer class codes >= 0, and below ``n_classes`` when given.
        """
        if self.name == "multinomial":
            bad = (y < 0) | (y != np.floor(y))
            expected = "integer class codes >= 0"
            if n_classes is not None:
                bad |= y >= n_classes
                expected = f"integer class codes in 0..{n_classes - 1}"
        elif self.name == "logistic":
            bad = (y != 0) & (y != 1)
            expected = "labels in {0, 1}"
        elif self.name == "smooth_hinge":
            bad = (y != -1) & (y != 1)
            expected = "labels in {-1, +1}"
        elif self.name == "poisson":
            bad = y < 0
            expected = "non-negative counts"
        else:
            return
        if np.any(bad):
            first = y[np.flatnonzero(bad)[0]]
            raise InvalidArgumentValueError(
                name, f"must hold {expected} for the {self.name} loss; found {float(first):g}"
            )


def loss_infimum(loss: Loss, y: np.ndarray) -> np.ndarray:
    """inf over eta of loss(y_i, eta), elementwise: 0 but for Poisson, whose ``exp(eta) - y eta`` is
    smallest at eta = log y, where it is ``y - y log y`` (0 for y = 0). The multinomial loss
    approaches 0 as eta_y - max_{k != y} eta_k grows: its infimum is 0 too."""
    if loss.name != "poisson":
        return np.zeros_like(y, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return y - y * np.log(np.where(y > 0, y, 1.0))


def get_loss(loss: str | Loss, t: float | None = None) -> Loss:
    """Return a :class:`Loss` from a name (with ``t`` for the smooth hinge) or a Loss."""
    if isinstance(loss, Loss):
        if t is not None and t != loss.t:
            raise ValueError("t given twice, as an argument and inside the Loss")
        return loss
    return Loss(str(loss), 1.0 if t is None else t)
