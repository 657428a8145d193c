"""Warnings and errors raised by fastinfluence."""


class FastInfluenceWarning(UserWarning):
    """Base class of every warning fastinfluence emits."""


class CompiledCoreWarning(FastInfluenceWarning):
    """The compiled core is not there (built without a C++ compiler) or failed to load: the NumPy
    backend computes every result instead (``backend="auto"``)."""


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


class InvalidArgumentError(Exception):
    """An argument of a call (``X``, ``y``, ``X_test``, ``y_test``, ``sample_weight``, ...) is invalid.

    ``argument`` is the argument's name as the call spells it, ``detail`` the message without it:
    ``str(error) == f"{error.argument} {error.detail}"``. It is raised as
    :class:`InvalidArgumentValueError` (a ``ValueError``: missing or infinite values, a wrong
    shape or length, out-of-range numbers) or :class:`InvalidArgumentTypeError` (a ``TypeError``:
    non-numeric columns or dtypes), so code that catches ``ValueError`` or ``TypeError`` is
    unaffected; catch this class to learn which argument failed, for example to point the user to
    the file, form field or command-line option it came from::

        try:
            model.fit(X, y)
        except fi.InvalidArgumentError as error:
            print(f"{sources[error.argument]} {error.detail}")

    The checks every entry point runs on its data and numeric options raise it; errors
    found later (a label outside the model's classes, a fit without an optimum) are plain
    ``ValueError``.
    """

    def __init__(self, argument: str, detail: str):
        super().__init__(f"{argument} {detail}")
        self.argument = argument
        self.detail = detail

    def __reduce__(self):  # pickled with both parts (Dask sends exceptions between processes)
        return type(self), (self.argument, self.detail)


class InvalidArgumentValueError(InvalidArgumentError, ValueError):
    """An argument has the right type but a value the call cannot take (see :class:`InvalidArgumentError`)."""


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has a type or dtype the call cannot take (see :class:`InvalidArgumentError`)."""


class ComplexDataError(InvalidArgumentTypeError, ValueError):
    """An argument holds complex numbers: a ``TypeError`` (a dtype the call cannot take), and a
    ``ValueError`` too, as scikit-learn raises for complex data (its estimator checks expect that)."""
