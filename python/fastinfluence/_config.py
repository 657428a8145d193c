"""Build and runtime information: fastinfluence.show_config()."""

from __future__ import annotations

import sys

from . import _native


def build_info() -> dict:
    """Versions, OpenMP and SIMD settings of the compiled core, as a dict.

    ``variants_built`` are the SIMD variants this installation holds, ``cpu_features`` what this CPU
    runs, ``variant`` the one this process loaded and why (:mod:`fastinfluence._native`; the
    environment variable ``FASTINFLUENCE_SIMD`` forces one), ``backend_auto`` what
    ``backend="auto"`` runs."""
    import numpy as np

    from . import __version__

    info = {"fastinfluence": __version__, "python": sys.version.split()[0], "numpy": np.__version__}
    compiled, variants = _native.built()
    info["variants_built"] = ", ".join(variants) or ("none" if compiled is False else "unknown")
    features = _native.cpu_features()
    info["cpu_features"] = "undetected" if features is None else (", ".join(sorted(features)) or "none")
    try:
        from . import _core  # typed by _core.pyi
    except ImportError as exc:  # the NumPy backend still works without the compiled core
        info["compiled_core"] = f"unavailable ({exc})"
        info["backend_auto"] = "numpy"
        return info
    core = _core.build_info()
    chosen = _native.selection()
    info["compiled_core"] = "available"
    info["backend_auto"] = "cpp"
    info.update(
        variant=core["variant"] if chosen is None else f"{chosen.variant} ({chosen.reason})",
        eigen=core["eigen_version"],
        openmp="on" if core["openmp"] else "off",
        threads=core["max_threads"],
        simd=core["simd"],
        instruction_sets=", ".join(core["instruction_sets"]) or "baseline",
        build_type=core["build_type"],
    )
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
            for p in threadpool_info()
            if p.get("user_api") == "blas"
        ]
    except ImportError:
        pass
    return info


def show_config(file=None) -> dict:
    """Print the build information (Eigen version, OpenMP and threads, SIMD, build type) and return it."""
    info = build_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:>{width}}: {value}", file=file if file is not None else sys.stdout)
    return info
