"""Optional dependencies go through one helper whose error names the extra that installs them."""

from __future__ import annotations

import pytest

from fastinfluence import _optional


def test_a_missing_module_names_the_extra():
    with pytest.raises(
        ImportError, match=r'the thing needs no_such_module_xyz: pip install "fastinfluence\[plot\]"'
    ):
        _optional.require("no_such_module_xyz.sub", extra="plot", purpose="the thing")
    assert not _optional.available("no_such_module_xyz")


def test_an_installed_module_is_returned():
    assert _optional.require("numpy.linalg", extra="plot", purpose="x").__name__ == "numpy.linalg"
    assert _optional.available("numpy")


def test_cli_reports_a_missing_extra_as_an_input_error(monkeypatch):
    from fastinfluence.cli import io
    from fastinfluence.cli.errors import InputError

    with pytest.raises(
        InputError, match=r'fastinfluence score needs no_such_module_xyz: pip install "fastinfluence\[cli\]"'
    ):
        io.require("no_such_module_xyz")
