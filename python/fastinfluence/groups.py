"""Removing a group of training rows at once: the first-order and the Newton estimate.

Removing the rows of a group G (setting their weights to 0, n fixed) moves theta, to first
order, by the sum of the rows' own estimates,

    delta_first = H^{-1} sum_{i in G} (s_i/n) g_i = H^{-1} B_G rho_G,

with ``B_G`` the p x |G| matrix of the rows' ``xa_i`` (``e_l kron xa_i`` for each class l of a
multinomial model: K|G| columns) and ``rho_G`` their stacked ``(s_i/n) loss'_i`` (residuals). The
first-order estimate is known to underestimate the effect of large groups (Koh, Ang, Teo & Liang
2019). One exact Newton step on the objective without G, whose Hessian is
``H - B_G C_G B_G^T`` (``C_G`` block-diagonal: ``(s_i/n) loss''_i``, or ``(s_i/n) Q_i``), is by
Woodbury

    delta_newton = H^{-1} B_G (I - C_G S_G)^{-1} rho_G,     S_G = B_G^T H^{-1} B_G,

a solve of size K|G|; when K|G| exceeds p and H is at hand, ``H - B_G C_G B_G^T`` is formed and
solved instead (size p). It is the exact refit for the squared loss. A target f changes by
``grad f^T delta_first`` (first order) or ``f(theta + delta_newton) - f(theta)``.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _dataframes as D
from . import _validation as V
from . import multinomial as MN
from .exceptions import InvalidArgumentValueError, LeverageWarning

__all__ = ["Groups", "group_indices"]


def group_indices(groups, n: int) -> tuple[list, list[np.ndarray]]:
    """(labels, one array of row positions per group) from a label per row ((n,), groups in the
    order ``numpy.unique`` sorts the labels) or a sequence of index arrays (labels 0, 1, ...)."""
    if isinstance(groups, (list, tuple)) and groups and all(np.ndim(g) == 1 for g in groups):
        members = [V.check_indices(np.asarray(g, dtype=np.int64), n, "groups") for g in groups]
        for k, g in enumerate(members):
            assert g is not None
            if g.size == 0:
                raise InvalidArgumentValueError("groups", f"group {k} is empty")
        return list(range(len(members))), [g for g in members if g is not None]
    labels = np.asarray(D.to_numpy_1d(groups, "groups")[0])
    if labels.shape != (n,):
        raise InvalidArgumentValueError(
            "groups",
            f"must be one label per training row ({n}) or a list of index arrays; got shape {labels.shape}",
        )
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise InvalidArgumentValueError("groups", "has missing (NaN) labels")
    if labels.dtype.kind == "O" and any(v is None for v in labels.tolist()):
        raise InvalidArgumentValueError("groups", "has missing (None) labels")
    names, codes = np.unique(labels, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(names.size + 1))
    return names.tolist(), [order[bounds[k] : bounds[k + 1]] for k in range(names.size)]


class Groups:
    """Groups of training rows scored against a fitted :class:`fastinfluence.Influence`.

    Made by :meth:`fastinfluence.Influence.groups`. ``labels_`` names the groups and ``sizes_``
    gives their sizes; results have one row per group (a DataFrame indexed by ``group`` when the
    training X was a frame).
    """

    def __init__(self, influence, groups):
        self._influence = influence
        self.labels_, self._members = group_indices(groups, influence.n_samples_)
        self.sizes_ = np.array([g.size for g in self._members])

    def _label(self, values, bound=None):
        inf = self._influence
        if inf._engine.train_rows is None:
            return values
        if bound is None:
            columns, fit_intercept = inf._engine.columns, inf._engine.fit_intercept
            return D.label_params(values, self.labels_, columns, fit_intercept, _classes(inf.model), "group")
        return D.label_matrix(values, self.labels_, bound.labels, bound.axis, row_name="group")

    def _steps(self, method: str) -> np.ndarray:
        """theta_{-G} - theta estimated for every group, (groups, p)."""
        inf = self._influence
        inf._check_method(method)
        engine, fit_intercept, K = inf._engine, inf._engine.fit_intercept, inf.model.n_blocks
        n = inf.n_samples_
        steps = np.empty((len(self._members), inf.n_params_))
        risky = 0
        for k, members in enumerate(self._members):
            block = engine.gather(engine.rows(members))
            c = block.s / n
            rho = (c[:, None] * block.d1 if K > 1 else c * block.d1).reshape(-1)
            B = MN.eta_gradients(block.X, K, fit_intercept)  # (p, K |G|), columns i K + l
            if method == "influence":  # one solve: H^{-1} (B rho)
                steps[k] = inf.solver_.solve(B @ rho)
                continue
            C = _curvature_blocks(c, block.d2, K)
            if B.shape[1] > inf.n_params_ and inf.hessian_ is not None:
                # H - B C B^T directly: a solve of size p (the damping as Influence's solver has it)
                reduced = inf.hessian_ + inf.damping * np.eye(inf.n_params_) - B @ C @ B.T
                try:
                    steps[k] = np.linalg.solve(reduced, B @ rho)
                except np.linalg.LinAlgError:
                    steps[k], risky = np.nan, risky + 1
                continue
            HB = inf.solver_.solve(B)
            system = np.eye(B.shape[1]) - C @ (B.T @ HB)
            try:
                steps[k] = HB @ np.linalg.solve(system, rho)
            except np.linalg.LinAlgError:
                steps[k], risky = np.nan, risky + 1
        if risky:
            warnings.warn(
                f"{risky} group(s) leave a singular Hessian when removed (their Newton estimates are NaN)",
                LeverageWarning,
                stacklevel=3,
            )
        return steps

    def loo_params(self, method="influence"):
        """Estimated theta_{-G} - theta when each group is removed, (groups, p)."""
        return self._label(self._steps(method))

    def loo_on(self, target, method="influence"):
        """Estimated change of a target when each group is removed, (groups, columns): first order
        ``grad f^T delta_first``, or ``f(theta + delta_newton) - f(theta)`` (``"newton"``)."""
        inf = self._influence
        bound = inf._bind(target)
        steps = self._steps(method)
        if method == "influence":
            return self._label(steps @ bound.gradients, bound)
        return self._label(bound.change(inf._engine.kernels, steps, inf._engine.fit_intercept), bound)

    def loo(self, X_test, y_test, method="influence"):
        """Estimated change of each test loss when each group is removed, (groups, m)."""
        from .targets import TestLoss

        return self.loo_on(TestLoss(X_test, y_test), method)


def _curvature_blocks(c: np.ndarray, d2: np.ndarray, K: int) -> np.ndarray:
    """C_G: diag(c_i loss''_i), or block-diagonal c_i Q_i (Q_i = diag(P_i) - P_i P_i^T) for K > 1."""
    if K == 1:
        return np.diag(c * d2)
    k = c.size
    C = np.zeros((k * K, k * K))
    for i in range(k):
        P = d2[i]
        C[i * K : (i + 1) * K, i * K : (i + 1) * K] = c[i] * (np.diag(P) - np.outer(P, P))
    return C


def _classes(model):
    return np.asarray(model.classes_).tolist() if model.n_blocks > 1 else None
