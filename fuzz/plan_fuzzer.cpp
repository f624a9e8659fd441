// libFuzzer target: any bytes as a plan file, loaded as `vmlat validate` loads
// it (load_plan with the real plugins, built instrumented in the same tree),
// then expanded as `vmlat plan` does. Besides the sanitizers, it checks what
// docs/plan-format.md promises: every error is located in the plan, there are
// at most 100 (and the marker), and a plan without errors has between 1 and
// plan_limits::kCells cells with unique ids and declared instances.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "loader.hpp"
#include "plan.hpp"

namespace fs = std::filesystem;

namespace {

fs::path g_dir, g_plan;
vmlat::PluginRegistry* g_registry = nullptr;  // never freed: plugins stay loaded for the process

[[noreturn]] void broken(const std::string& what) {
  std::fprintf(stderr, "plan_fuzzer: invariant broken: %s\n", what.c_str());
  std::abort();
}

void remove_dir() {
  std::error_code ec;
  fs::remove_all(g_dir, ec);
}

void write_plan(const std::uint8_t* data, std::size_t size) {
  const int fd = ::open(g_plan.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) broken("cannot write " + g_plan.string());
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) broken("cannot write " + g_plan.string());
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* shm = "/dev/shm";
  std::string base = (fs::is_directory(shm) ? fs::path(shm) : fs::temp_directory_path()) / "vmlat-plan-fuzzer-XXXXXX";
  if (!::mkdtemp(base.data())) broken("mkdtemp failed");
  g_dir = base;
  g_plan = g_dir / "plan.toml";
  std::atexit(remove_dir);
  g_registry = new vmlat::PluginRegistry({VMLAT_FUZZ_PLUGIN_DIR});
  for (const char* name : {"host", "kvm", "stress", "cyclic"})
    if (!g_registry->find(name)) broken(std::string("plugin '") + name + "' not found in " VMLAT_FUZZ_PLUGIN_DIR);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  write_plan(data, size);
  vmlat::Diagnostics diags;
  vmlat::Plan plan = vmlat::load_plan(g_plan, diags, g_registry);

  if (diags.all().size() > 101) broken(std::to_string(diags.all().size()) + " diagnostics");
  for (const auto& d : diags.all()) {
    if (d.where.file != g_plan.string()) broken("a diagnostic names another file: " + d.str());
    if (d.message.empty() || d.where.line < 0 || d.where.column < 0) broken("a diagnostic without message or location: " + d.str());
    if (d.where.line > 0 && d.where.column < 1) broken("a line without a column: " + d.str());
  }
  const auto cells = vmlat::expand(plan);  // also on plans with errors: it must be safe
  if (!diags.empty()) return 0;

  if (cells.empty() || cells.size() > vmlat::plan_limits::kCells) broken(std::to_string(cells.size()) + " cells in a valid plan");
  std::set<std::string> ids;
  int index = 0;
  for (const auto& c : cells) {
    if (c.index != ++index) broken("cell indices are not 1..n");
    if (!ids.insert(c.spec.id).second) broken("two cells with the id " + c.spec.id);
    if (c.spec.id.size() > vmlat::plan_limits::kCellIdChars) broken("a cell id of " + std::to_string(c.spec.id.size()) + " characters");
    if (!plan.backends.count(c.backend) || !plan.probes.count(c.probe) ||
        (c.workload != "none" && !plan.workloads.count(c.workload)))
      broken("cell " + c.spec.id + " names an instance the plan does not declare");
    for (const auto& g : plan.gates) (void)g.matches(c.spec);
  }
  return 0;
}
