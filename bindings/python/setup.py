"""What pyproject.toml cannot say: the version, read from the Cargo.toml this
package is built from, and a platform tag, because the wheel carries a
native library (libhisdf.so for x86-64 Linux) although no Python extension."""

import pathlib
import re

from setuptools import setup

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1 keeps it in the wheel package
    from wheel.bdist_wheel import bdist_wheel


def cargo_version():
    """The package version of the hisdf crate in the nearest Cargo.toml above
    this folder (the checkout, or the checkout around target/ where
    scripts/wheel stages the package)."""
    here = pathlib.Path(__file__).resolve().parent
    for folder in (here, *here.parents):
        cargo = folder / "Cargo.toml"
        if cargo.is_file():
            text = cargo.read_text()
            if re.search(r'^name\s*=\s*"hisdf"', text, re.M):
                return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)
    raise SystemExit("setup.py: no Cargo.toml of the hisdf crate above %s" % here)


class PlatformWheel(bdist_wheel):
    """py3-none-<platform>: any Python 3 (ctypes, no C extension), one
    platform (libhisdf.so is a native library)."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(version=cargo_version(), cmdclass={"bdist_wheel": PlatformWheel})
