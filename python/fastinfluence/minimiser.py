"""Whether the objective has a minimiser at all.

A small gradient does not prove an optimum: when R decreases without bound
along some direction (a *recession direction*), Newton's method follows it,
the gradient decays exponentially, and any gradient tolerance is eventually
met far from anything an influence function could be the derivative at.

R is convex, so it has no minimiser exactly when there is a direction ``d``
in the *unpenalised* coordinates (all of theta with l2 = 0; only the
intercept with l2 > 0) along which no weighted loss increases and one
decreases forever:

- squared loss: never (R is a quadratic bounded below);
- logistic and smooth hinge (both decrease to 0 in the margin
  ``sigma_i eta_i``, sigma_i = +-1 for the two classes): ``sigma_i xa_i . d >= 0``
  for every row, ``> 0`` for one. With l2 > 0 that means one class only;
  with l2 = 0 it is (quasi-)separability of the data;
- Poisson (``exp(eta) - y eta``, unbounded below only as eta -> -inf where y = 0):
  ``xa_i . d <= 0`` for every row, ``= 0`` where y_i > 0, ``< 0`` for one.
  With l2 > 0: all counts zero; with l2 = 0, for example a column that is
  non-zero only on rows with zero counts.

With l2 > 0 the test is a look at the labels. With l2 = 0 it is a linear
program (HiGHS, through :func:`scipy.optimize.linprog`), solved only when
the fitted parameters show the symptom of a recession direction: a row whose
loss is nearly saturated, or a fit that did not converge. Along a recession
direction the fit stops once the rows it drives to saturation contribute
less than ``tol^2 R(0)`` to the Newton decrement, roughly when their
curvature (relative to the loss's largest) falls below ``n tol^2``: rows
below ``min(1e-3, 100 n tol^2)`` count as saturated, so the test follows the
stopping rule (a margin of about 30 at the default tol; a legitimate optimum
rarely has one).
"""

from __future__ import annotations

import numpy as np

from . import _validation as V

__all__ = ["SEPARABLE_MESSAGE", "intercept_only_reason", "no_minimiser_reason", "separated_at"]

SEPARABLE_MESSAGE = (
    "the training data are linearly separable and l2 = 0, so the objective has no minimiser "
    "(the weights grow without bound as the tolerance shrinks); fit with l2 > 0"
)


def saturation_threshold(n: int, tol: float) -> float:
    """Rows whose loss'' is below this fraction of its largest possible value count as saturated."""
    return float(min(1e-3, 100.0 * n * tol * tol))


def no_minimiser_reason(
    loss, X, y, weights, theta, fit_intercept: bool, l2: float, converged: bool, tol: float = 1e-10
) -> str | None:
    """Why R has no minimiser, or None when it has one (or none of the tests can tell).

    ``y`` is in the loss's internal encoding; ``theta`` the fit's result, stopped at ``tol``.
    """
    if loss.name == "squared":
        return None
    active = np.ones(y.shape[0], dtype=bool) if weights is None else weights > 0
    if l2 > 0:
        if not fit_intercept:
            return None  # strictly convex
        return intercept_only_reason(loss, y[active])
    eta = V.linear_predictor(X, theta, fit_intercept)
    saturated = _saturated(loss, y, eta, saturation_threshold(y.shape[0], tol)) & active
    if converged and not np.any(saturated):
        return None
    return _linear_program_reason(loss, X, y, active, fit_intercept, eta)


def separated_at(loss, X, y, weights, theta, fit_intercept: bool) -> bool:
    """Whether theta classifies every row of positive weight correctly (margin > 0): with l2 = 0,
    scaling theta up then lowers R forever."""
    active = np.ones(y.shape[0], dtype=bool) if weights is None else weights > 0
    margin = _margin_sign(loss, y) * V.linear_predictor(X, theta, fit_intercept)
    return bool(np.all(margin[active] > 0))


def intercept_only_reason(loss, y_active) -> str | None:
    """Why R has no minimiser when only the intercept is unpenalised (l2 > 0), from the labels
    of the rows of positive weight; None when it has one."""
    if loss.name == "poisson":
        if np.all(y_active == 0):
            return (
                "every count in y is 0, so the objective decreases forever as the intercept goes to "
                "-infinity (no minimiser); the data hold no information on the rate"
            )
        return None
    if np.unique(y_active).size < 2:
        return (
            "y holds one class only, so the objective decreases forever as the (unpenalised) intercept "
            "grows (no minimiser); fit on data with both classes"
        )
    return None


def _margin_sign(loss, y):
    """sigma_i = +1 for the positive class, -1 for the other, in the loss's internal encoding."""
    return np.where(y > 0, 1.0, -1.0) if loss.name == "logistic" else np.sign(y)


def _saturated(loss, y, eta, threshold):
    if loss.name == "poisson":
        return (y == 0) & (eta < np.log(threshold))
    margin = _margin_sign(loss, y) * eta
    t = loss.t if loss.name == "smooth_hinge" else 1.0
    # logistic: loss'' ~ exp(-margin); smooth hinge: ~ exp(-(margin - 1) / t) / t
    shift = 1.0 if loss.name == "smooth_hinge" else 0.0
    return (margin - shift) / t > -np.log(threshold)


def _linear_program_reason(loss, X, y, active, fit_intercept, eta) -> str | None:
    from scipy import sparse
    from scipy.optimize import linprog

    rows = np.flatnonzero(active)
    Xa = X[rows] if V.is_sparse(X) else np.asarray(X, dtype=np.float64)[rows]
    Xa = sparse.csr_matrix(Xa, dtype=np.float64) if V.is_sparse(X) else Xa
    if fit_intercept:
        ones = np.ones((rows.size, 1))
        Xa = sparse.hstack([Xa, ones], format="csr") if sparse.issparse(Xa) else np.hstack([Xa, ones])
    # columns scaled to max |entry| 1 so the LP's tolerances mean the same for every column
    col_max = (
        np.asarray(abs(Xa).max(axis=0).todense()).ravel() if sparse.issparse(Xa) else np.abs(Xa).max(axis=0)
    )
    col_scale = np.where(col_max > 0, 1.0 / np.where(col_max > 0, col_max, 1.0), 0.0)
    Xs = Xa @ sparse.diags(col_scale) if sparse.issparse(Xa) else Xa * col_scale
    yr = y[rows]
    if loss.name == "poisson":
        # xa . d <= 0 everywhere, = 0 where y > 0; maximise -sum over y = 0 of xa . d
        positive = yr > 0
        A_eq = Xs[positive] if np.any(positive) else None
        b_eq = np.zeros(int(positive.sum())) if np.any(positive) else None
        c = np.asarray(Xs[~positive].sum(axis=0)).ravel()
        A_ub, sign = Xs, -1.0
    else:
        sigma = _margin_sign(loss, yr)
        signed = sparse.diags(sigma) @ Xs if sparse.issparse(Xs) else Xs * sigma[:, None]
        # sigma_i xa_i . d >= 0 everywhere; maximise their sum
        A_ub, A_eq, b_eq, sign = -signed, None, None, 1.0
        c = -np.asarray(signed.sum(axis=0)).ravel()
    solution = linprog(
        c, A_ub=A_ub, b_ub=np.zeros(rows.size), A_eq=A_eq, b_eq=b_eq, bounds=(-1, 1), method="highs"
    )
    if solution.status != 0:
        return None
    d = solution.x
    moves = np.asarray(A_ub @ d).ravel() * -1.0  # sigma xa . d (classifiers) or -xa . d (Poisson), each >= 0
    if np.max(moves, initial=0.0) <= 1e-6 or np.min(moves) < -1e-9 * max(1.0, np.max(moves)):
        return None
    count = int(np.sum(moves > 1e-6))
    if sign > 0:
        if np.all(_margin_sign(loss, yr) * eta[rows] > 0):  # theta itself separates them
            return SEPARABLE_MESSAGE
        return (
            f"the training data are quasi-separable and l2 = 0: {count} of {rows.size} rows can be "
            "classified ever more confidently without cost to the others, so the objective has no "
            "minimiser; fit with l2 > 0"
        )
    return (
        f"l2 = 0 and {count} rows with zero counts can have their predicted mean driven to 0 without "
        "changing the others (for example a feature that is non-zero only where y = 0), so the "
        "objective has no minimiser; fit with l2 > 0 or drop such features"
    )
