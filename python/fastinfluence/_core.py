"""``fastinfluence._core``: the compiled core, as the variant :mod:`fastinfluence._native` chooses
for this CPU (typed by ``_core.pyi``). Importing it loads that variant, ``fastinfluence._core_<variant>``,
and puts it in this module's place; ``ImportError`` says why when there is none (see ``_native``)."""

import sys

from ._native import load

sys.modules[__name__] = load()
