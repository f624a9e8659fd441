#!/usr/bin/env python3
"""Host-side protocol test of vmlat-guest-agent (no QEMU needed).

The agent is started with --port pointing at a unix socket this test listens
on, and --no-poweroff, so every request kind can be exercised on the build
machine. The virtio-serial specifics (port discovery, host connect/disconnect)
are covered by plugins/common/guest/images/try-guest.py, which boots real guests.

Usage: host_test.py PATH-TO-vmlat-guest-agent
Prints one line per check and a closing 'N passed, N failed' line; exits 0 when
all passed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images"))
from vmlatchan import Channel, encode  # noqa: E402

passed = 0
failed: list[str] = []


def check(cond: bool, what: str, detail: object = "") -> None:
    global passed
    if cond:
        passed += 1
        print("ok   %s" % what)
    else:
        failed.append(what)
        print("FAIL %s %s" % (what, detail if isinstance(detail, str) else json.dumps(detail)[:1500]))


def start_agent(agent: str, tmp: Path, name: str, extra: list[str] | None = None):
    sock_path = tmp / ("%s.sock" % name)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    srv.settimeout(10)
    log = open(tmp / ("%s.log" % name), "wb")
    proc = subprocess.Popen([agent, "--port", str(sock_path), "--no-poweroff", "--workdir",
                             str(tmp / ("%s-work" % name))] + (extra or []),
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    conn, _ = srv.accept()
    srv.close()
    return proc, Channel(conn)


def expect(chan: Channel, rid, timeout: float = 10):
    return chan.recv(lambda k, o: o.get("id") == rid, timeout)


def main() -> int:
    agent = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="vmlat-agent-test-") as td:
        tmp = Path(td)
        proc, chan = start_agent(agent, tmp, "a", ["--output-cap", "1000"])
        try:
            kind, hello = chan.recv(lambda k, o: k == "hello", 10)
            check(all(k in hello for k in ("agent_version", "kernel_release", "uname_v", "cmdline", "nproc",
                                           "realtime", "boot_ns")), "hello has all fields", hello)
            check(hello["kernel_release"] == os.uname().release and hello["nproc"] == os.cpu_count(),
                  "hello describes this machine", hello)

            res, _ = chan.run(["echo", "hello"], 10)
            check(res["exit_code"] == 0 and res["stdout"] == "hello\n" and res["signal"] == 0
                  and res["timed_out"] is False, "exec echo", res)
            res, _ = chan.run(["sh", "-c", "echo $VMLAT_T; pwd; echo err >&2; exit 7"], 10,
                              env={"VMLAT_T": "xyz"}, cwd="/")
            check(res["exit_code"] == 7 and res["stdout"] == "xyz\n/\n" and res["stderr"] == "err\n",
                  "exec with env, cwd, stderr and exit code", res)
            res, _ = chan.run(["cat"], 10)
            check(res["exit_code"] == 0 and res["stdout"] == "", "stdin is /dev/null", res)

            res, _ = chan.run(["/no/such/program"], 10)
            check(res["exit_code"] == 127 and "No such file" in res.get("error", ""), "exec failure -> 127", res)
            res, _ = chan.run(["true"], 10, cwd="/no/such/dir")
            check(res["exit_code"] == 127 and res.get("error", "").startswith("chdir"), "bad cwd -> 127", res)

            res, _ = chan.run(["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' y"], 10)
            check(res["stdout"] == "y" * 1000 and res["stdout_truncated"] is True
                  and res["stderr_truncated"] is False, "output cap + truncation flag", res)
            res, _ = chan.run(["printf", "a\\377\\376b"], 10)
            check(res["exit_code"] == 0 and res["stdout"].startswith("a") and res["stdout"].endswith("b"),
                  "invalid UTF-8 output survives", res)

            t = time.monotonic()
            res, _ = chan.run(["sleep", "30"], 0.3)
            check(res["timed_out"] is True and res["signal"] == 15 and time.monotonic() - t < 5,
                  "timeout -> SIGTERM", res)
            t = time.monotonic()
            res, _ = chan.run(["sh", "-c", "trap '' TERM; sleep 30"], 0.3, grace_ms=300)
            check(res["timed_out"] is True and res["signal"] == 9 and time.monotonic() - t < 5,
                  "timeout, SIGTERM ignored -> SIGKILL after grace_ms", res)

            chan.send("exec", {"id": 100, "argv": ["sleep", "30"], "background": True})
            _, st = expect(chan, 100)
            check(_ == "started" and st.get("pid", 0) > 0, "background -> started", st)
            chan.send("exec", {"id": 100, "argv": ["true"]})
            k, err = expect(chan, 100)
            check(k == "error" and "still running" in err["message"], "duplicate running id -> error", err)
            res, _ = chan.run(["true"], 10)
            check(res["exit_code"] == 0, "foreground exec while a background one runs", res)
            t = time.monotonic()
            chan.send("stop", {"id": 100, "grace_ms": 1000})
            k, ex = expect(chan, 100)
            check(k == "exit" and ex["stopped"] is True and ex["signal"] == 15 and ex["background"] is True
                  and time.monotonic() - t < 2, "stop -> exit", ex)
            chan.send("stop", {"id": 100})
            k, err = expect(chan, 100)
            check(k == "error" and "no running process" in err["message"], "stop of finished id -> error", err)

            chan.send("exec", {"id": 101, "argv": ["sh", "-c", "exit 3"], "background": True})
            k1, _ = expect(chan, 101)
            k2, ex = expect(chan, 101)
            check(k1 == "started" and k2 == "exit" and ex["exit_code"] == 3 and ex["stopped"] is False,
                  "background that ends by itself -> started, then exit", ex)

            chan.send("ping", {"id": 7})
            k, pong = expect(chan, 7)
            check(k == "pong" and pong.get("boot_ns", 0) > 0, "ping -> pong", pong)

            chan.send_raw(b"boot noise\n@@VMLAT1 exec 2 deadbeef\n{}\n@@END deadbeef\n")
            k, err = chan.recv(lambda k, o: k == "error", 10)
            check("checksum" in err["message"], "corrupt frame -> error", err)
            chan.send_raw(encode("exec", b"[1,2"))
            k, err = chan.recv(lambda k, o: k == "error", 10)
            check("not a JSON object" in err["message"], "non-JSON payload -> error", err)
            chan.send("launch", {"id": 8})
            k, err = expect(chan, 8)
            check(k == "error" and "unknown frame kind" in err["message"], "unknown kind -> error", err)
            for bad in ({"id": 9}, {"id": 9, "argv": []}, {"id": 9, "argv": [1]}, {"id": 9, "argv": ["x"],
                        "timeout_ms": -1}, {"id": 9, "argv": ["x"], "env": {"A": 1}},
                        {"id": 9, "argv": ["x"], "background": "yes"}):
                chan.send("exec", bad)
                k, err = expect(chan, 9)
                check(k == "error", "bad exec %s -> error" % json.dumps(bad), err)
            chan.send("exec", {"argv": ["true"]})
            k, err = chan.recv(lambda k, o: k == "error", 10)
            check("'id'" in err["message"], "exec without id -> error", err)
            res, _ = chan.run(["true"], 10)
            check(res["exit_code"] == 0, "still serving after bad input", res)

            chan.send("exec", {"id": 200, "argv": ["sleep", "30"], "background": True})
            expect(chan, 200)
            chan.send("shutdown", {})
            k, bye = chan.recv(lambda k, o: k == "bye", 10)
            check(bye.get("killed") == [200], "shutdown -> bye listing killed ids", bye)
            check(proc.wait(10) == 0, "agent exits 0 after shutdown with --no-poweroff")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        # The host closing the channel ends the agent (non-virtio ports) and its children.
        proc, chan = start_agent(agent, tmp, "b")
        try:
            chan.recv(lambda k, o: k == "hello", 10)
            chan.send("exec", {"id": 1, "argv": ["sleep", "30"], "background": True})
            _, st = expect(chan, 1)
            chan.sock.close()
            rc = proc.wait(10)
            time.sleep(0.1)
            alive = True
            try:
                os.kill(st["pid"], 0)
            except ProcessLookupError:
                alive = False
            check(rc == 3 and not alive, "host hangup -> agent exits 3, child killed", {"rc": rc, "alive": alive})
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    print("%d passed, %d failed" % (passed, len(failed)))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
