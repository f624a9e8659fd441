// The smallest useful vmlat plugin: a workload that keeps a command running
// wherever the plan places it. Copy this folder to plugins/<name>/ to start.
#include <vmlat/plugin.hpp>

namespace {

class SkeletonWorkload final : public vmlat::Workload {
 public:
  // Read every setting through the typed getters: they record file:line:col
  // errors, and any key you never ask for is reported as unknown.
  void configure(vmlat::Settings& settings) override {
    command_ = settings.string_list("command", {"sleep", "infinity"});
    if (command_.empty()) settings.error("command", "'command' must not be empty");
  }

  void start(vmlat::Executor& where, vmlat::CellContext& ctx) override {
    if (!where.find_program(command_.front()))
      throw vmlat::InfraError(command_.front() + " not found on " + where.name());
    ctx.log().info("starting " + command_.front() + " on " + where.name());
    job_ = where.start(vmlat::Command{command_});
  }

  void stop(vmlat::CellContext& ctx) override {
    if (!job_) return;
    bool died_early = !job_->running();
    auto result = job_->stop(std::chrono::seconds(5));
    ctx.save_artifact("skeleton.out", result.out);
    job_.reset();
    if (died_early) throw vmlat::InfraError("the workload died before it was stopped: " + result.describe());
  }

  vmlat::json facts() const override { return {{"command", command_}}; }

 private:
  std::vector<std::string> command_;
  std::unique_ptr<vmlat::Job> job_;
};

}  // namespace

VMLAT_PLUGIN(SkeletonWorkload, "skeleton", "workload", "0.1.0", "example: keeps a command running during the probe")
