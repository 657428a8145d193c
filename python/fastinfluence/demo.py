"""The ``fastinfluence demo`` job: what influence functions tell you, on data that ships with scikit-learn.

Logistic regression on the Wisconsin breast cancer data (569 rows, 30 features;
bundled with scikit-learn, so no network is needed), standardised with the
training statistics and split by position: the first 455 rows train, the last
114 test. The demo then

1. fits the model to the optimum and reports the fit;
2. for a few misclassified test points, lists their most helpful and most
   harmful training points (most negative / most positive ``I_up,loss``);
3. checks the leave-one-out estimates against brute-force refits
   (:func:`fastinfluence.exact_loo`) on a random sample of training points;
4. lists the training points with the largest self-influence (mislabel candidates);
5. flips 10% of the training labels and measures how many of them are found by
   checking the points with the largest self-influence first;
6. prints the accuracy certificate of :meth:`fastinfluence.Influence.validate`: exact
   refits of the 10 training points of largest estimated effect and of 20 at random,
   and how close each estimate came to them;

and writes PNG plots of 2, 3 and 5 (needs matplotlib). Everything is seeded.

>>> from fastinfluence.demo import run_demo               # doctest: +SKIP
>>> result = run_demo("fastinfluence-demo")                # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ._optional import require

if TYPE_CHECKING:
    from .models import LogisticRegression
    from .validation_refits import AccuracyCertificate

__all__ = ["DemoResult", "load_breast_cancer_split", "run_demo", "compute_demo", "print_demo", "write_plots"]

N_TRAIN = 455
L2 = 1e-3
FLIP_FRACTION = 0.10
CHECK_FRACTIONS = (0.10, 0.20, 0.30)
#: The certificate's refits: the rows of largest estimated effect, and a random sample.
CERTIFICATE_TOP, CERTIFICATE_RANDOM = 10, 20
PLOT_FILES = {
    "loo": "demo_loo.png",
    "top_influences": "demo_top_influences.png",
    "mislabel": "demo_mislabel.png",
}


@dataclass
class DemoResult:
    """Everything the demo computed; the printed report and the plots are made from this."""

    seed: int
    class_names: list
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    model: LogisticRegression
    train_accuracy: float
    test_accuracy: float
    test_loss: np.ndarray
    misclassified: np.ndarray
    scores: np.ndarray  # I_up,loss, (n_train, n_test)
    loo_indices: np.ndarray
    loo_actual: np.ndarray  # (k, n_test)
    loo_influence: np.ndarray
    loo_newton: np.ndarray
    loo_test_point: int
    correlations: dict
    seconds_exact_loo: float
    seconds_influence_loo: float
    self_influence: np.ndarray
    flipped_mask: np.ndarray
    noisy_self_influence: np.ndarray
    noisy_training_loss: np.ndarray
    detection: dict  # method -> list of fractions found at CHECK_FRACTIONS
    certificate: AccuracyCertificate | None = None
    seconds_total: float = 0.0
    plot_paths: list = field(default_factory=list)


def _read_bundled_breast_cancer():
    """(X, y, class_names) read straight from scikit-learn's bundled CSV, or None.

    Importing ``sklearn.datasets`` takes longer than the whole demo's arithmetic,
    so the file is located without importing scikit-learn. Its layout (a header
    ``569,30,malignant,benign``, then 30 features and the label per row) is
    checked; anything unexpected returns None and the caller falls back to
    ``sklearn.datasets.load_breast_cancer`` (tests check both agree).
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        for root in roots:
            path = os.path.join(root, "datasets", "data", "breast_cancer.csv")
            if not os.path.isfile(path):
                continue
            with open(path, encoding="utf-8") as handle:
                header = handle.readline().strip().split(",")
                table = np.loadtxt(handle, delimiter=",", dtype=np.float64, ndmin=2)
            n_samples, n_features = int(header[0]), int(header[1])
            if table.shape != (n_samples, n_features + 1) or len(header) != 4:
                return None
            y = table[:, -1].astype(np.int64)
            if not set(np.unique(y).tolist()) <= {0, 1}:
                return None
            return table[:, :-1], y, header[2:]
    except (OSError, ValueError, IndexError, ImportError):
        return None
    return None


def load_breast_cancer_split():
    """(X_train, y_train, X_test, y_test, class_names): first 455 rows train, last 114 test.

    Features are standardised with the mean and standard deviation of the
    training rows. Labels: 0 = malignant, 1 = benign (scikit-learn's encoding).
    The data is scikit-learn's ``load_breast_cancer``, read from the copy that
    ships with it (no network).
    """
    bundled = _read_bundled_breast_cancer()
    if bundled is not None:
        X, y, class_names = bundled
    else:
        datasets = require("sklearn.datasets", extra="demo", purpose="the demo's data set (scikit-learn's)")
        data = datasets.load_breast_cancer()
        X, y, class_names = (
            data.data.astype(np.float64),
            data.target.astype(np.int64),
            list(data.target_names),
        )
    X_train, X_test = X[:N_TRAIN], X[N_TRAIN:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    X_train = (X_train - mean) / std
    X_test = (X_test - mean) / std
    return X_train, y[:N_TRAIN], X_test, y[N_TRAIN:], [str(c) for c in class_names]


def _correlation(a, b):
    from .plot import pearson_correlation  # numpy only; matplotlib is imported by the plotting functions

    return pearson_correlation(np.ravel(a), np.ravel(b))


def compute_demo(seed=0, *, n_loo=100):
    """Run every computation of the demo (no printing, no plots) and return a :class:`DemoResult`."""
    import fastinfluence as fi

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    X_train, y_train, X_test, y_test, class_names = load_breast_cancer_split()
    n = X_train.shape[0]

    model = fi.LogisticRegression(l2=L2).fit(X_train, y_train)
    inf = fi.Influence(model, X_train, y_train)
    scores = inf.loss(X_test, y_test)
    test_loss = model.row_losses(X_test, y_test)
    misclassified = np.flatnonzero(model.predict(X_test) != y_test)
    misclassified = misclassified[np.argsort(-test_loss[misclassified], kind="stable")]

    # Leave-one-out: estimates against brute-force refits on a random sample of training points.
    loo_indices = np.sort(rng.choice(n, size=min(n_loo, n), replace=False))
    t0 = time.perf_counter()
    loo_actual = fi.exact_loo(model, X_train, y_train, loo_indices, X_test, y_test)
    seconds_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    loo_influence = inf.loo(X_test, y_test, method="influence", indices=loo_indices)
    loo_newton = inf.loo(X_test, y_test, method="newton", indices=loo_indices)
    seconds_influence = time.perf_counter() - t0
    loo_test_point = int(misclassified[0]) if misclassified.size else int(np.argmax(test_loss))
    correlations = {}
    for method, predicted in (("influence", loo_influence), ("newton", loo_newton)):
        correlations[method] = {
            "test_point": _correlation(predicted[:, loo_test_point], loo_actual[:, loo_test_point]),
            "mean_test_loss": _correlation(predicted.mean(axis=1), loo_actual.mean(axis=1)),
            "all_pairs": _correlation(predicted, loo_actual),
        }

    # Mislabel detection: flip 10% of the training labels, refit, rank by |self-influence|.
    n_flip = round(FLIP_FRACTION * n)
    flipped = rng.choice(n, size=n_flip, replace=False)
    flipped_mask = np.zeros(n, dtype=bool)
    flipped_mask[flipped] = True
    y_noisy = np.where(flipped_mask, 1 - y_train, y_train)
    noisy_model = fi.LogisticRegression(l2=L2).fit(X_train, y_noisy)
    noisy_self_influence = fi.Influence(noisy_model, X_train, y_noisy).self_influence()
    noisy_training_loss = noisy_model.row_losses(X_train, y_noisy)
    rankings = {
        "self_influence": np.argsort(-np.abs(noisy_self_influence), kind="stable"),
        "training_loss": np.argsort(-noisy_training_loss, kind="stable"),
    }
    detection = {
        name: [float(flipped_mask[order[: round(f * n)]].sum() / n_flip) for f in CHECK_FRACTIONS]
        for name, order in rankings.items()
    }
    detection["random (expected)"] = list(CHECK_FRACTIONS)

    # How far to trust the estimates here: exact refits of the largest effects and a random sample.
    certificate = inf.validate(
        X_test, y_test, n_top=CERTIFICATE_TOP, n_random=CERTIFICATE_RANDOM, random_state=seed
    )

    return DemoResult(
        seed=seed,
        class_names=class_names,
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        model=model,
        train_accuracy=float(np.mean(model.predict(X_train) == y_train)),
        test_accuracy=float(np.mean(model.predict(X_test) == y_test)),
        test_loss=test_loss,
        misclassified=misclassified,
        scores=scores,
        loo_indices=loo_indices,
        loo_actual=loo_actual,
        loo_influence=loo_influence,
        loo_newton=loo_newton,
        loo_test_point=loo_test_point,
        correlations=correlations,
        seconds_exact_loo=seconds_exact,
        seconds_influence_loo=seconds_influence,
        self_influence=inf.self_influence(),
        flipped_mask=flipped_mask,
        noisy_self_influence=noisy_self_influence,
        noisy_training_loss=noisy_training_loss,
        detection=detection,
        certificate=certificate,
        seconds_total=time.perf_counter() - start,
    )


def print_demo(result: DemoResult, stream=None, *, n_misclassified=3, top=3, n_self=10):
    """Write the demo's report to ``stream`` (default ``sys.stdout``)."""
    out = sys.stdout if stream is None else stream

    def say(text=""):
        print(text, file=out)

    r = result
    names = r.class_names
    n, m = r.X_train.shape[0], r.X_test.shape[0]
    model = r.model
    p_benign_test = model.predict_proba(r.X_test)[:, 1]

    def describe_train(i):
        return f"train #{i:<3d} label {names[r.y_train[i]]:<9s}"

    def if_removed(score):  # the first-order change of the loss when the training point is left out
        return f"if removed: test loss {-score / n:+.3f}"

    say("fastinfluence demo: which training points made the model say this?")
    say(
        f"Data: breast cancer (scikit-learn), {r.X_train.shape[1]} features standardised; "
        f"first {n} rows train, "
        f"last {m} test."
    )
    say(f"Labels: 0 = {names[0]}, 1 = {names[1]}. Model: logistic regression, l2 = {L2:g}.")
    say()
    say("== 1. Fit ==")
    say(
        f"Newton iterations: {model.n_iter_}   gradient norm: {model.grad_norm_:.2e}   "
        f"converged: {model.converged_}"
    )
    say(
        f"accuracy: train {r.train_accuracy:.3f}, test {r.test_accuracy:.3f} "
        f"({r.misclassified.size} of {m} test points misclassified)"
    )
    say()
    say("== 2. Most helpful and most harmful training points for misclassified test points ==")
    say("Score = I_up,loss(z_i, z_test) = -g_test^T H^-1 g_i, the derivative of the test point's loss with")
    say("respect to the weight of training point z_i. Negative = helpful: more weight on z_i lowers the test")
    say("loss. Positive = harmful: z_i pushes the model towards this mistake. The scale: removing z_i")
    say(
        f"changes the test loss by about -score/n (n = {n}), shown as 'if removed' beside each score, next to"
    )
    say("the test loss itself: a score of -n would raise the test loss by 1 when z_i is left out.")
    for j in map(int, r.misclassified[:n_misclassified]):
        predicted = names[int(p_benign_test[j] > 0.5)]
        say()
        say(
            f"test #{j}: true {names[r.y_test[j]]}, predicted {predicted} "
            f"(p(benign) = {p_benign_test[j]:.3f}, test loss {r.test_loss[j]:.3f})"
        )
        order = np.argsort(r.scores[:, j], kind="stable")
        say("  most helpful (most negative):")
        for i in order[:top]:
            say(f"    {describe_train(int(i))}  score {r.scores[i, j]:+9.2f}  {if_removed(r.scores[i, j])}")
        say("  most harmful (most positive):")
        for i in order[::-1][:top]:
            say(f"    {describe_train(int(i))}  score {r.scores[i, j]:+9.2f}  {if_removed(r.scores[i, j])}")
    if r.misclassified.size == 0:
        say("(no misclassified test points)")
    say()
    k = r.loo_indices.size
    say("== 3. Leave-one-out: predicted vs actual change of test loss ==")
    say(
        f"{k} random training points (seed {r.seed}), each removed and the model refitted exactly "
        f"({k} refits: {r.seconds_exact_loo:.2f} s;"
    )
    say(
        f"both estimates for all {k} x {m} pairs: {r.seconds_influence_loo * 1e3:.1f} ms). "
        "Pearson correlation of "
        "predicted with actual change:"
    )
    columns = (f"test #{r.loo_test_point}", "mean test loss", f"all {k * m} pairs")
    say(f"  {'estimate':<28s}" + "".join(f"{c:>18s}" for c in columns))
    labels = {"influence": "first order -(1/n) I_up,loss", "newton": "one Newton step without z_i"}
    for method, values in r.correlations.items():
        cells = (values["test_point"], values["mean_test_loss"], values["all_pairs"])
        say(f"  {labels[method]:<28s}" + "".join(f"{c:>18.4f}" for c in cells))
    say()
    say("== 4. Self-influence: mislabel candidates ==")
    say("self-influence = I_up,loss(z_i, z_i) <= 0. The most negative values are the points the model bends")
    say("most to fit: check their labels first. Removing z_i raises its own loss by about -self-influence/n.")
    p_benign_train = model.predict_proba(r.X_train)[:, 1]
    for i in map(int, np.argsort(r.self_influence, kind="stable")[:n_self]):
        say(
            f"  {describe_train(i)}  self-influence {r.self_influence[i]:+9.2f}  "
            f"(if removed: own loss {-r.self_influence[i] / n:+.2f})   p(benign) = {p_benign_train[i]:.3f}"
        )
    say()
    n_flip = int(r.flipped_mask.sum())
    say("== 5. Mislabel detection experiment ==")
    say(
        f"{n_flip} of {n} training labels ({FLIP_FRACTION:.0%}) flipped at random (seed {r.seed}), "
        "model refitted. "
        "Fraction of flipped labels"
    )
    say("found by checking the training points in each order:")
    say(f"  {'checked':<22s}" + "".join(f"{f:>10.0%}" for f in CHECK_FRACTIONS))
    names_detection = {"self_influence": "|self-influence|", "training_loss": "training loss"}
    for name, fractions in r.detection.items():
        say(f"  {names_detection.get(name, name):<22s}" + "".join(f"{f:>10.0%}" for f in fractions))
    for line in _detection_comment(r.detection):
        say(line)
    if r.certificate is not None:
        say()
        for line in _certificate_section(r.certificate):
            say(line)
    say()
    say(f"Computed in {r.seconds_total:.2f} s.")


def _certificate_section(certificate) -> list[str]:
    """Section 6: the certificate's table, and what its figures mean for this data."""
    first, newton = certificate.metrics["influence"], certificate.metrics["newton"]
    lines = [
        "== 6. Accuracy certificate: how far to trust these numbers ==",
        "inf.validate(X_test, y_test) refits the model exactly without each of the training points whose",
        (
            f"removal is estimated to move some test loss most ({CERTIFICATE_TOP}) and without "
            f"{CERTIFICATE_RANDOM} more drawn at random"
        ),
        "(seeded), then compares both estimates of the change of every test loss with the refits:",
        *repr(certificate).splitlines()[1:],
        "relative = max |error| over the largest refitted change. Over all checked pairs the Newton",
        (
            f"step's largest error is {newton['max_relative_error']:.0%} of that change, the first-order "
            f"estimate's {first['max_relative_error']:.0%}."
        ),
    ]
    typical = certificate.metrics_by_kind.get("random")
    if typical is not None:
        largest = float(np.max(np.abs(certificate.refit)))
        errors = typical["newton"]["max_abs_error"], typical["influence"]["max_abs_error"]
        lines += [
            (
                f"On the random rows (a typical point) the largest errors are {errors[0]:.2g} (Newton) and "
                f"{errors[1]:.2g}"
            ),
            f"(first order), against test-loss changes of up to {largest:.2g} on the rows checked.",
        ]
    return lines


def _per_removal(n: int):
    """The score -> change-of-loss-when-removed maps (-score/n and back), for a secondary axis."""
    return (lambda score: -score / n, lambda change: -change * n)


def _detection_comment(detection: dict) -> list[str]:
    """Why one ranking found more flipped labels than the other here, and when self-influence pays."""
    first = CHECK_FRACTIONS[0]
    by_influence, by_loss = detection["self_influence"][0], detection["training_loss"][0]
    counts = f"({by_loss:.0%} by loss, {by_influence:.0%} by self-influence)"
    if by_loss > by_influence:
        verdict = f"Here the training loss finds more at {first:.0%} checked {counts}."
    elif by_influence > by_loss:
        verdict = f"Here self-influence finds more at {first:.0%} checked {counts}."
    else:
        verdict = f"Here both find {by_loss:.0%} at {first:.0%} checked."
    return [
        verdict,
        "The training loss ranks the points the model gets most wrong; self-influence, -g_i^T H^-1 g_i,",
        "weighs the same gradient by how far the point can move the model (its leverage). With 30",
        "standardised features, 455 rows and little curvature from l2, a flipped label is mostly a point",
        "the model gets badly wrong, and the leverage adds noise to that ranking. Self-influence is worth",
        "using where a wrong label does not show in the loss: a model flexible enough to bend to it (many",
        "features, weak l2) or a point of large leverage (an outlying row), whose loss is small but whose",
        "removal moves the model most (Koh & Liang, section 5.4).",
    ]


def write_plots(result: DemoResult, out_dir, *, which=tuple(PLOT_FILES), dpi=100):
    """Write the demo's PNG plots into ``out_dir`` (created if needed); returns the paths written.

    Uses matplotlib's object-oriented API (``matplotlib.figure.Figure``), so no
    GUI backend is touched and pyplot's global state is left alone.
    """
    Figure = require("matplotlib.figure", extra="plot", purpose="the demo plots (or pass --no-plots)").Figure
    from .plot import plot_loo, plot_mislabel_detection, plot_top_influences

    unknown = set(which) - set(PLOT_FILES)
    if unknown:
        raise ValueError(f"unknown plot(s) {sorted(unknown)}; choose from {sorted(PLOT_FILES)}")
    os.makedirs(out_dir, exist_ok=True)
    r = result
    j = r.loo_test_point
    paths = []
    for name in which:
        if name == "loo":
            fig = Figure(figsize=(11, 4.6))
            left, right = fig.subplots(1, 2)
            for ax, estimate, label in (
                (left, r.loo_influence, "first order: -(1/n) I_up,loss"),
                (right, r.loo_newton, "one Newton step without the point"),
            ):
                plot_loo(estimate[:, j], r.loo_actual[:, j], ax=ax, label=label, scale="symlog")
            for ax, method in ((left, "Influence"), (right, "Newton")):
                ax.set_title(f"{method} estimate, r = {r.correlations[method.lower()]['test_point']:.4f}")
            fig.suptitle(
                f"Removing one of {r.loo_indices.size} training points: change of the loss on "
                f"test #{j} (breast cancer, logistic regression; symmetric-log axes)"
            )
        elif name == "top_influences":
            fig = Figure(figsize=(8, 5.5))
            ax = fig.subplots()
            labels = [f"train #{i} ({r.class_names[c]})" for i, c in enumerate(r.y_train)]
            plot_top_influences(r.scores[:, j], k=10, ax=ax, labels=labels)
            # the scale: removing a point changes the test loss by about -score/n
            top = ax.secondary_xaxis("top", functions=_per_removal(r.X_train.shape[0]))
            top.set_xlabel(
                f"if removed: change of the test loss, about -score/n (test loss {r.test_loss[j]:.3f})"
            )
            ax.set_title(
                f"Test #{j} (true {r.class_names[r.y_test[j]]}): most helpful and harmful training points"
            )
        else:
            fig = Figure(figsize=(6.5, 4.8))
            ax = fig.subplots()
            plot_mislabel_detection(
                r.noisy_self_influence, r.noisy_training_loss, r.flipped_mask, ax=ax, seed=r.seed
            )
        fig.tight_layout()
        path = os.path.join(out_dir, PLOT_FILES[name])
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def run_demo(out_dir="fastinfluence-demo", *, plots=True, quiet=False, seed=0, stream=None):
    """Compute, print (unless ``quiet``) and plot (if ``plots``) the demo; returns the :class:`DemoResult`.

    The PNG files written are listed in ``result.plot_paths``.
    """
    result = compute_demo(seed)
    if not quiet:
        print_demo(result, stream)
    if plots:
        result.plot_paths = write_plots(result, out_dir)
    return result
