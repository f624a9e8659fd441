// Unit tests of the latency decomposition (core/src/report/decompose.cpp,
// docs/decomposition.md) on period sweeps simulated from the timer-slop
// mechanism with noise drawn from real histograms, and of the report's
// traces (core/src/report/traces.cpp): safe links, the parsing of a real
// host-side trace excerpt, the time line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
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

// Cells below are written {id, period, latency[, irq[, backend[, workload]]]}.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `n` samples of a plausible latency: a 2us floor, an exponential body
// (mean 4us), 0.5% preempted by something of 50..400us; plus `offset_ns`.
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

// --- the timer-slop mechanism, simulated ---

// The latency a wake-up has once its timer interrupt is raised (L_np + I),
// drawn from a real histogram: a bucket by its count, uniform within it.
class RealNoise {
 public:
  explicit RealNoise(const json& buckets) {
    for (auto it = buckets.begin(); it != buckets.end(); ++it) {
      // cyclictest's {"us": count} or results-format's [[us, count], ...]
      const auto [us, count] = buckets.is_object() ? std::pair{std::stoll(it.key()), it.value().get<double>()}
                                                   : std::pair{(*it)[0].get<long long>(), (*it)[1].get<double>()};
      us_.push_back(us);
      weights_.push_back(count);
    }
  }
  long long draw(std::mt19937_64& rng) {
    std::discrete_distribution<std::size_t> bucket(weights_.begin(), weights_.end());
    return us_[bucket(rng)] * 1000 + std::uniform_int_distribution<long long>(0, 999)(rng);
  }

 private:
  std::vector<long long> us_;
  std::vector<double> weights_;
};

fs::path source(const std::string& path) { return fs::path(VMLAT_SOURCE_DIR) / path; }

// cyclictest 2.40 on the development VM (no stress, 500us, 2000 wake-ups):
// a 12-14us body, a tail to 122us.
RealNoise quiet_noise() {
  return RealNoise(json::parse(read_file(source("plugins/cyclic/testdata/ct-1cpu-500us-h20000.json")))["thread"]["0"]["histogram"]);
}
// The same machine under the kernel_stress workload (cyclictest, 1ms, 3990
// wake-ups): a wider body and a tail to 7.4ms.
RealNoise stress_noise() {
  return RealNoise(json::parse(read_file(source("tests/integration/data/run/cells/host-kernel_stress-cyclictest-1ms/result.json")))
                       ["merged"]["histogram"]["buckets"]);
}

struct Simulated {
  Histogram latency;
  std::vector<long long> timer_ns;  // each wake-up's true timer part, sorted
  // The true timer part at a statistic: its own quantile (nearest rank), as
  // the decomposition defines the parts of p50, p99 and max.
  long long truth(double q) const {
    auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(timer_ns.size()) - 1e-9));
    return timer_ns[std::clamp<std::size_t>(rank, 1, timer_ns.size()) - 1];
  }
};

constexpr long long kRearmNs = 1000;  // the probe's time from its wake-up to the next clock_nanosleep

// A periodic task as vmlat-probe and cyclictest run it: absolute expiries
// t_k = kP; after a wake-up the next expiry is the first t_k after it (the
// missed ones skipped); the task re-arms kRearmNs after it woke, and the timer
// cannot fire sooner than `slop_ns` after that; then the noise. vmlat-probe
// counts the skipped periods, cyclictest does not.
Simulated simulate(long long slop_ns, long long period_ns, long long duration_ns, RealNoise& noise, std::uint64_t seed,
                   bool count_missed) {
  std::mt19937_64 rng(seed);
  Simulated out;
  long long next = period_ns, armed = kRearmNs, missed = 0, lo = -1, hi = 0, sum = 0;
  while (next <= duration_ns) {
    const long long fired = std::max(next, armed + slop_ns);
    const long long woke = fired + noise.draw(rng);
    const long long latency = woke - next;
    out.latency.add(nanoseconds(latency));
    out.timer_ns.push_back(fired - next);
    lo = lo < 0 ? latency : std::min(lo, latency);
    hi = std::max(hi, latency);
    sum += latency;
    next += period_ns;
    if (next <= woke) {
      const long long skip = (woke - next) / period_ns + 1;
      next += skip * period_ns;
      missed += skip;
    }
    armed = woke + kRearmNs;
  }
  out.latency.set_exact(nanoseconds(lo), nanoseconds(hi), nanoseconds(sum));
  if (count_missed) out.latency.add_missed_periods(static_cast<std::uint64_t>(missed));
  std::sort(out.timer_ns.begin(), out.timer_ns.end());
  return out;
}

std::string period_text(long long ns) { return ns % 1'000'000 == 0 ? std::to_string(ns / 1'000'000) + "ms" : std::to_string(ns / 1000) + "us"; }

json series_doc(const Histogram& h) { return json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}}; }

struct SweepCell {
  std::string id, period;
  Histogram latency;
  std::optional<Histogram> irq;
  std::string backend = "host";
  std::string workload = "none";
};

StoredRun sweep_run(const std::vector<SweepCell>& cells) {
  StoredRun s;
  s.dir = "/nonexistent/run";
  json list = json::array();
  for (const auto& c : cells) {
    json axes{{"backend", c.backend}, {"workload", c.workload}, {"probe", "p"}, {"period", c.period}};
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

// Within 10% of the truth, or within one 1 us bucket where that is wider.
void expect_timer_part(long long got, long long truth, const char* stat) {
  EXPECT_NEAR(static_cast<double>(got), static_cast<double>(truth), std::max(1000.0, 0.10 * static_cast<double>(truth)))
      << stat << ": timer part " << got << " ns, simulated " << truth << " ns";
}

struct SweepCase {
  long long slop_us;
  std::vector<long long> periods_us;
  bool native;  // vmlat-probe counts missed periods, cyclictest does not
};

// The acceptance test of issue 19: on sweeps simulated from the mechanism
// (several S and P, real noise), S comes back within 15% and the timer part
// of every cell at max (and p99, p50) within 10% of the simulated truth. The
// estimate is sigma = S + the re-arm time (1 us here), which is what the
// wake-ups show; the interval holds it.
TEST(Decompose, SlopRecoveredFromSimulatedSweeps) {
  RealNoise noise = quiet_noise();
  const std::vector<SweepCase> cases = {
      {100, {50, 500, 1000}, true},    {100, {50, 500, 1000}, false}, {200, {50, 500, 1000}, true},
      {30, {20, 50, 500, 1000}, true}, {60, {20, 50, 500, 1000}, false}, {45, {50, 500, 1000}, true},
      {600, {500, 1000, 2000}, true},  {400, {50, 500, 1000}, false},
  };
  std::printf("%8s %-22s %-10s %12s %24s %10s %10s\n", "S", "periods", "engine", "estimated", "interval", "P", "max: got/truth");
  for (const auto& k : cases) {
    const long long slop = k.slop_us * 1000;
    std::string periods;
    for (auto p : k.periods_us) periods += (periods.empty() ? "" : ",") + std::to_string(p);
    SCOPED_TRACE("S " + std::to_string(k.slop_us) + "us, periods " + periods + (k.native ? " native" : " cyclictest"));
    std::vector<SweepCell> cells;
    std::vector<Simulated> sims;
    for (long long p : k.periods_us) {
      sims.push_back(simulate(slop, p * 1000, 3'000'000'000LL, noise, static_cast<std::uint64_t>(p * 7919 + k.slop_us * 2 + k.native), k.native));
      cells.push_back({"host-" + period_text(p * 1000), period_text(p * 1000), sims.back().latency});
    }
    StoredRun stored = sweep_run(cells);
    RunView run = make_run(stored);
    auto groups = decompose_run(run);
    ASSERT_EQ(groups.size(), 1u);
    const auto& g = groups[0];
    ASSERT_TRUE(g.slop);
    const SlopEstimate& e = *g.slop;
    EXPECT_TRUE(e.seen);
    EXPECT_NEAR(static_cast<double>(e.slop_ns), static_cast<double>(slop), 0.15 * static_cast<double>(slop));
    EXPECT_LE(e.low_ns, slop + kRearmNs);
    EXPECT_GE(e.high_ns, slop + kRearmNs);
    EXPECT_FALSE(e.reference_in_reach);
    // The floor lift (and, from vmlat-probe, the missed periods) of every
    // period the slop lifts whole give it again.
    std::size_t lifted = 0;
    for (long long p : k.periods_us) lifted += p * 1000 <= slop && p != k.periods_us.back();
    ASSERT_EQ(e.in_reach.size(), lifted);
    for (const auto& r : e.in_reach) {
      EXPECT_NEAR(static_cast<double>(r.floor_ns), static_cast<double>(slop), 0.15 * static_cast<double>(slop));
      EXPECT_EQ(r.missed_ns.has_value(), k.native);
      if (r.missed_ns) {
        EXPECT_NEAR(static_cast<double>(*r.missed_ns), static_cast<double>(slop + kRearmNs), 0.05 * static_cast<double>(slop));
      }
    }
    ASSERT_EQ(g.cells.size(), k.periods_us.size());
    for (std::size_t i = 0; i < g.cells.size(); ++i) {
      const auto& d = g.cells[i].d;
      SCOPED_TRACE("period " + g.cells[i].period);
      EXPECT_EQ(d.timer_source, "slop model");
      expect_parts_add_up(d);
      expect_timer_part(d.stats[0].timer_ns, sims[i].truth(0.50), "p50");
      expect_timer_part(d.stats[1].timer_ns, sims[i].truth(0.99), "p99");
      expect_timer_part(d.stats[2].timer_ns, sims[i].truth(1.0), "max");
      std::printf("%6lldus %-22s %-10s %10.1fus %10.1fus..%8.1fus %8lldus %8.1fus/%.1fus\n", k.slop_us, periods.c_str(),
                  k.native ? "native" : "cyclictest", static_cast<double>(e.slop_ns) / 1000, static_cast<double>(e.low_ns) / 1000,
                  static_cast<double>(e.high_ns) / 1000, d.period_ns / 1000, static_cast<double>(d.stats[2].timer_ns) / 1000,
                  static_cast<double>(sims[i].truth(1.0)) / 1000);
    }
  }
}

// No slop, or one the sweep cannot see (no period below it, and a noise that
// rarely reaches P - S): "not seen", 0, and an interval that says how large
// a slop could hide. The body of every cell is untouched then (the true
// median timer part is 0); what such a slop adds after the rare long wake-up
// is not recovered (docs/decomposition.md, "Where it breaks").
TEST(Decompose, ASlopTheSweepCannotSeeIsBoundedNotInvented) {
  RealNoise noise = quiet_noise();
  for (const auto& k : std::vector<SweepCase>{{0, {20, 50, 500, 1000}, true}, {0, {50, 500, 1000}, false}, {30, {50, 500, 1000}, true}}) {
    SCOPED_TRACE("S " + std::to_string(k.slop_us) + "us");
    std::vector<SweepCell> cells;
    std::vector<Simulated> sims;
    for (long long p : k.periods_us) {
      sims.push_back(simulate(k.slop_us * 1000, p * 1000, 2'000'000'000LL, noise, static_cast<std::uint64_t>(p + 17 * k.slop_us), k.native));
      cells.push_back({"host-" + period_text(p * 1000), period_text(p * 1000), sims.back().latency});
    }
    StoredRun stored = sweep_run(cells);
    RunView run = make_run(stored);
    auto groups = decompose_run(run);
    ASSERT_EQ(groups.size(), 1u);
    ASSERT_TRUE(groups[0].slop);
    const SlopEstimate& e = *groups[0].slop;
    EXPECT_FALSE(e.seen);
    EXPECT_EQ(e.slop_ns, 0);
    EXPECT_EQ(e.low_ns, 0);
    EXPECT_TRUE(e.in_reach.empty());
    EXPECT_GE(e.high_ns, k.slop_us * 1000 + kRearmNs);  // the interval holds the truth
    EXPECT_LT(e.high_ns, k.periods_us.front() * 1000);  // and is no wider than the shortest period
    EXPECT_NE(slop_text(groups[0]).find("no timer slop seen"), std::string::npos);
    for (std::size_t i = 0; i < groups[0].cells.size(); ++i) {
      const auto& d = groups[0].cells[i].d;
      SCOPED_TRACE(groups[0].cells[i].period);
      expect_parts_add_up(d);
      EXPECT_EQ(sims[i].truth(0.5), 0);
      for (const auto& b : d.stats) EXPECT_EQ(b.timer_ns, 0) << b.stat;
    }
  }
}

// The case: the median of the timer part is S - P/2, but at p99 and
// max it is close to S, not the median again; a pure shift would book 75us
// at every statistic.
TEST(Decompose, TheTimerPartFollowsTheModelToTheTail) {
  RealNoise noise = quiet_noise();
  Simulated s50 = simulate(100'000, 50'000, 3'000'000'000LL, noise, 1, true);
  Simulated s500 = simulate(100'000, 500'000, 3'000'000'000LL, noise, 2, true);
  Simulated s1m = simulate(100'000, 1'000'000, 3'000'000'000LL, noise, 3, true);
  StoredRun stored = sweep_run({{"host-50us", "50us", s50.latency}, {"host-500us", "500us", s500.latency}, {"host-1ms", "1ms", s1m.latency}});
  RunView run = make_run(stored);
  auto groups = decompose_run(run);
  ASSERT_EQ(groups.size(), 1u);
  const auto& d = groups[0].cells[0].d;
  ASSERT_EQ(groups[0].cells[0].period, "50us");
  EXPECT_NEAR(static_cast<double>(d.stats[0].timer_ns), 76'000.0, 1500.0);  // S + 1us - P/2
  EXPECT_GT(d.stats[1].timer_ns, 99'000);
  EXPECT_GT(d.stats[2].timer_ns, 99'500);
  EXPECT_LE(d.stats[2].timer_ns, groups[0].slop->slop_ns);
  // The descriptive median shift stays what it was: near S - P/2.
  ASSERT_TRUE(d.offset_ns);
  EXPECT_NEAR(static_cast<double>(*d.offset_ns), 76'000.0, 2000.0);
  // The wake-ups the slop lifts have their floor at S - P.
  EXPECT_GE(s50.latency.min().count(), 100'000 - 50'000);
}

// Cells measured at one period under stress borrow the slop of their
// no-stress sweep at that period, and say so; a stress cell at a period the
// sweep did not measure gets nothing.
TEST(Decompose, StressCellsBorrowTheSlopOfTheirNoStressSweep) {
  RealNoise quiet = quiet_noise(), stress = stress_noise();
  Simulated stressed = simulate(100'000, 50'000, 3'000'000'000LL, stress, 9, true);
  const std::vector<SweepCell> sweep_cells = {
      {"host-50us", "50us", simulate(100'000, 50'000, 3'000'000'000LL, quiet, 4, true).latency},
      {"host-500us", "500us", simulate(100'000, 500'000, 3'000'000'000LL, quiet, 5, true).latency},
      {"host-1ms", "1ms", simulate(100'000, 1'000'000, 3'000'000'000LL, quiet, 6, true).latency},
  };
  auto with = [&](SweepCell extra) {
    auto cells = sweep_cells;
    cells.push_back(std::move(extra));
    return sweep_run(cells);
  };
  StoredRun stored = with({"host-stress-50us", "50us", stressed.latency, {}, "host", "kernel_stress"});
  RunView run = make_run(stored);
  auto groups = decompose_run(run);
  ASSERT_EQ(groups.size(), 2u);
  const auto& sweep = groups[0];
  const auto& borrower = groups[1];
  ASSERT_TRUE(sweep.slop && borrower.slop);
  EXPECT_FALSE(sweep.slop_from);
  ASSERT_TRUE(borrower.slop_from);
  EXPECT_EQ(*borrower.slop_from, sweep.axes);
  EXPECT_EQ(borrower.slop->slop_ns, sweep.slop->slop_ns);
  ASSERT_EQ(borrower.cells.size(), 1u);
  EXPECT_EQ(run.cells[static_cast<std::size_t>(borrower.cells[0].cell)].id, "host-stress-50us");
  const auto& d = borrower.cells[0].d;
  EXPECT_EQ(d.timer_source, "slop model (borrowed)");
  EXPECT_FALSE(d.offset_ns);
  expect_parts_add_up(d);
  expect_timer_part(d.stats[0].timer_ns, stressed.truth(0.50), "p50");
  expect_timer_part(d.stats[1].timer_ns, stressed.truth(0.99), "p99");
  expect_timer_part(d.stats[2].timer_ns, stressed.truth(1.0), "max");
  EXPECT_NE(slop_text(borrower).find("borrowed from group backend=host, workload=none, probe=p"), std::string::npos) << slop_text(borrower);

  ReportInput in;
  in.run = &run;
  json j = render_json(in);
  ASSERT_EQ(j["decomposition"].size(), 2u);
  EXPECT_EQ(j["decomposition"][1]["slop_source"], "borrowed");
  EXPECT_EQ(j["decomposition"][1]["slop_from"]["workload"], "none");
  EXPECT_EQ(j["decomposition"][1]["slop_ns"], j["decomposition"][0]["slop_ns"]);
  EXPECT_EQ(j["decomposition"][0]["slop_source"], "period sweep");
  std::string md = render_markdown(in);
  EXPECT_NE(md.find("borrowed from group backend=host, workload=none, probe=p"), std::string::npos) << md;

  // At 200us, which the sweep did not measure: nothing to borrow.
  StoredRun other = with({"host-stress-200us", "200us", simulate(100'000, 200'000, 1'000'000'000LL, stress, 10, true).latency, {}, "host",
                          "kernel_stress"});
  RunView other_run = make_run(other);
  auto other_groups = decompose_run(other_run);
  ASSERT_EQ(other_groups.size(), 1u);
  EXPECT_EQ(other_groups[0].axes, sweep.axes);
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
  EXPECT_FALSE(groups[0].slop);
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
  RealNoise noise = quiet_noise();
  Simulated s50 = simulate(100'000, 50'000, 2'000'000'000LL, noise, 21, false);
  StoredRun stored = sweep_run({{"host-50us", "50us", s50.latency},
                                {"host-1ms", "1ms", simulate(100'000, 1'000'000, 2'000'000'000LL, noise, 22, false).latency},
                                {"kvm-1ms", "1ms", sampled(3, 2000, 0), sampled(4, 2000, 0, 0), "kvm"}});
  RunView run = make_run(stored);
  ReportInput in;
  in.run = &run;
  std::string html = render_html(in);
  EXPECT_NE(html.find("<section id=\"decomposition\">"), std::string::npos);
  EXPECT_NE(html.find("class=\"plot breakdown\" data-backend=\"host\""), std::string::npos);
  EXPECT_NE(html.find("class=\"plot breakdown\" data-backend=\"kvm\""), std::string::npos);
  // One timer segment per cell and statistic, its value the model's: at max near S.
  std::regex timer_rect("<rect class=\"part timer\" data-cell-id=\"host-50us\" data-stat=\"max\" data-ns=\"([0-9]+)\"");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, timer_rect));
  const long long max_timer = std::stoll(m[1]);
  EXPECT_NEAR(static_cast<double>(max_timer), static_cast<double>(s50.truth(1.0)), 0.10 * static_cast<double>(s50.truth(1.0)));
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<li class=\"slop\" data-slop-ns=\"([0-9]+)\"")));
  EXPECT_NEAR(std::stod(m[1]), 100'000.0, 15'000.0);
  EXPECT_NE(html.find("<rect class=\"part irq\" data-cell-id=\"kvm-1ms\""), std::string::npos);
  std::string md = render_markdown(in);
  EXPECT_NE(md.find("### Latency decomposition"), std::string::npos);
  EXPECT_NE(md.find("| 50us | slop model |"), std::string::npos) << md;
  EXPECT_NE(md.find(": timer slop S = "), std::string::npos) << md;
  json j = render_json(in);
  ASSERT_EQ(j["decomposition"].size(), 2u);
  const json& host = j["decomposition"][0];
  EXPECT_EQ(host["reference_period"], "1ms");
  EXPECT_EQ(host["slop_source"], "period sweep");
  EXPECT_EQ(host["slop_seen"], true);
  EXPECT_LE(host["slop_low_ns"].get<long long>(), host["slop_ns"].get<long long>());
  EXPECT_GE(host["slop_high_ns"].get<long long>(), host["slop_ns"].get<long long>());
  EXPECT_EQ(host["slop_fit"]["in_reach"][0]["period_ns"], 50000);
  EXPECT_TRUE(host["slop_fit"]["in_reach"][0]["missed_ns"].is_null());  // cyclictest: not counted
  EXPECT_EQ(host["cells"][0]["cell"], "host-50us");
  EXPECT_EQ(host["cells"][0]["timer_source"], "slop model");
  EXPECT_EQ(host["cells"][0]["stats"]["max"]["timer_ns"], max_timer);
  EXPECT_EQ(j["decomposition"][1]["cells"][0]["timer_source"], "timerlat irq p50");
  EXPECT_TRUE(j["decomposition"][1]["slop_ns"].is_null());
}

// --- traces ---

fs::path testdata(const std::string& name) { return fs::path(VMLAT_SOURCE_DIR) / "tests/report/testdata" / name; }

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

  // The page's data: every name, linked only inside the run directory.
  json data = json::object();
  cell_traces_data(run, c, true, data);
  std::set<std::string> links;
  for (const auto& f : data["f"])
    if (!f[1].is_null()) links.insert(f[1].get<std::string>());
  EXPECT_EQ(links, (std::set<std::string>{"cells/c1/trace.txt", "cells/c1/host-trace.txt"}));
  EXPECT_EQ(data["f"][5], json::array({markup, nullptr, "trace"}));  // a name as data: the page shows it as text
  EXPECT_EQ(data["sp"][0], json::array({0, 10190160, "4.429762590", "2026-12-01T11:30:33.877408Z"}));
  EXPECT_EQ(data["sp"][1][3], "–");  // no CLOCK_REALTIME
  EXPECT_FALSE(data.contains("fnote"));
  // The time line: HTML of its own (a template in the page).
  std::string html = cell_timeline_html(run, c, true);
  std::regex href("href=\"([^\"]*)\"");
  std::set<std::string> timeline_links;
  for (std::sregex_iterator it(html.begin(), html.end(), href), end; it != end; ++it) timeline_links.insert((*it)[1]);
  EXPECT_EQ(timeline_links, (std::set<std::string>{"cells/c1/trace.txt", "cells/c1/host-trace.txt"}));
  EXPECT_EQ(html.find("<img"), std::string::npos);
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

  // Written outside the run directory: named, not linked, and where they are said.
  json elsewhere = json::object();
  cell_traces_data(run, c, false, elsewhere);
  for (const auto& f : elsewhere["f"]) EXPECT_TRUE(f[1].is_null()) << f;
  EXPECT_NE(elsewhere.value("fnote", "").find("/cells/c1/"), std::string::npos);
  EXPECT_EQ(cell_timeline_html(run, c, false).find("href="), std::string::npos);
}

}  // namespace
