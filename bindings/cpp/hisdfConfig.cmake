# find_package(hisdf) support. Defines the imported target hisdf::hisdf
# (libhisdf.so, include/hisdf.h and the C++17 wrapper hisdf.hpp) from either
#  - an install tree: <libdir>/cmake/hisdf/hisdfConfig.cmake, installed by
#    bindings/cpp/CMakeLists.txt, or
#  - a built checkout: bindings/cpp/hisdfConfig.cmake itself, with the
#    library in target/release (or HISDF_LIBRARY).
# Use: find_package(hisdf CONFIG REQUIRED) with hisdf_DIR or
# CMAKE_PREFIX_PATH pointing at either place.

if(TARGET hisdf::hisdf)
  return()
endif()

get_filename_component(_hisdf_here "${CMAKE_CURRENT_LIST_DIR}" REALPATH)

if(EXISTS "${_hisdf_here}/../../include/hisdf.h"
   AND EXISTS "${_hisdf_here}/hisdf.hpp")
  # Checkout: <root>/bindings/cpp.
  get_filename_component(_hisdf_root "${_hisdf_here}/../.." REALPATH)
  set(_hisdf_includes "${_hisdf_root}/include" "${_hisdf_here}")
  if(NOT HISDF_LIBRARY)
    set(HISDF_LIBRARY "${_hisdf_root}/target/release/libhisdf.so")
  endif()
else()
  # Install tree: <libdir>/cmake/hisdf, headers in <libdir>/../include.
  get_filename_component(_hisdf_libdir "${_hisdf_here}/../.." REALPATH)
  get_filename_component(_hisdf_prefix "${_hisdf_libdir}/.." REALPATH)
  set(_hisdf_includes "${_hisdf_prefix}/include")
  if(NOT HISDF_LIBRARY)
    set(HISDF_LIBRARY "${_hisdf_libdir}/libhisdf.so")
  endif()
endif()

if(NOT EXISTS "${HISDF_LIBRARY}")
  set(hisdf_FOUND FALSE)
  set(hisdf_NOT_FOUND_MESSAGE
      "libhisdf.so not found at ${HISDF_LIBRARY}: run `scripts/cargo build --release` or set HISDF_LIBRARY")
  return()
endif()

# The library's ABI-versioned SONAME (build.rs): what programs record and
# load. find_package set hisdf_VERSION from hisdfConfigVersion.cmake.
include("${CMAKE_CURRENT_LIST_DIR}/hisdfSoname.cmake")
hisdf_soname("${hisdf_VERSION}" _hisdf_soname)
# A cargo build leaves only libhisdf.so: give the loader its SONAME beside
# it, as an install does.
get_filename_component(_hisdf_libdir_of "${HISDF_LIBRARY}" DIRECTORY)
get_filename_component(_hisdf_libname "${HISDF_LIBRARY}" NAME)
if(NOT EXISTS "${_hisdf_libdir_of}/${_hisdf_soname}")
  file(CREATE_LINK "${_hisdf_libname}" "${_hisdf_libdir_of}/${_hisdf_soname}" SYMBOLIC)
endif()

add_library(hisdf::hisdf SHARED IMPORTED)
set_target_properties(hisdf::hisdf PROPERTIES
  IMPORTED_LOCATION "${HISDF_LIBRARY}"
  IMPORTED_SONAME "${_hisdf_soname}"
  INTERFACE_INCLUDE_DIRECTORIES "${_hisdf_includes}"
  INTERFACE_COMPILE_FEATURES cxx_std_17)

set(hisdf_FOUND TRUE)
unset(_hisdf_here)
unset(_hisdf_root)
unset(_hisdf_libdir)
unset(_hisdf_prefix)
unset(_hisdf_includes)
unset(_hisdf_soname)
unset(_hisdf_libdir_of)
unset(_hisdf_libname)
