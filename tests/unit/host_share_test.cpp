// `vmlat run --host` (core/src/run/host_share.cpp): the static share of a
// fan-out job. Every job must cut the plan the same way whichever host it is
// run for, the shares must cover every cell exactly once, and a name or tag
// the plan does not have is a usage error naming what there is.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "app.hpp"
#include "hosts.hpp"
#include "loader.hpp"
#include "run/host_share.hpp"
#include "vmlat/exit_codes.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

namespace {

// Hosts a, b (kvm) and c (kvm); host cells spread, kvm cells on the kvm
// hosts, the pinned cells on b.
const char* kPlan = R"([plan]
name = "share"
[hosts.a]
address = "a.lab"
[hosts.b]
address = "b.lab"
tags = ["kvm"]
[hosts.c]
address = "c.lab"
tags = ["kvm", "big"]
[matrix]
backend = ["host", "vm"]
workload = ["none"]
probe = ["p"]
period = ["1ms", "500us", "250us"]
[backend.host]
[backend.vm]
plugin = "kvm"
[probe.p]
plugin = "cyclic"
)";

Plan load(const std::string& text) {
  const fs::path file = fs::temp_directory_path() / ("vmlat-host-share-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(file) << text;
  Diagnostics diags;
  Plan plan = load_plan(file, diags, nullptr);
  fs::remove(file);
  EXPECT_TRUE(diags.empty()) << diags.str();
  return plan;
}

PluginRegistry& registry() {
  static PluginRegistry r({fs::path(VMLAT_BINARY_DIR) / "plugins"});
  return r;
}

struct Share {
  int code = -1;
  std::vector<HostSpec> specs;
  std::vector<Cell> cells;
  json share;
  std::string err;
};

Share take(const Plan& plan, std::vector<std::string> hosts, std::string this_host = "") {
  RunOptions options;
  options.host_share = std::move(hosts);
  options.this_host = std::move(this_host);
  Share s;
  s.specs = plan.hosts;
  s.cells = expand(plan);
  std::ostringstream err;
  s.code = take_host_share(plan, registry(), options, s.specs, s.cells, err, s.share);
  s.err = err.str();
  return s;
}

}  // namespace

TEST(HostShare, EveryJobCutsThePlanTheSameWayAndTheSharesCoverEveryCellOnce) {
  ASSERT_NE(registry().find("kvm"), nullptr) << "the kvm plugin's descriptor gives the kvm backend's host tag";
  const Plan plan = load(kPlan);
  const auto all = expand(plan);
  std::map<std::string, std::string> owner;
  json first;
  for (const std::string host : {"a", "b", "c"}) {
    Share s = take(plan, {host});
    ASSERT_EQ(s.code, exit_code::pass) << s.err;
    if (first.is_null()) first = s.share["cells"];
    EXPECT_EQ(s.share["cells"], first) << "the job for " << host << " records another cut of the plan";
    EXPECT_EQ(s.share["hosts"], json::array({host}));
    ASSERT_EQ(s.specs.size(), 1u);
    EXPECT_EQ(s.specs[0].name, host) << "a job reaches its own hosts only";
    int index = 0;
    for (const auto& c : s.cells) {
      EXPECT_EQ(c.spec.host_name, host);
      EXPECT_EQ(c.index, ++index) << "a share is numbered 1..N";
      EXPECT_TRUE(owner.emplace(c.spec.id, host).second) << c.spec.id << " is in two shares";
      if (c.backend == "vm") {
        EXPECT_NE(host, "a") << c.spec.id << ": a kvm cell on a host without the kvm tag";
      }
    }
  }
  EXPECT_EQ(owner.size(), all.size()) << "some cell is in no share";
  // The recorded cut is the union of the shares.
  for (const auto& c : first) EXPECT_EQ(owner[c["id"].get<std::string>()], c["host"].get<std::string>());
  // Spread: no host takes every cell.
  std::map<std::string, int> per_host;
  for (const auto& [id, host] : owner) ++per_host[host];
  EXPECT_EQ(per_host.size(), 3u);
}

TEST(HostShare, WithoutFactsItIsThePlacementOfARunInWhichEveryHostAnswers) {
  const Plan plan = load(kPlan);
  std::vector<HostState> answering;
  for (const auto& spec : plan.hosts) {
    HostState h;
    h.spec = spec;
    h.facts = json{{"preempt_rt", true}};
    answering.push_back(h);
  }
  auto dynamic = expand(plan);
  ASSERT_TRUE(place_cells(plan, dynamic, answering, true, registry()).problems.empty());
  const json cut = take(plan, {"a"}).share["cells"];
  ASSERT_EQ(cut.size(), dynamic.size());
  for (std::size_t i = 0; i < dynamic.size(); ++i) EXPECT_EQ(cut[i]["host"], dynamic[i].spec.host_name) << dynamic[i].spec.id;
}

TEST(HostShare, ATagTakesEveryHostCarryingItAndSeveralSelectorsAddUp) {
  const Plan plan = load(kPlan);
  Share kvm = take(plan, {"tag=kvm"});
  ASSERT_EQ(kvm.code, exit_code::pass) << kvm.err;
  EXPECT_EQ(kvm.share["hosts"], json::array({"b", "c"}));
  Share both = take(plan, {"b", "c"});
  EXPECT_EQ(kvm.cells.size(), both.cells.size());
  Share big = take(plan, {"tag=big", "a"});
  EXPECT_EQ(big.share["hosts"], json::array({"a", "c"}));
}

TEST(HostShare, AnUnknownNameOrTagIsAUsageErrorListingWhatThePlanHas) {
  const Plan plan = load(kPlan);
  Share name = take(plan, {"a", "d"});
  EXPECT_EQ(name.code, exit_code::usage);
  EXPECT_NE(name.err.find("--host d: the plan has no such host (hosts: a, b, c)"), std::string::npos) << name.err;
  Share tag = take(plan, {"tag=gpu"});
  EXPECT_EQ(tag.code, exit_code::usage);
  EXPECT_NE(tag.err.find("no host has that tag (tags: big, kvm)"), std::string::npos) << tag.err;
  Share here = take(plan, {}, "tag=kvm");
  EXPECT_EQ(here.code, exit_code::usage) << "this machine is one host, not a tag";
}

TEST(HostShare, ThisHostIsMeasuredHereWithoutSshOrProvisioning) {
  const Plan plan = load(kPlan);
  Share s = take(plan, {}, "b");
  ASSERT_EQ(s.code, exit_code::pass) << s.err;
  ASSERT_EQ(s.specs.size(), 1u);
  EXPECT_TRUE(s.specs[0].local());
  EXPECT_FALSE(s.specs[0].provision);
  EXPECT_EQ(s.share["this_host"], "b");
  EXPECT_EQ(s.share["cells"], take(plan, {"b"}).share["cells"]) << "--this-host cuts the plan as --host does";
  EXPECT_EQ(take(plan, {"b"}).specs[0].address, "b.lab") << "--host keeps the address";
}

TEST(HostShare, AShareWithoutCellsIsNotAnError) {
  // Every cell pinned to b: a and c take none.
  std::string text = kPlan;
  text.replace(text.find("period = "), 0, "host = [\"b\"]\n");
  const Plan plan = load(text);
  Share s = take(plan, {"c"});
  EXPECT_EQ(s.code, exit_code::pass) << s.err;
  EXPECT_TRUE(s.cells.empty());
  EXPECT_EQ(s.share["cells"].size(), expand(plan).size()) << "the cut still lists every cell of the plan";
  EXPECT_EQ(take(plan, {"b"}).cells.size(), expand(plan).size());
}

TEST(HostShare, HostKernelIsCheckedAgainstTheFactsOfTheJobsOwnHosts) {
  std::string text = kPlan;
  text.replace(text.find("period = "), 0, "host_kernel = [\"rt\"]\n");
  const Plan plan = load(text);
  Share s = take(plan, {"a"});
  ASSERT_EQ(s.code, exit_code::pass) << s.err << " (host_kernel is not judged without facts)";
  ASSERT_FALSE(s.cells.empty());
  HostState a;
  a.spec = s.specs[0];
  a.facts = json{{"preempt_rt", false}, {"kernel_release", "6.1.0-18-amd64"}, {"preempt_model", "PREEMPT_DYNAMIC"}};
  const auto problems = share_kernel_problems(s.cells, {a});
  ASSERT_EQ(problems.size(), s.cells.size());
  EXPECT_NE(problems[0].find("runs 6.1.0-18-amd64 (PREEMPT_DYNAMIC), and the cell needs a PREEMPT_RT host kernel"),
            std::string::npos)
      << problems[0];
  a.facts["preempt_rt"] = true;
  EXPECT_TRUE(share_kernel_problems(s.cells, {a}).empty());
  a.facts["preempt_rt"] = false;
  a.reachable = false;
  EXPECT_TRUE(share_kernel_problems(s.cells, {a}).empty()) << "an unreachable host's cells fail with ssh's reason instead";
}
