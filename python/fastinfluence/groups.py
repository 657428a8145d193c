"""Removing a group of training rows at once: the first-order and the Newton estimate.

Removing the rows of a group G (setting their weights to 0, n fixed) moves theta, to first
order, by the sum of the rows' own estimates,

    delta_first = H^{-1} sum_{i in G} (s_i/n) g_i = H^{-1} B_G rho_G,

with ``B_G`` the p x ``|G|`` matrix of the rows' ``xa_i`` (``e_l kron xa_i`` for each class l of a
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

import math
import warnings

import numpy as np

from . import _dataframes as D
from . import _validation as V
from . import multinomial as MN
from .exceptions import InvalidArgumentValueError, LeverageWarning

__all__ = ["Groups", "group_indices"]


def group_indices(groups, n: int) -> tuple[list, list[np.ndarray]]:
    """(labels, one sorted array of distinct row positions per group) from a label per row ((n,):
    numbers, strings, tuples; groups in the order ``numpy.unique`` sorts the labels) or a list of
    index arrays (NumPy arrays or lists of positions; labels 0, 1, ...)."""
    if (
        isinstance(groups, (list, tuple))
        and groups
        and all(isinstance(g, (list, np.ndarray)) for g in groups)
    ):
        members = []
        for k, g in enumerate(groups):
            rows = V.check_indices(np.asarray(g, dtype=np.int64), n, "groups")
            if rows is None or rows.size == 0:
                raise InvalidArgumentValueError("groups", f"group {k} is empty")
            members.append(np.unique(rows))  # a row is removed once, however often it is listed
        return list(range(len(members))), members
    if isinstance(groups, (list, tuple)):  # labels, possibly tuples: one object per row
        labels = np.empty(len(groups), dtype=object)
        labels[:] = list(groups)
    else:
        labels = np.asarray(D.to_numpy_1d(groups, "groups")[0])
    if labels.shape != (n,):
        raise InvalidArgumentValueError(
            "groups",
            f"must be one label per training row ({n}) or a list of index arrays; got shape {labels.shape}",
        )
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise InvalidArgumentValueError("groups", "has missing (NaN) labels")
    if labels.dtype.kind == "O" and any(
        v is None or (isinstance(v, float) and math.isnan(v)) for v in labels.tolist()
    ):
        raise InvalidArgumentValueError("groups", "has missing (None or NaN) labels")
    try:
        names, codes = np.unique(labels, return_inverse=True)
    except TypeError:
        raise InvalidArgumentValueError("groups", "mixes labels that cannot be sorted together") from None
    codes = codes.reshape(-1)
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
            return D.label_params(
                values, self.labels_, columns, fit_intercept, MN.class_labels(inf.model), "group"
            )
        return D.label_matrix(values, self.labels_, bound.labels, bound.axis, row_name="group")

    def _steps(self, method: str) -> np.ndarray:
        """theta_{-G} - theta estimated for every group, (groups, p)."""
        inf = self._influence
        inf._check_method(method)
        engine, fit_intercept, K = inf._engine, inf._engine.fit_intercept, inf.model.n_blocks
        n, p = inf.n_samples_, inf.n_params_
        inf._check_result_size((len(self._members), p), "the groups' parameter changes")
        # every group's rows in one gather (one pass on Dask), then each group's slice
        everyone = np.unique(np.concatenate(self._members))
        block = engine.gather(engine.rows(everyone))
        steps = np.empty((len(self._members), p))
        floor, H, risky = inf._leverage_floor(), None, 0
        for k, members in enumerate(self._members):
            at = np.searchsorted(everyone, members)
            X, c = block.X[at], block.s[at] / n
            rho = (c[:, None] * block.d1[at] if K > 1 else c * block.d1[at]).reshape(-1)
            B = MN.eta_gradients(X, K, fit_intercept)  # (p, K |G|), columns i K + l
            if method == "influence":  # one solve: H^{-1} (B rho)
                steps[k] = inf.solver_.solve(B @ rho)
                continue
            L = _curvature_factor(c, block.d2[at], K)  # C = L^T L: (|G|, K, K) diagonal blocks
            if B.shape[1] > p:
                # H - B C B^T directly (a solve of size p); H formed once, from the operator if need be
                if H is None:
                    H = (
                        inf.hessian_ + inf.damping * np.eye(p)
                        if inf.hessian_ is not None
                        else inf._operator.dense()
                    )
                # B C B^T = (B L^T)(B L^T)^T, block by block: no K|G| x K|G| matrix
                BL = np.einsum("pik,ilk->pil", B.reshape(p, -1, K), L).reshape(p, -1)
                reduced = H - BL @ BL.T
                scale = 1.0 / np.sqrt(np.maximum(np.diag(H), np.finfo(float).tiny))
                smallest = np.linalg.eigvalsh(reduced * scale[:, None] * scale[None, :])[0]
                if not smallest > floor:
                    steps[k], risky = np.nan, risky + 1
                    continue
                steps[k] = np.linalg.solve(reduced, B @ rho)
                continue
            HB = inf.solver_.solve(B)
            dense = _block_diagonal(L)  # small here: K|G| <= p
            LS = dense @ (B.T @ HB)
            # the eigenvalues of I - C S are those of I - L S L^T: their smallest plays 1 - h's part
            inner = LS @ dense.T
            if not np.linalg.eigvalsh(np.eye(inner.shape[0]) - 0.5 * (inner + inner.T))[0] > floor:
                steps[k], risky = np.nan, risky + 1
                continue
            steps[k] = HB @ np.linalg.solve(np.eye(B.shape[1]) - dense.T @ LS, rho)
        if risky:
            warnings.warn(
                f"{risky} group(s) leave a (numerically) singular Hessian when removed: the objective "
                "without them has no unique minimiser, so their Newton estimates are set to NaN",
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


def _curvature_factor(c: np.ndarray, d2: np.ndarray, K: int) -> np.ndarray:
    """The diagonal blocks (|G|, K, K) of L with C_G = L^T L: sqrt(c_i loss''_i), or sqrt(c_i) F_i
    with Q_i = F_i^T F_i (:mod:`fastinfluence.multinomial`) for K > 1."""
    if K == 1:
        return np.sqrt(np.maximum(c * d2, 0.0))[:, None, None]
    F = np.sqrt(d2)[:, :, None] * (np.eye(K)[None] - d2[:, None, :])
    return np.sqrt(c)[:, None, None] * F


def _block_diagonal(blocks: np.ndarray) -> np.ndarray:
    """The dense block-diagonal matrix of (k, K, K) blocks."""
    k, K, _ = blocks.shape
    dense = np.zeros((k * K, k * K))
    for i in range(k):
        dense[i * K : (i + 1) * K, i * K : (i + 1) * K] = blocks[i]
    return dense
