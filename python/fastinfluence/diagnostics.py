"""Regression diagnostics of a fitted model: leverage, Cook's distance, DFFITS, DFBETA(S), studentised
and leave-one-out residuals, for every per-entry loss, with or without the L2 penalty.

statsmodels' ``OLSInfluence`` and ``GLMInfluence`` are the reference: at ``l2 = 0`` every statistic
here equals theirs (squared loss: OLS; logistic and Poisson: GLM with the canonical link, the one-step
definitions included). With ``l2 > 0`` each keeps its formula, with the hat matrix of the
penalised fit and its effective number of parameters in place of the projection and p (as mgcv
does for penalised GLMs). Every statistic is a diagonal quantity: one pass over the rows, no n x n
matrix.

Notation (that of :mod:`fastinfluence.influence`): ``H = (1/n) sum_j s_j loss''_j xa_j xa_j^T +
l2 P`` is the Hessian of the objective (``P`` the identity on the weights, 0 on the intercept),
``q_i = xa_i^T H^{-1} xa_i``, ``c_i = s_i / n``; for the squared, logistic and Poisson losses
``-loss'_i = y_i - mu_i`` is the response residual and ``loss''_i = V(mu_i)`` the variance
function (they are canonical GLMs).

==================================  =============================================================
statistic                           definition (shape (k,) unless said)
==================================  =============================================================
``leverage`` (``hat_diag``)         ``h_i = c_i loss''_i q_i``: the diagonal of the hat matrix of the
                                    penalised fit, ``W^1/2 Xa (n H)^{-1} Xa^T W^1/2``,
                                    ``W = diag(s_i loss''_i)``
``effective_df``                    ``p_eff = tr(hat) = sum_i h_i = p - l2 tr(H^{-1} P)`` (p at l2 = 0)
``df_resid``                        ``n - p_eff``
``scale``                           ``phi``: ``sum_i s_i loss'_i^2 / loss''_i / (n - p_eff)`` (Pearson
                                    chi^2 over df; RSS / (n - p_eff) for the squared loss) where estimated,
                                    else 1 (logistic, Poisson, smooth hinge: as statsmodels' binomial
                                    and Poisson families)
``resid``                           ``-loss'_i``: ``y_i - mu_i`` (the smooth hinge: its score residual)
``resid_pearson``                   ``r_i = sqrt(s_i) (-loss'_i) / sqrt(loss''_i)``
``resid_studentized_internal``      ``r_i / sqrt(phi (1 - h_i))`` (``standard_resid``)
``resid_studentized_external``      ``r_i / sqrt(sigma2_(i) (1 - h_i))`` (``student_resid``; squared loss
                                    with an estimated scale only), ``sigma2_(i)`` the scale estimate of
                                    the refit without row i (exact, also with l2 > 0: ``RSS_(i) /
                                    (n - 1 - p_eff(i))``)
``cooks_distance``                  ``r_int_i^2 h_i / ((1 - h_i) p_eff)`` (``cooks_d``)
``dffits_internal``                 ``r_int_i sqrt(h_i / (1 - h_i))``
``dffits``                          ``r_ext_i sqrt(h_i / (1 - h_i))`` (squared loss, estimated scale)
``dfbeta``                          ``theta - theta_(i)``, (k, p), by one Newton step without row i: minus
                                    :meth:`Influence.loo_params` ``(method="newton")``; exact for the
                                    squared loss, statsmodels' one-step ``d_params`` for the GLMs
``dfbetas``                         ``dfbeta_ij / sqrt(sigma2 [(n H)^{-1}]_jj)``, (k, p): ``sigma2 =
                                    sigma2_(i)`` where the external scale exists (OLS), else ``phi`` (GLM)
``loo_linear_predictor``            ``eta_(i) = eta_i + c_i loss'_i q_i / (1 - h_i)``, one Newton step
                                    (exact for the squared loss)
``loo_predictions``                 ``mu(eta_(i))``: the prediction at x_i of the fit without row i
                                    (mean, probability; the decision value for the smooth hinge)
``resid_press``                     ``y_i - mu(eta_(i))`` (``e_i / (1 - h_i)`` for the squared loss)
==================================  =============================================================

Signs follow statsmodels: residuals are observed minus fitted, so a point above the fit has
positive studentised residuals and DFFITS (removing it lowers its own prediction); ``dfbeta`` is
``theta - theta_(i)``, *minus* the change :meth:`Influence.loo_params` reports. Sample weights are
variance weights (statsmodels GLM's ``var_weights``; WLS weights for the squared loss): row i
enters the objective as ``s_i loss_i``, removing it sets ``s_i = 0``, and ``n`` counts the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from . import _dataframes as D
from .exceptions import InvalidArgumentValueError
from .targets import mean_difference

__all__ = ["Diagnostics"]

#: The per-row columns :func:`row_statistics` returns, in order.
COLUMNS = (
    "hat_diag",
    "resid",
    "resid_pearson",
    "standard_resid",
    "student_resid",
    "cooks_d",
    "dffits_internal",
    "dffits",
    "loo_linear_predictor",
    "loo_prediction",
    "resid_press",
    "sigma_loo",
)
_COLUMN = {name: j for j, name in enumerate(COLUMNS)}

#: The mean function mu(eta) of each loss (None: the smooth hinge, whose prediction is eta's sign).
MEANS = {"squared": "identity", "logistic": "logistic", "poisson": "exp", "smooth_hinge": None}

_MEAN_FUNCTIONS = {
    "identity": lambda eta: eta,
    "logistic": expit,
    "exp": np.exp,
}

#: statsmodels' summary_frame columns after the dfb_ ones: OLSInfluence's, GLMInfluence's.
OLS_SUMMARY = ("cooks_d", "standard_resid", "hat_diag", "dffits_internal", "student_resid", "dffits")
GLM_SUMMARY = ("cooks_d", "standard_resid", "hat_diag", "dffits_internal")


@dataclass(frozen=True)
class Setup:
    """The global quantities the per-row formulas need (shipped to every Dask worker once)."""

    loss: str
    n_samples: int
    effective_df: float  # p_eff = tr(hat)
    scale: float  # phi
    external: bool  # squared loss with an estimated scale: sigma2_(i) exists
    l2: float
    rss: float  # sum_i s_i loss'_i^2 (the squared loss's RSS), for sigma2_(i)
    estimated: bool = False  # phi estimated from the residuals (else fixed)
    theta_and_u: Any = None  # (p, 2) Fortran [theta, H^{-1} P theta]: eta_i and b_i = xa_i . u
    penalised_inverse: Any = None  # P H^{-1} (p, p): q2_i = ||P H^{-1} xa_i||^2 (external, l2 > 0)


def check_scale(scale, loss: str) -> tuple[bool, float | None]:
    """(estimated, fixed value) from the ``scale`` argument of :meth:`Influence.diagnostics`."""
    if scale is None:
        return (True, None) if loss == "squared" else (False, 1.0)
    if isinstance(scale, str):
        if scale != "pearson":
            raise InvalidArgumentValueError(
                "scale", f"must be None, 'pearson' or a number > 0; got {scale!r}"
            )
        return True, None
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating, np.integer)):
        raise InvalidArgumentValueError("scale", f"must be None, 'pearson' or a number > 0; got {scale!r}")
    value = float(scale)
    if not (np.isfinite(value) and value > 0):
        raise InvalidArgumentValueError("scale", f"must be a finite number > 0; got {scale!r}")
    return False, value


def pearson_terms(d1: np.ndarray, d2: np.ndarray, s: np.ndarray) -> np.ndarray:
    """s_i loss'_i^2 / loss''_i, the squared Pearson residuals (0 where the numerator is 0)."""
    top = s * d1 * d1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(top == 0, 0.0, top / d2)


def row_statistics(setup: Setup, d1, d2, s, q, r, eta, b=None, q2=None) -> np.ndarray:
    """The statistics of :data:`COLUMNS` for a block of rows, (k, len(COLUMNS)).

    ``d1, d2, s``: loss'_i, loss''_i, s_i; ``q``: xa_i^T H^{-1} xa_i; ``r``: the Newton row scale
    ``c_i loss'_i / (1 - h_i)`` (NaN where 1 - h_i is within rounding of 0), so that
    ``theta_(i) - theta = r_i H^{-1} xa_i``; ``eta``: the linear predictors; ``b = xa_i . H^{-1} P theta``
    and ``q2 = ||P H^{-1} xa_i||^2`` (the squared loss's external scale with l2 > 0).
    """
    n, phi, p_eff = float(setup.n_samples), setup.scale, setup.effective_df
    out = np.full((len(d1), len(COLUMNS)), np.nan)
    c = s / n
    h = c * d2 * q
    # 1 - h_i, NaN where it is within rounding of 0 (r_i is NaN there: removing the row leaves a
    # singular Hessian, and every statistic that divides by 1 - h_i is undefined, as the Newton estimates)
    rest = np.where(np.isnan(r), np.nan, 1.0 - h)
    e = -d1  # y_i - mu_i for the canonical GLMs
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = np.sqrt(s) * e / np.sqrt(d2)
        out[:, _COLUMN["hat_diag"]] = h
        out[:, _COLUMN["resid"]] = e
        out[:, _COLUMN["resid_pearson"]] = pearson
        out[:, _COLUMN["standard_resid"]] = pearson / np.sqrt(phi * rest)
        # r_int^2 h / ((1 - h) p_eff) and r_int sqrt(h / (1 - h)), written without dividing by
        # loss''_i (finite where it underflows): r_i^2 h_i = (s_i loss'_i)^2 q_i / n
        out[:, _COLUMN["cooks_d"]] = (s * d1) ** 2 * q / (n * phi * rest**2 * p_eff)
        root = s * e * np.sqrt(q / n) / rest  # r_i sqrt(h_i) / (1 - h_i)
        out[:, _COLUMN["dffits_internal"]] = root / np.sqrt(phi)
        # eta_(i) - eta_i = xa_i . (theta_(i) - theta) = r_i q_i
        delta = r * q
        out[:, _COLUMN["loo_linear_predictor"]] = eta + delta
        mean = MEANS[setup.loss]
        if mean is None:
            out[:, _COLUMN["loo_prediction"]] = eta + delta
        else:
            out[:, _COLUMN["loo_prediction"]] = _MEAN_FUNCTIONS[mean](eta + delta)
            # y_i - mu(eta_(i)) = (y_i - mu_i) - (mu(eta_(i)) - mu_i), the change without cancellation
            out[:, _COLUMN["resid_press"]] = e - mean_difference(mean, eta, delta)
        if setup.external:
            # the refit without row i (exact: the squared loss's objective is quadratic). Its minimum is
            # Q_(i) = Q - s_i e_i^2 / (1 - h_i), Q = RSS + n l2 ||w||^2, so RSS_(i) = Q_(i) - n l2 ||w_(i)||^2
            # with w_(i) = w + r_i [H^{-1} xa_i]_w, and its p_eff(i) = p_eff - l2 c_i q2_i / (1 - h_i)
            rss = setup.rss - s * e * e / rest
            p_loo = np.full_like(h, p_eff)
            if setup.l2 > 0:
                assert b is not None
                assert q2 is not None
                rss = rss - n * setup.l2 * (2.0 * r * b + r * r * q2)
                p_loo = p_eff - setup.l2 * c * q2 / rest
            sigma2 = rss / (n - 1.0 - p_loo)
            out[:, _COLUMN["sigma_loo"]] = np.sqrt(sigma2)
            out[:, _COLUMN["student_resid"]] = pearson / np.sqrt(sigma2 * rest)
            out[:, _COLUMN["dffits"]] = root / np.sqrt(sigma2)
    return out


class Diagnostics:
    """Regression diagnostics of the training rows of an :class:`fastinfluence.Influence`
    (:meth:`Influence.diagnostics` builds it; see :mod:`fastinfluence.diagnostics` for the
    definitions, their signs and their ridge generalisation).

    Per-row statistics are NumPy arrays of shape (k,) for array input, pandas Series indexed by
    the training rows for a frame, lazy dask arrays on Dask; ``dfbeta`` and ``dfbetas`` are (k, p)
    (DataFrames with one column per feature and ``"intercept"`` for a frame).

    Attributes
    ----------
    effective_df : float
        ``p_eff = tr(hat)``, the effective number of parameters (p at l2 = 0).
    df_resid : float
        ``n - p_eff``.
    scale : float
        The scale (dispersion) ``phi`` used: estimated or fixed (see ``scale=`` of
        :meth:`Influence.diagnostics`).
    scale_estimated : bool
        Whether ``phi`` was estimated from the residuals.
    n_samples : int
        n, the number of training rows.
    """

    def __init__(self, terms, dfbeta, setup: Setup, *, lazy, rows, columns, se, n_params):
        self._terms = terms
        self._dfbeta_thunk = dfbeta
        self._dfbeta = None
        self._setup = setup
        self._lazy = lazy
        self._rows = rows  # labels of the selected rows (frames), else None
        self._columns = columns  # the parameters' names
        self._se = se  # sqrt([H^{-1}]_jj / n), (p,)
        self.n_params = n_params
        self.effective_df = setup.effective_df
        self.n_samples = setup.n_samples
        self.df_resid = setup.n_samples - setup.effective_df
        self.scale = setup.scale
        self.scale_estimated = setup.estimated

    def __repr__(self) -> str:
        return (
            f"Diagnostics(loss={self._setup.loss!r}, n={self.n_samples}, effective_df="
            f"{self.effective_df:.6g}, scale={self.scale:.6g})"
        )

    # -- helpers ---------------------------------------------------------------------------
    def _column(self, name: str, label: str):
        values = self._terms[:, _COLUMN[name]]
        if self._rows is None:
            return values
        return D.label_vector(np.asarray(values), self._rows, label)

    def _require_external(self, what: str) -> None:
        if not self._setup.external:
            raise ValueError(
                f"{what} needs the scale estimated without each row (externally studentised), which "
                f"exists for the squared loss with an estimated scale only (this is the {self._setup.loss} "
                f"loss, scale {'estimated' if self.scale_estimated else 'fixed'} at {self.scale:.6g}): "
                "use resid_studentized_internal and dffits_internal (statsmodels' GLMInfluence has no "
                "external ones either)"
            )

    def _frame(self, values, prefix=""):
        if self._rows is None:
            return values
        pd = D.require_pandas()
        names = [prefix + str(name) for name in self._columns]
        return pd.DataFrame(np.asarray(values), index=D._index(self._rows, "train_row"), columns=names)

    # -- the statistics ----------------------------------------------------------------------
    @property
    def leverage(self):
        """h_i, the diagonal of the penalised fit's hat matrix, in [0, 1): :meth:`Influence.leverage`."""
        return self._column("hat_diag", "hat_diag")

    hat_matrix_diag = leverage

    @property
    def resid(self):
        """-loss'_i: the response residual y_i - mu_i (the smooth hinge: its score residual)."""
        return self._column("resid", "resid")

    @property
    def resid_pearson(self):
        """r_i = sqrt(s_i) (y_i - mu_i) / sqrt(V(mu_i)) = -sqrt(s_i) loss'_i / sqrt(loss''_i)
        (NaN where loss''_i underflows to 0)."""
        return self._column("resid_pearson", "resid_pearson")

    @property
    def resid_studentized_internal(self):
        """r_i / sqrt(phi (1 - h_i)), statsmodels' ``resid_studentized_internal`` (OLS) and
        ``resid_studentized`` (GLM): positive above the fit."""
        return self._column("standard_resid", "standard_resid")

    resid_studentized = resid_studentized_internal

    @property
    def resid_studentized_external(self):
        """r_i / sqrt(sigma2_(i) (1 - h_i)), sigma2_(i) the scale estimate of the exact refit without
        row i, ``RSS_(i) / (n - 1 - p_eff(i))``. Squared loss with an estimated scale only."""
        self._require_external("resid_studentized_external")
        return self._column("student_resid", "student_resid")

    @property
    def sigma_loo(self):
        """sqrt(sigma2_(i)), the residual standard deviation of the refit without row i (squared loss,
        estimated scale): statsmodels' ``sqrt(sigma2_not_obsi)``."""
        self._require_external("sigma_loo")
        return self._column("sigma_loo", "sigma_loo")

    @property
    def cooks_distance(self):
        """D_i = r_int_i^2 h_i / ((1 - h_i) p_eff) >= 0: ``(theta - theta_(i))^T (n H) (theta -
        theta_(i)) / (p_eff phi)`` for the one-step (squared loss: exact) theta_(i)."""
        return self._column("cooks_d", "cooks_d")

    @property
    def dffits_internal(self):
        """r_int_i sqrt(h_i / (1 - h_i)); its sign is that of the residual."""
        return self._column("dffits_internal", "dffits_internal")

    @property
    def dffits(self):
        """r_ext_i sqrt(h_i / (1 - h_i)) = (yhat_i - yhat_(i)) / (sigma_(i) sqrt(h_i)) at l2 = 0
        (squared loss, estimated scale)."""
        self._require_external("dffits")
        return self._column("dffits", "dffits")

    @property
    def dffits_threshold(self) -> float:
        """2 sqrt(p_eff / n), the usual cut-off for the magnitude of DFFITS."""
        return 2.0 * float(np.sqrt(self.effective_df / self.n_samples))

    @property
    def loo_linear_predictor(self):
        """eta_(i), the linear predictor at x_i of the fit without row i (one Newton step)."""
        return self._column("loo_linear_predictor", "loo_linear_predictor")

    @property
    def loo_predictions(self):
        """mu(eta_(i)): the prediction at x_i of the fit without row i (mean, probability of the
        positive class, Poisson mean; the decision value for the smooth hinge). Exact for the squared
        loss, one Newton step otherwise."""
        return self._column("loo_prediction", "loo_prediction")

    @property
    def resid_press(self):
        """y_i - mu(eta_(i)), the leave-one-out (PRESS) residual: e_i / (1 - h_i) for the squared
        loss, at any l2 (exact); one Newton step for the GLMs. Not defined for the smooth hinge."""
        if MEANS[self._setup.loss] is None:
            raise ValueError(
                "resid_press is not defined for the smooth hinge: it has no mean response (its labels "
                "are classes, its prediction a decision value); use loo_predictions"
            )
        return self._column("resid_press", "resid_press")

    @property
    def ess_press(self) -> float:
        """sum_i resid_press_i^2 (statsmodels' ``ess_press``; unweighted), computed now."""
        values = self._terms[:, _COLUMN["resid_press"]]
        total = (values * values).sum()
        return float(total.compute() if self._lazy else total)

    def _compute_dfbeta(self):
        if self._dfbeta is None:
            self._dfbeta = -self._dfbeta_thunk()
        return self._dfbeta

    @property
    def dfbeta(self):
        """theta - theta_(i), (k, p), by one Newton step without row i (exact for the squared loss):
        minus :meth:`Influence.loo_params` ``(method="newton")``, statsmodels' sign."""
        return self._frame(self._compute_dfbeta())

    @property
    def dfbetas(self):
        """dfbeta_ij / (sigma sqrt([(n H)^{-1}]_jj)), (k, p): sigma = sigma_(i) for the squared loss
        with an estimated scale (OLSInfluence), sqrt(phi) otherwise (GLMInfluence: ``d_params / bse``)."""
        return self._frame(self._dfbetas())

    def _dfbetas(self):
        dfbeta = self._compute_dfbeta()
        if self._setup.external:
            return dfbeta / (self._terms[:, _COLUMN["sigma_loo"]][:, None] * self._se[None, :])
        return dfbeta / (np.sqrt(self.scale) * self._se[None, :])

    def summary_frame(self):
        """statsmodels' ``summary_frame()``: the columns ``dfb_<parameter>`` (dfbetas), then
        ``cooks_d, standard_resid, hat_diag, dffits_internal`` and, where the external scale
        exists (squared loss), ``student_resid, dffits`` (OLSInfluence's layout; GLMInfluence's
        without them).

        Returns
        -------
        pandas.DataFrame (k, p + 4 or p + 6), indexed by the training rows (their labels for a
        frame, positions otherwise; a lazy ``dask.dataframe.DataFrame`` on Dask). The parameters are
        named by the feature columns (``x0, x1, ...`` for arrays) and ``intercept``, in ``theta``'s
        order (the intercept last, where statsmodels puts its constant where the design has it).
        """
        names = OLS_SUMMARY if self._setup.external else GLM_SUMMARY
        columns = [f"dfb_{name}" for name in self._columns] + list(names)
        dfbetas = self._dfbetas()
        stats = self._terms[:, [_COLUMN[name] for name in names]]
        if self._lazy:
            import dask.array as da
            import dask.dataframe as dd

            return dd.from_dask_array(da.concatenate([dfbetas, stats], axis=1), columns=columns)
        pd = D.require_pandas("summary_frame")
        rows = range(len(stats)) if self._rows is None else self._rows
        return pd.DataFrame(
            np.concatenate([dfbetas, stats], axis=1), index=D._index(rows, "train_row"), columns=columns
        )
