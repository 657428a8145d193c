"""Interchangeable implementations of the kernels.

``cpp`` (the compiled core, :mod:`fastinfluence._core`) and ``numpy`` (a
pure-NumPy reference written for clarity) expose the same functions with the
same names and arguments:

- ``loss_terms(loss, y, eta) -> (value, d1, d2)``
- ``loss_difference(loss, y, eta, delta) -> value(y, eta + delta) - value(y, eta)``
- ``row_derivatives(loss, X, y, theta, fit_intercept, n_jobs) -> (eta, value, d1, d2)``
- ``evaluate(loss, X, y, weights, theta, fit_intercept, l2, want_gradient, want_hessian, n_jobs)
  -> (value, gradient | None, hessian | None)``
- ``hessian_vector_product(loss, X, y, weights, theta, fit_intercept, l2, V, n_jobs) -> H V``
- ``curvature_weights``, ``regularised_gram_product``, ``gram_diagonal``, ``cg_solve``, ``lissa_solve``,
  ``top_k_scores``
- ``CholeskySolver(H, damping)`` with ``ok``, ``reciprocal_condition``, ``solve(B)``, ``inverse_factor()``
- ``scaled_row_products(X, fit_intercept, row_scale, M, out, n_jobs)``
- ``row_quadratic_forms(X, fit_intercept, A, n_jobs)``
- ``loo_loss_change(loss, X, fit_intercept, row_scale, U, y_test, eta_test, out, n_jobs)``
- ``perturbation_loss(X, fit_intercept, d1, d2, V, w, n_jobs)``

The fit (Newton's method) is written once over these kernels, in
:mod:`fastinfluence.fitting`. Arguments are already validated (see :mod:`fastinfluence.kernels` for the
public, validated entry points and their documentation).
"""

from __future__ import annotations

from types import ModuleType

BACKENDS = ("cpp", "numpy")


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name`` ("cpp" or "numpy")."""
    if name == "cpp":
        from . import cpp_backend

        return cpp_backend
    if name == "numpy":
        from . import numpy_backend

        return numpy_backend
    raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
