#!/usr/bin/env python3
"""The fan-out of a plan through CI, for real (CTest vmlat_fanout, labels
hosts;integration; issue 21): ci/templates/vmlat-fanout as the CI jobs run
it, over two OpenSSH servers on loopback (tests/support/sshlab.py, each with
a FAKE machine identity of its own), vmlat installed into each host's prefix
with `cmake --install` (no Ansible), the FIXED probe (known maxima; found
there through VMLAT_PLUGIN_PATH) so that gate verdicts are known in advance.

1. a job per host (`vmlat-fanout measure PLAN HOST`: `vmlat run --host`), then
   the gate job (`vmlat-fanout gate`: `vmlat gate` and `vmlat report` over
   both runs): each run holds its host's cells only, the two runs hold every
   cell of the plan exactly once, the same static share in both; exit 0,
   one merged report, JUnit and summary;
2. a plan whose gate fails on beta's `big` cell (`vmlat-fanout local`): exit
   1, a FAIL line naming the cell and its host;
3. one host's run missing (the gate given one run), and a host whose sshd is
   down when its job runs: exit 3, its cells NOT MEASURED, never a pass;
4. an unknown host name (exit 2, the hosts listed), runs of two plans (exit
   2), `--this-host` (the share measured in this process, the same cut);
nothing left running on either host. Latency values are never asserted.

Usage: fanout_it.py --vmlat build/vmlat --build build --source .
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from sshlab import SshLab  # noqa: E402
from vmlat_it import CHECKS, FAILURES, check, die_with_parent, log  # noqa: E402

HOSTS = ("alpha", "beta")


def plan_text(lab, name, big_us):
    """Two cells, one per host; the `big` probe's max decides its cell's gate (bound 150us)."""
    return f"""[plan]
name = "{name}"
duration = "300ms"
period = "1ms"
cpus = [0]

{lab.host_toml(0, "alpha", ["lab"], provision=False)}
{lab.host_toml(1, "beta", ["lab"], provision=False)}
[matrix]
backend = ["host"]
probe = ["steady", "big"]

[backend.host]

[probe.steady]
plugin = "fixed-probe"
max_us = ["100"]

[probe.big]
plugin = "fixed-probe"
max_us = ["{big_us}"]

[[gate]]
name = "worst-case"
stat = "max"
bound = "150us"
"""


class Fanout:
    def __init__(self, script, vmlat, plugin_dir, work):
        self.script, self.vmlat, self.plugin_dir, self.work = script, vmlat, plugin_dir, work

    def __call__(self, *args, extra=()):
        """(exit code, stdout + stderr) of vmlat-fanout ARGS -- --plugin-dir ... EXTRA."""
        argv = [self.script, *args, "--vmlat", self.vmlat]
        if args[0] != "gate":
            argv += ["--", "--plugin-dir", self.plugin_dir, "--lock-dir", os.path.join(self.work, "lock"), *extra]
        t0 = time.time()
        p = subprocess.run(argv, cwd=self.work, capture_output=True, text=True, timeout=600, preexec_fn=die_with_parent)
        log(f"vmlat-fanout {' '.join(args)}: exit {p.returncode} ({time.time() - t0:.1f} s)")
        return p.returncode, p.stdout + p.stderr


def load(path):
    with open(path) as f:
        return json.load(f)


def verdict_env(artifacts):
    with open(os.path.join(artifacts, "verdict.env")) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)


def plan_cells(vmlat, plugin_dir, plan):
    p = subprocess.run([vmlat, "plan", plan, "--json", "--plugin-dir", plugin_dir], capture_output=True, text=True)
    return [c["id"] for c in json.loads(p.stdout)] if p.returncode == 0 else []


def test_pass(fanout, vmlat, plugin_dir, work, plan):
    log("== a job per host, then the gate job: pass")
    for host in HOSTS:
        code, out = fanout("measure", plan, host, "--artifacts", "jobs", "--results", f"results-{host}")
        check(code == 0, f"measure {host}: exit 0", out)
        check(os.path.isfile(f"{work}/jobs/runs/{host}/run.json"), f"measure {host}: its run is in jobs/runs/{host}")
    runs = {h: load(f"{work}/jobs/runs/{h}/run.json") for h in HOSTS}
    shares = {h: load(f"{work}/jobs/runs/{h}/share.json") for h in HOSTS}
    expected = plan_cells(vmlat, plugin_dir, plan)
    check(len(expected) == 2, "vmlat plan lists the plan's 2 cells", str(expected))
    for h in HOSTS:
        hosts_of_cells = {c["host"] for c in runs[h]["cells"]}
        check(hosts_of_cells == {h}, f"{h}'s run holds {h}'s cells only", str(hosts_of_cells))
        check(runs[h]["share"]["hosts"] == [h] and runs[h]["share"]["plan_cells"] == 2,
              f"{h}'s run.json records its share of the plan's 2 cells", json.dumps(runs[h].get("share")))
        check(all(c["status"] == "measured" for c in runs[h]["cells"]), f"{h}'s cells measured", json.dumps(runs[h]["cells"]))
        check(list(runs[h]["hosts"]) == [h], f"{h}'s job reached {h} only", str(list(runs[h]["hosts"])))
    measured = sorted(c["id"] for h in HOSTS for c in runs[h]["cells"])
    check(measured == sorted(expected), "the two runs hold every cell of the plan exactly once", f"{measured} vs {expected}")
    check(shares["alpha"]["cells"] == shares["beta"]["cells"], "both jobs cut the plan the same way (share.json)")
    check(sorted(c["id"] for c in shares["alpha"]["cells"]) == sorted(expected), "share.json lists every cell of the plan")
    check({c["host"] for c in shares["alpha"]["cells"]} == set(HOSTS), "the static share spreads the cells over both hosts")

    code, out = fanout("gate", "jobs/runs", "--artifacts", "gate")
    check(code == 0, "gate: exit 0", out)
    check("vmlat gate: PASS (exit 0): 2 cells of plan fanout" in out and "2 measured" in out,
          "gate: one verdict line for the plan's 2 cells", out)
    check(verdict_env(f"{work}/gate") == {"VMLAT_VERDICT": "pass", "VMLAT_EXIT": "0", "VMLAT_RUNS": "2"},
          "gate: verdict.env says pass over 2 runs", str(verdict_env(f"{work}/gate")))
    html = open(f"{work}/gate/report.html", errors="replace").read() if os.path.exists(f"{work}/gate/report.html") else ""
    check(all(runs[h]["run_id"] in html for h in HOSTS), "one merged HTML report naming both runs")
    junit = open(f"{work}/gate/junit.xml").read() if os.path.exists(f"{work}/gate/junit.xml") else ""
    check(junit.count("<testcase") == 2 and 'failures="0"' in junit and 'errors="0"' in junit,
          "gate JUnit: a passing test case per cell", junit[:400])
    summary = open(f"{work}/gate/summary.md").read() if os.path.exists(f"{work}/gate/summary.md") else ""
    check(summary.startswith("## vmlat gate: PASS (exit 0)"), "gate summary.md leads with the verdict", summary[:200])
    return runs


def test_fail(fanout, work, plan_fail):
    log("== a gate that fails on one host's cell (vmlat-fanout local)")
    code, out = fanout("local", plan_fail, *HOSTS, "--artifacts", "fail", "--results", "results-fail")
    check(code == 1, "local: exit 1", out)
    share = load(f"{work}/fail/runs/alpha/share.json")["cells"]
    big = {c["id"]: c["host"] for c in share if "-big-" in c["id"]}
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    check(len(fail_lines) == len(big) == 1, "a FAIL line for the failing cell", "\n".join(fail_lines))
    for cell, host in big.items():
        check(any(line.startswith(f"FAIL  {cell} on {host} (run ") and "worst-case: max 400" in line for line in fail_lines),
              f"FAIL line names {cell}, its host {host}, the gate and the value", "\n".join(fail_lines))
    check(not any(f"-steady-" in line for line in fail_lines), "no FAIL line for the passing cells")
    check(verdict_env(f"{work}/fail")["VMLAT_VERDICT"] == "gate-failed", "verdict.env says gate-failed")
    junit = open(f"{work}/fail/junit.xml").read()
    check('failures="1"' in junit and 'errors="0"' in junit, "gate JUnit: 1 failure", junit[:300])


def test_missing(fanout, lab, work, plan):
    log("== a host's run missing: never a pass")
    code, out = fanout("gate", "jobs/runs/alpha", "--artifacts", "missing")
    beta_cells = [c["id"] for c in load(f"{work}/jobs/runs/alpha/share.json")["cells"] if c["host"] == "beta"]
    check(code == 3, "gate over alpha's run only: exit 3", out)
    for cell in beta_cells:
        check(f"NOT MEASURED  {cell} on beta: in no run" in out, f"{cell} (beta's) is NOT MEASURED, in no run", out)
    check("vmlat gate: NOT MEASURED (exit 3)" in out and "1 not measured" in out and beta_cells,
          "the verdict says beta's cell is not measured", out)
    check(verdict_env(f"{work}/missing")["VMLAT_VERDICT"] == "infra-error", "verdict.env says infra-error")

    log("== a host down when its job runs")
    lab.stop(1)
    try:
        code, out = fanout("measure", plan, "beta", "--artifacts", "down", "--results", "results-down")
        check(code == 3, "measure beta (sshd down): exit 3", out)
    finally:
        lab.start(1)
    os.makedirs(f"{work}/down/runs", exist_ok=True)
    shutil.copytree(f"{work}/jobs/runs/alpha", f"{work}/down/runs/alpha")
    code, out = fanout("gate", "down/runs", "--artifacts", "down-gate")
    check(code == 3, "gate over alpha's run and beta's failed run: exit 3", out)
    check(all(f"NOT MEASURED  {cell} on beta (run " in out and "infra-error" in out for cell in beta_cells),
          "beta's cells NOT MEASURED, as infrastructure errors of beta's run", out)
    code, out = fanout("gate", "nowhere", "--artifacts", "none")
    check(code == 3 and "nothing was measured" in out, "gate with no run at all: exit 3", out)


def test_usage(fanout, vmlat, plugin_dir, lab, work, plan, plan_fail):
    log("== usage: an unknown host, runs of two plans")
    code, out = fanout("measure", plan, "gamma", "--artifacts", "unknown")
    check(code == 2 and "--host gamma: the plan has no such host (hosts: alpha, beta)" in out,
          "measure gamma: exit 2, the plan's hosts listed", out)
    code, out = fanout("measure", plan, "tag=gpu", "--artifacts", "unknown")
    check(code == 2 and "no host has that tag (tags: lab)" in out, "measure tag=gpu: exit 2, the tags listed", out)
    p = subprocess.run([vmlat, "gate", f"{work}/jobs/runs/alpha", f"{work}/fail/runs/beta"], capture_output=True, text=True)
    check(p.returncode == 2 and "not of one plan" in p.stderr, "vmlat gate over runs of two plans: exit 2", p.stdout + p.stderr)

    log("== --this-host: the job runs on the lab host itself")
    code, out = fanout("measure", plan, "alpha", "--this-host", "--artifacts", "here", "--results", "results-here")
    check(code == 0, "measure alpha --this-host: exit 0", out)
    run = load(f"{work}/here/runs/alpha/run.json")
    check(run["hosts"]["alpha"]["vmlat_host"]["address"] == "local" and run["share"]["this_host"] == "alpha",
          "alpha measured in this process (address local, share.this_host)", json.dumps(run["hosts"]["alpha"].get("vmlat_host")))
    check(not os.path.exists(f"{work}/here/runs/alpha/hosts/alpha"), "no ssh log: nothing reached over ssh")
    check(load(f"{work}/here/runs/alpha/share.json")["cells"] == load(f"{work}/jobs/runs/alpha/share.json")["cells"],
          "--this-host cuts the plan as --host does")
    check(sorted(c["id"] for c in run["cells"]) == sorted(c["id"] for c in load(f"{work}/jobs/runs/alpha/run.json")["cells"]),
          "--this-host measures the same cells as --host")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    vmlat, build = os.path.abspath(args.vmlat), os.path.abspath(args.build)
    script = os.path.join(os.path.abspath(args.source), "ci", "templates", "vmlat-fanout")
    plugin_dir = os.path.join(build, "test-plugins")
    if os.geteuid() != 0:
        print("fanout_it: needs root (sshd, SCHED_FIFO)")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="vmlat-fanout-")
    t0 = time.time()
    try:
        with SshLab(2, root=os.path.join(work, "lab"), env={"VMLAT_PLUGIN_PATH": plugin_dir}) as lab:
            # One install for both hosts: beta's prefix is alpha's.
            prefix = os.path.join(lab.host_dir(0), "opt")
            subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True, capture_output=True)
            os.symlink(prefix, os.path.join(lab.host_dir(1), "opt"))
            plan, plan_fail = os.path.join(work, "fanout.toml"), os.path.join(work, "fanout-fail.toml")
            with open(plan, "w") as f:
                f.write(plan_text(lab, "fanout", 120))
            with open(plan_fail, "w") as f:
                f.write(plan_text(lab, "fanout-fail", 400))
            fanout = Fanout(script, vmlat, plugin_dir, work)
            test_pass(fanout, vmlat, plugin_dir, work, plan)
            test_fail(fanout, work, plan_fail)
            test_missing(fanout, lab, work, plan)
            test_usage(fanout, vmlat, plugin_dir, lab, work, plan, plan_fail)
            check(not lab.leftovers(), "nothing left running under either sshd", str(lab.leftovers()))
    finally:
        if not args.keep and not FAILURES:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
    log(f"{CHECKS[0]} checks, {len(FAILURES)} failed ({time.time() - t0:.0f} s)")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
