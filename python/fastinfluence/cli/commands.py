"""The commands ``fastinfluence demo`` and ``fastinfluence score`` (read, fit, score, write)."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

import numpy as np

from .errors import EXIT_OK, PROG, InputError
from .io import output_paths, read_table, remove_stale_partial_outputs, require, split_features, write_tables
from .parser import CLASSIFIER_NAMES

__all__ = ["run_demo", "run_score", "full_matrix", "top_k_table", "self_influence_table", "make_model"]

#: Seconds a step runs before its progress bar appears (quick steps print nothing).
PROGRESS_DELAY = 0.5
#: Target size (bytes) of one block of scores computed at a time.
BLOCK_BYTES = 64 * 2**20


def run_demo(args) -> int:
    from .. import demo

    if not args.no_plots and os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise InputError(f"--out-dir {args.out_dir} exists and is not a folder")
    try:
        result = demo.compute_demo(args.seed)
    except ImportError as exc:
        raise InputError(str(exc)) from exc
    if not args.quiet:
        demo.print_demo(result)
    if args.no_plots:
        return EXIT_OK
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            f'{PROG}: note: plots skipped: matplotlib is not installed (pip install "fastinfluence[plot]")',
            file=sys.stderr,
        )
        return EXIT_OK
    try:
        paths = demo.write_plots(result, args.out_dir)
    except OSError as exc:
        raise InputError(f"cannot write plots to {args.out_dir}: {exc.strerror or exc}") from exc
    if not args.quiet:
        print(
            f"\nPlots written to {os.path.abspath(args.out_dir)}{os.sep}: "
            + ", ".join(os.path.basename(p) for p in paths)
        )
    return EXIT_OK


# -- score: computations -----------------------------------------------------------------------


def _progress(quiet, **kwargs):
    """A tqdm bar on stderr, shown only once its step has run for PROGRESS_DELAY seconds."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=quiet, dynamic_ncols=True, delay=PROGRESS_DELAY, **kwargs)


@contextlib.contextmanager
def _step(description, quiet):
    """A one-step progress bar for a single long call (fit, factorisation, writing)."""
    bar = _progress(quiet, total=1, desc=description, bar_format="{desc}: {bar:10} {elapsed}{postfix}")
    try:
        yield bar
        bar.update(1)
    except BaseException:
        bar.leave = False  # erase the bar of a failed step: the error line is what matters
        raise
    finally:
        bar.close()


def _block_size(n_rows, bytes_per_column=8):
    return max(1, int(BLOCK_BYTES // max(1, n_rows * bytes_per_column)))


def _blocks(total, size):
    for start in range(0, total, size):
        yield start, min(total, start + size)


def full_matrix(inf, X_test, y_test, bar=None):
    """I_up,loss for every (training row, test row), computed in blocks of test columns."""
    n, m = inf.n_samples_, X_test.shape[0]
    scores = np.empty((n, m))
    for start, stop in _blocks(m, _block_size(n)):
        scores[:, start:stop] = inf.loss(X_test[start:stop], y_test[start:stop])
        if bar is not None:
            bar.update(stop - start)
    return scores


def _top_k_of_block(scores, k):
    """(helpful_idx, helpful_scores, harmful_idx, harmful_scores), each (k, b), best first."""
    n = scores.shape[0]
    if k < n:
        helpful = np.argpartition(scores, k - 1, axis=0)[:k]
        harmful = np.argpartition(-scores, k - 1, axis=0)[:k]
    else:
        helpful = harmful = np.broadcast_to(np.arange(n)[:, None], scores.shape)
    helpful_scores = np.take_along_axis(scores, helpful, axis=0)
    order = np.argsort(helpful_scores, axis=0, kind="stable")
    helpful, helpful_scores = (
        np.take_along_axis(helpful, order, 0),
        np.take_along_axis(helpful_scores, order, 0),
    )
    harmful_scores = np.take_along_axis(scores, harmful, axis=0)
    order = np.argsort(-harmful_scores, axis=0, kind="stable")
    harmful, harmful_scores = (
        np.take_along_axis(harmful, order, 0),
        np.take_along_axis(harmful_scores, order, 0),
    )
    return helpful, helpful_scores, harmful, harmful_scores


def _tidy_top_k(test_rows, helpful, helpful_scores, harmful, harmful_scores):
    """Tidy columns from (k, b) arrays: test_row, rank, train_row, score, kind."""
    k, b = helpful.shape
    ranks = np.repeat(np.arange(1, k + 1)[None, :], b, axis=0).ravel()  # (b * k,), test-major
    rows = np.repeat(np.asarray(test_rows), k)
    parts = []
    for kind, idx, values in (("helpful", helpful, helpful_scores), ("harmful", harmful, harmful_scores)):
        parts.append(
            {
                "test_row": rows,
                "rank": ranks,
                "train_row": np.asarray(idx).T.ravel(),
                "score": np.asarray(values, dtype=np.float64).T.ravel(),
                "kind": np.full(b * k, kind),
            }
        )
    return parts


def _normalise_top_k_result(result, m, k):
    """The (k, m) arrays of ``Influence.top_k``'s result, or None when its form is not recognised.

    Accepted: a mapping or object with ``helpful_indices``, ``helpful_scores``,
    ``harmful_indices`` and ``harmful_scores``, each (m, k) (test-major) or (k, m).
    """
    names = ("helpful_indices", "helpful_scores", "harmful_indices", "harmful_scores")
    try:
        arrays = [np.asarray(result[n] if isinstance(result, dict) else getattr(result, n)) for n in names]
    except (AttributeError, KeyError, TypeError):
        return None
    out = []
    for a in arrays:
        if a.shape == (m, k):
            out.append(a.T)
        elif a.shape == (k, m):
            out.append(a)
        else:
            return None
    return tuple(out)


def top_k_table(inf, X_test, y_test, k, bar=None):
    """Tidy DataFrame (test_row, rank, train_row, score, kind) of the k most helpful and harmful rows.

    Uses ``Influence.top_k`` (streaming over X, O(m k) memory) when the object
    has it and its result has the recognised form; otherwise (an Influence-like
    object without it) scores blocks of test columns with ``loss`` and keeps
    the k smallest and largest of each column with ``np.argpartition``. ``k`` is
    capped at the number of training rows.
    """
    pd = require("pandas")
    n, m = inf.n_samples_, X_test.shape[0]
    k = min(int(k), n)
    pieces = None
    if hasattr(inf, "top_k"):
        arrays = _normalise_top_k_result(inf.top_k(X_test, y_test, k=k), m, k)
        if arrays is not None:
            pieces = _tidy_top_k(np.arange(m), *arrays)
            if bar is not None:
                bar.update(m)
    if pieces is None:
        pieces = []
        for start, stop in _blocks(m, _block_size(n)):
            block = inf.loss(X_test[start:stop], y_test[start:stop])
            pieces.extend(_tidy_top_k(np.arange(start, stop), *_top_k_of_block(block, k)))
            if bar is not None:
                bar.update(stop - start)
    columns = {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}
    table = pd.DataFrame(columns)
    table["kind_order"] = (table["kind"] == "harmful").astype(np.int8)
    table = table.sort_values(["test_row", "kind_order", "rank"], kind="stable").drop(columns="kind_order")
    return table.reset_index(drop=True)


def self_influence_table(inf, bar=None):
    """DataFrame (train_row, self_influence), most negative first; computed in row blocks."""
    pd = require("pandas")
    n = inf.n_samples_
    values = np.empty(n)
    for start, stop in _blocks(n, max(1, 2**16)):
        values[start:stop] = inf.self_influence(indices=np.arange(start, stop))
        if bar is not None:
            bar.update(stop - start)
    order = np.argsort(values, kind="stable")
    return pd.DataFrame({"train_row": order, "self_influence": values[order]})


def _label_message(exc):
    """The library's label error, worded for a column: 'y must hold ...' -> 'the column must hold ...'."""
    text = str(exc)
    for name in ("y_test ", "y "):
        if text.startswith(name):
            return "the column " + text[len(name) :]
    return text


def _size(n_bytes):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024


def _check_fittable(y, args):
    """Refuse training sets whose fit has no optimum (or no meaning) before fitting.

    One row cannot be scored against others; a classifier needs both classes
    (with one, the intercept runs off to infinity); a Poisson model with an
    intercept needs a count > 0 (with all 0, the intercept runs off to -infinity).
    """
    where = f"--train file {args.train}"
    if y.shape[0] < 2:
        raise InputError(
            f"{where} has {y.shape[0]} data row; fitting a model and scoring influence need at least 2"
        )
    if args.model in CLASSIFIER_NAMES:
        classes = np.unique(y)
        if classes.size < 2:
            value = classes[0] if y.dtype == bool else f"{classes[0]:g}"
            raise InputError(
                f"--target {args.target!r} in {where} holds a single class (every row is {value}); "
                f"a {args.model} classifier needs rows of both classes"
            )
    if args.model == "poisson" and not args.no_intercept and not np.any(y != 0):
        raise InputError(
            f"--target {args.target!r} in {where} is 0 in every row; a poisson model with an intercept "
            "has no optimum then (the intercept goes to -infinity): give rows with counts > 0, or "
            "--no-intercept"
        )


def make_model(args):
    import fastinfluence as fi

    if args.t is not None and args.model != "smooth-hinge":
        raise InputError(f"--t is the smooth-hinge temperature; it does not apply to --model {args.model}")
    if not (args.l2 >= 0 and np.isfinite(args.l2)):
        raise InputError(f"--l2 must be a number >= 0, got {args.l2}")
    if args.t is not None and not (args.t > 0 and np.isfinite(args.t)):
        raise InputError(f"--t must be a number > 0, got {args.t}")
    if not (args.damping >= 0 and np.isfinite(args.damping)):
        raise InputError(f"--damping must be a number >= 0, got {args.damping}")
    if args.max_iter < 1:
        raise InputError(f"--max-iter must be >= 1, got {args.max_iter}")
    options = dict(
        l2=args.l2, fit_intercept=not args.no_intercept, max_iter=args.max_iter, n_jobs=args.n_jobs
    )
    if args.model == "logistic":
        return fi.LogisticRegression(**options)
    if args.model == "linear":
        return fi.LinearRegression(**options)
    if args.model == "poisson":
        return fi.PoissonRegression(**options)
    return fi.SmoothHingeClassifier(t=0.1 if args.t is None else args.t, **options)


def run_score(args) -> int:
    import fastinfluence as fi

    if args.top_k is not None and args.top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {args.top_k}")
    if args.n_jobs is not None and not (args.n_jobs >= 1 or args.n_jobs == -1):
        raise InputError(
            f"--n-jobs must be a positive number of threads, or -1 for every core; got {args.n_jobs}"
        )
    if not args.max_matrix_mb > 0:
        raise InputError(f"--max-matrix-mb must be > 0, got {args.max_matrix_mb}")
    outputs = output_paths(args)
    model = make_model(args)
    for path, _, _ in outputs:
        for name in remove_stale_partial_outputs(path):
            if not args.quiet:
                print(
                    f"{PROG}: note: removed {name}, the partial output of an earlier run that was killed",
                    file=sys.stderr,
                )
    require("tqdm")
    pd = require("pandas")
    quiet = args.quiet

    with _step("reading", quiet):
        train = read_table(args.train, "--train")
        test = read_table(args.test, "--test")
        X, y, features = split_features(train, args.target, "--train", args.train)
        X_test, y_test, _ = split_features(test, args.target, "--test", args.test, feature_columns=features)
    _check_fittable(y, args)
    n, m = X.shape[0], X_test.shape[0]
    full = args.top_k is None and not args.self_influence
    if full and n * m * 8 > args.max_matrix_mb * 2**20:
        raise InputError(
            f"the full I_up,loss matrix would be {n} x {m} = {_size(n * m * 8)}, above the limit of "
            f"{args.max_matrix_mb:g} MiB (--max-matrix-mb); use --top-k K to keep the K most helpful and "
            "harmful "
            "training rows per test row, or raise --max-matrix-mb"
        )

    with _step(f"fit ({args.model}, {n} rows x {X.shape[1]} features)", quiet) as bar:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fi.ConvergenceWarning)  # reported below as an error
                model.fit(X, y)
        except ValueError as exc:
            raise InputError(f"--target {args.target!r} in --train: {_label_message(exc)}") from None
        bar.set_postfix_str(f"{model.n_iter_} Newton iterations, gradient norm {model.grad_norm_:.1e}")
    if not model.converged_:
        raise InputError(
            f"the {args.model} model did not converge ({model.fit_message_}; "
            f"gradient norm {model.grad_norm_:.2e} "
            f"after {model.n_iter_} iterations); influence needs the optimum: try a larger --l2 or --max-iter"
        )
    with _step("Hessian (compute and factorise)", quiet):
        try:
            inf = fi.Influence(model, X, y, damping=args.damping, n_jobs=args.n_jobs)
        except ValueError as exc:  # IllConditionedHessianError names --damping's Python twin
            raise InputError(f"{exc} (command line: --damping)") from None

    tables = []
    try:
        if full:
            with _progress(quiet, total=m, desc="scoring", unit=" test rows") as bar:
                scores = full_matrix(inf, X_test, y_test, bar)
            frame = pd.DataFrame(scores, columns=[f"test_{j}" for j in range(m)])
            frame.insert(0, "train_row", np.arange(n))
            tables.append(frame)
        if args.top_k is not None:
            with _progress(quiet, total=m, desc=f"top {args.top_k}", unit=" test rows") as bar:
                tables.append(top_k_table(inf, X_test, y_test, args.top_k, bar))
    except ValueError as exc:  # the test labels are validated when the test side is scored
        raise InputError(f"--target {args.target!r} in --test: {_label_message(exc)}") from None
    if args.self_influence:
        with _progress(quiet, total=n, desc="self-influence", unit=" train rows") as bar:
            tables.append(self_influence_table(inf, bar))
    with _step("writing", quiet):
        try:
            write_tables([(frame, *out) for frame, out in zip(tables, outputs)])
        except OSError as exc:
            raise InputError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    if not quiet:
        written = ", ".join(path for path, _, _ in outputs)
        print(f"{PROG}: wrote {written}", file=sys.stderr)
    return EXIT_OK
