// Plan hosts that are one machine (machines.hpp): identity facts, groups,
// the refusal, and the turns the controller's workers take.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "facts.hpp"
#include "machines.hpp"
#include "plan.hpp"
#include "vmlat/interrupt.hpp"

using namespace vmlat;

namespace {

std::function<std::optional<std::string>(const std::string&)> values(std::map<std::string, std::optional<std::string>> raw) {
  return [raw](const std::string& key) -> std::optional<std::string> {
    auto it = raw.find(key);
    return it == raw.end() ? std::nullopt : it->second;
  };
}

HostState host(const std::string& name, std::optional<std::string> machine_id, std::optional<std::string> boot_id,
               bool local = false, const std::string& hostname = "lab1") {
  HostState h;
  h.spec.name = name;
  h.spec.address = local ? "" : "10.0.0.7";
  h.facts = json{{"hostname", hostname},
                 {"identity", identity_from(values({{"machine_id", machine_id}, {"boot_id", boot_id}}))}};
  return h;
}

Cell cell_on(const std::string& host_name) {
  Cell c;
  c.spec.host_name = host_name;
  return c;
}

}  // namespace

TEST(Machines, IdentitiesAreHashedNeverShown) {
  const std::string id = "3d1219c7c4c5404aaa1f6d2a48adfda4";
  auto a = identity_from(values({{"machine_id", id + "\n"}, {"boot_id", "5dbcf56d-855c-43bc-98ee-3e5ea7a69d4d\n"}}));
  auto b = identity_from(values({{"machine_id", id}, {"boot_id", std::nullopt}}));
  ASSERT_TRUE(a["machine_id"].is_string());
  EXPECT_EQ(a["machine_id"].get<std::string>().size(), 32u);
  EXPECT_EQ(a["machine_id"], b["machine_id"]);  // the newline does not count
  EXPECT_EQ(a.dump().find("3d1219c7"), std::string::npos);
  EXPECT_EQ(a.dump().find("5dbcf56d"), std::string::npos);
  EXPECT_NE(a["machine_id"], a["boot_id"]);
  EXPECT_TRUE(b["boot_id"].is_null());
  EXPECT_TRUE(identity_from(values({{"machine_id", "  \n"}}))["machine_id"].is_null());
}

TEST(Machines, OneBootIdIsOneMachineAndClonesAreNot) {
  std::vector<HostState> hosts = {
      host("a", "m1", "boot1"),
      host("clone", "m1", "boot2"),  // a VM image cloned with its machine-id: another kernel
      host("b", "m2", "boot1"),      // a container on a's kernel: its own machine-id, a's CPUs
      host("c", "m3", "boot3"),
  };
  auto groups = same_machines(hosts);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].hosts, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(groups[0].known_by, "one running kernel");
  EXPECT_EQ(describe(groups[0]), "hosts a and b are one machine (lab1, one running kernel)");
  EXPECT_EQ(same_machine_as(groups, "a"), std::vector<std::string>{"b"});
  EXPECT_TRUE(same_machine_as(groups, "clone").empty());
  EXPECT_TRUE(same_machine_as(groups, "c").empty());
}

TEST(Machines, WithoutBootIdsTheMachineIdDecides) {
  std::vector<HostState> hosts = {host("x", "m1", std::nullopt), host("y", "m2", std::nullopt), host("z", "m1", std::nullopt),
                                  host("w", std::nullopt, std::nullopt), host("v", std::nullopt, std::nullopt)};
  auto groups = same_machines(hosts);
  ASSERT_EQ(groups.size(), 1u);  // nothing known of w and v: not grouped
  EXPECT_EQ(groups[0].hosts, (std::vector<std::string>{"x", "z"}));
  EXPECT_EQ(groups[0].known_by, "one machine-id");
}

TEST(Machines, GroupsAreTransitiveAndUnreachableHostsStayOut) {
  std::vector<HostState> hosts = {host("p", "m1", "boot1"), host("q", std::nullopt, "boot1"), host("r", std::nullopt, "boot1"),
                                  host("down", "m1", "boot1")};
  hosts[3].reachable = false;
  auto groups = same_machines(hosts);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].hosts, (std::vector<std::string>{"p", "q", "r"}));
  EXPECT_EQ(describe(groups[0]), "hosts p, q and r are one machine (lab1, one running kernel)");
}

TEST(Machines, AnOddHostnameStaysOnOneLine) {
  std::vector<HostState> hosts = {host("a", "m", "b", false, "evil\nhost\x1b[31m"), host("b", "m", "b")};
  auto text = describe(same_machines(hosts).at(0));
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
}

TEST(Machines, ThisMachineAndItselfOverSshAreRefusedOnlyWhenBothHaveCells) {
  std::vector<HostState> hosts = {host("here", "m", "boot", true), host("lo", "m", "boot"), host("other", "n", "boot9")};
  auto groups = same_machines(hosts);
  auto problems = same_machine_problems(groups, hosts, {cell_on("here"), cell_on("lo"), cell_on("other")});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("hosts here and lo are one machine"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("measurement lock"), std::string::npos) << problems[0];
  EXPECT_TRUE(same_machine_problems(groups, hosts, {cell_on("here"), cell_on("other")}).empty());
  EXPECT_TRUE(same_machine_problems(groups, hosts, {cell_on("lo")}).empty());
  EXPECT_EQ(what_run_does(groups.at(0), hosts), "vmlat run refuses to give cells to both here and lo");
  // Two hosts over ssh that are one machine: serialised, not refused.
  std::vector<HostState> remote = {host("a", "m", "boot"), host("b", "m", "boot")};
  EXPECT_TRUE(same_machine_problems(same_machines(remote), remote, {cell_on("a"), cell_on("b")}).empty());
  EXPECT_EQ(what_run_does(same_machines(remote).at(0), remote), "vmlat run measures their cells one at a time");
}

TEST(Machines, HostsOfOneMachineNeverHoldATurnAtOnce) {
  std::vector<HostState> hosts = {host("a", "m", "boot"), host("b", "m", "boot"), host("alone", "n", "other")};
  MachineTurns turns(same_machines(hosts));
  std::atomic<int> holding{0}, most{0};
  std::mutex order_mutex;
  std::string order;
  std::atomic<int> waited{0};
  auto worker = [&](const std::string& name, char mark) {
    for (int i = 0; i < 20; ++i) {
      auto turn = turns.take(name, [&](const std::string& holder) {
        EXPECT_NE(holder, name);
        ++waited;
      });
      int now = ++holding;
      most = std::max(most.load(), now);
      {
        std::lock_guard lock(order_mutex);
        order += mark;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      --holding;
    }
  };
  std::thread ta(worker, "a", 'a'), tb(worker, "b", 'b');
  ta.join();
  tb.join();
  EXPECT_EQ(most.load(), 1) << "two hosts of one machine held a turn at once";
  EXPECT_EQ(order.size(), 40u);
  EXPECT_GT(waited.load(), 0);
  // A host alone on its machine never waits, even while the others hold turns.
  auto held = turns.take("a");
  auto free = turns.take("alone", [&](const std::string&) { ADD_FAILURE() << "alone waited"; });
  auto unknown = turns.take("not-a-host");
}

TEST(Machines, FirstComeFirstServed) {
  // a holds the turn; b asks, then a asks again: b goes first.
  std::vector<HostState> hosts = {host("a", "m", "boot"), host("b", "m", "boot")};
  MachineTurns turns(same_machines(hosts));
  auto held = turns.take("a");
  std::mutex order_mutex;
  std::string order;
  std::atomic<int> waiting{0};
  auto ask = [&](const std::string& name) {
    return std::thread([&, name] {
      auto turn = turns.take(name, [&](const std::string& holder) {
        EXPECT_EQ(holder, "a");
        ++waiting;
      });
      std::lock_guard lock(order_mutex);
      order += name;
    });
  };
  auto wait_for_waiters = [&](int n) {
    for (int i = 0; i < 1000 && waiting.load() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(waiting.load(), n);
  };
  auto tb = ask("b");
  wait_for_waiters(1);
  auto ta = ask("a");
  wait_for_waiters(2);
  held.release();
  tb.join();
  ta.join();
  EXPECT_EQ(order, "ba");
}

TEST(Machines, ACancelledRunStopsWaitingForItsTurn) {
  std::vector<HostState> hosts = {host("a", "m", "boot"), host("b", "m", "boot")};
  MachineTurns turns(same_machines(hosts));
  auto held = turns.take("a");
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    auto turn = turns.take("b");
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(returned.load()) << "b took a turn while a held one";
  request_cancel();
  waiter.join();
  EXPECT_TRUE(returned.load());
  reset_cancel();
  held.release();
  // The cancelled wait left no one in the queue: b's next turn is free.
  auto again = turns.take("b");
}

// The seed's Dom0 row needs to know where a host cell ran: Xen's control
// domain says "control_d" in its capabilities, another domain does not.
TEST(SystemFacts, XenRoleFromHypervisorTypeAndCapabilities) {
  EXPECT_EQ(system_facts_from(values({{"hypervisor_type", "xen\n"}, {"xen_capabilities", "control_d\n"}}))["xen_role"], "dom0");
  EXPECT_EQ(system_facts_from(values({{"hypervisor_type", "xen\n"}, {"xen_capabilities", ""}}))["xen_role"], "domU");
  EXPECT_EQ(system_facts_from(values({{"hypervisor_type", "xen"}}))["xen_role"], "domU");
  EXPECT_TRUE(system_facts_from(values({{"hypervisor_type", "kvm"}, {"xen_capabilities", "control_d"}}))["xen_role"].is_null());
  EXPECT_TRUE(system_facts_from(values({}))["xen_role"].is_null());
}
