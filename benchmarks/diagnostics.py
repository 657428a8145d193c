"""W6: regression diagnostics, fastinfluence's ``summary_frame()`` against statsmodels'.

Both sides fit the same unpenalised model (l2 = 0: statsmodels has no penalty); statsmodels
starts its fit from fastinfluence's theta, so both report the diagnostics of one optimum. Timed:
``fi.Influence(model, X, y).diagnostics().summary_frame()`` against
``results.get_influence().summary_frame()``, both fits untimed (statsmodels' results have their
cached attributes cleared before each call).

- W6L, logistic regression (``GLM`` with a binomial family), n = 100,000, d = 50: statsmodels'
  ``GLMInfluence`` uses one-step statistics, as fastinfluence does;
- W6S, least squares (``OLS``), at n = 1,000 only: statsmodels' ``OLSInfluence`` refits the model
  without each row for its DFBETAS (n refits of n x p), 14 s at n = 1,000 and growing as n^2;
  fastinfluence's at n = 100,000 is W6S100k, without a baseline to time against.

The check: every statsmodels column equals fastinfluence's column of the same name to 1e-8 of
the column's largest value.
"""

from __future__ import annotations

import numpy as np
from methods import PhaseTimer

#: A column agrees when max |ours - theirs| <= this times max |theirs|.
COLUMN_TOLERANCE = 1e-8


def _design(X):
    return np.hstack([X, np.ones((X.shape[0], 1))])  # fastinfluence's layout: the intercept last


def statsmodels_summary_frame(ctx, timer):
    """statsmodels' get_influence().summary_frame() of the fit at fastinfluence's theta (fitted untimed,
    by prepare; its cached attributes cleared before each call, so each computes from the fit alone)."""
    results = ctx["statsmodels_results"]
    results._cache.clear()  # statsmodels' cache_readonly values: mu, resid, ...
    with timer("summary_frame"):
        frame = results.get_influence().summary_frame()
    return {"frame": frame.to_numpy(), "columns": np.asarray(_names(frame.columns, ctx["X"].shape[1]))}


def _statsmodels_fit(ctx):
    import statsmodels.api as sm

    Xa = _design(ctx["X"])
    if ctx["data"] == "linear":
        ctx["statsmodels_results"] = sm.OLS(ctx["y"], Xa).fit()
    else:
        model = sm.GLM(ctx["y"], Xa, family=sm.families.Binomial())
        ctx["statsmodels_results"] = model.fit(start_params=ctx["theta"], tol=1e-13)


statsmodels_summary_frame.prepare = _statsmodels_fit  # type: ignore[attr-defined]


def fastinfluence_summary_frame(ctx, timer):
    import fastinfluence as fi

    with timer("construct"):
        inf = fi.Influence(ctx["model"], ctx["X"], ctx["y"], n_jobs=ctx["n_jobs"])
    with timer("summary_frame"):
        frame = inf.diagnostics().summary_frame()
    return {"frame": frame.to_numpy(), "columns": np.asarray(_names(frame.columns, ctx["X"].shape[1]))}


def _names(columns, d):
    """statsmodels names its DFBETAS columns after the exog names (const, x1, ..); one naming for both."""
    names = [str(c) for c in columns]
    dfb = [c for c in names if c.startswith("dfb_")]
    renamed = {old: f"dfb_{j}" for j, old in enumerate(dfb)}
    assert len(dfb) in (0, d + 1), f"expected {d + 1} DFBETAS columns, got {len(dfb)}"
    return [renamed.get(c, c) for c in names]


def _warm_up(ctx):
    """pandas and the diagnostics' first-call costs, untimed, as the worker's fit warms up the rest."""
    fastinfluence_summary_frame(ctx, PhaseTimer())  # its timings are discarded


fastinfluence_summary_frame.prepare = _warm_up  # type: ignore[attr-defined]

DIAGNOSTICS_METHODS = {
    ("diagnostics", "statsmodels"): statsmodels_summary_frame,
    ("diagnostics", "fastinfluence"): fastinfluence_summary_frame,
}


def check(ours, base) -> tuple[bool, str]:
    """Every column of statsmodels' frame against fastinfluence's column of the same name."""
    our_columns = [str(c) for c in ours["columns"]]
    worst, worst_name, missing = 0.0, "", []
    for j, name in enumerate(str(c) for c in base["columns"]):
        if name not in our_columns:
            missing.append(name)
            continue
        theirs, mine = base["frame"][:, j], ours["frame"][:, our_columns.index(name)]
        diff = float(np.max(np.abs(mine - theirs)) / max(float(np.max(np.abs(theirs))), 1e-300))
        if not diff <= worst:  # NaN counts as the worst
            worst, worst_name = diff, name
    passed = not missing and worst <= COLUMN_TOLERANCE
    text = f"{len(base['columns'])} columns, largest rel diff {worst:.1e} ({worst_name})"
    return passed, text + (f"; missing {missing}" if missing else "")
