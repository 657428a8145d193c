"""Long kernels stop on a signal, the exception is the signal handler's own, and an interrupted
``loss(out=...)`` says which rows it wrote."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from conftest import make_data, make_model

import fastinfluence as fi

try:  # the compiled core's own interrupt handling (skipped in a build without it; CI counts skips)
    from fastinfluence import _core
    from fastinfluence.backends import cpp_backend
except ImportError as exc:
    pytest.skip(f"no compiled core in this installation ({exc})", allow_module_level=True)

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")


class Timeout(Exception):
    """What a user's SIGALRM handler raises."""


@pytest.fixture
def alarm_after():
    previous = signal.getsignal(signal.SIGALRM)

    def raise_timeout(signum, frame):
        raise Timeout

    def arm(seconds):
        signal.signal(signal.SIGALRM, raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_lissa_stops_on_a_signal_and_raises_the_handlers_exception(alarm_after):
    # Regression: LiSSA ignored SIGINT for over 60 s (its recursion never looked for signals), and
    # every other kernel turned any handler's exception into KeyboardInterrupt.
    X, y, _ = make_data("logistic", n=2000, d=20, seed=1)
    model = make_model("logistic").fit(X, y)
    inf = fi.Influence(
        model, X, y, solver="lissa", solver_options={"depth": 10**7, "scale": 10.0, "batch_size": 64}
    )
    alarm_after(0.3)
    start = time.perf_counter()
    with pytest.raises(Timeout):
        inf.params(indices=[0])
    assert time.perf_counter() - start < 10.0


def test_row_kernels_raise_the_handlers_exception_not_keyboard_interrupt(alarm_after):
    X, y, _ = make_data("squared", n=400_000, d=50, seed=2)
    model = make_model("squared").fit(X, y)
    inf = fi.Influence(model, X, y)
    V = inf.solver_.solve(np.ones((inf.n_params_, 2000)))  # one top-k pass over X: ~2 s here
    # the kernel stops within a row chunk of the signal: ~0.1 s in a release build; the
    # sanitizers' instrumented -O1 build runs each chunk ~10x slower (its full pass: ~20 s)
    bound = 8.0 if _core.build_info()["sanitizers"] else 1.5
    alarm_after(0.1)
    start = time.perf_counter()
    with pytest.raises(Timeout):
        fi.kernels.top_k_scores(X, -inf.loss_derivative_, V, 5)
    assert time.perf_counter() - start < bound  # stopped between row chunks, not at the end


def test_interrupted_loss_into_out_leaves_unwritten_rows_nan(monkeypatch):
    # The contract of loss(out=...): out is set to NaN first, so after an interruption the rows
    # still NaN are those not written (the kernel writes row blocks in place, in any order).
    X, y, _ = make_data("logistic", n=300, d=4, seed=3)
    model = make_model("logistic").fit(X, y)
    inf = fi.Influence(model, X, y)
    out = np.zeros((300, 5))
    real = cpp_backend.scaled_row_products

    def interrupted_after_half(X_rows, fit_intercept, row_scale, M, out=None, n_jobs=0):
        top = real(X_rows[:150], fit_intercept, row_scale[:150], M, None, n_jobs)
        out[:150] = top
        raise KeyboardInterrupt

    monkeypatch.setattr(cpp_backend, "scaled_row_products", interrupted_after_half)
    with pytest.raises(KeyboardInterrupt):
        inf.loss(X[:5], y[:5], out=out)
    monkeypatch.undo()
    written = ~np.isnan(out).any(axis=1)
    np.testing.assert_array_equal(written, np.arange(300) < 150)
    np.testing.assert_allclose(out[:150], inf.loss(X[:5], y[:5])[:150], rtol=1e-12)


@pytest.mark.parametrize(
    ("kernel", "n", "d"),
    # n and d for a full pass of ~2 s here, in row chunks of ~0.1 s (the Hessian's chunks are as
    # many as 32 MiB of (p, p) partial sums allow: smaller p, more chunks)
    [("gram_product", 200_000, 50), ("evaluate", 400_000, 30)],
)
def test_multinomial_kernels_stop_on_a_signal(alarm_after, kernel, n, d):
    rng = np.random.default_rng(4)
    K = 10
    X = rng.standard_normal((n, d))
    y = rng.integers(0, K, n).astype(np.float64)
    theta = 0.1 * rng.standard_normal(K * (d + 1))
    P = np.full((n, K), 1.0 / K)
    V = rng.standard_normal((K * (d + 1), 100))
    calls = {
        "gram_product": lambda: fi.kernels.multinomial_gram_product(X, np.full(n, 1.0 / n), P, V),
        "evaluate": lambda: fi.kernels.hessian("multinomial", X, y, theta, n_classes=K),
    }
    bound = 8.0 if _core.build_info()["sanitizers"] else 1.5
    alarm_after(0.1)
    start = time.perf_counter()
    with pytest.raises(Timeout):
        calls[kernel]()
    assert time.perf_counter() - start < bound  # stopped between row chunks, not at the end
