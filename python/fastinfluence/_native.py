"""Which compiled core this process runs: the SIMD variant chosen for this CPU, loaded once.

The build (CMakeLists.txt, cmake/Variants.cmake) installs one module per variant,
``fastinfluence._core_<variant>``, and records which in ``fastinfluence._build_config``:

============  =====================================================================
``baseline``  the compiler's default for the architecture (x86-64: SSE2): runs anywhere
``avx2``      AVX2 + FMA: Eigen's 256-bit packets and fused multiply-adds
``avx512``    AVX-512 F/CD/BW/DQ/VL: Eigen's 512-bit packets
``native``    ``-march=native`` (a local ``FASTINFLUENCE_NATIVE=ON`` build): this machine only
============  =====================================================================

A wheel holds every variant of its architecture; a source install builds the best one for the
building machine. At the first use of the compiled core, :func:`load` imports the best variant that
was built and that this CPU (and its operating system) runs, as ``fastinfluence._cpu_features``
reports it, or the one the environment variable ``FASTINFLUENCE_SIMD`` names, and
``fastinfluence._core`` becomes that module. A variant the CPU cannot run is never loaded (it would
stop the process with an illegal instruction), even when asked for: :func:`load` raises instead.
Results agree across variants to rounding (fused multiply-adds and wider reductions change the
order of the additions), and within a variant they are bitwise the same for any thread count.

Only one variant is loaded per process: their classes share names (pybind11 registers each C++
type once per process). To compare variants, run each in a process of its own (tests/test_variants.py).

A build without a C++ compiler records ``COMPILED = False``: :func:`warn_if_not_compiled` says so
once at import, and ``backend="auto"`` (every default) runs the NumPy backend.
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from types import ModuleType

from .exceptions import CompiledCoreWarning

#: The environment variable that forces a variant (one of :data:`VARIANTS`).
ENV_VARIANT = "FASTINFLUENCE_SIMD"
#: Every variant, the best first: the order in which :func:`load` tries them.
VARIANTS = ("native", "avx512", "avx2", "baseline")
#: The CPU features (``fastinfluence._cpu_features`` names) each variant needs.
#: (``native`` needs at least those of the variant the build recorded as ``NATIVE_LIKE``.)
REQUIRED_FEATURES: dict[str, tuple[str, ...]] = {
    "native": (),
    "avx512": ("sse4.2", "popcnt", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"),
    "avx2": ("sse4.2", "popcnt", "avx2", "fma"),  # -mavx2 implies SSE4.2 and POPCNT
    "baseline": (),
}


@dataclass(frozen=True)
class Selection:
    """The variant :func:`load` chose, and why (``show_config()`` prints it)."""

    variant: str
    reason: str
    built: tuple[str, ...]
    cpu_features: tuple[str, ...] | None


def built() -> tuple[bool | None, tuple[str, ...]]:
    """``(compiled, variants)`` as the build recorded them; ``(None, ())`` in a source tree with no build."""
    try:
        from . import _build_config  # type: ignore[attr-defined]  # written by the build
    except ImportError:
        return None, ()
    return bool(_build_config.COMPILED), tuple(_build_config.VARIANTS)


def cpu_features() -> frozenset[str] | None:
    """The SIMD features this CPU and its OS support, or None where the build has no detector
    (architectures other than x86, compilers other than GCC and Clang: only ``baseline`` runs there)."""
    try:
        from . import _cpu_features  # type: ignore[attr-defined]
    except ImportError:
        return None
    return frozenset(name for name, present in _cpu_features.supported().items() if present)


def _needed(variant: str) -> tuple[str, ...]:
    if variant == "native":  # compiled for the building CPU: at least what its best variant needs
        try:
            from . import _build_config  # type: ignore[attr-defined]  # written by the build
        except ImportError:
            return ()
        return REQUIRED_FEATURES.get(getattr(_build_config, "NATIVE_LIKE", "") or "baseline", ())
    return REQUIRED_FEATURES[variant]


def runnable(variant: str, features: frozenset[str] | None) -> bool:
    """Whether this CPU runs ``variant`` (``features``: :func:`cpu_features`)."""
    needed = _needed(variant)
    if not needed:
        return True
    return features is not None and all(f in features for f in needed)


def select(
    built_variants: tuple[str, ...], features: frozenset[str] | None, forced: str | None
) -> tuple[str, str]:
    """``(variant, reason)``: the forced variant, or the best built one this CPU runs.

    Raises ``ImportError`` for a forced name that is no variant, when the forced variant was not
    built or cannot run here, and when no built variant can (``backend="auto"`` then runs NumPy)."""
    have = ", ".join(built_variants) or "none"
    if forced is not None:
        if forced not in VARIANTS:
            raise ImportError(
                f"{ENV_VARIANT}={forced!r} is not a variant of the core; choose one of {VARIANTS}"
            )
        if forced not in built_variants:
            raise ImportError(
                f"{ENV_VARIANT}={forced}: that variant of the core was not built (built: {have})"
            )
        if not runnable(forced, features):
            raise ImportError(
                f"{ENV_VARIANT}={forced}: this CPU lacks {_missing(forced, features)}, so it cannot run it"
            )
        return forced, f"forced by {ENV_VARIANT}={forced}"
    for variant in VARIANTS:
        if variant in built_variants and runnable(variant, features):
            return variant, f"the best of the built variants ({have}) that this CPU runs"
    lacking = "; ".join(f"{v} needs {_missing(v, features)}" for v in built_variants)
    raise ImportError(
        f"this CPU runs none of the compiled core's variants ({lacking}): reinstall from source, "
        "which builds the variant for this machine (pip install --no-cache-dir --no-binary fastinfluence "
        "fastinfluence, or pip install . in a checkout), or install a wheel built for every CPU"
    )


def _missing(variant: str, features: frozenset[str] | None) -> str:
    if features is None:
        return "features that cannot be detected on this platform"
    return ", ".join(f for f in _needed(variant) if f not in features)


_loaded: tuple[ModuleType, Selection] | None = None


def load() -> ModuleType:
    """The compiled core's module for this process (imported once), or ``ImportError`` saying why not."""
    global _loaded  # noqa: PLW0603 - imported once per process, on first use
    if _loaded is not None:
        return _loaded[0]
    compiled, variants = built()
    if compiled is False:
        raise ImportError(
            f"fastinfluence was built without its compiled core ({pure_reason()}); "
            'backend="numpy" (or "auto") computes every result'
        )
    features = cpu_features()
    forced = os.environ.get(ENV_VARIANT, "").strip().lower() or None
    if compiled is None:  # a source tree on sys.path: whatever variants lie beside this file
        variants = tuple(v for v in VARIANTS if _present(v))
        if not variants:
            raise ImportError("no compiled core in this source tree: build it with `pip install .`")
    variant, reason = select(variants, features, forced)
    try:
        module = importlib.import_module(f"{__package__}._core_{variant}")
    except ImportError as exc:  # a library it links (libgomp, libstdc++) is missing or too old
        raise ImportError(f"fastinfluence._core_{variant} ({reason}) failed to import: {exc}") from exc
    _loaded = (
        module,
        Selection(variant, reason, variants, None if features is None else tuple(sorted(features))),
    )
    return module


def selection() -> Selection | None:
    """What :func:`load` chose, or None before the core was loaded (or when it could not be)."""
    return None if _loaded is None else _loaded[1]


def _present(variant: str) -> bool:
    from importlib.util import find_spec

    return find_spec(f"{__package__}._core_{variant}") is not None


def pure_reason() -> str:
    """Why the build made no compiled core, as it recorded it."""
    try:
        from . import _build_config  # type: ignore[attr-defined]  # written by the build
    except ImportError:
        return "no build"
    return getattr(_build_config, "PURE_REASON", "") or "no working C++ compiler was found"


def warn_if_not_compiled() -> None:
    """Say once, at import, that this installation has no compiled core, and why."""
    if built()[0] is False:
        warnings.warn(
            f"fastinfluence was installed without its compiled core ({pure_reason()} when it was "
            "built): every result comes from the NumPy backend, the same mathematics, slower. To "
            "build the core, install a C++17 compiler (g++ or clang++) and Python's headers, and "
            "reinstall fastinfluence.",
            CompiledCoreWarning,
            stacklevel=3,
        )
