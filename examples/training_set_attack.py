"""Training-set attack (Koh & Liang, section 5.2): move one training point so that a test prediction flips.

The paper's dog-fish experiment on tabular data that ships with scikit-learn: logistic regression
on the breast cancer data (standardised, first 455 rows train, last 114 test). For each correctly
classified test point z_test, take the training point whose features move its loss most,
the largest ||I_pert,loss(z_i, z_test)||_1, and repeat: step its features by
``step * sign(I_pert,loss)`` (the direction that raises the test loss fastest, in the L-infinity
sense), keep them within ``step * steps`` standard deviations of where they started and within
the training data's range, refit, and stop once the test prediction flips. The control moves the
same training point by the same amount along random signs. Both report how many targeted test
predictions flipped, and how many test predictions changed in all.

Run: python examples/training_set_attack.py [--test-points N] [--rows K] [--step S] [--steps T]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer

import fastinfluence as fi

L2 = 1e-3
# Hundreds of refits of a 455 x 31 problem: one thread is fastest at this size.
N_JOBS = 1


def load():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test = X[:455], X[455:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return (X_train - mean) / std, y[:455], (X_test - mean) / std, y[455:]


def fit(X, y):
    return fi.LogisticRegression(l2=L2, n_jobs=N_JOBS).fit(X, y)


def perturb(model, X, y, x_test, y_test, rows, step, steps, direction=None):
    """Move the training ``rows`` up to ``steps`` times (refitting after each) until the prediction of
    the test point flips: along sign(I_pert,loss) at the current model, or along the fixed
    ``direction`` (the control). Returns (flipped, steps taken, the last model)."""
    X = X.copy()
    start = X[rows].copy()
    low = np.maximum(X.min(axis=0), start - step * steps)  # the budget, inside the data's range
    high = np.minimum(X.max(axis=0), start + step * steps)
    for taken in range(1, steps + 1):
        if direction is None:
            inf = fi.Influence(model, X, y, n_jobs=N_JOBS)
            gradient = inf.pert_loss(x_test, y_test, indices=rows)[:, 0, :]  # (k, d)
            move = np.sign(gradient)
        else:
            move = direction
        X[rows] = np.clip(X[rows] + step * move, low, high)
        model = fit(X, y)
        if model.predict(x_test)[0] != y_test[0]:
            return True, taken, model
    return False, steps, model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-points", type=int, default=None, help="attack the first N (default: all)")
    parser.add_argument("--rows", type=int, default=1, help="training points perturbed per attack")
    parser.add_argument("--step", type=float, default=0.2, help="step, in standard deviations")
    parser.add_argument("--steps", type=int, default=10, help="most steps (and refits) per attack")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    X, y, X_test, y_test = load()
    model = fit(X, y)
    predicted = model.predict(X_test)
    targets = np.flatnonzero(predicted == y_test)[: args.test_points]
    inf = fi.Influence(model, X, y, n_jobs=N_JOBS)
    rng = np.random.default_rng(0)
    print(
        f"breast cancer: {X.shape[0]} training rows, {X_test.shape[0]} test rows; attacking "
        f"{targets.size} correctly classified test points"
    )
    print(
        f"each attack moves {args.rows} training point(s) by up to {args.steps} steps of "
        f"{args.step:g} sd (L-infinity <= {args.step * args.steps:g} sd), refitting after each"
    )
    results = {"attack": [], "control": []}
    for j in targets:
        x_test, y_one = X_test[j : j + 1], y_test[j : j + 1]
        sizes = np.abs(inf.pert_loss(x_test, y_one)[:, 0, :]).sum(axis=1)  # ||I_pert,loss||_1 per row
        rows = np.argsort(-sizes, kind="stable")[: args.rows]
        random_signs = rng.choice([-1.0, 1.0], size=(rows.size, X.shape[1]))
        for name, direction in (("attack", None), ("control", random_signs)):
            flipped, taken, refit = perturb(
                model, X, y, x_test, y_one, rows, args.step, args.steps, direction
            )
            changed = int(np.sum(refit.predict(X_test) != predicted))
            results[name].append((flipped, taken, changed))

    labels = {"attack": "attack, sign of I_pert,loss", "control": "control, random signs"}
    for name, rows in results.items():
        flipped = [taken for ok, taken, _ in rows if ok]
        changed = np.mean([c for _, _, c in rows])
        steps = f", after {np.mean(flipped):.1f} steps on average" if flipped else ""
        print(
            f"{labels[name]:<28s}: flipped {len(flipped)} of {len(rows)} test predictions "
            f"({len(flipped) / len(rows):.0%}){steps}; {changed:.2f} test predictions changed per attack"
        )
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
