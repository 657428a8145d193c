"""Every script in examples/ runs to completion and prints what it promises."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 120


def check_quickstart(out):
    assert "most helpful training points" in out
    assert "most harmful training points" in out
    scores = [float(v) for v in re.findall(r"I_up,loss =\s+([-+]\d+\.\d+)", out)]
    assert len(scores) == 10
    # the signs the text promises
    assert all(s < 0 for s in scores[:5])
    assert all(s > 0 for s in scores[5:])


def check_mislabel_detection(out):
    assert "labels flipped" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("30%"))
    found = float(row.split()[1].rstrip("%")) / 100
    assert found > 0.6  # random checking would find about 30%
    check_mislabel_loop(out)


def check_mislabel_loop(out):
    """The check-fix-refit loop: checking by self-influence fixes more labels and recovers more test
    loss than checking at random."""
    rows = [
        line.split() for line in out.split("rank again")[1].splitlines()[2:] if line.strip()[:1].isdigit()
    ]
    last = rows[-1]
    found = {
        name: float(last[1 + 3 * k].rstrip("%")) / 100 for k, name in enumerate(("self", "loss", "random"))
    }
    loss = {name: float(last[3 + 3 * k]) for k, name in enumerate(("self", "loss", "random"))}
    assert found["self"] > 0.9
    assert found["self"] > found["random"] + 0.5
    assert loss["self"] < 0.6 * loss["random"]
    if PLOTS:
        assert "wrote mislabel.png" in out


def check_training_set_attack(out):
    flipped = dict(re.findall(r"(attack|control), .*?: flipped (\d+) of \d+ test predictions", out))
    assert int(flipped["attack"]) >= 2
    assert int(flipped["attack"]) > int(flipped["control"])


def check_train_test_mismatch(out):
    helpful = re.search(r"most helpful: ([\d.]+) are the region's (\d+) kept", out)
    assert float(helpful.group(1)) >= 0.8 * int(helpful.group(2))  # the few rows left of the thinned class
    harmful = re.search(r"most harmful: (\d+)% are in the region on average \(the region is ([\d.]+)%", out)
    assert int(harmful.group(1)) >= 40  # most of the top harmful rows: the region's other class
    assert int(harmful.group(1)) > 5 * float(harmful.group(2))


def check_loo_validation(out):
    correlations = dict(re.findall(r"(\w+) estimate: Pearson r = (\d\.\d+)", out))
    assert float(correlations["influence"]) > 0.9
    assert float(correlations["newton"]) > 0.99


def check_digits_multiclass(out):
    every = dict(re.findall(r"all pairs: (\w+) estimate: Pearson r = (\d\.\d+)", out))
    protocol = dict(re.findall(r"(\w+) estimate: Pearson r = (\d\.\d+) over \d+ removals", out))
    # at the test's size (120 rows for 650 parameters) every row is influential; the full run's
    # figures are in the user guide (docs/guide/leave-one-out.md)
    assert float(every["influence"]) > 0.8
    assert float(every["newton"]) > max(0.93, float(every["influence"]))
    assert float(protocol["newton"]) > max(0.98, float(protocol["influence"]))
    if PLOTS:
        assert "wrote fig2.png" in out


def check_response_function(out):
    assert "fitted line: y = 1.000000 x + 0.166667" in out
    pairs = re.findall(r"I_up,params = (\[.*?\]), \(theta.*? = (\[.*?\])", out)
    assert len(pairs) == 3
    for influence, difference in pairs:
        assert influence == difference  # the derivative of the exact refit, to the digits printed
    assert "(0, 0) on (0, 0)    -0.069444 | -0.046296 | -0.047164" in out
    largest = float(re.search(r"printed vs exact in the notebook's convention: ([\d.]+)%", out).group(1))
    assert largest < 3.0
    if PLOTS:
        assert "wrote lines.png" in out


def check_group_effects(out):
    ratios = dict(re.findall(r"(first order|Newton) estimate: median ratio .*? = (\d\.\d+)", out))
    assert float(ratios["first order"]) < 0.9  # the known underestimate of large groups
    assert abs(float(ratios["Newton"]) - 1.0) < 0.05
    coherent = re.search(r"coherent \(all\)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)", out)
    assert float(coherent.group(4)) > 0.99  # Newton's Pearson r over the coherent groups
    if PLOTS:
        assert "wrote groups.png" in out


CHECKS = {
    "quickstart.py": check_quickstart,
    "mislabel_detection.py": check_mislabel_detection,
    "loo_validation.py": check_loo_validation,
    "digits_multiclass.py": check_digits_multiclass,
    "response_function.py": check_response_function,
    "group_effects.py": check_group_effects,
    "training_set_attack.py": check_training_set_attack,
    "train_test_mismatch.py": check_train_test_mismatch,
}

#: Options that make an example small enough for the test suite (and draw its figure where it can).
PLOTS = importlib.util.find_spec("matplotlib") is not None
SMALL = {
    "digits_multiclass.py": ["--train-rows", "120", "--top", "25", "--test-points", "2"]
    + (["--plot", "fig2.png"] if PLOTS else []),
    "response_function.py": ["--plot", "lines.png"] if PLOTS else [],
    "group_effects.py": ["--plot", "groups.png"] if PLOTS else [],
    "mislabel_detection.py": ["--rounds", "3"] + (["--plot", "mislabel.png"] if PLOTS else []),
    "training_set_attack.py": ["--test-points", "10"],
    "train_test_mismatch.py": ["--show", "1"],
}


def test_every_example_has_a_check():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs(name, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *SMALL.get(name, [])],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings
    CHECKS[name](result.stdout)
