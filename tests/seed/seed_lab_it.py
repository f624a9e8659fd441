#!/usr/bin/env python3
"""plans/seed-lab.toml's KVM cells for real (CTest vmlat_seed_lab, label seed):
the seed study's KVM matrix reduced to QEMU TCG on this machine, typed as its
header says, from the repository root with relative paths:

  build/vmlat run plans/seed-lab.toml --only backend=kvm

Checks: every KVM cell of the plan is measured (guest nrt/rt x host stress
off/on at 50us, the period sweep at 500us and 1ms), no QEMU or stress-ng is
left, and `vmlat report --format json` of the run holds the seed's tables (one
per period, rows NRT/NRT and NRT/RT, stress as a column at 50us), the period
sweep (three periods per no-stress row) and a timer-slop estimate per sweep
group. The Xen cells of the plan run in the Xen lab (labs/xen, CTest
xen_lab_seed_tests, labels xen;seed;heavy). Never asserts that latency is low.
Exit 0 pass, 1 fail."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from vmlat_it import FAILURES, CHECKS, check, log, die_with_parent  # noqa: E402

PLAN = "plans/seed-lab.toml"


def kvm_cells(vmlat, source):
    """The ids of the plan's KVM cells, as `vmlat plan` lists them."""
    out = subprocess.run([vmlat, "plan", PLAN, "--json"], cwd=source, capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return [c["id"] for c in json.loads(out.stdout) if c["axes"].get("backend") == "kvm"]


def leftovers():
    ps = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    mine = str(os.getpid())
    return [l for l in ps.splitlines() if ("qemu-system" in l or "stress-ng" in l) and f" {mine} " in l]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vmlat", required=True, help="the vmlat binary (build/vmlat)")
    ap.add_argument("--source", required=True, help="the repository root (the plan's paths are relative to it)")
    ap.add_argument("--duration", default="3s", help="--duration of every cell (default 3s)")
    args = ap.parse_args()
    vmlat = os.path.abspath(args.vmlat)
    expected = kvm_cells(vmlat, args.source)
    if not check(expected, f"vmlat plan {PLAN} --json lists the plan's cells"):
        return 1
    check(len(expected) == 8, "8 KVM cells: nrt/rt x stress off/on at 50us + the sweep", expected)
    with tempfile.TemporaryDirectory(prefix="vmlat-seed-lab-") as tmp:
        results = os.path.join(tmp, "results")
        t0 = time.monotonic()
        run = subprocess.run([vmlat, "run", PLAN, "--only", "backend=kvm", "--duration", args.duration,
                              "--results", results, "--quiet"], cwd=args.source, capture_output=True, text=True,
                             preexec_fn=die_with_parent, timeout=2400)
        elapsed = time.monotonic() - t0
        log(run.stdout)
        log(f"seed-lab (KVM cells): {elapsed:.0f}s wall for {len(expected)} cells")
        check(run.returncode == 0, "vmlat run exits 0", run.stderr[-3000:])
        check(not leftovers(), "no qemu or stress-ng left", leftovers())
        run_dir = os.path.realpath(os.path.join(results, "latest"))
        with open(os.path.join(run_dir, "run.json")) as fh:
            run_json = json.load(fh)
        cells = {c["id"]: c for c in run_json["cells"]}
        check(sorted(cells) == sorted(expected), "the run holds exactly the plan's KVM cells", sorted(cells))
        for cid, c in cells.items():
            check(c["status"] == "measured", f"{cid} measured", c["status"])

        rep = subprocess.run([vmlat, "report", run_dir, "--format", "json"], capture_output=True, text=True)
        check(rep.returncode == 0, "vmlat report --format json exits 0", rep.stderr)
        report = json.loads(rep.stdout)
        tables = {t["fixed"].get("period"): t for t in report["seed_tables"]}
        check(sorted(tables) == ["1ms", "500us", "50us"], "a seed table per period", sorted(tables))
        t50 = tables.get("50us", {"rows": [], "columns": [], "entries": []})
        check(t50["rows"] == ["NRT/NRT", "NRT/RT"], "rows are the host/guest kernel pairs", t50["rows"])
        check(sorted(c["workload"] for c in t50["columns"]) == ["host-stress", "none"],
              "stress off and on are the 50us table's columns", t50["columns"])
        check(len(t50["entries"]) == 4 and all(e["max_ns"] and e["max_ns"] > 0 for e in t50["entries"]),
              "every 50us entry has a measured worst case", t50["entries"])
        sweep = [r for r in report["period_sweep"]["rows"] if r["axes"].get("workload") == "none"]
        check(len(sweep) == 2 and all(sorted(r["periods"]) == ["1ms", "500us", "50us"] for r in sweep),
              "the sweep has three periods for each guest kernel", sweep)
        groups = [d for d in report["decomposition"] if d["axes"].get("workload") == "none"]
        check(len(groups) == 2 and all("slop_ns" in d and d["slop_high_ns"] >= d["slop_low_ns"] for d in groups),
              "a timer-slop estimate with its interval per sweep group", groups)
        borrowed = [d for d in report["decomposition"] if d["axes"].get("workload") == "host-stress"]
        check(borrowed and all(d["slop_source"] == "borrowed" for d in borrowed),
              "the stress cells borrow their no-stress group's slop", borrowed)
    log(f"{CHECKS[0]} checks, {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
