"""Koh & Liang's figure 2 on scikit-learn's digits: 10-class softmax regression, influence
against leave-one-out retraining.

digits (1797 x 64, standardised), a stratified 75/25 split, MultinomialLogisticRegression with
l2 = 1e-2 (650 parameters). Two checks, each printing the Pearson correlation of predicted with
actual change of the test loss for the first-order estimate (``method="influence"``) and the
one-Newton-step estimate (``method="newton"``, a 10 x 10 Woodbury solve per row):

1. every training point removed in turn and the model refitted exactly (``fi.exact_loo``), for
   the test points of largest loss;
2. the paper's protocol: for one test point, the training points of largest |influence| on it
   (500 by default), each removed and refitted.

Run: python examples/digits_multiclass.py [--train-rows N] [--top K] [--plot fig2.png]
(every refit takes about 0.4 s; the full run about 10 min on one core).
"""

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastinfluence as fi

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument(
    "--train-rows", type=int, default=None, help="use the first N training rows (default: all)"
)
parser.add_argument("--test-points", type=int, default=5, help="test points of largest loss to report")
parser.add_argument("--top", type=int, default=500, help="training points of the paper's protocol")
parser.add_argument("--plot", default=None, help="write the figure-2 scatter to this PNG")
args = parser.parse_args()

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
if args.train_rows is not None:
    X_train, y_train = X_train[: args.train_rows], y_train[: args.train_rows]
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
n = len(y_train)

model = fi.MultinomialLogisticRegression(l2=1e-2).fit(X_train, y_train)
inf = fi.Influence(model, X_train, y_train)
print(
    f"digits: {n} training rows, {len(y_test)} test rows, {model.n_classes_} classes, "
    f"{model.theta_.size} parameters; test accuracy {np.mean(model.predict(X_test) == y_test):.3f}"
)

# the test points the model finds hardest: their losses move most when a row is removed
test_losses = fi.kernels.row_derivatives(
    "multinomial", X_test, model.encode_targets(y_test, len(y_test)), model.theta_, n_classes=model.n_classes_
)[1]
chosen = np.argsort(-test_losses)[: args.test_points]
X_chosen, y_chosen = X_test[chosen], y_test[chosen]

print(f"\n1. every training point removed and refitted ({n} refits), test points {chosen.tolist()}:")
actual = fi.exact_loo(model, X_train, y_train, range(n), X_chosen, y_chosen)
estimates = {method: inf.loo(X_chosen, y_chosen, method=method) for method in ("influence", "newton")}
for j, point in enumerate(chosen):
    rs = {m: np.corrcoef(e[:, j], actual[:, j])[0, 1] for m, e in estimates.items()}
    print(f"   test point {point:3d}: influence r = {rs['influence']:.4f}, newton r = {rs['newton']:.4f}")
for method, estimate in estimates.items():
    r = np.corrcoef(estimate.ravel(), actual.ravel())[0, 1]
    print(f"   all pairs: {method} estimate: Pearson r = {r:.4f} over {actual.size} (train, test) pairs")

point = int(chosen[0])
top = min(args.top, n)
scores = inf.loss(X_test[[point]], y_test[[point]])[:, 0]
rows = np.argsort(-np.abs(scores))[:top]
print(f"\n2. the paper's protocol: the {top} training points of largest |influence| on test point {point}")
actual_top = fi.exact_loo(model, X_train, y_train, rows, X_test[[point]], y_test[[point]])[:, 0]
for method in ("influence", "newton"):
    predicted = inf.loo(X_test[[point]], y_test[[point]], method=method, indices=rows)[:, 0]
    r = np.corrcoef(predicted, actual_top)[0, 1]
    print(f"   {method} estimate: Pearson r = {r:.4f} over {top} removals (protocol)")

if args.plot:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, method in zip(axes, ("influence", "newton")):
        predicted = inf.loo(X_test[[point]], y_test[[point]], method=method, indices=rows)[:, 0]
        ax.scatter(actual_top, predicted, s=6)
        lim = [min(actual_top.min(), predicted.min()), max(actual_top.max(), predicted.max())]
        ax.plot(lim, lim, color="grey", lw=0.8)
        ax.set(xlabel="actual change in test loss (refit)", ylabel=f"predicted ({method})")
        ax.set_title(f"{method}: r = {np.corrcoef(predicted, actual_top)[0, 1]:.4f}")
    fig.suptitle(f"digits, softmax regression: removing each of {top} training points (test point {point})")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"\nwrote {args.plot}")
