"""An installation built without a C++ compiler (CMakeLists.txt writes ``COMPILED = False`` to
``fastinfluence._build_config``): it says so once at import, ``backend="auto"`` runs the NumPy
backend with no further warning, ``backend="cpp"`` says why it cannot, and every result is the NumPy
backend's. Each test runs a fresh Python in which ``_build_config`` is such a build's (the compiled
modules on disk are then never loaded); ``.ci/run`` also builds a real wheel with the compiler made
unavailable and runs these tests, and a smoke subset of the suite, against it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

import fastinfluence as fi

# A stand-in for the _build_config module of a build without a compiler, put in place before the
# package is imported.
PURE_BUILD = textwrap.dedent(
    """
    import sys, types, warnings
    config = types.ModuleType("fastinfluence._build_config")
    config.COMPILED, config.VARIANTS = False, ()
    sys.modules.setdefault("fastinfluence._build_config", config)
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as at_import:
        warnings.simplefilter("always")
        import fastinfluence as fi
    import numpy as np
    """
)


def _run(body: str) -> dict:
    code = PURE_BUILD + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_says_so_once_at_import_and_auto_runs_numpy_without_another_warning():
    got = _run(
        """
        import json
        with warnings.catch_warnings(record=True) as later:
            warnings.simplefilter("always")
            model = fi.LogisticRegression(l2=0.1).fit([[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1])
            fi.Influence(model, [[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1]).self_influence()
        try:
            fi.LogisticRegression(backend="cpp").fit([[0.0], [1.0]], [0, 1])
            cpp = "no error"
        except ImportError as exc:
            cpp = str(exc)
        info = fi.build_info()
        print(json.dumps({
            "at_import": [(w.category.__name__, str(w.message)) for w in at_import],
            "later": [str(w.message) for w in later], "cpp": cpp,
            "compiled_core": info["compiled_core"], "backend_auto": info["backend_auto"],
            "variants_built": info["variants_built"],
        }))
        """
    )
    assert len(got["at_import"]) == 1, got["at_import"]
    category, message = got["at_import"][0]
    assert category == "CompiledCoreWarning"
    assert "installed without its compiled core" in message
    assert "install a C++17 compiler" in message
    assert got["later"] == []
    assert "built without its compiled core (no working C++ compiler was found)" in got["cpp"]
    assert got["compiled_core"].startswith("unavailable (fastinfluence was built without its compiled core")
    assert got["backend_auto"] == "numpy"
    assert got["variants_built"] == "none"


def test_every_result_is_the_numpy_backends():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 5)) * [1, 10, 100, 0.1, 3]
    y = (X @ [1, 0.1, 0.01, 5, 0.2] + rng.standard_normal(120) > 0).astype(float)
    got = _run(
        f"""
        import json
        X = np.array({X.tolist()}); y = np.array({y.tolist()})
        model = fi.LogisticRegression(l2=1e-2).fit(X, y)
        inf = fi.Influence(model, X, y)
        from fastinfluence.backends import resolved_name
        core = sorted(name for name in sys.modules if name.startswith("fastinfluence._core"))
        print(json.dumps({{"theta": model.theta_.tolist(), "loss": inf.loss(X[:3], y[:3]).tolist(),
                           "loo": inf.loo(X[:3], y[:3], method="newton").tolist(),
                           "auto": resolved_name("auto"), "core_modules": core}}))
        """
    )
    assert got["auto"] == "numpy"
    assert got["core_modules"] == []  # no compiled module was even imported
    model = fi.LogisticRegression(l2=1e-2, backend="numpy").fit(X, y)
    inf = fi.Influence(model, X, y)
    np.testing.assert_allclose(got["theta"], model.theta_, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got["loss"], inf.loss(X[:3], y[:3]), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(got["loo"], inf.loo(X[:3], y[:3], method="newton"), rtol=1e-10, atol=1e-15)
