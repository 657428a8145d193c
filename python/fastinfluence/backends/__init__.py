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

from types import ModuleType

BACKENDS = ("cpp", "numpy")


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name`` ("cpp" or "numpy")."""
    if name == "cpp":
        from . import cpp_backend

        return cpp_backend
    if name == "numpy":
        from . import numpy_backend

        return numpy_backend
    raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
