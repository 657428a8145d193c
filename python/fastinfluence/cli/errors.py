"""How a run of the command line ends: exit statuses, one-line errors and warnings, signals, and the
library's errors about the user's data worded for the command line."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import warnings

from ..exceptions import InvalidArgumentError

__all__ = [
    "PROG",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "InputError",
    "InputWarning",
    "Terminated",
    "RaiseOnSigterm",
    "error_line",
    "warnings_to_stderr",
    "library_errors",
]

PROG = "fastinfluence"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM


class InputError(Exception):
    """Bad input or usage: reported in one line, exit status 2."""


class InputWarning(UserWarning):
    """Something in the input files that the run works around, and says how (one line on stderr)."""


def error_line(text):
    first = " ".join(str(text).split())  # one line, whatever the message held
    print(f"{PROG}: error: {first}", file=sys.stderr)


@contextlib.contextmanager
def warnings_to_stderr():
    """Print each warning as one line on stderr (not as file:line source excerpts)."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"{PROG}: warning: {category.__name__}: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


class Terminated(BaseException):
    """Raised by the SIGTERM handler; a BaseException, like KeyboardInterrupt, so cleanup runs."""


class RaiseOnSigterm:
    """While active, SIGTERM raises Terminated, as SIGINT raises KeyboardInterrupt.

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
        raise Terminated

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


@contextlib.contextmanager
def library_errors(places, fallback):
    """The library's errors about the user's data, as InputError worded for the command line.

    ``places`` maps the argument an :class:`~fastinfluence.InvalidArgumentError`
    names (``"X"``, ``"y_test"``, ...) to where it came from on the command line
    (``"--train file train.csv"``): the error line is that place followed by the
    error's ``detail``. ``fallback`` is the place of any other ``ValueError``: the
    errors that carry no argument, such as a label outside the model's classes.
    An argument not in ``places`` is a bug of the command line, not bad input:
    its error goes on (exit status 1).
    """
    try:
        yield
    except InvalidArgumentError as exc:
        if exc.argument not in places:
            raise
        raise InputError(f"{places[exc.argument]} {exc.detail}") from None
    except ValueError as exc:
        raise InputError(f"{fallback}: {exc}") from None
