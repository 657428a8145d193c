"""Fitting on row-chunked data: the in-memory Newton iteration (:mod:`fastinfluence.fitting`) over
passes on the chunks."""

from __future__ import annotations

import dask.array as da
import numpy as np

from .. import _dataframes as D
from .. import _validation as V
from ..fitting import Evaluation, minimise
from ..losses import Loss, loss_infimum
from ..minimiser import SEPARABLE_MESSAGE, intercept_only_reason, separated_at
from ..models import BinaryClassifierBase, LinearModelBase, MultinomialLogisticRegression
from ._chunks import (
    DaskHessianOperator,
    Objective,
    Request,
    Spec,
    chunk_inputs,
    compute,
    label_encoder,
    location,
    map_rows,
    shared,
)
from ._data import Data, as_data


def _poisson_summary(data: Data) -> tuple[float, float]:
    """(lower bound of R: mean of s_i (y_i - y_i log y_i), the largest count), in one pass over y."""
    y = data.y[:, 0].astype(np.float64)
    infimum = y.map_blocks(lambda b: loss_infimum(Loss("poisson"), b), dtype=np.float64)
    if data.s is not None:
        infimum = infimum * data.s[:, 0]
    total, largest = compute(infimum.sum(), y.max())
    return float(total) / data.n, float(largest)


class _FitObjective:
    """The :class:`fastinfluence.fitting.Objective` of the chunked data: one pass per evaluation,
    one pass for the Hessian diagonal and one per CG iteration (H V over every chunk) in Newton-CG."""

    def __init__(self, objective: Objective, lower_bound: float):
        self.objective, self.n_params, self.lower_bound = objective, objective.n_params, lower_bound

    def evaluate(self, theta, hessian):
        (ev,) = self.objective.evaluate(Request(theta, True, hessian, False))
        assert ev.gradient is not None  # requested
        return Evaluation(ev.value, ev.gradient, ev.hessian)

    def hessian_operator(self, theta):
        return DaskHessianOperator(self.objective, theta)


def _chunk_minimiser_check(X, y, s, context, block_info=None):
    """Whether the fitted theta separates one chunk's rows, as a (1, 1) object array: the message
    when it does, None when it does not, "" for an empty chunk (vacuously separated). theta
    separates the whole data exactly when it separates every chunk (the in-memory fit also
    solves a linear program for quasi-separation, which does not split over chunks)."""
    spec, result = context["spec"], context["result"]
    start, stop = location(block_info)
    out = np.empty((1, 1), dtype=object)
    if stop == start:
        out[0, 0] = ""
        return out
    X, y, s = chunk_inputs(spec, X, y, s, start, stop)
    separated = separated_at(spec.loss, X, y, s, np.asarray(result["theta"]), spec.fit_intercept)
    out[0, 0] = SEPARABLE_MESSAGE if separated else None
    return out


def _chunk_class_totals(X, y, s, context, block_info=None):
    """The total weight of each class in one chunk, (1, K)."""
    spec = context["spec"]
    start, stop = location(block_info)
    if stop == start:
        return np.zeros((1, spec.n_classes))
    _, codes, s = chunk_inputs(spec, X, y, s, start, stop)
    return np.bincount(codes.astype(np.int64), weights=s, minlength=spec.n_classes)[None].astype(np.float64)


def fit(model, X, y, sample_weight=None, *, n_jobs=1):
    """Fit an unfitted fastinfluence model on row-chunked Dask data, to the same optimum as ``model.fit``.

    Parameters
    ----------
    model : LinearRegression, LogisticRegression, SmoothHingeClassifier or PoissonRegression
        Its options (``l2``, ``fit_intercept``, ``tol``, ``max_iter``, ``solver``, ``backend``) are
        used as in memory; ``solver="auto"`` is dense Newton up to 4096 parameters, Newton-CG above.
    X : dask array (n, d) chunked by rows, or dask DataFrame
        A DataFrame's columns other than the target (and weight) column are the features, in order.
    y : dask array or Series (n,), NumPy array, or the target column's name when X is a DataFrame
    sample_weight : like y, or None for all ones
    n_jobs : int
        Threads of the compiled kernel inside each Dask task (default 1: Dask runs the tasks in parallel).

    Returns
    -------
    model
        Fitted: ``theta_``, ``coef_``, ``intercept_``, ``n_iter_``, ... as after ``model.fit``
        (``feature_names_in_`` from a DataFrame's string column labels), and ``dask_passes_``,
        the number of passes over the data the fit made.

    Each Newton iteration is one pass over the data (the trial point's objective, gradient and
    Hessian, or Hessian diagonal for Newton-CG, from one fused kernel call per chunk, added by a
    tree reduction); a backtracking step costs one more pass. Newton-CG adds one pass per CG
    iteration (a Hessian-vector product over every chunk). Classifiers learn their classes in one
    pass over y first.
    """
    if not isinstance(model, LinearModelBase):
        raise TypeError(f"model must be an unfitted fastinfluence model, got {type(model).__name__}")
    model.check_params()
    multinomial = isinstance(model, MultinomialLogisticRegression)
    classifier = multinomial or isinstance(model, BinaryClassifierBase)
    data = as_data(X, y, sample_weight, distinct_labels=classifier)
    if classifier:
        labels = data.labels if data.labels is not None else da.unique(data.y[:, 0]).compute()
        model.encode_targets(labels, labels.shape[0], "y", fitting=True)  # sets classes_, checks the labels
    spec = Spec(
        model.loss,
        bool(model.fit_intercept),
        data.n,
        label_encoder(model),
        model.backend,
        V.check_n_jobs(n_jobs),
        model.n_blocks,
    )
    objective = Objective(data, spec, float(model.l2))
    p = objective.n_params
    lower_bound, largest_count = _poisson_summary(data) if model.loss.name == "poisson" else (0.0, None)
    result = minimise(
        _FitObjective(objective, lower_bound),
        np.zeros(p),
        tol=float(model.tol),
        max_iter=int(model.max_iter),
        method=model.fit_method(p),
    )
    if not objective.total_weight > 0:
        raise ValueError("sample_weight is zero everywhere")
    if isinstance(
        model, MultinomialLogisticRegression
    ):  # a class of zero total weight: the model's own check, on per-chunk totals
        parts = map_rows(data, _chunk_class_totals, shared({"spec": spec}), (spec.n_classes,), per_chunk=True)
        (totals,) = compute(parts.sum(axis=0))
        reason = model.empty_class_reason(totals)
        if reason is not None:
            result = dict(result, converged=False, message=reason)
    elif float(model.l2) > 0 and model.fit_intercept and model.loss.name != "squared":
        # only the intercept is unpenalised: whether R has a minimiser is a look at the labels
        distinct = np.unique(labels) if classifier else np.array([largest_count])
        reason = intercept_only_reason(model.loss, model.encode_targets(distinct, distinct.size, "y"))
        if reason is not None:
            result = dict(result, converged=False, message=reason)
    if isinstance(model, BinaryClassifierBase) and not float(model.l2) > 0:
        # l2 = 0 and every (weighted) point classified correctly: R has no minimiser. The data
        # are separable exactly when every chunk is, so the model's own check runs per chunk.
        context = shared({"spec": spec, "result": result})
        checks = map_rows(data, _chunk_minimiser_check, context, (1,), per_chunk=True, dtype=object)
        (messages,) = compute(checks)
        messages = messages[:, 0]
        if all(message is not None for message in messages):
            result = dict(result, converged=False, message=next(m for m in messages if m))
    model.set_fit_result(result, data.d)
    names = D.feature_names(data.columns)
    if names is not None:  # as the in-memory fit on a frame does
        model.feature_names_in_ = names
    elif hasattr(model, "feature_names_in_"):
        del model.feature_names_in_
    model.dask_passes_ = objective.passes
    return model
