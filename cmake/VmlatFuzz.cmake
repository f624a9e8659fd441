# The fuzz build (-DVMLAT_FUZZ=ON, see fuzz/README.md): clang, libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer over the core and every
# plugin, so that the plan fuzzer runs the real plugins' validation
# instrumented. Included before find_package(tomlplusplus): it defines that
# target itself.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "VMLAT_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++-14 "
                      "-DCMAKE_C_COMPILER=clang-14 (ci/fuzz does)")
endif()
if(NOT CMAKE_BUILD_TYPE STREQUAL "Fuzz")
  message(FATAL_ERROR "VMLAT_FUZZ needs -DCMAKE_BUILD_TYPE=Fuzz: optimised (-O1) but without NDEBUG, so that "
                      "assertions, TOML++'s among them, are checked")
endif()
# -gline-tables-only: file:line in every sanitizer report and crash stack at a
# fraction of full -g's compile time (the sanitized build is most of ci/fuzz).
set(CMAKE_CXX_FLAGS_FUZZ "-O1 -gline-tables-only" CACHE STRING "" FORCE)
set(CMAKE_C_FLAGS_FUZZ "-O1 -gline-tables-only" CACHE STRING "" FORCE)

set(VMLAT_SANITIZE -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)

# TOML++ header-only, so that it is instrumented with the rest (Debian's
# libtomlplusplus.so is not), with the two narrow workarounds of
# fuzz/toml_config.hpp for TOML++ 3.3 bugs the release build does not show.
add_library(tomlplusplus::tomlplusplus INTERFACE IMPORTED)
target_compile_definitions(tomlplusplus::tomlplusplus INTERFACE TOML_HEADER_ONLY=1)
target_compile_options(tomlplusplus::tomlplusplus INTERFACE
  "SHELL:-include ${CMAKE_CURRENT_LIST_DIR}/../fuzz/toml_config.hpp")

# Instruments one target of the tree: sanitizers, and libFuzzer's coverage
# counters (fuzzer-no-link) so that coverage in plugins guides the fuzzer too.
function(vmlat_fuzz_instrument target)
  target_compile_options(${target} PRIVATE ${VMLAT_SANITIZE} -fsanitize=fuzzer-no-link)
  target_link_options(${target} PRIVATE ${VMLAT_SANITIZE})
endfunction()
