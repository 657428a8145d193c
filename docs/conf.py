"""Sphinx configuration of fastinfluence's documentation site (scripts/build_docs.sh builds it).

Why Sphinx with numpydoc rather than mkdocs with mkdocstrings: the docstrings are reStructuredText
(``:class:`` and ``:func:`` roles, RST tables, ``::`` literal blocks) with numpydoc sections, which
Sphinx's autodoc and numpydoc render as they are, with every cross-reference checked (nitpicky
mode); mkdocstrings expects Markdown docstrings. The user guide is MyST Markdown (myst-parser), so
text moves between it and the README (Markdown) without rewriting. The theme is pydata-sphinx-theme,
the one NumPy, SciPy, pandas and scikit-learn use: the readers of this package know its navigation.
Math is rendered by a MathJax copied into the site (sphinx-mathjax-offline), so the pages read the
same without network access.

The gallery is ``_ext/fi_gallery.py``: it runs each script of ``examples/`` at the small size
``fi_gallery_examples`` gives (the sizes tests/test_examples.py uses), while Sphinx reads the other
pages, and makes one page per example with its figures, its printed output and its source. It is
not sphinx-gallery because the examples are plain scripts with command-line sizes (the full runs
take minutes), whose figures are files they write, not RST-formatted gallery scripts.

The API reference imports the package: the installed one when there is one (CI installs the wheel),
else the checkout's ``python/`` (a development tree with the compiled core built in place).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
if importlib.util.find_spec("fastinfluence") is None:
    sys.path.insert(0, str(ROOT / "python"))

import fastinfluence  # noqa: E402

project = "fastinfluence"
author = "the fastinfluence developers"
copyright = "the fastinfluence developers"
release = fastinfluence.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "numpydoc",
    "myst_parser",
    "sphinx_design",
    "fi_gallery",
    "fi_api",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "images/*.py"]
templates_path = ["_templates"]

# Every cross-reference must resolve (scripts/build_docs.sh builds with -n -W). Names outside this
# project (NumPy, SciPy, pandas types in signatures) have no inventory here, since the build must
# not need the network: they are shown as plain text instead of failing.
nitpicky = True
nitpick_ignore_regex = [
    # private modules (fastinfluence._core, _dataframes, _validation) are deliberately undocumented
    (r"py:.*", r"fastinfluence(\..*)?\._[a-z].*"),
    (r"py:.*", r"(numpy|np|scipy|pandas|pd|polars|pyarrow|dask|da|dd|matplotlib|sklearn|argparse)(\..*)?"),
    (r"py:.*", r"(Any|Callable|Sequence|Iterable|Mapping|Optional|Union|Protocol|NDArray|ArrayLike)"),
    (r"py:.*", r"(optional|default|array-like|array_like|of|or|shape|None|int|float|bool|str|dict|list)"),
]

# -- the API reference -----------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
# numpydoc renders the sections; the class template lists the members itself.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = True

# -- MyST (the guide) ------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- the gallery (_ext/fi_gallery.py) --------------------------------------------------------------
# script -> the command-line arguments of the docs' run. Every script of examples/ is listed
# (tests/test_docs.py checks it); the sizes are those of tests/test_examples.py, whose figures the
# scripts write with --plot.
# fmt: off
fi_gallery_examples = {
    "quickstart.py": [],
    "mislabel_detection.py": ["--rounds", "3", "--plot", "mislabel.png"],
    "training_set_attack.py": ["--test-points", "10"],
    "train_test_mismatch.py": ["--show", "1"],
    "loo_validation.py": [],
    "response_function.py": ["--plot", "lines.png"],
    "group_effects.py": ["--plot", "groups.png"],
    "digits_multiclass.py": [
        "--train-rows", "120", "--top", "25", "--test-points", "2", "--plot", "fig2.png",
    ],
}
# fmt: on
fi_gallery_source = str(ROOT / "examples")
fi_gallery_timeout = 600

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastinfluence {release}"
html_static_path = ["_static"]
html_css_files = ["fastinfluence.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "gallery/index": []}
