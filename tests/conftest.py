"""Shared problems and helpers for the fastinfluence test suite.

Data are small and seeded. Labels returned by :func:`make_data` are in the
*internal* encoding of the loss (the one :mod:`fastinfluence.kernels` takes);
:func:`make_model` builds the estimator for a loss, whose ``fit`` accepts those
labels too ({0, 1} for logistic, {-1, +1} for the smooth hinge).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

import fastinfluence as fi
from fastinfluence import _native
from fastinfluence.losses import LOSS_NAMES, Loss


def _core_loads() -> bool:
    try:
        from fastinfluence import _core  # noqa: F401 - loading it is the question
    except ImportError:
        return False
    return True


#: Whether this installation's compiled core loads.
HAVE_CORE = _core_loads()
#: An installation built without it (no compiler, no Python headers: ``_build_config.COMPILED``):
#: there the tests that need the core (backend="cpp", marked ``requires_core``) are skipped, as in
#: .ci/run's pure-Python step. A compiled build whose core fails to load skips nothing: its tests fail.
PURE_BUILD = _native.built()[0] is False
if PURE_BUILD:  # the processes the tests start (the CLI, the examples) say it once each, too
    os.environ["PYTHONWARNINGS"] = "ignore:fastinfluence was installed without its compiled core"


def pytest_collection_modifyitems(config, items):
    if not PURE_BUILD:
        return
    skip = pytest.mark.skip(reason=f"no compiled core in this installation ({_native.pure_reason()})")
    for item in items:
        callspec = getattr(item, "callspec", None)
        values = callspec.params.values() if callspec is not None else ()
        needs_core = any(isinstance(v, (str, tuple)) and v in ("cpp", ("cpp", "numpy")) for v in values)
        if needs_core or item.get_closest_marker("requires_core") is not None:
            item.add_marker(skip)


#: Temperature of the smooth hinge in the shared problems: small enough to be
#: hinge-like, large enough that central differences stay accurate.
SMOOTH_HINGE_T = 0.25

#: l2 of the fitted models in the shared problems (well conditioned Hessians).
L2 = 1e-2


def loss_of(name: str) -> Loss:
    return Loss(name, SMOOTH_HINGE_T if name == "smooth_hinge" else 1.0)


def make_labels(name: str, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels drawn from the model each loss belongs to, in the internal encoding (float64)."""
    if name == "squared":
        return eta + 0.5 * rng.standard_normal(eta.shape)
    if name == "logistic":
        return (rng.random(eta.shape) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    if name == "smooth_hinge":
        return np.where(rng.random(eta.shape) < 1.0 / (1.0 + np.exp(-2.0 * eta)), 1.0, -1.0)
    if name == "poisson":
        return rng.poisson(np.exp(eta)).astype(np.float64)
    raise ValueError(name)


def make_data(name, n=60, d=4, *, seed=0, dtype=np.float64, order="C", weighted=False):
    """(X, y, sample_weight) for loss ``name``; X has the requested dtype and memory order.

    The true parameters are modest so that eta stays in [-3, 3] or so (Poisson
    rates stay finite and every loss is far from saturation).
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + 0.3
    w_true = rng.standard_normal(d) / np.sqrt(d)
    eta = X @ w_true + 0.2
    y = make_labels(name, eta, rng)
    X = np.array(X, dtype=dtype, order=order)
    s = rng.uniform(0.5, 2.0, n) if weighted else None
    return X, y, s


def make_model(name, *, l2=L2, fit_intercept=True, **kwargs):
    """An unfitted estimator minimising the loss ``name``."""
    if name == "squared":
        return fi.LinearRegression(l2=l2, fit_intercept=fit_intercept, **kwargs)
    if name == "logistic":
        return fi.LogisticRegression(l2=l2, fit_intercept=fit_intercept, **kwargs)
    if name == "smooth_hinge":
        return fi.SmoothHingeClassifier(t=SMOOTH_HINGE_T, l2=l2, fit_intercept=fit_intercept, **kwargs)
    if name == "poisson":
        return fi.PoissonRegression(l2=l2, fit_intercept=fit_intercept, **kwargs)
    raise ValueError(name)


def random_theta(d, fit_intercept, seed=1):
    """A parameter vector away from any optimum (so gradients are not small)."""
    rng = np.random.default_rng(seed)
    return 0.4 * rng.standard_normal(d + (1 if fit_intercept else 0))


def assert_close(actual, desired, rtol, *, atol_fraction=1e-12, err_msg=""):
    """assert_allclose with an absolute floor of ``atol_fraction * max|desired|``.

    Entries that cancel to nearly zero carry the rounding of the whole sum,
    not of their own size; the floor allows for that and nothing more.
    """
    desired = np.asarray(desired, dtype=np.float64)
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol_fraction * scale, err_msg=err_msg)


def assert_same_ranking(indices, expected, scores, rtol, *, err_msg=""):
    """Rows ranked by one computation against the ranking of another, ``(m, k)`` each.

    ``scores`` is the ``(n, m)`` reference matrix. Two computations of the same
    scores differ in the last bits, so rows whose scores are that close may
    change places: the indices must then pick scores equal to ``rtol`` at every
    rank, which is the same as equal indices wherever the scores are apart.
    """
    indices, expected = np.asarray(indices), np.asarray(expected)
    assert indices.shape == expected.shape, err_msg
    for row in indices:
        assert np.unique(row).size == row.size, f"{err_msg}: a row is ranked twice"
    scores = np.asarray(scores, dtype=np.float64).T
    assert_close(
        np.take_along_axis(scores, indices, 1), np.take_along_axis(scores, expected, 1), rtol, err_msg=err_msg
    )


# ---------------------------------------------------------------------------
# The parametrised problem: loss x fit_intercept x dtype x memory order x weights
# ---------------------------------------------------------------------------


@dataclass
class Problem:
    """One small problem: data, a parameter vector away from the optimum, and the options."""

    name: str
    loss: Loss
    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    theta: np.ndarray
    fit_intercept: bool
    l2: float

    @property
    def kwargs(self):
        """Keyword arguments shared by the fastinfluence.kernels functions."""
        return dict(weights=self.weights, l2=self.l2, fit_intercept=self.fit_intercept)

    @property
    def p(self):
        return self.theta.shape[0]


@pytest.fixture(params=LOSS_NAMES)
def loss_name(request):
    return request.param


@pytest.fixture(params=[True, False], ids=["intercept", "no_intercept"])
def fit_intercept(request):
    return request.param


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


@pytest.fixture(params=["C", "F"], ids=["C_order", "F_order"])
def order(request):
    return request.param


@pytest.fixture(params=[False, True], ids=["unweighted", "weighted"])
def weighted(request):
    return request.param


@pytest.fixture(params=[("cpp", "numpy")], ids=["cpp_vs_numpy"])
def backend_pair(request):
    """(backend under test, reference backend)."""
    return request.param


@pytest.fixture
def problem(loss_name, fit_intercept, dtype, order, weighted):
    X, y, s = make_data(loss_name, n=60, d=4, seed=7, dtype=dtype, order=order, weighted=weighted)
    theta = random_theta(X.shape[1], fit_intercept)
    return Problem(loss_name, loss_of(loss_name), X, y, s, theta, fit_intercept, L2)
