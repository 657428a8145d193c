"""Influence functions of training points (Koh & Liang, ICML 2017) for fitted linear models.

Notation: ``theta = (w, b)`` minimises ``R(theta) = (1/n) sum_i s_i loss(z_i)
+ (l2/2)||w||^2``; ``H`` is the Hessian of ``R`` at ``theta`` (plus
``damping * I``); ``g_i = loss'_i * xa_i`` is the gradient in theta of the
*unweighted* loss of training point ``z_i``, with ``xa_i = (x_i, 1)`` when the
model has an intercept. Test losses carry no weight and no penalty.

=========================  ==================================================  =========
quantity                   formula                                             shape
=========================  ==================================================  =========
``params``                 ``I_up,params(z_i) = -H^{-1} g_i``                  (k, p)
``loss``                   ``I_up,loss(z_i, z_j) = -g_j^T H^{-1} g_i``          (k, m)
``self_influence``         ``I_up,loss(z_i, z_i) = -g_i^T H^{-1} g_i <= 0``     (k,)
``pert_loss``              ``-g_j^T H^{-1} grad_x grad_theta loss(z_i)``        (k, m, d)
``loo_params``             estimate of ``theta_{-i} - theta``                  (k, p)
``loo``                    estimate of ``loss(z_j, theta_{-i}) - loss(z_j)``   (k, m)
=========================  ==================================================  =========

Upweighting ``z_i`` by a small ``eps`` (adding ``eps * loss(z_i)`` to R) moves
theta by ``eps * I_up,params(z_i)`` and the test loss by ``eps * I_up,loss``. So
a *negative* ``I_up,loss(z_i, z_j)`` means upweighting z_i lowers the loss on
z_j: z_i is *helpful* to z_j; a positive value marks a *harmful* point.

Removing ``z_i`` is upweighting by ``-s_i/n`` (n stays fixed: dropping a point
is setting ``s_i = 0``), so the influence estimates are

    theta_{-i} - theta                  ~  -(s_i/n) I_up,params(z_i) = (s_i/n) H^{-1} g_i
    loss(z_j, theta_{-i}) - loss(z_j)   ~  -(s_i/n) I_up,loss(z_i, z_j).

The *Newton* estimate takes one exact Newton step on the objective without
``z_i``, whose Hessian is ``H - (s_i/n) loss''_i xa_i xa_i^T``. By
Sherman-Morrison, with the leverage ``h_i = (s_i/n) loss''_i xa_i^T H^{-1} xa_i``,

    delta_newton_i = (s_i/n) H^{-1} g_i / (1 - h_i),

and ``loo(method="newton")`` evaluates the test loss at ``theta + delta_newton_i``
(exact for the squared loss, whose objective is quadratic).

Targets other than the test loss
--------------------------------
``on``, ``loo_on`` and ``top_k_on`` measure the same quantities on any target
of :mod:`fastinfluence.targets` (decision values, probabilities, predicted means,
coefficients, linear functionals, the mean loss over a validation set): the
target's gradients take the place of ``g_j``. ``loss``, ``loo`` and ``top_k``
are those methods on ``TestLoss(X_test, y_test)``.

Data frames
-----------
``X``, ``X_test`` may be pandas or polars DataFrames or pyarrow Tables, ``y``,
``y_test`` and ``sample_weight`` Series or arrays (matched to the rows by
position). When the *training* ``X`` was a frame (of any library), results come
back as pandas objects labelled with the training rows (the pandas index; row
numbers ``0 .. n-1`` for polars and pyarrow, which have no index), the test
rows (likewise; row numbers when ``X_test`` is an array) and the feature
columns:

=====================================  =============================================================
``loss``, ``loo``, ``exact_loo``       DataFrame, index ``train_row``, columns ``test_row``
``params``, ``loo_params``             DataFrame, index ``train_row``, one column per feature
                                       (+ ``"intercept"``)
``self_influence``, ``leverage``       Series indexed by ``train_row``
``pert_loss``                          DataFrame, MultiIndex ``(train_row, test_row)``, feature columns
``top_k``                              tidy DataFrame ``test_row, rank, train_row, score, kind``
                                       (:meth:`TopK.to_frame`)
``diagnostics``                        :class:`~fastinfluence.diagnostics.Diagnostics`: Series indexed by
                                       ``train_row``, ``dfbeta(s)`` DataFrames, ``summary_frame()``
=====================================  =============================================================

``indices=`` always selects training rows by *position* (0 .. n-1), never by
label. An array training ``X`` gives arrays, whatever the test side is; so does
``loss(..., out=array)``, which returns ``out``.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np

from . import _dataframes as D
from . import _validation as V
from . import diagnostics as DG
from . import multinomial as MN
from . import rowwise
from . import targets as T
from .backends import get_backend, resolved_name
from .engine import Engine, MemoryEngine
from .exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    IllConditionedHessianError,
    InvalidArgumentValueError,
    LeverageWarning,
    NotAtOptimumWarning,
    NotFittedError,
)
from .fitting import RowObjective, SumObjective, minimise, relative_decrement
from .flips import flip_set
from .groups import Groups, group_indices
from .models import LinearModelBase
from .new_points import NewPoints
from .solvers import (
    DirectSolver,
    HessianOperator,
    make_solver,
    newton_decrement,
    resolve_solver,
    spectrum_summary,
)
from .topk import TopK

__all__ = ["Influence", "TopK", "exact_group_loo_on", "exact_loo", "exact_loo_on", "response_function"]

#: Results larger than this many bytes are refused unless written into a
#: caller-provided ``out`` array (a ``numpy.memmap`` for data larger than
#: memory); ``Influence.top_k`` needs O(m * k) memory only. Change it with
#: ``fastinfluence.influence.MAX_RESULT_BYTES = ...``.
MAX_RESULT_BYTES = 4 * 2**30

LOO_METHODS = ("influence", "newton")

#: A Newton decrement sqrt(g^T H^{-1} g) above this times sqrt(R(0)) means theta
#: is not the optimum of the data given to Influence (in any units of the features).
OPTIMUM_TOLERANCE = 1e-6


def _check_result_size(shape, what: str) -> None:
    n_bytes = 8 * int(np.prod(shape, dtype=np.float64))
    if n_bytes > MAX_RESULT_BYTES:
        raise MemoryError(
            f"{what} would be an array of shape {tuple(shape)} ({n_bytes / 2**30:.1f} GiB), above "
            f"fastinfluence.influence.MAX_RESULT_BYTES ({MAX_RESULT_BYTES / 2**30:.1f} GiB). Use "
            "Influence.top_k for the most helpful/harmful points only, pass out= "
            "(for example a numpy.memmap), or select training rows with indices=."
        )


def warn_if_not_at_optimum(decrement: float, objective_scale: float, stacklevel: int = 2) -> None:
    """NotAtOptimumWarning when the Newton decrement exceeds OPTIMUM_TOLERANCE * sqrt(max(R(0), tiny))."""
    relative = relative_decrement(decrement, objective_scale)
    if not relative <= OPTIMUM_TOLERANCE:
        warnings.warn(
            f"the model is not at the optimum of the objective on this data (Newton decrement "
            f"{decrement:.3e}, {relative:.1e} relative to sqrt(R(0))): was it fitted on "
            "the same X, y and sample_weight, to convergence? Influence values assume the optimum.",
            NotAtOptimumWarning,
            stacklevel=stacklevel + 1,
        )


def _check_finite_fit(engine, gradient, hessian) -> None:
    """ValueError when the gradient or Hessian at the fitted theta overflowed (X or weights far too large)."""
    if np.all(np.isfinite(gradient)) and (hessian is None or np.all(np.isfinite(hessian))):
        return
    largest = engine.largest_magnitude()
    raise ValueError(
        "the gradient or Hessian of the objective at the model's parameters is not finite (X has values "
        f"up to {largest:.3g}): products of X overflow double precision; rescale the features (or the "
        "sample weights)"
    )


def _check_model(model) -> None:
    if not isinstance(model, LinearModelBase):
        raise TypeError(
            "model must be a fastinfluence model (LinearRegression, LogisticRegression, "
            "MultinomialLogisticRegression, SmoothHingeClassifier, PoissonRegression), got "
            f"{type(model).__name__}"
        )
    if not hasattr(model, "theta_"):
        raise NotFittedError(f"model ({type(model).__name__}) is not fitted yet; call model.fit(X, y) first")
    if getattr(model, "converged_", True) is False:
        raise ConvergenceError(
            f"model ({type(model).__name__}) did not converge: {model.fit_message_}. Influence functions are "
            "derivatives at the optimum, so at these parameters they mean nothing; fix the fit first (the "
            "message says how), for example with l2 > 0 or a larger max_iter"
        )


class Influence:
    """Influence of training points on parameters and test losses of a fitted model.

    Parameters
    ----------
    model : a fitted fastinfluence model
        Its ``theta_`` must minimise the objective on ``(X, y, sample_weight)``. A model
        whose fit did not converge (``converged_ == False``: a stalled iteration, or an
        objective without a minimiser) is refused with :class:`fastinfluence.ConvergenceError`;
        one that converged on other data warns (:class:`NotAtOptimumWarning`, judged by the
        Newton decrement, in any units of the features).
    X : array (n, d), SciPy sparse matrix, or pandas/polars DataFrame or pyarrow Table
        The training data the model was fitted on (float32 stays float32;
        sparse input is used as CSR, see :func:`fastinfluence.kernels.scaled_row_products`).
        A frame makes the results labelled pandas objects (see the module docstring).
        X is held by reference, not copied (it may be large): do not modify it while
        the Influence is in use. Each call compares a digest of 64 rows spread over X
        with the one taken at construction and raises ValueError if they differ (this
        catches rescaling or refilling X, not a change confined to rows it skips).
        The model is copied: refitting or editing it afterwards changes nothing here.
    y : array or Series of shape (n,)
        Training labels, in the encoding the model was fitted with.
    sample_weight : array or Series of shape (n,), or None
        The weights the model was fitted with.
    solver : {"auto", "direct", "cg", "lissa"}
        How to apply H^{-1} (see :mod:`fastinfluence.solvers`): ``"direct"``
        factorises H once; ``"cg"`` and ``"lissa"`` never form H. ``"auto"``
        is direct up to 4096 parameters, CG above.
    damping : float >= 0
        Added to the diagonal of H, as in Koh & Liang (section 4.2) for
        singular or ill-conditioned problems. With damping > 0 the estimates are of a
        damped problem; leave it at 0 when H is well conditioned.
    backend : {"auto", "cpp", "numpy"}
        Compiled kernels, or the pure-NumPy reference; "auto" (the default) is the compiled core
        where it loads, else NumPy (``fastinfluence.backends.get_backend``).
    n_jobs : int or None
        Threads for the compiled kernels (None or -1: every core).
    solver_options : dict or None
        Options of the solver: CG ``tol``, ``max_iter``, ``preconditioner``;
        LiSSA ``scale``, ``depth``, ``repeats``, ``batch_size``, ``seed``.

    Attributes
    ----------
    hessian_ : (p, p) Hessian of R at theta (without damping); None with a matrix-free solver. For
        :class:`fastinfluence.MultinomialLogisticRegression`, plus the gauge term that makes it
        definite (:mod:`fastinfluence.multinomial`; influence values do not depend on it).
    gradient_norm_ : ||grad R(theta)|| on the given data
    loss_derivative_, loss_second_derivative_ : (n,) loss'_i and loss''_i at the training points
    solver_ : the solver object (``iterations_`` and ``residual_`` of the last solve for CG/LiSSA)
    """

    #: The engine the constructor builds (the Dask module's Influence builds its own).
    _engine_class: type[Engine] = MemoryEngine

    def __init__(
        self,
        model,
        X,
        y,
        sample_weight=None,
        *,
        solver="direct",
        damping=0.0,
        backend="auto",
        n_jobs=None,
        solver_options=None,
    ):
        _check_model(model)
        # a snapshot: refitting or editing the model afterwards changes nothing here
        self.model = model = copy.deepcopy(model)
        self.damping = V.check_nonnegative(damping, "damping")
        self.backend = backend
        get_backend(backend)
        self._theta = np.asarray(model.theta_, dtype=np.float64)
        self.n_params_ = self._theta.shape[0]
        self.solver = resolve_solver(solver, self.n_params_)
        if self.solver not in self._engine_class.solvers:
            raise ValueError(self._engine_class.unavailable_solver_message(self.solver))
        if self.solver == "lissa" and model.n_blocks > 1:
            # the recursion samples mini-batches of rows through the fused kernel of one eta per row
            raise ValueError(
                f"solver='lissa' is not available for {type(model).__name__} (its mini-batch Hessians are "
                "those of the models with one linear predictor per row); use solver='direct' or 'cg'"
            )
        self._engine = engine = self._engine_class(model, X, y, sample_weight, backend, n_jobs)
        self.n_samples_ = engine.n_samples
        if engine.train_rows is not None:
            D.require_pandas("Influence results for DataFrame input")
        scale = getattr(model, "objective_scale_", None)  # R(0), from the fit
        # one pass: gradient, Hessian (direct solver only) and loss', loss'' per row
        optimum = engine.at_optimum(self._theta, self.solver == "direct", scale is None)
        self.hessian_ = optimum.hessian
        self.gradient_norm_ = float(np.linalg.norm(optimum.gradient))
        _check_finite_fit(engine, optimum.gradient, self.hessian_)
        self._operator = engine.hessian_operator(self.damping)
        self.solver_ = make_solver(
            self.solver,
            operator=self._operator,
            hessian=self.hessian_,
            damping=self.damping,
            backend=engine.kernels,
            options=solver_options,
        )
        self._inverse_factor = None
        if scale is None:  # a model fitted elsewhere
            scale = optimum.value_at_zero
            assert scale is not None  # at_optimum was asked for it
        self.newton_decrement_ = newton_decrement(optimum.gradient, self.solver_, self._operator.diagonal)
        warn_if_not_at_optimum(self.newton_decrement_, max(float(scale), np.finfo(float).tiny), stacklevel=2)

    def __repr__(self) -> str:
        """What it holds: ``Influence(model=LogisticRegression(l2=0.01), n=455, p=31, solver='direct',
        damping=0.0, backend='cpp')``, with the number of classes of a multinomial model (whose p
        counts the K blocks of ``d + fit_intercept`` parameters), whether results are labelled
        (the training X was a frame), and what the engine adds (the Dask engine's row chunks)."""
        parts = [f"model={self.model!r}", f"n={self.n_samples_}", f"p={self.n_params_}"]
        if self._n_classes > 1:
            parts.append(f"classes={self._n_classes}")
        backend = resolved_name(self.backend)  # what runs: "auto" says "cpp" or "numpy"
        parts += [f"solver={self.solver!r}", f"damping={self.damping!r}", f"backend={backend!r}"]
        if self._engine.train_rows is not None:
            parts.append("labelled=True")
        parts += [f"{key}={value!r}" for key, value in self._repr_extra().items()]
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_extra(self) -> dict:
        """Further ``name: value`` pairs of the repr (engines with more to say override it)."""
        return {}

    @property
    def _n_classes(self) -> int:
        return self.model.n_blocks

    @property
    def loss_derivative_(self):
        """loss'_i at the training points, (n,); multinomial: the gradient in eta, the residuals
        P_i - e_{y_i}, (n, K)."""
        return self._engine.derivatives(0)

    @property
    def loss_second_derivative_(self):
        """loss''_i at the training points, (n,); multinomial: the Hessian in eta,
        Q_i = diag(P_i) - P_i P_i^T, (n, K, K)."""
        second = self._engine.derivatives(1)
        if self._n_classes == 1:
            return second
        P = second  # the engines keep the probabilities, from which Q follows
        return P[:, :, None] * np.eye(self._n_classes)[None] - P[:, :, None] * P[:, None, :]

    # -- helpers -------------------------------------------------------------------------------
    def _rows(self, indices):
        """The engine's handle on the selected training rows (all if None)."""
        self._engine.check_unchanged()
        return self._engine.rows(indices)

    def _context(self, **fields):
        return rowwise.Context(self._engine.fit_intercept, self.n_samples_, self._engine.n_jobs, **fields)

    def _check_result_size(self, shape, what):
        if not self._engine.lazy:
            _check_result_size(shape, what)

    def _fit_view(self) -> T.Fit:
        return T.Fit(
            self.model, self._theta, self._engine.kernels, self._engine.n_jobs, self._engine.test_inputs
        )

    def _bind(self, target) -> T.Bound:
        """``target`` evaluated at the fitted theta (its gradients, labels and test points)."""
        if not isinstance(target, T.Target):
            raise TypeError(
                "target must be a fastinfluence.targets target (TestLoss, MeanTestLoss, DecisionFunction, "
                f"PredictProba, Predict, Coefficient, LinearFunctional), got {type(target).__name__}"
            )
        return target.bind(self._fit_view())

    def _solved(self, bound: T.Bound) -> np.ndarray:
        """H^{-1} G for the target's gradients G: (p, c), Fortran order."""
        return np.asfortranarray(self.solver_.solve(bound.gradients))

    # -- labelled results (training X given as a frame) ----------------------------------------
    def _train_labels(self, indices):
        return D.take(self._engine.train_rows, V.check_indices(indices, self.n_samples_))

    def _as_matrix(self, values, indices, bound: T.Bound):
        if self._engine.train_rows is None:
            return values
        return D.label_matrix(values, self._train_labels(indices), bound.labels, bound.axis)

    def _as_params(self, values, indices):
        if self._engine.train_rows is None:
            return values
        return D.label_params(
            values,
            self._train_labels(indices),
            self._engine.columns,
            self._engine.fit_intercept,
            MN.class_labels(self.model),
        )

    def _as_vector(self, values, indices, name):
        if self._engine.train_rows is None:
            return values
        return D.label_vector(values, self._train_labels(indices), name)

    def _quadratic_factor(self):
        """F with xa^T H^{-1} xa = ||F xa||^2: L^{-1} S from the direct solver, else from H^{-1} = C C^T."""
        if self._inverse_factor is None:
            if hasattr(self.solver_, "inverse_factor"):
                factor = self.solver_.inverse_factor()
            else:
                # H^{-1} = C C^T (p solves), so xa^T H^{-1} xa = ||C^T xa||^2
                try:
                    factor = np.linalg.cholesky(self.solver_.inverse()).T
                except np.linalg.LinAlgError:
                    raise IllConditionedHessianError(
                        f"the {self.solver} solver's H^-1 (from {self.n_params_} solves) is not positive "
                        "definite: H is singular or too ill-conditioned for leverages and self-influence "
                        "(collinear features with l2 = 0?). Fit with l2 > 0, or pass damping > 0; "
                        "inf.hessian_spectrum() gives the condition number"
                    ) from None
            self._inverse_factor = np.asfortranarray(factor)
        return self._inverse_factor

    def _check_method(self, method):
        if method not in LOO_METHODS:
            raise ValueError(f"method must be one of {LOO_METHODS}, got {method!r}")

    def _removal_context(self, method, rows, **fields):
        """The context of a leave-one-out estimate; for Newton, warns of rows whose 1 - h_i is too small."""
        self._check_method(method)
        if method == "influence":
            return self._context(row_scale="influence", **fields)
        ctx = self._context(
            row_scale="newton", A=self._quadratic_factor(), leverage_floor=self._leverage_floor(), **fields
        )
        risky = int(self._engine.sum_rows(rows, rowwise.risky_count, ctx))
        if risky:
            warnings.warn(
                f"{risky} training point(s) have leverage h_i so close to 1 that 1 - h_i "
                f"(<= {ctx.leverage_floor:.1e}) is within the rounding error of h_i at this Hessian's "
                "conditioning: the objective without them has a (numerically) singular Hessian, so their "
                "Newton estimates are set to NaN",
                LeverageWarning,
                stacklevel=3,
            )
        return ctx

    def _leverage_floor(self) -> float:
        """The smallest 1 - h_i trusted: h_i carries a relative error of about eps / rcond (the
        equilibrated reciprocal condition of H), and 1 / (1 - h_i) magnifies it; 100 eps / rcond
        keeps the Newton estimates within about 1% (1e-12 when the conditioning is not known)."""
        rcond = getattr(self.solver_, "reciprocal_condition", None)
        if rcond is None or not rcond > 0:
            return 1e-12
        return max(1e-12, 100.0 * np.finfo(np.float64).eps / rcond)

    def _rows_times_inverse(self, rows, ctx):
        """r_i H^{-1} xa_i as rows, (k, p): through H^{-1} when that is cheaper, else k solves."""
        k = self._engine.n_rows(rows)
        self._check_result_size((k, self.n_params_), "the parameter influence")
        if isinstance(self.solver_, DirectSolver) or k >= self.n_params_:
            ctx = rowwise.replace(ctx, M=np.asfortranarray(self.solver_.inverse()))
            return self._engine.map_rows(rows, rowwise.scaled_products, ctx, (self.n_params_,))
        block = self._engine.gather(rows)
        scale = rowwise.row_scale(self._engine.kernels, block, ctx)
        fit_intercept = self._engine.fit_intercept
        solved = self.solver_.solve(MN.row_gradients(block.X, scale, fit_intercept)).T
        return self._engine.wrap(solved, rows)

    # -- public quantities ---------------------------------------------------------------------
    def params(self, indices=None):
        """I_up,params(z_i) = -H^{-1} g_i for the training points ``indices`` (all if None).

        Returns (k, p): row i is the derivative of theta with respect to the weight
        of z_i in the objective (eps in R + eps * loss(z_i)). A DataFrame (columns:
        the features, then ``"intercept"``) when X was a frame.
        """
        return self._as_params(self._rows_times_inverse(self._rows(indices), self._context()), indices)

    def on(self, target, indices=None, *, out=None):
        """I_up,f(z_i) = -grad f^T H^{-1} g_i for a target f (:mod:`fastinfluence.targets`), (k, c).

        Rows are training points, columns the target's columns (test points, coefficients,
        ...). Negative: upweighting z_i lowers f. One solve for all the target's columns,
        then one dense product per row block.

        ``out``: a writable C-contiguous float64 (k, c) array to fill (for example a
        ``numpy.memmap`` for results larger than memory). It is set to NaN first, so after
        an interruption (Ctrl-C, a signal) the rows still NaN are those not written
        (influence values are never NaN). Without it, results above ``MAX_RESULT_BYTES``
        raise MemoryError. With ``out`` the result is ``out`` itself, even for frames;
        without it, a DataFrame (index ``train_row``, columns the target's labels:
        ``test_row`` or ``target``) when X was a frame.
        """
        bound = self._bind(target)
        M = self._solved(bound)
        rows = self._rows(indices)
        shape = (self._engine.n_rows(rows), bound.n_columns)
        if out is None:
            self._check_result_size(shape, "the influence matrix")
        else:
            _check_out(
                out,
                shape,
                {
                    "X_test": getattr(target, "X_test", None),
                    "y_test": getattr(target, "y_test", None),
                    "indices": indices,
                    "the training X": getattr(self._engine, "X", None),
                    "loss_derivative_": self._engine.derivatives(0),
                },
            )
            out.fill(np.nan)  # rows the kernel has not reached stay NaN if it is interrupted
        scores = self._engine.map_rows(
            rows, rowwise.scaled_products, self._context(M=M), (shape[1],), out=out
        )
        return scores if out is not None else self._as_matrix(scores, indices, bound)

    def loss(self, X_test, y_test, indices=None, *, out=None):
        """I_up,loss(z_i, z_test_j) = -g_test_j^T H^{-1} g_i, shape (k, m): ``on(TestLoss(X_test, y_test))``.

        Rows are training points, columns test points. Negative: upweighting z_i
        lowers the test loss (helpful); positive: harmful. ``out`` as for :meth:`on`.
        """
        return self.on(T.TestLoss(X_test, y_test), indices, out=out)

    def top_k_on(self, target, k=10):
        """The k training points whose upweighting lowers and raises the target most, per column.

        Streams over row blocks of X (OpenMP in the compiled backend; per chunk, merged by a
        tree reduction, on Dask), keeping O(c * k) memory: the (n, c) matrix of :meth:`on`
        is never held.

        Returns
        -------
        TopK
            ``helpful_indices``/``helpful_scores``: the most negative I_up,f first (upweighting
            lowers f: for a loss, the helpful points); ``harmful_*``: the most positive first;
            each (c, k); a k above the number of training points n is lowered to n.
            When X was a frame: the tidy DataFrame of :meth:`TopK.to_frame` with the row
            labels, its ``kind`` column ``"helpful"``/``"harmful"`` for a loss target and
            ``"lowers"``/``"raises"`` for the others.
        """
        k = min(V.check_positive_int(k, "k", maximum=None), self.n_samples_)
        self._engine.check_unchanged()
        bound = self._bind(target)
        top = self._engine.top_k(self._context(M=self._solved(bound), k=k))
        if self._engine.train_rows is None:
            return top
        kinds = ("helpful", "harmful") if bound.kind in ("loss", "mean_loss") else ("lowers", "raises")
        if isinstance(bound.axis, str):
            return top.to_frame(self._engine.train_rows, bound.labels, kinds=kinds, column=bound.axis)
        # columns labelled by pairs, (test_row, class) or (class, feature): one column each
        frame = top.to_frame(self._engine.train_rows, None, kinds=kinds, column="target")
        positions = frame.pop("target").to_numpy()
        for level, name in enumerate(bound.axis):
            frame.insert(level, name, [bound.labels[j][level] for j in positions])
        return frame

    def top_k(self, X_test, y_test, k=10):
        """The k most helpful and k most harmful training points for each test point:
        ``top_k_on(TestLoss(X_test, y_test), k)`` (see :meth:`top_k_on`)."""
        return self.top_k_on(T.TestLoss(X_test, y_test), k)

    def self_influence(self, indices=None):
        """I_up,loss(z_i, z_i) = -g_i^T H^{-1} g_i <= 0, shape (k,).

        Large magnitude marks points the model bends most to fit: candidates for
        mislabelled data (Koh & Liang, section 5.4). Streams over X: O(n) memory.
        """
        ctx = self._context(A=self._quadratic_factor())
        values = self._engine.map_rows(self._rows(indices), rowwise.self_influence, ctx, ())
        return self._as_vector(values, indices, "self_influence")

    def leverage(self, indices=None):
        """h_i = (s_i/n) loss''_i xa_i^T H^{-1} xa_i, shape (k,): the Sherman-Morrison leverage.

        Multinomial: the largest eigenvalue of the K x K leverage block of
        :meth:`leverage_blocks` (in [0, 1); the Newton estimate needs ``1 - h_i`` away from 0).
        """
        ctx = self._context(A=self._quadratic_factor())
        return self._as_vector(
            self._engine.map_rows(self._rows(indices), rowwise.leverage, ctx, ()), indices, "leverage"
        )

    def diagnostics(self, indices=None, *, scale=None):
        """Regression diagnostics of the training rows ``indices`` (all if None): leverage, Cook's
        distance, DFFITS, DFBETA(S), studentised and leave-one-out (PRESS) residuals and predictions,
        and statsmodels' ``summary_frame()`` (:mod:`fastinfluence.diagnostics` defines each).

        At ``l2 = 0`` they equal statsmodels' ``OLSInfluence`` (squared loss) and ``GLMInfluence``
        (logistic, Poisson; canonical links, its one-step definitions); with ``l2 > 0`` each keeps
        its formula with the penalised fit's hat matrix and effective degrees of freedom
        ``p_eff = tr(hat)``. One pass over the rows for the per-row statistics (plus one for an
        estimated scale), one more for ``dfbeta``/``dfbetas`` when asked for; no n x n matrix.

        Parameters
        ----------
        indices : array of row positions, or None for all rows
            The rows to report; the scale and p_eff are always those of the whole fit.
        scale : None, "pearson" or float > 0
            The dispersion phi: None (default) estimates it for the squared loss (RSS / (n - p_eff))
            and fixes it at 1 for the others (as statsmodels' binomial and Poisson families do);
            ``"pearson"`` estimates it for any loss (Pearson chi^2 / (n - p_eff), statsmodels'
            ``scale="X2"``); a number fixes it. The externally studentised residuals and DFFITS
            exist for the squared loss with an estimated scale.

        Returns
        -------
        Diagnostics
            Its attributes are (k,) arrays (Series labelled by the training rows for a frame; lazy
            dask arrays on Dask), ``dfbeta``/``dfbetas`` (k, p).

        Raises
        ------
        ValueError
            For the multinomial model (its leverage is a K x K block per row: see
            :meth:`leverage_blocks`), with ``damping > 0`` (the statistics are those of the fitted
            objective; fit with ``l2 > 0`` instead), or a bad ``scale``.
        """
        name = self.model.loss.name
        if self._n_classes > 1:
            raise ValueError(
                f"diagnostics are defined for one linear predictor per row; {type(self.model).__name__} "
                "has K per row, so its leverage, residuals and Cook's distance are K x K blocks and "
                "K-vectors (see leverage_blocks), which the scalar statistics of statsmodels' "
                "OLSInfluence/GLMInfluence do not generalise to uniquely"
            )
        if self.damping != 0:
            raise ValueError(
                f"diagnostics need damping=0 (got {self.damping!r}): the residuals are those of the "
                "fitted objective, whose Hessian the damping changes; fit the model with l2 > 0 instead"
            )
        estimated, fixed = DG.check_scale(scale, name)
        rows = self._rows(indices)
        F = self._quadratic_factor()  # H^{-1} = F^T F
        inverse_diagonal = np.einsum("ij,ij->j", F, F)
        penalised = np.ones(self.n_params_, dtype=bool)
        if self._engine.fit_intercept:
            penalised[-1] = False
        l2 = float(self.model.l2)
        # tr(hat) = tr(H^{-1} (H - l2 P)) = p - l2 tr(H^{-1} P)
        effective_df = float(self.n_params_ - l2 * inverse_diagonal[penalised].sum())
        n = self.n_samples_
        rss = 0.0
        if estimated:
            rss = self._engine.sum_rows(self._engine.rows(None), rowwise.pearson_chi2, self._context())
        df_resid = n - effective_df
        if estimated:
            phi = rss / df_resid if df_resid > 0 else np.nan
        else:
            assert fixed is not None
            phi = fixed
        if not (np.isfinite(phi) and phi > 0):
            raise ValueError(
                f"the estimated scale is {phi!r} (Pearson chi^2 {rss!r} over n - p_eff = "
                f"{n - effective_df:.6g}): the fit interpolates the data; pass scale= a number"
            )
        external = estimated and name == "squared"
        theta = self._theta
        P_theta = np.where(penalised, theta, 0.0)
        u = self.solver_.solve(P_theta[:, None])[:, 0] if external and l2 > 0 else np.zeros_like(theta)
        setup = DG.Setup(
            loss=name,
            n_samples=n,
            effective_df=effective_df,
            scale=float(phi),
            external=external,
            l2=l2,
            rss=float(rss),
            estimated=estimated,
            theta_and_u=np.asfortranarray(np.column_stack([theta, u])),
            penalised_inverse=(
                np.asfortranarray(np.where(penalised[:, None], F.T @ F, 0.0)) if external and l2 > 0 else None
            ),
        )
        ctx = self._removal_context("newton", rows, diagnostics=setup)
        terms = self._engine.map_rows(rows, rowwise.diagnostics, ctx, (len(DG.COLUMNS),))
        columns = self._engine.columns
        if columns is None:
            columns = [f"x{j}" for j in range(self.model.n_features_in_)]
        names = list(columns) + (["intercept"] if self._engine.fit_intercept else [])
        return DG.Diagnostics(
            terms,
            lambda: self._rows_times_inverse(rows, ctx),
            setup,
            lazy=self._engine.lazy,
            rows=None if self._engine.train_rows is None else self._train_labels(indices),
            columns=names,
            se=np.sqrt(inverse_diagonal / n),
            n_params=self.n_params_,
        )

    def leverage_blocks(self, indices=None):
        """The K x K leverage blocks of a multinomial model, (k, K, K): ``L_i = (s_i/n) F_i S_i F_i^T``
        with ``S_i = (I kron xa_i)^T H^{-1} (I kron xa_i)`` and ``Q_i = F_i^T F_i`` (see
        :mod:`fastinfluence.multinomial`). Their eigenvalues are those of the Woodbury system of
        the Newton estimate; their traces sum the leverage over the classes. Arrays, also for frames."""
        K = self._n_classes
        if K == 1:
            raise ValueError(
                "leverage_blocks is for multinomial models; a binary model's leverage is a scalar"
            )
        ctx = self._context(A=self._quadratic_factor())
        return self._engine.map_rows(self._rows(indices), rowwise.leverage_blocks, ctx, (K, K))

    def pert_loss(self, X_test, y_test, indices=None):
        """I_pert,loss(z_i, z_test_j) = -g_test_j^T H^{-1} grad_x grad_theta loss(z_i), shape (k, m, d).

        Moving training input x_i to x_i + delta (with weight eps) changes the test
        loss by about eps * I_pert,loss . delta. For a linear model
        grad_x grad_theta loss = loss''_i xa_i w^T + loss'_i [I_d; 0].

        The gradient is with respect to the features the model was fitted on;
        for a model from ``fi.from_sklearn(pipeline, ...)`` that is the
        transformed space ``fi.sklearn.transform`` returns.

        When X was a frame: a DataFrame of shape (k * m, d) with a
        ``(train_row, test_row)`` MultiIndex (training-row major) and the
        feature columns.
        """
        bound = self._bind(T.TestLoss(X_test, y_test))
        V_test = self._solved(bound)
        rows = self._rows(indices)
        d = self.model.n_features_in_
        self._check_result_size((self._engine.n_rows(rows), V_test.shape[1], d), "pert_loss")
        K = self._n_classes
        w = self._theta[:d].copy() if K == 1 else self._theta.reshape(K, -1)[:, :d].copy()
        ctx = self._context(M=V_test, w=w)
        result = self._engine.map_rows(rows, rowwise.pert_loss, ctx, (V_test.shape[1], d))
        if self._engine.train_rows is None:
            return result
        return D.label_pert(
            np.asarray(result), self._train_labels(indices), bound.labels, self._engine.columns
        )

    def loo_params(self, method="influence", indices=None):
        """Estimated theta_{-i} - theta when z_i is removed, shape (k, p).

        ``method="influence"``: ``(s_i/n) H^{-1} g_i``; ``"newton"``: the same divided by
        ``1 - h_i`` (one exact Newton step, by Sherman-Morrison). Rows whose ``1 - h_i`` is
        within rounding of zero get NaN (a :class:`LeverageWarning` says how many).
        """
        rows = self._rows(indices)
        return self._as_params(self._rows_times_inverse(rows, self._removal_context(method, rows)), indices)

    def loo_on(self, target, method="influence", indices=None):
        """Estimated change of a target f when z_i is removed, f(theta_{-i}) - f(theta), (k, c).

        ``method="influence"``: the first-order estimate ``-(s_i/n) I_up,f(z_i)``;
        ``"newton"``: f at ``theta + delta_newton_i`` (one exact Newton step without z_i,
        see the module docstring): exact for the squared loss, and exact in delta for the
        targets linear in theta (decision values, coefficients, linear functionals).
        Rows whose ``1 - h_i`` is within rounding of zero get NaN (a :class:`LeverageWarning`
        says how many).
        """
        self._check_method(method)
        rows = self._rows(indices)
        bound = self._bind(target)
        k = self._engine.n_rows(rows)
        self._check_result_size((k, bound.n_columns), "the leave-one-out matrix")
        if method == "influence" or bound.kind == "linear":
            ctx = self._removal_context(method, rows, M=self._solved(bound))
            change = self._engine.map_rows(rows, rowwise.scaled_products, ctx, (bound.n_columns,))
            return self._as_matrix(change, indices, bound)
        # U = H^{-1} [grad eta_test], so xa_test_j . delta_i = r_i xa_i . U_j (each class's, K > 1)
        K = self._n_classes
        self._check_result_size((self.n_params_, bound.X.shape[0] * K), "the solved test design (Newton)")
        U = self.solver_.solve(MN.eta_gradients(bound.X, K, self._engine.fit_intercept))
        ctx = self._removal_context(method, rows, M=np.asfortranarray(U), target=bound)
        change = self._engine.map_rows(rows, rowwise.loo_newton_target, ctx, (bound.n_columns,))
        return self._as_matrix(change, indices, bound)

    def loo(self, X_test, y_test, method="influence", indices=None):
        """Estimated change of test loss when z_i is removed, loss(z_j, theta_{-i}) - loss(z_j, theta):
        ``loo_on(TestLoss(X_test, y_test), method, indices)``, shape (k, m)."""
        return self.loo_on(T.TestLoss(X_test, y_test), method, indices)

    def new_points(self, X_new, y_new):
        """Points that are not in the training set, scored as candidates to add ("what would adding
        this row do"): a :class:`fastinfluence.new_points.NewPoints` with ``params``, ``on``,
        ``loss``, ``self_influence``, ``top_k_on`` and ``add_on``. Its I_up values are the
        derivatives of :func:`response_function` at eps = 0."""
        return NewPoints(self, X_new, y_new)

    def groups(self, groups):
        """Groups of training rows removed together: a :class:`fastinfluence.groups.Groups` with
        ``loo_params``, ``loo_on`` and ``loo`` by the first-order and the Newton (Woodbury)
        estimate. ``groups``: a label per training row, or a list of arrays of row positions;
        :func:`exact_group_loo_on` refits."""
        return Groups(self, groups)

    def flip_set(self, target, threshold=0.0, *, max_size=None, candidates=200):
        """A small set of training rows whose removal moves a quantity across ``threshold``: the sign
        of a coefficient (``Coefficient``, threshold 0), a test point's predicted label (its
        ``DecisionFunction``, 0) or probability (``PredictProba``, e.g. 0.5), a test loss risen by a
        given amount (``TestLoss``, its value plus the amount). Greedy removal by the Newton group
        estimate with rank-one updates, confirmed by exact refits (:mod:`fastinfluence.flips`);
        ``max_size`` rows at most (default 5% of n), chosen among the ``candidates`` rows whose own
        removal moves it most. Returns a :class:`fastinfluence.flips.FlipSet`; ``confirmed`` is
        False, and its ``message`` says so, when no set below ``max_size`` is found."""
        return flip_set(self, target, threshold, max_size, candidates)

    def validate_on(self, target, *, n_top=10, n_random=20, groups=None, random_state=0):
        """How far to trust the estimates on this data: exact refits of a few rows, compared.

        Refits the model exactly (:func:`exact_loo_on`, or :func:`exact_group_loo_on` with
        ``groups``: warm-started at theta, n fixed) without each of the ``n_top`` training rows
        (or groups) of largest first-order estimate ``max_j |f_j(theta_{-i}) - f_j(theta)|``
        and of ``n_random`` more drawn at random from the rest (seeded by ``random_state``: an
        int, a ``numpy.random.Generator`` or None), and compares the first-order and the Newton
        estimates of :meth:`loo_on` (or :meth:`Groups.loo_on <fastinfluence.groups.Groups.loo_on>`)
        with the refitted changes over every (row, column) pair: Pearson and Spearman
        correlation, largest absolute error and that error relative to the largest refit change.
        Costs ``n_top + n_random`` fits. Returns a
        :class:`fastinfluence.validation_refits.AccuracyCertificate` (its repr is the report,
        ``to_frame()`` the values). Needs the training rows in memory (not the Dask engine).
        """
        from .validation_refits import certify

        return certify(self, target, n_top=n_top, n_random=n_random, groups=groups, random_state=random_state)

    def validate(self, X_test, y_test, *, n_top=10, n_random=20, groups=None, random_state=0):
        """:meth:`validate_on` for the test loss, ``TestLoss(X_test, y_test)``: the estimates of
        :meth:`loo` (or ``groups(...).loo``) checked against exact refits."""
        return self.validate_on(
            T.TestLoss(X_test, y_test),
            n_top=n_top,
            n_random=n_random,
            groups=groups,
            random_state=random_state,
        )

    def hessian_spectrum(self):
        """Extreme eigenvalues of H + damping I, its condition number and a suggested damping.

        Exact for p <= 512 or with the direct solver; Lanczos (ARPACK) on
        Hessian-vector products otherwise. Returns a dict with
        ``smallest_eigenvalue``, ``largest_eigenvalue``, ``condition_number`` and
        ``suggested_damping`` (1e-8 x the largest eigenvalue, which bounds the
        condition number near 1e8). For the multinomial model: of H on the complement
        of the gauge directions (the parameters' space the influence lives in; the
        gauge term, which makes H definite, is left out).
        """
        gauge = self._engine.gauge
        if gauge is None:
            if self.hessian_ is not None:
                eig = np.linalg.eigvalsh(self.hessian_ + self.damping * np.eye(self.n_params_))
                return spectrum_summary(float(eig[0]), float(eig[-1]))
            return spectrum_summary(*self._operator.extreme_eigenvalues())
        # P A P on the complement, and P A P + largest * P_g for its smallest (the gauge's eigenvalues
        # moved to the top), with P_g the projector on the gauge directions and P = I - P_g
        project = gauge.projector().product
        if self.hessian_ is not None:
            A = self.hessian_ + self.damping * np.eye(self.n_params_)
            P = np.eye(self.n_params_) - project(np.eye(self.n_params_))
            inner = P @ A @ P
            largest = float(np.linalg.eigvalsh(inner)[-1])
            smallest = float(np.linalg.eigvalsh(inner + largest * project(np.eye(self.n_params_)))[0])
            return spectrum_summary(smallest, largest)
        largest = ProjectedOperator(self._operator, project, 0.0).extreme_eigenvalues()[1]
        smallest = ProjectedOperator(self._operator, project, largest).extreme_eigenvalues()[0]
        return spectrum_summary(smallest, largest)


class ProjectedOperator(HessianOperator):
    """P A P + shift * P_g for an operator A, the projector P_g on the gauge directions and
    P = I - P_g: A on the complement of the gauge, its gauge eigenvalues set to ``shift``."""

    def __init__(self, operator: HessianOperator, project, shift: float):
        self.operator, self.project, self.shift = operator, project, float(shift)
        self.n_params, self.fit_intercept = operator.n_params, operator.fit_intercept

    def hessian_products(self, V):
        inside = V - self.project(V)
        AV = self.operator.matmat(inside)
        return AV - self.project(AV) + self.shift * self.project(V)


def _check_out(out, shape, inputs):
    """``out`` must be a writable C-contiguous float64 array of ``shape`` overlapping none of ``inputs``."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array (or numpy.memmap), got {type(out).__name__}")
    if out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(
            f"out must be a writable C-contiguous float64 array of shape {shape}; got shape {out.shape}, "
            f"dtype {out.dtype}"
        )
    V.check_out_overlap(out, inputs)


def exact_loo(model, X, y, indices, X_test, y_test, sample_weight=None, *, return_params=False):
    """Brute-force leave-one-out: refit with s_i = 0 for each i in ``indices``.

    The reference the influence estimates are validated against:
    ``exact_loo_on(model, X, y, indices, TestLoss(X_test, y_test), ...)``.

    Returns
    -------
    change : (k, m) array
        loss(z_test_j, theta_{-i}) - loss(z_test_j, theta).
    delta_params : (k, p) array, only with ``return_params=True``
        theta_{-i} - theta.

    When X is a frame, both are DataFrames labelled as :meth:`Influence.loo`
    and :meth:`Influence.loo_params` label theirs (``indices`` are positions).
    """
    return exact_loo_on(
        model, X, y, indices, T.TestLoss(X_test, y_test), sample_weight, return_params=return_params
    )


def exact_loo_on(model, X, y, indices, target, sample_weight=None, *, return_params=False):
    """Brute-force leave-one-out for any target: refit with s_i = 0 for each i in ``indices``.

    Each refit is warm-started at ``model.theta_`` and run to the model's tolerance; n
    stays fixed (the objective keeps its 1/n), matching the influence definitions.
    Returns ``f(theta_{-i}) - f(theta)``, (k, c) (computed without cancellation for
    small changes), and with ``return_params=True`` also ``theta_{-i} - theta`` (k, p);
    labelled as :meth:`Influence.loo_on` and :meth:`Influence.loo_params` label theirs
    when X is a frame.
    """
    return _exact_removals(model, X, y, sample_weight, target, return_params, indices=indices)


def response_function(model, X, y, X_new, y_new, eps, sample_weight=None):
    """theta(eps) = argmin R(theta) + sum_j eps_j loss(z_j, theta): the exact refit with the points
    z_j = (X_new[j], y_new[j]) added with weights eps_j (Koh & Liang's response function).

    R is the model's objective on (X, y, sample_weight), with its n (adding eps loss(z) does
    not change the 1/n of the training rows' mean); the refit is warm-started at
    ``model.theta_`` and run to the model's tolerance. ``eps``: one number for every new point,
    or one per point; a negative eps removes weight (keep it small enough that the objective
    stays convex). The derivative at eps = 0 of theta(eps) with one point is
    ``Influence(model, X, y).new_points(X_new, y_new).params()``; with a training row as z and
    eps = -s_i/n the refit is the leave-one-out refit. Returns theta (p,).
    """
    _check_model(model)
    X, _, _ = model.validate_features(X, "X")
    n = X.shape[0]
    y = model.encode_targets(y, n, "y")
    s = V.check_sample_weight(sample_weight, n)
    s = np.ones(n) if s is None else s
    X_new, _, _ = model.validate_features(X_new, "X_new")
    c = X_new.shape[0]
    y_new = model.encode_targets(y_new, c, "y_new")
    eps = np.asarray(eps, dtype=np.float64)
    if eps.ndim > 1 or (eps.ndim == 1 and eps.shape[0] != c) or not np.all(np.isfinite(eps)):
        raise InvalidArgumentValueError(
            "eps", f"must be a finite number or one per new point ({c}); got {eps!r}"
        )
    eps = np.broadcast_to(eps, (c,))
    # R plus the points of positive eps, minus those of negative eps: every part's weights >= 0
    backend, n_jobs = get_backend(model.backend), V.check_n_jobs(model.n_jobs)
    parts, signs = [model.row_objective(X, y, s)], [1.0]
    for sign in (1.0, -1.0):
        rows = np.flatnonzero(sign * eps > 0)
        if rows.size:
            # (1/c_k) sum_j (c_k |eps_j|) loss_j = sum_j |eps_j| loss_j, without a penalty
            problem = model.problem(X_new[rows], y_new[rows], np.abs(eps[rows]) * rows.size)
            problem = dataclasses.replace(problem, l2=0.0)
            parts.append(RowObjective(backend, problem, n_jobs, with_gauge=False))
            signs.append(sign)
    result = minimise(
        SumObjective(parts, signs),
        model.theta_,
        tol=float(model.tol),
        max_iter=int(model.max_iter),
        method=model.fit_method(model.theta_.size),
        objective_scale=getattr(model, "objective_scale_", None),
    )
    if not result["converged"]:
        warnings.warn(
            f"the response-function refit did not converge: {result['message']}",
            ConvergenceWarning,
            stacklevel=2,
        )
    return np.asarray(result["theta"], dtype=np.float64)


def _refit_without(model, X, y, s, rows, what: str, *, warn: bool = True):
    """(theta_{-rows} - theta, converged): the refit with the weights of ``rows`` set to 0 (n fixed),
    warm-started at theta, to the model's stopping rule and polished; by default warns when it has
    no minimiser (removing rows can lose it) or does not converge."""
    weights = s.copy()
    weights[rows] = 0.0
    result = minimise(
        model.row_objective(X, y, weights),
        model.theta_,
        tol=float(model.tol),
        max_iter=int(model.max_iter),
        method=model.fit_method(model.theta_.size),
        objective_scale=getattr(model, "objective_scale_", None),
    )
    result = model.check_minimiser(result, X, y, weights)
    if warn and not result["converged"]:
        warnings.warn(
            f"the refit without {what} did not converge: {result['message']}",
            ConvergenceWarning,
            stacklevel=3,
        )
    return np.asarray(result["theta"]) - model.theta_, bool(result["converged"])


def exact_group_loo_on(model, X, y, groups, target, sample_weight=None, *, return_params=False):
    """Brute force for groups: refit with every row of a group removed (weights 0, n fixed), for
    each group. ``groups`` as :meth:`Influence.groups` takes them. Returns ``f(theta_{-G}) -
    f(theta)``, (groups, c), and with ``return_params=True`` also ``theta_{-G} - theta``."""
    return _exact_removals(model, X, y, sample_weight, target, return_params, groups=groups)


def _exact_removals(model, X, y, sample_weight, target, return_params, *, indices=None, groups=None):
    """The refits of exact_loo_on (each row of ``indices``) and exact_group_loo_on (each group)."""
    _check_model(model)
    if not isinstance(target, T.Target):
        raise TypeError(f"target must be a fastinfluence.targets target, got {type(target).__name__}")
    backend = get_backend(model.backend)
    X, train_rows, columns = model.validate_features(X, "X")
    if train_rows is not None:
        D.require_pandas("exact_loo results for DataFrame input")
    n = X.shape[0]
    y = model.encode_targets(y, n, "y")
    s = V.check_sample_weight(sample_weight, n)
    s = np.ones(n) if s is None else s
    if groups is None:  # one row per removal, labelled by its training row
        idx = V.check_indices(indices, n)
        idx = np.arange(n) if idx is None else idx
        members, names = [np.array([i]) for i in idx], [f"row {i}" for i in idx]
        labels, row_name = (None if train_rows is None else D.take(train_rows, idx)), "train_row"
    else:
        labels, members = group_indices(groups, n)
        names, row_name = [f"group {label!r}" for label in labels], "group"
    fit = T.Fit(model, model.theta_, backend, V.check_n_jobs(model.n_jobs), lambda a, b: (a, b))
    bound = target.bind(fit)
    delta = np.empty((len(members), model.theta_.size))
    for k, (rows, name) in enumerate(zip(members, names)):
        delta[k] = _refit_without(model, X, y, s, rows, name)[0]
    change = bound.change(backend, delta, bool(model.fit_intercept)).reshape(len(members), bound.n_columns)
    if train_rows is not None:
        change = D.label_matrix(change, labels, bound.labels, bound.axis, row_name=row_name)
        delta = D.label_params(delta, labels, columns, model.fit_intercept, MN.class_labels(model), row_name)
    return (change, delta) if return_params else change
