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


class LeverageWarning(FastInfluenceWarning):
    """A training point has leverage h_i >= 1: removing it leaves a singular Hessian."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before ``fit`` was called."""


class IllConditionedHessianError(ValueError):
    """The Hessian is singular or too ill-conditioned for a meaningful solve."""
