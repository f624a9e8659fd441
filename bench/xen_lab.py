#!/usr/bin/env python3
"""Benchmark: the Xen virtual lab under QEMU TCG (labs/xen).

Prints:
  lab          build (cached images), QEMU start -> Dom0 ready -> sshd answers, teardown
  dom0 channel per command (true, uname -r, xl list, vmlat version) the round trip of
               ssh with a ControlMaster connection, ssh without one (a new connection each
               time), and the alternative channel: vmlat's guest agent in Dom0 on a
               virtio-serial port (xen-lab --dom0-agent)
  domU         per type (pv, pvh, hvm): xl create, xl create -> agent hello, the probe run
               (cyclictest in the domU), teardown, total; through vmlat-xen-domu in Dom0
A benchmark, not a test: exits 0 whatever the figures are; 1 if something could not run.
Needs root, qemu-system-x86 and a built tree (build/). Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins/common/guest/images"))
from vmlatchan import Channel  # noqa: E402

XEN_LAB = REPO / "labs/xen/xen-lab"
DOMU = "/usr/local/libexec/vmlat/vmlat-xen-domu"
IMAGE = "/var/cache/vmlat/guests/nrt"
COMMANDS = [("true", ["true"]), ("uname -r", ["uname", "-r"]), ("xl list", ["xl", "list"]),
            ("vmlat version", ["/usr/local/bin/vmlat", "version"])]


def loadavg() -> str:
    return open("/proc/loadavg").read().split()[0]


def timed(argv: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    return time.monotonic() - t, r


def stats(xs: list[float]) -> str:
    if not xs:
        return "-"
    return "%6.3f (%5.3f-%5.3f)" % (statistics.median(xs), min(xs), max(xs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--reps", type=int, default=5, help="repetitions per Dom0 command and channel")
    ap.add_argument("--types", default="pv,pvh,hvm", help="domU types to boot (comma-separated)")
    ap.add_argument("--probe-s", type=int, default=3, help="cyclictest duration in each domU")
    ap.add_argument("--boot-timeout-s", type=int, default=600, help="per domU (HVM under a loaded TCG is slow)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vmlat-bench-xen-"))
    lab = work / "lab"
    up = False
    try:
        print("load average %s at start" % loadavg())
        r = subprocess.run(["cmake", "--install", args.build, "--prefix", str(work / "prefix")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode:
            print("xen_lab: cmake --install failed: %s" % r.stderr, file=sys.stderr)
            return 1
        t_start, r = timed([str(XEN_LAB), "start", "--dir", str(lab), "--vmlat-prefix", str(work / "prefix"),
                            "--dom0-agent"])
        if r.returncode:
            print("xen_lab: the lab did not start:\n%s" % r.stderr, file=sys.stderr)
            return 1
        up = True
        info = json.loads((lab / "lab.json").read_text())
        print("lab: build %.1fs (cached images), QEMU start -> Dom0 ready %.1fs -> ssh %.1fs; xen-lab start %.1fs" % (
            info["build_s"], info["qemu_start_to_ready_s"], info["qemu_start_to_ssh_s"], t_start))

        cfg = info["ssh_config"]
        master = ["ssh", "-F", cfg, "xen-lab", "--"]
        fresh = ["ssh", "-F", cfg, "-o", "ControlMaster=no", "-o", "ControlPath=none", "xen-lab", "--"]
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(info["agent_socket"])
        agent = Channel(sock)
        agent.recv(lambda k, o: k == "hello", 120)
        print()
        print("dom0 channel, seconds per command: median (min-max) of %d" % args.reps)
        print("%-15s %-22s %-22s %-22s" % ("command", "ssh + ControlMaster", "ssh, new connection", "agent (virtio-serial)"))
        for name, argv in COMMANDS:
            rows = {"master": [], "fresh": [], "agent": []}
            for _ in range(args.reps):
                for kind, prefix in (("master", master), ("fresh", fresh)):
                    dt, r = timed(prefix + argv)
                    if r.returncode:
                        raise RuntimeError("%s over %s failed: %s" % (name, kind, r.stderr))
                    rows[kind].append(dt)
                obj, dt = agent.run(argv, timeout=120)
                if obj.get("exit_code") != 0:
                    raise RuntimeError("%s through the agent failed: %s" % (name, obj))
                rows["agent"].append(dt)
            print("%-15s %-22s %-22s %-22s" % (name, stats(rows["master"]), stats(rows["fresh"]), stats(rows["agent"])))
        sock.close()

        print()
        print("domU (vmlat-xen-domu in Dom0), seconds; cyclictest %ds at 1ms in the domU" % args.probe_s)
        print("%-5s %9s %14s %8s %9s %7s  %s" % ("type", "xl create", "create->hello", "probe", "teardown", "total", "result"))
        for t in [x for x in args.types.split(",") if x]:
            dt, r = timed(master + [DOMU, "run", "--type", t, "--image", IMAGE, "--name", "bench-" + t,
                                    "--work-dir", "/tmp/bench-" + t, "--boot-timeout-s", str(args.boot_timeout_s),
                                    "--", "cyclictest", "-q", "-m", "-p", "80", "-i", "1000", "-D", str(args.probe_s),
                                    "-h", "2000"])
            try:
                doc = json.loads(r.stdout)
            except ValueError:
                doc = {"error": r.stderr.strip()[-300:]}
            tm = doc.get("timings", {})
            res = doc.get("result", {})
            verdict = "ok" if r.returncode == 0 else "exit %d: %s" % (r.returncode, doc.get("error", "?"))
            if r.returncode == 0 and "Max Latencies" not in res.get("stdout", "") and "T: 0" not in res.get("stdout", ""):
                verdict = "ok (no cyclictest summary?)"
            print("%-5s %9.2f %14.2f %8.2f %9.2f %7.2f  %s" % (
                t, tm.get("xl_create_s", 0), tm.get("create_to_hello_s", 0), tm.get("command_s", 0),
                tm.get("teardown_s", 0), dt, verdict))
        left = subprocess.run(master + ["xl", "list"], stdout=subprocess.PIPE, text=True).stdout
        print("xl list afterwards: %s" % ", ".join(l.split()[0] for l in left.splitlines()[1:]))
        t_stop, _ = timed([str(XEN_LAB), "stop", "--dir", str(lab)])
        up = False
        info = json.loads((lab / "lab.json").read_text())
        print()
        print("lab teardown %.1fs (%s); load average %s at the end" % (t_stop, info.get("teardown"), loadavg()))
        return 0
    except (RuntimeError, OSError, TimeoutError, EOFError) as e:
        print("xen_lab: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if up:
            subprocess.run([str(XEN_LAB), "stop", "--dir", str(lab)])
        if args.keep:
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
