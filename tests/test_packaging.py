"""What the wheel promises about itself: the version, written once as ``__version__`` in
``fastinfluence/__init__.py`` and read from there into the metadata (scikit-build-core's regex
provider, pyproject.toml), and the ``py.typed`` marker of a typed package (PEP 561)."""

from __future__ import annotations

import re
from importlib import metadata, resources
from pathlib import Path

import pytest

import fastinfluence as fi

ROOT = Path(__file__).resolve().parents[1]


def test_installed_metadata_version_is_dunder_version():
    assert metadata.version("fastinfluence") == fi.__version__


def test_pyproject_reads_the_version_from_init():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("pyproject.toml is not next to the tests (installed elsewhere)")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in config["project"], "the version is written once, in __init__.py"
    assert "version" in config["project"]["dynamic"]
    provider = config["tool"]["scikit-build"]["metadata"]["version"]
    assert provider["provider"] == "scikit_build_core.metadata.regex"
    source = (ROOT / provider["input"]).read_text()
    # scikit-build-core's default pattern (provider["regex"] overrides it; none is set)
    assert "regex" not in provider
    found = re.search(
        r"""(?i)^(__version__|VERSION)(?: ?\: ?str)? *= *(['"])v?(?P<value>.+?)\2""", source, re.MULTILINE
    )
    assert found is not None
    assert found.group("value") == fi.__version__


def test_the_package_says_it_is_typed():
    assert resources.files("fastinfluence").joinpath("py.typed").is_file()
