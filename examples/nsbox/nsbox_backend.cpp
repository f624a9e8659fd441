// nsbox: an example backend built out of tree against the installed vmlat-dev
// package (README.md). It has the shape of a hypervisor backend: prepare()
// checks what the "guest" needs, boot() starts it and proves its channel
// works, probe_target() and placement("guest") run commands inside it,
// placement("host") beside it, teardown() always cleans up. The "guest" is a
// set of fresh Linux namespaces made by util-linux's unshare(1), so it runs on
// any Linux machine, with no hypervisor.
#include <algorithm>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <vmlat/local.hpp>
#include <vmlat/plugin.hpp>

namespace {

// The namespaces unshare(1) can give a program it execs directly. "pid" is
// left out on purpose: a PID namespace needs `unshare --fork`, and then the
// probe's SIGINT (an interrupted cell keeps its partial data) would reach
// unshare instead of the probe.
const std::vector<std::string> kNamespaces = {"uts", "ipc", "mount", "net", "cgroup"};

// unshare's option name -> the namespace's file in /proc/<pid>/ns.
std::string ns_file(const std::string& ns) { return "/proc/self/ns/" + std::string(ns == "mount" ? "mnt" : ns); }

// Runs every command as `unshare --<ns>... -- argv` through the executor of
// the machine the cell runs on. unshare execs the command, so the process the
// core starts, signals and reaps is the command itself.
class BoxExecutor final : public vmlat::Executor {
 public:
  BoxExecutor(vmlat::Executor& host, std::vector<std::string> prefix)
      : host_(host), prefix_(std::move(prefix)) {}
  std::string name() const override { return "nsbox"; }
  vmlat::CommandResult run(const vmlat::Command& command) override { return host_.run(boxed(command)); }
  std::unique_ptr<vmlat::Job> start(const vmlat::Command& command) override { return host_.start(boxed(command)); }
  // The box shares the host's file system: the same programs are there.
  std::optional<std::string> find_program(const std::string& name) override { return host_.find_program(name); }
  // The box shares the host's filesystem: the host's temp dir serves.
  std::string temp_dir() override { return host_.temp_dir(); }

 private:
  vmlat::Command boxed(const vmlat::Command& command) const {
    vmlat::Command c = command;
    c.argv = prefix_;
    c.argv.insert(c.argv.end(), command.argv.begin(), command.argv.end());
    return c;
  }
  vmlat::Executor& host_;
  std::vector<std::string> prefix_;
};

class NsboxBackend final : public vmlat::Backend {
 public:
  void configure(vmlat::Settings& settings) override {
    unshare_ = settings.string("unshare", "unshare");
    namespaces_ = settings.string_list("namespaces", {"uts", "ipc", "mount"});
    if (unshare_.empty()) settings.error("unshare", "'unshare' must name a program (default \"unshare\")");
    if (namespaces_.empty()) settings.error("namespaces", "'namespaces' must name at least one namespace");
    for (const auto& ns : namespaces_) {
      if (std::find(kNamespaces.begin(), kNamespaces.end(), ns) == kNamespaces.end()) {
        std::string message = "unknown namespace '" + ns + "' (one of uts, ipc, mount, net, cgroup)";
        auto hint = vmlat::did_you_mean(ns, kNamespaces);
        if (!hint.empty()) message += "; did you mean '" + hint + "'?";
        settings.error("namespaces", message);
      }
    }
  }

  std::vector<std::string> placements() const override { return {"guest", "host"}; }

  void prepare(vmlat::CellContext& ctx) override {
    host_ = &ctx.host();
    auto unshare = host_->find_program(unshare_);
    if (!unshare) throw vmlat::InfraError("nsbox: " + unshare_ + " not found on " + host_->name() + ": install util-linux");
    std::vector<std::string> prefix{*unshare};
    for (const auto& ns : namespaces_) prefix.push_back("--" + ns);
    prefix.push_back("--");
    facts_ = {{"unshare", *unshare}, {"namespaces", namespaces_}};
    auto version = host_->run(vmlat::Command{{*unshare, "--version"}, std::chrono::seconds(10)});
    if (version.ok()) facts_["unshare_version"] = first_line(version.out);
    box_ = std::make_unique<BoxExecutor>(*host_, std::move(prefix));
  }

  // "Booting" the box: a command inside it must see other namespaces than
  // the host. This is where a hypervisor backend waits for its guest agent.
  void boot(vmlat::CellContext& ctx) override {
    std::vector<std::string> argv{"readlink"};
    for (const auto& ns : namespaces_) argv.push_back(ns_file(ns));
    auto inside = box().run(vmlat::Command{argv, std::chrono::seconds(10)});
    if (!inside.ok())
      throw vmlat::InfraError("nsbox: a command in the box failed (" + inside.describe() +
                              "); unshare needs root or user namespaces");
    auto outside = host_->run(vmlat::Command{argv, std::chrono::seconds(10)});
    if (!outside.ok()) throw vmlat::InfraError("nsbox: readlink on the host failed: " + outside.describe());
    auto in_ids = lines(inside.out), out_ids = lines(outside.out);
    if (in_ids.size() != namespaces_.size() || out_ids.size() != namespaces_.size())
      throw vmlat::InfraError("nsbox: readlink printed " + std::to_string(in_ids.size()) + " namespace ids, expected " +
                              std::to_string(namespaces_.size()));
    vmlat::json applied = vmlat::json::object();
    for (std::size_t i = 0; i < namespaces_.size(); ++i) {
      if (in_ids[i] == out_ids[i])
        throw vmlat::InfraError("nsbox: the box shares the host's " + namespaces_[i] + " namespace (" + in_ids[i] + ")");
      applied[namespaces_[i]] = {{"box", in_ids[i]}, {"host", out_ids[i]}};
    }
    // Read back, not just requested: what the box really got.
    facts_["applied"] = applied;
    facts_["target"] = vmlat::collect_system_facts(box());
    ctx.log().info("nsbox: box up (" + std::to_string(namespaces_.size()) + " namespaces)");
  }

  vmlat::Executor& probe_target() override { return box(); }

  vmlat::Executor& placement(const std::string& where) override {
    if (where == "guest") return box();
    if (where == "host" && host_) return *host_;
    throw vmlat::InfraError("nsbox: no placement \"" + where + "\" (it offers \"guest\" and \"host\")");
  }

  // Every command in the box was started through the host's executor, which
  // stops and reaps it: nothing else is left to stop.
  void teardown(vmlat::CellContext&) noexcept override {
    box_.reset();
    host_ = nullptr;
  }

  vmlat::json facts() const override { return facts_; }

 private:
  vmlat::Executor& box() {
    if (!box_) throw vmlat::InfraError("nsbox: used before prepare() or after teardown()");
    return *box_;
  }
  static std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }
  static std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    return out;
  }

  std::string unshare_;
  std::vector<std::string> namespaces_;
  vmlat::Executor* host_ = nullptr;
  std::unique_ptr<BoxExecutor> box_;
  vmlat::json facts_ = vmlat::json::object();
};

}  // namespace

VMLAT_PLUGIN(NsboxBackend, "nsbox", "backend", "0.1.0",
             "example (out of tree): the probe runs in fresh Linux namespaces made by unshare(1)")
