#!/usr/bin/env python3
"""The layering the design card asks for, checked on the sources (CTest
vmlat_layout, label unit):

- a plugin (plugins/<name>/) includes only its own files, the public API
  (core/include/vmlat) and plugins/common/ (the shared libraries), never
  another plugin's files nor core/src (its tests may use tests/support and
  core/src, as the plugin harness does);
- plugins/common/ includes only itself and the public API (and, in its
  tests, tests/support);
- the command line (core/cli) includes the application header (core/app)
  and the public API, no core/src header;
- the Xen backends are at plugins/xen-pv, plugins/xen-pvh, plugins/xen-hvm.

A quoted include is resolved as the compiler would, against the including
file's directory and the include directories that may serve it.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root):
    for dp, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("testdata",)]
        for f in files:
            if f.endswith((".cpp", ".hpp", ".h", ".cc")):
                yield os.path.join(dp, f)


def resolve(path, name, dirs):
    for d in [os.path.dirname(path)] + dirs:
        candidate = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(candidate):
            return candidate
    return None


def main():
    src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
    public = os.path.join(src, "core", "include")
    support = os.path.join(src, "tests", "support")
    common = os.path.join(src, "plugins", "common")
    problems = []
    checked = 0

    def check(path, allowed_roots, search):
        nonlocal checked
        with open(path, errors="replace") as f:
            text = f.read()
        for name in INCLUDE.findall(text):
            checked += 1
            found = resolve(path, name, search)
            if found is None:
                continue  # a system or generated header, or one of a test's own
            if not any(found == r or found.startswith(r + os.sep) for r in allowed_roots):
                problems.append(f"{os.path.relpath(path, src)}: includes {os.path.relpath(found, src)}")

    plugins = os.path.join(src, "plugins")
    every_plugin_dir = [dp for dp, _, _ in os.walk(plugins)]
    for name in sorted(os.listdir(plugins)):
        root = os.path.join(plugins, name)
        if not os.path.isdir(root):
            continue
        mine = [root]
        if name != "common":
            mine.append(common)
        # Every directory a build could put on the include path: a header of
        # another plugin must resolve to be caught.
        search = [public, support, os.path.join(src, "core", "src")] + every_plugin_dir
        for path in sources(root):
            # A plugin's tests may also use the test support and the core's
            # own headers (the plugin harness loads plugins as the core does).
            test_only = [support, os.path.join(src, "core", "src")] if os.sep + "tests" + os.sep in path else []
            allowed = ([common, public] if name == "common" else mine + [public]) + test_only
            check(path, allowed, [os.path.join(dp) for dp, _, _ in os.walk(root)] + search)
    cli = os.path.join(src, "core", "cli")
    for path in sources(cli):
        check(path, [cli, os.path.join(src, "core", "app"), public],
              [os.path.join(src, "core", "app"), public, os.path.join(src, "core", "src")])
    for backend in ("xen-pv", "xen-pvh", "xen-hvm"):
        if not os.path.isfile(os.path.join(plugins, backend, "CMakeLists.txt")):
            problems.append(f"plugins/{backend}/CMakeLists.txt: missing (the Xen backends live at plugins/xen-*)")
    for p in problems:
        print("FAIL " + p)
    print(f"layout: {checked} includes checked, {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
