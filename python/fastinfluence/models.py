"""Convex linear models fitted to the optimum, the starting point of every influence computation.

Every model minimises the regularised empirical risk

    R(theta) = (1/n) sum_i s_i loss(y_i, eta_i) + (l2/2) ||w||^2,    eta_i = x_i . w + b,

with sample weights ``s_i`` (default 1), ``theta = (w, b)`` (``b`` only with
``fit_intercept=True``, never penalised), by Newton's method
in equilibrated coordinates with a backtracking line search, until the
Newton decrement certifies the optimum, ``g^T H^{-1} g <= tol^2 * R(0)``
(``tol = 1e-10`` by default), followed by polishing Newton steps that put
theta at the optimum to rounding (see :mod:`fastinfluence.fitting`).
Influence functions are derivatives at the optimum, so this is far tighter
than the defaults of most solvers, and it does not depend on the units of
the features. A fit whose objective has no minimiser (separable classes with
l2 = 0, a single class, counts that are all zero: see
:mod:`fastinfluence.minimiser`) or whose iteration stalls ends with
``converged_ = False`` and a ``ConvergenceWarning``.

Data frames (pandas, polars, pyarrow) are accepted wherever arrays are (see
:mod:`fastinfluence._dataframes`). Fitted on a frame whose column labels are
all strings, a model records them in ``feature_names_in_`` (as scikit-learn
does), and frames given later (to ``predict``, ``Influence``, ...) must have
the same columns in the same order, or a ``ValueError`` says which differ;
arrays are matched by position. ``predict`` and friends return NumPy arrays.

The models are scikit-learn estimators (:mod:`fastinfluence._estimator`, checked by
scikit-learn's ``check_estimator`` suite; scikit-learn stays optional): ``get_params``,
``set_params``, ``clone``, ``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` work, the
parameters are the keyword arguments of ``__init__``, stored unchanged and validated by
``fit``. ``score`` is R^2 for :class:`LinearRegression`, accuracy for the classifiers and the
fraction of Poisson deviance explained, D^2, for :class:`PoissonRegression` (as scikit-learn's
``PoissonRegressor``). ``row_losses(X, y, sample_weight)`` gives each row's loss at the fit.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import _dataframes as D
from . import _validation as V
from ._estimator import (
    ClassifierContract,
    Estimator,
    RegressorContract,
    not_fitted_error,
    poisson_d2_score,
    score_inputs,
)
from .backends import get_backend
from .backends.contract import Problem
from .exceptions import (
    ConvergenceWarning,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
)
from .fitting import RowObjective, minimise
from .losses import Loss
from .minimiser import no_minimiser_reason

__all__ = [
    "LinearRegression",
    "LogisticRegression",
    "MultinomialLogisticRegression",
    "PoissonRegression",
    "SmoothHingeClassifier",
]

#: ``method`` of the models' fit: "newton" forms the dense p x p Hessian each
#: iteration; "newton_cg" (truncated Newton) only needs Hessian-vector
#: products, O(p) memory; "auto" uses "newton" up to this many parameters.
FIT_METHODS = ("auto", "newton", "newton_cg")
FIT_SOLVERS = FIT_METHODS  # the name before 0.2
AUTO_NEWTON_MAX_PARAMS = 4096


class LinearModelBase(Estimator):
    """Shared fitting machinery; subclasses choose the loss and the label encoding.

    The parameters are the keyword arguments of ``__init__``, stored unchanged and validated
    by ``fit`` (:meth:`check_params`); ``get_params``, ``set_params``, ``repr`` and the tags
    scikit-learn reads come from :class:`fastinfluence._estimator.Estimator`.
    """

    _loss_name: str = ""
    # Fitted attributes that only some models have (``hasattr`` tells; declared, not set, here):
    # the two classes of a classifier, and the weights that fastinfluence.sklearn.from_sklearn derived.
    classes_: np.ndarray
    sample_weight_: np.ndarray | None
    intercept_: float | np.ndarray  # (K,) for the multinomial model

    def __init__(
        self,
        *,
        l2=0.0,
        fit_intercept=True,
        tol=1e-10,
        max_iter=100,
        method="auto",
        backend="auto",
        n_jobs=None,
        solver=None,
    ):
        self.l2 = l2
        self.method = method
        self.solver = solver  # deprecated: the name of ``method`` before 0.2
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.backend = backend
        self.n_jobs = n_jobs

    # -- the objective ---------------------------------------------------------------------
    @property
    def loss(self) -> Loss:
        """The :class:`~fastinfluence.losses.Loss` this model minimises."""
        return Loss(self._loss_name)

    def check_params(self):
        """ValueError/TypeError naming the option that is out of range (called by every fit)."""
        V.check_nonnegative(self.l2, "l2")
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise TypeError(f"fit_intercept must be True or False, got {self.fit_intercept!r}")
        V.check_positive_finite(self.tol, "tol")
        V.check_positive_int(self.max_iter, "max_iter")
        V.check_n_jobs(self.n_jobs)
        if self.solver is not None:
            warnings.warn(
                f"{type(self).__name__}(solver=...) is deprecated and will be removed in 0.3: it was renamed "
                "method= (solver names the Hessian solver of Influence). Use "
                f"{type(self).__name__}(method={self.solver!r})",
                FutureWarning,
                stacklevel=3,
            )
        method = self._method()
        if method not in FIT_METHODS:
            name = "solver" if self.solver is not None else "method"
            raise InvalidArgumentValueError(name, f"must be one of {FIT_METHODS}, got {method!r}")
        get_backend(self.backend)
        _ = self.loss  # validates loss parameters such as t

    def _method(self):
        return self.solver if self.solver is not None and self.method == "auto" else self.method

    # -- the model interface of the engines (fastinfluence.influence, fastinfluence.dask) ---------
    @property
    def n_blocks(self) -> int:
        """Linear predictors per row, one block of ``d + fit_intercept`` parameters each: 1, but K
        for the multinomial model (known once its classes are)."""
        return 1

    def encode_targets(self, y, n, name="y", *, fitting=False):
        """Labels as the float64 internal encoding of the loss (see fastinfluence.losses)."""
        y = V.check_vector(y, n, name)
        self.loss.check_targets(y, name)
        return y

    def validate_features(self, X, name="X"):
        """(X as the kernels take it, row labels | None, column labels | None), checked against the fit.

        Frames are converted here (and their labels kept for labelled results);
        the number of features and, for frames with string column labels, the
        feature names must match those the model was fitted with.
        """
        X, rows, columns = D.to_numpy_2d(X, name)
        X = V.check_matrix(X, name)
        D.check_feature_names(getattr(self, "feature_names_in_", None), columns, name)
        V.check_same_features(X, self.n_features_in_, name, type(self).__name__)
        return X, rows, columns

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Minimise R(theta) on (X, y, sample_weight) to the gradient tolerance ``tol``.

        Parameters
        ----------
        X : array of shape (n, d), float32 or float64 (others are converted), C or F order;
            SciPy sparse matrix; or a pandas/polars DataFrame or pyarrow Table of numeric columns
            (string column labels are recorded in ``feature_names_in_``)
        y : array or Series of shape (n,), matched to the rows of X by position
        sample_weight : array or Series of shape (n,), non-negative, or None for all ones

        Returns
        -------
        self
        """
        self.check_params()
        if y is None:  # in scikit-learn's words, which its estimator checks look for
            raise InvalidArgumentValueError(
                "y", f"is None: {type(self).__name__} requires y to be passed, but the target y is None"
            )
        X, _, columns = D.to_numpy_2d(X, "X")
        X = V.check_matrix(X, "X")
        y = self.encode_targets(y, X.shape[0], fitting=True)
        s = V.check_sample_weight(sample_weight, X.shape[0])
        theta0 = np.zeros(self.n_blocks * (X.shape[1] + (1 if self.fit_intercept else 0)))
        result = minimise(
            self.row_objective(X, y, s),
            theta0,
            tol=float(self.tol),
            max_iter=int(self.max_iter),
            method=self.fit_method(theta0.size),
        )
        self.set_fit_result(self.check_minimiser(result, X, y, s), X.shape[1])
        names = D.feature_names(columns)
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):  # refitted on an array: forget the old names
            del self.feature_names_in_
        return self

    def problem(self, X, y, s) -> Problem:
        """The objective's data (:class:`fastinfluence.backends.contract.Problem`) with this model's loss."""
        return Problem(self.loss, X, y, s, bool(self.fit_intercept), float(self.l2), self.n_blocks)

    def row_objective(self, X, y, s) -> RowObjective:
        """R on (X, y, s) with this model's loss and options, over the chosen backend's kernels."""
        return RowObjective(get_backend(self.backend), self.problem(X, y, s), V.check_n_jobs(self.n_jobs))

    def check_minimiser(self, result, X, y, s):
        """The fit result, marked not converged when R has no minimiser (:mod:`fastinfluence.minimiser`)."""
        reason = no_minimiser_reason(
            self.loss,
            X,
            y,
            s,
            np.asarray(result["theta"], dtype=np.float64),
            bool(self.fit_intercept),
            float(self.l2),
            bool(result["converged"]),
            float(self.tol),
        )
        return result if reason is None else dict(result, converged=False, message=reason)

    def fit_method(self, n_params: int) -> str:
        """ "newton" (dense Hessian) or "newton_cg" (matrix-free), by the ``method`` rule."""
        method = self._method()
        if method == "auto":
            return "newton" if n_params <= AUTO_NEWTON_MAX_PARAMS else "newton_cg"
        return method

    def set_fit_result(self, result, n_features):
        """Set the fitted attributes (``theta_``, ``coef_``, ...) from a
        :func:`fastinfluence.fitting.minimise` result; warns (ConvergenceWarning) when it did not converge."""
        self.theta_ = np.asarray(result["theta"], dtype=np.float64)
        self.n_features_in_ = n_features
        self.coef_ = self.theta_[:n_features].copy()
        self.intercept_ = float(self.theta_[n_features]) if self.fit_intercept else 0.0
        self.n_iter_ = int(result["n_iter"])
        self.polish_steps_ = int(result.get("polish_steps", 0))
        self.grad_norm_ = float(result["grad_norm"])
        # lambda = sqrt(g^T H^{-1} g) and max(R(0), tiny): the stopping rule is lambda^2 <= tol^2 * scale
        self.newton_decrement_ = float(result["decrement"])
        self.objective_scale_ = float(result["objective_scale"])
        self.objective_ = float(result["objective"])
        self.converged_ = bool(result["converged"])
        self.fit_message_ = str(result["message"])
        if not self.converged_:
            warnings.warn(
                f"{type(self).__name__} did not converge: {self.fit_message_}; gradient norm "
                f"{self.grad_norm_:.3e}, Newton decrement {self.newton_decrement_:.3e} after {self.n_iter_} "
                f"Newton iterations (stopping rule: decrement <= tol * sqrt(R(0)) = "
                f"{self.tol * np.sqrt(self.objective_scale_):.3e}). Influence values at these parameters "
                "are not meaningful; use l2 > 0 or more max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _check_fitted(self):
        if not hasattr(self, "theta_"):
            raise not_fitted_error(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    # -- prediction --------------------------------------------------------------------------
    def decision_function(self, X):
        """The linear predictor eta = X w + b, shape (n,)."""
        self._check_fitted()
        X = self.validate_features(X, "X")[0]
        return V.linear_predictor(X, self.theta_, bool(self.fit_intercept))

    def predict(self, X):
        """The prediction of the linear predictor eta = X w + b, shape (n,)."""
        return self.decision_function(X)

    def row_losses(self, X, y, sample_weight=None):
        """The loss of each row at the fitted parameters, ``s_i * loss(y_i, eta_i)``, shape (n,).

        These are the terms of the objective's sum: on the data the model was fitted on,
        ``row_losses(X, y, sample_weight).mean() + (l2/2) ||w||^2`` is ``objective_`` (the
        minimum of R). The loss is the model's own (:attr:`loss`; the table of
        :mod:`fastinfluence.losses`), of the linear predictor ``eta_i = x_i . w + b``:

        ==============================  ==============================================
        model                           loss(y_i, eta_i)
        ==============================  ==============================================
        LinearRegression                ``(eta_i - y_i)^2 / 2``
        LogisticRegression              ``log(1 + exp(eta_i)) - y_i eta_i``, y_i in {0, 1}
                                        (1 for ``classes_[1]``): the log-loss
        SmoothHingeClassifier           ``t log(1 + exp((1 - y_i eta_i) / t))``, y_i = +-1
        PoissonRegression               ``exp(eta_i) - y_i eta_i``: the negative log-likelihood
                                        without its ``log(y_i!)``, so it can be negative
        MultinomialLogisticRegression   ``logsumexp(eta_i) - eta_i[y_i]`` (eta_i of the K
                                        classes): the log-loss
        ==============================  ==============================================

        Parameters
        ----------
        X : array (n, d), sparse matrix or data frame, as ``predict`` takes it
        y : array or Series (n,) of labels or targets, in the encoding the model was fitted with
        sample_weight : array or Series (n,), non-negative, or None (all ones)

        Returns
        -------
        losses : ndarray (n,), float64 (NumPy, also for frames, as ``predict``)
        """
        self._check_fitted()
        X = self.validate_features(X, "X")[0]
        n = X.shape[0]
        y = self.encode_targets(y, n, "y")
        s = V.check_sample_weight(sample_weight, n)
        rows = get_backend(self.backend).row_derivatives(
            self.problem(X, y, None), self.theta_, V.check_n_jobs(self.n_jobs)
        )
        losses = np.array(rows.value, dtype=np.float64)
        return losses if s is None else s * losses


class LinearRegression(RegressorContract, LinearModelBase):
    """Least squares, ``loss = 0.5 * (eta - y)**2``, with an optional l2 (ridge) penalty."""

    _loss_name = "squared"


class BinaryClassifierBase(ClassifierContract, LinearModelBase):
    """Labels may be any two classes: {0, 1}, {-1, +1}, bool, two other whole numbers (such as
    {1, 2}), or two class names; ``classes_`` keeps the user's pair. Labels in {0, 1} or
    {-1, +1} make that pair the classes even when only one of them is present (the fit then
    has no minimiser and says so); other numbers must show both classes. More than two
    classes, or continuous (non-integer) values, are refused with a ``ValueError``.

    Class names (strings, of a NumPy string or object array, a pandas or polars
    Series, ...) are sorted as ``numpy.unique`` sorts them, and the second is
    the positive class (as in scikit-learn): ``classes_ = ["benign",
    "malignant"]`` makes "malignant" the class whose probability
    ``predict_proba(X)[:, 1]`` is. Labels given later must be among ``classes_``.
    """

    _positive_internal = 1.0
    _negative_internal = 0.0
    _binary_only = True

    def __init__(
        self,
        *,
        l2=1e-3,
        fit_intercept=True,
        tol=1e-10,
        max_iter=100,
        method="auto",
        backend="auto",
        n_jobs=None,
        solver=None,
    ):
        super().__init__(
            l2=l2,
            fit_intercept=fit_intercept,
            tol=tol,
            max_iter=max_iter,
            method=method,
            backend=backend,
            n_jobs=n_jobs,
            solver=solver,
        )

    def encode_targets(self, y, n, name="y", *, fitting=False):
        raw = V.check_1d(y, n, name)
        names = _class_names(raw, name)
        if names is not None:
            return self._encode_class_names(raw, names, name, fitting)
        is_bool = raw.dtype == bool
        y = V.check_vector(raw, n, name)
        if fitting:
            self.classes_ = self._numeric_classes(raw, set(np.unique(y).tolist()), is_bool, name)
        if _class_names(self.classes_, "classes_") is not None:  # fitted on class names, given numbers
            raise InvalidArgumentValueError(
                name,
                f"holds labels {np.unique(y)[:5].tolist()} that are not among the model's classes "
                f"{self.classes_.tolist()}",
            )
        # two comparisons, not np.unique (a sort): this runs on every Influence and test set
        positive = y == float(self.classes_[1])
        known = positive | (y == float(self.classes_[0]))
        if not known.all():
            bad = np.unique(y[~known])[:5].tolist()
            raise InvalidArgumentValueError(
                name, f"holds labels {bad} that are not among the model's classes {self.classes_.tolist()}"
            )
        return np.where(positive, self._positive_internal, self._negative_internal)

    def _numeric_classes(self, raw, values: set, is_bool: bool, name: str) -> np.ndarray:
        """``classes_`` of numeric or boolean labels: (False, True); (0, 1) or (-1, +1) when the
        labels lie in one of those pairs (also when only one of its classes is present: the fit
        then has no minimiser and says so); else the two distinct values, sorted."""
        if is_bool:
            return np.array((False, True))
        _check_discrete(values, name, type(self).__name__, BINARY_LABELS)
        if values <= {0.0, 1.0}:
            return np.array((0, 1))
        if values <= {-1.0, 1.0}:
            return np.array((-1, 1))
        labels = np.unique(raw) if raw.dtype.kind in "iu" else np.array(sorted(values))
        if labels.size != 2:
            raise self._not_two_classes(name, labels.tolist())
        return labels

    def _not_two_classes(self, name: str, labels: list) -> InvalidArgumentValueError:
        """The error for labels that are not two classes (one, or more than two)."""
        shown = [label.item() if hasattr(label, "item") else label for label in labels[:5]]
        owner = type(self).__name__
        if len(labels) == 1:
            return InvalidArgumentValueError(
                name,
                f"{BINARY_LABELS} for {owner}; found one class only, {shown[0]!r}: the training labels must "
                "show both classes",
            )
        more = " ..." if len(labels) > 5 else ""
        return InvalidArgumentValueError(
            name,
            f"{BINARY_LABELS} for {owner}; found {len(labels)} classes {shown}{more}. Only binary "
            "classification is supported: use MultinomialLogisticRegression for more than two classes",
        )

    def _encode_class_names(self, raw, names, name, fitting):
        """Internal labels for class names: positive where raw is ``classes_[1]``."""
        if fitting:
            if names.size != 2:
                raise self._not_two_classes(name, names.tolist())
            self.classes_ = names
        known = set(self.classes_.tolist())
        bad = [label for label in names.tolist() if label not in known]
        if bad:
            raise InvalidArgumentValueError(
                name,
                f"holds labels {bad[:5]} that are not among the model's classes {self.classes_.tolist()}",
            )
        positive = raw == self.classes_[1]
        return np.where(positive, self._positive_internal, self._negative_internal).astype(np.float64)

    def predict(self, X):
        """The predicted class, in the labels the model was fitted with."""
        return np.where(self.decision_function(X) > 0, self.classes_[1], self.classes_[0])


#: What the binary classifiers' label errors start with.
BINARY_LABELS = "must hold binary labels (two classes: numbers, bool or class names)"


def _check_discrete(values: set, name: str, owner: str, expected: str = "must hold class labels") -> None:
    """ValueError when numeric labels are not whole numbers (a continuous target, as scikit-learn
    calls it): a classifier's labels are classes."""
    fractional = sorted(v for v in values if v != math.floor(v))
    if fractional:
        raise InvalidArgumentValueError(
            name,
            f"{expected} for {owner}; found continuous values such as {fractional[0]:g} (Unknown label "
            "type: continuous. Classes are whole numbers, booleans or names; for a real-valued target "
            "use LinearRegression)",
        )


def _class_names(raw: np.ndarray, name: str) -> np.ndarray | None:
    """The sorted distinct labels when ``raw`` holds class names (strings), else None (numbers, bools)."""
    if raw.dtype.kind in ("U", "S", "T"):  # NumPy str, bytes and StringDType
        return np.unique(raw)
    if raw.dtype.kind != "O":
        return None
    try:
        labels = np.unique(raw)
    except TypeError:  # labels that cannot be sorted together: None, NaN or mixed types
        values = raw.tolist()
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            raise InvalidArgumentValueError(name, "has missing values (None or NaN)") from None
        kinds = sorted({type(v).__name__ for v in values})
        raise InvalidArgumentTypeError(
            name, f"mixes label types {kinds}; class labels must all be of one type"
        ) from None
    return labels if all(isinstance(v, str) for v in labels.tolist()) else None


class LogisticRegression(BinaryClassifierBase):
    """L2-regularised logistic regression, ``loss = log(1 + exp(eta)) - y * eta`` (y in {0, 1} inside)."""

    _loss_name = "logistic"

    def predict_proba(self, X):
        """Class probabilities, shape (n, 2): columns follow ``classes_``."""
        from scipy.special import expit

        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])


class SmoothHingeClassifier(BinaryClassifierBase):
    """Linear SVM with the smooth hinge of Koh & Liang, ``t * log(1 + exp((1 - y * eta) / t))``.

    ``t -> 0`` recovers the hinge loss, whose second derivative (and hence
    influence) does not exist there; the paper compares t = 0.001 and 0.1.
    Small ``t`` makes the Hessian nearly singular away from the margin: pair
    it with ``l2 > 0``.
    """

    _loss_name = "smooth_hinge"
    _negative_internal = -1.0

    def __init__(
        self,
        *,
        t: float = 0.1,
        l2=1e-3,
        fit_intercept=True,
        tol=1e-10,
        max_iter=100,
        method="auto",
        backend="auto",
        n_jobs=None,
        solver=None,
    ):
        super().__init__(
            l2=l2,
            fit_intercept=fit_intercept,
            tol=tol,
            max_iter=max_iter,
            method=method,
            backend=backend,
            n_jobs=n_jobs,
            solver=solver,
        )
        self.t = t

    @property
    def loss(self) -> Loss:
        if isinstance(self.t, bool) or not isinstance(self.t, (int, float, np.floating)):
            raise TypeError(f"t must be a number > 0, got {self.t!r}")
        return Loss("smooth_hinge", self.t)


class PoissonRegression(RegressorContract, LinearModelBase):
    """Poisson regression with log link, ``loss = exp(eta) - y * eta`` for counts y >= 0."""

    _loss_name = "poisson"
    _positive_targets = True

    def __init__(
        self,
        *,
        l2=1e-3,
        fit_intercept=True,
        tol=1e-10,
        max_iter=100,
        method="auto",
        backend="auto",
        n_jobs=None,
        solver=None,
    ):
        super().__init__(
            l2=l2,
            fit_intercept=fit_intercept,
            tol=tol,
            max_iter=max_iter,
            method=method,
            backend=backend,
            n_jobs=n_jobs,
            solver=solver,
        )

    def predict(self, X):
        """The predicted mean, exp(eta)."""
        return np.exp(self.decision_function(X))

    def score(self, X, y, sample_weight=None) -> float:
        """The fraction of Poisson deviance explained, D^2, of ``predict(X)`` (as scikit-learn's
        ``PoissonRegressor.score``).

        ``D^2 = 1 - sum_i s_i dev(y_i, mu_i) / sum_i s_i dev(y_i, ybar)`` with the unit deviance
        ``dev(y, mu) = 2 (y log(y / mu) - y + mu)`` and ``ybar`` the weighted mean count: R^2
        with the deviance in place of the squared error. The deviance is the loss the model
        minimises (twice ``exp(eta) - y eta`` plus a term free of eta), so D^2 ranks fits as the
        objective does, where R^2 would be dominated by the largest counts (whose variance is
        largest).

        Parameters
        ----------
        X : array (m, d), sparse matrix or data frame, as ``predict`` takes it
        y : array or Series (m,) of counts >= 0
        sample_weight : array or Series (m,), non-negative, or None

        Returns
        -------
        d2 : float <= 1 (1 for exact predictions, 0 for predicting the mean count)
        """
        X, y, s = score_inputs(self, X, y, sample_weight, encode=True)
        return poisson_d2_score(y, self.predict(X), s)


class MultinomialLogisticRegression(ClassifierContract, LinearModelBase):
    """Softmax (multinomial logistic) regression over K >= 2 classes, as scikit-learn's
    multinomial ``LogisticRegression`` parameterises it: one weight vector and intercept per class,
    ``loss = logsumexp(eta) - eta[y]`` with ``eta = W x + b`` (K,), L2 on the weights, intercepts
    unpenalised.

    ``theta_`` has ``K (d + 1)`` entries, class by class (``coef_[k]`` then ``intercept_[k]``);
    ``coef_`` is (K, d), ``intercept_`` (K,). The softmax is unchanged when the same vector is
    added to every class, so the fit returns the solution whose unpenalised coordinates sum to
    zero over the classes (scikit-learn's; see :mod:`fastinfluence.multinomial`, which also says
    how the Hessian is made definite). Labels: any K distinct values (numbers, strings,
    booleans), kept in ``classes_`` sorted as ``numpy.unique`` (and scikit-learn) sort them.
    """

    _loss_name = "multinomial"
    n_classes_: int  # K, set with classes_ when the labels are first encoded (fit)

    @property
    def n_blocks(self) -> int:
        if not hasattr(self, "n_classes_"):
            raise not_fitted_error(f"this {type(self).__name__} has no classes yet; call fit(X, y) first")
        return self.n_classes_

    def __init__(
        self,
        *,
        l2=1e-3,
        fit_intercept=True,
        tol=1e-10,
        max_iter=100,
        method="auto",
        backend="auto",
        n_jobs=None,
        solver=None,
    ):
        super().__init__(
            l2=l2,
            fit_intercept=fit_intercept,
            tol=tol,
            max_iter=max_iter,
            method=method,
            backend=backend,
            n_jobs=n_jobs,
            solver=solver,
        )

    def encode_targets(self, y, n, name="y", *, fitting=False):
        """Labels as class codes 0 .. K-1 (float64), by their position in ``classes_``."""
        raw = V.check_1d(y, n, name)
        names = _class_names(raw, name)
        if names is not None:
            values, labels = raw, names
        elif raw.dtype == bool:
            values, labels = raw, np.unique(raw)
        else:
            values = V.check_vector(raw, n, name)
            labels = np.unique(raw if raw.dtype.kind in "iu" else values)
            if fitting:
                _check_discrete(set(labels.tolist()), name, type(self).__name__)
        if fitting:
            if labels.size < 2:
                raise InvalidArgumentValueError(
                    name,
                    f"must hold at least two classes for {type(self).__name__}; found one class only, "
                    f"{labels.tolist()}",
                )
            self.classes_ = labels
            self.n_classes_ = int(labels.size)
        classes = self.classes_
        fitted_on_names = _class_names(classes, "classes_") is not None
        if fitted_on_names != (names is not None):
            shown = np.unique(raw).tolist()[:5]
            raise InvalidArgumentValueError(
                name, f"holds labels {shown} that are not among the model's classes {classes.tolist()}"
            )
        known = classes if fitted_on_names or classes.dtype == bool else classes.astype(np.float64)
        comparable = (
            values if fitted_on_names or classes.dtype == bool else np.asarray(values, dtype=np.float64)
        )
        codes = np.searchsorted(known, comparable)
        codes = np.minimum(codes, known.size - 1)
        bad = known[codes] != comparable
        if np.any(bad):
            shown = np.unique(np.asarray(raw)[bad]).tolist()[:5]
            raise InvalidArgumentValueError(
                name, f"holds labels {shown} that are not among the model's classes {classes.tolist()}"
            )
        return codes.astype(np.float64)

    def check_minimiser(self, result, X, y, s):
        """Not converged when a class has no (weighted) rows (:meth:`empty_class_reason`)."""
        weights = np.ones(X.shape[0]) if s is None else np.asarray(s, dtype=np.float64)
        totals = np.bincount(np.asarray(y, dtype=np.int64), weights=weights, minlength=self.n_classes_)
        reason = self.empty_class_reason(totals)
        return result if reason is None else dict(result, converged=False, message=reason)

    def empty_class_reason(self, totals) -> str | None:
        """Why R has no minimiser when a class's total weight (``totals``, (K,)) is 0, else None:
        with an intercept (or l2 = 0) that class's probability then goes to 0 without bound. (With
        l2 = 0, separable classes have no minimiser either; that is not detected here: the fit
        then ends on its stopping rule with very large weights.)"""
        empty = np.flatnonzero(~(np.asarray(totals) > 0))
        if not empty.size or not (self.fit_intercept or self.l2 == 0):
            return None
        names = [self.classes_[k].item() for k in empty[:5]]
        return (
            f"class(es) {names} have no training rows with positive weight, so the objective has no "
            "minimiser (their probability goes to 0 without bound)"
        )

    def set_fit_result(self, result, n_features):
        super().set_fit_result(result, n_features)
        blocks = self.theta_.reshape(self.n_classes_, -1)
        self.coef_ = blocks[:, :n_features].copy()
        self.intercept_ = blocks[:, n_features].copy() if self.fit_intercept else np.zeros(self.n_classes_)

    def class_scores(self, X):
        """The linear predictors eta = X W^T + b, shape (n, K): columns follow ``classes_`` (the
        sum-to-zero parameterisation's, see :mod:`fastinfluence.multinomial`)."""
        self._check_fitted()
        X = self.validate_features(X, "X")[0]
        blocks = self.theta_.reshape(self.n_classes_, -1)
        return np.column_stack([V.linear_predictor(X, row, bool(self.fit_intercept)) for row in blocks])

    def decision_function(self, X):
        """The linear predictors eta = X W^T + b, shape (n, K): columns follow ``classes_``
        (:meth:`class_scores`). With two classes, as scikit-learn's binary classifiers, the one
        decision value ``eta[:, 1] - eta[:, 0]`` of ``classes_[1]`` against ``classes_[0]``,
        shape (n,): positive where ``classes_[1]`` is predicted."""
        eta = self.class_scores(X)
        return eta[:, 1] - eta[:, 0] if self.n_classes_ == 2 else eta

    def predict_proba(self, X):
        """Class probabilities, shape (n, K): columns follow ``classes_``."""
        from scipy.special import softmax

        return softmax(self.class_scores(X), axis=1)

    def predict(self, X):
        """The most probable class, in the labels the model was fitted with."""
        scores = self.class_scores(X)
        return self.classes_[np.argmax(scores, axis=1)]
