"""The scikit-learn estimator contract, kept without importing scikit-learn.

The models of :mod:`fastinfluence.models` are scikit-learn estimators in the sense of
scikit-learn's developer guide, checked by its own test suite
(``sklearn.utils.estimator_checks``, see ``tests/test_estimator_contract.py``), so they
work in ``Pipeline``, ``GridSearchCV``, ``cross_val_score`` and ``clone``. scikit-learn
stays optional: this module implements the contract itself, and imports scikit-learn
only inside ``__sklearn_tags__``, which only scikit-learn calls.

- **Parameters** are the keyword arguments of ``__init__``, read from its signature
  (:meth:`Estimator._get_param_names`, as scikit-learn's ``BaseEstimator`` reads them);
  ``__init__`` stores each unchanged and ``fit`` validates them. :meth:`~Estimator.get_params`,
  :meth:`~Estimator.set_params` and ``clone`` work from that list.
- **repr** shows the parameters that differ from their defaults, as scikit-learn's does:
  ``LogisticRegression(l2=0.01)``.
- **Tags** (what the estimator accepts, for scikit-learn's checks and meta-estimators):
  ``__sklearn_tags__`` for scikit-learn >= 1.6, ``_more_tags`` and ``_estimator_type`` for
  1.4 and 1.5. Classifiers that take two classes only say so (``multi_class=False``,
  ``binary_only``); Poisson regression takes non-negative targets only.
- **Fitted state**: ``__sklearn_is_fitted__`` (``check_is_fitted``) is True once ``theta_`` is set.
- **score**: the metric of scikit-learn's mixins, computed here with NumPy:
  :func:`r2_score` for least squares, :func:`accuracy_score` for the classifiers; Poisson
  regression scores by :func:`poisson_d2_score`, the fraction of Poisson deviance
  explained, as scikit-learn's ``PoissonRegressor`` does.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from typing import Callable

import numpy as np

from . import _validation as V
from .exceptions import InvalidArgumentValueError, NotFittedError

__all__ = [
    "Estimator",
    "ClassifierContract",
    "RegressorContract",
    "not_fitted_error",
    "score_inputs",
    "accuracy_score",
    "r2_score",
    "poisson_deviance",
    "poisson_d2_score",
]


def not_fitted_error(message: str) -> NotFittedError:
    """A :class:`fastinfluence.NotFittedError`; once scikit-learn is imported (by the caller: this
    imports nothing), one that is scikit-learn's ``NotFittedError`` too, so that code catching
    either class (scikit-learn's meta-estimators and checks) recognises it."""
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    sklearn_class = getattr(sklearn_exceptions, "NotFittedError", None)
    if not isinstance(sklearn_class, type):
        return NotFittedError(message)
    return _not_fitted_class(sklearn_class)(message)


@functools.cache
def _not_fitted_class(sklearn_class: type) -> type:
    """fastinfluence's NotFittedError and scikit-learn's in one class (pickled as fastinfluence's)."""

    def reduce(self):
        return NotFittedError, self.args

    return type(
        "NotFittedError",
        (NotFittedError, sklearn_class),
        {"__module__": NotFittedError.__module__, "__doc__": NotFittedError.__doc__, "__reduce__": reduce},
    )


def _same_default(value, default) -> bool:
    """Whether a parameter still holds its default (by repr, as scikit-learn compares; NaN equals NaN)."""
    if value is default:
        return True
    both_nan = (
        isinstance(value, float) and isinstance(default, float) and math.isnan(value) and math.isnan(default)
    )
    return both_nan or repr(value) == repr(default)


class Estimator:
    """Parameters, repr, tags and fitted state of a scikit-learn estimator (see the module docstring)."""

    #: "regressor" or "classifier": scikit-learn < 1.6 reads it (``is_classifier``), the tags say it after
    _estimator_type: str | None = None
    #: Classifiers of two classes only (tags ``multi_class=False`` / ``binary_only``).
    _binary_only = False
    #: Targets must be >= 0 (Poisson counts): tags ``positive_only`` / ``requires_positive_y``.
    _positive_targets = False

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The names of the keyword arguments of ``__init__``, sorted (scikit-learn's rule)."""
        init = cls.__init__
        if init is object.__init__:
            return []
        parameters = [p for p in inspect.signature(init).parameters.values() if p.name != "self"]
        for p in parameters:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise RuntimeError(
                    f"{cls.__name__}.__init__ must name every parameter in its signature (no *args or "
                    "**kwargs): scikit-learn reads the parameters from it"
                )
        return sorted(p.name for p in parameters)

    def get_params(self, deep=True) -> dict:
        """The estimator's parameters, ``{name: value}``.

        Parameters
        ----------
        deep : bool
            Also list the parameters of parameters that are estimators (as ``name__sub``);
            none of the models has such a parameter.

        Returns
        -------
        params : dict
        """
        params: dict = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update((f"{name}__{key}", sub) for key, sub in value.get_params().items())
            params[name] = value
        return params

    def set_params(self, **params):
        """Set parameters (validated by the next ``fit``); returns self.

        Raises
        ------
        ValueError
            For a name that is not a parameter of the estimator.
        """
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict] = {}
        for key, value in params.items():
            name, nests, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; its parameters are "
                    f"{sorted(self._get_param_names())}"
                )
            if nests:
                if not hasattr(valid[name], "set_params"):
                    raise ValueError(
                        f"{type(self).__name__}'s parameter {name!r} is not an estimator, so {key!r} names "
                        "no parameter"
                    )
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, sub_params in nested.items():
            valid[name].set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        # the parameters that differ from the defaults, in the signature's order (scikit-learn's style)
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = [
            f"{name}={getattr(self, name)!r}"
            for name in defaults
            if name != "self" and not _same_default(getattr(self, name), defaults[name])
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_is_fitted__(self) -> bool:
        """Whether ``fit`` has run (scikit-learn's ``check_is_fitted`` asks this)."""
        return hasattr(self, "theta_")

    def __sklearn_tags__(self):
        """The estimator's tags for scikit-learn >= 1.6 (which alone calls this, so the import is safe)."""
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        tags = Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True, positive_only=self._positive_targets),
            input_tags=InputTags(sparse=True),
        )
        if self._estimator_type == "classifier":
            tags.classifier_tags = ClassifierTags(multi_class=not self._binary_only)
        else:
            tags.regressor_tags = RegressorTags()
        return tags

    def _more_tags(self) -> dict:
        """The same tags for scikit-learn 1.4 and 1.5 (merged with its defaults)."""
        return {
            "binary_only": self._binary_only,
            "requires_positive_y": self._positive_targets,
            "requires_y": True,
        }


# -- scores ------------------------------------------------------------------------------------
def score_inputs(model, X, y, sample_weight, encode=False):
    """(X checked against the fit, y (1-D; encoded as the loss takes it with ``encode``, else the
    labels as given, without missing values), the weights or None) for a score."""
    X = model.validate_features(X, "X")[0]
    n = X.shape[0]
    y = model.encode_targets(y, n, "y") if encode else _labels(y, n)
    return X, y, V.check_sample_weight(sample_weight, n)


def _labels(y, n: int) -> np.ndarray:
    """Class labels as given (a label the model does not know counts as a wrong prediction), refusing
    missing ones: NaN never equals a prediction, so it would pass for a mistake."""
    labels = V.check_1d(y, n, "y")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise InvalidArgumentValueError("y", "contains NaN or infinity")
    if labels.dtype.kind == "O" and any(
        v is None or (isinstance(v, float) and math.isnan(v)) for v in labels
    ):
        raise InvalidArgumentValueError("y", "has missing values (None or NaN)")
    return labels


def _weighted_mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    return float(np.mean(values) if weights is None else np.average(values, weights=weights))


def accuracy_score(y_true, y_pred, sample_weight=None) -> float:
    """The (weighted) fraction of rows whose predicted label equals the true one."""
    return _weighted_mean(np.asarray(y_true == y_pred, dtype=np.float64), sample_weight)


def r2_score(y_true, y_pred, sample_weight=None) -> float:
    """The coefficient of determination ``1 - sum_i s_i (y_i - yhat_i)^2 / sum_i s_i (y_i - ybar)^2``
    (``ybar`` the weighted mean of y); for constant y, 1 when every prediction is exact and 0
    otherwise, as scikit-learn's ``r2_score`` (``force_finite=True``)."""
    s = np.ones_like(y_true) if sample_weight is None else sample_weight
    residual = float(np.sum(s * (y_true - y_pred) ** 2))
    total = float(np.sum(s * (y_true - np.average(y_true, weights=s)) ** 2))
    return _finite_ratio_score(residual, total)


def _finite_ratio_score(residual: float, total: float) -> float:
    """``1 - residual / total``, and for ``total = 0``: 1 if ``residual = 0`` else 0 (scikit-learn's rule)."""
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def poisson_deviance(y, mu) -> np.ndarray:
    """The unit Poisson deviance ``2 (y log(y / mu) - y + mu)`` per row (``y log y = 0`` at y = 0)."""
    ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return 2.0 * (ylogy - y + mu)


def poisson_d2_score(y_true, mu, sample_weight=None) -> float:
    """The fraction of Poisson deviance explained, ``D^2 = 1 - sum_i s_i dev(y_i, mu_i) /
    sum_i s_i dev(y_i, ybar)`` (``ybar`` the weighted mean count): scikit-learn's
    ``d2_tweedie_score(power=1)``, and the score of its ``PoissonRegressor``."""
    s = np.ones_like(y_true) if sample_weight is None else sample_weight
    mean = np.full_like(y_true, np.average(y_true, weights=s))
    return _finite_ratio_score(
        float(np.sum(s * poisson_deviance(y_true, mu))), float(np.sum(s * poisson_deviance(y_true, mean)))
    )


class ClassifierContract(Estimator):
    """A classifier: tags, and ``score`` = accuracy, as scikit-learn's ``ClassifierMixin``."""

    _estimator_type = "classifier"
    predict: Callable[..., np.ndarray]  # the model's (declared here, defined by the models)

    def score(self, X, y, sample_weight=None) -> float:
        """The (weighted) accuracy of ``predict(X)`` against the labels ``y``: the fraction of rows,
        weighted by ``sample_weight``, whose predicted class is the true one.

        Parameters
        ----------
        X : array (m, d), sparse matrix or data frame, as ``predict`` takes it
        y : array or Series (m,) of labels, in the encoding the model was fitted with
        sample_weight : array or Series (m,), non-negative, or None

        Returns
        -------
        accuracy : float in [0, 1]
        """
        X, y, s = score_inputs(self, X, y, sample_weight)
        return accuracy_score(y, self.predict(X), s)


class RegressorContract(Estimator):
    """A regressor: tags, and ``score`` = R^2, as scikit-learn's ``RegressorMixin``."""

    _estimator_type = "regressor"
    predict: Callable[..., np.ndarray]

    def score(self, X, y, sample_weight=None) -> float:
        """The coefficient of determination R^2 of ``predict(X)`` (as ``sklearn.metrics.r2_score``).

        Parameters
        ----------
        X : array (m, d), sparse matrix or data frame, as ``predict`` takes it
        y : array or Series (m,) of real targets
        sample_weight : array or Series (m,), non-negative, or None

        Returns
        -------
        r2 : float <= 1 (1 for exact predictions, 0 for predicting the mean, negative when worse)
        """
        X, y, s = score_inputs(self, X, y, sample_weight, encode=True)
        return r2_score(y, self.predict(X), s)
