// vmlat's exit codes: its contract with CI and with `git bisect run`
// (docs/plan-format.md, "Exit codes"). Defined here, once; every command,
// the runner, the monitor, the report and compare return these.
#pragma once

namespace vmlat::exit_code {

// Every gate passed (or there was none and every cell was measured).
inline constexpr int pass = 0;
// A gate failed: a cell was measured and its statistic broke its bound (a
// flaky gate only with [plan] flaky = "fail"); a regression in compare.
inline constexpr int gate_failed = 1;
// The plan or the command line is wrong: nothing was measured.
inline constexpr int usage = 2;
// Infrastructure error: a cell could not be measured (a guest that did not
// boot, a host that is down, a probe killed from outside) or a gate could
// not be evaluated. A broken lab never looks like a regression (1).
inline constexpr int infra = 3;
// Every gate passed but the metrics export (--push, --textfile) failed:
// the results on disk are complete; `vmlat push` delivers them later.
inline constexpr int export_failed = 4;
// SIGINT/SIGTERM: what was measured is kept (`vmlat run --resume`).
inline constexpr int interrupted = 130;

}  // namespace vmlat::exit_code
