"""The README's two set-up commands are the ones CI and newcomers run, and CI runs the suite
against the oldest versions pyproject.toml declares as well as the newest."""

from __future__ import annotations

import re
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
