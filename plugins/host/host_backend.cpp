// The host backend: the bare-metal baseline. The probe and every workload run
// on the machine vmlat runs on, through a local executor. See README.md.
#include <memory>
#include <string>
#include <vector>

#include <vmlat/local.hpp>
#include <vmlat/plugin.hpp>

namespace vmlat::host {
namespace {

class HostBackend final : public Backend {
 public:
  // The backend has no settings: its table may only hold the core's keys.
  void configure(Settings&) override {}

  std::vector<std::string> placements() const override { return {"host"}; }

  void prepare(CellContext& ctx) override {
    executor_ = make_local_executor(ctx.work_dir() / "host", "host");
    json target = collect_system_facts(*executor_);
    target["virtualization"] = detect_virtualization(*executor_);
    facts_ = json{{"target", std::move(target)}};
  }

  void boot(CellContext&) override {}

  Executor& probe_target() override { return executor(); }

  Executor& placement(const std::string& where) override {
    if (where != "host")
      throw InfraError("the host backend has no placement \"" + where + "\": it only offers \"host\"");
    return executor();
  }

  void teardown(CellContext&) noexcept override { executor_.reset(); }

  json facts() const override { return facts_; }

 private:
  Executor& executor() {
    if (!executor_) throw InfraError("host backend: used before prepare() or after teardown()");
    return *executor_;
  }

  // What systemd-detect-virt says ("none" on bare metal, "kvm", "docker", ...),
  // or null if it is not installed: a "bare-metal" baseline taken inside a VM
  // or container should say so in its result.
  static json detect_virtualization(Executor& where) {
    if (!where.find_program("systemd-detect-virt")) return nullptr;
    try {
      // Exits 1 (printing "none") when no virtualization is found.
      auto r = where.run(Command{{"systemd-detect-virt"}, std::chrono::seconds(20)});
      if (r.signal != 0 || r.timed_out) return nullptr;
      std::string out = r.out;
      while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
      if (out.empty() || out.find('\n') != std::string::npos) return nullptr;
      return out;
    } catch (const InfraError&) {
      return nullptr;
    }
  }

  std::unique_ptr<Executor> executor_;
  json facts_ = json::object();
};

}  // namespace
}  // namespace vmlat::host

VMLAT_PLUGIN(vmlat::host::HostBackend, "host", "backend", "0.1.0",
             "bare-metal baseline: the probe and workloads run on this machine")
