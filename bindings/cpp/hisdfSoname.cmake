# hisdf_soname(VERSION OUT): the SONAME build.rs gives libhisdf.so for a
# package version: libhisdf.so.0.<minor> before 1.0 (each minor release is a
# new ABI), libhisdf.so.<major> after. The one CMake copy of that rule,
# installed beside hisdfConfig.cmake.
function(hisdf_soname version out)
  string(REGEX MATCHALL "[0-9]+" _parts "${version}")
  list(GET _parts 0 _major)
  list(GET _parts 1 _minor)
  if(_major EQUAL 0)
    set(${out} "libhisdf.so.0.${_minor}" PARENT_SCOPE)
  else()
    set(${out} "libhisdf.so.${_major}" PARENT_SCOPE)
  endif()
endfunction()
