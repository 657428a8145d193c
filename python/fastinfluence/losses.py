"""The convex losses fastinfluence supports.

Each loss is a function of the label ``y`` and the linear predictor
``eta = x . w + b``; the kernels need its value and its first two derivatives
in ``eta``. Labels are given here in the *internal* encoding the kernels use
(the estimators in :mod:`fastinfluence.models` translate user labels):

=================  ===============================================  ============  =================
name               loss(y, eta)                                     y (internal)  kind id (C++)
=================  ===============================================  ============  =================
``squared``        ``0.5 * (eta - y)**2``                           real          0
``logistic``       ``log(1 + exp(eta)) - y * eta``                  {0, 1}        1
``smooth_hinge``   ``t * log(1 + exp((1 - y * eta) / t))``          {-1, +1}      2
``poisson``        ``exp(eta) - y * eta`` (log link)                y >= 0        3
=================  ===============================================  ============  =================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .exceptions import InvalidArgumentValueError

__all__ = ["Loss", "get_loss", "loss_infimum", "LOSS_NAMES"]

_KIND_IDS = {"squared": 0, "logistic": 1, "smooth_hinge": 2, "poisson": 3}
LOSS_NAMES = tuple(_KIND_IDS)


@dataclass(frozen=True)
class Loss:
    """A loss by name, with the smooth-hinge temperature ``t`` (ignored by the others)."""

    name: str
    t: float = 1.0

    def __post_init__(self):
        if self.name not in _KIND_IDS:
            raise ValueError(f"loss must be one of {LOSS_NAMES}, got {self.name!r}")
        t = float(self.t)
        if self.name == "smooth_hinge" and not (np.isfinite(t) and t > 0):
            raise ValueError(f"t (smooth-hinge temperature) must be a finite number > 0, got {self.t!r}")
        object.__setattr__(self, "t", t)

    @property
    def kind(self) -> int:
        """Integer id of the loss in the C++ core."""
        return _KIND_IDS[self.name]

    def check_targets(self, y: np.ndarray, name: str = "y") -> None:
        """Raise ValueError unless every entry of ``y`` is in this loss's (internal) label domain."""
        if self.name == "logistic":
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
    smallest at eta = log y, where it is ``y - y log y`` (0 for y = 0)."""
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
