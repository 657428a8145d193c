"""Files of ``fastinfluence score``: reading tables, checking CSV rows, naming outputs, and writing
them atomically through partial files ``FILE.fastinfluence-partial-HOST-PID``."""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import socket
import sys
import warnings

from .. import _optional
from .errors import PROG, InputError

__all__ = [
    "TABLE_FORMATS",
    "PARTIAL_MARK",
    "require",
    "read_table",
    "target_column",
    "output_paths",
    "partial_output_path",
    "remove_stale_partial_outputs",
    "write_tables",
]

TABLE_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _table_format(path, option):
    lower = path.lower()
    for ext in sorted(TABLE_FORMATS, key=len, reverse=True):
        if lower.endswith(ext) and len(lower) > len(ext):
            return ext, TABLE_FORMATS[ext]
    raise InputError(f"{option} {path}: unknown file type; use .csv, .csv.gz, .parquet or .pq")


def require(module, extra="cli"):
    """The module ``module`` (an optional dependency of the command), or an InputError naming the extra."""
    try:
        return _optional.require(module, extra=extra, purpose="fastinfluence score")
    except ImportError as exc:
        raise InputError(str(exc)) from exc


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
            if header is None or first is None:
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
    """Read a CSV or Parquet file into a DataFrame, its rows numbered from 0 (a Parquet file's stored
    index is dropped) and its column labels strings; every problem becomes an InputError."""
    pd = require("pandas")
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
            require("pyarrow")
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
    frame.index = pd.RangeIndex(len(frame))  # rows are numbered as in the file, from 0
    return frame


def target_column(frame, target, where, *, class_names=False):
    """The target column of a table (``select_columns`` checked that it exists): numbers or booleans,
    or, with ``class_names`` for a classifier, any class names. The values themselves (missing
    labels, labels outside the model's domain) are checked by the library at ``fit``."""
    pd = require("pandas")
    column = frame[target]
    if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column) or class_names):
        raise InputError(
            f"{where} has a non-numeric target column {target!r} ({column.dtype}); a "
            "regression needs numbers (a classifier, --model logistic or multinomial, takes class names)"
        )
    return column


def _with_suffix(path, ext, suffix):
    """``scores.csv`` -> ``scores.SUFFIX.csv``: a second output beside --out."""
    return path[: len(path) - len(ext)] + suffix + path[len(path) - len(ext) :]


def output_paths(args):
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
    if args.top_k is None and not args.self_influence:
        outputs.append((_with_suffix(args.out, ext, ".test_rows"), ext, fmt))
    if args.top_k is not None and args.self_influence:
        outputs.append((_with_suffix(args.out, ext, ".self_influence"), ext, fmt))
    if args.report is not None:
        outputs.append(_report_path(args.report))
    inputs = {os.path.realpath(p) for p in (args.train, args.test)}
    for path, _, _ in outputs:
        if os.path.realpath(path) in inputs:
            raise InputError(f"output {path} would overwrite an input file")
    return outputs


def _report_path(path):
    if not (path.lower().endswith(".json") and len(path) > len(".json")):
        raise InputError(f"--report {path}: the report is JSON; give a file name ending in .json")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"--report {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise InputError(f"--report {path} is a folder; give a file name")
    return path, ".json", "json"


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


def _write_one(obj, tmp, ext, fmt):
    if fmt == "json":
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(obj, handle, indent=2, allow_nan=False, default=str)
            handle.write("\n")
    elif fmt == "csv":
        # The partial name hides the extension: say which compression .csv.gz means.
        obj.to_csv(tmp, index=False, compression="gzip" if ext == ".csv.gz" else None)
    else:
        obj.to_parquet(tmp, engine="pyarrow", index=False)


def write_tables(tables):
    """Write [(DataFrame, path, extension, format)] atomically: all files appear, or none (the
    format ``json`` writes a dict, the report).

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
            _write_one(frame, tmp, ext, fmt)
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
