#include "host_evidence.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>

#include "json_access.hpp"
#include "traces.hpp"
#include "vmlat/units.hpp"

namespace vmlat::report {

namespace fs = std::filesystem;

namespace {

// The sampler stops writing at 64 MiB (plugins/common/qemu/host_evidence.hpp).
constexpr std::uintmax_t kMaxSamplesBytes = 64u << 20;
constexpr const char* kSamplesFile = "host-evidence.jsonl";

struct Line {
  long long t = 0;
  std::size_t at = 0, size = 0;
};

std::string ns_text(long long ns) { return format_latency(std::chrono::nanoseconds(ns)); }

// The vCPU entry of sample `s` for vCPU position `pos`, or null.
const json& vcpu_entry(const json& s, std::size_t pos) {
  static const json null_value;
  const json& v = member(s, "vcpu");
  if (!v.is_array() || pos >= v.size() || !v[pos].is_object()) return null_value;
  return v[pos];
}

}  // namespace

std::vector<std::optional<SpikeEvidence>> join_spike_evidence(const json& result, const std::string& samples) {
  const json& spikes = member(result, "spikes");
  std::vector<std::optional<SpikeEvidence>> out(spikes.is_array() ? spikes.size() : 0);
  const json& facts = member(member(member(result, "facts"), "backend"), "host_evidence");
  const json& clock = member(facts, "clock");
  auto offset = integer_at(clock, "offset_ns");
  if (out.empty() || !offset) return out;
  const long long margin = integer_at(clock, "uncertainty_ns").value_or(0) + integer_at(clock, "drift_ns").value_or(0);

  // The header names the vCPUs; each later line is a sample, found by its "t".
  std::vector<Line> lines;
  json head;
  std::size_t pos = 0;
  while (pos < samples.size()) {
    std::size_t nl = samples.find('\n', pos);
    if (nl == std::string::npos) nl = samples.size();
    if (head.is_null()) {
      head = json::parse(samples.substr(pos, nl - pos), nullptr, false);
      if (head.is_discarded() || !head.is_object()) return out;
    } else if (auto t = std::string_view(samples).substr(pos, nl - pos).find("\"t\":"); t != std::string_view::npos) {
      lines.push_back(Line{std::strtoll(samples.c_str() + pos + t + 4, nullptr, 10), pos, nl - pos});
    }
    pos = nl + 1;
  }
  if (lines.size() < 2) return out;
  std::stable_sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) { return a.t < b.t; });
  auto parse = [&](const Line& l) {
    json j = json::parse(samples.substr(l.at, l.size), nullptr, false);
    return j.is_discarded() ? json() : j;
  };
  std::map<long long, std::pair<std::size_t, long long>> vcpus;  // index -> (position, tid)
  {
    std::size_t i = 0;
    for (const auto& v : member(head, "vcpus")) {
      if (auto idx = integer_at(v, "index")) vcpus[*idx] = {i, integer_at(v, "tid").value_or(-1)};
      ++i;
    }
  }

  for (std::size_t k = 0; k < out.size(); ++k) {
    const json& s = spikes[k];
    auto cpu = integer_at(s, "cpu"), mono = integer_at(s, "monotonic_ns"), latency = integer_at(s, "latency_ns");
    if (!cpu || !mono || !latency || *mono < 0) continue;
    auto v = vcpus.find(*cpu);
    if (v == vcpus.end()) continue;
    SpikeEvidence e;
    e.vcpu = static_cast<int>(*cpu);
    e.tid = v->second.second;
    e.spike_host_ns = *mono + *offset;
    e.due_host_ns = e.spike_host_ns - *latency;
    e.margin_ns = margin;
    const long long from = e.due_host_ns - margin, to = e.spike_host_ns + margin;
    // The last sample at or before `from` and the first at or after `to`:
    // their counters' differences hold the whole interval.
    auto after = std::lower_bound(lines.begin(), lines.end(), to, [](const Line& l, long long t) { return l.t < t; });
    auto before = std::upper_bound(lines.begin(), lines.end(), from, [](long long t, const Line& l) { return t < l.t; });
    if (before == lines.begin() || after == lines.end()) continue;  // the samples do not cover it
    --before;
    const json a = parse(*before), b = parse(*after);
    const json &va = vcpu_entry(a, v->second.first), &vb = vcpu_entry(b, v->second.first);
    auto wait_a = integer_at(va, "wait"), wait_b = integer_at(vb, "wait");
    if (!wait_a || !wait_b) continue;
    e.from_ns = before->t;
    e.to_ns = after->t;
    e.wait_ns = *wait_b - *wait_a;
    e.run_ns = integer_at(vb, "run").value_or(0) - integer_at(va, "run").value_or(0);
    e.involuntary = integer_at(vb, "invol").value_or(0) - integer_at(va, "invol").value_or(0);
    e.migrations = integer_at(vb, "mig").value_or(0) - integer_at(va, "mig").value_or(0);
    e.host_cpu = static_cast<int>(integer_at(vb, "cpu").value_or(-1));
    const json &irq_a = member(a, "irq"), &irq_b = member(b, "irq");
    if (e.host_cpu >= 0 && irq_a.is_array() && irq_b.is_array() && static_cast<std::size_t>(e.host_cpu) < irq_a.size() &&
        static_cast<std::size_t>(e.host_cpu) < irq_b.size() && irq_a[e.host_cpu].is_number_integer() &&
        irq_b[e.host_cpu].is_number_integer())
      e.interrupts = irq_b[e.host_cpu].get<long long>() - irq_a[e.host_cpu].get<long long>();
    if (auto xa = integer_at(va, "exits"), xb = integer_at(vb, "exits"); xa && xb) e.exits = *xb - *xa;
    // Who was runnable on the vCPU's CPU at the samples where its wait grew.
    std::set<long long> named;
    std::vector<std::pair<bool, std::string>> behind;  // (real-time, text)
    for (auto it = before + 1; it <= after; ++it) {
      if (std::string_view(samples).substr(it->at, it->size).find("\"behind\":") == std::string_view::npos) continue;
      const json line = parse(*it);
      for (const auto& entry : member(line, "behind")) {
        if (integer_at(entry, "vcpu") != *cpu) continue;
        for (const auto& task : member(entry, "tasks")) {
          auto tid = integer_at(task, "tid");
          if (!tid || !named.insert(*tid).second) continue;
          const std::string policy = text_of(task, "policy");
          const bool rt = policy == "FIFO" || policy == "RR" || policy == "DEADLINE";
          std::string text = text_of(task, "comm") + "/" + std::to_string(*tid) + " (" + policy;
          if (rt) text += " " + text_of(task, "prio");
          text += ")";
          behind.emplace_back(rt, text);
        }
      }
    }
    std::stable_sort(behind.begin(), behind.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    for (std::size_t i = 0; i < behind.size() && i < 3; ++i) e.behind.push_back(behind[i].second);

    char at[48];
    std::snprintf(at, sizeof at, "%lld.%06lld s", e.spike_host_ns / 1000000000, (e.spike_host_ns % 1000000000) / 1000);
    std::string sentence = "spike at " + std::string(at) + " (host CLOCK_MONOTONIC): vCPU " + std::to_string(e.vcpu);
    sentence += e.wait_ns > 0 ? " waited " + ns_text(e.wait_ns) + " on the host run queue"
                              : " did not wait on the host run queue";
    sentence += " in the " + ns_text(e.to_ns - e.from_ns) + " sampled around it (host CPU " + std::to_string(e.host_cpu) + ", " +
                std::to_string(e.involuntary) + " involuntary switches, " + std::to_string(e.migrations) + " migrations";
    if (e.interrupts) sentence += ", " + std::to_string(*e.interrupts) + " interrupts on that CPU";
    if (e.exits) sentence += ", " + std::to_string(*e.exits) + " VM exits";
    sentence += ")";
    if (!e.behind.empty()) {
      sentence += " behind ";
      for (std::size_t i = 0; i < e.behind.size(); ++i) sentence += (i ? ", " : "") + e.behind[i];
    }
    e.sentence = sentence;
    out[k] = std::move(e);
  }
  return out;
}

std::vector<std::optional<SpikeEvidence>> cell_spike_evidence(const Run& run, const Cell& c) {
  if (!c.result) return {};
  const StoredRun* stored = c.stored ? c.stored : run.stored;
  auto href = artifact_link(run, c, kSamplesFile);
  if (!href || !stored) return {};
  const fs::path file = fs::path(stored->dir) / *href;
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec || size > kMaxSamplesBytes) return {};
  std::ifstream in(file, std::ios::binary);
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return join_spike_evidence(*c.result, text);
}

json spike_evidence_json(const SpikeEvidence& e) {
  return json{{"vcpu", e.vcpu},
              {"tid", e.tid},
              {"spike_host_monotonic_ns", e.spike_host_ns},
              {"due_host_monotonic_ns", e.due_host_ns},
              {"clock_margin_ns", e.margin_ns},
              {"from_ns", e.from_ns},
              {"to_ns", e.to_ns},
              {"run_queue_wait_ns", e.wait_ns},
              {"run_ns", e.run_ns},
              {"involuntary_switches", e.involuntary},
              {"migrations", e.migrations},
              {"host_cpu", e.host_cpu},
              {"interrupts", e.interrupts ? json(*e.interrupts) : json(nullptr)},
              {"vm_exits", e.exits ? json(*e.exits) : json(nullptr)},
              {"behind", e.behind},
              {"sentence", e.sentence}};
}

}  // namespace vmlat::report
