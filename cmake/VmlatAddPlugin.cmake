# vmlat_add_plugin(): the one helper that builds a vmlat plugin, in this tree
# (plugins/<name>/CMakeLists.txt) and out of tree (installed by vmlat-dev,
# loaded by find_package(vmlat)). See docs/writing-plugins.md.
#
#   vmlat_add_plugin(<name> SOURCES a.cpp ... [LIBS ...]
#                    [OUTPUT_DIRECTORY dir] [INSTALL_DESTINATION dir | NO_INSTALL])
#
# Builds the module vmlat-plugin-<name>.so (the loader only looks at files
# named so) against vmlat::core, with hidden visibility so that only the two
# symbols VMLAT_PLUGIN exports are visible. The library lands in
# OUTPUT_DIRECTORY (default: ${VMLAT_PLUGIN_OUTPUT_DIR} when set, as in this
# tree, else <build dir>/plugins: run `vmlat --plugin-dir <build dir>/plugins`)
# and installs to INSTALL_DESTINATION (default: ${VMLAT_INSTALL_PLUGINDIR},
# lib/vmlat/plugins under the install prefix).

if(NOT DEFINED VMLAT_INSTALL_PLUGINDIR)
  set(VMLAT_INSTALL_PLUGINDIR lib/vmlat/plugins)
endif()

function(vmlat_add_plugin name)
  cmake_parse_arguments(P "NO_INSTALL" "OUTPUT_DIRECTORY;INSTALL_DESTINATION" "SOURCES;LIBS" ${ARGN})
  if(P_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "vmlat_add_plugin(${name}): unknown arguments ${P_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT P_SOURCES)
    message(FATAL_ERROR "vmlat_add_plugin(${name}): SOURCES is required")
  endif()
  if(NOT name MATCHES "^[a-z0-9][a-z0-9_-]*$")
    message(FATAL_ERROR "vmlat_add_plugin(${name}): a plugin name is lower-case letters, digits, '-' and '_'")
  endif()
  if(NOT TARGET vmlat::core)
    message(FATAL_ERROR "vmlat_add_plugin(${name}): vmlat::core is not defined; call find_package(vmlat) first")
  endif()
  set(output_dir ${P_OUTPUT_DIRECTORY})
  if(NOT output_dir)
    if(DEFINED VMLAT_PLUGIN_OUTPUT_DIR)
      set(output_dir ${VMLAT_PLUGIN_OUTPUT_DIR})
    else()
      set(output_dir ${CMAKE_BINARY_DIR}/plugins)
    endif()
  endif()
  set(target vmlat-plugin-${name})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE vmlat::core ${P_LIBS})
  target_compile_features(${target} PRIVATE cxx_std_20)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${output_dir}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(NOT P_NO_INSTALL)
    set(destination ${P_INSTALL_DESTINATION})
    if(NOT destination)
      set(destination ${VMLAT_INSTALL_PLUGINDIR})
    endif()
    install(TARGETS ${target} LIBRARY DESTINATION ${destination})
  endif()
endfunction()
