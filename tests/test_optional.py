"""Optional dependencies go through one helper whose error says how to install them, in words that
work from a source checkout as well as from a package index (fastinfluence may be on none)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from fastinfluence import _optional

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "fastinfluence"


def test_a_missing_module_names_its_package_and_the_extra_both_ways(monkeypatch):
    monkeypatch.setattr(_optional, "_declared_requirement", lambda distribution, extra: None)
    with pytest.raises(ImportError) as caught:
        _optional.require("no_such_module_xyz.sub", extra="plot", purpose="the thing")
    assert str(caught.value) == (
        "the thing needs no_such_module_xyz, which is not installed: pip install "
        '"no_such_module_xyz" (or all of the plot extra: pip install ".[plot]" in a fastinfluence '
        'source checkout, pip install "fastinfluence[plot]" from a package index)'
    )
    assert not _optional.available("no_such_module_xyz")


def test_the_hint_names_the_distribution_not_the_import_name(monkeypatch):
    """``pip install sklearn`` installs a deprecated placeholder that refuses to install."""
    monkeypatch.setattr(_optional, "_declared_requirement", lambda distribution, extra: None)
    for name in ("sklearn", "sklearn.datasets"):  # importing them now raises ImportError
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(
        ImportError, match=r'needs scikit-learn, which is not installed: pip install "scikit-learn"'
    ):
        _optional.require("sklearn.datasets", extra="demo", purpose="the demo")
    assert _optional.distribution_name("sklearn.datasets") == "scikit-learn"
    assert _optional.distribution_name("dask.distributed") == "distributed"
    assert _optional.distribution_name("dask.array") == "dask"


def test_the_hint_carries_the_floor_the_installed_extra_declares(monkeypatch):
    class Installed:
        requires = (
            'pandas>=2.0; extra == "cli"',
            'pandas>=2.0; extra == "test"',
            'tqdm>=4.60; extra == "cli"',
        )

        @staticmethod
        def locate_file(name):
            return Path(_optional.__file__).resolve().parent.parent / name  # the imported copy

    monkeypatch.setattr(_optional.importlib.metadata, "distribution", lambda name: Installed)
    assert _optional._declared_requirement("pandas", "cli") == "pandas>=2.0"
    assert _optional._declared_requirement("pandas", "plot") is None
    assert _optional.install_hint("pandas", "cli").startswith(
        'pip install "pandas>=2.0" (or all of the cli extra'
    )

    class Elsewhere(Installed):  # metadata of another copy than the one imported: not ours to quote
        @staticmethod
        def locate_file(name):
            return Path("/nowhere") / name

    monkeypatch.setattr(_optional.importlib.metadata, "distribution", lambda name: Elsewhere)
    assert _optional._declared_requirement("pandas", "cli") is None


def test_a_module_that_is_installed_but_fails_to_import_says_so(monkeypatch, tmp_path):
    (tmp_path / "broken_module_xyz").mkdir()
    (tmp_path / "broken_module_xyz" / "__init__.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as caught:
        _optional.require("broken_module_xyz", extra="cli", purpose="the thing")
    message = str(caught.value)
    assert message.startswith("the thing needs broken_module_xyz, which is installed but does not import")
    assert "No module named 'no_such_dependency_xyz'" in message


def test_an_installed_module_is_returned():
    assert _optional.require("numpy.linalg", extra="plot", purpose="x").__name__ == "numpy.linalg"
    assert _optional.available("numpy")


def test_cli_reports_a_missing_extra_as_an_input_error(monkeypatch):
    from fastinfluence.cli import io
    from fastinfluence.cli.errors import InputError

    monkeypatch.setattr(_optional, "_declared_requirement", lambda distribution, extra: None)
    with pytest.raises(
        InputError, match=r"fastinfluence score needs no_such_module_xyz, which is not installed"
    ):
        io.require("no_such_module_xyz")
    with pytest.raises(InputError, match=r'pip install "\.\[cli\]" in a fastinfluence source checkout'):
        io.require("no_such_module_xyz")


def _extras():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    requirements = pytest.importorskip("packaging.requirements")
    utils = pytest.importorskip("packaging.utils")
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("pyproject.toml is not next to the tests (installed elsewhere)")
    project = tomllib.loads(pyproject.read_text())["project"]
    return {
        extra: {utils.canonicalize_name(requirements.Requirement(text).name) for text in texts}
        for extra, texts in project["optional-dependencies"].items()
    }


def _require_calls():
    """(file, module, extra) of every ``require(...)`` call in the package: ``_optional.require``
    takes ``extra=``; the command line's ``cli.io.require`` defaults to the cli extra."""
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" and node.args):
                continue
            module = node.args[0]
            if not isinstance(module, ast.Constant):  # cli.io.require passes its own argument on
                continue
            extras = [
                k.value.value for k in node.keywords if k.arg == "extra" and isinstance(k.value, ast.Constant)
            ]
            default = "cli" if path.parent.name == "cli" else None
            calls.append((path.relative_to(ROOT).as_posix(), module.value, extras[0] if extras else default))
    return calls


def test_every_optional_import_names_an_extra_that_installs_it():
    """Each hint's extra exists in pyproject.toml and installs the package the hint is about."""
    utils = pytest.importorskip("packaging.utils")
    extras = _extras()
    calls = _require_calls()
    assert {module for _, module, _ in calls} >= {
        "pandas",
        "pyarrow",
        "tqdm",
        "matplotlib.pyplot",
        "dask.array",
    }
    for where, module, extra in calls:
        assert extra in extras, f"{where}: require({module!r}) names extra {extra!r}, not in pyproject.toml"
        distribution = utils.canonicalize_name(_optional.distribution_name(module))
        assert distribution in extras[extra], f"{where}: the {extra} extra does not install {distribution}"
