// The report page's one script (docs/report.md, "The HTML page"): the
// Cells section (counts, filters, the overview of the matrix, the cells that
// need attention, the passed cells folded), each cell's details built when
// it is opened, the overlay figures drawn when they come into view, the
// passed gates and the tails table filled when they are unfolded.
//
// Everything comes from the data blocks html.cpp embeds (page_data.hpp: the
// index, read at load; the details, deflated in blocks, each read when first
// needed). Text from the results
// (cell ids, axis values, messages, facts) only ever goes through
// textContent or setAttribute: plan values are hostile input. No library,
// nothing fetched; the Content-Security-Policy allows this script by its hash.
"use strict";
(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const index = JSON.parse(document.getElementById("vmlat-index").textContent);
  // The details: deflated JSON in base64, in blocks (docs/report.md, "The
  // page's data"), each inflated by the browser once, when first needed.
  const inflated = new Map();
  function inflate(block) {
    if (!inflated.has(block)) {
      const text = atob(block.textContent.trim());
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
      inflated.set(block, new Response(stream).text().then(JSON.parse));
    }
    return inflated.get(block);
  }
  const shared = () => inflate(document.getElementById("vmlat-shared"));
  const chunks = Array.from(document.querySelectorAll("script.vmlat-cells"), b => [Number(b.dataset.first), Number(b.dataset.count), b]);
  function cellData(i) {
    const chunk = chunks.find(([first, n]) => i >= first && i < first + n);
    return inflate(chunk[2]).then(cells => cells[i - chunk[0]]);
  }
  // Drawing waits for the data: body[data-pending] counts what is still to
  // be drawn (0: the page is complete), for whoever waits for it.
  let pending = 0;
  document.body.dataset.pending = 0;
  function later(data, work) {
    document.body.dataset.pending = ++pending;
    return data.then(work).catch(e => console.error("vmlat report: " + e)).finally(() => { document.body.dataset.pending = --pending; });
  }

  // ---- DOM helpers: text only through text nodes and attributes.
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    if (children !== undefined) add(e, children);
    return e;
  }
  function add(parent, children) {
    for (const c of Array.isArray(children) ? children : [children]) {
      if (c === null || c === undefined || c === false) continue;
      parent.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return parent;
  }
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- Numbers as the rest of vmlat writes them (core/src/units.cpp format_latency).
  function latency(ns) {
    if (ns === null || ns === undefined) return "–";
    if (ns < 1000) return ns.toFixed(0) + "ns";
    if (ns < 1e6) return (ns < 1e5 ? (ns / 1e3).toFixed(1) : (ns / 1e3).toFixed(0)) + "us";
    if (ns < 1e9) return (ns / 1e6).toFixed(2) + "ms";
    return (ns / 1e9).toFixed(2) + "s";
  }
  function count(v) { return v === null || v === undefined ? "–" : String(v); }
  // printf's %g (6 significant digits, no trailing zeros): plots.cpp's number_text.
  function g(v) {
    if (v === 0) return "0";
    const e = Math.floor(Math.log10(Math.abs(v)));
    if (e < -4 || e >= 6) {
      const [m, x] = v.toExponential(5).split("e");
      const n = parseInt(x, 10);
      return m.replace(/\.?0+$/, "") + "e" + (n < 0 ? "-" : "+") + String(Math.abs(n)).padStart(2, "0");
    }
    const s = v.toPrecision(6);
    return s.indexOf(".") >= 0 ? s.replace(/\.?0+$/, "") : s;
  }
  function shortLatencyUs(us) {
    if (us === 0) return "0";
    if (us >= 1e6) return g(us / 1e6) + "s";
    if (us >= 1e3) return g(us / 1e3) + "ms";
    return g(us) + "µs";
  }
  function countText(v) { return v >= 1e6 ? g(v / 1e6) + "M" : v >= 1e3 ? g(v / 1e3) + "k" : g(v); }
  function probabilityText(p) { return p >= 0.01 ? g(p) : "1e" + Math.round(Math.log10(p)); }
  // 0.1 px: plots.cpp's append_coord.
  function c1(v) {
    const t = Math.round(v * 10);
    const s = String(Math.trunc(Math.abs(t) / 10)) + (Math.abs(t) % 10 ? "." + (Math.abs(t) % 10) : "");
    return t < 0 ? "-" + s : s;
  }

  // ---- Histograms: docs/report.md "The page's data". "MIN,MAX,OVERFLOWS,BUCKETS",
  // BUCKETS a run of base64url varints (5 bits a character, low first, 32
  // added to every character but the last): per non-empty 1 us bucket
  // count*2+1 followed by the gap of empty buckets before it, or count*2
  // when it follows the previous bucket directly.
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const B64V = {};
  for (let i = 0; i < 64; i++) B64V[B64[i]] = i;
  function decodeHist(text) {
    const parts = text.split(",");
    const h = { min: Number(parts[0]), max: Number(parts[1]), over: Number(parts[2]), buckets: [] };
    const s = parts[3] || "";
    let pos = 0, key = -1;
    function varint() {
      let v = 0, scale = 1;
      for (;;) {
        const d = B64V[s[pos++]];
        if (d === undefined) throw new Error("bad histogram");
        v += (d & 31) * scale;
        if (d < 32) return v;
        scale *= 32;
      }
    }
    while (pos < s.length) {
      const v = varint();
      const c = Math.floor(v / 2);
      key += 1 + (v % 2 ? varint() : 0);
      h.buckets.push([key, c]);
    }
    return h;
  }
  // The merged histogram of CPUs whose sum it is (html.cpp leaves it out then).
  function sumHists(hs) {
    const m = new Map();
    const h = { min: Infinity, max: 0, over: 0, buckets: [] };
    for (const x of hs) {
      h.min = Math.min(h.min, x.min);
      h.max = Math.max(h.max, x.max);
      h.over += x.over;
      for (const [k, c] of x.buckets) m.set(k, (m.get(k) || 0) + c);
    }
    h.buckets = Array.from(m.entries()).sort((a, b) => a[0] - b[0]);
    return h;
  }
  function samples(h) { return h.buckets.reduce((n, b) => n + b[1], h.over); }

  // ---- Plots: the geometry and drawing of plots.cpp (the run report draws here, the
  // session and history pages there), so that a page of cells lines up.
  const W = 560, H = 220, PL = 56, PR = W - 24, PT = 20, PB = H - 36;
  function axis(lo, hi, pxLo, pxHi, log) {
    if (log) { lo = Math.log10(lo); hi = Math.log10(Math.max(hi, Math.pow(10, lo) * 10)); }
    if (!(hi > lo)) hi = lo + 1;
    return {
      log: log, lo: lo, hi: hi,
      px(v) { const x = log ? Math.log10(Math.max(v, 1e-300)) : v; return pxLo + (x - lo) / (hi - lo) * (pxHi - pxLo); },
      ticks(target) {
        const out = [];
        if (log) {
          for (let e = Math.ceil(lo - 1e-9); e <= Math.floor(hi + 1e-9); e++) out.push(Math.pow(10, e));
          return out;
        }
        const raw = (hi - lo) / Math.max(target || 6, 1), mag = Math.pow(10, Math.floor(Math.log10(raw)));
        let step = mag;
        for (const m of [1, 2, 5, 10]) if (m * mag >= raw) { step = m * mag; break; }
        for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(t);
        return out;
      }
    };
  }
  function openSvg(cls, attrs, title) {
    const s = sv("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: cls });
    for (const k of Object.keys(attrs)) s.setAttribute(k, attrs[k]);
    s.appendChild(sv("title", {}, title));
    return s;
  }
  function drawAxes(s, x, y, xTitle, yTitle, xLabel, yLabel) {
    const a = sv("g", { class: "axes" });
    a.appendChild(sv("rect", { class: "frame", x: PL, y: PT, width: PR - PL, height: PB - PT }));
    for (const t of x.ticks()) {
      const p = c1(x.px(t));
      a.appendChild(sv("line", { class: "grid", x1: p, x2: p, y1: PT, y2: PB }));
      a.appendChild(sv("text", { class: "tick", x: p, y: PB + 14, "text-anchor": "middle" }, xLabel(t)));
    }
    for (const t of y.ticks()) {
      const p = y.px(t);
      a.appendChild(sv("line", { class: "grid", y1: c1(p), y2: c1(p), x1: PL, x2: PR }));
      a.appendChild(sv("text", { class: "tick", x: PL - 4, y: c1(p + 4), "text-anchor": "end" }, yLabel(t)));
    }
    a.appendChild(sv("text", { class: "axis-title", x: c1((PL + PR) / 2), y: H - 4, "text-anchor": "middle" }, xTitle));
    a.appendChild(sv("text", { class: "axis-title", transform: "translate(12 " + c1((PT + PB) / 2) + ") rotate(-90)", "text-anchor": "middle" }, yTitle));
    s.appendChild(a);
  }
  function histogramAxes(all) {
    let tallest = 1, xHi = 1;
    for (const h of all) {
      for (const b of h.buckets) tallest = Math.max(tallest, b[1]);
      xHi = Math.max(xHi, h.buckets.length ? h.buckets[h.buckets.length - 1][0] + 1 : 1, Math.ceil(h.max / 1000));
    }
    const t = axis(0, xHi, PL, PR, false).ticks();
    const step = t.length > 1 ? t[1] - t[0] : xHi;
    xHi = Math.ceil(xHi / step - 1e-9) * step;
    return [axis(0, xHi, PL, PR, false), axis(0.5, Math.pow(10, Math.ceil(Math.log10(tallest) + 1e-9)), PB, PT, true)];
  }
  let legendY = 0;
  function legend(s, label, cls) {
    s.appendChild(sv("line", { class: "line " + cls, x1: PR - 150, x2: PR - 130, y1: c1(legendY - 4), y2: c1(legendY - 4) }));
    s.appendChild(sv("text", { class: "legend", x: PR - 126, y: c1(legendY) }, label));
    legendY += 13;
  }
  function histogramSvg(h, attrs) {
    const [x, y] = histogramAxes([h]);
    const s = openSvg("plot histogram", attrs, "latency histogram, 1 µs bins, log count axis");
    drawAxes(s, x, y, "latency (1 µs bins)", "count (log)", shortLatencyUs, countText);
    let d = "";
    const b = h.buckets;
    for (let i = 0; i < b.length;) {
      let x0 = x.px(b[i][0]), x1 = x.px(b[i][0] + 1), c = b[i][1];
      i++;
      if (x1 - x0 < 1) {  // bins narrower than a pixel: the tallest of the column
        const col = Math.floor(x0);
        x0 = col; x1 = col + 1;
        while (i < b.length && Math.floor(x.px(b[i][0])) === col) { c = Math.max(c, b[i][1]); i++; }
      }
      d += "M" + c1(x0) + " " + c1(PB) + "V" + c1(y.px(c)) + "H" + c1(x1) + "V" + c1(PB) + "Z";
    }
    s.appendChild(sv("path", { class: "bars", d: d, "data-bars": String(d.split("Z").length - 1) }));
    const mx = c1(x.px(h.max / 1000));
    s.appendChild(sv("line", { class: "max", x1: mx, x2: mx, y1: PT, y2: PB }));
    if (h.over)
      s.appendChild(sv("text", { class: "note", x: PR - 4, y: PT + 14, "text-anchor": "end" },
                       h.over + " overflow" + (h.over === 1 ? "" : "s") + " beyond the histogram range, max " + shortLatencyUs(h.max / 1000)));
    return s;
  }
  // lines: [{label, cls, h}]
  function ccdfSvg(lines, attrs) {
    // Down to the smallest probability of any line: 1 / the most samples.
    let minUs = 1e300, maxUs = 1, most = 1;
    for (const l of lines) {
      const h = l.h;
      minUs = Math.min(minUs, Math.max(1, h.min / 1000));
      maxUs = Math.max(maxUs, h.max / 1000, h.buckets.length ? h.buckets[h.buckets.length - 1][0] + 1 : 1);
      most = Math.max(most, samples(h));
    }
    if (minUs > maxUs) minUs = 1;
    const xLo = Math.pow(10, Math.floor(Math.log10(minUs) + 1e-9));
    let xHi = Math.pow(10, Math.ceil(Math.log10(maxUs) - 1e-9));
    if (xHi <= xLo) xHi = xLo * 10;
    let yLo = Math.pow(10, Math.floor(Math.log10(1 / most) - 1e-9));
    if (yLo >= 1) yLo = 0.1;
    const x = axis(xLo, xHi, PL, PR, true), y = axis(yLo, 1, PB, PT, true);
    const s = openSvg("plot ccdf", attrs, "complementary CDF: P(latency > x), log-log");
    drawAxes(s, x, y, "latency", "P(latency > x)", shortLatencyUs, probabilityText);
    legendY = PT + 12;
    for (const l of lines) {
      const h = l.h, n = samples(h);
      let curX = x.px(Math.max(xLo, h.min / 1000)), curY = y.px(1), pending = curY, survivors = n, points = 0;
      let d = "M" + c1(curX) + " " + c1(curY);
      // Whole pixel columns, half-pixel heights, as plots.cpp.
      const step = function (px, py) {
        px = Math.round(px);
        py = Math.round(py * 2) / 2;
        if (px > curX) {
          if (pending !== curY) { d += "V" + c1(pending); curY = pending; }
          d += "H" + c1(px);
          curX = px;
          points++;
        }
        pending = py;
      };
      for (const [k, c] of h.buckets) {
        survivors -= c;
        const edge = Math.min(k + 1, Math.max(h.max / 1000, k));
        step(x.px(Math.max(edge, xLo)), survivors > 0 ? y.px(survivors / n) : PB);
      }
      if (h.over) step(x.px(Math.max(h.max / 1000, xLo)), PB);
      if (pending !== curY) d += "V" + c1(pending);
      s.appendChild(sv("path", { class: "line " + l.cls, d: d, "data-steps": String(points) }));
      legend(s, l.label, l.cls);
    }
    return s;
  }
  function overlaySvg(lines, attrs) {
    const [x, y] = histogramAxes(lines.map(l => l.h));
    const s = openSvg("plot histogram overlay", attrs, "latency histograms overlaid, 1 µs bins, log count axis");
    drawAxes(s, x, y, "latency (1 µs bins)", "count (log)", shortLatencyUs, countText);
    legendY = PT + 12;
    for (const l of lines) {
      // Outlines: per pixel column the tallest bin, down to the axis over empty stretches.
      const cols = [];
      for (const [k, c] of l.h.buckets) {
        const px = Math.floor(x.px(k)), py = Math.round(y.px(c) * 2) / 2;
        if (cols.length && cols[cols.length - 1][0] === px) cols[cols.length - 1][1] = Math.min(cols[cols.length - 1][1], py);
        else cols.push([px, py]);
      }
      let d = "";
      for (let i = 0; i < cols.length; i++) {
        if (i === 0 || cols[i][0] !== cols[i - 1][0] + 1) d += "M" + c1(cols[i][0]) + " " + c1(PB);
        d += "V" + c1(cols[i][1]) + "H" + c1(cols[i][0] + 1);
        if (i + 1 === cols.length || cols[i + 1][0] !== cols[i][0] + 1) d += "V" + c1(PB);
      }
      s.appendChild(sv("path", { class: "line " + l.cls, d: d }));
      legend(s, l.label, l.cls);
    }
    return s;
  }

  // ---- The cells: what each one is, for the order, the overview and the filters.
  const cells = index.cells;
  const axes = index.axes;
  // Attention first (docs/report.md): a failed gate, a regression against the
  // baseline, a cell not measured or a gate that could not be evaluated.
  function kind(c) {
    if (c.v === "fail") return "fail";
    if (c.reg) return "regressed";
    if (c.v === "error" || (c.st !== "measured" && c.st !== "skipped") || (c.st === "measured" && c.max === null)) return "error";
    if (c.st === "skipped" || c.v === "skipped") return "skipped";
    return c.v === "pass" ? "pass" : "none";
  }
  const KINDS = { fail: "gate failed", regressed: "regressed", error: "not measured or not evaluated", pass: "passed", none: "measured, no gate", skipped: "skipped" };
  const RANK = { fail: 0, regressed: 1, error: 2 };
  cells.forEach((c, i) => { c.i = i; c.k = kind(c); });
  const attention = cells.filter(c => c.k in RANK).sort((a, b) => RANK[a.k] - RANK[b.k] || a.i - b.i);
  const folded = cells.filter(c => !(c.k in RANK));
  // Small reports show everything at once, through the same code: open is draw.
  const small = index.small;

  function runMark(c) {
    if (c.run === undefined) return null;
    const also = c.also || [];
    return el("span", { class: "run-mark" + (also.length ? " twin" : ""), "data-run": c.run },
              "run " + c.run + (also.length ? "; also measured in " + also.join(", ") : ""));
  }

  function cellSection(c) {
    const s = el("section", { class: "cell", id: "cell-" + c.i, "data-cell-id": c.id, "data-status": c.st, "data-kind": c.k,
                              "data-max-ns": c.max === null ? null : String(c.max) });
    const d = el("details");
    const h = el("h3", null, [(c.i + 1) + ". " + c.id, runMark(c), el("span", { class: "badge" }, c.st)]);
    if (c.v) h.appendChild(el("span", { class: "badge v-" + c.v }, "gates: " + c.v));
    if (c.reg) h.appendChild(el("span", { class: "badge v-fail" }, "regressed"));
    const why = (c.g || []).filter(x => x[2] !== "pass").map(x => x[0] + ": " + x[2] + (x[5] ? " (" + x[5] + ")" : ""));
    const sum = el("summary", null, [h, el("span", { class: "cell-sum small" },
      "max " + latency(c.max) + ", p99 " + latency(c.p99) + (why.length ? " · " + why.join("; ") : ""))]);
    d.appendChild(sum);
    d.addEventListener("toggle", () => { if (d.open) build(c); });
    s.appendChild(d);
    c.section = s;
    c.details = d;
    return s;
  }

  function build(c) {
    if (c.built) return;
    c.built = true;
    later(Promise.all([cellData(c.i), shared()]), ([x, sh]) => cellBody(c, c.details, x, sh.facts));
  }

  function statsTable(rows) {
    const t = el("table", { class: "stats" });
    t.appendChild(el("tr", null, ["CPU", "samples", "min", "mean", "p50", "p90", "p99", "p99.9", "p99.99", "max", "overflows", "missed periods"]
      .map((x, i) => el("th", i ? { class: "num" } : null, x))));
    for (const r of rows) {
      const tr = el("tr", null, el("th", null, r[0]));
      tr.appendChild(el("td", { class: "num" }, count(r[1])));
      for (let i = 2; i <= 8; i++) tr.appendChild(el("td", { class: "num" }, latency(r[i])));
      tr.appendChild(el("td", { class: "num max", "data-ns": r[9] === null ? null : String(r[9]) }, latency(r[9])));
      tr.appendChild(el("td", { class: "num" }, count(r[10])));
      tr.appendChild(el("td", { class: "num" }, r[11]));
      t.appendChild(tr);
    }
    return t;
  }

  function cellBody(c, box, x, facts) {
    const body = el("div", { class: "cell-body" });
    const ax = el("p", { class: "axes" });
    axes.forEach((a, i) => {
      if (c.a[i] < 0) return;
      if (ax.childNodes.length) ax.appendChild(document.createTextNode(" · "));
      add(ax, [a.name + " = ", el("b", null, a.values[c.a[i]])]);
    });
    body.appendChild(ax);
    if (x.err) body.appendChild(el("p", { class: "error" }, x.err));
    if (c.g && c.g.length) {
      const p = el("p", { class: "cell-gates" });
      for (const gt of c.g) {
        p.appendChild(el("span", { class: "badge v-" + gt[2] }, gt[0] + ": " + gt[2]));
        p.appendChild(document.createTextNode(" " + (gt[2] !== "pass" && gt[5] ? gt[5] + " " : "")));
      }
      body.appendChild(p);
    }
    for (const s of x.s || []) {
      const div = el("div", { class: "series", "data-series": s.name });
      if (x.s.length > 1) div.appendChild(el("h4", null, s.name));
      if (s.rows.length) div.appendChild(statsTable(s.rows));
      const cpus = (s.hc || []).map(decodeHist);
      const merged = s.h === "" ? sumHists(cpus) : s.h ? decodeHist(s.h) : null;
      if (merged) {
        const lines = [{ label: "all CPUs", cls: "merged", h: merged }];
        cpus.forEach((h, i) => lines.push({ label: "CPU " + s.cpus[i], cls: "cpu cpu" + (i % 8), h: h }));
        if (s.hb) lines.push({ label: "baseline " + index.baseline, cls: "baseline", h: decodeHist(s.hb) });
        const attrs = { "data-cell-id": c.id, "data-series": s.name };
        div.appendChild(el("div", { class: "plots" }, [histogramSvg(merged, attrs), ccdfSvg(lines, Object.assign({ "data-lines": String(lines.length) }, attrs))]));
      }
      body.appendChild(div);
    }
    traces(c, x, body);
    if (x.w && x.w.length)
      body.appendChild(el("details", { class: "warnings" }, [el("summary", null, x.w.length + " warning" + (x.w.length === 1 ? "" : "s")),
                                                              el("ul", null, x.w.map(w => el("li", null, w)))]));
    if (x.fa) {
      const t = el("table", { class: "facts" });
      for (const r of x.fa) {
        const [k, v] = facts[r];
        t.appendChild(el("tr", null, [el("th", null, k), el("td", null, v)]));
      }
      // The host's facts are those of System: one row saying so, after the plugins.
      if (x.hs) t.insertBefore(el("tr", null, [el("th", null, "host"), el("td", null, [x.hs[0] + ": as in ", el("a", { href: "#system" }, "System"),
                                                                                    " (" + x.hs[1] + ", " + x.hs[2] + ")"])]),
                               t.childNodes[x.hs[3]] || null);
      body.appendChild(el("details", { class: "facts" }, [el("summary", null, "host facts, plugins and timings"), t]));
    }
    box.appendChild(body);
  }

  function traces(c, x, body) {
    if (!x.f && !x.sp && !x.tl) return;
    const div = el("div", { class: "traces", "data-cell-id": c.id });
    const file = f => f[1] && f[1].indexOf("cells/") === 0 ? el("a", { class: f[2], href: f[1], "data-file": f[0] }, f[0])
                                                            : el("code", { class: f[2] + " unlinked" }, f[0]);
    const tr = (x.f || []).filter(f => f[2] === "trace"), other = (x.f || []).filter(f => f[2] !== "trace");
    if (tr.length) {
      const p = el("p", { class: "trace-files" }, "traces:");
      for (const f of tr) add(p, [" ", file(f)]);
      div.appendChild(p);
    }
    if (other.length) {
      const p = el("p");
      for (const f of other) add(p, [" ", file(f)]);
      div.appendChild(el("details", { class: "artifacts" }, [el("summary", null, "files of this cell"), p]));
    }
    if (x.fnote) div.appendChild(el("p", { class: "small" }, "This report was written outside its run directory: the files are in " + x.fnote + "."));
    if (x.sp) {
      const t = el("table", { class: "spikes" }, el("caption", null, "worst wake-ups (" + (x.spn || x.sp.length) + ", worst first)"));
      const head = ["#", "CPU", "latency", "CLOCK_MONOTONIC (s)", "CLOCK_REALTIME (UTC)"];
      if (x.ev) head.push("the host, same interval");
      t.appendChild(el("tr", null, head.map((h, i) => el("th", i < 4 ? { class: "num" } : null, h))));
      x.sp.forEach((sp, i) => {
        const row = el("tr", { class: "spike", "data-ns": sp[1] === null ? null : String(sp[1]), "data-cpu": sp[0] === null ? null : String(sp[0]) },
                       [el("td", { class: "num" }, String(i + 1)), el("td", { class: "num" }, sp[0] === null ? "–" : String(sp[0])),
                        el("td", { class: "num" }, latency(sp[1])), el("td", { class: "num" }, sp[2]), el("td", null, sp[3])]);
        if (x.ev) row.appendChild(sp[4] ? el("td", { class: "host-evidence", "data-wait-ns": String(sp[4][0]), "data-vcpu": String(sp[4][1]) }, sp[4][2])
                                        : el("td", { class: "host-evidence" }, "not covered by the host's samples"));
        t.appendChild(row);
      });
      div.appendChild(t);
      if (x.spn > x.sp.length) div.appendChild(el("p", { class: "small" }, (x.spn - x.sp.length) + " more in result.json."));
    }
    // The guest's spike on the host's time line: drawn by html.cpp, kept inert until now.
    if (x.tl) {
      const t = document.getElementById("timeline-" + c.i);
      if (t) div.appendChild(document.importNode(t.content, true));
    }
    body.appendChild(div);
  }

  // ---- The Cells section: counts, filters, overview, attention, folded passes.
  const root = document.getElementById("cells");
  const counts = {};
  for (const c of cells) counts[c.k] = (counts[c.k] || 0) + 1;
  const present = Object.keys(KINDS).filter(k => counts[k]);
  root.appendChild(el("p", { class: "cell-counts" }, cells.length + " cells: " + present.map(k => counts[k] + " " + KINDS[k]).join(", ")));

  // Filters: one choice per axis with several values, and the kinds.
  const bar = el("form", { class: "filters" });
  const axisFilter = [];
  axes.forEach((a, i) => {
    if (a.values.length < 2) return;
    const sel = el("select", { "data-axis": a.name }, [el("option", { value: "" }, "any")].concat(a.values.map((v, j) => el("option", { value: String(j) }, v))));
    axisFilter.push([i, sel]);
    bar.appendChild(el("label", { class: "axis-filter" }, [a.name + " ", sel]));
  });
  const kindBoxes = {};
  const kinds = el("span", { class: "kind-filter" });
  for (const k of present) {
    kindBoxes[k] = el("input", { type: "checkbox", value: k, checked: "" });
    kinds.appendChild(el("label", { class: "k-" + k }, [kindBoxes[k], " " + KINDS[k] + " (" + counts[k] + ")"]));
  }
  bar.appendChild(kinds);
  const colour = el("span", { class: "colour" }, "colour: ");
  for (const [v, label] of [["verdict", "verdict"], ["latency", "latency (max)"]]) {
    const r = el("input", { type: "radio", name: "colour", value: v });
    if (v === "verdict") r.checked = true;
    add(colour, [el("label", null, [r, " " + label]), " "]);
  }
  bar.appendChild(colour);
  const shown = el("span", { class: "shown small" });
  bar.appendChild(shown);
  root.appendChild(bar);

  // The overview: one square per cell, grouped by every varying axis but the
  // one with the most values, which runs along each group's row.
  const varying = axes.map((a, i) => i).filter(i => axes[i].values.length > 1);
  let flow = -1;
  for (const i of varying) if (flow < 0 || axes[i].values.length > axes[flow].values.length) flow = i;
  const groupAxes = varying.filter(i => i !== flow);
  const ov = el("div", { class: "overview by-verdict" + (cells.length > 2000 ? " dense" : "") });
  const fixed = axes.filter(a => a.values.length === 1).map(a => a.name + " = " + a.values[0]);
  const ovHead = el("p", { class: "small" }, "Each square is a cell" + (flow >= 0 ? ", along each row by " + axes[flow].name : "") +
                    (fixed.length ? "; every cell has " + fixed.join(", ") : "") + ". Click one to open it.");
  const groups = new Map();
  for (const c of cells) {
    const key = groupAxes.map(i => c.a[i]).join(",");
    if (!groups.has(key)) groups.set(key, { label: groupAxes.filter(i => c.a[i] >= 0).map(i => axes[i].name + "=" + axes[i].values[c.a[i]]).join(" · "), cells: [] });
    groups.get(key).cells.push(c);
  }
  // Latency colour: the cell's max on a log scale between the run's smallest and largest.
  const maxes = cells.filter(c => c.max !== null).map(c => c.max);
  const lo = Math.log10(Math.max(1, Math.min.apply(null, maxes.length ? maxes : [1])));
  const hi = Math.log10(Math.max(1, Math.max.apply(null, maxes.length ? maxes : [1])));
  function latencyColour(ns) {
    const f = hi > lo ? (Math.log10(Math.max(ns, 1)) - lo) / (hi - lo) : 0;
    return "hsl(" + Math.round(55 - 55 * f) + ", 90%, " + Math.round(80 - 45 * f) + "%)";
  }
  const frag = document.createDocumentFragment();
  for (const grp of groups.values()) {
    const row = el("div", { class: "ov-group" });
    if (grp.label) row.appendChild(el("span", { class: "ov-label", title: grp.label }, grp.label));
    const sq = el("div", { class: "ov-cells" });
    for (const c of grp.cells) {
      const a = el("a", { href: "#cell-" + c.i, class: "ov k-" + c.k, "data-cell-id": c.id,
                          title: c.id + ": " + KINDS[c.k] + ", max " + latency(c.max) });
      if (c.max !== null) a.style.setProperty("--lat", latencyColour(c.max));
      c.square = a;
      sq.appendChild(a);
    }
    row.appendChild(sq);
    frag.appendChild(row);
  }
  ov.appendChild(frag);
  const scale = el("p", { class: "ov-scale small" }, maxes.length ? "latency colour: max from " + latency(Math.pow(10, lo)) + " (light) to " + latency(Math.pow(10, hi)) + " (dark red); grey: not measured" : "");
  root.appendChild(el("div", { class: "overview-box" }, [ovHead, ov, scale]));

  const attn = el("div", { class: "attention" });
  if (!attention.length) attn.appendChild(el("p", { class: "none-attention" }, "No cell failed, regressed or went unmeasured."));
  for (const c of attention) attn.appendChild(cellSection(c));
  root.appendChild(attn);
  const fold = el("details", { class: "passed-cells" });
  const foldSum = el("summary");
  fold.appendChild(foldSum);
  const foldList = el("div");
  fold.appendChild(foldList);
  let foldBuilt = false;
  function buildFold() {
    if (foldBuilt) return;
    foldBuilt = true;
    const f = document.createDocumentFragment();
    for (const c of folded) f.appendChild(cellSection(c));
    foldList.appendChild(f);
    applyFilter();
  }
  fold.addEventListener("toggle", () => { if (fold.open) buildFold(); });
  if (folded.length) root.appendChild(fold);

  function matches(c) {
    if (!kindBoxes[c.k].checked) return false;
    for (const [i, sel] of axisFilter) if (sel.value !== "" && String(c.a[i]) !== sel.value) return false;
    return true;
  }
  function applyFilter() {
    let n = 0, nFold = 0;
    for (const c of cells) {
      const m = matches(c);
      n += m;
      if (!(c.k in RANK)) nFold += m;
      c.square.classList.toggle("out", !m);
      if (c.section) c.section.hidden = !m;
    }
    shown.textContent = "showing " + n + " of " + cells.length + " cells";
    foldSum.textContent = folded.length + " cells that passed or have no gate" + (nFold < folded.length ? " (" + nFold + " match the filter)" : "") + ": show";
  }
  bar.addEventListener("change", e => {
    if (e.target.name === "colour") ov.className = "overview by-" + e.target.value + (cells.length > 2000 ? " dense" : "");
    else applyFilter();
  });
  applyFilter();

  // Any link to a cell opens it, building the fold first if it is in there.
  function openCell(i) {
    const c = cells[i];
    if (!c) return;
    if (!c.section) { fold.open = true; buildFold(); }
    c.section.hidden = false;
    c.details.open = true;
    build(c);
    c.section.scrollIntoView();
  }
  document.addEventListener("click", e => {
    const a = e.target.closest && e.target.closest("a[href^='#cell-']");
    if (!a) return;
    e.preventDefault();
    history.replaceState(null, "", a.getAttribute("href"));
    openCell(Number(a.getAttribute("href").slice(6)));
  });
  if (/^#cell-\d+$/.test(location.hash)) openCell(Number(location.hash.slice(6)));
  if (small) {
    if (folded.length) { fold.open = true; buildFold(); }
    for (const c of cells) { c.details.open = true; build(c); }
  }

  // ---- The passed gates and the tails table: filled when unfolded.
  function fillWhenOpen(box, fill) {
    if (!box) return;
    const once = () => { if (box.open && !box.dataset.built) { box.dataset.built = "1"; later(shared(), sh => fill(box, sh)); } };
    box.addEventListener("toggle", once);
    once();
  }
  const cellLink = c => el("a", { href: "#cell-" + c.i }, c.id);
  fillWhenOpen(document.querySelector("details.passed[data-fill='gates']"), box => {  // from the index: no details needed
    const t = el("table", { class: "gates" }, el("tr", null, ["verdict", "cell", "gate", "stat", "value", "bound", "exceeded by", "message"]
      .map((h, i) => el("th", i >= 4 && i <= 6 ? { class: "num" } : null, h))));
    for (const c of cells)
      for (const gt of c.g || [])
        if (gt[2] === "pass")
          t.appendChild(el("tr", { class: "gate v-pass" }, [el("td", null, "pass"), el("td", null, [cellLink(c), runMark(c)]),
            el("td", null, gt[0]), el("td", null, gt[1]), el("td", { class: "num" }, latency(gt[3])), el("td", { class: "num" }, latency(gt[4])),
            el("td", { class: "num" }, "–"), el("td", null, gt[5])]));
    box.appendChild(t);
  });
  fillWhenOpen(document.querySelector("details.tails[data-fill='tails']"), (box, d) => {
    const t = el("table", { class: "tails" }, el("tr", null, ["cell", "model", "threshold", "exceedances", "fit p", "worst in 1 h", "worst in 24 h", "bound exceeded per hour"]
      .map((h, i) => el("th", i >= 2 && i <= 6 ? { class: "num" } : null, h))));
    const row = (c, r, cpu) => el("tr", cpu === undefined ? { "data-cell-id": c.id } : { "data-cell-id": c.id, class: "cpu", "data-cpu": cpu },
      [el("td", null, cpu === undefined ? [cellLink(c), runMark(c)] : "CPU " + cpu)].concat(r.map((v, i) => el("td", i >= 1 && i <= 5 ? { class: "num" } : null, v))));
    for (const tl of d.tails) {
      const c = cells[tl[0]];
      t.appendChild(row(c, tl.slice(1, 8)));
      for (const p of tl[8]) t.appendChild(row(c, p.slice(1), p[0]));
    }
    box.appendChild(t);
    const lengths = d.run_lengths;
    if (lengths.length)
      add(box, [el("h3", null, "How long to run"), el("ul", { class: "run-lengths" }, lengths.map(l => el("li", null, cells[l[0]].id + ": " + l[1])))]);
  });

  // ---- Overlay figures: drawn when they come into view (a page of a
  // thousand cells has hundreds), all at once on a small page.
  function drawFigure(f) {
    if (f.dataset.drawn) return;
    f.dataset.drawn = "1";
    later(shared().then(sh => {
      const spec = sh.figures[Number(f.dataset.figure)];
      return Promise.all(spec.lines.map(l => cellData(l[0]))).then(data => [spec, data]);
    }), ([spec, data]) => drawFigureNow(f, spec, data));
  }
  function drawFigureNow(f, spec, data) {
    const lines = [];
    spec.lines.forEach((l, i) => {
      const s = data[i].s;
      const m = s && s[0] && (s[0].h === "" ? sumHists(s[0].hc.map(decodeHist)) : s[0].h ? decodeHist(s[0].h) : null);
      if (m) lines.push({ label: l[1], cls: "cpu" + (i % 8), h: m });
    });
    const attrs = { "data-overlay": spec.kind, "data-lines": String(lines.length) };
    const box = f.querySelector(".plots");
    if (spec.draw !== "ccdf") box.appendChild(overlaySvg(lines, attrs));
    if (spec.draw !== "histogram") {
      const s = ccdfSvg(lines.map(l => ({ label: l.label, cls: l.cls, h: l.h })), attrs);
      s.setAttribute("class", "plot ccdf overlay");
      box.appendChild(s);
    }
  }
  const figures = document.querySelectorAll("figure.overlay[data-figure]");
  if (figures.length && figures[0].closest("details").open) figures.forEach(drawFigure);
  else {
    const io = new IntersectionObserver(es => es.forEach(e => { if (e.isIntersecting) { io.unobserve(e.target); drawFigure(e.target); } }), { rootMargin: "300px" });
    figures.forEach(f => io.observe(f));
  }
  performance.mark("vmlat-ready");
})();
