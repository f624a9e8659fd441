#!/usr/bin/env python3
"""Many hosts from one controller (issue 21): a lab of --hosts (16) loopback
hosts against one of --base (2), each host an OpenSSH server of its own on
its own port with its own vmlat prefix, work and lock directory and a FAKE
machine identity (tests/support/sshlab.py), so vmlat measures them in
parallel. All of them are this 2-core machine: the "hosts" and the controller
share its CPUs, so wall times at 16 hosts measure this box as much as vmlat.

Prints, for the small and the large lab:
  provisioning  `vmlat provision` (one ansible-playbook for the lab): wall
                time, the controller's (vmlat's) peak RSS, the peak RSS of
                the controller's whole process tree (vmlat, ansible-playbook
                and its forks, ssh), fresh hosts and again on provisioned ones;
                ratio large/small (target: under 3x)
  cells         `vmlat run --no-provision`, --cells per host of --duration
                (host backend, native probe, CPU 0): cells per minute, the
                controller's per-cell overhead as vmlat's own CPU time per
                cell, and with its children (the ssh clients), and as the
                wall-time gap between one cell's end and the next cell's
                start on a host; ratio large/small (target: within 10%);
                fds and threads of the controller at the first and last cell
                boundary, their range and their slope per cell (no growth:
                ~0); also the large lab with max_parallel_hosts = --bound.

Usage (root: sshd, SCHED_FIFO):
  python3 bench/many_hosts_bench.py [--vmlat build/vmlat] [--hosts 16] [--base 2]
                                    [--cells 4] [--duration 1s] [--rounds 2] [--bound 4]
"""
import argparse
import datetime
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "support"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hosts_bench  # noqa: E402
from sshlab import SshLab, descendants  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def plan(lab, indices, cells, duration, bound=None):
    names = [f"h{i:02d}" for i in indices]
    return hosts_bench.plan(lab, names, cells, duration, indices=indices, pin=True, max_parallel_hosts=bound)


def status_value(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # kB
    except OSError:
        pass
    return 0


def count_dir(path):
    try:
        return len(os.listdir(path))
    except OSError:
        return None


class Sampler(threading.Thread):
    """Polls a running vmlat: its fds, threads, RSS, and its tree's RSS; at
    every change of run.json's count of finished cells, the fds and threads
    then (a cell boundary)."""

    def __init__(self, pid, results=None, interval=0.1):
        super().__init__(daemon=True)
        self.pid, self.results, self.interval = pid, results, interval
        self.hwm_kb = 0
        self.tree_peak_kb = 0
        self.boundaries = []  # (finished cells, fds, threads)
        self.stop_event = threading.Event()

    def finished_cells(self):
        for path in glob.glob(os.path.join(self.results, "*", "run.json")):
            try:
                with open(path) as f:
                    cells = json.load(f).get("cells", [])
            except (OSError, ValueError):
                return None
            return sum(1 for c in cells if c.get("status") not in ("pending", "running"))
        return None

    def run(self):
        last = 0
        while not self.stop_event.is_set():
            self.hwm_kb = max(self.hwm_kb, status_value(self.pid, "VmHWM"))
            tree = [self.pid] + descendants(self.pid)
            self.tree_peak_kb = max(self.tree_peak_kb, sum(status_value(p, "VmRSS") for p in tree))
            if self.results:
                done = self.finished_cells()
                if done is not None and done > last:
                    fds, tasks = count_dir(f"/proc/{self.pid}/fd"), count_dir(f"/proc/{self.pid}/task")
                    if fds is not None and tasks is not None:
                        self.boundaries.append((done, fds, tasks))
                    last = done
            self.stop_event.wait(self.interval)


def cpu_seconds(pid, children=True):
    """A process's CPU time, with its reaped children's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15 if children else 13]) / TICK


def run_vmlat(vmlat, args, cwd, results=None):
    """(seconds, exit code, own CPU s, children's CPU s, sampler, stdout+stderr)."""
    t0 = time.monotonic()
    p = subprocess.Popen([vmlat] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(p.pid, results)
    sampler.start()
    output = p.stdout.read()
    # A zombie still shows its times: its own, and its reaped children's.
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    took = time.monotonic() - t0
    own = cpu_seconds(p.pid, children=False)
    children = cpu_seconds(p.pid) - own
    sampler.stop_event.set()
    sampler.join()
    code = p.wait()
    return took, code, own, children, sampler, output


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def gaps(run_dir):
    """Seconds between a cell's end and the next cell's start, on each host."""
    by_host = {}
    for path in glob.glob(os.path.join(run_dir, "cells", "*", "result.json")):
        with open(path) as f:
            r = json.load(f)
        t = r.get("timings", {})
        if "started" in t and "finished" in t:
            by_host.setdefault(r["cell"]["host"], []).append((parse_time(t["started"]), parse_time(t["finished"])))
    out = []
    for spans in by_host.values():
        spans.sort()
        out.extend(spans[i + 1][0] - spans[i][1] for i in range(len(spans) - 1))
    return out


def slope(points):
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def mib(kb):
    return kb / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmlat", default="build/vmlat")
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--base", type=int, default=2)
    ap.add_argument("--cells", type=int, default=4, help="cells per host")
    ap.add_argument("--duration", default="1s")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bound", type=int, default=4, help="max_parallel_hosts of the extra bounded run (0: none)")
    ap.add_argument("--cells-only", action="store_true",
                    help="no provisioning: each host's prefix holds bin/vmlat, a link to this vmlat (the hosts are this machine)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    vmlat = os.path.abspath(args.vmlat)
    build_dir = os.path.dirname(os.path.realpath(vmlat))
    source_dir = os.path.join(os.path.dirname(__file__), "..")
    work = tempfile.mkdtemp(prefix="vmlat-manyhosts-")
    print(f"{args.hosts} hosts against {args.base}, {os.cpu_count()} CPUs, work in {work}", flush=True)
    try:
        with SshLab(args.hosts + args.base, root=os.path.join(work, "lab")) as lab:
            bundle = os.path.join(work, "bundle.tar.gz")
            if not args.cells_only:
                subprocess.run([os.path.join(source_dir, "ansible", "make-bundle"), build_dir, bundle], check=True,
                               stdout=subprocess.DEVNULL)
            labs = {"small": list(range(args.hosts, args.hosts + args.base)), "large": list(range(args.hosts))}
            kinds = [("small", None), ("large", None)] + ([("large", args.bound)] if args.bound else [])
            plans = {}
            for name, bound in kinds:
                path = os.path.join(work, f"{name}-{bound or 'default'}.toml")
                with open(path, "w") as f:
                    f.write(plan(lab, labs[name], args.cells, args.duration, bound))
                plans[(name, bound)] = path

            def hosts_cpu():
                """CPU of every lab sshd and the sessions it reaped: the hosts' side."""
                time.sleep(0.5)  # sessions that just ended are reaped
                return sum(cpu_seconds(server.pid) for server in lab.servers if server)

            # Provisioning: fresh hosts first, then the same hosts again.
            prov = {}
            if args.cells_only:
                for i in range(args.hosts + args.base):
                    os.makedirs(os.path.join(lab.host_dir(i), "opt", "bin"))
                    os.symlink(os.path.realpath(vmlat), os.path.join(lab.host_dir(i), "opt", "bin", "vmlat"))
            for attempt in () if args.cells_only else ("fresh", "again"):
                for name in ("small", "large"):
                    logs = os.path.join(work, f"provision-{name}-{attempt}")
                    before = hosts_cpu()
                    took, code, own, children, s, output = run_vmlat(
                        vmlat, ["provision", plans[(name, None)], "--bundle", bundle, "--results", logs], work)
                    if code != 0:
                        sys.exit(f"vmlat provision ({name}, {attempt}) exited {code}:\n{output}")
                    host_side = hosts_cpu() - before
                    prov[(name, attempt)] = (took, s.hwm_kb, s.tree_peak_kb, own + children, host_side)
                    print(f"provision {name:5s} {len(labs[name]):2d} hosts {attempt:5s}: {took:6.1f} s, vmlat peak RSS "
                          f"{mib(s.hwm_kb):.1f} MiB, tree peak RSS {mib(s.tree_peak_kb):.0f} MiB, controller CPU "
                          f"{own + children:.1f} s, hosts' CPU {host_side:.1f} s", flush=True)

            # Cells.
            cells = {k: [] for k in kinds}
            for r in range(args.rounds):
                for kind in kinds:
                    results = os.path.join(work, f"results-{kind[0]}-{kind[1] or 'default'}-{r}")
                    before = hosts_cpu()
                    took, code, own, children, s, output = run_vmlat(
                        vmlat, ["run", plans[kind], "--no-provision", "--quiet", "--results", results], work, results)
                    if code != 0:
                        sys.exit(f"vmlat run {kind} exited {code}:\n{output}")
                    n = len(labs[kind[0]]) * args.cells
                    g = gaps(os.path.realpath(os.path.join(results, "latest")))
                    row = {"wall": took, "cells": n, "per_min": n / took * 60, "own_ms": own / n * 1000,
                           "with_children_ms": (own + children) / n * 1000, "gap_ms": statistics.fmean(g) * 1000 if g else 0,
                           "gap_max_ms": max(g) * 1000 if g else 0, "hosts_ms": (hosts_cpu() - before) / n * 1000,
                           "hwm": s.hwm_kb, "boundaries": s.boundaries}
                    cells[kind].append(row)
                    b = s.boundaries
                    print(f"round {r + 1} {kind[0]:5s} bound {kind[1] or 'default':7}: {n:3d} cells {took:6.1f} s, "
                          f"{row['per_min']:5.1f} cells/min, vmlat CPU {row['own_ms']:.0f} ms/cell "
                          f"({row['with_children_ms']:.0f} with ssh), hosts' CPU {row['hosts_ms']:.0f} ms/cell, "
                          f"gap {row['gap_ms']:.0f} ms (max {row['gap_max_ms']:.0f}), "
                          f"fds {b[0][1] if b else '?'}->{b[-1][1] if b else '?'}, threads {b[0][2] if b else '?'}->{b[-1][2] if b else '?'}",
                          flush=True)
                    shutil.rmtree(results, ignore_errors=True)

            print()
            if prov:
                print(f"== provisioning (`vmlat provision`, one ansible-playbook, bundle given), {args.base} vs {args.hosts} hosts")
            for attempt in () if args.cells_only else ("fresh", "again"):
                (t2, h2, tr2, c2, x2), (t16, h16, tr16, c16, x16) = prov[("small", attempt)], prov[("large", attempt)]
                ratio = t16 / t2
                print(f"  {attempt:5s}: wall {t2:6.1f} s vs {t16:6.1f} s  ratio {ratio:.2f} (target < 3: "
                      f"{'met' if ratio < 3 else 'NOT met'}); vmlat peak RSS {mib(h2):.1f} vs {mib(h16):.1f} MiB; "
                      f"tree peak RSS {mib(tr2):.0f} vs {mib(tr16):.0f} MiB")
                print(f"         CPU per host: controller (vmlat, ansible-playbook, ssh) {c2 / args.base:.1f} vs "
                      f"{c16 / args.hosts:.1f} s, hosts' side {x2 / args.base:.1f} vs {x16 / args.hosts:.1f} s; "
                      f"all CPU over {os.cpu_count()} CPUs: {(c2 + x2) / os.cpu_count():.0f} vs {(c16 + x16) / os.cpu_count():.0f} s")
            print(f"== cells ({args.cells} per host, {args.duration}, host backend + native probe), median of {args.rounds} rounds")
            med = {}
            for kind in kinds:
                rows = cells[kind]
                m = {key: statistics.median(r[key] for r in rows)
                     for key in ("wall", "per_min", "own_ms", "with_children_ms", "gap_ms", "gap_max_ms", "hosts_ms", "hwm")}
                med[kind] = m
                bs = [r["boundaries"] for r in rows if r["boundaries"]]
                fds = [x[1] for b in bs for x in b]
                threads = [x[2] for b in bs for x in b]
                label = f"{len(labs[kind[0]])} hosts" + (f", max_parallel_hosts = {kind[1]}" if kind[1] else "")
                print(f"  {label}: {rows[0]['cells']} cells, wall {m['wall']:.1f} s, {m['per_min']:.1f} cells/min; "
                      f"controller per cell: vmlat CPU {m['own_ms']:.0f} ms, with its ssh children {m['with_children_ms']:.0f} ms, "
                      f"gap between cells on a host {m['gap_ms']:.0f} ms (max {m['gap_max_ms']:.0f}); hosts' CPU "
                      f"{m['hosts_ms']:.0f} ms/cell; vmlat peak RSS {mib(m['hwm']):.1f} MiB")
                if bs:
                    first, last = bs[-1][0], bs[-1][-1]  # the last round's first and last boundary
                    fd_slope = statistics.median(slope([(x[0], x[1]) for x in b]) for b in bs)
                    th_slope = statistics.median(slope([(x[0], x[2]) for x in b]) for b in bs)
                    print(f"      at cell boundaries: fds {first[1]} at cell {first[0]}, {last[1]} at cell {last[0]} "
                          f"(range {min(fds)}..{max(fds)}, slope {fd_slope:+.3f}/cell); threads {first[2]} -> {last[2]} "
                          f"(range {min(threads)}..{max(threads)}, slope {th_slope:+.3f}/cell)")
            s, l = med[("small", None)], med[("large", None)]
            for key, what in (("own_ms", "vmlat CPU per cell"), ("with_children_ms", "CPU per cell with ssh"), ("gap_ms", "gap between cells")):
                ratio = l[key] / s[key] if s[key] else float("nan")
                print(f"  {what}: {args.hosts} / {args.base} hosts = {ratio:.2f} (target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
            print(f"  cells per minute: {args.hosts} / {args.base} hosts = {l['per_min'] / s['per_min']:.2f}")
            # The hosts' CPU for the same cells does the same work at both
            # sizes: its growth is this box's contention, not vmlat's.
            inflation = l["hosts_ms"] / s["hosts_ms"]
            normalized = (l["own_ms"] / l["hosts_ms"]) / (s["own_ms"] / s["hosts_ms"])
            print(f"  the hosts' CPU for the same cells grew {inflation:.2f}x (contention on {os.cpu_count()} CPUs); vmlat CPU per "
                  f"cell relative to it: {args.hosts} / {args.base} hosts = {normalized:.2f} (target <= 1.10: "
                  f"{'met' if normalized <= 1.10 else 'NOT met'})")
            if args.bound:
                b = med[("large", args.bound)]
                print(f"  with max_parallel_hosts = {args.bound}: vmlat CPU per cell {args.hosts} / {args.base} hosts = "
                      f"{b['own_ms'] / s['own_ms']:.2f}, gap {b['gap_ms'] / s['gap_ms']:.2f}, cells per minute "
                      f"{b['per_min'] / s['per_min']:.2f}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
