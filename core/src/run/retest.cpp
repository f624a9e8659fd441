#include "run/retest.hpp"

#include <map>

#include "cell/store.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

void retest_failures(const Plan& plan, const Cell& cell, CellOutcome& o, const std::filesystem::path& cell_dir,
                     const std::filesystem::path& run_dir,
                     const std::function<CellOutcome(const std::filesystem::path&)>& measure, std::ostream& err) {
  if (!o.measured()) return;
  int retests = 0;
  std::map<std::string, std::string> undecided;  // failing gate -> its first failure message
  for (const auto& g : o.gates) {
    if (g.verdict != Verdict::fail) continue;
    for (const auto& spec : plan.gates)
      if (spec.name == g.gate) retests = std::max(retests, spec.retest.value_or(plan.retest));
    undecided[g.gate] = g.message;
  }
  if (retests == 0 || undecided.empty()) return;
  std::map<std::string, std::pair<Verdict, std::string>> decided;
  json attempts = json::array();
  int done = 0;
  for (int k = 1; k <= retests && !undecided.empty() && !cancel_requested(); ++k) {
    auto dir = run_dir / "attempts" / (cell.spec.id + ".retest" + std::to_string(k));
    CellOutcome r = measure(dir);
    ++done;
    json verdicts = json::object();
    for (const auto& g : r.gates) verdicts[g.gate] = verdict_name(g.verdict);
    attempts.push_back(json{{"attempt", k},
                            {"dir", "attempts/" + dir.filename().string()},
                            {"status", status_name(r.status)},
                            {"error", r.error.empty() ? json(nullptr) : json(r.error)},
                            {"max_ns", r.merged && !r.merged->empty() ? json(r.merged->max().count()) : json(nullptr)},
                            {"gates", verdicts}});
    if (!r.measured()) {
      for (const auto& [gate, first] : undecided)
        decided[gate] = {Verdict::error, first + "; retest " + std::to_string(k) + " could not be measured (" + r.error +
                                             "): the failure is neither confirmed nor refuted"};
      undecided.clear();
      break;
    }
    for (const auto& g : r.gates) {
      auto it = undecided.find(g.gate);
      if (it == undecided.end() || g.verdict != Verdict::pass) continue;
      decided[g.gate] = {Verdict::flaky, it->second + "; passed on retest " + std::to_string(k) + " of " + std::to_string(retests) +
                                             " (" + format_latency(g.value) + "): flaky"};
      undecided.erase(it);
    }
  }
  for (const auto& [gate, first] : undecided)
    decided[gate] = {Verdict::fail, first + "; failed again on " + std::to_string(done) + " retest" + (done == 1 ? "" : "s") +
                                        ": reproduced"};
  for (auto& g : o.gates) {
    auto it = decided.find(g.gate);
    if (it == decided.end()) continue;
    g.verdict = it->second.first;
    g.message = it->second.second;
  }
  o.retests = attempts;
  FileLogger cell_log(cell_dir / "cell.log", nullptr, cell.spec.id);
  for (const auto& [gate, verdict] : decided) cell_log.info("gate " + gate + ": " + verdict.second);
  store_result(plan, cell, cell_dir, o, cell_log, err);
}

}  // namespace vmlat
