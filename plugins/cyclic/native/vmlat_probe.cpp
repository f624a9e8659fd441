// vmlat-probe: periodic-task wake-up latency probe (the core loop of a
// cyclictest-style measurement), emitting one vmlat frame with a JSON result.
//
// Designed to be linked statically and dropped into minimal guests: it only
// needs the kernel, uses no JSON library and keeps its resident set small even
// with mlockall() (small thread stacks, pre-faulted fixed-size histograms, no
// allocation after start).
//
// Per measured CPU, one thread pinned to it and running at SCHED_FIFO does:
//
//   next = now + period
//   loop:
//     clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next)
//     now = clock_gettime(CLOCK_MONOTONIC)
//     latency = now - next  -> min/max/sum/count, 1us histogram or overflow
//     next += period; if next <= now: skip the activations already missed
//
// The measurement loop makes no system calls other than clock_nanosleep and
// clock_gettime (a vDSO call), takes no locks and does no allocation or I/O.
// Two things happen only on rare samples: a wake-up among the N worst so far
// (--spikes) is inserted into a preallocated, sorted array of N entries with
// its CLOCK_REALTIME time; and the first wake-up over --trace-above-ns writes
// one trace marker and stops ftrace (two write()s to files opened before
// measuring, once per run).

#include <vmlat/frame.hpp>

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#ifndef VMLAT_PROBE_VERSION
#define VMLAT_PROBE_VERSION "0.1.0"
#endif

namespace {

constexpr const char* kProgram = "vmlat-probe";
constexpr const char* kVersion = VMLAT_PROBE_VERSION;
constexpr const char* kFrameKind = "native-probe-result";
constexpr const char* kSchema = "vmlat-native-probe/1";
constexpr const char* kWindowFrameKind = "native-probe-window";
constexpr const char* kWindowSchema = "vmlat-native-probe-window/1";

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitSetup = 3;
constexpr int kExitInterrupted = 130;

constexpr std::int64_t kNsPerSec = 1000000000;
constexpr std::size_t kThreadStackSize = 256 * 1024;
constexpr std::size_t kStackPrefault = 64 * 1024;
constexpr std::uint64_t kMaxHistogramUs = 1000000;
constexpr std::uint64_t kMaxSpikes = 1000;
constexpr std::uint64_t kDefaultSpikes = 10;
// --window-ms: the first activation this long after the start, and how often
// the main thread looks for completed windows.
constexpr std::int64_t kStreamLeadNs = 10000000;
constexpr std::int64_t kStreamPollNs = 20000000;

// ---------------------------------------------------------------------------
// Options

struct Options {
  std::int64_t period_ns = 1000000;
  std::int64_t duration_ns = 0;  // 0: not given
  std::uint64_t loops = 0;       // 0: not given
  std::int64_t window_ns = 0;    // --window-ms; 0: one result at the end
  std::vector<int> cpus;         // empty: process affinity mask
  int priority = 95;
  std::uint64_t histogram_us = 20000;
  bool mlock = true;
  long cpu_dma_latency_us = 0;  // -1: leave /dev/cpu_dma_latency alone
  std::string output;           // empty: stdout
  std::uint64_t spikes = kDefaultSpikes;  // worst wake-ups kept per thread
  std::int64_t trace_above_ns = 0;        // 0: no trace marker / stop
  std::string tracefs = "/sys/kernel/tracing";
  std::string trace_command;  // "arm" or "disarm": set up / undo ftrace and exit
  std::string trace_restore;  // --trace-disarm CLOCK:KB
  std::uint64_t trace_buffer_kb = 1024;
  std::vector<std::string> trace_events;
  std::string trace_instance;  // empty: the top level
  std::vector<std::uint64_t> trace_pids;
};

void print_help() {
  std::printf(
      "Usage: %s [OPTION]...\n"
      "Measure the wake-up latency of a periodic real-time task on each CPU\n"
      "(like cyclictest) and print the result as one vmlat frame of kind\n"
      "'%s' with a JSON payload (schema %s).\n"
      "\n"
      "Options (NUM may also be given as --option=NUM):\n"
      "  --period-us N       activation period in microseconds (default 1000)\n"
      "  --period-ns N       activation period in nanoseconds, >= 1000\n"
      "                      (--period-us and --period-ns are exclusive)\n"
      "  --duration-ms N     measure for N milliseconds\n"
      "  --loops N           measure N wake-ups per thread\n"
      "                      (at least one of --duration-ms and --loops is required;\n"
      "                      with both, the run ends at whichever comes first)\n"
      "  --window-ms N       stream: print one frame of kind '%s' (schema %s)\n"
      "                      per window of N milliseconds, for as long as the run\n"
      "                      lasts (then --duration-ms and --loops are optional: without\n"
      "                      them it runs until SIGINT/SIGTERM). Consecutive windows\n"
      "                      tile time: every activation scheduled in [start, end) of\n"
      "                      a window is one of its samples or missed periods\n"
      "  --cpus LIST         CPUs to measure, one pinned thread each, e.g. 0,1,3-5\n"
      "                      (default: every CPU in the process's affinity mask)\n"
      "  --priority N        SCHED_FIFO priority 1..99 of the measuring threads\n"
      "                      (default 95); 0 runs them as SCHED_OTHER, which needs\n"
      "                      no privileges\n"
      "  --histogram-us N    histogram of 1us buckets covering 0..N-1 us (default\n"
      "                      20000, at most %" PRIu64 "); latencies >= N us are counted as\n"
      "                      overflows\n"
      "  --no-mlock          do not lock memory with mlockall(MCL_CURRENT|MCL_FUTURE)\n"
      "  --cpu-dma-latency N while measuring, hold /dev/cpu_dma_latency at N us to\n"
      "                      keep CPUs out of deep idle states, as cyclictest does\n"
      "                      (default 0; -1 leaves it alone; skipped with a warning\n"
      "                      if the device is missing or cannot be opened)\n"
      "  --output FILE       write the frame to FILE instead of standard output\n"
      "  --spikes N          keep the N worst wake-ups of each thread with their\n"
      "                      CLOCK_MONOTONIC and CLOCK_REALTIME times (default %" PRIu64 ",\n"
      "                      at most %" PRIu64 "; 0 keeps none)\n"
      "  --trace-above-ns N  at the first wake-up later than N ns, write a marker to\n"
      "                      TRACEFS/trace_marker and stop ftrace (0 to TRACEFS/tracing_on);\n"
      "                      the measurement goes on. Arming ftrace is the caller's job\n"
      "  --tracefs DIR       the tracefs mount (default /sys/kernel/tracing)\n"
      "  --clocks            print \"MONOTONIC_NS REALTIME_NS\" (the two clocks at one\n"
      "                      moment) and exit: maps monotonic times to wall-clock time\n"
      "  --trace-arm         arm ftrace for a spike trace and exit, without trace-cmd:\n"
      "                      in TRACEFS: tracing off, trace_clock mono, buffer_size_kb\n"
      "                      (--trace-buffer-kb N), the trace cleared, only the events\n"
      "                      given with --trace-event SYS[:EVENT] (repeatable) enabled,\n"
      "                      then tracing on. Mounts tracefs at /sys/kernel/tracing if\n"
      "                      nothing is mounted there. Prints the previous trace_clock\n"
      "                      and buffer_size_kb (\"CLOCK KB\") for --trace-disarm\n"
      "  --trace-instance NAME  with --trace-arm/--trace-disarm: work in the ftrace\n"
      "                      instance TRACEFS/instances/NAME (created by arm, removed\n"
      "                      by disarm) instead of the top level\n"
      "  --trace-pid PID     with --trace-arm: record events of these threads only\n"
      "                      (set_event_pid; repeatable)\n"
      "  --trace-disarm CLOCK:KB  disable every event, restore trace_clock CLOCK and\n"
      "                      buffer_size_kb KB, turn tracing on again (the default), exit\n"
      "  --version           print the version and exit\n"
      "  --help              print this help and exit\n"
      "\n"
      "The measuring threads start together after pinning (affinity) and setting\n"
      "their scheduling policy. Each sleeps until its next activation with\n"
      "clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) and records\n"
      "latency = wake-up time - activation time. If an activation is already\n"
      "past when a thread wakes up, it is skipped and counted in missed_periods.\n"
      "SIGINT or SIGTERM stop the run early; the partial result is still written,\n"
      "with \"interrupted\": true.\n"
      "\n"
      "Standard output carries only the frame; diagnostics go to standard error.\n"
      "\n"
      "Exit status:\n"
      "  0    success\n"
      "  1    runtime failure (e.g. the result could not be written)\n"
      "  2    bad usage\n"
      "  3    setup failure (mlockall, affinity, scheduling policy, output file,\n"
      "       thread creation); the message names the failing call and errno\n"
      "  130  interrupted by SIGINT/SIGTERM (a complete frame was still written)\n",
      kProgram, kFrameKind, kSchema, kWindowFrameKind, kWindowSchema, kMaxHistogramUs, kDefaultSpikes, kMaxSpikes);
}

[[noreturn]] void usage_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void usage_error(const char* fmt, ...) {
  std::fprintf(stderr, "%s: ", kProgram);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\nTry '%s --help' for more information.\n", kProgram);
  std::exit(kExitUsage);
}

// "Operation not permitted (EPERM)"
std::string errno_text(int err) {
  const char* name = strerrorname_np(err);
  std::string s = std::strerror(err);
  s += " (";
  s += name != nullptr ? name : std::to_string(err).c_str();
  s += ")";
  return s;
}

[[noreturn]] void setup_failure(const std::string& what, int err, const char* hint = nullptr) {
  std::fprintf(stderr, "%s: %s failed: %s%s%s\n", kProgram, what.c_str(), errno_text(err).c_str(),
               hint != nullptr ? "; " : "", hint != nullptr ? hint : "");
  std::exit(kExitSetup);
}

// Strict unsigned decimal: digits only, within [min, max].
std::uint64_t parse_uint(const char* option, const char* text, std::uint64_t min, std::uint64_t max) {
  if (text == nullptr || *text == '\0') usage_error("option '--%s' needs a number", option);
  std::uint64_t v = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') usage_error("option '--%s': '%s' is not a non-negative integer", option, text);
    const auto digit = static_cast<std::uint64_t>(*p - '0');
    if (v > (UINT64_MAX - digit) / 10) usage_error("option '--%s': '%s' is out of range", option, text);
    v = v * 10 + digit;
  }
  if (v < min || v > max) {
    usage_error("option '--%s': %s is out of range (%" PRIu64 "..%" PRIu64 ")", option, text, min, max);
  }
  return v;
}

std::vector<int> parse_cpu_list(const char* text) {
  cpu_set_t set;
  CPU_ZERO(&set);
  const char* p = text;
  auto number = [&](void) -> long {
    if (*p < '0' || *p > '9') usage_error("option '--cpus': malformed CPU list '%s'", text);
    long v = 0;
    while (*p >= '0' && *p <= '9') {
      v = v * 10 + (*p - '0');
      if (v >= CPU_SETSIZE) usage_error("option '--cpus': CPU number in '%s' is too large (max %d)", text, CPU_SETSIZE - 1);
      ++p;
    }
    return v;
  };
  for (;;) {
    const long first = number();
    long last = first;
    if (*p == '-') {
      ++p;
      last = number();
      if (last < first) usage_error("option '--cpus': descending range in '%s'", text);
    }
    for (long c = first; c <= last; ++c) CPU_SET(static_cast<std::size_t>(c), &set);
    if (*p == '\0') break;
    if (*p != ',') usage_error("option '--cpus': malformed CPU list '%s'", text);
    ++p;
  }
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(static_cast<std::size_t>(c), &set)) cpus.push_back(c);
  }
  return cpus;
}

std::int64_t to_ns(const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * kNsPerSec + t.tv_nsec; }

Options parse_options(int argc, char** argv) {
  enum {
    kOptPeriodUs = 1000,
    kOptPeriodNs,
    kOptDurationMs,
    kOptLoops,
    kOptWindowMs,
    kOptCpus,
    kOptPriority,
    kOptHistogramUs,
    kOptNoMlock,
    kOptCpuDmaLatency,
    kOptOutput,
    kOptSpikes,
    kOptTraceAboveNs,
    kOptTracefs,
    kOptVersion,
    kOptTraceArm,
    kOptTraceDisarm,
    kOptTraceBufferKb,
    kOptTraceEvent,
    kOptTraceInstance,
    kOptTracePid,
    kOptClocks,
    kOptHelp,
  };
  static const option long_options[] = {
      {"period-us", required_argument, nullptr, kOptPeriodUs},
      {"period-ns", required_argument, nullptr, kOptPeriodNs},
      {"duration-ms", required_argument, nullptr, kOptDurationMs},
      {"loops", required_argument, nullptr, kOptLoops},
      {"window-ms", required_argument, nullptr, kOptWindowMs},
      {"cpus", required_argument, nullptr, kOptCpus},
      {"priority", required_argument, nullptr, kOptPriority},
      {"histogram-us", required_argument, nullptr, kOptHistogramUs},
      {"no-mlock", no_argument, nullptr, kOptNoMlock},
      {"cpu-dma-latency", required_argument, nullptr, kOptCpuDmaLatency},
      {"output", required_argument, nullptr, kOptOutput},
      {"spikes", required_argument, nullptr, kOptSpikes},
      {"trace-above-ns", required_argument, nullptr, kOptTraceAboveNs},
      {"tracefs", required_argument, nullptr, kOptTracefs},
      {"version", no_argument, nullptr, kOptVersion},
      {"clocks", no_argument, nullptr, kOptClocks},
      {"trace-arm", no_argument, nullptr, kOptTraceArm},
      {"trace-disarm", required_argument, nullptr, kOptTraceDisarm},
      {"trace-buffer-kb", required_argument, nullptr, kOptTraceBufferKb},
      {"trace-event", required_argument, nullptr, kOptTraceEvent},
      {"trace-instance", required_argument, nullptr, kOptTraceInstance},
      {"trace-pid", required_argument, nullptr, kOptTracePid},
      {"help", no_argument, nullptr, kOptHelp},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  bool period_us_given = false;
  bool period_ns_given = false;
  opterr = 0;  // we print our own messages
  for (;;) {
    const int c = getopt_long(argc, argv, "", long_options, nullptr);
    if (c == -1) break;
    switch (c) {
      case kOptPeriodUs:
        o.period_ns = static_cast<std::int64_t>(parse_uint("period-us", optarg, 1, 3600ULL * 1000000)) * 1000;
        period_us_given = true;
        break;
      case kOptPeriodNs:
        o.period_ns = static_cast<std::int64_t>(parse_uint("period-ns", optarg, 1000, 3600ULL * kNsPerSec));
        period_ns_given = true;
        break;
      case kOptDurationMs:
        // Up to ~292 years would fit; cap at 10 years to keep arithmetic far from overflow.
        o.duration_ns =
            static_cast<std::int64_t>(parse_uint("duration-ms", optarg, 1, 10ULL * 365 * 86400 * 1000)) * 1000000;
        break;
      case kOptLoops: o.loops = parse_uint("loops", optarg, 1, UINT64_MAX); break;
      case kOptWindowMs:
        o.window_ns = static_cast<std::int64_t>(parse_uint("window-ms", optarg, 1, 86400ULL * 1000)) * 1000000;
        break;
      case kOptCpus: o.cpus = parse_cpu_list(optarg); break;
      case kOptPriority: o.priority = static_cast<int>(parse_uint("priority", optarg, 0, 99)); break;
      case kOptHistogramUs: o.histogram_us = parse_uint("histogram-us", optarg, 1, kMaxHistogramUs); break;
      case kOptNoMlock: o.mlock = false; break;
      case kOptCpuDmaLatency:
        if (optarg != nullptr && std::strcmp(optarg, "-1") == 0) {
          o.cpu_dma_latency_us = -1;
        } else {
          o.cpu_dma_latency_us = static_cast<long>(parse_uint("cpu-dma-latency", optarg, 0, 2000000000));
        }
        break;
      case kOptOutput:
        if (optarg == nullptr || *optarg == '\0') usage_error("option '--output' needs a file name");
        o.output = optarg;
        break;
      case kOptSpikes: o.spikes = parse_uint("spikes", optarg, 0, kMaxSpikes); break;
      case kOptTraceAboveNs:
        o.trace_above_ns = static_cast<std::int64_t>(parse_uint("trace-above-ns", optarg, 1, 3600ULL * kNsPerSec));
        break;
      case kOptTracefs:
        if (optarg == nullptr || *optarg == '\0') usage_error("option '--tracefs' needs a directory");
        o.tracefs = optarg;
        break;
      case kOptVersion:
        std::printf("%s %s\n", kProgram, kVersion);
        std::exit(kExitOk);
      case kOptTraceArm: o.trace_command = "arm"; break;
      case kOptTraceDisarm:
        o.trace_command = "disarm";
        o.trace_restore = optarg != nullptr ? optarg : "";
        break;
      case kOptTraceBufferKb: o.trace_buffer_kb = parse_uint("trace-buffer-kb", optarg, 16, 1u << 20); break;
      case kOptTraceEvent:
        if (optarg == nullptr || *optarg == '\0' || std::strchr(optarg, '/') != nullptr || optarg[0] == '.')
          usage_error("option '--trace-event': '%s' is not SYSTEM or SYSTEM:EVENT", optarg ? optarg : "");
        o.trace_events.emplace_back(optarg);
        break;
      case kOptTraceInstance:
        if (optarg == nullptr || *optarg == '\0' || std::strchr(optarg, '/') != nullptr || optarg[0] == '.')
          usage_error("option '--trace-instance': '%s' is not a plain name", optarg ? optarg : "");
        o.trace_instance = optarg;
        break;
      case kOptTracePid: o.trace_pids.push_back(parse_uint("trace-pid", optarg, 1, 1u << 30)); break;
      case kOptClocks: {
        // Realtime read between two monotonic reads: the pair's error is
        // half their distance (tens of ns).
        timespec m1{}, r{}, m2{};
        clock_gettime(CLOCK_MONOTONIC, &m1);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &m2);
        const std::int64_t mono = to_ns(m1) + (to_ns(m2) - to_ns(m1)) / 2;
        std::printf("%" PRId64 " %" PRId64 "\n", mono, to_ns(r));
        std::exit(kExitOk);
      }
      case kOptHelp:
        print_help();
        std::exit(kExitOk);
      case ':': usage_error("option '%s' needs an argument", argv[optind - 1]);
      default:
        if (optopt >= kOptPeriodUs) usage_error("option '%s' needs an argument", argv[optind - 1]);
        usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) usage_error("unexpected argument '%s'", argv[optind]);
  if (!o.trace_command.empty()) return o;
  if (period_us_given && period_ns_given) usage_error("--period-us and --period-ns are mutually exclusive");
  if (o.duration_ns == 0 && o.loops == 0 && o.window_ns == 0)
    usage_error("one of --duration-ms, --loops or --window-ms is required");
  if (o.window_ns > 0 && o.window_ns < o.period_ns)
    usage_error("--window-ms must be at least one period long");
  return o;
}

// ---------------------------------------------------------------------------
// Measurement


timespec from_ns(std::int64_t ns) {
  timespec t{};
  t.tv_sec = static_cast<time_t>(ns / kNsPerSec);
  t.tv_nsec = static_cast<long>(ns % kNsPerSec);
  return t;
}

std::int64_t clock_ns(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return to_ns(t);
}

// One of the worst wake-ups.
struct SpikeRecord {
  std::int64_t latency_ns;
  std::int64_t mono_ns;
  std::int64_t real_ns;
};

// What one thread measured in one window: the activations scheduled in
// [start_ns, end_ns) (CLOCK_MONOTONIC), each either a sample or a missed
// period. Without --window-ms a run is one window.
//
// Hand-over without locks: the measuring thread owns a buffer while its
// state is kBufFilling and publishes it with a release store of kBufReady;
// the main thread reads it after an acquire load of kBufReady, zeroes it and
// hands it back with a release store of kBufFree; the measuring thread takes
// a buffer only after an acquire load of kBufFree.
enum : int { kBufFree = 0, kBufFilling = 1, kBufReady = 2 };

struct WindowBuffer {
  alignas(64) std::atomic<int> state{kBufFree};
  alignas(64) std::int64_t start_ns = 0;
  std::int64_t end_ns = 0;
  std::uint64_t samples = 0;
  std::uint64_t overflows = 0;
  std::uint64_t missed_periods = 0;
  std::uint64_t sum_ns = 0;
  std::int64_t min_ns = 0;
  std::int64_t max_ns = 0;
  std::uint64_t* histogram = nullptr;  // Shared::histogram_us buckets
  SpikeRecord* spikes = nullptr;       // capacity Shared::spikes, ascending by latency
  std::uint64_t spike_count = 0;
};

// Window buffers per thread with --window-ms: the main thread may fall this
// many windows minus one behind before a thread has to extend its current
// window over the next one (windows still tile time; one covers more).
constexpr int kRingSize = 4;

// Per-thread state. Written only by its own thread while measuring (the
// window buffers as said above); read by the main thread after joining.
// Cache-line aligned against false sharing.
struct alignas(64) ThreadState {
  int cpu = -1;
  pid_t tid = 0;
  WindowBuffer* ring = nullptr;  // ring_size buffers
  int ring_size = 1;
  int slot = 0;                  // the buffer being filled
  int read_slot = 0;             // main thread: the next buffer to read
  bool trace_fired = false;      // this thread wrote the marker and stopped the trace
  std::int64_t trace_latency_ns = 0;
  std::int64_t trace_mono_ns = 0;

  std::int64_t end_mono_ns = 0;  // time of the last wake-up (or of the start)
  std::atomic<bool> done{false};  // the last window is published

  // Failure report (setup or runtime); failed_call == nullptr: none.
  const char* failed_call = nullptr;
  int failed_errno = 0;
  bool runtime_failure = false;
};

struct Shared {
  std::int64_t period_ns = 0;
  std::int64_t duration_ns = 0;  // 0: unlimited
  std::uint64_t loops = 0;       // 0: unlimited
  std::int64_t window_ns = 0;    // 0: one window for the whole run
  std::int64_t first_activation_ns = 0;  // --window-ms: every thread's first activation
  std::uint64_t histogram_us = 0;
  std::uint64_t spikes = 0;        // capacity per thread and window
  std::int64_t trace_above_ns = 0; // 0: off
  int trace_marker_fd = -1;
  int tracing_on_fd = -1;
  std::atomic<bool> trace_taken{false};  // the first thread over the bound claims it
  int policy = SCHED_FIFO;
  int priority = 0;
  int nthreads = 0;
  pthread_t main_thread{};

  // Start gate: workers report ready, then wait for go (or abort).
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  int ready = 0;
  bool go = false;
  bool abort = false;

  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
};

Shared g_shared;

// Touch the stack below us so that its pages are present before measuring
// (needed with --no-mlock; harmless with mlockall).
__attribute__((noinline)) void prefault_stack() {
  volatile unsigned char buf[kStackPrefault];
  for (std::size_t i = 0; i < sizeof buf; i += 256) buf[i] = 0;
}

// Inserts a wake-up into the window's sorted worst-N array (full: replaces
// the least bad). Returns the latency a wake-up must now exceed to enter.
__attribute__((noinline)) std::int64_t record_spike(WindowBuffer& w, std::uint64_t capacity, std::int64_t latency,
                                                    std::int64_t mono_ns) {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  const SpikeRecord rec{latency, mono_ns, to_ns(t)};
  SpikeRecord* const a = w.spikes;
  std::uint64_t n = w.spike_count;
  std::uint64_t i;
  if (n < capacity) {
    i = n++;
  } else {
    i = 0;  // drop a[0], the least bad
    for (; i + 1 < n && a[i + 1].latency_ns < latency; ++i) a[i] = a[i + 1];
    a[i] = rec;
    w.spike_count = n;
    return a[0].latency_ns;
  }
  for (; i > 0 && a[i - 1].latency_ns > latency; --i) a[i] = a[i - 1];
  a[i] = rec;
  w.spike_count = n;
  return n < capacity ? -1 : a[0].latency_ns;
}

// The first wake-up over --trace-above-ns (of any thread): a marker at the
// spike, then ftrace stopped so that the trace ends there.
__attribute__((noinline)) void trace_spike(ThreadState& st, std::int64_t latency, std::int64_t mono_ns) {
  Shared& sh = g_shared;
  if (sh.trace_taken.exchange(true)) return;
  char marker[192];
  const int len = std::snprintf(marker, sizeof marker,
                                "vmlat-probe spike: cpu=%d latency_ns=%" PRId64 " monotonic_ns=%" PRId64
                                " trace_above_ns=%" PRId64,
                                st.cpu, latency, mono_ns, sh.trace_above_ns);
  if (sh.trace_marker_fd >= 0 && len > 0) (void)!write(sh.trace_marker_fd, marker, static_cast<std::size_t>(len));
  if (sh.tracing_on_fd >= 0) (void)!write(sh.tracing_on_fd, "0", 1);
  st.trace_fired = true;
  st.trace_latency_ns = latency;
  st.trace_mono_ns = mono_ns;
}

// The counters of the window being filled, in registers; stored into its
// buffer when the window closes.
struct WindowCounters {
  std::uint64_t samples = 0;
  std::uint64_t overflows = 0;
  std::uint64_t missed = 0;
  std::uint64_t sum = 0;
  std::int64_t min = INT64_MAX;
  std::int64_t max = 0;
  std::uint64_t* hist = nullptr;
  WindowBuffer* buf = nullptr;
  std::int64_t spike_floor = INT64_MAX;  // a wake-up enters the worst-N list when later than this

  void use(WindowBuffer* b, std::uint64_t spike_capacity) {
    *this = WindowCounters{};
    buf = b;
    hist = b->histogram;
    spike_floor = spike_capacity > 0 ? -1 : INT64_MAX;
  }
  void store(std::int64_t end_ns) const {
    buf->end_ns = end_ns;
    buf->samples = samples;
    buf->overflows = overflows;
    buf->missed_periods = missed;
    buf->sum_ns = sum;
    buf->min_ns = samples > 0 ? min : 0;
    buf->max_ns = max;
  }
};

// Activations skipped after a late wake-up that no window has counted yet:
// lo, lo + period, ... below hi.
struct SkippedActivations {
  std::int64_t lo = 0, hi = 0;
  // Counts (and forgets) those scheduled before `end`.
  std::uint64_t take_before(std::int64_t end, std::int64_t period) {
    const std::int64_t until = hi < end ? hi : end;
    if (until <= lo) return 0;
    const std::int64_t n = (until - lo + period - 1) / period;
    lo += n * period;
    return static_cast<std::uint64_t>(n);
  }
};

// Closes every window that ends at or before the activation `next`: the
// current buffer is published and the next one taken, or, when the main
// thread has not handed that one back yet, the current window is extended by
// one window length (so that windows still tile time). Rare: once a window.
__attribute__((noinline)) void close_windows(ThreadState& st, WindowCounters& c, SkippedActivations& skipped,
                                             std::int64_t next, std::int64_t& window_end) {
  const Shared& sh = g_shared;
  while (next >= window_end) {
    c.missed += skipped.take_before(window_end, sh.period_ns);
    const int following = (st.slot + 1) % st.ring_size;
    WindowBuffer& b = st.ring[following];
    if (b.state.load(std::memory_order_acquire) != kBufFree) {
      window_end += sh.window_ns;
      continue;
    }
    c.store(window_end);
    st.ring[st.slot].state.store(kBufReady, std::memory_order_release);
    b.start_ns = window_end;
    b.state.store(kBufFilling, std::memory_order_relaxed);
    st.slot = following;
    c.use(&b, sh.spikes);
    window_end += sh.window_ns;
  }
  // Skipped activations of the window now being filled (a late wake-up that
  // jumped over the boundary) belong to it: count them now, before another
  // late wake-up replaces the pending range.
  c.missed += skipped.take_before(window_end, sh.period_ns);
}

void measure(ThreadState& st) {
  Shared& sh = g_shared;
  const std::int64_t period = sh.period_ns;
  const std::uint64_t limit = sh.histogram_us;
  const std::uint64_t max_samples = sh.loops;
  const std::uint64_t spike_capacity = sh.spikes;
  std::int64_t trace_above = sh.trace_above_ns > 0 ? sh.trace_above_ns : INT64_MAX;

  WindowCounters c;
  c.use(&st.ring[0], spike_capacity);
  SkippedActivations skipped;
  std::uint64_t total_samples = 0;

  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  std::int64_t now = to_ns(t);
  // Streaming: every thread's activations on one grid, so that the windows
  // of all CPUs share their boundaries. A single run: from this thread's start.
  std::int64_t next = sh.window_ns > 0 ? sh.first_activation_ns : now + period;
  const std::int64_t stop_at = sh.duration_ns > 0 ? next - period + sh.duration_ns : INT64_MAX;
  std::int64_t window_end = sh.window_ns > 0 ? next + sh.window_ns : INT64_MAX;
  st.ring[0].start_ns = next;

  // Stop before sleeping towards an activation beyond the requested duration.
  while (next <= stop_at) {
    t = from_ns(next);
    const int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nullptr);
    if (rc != 0) {
      if (rc == EINTR) {
        if (sh.stop.load(std::memory_order_relaxed)) break;
        continue;
      }
      st.failed_call = "clock_nanosleep";
      st.failed_errno = rc;
      st.runtime_failure = true;
      sh.stop.store(true);  // the others stop too: the result is a failure
      break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    now = to_ns(t);
    if (next >= window_end) close_windows(st, c, skipped, next, window_end);

    std::int64_t latency = now - next;
    if (latency < 0) latency = 0;  // cannot happen with an absolute sleep
    ++c.samples;
    c.sum += static_cast<std::uint64_t>(latency);
    if (latency < c.min) c.min = latency;
    if (latency > c.max) c.max = latency;
    const std::uint64_t bucket = static_cast<std::uint64_t>(latency) / 1000;
    if (bucket < limit) {
      ++c.hist[bucket];
    } else {
      ++c.overflows;
    }
    if (latency > c.spike_floor) c.spike_floor = record_spike(*c.buf, spike_capacity, latency, now);
    if (latency > trace_above) {
      trace_spike(st, latency, now);
      trace_above = INT64_MAX;
    }

    next += period;
    if (next <= now) {
      // Activations whose time has already come are skipped, not run late;
      // each counts as a missed period of the window it was scheduled in.
      const std::int64_t skip = (now - next) / period + 1;
      skipped.lo = next;
      next += skip * period;
      skipped.hi = next;
      c.missed += skipped.take_before(window_end, period);
    }
    if (sh.stop.load(std::memory_order_relaxed)) break;
    if (++total_samples == max_samples) break;
  }

  // The last window ends at the first activation not taken (so a run that
  // stops on a window boundary ends with a whole window, not an empty one).
  if (next > window_end) close_windows(st, c, skipped, next - 1, window_end);
  c.missed += skipped.take_before(next, period);
  c.store(next);
  st.end_mono_ns = now;
  st.ring[st.slot].state.store(kBufReady, std::memory_order_release);
  st.done.store(true, std::memory_order_release);
}

void* worker_main(void* arg) {
  auto& st = *static_cast<ThreadState*>(arg);
  Shared& sh = g_shared;
  st.tid = gettid();

  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<std::size_t>(st.cpu), &set);
  int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (rc != 0) {
    st.failed_call = "pthread_setaffinity_np";
    st.failed_errno = rc;
  } else {
    sched_param sp{};
    sp.sched_priority = sh.priority;
    rc = pthread_setschedparam(pthread_self(), sh.policy, &sp);
    if (rc != 0) {
      st.failed_call = "pthread_setschedparam";
      st.failed_errno = rc;
    }
  }
  // Pre-fault (and zero) the window buffers from the CPU that will use them.
  for (int i = 0; i < st.ring_size; ++i) {
    std::memset(st.ring[i].histogram, 0, sh.histogram_us * sizeof(std::uint64_t));
    std::memset(st.ring[i].spikes, 0, sh.spikes * sizeof(SpikeRecord));
  }
  prefault_stack();

  pthread_mutex_lock(&sh.mutex);
  ++sh.ready;
  pthread_cond_broadcast(&sh.cond);
  while (!sh.go) pthread_cond_wait(&sh.cond, &sh.mutex);
  const bool abort = sh.abort;
  pthread_mutex_unlock(&sh.mutex);

  if (!abort) measure(st);

  if (sh.finished.fetch_add(1) + 1 == sh.nthreads) {
    pthread_kill(sh.main_thread, SIGUSR1);  // wake the main thread's sigwait
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Output

void appendf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& out, const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) out.append(buf, static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1);
}

// One thread's record over `count` consecutive window buffers (merged), as
// "threads" entries of both schemas. `spike_scratch` holds 2 x --spikes.
void append_thread(std::string& j, const Options& o, const ThreadState& st, const WindowBuffer* const* bufs, int count,
                   bool with_span, std::vector<SpikeRecord>& spike_scratch) {
  std::uint64_t samples = 0, overflows = 0, missed = 0, sum = 0;
  std::int64_t min = INT64_MAX, max = 0;
  for (int i = 0; i < count; ++i) {
    const WindowBuffer& b = *bufs[i];
    samples += b.samples;
    overflows += b.overflows;
    missed += b.missed_periods;
    sum += b.sum_ns;
    if (b.samples > 0 && b.min_ns < min) min = b.min_ns;
    if (b.max_ns > max) max = b.max_ns;
  }
  if (samples == 0) min = 0;
  appendf(j, "{\"cpu\":%d,\"tid\":%d,\"samples\":%" PRIu64 ",\"min_ns\":%" PRId64 ",\"max_ns\":%" PRId64, st.cpu,
          static_cast<int>(st.tid), samples, min, max);
  appendf(j, ",\"sum_ns\":%" PRIu64 ",\"overflows\":%" PRIu64 ",\"missed_periods\":%" PRIu64, sum, overflows, missed);
  if (with_span)
    appendf(j, ",\"start_mono_ns\":%" PRId64 ",\"end_mono_ns\":%" PRId64, bufs[0]->start_ns, bufs[count - 1]->end_ns);
  j += ",\"histogram\":[";
  bool first_bucket = true;
  for (std::uint64_t k = 0; k < o.histogram_us; ++k) {
    std::uint64_t n = 0;
    for (int i = 0; i < count; ++i) n += bufs[i]->histogram[k];
    if (n == 0) continue;
    appendf(j, "%s[%" PRIu64 ",%" PRIu64 "]", first_bucket ? "" : ",", k, n);
    first_bucket = false;
  }
  // The worst N of the merged windows, worst first: [latency_ns, monotonic_ns, realtime_ns].
  spike_scratch.clear();
  for (int i = 0; i < count; ++i)
    spike_scratch.insert(spike_scratch.end(), bufs[i]->spikes, bufs[i]->spikes + bufs[i]->spike_count);
  std::stable_sort(spike_scratch.begin(), spike_scratch.end(),
                   [](const SpikeRecord& a, const SpikeRecord& b) { return a.latency_ns > b.latency_ns; });
  if (spike_scratch.size() > o.spikes) spike_scratch.resize(o.spikes);
  j += "],\"spikes\":[";
  for (std::size_t k = 0; k < spike_scratch.size(); ++k) {
    const SpikeRecord& r = spike_scratch[k];
    appendf(j, "%s[%" PRId64 ",%" PRId64 ",%" PRId64 "]", k == 0 ? "" : ",", r.latency_ns, r.mono_ns, r.real_ns);
  }
  j += "]}";
}

// The fields both schemas start with.
void append_header(std::string& j, const char* schema, const Options& o, bool mlocked, bool interrupted) {
  appendf(j, "{\"schema\":\"%s\",\"probe_version\":\"%s\",\"clock\":\"monotonic\"", schema, kVersion);
  appendf(j, ",\"period_ns\":%" PRId64 ",\"priority\":%d,\"policy\":\"%s\"", o.period_ns, o.priority,
          o.priority > 0 ? "fifo" : "other");
  appendf(j, ",\"mlocked\":%s,\"histogram_limit_us\":%" PRIu64 ",\"interrupted\":%s", mlocked ? "true" : "false",
          o.histogram_us, interrupted ? "true" : "false");
}

void append_trace(std::string& j, const Options& o, const std::vector<ThreadState>& threads) {
  if (o.trace_above_ns <= 0) return;
  appendf(j, ",\"trace\":{\"above_ns\":%" PRId64 ",\"marker\":%s,\"stop\":%s", o.trace_above_ns,
          g_shared.trace_marker_fd >= 0 ? "true" : "false", g_shared.tracing_on_fd >= 0 ? "true" : "false");
  const ThreadState* fired = nullptr;
  for (const ThreadState& st : threads)
    if (st.trace_fired) fired = &st;
  if (fired != nullptr) {
    appendf(j, ",\"fired\":{\"cpu\":%d,\"latency_ns\":%" PRId64 ",\"monotonic_ns\":%" PRId64 "}}", fired->cpu,
            fired->trace_latency_ns, fired->trace_mono_ns);
  } else {
    j += ",\"fired\":null}";
  }
}

// The result of a run without --window-ms (schema vmlat-native-probe/1).
std::string result_json(const Options& o, const std::vector<ThreadState>& threads, bool mlocked, bool interrupted,
                        std::int64_t started_unix_ns, std::int64_t duration_ns) {
  std::string j;
  j.reserve(4096);
  append_header(j, kSchema, o, mlocked, interrupted);
  appendf(j, ",\"started_unix_ns\":%" PRId64 ",\"duration_ns\":%" PRId64 ",\"threads\":[", started_unix_ns,
          duration_ns);
  std::vector<SpikeRecord> scratch;
  scratch.reserve(2 * o.spikes + 1);
  bool first_thread = true;
  for (const ThreadState& st : threads) {
    if (!first_thread) j += ',';
    const WindowBuffer* only = &st.ring[0];
    append_thread(j, o, st, &only, 1, false, scratch);
    first_thread = false;
  }
  j += "]";
  appendf(j, ",\"spikes_per_thread\":%" PRIu64, o.spikes);
  append_trace(j, o, threads);
  j += "}";
  return j;
}

bool write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// Holds /dev/cpu_dma_latency open at the requested value (PM QoS); the kernel
// drops the request when the file is closed, i.e. when the process exits.
// Failing to open it is not fatal; it is reported unless the device does not
// exist or this is an unprivileged (SCHED_OTHER) run that was denied access.
int request_cpu_dma_latency(long us, bool quiet_if_denied) {
  if (us < 0) return -1;
  const int fd = open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    const bool denied = errno == EACCES || errno == EPERM;
    if (errno != ENOENT && !(denied && quiet_if_denied)) {
      std::fprintf(stderr, "%s: warning: open(/dev/cpu_dma_latency) failed: %s; CPU idle states not restricted\n",
                   kProgram, errno_text(errno).c_str());
    }
    return -1;
  }
  const std::int32_t value = static_cast<std::int32_t>(us);
  if (write(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) {
    std::fprintf(stderr, "%s: warning: write(/dev/cpu_dma_latency) failed: %s; CPU idle states not restricted\n",
                 kProgram, errno_text(errno).c_str());
    close(fd);
    return -1;
  }
  return fd;
}

// --window-ms: the main thread's side. Collects windows as the measuring
// threads publish them, one frame per window once every thread has
// published it, and hands the buffers back. A thread that had to extend its
// window (the main thread was behind) makes the others' windows merge up to
// the same end, so every frame covers one interval on all CPUs.
class WindowStreamer {
 public:
  WindowStreamer(const Options& o, std::vector<ThreadState>& threads, int out_fd, bool mlocked)
      : o_(o), threads_(threads), out_fd_(out_fd), mlocked_(mlocked), bufs_(threads.size()) {
    for (auto& b : bufs_) b.reserve(kRingSize);
    scratch_.reserve(2 * o.spikes + 1);
  }

  // Writes every window that is complete on all threads; once every thread
  // is done (`all_done`), also what is left, the last frame marked final.
  // False if writing failed.
  bool emit(bool all_done, bool interrupted) {
    while (collect(false)) {
      const bool last = all_done && !more_published();
      if (!write_window(last, interrupted)) return false;
      if (last) return true;
    }
    if (!all_done) return true;
    // Every buffer is published now: the rest, per thread, as the last window.
    if (!collect(true)) return true;
    return write_window(true, interrupted);
  }

  std::uint64_t windows() const { return index_; }

 private:
  const WindowBuffer& at(const ThreadState& st, int k) const {
    return st.ring[(st.read_slot + k) % st.ring_size];
  }
  static bool ready(const WindowBuffer& b) { return b.state.load(std::memory_order_acquire) == kBufReady; }
  // A published buffer beyond those collect() chose.
  bool more_published() const {
    for (std::size_t t = 0; t < threads_.size(); ++t) {
      const int k = static_cast<int>(bufs_[t].size());
      if (k < threads_[t].ring_size && ready(at(threads_[t], k))) return true;
    }
    return false;
  }

  // Chooses the buffers of the next window into bufs_. Normal: one end E
  // that each thread reaches with consecutive published buffers. `rest`:
  // every published buffer of every thread (false if none is left).
  bool collect(bool rest) {
    for (auto& b : bufs_) b.clear();
    if (rest) {
      bool any = false;
      for (std::size_t t = 0; t < threads_.size(); ++t)
        for (int k = 0; k < threads_[t].ring_size && ready(at(threads_[t], k)); ++k) {
          bufs_[t].push_back(&at(threads_[t], k));
          any = true;
        }
      return any;
    }
    std::int64_t end = INT64_MIN;
    for (const ThreadState& st : threads_) {
      if (!ready(at(st, 0))) return false;
      end = std::max(end, at(st, 0).end_ns);
    }
    for (bool grew = true; grew;) {
      grew = false;
      for (std::size_t t = 0; t < threads_.size(); ++t) {
        bufs_[t].clear();
        const ThreadState& st = threads_[t];
        for (int k = 0;; ++k) {
          if (k == st.ring_size || !ready(at(st, k))) return false;
          bufs_[t].push_back(&at(st, k));
          if (at(st, k).end_ns >= end) break;
        }
        if (bufs_[t].back()->end_ns > end) {
          end = bufs_[t].back()->end_ns;
          grew = true;
        }
      }
    }
    return true;
  }

  bool write_window(bool final, bool interrupted) {
    const std::int64_t offset = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
    std::int64_t start = INT64_MAX, end = INT64_MIN;
    for (const auto& b : bufs_) {
      if (b.empty()) continue;
      start = std::min(start, b.front()->start_ns);
      end = std::max(end, b.back()->end_ns);
    }
    json_.clear();
    append_header(json_, kWindowSchema, o_, mlocked_, final && interrupted);
    appendf(json_,
            ",\"window\":{\"index\":%" PRIu64 ",\"start_mono_ns\":%" PRId64 ",\"end_mono_ns\":%" PRId64
            ",\"start_unix_ns\":%" PRId64 ",\"end_unix_ns\":%" PRId64 ",\"window_ns\":%" PRId64 ",\"final\":%s}",
            index_, start, end, start + offset, end + offset, o_.window_ns, final ? "true" : "false");
    json_ += ",\"threads\":[";
    bool first = true;
    for (std::size_t t = 0; t < threads_.size(); ++t) {
      if (bufs_[t].empty()) continue;
      if (!first) json_ += ',';
      append_thread(json_, o_, threads_[t], bufs_[t].data(), static_cast<int>(bufs_[t].size()), true, scratch_);
      first = false;
    }
    json_ += "]";
    appendf(json_, ",\"spikes_per_thread\":%" PRIu64, o_.spikes);
    append_trace(json_, o_, threads_);
    json_ += "}";
    // Hand the buffers back before writing: the threads may need them.
    for (std::size_t t = 0; t < threads_.size(); ++t) {
      for (const WindowBuffer* cb : bufs_[t]) {
        auto* b = const_cast<WindowBuffer*>(cb);
        std::memset(b->histogram, 0, o_.histogram_us * sizeof(std::uint64_t));
        b->spike_count = 0;
        b->samples = b->overflows = b->missed_periods = b->sum_ns = 0;
        b->min_ns = b->max_ns = 0;
        b->state.store(kBufFree, std::memory_order_release);
      }
      threads_[t].read_slot = (threads_[t].read_slot + static_cast<int>(bufs_[t].size())) % threads_[t].ring_size;
    }
    ++index_;
    std::string frame;
    try {
      frame = vmlat::frame::encode(kWindowFrameKind, json_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: cannot encode window %" PRIu64 ": %s\n", kProgram, index_ - 1, e.what());
      return false;
    }
    if (!write_all(out_fd_, frame)) {
      std::fprintf(stderr, "%s: writing window %" PRIu64 " to %s failed: %s\n", kProgram, index_ - 1,
                   o_.output.empty() ? "standard output" : o_.output.c_str(), errno_text(errno).c_str());
      return false;
    }
    return true;
  }

  const Options& o_;
  std::vector<ThreadState>& threads_;
  int out_fd_;
  bool mlocked_;
  std::vector<std::vector<const WindowBuffer*>> bufs_;
  std::vector<SpikeRecord> scratch_;
  std::string json_;
  std::uint64_t index_ = 0;
};

// ---------------------------------------------------------------------------
// ftrace set-up without trace-cmd (which insists on writing
// /proc/sys/kernel/ftrace_enabled, refused in some containers and VMs).

bool write_file(const std::string& path, const std::string& value, bool append = false) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC));
  if (fd < 0) return false;
  const bool ok = value.empty() || write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  const int saved = errno;
  close(fd);
  errno = saved;
  return ok;
}

std::string read_file(const std::string& path) {
  std::string out;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return out;
}

[[noreturn]] void trace_failure(const std::string& what) {
  std::fprintf(stderr, "%s: %s failed: %s\n", kProgram, what.c_str(), errno_text(errno).c_str());
  std::exit(kExitSetup);
}

int trace_command(const Options& o) {
  std::string dir = o.tracefs;
  struct stat st{};
  if (stat((dir + "/trace").c_str(), &st) != 0 && dir == "/sys/kernel/tracing" &&
      mount("nodev", dir.c_str(), "tracefs", 0, nullptr) != 0)
    trace_failure("mount(tracefs, " + dir + ")");
  if (!o.trace_instance.empty()) {
    dir += "/instances/" + o.trace_instance;
    if (o.trace_command == "disarm") {
      write_file(dir + "/tracing_on", "0");
      write_file(dir + "/set_event", "");
      if (rmdir(dir.c_str()) != 0 && errno != ENOENT) trace_failure("rmdir(" + dir + ")");
      return kExitOk;
    }
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) trace_failure("mkdir(" + dir + ")");
  }
  if (o.trace_command == "disarm") {
    const auto colon = o.trace_restore.find(':');
    const std::string clock = o.trace_restore.substr(0, colon);
    const std::string kb = colon == std::string::npos ? "" : o.trace_restore.substr(colon + 1);
    int failures = 0;
    failures += !write_file(dir + "/set_event", "");
    if (!clock.empty()) failures += !write_file(dir + "/trace_clock", clock);
    if (!kb.empty()) failures += !write_file(dir + "/buffer_size_kb", kb);
    failures += !write_file(dir + "/tracing_on", "1");
    if (failures > 0) trace_failure("restoring ftrace in " + dir);
    return kExitOk;
  }
  // The previous clock is the bracketed one: "[local] global counter ...".
  std::string clocks = read_file(dir + "/trace_clock");
  std::string previous_clock = "local";
  if (auto a = clocks.find('['), b = clocks.find(']'); a != std::string::npos && b != std::string::npos && b > a)
    previous_clock = clocks.substr(a + 1, b - a - 1);
  std::string previous_kb = read_file(dir + "/buffer_size_kb");
  while (!previous_kb.empty() && (previous_kb.back() == '\n' || previous_kb.back() == ' ')) previous_kb.pop_back();
  if (previous_kb.find_first_not_of("0123456789") != std::string::npos) previous_kb = "1408";  // "7 (expanded: 1408)"
  if (!write_file(dir + "/tracing_on", "0")) trace_failure("write(" + dir + "/tracing_on)");
  if (!write_file(dir + "/trace_clock", "mono")) trace_failure("write(" + dir + "/trace_clock, mono)");
  if (!write_file(dir + "/buffer_size_kb", std::to_string(o.trace_buffer_kb))) trace_failure("write(buffer_size_kb)");
  if (!write_file(dir + "/set_event", "")) trace_failure("write(" + dir + "/set_event)");
  for (const std::string& e : o.trace_events) {
    const std::string spec = e.find(':') == std::string::npos ? e + ":*" : e;
    if (!write_file(dir + "/set_event", spec + "\n", /*append=*/true)) trace_failure("enabling event " + spec);
  }
  std::string pids;
  for (auto pid : o.trace_pids) pids += std::to_string(pid) + " ";
  if (!write_file(dir + "/set_event_pid", pids)) trace_failure("write(" + dir + "/set_event_pid)");
  if (!write_file(dir + "/trace", "")) trace_failure("clearing " + dir + "/trace");
  if (!write_file(dir + "/tracing_on", "1")) trace_failure("write(" + dir + "/tracing_on, 1)");
  std::printf("%s:%s\n", previous_clock.c_str(), previous_kb.c_str());
  return kExitOk;
}

int run(const Options& o) {
  if (!o.trace_command.empty()) return trace_command(o);
  Shared& sh = g_shared;

  // SIGINT/SIGTERM are only ever taken synchronously by the main thread
  // (sigwaitinfo), so they can never interrupt the measuring threads or the
  // writing of the result. SIGUSR1 is how the last worker wakes main up.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &signals, nullptr); rc != 0) setup_failure("pthread_sigmask", rc);

  int out_fd = STDOUT_FILENO;
  if (!o.output.empty()) {
    out_fd = open(o.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0) setup_failure("open(" + o.output + ")", errno);
  }

  std::vector<int> cpus = o.cpus;
  if (cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) setup_failure("sched_getaffinity", errno);
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(static_cast<std::size_t>(c), &set)) cpus.push_back(c);
    }
    if (cpus.empty()) {
      std::fprintf(stderr, "%s: the process's affinity mask is empty\n", kProgram);
      return kExitSetup;
    }
  }

  if (o.mlock && mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    setup_failure("mlockall(MCL_CURRENT|MCL_FUTURE)", errno,
                  "needs root or CAP_IPC_LOCK, or a larger RLIMIT_MEMLOCK (or pass --no-mlock)");
  }
  const int dma_fd = request_cpu_dma_latency(o.cpu_dma_latency_us, o.priority == 0);

  // All memory the measurement needs is allocated here, before the threads
  // start (and, with mlockall(MCL_FUTURE), locked as it is mapped).
  const std::size_t n = cpus.size();
  const int ring_size = o.window_ns > 0 ? kRingSize : 1;
  const std::size_t buffers = n * static_cast<std::size_t>(ring_size);
  std::vector<ThreadState> threads(n);
  std::vector<WindowBuffer> windows(buffers);
  std::vector<std::uint64_t> histograms(buffers * o.histogram_us);
  std::vector<SpikeRecord> spike_store(buffers * o.spikes + 1);
  for (std::size_t b = 0; b < buffers; ++b) {
    windows[b].histogram = histograms.data() + b * o.histogram_us;
    windows[b].spikes = spike_store.data() + b * o.spikes;
  }
  for (std::size_t i = 0; i < n; ++i) {
    threads[i].cpu = cpus[i];
    threads[i].ring = windows.data() + i * static_cast<std::size_t>(ring_size);
    threads[i].ring_size = ring_size;
    threads[i].ring[0].state.store(kBufFilling, std::memory_order_relaxed);
  }
  if (o.trace_above_ns > 0) {
    // Opened now, so that the spike path only writes. Without them the run
    // still measures; the result says which could not be opened.
    const std::string marker = o.tracefs + "/trace_marker";
    const std::string on = o.tracefs + "/tracing_on";
    sh.trace_marker_fd = open(marker.c_str(), O_WRONLY | O_CLOEXEC);
    if (sh.trace_marker_fd < 0)
      std::fprintf(stderr, "%s: warning: open(%s) failed: %s; no trace marker\n", kProgram, marker.c_str(),
                   errno_text(errno).c_str());
    sh.tracing_on_fd = open(on.c_str(), O_WRONLY | O_CLOEXEC);
    if (sh.tracing_on_fd < 0)
      std::fprintf(stderr, "%s: warning: open(%s) failed: %s; the trace is not stopped at the spike\n", kProgram,
                   on.c_str(), errno_text(errno).c_str());
  }

  sh.period_ns = o.period_ns;
  sh.duration_ns = o.duration_ns;
  sh.loops = o.loops;
  sh.window_ns = o.window_ns;
  sh.histogram_us = o.histogram_us;
  sh.spikes = o.spikes;
  sh.trace_above_ns = o.trace_above_ns;
  sh.policy = o.priority > 0 ? SCHED_FIFO : SCHED_OTHER;
  sh.priority = o.priority;
  sh.nthreads = static_cast<int>(n);
  sh.main_thread = pthread_self();

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (const int rc = pthread_attr_setstacksize(&attr, kThreadStackSize); rc != 0) {
    setup_failure("pthread_attr_setstacksize", rc);
  }
  std::vector<pthread_t> handles(n);
  std::size_t created = 0;
  int create_error = 0;
  for (; created < n; ++created) {
    const int rc = pthread_create(&handles[created], &attr, worker_main, &threads[created]);
    if (rc != 0) {
      create_error = rc;
      break;
    }
  }
  pthread_attr_destroy(&attr);
  sh.nthreads = static_cast<int>(created);

  // Wait until every created thread is pinned and scheduled, then release
  // them all at once (or abort them all if any failed).
  pthread_mutex_lock(&sh.mutex);
  while (sh.ready < static_cast<int>(created)) pthread_cond_wait(&sh.cond, &sh.mutex);
  bool failed = create_error != 0;
  for (std::size_t i = 0; i < created; ++i) failed = failed || threads[i].failed_call != nullptr;
  sh.abort = failed;
  const std::int64_t started_unix_ns = clock_ns(CLOCK_REALTIME);
  const std::int64_t started_mono_ns = clock_ns(CLOCK_MONOTONIC);
  // Streaming: the first activation of every thread, a little ahead so that
  // all have left the start gate by then.
  sh.first_activation_ns = started_mono_ns + kStreamLeadNs;
  sh.go = true;
  pthread_cond_broadcast(&sh.cond);
  pthread_mutex_unlock(&sh.mutex);

  bool interrupted = false;
  bool stream_failed = false;
  if (!failed && created > 0 && o.window_ns > 0) {
    WindowStreamer streamer(o, threads, out_fd, o.mlock);
    for (;;) {
      const timespec poll_every = from_ns(kStreamPollNs);
      siginfo_t info{};
      const int sig = sigtimedwait(&signals, &info, &poll_every);
      if ((sig == SIGINT || sig == SIGTERM) && !interrupted) {
        interrupted = true;
        std::fprintf(stderr, "%s: %s received, stopping after the next wake-up\n", kProgram,
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        sh.stop.store(true);
      }
      const bool all_done = sh.finished.load() == static_cast<int>(created);
      if (!streamer.emit(all_done, interrupted)) {
        stream_failed = true;
        sh.stop.store(true);
        break;
      }
      if (all_done) break;
    }
  } else if (!failed && created > 0) {
    for (;;) {
      siginfo_t info{};
      const int sig = sigwaitinfo(&signals, &info);
      if (sig < 0) continue;  // EINTR (e.g. after SIGSTOP/SIGCONT)
      if (sig == SIGUSR1) {
        if (sh.finished.load() == static_cast<int>(created)) break;
        continue;  // a stray SIGUSR1 from outside
      }
      interrupted = true;  // SIGINT or SIGTERM
      std::fprintf(stderr, "%s: %s received, stopping after the next wake-up\n", kProgram,
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
      sh.stop.store(true);
      break;
    }
  }
  for (std::size_t i = 0; i < created; ++i) pthread_join(handles[i], nullptr);
  if (dma_fd >= 0) close(dma_fd);

  if (failed) {
    if (create_error != 0) {
      std::fprintf(stderr, "%s: pthread_create for cpu %d failed: %s\n", kProgram, threads[created].cpu,
                   errno_text(create_error).c_str());
    }
    for (std::size_t i = 0; i < created; ++i) {
      const ThreadState& st = threads[i];
      if (st.failed_call == nullptr) continue;
      if (std::strcmp(st.failed_call, "pthread_setschedparam") == 0) {
        std::fprintf(stderr, "%s: pthread_setschedparam(%s, priority %d) for cpu %d failed: %s%s\n", kProgram,
                     o.priority > 0 ? "SCHED_FIFO" : "SCHED_OTHER", o.priority, st.cpu,
                     errno_text(st.failed_errno).c_str(),
                     st.failed_errno == EPERM ? "; needs root or CAP_SYS_NICE (or use --priority 0)" : "");
      } else {
        std::fprintf(stderr, "%s: %s(cpu %d) failed: %s%s\n", kProgram, st.failed_call, st.cpu,
                     errno_text(st.failed_errno).c_str(),
                     st.failed_errno == EINVAL ? "; is the CPU online and in the process's affinity mask?" : "");
      }
    }
    return kExitSetup;
  }

  if (stream_failed) return kExitFailure;
  for (const ThreadState& st : threads) {
    if (st.runtime_failure) {
      std::fprintf(stderr, "%s: %s on cpu %d failed: %s\n", kProgram, st.failed_call, st.cpu,
                   errno_text(st.failed_errno).c_str());
      return kExitFailure;
    }
  }

  if (o.window_ns > 0) {
    if (out_fd != STDOUT_FILENO && close(out_fd) != 0) {
      std::fprintf(stderr, "%s: closing %s failed: %s\n", kProgram, o.output.c_str(), errno_text(errno).c_str());
      return kExitFailure;
    }
    return interrupted ? kExitInterrupted : kExitOk;
  }
  std::int64_t end_mono_ns = started_mono_ns;
  for (const ThreadState& st : threads) {
    if (st.end_mono_ns > end_mono_ns) end_mono_ns = st.end_mono_ns;
  }
  const std::string json = result_json(o, threads, o.mlock, interrupted, started_unix_ns, end_mono_ns - started_mono_ns);
  std::string frame;
  try {
    frame = vmlat::frame::encode(kFrameKind, json);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: cannot encode the result: %s\n", kProgram, e.what());
    return kExitFailure;
  }
  if (!write_all(out_fd, frame)) {
    std::fprintf(stderr, "%s: writing the result to %s failed: %s\n", kProgram,
                 o.output.empty() ? "standard output" : o.output.c_str(), errno_text(errno).c_str());
    return kExitFailure;
  }
  if (out_fd != STDOUT_FILENO && close(out_fd) != 0) {
    std::fprintf(stderr, "%s: closing %s failed: %s\n", kProgram, o.output.c_str(), errno_text(errno).c_str());
    return kExitFailure;
  }
  return interrupted ? kExitInterrupted : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // A closed pipe must surface as a write error, not kill us silently.
  signal(SIGPIPE, SIG_IGN);
  const Options o = parse_options(argc, argv);
  return run(o);
}
