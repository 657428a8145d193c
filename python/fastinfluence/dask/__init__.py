"""Influence functions on row-chunked Dask data: datasets larger than one machine's memory.

Needs the dask extra (Dask, distributed, and zarr for ``to_zarr``): ``pip install ".[dask]"`` in a
source checkout, ``pip install "fastinfluence[dask]"`` from a package index. The API mirrors the
in-memory one on
a ``dask.array`` of shape (n, d) chunked by rows, or a ``dask.dataframe``
(feature columns plus a target column, named by ``y``):

>>> import fastinfluence as fi, fastinfluence.dask as fid            # doctest: +SKIP
>>> model = fid.fit(fi.LogisticRegression(l2=1e-3), X, y)             # doctest: +SKIP
>>> inf = fid.Influence(model, X, y)                                  # doctest: +SKIP
>>> inf.loss(X_test, y_test).to_zarr("scores.zarr")   # lazy (n, m)   # doctest: +SKIP
>>> inf.top_k(X_test, y_test, k=10)                   # TopK, (m, k)  # doctest: +SKIP

Everything here decomposes by rows. The objective, its gradient and Hessian
are sums over rows, so a *pass* runs the fused compiled kernel on every chunk
(in parallel, wherever Dask places the chunk) and adds the partial sums by a
tree reduction; only (p,) and (p, p) arrays travel. The kernels compute means
over a chunk's own ``n_c`` rows without the penalty; a chunk's results are
multiplied by ``n_c / n`` and the penalty ``l2 [w; 0]`` is added once, on the
client, after the reduction:

    grad R = sum_chunks (n_c / n) grad_c + l2 [w; 0],   H = sum_chunks (n_c / n) H_c + l2 diag(1,..,1,0).

What is computed where:

- the client (the Python process that calls this module) runs Newton's
  iteration (direction, line search, stopping rule), factorises H, and
  computes the test side (the m test gradients and their solves
  ``V = H^{-1} G_test``) once;
- the workers run one kernel call per chunk per pass; theta, V and the other
  small (p, .) arrays go to them as one graph key each (computed once,
  shipped once to each worker that needs it, never recomputed per chunk);
- per-row results (:meth:`Influence.loss`, :meth:`Influence.self_influence`,
  ...) are lazy dask arrays chunked like X, to be stored by the caller
  (``to_zarr``, ``da.store`` into a ``numpy.memmap``, ``dd.from_dask_array(...).to_parquet``);
  :meth:`Influence.top_k` runs the streaming top-k kernel per chunk and
  merges the candidates by a tree reduction, so only (m, k) arrays travel.

Dask does the scheduling: the default threaded scheduler on one machine
(out of core over a ``numpy.memmap`` or a folder of Parquet files), or a
``distributed`` cluster when a ``Client`` is active. Lost workers are
recovered by Dask (tasks are recomputed from the graph; see the user guide's
Dask page, docs/guide/dask.md).
Results equal the in-memory engine's to about 1e-9 relative: the same
kernels, the same Newton iteration and stopping rule, only the order of the
sums over chunks differs.
"""

from __future__ import annotations

from .._optional import require

# before the modules that import Dask: without the extra, the error says how to install it
require("dask.array", extra="dask", purpose="fastinfluence.dask")

from .. import influence as _influence  # noqa: E402
from ..topk import TopK  # noqa: E402
from ._data import from_memmap  # noqa: E402
from ._engine import DaskEngine  # noqa: E402
from ._fit import fit  # noqa: E402

__all__ = ["fit", "Influence", "TopK", "from_memmap"]


class Influence(_influence.Influence):
    """Influence of training points on parameters and test losses, over row-chunked Dask data.

    The methods and their meanings are those of :class:`fastinfluence.Influence`
    (see its documentation for the formulas and signs); per-row results are
    lazy dask arrays chunked like X, so nothing of size n is held by the
    client: compute them, or store them (``to_zarr``, ``da.store``).

    Parameters
    ----------
    model : a fitted fastinfluence model (by :func:`fit` or in memory)
    X, y, sample_weight : as for :func:`fit`, the data the model was fitted on
    solver : {"direct", "cg", "auto"}
        ``"direct"`` reduces H (p x p) in the construction pass and factorises
        it on the client; ``"cg"`` never forms H: each CG iteration is one pass
        over the data for all right-hand sides. ``"auto"``: direct up to 4096
        parameters. LiSSA samples random rows, which chunked data make costly:
        use ``"cg"``.
    damping : float >= 0
        Added to the diagonal of H (Koh & Liang, section 4.2).
    backend : {"auto", "cpp", "numpy"}
        Kernels run per chunk ("auto": the compiled core where it loads, else NumPy).
    n_jobs : int or None
        Threads of the compiled kernel inside each Dask task (None: 1).
    solver_options : dict or None
        CG options ``tol``, ``max_iter``, ``preconditioner``.

    Attributes
    ----------
    hessian_ : (p, p) Hessian of R at theta (without damping); None with ``"cg"``
    gradient_norm_ : ||grad R(theta)|| on the given data
    n_samples_, n_params_ : n and p
    solver_ : the solver (``iterations_`` and ``residual_`` of the last solve for CG)

    Construction costs one pass over the data (gradient at theta and at zero,
    and H or its diagonal); every quantity below is one more pass when computed.
    """

    _engine_class = DaskEngine
    _engine: DaskEngine

    def _repr_extra(self) -> dict:
        return {"chunks": len(self._engine.data.row_chunks)}

    @property
    def passes_(self) -> int:
        """Passes over the data made so far by the construction and the solvers (not by lazy results)."""
        return self._engine.objective.passes
