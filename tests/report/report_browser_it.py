#!/usr/bin/env python3
"""Integration test of `vmlat report`: reports of real runs loaded in Debian's
headless Chromium (docs/report.md).

  1. a self-check: a page that logs to the console is caught by the same
     console check the reports go through (so the check can fail);
  2. real runs: plans/quickstart.toml (host backend, stress off/on, both probe
     engines, 1s cells), plans/period-sweep.toml (50us, 500us, 1ms: the
     decomposition's bars add up and their timer parts are the slop
     model's for the slop the page states, recomputed here) and, when QEMU is installed,
     plans/kvm-quick.toml without stress (nrt and rt guests, 1s cells) and a
     guest with trace_above (both traces linked inside the run directory, the
     time line holds the spike at its mapped host time and every host event);
  3. a hostile run: a copy of the host run whose plan name, an axis value, a
     cell's error message and a host fact carry markup;
  4. for each: `vmlat report`, then Chromium --dump-dom with its console log
     (every console message is a failure: the page has no script, and a
     blocked script or fetch is logged as a Content-Security-Policy
     violation), and a --screenshot kept in --artifacts;
  5. in the DOM: the verdict, every cell's section with its histogram and CCDF
     plots, the exact max of result.json (merged and per CPU), and the seed
     table with the worst case of each of its groups, computed here from the
     result.json files; for the hostile run, no element that the markup would
     have made, and the markup shown as text; trace names that lead out of
     the run directory are never links. Every cell: its worst wake-ups
     (result.json spikes) in order, its trace files linked. The overlay
     figures: each draws one line and legend entry per cell it names (a
     plan's own [[report.figure]] as it says, with its claims shown);
  6. the host run and the sweep merged (`vmlat report A B`): every cell of
     each run once, marked with its run, the runs listed, the verdict the
     worst of both;
  7. the history page (`vmlat history --format html`) of 20 runs made from
     the host run (tests/support/history_fixture.py): with a step and a
     kernel fact that carries markup, the step's run marked once on its
     cell's plot and the fact shown as text; without a step, no mark.

Usage: report_browser_it.py --vmlat build/vmlat --source-dir . --artifacts DIR
(python3 stdlib only; needs root for the probes' SCHED_FIFO, as vmlat run).
"""

import argparse
import html.parser
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from vmlat_it import CHECKS, FAILURES, check, die_with_parent, log  # noqa: E402
from history_fixture import STEP_AT, make_history  # noqa: E402

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def run(argv, timeout, **kw):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise RuntimeError("timed out after %ss: %s\n%s" % (timeout, " ".join(argv), err.decode(errors="replace")[-2000:]))
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


class Chromium:
    # Without these flags Debian's chromium waits for the network on this closed machine.
    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-default-apps", "--hide-scrollbars"]

    def __init__(self, binary, scratch):
        self.binary = binary
        self.scratch = scratch
        self.n = 0

    def _profile(self):
        self.n += 1
        d = os.path.join(self.scratch, "chromium-profile-%d" % self.n)
        os.makedirs(d)
        return d

    def dom(self, page):
        """The DOM after load, and every console message Chromium logged."""
        code, out, err = run([self.binary] + self.FLAGS + ["--user-data-dir=" + self._profile(), "--enable-logging=stderr",
                                                           "--v=0", "--dump-dom", "file://" + page], timeout=120)
        if code != 0:
            raise RuntimeError("chromium --dump-dom exited %d:\n%s" % (code, err[-2000:]))
        console = [line for line in err.splitlines() if ":CONSOLE" in line]
        return out, console

    def screenshot(self, page, png, height):
        code, _, err = run([self.binary] + self.FLAGS + ["--user-data-dir=" + self._profile(), "--window-size=1280,%d" % height,
                                                         "--screenshot=" + png, "file://" + page], timeout=120)
        if code != 0:
            raise RuntimeError("chromium --screenshot exited %d:\n%s" % (code, err[-2000:]))


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], []

    def classes(self):
        return set((self.attrs.get("class") or "").split())

    def find_all(self, tag=None, cls=None, **attrs):
        out = []
        stack = list(reversed(self.children))
        while stack:
            n = stack.pop()
            if (tag is None or n.tag == tag) and (cls is None or cls in n.classes()) and \
                    all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(n)
            stack.extend(reversed(n.children))
        return out

    def text_content(self):
        return "".join(self.text) + "".join(c.text_content() for c in self.children)

    def ancestor(self, tag):
        n = self.parent
        while n is not None and n.tag != tag:
            n = n.parent
        return n


class DomBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text.append(data)


def parse(dom_text):
    b = DomBuilder()
    b.feed(dom_text)
    b.close()
    return b.root


def load(path):
    with open(path) as f:
        return json.load(f)


def results_of(run_dir):
    run = load(os.path.join(run_dir, "run.json"))
    cells = []
    for c in run["cells"]:
        p = os.path.join(run_dir, c.get("dir", "cells/" + c["id"]), "result.json")
        cells.append(load(p) if os.path.exists(p) else {"cell": {"id": c["id"], "axes": c.get("axes", {})}, "status": c["status"]})
    return run, cells


def kernel_label(result):
    """The seed table's row of a cell: host kernel / guest kernel (docs/report.md)."""
    axes = result["cell"].get("axes", {})
    hk = axes.get("host_kernel")
    host = {"rt": "RT", "nrt": "NRT"}.get(hk)
    if host is None:
        rt = (result.get("host_facts") or {}).get("preempt_rt")
        host = "?" if rt is None else ("RT" if rt else "NRT")
    if "guest_kernel" in axes:
        gk = axes["guest_kernel"]
        return host + "/" + {"rt": "RT", "nrt": "NRT"}.get(gk, gk)
    rt = (((result.get("facts") or {}).get("backend") or {}).get("guest") or {}).get("system", {}).get("preempt_rt")
    if rt is not None:
        return host + "/" + ("RT" if rt else "NRT")
    plugin = ((result.get("plugins") or {}).get("backend") or {}).get("plugin", axes.get("backend"))
    if plugin != "host":
        return host
    dom0 = (result.get("host_facts") or {}).get("xen_role") == "dom0"
    return ("Dom0" if dom0 else "Host") + " (" + host + ")"


def measured_max(result):
    m = result.get("merged") or {}
    s = m.get("stats") or {}
    return s.get("max_ns") if result.get("status") == "measured" and s.get("samples", 0) > 0 else None


def check_report(name, run_dir, chromium, artifacts, expect_verdict):
    log("== %s: %s" % (name, run_dir))
    code, out, err = run([ARGS.vmlat, "report", run_dir], timeout=120)
    if not check(code == 0, "%s: vmlat report exited %d: %s" % (name, code, err)):
        return None
    page = os.path.join(run_dir, "report.html")
    dom_text, console = chromium.dom(page)
    check(not console, "%s: console messages while loading the report:\n  %s" % (name, "\n  ".join(console)))
    png = os.path.join(artifacts, "report-%s.png" % name)
    chromium.screenshot(page, png, 2400)
    with open(png, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "%s: %s is not a PNG" % (name, png))
    log("   screenshot: %s (%d bytes), DOM %d bytes" % (png, os.path.getsize(png), len(dom_text)))
    shutil.copy(page, os.path.join(artifacts, "report-%s.html" % name))
    doc = parse(dom_text)
    run_json, results = results_of(run_dir)

    header = doc.find_all("header", id="verdict")
    check(len(header) == 1 and header[0].attrs.get("data-verdict") == expect_verdict,
          "%s: verdict header %s, expected %s" % (name, [h.attrs for h in header], expect_verdict))

    sections = {s.attrs.get("data-cell-id"): s for s in doc.find_all("section", cls="cell")}
    check(len(sections) == len(run_json["cells"]), "%s: %d cell sections for %d cells" % (name, len(sections), len(run_json["cells"])))
    for r in results:
        cid = r["cell"]["id"]
        s = sections.get(cid)
        if not check(s is not None, "%s: no section for cell %r" % (name, cid)):
            continue
        check(s.attrs.get("data-status") == r["status"], "%s: %s status %s, result.json says %s" % (name, cid, s.attrs.get("data-status"), r["status"]))
        mx = measured_max(r)
        if mx is None:
            check(not s.find_all("svg"), "%s: %s was not measured but has plots" % (name, cid))
            continue
        check(s.attrs.get("data-max-ns") == str(mx), "%s: %s data-max-ns %s, result.json max_ns %s" % (name, cid, s.attrs.get("data-max-ns"), mx))
        hist = s.find_all("svg", cls="histogram")
        ccdf = s.find_all("svg", cls="ccdf")
        check(len(hist) == 1 and hist[0].find_all("path", cls="bars") and "Z" in hist[0].find_all("path", cls="bars")[0].attrs.get("d", ""),
              "%s: %s: no histogram with bars" % (name, cid))
        check(len(ccdf) == 1 and ccdf[0].find_all("path", cls="merged") and "V" in ccdf[0].find_all("path", cls="merged")[0].attrs.get("d", ""),
              "%s: %s: no CCDF line" % (name, cid))
        # The stats table: the merged row and every CPU's, each with its exact max.
        rows = {}
        for td in s.find_all("td", cls="max"):
            tr = td.parent
            th = tr.find_all("th")
            rows[th[0].text_content() if th else "?"] = td.attrs.get("data-ns")
        expected = {"all": str(mx)}
        for cpu, doc_cpu in (r.get("per_cpu") or {}).items():
            expected[cpu] = str(doc_cpu["stats"]["max_ns"])
        check(rows == expected, "%s: %s stats table max per CPU %s, result.json %s" % (name, cid, rows, expected))
        check_traces(name, run_dir, s, r)

    # The seed table: every group of cells (other axes, kernels, backend,
    # workload) appears once, with the worst case of its measured cells.
    placed = {"backend", "workload", "host_kernel", "guest_kernel"}
    groups = {}
    for r in results:
        axes = r["cell"].get("axes", {})
        fixed = ", ".join("%s = %s" % (k, v) for k, v in axes.items() if k not in placed)
        key = (fixed, kernel_label(r), axes.get("backend"), axes.get("workload"))
        g = groups.setdefault(key, {"ids": set(), "max": None})
        g["ids"].add(r["cell"]["id"])
        mx = measured_max(r)
        if mx is not None:
            g["max"] = mx if g["max"] is None else max(g["max"], mx)
    found = {}
    tables = doc.find_all("table", cls="seed")
    check(tables, "%s: no seed table" % name)
    for t in tables:
        caption = t.find_all("caption")[0].text_content() if t.find_all("caption") else ""
        for td in t.find_all("td", cls="worst"):
            if "data-cells" not in td.attrs:
                continue
            row = td.parent.find_all("th")[0].text_content()
            found[(caption, row, frozenset(td.attrs["data-cells"].split()))] = td.attrs.get("data-ns")
    for (fixed, row, backend, workload), g in groups.items():
        got = found.get((fixed, row, frozenset(g["ids"])), "missing")
        want = None if g["max"] is None else str(g["max"])
        check(got == want, "%s: seed table [%s] row %s %s/%s: %s, expected worst case %s" % (name, fixed, row, backend, workload, got, want))
    check(len(found) == len(groups), "%s: %d seed entries for %d groups" % (name, len(found), len(groups)))
    log("   %d cells, %d seed entries checked" % (len(results), len(found)))
    check_figures(name, doc, {s.attrs.get("data-cell-id") for s in doc.find_all("section", cls="cell")})
    return doc


def check_figures(name, doc, cell_ids):
    """The overlay figures: each names its cells, and its histogram and CCDF
    draw one line per cell (a path with class "line") and a legend entry."""
    figures = doc.find_all("figure", cls="overlay")
    for f in figures:
        ids = f.attrs.get("data-cells", "").split()
        check(len(ids) >= 2 and set(ids) <= cell_ids, "%s: figure %s names cells %s, not cells of the page" % (name, f.attrs.get("data-kind"), ids))
        draw = f.attrs.get("data-draw", "both")
        for kind in ("histogram", "ccdf"):
            svg = [v for v in f.find_all("svg") if kind in v.classes()]
            if draw not in ("both", kind):  # a plan's figure of one kind only
                check(not svg, "%s: figure drawn as %s has a %s" % (name, draw, kind))
                continue
            if not check(len(svg) == 1, "%s: figure without one %s" % (name, kind)):
                continue
            lines = [p for p in svg[0].find_all("path") if "line" in p.classes() and "V" in p.attrs.get("d", "")]
            legend = svg[0].find_all("text", cls="legend")
            check(svg[0].attrs.get("data-lines") == str(len(ids)) and len(lines) == len(ids) and len(legend) == len(ids),
                  "%s: %s overlay of %d cells: data-lines %s, %d lines, %d legend entries"
                  % (name, kind, len(ids), svg[0].attrs.get("data-lines"), len(lines), len(legend)))
    log("   %d overlay figures checked" % len(figures))
    return figures


def check_merged(chromium, artifacts, scratch, run_dirs, expect_verdict):
    """`vmlat report A B`: one page, each run's cells once per run and marked,
    one System entry per run, the verdict the worst of the runs'."""
    page = os.path.join(scratch, "merged.html")
    code, out, err = run([ARGS.vmlat, "report"] + run_dirs + ["--output", page], timeout=120)
    if not check(code == 0, "merged: vmlat report exited %d: %s" % (code, err)):
        return
    dom_text, console = chromium.dom(page)
    check(not console, "merged: console messages while loading the report:\n  %s" % "\n  ".join(console))
    chromium.screenshot(page, os.path.join(artifacts, "report-merged.png"), 2400)
    shutil.copy(page, os.path.join(artifacts, "report-merged.html"))
    doc = parse(dom_text)
    header = doc.find_all("header", id="verdict")
    check(header and header[0].attrs.get("data-verdict") == expect_verdict,
          "merged: verdict %s, expected %s" % ([h.attrs for h in header], expect_verdict))
    want = []
    for d in run_dirs:
        run_json, results = results_of(d)
        want += [(run_json["run_id"], r["cell"]["id"]) for r in results]
    got = []
    for s in doc.find_all("section", cls="cell"):
        marks = s.find_all("span", cls="run-mark")
        got.append((marks[0].attrs.get("data-run") if marks else None, s.attrs.get("data-cell-id")))
    check(sorted(got) == sorted(want), "merged: cell sections %s, expected each run's cells %s" % (got, want))
    runs = [h.attrs.get("data-run") for h in doc.find_all("h3", cls="source-run")]
    check(runs == [results_of(d)[0]["run_id"] for d in run_dirs], "merged: System lists runs %s" % runs)
    check(doc.find_all("table", cls="seed"), "merged: no seed table")
    check_figures("merged", doc, {s.attrs.get("data-cell-id") for s in doc.find_all("section", cls="cell")})
    log("   merged: %d cells of %d runs" % (len(got), len(run_dirs)))


def check_traces(name, run_dir, section, r):
    """The cell's worst wake-ups in order, and its trace files linked inside the run directory."""
    cid = r["cell"]["id"]
    spikes = r.get("spikes") or []
    rows = [tr.attrs.get("data-ns") for tr in section.find_all("tr", cls="spike")]
    check(rows == [str(x["latency_ns"]) for x in spikes[:50]],
          "%s: %s worst wake-ups in the page %s, result.json %s" % (name, cid, rows, [x["latency_ns"] for x in spikes]))
    # A guest that sampled its vCPU threads: each worst wake-up has the host's side in its row.
    if os.path.isfile(os.path.join(run_dir, "cells", cid, "host-evidence.jsonl")) and spikes:
        cells = [tr.find_all("td", cls="host-evidence") for tr in section.find_all("tr", cls="spike")]
        check(all(len(c) == 1 for c in cells), "%s: %s spike rows without the host's column" % (name, cid))
        check(any(c and c[0].attrs.get("data-wait-ns") is not None for c in cells),
              "%s: %s no worst wake-up joined with the host's samples" % (name, cid))
    root = os.path.realpath(run_dir)
    links = [a.attrs.get("href") for a in section.find_all("a", cls="trace")]
    for href in links:
        target = os.path.realpath(os.path.join(run_dir, href))
        check(target.startswith(root + os.sep) and os.path.isfile(target) and ".." not in href.split("/"),
              "%s: %s links %r, which is not a file inside the run directory" % (name, cid, href))
    want = ["cells/%s/%s" % (cid, t) for t in (r.get("traces") or [])
            if os.path.isfile(os.path.join(run_dir, "cells", cid, t)) and "/" not in t and not t.startswith(".")]
    check(sorted(set(links)) == sorted(set(want)), "%s: %s trace links %s, expected %s" % (name, cid, links, want))
    return links


def quantile_ns(hist, q):
    """Nearest-rank quantile of a stored histogram (results-format.md), computed here independently."""
    n = sum(c for _, c in hist["buckets"]) + hist.get("overflows", 0)
    rank = max(1, min(n, -(-int(round(q * n * 1e6)) // 1000000)))
    seen = 0
    for k, c in hist["buckets"]:
        seen += c
        if seen >= rank:
            return min(max(k * 1000, hist["min_ns"]), hist["max_ns"])
    return hist["max_ns"]


def timer_part_ns(hist, period_ns, slop_ns, q):
    """The slop model's timer part at quantile q (docs/decomposition.md), computed here independently: each
    bucketed wake-up L sets max(0, S - P + (L mod P)) for the next one (a bucket at its middle); nearest rank."""
    atoms = sorted((max(0, slop_ns - period_ns + (k * 1000 + 500) % period_ns), c) for k, c in hist["buckets"])
    n = sum(c for _, c in atoms)
    rank = max(1, min(n, -(-int(round(q * n * 1e6)) // 1000000)))
    seen = 0
    for t, c in atoms:
        seen += c
        if seen >= rank:
            return t
    return atoms[-1][0]


def check_decomposition(name, run_dir, doc):
    """Every measured cell of a period sweep has a stacked bar per statistic whose parts add up to the
    statistic; its timer part is the slop model's quantile for the slop the page reports, recomputed here
    from result.json; the page states the slop of its group with an interval that holds it."""
    _, results = results_of(run_dir)
    by_id = {r["cell"]["id"]: r for r in results if measured_max(r) is not None}
    svgs = doc.find_all("svg", cls="breakdown")
    check(svgs, "%s: no decomposition plot" % name)
    slops = doc.find_all("li", cls="slop")
    check(slops, "%s: no slop stated" % name)
    for li in slops:
        lo, s, hi = (int(li.attrs.get(k, "-1")) for k in ("data-slop-low-ns", "data-slop-ns", "data-slop-high-ns"))
        check(0 <= lo <= s <= hi, "%s: slop %d outside its interval %d..%d" % (name, s, lo, hi))
    rows = {tr.attrs["data-cell-id"]: tr for table in doc.find_all("table", cls="decomposition")
            for tr in table.find_all("tr") if "data-cell-id" in tr.attrs}
    parts = {}
    for svg in svgs:
        for rect in svg.find_all("rect", cls="part"):
            if "data-cell-id" in rect.attrs:
                parts.setdefault((rect.attrs["data-cell-id"], rect.attrs["data-stat"]), {})[
                    (rect.classes() - {"part"}).pop()] = int(rect.attrs["data-ns"])
    n = 0
    for cid, r in by_id.items():
        row = rows.get(cid)
        if not check(row is not None and "data-slop-ns" in row.attrs, "%s: %s has no decomposition row with a slop" % (name, cid)):
            continue
        slop, period = int(row.attrs["data-slop-ns"]), int(row.attrs["data-period-ns"])
        check(period == r["cell"]["period_ns"], "%s: %s period %d, result.json %d" % (name, cid, period, r["cell"]["period_ns"]))
        for stat, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            total = r["merged"]["stats"][stat + "_ns"]
            got = parts.get((cid, stat))
            if not check(got is not None, "%s: %s has no %s bar" % (name, cid, stat)):
                continue
            check(sum(got.values()) == total, "%s: %s %s parts %s do not add up to %d" % (name, cid, stat, got, total))
            want = min(timer_part_ns(r["merged"]["histogram"], period, slop, q), total)
            check(got.get("timer") == want,
                  "%s: %s %s timer part %s, the model under S = %d ns gives %d" % (name, cid, stat, got.get("timer"), slop, want))
            n += 1
    log("   decomposition: %d bars checked" % n)


def check_timeline(name, run_dir, doc):
    """A guest's spike with trace_above: both traces linked, and the time line holds the spike at the
    host time the probe recorded and every event of host-trace.txt."""
    _, results = results_of(run_dir)
    for r in results:
        cid = r["cell"]["id"]
        section = [s for s in doc.find_all("section", cls="cell") if s.attrs.get("data-cell-id") == cid]
        if not check(section, "%s: no section for %s" % (name, cid)):
            continue
        links = check_traces(name, run_dir, section[0], r)
        check("cells/%s/host-trace.txt" % cid in links and "cells/%s/trace.txt" % cid in links,
              "%s: %s links %s, not both traces" % (name, cid, links))
        trace = r["facts"]["probe"]["trace"]
        svg = section[0].find_all("svg", cls="timeline")
        if not check(len(svg) == 1, "%s: %s has %d time lines" % (name, cid, len(svg))):
            continue
        with open(os.path.join(run_dir, "cells", cid, "host-trace.txt")) as f:
            events = [line for line in f if not line.startswith("#") and line.strip()]
        check(len(events) > 0, "%s: host-trace.txt holds no event around the spike (TCG's vCPU threads always run)" % name)
        check(svg[0].attrs.get("data-events") == str(len(events)),
              "%s: time line has %s events, host-trace.txt %d" % (name, svg[0].attrs.get("data-events"), len(events)))
        spike = svg[0].find_all("rect", cls="spike")
        check(spike and spike[0].attrs.get("data-host-ns") == str(trace["host"]["spike_host_monotonic_ns"])
              and spike[0].attrs.get("data-latency-ns") == str(trace["fired"]["latency_ns"]),
              "%s: time line spike %s, result.json %s" % (name, spike[0].attrs if spike else None, trace))
        # The guest's trace on the same time line: its marker at the spike (written by vmlat-probe).
        markers = [ln for ln in svg[0].find_all("line", cls="ev-marker") if "guest" in ln.classes()]
        check(any(("latency_ns=%d" % trace["fired"]["latency_ns"]) in m.text_content() for m in markers),
              "%s: the guest's trace marker of the spike is not on the time line (guest events: %s)"
              % (name, svg[0].attrs.get("data-guest-events")))
        threads = {t.text_content() for t in svg[0].find_all("text", cls="row-label")}
        for tid in trace["host"]["threads"]:
            check(any(t.endswith(" %d" % tid) for t in threads), "%s: no time line row for vCPU thread %d: %s" % (name, tid, threads))
        log("   time line: %s events, spike %s ns late" % (svg[0].attrs.get("data-events"), trace["fired"]["latency_ns"]))


TRACE_PLAN = """[plan]
name = "guest-trace"
duration = "2s"
period = "1ms"
cpus = "all"
[timeouts]
prepare = "15m"
boot = "180s"
[matrix]
backend = ["kvm"]
probe = ["native"]
guest_kernel = ["nrt"]
[backend.kvm]
memory_mb = 512
vcpus = 2
[probe.native]
plugin = "cyclic"
engine = "native"
trace_above = "10us"   # any TCG guest exceeds it: the trace stops at its first spike
"""


def check_history(chromium, artifacts, scratch, real_run):
    markup = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    _, results = results_of(real_run)
    cell = next(r["cell"]["id"] for r in results if measured_max(r) is not None)
    for kind in ("step", "flat"):
        name = "history-" + kind
        root = os.path.join(scratch, name)
        make_history(real_run, root, cell, kind == "step", kernel="6.1 " + markup)
        page = os.path.join(scratch, name + ".html")
        code, out, err = run([ARGS.vmlat, "history", root, "--format", "html", "--output", page], timeout=120)
        if not check(code == 0, "%s: vmlat history exited %d: %s" % (name, code, err)):
            continue
        dom_text, console = chromium.dom(page)
        check(not console, "%s: console messages while loading the page:\n  %s" % (name, "\n  ".join(console)))
        png = os.path.join(artifacts, name + ".png")
        chromium.screenshot(page, png, 1600)
        shutil.copy(page, os.path.join(artifacts, name + ".html"))
        doc = parse(dom_text)
        header = doc.find_all("header", id="history")
        check(header and header[0].attrs.get("data-runs") == "20", "%s: 20 runs: %s" % (name, [h.attrs for h in header]))
        sections = {s.attrs.get("data-cell-id"): s for s in doc.find_all("section", cls="history-cell")}
        check(set(sections) == {r["cell"]["id"] for r in results if measured_max(r) is not None},
              "%s: one section per measured cell: %s" % (name, sorted(sections)))
        check(all(len(s.find_all("svg", cls="history")) == 1 and s.find_all("path", cls="stat-max") for s in sections.values()),
              "%s: every cell has its plot with the max line" % name)
        marks = [(s.attrs.get("data-cell-id"), m.attrs.get("data-stat"), m.attrs.get("data-run-id"))
                 for s in sections.values() for m in s.find_all("line", cls="change")]
        rows = doc.find_all("tr", cls="change-point")
        if kind == "flat":
            check(not marks and not rows, "%s: no change marked: %s" % (name, marks))
            continue
        check(marks == [(cell, "max", "r%02d" % STEP_AT)], "%s: the step marked once, at its run: %s" % (name, marks))
        facts = [li for r in rows for li in r.find_all("li", cls="fact")]
        kernel = [li for li in facts if li.attrs.get("data-fact") == "host.kernel_release"]
        check(len(rows) == 1 and kernel and markup in kernel[0].text_content(),
              "%s: the changed kernel fact named, its value as text: %s" % (name, [li.text_content() for li in facts]))
        for tag in ("script", "img"):
            check(not doc.find_all(tag), "%s: the page has a <%s> element: markup got through" % (name, tag))
        log("   %s: %d cells, marks %s, screenshot %s" % (name, len(sections), marks, png))


# A plan that chooses its figure ([[report.figure]], no default figures) and
# states a claim ([[expect]]): the page draws that figure, only its CCDF, with
# the title as text, and shows the claim with a verdict.
FIGURE_PLAN = """[plan]
name = "figure"
duration = "1s"
cpus = [0]
[matrix]
period = ["200us", "1ms"]
workload = ["none"]
[backend.host]
[probe.native]
plugin = "cyclic"
engine = "native"
[report]
default_figures = false
[[report.figure]]
kind = "ccdf"
title = "<b>periods</b> the plan chose"
cells = { period = ["200us", "1ms"] }
[[expect]]
name = "p50 at 200us against 1ms"
stat = "p50"
smaller = { period = "200us" }
larger = { period = "1ms" }
"""


def check_plan_figure(name, doc):
    figures = doc.find_all("figure")
    chosen = [f for f in figures if f.attrs.get("data-kind") == "plan"]
    others = [f for f in figures if f.attrs.get("data-kind") != "plan"]
    if check(len(chosen) == 1, "%s: %d plan figures, expected 1" % (name, len(chosen))):
        f = chosen[0]
        check(f.attrs.get("data-draw") == "ccdf" and "overlay" in f.classes(), "%s: the plan figure is %s" % (name, f.attrs))
        check(len(f.attrs.get("data-cells", "").split()) == 2, "%s: the plan figure names %s" % (name, f.attrs.get("data-cells")))
        check("<b>periods</b> the plan chose" in f.find_all("figcaption")[0].text_content() and not f.find_all("b"),
              "%s: the figure's title is not shown as text" % name)
        legend = [t.text_content() for t in f.find_all("text", cls="legend")]
        check(sorted(legend) == ["period=1ms", "period=200us"], "%s: legend %s" % (name, legend))
    check(not others, "%s: default figures drawn although the plan says default_figures = false" % name)
    claims = doc.find_all("tr", cls="claim")
    check(len(claims) == 1 and claims[0].attrs.get("data-verdict") in ("holds", "violated", "inconclusive"),
          "%s: the claim is not shown with a verdict: %s" % (name, [c.attrs for c in claims]))


def poison(run_dir, markup):
    """Markup in the plan name, an axis value, an error message and a host fact."""
    run = load(os.path.join(run_dir, "run.json"))
    run["plan"]["name"] = "plan " + markup
    run["hosts"]["local"]["cpu_model"] = markup
    first, second = run["cells"][0], run["cells"][1]
    first["axes"]["probe"] = markup
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump(run, f)
    p = os.path.join(run_dir, first["dir"], "result.json")
    r = load(p)
    r["cell"]["axes"]["probe"] = markup
    r["host_facts"]["kernel_release"] = markup
    r["traces"] = ["../../../../etc/passwd", "/etc/passwd", markup, "cell.log"]
    with open(p, "w") as f:
        json.dump(r, f)
    p = os.path.join(run_dir, second["dir"], "result.json")
    r = load(p)
    r["status"] = "infra-error"
    r["error"] = "guest said " + markup
    r["error_phase"] = "boot"
    r["merged"] = None
    r["per_cpu"] = {}
    for g in r.get("gates", []):
        g.update({"verdict": "error", "message": "not measured: " + markup})
        g.pop("value_ns", None)
        g.pop("excess_ns", None)
    with open(p, "w") as f:
        json.dump(r, f)
    return first["id"], second["id"]


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--artifacts", required=True, help="directory for the screenshots and pages")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--skip-kvm", action="store_true")
    ARGS = ap.parse_args()
    os.makedirs(ARGS.artifacts, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="vmlat-report-it-")
    chromium = Chromium(ARGS.chromium, scratch)
    t0 = time.time()
    try:
        # 1. The console check catches what it is meant to catch.
        probe_page = os.path.join(scratch, "console.html")
        with open(probe_page, "w") as f:
            f.write("<!DOCTYPE html><html><body><script>console.error('vmlat-console-self-check')</script></body></html>")
        _, console = chromium.dom(probe_page)
        check(any("vmlat-console-self-check" in line for line in console),
              "the console check did not see a page's console.error (Chromium's log format changed?)")

        # 2. Real runs.
        host_root = os.path.join(scratch, "host")
        code, out, err = run([ARGS.vmlat, "run", os.path.join(ARGS.source_dir, "plans/quickstart.toml"), "--duration", "1s",
                              "--results", host_root], timeout=600)
        check(code == 0, "quickstart run exited %d:\n%s\n%s" % (code, out, err))
        host_run = os.path.realpath(os.path.join(host_root, "latest"))
        doc = check_report("host", host_run, chromium, ARGS.artifacts, "PASS")
        if doc is not None:  # stress off and on: the host backend's column group is a figure
            check(any(f.attrs.get("data-kind") == "seed" for f in doc.find_all("figure", cls="overlay")),
                  "host: no overlay figure of the host backend without and with stress")

        # A period sweep (50us, 500us, 1ms) on the host: the decomposition.
        sweep_root = os.path.join(scratch, "sweep")
        code, out, err = run([ARGS.vmlat, "run", os.path.join(ARGS.source_dir, "plans/period-sweep.toml"), "--duration", "1s",
                              "--results", sweep_root], timeout=600)
        check(code == 0, "period-sweep run exited %d:\n%s\n%s" % (code, out, err))
        sweep_run = os.path.realpath(os.path.join(sweep_root, "latest"))
        doc = check_report("sweep", sweep_run, chromium, ARGS.artifacts, "MEASURED")
        if doc is not None:
            check_decomposition("sweep", sweep_run, doc)
            check(any(f.attrs.get("data-kind") == "sweep" for f in doc.find_all("figure", cls="overlay")),
                  "sweep: no overlay figure of the periods")
        # A figure and a claim the plan chooses.
        figure_root = os.path.join(scratch, "figure")
        os.makedirs(figure_root)
        plan = os.path.join(figure_root, "plan.toml")
        with open(plan, "w") as f:
            f.write(FIGURE_PLAN)
        code, out, err = run([ARGS.vmlat, "run", plan, "--results", figure_root], timeout=600)
        check(code == 0, "figure run exited %d:\n%s\n%s" % (code, out, err))
        doc = check_report("figure", os.path.realpath(os.path.join(figure_root, "latest")), chromium, ARGS.artifacts, "MEASURED")
        if doc is not None:
            check_plan_figure("figure", doc)

        # Both runs in one report: the host run has gates that pass, the sweep none.
        check_merged(chromium, ARGS.artifacts, scratch, [host_run, sweep_run], "PASS")

        if ARGS.skip_kvm or not shutil.which("qemu-system-x86_64"):
            log("== kvm: skipped (%s)" % ("--skip-kvm" if ARGS.skip_kvm else "qemu-system-x86_64 not installed"))
        else:
            kvm_root = os.path.join(scratch, "kvm")
            code, out, err = run([ARGS.vmlat, "run", os.path.join(ARGS.source_dir, "plans/kvm-quick.toml"), "--duration", "1s",
                                  "--only", "workload=none", "--results", kvm_root], timeout=900)
            check(code == 0, "kvm-quick run exited %d:\n%s\n%s" % (code, out, err))
            kvm_run = os.path.realpath(os.path.join(kvm_root, "latest"))
            doc = check_report("kvm", kvm_run, chromium, ARGS.artifacts, "PASS")
            if doc is not None:
                rows = [th.text_content() for t in doc.find_all("table", cls="seed") for tr in t.find_all("tr")
                        for th in tr.find_all("th")[:1]]
                check("NRT/NRT" in rows and "NRT/RT" in rows, "kvm: seed rows %s lack NRT/NRT and NRT/RT" % rows)

            # A guest's spike traced in the guest and on the host: links and the time line.
            trace_root = os.path.join(scratch, "trace")
            os.makedirs(trace_root)
            plan = os.path.join(trace_root, "plan.toml")
            with open(plan, "w") as f:
                f.write(TRACE_PLAN)
            code, out, err = run([ARGS.vmlat, "run", plan, "--results", trace_root], timeout=900)
            why = ""
            if code != 0:  # the cells' own errors, which the summary does not spell out
                for result in glob.glob(os.path.join(trace_root, "latest", "cells", "*", "result.json")):
                    with open(result) as f:
                        why += "%s: %s\n" % (result, json.load(f).get("error"))
            check(code == 0, "guest-trace run exited %d:\n%s\n%s\n%s" % (code, out, err, why))
            trace_run = os.path.realpath(os.path.join(trace_root, "latest"))
            doc = check_report("trace", trace_run, chromium, ARGS.artifacts, "MEASURED")
            if doc is not None:
                check_timeline("trace", trace_run, doc)

        check_history(chromium, ARGS.artifacts, scratch, host_run)

        # 3. Hostile values.
        markup = "<script>document.title='pwned'</script><img src=x onerror=alert(1)><b>bold</b>"
        hostile = os.path.join(scratch, "hostile")
        shutil.copytree(host_run, hostile, symlinks=True)
        os.remove(os.path.join(hostile, "report.html"))
        first, second = poison(hostile, markup)
        doc = check_report("hostile", hostile, chromium, ARGS.artifacts, "INFRA ERROR")
        if doc is not None:
            for tag in ("script", "img"):
                check(not doc.find_all(tag), "hostile: the report has a <%s> element: markup got through" % tag)
            check(not [b for b in doc.find_all("b") if b.text_content() == "bold"], "hostile: <b>bold</b> became an element")
            title = doc.find_all("title")
            check(title and markup in title[0].text_content() and "pwned" not in title[0].text_content().split("—")[-1],
                  "hostile: the title does not show the plan name as text: %r" % (title[0].text_content() if title else None))
            s1 = [s for s in doc.find_all("section", cls="cell") if s.attrs.get("data-cell-id") == first]
            check(s1 and markup in s1[0].find_all("p", cls="axes")[0].text_content(), "hostile: the axis value is not shown as text")
            s2 = [s for s in doc.find_all("section", cls="cell") if s.attrs.get("data-cell-id") == second]
            check(s2 and ("guest said " + markup) in s2[0].find_all("p", cls="error")[0].text_content(),
                  "hostile: the error message is not shown as text")
            hrefs = [a.attrs.get("href", "") for a in doc.find_all("a")]
            check(not [h for h in hrefs if ".." in h or h.startswith("/") or "passwd" in h],
                  "hostile: a link leaves the run directory: %s" % [h for h in hrefs if not h.startswith("#")])
            check(s1 and "cells/%s/cell.log" % first in [a.attrs.get("href") for a in s1[0].find_all("a", cls="trace")],
                  "hostile: the cell's own cell.log is not linked beside the refused names")
    except Exception as e:  # noqa: BLE001 - reported as a failure with its message
        check(False, "%s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log("%d checks, %d failed, %.0f s; artefacts in %s" % (CHECKS[0], len(FAILURES), time.time() - t0, ARGS.artifacts))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
