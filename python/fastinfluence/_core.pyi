"""Typed stubs of fastinfluence._core, the private compiled module (cpp/bindings/).

Written from the bindings: one entry per ``m.def`` in module.cpp and register_*.cpp,
in their argument order. Arrays of float64 are converted (one copy) when they
come in another dtype or layout; ``X`` is a 2-D float32/float64 NumPy array in C
or F order or a canonical SciPy CSR matrix (float32/float64 data, int32/int64
indices), read without a copy. ``kind`` is the loss (0 squared, 1 logistic,
2 smooth hinge, 3 Poisson) and ``t`` the smooth hinge's temperature;
``weights`` empty means unit sample weights; ``n_threads`` <= 0 means every core.
p is the number of parameters, X's columns plus one with ``fit_intercept``; for the
multinomial functions (register_multinomial.cpp) p = K q with q that count, theta is
Theta (K, q) row-major, ``y`` class codes 0..K-1 as float64, and per-row arrays
(``P``, ``R``, ``eta_test``) are (n, K).
"""

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

class _CSR(Protocol):
    """What the bindings read from a SciPy CSR matrix or array."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    @property
    def shape(self) -> tuple[int, int]: ...

_Matrix = np.ndarray | _CSR
_Floats = npt.ArrayLike  # converted to contiguous float64
_F64 = npt.NDArray[np.float64]

def build_info() -> dict[str, Any]:
    """eigen_version, openmp, max_threads, simd, instruction_sets, build_type, assertions,
    sanitizers, layouts."""

# register_losses.cpp
def loss_terms(kind: int, t: float, y: _Floats, eta: _Floats) -> tuple[_F64, _F64, _F64]:
    """(value, loss', loss'') per element, each (n,)."""

def loss_difference(kind: int, t: float, y: _Floats, eta: _Floats, delta: _Floats) -> _F64:
    """loss(y, eta + delta) - loss(y, eta), (n,)."""

# register_kernels.cpp
def row_derivatives(
    kind: int, t: float, X: _Matrix, y: _Floats, theta: _Floats, fit_intercept: bool, n_threads: int
) -> tuple[_F64, _F64, _F64, _F64]:
    """(eta, loss, loss', loss'') per row, each (n,), unweighted."""

def evaluate(
    kind: int,
    t: float,
    X: _Matrix,
    y: _Floats,
    weights: _Floats,
    theta: _Floats,
    fit_intercept: bool,
    l2: float,
    want_gradient: bool,
    want_hessian: bool,
    n_threads: int,
    want_rows: bool = False,
) -> tuple[float, _F64 | None, _F64 | None, _F64 | None, _F64 | None]:
    """(R, gradient (p,) | None, Hessian (p, p) | None, loss' (n,) | None, loss'' (n,) | None);
    the per-row derivatives only with want_rows."""

def hessian_vector_product(
    kind: int,
    t: float,
    X: _Matrix,
    y: _Floats,
    weights: _Floats,
    theta: _Floats,
    fit_intercept: bool,
    l2: float,
    V: _Floats,
    n_threads: int,
) -> _F64:
    """H V for V (p, k): (p, k)."""

# register_scoring.cpp
def scaled_row_products(
    X: _Matrix,
    fit_intercept: bool,
    row_scale: _Floats,
    M: _Floats,
    out: _F64 | None = None,
    n_threads: int = 0,
) -> _F64:
    """row_scale_i * (xa_i . M_j), (n, m); written into ``out`` (C-contiguous float64) when given."""

def row_quadratic_forms(X: _Matrix, fit_intercept: bool, A: _Floats, n_threads: int = 0) -> _F64:
    """||A xa_i||^2 for A (p, p), (n,)."""

def loo_loss_change(
    kind: int,
    t: float,
    X: _Matrix,
    fit_intercept: bool,
    row_scale: _Floats,
    U: _Floats,
    y_test: _Floats,
    eta_test: _Floats,
    out: _F64 | None = None,
    n_threads: int = 0,
) -> _F64:
    """loss(y_j, eta_j + row_scale_i xa_i . U_j) - loss(y_j, eta_j), (n, m)."""

def perturbation_loss(
    X: _Matrix, fit_intercept: bool, d1: _Floats, d2: _Floats, V: _Floats, w: _Floats, n_threads: int = 0
) -> _F64:
    """-(loss''_i (xa_i . V_j) w + loss'_i V_j[:d]), (n, m, d)."""

def max_abs(a: _Floats, n_threads: int = 0) -> float:
    """max |a| of a contiguous 1-D float64 or float32 array; NaN if it holds a NaN."""

def top_k_scores(
    X: _Matrix,
    fit_intercept: bool,
    row_scale: _Floats,
    M: _Floats,
    k: int,
    n_threads: int = 0,
    screening: int = -1,
) -> tuple[npt.NDArray[np.int64], _F64, npt.NDArray[np.int64], _F64]:
    """(helpful rows, helpful scores, harmful rows, harmful scores), each (m, min(k, n)), best first;
    screening: -1 where it pays, 1 wherever the data allow it, 0 never (the float32 screening pass)."""

# register_solvers.cpp
def curvature_weights(
    kind: int,
    t: float,
    X: _Matrix,
    y: _Floats,
    weights: _Floats,
    theta: _Floats,
    fit_intercept: bool,
    n_threads: int = 0,
) -> _F64:
    """c_i = s_i loss''_i / n, (n,)."""

def regularised_gram_product(
    X: _Matrix, fit_intercept: bool, c: _Floats, l2: float, V: _Floats, n_threads: int = 0
) -> _F64:
    """(Xa^T diag(c) Xa + l2 P) V for V (p, k): (p, k)."""

def gram_diagonal(X: _Matrix, fit_intercept: bool, c: _Floats, n_threads: int = 0) -> _F64:
    """diag(Xa^T diag(c) Xa), (p,)."""

def cg_solve(
    X: _Matrix,
    fit_intercept: bool,
    c: _Floats,
    l2: float,
    damping: float,
    B: _Floats,
    tol: float,
    max_iter: int,
    x0: _Floats | None = None,
    precondition: bool = True,
    n_threads: int = 0,
) -> tuple[_F64, npt.NDArray[np.int32], _F64]:
    """(solution (p, m), iterations (m,), relative residual (m,)) of (H + damping I) X = B."""

def lissa_solve(
    X: _Matrix,
    fit_intercept: bool,
    c: _Floats,
    l2: float,
    damping: float,
    B: _Floats,
    scale: float,
    depth: int,
    repeats: int,
    batch_size: int,
    seed: int,
) -> tuple[_F64, npt.NDArray[np.bool_]]:
    """(solution (p, m), NaN columns where diverged; diverged (m,))."""

# register_multinomial.cpp
def multinomial_row_derivatives(
    X: _Matrix, y: _Floats, theta: _Floats, fit_intercept: bool, n_classes: int, n_threads: int = 0
) -> tuple[_F64, _F64, _F64, _F64]:
    """(eta (n, K), loss (n,), P - Y (n, K), P (n, K)), unweighted."""

def multinomial_evaluate(
    X: _Matrix,
    y: _Floats,
    weights: _Floats,
    theta: _Floats,
    fit_intercept: bool,
    l2: float,
    n_classes: int,
    want_gradient: bool,
    want_hessian: bool,
    n_threads: int,
    want_rows: bool = False,
) -> tuple[float, _F64 | None, _F64 | None, _F64 | None, _F64 | None]:
    """(R, gradient (p,) | None, Hessian (p, p) | None, P - Y (n, K) | None, P (n, K) | None);
    the per-row arrays only with want_rows."""

def multinomial_hessian_vector_product(
    X: _Matrix,
    y: _Floats,
    weights: _Floats,
    theta: _Floats,
    fit_intercept: bool,
    l2: float,
    n_classes: int,
    V: _Floats,
    n_threads: int = 0,
) -> _F64:
    """H V for V (p, k): (p, k)."""

def multinomial_gram_product(
    X: _Matrix, fit_intercept: bool, c: _Floats, P: _Floats, l2: float, V: _Floats, n_threads: int = 0
) -> _F64:
    """(sum_i c_i Q_i kron xa_i xa_i^T + l2 (I_K kron diag(1, .., 1, 0))) V for V (p, m): (p, m);
    Q_i = diag(P_i) - P_i P_i^T."""

def multinomial_gram_diagonal(
    X: _Matrix, fit_intercept: bool, c: _Floats, P: _Floats, n_threads: int = 0
) -> _F64:
    """Entry k q + j: sum_i c_i P_ik (1 - P_ik) xa_ij^2, (p,)."""

def multinomial_scaled_row_products(
    X: _Matrix, fit_intercept: bool, R: _Floats, M: _Floats, out: _F64 | None = None, n_threads: int = 0
) -> _F64:
    """sum_k R_ik xa_i . M[k q:(k + 1) q, j], (n, m); written into ``out`` (C-contiguous float64)
    when given."""

def multinomial_top_k_scores(
    X: _Matrix, fit_intercept: bool, R: _Floats, M: _Floats, k: int, n_threads: int = 0, screening: int = -1
) -> tuple[npt.NDArray[np.int64], _F64, npt.NDArray[np.int64], _F64]:
    """top_k_scores of the scores of multinomial_scaled_row_products, each (m, min(k, n))."""

def multinomial_row_quadratic_forms(
    X: _Matrix, fit_intercept: bool, A: _Floats, n_classes: int, n_threads: int = 0
) -> _F64:
    """(A_k xa_i) . (A_l xa_i) for A (r, p), A_k = A[:, k q:(k + 1) q]: (n, K, K)."""

def multinomial_loo_loss_change(
    X: _Matrix,
    fit_intercept: bool,
    R: _Floats,
    U: _Floats,
    y_test: _Floats,
    eta_test: _Floats,
    out: _F64 | None = None,
    n_threads: int = 0,
) -> _F64:
    """loss(y_j, eta_j + delta_ij) - loss(y_j, eta_j), (n, m), for
    delta_ijl = sum_k R_ik xa_i . U[k q:(k + 1) q, j K + l]."""

class CholeskySolver:
    """H + damping I = L L^T, factorised once."""

    def __init__(self, H: _Floats, damping: float = 0.0) -> None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def reciprocal_condition(self) -> float: ...
    @property
    def size(self) -> int: ...
    def solve(self, B: _Floats) -> _F64:
        """(H + damping I)^{-1} B, (p, m)."""

    def inverse_factor(self) -> _F64:
        """L^{-1}, (p, p) lower triangular."""
