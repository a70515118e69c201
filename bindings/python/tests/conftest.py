import os
import pathlib
import sys
import sysconfig

# scripts/test installs the wheel and sets HISDF_TEST_INSTALLED=1: the tests
# then import the installed package, and fail at once if they would test the
# checkout instead. Without it (a developer running pytest by hand) they use
# the package in this checkout and its target/release library.
if os.environ.get("HISDF_TEST_INSTALLED") == "1":
    import hisdf

    installed = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
    where = pathlib.Path(hisdf.__file__).resolve()
    assert installed in where.parents, (
        "HISDF_TEST_INSTALLED=1 but hisdf comes from %s, not %s; run pytest from "
        "outside the checkout after installing target/wheels/hisdf-*.whl" % (where, installed))
    library = pathlib.Path(hisdf.library_path()).resolve()
    assert library.parent == where.parent, (
        "the installed hisdf loads %s instead of its own libhisdf.so; unset "
        "HISDF_LIBRARY" % library)
else:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
