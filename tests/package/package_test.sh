#!/usr/bin/env bash
# The packages as a user gets them: cpack from an existing build tree, lintian
# (no errors), dpkg -i of vmlat and vmlat-dev on this machine, the installed
# /usr/bin/vmlat (plugins, a short host cell with the packaged plan), the
# out-of-tree example (examples/nsbox) built against the installed vmlat-dev
# and run by the installed vmlat, the relocatable .tar.gz (its vmlat and its
# SDK, with the example built against it), then dpkg -r and a
# check that nothing of ours is left. Needs root (dpkg, SCHED_FIFO, unshare);
# exits 77 (skipped) without it. The packages are removed on any exit (trap).
#
# Usage: package_test.sh --build-dir DIR --source-dir DIR [--install-prefix DIR] [--keep DIR]
#   --install-prefix  the build's CMAKE_INSTALL_PREFIX: the packaged vmlat also
#                     searches <prefix>/lib/vmlat/plugins (site plugins); the test
#                     installs the example there and removes it (not when /usr)
#   --keep DIR        copy the packages, lintian's output and the logs to DIR
set -euo pipefail

build_dir="" source_dir="" install_prefix="" keep_dir=""
while (($#)); do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --source-dir) source_dir=$2; shift 2 ;;
    --install-prefix) install_prefix=$2; shift 2 ;;
    --keep) keep_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package_test: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$build_dir" && -n "$source_dir" ]] || { echo "package_test: --build-dir and --source-dir are required" >&2; exit 2; }
build_dir=$(cd "$build_dir" && pwd)
source_dir=$(cd "$source_dir" && pwd)

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step_start=$SECONDS
step() { echo; echo "== [$((SECONDS - step_start))s] $*"; }

[[ $(id -u) == 0 ]] || skip "needs root (dpkg -i, SCHED_FIFO probes, unshare)"
for tool in cpack dpkg dpkg-deb dpkg-query lintian cmake ninja jq; do
  command -v "$tool" >/dev/null || skip "$tool not installed (ci/bootstrap installs it)"
done
[[ -f "$build_dir/CPackConfig.cmake" ]] || fail "$build_dir/CPackConfig.cmake missing: configure the tree first"
for p in vmlat vmlat-dev; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    skip "package $p is already installed on this machine; this test installs and removes its own (dpkg -r $p to let it run)"
  fi
done

work=$(mktemp -d /tmp/vmlat-package-test.XXXXXX)
installed=0
site_plugin=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n "$site_plugin" && -e "$site_plugin" ]]; then
    rm -f "$site_plugin"
    rmdir -p --ignore-fail-on-non-empty "$(dirname "$site_plugin")" 2>/dev/null
  fi
  if ((installed)); then
    echo "package_test: removing the packages (cleanup)"
    dpkg -P vmlat-dev vmlat >/dev/null 2>&1
  fi
  if [[ -n "$keep_dir" ]]; then
    mkdir -p "$keep_dir" && cp -a "$work"/pkg/*.deb "$work"/pkg/*.tar.gz "$work"/*.log "$keep_dir"/ 2>/dev/null
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ packages
step "cpack (DEB, TGZ) from $build_dir"
cpack --config "$build_dir/CPackConfig.cmake" -B "$work/pkg" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack failed"; }
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build_dir/CPackConfig.cmake")
arch=$(dpkg --print-architecture)
deb="$work/pkg/vmlat_${version}_${arch}.deb"
dev_deb="$work/pkg/vmlat-dev_${version}_${arch}.deb"
tgz=$(ls "$work"/pkg/vmlat-"$version"-*.tar.gz)
for f in "$deb" "$dev_deb" "$tgz"; do [[ -f "$f" ]] || fail "cpack made no $f"; done
ls -l "$work"/pkg/*.deb "$work"/pkg/*.tar.gz

step "lintian (errors fail the test; warnings and notes are listed)"
lintian --fail-on error --display-info "$deb" "$dev_deb" >"$work/lintian.log" 2>&1 || lintian_rc=$?
grep -v '^running with root' "$work/lintian.log" || true
[[ ${lintian_rc:-0} == 0 ]] || fail "lintian reported errors (exit ${lintian_rc})"
echo "lintian: $(grep -c '^E:' "$work/lintian.log" || true) errors, $(grep -c '^W:' "$work/lintian.log" || true) warnings"

step "control fields and contents"
depends=$(dpkg-deb -f "$deb" Depends)
echo "vmlat Depends: $depends"
# dpkg-shlibdeps computed these from the binaries: the C++ runtime at least.
for lib in libc6 libstdc++6; do
  [[ ",$depends," == *" $lib "* || ",$depends," == *",$lib "* ]] || fail "Depends lacks $lib: $depends"
done
dev_depends=$(dpkg-deb -f "$dev_deb" Depends)
[[ "$dev_depends" == *"vmlat (= $version)"* ]] || fail "vmlat-dev does not depend on vmlat (= $version): $dev_depends"
dpkg-deb -c "$deb" >"$work/contents-long.txt"
awk '{print $6}' "$work/contents-long.txt" | sed 's|^\./|/|' >"$work/contents.txt"
dpkg-deb -c "$dev_deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/dev-contents.txt"
expect_in() {
  local list=$1; shift
  for path in "$@"; do grep -qxF "$path" "$list" || fail "$path is not in $(basename "$list" .txt) of the package"; done
}
expect_in "$work/contents.txt" /usr/bin/vmlat /usr/lib/vmlat/core/libvmlat.so.0 \
  /usr/libexec/vmlat/vmlat-probe /usr/libexec/vmlat/vmlat-guest-agent /usr/libexec/vmlat/build-guest \
  /usr/share/vmlat/plans/quickstart.toml /usr/share/vmlat/reports/README.md /usr/share/vmlat/ci/README.md \
  /usr/share/man/man1/vmlat.1.gz /usr/share/doc/vmlat/copyright /usr/share/doc/vmlat/docs/writing-plugins.md
[[ ! -d "$source_dir/ansible" ]] || grep -q '^/usr/share/vmlat/ansible/' "$work/contents.txt" || fail "ansible/ is not packaged"
grep -q '^/usr/share/vmlat/reports/grafana/.*\.json$' "$work/contents.txt" || fail "no Grafana dashboard packaged"
expect_in "$work/contents.txt" /usr/share/vmlat/ci/vmlat-ci-gate /usr/share/vmlat/ci/gitlab-ci.yml \
  /usr/share/vmlat/ci/github-workflow.yml /usr/share/vmlat/ci/Jenkinsfile /usr/share/vmlat/ci/vmlat-fanout \
  /usr/share/vmlat/ci/gitlab-ci-fanout.yml /usr/share/vmlat/ci/github-workflow-fanout.yml /usr/share/vmlat/ci/Jenkinsfile.fanout
for script in vmlat-ci-gate vmlat-fanout; do
  grep -Eq "^-rwxr-xr-x .* \./usr/share/vmlat/ci/$script\$" "$work/contents-long.txt" || fail "$script is not executable in the package"
done
# Every plugin the build made is packaged.
plugins=()
for so in "$build_dir"/plugins/vmlat-plugin-*.so; do
  name=$(basename "$so" .so); plugins+=("${name#vmlat-plugin-}")
  expect_in "$work/contents.txt" "/usr/lib/vmlat/plugins/$(basename "$so")"
done
((${#plugins[@]})) || fail "no plugins in $build_dir/plugins"
expect_in "$work/dev-contents.txt" /usr/include/vmlat/plugin.hpp /usr/include/vmlat/version.hpp \
  /usr/lib/vmlat/core/libvmlat.so /usr/lib/cmake/vmlat/vmlatConfig.cmake \
  /usr/lib/cmake/vmlat/vmlatConfigVersion.cmake /usr/lib/cmake/vmlat/VmlatAddPlugin.cmake
echo "runtime: $(wc -l <"$work/contents.txt") entries, plugins: ${plugins[*]}; dev: $(wc -l <"$work/dev-contents.txt") entries"

# ------------------------------------------------------------------ install
step "dpkg -i vmlat vmlat-dev"
installed=1
dpkg -i "$deb" "$dev_deb" >"$work/dpkg.log" 2>&1 ||
  { cat "$work/dpkg.log"; fail "dpkg -i failed (a missing dependency? apt-get install ./$(basename "$deb") resolves them from Debian)"; }
dpkg -L vmlat vmlat-dev | sort -u >"$work/owned.txt"

cd "$work"  # nowhere near a build tree
unset VMLAT_PLUGIN_PATH VMLAT_LIBEXEC_PATH
abi=$(sed -n 's/^#define VMLAT_ABI_VERSION \([0-9]*\)$/\1/p' "$source_dir/core/include/vmlat/version.hpp")

step "installed vmlat: version, man page, plugins with no flag"
/usr/bin/vmlat version | tee "$work/version.log"
grep -q "vmlat $version (plugin ABI $abi)" "$work/version.log" || fail "vmlat version does not say $version / ABI $abi"
man -w vmlat | grep -qx /usr/share/man/man1/vmlat.1.gz || fail "man -w vmlat does not find the packaged page"
/usr/bin/vmlat plugins | tee "$work/plugins.log"
for p in "${plugins[@]}"; do
  grep -Eq "^$p +[a-z]+ +[^ ]+ +$abi +/usr/lib/vmlat/plugins/vmlat-plugin-$p\.so$" "$work/plugins.log" ||
    fail "vmlat plugins does not list $p from /usr/lib/vmlat/plugins with ABI $abi"
done
! grep -q "$build_dir" "$work/plugins.log" || fail "the installed vmlat looked into the build tree"

step "installed vmlat: a short host cell of the packaged quickstart plan"
/usr/bin/vmlat validate /usr/share/vmlat/plans/quickstart.toml
set +e
/usr/bin/vmlat run /usr/share/vmlat/plans/quickstart.toml --only workload=none --only probe=native \
  --duration 1s --quiet --results "$work/results" --junit "$work/junit.xml" 2>&1 | tee "$work/run-host.log"
rc=${PIPESTATUS[0]}
set -e
[[ $rc == 0 ]] || fail "vmlat run of the packaged quickstart plan exited $rc"
result=$(ls "$work"/results/latest/cells/*/result.json)
[[ $(wc -l <<<"$result") == 1 ]] || fail "expected one cell, got: $result"
jq -e '.status == "measured" and .merged.stats.samples > 0' "$result" >/dev/null || fail "the host cell was not measured: $result"
jq -e '.facts.probe.argv[0] == "/usr/libexec/vmlat/vmlat-probe"' "$result" >/dev/null ||
  fail "the probe was not the packaged vmlat-probe: $(jq -c .facts.probe.argv "$result")"
grep -q '<testcase' "$work/junit.xml" || fail "no JUnit testcase written"

# ------------------------------------------------------------------ out of tree
step "examples/nsbox built against the installed vmlat-dev"
diff -r -x build "$source_dir/examples" /usr/share/doc/vmlat-dev/examples >/dev/null ||
  fail "/usr/share/doc/vmlat-dev/examples differs from the source tree's examples/"
cp -r "$source_dir/examples/nsbox" "$work/nsbox"
rm -rf "$work/nsbox/build"
# A clean environment: nothing points CMake at the build tree.
env -u CMAKE_PREFIX_PATH cmake -S "$work/nsbox" -B "$work/nsbox/build" -G Ninja >"$work/example-cmake.log" 2>&1 ||
  { cat "$work/example-cmake.log"; fail "configuring the example failed"; }
found=$(sed -n 's/^vmlat_DIR:PATH=//p' "$work/nsbox/build/CMakeCache.txt")
[[ "$found" == /usr/lib/cmake/vmlat ]] || fail "find_package(vmlat) used $found, not the installed /usr/lib/cmake/vmlat"
cmake --build "$work/nsbox/build" >"$work/example-build.log" 2>&1 ||
  { cat "$work/example-build.log"; fail "building the example failed"; }
example_so="$work/nsbox/build/plugins/vmlat-plugin-nsbox.so"
[[ -f "$example_so" ]] || fail "the example built no $example_so"

step "installed vmlat loads the example and measures a cell with it"
/usr/bin/vmlat plugins --plugin-dir "$work/nsbox/build/plugins" | tee "$work/plugins-example.log"
grep -Eq "^nsbox +backend +0\.1\.0 +$abi +.*vmlat-plugin-nsbox\.so$" "$work/plugins-example.log" ||
  fail "vmlat plugins does not list the example"
set +e
(cd "$work/nsbox" && /usr/bin/vmlat run nsbox.toml --plugin-dir build/plugins --only backend=nsbox --only workload=none \
  --duration 1s --quiet --results "$work/results-nsbox") 2>&1 | tee "$work/run-nsbox.log"
rc=${PIPESTATUS[0]}
set -e
[[ $rc == 0 ]] || fail "vmlat run of the example plan exited $rc"
result=$(ls "$work"/results-nsbox/latest/cells/nsbox-*/result.json)
jq -e '.status == "measured" and .merged.stats.samples > 0' "$result" >/dev/null || fail "the nsbox cell was not measured"
jq -e '.plugins.backend.plugin == "nsbox" and (.facts.backend.applied.uts.box != .facts.backend.applied.uts.host)' \
  "$result" >/dev/null || fail "the cell did not run in the example's namespaces: $(jq -c .facts.backend "$result")"

if [[ -n "$install_prefix" && "$install_prefix" != /usr && "$install_prefix" != /usr/ ]]; then
  step "the example installed to $install_prefix/lib/vmlat/plugins is found with no flag"
  site_plugin="$install_prefix/lib/vmlat/plugins/vmlat-plugin-nsbox.so"
  [[ ! -e "$site_plugin" ]] || { site_plugin=""; fail "$install_prefix/lib/vmlat/plugins/vmlat-plugin-nsbox.so already exists"; }
  cmake --install "$work/nsbox/build" --prefix "$install_prefix" >/dev/null
  [[ -f "$site_plugin" ]] || fail "cmake --install put no $site_plugin"
  /usr/bin/vmlat plugins | grep -Eq "^nsbox +backend .* $site_plugin$" || fail "the installed vmlat does not find $site_plugin"
  rm -f "$site_plugin"; rmdir -p --ignore-fail-on-non-empty "$(dirname "$site_plugin")" 2>/dev/null || true
  site_plugin=""
fi

# ------------------------------------------------------------------ tarball
step "the .tar.gz runs where it is unpacked"
mkdir "$work/tgz" && tar -xzf "$tgz" -C "$work/tgz"
tree_root=$(ls -d "$work"/tgz/vmlat-*)
"$tree_root/bin/vmlat" plugins >"$work/plugins-tgz.log"
for p in "${plugins[@]}"; do
  grep -Eq "^$p .* $tree_root/lib/vmlat/plugins/vmlat-plugin-$p\.so$" "$work/plugins-tgz.log" ||
    { cat "$work/plugins-tgz.log"; fail "the unpacked tree's vmlat does not find its own $p plugin"; }
done
[[ -f "$tree_root/include/vmlat/plugin.hpp" && -f "$tree_root/lib/cmake/vmlat/vmlatConfig.cmake" ]] ||
  fail "the tarball lacks the SDK"
# The tarball is an SDK too: the example builds against it and its vmlat loads it.
cmake -S "$work/nsbox" -B "$work/nsbox-tgz" -G Ninja -DCMAKE_PREFIX_PATH="$tree_root" >"$work/example-tgz.log" 2>&1 &&
  cmake --build "$work/nsbox-tgz" >>"$work/example-tgz.log" 2>&1 ||
  { cat "$work/example-tgz.log"; fail "building the example against the unpacked tarball failed"; }
found=$(sed -n 's/^vmlat_DIR:PATH=//p' "$work/nsbox-tgz/CMakeCache.txt")
[[ "$found" == "$tree_root/lib/cmake/vmlat" ]] || fail "find_package(vmlat) used $found, not the tarball's"
"$tree_root/bin/vmlat" plugins --plugin-dir "$work/nsbox-tgz/plugins" | grep -Eq "^nsbox +backend " ||
  fail "the unpacked vmlat does not load the example built against it"
echo "unpacked tree at $tree_root: ${#plugins[@]} plugins found beside its vmlat; the example builds against it"

# ------------------------------------------------------------------ remove
step "dpkg -r vmlat-dev vmlat"
dpkg -r vmlat-dev vmlat >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log"; fail "dpkg -r failed"; }
installed=0
for p in vmlat vmlat-dev; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ -z "$status" || "$status" == *not-installed* ]] || fail "$p is '$status' after dpkg -r (maintainer scripts or conffiles left)"
done
left=0
while read -r path; do
  [[ -e "$path" && ! -d "$path" ]] && { echo "left behind: $path"; left=1; }
done <"$work/owned.txt"
for dir in /usr/lib/vmlat /usr/libexec/vmlat /usr/share/vmlat /usr/include/vmlat /usr/lib/cmake/vmlat \
           /usr/share/doc/vmlat /usr/share/doc/vmlat-dev; do
  [[ ! -e "$dir" ]] || { echo "left behind: $dir"; left=1; }
done
((left == 0)) || fail "files of the packages are left after dpkg -r"
# Anything still running from the packaged files (their exe is now deleted).
leftover=""
for exe in /proc/[0-9]*/exe; do
  target=$(readlink "$exe" 2>/dev/null) || continue
  [[ "$target" =~ ^/usr/(bin/vmlat|libexec/vmlat/) ]] && leftover+=" ${exe#/proc/}:$target"
done
[[ -z "$leftover" ]] || fail "processes left behind:$leftover"

echo
echo "package_test: all checks passed in $((SECONDS - step_start))s"
