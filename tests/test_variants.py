"""The SIMD variants of the compiled core (fastinfluence._native): which one a process loads, the
refusals, and that every variant this CPU runs computes the same results as the NumPy reference
and as each other, to rounding (each variant runs in a process of its own: only one can be loaded
per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
from conftest import assert_close, assert_same_ranking

import fastinfluence as fi
from fastinfluence import _native

BUILT = _native.built()[1]
FEATURES = _native.cpu_features()
RUNNABLE = [v for v in BUILT if _native.runnable(v, FEATURES)]
needs_core = pytest.mark.skipif(not RUNNABLE, reason="no compiled core that this CPU runs is installed")

# Fits and influence on dense float64/float32 and CSR data, binary and multinomial: every result
# as lists, printed as JSON by a process that loads one variant.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, scipy.sparse as sp
    import fastinfluence as fi
    from fastinfluence import _core
    rng = np.random.default_rng(7)
    X = rng.standard_normal((400, 12)) * rng.uniform(0.1, 30, 12)
    y = (X @ rng.standard_normal(12) / 10 + rng.standard_normal(400) > 0).astype(float)
    y3 = np.digitize(X[:, 0] + rng.standard_normal(400) * 5, [-5, 5])
    out = {"variant": _core.build_info()["variant"]}
    backend = sys.argv[1]
    sparse = sp.csr_matrix(np.where(np.abs(X) > 5, X, 0))
    for name, data in [("dense", X), ("float32", X.astype(np.float32)), ("csr", sparse)]:
        model = fi.LogisticRegression(l2=1e-2, backend=backend).fit(data, y)
        inf = fi.Influence(model, data, y)
        top = inf.top_k(data[:5], y[:5], k=8)
        out[name] = {"theta": model.theta_.tolist(), "loss": inf.loss(data[:5], y[:5]).tolist(),
                     "self": inf.self_influence().tolist(),
                     "loo": inf.loo(data[:5], y[:5], method="newton").tolist(),
                     "helpful": top.helpful_indices.tolist(), "harmful": top.harmful_indices.tolist()}
    multi = fi.MultinomialLogisticRegression(l2=1e-2, backend=backend).fit(X, y3)
    inf = fi.Influence(multi, X, y3)
    out["multinomial"] = {"theta": multi.theta_.tolist(), "loss": inf.loss(X[:4], y3[:4]).tolist(),
                          "self": inf.self_influence().tolist()}
    print(json.dumps(out))
    """
)


def _run(backend: str, variant: str | None) -> dict:
    env = dict(os.environ)
    env.pop(_native.ENV_VARIANT, None)
    if variant is not None:
        env[_native.ENV_VARIANT] = variant
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, backend],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference():
    return _run("numpy", RUNNABLE[0] if RUNNABLE else None)


@needs_core
@pytest.mark.parametrize("variant", RUNNABLE)
def test_every_variant_this_cpu_runs_agrees_with_the_numpy_reference(variant, reference):
    got = _run("cpp", variant)
    assert got["variant"] == variant
    for name in ("dense", "float32", "csr", "multinomial"):
        rtol = 1e-4 if name == "float32" else 1e-8  # float32 X: products accumulate in float32 blocks
        for key, value in reference[name].items():
            if key in ("helpful", "harmful"):
                scores = np.asarray(reference[name]["loss"])
                assert_same_ranking(got[name][key], value, scores, rtol, err_msg=f"{variant} {name} {key}")
            else:
                assert_close(
                    np.asarray(got[name][key]), np.asarray(value), rtol, err_msg=f"{variant} {name} {key}"
                )


def test_the_default_is_the_best_built_variant_this_cpu_runs():
    if not RUNNABLE:
        pytest.skip("no compiled core that this CPU runs is installed")
    best = next(v for v in _native.VARIANTS if v in RUNNABLE)
    env = {k: v for k, v in os.environ.items() if k != _native.ENV_VARIANT}
    code = (
        "from fastinfluence import _core, _native; "
        "print(_core.build_info()['variant'], _native.selection().reason)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == best
    assert "this CPU runs" in done.stdout


def test_a_variant_is_chosen_by_what_the_cpu_supports():
    avx2 = frozenset(_native.REQUIRED_FEATURES["avx2"])
    avx512 = frozenset(_native.REQUIRED_FEATURES["avx512"])
    every = ("avx512", "avx2", "baseline")
    assert _native.select(every, avx512, None)[0] == "avx512"
    assert _native.select(every, avx2, None)[0] == "avx2"
    assert _native.select(every, avx2 - {"fma"}, None)[0] == "baseline"  # AVX2 without FMA
    assert _native.select(every, None, None)[0] == "baseline"  # nothing detectable: the portable one
    assert _native.select(("avx2",), avx512, None)[0] == "avx2"
    assert _native.select(every, avx512, "avx2") == ("avx2", f"forced by {_native.ENV_VARIANT}=avx2")


def test_the_refusals_name_the_variable_and_the_reason():
    avx2 = frozenset(_native.REQUIRED_FEATURES["avx2"])
    with pytest.raises(ImportError, match="FASTINFLUENCE_SIMD='sse9' is not a variant"):
        _native.select(("avx2",), avx2, "sse9")
    with pytest.raises(
        ImportError,
        match=r"FASTINFLUENCE_SIMD=avx512: that variant of the core was not built \(built: avx2\)",
    ):
        _native.select(("avx2",), avx2, "avx512")
    # never loaded where it would stop the process with an illegal instruction
    with pytest.raises(ImportError, match="this CPU lacks avx512f, avx512cd, avx512bw, avx512dq, avx512vl"):
        _native.select(("avx512", "baseline"), avx2, "avx512")
    with pytest.raises(ImportError, match="runs none of the compiled core's variants"):
        _native.select(("avx512",), avx2, None)


@needs_core
def test_a_forced_variant_that_was_not_built_falls_back_to_numpy_under_auto_and_fails_under_cpp():
    missing = next((v for v in _native.VARIANTS if v not in BUILT), None)  # "native" unless built locally
    if missing is None:
        pytest.skip("every variant is built here")
    env = dict(os.environ, **{_native.ENV_VARIANT: missing})
    code = textwrap.dedent(
        """
        import warnings
        import fastinfluence as fi
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = fi.LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.5])
        print(fi.build_info()["backend_auto"], [str(w.message) for w in caught])
        try:
            fi.LinearRegression(backend="cpp").fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.5])
        except ImportError as exc:
            print("cpp:", exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.startswith("numpy")
    assert "the compiled core did not load" in done.stdout
    assert f"cpp: {_native.ENV_VARIANT}={missing}: that variant of the core was not built" in done.stdout


def test_show_config_reports_the_variants():
    info = fi.build_info()
    assert info["variants_built"] == (", ".join(BUILT) or "none")
    if RUNNABLE:
        assert info["variant"].split()[0] in RUNNABLE
        assert info["backend_auto"] == "cpp"


def test_a_native_build_is_refused_on_a_cpu_without_what_it_was_built_for(monkeypatch):
    import fastinfluence

    config = types.ModuleType("fastinfluence._build_config")
    config.COMPILED, config.VARIANTS, config.NATIVE_LIKE = True, ("native",), "avx512"
    monkeypatch.setitem(sys.modules, "fastinfluence._build_config", config)
    monkeypatch.setattr(fastinfluence, "_build_config", config, raising=False)
    avx2 = frozenset(_native.REQUIRED_FEATURES["avx2"])
    with pytest.raises(ImportError, match="native needs avx512f"):
        _native.select(("native",), avx2, None)
    with pytest.raises(ImportError, match="FASTINFLUENCE_SIMD=native: this CPU lacks avx512f"):
        _native.select(("native",), avx2, "native")
    assert _native.select(("native",), frozenset(_native.REQUIRED_FEATURES["avx512"]), None)[0] == "native"


@pytest.mark.requires_core
def test_an_invalid_variable_falls_back_under_auto_and_show_config_still_reports():
    env = dict(os.environ, **{_native.ENV_VARIANT: "sse9"})
    code = textwrap.dedent(
        """
        import warnings
        import fastinfluence as fi
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fi.LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.5])
        info = fi.build_info()
        print(info["backend_auto"], "|", info["compiled_core"], "|", [str(w.message) for w in caught])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.startswith("numpy | unavailable (FASTINFLUENCE_SIMD='sse9' is not a variant")
    assert "the compiled core did not load" in done.stdout
