# The package version, read from the checkout's Cargo.toml (the one place it
# is written), and the ABI-versioned SONAME the library carries (build.rs
# sets it; hisdfSoname.cmake).
# Sets HISDF_PACKAGE_VERSION and HISDF_SONAME; included by CMakeLists.txt
# and by the checkout's hisdfConfigVersion.cmake.
file(STRINGS "${CMAKE_CURRENT_LIST_DIR}/../../Cargo.toml" _hisdf_version_line
     REGEX "^version = \"[0-9]+\\.[0-9]+\\.[0-9]+\"" LIMIT_COUNT 1)
string(REGEX REPLACE "^version = \"([0-9.]+)\".*" "\\1" HISDF_PACKAGE_VERSION
       "${_hisdf_version_line}")
include("${CMAKE_CURRENT_LIST_DIR}/hisdfSoname.cmake")
hisdf_soname("${HISDF_PACKAGE_VERSION}" HISDF_SONAME)
unset(_hisdf_version_line)
