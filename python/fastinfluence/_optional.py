"""Optional dependencies, imported through one helper whose error says how to install them.

fastinfluence is installed from a source checkout (``pip install ".[cli]"``) or from a package
index (``pip install "fastinfluence[cli]"``), and an index may not have it: the hint names the
missing package itself first (``pip install "pandas>=2.0"``, which works either way), then the
extra in both spellings.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from pathlib import Path
from types import ModuleType

__all__ = ["require", "available", "distribution_name", "install_hint", "DISTRIBUTIONS"]

#: Modules whose distribution (the name pip installs) is not their import name.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "dask.distributed": "distributed"}


def distribution_name(module: str) -> str:
    """The distribution that installs ``module`` (a dotted name): ``sklearn.datasets`` -> scikit-learn."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in DISTRIBUTIONS:
            return DISTRIBUTIONS[name]
    return parts[0]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_requirement(distribution: str, extra: str) -> str | None:
    """The requirement the ``extra`` of this installed fastinfluence declares for ``distribution``
    (``"pandas>=2.0"``), or None: when fastinfluence runs from a source tree without its metadata,
    or when the metadata found belongs to another copy of it than the one imported."""
    try:
        installed = importlib.metadata.distribution("fastinfluence")
        here = Path(__file__).resolve().parent
        if Path(str(installed.locate_file("fastinfluence"))).resolve() != here:
            return None
        requirements = installed.requires or []
    except (importlib.metadata.PackageNotFoundError, OSError, ValueError):
        return None
    for text in requirements:
        requirement, _, marker = text.partition(";")
        if not re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", marker):
            continue
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if name is not None and _canonical(name.group(1)) == _canonical(distribution):
            return requirement.strip()
    return None


def install_hint(module: str, extra: str) -> str:
    """How to install what ``module`` needs: ``pip install "pandas>=2.0" (or the cli extra: ...)``."""
    distribution = distribution_name(module)
    requirement = _declared_requirement(distribution, extra) or distribution
    return (
        f'pip install "{requirement}" (or all of the {extra} extra: pip install ".[{extra}]" in a '
        f'fastinfluence source checkout, pip install "fastinfluence[{extra}]" from a package index)'
    )


def _installed(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError, AttributeError):  # AttributeError: sys.modules[top] is None
        return False


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """``import module`` (a dotted name), or an ImportError saying that ``purpose`` needs it and
    how to install it (:func:`install_hint`), or, when it is installed but does not import, why."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", maxsplit=1)[0]
        distribution = distribution_name(module)
        if _installed(top):
            raise ImportError(
                f"{purpose} needs {distribution}, which is installed but does not import "
                f"({type(exc).__name__}: {exc}); reinstall it: {install_hint(module, extra)}"
            ) from exc
        raise ImportError(
            f"{purpose} needs {distribution}, which is not installed: {install_hint(module, extra)}"
        ) from exc


def available(module: str) -> bool:
    """Whether ``module`` imports (for optional steps that are skipped without it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
