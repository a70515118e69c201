"""The Python and C++ bindings against include/hisdf.h: every exported
function, every value of every enum and every field of every struct is
bound by the binding's public layer, or listed below as deliberately
unbound with the reason. A function added to the C API without a binding,
or an enum value one binding does not know, fails here. (test_header.py
checks that _capi.py declares each symbol with the header's types; this
checks that the layer users call actually uses it.)"""

import pathlib
import re

import hisdf
from hisdf import _capi

from test_header import header_functions, header_struct, header_text

REPO = pathlib.Path(__file__).resolve().parents[3]
# The layer actually imported: the installed wheel when scripts/test runs.
PYTHON_LAYER = pathlib.Path(hisdf.__file__)
CPP_WRAPPER = REPO / "bindings" / "cpp" / "hisdf.hpp"

# Header functions the Python classes do not call, and why.
UNBOUND_PY = {
    "hisdf_error_status": "_call reads the status from each function's return "
                          "value, which is the error's; Python never holds a HisdfError",
    "hisdf_status_name": "hisdf.Status (an IntEnum with the header's values, checked "
                         "below) names a status in Python",
    "hisdf_extract": "Model.extract calls hisdf_extract_with, which also takes sparse; "
                     "hisdf_extract is that call with a default Config",
    "hisdf_metrics_get": "metrics come back whole as a dict (hisdf_metrics_count/entry); "
                         "a lookup by name is dict[name]",
}

# Header functions hisdf.hpp does not call, and why.
UNBOUND_CPP = {
    "hisdf_error_status": "check() takes the status from each function's return value, "
                          "which is the error's; callers never hold a HisdfError",
    "hisdf_metrics_get": "metrics come back whole as a std::map (take_metrics); "
                         "a lookup by name is map.at(name)",
}

# Header enum -> the Python enum that mirrors it and the C prefix of its values.
PY_ENUMS = {
    "HisdfStatus": (hisdf.Status, "HISDF_STATUS_"),
    "HisdfLogLevel": (hisdf.LogLevel, "HISDF_LOG_LEVEL_"),
    "HisdfDevice": (hisdf.Device, "HISDF_DEVICE_"),
}


def header_enums():
    """{enum name: {value name: number}} for every enum of the header."""
    enums = {}
    for m in re.finditer(r"\benum\s+(Hisdf\w+)[^{;]*\{(.*?)\}", header_text(), re.S):
        values = {}
        for entry in m.group(2).split(","):
            if entry.strip():
                name, number = (s.strip() for s in entry.split("="))
                values[name] = int(number)
        enums[m.group(1)] = values
    return enums


def header_struct_names():
    """The structs with fields (opaque handles have none to bind)."""
    return re.findall(r"typedef struct (Hisdf\w+) \{", header_text())


def calls(source):
    """hisdf_* names a binding's source mentions (a call, or a name passed to
    _call)."""
    return set(re.findall(r"\b(hisdf_\w+)\b", source))


def check_functions(source, unbound, binding):
    header = set(header_functions())
    assert len(header) > 40, "the header scan found only %d functions" % len(header)
    stale = set(unbound) - header
    assert not stale, "%s: listed as unbound but not in the header: %s" % (binding, sorted(stale))
    both = set(unbound) & calls(source)
    assert not both, "%s: listed as unbound but used: %s" % (binding, sorted(both))
    missing = header - calls(source) - set(unbound)
    assert not missing, (
        "%s: header functions neither bound nor listed as unbound (with a reason): %s"
        % (binding, sorted(missing)))
    for name, reason in unbound.items():
        assert len(reason) > 20, "%s: %s needs a reason" % (binding, name)


def test_every_function_is_bound_in_python_or_listed():
    check_functions(PYTHON_LAYER.read_text(), UNBOUND_PY, "Python")


def test_every_function_is_bound_in_cpp_or_listed():
    check_functions(CPP_WRAPPER.read_text(), UNBOUND_CPP, "C++")


def test_python_enums_have_every_header_value():
    enums = header_enums()
    assert set(enums) == set(PY_ENUMS), "header enums %s, mirrored %s" % (
        sorted(enums), sorted(PY_ENUMS))
    for c_name, (py_enum, prefix) in PY_ENUMS.items():
        header = {name[len(prefix):]: n for name, n in enums[c_name].items()}
        ours = {member.name: member.value for member in py_enum}
        assert ours == header, "%s: Python has %s, the header %s" % (c_name, ours, header)


def test_cpp_uses_the_header_enums_and_structs_themselves():
    # hisdf.hpp passes the C enums and returns the C structs as they are, so
    # every value and field is bound once the type is; a type it never names
    # is not.
    source = CPP_WRAPPER.read_text()
    for name in list(header_enums()) + header_struct_names():
        assert re.search(r"\b%s\b" % name, source), "hisdf.hpp never uses %s" % name


def test_python_exposes_every_struct_field():
    # The Python layer turns each struct into a dict or namedtuple built from
    # _capi's _fields_ (equal to the header's, test_header.py), so each struct
    # must be converted that way; a struct read field by field could drop one.
    source = PYTHON_LAYER.read_text()
    structs = header_struct_names()
    assert sorted(structs) == ["HisdfMeshInfo", "HisdfModelInfo", "HisdfTrainState"], structs
    for name in structs:
        ours = getattr(_capi, name[len("Hisdf"):])
        assert [f for f, _ in ours._fields_] == [f for f, _, _ in header_struct(name)]
        assert "_capi.%s._fields_" % ours.__name__ in source, (
            "__init__.py does not convert %s from its _fields_" % name)
    assert list(hisdf.TrainState._fields) == [f for f, _, _ in header_struct("HisdfTrainState")]


def test_mesh_info_has_every_header_field():
    tetra = hisdf.Mesh.from_arrays(
        [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    info = tetra.info()
    assert sorted(info) == sorted(f for f, _, _ in header_struct("HisdfMeshInfo"))
    assert info["watertight"] is True and info["triangle_count"] == 4


def test_the_enum_scan_reads_the_header():
    enums = header_enums()
    assert enums["HisdfStatus"]["HISDF_STATUS_OK"] == 0
    assert len(enums["HisdfStatus"]) > 10
