"""The README's two set-up commands are the ones CI and newcomers run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not next to the tests (installed elsewhere)")
    block = re.search(r"```bash\n(.*?)```", readme.read_text(), re.S)
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
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci.splitlines()
