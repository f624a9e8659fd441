// Unit tests of the latency decomposition (core/src/report/decompose.cpp,
// docs/decomposition.md) on synthetic period sweeps with a known offset, and
// of the report's traces (core/src/report/traces.cpp): safe links, the
// parsing of a real host-side trace excerpt, the time line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>

#include "decompose.hpp"
#include "model.hpp"
#include "report.hpp"
#include "run_store.hpp"
#include "traces.hpp"
#include "vmlat/histogram.hpp"

using namespace vmlat;
using namespace vmlat::report;
using RunView = vmlat::report::Run;
using std::chrono::nanoseconds;

// Cells below are written {id, period, latency[, irq[, backend]]}.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
namespace fs = std::filesystem;

namespace {

// `n` samples of a plausible latency: a 2us floor, an exponential body
// (mean 4us), 0.5% preempted by something of 50..400us; plus `offset_ns`.
// Each period draws its own samples (its own seed, its own count).
Histogram sampled(std::uint64_t seed, std::size_t n, long long offset_ns, double tail = 0.005) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> body(1.0 / 4000.0);
  std::uniform_real_distribution<double> u(0, 1), spike(50000, 400000);
  Histogram h;
  long long lo = -1, hi = 0, sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    long long ns = 2000 + static_cast<long long>(body(rng)) + offset_ns;
    if (u(rng) < tail) ns += static_cast<long long>(spike(rng));
    h.add(nanoseconds(ns));
    lo = lo < 0 ? ns : std::min(lo, ns);
    hi = std::max(hi, ns);
    sum += ns;
  }
  h.set_exact(nanoseconds(lo), nanoseconds(hi), nanoseconds(sum));
  return h;
}

json series_doc(const Histogram& h) { return json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}}; }

struct SweepCell {
  std::string id, period;
  Histogram latency;
  std::optional<Histogram> irq;
  std::string backend = "host";
};

StoredRun sweep_run(const std::vector<SweepCell>& cells) {
  StoredRun s;
  s.dir = "/nonexistent/run";
  json list = json::array();
  for (const auto& c : cells) {
    json axes{{"backend", c.backend}, {"workload", "none"}, {"probe", "p"}, {"period", c.period}};
    list.push_back(json{{"id", c.id}, {"axes", axes}, {"status", "measured"}, {"dir", "cells/" + c.id}});
    json r{{"schema", "vmlat-cell-result/1"}, {"cell", {{"id", c.id}, {"axes", axes}}}, {"status", "measured"},
           {"merged", series_doc(c.latency)}, {"per_cpu", {{"0", series_doc(c.latency)}}}, {"series", json::object()}};
    if (c.irq) {
      r["default_series"] = "thread";
      r["series"]["irq"] = json{{"merged", series_doc(*c.irq)}, {"per_cpu", {{"0", series_doc(*c.irq)}}}};
    }
    s.cells.push_back(r);
  }
  s.run = json{{"schema", "vmlat-run/1"}, {"run_id", "r"}, {"plan", {{"name", "sweep"}}}, {"status", "complete"},
               {"hosts", json::object()}, {"cells", list}};
  return s;
}

void expect_parts_add_up(const PointDecomposition& d) {
  for (const auto& b : d.stats) {
    SCOPED_TRACE(b.stat);
    EXPECT_GE(b.timer_ns, 0);
    EXPECT_GE(b.np_ns, 0);
    EXPECT_EQ(b.timer_ns + b.np_ns, b.total_ns);
    if (b.irq_np_ns) {
      EXPECT_EQ(*b.irq_np_ns + *b.thread_np_ns, b.np_ns);
    }
  }
}

// The acceptance test of issue 11: a period sweep whose short period carries
// a known timer offset (a slop such as Xen's) gives that offset back within
// one 1 us bucket, and none for the periods it does not touch, although every
// period has its own samples, sample count and tail.
TEST(Decompose, PeriodSweepRecoversAKnownOffsetWithinOneBucket) {
  for (long long offset : {0LL, 12'700LL, 37'400LL, 100'000LL}) {
    SCOPED_TRACE("offset " + std::to_string(offset) + " ns");
    StoredRun stored = sweep_run({
        {"host-50us", "50us", sampled(1 + offset, 40000, offset)},
        {"host-500us", "500us", sampled(2 + offset, 4000, 0, 0.02)},  // a heavier tail: the load, not the timer
        {"host-1ms", "1ms", sampled(3 + offset, 2000, 0)},
    });
    RunView run = make_run(stored);
    auto groups = decompose_run(run);
    ASSERT_EQ(groups.size(), 1u);
    const auto& g = groups[0];
    EXPECT_EQ(g.backend, "host");
    EXPECT_EQ(g.reference_period, "1ms");
    ASSERT_EQ(g.cells.size(), 3u);
    EXPECT_EQ(g.cells[0].period, "50us");  // shortest first
    ASSERT_TRUE(g.cells[0].d.offset_ns);
    EXPECT_NEAR(static_cast<double>(*g.cells[0].d.offset_ns), static_cast<double>(offset), 1000.0);
    EXPECT_NEAR(static_cast<double>(*g.cells[1].d.offset_ns), 0.0, 1000.0);
    EXPECT_EQ(*g.cells[2].d.offset_ns, 0);
    EXPECT_EQ(g.cells[0].d.timer_source, "period sweep");
    EXPECT_EQ(g.cells[2].d.timer_source, "period sweep reference");
    for (const auto& c : g.cells) {
      expect_parts_add_up(c.d);
      EXPECT_EQ(c.d.stats[0].timer_ns, std::min(std::max(0LL, *c.d.offset_ns), c.d.stats[0].total_ns));
      // The totals are the report's own statistics.
      const json& stats = run.cells[static_cast<std::size_t>(c.cell)].series[0].merged->at("stats");
      EXPECT_EQ(c.d.stats[0].total_ns, stats["p50_ns"].get<long long>());
      EXPECT_EQ(c.d.stats[1].total_ns, stats["p99_ns"].get<long long>());
      EXPECT_EQ(c.d.stats[2].total_ns, stats["max_ns"].get<long long>());
    }
  }
}

TEST(Decompose, ShiftIgnoresTheTailAndQuantilesMatchTheStoredPercentiles) {
  Histogram a = sampled(7, 20000, 0, 0.0), b = sampled(8, 20000, 0, 0.2);  // 20% of b preempted
  auto da = decode_histogram(a.to_json()), db = decode_histogram(b.to_json());
  ASSERT_TRUE(da && db);
  EXPECT_LE(std::abs(shift_ns(*db, *da)), 1000);
  for (double q : {0.5, 0.9, 0.99, 0.999})
    EXPECT_EQ(quantile_ns(*db, q), b.percentile(q).count()) << q;
}

TEST(Decompose, NothingToEstimateFromASinglePeriodWithoutIrq) {
  StoredRun stored = sweep_run({{"host-1ms", "1ms", sampled(1, 1000, 0)}});
  RunView run = make_run(stored);
  EXPECT_TRUE(decompose_run(run).empty());
  // Two backends at one period each: still no sweep.
  StoredRun two = sweep_run({{"a-1ms", "1ms", sampled(1, 1000, 0), {}, "a"}, {"b-1ms", "1ms", sampled(2, 1000, 0), {}, "b"}});
  RunView run2 = make_run(two);
  EXPECT_TRUE(decompose_run(run2).empty());
}

// timerlat: the timer part is the median IRQ latency; the rest splits at the
// IRQ latency of the same statistic.
TEST(Decompose, TimerlatSplitsAtTheIrqLatency) {
  Histogram irq = sampled(11, 5000, 3000, 0.0);   // ~5..9us
  Histogram thread = sampled(12, 5000, 9000, 0.01);  // later than the IRQ
  StoredRun stored = sweep_run({{"host-1ms-timerlat", "1ms", thread, irq}});
  RunView run = make_run(stored);
  auto groups = decompose_run(run);
  ASSERT_EQ(groups.size(), 1u);
  ASSERT_EQ(groups[0].cells.size(), 1u);
  const auto& d = groups[0].cells[0].d;
  EXPECT_EQ(d.timer_source, "timerlat irq p50");
  EXPECT_FALSE(d.offset_ns);
  ASSERT_TRUE(d.irq_p50_ns);
  EXPECT_EQ(*d.irq_p50_ns, irq.percentile(0.5).count());
  expect_parts_add_up(d);
  const Breakdown& max = d.stats[2];
  EXPECT_EQ(max.timer_ns, *d.irq_p50_ns);
  EXPECT_EQ(*max.irq_np_ns, irq.max().count() - *d.irq_p50_ns);
  EXPECT_EQ(*max.thread_np_ns, thread.max().count() - irq.max().count());
}

TEST(Decompose, ReportShowsTheBreakdownInEveryFormat) {
  StoredRun stored = sweep_run({{"host-50us", "50us", sampled(1, 4000, 37'400)},
                                {"host-1ms", "1ms", sampled(2, 2000, 0)},
                                {"kvm-1ms", "1ms", sampled(3, 2000, 0), sampled(4, 2000, 0, 0), "kvm"}});
  RunView run = make_run(stored);
  ReportInput in;
  in.run = &run;
  std::string html = render_html(in);
  EXPECT_NE(html.find("<section id=\"decomposition\">"), std::string::npos);
  EXPECT_NE(html.find("class=\"plot breakdown\" data-backend=\"host\""), std::string::npos);
  EXPECT_NE(html.find("class=\"plot breakdown\" data-backend=\"kvm\""), std::string::npos);
  // One timer segment per cell and statistic, its value the decomposition's.
  std::regex timer_rect("<rect class=\"part timer\" data-cell-id=\"host-50us\" data-stat=\"max\" data-ns=\"([0-9]+)\"");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, timer_rect));
  EXPECT_NEAR(std::stod(m[1]), 37400.0, 1000.0);
  EXPECT_NE(html.find("<rect class=\"part irq\" data-cell-id=\"kvm-1ms\""), std::string::npos);
  std::string md = render_markdown(in);
  EXPECT_NE(md.find("### Latency decomposition"), std::string::npos);
  EXPECT_NE(md.find("| 50us | period sweep |"), std::string::npos) << md;
  json j = render_json(in);
  ASSERT_EQ(j["decomposition"].size(), 2u);
  EXPECT_EQ(j["decomposition"][0]["reference_period"], "1ms");
  EXPECT_EQ(j["decomposition"][0]["cells"][0]["cell"], "host-50us");
  EXPECT_NEAR(j["decomposition"][0]["cells"][0]["offset_ns"].get<double>(), 37400.0, 1000.0);
  EXPECT_EQ(j["decomposition"][1]["cells"][0]["timer_source"], "timerlat irq p50");
}

// --- traces ---

fs::path testdata(const std::string& name) { return fs::path(VMLAT_SOURCE_DIR) / "tests/report/testdata" / name; }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Traces, ParsesARealHostTraceExcerpt) {
  // Saved by plugins/cyclic/tracing.cpp for a TCG guest's spike on this machine.
  auto t = parse_host_trace(read_file(testdata("host-trace-tcg.txt")));
  ASSERT_TRUE(t.mapped);
  EXPECT_DOUBLE_EQ(t.guest_mono_s, 3.829773);
  EXPECT_DOUBLE_EQ(t.host_mono_s, 7852.385605);
  EXPECT_DOUBLE_EQ(t.uncertainty_s, 0.006208);
  EXPECT_DOUBLE_EQ(t.from_s, 7852.359397);
  EXPECT_DOUBLE_EQ(t.to_s, 7852.396814);
  EXPECT_EQ(t.events.size(), 321u);  // the header's count
  const auto& e = t.events.front();
  EXPECT_EQ(e.comm, "CPU 0/TCG");  // a name with a space and a '/'
  EXPECT_EQ(e.pid, 25749);
  EXPECT_EQ(e.cpu, 1);
  EXPECT_EQ(e.event, "sched_switch");
  EXPECT_DOUBLE_EQ(e.t_s, 7852.360034);
  for (const auto& ev : t.events) {
    EXPECT_GE(ev.t_s, t.from_s);
    EXPECT_LE(ev.t_s, t.to_s);
  }
  EXPECT_FALSE(parse_trace_line("# tracer: nop"));
  EXPECT_FALSE(parse_trace_line("CPU:1 [LOST 12 EVENTS]"));
}

TEST(Traces, TimelinePutsTheSpikeAboveTheVcpuThreads) {
  auto t = parse_host_trace(read_file(testdata("host-trace-tcg.txt")));
  TimelineSpike spike{7852385605000, 200490, 6208000, 0};
  std::string svg = timeline_svg(t, spike, {25749, 25750}, "class=\"plot timeline\"");
  EXPECT_NE(svg.find("data-events=\"321\""), std::string::npos);
  EXPECT_NE(svg.find("<rect class=\"spike\" data-host-ns=\"7852385605000\" data-latency-ns=\"200490\""), std::string::npos);
  EXPECT_NE(svg.find(">host: CPU 0/TCG 25749</text>"), std::string::npos);
  EXPECT_NE(svg.find(">host: CPU 1/TCG 25750</text>"), std::string::npos);
  EXPECT_NE(svg.find("<rect class=\"running\" data-tid=\"25749\""), std::string::npos);
  EXPECT_NE(svg.find("<rect class=\"running\" data-tid=\"25750\""), std::string::npos);
  EXPECT_NE(svg.find("class=\"ev ev-wakeup\""), std::string::npos);
  // Running bars lie inside the plot (x from 170 to 940).
  std::regex bar("<rect class=\"running\" data-tid=\"[0-9]+\" x=\"([0-9.]+)\" y=\"[0-9.]+\" width=\"([0-9.]+)\"");
  int bars = 0;
  for (std::sregex_iterator it(svg.begin(), svg.end(), bar), end; it != end; ++it, ++bars) {
    double x = std::stod((*it)[1]), w = std::stod((*it)[2]);
    EXPECT_GE(x, 170.0);
    EXPECT_LE(x + w, 940.5);
  }
  EXPECT_GT(bars, 10);
}

class TraceLinks : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vmlat-traces-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "run" / "cells" / "c1");
    fs::create_directories(dir_ / "outside");
    std::ofstream(dir_ / "outside" / "secret.txt") << "secret";
    // The guest's trace and the host's excerpt of one real TCG spike (the guest's end cut to its last 30 ms).
    fs::copy_file(testdata("guest-trace-tcg.txt"), dir_ / "run" / "cells" / "c1" / "trace.txt");
    fs::copy_file(testdata("host-trace-tcg.txt"), dir_ / "run" / "cells" / "c1" / "host-trace.txt");
    fs::create_symlink(dir_ / "outside" / "secret.txt", dir_ / "run" / "cells" / "c1" / "link.txt");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TraceLinks, LinksStayInsideTheRunDirectoryAndHostileNamesAreText) {
  const std::string markup = "<img src=x onerror=alert(1)>";
  json result{{"schema", "vmlat-cell-result/1"}, {"cell", {{"id", "c1"}, {"axes", json::object()}}}, {"status", "measured"},
              {"traces", {"trace.txt", "host-trace.txt", "../../outside/secret.txt", "link.txt", ".hidden", markup, "missing.txt"}},
              {"spikes", {{{"cpu", 0}, {"latency_ns", 10190160}, {"monotonic_ns", 4429762590LL}, {"realtime_ns", 1796124633877408030LL}},
                          {{"cpu", 1}, {"latency_ns", 9993670}, {"monotonic_ns", 4429942710LL}, {"realtime_ns", nullptr}}}},
              {"facts", {{"probe", {{"trace", {{"fired", {{"cpu", 0}, {"latency_ns", 200490}, {"monotonic_ns", 3829772920LL}}},
                                               {"host", {{"threads", {25749, 25750}}, {"clock_uncertainty_ns", 6208000}, {"clock_offset_ns", 7848555832239LL},
                                                         {"spike_host_monotonic_ns", 7852385605000LL}}}}}}}}}};
  std::ofstream(dir_ / "run" / "cells" / "c1" / "result.json") << result.dump();
  std::ofstream(dir_ / "run" / "run.json")
      << json{{"schema", "vmlat-run/1"}, {"run_id", "r"}, {"status", "complete"},
              {"cells", {{{"id", "c1"}, {"status", "measured"}, {"dir", "cells/c1"}}}}}.dump();
  StoredRun stored = load_run_dir((dir_ / "run").string());
  RunView run = make_run(stored);
  ASSERT_EQ(run.cells.size(), 1u);
  const vmlat::report::Cell& c = run.cells[0];
  EXPECT_EQ(artifact_link(run, c, "trace.txt"), "cells/c1/trace.txt");
  EXPECT_FALSE(artifact_link(run, c, "../../outside/secret.txt"));
  EXPECT_FALSE(artifact_link(run, c, "link.txt"));  // a symbolic link out of the run
  EXPECT_FALSE(artifact_link(run, c, ".hidden"));
  EXPECT_FALSE(artifact_link(run, c, markup));
  EXPECT_FALSE(artifact_link(run, c, "missing.txt"));

  std::string html = cell_traces_html(run, c, true);
  std::regex href("href=\"([^\"]*)\"");
  std::set<std::string> links;
  for (std::sregex_iterator it(html.begin(), html.end(), href), end; it != end; ++it) links.insert((*it)[1]);
  EXPECT_EQ(links, (std::set<std::string>{"cells/c1/trace.txt", "cells/c1/host-trace.txt"}));
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_NE(html.find("<tr class=\"spike\" data-ns=\"10190160\" data-cpu=\"0\">"), std::string::npos);
  EXPECT_NE(html.find("2026-12-01T"), std::string::npos);  // CLOCK_REALTIME as UTC
  EXPECT_NE(html.find("class=\"plot timeline\" data-cell-id=\"c1\""), std::string::npos);
  EXPECT_NE(html.find("data-events=\"321\""), std::string::npos);
  // The guest's own events on the same time line, its spike marker among them
  // (written 590us after the wake-up: inside the window).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, std::regex("data-guest-events=\"([0-9]+)\"")));
  EXPECT_GT(std::stoi(m[1]), 100);
  EXPECT_NE(html.find(">guest CPU 0 trace</text>"), std::string::npos);
  EXPECT_NE(html.find("<line class=\"ev guest ev-marker\""), std::string::npos);
  EXPECT_NE(html.find("vmlat-probe spike: cpu=0 latency_ns=200490"), std::string::npos);

  ReportInput in;
  in.run = &run;
  json j = render_json(in);
  EXPECT_EQ(j["cells"][0]["traces"][0], (json{{"name", "trace.txt"}, {"path", "cells/c1/trace.txt"}}));
  EXPECT_EQ(j["cells"][0]["traces"][2], (json{{"name", "../../outside/secret.txt"}, {"path", nullptr}}));
  EXPECT_EQ(j["cells"][0]["spikes"], result["spikes"]);

  // Written outside the run directory: named, not linked.
  std::string elsewhere = cell_traces_html(run, c, false);
  EXPECT_EQ(elsewhere.find("href="), std::string::npos);
  EXPECT_NE(elsewhere.find("trace.txt"), std::string::npos);
}

}  // namespace
