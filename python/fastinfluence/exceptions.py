"""Warnings and errors raised by fastinfluence."""


class FastInfluenceWarning(UserWarning):
    """Base class of every warning fastinfluence emits."""


class ConvergenceWarning(FastInfluenceWarning):
    """A fit or an iterative solver stopped before reaching its tolerance."""


class NotAtOptimumWarning(FastInfluenceWarning):
    """The model's parameters are not a minimiser of the objective on the data given.

    Influence functions are derivatives at the optimum; away from it they have
    no meaning (Koh & Liang 2017, section 2).
    """


class PolishingWarning(NotAtOptimumWarning):
    """Coefficients taken from elsewhere (a scikit-learn estimator) were not at the optimum.

    :func:`fastinfluence.from_sklearn` then refines them with Newton steps on
    fastinfluence's objective; the message says how far they were and how far
    they moved.
    """


class ApproximationWarning(FastInfluenceWarning):
    """A loss or penalty was replaced by a close one that fastinfluence supports.

    For example the hinge loss of ``LinearSVC`` by the smooth hinge: influence
    values are then those of the approximating model.
    """


class LeverageWarning(FastInfluenceWarning):
    """A training point has leverage h_i >= 1: removing it leaves a singular Hessian."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before ``fit`` was called."""


class IllConditionedHessianError(ValueError):
    """The Hessian is singular or too ill-conditioned for a meaningful solve."""


class ConvergenceError(ValueError):
    """A model whose fit did not converge (or whose objective has no minimiser) was used where the
    optimum is needed: influence functions are derivatives at it."""
