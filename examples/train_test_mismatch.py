"""Debugging a train/test mismatch (Koh & Liang, section 5.3): influence singles out the rows responsible.

The paper removed most of the re-admitted children from a hospital's training set, and the
influences of a misclassified test child pointed at the few re-admitted children left (most
helpful) and at the other children (most harmful). The same on statsmodels' 1996 American
National Election Study (``anes96``, 944 voters, ships offline; y = voted Dole): eight numeric
features, standardised, and the party identification PID one-hot encoded as the hospital's age
bands were. The mismatch: of the training voters in one region, the independents who lean
Republican (PID = 4), keep only ``--keep`` (10%) of those who voted Dole. The model then
misclassifies test voters of that region who voted Dole (the model fitted on the unmanipulated
training set gets most of them right), and for each the training rows of largest I_up,loss are:

* most helpful (most negative): the few Dole voters of the region left in the training set;
* most harmful (most positive): the region's other voters, who taught the model that PID = 4
  votes Clinton.

Run: python examples/train_test_mismatch.py [--keep 0.1] [--top 10] [--show 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import statsmodels.api as sm

import fastinfluence as fi

NUMERIC = ["logpopul", "TVnews", "selfLR", "ClinLR", "DoleLR", "age", "educ", "income"]
PID_NAMES = [
    "strong Democrat",
    "weak Democrat",
    "independent-Democrat",
    "independent",
    "independent-Republican",
    "weak Republican",
    "strong Republican",
]
REGION, CLASS = 4, 1  # PID = 4; the class thinned out there: voted Dole


def load(seed=0):
    """(numeric features (n, 8), PID (n,), vote (n,), train positions, test positions)."""
    data = sm.datasets.anes96.load_pandas().data
    order = np.random.default_rng(seed).permutation(len(data))
    return (
        data[NUMERIC].to_numpy(dtype=np.float64),
        data["PID"].to_numpy().astype(int),
        data["vote"].to_numpy().astype(int),
        np.sort(order[:700]),
        np.sort(order[700:]),
    )


def design(numeric, pid, train):
    """Standardised numeric columns (training statistics) and PID one-hot (strong Democrat the baseline)."""
    mean, std = numeric[train].mean(axis=0), numeric[train].std(axis=0)
    return np.hstack([(numeric - mean) / std, (pid[:, None] == np.arange(1, 7)[None, :]).astype(float)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=float, default=0.1, help="fraction of the region's Dole voters kept")
    parser.add_argument("--top", type=int, default=10, help="most helpful and harmful rows listed")
    parser.add_argument("--show", type=int, default=3, help="misclassified test voters listed in full")
    args = parser.parse_args(argv)

    numeric, pid, vote, train, test = load()
    region = pid == REGION
    rng = np.random.default_rng(0)
    thinned = train[region[train] & (vote[train] == CLASS)]
    kept = np.sort(rng.choice(thinned, size=max(1, round(args.keep * thinned.size)), replace=False))
    mismatched = np.setdiff1d(train, np.setdiff1d(thinned, kept))
    X = design(numeric, pid, mismatched)
    model = fi.LogisticRegression(l2=1e-3).fit(X[mismatched], vote[mismatched])
    full = fi.LogisticRegression(l2=1e-3).fit(X[train], vote[train])
    inf = fi.Influence(model, X[mismatched], vote[mismatched])

    print(
        f"anes96: {train.size} training voters, {test.size} test; region PID = {REGION} "
        f"({PID_NAMES[REGION]}): {thinned.size} of its {int(region[train].sum())} training voters voted "
        f"Dole, {kept.size} kept"
    )
    in_region = region[mismatched]
    print(
        f"mismatched training set: {mismatched.size} rows, {in_region.sum()} in the region "
        f"({in_region.mean():.1%}), {kept.size} of them Dole voters"
    )
    wrong = test[(model.predict(X[test]) != vote[test]) & region[test] & (vote[test] == CLASS)]
    right_before = wrong[full.predict(X[wrong]) == vote[wrong]]
    print(
        f"test Dole voters of the region misclassified: {wrong.size} (the model fitted on the whole "
        f"training set gets {right_before.size} of them right)"
    )
    if wrong.size == 0:
        return

    scores = inf.loss(X[wrong], vote[wrong])  # (n_train, len(wrong)); positions in `mismatched`
    is_kept = np.isin(mismatched, kept)
    helpful_kept, harmful_region = [], []
    for column, j in enumerate(wrong):
        order = np.argsort(scores[:, column], kind="stable")
        helpful, harmful = order[: args.top], order[::-1][: args.top]
        helpful_kept.append(int(is_kept[helpful].sum()))
        harmful_region.append(int(in_region[harmful].sum()))
        if column < args.show:
            p = model.predict_proba(X[j : j + 1])[0, 1]
            print(
                f"\ntest voter #{j}: PID = {pid[j]}, voted Dole; p(Dole) = {p:.3f} (before the mismatch "
                f"{full.predict_proba(X[j : j + 1])[0, 1]:.3f})"
            )
            for name, rows in (("most helpful", helpful), ("most harmful", harmful)):
                print(f"  {name}:")
                for i in rows:
                    row = mismatched[i]
                    who = f"train #{row:<4d} PID = {pid[row]}, voted {'Dole' if vote[row] else 'Clinton'}"
                    print(f"    {who:<44s} I_up,loss = {scores[i, column]:+8.3f}")
    helpful_kept, harmful_region = np.array(helpful_kept), np.array(harmful_region)
    print(f"\nover the {wrong.size} misclassified test voters, of the top {args.top}:")
    every = int(np.sum(helpful_kept == min(kept.size, args.top)))
    print(
        f"  most helpful: {helpful_kept.mean():.1f} are the region's {kept.size} kept Dole voters on average "
        f"(all of them for {every} of the {wrong.size} test voters)"
    )
    print(
        f"  most harmful: {harmful_region.mean() / args.top:.0%} are in the region on average (the region "
        f"is {in_region.mean():.1%} of the training rows)"
    )


if __name__ == "__main__":
    main()
