"""The four losses: derivatives against finite differences, numerical stability
at extreme eta, and loss_difference against a high-precision reference."""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
import pytest

import fastinfluence as fi
from fastinfluence.losses import Loss

BACKENDS = ("cpp", "numpy")

# (loss name, t, labels in the internal encoding): every loss, the smooth hinge
# at three temperatures.
LOSS_CASES = [
    ("squared", 1.0, (-1.3, 0.0, 2.2)),
    ("logistic", 1.0, (0.0, 1.0)),
    ("smooth_hinge", 1.0, (-1.0, 1.0)),
    ("smooth_hinge", 0.25, (-1.0, 1.0)),
    ("smooth_hinge", 0.1, (-1.0, 1.0)),
    ("poisson", 1.0, (0.0, 1.0, 3.0, 7.0)),
]
LOSS_IDS = [f"{name}-t{t:g}" if name == "smooth_hinge" else name for name, t, _ in LOSS_CASES]


def grid(labels, etas):
    """Every (label, eta) pair as two flat float64 arrays."""
    y, eta = np.meshgrid(np.asarray(labels, dtype=float), np.asarray(etas, dtype=float), indexing="ij")
    return y.ravel(), eta.ravel()


def naive_value(name, t, y, eta):
    """The textbook formulas, fine at moderate eta."""
    if name == "squared":
        return 0.5 * (eta - y) ** 2
    if name == "logistic":
        return np.log1p(np.exp(eta)) - y * eta
    if name == "smooth_hinge":
        return t * np.log1p(np.exp((1.0 - y * eta) / t))
    return np.exp(eta) - y * eta


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "t", "labels"), LOSS_CASES, ids=LOSS_IDS)
def test_loss_value_matches_textbook_formula(name, t, labels, backend):
    y, eta = grid(labels, np.linspace(-3.0, 3.0, 25))
    value, _, _ = fi.kernels.loss_terms(
        name, y, eta, t=t if name == "smooth_hinge" else None, backend=backend
    )
    np.testing.assert_allclose(value, naive_value(name, t, y, eta), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "t", "labels"), LOSS_CASES, ids=LOSS_IDS)
def test_loss_derivatives_match_central_differences(name, t, labels, backend):
    # d1 ~ (value(eta + h) - value(eta - h)) / 2h and d2 ~ the same of d1;
    # truncation error h^2/6 |f'''| <= 1e-8 even at t = 0.1, rounding 1e-10.
    loss = Loss(name, t)
    y, eta = grid(labels, np.linspace(-3.0, 3.0, 37) + 0.013)
    h = 1e-5

    def terms(e):
        return fi.kernels.loss_terms(loss, y, e, backend=backend)

    value, d1, d2 = terms(eta)
    value_plus, d1_plus, _ = terms(eta + h)
    value_minus, d1_minus, _ = terms(eta - h)
    np.testing.assert_allclose(d1, (value_plus - value_minus) / (2 * h), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(d2, (d1_plus - d1_minus) / (2 * h), rtol=1e-6, atol=1e-7)
    # second differences of the value too, so d2 is tied to the value itself
    second = (value_plus - 2 * value + value_minus) / h**2
    np.testing.assert_allclose(d2, second, rtol=1e-3, atol=1e-3)
    assert np.all(d2 >= 0), "every loss is convex in eta"


@pytest.mark.parametrize(("name", "t", "labels"), LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.requires_core
def test_loss_terms_backends_agree(name, t, labels):
    y, eta = grid(labels, np.concatenate([np.linspace(-40, 40, 81), [-700.0, 700.0]]))
    cpp = fi.kernels.loss_terms(Loss(name, t), y, eta, backend="cpp")
    ref = fi.kernels.loss_terms(Loss(name, t), y, eta, backend="numpy")
    for got, want, what in zip(cpp, ref, ("value", "d1", "d2")):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, err_msg=what)


# ---------------------------------------------------------------------------
# Stability at extreme eta
# ---------------------------------------------------------------------------

EXTREME_ETAS = (-1e4, -1e3, -745.0, -710.0, -709.0, -50.0, -1e-3, 0.0, 1e-3, 50.0, 709.0, 710.0, 1e3, 1e4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "t", "labels"),
    [
        ("squared", 1.0, (-2.0, 0.0, 3.0)),
        ("logistic", 1.0, (0.0, 1.0)),
        ("smooth_hinge", 1.0, (-1.0, 1.0)),
        ("smooth_hinge", 1e-3, (-1.0, 1.0)),
    ],
    ids=["squared", "logistic", "smooth_hinge-t1", "smooth_hinge-t0.001"],
)
def test_loss_terms_finite_at_extreme_eta(name, t, labels, backend):
    y, eta = grid(labels, EXTREME_ETAS)
    value, d1, d2 = fi.kernels.loss_terms(Loss(name, t), y, eta, backend=backend)
    for arr, what in ((value, "value"), (d1, "d1"), (d2, "d2")):
        assert np.all(np.isfinite(arr)), f"{what} not finite at eta={eta[~np.isfinite(arr)]}"
    assert np.all(value >= 0)
    assert np.all(d2 >= 0)
    if name == "logistic":
        # log(1 + e^eta) - y eta -> max(eta, 0) - y eta, exactly in double at |eta| >= 50
        far = np.abs(eta) >= 50
        np.testing.assert_allclose(value[far], (np.maximum(eta, 0) - y * eta)[far], rtol=1e-15, atol=1e-20)
        np.testing.assert_allclose(d1[far], ((eta > 0) - y)[far], atol=1e-20)
        assert np.all(np.abs(d1) <= 1)
        assert np.all(d2 <= 0.25)
    if name == "smooth_hinge":
        # t softplus((1 - y eta)/t) -> the hinge max(0, 1 - y eta); slope -y inside the margin
        hinge = np.maximum(0.0, 1.0 - y * eta)
        far = np.abs(1.0 - y * eta) >= 50 * t
        np.testing.assert_allclose(value[far], hinge[far], rtol=1e-14, atol=1e-20)
        np.testing.assert_allclose(d1[far], np.where(1.0 - y * eta > 0, -y, 0.0)[far], atol=1e-20)
    if name == "squared":
        # the compiled 0.5 * r * r against NumPy's 0.5 * r**2, another computation: to a few ulp
        np.testing.assert_allclose(value, 0.5 * (eta - y) ** 2, rtol=1e-15, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_poisson_overflows_to_inf_never_nan(backend):
    # exp(eta) exceeds the double range above eta = log(DBL_MAX) ~ 709.78: the value
    # and both derivatives are +inf there (also for y = 0, where y * eta is 0), never NaN.
    y, eta = grid((0.0, 1.0, 5.0), EXTREME_ETAS)
    value, d1, d2 = fi.kernels.loss_terms("poisson", y, eta, backend=backend)
    for arr, what in ((value, "value"), (d1, "d1"), (d2, "d2")):
        assert not np.any(np.isnan(arr)), f"{what} is NaN at eta={eta[np.isnan(arr)]}"
        assert np.all(np.isfinite(arr[eta <= 709.0])), what
        assert np.all(arr[eta >= 710.0] == np.inf), what
    low = eta <= -1e3  # exp underflows to exactly 0
    np.testing.assert_array_equal(value[low], -y[low] * eta[low])
    np.testing.assert_array_equal(d1[low], -y[low])
    np.testing.assert_array_equal(d2[low], 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "labels"), [("logistic", (0.0, 1.0)), ("smooth_hinge", (-1.0, 1.0))])
def test_loss_difference_finite_at_extreme_eta(name, labels, backend):
    y, eta = grid(labels, EXTREME_ETAS)
    for delta in (1e-10, -0.5, 3.0):
        diff = fi.kernels.loss_difference(name, y, eta, np.full_like(eta, delta), backend=backend)
        assert np.all(np.isfinite(diff)), (delta, eta[~np.isfinite(diff)])
        # |slope| <= 1 for both losses (t = 1), so |difference| <= |delta|
        assert np.all(np.abs(diff) <= abs(delta) * (1 + 1e-12))


# ---------------------------------------------------------------------------
# loss_difference: value(y, eta + delta) - value(y, eta)
# ---------------------------------------------------------------------------


def high_precision_difference(name, t, y, eta, delta):
    """The exact difference at the given doubles, in 60-digit decimal arithmetic."""

    def value(Y, E, T):
        if name == "squared":
            return (E - Y) ** 2 / 2
        if name == "logistic":
            return (1 + E.exp()).ln() - Y * E
        if name == "smooth_hinge":
            return T * (1 + ((1 - Y * E) / T).exp()).ln()
        return E.exp() - Y * E

    out = np.empty(len(y))
    with localcontext() as ctx:
        ctx.prec = 60
        for k, (yk, ek, dk) in enumerate(zip(y, eta, delta)):
            Y, E, D, T = Decimal(float(yk)), Decimal(float(ek)), Decimal(float(dk)), Decimal(float(t))
            out[k] = float(value(Y, E + D, T) - value(Y, E, T))
    return out


# Labels and etas chosen so that loss' is not near 0 (the difference is then
# not itself the result of cancellation, and a relative error is meaningful).
DIFFERENCE_CASES = [
    ("squared", 1.0, (-1.3, 2.2)),
    ("logistic", 1.0, (0.0, 1.0)),
    ("smooth_hinge", 1.0, (-1.0, 1.0)),
    ("smooth_hinge", 0.1, (-1.0, 1.0)),
    ("poisson", 1.0, (0.0, 7.0)),
]
DIFFERENCE_IDS = [f"{n}-t{t:g}" if n == "smooth_hinge" else n for n, t, _ in DIFFERENCE_CASES]
DIFFERENCE_ETAS = (-2.5, -0.7, 0.3, 1.1, 2.9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "t", "labels"), DIFFERENCE_CASES, ids=DIFFERENCE_IDS)
def test_loss_difference_accurate_for_tiny_delta(name, t, labels, backend):
    y, eta = grid(labels, DIFFERENCE_ETAS)
    loss = Loss(name, t)
    worst_direct = 0.0
    for delta_value in (1e-15, -3e-13, 1e-11, -2e-9, 1e-7, 3e-5, -1e-3):
        delta = np.full_like(eta, delta_value)
        exact = high_precision_difference(name, t, y, eta, delta)
        got = fi.kernels.loss_difference(loss, y, eta, delta, backend=backend)
        np.testing.assert_allclose(got, exact, rtol=1e-12, atol=0, err_msg=f"delta={delta_value}")
        value = fi.kernels.loss_terms(loss, y, eta, backend=backend)[0]
        value_shifted = fi.kernels.loss_terms(loss, y, eta + delta, backend=backend)[0]
        direct = value_shifted - value
        worst_direct = max(worst_direct, float(np.max(np.abs(direct - exact) / np.abs(exact))))
    # The naive difference is far off here, so the check above has teeth.
    assert worst_direct > 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "t", "labels"), DIFFERENCE_CASES, ids=DIFFERENCE_IDS)
def test_loss_difference_matches_direct_difference_for_moderate_delta(name, t, labels, backend):
    y, eta = grid(labels, DIFFERENCE_ETAS)
    loss = Loss(name, t)
    for delta_value in (-3.0, -1.0, -0.99, -0.2, 0.05, 0.7, 1.0, 1.01, 2.5):
        delta = np.full_like(eta, delta_value)
        got = fi.kernels.loss_difference(loss, y, eta, delta, backend=backend)
        value = fi.kernels.loss_terms(loss, y, eta, backend=backend)[0]
        value_shifted = fi.kernels.loss_terms(loss, y, eta + delta, backend=backend)[0]
        # the direct difference carries the rounding of the values themselves
        atol = 1e-14 * (np.abs(value) + np.abs(value_shifted))
        np.testing.assert_allclose(got, value_shifted - value, rtol=1e-10, atol=atol.max())
        exact = high_precision_difference(name, t, y, eta, delta)
        np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-15, err_msg=f"delta={delta_value}")


@pytest.mark.parametrize(("name", "t", "labels"), DIFFERENCE_CASES, ids=DIFFERENCE_IDS)
@pytest.mark.requires_core
def test_loss_difference_backends_agree(name, t, labels):
    rng = np.random.default_rng(3)
    y, eta = grid(labels, rng.uniform(-4, 4, 30))
    delta = rng.standard_normal(eta.shape) * 10.0 ** rng.uniform(-12, 0.5, eta.shape)
    cpp = fi.kernels.loss_difference(Loss(name, t), y, eta, delta, backend="cpp")
    ref = fi.kernels.loss_difference(Loss(name, t), y, eta, delta, backend="numpy")
    np.testing.assert_allclose(cpp, ref, rtol=1e-12, atol=0)


@pytest.mark.requires_core
def test_loss_difference_is_zero_for_zero_delta():
    for name, t, labels in DIFFERENCE_CASES:
        y, eta = grid(labels, DIFFERENCE_ETAS)
        for backend in BACKENDS:
            diff = fi.kernels.loss_difference(Loss(name, t), y, eta, np.zeros_like(eta), backend=backend)
            np.testing.assert_array_equal(diff, 0.0)
