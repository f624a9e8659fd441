#!/usr/bin/env python3
"""Soak benchmark of `vmlat monitor` (issue 12): hours-long monitoring must
run in constant memory, file descriptors and disk.

Runs `vmlat monitor` on the host backend (engine native, 1 ms period, CPUs 0
and 1 by default) for --minutes, samples the RSS and the open files of vmlat
and of vmlat-probe every --sample seconds, then stops it with SIGINT and
prints: RSS and open files at start (after the first window) and at the end,
their maxima, the disk used by the session against its bound, the windows
(contiguous: every CPU's span starts where the last ended, no gap) and the
samples. Not a test: it prints figures and ratios and exits 0 unless the
monitor failed (then 1).

  bench/monitor_soak.py --vmlat build/vmlat                 # 30 minutes
  bench/monitor_soak.py --vmlat build/vmlat --minutes 5     # shortened
"""

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib


def proc_stats(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds
    except (OSError, StopIteration):
        return None


def probe_pid(parent):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        if comm == "vmlat-probe" and ppid == parent:
            return int(d)
    return None


def records(session):
    out, bad = [], 0
    for f in sorted(glob.glob(f"{session}/windows-*.log")) + [f"{session}/windows.log"]:
        if not os.path.exists(f):
            continue
        for line in open(f, "rb"):
            text = line[9:].rstrip(b"\n")
            if not line.endswith(b"\n") or f"{zlib.crc32(text):08x}".encode() != line[:8]:
                bad += 1
                continue
            out.append(json.loads(text))
    return out, bad


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--window", default="2s")
    ap.add_argument("--cpus", default="0, 1")
    ap.add_argument("--max-file", default="128KiB")
    ap.add_argument("--max-disk", default="512KiB")
    ap.add_argument("--sample", type=float, default=30, help="seconds between RSS/fd samples")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vmlat-soak-")
    plan = f"{tmp}/soak.toml"
    with open(plan, "w") as f:
        f.write(f'[plan]\nname = "monitor-soak"\nperiod = "1ms"\ncpus = [{args.cpus}]\n'
                '[backend.host]\n[probe.cyclic]\nengine = "native"\nspikes = 10\n')
    cmd = [args.vmlat, "monitor", plan, "--listen", "127.0.0.1:0", "--results", f"{tmp}/results", "--lock-dir",
           f"{tmp}/lock", "--window", args.window, "--max-file", args.max_file, "--max-disk", args.max_disk]
    print("$ " + " ".join(cmd), flush=True)
    mon = subprocess.Popen(cmd, stdout=open(f"{tmp}/monitor.out", "w"), stderr=subprocess.STDOUT)
    t0 = time.time()
    session = None
    while time.time() - t0 < 60 and not session:
        s = glob.glob(f"{tmp}/results/monitor-*")
        session = s[0] if s else None
        time.sleep(0.5)
    # Start figures once the first window is in (everything allocated).
    while time.time() - t0 < 60 and session and not os.path.exists(f"{session}/histogram.json"):
        time.sleep(0.5)
    time.sleep(3)
    samples = []
    end_at = t0 + args.minutes * 60
    while time.time() < end_at and mon.poll() is None:
        p = probe_pid(mon.pid)
        samples.append((time.time() - t0, proc_stats(mon.pid), proc_stats(p) if p else None, du(session)))
        time.sleep(min(args.sample, max(0, end_at - time.time())))
    p = probe_pid(mon.pid)
    samples.append((time.time() - t0, proc_stats(mon.pid), proc_stats(p) if p else None, du(session)))
    mon.send_signal(signal.SIGINT)
    rc = mon.wait(120)
    elapsed = time.time() - t0
    recs, bad = records(session)
    doc = json.load(open(f"{session}/session.json"))
    windows = sorted((r for r in recs if r["type"] == "window"), key=lambda r: r["seq"])
    gaps = [r for r in recs if r["type"] == "gap"]
    contiguous, activations, sample_total = True, 0, 0
    for a, b in zip(windows, windows[1:]):
        if b["seq"] != a["seq"] + 1:
            contiguous = False
        for cpu, c in b["per_cpu"].items():
            if cpu in a["per_cpu"] and c["start_mono_ns"] != a["per_cpu"][cpu]["end_mono_ns"]:
                contiguous = False
    for w in windows:
        for c in w["per_cpu"].values():
            activations += c["samples"] + c["missed_periods"]
            sample_total += c["samples"]
    logs = glob.glob(f"{session}/windows*.log")
    log_bytes = sum(os.path.getsize(f) for f in logs)

    def fmt(s):
        return "n/a" if s is None else f"RSS {s[0]} KiB, {s[1]} open files"

    first, last = samples[0], samples[-1]
    print(f"\nvmlat monitor soak: {elapsed / 60:.1f} min, window {args.window}, period 1ms, CPUs {args.cpus}, exit {rc}")
    print(f"  vmlat       start ({first[0]:.0f}s): {fmt(first[1])}; end ({last[0]:.0f}s): {fmt(last[1])}")
    print(f"  vmlat-probe start: {fmt(first[2])}; end: {fmt(last[2])}")
    mx = max(s[1][0] for s in samples if s[1])
    print(f"  vmlat max RSS {mx} KiB over {len(samples)} samples; RSS end/start {last[1][0] / first[1][0]:.3f}, "
          f"open files end - start {last[1][1] - first[1][1]}")
    # The trend: RSS every tenth of the run (a leak grows linearly; the
    # cumulative histogram's buckets, bounded by histogram_range, level off).
    step = max(1, len(samples) // 10)
    print("  vmlat RSS KiB over time: " + ", ".join(f"{s[0] / 60:.0f}m {s[1][0]}" for s in samples[::step] if s[1]))
    try:
        h = json.load(open(f"{session}/histogram.json"))
        print("  cumulative histogram buckets per CPU (bounded by histogram_range): " +
              ", ".join(f"CPU {c}: {len(v['histogram']['buckets'])}" for c, v in h["per_cpu"].items()))
    except (OSError, ValueError, KeyError):
        pass
    print(f"  disk: session {du(session)} bytes on disk, window logs {log_bytes} bytes in {len(logs)} files, "
          f"bound --max-disk {args.max_disk} (+ one --max-file {args.max_file} current file)")
    print(f"  windows: {doc['windows']} recorded, {len(windows)} still on disk (oldest pruned), contiguous: "
          f"{contiguous}, gaps: {len(gaps)}, bad lines: {bad}")
    print(f"  activations on disk: {activations} ({sample_total} samples); status {doc['status']}")
    print(f"  session: {session}")
    return 0 if rc == 0 and not gaps and contiguous and bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
