"""Quick start: fit, build an Influence object, list the training points that helped and hurt a test point.

Run: python examples/quickstart.py
"""

import numpy as np
from sklearn.datasets import load_breast_cancer

import fastinfluence as fi

# Breast cancer data (ships with scikit-learn): first 455 rows train, last 114 test, standardised.
X, y = load_breast_cancer(return_X_y=True)
X_train, y_train, X_test, y_test = X[:455], y[:455], X[455:], y[455:]
mean, std = X_train.mean(axis=0), X_train.std(axis=0)
X_train, X_test = (X_train - mean) / std, (X_test - mean) / std

model = fi.LogisticRegression(l2=1e-3).fit(X_train, y_train)
print(f"fitted in {model.n_iter_} Newton iterations, gradient norm {model.grad_norm_:.1e}")

inf = fi.Influence(model, X_train, y_train)
scores = inf.loss(X_test, y_test)  # (455, 114): I_up,loss(train i, test j)

# The test point the model gets most wrong: the most negative margin (2y - 1) * eta.
j = int(np.argmin((2 * y_test - 1) * model.decision_function(X_test)))
order = np.argsort(scores[:, j])
print(f"test point {j}: label {y_test[j]}, predicted {model.predict(X_test[j : j + 1])[0]}")
print("most helpful training points (negative: more weight on them lowers this test loss):")
for i in order[:5]:
    print(f"  train {i:3d}  label {y_train[i]}  I_up,loss = {scores[i, j]:+9.3f}")
print("most harmful training points (positive: they push the model towards this mistake):")
for i in order[::-1][:5]:
    print(f"  train {i:3d}  label {y_train[i]}  I_up,loss = {scores[i, j]:+9.3f}")
