#!/usr/bin/env python3
"""Benchmark: what one kvm cell of `vmlat run` costs over a plain shell script.

Alternates (A B A B ...) a one-cell `vmlat run` (kvm backend, nrt guest,
cyclictest in the guest) with bench/kvm_overhead.sh, which does the same QEMU
boot + cyclictest + read-back + shutdown in bash on the same guest image.
Prints per round and as medians:

  boot-to-first-sample  process start -> cyclictest started in the guest
                        (vmlat: the cell.log line "running cyclictest on guest")
  run total             process start -> process exit (--cells N: N cells in
                        one vmlat run against N runs of the script)
  overhead per cell     total / cells - measuring duration

and the vmlat/shell ratios against the target (1.10x). A benchmark, not a
test: exits 0 whatever the figures are; 1 if something could not run.
Needs root, qemu-system-x86_64 and a built tree (build/vmlat). Python 3
standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.10
CACHE = "/var/cache/vmlat/guests"  # the kvm backend's default cache, which the plan uses


def guest_image(build: Path, flavour: str) -> dict:
    cmd = [str(REPO / "plugins/common/guest/images/build-guest"), "--flavour", flavour, "--print-json",
           "--agent", str(build / "libexec/vmlat-guest-agent")]
    probe = build / "libexec/vmlat-probe"
    if probe.exists():
        cmd += ["--probe", str(probe)]
    return json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout)


def run_shell(image: dict, duration: int, period_us: int, cells: int) -> dict:
    t0 = time.time()
    first = None
    for _ in range(cells):
        out = subprocess.run([str(REPO / "bench/kvm_overhead.sh"), image["vmlinuz"], image["initramfs"],
                              str(duration), str(period_us)], check=True, stdout=subprocess.PIPE, text=True).stdout
        fields = dict(kv.split("=") for kv in out.split())
        if first is None:
            first = float(fields["t_first_sample"])
    return {"first_sample": first, "total": time.time() - t0}


PLAN = """[plan]
name = "kvm-bench"
duration = "{duration}s"
period = "{period_us}us"
cpus = "all"
[timeouts]
boot = "300s"
[matrix]
rep = [{reps}]
[backend.kvm]
image = "{flavour}"
vcpus = 2
memory_mb = 512
[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"
priority = 95
"""


def parse_ts(line: str) -> float:
    stamp = line.split(" ", 1)[0]
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def run_vmlat(build: Path, work: Path, duration: int, period_us: int, flavour: str, cells: int) -> dict:
    plan = work / "plan.toml"
    reps = ", ".join('"%d"' % (i + 1) for i in range(cells))
    plan.write_text(PLAN.format(duration=duration, period_us=period_us, flavour=flavour, reps=reps))
    results = work / "results"
    t0 = time.time()
    # A lock directory of its own: on a shared machine another vmlat run's
    # host lock would otherwise be waited for, which the shell never does.
    r = subprocess.run([str(build / "vmlat"), "run", str(plan), "--results", str(results),
                        "--lock-dir", str(work / "lock")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    total = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError("vmlat run exited %d:\n%s%s" % (r.returncode, r.stdout, r.stderr))
    run_dir = (results / "latest").resolve()
    first = None
    timings = {}
    for cell in sorted((run_dir / "cells").iterdir()):
        for line in (cell / "cell.log").read_text().splitlines():
            if "running cyclictest on guest" in line:
                first = min(first, parse_ts(line) - t0) if first is not None else parse_ts(line) - t0
        result = json.loads((cell / "result.json").read_text())
        if not timings or result["cell"]["index"] < timings["index"]:
            timings = dict(result["timings"]["phases"], index=result["cell"]["index"],
                           resolved=result.get("facts", {}).get("backend", {}).get("image", {}).get("resolved", "?"))
    if first is None:
        raise RuntimeError("no 'running cyclictest on guest' line in cell.log")
    return {"first_sample": first, "total": total, "phases": timings}


def ab_stamps(args, build: Path, image: dict) -> int:
    """Shell, vmlat without stamps, vmlat with stamps in every round: the before/after of stamps
    measured under the same load, which on a shared machine moves more than the difference."""
    print("guest %s, %d rounds: shell, vmlat without stamps, vmlat with stamps (order of the two alternates)" % (
        image["hash"], args.rounds))
    rows = {"shell": [], "no stamps": [], "stamps": []}
    try:
        for i in range(args.rounds):
            rows["shell"].append(run_shell(image, args.duration_s, args.period_us, args.cells))
            for variant in (("no stamps", "stamps") if i % 2 == 0 else ("stamps", "no stamps")):
                if variant == "no stamps":
                    Path(CACHE, ".stamps-%s.json" % args.flavour).unlink(missing_ok=True)
                with tempfile.TemporaryDirectory(prefix="vmlat-bench-kvm-") as work:
                    v = run_vmlat(build, Path(work), args.duration_s, args.period_us, args.flavour, args.cells)
                rows[variant].append(v)
            print("round %d: first sample shell %.2fs, vmlat without stamps %.2fs, with stamps %.2fs "
                  "(load %s)" % (i + 1, rows["shell"][-1]["first_sample"], rows["no stamps"][-1]["first_sample"],
                                 rows["stamps"][-1]["first_sample"], open("/proc/loadavg").read().split()[0]))
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        print("kvm_overhead: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print()
    print("%-22s %8s %12s %12s  ratios to the shell, target <= %.2fx" % ("median", "shell", "no stamps", "stamps", TARGET))
    for name, key in (("boot-to-first-sample", "first_sample"), ("run total", "total")):
        m = {k: statistics.median(r[key] for r in v) for k, v in rows.items()}
        print("%-22s %7.2fs %7.2fs %4.2fx %7.2fs %4.2fx" % (
            name, m["shell"], m["no stamps"], m["no stamps"] / m["shell"], m["stamps"], m["stamps"] / m["shell"]))
    m = {k: statistics.median(r["total"] for r in v) / args.cells - args.duration_s for k, v in rows.items()}
    print("%-22s %7.2fs %7.2fs %4.2fx %7.2fs %4.2fx" % (
        "overhead per cell", m["shell"], m["no stamps"], m["no stamps"] / m["shell"], m["stamps"], m["stamps"] / m["shell"]))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration-s", type=int, default=3)
    ap.add_argument("--period-us", type=int, default=1000)
    ap.add_argument("--flavour", default="nrt", choices=["nrt", "rt"])
    ap.add_argument("--cells", type=int, default=1,
                    help="cells per vmlat run (the shell script then runs that many times)")
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--no-stamps", action="store_true",
                    help="remove build-guest's stamps before each vmlat run: the kvm backend then re-checks "
                         "the image with build-guest while the guest boots (the path before stamps)")
    ap.add_argument("--ab-stamps", action="store_true",
                    help="each round: the shell, vmlat without build-guest's stamps and vmlat with them "
                         "(alternating their order), side by side under the same load")
    args = ap.parse_args()
    build = Path(args.build)
    try:
        image = guest_image(build, args.flavour)
    except (subprocess.CalledProcessError, OSError, ValueError) as e:
        print("kvm_overhead: cannot resolve the guest image: %s" % e, file=sys.stderr)
        return 1
    if args.ab_stamps:
        return ab_stamps(args, build, image)
    print("guest %s (%s), %d rounds of %d cell(s) of %ds cyclictest at %dus, shell then vmlat%s" % (
        image["hash"], image["kernel"]["release"], args.rounds, args.cells, args.duration_s, args.period_us,
        " (build-guest stamps removed before each vmlat run)" if args.no_stamps else ""))
    shell, vm = [], []
    try:
        for i in range(args.rounds):
            s = run_shell(image, args.duration_s, args.period_us, args.cells)
            if args.no_stamps:
                Path(CACHE, ".stamps-%s.json" % args.flavour).unlink(missing_ok=True)
            with tempfile.TemporaryDirectory(prefix="vmlat-bench-kvm-") as work:
                v = run_vmlat(build, Path(work), args.duration_s, args.period_us, args.flavour, args.cells)
            shell.append(s)
            vm.append(v)
            ph = v["phases"]
            print("round %d: first sample shell %.2fs vmlat %.2fs | total shell %.2fs vmlat %.2fs "
                  "(vmlat's first cell: prepare %.2f boot %.2f measure %.2f teardown %.2f)" % (
                      i + 1, s["first_sample"], v["first_sample"], s["total"], v["total"],
                      ph.get("prepare_s", 0), ph.get("boot_s", 0), ph.get("measure_s", 0), ph.get("teardown_s", 0)))
            print("         image: %s" % ph.get("resolved", "?"))
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        print("kvm_overhead: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    sf, vf = med(shell, "first_sample"), med(vm, "first_sample")
    st, vt = med(shell, "total"), med(vm, "total")
    so, vo = (st / args.cells - args.duration_s), (vt / args.cells - args.duration_s)
    print()
    print("%-22s %8s %8s %7s  target <= %.2fx" % ("median", "shell", "vmlat", "ratio", TARGET))
    for name, a, b in (("boot-to-first-sample", sf, vf), ("run total", st, vt), ("overhead per cell", so, vo)):
        ratio = b / a if a > 0 else float("inf")
        print("%-22s %7.2fs %7.2fs %6.2fx  %s" % (name, a, b, ratio, "ok" if ratio <= TARGET else "OVER"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
