"""The ctypes declarations in hisdf/_capi.py against the generated C header:
every function of include/hisdf.h is declared, with the header's return
and parameter types, and every struct the package reads has the header's
fields in the header's order. A function added to the C API, or a changed
signature, fails here instead of corrupting memory at run time."""

import ctypes
import pathlib
import re

from hisdf import _capi

HEADER = pathlib.Path(__file__).resolve().parents[3] / "include" / "hisdf.h"

# Integer types by size, as ctypes sees them (c_size_t and c_uint64 are the
# same type on a 64-bit Linux; the enums are uint32_t).
C_SCALARS = {
    "void": "void",
    "bool": "bool",
    "float": "float",
    "double": "double",
    "char": "char",
    "size_t": "u64",
    "uint64_t": "u64",
    "uint32_t": "u32",
    "uint8_t": "u8",
    "HisdfStatus": "u32",
    "HisdfLogLevel": "u32",
    "HisdfDevice": "u32",
}

CTYPES_SCALARS = {
    ctypes.c_bool: "bool",
    ctypes.c_float: "float",
    ctypes.c_double: "double",
    ctypes.c_size_t: "u64",
    ctypes.c_uint64: "u64",
    ctypes.c_uint32: "u32",
    ctypes.c_uint8: "u8",
    ctypes.c_char_p: "char*",
    ctypes.c_void_p: "void*",
}


def header_text():
    text = HEADER.read_text()
    text = re.sub(r"//[^\n]*", "", text)
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))


def c_type(decl):
    """Canonical form of a C type: const, struct and spaces dropped."""
    decl = re.sub(r"\bconst\b|\bstruct\b", " ", decl)
    stars = decl.count("*")
    base = decl.replace("*", " ").split()
    assert len(base) == 1, decl
    name = C_SCALARS.get(base[0], base[0])
    return name + "*" * stars


def split_param(param):
    """'const float *points' -> ('const float *', 'points', None);
    'float bbox_min[3]' -> ('float', 'bbox_min', 3)."""
    m = re.fullmatch(r"(.*?)(\w+)\s*(?:\[(\d+)\])?", param.strip(), re.S)
    return m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None


def header_functions():
    functions = {}
    for m in re.finditer(r"([\w\s\*]+?)\b(hisdf_\w+)\s*\(([^;{]*?)\)\s*;", header_text()):
        ret, name, params = m.groups()
        params = params.strip()
        types = [] if params in ("", "void") else [
            c_type(split_param(p)[0]) for p in params.split(",")]
        functions[name] = (c_type(ret), types)
    return functions


def header_struct(name):
    m = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), header_text(), re.S)
    assert m, "struct %s not in the header" % name
    fields = []
    for line in m.group(1).split(";"):
        if line.strip():
            ty, field, count = split_param(line)
            fields.append((field, c_type(ty), count))
    return fields


def ctypes_type(t):
    if t is None:
        return "void"
    if t is _capi.PROGRESS:
        return "HisdfProgressCallback"
    if t is _capi.LOG:
        return "HisdfLogCallback"
    if t in CTYPES_SCALARS:
        return CTYPES_SCALARS[t]
    if hasattr(t, "_type_") and issubclass(t, ctypes._Pointer):
        return ctypes_type(t._type_) + "*"
    if isinstance(t, type) and issubclass(t, ctypes.Structure):
        return "Hisdf" + t.__name__
    raise AssertionError("no C name for %r" % (t,))


def test_every_header_function_is_declared_with_its_types():
    header = header_functions()
    assert len(header) > 40, "the header scan found only %d functions" % len(header)
    declared = set(_capi.PROTOTYPES)
    assert declared - set(header) == set(), "declared but not in the header"
    assert set(header) - declared == set(), "in the header but not declared in _capi.py"
    for name, (restype, argtypes) in _capi.PROTOTYPES.items():
        ours = (ctypes_type(restype), [ctypes_type(a) for a in argtypes])
        assert ours == header[name], "%s: _capi.py says %s, the header %s" % (
            name, ours, header[name])


def test_structs_have_the_header_fields_in_order():
    for ours in (_capi.MeshInfo, _capi.ModelInfo, _capi.TrainState):
        fields = []
        for field, t in ours._fields_:
            if issubclass(t, ctypes.Array):
                fields.append((field, ctypes_type(t._type_), t._length_))
            else:
                fields.append((field, ctypes_type(t), None))
        assert fields == header_struct("Hisdf" + ours.__name__), ours.__name__


def test_the_scan_reads_a_declaration():
    assert split_param(" const struct HisdfMesh *mesh") == ("const struct HisdfMesh *", "mesh", None)
    assert c_type("const struct HisdfMesh **") == "HisdfMesh**"
    assert ctypes_type(ctypes.POINTER(ctypes.POINTER(_capi.Mesh))) == "HisdfMesh**"
