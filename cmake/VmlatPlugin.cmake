# Helpers for plugins and tests in this tree.
#
#   vmlat_add_plugin(<name> SOURCES a.cpp ... [LIBS ...])
#     builds vmlat-plugin-<name>.so into build/plugins and installs it
#     (cmake/VmlatAddPlugin.cmake: the same helper vmlat-dev installs for
#     out-of-tree plugins).
#   vmlat_add_test(<name> SOURCES a.cpp ... [LIBS ...] [LABELS ...] [HEAVY filter])
#     a GoogleTest executable linked with vmlat::core, registered with CTest;
#     the TESTs matching the gtest filter HEAVY are labelled heavy instead
#     (outside CI's default set: README.md, "Tests").

include(${CMAKE_CURRENT_LIST_DIR}/VmlatAddPlugin.cmake)

function(vmlat_add_test name)
  if(NOT VMLAT_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(T "" "HEAVY" "SOURCES;LIBS;LABELS;PROPERTIES" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE vmlat::core GTest::gtest GTest::gtest_main ${T_LIBS})
  # tests/support: shared test helpers (e.g. plugin_harness.hpp)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  target_compile_definitions(${name} PRIVATE
    VMLAT_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    VMLAT_BINARY_DIR="${CMAKE_BINARY_DIR}")
  # A test's own sources (GoogleTest macros, nlohmann::json, fixtures) at
  # VMLAT_TEST_OPTIMIZE: -O1 compiles them in ~60% of -O2's time (e.g.
  # tests/e2e/cli_test.cpp: 12.2 s against 20.6 s) and they are half of the
  # build; what they test (core, plugins) keeps the build type's flags.
  if(VMLAT_TEST_OPTIMIZE AND CMAKE_BUILD_TYPE MATCHES "^(Release|RelWithDebInfo)$")
    target_compile_options(${name} PRIVATE ${VMLAT_TEST_OPTIMIZE})
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(T_HEAVY)
    gtest_discover_tests(${name} TEST_FILTER "-${T_HEAVY}" TEST_LIST ${name}_TESTS
                         PROPERTIES LABELS "${T_LABELS}" ${T_PROPERTIES} DISCOVERY_TIMEOUT 60)
    gtest_discover_tests(${name} TEST_FILTER "${T_HEAVY}" TEST_LIST ${name}_HEAVY_TESTS
                         PROPERTIES LABELS heavy ${T_PROPERTIES} DISCOVERY_TIMEOUT 60)
  else()
    gtest_discover_tests(${name} PROPERTIES LABELS "${T_LABELS}" ${T_PROPERTIES} DISCOVERY_TIMEOUT 60)
  endif()
endfunction()
