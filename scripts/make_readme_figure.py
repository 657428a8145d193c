"""Regenerate the README pictures from the demo: docs/images/demo_loo.png and docs/images/demo_mislabel.png.

Run from anywhere:  python scripts/make_readme_figure.py
The pictures are drawn by fastinfluence.demo (the same code as `fastinfluence demo`),
never by hand; rerun this script whenever the demo or the plots change.
"""

import os
import sys

import matplotlib as mpl

mpl.use("Agg")

from fastinfluence.demo import compute_demo, write_plots

IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "images")


def main() -> int:
    result = compute_demo(seed=0)
    paths = write_plots(result, os.path.normpath(IMAGES), which=("loo", "mislabel"), dpi=90)
    for path in paths:
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
