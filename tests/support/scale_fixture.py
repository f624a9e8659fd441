"""A run of many cells made from one real run (stdlib only), for the report
browser test's 1,000- and 10,000-cell pages (docs/report.md): the real
cells copied round-robin under new ids with a free axis `copy`, each copy's
samples moved `shift(i)` us later (every bucket, statistic, spike and the
histograms' min/max, so that each cell's data is its own and a page showing
one cell's data for another is caught), and cells made to fail a gate, not
be measured, or (against `make_baseline`) regress:

  FAIL:      i % 97 == 5    every gate failed, its bound half the value
  INFRA:     i % 211 == 7   infra-error at boot, nothing measured
  REGRESSED: i % 101 == 3   (not FAIL/INFRA) its baseline a quarter of its latency
"""

import json
import os

from vmlat_it import dump_json, load_json


def kind_of(i):
    if i % 97 == 5:
        return "fail"
    if i % 211 == 7:
        return "error"
    if i % 101 == 3:
        return "regressed"
    return "pass"


def shift_us(i):
    return i % 37


def _move(series, shift_ns, scale=1):
    """Every latency of a {"stats", "histogram"} document: x -> x/scale + shift."""
    if not series:
        return
    for k, v in list(series["stats"].items()):
        if k.endswith("_ns") and isinstance(v, int) and k != "sum_ns":
            series["stats"][k] = v // scale + shift_ns
    h = series["histogram"]
    n = sum(c for _, c in h["buckets"]) + h.get("overflows", 0)
    for k in ("min_ns", "max_ns"):
        h[k] = h[k] // scale + shift_ns
    if "sum_ns" in h:
        h["sum_ns"] = h["sum_ns"] // scale + n * shift_ns
    merged = {}
    for k, c in h["buckets"]:
        key = k // scale + shift_ns // 1000
        merged[key] = merged.get(key, 0) + c
    h["buckets"] = sorted([k, c] for k, c in merged.items())


def make_scaled(real_run, out, cells, run_id="scale", baseline=False):
    """`cells` cells under `out` from the measured cells of `real_run`.
    With `baseline`, the same run as a baseline: the REGRESSED cells at a
    quarter of their latency, no failures. Returns [(id, kind)] in cell order."""
    run = load_json(os.path.join(real_run, "run.json"))
    real = []
    for c in run["cells"]:
        r = load_json(os.path.join(real_run, c.get("dir", "cells/" + c["id"]), "result.json"))
        if r.get("status") == "measured" and r.get("merged"):
            r.pop("traces", None)
            r.pop("artifacts", None)
            real.append(r)
    os.makedirs(os.path.join(out, "cells"))
    listed, kinds = [], []
    for i in range(cells):
        r = json.loads(json.dumps(real[i % len(real)]))
        cid = "%s-c%d" % (r["cell"]["id"], i)
        kind = kind_of(i)
        r["run_id"] = run_id
        r["cell"]["id"] = cid
        r["cell"]["axes"]["copy"] = "c%d" % (i // len(real))
        shift = shift_us(i) * 1000
        scale = 4 if baseline and kind == "regressed" else 1
        for s in [r["merged"]] + list((r.get("per_cpu") or {}).values()):
            _move(s, shift, scale)
        for sp in r.get("spikes") or []:
            sp["latency_ns"] = sp["latency_ns"] // scale + shift
        for g in r.get("gates", []):  # the fixture decides: a noisy real cell may have failed
            g.update({"verdict": "pass", "message": ""})
            g.pop("excess_ns", None)
        if kind == "fail" and not baseline:
            for g in r.get("gates", []):
                value = g["value_ns"]
                g.update({"verdict": "fail", "bound_ns": value // 2, "excess_ns": value - value // 2,
                          "message": "%s %d ns > bound %d ns" % (g.get("stat"), value, value // 2)})
        if kind == "error" and not baseline:
            r.update({"status": "infra-error", "error": "the guest did not boot (synthetic)", "error_phase": "boot",
                      "merged": None, "per_cpu": {}, "spikes": []})
            for g in r.get("gates", []):
                g.update({"verdict": "error", "message": "not measured"})
                g.pop("value_ns", None)
                g.pop("excess_ns", None)
        d = os.path.join(out, "cells", cid)
        os.makedirs(d)
        dump_json(os.path.join(d, "result.json"), r)
        listed.append({"id": cid, "index": i + 1, "axes": r["cell"]["axes"], "status": r["status"], "dir": "cells/" + cid})
        kinds.append((cid, "pass" if baseline else kind))
    run["run_id"] = run_id
    run["status"] = "complete"
    run["cells"] = listed
    dump_json(os.path.join(out, "run.json"), run)
    return kinds
