// A host thread's scheduler counters from /proc, read the same way by the
// monitor's per-window vCPU figures, the backends' host-side evidence
// sampler and the libvirt backend's facts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace vmlat {

// A small /proc file in one read ("" if it cannot be opened): a stream
// costs more than a sample taken every few milliseconds.
inline std::string read_proc_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return {};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// "name:   value" of /proc/.../status or /proc/.../sched (the key at the
// start of a line).
inline std::optional<long long> proc_keyed_value(const std::string& text, std::string_view key) {
  for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    if (at != 0 && text[at - 1] != '\n') continue;
    auto colon = text.find(':', at);
    if (colon == std::string::npos) return std::nullopt;
    return std::strtoll(text.c_str() + colon + 1, nullptr, 10);
  }
  return std::nullopt;
}

// schedstat of a task directory ("/proc/TID/" or "/proc/PID/task/TID/"):
// time on the CPU, time waiting on the run queue (ns), timeslices; nullopt
// once the thread has ended.
struct ThreadSchedstat {
  long long run_ns = 0, wait_ns = 0, timeslices = 0;
};
inline std::optional<ThreadSchedstat> read_schedstat(const std::string& task_dir) {
  ThreadSchedstat s;
  const std::string text = read_proc_file(task_dir + "schedstat");
  if (std::sscanf(text.c_str(), "%lld %lld %lld", &s.run_ns, &s.wait_ns, &s.timeslices) != 3) return std::nullopt;
  return s;
}

}  // namespace vmlat
