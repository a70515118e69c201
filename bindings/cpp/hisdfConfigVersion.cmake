# find_package(hisdf <version>) against a checkout (hisdf_DIR=bindings/cpp):
# the version is Cargo.toml's; compatible as the installed package is
# (SameMinorVersion: before 1.0 each minor release is a new ABI).
include("${CMAKE_CURRENT_LIST_DIR}/hisdfVersion.cmake")
set(PACKAGE_VERSION "${HISDF_PACKAGE_VERSION}")
set(PACKAGE_VERSION_COMPATIBLE FALSE)
if(NOT PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
else()
  string(REGEX MATCHALL "[0-9]+" _have "${PACKAGE_VERSION}")
  list(GET _have 0 _have_major)
  list(GET _have 1 _have_minor)
  if(PACKAGE_FIND_VERSION_MAJOR EQUAL _have_major
     AND PACKAGE_FIND_VERSION_MINOR EQUAL _have_minor
     AND NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  endif()
  if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
  unset(_have)
  unset(_have_major)
  unset(_have_minor)
endif()
