"""Removing groups of rows: how far the first-order estimate and the Newton estimate are from the
refit (Koh, Ang, Teo & Liang 2019, "On the accuracy of influence functions for measuring group
effects").

statsmodels' `fair` data (6366 women, raw units; y = any affair), logistic regression with
l2 = 1e-3 on six features, the quantity the mean loss on a held-out fifth. Groups of 1 row to
20% of the training rows, drawn at random (8 per size), and coherent groups (every row of one
occupation, one religiousness level, one number of children). For each, the predicted change
of the held-out loss (first order: the sum of single-row influences; Newton: one exact Newton
step without the group, a Woodbury solve) against the exact refit without the group.

Run: python examples/group_effects.py [--plot groups.png]
"""

import argparse

import numpy as np
import statsmodels.api as sm
from scipy.stats import pearsonr, spearmanr

import fastinfluence as fi
from fastinfluence import targets as T

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--plot", default=None, help="draw predicted against actual group effects")
parser.add_argument("--per-size", type=int, default=8, help="random groups of each size")
args = parser.parse_args()

data = sm.datasets.fair.load_pandas().data
features = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]
rng = np.random.default_rng(0)
test = rng.random(len(data)) < 0.2
train, held_out = data[~test].reset_index(drop=True), data[test]
X, y = train[features].to_numpy(), (train["affairs"] > 0).to_numpy()
n = len(y)
model = fi.LogisticRegression(l2=1e-3).fit(X, y)
inf = fi.Influence(model, X, y)
target = T.MeanTestLoss(held_out[features].to_numpy(), (held_out["affairs"] > 0).to_numpy())
print(f"fair: {n} training rows, {int(test.sum())} held out, {len(features)} features (raw units)")

sizes = [1, 10, int(0.01 * n), int(0.02 * n), int(0.05 * n), int(0.1 * n), int(0.2 * n)]
groups, kinds = [], []
for size in sizes:
    for _ in range(args.per_size):
        groups.append(np.sort(rng.choice(n, size, replace=False)))
        kinds.append(f"random {size}")
for column in ("occupation", "religious", "children"):
    for value in np.unique(train[column]):
        members = np.flatnonzero(train[column].to_numpy() == value)
        if 0 < members.size <= 0.5 * n:
            groups.append(members)
            kinds.append(f"{column} = {value:g}")

estimates = {method: inf.groups(groups).loo_on(target, method)[:, 0] for method in ("influence", "newton")}
actual = fi.exact_group_loo_on(model, X, y, groups, target)[:, 0]
group_sizes = np.array([g.size for g in groups])

print(f"\n{'groups':<22} {'rows':>6}   {'first order':>22}   {'Newton':>22}")
print(f"{'':<22} {'':>6}   {'Pearson Spearman ratio':>22}   {'Pearson Spearman ratio':>22}")


def summary(selected):
    """Pearson, Spearman, and the median ratio predicted / actual (1 = right; below 1: underestimated)."""
    out = []
    for method in ("influence", "newton"):
        predicted, truth = estimates[method][selected], actual[selected]
        ratio = float(np.median(predicted / truth))
        if selected.sum() > 2:
            out.append((pearsonr(predicted, truth)[0], spearmanr(predicted, truth)[0], ratio))
        else:
            out.append((np.nan, np.nan, ratio))
    return out


for size in sizes:
    selected = group_sizes == size
    selected &= np.array([kind.startswith("random") for kind in kinds])
    (p1, s1, r1), (p2, s2, r2) = summary(selected)
    print(f"{'random':<22} {size:>6}   {p1:7.3f} {s1:8.3f} {r1:6.3f}   {p2:7.3f} {s2:8.3f} {r2:6.3f}")
coherent = np.array([not kind.startswith("random") for kind in kinds])
(p1, s1, r1), (p2, s2, r2) = summary(coherent)
print(f"{'coherent (all)':<22} {'':>6}   {p1:7.3f} {s1:8.3f} {r1:6.3f}   {p2:7.3f} {s2:8.3f} {r2:6.3f}")
for method, label in (("influence", "first order"), ("newton", "Newton")):
    ratio = np.median(estimates[method][group_sizes >= 0.05 * n] / actual[group_sizes >= 0.05 * n])
    print(f"{label} estimate: median ratio predicted / actual for groups of 5% of n or more = {ratio:.3f}")

if args.plot:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (method, label) in zip(axes, (("influence", "first order"), ("newton", "Newton"))):
        points = ax.scatter(actual, estimates[method], c=np.log10(group_sizes), s=12, cmap="viridis")
        lim = [min(actual.min(), estimates[method].min()), max(actual.max(), estimates[method].max())]
        ax.plot(lim, lim, color="grey", lw=0.8)
        ax.set(xlabel="actual change of held-out loss (refit)", ylabel=f"predicted ({label})", title=label)
    fig.colorbar(points, ax=axes, label="log10 group size")
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")
