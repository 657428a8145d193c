"""The documentation site's sources cover the public API and the examples (no Sphinx needed).

scripts/build_docs.sh builds the site; these checks are what a new public name or example must
come with: an entry in the API reference (docs/api/*.rst) and a place in the gallery (conf.py).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastinfluence

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: The modules whose ``__all__`` is public API, each documented in docs/api/.
PUBLIC_MODULES = [
    "fastinfluence",
    "fastinfluence.models",
    "fastinfluence.influence",
    "fastinfluence.diagnostics",
    "fastinfluence.targets",
    "fastinfluence.sklearn",
    "fastinfluence.dask",
    "fastinfluence.plot",
    "fastinfluence.kernels",
    "fastinfluence.losses",
]

_DIRECTIVE = re.compile(
    r"^\s*\.\. (currentmodule|automodule|autoclass|autofunction|autoexception|autodata)::\s*(\S+)"
)
_AUTOSUMMARY = re.compile(r"^\s*\.\. autosummary::")


@pytest.fixture(scope="module")
def api_sources():
    if not (DOCS / "api").is_dir():
        pytest.skip("docs/ is not next to the tests (installed elsewhere)")
    return sorted((DOCS / "api").glob("*.rst"))


def _documented_names(paths) -> set[str]:
    """Every fully qualified name the API reference's sources document (autosummary entries and
    auto* directives, resolved against the ``currentmodule`` in force)."""
    names = set()
    for path in paths:
        module = None
        in_summary = False
        for line in path.read_text().splitlines():
            directive = _DIRECTIVE.match(line)
            if directive:
                kind, target = directive.groups()
                in_summary = False
                if kind == "currentmodule":
                    module = target
                elif kind == "automodule" or target.startswith("fastinfluence"):
                    names.add(target)
                else:
                    names.add(f"{module}.{target}")
                continue
            if _AUTOSUMMARY.match(line):
                in_summary = True
                continue
            if in_summary:
                entry = line.strip()
                if not line.startswith("   ") and entry:
                    in_summary = False  # the text after the table
                elif entry and not entry.startswith(":"):
                    entry = entry.lstrip("~")
                    names.add(entry if entry.startswith("fastinfluence") else f"{module}.{entry}")
    return names


def _resolve(name: str):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(name)


def test_every_public_name_is_in_the_api_reference(api_sources):
    pytest.importorskip("dask.array")  # fastinfluence.dask is documented too
    documented = _documented_names(api_sources)
    objects = {id(_resolve(name)) for name in documented}
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        missing += [
            f"{module_name}.{name}" for name in module.__all__ if id(getattr(module, name)) not in objects
        ]
    assert not missing, (
        f"public names without an entry in docs/api/*.rst (add each to an autosummary list): {missing}"
    )


def test_the_reference_names_only_what_exists(api_sources):
    # a name renamed or removed in the code must leave the reference too (Sphinx would warn)
    for name in sorted(_documented_names(api_sources)):
        _resolve(name)


def _gallery_examples() -> dict:
    tree = ast.parse((DOCS / "conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "fi_gallery_examples" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("docs/conf.py has no fi_gallery_examples")


def test_every_example_is_in_the_gallery(api_sources):
    examples = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
    assert sorted(_gallery_examples()) == examples


def test_the_guide_links_from_the_readme_exist():
    readme = ROOT / "README.md"
    if not readme.exists() or not DOCS.is_dir():
        pytest.skip("the README and docs/ are not next to the tests (installed elsewhere)")
    links = re.findall(r"\]\(([^)#\s]+)\)", readme.read_text())
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/guide/") for link in local), "the README links to the user guide"
    assert not [link for link in local if not (ROOT / link).exists()]


def test_the_kernel_example_of_the_guide_runs():
    snippet = DOCS / "snippets" / "kernels_by_hand.py"
    if not snippet.exists():
        pytest.skip("docs/ is not next to the tests (installed elsewhere)")
    package_root = str(Path(fastinfluence.__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, str(snippet)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, PYTHONPATH=package_root),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    difference = float(re.search(r"from Influence.loss: (\S+)", result.stdout).group(1))
    assert difference < 1e-10
