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
#include <optional>
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
#include "vmlat/proc_thread.hpp"
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


// One `vmlat monitor` session: the cell, its session directory and live
// metrics, and the segments that measure it.
//
//   open: the cell, the host lock, the session directory, /metrics, facts
//   segments: a life of the cell (RunningCell) each, measuring windows until
//     it fails (a gap, a back-off, the next segment) or the monitor stops
//   close: the open gap ended, session.json final, scratch removed
class Monitor {
 public:
  Monitor(const Plan& plan, PluginRegistry& registry, const MonitorOptions& options, std::ostream& out, std::ostream& err)
      : plan_(plan), registry_(registry), options_(options), out_(out), err_(err) {}
  ~Monitor() {
    remove_scratch();
    if (hup_installed_) sigaction(SIGHUP, &old_hup_, nullptr);
  }

  int run() {
    if (int code = open(); code != exit_code::pass) return code;
    int code = segments();
    if (code == exit_code::pass && windows_ == 0) {
      // Stopped before the first window: nothing was measured, which is
      // never a pass (a window that had begun is kept as a partial one).
      if (cancel_requested()) {
        err_ << "vmlat monitor: interrupted before the first window: nothing measured\n";
        code = exit_code::interrupted;
      } else {
        err_ << "vmlat monitor: --for " << format_duration(*options_.stop_after)
             << " ran out before the first window: nothing measured (the cell takes longer to come up; a longer --for)\n";
        code = exit_code::infra;
      }
    }
    return close(code);
  }

 private:
  // --- open ------------------------------------------------------------------
  int open();
  int choose_cell();
  void remove_scratch() {
    std::error_code ec;
    if (!scratch_.empty()) fs::remove_all(scratch_, ec);
    scratch_.clear();
  }

  // --- the session's files ----------------------------------------------------
  void reserve_cumulative(const json& probe_facts);
  void write_session();
  void write_facts();
  void write_histogram();

  // --- /metrics ----------------------------------------------------------------
  struct Figures {
    std::uint64_t window_samples, all_samples;
    nanoseconds window_max, all_max;
  };
  Figures publish(const std::map<int, Histogram>& window, std::int64_t window_end_unix_ns);

  // --- windows and gaps ----------------------------------------------------------
  void record_window(const ProbeWindow& w, bool tiles);
  void begin_gap(const std::string& reason);
  void handle_reopen();
  bool time_is_up() const { return options_.stop_after && Clock::now() - started_at_ >= *options_.stop_after; }

  // --- segments --------------------------------------------------------------------
  int segments();
  void measure_segment(RunningCell& running, std::uint64_t windows_before);
  int close(int code);

  const Plan& plan_;
  PluginRegistry& registry_;
  const MonitorOptions& options_;
  std::ostream& out_;
  std::ostream& err_;

  Cell cell_;
  std::optional<FileLock> host_lock_;
  std::string session_id_;
  fs::path session_dir_, scratch_;
  std::shared_ptr<Snapshot> snapshot_ = std::make_shared<Snapshot>();
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string bound_;  // the address /metrics listens on
  struct sigaction old_hup_ {};
  bool hup_installed_ = false;
  std::unique_ptr<SessionLogger> log_;
  std::unique_ptr<session::RecordLog> records_;
  std::unique_ptr<Executor> host_;
  json host_facts_;
  json axes_ = json::object();

  // Cumulative histograms, per CPU and merged. Their buckets are reserved
  // from the probe's histogram range when the first segment starts, and the
  // per-window documents are written without JSON trees of the buckets, so
  // memory is taken once and stays constant over any length of session.
  std::map<int, Histogram> cumulative_;
  Histogram cumulative_all_;
  bool reserved_ = false;
  std::uint64_t reserve_range_ = 0;
  std::string hist_buf_;  // histogram.json, reused every window

  const std::string started_ = iso_now();
  const Clock::time_point started_at_ = Clock::now();
  std::uint64_t windows_ = 0, gaps_ = 0, restarts_ = 0, segment_ = 0;
  std::int64_t gap_ns_total_ = 0;
  std::int64_t last_end_unix_ns_ = -1;  // end of the last recorded window
  std::optional<std::pair<std::uint64_t, std::int64_t>> open_gap_;  // gap number, start
  bool streaming_ = false;
  std::string status_ = "running";
  json segments_facts_ = json::array();
  std::chrono::milliseconds backoff_{0};
  // The backend's vCPU threads on this host and their counters at the last
  // window (tid -> run-queue wait ns, involuntary switches): each window
  // records what the host did to them since (docs/session-format.md).
  std::vector<int> host_threads_;
  std::map<int, std::pair<long long, long long>> host_prev_;
  json host_since_window();
};

namespace {
// A thread's run-queue wait (schedstat) and involuntary switches (status),
// or nullopt once it has ended. /proc/TID names any thread of the host.
std::optional<std::pair<long long, long long>> thread_counters(int tid) {
  const std::string dir = "/proc/" + std::to_string(tid) + "/";
  const auto sched = read_schedstat(dir);
  if (!sched) return std::nullopt;
  const auto invol = proc_keyed_value(read_proc_file(dir + "status"), "nonvoluntary_ctxt_switches");
  return std::pair{sched->wait_ns, invol.value_or(-1)};
}
}  // namespace

json Monitor::host_since_window() {
  if (host_threads_.empty()) return nullptr;
  json threads = json::array();
  for (int tid : host_threads_) {
    auto now = thread_counters(tid);
    auto prev = host_prev_.find(tid);
    if (!now || prev == host_prev_.end()) {
      threads.push_back(json{{"tid", tid}, {"run_queue_wait_ns", nullptr}, {"involuntary_switches", nullptr}});
    } else {
      threads.push_back(json{{"tid", tid},
                             {"run_queue_wait_ns", now->first - prev->second.first},
                             {"involuntary_switches", now->second - prev->second.second}});
    }
    if (now) host_prev_[tid] = *now;
  }
  return json{{"vcpu_threads", threads}};
}

int Monitor::choose_cell() {
  auto cells = expand(plan_);
  if (cells.empty()) {
    err_ << "vmlat monitor: the plan has no cells\n";
    return exit_code::usage;
  }
  const Cell* chosen = &cells.front();
  if (!options_.cell_id.empty()) {
    chosen = nullptr;
    for (const auto& c : cells)
      if (c.spec.id == options_.cell_id) chosen = &c;
    if (!chosen) {
      err_ << "vmlat monitor: no cell '" << options_.cell_id << "' in plan " << plan_.name << "; cells:";
      for (const auto& c : cells) err_ << " " << c.spec.id;
      err_ << "\n";
      return exit_code::usage;
    }
  }
  cell_ = *chosen;
  cell_.spec.duration = options_.window;
  if (options_.window < cell_.spec.period) {
    err_ << "vmlat monitor: --window " << format_duration(options_.window) << " is shorter than the period ("
         << format_duration(cell_.spec.period) << ")\n";
    return exit_code::usage;
  }
  for (const auto& [k, v] : cell_.spec.axes) axes_[k] = v;
  return exit_code::pass;
}

int Monitor::open() {
  if (int code = choose_cell(); code != exit_code::pass) return code;
  HostLockFailure lock_failure;
  host_lock_ = acquire_host_lock(options_.lock_dir, options_.no_wait,
                                 json{{"what", "monitor"}, {"run_id", cell_.spec.id}, {"plan", plan_.name},
                                      {"pid", static_cast<long long>(::getpid())}, {"since", iso_now()}},
                                 err_, &lock_failure);
  if (!host_lock_) return lock_failure == HostLockFailure::interrupted ? exit_code::interrupted : exit_code::infra;

  // The session directory: evidence that outlives the monitor (absolute:
  // the plugins hand its paths to their programs).
  const fs::path root = fs::absolute(options_.results_root ? *options_.results_root : fs::path(plan_.results_dir));
  session_id_ = "monitor-" + compact_utc() + "-" + std::to_string(::getpid());
  session_dir_ = root / session_id_;
  std::error_code mk_ec;
  fs::create_directories(session_dir_ / "artifacts", mk_ec);
  if (mk_ec) {
    err_ << "vmlat monitor: cannot create the session directory " << session_dir_.string() << ": " << mk_ec.message() << "\n";
    return exit_code::infra;
  }
  // Scratch (probe output files, QEMU sockets): not evidence, removed at the end.
  char tmpl[] = "/tmp/vmlat-monitor-XXXXXX";
  if (!mkdtemp(tmpl)) {
    err_ << "vmlat monitor: cannot create a scratch directory in /tmp\n";
    return exit_code::infra;
  }
  scratch_ = tmpl;
  fs::create_directories(scratch_ / "work");

  try {
    exposer_ = std::make_unique<prometheus::Exposer>(options_.listen, 2);
    exposer_->RegisterCollectable(snapshot_);
  } catch (const std::exception& e) {
    err_ << "vmlat monitor: cannot listen on " << options_.listen << ": " << e.what() << "\n";
    return exit_code::usage;
  }
  bound_ = options_.listen;
  if (auto ports = exposer_->GetListeningPorts(); !ports.empty()) {
    auto colon = options_.listen.rfind(':');
    bound_ = (colon == std::string::npos ? std::string("0.0.0.0") : options_.listen.substr(0, colon)) + ":" +
             std::to_string(ports.front());
  }

  struct sigaction hup {};
  hup.sa_handler = on_sighup;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, &old_hup_);
  hup_installed_ = true;

  log_ = std::make_unique<SessionLogger>(session_dir_ / "monitor.log", err_);
  try {
    records_ = std::make_unique<session::RecordLog>(session_dir_, options_.bounds);
  } catch (const std::exception& e) {
    err_ << "vmlat monitor: " << e.what() << "\n";
    return exit_code::infra;
  }
  host_ = make_local_executor(scratch_ / "host", "host");
  try {
    host_facts_ = collect_system_facts(*host_);
  } catch (const std::exception& e) {
    host_facts_ = json{{"error", e.what()}};
  }
  if (auto needs = cell_.spec.axis("host_kernel"); needs && *needs != "any") {
    if ((*needs == "rt") != flag_or(host_facts_, "preempt_rt", false)) {
      err_ << "vmlat monitor: cell " << cell_.spec.id << " is not runnable here: it needs a"
           << (*needs == "rt" ? " PREEMPT_RT" : " non-RT") << " host kernel\n";
      return exit_code::infra;
    }
  }
  try {
    write_file_atomic(session_dir_ / "plan.toml", plan_.text);
    write_session();
    write_facts();
  } catch (const std::exception& e) {
    err_ << "vmlat monitor: cannot write the session: " << e.what() << "\n";
    return exit_code::infra;
  }
  publish({}, -1);
  out_ << "vmlat monitor: cell " << cell_.spec.id << " of plan " << plan_.name << ", windows of "
       << format_duration(options_.window) << ", session " << session_dir_.string() << ", metrics on http://" << bound_
       << "/metrics (Ctrl-C stops)\n"
       << std::flush;
  return exit_code::pass;
}

// Takes the cumulative histograms' memory once: every bucket of the probe's
// range (facts "histogram_range_us", capped at kMaxReservedBuckets) for the
// merged histogram now and each CPU's at its first window, and the whole of
// histogram.json's buffer (CPUs from facts "cpus", else the cell's), touched
// so that it is resident from now on.
void Monitor::reserve_cumulative(const json& probe_facts) {
  std::uint64_t range = 0;
  if (probe_facts.is_object() && probe_facts.contains("histogram_range_us") &&
      probe_facts["histogram_range_us"].is_number_unsigned())
    range = std::min(probe_facts["histogram_range_us"].get<std::uint64_t>(), kMaxReservedBuckets);
  if (range == 0) return;
  std::vector<int> cpus;
  if (probe_facts.contains("cpus") && probe_facts["cpus"].is_array())
    for (const auto& c : probe_facts["cpus"])
      if (c.is_number_integer()) cpus.push_back(c.get<int>());
  if (cpus.empty()) cpus.assign(cell_.spec.cpus.begin(), cell_.spec.cpus.end());
  reserve_range_ = range;  // each CPU's histogram when its first window comes
  cumulative_all_.reserve_buckets(range);
  // "[12345,18446744073709551615]," per bucket, stats and keys per CPU.
  const std::size_t bytes = (cpus.size() + 1) * (range * 30 + 1024) + 256;
  hist_buf_.assign(bytes, ' ');
  hist_buf_.clear();
  log_->info("cumulative histograms: " + std::to_string(range) + " buckets reserved for each of " +
             std::to_string(cpus.size()) + " CPU(s) and merged");
}

void Monitor::write_session() {
  json doc{{"schema", session::kSessionSchema},
           {"session_id", session_id_},
           {"vmlat_version", version_string},
           {"plan", {{"name", plan_.name}, {"path", plan_.path.string()}, {"sha256", plan_.sha256}}},
           {"cell",
            {{"id", cell_.spec.id},
             {"axes", axes_},
             {"host", cell_.spec.host_name},
             {"period_ns", cell_.spec.period.count()},
             {"cpus", cell_.spec.cpus}}},
           {"window_ns", options_.window.count()},
           {"streaming", streaming_},
           {"status", status_},
           {"pid", static_cast<long long>(::getpid())},
           {"started", started_},
           {"finished", status_ == "running" ? json(nullptr) : json(iso_now())},
           {"windows", windows_},
           {"gaps", gaps_},
           {"gap_seconds", static_cast<double>(gap_ns_total_) / 1e9},
           {"restarts", restarts_},
           {"bounds",
            {{"max_bytes", options_.bounds.max_bytes},
             {"file_bytes", options_.bounds.file_bytes},
             {"max_age_s", options_.bounds.max_age.count()}}},
           {"metrics", "http://" + bound_ + "/metrics"}};
  write_file_atomic(session_dir_ / "session.json", doc.dump(2) + "\n");
}

void Monitor::write_facts() {
  write_file_atomic(session_dir_ / "facts.json",
                    json{{"host", host_facts_}, {"segments", segments_facts_}}.dump(2, ' ', false,
                                                                                    json::error_handler_t::replace) +
                        "\n");
}

void Monitor::write_histogram() {
  hist_buf_.clear();
  hist_buf_ += "{\"windows\":";
  hist_buf_ += std::to_string(windows_);
  hist_buf_ += ",\"merged\":";
  append_hist_doc(hist_buf_, cumulative_all_);
  hist_buf_ += ",\"per_cpu\":{";
  bool first = true;
  for (const auto& [cpu, h] : cumulative_) {
    hist_buf_ += first ? "\"" : ",\"";
    first = false;
    hist_buf_ += std::to_string(cpu);
    hist_buf_ += "\":";
    append_hist_doc(hist_buf_, h);
  }
  hist_buf_ += "}}\n";
  write_file_atomic(session_dir_ / "histogram.json", hist_buf_);
}

Monitor::Figures Monitor::publish(const std::map<int, Histogram>& window, std::int64_t window_end_unix_ns) {
  json run{{"plan", {{"name", plan_.name}}}, {"vmlat_version", version_string}, {"started", started_}, {"finished", nullptr}};
  // The cumulative histograms go to the metrics reduced to the exported
  // bounds: a document of constant size (histogram_doc_for_metrics).
  auto metrics_doc = [](const Histogram& h) {
    return json{{"stats", stats_to_json(h.stats())}, {"histogram", histogram_doc_for_metrics(h)}};
  };
  const Histogram& merged = cumulative_all_;
  Histogram window_merged;
  json per_cpu = json::object();
  for (const auto& [cpu, h] : cumulative_) per_cpu[std::to_string(cpu)] = metrics_doc(h);
  for (const auto& [cpu, h] : window) window_merged.merge(h);
  json gates = json::array();
  for (const auto& g : evaluate_gates(plan_, cell_.spec, CellStatus::measured, "", &merged)) {
    json j{{"gate", g.gate}, {"stat", g.stat}, {"bound_ns", g.bound.count()}, {"verdict", verdict_name(g.verdict)}};
    if (g.verdict == Verdict::pass || g.verdict == Verdict::fail) j["value_ns"] = g.value.count();
    gates.push_back(j);
  }
  json result{{"run_id", session_id_},
              {"cell", {{"id", cell_.spec.id}, {"axes", axes_}, {"host", cell_.spec.host_name},
                        {"period_ns", cell_.spec.period.count()}, {"duration_ns", cell_.spec.duration.count()}}},
              {"status", status_name(CellStatus::measured)},
              {"plugins", {{"backend", {{"plugin", plan_.backends.at(cell_.backend).plugin}}}}},
              {"host_facts", host_facts_},
              {"facts", json::object()},
              {"timings", {{"started", started_}, {"finished", iso_now()}}},
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
              static_cast<double>(windows_));
  set.gauge("vmlat_monitor_window_seconds", "Length of one monitor window", L, to_seconds(options_.window));
  set.gauge("vmlat_monitor_window_end_timestamp_seconds", "When the last window ended (Unix time)", L,
            window_end_unix_ns > 0 ? static_cast<double>(window_end_unix_ns) / 1e9
                                   : static_cast<double>(unix_now_ns()) / 1e9);
  set.counter("vmlat_monitor_gaps_total", "Times the measurement stopped (backend or probe failed) and time went unmeasured",
              L, static_cast<double>(gaps_));
  set.counter("vmlat_monitor_gap_seconds_total", "Time not measured because of gaps (closed gaps)", L,
              static_cast<double>(gap_ns_total_) / 1e9);
  set.counter("vmlat_monitor_restarts_total", "Times the backend and probe were brought up again after a failure", L,
              static_cast<double>(restarts_));
  set.gauge("vmlat_monitor_in_gap", "1 while the monitor is not measuring (between a failure and the next window)", L,
            open_gap_ ? 1.0 : 0.0);
  set.gauge("vmlat_monitor_streaming",
            "1 when windows tile time (streaming probe); 0 for a probe run window by window (gaps between runs)", L,
            streaming_ ? 1.0 : 0.0);
  snapshot_->set(set.take());
  return Figures{window_merged.samples(), merged.samples(), window_merged.max(), merged.max()};
}

// One window into the log, the cumulative histogram and /metrics.
void Monitor::record_window(const ProbeWindow& w, bool tiles) {
  if (open_gap_) {
    const std::int64_t end = w.start_unix_ns;
    records_->append(json{{"type", "gap-end"}, {"gap", open_gap_->first}, {"end_unix_ns", end}, {"segment", segment_}});
    if (end > open_gap_->second) gap_ns_total_ += end - open_gap_->second;
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3fs", static_cast<double>(std::max<std::int64_t>(0, end - open_gap_->second)) / 1e9);
    log_->info("gap " + std::to_string(open_gap_->first) + " closed: " + secs + " not measured");
    open_gap_.reset();
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
    auto [slot, fresh] = cumulative_.try_emplace(cpu);
    if (fresh && reserve_range_ > 0) slot->second.reserve_buckets(reserve_range_);
    slot->second.merge(h);
    cumulative_all_.merge(h);
  }
  json spikes = json::array();
  for (const auto& sp : w.result.spikes)
    spikes.push_back(json{{"cpu", sp.cpu},
                          {"latency_ns", sp.latency.count()},
                          {"realtime_ns", sp.realtime_ns},
                          {"monotonic_ns", sp.monotonic_ns}});
  records_->append(json{{"type", "window"},
                        {"seq", windows_},
                        {"segment", segment_},
                        {"index", w.index},
                        {"tiles", tiles},
                        {"final", w.final},
                        {"start_unix_ns", w.start_unix_ns},
                        {"end_unix_ns", w.end_unix_ns},
                        {"per_cpu", per_cpu},
                        {"spikes", spikes},
                        {"host", host_since_window()}});
  ++windows_;
  last_end_unix_ns_ = w.end_unix_ns;
  write_histogram();
  write_session();
  const auto f = publish(w.result.per_cpu, w.end_unix_ns);
  out_ << "window " << windows_ << ": " << f.window_samples << " samples, max " << format_latency(f.window_max)
       << "; since start: " << f.all_samples << " samples, max " << format_latency(f.all_max) << "\n"
       << std::flush;
}

void Monitor::begin_gap(const std::string& reason) {
  const std::int64_t start = last_end_unix_ns_ > 0 ? last_end_unix_ns_ : unix_now_ns();
  ++gaps_;
  open_gap_ = std::pair{gaps_, start};
  records_->append(json{{"type", "gap"},
                        {"gap", gaps_},
                        {"kind", "failure"},
                        {"segment", segment_},
                        {"start_unix_ns", start},
                        {"end_unix_ns", nullptr},
                        {"reason", reason}});
  write_session();
  publish({}, last_end_unix_ns_);
}

void Monitor::handle_reopen() {
  if (!g_reopen.exchange(false)) return;
  log_->reopen();
  records_->reopen();
  log_->info("SIGHUP: logs reopened");
}

// A segment's measurement: the probe's windows, streamed (or one run per
// window) until it fails, the monitor is stopped or its time is up. Throws
// what ended it (RunningCell makes that the segment's failure).
void Monitor::measure_segment(RunningCell& running, std::uint64_t windows_before) {
  std::unique_ptr<ProbeStream> stream;
  {
    PhaseScope scope("stream", after(plan_.timeouts.start));
    stream = running.probe().stream(running.target(), running.context(), options_.window);
  }
  streaming_ = stream != nullptr;
  host_threads_ = running.context().target_threads();
  host_prev_.clear();
  for (int tid : host_threads_)
    if (auto c = thread_counters(tid)) host_prev_[tid] = *c;
  json seg{{"segment", segment_}, {"started", iso_now()}, {"streaming", streaming_}};
  try {
    seg["backend"] = running.backend_facts();
    seg["probe"] = stream ? stream->facts() : running.probe().facts();
  } catch (...) {
  }
  if (!reserved_) {
    reserve_cumulative(seg["probe"]);
    reserved_ = true;
  }
  segments_facts_.push_back(seg);
  // Bounded over days of restarts: the first segment and the last ones.
  if (segments_facts_.size() > 20) segments_facts_.erase(segments_facts_.begin() + 1);
  write_facts();
  records_->append(json{{"type", "segment"}, {"segment", segment_}, {"time_unix_ns", unix_now_ns()}, {"streaming", streaming_}});
  write_session();
  if (!streaming_)
    log_->warn("probe '" + plan_.probes.at(cell_.probe).name + "' cannot stream (engine cyclictest or timerlat): it runs "
               "once per window, and the time between two runs is not measured (recorded as gaps of kind between-runs)");
  log_->info("segment " + std::to_string(segment_) + " measuring");

  // No window for this long: the probe or its target is stuck.
  const auto silence_limit = options_.window + std::max<std::chrono::nanoseconds>(plan_.timeouts.measure_margin, 5s);
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
          backoff_ = options_.backoff_min;
          if (w->final) throw InfraError("the probe stopped by itself (its final window came)");
        } else if (Clock::now() - last_window_at > silence_limit) {
          throw InfraError("no window from the probe for " + format_duration(silence_limit));
        }
      } else {
        ProbeWindow w;
        w.start_unix_ns = unix_now_ns();
        {
          PhaseScope scope("measure", after(options_.window + plan_.timeouts.measure_margin));
          w.result = running.probe().run(running.target(), running.context());
        }
        w.end_unix_ns = unix_now_ns();
        if (w.result.per_cpu.empty()) {
          if (w.result.interrupted) break;
          throw InfraError("the probe returned no per-CPU results");
        }
        if (last_end_unix_ns_ > 0 && windows_ > windows_before)
          records_->append(json{{"type", "gap"}, {"kind", "between-runs"}, {"segment", segment_},
                                {"start_unix_ns", last_end_unix_ns_}, {"end_unix_ns", w.start_unix_ns},
                                {"reason", "the probe cannot stream: not measured between two runs"}});
        w.index = windows_ - windows_before;
        record_window(w, false);
        backoff_ = options_.backoff_min;
        if (w.result.interrupted) break;
      }
    }
  } catch (...) {
    // Failed (or interrupted): the stream's last windows are not recorded;
    // the stream ends before the cell is brought down.
    if (stream) stream->stop();
    throw;
  }
  // Stopped: the stream's last windows, the partial one included.
  if (stream) {
    for (auto& w : stream->stop()) {
      try {
        record_window(w, true);
      } catch (const std::exception& e) {
        log_->error(std::string("cannot record the last window: ") + e.what());
      }
    }
  }
}

// The segments, until the monitor is stopped (0), the cell never measured
// (3) or its last teardown failed (3).
int Monitor::segments() {
  // Forever, as far as a phase deadline goes: the segment ends by itself.
  constexpr auto kUntilStopped = std::chrono::hours(24 * 365 * 100);
  backoff_ = options_.backoff_min;
  while (!cancel_requested() && !time_is_up()) {
    ++segment_;
    CellContextImpl ctx(cell_.spec, session_dir_ / "artifacts", scratch_ / "work", *log_, *host_);
    const std::uint64_t windows_before = windows_;
    RunningCell running(plan_, registry_, cell_, ctx);
    const RunningCell::Ended ended =
        running.run(kUntilStopped, [&](RunningCell& c) { measure_segment(c, windows_before); });
    // A stop (SIGINT, --for) ends the session; anything else is a failure.
    const std::string failure = ended.status == CellStatus::infra_error ? ended.phase + ": " + ended.error : "";
    if (failure.empty()) return exit_code::pass;
    log_->error("segment " + std::to_string(segment_) + " failed: " + failure);
    if ((ended.phase == "teardown" && (cancel_requested() || time_is_up())) || (windows_ == 0 && !open_gap_)) {
      // The last segment would not come down (something may still run), or
      // the cell was never measured: a broken setup, not a failure to ride out.
      err_ << "vmlat monitor: " << failure << "\n";
      return exit_code::infra;
    }
    try {
      if (!open_gap_) begin_gap(failure);
    } catch (const std::exception& e) {
      err_ << "vmlat monitor: cannot record a gap: " << e.what() << "\n";
      return exit_code::infra;
    }
    if (cancel_requested() || time_is_up()) break;
    log_->info("bringing the backend up again in " + format_duration(backoff_));
    try {
      sleep_until(after(backoff_));
    } catch (const Cancelled&) {
      break;
    }
    backoff_ = std::min(backoff_ * 2, options_.backoff_max);
    ++restarts_;
  }
  return exit_code::pass;
}

int Monitor::close(int code) {
  if (open_gap_) {
    // Stopped during a gap: it ends with the session.
    try {
      const std::int64_t end = unix_now_ns();
      records_->append(json{{"type", "gap-end"}, {"gap", open_gap_->first}, {"end_unix_ns", end}, {"segment", segment_},
                            {"session_ended", true}});
      gap_ns_total_ += std::max<std::int64_t>(0, end - open_gap_->second);
      open_gap_.reset();
    } catch (const std::exception&) {
    }
  }
  kill_all_children();
  status_ = code == exit_code::pass ? "stopped" : code == exit_code::interrupted ? "interrupted" : "failed";
  try {
    write_session();
  } catch (const std::exception& e) {
    err_ << "vmlat monitor: cannot write session.json: " << e.what() << "\n";
    if (code == exit_code::pass) code = exit_code::infra;
  }
  exposer_.reset();
  remove_scratch();
  out_ << "vmlat monitor: stopped after " << windows_ << " window" << (windows_ == 1 ? "" : "s") << ", " << gaps_
       << " gap" << (gaps_ == 1 ? "" : "s") << "; session " << session_dir_.string() << "\n";
  return code;
}

}  // namespace

int run_monitor(const Plan& plan, PluginRegistry& registry, const MonitorOptions& options, std::ostream& out,
                std::ostream& err) {
  install_cancel_handlers();
  Monitor monitor(plan, registry, options, out, err);
  return monitor.run();
}

}  // namespace vmlat
