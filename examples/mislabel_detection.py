"""Mislabel detection (Koh & Liang, section 5.4): flip 10% of the labels, then find them by self-influence.

Breast cancer (standardised, the first 455 rows train, the last 114 test), logistic regression,
10% of the training labels flipped at random. First the curves: the fraction of the flipped labels
found when the training points are checked in order of |self-influence| |I_up,loss(z_i, z_i)|
(largest first), of training loss (largest first), or at random. Then the paper's loop: check the
top ``--batch`` unchecked points of the current model's ranking, fix the flipped labels found among
them, refit, rank again, and repeat; after each round, the test accuracy and loss recovered
(against the model fitted on the clean labels).

Run: python examples/mislabel_detection.py [--batch 0.05] [--rounds 6] [--plot mislabel.png]
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_breast_cancer

import fastinfluence as fi

L2 = 1e-3
CHECKED = (0.05, 0.10, 0.20, 0.30)


def load():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test = X[:455], X[455:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return (X_train - mean) / std, y[:455], (X_test - mean) / std, y[455:]


def rankings(X, y, rng):
    """Three orders of checking, most suspicious first: |self-influence|, training loss, random."""
    model = fi.LogisticRegression(l2=L2).fit(X, y)
    self_influence = fi.Influence(model, X, y).self_influence()  # (n,), all <= 0
    return model, {
        "self-influence": np.argsort(self_influence, kind="stable"),  # most negative first
        "training loss": np.argsort(-model.row_losses(X, y), kind="stable"),
        "random": rng.permutation(len(y)),
    }


def fix_loop(X, y_noisy, is_flipped, X_test, y_test, method, batch, rounds, seed):
    """Check ``batch`` unchecked rows per round in the current model's order, fix the flipped ones
    found, refit. Returns a (fraction checked, fraction found, test accuracy, test loss) per round."""
    y, checked = y_noisy.copy(), np.zeros(len(y_noisy), dtype=bool)
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(rounds + 1):
        model, orders = rankings(X, y, rng)
        history.append(
            (
                checked.mean(),
                (checked & is_flipped).sum() / is_flipped.sum(),
                model.score(X_test, y_test),
                model.row_losses(X_test, y_test).mean(),
            )
        )
        order = orders[method][~checked[orders[method]]]
        look = order[:batch]
        checked[look] = True
        y[look[is_flipped[look]]] = 1 - y[look[is_flipped[look]]]  # the check finds the wrong labels
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=float, default=0.05, help="fraction of n checked per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the check-fix-refit loop")
    parser.add_argument("--plot", default=None, help="draw the curves and the loop into this PNG file")
    args = parser.parse_args(argv)

    X, y, X_test, y_test = load()
    n = len(y)
    rng = np.random.default_rng(0)
    flipped = rng.choice(n, size=n // 10, replace=False)
    y_noisy = y.copy()
    y_noisy[flipped] = 1 - y_noisy[flipped]
    is_flipped = np.zeros(n, dtype=bool)
    is_flipped[flipped] = True

    _, orders = rankings(X, y_noisy, np.random.default_rng(1))
    print(f"{is_flipped.sum()} of {n} labels flipped")
    print("checked   found by self-influence   by training loss   at random   random (expected)")
    for fraction in CHECKED:
        k = round(fraction * n)
        found = {name: is_flipped[order[:k]].sum() / is_flipped.sum() for name, order in orders.items()}
        print(
            f"{fraction:6.0%}   {found['self-influence']:22.0%}   {found['training loss']:16.0%}   "
            f"{found['random']:9.0%}   {fraction:17.0%}"
        )

    clean = fi.LogisticRegression(l2=L2).fit(X, y)
    print(
        f"\ncheck {args.batch:.0%} of the training points per round, fix, refit, rank again "
        f"(clean labels: test accuracy {clean.score(X_test, y_test):.3f}, "
        f"test loss {clean.row_losses(X_test, y_test).mean():.4f})"
    )
    batch = max(1, round(args.batch * n))
    loops = {
        name: fix_loop(X, y_noisy, is_flipped, X_test, y_test, name, batch, args.rounds, seed=2)
        for name in orders
    }
    print(f"{'checked':>7s}" + "".join(f"   {name + ': found, acc, loss':>34s}" for name in loops))
    for r in range(args.rounds + 1):
        cells = "".join(
            f"   {found:>12.0%} {accuracy:>10.3f} {loss:>10.4f}"
            for _, found, accuracy, loss in (loops[name][r] for name in loops)
        )
        print(f"{loops['random'][r][0]:>7.0%}{cells}")

    if args.plot:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt

        from fastinfluence.plot import plot_mislabel_detection

        model = fi.LogisticRegression(l2=L2).fit(X, y_noisy)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
        self_influence = fi.Influence(model, X, y_noisy).self_influence()
        plot_mislabel_detection(self_influence, model.row_losses(X, y_noisy), is_flipped, ax=left)
        for name, history in loops.items():
            checked, _, _, loss = np.array(history).T
            right.plot(checked, loss, marker="o", label=name)
        right.axhline(clean.row_losses(X_test, y_test).mean(), color="grey", lw=0.8, label="clean labels")
        right.set(
            xlabel="fraction of training data checked", ylabel="mean test loss", title="check, fix, refit"
        )
        right.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
