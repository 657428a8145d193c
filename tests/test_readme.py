"""The README's two set-up commands are the ones CI and newcomers run, and CI runs the suite
against the oldest versions pyproject.toml declares as well as the newest."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not next to the tests (installed elsewhere)")
    block = re.search(r"```bash\n(.*?)```", readme.read_text(), re.DOTALL)
    assert block is not None, "README must start with a bash block of set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```bash")
    assert text[:first_block].count("\n") <= 2, "the set-up commands come first"
    commands = _readme_commands()
    assert len(commands) == 2
    assert "fastinfluence demo" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    # `pip install ".[test]" && python -m pytest -q`: CI builds the wheel of the checkout once,
    # installs it with the same extra (in two environments) and runs the same test command.
    install, test_command = (part.strip() for part in _readme_commands()[1].split("&&"))
    extra = re.fullmatch(r'pip install "\.\[(\w+)\]"', install)
    assert extra is not None, f'expected pip install ".[extra]", got {install!r}'
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    wheel_of_checkout = r"(\w+=\S+ )*python -m pip wheel .*--no-deps .*\."  # build settings may come first
    assert any(re.fullmatch(wheel_of_checkout, line) for line in ci), "a wheel of ."
    installs = [line for line in ci if line.startswith("python -m pip install")]
    assert sum(line.endswith(f'"$wheel[{extra.group(1)}]"') for line in installs) == 2
    assert any(line.startswith(test_command + " ") or line == test_command for line in ci)


def _floors_and_pins():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    requirements = pytest.importorskip("packaging.requirements")
    utils = pytest.importorskip("packaging.utils")
    pins_file = ROOT / ".ci" / "minimum-versions.txt"
    if not pins_file.exists():
        pytest.skip(".ci/minimum-versions.txt is not next to the tests (installed elsewhere)")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    floors = {}
    for text in declared:
        requirement = requirements.Requirement(text)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                floors.setdefault(utils.canonicalize_name(requirement.name), set()).add(spec.version)
    pins = {}
    for raw in pins_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[utils.canonicalize_name(name)] = version
    return declared, floors, pins


def test_every_floor_is_pinned_for_the_minimum_versions_run():
    version = pytest.importorskip("packaging.version")
    declared, floors, pins = _floors_and_pins()
    unbounded = [text for text in declared if ">=" not in text]
    assert not unbounded, f"dependencies without a floor (CI cannot test one): {unbounded}"
    for name, found in floors.items():
        assert len(found) == 1, f"{name} has different floors in pyproject.toml: {sorted(found)}"
        (floor,) = found
        assert name in pins, f"{name}>={floor} is not pinned in .ci/minimum-versions.txt"
        assert version.Version(pins[name]) == version.Version(floor), (
            f"{name}: pyproject.toml says >={floor}, .ci/minimum-versions.txt tests {pins[name]}"
        )


#: What the README and examples/ do that needs a package without importing it by name.
USES = {".to_zarr(": "zarr", "read_parquet(": "pyarrow", ".to_parquet(": "pyarrow"}


def _imported_modules(source):
    """Top-level modules (and dotted ones, for DISTRIBUTIONS) that ``source`` imports; lines
    that do not parse as Python (a README snippet) are read one by one."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        found = re.findall(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", source, re.MULTILINE)
        return {a or b for a, b in found}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _used_distributions():
    """{distribution: where it is used} for the Python blocks of the README and the user guide
    (docs/guide), and the scripts in examples/."""
    from fastinfluence._optional import distribution_name

    pages = [ROOT / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]  # the guide too
    sources = [
        (str(page.relative_to(ROOT)), block)
        for page in pages
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
    ]
    sources += [
        (f"examples/{path.name}", path.read_text()) for path in sorted((ROOT / "examples").glob("*.py"))
    ]
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        pytest.skip("sys.stdlib_module_names needs Python >= 3.10")
    used = {}
    for where, source in sources:
        for module in _imported_modules(source):
            top = module.split(".")[0]
            if top in stdlib or top in ("fastinfluence", "__future__"):
                continue
            used.setdefault(distribution_name(module), where)
        for call, distribution in USES.items():
            if call in source:
                used.setdefault(distribution, where)
    return used


def test_every_package_the_readme_and_the_examples_use_is_installed_by_an_extra():
    """Issue 13: the README's Dask section writes results with to_zarr, and no extra installed zarr."""
    utils = pytest.importorskip("packaging.utils")
    requirements = pytest.importorskip("packaging.requirements")
    declared, _, _ = _floors_and_pins()
    installable = {utils.canonicalize_name(requirements.Requirement(text).name) for text in declared}
    used = _used_distributions()
    assert {"numpy", "scikit-learn", "dask", "distributed", "zarr", "matplotlib"} <= set(used)
    missing = {
        name: where for name, where in used.items() if utils.canonicalize_name(name) not in installable
    }
    assert not missing, f"used but in no extra of pyproject.toml (nor its dependencies): {missing}"
