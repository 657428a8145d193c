"""``python -m fastinfluence``: the same command line as the ``fastinfluence`` script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
