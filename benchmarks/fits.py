"""W0: the fit itself, fastinfluence's against scikit-learn's solvers on the same objective.

Every model minimises R(theta) = (1/n) sum_i loss(y_i, x_i . w + b) + (l2/2) ||w||^2 (b not
penalised). scikit-learn writes each objective its own way; the penalty maps exactly:

- ``LogisticRegression`` minimises ``C sum_i loss_i + ||w||^2 / 2``: R / (n l2) with ``C = 1 / (n l2)``
  (internally scikit-learn divides by n, so its ``tol`` is on the gradient of R itself);
- ``PoissonRegressor`` minimises ``(1/2n) sum_i deviance_i + (alpha/2) ||w||^2``; half the unit
  deviance is ``exp(eta) - y eta`` plus a term free of eta, so ``alpha = l2``;
- ``Ridge`` minimises ``||y - X w - b||^2 + alpha ||w||^2``: 2 n R with ``alpha = n l2``.

Each timed call is one fit from scratch. After the timed calls the worker evaluates the
gradient of R at the returned theta with fastinfluence's own kernel (``fi.kernels.gradient``,
the same for every side), untimed, and the parent compares every solution with
fastinfluence's (:func:`annotate`).
"""

from __future__ import annotations

import warnings

import numpy as np
from workloads import L2, METHOD_LABELS

#: scikit-learn's solvers, by method name: (estimator, solver, tol); the tolerance is on max |grad R|
#: (and half the squared Newton decrement for newton-cholesky). 1e-10 is fastinfluence's own tol's value
#: (whose rule is on the decrement relative to R(0)); 1e-4 is scikit-learn's default.
SKLEARN_SOLVERS = {
    "sklearn_newton_cholesky": ("newton-cholesky", 1e-10),
    "sklearn_newton_cholesky_default": ("newton-cholesky", 1e-4),
    "sklearn_lbfgs": ("lbfgs", 1e-10),
    "sklearn_ridge": ("cholesky", None),
}

FIT_LABELS = {method: METHOD_LABELS[method] for method in SKLEARN_SOLVERS}

#: The fastinfluence model and the loss of its objective, by workload data.
MODELS = {
    "dense": ("LogisticRegression", "logistic"),
    "poisson": ("PoissonRegression", "poisson"),
    "linear": ("LinearRegression", "squared"),
}


def model_class(w):
    """The fastinfluence estimator of a workload (logistic unless its data say otherwise)."""
    import fastinfluence as fi

    if w.classes:
        return fi.MultinomialLogisticRegression
    return getattr(fi, MODELS.get(w.data, MODELS["dense"])[0])


def sklearn_estimator(data: str, method: str, n: int):
    """The scikit-learn estimator minimising the same R as fastinfluence's model with l2 = L2."""
    from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge

    solver, tol = SKLEARN_SOLVERS[method]
    if data == "linear":
        return Ridge(alpha=n * L2, solver=solver)
    if data == "poisson":
        return PoissonRegressor(alpha=L2, solver=solver, tol=tol, max_iter=10_000)
    return LogisticRegression(C=1.0 / (n * L2), solver=solver, tol=tol, max_iter=10_000)


def fastinfluence_fit(ctx, timer):
    """fi.<Model>(l2=L2).fit(X, y) at its default tol (1e-10 on the relative Newton decrement)."""
    with timer("fit"):
        model = ctx["model_class"](l2=L2, n_jobs=ctx["n_jobs"]).fit(ctx["X"], ctx["y"])
    return {"theta": model.theta_, "n_iter": np.asarray(model.n_iter_ + model.polish_steps_)}


def sklearn_fit(method):
    def fit(ctx, timer):
        X = ctx["X"]
        estimator = sklearn_estimator(ctx["data"], method, X.shape[0])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with timer("fit"):
                estimator.fit(X, ctx["y"])
        n_iter = getattr(estimator, "n_iter_", None)
        return {
            "theta": np.append(np.ravel(estimator.coef_), estimator.intercept_),
            "n_iter": np.asarray(-1 if n_iter is None else np.max(n_iter)),
            "warnings": np.asarray(len(caught)),
        }

    def prepare(ctx):
        """scikit-learn's lazy imports and first-call costs, untimed, as the worker's own fit is for ours."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sklearn_estimator(ctx["data"], method, 1000).fit(ctx["X"][:1000], ctx["y"][:1000])

    fit.__doc__ = f"scikit-learn, {FIT_LABELS[method]}, on the same R (the penalty mapped as above)."
    fit.prepare = prepare
    return fit


FIT_METHODS = {("fit", "fastinfluence"): fastinfluence_fit} | {
    ("fit", method): sklearn_fit(method) for method in SKLEARN_SOLVERS
}


def gradient_diagnostics(ctx, result) -> dict:
    """||grad R(theta)||_2 and max |grad R| at a side's theta, by fastinfluence's kernel (untimed)."""
    import fastinfluence as fi

    loss = MODELS[ctx["data"]][1]
    g = fi.kernels.gradient(loss, ctx["X"], ctx["y"], result["theta"], l2=L2)
    return {"grad_norm": np.asarray(np.linalg.norm(g)), "grad_max": np.asarray(np.max(np.abs(g)))}


#: Coefficients of a solver that has converged agree with fastinfluence's to within this (relative to
#: the largest); a wrong mapping of l2 shows up as a difference of order one.
COEFFICIENT_TOLERANCE = 1e-4


def annotate(rows: list[dict], outputs: dict) -> None:
    """Check every W0 row against fastinfluence's solution; set the attributes of the W0 targets.

    The check column gives the coefficients' relative difference from fastinfluence's and the
    side's gradient norm; the fastinfluence row gets ``time_ratio_vs_<method>`` (its median over
    the other's) and ``grad_ratio_vs_<method>`` (its gradient norm over the other's).
    """
    ours = outputs["fastinfluence"]
    ours_row = next(row for row in rows if row["method"] == "fastinfluence")
    for row in rows:
        row["grad_norm"] = float(outputs[row["method"]]["grad_norm"])
    for row in rows:
        out = outputs[row["method"]]
        row["fit_iterations_timed"] = int(out["n_iter"])
        scale = float(np.max(np.abs(ours["theta"]))) or 1.0
        diff = float(np.max(np.abs(out["theta"] - ours["theta"]))) / scale
        row["coef_rel_diff"] = diff
        text = (
            f"||grad R|| {row['grad_norm']:.1e}, max|g| {float(out['grad_max']):.0e}, "
            f"iters {int(out['n_iter'])}"
        )
        if row["method"] == "fastinfluence":
            row["check_ok"], row["check"] = True, text
            continue
        if "warnings" in out and int(out["warnings"]):
            text += f", {int(out['warnings'])} warning(s)"
        row["check_ok"] = diff <= COEFFICIENT_TOLERANCE
        row["check"] = f"coef rel diff vs fastinfluence {diff:.1e}; {text}"
        ours_row[f"time_ratio_vs_{row['method']}"] = ours_row["median_s"] / row["median_s"]
        ours_row[f"grad_ratio_vs_{row['method']}"] = ours_row["grad_norm"] / max(row["grad_norm"], 1e-300)


def targets(workloads: dict) -> list[tuple]:
    """W0's targets, in run.py's TARGETS form: at least as fast as each scikit-learn solver, and a
    gradient norm no larger than its."""
    found = []
    for name, w in workloads.items():
        if w.quantity != "fit":
            continue
        for method in w.methods:
            if method == "fastinfluence":
                continue
            label = FIT_LABELS[method]
            found.append((name, "fastinfluence", f"median / {label}'s", f"time_ratio_vs_{method}", "<=", 1.0))
            found.append(
                (name, "fastinfluence", f"||grad R|| / {label}'s", f"grad_ratio_vs_{method}", "<=", 1.0)
            )
    return found
