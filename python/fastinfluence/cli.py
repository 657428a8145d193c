"""The ``fastinfluence`` command line: ``fastinfluence demo`` and ``fastinfluence score``.

Exit status: 0 on success, 2 on bad input or usage (a one-line message on
stderr, and no output file written), 1 on an unexpected failure (one line on
stderr; ``--verbose`` adds the traceback), 130 when interrupted (SIGINT,
Ctrl-C), 143 when terminated (SIGTERM).

Each output ``FILE`` is written to ``FILE.fastinfluence-partial-HOST-PID`` in
the output's folder and moved into place with ``os.replace`` once every output
is complete, so a failed, interrupted or terminated run never leaves a partial
file behind. A run killed outright (SIGKILL) cannot clean up: its partial file
keeps that recognisable name, and the next ``score`` run with the same
``--out`` on the same host removes it once process PID has ended. pandas,
pyarrow and tqdm (the ``cli`` extra) are imported only by the subcommands that
need them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import os
import re
import signal
import socket
import sys
import threading
import traceback
import warnings

import numpy as np

__all__ = [
    "main",
    "build_parser",
    "InputError",
    "top_k_table",
    "self_influence_table",
    "partial_output_path",
    "remove_stale_partial_outputs",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM
PROG = "fastinfluence"

#: Memory (MiB) the full I_up,loss matrix may take before ``score`` refuses and points to --top-k.
DEFAULT_MAX_MATRIX_MB = 1024
#: Seconds a step runs before its progress bar appears (quick steps print nothing).
PROGRESS_DELAY = 0.5
#: Target size (bytes) of one block of scores computed at a time.
BLOCK_BYTES = 64 * 2**20

MODEL_NAMES = ("logistic", "linear", "poisson", "smooth-hinge")
CLASSIFIER_NAMES = ("logistic", "smooth-hinge")

TABLE_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}


class InputError(Exception):
    """Bad input or usage: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2) instead of the usage block."""

    def error(self, message):
        raise InputError(f"{message} (see '{self.prog} --help')")


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30, width=100)


# -- the parser --------------------------------------------------------------------------------

MAIN_DESCRIPTION = """\
Which training rows made my model say this? fastinfluence computes exact influence
functions (Koh & Liang, 2017) of convex linear models: for every training row i and
test row j, the score

    I_up,loss(i, j) = -grad loss(test j)^T  H^-1  grad loss(train i)

says how the loss on test row j changes when training row i gets a little more weight.
Negative = helpful (row i lowers the test loss), positive = harmful. Removing row i
changes the test loss by about -score / n_train.

Start with 'fastinfluence demo'; run 'fastinfluence COMMAND --help' for the options
of a command."""

MAIN_EPILOG = """\
examples:
  fastinfluence demo
  fastinfluence score --train train.csv --test test.csv --target label --out scores.csv
  fastinfluence score --train train.parquet --test test.parquet --target label \\
      --top-k 10 --self-influence --out top10.parquet

exit status: 0 success, 2 bad input or usage, 1 unexpected failure, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM)."""

DEMO_DESCRIPTION = """\
Fit logistic regression on the breast cancer data that ships with scikit-learn (first 455
rows train, last 114 test; no network needed) and print:
  1. the fit (Newton iterations, gradient norm, accuracy);
  2. for misclassified test points, their most helpful and most harmful training points;
  3. how well the leave-one-out estimates match exact refits (Pearson correlation);
  4. the training points with the largest self-influence (mislabel candidates);
  5. a mislabel-detection experiment: 10% of the labels flipped, found by self-influence.
PNG plots go into --out-dir (needs matplotlib: pip install "fastinfluence[plot]")."""

DEMO_EPILOG = """\
examples:
  fastinfluence demo
  fastinfluence demo --out-dir /tmp/influence-plots --seed 1
  fastinfluence demo --no-plots"""

SCORE_DESCRIPTION = """\
Fit a model on --train (all columns but --target are features; every column must be
numeric or boolean, without missing values) and score every training row against every
test row (--test must have the same columns). Row numbers count data rows from 0, in file
order (the header is not a row). Input and output formats follow the file extensions:
.csv, .csv.gz, .parquet or .pq.

what --out holds:
  (default)          the full I_up,loss matrix: a column train_row, then one column per
                     test row (test_0, test_1, ...); one row per training row.
                     Refused above --max-matrix-mb: use --top-k then.
  --top-k K          a tidy table test_row, rank, train_row, score, kind: for each test row
                     its K most helpful (kind=helpful, most negative score first) and K
                     most harmful (kind=harmful, most positive first) training rows
                     (K is capped at the number of training rows; the sign of score is
                     what counts when fewer than K rows help or harm).
  --self-influence   a table train_row, self_influence = I_up,loss(i, i) <= 0, most
                     negative first: the rows the model bends most to fit (check their
                     labels first). With --top-k as well, the self-influence goes to a
                     second file beside --out: scores.csv -> scores.self_influence.csv.

labels: logistic and smooth-hinge take 0/1, -1/+1 or true/false, and --train must hold both
classes; poisson takes counts >= 0 (not all 0 with an intercept); linear takes any number.
--train needs at least 2 rows. The objective is (1/n) sum_i loss_i + (l2/2) ||w||^2.

partial outputs: each output FILE is written to FILE.fastinfluence-partial-HOST-PID beside it and
renamed to FILE once every output is complete. A run that fails, is interrupted (Ctrl-C) or is
terminated (SIGTERM) removes it; a run killed outright (SIGKILL, out of memory) leaves it behind,
and the next run with the same --out on the same host removes it once process PID has ended
(or delete it yourself)."""

SCORE_EPILOG = """\
examples:
  # the full matrix: one row per training row, one column per test row
  fastinfluence score --train train.csv --test test.csv --target label --out scores.csv

  # the 10 most helpful and harmful training rows per test row, plus self-influence
  fastinfluence score --train train.parquet --test test.parquet --target label \\
      --model logistic --l2 1e-3 --top-k 10 --self-influence --out top10.parquet
  # -> top10.parquet and top10.self_influence.parquet

exit status: 0 success, 2 bad input or usage (no output written), 1 unexpected failure,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM); neither leaves a partial output."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=MAIN_DESCRIPTION, epilog=MAIN_EPILOG, formatter_class=_formatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    common = _Parser(add_help=False)
    common.add_argument(
        "--quiet", action="store_true", help="print no progress or report (errors still go to stderr)"
    )
    common.add_argument("--verbose", action="store_true", help="show the traceback of unexpected failures")
    commands = parser.add_subparsers(
        dest="command", title="commands", metavar="COMMAND", parser_class=_Parser
    )

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run everything on bundled data (breast cancer) and explain the results",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EPILOG,
        formatter_class=_formatter,
    )
    demo.add_argument(
        "--out-dir",
        default="fastinfluence-demo",
        metavar="DIR",
        help="folder for the PNG plots, created if needed (default: ./fastinfluence-demo)",
    )
    demo.add_argument("--no-plots", action="store_true", help="write no plots")
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the random sample and label flips (default: 0)"
    )
    demo.set_defaults(run=_run_demo)

    score = commands.add_parser(
        "score",
        parents=[common],
        help="influence scores for your own CSV or Parquet files",
        description=SCORE_DESCRIPTION,
        epilog=SCORE_EPILOG,
        formatter_class=_formatter,
    )
    files = score.add_argument_group("data")
    files.add_argument(
        "--train", required=True, metavar="FILE", help="training rows (.csv, .csv.gz, .parquet, .pq)"
    )
    files.add_argument(
        "--test", required=True, metavar="FILE", help="test rows, with the same columns as --train"
    )
    files.add_argument("--target", required=True, metavar="COLUMN", help="name of the label column")
    files.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="output file; its extension picks CSV or Parquet; replaced if it exists",
    )
    model = score.add_argument_group("model")
    model.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default="logistic",
        help="loss: logistic, linear (squared), poisson or smooth-hinge (default: logistic)",
    )
    model.add_argument("--l2", type=float, default=1e-3, help="L2 penalty strength (default: 1e-3)")
    model.add_argument(
        "--t",
        type=float,
        default=None,
        help="temperature of the smooth hinge, smooth-hinge only (default: 0.1)",
    )
    model.add_argument("--no-intercept", action="store_true", help="fit without an intercept")
    model.add_argument(
        "--max-iter", type=int, default=100, help="most Newton iterations of the fit (default: 100)"
    )
    model.add_argument(
        "--damping",
        type=float,
        default=0.0,
        help="added to the Hessian's diagonal when it is (near) singular (default: 0)",
    )
    what = score.add_argument_group("output")
    what.add_argument(
        "--top-k",
        type=int,
        default=None,
        metavar="K",
        help="keep the K most helpful and K most harmful training rows per test row",
    )
    what.add_argument(
        "--self-influence",
        action="store_true",
        help="write the self-influence of every training row (see above)",
    )
    what.add_argument(
        "--max-matrix-mb",
        type=float,
        default=DEFAULT_MAX_MATRIX_MB,
        metavar="MB",
        help=f"largest full matrix to write, in MiB (default: {DEFAULT_MAX_MATRIX_MB})",
    )
    score.add_argument("--n-jobs", type=int, default=None, metavar="N", help="threads (default: every core)")
    score.set_defaults(run=_run_score)
    return parser


# -- entry point -------------------------------------------------------------------------------


def _error_line(text):
    first = " ".join(str(text).split())  # one line, whatever the message held
    print(f"{PROG}: error: {first}", file=sys.stderr)


@contextlib.contextmanager
def _warnings_to_stderr():
    """Print each warning as one line on stderr (not as file:line source excerpts)."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"{PROG}: warning: {category.__name__}: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


class _Terminated(BaseException):
    """Raised by the SIGTERM handler; a BaseException, like KeyboardInterrupt, so cleanup runs."""


class _RaiseOnSigterm:
    """While active, SIGTERM raises _Terminated, as SIGINT raises KeyboardInterrupt.

    The exception unwinds through ``write_tables``, which removes its partial
    files. ``received`` says whether a SIGTERM came: the compiled core turns
    any exception a signal handler raises during a kernel into
    KeyboardInterrupt, so the exception's type alone does not tell. Handlers
    can only be set from the main thread, and a SIGTERM ignored by whoever
    started us stays ignored (Python does the same for SIGINT); in both cases
    SIGTERM is left as it was.
    """

    def __init__(self):
        self.received = False
        self._installed = False
        self._previous = None

    def _handle(self, signum, frame):
        self.received = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise _Terminated

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGTERM)
            if self._previous != signal.SIG_IGN:
                signal.signal(signal.SIGTERM, self._handle)
                self._installed = True
        return self

    def __exit__(self, *exc_info):
        if self._installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self._previous is None else self._previous)
            self._installed = False
        return False


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except InputError as exc:
        _error_line(exc)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version exit through argparse
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    sigterm = _RaiseOnSigterm()
    try:
        with _warnings_to_stderr(), sigterm:
            return args.run(args)
    except InputError as exc:
        _error_line(exc)
        return EXIT_USAGE
    except (KeyboardInterrupt, _Terminated):
        if sigterm.received:
            _error_line("terminated (SIGTERM)")
            return EXIT_TERMINATED
        _error_line("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (rerun with --verbose for the traceback)"
        _error_line(f"unexpected failure: {type(exc).__name__}: {exc}{hint}")
        return EXIT_FAILURE


# -- demo --------------------------------------------------------------------------------------


def _run_demo(args) -> int:
    from . import demo

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


# -- score: files ------------------------------------------------------------------------------


def _table_format(path, option):
    lower = path.lower()
    for ext in sorted(TABLE_FORMATS, key=len, reverse=True):
        if lower.endswith(ext) and len(lower) > len(ext):
            return ext, TABLE_FORMATS[ext]
    raise InputError(f"{option} {path}: unknown file type; use .csv, .csv.gz, .parquet or .pq")


def _require(module, extra="cli"):
    try:
        return __import__(module)
    except ImportError as exc:
        raise InputError(f'fastinfluence score needs {module}: pip install "fastinfluence[{extra}]"') from exc


def _csv_field_counts(path):
    """(fields in the header, fields in the first data row, that row's line number), or None.

    Read with the csv module, whose default dialect is pandas' (comma, double
    quotes), skipping blank lines as pandas does. None when the file has no
    data row or cannot be read this way: pandas then reports the problem.
    """
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            records = (record for record in reader if record)
            header, first = next(records, None), next(records, None)
            if first is None:
                return None
            return len(header), len(first), reader.line_num
    except (OSError, EOFError, csv.Error, ValueError):
        return None


def _check_csv_field_counts(path, option):
    """Refuse rows longer than the header: pandas would silently take the first column as the index."""
    counts = _csv_field_counts(path)
    if counts is None or counts[1] <= counts[0]:
        return  # shorter rows are missing values, reported as such later
    names, fields, line = counts
    hint = " (a trailing comma at the end of each data line?)" if fields == names + 1 else ""
    raise InputError(
        f"{option} file {path} has {names} column names in its header but {fields} fields in its "
        f"first data row (line {line}){hint}; every row needs one field per header column: remove "
        "the extra fields or name every column in the header"
    )


def read_table(path, option):
    """Read a CSV or Parquet file into a DataFrame; every problem becomes an InputError."""
    pd = _require("pandas")
    _, fmt = _table_format(path, option)
    if not os.path.exists(path):
        raise InputError(f"{option} file not found: {path}")
    if os.path.isdir(path):
        raise InputError(f"{option} {path} is a folder, not a file")
    try:
        if fmt == "csv":
            _check_csv_field_counts(path, option)
            with warnings.catch_warnings():
                # index_col=False: never make the first column the index. Longer rows than the
                # header are refused above; should one get past, pandas' data-loss warning is an error.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(path, index_col=False)
        else:
            _require("pyarrow")
            frame = pd.read_parquet(path, engine="pyarrow")
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(f"{option} file {path} is empty") from None
    except Exception as exc:  # parser errors, bad bytes, not a Parquet file, permissions, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {option} file {path} as {fmt.upper()}: {reason}") from None
    if frame.shape[0] == 0:
        raise InputError(f"{option} file {path} has no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _describe_columns(columns, limit=6):
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def _numeric_column_problems(frame, option, path):
    pd = _require("pandas")
    bad = [
        c
        for c in frame.columns
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    if bad:
        kinds = ", ".join(f"{c!r} ({frame[c].dtype})" for c in bad[:6]) + (
            f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        )
        raise InputError(
            f"{option} file {path} has non-numeric columns: {kinds}; encode them as numbers first"
        )
    missing = frame.isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        parts = ", ".join(f"{c!r} ({n} row{'s' if n > 1 else ''})" for c, n in list(missing.items())[:6])
        raise InputError(
            f"{option} file {path} has missing values (NaN) in columns {parts}; fill or drop them first"
        )


def split_features(frame, target, option, path, feature_columns=None):
    """(X float64 (n, d), y, feature column names) from a DataFrame, validated."""
    if target not in frame.columns:
        raise InputError(
            f"{option} file {path} has no column {target!r} (--target); its columns are "
            f"{_describe_columns(list(frame.columns))}"
        )
    features = [c for c in frame.columns if c != target]
    if feature_columns is not None:
        missing = [c for c in feature_columns if c not in features]
        extra = [c for c in features if c not in feature_columns]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"lacks training columns {_describe_columns(missing)}")
            if extra:
                parts.append(f"has columns not in --train: {_describe_columns(extra)}")
            raise InputError(f"{option} file {path} " + " and ".join(parts))
        features = list(feature_columns)
    if not features:
        raise InputError(f"{option} file {path} has no feature columns besides the target {target!r}")
    _numeric_column_problems(frame[features + [target]], option, path)
    X = frame[features].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(X)):
        bad = [c for c, ok in zip(features, np.isfinite(X).all(axis=0)) if not ok]
        raise InputError(f"{option} file {path} has infinite values in columns {_describe_columns(bad)}")
    column = frame[target]
    y = column.to_numpy(dtype=bool) if column.dtype == bool else column.to_numpy(dtype=np.float64)
    if y.dtype != bool and not np.all(np.isfinite(y)):
        raise InputError(f"{option} file {path} has infinite values in the target column {target!r}")
    return np.ascontiguousarray(X), y, features


def _output_paths(args):
    """Validated (path, extension, format) for every file this run will write."""
    ext, fmt = _table_format(args.out, "--out")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise InputError(f"--out {args.out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"--out {args.out}: folder {folder} is not writable")
    if os.path.isdir(args.out):
        raise InputError(f"--out {args.out} is a folder; give a file name")
    outputs = [(args.out, ext, fmt)]
    if args.top_k is not None and args.self_influence:
        outputs.append(
            (
                args.out[: len(args.out) - len(ext)]
                + ".self_influence"
                + args.out[len(args.out) - len(ext) :],
                ext,
                fmt,
            )
        )
    inputs = {os.path.realpath(p) for p in (args.train, args.test)}
    for path, _, _ in outputs:
        if os.path.realpath(path) in inputs:
            raise InputError(f"output {path} would overwrite an input file")
    return outputs


#: What sits between an output's name and HOST-PID in the name of its partial file.
PARTIAL_MARK = ".fastinfluence-partial-"


def _host():
    """This machine's name as it appears in partial-file names (file-name safe, no separators)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


def partial_output_path(path, pid=None):
    """Where ``score`` writes ``path`` until it is complete: ``path.fastinfluence-partial-HOST-PID``.

    ``pid`` defaults to this process. The file is renamed to ``path`` when every
    output of the run is written, and removed when the run fails, is interrupted
    or is terminated; only a run killed outright (SIGKILL) leaves it, and the next
    run with the same ``--out`` on the same host removes it once PID has ended.
    """
    return f"{path}{PARTIAL_MARK}{_host()}-{os.getpid() if pid is None else pid}"


def _process_alive(pid):
    """Whether process ``pid`` (on this host) may still be running; when unsure, yes."""
    if pid == os.getpid():
        return True
    if os.name == "nt" or pid <= 0:  # os.kill(pid, 0) would send CTRL_C_EVENT on Windows
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: another user's process, alive
        return True
    return True


def remove_stale_partial_outputs(path):
    """Remove the partial files of ``path`` left by killed runs on this host; returns their names.

    A partial file of another host is left alone: its process cannot be
    checked from here (the folder may be shared).
    """
    folder = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(os.path.basename(path) + PARTIAL_MARK) + r"(?P<host>.+)-(?P<pid>[0-9]+)")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    removed = []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or match["host"] != _host() or _process_alive(int(match["pid"])):
            continue
        candidate = os.path.join(folder, name)
        if os.path.isdir(candidate) and not os.path.islink(candidate):
            continue
        try:
            os.remove(candidate)
        except FileNotFoundError:  # another run removed it first
            continue
        except OSError as exc:
            print(f"{PROG}: note: cannot remove {candidate}: {exc.strerror or exc}", file=sys.stderr)
            continue
        removed.append(name)
    return removed


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_tables(tables):
    """Write [(DataFrame, path, extension, format)] atomically: all files appear, or none.

    Each table goes to ``partial_output_path(path)`` in its output's folder and
    is moved into place with ``os.replace`` only after every table was written.
    Any exception, KeyboardInterrupt and SIGTERM (see ``main``) included,
    removes the partial files.
    """
    temporary = []
    try:
        for frame, path, ext, fmt in tables:
            tmp = partial_output_path(path)
            temporary.append(tmp)  # before the file exists: cleanup must know it from the first byte
            if fmt == "csv":
                # The partial name hides the extension: say which compression .csv.gz means.
                frame.to_csv(tmp, index=False, compression="gzip" if ext == ".csv.gz" else None)
            else:
                frame.to_parquet(tmp, engine="pyarrow", index=False)
        mode = 0o666 & ~_umask()  # the usual permissions, even if a file of that name was there before
        for tmp, (_, path, _, _) in zip(temporary, tables):
            os.chmod(tmp, mode)
            os.replace(tmp, path)
    except BaseException:
        for tmp in temporary:
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass
            except OSError as exc:
                print(
                    f"{PROG}: note: cannot remove the partial output {tmp} ({exc.strerror or exc}); "
                    "delete it, or let the next run with the same --out remove it",
                    file=sys.stderr,
                )
        raise


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
    pd = _require("pandas")
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
    pd = _require("pandas")
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


def _make_model(args):
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


def _run_score(args) -> int:
    import fastinfluence as fi

    if args.top_k is not None and args.top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {args.top_k}")
    if args.n_jobs is not None and not (args.n_jobs >= 1 or args.n_jobs == -1):
        raise InputError(
            f"--n-jobs must be a positive number of threads, or -1 for every core; got {args.n_jobs}"
        )
    if not args.max_matrix_mb > 0:
        raise InputError(f"--max-matrix-mb must be > 0, got {args.max_matrix_mb}")
    outputs = _output_paths(args)
    model = _make_model(args)
    for path, _, _ in outputs:
        for name in remove_stale_partial_outputs(path):
            if not args.quiet:
                print(
                    f"{PROG}: note: removed {name}, the partial output of an earlier run that was killed",
                    file=sys.stderr,
                )
    _require("tqdm")
    pd = _require("pandas")
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
