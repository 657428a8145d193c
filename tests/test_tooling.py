"""The linters run by CI (.ci/run's lint step) and by pre-commit are the same versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / ".ci" / "lint-requirements.txt"
PRE_COMMIT = ROOT / ".pre-commit-config.yaml"
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")


def _pins(text: str) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for name, version in PIN.findall(text):
        pins.setdefault(name.lower(), set()).add(version)
    return pins


def test_pre_commit_pins_the_linters_ci_runs():
    if not (REQUIREMENTS.exists() and PRE_COMMIT.exists()):
        pytest.skip("the CI and pre-commit files are not next to the tests (installed elsewhere)")
    ci = _pins("\n".join(line.split("#", 1)[0] for line in REQUIREMENTS.read_text().splitlines()))
    hooks = _pins(PRE_COMMIT.read_text())
    assert set(ci) >= {"ruff", "mypy", "clang-format"}
    for name, versions in hooks.items():
        assert len(versions) == 1, f"{name} is pinned at several versions in .pre-commit-config.yaml"
        if name in ci:
            assert versions == ci[name], f"{name}: pre-commit has {versions}, CI {ci[name]}"
    assert set(ci) <= set(hooks), "every linter CI installs is a hook (or a hook's dependency)"
    assert "lint-requirements.txt" in (ROOT / ".ci" / "run").read_text()
