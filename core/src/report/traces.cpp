#include "traces.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "host_evidence.hpp"
#include "json_access.hpp"
#include "plots.hpp"
#include "text_escape.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

namespace fs = std::filesystem;

namespace {

// A trace excerpt is a window of ~25 ms: more than this is not ours to draw.
constexpr std::uintmax_t kMaxTraceBytes = 8u << 20;
constexpr std::size_t kMaxSpikeRows = 50;

bool plain_name(const std::string& s) {
  if (s.empty() || s.size() > 255 || s.front() == '.') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

std::string esc(std::string_view s) { return html_escape(s); }

std::string coord(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

std::optional<std::string> read_capped(const fs::path& p) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  if (ec || size > kMaxTraceBytes) return std::nullopt;
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::string s(static_cast<std::size_t>(size), '\0');
  in.read(s.data(), static_cast<std::streamsize>(size));
  s.resize(static_cast<std::size_t>(in.gcount()));
  return s;
}

// The integer after "key=" where key starts the details or follows a space.
std::optional<long long> field(const std::string& details, const std::string& key) {
  for (std::size_t at = details.find(key + "="); at != std::string::npos; at = details.find(key + "=", at + 1)) {
    if (at != 0 && details[at - 1] != ' ') continue;
    long long v = 0;
    if (std::sscanf(details.c_str() + at + key.size() + 1, "%lld", &v) == 1) return v;
  }
  return std::nullopt;
}

std::string ns_text(long long ns) { return format_latency(std::chrono::nanoseconds(ns)); }

std::string seconds_text(long long ns) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%09lld", ns / 1000000000, ns % 1000000000);
  return buf;
}

std::string realtime_text(long long ns) {
  std::time_t t = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) return seconds_text(ns);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, (ns % 1000000000) / 1000);
  return buf;
}

std::string kind_of(const std::string& event) {
  if (event == "sched_switch") return "switch";
  if (event == "sched_wakeup" || event == "sched_waking" || event == "sched_wakeup_new") return "wakeup";
  if (event == "kvm_exit") return "exit";
  if (event == "kvm_entry") return "entry";
  if (event == "print" || event == "tracing_mark_write") return "marker";
  if (event.rfind("irq_", 0) == 0 || event.rfind("softirq_", 0) == 0) return "irq";
  if (event.rfind("hrtimer_", 0) == 0 || event.rfind("timer_", 0) == 0) return "timer";
  return "other";
}

}  // namespace

std::optional<std::string> artifact_link(const Run& run, const Cell& c, const std::string& name) {
  const StoredRun* stored = c.stored ? c.stored : run.stored;
  if (!plain_name(name) || !plain_name(c.id) || !stored) return std::nullopt;
  std::error_code ec;
  const fs::path root = fs::canonical(stored->dir, ec);
  if (ec) return std::nullopt;
  const fs::path file = root / "cells" / c.id / name;
  if (!fs::is_regular_file(fs::symlink_status(file, ec))) return std::nullopt;  // a link could point anywhere
  const fs::path real = fs::canonical(file, ec);
  if (ec) return std::nullopt;
  const std::string r = real.string(), base = root.string() + "/";
  if (r.compare(0, base.size(), base) != 0) return std::nullopt;  // cells/<id> itself a link out of the run
  return "cells/" + c.id + "/" + name;
}

std::optional<TraceEvent> parse_trace_line(const std::string& line) {
  if (line.empty() || line[0] == '#') return std::nullopt;
  // "  comm-123  [001] d..2.  6757.538531: event: details"; comm may hold spaces and '-'.
  const auto close = line.find("] ");
  if (close == std::string::npos) return std::nullopt;
  const auto open = line.rfind('[', close);
  if (open == std::string::npos || open == 0) return std::nullopt;
  const auto colon = line.find(": ", close);
  if (colon == std::string::npos) return std::nullopt;
  const auto space = line.rfind(' ', colon);
  TraceEvent e;
  if (space == std::string::npos || std::sscanf(line.c_str() + space + 1, "%lf", &e.t_s) != 1) return std::nullopt;
  std::sscanf(line.c_str() + open + 1, "%d", &e.cpu);
  std::string task = line.substr(0, open);
  task.erase(0, task.find_first_not_of(' '));
  task.erase(task.find_last_not_of(' ') + 1);
  const auto dash = task.rfind('-');
  if (dash == std::string::npos || std::sscanf(task.c_str() + dash + 1, "%d", &e.pid) != 1) return std::nullopt;
  e.comm = task.substr(0, dash);
  const auto event_end = line.find(": ", colon + 2);
  e.event = line.substr(colon + 2, event_end == std::string::npos ? std::string::npos : event_end - colon - 2);
  if (event_end != std::string::npos) e.details = line.substr(event_end + 2);
  return e;
}

HostTraceExcerpt parse_host_trace(const std::string& text) {
  HostTraceExcerpt t;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("# guest CLOCK_MONOTONIC ", 0) == 0) {
      t.mapped = std::sscanf(line.c_str(), "# guest CLOCK_MONOTONIC %lf = host CLOCK_MONOTONIC %lf (+- %lf s); window %lf .. %lf",
                             &t.guest_mono_s, &t.host_mono_s, &t.uncertainty_s, &t.from_s, &t.to_s) == 5;
      continue;
    }
    if (auto e = parse_trace_line(line)) t.events.push_back(std::move(*e));
  }
  std::stable_sort(t.events.begin(), t.events.end(), [](const TraceEvent& a, const TraceEvent& b) { return a.t_s < b.t_s; });
  return t;
}

std::string timeline_svg(const HostTraceExcerpt& trace, const TimelineSpike& spike, const std::vector<int>& threads,
                         const std::string& attributes, const std::vector<TraceEvent>& guest_events) {
  constexpr double kWidth = 960, kLeft = 170, kRight = 20, kRow = 22, kTop = 12, kAxis = 34, kLegend = 20;
  const double wake_s = static_cast<double>(spike.spike_host_ns) / 1e9;
  double from = trace.mapped ? trace.from_s : wake_s - 0.020, to = trace.mapped ? trace.to_s : wake_s + 0.005;
  if (!trace.events.empty() && !trace.mapped) {
    from = std::min(from, trace.events.front().t_s);
    to = std::max(to, trace.events.back().t_s);
  }
  // x: milliseconds relative to the guest's wake-up.
  Axis x = Axis::linear((from - wake_s) * 1e3, (to - wake_s) * 1e3, kLeft, kWidth - kRight);
  auto px = [&](double t_s) { return std::clamp(x.px((t_s - wake_s) * 1e3), kLeft, kWidth - kRight); };

  // Rows: the guest's spike, the guest's CPUs (its own trace), each traced
  // host thread, then anyone else who shows up on the host.
  std::set<int> guest_cpus;
  for (const auto& e : guest_events) guest_cpus.insert(e.cpu);
  const std::size_t first_host = 1 + guest_cpus.size();
  std::vector<int> rows = threads;
  std::map<int, std::string> comm;
  bool other = false;
  std::set<int> traced(threads.begin(), threads.end());
  for (const auto& e : trace.events) {
    if (traced.count(e.pid)) comm.emplace(e.pid, e.comm);
    else other = true;
  }
  const double rows_h = kRow * static_cast<double>(first_host + rows.size() + (other ? 1 : 0));
  const double height = kTop + rows_h + kAxis + kLegend;
  const double bottom = kTop + rows_h;
  auto row_y = [&](std::size_t r) { return kTop + kRow * static_cast<double>(r); };

  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + coord(kWidth) + " " + coord(height) +
                    "\" width=\"" + coord(kWidth) + "\" height=\"" + coord(height) + "\" " + attributes + " data-events=\"" +
                    std::to_string(trace.events.size()) + "\"><title>host-side events around the guest's spike</title>";
  out += "<rect class=\"frame\" x=\"" + coord(kLeft) + "\" y=\"" + coord(kTop) + "\" width=\"" + coord(kWidth - kRight - kLeft) +
         "\" height=\"" + coord(rows_h) + "\"/>";
  if (!guest_cpus.empty())
    out += "<line class=\"grid\" x1=\"" + coord(kLeft) + "\" x2=\"" + coord(kWidth - kRight) + "\" y1=\"" + coord(kTop + kRow * static_cast<double>(first_host)) +
           "\" y2=\"" + coord(kTop + kRow * static_cast<double>(first_host)) + "\"/>";
  for (double t : x.ticks(8)) {
    double p = x.px(t);
    out += "<line class=\"grid\" x1=\"" + coord(p) + "\" x2=\"" + coord(p) + "\" y1=\"" + coord(kTop) + "\" y2=\"" + coord(bottom) +
           "\"/><text class=\"tick\" x=\"" + coord(p) + "\" y=\"" + coord(bottom + 14) + "\" text-anchor=\"middle\">" +
           esc(short_latency_us(std::abs(t) * 1e3) == "0" ? "0" : (t < 0 ? "-" : "+") + short_latency_us(std::abs(t) * 1e3)) +
           "</text>";
  }
  out += "<text class=\"axis-title\" x=\"" + coord((kLeft + kWidth - kRight) / 2) + "\" y=\"" + coord(bottom + 28) +
         "\" text-anchor=\"middle\">host CLOCK_MONOTONIC, relative to the guest's wake-up</text>";
  auto label = [&](std::size_t r, const std::string& text) {
    out += "<text class=\"row-label\" x=\"" + coord(kLeft - 6) + "\" y=\"" + coord(row_y(r) + 15) + "\" text-anchor=\"end\">" +
           esc(text) + "</text>";
  };

  // The guest's spike: from when its timer was due to when it woke up.
  label(0, "guest" + (spike.guest_cpu >= 0 ? " CPU " + std::to_string(spike.guest_cpu) : std::string()) + ": spike");
  const double due = wake_s - static_cast<double>(spike.latency_ns) / 1e9, unc = static_cast<double>(spike.uncertainty_ns) / 1e9;
  out += "<line class=\"uncertainty\" x1=\"" + coord(px(due - unc)) + "\" x2=\"" + coord(px(wake_s + unc)) + "\" y1=\"" +
         coord(row_y(0) + 11) + "\" y2=\"" + coord(row_y(0) + 11) + "\"/>";
  out += "<rect class=\"spike\" data-host-ns=\"" + std::to_string(spike.spike_host_ns) + "\" data-latency-ns=\"" +
         std::to_string(spike.latency_ns) + "\" x=\"" + coord(px(due)) + "\" y=\"" + coord(row_y(0) + 4) + "\" width=\"" +
         coord(std::max(1.0, px(wake_s) - px(due))) + "\" height=\"14\"><title>" +
         esc("the guest's task woke up " + ns_text(spike.latency_ns) + " late (timer due to wake-up); clock mapping +- " +
             ns_text(spike.uncertainty_ns)) +
         "</title></rect>";

  // Thread rows: running intervals from sched_switch, then event ticks.
  std::map<int, std::size_t> row_of;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    row_of[rows[i]] = first_host + i;
    auto c = comm.find(rows[i]);
    label(first_host + i, "host: " + (c == comm.end() ? std::string("thread") : c->second) + " " + std::to_string(rows[i]));
  }
  const std::size_t other_row = first_host + rows.size();
  if (other) label(other_row, "host: other tasks");
  std::map<int, std::size_t> guest_row;
  for (int cpu : guest_cpus) {
    guest_row[cpu] = 1 + guest_row.size();
    label(guest_row[cpu], "guest CPU " + std::to_string(cpu) + " trace");
  }
  std::map<int, double> running_since;
  auto run_bar = [&](int tid, double a, double b) {
    out += "<rect class=\"running\" data-tid=\"" + std::to_string(tid) + "\" x=\"" + coord(px(a)) + "\" y=\"" +
           coord(row_y(row_of[tid]) + 5) + "\" width=\"" + coord(std::max(0.5, px(b) - px(a))) + "\" height=\"12\"/>";
  };
  std::set<int> seen_switch;
  for (const auto& e : trace.events) {
    if (e.event != "sched_switch") continue;
    auto prev = field(e.details, "prev_pid"), next = field(e.details, "next_pid");
    if (prev && traced.count(static_cast<int>(*prev))) {
      int tid = static_cast<int>(*prev);
      auto it = running_since.find(tid);
      // Switched out before we saw it switched in: it ran since the window began.
      run_bar(tid, it != running_since.end() ? it->second : (seen_switch.count(tid) ? e.t_s : from), e.t_s);
      if (it != running_since.end()) running_since.erase(it);
      seen_switch.insert(tid);
    }
    if (next && traced.count(static_cast<int>(*next))) {
      running_since[static_cast<int>(*next)] = e.t_s;
      seen_switch.insert(static_cast<int>(*next));
    }
  }
  for (const auto& [tid, since] : running_since) run_bar(tid, since, to);

  // One tick per event kind and pixel column: a window holds thousands of kvm exits.
  std::set<std::tuple<std::size_t, std::string, long>> drawn;
  for (const auto& e : trace.events) {
    int subject = e.pid;
    if (e.event.rfind("sched_wak", 0) == 0)
      if (auto pid = field(e.details, "pid")) subject = static_cast<int>(*pid);
    auto r = row_of.find(subject);
    std::size_t row = r != row_of.end() ? r->second : other_row;
    if (row == other_row && !other) continue;
    std::string kind = kind_of(e.event);
    double p = px(e.t_s);
    if (!drawn.insert({row, kind, std::lround(p)}).second) continue;
    out += "<line class=\"ev ev-" + kind + "\" x1=\"" + coord(p) + "\" x2=\"" + coord(p) + "\" y1=\"" + coord(row_y(row) + 2) +
           "\" y2=\"" + coord(row_y(row) + kRow - 2) + "\"><title>" +
           esc(e.comm + "-" + std::to_string(e.pid) + " [" + std::to_string(e.cpu) + "] " + e.event + ": " + e.details) +
           "</title></line>";
  }
  for (const auto& e : guest_events) {
    std::size_t row = guest_row[e.cpu];
    std::string kind = kind_of(e.event);
    double p = px(e.t_s);
    if (kind != "marker" && !drawn.insert({row, kind, std::lround(p)}).second) continue;
    out += "<line class=\"ev guest ev-" + kind + "\" x1=\"" + coord(p) + "\" x2=\"" + coord(p) + "\" y1=\"" + coord(row_y(row) + 2) +
           "\" y2=\"" + coord(row_y(row) + kRow - 2) + "\"><title>" +
           esc("guest " + e.comm + "-" + std::to_string(e.pid) + " [" + std::to_string(e.cpu) + "] " + e.event + ": " + e.details) +
           "</title></line>";
  }
  out += "<line class=\"spike-line\" x1=\"" + coord(px(wake_s)) + "\" x2=\"" + coord(px(wake_s)) + "\" y1=\"" + coord(kTop) +
         "\" y2=\"" + coord(bottom) + "\"/>";
  double lx = 10;
  const double ly = bottom + kAxis + 12;
  for (auto [cls, text] : {std::pair{"spike", "guest: timer due .. wake-up"}, std::pair{"running", "vCPU thread running"},
                           std::pair{"ev-switch", "sched_switch"}, std::pair{"ev-wakeup", "wakeup"},
                           std::pair{"ev-exit", "kvm_exit"}, std::pair{"ev-entry", "kvm_entry"}, std::pair{"ev-irq", "irq"},
                           std::pair{"ev-timer", "hrtimer"}, std::pair{"ev-marker", "trace marker"}}) {
    bool line = std::string(cls).rfind("ev-", 0) == 0;
    out += line ? "<line class=\"ev " + std::string(cls) + "\" x1=\"" + coord(lx + 5) + "\" x2=\"" + coord(lx + 5) + "\" y1=\"" +
                      coord(ly - 10) + "\" y2=\"" + coord(ly + 1) + "\"/>"
                : "<rect class=\"" + std::string(cls) + "\" x=\"" + coord(lx) + "\" y=\"" + coord(ly - 9) +
                      "\" width=\"10\" height=\"10\"/>";
    out += "<text class=\"legend\" x=\"" + coord(lx + 14) + "\" y=\"" + coord(ly) + "\">" + esc(text) + "</text>";
    lx += 30 + 6.2 * static_cast<double>(std::string_view(text).size());
  }
  out += "</svg>";
  return out;
}

namespace {

// A file of the cell: [name, link or null, kind]; linked only inside the run directory.
json file_entry(const Run& run, const Cell& c, bool link, const std::string& name, const char* kind) {
  auto href = link ? artifact_link(run, c, name) : std::nullopt;
  return json::array({name, href ? json(*href) : json(nullptr), kind});
}

}  // namespace

void cell_traces_data(const Run& run, const Cell& c, bool link, json& out) {
  if (!c.result) return;
  const json& r = *c.result;
  const json& traces = member(r, "traces");
  const json& spikes = member(r, "spikes");
  const json& artifacts = member(r, "artifacts");
  const bool has_traces = traces.is_array() && !traces.empty();
  const bool has_spikes = spikes.is_array() && !spikes.empty();
  const bool has_artifacts = artifacts.is_array() && !artifacts.empty();
  if (!has_traces && !has_spikes && !has_artifacts) return;

  json files = json::array();
  std::set<std::string> listed;
  if (has_traces)
    for (const auto& t : traces)
      if (t.is_string()) {
        files.push_back(file_entry(run, c, link, t.get<std::string>(), "trace"));
        listed.insert(t.get<std::string>());
      }
  if (has_artifacts)
    for (const auto& a : artifacts)
      if (a.is_string() && !listed.count(a.get<std::string>())) files.push_back(file_entry(run, c, link, a.get<std::string>(), "artifact"));
  if (!files.empty()) out["f"] = std::move(files);
  if (!link && (has_traces || has_artifacts))
    out["fnote"] = (c.stored ? c.stored->dir : run.stored ? run.stored->dir : "") + "/cells/" + c.id + "/";

  if (has_spikes) {
    // The host's side of each spike, where the backend sampled its vCPU threads.
    const auto evidence = cell_spike_evidence(run, c);
    bool any_evidence = false;
    for (const auto& e : evidence) any_evidence = any_evidence || e.has_value();
    json rows = json::array();
    for (const auto& s : spikes) {
      if (rows.size() == kMaxSpikeRows) break;
      auto lat = integer_at(s, "latency_ns"), mono = integer_at(s, "monotonic_ns"), real = integer_at(s, "realtime_ns");
      auto cpu = integer_at(s, "cpu");
      json row = json::array({cpu ? json(*cpu) : json(nullptr), lat ? json(*lat) : json(nullptr), mono ? seconds_text(*mono) : "–",
                              real ? realtime_text(*real) : "–"});
      if (any_evidence) {
        const auto& e = rows.size() < evidence.size() ? evidence[rows.size()] : std::nullopt;
        row.push_back(e ? json::array({e->wait_ns, e->vcpu, e->sentence}) : json(0));
      }
      rows.push_back(std::move(row));
    }
    out["sp"] = std::move(rows);
    if (spikes.size() > kMaxSpikeRows) out["spn"] = spikes.size();
    if (any_evidence) out["ev"] = 1;
  }
}

std::string cell_timeline_html(const Run& run, const Cell& c, bool link) {
  if (!c.result) return {};
  const json& r = *c.result;
  const json& traces = member(r, "traces");
  // The host side of a guest's spike, when it was saved and is ours to read.
  bool host_trace = false;
  if (traces.is_array())
    for (const auto& t : traces) host_trace = host_trace || (t.is_string() && t.get<std::string>() == "host-trace.txt");
  const json& trace_facts = member(member(member(r, "facts"), "probe"), "trace");
  const json& fired = member(trace_facts, "fired");
  const json& host = member(trace_facts, "host");
  auto href = host_trace ? artifact_link(run, c, "host-trace.txt") : std::nullopt;
  if (!href || !fired.is_object()) return {};
  auto text = read_capped(fs::path((c.stored ? c.stored : run.stored)->dir) / *href);
  auto spike_host = integer_at(host, "spike_host_monotonic_ns");
  auto latency = integer_at(fired, "latency_ns");
  if (!text || !latency) return {};
  auto file = [&](const std::string& name) {
    auto to = link ? artifact_link(run, c, name) : std::nullopt;
    if (to) return "<a class=\"trace\" href=\"" + esc(*to) + "\" data-file=\"" + esc(name) + "\">" + esc(name) + "</a>";
    return "<code class=\"trace unlinked\">" + esc(name) + "</code>";
  };
  HostTraceExcerpt excerpt = parse_host_trace(*text);
  TimelineSpike spike;
  spike.latency_ns = *latency;
  spike.guest_cpu = static_cast<int>(integer_at(fired, "cpu").value_or(-1));
  spike.uncertainty_ns = integer_at(host, "clock_uncertainty_ns")
                             .value_or(static_cast<long long>(std::llround(excerpt.uncertainty_s * 1e9)));
  spike.spike_host_ns = spike_host.value_or(static_cast<long long>(std::llround(excerpt.host_mono_s * 1e9)));
  std::vector<int> threads;
  for (const auto& t : member(host, "threads"))
    if (t.is_number_integer()) threads.push_back(t.get<int>());
  // The guest's own trace, moved onto the host's clock by the same mapping.
  std::vector<TraceEvent> guest_events;
  auto offset = integer_at(host, "clock_offset_ns");
  auto guest_href = artifact_link(run, c, "trace.txt");
  std::optional<std::string> guest_text = offset && guest_href ? read_capped(fs::path((c.stored ? c.stored : run.stored)->dir) / *guest_href) : std::nullopt;
  if (guest_text && excerpt.mapped) {
    std::size_t pos = 0;
    while (pos < guest_text->size()) {
      auto nl = guest_text->find('\n', pos);
      if (nl == std::string::npos) nl = guest_text->size();
      if (auto e = parse_trace_line(guest_text->substr(pos, nl - pos))) {
        e->t_s += static_cast<double>(*offset) / 1e9;
        if (e->t_s >= excerpt.from_s && e->t_s <= excerpt.to_s) guest_events.push_back(std::move(*e));
      }
      pos = nl + 1;
    }
  }
  return "<h4>the guest's spike and the host</h4><p class=\"small\">The wake-up that stopped the guest's trace (" +
         esc(ns_text(*latency)) + " late), mapped to the host's clock within ±" + esc(ns_text(spike.uncertainty_ns)) +
         ", with the guest's own trace (" + file("trace.txt") + ", " + std::to_string(guest_events.size()) +
         " events in the window) above what the host did with the guest's vCPU threads then (" + file("host-trace.txt") + ", " +
         std::to_string(excerpt.events.size()) + " events).</p>" +
         timeline_svg(excerpt, spike, threads,
                      "class=\"plot timeline\" data-cell-id=\"" + esc(c.id) + "\" data-guest-events=\"" +
                          std::to_string(guest_events.size()) + "\"",
                      guest_events);
}

}  // namespace vmlat::report
