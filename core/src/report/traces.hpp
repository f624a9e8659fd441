// What a cell saved about its worst wake-ups, for the report: links to its
// trace files (result.json `traces`, written by plugins/cyclic/tracing.cpp),
// its worst wake-ups (`spikes`), and the host-side events of a guest's spike
// (host-trace.txt) on one time line with the spike.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model.hpp"

namespace vmlat::report {

// "cells/<id>/<name>", relative to the run directory, when `name` is a plain
// file name (letters, digits, '.', '_', '-', not starting with '.'), the
// cell's id is plain too, and the file is a regular file whose real path lies
// inside the run directory (a symbolic link out of it is refused). nullopt
// otherwise: such a name is shown as text, never linked.
std::optional<std::string> artifact_link(const Run& run, const Cell& c, const std::string& name);

// One event of an ftrace text trace ("comm-pid [cpu] flags ts: event: details").
struct TraceEvent {
  double t_s = 0;  // trace clock (mono: CLOCK_MONOTONIC), seconds
  int pid = -1, cpu = -1;
  std::string comm, event, details;
};
// host-trace.txt: its header (the clock mapping and the window) and events.
struct HostTraceExcerpt {
  bool mapped = false;  // the header line was read
  double guest_mono_s = 0, host_mono_s = 0, uncertainty_s = 0, from_s = 0, to_s = 0;
  std::vector<TraceEvent> events;
};
HostTraceExcerpt parse_host_trace(const std::string& text);
// One event line, or nullopt (headers, comments, lost-event notes).
std::optional<TraceEvent> parse_trace_line(const std::string& line);

// The guest's spike (its wake-up `latency_ns` late, at host CLOCK_MONOTONIC
// `spike_host_ns`, known within `uncertainty_ns`) above one row per traced
// host thread: when it ran (from sched_switch) and its other events.
struct TimelineSpike {
  long long spike_host_ns = 0, latency_ns = 0, uncertainty_ns = 0;
  int guest_cpu = -1;
};
// `guest_events`: the guest's own trace (trace.txt) already mapped to host
// time, drawn as one row per guest CPU above the host's rows.
std::string timeline_svg(const HostTraceExcerpt& trace, const TimelineSpike& spike, const std::vector<int>& threads,
                         const std::string& attributes, const std::vector<TraceEvent>& guest_events = {});

// The cell's files (result.json `traces`, linked only as artifact_link
// allows and only when `link`: a report written outside the run directory
// names them), its worst wake-ups (up to 50, each with the host's side where
// the backend sampled it) as members of the cell's entry in the report
// page's details (docs/report.md, "The page's data"): f, fnote, sp, spn, ev.
// Nothing is added for a cell without any.
void cell_traces_data(const Run& run, const Cell& c, bool link, json& out);

// A guest's spike traced on the host: a heading, a sentence with the two
// trace files and the time line SVG, as HTML; "" when the cell has none.
std::string cell_timeline_html(const Run& run, const Cell& c, bool link);

}  // namespace vmlat::report
