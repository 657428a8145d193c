"""Check influence estimates against exact leave-one-out refits (Koh & Liang, figure 2).

For 50 random training points, remove each one, refit exactly (fi.exact_loo) and
compare the change of every test loss with the two estimates of Influence.loo:
the first-order influence estimate and the one-Newton-step estimate.

Run: python examples/loo_validation.py
"""

import numpy as np
from sklearn.datasets import load_breast_cancer

import fastinfluence as fi

X, y = load_breast_cancer(return_X_y=True)
X_train, y_train, X_test, y_test = X[:455], y[:455], X[455:], y[455:]
mean, std = X_train.mean(axis=0), X_train.std(axis=0)
X_train, X_test = (X_train - mean) / std, (X_test - mean) / std

model = fi.LogisticRegression(l2=1e-3).fit(X_train, y_train)
inf = fi.Influence(model, X_train, y_train)

indices = np.sort(np.random.default_rng(0).choice(len(y_train), size=50, replace=False))
actual = fi.exact_loo(model, X_train, y_train, indices, X_test, y_test)  # (50, 114), by refitting
for method in ("influence", "newton"):
    predicted = inf.loo(X_test, y_test, method=method, indices=indices)
    r = np.corrcoef(predicted.ravel(), actual.ravel())[0, 1]
    print(f"{method:>9s} estimate: Pearson r = {r:.4f} over {actual.size} (train, test) pairs")
