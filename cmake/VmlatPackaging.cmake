# Installation beyond the targets, vmlat's CMake package, and CPack.
#
#   cpack --config build/CPackConfig.cmake -B DIR
#
# makes DIR/vmlat_<version>_<arch>.deb (runtime), DIR/vmlat-dev_<version>_<arch>.deb
# (headers, libvmlat.so, CMake package) and DIR/vmlat-<version>-Linux.tar.gz
# (both, relocatable: bin/vmlat finds ../lib/vmlat/plugins wherever it is
# unpacked). Installed layout, relative to the prefix (/usr for the .deb):
#
#   bin/vmlat
#   lib/vmlat/core/libvmlat.so.0     private core library (RPATH $ORIGIN/../lib/vmlat/core)
#   lib/vmlat/plugins/               vmlat-plugin-*.so
#   libexec/vmlat/                   vmlat-probe, vmlat-guest-agent, build-guest
#   share/vmlat/                     plans/, reports/, ansible/, ci/
#   share/doc/vmlat/                 README.md, docs, plugin READMEs, copyright
#   share/man/man1/vmlat.1.gz        generated from `vmlat help`
#   include/vmlat/, lib/cmake/vmlat/ (vmlat-dev)
#
# The components: runtime (the default, CMakeLists.txt) and dev.

include(CMakePackageConfigHelpers)

# --- helpers and data of the runtime package ---------------------------------

# The guest agent is baked into guest images by build-guest; the kvm plugin
# looks for it in libexec/vmlat like vmlat-probe.
if(TARGET vmlat-guest-agent)
  install(TARGETS vmlat-guest-agent RUNTIME DESTINATION ${VMLAT_INSTALL_LIBEXECDIR} COMPONENT runtime)
endif()

install(DIRECTORY ${PROJECT_SOURCE_DIR}/plans/ DESTINATION ${VMLAT_INSTALL_DATADIR}/plans COMPONENT runtime)
# reports/: dashboards, alert rules and report assets; any renderer code kept
# there is compiled into vmlat, not shipped as data.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/reports/ DESTINATION ${VMLAT_INSTALL_DATADIR}/reports COMPONENT runtime
        PATTERN "CMakeLists.txt" EXCLUDE PATTERN "*.cpp" EXCLUDE PATTERN "*.hpp" EXCLUDE PATTERN "*.h" EXCLUDE)
foreach(optional_dir ansible)
  if(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/${optional_dir})
    # USE_SOURCE_PERMISSIONS: the directory's scripts stay executable.
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/${optional_dir}/ DESTINATION ${VMLAT_INSTALL_DATADIR}/${optional_dir}
            COMPONENT runtime USE_SOURCE_PERMISSIONS
            PATTERN "__pycache__" EXCLUDE PATTERN "*.pyc" EXCLUDE PATTERN ".*" EXCLUDE)
  endif()
endforeach()
# CI templates for users (ci/templates/README.md) and the script they call.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/ci/templates/ DESTINATION ${VMLAT_INSTALL_DATADIR}/ci
        COMPONENT runtime USE_SOURCE_PERMISSIONS PATTERN "__pycache__" EXCLUDE)

# The documentation `vmlat help` points to.
set(VMLAT_INSTALL_DOCDIR ${CMAKE_INSTALL_DATADIR}/doc/vmlat)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${VMLAT_INSTALL_DOCDIR} COMPONENT runtime)
file(GLOB vmlat_doc_pages ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${vmlat_doc_pages} DESTINATION ${VMLAT_INSTALL_DOCDIR}/docs COMPONENT runtime)
file(GLOB vmlat_plugin_readmes RELATIVE ${PROJECT_SOURCE_DIR}/plugins ${PROJECT_SOURCE_DIR}/plugins/*/README.md)
foreach(readme IN LISTS vmlat_plugin_readmes)
  get_filename_component(plugin_name ${readme} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/plugins/${readme} DESTINATION ${VMLAT_INSTALL_DOCDIR}/plugins
          RENAME ${plugin_name}.md COMPONENT runtime)
endforeach()

# vmlat(1), generated from the built binary's help at build time.
set(vmlat_manpage ${CMAKE_BINARY_DIR}/man/vmlat.1.gz)
add_custom_command(OUTPUT ${vmlat_manpage}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
  COMMAND ${CMAKE_COMMAND} -DVMLAT=$<TARGET_FILE:vmlat> -DOUT=${vmlat_manpage}
          -P ${PROJECT_SOURCE_DIR}/packaging/manpage.cmake
  DEPENDS vmlat ${PROJECT_SOURCE_DIR}/packaging/manpage.cmake
  COMMENT "Generating man/vmlat.1.gz from vmlat help")
add_custom_target(vmlat-manpage ALL DEPENDS ${vmlat_manpage})
install(FILES ${vmlat_manpage} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)

# Debian wants copyright and a changelog in every package's doc directory.
configure_file(${PROJECT_SOURCE_DIR}/packaging/changelog.in ${CMAKE_BINARY_DIR}/packaging/changelog @ONLY)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/packaging/changelog.gz
  COMMAND gzip -9nkf ${CMAKE_BINARY_DIR}/packaging/changelog
  DEPENDS ${CMAKE_BINARY_DIR}/packaging/changelog)
add_custom_target(vmlat-changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/packaging/changelog.gz)
foreach(component runtime dev)
  set(doc_dir ${VMLAT_INSTALL_DOCDIR})
  if(component STREQUAL "dev")
    set(doc_dir ${CMAKE_INSTALL_DATADIR}/doc/vmlat-dev)
  endif()
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/copyright ${CMAKE_BINARY_DIR}/packaging/changelog.gz
          DESTINATION ${doc_dir} COMPONENT ${component})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/packaging/lintian-overrides/vmlat
        DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides COMPONENT runtime)

# --- the CMake package (vmlat-dev) -------------------------------------------

file(STRINGS ${PROJECT_SOURCE_DIR}/core/include/vmlat/version.hpp abi_line
     REGEX "^#define VMLAT_ABI_VERSION [0-9]+")
string(REGEX REPLACE ".* ([0-9]+)$" "\\1" VMLAT_ABI_VERSION "${abi_line}")

install(EXPORT vmlatTargets NAMESPACE vmlat:: DESTINATION ${VMLAT_INSTALL_CMAKEDIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/vmlatConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/vmlatConfig.cmake
  INSTALL_DESTINATION ${VMLAT_INSTALL_CMAKEDIR}
  PATH_VARS VMLAT_INSTALL_PLUGINDIR CMAKE_INSTALL_BINDIR)
# 0.x: a minor release may change the plugin API.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/vmlatConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/vmlatConfig.cmake ${CMAKE_BINARY_DIR}/cmake/vmlatConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/VmlatAddPlugin.cmake
        DESTINATION ${VMLAT_INSTALL_CMAKEDIR} COMPONENT dev)
# The out-of-tree example, next to the SDK it is built with.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/vmlat-dev/examples
        COMPONENT dev PATTERN "build" EXCLUDE)

# --- CPack --------------------------------------------------------------------

set(CPACK_PACKAGE_NAME vmlat)
set(CPACK_PACKAGE_VENDOR "vmlat maintainers")
set(CPACK_PACKAGE_CONTACT "vmlat maintainers <maintainers@users.noreply.r-seed-e839423c.example>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR "DEB;TGZ")
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/packaging/cpack-options.cmake)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_STRIP_FILES ON)
set(CPACK_SOURCE_IGNORE_FILES "/build/;/\\\\.git/")

# One relocatable tarball with everything.
set(CPACK_ARCHIVE_COMPONENT_INSTALL OFF)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# libvmlat.so.0 is private (lib/vmlat/core): the plugins find it in the vmlat
# process, dpkg-shlibdeps finds it here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR})
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME vmlat)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION utils)
# The tools the plugins drive: cyclictest and stress-ng for the default plan,
# QEMU and the pieces of a guest image for the kvm backend.
# Helper scripts in libexec (xen-lab, and the benches' kin) are Python 3;
# dpkg-shlibdeps adds the libraries the binaries link.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "python3")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_RECOMMENDS "rt-tests, stress-ng")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SUGGESTS
    "qemu-system-x86, busybox-static, cpio, zstd, xz-utils, jq, ansible, prometheus-pushgateway")
# The first line of a description is the package's synopsis.
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
"real-time latency measurement in VMs and on bare metal, as CI gates
vmlat measures real-time scheduling latency (cyclictest-style) on bare metal
and inside virtual machines (QEMU/KVM, Xen), as declared in TOML test plans:
a matrix of backends, kernels, workloads (kernel stress) and periods. It
stores every cell's histogram, gates CI on worst cases and percentiles, and
exports to Prometheus. This package has the vmlat command, its plugins and
helpers, example plans, Grafana dashboards, Ansible roles and CI templates.")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME vmlat-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "vmlat (= ${PROJECT_VERSION}), libboost-dev (>= ${Boost_VERSION_MAJOR}.${Boost_VERSION_MINOR}), nlohmann-json3-dev (>= ${nlohmann_json_VERSION_MAJOR}.${nlohmann_json_VERSION_MINOR})")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "cmake, g++")
set(CPACK_COMPONENT_DEV_DESCRIPTION
"SDK for vmlat plugins built out of tree
The plugin API headers (vmlat/plugin.hpp and what it includes), the link to
libvmlat and a CMake package: an out-of-tree backend, workload or probe does
find_package(vmlat) and one vmlat_add_plugin() call. An example hypervisor
backend is in /usr/share/doc/vmlat-dev/examples.")

include(CPack)
