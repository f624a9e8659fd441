#!/usr/bin/env python3
"""Golden result files: for FIXED outcomes (tests/test_plugins/fixed_probe.cpp
measures nothing and returns known histograms), the bytes vmlat writes into
run.json, every result.json and the JUnit file are known in advance.

A run of tests/golden/run/plan.toml gives every kind of cell outcome: gates
passed, failed and reproduced on a retest, flaky, a named series gate that
passes and one that fails, an infrastructure error in boot, a cell not
runnable here; then `--resume` keeps the measured and skipped cells and
measures the broken one again. What differs from run to run (times, run
ids, pids, paths, this machine's facts and kernel) is replaced by a
placeholder; everything else must equal tests/golden/run/expected/ byte for
byte, and every file must be exactly what a 2-space JSON dump of its
content is (so the comparison of the parsed documents is a comparison of
bytes). --update rewrites the expected files (review the diff).

Usage: golden_it.py --vmlat build/vmlat --plugin-dir build/test-plugins [--update]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASE = os.path.join(HERE, "run")
VOLATILE = "<volatile>"


def placeholder(doc, path):
    """Replaces the value at `path` (keys; '*' for every member) if present."""
    if not path:
        return VOLATILE
    key, rest = path[0], path[1:]
    if key == "*":
        items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
        for k, v in list(items):
            doc[k] = placeholder(v, rest)
    elif isinstance(doc, dict) and key in doc:
        doc[key] = placeholder(doc[key], rest)
    return doc


RESULT_VOLATILE = [
    ["run_id"], ["host_facts"], ["plugins", "*", "file"], ["facts", "backend", "target"],
    ["timings", "started"], ["timings", "finished"], ["timings", "phases", "*"],
]
RUN_VOLATILE = [
    ["run_id"], ["started"], ["finished"], ["pid"], ["command_line"], ["plan", "path"], ["hosts"],
    ["resumed", "*", "at"], ["resumed", "*", "command_line"],
]


def machine_words():
    """This machine's kernel release and preemption model as they appear in messages."""
    words = [os.uname().release]
    return words


def scrub_text(text, run_ids):
    for word in machine_words():
        text = text.replace(word, "<kernel>")
    text = re.sub(r"\(PREEMPT[A-Z_]*\)", "(<preempt model>)", text)
    for rid in run_ids:
        text = text.replace(rid, "<run-id>")
    return text


def normalised_json(path, volatile, run_ids):
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    doc = json.loads(raw)
    # The file is exactly the 2-space dump of its content: comparing the
    # parsed documents below compares the bytes.
    dumped = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if dumped != raw:
        for i, (a, b) in enumerate(zip(dumped, raw)):
            if a != b:
                raise SystemExit(f"golden: {path} is not a plain 2-space JSON dump near byte {i}: "
                                 f"{raw[max(0, i - 60):i + 60]!r}")
        raise SystemExit(f"golden: {path} is not a plain 2-space JSON dump (length {len(raw)} vs {len(dumped)})")
    for p in volatile:
        placeholder(doc, p)
    return scrub_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", run_ids)


def normalised_junit(path, run_ids):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r'time="[0-9.e+-]+"', 'time="<volatile>"', text)
    text = re.sub(r'timestamp="[^"]*"', 'timestamp="<volatile>"', text)
    return scrub_text(text, run_ids)


def collect(results, junit, tag):
    """{expected file name: normalised text} of one run directory."""
    run_dir = os.path.realpath(os.path.join(results, "latest"))
    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as f:
        run_id = json.load(f)["run_id"]
    out = {f"{tag}/run.json": normalised_json(os.path.join(run_dir, "run.json"), RUN_VOLATILE, [run_id])}
    for root, _, files in os.walk(run_dir):
        for name in sorted(files):
            if name == "result.json":
                rel = os.path.relpath(os.path.join(root, name), run_dir)
                out[f"{tag}/{rel}"] = normalised_json(os.path.join(root, name), RESULT_VOLATILE, [run_id])
    if junit:
        out[f"{tag}/junit.xml"] = normalised_junit(junit, [run_id])
    return out


def run(vmlat, plugin_dir, cwd, args, expect):
    p = subprocess.run([vmlat] + args + ["--plugin-dir", plugin_dir, "--quiet"], cwd=cwd, capture_output=True, text=True,
                       timeout=300)
    if p.returncode != expect:
        raise SystemExit(f"golden: vmlat {' '.join(args)}: exit {p.returncode}, expected {expect}\n{p.stdout}\n{p.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--update", action="store_true", help="rewrite tests/golden/run/expected from this run")
    args = ap.parse_args()
    vmlat, plugin_dir = os.path.abspath(args.vmlat), os.path.abspath(args.plugin_dir)
    if os.path.exists("/sys/kernel/realtime"):
        print("golden: this machine runs a PREEMPT_RT kernel: the case's 'not runnable here' cell would be measured")
        sys.exit(77)

    work = tempfile.mkdtemp(prefix="vmlat-golden-")
    try:
        shutil.copy(os.path.join(CASE, "plan.toml"), work)
        run(vmlat, plugin_dir, work, ["run", "plan.toml", "--junit", "junit.xml"], 1)
        got = collect(os.path.join(work, "results"), os.path.join(work, "junit.xml"), "first")
        # The broken cell is measured again (and breaks again); the others are kept.
        os.remove(os.path.join(work, "junit.xml"))
        run(vmlat, plugin_dir, work, ["run", "plan.toml", "--resume", "results/latest", "--junit", "junit.xml"], 1)
        got.update(collect(os.path.join(work, "results"), os.path.join(work, "junit.xml"), "resumed"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    expected_dir = os.path.join(CASE, "expected")
    if args.update:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for name, text in got.items():
            os.makedirs(os.path.dirname(os.path.join(expected_dir, name)), exist_ok=True)
            with open(os.path.join(expected_dir, name), "w", encoding="utf-8") as f:
                f.write(text)
        print(f"golden: wrote {len(got)} expected file(s) into {expected_dir}")
        return
    failures = 0
    expected_names = set()
    for root, _, files in os.walk(expected_dir):
        for name in files:
            expected_names.add(os.path.relpath(os.path.join(root, name), expected_dir))
    for name in sorted(expected_names | set(got)):
        path = os.path.join(expected_dir, name)
        if name not in got:
            print(f"FAIL {name}: expected, but vmlat did not write it")
            failures += 1
            continue
        if name not in expected_names:
            print(f"FAIL {name}: written by vmlat, not in expected/ (run with --update and review)")
            failures += 1
            continue
        with open(path, encoding="utf-8") as f:
            want = f.read()
        if want != got[name]:
            failures += 1
            print(f"FAIL {name} differs:")
            import difflib
            for line in difflib.unified_diff(want.splitlines(), got[name].splitlines(), "expected", "now", lineterm="", n=2):
                print("   ", line)
        else:
            print(f"ok   {name}")
    print(f"golden: {len(got)} file(s), {failures} differ")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
