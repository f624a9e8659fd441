#include "monitor/monitor.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "cell/running_cell.hpp"
#include "cell_support.hpp"
#include "export/metrics.hpp"
#include "facts.hpp"
#include "gates/evaluate.hpp"
#include "loader.hpp"
#include "locks.hpp"
#include "session_store.hpp"
#include "vmlat/exit_codes.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/local.hpp"
#include "vmlat/log.hpp"
#include "vmlat/plugin.hpp"
#include "vmlat/process.hpp"
#include "vmlat/units.hpp"
#include "vmlat/version.hpp"

namespace vmlat {

using exporter::add_cell_metrics;
using exporter::cell_labels;
using exporter::histogram_doc_for_metrics;
using exporter::LabelList;
using exporter::MetricSet;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

class Snapshot final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lock(mutex_);
    return families_;
  }
  void set(std::vector<prometheus::MetricFamily> f) {
    std::lock_guard lock(mutex_);
    families_ = std::move(f);
  }

 private:
  mutable std::mutex mutex_;
  std::vector<prometheus::MetricFamily> families_;
};

Deadline after(std::chrono::nanoseconds d) { return Clock::now() + std::chrono::duration_cast<Clock::duration>(d); }

// {"stats": ..., "histogram": h.to_json()} appended to `out` without a JSON
// tree of the buckets (constant memory whatever the histogram holds).
void append_hist_doc(std::string& out, const Histogram& h) {
  out += "{\"stats\":";
  out += stats_to_json(h.stats()).dump();
  out += ",\"histogram\":";
  h.append_json(out);
  out += '}';
}

// The largest cumulative histogram the monitor preallocates, in 1us buckets
// (100 ms; a probe range above it makes memory grow with the buckets seen
// beyond it, bounded by the range).
constexpr std::uint64_t kMaxReservedBuckets = 100000;

std::int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// SIGHUP: reopen the logs (logrotate). Only a flag here; the monitor's loop
// acts on it.
std::atomic<bool> g_reopen{false};
extern "C" void on_sighup(int) { g_reopen.store(true); }

// monitor.log: timestamped lines, warnings and errors also on stderr.
// Unlike the runner's FileLogger it keeps nothing in memory and can be
// reopened, so that it runs for days.
class SessionLogger final : public Logger {
 public:
  SessionLogger(fs::path path, std::ostream& echo) : path_(std::move(path)), echo_(echo) { reopen(); }
  void info(std::string_view m) override { write("info", m, false); }
  void warn(std::string_view m) override { write("warn", m, true); }
  void error(std::string_view m) override { write("error", m, true); }
  void reopen() {
    std::lock_guard lock(mutex_);
    if (out_.is_open()) out_.close();
    out_.open(path_, std::ios::app);
  }

 private:
  void write(const char* level, std::string_view m, bool echo) {
    std::lock_guard lock(mutex_);
    const std::string line = iso_now() + " " + level + " " + std::string(m) + "\n";
    out_ << line << std::flush;
    if (echo) echo_ << "vmlat monitor: " << level << ": " << m << "\n" << std::flush;
  }
  fs::path path_;
  std::ostream& echo_;
  std::ofstream out_;
  std::mutex mutex_;
};

// Sleeps until `until` or an interrupt (Cancelled propagates).
void sleep_until(Deadline until) {
  while (Clock::now() < until) {
    check_interrupt();
    std::this_thread::sleep_for(std::min<Clock::duration>(100ms, until - Clock::now()));
  }
  check_interrupt();
}

}  // namespace

int run_monitor(const Plan& plan, PluginRegistry& registry, const MonitorOptions& options, std::ostream& out,
                std::ostream& err) {
  install_cancel_handlers();
  auto cells = expand(plan);
  if (cells.empty()) {
    err << "vmlat monitor: the plan has no cells\n";
    return exit_code::usage;
  }
  const Cell* chosen = &cells.front();
  if (!options.cell_id.empty()) {
    chosen = nullptr;
    for (const auto& c : cells)
      if (c.spec.id == options.cell_id) chosen = &c;
    if (!chosen) {
      err << "vmlat monitor: no cell '" << options.cell_id << "' in plan " << plan.name << "; cells:";
      for (const auto& c : cells) err << " " << c.spec.id;
      err << "\n";
      return exit_code::usage;
    }
  }
  Cell cell = *chosen;
  cell.spec.duration = options.window;
  if (options.window < cell.spec.period) {
    err << "vmlat monitor: --window " << format_duration(options.window) << " is shorter than the period ("
        << format_duration(cell.spec.period) << ")\n";
    return exit_code::usage;
  }

  HostLockFailure lock_failure;
  auto host_lock = acquire_host_lock(options.lock_dir, options.no_wait,
                                     json{{"what", "monitor"}, {"run_id", cell.spec.id}, {"plan", plan.name},
                                          {"pid", static_cast<long long>(::getpid())}, {"since", iso_now()}},
                                     err, &lock_failure);
  if (!host_lock) return lock_failure == HostLockFailure::interrupted ? exit_code::interrupted : exit_code::infra;

  // The session directory: evidence that outlives the monitor.
  const fs::path root = options.results_root ? *options.results_root : fs::path(plan.results_dir);
  const std::string session_id = "monitor-" + compact_utc() + "-" + std::to_string(::getpid());
  const fs::path session_dir = root / session_id;
  std::error_code mk_ec;
  fs::create_directories(session_dir / "artifacts", mk_ec);
  if (mk_ec) {
    err << "vmlat monitor: cannot create the session directory " << session_dir.string() << ": " << mk_ec.message()
        << "\n";
    return exit_code::infra;
  }
  // Scratch (probe output files, QEMU sockets): not evidence, removed at the end.
  char tmpl[] = "/tmp/vmlat-monitor-XXXXXX";
  if (!mkdtemp(tmpl)) {
    err << "vmlat monitor: cannot create a scratch directory in /tmp\n";
    return exit_code::infra;
  }
  const fs::path scratch = tmpl;
  fs::create_directories(scratch / "work");
  auto cleanup_scratch = [&] {
    std::error_code ec;
    fs::remove_all(scratch, ec);
  };

  auto snapshot = std::make_shared<Snapshot>();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(options.listen, 2);
    exposer->RegisterCollectable(snapshot);
  } catch (const std::exception& e) {
    err << "vmlat monitor: cannot listen on " << options.listen << ": " << e.what() << "\n";
    cleanup_scratch();
    return exit_code::usage;
  }
  std::string bound = options.listen;
  if (auto ports = exposer->GetListeningPorts(); !ports.empty()) {
    auto colon = options.listen.rfind(':');
    bound = (colon == std::string::npos ? std::string("0.0.0.0") : options.listen.substr(0, colon)) + ":" +
            std::to_string(ports.front());
  }

  struct sigaction hup {};
  hup.sa_handler = on_sighup;
  sigemptyset(&hup.sa_mask);
  struct sigaction old_hup {};
  sigaction(SIGHUP, &hup, &old_hup);

  SessionLogger log(session_dir / "monitor.log", err);
  std::unique_ptr<session::RecordLog> records;
  try {
    records = std::make_unique<session::RecordLog>(session_dir, options.bounds);
  } catch (const std::exception& e) {
    err << "vmlat monitor: " << e.what() << "\n";
    cleanup_scratch();
    return exit_code::infra;
  }
  auto host = make_local_executor(scratch / "host", "host");
  json host_facts;
  try {
    host_facts = collect_system_facts(*host);
  } catch (const std::exception& e) {
    host_facts = json{{"error", e.what()}};
  }
  if (auto needs = cell.spec.axis("host_kernel"); needs && *needs != "any") {
    bool host_rt = host_facts.contains("preempt_rt") && host_facts["preempt_rt"].is_boolean() &&
                   host_facts["preempt_rt"].get<bool>();
    if ((*needs == "rt") != host_rt) {
      err << "vmlat monitor: cell " << cell.spec.id << " is not runnable here: it needs a"
          << (*needs == "rt" ? " PREEMPT_RT" : " non-RT") << " host kernel\n";
      exposer.reset();
      cleanup_scratch();
      return exit_code::infra;
    }
  }

  const Instance& backend_inst = plan.backends.at(cell.backend);
  const Instance& probe_inst = plan.probes.at(cell.probe);

  // --- session state -------------------------------------------------------
  const std::string started = iso_now();
  // Cumulative histograms, per CPU and merged. Their buckets are reserved
  // from the probe's histogram range when the first segment starts, and the
  // per-window documents are written without JSON trees of the buckets, so
  // memory is taken once and stays constant over any length of session.
  std::map<int, Histogram> cumulative;
  Histogram cumulative_all;
  bool reserved = false;
  std::uint64_t reserve_range = 0;
  std::string hist_buf;  // histogram.json, reused every window
  std::uint64_t windows = 0, gaps = 0, restarts = 0, segment = 0, session_spikes = 0;
  std::int64_t gap_ns_total = 0;
  std::int64_t last_end_unix_ns = -1;  // end of the last recorded window
  std::optional<std::pair<std::uint64_t, std::int64_t>> open_gap;  // gap number, start
  bool streaming = false;
  std::string status = "running";
  json segments_facts = json::array();
  json axes = json::object();
  for (const auto& [k, v] : cell.spec.axes) axes[k] = v;
  const json cell_doc{{"id", cell.spec.id},
                      {"axes", axes},
                      {"host", cell.spec.host_name},
                      {"period_ns", cell.spec.period.count()},
                      {"cpus", cell.spec.cpus}};

  // Takes the cumulative histograms' memory once: every bucket of the probe's
  // range (facts "histogram_range_us", capped at kMaxReservedBuckets) for
  // the merged histogram now and each CPU's at its first window, and the
  // whole of histogram.json's buffer (CPUs from facts "cpus", else the
  // cell's), touched so that it is resident from now on.
  auto reserve_cumulative = [&](const json& probe_facts) {
    std::uint64_t range = 0;
    if (probe_facts.is_object() && probe_facts.contains("histogram_range_us") &&
        probe_facts["histogram_range_us"].is_number_unsigned())
      range = std::min(probe_facts["histogram_range_us"].get<std::uint64_t>(), kMaxReservedBuckets);
    if (range == 0) return;
    std::vector<int> cpus;
    if (probe_facts.contains("cpus") && probe_facts["cpus"].is_array())
      for (const auto& c : probe_facts["cpus"])
        if (c.is_number_integer()) cpus.push_back(c.get<int>());
    if (cpus.empty()) cpus.assign(cell.spec.cpus.begin(), cell.spec.cpus.end());
    reserve_range = range;  // each CPU's histogram when its first window comes
    cumulative_all.reserve_buckets(range);
    // "[12345,18446744073709551615]," per bucket, stats and keys per CPU.
    const std::size_t bytes = (cpus.size() + 1) * (range * 30 + 1024) + 256;
    hist_buf.assign(bytes, ' ');
    hist_buf.clear();
    log.info("cumulative histograms: " + std::to_string(range) + " buckets reserved for each of " +
             std::to_string(cpus.size()) + " CPU(s) and merged");
  };
  auto write_session = [&] {
    json doc{{"schema", session::kSessionSchema},
             {"session_id", session_id},
             {"vmlat_version", version_string},
             {"plan", {{"name", plan.name}, {"path", plan.path.string()}, {"sha256", plan.sha256}}},
             {"cell", cell_doc},
             {"window_ns", options.window.count()},
             {"streaming", streaming},
             {"status", status},
             {"pid", static_cast<long long>(::getpid())},
             {"started", started},
             {"finished", status == "running" ? json(nullptr) : json(iso_now())},
             {"windows", windows},
             {"gaps", gaps},
             {"gap_seconds", static_cast<double>(gap_ns_total) / 1e9},
             {"restarts", restarts},
             {"bounds",
              {{"max_bytes", options.bounds.max_bytes},
               {"file_bytes", options.bounds.file_bytes},
               {"max_age_s", options.bounds.max_age.count()}}},
             {"metrics", "http://" + bound + "/metrics"}};
    write_file_atomic(session_dir / "session.json", doc.dump(2) + "\n");
  };
  auto write_facts = [&] {
    write_file_atomic(session_dir / "facts.json",
                      json{{"host", host_facts}, {"segments", segments_facts}}.dump(2, ' ', false,
                                                                                    json::error_handler_t::replace) +
                          "\n");
  };
  auto write_histogram = [&] {
    hist_buf.clear();
    hist_buf += "{\"windows\":";
    hist_buf += std::to_string(windows);
    hist_buf += ",\"merged\":";
    append_hist_doc(hist_buf, cumulative_all);
    hist_buf += ",\"per_cpu\":{";
    bool first = true;
    for (const auto& [cpu, h] : cumulative) {
      hist_buf += first ? "\"" : ",\"";
      first = false;
      hist_buf += std::to_string(cpu);
      hist_buf += "\":";
      append_hist_doc(hist_buf, h);
    }
    hist_buf += "}}\n";
    write_file_atomic(session_dir / "histogram.json", hist_buf);
  };
  try {
    write_file_atomic(session_dir / "plan.toml", plan.text);
    write_session();
    write_facts();
  } catch (const std::exception& e) {
    err << "vmlat monitor: cannot write the session: " << e.what() << "\n";
    exposer.reset();
    cleanup_scratch();
    return exit_code::infra;
  }

  // --- metrics ---------------------------------------------------------------
  auto publish = [&](const std::map<int, Histogram>& window, std::int64_t window_end_unix_ns) {
    json run{{"plan", {{"name", plan.name}}}, {"vmlat_version", version_string}, {"started", started}, {"finished", nullptr}};
    // The cumulative histograms go to the metrics reduced to the exported
    // bounds: a document of constant size (histogram_doc_for_metrics).
    auto metrics_doc = [](const Histogram& h) {
      return json{{"stats", stats_to_json(h.stats())}, {"histogram", histogram_doc_for_metrics(h)}};
    };
    const Histogram& merged = cumulative_all;
    Histogram window_merged;
    json per_cpu = json::object();
    for (const auto& [cpu, h] : cumulative) per_cpu[std::to_string(cpu)] = metrics_doc(h);
    for (const auto& [cpu, h] : window) window_merged.merge(h);
    json gates = json::array();
    for (const auto& g : evaluate_gates(plan, cell.spec, CellStatus::measured, "", &merged)) {
      json j{{"gate", g.gate}, {"stat", g.stat}, {"bound_ns", g.bound.count()}, {"verdict", verdict_name(g.verdict)}};
      if (g.verdict == Verdict::pass || g.verdict == Verdict::fail) j["value_ns"] = g.value.count();
      gates.push_back(j);
    }
    json result{{"run_id", session_id},
                {"cell", {{"id", cell.spec.id}, {"axes", axes}, {"host", cell.spec.host_name},
                          {"period_ns", cell.spec.period.count()}, {"duration_ns", cell.spec.duration.count()}}},
                {"status", status_name(CellStatus::measured)},
                {"plugins", {{"backend", {{"plugin", backend_inst.plugin}}}}},
                {"host_facts", host_facts},
                {"facts", json::object()},
                {"timings", {{"started", started}, {"finished", iso_now()}}},
                {"merged", metrics_doc(merged)},
                {"per_cpu", per_cpu},
                {"gates", gates}};
    MetricSet set;
    add_cell_metrics(set, run, result);
    const LabelList L = cell_labels(run, result);
    auto with = [](LabelList l, const std::string& cpu) {
      l.emplace_back("cpu", cpu);
      return l;
    };
    set.gauge("vmlat_monitor_window_max_seconds", "Worst-case latency of the last completed window", with(L, "all"),
              to_seconds(window_merged.max()));
    for (const auto& [cpu, h] : window)
      set.gauge("vmlat_monitor_window_max_seconds", "Worst-case latency of the last completed window",
                with(L, std::to_string(cpu)), to_seconds(h.max()));
    set.counter("vmlat_monitor_windows_total", "Windows measured since the monitor started", L,
                static_cast<double>(windows));
    set.gauge("vmlat_monitor_window_seconds", "Length of one monitor window", L, to_seconds(options.window));
    set.gauge("vmlat_monitor_window_end_timestamp_seconds", "When the last window ended (Unix time)", L,
              window_end_unix_ns > 0 ? static_cast<double>(window_end_unix_ns) / 1e9
                                     : static_cast<double>(unix_now_ns()) / 1e9);
    set.counter("vmlat_monitor_gaps_total",
                "Times the measurement stopped (backend or probe failed) and time went unmeasured", L,
                static_cast<double>(gaps));
    set.counter("vmlat_monitor_gap_seconds_total", "Time not measured because of gaps (closed gaps)", L,
                static_cast<double>(gap_ns_total) / 1e9);
    set.counter("vmlat_monitor_restarts_total", "Times the backend and probe were brought up again after a failure",
                L, static_cast<double>(restarts));
    set.gauge("vmlat_monitor_in_gap", "1 while the monitor is not measuring (between a failure and the next window)",
              L, open_gap ? 1.0 : 0.0);
    set.gauge("vmlat_monitor_streaming",
              "1 when windows tile time (streaming probe); 0 for a probe run window by window (gaps between runs)", L,
              streaming ? 1.0 : 0.0);
    snapshot->set(set.take());
    struct Figures {
      std::uint64_t window_samples, all_samples;
      nanoseconds window_max, all_max;
    };
    return Figures{window_merged.samples(), merged.samples(), window_merged.max(), merged.max()};
  };
  publish({}, -1);

  // One window into the log, the cumulative histogram and /metrics.
  auto record_window = [&](const ProbeWindow& w, bool tiles) {
    if (open_gap) {
      const std::int64_t end = w.start_unix_ns;
      records->append(json{{"type", "gap-end"}, {"gap", open_gap->first}, {"end_unix_ns", end}, {"segment", segment}});
      if (end > open_gap->second) gap_ns_total += end - open_gap->second;
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.3fs", static_cast<double>(std::max<std::int64_t>(0, end - open_gap->second)) / 1e9);
      log.info("gap " + std::to_string(open_gap->first) + " closed: " + secs + " not measured");
      open_gap.reset();
    }
    json per_cpu = json::object();
    for (const auto& [cpu, h] : w.result.per_cpu) {
      json c{{"samples", h.samples()},
             {"min_ns", h.min().count()},
             {"max_ns", h.max().count()},
             {"avg_ns", h.mean().count()},
             {"p99_ns", h.samples() > 0 ? h.percentile(0.99).count() : 0},
             {"overflows", h.overflows()},
             {"missed_periods", h.missed_periods() ? json(*h.missed_periods()) : json(nullptr)}};
      if (auto s = w.span_mono_ns.find(cpu); s != w.span_mono_ns.end()) {
        c["start_mono_ns"] = s->second.first;
        c["end_mono_ns"] = s->second.second;
      }
      per_cpu[std::to_string(cpu)] = c;
      auto [slot, fresh] = cumulative.try_emplace(cpu);
      if (fresh && reserve_range > 0) slot->second.reserve_buckets(reserve_range);
      slot->second.merge(h);
      cumulative_all.merge(h);
    }
    json spikes = json::array();
    for (const auto& sp : w.result.spikes)
      spikes.push_back(json{{"cpu", sp.cpu},
                            {"latency_ns", sp.latency.count()},
                            {"realtime_ns", sp.realtime_ns},
                            {"monotonic_ns", sp.monotonic_ns}});
    session_spikes += spikes.size();
    records->append(json{{"type", "window"},
                         {"seq", windows},
                         {"segment", segment},
                         {"index", w.index},
                         {"tiles", tiles},
                         {"final", w.final},
                         {"start_unix_ns", w.start_unix_ns},
                         {"end_unix_ns", w.end_unix_ns},
                         {"per_cpu", per_cpu},
                         {"spikes", spikes}});
    ++windows;
    last_end_unix_ns = w.end_unix_ns;
    write_histogram();
    write_session();
    const auto f = publish(w.result.per_cpu, w.end_unix_ns);
    out << "window " << windows << ": " << f.window_samples << " samples, max " << format_latency(f.window_max)
        << "; since start: " << f.all_samples << " samples, max " << format_latency(f.all_max) << "\n"
        << std::flush;
  };
  auto begin_gap = [&](const std::string& reason) {
    const std::int64_t start = last_end_unix_ns > 0 ? last_end_unix_ns : unix_now_ns();
    ++gaps;
    open_gap = std::pair{gaps, start};
    records->append(json{{"type", "gap"},
                         {"gap", gaps},
                         {"kind", "failure"},
                         {"segment", segment},
                         {"start_unix_ns", start},
                         {"end_unix_ns", nullptr},
                         {"reason", reason}});
    write_session();
    publish({}, last_end_unix_ns);
  };

  out << "vmlat monitor: cell " << cell.spec.id << " of plan " << plan.name << ", windows of "
      << format_duration(options.window) << ", session " << session_dir.string() << ", metrics on http://" << bound
      << "/metrics (Ctrl-C stops)\n"
      << std::flush;

  // --- segments: bring up, measure until failure or stop, tear down ----------
  int code = exit_code::pass;
  auto backoff = options.backoff_min;
  const auto t_start = Clock::now();
  auto time_is_up = [&] { return options.stop_after && Clock::now() - t_start >= *options.stop_after; };
  auto handle_reopen = [&] {
    if (!g_reopen.exchange(false)) return;
    log.reopen();
    records->reopen();
    log.info("SIGHUP: logs reopened");
  };

  // A segment's measurement: the probe's windows, streamed (or one run per
  // window) until it fails, the monitor is stopped or its time is up. Throws
  // what ended it (RunningCell makes that the segment's failure).
  auto measure_segment = [&](RunningCell& running, std::uint64_t windows_before) {
    std::unique_ptr<ProbeStream> stream;
    {
      PhaseScope scope("stream", after(plan.timeouts.start));
      stream = running.probe().stream(running.target(), running.context(), options.window);
    }
    streaming = stream != nullptr;
    json seg{{"segment", segment}, {"started", iso_now()}, {"streaming", streaming}};
    try {
      seg["backend"] = running.backend_facts();
      seg["probe"] = stream ? stream->facts() : running.probe().facts();
    } catch (...) {
    }
    if (!reserved) {
      reserve_cumulative(seg["probe"]);
      reserved = true;
    }
    segments_facts.push_back(seg);
    // Bounded over days of restarts: the first segment and the last ones.
    if (segments_facts.size() > 20) segments_facts.erase(segments_facts.begin() + 1);
    write_facts();
    records->append(json{{"type", "segment"}, {"segment", segment}, {"time_unix_ns", unix_now_ns()},
                         {"streaming", streaming}});
    write_session();
    if (!streaming)
      log.warn("probe '" + probe_inst.name + "' cannot stream (engine cyclictest or timerlat): it runs once per "
               "window, and the time between two runs is not measured (recorded as gaps of kind between-runs)");
    log.info("segment " + std::to_string(segment) + " measuring");

    // No window for this long: the probe or its target is stuck.
    const auto silence_limit = options.window + std::max<std::chrono::nanoseconds>(plan.timeouts.measure_margin, 5s);
    auto last_window_at = Clock::now();
    try {
      while (!cancel_requested() && !time_is_up()) {
        handle_reopen();
        if (stream) {
          PhaseScope scope("measure", after(silence_limit + 10s));
          auto w = stream->next(after(std::chrono::milliseconds(250)));
          if (w) {
            record_window(*w, true);
            last_window_at = Clock::now();
            backoff = options.backoff_min;
            if (w->final) throw InfraError("the probe stopped by itself (its final window came)");
          } else if (Clock::now() - last_window_at > silence_limit) {
            throw InfraError("no window from the probe for " + format_duration(silence_limit));
          }
        } else {
          ProbeWindow w;
          w.start_unix_ns = unix_now_ns();
          {
            PhaseScope scope("measure", after(options.window + plan.timeouts.measure_margin));
            w.result = running.probe().run(running.target(), running.context());
          }
          w.end_unix_ns = unix_now_ns();
          if (w.result.per_cpu.empty()) {
            if (w.result.interrupted) break;
            throw InfraError("the probe returned no per-CPU results");
          }
          if (last_end_unix_ns > 0 && windows > windows_before)
            records->append(json{{"type", "gap"}, {"kind", "between-runs"}, {"segment", segment},
                                 {"start_unix_ns", last_end_unix_ns}, {"end_unix_ns", w.start_unix_ns},
                                 {"reason", "the probe cannot stream: not measured between two runs"}});
          w.index = windows - windows_before;
          record_window(w, false);
          backoff = options.backoff_min;
          if (w.result.interrupted) break;
        }
      }
    } catch (...) {
      // Failed (or interrupted): the stream's last windows are not
      // recorded; the stream ends before the cell is brought down.
      if (stream) stream->stop();
      throw;
    }
    // Stopped: the stream's last windows, the partial one included.
    if (stream) {
      for (auto& w : stream->stop()) {
        try {
          record_window(w, true);
        } catch (const std::exception& e) {
          log.error(std::string("cannot record the last window: ") + e.what());
        }
      }
    }
  };

  // Forever, as far as a phase deadline goes: the segment ends by itself.
  constexpr auto kUntilStopped = std::chrono::hours(24 * 365 * 100);
  while (!cancel_requested() && !time_is_up()) {
    ++segment;
    CellContextImpl ctx(cell.spec, session_dir / "artifacts", scratch / "work", log, *host);
    const std::uint64_t windows_before = windows;
    RunningCell running(plan, registry, cell, ctx);
    const RunningCell::Ended ended =
        running.run(kUntilStopped, [&](RunningCell& c) { measure_segment(c, windows_before); });
    // A stop (SIGINT, --for) ends the session; anything else is a failure.
    const std::string failure = ended.status == CellStatus::infra_error ? ended.phase + ": " + ended.error : "";
    if (failure.empty()) break;
    log.error("segment " + std::to_string(segment) + " failed: " + failure);
    if (ended.phase == "teardown" && (cancel_requested() || time_is_up())) {
      // The last segment would not come down: something may still run.
      err << "vmlat monitor: " << failure << "\n";
      code = exit_code::infra;
      break;
    }
    if (windows == 0 && !open_gap) {
      // Never measured: a broken setup, not a failure to ride out.
      err << "vmlat monitor: " << failure << "\n";
      code = exit_code::infra;
      break;
    }
    try {
      if (!open_gap) begin_gap(failure);
    } catch (const std::exception& e) {
      err << "vmlat monitor: cannot record a gap: " << e.what() << "\n";
      code = exit_code::infra;
      break;
    }
    if (cancel_requested() || time_is_up()) break;
    log.info("bringing the backend up again in " + format_duration(backoff));
    try {
      sleep_until(after(backoff));
    } catch (const Cancelled&) {
      break;
    }
    backoff = std::min(backoff * 2, options.backoff_max);
    ++restarts;
  }

  if (open_gap) {
    // Stopped during a gap: it ends with the session.
    try {
      const std::int64_t end = unix_now_ns();
      records->append(json{{"type", "gap-end"}, {"gap", open_gap->first}, {"end_unix_ns", end}, {"segment", segment},
                           {"session_ended", true}});
      gap_ns_total += std::max<std::int64_t>(0, end - open_gap->second);
      open_gap.reset();
    } catch (const std::exception&) {
    }
  }
  kill_all_children();
  status = code == exit_code::pass ? "stopped" : "failed";
  try {
    write_session();
  } catch (const std::exception& e) {
    err << "vmlat monitor: cannot write session.json: " << e.what() << "\n";
    if (code == exit_code::pass) code = exit_code::infra;
  }
  exposer.reset();
  cleanup_scratch();
  sigaction(SIGHUP, &old_hup, nullptr);
  out << "vmlat monitor: stopped after " << windows << " window" << (windows == 1 ? "" : "s") << ", " << gaps
      << " gap" << (gaps == 1 ? "" : "s") << "; session " << session_dir.string() << "\n";
  return code;
}

}  // namespace vmlat
