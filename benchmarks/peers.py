"""The peers: other libraries' influence computations, measured in the same run where installed.

pyDVL (``pip install "pydvl[influence]"``: torch, dask and distributed): ``DirectInfluence`` (the Hessian by
``torch.func.hessian`` over the data loader, then a direct solve) and ``CgInfluence`` (conjugate
gradient over Hessian-vector products), each on a torch model that carries fastinfluence's
fitted theta, so both sides differentiate the same objective at the same point. Neither is
pulled in by ``pip install ".[bench]"``; without them ``run.py`` prints one line saying how to
add them.

The mapping onto fastinfluence's I_up,loss (Koh & Liang, eq. 2; checked against pyDVL 0.10's
source, ``pydvl/influence/torch``):

- **Loss.** pyDVL's Hessian is the sample-size-weighted mean of each batch's Hessian of
  ``loss(model(x), y)``, so a mean-reduced loss gives ``(1/n) sum_i loss''_i xa_i xa_i^T``, ours;
  its per-sample gradients are of that loss on one sample, ``loss'_i xa_i``, ours. The data
  loader gives all n rows as one batch: ``CgInfluence``'s operator averages the batches' means
  unweighted (``ChunkAveraging``), which is the mean over rows only for equal batches.
- **Penalty.** pyDVL adds its ``regularization`` lambda to the whole diagonal, intercept
  included; fastinfluence's ``l2`` leaves the intercept unpenalised. The torch model therefore
  holds the intercept as ``b = s * beta`` (s = :data:`INTERCEPT_SCALE`): with lambda = l2 the
  penalty on beta is l2 / s^2 = 1e-11 in b's units (a relative change below 1e-9 of H's
  intercept entry), and influence values are invariant under this change of coordinates.
- **Sign and layout.** pyDVL's up-weighting influence is ``+<H^{-1} grad l(z_test), grad l(z)>``
  as an (m, n) matrix; fastinfluence's ``inf.loss`` is ``-`` that, (n, m): ours = ``-pydvl.T``.
- **Self-influence** (W3): pyDVL's ``influences(x, y)`` of a block of training points against
  themselves, whose diagonal is ``g_i^T H^{-1} g_i``, 1,000 rows at a time.

W6 (statsmodels' ``OLSInfluence(...).summary_frame()`` against fastinfluence's regression
diagnostics) plugs in the same way: a workload with its own quantity, a method here keyed by
``(quantity, "statsmodels")`` with its module in :data:`PEER_MODULES`, and a branch of
:func:`check`.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from machine import relative_difference
from methods import PhaseTimer
from workloads import L2

#: The intercept's scale in the torch model (see the module's documentation).
INTERCEPT_SCALE = 1e4
#: Relative residual of pyDVL's CG (fastinfluence's Influence uses a Cholesky solve on W1-W3).
CG_RTOL = 1e-10
#: Training rows per self-influence block.
SELF_BLOCK = 1_000

#: The modules each peer needs, and the pip command that installs them.
PEER_MODULES = {"pydvl_direct": ("torch", "pydvl"), "pydvl_cg": ("torch", "pydvl")}
INSTALL_HINT = (
    'pip install "pydvl[influence]" (torch, dask, distributed) where the benchmark runs; pyDVL 0.10 '
    "needs numpy<2, so a separate environment (benchmarks/README.md)"
)

#: Workloads the peers run on, and the workload each runs as: W3 is reduced (pyDVL's route to the
#: top k holds the whole (m, n) matrix of I_up,loss; at W3's full size that is 7.5 GiB, beside
#: the NumPy baseline's own 7.5 GiB).
PEER_WORKLOADS = {"W1": "W1", "W2": "W2", "W3": "W3R"}
#: The peers of each workload they run on: CgInfluence's self-influence would take one CG solve per
#: block of training points (a hundred block-CG solves of 1,000 right-hand sides at W3R), so on W3R
#: only DirectInfluence runs.
WORKLOAD_PEERS = {
    "W1": ("pydvl_direct", "pydvl_cg"),
    "W2": ("pydvl_direct", "pydvl_cg"),
    "W3R": ("pydvl_direct",),
}


def available_peers() -> list[str]:
    """The peers whose modules are importable (found without importing them: no torch at startup)."""
    return [
        peer
        for peer, modules in PEER_MODULES.items()
        if all(importlib.util.find_spec(module) is not None for module in modules)
    ]


def workload_peers(name: str, installed: list[str]) -> tuple:
    """The installed peers that run on workload ``name``."""
    return tuple(peer for peer in WORKLOAD_PEERS.get(name, ()) if peer in installed)


def peer_note(peers: list[str]) -> str:
    if peers:
        import pydvl
        import torch

        return (
            f"peers: pyDVL {pydvl.__version__} (torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads), "
            f"float64 on the CPU, on {', '.join(sorted(set(PEER_WORKLOADS.values())))}"
        )
    return f"peers: none installed (pyDVL's DirectInfluence and CgInfluence on W1-W3: {INSTALL_HINT})"


# --------------------------------------------------------------------------------------------
# pyDVL
# --------------------------------------------------------------------------------------------


def _torch_problem(ctx):
    """(model, loss, loader, tensors) for pyDVL: a linear logit carrying fastinfluence's theta."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class LinearLogit(torch.nn.Module):
        def __init__(self, theta):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.from_numpy(theta[:-1].copy()))
            self.beta = torch.nn.Parameter(torch.tensor([theta[-1] / INTERCEPT_SCALE], dtype=torch.float64))

        def forward(self, x):
            return x @ self.weight + INTERCEPT_SCALE * self.beta

    def loss(output, target):  # the mean log-loss: pyDVL averages batch Hessians by batch size
        return torch.nn.functional.binary_cross_entropy_with_logits(output, target)

    X, y = torch.from_numpy(ctx["X"]), torch.from_numpy(ctx["y"])
    X_test, y_test = torch.from_numpy(ctx["X_test"]), torch.from_numpy(ctx["y_test"])
    # one batch: CgInfluence's HessianOperator averages batch means unweighted (pyDVL 0.10's default
    # ChunkAveraging), so unequal batches (65,536 + 34,464 rows at W2) would change its H by 1e-2
    loader = DataLoader(TensorDataset(X, y), batch_size=X.shape[0])
    return LinearLogit(ctx["theta"]), loss, loader, (X, y, X_test, y_test)


def _pydvl_influence(ctx, timer, method):
    from pydvl.influence.torch import CgInfluence, DirectInfluence

    model, loss, loader, tensors = _torch_problem(ctx)
    with timer("fit"):
        if method == "pydvl_direct":
            inf = DirectInfluence(model, loss, regularization=L2)
        else:
            inf = CgInfluence(
                model, loss, regularization=L2, rtol=CG_RTOL, atol=0.0, solve_simultaneously=True
            )
        inf = inf.fit(loader)
    return inf, tensors


def _prepare(method):
    """Import torch and pyDVL and run one small influence computation, untimed (the worker calls
    it before the timed runs): the first torch.func transform of a process costs seconds."""

    def prepare(ctx):
        small = {key: ctx[key] for key in ("theta", "k")}
        small.update(X=ctx["X"][:200], y=ctx["y"][:200], X_test=ctx["X_test"][:5], y_test=ctx["y_test"][:5])
        inf, (X, y, X_test, y_test) = _pydvl_influence(
            small, PhaseTimer(), method
        )  # a warm-up: its timings are discarded
        inf.influences(X_test, y_test, X, y)
        inf.influences(X[:5], y[:5])

    return prepare


def pydvl_matrix(method):
    def run(ctx, timer):
        inf, (X, y, X_test, y_test) = _pydvl_influence(ctx, timer, method)
        with timer("influences"):
            values = inf.influences(X_test, y_test, X, y)  # (m, n), +g_test^T H^-1 g_i
        return {"matrix": -values.numpy().T}

    run.prepare = _prepare(method)
    return run


def pydvl_top_k_self(method):
    def run(ctx, timer):
        from methods import _top_k_of_transposed

        inf, (X, y, X_test, y_test) = _pydvl_influence(ctx, timer, method)
        with timer("influences"):
            ST = -inf.influences(X_test, y_test, X, y).numpy()  # (m, n), ours transposed
        with timer("top_k"):
            helpful_idx, helpful, harmful_idx, harmful = _top_k_of_transposed(ST, ctx["k"])
            del ST
        with timer("self_influence"):
            n = X.shape[0]
            self_influence = np.empty(n)
            for start in range(0, n, SELF_BLOCK):
                block = slice(start, start + SELF_BLOCK)
                self_influence[block] = -np.diag(inf.influences(X[block], y[block]).numpy())
        return {
            "helpful_indices": helpful_idx,
            "helpful_scores": helpful,
            "harmful_indices": harmful_idx,
            "harmful_scores": harmful,
            "self_influence": self_influence,
        }

    run.prepare = _prepare(method)
    return run


PEER_METHODS = {
    **{("matrix", peer): pydvl_matrix(peer) for peer in PEER_MODULES},
    **{("top_k_self", peer): pydvl_top_k_self(peer) for peer in PEER_MODULES},
}


def check(w, method: str, ours, base) -> tuple[bool, str]:
    """A peer's result against the workload's baseline: (passed, one-line summary).

    The limit is 1e-8 relative to the largest entry for a direct solve, as for fastinfluence, and
    1e-6 after CG (its relative residual of 1e-10 times H's condition number, a few hundred here).
    """
    limit = 1e-6 if method == "pydvl_cg" else 1e-8
    if w.quantity == "matrix":
        diff = relative_difference(ours["matrix"], base["matrix"])
        return diff <= limit, f"matrix rel diff {diff:.1e} (limit {limit:g})"
    notes, passed = [], True
    for side in ("helpful", "harmful"):
        diff = relative_difference(ours[f"{side}_scores"], base[f"{side}_scores"])
        same = np.sort(ours[f"{side}_indices"], axis=1) == np.sort(base[f"{side}_indices"], axis=1)
        passed &= diff <= limit
        notes.append(
            f"{side} score diff {diff:.0e}, index sets differ in {int((~same.all(axis=1)).sum())} rows"
        )
    diff = relative_difference(ours["self_influence"], base["self_influence"])
    passed &= diff <= limit
    notes.append(f"self-influence diff {diff:.0e} (limit {limit:g})")
    return bool(passed), "; ".join(notes)
