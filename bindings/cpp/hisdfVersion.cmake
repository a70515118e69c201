# The package version, read from the checkout's Cargo.toml (the one place it
# is written), and the ABI-versioned SONAME the library carries (build.rs
# sets it: libhisdf.so.0.<minor> before 1.0, libhisdf.so.<major> after).
# Sets HISDF_PACKAGE_VERSION and HISDF_SONAME; included by CMakeLists.txt
# and by the checkout's hisdfConfigVersion.cmake.
file(STRINGS "${CMAKE_CURRENT_LIST_DIR}/../../Cargo.toml" _hisdf_version_line
     REGEX "^version = \"[0-9]+\\.[0-9]+\\.[0-9]+\"" LIMIT_COUNT 1)
string(REGEX REPLACE "^version = \"([0-9.]+)\".*" "\\1" HISDF_PACKAGE_VERSION
       "${_hisdf_version_line}")
string(REGEX MATCHALL "[0-9]+" _hisdf_parts "${HISDF_PACKAGE_VERSION}")
list(GET _hisdf_parts 0 _hisdf_major)
list(GET _hisdf_parts 1 _hisdf_minor)
if(_hisdf_major EQUAL 0)
  set(HISDF_SONAME "libhisdf.so.0.${_hisdf_minor}")
else()
  set(HISDF_SONAME "libhisdf.so.${_hisdf_major}")
endif()
unset(_hisdf_version_line)
unset(_hisdf_parts)
unset(_hisdf_major)
unset(_hisdf_minor)
