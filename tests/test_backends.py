"""The kernel contract: both backends implement every function of ``Backend`` with its parameters."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import make_data

from fastinfluence.backends import get_backend
from fastinfluence.backends.contract import Backend, Problem, RowDerivatives, RowEvaluation, TopKScores
from fastinfluence.losses import Loss

MEMBERS = [
    name for name, value in vars(Backend).items() if inspect.isfunction(value) and not name.startswith("_")
]


def test_the_contract_lists_every_kernel():
    assert len(MEMBERS) == 24  # max_abs joined for the input checks
    assert {name for name in MEMBERS if name.startswith("multinomial_")} == {
        "multinomial_loss_difference",
        "multinomial_gram_product",
        "multinomial_gram_diagonal",
        "multinomial_scaled_row_products",
        "multinomial_top_k_scores",
        "multinomial_row_quadratic_forms",
        "multinomial_loo_loss_change",
    }
    assert "CholeskySolver" in Backend.__annotations__


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("name", MEMBERS)
def test_backend_implements_the_contract(backend, name):
    module = get_backend(backend)
    expected = list(inspect.signature(getattr(Backend, name)).parameters)[1:]  # without self
    assert list(inspect.signature(getattr(module, name)).parameters)[: len(expected)] == expected
    assert callable(module.CholeskySolver)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_results_are_named(backend):
    X, y, s = make_data("logistic", n=30, d=3, seed=1)
    problem = Problem(Loss("logistic"), X, y, s, True, 0.1)
    kernels = get_backend(backend)
    theta = np.full(4, 0.1)
    rows = kernels.row_derivatives(problem, theta)
    assert isinstance(rows, RowDerivatives)
    assert rows.eta.shape == (30,)
    at = kernels.evaluate_with_row_derivatives(problem, theta, True)
    assert isinstance(at, RowEvaluation)
    assert at.hessian.shape == (4, 4)
    np.testing.assert_allclose(at.d2, rows.d2, rtol=1e-12)
    top = kernels.top_k_scores(X, True, -rows.d1, np.ones((4, 2)), 3)
    assert isinstance(top, TopKScores)
    assert top.helpful_rows.shape == (2, 3)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_multinomial_results_are_named(backend):
    X, _, s = make_data("logistic", n=30, d=3, seed=1)
    y = np.arange(30) % 3.0
    problem = Problem(Loss("multinomial"), X, y, s, True, 0.1, n_classes=3)
    kernels = get_backend(backend)
    theta = np.linspace(-0.3, 0.3, 12)
    rows = kernels.row_derivatives(problem, theta)
    assert isinstance(rows, RowDerivatives)
    assert rows.eta.shape == rows.d1.shape == rows.d2.shape == (30, 3)
    at = kernels.evaluate_with_row_derivatives(problem, theta, True)
    assert isinstance(at, RowEvaluation)
    assert at.hessian.shape == (12, 12)
    assert at.d2.shape == (30, 3)
    top = kernels.multinomial_top_k_scores(X, True, -rows.d1, np.ones((12, 2)), 3)
    assert isinstance(top, TopKScores)
    assert top.helpful_rows.shape == (2, 3)
