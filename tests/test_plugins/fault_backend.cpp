// A FAULT-INJECTION backend for the fault suite (tests/faults): a host
// backend (the probe runs on this machine, for real) that can be told to
// throw from one of its phases — including things that are not
// std::exceptions, as a buggy third-party plugin might — or to fill the
// filesystem of the results directory when it tears down, so that the core's
// own write of result.json fails for real. Never installed; kept out of
// build/plugins so that the CLI only sees it with --plugin-dir.
//
//   [backend.faulty]
//   plugin = "fault-backend"
//   throw_in = "boot"          # "", "prepare", "boot", "probe_target", "teardown"
//   throw_what = "int"         # "int", "string" (a std::string), "std" (std::runtime_error)
//   teardown_marker = "/path"  # teardown appends a line here: proof that it ran
//   fill_disk = true           # teardown fills the cell directory's filesystem
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <vmlat/local.hpp>
#include <vmlat/plugin.hpp>

namespace {

class FaultBackend final : public vmlat::Backend {
 public:
  void configure(vmlat::Settings& s) override {
    throw_in_ = s.choice("throw_in", "", {"", "prepare", "boot", "probe_target", "teardown"});
    throw_what_ = s.choice("throw_what", "int", {"int", "string", "std"});
    marker_ = s.string("teardown_marker", "");
    fill_disk_ = s.boolean("fill_disk", false);
  }
  std::vector<std::string> placements() const override { return {"host"}; }

  void prepare(vmlat::CellContext& ctx) override {
    executor_ = vmlat::make_local_executor(ctx.work_dir() / "host", "host");
    maybe_throw("prepare");
  }
  void boot(vmlat::CellContext&) override { maybe_throw("boot"); }
  vmlat::Executor& probe_target() override {
    maybe_throw("probe_target");
    return *executor_;
  }
  vmlat::Executor& placement(const std::string&) override { return *executor_; }

  void teardown(vmlat::CellContext& ctx) override {
    if (!marker_.empty()) {
      int fd = ::open(marker_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        std::string line = "teardown " + ctx.cell().id + "\n";
        ssize_t ignored = ::write(fd, line.data(), line.size());
        (void)ignored;
        ::close(fd);
      }
    }
    executor_.reset();
    if (fill_disk_) fill(ctx.cell_dir() / "disk-filler");
    maybe_throw("teardown");
  }

 private:
  void maybe_throw(const std::string& phase) {
    if (phase != throw_in_) return;
    if (throw_what_ == "int") throw 42;
    if (throw_what_ == "string") throw std::string("a std::string thrown from " + phase);
    throw std::runtime_error("fault-backend: injected std::runtime_error in " + phase);
  }
  // Writes until the filesystem says ENOSPC (bounded at 1 GiB).
  static void fill(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    std::vector<char> block(4096, 'x');
    for (long written = 0; written < (1L << 30);) {
      ssize_t n = ::write(fd, block.data(), block.size());
      if (n <= 0) break;
      written += n;
    }
    ::close(fd);
  }

  std::string throw_in_, throw_what_, marker_;
  bool fill_disk_ = false;
  std::unique_ptr<vmlat::Executor> executor_;
};

}  // namespace

VMLAT_PLUGIN(FaultBackend, "fault-backend", "backend", "0.0.1",
             "FAULT INJECTION (tests only): a host backend that throws or fills the disk on request")
