#!/usr/bin/env python3
"""Debian's headless Chromium driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4; python3
stdlib only), for the report browser test and bench/report_bench.

How a page's opening is timed (the one measurement both use): a fresh
browser is started on about:blank, the page is navigated to from file://,
and once its load event has fired the page is asked for the time of the
first frame painted after it (requestAnimationFrame, then a task: the frame
has been produced). Reported, in ms from the navigation's start
(Navigation Timing): `load` (loadEventEnd), `fcp` (first contentful paint)
and `painted` (that frame: the page loaded and drawn, the figure the
targets are about), plus `wall`: navigate command to load event as seen
from here.

  chromium_cdp.py --time PAGE [--rounds N] [--chromium chromium]

prints one JSON object per round and a last line with the medians.
"""

import argparse
import base64
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--hide-scrollbars"]

PAINTED = """new Promise(r => requestAnimationFrame(() => setTimeout(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  r(JSON.stringify({load: nav.loadEventEnd, fcp: fcp ? fcp.startTime : null, painted: performance.now()}));
})))"""


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; messages of the page's console
    and of its security checks (CSP violations) collected in `console`."""

    def __init__(self, binary, width=1280, height=900, timeout=120):
        self.timeout = timeout
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="vmlat-cdp-")
        to_child, self._out = os.pipe()   # we write, Chromium reads fd 3
        self._in, from_child = os.pipe()  # Chromium writes fd 4

        def fds():
            a, b = os.dup(to_child), os.dup(from_child)  # dup first: 3 or 4 may be one of them
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.setpgid(0, 0)

        self.proc = subprocess.Popen([binary] + FLAGS + ["--remote-debugging-pipe", "--user-data-dir=" + self.profile,
                                                         "--window-size=%d,%d" % (width, height), "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=fds, close_fds=False)
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._id = 0
        self.events = []
        self.console = []
        self.session = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = [t for t in targets if t["type"] == "page"]
        if not page:
            raise CdpError("no page target: %s" % targets)
        self.session = self.call("Target.attachToTarget", {"targetId": page[0]["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def _recv(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("no answer from Chromium in %ss" % self.timeout)
            ready, _, _ = select.select([self._in], [], [], left)
            if not ready:
                continue
            data = os.read(self._in, 1 << 20)
            if not data:
                raise CdpError("Chromium closed its pipe (exit %s)" % self.proc.poll())
            self._buf += data
        msg, self._buf = self._buf.split(b"\0", 1)
        m = json.loads(msg)
        if "method" in m:
            self._note(m)
        return m

    def _note(self, m):
        self.events.append(m)
        p = m.get("params", {})
        if m["method"] == "Runtime.consoleAPICalled":
            self.console.append("console.%s: %s" % (p.get("type"), " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))))
        elif m["method"] == "Log.entryAdded":
            e = p.get("entry", {})
            self.console.append("%s %s: %s" % (e.get("source"), e.get("level"), e.get("text")))
        elif m["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console.append("exception: %s %s" % (d.get("text"), (d.get("exception") or {}).get("description")))

    def call(self, method, params=None, session=True):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._recv(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise CdpError("%s: %s" % (method, m["error"]))
                return m.get("result", {})

    def wait_event(self, method, since):
        deadline = time.monotonic() + self.timeout
        while True:
            for e in self.events[since:]:
                if e.get("method") == method:
                    return e
            since = len(self.events)
            self._recv(deadline)

    def open(self, page):
        """Navigates to file://PAGE and waits for its load event; the wall time in ms."""
        mark = len(self.events)
        t0 = time.monotonic()
        self.call("Page.navigate", {"url": "file://" + os.path.abspath(page)})
        self.wait_event("Page.loadEventFired", mark)
        return (time.monotonic() - t0) * 1000

    def eval(self, expression):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CdpError("%s: %s" % (expression[:80], r["exceptionDetails"].get("exception", {}).get("description")))
        return r["result"].get("value")

    def timing(self):
        """load, fcp, painted (ms from the navigation's start) of the page just opened."""
        return json.loads(self.eval(PAINTED))

    def settle(self):
        """Waits until the page has drawn what it started drawing (a vmlat
        report's body[data-pending] back at 0; other pages at once)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.eval("document.body ? (document.body.dataset.pending || '0') : '0'") == "0":
                return
            time.sleep(0.05)
        raise CdpError("the page is still drawing after %ss" % self.timeout)

    def dom(self):
        return self.eval("document.documentElement.outerHTML")

    def screenshot(self, png, height):
        """The page in a window `height` px tall (the viewport is put back after)."""
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        with open(png, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except (CdpError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        for fd in (self._in, self._out):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def time_page(binary, page, rounds=3):
    """`rounds` fresh browsers each opening PAGE once: their timings and the medians."""
    out = []
    for _ in range(rounds):
        with Browser(binary) as b:
            wall = b.open(page)
            t = b.timing()
            t["wall"] = wall
            out.append(t)
    med = {k: statistics.median(r[k] for r in out if r[k] is not None) for k in ("load", "fcp", "painted", "wall")
           if any(r[k] is not None for r in out)}
    return out, med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time", required=True, metavar="PAGE")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    a = ap.parse_args()
    rounds, med = time_page(a.chromium, a.time, a.rounds)
    for r in rounds:
        print(json.dumps({k: round(v, 1) if v is not None else None for k, v in r.items()}))
    print(json.dumps({"median": {k: round(v, 1) for k, v in med.items()}, "bytes": os.path.getsize(a.time)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
