"""Regression diagnostics (``Influence.diagnostics``) against statsmodels and against refits.

At l2 = 0 every statistic must equal statsmodels' ``OLSInfluence`` (squared loss) or
``GLMInfluence`` (logistic, Poisson) on its own data sets, to 1e-9 relative to each column's
largest magnitude (entries near 0 carry the rounding of the whole column: longley's design has a
condition number near 1e9, so statsmodels' own OLS and GLM paths differ by 1e-9 entry by entry).
With l2 > 0 the refit quantities (LOO residuals and predictions, DFBETA, the scale without row i)
must equal brute-force refits for the squared loss (its objective is quadratic: they are exact),
and for the GLMs the one-step statistics must equal one explicit Newton step without the row.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import make_data, make_model

import fastinfluence as fi

sm = pytest.importorskip("statsmodels.api")
pd = pytest.importorskip("pandas")

#: The issue's acceptance tolerance against statsmodels.
RTOL = 1e-9

LOSSES = ("squared", "logistic", "poisson", "smooth_hinge")


def assert_agree(actual, desired, rtol=RTOL, err_msg=""):
    """Equal to ``rtol`` relative to the largest magnitude of ``desired`` (column by column for 2-d)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, err_msg
    scale = np.max(np.abs(desired), axis=0) if desired.size else 0.0
    bound = np.broadcast_to(rtol * scale + 1e-300, desired.shape)
    np.testing.assert_array_less(np.abs(actual - desired), bound, err_msg=err_msg)


def _statsmodels_name(column: str) -> str:
    return "dfb_const" if column == "dfb_intercept" else column


def _compare_summary(ours, reference):
    """Every column of statsmodels' summary_frame in ours, by name, and the index."""
    assert len(ours.columns) == len(reference.columns)
    for column in ours.columns:
        assert_agree(ours[column], reference[_statsmodels_name(column)], err_msg=column)
    assert list(ours.index) == list(reference.index)


# -- statsmodels' data sets, l2 = 0 ----------------------------------------------------------------
def _ols_data(name):
    data = getattr(sm.datasets, name).load_pandas()
    return data.exog, data.endog


@pytest.mark.parametrize("name", ["longley", "stackloss"])
@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_ols_equals_statsmodels(name, backend):
    X, y = _ols_data(name)
    reference = sm.OLS(y, sm.add_constant(X)).fit().get_influence()
    model = fi.LinearRegression(l2=0.0, backend=backend).fit(X, y)
    diag = fi.Influence(model, X, y, backend=backend).diagnostics()
    _compare_summary(diag.summary_frame(), reference.summary_frame())
    assert diag.effective_df == pytest.approx(X.shape[1] + 1, rel=1e-12)
    assert diag.scale == pytest.approx(reference.scale, rel=RTOL)
    assert_agree(diag.leverage, reference.hat_matrix_diag)
    assert_agree(diag.cooks_distance, reference.cooks_distance[0])
    assert_agree(diag.resid_studentized_internal, reference.resid_studentized_internal)
    assert_agree(diag.resid_studentized_external, reference.resid_studentized_external)
    assert_agree(diag.sigma_loo, np.sqrt(reference.sigma2_not_obsi))
    assert_agree(diag.dffits, reference.dffits[0])
    assert_agree(diag.dffits_internal, reference.dffits_internal[0])
    assert_agree(diag.resid_press, reference.resid_press)
    assert diag.ess_press == pytest.approx(reference.ess_press, rel=RTOL)
    assert diag.dffits_threshold == pytest.approx(reference.dffits[1], rel=1e-12)
    # theta's order is (features, intercept); statsmodels' (const, features); same sign
    order = [*list(range(1, X.shape[1] + 1)), 0]
    assert_agree(diag.dfbeta.to_numpy(), reference.dfbeta[:, order])
    assert_agree(diag.dfbetas.to_numpy(), reference.dfbetas[:, order])
    assert_agree(diag.loo_predictions, y - reference.resid_press)
    assert isinstance(diag.leverage, pd.Series)
    assert diag.leverage.index.equals(X.index)


def _glm_cases():
    spector = sm.datasets.spector.load_pandas()
    cpunish = sm.datasets.cpunish.load_pandas()
    X_c = cpunish.exog.copy()
    X_c["INCOME"] = np.log(X_c["INCOME"])  # raw units otherwise: exp(eta) spans 1e8
    fair = sm.datasets.fair.load_pandas()
    randhie = sm.datasets.randhie.load_pandas()
    affairs = (fair.endog > 0).astype(float)
    fair_X = fair.exog[["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]]
    return {
        "spector-logistic": (fi.LogisticRegression, spector.exog, spector.endog, sm.families.Binomial()),
        "fair-binarised-logistic": (fi.LogisticRegression, fair_X, affairs, sm.families.Binomial()),
        "cpunish-poisson": (fi.PoissonRegression, X_c, cpunish.endog, sm.families.Poisson()),
        "randhie-poisson": (fi.PoissonRegression, randhie.exog, randhie.endog, sm.families.Poisson()),
    }


GLM_CASES = _glm_cases()


@pytest.mark.parametrize("case", sorted(GLM_CASES))
@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_glm_equals_statsmodels(case, backend):
    cls, X, y, family = GLM_CASES[case]
    result = sm.GLM(y, sm.add_constant(X), family=family).fit(tol=1e-14)
    reference = result.get_influence()
    model = cls(l2=0.0, backend=backend).fit(X, y)
    diag = fi.Influence(model, X, y, backend=backend).diagnostics()
    _compare_summary(diag.summary_frame(), reference.summary_frame())
    assert diag.scale == 1.0
    assert not diag.scale_estimated
    order = [*list(range(1, X.shape[1] + 1)), 0]
    # d_params: statsmodels' one-step theta - theta_(i), the sign of dfbeta
    assert_agree(diag.dfbeta.to_numpy(), reference.d_params[:, order])
    assert_agree(diag.resid_studentized, reference.resid_studentized)
    assert_agree(diag.resid_pearson, result.resid_pearson)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "this ignores offset and exposure"
        one_step = reference._fittedvalues_one
    assert_agree(diag.loo_predictions, one_step)
    assert_agree(diag.resid_press, y - one_step)
    with pytest.raises(ValueError, match="squared loss with an estimated scale"):
        diag.resid_studentized_external  # noqa: B018


def test_glm_with_weights_and_pearson_scale_equals_statsmodels():
    """sample_weight is statsmodels' var_weights; scale="pearson" is its scale="X2"."""
    _, X, y, family = GLM_CASES["cpunish-poisson"]
    s = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    result = sm.GLM(y, sm.add_constant(X), family=family, var_weights=s).fit(scale="X2", tol=1e-14)
    model = fi.PoissonRegression(l2=0.0).fit(X, y, sample_weight=s)
    diag = fi.Influence(model, X, y, sample_weight=s).diagnostics(scale="pearson")
    assert diag.scale == pytest.approx(result.scale, rel=RTOL)
    assert diag.scale_estimated
    _compare_summary(diag.summary_frame(), result.get_influence().summary_frame())


def test_gaussian_glm_and_weighted_least_squares():
    """The squared loss with weights against GLM Gaussian with var_weights (WLS): everything but
    dfbetas, which OLSInfluence scales by sigma_(i) and GLMInfluence by the full-sample scale."""
    X, y = _ols_data("stackloss")
    s = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    result = sm.GLM(y, sm.add_constant(X), family=sm.families.Gaussian(), var_weights=s).fit()
    reference = result.get_influence()
    diag = fi.Influence(fi.LinearRegression(l2=0.0).fit(X, y, s), X, y, s).diagnostics()
    assert diag.scale == pytest.approx(result.scale, rel=RTOL)
    frame = reference.summary_frame()
    for column in ("cooks_d", "standard_resid", "hat_diag", "dffits_internal"):
        assert_agree(diag.summary_frame()[column], frame[column], err_msg=column)
    order = [*list(range(1, X.shape[1] + 1)), 0]
    assert_agree(diag.dfbeta.to_numpy(), reference.d_params[:, order])
    # with the scale fixed at the full-sample estimate, dfbetas is GLMInfluence's
    fixed = fi.Influence(fi.LinearRegression(l2=0.0).fit(X, y, s), X, y, s).diagnostics(scale=result.scale)
    assert_agree(fixed.dfbetas.to_numpy(), reference.dfbetas[:, order])


# -- l2 > 0: refits ---------------------------------------------------------------------------------
def _refit(model, X, y, s, i):
    """theta_(i) by an exact refit with s_i = 0 (n fixed, as the package's LOO): the response
    function with row i added at weight -s_i / n."""
    weight = 1.0 if s is None else s[i]
    return fi.response_function(model, X, y, X[i : i + 1], y[i : i + 1], -weight / X.shape[0], s)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_ridge_refit_quantities_are_exact(weighted):
    X, y, s = make_data("squared", n=40, d=5, seed=3, weighted=weighted)
    model = make_model("squared", l2=0.3).fit(X, y, s)
    diag = fi.Influence(model, X, y, s).diagnostics()
    weights = np.ones(len(y)) if s is None else s
    n, p = X.shape[0], X.shape[1] + 1
    Xa = np.column_stack([X, np.ones(n)])
    hat = np.diag(
        np.sqrt(weights)[:, None]
        * Xa
        @ np.linalg.solve(
            Xa.T @ (weights[:, None] * Xa) + n * 0.3 * np.diag([1.0] * (p - 1) + [0.0]),
            Xa.T * np.sqrt(weights),
        )
    )
    np.testing.assert_allclose(diag.leverage, hat, rtol=1e-10)
    assert diag.effective_df == pytest.approx(hat.sum(), rel=1e-10)
    assert diag.effective_df < p  # the penalty shrinks the effective number of parameters
    e = y - model.predict(X)
    assert diag.scale == pytest.approx(np.sum(weights * e * e) / (n - hat.sum()), rel=1e-10)
    for i in (0, 7, 21):
        theta_i = _refit(model, X, y, s, i)
        np.testing.assert_allclose(diag.dfbeta[i], model.theta_ - theta_i, rtol=1e-7, atol=1e-10)
        prediction = Xa[i] @ theta_i
        assert diag.loo_predictions[i] == pytest.approx(prediction, rel=1e-9)
        assert diag.resid_press[i] == pytest.approx(y[i] - prediction, rel=1e-7)
        # the refit's own scale estimate: RSS over the other rows, n - 1 - tr(its hat)
        keep = np.arange(n) != i
        w_i = weights.copy()
        w_i[i] = 0.0
        A_i = Xa.T @ (w_i[:, None] * Xa) + n * 0.3 * np.diag([1.0] * (p - 1) + [0.0])
        p_eff_i = np.trace(np.linalg.solve(A_i, Xa.T @ (w_i[:, None] * Xa)))
        resid_i = (y - Xa @ theta_i)[keep]
        sigma2_i = np.sum(weights[keep] * resid_i**2) / (n - 1 - p_eff_i)
        assert diag.sigma_loo[i] ** 2 == pytest.approx(sigma2_i, rel=1e-8)
        r_ext = np.sqrt(weights[i]) * e[i] / np.sqrt(sigma2_i * (1 - hat[i]))
        assert diag.resid_studentized_external[i] == pytest.approx(r_ext, rel=1e-8)
    # e_i / (1 - h_i): the closed form of the ridge PRESS residual
    np.testing.assert_allclose(diag.resid_press, e / (1 - hat), rtol=1e-9)


@pytest.mark.parametrize("name", ["logistic", "poisson", "smooth_hinge"])
def test_glm_one_step_is_one_newton_step_and_close_to_refits(name):
    X, y, _s = make_data(name, n=80, d=4, seed=5)
    model = make_model(name, l2=0.05).fit(X, y)
    inf = fi.Influence(model, X, y)
    diag = inf.diagnostics()
    # dfbeta is minus the package's Newton LOO (one formula, not two)
    np.testing.assert_array_equal(diag.dfbeta, -inf.loo_params(method="newton"))
    n = X.shape[0]
    Xa = np.column_stack([X, np.ones(n)])
    for i in (0, 13, 42):
        # one explicit Newton step on the objective without row i, from theta
        weights = np.ones(n)
        weights[i] = 0.0
        options = {"weights": weights, "l2": model.l2, "t": model.loss.t}
        gradient = fi.kernels.gradient(model.loss.name, X, y, model.theta_, **options)
        hessian = fi.kernels.hessian(model.loss.name, X, y, model.theta_, **options)
        step = -np.linalg.solve(hessian, gradient)
        np.testing.assert_allclose(diag.dfbeta[i], -step, rtol=1e-8, atol=1e-12)
        assert diag.loo_linear_predictor[i] == pytest.approx(Xa[i] @ (model.theta_ + step), rel=1e-9)
        # and close to the refit (second order in the removal; the smooth hinge is the least quadratic)
        theta_i = _refit(model, X, y, None, i)
        refit_change = np.linalg.norm(model.theta_ - theta_i)
        assert (
            np.linalg.norm(diag.dfbeta[i] - (model.theta_ - theta_i))
            <= (0.15 if name == "smooth_hinge" else 0.05) * refit_change
        )


def test_signs_and_scale_would_catch_mistakes():
    """A point pushed above the fit: positive residuals, DFFITS and a Cook's distance that grows with
    the push; the scale doubles when the noise does; Cook's distance divides by p_eff."""
    X, y, _ = make_data("squared", n=50, d=3, seed=7)
    y = y.copy()
    y[4] += 6.0
    model = make_model("squared", l2=0.0).fit(X, y)
    diag = fi.Influence(model, X, y).diagnostics()
    assert diag.resid[4] > 0
    assert diag.resid_studentized_external[4] > 3
    assert diag.dffits[4] > 0
    assert np.argmax(diag.cooks_distance) == 4
    # removing row 4 lowers its own prediction: theta - theta_(4) raises xa_4's prediction
    xa = np.append(X[4], 1.0)
    assert xa @ diag.dfbeta[4] > 0
    assert diag.loo_predictions[4] < model.predict(X[4:5])[0]
    scaled = fi.Influence(make_model("squared", l2=0.0).fit(X, 2 * y), X, 2 * y).diagnostics()
    assert scaled.scale == pytest.approx(4 * diag.scale, rel=1e-10)
    np.testing.assert_allclose(scaled.resid_studentized_internal, diag.resid_studentized_internal, rtol=1e-9)
    h, r = diag.leverage, diag.resid_studentized_internal
    np.testing.assert_allclose(diag.cooks_distance, r**2 * h / (1 - h) / 4, rtol=1e-10)
    assert diag.df_resid == pytest.approx(50 - 4, rel=1e-12)


# -- formats, backends, engines ---------------------------------------------------------------------
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("layout", ["dense", "csr", "float32"])
def test_formats_and_backends_agree(name, backend, layout):
    X, y, s = make_data(name, n=70, d=5, seed=2, weighted=True)
    reference_model = make_model(name, backend="numpy").fit(X, y, s)
    reference = fi.Influence(reference_model, X, y, s, backend="numpy").diagnostics()
    if layout == "csr":
        X_used = sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0))
        X_dense = X_used.toarray()
        reference_model = make_model(name, backend="numpy").fit(X_dense, y, s)
        reference = fi.Influence(reference_model, X_dense, y, s, backend="numpy").diagnostics()
    else:
        X_used = X.astype(np.float32) if layout == "float32" else X
    model = make_model(name, backend=backend).fit(X_used, y, s)
    diag = fi.Influence(model, X_used, y, s, backend=backend).diagnostics()
    rtol = 1e-4 if layout == "float32" else 1e-9
    ours, theirs = diag.summary_frame(), reference.summary_frame()
    assert list(ours.columns) == list(theirs.columns)
    for column in ours.columns:
        assert_agree(ours[column], theirs[column], rtol=rtol, err_msg=column)
    assert_agree(diag.loo_predictions, reference.loo_predictions, rtol=rtol)


@pytest.mark.parametrize("name", ["squared", "poisson"])
def test_cg_solver_agrees_with_direct(name):
    X, y, _ = make_data(name, n=60, d=5, seed=8)
    model = make_model(name, l2=0.1).fit(X, y)
    direct = fi.Influence(model, X, y).diagnostics().summary_frame()
    options = {"tol": 1e-13}
    iterative = fi.Influence(model, X, y, solver="cg", solver_options=options).diagnostics().summary_frame()
    assert_agree(iterative.to_numpy(), direct.to_numpy(), rtol=1e-8)


def test_indices_select_rows_and_keep_the_global_scale():
    X, y, _ = make_data("squared", n=30, d=3, seed=1)
    frame = pd.DataFrame(X, columns=["a", "b", "c"], index=[f"r{i}" for i in range(30)])
    inf = fi.Influence(make_model("squared").fit(frame, y), frame, y)
    full, some = inf.diagnostics(), inf.diagnostics(indices=[3, 17])
    assert some.scale == full.scale
    assert some.effective_df == full.effective_df
    table = some.summary_frame()
    assert list(table.index) == ["r3", "r17"]
    assert list(table.columns[:4]) == ["dfb_a", "dfb_b", "dfb_c", "dfb_intercept"]
    pd.testing.assert_frame_equal(table, full.summary_frame().loc[["r3", "r17"]])
    assert list(some.dfbeta.columns) == ["a", "b", "c", "intercept"]


def test_arrays_give_arrays_and_a_positional_summary():
    X, y, _ = make_data("logistic", n=40, d=3)
    diag = fi.Influence(make_model("logistic").fit(X, y), X, y).diagnostics()
    assert isinstance(diag.leverage, np.ndarray)
    assert diag.leverage.shape == (40,)
    assert diag.dfbetas.shape == (40, 4)
    table = diag.summary_frame()
    assert list(table.columns) == [
        "dfb_x0", "dfb_x1", "dfb_x2", "dfb_intercept", "cooks_d", "standard_resid", "hat_diag",
        "dffits_internal",
    ]  # fmt: skip
    assert list(table.index) == list(range(40))


def test_inputs_are_not_modified():
    X, y, s = make_data("poisson", n=40, d=3, weighted=True)
    copies = X.copy(), y.copy(), s.copy()
    model = make_model("poisson").fit(X, y, s)
    diag = fi.Influence(model, X, y, s).diagnostics()
    diag.summary_frame()
    for before, after in zip(copies, (X, y, s)):
        np.testing.assert_array_equal(before, after)


def test_smooth_hinge_has_no_press_residual():
    X, y, _ = make_data("smooth_hinge", n=40, d=3)
    diag = fi.Influence(make_model("smooth_hinge").fit(X, y), X, y).diagnostics()
    with pytest.raises(ValueError, match="smooth hinge"):
        diag.resid_press  # noqa: B018
    assert np.all(np.isfinite(diag.cooks_distance))
    assert np.all(diag.cooks_distance >= 0)


def test_bad_input_names_the_argument():
    X, y, _ = make_data("squared", n=30, d=3)
    inf = fi.Influence(make_model("squared").fit(X, y), X, y)
    for bad in ("deviance", -1.0, np.nan, True, [1.0]):
        with pytest.raises(ValueError, match="scale"):
            inf.diagnostics(scale=bad)
    with pytest.raises(ValueError, match="damping"):
        fi.Influence(make_model("squared").fit(X, y), X, y, damping=1e-3).diagnostics()
    with pytest.raises(ValueError, match="indices"):
        inf.diagnostics(indices=[30])
    with pytest.raises(ValueError, match="resid_studentized_external"):
        inf.diagnostics(scale=2.0).resid_studentized_external  # noqa: B018
    Xm = np.random.default_rng(0).standard_normal((30, 3))
    ym = np.arange(30) % 3
    multi = fi.MultinomialLogisticRegression(l2=0.1).fit(Xm, ym)
    with pytest.raises(ValueError, match="leverage_blocks"):
        fi.Influence(multi, Xm, ym).diagnostics()


def test_a_row_of_leverage_one_gets_nan_and_a_warning():
    """A feature only row 0 has: h_0 = 1 at l2 = 0, so its statistics that divide by 1 - h_0 are
    NaN (statsmodels gives 0/0 there too), the others stay finite."""
    X, y, _ = make_data("squared", n=30, d=3, seed=2)
    X = np.column_stack([X, np.eye(30)[0]])
    inf = fi.Influence(fi.LinearRegression(l2=0.0).fit(X, y), X, y)
    with pytest.warns(fi.LeverageWarning, match="1 training point"):
        diag = inf.diagnostics()
    assert diag.leverage[0] == pytest.approx(1.0, abs=1e-9)
    for values in (diag.cooks_distance, diag.resid_press, diag.resid_studentized_external, diag.dffits):
        assert np.isnan(values[0])
        assert np.all(np.isfinite(values[1:]))


def test_rows_in_another_order_give_the_same_statistics_in_that_order():
    X, y, s = make_data("logistic", n=50, d=3, seed=9, weighted=True)
    order = np.random.default_rng(0).permutation(50)
    first = fi.Influence(make_model("logistic").fit(X, y, s), X, y, s).diagnostics().summary_frame()
    model = make_model("logistic").fit(X[order], y[order], s[order])
    second = fi.Influence(model, X[order], y[order], s[order]).diagnostics().summary_frame()
    assert_agree(second.to_numpy(), first.to_numpy()[order], rtol=1e-9)


def test_an_interpolating_fit_asks_for_a_scale():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    y = rng.standard_normal(4)
    inf = fi.Influence(fi.LinearRegression(l2=0.0).fit(X, y), X, y)
    with pytest.raises(ValueError, match="pass scale="):
        inf.diagnostics()


def test_dask_matches_in_memory():
    da = pytest.importorskip("dask.array")
    import fastinfluence.dask as fid

    for name in ("squared", "poisson"):
        X, y, s = make_data(name, n=60, d=4, seed=4, weighted=True)
        model = make_model(name).fit(X, y, s)
        memory = fi.Influence(model, X, y, s).diagnostics()
        lazy = fid.Influence(model, da.from_array(X, chunks=(25, -1)), da.from_array(y, chunks=25),
                             da.from_array(s, chunks=25)).diagnostics()  # fmt: skip
        assert lazy.scale == pytest.approx(memory.scale, rel=1e-12)
        assert hasattr(lazy.leverage, "dask")
        for attribute in ("leverage", "cooks_distance", "resid_press", "loo_predictions", "dfbetas"):
            assert_agree(getattr(lazy, attribute).compute(), getattr(memory, attribute), err_msg=attribute)
        frame = lazy.summary_frame().compute()
        assert list(frame.columns) == list(memory.summary_frame().columns)
        assert_agree(frame.to_numpy(), memory.summary_frame().to_numpy())
