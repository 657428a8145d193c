"""Two fixes for the API reference: cross-references to re-exported objects, and summary lines.

Cross-references: resolve a Python reference to the page that documents the same object under
another name.

A docstring's ``:func:`exact_loo``` (written in ``fastinfluence/influence.py``) names the
function where it is defined, ``fastinfluence.influence.exact_loo``, while the reference
documents it where users import it, ``fastinfluence.exact_loo``; likewise a class imported into
another module (``TopK`` in ``fastinfluence.influence``, ``LeverageWarning`` there). Sphinx
records the defining name of a class (``:canonical:``) but not of a function or a method of a
class documented under an alias. For a reference Sphinx could not resolve, this imports what the
name means in the docstring's module (and class), and links to the documented entry that is the
same Python object. A name that means nothing, or an object that is documented nowhere, stays
unresolved: with ``nitpicky`` that is still a warning, so a reference to an undocumented object
fails the build.

Formula blocks: the docstrings set formulas apart as indented plain text after a paragraph,

    like this,

which reStructuredText reads as a block quote and reflows into one line. Each such block (after a
blank line, below a paragraph that is not a list item, a directive or a field, and not already
introduced by ``::``) is made a literal block (``code-block:: text``), so it keeps its lines and
alignment.

Summary lines: autosummary's tables show a docstring's first sentence, which it ends at the first
``". "``, also inside an inline literal such as ````eta = xa . theta````. Here it is given the
first paragraph with the periods inside literals masked, and they are put back in the summary.
"""

from __future__ import annotations

import importlib
import re

from sphinx.ext import autosummary
from sphinx.util.nodes import make_refnode

_MISSING = object()


def _lookup(dotted: str):
    """The object a dotted name means, importing its longest importable module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute, _MISSING)
            if obj is _MISSING:
                return _MISSING
        return obj
    return _MISSING


def _key(obj):
    # bound or unbound, a function is the same function; a classmethod's underlying function too
    return id(getattr(obj, "__func__", obj))


def _documented(app, domain):
    """id(object) -> (documented name, its entry), over every object the Python domain holds."""
    cache = getattr(app.env, "_fi_xref_documented", None)
    if cache is not None and cache[0] == len(domain.objects):
        return cache[1]
    table = {}
    for name, entry in domain.objects.items():
        if entry.aliased:
            continue
        obj = _lookup(name)
        if obj is not _MISSING and not isinstance(obj, (str, int, float, tuple, type(None))):
            table.setdefault(_key(obj), (name, entry))
    app.env._fi_xref_documented = (len(domain.objects), table)
    return table


def _resolve(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    module, klass = node.get("py:module"), node.get("py:class")
    candidates = []
    if module and klass:
        candidates.append(f"{module}.{klass}.{target}")
    if module:
        candidates.append(f"{module}.{target}")
    # the modules that define the class whose docstring this is and its bases: the names they import
    context = _lookup(f"{module}.{klass}") if module and klass else _MISSING
    candidates += [
        f"{base.__module__}.{target}"
        for base in getattr(context, "__mro__", ())
        if base.__module__ not in {module, "builtins"}
    ]
    candidates.append(target)
    domain = env.get_domain("py")
    table = _documented(app, domain)
    for candidate in candidates:
        obj = _lookup(candidate)
        if obj is not _MISSING and _key(obj) in table:
            name, entry = table[_key(obj)]
            return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)
    # ``Influence.on`` from a module that does not import Influence, ``transform`` in the docstring
    # of fastinfluence.sklearn.from_sklearn documented as fastinfluence.from_sklearn: the documented
    # names that end in it, if they are all one object (or one name)
    names = [
        name for name, entry in domain.objects.items() if name.endswith(f".{target}") and not entry.aliased
    ]
    if not names or len({_key(_lookup(name)) for name in names}) != 1:
        return None
    entry = domain.objects[names[0]]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, names[0])


_LITERAL = re.compile(r"``.+?``")
_MASK = "\ue000"  # a private-use character: not whitespace, so no sentence ends at it
_extract_summary = autosummary.extract_summary


def _summary(doc, document) -> str:
    lines = list(doc)
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    first = " ".join(line.strip() for line in lines[start:end])
    first = _LITERAL.sub(lambda match: match.group(0).replace(". ", "." + _MASK), first)
    return _extract_summary([first, *lines[end:]], document).replace("." + _MASK, ". ")


_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+\.|#\.|\(?\w\))\s")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _literal_formula_blocks(app, what, name, obj, options, lines):
    """Before numpydoc: "paragraph / blank / deeper-indented block" becomes a ``text`` code block."""
    found = []
    for i in range(2, len(lines)):
        block, blank, above = lines[i], lines[i - 1], lines[i - 2]
        if blank.strip() or not block.strip() or not above.strip() or _indent(block) <= _indent(above):
            continue
        start = i - 2  # the paragraph's first line
        while start > 0 and lines[start - 1].strip() and _indent(lines[start - 1]) == _indent(above):
            start -= 1
        first = lines[start].lstrip()
        if above.rstrip().endswith("::") or first.startswith((":", "..", ">>>")) or _LIST_ITEM.match(first):
            continue
        if set(above.strip()) <= set("=-~^\"'`#*+"):  # a section underline or a table border
            continue
        found.append(i)
    for i in reversed(found):  # from the end, so that the insertions leave the others in place
        lines[i - 1 : i] = ["", " " * _indent(lines[i - 2]) + ".. code-block:: text", ""]


def setup(app):
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-process-docstring", _literal_formula_blocks, priority=400)
    autosummary.extract_summary = _summary
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
