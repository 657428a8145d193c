"""Mislabel detection (Koh & Liang, section 5.4): flip 10% of the labels, then find them by self-influence.

Checking the training points with the most negative self-influence I_up,loss(z_i, z_i)
first finds flipped labels far faster than checking at random.

Run: python examples/mislabel_detection.py
"""

import numpy as np
from sklearn.datasets import load_breast_cancer

import fastinfluence as fi

X, y = load_breast_cancer(return_X_y=True)
X_train, y_train = X[:455], y[:455]
X_train = (X_train - X_train.mean(axis=0)) / X_train.std(axis=0)
n = len(y_train)

rng = np.random.default_rng(0)
flipped = rng.choice(n, size=n // 10, replace=False)
y_noisy = y_train.copy()
y_noisy[flipped] = 1 - y_noisy[flipped]
is_flipped = np.zeros(n, dtype=bool)
is_flipped[flipped] = True

model = fi.LogisticRegression(l2=1e-3).fit(X_train, y_noisy)
self_influence = fi.Influence(model, X_train, y_noisy).self_influence()  # (n,), all <= 0
ranking = np.argsort(self_influence)  # most negative first

print(f"{is_flipped.sum()} of {n} labels flipped")
print("checked   found by self-influence   found at random (expected)")
for fraction in (0.05, 0.10, 0.20, 0.30):
    k = round(fraction * n)
    found = is_flipped[ranking[:k]].sum() / is_flipped.sum()
    print(f"{fraction:6.0%}   {found:22.0%}   {fraction:24.0%}")
