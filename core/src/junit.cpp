#include "junit.hpp"

#include <sstream>

#include "cell/outcome.hpp"
#include "gates/verdict.hpp"
#include "vmlat/text.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

namespace {
std::string xml_escape(std::string_view raw) {
  std::string out;
  const std::string s = valid_utf8(raw);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 forbids most control characters, even escaped.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r') out += '?';
        else out += c;
    }
  }
  return out;
}

std::string ns_text(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number()) return "?";
  return format_latency(std::chrono::nanoseconds(j[key].get<long long>()));
}
}  // namespace

std::string junit_xml(const std::string& plan_name, const json& run, const std::vector<json>& cell_results) {
  int tests = 0, failures = 0, errors = 0, skipped = 0;
  std::ostringstream cases;
  for (const auto& r : cell_results) {
    const ResultHead head = read_result_head(r);
    const std::string& cell_id = head.cell_id;
    const std::string status = head.status ? status_name(*head.status) : "unknown";
    const std::string& error = head.error;
    std::string classname = xml_escape(plan_name + "." + cell_id);
    double wall = 0;
    if (r.contains("timings") && r["timings"].contains("phases")) wall = r["timings"]["phases"].value("wall_s", 0.0);
    auto open_case = [&](const std::string& name) {
      ++tests;
      cases << "    <testcase classname=\"" << classname << "\" name=\"" << xml_escape(name) << "\" time=\"" << wall << "\">\n";
    };
    const json& gates = r.contains("gates") ? r["gates"] : json::array();
    if (gates.empty()) {
      open_case("measure");
      if (head.status == CellStatus::skipped) {
        ++skipped;
        cases << "      <skipped message=\"" << xml_escape(error) << "\"/>\n";
      } else if (head.status != CellStatus::measured) {
        ++errors;
        cases << "      <error type=\"" << xml_escape(status) << "\" message=\"" << xml_escape(error) << "\"/>\n";
      }
      cases << "    </testcase>\n";
      continue;
    }
    for (const auto& g : gates) {
      open_case(g.value("gate", "gate"));
      const Verdict verdict = parse_verdict(g.value("verdict", "error")).value_or(Verdict::error);
      if (verdict == Verdict::fail) {
        ++failures;
        cases << "      <failure type=\"gate\" message=\"" << xml_escape(g.value("message", "")) << "\">"
              << xml_escape("stat=" + g.value("stat", "") + " value=" + ns_text(g, "value_ns") + " bound=" + ns_text(g, "bound_ns") +
                            " excess=" + ns_text(g, "excess_ns"))
              << "</failure>\n";
      } else if (verdict == Verdict::skipped) {
        ++skipped;
        cases << "      <skipped message=\"" << xml_escape(g.value("message", "")) << "\"/>\n";
      } else if (verdict == Verdict::flaky) {
        // Passed on a retest: a passing test case that says it was flaky
        // (Surefire's flakyFailure, which Jenkins and GitLab show).
        cases << "      <flakyFailure type=\"gate\" message=\"" << xml_escape(g.value("message", "")) << "\"/>\n"
              << "      <system-out>flaky: " << xml_escape(g.value("message", "")) << "</system-out>\n";
      } else if (verdict != Verdict::pass) {
        ++errors;
        cases << "      <error type=\"" << xml_escape(status) << "\" message=\"" << xml_escape(g.value("message", error)) << "\"/>\n";
      }
      cases << "    </testcase>\n";
    }
  }
  // The plan's claims ([[expect]]): holds passes, inconclusive is skipped,
  // violated fails when the claim gates the run and otherwise passes saying so.
  const json& expects = run.contains("expects") && run["expects"].is_array() ? run["expects"] : json::array();
  for (const auto& e : expects) {
    if (!e.is_object()) continue;
    ++tests;
    const std::string verdict = e.value("verdict", "inconclusive");
    const std::string reason = e.value("reason", "");
    cases << "    <testcase classname=\"" << xml_escape(plan_name + ".expect") << "\" name=\"" << xml_escape(e.value("name", "expect"))
          << "\" time=\"0\">\n";
    if (verdict == "violated" && e.value("gate", false)) {
      ++failures;
      cases << "      <failure type=\"expect\" message=\"" << xml_escape(reason) << "\"/>\n";
    } else if (verdict == "violated") {
      cases << "      <system-out>violated (not a gate: the run does not fail): " << xml_escape(reason) << "</system-out>\n";
    } else if (verdict != "holds") {
      ++skipped;
      cases << "      <skipped message=\"" << xml_escape("inconclusive: " + reason) << "\"/>\n";
    }
    cases << "    </testcase>\n";
  }
  std::ostringstream xml;
  xml << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<testsuites name=\"vmlat\" tests=\"" << tests << "\" failures=\"" << failures << "\" errors=\"" << errors << "\">\n"
      << "  <testsuite name=\"" << xml_escape(plan_name) << "\" tests=\"" << tests << "\" failures=\"" << failures
      << "\" errors=\"" << errors << "\" skipped=\"" << skipped << "\" timestamp=\""
      << xml_escape(run.value("started", std::string())) << "\">\n"
      << "    <properties>\n"
      << "      <property name=\"run_id\" value=\"" << xml_escape(run.value("run_id", std::string())) << "\"/>\n"
      << "      <property name=\"plan_sha256\" value=\"" << xml_escape(run["plan"].value("sha256", std::string())) << "\"/>\n"
      << "    </properties>\n"
      << cases.str() << "  </testsuite>\n</testsuites>\n";
  return xml.str();
}

}  // namespace vmlat
