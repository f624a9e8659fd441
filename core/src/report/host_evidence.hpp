// The host's side of a guest's worst wake-ups: each spike of result.json
// joined with the samples of its vCPU thread that the kvm and libvirt
// backends saved (host-evidence.jsonl, plugins/common/qemu/host_evidence.hpp)
// over the same interval, on host CLOCK_MONOTONIC through the clock mapping
// in facts.backend.host_evidence.clock (docs/report.md, "Host-side evidence").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model.hpp"

namespace vmlat::report {

struct SpikeEvidence {
  int vcpu = -1;                     // the guest CPU of the spike = the vCPU's number
  long long tid = -1;                // its host thread
  long long spike_host_ns = 0;       // the wake-up on host CLOCK_MONOTONIC
  long long due_host_ns = 0;         // when the guest's timer was due (wake-up - latency)
  long long margin_ns = 0;           // clock uncertainty + drift: the interval is widened by it
  long long from_ns = 0, to_ns = 0;  // the samples that bracket [due - margin, wake-up + margin]
  long long wait_ns = 0;             // run-queue wait of the vCPU thread between them
  long long run_ns = 0;              // and its time on a CPU
  long long involuntary = 0, migrations = 0;
  int host_cpu = -1;                 // the CPU the thread was on at the later sample
  std::optional<long long> interrupts;  // on host_cpu between the samples
  std::optional<long long> exits;       // KVM exits of that vCPU, where the host counts them
  std::vector<std::string> behind;      // "comm/tid (FIFO 99)": runnable on host_cpu as the wait grew
  std::string sentence;
};

// Per spike of `result` ("spikes", in their order): the evidence, or nullopt
// when the samples do not cover it (no file, no mapping, another vCPU).
// `samples` is the text of host-evidence.jsonl.
std::vector<std::optional<SpikeEvidence>> join_spike_evidence(const json& result, const std::string& samples);

// The same for a stored cell (reads cells/<id>/host-evidence.jsonl when it is
// a safe file of the cell); empty when the cell has none.
std::vector<std::optional<SpikeEvidence>> cell_spike_evidence(const Run& run, const Cell& c);

json spike_evidence_json(const SpikeEvidence& e);

}  // namespace vmlat::report
