"""The installed package: its version is Cargo.toml's (setup.py reads it;
this catches a wheel built from another checkout), and it carries its
library and type marker."""

import importlib.metadata
import os
import pathlib
import re

import pytest

import hisdf

CARGO = pathlib.Path(__file__).resolve().parents[3] / "Cargo.toml"
INSTALLED = os.environ.get("HISDF_TEST_INSTALLED") == "1"


def cargo_version():
    return re.search(r'^version\s*=\s*"([^"]+)"', CARGO.read_text(), re.M).group(1)


def test_the_library_is_the_cargo_version():
    assert hisdf.version() == cargo_version()


@pytest.mark.skipif(not INSTALLED, reason="scripts/test runs this against the installed wheel")
def test_the_wheel_is_the_cargo_version_and_carries_its_files():
    assert importlib.metadata.version("hisdf") == cargo_version()
    here = pathlib.Path(hisdf.__file__).parent
    assert (here / "py.typed").is_file()
    assert pathlib.Path(hisdf.library_path()) == here / "libhisdf.so"
