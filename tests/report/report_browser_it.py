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
  4. for each: `vmlat report`, then the page opened in one headless
     Chromium over the DevTools protocol and drawn, its DOM and console
     messages (every one is a failure: a blocked script or fetch is logged
     as a Content-Security-Policy violation), and a screenshot kept in
     --artifacts; a page of 1,000 cells made from the host run
     (--scales) in a fresh browser of its own: its timings printed, the
     cells needing attention first, the filters, cells opened, its data
     against result.json;
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
from vmlat_it import CHECKS, FAILURES, check, die_with_parent, log as log_line  # noqa: E402
from history_fixture import STEP_AT, make_history  # noqa: E402
from chromium_cdp import Browser  # noqa: E402
from scale_fixture import make_scaled  # noqa: E402

T0 = time.monotonic()


def log(message):
    """A line of the test's output with the seconds since it started: where CI's time goes."""
    log_line("[%5.1f s] %s" % (time.monotonic() - T0, message))

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
    """The pages one after the other in one headless Chromium over the
    DevTools protocol (tests/support/chromium_cdp.py): each loaded, its
    drawing finished, then its DOM, the console and security messages since
    it was opened, and optionally a screenshot. One browser rather than one
    a page: starting and closing Chromium costs 2-3 s on a busy machine, ten
    times over. The 1,000-cell page is timed in a fresh browser of its own
    (check_scale), as the bench times it."""

    def __init__(self, binary, scratch):
        self.binary = binary
        self.scratch = scratch
        self.browser = None

    def dom(self, page, png=None, height=2400):
        if self.browser is None:
            self.browser = Browser(self.binary)
        b = self.browser
        try:
            del b.console[:]
            b.open(page)
            b.settle()
            dom = b.dom()
            if png:
                b.screenshot(png, height)
            return dom, list(b.console)
        except Exception:  # a browser in an unknown state: the next page gets a new one
            self.close()
            raise

    def close(self):
        if self.browser is not None:
            self.browser.close()
            self.browser = None


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
    png = os.path.join(artifacts, "report-%s.png" % name)
    dom_text, console = chromium.dom(page, png)
    check(not console, "%s: console messages while loading the report:\n  %s" % (name, "\n  ".join(console)))
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
    dom_text, console = chromium.dom(page, os.path.join(artifacts, "report-merged.png"))
    check(not console, "merged: console messages while loading the report:\n  %s" % "\n  ".join(console))
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
        png = os.path.join(artifacts, name + ".png")
        dom_text, console = chromium.dom(page, png, 1600)
        check(not console, "%s: console messages while loading the page:\n  %s" % (name, "\n  ".join(console)))
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


# What the first screen of a page shows, in document order: every cell
# section (id, kind, top edge, hidden), the viewport's height, the overview.
PAGE_STATE = """JSON.stringify({
  height: innerHeight,
  sections: [...document.querySelectorAll("section.cell")].map(s => [s.dataset.cellId, s.dataset.kind,
      Math.round(s.getBoundingClientRect().top), s.hidden, s.querySelector("details").open]),
  squares: [...document.querySelectorAll("a.ov")].map(a => [a.dataset.cellId, a.classList.contains("out")]),
  fold: [...document.querySelectorAll("details.passed-cells")].map(d => [d.open, d.querySelector("summary").textContent]),
  shown: (document.querySelector(".filters .shown") || {}).textContent
})"""

# The filters: `workload` set to `none` and the kind "passed" unticked, or both back.
FILTER = """(on => {
  const sel = document.querySelector("select[data-axis='workload']");
  sel.value = "";
  if (on) for (const o of sel.options) if (o.textContent === "none") sel.value = o.value;
  sel.dispatchEvent(new Event("change", {bubbles: true}));
  const box = document.querySelector(".kind-filter input[value='pass']");
  box.checked = !on;
  box.dispatchEvent(new Event("change", {bubbles: true}));
  return true;
})(%s)"""


def decode_hist(text):
    """A histogram of the page's data, decoded as docs/report.md describes it (written here from the doc)."""
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    lo, hi, over, body = text.split(",", 3)
    pos, key, buckets = 0, -1, []

    def varint():
        nonlocal pos
        v, scale = 0, 1
        while True:
            d = digits.index(body[pos])
            pos += 1
            v += (d % 32) * scale
            if d < 32:
                return v
            scale *= 32

    while pos < len(body):
        v = varint()
        key += 1 + (varint() if v % 2 else 0)
        buckets.append([key, v // 2])
    return {"min_ns": int(lo), "max_ns": int(hi), "overflows": int(over), "buckets": buckets}


def page_data(page):
    """The page's data blocks (docs/report.md): the index (JSON), the shared details and the cells'
    details in chunks (zlib deflate, base64); the cells' details joined in cell order."""
    import base64
    import re
    import zlib
    with open(page, encoding="utf-8") as f:
        text = f.read()
    index = json.loads(re.search(r'<script type="application/json" id="vmlat-index">(.*?)</script>', text, re.S).group(1))

    def unpack(packed):
        return json.loads(zlib.decompress(base64.b64decode(packed)))
    shared = unpack(re.search(r'<script type="application/octet-stream" data-encoding="deflate\+base64" id="vmlat-shared">(.*?)</script>',
                              text, re.S).group(1))
    cells = []
    for first, count, packed in re.findall(r'<script type="application/octet-stream" data-encoding="deflate\+base64" '
                                           r'class="vmlat-cells" data-first="(\d+)" data-count="(\d+)">(.*?)</script>', text, re.S):
        chunk = unpack(packed)
        check(int(first) == len(cells) and int(count) == len(chunk), "page data: chunk at %s of %s cells holds %d" % (first, count, len(chunk)))
        cells += chunk
    shared["cells"] = cells
    return index, shared


def same_hist(got, want):
    return (got["min_ns"], got["max_ns"], got["overflows"], got["buckets"]) == \
        (want["min_ns"], want["max_ns"], want.get("overflows", 0), [[k, c] for k, c in want["buckets"] if c])


def check_page_data(name, page, results):
    """Every cell's histograms in the page's data are result.json's, bucket for bucket."""
    index, details = page_data(page)
    check([c["id"] for c in index["cells"]] == [r["cell"]["id"] for r in results], "%s: the index's cells are not the run's" % name)
    bad = []
    for i, r in enumerate(results):
        if measured_max(r) is None:
            continue
        s = details["cells"][i]["s"][0]
        cpus = [decode_hist(h) for h in s.get("hc", [])]
        if s["h"] == "":  # the sum of the CPUs'
            merged = {"min_ns": min(h["min_ns"] for h in cpus), "max_ns": max(h["max_ns"] for h in cpus),
                      "overflows": sum(h["overflows"] for h in cpus), "buckets": []}
            total = {}
            for h in cpus:
                for k, c in h["buckets"]:
                    total[k] = total.get(k, 0) + c
            merged["buckets"] = sorted([k, c] for k, c in total.items())
        else:
            merged = decode_hist(s["h"])
        per_cpu = list((r.get("per_cpu") or {}).values())
        ok = same_hist(merged, r["merged"]["histogram"]) and \
            (not cpus or (len(cpus) == len(per_cpu) and all(same_hist(h, p["histogram"]) for h, p in zip(cpus, per_cpu))))
        if not ok:
            bad.append(r["cell"]["id"])
    check(not bad, "%s: %d cells whose histograms in the page differ from result.json: %s" % (name, len(bad), bad[:5]))


def expected_bars(h):
    """The histogram plot's bars for a result.json histogram, recomputed here: 1 us bins on a linear
    axis from 0 to a round edge past the max (480 px), bins narrower than a pixel one bar per column."""
    import math
    buckets = [k for k, c in h["buckets"] if c]
    x_hi = max(1, buckets[-1] + 1 if buckets else 1, math.ceil(h["max_ns"] / 1000))
    raw = x_hi / 6
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    x_hi = math.ceil(x_hi / step - 1e-9) * step

    def px(k):
        return 56 + k / x_hi * 480
    bars, i = 0, 0
    while i < len(buckets):
        x0, x1 = px(buckets[i]), px(buckets[i] + 1)
        i += 1
        if x1 - x0 < 1:
            while i < len(buckets) and math.floor(px(buckets[i])) == math.floor(x0):
                i += 1
        bars += 1
    return bars


def ccdf_goes_down(d, bottom=184):
    """A CCDF path ("M x y" then H and V steps): every H to the right, every V down (or level; y grows
    downwards) and never below the plot's frame (its bottom at y = 184 in the 220 px plot)."""
    import re
    steps = re.findall(r"([MHV])\s*([0-9.]+)(?:\s+([0-9.]+))?", d)
    if len(steps) < 2 or steps[0][0] != "M":
        return False
    x, y = float(steps[0][1]), float(steps[0][2])
    for cmd, v, _ in steps[1:]:
        v = float(v)
        if (cmd == "H" and v <= x) or (cmd == "V" and not y <= v <= bottom) or cmd == "M":
            return False
        x, y = (v, y) if cmd == "H" else (x, v)
    return True


def check_scale(chromium, artifacts, scratch, host_run, n):
    """A page of n cells (tests/support/scale_fixture.py): Chromium's timings printed; the cells that
    failed, regressed or were not measured first and on the first screen, the passes folded and not
    built; the filters; a cell opened from the overview draws its plots from data that is result.json's."""
    name = "scale-%d" % n
    log("== %s" % name)
    scratch = scale_scratch(scratch, n)
    try:
        check_scale_in(chromium, artifacts, scratch, host_run, n, name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def scale_scratch(scratch, n):
    """Where the page of n cells and its baseline are made: a directory in
    /dev/shm when it has room for them (~20 KB a cell of the host run, twice),
    else in scratch. Writing and removing 2,000 small files on this machine's
    disk costs ~5 s of the test; in memory, a few hundred ms."""
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > n * 200_000:
            return tempfile.mkdtemp(prefix="vmlat-report-scale-", dir="/dev/shm")
    except OSError:
        pass
    return tempfile.mkdtemp(prefix="scale-", dir=scratch)


def check_scale_in(chromium, artifacts, scratch, host_run, n, name):
    run_dir = os.path.join(scratch, name)
    kinds = make_scaled(host_run, run_dir, n)
    argv = [ARGS.vmlat, "report", run_dir]
    if n <= 1000:  # and a baseline: regressions
        base = os.path.join(scratch, name + "-base")
        make_scaled(host_run, base, n, run_id="scale-base", baseline=True)
        argv += ["--baseline", base]
    else:
        kinds = [(cid, "pass" if k == "regressed" else k) for cid, k in kinds]
    t0 = time.time()
    code, _, err = run(argv, timeout=1800)
    render_s = time.time() - t0
    if not check(code == 0, "%s: vmlat report exited %d: %s" % (name, code, err[-2000:])):
        return
    page = os.path.join(run_dir, "report.html")
    _, results = results_of(run_dir)
    order = {"fail": 0, "regressed": 1, "error": 2}
    attention = sorted([(order[k], i, cid, k) for i, (cid, k) in enumerate(kinds) if k in order])
    attention = [(cid, k) for _, _, cid, k in attention]
    with Browser(chromium.binary) as b:
        wall = b.open(page)
        t = b.timing()
        log("   %d cells: vmlat report %.1f s, page %.2f MiB; Chromium: load %.0f ms, first contentful paint %s ms, "
            "loaded and drawn %.0f ms (navigate to load event %.0f ms)"
            % (n, render_s, os.path.getsize(page) / 2**20, t["load"], "%.0f" % t["fcp"] if t["fcp"] else "-", t["painted"], wall))
        st = json.loads(b.eval(PAGE_STATE))
        check(not b.console, "%s: console messages: %s" % (name, b.console[:5]))
        b.screenshot(os.path.join(artifacts, "report-%s.png" % name), 900)
        got = [(cid, k) for cid, k, _, _, _ in st["sections"]]
        check(got == attention, "%s: the page lists %d cells before the folded passes, expected the %d that failed, "
              "regressed or were not measured, in that order" % (name, len(got), len(attention)),
              "first got %s, expected %s" % (got[:6], attention[:6]))
        first_screen = [cid for cid, _, top, hidden, _ in st["sections"] if 0 <= top < st["height"] and not hidden]
        check(attention and first_screen[:1] == [attention[0][0]] and len(first_screen) >= min(5, len(attention)),
              "%s: the first screen (%d px) shows %s, not the first failing cells %s" % (name, st["height"], first_screen[:6], attention[:6]))
        check(len(st["squares"]) == n and not any(out for _, out in st["squares"]),
              "%s: the overview has %d squares for %d cells" % (name, len(st["squares"]), n))
        check(st["fold"] and not st["fold"][0][0] and str(n - len(attention)) in st["fold"][0][1],
              "%s: the passes are not folded away with their count: %s" % (name, st["fold"]))
        # Filters: workload = none, passes unticked.
        b.eval(FILTER % "true")
        st = json.loads(b.eval(PAGE_STATE))
        workload = {r["cell"]["id"]: r["cell"]["axes"].get("workload") for r in results}
        want = [cid for cid, k in kinds if workload[cid] == "none" and k != "pass"]
        shown = [cid for cid, out in st["squares"] if not out]
        listed = [cid for cid, _, _, hidden, _ in st["sections"] if not hidden]
        check(sorted(shown) == sorted(want) and sorted(listed) == sorted(want) and st["shown"].startswith("showing %d of %d" % (len(want), n)),
              "%s: filtered to workload=none without passes: %d squares, %d sections, %r; expected %d"
              % (name, len(shown), len(listed), st["shown"], len(want)))
        b.eval(FILTER % "false")
        # Open a failing cell and a passed one from the overview.
        passed = [cid for cid, k in kinds if k == "pass"]
        opened = [attention[0][0], passed[len(passed) // 2]]
        for cid in opened:
            b.eval("document.querySelector('a.ov[data-cell-id=\"%s\"]').click(), true" % cid)
            b.settle()
            top = b.eval("Math.round(document.querySelector('section.cell[data-cell-id=\"%s\"]').getBoundingClientRect().top) + 0" % cid)
            check(top is not None and -2 <= top < 900, "%s: clicking %s in the overview did not bring its section into view (top %s)" % (name, cid, top))
        doc = parse(b.dom())
        check(not b.console, "%s: console messages while opening cells: %s" % (name, b.console[:5]))
    by_id = {r["cell"]["id"]: r for r in results}
    sections = {s.attrs.get("data-cell-id"): s for s in doc.find_all("section", cls="cell")}
    for cid in opened:
        s, r = sections.get(cid), by_id[cid]
        if not check(s is not None, "%s: %s has no section after it was opened" % (name, cid)):
            continue
        hist, ccdf = s.find_all("svg", cls="histogram"), s.find_all("svg", cls="ccdf")
        cpus = len(r.get("per_cpu") or {})
        curves = 1 + (cpus if 1 < cpus <= 8 else 0) + (1 if n <= 1000 else 0)
        lines = [p for p in (ccdf[0].find_all("path") if ccdf else []) if "line" in p.classes()]
        bars = hist[0].find_all("path", cls="bars")[0].attrs.get("d", "").count("Z") if hist else -1
        check(len(hist) == 1 and bars == expected_bars(r["merged"]["histogram"]),
              "%s: %s histogram draws %d bars, result.json's buckets give %d" % (name, cid, bars, expected_bars(r["merged"]["histogram"])))
        check(len(ccdf) == 1 and len(lines) == curves and all("V" in p.attrs.get("d", "") for p in lines),
              "%s: %s CCDF draws %d curves, expected %d (all CPUs, %d CPUs%s)" % (name, cid, len(lines), curves, cpus, ", baseline" if n <= 1000 else ""))
        merged = [p for p in lines if "merged" in p.classes()]
        check(merged and ccdf_goes_down(merged[0].attrs.get("d", "")), "%s: %s CCDF of all CPUs rises somewhere: %s"
              % (name, cid, merged[0].attrs.get("d", "")[:200] if merged else None))
        mx = [td.attrs.get("data-ns") for td in s.find_all("td", cls="max")]
        check(mx[:1] == [str(measured_max(r))], "%s: %s max %s, result.json %s" % (name, cid, mx[:1], measured_max(r)))
    check_page_data(name, page, results)


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
    ap.add_argument("--scales", default="1000", help="cells of the large pages, comma-separated (0: none)")
    ap.add_argument("--only-scales", action="store_true", help="the host run and the large pages only")
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
        host_run = measure("quickstart", os.path.join(ARGS.source_dir, "plans/quickstart.toml"), os.path.join(scratch, "host"),
                           "--duration", "1s")
        for n in [int(x) for x in ARGS.scales.split(",") if int(x) > 0]:
            check_scale(chromium, ARGS.artifacts, scratch, host_run, n)
        if not ARGS.only_scales:
            the_other_reports(chromium, scratch, host_run)
    except Exception as e:  # noqa: BLE001 - reported as a failure with its message
        check(False, "%s: %s" % (type(e).__name__, e))
    finally:
        chromium.close()
        shutil.rmtree(scratch, ignore_errors=True)
    log("%d checks, %d failed, %.0f s; artefacts in %s" % (CHECKS[0], len(FAILURES), time.time() - t0, ARGS.artifacts))
    return 1 if FAILURES else 0


def write_plan(root, text):
    """ROOT/plan.toml holding `text` (ROOT made)."""
    os.makedirs(root)
    plan = os.path.join(root, "plan.toml")
    with open(plan, "w") as f:
        f.write(text)
    return plan


def measure(name, plan, root, *extra, timeout=600):
    """`vmlat run PLAN --results ROOT EXTRA...`, which must pass; its run directory."""
    code, out, err = run([ARGS.vmlat, "run", plan, "--results", root] + list(extra), timeout=timeout)
    check(code == 0, "%s run exited %d:\n%s\n%s" % (name, code, out, err))
    return os.path.realpath(os.path.join(root, "latest"))


def the_other_reports(chromium, scratch, host_run):
    """The host run's report, a period sweep, a plan's figure, a merge, kvm guests and a traced guest,
    the history page, hostile values."""
    doc = check_report("host", host_run, chromium, ARGS.artifacts, "PASS")
    if doc is not None:  # stress off and on: the host backend's column group is a figure
        check(any(f.attrs.get("data-kind") == "seed" for f in doc.find_all("figure", cls="overlay")),
              "host: no overlay figure of the host backend without and with stress")

    # A period sweep (50us, 500us, 1ms) on the host: the decomposition.
    sweep_run = measure("period-sweep", os.path.join(ARGS.source_dir, "plans/period-sweep.toml"), os.path.join(scratch, "sweep"),
                        "--duration", "1s")
    doc = check_report("sweep", sweep_run, chromium, ARGS.artifacts, "MEASURED")
    if doc is not None:
        check_decomposition("sweep", sweep_run, doc)
        check(any(f.attrs.get("data-kind") == "sweep" for f in doc.find_all("figure", cls="overlay")),
              "sweep: no overlay figure of the periods")
    # A figure and a claim the plan chooses.
    figure_root = os.path.join(scratch, "figure")
    figure_run = measure("figure", write_plan(figure_root, FIGURE_PLAN), figure_root)
    doc = check_report("figure", figure_run, chromium, ARGS.artifacts, "MEASURED")
    if doc is not None:
        check_plan_figure("figure", doc)

    # Both runs in one report: the host run has gates that pass, the sweep none.
    check_merged(chromium, ARGS.artifacts, scratch, [host_run, sweep_run], "PASS")

    if ARGS.skip_kvm or not shutil.which("qemu-system-x86_64"):
        log("== kvm: skipped (%s)" % ("--skip-kvm" if ARGS.skip_kvm else "qemu-system-x86_64 not installed"))
    else:
        kvm_run = measure("kvm-quick", os.path.join(ARGS.source_dir, "plans/kvm-quick.toml"), os.path.join(scratch, "kvm"),
                          "--duration", "1s", "--only", "workload=none", timeout=900)
        doc = check_report("kvm", kvm_run, chromium, ARGS.artifacts, "PASS")
        if doc is not None:
            rows = [th.text_content() for t in doc.find_all("table", cls="seed") for tr in t.find_all("tr")
                    for th in tr.find_all("th")[:1]]
            check("NRT/NRT" in rows and "NRT/RT" in rows, "kvm: seed rows %s lack NRT/NRT and NRT/RT" % rows)

        # A guest's spike traced in the guest and on the host: links and the time line.
        trace_root = os.path.join(scratch, "trace")
        code, out, err = run([ARGS.vmlat, "run", write_plan(trace_root, TRACE_PLAN), "--results", trace_root], timeout=900)
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
        check(not doc.find_all("img"), "hostile: the report has an <img> element: markup got through")
        # The page's own scripts only: its data blocks (4 cells: one block of cells) and its code.
        scripts = [(e.attrs.get("id"), e.attrs.get("class"), e.attrs.get("type")) for e in doc.find_all("script")]
        check(scripts == [("vmlat-index", None, "application/json"), ("vmlat-shared", None, "application/octet-stream"),
                          (None, "vmlat-cells", "application/octet-stream"), (None, None, None)],
              "hostile: the report has scripts other than its own: markup got through: %s" % scripts)
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


if __name__ == "__main__":
    sys.exit(main())
