#!/usr/bin/env python3
"""Acceptance test of verdicts against a history (docs/statistics.md,
"Verdicts against a history"; docs/report.md, `vmlat compare`) on this
machine, with real runs:

  1. False alarms: a short host plan (4 cells: cyclictest and native, 1ms and
     500us, 1s each) is run 8 times back to back, nothing changed between
     the runs. Each run is compared with the history of the other 7 at the
     default confidence (0.99): at most 1 of the 8 comparisons may exit 1,
     and at most 1% of all per-statistic verdicts may be `regressed`. The
     tally is printed.
  2. The same at scale: 8 synthetic runs of 1,000 cells, each cell's
     statistics across the runs a random permutation of one real cell's
     across the 8 real runs (resampled: real run-to-run spread, nothing
     changed), each compared with the other 7: at most 1 of 8 exits 1 (the
     correction keeps a 1,000-cell run's false-alarm rate that of a small one).
  3. Detection, synthetic: each of the 8 runs with every latency of half
     its cells doubled (statistics and histograms, merged and per CPU; the
     1 ms cells in even trials, the 500 us cells in odd ones), compared
     with the history of the other 7: every doubled cell is `regressed` in
     every trial, at most 1 of the 8 trials calls an untouched cell
     `regressed`, and the tally is printed (docs/statistics.md, "Power":
     the p50's run-to-run spread is what carries the detection here).
  4. Detection: a ninth run with a SCHED_FIFO burst on the measured CPU (a
     priority 99 busy loop, above the probes' 95, 30 ms of every 50 ms: most
     wake-ups wait, so the median moves, not only the tail this machine's
     neighbours already shake by orders of magnitude) must give `regressed`
     on every cell, exit 1.

About 8 minutes on a loaded 2-core VM (9 runs of 4 one-second cells, 8
comparisons of 1,000 cells).

Latency itself is never asserted: only that the verdicts of unchanged runs
are rarely `regressed` and those of a disturbed run are. The burst processes
die with this script (PR_SET_PDEATHSIG) and are killed by pid at the end.

Usage: history_it.py --vmlat build/vmlat [--runs 8] [--keep DIR]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from vmlat_it import CHECKS, FAILURES, check, die_with_parent, log  # noqa: E402

PLAN = """[plan]
name = "history-it"
description = "unchanged host runs for the history acceptance test"
duration = "1s"
cpus = [0]
results = "{results}"

[matrix]
backend = ["host"]
workload = ["none"]
probe = ["cyclictest", "native"]
period = ["1ms", "500us"]

[backend.host]

[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"
priority = 95

[probe.native]
plugin = "cyclic"
engine = "native"
priority = 95
"""

BURST = """
import os, sys, time
cpu = int(sys.argv[1])
os.sched_setaffinity(0, {cpu})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
while True:
    end = time.monotonic() + 0.030
    while time.monotonic() < end:
        pass
    time.sleep(0.020)
"""


def run_plan(vmlat, plan, results):
    before = set(os.listdir(results)) if os.path.isdir(results) else set()
    r = subprocess.run([vmlat, "run", plan, "--quiet"], capture_output=True, text=True)
    after = set(os.listdir(results)) - before - {"latest"}
    check(r.returncode == 0, f"vmlat run exits 0 (got {r.returncode})", r.stdout[-2000:] + r.stderr[-2000:])
    if len(after) != 1:
        raise SystemExit(f"expected one new run directory, got {sorted(after)}")
    return os.path.join(results, after.pop())


def compare(vmlat, history, new):
    r = subprocess.run([vmlat, "compare", *history, new, "--format", "json"], capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise SystemExit(f"vmlat compare exited {r.returncode}: {r.stderr}")
    return r.returncode, json.loads(r.stdout)


def verdicts(doc):
    for cell in doc["cells"]:
        for s in cell["stats"]:
            yield cell["cell"], s


def synthetic_runs(real_runs, root, cells=1000, seed=18):
    """Run directories of `cells` cells, resampled from the real runs."""
    import random
    rng = random.Random(seed)
    real = []  # per real run: [(cell id, result.json)], run order
    for d in real_runs:
        run = json.load(open(os.path.join(d, "run.json")))
        real.append([json.load(open(os.path.join(d, c["dir"], "result.json"))) for c in run["cells"]])
    n_real, n_cells = len(real), len(real[0])
    perms = [rng.sample(range(n_real), n_real) for _ in range(cells)]
    template = json.load(open(os.path.join(real_runs[0], "run.json")))
    out = []
    for k in range(n_real):
        d = os.path.join(root, f"syn-{k}")
        listed = []
        for j in range(cells):
            src = real[perms[j][k]][j % n_cells]
            cid = f"syn-{j:04d}"
            doc = {key: src[key] for key in ("schema", "status", "host_facts", "facts") if key in src}
            doc["run_id"] = f"syn-{k}"
            doc["cell"] = dict(src["cell"], id=cid)
            doc["merged"] = {"stats": src["merged"]["stats"]}
            doc["per_cpu"], doc["gates"] = {}, []
            os.makedirs(os.path.join(d, "cells", cid))
            with open(os.path.join(d, "cells", cid, "result.json"), "w") as f:
                json.dump(doc, f)
            listed.append({"id": cid, "index": j + 1, "axes": doc["cell"].get("axes", {}), "status": "measured",
                           "dir": "cells/" + cid})
        run = dict(template, run_id=f"syn-{k}", cells=listed, started=f"2026-01-01T00:00:{k:02d}Z")
        with open(os.path.join(d, "run.json"), "w") as f:
            json.dump(run, f)
        out.append(d)
    return out


def doubled_run(src, dst, affected):
    """A copy of run directory `src` in `dst` whose cells with an index in
    `affected` have every latency doubled: statistics (percentiles stay on
    their 1 us bucket edge), histogram buckets, min, max and sum."""
    def scale_series(doc):
        if not isinstance(doc, dict):
            return
        for k, v in (doc.get("stats") or {}).items():
            if k.endswith("_ns") and isinstance(v, int):
                doc["stats"][k] = 2 * v
        h = doc.get("histogram")
        if isinstance(h, dict):
            for k in ("min_ns", "max_ns", "sum_ns"):
                if isinstance(h.get(k), int):
                    h[k] = 2 * h[k]
            h["buckets"] = [[2 * b, c] for b, c in h.get("buckets", [])]

    shutil.copytree(src, dst)
    run = json.load(open(os.path.join(dst, "run.json")))
    run["run_id"] += "-x2"
    with open(os.path.join(dst, "run.json"), "w") as f:
        json.dump(run, f)
    for i, c in enumerate(run["cells"]):
        if i not in affected:
            continue
        path = os.path.join(dst, c["dir"], "result.json")
        doc = json.load(open(path))
        for holder in [doc] + list((doc.get("series") or {}).values()):
            scale_series(holder.get("merged"))
            for cpu in (holder.get("per_cpu") or {}).values():
                scale_series(cpu)
        with open(path, "w") as f:
            json.dump(doc, f)
    return dst, [c["id"] for i, c in enumerate(run["cells"]) if i in affected]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--keep", help="keep the runs in this directory")
    args = ap.parse_args()
    vmlat = os.path.abspath(args.vmlat)
    if os.geteuid() != 0:
        log("SKIP: SCHED_FIFO probes need root")
        return 77
    work = args.keep or tempfile.mkdtemp(prefix="vmlat-history-it-")
    os.makedirs(work, exist_ok=True)
    results = os.path.join(work, "results")
    plan = os.path.join(work, "history-it.toml")
    with open(plan, "w") as f:
        f.write(PLAN.format(results=results))
    burst = []
    try:
        started = time.monotonic()
        runs = [run_plan(vmlat, plan, results) for _ in range(args.runs)]
        log(f"{len(runs)} runs in {time.monotonic() - started:.0f}s")

        # 1. Each run against the history of the others.
        failed, total, regressed, tally = 0, 0, 0, {}
        for i, new in enumerate(runs):
            code, doc = compare(vmlat, runs[:i] + runs[i + 1:], new)
            failed += code == 1
            check(doc["history"]["count"] == len(runs) - 1, "the history is the other runs", doc["history"])
            for cell, s in verdicts(doc):
                total += 1
                tally[s["verdict"]] = tally.get(s["verdict"], 0) + 1
                check(s["confidence"] == 0.99, "the default confidence is used and stated", s)
                if s["verdict"] == "regressed":
                    regressed += 1
                    log(f"  run {i}: {cell} {s['stat']} regressed: {s['why']}")
        log(f"false alarms: {failed} of {len(runs)} comparisons exit 1; {regressed} of {total} verdicts regressed "
            f"({100.0 * regressed / max(total, 1):.2f}%); tally {json.dumps(tally, sort_keys=True)}")
        check(total > 0, "statistics were compared")
        check(failed <= 1, f"at most 1 of {len(runs)} comparisons of unchanged runs exits 1 (got {failed})")
        check(regressed <= 0.01 * total, f"at most 1% of verdicts regressed (got {regressed} of {total})")

        # 2. 1,000 cells resampled from the real runs, nothing changed.
        started = time.monotonic()
        syn = synthetic_runs(runs, os.path.join(work, "synthetic"))
        syn_failed, syn_total, syn_regressed = 0, 0, 0
        for i, new in enumerate(syn):
            code, doc = compare(vmlat, syn[:i] + syn[i + 1:], new)
            syn_failed += code == 1
            for _, s in verdicts(doc):
                syn_total += 1
                syn_regressed += s["verdict"] == "regressed"
        log(f"1,000 cells resampled: {syn_failed} of {len(syn)} comparisons exit 1; {syn_regressed} of {syn_total} "
            f"verdicts regressed ({100.0 * syn_regressed / max(syn_total, 1):.3f}%) in {time.monotonic() - started:.0f}s")
        check(syn_total == 4000 * len(syn), "every statistic of the 1,000 cells was compared", syn_total)
        check(syn_failed <= 1, f"at most 1 of {len(syn)} comparisons of 1,000 unchanged cells exits 1 (got {syn_failed})")
        shutil.rmtree(os.path.join(work, "synthetic"), ignore_errors=True)

        # 3. Each run with every latency of half its cells doubled, against the others.
        found, affected_total, false_trials, false_cells = 0, 0, 0, 0
        for i, src in enumerate(runs):
            dst, affected = doubled_run(src, os.path.join(work, "doubled", f"run-{i}"),
                                          {0, 2} if i % 2 == 0 else {1, 3})
            code, doc = compare(vmlat, runs[:i] + runs[i + 1:], dst)
            verdict = {c["cell"]: c["verdict"] for c in doc["cells"]}
            check(len(verdict) == 4, "every cell of the doubled run was compared", verdict)
            hit = [c for c in affected if verdict.get(c) == "regressed"]
            wrong = [c for c, v in verdict.items() if c not in affected and v == "regressed"]
            found += len(hit)
            affected_total += len(affected)
            false_trials += bool(wrong)
            false_cells += len(wrong)
            log(f"  doubled run {i}: exit {code}; " + ", ".join(f"{c} {v}" for c, v in sorted(verdict.items())))
            for c in affected:
                check(verdict.get(c) == "regressed", f"trial {i}: doubled cell {c} is regressed", verdict)
        log(f"2x worse: {found} of {affected_total} doubled cells regressed in {len(runs)} trials"
            f"{'' if found == affected_total else ' (NOT every one)'}; "
            f"untouched cells regressed in {false_trials} of {len(runs)} trials ({false_cells} cells)")
        check(false_trials <= 1, f"at most 1 of {len(runs)} trials calls an untouched cell regressed (got {false_trials})")
        shutil.rmtree(os.path.join(work, "doubled"), ignore_errors=True)

        # 4. A SCHED_FIFO burst on the measured CPU: regressed on every cell.
        for cpu in [0]:
            burst.append(subprocess.Popen([sys.executable, "-c", BURST, str(cpu)], preexec_fn=die_with_parent))
        time.sleep(0.5)
        check(all(p.poll() is None for p in burst), "the burst processes run (SCHED_FIFO allowed)")
        disturbed = run_plan(vmlat, plan, results)
        for p in burst:
            p.kill()
            p.wait()
        burst = []
        code, doc = compare(vmlat, runs, disturbed)
        by_cell = {}
        for cell, s in verdicts(doc):
            by_cell.setdefault(cell, []).append(f"{s['stat']} {s['verdict']}")
        log(f"detection: exit {code}; " + "; ".join(f"{c}: {', '.join(v)}" for c, v in sorted(by_cell.items())))
        check(code == 1, f"a run under a SCHED_FIFO burst exits 1 against the history (got {code})")
        for cell in doc["cells"]:
            check(cell["verdict"] == "regressed", f"{cell['cell']} is regressed under the burst", cell["verdict"])
        check(len(doc["cells"]) == 4, "every cell was compared", len(doc["cells"]))
    finally:
        for p in burst:
            p.kill()
            p.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log(f"{CHECKS[0]} checks, {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
