#!/usr/bin/env python3
"""Benchmark: what one xen-pv cell of `vmlat run` costs in the Xen lab over a plain script.

Boots the Xen virtual lab (labs/xen) with this build installed in Dom0,
then alternates (A B A B ...) per round:

  vmlat   a --cells N plan (xen-pv, nrt guest, cyclictest in the domU) run from
          this machine with `vmlat run --inventory <lab>/inventory.ini`: host
          facts, `vmlat run-cell` in Dom0 over ssh, the cell's directory back
  shell   N runs of bench/xen_overhead.sh in Dom0 over ssh (the lab's ssh_config,
          its ControlMaster): per cell the same
          xl create + agent hello + cyclictest + read-back + shutdown, by hand

and prints per round and as medians the total per cell (the whole `vmlat run`
process / N), the overhead per cell (total - measuring duration), the time per
cell inside the run (run.json started -> finished / N: without the run's own
start, once per run whatever N: ansible-inventory, the ssh master's handshake,
the host facts), and the vmlat/shell ratios against the target (1.10x); then the lab's boot time (from lab.json) and, with --plan, the wall
time of `vmlat run plans/xen-lab.toml` in the same lab.
A benchmark, not a test: exits 0 whatever the figures are; 1 if something
could not run. Needs root, qemu-system-x86 and a built tree (build/).
Python 3 standard library only.
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
XEN_LAB = REPO / "labs/xen/xen-lab"
IMAGE = "/var/cache/vmlat/guests/nrt"
TARGET = 1.10

PLAN = """[plan]
name = "xen-bench"
duration = "{duration}s"
period = "{period_us}us"
cpus = "all"
[timeouts]
boot = "10m"
[matrix]
backend = ["xen-pv"]
rep = [{reps}]
[backend.xen-pv]
memory_mb = 256
vcpus = 1
[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"
priority = 95
"""


def iso_seconds(text: str) -> float:
    """2026-12-01T16:54:04.361Z -> seconds since the epoch."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def loadavg() -> str:
    return open("/proc/loadavg").read().split()[0]


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=3, help="seconds of cyclictest per cell")
    ap.add_argument("--period-us", type=int, default=1000)
    ap.add_argument("--cells", type=int, default=3,
                    help="cells per vmlat run (against as many runs of the script), so that the run's "
                         "own start (host facts, the ssh master) is shared as in a real plan")
    ap.add_argument("--plan", action="store_true", help="also time `vmlat run plans/xen-lab.toml`")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory and leave the lab up")
    args = ap.parse_args()
    build = Path(args.build).resolve()
    work = Path(tempfile.mkdtemp(prefix="vmlat-bench-xencell-"))
    lab = work / "lab"
    up = False
    try:
        print("load average %s at start" % loadavg())
        r = run(["cmake", "--install", str(build), "--prefix", str(work / "prefix")])
        if r.returncode:
            print("xen_cell_overhead: cmake --install failed: %s" % r.stderr, file=sys.stderr)
            return 1
        t = time.monotonic()
        r = run([str(XEN_LAB), "start", "--dir", str(lab), "--vmlat-prefix", str(work / "prefix")])
        start_s = time.monotonic() - t
        if r.returncode:
            print("xen_cell_overhead: the lab did not start:\n%s" % r.stderr, file=sys.stderr)
            return 1
        up = True
        info = json.loads((lab / "lab.json").read_text())
        ssh = ["ssh", "-F", str(lab / "ssh_config"), "xen-lab", "--"]
        r = run(["scp", "-q", "-F", str(lab / "ssh_config"), str(REPO / "bench/xen_overhead.sh"),
                 "xen-lab:/tmp/xen_overhead.sh"])
        if r.returncode:
            print("xen_cell_overhead: scp failed: %s" % r.stderr, file=sys.stderr)
            return 1
        (work / "plan.toml").write_text(PLAN.format(duration=args.duration, period_us=args.period_us,
                                                        reps=", ".join('"%d"' % (c + 1) for c in range(args.cells))))
        rows = []
        for i in range(args.rounds):
            t = time.monotonic()
            hellos = []
            for _ in range(args.cells):
                r = run(ssh + ["sh", "/tmp/xen_overhead.sh", IMAGE + "/vmlinux", IMAGE + "/initramfs.img",
                               str(args.duration), str(args.period_us)])
                if r.returncode:
                    print("xen_cell_overhead: the script failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr),
                          file=sys.stderr)
                    return 1
                hellos.append(float(dict(kv.split("=") for kv in r.stdout.split())["t_hello"]))
            shell_total = (time.monotonic() - t) / args.cells
            t = time.monotonic()
            r = run([str(build / "vmlat"), "run", str(work / "plan.toml"), "--inventory", str(lab / "inventory.ini"),
                     "--results", str(work / ("results-%d" % i))])
            vmlat_total = (time.monotonic() - t) / args.cells
            if r.returncode:
                print("xen_cell_overhead: vmlat run failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr),
                      file=sys.stderr)
                return 1
            run_dir = (work / ("results-%d" % i) / "latest").resolve()
            run_doc = json.loads((run_dir / "run.json").read_text())
            in_run = (iso_seconds(run_doc["finished"]) - iso_seconds(run_doc["started"])) / args.cells
            vm_hellos = []
            for cell in json.loads((run_dir / "run.json").read_text())["cells"]:
                result = json.loads((run_dir / cell["dir"] / "result.json").read_text())
                vm_hellos.append(result["facts"]["backend"].get("boot", {}).get("create_to_hello_s", float("nan")))
            row = {"shell": shell_total, "vmlat": vmlat_total, "in_run": in_run, "shell_hello": statistics.median(hellos),
                   "vmlat_hello": statistics.median(vm_hellos), "load": loadavg()}
            rows.append(row)
            print("round %d  per cell: shell %6.2fs (hello %5.2fs)  vmlat %6.2fs (in the run %5.2fs, create->hello %5.2fs)  "
                  "ratio %.2fx (in the run %.2fx)  load %s" % (
                      i + 1, row["shell"], row["shell_hello"], row["vmlat"], row["in_run"], row["vmlat_hello"],
                      row["vmlat"] / row["shell"], row["in_run"] / row["shell"], row["load"]), flush=True)
        med = lambda k: statistics.median(r[k] for r in rows)
        over_sh, over_vm = med("shell") - args.duration, med("vmlat") - args.duration
        print()
        print("xen-pv cell, %ds cyclictest at %dus, %d cells per run, median of %d rounds (per cell):" % (
            args.duration, args.period_us, args.cells, args.rounds))
        print("  total per cell     shell %6.2fs   vmlat %6.2fs   ratio %.2fx (target <= %.2fx)" % (
            med("shell"), med("vmlat"), med("vmlat") / med("shell"), TARGET))
        print("  overhead per cell  shell %6.2fs   vmlat %6.2fs   ratio %.2fx" % (over_sh, over_vm, over_vm / over_sh))
        print("  per cell in the run (run.json started -> finished / cells: without the run's own start, once per")
        print("  run: ansible-inventory, the ssh master's handshake, the host facts; the script's ssh rides on the")
        print("  lab's ControlMaster, already up)")
        print("                     shell %6.2fs   vmlat %6.2fs   ratio %.2fx (target <= %.2fx)" % (
            med("shell"), med("in_run"), med("in_run") / med("shell"), TARGET))
        print("  xl create->hello   shell %6.2fs   vmlat %6.2fs" % (med("shell_hello"), med("vmlat_hello")))
        print()
        print("lab: xen-lab start %.1fs (build %.1fs, QEMU start -> Dom0 ready %.1fs -> ssh %.1fs)" % (
            start_s, info.get("build_s", -1), info.get("qemu_start_to_ready_s", -1), info.get("qemu_start_to_ssh_s", -1)))
        if args.plan:
            t = time.monotonic()
            r = run([str(build / "vmlat"), "run", str(REPO / "plans/xen-lab.toml"), "--inventory",
                     str(lab / "inventory.ini"), "--results", str(work / "plan-results")])
            print("plans/xen-lab.toml: %.1fs wall, exit %d, load %s" % (time.monotonic() - t, r.returncode, loadavg()))
        return 0
    finally:
        if up and not args.keep:
            run([str(XEN_LAB), "stop", "--dir", str(lab)])
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    sys.exit(main())
