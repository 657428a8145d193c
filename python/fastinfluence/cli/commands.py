"""The commands ``fastinfluence demo`` and ``fastinfluence score`` (read, fit, score, write)."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _dataframes as D
from .._optional import available, install_hint
from .columns import (
    Encoding,
    Selection,
    check_ids,
    check_test_columns,
    fit_encoding,
    scale_problem,
    select_columns,
)
from .errors import EXIT_OK, PROG, InputError, library_errors
from .io import (
    output_paths,
    read_table,
    remove_stale_partial_outputs,
    require,
    target_column,
    write_tables,
)
from .parser import CLASSIFIER_NAMES
from .tables import (
    describe_rows,
    full_matrix,
    model_name,
    report,
    row_table,
    self_influence_table,
    top_k_table,
)

__all__ = ["run_demo", "run_score", "make_model", "prepare", "Prepared"]

#: Seconds a step runs before its progress bar appears (quick steps print nothing).
PROGRESS_DELAY = 0.5


def _note(text):
    print(f"{PROG}: note: {text}", file=sys.stderr)


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
    if not available("matplotlib"):
        _note(f"plots skipped: matplotlib is not installed ({install_hint('matplotlib', 'plot')})")
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


# -- score: progress ---------------------------------------------------------------------------


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


# -- score: checks, columns, fit ----------------------------------------------------------------


def _size(n_bytes):
    for unit in ("bytes", "KiB", "MiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GiB"


def _check_options(args):
    """Refuse bad numbers before any file is read."""
    if args.top_k is not None and args.top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {args.top_k}")
    if args.n_jobs is not None and not (args.n_jobs >= 1 or args.n_jobs == -1):
        raise InputError(
            f"--n-jobs must be a positive number of threads, or -1 for every core; got {args.n_jobs}"
        )
    if not args.max_matrix_mb > 0:
        raise InputError(f"--max-matrix-mb must be > 0, got {args.max_matrix_mb}")
    if args.max_categories < 1:
        raise InputError(f"--max-categories must be >= 1, got {args.max_categories}")
    if args.validate is not None and args.validate < 1:
        raise InputError(f"--validate must be >= 1 (rows of each kind to refit), got {args.validate}")


def _check_fittable(y, args):
    """Refuse training sets whose fit has no optimum (or no meaning) before fitting.

    One row cannot be scored against others; a classifier needs both classes
    (with one, the intercept runs off to infinity); a Poisson model with an
    intercept needs a count > 0 (with all 0, the intercept runs off to -infinity).
    Missing labels are left to the library, which names them.
    """
    where = f"--train file {args.train}"
    if y.shape[0] < 2:
        raise InputError(
            f"{where} has {y.shape[0]} data row; fitting a model and scoring influence need at least 2"
        )
    if y.isna().any():
        return
    values = y.to_numpy()
    if args.model in CLASSIFIER_NAMES:
        classes = np.unique(values)
        if classes.size < 2:
            value = f"{classes[0]:g}" if np.issubdtype(values.dtype, np.number) else repr(classes[0])
            raise InputError(
                f"--target {args.target!r} in {where} holds a single class (every row is {value}); "
                f"a {args.model} classifier needs rows of at least two classes"
            )
    if args.model == "poisson" and not args.no_intercept and not np.any(values != 0):
        raise InputError(
            f"--target {args.target!r} in {where} is 0 in every row; a poisson model with an intercept "
            "has no optimum then (the intercept goes to -infinity): give rows with counts > 0, or "
            "--no-intercept"
        )


def _check_one_hot_identifiable(args, encoding):
    """With --l2 0, one-hot columns make the optimum non-unique: each column's indicators add up to
    1 in every training row (missing values have an indicator of their own), as the intercept and
    the indicators of any other one-hot column do."""
    one_hot = [c.name for c in encoding.of_kind("one-hot")]
    if args.l2 != 0 or not one_hot or (args.no_intercept and len(one_hot) == 1):
        return
    others = (
        "the intercept's column does" if not args.no_intercept else "those of the other one-hot columns do"
    )
    single = " or --no-intercept (with a single categorical column)" if len(one_hot) == 1 else ""
    raise InputError(
        f"--l2 0 with one-hot encoded column{'s' if len(one_hot) > 1 else ''} "
        f"{D.describe_columns(one_hot)}: the indicators of each add up to 1 in every row, as {others}, "
        f"so the fit has no unique optimum; give --l2 > 0 (for example 1e-3, the default){single}"
    )


def make_model(args):
    """The model --model names, with the options given; bad option values are an InputError."""
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
    if args.model == "multinomial":
        return fi.MultinomialLogisticRegression(**options)
    if args.model == "linear":
        return fi.LinearRegression(**options)
    if args.model == "poisson":
        return fi.PoissonRegression(**options)
    return fi.SmoothHingeClassifier(t=0.1 if args.t is None else args.t, **options)


def _for_classes(model, y):
    """--model logistic on a target of more than two classes (names, or whole numbers): the
    multinomial model (softmax). A target of real numbers stays binary, and its error says so."""
    import fastinfluence as fi

    labels = y.dropna()
    if type(model) is not fi.LogisticRegression or labels.nunique() <= 2:
        return model
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    numeric = is_numeric_dtype(labels.dtype) and not is_bool_dtype(labels.dtype)
    if numeric and not np.all(np.mod(labels.to_numpy(dtype=np.float64), 1.0) == 0):
        return model
    return fi.MultinomialLogisticRegression(**model.get_params())


def _places(args):
    """Where each argument of the library comes from on the command line (see ``library_errors``)."""
    target = f"--target {args.target!r} in"
    return {
        "X": f"--train file {args.train}",
        "y": f"{target} --train file {args.train}",
        "X_test": f"--test file {args.test}",
        "y_test": f"{target} --test file {args.test}",
    }


@dataclass
class Prepared:
    """The tables of a run as read (``train``, ``test``), the columns it uses (``selection``), how
    they are encoded (``encoding``), and the model matrices and targets."""

    train: Any
    test: Any
    selection: Selection
    encoding: Encoding
    X: np.ndarray
    y: Any
    X_test: np.ndarray
    y_test: Any


def prepare(args, train, test) -> Prepared:
    """Choose and encode the columns of the tables read from --train and --test (see ``columns``)."""
    places = _places(args)
    where, where_test = places["X"], places["X_test"]
    selection = select_columns(train, args, where)
    check_test_columns(test, list(train.columns), selection, where_test)
    if selection.id_column is not None:
        check_ids(train, selection.id_column, where)
        check_ids(test, selection.id_column, where_test)
    names = args.model in CLASSIFIER_NAMES
    y = target_column(train, args.target, where, class_names=names)
    y_test = target_column(test, args.target, where_test, class_names=names)
    with library_errors(places, fallback=where):
        encoding = fit_encoding(
            train,
            selection,
            standardize=args.standardize,
            center=not args.no_intercept,
            max_categories=args.max_categories,
            where=where,
        )
        _check_one_hot_identifiable(args, encoding)
        X = encoding.transform(train, "X", where)
        X_test = encoding.transform(test, "X_test", where_test)
    return Prepared(train, test, selection, encoding, X, y, X_test, y_test)


def _describe_run(args, data, model):
    """How the columns became the model's (stderr, one note a line)."""
    ignored = [f"{name!r} ({why})" for name, why in data.selection.ignored.items()]
    if ignored:
        shown = ", ".join(ignored[:6]) + (f" and {len(ignored) - 6} more" if len(ignored) > 6 else "")
        _note(f"not features: {shown}")
    for line in data.encoding.describe():
        _note(line)
    _note(
        f"{len(data.encoding.names)} model columns from {len(data.encoding.columns)} feature columns"
        + ("" if args.no_intercept else ", and an intercept")
    )
    if args.model == "logistic" and model.loss.name == "multinomial":
        _note(
            f"--target {args.target!r} has {data.y.nunique()} classes: "
            "fitting the multinomial (softmax) model"
        )


def _standardise_advice(problem):
    return (
        f"the scales of the feature columns are the problem ({problem}): standardise with --standardize "
        "(the default; this run has --no-standardize)"
    )


def _scale_problem(args, data):
    """What is wrong with the scales of the raw numeric columns, when they were not standardised."""
    if args.standardize:
        return None
    return scale_problem(data.train, data.encoding, not args.no_intercept)


def _fit_advice(args, model, data):
    """What to do about a fit that did not converge, from why it did not."""
    message = model.fit_message_
    if args.l2 == 0 and any(word in message for word in ("separable", "zero counts", "l2 = 0 and")):
        return "give --l2 > 0 (for example 1e-3, the default): with --l2 0 this objective has no minimiser"
    problem = _scale_problem(args, data)
    if problem is not None:
        return _standardise_advice(problem)
    if "reached max_iter" in message and "singular" not in message:
        return (
            f"raise --max-iter (it is {args.max_iter}; Newton's method rarely needs more than 30 iterations)"
        )
    return f"feature columns may be nearly collinear: --drop some of them, or raise --l2 (it is {args.l2:g})"


def _hessian_message(exc, args, data):
    """The library's finding about an ill-conditioned Hessian, with advice for the command line."""
    finding = str(exc).split("; influence values would be meaningless", 1)[0].rstrip(". ")
    problem = _scale_problem(args, data)
    if problem is not None:
        advice = _standardise_advice(problem)
    else:
        advice = (
            f"the feature columns are nearly collinear: --drop some of them, raise --l2 (it is {args.l2:g}), "
            "or pass --damping > 0"
        )
    return f"{finding}; influence values would be meaningless: {advice}"


def _fit_influence(args, model, data):
    """``fi.Influence`` of ``model`` fitted on the training rows, after checking it converged."""
    import fastinfluence as fi

    places = _places(args)
    name = model_name(args, model)
    with _step(f"fit ({name}, {data.X.shape[0]} rows x {data.X.shape[1]} model columns)", args.quiet) as bar:
        # errors without an argument come from the checks of the labels (models.py, losses.py)
        with library_errors(places, fallback=places["y"]), warnings.catch_warnings():
            warnings.simplefilter("ignore", fi.ConvergenceWarning)  # reported below as an error
            model.fit(data.X, data.y)
        bar.set_postfix_str(f"{model.n_iter_} Newton iterations, gradient norm {model.grad_norm_:.1e}")
    if not model.converged_:
        raise InputError(
            f"the {name} model did not converge ({model.fit_message_}; gradient norm "
            f"{model.grad_norm_:.2e} after {model.n_iter_} iterations); influence needs the optimum: "
            + _fit_advice(args, model, data)
        )
    with _step("Hessian (compute and factorise)", args.quiet), library_errors(places, fallback=places["X"]):
        try:
            return fi.Influence(model, data.X, data.y, damping=args.damping, n_jobs=args.n_jobs)
        except fi.IllConditionedHessianError as exc:
            raise InputError(_hessian_message(exc, args, data)) from None


def _score_tables(args, inf, data):
    """The tables this run writes, in the order of ``output_paths`` (the report aside)."""
    pd = require("pandas")
    X_test, y_test = data.X_test, data.y_test
    n, m = inf.n_samples_, X_test.shape[0]
    tables = []
    with library_errors(_places(args), fallback=f"--test file {args.test}"):
        if args.top_k is None and not args.self_influence:
            with _progress(args.quiet, total=m, desc="scoring", unit=" test rows") as bar:
                scores = full_matrix(inf, X_test, y_test, bar)
            frame = pd.DataFrame(scores, columns=[f"test_{j}" for j in range(m)])
            frame.insert(0, "train_row", np.arange(n))
            tables.append(("matrix", frame))
        if args.top_k is not None:
            with _progress(args.quiet, total=m, desc=f"top {args.top_k}", unit=" test rows") as bar:
                tables.append(("top_k", top_k_table(inf, X_test, y_test, args.top_k, bar)))
    if args.self_influence:
        with _progress(args.quiet, total=n, desc="self-influence", unit=" train rows") as bar:
            tables.append(("self_influence", self_influence_table(inf, bar)))
    model = inf.model
    train_rows = row_table("train", data.train, data.selection, model.predict(data.X))
    test_rows = row_table("test", data.test, data.selection, model.predict(X_test))
    return describe_rows(tables, train_rows, test_rows)


def _validate(args, inf, data):
    """The accuracy certificate of --validate (None without it): 2N exact refits, on the test loss of
    every test row when that matrix fits --max-matrix-mb, else on the mean test loss."""
    import fastinfluence as fi

    if args.validate is None:
        return None
    n, m = inf.n_samples_, data.X_test.shape[0]
    target: fi.targets.Target
    if n * m * 8 <= args.max_matrix_mb * 2**20:
        target = fi.targets.TestLoss(data.X_test, data.y_test)
    else:
        target = fi.targets.MeanTestLoss(data.X_test, data.y_test)
    count = min(n, 2 * args.validate)
    with (
        _step(f"validate ({count} exact refits)", args.quiet),
        library_errors(_places(args), fallback=f"--test file {args.test}"),
    ):
        certificate = inf.validate_on(
            target, n_top=args.validate, n_random=args.validate, random_state=args.validate_seed
        )
    if not args.quiet:
        _note("accuracy of the estimates against exact refits (--validate):")
        print(repr(certificate), file=sys.stderr)
    return certificate


# -- score: the command ------------------------------------------------------------------------


def _remove_stale(args, outputs):
    for path, _, _ in outputs:
        for name in remove_stale_partial_outputs(path):
            if not args.quiet:
                _note(f"removed {name}, the partial output of an earlier run that was killed")


def _check_matrix_size(args, n, m):
    if args.top_k is None and not args.self_influence and n * m * 8 > args.max_matrix_mb * 2**20:
        raise InputError(
            f"the full I_up,loss matrix would be {n} x {m} = {_size(n * m * 8)}, above the limit of "
            f"{args.max_matrix_mb:g} MiB (--max-matrix-mb); use --top-k K to keep the K most helpful and "
            "harmful training rows per test row, or raise --max-matrix-mb"
        )


def run_score(args) -> int:
    _check_options(args)
    outputs = output_paths(args)
    model = make_model(args)
    _remove_stale(args, outputs)
    require("tqdm")
    with _step("reading", args.quiet):
        train = read_table(args.train, "--train")
        test = read_table(args.test, "--test")
        data = prepare(args, train, test)
    _check_fittable(data.y, args)
    model = _for_classes(model, data.y)
    _check_matrix_size(args, data.X.shape[0], data.X_test.shape[0])
    if not args.quiet:
        _describe_run(args, data, model)
    inf = _fit_influence(args, model, data)
    certificate = _validate(args, inf, data)
    tables = _score_tables(args, inf, data)
    if args.report is not None:
        tables.append(report(args, data, inf.model, outputs, certificate))
    with _step("writing", args.quiet):
        try:
            write_tables([(frame, *out) for frame, out in zip(tables, outputs)])
        except OSError as exc:
            raise InputError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    if not args.quiet:
        written = ", ".join(path for path, _, _ in outputs)
        print(f"{PROG}: wrote {written}", file=sys.stderr)
    return EXIT_OK
