// The cyclic probe (and the host backend it runs on) loaded from the build
// tree and configured from a plan, as the runner does. The Run* tests measure
// for real with cyclictest / vmlat-probe at SCHED_FIFO 95 and need root.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <vmlat/errors.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/plugin.hpp>

#include "cyclictest_parse.hpp"
#include "plugin_harness.hpp"

namespace {

using namespace std::chrono_literals;
using namespace vmlat;
using vmlat::testing::argv_has;
using vmlat::testing::configured;
using vmlat::testing::contains;
using vmlat::testing::FakeCellContext;
using vmlat::testing::load_plan_text;
using vmlat::testing::TempDir;

const char* kHostAndProbe = R"(
[backend.host]

[probe.cyclic]
)";

CellSpec cell(std::chrono::nanoseconds period, std::chrono::nanoseconds duration, std::vector<int> cpus) {
  CellSpec spec;
  spec.id = "test-cell";
  spec.plan_name = "test";
  spec.period = period;
  spec.duration = duration;
  spec.cpus = std::move(cpus);
  return spec;
}

// A consistent histogram: samples, ordered percentiles, exact extremes.
void expect_consistent(const Histogram& h) {
  ASSERT_GT(h.samples(), 0u);
  EXPECT_LE(h.min(), h.percentile(0.5));
  EXPECT_LE(h.percentile(0.5), h.percentile(0.99));
  EXPECT_LE(h.percentile(0.99), h.max());
  EXPECT_GE(h.mean(), h.min());
  EXPECT_LE(h.mean(), h.max());
  std::uint64_t bucketed = 0;
  for (const auto& [bucket, count] : h.buckets()) bucketed += count;
  EXPECT_EQ(bucketed + h.overflows(), h.samples());
}

class CyclicProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!vmlat::testing::registry().find("cyclic") || !vmlat::testing::registry().find("host"))
      FAIL() << "plugins cyclic/host not built into " << VMLAT_BINARY_DIR << "/plugins";
  }
  void require_root() {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for SCHED_FIFO and mlockall";
  }

  // Runs the probe configured by `probe_table` through the host backend.
  ProbeResult measure(const std::string& probe_table, const CellSpec& spec) {
    auto loaded = load_plan_text(dir_, "[backend.host]\n\n[probe.cyclic]\n" + probe_table);
    EXPECT_TRUE(loaded->diags.empty()) << loaded->diags.str();
    backend_ = configured<Backend>(loaded->plan, "backend", "host");
    probe_ = configured<Probe>(loaded->plan, "probe", "cyclic");
    ctx_ = std::make_unique<FakeCellContext>(spec, dir_.path());
    auto& backend = dynamic_cast<Backend&>(*backend_);
    backend.prepare(*ctx_);
    backend.boot(*ctx_);
    ProbeResult result = dynamic_cast<Probe&>(*probe_).run(backend.probe_target(), *ctx_);
    backend.teardown(*ctx_);
    return result;
  }

  // measure() for a run that is interrupted: teardown happens uninterruptibly.
  ProbeResult measure_interrupted(const std::string& probe_table, const CellSpec& spec) {
    auto loaded = load_plan_text(dir_, "[backend.host]\n\n[probe.cyclic]\n" + probe_table);
    EXPECT_TRUE(loaded->diags.empty()) << loaded->diags.str();
    backend_ = configured<Backend>(loaded->plan, "backend", "host");
    probe_ = configured<Probe>(loaded->plan, "probe", "cyclic");
    ctx_ = std::make_unique<FakeCellContext>(spec, dir_.path());
    auto& backend = dynamic_cast<Backend&>(*backend_);
    backend.prepare(*ctx_);
    ProbeResult result = dynamic_cast<Probe&>(*probe_).run(backend.probe_target(), *ctx_);
    PhaseScope teardown("teardown", Clock::now() + 10s, false);
    backend.teardown(*ctx_);
    return result;
  }

  TempDir dir_;
  std::unique_ptr<Plugin> backend_, probe_;
  std::unique_ptr<FakeCellContext> ctx_;
};

TEST_F(CyclicProbeTest, ValidatesSettings) {
  auto ok = load_plan_text(dir_, std::string(kHostAndProbe) +
                                     "engine = \"cyclictest\"\npriority = 80\nhistogram_range = \"5ms\"\n"
                                     "mlock = false\nextra_args = [\"--mainaffinity=1\", \"--spike=500\"]\n");
  EXPECT_TRUE(ok->diags.empty()) << ok->diags.str();

  auto bad = load_plan_text(dir_, R"([backend.host]
colour = "blue"

[probe.cyclic]
engine = "nativ"
priority = 100
histogram_range = "1500ns"
extra_args = ["-p", "80"]
priorty = 3
)");
  const std::string all = bad->diags.str();
  EXPECT_TRUE(contains(all, "plan.toml:2:")) << all;  // colour: the host backend takes no settings
  EXPECT_TRUE(contains(all, "unknown key 'colour'")) << all;
  EXPECT_TRUE(contains(all, "plan.toml:5:")) << all;  // engine
  EXPECT_TRUE(contains(all, "plan.toml:6:")) << all;  // priority
  EXPECT_TRUE(contains(all, "plan.toml:7:")) << all;  // histogram_range
  EXPECT_TRUE(contains(all, "whole number of microseconds")) << all;
  EXPECT_TRUE(contains(all, "plan.toml:8:")) << all;  // extra_args
  EXPECT_TRUE(contains(all, "\"-p\" would override -p")) << all;
  EXPECT_TRUE(contains(all, "did you mean 'priority'")) << all;

  auto native = load_plan_text(dir_, std::string(kHostAndProbe) + "engine = \"native\"\nextra_args = [\"-v\"]\n");
  EXPECT_TRUE(contains(native->diags.str(), "only engine = \"cyclictest\" takes extra_args")) << native->diags.str();
  auto abbreviated = load_plan_text(dir_, std::string(kHostAndProbe) + "extra_args = [\"--prio=3\"]\n");
  EXPECT_TRUE(contains(abbreviated->diags.str(), "would override --priority")) << abbreviated->diags.str();
  auto policy = load_plan_text(dir_, std::string(kHostAndProbe) + "extra_args = [\"--policy=rr\"]\n");
  EXPECT_TRUE(contains(policy->diags.str(), "would override --policy")) << policy->diags.str();
}

TEST_F(CyclicProbeTest, HostBackendPlacements) {
  auto loaded = load_plan_text(dir_, kHostAndProbe);
  auto plugin = configured<Backend>(loaded->plan, "backend", "host");
  auto& backend = dynamic_cast<Backend&>(*plugin);
  EXPECT_EQ(backend.placements(), std::vector<std::string>{"host"});
  FakeCellContext ctx(cell(1ms, 1s, {0}), dir_.path());
  EXPECT_THROW(backend.probe_target(), InfraError);  // before prepare
  backend.prepare(ctx);
  backend.boot(ctx);
  EXPECT_EQ(backend.probe_target().name(), "host");
  EXPECT_EQ(&backend.placement("host"), &backend.probe_target());
  try {
    backend.placement("guest");
    ADD_FAILURE() << "placement(\"guest\") did not throw";
  } catch (const InfraError& e) {
    EXPECT_TRUE(contains(e.what(), "no placement \"guest\"")) << e.what();
  }
  auto r = backend.probe_target().run(Command{{"uname", "-r"}});
  EXPECT_TRUE(r.ok()) << r.describe();
  backend.teardown(ctx);
  EXPECT_THROW(backend.probe_target(), InfraError);

  struct utsname u {};
  ASSERT_EQ(::uname(&u), 0);
  json facts = backend.facts();
  ASSERT_TRUE(facts.contains("target")) << facts.dump();
  EXPECT_EQ(facts["target"]["kernel_release"], std::string(u.release)) << facts.dump();
  EXPECT_EQ(facts["target"]["cpu_count"], static_cast<int>(::sysconf(_SC_NPROCESSORS_CONF))) << facts.dump();
  EXPECT_TRUE(facts["target"].contains("virtualization")) << facts.dump();
}

TEST_F(CyclicProbeTest, RunCyclictestOneSecondOnCpu0) {
  require_root();
  ProbeResult result = measure("", cell(1ms, 1s, {0}));
  ASSERT_EQ(result.per_cpu.size(), 1u);
  ASSERT_EQ(result.per_cpu.count(0), 1u);
  const Histogram& h = result.per_cpu.at(0);
  expect_consistent(h);
  // -D 1 at 1ms: cyclictest counts every wake-up, late or not.
  EXPECT_GE(h.samples(), 500u);
  EXPECT_LE(h.samples(), 1001u);
  EXPECT_FALSE(result.interrupted);

  EXPECT_EQ(result.facts["engine"], "cyclictest");
  EXPECT_TRUE(contains(result.facts["engine_version"].get<std::string>(), "cyclictest")) << result.facts.dump();
  const json& argv = result.facts["argv"];
  EXPECT_TRUE(argv_has(argv, {"-p", "95"})) << argv.dump();
  EXPECT_TRUE(argv_has(argv, {"-i", "1000", "-t", "1", "-a", "0", "-D", "1", "-h", "20000"})) << argv.dump();
  EXPECT_TRUE(argv_has(argv, {"-m"})) << argv.dump();

  // The JSON file on the target was read back and removed.
  ASSERT_TRUE(ctx_->artifacts.count("cyclictest.json"));
  EXPECT_EQ(vmlat::cyclic::parse_cyclictest_json(ctx_->artifacts["cyclictest.json"], 20000).at(0).samples(),
            h.samples());
  std::string json_arg;
  for (const auto& a : argv)
    if (a.get<std::string>().rfind("--json=", 0) == 0) json_arg = a.get<std::string>().substr(7);
  ASSERT_FALSE(json_arg.empty());
  EXPECT_FALSE(std::filesystem::exists(json_arg)) << json_arg;
  EXPECT_TRUE(ctx_->artifacts.count("cyclictest.out"));
}

TEST_F(CyclicProbeTest, RunCyclictestSubSecondCountsLoops) {
  require_root();
  // 300ms at 500us: cyclictest cannot take -D 0.3, so the probe asks for 600 loops.
  ProbeResult result = measure("mlock = false\nhistogram_range = \"5ms\"\nextra_args = [\"--mainaffinity=0\"]\n",
                               cell(500us, 300ms, {0}));
  const Histogram& h = result.per_cpu.at(0);
  expect_consistent(h);
  EXPECT_EQ(h.samples(), 600u);
  EXPECT_TRUE(argv_has(result.facts["argv"], {"-l", "600", "-h", "5000"})) << result.facts["argv"].dump();
  EXPECT_FALSE(argv_has(result.facts["argv"], {"-m"})) << result.facts["argv"].dump();
  EXPECT_EQ(result.facts["argv"].back(), "--mainaffinity=0");  // extra_args come last, verbatim
}

TEST_F(CyclicProbeTest, RunCyclictestOnAllCpus) {
  require_root();
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<int> allowed;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) allowed.push_back(cpu);

  ProbeResult result = measure("", cell(1ms, 200ms, {}));
  std::vector<int> measured;
  for (const auto& [cpu, h] : result.per_cpu) {
    measured.push_back(cpu);
    expect_consistent(h);
    EXPECT_EQ(h.samples(), 200u) << "CPU " << cpu;
  }
  EXPECT_EQ(measured, allowed);
  EXPECT_EQ(result.facts["cpus"], json(allowed));
}

TEST_F(CyclicProbeTest, RunNativeHalfASecondOnCpu0) {
#ifndef VMLAT_CYCLIC_HAVE_NATIVE
  GTEST_SKIP() << "vmlat-probe is not part of this build";
#endif
  require_root();
  ProbeResult result = measure("engine = \"native\"\n", cell(1ms, 500ms, {0}));
  ASSERT_EQ(result.per_cpu.count(0), 1u);
  const Histogram& h = result.per_cpu.at(0);
  expect_consistent(h);
  // Every activation of the 500ms is either a sample or a missed period.
  EXPECT_GE(h.samples() + h.missed_periods().value(), 500u);
  EXPECT_LE(h.samples(), 500u);
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(result.facts["engine"], "native");
  EXPECT_EQ(result.facts["policy"], "SCHED_FIFO");  // as the probe reported it
  EXPECT_TRUE(contains(result.facts["engine_version"].get<std::string>(), "vmlat-probe")) << result.facts.dump();
  EXPECT_TRUE(argv_has(result.facts["argv"], {"--period-ns", "1000000", "--duration-ms", "500", "--cpus", "0",
                                             "--priority", "95", "--histogram-us", "20000"}))
      << result.facts["argv"].dump();
  EXPECT_TRUE(ctx_->artifacts.count("native-probe.out"));
}

// Ctrl-C one second into a 20 s measurement: the engine is sent SIGINT,
// prints what it has, and the probe returns that as a partial result.
class CancelAfter {
 public:
  explicit CancelAfter(std::chrono::milliseconds delay)
      : thread_([delay] {
          std::this_thread::sleep_for(delay);
          request_cancel();
        }) {}
  ~CancelAfter() {
    thread_.join();
    reset_cancel();
  }

 private:
  std::thread thread_;
};

class CyclicProbeInterruptTest : public CyclicProbeTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(CyclicProbeInterruptTest, InterruptKeepsThePartialResult) {
  require_root();
  const std::string engine = GetParam();
#ifndef VMLAT_CYCLIC_HAVE_NATIVE
  if (engine == "native") GTEST_SKIP() << "vmlat-probe is not part of this build";
#endif
  const auto started = Clock::now();
  ProbeResult result;
  {
    PhaseScope measure("measure", Clock::now() + 60s);
    CancelAfter cancel(1s);
    result = measure_interrupted("engine = \"" + engine + "\"\n", cell(1ms, 20s, {0}));
  }
  EXPECT_LT(Clock::now() - started, 10s) << "the engine did not stop on SIGINT";
  EXPECT_TRUE(result.interrupted);
  ASSERT_EQ(result.per_cpu.count(0), 1u);
  const Histogram& h = result.per_cpu.at(0);
  expect_consistent(h);
  // About 1 s of the 20 s at 1 ms.
  EXPECT_GE(h.samples(), 300u);
  EXPECT_LE(h.samples(), 5000u);
  EXPECT_TRUE(ctx_->artifacts.count(engine == "native" ? "native-probe.out" : "cyclictest.json"));
}

INSTANTIATE_TEST_SUITE_P(Engines, CyclicProbeInterruptTest, ::testing::Values("cyclictest", "native"));

// An executor that runs locally but pretends a program is not installed.
class WithoutProgram final : public Executor {
 public:
  WithoutProgram(Executor& inner, std::string missing) : inner_(inner), missing_(std::move(missing)) {}
  std::string name() const override { return "fake-guest"; }
  CommandResult run(const Command& c) override { return inner_.run(c); }
  std::unique_ptr<Job> start(const Command& c) override { return inner_.start(c); }
  std::string temp_dir() override { return inner_.temp_dir(); }
  std::optional<std::string> find_program(const std::string& name) override {
    if (name == missing_) return std::nullopt;
    return inner_.find_program(name);
  }

 private:
  Executor& inner_;
  std::string missing_;
};

TEST_F(CyclicProbeTest, ReportsMissingProgramsAndImpossiblePeriods) {
  auto loaded = load_plan_text(dir_, std::string(kHostAndProbe));
  auto plugin = configured<Probe>(loaded->plan, "probe", "cyclic");
  auto& probe = dynamic_cast<Probe&>(*plugin);
  FakeCellContext ctx(cell(1ms, 1s, {0}), dir_.path());
  WithoutProgram no_cyclictest(ctx.host(), "cyclictest");
  try {
    probe.run(no_cyclictest, ctx);
    ADD_FAILURE() << "no InfraError";
  } catch (const InfraError& e) {
    EXPECT_STREQ(e.what(), "cyclictest not found on fake-guest: install the Debian package rt-tests");
  }

  FakeCellContext odd(cell(1500ns, 1s, {0}), dir_.path());
  try {
    probe.run(odd.host(), odd);
    ADD_FAILURE() << "no InfraError";
  } catch (const InfraError& e) {
    EXPECT_TRUE(contains(e.what(), "whole microseconds")) << e.what();
  }

  auto native_plan = load_plan_text(dir_, std::string(kHostAndProbe) + "engine = \"native\"\n");
  auto native_plugin = configured<Probe>(native_plan->plan, "probe", "cyclic");
  WithoutProgram no_probe(ctx.host(), "vmlat-probe");
  try {
    dynamic_cast<Probe&>(*native_plugin).run(no_probe, ctx);
    ADD_FAILURE() << "no InfraError";
  } catch (const InfraError& e) {
    EXPECT_TRUE(contains(e.what(), "vmlat-probe not found on fake-guest")) << e.what();
    EXPECT_TRUE(contains(e.what(), "build/libexec")) << e.what();
  }
}

}  // namespace

namespace {

// Settings of the spike list, trace_above and the timerlat engine.
TEST_F(CyclicProbeTest, ValidatesSpikeTraceAndTimerlatSettings) {
  auto ok = load_plan_text(dir_, std::string(kHostAndProbe) +
                                     "spikes = 5\nspike_threshold = \"50us\"\ntrace_above = \"200us\"\n"
                                     "trace_events = [\"sched:sched_switch\", \"irq\"]\ntrace_buffer_kb = 256\n");
  EXPECT_TRUE(ok->diags.empty()) << ok->diags.str();
  auto timerlat = load_plan_text(dir_, std::string(kHostAndProbe) + "engine = \"timerlat\"\ntrace_above = \"1ms\"\n");
  EXPECT_TRUE(timerlat->diags.empty()) << timerlat->diags.str();

  auto bad = load_plan_text(dir_, R"([backend.host]
[probe.cyclic]
engine = "native"
spikes = 1001
spike_threshold = "50us"
trace_events = ["-o", "x"]
trace_buffer_kb = 64
)");
  const std::string all = bad->diags.str();
  EXPECT_TRUE(contains(all, "plan.toml:4:")) << all;  // spikes out of range
  EXPECT_TRUE(contains(all, "plan.toml:5:")) << all;  // spike_threshold is cyclictest's
  EXPECT_TRUE(contains(all, "only engine = \"cyclictest\" takes spike_threshold")) << all;
  EXPECT_TRUE(contains(all, "plan.toml:6:")) << all;  // an option, not an event
  EXPECT_TRUE(contains(all, "'-o' is not an ftrace event")) << all;
  EXPECT_TRUE(contains(all, "only matters with trace_above")) << all;

  auto kernel_threads = load_plan_text(dir_, std::string(kHostAndProbe) + "engine = \"timerlat\"\nmlock = true\nspikes = 3\n");
  EXPECT_TRUE(contains(kernel_threads->diags.str(), "mlock does not apply")) << kernel_threads->diags.str();
  EXPECT_TRUE(contains(kernel_threads->diags.str(), "records no spike list")) << kernel_threads->diags.str();

  // The series each engine records (what `vmlat validate` checks gates against).
  auto probe = configured<Probe>(timerlat->plan, "probe", "cyclic");
  EXPECT_EQ(dynamic_cast<Probe&>(*probe).series(), (std::vector<std::string>{"thread", "irq"}));
  auto cyclic = configured<Probe>(ok->plan, "probe", "cyclic");
  EXPECT_EQ(dynamic_cast<Probe&>(*cyclic).series(), std::vector<std::string>{"latency"});
}

// Per CPU, at most N spikes, worst first, the worst exactly the maximum, and
// their times inside the run.
void expect_spikes(const ProbeResult& result, std::size_t n, std::int64_t mono_from, std::int64_t mono_to) {
  std::map<int, std::vector<Spike>> by_cpu;
  for (const auto& s : result.spikes) by_cpu[s.cpu].push_back(s);
  for (const auto& [cpu, h] : result.per_cpu) {
    SCOPED_TRACE("CPU " + std::to_string(cpu));
    const auto& list = by_cpu[cpu];
    ASSERT_FALSE(list.empty());
    EXPECT_LE(list.size(), n);
    EXPECT_EQ(list.front().latency, h.max());
    for (std::size_t i = 1; i < list.size(); ++i) EXPECT_GE(list[i - 1].latency, list[i].latency);
    for (const auto& s : list) {
      EXPECT_GE(s.latency, h.min());
      EXPECT_GE(s.monotonic_ns, mono_from);
      EXPECT_LE(s.monotonic_ns, mono_to);
    }
  }
}

std::int64_t clock_now_ns(clockid_t clock) {
  timespec t{};
  ::clock_gettime(clock, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

TEST_F(CyclicProbeTest, RunNativeKeepsTheWorstWakeUps) {
#ifndef VMLAT_CYCLIC_HAVE_NATIVE
  GTEST_SKIP() << "vmlat-probe is not part of this build";
#endif
  require_root();
  const std::int64_t from = clock_now_ns(CLOCK_MONOTONIC);
  ProbeResult result = measure("engine = \"native\"\nspikes = 4\n", cell(1ms, 500ms, {}));
  const std::int64_t to = clock_now_ns(CLOCK_MONOTONIC);
  expect_spikes(result, 4, from, to);
  EXPECT_TRUE(argv_has(result.facts["argv"], {"--spikes", "4"})) << result.facts["argv"].dump();
  // CLOCK_REALTIME of the same moment: this machine's offset, within 50 ms.
  const std::int64_t offset = clock_now_ns(CLOCK_REALTIME) - clock_now_ns(CLOCK_MONOTONIC);
  for (const auto& s : result.spikes) EXPECT_NEAR(static_cast<double>(s.realtime_ns - s.monotonic_ns), offset, 5e7);
}

TEST_F(CyclicProbeTest, RunCyclictestRecordsSpikes) {
  require_root();
  const std::int64_t from = clock_now_ns(CLOCK_MONOTONIC);
  // A threshold of 1us records (nearly) every wake-up: the worst are among them.
  ProbeResult result = measure("spikes = 3\nspike_threshold = \"1us\"\n", cell(1ms, 1s, {0}));
  const std::int64_t to = clock_now_ns(CLOCK_MONOTONIC);
  expect_spikes(result, 3, from, to);
  EXPECT_TRUE(argv_has(result.facts["argv"], {"--spike=1"})) << result.facts["argv"].dump();
  EXPECT_EQ(result.facts["spikes"]["threshold_us"], 1) << result.facts.dump();
}

// On this machine's kernel: either it has the timerlat tracer and the cell
// gives both series per CPU, or the error says so and names the kernel.
TEST_F(CyclicProbeTest, RunTimerlatOnTheHostOrSayWhyNot) {
  require_root();
  struct utsname u {};
  ASSERT_EQ(::uname(&u), 0);
  try {
    ProbeResult result = measure("engine = \"timerlat\"\n", cell(1ms, 1s, {0}));
    EXPECT_EQ(result.default_series, "thread");
    ASSERT_EQ(result.series.count("irq"), 1u);
    expect_consistent(result.per_cpu.at(0));
    expect_consistent(result.series.at("irq").at(0));
  } catch (const InfraError& e) {
    EXPECT_TRUE(contains(e.what(), "has no timerlat tracer")) << e.what();
    EXPECT_TRUE(contains(e.what(), u.release)) << e.what();
  }
}

// A FIFO-99 thread spinning on `cpu` for `length` once `delay` has passed:
// a wake-up of the probe (FIFO 95) there is late by about `length`.
class Burst {
 public:
  Burst(int cpu, std::chrono::milliseconds delay, std::chrono::milliseconds length)
      : thread_([=, this] {
          std::this_thread::sleep_for(delay);
          cpu_set_t set;
          CPU_ZERO(&set);
          CPU_SET(cpu, &set);
          ::sched_setaffinity(0, sizeof set, &set);
          sched_param p{};
          p.sched_priority = 99;
          ok_ = ::sched_setscheduler(0, SCHED_FIFO, &p) == 0;
          start_ns_ = clock_now_ns(CLOCK_MONOTONIC);
          const std::int64_t end = start_ns_ + std::chrono::nanoseconds(length).count();
          while (clock_now_ns(CLOCK_MONOTONIC) < end) {
          }
          end_ns_ = clock_now_ns(CLOCK_MONOTONIC);
        }) {}
  ~Burst() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  bool ok_ = false;
  std::int64_t start_ns_ = 0, end_ns_ = 0;

 private:
  std::thread thread_;
};

// trace_above: a burst forces one spike over the bound; the trace stops there
// with vmlat-probe's marker, whose timestamp (trace clock mono) and fields are
// the spike's, and the measurement goes on for the whole duration.
TEST_F(CyclicProbeTest, ForcedSpikeStopsTheTraceWithAMarker) {
#ifndef VMLAT_CYCLIC_HAVE_NATIVE
  GTEST_SKIP() << "vmlat-probe is not part of this build";
#endif
  require_root();
  // A bound well above this noisy VM's own worst cases (tens of ms under
  // load), so that the first spike over it is the burst's.
  Burst burst(0, 1000ms, 150ms);
  ProbeResult result = measure("engine = \"native\"\ntrace_above = \"100ms\"\n", cell(1ms, 2s, {0}));
  burst.join();
  ASSERT_TRUE(burst.ok_) << "could not run the burst at SCHED_FIFO 99";
  const Histogram& h = result.per_cpu.at(0);
  expect_consistent(h);
  EXPECT_GE(h.samples() + h.missed_periods().value(), 1900u);  // measured on after the spike
  const json& fired = result.facts["trace"]["fired"];
  ASSERT_TRUE(fired.is_object()) << result.facts.dump();
  const std::int64_t spike_ns = fired["monotonic_ns"].get<std::int64_t>();
  const std::int64_t latency_ns = fired["latency_ns"].get<std::int64_t>();
  EXPECT_GT(latency_ns, 100000000);
  EXPECT_GE(spike_ns, burst.start_ns_);
  EXPECT_LE(spike_ns, burst.end_ns_ + 5000000);
  // The burst's spike is among the worst wake-ups, with the same time.
  bool listed = false;
  for (const auto& s : result.spikes) listed = listed || (s.monotonic_ns == spike_ns && s.latency.count() == latency_ns);
  EXPECT_TRUE(listed);

  ASSERT_EQ(result.traces, std::vector<std::string>{"trace.txt"});
  const std::string& trace = ctx_->artifacts.at("trace.txt");
  const std::string marker = "vmlat-probe spike: cpu=0 latency_ns=" + std::to_string(latency_ns) +
                             " monotonic_ns=" + std::to_string(spike_ns);
  const auto at = trace.find(marker);
  ASSERT_NE(at, std::string::npos) << trace.substr(trace.size() > 2000 ? trace.size() - 2000 : 0);
  // "... [000] ...1.  6757.538531: tracing_mark_write: vmlat-probe spike: ..."
  const auto line_start = trace.rfind('\n', at) + 1;
  const std::string head = trace.substr(line_start, at - line_start);
  const auto colon = head.rfind(": tracing_mark_write");
  ASSERT_NE(colon, std::string::npos) << head;
  const auto space = head.rfind(' ', colon);
  const double trace_s = std::stod(head.substr(space + 1, colon - space - 1));
  EXPECT_NEAR(trace_s, static_cast<double>(spike_ns) / 1e9, 0.005) << head;
  // The trace ends at the spike: the marker is within its last lines.
  std::size_t after = 0;
  for (auto i = at; i < trace.size(); ++i) after += trace[i] == '\n';
  EXPECT_LE(after, 50u) << "events after the marker: the trace was not stopped";
}

// cyclictest -b stops the whole run at the spike: the trace is kept, the
// result is marked invalid (not a measurement of the cell).
TEST_F(CyclicProbeTest, ForcedSpikeStopsCyclictestAndInvalidatesTheCell) {
  require_root();
  Burst burst(0, 800ms, 60ms);
  ProbeResult result = measure("trace_above = \"30ms\"\n", cell(1ms, 3s, {0}));
  burst.join();
  ASSERT_TRUE(burst.ok_);
  EXPECT_TRUE(contains(result.invalid, "cyclictest stopped at the first wake-up over trace_above")) << result.invalid;
  EXPECT_TRUE(argv_has(result.facts["argv"], {"-b", "30000", "--tracemark"})) << result.facts["argv"].dump();
  ASSERT_EQ(result.traces, std::vector<std::string>{"trace.txt"});
  EXPECT_TRUE(contains(ctx_->artifacts.at("trace.txt"), "tracing_mark_write: hit latency threshold"));
  EXPECT_LT(result.per_cpu.at(0).samples(), 2500u);  // stopped early
}

}  // namespace
