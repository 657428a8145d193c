"""The example gallery: each script of examples/ run at a small size, shown with its output.

When the builder starts, every script named in ``fi_gallery_examples`` (conf.py) is started in a
scratch folder of its own, with the arguments given there, by the Python that runs Sphinx and on
the fastinfluence package it imports; they run while Sphinx reads the other pages. For each
script a page ``gallery/<name>`` is written: its docstring, the figures it wrote (PNG files in its
folder), what it printed and its source. Reading that page waits for its script. A script that
exits with an error, prints anything on stderr (a warning) or writes no figure it was asked for
fails the build, so the gallery cannot show a stale or broken result.

``.. fi-command-help:: demo`` shows ``fastinfluence demo --help`` (by running it), so the
command-line page shows the parser's own help text.

``FASTINFLUENCE_DOCS_SKIP_EXAMPLES=1`` (for a quick look at the other pages while writing them)
leaves the examples unrun and says so on their pages; scripts/build_docs.sh always runs them.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

GALLERY = "gallery"


class _Run:
    """One example script running in its own folder (a thread waits for it, with a timeout)."""

    def __init__(self, script: Path, args: list[str], folder: Path, env: dict, timeout: float):
        self.script, self.args, self.folder = script, list(args), folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.returncode: int | None = None
        self.stdout = self.stderr = ""
        self.seconds = 0.0
        self.skipped = bool(os.environ.get("FASTINFLUENCE_DOCS_SKIP_EXAMPLES"))
        if self.skipped:
            self.stdout = "(not run: FASTINFLUENCE_DOCS_SKIP_EXAMPLES is set)"
            return
        self._thread = threading.Thread(target=self._run, args=(env, timeout), daemon=True)
        self._thread.start()

    def _run(self, env, timeout):
        start = time.monotonic()
        try:
            result = subprocess.run(
                [sys.executable, str(self.script), *self.args],
                cwd=self.folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            self.returncode, self.stdout, self.stderr = result.returncode, result.stdout, result.stderr
        except subprocess.TimeoutExpired as exc:
            self.returncode, self.stderr = -1, f"timed out after {timeout:.0f} s\n{exc.stderr or ''}"
        self.seconds = time.monotonic() - start

    def wait(self):
        if self.skipped:
            return []
        self._thread.join()
        if self.returncode != 0 or self.stderr:
            raise ExtensionError(
                f"examples/{self.script.name} {' '.join(self.args)} failed (exit status "
                f"{self.returncode}); its stderr:\n{self.stderr}"
            )
        figures = sorted(self.folder.glob("*.png"))
        asked = [a for a in self.args if a.endswith(".png")]
        missing = [a for a in asked if not (self.folder / a).exists()]
        if missing:
            raise ExtensionError(f"examples/{self.script.name} wrote no {', '.join(missing)}")
        return figures


def _docstring(script: Path) -> str:
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    if not doc:
        raise ExtensionError(f"examples/{script.name} has no docstring to introduce it")
    return doc


def _title_and_lead(doc: str) -> tuple[str, str]:
    """The page's title and the sentence under it, from the docstring's first paragraph: a long
    ``"Title: what it does"`` is cut at the colon, a short one is the title alone."""
    first = " ".join(doc.split("\n\n", 1)[0].split()).rstrip(".")
    if len(first) > 60 and ": " in first:
        title, lead = first.split(": ", 1)
        return title, lead[0].upper() + lead[1:] + "."
    return first, ""


def _title(doc: str) -> str:
    return _title_and_lead(doc)[0]


def _escape(text: str) -> str:
    """Plain docstring prose as reStructuredText: ``|x|`` means an absolute value, not a
    substitution, and the ``Run: python examples/...`` line is a command, set as a literal."""
    text = text.replace("|", r"\|")
    return re.sub(r"^Run: (python .*)$", r"Run: ``\1``", text, flags=re.MULTILINE)


def _heading(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


def _page(name: str, script: Path, args: list[str], figures: list[Path], run: _Run) -> str:
    doc = _docstring(script)
    title, lead = _title_and_lead(doc)
    body = doc.split("\n\n", 1)[1] if "\n\n" in doc else ""
    command = " ".join(["python", f"examples/{script.name}", *args])
    lines = [f".. _gallery-{name}:", "", _heading(title, "=")]
    if lead:
        lines += [_escape(lead), ""]
    lines += [_escape(body), ""]
    lines += [
        _heading("Run for this page", "-"),
        ".. code-block:: bash",
        "",
        f"   {command}",
        "",
        (
            f"(run while this site was built: {run.seconds:.0f} s; the sizes are the test suite's, "
            "so the numbers differ from a full run where the script takes size options)"
        ),
        "",
    ]
    for figure in figures:
        lines += [f".. figure:: /{GALLERY}/images/{name}-{figure.name}", "   :width: 100%", ""]
        lines += [f"   ``{figure.name}``, written by the run above", ""]
    lines += [_heading("Output", "-"), ".. code-block:: text", ""]
    lines += [f"   {line}" if line else "" for line in run.stdout.rstrip().splitlines()]
    lines += ["", _heading("Source", "-"), f".. literalinclude:: /{GALLERY}/{name}.py"]
    lines += ["   :language: python", ""]
    return "\n".join(lines)


def _index(app) -> str:
    """The gallery's front page: a card per example, with its first figure where it draws one."""
    lines = [
        _heading("Example gallery", "="),
        "Each page is a script of ``examples/`` run when this site was built, at the small size",
        "the test suite uses: its figures, what it printed and its source. Run one yourself with",
        "``python examples/<name>.py`` (``--help`` lists its options; the full sizes are the defaults).",
        "",
        ".. grid:: 1 2 3 3",
        "   :gutter: 3",
        "",
    ]
    for name, (script, _, _) in app.fi_gallery_runs.items():
        figures = _finish(app, name)
        title, lead = _title_and_lead(_docstring(script))
        lines += [f"   .. grid-item-card:: {title}", f"      :link: {name}", "      :link-type: doc"]
        if figures:
            lines += [f"      :img-top: /{GALLERY}/images/{name}-{figures[0].name}"]
        lines += ["", f"      {_escape(lead) if lead else f'``examples/{script.name}``'}", ""]
    lines += [".. toctree::", "   :hidden:", ""]
    lines += [f"   {name}" for name in app.fi_gallery_runs]
    return "\n".join([*lines, ""])


def _start(app):
    config = app.config
    source = Path(config.fi_gallery_source)
    examples: dict = config.fi_gallery_examples
    on_disk = sorted(p.name for p in source.glob("*.py"))
    if sorted(examples) != on_disk:
        raise ExtensionError(
            f"fi_gallery_examples in conf.py must list every script of {source}: it has "
            f"{sorted(examples)}, the folder {on_disk}"
        )
    import fastinfluence

    # one thread each: the scripts run side by side, and beside Sphinx
    threads = dict(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env = dict(os.environ, MPLBACKEND="Agg", **threads)
    package_root = str(Path(fastinfluence.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    pages = Path(app.srcdir) / GALLERY
    (pages / "images").mkdir(parents=True, exist_ok=True)
    scratch = Path(app.doctreedir).parent / "gallery-runs"
    app.fi_gallery_runs = {}
    for script_name, args in examples.items():
        name = Path(script_name).stem
        script = source / script_name
        app.fi_gallery_runs[name] = (
            script,
            args,
            _Run(script, args, scratch / name, env, config.fi_gallery_timeout),
        )
        shutil.copyfile(script, pages / f"{name}.py")
        # a placeholder, so that Sphinx knows the page; its text is made when it is read
        (pages / f"{name}.rst").write_text(_heading(_title(_docstring(script)), "=") + "\n")
    (pages / "index.rst").write_text(_heading("Example gallery", "=") + "\n")


def _finish(app, name: str) -> list[Path]:
    """Wait for an example's run (once) and copy its figures into the pages' images."""
    script, _, run = app.fi_gallery_runs[name]
    if not hasattr(run, "figures"):
        run.figures = run.wait()
        images = Path(app.srcdir) / GALLERY / "images"
        for figure in run.figures:
            shutil.copyfile(figure, images / f"{name}-{figure.name}")
        if not run.skipped:
            logger.info("gallery: examples/%s ran in %.0f s", script.name, run.seconds)
    return run.figures


def _fill(app, docname, source):
    if not docname.startswith(f"{GALLERY}/"):
        return
    name = docname.split("/", 1)[1]
    if name == "index":
        source[0] = _index(app)
        return
    script, args, run = app.fi_gallery_runs[name]
    source[0] = _page(name, script, args, _finish(app, name), run)


def _always_reread(app, env, added, changed, removed):
    # the pages depend on the examples' runs, not only on their files
    return [f"{GALLERY}/{name}" for name in [*getattr(app, "fi_gallery_runs", {}), "index"]]


class CommandHelp(Directive):
    """``.. fi-command-help:: score``: the output of ``fastinfluence score --help``, as a literal block."""

    optional_arguments = 1
    has_content = False

    def run(self):
        words = self.arguments[0].split() if self.arguments else []
        command = [sys.executable, "-m", "fastinfluence", *words, "--help"]
        import fastinfluence

        package_root = str(Path(fastinfluence.__file__).resolve().parent.parent)
        env = dict(os.environ, COLUMNS="100")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
        if result.returncode != 0:
            raise self.error(f"{' '.join(command[2:])} failed ({result.returncode}): {result.stderr}")
        text = f"$ fastinfluence {' '.join([*words, '--help'])}\n{result.stdout.rstrip()}"
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app):
    app.add_config_value("fi_gallery_examples", {}, "env")
    app.add_config_value("fi_gallery_source", "", "env")
    app.add_config_value("fi_gallery_timeout", 600, "env")
    app.add_directive("fi-command-help", CommandHelp)
    app.connect("builder-inited", _start)
    app.connect("source-read", _fill)
    app.connect("env-get-outdated", _always_reread)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
