#!/usr/bin/env python3
"""Integration test of vmlat's Prometheus export against Debian's real
prometheus and prometheus-pushgateway (docs/metrics.md).

  1. starts a Pushgateway and a Prometheus on free loopback ports (temporary
     storage; every process is killed at the end on every path, and dies with
     this script through PR_SET_PDEATHSIG if the script is killed);
  2. `vmlat run --push --textfile` of a short generated plan (2 cells, one with
     a failing gate, a free axis whose name must be sanitized and a value that
     must be escaped);
  3. `vmlat monitor` of another plan, its live /metrics scraped by the same
     Prometheus;
  4. promtool check metrics on every output: textfile, `vmlat metrics`, the
     Pushgateway's /metrics (the pushed payload), the monitor's /metrics;
  5. every PromQL expression of reports/grafana/vmlat-dashboard.json (and its
     template variables) evaluated through /api/v1/query, each checked for
     series, labels and values against the result.json files (the max equals
     result.json's max_ns, ...); the alert rules loaded and healthy;
     the change-point annotation sees the step of a 20-run history made from
     the run (tests/support/history_fixture.py) that `vmlat history --push`
     delivered, at that run's start, naming the fact, and nothing for a
     history without a step;
  6. the Pushgateway stopped: a run keeps its results, reports the export
     failure with exit code 4; `vmlat push` delivers once it is back, and
     replaces the group (PUT); a Pushgateway that accepts connections but never
     answers: bounded, exit 4.

The Pushgateway's state goes to a temporary --persistence.file (Debian's
default is /var/lib/prometheus/pushgateway.data).

Usage: prometheus_it.py --vmlat build/vmlat --source-dir .  (python3 stdlib only)
"""

import argparse
import calendar
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from vmlat_it import CHECKS, FAILURES, check, die_with_parent, log  # noqa: E402
from history_fixture import STEP_AT, make_history, started_of  # noqa: E402

PROCS = []


def start(argv, logfile):
    out = open(logfile, "wb")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM, grace=10):
    if p.poll() is not None:
        return p.returncode
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return p.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return p.wait()


def stop_all():
    for p in PROCS:
        stop(p)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, data=None, method=None, timeout=10):
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def wait_http(url, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            http(url, timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer on {url} within {timeout}s")


class Prom:
    def __init__(self, base):
        self.base = base

    def query(self, expr):
        q = urllib.parse.urlencode({"query": expr})
        doc = json.loads(http(f"{self.base}/api/v1/query?{q}"))
        if doc.get("status") != "success":
            raise RuntimeError(f"query failed: {expr}: {doc}")
        return doc["data"]["result"]

    def wait_for(self, expr, pred, timeout=60, what=None):
        end = time.time() + timeout
        result = []
        while time.time() < end:
            try:
                result = self.query(expr)
                if pred(result):
                    return result
            except Exception as e:  # noqa: BLE001 - keep polling
                result = str(e)
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what or expr}; last result: {result}")


def promtool_check_metrics(text, what):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    out = (r.stdout + r.stderr).decode().strip()
    check(r.returncode == 0, f"promtool check metrics on {what}: rc={r.returncode} {out[:2000]}")
    log(f"promtool check metrics ({what}, {len(text)} bytes): rc={r.returncode} {out[:200]}")


def vmlat(args, argv, **kw):
    log("$ " + " ".join([args.vmlat] + argv))
    r = subprocess.run([args.vmlat] + argv, capture_output=True, text=True, **kw)
    log(f"  -> exit {r.returncode}")
    return r


def plan_text(name, probes, gates, axes_extra=""):
    probe_tables = {
        "native": '[probe.native]\nplugin = "cyclic"\nengine = "native"\npriority = 95\n',
        "cyclictest": '[probe.cyclictest]\nplugin = "cyclic"\nengine = "cyclictest"\npriority = 95\n',
    }
    return (
        f'[plan]\nname = "{name}"\nduration = "1s"\nperiod = "1ms"\ncpus = "all"\n\n'
        f'[matrix]\nbackend = ["host"]\nworkload = ["none"]\nprobe = {json.dumps(probes)}\n{axes_extra}\n'
        "[backend.host]\n\n" + "\n".join(probe_tables[p] for p in probes) + "\n" + gates
    )


def promql_regex(value):
    return re.escape(value).replace("\\", "\\\\")


def seconds(ns):
    return ns / 1e9


def close(a, b, tol=1e-9):
    return abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    src = os.path.abspath(args.source_dir)
    args.vmlat = os.path.abspath(args.vmlat)
    for tool in ("prometheus", "prometheus-pushgateway", "promtool"):
        if not shutil.which(tool):
            log(f"{tool} not found (ci/bootstrap installs it)")
            return 1

    tmp = tempfile.mkdtemp(prefix="vmlat-prom-it-")
    try:
        return run(args, src, tmp)
    finally:
        stop_all()
        if FAILURES:
            log(f"keeping {tmp} for diagnosis")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, src, tmp):
    pgw_port, prom_port, mon_port = free_port(), free_port(), free_port()
    pgw_url = f"http://127.0.0.1:{pgw_port}"
    prom = Prom(f"http://127.0.0.1:{prom_port}")

    # --- plans -------------------------------------------------------------
    run_plan = "vmlat-it"
    mon_plan = "vmlat-it-monitor"
    free_axis_name = "guest-kernel"        # label name: guest_kernel
    free_axis_value = 'n/a "6.1" \\ rt'    # escaped in the exposition
    axes = f'host_kernel = ["any"]\n"{free_axis_name}" = [{json.dumps(free_axis_value)}]\n'
    gates = (
        '[[gate]]\nname = "worst-case"\nstat = "max"\nbound = "1s"\n\n'
        '[[gate]]\nname = "impossible"\nstat = "max"\nbound = "1ns"\nmatch = { probe = "cyclictest" }\n'
    )
    with open(f"{tmp}/run.toml", "w") as f:
        f.write(plan_text(run_plan, ["native", "cyclictest"], gates, axes))
    with open(f"{tmp}/monitor.toml", "w") as f:
        f.write(plan_text(mon_plan, ["native"], '[[gate]]\nname = "worst-case"\nstat = "max"\nbound = "1s"\n'))
    with open(f"{tmp}/pass.toml", "w") as f:
        f.write(plan_text("vmlat-it-pass", ["native"], '[[gate]]\nname = "worst-case"\nstat = "max"\nbound = "1s"\n'))

    # --- Pushgateway and Prometheus -----------------------------------------
    pgw = start(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pgw_port}",
                 f"--persistence.file={tmp}/pushgateway.data"], f"{tmp}/pushgateway.log")
    with open(f"{tmp}/prometheus.yml", "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {src}/reports/prometheus/alerts.yml\n"
            "scrape_configs:\n"
            f"  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{pgw_port}']\n"
            f"  - job_name: vmlat-monitor\n    static_configs:\n      - targets: ['127.0.0.1:{mon_port}']\n"
        )
    start(["prometheus", f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/tsdb",
           f"--web.listen-address=127.0.0.1:{prom_port}"], f"{tmp}/prometheus.log")
    wait_http(f"{pgw_url}/-/ready", "the Pushgateway")
    wait_http(f"{prom.base}/-/ready", "Prometheus")
    log(f"pushgateway {pgw_url}, prometheus {prom.base}, monitor port {mon_port}, tmp {tmp}")

    # --- a run with --push and --textfile -----------------------------------
    results = f"{tmp}/results"
    r = vmlat(args, ["run", f"{tmp}/run.toml", "--results", results, "--push", pgw_url,
                     "--textfile", f"{tmp}/textfile", "--quiet"])
    check(r.returncode == 1, f"run with a failing gate exits 1 (export fine): got {r.returncode}\n{r.stdout}\n{r.stderr}")
    check("export failed" not in r.stderr, f"no export failure reported: {r.stderr}")
    run_dir = os.path.realpath(f"{results}/latest")
    run_doc = json.load(open(f"{run_dir}/run.json"))
    cells = [json.load(open(f"{run_dir}/{c['dir']}/result.json")) for c in run_doc["cells"]]
    check(len(cells) == 2 and all(c["status"] == "measured" for c in cells), "both cells measured")
    by_cell = {c["cell"]["id"]: c for c in cells}
    kernel = run_doc["hosts"]["local"]["kernel_release"]

    # --- promtool on every output kind ---------------------------------------
    textfiles = [f for f in os.listdir(f"{tmp}/textfile") if f.endswith(".prom")]
    check(textfiles == [f"vmlat_{run_plan.replace('-', '-')}_local.prom"], f"one textfile written: {textfiles}")
    check(not any(f.startswith(".") for f in os.listdir(f"{tmp}/textfile")), "no temporary file left in the textfile dir")
    textfile = open(f"{tmp}/textfile/{textfiles[0]}").read() if textfiles else ""
    promtool_check_metrics(textfile, "textfile")
    m = vmlat(args, ["metrics", run_dir])
    check(m.returncode == 0, "vmlat metrics works")
    check(m.stdout == textfile, "vmlat metrics prints what the textfile holds")
    promtool_check_metrics(m.stdout, "vmlat metrics")
    check('guest_kernel="n/a \\"6.1\\" \\\\ rt"' in m.stdout, "free axis: label name sanitized, value escaped")
    pgw_text = http(f"{pgw_url}/metrics")
    promtool_check_metrics(pgw_text, "Pushgateway /metrics (pushed payload)")
    groups = json.loads(http(f"{pgw_url}/api/v1/metrics"))["data"]
    keys = sorted(tuple(sorted(g["labels"].items())) for g in groups)
    check(len(keys) == 2 and all(dict(k).keys() >= {"job", "plan", "host", "cell"} for k in keys),
          f"one Pushgateway group per cell, keyed job/plan/host/cell: {keys}")

    # --- change points of two histories made from the run -------------------
    hist_cell = sorted(by_cell)[0]
    hist_plans = {"step": "vmlat-it-history", "flat": "vmlat-it-history-flat"}
    for kind, plan in hist_plans.items():
        root = f"{tmp}/history-{kind}"
        make_history(run_dir, root, hist_cell, kind == "step", plan=plan)
        r = vmlat(args, ["history", root, "--push", pgw_url, "--format", "prometheus", "--output", f"{root}.prom"])
        check(r.returncode == 0, f"vmlat history --push ({kind}): exit {r.returncode}\n{r.stderr}")
        promtool_check_metrics(open(f"{root}.prom").read() if os.path.exists(f"{root}.prom") else "", f"history {kind}")
        want = 1 if kind == "step" else 0
        check(f"vmlat: {want} change point{'' if want == 1 else 's'} of {plan} pushed" in r.stderr,
              f"history {kind}: the push is reported: {r.stderr}")

    # --- the monitor ---------------------------------------------------------
    mon = start([args.vmlat, "monitor", f"{tmp}/monitor.toml", "--listen", f"127.0.0.1:{mon_port}", "--window", "1s",
                 "--results", f"{tmp}/monitor-results"],
                f"{tmp}/monitor.log")
    wait_http(f"http://127.0.0.1:{mon_port}/metrics", "vmlat monitor")
    prom.wait_for(f'vmlat_monitor_windows_total{{plan="{mon_plan}"}} >= 4', lambda r: len(r) == 1, 90,
                  "4 monitor windows scraped")
    mon_text = http(f"http://127.0.0.1:{mon_port}/metrics")
    promtool_check_metrics(mon_text, "vmlat monitor /metrics")

    # --- Prometheus has the pushed data --------------------------------------
    prom.wait_for(f'vmlat_info{{plan="{run_plan}"}}', lambda r: len(r) == 2, 60, "pushed cells scraped")

    # --- every expression of the dashboard -----------------------------------
    dash = json.load(open(f"{src}/reports/grafana/vmlat-dashboard.json"))
    exprs = []
    section = "runs"
    for p in dash["panels"]:
        if p["type"] == "row":
            section = "monitor" if "monitor" in p["title"].lower() else "runs"
            continue
        for t in p.get("targets", []):
            exprs.append((section, p["title"], t["refId"], t["expr"]))
    check(len(exprs) >= 10, f"dashboard has its expressions ({len(exprs)})")

    def substitute(expr, plan):
        # Grafana puts the regex-escaped value inside the PromQL string: double the backslashes.
        return (expr.replace("$plan", promql_regex(plan)).replace("$host", ".*").replace("$backend", ".*")
                .replace("$__rate_interval", "30s").replace("$__interval", "15s").replace("$__range", "1h"))

    measured = list(by_cell.values())
    max_all = max(c["merged"]["stats"]["max_ns"] for c in measured)
    samples_all = sum(c["merged"]["stats"]["samples"] for c in measured)
    evaluated = 0
    for section, title, ref, expr in exprs:
        plan = mon_plan if section == "monitor" else run_plan
        q = substitute(expr, plan)
        try:
            res = prom.wait_for(q, lambda r: len(r) > 0, 10, f"{title}/{ref}")
        except RuntimeError as e:
            check(False, f"dashboard '{title}' {ref}: no series: {e}")
            continue
        evaluated += 1
        vals = [float(s["value"][1]) for s in res]
        labels = [s["metric"] for s in res]
        check(all(math.isfinite(v) for v in vals), f"'{title}' {ref}: finite values {vals}")
        ctx = f"dashboard '{title}' {ref}"
        if title.startswith("Worst case per backend"):
            check(len(res) == 1 and labels[0].get("backend") == "host" and labels[0].get("kernel") == kernel,
                  f"{ctx}: one series backend=host kernel={kernel}: {labels}")
            check(close(vals[0], seconds(max_all)), f"{ctx}: {vals[0]} == result.json max {seconds(max_all)}")
        elif title.startswith("p99 per"):
            p99 = max(c["merged"]["stats"]["p99_ns"] for c in measured)
            check(len(res) == 1 and labels[0].get("workload") == "none" and labels[0].get("backend") == "host",
                  f"{ctx}: labels {labels}")
            check(close(vals[0], seconds(p99)), f"{ctx}: {vals[0]} == result.json p99 {seconds(p99)}")
        elif title.startswith("Latency distribution"):
            le = {s["metric"].get("le"): float(s["value"][1]) for s in res}
            check("+Inf" in le and le["+Inf"] == samples_all, f"{ctx}: +Inf bucket {le.get('+Inf')} == samples {samples_all}")
            bounds = sorted((float(k) for k in le if k != "+Inf"))
            counts = [le[k] for k in sorted((k for k in le if k != "+Inf"), key=float)]
            check(counts == sorted(counts) and bounds[0] == 1e-6 and bounds[-1] == 0.1,
                  f"{ctx}: cumulative buckets 1us..100ms: {le}")
            # exact from the 1us buckets: le=X counts every bucket k < X us
            exact = sum(n for c in measured for k, n in c["merged"]["histogram"]["buckets"] if k < 100)
            check(le.get("0.0001") == exact, f"{ctx}: le=100us {le.get('0.0001')} == exact {exact}")
        elif title.startswith("Gate status"):
            want = {(c["cell"]["id"], g["gate"]): (1.0 if g["verdict"] == "pass" else 0.0)
                    for c in measured for g in c["gates"]}
            got = {(s["metric"]["cell"], s["metric"]["gate"]): float(s["value"][1]) for s in res}
            check(got == want, f"{ctx}: {got} == {want}")
            check(0.0 in got.values(), f"{ctx}: the failing gate shows 0")
        elif title.startswith("Latest run"):
            got = {s["metric"]["cell"]: float(s["value"][1]) for s in res}
            check(all({"plan", "host", "cell", "backend", "workload", "probe"} <= s["metric"].keys() for s in res),
                  f"{ctx}: labels {labels}")
            for cid, c in by_cell.items():
                st = c["merged"]["stats"]
                want = {"A": seconds(st["max_ns"]), "B": seconds(st["p99_ns"]), "C": st["samples"],
                        "D": min(1.0 if g["verdict"] == "pass" else 0.0 for g in c["gates"]),
                        "E": None}[ref]
                if ref == "E":
                    end = calendar.timegm(time.strptime(run_doc["finished"][:19], "%Y-%m-%dT%H:%M:%S"))
                    check(cid in got and abs(got[cid] / 1000 - end) < 2, f"{ctx}: run end {got.get(cid)} ~ {end}")
                else:
                    check(cid in got and close(got[cid], want), f"{ctx}: cell {cid}: {got.get(cid)} == {want}")
        elif title.startswith("Monitor: worst case"):
            check(len(res) == 1 and labels[0].get("cell") and 0 < vals[0] < 1, f"{ctx}: {res}")
        elif title.startswith("Monitor: live p99"):
            check(len(res) == 1 and 0 < vals[0] <= 0.1, f"{ctx}: {res}")
        elif title.startswith("Monitor: max per interval"):
            cpus = sorted(l.get("cpu") for l in labels)
            check("all" in cpus and len(cpus) >= 2 and all(0 < v < 1 for v in vals), f"{ctx}: per CPU and all: {res}")
        elif title.startswith("Monitor: gaps and restarts"):
            check(len(res) == 1 and vals[0] == 0, f"{ctx}: no gap, no restart, not in a gap: {res}")
        else:
            check(False, f"{ctx}: no assertion written for this panel")
    # The gaps annotation evaluates (and finds nothing: this monitor has no gap).
    annotations = {a["name"]: a for a in dash["annotations"]["list"] if a.get("expr")}
    check(sorted(annotations) == ["Change points", "Monitor gaps"], f"the dashboard's annotations: {sorted(annotations)}")
    if "Monitor gaps" in annotations:
        try:
            got = prom.query(substitute(annotations["Monitor gaps"]["expr"], mon_plan))
            check(got == [], f"annotation 'Monitor gaps': no gap: {got}")
        except Exception as e:  # noqa: BLE001
            check(False, f"annotation 'Monitor gaps' does not evaluate: {e}")
    # The change-point annotation: the step of the stepped history at its run,
    # Grafana's time (ms) taken from the value (useValueForTime); none for
    # the flat history, once its push is known to have arrived.
    cp = annotations.get("Change points")
    if cp:
        check(cp.get("useValueForTime") is True, "change points: the annotation's time is the series' value")
        step_start_ms = 1000.0 * calendar.timegm(time.strptime(started_of(STEP_AT), "%Y-%m-%dT%H:%M:%SZ"))
        try:
            got = prom.wait_for(substitute(cp["expr"], hist_plans["step"]), lambda r: len(r) > 0, 30, "change points (step)")
        except RuntimeError as e:
            got = []
            check(False, f"change points: the stepped history's change point reaches the annotation: {e}")
        if got:
            labels = got[0]["metric"]
            check(len(got) == 1 and labels.get("cell") == hist_cell and labels.get("stat") == "max" and
                  labels.get("run_id") == "r%02d" % STEP_AT and "host.kernel_release" in labels.get("facts", "") and
                  labels.get("host") == "local", f"change points: one, {hist_cell} max at r{STEP_AT}, kernel named: {got}")
            check(close(float(got[0]["value"][1]), step_start_ms), f"change points: at the run's start {step_start_ms} ms: {got}")
            # Every label the annotation's text names is there.
            for key in re.findall(r"\{\{(\w+)\}\}", cp["textFormat"]):
                check(key in labels, f"change points: text label {key} in {labels}")
        try:
            prom.wait_for(f'vmlat_history_change_points{{plan="{hist_plans["flat"]}"}} == 0', lambda r: len(r) == 1, 30,
                          "the flat history's push")
            got = prom.query(substitute(cp["expr"], hist_plans["flat"]))
            check(got == [], f"change points: none for the history without a step: {got}")
        except RuntimeError as e:
            check(False, f"change points: the flat history's push reaches Prometheus: {e}")
    check(evaluated == len(exprs), f"all {len(exprs)} dashboard expressions returned series ({evaluated})")
    log(f"dashboard: {evaluated}/{len(exprs)} expressions evaluated and checked")

    # Template variables: label_values(vmlat_info..., name) through the label API.
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        mm = re.match(r"label_values\((.*),\s*(\w+)\)$", v["query"]["query"])
        check(mm is not None, f"variable {v['name']}: label_values query")
        if not mm:
            continue
        sel = mm.group(1).replace("$plan", promql_regex(run_plan)).replace("$host", ".*")
        q = urllib.parse.urlencode({"match[]": sel})
        try:
            values = json.loads(http(f"{prom.base}/api/v1/label/{mm.group(2)}/values?{q}"))["data"]
        except urllib.error.URLError as e:
            values = [f"error: {e}"]
        want = {"plan": run_plan, "host": "local", "backend": "host"}[v["name"]]
        check(want in values, f"variable {v['name']}: {want} in {values}")

    # The monitor's histogram queried back: cumulative, consistent with its count.
    inf = prom.query(f'vmlat_latency_seconds_bucket{{plan="{mon_plan}", cpu="all", le="+Inf"}}')
    cnt = prom.query(f'vmlat_latency_seconds_count{{plan="{mon_plan}", cpu="all"}}')
    check(len(inf) == 1 and len(cnt) == 1 and inf[0]["value"][1] == cnt[0]["value"][1] and float(cnt[0]["value"][1]) > 0,
          f"monitor histogram +Inf == count: {inf} {cnt}")
    inc = prom.query(f'increase(vmlat_latency_seconds_count{{plan="{mon_plan}", cpu="all"}}[20s])')
    check(len(inc) == 1 and float(inc[0]["value"][1]) > 0, f"monitor histogram grows: {inc}")
    mx = prom.query(f'vmlat_latency_max_seconds{{plan="{mon_plan}", cpu="all"}} >= '
                    f'on (plan, host, cell) vmlat_monitor_window_max_seconds{{plan="{mon_plan}", cpu="all"}}')
    check(len(mx) == 1, f"monitor: cumulative max >= window max: {mx}")

    # Alert rules loaded and evaluated without error; the failed gate fires.
    rules = json.loads(http(f"{prom.base}/api/v1/rules"))["data"]["groups"]
    rr = [r for g in rules for r in g["rules"]]
    check(len(rr) == 4 and all(r["health"] == "ok" for r in rr), f"alert rules healthy: {[(r['name'], r['health'], r.get('lastError')) for r in rr]}")
    try:
        prom.wait_for('ALERTS{alertname="VmlatGateFailed", gate="impossible"}', lambda r: len(r) == 1, 20)
    except RuntimeError as e:
        check(False, f"VmlatGateFailed fires for the failing gate: {e}")

    # --- monitor stops cleanly on SIGINT -------------------------------------
    rc = stop(mon, signal.SIGINT, 30)
    check(rc == 0, f"monitor exits 0 on SIGINT: {rc}")
    left = subprocess.run(["pgrep", "-g", str(mon.pid)], capture_output=True, text=True).stdout.split()
    check(not left, f"no process left in the monitor's group: {left}")

    # --- the Pushgateway down: results kept, exit 4, `vmlat push` replays ------
    stop(pgw)
    t0 = time.time()
    r = vmlat(args, ["run", f"{tmp}/pass.toml", "--results", f"{tmp}/results-down", "--push", pgw_url,
                     "--push-timeout", "3s", "--quiet"])
    # The same plan with pushes refused at once: what the silent gateway's
    # run below may exceed only by its push timeouts (this machine's load
    # makes absolute times meaningless).
    down_took = time.time() - t0
    check(r.returncode == 4, f"gates passed, export failed: exit 4, got {r.returncode}\n{r.stderr}")
    check("export failed" in r.stderr and "vmlat push" in r.stderr, f"the failure is reported: {r.stderr}")
    down_dir = os.path.realpath(f"{tmp}/results-down/latest")
    down_run = json.load(open(f"{down_dir}/run.json"))
    down_cell = json.load(open(f"{down_dir}/{down_run['cells'][0]['dir']}/result.json"))
    check(down_run["status"] == "complete" and down_cell["status"] == "measured", "results on disk are complete")
    pgw = start(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pgw_port}",
                 f"--persistence.file={tmp}/pushgateway.data"], f"{tmp}/pushgateway2.log")
    wait_http(f"{pgw_url}/-/ready", "the Pushgateway (restarted)")
    cell_id = down_cell["cell"]["id"]
    # A stale metric in the group must be gone after the replay (PUT replaces the group).
    http(f"{pgw_url}/metrics/job/vmlat/plan/vmlat-it-pass/host/local/cell/{cell_id}", data=b"vmlat_it_stale 1\n",
         method="POST")
    r = vmlat(args, ["push", down_dir, "--url", pgw_url])
    check(r.returncode == 0, f"vmlat push delivers: {r.returncode} {r.stderr}")
    text = http(f"{pgw_url}/metrics")
    check(f'run_id="{down_run["run_id"]}"' in text, "the replayed run is on the Pushgateway")
    check("vmlat_it_stale" not in text, "the replay replaced the group")
    want_max = seconds(down_cell["merged"]["stats"]["max_ns"])
    try:
        res = prom.wait_for(f'vmlat_latency_max_seconds{{plan="vmlat-it-pass", cpu="all"}}', lambda r: len(r) == 1, 30)
        check(close(float(res[0]["value"][1]), want_max), f"replayed max {res[0]['value'][1]} == {want_max}")
    except RuntimeError as e:
        check(False, f"the replayed run reaches Prometheus: {e}")

    # Pushgateway down during `vmlat push`: bounded, exit 4.
    stop(pgw)
    t0 = time.time()
    r = vmlat(args, ["push", down_dir, "--url", pgw_url, "--push-timeout", "2s"])
    check(r.returncode == 4 and time.time() - t0 < 15, f"vmlat push with the gateway down: exit 4 within bounds ({r.returncode}, {time.time() - t0:.1f}s)")

    # A Pushgateway that accepts connections but never answers: bounded by the
    # per-attempt timeout, exit 4, results kept.
    slow = socket.socket()
    slow.bind(("127.0.0.1", 0))
    slow.listen(64)
    slow_url = f"http://127.0.0.1:{slow.getsockname()[1]}"
    try:
        t0 = time.time()
        r = vmlat(args, ["run", f"{tmp}/pass.toml", "--results", f"{tmp}/results-slow", "--push", slow_url,
                         "--push-timeout", "2s", "--quiet"])
        took = time.time() - t0
        check(r.returncode == 4 and "no answer within" in r.stderr, f"silent Pushgateway: exit 4 ({r.returncode}) {r.stderr}")
        slow_dir = os.path.realpath(f"{tmp}/results-slow/latest")
        slow_cells = len(json.load(open(f"{slow_dir}/run.json"))["cells"])
        bound = down_took + 2 * slow_cells + 10
        check(took < bound, f"silent Pushgateway: the run is bounded ({took:.1f}s; the same run with pushes refused took "
                            f"{down_took:.1f}s, {slow_cells} pushes of at most 2s each, bound {bound:.1f}s)")
        check(json.load(open(f"{slow_dir}/run.json"))["status"] == "complete", "silent Pushgateway: results complete")
        t0 = time.time()
        r = vmlat(args, ["push", slow_dir, "--url", slow_url, "--push-timeout", "2s"])
        check(r.returncode == 4 and time.time() - t0 < 10, f"silent Pushgateway: vmlat push exit 4, bounded ({r.returncode}, {time.time() - t0:.1f}s)")
    finally:
        slow.close()

    log(f"{CHECKS[0]} checks, {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
