// libFuzzer target: the small parsers of plan values, each on the whole
// input: durations ("50us", units.hpp), CPU lists ("0-3,5", cpus.hpp) and gate
// percentiles ("p99.9", plan.hpp). Besides the sanitizers, it checks that
// what they accept survives a round trip through its formatter, and that
// every refusal says why.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "plan.hpp"
#include "vmlat/cpus.hpp"
#include "vmlat/units.hpp"

namespace {

void require(bool ok, const char* what, std::string_view input) {
  if (ok) return;
  std::fprintf(stderr, "parsers_fuzzer: %s (input of %zu bytes)\n", what, input.size());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  std::string why;
  if (auto d = vmlat::parse_duration(text, &why)) {
    require(d->count() >= 0, "a negative duration", text);
    const auto back = vmlat::parse_duration(vmlat::format_duration(*d));
    require(back && *back == *d, "format_duration does not parse back to the same duration", text);
    require(!vmlat::format_latency(*d).empty(), "format_latency is empty", text);
  } else {
    require(!why.empty(), "parse_duration refused without a reason", text);
  }

  try {
    const auto cpus = vmlat::parse_cpu_list(text);
    require(!cpus.empty(), "an empty CPU list accepted", text);
    for (std::size_t i = 0; i < cpus.size(); ++i) {
      require(cpus[i] >= 0 && cpus[i] <= 65535, "a CPU number out of range", text);
      require(i == 0 || cpus[i - 1] < cpus[i], "a CPU list not sorted or with duplicates", text);
    }
    require(vmlat::parse_cpu_list(vmlat::format_cpu_list(cpus)) == cpus, "format_cpu_list does not parse back", text);
  } catch (const std::invalid_argument& e) {
    require(*e.what() != '\0', "parse_cpu_list refused without a reason", text);
  }

  why.clear();
  if (auto q = vmlat::parse_percentile(text, &why)) {
    require(*q > 0 && *q < 1, "a percentile outside (0, 1)", text);
  } else {
    require(!why.empty(), "parse_percentile refused without a reason", text);
  }
  return 0;
}
