// `vmlat export`: a stored run in the formats other test systems read
// (docs/export.md): KCIDB v5 (KernelCI), LAVA test cases, rt-tests JSON.
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "app.hpp"
#include "model.hpp"
#include "vmlat/json.hpp"

namespace vmlat::report {

// ExportCommand: app.hpp. 0 written; 2 usage or an unreadable run; 4 the
// output could not be written.
int export_command(const ExportCommand& command, std::ostream& out, std::ostream& err);

// One statistic of one series of one cell: what a KCIDB test and a LAVA
// test case are made of.
struct ExportedStat {
  const Cell* cell = nullptr;
  std::string series;      // the series' name
  bool default_series = true;
  std::string stat;        // "max", "p99.9", ... as gates name them
  std::optional<long long> value_ns;
  std::string status;      // KCIDB status: PASS FAIL ERROR MISS DONE SKIP
  std::vector<std::string> gates;  // "name: verdict" of the gates bounding it
  std::string path;        // vmlat.<backend>.<probe>.<cell>[.<series>].<stat>, unique in the run
};
// Every statistic of every cell of `run`, cells in order.
std::vector<ExportedStat> exported_stats(const Run& run);

// A name segment made of [A-Za-z0-9_-] only (anything else becomes '_'):
// KCIDB's test path segments and LAVA's test case names.
std::string name_segment(const std::string& text);

struct KcidbOptions {
  std::string origin = "vmlat";
  std::string checkout, build, commit;  // "": derived from the run
  std::string artifacts_url;            // "": file:// URLs of the files where they are
};
json kcidb_document(const Run& run, const KcidbOptions& options);

// `lava-test-case NAME --result R --measurement N --units us` lines, or
// with `signals` the <LAVA_SIGNAL_TESTCASE ...> lines a console shows.
std::string lava_lines(const Run& run, bool signals);

// File name (`<cell>.json`) -> cyclictest --json document, for every cell
// with per-CPU histograms of its default series.
std::map<std::string, json> rt_tests_documents(const Run& run);

}  // namespace vmlat::report
