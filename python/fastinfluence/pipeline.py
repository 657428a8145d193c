"""Influence whose training and test data are raw rows, put through fixed preprocessing first.

:class:`PipelineInfluence` is an :class:`~fastinfluence.Influence` that holds a
*preprocessing* function (raw rows -> the labelled feature frame the model was fitted
on) and applies it to every set of rows it is given: the training X at construction,
and ``X_test``, ``X_new`` and the test points of every target
(:mod:`fastinfluence.targets`) later. Results are labelled as for a training frame: by
the raw rows' index and the preprocessing's feature names.

:func:`fastinfluence.sklearn.influence_of_pipeline` builds one from a fitted
scikit-learn ``Pipeline``; the preprocessing is then the pipeline's steps before its
final estimator, held fixed (see there for what that means for the influence values).
"""

from __future__ import annotations

from typing import Any, Callable

from .engine import MemoryEngine
from .influence import Influence

__all__ = ["PipelineInfluence"]


class PreprocessingEngine(MemoryEngine):
    """The in-memory engine; test points (``X_test``, ``X_new``) are preprocessed as the training rows."""

    preprocessing: Callable[[Any], Any] | None = None

    def test_inputs(self, X_test, y_test):
        X_test = X_test if self.preprocessing is None else self.preprocessing(X_test)
        return X_test, y_test


class PipelineInfluence(Influence):
    """Influence of raw training rows, through fixed preprocessing (see the module docstring).

    Parameters
    ----------
    model : a fitted fastinfluence model
        Fitted on ``preprocessing(X)``, with ``sample_weight``.
    preprocessing : callable
        Raw rows (whatever it accepts: a DataFrame with string and categorical columns, ...)
        to the model's features, as a pandas DataFrame whose index labels the rows and whose
        columns are the feature names. It must be fixed: the same rows give the same features.
    X, y, sample_weight
        The raw training rows, their targets and the weights the model was fitted with.
    solver, damping, backend, n_jobs, solver_options
        As for :class:`~fastinfluence.Influence`.

    Every method takes raw rows where :class:`~fastinfluence.Influence` takes features
    (``loss(X_test, y_test)``, ``new_points(X_new, y_new)``, targets such as
    ``DecisionFunction(X_test)``); ``transform(X)`` gives the features themselves, for
    :func:`fastinfluence.exact_loo` and friends, which take the model's features.

    Attributes
    ----------
    preprocessing : the preprocessing function
    feature_names_ : list, the names of the model's features (the preprocessing's columns)
    """

    _engine_class = PreprocessingEngine
    _engine: PreprocessingEngine

    def __init__(
        self,
        model,
        preprocessing,
        X,
        y,
        sample_weight=None,
        *,
        solver="direct",
        damping=0.0,
        backend="auto",
        n_jobs=None,
        solver_options=None,
    ):
        if not callable(preprocessing):
            raise TypeError(
                f"preprocessing must be a function of the raw rows, got {type(preprocessing).__name__}"
            )
        self.preprocessing = preprocessing
        features = preprocessing(X)
        self.feature_names_ = list(features.columns)
        super().__init__(
            model,
            features,
            y,
            sample_weight,
            solver=solver,
            damping=damping,
            backend=backend,
            n_jobs=n_jobs,
            solver_options=solver_options,
        )
        self._engine.preprocessing = preprocessing

    def transform(self, X):
        """The model's features of raw rows ``X``: ``preprocessing(X)``, a labelled DataFrame."""
        return self.preprocessing(X)
