#!/usr/bin/env python3
"""A named-series gate judged the same on a lab host as here (CTest
vmlat_series_remote, labels hosts;integration; issue 17).

A cell run on a lab host comes back as its result.json and is judged by the
controller's gates. A gate on a named series (`series = "irq"`) must read
that series there too: the controller once rebuilt the remote cell's outcome
from the default series alone, so such a gate said `error` and the run
exited 3. The FIXED probe (tests/test_plugins/fixed_probe.cpp) records a
known `irq` series; the remote vmlat finds it through VMLAT_PLUGIN_PATH,
set by the lab's sshd. Two cells, one whose irq maximum passes its gate and
one whose fails, run once on a loopback lab host (a real OpenSSH server,
vmlat installed into the host's prefix with `cmake --install`, no Ansible)
and once here: the same verdicts, the same exit code (1), nothing left
running.

Usage: series_remote_it.py --vmlat build/vmlat --build build
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from sshlab import SshLab  # noqa: E402
from vmlat_it import CHECKS, FAILURES, check, die_with_parent, log  # noqa: E402


def plan_text(hosts_toml):
    return f"""[plan]
name = "series-remote"
duration = "300ms"
period = "1ms"
cpus = [0]
results = "results"

{hosts_toml}

[matrix]
backend = ["host"]
probe = ["steady", "big"]

[backend.host]

[probe.steady]
plugin = "fixed-probe"
max_us = ["200"]
series = ["irq"]

[probe.big]
plugin = "fixed-probe"
max_us = ["400"]
series = ["irq"]

[[gate]]
name = "irq-worst-case"
series = "irq"
stat = "max"
bound = "150us"
"""


def verdicts(results):
    run_dir = os.path.realpath(os.path.join(results, "latest"))
    out = {}
    for cell in sorted(os.listdir(os.path.join(run_dir, "cells"))):
        with open(os.path.join(run_dir, "cells", cell, "result.json")) as f:
            r = json.load(f)
        out[cell] = (r["status"], [(g["gate"], g.get("series"), g["verdict"], g.get("value_ns")) for g in r["gates"]])
    return out


def run(vmlat, plugin_dir, cwd, plan):
    p = subprocess.run([vmlat, "run", plan, "--plugin-dir", plugin_dir, "--quiet"], cwd=cwd, capture_output=True,
                       text=True, timeout=600, preexec_fn=die_with_parent)
    log(f"vmlat run {plan}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--build", required=True)
    args = ap.parse_args()
    vmlat, build = os.path.abspath(args.vmlat), os.path.abspath(args.build)
    plugin_dir = os.path.join(build, "test-plugins")
    if os.geteuid() != 0:
        print("series_remote_it: needs root (sshd, SCHED_FIFO)")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="vmlat-series-remote-")
    try:
        with SshLab(1, root=os.path.join(work, "lab"), env={"VMLAT_PLUGIN_PATH": plugin_dir}) as lab:
            prefix = os.path.join(lab.host_dir(0), "opt")
            subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True, capture_output=True)
            with open(os.path.join(work, "remote.toml"), "w") as f:
                f.write(plan_text(lab.host_toml(0, "lab", ["lab"], provision=False)))
            with open(os.path.join(work, "local.toml"), "w") as f:
                f.write(plan_text(""))
            os.makedirs(os.path.join(work, "remote"))
            os.makedirs(os.path.join(work, "local"))
            remote_code = run(vmlat, plugin_dir, os.path.join(work, "remote"), "../remote.toml")
            local_code = run(vmlat, plugin_dir, os.path.join(work, "local"), "../local.toml")
            remote = verdicts(os.path.join(work, "remote", "results"))
            local = verdicts(os.path.join(work, "local", "results"))
            check(local_code == 1, "here: exit 1 (the big cell's irq gate fails)", str(local_code))
            check(remote_code == local_code, f"on the lab host: exit {remote_code}, as here ({local_code})")
            check(remote == local, "the same statuses, gates and values there as here", f"{remote} vs {local}")
            steady = remote.get("host-none-steady-1ms", (None, []))
            big = remote.get("host-none-big-1ms", (None, []))
            check(steady[0] == "measured" and steady[1] and steady[1][0][2] == "pass",
                  "on the lab host the steady cell's irq gate passes (irq max 100us <= 150us)", str(steady))
            check(big[0] == "measured" and big[1] and big[1][0][2] == "fail" and big[1][0][3] == 200000,
                  "on the lab host the big cell's irq gate fails at 200us", str(big))
            check(not lab.leftovers(), "nothing left running under the lab's sshd", str(lab.leftovers()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"{CHECKS[0]} checks, {len(FAILURES)} failed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
