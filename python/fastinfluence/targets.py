"""What an influence is measured on: the targets of ``Influence.on``, ``loo_on`` and ``top_k_on``.

A target is a differentiable function ``f(theta)`` with one value per *column*
(a test point, a coefficient, the mean over a validation set). Upweighting
training point ``z_i`` by ``eps`` moves it by ``eps * I_up,f(z_i)`` with

    I_up,f(z_i) = -grad f(theta)^T H^{-1} g_i,

so every target is scored by the same product as the test loss, with its own
gradients in place of the test-loss gradients (one solve ``H^{-1} grad f`` for all
training points). Signs are the same for every target: a *negative* value means
upweighting z_i *lowers* f (for a loss: z_i helps); removing z_i changes f by
about ``-(s_i/n) I_up,f(z_i)``, or, by one Newton step, by
``f(theta + delta_newton_i) - f(theta)`` (exact for the linear targets).

=====================================  ================================================  =========
target                                 f(theta), per column                              columns
=====================================  ================================================  =========
``TestLoss(X_test, y_test)``           ``loss(y_j, eta_j)`` (what ``Influence.loss``      m
                                       scores)
``MeanTestLoss(X_test, y_test)``       ``(1/m) sum_j loss(y_j, eta_j)``: one solve,       1
                                       "which rows hurt validation most"
``DecisionFunction(X_test)``           ``eta_j = xa_j . theta`` (no labels needed)        m
``PredictProba(X_test, class_=None)``  the predicted probability of ``class_``            m
                                       (default: the positive class ``classes_[1]``)
``Predict(X_test)``                    the predicted mean: ``eta_j`` (least squares),     m
                                       ``exp(eta_j)`` (Poisson)
``Coefficient(*names)``                the named coefficients (feature names of a         one each
                                       frame, positions, or ``"intercept"``)
``LinearFunctional(c, names=None)``    ``c^T theta`` for each column of c (p,) / (p, q)  q
=====================================  ================================================  =========

``eta_j = xa_j . theta`` with ``xa_j = (x_j, 1)`` when the model has an intercept.
``TestLoss`` and ``MeanTestLoss`` need labels, in the model's encoding (class names
for a classifier fitted on them); the others need none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import _validation as V
from . import multinomial as MN
from .exceptions import InvalidArgumentValueError
from .losses import Loss

__all__ = [
    "Coefficient",
    "DecisionFunction",
    "LinearFunctional",
    "MeanTestLoss",
    "Predict",
    "PredictProba",
    "Target",
    "TestLoss",
]

#: Kinds of one-step (Newton) change a bound target knows how to compute from
#: delta_eta = xa_test_j . delta_i: the test loss, its mean, a mean function of eta
#: (probability, predicted mean), or none needed (linear in theta: G^T delta).
NEWTON_KINDS = ("loss", "mean_loss", "mean_function", "linear")


@dataclass(frozen=True)
class Fit:
    """What a target needs of the fitted model: given by :class:`fastinfluence.Influence`."""

    model: Any
    theta: np.ndarray
    kernels: Any  # the backend module
    n_jobs: int
    test_inputs: Callable  # (X_test, y_test) -> the same on this machine (Dask: computed)

    @property
    def fit_intercept(self) -> bool:
        return bool(self.model.fit_intercept)


@dataclass(frozen=True)
class Bound:
    """A target evaluated at the fitted theta.

    ``gradients`` (p, c): grad f of each of the c columns; ``labels``: the columns'
    labels (None: 0 .. c-1) and ``axis`` the name of that axis in labelled results.
    The one-step change needs the kind (:data:`NEWTON_KINDS`) and, for the kinds
    that depend on eta, the test points (``X``, ``eta``, labels ``y``).
    """

    gradients: np.ndarray
    labels: Any
    axis: str | tuple  # a MultiIndex's names for (test_row, class) columns
    kind: str
    loss: Loss
    X: Any = None
    eta: np.ndarray | None = None
    y: np.ndarray | None = None
    mean: str = "identity"  # the mean function of eta: "identity", "logistic", "exp", "softmax"
    sign: np.ndarray | float = 1.0  # per column: -1 for a binary model's negative class, 1 - sigma(eta)
    n_classes: int = 1  # K of a multinomial model: eta (m, K), delta_eta (k, m K)
    class_codes: np.ndarray | None = None  # each column's class (its position in classes_), multinomial

    @property
    def n_columns(self) -> int:
        return self.gradients.shape[1]

    def value(self, kernels, theta: np.ndarray, fit_intercept: bool) -> np.ndarray:
        """f(theta) of each column (c,), for the models with one linear predictor per row."""
        if self.kind == "linear":
            return self.gradients.T @ theta
        if self.n_classes > 1:
            raise NotImplementedError("the value of a multinomial model's target (its changes are available)")
        eta = V.linear_predictor(self.X, theta, fit_intercept)
        if self.kind in ("loss", "mean_loss"):
            values = np.asarray(kernels.loss_terms(self.loss, self.y, eta)[0], dtype=np.float64)
            return values if self.kind == "loss" else values.mean(keepdims=True)
        sign = np.broadcast_to(np.asarray(self.sign, dtype=np.float64), eta.shape)
        if self.mean == "logistic":  # sigma(eta), or 1 - sigma(eta) = sigma(-eta) for the other class
            return _expit(sign * eta)
        return np.exp(eta) if self.mean == "exp" else eta

    def _loss_difference(self, kernels, y, delta_eta):
        assert self.eta is not None  # the kinds that need a loss difference carry the test points
        if self.n_classes > 1:
            m = self.eta.shape[0]
            return kernels.multinomial_loss_difference(y, self.eta, delta_eta.reshape(-1, m, self.n_classes))
        return kernels.loss_difference(self.loss, y, self.eta, delta_eta)

    def change_from_eta(self, kernels, delta_eta: np.ndarray) -> np.ndarray:
        """f(theta + delta) - f(theta), (k, c), from delta_eta = xa_test_j . delta_i (k, m), or
        (k, m K) for a multinomial model (test point j's classes in columns j K .. j K + K - 1),
        computed without cancellation for small steps."""
        if self.kind == "loss":
            return self._loss_difference(kernels, self.y, delta_eta)
        if self.kind == "mean_loss":
            return self._loss_difference(kernels, self.y, delta_eta).mean(axis=1, keepdims=True)
        assert self.kind == "mean_function"
        assert self.eta is not None
        if self.mean == "softmax":
            assert self.class_codes is not None
            # P_c(eta + d) / P_c(eta) = exp(d_c - log sum_l P_l e^{d_l}) = exp(-(loss change for label c))
            change = self._loss_difference(kernels, self.class_codes, delta_eta)
            P_c = MN.softmax(self.eta)[np.arange(self.eta.shape[0]), self.class_codes]
            return P_c * np.expm1(-change)
        return self.sign * mean_difference(self.mean, self.eta, delta_eta)

    def change(self, kernels, delta: np.ndarray, fit_intercept: bool) -> np.ndarray:
        """f(theta + delta_r) - f(theta) for each row delta_r of ``delta`` (k, p): (k, c)."""
        delta = np.atleast_2d(np.asarray(delta, dtype=np.float64))
        if self.kind == "linear":
            return delta @ self.gradients
        k = delta.shape[0]
        if k == 0:
            return np.empty((0, self.n_columns))
        # xa_test_j . delta_r for every r and class at once: (m, k K) -> (k, m K)
        blocks = delta.reshape(k * self.n_classes, -1).T
        etas = np.asarray(self.X @ blocks[: self.X.shape[1]], dtype=np.float64)
        if fit_intercept:
            etas = etas + blocks[-1]
        delta_eta = etas.reshape(-1, k, self.n_classes).transpose(1, 0, 2).reshape(k, -1)
        return self.change_from_eta(kernels, delta_eta)


def mean_difference(mean: str, eta: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """mu(eta + delta) - mu(eta) for the mean function ``mean``, accurate for small delta:
    sigma(a + d) - sigma(a) = sigma(a + d) sigma(-a) (1 - e^-d); exp(a + d) - exp(a) = e^a expm1(d)."""
    if mean == "identity":
        return np.asarray(delta, dtype=np.float64)
    if mean == "exp":
        return np.exp(eta) * np.expm1(delta)
    assert mean == "logistic"
    return _expit(eta + delta) * _expit(-eta) * -np.expm1(-delta)


def _expit(x):
    # 1 / (1 + exp(-x)) without overflow for large negative x
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _mean_derivative(mean: str, eta: np.ndarray) -> np.ndarray:
    if mean == "identity":
        return np.ones_like(eta)
    if mean == "exp":
        with np.errstate(over="ignore"):  # overflow is reported by the caller, naming X_test
            return np.exp(eta)
    p = _expit(eta)
    return p * (1.0 - p)


class Target:
    """Base class of the targets: ``bind`` evaluates the target at a fitted model."""

    def bind(self, fit: Fit) -> Bound:
        raise NotImplementedError


def _n_classes(fit: Fit) -> int:
    return fit.model.n_blocks


def _test_points(fit: Fit, X_test, y_test=None):
    """(X_test, encoded y_test | None, eta, loss' | None, test row labels | None) after validation."""
    X_test, y_test = fit.test_inputs(X_test, y_test)
    model = fit.model
    X_test, test_rows, _ = model.validate_features(X_test, "X_test")
    if y_test is None:
        return (
            X_test,
            None,
            MN.linear_predictors(X_test, fit.theta, _n_classes(fit), fit.fit_intercept),
            None,
            test_rows,
        )
    y_test = model.encode_targets(y_test, X_test.shape[0], "y_test")
    eta, _, d1, _ = fit.kernels.row_derivatives(model.problem(X_test, y_test, None), fit.theta, fit.n_jobs)
    check_finite_gradients(eta, d1, model.loss.name)
    return X_test, y_test, eta, d1, test_rows


#: exp(eta) overflows double precision above this eta (log of the largest double, ~709.78).
_EXP_OVERFLOW = float(np.log(np.finfo(np.float64).max))


def check_finite_gradients(eta, d1, loss_name, argument="X_test", what="test-loss"):
    """ValueError naming ``argument`` when its rows have a non-finite eta or derivative of the target
    in eta (loss', the mean function's derivative): their influence would be NaN."""
    bad = ~(np.isfinite(eta) & np.isfinite(d1))
    if bad.ndim == 2:  # multinomial: K entries per test point
        bad, eta = bad.any(axis=1), eta.max(axis=1)
    if not np.any(bad):
        return
    rows = np.flatnonzero(bad)
    cause = ""
    if loss_name == "poisson":
        cause = f"; exp(eta) overflows double precision above eta = {_EXP_OVERFLOW:.2f}"
    raise InvalidArgumentValueError(
        argument,
        f"has {rows.size} row(s) (the first at position {rows[0]}) whose {what} gradient is not "
        f"finite: their linear predictor eta reaches {np.max(eta[rows]):.6g} under the {loss_name} "
        f"loss{cause}. Their influence would be NaN; drop those rows (or check the scale of X_test "
        "against the training data)",
    )


@dataclass(frozen=True, eq=False)
class TestLoss(Target):
    """The loss at each test point: ``Influence.on(TestLoss(X_test, y_test))`` is ``Influence.loss``."""

    __test__ = False  # not a pytest test class
    X_test: Any
    y_test: Any

    def bind(self, fit):
        X, y, eta, d1, rows = _test_points(fit, self.X_test, self.y_test)
        G = MN.row_gradients(X, d1, fit.fit_intercept)
        return Bound(G, rows, "test_row", "loss", fit.model.loss, X, eta, y, n_classes=_n_classes(fit))


@dataclass(frozen=True, eq=False)
class MeanTestLoss(Target):
    """The mean loss over a test (validation) set: one column, from one solve."""

    X_test: Any
    y_test: Any

    def bind(self, fit):
        X, y, eta, d1, _ = _test_points(fit, self.X_test, self.y_test)
        m = X.shape[0]
        if d1.ndim == 2:  # multinomial: the mean of r_j kron xa_j, class block by class block
            blocks = [
                np.asarray(X.T @ d1[:, k], dtype=np.float64).reshape(-1) / m for k in range(d1.shape[1])
            ]
            sums = d1.sum(axis=0) / m
            g = np.concatenate([np.append(b, t) if fit.fit_intercept else b for b, t in zip(blocks, sums)])
        else:
            top = np.asarray(X.T @ d1, dtype=np.float64).reshape(-1) / m
            g = np.append(top, d1.sum() / m) if fit.fit_intercept else top
        K = _n_classes(fit)
        return Bound(
            g[:, None], ["mean_test_loss"], "target", "mean_loss", fit.model.loss, X, eta, y, n_classes=K
        )


def _class_codes(fit: Fit, class_, m: int, default) -> np.ndarray:
    """The class code (position in ``classes_``) of each of m test points, from one label or m."""
    classes = np.asarray(fit.model.classes_)
    if class_ is None:
        return default()
    labels = np.asarray(class_)
    if labels.ndim == 0:
        labels = np.full(m, labels.item(), dtype=object)
    elif labels.shape != (m,):
        raise InvalidArgumentValueError(
            "class_",
            f"must be one of the model's classes or one per test point ({m}); got shape {labels.shape}",
        )
    known = classes.tolist()
    codes = np.empty(m, dtype=np.int64)
    for j, label in enumerate(labels.tolist()):
        if label not in known:
            raise InvalidArgumentValueError(
                "class_", f"must be one of the model's classes {known}, got {label!r}"
            )
        codes[j] = known.index(label)
    return codes


@dataclass(frozen=True, eq=False)
class DecisionFunction(Target):
    """The linear predictor ``eta_j = xa_j . theta`` at each test point (``decision_function``).

    Multinomial: ``eta_jc`` of class ``class_`` (one label, or one per test point); with
    ``class_=None`` every class, in columns ``j K + c`` (labelled by a ``(test_row, class)``
    MultiIndex). One class's decision value is not invariant to the gauge: it is that of the
    sum-to-zero parameterisation (:mod:`fastinfluence.multinomial`)."""

    X_test: Any
    class_: Any = None

    def bind(self, fit):
        X, _, eta, _, rows = _test_points(fit, self.X_test)
        K, m = _n_classes(fit), X.shape[0]
        ones = np.ones(m)
        check_finite_gradients(
            eta, ones[:, None] if K > 1 else ones, fit.model.loss.name, what="decision-value"
        )
        if K == 1 and self.class_ is not None:
            raise InvalidArgumentValueError(
                "class_", "is for multinomial models (a binary model has one eta)"
            )
        G = MN.eta_gradients(X, K, fit.fit_intercept)
        codes = None if K == 1 else _class_codes(fit, self.class_, m, lambda: None)
        if K == 1 or codes is not None:
            columns = slice(None) if codes is None else np.arange(m) * K + codes
            return Bound(G[:, columns], rows, "test_row", "linear", fit.model.loss, X, eta, n_classes=K)
        # every class: columns (test_row, class)
        test = range(m) if rows is None else rows
        pairs = [(j, c) for j in test for c in np.asarray(fit.model.classes_).tolist()]
        return Bound(G, pairs, ("test_row", "class"), "linear", fit.model.loss, X, eta, n_classes=K)


def _mean_target(fit: Fit, X_test, mean: str, sign=1.0) -> Bound:
    """A mean function of eta; ``sign`` (a number, or a function of m giving one per test point)."""
    X, _, eta, _, rows = _test_points(fit, X_test)
    sign = sign(X.shape[0]) if callable(sign) else np.full(X.shape[0], float(sign))
    derivative = _mean_derivative(mean, eta)
    check_finite_gradients(eta, derivative, fit.model.loss.name, what="prediction")
    G = V.augmented_transpose(X, sign * derivative, fit.fit_intercept)
    return Bound(G, rows, "test_row", "mean_function", fit.model.loss, X, eta, mean=mean, sign=sign)


@dataclass(frozen=True, eq=False)
class PredictProba(Target):
    """The predicted probability of ``class_`` at each test point (a column of ``predict_proba``).

    ``class_``: one of the model's ``classes_``, or one per test point. None: the positive class
    ``classes_[1]`` of a binary model; a multinomial model's predicted class at each test point.
    For :class:`fastinfluence.LogisticRegression` and
    :class:`fastinfluence.MultinomialLogisticRegression` (the smooth hinge defines no probability).
    """

    X_test: Any
    class_: Any = None

    def bind(self, fit):
        model = fit.model
        if model.loss.name == "multinomial":
            return self._bind_multinomial(fit)
        if model.loss.name != "logistic":
            raise InvalidArgumentValueError(
                "target",
                f"PredictProba needs a probabilistic classifier (LogisticRegression); "
                f"{type(model).__name__} defines no probability. Use DecisionFunction",
            )

        # P(classes_[1]) = sigma(eta), P(classes_[0]) = 1 - sigma(eta): a sign per test point
        def sign(m):
            return 2.0 * _class_codes(fit, self.class_, m, lambda: np.ones(m, dtype=np.int64)) - 1.0

        return _mean_target(fit, self.X_test, "logistic", sign)

    def _bind_multinomial(self, fit):
        X, _, eta, _, rows = _test_points(fit, self.X_test)
        K, m = _n_classes(fit), X.shape[0]
        codes = _class_codes(fit, self.class_, m, lambda: np.argmax(eta, axis=1))
        P = MN.softmax(eta)
        P_c = P[np.arange(m), codes]
        # d P_c / d eta = P_c (e_c - P)
        scale = -P_c[:, None] * P
        scale[np.arange(m), codes] += P_c
        check_finite_gradients(eta, scale, fit.model.loss.name, what="probability")
        G = MN.rows_kron_transpose(X, scale, fit.fit_intercept)
        return Bound(
            G,
            rows,
            "test_row",
            "mean_function",
            fit.model.loss,
            X,
            eta,
            mean="softmax",
            n_classes=K,
            class_codes=codes,
        )


@dataclass(frozen=True, eq=False)
class Predict(Target):
    """The predicted mean at each test point (``predict`` of a regression model):
    ``eta`` for least squares, ``exp(eta)`` for Poisson."""

    X_test: Any

    def bind(self, fit):
        name = fit.model.loss.name
        if name == "squared":
            return _mean_target(fit, self.X_test, "identity", 1.0)
        if name == "poisson":
            return _mean_target(fit, self.X_test, "exp", 1.0)
        raise InvalidArgumentValueError(
            "target",
            f"Predict is for regression models; {type(fit.model).__name__} predicts a class label, "
            "which has no derivative: use PredictProba or DecisionFunction",
        )


def _parameter_names(fit: Fit) -> list:
    """The names of theta's entries: the feature names (positions for arrays), then ``"intercept"``;
    for a multinomial model ``(class, name)`` pairs, class by class."""
    model = fit.model
    names = getattr(model, "feature_names_in_", None)
    d = int(model.n_features_in_)
    names = list(range(d)) if names is None else list(np.asarray(names).tolist())
    names += ["intercept"] if fit.fit_intercept else []
    if _n_classes(fit) == 1:
        return names
    return [(c, name) for c in np.asarray(model.classes_).tolist() for name in names]


@dataclass(frozen=True, eq=False, init=False)
class Coefficient(Target):
    """The fitted coefficients named: feature names (a model fitted on a frame), positions
    0 .. p-1 in theta, or ``"intercept"``; for a multinomial model ``(class, name)`` pairs
    (the sum-to-zero parameterisation's). One column each."""

    names: tuple

    def __init__(self, *names):
        if not names:
            raise InvalidArgumentValueError("names", "must name at least one coefficient")
        object.__setattr__(self, "names", names)

    def bind(self, fit):
        known = _parameter_names(fit)
        p = len(known)
        positions = []
        for name in self.names:
            if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
                if not 0 <= int(name) < p:
                    raise InvalidArgumentValueError(
                        "names", f"position {name} is outside theta's 0 .. {p - 1}"
                    )
                positions.append(int(name))
            elif isinstance(name, (str, tuple)) and name in known:
                positions.append(known.index(name))
            else:
                raise InvalidArgumentValueError(
                    "names", f"{name!r} is not a coefficient of the model; it has {known[:10]}"
                )
        G = np.zeros((p, len(positions)))
        G[positions, np.arange(len(positions))] = 1.0
        axis = "target" if _n_classes(fit) == 1 else ("class", "feature")
        return Bound(G, [known[i] for i in positions], axis, "linear", fit.model.loss)


@dataclass(frozen=True, eq=False)
class LinearFunctional(Target):
    """``c^T theta`` for each column of ``c`` ((p,) or (p, q)), as a contrast or a sum of
    coefficients; ``names`` label the q columns."""

    c: Any
    names: Any = None

    def bind(self, fit):
        p = fit.theta.shape[0]
        c = np.asarray(self.c, dtype=np.float64)
        c = c[:, None] if c.ndim == 1 else c
        if c.ndim != 2 or c.shape[0] != p or c.shape[1] == 0:
            raise InvalidArgumentValueError(
                "c", f"must have shape ({p},) or ({p}, q) (one entry per parameter); got {np.shape(self.c)}"
            )
        if not np.all(np.isfinite(c)):
            raise InvalidArgumentValueError("c", "must be finite (it has NaN or infinite entries)")
        if isinstance(self.names, str):
            raise InvalidArgumentValueError("names", "must be a sequence of names, one per column of c")
        names = None if self.names is None else list(self.names)
        if names is not None and len(names) != c.shape[1]:
            raise InvalidArgumentValueError("names", f"must have {c.shape[1]} entries, one per column of c")
        return Bound(c.copy(), names, "target", "linear", fit.model.loss)
