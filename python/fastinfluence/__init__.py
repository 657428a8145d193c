"""fastinfluence: fast, exact influence functions for convex linear models.

Which training rows made my model say this? Influence functions (Koh & Liang,
ICML 2017) answer without retraining; for linear models they can be computed
exactly, and this package does so with a C++ (Eigen, OpenMP) core.

>>> import fastinfluence as fi
>>> model = fi.LogisticRegression(l2=1e-3).fit(X, y)          # doctest: +SKIP
>>> inf = fi.Influence(model, X, y)                            # doctest: +SKIP
>>> scores = inf.loss(X_test, y_test)    # (n_train, n_test)   # doctest: +SKIP
"""

__version__ = "0.1.0"

from . import kernels, losses, targets
from ._config import build_info, show_config
from ._native import warn_if_not_compiled
from .exceptions import (
    ApproximationWarning,
    CompiledCoreWarning,
    ConvergenceError,
    ConvergenceWarning,
    FastInfluenceWarning,
    IllConditionedHessianError,
    InvalidArgumentError,
    LeverageWarning,
    NotAtOptimumWarning,
    NotFittedError,
    PolishingWarning,
)
from .influence import Influence, exact_group_loo_on, exact_loo, exact_loo_on, response_function
from .losses import Loss
from .models import (
    LinearRegression,
    LogisticRegression,
    MultinomialLogisticRegression,
    PoissonRegression,
    SmoothHingeClassifier,
)
from .sklearn import from_sklearn  # imports scikit-learn only when called

warn_if_not_compiled()  # once, at import, in an installation built without a C++ compiler

__all__ = [
    "ApproximationWarning",
    "CompiledCoreWarning",
    "ConvergenceError",
    "ConvergenceWarning",
    "FastInfluenceWarning",
    "IllConditionedHessianError",
    "Influence",
    "InvalidArgumentError",
    "LeverageWarning",
    "LinearRegression",
    "LogisticRegression",
    "Loss",
    "MultinomialLogisticRegression",
    "NotAtOptimumWarning",
    "NotFittedError",
    "PoissonRegression",
    "PolishingWarning",
    "SmoothHingeClassifier",
    "build_info",
    "exact_group_loo_on",
    "exact_loo",
    "exact_loo_on",
    "from_sklearn",
    "kernels",
    "losses",
    "response_function",
    "show_config",
    "targets",
]
