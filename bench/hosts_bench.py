#!/usr/bin/env python3
"""Lab-of-hosts benchmark (issue 8): the same N-cell host plan run
  local   - without [hosts]: every cell in the vmlat process (today's path)
  1 host  - on one remote host over ssh (sshd on loopback, tests/support/sshlab.py)
  2 hosts - on two remote hosts in parallel
and prints the wall times, the ratio 2 hosts / 1 host (target <= 0.55) and
the per-cell overhead of a remote cell over a local one (target <= 1.5 s).
Hosts are provisioned once before the timed runs (--no-provision after), so
the figures are about running cells, not about Ansible. The two sshd carry
the lab's FAKE machine identities (sshlab.py): vmlat measures hosts that are
one machine one at a time, and the figures here are about hosts measured in
parallel, which on this one box share its CPUs.

Usage: python3 bench/hosts_bench.py [--vmlat build/vmlat] [--cells 6] [--duration 2s] [--rounds 3]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "support"))
from sshlab import SshLab  # noqa: E402

PERIODS = ["1ms", "900us", "800us", "700us", "600us", "500us", "400us", "300us", "250us", "200us"]


def plan(lab, hosts, cells, duration, indices=None, pin=False, max_parallel_hosts=None):
    """N periods placed over `hosts` (lab hosts `indices`, default 0..); with
    `pin`, the N periods on every host (a host axis)."""
    indices = list(range(len(hosts))) if indices is None else indices
    host_tables = "".join(lab.host_toml(i, name, [f"lab_{name}"]) for i, name in zip(indices, hosts))
    periods = ", ".join(f'"{p}"' for p in PERIODS[:cells])
    limit = f"max_parallel_hosts = {max_parallel_hosts}\n" if max_parallel_hosts else ""
    axis = "host = [" + ", ".join(f'"{h}"' for h in hosts) + "]\n" if pin else ""
    return f"""[plan]
name = "hostsbench"
duration = "{duration}"
cpus = [0]
{limit}{host_tables}
[backend.host]
[probe.native]
plugin = "cyclic"
engine = "native"
[matrix]
period = [{periods}]
{axis}[[gate]]
bound = "10s"
"""


def timed(vmlat, args, cwd):
    t0 = time.monotonic()
    p = subprocess.run([vmlat] + args, cwd=cwd, capture_output=True, text=True)
    took = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"vmlat {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmlat", default="build/vmlat")
    ap.add_argument("--cells", type=int, default=6)
    ap.add_argument("--duration", default="2s")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    vmlat = os.path.abspath(args.vmlat)
    work = tempfile.mkdtemp(prefix="vmlat-hostsbench-")
    try:
        with SshLab(2, root=os.path.join(work, "lab")) as lab:
            plans = {}
            for kind, hosts in (("local", []), ("1 host", ["alpha"]), ("2 hosts", ["alpha", "beta"])):
                path = os.path.join(work, kind.replace(" ", "_") + ".toml")
                with open(path, "w") as f:
                    f.write(plan(lab, hosts, args.cells, args.duration))
                plans[kind] = path
            # Provision both hosts once (not timed).
            timed(vmlat, ["provision", plans["2 hosts"], "--results", os.path.join(work, "provision")], work)
            times = {k: [] for k in plans}
            for r in range(args.rounds):
                for kind, path in plans.items():
                    extra = [] if kind == "local" else ["--no-provision"]
                    took = timed(vmlat, ["run", path, "--quiet", "--results", os.path.join(work, "results")] + extra, work)
                    times[kind].append(took)
                    print(f"round {r + 1}  {kind:8s} {took:6.2f} s", flush=True)
            med = {k: statistics.median(v) for k, v in times.items()}
            print()
            print(f"{args.cells} cells of {args.duration} each, host backend + native probe, median of {args.rounds} rounds")
            for kind in plans:
                print(f"  {kind:8s} wall {med[kind]:6.2f} s   (min {min(times[kind]):.2f}, max {max(times[kind]):.2f})")
            ratio = med["2 hosts"] / med["1 host"]
            overhead = (med["1 host"] - med["local"]) / args.cells
            print(f"  2 hosts / 1 host wall-time ratio: {ratio:.2f}   (target <= 0.55: {'met' if ratio <= 0.55 else 'NOT met'})")
            print(f"  remote over local, per cell:      {overhead:+.2f} s (target <= 1.5 s: {'met' if overhead <= 1.5 else 'NOT met'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
