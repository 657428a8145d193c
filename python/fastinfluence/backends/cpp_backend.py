"""The compiled backend: thin adapters from the common backend signature to
:mod:`fastinfluence._core` (losses become (kind, t); absent weights an empty
array; ``n_jobs`` the thread count, 0 for every core).

The Problem-based passes call the core's ``multinomial_*`` passes for the multinomial loss
(class codes as float64, ``n_classes`` passed on)."""

from __future__ import annotations

import numpy as np

from .. import _core  # typed by _core.pyi
from ..losses import CURVATURE_INSTEAD
from . import numpy_backend as _reference
from .contract import CGResult, Evaluation, LissaResult, RowDerivatives, RowEvaluation, TopKScores

_NO_WEIGHTS = np.empty(0)

CholeskySolver = _core.CholeskySolver


def _weights(weights):
    return _NO_WEIGHTS if weights is None else weights


def loss_terms(loss, y, eta):
    loss.require_per_entry("loss_terms")
    return _core.loss_terms(loss.kind, loss.t, y, eta)


def loss_difference(loss, y, eta, delta):
    loss.require_per_entry("loss_difference")
    y, eta, delta = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (y, eta, delta)))
    shape = y.shape
    flat = [np.ascontiguousarray(a).reshape(-1) for a in (y, eta, delta)]
    return _core.loss_difference(loss.kind, loss.t, *flat).reshape(shape)


def row_derivatives(problem, theta, n_jobs=0):
    p = problem
    if p.loss.multiclass:
        return RowDerivatives(
            *_core.multinomial_row_derivatives(p.X, p.y, theta, p.fit_intercept, p.n_classes, n_jobs)
        )
    return RowDerivatives(
        *_core.row_derivatives(p.loss.kind, p.loss.t, p.X, p.y, theta, p.fit_intercept, n_jobs)
    )


def _evaluate(problem, theta, want_gradient, want_hessian, n_jobs, row_derivatives):
    p = problem
    if p.loss.multiclass:
        return _core.multinomial_evaluate(
            p.X,
            p.y,
            _weights(p.weights),
            theta,
            p.fit_intercept,
            p.l2,
            p.n_classes,
            want_gradient,
            want_hessian,
            n_jobs,
            row_derivatives,
        )
    return _core.evaluate(
        p.loss.kind,
        p.loss.t,
        p.X,
        p.y,
        _weights(p.weights),
        theta,
        p.fit_intercept,
        p.l2,
        want_gradient,
        want_hessian,
        n_jobs,
        row_derivatives,
    )


def evaluate(problem, theta, want_gradient, want_hessian, n_jobs=0):
    return Evaluation(*_evaluate(problem, theta, want_gradient, want_hessian, n_jobs, False)[:3])


def evaluate_with_row_derivatives(problem, theta, want_hessian, n_jobs=0):
    return RowEvaluation(*_evaluate(problem, theta, True, want_hessian, n_jobs, True))


def hessian_vector_product(problem, theta, V, n_jobs=0):
    p = problem
    V = np.asarray(V, dtype=np.float64)
    vec = V.ndim == 1
    if p.loss.multiclass:
        HV = _core.multinomial_hessian_vector_product(
            p.X,
            p.y,
            _weights(p.weights),
            theta,
            p.fit_intercept,
            p.l2,
            p.n_classes,
            V[:, None] if vec else V,
            n_jobs,
        )
        return HV[:, 0] if vec else HV
    HV = _core.hessian_vector_product(
        p.loss.kind,
        p.loss.t,
        p.X,
        p.y,
        _weights(p.weights),
        theta,
        p.fit_intercept,
        p.l2,
        V[:, None] if vec else V,
        n_jobs,
    )
    return HV[:, 0] if vec else HV


def curvature_weights(problem, theta, n_jobs=0):
    problem.loss.require_per_entry("curvature_weights", CURVATURE_INSTEAD)
    p = problem
    return _core.curvature_weights(
        p.loss.kind, p.loss.t, p.X, p.y, _weights(p.weights), theta, p.fit_intercept, n_jobs
    )


def regularised_gram_product(X, fit_intercept, c, l2, V, n_jobs=0):
    return _core.regularised_gram_product(X, fit_intercept, c, l2, V, n_jobs)


def gram_diagonal(X, fit_intercept, c, n_jobs=0):
    return _core.gram_diagonal(X, fit_intercept, c, n_jobs)


def cg_solve(X, fit_intercept, c, l2, damping, B, tol, max_iter, x0=None, precondition=True, n_jobs=0):
    return CGResult(
        *_core.cg_solve(X, fit_intercept, c, l2, damping, B, tol, max_iter, x0, precondition, n_jobs)
    )


def lissa_solve(X, fit_intercept, c, l2, damping, B, scale, depth, repeats, batch_size, seed):
    return LissaResult(
        *_core.lissa_solve(X, fit_intercept, c, l2, damping, B, scale, depth, repeats, batch_size, seed)
    )


def max_abs(a):
    return _core.max_abs(a)


def _screening_mode(screening):
    return -1 if screening is None else int(bool(screening))


def top_k_scores(X, fit_intercept, row_scale, M, k, n_jobs=0, screening=None):
    return TopKScores(
        *_core.top_k_scores(X, fit_intercept, row_scale, M, k, n_jobs, _screening_mode(screening))
    )


def scaled_row_products(X, fit_intercept, row_scale, M, out=None, n_jobs=0):
    return _core.scaled_row_products(X, fit_intercept, row_scale, M, out, n_jobs)


def row_quadratic_forms(X, fit_intercept, A, n_jobs=0):
    return _core.row_quadratic_forms(X, fit_intercept, A, n_jobs)


def loo_loss_change(loss, X, fit_intercept, row_scale, U, y_test, eta_test, out=None, n_jobs=0):
    loss.require_per_entry("loo_loss_change")
    return _core.loo_loss_change(
        loss.kind, loss.t, X, fit_intercept, row_scale, U, y_test, eta_test, out, n_jobs
    )


def perturbation_loss(X, fit_intercept, d1, d2, V, w, n_jobs=0):
    return _core.perturbation_loss(X, fit_intercept, d1, d2, V, w, n_jobs)


def multinomial_gram_product(X, fit_intercept, c, P, l2, V, n_jobs=0):
    return _core.multinomial_gram_product(X, fit_intercept, c, P, l2, V, n_jobs)


def multinomial_gram_diagonal(X, fit_intercept, c, P, n_jobs=0):
    return _core.multinomial_gram_diagonal(X, fit_intercept, c, P, n_jobs)


def multinomial_scaled_row_products(X, fit_intercept, R, M, out=None, n_jobs=0):
    return _core.multinomial_scaled_row_products(X, fit_intercept, R, M, out, n_jobs)


def multinomial_top_k_scores(X, fit_intercept, R, M, k, n_jobs=0, screening=None):
    return TopKScores(
        *_core.multinomial_top_k_scores(X, fit_intercept, R, M, k, n_jobs, _screening_mode(screening))
    )


def multinomial_row_quadratic_forms(X, fit_intercept, A, n_classes, n_jobs=0):
    return _core.multinomial_row_quadratic_forms(X, fit_intercept, A, n_classes, n_jobs)


def multinomial_loo_loss_change(X, fit_intercept, R, U, y_test, eta_test, out=None, n_jobs=0):
    return _core.multinomial_loo_loss_change(X, fit_intercept, R, U, y_test, eta_test, out, n_jobs)


def multinomial_loss_difference(y, eta, delta):
    # elementwise on a few (m, K) test points (the scoring passes use the fused loo change)
    return _reference.multinomial_loss_difference(y, eta, delta)
