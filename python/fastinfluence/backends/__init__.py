"""Interchangeable implementations of the kernels.

``cpp`` (the compiled core, :mod:`fastinfluence._core`) and ``numpy`` (a
pure-NumPy reference written for clarity, mirroring the C++ function by function)
implement the same contract, :class:`fastinfluence.backends.contract.Backend`:
the same functions with the same parameters, the objective's data passed as a
:class:`~fastinfluence.backends.contract.Problem`, results with several parts as
named tuples. The algorithms over them (the Newton fit, CG over any operator,
the influence formulas) are written once, above the backends; only this module
and the tests import a backend.
"""

from __future__ import annotations

import warnings
from types import ModuleType

BACKENDS = ("auto", "cpp", "numpy")


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name``: "cpp", "numpy", or "auto" (every default), which is
    "cpp" when the compiled core loads and otherwise "numpy" (with a
    :class:`~fastinfluence.CompiledCoreWarning` once, when a core was built but failed to load)."""
    if name == "auto":
        return _auto()
    if name == "cpp":
        from . import cpp_backend

        return cpp_backend
    if name == "numpy":
        from . import numpy_backend

        return numpy_backend
    raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")


_auto_choice: ModuleType | None = None


def _auto() -> ModuleType:
    global _auto_choice  # noqa: PLW0603 - decided once per process
    if _auto_choice is None:
        try:
            from . import cpp_backend

            _auto_choice = cpp_backend
        except ImportError as exc:
            from .._native import built
            from ..exceptions import CompiledCoreWarning
            from . import numpy_backend

            if built()[0] is not False:  # a build without a compiler already said so at import
                warnings.warn(
                    f"the compiled core did not load ({exc}); using the NumPy backend",
                    CompiledCoreWarning,
                    stacklevel=3,
                )
            _auto_choice = numpy_backend
    return _auto_choice


def resolved_name(name: str) -> str:
    """The backend ``name`` runs as: "cpp" or "numpy" ("auto" resolved)."""
    return "cpp" if get_backend(name).__name__.endswith("cpp_backend") else "numpy"
