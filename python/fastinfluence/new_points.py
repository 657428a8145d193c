"""The influence of points that are not in the training set: "what would adding this row do".

Koh & Liang define influence through the *response function*
``theta(eps) = argmin R(theta) + eps * loss(z, theta)``, for any point z; its derivative at
eps = 0 is ``I_up,params(z) = -H^{-1} g_z`` with ``g_z`` the gradient of the (unweighted) loss
of z at the fitted theta, and for a target f, ``I_up,f(z) = -grad f^T H^{-1} g_z``. These are
the formulas of the training rows (:mod:`fastinfluence.rowwise`), applied to candidate rows;
appending z to the training data with weight 0 would not do: it changes n, and so scales every
value by (n + 1)/n (and with l2 > 0 moves the optimum).

Adding z with sample weight w (n fixed, as removal keeps it: ``R + (w/n) loss(z)``) is removing
it with weight -w, so the leave-one-out estimates carry over: to first order theta moves by
``-(w/n) H^{-1} g_z``; one exact Newton step (Sherman-Morrison with the opposite sign, a K x K
Woodbury solve for the multinomial model) divides that by ``1 + (w/n) loss''_z xa_z^T H^{-1}
xa_z``. :func:`fastinfluence.response_function` refits exactly, to check either.
"""

from __future__ import annotations

import numpy as np

from . import _dataframes as D
from . import _validation as V
from . import multinomial as MN
from . import rowwise
from . import targets as T
from .topk import TopK, unpack

__all__ = ["NewPoints"]


class NewPoints:
    """Candidate points (``X_new``, ``y_new``) scored against a fitted :class:`fastinfluence.Influence`.

    Made by :meth:`fastinfluence.Influence.new_points`. Results have one row per candidate; when
    the training X was a frame they are labelled by the rows of ``X_new`` (index ``new_row``:
    its pandas index, or positions) and their columns as :meth:`Influence.on` labels them.
    """

    def __init__(self, influence, X_new, y_new):
        self._influence = inf = influence
        model, kernels, n_jobs = inf.model, inf._engine.kernels, inf._engine.n_jobs
        X_new, y_new = inf._engine.test_inputs(X_new, y_new)
        X_new, self._rows, _ = model.validate_features(X_new, "X_new")
        y_new = model.encode_targets(y_new, X_new.shape[0], "y_new")
        eta, _, d1, d2 = kernels.row_derivatives(model.problem(X_new, y_new, None), inf._theta, n_jobs)
        T.check_finite_gradients(eta, d1, model.loss.name, argument="X_new", what="loss")
        # s = -1: each candidate is "removed with weight -1", i.e. added with weight 1 (see above)
        self._block = rowwise.RowBlock(X_new, d1, d2, -np.ones(X_new.shape[0]))
        self.n_points_ = X_new.shape[0]

    def _label(self, values, bound=None):
        inf = self._influence
        if inf._engine.train_rows is None:  # labelled results for frames, as Influence gives them
            return values
        rows = range(self.n_points_) if self._rows is None else self._rows
        if bound is None:
            return D.label_vector(values, rows, "self_influence", row_name="new_row")
        return D.label_matrix(values, rows, bound.labels, bound.axis, row_name="new_row")

    def params(self):
        """I_up,params(z) = -H^{-1} g_z for each candidate, (c, p): d theta / d eps."""
        inf = self._influence
        inf._check_result_size((self.n_points_, inf.n_params_), "the new points' parameter influence")
        ctx = inf._context()
        scale = rowwise.row_scale(inf._engine.kernels, self._block, ctx)
        return inf.solver_.solve(MN.row_gradients(self._block.X, scale, inf._engine.fit_intercept)).T

    def on(self, target):
        """I_up,f(z) = -grad f^T H^{-1} g_z for each candidate, (c, columns): negative means adding z
        (upweighting it from 0) lowers f. One solve for the target, one product per row block."""
        inf = self._influence
        bound = inf._bind(target)
        inf._check_result_size((self.n_points_, bound.n_columns), "the new points' influence matrix")
        ctx = inf._context(M=inf._solved(bound))
        return self._label(rowwise.scaled_products(inf._engine.kernels, self._block, ctx), bound)

    def loss(self, X_test, y_test):
        """I_up,loss(z, z_test_j), (c, m): ``on(TestLoss(X_test, y_test))``."""
        return self.on(T.TestLoss(X_test, y_test))

    def self_influence(self):
        """I_up,loss(z, z) = -g_z^T H^{-1} g_z <= 0 for each candidate, (c,)."""
        inf = self._influence
        ctx = inf._context(A=inf._quadratic_factor())
        return self._label(rowwise.self_influence(inf._engine.kernels, self._block, ctx))

    def top_k_on(self, target, k=10) -> TopK:
        """The k candidates whose addition lowers (``helpful_*``) and raises (``harmful_*``) the target
        most, per column, streaming over the candidates (arrays; row numbers of ``X_new``)."""
        inf = self._influence
        k = min(V.check_positive_int(k, "k", maximum=None), self.n_points_)
        ctx = inf._context(M=inf._solved(inf._bind(target)), k=k)
        return unpack(rowwise.top_k_candidates(inf._engine.kernels, self._block, ctx))

    def add_on(self, target, method="influence", weight=1.0):
        """Estimated change of f when each candidate is added, alone, with sample weight ``weight``
        (n fixed: ``R + (weight/n) loss(z)``), (c, columns): ``"influence"`` to first order,
        ``"newton"`` by one exact Newton step (exact for the squared loss)."""
        inf = self._influence
        inf._check_method(method)
        w = float(weight)
        if not (np.isfinite(w) and w > 0):
            raise ValueError(f"weight must be a finite number > 0, got {weight!r}")
        block = rowwise.RowBlock(self._block.X, self._block.d1, self._block.d2, -w * np.ones(self.n_points_))
        bound = inf._bind(target)
        kernels = inf._engine.kernels
        fields = {}
        if method == "newton":
            fields = dict(A=inf._quadratic_factor(), leverage_floor=inf._leverage_floor())
        if method == "influence" or bound.kind == "linear":
            ctx = inf._context(row_scale=method, M=inf._solved(bound), **fields)
            return self._label(rowwise.scaled_products(kernels, block, ctx), bound)
        U = inf.solver_.solve(MN.eta_gradients(bound.X, inf.model.n_blocks, inf._engine.fit_intercept))
        ctx = inf._context(row_scale=method, M=np.asfortranarray(U), target=bound, **fields)
        return self._label(rowwise.loo_newton_target(kernels, block, ctx), bound)
