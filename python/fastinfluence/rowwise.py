"""The influence formulas per block of training rows, written once for every engine.

An engine (in memory: all the selected rows at once; Dask: one chunk at a time)
hands each function a :class:`RowBlock` (the rows' X, ``loss'_i``, ``loss''_i``
and weights ``s_i`` at the fitted theta) and a :class:`Context` (the small
client-side arrays: solved test gradients, the inverse factor of H, ...); the
functions call the backend's kernels and return one result row per training row.
The notation is that of :mod:`fastinfluence.influence`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import diagnostics as DG
from . import multinomial as MN
from .targets import Bound

#: Entries of the (rows, test points) block of eta changes held at once by
#: :func:`loo_newton_target` when the result is smaller (a mean over the test points).
SUB_BLOCK_ENTRIES = 2**21

#: The per-row factor r_i of a scoring product ``r_i xa_i^T M``: upweighting (``-loss'_i``,
#: I_up), removal to first order (``(s_i/n) loss'_i``), removal by one Newton step (the same
#: divided by ``1 - h_i``).
ROW_SCALES = ("upweight", "influence", "newton")


@dataclass
class RowBlock:
    """Training rows at the fitted theta: X (k, d), loss' and loss'' (k,), weights s (k,), and the
    position of the first row in the training data. ``cache`` keeps the leverage once computed."""

    X: Any  # a (k, d) ndarray or scipy.sparse matrix
    d1: np.ndarray
    d2: np.ndarray
    s: np.ndarray
    start: int = 0
    cache: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.X.shape[0]


@dataclass(frozen=True)
class Context:
    """What the formulas need besides the rows; shipped once to every worker (Dask)."""

    fit_intercept: bool
    n_samples: int
    n_jobs: int = 0
    row_scale: str = "upweight"
    M: np.ndarray | None = None  # (p, m): right side of the scoring product
    A: np.ndarray | None = None  # F with xa^T H^{-1} xa = ||F xa||^2
    leverage_floor: float = 1e-12  # rows with 1 - h_i below this get NaN Newton estimates
    target: Bound | None = None  # the bound target of a one-step (Newton) estimate
    w: np.ndarray | None = None  # the weights of theta (pert_loss)
    diagnostics: Any = None  # fastinfluence.diagnostics.Setup (regression diagnostics)
    k: int = 0  # top-k


def n_classes(block: RowBlock) -> int:
    """K of a multinomial model's rows (their loss' are K-vectors, the residuals), else 1."""
    return block.d1.shape[1] if block.d1.ndim == 2 else 1


def quadratic_forms(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """q_i = xa_i^T H^{-1} xa_i = ||F xa_i||^2 (k,); multinomial: the K x K blocks
    S_i = (I kron xa_i)^T H^{-1} (I kron xa_i) (k, K, K) (kept in ``block.cache``)."""
    K = n_classes(block)
    if K == 1:
        return kernels.row_quadratic_forms(block.X, ctx.fit_intercept, ctx.A, ctx.n_jobs)
    if "S" not in block.cache:
        block.cache["S"] = kernels.multinomial_row_quadratic_forms(
            block.X, ctx.fit_intercept, ctx.A, K, ctx.n_jobs
        )
    return block.cache["S"]


def leverage(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """h_i = (s_i/n) loss''_i xa_i^T H^{-1} xa_i; multinomial: the largest eigenvalue of the
    leverage block (:mod:`fastinfluence.multinomial`). Kept in ``block.cache``."""
    if "leverage" not in block.cache:
        c = block.s / ctx.n_samples
        if n_classes(block) == 1:
            block.cache["leverage"] = c * block.d2 * quadratic_forms(kernels, block, ctx)
        else:
            block.cache["leverage"] = MN.largest_leverage(c, block.d2, quadratic_forms(kernels, block, ctx))
    return block.cache["leverage"]


def leverage_blocks(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """The multinomial leverage blocks L_i (k, K, K) (:func:`fastinfluence.multinomial.leverage_blocks`)."""
    return MN.leverage_blocks(block.s / ctx.n_samples, block.d2, quadratic_forms(kernels, block, ctx))


def risky(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """Rows whose ``1 - h_i`` is within the rounding error of h_i (NaN-aware: a NaN h_i is risky)."""
    return ~(1.0 - leverage(kernels, block, ctx) > ctx.leverage_floor)


def risky_count(kernels, block: RowBlock, ctx: Context) -> int:
    return int(np.count_nonzero(risky(kernels, block, ctx)))


def row_scale(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """r_i of :data:`ROW_SCALES` named by ``ctx.row_scale``: (k,), or (k, K) K-vectors (multinomial)."""
    if ctx.row_scale == "upweight":  # I_up,params(z_i) = -H^{-1} g_i = -loss'_i H^{-1} xa_i
        return -block.d1
    # theta_{-i} - theta ~ (s_i/n) H^{-1} g_i
    c = block.s / ctx.n_samples
    multi = n_classes(block) > 1
    scale = c[:, None] * block.d1 if multi else c * block.d1
    if ctx.row_scale == "newton":  # Sherman-Morrison (Woodbury for K classes)
        bad = risky(kernels, block, ctx)
        if multi:
            ok = ~bad
            solved = np.full_like(scale, np.nan)
            S = quadratic_forms(kernels, block, ctx)
            solved[ok] = MN.newton_residuals(c[ok], block.d2[ok], S[ok], scale[ok])
            return solved
        scale = np.where(bad, np.nan, scale / np.where(bad, 1.0, 1.0 - leverage(kernels, block, ctx)))
    return scale


def _products(kernels, X, fit_intercept, scale, M, out, n_jobs):
    """r_i xa_i^T M (scalar r_i), or sum_k r_ik xa_i^T M_k (K-vectors: multinomial)."""
    if scale.ndim == 2:
        return kernels.multinomial_scaled_row_products(X, fit_intercept, scale, M, out, n_jobs)
    return kernels.scaled_row_products(X, fit_intercept, scale, M, out, n_jobs)


def scaled_products(kernels, block: RowBlock, ctx: Context, out=None) -> np.ndarray:
    """r_i xa_i^T M, (k, m): params and loo_params (M = H^{-1}), loss and loo (M = H^{-1} G_test)."""
    scale = row_scale(kernels, block, ctx)
    return _products(kernels, block.X, ctx.fit_intercept, scale, ctx.M, out, ctx.n_jobs)


def self_influence(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """I_up,loss(z_i, z_i) = -g_i^T H^{-1} g_i, (k,): -loss'_i^2 xa_i^T H^{-1} xa_i, or
    -r_i^T S_i r_i (multinomial)."""
    if n_classes(block) > 1:
        return -np.einsum("ik,ikl,il->i", block.d1, quadratic_forms(kernels, block, ctx), block.d1)
    return -(block.d1 * block.d1) * quadratic_forms(kernels, block, ctx)


def pert_loss(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """I_pert,loss = -(loss''_i (xa_i . V_j) w + loss'_i V_j[:d]), (k, m, d), V = H^{-1} G_test.

    Multinomial (W (K, d) in ``ctx.w``): ``d g_i / d x_il = r_i kron e_l + (Q_i W[:, l]) kron xa_i``,
    so ``I_pert[i, j, l] = -(sum_k r_ik V_j[k, l] + sum_k (Q_i W)_kl (xa_i . V_j[k]))``."""
    K = n_classes(block)
    if K == 1:
        return kernels.perturbation_loss(
            block.X, ctx.fit_intercept, block.d1, block.d2, ctx.M, ctx.w, ctx.n_jobs
        )
    assert ctx.M is not None
    assert ctx.w is not None
    W, m = ctx.w, ctx.M.shape[1]
    d = W.shape[1]
    blocks = ctx.M.reshape(K, -1, m)  # V_j[k] = blocks[k, :, j]
    k_rows = len(block)
    # Z[i, j, k] = xa_i . V_j[k]: the products with one-hot residuals
    Z = np.empty((k_rows, m, K))
    for k in range(K):
        unit = np.zeros((k_rows, K))
        unit[:, k] = 1.0
        Z[:, :, k] = _products(kernels, block.X, ctx.fit_intercept, unit, ctx.M, None, ctx.n_jobs)
    P = block.d2
    QW = P[:, :, None] * W[None] - P[:, :, None] * (P @ W)[:, None, :]  # (k, K, d)
    first = np.einsum("ik,klj->ijl", block.d1, blocks[:, :d, :])
    return -(first + np.einsum("ijk,ikl->ijl", Z, QW))


def loo_newton_target(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """f(theta + delta_i) - f(theta) for the target ``ctx.target``, (k, c), with the Newton step
    delta_i = H^{-1} (r_i xa_i), or H^{-1} (r_i kron xa_i) for K-vectors r_i (multinomial): with
    U = H^{-1} [grad eta_test] (``ctx.M``), the test points' eta changes are r_i xa_i . U_j. Test
    losses use the fused kernel; the other targets hold at most SUB_BLOCK_ENTRIES eta changes at once
    (a mean over the test points, or K per test point, would otherwise hold more than the result)."""
    target = ctx.target
    assert target is not None
    assert ctx.M is not None
    scale = row_scale(kernels, block, ctx)
    if target.kind == "loss":
        return _loss_change(kernels, target, block.X, ctx.fit_intercept, scale, ctx.M, ctx.n_jobs)
    k, m = len(block), ctx.M.shape[1]
    out = np.empty((k, target.n_columns))
    step = max(1, SUB_BLOCK_ENTRIES // max(m, 1))
    for a in range(0, k, max(step, 1)):
        b = min(k, a + step)
        X = block.X[a:b]
        if target.kind == "mean_loss":
            change = _loss_change(kernels, target, X, ctx.fit_intercept, scale[a:b], ctx.M, ctx.n_jobs)
            out[a:b] = change.mean(axis=1, keepdims=True)
        else:
            delta_eta = _products(kernels, X, ctx.fit_intercept, scale[a:b], ctx.M, None, ctx.n_jobs)
            out[a:b] = target.change_from_eta(kernels, delta_eta)
    return out


def _loss_change(kernels, target: Bound, X, fit_intercept, scale, U, n_jobs):
    """loss(eta_test_j + delta_ij) - loss(eta_test_j), (k, m), by the fused kernel of the loss."""
    if scale.ndim == 2:
        return kernels.multinomial_loo_loss_change(
            X, fit_intercept, scale, U, target.y, target.eta, None, n_jobs
        )
    return kernels.loo_loss_change(
        target.loss, X, fit_intercept, scale, U, target.y, target.eta, None, n_jobs
    )


def pearson_chi2(kernels, block: RowBlock, ctx: Context) -> float:
    """sum_i s_i loss'_i^2 / loss''_i over the block: Pearson's chi^2 (the RSS for the squared loss)."""
    return float(np.sum(DG.pearson_terms(block.d1, block.d2, block.s)))


def diagnostics(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """The regression diagnostics of :data:`fastinfluence.diagnostics.COLUMNS`, (k, columns):
    q_i = xa_i^T H^{-1} xa_i and the Newton row scale r_i here, the formulas in
    :func:`fastinfluence.diagnostics.row_statistics`. ``ctx.row_scale`` is ``"newton"``."""
    setup = ctx.diagnostics
    assert setup is not None
    assert ctx.row_scale == "newton"
    q = quadratic_forms(kernels, block, ctx)
    r = row_scale(kernels, block, ctx)  # theta_(i) - theta = r_i H^{-1} xa_i
    # [eta_i, b_i] = xa_i^T [theta, H^{-1} P theta]
    ones = np.ones(len(block))
    products = kernels.scaled_row_products(
        block.X, ctx.fit_intercept, ones, setup.theta_and_u, None, ctx.n_jobs
    )
    b = q2 = None
    if setup.external and setup.l2 > 0:
        b = products[:, 1]
        q2 = kernels.row_quadratic_forms(block.X, ctx.fit_intercept, setup.penalised_inverse, ctx.n_jobs)
    return DG.row_statistics(setup, block.d1, block.d2, block.s, q, r, products[:, 0], b, q2)


def top_k_candidates(kernels, block: RowBlock, ctx: Context) -> np.ndarray:
    """The block's k most helpful and most harmful rows per test point, (m, 4, k) packed as (rows,
    scores, rows, scores), rows numbered in the whole training data; a block with fewer than k
    rows pads with row -1 and score +inf (helpful) or -inf (harmful), which sort last."""
    assert ctx.M is not None  # scoring contexts carry M
    m, k = ctx.M.shape[1], ctx.k
    out = np.empty((m, 4, k))
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = -1.0, np.inf, -1.0, -np.inf
    if len(block) == 0:
        return out
    top_k_scores = kernels.multinomial_top_k_scores if n_classes(block) > 1 else kernels.top_k_scores
    helpful_rows, helpful, harmful_rows, harmful = top_k_scores(
        block.X, ctx.fit_intercept, -block.d1, ctx.M, k, ctx.n_jobs
    )
    found = np.asarray(helpful).shape[1]
    out[:, 0, :found] = np.asarray(helpful_rows) + block.start
    out[:, 1, :found] = helpful
    out[:, 2, :found] = np.asarray(harmful_rows) + block.start
    out[:, 3, :found] = harmful
    return out


def replace(ctx: Context, **fields) -> Context:
    """``ctx`` with some fields replaced."""
    return dataclasses.replace(ctx, **fields)
