"""Optional dependencies, imported through one helper: the error says which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """``import module`` (a dotted name), or an ImportError saying that ``purpose`` needs it and that
    ``pip install "fastinfluence[extra]"`` installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", maxsplit=1)[0]
        raise ImportError(
            f'{purpose} needs {top}: pip install "fastinfluence[{extra}]" (or pip install {top})'
        ) from exc


def available(module: str) -> bool:
    """Whether ``module`` imports (for optional steps that are skipped without it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
