// One CI job of a fan-out (docs/fan-out.md): `vmlat run PLAN --host NAME`
// measures NAME's share of the plan. Every job must cut the plan the same
// way, whatever answers when it runs, so the share is a static placement:
// the placement rules of docs/plan-format.md over every host, all taken
// as reachable, without their facts (no ssh to the other jobs' hosts).
// host_kernel, which needs facts, is checked afterwards against the facts
// of the job's own hosts only.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "hosts.hpp"
#include "plan.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

class PluginRegistry;
struct RunOptions;

// Narrows `specs` to the hosts options.host_share and options.this_host
// name (this_host made a local host) and `cells` to their static share,
// renumbered 1..N in plan order. `share` becomes what run.json records
// under "share", with "cells": every cell of the plan's selection and the
// host of its share (the gate's list of what must be measured).
// exit_code::pass (cells may then be empty: these hosts take no cell), or
// after saying why on `err`: 2 for a name or tag that is not the plan's
// (the names and tags listed), 3 for cells no host can take.
int take_host_share(const Plan& plan, PluginRegistry& registry, const RunOptions& options, std::vector<HostSpec>& specs,
                    std::vector<Cell>& cells, std::ostream& err, json& share);

// The cells of a share whose host_kernel the facts of their (reachable)
// host contradict: one line each, as Placement::problems.
std::vector<std::string> share_kernel_problems(const std::vector<Cell>& cells, const std::vector<HostState>& hosts);

}  // namespace vmlat
