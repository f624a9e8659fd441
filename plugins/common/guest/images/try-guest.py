#!/usr/bin/env python3
"""try-guest: boots vmlat guests in QEMU and drives their agent end to end.

For each flavour: build (or reuse) the guest with build-guest, boot it under
QEMU (TCG unless --accel kvm), wait for the agent's `hello` on the
virtio-serial port, then run `uname -r`, a short cyclictest with --json and
`cat` of its output, the probe when the guest has one, a few agent protocol
checks (background + stop, timeout, exec failure, corrupt frame), and finally
`shutdown`, checking that QEMU exits by itself. Prints timings.

Usage: try-guest.py [--flavour nrt|rt|both] [--cache DIR] [--agent PATH]
                    [--probe PATH] [--accel tcg|kvm] [--keep DIR] [--quick]
Exits 0 when every check passed. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from vmlatchan import Channel, Decoder, encode  # noqa: E402
REPO = HERE.parents[3]
BUILD_GUEST = HERE / "build-guest"
PORT_NAME = "org.vmlat.0"


# --------------------------------------------------------------- helpers
class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def check(self, cond: bool, what: str, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print("  ok   %s" % what)
        else:
            self.failed.append(what)
            print("  FAIL %s %s" % (what, detail))
        return cond


def build_agent() -> Path:
    bdir = Path("/tmp/vmlat-agent-build")
    subprocess.run(["cmake", "-S", str(REPO / "plugins/common/guest/agent"), "-B", str(bdir), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", str(bdir)], check=True, stdout=subprocess.DEVNULL)
    return bdir / "libexec" / "vmlat-guest-agent"


def build_guest(args, flavour: str) -> tuple[dict, float]:
    cmd = [str(BUILD_GUEST), "--flavour", flavour, "--cache", args.cache, "--agent", str(args.agent),
           "--print-json"]
    if args.probe:
        cmd += ["--probe", args.probe]
    t = time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out), time.monotonic() - t


def qemu_argv(guest: dict, sock: Path, console: Path, accel: str, append: str) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-accel", accel,
        "-m", "512",
        "-smp", "2",
        "-nographic",
        "-nodefaults",
        "-monitor", "none",
        "-no-reboot",
        "-kernel", guest["vmlinuz"],
        "-initrd", guest["initramfs"],
        "-append", append,
        "-serial", "file:%s" % console,
        "-device", "virtio-serial-pci",
        "-chardev", "socket,id=ch0,path=%s,server=on,wait=off" % sock,
        "-device", "virtserialport,chardev=ch0,name=%s" % PORT_NAME,
    ]


def connect(sock_path: Path, proc: subprocess.Popen, timeout: float = 20) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("qemu exited early with %s" % proc.returncode)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(sock_path))
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def stop_qemu(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def summarize_cyclictest(text: str) -> str:
    try:
        ct = json.loads(text)
    except ValueError as e:
        return "unparsable (%s)" % e
    threads = ct.get("thread", {})
    parts = []
    for tid, t in sorted(threads.items()):
        parts.append("thread %s: cycles=%s min=%sus avg=%sus max=%sus" % (
            tid, t.get("cycles"), t.get("min"), t.get("avg"), t.get("max")))
    return "; ".join(parts) or "no threads in output"


# --------------------------------------------------------------- one flavour
def try_flavour(args, flavour: str, checks: Checks) -> dict:
    print("== %s" % flavour)
    guest, build_s = build_guest(args, flavour)
    timings = {"build_or_reuse_s": round(build_s, 2)}
    print("  guest %s: kernel %s (%s %s), preempt=%s, initramfs %d KiB, probe included: %s" % (
        guest["hash"], guest["kernel"]["release"], guest["kernel"]["package"], guest["kernel"]["version"],
        guest["kernel"]["preempt"], guest["initramfs_info"]["bytes"] // 1024,
        guest["contents"]["probe"]["included"]))

    work = Path(tempfile.mkdtemp(prefix="vmlat-try-%s-" % flavour))
    sock_path = work / "ch0.sock"
    console = work / "console.log"
    argv = qemu_argv(guest, sock_path, console, args.accel, args.append)
    print("  qemu: %s" % " ".join(argv))
    proc = None
    chan = None
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(work / "qemu.out", "wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        sock = connect(sock_path, proc)
        chan = Channel(sock)
        _, hello = chan.recv(lambda k, o: k == "hello", 120)
        t_hello = time.monotonic() - t0
        timings["qemu_start_to_hello_s"] = round(t_hello, 2)
        timings["guest_boot_ns_at_hello"] = hello.get("boot_ns")
        print("  hello after %.2fs wall (guest CLOCK_BOOTTIME %.2fs): %s" % (
            t_hello, hello.get("boot_ns", 0) / 1e9, json.dumps(hello)))
        checks.check(hello.get("kernel_release") == guest["kernel"]["release"], "%s: hello kernel_release" % flavour)
        checks.check(hello.get("realtime") == (1 if guest["kernel"]["preempt_rt"] else 0),
                     "%s: hello realtime flag" % flavour)
        checks.check(hello.get("nproc") == 2, "%s: hello nproc == 2" % flavour)

        res, dt = chan.run(["uname", "-r"], 30)
        timings["uname_s"] = round(dt, 2)
        checks.check(res.get("exit_code") == 0 and res.get("stdout", "").strip() == guest["kernel"]["release"],
                     "%s: uname -r -> %r (%.2fs)" % (flavour, res.get("stdout", "").strip(), dt), json.dumps(res))

        ct_argv = ["cyclictest", "-m", "-q", "-p", "95", "-i", "1000", "-t", "1", "-D", str(args.duration),
                   "--json=/tmp/ct.json", "-h", "1000"]
        res, dt = chan.run(ct_argv, 120)
        timings["cyclictest_%ss_s" % args.duration] = round(dt, 2)
        checks.check(res.get("exit_code") == 0, "%s: cyclictest -D %s exit 0 (%.2fs wall)" % (flavour, args.duration, dt),
                     json.dumps(res)[:2000])
        res, dt = chan.run(["cat", "/tmp/ct.json"], 30)
        ok = res.get("exit_code") == 0
        summary = summarize_cyclictest(res.get("stdout", "")) if ok else res.get("stderr")
        checks.check(ok and "cycles=" in summary, "%s: cyclictest json: %s" % (flavour, summary))
        timings["cyclictest_result"] = summary

        if hello.get("probe"):
            res, dt = chan.run(["vmlat-probe", "--version"], 30)
            checks.check(res.get("exit_code") == 0, "%s: vmlat-probe --version: %s" % (
                flavour, res.get("stdout", "").strip()), json.dumps(res)[:2000])
            res, dt = chan.run(["vmlat-probe", "--duration-ms", str(args.duration * 1000), "--priority", "95",
                                "--cpus", "0"], 120)
            frames = Decoder().feed(res.get("stdout", "").encode())
            summary = ""
            if frames:
                try:
                    pr = json.loads(frames[0][1])
                    summary = "; ".join("cpu %s: samples=%s min=%.1fus max=%.1fus avg=%.1fus" % (
                        t.get("cpu"), t.get("samples"), t.get("min_ns", 0) / 1e3, t.get("max_ns", 0) / 1e3,
                        t.get("sum_ns", 0) / 1e3 / max(1, t.get("samples", 1))) for t in pr.get("threads", []))
                except (ValueError, TypeError, AttributeError) as e:
                    summary = "unparsable: %s" % e
            timings["probe_%ss_s" % args.duration] = round(dt, 2)
            timings["probe_result"] = summary
            checks.check(res.get("exit_code") == 0 and len(frames) == 1,
                         "%s: vmlat-probe %ss (%.2fs wall): %s %s" % (
                             flavour, args.duration, dt, frames[0][0] if frames else "no frame", summary),
                         json.dumps(res)[:2000])
        else:
            print("  (no probe in this guest: skipped)")

        if not args.quick:
            protocol_checks(chan, flavour, checks, timings)
            # The host side goes away and comes back: the agent greets again.
            rid = chan.next_id
            chan.sock.close()
            time.sleep(0.3)
            t = time.monotonic()
            chan = Channel(connect(sock_path, proc))
            chan.next_id = rid
            _, hello2 = chan.recv(lambda k, o: k == "hello", 30)
            res, _ = chan.run(["true"], 10)
            checks.check(hello2.get("boot_ns", 0) > hello.get("boot_ns", 0) and res.get("exit_code") == 0,
                         "%s: reconnect -> fresh hello after %.2fs, agent serving" % (flavour, time.monotonic() - t))

        t = time.monotonic()
        chan.send("shutdown", {})
        _, bye = chan.recv(lambda k, o: k == "bye", 30)
        checks.check(True, "%s: bye %s" % (flavour, json.dumps(bye)))
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        timings["shutdown_to_qemu_exit_s"] = round(time.monotonic() - t, 2)
        checks.check(rc == 0, "%s: qemu exited by itself after shutdown (rc=%s, %.2fs)" % (
            flavour, rc, timings["shutdown_to_qemu_exit_s"]))
        timings["total_qemu_wall_s"] = round(time.monotonic() - t0, 2)
    except Exception as e:  # report and go on to the next flavour
        checks.check(False, "%s: run aborted: %s: %s" % (flavour, type(e).__name__, e))
    finally:
        if chan is not None:
            chan.sock.close()
        stop_qemu(proc)
        log = console.read_text(errors="replace") if console.exists() else ""
        print("  console.log (last lines):")
        for line in log.splitlines()[-12:]:
            print("    | %s" % line)
        if args.keep:
            dest = Path(args.keep) / flavour
            dest.mkdir(parents=True, exist_ok=True)
            for f in ("console.log", "qemu.out"):
                if (work / f).exists():
                    shutil.copy(work / f, dest / f)
        shutil.rmtree(work, ignore_errors=True)
    print("  timings: %s" % json.dumps(timings))
    return timings


def protocol_checks(chan: Channel, flavour: str, checks: Checks, timings: dict) -> None:
    # background + stop
    rid = chan.next_id
    chan.next_id += 1
    chan.send("exec", {"id": rid, "argv": ["stress-ng", "--cpu", "1", "--timeout", "60s", "-q"],
                       "background": True})
    _, started = chan.recv(lambda k, o: o.get("id") == rid, 30)
    checks.check(started.get("pid", 0) > 0 and "exit_code" not in started,
                 "%s: background stress-ng started %s" % (flavour, json.dumps(started)))
    # stress-ng forks its worker a moment after it starts
    res, dt = chan.run(["sh", "-c", "sleep 1; ps | grep -c '[s]tress-ng'"], 30)
    checks.check(res.get("exit_code") == 0 and int(res.get("stdout", "0").strip() or 0) >= 2,
                 "%s: stress-ng processes running: %s" % (flavour, res.get("stdout", "").strip()))
    t = time.monotonic()
    chan.send("stop", {"id": rid, "grace_ms": 3000})
    _, ex = chan.recv(lambda k, o: o.get("id") == rid, 30)
    checks.check(ex.get("stopped") is True and ex.get("timed_out") is False,
                 "%s: stop -> exit code=%s signal=%s in %.2fs" % (flavour, ex.get("exit_code"), ex.get("signal"),
                                                                 time.monotonic() - t), json.dumps(ex)[:1000])
    res, _ = chan.run(["sh", "-c", "ps | grep -c '[s]tress-ng'; true"], 30)
    checks.check(res.get("stdout", "").strip() == "0", "%s: no stress-ng left after stop" % flavour,
                 res.get("stdout", ""))
    # timeout
    res, dt = chan.run(["sleep", "30"], 0.5)
    checks.check(res.get("timed_out") is True and res.get("signal") == 15,
                 "%s: timeout_ms=500 on sleep 30 -> timed_out, signal 15 (%.2fs)" % (flavour, dt), json.dumps(res))
    # exec failure
    res, _ = chan.run(["/nonexistent/binary"], 10)
    checks.check(res.get("exit_code") == 127 and "error" in res,
                 "%s: exec failure -> 127: %s" % (flavour, res.get("error")))
    # stop of an unknown id
    chan.send("stop", {"id": 999999})
    _, err = chan.recv(lambda k, o: o.get("id") == 999999, 10)
    checks.check(err.get("message", "").startswith("no running process"), "%s: stop unknown id -> error" % flavour)
    # corrupt frame (bad CRC), garbage JSON, unknown kind: agent answers `error` and keeps serving
    chan.send_raw(b"@@VMLAT1 exec 2 00000000\n{}\n@@END 00000000\n")
    _, err = chan.recv(lambda k, o: k == "error", 10)
    checks.check("checksum" in err.get("message", ""), "%s: corrupt frame -> error: %s" % (flavour, err.get("message")))
    chan.send_raw(encode("exec", b"not json"))
    _, err = chan.recv(lambda k, o: k == "error", 10)
    checks.check("not a JSON object" in err.get("message", ""), "%s: bad json -> error" % flavour)
    chan.send("frobnicate", {"id": 5})
    _, err = chan.recv(lambda k, o: k == "error", 10)
    checks.check("unknown frame kind" in err.get("message", ""), "%s: unknown kind -> error" % flavour)
    chan.send("exec", {"id": "x", "argv": "ls"})
    _, err = chan.recv(lambda k, o: k == "error", 10)
    checks.check("'id'" in err.get("message", ""), "%s: bad exec fields -> error" % flavour)
    # big output (over the 4 MiB cap)
    res, dt = chan.run(["sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' x"], 60)
    checks.check(res.get("stdout_truncated") is True and len(res.get("stdout", "")) == 4 << 20,
                 "%s: 5 MB stdout capped at 4 MiB and flagged (%.2fs)" % (flavour, dt))
    timings["big_output_s"] = round(dt, 2)
    res, _ = chan.run(["true"], 10)
    checks.check(res.get("exit_code") == 0, "%s: agent still serving" % flavour)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavour", choices=["nrt", "rt", "both"], default="both")
    ap.add_argument("--cache", default="/var/cache/vmlat/guests")
    ap.add_argument("--agent", help="vmlat-guest-agent binary (default: build it in /tmp/vmlat-agent-build)")
    ap.add_argument("--probe", help="static vmlat-probe to put in the guest")
    ap.add_argument("--accel", default="tcg")
    ap.add_argument("--duration", type=int, default=3, help="cyclictest -D seconds (default 3)")
    ap.add_argument("--append", default="console=ttyS0 panic=-1 quiet", help="kernel command line")
    ap.add_argument("--keep", help="copy console.log and qemu output here")
    ap.add_argument("--quick", action="store_true", help="skip the protocol checks")
    args = ap.parse_args()

    # SIGTERM/SIGHUP take the normal exit path so that QEMU is always killed.
    def on_signal(signo, _frame):
        raise SystemExit(128 + signo)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    if not args.agent:
        args.agent = build_agent()
    checks = Checks()
    flavours = ["nrt", "rt"] if args.flavour == "both" else [args.flavour]
    all_timings = {}
    for f in flavours:
        all_timings[f] = try_flavour(args, f, checks)
    print("== summary")
    print(json.dumps(all_timings, indent=2))
    print("%d passed, %d failed" % (checks.passed, len(checks.failed)))
    for f in checks.failed:
        print("  failed: %s" % f)
    return 0 if not checks.failed else 1


if __name__ == "__main__":
    sys.exit(main())
