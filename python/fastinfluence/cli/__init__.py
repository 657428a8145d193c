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

Modules: :mod:`~fastinfluence.cli.parser` (the options and help texts),
:mod:`~fastinfluence.cli.io` (reading tables, output paths, partial files, writing),
:mod:`~fastinfluence.cli.columns` (which columns are features, and how each is encoded),
:mod:`~fastinfluence.cli.tables` (the tables written: scores beside row ids, labels, predictions),
:mod:`~fastinfluence.cli.commands` (what ``demo`` and ``score`` do) and
:mod:`~fastinfluence.cli.errors` (exit statuses, one-line errors, signals); this module
runs a command and turns how it ended into the exit status.
"""

from __future__ import annotations

import sys
import traceback

from .commands import run_demo, run_score
from .errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    InputError,
    RaiseOnSigterm,
    Terminated,
    error_line,
    warnings_to_stderr,
)
from .io import partial_output_path, remove_stale_partial_outputs
from .parser import build_parser
from .tables import self_influence_table, top_k_table

__all__ = [
    "main",
    "build_parser",
    "InputError",
    "top_k_table",
    "self_influence_table",
    "partial_output_path",
    "remove_stale_partial_outputs",
]

#: What runs each command: a function of the parsed arguments that returns the exit status.
COMMANDS = {"demo": run_demo, "score": run_score}


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except InputError as exc:
        error_line(exc)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version exit through argparse
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    sigterm = RaiseOnSigterm()
    try:
        with warnings_to_stderr(), sigterm:
            return COMMANDS[args.command](args)
    except InputError as exc:
        error_line(exc)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated):
        if sigterm.received:
            error_line("terminated (SIGTERM)")
            return EXIT_TERMINATED
        error_line("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (rerun with --verbose for the traceback)"
        error_line(f"unexpected failure: {type(exc).__name__}: {exc}{hint}")
        return EXIT_FAILURE
