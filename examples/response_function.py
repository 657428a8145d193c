"""The worked example this project started from: influence through the response function.

Three points x = [0, 1, 2], y = [0, 1.5, 2], a line with intercept, squared loss. The response
function theta(eps) = argmin R(theta) + eps * loss(z, theta) is refitted exactly
(``fi.response_function``); its derivative at eps = 0 is the influence of z
(``Influence.new_points(...).params()``), and the table of loss influences
I_up,loss(z_i, z_j) follows.

Conventions. fastinfluence's loss is 0.5 r^2 and R = (1/n) sum_i loss_i. The notebook's loss is
r^2, and its response function refits the mean over the n + 1 points [z, x_1..x_n] with weights
[eps, 1, .., 1]: that is argmin sum_i r_i^2 + eps r_z^2, whose derivative in eps is
(1/n) I_up,params (the 1/(n + 1) of its mean does not change the minimiser; eps weighs one
point against n). Its loss influence multiplies that by the gradient of r^2, twice ours:
notebook = (2/n) x fastinfluence = (2/3) x fastinfluence here. The notebook's printed values
come from a gradient-descent fit and finite differences of it, not the exact optimum: they
differ from the exact ones by up to 2.5%.

Run: python examples/response_function.py [--plot lines.png]
"""

import argparse

import numpy as np

import fastinfluence as fi

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--plot", default=None, help="draw the fitted line moved by each point's influence")
args = parser.parse_args()

X, y = np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1.5, 2.0])
n = len(y)
points = [(0, 0), (1, 1.5), (2, 2)]
model = fi.LinearRegression(tol=1e-13).fit(X, y)
inf = fi.Influence(model, X, y)
slope, intercept = model.theta_
print(f"fitted line: y = {slope:.6f} x + {intercept:.6f}")

# the derivative of the exact response function is the influence of each point
new = inf.new_points(X, y)
h = 1e-5
for j, z in enumerate(points):
    up, down = (fi.response_function(model, X, y, X[[j]], y[[j]], sign * h) for sign in (1, -1))
    print(
        f"z = {z}: I_up,params = {np.round(new.params()[j], 6).tolist()}, "
        f"(theta(+h) - theta(-h)) / 2h = {np.round((up - down) / (2 * h), 6).tolist()}"
    )

# the notebook's printed table (its convention), from an iterative fit and finite differences
NOTEBOOK = np.array(
    [
        [-0.04716392861213299, 0.0374848913334374, 0.009495262163364715],
        [0.03702740217143974, -0.07386963571736015, 0.03685298276811481],
        [0.009103179214047272, 0.03687138332158968, -0.04580656857786415],
    ]
)

exact = inf.loss(X, y)  # I_up,loss(z_i, z_j): rows the point upweighted, columns the loss
theirs = 2.0 / n * exact
print(
    "\nI_up,loss(z_i, z_j): fastinfluence (0.5 r^2) | the notebook's convention, (2/n) x | notebook printed"
)
for i, zi in enumerate(points):
    for j, zj in enumerate(points):
        print(f"  {zi!s:>9} on {zj!s:<9} {exact[i, j]:+.6f} | {theirs[i, j]:+.6f} | {NOTEBOOK[i, j]:+.6f}")
difference = np.max(np.abs(NOTEBOOK - theirs) / np.abs(theirs))
print(f"largest relative difference, printed vs exact in the notebook's convention: {difference:.1%}")

if args.plot:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0.0, 2.0, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, slope * grid + intercept, color="black", lw=2, label="fitted line")
    for j, (z, color) in enumerate(zip(points, ("red", "orange", "blue"))):
        moved = model.theta_ + new.params()[j] / n  # the notebook's theta + I(z), in its convention
        ax.plot(grid, moved[0] * grid + moved[1], color=color, lw=1, label=f"theta + I{z}")
    ax.scatter(X[:, 0], y, color="black", zorder=3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")
