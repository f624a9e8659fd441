#!/usr/bin/env python3
"""Benchmark: a libvirt cell against a kvm cell on the same image and settings.

Starts a private libvirtd (a mount namespace with its own /etc/libvirt,
/run/libvirt, /var/lib|log|cache/libvirt and its socket in a temporary
directory, as plugins/libvirt/tests/libvirt_e2e_test.cpp does), then
alternates (A B A B ...) a one-cell `vmlat run` with the kvm backend and one
with the libvirt backend (transient domain): nrt guest, 2 vCPUs pinned to
host CPUs 0 and 1, emulator on CPU 0, 512 MiB, no FIFO vCPUs (the kvm
backend would make both FIFO, which a 2-CPU host refuses), cyclictest in the
guest. Prints per round and as medians:

  boot-to-first-sample  process start -> cyclictest started in the guest
                        (the cell.log line "running cyclictest on guest")
  run total             process start -> process exit

and the libvirt/kvm ratios against the target (1.10x). A benchmark, not a
test: exits 0 whatever the figures are; 1 if something could not run.
Needs root, libvirtd with the QEMU driver, qemu-system-x86_64 and a built
tree (build/vmlat, the kvm and libvirt plugins). Python 3 standard library.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.10

DAEMON_SCRIPT = r'''set -e
d="$1"
for m in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
  mkdir -p "$d/${m%%:*}" "${m#*:}"
  mount --bind "$d/${m%%:*}" "${m#*:}"
done
exec libvirtd -f "$d/libvirtd.conf" -p "$d/run/libvirtd.pid"
'''

PLAN = """[plan]
name = "bench-{backend}"
duration = "{duration}s"
period = "1ms"
results = "{results}"

[timeouts]
prepare = "15m"
boot = "180s"

[matrix]
backend = ["{backend}"]
workload = ["none"]
probe = ["cyclictest"]

[backend.{backend}]
{table}
memory_mb = 512
vcpus = 2
vcpu_pin = "0-1"
emulator_pin = "0"
vcpu_priority = 0

[probe.cyclictest]
plugin = "cyclic"
engine = "cyclictest"
priority = 95
"""


def start_daemon(d: Path) -> subprocess.Popen:
    for sub in ("etc", "run", "lib", "log", "cache", "sock"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "etc/qemu.conf").write_text('user = "root"\ngroup = "root"\ncgroup_controllers = [ ]\nstdio_handler = "file"\n'
                                     'namespaces = [ ]\nsecurity_driver = "none"\nremember_owner = 0\n')
    (d / "libvirtd.conf").write_text(f'unix_sock_dir = "{d}/sock"\nunix_sock_rw_perms = "0700"\nauth_unix_rw = "none"\n'
                                     f'auth_unix_ro = "none"\nlog_outputs = "3:file:{d}/libvirtd.log"\n')
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", DAEMON_SCRIPT, "sh", str(d)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"qemu:///system?socket={d}/sock/libvirt-sock"
    for _ in range(300):
        if subprocess.run(["virsh", "-c", uri, "version"], capture_output=True).returncode == 0:
            return p
        time.sleep(0.1)
    p.kill()
    raise RuntimeError("libvirtd did not come up")


def one_run(build: Path, work: Path, backend: str, table: str, duration: int, lock: Path) -> dict:
    results = work / f"results-{backend}-{time.time_ns()}"
    plan = work / f"{backend}.toml"
    plan.write_text(PLAN.format(backend=backend, table=table, duration=duration, results=results))
    t0 = time.time()
    p = subprocess.Popen([str(build / "vmlat"), "run", str(plan), "--quiet", "--lock-dir", str(lock)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    while p.poll() is None:
        if first is None:
            for log in results.glob("*/cells/*/cell.log"):
                if "running cyclictest on guest" in log.read_text(errors="replace"):
                    first = time.time() - t0
        time.sleep(0.02)
    total = time.time() - t0
    if p.returncode not in (0, 1):
        raise RuntimeError(f"{backend}: vmlat run exited {p.returncode}: {p.stderr.read()[-2000:]}")
    return {"first": first, "total": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds of measurement per cell")
    ap.add_argument("--build", type=Path, default=REPO / "build")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmlat-lvb-", dir="/tmp") as tmp:
        d = Path(tmp)
        lock = d / "lock"
        lock.mkdir()
        daemon = start_daemon(d / "daemon")
        uri = f"qemu:///system?socket={d}/daemon/sock/libvirt-sock"
        tables = {"kvm": 'accel = "auto"', "libvirt": f'uri = "{uri}"\ndefine = true\nlock_memory = false'}
        rows = {"kvm": [], "libvirt": []}
        try:
            for r in range(a.rounds):
                for backend in ("kvm", "libvirt"):
                    m = one_run(a.build, d, backend, tables[backend], a.duration, lock)
                    rows[backend].append(m)
                    print(f"round {r + 1} {backend:8s} boot-to-first-sample {m['first'] or float('nan'):6.2f} s"
                          f"  run total {m['total']:6.2f} s", flush=True)
        except Exception as e:  # noqa: BLE001 (a benchmark reports and stops)
            print(f"libvirt_vs_kvm: {e}", file=sys.stderr)
            return 1
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    for key, label in (("first", "boot-to-first-sample"), ("total", "run total")):
        k = statistics.median(x[key] for x in rows["kvm"] if x[key] is not None)
        lv = statistics.median(x[key] for x in rows["libvirt"] if x[key] is not None)
        ratio = lv / k
        print(f"median {label:22s} kvm {k:6.2f} s  libvirt {lv:6.2f} s  ratio {ratio:.2f}x "
              f"({'within' if ratio <= TARGET else 'above'} the {TARGET:.2f}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
