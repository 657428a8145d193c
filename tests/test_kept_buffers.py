"""The compiled kernels keep their scratch memory from call to call.

A reduction's per-chunk partials (parallel.hpp, KeptPartials) and the dense products'
packing buffers (products.hpp) used to be allocated afresh on every call, from memory that
glibc had just handed back to the system, so every call faulted them in again page by page:
1,400 page faults per Hessian at n = 20,000, d = 100, and the Hessian of W2
(benchmarks/run.py) took 2.5 times as long as it does now. A repeated call on data of the
same shape now faults in (almost) nothing; the counts are the kernel's minor page faults, so
the test is about memory, not time.
"""

from __future__ import annotations

import resource
import sys

import numpy as np
import pytest

from fastinfluence import kernels as K

pytestmark = [
    pytest.mark.requires_core,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts glibc's page faults on Linux"),
]

# A call's results (a p x p Hessian of 80 KiB here, the gradient) are fresh NumPy arrays and
# may fault in a few dozen pages; the per-chunk partials alone were 64 x 80 KiB.
MAX_FAULTS = 200


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _faults_of_a_repeated_call(call) -> int:
    """The fewest page faults of three calls after two that size the kept buffers."""
    for _ in range(2):
        call()
    counts = []
    for _ in range(3):
        before = _minor_faults()
        call()
        counts.append(_minor_faults() - before)
    return min(counts)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, d = 20_000, 100
    X = rng.standard_normal((n, d))
    return X, rng.random(n), rng.integers(0, 5, n).astype(np.float64), rng.standard_normal(d + 1) * 0.1


@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_binary_hessian_keeps_its_partials(data, layout, n_jobs):
    X, y, _, theta = data
    X = np.asarray(X, order=layout)
    y = (y > 0.5).astype(np.float64)
    faults = _faults_of_a_repeated_call(lambda: K.evaluate("logistic", X, y, theta, l2=1e-3, n_jobs=n_jobs))
    assert faults < MAX_FAULTS


def test_multinomial_hessian_keeps_its_partials(data):
    X, _, classes, _ = data
    X = X[:, :40]
    theta = np.zeros(5 * 41)
    faults = _faults_of_a_repeated_call(
        lambda: K.evaluate("multinomial", X, classes, theta, l2=1e-3, n_classes=5, n_jobs=2)
    )
    assert faults < MAX_FAULTS
