"""Influence for fitted scikit-learn estimators: translate them into fastinfluence models.

:func:`from_sklearn` reads a fitted estimator's coefficients and settings and
returns the fastinfluence model that minimises the *same* objective, so that
:class:`~fastinfluence.Influence` can differentiate it. A fitted ``Pipeline`` is
explained from its raw rows by :func:`influence_of_pipeline`::

    pipe.fit(X_train, y_train)                        # e.g. ColumnTransformer + LogisticRegression
    inf = fi.sklearn.influence_of_pipeline(pipe, X_train, y_train)
    scores = inf.loss(X_test, y_test)                 # labelled by X_train's and X_test's index

It translates the final estimator (:func:`from_sklearn`), puts training and test rows
through the pipeline's other steps, held fixed, and labels the results by the raw
rows' index and the feature names out. By hand, in the space
:func:`~fastinfluence.sklearn.transform` returns::

    model = fi.from_sklearn(pipe, X, y)
    inf = fi.Influence(model, fi.sklearn.transform(pipe, X), y)
    scores = inf.loss(fi.sklearn.transform(pipe, X_test), y_test)

With sample or class weights, give Influence ``sample_weight=model.sample_weight_``
(the weights of the translated objective). Every influence is with respect to
the transformed features; in particular ``Influence.pert_loss`` is the gradient
in the space :func:`~fastinfluence.sklearn.transform` returns, not in the raw inputs.

scikit-learn is an optional dependency: it is imported only when these
functions are called (``pip install ".[sklearn]"`` in a checkout, ``"fastinfluence[sklearn]"``
from an index).

The objective
-------------
fastinfluence minimises, over ``theta = (w, b)`` (``b`` never penalised),

    R(theta) = (1/n) sum_i s_i loss(y_i, eta_i) + (l2/2) ||w||^2,   eta_i = x_i . w + b,

with ``n`` the number of rows (not the sum of weights) and ``s_i`` the sample
weights times the class weights, where the estimator has them. Each estimator
minimises a positive multiple of R plus a constant, so the minimisers agree.
With ``S = sum_i s_i``:

=======================================  ==================  ===================
estimator                                loss                ``l2``
=======================================  ==================  ===================
``LogisticRegression`` (l2 penalty)      logistic            ``1 / (C n)``
``LogisticRegression`` (K > 2 classes)   multinomial         ``1 / (C n)``
``LogisticRegression`` (no penalty)      logistic            ``0``
``LinearRegression``                     squared             ``0``
``Ridge``                                squared             ``alpha / n``
``PoissonRegressor``                     poisson             ``alpha S / n``
``SGDClassifier(loss="log_loss")``       logistic            ``alpha`` (l2), 0
``SGDRegressor(loss="squared_error")``   squared             ``alpha`` (l2), 0
``SGDClassifier(loss="hinge")``          smooth hinge (*)    ``alpha`` (l2), 0
``LinearSVC``                            smooth hinge (*)    ``1 / (C n)``
=======================================  ==================  ===================

(*) an approximation, see below. The algebra, estimator by estimator:

- ``LogisticRegression`` (every solver) and ``LinearSVC`` minimise
  ``F = C sum_i s_i loss_i + (1/2)||w||^2``. Then
  ``F / (C n) = (1/n) sum_i s_i loss_i + (1/2) (1/(C n)) ||w||^2``: ``l2 = 1/(C n)``.
  (lbfgs and the Newton solvers minimise ``F / (C S)``, sag ``F / (C n)``: the
  same minimiser.) No penalty (``C=np.inf``, or ``penalty=None`` in older
  scikit-learn) gives ``l2 = 0``.
- ``Ridge`` minimises ``F = sum_i s_i (y_i - eta_i)^2 + alpha ||w||^2``, so
  ``F / (2n) = (1/n) sum_i s_i (1/2)(y_i - eta_i)^2 + (1/2)(alpha/n)||w||^2``:
  ``l2 = alpha / n``; ``LinearRegression`` is ``alpha = 0``.
- ``PoissonRegressor`` minimises ``F = (1/(2S)) sum_i s_i dev_i + (alpha/2)||w||^2``
  with ``dev_i / 2 = y_i log(y_i/mu_i) - y_i + mu_i = (exp(eta_i) - y_i eta_i) + c(y_i)``
  (``mu = exp(eta)``; ``c`` does not depend on theta). So
  ``(S/n) F = (1/n) sum_i s_i loss_i + (1/2)(alpha S/n)||w||^2 + const``:
  ``l2 = alpha S / n`` (``= alpha`` without sample weights).
- ``SGDClassifier``/``SGDRegressor`` minimise ``F = (1/n) sum_i s_i L_i + alpha (1/2)||w||^2``
  (penalty ``"l2"``), and their ``log_loss`` ``log(1 + exp(-y' eta))`` with
  ``y'`` in {-1, +1} is the logistic loss, their ``squared_error`` is
  ``(1/2)(y - eta)^2``: ``l2 = alpha``.

Leaving a row out. Dropping row ``i`` from a *sum* convention (``C`` or
``alpha`` times a sum: LogisticRegression, LinearSVC, Ridge, LinearRegression)
with ``C``/``alpha`` unchanged is exactly fastinfluence's ``s_i = 0`` at fixed
``n`` (the refit divides by the same ``C n``). For a *mean* convention the
strength must be rescaled: PoissonRegressor refitted without row ``i`` with
``alpha * S / (S - s_i)``, SGD with ``alpha * n / (n - 1)``.

Polishing. scikit-learn stops at loose tolerances, but influence functions are
derivatives at the optimum. :func:`from_sklearn` therefore measures
``||grad R||`` at the estimator's coefficients and runs Newton's method from
there (the model's own fit, :func:`fastinfluence.fitting.minimise`) to its tolerance (see
:mod:`fastinfluence.fitting`). When the estimator was not at the optimum in
the sense :class:`~fastinfluence.Influence` checks (Newton decrement above
``1e-6 * sqrt(R(0))``) a :class:`~fastinfluence.PolishingWarning` says how
far it was and how far the coefficients moved. SGD never converges that
tightly, so expect the warning there.

Approximations and choices.

- The hinge losses (``LinearSVC``; ``SGDClassifier`` with ``"hinge"`` or
  ``"squared_hinge"``) have no second derivative, so they are replaced by the
  smooth hinge ``t log(1 + exp((1 - y eta)/t))`` with temperature ``t = 0.1``
  by default (Koh & Liang 2017, section 4.3, compare 0.1 and 0.001): it is within
  ``t log 2`` of the hinge everywhere, and its curvature ``loss''`` spreads
  over a band of width about ``t`` around the margin, so the Hessian stays
  well conditioned. The coefficients are re-optimised for the smooth hinge and
  an :class:`~fastinfluence.ApproximationWarning` says how far they moved. The
  squared hinge is a different loss, not a limit of the smooth hinge: expect a
  larger move.
- liblinear (``LogisticRegression(solver="liblinear")``, ``LinearSVC``) fits
  the intercept as the weight ``v`` of a constant feature ``intercept_scaling``
  and penalises it (``b = intercept_scaling * v``, penalty ``v^2 / 2``).
  fastinfluence's objective never penalises the intercept; the returned model
  is the optimum of R without that penalty (the polishing warning says so).
- ``class_weight``: ``None``, ``"balanced"`` and dicts are supported, computed
  by scikit-learn's own ``compute_class_weight`` exactly as the estimator does
  and multiplied into the sample weights (``"balanced"`` is
  ``n_samples / (n_classes * bincount(y))``; for LogisticRegression and
  LinearSVC the counts are weighted by ``sample_weight`` where scikit-learn's
  ``compute_class_weight`` accepts it, as those estimators then do).
- Multinomial: with more than two classes, LogisticRegression (every solver but liblinear)
  minimises ``F = C sum_i s_i loss_i + (1/2) sum_k ||w_k||^2`` with the softmax loss, so
  ``l2 = 1/(C n)`` as in the binary case; its coefficients are taken class by class and put in
  the sum-to-zero gauge (:mod:`fastinfluence.multinomial`; the probabilities do not change).
- One-vs-rest: a ``OneVsRestClassifier`` is a set of independent binary models;
  :func:`one_vs_rest_models` gives one fastinfluence model per class.
- Class labels may be numbers, booleans or names (strings), as the models take them.
- Not supported (a ``ValueError``/``TypeError`` names what is): l1 and
  elastic-net penalties, multi-output models, ``positive=True``, and other losses
  (``modified_huber``, ``huber``, ...).
"""

from __future__ import annotations

import copy
import inspect
import warnings
from dataclasses import dataclass

import numpy as np

from . import _dataframes as D
from . import _validation as V
from ._optional import require
from .exceptions import ApproximationWarning, NotFittedError, PolishingWarning
from .fitting import minimise, relative_decrement
from .influence import OPTIMUM_TOLERANCE
from .models import (
    LinearModelBase,
    LinearRegression,
    LogisticRegression,
    MultinomialLogisticRegression,
    PoissonRegression,
    SmoothHingeClassifier,
)
from .pipeline import PipelineInfluence

__all__ = [
    "from_sklearn",
    "influence_of_pipeline",
    "one_vs_rest_models",
    "transform",
    "FixedPreprocessing",
    "DEFAULT_TEMPERATURE",
    "SUPPORTED_ESTIMATORS",
]

#: Smooth-hinge temperature that stands in for the hinge losses.
DEFAULT_TEMPERATURE = 0.1

SUPPORTED_ESTIMATORS = (
    "LogisticRegression (binary, or multinomial with more than two classes; l2 penalty or none; any "
    "solver, liblinear for two classes only), LinearRegression, Ridge, "
    "PoissonRegressor, SGDClassifier (binary; loss 'log_loss', or 'hinge'/'squared_hinge' approximated by "
    "the smooth hinge; penalty 'l2' or None), SGDRegressor (loss 'squared_error'; penalty 'l2' or None), "
    "LinearSVC (binary; penalty 'l2'; approximated by the smooth hinge), and a Pipeline whose final step "
    "is one of these"
)


def _import_sklearn():
    require("sklearn", extra="sklearn", purpose="fastinfluence.sklearn")


def _unsupported(estimator, why: str, exc=ValueError):
    return exc(f"{why}. from_sklearn supports {SUPPORTED_ESTIMATORS}; got {estimator!r}")


# -- pipelines ---------------------------------------------------------------------------------
def _final_step(estimator):
    """The estimator at the end of (possibly nested) pipelines."""
    from sklearn.pipeline import Pipeline

    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def transform(estimator, X) -> np.ndarray:
    """The features the final step of ``estimator`` sees: X through every preceding pipeline step.

    For a ``Pipeline`` this is ``pipeline[:-1].transform(X)`` (recursing into a
    nested final pipeline); for a bare estimator it is X itself, so user code
    can call it either way. Apply it to training *and* test data before
    :class:`~fastinfluence.Influence`: the model :func:`from_sklearn` returns
    lives in this transformed space, and so do its influences. In particular
    ``Influence.pert_loss`` is the gradient with respect to the *transformed*
    features of training row i (to move it to the raw inputs, multiply by the
    Jacobian of the transformers: for a ``StandardScaler``, divide column k by
    ``scale_[k]``).

    Parameters
    ----------
    estimator : fitted scikit-learn estimator or Pipeline
    X : array-like of shape (n, d_raw), whatever the pipeline accepts

    Returns
    -------
    Xt : dense ndarray of shape (n, d)
        Sparse transformer output is made dense (fastinfluence's kernels take
        dense arrays); pandas output, and pandas/polars/pyarrow input to a bare
        estimator, becomes a NumPy array (numeric columns only).
    """
    _import_sklearn()
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        if len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        return transform(estimator.steps[-1][1], X)
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.asarray(D.to_numpy_2d(X, "X")[0])


# -- reading the estimator ---------------------------------------------------------------------
@dataclass
class _Translation:
    """What an estimator becomes: an unfitted model with its l2, and how the data are weighted."""

    model: LinearModelBase
    class_weighted: bool = False  # whether estimator.class_weight enters the sample weights
    balanced_uses_sample_weight: bool = False  # "balanced" counts weighted by sample_weight
    weight_sum_l2: float | None = None  # PoissonRegressor: l2 = alpha * S / n, filled in later
    approximation: str = ""  # why the loss was replaced (ApproximationWarning)
    note: str = ""  # context for the PolishingWarning
    advice: str = " Fit the estimator with a tighter tol to avoid this."


def _estimator_name(estimator) -> str:
    return type(estimator).__name__


def _logistic_l2(est, n: int) -> float:
    """l2 of LogisticRegression, for the pre-1.8 ``penalty`` and the newer ``l1_ratio``/``C`` spellings."""
    penalty = getattr(est, "penalty", "l2")
    l1_ratio = getattr(est, "l1_ratio", None)
    C = float(est.C)
    if penalty == "deprecated":  # scikit-learn >= 1.8: the penalty follows l1_ratio, and C=inf means none
        if l1_ratio is None or l1_ratio == 0:
            penalty = "l2"
        else:
            penalty = "l1" if l1_ratio == 1 else "elasticnet"
        if np.isinf(C):
            penalty = None
    elif penalty == "none":  # spelling of scikit-learn < 1.2
        penalty = None
    elif penalty == "elasticnet" and l1_ratio == 0:
        penalty = "l2"
    if penalty is None:
        return 0.0
    if penalty != "l2":
        raise _unsupported(
            est,
            f"LogisticRegression with an {penalty} penalty is not supported (only l2 or none: "
            "influence functions need a twice-differentiable objective)",
        )
    return 0.0 if np.isinf(C) else 1.0 / (C * n)


def _sgd_penalised(est) -> bool:
    """Whether an SGD estimator has an l2 penalty (True) or none (False); raises for l1/elastic-net."""
    penalty = est.penalty
    if penalty is None or penalty == "none":
        return False
    if penalty == "l2" or (penalty == "elasticnet" and est.l1_ratio == 0):
        return True
    raise _unsupported(
        est, f"{_estimator_name(est)} with penalty={penalty!r} is not supported (only 'l2' or None)"
    )


def _liblinear_intercept_note(est) -> str:
    if not est.fit_intercept:
        return ""
    return (
        f" liblinear penalises the intercept (as the weight of a constant feature "
        f"intercept_scaling={est.intercept_scaling!r}); fastinfluence's objective does not, so the returned "
        "intercept is the optimum without that penalty."
    )


def _smooth_hinge_text(est, loss_name: str, t: float) -> str:
    what = (
        "the hinge loss"
        if loss_name == "hinge"
        else "the squared hinge loss (a different loss, not a limit of the smooth hinge)"
    )
    return (
        f"{_estimator_name(est)} minimises {what}, which has no second derivative; it is replaced by the "
        f"smooth hinge t*log(1 + exp((1 - y*eta)/t)) with t={t:g}, and influence values are those of that "
        "model."
    )


_SGD_NOTE = " Stochastic gradient descent stops short of the exact optimum, so this is expected."


def _translate_logistic(est, n: int, X_sample) -> _Translation:
    """A LogisticRegression: binary, or multinomial with more than two classes."""
    l2 = _logistic_l2(est, n)
    if _is_multinomial(est, X_sample):
        return _Translation(
            MultinomialLogisticRegression(l2=l2), class_weighted=True, balanced_uses_sample_weight=True
        )
    n_classes = np.asarray(getattr(est, "classes_", ())).size  # 0 when not fitted: from_sklearn says so
    if 0 < n_classes <= 2 and getattr(est, "multi_class", "auto") == "multinomial":
        raise _unsupported(
            est,
            "a binary LogisticRegression(multi_class='multinomial') (scikit-learn < 1.8) is not supported: "
            "its two coefficient vectors are tied, with another penalty; fit it without multi_class",
        )
    if n_classes > 2:
        raise _unsupported(
            est,
            "a one-vs-rest LogisticRegression with more than two classes (liblinear, or "
            "multi_class='ovr') is K separate binary models: explain each with its own "
            "LogisticRegression on y == class, or fit a multinomial LogisticRegression",
        )
    spec = _Translation(LogisticRegression(l2=l2), class_weighted=True, balanced_uses_sample_weight=True)
    if est.solver == "liblinear":
        spec.note = _liblinear_intercept_note(est)
        spec.advice = " Fit with another solver (lbfgs, newton-cholesky) and a tighter tol to avoid this."
    return spec


def _translate(est, n: int, t: float, X_sample=None) -> _Translation:
    """The fastinfluence model (with l2) for the final estimator ``est``; raises for what is unsupported."""
    from sklearn.linear_model import (
        LinearRegression as SkLinearRegression,
    )
    from sklearn.linear_model import (
        LogisticRegression as SkLogisticRegression,
    )
    from sklearn.linear_model import (
        LogisticRegressionCV,
        PoissonRegressor,
        Ridge,
        SGDClassifier,
        SGDRegressor,
    )
    from sklearn.svm import LinearSVC

    name = _estimator_name(est)
    if name == "OneVsRestClassifier":
        raise _unsupported(
            est,
            "OneVsRestClassifier is a set of binary models: fastinfluence.sklearn.one_vs_rest_models gives "
            "one fastinfluence model per class",
            TypeError,
        )
    if isinstance(est, LogisticRegressionCV):
        raise _unsupported(
            est, "LogisticRegressionCV is not supported (refit a LogisticRegression with its C_)", TypeError
        )
    if isinstance(est, SkLogisticRegression):
        return _translate_logistic(est, n, X_sample)
    if isinstance(est, LinearSVC):
        if est.penalty != "l2":
            raise _unsupported(est, f"LinearSVC with penalty={est.penalty!r} is not supported (only 'l2')")
        if est.multi_class != "ovr":
            raise _unsupported(
                est, f"LinearSVC(multi_class={est.multi_class!r}) is not supported (only 'ovr')"
            )
        return _Translation(
            SmoothHingeClassifier(t=t, l2=1.0 / (float(est.C) * n)),
            class_weighted=True,
            balanced_uses_sample_weight=True,
            approximation=_smooth_hinge_text(est, est.loss, t),
            note=_liblinear_intercept_note(est),
        )
    if isinstance(est, SGDClassifier):
        l2 = float(est.alpha) if _sgd_penalised(est) else 0.0
        if est.loss in ("log_loss", "log"):
            return _Translation(LogisticRegression(l2=l2), class_weighted=True, note=_SGD_NOTE, advice="")
        if est.loss in ("hinge", "squared_hinge"):
            return _Translation(
                SmoothHingeClassifier(t=t, l2=l2),
                class_weighted=True,
                approximation=_smooth_hinge_text(est, est.loss, t),
            )
        raise _unsupported(
            est,
            f"SGDClassifier(loss={est.loss!r}) is not supported (only 'log_loss', 'hinge' "
            "and 'squared_hinge')",
        )
    if isinstance(est, SGDRegressor):
        l2 = float(est.alpha) if _sgd_penalised(est) else 0.0
        if est.loss not in ("squared_error", "squared_loss"):
            raise _unsupported(
                est, f"SGDRegressor(loss={est.loss!r}) is not supported (only 'squared_error')"
            )
        return _Translation(LinearRegression(l2=l2), note=_SGD_NOTE, advice="")
    if isinstance(est, Ridge):
        if getattr(est, "positive", False):
            raise _unsupported(est, "Ridge(positive=True) is not supported (a constrained optimum)")
        alpha = np.ravel(np.asarray(est.alpha, dtype=np.float64))
        if alpha.size != 1:
            raise _unsupported(est, "Ridge with one alpha per target is not supported (single target only)")
        return _Translation(LinearRegression(l2=float(alpha[0]) / n))
    if isinstance(est, SkLinearRegression):
        if getattr(est, "positive", False):
            raise _unsupported(
                est, "LinearRegression(positive=True) is not supported (a constrained optimum)"
            )
        return _Translation(LinearRegression(l2=0.0))
    if isinstance(est, PoissonRegressor):
        return _Translation(PoissonRegression(l2=0.0), weight_sum_l2=float(est.alpha))
    raise _unsupported(est, f"{name} is not supported", TypeError)


def _is_multinomial(est, X_sample=None) -> bool:
    """A fitted LogisticRegression whose classes share one softmax: more than two classes and not
    one-vs-rest. The solver and ``multi_class`` tell (liblinear and "ovr" are one-vs-rest); so do
    its probabilities on ``X_sample`` rows, which are the softmax of its decision values exactly
    when it is multinomial (newton-cholesky was one-vs-rest before scikit-learn 1.6)."""
    classes = getattr(est, "classes_", None)
    if classes is None or np.asarray(classes).size <= 2:
        return False
    if getattr(est, "multi_class", "auto") == "ovr" or est.solver == "liblinear":
        return False
    if X_sample is None or not len(X_sample):
        return True
    eta = np.asarray(est.decision_function(X_sample), dtype=np.float64)
    softmax = np.exp(eta - eta.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    return bool(np.allclose(est.predict_proba(X_sample), softmax, rtol=1e-6, atol=1e-9))


def _binary_classes(est) -> np.ndarray:
    classes = np.asarray(est.classes_)
    if classes.shape[0] != 2:
        raise _unsupported(
            est,
            f"{_estimator_name(est)} has {classes.shape[0]} classes; only binary "
            "classification is supported so far",
        )
    return classes.copy()


def _class_weights(est, y_user, classes, sample_weight, uses_sample_weight: bool):
    """Per-row class weights exactly as the estimator computes them, or None."""
    class_weight = getattr(est, "class_weight", None)
    if class_weight is None:
        return None
    from sklearn.utils.class_weight import compute_class_weight

    kwargs = {}
    if (
        uses_sample_weight
        and sample_weight is not None
        and "sample_weight" in inspect.signature(compute_class_weight).parameters
    ):
        kwargs["sample_weight"] = sample_weight
    per_class = np.asarray(
        compute_class_weight(class_weight, classes=classes, y=y_user, **kwargs), dtype=np.float64
    )
    if classes.size > 2:
        return per_class[np.searchsorted(classes, y_user)]
    return per_class[(y_user == classes[1]).astype(np.intp)]


def _coefficients(est, fit_intercept: bool, d: int, n_classes: int = 1) -> np.ndarray:
    """theta = (w, b) from ``coef_`` and ``intercept_``; class by class for a multinomial model."""
    coef = np.asarray(est.coef_, dtype=np.float64)
    if n_classes > 1:
        if coef.shape != (n_classes, d):
            raise ValueError(
                f"X has {d} features (after the pipeline's transformers) but {_estimator_name(est)} has "
                f"coefficients of shape {coef.shape}: pass the X the estimator (or pipeline) was fitted on"
            )
        intercept = np.ravel(np.asarray(est.intercept_, dtype=np.float64))
        return np.column_stack([coef, intercept] if fit_intercept else [coef]).reshape(-1)
    if coef.ndim == 2:
        if coef.shape[0] != 1:
            raise _unsupported(
                est,
                f"{_estimator_name(est)} has {coef.shape[0]} rows of coefficients (a "
                "multi-output or multi-class model); only one is supported",
            )
        coef = coef[0]
    if coef.shape[0] != d:
        raise ValueError(
            f"X has {d} features (after the pipeline's transformers) but {_estimator_name(est)} has "
            f"{coef.shape[0]} coefficients: pass the X the estimator (or pipeline) was fitted on"
        )
    if not fit_intercept:
        return coef
    return np.append(coef, float(np.ravel(np.asarray(est.intercept_, dtype=np.float64))[0]))


# -- the public entry point --------------------------------------------------------------------
def from_sklearn(
    estimator,
    X,
    y,
    sample_weight=None,
    *,
    t=DEFAULT_TEMPERATURE,
    tol=1e-10,
    max_iter=100,
    backend="auto",
    n_jobs=None,
):
    """The fitted fastinfluence model equivalent to a fitted scikit-learn estimator.

    The estimator's penalty is translated into the ``l2`` of fastinfluence's
    objective (see the module docstring for the table and the algebra), its
    coefficients are checked for optimality on ``(X, y, sample_weight)`` and
    polished with Newton steps where needed.

    Parameters
    ----------
    estimator : fitted scikit-learn estimator, or a Pipeline ending in one
        One of the supported estimators (:data:`SUPPORTED_ESTIMATORS`). For a
        Pipeline, the preceding steps are applied to X (:func:`~fastinfluence.sklearn.transform`) and
        the model lives in the transformed feature space.
    X : array-like of shape (n, d_raw)
        The training data the estimator (or pipeline) was fitted on, untransformed.
    y : array of shape (n,)
        Its training targets; class labels must be numbers or bool.
    sample_weight : array of shape (n,) or None
        The weights the (final) estimator was fitted with. Class weights from
        ``estimator.class_weight`` are multiplied in; the product is stored as
        ``model.sample_weight_``, the weights to give
        :class:`~fastinfluence.Influence` (see Notes).
    t : float > 0
        Smooth-hinge temperature standing in for the hinge losses of
        ``LinearSVC`` and ``SGDClassifier(loss="hinge")``.
    tol, max_iter, backend, n_jobs
        Stored on the returned model; ``tol`` and ``max_iter`` also bound the
        polishing (``||grad R|| <= tol * max(1, ||grad R(0)||)``).

    Returns
    -------
    model : LogisticRegression, LinearRegression, PoissonRegression or SmoothHingeClassifier
        Fitted: ``theta_`` is the optimum of R, ``l2`` the translated penalty,
        ``classes_`` the estimator's classes (classifiers), ``n_iter_`` the
        Newton steps the polishing took, ``feature_names_in_`` the final
        estimator's (when scikit-learn recorded them: fitted on a DataFrame).

    Warns
    -----
    PolishingWarning
        The estimator's coefficients were not at the optimum (relative gradient
        norm above 1e-6); the message gives the gradient norm and how far the
        polishing moved them.
    ApproximationWarning
        A hinge loss was replaced by the smooth hinge.

    Raises
    ------
    TypeError
        For an unsupported estimator; ValueError for unsupported settings
        (l1 or elastic-net penalties, one-vs-rest or multi-output models, other losses).

    Notes
    -----
    The objective's weights are ``s_i = sample_weight_i * class_weight[y_i]``
    (either factor 1 when absent). :class:`~fastinfluence.Influence` must be
    given the same weights: they are ``model.sample_weight_`` (None when all
    ones), so the general recipe is::

        model = fi.from_sklearn(est, X, y, sample_weight)
        inf = fi.Influence(model, fi.sklearn.transform(est, X), y, sample_weight=model.sample_weight_)
    """
    _import_sklearn()
    for value, what in ((X, "X"), (y, "y"), (sample_weight, "sample_weight")):
        V.check_not_masked(value, what)  # before scikit-learn's transforms drop the mask
    final = _final_step(estimator)
    if final is None or final == "passthrough" or not hasattr(final, "fit"):
        raise _unsupported(estimator, "the pipeline's final step is not an estimator", TypeError)
    name = _estimator_name(final)
    if not hasattr(final, "coef_"):
        _translate(final, 1, t)  # an unsupported type or setting is the more useful error
        raise NotFittedError(f"{name} is not fitted yet; fit it (or its pipeline) before from_sklearn")

    Xt = V.check_matrix(transform(estimator, X), "X")
    n, d = Xt.shape
    spec = _translate(final, n, t, Xt[:16])
    model = spec.model
    model.set_params(
        fit_intercept=bool(final.fit_intercept), tol=tol, max_iter=max_iter, backend=backend, n_jobs=n_jobs
    )
    model.check_params()
    multinomial = isinstance(model, MultinomialLogisticRegression)
    if isinstance(model, MultinomialLogisticRegression):
        classes = np.asarray(final.classes_).copy()
        model.n_classes_ = int(classes.size)
    else:
        classes = _binary_classes(final) if hasattr(final, "classes_") else None
    theta = _coefficients(final, model.fit_intercept, d, model.n_blocks)
    s = V.check_sample_weight(sample_weight, n)

    y_raw = np.asarray(D.to_numpy_1d(y, "y")[0])
    if y_raw.ndim == 2 and 1 in y_raw.shape:
        y_raw = y_raw.reshape(-1)
    if classes is not None:
        model.classes_ = classes
        y_internal = model.encode_targets(y_raw, n, "y")
        if spec.class_weighted:
            class_weights = _class_weights(final, y_raw, classes, s, spec.balanced_uses_sample_weight)
            if class_weights is not None:
                s = class_weights if s is None else s * class_weights
    else:
        y_internal = model.encode_targets(y_raw, n, "y")
    if spec.weight_sum_l2 is not None:
        weight_sum = float(n if s is None else s.sum())
        model.l2 = spec.weight_sum_l2 * weight_sum / n

    objective = model.row_objective(Xt, y_internal, s)
    if multinomial:  # the same probabilities, in the sum-to-zero gauge the fit keeps
        assert objective.gauge is not None
        theta = objective.gauge.centre(theta)
    result = dict(
        minimise(
            objective, theta, tol=float(tol), max_iter=int(max_iter), method=model.fit_method(theta.size)
        )
    )
    initial = relative_decrement(result["initial_decrement"], result["objective_scale"])
    # l2 = 0 on separable data: no minimiser, however small the gradient (the same check as fit)
    result = model.check_minimiser(result, Xt, y_internal, s)
    polished = np.asarray(result["theta"], dtype=np.float64)
    moved = float(np.linalg.norm(polished - theta)) / max(
        float(np.linalg.norm(polished)), np.finfo(float).tiny
    )
    result["message"] = (
        f"{result['message']} (Newton polish of {name}'s coefficients: "
        f"{result['n_iter']} iteration(s), relative move {moved:.1e})"
    )
    model.set_fit_result(result, d)
    model.sample_weight_ = s
    names = getattr(final, "feature_names_in_", None)  # set by scikit-learn when fitted on a DataFrame
    if names is not None and len(names) == d:
        model.feature_names_in_ = np.asarray(names, dtype=object)

    if spec.approximation:
        warnings.warn(
            f"{spec.approximation} The coefficients were re-optimised for it and moved by {moved:.1e} "
            f"(relative, in norm).{spec.note}",
            ApproximationWarning,
            stacklevel=2,
        )
    elif not initial <= OPTIMUM_TOLERANCE:
        warnings.warn(
            f"{name}'s coefficients are not at the optimum of the objective they translate to (Newton "
            f"decrement {initial:.1e} relative to sqrt(R(0))); {result['n_iter']} Newton "
            f"step(s) moved them by {moved:.1e} (relative, in norm).{spec.note}{spec.advice} Check that X, y "
            "and sample_weight are those it was fitted on.",
            PolishingWarning,
            stacklevel=2,
        )
    return model


def one_vs_rest_models(estimator, X, y, sample_weight=None, **options) -> dict:
    """The binary fastinfluence models of a fitted ``OneVsRestClassifier``, ``{class: model}``.

    A one-vs-rest classifier is a set of independent binary models, model ``c`` fitted on the
    labels ``y == c``; each is translated by :func:`from_sklearn` (``options`` are its keyword
    arguments), so ``fi.Influence(models[c], X, y == c)`` explains class c's score. (The
    normalised ``predict_proba`` of the whole couples them; explain each class's model.) With
    two classes scikit-learn fits one model, for ``classes_[1]``.
    """
    _import_sklearn()
    from sklearn.multiclass import OneVsRestClassifier

    if not isinstance(estimator, OneVsRestClassifier):
        raise TypeError(f"estimator must be a fitted OneVsRestClassifier, got {_estimator_name(estimator)}")
    if not hasattr(estimator, "estimators_"):
        raise NotFittedError("the OneVsRestClassifier is not fitted yet; fit it before one_vs_rest_models")
    y_raw = np.asarray(D.to_numpy_1d(y, "y")[0]).reshape(-1)
    classes = np.asarray(estimator.classes_)
    pairs = (
        zip(classes, estimator.estimators_) if classes.size > 2 else [(classes[1], estimator.estimators_[0])]
    )
    return {
        label.item() if hasattr(label, "item") else label: from_sklearn(
            est, X, (y_raw == label).astype(np.int64), sample_weight, **options
        )
        for label, est in pairs
    }


# -- a pipeline explained from its raw rows ---------------------------------------------------------
class FixedPreprocessing:
    """The fitted steps of a pipeline before its final estimator, as a function of raw rows.

    ``preprocessing(X)`` is :func:`~fastinfluence.sklearn.transform` of a snapshot of the pipeline
    (refitting the pipeline afterwards changes nothing here), as a pandas DataFrame indexed like ``X`` (its
    pandas index; positions ``0 .. n-1`` for other inputs) with ``feature_names`` as columns.
    """

    def __init__(self, pipeline, feature_names):
        self.pipeline = copy.deepcopy(pipeline)
        self.feature_names = list(feature_names)

    def __call__(self, X):
        pd = D.require_pandas("fastinfluence.sklearn.influence_of_pipeline")
        V.check_not_masked(X, "X")
        features = transform(self.pipeline, X)
        if features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"the pipeline's preprocessing gave {features.shape[1]} features, but it gave "
                f"{len(self.feature_names)} for the training rows"
            )
        index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(features.shape[0])
        return pd.DataFrame(features, index=index, columns=pd.Index(self.feature_names), copy=False)

    def __repr__(self):
        steps = getattr(self.pipeline, "steps", None)
        shown = [name for name, _ in steps[:-1]] if steps else []
        return f"FixedPreprocessing(steps={shown}, features={len(self.feature_names)})"


def _final_feature_names(estimator, input_names):
    """The names of the features the final step of ``estimator`` sees (``get_feature_names_out`` of
    the steps before it, through nested pipelines), or None when a step cannot say."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return input_names
    if len(estimator.steps) > 1:
        try:
            input_names = list(estimator[:-1].get_feature_names_out(input_names))
        except (AttributeError, TypeError, ValueError):  # a step without feature names
            return None
    return _final_feature_names(estimator.steps[-1][1], input_names)


def _feature_names(pipeline, X, d: int) -> list:
    """The names of the d features the final step sees: the pipeline's feature names out, or X's
    string column labels for a bare estimator; positions 0 .. d-1 when there are none."""
    columns = D.feature_names(list(X.columns)) if D.is_dataframe(X) and hasattr(X, "columns") else None
    names = _final_feature_names(pipeline, None if columns is None else list(columns))
    if names is None or len(names) != d:
        return list(range(d))
    return [str(name) for name in names]


def influence_of_pipeline(
    pipeline,
    X,
    y,
    sample_weight=None,
    *,
    solver="direct",
    damping=0.0,
    t=DEFAULT_TEMPERATURE,
    tol=1e-10,
    max_iter=100,
    backend="auto",
    n_jobs=None,
    solver_options=None,
):
    """Influence of the raw training rows of a fitted ``Pipeline``, with labelled results.

    For a pipeline of preprocessing steps (a ``ColumnTransformer`` of ``StandardScaler`` and
    ``OneHotEncoder``, ...) and a final estimator that :func:`from_sklearn` supports or a
    fastinfluence model, this is, in one call::

        inf = fi.sklearn.influence_of_pipeline(pipe, X_train, y_train)
        scores = inf.loss(X_test, y_test)      # DataFrame: X_train's index x X_test's index
        inf.pert_loss(X_test, y_test)          # columns: pipe[:-1].get_feature_names_out()

    Every method takes *raw* rows (``X_test``, ``X_new``, a target's test points) and puts them
    through the same preprocessing; results are labelled by the raw frames' index (not
    ``0 .. n-1``) and by the preprocessing's feature names (``get_feature_names_out``).

    Parameters
    ----------
    pipeline : fitted scikit-learn Pipeline (or a bare fitted estimator)
        Its final step one of :data:`SUPPORTED_ESTIMATORS` or a fastinfluence model.
    X : the raw training rows the pipeline was fitted on (a pandas DataFrame with string or
        categorical columns, or whatever the pipeline accepts)
    y : array or Series (n,), the training targets
    sample_weight : array or Series (n,) or None
        The weights the final estimator was fitted with (``pipe.fit(X, y, est__sample_weight=w)``);
        class weights of the estimator are multiplied in (see :func:`from_sklearn`).
    solver, damping, backend, n_jobs, solver_options
        As for :class:`~fastinfluence.Influence`.
    t, tol, max_iter
        As for :func:`from_sklearn` (scikit-learn final estimators only).

    Returns
    -------
    PipelineInfluence
        An :class:`~fastinfluence.Influence` (:class:`fastinfluence.pipeline.PipelineInfluence`)
        of the final estimator's model (``inf.model``: its ``feature_names_in_`` are the
        preprocessing's feature names), labelled by the rows of ``X``; ``inf.transform(X)`` gives
        the features of raw rows, for :func:`fastinfluence.exact_loo` and the other functions
        that take the model's features.

    Notes
    -----
    The influence is that of the final estimator's objective, with the preprocessing *held
    fixed*: upweighting or removing training row i changes the final estimator's fit, not the
    scaler's means, the encoder's categories or a feature selector's choice, which were fitted
    on all rows. That is exact for preprocessing that does not learn from the data (fixed
    encodings, a ``FunctionTransformer``) and a first approximation otherwise: a ``StandardScaler``
    refitted without row i would shift its mean and scale by O(1/n). Steps fitted on y (a
    ``SelectKBest``) are likewise held at their choice. A row's influence is on the pipeline's
    final objective, in the space of the transformed features: ``pert_loss`` is a gradient with
    respect to those features, not to the raw columns (divide by a scaler's ``scale_`` to move it
    back).

    Raises
    ------
    NotFittedError
        When the pipeline (its final step) is not fitted.
    TypeError, ValueError
        For an unsupported final estimator or setting (see :func:`from_sklearn`).
    """
    _import_sklearn()
    D.require_pandas("fastinfluence.sklearn.influence_of_pipeline")
    final = _final_step(pipeline)
    if isinstance(final, LinearModelBase):  # one of ours: already at the optimum of its own objective
        if not hasattr(final, "theta_"):
            raise NotFittedError(
                f"the pipeline's {type(final).__name__} is not fitted yet; fit the pipeline first"
            )
        model, weights = copy.deepcopy(final), sample_weight
        d = int(model.n_features_in_)
    else:
        model = from_sklearn(
            pipeline, X, y, sample_weight, t=t, tol=tol, max_iter=max_iter, backend=backend, n_jobs=n_jobs
        )
        weights, d = model.sample_weight_, int(model.n_features_in_)
    names = _feature_names(pipeline, X, d)
    if all(isinstance(name, str) for name in names):
        model.feature_names_in_ = np.asarray(names, dtype=object)
    return PipelineInfluence(
        model,
        FixedPreprocessing(pipeline, names),
        X,
        y,
        weights,
        solver=solver,
        damping=damping,
        backend=backend,
        n_jobs=n_jobs,
        solver_options=solver_options,
    )
