// Unit tests of the Prometheus export (core/src/export): exact bucket
// conversion, label names and values, grouping keys, URLs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "vmlat/exit_codes.hpp"
#include "metrics.hpp"
#include "push.hpp"
#include "vmlat/histogram.hpp"

using namespace vmlat;
using namespace vmlat::exporter;

namespace {

json sample_run() {
  return json{{"schema", "vmlat-run/1"},
              {"run_id", "20260101T000000Z-p"},
              {"vmlat_version", "0.1.0"},
              {"plan", {{"name", "p \"q\"\\n\nx"}}},
              {"started", "2026-01-01T00:00:00.500Z"},
              {"finished", nullptr}};
}

json sample_cell(const Histogram& h) {
  json hist = h.to_json();
  json stats = stats_to_json(h.stats());
  return json{{"run_id", "20260101T000000Z-p"},
              {"cell",
               {{"id", "c1"},
                {"axes", {{"backend", "host"}, {"guest-kernel", "6.1/rt \"x\""}, {"9x", "v"}, {"job", "j"}}},
                {"host", "local"},
                {"period_ns", 500000},
                {"duration_ns", 1000000000}}},
              {"status", "measured"},
              {"host_facts", {{"kernel_release", "6.1.0"}}},
              {"facts", {{"backend", {{"qemu_version", "8.2.1"}, {"hypervisor", "kvm"}}}}},
              {"timings", {{"started", "2026-01-01T00:00:01Z"}, {"finished", "2026-01-01T00:00:02.250Z"}}},
              {"merged", {{"stats", stats}, {"histogram", hist}}},
              {"per_cpu", {{"3", {{"stats", stats}, {"histogram", hist}}}}},
              {"gates",
               {{{"gate", "worst"}, {"stat", "max"}, {"bound_ns", 1000}, {"verdict", "fail"}, {"value_ns", 5}},
                {{"gate", "ok"}, {"stat", "p99"}, {"bound_ns", 1000000}, {"verdict", "pass"}, {"value_ns", 5}},
                {{"gate", "skip"}, {"stat", "max"}, {"bound_ns", 1}, {"verdict", "skipped"}}}}};
}

const prometheus::MetricFamily* find(const std::vector<prometheus::MetricFamily>& fs, const std::string& name) {
  for (const auto& f : fs)
    if (f.name == name) return &f;
  return nullptr;
}

std::map<std::string, std::string> labels_of(const prometheus::ClientMetric& m) {
  std::map<std::string, std::string> out;
  for (const auto& l : m.label) out[l.name] = l.value;
  return out;
}

}  // namespace

TEST(Metrics, BucketsAreExactCumulativeCountsOfTheMicrosecondBuckets) {
  Histogram h;
  h.add_bucket(0, 1);    // [0,1)us: below 1us
  h.add_bucket(1, 2);    // [1,2)us: not <= 1us, <= 2us
  h.add_bucket(4, 3);    // <= 5us
  h.add_bucket(5, 4);    // [5,6)us: not <= 5us, <= 10us
  h.add_bucket(99, 5);   // <= 100us
  h.add_bucket(100, 6);  // <= 200us
  h.add_bucket(150000, 7);  // above 100ms: only +Inf
  h.add_overflows(8);
  h.set_exact(std::chrono::nanoseconds(100), std::chrono::nanoseconds(150000500000), std::chrono::nanoseconds(123456789));
  MetricSet set;
  set.histogram("vmlat_latency_seconds", "h", {{"cpu", "all"}}, h.to_json());
  const auto& m = set.families().at(0).metric.at(0);
  std::map<double, std::uint64_t> le;
  for (const auto& b : m.histogram.bucket) le[b.upper_bound] = b.cumulative_count;
  EXPECT_EQ(le.at(1e-6), 1u);
  EXPECT_EQ(le.at(2e-6), 3u);
  EXPECT_EQ(le.at(5e-6), 6u);
  EXPECT_EQ(le.at(1e-5), 10u);
  EXPECT_EQ(le.at(1e-4), 15u);
  EXPECT_EQ(le.at(2e-4), 21u);
  EXPECT_EQ(le.at(0.1), 21u);
  EXPECT_EQ(le.at(INFINITY), 36u);
  EXPECT_EQ(m.histogram.sample_count, 36u);
  EXPECT_EQ(m.histogram.sample_count, h.samples());
  EXPECT_DOUBLE_EQ(m.histogram.sample_sum, 0.123456789);
  EXPECT_EQ(m.histogram.bucket.size(), bucket_bounds_us().size() + 1);
}

// The monitor publishes its cumulative histogram reduced to the exported
// bounds: the Prometheus histogram must be the same as from every bucket.
TEST(Metrics, HistogramReducedToTheBoundsExportsTheSameCounts) {
  Histogram h;
  for (long long us : {0LL, 1LL, 2LL, 3LL, 4LL, 5LL, 9LL, 10LL, 11LL, 99LL, 100LL, 101LL, 999LL, 1000LL, 1999LL,
                       2000LL, 4999LL, 5000LL, 19999LL, 20000LL, 99999LL, 100000LL, 250000LL})
    h.add(std::chrono::microseconds(us) + std::chrono::nanoseconds(us % 7 * 100), static_cast<std::uint64_t>(us % 5 + 1));
  h.add_overflows(4);
  h.add_missed_periods(2);
  json reduced = histogram_doc_for_metrics(h);
  EXPECT_LE(reduced["buckets"].size(), bucket_bounds_us().size() + 1);
  MetricSet full, small;
  full.histogram("x", "x", {}, h.to_json());
  small.histogram("x", "x", {}, reduced);
  const auto& a = full.families().at(0).metric.at(0).histogram;
  const auto& b = small.families().at(0).metric.at(0).histogram;
  EXPECT_EQ(a.sample_count, b.sample_count);
  EXPECT_DOUBLE_EQ(a.sample_sum, b.sample_sum);
  ASSERT_EQ(a.bucket.size(), b.bucket.size());
  for (std::size_t i = 0; i < a.bucket.size(); ++i) {
    EXPECT_EQ(a.bucket[i].cumulative_count, b.bucket[i].cumulative_count) << i;
    EXPECT_EQ(a.bucket[i].upper_bound, b.bucket[i].upper_bound) << i;
  }
  Histogram back = Histogram::from_json(reduced);
  EXPECT_EQ(back.max(), h.max());
  EXPECT_EQ(back.min(), h.min());
  EXPECT_EQ(back.samples(), h.samples());
  EXPECT_EQ(back.overflows(), h.overflows());
  EXPECT_EQ(back.missed_periods(), h.missed_periods());
}

TEST(Metrics, LabelNamesAreSanitized) {
  EXPECT_EQ(sanitize_label_name("guest_kernel"), "guest_kernel");
  EXPECT_EQ(sanitize_label_name("guest-kernel"), "guest_kernel");
  EXPECT_EQ(sanitize_label_name("9x"), "_9x");
  EXPECT_EQ(sanitize_label_name(""), "_");
  EXPECT_EQ(sanitize_label_name("__name__"), "axis___name__");
  EXPECT_EQ(sanitize_label_name("job"), "axis_job");
  EXPECT_EQ(sanitize_label_name("cpu"), "axis_cpu");
  EXPECT_EQ(sanitize_label_name("é"), "axis___");  // two bytes -> "__", reserved prefix
}

TEST(Metrics, CellMetricsCarryTheAxesAndEscapeValues) {
  Histogram h;
  h.add(std::chrono::microseconds(7), 10);
  auto run = sample_run();
  auto cell = sample_cell(h);
  MetricSet set;
  add_cell_metrics(set, run, cell);
  auto fams = set.take();
  const auto* max = find(fams, "vmlat_latency_max_seconds");
  ASSERT_TRUE(max);
  ASSERT_EQ(max->metric.size(), 2u);  // all + cpu 3
  auto l = labels_of(max->metric[0]);
  EXPECT_EQ(l.at("plan"), "p \"q\"\\n\nx");
  EXPECT_EQ(l.at("guest_kernel"), "6.1/rt \"x\"");
  EXPECT_EQ(l.at("_9x"), "v");
  EXPECT_EQ(l.at("axis_job"), "j");
  EXPECT_EQ(l.at("period"), "500us");
  EXPECT_EQ(l.at("cpu"), "all");
  EXPECT_EQ(labels_of(max->metric[1]).at("cpu"), "3");
  EXPECT_DOUBLE_EQ(max->metric[0].gauge.value, 7e-6);

  const auto* gates = find(fams, "vmlat_gate_status");
  ASSERT_TRUE(gates);
  ASSERT_EQ(gates->metric.size(), 2u);  // skipped gates are left out
  EXPECT_EQ(gates->metric[0].gauge.value, 0);
  EXPECT_EQ(gates->metric[1].gauge.value, 1);

  EXPECT_FALSE(find(fams, "vmlat_run_end_timestamp_seconds"));  // run still going
  const auto* start = find(fams, "vmlat_run_start_timestamp_seconds");
  ASSERT_TRUE(start);
  EXPECT_DOUBLE_EQ(start->metric[0].gauge.value, 1767225600.5);
  const auto* info = find(fams, "vmlat_info");
  ASSERT_TRUE(info);
  auto il = labels_of(info->metric[0]);
  EXPECT_EQ(il.at("qemu_version"), "8.2.1");
  EXPECT_EQ(il.at("hypervisor"), "kvm");
  EXPECT_EQ(il.at("kernel"), "6.1.0");

  std::string text = to_text(fams);
  EXPECT_NE(text.find(R"(plan="p \"q\"\\n\nx")"), std::string::npos) << text.substr(0, 400);
  EXPECT_NE(text.find("vmlat_samples_total{"), std::string::npos);
  EXPECT_NE(text.find("le=\"+Inf\"} 10"), std::string::npos);

  run["finished"] = "2026-01-01T00:00:03Z";
  MetricSet done;
  add_cell_metrics(done, run, cell);
  EXPECT_TRUE(find(done.families(), "vmlat_run_end_timestamp_seconds"));
}

TEST(Metrics, UnmeasuredCellsStillExportIdentityAndGates) {
  json cell{{"run_id", "r"},
            {"cell", {{"id", "c"}, {"axes", {{"backend", "kvm"}}}, {"host", "local"}}},
            {"status", "skipped"},
            {"gates", {{{"gate", "g"}, {"stat", "max"}, {"bound_ns", 1}, {"verdict", "error"}}}}};
  MetricSet set;
  add_cell_metrics(set, sample_run(), cell);
  EXPECT_TRUE(find(set.families(), "vmlat_info"));
  EXPECT_EQ(find(set.families(), "vmlat_cell_measured")->metric[0].gauge.value, 0);
  EXPECT_EQ(find(set.families(), "vmlat_gate_status")->metric[0].gauge.value, 0);
  EXPECT_FALSE(find(set.families(), "vmlat_latency_seconds"));
}

TEST(Metrics, GroupingKeyIsPlanHostCell) {
  Histogram h;
  h.add(std::chrono::microseconds(3));
  auto key = grouping_key(sample_run(), sample_cell(h));
  ASSERT_EQ(key.size(), 3u);
  EXPECT_EQ(key[0].first, "plan");
  EXPECT_EQ(key[1].first, "host");
  EXPECT_EQ(key[2], (std::pair<std::string, std::string>{"cell", "c1"}));
}

TEST(Push, GroupingLabelsAreBase64WhenNeeded) {
  EXPECT_EQ(encode_grouping_label("cell", "host-none-1ms"), (std::pair<std::string, std::string>{"cell", "host-none-1ms"}));
  EXPECT_EQ(encode_grouping_label("plan", "a/b"), (std::pair<std::string, std::string>{"plan@base64", "YS9i"}));
  EXPECT_EQ(encode_grouping_label("plan", ""), (std::pair<std::string, std::string>{"plan@base64", "="}));
  EXPECT_EQ(encode_grouping_label("plan", "ab?"), (std::pair<std::string, std::string>{"plan@base64", "YWI_"}));
  EXPECT_EQ(encode_grouping_label("plan", ".."), (std::pair<std::string, std::string>{"plan@base64", "Li4="}));
}

TEST(Push, Urls) {
  ParsedUrl u;
  EXPECT_EQ(parse_push_url("http://127.0.0.1:9091", u), "");
  EXPECT_EQ(u.host, "http://127.0.0.1");
  EXPECT_EQ(u.port, "9091");
  EXPECT_EQ(u.prefix, "");
  EXPECT_EQ(parse_push_url("https://pg.example/prefix/", u), "");
  EXPECT_EQ(u.host, "https://pg.example");
  EXPECT_EQ(u.port, "443");
  EXPECT_EQ(u.prefix, "/prefix");
  EXPECT_NE(parse_push_url("127.0.0.1:9091", u), "");
  EXPECT_NE(parse_push_url("http://h:x1", u), "");
}

TEST(Push, UnreachableGatewayFailsWithinTheBudget) {
  PushOptions o;
  o.url = "http://127.0.0.1:1";  // nothing listens on port 1
  o.budget = std::chrono::milliseconds(1200);
  auto t0 = std::chrono::steady_clock::now();
  auto r = push_families(o, {{"plan", "p"}, {"host", "h"}, {"cell", "c"}}, {});
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_FALSE(r.ok);
  EXPECT_GE(r.attempts, 2);  // retried with backoff
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_NE(r.error.find("connection failed"), std::string::npos) << r.error;
}

TEST(Metrics, TextIsByteIdenticalToPrometheusCppsSerializer) {
  // What --textfile writes and `vmlat metrics` prints must be what the Gateway
  // pushes and the Exposer serves (both use prometheus-cpp's TextSerializer).
  auto stored = load_run_dir(std::string(VMLAT_SOURCE_DIR) + "/tests/integration/data/run");
  ASSERT_EQ(stored.cells.size(), 3u);
  MetricSet set;
  for (const auto& c : stored.cells) add_cell_metrics(set, stored.run, c);
  Histogram h;
  h.add(std::chrono::nanoseconds(12345), 3);
  h.add_overflows(2);
  add_cell_metrics(set, sample_run(), sample_cell(h));
  set.gauge("vmlat_test_values", "odd values", {{"a", "\\\"\n"}}, 0.1 + 0.2);
  set.gauge("vmlat_test_values", "odd values", {{"a", "big"}}, 1e300);
  set.gauge("vmlat_test_values", "odd values", {{"a", "int"}}, 123456789012345.0);
  set.gauge("vmlat_test_values", "odd values", {{"a", "neg"}}, -2.5e-7);
  set.gauge("vmlat_test_values", "odd values", {{"a", "inf"}}, INFINITY);
  std::string fast = to_text(set.families());
  std::string reference = to_text_reference(set.families());
  EXPECT_GT(fast.size(), 10000u);
  if (fast != reference) {
    std::size_t i = 0;
    while (i < fast.size() && i < reference.size() && fast[i] == reference[i]) ++i;
    FAIL() << "differ at byte " << i << ":\nfast: " << fast.substr(i > 80 ? i - 80 : 0, 200)
           << "\nreference: " << reference.substr(i > 80 ? i - 80 : 0, 200);
  }
}

TEST(Metrics, KvmBackendFacts) {
  json cell{{"run_id", "r"},
            {"cell", {{"id", "c"}, {"axes", {{"backend", "kvm"}}}, {"host", "local"}}},
            {"status", "measured"},
            {"plugins", {{"backend", {{"plugin", "kvm"}}}}},
            {"facts",
             {{"backend",
               {{"qemu", {{"version", "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)"}, {"qmp_version", "7.2.19"}}},
                {"guest", {{"system", {{"kernel_release", "6.1.0-rt-guest"}}}}}}}}}};
  MetricSet set;
  add_cell_metrics(set, sample_run(), cell);
  auto l = labels_of(find(set.families(), "vmlat_info")->metric[0]);
  EXPECT_EQ(l.at("qemu_version"), "7.2.19");
  EXPECT_EQ(l.at("target_kernel"), "6.1.0-rt-guest");
  EXPECT_EQ(l.at("hypervisor"), "kvm");
}

TEST(Push, ExportFailureNeverTurnsAVerdict) {
  Histogram h;
  h.add(std::chrono::microseconds(3));
  auto run = sample_run();
  std::vector<json> cells{sample_cell(h)};
  PushOptions o;
  o.url = "http://127.0.0.1:1";
  o.budget = std::chrono::milliseconds(300);
  for (auto [in, out] : {std::pair{0, 4}, std::pair{1, 1}, std::pair{3, 3}, std::pair{130, 130}}) {
    std::ostringstream err;
    RunExporter ex(o, std::nullopt, err);
    ex.cell_done(run, cells[0]);
    EXPECT_EQ(ex.run_done(in, run, cells, "/tmp/run"), out) << in;
    EXPECT_NE(err.str().find("vmlat push /tmp/run --url http://127.0.0.1:1"), std::string::npos) << err.str();
  }
  std::ostringstream err;
  RunExporter textfile_only(std::nullopt, std::filesystem::path("/proc/vmlat-not-writable"), err);
  EXPECT_EQ(textfile_only.run_done(0, run, cells, "/tmp/run"), exit_code::export_failed);
  EXPECT_NE(err.str().find("textfile"), std::string::npos) << err.str();
}

TEST(Time, Iso8601) {
  EXPECT_DOUBLE_EQ(iso8601_to_epoch("1970-01-01T00:00:01Z"), 1.0);
  EXPECT_DOUBLE_EQ(iso8601_to_epoch("2026-11-25T13:32:28.231Z"), 1795613548.231);
  EXPECT_LT(iso8601_to_epoch(""), 0);
  EXPECT_LT(iso8601_to_epoch("yesterday"), 0);
}

// `vmlat history`'s change points: one series per change point, named by
// labels whose values stay bounded whatever the history holds.
TEST(Metrics, ChangePointsAreBoundedSeriesWithEscapedLabels) {
  std::vector<std::string> many;
  for (int i = 0; i < 40; ++i) many.push_back("host.fact_with_a_rather_long_name_" + std::to_string(i));
  const std::string hostile = "c\"1\n<b>\\";
  MetricSet set;
  add_change_point_metrics(set, "p", 20,
                           {{"local", hostile, "max", "r12", 1769904012, 100000, 400000, {"host.kernel_release"}},
                            {"local", "c2", "p99", "r07", -1, 0, 5000, many}});
  const std::string text = to_text(set.families());
  EXPECT_NE(text.find("vmlat_history_runs{plan=\"p\"} 20"), std::string::npos) << text;
  EXPECT_NE(text.find("vmlat_history_change_points{plan=\"p\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("vmlat_change_point_timestamp_seconds{plan=\"p\",host=\"local\",cell=\"c\\\"1\\n<b>\\\\\",stat=\"max\","
                      "run_id=\"r12\",facts=\"host.kernel_release\"} 1769904012"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vmlat_change_point_ratio{plan=\"p\",host=\"local\",cell=\"c\\\"1\\n<b>\\\\\",stat=\"max\",run_id=\"r12\","
                      "facts=\"host.kernel_release\"} 4"),
            std::string::npos)
      << text;
  // Unknown start and a zero level: no made-up timestamp or ratio.
  EXPECT_EQ(text.find("run_id=\"r07\""), std::string::npos) << text;
  MetricSet bounded;
  add_change_point_metrics(bounded, "p", 20, {{"local", "c2", "p99", "r07", 5, 1000, 5000, many}});
  const std::string b = to_text(bounded.families());
  const auto at = b.find("facts=\"");
  ASSERT_NE(at, std::string::npos) << b;
  const std::string facts = b.substr(at + 7, b.find('"', at + 7) - at - 7);
  EXPECT_LE(facts.size(), 220u) << facts;
  EXPECT_NE(facts.find(", +" + std::to_string(40 - std::count(facts.begin(), facts.end(), ',')) + " more"), std::string::npos)
      << facts;
  EXPECT_EQ(facts.rfind("host.fact_with_a_rather_long_name_0, ", 0), 0u) << facts;
}
