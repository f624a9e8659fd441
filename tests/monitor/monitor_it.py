#!/usr/bin/env python3
"""`vmlat monitor` for real (issue 12): the streaming native probe, the
session directory, the report, restarts after a killed guest.

  host    10 windows of 1s at 1ms on 2 CPUs: windows tile time (each CPU's span
          starts where the last ended), samples + missed periods of each window
          = its span / period, the sum over the windows = elapsed / period
          within one period per window per CPU; a forced spike (a SCHED_FIFO 99
          busy burst on CPU 0 at a known time, longer than a window) is in the
          spike list with a CLOCK_REALTIME timestamp inside the burst, and in
          `vmlat report`; log rotation stays inside --max-disk; SIGHUP reopens
          the log after it was moved away; cyclictest runs window by window
          with between-runs gaps; after SIGINT every file parses, nothing left.
  kvm     (--kvm) the same tiling check in a QEMU guest, then its QEMU is
          SIGKILLed: a gap is recorded, a new guest boots, windows go on.

Never asserts that latency is low. Exit 0 pass, 1 fail, 77 skip."""

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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from vmlat_it import FAILURES, CHECKS, check, log, die_with_parent  # noqa: E402

PERIOD_NS = 1_000_000


def read_records(session):
    """Every record of the session's logs, each line's CRC checked."""
    files = sorted(glob.glob(os.path.join(session, "windows-*.log"))) + [os.path.join(session, "windows.log")]
    records = []
    for f in files:
        if not os.path.exists(f):
            continue
        with open(f, "rb") as fh:
            for n, line in enumerate(fh, 1):
                check(line.endswith(b"\n"), f"{f}:{n}: line complete")
                crc, text = line[:8].decode(), line[9:].rstrip(b"\n")
                check(f"{zlib.crc32(text):08x}" == crc, f"{f}:{n}: checksum")
                records.append(json.loads(text))
    return records


def all_files_parse(session):
    for name in ("session.json", "facts.json", "histogram.json"):
        with open(os.path.join(session, name)) as fh:
            json.load(fh)
    return read_records(session)


def leftovers(pattern):
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if pattern in l and "monitor_it.py" not in l and "ps -eo" not in l]


def start_monitor(args, plan, results, extra, logfile):
    cmd = [args.vmlat, "monitor", plan, "--listen", "127.0.0.1:0", "--results", results,
           "--lock-dir", os.path.join(results, "lock")] + extra
    log("$ " + " ".join(cmd))
    return subprocess.Popen(cmd, stdout=open(logfile, "w"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent)


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    check(False, f"timed out waiting for {what}")
    return None


def session_dir(results):
    d = glob.glob(os.path.join(results, "monitor-*"))
    return d[0] if len(d) == 1 else None


def windows_of(records, segment=None):
    return [r for r in records if r["type"] == "window" and (segment is None or r["segment"] == segment)]


def check_tiling(windows, what):
    """Consecutive windows: each CPU starts where it ended; samples + missed = span / period."""
    check(len(windows) >= 10, f"{what}: at least 10 windows ({len(windows)})")
    cpus = sorted(windows[0]["per_cpu"].keys())
    for cpu in cpus:
        total = 0
        for i, w in enumerate(windows):
            c = w["per_cpu"].get(cpu)
            if c is None:
                check(w["final"], f"{what}: window {w['seq']} has CPU {cpu}")
                continue
            span = c["end_mono_ns"] - c["start_mono_ns"]
            activations = -(-span // PERIOD_NS)
            check(c["samples"] + c["missed_periods"] == activations,
                  f"{what}: window {w['seq']} CPU {cpu}: {c['samples']} + {c['missed_periods']} == {activations}")
            if i > 0 and cpu in windows[i - 1]["per_cpu"]:
                prev = windows[i - 1]["per_cpu"][cpu]["end_mono_ns"]
                check(c["start_mono_ns"] == prev, f"{what}: window {w['seq']} CPU {cpu} starts where the last ended "
                      f"({c['start_mono_ns']} vs {prev})")
            total += c["samples"] + c["missed_periods"]
        first = windows[0]["per_cpu"][cpu]["start_mono_ns"]
        last = [w for w in windows if cpu in w["per_cpu"]][-1]["per_cpu"][cpu]["end_mono_ns"]
        elapsed_periods = (last - first) / PERIOD_NS
        check(abs(total - elapsed_periods) <= len(windows),
              f"{what}: CPU {cpu}: {total} activations measured over {elapsed_periods:.1f} periods elapsed")
        log(f"{what}: CPU {cpu}: {len(windows)} windows, {total} activations, elapsed {elapsed_periods:.1f} periods")
    # The wall clock agrees: the windows cover the time between the first start and the last end.
    wall = (windows[-1]["end_unix_ns"] - windows[0]["start_unix_ns"]) / 1e9
    mono = (windows[-1]["per_cpu"][cpus[0]]["end_mono_ns"] - windows[0]["per_cpu"][cpus[0]]["start_mono_ns"]) / 1e9
    check(abs(wall - mono) < 0.05, f"{what}: realtime span {wall:.3f}s ~ monotonic span {mono:.3f}s")


def burn(cpu, seconds):
    """A SCHED_FIFO 99 busy loop on `cpu` for `seconds`: the probe (priority 95) cannot run there."""
    pid = os.fork()
    if pid == 0:
        try:
            os.sched_setaffinity(0, {cpu})
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
        finally:
            os._exit(0)
    return pid


def stop(proc, what):
    """SIGINT; then none of the monitor's processes (probe, QEMU, stress-ng) may be left."""
    below = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "killed"
    check(rc == 0, f"{what}: exit 0 after SIGINT ({rc})")
    time.sleep(0.5)
    left = [p for p in below if os.path.exists(f"/proc/{p}")]
    check(not left, f"{what}: none of its processes left: {left}")


def host_tests(args, tmp):
    plan = os.path.join(tmp, "host.toml")
    with open(plan, "w") as f:
        f.write('[plan]\nname = "monitor-it"\nperiod = "1ms"\ncpus = [0, 1]\n'
                '[backend.host]\n[probe.cyclic]\nengine = "native"\nspikes = 5\n')
    # --- 10 windows, tiling, a forced spike, rotation, SIGHUP -------------------
    results = os.path.join(tmp, "host")
    mon = start_monitor(args, plan, results, ["--window", "1s", "--max-file", "8KiB", "--max-disk", "32KiB"],
                        os.path.join(tmp, "host.log"))
    session = wait_for(lambda: session_dir(results), 30, "the session directory")
    wait_for(lambda: len(windows_of(read_records(session))) >= 3, 60, "3 windows")
    # A burst longer than a window boundary needs: 1.3 s on CPU 0.
    burst_start = time.time_ns()
    pid = burn(0, 1.3)
    os.waitpid(pid, 0)
    burst_end = time.time_ns()
    log(f"burst on CPU 0 from {burst_start} to {burst_end}")
    # SIGHUP after moving the log away (what logrotate does): a new windows.log appears.
    os.rename(os.path.join(session, "windows.log"), os.path.join(session, "moved.log"))
    mon.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(os.path.join(session, "windows.log")), 10, "windows.log reopened after SIGHUP")
    os.rename(os.path.join(session, "moved.log"), os.path.join(session, "windows-999999.log"))  # keep it readable
    wait_for(lambda: len(windows_of(read_records(session))) >= 14, 60, "14 windows")
    stop(mon, "host monitor")
    records = all_files_parse(session)
    windows = windows_of(records)
    check(not [r for r in records if r["type"] == "gap"], "host: no gap")
    # windows-999999.log (the moved file) sorts last: order by seq.
    windows.sort(key=lambda w: w["seq"])
    check([w["seq"] for w in windows] == list(range(len(windows))) or len(glob.glob(session + "/windows-*.log")) > 1,
          "host: window numbers consecutive")
    seqs = [w["seq"] for w in windows]
    contiguous_run = [w for w in windows if w["seq"] >= seqs[-1] - (len(seqs) - 1)]
    check_tiling(windows if seqs == list(range(seqs[0], seqs[0] + len(seqs))) else contiguous_run, "host")
    spikes = [s for w in windows for s in w["spikes"] if s["cpu"] == 0]
    inside = [s for s in spikes if burst_start <= s["realtime_ns"] <= burst_end + 50_000_000
              and s["latency_ns"] >= 500_000_000]
    check(inside, f"host: a spike of CPU 0 with a timestamp inside the burst ({len(spikes)} spikes)")
    check(all(w.get("host", 0) is None for w in windows), "host: no vCPU threads, so each window's host is null")
    session_doc = json.load(open(os.path.join(session, "session.json")))
    check(session_doc["status"] == "stopped" and session_doc["streaming"], f"session.json: {session_doc['status']}")
    logs = glob.glob(os.path.join(session, "windows*.log"))
    size = sum(os.path.getsize(p) for p in logs if not p.endswith("999999.log"))
    check(len(logs) >= 2, f"host: the log rotated ({len(logs)} files)")
    check(size <= 32 * 1024 + 8 * 1024, f"host: window logs {size} bytes within --max-disk 32KiB (+ one file)")
    # The report shows the spike with its time.
    rep = subprocess.run([args.vmlat, "report", session], capture_output=True, text=True)
    check(rep.returncode == 0, f"report exit 0: {rep.stderr}")
    html = open(os.path.join(session, "report.html")).read()
    if inside:
        s = inside[0]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s["realtime_ns"] // 10**9)) + \
            ".%09dZ" % (s["realtime_ns"] % 10**9)
        check(stamp in html, f"report: the burst's spike {stamp} is listed")
    check("session-max" in html and "session-histogram" in html, "report: the max-per-window plot and the histogram")
    rj = subprocess.run([args.vmlat, "report", session, "--format", "json", "--output", "-"], capture_output=True, text=True)
    check(rj.returncode == 0 and len(json.loads(rj.stdout)["windows"]) == len(windows), "report --format json")

    # --- --for that runs out before the first window: nothing measured, 3 --
    results = os.path.join(tmp, "short")
    rs = subprocess.run([args.vmlat, "monitor", plan, "--listen", "127.0.0.1:0", "--results", results,
                         "--lock-dir", os.path.join(results, "lock"), "--window", "10s", "--for", "1ms"],
                        capture_output=True, text=True, preexec_fn=die_with_parent)
    check(rs.returncode == 3 and "ran out before the first window: nothing measured" in rs.stderr,
          f"--for 1ms: exit 3, nothing measured (exit {rs.returncode}: {rs.stderr.strip()})")
    doc = json.load(open(os.path.join(session_dir(results), "session.json")))
    check(doc["status"] == "failed" and doc["windows"] == 0, f"--for 1ms: session failed, 0 windows ({doc['status']})")

    # --- cyclictest: window by window, documented gaps ---------------------
    plan_ct = os.path.join(tmp, "ct.toml")
    with open(plan_ct, "w") as f:
        f.write('[plan]\nname = "monitor-it-ct"\nperiod = "1ms"\ncpus = [0]\n'
                '[backend.host]\n[probe.cyclic]\nengine = "cyclictest"\n')
    results = os.path.join(tmp, "ct")
    rc = subprocess.run([args.vmlat, "monitor", plan_ct, "--listen", "127.0.0.1:0", "--results", results,
                         "--lock-dir", os.path.join(results, "lock"), "--window", "1s", "--for", "3.5s"],
                        capture_output=True, text=True, preexec_fn=die_with_parent)
    check(rc.returncode == 0, f"cyclictest monitor exit 0: {rc.stderr}")
    session = session_dir(results)
    records = all_files_parse(session)
    ws = windows_of(records)
    between = [r for r in records if r["type"] == "gap" and r["kind"] == "between-runs"]
    check(len(ws) >= 2 and not any(w["tiles"] for w in ws), f"cyclictest: {len(ws)} windows, none tiles")
    check(len(between) == len(ws) - 1, f"cyclictest: a between-runs gap between windows ({len(between)})")
    check(not json.load(open(os.path.join(session, "session.json")))["streaming"], "cyclictest: streaming false")


def descendants(root):
    """Pids of every process below `root`."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(d))
        except (OSError, ValueError):
            continue
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def qemu_pids(root=None):
    """QEMUs below `root` (the monitor), or every QEMU started for a monitor (any root)."""
    pids = []
    for p in (descendants(root) if root else [int(d) for d in os.listdir("/proc") if d.isdigit()]):
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmd and (root or "vmlat-monitor-" in cmd):
            pids.append(p)
    return pids


def kvm_tests(args, tmp):
    plan = os.path.join(tmp, "kvm.toml")
    with open(plan, "w") as f:
        f.write('[plan]\nname = "monitor-it-kvm"\nperiod = "1ms"\ncpus = "all"\n[timeouts]\nboot = "240s"\n'
                '[matrix]\nguest_kernel = ["nrt"]\n[backend.kvm]\nmemory_mb = 512\nvcpus = 2\n'
                '[probe.cyclic]\nengine = "native"\nspikes = 3\n')
    results = os.path.join(tmp, "kvm")
    mon = start_monitor(args, plan, results, ["--window", "1s"], os.path.join(tmp, "kvm.log"))
    session = wait_for(lambda: session_dir(results), 30, "the session directory")
    if not wait_for(lambda: len(windows_of(read_records(session))) >= 11, 600, "11 guest windows"):
        stop(mon, "kvm monitor")
        return
    # The scratch dir holds the QEMU sockets: find QEMU by the monitor's children.
    qemus = qemu_pids(mon.pid)
    check(len(qemus) == 1, f"one QEMU running: {qemus}")
    for p in qemus:
        os.kill(p, signal.SIGKILL)
    killed_at = time.time_ns()
    log(f"QEMU {qemus} killed")
    wait_for(lambda: [r for r in read_records(session) if r["type"] == "gap-end"], 600, "a gap closed by a new guest")
    wait_for(lambda: len(windows_of(read_records(session), 2)) >= 2, 120, "2 windows of the new guest")
    new_qemus = qemu_pids(mon.pid)
    check(len(new_qemus) == 1 and new_qemus != qemus, f"a new QEMU runs: {new_qemus}")
    stop(mon, "kvm monitor")
    records = all_files_parse(session)
    first = sorted(windows_of(records, 1), key=lambda w: w["seq"])
    check_tiling(first, "kvm guest")
    # Each window of a live guest: what the host did to its 2 vCPU threads since the last one.
    hosts = [w.get("host") for w in first[:-1]]
    check(hosts and all(h and len(h["vcpu_threads"]) == 2 and
                        all(isinstance(t["run_queue_wait_ns"], int) and t["run_queue_wait_ns"] >= 0 and
                            isinstance(t["involuntary_switches"], int) and t["involuntary_switches"] >= 0
                            for t in h["vcpu_threads"]) for h in hosts),
          f"kvm: each window's host-side wait of the vCPU threads ({hosts[:2]})")
    check(sum(t["run_queue_wait_ns"] for h in hosts for t in h["vcpu_threads"]) > 0,
          "kvm: the vCPU threads waited on the host at some point (2 cores shared with QEMU's other threads)")
    gaps = [r for r in records if r["type"] == "gap"]
    check(len(gaps) == 1 and gaps[0]["kind"] == "failure", f"kvm: one failure gap: {gaps}")
    if gaps:
        # The gap starts at the last window's end, a time of the guest's
        # CLOCK_REALTIME, which the guest sets from the emulated RTC at boot
        # (whole seconds): it may lead the host's clock by up to a second.
        lead_ns = gaps[0]["start_unix_ns"] - killed_at
        check(lead_ns <= 1_500_000_000,
              f"kvm: the gap starts before the kill, within the guest clock's offset ({lead_ns / 1e9:+.3f}s after it)")
    second = windows_of(records, 2)
    end = [r for r in records if r["type"] == "gap-end"]
    check(second and end and second[0]["start_unix_ns"] == end[0]["end_unix_ns"], "kvm: the gap ends at the new guest's first window")
    rj = subprocess.run([args.vmlat, "report", session, "--format", "json", "--output", "-"], capture_output=True, text=True)
    rgaps = json.loads(rj.stdout)["gaps"] if rj.returncode == 0 else []
    check(len(rgaps) == 1 and rgaps[0]["kind"] == "failure" and rgaps[0]["end_unix_ns"], f"report: the gap, closed: {rgaps}")
    rep = subprocess.run([args.vmlat, "report", session], capture_output=True, text=True)
    check(rep.returncode == 0 and 'class="gap"' in open(os.path.join(session, "report.html")).read(),
          "report: the gap shaded in the max-per-window plot")
    doc = json.load(open(os.path.join(session, "session.json")))
    check(doc["restarts"] == 1 and doc["gaps"] == 1, f"session.json: restarts {doc['restarts']}, gaps {doc['gaps']}")
    time.sleep(1)
    left = [p for p in qemus + new_qemus if os.path.exists(f"/proc/{p}")]
    check(not left, f"kvm: no QEMU left: {left}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--kvm", action="store_true", help="also the kvm guest part (QEMU; minutes under TCG)")
    ap.add_argument("--no-host", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("skip: needs root (SCHED_FIFO)")
        return 77
    tmp = tempfile.mkdtemp(prefix="vmlat-monitor-it-")
    t0 = time.time()
    if not args.no_host:
        host_tests(args, tmp)
    if args.kvm:
        if not subprocess.run(["which", "qemu-system-x86_64"], capture_output=True).returncode == 0:
            print("skip: no qemu-system-x86_64")
            return 77
        kvm_tests(args, tmp)
    # Only this test's monitors (their plans are in `tmp`): other monitors may run beside it.
    left = leftovers(tmp)
    check(not left, f"nothing left running: {left}")
    log(f"{CHECKS[0]} checks, {len(FAILURES)} failed, {time.time() - t0:.0f}s; files in {tmp}")
    if not FAILURES:
        subprocess.run(["rm", "-rf", tmp])
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
