#include "session.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

#include "plots.hpp"
#include "session_store.hpp"
#include "text_escape.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/json.hpp"

namespace vmlat::report {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kSpikesShown = 50;

struct WindowRow {
  std::uint64_t seq = 0, segment = 0;
  std::int64_t start_ns = 0, end_ns = 0;
  long long max_ns = 0;
  std::uint64_t samples = 0, missed = 0;
  bool missed_known = true;  // every CPU's window counted them
};
struct GapRow {
  std::string kind;
  std::int64_t start_ns = 0, end_ns = -1;  // -1: still open when the log ends
  std::string reason;
};
struct SpikeRow {
  int cpu = 0;
  long long latency_ns = 0;
  std::int64_t realtime_ns = -1;
  std::uint64_t window = 0;
};

struct Session {
  fs::path dir;
  json doc, histogram;
  std::vector<WindowRow> windows;
  std::vector<GapRow> gaps;
  std::vector<SpikeRow> spikes;  // worst first, at most kSpikesShown
  std::vector<std::string> errors;
};

json read_json(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::int64_t num(const json& j, const char* key, std::int64_t fallback = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<std::int64_t>() : fallback;
}

Session load_session(const fs::path& dir) {
  Session s;
  s.dir = dir;
  s.doc = read_json(dir / "session.json");
  if (s.doc.value("schema", std::string()) != session::kSessionSchema)
    throw std::runtime_error((dir / "session.json").string() + ": schema is not " + std::string(session::kSessionSchema));
  try {
    s.histogram = read_json(dir / "histogram.json");
  } catch (const std::exception& e) {
    s.errors.push_back(std::string("histogram.json: ") + e.what());
  }
  auto read = session::read_records(dir);
  s.errors.insert(s.errors.end(), read.errors.begin(), read.errors.end());
  std::map<std::int64_t, std::size_t> open;  // gap number -> row
  for (const json& r : read.records) {
    const std::string type = r.value("type", std::string());
    if (type == "window") {
      WindowRow w;
      w.seq = static_cast<std::uint64_t>(num(r, "seq"));
      w.segment = static_cast<std::uint64_t>(num(r, "segment"));
      w.start_ns = num(r, "start_unix_ns");
      w.end_ns = num(r, "end_unix_ns");
      if (auto pc = r.find("per_cpu"); pc != r.end() && pc->is_object())
        for (const auto& [cpu, c] : pc->items()) {
          w.max_ns = std::max<long long>(w.max_ns, num(c, "max_ns"));
          w.samples += static_cast<std::uint64_t>(num(c, "samples"));
          if (auto m = c.find("missed_periods"); m != c.end() && m->is_number())
            w.missed += m->get<std::uint64_t>();
          else
            w.missed_known = false;
        }
      s.windows.push_back(w);
      if (auto sp = r.find("spikes"); sp != r.end() && sp->is_array())
        for (const auto& x : *sp)
          s.spikes.push_back(SpikeRow{static_cast<int>(num(x, "cpu")), num(x, "latency_ns"), num(x, "realtime_ns", -1),
                                      w.seq});
      // Only the worst are shown: keep the list short while reading days of windows.
      if (s.spikes.size() > 4 * kSpikesShown) {
        std::stable_sort(s.spikes.begin(), s.spikes.end(),
                         [](const SpikeRow& a, const SpikeRow& b) { return a.latency_ns > b.latency_ns; });
        s.spikes.resize(kSpikesShown);
      }
    } else if (type == "gap") {
      GapRow g{r.value("kind", std::string("failure")), num(r, "start_unix_ns"), num(r, "end_unix_ns", -1),
               r.value("reason", std::string())};
      if (g.end_ns < 0) open[num(r, "gap")] = s.gaps.size();
      s.gaps.push_back(g);
    } else if (type == "gap-end") {
      if (auto it = open.find(num(r, "gap")); it != open.end()) {
        s.gaps[it->second].end_ns = num(r, "end_unix_ns", -1);
        open.erase(it);
      }
    }
  }
  std::stable_sort(s.spikes.begin(), s.spikes.end(),
                   [](const SpikeRow& a, const SpikeRow& b) { return a.latency_ns > b.latency_ns; });
  if (s.spikes.size() > kSpikesShown) s.spikes.resize(kSpikesShown);
  return s;
}

// 2026-12-01T13:20:36.128919227Z: nanoseconds, so that a spike can be matched
// to a trace or a log line.
std::string utc_ns(std::int64_t ns) {
  if (ns < 0) return "unknown";
  const std::time_t t = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%09lldZ", buf, static_cast<long long>(ns % 1000000000));
  return out;
}

std::string us(long long ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(ns) / 1000.0);
  return buf;
}

// The worst case of each window over time, on a log latency axis; failure
// gaps shaded, so that time not measured is never mistaken for quiet time.
std::string max_over_time_svg(const Session& s) {
  if (s.windows.empty()) return "<p>No window was recorded.</p>";
  const double W = 760, H = 260, L = 60, R = 10, T = 10, B = 40;
  std::int64_t t0 = s.windows.front().start_ns, t1 = s.windows.back().end_ns;
  for (const auto& g : s.gaps) {
    if (g.kind != "failure") continue;
    t0 = std::min(t0, g.start_ns);
    if (g.end_ns > 0) t1 = std::max(t1, g.end_ns);
  }
  double lo = 1e300, hi = 0;
  for (const auto& w : s.windows) {
    const double v = std::max(1.0, static_cast<double>(w.max_ns) / 1000.0);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  lo = std::pow(10.0, std::floor(std::log10(lo)));
  hi = std::pow(10.0, std::ceil(std::log10(hi * 1.01)));
  const Axis x = Axis::linear(0, static_cast<double>(t1 - t0) / 1e9, L, W - R);
  const Axis y = Axis::log10(lo, hi, H - B, T);
  std::ostringstream o;
  o << "<svg class=\"session-max\" viewBox=\"0 0 " << W << " " << H << "\" width=\"" << W << "\" height=\"" << H
    << "\" role=\"img\" aria-label=\"worst case per window over time\">";
  for (const auto& g : s.gaps) {
    if (g.kind != "failure") continue;
    const double a = x.px(static_cast<double>(g.start_ns - t0) / 1e9);
    const double b = x.px(static_cast<double>((g.end_ns > 0 ? g.end_ns : t1) - t0) / 1e9);
    o << "<rect class=\"gap\" x=\"" << a << "\" y=\"" << T << "\" width=\"" << std::max(1.0, b - a) << "\" height=\""
      << H - B - T << "\" fill=\"#f4c7c3\"><title>gap: not measured</title></rect>";
  }
  for (double v : y.ticks())
    o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << y.px(v) << "\" y2=\"" << y.px(v)
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 4 << "\" y=\"" << y.px(v) + 4
      << "\" text-anchor=\"end\" font-size=\"11\">" << html_escape(short_latency_us(v)) << "</text>";
  for (double v : x.ticks())
    o << "<text x=\"" << x.px(v) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\" font-size=\"11\">" << v
      << "s</text>";
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 6
    << "\" text-anchor=\"middle\" font-size=\"11\">time since " << html_escape(utc_ns(t0)) << "</text>";
  // One step per window: its maximum held over its whole span.
  o << "<path fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" d=\"";
  bool first = true;
  std::int64_t prev_end = 0;
  for (const auto& w : s.windows) {
    const double v = std::max(1.0, static_cast<double>(w.max_ns) / 1000.0);
    const double a = x.px(static_cast<double>(w.start_ns - t0) / 1e9), b = x.px(static_cast<double>(w.end_ns - t0) / 1e9);
    o << (first || w.start_ns != prev_end ? "M" : "L") << a << "," << y.px(v) << "L" << b << "," << y.px(v);
    first = false;
    prev_end = w.end_ns;
  }
  o << "\"/></svg>";
  return o.str();
}

json session_json(const Session& s) {
  json windows = json::array(), gaps = json::array(), spikes = json::array();
  for (const auto& w : s.windows)
    windows.push_back(json{{"seq", w.seq}, {"segment", w.segment}, {"start_unix_ns", w.start_ns},
                           {"end_unix_ns", w.end_ns}, {"max_ns", w.max_ns}, {"samples", w.samples},
                           {"missed_periods", w.missed_known ? json(w.missed) : json(nullptr)}});
  for (const auto& g : s.gaps)
    gaps.push_back(json{{"kind", g.kind}, {"start_unix_ns", g.start_ns},
                        {"end_unix_ns", g.end_ns < 0 ? json(nullptr) : json(g.end_ns)}, {"reason", g.reason}});
  for (const auto& sp : s.spikes)
    spikes.push_back(json{{"cpu", sp.cpu}, {"latency_ns", sp.latency_ns}, {"realtime_ns", sp.realtime_ns},
                          {"time", utc_ns(sp.realtime_ns)}, {"window", sp.window}});
  return json{{"session", s.doc}, {"windows", windows}, {"gaps", gaps}, {"spikes", spikes},
              {"histogram", s.histogram.is_object() ? s.histogram.value("merged", json(nullptr)) : json(nullptr)},
              {"errors", s.errors}};
}

std::string field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string render_session_html(const Session& s) {
  const json& d = s.doc;
  const json plan = d.value("plan", json::object()), cell = d.value("cell", json::object());
  std::ostringstream o;
  o << "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vmlat monitor session "
    << html_escape(field(d, "session_id")) << "</title><style>body{font-family:sans-serif;margin:2em;max-width:60em}"
    << "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    << "th{background:#eee}.warn{color:#a00}"
    // The plot classes of plots.cpp (as the run report styles them).
    << "svg.plot{background:#fff;border:1px solid #eee}svg .frame{fill:none;stroke:#888}svg .grid{stroke:#eee}"
    << "svg text{font:10px sans-serif;fill:#333}svg .axis-title{font-size:11px}svg .note{fill:#b3261e}"
    << "svg .bars{fill:#3465a4}svg .max{stroke:#b3261e;stroke-dasharray:3 2}</style></head><body>";
  o << "<h1>Monitoring session " << html_escape(field(d, "session_id")) << "</h1>";
  long long max_ns = 0;
  std::uint64_t samples = 0;
  for (const auto& w : s.windows) {
    max_ns = std::max(max_ns, w.max_ns);
    samples += w.samples;
  }
  std::size_t failure_gaps = 0;
  for (const auto& g : s.gaps) failure_gaps += g.kind == "failure";
  o << "<table class=\"summary\">";
  auto row = [&](const std::string& k, const std::string& v) {
    o << "<tr><th>" << html_escape(k) << "</th><td>" << html_escape(v) << "</td></tr>";
  };
  row("plan", field(plan, "name"));
  row("cell", field(cell, "id"));
  row("status", field(d, "status"));
  row("started", field(d, "started"));
  row("finished", field(d, "finished"));
  char window_s[32];
  std::snprintf(window_s, sizeof window_s, "%gs", static_cast<double>(num(d, "window_ns")) / 1e9);
  row("window", window_s);
  row("windows", std::to_string(s.windows.size()));
  row("samples", std::to_string(samples));
  row("worst case", us(max_ns) + "us");
  row("streaming (windows tile time)", d.value("streaming", false) ? "yes" : "no: gaps between windows");
  row("gaps (failures)", std::to_string(failure_gaps));
  row("restarts", field(d, "restarts"));
  o << "</table>";
  if (!s.errors.empty()) {
    o << "<h2 class=\"warn\">Problems reading the session</h2><ul>";
    for (const auto& e : s.errors) o << "<li>" << html_escape(e) << "</li>";
    o << "</ul>";
  }
  o << "<h2>Worst case per window</h2>" << max_over_time_svg(s);
  o << "<h2>Cumulative histogram</h2>";
  std::optional<HistogramData> h;
  if (s.histogram.is_object())
    if (auto m = s.histogram.find("merged"); m != s.histogram.end() && m->is_object())
      h = decode_histogram(m->value("histogram", json(nullptr)));
  o << (h ? histogram_svg(*h, "class=\"plot session-histogram\"") : std::string("<p>No samples.</p>"));
  o << "<h2>Worst wake-ups</h2><table class=\"spikes\"><tr><th>latency (us)</th><th>CPU</th><th>time (UTC, "
       "CLOCK_REALTIME)</th><th>window</th></tr>";
  for (const auto& sp : s.spikes)
    o << "<tr><td>" << us(sp.latency_ns) << "</td><td>" << sp.cpu << "</td><td>" << html_escape(utc_ns(sp.realtime_ns))
      << "</td><td>" << sp.window << "</td></tr>";
  o << "</table>";
  o << "<h2>Gaps</h2>";
  if (s.gaps.empty()) o << "<p>None: every activation from the first window to the last was measured.</p>";
  else {
    o << "<table class=\"gaps\"><tr><th>kind</th><th>from</th><th>to</th><th>seconds</th><th>reason</th></tr>";
    for (const auto& g : s.gaps)
      o << "<tr><td>" << html_escape(g.kind) << "</td><td>" << html_escape(utc_ns(g.start_ns)) << "</td><td>"
        << html_escape(g.end_ns < 0 ? std::string("(open)") : utc_ns(g.end_ns)) << "</td><td>"
        << (g.end_ns < 0 ? std::string("?") : us((g.end_ns - g.start_ns) / 1000) + "e-3") << "</td><td>"
        << html_escape(g.reason) << "</td></tr>";
    o << "</table>";
  }
  o << "</body></html>\n";
  return o.str();
}

std::string render_session_markdown(const Session& s) {
  std::ostringstream o;
  o << "# Monitoring session " << markdown_escape(field(s.doc, "session_id")) << "\n\n";
  o << "| windows | gaps | worst case (us) |\n|---|---|---|\n";
  long long max_ns = 0;
  for (const auto& w : s.windows) max_ns = std::max(max_ns, w.max_ns);
  o << "| " << s.windows.size() << " | " << s.gaps.size() << " | " << us(max_ns) << " |\n\n";
  o << "## Worst wake-ups\n\n| latency (us) | CPU | time (UTC) |\n|---|---|---|\n";
  for (const auto& sp : s.spikes) o << "| " << us(sp.latency_ns) << " | " << sp.cpu << " | " << utc_ns(sp.realtime_ns) << " |\n";
  o << "\n## Gaps\n\n";
  for (const auto& g : s.gaps)
    o << "- " << markdown_escape(g.kind) << ": " << utc_ns(g.start_ns) << " to "
      << (g.end_ns < 0 ? std::string("(open)") : utc_ns(g.end_ns)) << ": " << markdown_escape(g.reason) << "\n";
  return o.str();
}

}  // namespace

bool is_session_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "session.json", ec);
}

int session_report_command(const ReportCommand& c, std::ostream& out, std::ostream& err) {
  Session s;
  try {
    s = load_session(c.run_dir);
  } catch (const std::exception& e) {
    err << "vmlat: report: " << e.what() << "\n";
    return exit_code::usage;
  }
  std::string content = c.format == "html"       ? render_session_html(s)
                        : c.format == "markdown" ? render_session_markdown(s)
                                                 : session_json(s).dump(2) + "\n";
  std::string output = c.output;
  if (output.empty() && c.format == "html") output = (fs::path(c.run_dir) / "report.html").string();
  if (output.empty() || output == "-") {
    out << content;
    return exit_code::pass;
  }
  try {
    write_file_atomic(output, content);
  } catch (const std::exception& e) {
    err << "vmlat: cannot write " << output << ": " << e.what() << "\n";
    return exit_code::infra;
  }
  if (c.format == "html") out << "report: " << output << "\n";
  return exit_code::pass;
}

}  // namespace vmlat::report
