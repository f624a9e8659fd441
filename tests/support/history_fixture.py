"""A history of 20 runs made from one real run (stdlib only), as
tests/report/report_e2e_test.cpp makes it for `vmlat history`: one cell's max
within +-5% of the real one in every run, and with `step` 4x from run r12 on,
where every cell's host kernel fact changes too. Used by the tests that look
at the history from outside the binary (the browser, Prometheus)."""

import os
import shutil

from vmlat_it import dump_json, load_json

STEP_AT = 12
RUNS = 20


def _set_max(run_dir, cell_id, max_ns):
    run = load_json(os.path.join(run_dir, "run.json"))
    for c in run["cells"]:
        if c["id"] == cell_id:
            c["max_ns"] = max_ns
            path = os.path.join(run_dir, c.get("dir", "cells/" + cell_id), "result.json")
    dump_json(os.path.join(run_dir, "run.json"), run)
    r = load_json(path)
    for series in [r["merged"]] + list(r.get("per_cpu", {}).values()):
        series["stats"]["max_ns"] = max_ns
        series["histogram"]["max_ns"] = max_ns
        buckets = series["histogram"]["buckets"]
        if not buckets or buckets[-1][0] < max_ns // 1000:
            buckets.append([max_ns // 1000, 1])
    dump_json(path, r)


def started_of(i):
    return "2026-02-01T00:00:%02dZ" % i


def make_history(real_run, root, cell_id, step, kernel="6.1.0-99-amd64", plan=None):
    """RUNS copies of `real_run` under `root` (r00 .. r19, one second apart
    from 2026-02-01T00:00:00Z); `plan` renames the plan. Returns the run ids."""
    os.makedirs(root, exist_ok=True)
    run = load_json(os.path.join(real_run, "run.json"))
    cell = next(c for c in run["cells"] if c["id"] == cell_id)
    base = load_json(os.path.join(real_run, cell.get("dir", "cells/" + cell_id), "result.json"))["merged"]["stats"]["max_ns"]
    lcg, ids = 18, []
    for i in range(RUNS):
        lcg = (lcg * 1103515245 + 12345) % 2**32
        noise = (lcg >> 16) % 100 - 50  # -5.0% .. +4.9%
        after = step and i >= STEP_AT
        rid = "r%02d" % i
        d = os.path.join(root, rid)
        shutil.copytree(real_run, d, symlinks=True, ignore=shutil.ignore_patterns("report.html"))
        _set_max(d, cell_id, (4 if after else 1) * (base + base * noise // 1000))
        r = load_json(os.path.join(d, "run.json"))
        r["run_id"] = rid
        r["started"] = started_of(i)
        if plan is not None:
            r["plan"]["name"] = plan
        dump_json(os.path.join(d, "run.json"), r)
        if after:
            for c in r["cells"]:
                p = os.path.join(d, c.get("dir", "cells/" + c["id"]), "result.json")
                if os.path.exists(p):
                    res = load_json(p)
                    res.setdefault("host_facts", {})["kernel_release"] = kernel
                    dump_json(p, res)
        ids.append(rid)
    return ids
