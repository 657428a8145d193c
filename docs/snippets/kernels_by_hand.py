"""I_up,loss from the kernel API, step by step, checked against fastinfluence.Influence.

Shown on the guide's kernel page (docs/guide/kernels.md) and run by tests/test_docs.py.
"""

import numpy as np
import scipy.linalg

import fastinfluence as fi
from fastinfluence import kernels as K

rng = np.random.default_rng(0)
X = rng.standard_normal((1000, 5))
y = (X @ rng.standard_normal(5) + rng.standard_normal(1000) > 0).astype(float)  # {0, 1}: logistic's encoding
X_test, y_test = X[:3], y[:3]
l2 = 1e-2

fit = K.fit_newton("logistic", X, y, l2=l2)  # a dict: theta, n_iter, decrement, converged, ...
theta = fit["theta"]
R, grad, H = K.evaluate("logistic", X, y, theta, l2=l2)  # one fused pass: R, grad R, H (p, p)

# the test gradients g_j = loss'_j xa_j (intercept row last), then V = H^{-1} G_test
_, _, d1_test, _ = K.row_derivatives("logistic", X_test, y_test, theta)
G_test = np.vstack([X_test.T * d1_test, d1_test])  # (p, m)
V = scipy.linalg.cho_solve(scipy.linalg.cho_factor(H), G_test)

# I_up,loss(z_i, z_j) = -loss'_i xa_i . V_j for every training row, in one pass over X
_, _, d1, _ = K.row_derivatives("logistic", X, y, theta)
scores = K.scaled_row_products(X, -d1, V)  # (n, m)
helpful, helpful_scores, harmful, harmful_scores = K.top_k_scores(X, -d1, V, k=5)

# matrix-free: the same solve by CG over Hessian-vector products, H never formed
c = K.curvature_weights("logistic", X, y, theta)  # c_i = s_i loss''_i / n
V_cg, iterations, residual = K.cg_solve(X, c, G_test, l2=l2)

# the same numbers from the high-level API
model = fi.LogisticRegression(l2=l2).fit(X, y)
expected = fi.Influence(model, X, y).loss(X_test, y_test)
print(f"largest difference from Influence.loss: {np.max(np.abs(scores - expected)):.1e}")
print(f"CG: {iterations.max()} iterations, largest difference from Cholesky {np.max(np.abs(V_cg - V)):.1e}")
print(f"most helpful training rows for test point 0: {helpful[0].tolist()}")
