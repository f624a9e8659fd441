// The plugin API: the interfaces a backend, workload or probe implements and
// the one macro that exports it. See docs/writing-plugins.md.
#pragma once

#include <boost/dll/alias.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmlat/context.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/executor.hpp"
#include "vmlat/histogram.hpp"
#include "vmlat/json.hpp"
#include "vmlat/log.hpp"
#include "vmlat/settings.hpp"
#include "vmlat/version.hpp"

namespace vmlat {

// What the loader reads before creating anything. Plain C layout: it must stay
// readable by a core of another ABI version so that it can name the mismatch.
extern "C" struct Descriptor {
  int abi_version;      // VMLAT_ABI_VERSION the plugin was built with
  const char* name;     // "cyclic", "kvm", ...: what a plan's `plugin = ` names
  const char* kind;     // "backend", "workload" or "probe"
  const char* version;  // the plugin's own version
  const char* summary;  // one line for `vmlat plugins`
  // Backends: the tags a host must carry to run this backend's cells
  // (placement, docs/plan-format.md), comma-separated, e.g. "kvm"; "" for
  // any host. Known without creating or configuring the plugin: from the
  // class's `static constexpr const char* kHostTags` (VMLAT_PLUGIN reads it).
  const char* host_tags;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  // Reads and validates the instance's table. Called at `vmlat validate` and
  // again for every cell; must not start anything.
  virtual void configure(Settings& settings) = 0;
  // Facts recorded in the cell's result (versions, what was applied).
  virtual json facts() const { return json::object(); }
};

// Where the probe runs: this machine, a KVM guest, a Xen domU.
//
// The runner calls, for every cell: prepare, boot, then hands probe_target()
// to the probe and placement(where) to each workload; teardown always runs,
// also after an error, a timeout or an interrupt.
class Backend : public Plugin {
 public:
  // Placements workloads can use with this backend ("host", "guest", "dom0").
  virtual std::vector<std::string> placements() const = 0;
  // Builds or fetches what the cell needs, without starting a guest.
  virtual void prepare(CellContext& ctx) = 0;
  // Starts the guest and waits until its channel works.
  virtual void boot(CellContext& ctx) = 0;
  // Where the probe runs.
  virtual Executor& probe_target() = 0;
  // An executor for a placement listed by placements().
  virtual Executor& placement(const std::string& where) = 0;
  // Stops everything prepare/boot started; must finish. Called whenever
  // prepare() was called, also when prepare or boot failed halfway, so it
  // must cope with a partly prepared cell. Should not throw: an
  // exception from here makes the cell an infrastructure error (something
  // may be left running), and the core still kills what it started.
  virtual void teardown(CellContext& ctx) = 0;
  // Host thread ids of the threads that run the probe's target: a VM's
  // vCPU threads (valid after boot); empty on bare metal. The core hands
  // them to the probe (CellContext::target_threads()), which traces their
  // host-side events next to a spike in the guest (trace_above).
  virtual std::vector<int> target_threads() const { return {}; }
  // The tags a host must carry to run this backend's cells are a property
  // of the class, not of an instance: declare
  //   static constexpr const char* kHostTags = "kvm";
  // and VMLAT_PLUGIN puts them in the Descriptor (placement reads them
  // before anything is created).
};

namespace detail {
template <typename T>
constexpr const char* host_tags_of() {
  if constexpr (requires { T::kHostTags; }) return T::kHostTags;
  else return "";
}
}  // namespace detail

// Interference started before the probe and stopped after it.
class Workload : public Plugin {
 public:
  // Starts the workload through `where` and returns once it is running.
  virtual void start(Executor& where, CellContext& ctx) = 0;
  // Stops it. Throws InfraError if the workload had died before it was
  // stopped (the cell did not measure what the plan asked for).
  virtual void stop(CellContext& ctx) = 0;
};

// One of the worst wake-ups a probe saw (result.json "spikes").
struct Spike {
  int cpu = 0;                       // CPU number on the probe's target
  nanoseconds latency{0};            // exact as the probe measured it (cyclictest: whole us)
  std::int64_t monotonic_ns = -1;    // when it woke up: CLOCK_MONOTONIC of the target; -1 unknown
  std::int64_t realtime_ns = -1;     // the same moment on CLOCK_REALTIME of the target; -1 unknown
};

// The name of a probe's single series, and the default of every probe.
inline constexpr const char* default_series_name = "latency";

struct ProbeResult {
  // The default series (result.json "merged" and "per_cpu"), named
  // `default_series`: cyclic's only series ("latency"), timerlat's "thread".
  std::map<int, Histogram> per_cpu;  // key: CPU number on the probe's target
  std::string default_series = default_series_name;
  // Further named series of the same cell (timerlat: "irq"), each per CPU
  // like per_cpu (result.json "series"). Every series must be plausible.
  std::map<std::string, std::map<int, Histogram>> series;
  // Up to the probe's N worst wake-ups per CPU of the default series, any
  // order (the core sorts them). Per CPU, the worst must equal that CPU's
  // maximum exactly, or the cell is an infrastructure error.
  std::vector<Spike> spikes;
  // Files the probe saved with save_artifact() that hold traces (ftrace
  // text, trace-cmd .dat): listed in result.json "traces".
  std::vector<std::string> traces;
  json facts = json::object();       // of this measurement; merged over the probe's facts()
  // Partial: the probe was interrupted. Only an interrupt vmlat itself sent
  // (SIGINT/SIGTERM to vmlat) makes the cell "interrupted"; a probe stopped
  // by somebody else's signal makes it an infrastructure error.
  bool interrupted = false;
  // Set when data came back but is not a valid measurement (e.g. the
  // probe stopped early): the cell is an infrastructure error with this
  // message, and the data is kept in result.json for diagnosis only.
  std::string invalid;
};

// One window of a continuous measurement (Probe::stream, `vmlat monitor`).
struct ProbeWindow {
  ProbeResult result;  // the window's histograms (default series) and worst wake-ups
  std::uint64_t index = 0;  // 0, 1, ... within one stream
  // Per CPU, on the target's CLOCK_MONOTONIC: every activation scheduled in
  // [first, second) is one of this window's samples or missed periods, and
  // the next window of the same stream starts where this one ends. Empty
  // when the probe cannot say (then the window does not tile time).
  std::map<int, std::pair<std::int64_t, std::int64_t>> span_mono_ns;
  // The window on the target's CLOCK_REALTIME (-1: unknown).
  std::int64_t start_unix_ns = -1, end_unix_ns = -1;
  bool final = false;  // the stream's last window (it stopped)
};

// A probe running for as long as the monitor runs, one window after another.
class ProbeStream {
 public:
  virtual ~ProbeStream() = default;
  // The next complete window, in order; nullopt if none is complete by
  // `deadline`, and after the final one. Throws InfraError when the probe
  // failed or its target went away (the stream is over then); Cancelled
  // and PhaseTimeout propagate.
  virtual std::optional<ProbeWindow> next(Deadline deadline) = 0;
  // Stops the probe and returns the windows it completed meanwhile, the
  // partial last one included (marked final). Never throws.
  virtual std::vector<ProbeWindow> stop() noexcept = 0;
  // Facts of the stream (engine, argv, ...), as Probe::facts() for a run.
  virtual json facts() const { return json::object(); }
};

class Probe : public Plugin {
 public:
  // The series run() returns after configure(), the default first (its
  // name is ProbeResult::default_series). `vmlat validate` checks that a
  // gate's `series` is one of them.
  virtual std::vector<std::string> series() const { return {default_series_name}; }
  // Measures for cell().duration at cell().period on cell().cpus of `target`.
  virtual ProbeResult run(Executor& target, CellContext& ctx) = 0;
  // Measures continuously at cell().period on cell().cpus of `target`, in
  // windows of `window` whose spans tile time (no activation between two
  // windows goes unmeasured). Returns nullptr if the probe cannot stream
  // (the monitor then calls run() once per window, with gaps between them).
  // The stream is used only until the backend is torn down.
  virtual std::unique_ptr<ProbeStream> stream(Executor& target, CellContext& ctx, nanoseconds window) {
    (void)target;
    (void)ctx;
    (void)window;
    return nullptr;
  }
};

}  // namespace vmlat

// Exports CLASS (default-constructible, derived from Backend, Workload or
// Probe) as a vmlat plugin. Use once per plugin library.
#define VMLAT_PLUGIN(CLASS, NAME, KIND, VERSION, SUMMARY)                                   \
  namespace {                                                                               \
  const ::vmlat::Descriptor vmlat_plugin_descriptor_value{                                  \
      VMLAT_ABI_VERSION, NAME, KIND, VERSION, SUMMARY, ::vmlat::detail::host_tags_of<CLASS>()}; \
  const ::vmlat::Descriptor* vmlat_plugin_describe() { return &vmlat_plugin_descriptor_value; } \
  ::vmlat::Plugin* vmlat_plugin_create() { return new CLASS(); }                            \
  }                                                                                         \
  BOOST_DLL_ALIAS(vmlat_plugin_describe, vmlat_describe)                                    \
  BOOST_DLL_ALIAS(vmlat_plugin_create, vmlat_create)
