#!/usr/bin/env python3
"""Benchmark: vmlat's native probe (vmlat-probe) against rt-tests' cyclictest.

Runs cyclictest, vmlat-probe with its spike list (--spikes 10, the default)
and vmlat-probe without it (--spikes 0) one after another on the same CPU with
the same period, priority and duration, the order rotated every round (so
that no tool always runs first or right after another), and prints per round
the p50/p99 wake-up latency of each (nearest rank on their 1 us histograms),
the native/cyclictest ratios, the CPU time each spent per wake-up, and how
often the measuring thread was preempted (nonvoluntary context switches:
another thread or an interrupt thread taking the measured CPU). Then runs the
probe alone for a long and a 4x shorter duration and prints its peak RSS, to
show that it does not grow with the duration.

This is a benchmark, not a test: it prints figures and exits 0 unless a tool
could not be run or produced unusable output. Needs root (SCHED_FIFO, mlock).
Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field

HISTOGRAM_US = 20000
PRIORITY = 95
TARGET_RATIO = 1.05
TARGET_SPIKES_CPU = 1.02   # CPU per wake-up, spike list on / off
TARGET_CPU_VS_CT = 1.0     # CPU per wake-up, native / cyclictest
TARGET_RSS_KIB = 4 * 1024
POLL_S = 0.25  # peak-RSS polling interval

FRAME_HEADER = re.compile(rb"@@VMLAT1 ([a-z0-9-]{1,32}) ([0-9]{1,12}) ([0-9a-f]{8})\r?\n")


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------
# vmlat frame v1 decoding (see core/include/vmlat/frame.hpp)

def decode_frames(data: bytes) -> list[tuple[str, bytes]]:
    """Returns [(kind, payload)] of every frame in data; raises on a bad one."""
    frames = []
    pos = 0
    while True:
        start = data.find(b"@@VMLAT1 ", pos)
        if start < 0:
            return frames
        if start > 0 and data[start - 1:start] not in (b"\n", b"\r"):
            pos = start + 1
            continue
        m = FRAME_HEADER.match(data, start)
        if not m:
            line = data[start:data.find(b"\n", start)][:100]
            raise BenchError(f"malformed frame header: {line!r}")
        kind = m.group(1).decode()
        length = int(m.group(2))
        crc_hex = m.group(3)
        body = m.end()
        payload = data[body:body + length]
        if len(payload) != length:
            raise BenchError(f"frame {kind!r}: truncated: expected {length} payload bytes, "
                             f"stream ended after {len(payload)}")
        trailer = re.compile(rb"\r?\n@@END " + crc_hex + rb"\r?\n?")
        t = trailer.match(data, body + length)
        if not t:
            raise BenchError(f"frame {kind!r}: missing @@END trailer")
        actual = zlib.crc32(payload) & 0xFFFFFFFF
        if actual != int(crc_hex, 16):
            raise BenchError(f"frame {kind!r}: checksum mismatch (header {crc_hex.decode()}, "
                             f"payload {actual:08x})")
        frames.append((kind, payload))
        pos = t.end()


# ---------------------------------------------------------------------------
# Results

@dataclass
class Run:
    tool: str
    samples: int
    histogram: dict[int, int]  # bucket (us) -> count
    overflows: int
    min_us: float
    max_us: float
    cpu_s: float  # user + sys of the whole process
    maxrss_kib: int  # peak RSS (VmHWM), see run_measured
    wall_s: float
    missed: int = 0
    threads: int = 1
    preempted: int = 0  # nonvoluntary context switches of the measuring thread(s)
    notes: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile in us on the 1 us buckets (bucket's lower
        edge, as cyclictest reports latencies); None if it is an overflow."""
        if self.samples <= 0:
            return None
        rank = max(1, math.ceil(p / 100.0 * self.samples))
        seen = 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen >= rank:
                return float(bucket)
        return None  # in the overflow region (>= HISTOGRAM_US)

    def cpu_us_per_wakeup(self) -> float | None:
        return self.cpu_s * 1e6 / self.samples if self.samples else None


def read_vmhwm_kib(pid: int) -> int | None:
    """Peak RSS ("VmHWM") of a running process, in KiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def read_preemptions(pid: int) -> dict[int, int]:
    """nonvoluntary_ctxt_switches per thread of a running process."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("nonvoluntary_ctxt_switches:"):
                        out[int(tid)] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return out


LAST_PREEMPTIONS: dict[int, int] = {}


def run_measured(argv: list[str], stdout_path: str) -> tuple[int, float, int, float, str]:
    """Runs argv with stdout to stdout_path.

    Returns (exit code, user+sys CPU seconds, peak RSS KiB, wall seconds, stderr).
    CPU time comes from wait4()'s rusage. Peak RSS does not: Linux carries the
    parent's RSS high-water mark across fork/vfork + exec into the child's
    ru_maxrss, so wait4() would report this Python interpreter's footprint
    (~14 MiB) for any child. Instead /proc/PID/status VmHWM (the high-water
    mark of the exec'd image, reset at exec) is polled until the child exits;
    the last reading is taken at most POLL_S before exit, when the tools are
    still in their measurement loop.
    """
    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        LAST_PREEMPTIONS.clear()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        hwm = 0
        try:
            while True:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid != 0:
                    break
                v = read_vmhwm_kib(proc.pid)
                if v is not None:
                    hwm = max(hwm, v)
                for tid, n in read_preemptions(proc.pid).items():
                    LAST_PREEMPTIONS[tid] = max(n, LAST_PREEMPTIONS.get(tid, 0))
                time.sleep(POLL_S)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return proc.returncode, rusage.ru_utime + rusage.ru_stime, hwm, wall, stderr


def run_cyclictest(cpu: int, period_us: int, duration_s: int, workdir: str) -> Run:
    json_path = os.path.join(workdir, "cyclictest.json")
    argv = ["cyclictest", "-m", "-q", "-p", str(PRIORITY), "-i", str(period_us), "-t", "1",
            "-a", str(cpu), "-D", f"{duration_s}s", "-h", str(HISTOGRAM_US), f"--json={json_path}"]
    code, cpu_s, rss_kib, wall, stderr = run_measured(argv, os.path.join(workdir, "cyclictest.out"))
    if code != 0:
        raise BenchError(f"{' '.join(argv)} exited with {code}: {stderr.strip()}")
    with open(json_path) as f:
        doc = json.load(f)
    threads = doc["thread"]
    if len(threads) != 1:
        raise BenchError(f"cyclictest reported {len(threads)} threads, expected 1")
    t = next(iter(threads.values()))
    hist = {int(k): int(v) for k, v in t["histogram"].items() if int(v) > 0}
    cycles = int(t["cycles"])
    overflows = cycles - sum(hist.values())
    # The measuring thread is the busiest; the main thread (10 ms polls) is not it.
    preempted = max((n for tid, n in LAST_PREEMPTIONS.items() if tid != proc_pid_of(LAST_PREEMPTIONS)), default=0)
    return Run("cyclictest", cycles, hist, overflows, float(t["min"]), float(t["max"]),
               cpu_s, rss_kib, wall, preempted=preempted)


def proc_pid_of(tids: dict[int, int]) -> int:
    """The process id among a process's thread ids: the smallest."""
    return min(tids) if tids else -1


def run_probe(probe: str, cpus: str | None, period_us: int, duration_s: float, workdir: str,
              spikes: int = 10) -> Run:
    out_path = os.path.join(workdir, "probe.out")
    argv = [probe, "--period-us", str(period_us), "--duration-ms", str(int(duration_s * 1000)),
            "--priority", str(PRIORITY), "--histogram-us", str(HISTOGRAM_US), "--spikes", str(spikes)]
    if cpus is not None:
        argv += ["--cpus", cpus]
    code, cpu_s, rss_kib, wall, stderr = run_measured(argv, out_path)
    if code != 0:
        raise BenchError(f"{' '.join(argv)} exited with {code}: {stderr.strip()}")
    with open(out_path, "rb") as f:
        frames = decode_frames(f.read())
    if len(frames) != 1 or frames[0][0] != "native-probe-result":
        raise BenchError(f"vmlat-probe printed {[k for k, _ in frames]}, expected one native-probe-result")
    doc = json.loads(frames[0][1])
    if doc.get("schema") != "vmlat-native-probe/1":
        raise BenchError(f"unexpected probe schema {doc.get('schema')!r}")

    hist: dict[int, int] = {}
    samples = overflows = missed = 0
    mins, maxs, notes = [], [], []
    expected = int(round(duration_s * 1e9 / doc["period_ns"]))
    for t in doc["threads"]:
        th = {int(b): int(c) for b, c in t["histogram"]}
        if t["samples"] != sum(th.values()) + t["overflows"]:
            notes.append(f"cpu {t['cpu']}: samples {t['samples']} != histogram {sum(th.values())} "
                         f"+ overflows {t['overflows']}")
        if t["samples"] and t["min_ns"] > t["max_ns"]:
            notes.append(f"cpu {t['cpu']}: min_ns > max_ns")
        if abs(t["samples"] + t["missed_periods"] - expected) > max(2, expected // 1000):
            notes.append(f"cpu {t['cpu']}: samples+missed = {t['samples'] + t['missed_periods']}, "
                         f"expected about {expected}")
        for b, c in th.items():
            hist[b] = hist.get(b, 0) + c
        samples += t["samples"]
        overflows += t["overflows"]
        missed += t["missed_periods"]
        if t["samples"]:
            mins.append(t["min_ns"] / 1000)
            maxs.append(t["max_ns"] / 1000)
        if spikes and t["samples"]:
            sp = t.get("spikes", [])
            if not sp or sp[0][0] != t["max_ns"] or sp != sorted(sp, key=lambda e: -e[0]):
                notes.append(f"cpu {t['cpu']}: spike list not sorted or its worst is not max_ns")
    preempted = sum(n for tid, n in LAST_PREEMPTIONS.items() if tid != proc_pid_of(LAST_PREEMPTIONS))
    name = "vmlat-probe" if spikes else "probe-nospk"
    return Run(name, samples, hist, overflows, min(mins, default=0.0), max(maxs, default=0.0),
               cpu_s, rss_kib, wall, missed, len(doc["threads"]), notes=notes, preempted=preempted)


# ---------------------------------------------------------------------------
# Presentation

def fmt_us(v: float | None) -> str:
    return f">={HISTOGRAM_US}" if v is None else f"{v:.0f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.3f}"


def fmt_cpu(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def median_or_none(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", type=int, default=0, help="CPU both tools measure on (default 0)")
    ap.add_argument("--period-us", type=int, default=1000, help="wake-up period in us (default 1000)")
    ap.add_argument("--duration-s", type=int, default=10, help="duration of each run in s (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="number of cyclictest/probe pairs (default 3)")
    ap.add_argument("--rss-duration-s", type=int, default=60,
                    help="duration of the long probe-only RSS run in s (default 60; "
                         "a second run lasts a quarter of it); 0 skips the RSS runs")
    ap.add_argument("--probe", default="build/libexec/vmlat-probe",
                    help="path to vmlat-probe (default build/libexec/vmlat-probe)")
    args = ap.parse_args()
    if args.period_us <= 0 or args.duration_s <= 0 or args.rounds <= 0 or args.rss_duration_s < 0:
        ap.error("periods, durations and rounds must be positive")

    if not os.access(args.probe, os.X_OK):
        print(f"error: vmlat-probe not found or not executable at {args.probe} (use --probe)", file=sys.stderr)
        return 1
    if shutil.which("cyclictest") is None:
        print("error: cyclictest not found in PATH (Debian package rt-tests)", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("warning: not root; SCHED_FIFO priority 95 and mlockall will probably fail", file=sys.stderr)

    version = subprocess.run([args.probe, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"vmlat-probe vs cyclictest: cpu {args.cpu}, period {args.period_us} us, "
          f"{args.duration_s} s per run, {args.rounds} rounds, SCHED_FIFO {PRIORITY}, mlockall, "
          f"1 us histogram up to {HISTOGRAM_US} us")
    print(f"probe: {args.probe} ({version}); kernel {os.uname().release}")
    print()

    p50_ratios: list[float | None] = []
    p99_ratios: list[float | None] = []
    cpu_ct: list[float | None] = []
    cpu_native: list[float | None] = []
    cpu_nospk: list[float | None] = []
    p99_nospk_ratios: list[float | None] = []
    preempt_ct: list[float] = []
    preempt_nat: list[float] = []
    header = (f"{'round':>5} {'tool':<12} {'samples':>8} {'missed':>6} {'ovfl':>5} {'min':>6} {'p50':>6} "
              f"{'p99':>6} {'max':>7} {'cpu us/wake':>11} {'rss KiB':>8} {'preempt':>7}")
    print("latencies in us")
    print(header)
    try:
        with tempfile.TemporaryDirectory(prefix="vmlat-bench-") as workdir:
            for r in range(1, args.rounds + 1):
                jobs = {
                    "ct": lambda: run_cyclictest(args.cpu, args.period_us, args.duration_s, workdir),
                    "nat": lambda: run_probe(args.probe, str(args.cpu), args.period_us, args.duration_s, workdir),
                    "nospk": lambda: run_probe(args.probe, str(args.cpu), args.period_us, args.duration_s, workdir,
                                               spikes=0),
                }
                order = ["ct", "nat", "nospk"]
                k = (r - 1) % 3
                order = order[k:] + order[:k]
                if (r - 1) // 3 % 2:
                    order.reverse()
                runs = {name: jobs[name]() for name in order}
                ct, nat, nospk = runs["ct"], runs["nat"], runs["nospk"]
                for run in (runs[name] for name in order):
                    missed = str(run.missed) if run.tool != "cyclictest" else "-"
                    print(f"{r:>5} {run.tool:<12} {run.samples:>8} {missed:>6} {run.overflows:>5} "
                          f"{run.min_us:>6.0f} {fmt_us(run.percentile(50)):>6} {fmt_us(run.percentile(99)):>6} "
                          f"{run.max_us:>7.0f} {fmt_cpu(run.cpu_us_per_wakeup()):>11} {run.maxrss_kib:>8} "
                          f"{run.preempted:>7}")
                    for note in run.notes:
                        print(f"      warning: {note}")
                cpu_nospk.append(nospk.cpu_us_per_wakeup())
                p99_nospk_ratios.append(ratio(nospk.percentile(99), ct.percentile(99)))
                preempt_ct.append(ct.preempted)
                preempt_nat.append(nat.preempted)
                r50 = ratio(nat.percentile(50), ct.percentile(50))
                r99 = ratio(nat.percentile(99), ct.percentile(99))
                print(f"{r:>5} ratio native/cyclictest: p50 {fmt_ratio(r50)}, p99 {fmt_ratio(r99)}, "
                      f"cpu/wake-up {fmt_ratio(ratio(nat.cpu_us_per_wakeup(), ct.cpu_us_per_wakeup()))}")
                p50_ratios.append(r50)
                p99_ratios.append(r99)
                cpu_ct.append(ct.cpu_us_per_wakeup())
                cpu_native.append(nat.cpu_us_per_wakeup())

            rss: list[tuple[float, Run]] = []
            if args.rss_duration_s > 0:
                print()
                print("peak RSS of vmlat-probe alone (all CPUs in the affinity mask, "
                      f"period {args.period_us} us, SCHED_FIFO {PRIORITY}, mlockall)")
                for dur in (args.rss_duration_s / 4, float(args.rss_duration_s)):
                    run = run_probe(args.probe, None, args.period_us, dur, workdir)
                    rss.append((dur, run))
                    print(f"  {dur:7.1f} s, {run.threads} cpus: "
                          f"peak RSS {run.maxrss_kib} KiB ({run.maxrss_kib / 1024:.2f} MiB), "
                          f"{run.samples} samples, {fmt_cpu(run.cpu_us_per_wakeup())} cpu us/wake-up")
                    for note in run.notes:
                        print(f"      warning: {note}")
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

    m50 = median_or_none(p50_ratios)
    m99 = median_or_none(p99_ratios)
    print()
    print("summary")
    print(f"  median ratio native/cyclictest: p50 {fmt_ratio(m50)}, p99 {fmt_ratio(m99)} "
          f"(over {args.rounds} rounds)")
    m_ct, m_nat, m_nospk = median_or_none(cpu_ct), median_or_none(cpu_native), median_or_none(cpu_nospk)
    print(f"  median cpu us per wake-up: cyclictest {fmt_cpu(m_ct)}, "
          f"vmlat-probe {fmt_cpu(m_nat)} (spike list on), {fmt_cpu(m_nospk)} (--spikes 0)")
    r_spk = ratio(m_nat, m_nospk)
    r_cpu = ratio(m_nat, m_ct)
    print(f"  cpu per wake-up, spike list on/off: {fmt_ratio(r_spk)} (target <= {TARGET_SPIKES_CPU}); "
          f"native/cyclictest: {fmt_ratio(r_cpu)} (target <= {TARGET_CPU_VS_CT})")
    print(f"  median p99 ratio with --spikes 0: {fmt_ratio(median_or_none(p99_nospk_ratios))}; "
          f"p99 ratio per round: {' '.join(fmt_ratio(x) for x in p99_ratios)}")
    print(f"  preemptions of the measuring thread per run (median): cyclictest "
          f"{statistics.median(preempt_ct) if preempt_ct else 'n/a'}, vmlat-probe "
          f"{statistics.median(preempt_nat) if preempt_nat else 'n/a'}")
    if rss:
        short, long_ = rss[0][1].maxrss_kib, rss[-1][1].maxrss_kib
        print(f"  vmlat-probe peak RSS: {short} KiB after {rss[0][0]:.0f} s, {long_} KiB after "
              f"{rss[-1][0]:.0f} s (growth {long_ - short:+d} KiB)")
    print(f"  target: ratios within {TARGET_RATIO}, RSS <= {TARGET_RSS_KIB // 1024} MiB")
    verdicts = []
    for name, m in (("p50", m50), ("p99", m99)):
        verdicts.append(f"{name} {'n/a' if m is None else ('ok' if m <= TARGET_RATIO else 'MISSED')}")
    if rss:
        worst = max(run.maxrss_kib for _, run in rss)
        verdicts.append(f"rss {'ok' if worst <= TARGET_RSS_KIB else 'MISSED'}")
    print(f"  verdict: {', '.join(verdicts)} (ratio <= {TARGET_RATIO} means the native probe is no worse; "
          "on a noisy VM p99 varies run to run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
